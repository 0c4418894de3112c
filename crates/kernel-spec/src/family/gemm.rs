//! What the matmul-like families (matmul, ffn, lm_head) share: the plan of their passes (see
//! `seq::gemm_pass` for the mapping), the template context of `common/gemm_*.jinja`, and the
//! element sizes of their runtime-sequence arguments.

use serde_json::{json, Value};

use crate::check::{CheckError, CheckKind};
use crate::plan::{Buffer, Ctx, Plan};
use crate::render::{cc_ty, mlir_ty};
use crate::seq::{self, GemmShape, PassSpec};
use crate::{Dtype, KernelSpec};

/// Matmul-like plan of `passes` over `m` (padded) rows; `out_bytes` per C element and
/// `params_bytes` of epilogue parameters per output tile (riding in the B stream).
pub(super) fn plan(
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
        let Some(p) = seq::gemm_pass(shape, m, pass, cx.lim.shim_bds, cx.lim.shim_task_queue)
        else {
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
    if super::def(s.op.family()).needs_exp(&s.op) && cx.lim.arch == "aie2" {
        core_buffers.push(super::lut_buffer());
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

/// Element size of a runtime-sequence argument: the passes' outputs are `out`, the rest inputs.
pub(super) fn arg_bytes(spec: &KernelSpec, plan: &Plan, arg: &str, out: Dtype) -> usize {
    if plan.passes.iter().any(|p| p.c == arg) {
        out.bytes()
    } else {
        spec.dtype.bytes()
    }
}

/// Types, FIFO element shapes and layout transforms of the matmul-like designs.
pub(super) fn context(spec: &KernelSpec, plan: &Plan, out: Dtype) -> Value {
    let lim = spec.device.limits();
    let t = &spec.tiling;
    let (r, s, u) = lim.mmul(spec.dtype);
    let (tm, tk, tn) = (t.tile_m, t.tile_k, t.tile_n);
    let acc = if spec.dtype == Dtype::Int8 {
        ("i32", "int32")
    } else {
        ("f32", "float")
    };
    // Runtime-sequence arguments in order of first use; 1-D memrefs of the padded sizes.
    let mut args: Vec<(&str, usize, Dtype)> = Vec::new();
    // An argument used twice (the FFN's `h`: H, then the residual behind it) is as long as its
    // furthest use.
    let mut add =
        |name: &'static str, len: usize, ty: Dtype| match args.iter_mut().find(|a| a.0 == name) {
            Some(a) => a.1 = a.1.max(len),
            None => args.push((name, len, ty)),
        };
    for p in &plan.passes {
        add(p.a, p.m * p.planes_a * p.k, spec.dtype);
        let params = if p.params { p.n_blocks * tk * tn } else { 0 };
        add(p.b, p.planes_b * p.k * p.n + params, spec.dtype);
        if p.residual {
            add(p.r, p.r_offset + p.m * p.n, spec.dtype);
        }
        add(p.c, p.m * p.n, out);
    }
    let arg_list: Vec<Value> = args
        .iter()
        .map(|(n, len, ty)| json!({"name": n, "len": len, "ty": format!("memref<{len}x{}>", mlir_ty(*ty))}))
        .collect();
    let arg_ty: serde_json::Map<String, Value> = args
        .iter()
        .map(|(n, len, ty)| {
            (
                n.to_string(),
                Value::String(format!("memref<{len}x{}>", mlir_ty(*ty))),
            )
        })
        .collect();
    json!({
        "args": arg_list, "arg_ty": arg_ty,
        "out_mlir": mlir_ty(out), "out_cc": cc_ty(out), "out_bytes": out.bytes(),
        "acc_mlir": acc.0, "acc_cc": acc.1,
        // Row-major tiles -> aie::mmul blocks (A: r x s, B: s x t), done by the mem tile's DMA.
        "a_dims": [[tm / r, r * tk], [tk / s, s], [r, tk], [s, 1]],
        "b_dims": [[tk / s, s * tn], [tn / u, u], [s, tn], [u, 1]],
        "a_elems": tm * tk, "b_elems": tk * tn, "c_elems": tm * tn,
        "passes": plan.passes,
    })
}
