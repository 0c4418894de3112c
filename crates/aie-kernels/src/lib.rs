//! Rust models of the functions the AIE cores of a rendered design call (`func.call @f`).
//!
//! Each model follows the contract of the kernel C++ that `templates/<family>/*.cc.jinja`
//! renders for the same spec entry: the same buffer layouts (aie::mmul blocks, split-weight
//! planes, parameter tiles) and the same roundings (bf16 where the C++ rounds). The dataflow
//! emulator (`aie-emu`) calls them with the buffers the design hands the core.
//! `library_for` builds the models of one entry: `gemm` (matmul, ffn, lm_head), `attention`,
//! `layernorm`; the shared numerics are in [`numerics`].
//!
//! What the models cannot know is the exact order in which the hardware's `aie::mmul` adds
//! the products of one block and the AIE's own exp/inverse approximations: products of bf16
//! values are exact in f32, sums run in the reduction's natural order, exp2 is rounded to bf16
//! (its documented accuracy), and the divisions and 1/sqrt are exact f32 operations (see
//! [`numerics`] for each difference from the hardware).

use std::collections::BTreeMap;
use std::fmt;

use kernel_spec::{Family, KernelSpec};

mod attention;
mod cost;
mod gemm;
mod layernorm;
mod mmul;
pub mod numerics;
mod view;

/// Element type of a memref.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Elem {
    Bf16,
    F32,
    I8,
    I32,
}

impl Elem {
    pub fn bytes(self) -> usize {
        match self {
            Elem::Bf16 => 2,
            Elem::F32 | Elem::I32 => 4,
            Elem::I8 => 1,
        }
    }

    /// The MLIR spelling (`bf16`, `f32`, `i8`, `i32`).
    pub fn mlir(self) -> &'static str {
        match self {
            Elem::Bf16 => "bf16",
            Elem::F32 => "f32",
            Elem::I8 => "i8",
            Elem::I32 => "i32",
        }
    }

    pub fn from_mlir(s: &str) -> Option<Elem> {
        Some(match s {
            "bf16" => Elem::Bf16,
            "f32" => Elem::F32,
            "i8" => Elem::I8,
            "i32" => Elem::I32,
            _ => return None,
        })
    }
}

/// A `memref<d0 x d1 x ... x elem>` type.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MemType {
    pub shape: Vec<usize>,
    pub elem: Elem,
}

impl MemType {
    pub fn new(shape: &[usize], elem: Elem) -> MemType {
        MemType {
            shape: shape.to_vec(),
            elem,
        }
    }

    pub fn elems(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn bytes(&self) -> usize {
        self.elems() * self.elem.bytes()
    }
}

impl fmt::Display for MemType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "memref<")?;
        for d in &self.shape {
            write!(f, "{d}x")?;
        }
        write!(f, "{}>", self.elem.mlir())
    }
}

/// The type of one argument of a core function.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ArgType {
    Mem(MemType),
    I32,
}

impl fmt::Display for ArgType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArgType::Mem(m) => m.fmt(f),
            ArgType::I32 => write!(f, "i32"),
        }
    }
}

/// One argument of a call. Memory arguments are the bytes of the buffer (little-endian
/// elements), always 4-byte aligned, so `bytemuck::cast_slice(_mut)` views them as `u16` (bf16
/// bits), `f32`, `i32` or `i8`.
pub enum Arg<'a> {
    Mem(&'a mut [u8]),
    I32(i32),
}

/// A call that breaks the function's contract (a value out of range, a buffer of the wrong
/// size). The emulator adds the design file and the op's line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CallError(pub String);

/// The model of one core function.
pub trait CoreFunction: Send + Sync {
    /// The argument types the kernel C++ declares, in order. The emulator checks every
    /// `func.func private` declaration of the design against it.
    fn signature(&self) -> &[ArgType];

    /// Runs the function on the buffers the core passes (`args` matches `signature`).
    fn call(&self, args: &mut [Arg<'_>]) -> Result<(), CallError>;

    /// Estimated core cycles of one call (vector MACs at the device's MACs/cycle, plus the
    /// element-wise work at the vector width), for the emulator's timing estimate.
    fn cycles(&self) -> u64;
}

/// The core functions of one spec entry, by the symbol the design calls.
#[derive(Default)]
pub struct CoreLibrary {
    funcs: BTreeMap<String, Box<dyn CoreFunction>>,
}

impl CoreLibrary {
    pub fn insert(&mut self, name: impl Into<String>, f: Box<dyn CoreFunction>) {
        self.funcs.insert(name.into(), f);
    }

    pub fn get(&self, name: &str) -> Option<&dyn CoreFunction> {
        self.funcs.get(name).map(|b| b.as_ref())
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.funcs.keys().map(String::as_str)
    }
}

/// The core functions the kernel C++ of `spec` defines (one module per family builds them).
pub fn library_for(spec: &KernelSpec) -> Result<CoreLibrary, CallError> {
    let plan =
        kernel_spec::plan(spec).map_err(|e| CallError(format!("no core-function models: {e}")))?;
    match spec.family {
        Family::Matmul | Family::Ffn | Family::LmHead => gemm::library(spec, &plan),
        Family::Attention => attention::library(spec, &plan),
        Family::LayerNorm => layernorm::library(spec, &plan),
    }
}
