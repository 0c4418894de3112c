//! Building `generated/manifest.json` (types from `kernel_spec::manifest`).

use std::path::{Path, PathBuf};

use kernel_spec::manifest::{Artifacts, Manifest, ManifestEntry, Status};

use crate::engine::DESIGN_FILE;
use crate::hash::generator_name;
use crate::plan::Planned;
use crate::stamp::{ArtifactStatus, Stamp};
use crate::BuildError;

pub const MANIFEST_FILE: &str = "manifest.json";

/// `dir` as the manifest records it: relative to the output directory's parent (the workspace root
/// for the default `generated/`), i.e. `<out dir name>/<name>/<hash>`.
pub fn manifest_dir(out: &Path, name: &str, hash: &str) -> PathBuf {
    let base = out
        .file_name()
        .map(PathBuf::from)
        .or_else(|| Some(PathBuf::from(std::fs::canonicalize(out).ok()?.file_name()?)))
        .unwrap_or_else(|| PathBuf::from("generated"));
    base.join(name).join(hash)
}

pub fn entry(p: &Planned, out: &Path, stamp: &Stamp) -> ManifestEntry {
    let compiled = stamp.status == ArtifactStatus::Compiled;
    let name = p.name();
    let xclbin = format!("{name}.xclbin");
    ManifestEntry {
        name: name.to_string(),
        family: p.spec.family,
        device: p.spec.device,
        dtype: p.spec.dtype,
        op: p.spec.op.clone(),
        hash: p.hash.clone(),
        status: if compiled {
            Status::Compiled
        } else {
            Status::Emitted
        },
        dir: manifest_dir(out, name, &p.hash),
        artifacts: Artifacts {
            design: DESIGN_FILE.to_string(),
            kernels: p
                .file_names
                .iter()
                .filter(|n| n.as_str() != DESIGN_FILE)
                .cloned()
                .collect(),
            xclbin: (compiled && stamp.files.contains_key(&xclbin)).then_some(xclbin),
            insts: (compiled && stamp.files.contains_key("insts.bin"))
                .then(|| "insts.bin".to_string()),
        },
        resources: p.resources.clone(),
        estimate_us: p.estimate_us,
        emulated: crate::emulate::read(&out.join(name).join(&p.hash)),
        spec: p.spec.clone(),
    }
}

pub fn to_json(entries: Vec<ManifestEntry>) -> Result<String, BuildError> {
    let mut m = Manifest::new(generator_name());
    m.kernels = entries;
    Ok(m.to_json())
}
