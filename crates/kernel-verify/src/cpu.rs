//! The runtime on the inputs of a case: its CPU backend in `Numerics::Npu`, or its emulator
//! backend running the entry's rendered design (with the host packing the XRT backend uses).

use std::path::PathBuf;

use kernel_spec::manifest::{Artifacts, Manifest, ManifestEntry, Status};
use kernel_spec::{KernelSpec, ResourceUse};
use npu_runtime::{BackendKind, Numerics, Runtime, RuntimeConfig};

use crate::family;
use crate::inputs::Case;

/// What computes the entry's operation.
#[derive(Debug, Clone)]
pub enum Backend {
    /// The CPU backend with these numerics.
    Cpu(Numerics),
    /// The entry's design rendered from `templates`, run in the dataflow emulator; nothing
    /// falls back to the CPU.
    Emu { templates: PathBuf },
}

/// Runs the entry's operation on the CPU backend with NPU numerics.
pub fn run(spec: &KernelSpec, case: &Case) -> Result<Vec<f32>, String> {
    run_on(spec, case, &Backend::Cpu(Numerics::Npu))
}

/// [`run`] with the given numerics (`Numerics::F32` is a deliberately wrong kernel for bf16 and
/// int8 entries: it skips every rounding).
pub fn run_with_numerics(
    spec: &KernelSpec,
    case: &Case,
    numerics: Numerics,
) -> Result<Vec<f32>, String> {
    run_on(spec, case, &Backend::Cpu(numerics))
}

/// Runs the entry's operation through the runtime on `backend`.
///
/// The runtime takes a kernel's dtype (bf16 / int8 and its quantisation) and, for the
/// emulator, its design from the matching manifest entry, so a one-entry manifest for `spec`
/// (and its rendered design) is written to a temporary directory and handed to the runtime.
pub fn run_on(spec: &KernelSpec, case: &Case, backend: &Backend) -> Result<Vec<f32>, String> {
    let dir = tempfile::tempdir().map_err(|e| format!("temporary directory: {e}"))?;
    let manifest_path = dir.path().join("manifest.json");
    let mut artifacts = Artifacts::default();
    if let Backend::Emu { templates } = backend {
        let rendered = kernel_spec::render(spec, templates).map_err(|e| e.to_string())?;
        for (name, text) in &rendered.files {
            let path = dir.path().join(name);
            std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
        }
        artifacts.design = "design.mlir".to_string();
    }
    let mut manifest = Manifest::new(concat!("kernel-verify ", env!("CARGO_PKG_VERSION")));
    manifest.kernels.push(ManifestEntry {
        name: spec.name.clone(),
        family: spec.family,
        device: spec.device,
        dtype: spec.dtype,
        op: spec.op.clone(),
        hash: String::new(),
        status: Status::Emitted,
        dir: dir.path().to_path_buf(),
        artifacts,
        resources: ResourceUse::default(),
        estimate_us: 0.0,
        emulated: None,
        spec: spec.clone(),
    });
    std::fs::write(&manifest_path, manifest.to_json())
        .map_err(|e| format!("{}: {e}", manifest_path.display()))?;

    let (kind, numerics) = match backend {
        Backend::Cpu(n) => (BackendKind::Cpu, *n),
        Backend::Emu { .. } => (BackendKind::Emu, Numerics::Npu),
    };
    let rt = Runtime::new(RuntimeConfig {
        backend: kind,
        numerics,
        manifest: Some(manifest_path),
        allow_cpu_fallback: kind == BackendKind::Cpu,
        device: Some(spec.device),
        prefer_dtype: spec.dtype,
        ..RuntimeConfig::default()
    })
    .map_err(|e| format!("runtime: {e}"))?;

    let mut out = vec![0.0f32; case.output_len()];
    family::of(spec)
        .run(&rt, spec, case, &mut out)
        .map_err(|e| format!("{} backend: {e}", rt.backend_name()))?;
    Ok(out)
}
