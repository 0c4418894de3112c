//! One host-side packing for every target that runs a rendered design: the functions that lay
//! the runtime's tensors into the design's host buffers (runtime-sequence arguments, as bytes:
//! padding, transposes, split-weight planes, parameter tiles, K/V blocks) and read the results
//! back. The XRT backend and the emulator backend both call the same drivers, so a layout bug
//! shows up in the emulator before it reaches the device.
//!
//! Per family: a layout computed once from the entry's spec and `kernel_spec::plan` (argument
//! list, padded sizes), pure pack/unpack functions on bytes, and a `run` driver that packs,
//! runs an [`Invocation`] and unpacks. The layouts follow "What the NPU designs expect from the
//! host" in docs/architecture.md and the header comment of each rendered design.

pub mod attention;
mod bytes;
pub mod ffn;
mod gemm;
mod invocation;
pub mod layernorm;
pub mod lm_head;
pub mod matmul;
mod requant;

use kernel_spec::{KernelSpec, Op};

pub use aie_emu::{Elem, HostArg};
pub use attention::AttentionLayout;
pub use ffn::FfnLayout;
pub use invocation::{BufferSet, Invocation, RunStats, SlotState, VecInvocation};
pub use layernorm::LayerNormLayout;
pub use lm_head::LmHeadLayout;
pub use matmul::MatmulLayout;

use crate::RuntimeError;

/// The contents of one host buffer that depend on a layer only (weights, constant parameter
/// tiles), packed once and cached in the layer (see `Linear::image`).
#[derive(Debug, Clone, PartialEq)]
pub struct Image {
    /// The first `bytes.len()` bytes of the argument's buffer.
    pub bytes: Vec<u8>,
    /// int8 weight scales (one, or one per output channel); empty for bf16.
    pub scales: Vec<f32>,
}

/// The host layout of one entry, by family.
#[derive(Debug, Clone, PartialEq)]
pub enum Layout {
    Matmul(MatmulLayout),
    Ffn(FfnLayout),
    LmHead(LmHeadLayout),
    LayerNorm(LayerNormLayout),
    Attention(AttentionLayout),
}

impl Layout {
    pub fn of(spec: &KernelSpec) -> Result<Layout, RuntimeError> {
        Ok(match spec.op {
            Op::Matmul { .. } => Layout::Matmul(MatmulLayout::of(spec)?),
            Op::Ffn { .. } => Layout::Ffn(FfnLayout::of(spec)?),
            Op::LmHead { .. } => Layout::LmHead(LmHeadLayout::of(spec)?),
            Op::LayerNorm { .. } => Layout::LayerNorm(LayerNormLayout::of(spec)?),
            Op::Attention { .. } => Layout::Attention(AttentionLayout::of(spec)?),
        })
    }

    /// The runtime-sequence arguments, in order.
    pub fn args(&self) -> &[HostArg] {
        match self {
            Layout::Matmul(l) => l.args(),
            Layout::Ffn(l) => l.args(),
            Layout::LmHead(l) => l.args(),
            Layout::LayerNorm(l) => l.args(),
            Layout::Attention(l) => l.args(),
        }
    }

    /// Checks the layout against the arguments a design declares (the emulator reads them
    /// from the rendered `design.mlir`): a disagreement is a packing bug or a stale design.
    pub fn check_args(&self, design: &std::path::Path, declared: &[HostArg]) -> Result<(), String> {
        let show = |args: &[HostArg]| {
            args.iter()
                .map(|a| format!("%{}: {}x{}", a.name, a.len, a.elem.mlir()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        if self.args() != declared {
            return Err(format!(
                "{} declares the host buffers ({}) but the runtime packs ({}); re-render it with `cargo xtask build-kernels --emit-only`, or the packing in crates/runtime/src/host is out of date",
                design.display(),
                show(declared),
                show(self.args())
            ));
        }
        Ok(())
    }
}

/// The layout of `spec` cannot be derived (the entry does not plan).
pub(crate) fn layout_error(spec: &KernelSpec, msg: impl Into<String>) -> RuntimeError {
    RuntimeError::Layout {
        entry: spec.origin(),
        msg: msg.into(),
    }
}

/// The entry does not plan (its check error already names the entry).
pub(crate) fn plan_error(spec: &KernelSpec, e: kernel_spec::CheckError) -> RuntimeError {
    let text = e.to_string();
    let prefix = format!("{}: ", spec.origin());
    layout_error(spec, text.strip_prefix(&prefix).unwrap_or(&text))
}

/// A call does not fit the entry it was sent to.
pub(crate) fn call_error(origin: &str, msg: impl Into<String>) -> RuntimeError {
    RuntimeError::Layout {
        entry: origin.to_string(),
        msg: msg.into(),
    }
}
