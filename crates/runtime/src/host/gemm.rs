//! Host buffers of the matmul-like designs (matmul, ffn, lm_head), from `kernel_spec::plan`.
//!
//! Every pass computes `C[m,n] = A[m,k] · B[k,n]`. The host hands over A row-major `[m, k]`,
//! B row-major `[k, n]` (so a PyTorch weight `W[n,k]` travels transposed), zero-padded; with
//! split weights the split operand carries two bf16 planes per k-block of `tile_k`: hi = bf16(w)
//! then lo = bf16(w − hi) (B: row blocks, A: column blocks). Bias / int8 scales follow B as one
//! `tile_k × tile_n` row-major parameter tile per n-block (the mem tile reorders it like a B tile
//! and the core reads element (k, n) back). The argument list is in order of first use over the
//! passes, as the design's `aie.runtime_sequence` declares it.

use kernel_spec::KernelSpec;

use super::bytes::{bf16_bits, put_bf16, put_u16};
use super::{layout_error, plan_error, Elem, HostArg};
use crate::RuntimeError;

/// One pass of the plan, as far as the host buffers are concerned.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Pass {
    /// Padded sizes.
    pub m: usize,
    pub k: usize,
    pub n: usize,
    pub planes_a: usize,
    pub planes_b: usize,
    pub params: bool,
    pub residual: bool,
    /// Element at which the residual starts in its argument (the FFN's R rides behind H).
    pub r_offset: usize,
    /// Argument indices of A, B, the residual (if any) and C.
    pub a: usize,
    pub b: usize,
    pub r: Option<usize>,
    pub c: usize,
}

/// The passes and arguments of a matmul-like entry.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Gemm {
    pub tk: usize,
    pub tn: usize,
    pub passes: Vec<Pass>,
    pub args: Vec<HostArg>,
}

impl Gemm {
    /// `input` is the element type of A, B and the residual, `out` that of C.
    pub(crate) fn of(spec: &KernelSpec, input: Elem, out: Elem) -> Result<Gemm, RuntimeError> {
        let plan = kernel_spec::plan(spec).map_err(|e| plan_error(spec, e))?;
        if plan.passes.is_empty() {
            return Err(layout_error(spec, "the plan has no matmul pass"));
        }
        let (tk, tn) = (spec.tiling.tile_k, spec.tiling.tile_n);
        let mut args: Vec<HostArg> = Vec::new();
        // An argument used twice is as long as its furthest use.
        let mut add = |name: &str, len: usize, elem: Elem| -> usize {
            match args.iter().position(|a| a.name == name) {
                Some(i) => {
                    args[i].len = args[i].len.max(len);
                    i
                }
                None => {
                    args.push(HostArg {
                        name: name.to_string(),
                        elem,
                        len,
                    });
                    args.len() - 1
                }
            }
        };
        let mut passes = Vec::new();
        for p in &plan.passes {
            let params = if p.params { p.n_blocks * tk * tn } else { 0 };
            let a = add(p.a, p.m * p.planes_a * p.k, input);
            let b = add(p.b, p.planes_b * p.k * p.n + params, input);
            let r = p.residual.then(|| add(p.r, p.r_offset + p.m * p.n, input));
            let c = add(p.c, p.m * p.n, out);
            passes.push(Pass {
                m: p.m,
                k: p.k,
                n: p.n,
                planes_a: p.planes_a,
                planes_b: p.planes_b,
                params: p.params,
                residual: p.residual,
                r_offset: p.r_offset,
                a,
                b,
                r,
                c,
            });
        }
        Ok(Gemm {
            tk,
            tn,
            passes,
            args,
        })
    }

    /// Bytes of the weights part of pass `i`'s B argument (the parameter tiles follow).
    pub(crate) fn b_weight_bytes(&self, i: usize) -> usize {
        let p = &self.passes[i];
        p.planes_b * p.k * p.n * self.args[p.b].elem.bytes()
    }
}

/// The B argument of bf16 pass `i` for a layer `w` (`[n, k]`) with `bias`: Wᵀ (planes) and,
/// if the pass has them, parameter tiles holding the bf16-rounded bias as f32 word 0 (zeros for
/// a layer without bias: an entry with a bias serves it).
pub(crate) fn bf16_b_image(
    g: &Gemm,
    i: usize,
    w: &[f32],
    (n, k): (usize, usize),
    bias: Option<&[f32]>,
) -> super::Image {
    let p = &g.passes[i];
    let mut bytes = vec![0u8; g.args[p.b].bytes()];
    let wb = g.b_weight_bytes(i);
    put_weights_t_bf16(&mut bytes[..wb], w, (n, k), p.n, g.tk, p.planes_b);
    if p.params {
        let word = |c: usize| {
            bias.map_or(0.0, |b| crate::numerics::round_bf16(b[c]))
                .to_bits()
        };
        put_param_words(&mut bytes[wb..], Elem::Bf16, (g.tk, g.tn), n, 1, |c, _| {
            word(c)
        });
    }
    super::Image {
        bytes,
        scales: Vec::new(),
    }
}

/// hi and lo bf16 planes of `w` (`lo` = 0 when hi is exact).
#[inline]
fn planes(w: f32) -> [u16; 2] {
    let hi = bf16_bits(w);
    let lo = bf16_bits(w - f32::from_bits(u32::from(hi) << 16));
    [hi, lo]
}

/// `w` (`[n, k]`, PyTorch layout) as the B operand `Wᵀ`: bf16 rows of `np` elements, `planes`
/// planes per k-block of `tk` rows. `dst` must be zero where nothing is written (padding).
pub(crate) fn put_weights_t_bf16(
    dst: &mut [u8],
    w: &[f32],
    (n, k): (usize, usize),
    np: usize,
    tk: usize,
    nplanes: usize,
) {
    for i in 0..k {
        let (kb, ii) = (i / tk, i % tk);
        for c in 0..n {
            let v = w[c * k + i];
            if nplanes == 2 {
                let [hi, lo] = planes(v);
                put_u16(dst, (2 * kb * tk + ii) * np + c, hi);
                put_u16(dst, ((2 * kb + 1) * tk + ii) * np + c, lo);
            } else {
                put_bf16(dst, i * np + c, v);
            }
        }
    }
}

/// `a` (`[rows, k]`) as an A operand of `kp` columns per plane: bf16 rows of `nplanes · kp`
/// elements, `nplanes` planes per k-block of `tk` columns (hi block, then lo block).
pub(crate) fn put_rows_bf16(
    dst: &mut [u8],
    a: &[f32],
    (rows, k): (usize, usize),
    kp: usize,
    tk: usize,
    nplanes: usize,
) {
    let ld = nplanes * kp;
    for r in 0..rows {
        let src = &a[r * k..(r + 1) * k];
        if nplanes == 1 {
            super::bytes::put_bf16_run(dst, r * ld, src);
            continue;
        }
        for (i, &v) in src.iter().enumerate() {
            let (kb, ii) = (i / tk, i % tk);
            let [hi, lo] = planes(v);
            put_u16(dst, r * ld + 2 * kb * tk + ii, hi);
            put_u16(dst, r * ld + (2 * kb + 1) * tk + ii, lo);
        }
    }
}

/// Parameter tiles: per output channel `c < n`, 32-bit words `word(c, w)` for `w < words`, in
/// the `tk × tn` row-major tile of c's n-block. bf16 elements: word w in rows 2w (low half) and
/// 2w+1 (high half); int8 elements: rows 4w..4w+3 (little-endian bytes). `dst` starts at the
/// first tile; channels ≥ n (padding) are left as they are (zero).
pub(crate) fn put_param_words(
    dst: &mut [u8],
    elem: Elem,
    (tk, tn): (usize, usize),
    n: usize,
    words: usize,
    word: impl Fn(usize, usize) -> u32,
) {
    for c in 0..n {
        let base = (c / tn) * tk * tn + c % tn;
        for w in 0..words {
            let v = word(c, w);
            match elem {
                Elem::I8 => {
                    for (byte, b) in v.to_le_bytes().into_iter().enumerate() {
                        dst[base + (4 * w + byte) * tn] = b;
                    }
                }
                _ => {
                    put_u16(dst, base + 2 * w * tn, (v & 0xffff) as u16);
                    put_u16(dst, base + (2 * w + 1) * tn, (v >> 16) as u16);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_planes_add_up_to_sixteen_bits() {
        let w = 1.0 + 2f32.powi(-9) + 2f32.powi(-12);
        let [hi, lo] = planes(w);
        let (h, l) = (
            f32::from_bits(u32::from(hi) << 16),
            f32::from_bits(u32::from(lo) << 16),
        );
        assert_eq!(h, 1.0);
        assert_eq!(h + l, w);
    }

    #[test]
    fn param_words_land_in_their_rows() {
        // tk = 4, tn = 2, two channels: channel 1, word 1 = 0xAABBCCDD.
        let mut b = vec![0u8; 4 * 2 * 2];
        put_param_words(&mut b, Elem::Bf16, (4, 2), 2, 2, |c, w| {
            if (c, w) == (1, 1) {
                0xAABB_CCDD
            } else {
                0
            }
        });
        // Row 2 (low half), row 3 (high half) of column 1.
        assert_eq!(&b[2 * (2 * 2 + 1)..2 * (2 * 2 + 1) + 2], &[0xDD, 0xCC]);
        assert_eq!(&b[2 * (3 * 2 + 1)..2 * (3 * 2 + 1) + 2], &[0xBB, 0xAA]);
        let mut q = vec![0u8; 8 * 2];
        put_param_words(&mut q, Elem::I8, (8, 2), 2, 2, |c, w| {
            if (c, w) == (0, 1) {
                0x0403_0201
            } else {
                0
            }
        });
        // Rows 4..8 of column 0.
        assert_eq!([q[8], q[10], q[12], q[14]], [1, 2, 3, 4]);
    }
}
