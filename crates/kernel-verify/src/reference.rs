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

use kernel_spec::KernelSpec;

use crate::family;
use crate::inputs::{Case, Data};
use crate::mlir::{Buf, Builder, Params};

/// Name of the kernel function in every reference module.
pub const FUNC: &str = "kernel";

/// Whether the NPU kernel of `spec` writes its output as bf16 (so the reference rounds it).
pub fn rounds_output(spec: &KernelSpec) -> bool {
    family::of(spec).rounds_output(spec)
}

/// The reference module of `spec` on the buffers of `case`. Arguments of `@kernel` are the
/// case's inputs in order, then the output; the body is the family's (`family::VerifyFamily`).
pub fn render(spec: &KernelSpec, case: &Case) -> Result<String, String> {
    let mut b = Builder::new();
    let params = Params(
        case.inputs
            .iter()
            .map(|t| Buf {
                name: format!("%arg_{}", t.name),
                shape: t.shape.clone(),
                elem: match t.data {
                    Data::F32(_) => "f32",
                    Data::I32(_) => "i32",
                },
            })
            .collect(),
    );
    let out = Buf {
        name: "%arg_out".into(),
        shape: case.output_shape.clone(),
        elem: "f32",
    };
    family::of(spec).reference(spec, case, &mut b, &params, &out)?;
    if rounds_output(spec) {
        b.round_in_place(&out);
    }

    // Assemble the module.
    let mut sig: Vec<String> = params
        .0
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
