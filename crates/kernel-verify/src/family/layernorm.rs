//! layernorm: `y = (x − mean) · rsqrt(var + eps) · gamma + beta` over each row.

use kernel_spec::{Dtype, KernelSpec, Op};
use npu_runtime::{Runtime, RuntimeError};

use super::{wrong_op, VerifyFamily};
use crate::inputs::{Case, Rng, Tensor};
use crate::mlir::{fconst, op, widen, Buf, Builder, Params};

pub(super) struct LayerNorm;

impl VerifyFamily for LayerNorm {
    fn case(&self, op: &Op, rng: &mut Rng) -> Result<Case, String> {
        let &Op::LayerNorm { rows, dim, .. } = op else {
            wrong_op("layernorm", op)
        };
        // Rows with a non-zero mean, so that the centring matters.
        let inputs = vec![
            Tensor::f32("x", &[rows, dim], rng.fill(rows * dim, -1.0, 3.0)),
            Tensor::f32("gamma", &[dim], rng.fill(dim, 0.8, 1.2)),
            Tensor::f32("beta", &[dim], rng.fill(dim, -0.2, 0.2)),
        ];
        Ok(Case {
            inputs,
            output_shape: vec![rows, dim],
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
        let Op::LayerNorm { rows, dim, eps } = spec.op else {
            wrong_op("layernorm", &spec.op)
        };
        let bf16 = spec.dtype == Dtype::Bf16;
        let x = b.as_read(&args.arg("x"), bf16);
        let g = b.as_read(&args.arg("gamma"), bf16);
        let be = b.as_read(&args.arg("beta"), bf16);
        let n = fconst(dim as f32);
        let sum = b.alloc(&[rows], "f32");
        b.fill(&sum, "0.0");
        let body = format!(
            "{}\n%s = arith.addf %out, %x : f32\nlinalg.yield %s : f32",
            widen("%in0", x.elem, "%x")
        );
        b.generic("pr", &[op(&x, "d0, d1")], op(&sum, "d0"), &body);
        let mean = b.alloc(&[rows], "f32");
        b.generic(
            "p",
            &[op(&sum, "d0")],
            op(&mean, "d0"),
            &format!("%n = arith.constant {n} : f32\n%m = arith.divf %in0, %n : f32\nlinalg.yield %m : f32"),
        );
        let var = b.alloc(&[rows], "f32");
        b.fill(&var, "0.0");
        let body = format!(
            "{}\n%c = arith.subf %x, %in1 : f32\n%c2 = arith.mulf %c, %c : f32\n%s = arith.addf %out, %c2 : f32\nlinalg.yield %s : f32",
            widen("%in0", x.elem, "%x")
        );
        b.generic(
            "pr",
            &[op(&x, "d0, d1"), op(&mean, "d0")],
            op(&var, "d0"),
            &body,
        );
        let rstd = b.alloc(&[rows], "f32");
        b.generic(
            "p",
            &[op(&var, "d0")],
            op(&rstd, "d0"),
            &format!(
                "%n = arith.constant {n} : f32\n%e = arith.constant {} : f32\n%v = arith.divf %in0, %n : f32\n%ve = arith.addf %v, %e : f32\n%r = math.rsqrt %ve : f32\nlinalg.yield %r : f32",
                fconst(eps as f32)
            ),
        );
        let body = format!(
            "{}\n{}\n{}\n%c = arith.subf %x, %in1 : f32\n%n = arith.mulf %c, %in2 : f32\n%s = arith.mulf %n, %g : f32\n%y = arith.addf %s, %b : f32\nlinalg.yield %y : f32",
            widen("%in0", x.elem, "%x"),
            widen("%in3", g.elem, "%g"),
            widen("%in4", be.elem, "%b")
        );
        b.generic(
            "pp",
            &[
                op(&x, "d0, d1"),
                op(&mean, "d0"),
                op(&rstd, "d0"),
                op(&g, "d1"),
                op(&be, "d1"),
            ],
            op(out, "d0, d1"),
            &body,
        );
        Ok(())
    }

    fn run(
        &self,
        rt: &Runtime,
        spec: &KernelSpec,
        case: &Case,
        out: &mut [f32],
    ) -> Result<(), RuntimeError> {
        let Op::LayerNorm { rows, dim, eps } = spec.op else {
            wrong_op("layernorm", &spec.op)
        };
        rt.layernorm(
            &spec.name,
            case.input("x").as_f32(),
            rows,
            dim,
            case.input("gamma").as_f32(),
            case.input("beta").as_f32(),
            eps as f32,
            out,
        )
    }
}
