//! One module per kernel family, each implementing `VerifyFamily` once: the random case of an
//! entry (its tensors and output shape), the body of its MLIR reference and its call through
//! the npu_runtime API. `def` is the only place a family is looked up; `inputs::make_case`,
//! `reference::render` and `cpu::run_on` stay generic. Shared pieces live outside: the MLIR
//! text builder, int8 quantisation and the matmul epilogue in `crate::mlir`, the random
//! generator and tensors in `crate::inputs`.

mod attention;
mod ffn;
mod layernorm;
mod lm_head;
mod matmul;

use kernel_spec::{Dtype, Family, KernelSpec, Op};
use npu_runtime::{Runtime, RuntimeError};

use crate::inputs::{Case, Rng};
use crate::mlir::{Buf, Builder, Params};

/// Everything kernel-verify knows about one family. The `op` (or `spec.op`) handed to a method
/// is always of the implementing family (`def` dispatches on `Op::family`).
pub(crate) trait VerifyFamily {
    /// The seeded random inputs of `op` and the shape of its output. Value ranges mimic a
    /// trained network so that every part of the computation matters.
    fn case(&self, op: &Op, rng: &mut Rng) -> Result<Case, String>;

    /// Appends the reference computation of `spec` to `b`: reads `args` (the case's inputs),
    /// writes `out` (f32, before the final output rounding, which `render` adds).
    fn reference(
        &self,
        spec: &KernelSpec,
        case: &Case,
        b: &mut Builder,
        args: &Params,
        out: &Buf,
    ) -> Result<(), String>;

    /// Runs the entry's operation through `rt` on the inputs of `case` into `out`.
    fn run(
        &self,
        rt: &Runtime,
        spec: &KernelSpec,
        case: &Case,
        out: &mut [f32],
    ) -> Result<(), RuntimeError>;

    /// Whether the NPU kernel writes its output as bf16 (so the reference rounds it).
    fn rounds_output(&self, spec: &KernelSpec) -> bool {
        spec.dtype == Dtype::Bf16
    }
}

/// The implementation of `family`.
pub(crate) fn def(family: Family) -> &'static dyn VerifyFamily {
    match family {
        Family::Matmul => &matmul::Matmul,
        Family::Attention => &attention::Attention,
        Family::Ffn => &ffn::Ffn,
        Family::LayerNorm => &layernorm::LayerNorm,
        Family::LmHead => &lm_head::LmHead,
    }
}

/// The implementation of the family of `spec`'s operation.
pub(crate) fn of(spec: &KernelSpec) -> &'static dyn VerifyFamily {
    def(spec.op.family())
}

/// A family method was handed another family's op; `def` never does that.
fn wrong_op(family: &str, op: &Op) -> ! {
    unreachable!("the {family} verifier was handed a {} op", op.family())
}
