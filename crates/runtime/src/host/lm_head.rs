//! LM head host buffers (`templates/lm_head/design.mlir.jinja`), computed transposed so that
//! the vocabulary spreads over the cores: `e` E[V',d] (two bf16 planes per k-block of columns
//! with split weights; a sparse head gets the selected rows, gathered by the host), `xt`
//! Xᵀ[d, rows'] bf16, `logits_t` logits^T[V', rows'] f32.

use kernel_spec::{KernelSpec, Op};

use super::bytes::{get_f32, put_bf16};
use super::gemm::{put_rows_bf16, Gemm};
use super::{call_error, layout_error, Elem, HostArg, Image, Invocation, RunStats};
use crate::{Linear, RuntimeError};

#[derive(Debug, Clone, PartialEq)]
pub struct LmHeadLayout {
    pub(crate) name: String,
    pub(crate) origin: String,
    pub(crate) gemm: Gemm,
    pub(crate) rows: usize,
    pub(crate) d: usize,
    pub(crate) vocab: usize,
    pub(crate) top_k: Option<usize>,
}

impl LmHeadLayout {
    pub fn of(spec: &KernelSpec) -> Result<LmHeadLayout, RuntimeError> {
        let Op::LmHead {
            rows,
            d_model,
            vocab,
            top_k,
            ..
        } = spec.op
        else {
            return Err(layout_error(spec, "not an lm_head entry"));
        };
        Ok(LmHeadLayout {
            name: spec.name.clone(),
            origin: spec.origin(),
            gemm: Gemm::of(spec, Elem::Bf16, Elem::F32)?,
            rows,
            d: d_model,
            vocab,
            top_k,
        })
    }

    pub fn args(&self) -> &[HostArg] {
        &self.gemm.args
    }

    fn pass(&self) -> &super::gemm::Pass {
        &self.gemm.passes[0]
    }

    /// Embedding rows `e` (`[count, d]`) into the `e` buffer (zero past `count`).
    pub fn pack_e(&self, e: &[f32], count: usize, dst: &mut [u8]) {
        let p = self.pass();
        dst.fill(0);
        put_rows_bf16(dst, e, (count, self.d), p.k, self.gemm.tk, p.planes_a);
    }

    /// The rows of `subset` of the table `emb` (`[vocab, d]`), gathered into the `e` buffer.
    pub fn pack_e_subset(&self, emb: &[f32], subset: &[u32], dst: &mut [u8]) {
        let p = self.pass();
        let ld = p.planes_a * p.k;
        dst.fill(0);
        for (j, &id) in subset.iter().enumerate() {
            let row = &emb[id as usize * self.d..(id as usize + 1) * self.d];
            let at = 2 * j * ld;
            put_rows_bf16(
                &mut dst[at..at + 2 * ld],
                row,
                (1, self.d),
                p.k,
                self.gemm.tk,
                p.planes_a,
            );
        }
    }

    /// Xᵀ (`x` is `[rows, d]`) into the `xt` buffer.
    pub fn pack_xt(&self, x: &[f32], rows: usize, dst: &mut [u8]) {
        let p = self.pass();
        dst.fill(0);
        for r in 0..rows {
            for i in 0..self.d {
                put_bf16(dst, i * p.n + r, x[r * self.d + i]);
            }
        }
    }

    /// logits[r, v] = logits_t[v, r] for the call's rows and `count` vocabulary rows.
    pub fn unpack_logits(&self, src: &[u8], rows: usize, count: usize, out: &mut [f32]) {
        let p = self.pass();
        for r in 0..rows {
            for (v, o) in out[r * count..(r + 1) * count].iter_mut().enumerate() {
                *o = get_f32(src, v * p.n + r);
            }
        }
    }
}

/// Runs `logits[rows, V'] = x · Eᵀ` over the whole table (`subset` None) or the rows of
/// `subset`, through the entry's design.
pub fn run(
    inv: &mut dyn Invocation,
    lay: &LmHeadLayout,
    x: &[f32],
    rows: usize,
    emb: &Linear,
    subset: Option<&[u32]>,
    out: &mut [f32],
) -> Result<RunStats, RuntimeError> {
    let p = lay.pass().clone();
    let count = subset.map_or(lay.vocab, <[u32]>::len);
    let fits = rows <= p.n
        && (emb.in_f, emb.out_f) == (lay.d, lay.vocab)
        && match (subset, lay.top_k) {
            (None, None) => true,
            (Some(s), Some(k)) => s.len() <= k && s.iter().all(|&id| (id as usize) < lay.vocab),
            _ => false,
        };
    if !fits {
        return Err(call_error(
            &lay.origin,
            format!(
                "the entry is {}x{}x{}{}, the call is {rows}x{}x{}{}",
                lay.rows,
                lay.d,
                lay.vocab,
                lay.top_k.map(|k| format!(" top{k}")).unwrap_or_default(),
                emb.in_f,
                emb.out_f,
                subset
                    .map(|s| format!(" top{}", s.len()))
                    .unwrap_or_default()
            ),
        ));
    }
    if emb.b.is_some() {
        return Err(call_error(
            &lay.origin,
            "the LM head design adds no bias, the layer has one",
        ));
    }
    match subset {
        None => {
            let key = format!("{}/e", lay.name);
            let img = emb.image(&key, || {
                let mut bytes = vec![0u8; lay.gemm.args[p.a].bytes()];
                lay.pack_e(&emb.w, lay.vocab, &mut bytes);
                Image {
                    bytes,
                    scales: Vec::new(),
                }
            });
            inv.load_image(p.a, &img);
        }
        Some(ids) => lay.pack_e_subset(&emb.w, ids, inv.write(p.a, 0)),
    }
    lay.pack_xt(x, rows, inv.write(p.b, 0));
    let stats = inv.run(&[p.c])?;
    lay.unpack_logits(inv.bytes(p.c), rows, count, out);
    Ok(stats)
}
