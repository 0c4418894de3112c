//! One kernel API over the CPU backend and the XRT NPU backend.
//!
//! The model calls only this crate. All matrices are row-major `f32` slices; weights follow
//! PyTorch's `[out_features, in_features]` layout. See `docs/architecture.md` for the contract.

// Kernel entry points mirror the documented API, whose calls take up to 8 operands.
#![allow(clippy::too_many_arguments)]

mod cpu;
mod error;
mod kernels;
pub mod math;
#[cfg(feature = "npu")]
mod npu;
pub mod numerics;
mod profile;

use std::path::PathBuf;
use std::time::Instant;

pub use cpu::matmul::Linear;
pub use error::RuntimeError;
/// The spec types kernel entries are made of.
pub use kernel_spec;
pub use kernel_spec::{Device, Dtype};
pub use kernels::KernelEntry;
pub use profile::{ProfileEntry, ProfileReport};

use kernels::{Call, KernelTable};

/// Where results are rounded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Numerics {
    /// Plain f32 everywhere: the accuracy reference.
    F32,
    /// Round exactly where the NPU kernel rounds (bf16 inputs / f32 accumulation, or int8 with
    /// i32 accumulation), as the matching kernel spec says; see [`numerics`].
    Npu,
}

/// Which backend runs the kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BackendKind {
    /// NPU when the `npu` feature is compiled in, `/dev/accel/accel0` exists and compiled
    /// kernels are in the manifest; otherwise CPU.
    Auto,
    Cpu,
    Npu,
}

#[derive(Clone, Debug)]
pub struct RuntimeConfig {
    pub backend: BackendKind,
    pub numerics: Numerics,
    /// Worker threads of the runtime's own pool; 0 = one per core.
    pub threads: usize,
    /// `generated/manifest.json` of `cargo xtask build-kernels`; `None` = look in `generated/`.
    pub manifest: Option<PathBuf>,
    /// On the NPU backend, run shapes without a compiled kernel on the CPU (warning once).
    pub allow_cpu_fallback: bool,
    /// Time every call (see [`Runtime::profile_report`]).
    pub profile: bool,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            backend: BackendKind::Auto,
            numerics: Numerics::F32,
            threads: 0,
            manifest: None,
            allow_cpu_fallback: true,
            profile: false,
        }
    }
}

/// What happens after the matmul accumulation: GELU (exact erf form), then `+ residual`
/// (`[rows, out_features]`). The layer's bias is always added first.
#[derive(Clone, Copy, Debug, Default)]
pub struct Epilogue<'a> {
    pub gelu: bool,
    pub residual: Option<&'a [f32]>,
}

/// Shape of a multi-head attention call. Causal: query `i` sees keys `0..=causal_offset + i`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AttentionParams {
    pub heads: usize,
    pub head_dim: usize,
    pub q_len: usize,
    pub kv_len: usize,
    pub causal_offset: Option<usize>,
}

/// The precision a kernel call runs in (from the matching spec entry in `Numerics::Npu`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Prec {
    F32,
    Bf16,
    /// bf16 activations, weights as two bf16 planes (hi + lo: 16 significant bits, exactly a
    /// float16 checkpoint's values), f32 accumulation (`split_weights` in the spec).
    Bf16SplitWeights,
    Int8 {
        per_channel: bool,
        requantize: bool,
    },
}

impl Prec {
    /// Activations (and everything but the weights) are read as bf16.
    pub(crate) fn rounds_to_bf16(self) -> bool {
        matches!(self, Prec::Bf16 | Prec::Bf16SplitWeights)
    }
}

/// The kernel runtime. `Send + Sync`: one instance can serve several transcriptions at once.
pub struct Runtime {
    cfg: RuntimeConfig,
    pool: rayon::ThreadPool,
    profiler: profile::Profiler,
    kernels: KernelTable,
    #[cfg(feature = "npu")]
    npu: Option<npu::NpuBackend>,
}

/// How one call runs.
enum Exec<'a> {
    Cpu(Prec),
    #[cfg_attr(not(feature = "npu"), allow(dead_code))]
    Npu(&'a KernelEntry),
}

/// Environment overrides of the kernel selection (documented in `Runtime::new`).
const ENV_DEVICE: &str = "NPU_RUNTIME_DEVICE";
const ENV_DTYPE: &str = "NPU_RUNTIME_DTYPE";

fn check_len(op: &str, what: &str, got: usize, want: usize) -> Result<(), RuntimeError> {
    if got < want {
        return Err(RuntimeError::Shape {
            op: op.to_string(),
            msg: format!("{what} has {got} elements, needs at least {want}"),
        });
    }
    Ok(())
}

impl Runtime {
    /// Starts the runtime: its thread pool, the kernel table and (with `BackendKind::Npu`, or
    /// `Auto` where possible) the NPU.
    ///
    /// Kernels come from `cfg.manifest`, else from `generated/manifest.json` or, failing that,
    /// the `kernel-specs/` directory, found by walking up from the current directory. When
    /// several entries serve a call, the device named by `NPU_RUNTIME_DEVICE` (`npu1`/`npu2`;
    /// default: the detected NPU, else npu1) and the dtype named by `NPU_RUNTIME_DTYPE`
    /// (`bf16`/`int8`; default bf16) win, then the entry with the least row padding.
    pub fn new(cfg: RuntimeConfig) -> Result<Runtime, RuntimeError> {
        let (entries, source) = Self::discover_kernels(&cfg)?;
        Self::with_kernels_from(cfg, entries, source)
    }

    /// Like [`Runtime::new`] but with an explicit kernel table (tests, tools).
    pub fn with_kernels(
        cfg: RuntimeConfig,
        kernels: Vec<KernelEntry>,
    ) -> Result<Runtime, RuntimeError> {
        Self::with_kernels_from(cfg, kernels, None)
    }

    fn discover_kernels(
        cfg: &RuntimeConfig,
    ) -> Result<(Vec<KernelEntry>, Option<PathBuf>), RuntimeError> {
        if let Some(p) = &cfg.manifest {
            return Ok((kernels::load_manifest(p)?, Some(p.clone())));
        }
        // Plain f32 on the CPU needs no kernel table.
        let npu_possible = cfg!(feature = "npu") && cfg.backend != BackendKind::Cpu;
        if cfg.numerics == Numerics::F32 && !npu_possible {
            return Ok((Vec::new(), None));
        }
        if let Some(p) = kernels::find_upwards("generated/manifest.json") {
            match kernels::load_manifest(&p) {
                Ok(e) => return Ok((e, Some(p))),
                Err(e) => tracing::warn!("ignoring {e}"),
            }
        }
        if let Some(dir) = kernels::find_upwards("kernel-specs") {
            match kernel_spec::load_dir(&dir) {
                Ok(specs) => {
                    return Ok((
                        specs.iter().map(KernelEntry::from_spec).collect(),
                        Some(dir),
                    ))
                }
                Err(e) => tracing::warn!("ignoring the kernel specs: {e}"),
            }
        }
        Ok((Vec::new(), None))
    }

    fn with_kernels_from(
        cfg: RuntimeConfig,
        entries: Vec<KernelEntry>,
        source: Option<PathBuf>,
    ) -> Result<Runtime, RuntimeError> {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let device = match env(ENV_DEVICE) {
            Some(v) => Some(kernels::parse_device(&v).ok_or_else(|| {
                RuntimeError::Config(format!("{ENV_DEVICE}={v}: expected npu1 or npu2"))
            })?),
            None => None,
        };
        let prefer = match env(ENV_DTYPE) {
            Some(v) => kernels::parse_dtype(&v).ok_or_else(|| {
                RuntimeError::Config(format!("{ENV_DTYPE}={v}: expected bf16, int8 or f32"))
            })?,
            None => Dtype::Bf16,
        };
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(cfg.threads)
            .thread_name(|i| format!("npu-runtime-{i}"))
            .build()
            .map_err(|e| RuntimeError::ThreadPool(e.to_string()))?;
        #[cfg_attr(not(feature = "npu"), allow(unused_mut))]
        let mut table = KernelTable::new(entries, device, prefer, source);
        #[cfg(feature = "npu")]
        let npu = npu::NpuBackend::open_for(&cfg, &mut table)?;
        #[cfg(not(feature = "npu"))]
        if cfg.backend == BackendKind::Npu {
            return Err(RuntimeError::NpuUnavailable(
                "this build has no NPU backend: rebuild with `--features npu` (needs XRT >= 2.20 with the amdxdna driver)"
                    .to_string(),
            ));
        }
        Ok(Runtime {
            cfg,
            pool,
            profiler: profile::Profiler::default(),
            kernels: table,
            #[cfg(feature = "npu")]
            npu,
        })
    }

    /// The kernels this runtime selects from.
    pub fn kernels(&self) -> &[KernelEntry] {
        &self.kernels.entries
    }

    /// `"cpu"` or `"npu"`.
    pub fn backend_name(&self) -> &'static str {
        #[cfg(feature = "npu")]
        if self.npu.is_some() {
            return "npu";
        }
        "cpu"
    }

    pub fn numerics(&self) -> Numerics {
        self.cfg.numerics
    }

    pub fn config(&self) -> &RuntimeConfig {
        &self.cfg
    }

    /// Worker threads of the runtime's pool.
    pub fn threads(&self) -> usize {
        self.pool.current_num_threads()
    }

    /// Runs `f` on the runtime's pool, so that the caller's own parallel work (rayon iterators
    /// inside `f`) shares the kernels' threads instead of starting a second pool.
    pub fn install<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        self.pool.install(f)
    }

    /// Decides where and in which precision `call` runs.
    fn plan(&self, call: &Call) -> Result<Exec<'_>, RuntimeError> {
        #[cfg(feature = "npu")]
        if let Some(npu) = &self.npu {
            if let Some(e) = self.kernels.select(call, true).filter(|e| npu.supports(e)) {
                return Ok(Exec::Npu(e));
            }
            let family = call.family();
            if !self.cfg.allow_cpu_fallback {
                return Err(RuntimeError::NoKernel {
                    family: family.to_string(),
                    shape: call.shape(),
                    dtype: self.kernels.prefer.to_string(),
                    device: npu.device().to_string(),
                });
            }
            self.kernels.warn_once("fallback", call, || {
                let shape = call.shape();
                format!(
                    "no compiled {family} kernel for {shape} {} on {}: running it on the CPU (add an entry to kernel-specs/{family}.toml and run `cargo xtask build-kernels`)",
                    self.kernels.prefer,
                    npu.device()
                )
            });
        }
        Ok(Exec::Cpu(self.cpu_prec(call)))
    }

    /// The precision of `call` on the CPU: f32, or the matching kernel's dtype in NPU numerics.
    fn cpu_prec(&self, call: &Call) -> Prec {
        if self.cfg.numerics == Numerics::F32 {
            return Prec::F32;
        }
        match self.kernels.select(call, false) {
            Some(e) => e.prec(),
            None => {
                self.kernels.warn_once("nospec", call, || {
                    let (family, shape) = (call.family(), call.shape());
                    format!(
                        "no {family} kernel spec for {shape}{}: predicting it as bf16 (add an entry to kernel-specs/{family}.toml)",
                        self.kernels.source.as_ref().map(|p| format!(" in {}", p.display())).unwrap_or_default()
                    )
                });
                Prec::Bf16
            }
        }
    }

    fn timed<R>(
        &self,
        family: &'static str,
        op: &str,
        flops: f64,
        f: impl FnOnce() -> R + Send,
    ) -> R
    where
        R: Send,
    {
        if self.cfg.profile {
            let t = Instant::now();
            let r = self.pool.install(f);
            self.profiler.record(family, op, t, flops);
            r
        } else {
            self.pool.install(f)
        }
    }

    /// Packs a linear layer once (transpose/bf16/int8 as the backend wants).
    ///
    /// # Panics
    /// If `weight` is not `out_features × in_features` or `bias` not `out_features` long: that is
    /// a bug in the caller's weight loading, not a runtime condition.
    pub fn linear(
        &self,
        weight: Vec<f32>,
        bias: Option<Vec<f32>>,
        in_features: usize,
        out_features: usize,
    ) -> Linear {
        assert_eq!(
            weight.len(),
            in_features * out_features,
            "linear: weight must be out_features × in_features = {out_features} × {in_features}"
        );
        if let Some(b) = &bias {
            assert_eq!(
                b.len(),
                out_features,
                "linear: bias must have out_features = {out_features} elements"
            );
        }
        Linear::new(
            weight,
            bias,
            in_features,
            out_features,
            self.cfg.numerics == Numerics::Npu,
        )
    }

    /// out[rows, out_f] = x[rows, in_f] · Wᵀ + b, then GELU if asked, then + residual.
    pub fn matmul(
        &self,
        op: &str,
        x: &[f32],
        rows: usize,
        lin: &Linear,
        epi: Epilogue<'_>,
        out: &mut [f32],
    ) -> Result<(), RuntimeError> {
        let (k, n) = (lin.in_f, lin.out_f);
        check_len(op, "x", x.len(), rows * k)?;
        check_len(op, "out", out.len(), rows * n)?;
        if let Some(r) = epi.residual {
            check_len(op, "residual", r.len(), rows * n)?;
        }
        let call = Call::Matmul {
            rows,
            k,
            n,
            bias: lin.b.is_some(),
            gelu: epi.gelu,
            residual: epi.residual.is_some(),
        };
        let flops = 2.0 * (rows * k * n) as f64;
        match self.plan(&call)? {
            Exec::Cpu(prec) => {
                let round_out = prec != Prec::F32;
                self.timed("matmul", op, flops, || {
                    cpu::matmul::linear_forward(
                        x,
                        rows,
                        lin,
                        epi.gelu,
                        epi.residual,
                        prec,
                        round_out,
                        out,
                    )
                });
                Ok(())
            }
            Exec::Npu(entry) => self.npu_matmul(op, entry, x, rows, lin, epi, flops, out),
        }
    }

    #[cfg(feature = "npu")]
    #[allow(clippy::too_many_arguments)]
    fn npu_matmul(
        &self,
        op: &str,
        entry: &KernelEntry,
        x: &[f32],
        rows: usize,
        lin: &Linear,
        epi: Epilogue<'_>,
        flops: f64,
        out: &mut [f32],
    ) -> Result<(), RuntimeError> {
        let npu = self.npu.as_ref().expect("Exec::Npu only with an open NPU");
        let t = Instant::now();
        let r = npu.matmul(entry, x, rows, lin, epi, out);
        if self.cfg.profile {
            self.profiler.record("matmul", op, t, flops);
        }
        r
    }

    #[cfg(not(feature = "npu"))]
    #[allow(clippy::too_many_arguments)]
    fn npu_matmul(
        &self,
        _: &str,
        entry: &KernelEntry,
        _: &[f32],
        _: usize,
        _: &Linear,
        _: Epilogue<'_>,
        _: f64,
        _: &mut [f32],
    ) -> Result<(), RuntimeError> {
        Err(RuntimeError::NpuUnavailable(format!(
            "kernel {} needs the `npu` feature",
            entry.name
        )))
    }

    /// out = residual + fc2(GELU(fc1(x))) (LayerNorm is not fused).
    #[allow(clippy::too_many_arguments)]
    pub fn ffn(
        &self,
        op: &str,
        x: &[f32],
        rows: usize,
        fc1: &Linear,
        fc2: &Linear,
        residual: &[f32],
        out: &mut [f32],
    ) -> Result<(), RuntimeError> {
        let (d, dff) = (fc1.in_f, fc1.out_f);
        if fc2.in_f != dff || fc2.out_f != d {
            return Err(RuntimeError::Shape {
                op: op.to_string(),
                msg: format!(
                    "fc1 is {d}→{dff} but fc2 is {}→{} (expected {dff}→{d})",
                    fc2.in_f, fc2.out_f
                ),
            });
        }
        check_len(op, "x", x.len(), rows * d)?;
        check_len(op, "residual", residual.len(), rows * d)?;
        check_len(op, "out", out.len(), rows * d)?;
        let prec = self.cpu_only(&Call::Ffn { rows, d, dff })?;
        let flops = 4.0 * (rows * d * dff) as f64;
        let round_out = prec != Prec::F32;
        self.timed("ffn", op, flops, || {
            cpu::matmul::ffn_forward(x, rows, fc1, fc2, residual, prec, round_out, out)
        });
        Ok(())
    }

    /// Batched LayerNorm over rows × dim in one call.
    #[allow(clippy::too_many_arguments)]
    pub fn layernorm(
        &self,
        op: &str,
        x: &[f32],
        rows: usize,
        dim: usize,
        gamma: &[f32],
        beta: &[f32],
        eps: f32,
        out: &mut [f32],
    ) -> Result<(), RuntimeError> {
        check_len(op, "x", x.len(), rows * dim)?;
        check_len(op, "gamma", gamma.len(), dim)?;
        check_len(op, "beta", beta.len(), dim)?;
        check_len(op, "out", out.len(), rows * dim)?;
        // LayerNorm kernels read bf16 (int8 LayerNorm does not exist; treat it as bf16).
        let bf16 = self.cpu_only(&Call::LayerNorm { rows, dim })? != Prec::F32;
        let flops = 8.0 * (rows * dim) as f64;
        self.timed("layernorm", op, flops, || {
            cpu::norm::layernorm(x, rows, dim, gamma, beta, eps, bf16, out)
        });
        Ok(())
    }

    /// Multi-head scaled-dot-product attention. q: [q_len, heads·head_dim]; k, v:
    /// [kv_len, heads·head_dim] (only the first kv_len rows are read). Causal: query i sees keys
    /// 0..=causal_offset+i.
    pub fn attention(
        &self,
        op: &str,
        q: &[f32],
        k: &[f32],
        v: &[f32],
        p: AttentionParams,
        out: &mut [f32],
    ) -> Result<(), RuntimeError> {
        let hd = p.heads * p.head_dim;
        if p.kv_len == 0 || hd == 0 {
            return Err(RuntimeError::Shape {
                op: op.to_string(),
                msg: format!("attention needs kv_len ≥ 1 and heads·head_dim ≥ 1 (got {p:?})"),
            });
        }
        check_len(op, "q", q.len(), p.q_len * hd)?;
        check_len(op, "k", k.len(), p.kv_len * hd)?;
        check_len(op, "v", v.len(), p.kv_len * hd)?;
        check_len(op, "out", out.len(), p.q_len * hd)?;
        // Attention kernels are bf16 (an int8 entry is predicted as bf16 too: its softmax and
        // probabilities are not quantised by the templates).
        let bf16 = self.cpu_only(&Call::Attention(p))? != Prec::F32;
        let flops = 4.0 * (p.q_len * p.kv_len * hd) as f64;
        self.timed("attention", op, flops, || {
            cpu::attention::attention(q, k, v, &p, bf16, out)
        });
        Ok(())
    }

    /// logits[rows, V'] = x[rows, d] · Eᵀ over all rows of `emb` (V' = vocab) or only `subset`
    /// (V' = subset.len()). Logits are f32 in every numerics mode (the kernel accumulates them in
    /// its f32 output tile).
    pub fn lm_head(
        &self,
        op: &str,
        x: &[f32],
        rows: usize,
        emb: &Linear,
        subset: Option<&[u32]>,
        out: &mut [f32],
    ) -> Result<(), RuntimeError> {
        let (d, vocab) = (emb.in_f, emb.out_f);
        check_len(op, "x", x.len(), rows * d)?;
        let prec = self.cpu_only(&Call::LmHead {
            rows,
            d,
            vocab,
            subset: subset.map(<[u32]>::len),
        })?;
        match subset {
            None => {
                check_len(op, "out", out.len(), rows * vocab)?;
                let flops = 2.0 * (rows * d * vocab) as f64;
                self.timed("lm_head", op, flops, || {
                    cpu::matmul::linear_forward(x, rows, emb, false, None, prec, false, out)
                });
            }
            Some(ids) => {
                if let Some(bad) = ids.iter().find(|&&i| i as usize >= vocab) {
                    return Err(RuntimeError::Shape {
                        op: op.to_string(),
                        msg: format!("subset id {bad} is outside the vocabulary of {vocab}"),
                    });
                }
                check_len(op, "out", out.len(), rows * ids.len())?;
                let flops = 2.0 * (rows * d * ids.len()) as f64;
                self.timed("lm_head", op, flops, || {
                    cpu::matmul::lm_head_subset(x, rows, emb, ids, prec, out)
                });
            }
        }
        Ok(())
    }

    /// Families the NPU backend does not run yet go to the CPU (or fail without fallback).
    fn cpu_only(&self, call: &Call) -> Result<Prec, RuntimeError> {
        match self.plan(call)? {
            Exec::Cpu(p) => Ok(p),
            Exec::Npu(_) => unreachable!("the NPU backend only accepts matmul kernels"),
        }
    }

    /// Device time per NPU kernel: (kernel name, runs, total), measured around run + wait.
    #[cfg(feature = "npu")]
    pub fn npu_kernel_times(&self) -> Vec<(String, u64, std::time::Duration)> {
        self.npu
            .as_ref()
            .map(|n| n.kernel_times())
            .unwrap_or_default()
    }

    /// Timings per family and op label since the last reset (empty unless `profile` is on).
    pub fn profile_report(&self) -> ProfileReport {
        self.profiler.report()
    }

    pub fn reset_profile(&self) {
        self.profiler.reset()
    }
}
