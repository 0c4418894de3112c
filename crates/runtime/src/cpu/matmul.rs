//! Linear layers: packing, matmul with fused epilogues, FFN and LM head.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use rayon::prelude::*;

use super::{gemm_f32, gemm_f64, gemv, int8, with_f32, with_f64, Blocks, SyncPtr};
use crate::host::Image;
use crate::math::{self, simd_dispatch};
use crate::numerics::{self, round_bf16_bits};
use crate::Prec;

/// A linear layer packed once for the backend: weights `[out_features, in_features]` (PyTorch
/// layout), optional bias, plus lazily built bf16 and int8 copies for `Numerics::Npu`.
pub struct Linear {
    pub(crate) in_f: usize,
    pub(crate) out_f: usize,
    /// Empty when the layer was packed for the int8 kernels (`q8`) and nothing else reads it.
    pub(crate) w: Vec<f32>,
    pub(crate) b: Option<Vec<f32>>,
    /// The weights for the int8 kernels (`ComputeType::Int8` on the CPU backend).
    pub(crate) q8: Option<int8::Int8Weights>,
    bf16: OnceLock<(Vec<f32>, Option<Vec<f32>>)>,
    /// Weights as split-weight kernels read them (`None`: exactly `w`, as for float16
    /// checkpoints) and the bias rounded to bf16.
    split: OnceLock<SplitView>,
    /// The weights as f16 bits when they are all exactly f16 values (float16 checkpoints), for
    /// the memory-bound few-row products of decoding.
    f16: OnceLock<Option<Vec<u16>>>,
    /// [per-tensor, per-channel] int8 weights.
    int8: [OnceLock<QuantWeights>; 2],
    /// Host-buffer images of the weights for the designs that ran this layer, by entry and
    /// argument (`crate::host`).
    images: Mutex<HashMap<String, Arc<Image>>>,
}

/// Split-weight values (`None`: identical to the f32 weights) and the bf16-rounded bias.
type SplitView = (Option<Vec<f32>>, Option<Vec<f32>>);

/// int8 weights held as integral f64 values (exact products and sums in an f64 GEMM).
pub(crate) struct QuantWeights {
    pub(crate) q: Vec<f64>,
    /// One scale (per tensor) or one per output row (per channel).
    pub(crate) scales: Vec<f32>,
}

impl QuantWeights {
    #[inline]
    pub(crate) fn scale(&self, row: usize) -> f32 {
        if self.scales.len() == 1 {
            self.scales[0]
        } else {
            self.scales[row]
        }
    }
}

impl std::fmt::Debug for Linear {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Linear")
            .field("in_features", &self.in_f)
            .field("out_features", &self.out_f)
            .field("bias", &self.b.is_some())
            .finish()
    }
}

impl Linear {
    pub(crate) fn new(
        w: Vec<f32>,
        b: Option<Vec<f32>>,
        in_f: usize,
        out_f: usize,
        bf16_now: bool,
        int8_only: bool,
    ) -> Linear {
        // int8: quantise now (not on the first decoding step) and free the f32 copy.
        let (w, q8) = if int8_only {
            (
                Vec::new(),
                Some(int8::Int8Weights::quantize(&w, in_f, out_f)),
            )
        } else {
            (w, None)
        };
        let lin = Linear {
            in_f,
            out_f,
            w,
            b,
            q8,
            bf16: OnceLock::new(),
            split: OnceLock::new(),
            f16: OnceLock::new(),
            int8: [OnceLock::new(), OnceLock::new()],
            images: Mutex::new(HashMap::new()),
        };
        if bf16_now {
            lin.bf16();
        }
        lin
    }

    pub fn in_features(&self) -> usize {
        self.in_f
    }

    pub fn out_features(&self) -> usize {
        self.out_f
    }

    /// The f32 weights, `[out_features, in_features]`; `None` for a layer packed for the int8
    /// kernels, which keep only the quantised copy.
    pub fn weight(&self) -> Option<&[f32]> {
        self.q8.is_none().then_some(&self.w[..])
    }

    /// The int8 weights, for a layer packed for the int8 kernels.
    pub fn int8_weights(&self) -> Option<&int8::Int8Weights> {
        self.q8.as_ref()
    }

    pub fn bias(&self) -> Option<&[f32]> {
        self.b.as_deref()
    }

    /// Weights and bias rounded to bf16 (the values a bf16 NPU kernel reads).
    pub(crate) fn bf16(&self) -> (&[f32], Option<&[f32]>) {
        let (w, b) = self.bf16.get_or_init(|| {
            let mut w = vec![0.0; self.w.len()];
            numerics::round_bf16_into(&self.w, &mut w);
            (w, self.bias_bf16())
        });
        (w, b.as_deref())
    }

    /// Weights as the two bf16 planes of a split-weight kernel give them (hi + lo), bias
    /// rounded to bf16.
    pub(crate) fn split_bf16(&self) -> (&[f32], Option<&[f32]>) {
        let (w, b) = self.split.get_or_init(|| {
            let w: Vec<f32> = self.w.iter().map(|&v| numerics::split_bf16(v)).collect();
            let same = w
                .iter()
                .zip(&self.w)
                .all(|(a, b)| a.to_bits() == b.to_bits());
            ((!same).then_some(w), self.bias_bf16())
        });
        (w.as_deref().unwrap_or(&self.w), b.as_deref())
    }

    /// The bias as bf16 kernels read it (plain and split-weight alike).
    fn bias_bf16(&self) -> Option<Vec<f32>> {
        self.b
            .as_ref()
            .map(|b| b.iter().map(|&v| round_bf16_bits(v)).collect())
    }

    pub(crate) fn int8(&self, per_channel: bool) -> &QuantWeights {
        self.int8[per_channel as usize].get_or_init(|| {
            let scales: Vec<f32> = if per_channel {
                self.w
                    .chunks(self.in_f.max(1))
                    .map(numerics::int8_scale)
                    .collect()
            } else {
                vec![numerics::int8_scale(&self.w)]
            };
            let mut q = vec![0.0f64; self.w.len()];
            for (r, (qrow, wrow)) in q
                .chunks_mut(self.in_f.max(1))
                .zip(self.w.chunks(self.in_f.max(1)))
                .enumerate()
            {
                let s = if per_channel { scales[r] } else { scales[0] };
                numerics::quantize_into_f64(wrow, s, qrow);
            }
            QuantWeights { q, scales }
        })
    }

    /// The host-buffer image `key` of this layer, packed by `make` on first use.
    pub(crate) fn image(&self, key: &str, make: impl FnOnce() -> Image) -> Arc<Image> {
        // Packing under the lock: concurrent first calls wait instead of packing twice.
        let mut images = self.images.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(im) = images.get(key) {
            return im.clone();
        }
        let im = Arc::new(make());
        images.insert(key.to_string(), im.clone());
        im
    }

    /// The weights as f16 bits, when that is lossless (built on first use).
    pub(crate) fn f16(&self) -> Option<&[u16]> {
        self.f16.get_or_init(|| gemv::exact_f16(&self.w)).as_deref()
    }

    /// Weights and bias as the given precision reads them (f32 or bf16).
    fn float_view(&self, prec: Prec) -> (&[f32], Option<&[f32]>) {
        assert!(
            self.q8.is_none(),
            "an int8-packed layer has no float weights: it runs only where the runtime that packed it does"
        );
        match prec {
            Prec::Bf16 => self.bf16(),
            Prec::Bf16SplitWeights => self.split_bf16(),
            _ => (&self.w, self.b.as_deref()),
        }
    }
}

/// Everything applied to a matmul tile after the accumulation.
#[derive(Clone, Copy)]
pub(crate) struct Epi<'a> {
    pub bias: Option<&'a [f32]>,
    pub gelu: bool,
    /// Residual with the same row stride as the output (`n`).
    pub residual: Option<&'a [f32]>,
    /// Round the residual to bf16 before adding (bf16 kernels read it as bf16).
    pub round_residual: bool,
    /// Store the values as a bf16 NPU kernel does: accumulated from +0, rounded to bf16 (also
    /// used for intermediates that feed another bf16 matmul).
    pub round_out: bool,
}

#[inline(always)]
fn epilogue_row_generic(
    row: &mut [f32],
    bias: Option<&[f32]>,
    gelu: bool,
    residual: Option<&[f32]>,
    round_residual: bool,
    round_out: bool,
) {
    if round_out {
        // The NPU's accumulator starts at +0, so a sum of negative zeros comes out +0 there;
        // the GEMM starts from its first product (-0 · x = -0). Adding +0 settles the sign.
        for y in row.iter_mut() {
            *y += 0.0;
        }
    }
    if let Some(b) = bias {
        for (y, b) in row.iter_mut().zip(b) {
            *y += *b;
        }
    }
    if gelu {
        for y in row.iter_mut() {
            *y = math::gelu(*y);
        }
    }
    if let Some(r) = residual {
        if round_residual {
            for (y, r) in row.iter_mut().zip(r) {
                *y += round_bf16_bits(*r);
            }
        } else {
            for (y, r) in row.iter_mut().zip(r) {
                *y += *r;
            }
        }
    }
    if round_out {
        for y in row.iter_mut() {
            *y = round_bf16_bits(*y);
        }
    }
}
simd_dispatch!(fn epilogue_row(row: &mut [f32], bias: Option<&[f32]>, gelu: bool, residual: Option<&[f32]>, round_residual: bool, round_out: bool) => epilogue_row_generic);

/// Applies `epi` to rows `r0..r1`, columns `c0..c1` of `out` (row stride `n`).
///
/// # Safety
/// `out` must be valid for `r1 * n` elements and no other thread may touch this tile.
pub(crate) unsafe fn epilogue_tile(
    out: SyncPtr<f32>,
    n: usize,
    (r0, r1): (usize, usize),
    (c0, c1): (usize, usize),
    epi: &Epi<'_>,
) {
    if epi.bias.is_none() && !epi.gelu && epi.residual.is_none() && !epi.round_out {
        return;
    }
    for r in r0..r1 {
        let row = std::slice::from_raw_parts_mut(out.ptr().add(r * n + c0), c1 - c0);
        epilogue_row(
            row,
            epi.bias.map(|b| &b[c0..c1]),
            epi.gelu,
            epi.residual.map(|res| &res[r * n + c0..r * n + c1]),
            epi.round_residual,
            epi.round_out,
        );
    }
}

/// Tiles for an `rows × n` output: row blocks when there are many rows (each task reads the whole
/// weight once, the epilogue runs while the tile is in cache), column blocks for decoding. About
/// 4 tiles per thread: on a shared machine fewer, bigger tiles lose more to a stalled core than
/// they save in weight packing.
pub(crate) fn plan_tiles(rows: usize, n: usize) -> Tiles {
    let threads = rayon::current_num_threads().max(1);
    let target = if threads == 1 { 1 } else { 4 * threads };
    let row_parts = rows.div_ceil(64).clamp(1, target);
    let col_parts = target.div_ceil(row_parts).min(n.div_ceil(64)).max(1);
    Tiles {
        rows: Blocks::new(rows, row_parts, 8, 1),
        cols: Blocks::new(n, col_parts, 16, 1),
    }
}

/// Row blocks × column blocks of an output.
#[derive(Clone, Copy)]
pub(crate) struct Tiles {
    rows: Blocks,
    cols: Blocks,
}

type Tile = ((usize, usize), (usize, usize));

impl Tiles {
    fn count(&self) -> usize {
        self.rows.count() * self.cols.count()
    }

    fn get(&self, i: usize) -> Tile {
        let nc = self.cols.count();
        (self.rows.get(i / nc), self.cols.get(i % nc))
    }

    /// Runs `f` on every tile, in parallel when there is more than one.
    fn run(&self, f: impl Fn(Tile) + Sync + Send) {
        match self.count() {
            0 => {}
            1 => f(self.get(0)),
            c => (0..c).into_par_iter().for_each(|i| f(self.get(i))),
        }
    }
}

/// out[rows×n] = x[rows×k] · w[n×k]ᵀ, then `epi`. `x` and `w` are already in the working
/// precision (f32 values, possibly bf16-exact).
pub(crate) fn matmul_float(
    x: &[f32],
    rows: usize,
    k: usize,
    w: &[f32],
    n: usize,
    epi: &Epi<'_>,
    out: &mut [f32],
) {
    debug_assert!(x.len() >= rows * k && w.len() >= n * k && out.len() >= rows * n);
    let tiles = plan_tiles(rows, n);
    let optr = SyncPtr(out.as_mut_ptr());
    tiles.run(|((r0, r1), (c0, c1))| {
        // SAFETY: tiles are disjoint; the extents were checked by the caller.
        unsafe {
            gemm_f32(
                r1 - r0,
                c1 - c0,
                k,
                optr.ptr().add(r0 * n + c0),
                n,
                x.as_ptr().add(r0 * k),
                k,
                1,
                w.as_ptr().add(c0 * k),
                1,
                k,
            );
            epilogue_tile(optr, n, (r0, r1), (c0, c1), epi);
        }
    });
}

/// A float linear layer in precision `prec` (`x` already rounded as `prec` reads it): the f16
/// few-row kernel where it applies (decoding with weights that are exactly the f16 copy: f32,
/// or split-bf16 weights of a float16 checkpoint), the blocked GEMM otherwise.
fn matmul_view(x: &[f32], rows: usize, lin: &Linear, prec: Prec, epi: &Epi<'_>, out: &mut [f32]) {
    let (w, _) = lin.float_view(prec);
    let weights_are_w = std::ptr::eq(w.as_ptr(), lin.w.as_ptr());
    if rows <= gemv::MAX_ROWS && weights_are_w {
        if let Some(w16) = lin.f16() {
            return gemv::gemv_f16(x, rows, lin.in_f, w16, lin.out_f, epi, out);
        }
    }
    matmul_float(x, rows, lin.in_f, w, lin.out_f, epi, out);
}

/// int8 matmul: x quantised per tensor, weights per tensor/channel, exact integer accumulation,
/// dequantised as `acc · (s_x · s_w)`, then `epi` in f32.
pub(crate) fn matmul_int8(
    x: &[f32],
    rows: usize,
    k: usize,
    wq: &QuantWeights,
    n: usize,
    epi: &Epi<'_>,
    requantize: bool,
    out: &mut [f32],
) {
    let sx = numerics::int8_scale(&x[..rows * k]);
    with_f64(rows * k, |xq| {
        numerics::quantize_into_f64(&x[..rows * k], sx, xq);
        let xq: &[f64] = xq;
        let tiles = plan_tiles(rows, n);
        let optr = SyncPtr(out.as_mut_ptr());
        tiles.run(|((r0, r1), (c0, c1))| {
            let (m, nb) = (r1 - r0, c1 - c0);
            with_f64(m * nb, |acc| {
                // SAFETY: extents checked by the caller; `acc` is m×nb.
                unsafe {
                    gemm_f64(
                        m,
                        nb,
                        k,
                        acc.as_mut_ptr(),
                        nb,
                        xq.as_ptr().add(r0 * k),
                        k,
                        wq.q.as_ptr().add(c0 * k),
                        1,
                        k,
                    )
                };
                for r in 0..m {
                    // SAFETY: tiles are disjoint.
                    let orow = unsafe {
                        std::slice::from_raw_parts_mut(optr.ptr().add((r0 + r) * n + c0), nb)
                    };
                    for (j, (o, a)) in orow.iter_mut().zip(&acc[r * nb..(r + 1) * nb]).enumerate() {
                        *o = (*a as f32) * (sx * wq.scale(c0 + j));
                    }
                }
                // SAFETY: as above.
                unsafe { epilogue_tile(optr, n, (r0, r1), (c0, c1), epi) };
            });
        });
    });
    if requantize {
        numerics::fake_quant_inplace(&mut out[..rows * n]);
    }
}

/// The full linear layer in precision `prec`: out = x·Wᵀ + b, GELU, + residual; with
/// `round_out` the result is stored as bf16 (int8 kernels that requantise store int8 instead).
pub(crate) fn linear_forward(
    x: &[f32],
    rows: usize,
    lin: &Linear,
    gelu: bool,
    residual: Option<&[f32]>,
    prec: Prec,
    round_out: bool,
    out: &mut [f32],
) {
    let (k, n) = (lin.in_f, lin.out_f);
    if let (Some(q8), Prec::F32) = (&lin.q8, prec) {
        let epi = Epi {
            bias: lin.b.as_deref(),
            gelu,
            residual,
            round_residual: false,
            round_out: false,
        };
        return int8::matmul(int8::Isa::best(), x, rows, q8, &epi, out);
    }
    match prec {
        Prec::Int8 {
            per_channel,
            requantize,
        } => {
            let epi = Epi {
                bias: lin.b.as_deref(),
                gelu,
                residual,
                round_residual: false,
                round_out: round_out && !requantize,
            };
            matmul_int8(x, rows, k, lin.int8(per_channel), n, &epi, requantize, out);
        }
        Prec::F32 | Prec::Bf16 | Prec::Bf16SplitWeights => {
            let (_, b) = lin.float_view(prec);
            let bf = prec.rounds_to_bf16();
            let epi = Epi {
                bias: b,
                gelu,
                residual,
                round_residual: bf,
                round_out,
            };
            if bf {
                with_f32(rows * k, |xr| {
                    numerics::round_bf16_into(&x[..rows * k], xr);
                    matmul_view(xr, rows, lin, prec, &epi, out);
                });
            } else {
                matmul_view(x, rows, lin, prec, &epi, out);
            }
        }
    }
}

/// out = residual + fc2(GELU(fc1(x))). For many rows, row blocks run fc1 → GELU → fc2 with the
/// `rows_block × d_ff` intermediate in a per-thread buffer (stays in L2); for few rows the two
/// matmuls are split over columns instead.
/// With `round_out` the result is stored as bf16.
pub(crate) fn ffn_forward(
    x: &[f32],
    rows: usize,
    fc1: &Linear,
    fc2: &Linear,
    residual: &[f32],
    prec: Prec,
    round_out: bool,
    out: &mut [f32],
) {
    let (d, dff) = (fc1.in_f, fc1.out_f);
    let threads = rayon::current_num_threads().max(1);
    let bf = prec.rounds_to_bf16();
    if let (Some(q1), Some(q2), Prec::F32) = (&fc1.q8, &fc2.q8, prec) {
        let (l1, l2) = ((q1, fc1.b.as_deref()), (q2, fc2.b.as_deref()));
        return int8::ffn(int8::Isa::best(), x, rows, l1, l2, residual, out);
    }
    match prec {
        Prec::Int8 { .. } => {
            // Per-tensor activation scales need the whole intermediate.
            with_f32(rows * dff, |h| {
                linear_forward(x, rows, fc1, true, None, prec, false, h);
                linear_forward(h, rows, fc2, false, Some(residual), prec, round_out, out);
            });
        }
        Prec::F32 | Prec::Bf16 | Prec::Bf16SplitWeights if rows >= 32 * threads => {
            let (w1, b1) = fc1.float_view(prec);
            let (w2, b2) = fc2.float_view(prec);
            let rb = Blocks::new(rows, (rows / 64).clamp(threads, 8 * threads), 8, 16);
            let optr = SyncPtr(out.as_mut_ptr());
            (0..rb.count()).into_par_iter().for_each(|b| {
                let (r0, r1) = rb.get(b);
                let m = r1 - r0;
                with_f32(m * dff + m * d, |buf| {
                    let (h, xr) = buf.split_at_mut(m * dff);
                    let xin: &[f32] = if bf {
                        numerics::round_bf16_into(&x[r0 * d..r1 * d], xr);
                        xr
                    } else {
                        &x[r0 * d..r1 * d]
                    };
                    let hptr = SyncPtr(h.as_mut_ptr());
                    let epi1 = Epi {
                        bias: b1,
                        gelu: true,
                        residual: None,
                        round_residual: false,
                        round_out: bf,
                    };
                    let epi2 = Epi {
                        bias: b2,
                        gelu: false,
                        residual: Some(residual),
                        round_residual: bf,
                        round_out,
                    };
                    // SAFETY: `h` is m×dff; this task owns output rows r0..r1.
                    unsafe {
                        gemm_f32(
                            m,
                            dff,
                            d,
                            hptr.ptr(),
                            dff,
                            xin.as_ptr(),
                            d,
                            1,
                            w1.as_ptr(),
                            1,
                            d,
                        );
                        epilogue_tile(hptr, dff, (0, m), (0, dff), &epi1);
                        gemm_f32(
                            m,
                            d,
                            dff,
                            optr.ptr().add(r0 * d),
                            d,
                            hptr.ptr(),
                            dff,
                            1,
                            w2.as_ptr(),
                            1,
                            dff,
                        );
                        epilogue_tile(optr, d, (r0, r1), (0, d), &epi2);
                    }
                });
            });
        }
        Prec::F32 | Prec::Bf16 | Prec::Bf16SplitWeights => with_f32(rows * dff, |h| {
            linear_forward(x, rows, fc1, true, None, prec, bf, h);
            let (_, b2) = fc2.float_view(prec);
            let epi2 = Epi {
                bias: b2,
                gelu: false,
                residual: Some(residual),
                round_residual: bf,
                round_out,
            };
            matmul_view(h, rows, fc2, prec, &epi2, out);
        }),
    }
}

/// Sparse LM head: out[r, i] = x_r · E[subset[i]].
pub(crate) fn lm_head_subset(
    x: &[f32],
    rows: usize,
    emb: &Linear,
    subset: &[u32],
    prec: Prec,
    out: &mut [f32],
) {
    let d = emb.in_f;
    let s = subset.len();
    let chunk = s.div_ceil(4 * rayon::current_num_threads().max(1)).max(64);
    if let (Some(q8), Prec::F32) = (&emb.q8, prec) {
        return int8::lm_head_subset(x, rows, q8, emb.b.as_deref(), subset, out);
    }
    match prec {
        Prec::Int8 {
            per_channel,
            requantize,
        } => {
            let wq = emb.int8(per_channel);
            let sx = numerics::int8_scale(&x[..rows * d]);
            with_f64(rows * d, |xq| {
                numerics::quantize_into_f64(&x[..rows * d], sx, xq);
                let xq: &[f64] = xq;
                for r in 0..rows {
                    let xr = &xq[r * d..(r + 1) * d];
                    out[r * s..(r + 1) * s]
                        .par_chunks_mut(chunk)
                        .enumerate()
                        .for_each(|(ci, o)| {
                            for (j, o) in o.iter_mut().enumerate() {
                                let id = subset[ci * chunk + j] as usize;
                                let wr = &wq.q[id * d..(id + 1) * d];
                                let acc: f64 = xr.iter().zip(wr).map(|(a, b)| a * b).sum();
                                *o = (acc as f32) * (sx * wq.scale(id))
                                    + emb.b.as_ref().map_or(0.0, |b| b[id]);
                            }
                        });
                }
            });
            if requantize {
                numerics::fake_quant_inplace(&mut out[..rows * s]);
            }
        }
        Prec::F32 | Prec::Bf16 | Prec::Bf16SplitWeights => {
            let (w, b) = emb.float_view(prec);
            let mut run = |xs: &[f32]| {
                for r in 0..rows {
                    let xr = &xs[r * d..(r + 1) * d];
                    out[r * s..(r + 1) * s]
                        .par_chunks_mut(chunk)
                        .enumerate()
                        .for_each(|(ci, o)| {
                            for (j, o) in o.iter_mut().enumerate() {
                                let id = subset[ci * chunk + j] as usize;
                                *o = math::dot(xr, &w[id * d..(id + 1) * d])
                                    + b.map_or(0.0, |b| b[id]);
                            }
                        });
                }
            };
            if prec.rounds_to_bf16() {
                with_f32(rows * d, |xr| {
                    numerics::round_bf16_into(&x[..rows * d], xr);
                    run(xr)
                });
            } else {
                run(x)
            }
        }
    }
}
