//! int8 linear layers of the CPU backend (`ComputeType::Int8` with `Numerics::F32`).
//!
//! Weights are quantised once per layer (symmetric, one scale per output channel) and packed
//! in panels of 16 channels ([`pack`]); activations are quantised per row at run time
//! ([`quant`]); products accumulate exactly in i32 and are dequantised by row scale × channel
//! scale before the usual f32 epilogue ([`gemm`]). The microkernels are chosen at run time
//! ([`Isa`]): AVX-512 VNNI, AVX-VNNI, AVX2 or portable Rust. Every path computes the exact
//! integer dot products, so all of them give bit-identical outputs.

mod gemm;
mod isa;
mod pack;
mod quant;
#[cfg(test)]
mod tests;
#[cfg(target_arch = "x86_64")]
mod x86;

pub(crate) use gemm::{ffn, lm_head_subset, matmul};
pub use isa::Isa;
pub use pack::Int8Weights;

use super::matmul::Epi;

/// `out[rows×n] = x[rows×k] · Wᵀ (+ bias)` with the int8 kernels of `isa`: the entry point of
/// the kernel benchmark (`benches/int8.rs`), which compares instruction sets on one machine.
///
/// # Panics
/// If `isa` is not available on this CPU, or the slices are shorter than the shape says.
pub fn matmul_with(
    isa: Isa,
    x: &[f32],
    rows: usize,
    w: &Int8Weights,
    bias: Option<&[f32]>,
    out: &mut [f32],
) {
    assert!(isa.available(), "{isa:?} is not available on this CPU");
    assert!(x.len() >= rows * w.k && out.len() >= rows * w.n);
    let epi = Epi {
        bias,
        gelu: false,
        residual: None,
        round_residual: false,
        round_out: false,
    };
    matmul(isa, x, rows, w, &epi, out);
}
