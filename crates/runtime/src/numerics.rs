//! The rounding rules of the NPU kernels, applied on the CPU in `Numerics::Npu`.
//!
//! * `bf16` kernels: every kernel input (activations, weights, bias, residual) is stored as bf16
//!   (round-to-nearest-even from f32); products and sums are f32; epilogues (bias, GELU,
//!   residual, softmax and LayerNorm statistics) run in f32; outputs are f32. A matmul that feeds
//!   another matmul inside one kernel (FFN hidden, attention probabilities) is rounded to bf16
//!   again because the next AIE `mmul` reads bf16.
//! * `bf16` kernels with `split_weights`: as `bf16`, except that each weight is sent as two bf16
//!   planes, hi = bf16(w) and lo = bf16(w − hi), and both are multiplied: the kernel computes
//!   with hi + lo, which keeps 16 significant bits (every value of a float16 checkpoint exactly).
//! * `int8` kernels: symmetric quantisation, scale = max|v| / 127, q = clamp(round_ties_even(v /
//!   scale), -127, 127); activations per tensor, weights per tensor or per output channel as the
//!   spec says; i32 accumulation; dequantisation `acc as f32 * (s_x * s_w)`; epilogue in f32;
//!   with `requantize_output` the result is quantised per tensor and dequantised again.

/// Rounds an f32 to the nearest bf16 (ties to even) and returns it widened back to f32.
/// NaN stays NaN (quiet), infinities stay infinite, overflow rounds to infinity as in hardware.
#[inline(always)]
pub fn round_bf16(x: f32) -> f32 {
    half::bf16::from_f32(x).to_f32()
}

/// Branch-free RNE to bf16 on the bit pattern (vectorises); NaNs are truncated and quieted like
/// `half::bf16::from_f32`.
#[inline(always)]
pub fn round_bf16_bits(x: f32) -> f32 {
    let b = x.to_bits();
    let nan = (b & 0x7fff_ffff) > 0x7f80_0000;
    let rounded = b.wrapping_add(0x7fff + ((b >> 16) & 1)) & 0xffff_0000;
    f32::from_bits(if nan {
        (b | 0x0040_0000) & 0xffff_0000
    } else {
        rounded
    })
}

/// The weight a split-weight kernel computes with: bf16(w) + bf16(w − bf16(w)) (exact in f32).
#[inline(always)]
pub fn split_bf16(w: f32) -> f32 {
    let hi = round_bf16_bits(w);
    let lo = round_bf16_bits(w - hi);
    // hi alone when nothing is left (keeps the sign of -0.0).
    if lo == 0.0 {
        hi
    } else {
        hi + lo
    }
}

#[inline(always)]
fn round_bf16_into_generic(src: &[f32], dst: &mut [f32]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d = round_bf16_bits(*s);
    }
}
crate::math::simd_dispatch!(fn round_bf16_into(src: &[f32], dst: &mut [f32]) => round_bf16_into_generic);

#[inline(always)]
fn round_bf16_inplace_generic(xs: &mut [f32]) {
    for x in xs.iter_mut() {
        *x = round_bf16_bits(*x);
    }
}
crate::math::simd_dispatch!(fn round_bf16_inplace(xs: &mut [f32]) => round_bf16_inplace_generic);

/// Symmetric int8 scale of a tensor: max|v| / 127 (1.0 for an all-zero tensor so that
/// dequantisation stays finite).
pub fn int8_scale(xs: &[f32]) -> f32 {
    let amax = xs.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    if amax > 0.0 && amax.is_finite() {
        amax / 127.0
    } else {
        1.0
    }
}

/// q = clamp(round_ties_even(v / scale), -127, 127).
#[inline(always)]
pub fn quantize_i8(v: f32, scale: f32) -> i8 {
    (v / scale).round_ties_even().clamp(-127.0, 127.0) as i8
}

/// Quantises `src` with `scale` into `dst` as integral f64 values (exact i32-equivalent
/// accumulation in an f64 GEMM: every partial sum of int8 products is an integer far below 2^53).
pub fn quantize_into_f64(src: &[f32], scale: f32, dst: &mut [f64]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d = quantize_i8(*s, scale) as f64;
    }
}

/// Quantise and dequantise in place with a per-tensor scale (the `requantize_output` rule).
pub fn fake_quant_inplace(xs: &mut [f32]) {
    let s = int8_scale(xs);
    for x in xs.iter_mut() {
        *x = quantize_i8(*x, s) as f32 * s;
    }
}
