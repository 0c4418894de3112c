//! matmul: `y = x · wᵀ (+ b) (GELU) (+ r)`, bf16/f32 or int8 with symmetric quantisation.

use std::fmt::Write as _;

use kernel_spec::{Dtype, KernelSpec, Op, WeightScale};
use npu_runtime::{Epilogue, Runtime, RuntimeError};

use super::{wrong_op, VerifyFamily};
use crate::inputs::{linear_init, Case, Rng, Tensor};
use crate::mlir::{epilogue, op, quant_lines, quantize, Buf, Builder, Params, Scale, Scale2};

pub(super) struct Matmul;

impl VerifyFamily for Matmul {
    fn case(&self, op: &Op, rng: &mut Rng) -> Result<Case, String> {
        let &Op::Matmul {
            m,
            k,
            n,
            bias,
            residual,
            ..
        } = op
        else {
            wrong_op("matmul", op)
        };
        let mut inputs = Vec::new();
        inputs.push(Tensor::f32("x", &[m, k], rng.fill(m * k, -1.0, 1.0)));
        inputs.push(Tensor::f32("w", &[n, k], linear_init(rng, n, k)));
        if bias {
            let a = 1.0 / (k as f32).sqrt();
            inputs.push(Tensor::f32("b", &[n], rng.fill(n, -a, a)));
        }
        if residual {
            inputs.push(Tensor::f32("r", &[m, n], rng.fill(m * n, -1.0, 1.0)));
        }
        Ok(Case {
            inputs,
            output_shape: vec![m, n],
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
        let Op::Matmul { gelu, quant, .. } = spec.op else {
            wrong_op("matmul", &spec.op)
        };
        let (x, w) = (args.arg("x"), args.arg("w"));
        let bias = args.has("b").then(|| args.arg("b"));
        let res = args.has("r").then(|| args.arg("r"));
        match (spec.dtype, quant) {
            (Dtype::Int8, Some(q)) => {
                let sx = b.scale_per_tensor(&x);
                let xq = quantize(b, &x, Scale::Scalar(&sx));
                let (wq, sw) = match q.weight_scale {
                    WeightScale::PerTensor => {
                        let s = b.scale_per_tensor(&w);
                        (quantize(b, &w, Scale::Scalar(&s)), Scale2::Scalar(s))
                    }
                    WeightScale::PerChannel => {
                        let s = b.scale_per_row(&w);
                        (quantize(b, &w, Scale::Row(&s)), Scale2::Row(s))
                    }
                };
                let acc = b.alloc(&out.shape, "i32");
                b.fill(&acc, "0");
                b.generic(
                    "ppr",
                    &[op(&xq, "d0, d2"), op(&wq, "d1, d2")],
                    op(&acc, "d0, d1"),
                    "%a = arith.extsi %in0 : i8 to i32\n%b = arith.extsi %in1 : i8 to i32\n%p = arith.muli %a, %b : i32\n%s = arith.addi %out, %p : i32\nlinalg.yield %s : i32",
                );
                // Dequantise: acc as f32 · (s_x · s_w), then the f32 epilogue.
                let mut ins = vec![op(&acc, "d0, d1")];
                let mut body = String::from("%af = arith.sitofp %in0 : i32 to f32\n");
                match &sw {
                    Scale2::Scalar(s) => {
                        let _ = writeln!(body, "%sc = arith.mulf {sx}, {s} : f32");
                    }
                    Scale2::Row(s) => {
                        ins.push(op(s, "d1"));
                        let _ = writeln!(body, "%sc = arith.mulf {sx}, %in1 : f32");
                    }
                }
                body.push_str("%x = arith.mulf %af, %sc : f32\n");
                let y = epilogue(&mut ins, &mut body, bias.as_ref(), gelu, res.as_ref());
                let _ = write!(body, "linalg.yield {y} : f32");
                b.generic("pp", &ins, op(out, "d0, d1"), &body);
                if q.requantize_output {
                    let so = b.scale_per_tensor(out);
                    let body = format!(
                        "{}\n%qf = arith.sitofp %q : i8 to f32\n%v = arith.mulf %qf, {so} : f32\nlinalg.yield %v : f32",
                        quant_lines("%out", &so)
                    );
                    b.generic("pp", &[], op(out, "d0, d1"), &body);
                }
            }
            (Dtype::Int8, None) => {
                return Err(
                    "int8 matmul needs a [kernel.quant] table (weight_scale, requantize_output)"
                        .into(),
                )
            }
            _ => {
                let bf16 = spec.dtype == Dtype::Bf16;
                let xr = b.as_read(&x, bf16);
                let wr = b.weights_as_read(&w, bf16, spec.op.split_weights());
                b.matmul_abt(&xr, &wr, out);
                let bias_r = bias.as_ref().map(|v| b.as_read(v, bf16));
                let res_r = res.as_ref().map(|v| b.as_read(v, bf16));
                if bias_r.is_some() || res_r.is_some() || gelu {
                    let mut ins = Vec::new();
                    let mut body = String::from("%x = arith.addf %out, %zero_neg : f32\n");
                    let y = epilogue(&mut ins, &mut body, bias_r.as_ref(), gelu, res_r.as_ref());
                    let _ = write!(body, "linalg.yield {y} : f32");
                    b.generic("pp", &ins, op(out, "d0, d1"), &body);
                }
            }
        }
        Ok(())
    }

    fn run(
        &self,
        rt: &Runtime,
        spec: &KernelSpec,
        case: &Case,
        out: &mut [f32],
    ) -> Result<(), RuntimeError> {
        let Op::Matmul { m, k, n, gelu, .. } = spec.op else {
            wrong_op("matmul", &spec.op)
        };
        let w = case.input("w").as_f32().to_vec();
        let bias = case.try_input("b").map(|t| t.as_f32().to_vec());
        let lin = rt.linear(w, bias, k, n);
        let res = case.try_input("r").map(|t| t.as_f32().to_vec());
        rt.matmul(
            &spec.name,
            case.input("x").as_f32(),
            m,
            &lin,
            Epilogue {
                gelu,
                residual: res.as_deref(),
            },
            out,
        )
    }

    /// int8 with `requantize_output` stores the requantised values; without, bf16.
    fn rounds_output(&self, spec: &KernelSpec) -> bool {
        match (&spec.op, spec.dtype) {
            (Op::Matmul { quant: Some(q), .. }, Dtype::Int8) => !q.requantize_output,
            _ => spec.dtype == Dtype::Bf16,
        }
    }
}
