//! attention: multi-head scaled-dot-product attention. Heads spread over columns, query blocks
//! over rows; Q per core, packed K/V blocks broadcast down the column, flash attention (online
//! softmax) in each core. The call's run-time parameters (valid keys, causal offset) ride in
//! the K/V stream as one parameter object ahead of the blocks.

use std::path::Path;

use serde_json::json;

use super::{lut_buffer, wrong_op, Context, FamilyDef};
use crate::check::{CheckError, CheckKind};
use crate::plan::{Buffer, Ctx, Plan};
use crate::render::seq_args;
use crate::seq::{Builder, Sequence};
use crate::spec::entry;
use crate::{AttentionKind, Dtype, Family, KernelSpec, Op, SpecError};

entry!(Entry {
    kind: AttentionKind,
    heads: usize,
    head_dim: usize,
    q_len: usize,
    kv_len: usize,
} => |e| Op::Attention {
    kind: e.kind,
    heads: e.heads,
    head_dim: e.head_dim,
    q_len: e.q_len,
    kv_len: e.kv_len,
});

pub(super) struct Attention;

impl FamilyDef for Attention {
    fn parse(&self, file: &Path, text: &str) -> Result<Vec<KernelSpec>, SpecError> {
        crate::spec::parse_as::<Entry>(Family::Attention, file, text)
    }

    fn macs(&self, op: &Op) -> f64 {
        let Op::Attention {
            heads,
            head_dim,
            q_len,
            kv_len,
            ..
        } = *op
        else {
            wrong_op("attention", op)
        };
        2.0 * (heads * q_len * kv_len * head_dim) as f64
    }

    fn rows(&self, op: &Op) -> usize {
        let Op::Attention { q_len, .. } = *op else {
            wrong_op("attention", op)
        };
        q_len
    }

    fn needs_exp(&self, _op: &Op) -> bool {
        true
    }

    fn core_memory_fix(&self) -> &'static str {
        "lower tile_n or tile_m"
    }

    fn plan(&self, cx: &Ctx<'_>) -> Result<Plan, CheckError> {
        let s = cx.spec;
        let t = &s.tiling;
        let Op::Attention {
            heads,
            head_dim,
            q_len,
            kv_len,
            ..
        } = s.op
        else {
            wrong_op("attention", &s.op)
        };
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
        // Q and O once; K/V once per query-block group of each column; the parameter object
        // (one K/V element) once per column.
        let ddr = 2 * (q2 as u64) * d * 2
            + 2 * (kv2 as u64) * d * 2 * (qpr as u64)
            + (t.columns * kv) as u64;
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
            sequence: Some(sequence(heads, head_dim, q2, kv2, tm, tn, t.columns, rows)),
        })
    }

    fn context(&self, spec: &KernelSpec, plan: &Plan) -> Context {
        let Op::Attention {
            kind,
            heads,
            head_dim,
            q_len,
            kv_len,
        } = spec.op
        else {
            wrong_op("attention", &spec.op)
        };
        let t = &spec.tiling;
        let (mm_m, mm_k, _) = spec.device.limits().mmul(spec.dtype);
        let kind_s = match kind {
            AttentionKind::Encoder => "encoder",
            AttentionKind::CausalSelf => "causal_self",
            AttentionKind::Cross => "cross",
        };
        Context {
            f: json!({
                "kind": kind_s, "causal": kind == AttentionKind::CausalSelf,
                "heads": heads, "head_dim": head_dim, "q_len": q_len, "kv_len": kv_len,
                "d": heads * head_dim,
                "q_blocks": plan.m / t.tile_m,
                "kv_blocks": plan.n / t.tile_n,
                "heads_per_col": heads / t.columns,
                "q_blocks_per_row": plan.m / t.tile_m / t.rows,
                // 1/sqrt(head_dim) * log2(e): scores are exponentiated with exp2.
                "scale": format!("{:.9e}", std::f64::consts::LOG2_E / (head_dim as f64).sqrt()),
                "q_dims": [[t.tile_m / mm_m, mm_m * head_dim], [head_dim / mm_k, mm_k], [mm_m, head_dim], [mm_k, 1]],
                "kv_elems": 2 * t.tile_n * head_dim,
                "args": seq_args(&[
                    ("q", plan.m * heads * head_dim, "bf16"),
                    // Every K/V block, then the parameter object (one more K/V element).
                    ("kv", (heads * (plan.n / t.tile_n) + 1) * 2 * t.tile_n * head_dim, "bf16"),
                    ("o", plan.m * heads * head_dim, "bf16"),
                ]),
                "ops": plan.sequence.as_ref().map(|q| &q.ops),
            }),
            gemm: serde_json::Value::Null,
        }
    }
}

/// Column c takes heads h = c + columns*hh, row r takes query blocks b = gq*rows + r. Per
/// (head, query group): drain O, fill Q, stream every K/V block of the head. Each column's first
/// group also sends the call's parameter object (valid keys, causal offset), one K/V element
/// stored after the blocks, ahead of the blocks: the cores read it first.
#[allow(clippy::too_many_arguments)]
fn sequence(
    heads: usize,
    head_dim: usize,
    q_len: usize,
    kv_len: usize,
    tm: usize,
    tn: usize,
    cols: usize,
    rows: usize,
) -> Sequence {
    let d = heads * head_dim;
    let kvb = kv_len / tn;
    let hpc = heads / cols;
    let qpr = q_len / tm / rows;
    let mut b = Builder::new();
    for hh in 0..hpc {
        for gq in 0..qpr {
            for c in 0..cols {
                let h = c + cols * hh;
                let row0 = gq * rows * tm;
                b.start_column();
                b.memcpy(
                    "o",
                    row0 * d + h * head_dim,
                    [1, 1, rows * tm, head_dim],
                    [0, 0, d, 1],
                    format!("O_out_{c}"),
                    true,
                );
                b.memcpy(
                    "q",
                    row0 * d + h * head_dim,
                    [1, 1, rows * tm, head_dim],
                    [0, 0, d, 1],
                    format!("Q_in_{c}"),
                    false,
                );
                let kv_elems = 2 * tn * head_dim;
                if hh == 0 && gq == 0 {
                    b.memcpy(
                        "kv",
                        heads * kvb * kv_elems,
                        [1, 1, 1, kv_elems],
                        [0, 0, 0, 1],
                        format!("KV_in_{c}"),
                        false,
                    );
                }
                b.memcpy(
                    "kv",
                    h * kvb * kv_elems,
                    [1, 1, 1, kvb * kv_elems],
                    [0, 0, 0, 1],
                    format!("KV_in_{c}"),
                    false,
                );
            }
            for c in 0..cols {
                b.wait(format!("O_out_{c}"));
            }
        }
    }
    b.finish()
}
