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

use crate::plan::{plan, Plan};
use crate::{family, Dtype, KernelSpec};

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
pub(crate) fn mlir_ty(d: Dtype) -> &'static str {
    match d {
        Dtype::Bf16 => "bf16",
        Dtype::Int8 => "i8",
        Dtype::F32 => "f32",
    }
}

/// C++ element type of a dtype (AIE API).
pub(crate) fn cc_ty(d: Dtype) -> &'static str {
    match d {
        Dtype::Bf16 => "bfloat16",
        Dtype::Int8 => "int8",
        Dtype::F32 => "float",
    }
}

/// Everything the templates see: the keys every family shares here, the family's own under `f`
/// (and `gemm`) from its `FamilyDef::context`. Derived numbers are computed in Rust, not in Jinja.
fn context(spec: &KernelSpec, plan: &Plan) -> Value {
    let lim = spec.device.limits();
    let t = &spec.tiling;
    let (mm_m, mm_k, mm_n) = lim.mmul(spec.dtype);
    let def = family::def(spec.op.family());
    let family = def.context(spec, plan);
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
        "f": family.f,
        "gemm": family.gemm,
        "stack_bytes": lim.stack_bytes,
        "needs_exp": def.needs_exp(&spec.op),
    })
}

/// Runtime-sequence arguments: a list (for the signature) and a name -> type map (for the ops).
pub(crate) fn seq_args(args: &[(&str, usize, &str)]) -> Value {
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
