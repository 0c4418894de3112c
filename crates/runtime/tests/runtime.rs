//! Runtime-level behaviour: thread safety, profiling, kernel selection, backend choice.

mod common;

use std::sync::Arc;

use common::*;
use npu_runtime::kernel_spec::Op;
use npu_runtime::{
    AttentionParams, BackendKind, Device, Dtype, Epilogue, KernelEntry, Numerics, Runtime,
    RuntimeConfig,
};

/// The first few-row product on a layer builds its f16 weight copy while other callers of the
/// same layer wait, some of them on rayon's workers and some on plain threads (several
/// transcriptions sharing one model). That must finish, not starve the pool.
#[test]
fn first_decoding_calls_from_many_threads_at_once_finish() {
    let rt = Arc::new(runtime(Numerics::F32, vec![]));
    let (k, n) = (512, 4096);
    let w: Vec<f32> = values(1, n * k)
        .into_iter()
        .map(|v| half::f16::from_f32(v).to_f32())
        .collect();
    for round in 0..4 {
        let lin = Arc::new(rt.linear(w.clone(), None, k, n));
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let call = {
            let (rt, lin) = (rt.clone(), lin.clone());
            move || {
                let x = values(7, k);
                let mut out = vec![0.0; n];
                rt.matmul("t", &x, 1, &lin, Epilogue::default(), &mut out)
                    .unwrap();
                out
            }
        };
        for _ in 0..2 {
            let (call, tx) = (call.clone(), done_tx.clone());
            std::thread::spawn(move || {
                use rayon::prelude::*;
                let outs: Vec<Vec<f32>> = (0..8).into_par_iter().map(|_| call()).collect();
                let _ = tx.send(outs);
            });
        }
        for _ in 0..2 {
            let (call, tx) = (call.clone(), done_tx.clone());
            std::thread::spawn(move || {
                let _ = tx.send(vec![call()]);
            });
        }
        let mut results = Vec::new();
        for _ in 0..4 {
            let outs = done_rx
                .recv_timeout(std::time::Duration::from_secs(60))
                .unwrap_or_else(|_| panic!("round {round}: concurrent first calls hung"));
            results.extend(outs);
        }
        assert!(results.windows(2).all(|p| p[0] == p[1]));
    }
}

#[test]
fn one_runtime_serves_several_threads_at_once() {
    let rt = Arc::new(runtime(Numerics::F32, vec![]));
    let (rows, k, n) = (97, 64, 80);
    let lin = Arc::new(rt.linear(values(1, n * k), Some(values(2, n)), k, n));
    let inputs: Vec<Vec<f32>> = (0..6).map(|t| values(100 + t, rows * k)).collect();
    // Expected results computed alone, one thread at a time.
    let alone: Vec<Vec<f32>> = inputs
        .iter()
        .map(|x| {
            let mut o = vec![0.0; rows * n];
            rt.matmul(
                "t",
                x,
                rows,
                &lin,
                Epilogue {
                    gelu: true,
                    residual: None,
                },
                &mut o,
            )
            .unwrap();
            o
        })
        .collect();
    let handles: Vec<_> = inputs
        .into_iter()
        .enumerate()
        .map(|(t, x)| {
            let (rt, lin) = (Arc::clone(&rt), Arc::clone(&lin));
            std::thread::spawn(move || {
                let hd = 2 * 16;
                let p = AttentionParams {
                    heads: 2,
                    head_dim: 16,
                    q_len: 9,
                    kv_len: 40,
                    causal_offset: Some(31),
                };
                let (q, kv) = (values(t as u64, 9 * hd), values(50 + t as u64, 40 * hd));
                let mut a = vec![0.0; 9 * hd];
                let mut o = vec![0.0; rows * n];
                for _ in 0..20 {
                    rt.matmul(
                        "t",
                        &x,
                        rows,
                        &lin,
                        Epilogue {
                            gelu: true,
                            residual: None,
                        },
                        &mut o,
                    )
                    .unwrap();
                    rt.attention("a", &q, &kv, &kv, p, &mut a).unwrap();
                }
                (t, o)
            })
        })
        .collect();
    for h in handles {
        let (t, o) = h.join().unwrap();
        assert_eq!(
            o, alone[t],
            "thread {t} got a different result while sharing the runtime"
        );
    }
}

#[test]
fn profile_records_every_call() {
    let cfg = RuntimeConfig {
        backend: BackendKind::Cpu,
        profile: true,
        threads: 1,
        ..RuntimeConfig::default()
    };
    let rt = Runtime::with_kernels(cfg, vec![]).unwrap();
    let lin = rt.linear(values(1, 32 * 16), None, 16, 32);
    let mut out = vec![0.0; 4 * 32];
    for _ in 0..3 {
        rt.matmul(
            "enc.0.fc1",
            &values(2, 4 * 16),
            4,
            &lin,
            Epilogue::default(),
            &mut out,
        )
        .unwrap();
    }
    let mut ln = vec![0.0; 4 * 16];
    rt.layernorm(
        "enc.0.ln",
        &values(3, 64),
        4,
        16,
        &[1.0; 16],
        &[0.0; 16],
        1e-5,
        &mut ln,
    )
    .unwrap();
    let report = rt.profile_report();
    let fc1 = report
        .entries
        .iter()
        .find(|e| e.op == "enc.0.fc1")
        .expect("fc1 entry");
    assert_eq!((fc1.family, fc1.calls), ("matmul", 3));
    assert_eq!(fc1.flops, 3.0 * 2.0 * (4 * 16 * 32) as f64);
    let text = report.to_string();
    for needle in [
        "family / op",
        "matmul",
        "  enc.0.fc1",
        "layernorm",
        "GFLOP/s",
    ] {
        assert!(text.contains(needle), "{needle} missing in\n{text}");
    }
    rt.reset_profile();
    assert!(rt.profile_report().entries.is_empty());

    // Off by default: nothing recorded.
    let quiet = runtime(Numerics::F32, vec![]);
    quiet
        .matmul(
            "x",
            &values(2, 4 * 16),
            4,
            &lin,
            Epilogue::default(),
            &mut out,
        )
        .unwrap();
    assert!(quiet.profile_report().entries.is_empty());
}

fn bf16_entry(name: &str, dtype: Dtype, m: usize, k: usize, n: usize) -> KernelEntry {
    KernelEntry {
        name: name.into(),
        device: Device::Npu1,
        dtype,
        op: Op::Matmul {
            m,
            k,
            n,
            bias: false,
            gelu: false,
            residual: false,
            quant: None,
            split_weights: false,
        },
        compiled: None,
        spec: None,
        design: None,
        emulated_us: None,
    }
}

#[test]
fn npu_numerics_take_the_dtype_from_the_matching_entry() {
    // An f32 entry for 8x16x32 (padded rows: 5 ≤ 8 matches); other shapes default to bf16.
    let rt = runtime(
        Numerics::Npu,
        vec![bf16_entry("f32_mm", Dtype::F32, 8, 16, 32)],
    );
    let lin = rt.linear(values(1, 32 * 16), None, 16, 32);
    assert!(
        product_16x32(&rt, &lin, 5).iter().any(|&v| bf16(v) != v),
        "an f32 kernel must not round its output"
    );
    // 9 rows exceed the entry's 8: no match, bf16.
    assert!(
        product_16x32(&rt, &lin, 9).iter().all(|&v| bf16(v) == v),
        "without a matching entry the call is bf16"
    );
}

/// `rows` × 16 inputs times a 16 → 32 layer, no epilogue.
fn product_16x32(rt: &Runtime, lin: &npu_runtime::Linear, rows: usize) -> Vec<f32> {
    let x = values(2, rows * 16);
    let mut out = vec![0.0; rows * 32];
    rt.matmul("t", &x, rows, lin, Epilogue::default(), &mut out)
        .unwrap();
    out
}

#[test]
fn an_entry_with_bias_serves_a_product_without_one() {
    // Whisper's key projections have no bias; an f32 entry with a bias must still serve them
    // (the host sends zeros), so the output is not rounded to bf16.
    let mut with_bias = bf16_entry("f32_mm_bias", Dtype::F32, 8, 16, 32);
    if let Op::Matmul { bias, .. } = &mut with_bias.op {
        *bias = true;
    }
    let rt = runtime(Numerics::Npu, vec![with_bias]);
    let lin = rt.linear(values(1, 32 * 16), None, 16, 32);
    assert!(
        product_16x32(&rt, &lin, 5).iter().any(|&v| bf16(v) != v),
        "the entry with a bias must serve the bias-less call"
    );
}

#[test]
fn auto_backend_is_cpu_without_the_npu() {
    let rt = Runtime::with_kernels(RuntimeConfig::default(), vec![]).unwrap();
    // Without the feature, or without /dev/accel/accel0 and compiled kernels, Auto means CPU.
    if !cfg!(feature = "npu") || !std::path::Path::new("/dev/accel/accel0").exists() {
        assert_eq!(rt.backend_name(), "cpu");
    }
    assert_eq!(rt.numerics(), Numerics::F32);
}

#[cfg(not(feature = "npu"))]
#[test]
fn npu_backend_without_the_feature_says_how_to_get_it() {
    let cfg = RuntimeConfig {
        backend: BackendKind::Npu,
        ..RuntimeConfig::default()
    };
    let err = Runtime::with_kernels(cfg, vec![]).err().expect("must fail");
    assert!(err.to_string().contains("--features npu"), "{err}");
}

#[test]
fn manifest_errors_name_the_file() {
    let dir = std::env::temp_dir().join(format!("npu-runtime-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("manifest.json");
    std::fs::write(&path, "{ not json").unwrap();
    let cfg = RuntimeConfig {
        backend: BackendKind::Cpu,
        manifest: Some(path.clone()),
        ..RuntimeConfig::default()
    };
    let err = Runtime::new(cfg).err().expect("bad manifest must fail");
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn repository_specs_drive_npu_numerics() {
    // The checked-in kernel-specs/ have int8 and bf16 entries for 1500x512x2048; bf16 wins by
    // default. Runs from the crate directory, so kernel-specs/ is found by walking up.
    let cfg = RuntimeConfig {
        backend: BackendKind::Cpu,
        numerics: Numerics::Npu,
        ..RuntimeConfig::default()
    };
    let rt = Runtime::new(cfg).unwrap();
    if rt.kernels().is_empty() {
        eprintln!(
            "SKIP: no kernel-specs/ or generated/manifest.json above {:?}",
            std::env::current_dir()
        );
        return;
    }
    assert!(rt
        .kernels()
        .iter()
        .any(|e| matches!(e.op, Op::Matmul { .. })));
}

#[test]
fn missing_kernel_error_says_which_spec_file_to_extend() {
    let err = npu_runtime::RuntimeError::NoKernel {
        family: "matmul".into(),
        shape: "1500x512x4096".into(),
        dtype: "bf16".into(),
        device: "npu1".into(),
    };
    assert_eq!(
        err.to_string(),
        "no matmul kernel for 1500x512x4096 bf16 on npu1: add an entry to kernel-specs/matmul.toml"
    );
}

/// Without a manifest, the runtime's table is the project's kernel-specs/ as they were at
/// compile time (nothing is looked up at run time).
#[test]
fn built_in_table_is_the_spec_directory() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../kernel-specs");
    let specs = npu_runtime::kernel_spec::load_dir(&dir).unwrap();
    let rt = npu_runtime::Runtime::new(npu_runtime::RuntimeConfig {
        backend: npu_runtime::BackendKind::Cpu,
        numerics: npu_runtime::Numerics::Npu,
        ..npu_runtime::RuntimeConfig::default()
    })
    .unwrap();
    let built_in: Vec<&str> = rt.kernels().iter().map(|e| e.name.as_str()).collect();
    let on_disk: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
    assert!(built_in.len() > 10);
    assert_eq!(built_in, on_disk);
}
