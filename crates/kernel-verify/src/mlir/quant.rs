//! int8 quantisation in the reference: symmetric scales max|v|/127 (1 for an all-zero tensor),
//! q = clamp(roundeven(v/s), -127, 127).

use super::{ident, op, Buf, Builder};

impl Builder {
    /// Per-tensor int8 scale of `src` as an f32 SSA value: max|v|/127, or 1 when that is not
    /// a positive finite number.
    pub(crate) fn scale_per_tensor(&mut self, src: &Buf) -> String {
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
    pub(crate) fn scale_per_row(&mut self, src: &Buf) -> Buf {
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

pub(crate) enum Scale<'a> {
    Scalar(&'a str),
    Row(&'a Buf),
}

pub(crate) enum Scale2 {
    Scalar(String),
    Row(Buf),
}

/// Body lines quantising `%v_in` (f32) with scale `s` into `%q` (i8).
pub(crate) fn quant_lines(v: &str, s: &str) -> String {
    format!(
        "%qd = arith.divf {v}, {s} : f32\n%qr = math.roundeven %qd : f32\n%qlo = arith.constant -127.0 : f32\n%qhi = arith.constant 127.0 : f32\n%qa = arith.maximumf %qr, %qlo : f32\n%qb = arith.minimumf %qa, %qhi : f32\n%q = arith.fptosi %qb : f32 to i8"
    )
}

pub(crate) fn quantize(b: &mut Builder, src: &Buf, scale: Scale<'_>) -> Buf {
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
