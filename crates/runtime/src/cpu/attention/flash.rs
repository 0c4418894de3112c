//! Attention for many queries (the encoder, prompts) in f32, flash-attention style: one task per
//! (head, block of queries) walks the keys in blocks of [`KEYS`]; per key block, the scores
//! `S = Q·Kᵀ` (gemm), an online softmax (running row max `m` and sum `l`; the output so far is
//! rescaled by `exp(m_old − m_new)` when the max grows), then `O += P·V` (gemm) straight into
//! the output rows. A score block stays in L2 and no whole score row is ever held.

use rayon::prelude::*;

use crate::cpu::{gemm_f32, with_f32, Blocks, SyncPtr};
use crate::math;
use crate::AttentionParams;

/// Keys per block: scores of a query block over them stay in L2, and each product is large
/// enough for gemm's packing to pay.
const KEYS: usize = 256;
/// Most queries per task.
const QUERIES: usize = 128;

pub(super) fn attention(q: &[f32], k: &[f32], v: &[f32], p: &AttentionParams, out: &mut [f32]) {
    let (h_n, d, q_len, kv_len) = (p.heads, p.head_dim, p.q_len, p.kv_len);
    let hd = h_n * d;
    let scale = 1.0 / (d as f32).sqrt();
    let threads = rayon::current_num_threads().max(1);
    // Enough query blocks to feed every thread.
    let q_parts = (4 * threads).div_ceil(h_n).max(q_len.div_ceil(QUERIES));
    let qb = Blocks::new(q_len, q_parts, 8, 8);
    let n_tasks = h_n * qb.count();
    let optr = SyncPtr(out.as_mut_ptr());
    let run = |task: usize| {
        let (h, (q0, q1)) = (task / qb.count(), qb.get(task % qb.count()));
        let m = q1 - q0;
        // Keys visible to query row r of the block.
        let visible = |r: usize| match p.causal_offset {
            Some(off) => (off + q0 + r + 1).min(kv_len),
            None => kv_len,
        };
        let kv_eff = visible(m - 1);
        with_f32(m * KEYS + 2 * m, |buf| {
            let (s, stats) = buf.split_at_mut(m * KEYS);
            let (mx, l) = stats.split_at_mut(m);
            mx.fill(f32::NEG_INFINITY);
            l.fill(0.0);
            // SAFETY: the task owns output rows q0..q1, columns of head h.
            let o = unsafe { optr.ptr().add(q0 * hd + h * d) };
            for j0 in (0..kv_eff).step_by(KEYS) {
                let n = KEYS.min(kv_eff - j0);
                // SAFETY: q, k, v extents were validated by the runtime; s holds m × n.
                unsafe {
                    gemm_f32(
                        m,
                        n,
                        d,
                        s.as_mut_ptr(),
                        n,
                        q.as_ptr().add(q0 * hd + h * d),
                        hd,
                        1,
                        k.as_ptr().add(j0 * hd + h * d),
                        1,
                        hd,
                    );
                }
                for (r, row) in s.chunks_exact_mut(n).enumerate().take(m) {
                    let seen = visible(r).clamp(j0, j0 + n) - j0;
                    let corr = online_softmax(row, seen, scale, &mut mx[r], &mut l[r]);
                    if j0 > 0 && corr != 1.0 {
                        // SAFETY: row r of this task's output block.
                        let orow = unsafe { std::slice::from_raw_parts_mut(o.add(r * hd), d) };
                        for x in orow {
                            *x *= corr;
                        }
                    }
                }
                // SAFETY: as above; the first block overwrites the output, later ones add.
                unsafe {
                    gemm_acc(
                        m,
                        d,
                        n,
                        o,
                        hd,
                        s.as_ptr(),
                        n,
                        v.as_ptr().add(j0 * hd + h * d),
                        hd,
                        j0 > 0,
                    )
                };
            }
            for (r, &l) in l.iter().enumerate() {
                let inv = 1.0 / l;
                // SAFETY: as above.
                let orow = unsafe { std::slice::from_raw_parts_mut(o.add(r * hd), d) };
                for x in orow {
                    *x *= inv;
                }
            }
        });
    };
    if n_tasks == 1 {
        run(0);
    } else {
        (0..n_tasks).into_par_iter().for_each(run);
    }
}

/// `dst[m×n] (+)= lhs[m×k] · rhs[k×n]`, all row-major with the given row strides.
///
/// # Safety
/// All pointers valid for the extents described.
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_acc(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut f32,
    dst_rs: usize,
    lhs: *const f32,
    lhs_rs: usize,
    rhs: *const f32,
    rhs_rs: usize,
    accumulate: bool,
) {
    if !accumulate {
        // SAFETY: forwarded.
        return unsafe { gemm_f32(m, n, k, dst, dst_rs, lhs, lhs_rs, 1, rhs, rhs_rs, 1) };
    }
    // SAFETY: forwarded; gemm reads dst (alpha = 1) and adds 1 · lhs · rhs.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            dst_rs as isize,
            true,
            lhs,
            1,
            lhs_rs as isize,
            rhs,
            1,
            rhs_rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    }
}

/// One key block of one query row: `row[..seen]` holds raw scores, the rest are masked. Scales
/// them, raises the running max `mx` if needed, replaces the row by `exp(score − mx)` (0 where
/// masked) and updates the running sum `l`. Returns the factor the output so far must be
/// multiplied by (1 when the max did not grow).
#[inline(always)]
fn online_softmax_generic(
    row: &mut [f32],
    seen: usize,
    scale: f32,
    mx: &mut f32,
    l: &mut f32,
) -> f32 {
    const L: usize = 16;
    let (vis, masked) = row.split_at_mut(seen);
    masked.fill(0.0);
    if vis.is_empty() {
        return 1.0;
    }
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
    let block_max = lanes
        .iter()
        .fold(f32::NEG_INFINITY, |m, &v| if v > m { v } else { m });
    let m_new = if block_max > *mx { block_max } else { *mx };
    // exp(−∞) must be an exact 0: math::exp clamps its argument.
    let corr = if *mx == f32::NEG_INFINITY {
        0.0
    } else {
        math::exp(*mx - m_new)
    };
    *mx = m_new;
    let mut acc = [0.0f32; L];
    let mut chunks = vis.chunks_exact_mut(L);
    for c in &mut chunks {
        for i in 0..L {
            c[i] = math::exp(c[i] - m_new);
            acc[i] += c[i];
        }
    }
    for (i, s) in chunks.into_remainder().iter_mut().enumerate() {
        *s = math::exp(*s - m_new);
        acc[i] += *s;
    }
    let mut w = L;
    while w > 1 {
        w /= 2;
        for i in 0..w {
            acc[i] += acc[i + w];
        }
    }
    *l = *l * corr + acc[0];
    corr
}

/// [`online_softmax_generic`] compiled for the widest vectors the CPU has (same arithmetic and
/// order on every path, so the same bits).
fn online_softmax(row: &mut [f32], seen: usize, scale: f32, mx: &mut f32, l: &mut f32) -> f32 {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f")]
        unsafe fn avx512(
            row: &mut [f32],
            seen: usize,
            scale: f32,
            mx: &mut f32,
            l: &mut f32,
        ) -> f32 {
            online_softmax_generic(row, seen, scale, mx, l)
        }
        #[target_feature(enable = "avx2,fma")]
        unsafe fn avx2(row: &mut [f32], seen: usize, scale: f32, mx: &mut f32, l: &mut f32) -> f32 {
            online_softmax_generic(row, seen, scale, mx, l)
        }
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F.
            return unsafe { avx512(row, seen, scale, mx, l) };
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU has AVX2 and FMA.
            return unsafe { avx2(row, seen, scale, mx, l) };
        }
    }
    online_softmax_generic(row, seen, scale, mx, l)
}
