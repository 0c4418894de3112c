//! Renders the upstream-MLIR reference of a spec entry: `linalg.generic` / `linalg.fill` on
//! memrefs with `arith` and `math` bodies, on the entry's exact shapes.
//!
//! Where the NPU kernel rounds (see `npu_runtime::numerics` and `kernel_spec::Dtype`):
//! - bf16: every kernel input (activations, weights, bias, residual, LayerNorm gamma/beta) is
//!   stored as bf16 (`arith.truncf`, round to nearest even) and widened (`arith.extf`) where it
//!   is read; products and sums are f32; epilogues (bias, GELU, residual, softmax, LayerNorm
//!   statistics) run in f32; a matmul result that feeds another matmul inside the kernel (FFN
//!   hidden layer, attention probabilities) is rounded to bf16; the kernel's output is bf16
//!   (rounded once, after the epilogue) except the LM head, whose logits are f32.
//! - bf16 with `split_weights`: weights are read as hi + lo of their two bf16 planes.
//! - int8: symmetric scales max|v|/127 (1 for an all-zero tensor), q = clamp(roundeven(v/s),
//!   -127, 127), activations per tensor, weights per tensor or per output channel, i32
//!   accumulation, dequantised as `acc * (s_x * s_w)`, f32 epilogue; `requantize_output`
//!   quantises the result per tensor and dequantises it again, otherwise the output is bf16.

use std::fmt::Write as _;

use kernel_spec::{Dtype, KernelSpec, Op, WeightScale};

use crate::inputs::{Case, Data};

/// Name of the kernel function in every reference module.
pub const FUNC: &str = "kernel";

/// Whether the NPU kernel of `spec` writes its output as bf16 (so the reference rounds it).
pub fn rounds_output(spec: &KernelSpec) -> bool {
    match (&spec.op, spec.dtype) {
        // f32 logits accumulate in the C tile itself (kernel-spec's lm_head plan).
        (Op::LmHead { .. }, _) => false,
        (Op::Matmul { quant: Some(q), .. }, Dtype::Int8) => !q.requantize_output,
        (_, Dtype::Bf16) => true,
        _ => false,
    }
}

/// f32 constant as its exact bit pattern (no decimal round trip).
fn fconst(v: f32) -> String {
    format!("0x{:08X}", v.to_bits())
}

fn memref(shape: &[usize], elem: &str) -> String {
    if shape.is_empty() {
        format!("memref<{elem}>")
    } else {
        let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
        format!("memref<{}x{elem}>", dims.join("x"))
    }
}

/// A buffer value in the function body.
#[derive(Clone)]
struct Buf {
    name: String,
    shape: Vec<usize>,
    elem: &'static str,
}

impl Buf {
    fn ty(&self) -> String {
        memref(&self.shape, self.elem)
    }
}

/// One operand of a `linalg.generic`: buffer and the results of its indexing map.
struct Operand<'a> {
    buf: &'a Buf,
    map: &'a str,
}

fn op<'a>(buf: &'a Buf, map: &'a str) -> Operand<'a> {
    Operand { buf, map }
}

/// Text builder of the kernel function.
struct Builder {
    body: String,
    next: usize,
    allocs: Vec<Buf>,
}

impl Builder {
    fn new() -> Self {
        Builder {
            body: String::new(),
            next: 0,
            allocs: Vec::new(),
        }
    }

    fn fresh(&mut self) -> String {
        self.next += 1;
        format!("%t{}", self.next)
    }

    fn line(&mut self, s: &str) {
        self.body.push_str("    ");
        self.body.push_str(s);
        self.body.push('\n');
    }

    fn alloc(&mut self, shape: &[usize], elem: &'static str) -> Buf {
        let b = Buf {
            name: self.fresh(),
            shape: shape.to_vec(),
            elem,
        };
        let line = format!(
            "{} = memref.alloc() {{alignment = 64 : i64}} : {}",
            b.name,
            b.ty()
        );
        self.line(&line);
        self.allocs.push(b.clone());
        b
    }

    fn fill(&mut self, b: &Buf, value: &str) {
        let c = self.fresh();
        let l = format!("{c} = arith.constant {value} : {}", b.elem);
        self.line(&l);
        let l = format!(
            "linalg.fill ins({c} : {}) outs({} : {})",
            b.elem,
            b.name,
            b.ty()
        );
        self.line(&l);
    }

    /// A scalar SSA value computed from f32 constants.
    fn scalar(&mut self, text: &str) -> String {
        let c = self.fresh();
        let l = format!("{c} = {text}");
        self.line(&l);
        c
    }

    /// `linalg.generic` over `dims` loops (`iters` one of 'p'/'r' per loop). The block arguments
    /// are `%in0..`, then `%out`; `body` computes and ends with `linalg.yield`.
    fn generic(&mut self, iters: &str, ins: &[Operand<'_>], out: Operand<'_>, body: &str) {
        let dims: Vec<String> = (0..iters.len()).map(|i| format!("d{i}")).collect();
        let dims = dims.join(", ");
        let maps: Vec<String> = ins
            .iter()
            .chain(std::iter::once(&out))
            .map(|o| format!("affine_map<({dims}) -> ({})>", o.map))
            .collect();
        let it: Vec<&str> = iters
            .chars()
            .map(|c| {
                if c == 'r' {
                    "\"reduction\""
                } else {
                    "\"parallel\""
                }
            })
            .collect();
        let mut s = format!(
            "linalg.generic {{indexing_maps = [{}], iterator_types = [{}]}}",
            maps.join(", "),
            it.join(", ")
        );
        if !ins.is_empty() {
            let names: Vec<&str> = ins.iter().map(|o| o.buf.name.as_str()).collect();
            let tys: Vec<String> = ins.iter().map(|o| o.buf.ty()).collect();
            let _ = write!(s, " ins({} : {})", names.join(", "), tys.join(", "));
        }
        let _ = write!(s, " outs({} : {}) {{", out.buf.name, out.buf.ty());
        self.line(&s);
        let mut args: Vec<String> = ins
            .iter()
            .enumerate()
            .map(|(i, o)| format!("%in{i}: {}", o.buf.elem))
            .collect();
        args.push(format!("%out: {}", out.buf.elem));
        let l = format!("^bb0({}):", args.join(", "));
        self.line(&l);
        for l in body.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let l = format!("  {l}");
            self.line(&l);
        }
        self.line("}");
    }

    /// Copy of `src` rounded to bf16 (round to nearest even).
    fn bf16_copy(&mut self, src: &Buf) -> Buf {
        let dst = self.alloc(&src.shape, "bf16");
        let map = ident(src.shape.len());
        self.generic(
            &"p".repeat(src.shape.len()),
            &[op(src, &map)],
            op(&dst, &map),
            "%v = arith.truncf %in0 : f32 to bf16\nlinalg.yield %v : bf16",
        );
        dst
    }

    /// `src` as the kernel reads it: rounded to bf16 when `bf16`, else as is.
    fn as_read(&mut self, src: &Buf, bf16: bool) -> Buf {
        if bf16 {
            self.bf16_copy(src)
        } else {
            src.clone()
        }
    }

    /// Weights as the kernel reads them: as [`Self::as_read`], or with `split` (bf16 kernels
    /// whose weights travel as two bf16 planes) hi + lo, hi = bf16(w), lo = bf16(w − hi).
    fn weights_as_read(&mut self, src: &Buf, bf16: bool, split: bool) -> Buf {
        if !(bf16 && split) {
            return self.as_read(src, bf16);
        }
        let dst = self.alloc(&src.shape, "f32");
        let map = ident(src.shape.len());
        self.generic(
            &"p".repeat(src.shape.len()),
            &[op(src, &map)],
            op(&dst, &map),
            "%h = arith.truncf %in0 : f32 to bf16\n%hf = arith.extf %h : bf16 to f32\n\
             %r = arith.subf %in0, %hf : f32\n%l = arith.truncf %r : f32 to bf16\n\
             %lf = arith.extf %l : bf16 to f32\n%s = arith.addf %hf, %lf : f32\nlinalg.yield %s : f32",
        );
        dst
    }

    /// `out[i, j] = Σ_k ext(a[i, k]) · ext(b[j, k])` (f32 accumulation in k order; `out` f32).
    fn matmul_abt(&mut self, a: &Buf, b: &Buf, out: &Buf) {
        self.fill(out, "0.0");
        let body = format!(
            "{}\n{}\n%p = arith.mulf %a, %b : f32\n%s = arith.addf %out, %p : f32\nlinalg.yield %s : f32",
            widen("%in0", a.elem, "%a"),
            widen("%in1", b.elem, "%b")
        );
        self.generic(
            "ppr",
            &[op(a, "d0, d2"), op(b, "d1, d2")],
            op(out, "d0, d1"),
            &body,
        );
    }

    /// Rounds an f32 buffer to bf16 values in place (truncf + extf).
    fn round_in_place(&mut self, b: &Buf) {
        let map = ident(b.shape.len());
        self.generic(
            &"p".repeat(b.shape.len()),
            &[],
            op(b, &map),
            "%h = arith.truncf %out : f32 to bf16\n%v = arith.extf %h : bf16 to f32\nlinalg.yield %v : f32",
        );
    }

    /// Per-tensor int8 scale of `src` as an f32 SSA value: max|v|/127, or 1 when that is not
    /// a positive finite number.
    fn scale_per_tensor(&mut self, src: &Buf) -> String {
        let amax = self.alloc(&[], "f32");
        self.fill(&amax, "0.0");
        let n = src.shape.len();
        self.generic(
            &"r".repeat(n),
            &[op(src, &ident(n))],
            op(&amax, ""),
            "%a = math.absf %in0 : f32\n%m = arith.maximumf %out, %a : f32\nlinalg.yield %m : f32",
        );
        let a = self.scalar(&format!("memref.load {}[] : memref<f32>", amax.name));
        let c127 = self.scalar("arith.constant 127.0 : f32");
        let d = self.scalar(&format!("arith.divf {a}, {c127} : f32"));
        let zero = self.scalar("arith.constant 0.0 : f32");
        let pos = self.scalar(&format!("arith.cmpf ogt, {a}, {zero} : f32"));
        let inf = self.scalar("arith.constant 0x7F800000 : f32");
        let fin = self.scalar(&format!("arith.cmpf olt, {a}, {inf} : f32"));
        let ok = self.scalar(&format!("arith.andi {pos}, {fin} : i1"));
        let one = self.scalar("arith.constant 1.0 : f32");
        self.scalar(&format!("arith.select {ok}, {d}, {one} : f32"))
    }

    /// Per-row int8 scales of a 2-D `src` (per output channel of a weight).
    fn scale_per_row(&mut self, src: &Buf) -> Buf {
        let rows = src.shape[0];
        let amax = self.alloc(&[rows], "f32");
        self.fill(&amax, "0.0");
        self.generic(
            "pr",
            &[op(src, "d0, d1")],
            op(&amax, "d0"),
            "%a = math.absf %in0 : f32\n%m = arith.maximumf %out, %a : f32\nlinalg.yield %m : f32",
        );
        let scales = self.alloc(&[rows], "f32");
        let body = String::from(
            "%c127 = arith.constant 127.0 : f32\n%one = arith.constant 1.0 : f32\n%zero = arith.constant 0.0 : f32\n%inf = arith.constant 0x7F800000 : f32\n%d = arith.divf %in0, %c127 : f32\n%pos = arith.cmpf ogt, %in0, %zero : f32\n%fin = arith.cmpf olt, %in0, %inf : f32\n%ok = arith.andi %pos, %fin : i1\n%s = arith.select %ok, %d, %one : f32\nlinalg.yield %s : f32"
        );
        self.generic("p", &[op(&amax, "d0")], op(&scales, "d0"), &body);
        scales
    }
}

fn ident(n: usize) -> String {
    (0..n)
        .map(|i| format!("d{i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A body line making `dst` the f32 value of block argument `arg` of element type `elem`.
fn widen(arg: &str, elem: &str, dst: &str) -> String {
    match elem {
        "bf16" => format!("{dst} = arith.extf {arg} : bf16 to f32"),
        _ => format!("{dst} = arith.addf {arg}, %zero_neg : f32"),
    }
}

/// Body lines computing the exact-erf GELU of `%x` into `%g` (same operation order as the
/// runtime: 0.5·x·(1 + erf(x·(1/√2)))).
const GELU: &str = "%gc = arith.constant 0x3F3504F3 : f32\n\
    %gh = arith.constant 0.5 : f32\n\
    %g1 = arith.constant 1.0 : f32\n\
    %gu = arith.mulf %x, %gc : f32\n\
    %ge = math.erf %gu : f32\n\
    %gt = arith.addf %g1, %ge : f32\n\
    %gx = arith.mulf %gh, %x : f32\n\
    %g = arith.mulf %gx, %gt : f32";

/// The reference module of `spec` on the buffers of `case`. Arguments of `@kernel` are the
/// case's inputs in order, then the output.
pub fn render(spec: &KernelSpec, case: &Case) -> Result<String, String> {
    let mut b = Builder::new();
    let mut params: Vec<Buf> = Vec::new();
    for t in &case.inputs {
        let elem = match t.data {
            Data::F32(_) => "f32",
            Data::I32(_) => "i32",
        };
        params.push(Buf {
            name: format!("%arg_{}", t.name),
            shape: t.shape.clone(),
            elem,
        });
    }
    let out = Buf {
        name: "%arg_out".into(),
        shape: case.output_shape.clone(),
        elem: "f32",
    };
    let arg = |name: &str| -> Buf {
        params
            .iter()
            .find(|p| p.name == format!("%arg_{name}"))
            .cloned()
            .unwrap_or_else(|| panic!("reference needs input {name}"))
    };
    let has = |name: &str| params.iter().any(|p| p.name == format!("%arg_{name}"));
    let bf16 = spec.dtype == Dtype::Bf16;
    let split = spec.op.split_weights();

    match spec.op {
        Op::Matmul { gelu, quant, .. } => {
            let (x, w) = (arg("x"), arg("w"));
            let bias = has("b").then(|| arg("b"));
            let res = has("r").then(|| arg("r"));
            match (spec.dtype, quant) {
                (Dtype::Int8, Some(q)) => {
                    let sx = b.scale_per_tensor(&x);
                    let xq = quantize(&mut b, &x, Scale::Scalar(&sx));
                    let (wq, sw) = match q.weight_scale {
                        WeightScale::PerTensor => {
                            let s = b.scale_per_tensor(&w);
                            (quantize(&mut b, &w, Scale::Scalar(&s)), Scale2::Scalar(s))
                        }
                        WeightScale::PerChannel => {
                            let s = b.scale_per_row(&w);
                            (quantize(&mut b, &w, Scale::Row(&s)), Scale2::Row(s))
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
                    let bias_ref = bias.as_ref();
                    let res_ref = res.as_ref();
                    let y = epilogue(&mut ins, &mut body, bias_ref, gelu, res_ref);
                    let _ = write!(body, "linalg.yield {y} : f32");
                    b.generic("pp", &ins, op(&out, "d0, d1"), &body);
                    if q.requantize_output {
                        let so = b.scale_per_tensor(&out);
                        let body = format!(
                            "{}\n%qf = arith.sitofp %q : i8 to f32\n%v = arith.mulf %qf, {so} : f32\nlinalg.yield %v : f32",
                            quant_lines("%out", &so)
                        );
                        b.generic("pp", &[], op(&out, "d0, d1"), &body);
                    }
                }
                (Dtype::Int8, None) => return Err(
                    "int8 matmul needs a [kernel.quant] table (weight_scale, requantize_output)"
                        .into(),
                ),
                _ => {
                    let xr = b.as_read(&x, bf16);
                    let wr = b.weights_as_read(&w, bf16, split);
                    b.matmul_abt(&xr, &wr, &out);
                    let bias_r = bias.as_ref().map(|v| b.as_read(v, bf16));
                    let res_r = res.as_ref().map(|v| b.as_read(v, bf16));
                    if bias_r.is_some() || res_r.is_some() || gelu {
                        let mut ins = Vec::new();
                        let mut body = String::from("%x = arith.addf %out, %zero_neg : f32\n");
                        let y =
                            epilogue(&mut ins, &mut body, bias_r.as_ref(), gelu, res_r.as_ref());
                        let _ = write!(body, "linalg.yield {y} : f32");
                        b.generic("pp", &ins, op(&out, "d0, d1"), &body);
                    }
                }
            }
        }
        Op::Ffn { rows, d_ff, .. } => {
            let xr = b.as_read(&arg("x"), bf16);
            let w1 = b.weights_as_read(&arg("w1"), bf16, split);
            let b1 = b.as_read(&arg("b1"), bf16);
            let w2 = b.weights_as_read(&arg("w2"), bf16, split);
            let b2 = b.as_read(&arg("b2"), bf16);
            let r = b.as_read(&arg("r"), bf16);
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
            b.matmul_abt(&hr, &w2, &out);
            let mut ins = Vec::new();
            let mut body = String::from("%x = arith.addf %out, %zero_neg : f32\n");
            let y = epilogue(&mut ins, &mut body, Some(&b2), false, Some(&r));
            let _ = write!(body, "linalg.yield {y} : f32");
            b.generic("pp", &ins, op(&out, "d0, d1"), &body);
        }
        Op::LayerNorm { rows, dim, eps } => {
            let x = b.as_read(&arg("x"), bf16);
            let g = b.as_read(&arg("gamma"), bf16);
            let be = b.as_read(&arg("beta"), bf16);
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
                op(&out, "d0, d1"),
                &body,
            );
        }
        Op::Attention {
            heads,
            head_dim,
            q_len,
            kv_len,
            ..
        } => {
            let (h_n, d) = (heads, head_dim);
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
            let qr = b.as_read(&arg("q"), bf16);
            let kr = b.as_read(&arg("k"), bf16);
            let vr = b.as_read(&arg("v"), bf16);
            let q3 = expand(&mut b, &qr, q_len);
            let k3 = expand(&mut b, &kr, kv_len);
            let v3 = expand(&mut b, &vr, kv_len);
            let o3 = expand(&mut b, &out, q_len);
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
        }
        Op::LmHead { rows, d_model, .. } => {
            let xr = b.as_read(&arg("x"), bf16);
            let e = arg("e");
            let table = if has("ids") {
                // Gather the selected rows of the embedding, then the same matmul.
                let ids = arg("ids");
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
            let er = b.weights_as_read(&table, bf16, split);
            let _ = rows;
            b.matmul_abt(&xr, &er, &out);
        }
    }
    if rounds_output(spec) {
        b.round_in_place(&out);
    }

    // Assemble the module.
    let mut sig: Vec<String> = params
        .iter()
        .map(|p| format!("{}: {} {{llvm.noalias}}", p.name, p.ty()))
        .collect();
    sig.push(format!("{}: {} {{llvm.noalias}}", out.name, out.ty()));
    let mut text = String::new();
    let _ = writeln!(
        text,
        "// Reference of {} ({}, {}, {})",
        spec.name, spec.family, spec.dtype, spec.device
    );
    let _ = writeln!(text, "module {{");
    let _ = writeln!(text, "  func.func @{FUNC}({}) {{", sig.join(", "));
    // `x + (-0.0)` is an exact identity for every x (also -0.0), used to rename a value.
    let _ = writeln!(text, "    %zero_neg = arith.constant -0.0 : f32");
    text.push_str(&b.body);
    for a in &b.allocs {
        let _ = writeln!(text, "    memref.dealloc {} : {}", a.name, a.ty());
    }
    let _ = writeln!(text, "    return");
    let _ = writeln!(text, "  }}");
    let _ = writeln!(text, "}}");
    Ok(text)
}

enum Scale<'a> {
    Scalar(&'a str),
    Row(&'a Buf),
}

enum Scale2 {
    Scalar(String),
    Row(Buf),
}

/// Body lines quantising `%v_in` (f32) with scale `s` into `%q` (i8).
fn quant_lines(v: &str, s: &str) -> String {
    format!(
        "%qd = arith.divf {v}, {s} : f32\n%qr = math.roundeven %qd : f32\n%qlo = arith.constant -127.0 : f32\n%qhi = arith.constant 127.0 : f32\n%qa = arith.maximumf %qr, %qlo : f32\n%qb = arith.minimumf %qa, %qhi : f32\n%q = arith.fptosi %qb : f32 to i8"
    )
}

fn quantize(b: &mut Builder, src: &Buf, scale: Scale<'_>) -> Buf {
    let dst = b.alloc(&src.shape, "i8");
    let map = ident(src.shape.len());
    let iters = "p".repeat(src.shape.len());
    match scale {
        Scale::Scalar(s) => {
            let body = format!("{}\nlinalg.yield %q : i8", quant_lines("%in0", s));
            b.generic(&iters, &[op(src, &map)], op(&dst, &map), &body);
        }
        Scale::Row(s) => {
            let body = format!("{}\nlinalg.yield %q : i8", quant_lines("%in0", "%in1"));
            b.generic(&iters, &[op(src, &map), op(s, "d0")], op(&dst, &map), &body);
        }
    }
    dst
}

/// Appends the matmul epilogue on `%x` (f32) to `body`: `+ bias[j]`, GELU, `+ residual[i, j]`.
/// Operands are appended to `ins` (block arguments numbered after the existing ones). Returns
/// the name of the final value.
fn epilogue<'a>(
    ins: &mut Vec<Operand<'a>>,
    body: &mut String,
    bias: Option<&'a Buf>,
    gelu: bool,
    residual: Option<&'a Buf>,
) -> String {
    let mut cur = "%x".to_string();
    if let Some(bb) = bias {
        let i = ins.len();
        ins.push(op(bb, "d1"));
        let _ = writeln!(body, "{}", widen(&format!("%in{i}"), bb.elem, "%bv"));
        let _ = writeln!(body, "%xb = arith.addf {cur}, %bv : f32");
        cur = "%xb".into();
    }
    if gelu {
        let _ = writeln!(body, "{}", GELU.replace("%x", &cur));
        cur = "%g".into();
    }
    if let Some(r) = residual {
        let i = ins.len();
        ins.push(op(r, "d0, d1"));
        let _ = writeln!(body, "{}", widen(&format!("%in{i}"), r.elem, "%rv"));
        let _ = writeln!(body, "%xr = arith.addf {cur}, %rv : f32");
        cur = "%xr".into();
    }
    cur
}
