//! Text builder of the reference modules: buffers, `linalg.generic` / `linalg.fill` on memrefs
//! and the reads every family shares (bf16 rounding, split weights, the A·Bᵀ matmul).

mod epilogue;
mod quant;

pub(crate) use epilogue::epilogue;
pub(crate) use quant::{quant_lines, quantize, Scale, Scale2};

use std::fmt::Write as _;

/// f32 constant as its exact bit pattern (no decimal round trip).
pub(crate) fn fconst(v: f32) -> String {
    format!("0x{:08X}", v.to_bits())
}

pub(crate) fn memref(shape: &[usize], elem: &str) -> String {
    if shape.is_empty() {
        format!("memref<{elem}>")
    } else {
        let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
        format!("memref<{}x{elem}>", dims.join("x"))
    }
}

/// A buffer value in the function body.
#[derive(Clone)]
pub(crate) struct Buf {
    pub(crate) name: String,
    pub(crate) shape: Vec<usize>,
    pub(crate) elem: &'static str,
}

impl Buf {
    pub(crate) fn ty(&self) -> String {
        memref(&self.shape, self.elem)
    }
}

/// One operand of a `linalg.generic`: buffer and the results of its indexing map.
pub(crate) struct Operand<'a> {
    pub(crate) buf: &'a Buf,
    pub(crate) map: &'a str,
}

pub(crate) fn op<'a>(buf: &'a Buf, map: &'a str) -> Operand<'a> {
    Operand { buf, map }
}

/// Text builder of the kernel function.
pub(crate) struct Builder {
    pub(crate) body: String,
    next: usize,
    pub(crate) allocs: Vec<Buf>,
}

impl Builder {
    pub(crate) fn new() -> Self {
        Builder {
            body: String::new(),
            next: 0,
            allocs: Vec::new(),
        }
    }

    pub(crate) fn fresh(&mut self) -> String {
        self.next += 1;
        format!("%t{}", self.next)
    }

    pub(crate) fn line(&mut self, s: &str) {
        self.body.push_str("    ");
        self.body.push_str(s);
        self.body.push('\n');
    }

    pub(crate) fn alloc(&mut self, shape: &[usize], elem: &'static str) -> Buf {
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

    pub(crate) fn fill(&mut self, b: &Buf, value: &str) {
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
    pub(crate) fn scalar(&mut self, text: &str) -> String {
        let c = self.fresh();
        let l = format!("{c} = {text}");
        self.line(&l);
        c
    }

    /// `linalg.generic` over `dims` loops (`iters` one of 'p'/'r' per loop). The block arguments
    /// are `%in0..`, then `%out`; `body` computes and ends with `linalg.yield`.
    pub(crate) fn generic(
        &mut self,
        iters: &str,
        ins: &[Operand<'_>],
        out: Operand<'_>,
        body: &str,
    ) {
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
    pub(crate) fn bf16_copy(&mut self, src: &Buf) -> Buf {
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
    pub(crate) fn as_read(&mut self, src: &Buf, bf16: bool) -> Buf {
        if bf16 {
            self.bf16_copy(src)
        } else {
            src.clone()
        }
    }

    /// Weights as the kernel reads them: as [`Self::as_read`], or with `split` (bf16 kernels
    /// whose weights travel as two bf16 planes) hi + lo, hi = bf16(w), lo = bf16(w − hi).
    pub(crate) fn weights_as_read(&mut self, src: &Buf, bf16: bool, split: bool) -> Buf {
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
    pub(crate) fn matmul_abt(&mut self, a: &Buf, b: &Buf, out: &Buf) {
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
    pub(crate) fn round_in_place(&mut self, b: &Buf) {
        let map = ident(b.shape.len());
        self.generic(
            &"p".repeat(b.shape.len()),
            &[],
            op(b, &map),
            "%h = arith.truncf %out : f32 to bf16\n%v = arith.extf %h : bf16 to f32\nlinalg.yield %v : f32",
        );
    }
}

pub(crate) fn ident(n: usize) -> String {
    (0..n)
        .map(|i| format!("d{i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A body line making `dst` the f32 value of block argument `arg` of element type `elem`.
pub(crate) fn widen(arg: &str, elem: &str, dst: &str) -> String {
    match elem {
        "bf16" => format!("{dst} = arith.extf {arg} : bf16 to f32"),
        _ => format!("{dst} = arith.addf {arg}, %zero_neg : f32"),
    }
}

/// The input buffers of the kernel function (`%arg_<name>`, one per case input, in order).
pub(crate) struct Params(pub(crate) Vec<Buf>);

impl Params {
    /// The buffer of input `name` (a family asks only for inputs its own case made).
    pub(crate) fn arg(&self, name: &str) -> Buf {
        self.0
            .iter()
            .find(|p| p.name == format!("%arg_{name}"))
            .cloned()
            .unwrap_or_else(|| panic!("reference needs input {name}"))
    }

    /// Whether the case has the optional input `name`.
    pub(crate) fn has(&self, name: &str) -> bool {
        self.0.iter().any(|p| p.name == format!("%arg_{name}"))
    }
}
