//! Attention for a few queries (decoding: one new token per beam, or every beam's query against
//! the shared encoder output), f32 arithmetic over f32 or f16 keys and values.
//!
//! The work is streaming K and V once. Keys are cut into fixed blocks of [`BLOCK`] rows; one task
//! per block reads its rows for every head and query: scores, a softmax local to the block (its
//! max `m`, sum `l`) and the block's probability-weighted sum of values. The blocks are then
//! merged in order, rescaled by `exp(m_b − max m)` (flash-decoding). Block boundaries depend only
//! on the key count, so a row's result depends on neither the thread count nor the other rows of
//! the call (beams batched or alone get the same numbers).

use half::f16;
use rayon::prelude::*;

use crate::cpu::norm::sum_lanes;
use crate::cpu::with_f32;
use crate::kv::KvView;
use crate::math::{self, simd_dispatch};
use crate::AttentionParams;

/// Most queries this path takes; more go to the blocked (flash) path.
pub(crate) const MAX_QUERIES: usize = 8;
/// Keys per task.
const BLOCK: usize = 64;

/// Per (head, query) of a block: `m`, `l`, then `head_dim` accumulated values.
fn entry_len(d: usize) -> usize {
    d + 2
}

/// Keys visible to query `i` (of `kv_eff`, the keys the last query sees).
fn visible(p: &AttentionParams, i: usize, kv_eff: usize) -> usize {
    match p.causal_offset {
        Some(off) => (off + i + 1).min(kv_eff),
        None => kv_eff,
    }
}

pub(super) fn attention(
    q: &[f32],
    k: KvView<'_>,
    v: KvView<'_>,
    p: &AttentionParams,
    out: &mut [f32],
) {
    let (heads, d, q_len) = (p.heads, p.head_dim, p.q_len);
    assert!(q_len <= MAX_QUERIES);
    let kv_eff = visible(p, q_len.saturating_sub(1), p.kv_len);
    let n_blocks = kv_eff.div_ceil(BLOCK);
    let per = heads * q_len * entry_len(d);
    with_f32(n_blocks * per, |partial| {
        let task = |(b, part): (usize, &mut [f32])| {
            let keys = (b * BLOCK, ((b + 1) * BLOCK).min(kv_eff));
            match (k, v) {
                (KvView::F32(k), KvView::F32(v)) => block(q, k, v, p, kv_eff, keys, part),
                (KvView::F16(k), KvView::F16(v)) => block(q, k, v, p, kv_eff, keys, part),
                _ => unreachable!("keys and values are stored alike"),
            }
        };
        if n_blocks > 1 {
            partial.par_chunks_mut(per).enumerate().for_each(task);
        } else {
            partial.chunks_mut(per).enumerate().for_each(task);
        }
        merge(partial, p, out);
    })
}

/// An element type keys and values are stored in.
pub(super) trait Elem: Copy + Send + Sync + 'static {
    fn to_f32(self) -> f32;
    /// Eight consecutive elements as f32.
    ///
    /// # Safety
    /// AVX2, FMA and F16C present; `p` valid for 8 elements.
    #[cfg(target_arch = "x86_64")]
    unsafe fn load8(p: *const Self) -> std::arch::x86_64::__m256;
}

impl Elem for f32 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self
    }
    #[cfg(target_arch = "x86_64")]
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn load8(p: *const f32) -> std::arch::x86_64::__m256 {
        // SAFETY: forwarded.
        unsafe { std::arch::x86_64::_mm256_loadu_ps(p) }
    }
}

impl Elem for f16 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        f16::to_f32(self)
    }
    #[cfg(target_arch = "x86_64")]
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn load8(p: *const f16) -> std::arch::x86_64::__m256 {
        use std::arch::x86_64::*;
        // SAFETY: forwarded; f16 is 16 bits, so 8 of them are one unaligned 128-bit load.
        unsafe { _mm256_cvtph_ps(_mm_loadu_si128(p as *const __m128i)) }
    }
}

/// One block of keys `j0..j1` for every head and query, into `part` (`[head][query]` entries of
/// [`entry_len`]).
fn block<E: Elem>(
    q: &[f32],
    k: &[E],
    v: &[E],
    p: &AttentionParams,
    kv_eff: usize,
    keys: (usize, usize),
    part: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2")
        && std::arch::is_x86_feature_detected!("fma")
        && std::arch::is_x86_feature_detected!("f16c")
    {
        // SAFETY: the CPU has the features; extents are checked inside.
        let done = unsafe {
            match p.head_dim {
                8 => x86::block::<E, 1>(q, k, v, p, kv_eff, keys, part),
                16 => x86::block::<E, 2>(q, k, v, p, kv_eff, keys, part),
                32 => x86::block::<E, 4>(q, k, v, p, kv_eff, keys, part),
                64 => x86::block::<E, 8>(q, k, v, p, kv_eff, keys, part),
                128 => x86::block::<E, 16>(q, k, v, p, kv_eff, keys, part),
                _ => false,
            }
        };
        if done {
            return;
        }
    }
    block_generic(q, k, v, p, kv_eff, keys, part)
}

fn block_generic<E: Elem>(
    q: &[f32],
    k: &[E],
    v: &[E],
    p: &AttentionParams,
    kv_eff: usize,
    (j0, j1): (usize, usize),
    part: &mut [f32],
) {
    let (heads, d, q_len) = (p.heads, p.head_dim, p.q_len);
    let hd = heads * d;
    let scale = 1.0 / (d as f32).sqrt();
    let mut s = [0.0f32; BLOCK];
    for h in 0..heads {
        for i in 0..q_len {
            let n = visible(p, i, kv_eff).clamp(j0, j1) - j0;
            let qi = &q[i * hd + h * d..i * hd + h * d + d];
            for (jj, s) in s[..n].iter_mut().enumerate() {
                let kj = &k[(j0 + jj) * hd + h * d..(j0 + jj) * hd + h * d + d];
                let mut sum = 0.0f32;
                for (&a, &b) in qi.iter().zip(kj) {
                    sum += a * b.to_f32();
                }
                *s = sum * scale;
            }
            let e = &mut part[(h * q_len + i) * entry_len(d)..(h * q_len + i + 1) * entry_len(d)];
            let (ml, acc) = e.split_at_mut(2);
            (ml[0], ml[1]) = softmax_piece(&mut s[..n]);
            acc.fill(0.0);
            for (jj, &pj) in s[..n].iter().enumerate() {
                let vj = &v[(j0 + jj) * hd + h * d..(j0 + jj) * hd + h * d + d];
                for (a, &x) in acc.iter_mut().zip(vj) {
                    *a += pj * x.to_f32();
                }
            }
        }
    }
}

/// Replaces scaled scores `s` by `exp(s − m)`; returns `(m, Σ)`, `(−∞, 0)` for no keys.
#[inline(always)]
fn softmax_piece_generic(s: &mut [f32]) -> (f32, f32) {
    if s.is_empty() {
        return (f32::NEG_INFINITY, 0.0);
    }
    let m = s
        .iter()
        .fold(f32::NEG_INFINITY, |m, &x| if x > m { x } else { m });
    for x in s.iter_mut() {
        *x = math::exp(*x - m);
    }
    (m, sum_lanes(s, |x| x))
}
simd_dispatch!(fn softmax_piece(s: &mut [f32]) -> (f32, f32) => softmax_piece_generic);

/// Merges the blocks' entries per (head, query), in block order, into `out`.
#[inline(always)]
fn merge_generic(partial: &[f32], p: &AttentionParams, out: &mut [f32]) {
    let (heads, d, q_len) = (p.heads, p.head_dim, p.q_len);
    let (hd, el) = (heads * d, entry_len(d));
    let per = heads * q_len * el;
    for h in 0..heads {
        for i in 0..q_len {
            let at = (h * q_len + i) * el;
            let blocks = || partial.chunks_exact(per).map(|b| &b[at..at + el]);
            let m = blocks().fold(f32::NEG_INFINITY, |m, e| if e[0] > m { e[0] } else { m });
            let o = &mut out[i * hd + h * d..i * hd + h * d + d];
            o.fill(0.0);
            let mut l = 0.0f32;
            // Blocks no key of which this query sees have l = 0 and m = −∞: skipped.
            for e in blocks().filter(|e| e[1] > 0.0) {
                let w = math::exp(e[0] - m);
                l += w * e[1];
                for (o, &a) in o.iter_mut().zip(&e[2..]) {
                    *o += w * a;
                }
            }
            let inv = 1.0 / l;
            for o in o.iter_mut() {
                *o *= inv;
            }
        }
    }
}
simd_dispatch!(fn merge(partial: &[f32], p: &AttentionParams, out: &mut [f32]) => merge_generic);

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{entry_len, softmax_piece_generic, visible, Elem, BLOCK, MAX_QUERIES};
    use crate::AttentionParams;

    /// The lane sums of eight vectors, in one vector (lane r = Σ of `x[r]`).
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn reduce8(x: [__m256; 8]) -> __m256 {
        let t0 = _mm256_hadd_ps(x[0], x[1]);
        let t1 = _mm256_hadd_ps(x[2], x[3]);
        let t2 = _mm256_hadd_ps(x[4], x[5]);
        let t3 = _mm256_hadd_ps(x[6], x[7]);
        // Lanes: low halves of keys 0-3 then 0-3's high halves; same for keys 4-7.
        let u0 = _mm256_hadd_ps(t0, t1);
        let u1 = _mm256_hadd_ps(t2, t3);
        _mm256_add_ps(
            _mm256_permute2f128_ps::<0x20>(u0, u1),
            _mm256_permute2f128_ps::<0x31>(u0, u1),
        )
    }

    /// [`super::block_generic`] for `head_dim = 8·C`: scores eight keys at a time (a dot
    /// product per key in a vector, the eight reduced at once), values with the query's `C`
    /// accumulators in registers. Returns false (nothing done) if the block is
    /// not one this kernel takes.
    ///
    /// # Safety
    /// AVX2, FMA and F16C present.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn block<E: Elem, const C: usize>(
        q: &[f32],
        k: &[E],
        v: &[E],
        p: &AttentionParams,
        kv_eff: usize,
        (j0, j1): (usize, usize),
        part: &mut [f32],
    ) -> bool {
        let (heads, d, q_len) = (p.heads, p.head_dim, p.q_len);
        let hd = heads * d;
        if d != 8 * C
            || q_len > MAX_QUERIES
            || j1 - j0 > BLOCK
            || j1 > kv_eff
            || k.len() < j1 * hd
            || v.len() < j1 * hd
            || q.len() < q_len * hd
            || part.len() < heads * q_len * entry_len(d)
        {
            return false;
        }
        let scale = _mm256_set1_ps(1.0 / (d as f32).sqrt());
        let mut s = [[0.0f32; BLOCK]; MAX_QUERIES];
        let (kp, vp, qp) = (k.as_ptr(), v.as_ptr(), q.as_ptr());
        let n_all = visible(p, q_len - 1, kv_eff).clamp(j0, j1) - j0;
        for h in 0..heads {
            // 1. Scores of the keys the last query sees (earlier queries see a prefix), eight
            //    keys at a time: one dot product per key in a vector, the eight reduced together.
            //    A group past the last key computes zeros in the missing lanes; a key's lane never
            //    mixes with another's, so its score does not depend on its group.
            for jb in (0..n_all).step_by(8) {
                let cnt = (n_all - jb).min(8);
                for (i, si) in s.iter_mut().enumerate().take(q_len) {
                    let qi = qp.add(i * hd + h * d);
                    let qv: [__m256; C] = std::array::from_fn(|c| _mm256_loadu_ps(qi.add(c * 8)));
                    let mut acc = [_mm256_setzero_ps(); 8];
                    for (r, a) in acc.iter_mut().enumerate().take(cnt) {
                        // SAFETY: row j0+jb+r < j1, columns h·d..+d: inside k.
                        let kr = kp.add((j0 + jb + r) * hd + h * d);
                        let mut x = _mm256_mul_ps(qv[0], E::load8(kr));
                        for (c, qc) in qv.iter().enumerate().skip(1) {
                            x = _mm256_fmadd_ps(*qc, E::load8(kr.add(c * 8)), x);
                        }
                        *a = x;
                    }
                    // SAFETY: jb + 8 <= BLOCK (a multiple of 8): inside the row buffer.
                    _mm256_storeu_ps(si.as_mut_ptr().add(jb), _mm256_mul_ps(reduce8(acc), scale));
                }
            }
            // 2. Softmax within the block, then 3. the weighted sum of values.
            for (i, si) in s.iter_mut().enumerate().take(q_len) {
                let n = visible(p, i, kv_eff).clamp(j0, j1) - j0;
                let e = (h * q_len + i) * entry_len(d);
                (part[e], part[e + 1]) = softmax_piece_generic(&mut si[..n]);
                let mut acc = [_mm256_setzero_ps(); C];
                for (jj, &pj) in si[..n].iter().enumerate() {
                    let pj = _mm256_set1_ps(pj);
                    let vj = vp.add((j0 + jj) * hd + h * d);
                    for (c, a) in acc.iter_mut().enumerate() {
                        *a = _mm256_fmadd_ps(pj, E::load8(vj.add(c * 8)), *a);
                    }
                }
                let o = part.as_mut_ptr().add(e + 2);
                for (c, a) in acc.iter().enumerate() {
                    _mm256_storeu_ps(o.add(c * 8), *a);
                }
            }
        }
        true
    }
}
