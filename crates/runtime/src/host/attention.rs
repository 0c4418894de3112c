//! Attention host buffers (`templates/attention/design.mlir.jinja`):
//! - `q` Q[M, heads·hd] bf16 row-major (rows past the call's queries zero);
//! - `kv`: per head h, per block j of `tile_n` keys, `2·tile_n·hd` bf16 at
//!   `(h·kv_blocks + j)·kv_elems`: Kⱼᵀ (hd × tile_n) then Vⱼ (tile_n × hd), each in `aie::mmul`
//!   B blocks of S×T (blocks row-major, elements row-major in a block), keys past the call's
//!   kv_len zero; then ONE parameter object of kv_elems bf16: 32-bit word 0 = valid keys, word 1
//!   = causal offset (query i sees keys 0..=offset+i), word w in bf16 elements 2w (low half) and
//!   2w+1 (high half), the rest zero;
//! - `o` O[M, heads·hd] bf16.
//!
//! A decoder's self-attention passes the first kv_len rows of its cache; they are packed per
//! call (the cache grows by one row per token, so nothing is worth keeping).

use kernel_spec::{AttentionKind, KernelSpec, Op};

use super::bytes::{bf16_bits, get_bf16, put_bf16_run, put_u16};
use super::{call_error, layout_error, plan_error, Elem, HostArg, Invocation, RunStats};
use crate::{AttentionParams, RuntimeError};

#[derive(Debug, Clone, PartialEq)]
pub struct AttentionLayout {
    pub(crate) origin: String,
    pub(crate) kind: AttentionKind,
    pub(crate) heads: usize,
    pub(crate) hd: usize,
    pub(crate) q_len: usize,
    pub(crate) kv_len: usize,
    /// Padded query rows and keys.
    pub(crate) m: usize,
    pub(crate) kvp: usize,
    pub(crate) tn: usize,
    /// `aie::mmul` B block (S × T).
    pub(crate) s: usize,
    pub(crate) t: usize,
    pub(crate) args: Vec<HostArg>,
}

impl AttentionLayout {
    pub fn of(spec: &KernelSpec) -> Result<AttentionLayout, RuntimeError> {
        let Op::Attention {
            kind,
            heads,
            head_dim,
            q_len,
            kv_len,
        } = spec.op
        else {
            return Err(layout_error(spec, "not an attention entry"));
        };
        let plan = kernel_spec::plan(spec).map_err(|e| plan_error(spec, e))?;
        let (_, s, t) = spec.device.limits().mmul(spec.dtype);
        let tn = spec.tiling.tile_n;
        if tn == 0
            || !plan.n.is_multiple_of(tn)
            || !head_dim.is_multiple_of(s)
            || !head_dim.is_multiple_of(t)
            || !tn.is_multiple_of(s)
        {
            return Err(layout_error(
                spec,
                format!("tile_n {tn} and head_dim {head_dim} must divide into {s}x{t} mmul blocks"),
            ));
        }
        let d = heads * head_dim;
        let kv_elems = 2 * tn * head_dim;
        let arg = |name: &str, len: usize| HostArg {
            name: name.into(),
            elem: Elem::Bf16,
            len,
        };
        Ok(AttentionLayout {
            origin: spec.origin(),
            kind,
            heads,
            hd: head_dim,
            q_len,
            kv_len,
            m: plan.m,
            kvp: plan.n,
            tn,
            s,
            t,
            args: vec![
                arg("q", plan.m * d),
                arg("kv", (heads * (plan.n / tn) + 1) * kv_elems),
                arg("o", plan.m * d),
            ],
        })
    }

    pub fn args(&self) -> &[HostArg] {
        &self.args
    }

    fn kv_elems(&self) -> usize {
        2 * self.tn * self.hd
    }

    fn kv_blocks(&self) -> usize {
        self.kvp / self.tn
    }

    /// Index of element (r, c) of a matrix with `cols` columns stored in S×T B blocks.
    fn b_index(&self, r: usize, c: usize, cols: usize) -> usize {
        let (s, t) = (self.s, self.t);
        ((r / s) * (cols / t) + c / t) * (s * t) + (r % s) * t + c % t
    }

    /// Whether the entry computes this call (kind, heads, sizes within the padding).
    pub fn serves(&self, p: &AttentionParams) -> bool {
        let kind_ok = (self.kind == AttentionKind::CausalSelf) == p.causal_offset.is_some();
        let kv_ok = match self.kind {
            AttentionKind::CausalSelf => p.kv_len <= self.kv_len,
            _ => p.kv_len == self.kv_len,
        };
        kind_ok
            && kv_ok
            && p.kv_len >= 1
            && (p.heads, p.head_dim) == (self.heads, self.hd)
            && p.q_len <= self.q_len
    }

    /// Q (`[q_len, heads·hd]`) into the `q` buffer.
    pub fn pack_q(&self, q: &[f32], q_len: usize, dst: &mut [u8]) {
        let d = self.heads * self.hd;
        dst.fill(0);
        put_bf16_run(dst, 0, &q[..q_len * d]);
    }

    /// The first `kv_len` rows of K and V (`[.., heads·hd]`) into the blocks of the `kv`
    /// buffer, then the parameter object (valid keys, causal offset).
    pub fn pack_kv(&self, k: &[f32], v: &[f32], kv_len: usize, offset: usize, dst: &mut [u8]) {
        let (hd, tn, d) = (self.hd, self.tn, self.heads * self.hd);
        let kv_elems = self.kv_elems();
        dst.fill(0);
        for h in 0..self.heads {
            for key in 0..kv_len {
                let base = (h * self.kv_blocks() + key / tn) * kv_elems;
                let kl = key % tn;
                for dd in 0..hd {
                    let at = key * d + h * hd + dd;
                    put_u16(dst, base + self.b_index(dd, kl, tn), bf16_bits(k[at]));
                    put_u16(
                        dst,
                        base + tn * hd + self.b_index(kl, dd, hd),
                        bf16_bits(v[at]),
                    );
                }
            }
        }
        let params = self.heads * self.kv_blocks() * kv_elems;
        for (w, word) in [kv_len as u32, offset as u32].into_iter().enumerate() {
            put_u16(dst, params + 2 * w, (word & 0xffff) as u16);
            put_u16(dst, params + 2 * w + 1, (word >> 16) as u16);
        }
    }

    pub fn unpack_o(&self, src: &[u8], q_len: usize, out: &mut [f32]) {
        let d = self.heads * self.hd;
        for (i, o) in out[..q_len * d].iter_mut().enumerate() {
            *o = get_bf16(src, i);
        }
    }
}

/// Runs multi-head attention through the entry's design.
pub fn run(
    inv: &mut dyn Invocation,
    lay: &AttentionLayout,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    p: AttentionParams,
    out: &mut [f32],
) -> Result<RunStats, RuntimeError> {
    if !lay.serves(&p) || p.kv_len > i32::MAX as usize {
        return Err(call_error(
            &lay.origin,
            format!(
                "the entry is {:?} attention, {}x{} heads, q {} kv {}; the call is {p:?}",
                lay.kind, lay.heads, lay.hd, lay.q_len, lay.kv_len
            ),
        ));
    }
    // Non-causal kernels never read the offset; kv_len masks nothing beyond the valid keys.
    let offset = p.causal_offset.unwrap_or(p.kv_len);
    lay.pack_q(q, p.q_len, inv.write(0, 0));
    lay.pack_kv(k, v, p.kv_len, offset, inv.write(1, 0));
    let stats = inv.run(&[2])?;
    lay.unpack_o(inv.bytes(2), p.q_len, out);
    Ok(stats)
}
