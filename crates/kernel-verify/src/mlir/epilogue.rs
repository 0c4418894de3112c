//! The f32 matmul epilogue (bias, GELU, residual) shared by matmul and FFN references.

use std::fmt::Write as _;

use super::{op, widen, Buf, Operand};

/// Body lines computing the exact-erf GELU of `%x` into `%g` (same operation order as the
/// runtime: 0.5·x·(1 + erf(x·(1/√2)))).
pub(crate) const GELU: &str = "%gc = arith.constant 0x3F3504F3 : f32\n\
    %gh = arith.constant 0.5 : f32\n\
    %g1 = arith.constant 1.0 : f32\n\
    %gu = arith.mulf %x, %gc : f32\n\
    %ge = math.erf %gu : f32\n\
    %gt = arith.addf %g1, %ge : f32\n\
    %gx = arith.mulf %gh, %x : f32\n\
    %g = arith.mulf %gx, %gt : f32";

/// Appends the matmul epilogue on `%x` (f32) to `body`: `+ bias[j]`, GELU, `+ residual[i, j]`.
/// Operands are appended to `ins` (block arguments numbered after the existing ones). Returns
/// the name of the final value.
pub(crate) fn epilogue<'a>(
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
