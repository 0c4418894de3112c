//! lm_head: `logits[rows, V'] = X[rows, d] · E^T` over the whole vocabulary or a `top_k` subset,
//! computed transposed (logits^T = E · X^T) so that the vocabulary spreads over all cores; f32 out.

use std::path::Path;

use serde_json::json;

use super::{gemm, wrong_op, Context, FamilyDef};
use crate::check::{CheckError, CheckKind};
use crate::plan::{Ctx, Plan};
use crate::seq::{PassSpec, SplitOperand};
use crate::spec::entry;
use crate::{Dtype, Family, KernelSpec, Op, SpecError};

entry!(Entry {
    rows: usize,
    d_model: usize,
    vocab: usize,
    #[serde(default)]
    top_k: Option<usize>,
    #[serde(default)]
    split_weights: bool,
} => |e| Op::LmHead {
    rows: e.rows,
    d_model: e.d_model,
    vocab: e.vocab,
    top_k: e.top_k,
    split_weights: e.split_weights,
});

pub(super) struct LmHead;

impl FamilyDef for LmHead {
    fn parse(&self, file: &Path, text: &str) -> Result<Vec<KernelSpec>, SpecError> {
        crate::spec::parse_as::<Entry>(Family::LmHead, file, text)
    }

    fn macs(&self, op: &Op) -> f64 {
        let Op::LmHead {
            rows,
            d_model,
            vocab,
            top_k,
            ..
        } = *op
        else {
            wrong_op("lm_head", op)
        };
        (rows * d_model * top_k.unwrap_or(vocab)) as f64
    }

    fn rows(&self, op: &Op) -> usize {
        let Op::LmHead { rows, .. } = *op else {
            wrong_op("lm_head", op)
        };
        rows
    }

    fn split_weights(&self, op: &Op) -> bool {
        let Op::LmHead { split_weights, .. } = *op else {
            wrong_op("lm_head", op)
        };
        split_weights
    }

    fn needs_exp(&self, _op: &Op) -> bool {
        false
    }

    fn plan(&self, cx: &Ctx<'_>) -> Result<Plan, CheckError> {
        let s = cx.spec;
        let t = &s.tiling;
        let Op::LmHead {
            rows,
            d_model,
            vocab,
            top_k,
            split_weights,
        } = s.op
        else {
            wrong_op("lm_head", &s.op)
        };
        if s.dtype != Dtype::Bf16 {
            return Err(cx.err(
                CheckKind::Unsupported,
                format!("lm_head supports dtype bf16 only, not {}", s.dtype),
            ));
        }
        if let Some(kk) = top_k {
            if kk == 0 || kk > vocab {
                return Err(cx.err(
                    CheckKind::Shape,
                    format!("top_k = {kk} must be in 1..={vocab}"),
                ));
            }
        }
        // Computed transposed: logits^T[V', rows] = E[V', d] · X^T[d, rows], so the vocabulary
        // (the large dimension) spreads over the cores and the few rows are the N tiles.
        let m2 = cx.padded(
            "vocabulary rows (top_k or vocab)",
            top_k.unwrap_or(vocab),
            t.pad_m_to,
            "pad_m_to",
        )?;
        let n2 = cx.padded("decoder rows", rows, t.pad_n_to, "pad_n_to")?;
        let k2 = cx.padded("d_model", d_model, t.pad_k_to, "pad_k_to")?;
        gemm::plan(
            cx,
            m2,
            &[PassSpec {
                k: k2,
                n: n2,
                params: false,
                gelu: false,
                residual: false,
                // Transposed: the embedding table is the A operand.
                split: cx.split(split_weights, SplitOperand::A)?,
                args: ["e", "xt", "r", "logits_t"],
                r_offset: 0,
            }],
            Dtype::F32.bytes(),
            0,
        )
    }

    fn arg_bytes(&self, spec: &KernelSpec, plan: &Plan, arg: &str) -> usize {
        gemm::arg_bytes(spec, plan, arg, Dtype::F32)
    }

    fn context(&self, spec: &KernelSpec, plan: &Plan) -> Context {
        let Op::LmHead {
            rows,
            d_model,
            vocab,
            top_k,
            split_weights,
        } = spec.op
        else {
            wrong_op("lm_head", &spec.op)
        };
        Context {
            f: json!({
                "rows_orig": rows, "d_model": d_model, "vocab": vocab,
                "top_k": top_k, "v_orig": top_k.unwrap_or(vocab),
                "split_weights": split_weights,
            }),
            gemm: gemm::context(spec, plan, Dtype::F32),
        }
    }
}
