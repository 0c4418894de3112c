//! MLIR (melior) reference of every kernel spec entry, JIT-run and compared with the CPU backend.
//!
//! For each entry: [`reference::render`] writes an upstream-dialect module (linalg/arith/math
//! on memrefs, the entry's exact shapes and roundings), [`jit::Jit`] parses, verifies, lowers
//! and JIT-compiles it at O3, it runs on seeded random inputs ([`inputs::make_case`]), and the
//! result is compared ([`compare::compare`]) with the runtime's CPU backend in `Numerics::Npu`
//! ([`cpu::run`]). Nothing here is specific to one entry: a new TOML entry is verified as is.

pub mod aie;
pub mod compare;
pub mod cpu;
mod family;
pub mod inputs;
pub mod jit;
mod mlir;
pub mod reference;

use std::collections::HashMap;
use std::ffi::c_void;
use std::path::Path;
use std::time::{Duration, Instant};

use kernel_spec::KernelSpec;

pub use compare::{Comparison, Tolerance};
pub use inputs::{Case, Data, Tensor};
pub use jit::{Jit, JitError, JitTimes};

/// Default seed of the random inputs (`--seed` overrides it).
pub const DEFAULT_SEED: u64 = 0x5eed_2026;

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("{origin}: cannot build inputs: {msg}")]
    Inputs { origin: String, msg: String },
    #[error("{origin}: cannot render the MLIR reference: {msg}")]
    Render { origin: String, msg: String },
    #[error("{origin}: MLIR reference: {source}")]
    Jit {
        origin: String,
        #[source]
        source: JitError,
    },
    #[error("{origin}: {msg}")]
    Cpu { origin: String, msg: String },
}

/// The result of verifying one entry.
#[derive(Debug, Clone)]
pub struct EntryReport {
    pub name: String,
    pub comparison: Comparison,
    pub tolerance: Tolerance,
    pub jit: JitTimes,
    /// The reference output came from an earlier entry with the same computation.
    pub reference_cached: bool,
    pub cpu_time: Duration,
    pub total: Duration,
    /// CPU output values that were not yet rounded the way the kernel stores its output
    /// (bf16 / requantised int8) and were rounded before the comparison.
    pub cpu_unstored: usize,
}

impl EntryReport {
    pub fn passed(&self) -> bool {
        self.comparison.passed
    }
}

/// Runs the MLIR reference of `spec` on `case` and returns its output.
pub fn run_reference(
    jit: &Jit,
    spec: &KernelSpec,
    case: &Case,
    times: &mut JitTimes,
) -> Result<Vec<f32>, VerifyError> {
    let text = reference::render(spec, case).map_err(|msg| VerifyError::Render {
        origin: spec.origin(),
        msg,
    })?;
    let compiled = jit
        .compile(&text, times)
        .map_err(|source| VerifyError::Jit {
            origin: spec.origin(),
            source,
        })?;
    // The kernel writes only the output; the inputs are copied so the case stays untouched.
    let mut inputs: Vec<Data> = case.inputs.iter().map(|t| t.data.clone()).collect();
    let mut out = vec![0.0f32; case.output_len()];
    let mut ptrs: Vec<*mut c_void> = inputs
        .iter_mut()
        .map(|d| match d {
            Data::F32(v) => v.as_mut_ptr() as *mut c_void,
            Data::I32(v) => v.as_mut_ptr() as *mut c_void,
        })
        .collect();
    ptrs.push(out.as_mut_ptr() as *mut c_void);
    let t = Instant::now();
    // SAFETY: `render` declares one memref argument per input, with the tensor's exact shape
    // and element type, then the output; the buffers are live and distinct.
    unsafe { compiled.invoke(reference::FUNC, &ptrs) }.map_err(|source| VerifyError::Jit {
        origin: spec.origin(),
        source,
    })?;
    times.run = t.elapsed();
    Ok(out)
}

/// Verifies entries one after another, sharing one MLIR context and the reference results of
/// identical computations (the same operation and dtype on npu1 and npu2 run the reference once).
pub struct Verifier {
    jit: Jit,
    seed: u64,
    /// computation key -> reference output.
    cache: HashMap<String, Vec<f32>>,
}

impl Verifier {
    pub fn new(seed: u64) -> Self {
        Verifier {
            jit: Jit::new(),
            seed,
            cache: HashMap::new(),
        }
    }

    /// Verifies `spec` against the runtime's CPU backend.
    pub fn verify(&mut self, spec: &KernelSpec) -> Result<EntryReport, VerifyError> {
        self.verify_with(spec, |case| cpu::run(spec, case))
    }

    /// Verifies the entry's rendered design (from `templates`) run in the dataflow emulator,
    /// its inputs packed and its output unpacked by the runtime's host packing.
    pub fn verify_emulated(
        &mut self,
        spec: &KernelSpec,
        templates: &Path,
    ) -> Result<EntryReport, VerifyError> {
        let backend = cpu::Backend::Emu {
            templates: templates.to_path_buf(),
        };
        self.verify_against(spec, Tolerance::for_emulated, |case| {
            cpu::run_on(spec, case, &backend)
        })
    }

    /// Verifies `spec` against the result of `kernel` (the CPU backend in [`Verifier::verify`];
    /// tests substitute a wrong one to show that verification catches it).
    pub fn verify_with(
        &mut self,
        spec: &KernelSpec,
        kernel: impl FnOnce(&Case) -> Result<Vec<f32>, String>,
    ) -> Result<EntryReport, VerifyError> {
        self.verify_against(spec, Tolerance::for_case, kernel)
    }

    fn verify_against(
        &mut self,
        spec: &KernelSpec,
        tolerance: impl FnOnce(&KernelSpec, &Case) -> Tolerance,
        kernel: impl FnOnce(&Case) -> Result<Vec<f32>, String>,
    ) -> Result<EntryReport, VerifyError> {
        let start = Instant::now();
        let case = inputs::make_case(spec, self.seed).map_err(|msg| VerifyError::Inputs {
            origin: spec.origin(),
            msg,
        })?;
        let key = inputs::computation_key(spec);
        let mut times = JitTimes::default();
        let cached = self.cache.contains_key(&key);
        if !cached {
            let out = run_reference(&self.jit, spec, &case, &mut times)?;
            self.cache.insert(key.clone(), out);
        }
        let reference = &self.cache[&key];
        let t = Instant::now();
        let mut cpu = kernel(&case).map_err(|msg| VerifyError::Cpu {
            origin: spec.origin(),
            msg,
        })?;
        let cpu_time = t.elapsed();
        let tolerance = tolerance(spec, &case);
        let cpu_unstored = compare::store_as_kernel(tolerance.quantum, &mut cpu);
        let comparison = compare::compare(&cpu, reference, tolerance);
        Ok(EntryReport {
            name: spec.name.clone(),
            comparison,
            tolerance,
            jit: times,
            reference_cached: cached,
            cpu_time,
            total: start.elapsed(),
            cpu_unstored,
        })
    }
}
