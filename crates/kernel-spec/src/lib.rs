//! Kernel spec format, npu1/npu2 device model, resource checks, rendering and manifest types.
//!
//! See docs/architecture.md ("kernel-spec") for the contract with kernel-build, the runtime and
//! the verifier.

mod check;
mod device;
mod domain;
mod family;
pub mod manifest;
mod plan;
mod render;
mod seq;
mod spec;

use std::path::{Path, PathBuf};

pub use check::{check, check_with, estimate_us, CheckError, CheckKind, ResourceUse};
pub use device::Limits;
pub use domain::MAX_VALUE;
pub use plan::{plan, Buffer, Plan};
pub use render::{render, RenderError, Rendered};
pub use seq::{GemmPass, SeqOp, Split};
pub use spec::{
    parse_file, AttentionKind, Device, Dtype, Family, KernelSpec, Op, Quant, Tiling, WeightScale,
};

/// Errors reading specs. Every variant names the file; TOML errors carry line and column.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}:{line}:{column}: {}{message}", file.display(), entry.as_ref().map(|e| format!("entry \"{e}\": ")).unwrap_or_default())]
    Toml {
        file: PathBuf,
        line: usize,
        column: usize,
        entry: Option<String>,
        message: String,
    },
    #[error("{}: \"{stem}\" is not a kernel family; name the file after one of matmul, attention, ffn, layernorm, lm_head", file.display())]
    UnknownFamily { file: PathBuf, stem: String },
    #[error("{}: entry \"{name}\": names must match [a-z][a-z0-9_]* (they become directory and symbol names)", file.display())]
    BadName { file: PathBuf, name: String },
    #[error("{}: entry \"{name}\" is already defined in {}; names must be unique over all spec files", file.display(), first.display())]
    Duplicate {
        file: PathBuf,
        name: String,
        first: PathBuf,
    },
    #[error("{}: no *.toml kernel spec files found", dir.display())]
    Empty { dir: PathBuf },
}

/// Every entry of every `*.toml` in `dir`, ordered by file name, then entry order.
pub fn load_dir(dir: &Path) -> Result<Vec<KernelSpec>, SpecError> {
    let rd = std::fs::read_dir(dir).map_err(|source| SpecError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut files: Vec<PathBuf> = Vec::new();
    for e in rd {
        let e = e.map_err(|source| SpecError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let p = e.path();
        if p.extension().is_some_and(|x| x == "toml") && p.is_file() {
            files.push(p);
        }
    }
    files.sort();
    if files.is_empty() {
        return Err(SpecError::Empty {
            dir: dir.to_path_buf(),
        });
    }
    let mut all: Vec<KernelSpec> = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).map_err(|source| SpecError::Io {
            path: f.clone(),
            source,
        })?;
        for s in parse_file(&f, &text)? {
            if let Some(first) = all.iter().find(|o| o.name == s.name) {
                return Err(SpecError::Duplicate {
                    file: s.file.clone(),
                    name: s.name.clone(),
                    first: first.file.clone(),
                });
            }
            all.push(s);
        }
    }
    Ok(all)
}

/// A stable text of everything in the entry that determines its artifacts (for hashing):
/// JSON with sorted keys, no whitespace. The file path and position are left out, so moving an
/// entry between files does not rebuild it.
pub fn canonical_form(spec: &KernelSpec) -> String {
    let v = serde_json::json!({
        "name": spec.name,
        "family": spec.family,
        "device": spec.device,
        "dtype": spec.dtype,
        "op": spec.op,
        "tiling": spec.tiling,
        "description": spec.description,
    });
    let mut out = String::new();
    write_sorted(&v, &mut out);
    out
}

fn write_sorted(v: &serde_json::Value, out: &mut String) {
    use serde_json::Value;
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::to_string(k).expect("string serialises"));
                out.push(':');
                write_sorted(&map[k.as_str()], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, x) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_sorted(x, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}
