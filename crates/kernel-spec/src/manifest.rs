//! The JSON manifest (`generated/manifest.json`) written by kernel-build and read by the runtime.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{Device, Dtype, Family, KernelSpec, Op, ResourceUse};

/// 2: entries carry the whole spec (`spec`), which the emulator and the NPU backend need.
pub const MANIFEST_VERSION: u32 = 2;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub version: u32,
    /// e.g. `kernel-build 0.1.0`.
    pub generator: String,
    pub kernels: Vec<ManifestEntry>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManifestEntry {
    pub name: String,
    pub family: Family,
    pub device: Device,
    pub dtype: Dtype,
    /// The family-specific shape, as in the spec (`{"family": "matmul", "m": .., ..}`).
    pub op: Op,
    /// sha256 hex of everything that determines the artifacts.
    pub hash: String,
    pub status: Status,
    /// Artifact directory, relative to the workspace root (`generated/<name>/<hash>`).
    pub dir: PathBuf,
    pub artifacts: Artifacts,
    pub resources: ResourceUse,
    pub estimate_us: f64,
    /// The dataflow emulator's event-level estimate of one invocation (an estimate from a
    /// model, not a measurement); `None` in directories built before it existed.
    #[serde(default)]
    pub emulated: Option<Emulated>,
    /// The whole spec entry (tiling, padding, file of origin): what the runtime needs to lay
    /// out the design's host buffers and what the emulator reads with the design.
    pub spec: KernelSpec,
}

/// What one emulated invocation of the design measured (see `aie-emu`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Emulated {
    /// Estimated NPU time of one invocation: core functions at their cycle counts, DMAs at
    /// channel bandwidth, overlapped as the object FIFOs allow.
    pub estimate_us: f64,
    pub core_calls: u64,
    pub host_bytes: u64,
    /// Most transfers outstanding on one shim channel at once (the device's queue holds 4).
    pub max_queued_tasks: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// xclbin and instruction stream built by aiecc/Peano.
    Compiled,
    /// Design and kernel sources rendered and checked, not compiled.
    Emitted,
}

/// Artifact file names inside `dir`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Artifacts {
    pub design: String,
    pub kernels: Vec<String>,
    pub xclbin: Option<String>,
    pub insts: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("{}: cannot read the kernel manifest: {source}; run `cargo xtask build-kernels` (or `--emit-only`) first", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: not a valid kernel manifest: {source}; rebuild it with `cargo xtask build-kernels`", path.display())]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{}: manifest version {found}, this build reads version {MANIFEST_VERSION}; rebuild it with `cargo xtask build-kernels`", path.display())]
    Version { path: PathBuf, found: u32 },
}

impl Manifest {
    pub fn new(generator: impl Into<String>) -> Manifest {
        Manifest {
            version: MANIFEST_VERSION,
            generator: generator.into(),
            kernels: Vec::new(),
        }
    }

    pub fn load(path: &Path) -> Result<Manifest, ManifestError> {
        let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Manifest::from_json(path, &text)
    }

    /// Parses manifest text; `path` only names it in errors.
    pub fn from_json(path: &Path, text: &str) -> Result<Manifest, ManifestError> {
        let json = |source| ManifestError::Json {
            path: path.to_path_buf(),
            source,
        };
        // The version first: an older manifest lacks fields, and "rebuild it" says more than
        // the name of the first missing field.
        #[derive(Deserialize)]
        struct Version {
            version: u32,
        }
        let v: Version = serde_json::from_str(text).map_err(json)?;
        if v.version != MANIFEST_VERSION {
            return Err(ManifestError::Version {
                path: path.to_path_buf(),
                found: v.version,
            });
        }
        serde_json::from_str(text).map_err(json)
    }

    /// Pretty JSON with a trailing newline (kernel-build writes it atomically).
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("manifest serialises");
        s.push('\n');
        s
    }

    pub fn get(&self, name: &str) -> Option<&ManifestEntry> {
        self.kernels.iter().find(|k| k.name == name)
    }
}
