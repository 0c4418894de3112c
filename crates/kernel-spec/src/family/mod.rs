//! One module per kernel family, each implementing `FamilyDef` once: its TOML entry, its plan
//! (shape checks and the mapping onto the array), its template context and its small facts.
//! `def` is the only place a family is looked up; `check` and `render` stay generic.
//!
//! How each family maps onto the array (the templates render exactly this plan):
//! - matmul: core (column c, row r) computes the output tiles (i, j) with i = r (mod rows) and
//!   j = c (mod columns) (or, when the column blocks do not spread over the columns, every core
//!   takes its own row blocks; see `seq::Split`). A tiles stream per core (split in the column's
//!   mem tile), B tiles are broadcast down the column, C tiles are joined in the mem tile. Bias /
//!   int8 scales ride in the B stream as one extra element per output tile, the residual tile in
//!   the A stream, so each core needs only its two input DMA channels.
//! - ffn: the matmul plan run twice on the same FIFOs (fc1+bias+GELU, then fc2+bias+residual).
//! - lm_head: the matmul plan on the transposed product logits^T = E · X^T, so that the
//!   vocabulary (A rows) spreads over all cores and X^T (a few columns) is broadcast; f32 out.
//! - attention: heads over columns, query blocks over rows; Q per core, packed K/V blocks
//!   broadcast down the column, flash-attention (online softmax) in each core.
//! - layernorm: row blocks split over all cores, gamma/beta broadcast once.

mod attention;
mod ffn;
mod gemm;
mod layernorm;
mod lm_head;
mod matmul;

use std::path::Path;

use serde_json::Value;

use crate::check::CheckError;
use crate::plan::{Buffer, Ctx, Plan};
use crate::{Family, KernelSpec, Op, SpecError};

/// The template context a family adds: `f` (its own keys) and `gemm` (the shared keys of the
/// matmul-like designs; null for the others).
pub(crate) struct Context {
    pub f: Value,
    pub gemm: Value,
}

/// Everything kernel-spec knows about one family. The `op` handed to a method is always of the
/// implementing family (`def` dispatches on `Op::family`).
pub(crate) trait FamilyDef {
    /// The entries of one `kernel-specs/<family>.toml` text.
    fn parse(&self, file: &Path, text: &str) -> Result<Vec<KernelSpec>, SpecError>;

    /// Multiply-accumulates of one call (for the roofline estimate).
    fn macs(&self, op: &Op) -> f64;

    /// The row dimension before padding (m / q_len / rows; `pad_m_to` pads it).
    fn rows(&self, op: &Op) -> usize;

    /// Whether the weights travel as two bf16 planes (`split_weights`).
    fn split_weights(&self, _op: &Op) -> bool {
        false
    }

    /// Whether the entry's kernels evaluate exp (GELU, softmax).
    fn needs_exp(&self, op: &Op) -> bool;

    /// The family's shape checks and its mapping onto the array.
    fn plan(&self, cx: &Ctx<'_>) -> Result<Plan, CheckError>;

    /// Element size (bytes) of the runtime-sequence argument `arg`.
    fn arg_bytes(&self, spec: &KernelSpec, _plan: &Plan, _arg: &str) -> usize {
        spec.dtype.bytes()
    }

    /// The fix named when the core's buffers overflow its data memory.
    fn core_memory_fix(&self) -> &'static str {
        "lower tile_k"
    }

    /// The family's part of the template context (derived numbers computed here, not in Jinja).
    fn context(&self, spec: &KernelSpec, plan: &Plan) -> Context;
}

/// The implementation of `family`.
pub(crate) fn def(family: Family) -> &'static dyn FamilyDef {
    match family {
        Family::Matmul => &matmul::Matmul,
        Family::Attention => &attention::Attention,
        Family::Ffn => &ffn::Ffn,
        Family::LayerNorm => &layernorm::LayerNorm,
        Family::LmHead => &lm_head::LmHead,
    }
}

/// A family method was handed another family's op; `def` never does that.
fn wrong_op(family: &str, op: &Op) -> ! {
    unreachable!("the {family} definition was handed a {} op", op.family())
}

/// aie2 has no exp instruction: mlir-aie's lut_based_ops.cpp is compiled into the kernel, and
/// its tables (4 x 1 KiB exp, 128 B inverse, 2 x 512 B tanh) live in core data memory.
fn lut_buffer() -> Buffer {
    Buffer {
        what: "exp lookup tables",
        bytes: 4 * 1024 + 128 + 2 * 512,
        count: 1,
    }
}
