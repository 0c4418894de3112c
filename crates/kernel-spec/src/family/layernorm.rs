//! layernorm: row-wise LayerNorm of a `rows x dim` block with affine gamma/beta. Row blocks split
//! over all cores; gamma/beta (f32) are broadcast once per call; statistics in f32.

use std::path::Path;

use serde_json::json;

use super::{wrong_op, Context, FamilyDef};
use crate::check::{CheckError, CheckKind};
use crate::plan::{Buffer, Ctx, Plan};
use crate::render::{mlir_ty, seq_args};
use crate::seq::{Builder, Sequence};
use crate::spec::entry;
use crate::{Dtype, Family, KernelSpec, Op, SpecError};

entry!(Entry {
    rows: usize,
    dim: usize,
    eps: f64,
} => |e| Op::LayerNorm {
    rows: e.rows,
    dim: e.dim,
    eps: e.eps,
});

pub(super) struct LayerNorm;

impl FamilyDef for LayerNorm {
    fn parse(&self, file: &Path, text: &str) -> Result<Vec<KernelSpec>, SpecError> {
        crate::spec::parse_as::<Entry>(Family::LayerNorm, file, text)
    }

    // mean, variance, scale: a few vector ops per element, counted as 4 MAC-equivalents.
    fn macs(&self, op: &Op) -> f64 {
        let Op::LayerNorm { rows, dim, .. } = *op else {
            wrong_op("layernorm", op)
        };
        4.0 * (rows * dim) as f64
    }

    fn rows(&self, op: &Op) -> usize {
        let Op::LayerNorm { rows, .. } = *op else {
            wrong_op("layernorm", op)
        };
        rows
    }

    fn needs_exp(&self, _op: &Op) -> bool {
        false
    }

    fn core_memory_fix(&self) -> &'static str {
        "lower tile_m"
    }

    fn plan(&self, cx: &Ctx<'_>) -> Result<Plan, CheckError> {
        let s = cx.spec;
        let t = &s.tiling;
        let Op::LayerNorm { rows, dim, eps } = s.op else {
            wrong_op("layernorm", &s.op)
        };
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
            sequence: Some(sequence(r2, dim, tm, t.columns, rows_used)),
        })
    }

    fn arg_bytes(&self, spec: &KernelSpec, _plan: &Plan, arg: &str) -> usize {
        if arg == "params" {
            4
        } else {
            spec.dtype.bytes()
        }
    }

    fn context(&self, spec: &KernelSpec, plan: &Plan) -> Context {
        let Op::LayerNorm { rows, dim, eps } = spec.op else {
            wrong_op("layernorm", &spec.op)
        };
        let t = &spec.tiling;
        Context {
            f: json!({
                "rows_orig": rows, "dim": dim, "eps": format!("{eps:e}"),
                "blocks": plan.m / t.tile_m,
                "blocks_per_core": plan.tiles_per_core,
                "args": seq_args(&[
                    ("x", plan.m * dim, mlir_ty(spec.dtype)),
                    ("params", 2 * dim, "f32"),
                    ("y", plan.m * dim, mlir_ty(spec.dtype)),
                ]),
                "ops": plan.sequence.as_ref().map(|q| &q.ops),
            }),
            gemm: serde_json::Value::Null,
        }
    }
}

/// Block b (tm rows) goes to core (c, r) with b = (g*columns + c)*rows + r.
fn sequence(rows_total: usize, dim: usize, tm: usize, cols: usize, rows: usize) -> Sequence {
    let groups = rows_total / tm / (cols * rows);
    let mut b = Builder::new();
    let per = rows * tm;
    let mut first = 0;
    while first < groups {
        let len = (groups - first).min(64);
        for c in 0..cols {
            b.start_column();
            let off = ((first * cols + c) * per) * dim;
            let stride = cols * per * dim;
            b.memcpy(
                "y",
                off,
                [len, 1, per, dim],
                [stride, 0, dim, 1],
                format!("Y_out_{c}"),
                true,
            );
            if first == 0 {
                // gamma and beta once per call; the cores keep them for all their blocks.
                b.memcpy(
                    "params",
                    0,
                    [1, 1, 1, 2 * dim],
                    [0, 0, 0, 1],
                    format!("P_in_{c}"),
                    false,
                );
            }
            b.memcpy(
                "x",
                off,
                [len, 1, per, dim],
                [stride, 0, dim, 1],
                format!("X_in_{c}"),
                false,
            );
        }
        for c in 0..cols {
            b.wait(format!("Y_out_{c}"));
        }
        first += len;
    }
    b.finish()
}
