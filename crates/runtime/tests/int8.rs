//! `ComputeType::Int8` through the runtime API: which calls run in int8, what they keep in
//! memory, and how close they stay to f32.

use npu_runtime::{BackendKind, ComputeType, Epilogue, Linear, Numerics, Runtime, RuntimeConfig};

fn runtime(compute: ComputeType, numerics: Numerics) -> Runtime {
    let cfg = RuntimeConfig {
        backend: BackendKind::Cpu,
        numerics,
        threads: 2,
        compute,
        ..RuntimeConfig::default()
    };
    Runtime::with_kernels(cfg, vec![]).expect("runtime")
}

/// Roughly normal values (sum of four uniforms), spread `scale`.
fn normal(seed: u64, len: usize, scale: f32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    (0..len)
        .map(|_| (next() + next() + next() + next()) * scale)
        .collect()
}

fn rel_error(got: &[f32], want: &[f32]) -> f64 {
    let err: f64 = got
        .iter()
        .zip(want)
        .map(|(a, b)| (*a as f64 - *b as f64).powi(2))
        .sum();
    let norm: f64 = want.iter().map(|b| (*b as f64).powi(2)).sum();
    (err / norm).sqrt()
}

struct Pair {
    f32: Runtime,
    int8: Runtime,
}

impl Pair {
    fn new() -> Pair {
        Pair {
            f32: runtime(ComputeType::F32, Numerics::F32),
            int8: runtime(ComputeType::Int8, Numerics::F32),
        }
    }

    fn linear(&self, seed: u64, k: usize, n: usize, bias: bool) -> (Linear, Linear) {
        let w = normal(seed, n * k, 0.05);
        let b = bias.then(|| normal(seed + 1, n, 0.1));
        (
            self.f32.linear(w.clone(), b.clone(), k, n),
            self.int8.linear(w, b, k, n),
        )
    }
}

#[test]
fn int8_layers_drop_the_f32_weights_only_where_int8_runs() {
    let p = Pair::new();
    assert_eq!(p.int8.compute(), ComputeType::Int8);
    let (f, q) = p.linear(1, 24, 40, true);
    assert!(f.weight().is_some() && f.int8_weights().is_none());
    assert!(q.weight().is_none());
    let q8 = q.int8_weights().expect("quantised at linear() time");
    assert_eq!((q8.in_features(), q8.out_features()), (24, 40));
    // NPU numerics round as the kernels do: the compute type does not apply.
    let npu = runtime(ComputeType::Int8, Numerics::Npu);
    assert_eq!(npu.compute(), ComputeType::F32);
    let l = npu.linear(normal(2, 24 * 40, 0.05), None, 24, 40);
    assert!(l.weight().is_some() && l.int8_weights().is_none());
}

#[test]
fn matmul_ffn_and_lm_head_stay_close_to_f32() {
    let p = Pair::new();
    let (d, dff, vocab) = (128, 512, 1000);
    let (fc1f, fc1q) = p.linear(10, d, dff, true);
    let (fc2f, fc2q) = p.linear(20, dff, d, true);
    let (embf, embq) = p.linear(30, d, vocab, false);
    for rows in [1usize, 5, 10, 300] {
        let x = normal(rows as u64, rows * d, 1.0);
        let res = normal(7, rows * d, 1.0);
        let run_mm = |rt: &Runtime, lin: &Linear| {
            let mut out = vec![0.0; rows * dff];
            let epi = Epilogue {
                gelu: true,
                residual: None,
            };
            rt.matmul("fc1", &x, rows, lin, epi, &mut out).unwrap();
            out
        };
        let e = rel_error(&run_mm(&p.int8, &fc1q), &run_mm(&p.f32, &fc1f));
        assert!(e < 0.02, "matmul rows={rows}: relative error {e}");

        let run_ffn = |rt: &Runtime, a: &Linear, b: &Linear| {
            let mut out = vec![0.0; rows * d];
            rt.ffn("ffn", &x, rows, a, b, &res, &mut out).unwrap();
            out
        };
        // Against the f32 FFN's own contribution (the residual would hide the error).
        let (fq, ff) = (
            run_ffn(&p.int8, &fc1q, &fc2q),
            run_ffn(&p.f32, &fc1f, &fc2f),
        );
        let sub = |v: Vec<f32>| -> Vec<f32> { v.iter().zip(&res).map(|(a, r)| a - r).collect() };
        let e = rel_error(&sub(fq), &sub(ff));
        assert!(e < 0.03, "ffn rows={rows}: relative error {e}");

        let run_head = |rt: &Runtime, lin: &Linear, subset: Option<&[u32]>| {
            let mut out = vec![0.0; rows * subset.map_or(vocab, <[u32]>::len)];
            rt.lm_head("head", &x, rows, lin, subset, &mut out).unwrap();
            out
        };
        let full = run_head(&p.int8, &embq, None);
        let e = rel_error(&full, &run_head(&p.f32, &embf, None));
        assert!(e < 0.02, "lm_head rows={rows}: relative error {e}");
        let ids: Vec<u32> = vec![999, 0, 17, 500, 17];
        let sub = run_head(&p.int8, &embq, Some(&ids));
        for r in 0..rows {
            for (i, &id) in ids.iter().enumerate() {
                assert_eq!(
                    sub[r * ids.len() + i].to_bits(),
                    full[r * vocab + id as usize].to_bits(),
                    "subset row {r} id {id}"
                );
            }
        }
    }
}
