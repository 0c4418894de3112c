//! The runtime on the inputs of a case: its CPU backend in `Numerics::Npu`, or its emulator
//! backend running the entry's rendered design (with the host packing the XRT backend uses).

use std::path::PathBuf;

use kernel_spec::manifest::{Artifacts, Manifest, ManifestEntry, Status};
use kernel_spec::{KernelSpec, Op, ResourceUse};
use npu_runtime::{AttentionParams, BackendKind, Epilogue, Numerics, Runtime, RuntimeConfig};

use crate::inputs::{Case, Data};

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

    let f = |name: &str| case.input(name).as_f32().to_vec();
    let opt = |name: &str| case.try_input(name).map(|t| t.as_f32().to_vec());
    let mut out = vec![0.0f32; case.output_len()];
    let op = spec.name.as_str();
    let r = match spec.op {
        Op::Matmul { m, k, n, gelu, .. } => {
            let lin = rt.linear(f("w"), opt("b"), k, n);
            let res = opt("r");
            rt.matmul(
                op,
                case.input("x").as_f32(),
                m,
                &lin,
                Epilogue {
                    gelu,
                    residual: res.as_deref(),
                },
                &mut out,
            )
        }
        Op::Attention {
            heads,
            head_dim,
            q_len,
            kv_len,
            ..
        } => rt.attention(
            op,
            case.input("q").as_f32(),
            case.input("k").as_f32(),
            case.input("v").as_f32(),
            AttentionParams {
                heads,
                head_dim,
                q_len,
                kv_len,
                causal_offset: case.causal_offset,
            },
            &mut out,
        ),
        Op::Ffn {
            rows,
            d_model,
            d_ff,
            ..
        } => {
            let fc1 = rt.linear(f("w1"), Some(f("b1")), d_model, d_ff);
            let fc2 = rt.linear(f("w2"), Some(f("b2")), d_ff, d_model);
            rt.ffn(
                op,
                case.input("x").as_f32(),
                rows,
                &fc1,
                &fc2,
                case.input("r").as_f32(),
                &mut out,
            )
        }
        Op::LayerNorm { rows, dim, eps } => rt.layernorm(
            op,
            case.input("x").as_f32(),
            rows,
            dim,
            case.input("gamma").as_f32(),
            case.input("beta").as_f32(),
            eps as f32,
            &mut out,
        ),
        Op::LmHead {
            rows,
            d_model,
            vocab,
            ..
        } => {
            let emb = rt.linear(f("e"), None, d_model, vocab);
            let ids: Option<Vec<u32>> = case.try_input("ids").map(|t| match &t.data {
                Data::I32(v) => v.iter().map(|&i| i as u32).collect(),
                Data::F32(_) => unreachable!("ids are indices"),
            });
            rt.lm_head(
                op,
                case.input("x").as_f32(),
                rows,
                &emb,
                ids.as_deref(),
                &mut out,
            )
        }
    };
    r.map_err(|e| format!("{} backend: {e}", rt.backend_name()))?;
    Ok(out)
}
