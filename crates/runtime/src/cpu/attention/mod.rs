//! Multi-head scaled-dot-product attention on the CPU.
//!
//! - f32, few queries (decoding): [`decode`], one pass over the keys and values in fixed blocks
//!   with a per-block softmax, merged afterwards (keys and values may be f16).
//! - f32, many queries (the encoder, prompts): [`flash`], blocked over queries and keys with an
//!   online softmax, never holding a whole score row.
//! - NPU numerics (bf16): [`legacy`], whose rounding points are the NPU kernel's.

mod decode;
mod flash;
mod legacy;

use crate::kv::KvView;
use crate::AttentionParams;

/// `q: [q_len, heads·head_dim]`, `k, v: [≥kv_len, heads·head_dim]`, `out: [q_len, heads·head_dim]`.
/// With `bf16`, q, k, v and the probabilities are rounded to bf16 (f32 scores and softmax) and
/// the output is stored as bf16.
pub(crate) fn attention(
    q: &[f32],
    k: KvView<'_>,
    v: KvView<'_>,
    p: &AttentionParams,
    bf16: bool,
    out: &mut [f32],
) {
    let n = p.kv_len * p.heads * p.head_dim;
    if bf16 {
        return legacy::attention(q, &k.f32_prefix(n), &v.f32_prefix(n), p, true, out);
    }
    if p.q_len <= decode::MAX_QUERIES {
        return decode::attention(q, k, v, p, out);
    }
    flash::attention(q, &k.f32_prefix(n), &v.f32_prefix(n), p, out)
}
