//! Attention with whole score rows: per (head, query block) task, QKᵀ with gemm, stable softmax
//! with the causal mask, then P·V with gemm straight into the output; few queries stream keys and
//! values row by row. What NPU numerics (bf16 operands and probabilities) run: the rounding
//! points of the NPU kernel are those of this formulation.

use rayon::prelude::*;

use crate::cpu::norm::softmax_row;
use crate::cpu::{gemm_f32, with_f32, Blocks, SyncPtr};
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
/// blocks of key rows, each score summed over the head dimension in order as the matmul kernels
/// sum), then softmax per (head, query), then values are streamed row by row into per-block
/// partial sums, added in block order.
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
            // SAFETY: block b alone writes columns kb.get(b) of every score row.
            unsafe { scores_block(q, k, p, kv_eff, kb.get(b), sptr) };
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
        // 3. partial[b][h][i][..] = Σ_{j in block b} p_h,i,j · v_j,h, then the blocks' sums in
        //    block order (keys in order within a block).
        let scores: &[f32] = scores;
        let n_acc = heads * q_len * d;
        with_f32(kb.count() * n_acc, |partial| {
            let value_block = |(b, acc): (usize, &mut [f32])| {
                values_block(scores, v, p, kv_eff, kb.get(b), acc);
            };
            if parallel {
                partial
                    .par_chunks_mut(n_acc)
                    .enumerate()
                    .for_each(value_block);
            } else {
                partial.chunks_mut(n_acc).enumerate().for_each(value_block);
            }
            let (first, rest) = partial.split_at_mut(n_acc);
            for other in rest.chunks_exact(n_acc) {
                for (a, &x) in first.iter_mut().zip(other) {
                    *a += x;
                }
            }
            for h in 0..heads {
                for i in 0..q_len {
                    let o = &mut out[i * hd + h * d..i * hd + h * d + d];
                    o.copy_from_slice(&first[(h * q_len + i) * d..(h * q_len + i + 1) * d]);
                    if bf16 {
                        // The kernel stores its output as bf16.
                        numerics::round_bf16_inplace(o);
                    }
                }
            }
        });
    });
}

/// Scores of key rows `j0..j1` for every head and query, into `scores[h][i][j]` (row length
/// `kv_eff`): each score summed over the head dimension in order, as the matmul kernels sum.
///
/// # Safety
/// `scores` must hold `heads × q_len × kv_eff` elements; no other thread writes columns j0..j1.
unsafe fn scores_block(
    q: &[f32],
    k: &[f32],
    p: &AttentionParams,
    kv_eff: usize,
    (j0, j1): (usize, usize),
    scores: SyncPtr<f32>,
) {
    let mut j = j0;
    #[cfg(target_arch = "x86_64")]
    if p.head_dim.is_multiple_of(8)
        && std::arch::is_x86_feature_detected!("avx2")
        && std::arch::is_x86_feature_detected!("fma")
    {
        let full = j0 + (j1 - j0) / 8 * 8;
        // SAFETY: the CPU has AVX2 and FMA; forwarded contract; keys j0..full.
        unsafe { x86::scores_by_8_keys(q, k, p, kv_eff, (j0, full), scores) };
        j = full;
    }
    let (heads, d, q_len) = (p.heads, p.head_dim, p.q_len);
    let hd = heads * d;
    for j in j..j1 {
        for h in 0..heads {
            let kjh = &k[j * hd + h * d..j * hd + h * d + d];
            for i in 0..q_len {
                let qi = &q[i * hd + h * d..i * hd + h * d + d];
                let mut sum = 0.0f32;
                for (&a, &b) in qi.iter().zip(kjh) {
                    sum += a * b;
                }
                // SAFETY: in bounds by the caller's contract; column j is this block's.
                unsafe { *scores.ptr().add((h * q_len + i) * kv_eff + j) = sum };
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::SyncPtr;
    use crate::AttentionParams;

    /// Transposes eight rows of eight floats in registers.
    #[inline(always)]
    unsafe fn transpose8(r: [__m256; 8]) -> [__m256; 8] {
        let t0 = _mm256_unpacklo_ps(r[0], r[1]);
        let t1 = _mm256_unpackhi_ps(r[0], r[1]);
        let t2 = _mm256_unpacklo_ps(r[2], r[3]);
        let t3 = _mm256_unpackhi_ps(r[2], r[3]);
        let t4 = _mm256_unpacklo_ps(r[4], r[5]);
        let t5 = _mm256_unpackhi_ps(r[4], r[5]);
        let t6 = _mm256_unpacklo_ps(r[6], r[7]);
        let t7 = _mm256_unpackhi_ps(r[6], r[7]);
        let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
        let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
        let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
        let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
        let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
        let u5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
        let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
        let u7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
        [
            _mm256_permute2f128_ps::<0x20>(u0, u4),
            _mm256_permute2f128_ps::<0x20>(u1, u5),
            _mm256_permute2f128_ps::<0x20>(u2, u6),
            _mm256_permute2f128_ps::<0x20>(u3, u7),
            _mm256_permute2f128_ps::<0x31>(u0, u4),
            _mm256_permute2f128_ps::<0x31>(u1, u5),
            _mm256_permute2f128_ps::<0x31>(u2, u6),
            _mm256_permute2f128_ps::<0x31>(u3, u7),
        ]
    }

    /// Keys `j0..j1` (a multiple of 8 of them), eight at a time in the vector lanes: the eight
    /// keys' head slices are transposed into `kt[t]` (lane = key), then each query's scores
    /// accumulate `q[t] · kt[t]` for t in order.
    ///
    /// # Safety
    /// AVX2 and FMA present; `head_dim` a multiple of 8; the contract of `super::scores_block`.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn scores_by_8_keys(
        q: &[f32],
        k: &[f32],
        p: &AttentionParams,
        kv_eff: usize,
        (j0, j1): (usize, usize),
        scores: SyncPtr<f32>,
    ) {
        let (heads, d, q_len) = (p.heads, p.head_dim, p.q_len);
        let hd = heads * d;
        assert!(d.is_multiple_of(8) && j1 <= kv_eff && k.len() >= j1 * hd && q.len() >= q_len * hd);
        let mut kt = vec![_mm256_setzero_ps(); d];
        let (kp, qp) = (k.as_ptr(), q.as_ptr());
        for jb in (j0..j1).step_by(8) {
            for h in 0..heads {
                for c in 0..d / 8 {
                    let rows = std::array::from_fn(|r| {
                        _mm256_loadu_ps(kp.add((jb + r) * hd + h * d + c * 8))
                    });
                    kt[c * 8..c * 8 + 8].copy_from_slice(&transpose8(rows));
                }
                for i in 0..q_len {
                    let qi = qp.add(i * hd + h * d);
                    let mut acc = _mm256_setzero_ps();
                    for (t, kv) in kt.iter().enumerate() {
                        acc = _mm256_fmadd_ps(_mm256_broadcast_ss(&*qi.add(t)), *kv, acc);
                    }
                    _mm256_storeu_ps(scores.ptr().add((h * q_len + i) * kv_eff + jb), acc);
                }
            }
        }
    }
}

/// `acc[h][i][..] = Σ_{j0 ≤ j < j1} scores[h][i][j] · v_j,h`, keys in order.
#[inline(always)]
fn values_block_generic(
    scores: &[f32],
    v: &[f32],
    p: &AttentionParams,
    kv_eff: usize,
    (j0, j1): (usize, usize),
    acc: &mut [f32],
) {
    let (heads, d, q_len) = (p.heads, p.head_dim, p.q_len);
    let hd = heads * d;
    acc.fill(0.0);
    for j in j0..j1 {
        let vj = &v[j * hd..(j + 1) * hd];
        for h in 0..heads {
            let vjh = &vj[h * d..(h + 1) * d];
            for i in 0..q_len {
                let r = h * q_len + i;
                let pij = scores[r * kv_eff + j];
                for (a, &x) in acc[r * d..(r + 1) * d].iter_mut().zip(vjh) {
                    *a += pij * x;
                }
            }
        }
    }
}
simd_dispatch!(fn values_block(scores: &[f32], v: &[f32], p: &AttentionParams, kv_eff: usize, keys: (usize, usize), acc: &mut [f32]) => values_block_generic);
