//! The int8 products: output tiles of microkernel calls, dequantisation, the f32 epilogue, and
//! the parallel drivers for matmul, FFN and the sparse LM head.
//!
//! One code path serves both shapes. Decoding (a few rows) is one row block split over column
//! blocks: each panel is streamed from memory once and reused from L1 by every row chunk.
//! Encoding (1500 rows) splits rows into blocks that stay in L2 while each panel pair, hot in
//! L1, meets every row chunk of the block.

use std::cell::RefCell;

use rayon::prelude::*;

use super::isa::{Acc, Isa, Operands, GROUP, MAX_ROWS, PANEL};
use super::pack::Int8Weights;
use super::quant::{quantize_rows, QuantRows};
use crate::cpu::matmul::{epilogue_tile, Epi};
use crate::cpu::{with_f32, with_pool, Blocks, Pool, SyncPtr};

thread_local! {
    static U8_POOL: Pool<u8> = const { Pool { free: RefCell::new(Vec::new()) } };
}

fn with_u8<R>(len: usize, f: impl FnOnce(&mut [u8]) -> R) -> R {
    with_pool(&U8_POOL, len, f)
}

/// Bytes per quantised activation row for weights `w`.
fn lda(w: &Int8Weights) -> usize {
    w.groups.max(1) * GROUP
}

/// Output rows `0..m` (activation rows `a0..a0+m` of `qa`) × panels `p0..p1`, written to `out`
/// (row stride `n` = the layer's outputs), then `epi` on that tile (residual indexed like `out`).
///
/// # Safety
/// `out` must be valid for `m × n` elements, no other thread may touch this tile, and `isa`
/// must be available.
unsafe fn tile(
    isa: Isa,
    qa: &QuantRows<'_>,
    a0: usize,
    m: usize,
    w: &Int8Weights,
    (p0, p1): (usize, usize),
    out: SyncPtr<f32>,
    epi: &Epi<'_>,
) {
    let n = w.n;
    let (step_r, step_p) = (isa.rows(), isa.panels());
    let offset = isa.offset();
    let mut acc: Acc = [[0; 32]; MAX_ROWS];
    let mut p = p0;
    while p < p1 {
        let np = step_p.min(p1 - p);
        let c0 = p * PANEL;
        let cols = (np * PANEL).min(n - c0);
        let mut r = 0;
        while r < m {
            let rr = step_r.min(m - r);
            let op = Operands {
                a: qa.data.as_ptr().add((a0 + r) * qa.lda),
                lda: qa.lda,
                w: w.q.as_ptr().add(p * w.panel_stride()),
                panel_stride: w.panel_stride(),
                groups: w.groups,
            };
            isa.kernel(rr, np, op, &mut acc);
            for (i, acc_row) in acc.iter().enumerate().take(rr) {
                let sx = qa.scales[a0 + r + i];
                let orow = std::slice::from_raw_parts_mut(out.ptr().add((r + i) * n + c0), cols);
                let scales = &w.scales[c0..c0 + cols];
                if offset {
                    let sums = &w.offset_sums[c0..c0 + cols];
                    for (((o, &s), &a), &z) in orow.iter_mut().zip(scales).zip(acc_row).zip(sums) {
                        *o = (a - z) as f32 * (sx * s);
                    }
                } else {
                    for ((o, &s), &a) in orow.iter_mut().zip(scales).zip(acc_row) {
                        *o = a as f32 * (sx * s);
                    }
                }
            }
            r += rr;
        }
        p += np;
    }
    let cols = (p0 * PANEL, (p1 * PANEL).min(n));
    epilogue_tile(out, n, (0, m), cols, epi);
}

/// `epi` for output rows starting at `r0` of a layer with `n` outputs.
fn shifted<'a>(epi: &Epi<'a>, r0: usize, n: usize) -> Epi<'a> {
    Epi {
        residual: epi.residual.map(|r| &r[r0 * n..]),
        ..*epi
    }
}

/// Runs the tiles of an `rows × n` product of quantised rows `qa` in parallel.
fn run_tiles(
    isa: Isa,
    qa: &QuantRows<'_>,
    rows: usize,
    w: &Int8Weights,
    epi: &Epi<'_>,
    out: &mut [f32],
) {
    let threads = rayon::current_num_threads().max(1);
    let target = if threads == 1 { 1 } else { 4 * threads };
    let panels = w.panels();
    // Row blocks of ~96 rows (activations stay in L2), then enough column blocks (whole panel
    // pairs) for `target` tasks.
    let row_parts = rows.div_ceil(96).clamp(1, target);
    let col_parts = target.div_ceil(row_parts).min(panels.div_ceil(2)).max(1);
    let rb = Blocks::new(rows, row_parts, isa.rows(), 1);
    let cb = Blocks::new(panels, col_parts, 2, 1);
    let (n, optr) = (w.n, SyncPtr(out.as_mut_ptr()));
    let run = |t: usize| {
        let ((r0, r1), pc) = (rb.get(t / cb.count()), cb.get(t % cb.count()));
        let epi = shifted(epi, r0, n);
        // SAFETY: tiles are disjoint; the caller checked the extents; `isa` was checked.
        unsafe {
            tile(
                isa,
                qa,
                r0,
                r1 - r0,
                w,
                pc,
                SyncPtr(optr.ptr().add(r0 * n)),
                &epi,
            )
        };
    };
    match rb.count() * cb.count() {
        0 => {}
        1 => run(0),
        t => (0..t).into_par_iter().for_each(run),
    }
}

/// `out[rows×n] = x[rows×k] · Wᵀ`, then `epi`.
pub(crate) fn matmul(
    isa: Isa,
    x: &[f32],
    rows: usize,
    w: &Int8Weights,
    epi: &Epi<'_>,
    out: &mut [f32],
) {
    let lda = lda(w);
    with_u8(rows * lda, |a| {
        with_f32(rows, |s| {
            quantize_rows(x, rows, w.k, lda, isa.offset(), a, s);
            let qa = QuantRows {
                data: a,
                lda,
                scales: s,
            };
            run_tiles(isa, &qa, rows, w, epi, out);
        })
    });
}

/// `out = residual + fc2(GELU(fc1(x)))` with biases `b1`, `b2`. Many rows: row blocks run
/// fc1 → GELU → quantise → fc2 with the intermediate in per-thread buffers (it stays in L2);
/// few rows: two matmuls split over columns.
pub(crate) fn ffn(
    isa: Isa,
    x: &[f32],
    rows: usize,
    (w1, b1): (&Int8Weights, Option<&[f32]>),
    (w2, b2): (&Int8Weights, Option<&[f32]>),
    residual: &[f32],
    out: &mut [f32],
) {
    let (d, dff) = (w1.k, w1.n);
    let epi1 = Epi {
        bias: b1,
        gelu: true,
        residual: None,
        round_residual: false,
        round_out: false,
    };
    let epi2 = Epi {
        bias: b2,
        gelu: false,
        residual: Some(residual),
        round_residual: false,
        round_out: false,
    };
    let threads = rayon::current_num_threads().max(1);
    if rows < 32 * threads {
        return with_f32(rows * dff, |h| {
            matmul(isa, x, rows, w1, &epi1, h);
            matmul(isa, h, rows, w2, &epi2, out);
        });
    }
    let rb = Blocks::new(
        rows,
        (rows / 64).clamp(threads, 8 * threads),
        isa.rows(),
        16,
    );
    let (l1, l2) = (lda(w1), lda(w2));
    let optr = SyncPtr(out.as_mut_ptr());
    (0..rb.count()).into_par_iter().for_each(|b| {
        let (r0, r1) = rb.get(b);
        let m = r1 - r0;
        with_u8(m * l1.max(l2), |a| {
            with_f32(m * dff + m, |buf| {
                let (h, s) = buf.split_at_mut(m * dff);
                quantize_rows(&x[r0 * d..r1 * d], m, d, l1, isa.offset(), a, s);
                let qa = QuantRows {
                    data: a,
                    lda: l1,
                    scales: s,
                };
                let hptr = SyncPtr(h.as_mut_ptr());
                // SAFETY: `h` is m × dff and this task's own; output rows r0..r1 are this
                // task's; `isa` was checked by the caller.
                unsafe { tile(isa, &qa, 0, m, w1, (0, w1.panels()), hptr, &epi1) };
                quantize_rows(h, m, dff, l2, isa.offset(), a, s);
                let qa = QuantRows {
                    data: a,
                    lda: l2,
                    scales: s,
                };
                let epi2 = shifted(&epi2, r0, d);
                unsafe {
                    tile(
                        isa,
                        &qa,
                        0,
                        m,
                        w2,
                        (0, w2.panels()),
                        SyncPtr(optr.ptr().add(r0 * d)),
                        &epi2,
                    )
                };
            })
        })
    });
}

/// Sparse LM head: `out[r, i] = x_r · W[subset[i]] (+ b)`, the same values the full product
/// gives for those channels.
pub(crate) fn lm_head_subset(
    x: &[f32],
    rows: usize,
    w: &Int8Weights,
    bias: Option<&[f32]>,
    subset: &[u32],
    out: &mut [f32],
) {
    let (lda, s) = (lda(w), subset.len());
    with_u8(rows * lda, |a| {
        with_f32(rows, |sx| {
            quantize_rows(x, rows, w.k, lda, false, a, sx);
            let a: &[u8] = a;
            let sx: &[f32] = sx;
            let chunk = s.div_ceil(4 * rayon::current_num_threads().max(1)).max(64);
            for r in 0..rows {
                // Signed activations: the kernels' byte layout without the offset.
                let ar: Vec<i8> = a[r * lda..(r + 1) * lda].iter().map(|&v| v as i8).collect();
                out[r * s..(r + 1) * s]
                    .par_chunks_mut(chunk)
                    .enumerate()
                    .for_each(|(ci, o)| {
                        for (j, o) in o.iter_mut().enumerate() {
                            let c = subset[ci * chunk + j] as usize;
                            let v = w.dot_channel(&ar, c) as f32 * (sx[r] * w.scales[c]);
                            *o = v + bias.map_or(0.0, |b| b[c]);
                        }
                    });
            }
        })
    });
}
