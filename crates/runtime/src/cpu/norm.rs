//! Batched LayerNorm and the row softmax used by attention.

use rayon::prelude::*;

use crate::math::{self, simd_dispatch};
use crate::numerics::round_bf16_bits;

/// Sum with 16 independent lanes in a fixed order (identical result on every code path).
#[inline(always)]
pub(crate) fn sum_lanes(xs: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    const L: usize = 16;
    let mut acc = [0.0f32; L];
    let chunks = xs.len() / L;
    for c in 0..chunks {
        let xc = &xs[c * L..c * L + L];
        for i in 0..L {
            acc[i] += f(xc[i]);
        }
    }
    for (i, x) in xs.iter().enumerate().skip(chunks * L) {
        acc[i % L] += f(*x);
    }
    let mut w = L;
    while w > 1 {
        w /= 2;
        for i in 0..w {
            acc[i] += acc[i + w];
        }
    }
    acc[0]
}

#[inline(always)]
fn layernorm_row_generic(
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    eps: f32,
    bf16: bool,
    out: &mut [f32],
) {
    let dim = x.len();
    // bf16 kernels read x, gamma and beta as bf16; statistics and the result are f32.
    let rd = |v: f32| if bf16 { round_bf16_bits(v) } else { v };
    let mean = sum_lanes(x, rd) / dim as f32;
    let var = sum_lanes(x, |v| {
        let c = rd(v) - mean;
        c * c
    }) / dim as f32;
    let rstd = 1.0 / (var + eps).sqrt();
    for (((o, &xv), &g), &b) in out.iter_mut().zip(x).zip(gamma).zip(beta) {
        *o = (rd(xv) - mean) * rstd * rd(g) + rd(b);
    }
    if bf16 {
        for o in out.iter_mut() {
            *o = round_bf16_bits(*o);
        }
    }
}
simd_dispatch!(fn layernorm_row(x: &[f32], gamma: &[f32], beta: &[f32], eps: f32, bf16: bool, out: &mut [f32]) => layernorm_row_generic);

/// LayerNorm over `rows × dim`, rows in parallel. With `bf16`, x, gamma and beta are read as
/// bf16, statistics are f32 and the output is stored as bf16.
pub(crate) fn layernorm(
    x: &[f32],
    rows: usize,
    dim: usize,
    gamma: &[f32],
    beta: &[f32],
    eps: f32,
    bf16: bool,
    out: &mut [f32],
) {
    if dim == 0 {
        return;
    }
    let min_rows = (16_384 / dim).max(1);
    out[..rows * dim]
        .par_chunks_mut(dim)
        .with_min_len(min_rows)
        .zip(x[..rows * dim].par_chunks(dim))
        .for_each(|(o, xr)| layernorm_row(xr, gamma, beta, eps, bf16, o));
}

/// In-place softmax of `row[..visible]` after multiplying by `scale`; `row[visible..]` becomes 0
/// (masked keys). Max-subtracted for stability; probabilities are rounded to bf16 when `bf16`
/// (the PV matmul reads them as bf16).
#[inline(always)]
fn softmax_row_generic(row: &mut [f32], visible: usize, scale: f32, bf16: bool) {
    let (vis, masked) = row.split_at_mut(visible);
    // Max over 16 independent lanes (a plain `max` fold does not vectorise).
    const L: usize = 16;
    let mut lanes = [f32::NEG_INFINITY; L];
    let mut chunks = vis.chunks_exact_mut(L);
    for c in &mut chunks {
        for i in 0..L {
            c[i] *= scale;
            lanes[i] = if c[i] > lanes[i] { c[i] } else { lanes[i] };
        }
    }
    for (i, s) in chunks.into_remainder().iter_mut().enumerate() {
        *s *= scale;
        lanes[i] = if *s > lanes[i] { *s } else { lanes[i] };
    }
    let mx = lanes
        .iter()
        .fold(f32::NEG_INFINITY, |m, &v| if v > m { v } else { m });
    // exp and the sum in one pass, with the same 16-lane order as `sum_lanes`.
    let mut acc = [0.0f32; L];
    let mut chunks = vis.chunks_exact_mut(L);
    for c in &mut chunks {
        for i in 0..L {
            c[i] = math::exp(c[i] - mx);
            acc[i] += c[i];
        }
    }
    for (i, s) in chunks.into_remainder().iter_mut().enumerate() {
        *s = math::exp(*s - mx);
        acc[i] += *s;
    }
    let mut w = L;
    while w > 1 {
        w /= 2;
        for i in 0..w {
            acc[i] += acc[i + w];
        }
    }
    let inv = 1.0 / acc[0];
    if bf16 {
        for s in vis.iter_mut() {
            *s = round_bf16_bits(*s * inv);
        }
    } else {
        for s in vis.iter_mut() {
            *s *= inv;
        }
    }
    masked.fill(0.0);
}
simd_dispatch!(fn softmax_row(row: &mut [f32], visible: usize, scale: f32, bf16: bool) => softmax_row_generic);
