//! ffn: `y = fc2(GELU(fc1(x))) + r`, the hidden layer stored as the second matmul reads it.

use std::fmt::Write as _;

use kernel_spec::{Dtype, KernelSpec, Op};
use npu_runtime::{Runtime, RuntimeError};

use super::{wrong_op, VerifyFamily};
use crate::inputs::{linear_init, Case, Rng, Tensor};
use crate::mlir::{epilogue, op, Buf, Builder, Params};

pub(super) struct Ffn;

impl VerifyFamily for Ffn {
    fn case(&self, op: &Op, rng: &mut Rng) -> Result<Case, String> {
        let &Op::Ffn {
            rows,
            d_model,
            d_ff,
            ..
        } = op
        else {
            wrong_op("ffn", op)
        };
        let mut inputs = Vec::new();
        inputs.push(Tensor::f32(
            "x",
            &[rows, d_model],
            rng.fill(rows * d_model, -1.0, 1.0),
        ));
        let a1 = 1.0 / (d_model as f32).sqrt();
        inputs.push(Tensor::f32(
            "w1",
            &[d_ff, d_model],
            linear_init(rng, d_ff, d_model),
        ));
        inputs.push(Tensor::f32("b1", &[d_ff], rng.fill(d_ff, -a1, a1)));
        let a2 = 1.0 / (d_ff as f32).sqrt();
        inputs.push(Tensor::f32(
            "w2",
            &[d_model, d_ff],
            linear_init(rng, d_model, d_ff),
        ));
        inputs.push(Tensor::f32("b2", &[d_model], rng.fill(d_model, -a2, a2)));
        inputs.push(Tensor::f32(
            "r",
            &[rows, d_model],
            rng.fill(rows * d_model, -1.0, 1.0),
        ));
        Ok(Case {
            inputs,
            output_shape: vec![rows, d_model],
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
        let Op::Ffn { rows, d_ff, .. } = spec.op else {
            wrong_op("ffn", &spec.op)
        };
        let bf16 = spec.dtype == Dtype::Bf16;
        let split = spec.op.split_weights();
        let xr = b.as_read(&args.arg("x"), bf16);
        let w1 = b.weights_as_read(&args.arg("w1"), bf16, split);
        let b1 = b.as_read(&args.arg("b1"), bf16);
        let w2 = b.weights_as_read(&args.arg("w2"), bf16, split);
        let b2 = b.as_read(&args.arg("b2"), bf16);
        let r = b.as_read(&args.arg("r"), bf16);
        let h = b.alloc(&[rows, d_ff], "f32");
        b.matmul_abt(&xr, &w1, &h);
        // fc1 epilogue: + b1, GELU, then the hidden layer is stored as the next mmul reads it.
        let hr = b.alloc(&[rows, d_ff], if bf16 { "bf16" } else { "f32" });
        let mut ins = vec![op(&h, "d0, d1")];
        let mut body = String::from("%x = arith.addf %in0, %zero_neg : f32\n");
        let y = epilogue(&mut ins, &mut body, Some(&b1), true, None);
        if bf16 {
            let _ = write!(
                body,
                "%hb = arith.truncf {y} : f32 to bf16\nlinalg.yield %hb : bf16"
            );
        } else {
            let _ = write!(body, "linalg.yield {y} : f32");
        }
        b.generic("pp", &ins, op(&hr, "d0, d1"), &body);
        b.matmul_abt(&hr, &w2, out);
        let mut ins = Vec::new();
        let mut body = String::from("%x = arith.addf %out, %zero_neg : f32\n");
        let y = epilogue(&mut ins, &mut body, Some(&b2), false, Some(&r));
        let _ = write!(body, "linalg.yield {y} : f32");
        b.generic("pp", &ins, op(out, "d0, d1"), &body);
        Ok(())
    }

    fn run(
        &self,
        rt: &Runtime,
        spec: &KernelSpec,
        case: &Case,
        out: &mut [f32],
    ) -> Result<(), RuntimeError> {
        let Op::Ffn {
            rows,
            d_model,
            d_ff,
            ..
        } = spec.op
        else {
            wrong_op("ffn", &spec.op)
        };
        let f = |name: &str| case.input(name).as_f32().to_vec();
        let fc1 = rt.linear(f("w1"), Some(f("b1")), d_model, d_ff);
        let fc2 = rt.linear(f("w2"), Some(f("b2")), d_ff, d_model);
        rt.ffn(
            &spec.name,
            case.input("x").as_f32(),
            rows,
            &fc1,
            &fc2,
            case.input("r").as_f32(),
            out,
        )
    }
}
