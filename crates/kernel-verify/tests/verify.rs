//! The verifier on small entries of every family: the runtime's CPU backend passes, and
//! deliberately wrong kernels fail.

use std::path::Path;

use kernel_spec::KernelSpec;
use kernel_verify::{cpu, Case, Verifier, DEFAULT_SEED};
use npu_runtime::numerics::{fake_quant_inplace, int8_scale, quantize_i8, round_bf16};
use npu_runtime::Numerics;

/// Small entries, one TOML file per family (parsed by kernel-spec like the real ones).
const SPECS: &[(&str, &str)] = &[
    (
        "matmul.toml",
        r#"
[[kernel]]
name = "t_mm_epilogue"
device = "npu1"
dtype = "bf16"
m = 48
k = 512
n = 96
bias = true
gelu = true
residual = true
tiling = { tile_m = 16, tile_k = 32, tile_n = 32, columns = 1, rows = 1 }

[[kernel]]
name = "t_mm_int8_pc"
device = "npu2"
dtype = "int8"
m = 32
k = 256
n = 64
bias = true
quant = { weight_scale = "per_channel", requantize_output = true }
tiling = { tile_m = 16, tile_k = 64, tile_n = 32, columns = 1, rows = 1 }

[[kernel]]
name = "t_mm_int8_pt"
device = "npu1"
dtype = "int8"
m = 32
k = 256
n = 64
gelu = true
residual = true
quant = { weight_scale = "per_tensor", requantize_output = false }
tiling = { tile_m = 16, tile_k = 64, tile_n = 32, columns = 1, rows = 1 }

[[kernel]]
name = "t_mm_split"
device = "npu1"
dtype = "bf16"
m = 48
k = 512
n = 96
bias = true
residual = true
split_weights = true
tiling = { tile_m = 16, tile_k = 32, tile_n = 32, columns = 1, rows = 1 }
"#,
    ),
    (
        "attention.toml",
        r#"
[[kernel]]
name = "t_attn_enc"
device = "npu1"
dtype = "bf16"
kind = "encoder"
heads = 2
head_dim = 64
q_len = 40
kv_len = 40
tiling = { tile_m = 8, tile_n = 8, columns = 1, rows = 1 }

[[kernel]]
name = "t_attn_causal"
device = "npu1"
dtype = "bf16"
kind = "causal_self"
heads = 2
head_dim = 64
q_len = 5
kv_len = 24
tiling = { tile_m = 8, tile_n = 8, columns = 1, rows = 1, pad_m_to = 8 }
"#,
    ),
    (
        "ffn.toml",
        r#"
[[kernel]]
name = "t_ffn"
device = "npu2"
dtype = "bf16"
rows = 24
d_model = 128
d_ff = 512
tiling = { tile_m = 8, tile_k = 64, tile_n = 64, columns = 1, rows = 1 }

[[kernel]]
name = "t_ffn_split"
device = "npu1"
dtype = "bf16"
rows = 24
d_model = 128
d_ff = 512
split_weights = true
tiling = { tile_m = 8, tile_k = 64, tile_n = 64, columns = 1, rows = 1 }
"#,
    ),
    (
        "layernorm.toml",
        r#"
[[kernel]]
name = "t_ln_bf16"
device = "npu1"
dtype = "bf16"
rows = 24
dim = 512
eps = 1e-5
tiling = { tile_m = 8, columns = 1, rows = 1 }

[[kernel]]
name = "t_ln_f32"
device = "npu1"
dtype = "f32"
rows = 24
dim = 512
eps = 1e-5
tiling = { tile_m = 4, columns = 1, rows = 1 }
"#,
    ),
    (
        "lm_head.toml",
        r#"
[[kernel]]
name = "t_lm_full"
device = "npu1"
dtype = "bf16"
rows = 3
d_model = 128
vocab = 1000
tiling = { tile_m = 64, tile_k = 64, tile_n = 8, columns = 1, rows = 1, pad_m_to = 1024, pad_n_to = 8 }

[[kernel]]
name = "t_lm_top"
device = "npu1"
dtype = "bf16"
rows = 3
d_model = 128
vocab = 1000
top_k = 77
tiling = { tile_m = 64, tile_k = 64, tile_n = 8, columns = 1, rows = 1, pad_m_to = 128, pad_n_to = 8 }

[[kernel]]
name = "t_lm_split"
device = "npu2"
dtype = "bf16"
rows = 3
d_model = 128
vocab = 1000
split_weights = true
tiling = { tile_m = 64, tile_k = 64, tile_n = 8, columns = 1, rows = 1, pad_m_to = 1024, pad_n_to = 8 }
"#,
    ),
];

fn specs() -> Vec<KernelSpec> {
    SPECS
        .iter()
        .flat_map(|(file, text)| {
            kernel_spec::parse_file(Path::new(file), text).unwrap_or_else(|e| panic!("{e}"))
        })
        .collect()
}

fn spec(name: &str) -> KernelSpec {
    specs()
        .into_iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no test spec {name}"))
}

#[test]
fn cpu_backend_passes_every_family() {
    let mut v = Verifier::new(DEFAULT_SEED);
    let bf16: Vec<KernelSpec> = specs()
        .into_iter()
        .filter(|s| s.dtype == kernel_spec::Dtype::Bf16)
        .collect();
    assert!(bf16.len() >= 5);
    for s in &bf16 {
        let r = v.verify(s).unwrap_or_else(|e| panic!("{e}"));
        assert!(r.passed(), "{}: {:?}", s.name, r.comparison);
    }
}

/// int8 and f32 entries through the runtime (which takes the dtype from the entry's manifest).
#[test]
fn cpu_backend_passes_int8_and_f32_entries() {
    let mut v = Verifier::new(DEFAULT_SEED);
    for name in ["t_mm_int8_pc", "t_mm_int8_pt", "t_ln_f32"] {
        let r = v.verify(&spec(name)).unwrap_or_else(|e| panic!("{e}"));
        assert!(r.passed(), "{name}: {:?}", r.comparison);
    }
}

/// The int8 reference against a plain scalar implementation of the int8 rules (independent of
/// the runtime's dispatch): quantise, exact integer dot products, dequantise, epilogue,
/// requantise.
#[test]
fn int8_reference_matches_scalar_rules() {
    let mut v = Verifier::new(DEFAULT_SEED);
    for name in ["t_mm_int8_pc", "t_mm_int8_pt"] {
        let s = spec(name);
        let kernel_spec::Op::Matmul {
            m,
            k,
            n,
            gelu,
            quant: Some(q),
            ..
        } = s.op
        else {
            unreachable!()
        };
        let scalar = |case: &Case| -> Result<Vec<f32>, String> {
            let x = case.input("x").as_f32();
            let w = case.input("w").as_f32();
            let b = case.try_input("b").map(|t| t.as_f32());
            let r = case.try_input("r").map(|t| t.as_f32());
            let sx = int8_scale(x);
            let sw: Vec<f32> = match q.weight_scale {
                kernel_spec::WeightScale::PerTensor => vec![int8_scale(w); n],
                kernel_spec::WeightScale::PerChannel => w.chunks(k).map(int8_scale).collect(),
            };
            let mut y = vec![0.0f32; m * n];
            for i in 0..m {
                for j in 0..n {
                    let acc: i32 = (0..k)
                        .map(|t| {
                            quantize_i8(x[i * k + t], sx) as i32
                                * quantize_i8(w[j * k + t], sw[j]) as i32
                        })
                        .sum();
                    let mut v = acc as f32 * (sx * sw[j]);
                    if let Some(b) = b {
                        v += b[j];
                    }
                    if gelu {
                        v = 0.5 * v * (1.0 + erf(v * std::f32::consts::FRAC_1_SQRT_2));
                    }
                    if let Some(r) = r {
                        v += r[i * n + j];
                    }
                    y[i * n + j] = v;
                }
            }
            if q.requantize_output {
                fake_quant_inplace(&mut y);
            } else {
                y.iter_mut().for_each(|v| *v = round_bf16(*v));
            }
            Ok(y)
        };
        let r = v.verify_with(&s, scalar).unwrap_or_else(|e| panic!("{e}"));
        assert!(r.passed(), "{name}: {:?}", r.comparison);
    }
}

fn erf(x: f32) -> f32 {
    extern "C" {
        fn erff(x: f32) -> f32;
    }
    // SAFETY: libm's erff is a pure function.
    unsafe { erff(x) }
}

/// One element off by 3 % of the output's range (a few steps even of a requantised int8
/// output): every family must notice.
#[test]
fn perturbed_result_fails() {
    let mut v = Verifier::new(DEFAULT_SEED);
    for s in specs() {
        let wrong = |case: &Case| {
            let mut y = cpu::run(&s, case)?;
            let i = y.len() / 3;
            let range = y.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            y[i] += 0.03 * range;
            Ok(y)
        };
        let r = v.verify_with(&s, wrong).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            !r.passed(),
            "{}: a perturbed element passed: {:?}",
            s.name,
            r.comparison
        );
        assert!(r.comparison.failures >= 1, "{}", s.name);
    }
}

/// A kernel that skips the bf16/int8 rounding (the runtime in plain f32) is caught.
#[test]
fn kernel_without_npu_rounding_fails() {
    let mut v = Verifier::new(DEFAULT_SEED);
    for name in [
        "t_mm_epilogue",
        "t_ffn",
        "t_attn_enc",
        "t_lm_full",
        "t_mm_int8_pc",
    ] {
        let s = spec(name);
        let wrong = |case: &Case| cpu::run_with_numerics(&s, case, Numerics::F32);
        let r = v.verify_with(&s, wrong).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            !r.passed(),
            "{name}: f32 numerics passed as NPU numerics: {:?}",
            r.comparison
        );
    }
}

/// Split-weight kernels computed with plainly rounded bf16 weights are caught.
#[test]
fn split_weights_rounded_as_plain_bf16_fails() {
    let mut v = Verifier::new(DEFAULT_SEED);
    for name in ["t_mm_split", "t_ffn_split", "t_lm_split"] {
        let s = spec(name);
        assert!(s.op.split_weights(), "{name}");
        let mut plain = s.clone();
        match &mut plain.op {
            kernel_spec::Op::Matmul { split_weights, .. }
            | kernel_spec::Op::Ffn { split_weights, .. }
            | kernel_spec::Op::LmHead { split_weights, .. } => *split_weights = false,
            _ => unreachable!(),
        }
        let wrong = |case: &Case| cpu::run(&plain, case);
        let r = v.verify_with(&s, wrong).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            !r.passed(),
            "{name}: plain bf16 weights passed as split weights: {:?}",
            r.comparison
        );
    }
}

/// A GELU left out of the epilogue.
#[test]
fn missing_gelu_fails() {
    let mut v = Verifier::new(DEFAULT_SEED);
    let s = spec("t_mm_epilogue");
    let mut no_gelu = s.clone();
    if let kernel_spec::Op::Matmul { gelu, .. } = &mut no_gelu.op {
        *gelu = false;
    }
    let wrong = |case: &Case| cpu::run(&no_gelu, case);
    let r = v.verify_with(&s, wrong).unwrap_or_else(|e| panic!("{e}"));
    assert!(!r.passed());
}

/// npu1 and npu2 entries of one computation share one reference run.
#[test]
fn identical_computations_share_the_reference() {
    let text = SPECS[0]
        .1
        .replace("t_mm_", "u_mm_")
        .replace("device = \"npu1\"", "device = \"npu2\"");
    let twins = kernel_spec::parse_file(Path::new("matmul.toml"), &text).unwrap();
    let mut v = Verifier::new(DEFAULT_SEED);
    let first = v.verify(&spec("t_mm_epilogue")).unwrap();
    let twin = twins.iter().find(|s| s.name == "u_mm_epilogue").unwrap();
    let second = v.verify(twin).unwrap();
    assert!(!first.reference_cached && second.reference_cached);
    assert!(first.passed() && second.passed());
}

/// Every entry of the project's own kernel-specs/ small enough for a unit test (decoder-side
/// shapes and the LM heads); `cargo xtask verify-kernels` runs all of them.
#[test]
fn project_specs_small_entries_pass() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../kernel-specs");
    let specs = kernel_spec::load_dir(&dir).unwrap_or_else(|e| panic!("{e}"));
    let small: Vec<_> = specs.iter().filter(|s| s.op.macs() <= 2e8).collect();
    assert!(!small.is_empty(), "no small entries in {}", dir.display());
    let mut v = Verifier::new(DEFAULT_SEED);
    let mut failed = Vec::new();
    for s in &small {
        match v.verify(s) {
            Ok(r) if r.passed() => {}
            Ok(r) => failed.push(format!("{}: {:?}", s.name, r.comparison.reason)),
            Err(e) => failed.push(e.to_string()),
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} failed:\n{}",
        failed.len(),
        small.len(),
        failed.join("\n")
    );
}

fn templates() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../templates")
}

/// The small entries that also pass the device checks (some exist only to test the CPU path).
fn renderable() -> Vec<KernelSpec> {
    specs()
        .into_iter()
        .filter(|s| kernel_spec::check(s).is_ok())
        .collect()
}

/// Every small entry's rendered design, run in the dataflow emulator with the runtime's host
/// packing, computes what the MLIR reference computes.
#[test]
fn emulated_designs_pass_every_family() {
    let mut v = Verifier::new(DEFAULT_SEED);
    let specs = renderable();
    let families: std::collections::HashSet<_> = specs.iter().map(|s| s.family).collect();
    assert_eq!(families.len(), 5, "an entry of every family renders");
    for s in &specs {
        let r = v
            .verify_emulated(s, &templates())
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(r.passed(), "{}: {:?}", s.name, r.comparison);
    }
}

/// A plain bf16 product with bias (no exp, no split planes) is defined exactly: the emulated
/// design matches the reference bit for bit.
#[test]
fn emulated_plain_matmul_is_bit_exact() {
    let toml = r#"
[[kernel]]
name = "t_mm_plain"
device = "npu2"
dtype = "bf16"
m = 40
k = 192
n = 64
bias = true
tiling = { tile_m = 16, tile_k = 64, tile_n = 32, columns = 2, rows = 1, pad_m_to = 48 }
"#;
    let s = kernel_spec::parse_file(Path::new("matmul.toml"), toml)
        .unwrap()
        .remove(0);
    let r = Verifier::new(DEFAULT_SEED)
        .verify_emulated(&s, &templates())
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(r.passed(), "{:?}", r.comparison);
    assert_eq!(r.comparison.exact, r.comparison.len, "{:?}", r.comparison);
}

/// A template whose runtime sequence sends every transfer from the start of its host buffer
/// (in bounds, so no static check can object) computes the wrong product, and verification
/// says so.
#[test]
fn emulated_design_with_wrong_transfer_offsets_fails() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&templates(), dir.path());
    let path = dir.path().join("common/gemm_design.mlir.jinja");
    let text = std::fs::read_to_string(&path).unwrap();
    let broken = text.replace("[0, 0, 0, {{ op.offset }}]", "[0, 0, 0, 0]");
    assert_ne!(text, broken, "the template prints transfer offsets");
    std::fs::write(&path, broken).unwrap();
    let mm = renderable()
        .into_iter()
        .find(|s| s.family == kernel_spec::Family::Matmul)
        .expect("a matmul entry renders");
    let r = Verifier::new(DEFAULT_SEED)
        .verify_emulated(&mm, dir.path())
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!r.passed(), "{:?}", r.comparison);
}

fn copy_dir(from: &Path, to: &Path) {
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&dest).unwrap();
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}
