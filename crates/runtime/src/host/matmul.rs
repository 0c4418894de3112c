//! Matmul host buffers (`templates/matmul/design.mlir.jinja`): `x` X[M,K]; `w` Wᵀ[K,N] (two
//! bf16 planes per k-block with split weights) followed by the parameter tiles; `r` R[M,N] if
//! the entry adds a residual; `y` Y[M,N]. All zero-padded, row-major.
//!
//! bf16: parameter word 0 = bias (the bf16-rounded bias as f32, as the CPU model reads it).
//! int8: x quantised per tensor (sx = max|x|/127), weights per tensor or per channel; words
//! 0 = bias (f32), 1 = sx·sw[n], 2 = 1/s_out. The output scale s_out of `requantize_output`
//! is found by calibration runs (see `requant.rs`).

use std::sync::Arc;

use kernel_spec::{KernelSpec, Op, Quant, WeightScale};

use super::bytes::{get_bf16, get_i8, put_bf16_run, put_i8};
use super::gemm::{bf16_b_image, put_param_words, Gemm};
use super::{call_error, layout_error, requant, Elem, HostArg, Image, Invocation, RunStats};
use crate::numerics::{int8_scale, quantize_i8};
use crate::{Epilogue, Linear, RuntimeError};

/// The host layout of one matmul entry.
#[derive(Debug, Clone, PartialEq)]
pub struct MatmulLayout {
    pub(crate) name: String,
    pub(crate) origin: String,
    pub(crate) gemm: Gemm,
    /// Unpadded shape of the entry (`m` is the most rows a call may have).
    pub(crate) m: usize,
    pub(crate) k: usize,
    pub(crate) n: usize,
    pub(crate) bias: bool,
    pub(crate) gelu: bool,
    pub(crate) quant: Option<Quant>,
}

impl MatmulLayout {
    pub fn of(spec: &KernelSpec) -> Result<MatmulLayout, RuntimeError> {
        let Op::Matmul {
            m,
            k,
            n,
            bias,
            gelu,
            quant,
            ..
        } = spec.op
        else {
            return Err(layout_error(spec, "not a matmul entry"));
        };
        let (input, out) = match quant {
            Some(q) if q.requantize_output => (Elem::I8, Elem::I8),
            Some(_) => (Elem::I8, Elem::Bf16),
            None => (Elem::Bf16, Elem::Bf16),
        };
        Ok(MatmulLayout {
            name: spec.name.clone(),
            origin: spec.origin(),
            gemm: Gemm::of(spec, input, out)?,
            m,
            k,
            n,
            bias,
            gelu,
            quant,
        })
    }

    pub fn args(&self) -> &[HostArg] {
        &self.gemm.args
    }

    fn pass(&self) -> &super::gemm::Pass {
        &self.gemm.passes[0]
    }

    /// Checks that a call fits the entry: `rows` ≤ m, the layer's shape, the epilogue.
    fn check(&self, rows: usize, lin: &Linear, epi: &Epilogue<'_>) -> Result<(), RuntimeError> {
        let p = self.pass();
        if rows > p.m || lin.in_f != self.k || lin.out_f != self.n {
            return Err(call_error(
                &self.origin,
                format!(
                    "the entry is {}x{}x{}, the call is {rows}x{}x{}",
                    self.m, self.k, self.n, lin.in_f, lin.out_f
                ),
            ));
        }
        if lin.b.is_some() && !self.bias {
            return Err(call_error(
                &self.origin,
                "the call has a bias, the entry none",
            ));
        }
        if epi.gelu != self.gelu || epi.residual.is_some() != p.residual {
            return Err(call_error(
                &self.origin,
                "the call's epilogue (GELU, residual) differs from the entry's",
            ));
        }
        Ok(())
    }

    /// X (bf16) into the `x` buffer.
    pub fn pack_x(&self, x: &[f32], rows: usize, dst: &mut [u8]) {
        let p = self.pass();
        dst.fill(0);
        for r in 0..rows {
            put_bf16_run(dst, r * p.k, &x[r * self.k..(r + 1) * self.k]);
        }
    }

    /// X quantised per tensor (over the call's rows) into the `x` buffer; returns sx.
    pub fn pack_x_int8(&self, x: &[f32], rows: usize, dst: &mut [u8]) -> f32 {
        let p = self.pass();
        let sx = int8_scale(&x[..rows * self.k]);
        dst.fill(0);
        for r in 0..rows {
            for i in 0..self.k {
                put_i8(dst, r * p.k + i, quantize_i8(x[r * self.k + i], sx));
            }
        }
        sx
    }

    /// R (bf16) into the `r` buffer.
    pub fn pack_residual(&self, res: &[f32], rows: usize, dst: &mut [u8]) {
        let p = self.pass();
        dst.fill(0);
        for r in 0..rows {
            put_bf16_run(dst, r * p.n, &res[r * self.n..(r + 1) * self.n]);
        }
    }

    /// The `w` buffer of a bf16 entry for `w` (`[n, k]`) and `bias`: Wᵀ (planes) and the
    /// parameter tiles. An entry with a bias serves a layer without one (zeros).
    pub fn weights_image(&self, w: &[f32], bias: Option<&[f32]>) -> Image {
        bf16_b_image(&self.gemm, 0, w, (self.n, self.k), bias)
    }

    /// The weights part of an int8 entry's `w` buffer (Wᵀ quantised as the spec says) and
    /// the weight scales (one, or one per output channel).
    pub fn int8_weights_image(&self, w: &[f32]) -> Image {
        let p = self.pass();
        let per_channel =
            matches!(self.quant, Some(q) if q.weight_scale == WeightScale::PerChannel);
        let scales: Vec<f32> = if per_channel {
            w.chunks(self.k).map(int8_scale).collect()
        } else {
            vec![int8_scale(w)]
        };
        let mut bytes = vec![0u8; self.gemm.b_weight_bytes(0)];
        for c in 0..self.n {
            let s = scales[if per_channel { c } else { 0 }];
            for i in 0..self.k {
                put_i8(&mut bytes, i * p.n + c, quantize_i8(w[c * self.k + i], s));
            }
        }
        Image { bytes, scales }
    }

    /// The int8 parameter tiles (written after the weights image in the `w` buffer): bias,
    /// sx·sw[c] and `inv_out` = 1/s_out per channel.
    pub fn pack_params_int8(
        &self,
        weights: &Image,
        bias: Option<&[f32]>,
        sx: f32,
        inv_out: f32,
        dst: &mut [u8],
    ) {
        let sw = |c: usize| weights.scales[if weights.scales.len() == 1 { 0 } else { c }];
        dst.fill(0);
        let t = (self.gemm.tk, self.gemm.tn);
        put_param_words(dst, Elem::I8, t, self.n, 3, |c, w| match w {
            0 => bias.map_or(0.0, |b| b[c]).to_bits(),
            1 => (sx * sw(c)).to_bits(),
            _ => inv_out.to_bits(),
        });
    }

    /// Y of the call's rows into `out` (`[rows, n]`); int8 outputs are dequantised with
    /// `out_scale`.
    pub fn unpack_y(&self, src: &[u8], rows: usize, out_scale: f32, out: &mut [f32]) {
        let p = self.pass();
        let int8 = self.gemm.args[p.c].elem == Elem::I8;
        for r in 0..rows {
            for (c, o) in out[r * self.n..(r + 1) * self.n].iter_mut().enumerate() {
                let i = r * p.n + c;
                *o = if int8 {
                    f32::from(get_i8(src, i)) * out_scale
                } else {
                    get_bf16(src, i)
                };
            }
        }
    }

    /// Cache key of this entry's weights image in a [`Linear`].
    fn image_key(&self) -> String {
        format!("{}/w", self.name)
    }
}

/// Runs `out[rows, n] = x · Wᵀ + b (GELU) (+ residual)` through the entry's design.
pub fn run(
    inv: &mut dyn Invocation,
    lay: &MatmulLayout,
    x: &[f32],
    rows: usize,
    lin: &Linear,
    epi: Epilogue<'_>,
    out: &mut [f32],
) -> Result<RunStats, RuntimeError> {
    lay.check(rows, lin, &epi)?;
    let p = lay.pass().clone();
    if lay.quant.is_some() {
        return run_int8(inv, lay, x, rows, lin, out);
    }
    lay.pack_x(x, rows, inv.write(p.a, 0));
    let img = lin.image(&lay.image_key(), || {
        lay.weights_image(&lin.w, lin.b.as_deref())
    });
    inv.load_image(p.b, &img);
    if let (Some(r), Some(res)) = (p.r, epi.residual) {
        lay.pack_residual(res, rows, inv.write(r, 0));
    }
    let stats = inv.run(&[p.c])?;
    lay.unpack_y(inv.bytes(p.c), rows, 1.0, out);
    Ok(stats)
}

fn run_int8(
    inv: &mut dyn Invocation,
    lay: &MatmulLayout,
    x: &[f32],
    rows: usize,
    lin: &Linear,
    out: &mut [f32],
) -> Result<RunStats, RuntimeError> {
    let p = lay.pass().clone();
    let sx = lay.pack_x_int8(x, rows, inv.write(p.a, 0));
    let img: Arc<Image> = lin.image(&lay.image_key(), || lay.int8_weights_image(&lin.w));
    inv.load_image(p.b, &img);
    let at = img.bytes.len();
    let bias = lin.b.as_deref();
    let mut stats = RunStats::default();
    let requantize = matches!(lay.quant, Some(q) if q.requantize_output);
    let s_out = if requantize {
        let call = requant::Int8Call {
            lay,
            weights: &img,
            sx,
            bias,
            rows,
        };
        let mut write = |inv: &mut dyn Invocation, inv_out: f32| {
            lay.pack_params_int8(&img, bias, sx, inv_out, inv.write(p.b, at));
        };
        let (s, st) = requant::output_scale(inv, &call, &mut write)?;
        stats += st;
        s
    } else {
        1.0
    };
    // 1/s_out is read only by requantising kernels (0 otherwise).
    let inv_out = if requantize { 1.0 / s_out } else { 0.0 };
    lay.pack_params_int8(&img, bias, sx, inv_out, inv.write(p.b, at));
    stats += inv.run(&[p.c])?;
    lay.unpack_y(inv.bytes(p.c), rows, s_out, out);
    Ok(stats)
}
