//! Dynamic per-row quantisation of activations: scale = max|x|/127, values rounded half to even
//! into [-127, 127], stored signed or offset by +128 (what `vpdpbusd` reads as unsigned).

use rayon::prelude::*;

use super::pack::quantize_value;
use crate::math::simd_dispatch;

/// Activation rows quantised for the kernels: row `r` is `data[r·lda..]`, `lda` ≥ k rounded up
/// to a group; padding bytes hold 0 (encoded).
pub(crate) struct QuantRows<'a> {
    pub data: &'a [u8],
    pub lda: usize,
    pub scales: &'a [f32],
}

/// 127 / max |x|: what maps a row onto ±127 (0 for an all-zero or non-finite row).
fn inverse_scale(max: f32) -> f32 {
    if max > 0.0 && max.is_finite() {
        127.0 / max
    } else {
        0.0
    }
}

fn quantize_row_generic(x: &[f32], flip: u8, dst: &mut [u8]) -> f32 {
    let mut max = 0.0f32;
    for &v in x {
        let a = v.abs();
        // Not f32::max: this form vectorises (no NaN ordering to preserve).
        max = if a > max { a } else { max };
    }
    let inv = inverse_scale(max);
    for (d, &v) in dst.iter_mut().zip(x) {
        *d = (quantize_value(v, inv) as u8) ^ flip;
    }
    for d in &mut dst[x.len()..] {
        *d = flip;
    }
    if inv == 0.0 {
        0.0
    } else {
        max / 127.0
    }
}
simd_dispatch!(fn quantize_row(x: &[f32], flip: u8, dst: &mut [u8]) -> f32 => quantize_row_generic);

/// Quantises `rows` rows of `x` (row stride `k`) into `dst` (row stride `lda`) and their
/// scales into `scales`; in parallel over row blocks when there are many rows.
pub(crate) fn quantize_rows(
    x: &[f32],
    rows: usize,
    k: usize,
    lda: usize,
    offset: bool,
    dst: &mut [u8],
    scales: &mut [f32],
) {
    debug_assert!(lda >= k && x.len() >= rows * k && dst.len() >= rows * lda);
    let flip = if offset { 0x80 } else { 0 };
    let one = |(r, (d, s)): (usize, (&mut [u8], &mut f32))| {
        *s = quantize_row_best(&x[r * k..(r + 1) * k], flip, d);
    };
    let dst = &mut dst[..rows * lda];
    let scales = &mut scales[..rows];
    if rows >= 64 && rows * k >= 1 << 16 {
        dst.par_chunks_mut(lda)
            .zip(scales.par_iter_mut())
            .enumerate()
            .with_min_len(16)
            .for_each(one);
    } else {
        dst.chunks_mut(lda)
            .zip(scales.iter_mut())
            .enumerate()
            .for_each(one);
    }
}

/// [`quantize_row`], with explicit AVX2 conversion and packing where the CPU has it (the
/// compiler does not vectorise the saturating float-to-int cast): the same bytes and scale.
fn quantize_row_best(x: &[f32], flip: u8, dst: &mut [u8]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2; `dst` holds at least `x.len()` bytes (checked by the caller's
        // `lda >= k`).
        return unsafe { x86::quantize_row(x, flip, dst) };
    }
    quantize_row(x, flip, dst)
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{inverse_scale, quantize_value};

    /// # Safety
    /// AVX2 present; `dst.len() >= x.len()`.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn quantize_row(x: &[f32], flip: u8, dst: &mut [u8]) -> f32 {
        assert!(dst.len() >= x.len());
        let n = x.len();
        let xp = x.as_ptr();
        // max |x|, NaN ignored: `_mm256_max_ps(v, m)` returns `m` where `v` is NaN.
        let abs = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff));
        let mut m = _mm256_setzero_ps();
        let mut i = 0;
        while i + 8 <= n {
            m = _mm256_max_ps(_mm256_and_ps(_mm256_loadu_ps(xp.add(i)), abs), m);
            i += 8;
        }
        let mut lanes = [0.0f32; 8];
        _mm256_storeu_ps(lanes.as_mut_ptr(), m);
        let mut max = lanes.iter().fold(0.0f32, |a, &b| if b > a { b } else { a });
        for &v in &x[i..] {
            let a = v.abs();
            max = if a > max { a } else { max };
        }
        let inv = inverse_scale(max);
        // Round half to even (the default rounding mode) after clamping to ±127; NaN → 0.
        let (vinv, lo, hi) = (
            _mm256_set1_ps(inv),
            _mm256_set1_ps(-127.0),
            _mm256_set1_ps(127.0),
        );
        let convert = |at: usize| {
            let y = _mm256_mul_ps(_mm256_loadu_ps(xp.add(at)), vinv);
            let y = _mm256_and_ps(y, _mm256_cmp_ps::<_CMP_ORD_Q>(y, y));
            _mm256_cvtps_epi32(_mm256_min_ps(_mm256_max_ps(y, lo), hi))
        };
        let order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
        let vflip = _mm256_set1_epi8(flip as i8);
        let mut i = 0;
        while i + 32 <= n {
            let ab = _mm256_packs_epi32(convert(i), convert(i + 8));
            let cd = _mm256_packs_epi32(convert(i + 16), convert(i + 24));
            let bytes = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(ab, cd), order);
            _mm256_storeu_si256(
                dst.as_mut_ptr().add(i) as *mut __m256i,
                _mm256_xor_si256(bytes, vflip),
            );
            i += 32;
        }
        for (d, &v) in dst[i..n].iter_mut().zip(&x[i..]) {
            *d = (quantize_value(v, inv) as u8) ^ flip;
        }
        for d in &mut dst[n..] {
            *d = flip;
        }
        if inv == 0.0 {
            0.0
        } else {
            max / 127.0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The AVX2 row quantiser writes the portable one's bytes and scale, edge values included.
    #[test]
    fn the_fast_row_quantiser_matches_the_portable_one() {
        let mut seed = 0x2545_f491u32;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed as f32 / u32::MAX as f32 * 2.0 - 1.0
        };
        for n in [0, 1, 7, 31, 32, 33, 64, 100, 512, 2048] {
            for case in 0..6 {
                let mut x: Vec<f32> = (0..n).map(|_| next() * 3.0).collect();
                match case {
                    1 if n > 2 => {
                        x[1] = f32::NAN;
                        x[2] = 1e-3;
                    }
                    2 => x.iter_mut().for_each(|v| *v = 0.0),
                    3 if n > 0 => x[n / 2] = f32::INFINITY,
                    // Values exactly halfway between quantisation steps: ties to even.
                    4 => x
                        .iter_mut()
                        .enumerate()
                        .for_each(|(i, v)| *v = (i % 255) as f32 - 127.0 + 0.5),
                    5 if n > 0 => x[0] = -1e30,
                    _ => {}
                }
                for flip in [0u8, 0x80] {
                    let mut a = vec![0xAAu8; n + 5];
                    let mut b = vec![0x55u8; n + 5];
                    let sa = quantize_row_generic(&x, flip, &mut a);
                    let sb = quantize_row_best(&x, flip, &mut b);
                    assert_eq!(a, b, "n {n}, case {case}, flip {flip}");
                    assert_eq!(sa.to_bits(), sb.to_bits(), "n {n}, case {case}");
                }
            }
        }
    }
}
