//! The output scale of an int8 matmul with `requantize_output`.
//!
//! The kernel stores `round(y / s_out)` as int8, and the CPU model's rule is s_out =
//! max|y| / 127 over the call's output: a number known only after the product, while the
//! kernel needs 1/s_out before it runs. It is found exactly, mostly on the device:
//!
//! 1. A bound B ≥ max|y| from the quantised operands: |acc| ≤ 127·Σ|x_q| per row.
//! 2. Calibration runs with 1/s = 127/B: nothing saturates, and |q| is monotone in |y|, so the
//!    largest |y| sits among the elements with the largest |q| = M. While M < 64 the bound is
//!    tightened to (M+1)·s and the kernel runs again (at most [`MAX_CALIBRATION_RUNS`]).
//! 3. Those few candidates are evaluated on the host exactly as the kernel's epilogue does
//!    (i32 dot product, `acc as f32 · (sx·sw) + b`, GELU as the CPU model computes it), and
//!    s_out = max|y| / 127 — the CPU model's value, so both sides quantise alike.
//!
//! A requantising call therefore costs 2–5 kernel runs; entries with `requantize_output =
//! false` cost one. If the calibration does not resolve the maximum (outputs all zero or
//! vanishingly small), every output is evaluated on the host.

use super::bytes::get_i8;
use super::{Image, Invocation, MatmulLayout, RunStats};
use crate::numerics::int8_scale;
use crate::RuntimeError;

/// Calibration runs before the host evaluates every output.
pub(crate) const MAX_CALIBRATION_RUNS: usize = 4;

/// M at which the candidates (|q| = M) are few enough to evaluate on the host.
const RESOLVED: i32 = 64;

/// What the calibration needs to know of the call.
pub(crate) struct Int8Call<'a> {
    pub lay: &'a MatmulLayout,
    pub weights: &'a Image,
    pub sx: f32,
    pub bias: Option<&'a [f32]>,
    pub rows: usize,
}

impl Int8Call<'_> {
    fn sw(&self, c: usize) -> f32 {
        let s = &self.weights.scales;
        s[if s.len() == 1 { 0 } else { c }]
    }

    /// y[r, c] exactly as the kernel's epilogue computes it (GELU as the CPU model does).
    fn exact(&self, xq: &[u8], r: usize, c: usize) -> f32 {
        let p = &self.lay.gemm.passes[0];
        let acc: i32 = (0..self.lay.k)
            .map(|i| {
                i32::from(get_i8(xq, r * p.k + i))
                    * i32::from(get_i8(&self.weights.bytes, i * p.n + c))
            })
            .sum();
        let v = acc as f32 * (self.sx * self.sw(c)) + self.bias.map_or(0.0, |b| b[c]);
        if self.lay.gelu {
            crate::math::gelu(v)
        } else {
            v
        }
    }

    /// An upper bound of max|y| (a little above, for the f32 roundings on the way).
    fn bound(&self, xq: &[u8]) -> f32 {
        let p = &self.lay.gemm.passes[0];
        let row_sum = (0..self.rows)
            .map(|r| {
                (0..self.lay.k)
                    .map(|i| i64::from(get_i8(xq, r * p.k + i)).abs())
                    .sum::<i64>()
            })
            .max()
            .unwrap_or(0);
        let sc = (0..self.lay.n)
            .map(|c| self.sx * self.sw(c))
            .fold(0.0f32, f32::max);
        let b = self
            .bias
            .map_or(0.0, |b| b.iter().fold(0.0f32, |m, v| m.max(v.abs())));
        ((127 * row_sum) as f32 * sc + b) * (1.0 + 1.0 / 256.0)
    }
}

/// Finds s_out for `call` by running the kernel (with `write(inv, 1/s)` setting the scale);
/// the `x` and `w` buffers must already hold the call's operands.
pub(crate) fn output_scale(
    inv: &mut dyn Invocation,
    call: &Int8Call<'_>,
    write: &mut dyn FnMut(&mut dyn Invocation, f32),
) -> Result<(f32, RunStats), RuntimeError> {
    let p = call.lay.gemm.passes[0].clone();
    let (rows, n) = (call.rows, call.lay.n);
    let mut stats = RunStats::default();
    let mut bound = call.bound(inv.bytes(p.a));
    if bound == 0.0 {
        // x quantises to zeros and there is no bias: every output is exactly 0.
        return Ok((int8_scale(&[0.0]), stats));
    }
    let mut candidates: Option<Vec<(usize, usize)>> = None;
    for _ in 0..MAX_CALIBRATION_RUNS {
        let inv_s = 127.0 / bound;
        if !inv_s.is_finite() {
            break;
        }
        write(inv, inv_s);
        stats += inv.run(&[p.c])?;
        let y = inv.bytes(p.c);
        let q = |r: usize, c: usize| i32::from(get_i8(y, r * p.n + c)).abs();
        let m = (0..rows)
            .flat_map(|r| (0..n).map(move |c| (r, c)))
            .map(|(r, c)| q(r, c))
            .max()
            .unwrap_or(0);
        if m >= RESOLVED {
            // The device's GELU is an approximation: keep the next step down as well.
            let least = if call.lay.gelu { m - 1 } else { m };
            candidates = Some(
                (0..rows)
                    .flat_map(|r| (0..n).map(move |c| (r, c)))
                    .filter(|&(r, c)| q(r, c) >= least)
                    .collect(),
            );
            break;
        }
        // |y·(1/s)| < M + 1 for every element (whatever the rounding mode).
        bound = (m as f32 + 1.0) / inv_s * (1.0 + 1.0 / 256.0);
    }
    let xq = inv.bytes(p.a);
    let amax = match candidates {
        Some(cs) => cs
            .into_iter()
            .map(|(r, c)| call.exact(xq, r, c).abs())
            .fold(0.0f32, f32::max),
        None => (0..rows)
            .flat_map(|r| (0..n).map(move |c| (r, c)))
            .map(|(r, c)| call.exact(xq, r, c).abs())
            .fold(0.0f32, f32::max),
    };
    Ok((int8_scale(&[amax]), stats))
}
