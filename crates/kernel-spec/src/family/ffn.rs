//! ffn: `Y = R + fc2(GELU(fc1(X)))`, the matmul plan run twice on the same FIFOs (fc1 + bias +
//! GELU into the scratch `h`, then fc2 + bias + the residual R, which the host places behind H
//! in the same buffer), bf16 only. Whisper's MLP block is `x + mlp(ln(x))`: X = ln(x), R = x.

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
    d_ff: usize,
    #[serde(default)]
    split_weights: bool,
} => |e| Op::Ffn {
    rows: e.rows,
    d_model: e.d_model,
    d_ff: e.d_ff,
    split_weights: e.split_weights,
});

pub(super) struct Ffn;

impl FamilyDef for Ffn {
    fn parse(&self, file: &Path, text: &str) -> Result<Vec<KernelSpec>, SpecError> {
        crate::spec::parse_as::<Entry>(Family::Ffn, file, text)
    }

    fn macs(&self, op: &Op) -> f64 {
        let Op::Ffn {
            rows,
            d_model,
            d_ff,
            ..
        } = *op
        else {
            wrong_op("ffn", op)
        };
        2.0 * (rows * d_model * d_ff) as f64
    }

    fn rows(&self, op: &Op) -> usize {
        let Op::Ffn { rows, .. } = *op else {
            wrong_op("ffn", op)
        };
        rows
    }

    fn split_weights(&self, op: &Op) -> bool {
        let Op::Ffn { split_weights, .. } = *op else {
            wrong_op("ffn", op)
        };
        split_weights
    }

    fn needs_exp(&self, _op: &Op) -> bool {
        true
    }

    fn plan(&self, cx: &Ctx<'_>) -> Result<Plan, CheckError> {
        let s = cx.spec;
        let t = &s.tiling;
        let Op::Ffn {
            rows,
            d_model,
            d_ff,
            split_weights,
        } = s.op
        else {
            wrong_op("ffn", &s.op)
        };
        if s.dtype != Dtype::Bf16 {
            return Err(cx.err(
                CheckKind::Unsupported,
                format!("ffn supports dtype bf16 only, not {}", s.dtype),
            ));
        }
        if t.pad_k_to.is_some() || t.pad_n_to.is_some() {
            return Err(cx.err(
                CheckKind::Shape,
                "ffn pads rows only (pad_m_to); d_model and d_ff must divide the tiles",
            ));
        }
        let m2 = cx.padded("rows", rows, t.pad_m_to, "pad_m_to")?;
        let params_bytes = t.tile_n * 4;
        let split = cx.split(split_weights, SplitOperand::B)?;
        gemm::plan(
            cx,
            m2,
            &[
                PassSpec {
                    k: d_model,
                    n: d_ff,
                    params: true,
                    gelu: true,
                    residual: false,
                    split,
                    args: ["x", "w1", "x", "h"],
                    r_offset: 0,
                },
                PassSpec {
                    k: d_ff,
                    n: d_model,
                    params: true,
                    gelu: false,
                    residual: true,
                    split,
                    // The residual rides behind H in the scratch buffer: the design keeps
                    // aiecc's five host buffers (x, w1, h, w2, y).
                    args: ["h", "w2", "h", "y"],
                    r_offset: m2 * d_ff,
                },
            ],
            Dtype::Bf16.bytes(),
            params_bytes,
        )
    }

    fn arg_bytes(&self, spec: &KernelSpec, plan: &Plan, arg: &str) -> usize {
        gemm::arg_bytes(spec, plan, arg, Dtype::Bf16)
    }

    fn context(&self, spec: &KernelSpec, plan: &Plan) -> Context {
        let Op::Ffn {
            rows,
            d_model,
            d_ff,
            split_weights,
        } = spec.op
        else {
            wrong_op("ffn", &spec.op)
        };
        Context {
            f: json!({
                "rows_orig": rows, "d_model": d_model, "d_ff": d_ff,
                "split_weights": split_weights,
            }),
            gemm: gemm::context(spec, plan, Dtype::Bf16),
        }
    }
}
