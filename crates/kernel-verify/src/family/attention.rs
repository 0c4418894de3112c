//! attention: softmax(q·kᵀ/√d) · v per head, optionally causal (queries are the last q_len
//! positions of the KV cache); the probabilities stored as the PV matmul reads them.

use kernel_spec::{AttentionKind, Dtype, KernelSpec, Op};
use npu_runtime::{AttentionParams, Runtime, RuntimeError};

use super::{wrong_op, VerifyFamily};
use crate::inputs::{Case, Rng, Tensor};
use crate::mlir::{fconst, op, widen, Buf, Builder, Params};

pub(super) struct Attention;

impl VerifyFamily for Attention {
    fn case(&self, op: &Op, rng: &mut Rng) -> Result<Case, String> {
        let &Op::Attention {
            kind,
            heads,
            head_dim,
            q_len,
            kv_len,
        } = op
        else {
            wrong_op("attention", op)
        };
        let hd = heads * head_dim;
        // q·k over head_dim terms of U(-2,2)² has std ≈ 1.33·√head_dim; after the
        // 1/√head_dim scale the logits have std ≈ 1.33 (a peaked, not flat, softmax).
        let inputs = vec![
            Tensor::f32("q", &[q_len, hd], rng.fill(q_len * hd, -2.0, 2.0)),
            Tensor::f32("k", &[kv_len, hd], rng.fill(kv_len * hd, -2.0, 2.0)),
            Tensor::f32("v", &[kv_len, hd], rng.fill(kv_len * hd, -1.0, 1.0)),
        ];
        let mut causal_offset = None;
        if kind == AttentionKind::CausalSelf {
            // The queries are the last q_len positions of the cache.
            if q_len > kv_len {
                return Err(format!(
                    "causal self-attention with q_len = {q_len} > kv_len = {kv_len}: the queries must be the last q_len positions of the KV cache; raise kv_len"
                ));
            }
            causal_offset = Some(kv_len - q_len);
        }
        Ok(Case {
            inputs,
            output_shape: vec![q_len, hd],
            causal_offset,
        })
    }

    fn reference(
        &self,
        spec: &KernelSpec,
        case: &Case,
        b: &mut Builder,
        args: &Params,
        out: &Buf,
    ) -> Result<(), String> {
        let Op::Attention {
            heads,
            head_dim,
            q_len,
            kv_len,
            ..
        } = spec.op
        else {
            wrong_op("attention", &spec.op)
        };
        let bf16 = spec.dtype == Dtype::Bf16;
        let (h_n, d) = (heads, head_dim);
        // [rows, heads·d] viewed as [rows, heads, d].
        let expand = |b: &mut Builder, src: &Buf, rows: usize| -> Buf {
            let dst = Buf {
                name: b.fresh(),
                shape: vec![rows, h_n, d],
                elem: src.elem,
            };
            let l = format!(
                "{} = memref.expand_shape {} [[0], [1, 2]] output_shape [{rows}, {h_n}, {d}] : {} into {}",
                dst.name,
                src.name,
                src.ty(),
                dst.ty()
            );
            b.line(&l);
            dst
        };
        let qr = b.as_read(&args.arg("q"), bf16);
        let kr = b.as_read(&args.arg("k"), bf16);
        let vr = b.as_read(&args.arg("v"), bf16);
        let q3 = expand(b, &qr, q_len);
        let k3 = expand(b, &kr, kv_len);
        let v3 = expand(b, &vr, kv_len);
        let o3 = expand(b, out, q_len);
        let scale = fconst(1.0 / (d as f32).sqrt());
        // Scores S[h, i, j] = q_i · k_j (f32), scaled after the dot product like the kernel.
        let s = b.alloc(&[h_n, q_len, kv_len], "f32");
        b.fill(&s, "0.0");
        let body = format!(
            "{}\n{}\n%p = arith.mulf %a, %b : f32\n%s = arith.addf %out, %p : f32\nlinalg.yield %s : f32",
            widen("%in0", q3.elem, "%a"),
            widen("%in1", k3.elem, "%b")
        );
        b.generic(
            "pppr",
            &[op(&q3, "d1, d0, d3"), op(&k3, "d2, d0, d3")],
            op(&s, "d0, d1, d2"),
            &body,
        );
        // Causal mask: key j is visible to query i when j <= causal_offset + i.
        let visible = match case.causal_offset {
            Some(off) => format!(
                "%vi = linalg.index 1 : index\n%vj = linalg.index 2 : index\n%voff = arith.constant {off} : index\n%vlim = arith.addi %vi, %voff : index\n%vis = arith.cmpi ule, %vj, %vlim : index\n"
            ),
            None => "%vis = arith.constant true\n".to_string(),
        };
        let mx = b.alloc(&[h_n, q_len], "f32");
        b.fill(&mx, "0xFF800000");
        let body = format!(
            "{visible}%sc = arith.constant {scale} : f32\n%v = arith.mulf %in0, %sc : f32\n%m = arith.maximumf %out, %v : f32\n%r = arith.select %vis, %m, %out : f32\nlinalg.yield %r : f32"
        );
        b.generic("ppr", &[op(&s, "d0, d1, d2")], op(&mx, "d0, d1"), &body);
        let body = format!(
            "{visible}%sc = arith.constant {scale} : f32\n%z = arith.constant 0.0 : f32\n%v = arith.mulf %out, %sc : f32\n%c = arith.subf %v, %in0 : f32\n%e = math.exp %c : f32\n%r = arith.select %vis, %e, %z : f32\nlinalg.yield %r : f32"
        );
        b.generic("ppp", &[op(&mx, "d0, d1")], op(&s, "d0, d1, d2"), &body);
        let sum = b.alloc(&[h_n, q_len], "f32");
        b.fill(&sum, "0.0");
        b.generic(
            "ppr",
            &[op(&s, "d0, d1, d2")],
            op(&sum, "d0, d1"),
            "%a = arith.addf %out, %in0 : f32\nlinalg.yield %a : f32",
        );
        // P = e · (1/Σ), stored as the PV mmul reads it.
        let p = b.alloc(&[h_n, q_len, kv_len], if bf16 { "bf16" } else { "f32" });
        let store = if bf16 {
            "%pb = arith.truncf %p : f32 to bf16\nlinalg.yield %pb : bf16"
        } else {
            "linalg.yield %p : f32"
        };
        let body = format!(
            "%one = arith.constant 1.0 : f32\n%inv = arith.divf %one, %in1 : f32\n%p = arith.mulf %in0, %inv : f32\n{store}"
        );
        b.generic(
            "ppp",
            &[op(&s, "d0, d1, d2"), op(&sum, "d0, d1")],
            op(&p, "d0, d1, d2"),
            &body,
        );
        // O[i, h, :] = Σ_j P[h, i, j] · v_j (f32 accumulation in j order).
        b.fill(&o3, "0.0");
        let body = format!(
            "{}\n{}\n%m = arith.mulf %a, %b : f32\n%s = arith.addf %out, %m : f32\nlinalg.yield %s : f32",
            widen("%in0", p.elem, "%a"),
            widen("%in1", v3.elem, "%b")
        );
        b.generic(
            "pppr",
            &[op(&p, "d0, d1, d3"), op(&v3, "d3, d0, d2")],
            op(&o3, "d1, d0, d2"),
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
        let Op::Attention {
            heads,
            head_dim,
            q_len,
            kv_len,
            ..
        } = spec.op
        else {
            wrong_op("attention", &spec.op)
        };
        rt.attention(
            &spec.name,
            case.input("q").as_f32(),
            case.input("k").as_f32(),
            case.input("v").as_f32(),
            AttentionParams {
                heads,
                head_dim,
                q_len,
                kv_len,
                causal_offset: case.causal_offset,
            },
            out,
        )
    }
}
