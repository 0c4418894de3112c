//! matmul: `Y[m,n] = X[m,k] · W[n,k]^T (+ b) (GELU) (+ R)`, bf16 or int8 (see `gemm`).

use std::path::Path;

use serde_json::json;

use super::{gemm, wrong_op, Context, FamilyDef};
use crate::check::{CheckError, CheckKind};
use crate::plan::{Ctx, Plan};
use crate::seq::{PassSpec, SplitOperand};
use crate::spec::entry;
use crate::{Dtype, Family, KernelSpec, Op, Quant, SpecError, WeightScale};

entry!(Entry {
    m: usize,
    k: usize,
    n: usize,
    #[serde(default)]
    bias: bool,
    #[serde(default)]
    gelu: bool,
    #[serde(default)]
    residual: bool,
    #[serde(default)]
    quant: Option<Quant>,
    #[serde(default)]
    split_weights: bool,
} => |e| Op::Matmul {
    m: e.m,
    k: e.k,
    n: e.n,
    bias: e.bias,
    gelu: e.gelu,
    residual: e.residual,
    quant: e.quant,
    split_weights: e.split_weights,
});

pub(super) struct Matmul;

/// The output element type: int8 when requantised, else bf16.
fn out_dtype(quant: Option<Quant>) -> Dtype {
    match quant {
        Some(q) if q.requantize_output => Dtype::Int8,
        _ => Dtype::Bf16,
    }
}

impl FamilyDef for Matmul {
    fn parse(&self, file: &Path, text: &str) -> Result<Vec<KernelSpec>, SpecError> {
        crate::spec::parse_as::<Entry>(Family::Matmul, file, text)
    }

    fn macs(&self, op: &Op) -> f64 {
        let Op::Matmul { m, k, n, .. } = *op else {
            wrong_op("matmul", op)
        };
        (m * k * n) as f64
    }

    fn rows(&self, op: &Op) -> usize {
        let Op::Matmul { m, .. } = *op else {
            wrong_op("matmul", op)
        };
        m
    }

    fn split_weights(&self, op: &Op) -> bool {
        let Op::Matmul { split_weights, .. } = *op else {
            wrong_op("matmul", op)
        };
        split_weights
    }

    fn needs_exp(&self, op: &Op) -> bool {
        let Op::Matmul { gelu, .. } = *op else {
            wrong_op("matmul", op)
        };
        gelu
    }

    fn plan(&self, cx: &Ctx<'_>) -> Result<Plan, CheckError> {
        let s = cx.spec;
        let t = &s.tiling;
        let Op::Matmul {
            m,
            k,
            n,
            bias,
            gelu,
            residual,
            quant,
            split_weights,
        } = s.op
        else {
            wrong_op("matmul", &s.op)
        };
        match (s.dtype, quant) {
            (Dtype::F32, _) => {
                return Err(cx.err(
                    CheckKind::Unsupported,
                    "matmul supports dtype bf16 or int8, not f32; use bf16",
                ))
            }
            (Dtype::Int8, None) => {
                return Err(cx.err(
                    CheckKind::Unsupported,
                    "int8 matmul needs a [kernel.quant] table (weight_scale, requantize_output)",
                ))
            }
            (Dtype::Bf16, Some(_)) => {
                return Err(cx.err(
                    CheckKind::Unsupported,
                    "[kernel.quant] applies only to dtype = \"int8\"; remove it",
                ))
            }
            _ => {}
        }
        let m2 = cx.padded("m", m, t.pad_m_to, "pad_m_to")?;
        let k2 = cx.padded("k", k, t.pad_k_to, "pad_k_to")?;
        let n2 = cx.padded("n", n, t.pad_n_to, "pad_n_to")?;
        if quant.is_some() && residual {
            return Err(cx.err(
                CheckKind::Unsupported,
                "an int8 matmul cannot fuse the residual (it would travel as int8 in the A stream); \
                 set residual = false and add it on the host, or use dtype = \"bf16\"",
            ));
        }
        // Per output channel, 32-bit words: bf16: bias; int8: bias, sx*sw, 1/s_out.
        let params_bytes = t.tile_n
            * if quant.is_some() {
                12
            } else if bias {
                4
            } else {
                0
            };
        let params = params_bytes > 0;
        gemm::plan(
            cx,
            m2,
            &[PassSpec {
                k: k2,
                n: n2,
                params,
                gelu,
                residual,
                split: cx.split(split_weights, SplitOperand::B)?,
                args: ["x", "w", "r", "y"],
                r_offset: 0,
            }],
            out_dtype(quant).bytes(),
            params_bytes,
        )
    }

    fn arg_bytes(&self, spec: &KernelSpec, plan: &Plan, arg: &str) -> usize {
        let Op::Matmul { quant, .. } = spec.op else {
            wrong_op("matmul", &spec.op)
        };
        gemm::arg_bytes(spec, plan, arg, out_dtype(quant))
    }

    fn context(&self, spec: &KernelSpec, plan: &Plan) -> Context {
        let Op::Matmul {
            m,
            k,
            n,
            bias,
            gelu,
            residual,
            quant,
            split_weights,
        } = spec.op
        else {
            wrong_op("matmul", &spec.op)
        };
        Context {
            f: json!({
                "m_orig": m, "k_orig": k, "n_orig": n,
                "bias": bias, "gelu": gelu, "residual": residual,
                "quant": quant.is_some(),
                "per_channel": matches!(quant, Some(q) if q.weight_scale == WeightScale::PerChannel),
                "requantize": matches!(quant, Some(q) if q.requantize_output),
                "split_weights": split_weights,
            }),
            gemm: gemm::context(spec, plan, out_dtype(quant)),
        }
    }
}
