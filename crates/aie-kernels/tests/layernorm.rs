//! layernorm_rows against LayerNorm in f64 on the same (bf16 or f32) inputs.
//!
//! Tolerance: bf16 output — the output rounding (2^-9 relative) plus the f32 statistics,
//! so |y - ref| <= 2^-8·|ref| + 1e-4; f32 output — the f32 statistics of a few hundred terms
//! and the model's f32 1/sqrt: |y - ref| <= (1e-5 + 1e-6·|offset|)·(|ref| + 1), where
//! rows sit around `offset` (lane sums of 16 values near 1000 round at 2^-10 per addition; a
//! one-pass E[x^2] - E[x]^2 would be off by about 15% there, far outside the tolerance).

mod common;

use aie_kernels::library_for;
use aie_kernels::numerics::bf16_to_f32;
use common::{bits, call, spec, Buf, Rng, A};

fn ln_spec(device: &str, dtype: &str, dim: usize, tm: usize, eps: &str) -> kernel_spec::KernelSpec {
    spec(
        "layernorm",
        &format!(
            "[[kernel]]\nname = \"t\"\ndevice = \"{device}\"\ndtype = \"{dtype}\"\nrows = {tm}\ndim = {dim}\neps = {eps}\n\
             tiling = {{ tile_m = {tm}, columns = 1, rows = 1 }}\n"
        ),
    )
}

fn reference(x: &[f32], g: &[f32], b: &[f32], eps: f64) -> Vec<f64> {
    let n = x.len() as f64;
    let mean = x.iter().map(|&v| v as f64).sum::<f64>() / n;
    let var = x.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
    let inv = 1.0 / (var + eps).sqrt();
    x.iter()
        .zip(g)
        .zip(b)
        .map(|((&v, &g), &b)| (v as f64 - mean) * inv * g as f64 + b as f64)
        .collect()
}

fn check(device: &str, dtype: &str, dim: usize, tm: usize, offset: f32, seed: u64) {
    let s = ln_spec(device, dtype, dim, tm, "1e-5");
    let lib = library_for(&s).unwrap();
    let mut rng = Rng::new(seed);
    let bf16 = dtype == "bf16";
    // Rows with different spreads and offsets (the two-pass variance must not cancel).
    let x: Vec<f32> = (0..tm * dim)
        .map(|i| {
            let spread = 0.1 + (i / dim) as f32;
            let v = offset + rng.uniform(-spread, spread);
            if bf16 {
                bf16_to_f32(bits(&[v])[0])
            } else {
                v
            }
        })
        .collect();
    let gb: Vec<f32> = (0..2 * dim).map(|_| rng.uniform(-2.0, 2.0)).collect();
    let (mut xb, mut yb) = if bf16 {
        (Buf::from_u16(&bits(&x)), Buf::zeroed(2 * tm * dim))
    } else {
        (Buf::from_f32(&x), Buf::zeroed(4 * tm * dim))
    };
    call(
        &lib,
        "layernorm_rows",
        vec![A::M(&mut xb), A::M(&mut Buf::from_f32(&gb)), A::M(&mut yb)],
    )
    .unwrap();
    let y: Vec<f32> = if bf16 {
        yb.u16s().iter().map(|&b| bf16_to_f32(b)).collect()
    } else {
        yb.f32s()
    };
    for r in 0..tm {
        let want = reference(&x[r * dim..(r + 1) * dim], &gb[..dim], &gb[dim..], 1e-5);
        for (c, w) in want.iter().enumerate() {
            let g = y[r * dim + c] as f64;
            let tol = if bf16 {
                w.abs() / 256.0 + 1e-4
            } else {
                (1e-5 + 1e-6 * offset.abs() as f64) * (w.abs() + 1.0)
            };
            assert!(
                (g - w).abs() <= tol,
                "{device} {dtype} row {r} col {c}: {g}, reference {w}"
            );
        }
    }
}

#[test]
fn bf16_rows_npu1_and_npu2() {
    check("npu1", "bf16", 512, 8, 0.0, 1);
    check("npu2", "bf16", 384, 4, 3.0, 2);
}

#[test]
fn f32_rows_with_a_large_offset() {
    check("npu1", "f32", 256, 4, 1000.0, 3);
    check("npu2", "f32", 64, 2, -20.0, 4);
}

#[test]
fn constant_row_gives_beta() {
    // var = 0: y = 0 * rsqrt(eps) * gamma + beta = beta exactly.
    let s = ln_spec("npu1", "f32", 32, 2, "1e-5");
    let lib = library_for(&s).unwrap();
    let mut x = Buf::from_f32(&[2.5; 64]);
    let gb: Vec<f32> = (0..64).map(|i| i as f32 * 0.25 - 3.0).collect();
    let mut y = Buf::zeroed(256);
    call(
        &lib,
        "layernorm_rows",
        vec![A::M(&mut x), A::M(&mut Buf::from_f32(&gb)), A::M(&mut y)],
    )
    .unwrap();
    let y = y.f32s();
    for r in 0..2 {
        assert_eq!(&y[r * 32..(r + 1) * 32], &gb[32..]);
    }
}
