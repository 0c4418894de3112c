//! A functional emulator of the MLIR-AIE designs this project renders.
//!
//! API (stable; the implementation lands in this crate's modules):
//! - [`Emulator::load`] reads a rendered `design.mlir` and the core-function models of its
//!   spec entry, and checks the design against the device (memories, FIFO depths, DMA limits).
//! - [`Emulator::host_args`] lists the runtime-sequence arguments (name, element type, count).
//! - [`Emulator::run`] executes one kernel invocation on host buffers given in argument order
//!   (bytes, little-endian elements); outputs are written into them. Errors name the design
//!   file, the op's line and what went wrong (deadlock, overrun, contract violation).

mod exec;
mod mlir;
mod model;
mod pattern;
mod program;
mod rules;

use std::path::{Path, PathBuf};

pub use aie_kernels::{Elem, MemType};
use kernel_spec::KernelSpec;

/// Bumped by hand whenever the emulator's checks, core-function models or timing model change
/// what it accepts or reports: kernel-build hashes it into every artifact, so a changed emulator
/// re-emulates every design instead of trusting a record it did not write.
pub const REVISION: u32 = 1;

/// One runtime-sequence argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostArg {
    pub name: String,
    pub elem: Elem,
    /// Elements of the 1-D host buffer.
    pub len: usize,
}

impl HostArg {
    pub fn bytes(&self) -> usize {
        self.len * self.elem.bytes()
    }
}

/// What one run measured.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunReport {
    /// Estimated NPU time of the invocation in microseconds (an event-level model: core
    /// functions at their cycle counts, DMAs at channel bandwidth, overlap as the FIFOs allow).
    pub estimate_us: f64,
    /// Core-function calls executed.
    pub calls: u64,
    /// Bytes moved between host and array.
    pub host_bytes: u64,
    /// Most transfers outstanding on one shim channel at once (the device's queue holds
    /// `Limits::shim_task_queue`; more is an error).
    pub max_queued_tasks: usize,
}

/// An error, always naming the design file; `line` is the op's line where one is to blame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{}: {message}", file.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct EmuError {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub message: String,
}

/// A parsed and checked design, ready to run any number of times (`&self`, thread-safe).
pub struct Emulator {
    file: PathBuf,
    model: model::Model,
    lib: aie_kernels::CoreLibrary,
}

impl Emulator {
    /// Reads `design` (a rendered `design.mlir`) for the entry `spec`.
    pub fn load(spec: &KernelSpec, design: &Path) -> Result<Emulator, EmuError> {
        let text = std::fs::read_to_string(design).map_err(|e| EmuError {
            file: design.to_path_buf(),
            line: None,
            message: format!("cannot read the design: {e}"),
        })?;
        Emulator::from_text(spec, design, &text)
    }

    /// As [`Emulator::load`], from the design's text (`file` names it in messages).
    pub fn from_text(spec: &KernelSpec, file: &Path, text: &str) -> Result<Emulator, EmuError> {
        let err = |line: Option<usize>, message: String| EmuError {
            file: file.to_path_buf(),
            line,
            message,
        };
        let lib = aie_kernels::library_for(spec).map_err(|e| {
            err(
                None,
                format!("core-function models of {}: {e}", spec.origin()),
            )
        })?;
        let ast = mlir::parse::parse(text).map_err(|(l, m)| err(Some(l), m))?;
        let model = model::build(&ast, spec.device.limits(), &lib).map_err(|(l, m)| err(l, m))?;
        Ok(Emulator {
            file: file.to_path_buf(),
            model,
            lib,
        })
    }

    pub fn host_args(&self) -> &[HostArg] {
        &self.model.args
    }

    /// Runs one invocation; `host[i]` is the buffer of `host_args()[i]` (exactly its bytes).
    /// Outputs are written into the buffers the runtime sequence drains into.
    pub fn run(&self, host: &mut [&mut [u8]]) -> Result<RunReport, EmuError> {
        let err = |line: Option<usize>, message: String| EmuError {
            file: self.file.clone(),
            line,
            message,
        };
        if host.len() != self.model.args.len() {
            return Err(err(
                Some(self.model.seq_line),
                format!(
                    "{} host buffers given, the runtime sequence takes {}",
                    host.len(),
                    self.model.args.len()
                ),
            ));
        }
        for (h, a) in host.iter().zip(&self.model.args) {
            if h.len() != a.bytes() {
                return Err(err(
                    Some(self.model.seq_line),
                    format!(
                        "host buffer %{} has {} bytes, the design expects {} ({} x {})",
                        a.name,
                        h.len(),
                        a.bytes(),
                        a.len,
                        a.elem.mlir()
                    ),
                ));
            }
        }
        exec::Run::new(&self.model, &self.lib, host)
            .execute()
            .map_err(|(l, m)| err(l, m))
    }
}
