//! The spec entry types and the TOML file format (`kernel-specs/<family>.toml`).

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{family, SpecError};

/// Kernel family; each has one TOML file (`<family>.toml`) and one template directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    Matmul,
    Attention,
    Ffn,
    #[serde(rename = "layernorm")]
    LayerNorm,
    LmHead,
}

impl Family {
    pub const ALL: [Family; 5] = [
        Family::Matmul,
        Family::Attention,
        Family::Ffn,
        Family::LayerNorm,
        Family::LmHead,
    ];

    /// Name used for the TOML file stem, the template directory and the manifest.
    pub fn as_str(self) -> &'static str {
        match self {
            Family::Matmul => "matmul",
            Family::Attention => "attention",
            Family::Ffn => "ffn",
            Family::LayerNorm => "layernorm",
            Family::LmHead => "lm_head",
        }
    }

    pub fn from_stem(stem: &str) -> Option<Family> {
        Family::ALL.into_iter().find(|f| f.as_str() == stem)
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Target NPU generation, named as in MLIR-AIE's `aie.device(...)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Device {
    /// Phoenix / Hawk Point (XDNA1, AIE-ML = aie2): 4 columns x 4 core rows.
    Npu1,
    /// Strix / Krackan (XDNA2, AIE2P): 8 columns x 4 core rows.
    Npu2,
}

impl Device {
    pub fn as_str(self) -> &'static str {
        match self {
            Device::Npu1 => "npu1",
            Device::Npu2 => "npu2",
        }
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Element type of the kernel's operands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dtype {
    /// bf16 inputs, f32 accumulation, bf16 output (rounded once, after the epilogue).
    Bf16,
    /// int8 inputs, i32 accumulation, requantised int8 (or f32) output.
    Int8,
    /// f32 throughout (only where a spec says so, e.g. statistics of LayerNorm).
    F32,
}

impl Dtype {
    pub fn as_str(self) -> &'static str {
        match self {
            Dtype::Bf16 => "bf16",
            Dtype::Int8 => "int8",
            Dtype::F32 => "f32",
        }
    }

    /// Bytes of one input element.
    pub fn bytes(self) -> usize {
        match self {
            Dtype::Bf16 => 2,
            Dtype::Int8 => 1,
            Dtype::F32 => 4,
        }
    }

    /// Bytes of one accumulator element (f32 for bf16, i32 for int8).
    pub fn acc_bytes(self) -> usize {
        4
    }
}

impl fmt::Display for Dtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How int8 weights are scaled back to real numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WeightScale {
    PerTensor,
    PerChannel,
}

/// int8 quantisation of a matmul: `Y = (X_q · W_q^T) * sx * sw (+ b) ...`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quant {
    pub weight_scale: WeightScale,
    /// true: the output is requantised to int8 with a per-tensor output scale; false: bf16 output.
    pub requantize_output: bool,
}

/// Which attention the entry computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttentionKind {
    /// Non-causal self-attention over the encoder frames.
    Encoder,
    /// Decoder self-attention over a KV cache of up to `kv_len` positions, causally masked.
    CausalSelf,
    /// Decoder queries over the encoder output.
    Cross,
}

/// The family-specific shape of an entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "family", rename_all = "snake_case")]
pub enum Op {
    /// `Y[m,n] = X[m,k] · W[n,k]^T (+ b) (GELU) (+ R)`.
    Matmul {
        m: usize,
        k: usize,
        n: usize,
        bias: bool,
        gelu: bool,
        residual: bool,
        quant: Option<Quant>,
        /// bf16 only: the weights travel as two bf16 planes, hi = bf16(w) and lo = bf16(w − hi),
        /// and the core multiplies both, so the weights keep 16 significant bits (exactly the
        /// values of a float16 checkpoint) at twice the weight MACs and weight traffic.
        split_weights: bool,
    },
    /// Multi-head scaled-dot-product attention.
    Attention {
        kind: AttentionKind,
        heads: usize,
        head_dim: usize,
        q_len: usize,
        kv_len: usize,
    },
    /// `Y = X + fc2(GELU(fc1(X)))` with biases on both linears.
    Ffn {
        rows: usize,
        d_model: usize,
        d_ff: usize,
        /// As for matmul, for both weight matrices.
        split_weights: bool,
    },
    /// Row-wise LayerNorm of a `rows x dim` block with affine gamma/beta.
    #[serde(rename = "layernorm")]
    LayerNorm { rows: usize, dim: usize, eps: f64 },
    /// `logits[rows, V'] = X[rows, d] · E^T` over the whole vocabulary or a `top_k` subset.
    LmHead {
        rows: usize,
        d_model: usize,
        vocab: usize,
        top_k: Option<usize>,
        /// As for matmul, for the embedding table.
        split_weights: bool,
    },
}

impl Op {
    pub fn family(&self) -> Family {
        match self {
            Op::Matmul { .. } => Family::Matmul,
            Op::Attention { .. } => Family::Attention,
            Op::Ffn { .. } => Family::Ffn,
            Op::LayerNorm { .. } => Family::LayerNorm,
            Op::LmHead { .. } => Family::LmHead,
        }
    }

    /// Multiply-accumulates of one call (for the roofline estimate).
    pub fn macs(&self) -> f64 {
        family::def(self.family()).macs(self)
    }

    /// Whether the weights travel as two bf16 planes (`split_weights`).
    pub fn split_weights(&self) -> bool {
        family::def(self.family()).split_weights(self)
    }

    /// Whether the kernel evaluates exp (GELU, softmax).
    pub fn needs_exp(&self) -> bool {
        family::def(self.family()).needs_exp(self)
    }
}

/// How the work is split over the array and into per-core tiles.
///
/// Meaning per family (see docs/architecture.md):
/// - matmul / ffn: `tile_m x tile_k` A tiles, `tile_k x tile_n` B tiles, `tile_m x tile_n`
///   output tiles per core; `pad_m_to` pads the rows.
/// - lm_head: computed transposed (logits^T = E · X^T), so `m` is the vocabulary side
///   (`pad_m_to` pads top_k or vocab) and `n` the decoder rows (`pad_n_to`).
/// - attention: `tile_m` query rows and `tile_n` key rows per step (`tile_k` = head_dim);
///   `pad_m_to` pads q_len, `pad_n_to` kv_len; heads spread over columns, query blocks over rows.
/// - layernorm: `tile_m` rows per step (whole rows of `dim`); blocks spread over all cores.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tiling {
    pub tile_m: usize,
    #[serde(default)]
    pub tile_k: usize,
    #[serde(default)]
    pub tile_n: usize,
    /// Array columns used (each with its shim and mem tile).
    pub columns: usize,
    /// Core rows used per column.
    pub rows: usize,
    /// Object-FIFO depth of the per-core streams (2 = double buffering).
    #[serde(default = "default_depth")]
    pub depth: usize,
    /// Pad the row dimension (m / q_len / rows) to this many rows; the host zero-fills.
    #[serde(default)]
    pub pad_m_to: Option<usize>,
    /// Pad the reduction dimension (k) to this size; the host zero-fills.
    #[serde(default)]
    pub pad_k_to: Option<usize>,
    /// Pad the output-column dimension (n / vocab / kv_len) to this size.
    #[serde(default)]
    pub pad_n_to: Option<usize>,
}

fn default_depth() -> usize {
    2
}

impl Tiling {
    pub fn cores(&self) -> usize {
        self.columns * self.rows
    }
}

/// One entry of a `kernel-specs/*.toml` file: one kernel of one shape on one device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KernelSpec {
    /// Unique over all files; also the directory name under `generated/`.
    pub name: String,
    pub family: Family,
    /// The TOML file the entry came from (as given to `load_dir`, joined with the file name).
    pub file: PathBuf,
    /// 0-based position of the entry in its file.
    pub index: usize,
    pub device: Device,
    pub dtype: Dtype,
    pub op: Op,
    pub tiling: Tiling,
    /// Free text for people; part of the canonical form like everything else in the entry.
    pub description: Option<String>,
}

impl KernelSpec {
    /// `kernel-specs/matmul.toml: entry "enc_fc1"`, the prefix of every message about this entry.
    pub fn origin(&self) -> String {
        format!("{}: entry \"{}\"", self.file.display(), self.name)
    }

    /// Row dimension after padding.
    pub fn padded_m(&self) -> usize {
        let m = family::def(self.op.family()).rows(&self.op);
        self.tiling.pad_m_to.unwrap_or(m).max(m)
    }
}

// ---------------------------------------------------------------------------------------------
// File format. Each family file is `[[kernel]]` tables; common keys plus the family's shape keys
// (declared with `entry!` in `family/<name>.rs`) sit directly in the table, the tiling in
// `[kernel.tiling]`.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File<E> {
    #[serde(default = "Vec::new")]
    kernel: Vec<E>,
}

/// One `[[kernel]]` table of a family file, turned into a spec.
pub(crate) trait Entry {
    fn into_spec(self, family: Family, file: &Path, index: usize) -> KernelSpec;
}

/// Defines a family's `[[kernel]]` table: the common keys (name, device, dtype, description,
/// tiling) then the family's shape keys, and how they become its `Op`:
/// `entry!(Entry { m: usize, #[serde(default)] bias: bool } => |e| Op::Matmul { .. });`
macro_rules! entry {
    ($name:ident { $($(#[$attr:meta])* $field:ident : $ty:ty),* $(,)? } => |$e:ident| $op:expr) => {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct $name {
            name: String,
            device: $crate::Device,
            dtype: $crate::Dtype,
            #[serde(default)]
            description: Option<String>,
            tiling: $crate::Tiling,
            $( $(#[$attr])* $field: $ty, )*
        }

        impl $crate::spec::Entry for $name {
            fn into_spec(
                self,
                family: $crate::Family,
                file: &std::path::Path,
                index: usize,
            ) -> $crate::KernelSpec {
                let $e = &self;
                let op = $op;
                $crate::KernelSpec {
                    name: self.name,
                    family,
                    file: file.to_path_buf(),
                    index,
                    device: self.device,
                    dtype: self.dtype,
                    op,
                    tiling: self.tiling,
                    description: self.description,
                }
            }
        }
    };
}
pub(crate) use entry;

/// The entries of a family file whose tables are `E`.
pub(crate) fn parse_as<E: Entry + for<'de> Deserialize<'de>>(
    family: Family,
    file: &Path,
    text: &str,
) -> Result<Vec<KernelSpec>, SpecError> {
    let parsed: File<E> = toml::from_str(text).map_err(|e| toml_error(file, text, &e))?;
    Ok(parsed
        .kernel
        .into_iter()
        .enumerate()
        .map(|(i, e)| e.into_spec(family, file, i))
        .collect())
}

/// Turns a toml error into `file:line:col: message (entry "name")`.
fn toml_error(file: &Path, text: &str, err: &toml::de::Error) -> SpecError {
    let offset = err.span().map(|s| s.start);
    let entry = offset.and_then(|o| entry_name_before(text, o));
    let (line, column) = offset.map_or((0, 0), |o| line_col(text, o));
    SpecError::Toml {
        file: file.to_path_buf(),
        line,
        column,
        entry,
        message: err.message().to_string(),
    }
}

/// 1-based line and column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// The `name = "..."` of the `[[kernel]]` table that contains `offset`, if it can be found.
fn entry_name_before(text: &str, offset: usize) -> Option<String> {
    let offset = offset.min(text.len());
    let start = text[..offset].rfind("[[kernel]]")?;
    let end = text[start + 10..]
        .find("[[kernel]]")
        .map_or(text.len(), |p| start + 10 + p);
    text[start..end].lines().find_map(|l| {
        let l = l.trim();
        let rest = l
            .strip_prefix("name")?
            .trim_start()
            .strip_prefix('=')?
            .trim();
        Some(rest.trim_matches('"').to_string())
    })
}

/// Parses one family file's text. `file` is used for messages and stored in each spec.
pub fn parse_file(file: &Path, text: &str) -> Result<Vec<KernelSpec>, SpecError> {
    let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    let family = Family::from_stem(stem).ok_or_else(|| SpecError::UnknownFamily {
        file: file.to_path_buf(),
        stem: stem.to_string(),
    })?;
    let specs = family::def(family).parse(file, text)?;
    for s in &specs {
        validate_name(s)?;
    }
    Ok(specs)
}

/// Names become directory names and MLIR symbols: keep them to `[a-z0-9_]`, starting with a letter.
fn validate_name(s: &KernelSpec) -> Result<(), SpecError> {
    let ok = s
        .name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase())
        && s.name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(SpecError::BadName {
            file: s.file.clone(),
            name: s.name.clone(),
        })
    }
}
