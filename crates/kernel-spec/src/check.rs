//! Resource checks of a spec entry against its device model.
//!
//! Every family maps onto the array in a fixed way (the "plan"); the templates render exactly
//! this plan, so what is checked here is what the design allocates:
//! - matmul: core (column c, row r) computes the output tiles (i, j) with i = r (mod rows) and
//!   j = c (mod columns) (or, when the column blocks do not spread over the columns, every core
//!   takes its own row blocks; see `seq::Split`). A tiles stream per core (split in the column's
//!   mem tile), B tiles are broadcast down the column, C tiles are joined in the mem tile. Bias / int8 scales ride in
//!   the B stream as one extra element per output tile, the residual tile in the A stream, so
//!   each core needs only its two input DMA channels.
//! - ffn: the matmul plan run twice on the same FIFOs (fc1+bias+GELU, then fc2+bias+residual).
//! - lm_head: the matmul plan on the transposed product logits^T = E · X^T, so that the
//!   vocabulary (A rows) spreads over all cores and X^T (a few columns) is broadcast; f32 out.
//! - attention: heads over columns, query blocks over rows; Q per core, packed K/V blocks
//!   broadcast down the column, flash-attention (online softmax) in each core.
//! - layernorm: row blocks split over all cores, gamma/beta broadcast once.

use crate::device::Limits;
use crate::seq::{self, GemmPass, GemmShape, PassSpec, SplitOperand};
use crate::{Dtype, Family, KernelSpec, Op};
use serde::{Deserialize, Serialize};

/// What an entry uses of the device (written to the manifest).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ResourceUse {
    /// Per-core data memory, including the stack.
    pub core_data_bytes: usize,
    /// Per-mem-tile memory (the busiest mem tile).
    pub memtile_bytes: usize,
    /// Compute cores used.
    pub cores: usize,
    /// Array columns used.
    pub columns: usize,
    /// DMA channels used over all core, mem and shim tiles of the design.
    pub dma_channels: usize,
    /// Buffer descriptors of the busiest core tile / mem tile.
    pub core_bds: usize,
    pub memtile_bds: usize,
    /// Bytes moved between host memory and the array per call (including re-reads).
    pub ddr_bytes: u64,
    /// Output tiles each core computes per call.
    pub tiles_per_core: usize,
}

/// Which check failed (tests match on it; the message says the rest).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckKind {
    Shape,
    Divisibility,
    CoreMemory,
    MemTileMemory,
    Grid,
    DmaChannels,
    /// A host transfer the shim's buffer descriptors cannot express.
    DmaPattern,
    BufferDescriptors,
    Locks,
    FifoDepth,
    Unsupported,
}

/// A failed check: `<file>: entry "<name>": <need>, <device> has <limit>; <fix>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{origin}: {message}")]
pub struct CheckError {
    pub kind: CheckKind,
    /// `kernel-specs/matmul.toml: entry "enc_fc1"`.
    pub origin: String,
    pub message: String,
}

/// One buffer kind in a tile's memory: `count` buffers of `bytes` each.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Buffer {
    pub what: &'static str,
    pub bytes: usize,
    pub count: usize,
}

impl Buffer {
    fn total(&self) -> usize {
        self.bytes * self.count
    }
}

/// The mapping of an entry onto the array, shared by `check`, `render` and `estimate_us`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    /// Padded row / reduction / column sizes.
    pub m: usize,
    pub k: usize,
    pub n: usize,
    pub columns: usize,
    pub rows: usize,
    pub depth: usize,
    pub core_buffers: Vec<Buffer>,
    pub memtile_buffers: Vec<Buffer>,
    pub core_dma_in: usize,
    pub core_dma_out: usize,
    pub memtile_dma_in: usize,
    pub memtile_dma_out: usize,
    pub shim_dma_in: usize,
    pub shim_dma_out: usize,
    /// Object FIFOs ending in / starting from a core (each needs `depth` BDs and 2 locks).
    pub core_fifos: usize,
    pub core_fifo_elems: usize,
    /// Object FIFO buffers in a mem tile and how many DMA-side uses each has (for BDs).
    pub memtile_bds: usize,
    pub memtile_locks: usize,
    pub tiles_per_core: usize,
    pub ddr_bytes: u64,
    /// Matmul passes (matmul 1, ffn 2, lm_head 1; empty for attention and layernorm).
    pub passes: Vec<GemmPass>,
    /// Runtime sequence of attention and layernorm.
    pub sequence: Option<seq::Sequence>,
}

fn kib(bytes: usize) -> String {
    if bytes.is_multiple_of(1024) {
        format!("{} KiB", bytes / 1024)
    } else {
        format!("{:.1} KiB", bytes as f64 / 1024.0)
    }
}

struct Ctx<'a> {
    spec: &'a KernelSpec,
    lim: Limits,
}

impl Ctx<'_> {
    fn err(&self, kind: CheckKind, message: impl Into<String>) -> CheckError {
        CheckError {
            kind,
            origin: self.spec.origin(),
            message: message.into(),
        }
    }

    fn dev(&self) -> &'static str {
        self.lim.mlir_name
    }

    /// `value` padded by `pad` (which must not shrink it).
    fn padded(
        &self,
        what: &str,
        value: usize,
        pad: Option<usize>,
        key: &str,
    ) -> Result<usize, CheckError> {
        match pad {
            None => Ok(value),
            Some(p) if p >= value => Ok(p),
            Some(p) => Err(self.err(
                CheckKind::Shape,
                format!(
                    "{key} = {p} is smaller than {what} = {value}; {key} must be at least {value}"
                ),
            )),
        }
    }

    /// `dim` (named `what`, padded via `pad_key`) must split into tiles of `tile` (`tile_key`).
    fn divides(
        &self,
        what: &str,
        dim: usize,
        tile_key: &str,
        tile: usize,
        pad_key: &str,
    ) -> Result<usize, CheckError> {
        if tile == 0 {
            return Err(self.err(CheckKind::Shape, format!("{tile_key} must be positive")));
        }
        if !dim.is_multiple_of(tile) {
            let up = dim.div_ceil(tile) * tile;
            return Err(self.err(
                CheckKind::Divisibility,
                format!(
                    "{what} = {dim} does not divide into tiles of {tile_key} = {tile}; \
                     set {pad_key} = {up} (the host zero-pads) or pick a {tile_key} that divides {dim}"
                ),
            ));
        }
        Ok(dim / tile)
    }

    /// Blocks of one dimension must spread evenly over `units` cores/columns/rows.
    fn spreads(
        &self,
        what: &str,
        blocks: usize,
        units: usize,
        unit_key: &str,
        pad_key: &str,
        tile: usize,
    ) -> Result<usize, CheckError> {
        if !blocks.is_multiple_of(units) {
            let up = blocks.div_ceil(units) * units * tile;
            return Err(self.err(
                CheckKind::Divisibility,
                format!(
                    "{blocks} {what} blocks do not spread evenly over {units} {unit_key}; \
                     set {pad_key} = {up} or change {unit_key}"
                ),
            ));
        }
        Ok(blocks / units)
    }

    /// The split operand of an entry with `split_weights` (bf16 only).
    fn split(
        &self,
        split_weights: bool,
        weights: SplitOperand,
    ) -> Result<SplitOperand, CheckError> {
        if !split_weights {
            return Ok(SplitOperand::None);
        }
        if self.spec.dtype != Dtype::Bf16 {
            return Err(self.err(
                CheckKind::Unsupported,
                format!(
                    "split_weights applies to dtype = \"bf16\" only (it sends bf16 weights as two bf16 planes), not {}; remove it",
                    self.spec.dtype
                ),
            ));
        }
        Ok(weights)
    }

    /// Tiles must be whole multiples of the AIE API mmul shape, unrolled 2x2 in M and N.
    fn mmul_fit(&self, tm: usize, tk: usize, tn: usize, dtype: Dtype) -> Result<(), CheckError> {
        let (mm, mk, mn) = self.lim.mmul(dtype);
        for (key, v, unit) in [
            ("tile_m", tm, 2 * mm),
            ("tile_k", tk, mk),
            ("tile_n", tn, 2 * mn),
        ] {
            if v % unit != 0 {
                return Err(self.err(
                    CheckKind::Divisibility,
                    format!(
                        "{key} = {v} is not a multiple of {unit} ({dtype} aie::mmul<{mm},{mk},{mn}> on {}, unrolled 2x2 in M and N); \
                         use a multiple of {unit}",
                        self.lim.arch
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// Matmul-like plan (matmul, ffn, lm_head); see `seq::gemm_pass` for the mapping.
fn gemm_plan(
    cx: &Ctx<'_>,
    m: usize,
    passes: &[PassSpec],
    out_bytes: usize,
    params_bytes: usize,
) -> Result<Plan, CheckError> {
    let s = cx.spec;
    let t = &s.tiling;
    let in_b = s.dtype.bytes();
    let (tm, tk, tn) = (t.tile_m, t.tile_k, t.tile_n);
    let (cols, rows, depth) = (t.columns, t.rows, t.depth);
    let mb = cx.divides("rows (m)", m, "tile_m", tm, "pad_m_to")?;
    cx.mmul_fit(tm, tk, tn, s.dtype)?;
    let shape = GemmShape {
        tm,
        tk,
        tn,
        cols,
        rows,
    };
    let mut out = Vec::new();
    let mut ddr = 0u64;
    for pass in passes {
        let &PassSpec {
            k,
            n,
            params,
            residual,
            args,
            ..
        } = pass;
        cx.divides("reduction (k)", k, "tile_k", tk, "pad_k_to")?;
        let nb = cx.divides("columns (n)", n, "tile_n", tn, "pad_n_to")?;
        if residual && tk != tn {
            return Err(cx.err(
                CheckKind::Shape,
                format!(
                    "the residual tile travels in the A stream, so tile_n ({tn}) must equal tile_k ({tk}); set both to the same value"
                ),
            ));
        }
        if params && params_bytes > tk * tn * in_b {
            return Err(cx.err(
                CheckKind::Shape,
                format!(
                    "the epilogue parameters ({} bytes per tile) travel as one B element of {} bytes; raise tile_k",
                    params_bytes,
                    tk * tn * in_b
                ),
            ));
        }
        let Some(p) = seq::gemm_pass(shape, m, pass, cx.lim.shim_bds) else {
            let up_rows = mb.div_ceil(rows) * rows * tm;
            let up_all = mb.div_ceil(rows * cols) * rows * cols * tm;
            return Err(cx.err(
                CheckKind::Divisibility,
                format!(
                    "{mb} row blocks x {nb} column blocks do not spread over {cols} columns x {rows} rows \
                     (need column blocks % columns == 0 and row blocks % rows == 0, or row blocks % (columns*rows) == 0); \
                     set pad_m_to = {}, or pick a tile_n that cuts n = {n} into a multiple of {cols} blocks, or change columns/rows",
                    if nb % cols == 0 { up_rows } else { up_all }
                ),
            ));
        };
        for op in &p.ops {
            if let seq::SeqOp::Memcpy { arg, sizes, .. } = op {
                let eb = if *arg == args[3] { out_bytes } else { in_b };
                ddr += (sizes.iter().product::<usize>() * eb) as u64;
            }
        }
        out.push(p);
    }
    let a = tm * tk * in_b;
    let b = tk * tn * in_b;
    let c = tm * tn * out_bytes;
    let mut core_buffers = vec![
        Buffer {
            what: "A tiles",
            bytes: a,
            count: depth,
        },
        Buffer {
            what: "B tiles",
            bytes: b,
            count: depth,
        },
        Buffer {
            what: "C tiles",
            bytes: c,
            count: depth,
        },
        Buffer {
            what: "accumulator",
            bytes: tm * tn * 4,
            count: 1,
        },
    ];
    // The mem tile holds the split/broadcast/join staging buffers of its column (double-buffered).
    let memtile_buffers = vec![
        Buffer {
            what: "A staging",
            bytes: a * rows,
            count: 2,
        },
        Buffer {
            what: "B staging",
            bytes: b,
            count: 2,
        },
        Buffer {
            what: "C staging",
            bytes: c * rows,
            count: 2,
        },
    ];
    if needs_exp(s) && cx.lim.arch == "aie2" {
        core_buffers.push(lut_buffer());
    }
    let tiles_per_core = out.iter().map(|p| p.tiles).sum();
    Ok(Plan {
        m,
        k: passes[0].k,
        n: passes[0].n,
        columns: cols,
        rows,
        depth,
        core_buffers,
        memtile_buffers,
        core_dma_in: 2,
        core_dma_out: 1,
        memtile_dma_in: 2 + rows,
        memtile_dma_out: rows + 2,
        shim_dma_in: 2,
        shim_dma_out: 1,
        core_fifos: 3,
        core_fifo_elems: 3 * depth,
        memtile_bds: 2 * (1 + rows) + 2 * 2 + 2 * (rows + 1),
        memtile_locks: 2 * (3 + 2 * rows + 1),
        tiles_per_core,
        ddr_bytes: ddr,
        passes: out,
        sequence: None,
    })
}

fn plan_of(cx: &Ctx<'_>) -> Result<Plan, CheckError> {
    let s = cx.spec;
    let t = &s.tiling;
    match s.op {
        Op::Matmul {
            m,
            k,
            n,
            bias,
            gelu,
            residual,
            quant,
            split_weights,
        } => {
            match (s.dtype, quant) {
                (Dtype::F32, _) => {
                    return Err(cx.err(
                        CheckKind::Unsupported,
                        "matmul supports dtype bf16 or int8, not f32; use bf16",
                    ))
                }
                (Dtype::Int8, None) => return Err(cx.err(
                    CheckKind::Unsupported,
                    "int8 matmul needs a [kernel.quant] table (weight_scale, requantize_output)",
                )),
                (Dtype::Bf16, Some(_)) => {
                    return Err(cx.err(
                        CheckKind::Unsupported,
                        "[kernel.quant] applies only to dtype = \"int8\"; remove it",
                    ))
                }
                _ => {}
            }
            let m2 = cx.padded("m", m, t.pad_m_to, "pad_m_to")?;
            let k2 = cx.padded("k", k, t.pad_k_to, "pad_k_to")?;
            let n2 = cx.padded("n", n, t.pad_n_to, "pad_n_to")?;
            let out_bytes = match quant {
                Some(q) if q.requantize_output => 1,
                _ => 2,
            };
            if quant.is_some() && residual {
                return Err(cx.err(
                    CheckKind::Unsupported,
                    "an int8 matmul cannot fuse the residual (it would travel as int8 in the A stream); \
                     set residual = false and add it on the host, or use dtype = \"bf16\"",
                ));
            }
            // Per output channel, 32-bit words: bf16: bias; int8: bias, sx*sw, 1/s_out.
            let params_bytes = t.tile_n
                * if quant.is_some() {
                    12
                } else if bias {
                    4
                } else {
                    0
                };
            let params = params_bytes > 0;
            gemm_plan(
                cx,
                m2,
                &[PassSpec {
                    k: k2,
                    n: n2,
                    params,
                    gelu,
                    residual,
                    split: cx.split(split_weights, SplitOperand::B)?,
                    args: ["x", "w", "r", "y"],
                }],
                out_bytes,
                params_bytes,
            )
        }
        Op::Ffn {
            rows,
            d_model,
            d_ff,
            split_weights,
        } => {
            if s.dtype != Dtype::Bf16 {
                return Err(cx.err(
                    CheckKind::Unsupported,
                    format!("ffn supports dtype bf16 only, not {}", s.dtype),
                ));
            }
            if t.pad_k_to.is_some() || t.pad_n_to.is_some() {
                return Err(cx.err(
                    CheckKind::Shape,
                    "ffn pads rows only (pad_m_to); d_model and d_ff must divide the tiles",
                ));
            }
            let m2 = cx.padded("rows", rows, t.pad_m_to, "pad_m_to")?;
            let params_bytes = t.tile_n * 4;
            let split = cx.split(split_weights, SplitOperand::B)?;
            gemm_plan(
                cx,
                m2,
                &[
                    PassSpec {
                        k: d_model,
                        n: d_ff,
                        params: true,
                        gelu: true,
                        residual: false,
                        split,
                        args: ["x", "w1", "x", "h"],
                    },
                    PassSpec {
                        k: d_ff,
                        n: d_model,
                        params: true,
                        gelu: false,
                        residual: true,
                        split,
                        args: ["h", "w2", "x", "y"],
                    },
                ],
                2,
                params_bytes,
            )
        }
        Op::LmHead {
            rows,
            d_model,
            vocab,
            top_k,
            split_weights,
        } => {
            if s.dtype != Dtype::Bf16 {
                return Err(cx.err(
                    CheckKind::Unsupported,
                    format!("lm_head supports dtype bf16 only, not {}", s.dtype),
                ));
            }
            if let Some(kk) = top_k {
                if kk == 0 || kk > vocab {
                    return Err(cx.err(
                        CheckKind::Shape,
                        format!("top_k = {kk} must be in 1..={vocab}"),
                    ));
                }
            }
            // Computed transposed: logits^T[V', rows] = E[V', d] · X^T[d, rows], so the vocabulary
            // (the large dimension) spreads over the cores and the few rows are the N tiles.
            let m2 = cx.padded(
                "vocabulary rows (top_k or vocab)",
                top_k.unwrap_or(vocab),
                t.pad_m_to,
                "pad_m_to",
            )?;
            let n2 = cx.padded("decoder rows", rows, t.pad_n_to, "pad_n_to")?;
            let k2 = cx.padded("d_model", d_model, t.pad_k_to, "pad_k_to")?;
            gemm_plan(
                cx,
                m2,
                &[PassSpec {
                    k: k2,
                    n: n2,
                    params: false,
                    gelu: false,
                    residual: false,
                    // Transposed: the embedding table is the A operand.
                    split: cx.split(split_weights, SplitOperand::A)?,
                    args: ["e", "xt", "r", "logits_t"],
                }],
                4,
                0,
            )
        }
        Op::Attention {
            kind: _,
            heads,
            head_dim,
            q_len,
            kv_len,
        } => {
            if s.dtype != Dtype::Bf16 {
                return Err(cx.err(
                    CheckKind::Unsupported,
                    format!("attention supports dtype bf16 only, not {}", s.dtype),
                ));
            }
            if t.tile_k != 0 && t.tile_k != head_dim {
                return Err(cx.err(CheckKind::Shape, format!("attention uses tile_k = head_dim ({head_dim}); remove tile_k or set it to {head_dim}")));
            }
            if t.pad_k_to.is_some() {
                return Err(cx.err(
                    CheckKind::Shape,
                    "attention cannot pad head_dim; remove pad_k_to",
                ));
            }
            let q2 = cx.padded("q_len", q_len, t.pad_m_to, "pad_m_to")?;
            let kv2 = cx.padded("kv_len", kv_len, t.pad_n_to, "pad_n_to")?;
            let (tm, tn, hd) = (t.tile_m, t.tile_n, head_dim);
            let qb = cx.divides("q_len", q2, "tile_m", tm, "pad_m_to")?;
            cx.divides("kv_len", kv2, "tile_n", tn, "pad_n_to")?;
            // S = Q K^T (k = head_dim, n = tile_n) and O += P V (k = tile_n, n = head_dim).
            cx.mmul_fit(tm, hd, tn, s.dtype)?;
            cx.mmul_fit(tm, tn, hd, s.dtype)?;
            let hpc = cx.spreads("head", heads, t.columns, "columns", "columns", 1)
                .map_err(|_| cx.err(CheckKind::Divisibility, format!("{heads} heads do not spread evenly over {} columns; use a column count that divides {heads}", t.columns)))?;
            let qpr = cx.spreads("query", qb, t.rows, "rows", "pad_m_to", tm)?;
            let depth = t.depth;
            let q = tm * hd * 2;
            let kv = 2 * tn * hd * 2;
            let o = tm * hd * 2;
            let mut core_buffers = vec![
                Buffer {
                    what: "Q tiles",
                    bytes: q,
                    count: depth,
                },
                Buffer {
                    what: "K/V tiles",
                    bytes: kv,
                    count: depth,
                },
                Buffer {
                    what: "O tiles",
                    bytes: o,
                    count: depth,
                },
                Buffer {
                    what: "O accumulator (f32)",
                    bytes: tm * hd * 4,
                    count: 1,
                },
                Buffer {
                    what: "scores (f32)",
                    bytes: tm * tn * 4,
                    count: 1,
                },
                Buffer {
                    what: "probabilities (bf16)",
                    bytes: tm * tn * 2,
                    count: 1,
                },
                Buffer {
                    what: "row max/sum (f32)",
                    bytes: tm * 4,
                    count: 2,
                },
                Buffer {
                    what: "runtime parameters",
                    bytes: 16,
                    count: 1,
                },
            ];
            if cx.lim.arch == "aie2" {
                core_buffers.push(lut_buffer());
            }
            let rows = t.rows;
            let memtile_buffers = vec![
                Buffer {
                    what: "Q staging",
                    bytes: q * rows,
                    count: 2,
                },
                Buffer {
                    what: "K/V staging",
                    bytes: kv,
                    count: 2,
                },
                Buffer {
                    what: "O staging",
                    bytes: o * rows,
                    count: 2,
                },
            ];
            let d = (heads * hd) as u64;
            // Q and O once; K/V once per query-block group of each column.
            let ddr = 2 * (q2 as u64) * d * 2 + 2 * (kv2 as u64) * d * 2 * (qpr as u64);
            Ok(Plan {
                m: q2,
                k: hd,
                n: kv2,
                columns: t.columns,
                rows,
                depth,
                core_buffers,
                memtile_buffers,
                core_dma_in: 2,
                core_dma_out: 1,
                memtile_dma_in: 2 + rows,
                memtile_dma_out: rows + 2,
                shim_dma_in: 2,
                shim_dma_out: 1,
                core_fifos: 3,
                core_fifo_elems: 3 * depth,
                memtile_bds: 2 * (1 + rows) + 2 * 2 + 2 * (rows + 1),
                memtile_locks: 2 * (3 + 2 * rows),
                tiles_per_core: hpc * qpr,
                ddr_bytes: ddr,
                passes: Vec::new(),
                sequence: Some(seq::attention(
                    heads, head_dim, q2, kv2, tm, tn, t.columns, rows,
                )),
            })
        }
        Op::LayerNorm { rows, dim, eps } => {
            if s.dtype == Dtype::Int8 {
                return Err(cx.err(
                    CheckKind::Unsupported,
                    "layernorm supports dtype bf16 or f32, not int8",
                ));
            }
            if !(eps > 0.0 && eps < 1.0) {
                return Err(cx.err(CheckKind::Shape, format!("eps = {eps} must be in (0, 1)")));
            }
            if t.pad_k_to.is_some()
                || t.pad_n_to.is_some()
                || (t.tile_k != 0 && t.tile_k != dim)
                || (t.tile_n != 0 && t.tile_n != dim)
            {
                return Err(cx.err(CheckKind::Shape, format!("layernorm normalises whole rows: remove tile_k/tile_n/pad_k_to/pad_n_to (dim = {dim})")));
            }
            let lanes = 16;
            if dim % lanes != 0 {
                return Err(cx.err(
                    CheckKind::Divisibility,
                    format!(
                        "dim = {dim} is not a multiple of the {lanes}-lane vectors the kernel uses"
                    ),
                ));
            }
            let r2 = cx.padded("rows", rows, t.pad_m_to, "pad_m_to")?;
            let tm = t.tile_m;
            let blocks = cx.divides("rows", r2, "tile_m", tm, "pad_m_to")?;
            let per = cx.spreads("row", blocks, t.cores(), "columns*rows", "pad_m_to", tm)?;
            let eb = s.dtype.bytes();
            let x = tm * dim * eb;
            let p = 2 * dim * 4;
            let depth = t.depth;
            let rows_used = t.rows;
            Ok(Plan {
                m: r2,
                k: dim,
                n: dim,
                columns: t.columns,
                rows: rows_used,
                depth,
                core_buffers: vec![
                    Buffer {
                        what: "X tiles",
                        bytes: x,
                        count: depth,
                    },
                    Buffer {
                        what: "gamma/beta",
                        bytes: p,
                        count: 1,
                    },
                    Buffer {
                        what: "Y tiles",
                        bytes: x,
                        count: depth,
                    },
                ],
                memtile_buffers: vec![
                    Buffer {
                        what: "X staging",
                        bytes: x * rows_used,
                        count: 2,
                    },
                    Buffer {
                        what: "gamma/beta staging",
                        bytes: p,
                        count: 1,
                    },
                    Buffer {
                        what: "Y staging",
                        bytes: x * rows_used,
                        count: 2,
                    },
                ],
                core_dma_in: 2,
                core_dma_out: 1,
                memtile_dma_in: 2 + rows_used,
                memtile_dma_out: rows_used + 2,
                shim_dma_in: 2,
                shim_dma_out: 1,
                core_fifos: 3,
                core_fifo_elems: 2 * depth + 1,
                memtile_bds: 2 * (1 + rows_used) + 2 + 2 * (rows_used + 1),
                memtile_locks: 2 * (3 + 2 * rows_used),
                tiles_per_core: per,
                ddr_bytes: (2 * r2 * dim * eb + p * t.columns) as u64,
                passes: Vec::new(),
                sequence: Some(seq::layernorm(r2, dim, tm, t.columns, rows_used)),
            })
        }
    }
}

/// Whether the entry's kernels evaluate exp (GELU, softmax).
pub(crate) fn needs_exp(spec: &KernelSpec) -> bool {
    match spec.op {
        Op::Matmul { gelu, .. } => gelu,
        Op::Ffn { .. } | Op::Attention { .. } => true,
        Op::LayerNorm { .. } | Op::LmHead { .. } => false,
    }
}

/// aie2 has no exp instruction: mlir-aie's lut_based_ops.cpp is compiled into the kernel, and
/// its tables (4 x 1 KiB exp, 128 B inverse, 2 x 512 B tanh) live in core data memory.
fn lut_buffer() -> Buffer {
    Buffer {
        what: "exp lookup tables",
        bytes: 4 * 1024 + 128 + 2 * 512,
        count: 1,
    }
}

/// Element size of each runtime-sequence argument (bytes).
fn arg_bytes(spec: &KernelSpec, p: &Plan, arg: &str) -> usize {
    match spec.op {
        Op::Matmul { quant, .. } if p.passes.first().is_some_and(|x| x.c == arg) => match quant {
            Some(q) if q.requantize_output => 1,
            _ => 2,
        },
        Op::LmHead { .. } if arg == "logits_t" => 4,
        Op::LayerNorm { .. } if arg == "params" => 4,
        _ => spec.dtype.bytes(),
    }
}

/// Every host transfer must fit the shim BD fields (as aie-opt's verifier of
/// `aiex.npu.dma_memcpy_nd` checks them): 4-byte granularity, innermost and second sizes of at
/// most 1023 (the innermost in 32-bit words, unless the transfer is linear), at most 64
/// repetitions, strides of at most 2^20 words.
fn check_transfers(cx: &Ctx<'_>, p: &Plan) -> Result<(), CheckError> {
    let ops = p
        .passes
        .iter()
        .flat_map(|x| x.ops.iter())
        .chain(p.sequence.iter().flat_map(|x| x.ops.iter()));
    for op in ops {
        let seq::SeqOp::Memcpy {
            arg,
            sizes,
            strides,
            fifo,
            ..
        } = op
        else {
            continue;
        };
        let eb = arg_bytes(cx.spec, p, arg);
        let what =
            format!("the transfer of %{arg} into @{fifo} (sizes {sizes:?}, strides {strides:?})");
        let linear = sizes[..3].iter().all(|&x| x == 1) && strides[3] == 1;
        let fail = |m: String| {
            Err(cx.err(
                CheckKind::DmaPattern,
                format!("{what} {m}; use smaller tiles (the innermost dimension is one tile row)"),
            ))
        };
        if !(sizes[3] * eb).is_multiple_of(4) {
            return fail(format!(
                "moves {} bytes per row, not a multiple of 4",
                sizes[3] * eb
            ));
        }
        if !linear && sizes[3] * eb / 4 > 1023 {
            return fail(format!(
                "has an innermost size of {} words, the shim allows 1023",
                sizes[3] * eb / 4
            ));
        }
        if sizes[2] > 1023 || sizes[1] > 1023 {
            return fail("has a middle size above 1023".to_string());
        }
        if sizes[0] > 64 {
            return fail(format!("repeats {} times, the shim allows 64", sizes[0]));
        }
        if let Some(big) = strides.iter().find(|&&st| st * eb / 4 > 1 << 20) {
            return fail(format!(
                "has a stride of {} words, the shim allows 2^20",
                big * eb / 4
            ));
        }
    }
    Ok(())
}

struct Stats {
    max_bds: usize,
    max_repeat: usize,
    max_d1: usize,
}

/// The plan of an entry, after the shape checks (no resource limits checked).
pub fn plan(spec: &KernelSpec) -> Result<Plan, CheckError> {
    let cx = Ctx {
        spec,
        lim: spec.device.limits(),
    };
    check_grid(&cx)?;
    plan_of(&cx)
}

fn check_grid(cx: &Ctx<'_>) -> Result<(), CheckError> {
    let t = &cx.spec.tiling;
    let l = &cx.lim;
    if t.columns == 0 || t.rows == 0 {
        return Err(cx.err(CheckKind::Grid, "columns and rows must be at least 1"));
    }
    if t.columns > l.columns {
        return Err(cx.err(
            CheckKind::Grid,
            format!(
                "uses {} columns, {} has {}; lower columns to {}",
                t.columns,
                cx.dev(),
                l.columns,
                l.columns
            ),
        ));
    }
    if t.rows > l.core_rows {
        return Err(cx.err(
            CheckKind::Grid,
            format!(
                "uses {} core rows per column, {} has {}; lower rows to {}",
                t.rows,
                cx.dev(),
                l.core_rows,
                l.core_rows
            ),
        ));
    }
    if t.depth == 0 || t.depth > l.max_fifo_depth {
        return Err(cx.err(
            CheckKind::FifoDepth,
            format!(
                "object-FIFO depth {} is outside 1..={} (each element needs its own buffer, locks and BD on {}); use depth = 2",
                t.depth,
                l.max_fifo_depth,
                cx.dev()
            ),
        ));
    }
    Ok(())
}

/// Checks an entry against its device and returns what it uses.
pub fn check(spec: &KernelSpec) -> Result<ResourceUse, CheckError> {
    check_with(spec, &spec.device.limits())
}

/// `check` against explicit limits (a device variant, or a what-if in tests). Messages name the
/// device by `limits.mlir_name`.
pub fn check_with(spec: &KernelSpec, limits: &Limits) -> Result<ResourceUse, CheckError> {
    let cx = Ctx {
        spec,
        lim: limits.clone(),
    };
    let l = &cx.lim;
    let dev = cx.dev();
    check_grid(&cx)?;
    let p = plan_of(&cx)?;

    // Core data memory: every FIFO element and local buffer, plus the stack.
    let core: usize = p.core_buffers.iter().map(Buffer::total).sum::<usize>() + l.stack_bytes;
    if core > l.core_data_bytes {
        let parts: Vec<String> = p
            .core_buffers
            .iter()
            .map(|b| format!("{} {}x{}", b.what, b.count, kib(b.bytes)))
            .collect();
        let fix = match spec.family {
            Family::Attention => "lower tile_n or tile_m",
            Family::LayerNorm => "lower tile_m",
            _ => "lower tile_k",
        };
        let names: Vec<&str> = p.core_buffers.iter().map(|b| b.what).collect();
        return Err(cx.err(
            CheckKind::CoreMemory,
            format!(
                "{} + {} stack need {} of core data memory ({}), {} has {}; {}",
                names.join("+"),
                kib(l.stack_bytes),
                kib(core),
                parts.join(", "),
                dev,
                kib(l.core_data_bytes),
                fix
            ),
        ));
    }
    let mem: usize = p.memtile_buffers.iter().map(Buffer::total).sum();
    if mem > l.memtile_bytes {
        let parts: Vec<String> = p
            .memtile_buffers
            .iter()
            .map(|b| format!("{} {}x{}", b.what, b.count, kib(b.bytes)))
            .collect();
        return Err(cx.err(
            CheckKind::MemTileMemory,
            format!(
                "mem-tile staging needs {} ({}), {} has {}; lower rows or the tile sizes",
                kib(mem),
                parts.join(", "),
                dev,
                kib(l.memtile_bytes)
            ),
        ));
    }
    let chans = [
        ("core tile input", p.core_dma_in, l.core_dma_in, "core"),
        ("core tile output", p.core_dma_out, l.core_dma_out, "core"),
        ("mem tile input", p.memtile_dma_in, l.memtile_dma_in, "mem"),
        (
            "mem tile output",
            p.memtile_dma_out,
            l.memtile_dma_out,
            "mem",
        ),
        ("shim input", p.shim_dma_in, l.shim_dma_in, "shim"),
        ("shim output", p.shim_dma_out, l.shim_dma_out, "shim"),
    ];
    for (what, need, have, _) in chans {
        if need > have {
            return Err(cx.err(
                CheckKind::DmaChannels,
                format!("needs {need} {what} DMA channels, {dev} has {have}; lower rows (each core in a column needs its own mem-tile channel)"),
            ));
        }
    }
    check_transfers(&cx, &p)?;
    let limits = p
        .passes
        .iter()
        .map(|x| (x.max_bds, x.max_repeat, x.max_d1))
        .chain(
            p.sequence
                .iter()
                .map(|x| (x.max_bds, x.max_repeat, x.max_d1)),
        );
    for (max_bds, max_repeat, max_d1) in limits {
        let pass = Stats {
            max_bds,
            max_repeat,
            max_d1,
        };
        if pass.max_bds > l.shim_bds {
            return Err(cx.err(
                CheckKind::BufferDescriptors,
                format!(
                    "the runtime sequence keeps {} transfers in flight per shim tile between waits, {dev} has {} buffer descriptors; \
                     use more columns or a larger tile_n (fewer output tiles per group)",
                    pass.max_bds, l.shim_bds
                ),
            ));
        }
        if pass.max_repeat > 64 {
            return Err(cx.err(
                CheckKind::BufferDescriptors,
                format!(
                    "a shim transfer repeats {} times, the shim BD iteration count allows 64; raise tile_n or use more columns",
                    pass.max_repeat
                ),
            ));
        }
        if pass.max_d1 > 1023 {
            return Err(cx.err(
                CheckKind::BufferDescriptors,
                format!(
                    "a shim transfer spans {} rows, the BD wrap allows 1023; lower tile_m or rows",
                    pass.max_d1
                ),
            ));
        }
    }
    let core_bds = p.core_fifo_elems;
    if core_bds > l.core_bds {
        return Err(cx.err(
            CheckKind::BufferDescriptors,
            format!(
                "needs {core_bds} buffer descriptors per core tile, {dev} has {}; lower depth",
                l.core_bds
            ),
        ));
    }
    if p.memtile_bds > l.memtile_bds {
        return Err(cx.err(
            CheckKind::BufferDescriptors,
            format!(
                "needs {} buffer descriptors per mem tile, {dev} has {}; lower rows",
                p.memtile_bds, l.memtile_bds
            ),
        ));
    }
    let core_locks = 2 * p.core_fifos;
    if core_locks > l.core_locks || p.memtile_locks > l.memtile_locks {
        return Err(cx.err(
            CheckKind::Locks,
            format!(
                "needs {core_locks} core locks / {} mem-tile locks, {dev} has {} / {}; lower rows",
                p.memtile_locks, l.core_locks, l.memtile_locks
            ),
        ));
    }
    let cores = p.columns * p.rows;
    let per_col = p.core_dma_in + p.core_dma_out;
    Ok(ResourceUse {
        core_data_bytes: core,
        memtile_bytes: mem,
        cores,
        columns: p.columns,
        dma_channels: cores * per_col
            + p.columns * (p.memtile_dma_in + p.memtile_dma_out + p.shim_dma_in + p.shim_dma_out),
        core_bds,
        memtile_bds: p.memtile_bds,
        ddr_bytes: p.ddr_bytes,
        tiles_per_core: p.tiles_per_core,
    })
}

/// Roofline estimate of one call in microseconds: the slower of compute at the device's peak
/// MACs/cycle for the dtype on the cores used, and the host traffic at the DMA bandwidth.
/// Entries that fail their plan get the compute-only bound of the whole array.
pub fn estimate_us(spec: &KernelSpec) -> f64 {
    let l = spec.device.limits();
    let macs = spec.op.macs();
    let (cores, ddr) = match plan(spec) {
        Ok(p) => (p.columns * p.rows, p.ddr_bytes as f64),
        Err(_) => (l.cores(), 0.0),
    };
    let compute_s = macs / (cores as f64 * l.macs_per_cycle(spec.dtype) * l.clock_ghz * 1e9);
    let dma_s = ddr / (l.ddr_gbps * 1e9);
    compute_s.max(dma_s) * 1e6
}
