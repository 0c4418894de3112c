//! Multi-head scaled-dot-product attention: per (head, query block) task, QKᵀ with gemm, stable
//! softmax with the causal mask, then P·V with gemm straight into the output.

use rayon::prelude::*;

use super::norm::softmax_row;
use super::{gemm_f32, with_f32, Blocks, SyncPtr};
use crate::math::simd_dispatch;
use crate::numerics;
use crate::AttentionParams;

/// `q: [q_len, heads·head_dim]`, `k, v: [≥kv_len, heads·head_dim]`, `out: [q_len, heads·head_dim]`.
/// With `bf16`, q, k, v and the probabilities are rounded to bf16 (f32 scores and softmax) and
/// the output is stored as bf16.
pub(crate) fn attention(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    p: &AttentionParams,
    bf16: bool,
    out: &mut [f32],
) {
    let hd = p.heads * p.head_dim;
    if bf16 {
        let (nq, nkv) = (p.q_len * hd, p.kv_len * hd);
        with_f32(nq + 2 * nkv, |buf| {
            let (qr, rest) = buf.split_at_mut(nq);
            let (kr, vr) = rest.split_at_mut(nkv);
            numerics::round_bf16_into(&q[..nq], qr);
            numerics::round_bf16_into(&k[..nkv], kr);
            numerics::round_bf16_into(&v[..nkv], vr);
            attention_f32(qr, kr, vr, p, true, out);
        })
    } else {
        attention_f32(q, k, v, p, false, out)
    }
}

/// Most queries the decoding path ([`attention_few_queries`]) takes; more go to the gemm path.
const FEW_QUERIES: usize = 8;

fn attention_f32(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    p: &AttentionParams,
    bf16: bool,
    out: &mut [f32],
) {
    if p.q_len <= FEW_QUERIES {
        return attention_few_queries(q, k, v, p, bf16, out);
    }
    let (h_n, d, q_len, kv_len) = (p.heads, p.head_dim, p.q_len, p.kv_len);
    let hd = h_n * d;
    let scale = 1.0 / (d as f32).sqrt();
    let threads = rayon::current_num_threads().max(1);
    // Enough query blocks to feed every thread, each small enough that its score rows stay in L2.
    let q_parts = (4 * threads).div_ceil(h_n).max(q_len.div_ceil(64));
    let qb = Blocks::new(q_len, q_parts, 8, 8);
    let n_tasks = h_n * qb.count();
    let optr = SyncPtr(out.as_mut_ptr());
    let run = |task: usize| {
        let (h, (q0, q1)) = (task / qb.count(), qb.get(task % qb.count()));
        let m = q1 - q0;
        // Keys visible to the last query of the block.
        let kv_eff = match p.causal_offset {
            Some(off) => (off + q1).min(kv_len),
            None => kv_len,
        };
        with_f32(m * kv_eff, |s| {
            // SAFETY: q/k/v extents were validated; the task owns out rows q0..q1, head h.
            unsafe {
                gemm_f32(
                    m,
                    kv_eff,
                    d,
                    s.as_mut_ptr(),
                    kv_eff,
                    q.as_ptr().add(q0 * hd + h * d),
                    hd,
                    1,
                    k.as_ptr().add(h * d),
                    1,
                    hd,
                );
            }
            for (i, row) in s.chunks_mut(kv_eff.max(1)).enumerate().take(m) {
                let visible = match p.causal_offset {
                    Some(off) => (off + q0 + i + 1).min(kv_eff),
                    None => kv_eff,
                };
                softmax_row(row, visible, scale, bf16);
            }
            // SAFETY: as above.
            unsafe {
                gemm_f32(
                    m,
                    d,
                    kv_eff,
                    optr.ptr().add(q0 * hd + h * d),
                    hd,
                    s.as_ptr(),
                    kv_eff,
                    1,
                    v.as_ptr().add(h * d),
                    hd,
                    1,
                );
                if bf16 {
                    // The kernel stores its output as bf16.
                    for i in q0..q1 {
                        numerics::round_bf16_inplace(std::slice::from_raw_parts_mut(
                            optr.ptr().add(i * hd + h * d),
                            d,
                        ));
                    }
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

/// Attention for a few queries (decoding: one new token per beam, or every beam's query against
/// the shared encoder output). gemm's packing costs more than the product here, and walking one
/// head at a time would read each 2 KiB key row in 256-byte pieces a page apart, which defeats
/// the prefetcher. So keys are streamed row by row, all heads and queries at once (scores over
/// blocks of key rows), then softmax per (head, query), then values are streamed row by row by
/// groups of heads, each output summed over the keys in order as a matmul kernel would.
fn attention_few_queries(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    p: &AttentionParams,
    bf16: bool,
    out: &mut [f32],
) {
    let (heads, d, q_len) = (p.heads, p.head_dim, p.q_len);
    let hd = heads * d;
    // Keys visible to the last query.
    let kv_eff = match p.causal_offset {
        Some(off) => (off + q_len).min(p.kv_len),
        None => p.kv_len,
    };
    // Blocks of ~256 KiB of keys: enough to share between threads.
    let rows_per_block = (65_536 / hd.max(1)).max(16);
    let kb = Blocks::new(kv_eff, kv_eff.div_ceil(rows_per_block), 1, 1);
    let parallel = kb.count() > 1;
    let n_scores = heads * q_len * kv_eff;
    with_f32(n_scores, |scores| {
        // 1. scores[h][i][j] = q_i,h · k_j,h
        let sptr = SyncPtr(scores.as_mut_ptr());
        let score_block = |b: usize| {
            let (j0, j1) = kb.get(b);
            with_f32((j1 - j0) * hd, |kt| {
                // SAFETY: block b alone writes columns j0..j1 of every score row.
                unsafe { scores_block(q, k, p, kv_eff, j0, j1, kt, sptr) };
            });
        };
        if parallel {
            (0..kb.count()).into_par_iter().for_each(score_block);
        } else {
            (0..kb.count()).for_each(score_block);
        }
        // 2. softmax per (head, query) row, causal mask included.
        let scale = 1.0 / (d as f32).sqrt();
        for (r, row) in scores.chunks_exact_mut(kv_eff).enumerate() {
            let i = r % q_len;
            let visible = match p.causal_offset {
                Some(off) => (off + i + 1).min(kv_eff),
                None => kv_eff,
            };
            softmax_row(row, visible, scale, bf16);
        }
        // 3. out[i][h] = sum over j of p_h,i,j · v_j,h, heads split into one group per thread.
        let scores: &[f32] = scores;
        let groups = if parallel {
            rayon::current_num_threads().clamp(1, heads)
        } else {
            1
        };
        let hb = Blocks::new(heads, groups, 1, 1);
        let optr = SyncPtr(out.as_mut_ptr());
        let value_group = |g: usize| {
            let (h0, h1) = hb.get(g);
            with_f32((h1 - h0) * q_len * d, |acc| {
                values_heads(scores, v, p, kv_eff, h0, h1, acc);
                for h in h0..h1 {
                    for i in 0..q_len {
                        let src = &acc[((h - h0) * q_len + i) * d..((h - h0) * q_len + i + 1) * d];
                        // SAFETY: this group alone writes heads h0..h1 of every output row.
                        let o = unsafe {
                            std::slice::from_raw_parts_mut(optr.ptr().add(i * hd + h * d), d)
                        };
                        o.copy_from_slice(src);
                        if bf16 {
                            // The kernel stores its output as bf16.
                            numerics::round_bf16_inplace(o);
                        }
                    }
                }
            });
        };
        if hb.count() > 1 {
            (0..hb.count()).into_par_iter().for_each(value_group);
        } else {
            (0..hb.count()).for_each(value_group);
        }
    });
}

/// Scores of key rows `j0..j1` for every head and query, into `scores[h][i][j]` (row length
/// `kv_eff`). The block is first transposed into `kt[h][t][j]` (read once, in order), so that
/// each score is summed over the head dimension in order, as the matmul kernels sum, with the
/// block's keys in the vector lanes.
///
/// # Safety
/// `scores` must hold `heads × q_len × kv_eff` elements; no other thread writes columns j0..j1.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn scores_block_generic(
    q: &[f32],
    k: &[f32],
    p: &AttentionParams,
    kv_eff: usize,
    j0: usize,
    j1: usize,
    kt: &mut [f32],
    scores: SyncPtr<f32>,
) {
    let (heads, d, q_len) = (p.heads, p.head_dim, p.q_len);
    let hd = heads * d;
    let w = j1 - j0;
    for j in j0..j1 {
        let kj = &k[j * hd..(j + 1) * hd];
        for (c, &x) in kj.iter().enumerate() {
            // c = h·d + t  →  kt[(h·d + t)·w + (j - j0)]
            kt[c * w + (j - j0)] = x;
        }
    }
    for h in 0..heads {
        for i in 0..q_len {
            let qi = &q[i * hd + h * d..i * hd + h * d + d];
            // SAFETY: row (h, i), columns j0..j1 belong to this block (caller's contract).
            let row = unsafe {
                std::slice::from_raw_parts_mut(scores.ptr().add((h * q_len + i) * kv_eff + j0), w)
            };
            row.fill(0.0);
            for (t, &qt) in qi.iter().enumerate() {
                let ktr = &kt[(h * d + t) * w..(h * d + t + 1) * w];
                for (sv, &kv) in row.iter_mut().zip(ktr) {
                    *sv += qt * kv;
                }
            }
        }
    }
}

/// [`scores_block_generic`] compiled for AVX2 where the CPU has it.
///
/// # Safety
/// As for [`scores_block_generic`].
#[allow(clippy::too_many_arguments)]
unsafe fn scores_block(
    q: &[f32],
    k: &[f32],
    p: &AttentionParams,
    kv_eff: usize,
    j0: usize,
    j1: usize,
    kt: &mut [f32],
    scores: SyncPtr<f32>,
) {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx2,fma")]
        #[allow(clippy::too_many_arguments)]
        unsafe fn avx2(
            q: &[f32],
            k: &[f32],
            p: &AttentionParams,
            kv_eff: usize,
            j0: usize,
            j1: usize,
            kt: &mut [f32],
            scores: SyncPtr<f32>,
        ) {
            // SAFETY: forwarded contract.
            unsafe { scores_block_generic(q, k, p, kv_eff, j0, j1, kt, scores) }
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU has AVX2 and FMA; forwarded contract.
            return unsafe { avx2(q, k, p, kv_eff, j0, j1, kt, scores) };
        }
    }
    // SAFETY: forwarded contract.
    unsafe { scores_block_generic(q, k, p, kv_eff, j0, j1, kt, scores) }
}

/// `acc[h - h0][i][..] = Σ_j scores[h][i][j] · v_j,h` for heads `h0..h1`, keys in order.
#[inline(always)]
fn values_heads_generic(
    scores: &[f32],
    v: &[f32],
    p: &AttentionParams,
    kv_eff: usize,
    h0: usize,
    h1: usize,
    acc: &mut [f32],
) {
    let (d, q_len) = (p.head_dim, p.q_len);
    let hd = p.heads * d;
    acc.fill(0.0);
    for j in 0..kv_eff {
        let vj = &v[j * hd + h0 * d..j * hd + h1 * d];
        for h in h0..h1 {
            let vjh = &vj[(h - h0) * d..(h - h0 + 1) * d];
            for i in 0..q_len {
                let pij = scores[(h * q_len + i) * kv_eff + j];
                let r = (h - h0) * q_len + i;
                for (a, &x) in acc[r * d..(r + 1) * d].iter_mut().zip(vjh) {
                    *a += pij * x;
                }
            }
        }
    }
}
simd_dispatch!(fn values_heads(scores: &[f32], v: &[f32], p: &AttentionParams, kv_eff: usize, h0: usize, h1: usize, acc: &mut [f32]) => values_heads_generic);
