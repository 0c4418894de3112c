//! Load, check, render and hash every spec entry (the part of a build that happens every run).
//!
//! Rendering is the expensive part of an up-to-date run, so each run records, per kernel, what its
//! last render depended on (`<out>/.render-index.json`): a *pre-key* over the generator and
//! toolchain identity, the identity of the running executable (the renderer's code), the canonical
//! spec entry, the path and bytes of every template the render read, and the file listing of every
//! directory those templates are in (a new template file in a family directory adds an output).
//! When the pre-key computed now matches, the render would produce the same bytes, so the recorded
//! content hash is reused without rendering. Anything that must be written is rendered afresh.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use kernel_spec::{KernelSpec, ResourceUse};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::hash::{kernel_hash, sha256_hex, HashInputs};
use crate::BuildError;

pub const INDEX_FILE: &str = ".render-index.json";
const INDEX_VERSION: u32 = 1;

/// One spec entry, checked and hashed (and rendered, unless its hash came from the index).
pub struct Planned {
    pub spec: KernelSpec,
    pub resources: ResourceUse,
    pub estimate_us: f64,
    pub hash: String,
    /// Names of the rendered files: `design.mlir` and the core kernel sources.
    pub file_names: Vec<String>,
    /// Rendered files (name, contents); `None` when the hash came from the render index.
    pub rendered: Option<Vec<(String, String)>>,
    /// What to record in the render index for this kernel.
    pub index_entry: Option<IndexEntry>,
}

impl Planned {
    pub fn name(&self) -> &str {
        &self.spec.name
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IndexEntry {
    pub prekey: String,
    pub hash: String,
    /// Template paths relative to the templates directory.
    pub inputs: Vec<String>,
    pub files: Vec<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct RenderIndex {
    pub version: u32,
    pub renderer: String,
    pub kernels: BTreeMap<String, IndexEntry>,
}

impl RenderIndex {
    /// The index of `out`, or an empty one when it is missing, unreadable or from another renderer.
    pub fn load(out: &Path, renderer: Option<&str>) -> RenderIndex {
        let Some(renderer) = renderer else {
            return RenderIndex::default();
        };
        std::fs::read_to_string(out.join(INDEX_FILE))
            .ok()
            .and_then(|t| serde_json::from_str::<RenderIndex>(&t).ok())
            .filter(|i| i.version == INDEX_VERSION && i.renderer == renderer)
            .unwrap_or_default()
    }

    pub fn from_planned<'a>(
        renderer: &str,
        planned: impl IntoIterator<Item = &'a Planned>,
    ) -> RenderIndex {
        RenderIndex {
            version: INDEX_VERSION,
            renderer: renderer.to_string(),
            kernels: planned
                .into_iter()
                .filter_map(|p| Some((p.name().to_string(), p.index_entry.clone()?)))
                .collect(),
        }
    }
}

/// Identity of the code that renders: the running executable (path, size, modification time).
/// Any rebuild of it invalidates the render index. `None` disables the index.
pub fn renderer_identity(generator: &str) -> Option<String> {
    let exe = std::env::current_exe().ok()?;
    let meta = std::fs::metadata(&exe).ok()?;
    let mtime = meta
        .modified()
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?;
    Some(format!(
        "{generator}; {} {} {}.{:09}",
        exe.display(),
        meta.len(),
        mtime.as_secs(),
        mtime.subsec_nanos()
    ))
}

/// Reads template bytes and directory listings once per run even when many kernels share them.
#[derive(Default)]
struct SourceCache {
    bytes: Mutex<HashMap<PathBuf, Option<Arc<Vec<u8>>>>>,
    listings: Mutex<HashMap<PathBuf, Arc<String>>>,
    digests: Mutex<HashMap<PathBuf, Option<Arc<String>>>>,
}

impl SourceCache {
    fn get(&self, path: &Path) -> std::io::Result<Arc<Vec<u8>>> {
        if let Some(b) = self.bytes.lock().expect("source cache").get(path) {
            return b
                .clone()
                .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound));
        }
        let b = std::fs::read(path).ok().map(Arc::new);
        self.bytes
            .lock()
            .expect("source cache")
            .insert(path.to_path_buf(), b.clone());
        b.ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))
    }

    /// Hex sha256 of a file's bytes.
    fn digest(&self, path: &Path) -> Option<Arc<String>> {
        if let Some(d) = self.digests.lock().expect("digest cache").get(path) {
            return d.clone();
        }
        let d = self.get(path).ok().map(|b| Arc::new(sha256_hex(&b)));
        self.digests
            .lock()
            .expect("digest cache")
            .insert(path.to_path_buf(), d.clone());
        d
    }

    /// Sorted names in `dir`, newline-separated ("" when unreadable).
    fn listing(&self, dir: &Path) -> Arc<String> {
        if let Some(l) = self.listings.lock().expect("listing cache").get(dir) {
            return l.clone();
        }
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        let l = Arc::new(names.join("\n"));
        self.listings
            .lock()
            .expect("listing cache")
            .insert(dir.to_path_buf(), l.clone());
        l
    }
}

/// The name a source file enters the hash under: its path relative to the templates directory
/// (so that the same checkout at another path hashes the same), `/`-separated.
fn source_key(templates: &Path, path: &Path) -> String {
    let rel = path
        .strip_prefix(templates)
        .ok()
        .map(Path::to_path_buf)
        .or_else(|| {
            let t = std::fs::canonicalize(templates).ok()?;
            let p = std::fs::canonicalize(path).ok()?;
            p.strip_prefix(&t).ok().map(Path::to_path_buf)
        });
    match rel {
        Some(r) => r
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join("/"),
        None => path.display().to_string(),
    }
}

/// Everything one run shares while planning.
pub struct Planner<'a> {
    pub templates_dir: &'a Path,
    pub toolchain_identity: &'a str,
    pub generator: &'a str,
    /// `None`: never use or record the render index.
    pub renderer: Option<&'a str>,
    sources: SourceCache,
}

impl<'a> Planner<'a> {
    pub fn new(
        templates_dir: &'a Path,
        toolchain_identity: &'a str,
        generator: &'a str,
        renderer: Option<&'a str>,
    ) -> Planner<'a> {
        Planner {
            templates_dir,
            toolchain_identity,
            generator,
            renderer,
            sources: SourceCache::default(),
        }
    }

    /// The pre-key of `spec` given the template inputs (relative keys) of a render; `None` when an
    /// input cannot be read.
    fn prekey(&self, renderer: &str, canonical: &str, inputs: &[String]) -> Option<String> {
        let mut h = Sha256::new();
        let mut field = |tag: &str, bytes: &[u8]| {
            h.update((tag.len() as u64).to_le_bytes());
            h.update(tag.as_bytes());
            h.update((bytes.len() as u64).to_le_bytes());
            h.update(bytes);
        };
        field("renderer", renderer.as_bytes());
        field("generator", self.generator.as_bytes());
        field("toolchain", self.toolchain_identity.as_bytes());
        field("spec", canonical.as_bytes());
        let mut dirs = BTreeSet::new();
        for key in inputs {
            let path = self.templates_dir.join(key);
            let digest = self.sources.digest(&path)?;
            field("input", key.as_bytes());
            field("input-sha256", digest.as_bytes());
            if let Some(parent) = path.parent() {
                dirs.insert(parent.to_path_buf());
            }
        }
        for d in dirs {
            field("listing", self.sources.listing(&d).as_bytes());
        }
        Some(hex::encode(h.finalize()))
    }

    /// Check, then either reuse the indexed hash (when its pre-key still matches) or render.
    pub fn plan_one(&self, spec: KernelSpec, index: &RenderIndex) -> Result<Planned, Vec<String>> {
        // render() runs the same checks; check first so that each problem is reported once.
        let resources = kernel_spec::check(&spec).map_err(|e| vec![e.to_string()])?;
        if let (Some(renderer), Some(entry)) = (self.renderer, index.kernels.get(&spec.name)) {
            let canonical = kernel_spec::canonical_form(&spec);
            if self.prekey(renderer, &canonical, &entry.inputs).as_deref()
                == Some(entry.prekey.as_str())
            {
                let estimate_us = kernel_spec::estimate_us(&spec);
                return Ok(Planned {
                    spec,
                    resources,
                    estimate_us,
                    hash: entry.hash.clone(),
                    file_names: entry.files.clone(),
                    rendered: None,
                    index_entry: Some(entry.clone()),
                });
            }
        }
        self.render(spec, resources)
    }

    /// Render an entry already checked and hash it.
    pub fn render(&self, spec: KernelSpec, resources: ResourceUse) -> Result<Planned, Vec<String>> {
        let rendered =
            kernel_spec::render(&spec, self.templates_dir).map_err(|e| vec![e.to_string()])?;
        let mut errors = Vec::new();
        let mut inputs: Vec<(String, Vec<u8>)> = Vec::new();
        for p in &rendered.inputs {
            match self.sources.get(p) {
                Ok(b) => inputs.push((source_key(self.templates_dir, p), b.as_ref().clone())),
                Err(e) => errors.push(format!(
                    "{}: cannot read template {}: {e}",
                    spec.origin(),
                    p.display()
                )),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        inputs.sort();
        inputs.dedup();
        let canonical = kernel_spec::canonical_form(&spec);
        let hash = kernel_hash(&HashInputs {
            generator: self.generator,
            device: spec.device.as_str(),
            canonical_spec: &canonical,
            sources: &inputs,
            rendered: &rendered.files,
            toolchain: self.toolchain_identity,
        });
        let file_names: Vec<String> = rendered.files.iter().map(|(n, _)| n.clone()).collect();
        let input_keys: Vec<String> = inputs.iter().map(|(k, _)| k.clone()).collect();
        let index_entry = self.renderer.and_then(|r| {
            Some(IndexEntry {
                prekey: self.prekey(r, &canonical, &input_keys)?,
                hash: hash.clone(),
                inputs: input_keys,
                files: file_names.clone(),
            })
        });
        let estimate_us = kernel_spec::estimate_us(&spec);
        Ok(Planned {
            spec,
            resources,
            estimate_us,
            hash,
            file_names,
            rendered: Some(rendered.files),
            index_entry,
        })
    }

    /// Make sure `p` carries its rendered files (rendering it when its hash came from the index).
    pub fn materialize(&self, p: Planned) -> Result<Planned, Vec<String>> {
        if p.rendered.is_some() {
            return Ok(p);
        }
        self.render(p.spec, p.resources)
    }
}

/// Load every spec of `specs_dir`, check each, and hash it (from the render index or by rendering),
/// in parallel. Every problem of every entry is collected before failing.
pub fn plan(
    specs_dir: &Path,
    planner: &Planner<'_>,
    index: &RenderIndex,
) -> Result<Vec<Planned>, BuildError> {
    let specs =
        kernel_spec::load_dir(specs_dir).map_err(|e| BuildError::Spec(vec![e.to_string()]))?;
    let results: Vec<Result<Planned, Vec<String>>> = specs
        .into_par_iter()
        .map(|spec| planner.plan_one(spec, index))
        .collect();
    let mut planned = Vec::new();
    let mut errors = Vec::new();
    for r in results {
        match r {
            Ok(p) => planned.push(p),
            Err(e) => errors.extend(e),
        }
    }
    if !errors.is_empty() {
        return Err(BuildError::Spec(errors));
    }
    Ok(planned)
}
