//! Runtime-sequence DMA transfers (host memory <-> shim tiles), computed in Rust so that `check`
//! can verify them against the shim BD limits and the templates only print them: the passes of
//! the matmul-like designs here, and a builder for the other families' sequences (written in
//! their `family/<name>.rs`).

use serde::Serialize;

/// One `aiex.npu.dma_memcpy_nd` (4-D pattern, sizes/strides outermost first, in elements of
/// the runtime-sequence argument) or one `aiex.npu.dma_wait`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum SeqOp {
    Memcpy {
        /// Runtime-sequence argument name (without `%`).
        arg: &'static str,
        offset: usize,
        sizes: [usize; 4],
        strides: [usize; 4],
        /// Buffer descriptor id on the shim tile.
        id: usize,
        /// Object FIFO the transfer feeds / drains.
        fifo: String,
        /// Drains carry `issue_token` so that `dma_wait` can wait for them.
        token: bool,
    },
    Wait {
        fifo: String,
    },
}

/// Strides of dimensions of size 1 are never applied; print them as 0.
fn unit_strides(sizes: [usize; 4], mut strides: [usize; 4]) -> [usize; 4] {
    for i in 0..3 {
        if sizes[i] == 1 {
            strides[i] = 0;
        }
    }
    strides
}

/// How output tiles are spread over the array.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Split {
    /// Columns take n-blocks j = c (mod columns), rows take m-blocks i = r (mod rows).
    N,
    /// Every core takes its own m-blocks: i = (g*columns + c)*rows + r; all n-blocks.
    M,
}

/// One matmul pass `C[m,n] = A[m,k] · B[k,n]` with optional epilogue inputs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GemmPass {
    pub m: usize,
    pub k: usize,
    pub n: usize,
    pub split: Split,
    pub m_blocks: usize,
    pub k_blocks: usize,
    pub n_blocks: usize,
    /// Sequential groups; each core computes `n_per_group` output tiles per group.
    pub groups: usize,
    pub n_per_group: usize,
    /// Output tiles per core per call.
    pub tiles: usize,
    /// Bias / int8 scales ride in the B stream (one extra element per output tile).
    pub params: bool,
    pub gelu: bool,
    /// The residual tile rides in the A stream (one extra element per output tile).
    pub residual: bool,
    /// bf16 planes of the A and B operands per k-step: 2 for split weights (hi then lo, each a
    /// full tile), else 1. The host interleaves the planes per k-block, so the split operand
    /// is a matrix with a reduction dimension of `planes × k`.
    pub planes_a: usize,
    pub planes_b: usize,
    /// Runtime-sequence argument names.
    pub a: &'static str,
    pub b: &'static str,
    pub r: &'static str,
    pub c: &'static str,
    /// Element offset of the residual inside its argument (the FFN keeps it behind H).
    pub r_offset: usize,
    pub ops: Vec<SeqOp>,
    /// Most buffer descriptors any shim tile has in flight between two waits.
    pub max_bds: usize,
    /// Largest iteration count (4th dimension) used; the shim allows at most 64.
    pub max_repeat: usize,
    /// Largest d1 size used (rows per transfer); the shim allows at most 1023.
    pub max_d1: usize,
}

/// Which matmul operand holds the weights, when they travel as two bf16 planes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SplitOperand {
    None,
    /// `A` (the LM head's embedding table, computed transposed).
    A,
    /// `B` (matmul and FFN weights).
    B,
}

#[derive(Debug, Clone, Copy)]
pub struct GemmShape {
    pub tm: usize,
    pub tk: usize,
    pub tn: usize,
    pub cols: usize,
    pub rows: usize,
}

/// One matmul pass of a gemm-like family.
pub struct PassSpec {
    pub k: usize,
    pub n: usize,
    /// Bias / scales ride in the B stream.
    pub params: bool,
    pub gelu: bool,
    /// The residual rides in the A stream.
    pub residual: bool,
    /// The operand whose weights travel as two bf16 planes.
    pub split: SplitOperand,
    /// Runtime-sequence argument names of A, B, the residual and C.
    pub args: [&'static str; 4],
    /// Element offset of the residual inside its argument.
    pub r_offset: usize,
}

/// The streams and runtime sequence of one pass over cores shaped by `s`; `None` when the tiles
/// do not divide the shape or do not spread over the cores.
pub fn gemm_pass(
    s: GemmShape,
    m: usize,
    pass: &PassSpec,
    shim_bds: usize,
    queue: usize,
) -> Option<GemmPass> {
    let &PassSpec {
        k,
        n,
        params,
        gelu,
        residual,
        split,
        args,
        r_offset,
    } = pass;
    let (tm, tk, tn, cols, rows) = (s.tm, s.tk, s.tn, s.cols, s.rows);
    if tm == 0
        || tk == 0
        || tn == 0
        || !m.is_multiple_of(tm)
        || !k.is_multiple_of(tk)
        || !n.is_multiple_of(tn)
    {
        return None;
    }
    let (mb, kb, nb) = (m / tm, k / tk, n / tn);
    let (planes_a, planes_b) = match split {
        SplitOperand::None => (1, 1),
        SplitOperand::A => (2, 1),
        SplitOperand::B => (1, 2),
    };
    // The split operand's reduction dimension as the host lays it out.
    let (ka, kbuf) = (planes_a * k, planes_b * k);
    let split = if nb % cols == 0 && mb % rows == 0 {
        Split::N
    } else if mb % (rows * cols) == 0 {
        Split::M
    } else {
        return None;
    };
    let (groups, n_per_group, n_stride) = match split {
        Split::N => (mb / rows, nb / cols, cols),
        Split::M => (mb / (rows * cols), nb, 1),
    };
    let [a, b, r, c] = args;
    // Transfers per output tile beyond the drain; chunks of output tiles are sized so that one
    // chunk's buffer descriptors fit the shim (`shim_bds`), no input channel has more transfers
    // outstanding than its task queue holds (`queue`: A carries the residual, B the parameter
    // tiles, one transfer each per tile), and the shim's 64-fold repeat limit.
    let simple = !params && !residual;
    let per_tile = 2 + usize::from(params) + usize::from(residual);
    let per_channel = 1 + usize::from(params.max(residual));
    let chunk = if simple {
        n_per_group.min(64)
    } else {
        ((shim_bds.saturating_sub(1)) / per_tile)
            .min(queue / per_channel)
            .clamp(1, n_per_group)
    };
    let mut ops = Vec::new();
    let mut max_bds = 0;
    let mut max_repeat = 1;
    for g in 0..groups {
        let mut first = 0;
        while first < n_per_group {
            let len = chunk.min(n_per_group - first);
            for col in 0..cols {
                let (row0, j0) = match split {
                    Split::N => (g * rows * tm, col + first * n_stride),
                    Split::M => ((g * cols + col) * rows * tm, first),
                };
                let mut id = 0;
                let mut push = |ops: &mut Vec<SeqOp>,
                                arg,
                                offset,
                                sizes: [usize; 4],
                                strides,
                                fifo: String,
                                token| {
                    max_repeat = max_repeat.max(sizes[0]);
                    let strides = unit_strides(sizes, strides);
                    ops.push(SeqOp::Memcpy {
                        arg,
                        offset,
                        sizes,
                        strides,
                        id,
                        fifo,
                        token,
                    });
                    id += 1;
                };
                // Drain first so the output BD is armed before data flows.
                push(
                    &mut ops,
                    c,
                    row0 * n + j0 * tn,
                    [1, len, rows * tm, tn],
                    [0, n_stride * tn, n, 1],
                    format!("C_out_{col}"),
                    true,
                );
                if simple {
                    push(
                        &mut ops,
                        a,
                        row0 * ka,
                        [len, planes_a * kb, rows * tm, tk],
                        [0, tk, ka, 1],
                        format!("A_in_{col}"),
                        false,
                    );
                    push(
                        &mut ops,
                        b,
                        j0 * tn,
                        [len, planes_b * kb, tk, tn],
                        [n_stride * tn, tk * n, n, 1],
                        format!("B_in_{col}"),
                        false,
                    );
                } else {
                    for jj in 0..len {
                        let j = j0 + jj * n_stride;
                        push(
                            &mut ops,
                            a,
                            row0 * ka,
                            [1, planes_a * kb, rows * tm, tk],
                            [0, tk, ka, 1],
                            format!("A_in_{col}"),
                            false,
                        );
                        if residual {
                            push(
                                &mut ops,
                                r,
                                r_offset + row0 * n + j * tn,
                                [1, 1, rows * tm, tn],
                                [0, 0, n, 1],
                                format!("A_in_{col}"),
                                false,
                            );
                        }
                        push(
                            &mut ops,
                            b,
                            j * tn,
                            [1, planes_b * kb, tk, tn],
                            [0, tk * n, n, 1],
                            format!("B_in_{col}"),
                            false,
                        );
                        if params {
                            // The parameter tiles follow the weights in the B buffer.
                            push(
                                &mut ops,
                                b,
                                kbuf * n + j * tk * tn,
                                [1, 1, 1, tk * tn],
                                [0, 0, 0, 1],
                                format!("B_in_{col}"),
                                false,
                            );
                        }
                    }
                }
                max_bds = max_bds.max(id);
            }
            for col in 0..cols {
                ops.push(SeqOp::Wait {
                    fifo: format!("C_out_{col}"),
                });
            }
            first += len;
        }
    }
    Some(GemmPass {
        m,
        k,
        n,
        split,
        m_blocks: mb,
        k_blocks: kb,
        n_blocks: nb,
        groups,
        n_per_group,
        tiles: groups * n_per_group,
        params,
        gelu,
        residual,
        planes_a,
        planes_b,
        a,
        b,
        r,
        c,
        r_offset,
        ops,
        max_bds,
        max_repeat,
        max_d1: rows * tm,
    })
}

/// Transfers of a non-matmul design plus the limits they reach.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sequence {
    pub ops: Vec<SeqOp>,
    pub max_bds: usize,
    pub max_repeat: usize,
    pub max_d1: usize,
}

/// Collects the transfers of a non-matmul design (per column BD ids from 0) and their limits.
pub(crate) struct Builder {
    ops: Vec<SeqOp>,
    id: usize,
    max_bds: usize,
    max_repeat: usize,
    max_d1: usize,
}

impl Builder {
    pub fn new() -> Builder {
        Builder {
            ops: Vec::new(),
            id: 0,
            max_bds: 0,
            max_repeat: 1,
            max_d1: 1,
        }
    }
    pub fn start_column(&mut self) {
        self.id = 0;
    }
    pub fn memcpy(
        &mut self,
        arg: &'static str,
        offset: usize,
        sizes: [usize; 4],
        strides: [usize; 4],
        fifo: String,
        token: bool,
    ) {
        self.max_repeat = self.max_repeat.max(sizes[0]);
        self.max_d1 = self.max_d1.max(sizes[2]);
        let strides = unit_strides(sizes, strides);
        self.ops.push(SeqOp::Memcpy {
            arg,
            offset,
            sizes,
            strides,
            id: self.id,
            fifo,
            token,
        });
        self.id += 1;
        self.max_bds = self.max_bds.max(self.id);
    }
    pub fn wait(&mut self, fifo: String) {
        self.ops.push(SeqOp::Wait { fifo });
    }
    pub fn finish(self) -> Sequence {
        Sequence {
            ops: self.ops,
            max_bds: self.max_bds,
            max_repeat: self.max_repeat,
            max_d1: self.max_d1,
        }
    }
}
