//! Few-row products against weights held as f16: the decoder's per-token matmuls and LM head.
//!
//! With 1–8 rows a product reads every weight once and does almost no arithmetic per byte, so
//! its time is the time to stream the weights from memory. Whisper checkpoints are float16:
//! their weights are exactly representable in f16, so keeping an f16 copy halves the bytes read
//! and changes no value (products and sums are still f32). Only used for `Numerics::F32`.

use half::f16;
use half::slice::{HalfBitsSliceExt, HalfFloatSliceExt};
use rayon::prelude::*;

use super::matmul::{epilogue_tile, Epi};
use super::SyncPtr;

/// Most rows the few-row kernel takes; more rows go to the blocked GEMM.
pub(crate) const MAX_ROWS: usize = 8;

/// `Some(f16 bits)` when every weight is exactly an f16 value, else `None`. Converts 8 lanes at
/// a time (F16C where the CPU has it) on one scoped thread per core: it runs on the first
/// decoding step, over every decoder weight and the 26 M-entry embedding of the LM head.
///
/// Not rayon: this runs inside `OnceLock::get_or_init`, where other callers of the same layer
/// block; blocked rayon workers could leave no thread to run the conversion's own tasks.
pub(crate) fn exact_f16(w: &[f32]) -> Option<Vec<u16>> {
    let mut bits = vec![0u16; w.len()];
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per = w.len().div_ceil(threads).max(1 << 16);
    let exact = std::thread::scope(|s| {
        let parts: Vec<_> = bits
            .chunks_mut(per)
            .zip(w.chunks(per))
            .map(|(h, w)| s.spawn(move || convert_exact(w, h)))
            .collect();
        parts.into_iter().all(|p| p.join().expect("f16 conversion"))
    });
    exact.then_some(bits)
}

/// `h = f16(w)`; whether every value survived the round trip unchanged.
fn convert_exact(w: &[f32], h: &mut [u16]) -> bool {
    const CHUNK: usize = 4096;
    let mut back = [0.0f32; CHUNK];
    h.chunks_mut(CHUNK).zip(w.chunks(CHUNK)).all(|(h, w)| {
        let h: &mut [f16] = h.reinterpret_cast_mut();
        h.convert_from_f32_slice(w);
        let back = &mut back[..w.len()];
        h.convert_to_f32_slice(back);
        back.iter().zip(w).all(|(a, b)| a.to_bits() == b.to_bits())
    })
}

/// out[rows×n] = x[rows×k] · w[n×k]ᵀ, then `epi`; `w` is f16 bits, `rows <= MAX_ROWS`.
pub(crate) fn gemv_f16(
    x: &[f32],
    rows: usize,
    k: usize,
    w: &[u16],
    n: usize,
    epi: &Epi<'_>,
    out: &mut [f32],
) {
    assert!(rows <= MAX_ROWS && x.len() >= rows * k && w.len() >= n * k && out.len() >= rows * n);
    // Column blocks of ~256 KiB of weights: enough work per task to hide scheduling.
    let per = (128 * 1024 / k.max(1)).clamp(16, n.max(16));
    let blocks = n.div_ceil(per);
    let optr = SyncPtr(out.as_mut_ptr());
    let run = |b: usize| {
        let (c0, c1) = (b * per, ((b + 1) * per).min(n));
        for c in c0..c1 {
            let mut acc = [0.0f32; MAX_ROWS];
            dot_rows(x, rows, k, &w[c * k..(c + 1) * k], &mut acc);
            for (r, &a) in acc[..rows].iter().enumerate() {
                // SAFETY: (r, c) lies in this task's column block of the rows×n output.
                unsafe { *optr.ptr().add(r * n + c) = a };
            }
        }
        // SAFETY: the block's columns belong to this task only.
        unsafe { epilogue_tile(optr, n, (0, rows), (c0, c1), epi) };
    };
    if blocks <= 1 {
        (0..blocks).for_each(run);
    } else {
        (0..blocks).into_par_iter().for_each(run);
    }
}

/// acc[r] = x[r] · w for r < rows.
fn dot_rows(x: &[f32], rows: usize, k: usize, w: &[u16], acc: &mut [f32; MAX_ROWS]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
            && std::arch::is_x86_feature_detected!("f16c")
        {
            // SAFETY: the CPU has the features the kernel is compiled for; slices were checked.
            unsafe { x86::dot_rows(x, rows, k, w, acc) };
            return;
        }
    }
    for (r, a) in acc[..rows].iter_mut().enumerate() {
        *a = x[r * k..(r + 1) * k]
            .iter()
            .zip(w)
            .map(|(&xv, &wv)| xv * f16::from_bits(wv).to_f32())
            .sum();
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::MAX_ROWS;

    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn dot_rows(
        x: &[f32],
        rows: usize,
        k: usize,
        w: &[u16],
        acc: &mut [f32; MAX_ROWS],
    ) {
        // Two accumulators per row break the FMA latency chain.
        let mut a0 = [_mm256_setzero_ps(); MAX_ROWS];
        let mut a1 = [_mm256_setzero_ps(); MAX_ROWS];
        let (xp, wp) = (x.as_ptr(), w.as_ptr());
        let mut i = 0;
        while i + 16 <= k {
            let w0 = _mm256_cvtph_ps(_mm_loadu_si128(wp.add(i) as *const __m128i));
            let w1 = _mm256_cvtph_ps(_mm_loadu_si128(wp.add(i + 8) as *const __m128i));
            for r in 0..rows {
                let xr = xp.add(r * k + i);
                a0[r] = _mm256_fmadd_ps(_mm256_loadu_ps(xr), w0, a0[r]);
                a1[r] = _mm256_fmadd_ps(_mm256_loadu_ps(xr.add(8)), w1, a1[r]);
            }
            i += 16;
        }
        for r in 0..rows {
            let s = _mm256_add_ps(a0[r], a1[r]);
            let h = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
            let h = _mm_add_ps(h, _mm_movehl_ps(h, h));
            let h = _mm_add_ss(h, _mm_shuffle_ps(h, h, 1));
            let mut total = _mm_cvtss_f32(h);
            for j in i..k {
                total += *xp.add(r * k + j) * half::f16::from_bits(*wp.add(j)).to_f32();
            }
            acc[r] = total;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_f32_product_on_f16_weights() {
        let (k, n) = (37, 53);
        let w: Vec<f32> = (0..n * k)
            .map(|i| f16::from_f32(((i * 7919) % 997) as f32 / 499.0 - 1.0).to_f32())
            .collect();
        let bits = exact_f16(&w).expect("values were rounded to f16");
        for rows in 1..=MAX_ROWS {
            let x: Vec<f32> = (0..rows * k)
                .map(|i| ((i * 31) % 101) as f32 / 50.0 - 1.0)
                .collect();
            let bias: Vec<f32> = (0..n).map(|i| i as f32 * 0.01).collect();
            let epi = Epi {
                bias: Some(&bias),
                gelu: false,
                residual: None,
                round_residual: false,
                round_out: false,
            };
            let mut out = vec![0.0; rows * n];
            gemv_f16(&x, rows, k, &bits, n, &epi, &mut out);
            for r in 0..rows {
                for c in 0..n {
                    let want: f64 = (0..k)
                        .map(|j| x[r * k + j] as f64 * w[c * k + j] as f64)
                        .sum::<f64>()
                        + bias[c] as f64;
                    assert!(
                        (out[r * n + c] as f64 - want).abs() < 1e-4,
                        "rows {rows} ({r},{c})"
                    );
                }
            }
        }
    }

    #[test]
    fn non_f16_weights_are_refused() {
        assert!(exact_f16(&[0.5, 1.0 / 3.0]).is_none());
        // Several chunks, converted in parallel: one inexact value anywhere is enough.
        let len = 300_001;
        let mut long: Vec<f32> = (0..len).map(|i| (i % 64) as f32 - 32.0).collect();
        long[1] = -0.0;
        let bits = exact_f16(&long).unwrap();
        assert_eq!(bits[1], f16::NEG_ZERO.to_bits());
        assert_eq!(f16::from_bits(bits[len - 1]).to_f32(), long[len - 1]);
        long[len - 1] = 1.0 + f32::EPSILON;
        assert!(exact_f16(&long).is_none());
        assert_eq!(
            exact_f16(&[0.5, -2.0]).unwrap(),
            vec![f16::from_f32(0.5).to_bits(), f16::from_f32(-2.0).to_bits()]
        );
    }
}
