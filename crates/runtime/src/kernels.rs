//! Kernel lookup: which spec / manifest entry serves a call (family + shape), and from it the
//! precision of the call in `Numerics::Npu` and the compiled artifacts for the NPU backend.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use kernel_spec::manifest::{Manifest, Status};
use kernel_spec::{AttentionKind, Device, Dtype, Family, KernelSpec, Op, WeightScale};

use crate::{AttentionParams, Prec, RuntimeError};

/// One kernel the runtime knows about (from the manifest, or straight from the spec files).
#[derive(Clone, Debug)]
pub struct KernelEntry {
    pub name: String,
    pub device: Device,
    pub dtype: Dtype,
    pub op: Op,
    /// `(xclbin, instruction stream)` when the manifest says the kernel was compiled.
    pub compiled: Option<(PathBuf, PathBuf)>,
    /// The whole spec entry (from the manifest): the host layout of the design derives from it.
    pub spec: Option<KernelSpec>,
    /// The rendered `design.mlir` (from the manifest), which the emulator backend runs.
    pub design: Option<PathBuf>,
    /// The emulator's estimate of one invocation on the NPU, µs (from the manifest).
    pub emulated_us: Option<f64>,
}

impl KernelEntry {
    pub fn from_spec(spec: &KernelSpec) -> KernelEntry {
        KernelEntry {
            name: spec.name.clone(),
            device: spec.device,
            dtype: spec.dtype,
            op: spec.op.clone(),
            compiled: None,
            spec: Some(spec.clone()),
            design: None,
            emulated_us: None,
        }
    }

    /// The precision the CPU uses to predict this kernel.
    pub(crate) fn prec(&self) -> Prec {
        match self.dtype {
            Dtype::F32 => Prec::F32,
            Dtype::Bf16 if self.op.split_weights() => Prec::Bf16SplitWeights,
            Dtype::Bf16 => Prec::Bf16,
            Dtype::Int8 => match self.op {
                Op::Matmul { quant: Some(q), .. } => Prec::Int8 {
                    per_channel: q.weight_scale == WeightScale::PerChannel,
                    requantize: q.requantize_output,
                },
                // int8 without explicit quantisation: per-channel weights, bf16 output.
                _ => Prec::Int8 {
                    per_channel: true,
                    requantize: false,
                },
            },
        }
    }
}

/// The shape of one runtime call, as far as kernel selection is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Call {
    Matmul {
        rows: usize,
        k: usize,
        n: usize,
        bias: bool,
        gelu: bool,
        residual: bool,
    },
    Attention(AttentionParams),
    Ffn {
        rows: usize,
        d: usize,
        dff: usize,
    },
    LayerNorm {
        rows: usize,
        dim: usize,
    },
    LmHead {
        rows: usize,
        d: usize,
        vocab: usize,
        subset: Option<usize>,
    },
}

impl Call {
    pub(crate) fn family(&self) -> Family {
        match self {
            Call::Matmul { .. } => Family::Matmul,
            Call::Attention(_) => Family::Attention,
            Call::Ffn { .. } => Family::Ffn,
            Call::LayerNorm { .. } => Family::LayerNorm,
            Call::LmHead { .. } => Family::LmHead,
        }
    }

    /// `1500x512x2048`-style text for messages.
    pub(crate) fn shape(&self) -> String {
        match *self {
            Call::Matmul {
                rows,
                k,
                n,
                bias,
                gelu,
                residual,
            } => {
                let mut s = format!("{rows}x{k}x{n}");
                for (on, tag) in [(bias, "+bias"), (gelu, "+gelu"), (residual, "+residual")] {
                    if on {
                        s.push_str(tag);
                    }
                }
                s
            }
            Call::Attention(p) => format!(
                "{}x{} heads q{} kv{}{}",
                p.heads,
                p.head_dim,
                p.q_len,
                p.kv_len,
                if p.causal_offset.is_some() {
                    " causal"
                } else {
                    ""
                }
            ),
            Call::Ffn { rows, d, dff } => format!("{rows}x{d}x{dff}"),
            Call::LayerNorm { rows, dim } => format!("{rows}x{dim}"),
            Call::LmHead {
                rows,
                d,
                vocab,
                subset: None,
            } => format!("{rows}x{d}x{vocab}"),
            Call::LmHead {
                rows,
                d,
                vocab,
                subset: Some(s),
            } => format!("{rows}x{d}x{vocab} top{s}"),
        }
    }

    /// Whether a kernel of shape `op` computes this call. Row counts may be padded (entry rows
    /// ≥ call rows: the host zero-fills); everything else must agree.
    pub(crate) fn served_by(&self, op: &Op) -> bool {
        match (*self, op) {
            (
                Call::Matmul {
                    rows,
                    k,
                    n,
                    bias,
                    gelu,
                    residual,
                },
                Op::Matmul {
                    m,
                    k: ek,
                    n: en,
                    bias: eb,
                    gelu: eg,
                    residual: er,
                    ..
                },
            ) => {
                // A kernel with a bias serves a product without one (the host sends zeros), as
                // Whisper's key projections need.
                let bias_ok = !bias || *eb;
                rows <= *m && k == *ek && n == *en && bias_ok && gelu == *eg && residual == *er
            }
            (
                Call::Attention(p),
                Op::Attention {
                    kind,
                    heads,
                    head_dim,
                    q_len,
                    kv_len,
                },
            ) => {
                let kind_ok = match kind {
                    AttentionKind::CausalSelf => p.causal_offset.is_some(),
                    AttentionKind::Encoder | AttentionKind::Cross => p.causal_offset.is_none(),
                };
                // A causal kernel serves any cache fill up to its capacity; the others read
                // exactly kv_len keys.
                let kv_ok = match kind {
                    AttentionKind::CausalSelf => p.kv_len <= *kv_len,
                    _ => p.kv_len == *kv_len,
                };
                kind_ok
                    && kv_ok
                    && p.heads == *heads
                    && p.head_dim == *head_dim
                    && p.q_len <= *q_len
            }
            (
                Call::Ffn { rows, d, dff },
                Op::Ffn {
                    rows: er,
                    d_model,
                    d_ff,
                    ..
                },
            ) => rows <= *er && d == *d_model && dff == *d_ff,
            (
                Call::LayerNorm { rows, dim },
                Op::LayerNorm {
                    rows: er, dim: ed, ..
                },
            ) => rows <= *er && dim == *ed,
            (
                Call::LmHead {
                    rows,
                    d,
                    vocab,
                    subset,
                },
                Op::LmHead {
                    rows: er,
                    d_model,
                    vocab: ev,
                    top_k,
                    ..
                },
            ) => {
                let sub_ok = match (subset, top_k) {
                    (None, None) => true,
                    (Some(s), Some(t)) => s <= *t,
                    _ => false,
                };
                sub_ok && rows <= *er && d == *d_model && vocab == *ev
            }
            _ => false,
        }
    }

    /// Whether `op` serves this bias-less matmul with a bias of zeros (an exact match wins).
    fn adds_zero_bias(&self, op: &Op) -> bool {
        matches!(
            (self, op),
            (
                Call::Matmul { bias: false, .. },
                Op::Matmul { bias: true, .. }
            )
        )
    }

    /// Rows of the call and of an entry (for preferring the least padding).
    fn padding(&self, op: &Op) -> usize {
        let entry_rows = match *op {
            Op::Matmul { m, .. } => m,
            Op::Attention { q_len, .. } => q_len,
            Op::Ffn { rows, .. } | Op::LayerNorm { rows, .. } | Op::LmHead { rows, .. } => rows,
        };
        let rows = match *self {
            Call::Matmul { rows, .. }
            | Call::Ffn { rows, .. }
            | Call::LayerNorm { rows, .. }
            | Call::LmHead { rows, .. } => rows,
            Call::Attention(p) => p.q_len,
        };
        entry_rows.saturating_sub(rows)
    }
}

/// Every known kernel plus the selection policy.
pub(crate) struct KernelTable {
    pub(crate) entries: Vec<KernelEntry>,
    /// Device whose kernels are used; `None` = any (npu1 preferred).
    pub(crate) device: Option<Device>,
    /// Preferred dtype when entries of several dtypes serve a call (default bf16).
    pub(crate) prefer: Dtype,
    /// Where the entries came from (for messages).
    pub(crate) source: Option<PathBuf>,
    /// (reason, call) pairs already warned about.
    warned: Mutex<HashSet<(&'static str, Call)>>,
}

impl KernelTable {
    pub(crate) fn new(
        entries: Vec<KernelEntry>,
        device: Option<Device>,
        prefer: Dtype,
        source: Option<PathBuf>,
    ) -> KernelTable {
        KernelTable {
            entries,
            device,
            prefer,
            source,
            warned: Mutex::new(HashSet::new()),
        }
    }

    /// The entry serving `call` among those `usable`: right device, right shape, least padding,
    /// preferred dtype.
    pub(crate) fn select(
        &self,
        call: &Call,
        usable: impl Fn(&KernelEntry) -> bool,
    ) -> Option<&KernelEntry> {
        let device_rank = |d: Device| match self.device {
            Some(want) => (d != want) as u8 * 2,
            None => (d != Device::Npu1) as u8,
        };
        self.entries
            .iter()
            .filter(|e| self.device.is_none_or(|d| d == e.device))
            .filter(|e| usable(e))
            .filter(|e| call.served_by(&e.op))
            .min_by_key(|e| {
                (
                    device_rank(e.device),
                    e.dtype != self.prefer,
                    call.padding(&e.op),
                    call.adds_zero_bias(&e.op),
                )
            })
    }

    /// Warns once per (reason, call shape); allocates only the first time.
    pub(crate) fn warn_once(
        &self,
        reason: &'static str,
        call: &Call,
        msg: impl FnOnce() -> String,
    ) {
        let mut w = self.warned.lock().unwrap_or_else(|e| e.into_inner());
        if w.insert((reason, *call)) {
            tracing::warn!("{}", msg());
        }
    }
}

/// Reads `generated/manifest.json`-style manifests into entries; compiled artifacts are resolved
/// relative to the workspace root (the manifest's `generated/` parent) or taken as absolute.
pub(crate) fn load_manifest(path: &Path) -> Result<Vec<KernelEntry>, RuntimeError> {
    let m = Manifest::load(path).map_err(|e| RuntimeError::Manifest {
        path: path.to_path_buf(),
        msg: e.to_string(),
    })?;
    let root = manifest_root(path);
    Ok(m.kernels
        .into_iter()
        .map(|k| {
            let dir = if k.dir.is_absolute() {
                k.dir.clone()
            } else {
                root.join(&k.dir)
            };
            let compiled = match (k.status, &k.artifacts.xclbin, &k.artifacts.insts) {
                (Status::Compiled, Some(x), Some(i)) => Some((dir.join(x), dir.join(i))),
                _ => None,
            };
            let design = (!k.artifacts.design.is_empty()).then(|| dir.join(&k.artifacts.design));
            KernelEntry {
                name: k.name,
                device: k.device,
                dtype: k.dtype,
                op: k.op,
                compiled,
                spec: Some(k.spec),
                design,
                emulated_us: k.emulated.map(|e| e.estimate_us),
            }
        })
        .collect())
}

/// What a manifest's relative `dir`s are relative to: the parent of the manifest's directory
/// (kernel-build records `<out dir name>/<name>/<hash>`, so `<root>/generated/manifest.json` →
/// `<root>`, `/tmp/out/manifest.json` → `/tmp`).
fn manifest_root(path: &Path) -> PathBuf {
    let dir = path.parent().unwrap_or(Path::new("."));
    dir.parent().unwrap_or(Path::new(".")).to_path_buf()
}
