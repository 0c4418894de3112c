//! One kernel API over the CPU backend, the XRT NPU backend and the emulator backend.
//!
//! The model calls only this crate. All matrices are row-major `f32` slices; weights follow
//! PyTorch's `[out_features, in_features]` layout. See `docs/architecture.md` for the contract.
//! The NPU and emulator backends run the rendered designs through one host packing
//! ([`host`]).

// Kernel entry points mirror the documented API, whose calls take up to 8 operands.
#![allow(clippy::too_many_arguments)]

mod builtin;
mod compute;
mod cpu;
mod device;
mod emu;
mod error;
pub mod host;
mod kernels;
mod kv;
pub mod math;
#[cfg(feature = "npu")]
mod npu;
pub mod numerics;
mod profile;

use std::path::PathBuf;
use std::time::Instant;

pub use compute::ComputeType;
/// The int8 kernels of `ComputeType::Int8` on the CPU (public for their benchmark).
pub mod int8 {
    pub use crate::cpu::int8::{matmul_with, Int8Weights, Isa};
}
pub use cpu::matmul::Linear;
pub use device::DeviceKernelStat;
pub use error::RuntimeError;
/// The spec types kernel entries are made of.
pub use kernel_spec;
pub use kernel_spec::{Device, Dtype, KernelSpec};
pub use kernels::KernelEntry;
pub use kv::KvTensor;
pub use profile::{ProfileEntry, ProfileReport};

use device::DeviceBackend;
use host::{Invocation, Layout, RunStats};
use kernels::{Call, KernelTable};
use kv::KvView;

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
    /// Every kernel call runs the entry's rendered design in the dataflow emulator (`aie-emu`)
    /// with the NPU backend's host packing: the whole NPU path short of the silicon. Needs a
    /// manifest from `cargo xtask build-kernels --emit-only`.
    Emu,
}

#[derive(Clone, Debug)]
pub struct RuntimeConfig {
    pub backend: BackendKind,
    pub numerics: Numerics,
    /// Worker threads of the runtime's own pool; 0 = one per core.
    pub threads: usize,
    /// `generated/manifest.json` of `cargo xtask build-kernels`; `None` = look in `generated/`.
    pub manifest: Option<PathBuf>,
    /// On the NPU and emulator backends, run calls no entry serves on the CPU (warning once).
    pub allow_cpu_fallback: bool,
    /// Time every call (see [`Runtime::profile_report`]).
    pub profile: bool,
    /// The NPU whose kernels serve calls when several devices' entries would (`None`: the
    /// detected NPU, else npu1; the emulator models this device).
    pub device: Option<Device>,
    /// The kernel dtype preferred when entries of several dtypes serve a call.
    pub prefer_dtype: Dtype,
    /// How the CPU computes with `Numerics::F32` (ignored in NPU numerics and on devices).
    pub compute: ComputeType,
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
            device: None,
            prefer_dtype: Dtype::Bf16,
            compute: ComputeType::F32,
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

/// One sequence of [`Runtime::attention_batch`]: its keys and values (`[≥kv_len,
/// heads·head_dim]`), how many it has, and its causal offset (see [`AttentionParams`]).
#[derive(Clone, Copy, Debug)]
pub struct SeqKv<'a> {
    pub k: &'a [f32],
    pub v: &'a [f32],
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
    /// The NPU (XRT) or emulator backend; `None` = CPU.
    device: Option<Box<dyn DeviceBackend>>,
}

/// How one call runs.
enum Exec<'a> {
    /// On the CPU with this precision; the NPU-time estimate of the kernel that would serve it.
    Cpu(Prec, f64),
    Device(&'a KernelEntry),
}

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
    /// `Auto` where possible) the NPU, or (with `BackendKind::Emu`) the emulator.
    ///
    /// Kernels come from `cfg.manifest` (what `cargo xtask build-kernels` wrote); without one,
    /// from the kernel specs built into this library at compile time (enough to predict the
    /// NPU's rounding on the CPU; the NPU and emulator backends need a manifest, since they run
    /// its artifacts). Nothing is read from the environment or the current directory. When
    /// several entries serve a call, `cfg.device` and `cfg.prefer_dtype` win, then the entry
    /// with the least row padding.
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
        if cfg.backend == BackendKind::Emu {
            return Err(RuntimeError::Config(
                "the emu backend runs the rendered designs of a kernel manifest: set RuntimeConfig::manifest to the generated/manifest.json that `cargo xtask build-kernels --emit-only` writes"
                    .to_string(),
            ));
        }
        // Plain f32 on the CPU needs no kernel table.
        let npu_possible = cfg!(feature = "npu") && cfg.backend != BackendKind::Cpu;
        if cfg.numerics == Numerics::F32 && !npu_possible {
            return Ok((Vec::new(), None));
        }
        Ok((builtin::entries()?, None))
    }

    fn with_kernels_from(
        cfg: RuntimeConfig,
        entries: Vec<KernelEntry>,
        source: Option<PathBuf>,
    ) -> Result<Runtime, RuntimeError> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(cfg.threads)
            .thread_name(|i| format!("npu-runtime-{i}"))
            .build()
            .map_err(|e| RuntimeError::ThreadPool(e.to_string()))?;
        let mut table = KernelTable::new(entries, cfg.device, cfg.prefer_dtype, source);
        let device = Self::open_device(&cfg, &mut table)?;
        Ok(Runtime {
            cfg,
            pool,
            profiler: profile::Profiler::default(),
            kernels: table,
            device,
        })
    }

    /// The backend that runs designs, if the configuration asks for one (and, for `Auto`,
    /// the NPU is there).
    fn open_device(
        cfg: &RuntimeConfig,
        table: &mut KernelTable,
    ) -> Result<Option<Box<dyn DeviceBackend>>, RuntimeError> {
        match cfg.backend {
            BackendKind::Cpu => Ok(None),
            BackendKind::Emu => {
                // The emulator models npu1 unless the configuration names another device.
                let device = *table.device.get_or_insert(Device::Npu1);
                Ok(Some(Box::new(emu::EmuBackend::open(table, device)?)))
            }
            #[cfg(feature = "npu")]
            BackendKind::Npu | BackendKind::Auto => Ok(npu::NpuBackend::open_for(cfg, table)?
                .map(|b| Box::new(b) as Box<dyn DeviceBackend>)),
            #[cfg(not(feature = "npu"))]
            BackendKind::Npu => Err(RuntimeError::NpuUnavailable(
                "this build has no NPU backend: rebuild with `--features npu` (needs XRT >= 2.20 with the amdxdna driver)"
                    .to_string(),
            )),
            #[cfg(not(feature = "npu"))]
            BackendKind::Auto => Ok(None),
        }
    }

    /// The kernels this runtime selects from.
    pub fn kernels(&self) -> &[KernelEntry] {
        &self.kernels.entries
    }

    /// `"cpu"`, `"npu"` or `"emu"`.
    pub fn backend_name(&self) -> &'static str {
        self.device.as_ref().map_or("cpu", |d| d.name())
    }

    pub fn numerics(&self) -> Numerics {
        self.cfg.numerics
    }

    /// The CPU compute type in effect: the configured one with `Numerics::F32`, else f32
    /// (NPU numerics round where the kernels round).
    pub fn compute(&self) -> ComputeType {
        match self.cfg.numerics {
            Numerics::F32 => self.cfg.compute,
            Numerics::Npu => ComputeType::F32,
        }
    }

    /// Whether [`Runtime::linear`] keeps only int8 weights (`ComputeType::Int8` on the CPU
    /// backend): [`Linear::weight`] is then `None`. Device backends pack the f32 weights for
    /// their kernels.
    pub fn keeps_only_int8_weights(&self) -> bool {
        self.device.is_none() && self.compute() == ComputeType::Int8
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

    /// Decides where and in which precision `call` runs. `fits` says why the selected device
    /// entry cannot compute this particular call although its shape matches, if it cannot.
    fn plan(
        &self,
        call: &Call,
        fits: impl Fn(&Layout) -> Result<(), String>,
    ) -> Result<Exec<'_>, RuntimeError> {
        let Some(dev) = &self.device else {
            return Ok(self.cpu_exec(call));
        };
        let family = call.family();
        let unfit = match self.kernels.select(call, |e| dev.supports(e)) {
            Some(e) => match fits(dev.layout(e)?) {
                Ok(()) => return Ok(Exec::Device(e)),
                Err(why) => Some((e, why)),
            },
            None => None,
        };
        if !self.cfg.allow_cpu_fallback {
            return Err(match unfit {
                Some((e, why)) => RuntimeError::Layout {
                    entry: e
                        .spec
                        .as_ref()
                        .map_or_else(|| e.name.clone(), KernelSpec::origin),
                    msg: format!("{why} (allow_cpu_fallback would run the call on the CPU)"),
                },
                None => RuntimeError::NoKernel {
                    family: family.to_string(),
                    shape: call.shape(),
                    dtype: self.kernels.prefer.to_string(),
                    device: dev.device().to_string(),
                },
            });
        }
        self.kernels.warn_once("fallback", call, || {
            let shape = call.shape();
            match &unfit {
                Some((e, why)) => format!(
                    "kernel {} cannot run this {family} call ({shape}): {why}; running it on the CPU",
                    e.name
                ),
                None => format!(
                    "no {} {family} kernel for {shape} {} on {}: running it on the CPU (add an entry to kernel-specs/{family}.toml and run `{}`)",
                    dev.name(),
                    self.kernels.prefer,
                    dev.device(),
                    dev.build_command()
                ),
            }
        });
        Ok(self.cpu_exec(call))
    }

    /// Runs `f` (pack, run, unpack) on an invocation of `entry` on the device backend.
    fn on_device(
        &self,
        family: &'static str,
        op: &str,
        flops: f64,
        entry: &KernelEntry,
        f: impl FnOnce(&mut dyn Invocation, &Layout) -> Result<RunStats, RuntimeError>,
    ) -> Result<(), RuntimeError> {
        let dev = self
            .device
            .as_ref()
            .expect("Exec::Device only with a device backend");
        let t = Instant::now();
        let mut f = Some(f);
        let stats = dev.invoke(entry, &mut |inv, lay| {
            (f.take().expect("invoked once"))(inv, lay)
        })?;
        if self.cfg.profile {
            self.profiler
                .record_estimate(family, op, t, flops, stats.estimate_us);
        }
        Ok(())
    }

    /// How `call` runs on the CPU: f32, or in NPU numerics the dtype of the entry that serves
    /// it; with profiling, also that entry's emulated NPU time (µs, recorded in the manifest by
    /// `build-kernels`; 0 without one). One table lookup serves both.
    fn cpu_exec(&self, call: &Call) -> Exec<'_> {
        if self.cfg.numerics == Numerics::F32 && !self.cfg.profile {
            return Exec::Cpu(Prec::F32, 0.0);
        }
        let entry = self.kernels.select(call, |_| true);
        let estimate = entry
            .filter(|_| self.cfg.profile)
            .and_then(|e| e.emulated_us)
            .unwrap_or(0.0);
        if self.cfg.numerics == Numerics::F32 {
            return Exec::Cpu(Prec::F32, estimate);
        }
        let prec = match entry {
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
        };
        Exec::Cpu(prec, estimate)
    }

    /// Runs `f` on the pool; with profiling, records its time and `estimate_us`, the
    /// emulator's estimate of what the serving kernel would take on the NPU.
    fn timed<R>(
        &self,
        family: &'static str,
        op: &str,
        flops: f64,
        estimate_us: f64,
        f: impl FnOnce() -> R + Send,
    ) -> R
    where
        R: Send,
    {
        if self.cfg.profile {
            let t = Instant::now();
            let r = self.pool.install(f);
            self.profiler
                .record_estimate(family, op, t, flops, estimate_us);
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
        let int8 = self.keeps_only_int8_weights();
        self.pack_linear(weight, bias, in_features, out_features, int8)
    }

    /// [`Runtime::linear`] for a layer that keeps float weights whatever the compute type: the
    /// layers nearest a network's raw input (Whisper's convolutions over the log-mel), where
    /// int8 costs accuracy for little time.
    pub fn linear_float(
        &self,
        weight: Vec<f32>,
        bias: Option<Vec<f32>>,
        in_features: usize,
        out_features: usize,
    ) -> Linear {
        self.pack_linear(weight, bias, in_features, out_features, false)
    }

    fn pack_linear(
        &self,
        weight: Vec<f32>,
        bias: Option<Vec<f32>>,
        in_features: usize,
        out_features: usize,
        int8: bool,
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
        self.pool.install(|| {
            Linear::new(
                weight,
                bias,
                in_features,
                out_features,
                self.cfg.numerics == Numerics::Npu,
                int8,
            )
        })
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
        match self.plan(&call, |_| Ok(()))? {
            Exec::Cpu(prec, est) => {
                let round_out = prec != Prec::F32;
                self.timed("matmul", op, flops, est, || {
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
            Exec::Device(e) => self.on_device("matmul", op, flops, e, |inv, lay| match lay {
                Layout::Matmul(l) => host::matmul::run(inv, l, x, rows, lin, epi, out),
                _ => Err(wrong_layout(e, "matmul")),
            }),
        }
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
        let flops = 4.0 * (rows * d * dff) as f64;
        match self.plan(&Call::Ffn { rows, d, dff }, |_| Ok(()))? {
            Exec::Cpu(prec, est) => {
                let round_out = prec != Prec::F32;
                self.timed("ffn", op, flops, est, || {
                    cpu::matmul::ffn_forward(x, rows, fc1, fc2, residual, prec, round_out, out)
                });
                Ok(())
            }
            Exec::Device(e) => self.on_device("ffn", op, flops, e, |inv, lay| match lay {
                Layout::Ffn(l) => host::ffn::run(inv, l, x, rows, fc1, fc2, residual, out),
                _ => Err(wrong_layout(e, "ffn")),
            }),
        }
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
        let flops = 8.0 * (rows * dim) as f64;
        let fits = |lay: &Layout| match lay {
            Layout::LayerNorm(l) if !l.serves_eps(eps) => Err(format!(
                "its design normalises with eps {}, the call with {eps}",
                l.eps
            )),
            _ => Ok(()),
        };
        match self.plan(&Call::LayerNorm { rows, dim }, fits)? {
            Exec::Cpu(prec, est) => {
                // LayerNorm kernels read bf16 (int8 LayerNorm does not exist; treat it as bf16).
                let bf16 = prec != Prec::F32;
                self.timed("layernorm", op, flops, est, || {
                    cpu::norm::layernorm(x, rows, dim, gamma, beta, eps, bf16, out)
                });
                Ok(())
            }
            Exec::Device(e) => self.on_device("layernorm", op, flops, e, |inv, lay| match lay {
                Layout::LayerNorm(l) => {
                    host::layernorm::run(inv, l, x, (rows, dim), gamma, beta, eps, out)
                }
                _ => Err(wrong_layout(e, "layernorm")),
            }),
        }
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
        self.attention_of(op, q, KvView::F32(k), KvView::F32(v), p, out)
    }

    /// Keys or values kept across calls (the decoder's cross-attention K/V), `[rows, width]`:
    /// f16 on the CPU with [`ComputeType::Int8`] (half the bytes each decoding step streams),
    /// else f32 unchanged.
    pub fn kv_tensor(&self, data: Vec<f32>, width: usize) -> KvTensor {
        if self.device.is_none() && self.compute() == ComputeType::Int8 {
            KvTensor::f16(&data, width)
        } else {
            KvTensor::f32(data, width)
        }
    }

    /// [`Runtime::attention`] over keys and values built by [`Runtime::kv_tensor`] (the
    /// arithmetic is f32 whatever they are stored as).
    pub fn attention_kv(
        &self,
        op: &str,
        q: &[f32],
        k: &KvTensor,
        v: &KvTensor,
        p: AttentionParams,
        out: &mut [f32],
    ) -> Result<(), RuntimeError> {
        self.attention_of(op, q, k.view(), v.view(), p, out)
    }

    /// Attention of several sequences in one call (the decoder's self-attention over each
    /// beam's cache): sequence `b` takes query rows `b·q_len..(b+1)·q_len` of `q` and `out`
    /// (`[batch·q_len, heads·head_dim]`) and its own keys, values, `kv_len` and causal offset.
    /// Each sequence gets exactly what [`Runtime::attention`] gives it alone; one call saves the
    /// per-call cost of many small ones.
    pub fn attention_batch(
        &self,
        op: &str,
        q: &[f32],
        seqs: &[SeqKv<'_>],
        heads: usize,
        head_dim: usize,
        q_len: usize,
        out: &mut [f32],
    ) -> Result<(), RuntimeError> {
        let rows = q_len * heads * head_dim;
        check_len(op, "q", q.len(), seqs.len() * rows)?;
        check_len(op, "out", out.len(), seqs.len() * rows)?;
        let params = |s: &SeqKv<'_>| AttentionParams {
            heads,
            head_dim,
            q_len,
            kv_len: s.kv_len,
            causal_offset: s.causal_offset,
        };
        if self.device.is_some() || self.cfg.numerics != Numerics::F32 {
            // Each call planned on its own (kernel selection, NPU rounding).
            for (b, s) in seqs.iter().enumerate() {
                let r = b * rows..(b + 1) * rows;
                self.attention(op, &q[r.clone()], s.k, s.v, params(s), &mut out[r])?;
            }
            return Ok(());
        }
        let mut flops = 0.0;
        for s in seqs {
            let p = params(s);
            if p.kv_len == 0 || rows == 0 {
                return Err(RuntimeError::Shape {
                    op: op.to_string(),
                    msg: format!("attention needs kv_len ≥ 1 and heads·head_dim ≥ 1 (got {p:?})"),
                });
            }
            check_len(op, "k", s.k.len(), p.kv_len * heads * head_dim)?;
            check_len(op, "v", s.v.len(), p.kv_len * heads * head_dim)?;
            flops += 4.0 * (rows * p.kv_len) as f64;
        }
        self.timed("attention", op, flops, 0.0, || {
            for ((s, q), out) in seqs.iter().zip(q.chunks(rows)).zip(out.chunks_mut(rows)) {
                let (k, v) = (KvView::F32(s.k), KvView::F32(s.v));
                cpu::attention::attention(q, k, v, &params(s), false, out);
            }
        });
        Ok(())
    }

    fn attention_of(
        &self,
        op: &str,
        q: &[f32],
        k: KvView<'_>,
        v: KvView<'_>,
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
        if matches!(
            (k, v),
            (KvView::F32(_), KvView::F16(_)) | (KvView::F16(_), KvView::F32(_))
        ) {
            return Err(RuntimeError::Shape {
                op: op.to_string(),
                msg: "keys and values must be stored alike (both f32 or both f16): build both with Runtime::kv_tensor".to_string(),
            });
        }
        let flops = 4.0 * (p.q_len * p.kv_len * hd) as f64;
        match self.plan(&Call::Attention(p), |_| Ok(()))? {
            Exec::Cpu(prec, est) => {
                // Attention kernels are bf16 (an int8 entry is predicted as bf16 too: its softmax
                // and probabilities are not quantised by the templates).
                let bf16 = prec != Prec::F32;
                self.timed("attention", op, flops, est, || {
                    cpu::attention::attention(q, k, v, &p, bf16, out)
                });
                Ok(())
            }
            Exec::Device(e) => self.on_device("attention", op, flops, e, |inv, lay| match lay {
                Layout::Attention(l) => {
                    let (k, v) = (k.to_f32(), v.to_f32());
                    host::attention::run(inv, l, q, &k, &v, p, out)
                }
                _ => Err(wrong_layout(e, "attention")),
            }),
        }
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
        let count = subset.map_or(vocab, <[u32]>::len);
        check_len(op, "out", out.len(), rows * count)?;
        if let Some(bad) = subset.and_then(|ids| ids.iter().find(|&&i| i as usize >= vocab)) {
            return Err(RuntimeError::Shape {
                op: op.to_string(),
                msg: format!("subset id {bad} is outside the vocabulary of {vocab}"),
            });
        }
        let call = Call::LmHead {
            rows,
            d,
            vocab,
            subset: subset.map(<[u32]>::len),
        };
        let fits = |_: &Layout| match emb.b {
            Some(_) => Err("the LM head design adds no bias and this layer has one".to_string()),
            None => Ok(()),
        };
        let flops = 2.0 * (rows * d * count) as f64;
        match self.plan(&call, fits)? {
            Exec::Cpu(prec, est) => {
                self.timed("lm_head", op, flops, est, || match subset {
                    None => {
                        cpu::matmul::linear_forward(x, rows, emb, false, None, prec, false, out)
                    }
                    Some(ids) => cpu::matmul::lm_head_subset(x, rows, emb, ids, prec, out),
                });
                Ok(())
            }
            Exec::Device(e) => self.on_device("lm_head", op, flops, e, |inv, lay| match lay {
                Layout::LmHead(l) => host::lm_head::run(inv, l, x, rows, emb, subset, out),
                _ => Err(wrong_layout(e, "lm_head")),
            }),
        }
    }

    /// Per kernel run on the NPU or in the emulator: runs, measured device time (NPU) and the
    /// emulator's estimate of the NPU time (a model, not a measurement).
    pub fn device_kernel_stats(&self) -> Vec<DeviceKernelStat> {
        self.device
            .as_ref()
            .map(|d| d.kernel_stats())
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

/// A device backend handed a layout of another family than the call's (a bug).
fn wrong_layout(entry: &KernelEntry, family: &str) -> RuntimeError {
    RuntimeError::Layout {
        entry: entry.name.clone(),
        msg: format!("selected for a {family} call but its layout is another family's"),
    }
}
