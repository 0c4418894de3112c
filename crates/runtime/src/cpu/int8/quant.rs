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

fn quantize_row_generic(x: &[f32], flip: u8, dst: &mut [u8]) -> f32 {
    let mut max = 0.0f32;
    for &v in x {
        let a = v.abs();
        // Not f32::max: this form vectorises (no NaN ordering to preserve).
        max = if a > max { a } else { max };
    }
    let inv = if max > 0.0 && max.is_finite() {
        127.0 / max
    } else {
        0.0
    };
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
        *s = quantize_row(&x[r * k..(r + 1) * k], flip, d);
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
