//! melior: parse, verify, lower and JIT-run an upstream-dialect MLIR module.
//!
//! The reference modules work on memrefs from the start (no bufferization needed) and are lowered
//! with the bare-pointer calling convention, so a kernel `@kernel(%a: memref<..>, ...)` becomes
//! `void kernel(void *a, ...)` and is called through the engine's packed wrapper.

use std::cell::RefCell;
use std::ffi::c_void;
use std::rc::Rc;
use std::time::{Duration, Instant};

use melior::dialect::DialectRegistry;
use melior::ir::operation::OperationLike;
use melior::ir::Module;
use melior::pass::PassManager;
use melior::utility::{
    parse_pass_pipeline, register_all_dialects, register_all_llvm_translations, register_all_passes,
};
use melior::Context;
use mlir_sys::{
    mlirExecutionEngineCreate, mlirExecutionEngineDestroy, mlirExecutionEngineInitialize,
    mlirExecutionEngineLookupPacked, MlirExecutionEngine, MlirStringRef,
};

/// Lowering from linalg/arith/math on memrefs down to the LLVM dialect.
///
/// - `arith-expand{include-bf16}` turns `arith.truncf f32->bf16` / `extf` into integer bit
///   operations (round to nearest even, as the NPU's conversion does), so the JIT needs no
///   bf16 runtime helpers from libgcc.
/// - `convert-math-to-llvm` handles exp/rsqrt/sqrt/absf; what it leaves (erf) goes to libm via
///   `convert-math-to-libm`, resolved by the JIT from the current process.
/// - `use-bare-ptr-memref-call-conv`: every argument has a static shape, so plain pointers suffice.
pub const PIPELINE: &str = "builtin.module(\
    convert-linalg-to-loops,\
    lower-affine,\
    convert-scf-to-cf,\
    func.func(arith-expand{include-bf16=true}),\
    convert-math-to-llvm,\
    convert-math-to-libm,\
    expand-strided-metadata,\
    lower-affine,\
    finalize-memref-to-llvm,\
    convert-arith-to-llvm,\
    convert-cf-to-llvm,\
    convert-func-to-llvm{use-bare-ptr-memref-call-conv=true},\
    convert-index-to-llvm,\
    reconcile-unrealized-casts)";

/// LLVM optimisation level of the JIT: the reference loops are naive, O3 makes the large shapes
/// (e.g. a 1500x512x2048 matmul) take seconds instead of minutes.
pub const OPT_LEVEL: i32 = 3;

#[derive(Debug, thiserror::Error)]
pub enum JitError {
    #[error(
        "MLIR parse error in the reference module:\n{diagnostics}\n--- module ---\n{source_text}"
    )]
    Parse {
        diagnostics: String,
        source_text: String,
    },
    #[error("MLIR verifier rejected the reference module:\n{diagnostics}\n--- module ---\n{source_text}")]
    Verify {
        diagnostics: String,
        source_text: String,
    },
    #[error("bad pass pipeline: {0}")]
    Pipeline(String),
    #[error("lowering to the LLVM dialect failed:\n{0}")]
    Lower(String),
    #[error("operation `{0}` is left after lowering: the pipeline misses a conversion for it")]
    NotLowered(String),
    #[error("the execution engine could not translate or compile the module:\n{0}")]
    Engine(String),
    #[error("function `{0}` not found in the JIT-compiled module")]
    NoFunction(String),
}

/// Times of the phases of one reference run.
#[derive(Debug, Clone, Copy, Default)]
pub struct JitTimes {
    pub parse_verify: Duration,
    pub lower: Duration,
    pub compile: Duration,
    pub run: Duration,
}

/// An MLIR context with every upstream dialect, pass and LLVM translation registered.
pub struct Jit {
    context: Context,
    diagnostics: Rc<RefCell<Vec<String>>>,
}

impl Default for Jit {
    fn default() -> Self {
        Self::new()
    }
}

impl Jit {
    pub fn new() -> Self {
        let registry = DialectRegistry::new();
        register_all_dialects(&registry);
        // Single-threaded: the machine's cores are better spent on the JIT-compiled kernels.
        let context = Context::new_with_registry(&registry, false);
        context.load_all_available_dialects();
        register_all_llvm_translations(&context);
        register_all_passes();
        let diagnostics = Rc::new(RefCell::new(Vec::new()));
        let sink = diagnostics.clone();
        context.attach_diagnostic_handler(move |d| {
            sink.borrow_mut().push(format!("{}: {}", d.location(), d));
            true
        });
        Self {
            context,
            diagnostics,
        }
    }

    fn take_diagnostics(&self) -> String {
        std::mem::take(&mut *self.diagnostics.borrow_mut()).join("\n")
    }

    /// Parses and verifies `source`, lowers it to the LLVM dialect and JIT-compiles it.
    pub fn compile(&self, source: &str, times: &mut JitTimes) -> Result<Compiled, JitError> {
        self.take_diagnostics();
        let t = Instant::now();
        let mut module = Module::parse(&self.context, source).ok_or_else(|| JitError::Parse {
            diagnostics: self.take_diagnostics(),
            source_text: source.to_string(),
        })?;
        if !module.as_operation().verify() {
            return Err(JitError::Verify {
                diagnostics: self.take_diagnostics(),
                source_text: source.to_string(),
            });
        }
        times.parse_verify = t.elapsed();

        let t = Instant::now();
        let pm = PassManager::new(&self.context);
        parse_pass_pipeline(pm.as_operation_pass_manager(), PIPELINE)
            .map_err(|e| JitError::Pipeline(e.to_string()))?;
        pm.run(&mut module)
            .map_err(|e| JitError::Lower(format!("{e}: {}", self.take_diagnostics())))?;
        // Anything not in the LLVM dialect would make the engine fail with a less clear message.
        let mut left = None;
        module
            .as_operation()
            .walk(melior::ir::operation::WalkOrder::PreOrder, |op| {
                let name = op
                    .name()
                    .as_string_ref()
                    .as_str()
                    .unwrap_or("?")
                    .to_string();
                if !(name.starts_with("llvm.") || name == "builtin.module") && left.is_none() {
                    left = Some(name);
                }
                melior::ir::operation::WalkResult::Advance
            });
        if let Some(name) = left {
            return Err(JitError::NotLowered(name));
        }
        times.lower = t.elapsed();

        let t = Instant::now();
        // SAFETY: the module is valid and fully in the LLVM dialect; the engine keeps its own copy.
        let raw = unsafe {
            mlirExecutionEngineCreate(
                module.to_raw(),
                OPT_LEVEL,
                0,
                std::ptr::null(),
                false,
                false,
            )
        };
        if raw.ptr.is_null() {
            return Err(JitError::Engine(self.take_diagnostics()));
        }
        // SAFETY: the engine is live; runs global constructors (none in the reference modules).
        unsafe { mlirExecutionEngineInitialize(raw) };
        times.compile = t.elapsed();
        Ok(Compiled { raw })
    }
}

/// A JIT-compiled module.
pub struct Compiled {
    raw: MlirExecutionEngine,
}

impl Compiled {
    /// Calls `name(buffers...)` (bare-pointer convention: one pointer per memref argument).
    ///
    /// # Safety
    /// Each pointer must point to a live buffer at least as large as the memref type of the
    /// matching argument of `name`, and the buffers the function writes must not overlap.
    pub unsafe fn invoke(&self, name: &str, buffers: &[*mut c_void]) -> Result<(), JitError> {
        let name_ref = MlirStringRef {
            data: name.as_ptr() as *const _,
            length: name.len(),
        };
        // SAFETY: the engine is live; the name is a valid string reference.
        let f = unsafe { mlirExecutionEngineLookupPacked(self.raw, name_ref) };
        if f.is_null() {
            return Err(JitError::NoFunction(name.to_string()));
        }
        // The packed wrapper takes an array of pointers to the argument values.
        let mut values: Vec<*mut c_void> = buffers.to_vec();
        let mut args: Vec<*mut c_void> = values
            .iter_mut()
            .map(|v| v as *mut *mut c_void as *mut c_void)
            .collect();
        // SAFETY: `f` is the engine's packed wrapper `void _mlir_<name>(void **)`, and the caller
        // guarantees the buffers match the function's signature. (The C API's InvokePacked would
        // look for the `_mlir_ciface_` interface, which the bare-pointer convention does not need.)
        unsafe {
            let f: unsafe extern "C" fn(*mut *mut c_void) = std::mem::transmute(f);
            f(args.as_mut_ptr());
        }
        Ok(())
    }
}

impl Drop for Compiled {
    fn drop(&mut self) {
        // SAFETY: created by mlirExecutionEngineCreate, destroyed once.
        unsafe { mlirExecutionEngineDestroy(self.raw) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip_module(n: usize) -> String {
        format!(
            "module {{
  func.func @kernel(%x: memref<{n}xf32>, %y: memref<{n}xf32>) {{
    linalg.generic {{indexing_maps = [affine_map<(d0) -> (d0)>, affine_map<(d0) -> (d0)>], iterator_types = [\"parallel\"]}} ins(%x : memref<{n}xf32>) outs(%y : memref<{n}xf32>) {{
    ^bb0(%a: f32, %o: f32):
      %h = arith.truncf %a : f32 to bf16
      %e = arith.extf %h : bf16 to f32
      linalg.yield %e : f32
    }}
    return
  }}
}}"
        )
    }

    /// The lowered `arith.truncf` to bf16 rounds exactly like the runtime (nearest, ties to even),
    /// including ties, the largest finite values and infinities.
    #[test]
    fn bf16_rounding_matches_runtime() {
        let mut x: Vec<f32> = vec![
            1.0,
            f32::from_bits(0x3f80_8000), // tie, rounds down to even
            f32::from_bits(0x3f81_8000), // tie, rounds up to even
            f32::from_bits(0x3f80_8001),
            -f32::from_bits(0x3f80_7fff),
            f32::MAX,
            f32::INFINITY,
            f32::NEG_INFINITY,
            0.0,
            -0.0,
            1e-40, // subnormal
        ];
        let mut s: u32 = 12345;
        for _ in 0..4096 {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let v = f32::from_bits(s);
            if v.is_finite() {
                x.push(v);
            }
        }
        let jit = Jit::new();
        let mut t = JitTimes::default();
        let c = jit.compile(&round_trip_module(x.len()), &mut t).unwrap();
        let mut y = vec![0.0f32; x.len()];
        unsafe {
            c.invoke("kernel", &[x.as_mut_ptr() as _, y.as_mut_ptr() as _])
                .unwrap()
        };
        for (a, b) in x.iter().zip(&y) {
            let want = npu_runtime::numerics::round_bf16(*a);
            assert_eq!(
                b.to_bits(),
                want.to_bits(),
                "{a:e}: got {b:e}, want {want:e}"
            );
        }
    }

    #[test]
    fn parse_and_verify_errors_carry_diagnostics() {
        let jit = Jit::new();
        let mut t = JitTimes::default();
        match jit.compile("module { func.func @f( }", &mut t) {
            Err(JitError::Parse { diagnostics, .. }) => assert!(!diagnostics.is_empty()),
            Err(e) => panic!("wrong error {e}"),
            Ok(_) => panic!("bad syntax parsed"),
        }
        // Well-formed syntax, but the types of arith.addf do not match.
        let bad = "module { func.func @f(%a: f32, %b: f64) -> f32 { %c = \"arith.addf\"(%a, %b) : (f32, f64) -> f32 return %c : f32 } }";
        match jit.compile(bad, &mut t) {
            Err(JitError::Parse { diagnostics, .. } | JitError::Verify { diagnostics, .. }) => {
                assert!(
                    diagnostics.contains("error") || !diagnostics.is_empty(),
                    "{diagnostics}"
                )
            }
            Err(e) => panic!("wrong error {e}"),
            Ok(_) => panic!("invalid module accepted"),
        }
    }
}
