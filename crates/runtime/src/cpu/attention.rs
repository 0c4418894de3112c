//! Multi-head scaled-dot-product attention: per (head, query block) task, QKᵀ with gemm, stable
//! softmax with the causal mask, then P·V with gemm straight into the output.

use rayon::prelude::*;

use super::norm::softmax_row;
use super::{gemm_f32, with_f32, Blocks, SyncPtr};
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

fn attention_f32(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    p: &AttentionParams,
    bf16: bool,
    out: &mut [f32],
) {
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
