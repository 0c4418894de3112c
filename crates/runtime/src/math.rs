//! Branch-free elementwise math (exp, erf, GELU) written so that LLVM vectorises the loops, plus
//! runtime dispatch to AVX2 bodies. Nothing here uses `mul_add`: without FMA contraction the
//! results are bit-identical on every x86 path, which keeps `Numerics::Npu` reproducible.

use std::f32::consts::{FRAC_1_SQRT_2, LOG2_E};

/// Runs `$body` (a call to an `#[inline(always)]` function) inside an AVX2+FMA-enabled function
/// when the CPU has it, so that the inlined loop is vectorised with 256-bit registers.
macro_rules! simd_dispatch {
    (fn $name:ident($($arg:ident : $ty:ty),*) $(-> $ret:ty)? => $generic:ident) => {
        pub fn $name($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2($($arg: $ty),*) $(-> $ret)? {
                    $generic($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    // SAFETY: the CPU supports the features `avx2` was compiled for.
                    return unsafe { avx2($($arg),*) };
                }
            }
            $generic($($arg),*)
        }
    };
}
pub(crate) use simd_dispatch;

/// exp(x) with about 1 ulp error over the range where f32 exp is normal; inputs below -87.3 give
/// ~2^-126 (callers that need exact zeros mask explicitly).
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    let x = x.clamp(-87.3, 88.7);
    // Round x·log2(e) to the nearest integer with the 1.5·2^23 trick (vectorises, unlike round()).
    const MAGIC: f32 = 12_582_912.0;
    let t = x * LOG2_E + MAGIC;
    let n = t - MAGIC;
    // The integer n sits in t's low mantissa bits: no float→int conversion (which would not
    // vectorise as cheaply).
    let ni = t.to_bits() as i32 - MAGIC.to_bits() as i32;
    // Cody-Waite split of ln 2 keeps r exact enough.
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    let r = (x - n * LN2_HI) - n * LN2_LO;
    // Taylor series to degree 7 on |r| <= ln2/2: truncation error < 4e-9 relative.
    let mut p = 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    let scale = f32::from_bits(((ni + 127) as u32) << 23);
    p * scale
}

/// erf(x) as an odd rational function x·P(x²)/Q(x²) on [-4, 4] (|erf| rounds to 1 beyond);
/// max abs error ≈ 4.5e-7 (checked against f64 erf in the tests).
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = -2.726_142_3e-10_f32;
    p = p * x2 + 2.770_681_4e-8;
    p = p * x2 + -2.101_024e-6;
    p = p * x2 + -5.692_506_4e-5;
    p = p * x2 + -7.349_906_3e-4;
    p = p * x2 + -2.954_600_1e-3;
    p = p * x2 + -1.609_603_3e-2;
    p *= x;
    let mut q = -1.456_607_2e-5_f32;
    q = q * x2 + -2.133_740_6e-4;
    q = q * x2 + -1.682_827e-3;
    q = q * x2 + -7.373_329e-3;
    q = q * x2 + -1.426_474e-2;
    // Beyond 3.92 erf(x) rounds to ±1 in f32; the rational form would give 1 - 1 ulp there.
    if x.abs() >= 3.92 {
        1.0f32.copysign(x)
    } else {
        p / q
    }
}

/// GELU in the exact erf form used by Whisper: 0.5·x·(1 + erf(x/√2)).
#[inline(always)]
pub fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * FRAC_1_SQRT_2))
}

#[inline(always)]
fn gelu_slice_generic(xs: &mut [f32]) {
    for x in xs.iter_mut() {
        *x = gelu(*x);
    }
}
simd_dispatch!(fn gelu_inplace(xs: &mut [f32]) => gelu_slice_generic);

/// Dot product with 16 independent lanes in a fixed order (same result on every code path).
#[inline(always)]
pub fn dot_generic(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    const L: usize = 16;
    let mut acc = [0.0f32; L];
    let chunks = a.len() / L;
    for c in 0..chunks {
        let (ac, bc) = (&a[c * L..c * L + L], &b[c * L..c * L + L]);
        for i in 0..L {
            acc[i] += ac[i] * bc[i];
        }
    }
    for i in chunks * L..a.len() {
        acc[i % L] += a[i] * b[i];
    }
    // Pairwise reduction of the lanes.
    let mut w = L;
    while w > 1 {
        w /= 2;
        for i in 0..w {
            acc[i] += acc[i + w];
        }
    }
    acc[0]
}
simd_dispatch!(fn dot(a: &[f32], b: &[f32]) -> f32 => dot_generic);

/// Largest element (`-inf` for an empty slice), over 16 independent lanes.
#[inline(always)]
fn max_generic(xs: &[f32]) -> f32 {
    const L: usize = 16;
    let mut lanes = [f32::NEG_INFINITY; L];
    let chunks = xs.chunks_exact(L);
    let rest = chunks.remainder();
    for c in chunks {
        for i in 0..L {
            lanes[i] = if c[i] > lanes[i] { c[i] } else { lanes[i] };
        }
    }
    let m = rest
        .iter()
        .fold(f32::NEG_INFINITY, |m, &v| if v > m { v } else { m });
    lanes.iter().fold(m, |m, &v| if v > m { v } else { m })
}
simd_dispatch!(fn max(xs: &[f32]) -> f32 => max_generic);

/// Σ exp(x − shift), over 16 independent lanes.
#[inline(always)]
fn sum_exp_generic(xs: &[f32], shift: f32) -> f32 {
    const L: usize = 16;
    let mut acc = [0.0f32; L];
    let chunks = xs.chunks_exact(L);
    let rest = chunks.remainder();
    for c in chunks {
        for i in 0..L {
            acc[i] += exp(c[i] - shift);
        }
    }
    let tail: f32 = rest.iter().map(|&v| exp(v - shift)).sum();
    acc.iter().sum::<f32>() + tail
}
simd_dispatch!(fn sum_exp(xs: &[f32], shift: f32) -> f32 => sum_exp_generic);

/// log Σ exp(x), stable; `-inf` when every element is `-inf` (or the slice is empty). Elements
/// at `-inf` contribute nothing.
pub fn log_sum_exp(xs: &[f32]) -> f32 {
    let m = max(xs);
    if m == f32::NEG_INFINITY {
        return m;
    }
    m + sum_exp(xs, m).ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid() -> impl Iterator<Item = f32> {
        (-200_000..=200_000).map(|i| i as f32 * 5e-5)
    }

    #[test]
    fn erf_matches_f64_erf() {
        let mut worst = 0.0f64;
        for x in grid() {
            let e = (erf(x) as f64 - libm::erf(x as f64)).abs();
            worst = worst.max(e);
        }
        assert!(worst < 5e-7, "max abs error {worst}");
        assert_eq!(erf(0.0), 0.0);
        assert_eq!(erf(10.0), 1.0);
        assert_eq!(erf(-10.0), -1.0);
    }

    #[test]
    fn exp_matches_f64_exp() {
        let mut worst = 0.0f64;
        for i in -87_000..=88_000 {
            let x = i as f32 * 1e-3;
            let r = libm::exp(x as f64);
            worst = worst.max(((exp(x) as f64 - r) / r).abs());
        }
        assert!(worst < 3e-7, "max rel error {worst}");
        assert_eq!(exp(0.0), 1.0);
    }

    #[test]
    fn gelu_matches_definition() {
        for x in grid() {
            let xd = x as f64;
            let r = 0.5 * xd * (1.0 + libm::erf(xd / std::f64::consts::SQRT_2));
            assert!(
                (gelu(x) as f64 - r).abs() <= 1e-6 * (1.0 + xd.abs()),
                "gelu({x})"
            );
        }
        let mut v: Vec<f32> = grid().step_by(997).collect();
        let want: Vec<f32> = v.iter().map(|&x| gelu(x)).collect();
        gelu_inplace(&mut v);
        assert_eq!(v, want, "dispatched and scalar GELU must agree bit for bit");
    }

    #[test]
    fn dot_is_path_independent() {
        let a: Vec<f32> = (0..1001).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..1001).map(|i| (i as f32 * 0.11).cos()).collect();
        assert_eq!(dot(&a, &b).to_bits(), dot_generic(&a, &b).to_bits());
        let r: f64 = a.iter().zip(&b).map(|(x, y)| *x as f64 * *y as f64).sum();
        assert!((dot(&a, &b) as f64 - r).abs() < 1e-4);
    }

    #[test]
    fn log_sum_exp_matches_f64_and_ignores_masked() {
        let xs: Vec<f32> = (0..51_865)
            .map(|i| ((i * 37) % 1000) as f32 * 0.02 - 10.0)
            .collect();
        let m = xs
            .iter()
            .cloned()
            .fold(f64::NEG_INFINITY, |a, b| a.max(b as f64));
        let want = m + xs.iter().map(|&x| (x as f64 - m).exp()).sum::<f64>().ln();
        assert!(
            (log_sum_exp(&xs) as f64 - want).abs() < 1e-4,
            "{} vs {want}",
            log_sum_exp(&xs)
        );
        let mut masked = xs.clone();
        masked.extend([f32::NEG_INFINITY; 100]);
        assert!((log_sum_exp(&masked) - log_sum_exp(&xs)).abs() < 1e-5);
        assert_eq!(log_sum_exp(&[f32::NEG_INFINITY; 3]), f32::NEG_INFINITY);
        assert_eq!(log_sum_exp(&[]), f32::NEG_INFINITY);
        assert_eq!(max(&xs) as f64, m);
    }
}
