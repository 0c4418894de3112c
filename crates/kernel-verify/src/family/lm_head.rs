//! lm_head: logits `x · eᵀ` over the whole vocabulary or a subset of ids (f32 output).

use kernel_spec::{Dtype, KernelSpec, Op};
use npu_runtime::{Runtime, RuntimeError};

use super::{wrong_op, VerifyFamily};
use crate::inputs::{linear_init, Case, Data, Rng, Tensor};
use crate::mlir::{op, Buf, Builder, Params};

pub(super) struct LmHead;

impl VerifyFamily for LmHead {
    fn case(&self, op: &Op, rng: &mut Rng) -> Result<Case, String> {
        let &Op::LmHead {
            rows,
            d_model,
            vocab,
            top_k,
            ..
        } = op
        else {
            wrong_op("lm_head", op)
        };
        let mut inputs = vec![
            Tensor::f32("x", &[rows, d_model], rng.fill(rows * d_model, -1.0, 1.0)),
            Tensor::f32("e", &[vocab, d_model], linear_init(rng, vocab, d_model)),
        ];
        let output_shape = match top_k {
            Some(kk) => {
                if kk == 0 || kk > vocab {
                    return Err(format!("top_k = {kk} must be in 1..={vocab}"));
                }
                let ids = rng.distinct(vocab, kk);
                inputs.push(Tensor {
                    name: "ids",
                    shape: vec![kk],
                    data: Data::I32(ids.iter().map(|&i| i as i32).collect()),
                });
                vec![rows, kk]
            }
            None => vec![rows, vocab],
        };
        Ok(Case {
            inputs,
            output_shape,
            causal_offset: None,
        })
    }

    fn reference(
        &self,
        spec: &KernelSpec,
        _case: &Case,
        b: &mut Builder,
        args: &Params,
        out: &Buf,
    ) -> Result<(), String> {
        let Op::LmHead { d_model, .. } = spec.op else {
            wrong_op("lm_head", &spec.op)
        };
        let bf16 = spec.dtype == Dtype::Bf16;
        let xr = b.as_read(&args.arg("x"), bf16);
        let e = args.arg("e");
        let table = if args.has("ids") {
            // Gather the selected rows of the embedding, then the same matmul.
            let ids = args.arg("ids");
            let k = ids.shape[0];
            let g = b.alloc(&[k, d_model], "f32");
            let body = format!(
                "%row = arith.index_cast %in0 : i32 to index\n%col = linalg.index 1 : index\n%v = memref.load {}[%row, %col] : {}\nlinalg.yield %v : f32",
                e.name,
                e.ty()
            );
            b.generic("pp", &[op(&ids, "d0")], op(&g, "d0, d1"), &body);
            g
        } else {
            e
        };
        let er = b.weights_as_read(&table, bf16, spec.op.split_weights());
        b.matmul_abt(&xr, &er, out);
        Ok(())
    }

    fn run(
        &self,
        rt: &Runtime,
        spec: &KernelSpec,
        case: &Case,
        out: &mut [f32],
    ) -> Result<(), RuntimeError> {
        let Op::LmHead {
            rows,
            d_model,
            vocab,
            ..
        } = spec.op
        else {
            wrong_op("lm_head", &spec.op)
        };
        let emb = rt.linear(case.input("e").as_f32().to_vec(), None, d_model, vocab);
        let ids: Option<Vec<u32>> = case.try_input("ids").map(|t| match &t.data {
            Data::I32(v) => v.iter().map(|&i| i as u32).collect(),
            Data::F32(_) => unreachable!("ids are indices"),
        });
        rt.lm_head(
            &spec.name,
            case.input("x").as_f32(),
            rows,
            &emb,
            ids.as_deref(),
            out,
        )
    }

    /// f32 logits accumulate in the C tile itself (kernel-spec's lm_head plan).
    fn rounds_output(&self, _spec: &KernelSpec) -> bool {
        false
    }
}
