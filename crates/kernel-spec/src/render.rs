//! Rendering of an entry into its MLIR-AIE design and AIE core kernel C++ (minijinja).
//!
//! Layout of the templates directory:
//! - `<family>/design.mlir.jinja` -> `design.mlir`
//! - `<family>/*.cc.jinja` -> `*.cc` (one object each, compiled by Peano for the core)
//! - `common/*.jinja`: macros and includes shared by families (loaded on demand).
//!
//! Every template minijinja loads goes through one loader that records its path, so `inputs`
//! lists exactly the files that influenced the output.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use minijinja::{Environment, UndefinedBehavior};
use serde_json::{json, Value};

use crate::check::{plan, Plan};
use crate::{Dtype, KernelSpec, Op};

/// The rendered files of one entry and every template file read to produce them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// (file name, contents), design first, then kernels in name order.
    pub files: Vec<(String, String)>,
    /// Every template file read, sorted (for the content hash).
    pub inputs: Vec<PathBuf>,
}

impl Rendered {
    /// The kernel C++ file names (everything but the design).
    pub fn kernel_files(&self) -> Vec<String> {
        self.files
            .iter()
            .filter(|(n, _)| n.ends_with(".cc"))
            .map(|(n, _)| n.clone())
            .collect()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error(transparent)]
    Check(#[from] crate::CheckError),
    #[error("{origin}: template directory {} is missing or unreadable: {source}; pass the project's templates/ directory", dir.display())]
    TemplateDir {
        origin: String,
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{origin}: {} has no design.mlir.jinja; every family needs one", dir.display())]
    NoDesign { origin: String, dir: PathBuf },
    #[error("{origin}: rendering {template} failed: {message}")]
    Template {
        origin: String,
        template: String,
        message: String,
    },
}

/// Renders `spec` with the templates in `templates_dir`. Deterministic: same inputs, same bytes.
pub fn render(spec: &KernelSpec, templates_dir: &Path) -> Result<Rendered, RenderError> {
    let origin = spec.origin();
    let plan = plan(spec)?;
    let family_dir = templates_dir.join(spec.family.as_str());
    let mut entries: Vec<String> = std::fs::read_dir(&family_dir)
        .map_err(|source| RenderError::TemplateDir {
            origin: origin.clone(),
            dir: family_dir.clone(),
            source,
        })?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.ends_with(".jinja"))
        .collect();
    entries.sort();
    if !entries.iter().any(|n| n == "design.mlir.jinja") {
        return Err(RenderError::NoDesign {
            origin,
            dir: family_dir,
        });
    }
    let read: Arc<Mutex<BTreeSet<PathBuf>>> = Arc::default();
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_keep_trailing_newline(true);
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    {
        let root = templates_dir.to_path_buf();
        let read = read.clone();
        env.set_loader(move |name: &str| {
            // Template names are relative paths with '/' separators; reject escapes.
            if name.split('/').any(|p| p == ".." || p.is_empty()) {
                return Ok(None);
            }
            let path = root.join(name);
            match std::fs::read_to_string(&path) {
                Ok(text) => {
                    read.lock().expect("loader lock").insert(path);
                    Ok(Some(text))
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(minijinja::Error::new(
                    minijinja::ErrorKind::InvalidOperation,
                    format!("cannot read {}: {e}", path.display()),
                )),
            }
        });
    }
    let ctx = context(spec, &plan);
    let mut files = Vec::new();
    // Design first, kernels after, each in name order.
    let order = std::iter::once("design.mlir.jinja".to_string()).chain(
        entries
            .iter()
            .filter(|n| *n != "design.mlir.jinja")
            .cloned(),
    );
    for tname in order {
        let full = format!("{}/{}", spec.family.as_str(), tname);
        let err = |e: minijinja::Error| RenderError::Template {
            origin: origin.clone(),
            template: templates_dir.join(&full).display().to_string(),
            message: format_jinja_error(&e),
        };
        let tmpl = env.get_template(&full).map_err(err)?;
        let out = tmpl.render(&ctx).map_err(err)?;
        files.push((tname.trim_end_matches(".jinja").to_string(), out));
    }
    let inputs = read.lock().expect("loader lock").iter().cloned().collect();
    Ok(Rendered { files, inputs })
}

fn format_jinja_error(e: &minijinja::Error) -> String {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(inner) = src {
        s.push_str(&format!(": {inner}"));
        src = inner.source();
    }
    s
}

/// MLIR element type of a dtype.
fn mlir_ty(d: Dtype) -> &'static str {
    match d {
        Dtype::Bf16 => "bf16",
        Dtype::Int8 => "i8",
        Dtype::F32 => "f32",
    }
}

/// C++ element type of a dtype (AIE API).
fn cc_ty(d: Dtype) -> &'static str {
    match d {
        Dtype::Bf16 => "bfloat16",
        Dtype::Int8 => "int8",
        Dtype::F32 => "float",
    }
}

/// Everything the templates see. Derived numbers are computed here, not in Jinja.
fn context(spec: &KernelSpec, plan: &Plan) -> Value {
    let lim = spec.device.limits();
    let t = &spec.tiling;
    let (mm_m, mm_k, mm_n) = lim.mmul(spec.dtype);
    let mut family = json!({});
    let mut gemm = Value::Null;
    match spec.op {
        Op::Matmul {
            bias,
            gelu,
            residual,
            quant,
            m,
            k,
            n,
            split_weights,
        } => {
            let out = match quant {
                Some(q) if q.requantize_output => Dtype::Int8,
                _ => Dtype::Bf16,
            };
            family = json!({
                "m_orig": m, "k_orig": k, "n_orig": n,
                "bias": bias, "gelu": gelu, "residual": residual,
                "quant": quant.is_some(),
                "per_channel": matches!(quant, Some(q) if q.weight_scale == crate::WeightScale::PerChannel),
                "requantize": matches!(quant, Some(q) if q.requantize_output),
                "split_weights": split_weights,
            });
            gemm = gemm_ctx(spec, plan, out);
        }
        Op::Ffn {
            rows,
            d_model,
            d_ff,
            split_weights,
        } => {
            family = json!({
                "rows_orig": rows, "d_model": d_model, "d_ff": d_ff,
                "split_weights": split_weights,
            });
            gemm = gemm_ctx(spec, plan, Dtype::Bf16);
        }
        Op::LmHead {
            rows,
            d_model,
            vocab,
            top_k,
            split_weights,
        } => {
            family = json!({
                "rows_orig": rows, "d_model": d_model, "vocab": vocab,
                "top_k": top_k, "v_orig": top_k.unwrap_or(vocab),
                "split_weights": split_weights,
            });
            gemm = gemm_ctx(spec, plan, Dtype::F32);
        }
        Op::Attention {
            kind,
            heads,
            head_dim,
            q_len,
            kv_len,
        } => {
            let kind_s = match kind {
                crate::AttentionKind::Encoder => "encoder",
                crate::AttentionKind::CausalSelf => "causal_self",
                crate::AttentionKind::Cross => "cross",
            };
            family = json!({
                "kind": kind_s, "causal": kind == crate::AttentionKind::CausalSelf,
                "heads": heads, "head_dim": head_dim, "q_len": q_len, "kv_len": kv_len,
                "d": heads * head_dim,
                "q_blocks": plan.m / t.tile_m,
                "kv_blocks": plan.n / t.tile_n,
                "heads_per_col": heads / t.columns,
                "q_blocks_per_row": plan.m / t.tile_m / t.rows,
                // 1/sqrt(head_dim) * log2(e): scores are exponentiated with exp2.
                "scale": format!("{:.9e}", std::f64::consts::LOG2_E / (head_dim as f64).sqrt()),
                // Default run-time parameters: every key valid; queries are the last q_len positions.
                "rtp_valid": kv_len,
                "rtp_offset": kv_len.saturating_sub(q_len),
                "q_dims": [[t.tile_m / mm_m, mm_m * head_dim], [head_dim / mm_k, mm_k], [mm_m, head_dim], [mm_k, 1]],
                "kv_elems": 2 * t.tile_n * head_dim,
                "args": seq_args(&[
                    ("q", plan.m * heads * head_dim, "bf16"),
                    ("kv", heads * (plan.n / t.tile_n) * 2 * t.tile_n * head_dim, "bf16"),
                    ("o", plan.m * heads * head_dim, "bf16"),
                ]),
                "ops": plan.sequence.as_ref().map(|q| &q.ops),
            });
        }
        Op::LayerNorm { rows, dim, eps } => {
            family = json!({
                "rows_orig": rows, "dim": dim, "eps": format!("{eps:e}"),
                "blocks": plan.m / t.tile_m,
                "blocks_per_core": plan.tiles_per_core,
                "args": seq_args(&[
                    ("x", plan.m * dim, mlir_ty(spec.dtype)),
                    ("params", 2 * dim, "f32"),
                    ("y", plan.m * dim, mlir_ty(spec.dtype)),
                ]),
                "ops": plan.sequence.as_ref().map(|q| &q.ops),
            });
        }
    }
    json!({
        "name": spec.name,
        "family": spec.family.as_str(),
        // Only the file name: the output must not depend on where the checkout lives.
        "file": spec.file.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default(),
        "description": spec.description,
        "device": lim.mlir_name,
        "arch": lim.arch,
        "dtype": spec.dtype.as_str(),
        "in_mlir": mlir_ty(spec.dtype),
        "in_cc": cc_ty(spec.dtype),
        "in_bytes": spec.dtype.bytes(),
        "mmul": { "m": mm_m, "k": mm_k, "n": mm_n },
        "t": {
            "m": t.tile_m, "k": t.tile_k, "n": t.tile_n,
            "cols": t.columns, "rows": t.rows, "depth": t.depth,
        },
        "M": plan.m, "K": plan.k, "N": plan.n,
        "first_core_row": lim.first_core_row,
        "tiles_per_core": plan.tiles_per_core,
        "col_ids": (0..t.columns).collect::<Vec<_>>(),
        "row_ids": (0..t.rows).collect::<Vec<_>>(),
        "f": family,
        "gemm": gemm,
        "stack_bytes": lim.stack_bytes,
        "needs_exp": crate::check::needs_exp(spec),
    })
}

/// Runtime-sequence arguments: a list (for the signature) and a name -> type map (for the ops).
fn seq_args(args: &[(&str, usize, &str)]) -> Value {
    let list: Vec<Value> = args
        .iter()
        .map(|(n, len, ty)| json!({"name": n, "len": len, "ty": format!("memref<{len}x{ty}>")}))
        .collect();
    let map: serde_json::Map<String, Value> = args
        .iter()
        .map(|(n, len, ty)| (n.to_string(), Value::String(format!("memref<{len}x{ty}>"))))
        .collect();
    json!({"list": list, "ty": map})
}

/// Types, FIFO element shapes and layout transforms of the matmul-like designs.
fn gemm_ctx(spec: &KernelSpec, plan: &Plan, out: Dtype) -> Value {
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
    let mut add = |name: &'static str, len: usize, ty: Dtype| {
        if !args.iter().any(|a| a.0 == name) {
            args.push((name, len, ty));
        }
    };
    for p in &plan.passes {
        add(p.a, p.m * p.planes_a * p.k, spec.dtype);
        let params = if p.params { p.n_blocks * tk * tn } else { 0 };
        add(p.b, p.planes_b * p.k * p.n + params, spec.dtype);
        if p.residual {
            add(p.r, p.m * p.n, spec.dtype);
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
