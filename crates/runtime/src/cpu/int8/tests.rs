//! Exactness of every instruction set against an independent integer reference, and accuracy
//! against f32.

use super::isa::Isa;
use super::pack::Int8Weights;
use super::{ffn, lm_head_subset, matmul};
use crate::cpu::matmul::Epi;

/// Deterministic values in [-0.5, 0.5) (xorshift).
fn values(seed: u64, len: usize) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        })
        .collect()
}

/// Values with the awkward cases: a zero row, a row with one outlier, exact extremes.
fn awkward(seed: u64, rows: usize, k: usize) -> Vec<f32> {
    let mut x = values(seed, rows * k);
    if rows > 2 && k > 0 {
        x[k..2 * k].fill(0.0);
        x[2 * k + k / 2] = 300.0;
    }
    if rows > 3 && k > 1 {
        x[3 * k] = -1.0;
        x[3 * k + 1] = 1.0;
    }
    x
}

fn plain() -> Epi<'static> {
    Epi {
        bias: None,
        gelu: false,
        residual: None,
        round_residual: false,
        round_out: false,
    }
}

/// Symmetric quantisation as specified, computed directly from the values.
fn quantize_ref(v: &[f32]) -> (Vec<i32>, f32) {
    let max = v.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    if max == 0.0 {
        return (vec![0; v.len()], 0.0);
    }
    let q = v
        .iter()
        .map(|&x| ((x * (127.0 / max)).round_ties_even() as i32).clamp(-127, 127))
        .collect();
    (q, max / 127.0)
}

/// The int8 product from first principles: exact integer dots, dequantised as the kernels do.
fn reference(x: &[f32], rows: usize, k: usize, w: &[f32], n: usize) -> Vec<f32> {
    let wq: Vec<_> = (0..n)
        .map(|c| quantize_ref(&w[c * k..(c + 1) * k]))
        .collect();
    let mut out = vec![0.0; rows * n];
    for r in 0..rows {
        let (xq, sx) = quantize_ref(&x[r * k..(r + 1) * k]);
        for (c, (q, sw)) in wq.iter().enumerate() {
            let dot: i32 = xq.iter().zip(q).map(|(a, b)| a * b).sum();
            out[r * n + c] = dot as f32 * (sx * sw);
        }
    }
    out
}

fn run(isa: Isa, x: &[f32], rows: usize, w: &Int8Weights) -> Vec<f32> {
    let mut out = vec![f32::NAN; rows * w.n];
    matmul(isa, x, rows, w, &plain(), &mut out);
    out
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|f| f.to_bits()).collect()
}

#[test]
fn every_isa_matches_the_integer_reference_exactly() {
    let isas = Isa::all_available();
    assert!(isas.contains(&Isa::Scalar));
    for &k in &[1usize, 3, 4, 5, 17, 64, 100, 259] {
        for &n in &[1usize, 15, 16, 17, 33, 48, 100] {
            let w = values(k as u64 * 31 + n as u64, n * k);
            let packed = Int8Weights::quantize(&w, k, n);
            for rows in (1..=16).chain([37]) {
                let x = awkward(rows as u64 + 7, rows, k);
                let want = bits(&reference(&x, rows, k, &w, n));
                for &isa in &isas {
                    let got = bits(&run(isa, &x, rows, &packed));
                    assert_eq!(got, want, "{isa:?} k={k} n={n} rows={rows}");
                }
            }
        }
    }
}

#[test]
fn encoder_shape_is_identical_on_every_isa() {
    let (rows, k, n) = (1500, 384, 80);
    let w = awkward(5, n, k);
    let x = awkward(6, rows, k);
    let packed = Int8Weights::quantize(&w, k, n);
    let want = bits(&reference(&x, rows, k, &w, n));
    for isa in Isa::all_available() {
        assert_eq!(bits(&run(isa, &x, rows, &packed)), want, "{isa:?}");
    }
}

#[test]
fn quantisation_edge_cases() {
    // A zero channel and a zero activation row give exact zeros; an outlier keeps its value.
    let (k, n) = (6, 3);
    let mut w = vec![0.0; n * k];
    w[k..2 * k].copy_from_slice(&[1.0, -2.0, 0.5, 0.0, 2.0, -0.25]);
    w[2 * k + 3] = 1000.0;
    let packed = Int8Weights::quantize(&w, k, n);
    assert_eq!(packed.scales[0], 0.0);
    assert_eq!(packed.scales[1], 2.0 / 127.0);
    assert_eq!(packed.offset_sums[1], 128 * (64 - 127 + 32 + 127 - 16));
    let x = [vec![0.0; k], vec![0.0, 0.0, 0.0, 1.0, 0.0, 0.0]].concat();
    for isa in Isa::all_available() {
        let out = run(isa, &x, 2, &packed);
        assert_eq!(&out[..n], &[0.0; 3], "{isa:?}: zero row");
        assert_eq!(out[n], 0.0);
        assert_eq!(out[n + 2], 1000.0, "{isa:?}: outlier channel");
    }
}

/// Relative Frobenius error of int8 against f64 products.
fn rel_error(x: &[f32], rows: usize, k: usize, w: &[f32], n: usize, got: &[f32]) -> f64 {
    let (mut err, mut norm) = (0.0f64, 0.0f64);
    for r in 0..rows {
        for c in 0..n {
            let want: f64 = (0..k)
                .map(|i| x[r * k + i] as f64 * w[c * k + i] as f64)
                .sum();
            err += (got[r * n + c] as f64 - want).powi(2);
            norm += want * want;
        }
    }
    (err / norm).sqrt()
}

#[test]
fn accuracy_against_f32_on_gaussian_like_data() {
    // Sums of uniforms: roughly normal weights and activations, as in trained layers.
    let normal = |seed: u64, len| -> Vec<f32> {
        let u: Vec<_> = (0..4u64).map(|i| values(seed * 4 + i, len)).collect();
        (0..len)
            .map(|j| u.iter().map(|v| v[j]).sum::<f32>())
            .collect()
    };
    let (rows, k, n) = (24, 512, 160);
    let (x, w) = (normal(1, rows * k), normal(2, n * k));
    let out = run(Isa::best(), &x, rows, &Int8Weights::quantize(&w, k, n));
    let e = rel_error(&x, rows, k, &w, n, &out);
    // Per-element rounding noise of both operands: about 1.2 % at this spread.
    assert!(e < 0.02, "relative error {e}");
}

#[test]
fn ffn_fused_blocks_match_two_matmuls_and_subset_matches_full() {
    let (d, dff) = (40, 72);
    let (w1, w2) = (values(1, dff * d), values(2, d * dff));
    let (b1, b2) = (values(3, dff), values(4, d));
    let (p1, p2) = (
        Int8Weights::quantize(&w1, d, dff),
        Int8Weights::quantize(&w2, dff, d),
    );
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    for rows in [3usize, 200] {
        let x = values(5, rows * d);
        let res = values(6, rows * d);
        for isa in Isa::all_available() {
            let mut fused = vec![0.0; rows * d];
            pool.install(|| {
                ffn(
                    isa,
                    &x,
                    rows,
                    (&p1, Some(&b1)),
                    (&p2, Some(&b2)),
                    &res,
                    &mut fused,
                )
            });
            let mut h = vec![0.0; rows * dff];
            let epi1 = Epi {
                bias: Some(&b1),
                gelu: true,
                ..plain()
            };
            matmul(isa, &x, rows, &p1, &epi1, &mut h);
            let mut two = vec![0.0; rows * d];
            let epi2 = Epi {
                bias: Some(&b2),
                residual: Some(&res),
                ..plain()
            };
            matmul(isa, &h, rows, &p2, &epi2, &mut two);
            assert_eq!(bits(&fused), bits(&two), "{isa:?} rows={rows}");
        }
        let mut full = vec![0.0; rows * dff];
        matmul(
            Isa::best(),
            &x,
            rows,
            &p1,
            &Epi {
                bias: Some(&b1),
                ..plain()
            },
            &mut full,
        );
        let ids = [5u32, 0, 71, 16, 5];
        let mut sub = vec![0.0; rows * ids.len()];
        lm_head_subset(&x, rows, &p1, Some(&b1), &ids, &mut sub);
        for r in 0..rows {
            for (i, &c) in ids.iter().enumerate() {
                assert_eq!(
                    sub[r * ids.len() + i].to_bits(),
                    full[r * dff + c as usize].to_bits()
                );
            }
        }
    }
}
