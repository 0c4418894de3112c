//! Plain, obviously-correct references shared by the kernel tests. Written independently of the
//! runtime: bf16 rounding and int8 quantisation are done on the bit patterns / with i64 here.
#![allow(dead_code)]

use npu_runtime::{BackendKind, KernelEntry, Numerics, Runtime, RuntimeConfig};

pub fn runtime(numerics: Numerics, kernels: Vec<KernelEntry>) -> Runtime {
    let cfg = RuntimeConfig {
        backend: BackendKind::Cpu,
        numerics,
        threads: 2,
        ..RuntimeConfig::default()
    };
    Runtime::with_kernels(cfg, kernels).expect("runtime")
}

/// bf16 round-to-nearest-even on the bit pattern, independent of the runtime and of `half`.
pub fn bf16(x: f32) -> f32 {
    let b = x.to_bits();
    if x.is_nan() {
        return f32::from_bits((b | 0x0040_0000) & 0xffff_0000);
    }
    let lower = b & 0xffff;
    let mut upper = b >> 16;
    if lower > 0x8000 || (lower == 0x8000 && upper & 1 == 1) {
        upper += 1;
    }
    f32::from_bits(upper << 16)
}

pub fn bf16_vec(v: &[f32]) -> Vec<f32> {
    v.iter().map(|&x| bf16(x)).collect()
}

/// Size of one bf16 step at |x| (for tolerances).
pub fn bf16_ulp(x: f32) -> f32 {
    let e = (x.abs().max(f32::MIN_POSITIVE).to_bits() >> 23) as i32 - 127;
    2f32.powi(e - 7)
}

pub fn int8_scale(v: &[f32]) -> f32 {
    let amax = v.iter().fold(0f32, |m, x| m.max(x.abs()));
    if amax > 0.0 {
        amax / 127.0
    } else {
        1.0
    }
}

pub fn quant(v: f32, s: f32) -> i64 {
    let q = (v / s).round_ties_even();
    q.clamp(-127.0, 127.0) as i64
}

/// out[r, j] = Σ_i x[r, i]·w[j, i] in f64.
pub fn matmul_f64(x: &[f32], rows: usize, w: &[f32], k: usize, n: usize) -> Vec<f64> {
    let mut o = vec![0.0; rows * n];
    for r in 0..rows {
        for j in 0..n {
            let mut s = 0.0f64;
            for i in 0..k {
                s += x[r * k + i] as f64 * w[j * k + i] as f64;
            }
            o[r * n + j] = s;
        }
    }
    o
}

/// Σ_i |x[r, i]·w[j, i]|: scale of the f32 accumulation error.
pub fn abs_matmul(x: &[f32], rows: usize, w: &[f32], k: usize, n: usize) -> Vec<f64> {
    let xa: Vec<f32> = x.iter().map(|v| v.abs()).collect();
    let wa: Vec<f32> = w.iter().map(|v| v.abs()).collect();
    matmul_f64(&xa, rows, &wa, k, n)
}

pub fn gelu_f64(x: f64) -> f64 {
    0.5 * x * (1.0 + libm::erf(x / std::f64::consts::SQRT_2))
}

pub fn layernorm_f64(
    x: &[f32],
    rows: usize,
    dim: usize,
    g: &[f32],
    b: &[f32],
    eps: f32,
) -> Vec<f64> {
    let mut o = vec![0.0; rows * dim];
    for r in 0..rows {
        let row = &x[r * dim..(r + 1) * dim];
        let mean = row.iter().map(|&v| v as f64).sum::<f64>() / dim as f64;
        let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / dim as f64;
        let rstd = 1.0 / (var + eps as f64).sqrt();
        for i in 0..dim {
            o[r * dim + i] = (row[i] as f64 - mean) * rstd * g[i] as f64 + b[i] as f64;
        }
    }
    o
}

/// Multi-head attention in f64; `round_p` rounds the probabilities to bf16 before P·V.
#[allow(clippy::too_many_arguments)]
pub fn attention_f64(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    heads: usize,
    d: usize,
    q_len: usize,
    kv_len: usize,
    causal: Option<usize>,
    round_p: bool,
) -> Vec<f64> {
    let hd = heads * d;
    let mut out = vec![0.0; q_len * hd];
    for h in 0..heads {
        for i in 0..q_len {
            let visible = causal.map_or(kv_len, |off| (off + i + 1).min(kv_len));
            let scores: Vec<f64> = (0..visible)
                .map(|j| {
                    (0..d)
                        .map(|t| q[i * hd + h * d + t] as f64 * k[j * hd + h * d + t] as f64)
                        .sum::<f64>()
                        / (d as f64).sqrt()
                })
                .collect();
            let mx = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = scores.iter().map(|s| (s - mx).exp()).collect();
            let sum: f64 = e.iter().sum();
            for t in 0..d {
                let mut acc = 0.0;
                for j in 0..visible {
                    let p = e[j] / sum;
                    let p = if round_p { bf16(p as f32) as f64 } else { p };
                    acc += p * v[j * hd + h * d + t] as f64;
                }
                out[i * hd + h * d + t] = acc;
            }
        }
    }
    out
}

/// Deterministic pseudo-random values in [-1, 1) from a seed (keeps proptest shrinking simple).
pub fn values(seed: u64, len: usize) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

pub fn assert_close(what: &str, got: &[f32], want: &[f64], tol: impl Fn(usize) -> f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let t = tol(i);
        assert!(
            ((*g as f64) - w).abs() <= t,
            "{what}[{i}]: got {g}, want {w} (tolerance {t:e})"
        );
    }
}
