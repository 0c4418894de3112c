//! Whisper checkpoints: CTranslate2 (`model.bin`) and Hugging Face (`model.safetensors`).
//!
//! Both formats are memory-mapped and exposed under the Hugging Face tensor names
//! (`model.encoder.layers.0.self_attn.q_proj.weight`, …) as `f32`. Conversion (f16/bf16 to f32,
//! int8/int16 dequantisation, splitting CTranslate2's fused QKV and cross-attention KV) happens
//! lazily in [`Checkpoint::get`]/[`Checkpoint::take`], so only the mapped file and the tensors
//! the caller currently holds occupy memory.

mod config;
mod ct2;
mod safetensors;
mod snapshot;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

pub use config::{GenerationConfig, ModelDims};

/// A dense row-major `f32` tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

impl Tensor {
    /// Number of elements (product of the shape).
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// On-disk format of a checkpoint directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// CTranslate2: `model.bin` + `config.json` + `vocabulary.txt`/`tokenizer.json`.
    CTranslate2,
    /// Hugging Face transformers: `model.safetensors` + `config.json` (+ `generation_config.json`).
    HuggingFace,
}

#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    #[error(
        "model directory {} does not exist: fetch a model with `cargo xtask fetch-model NAME` \
         (NAME: base, tiny.en) or pass the path of a checkpoint directory",
        dir.display()
    )]
    MissingDir { dir: PathBuf },
    #[error(
        "{} is not a Whisper checkpoint: it has neither model.bin (CTranslate2) nor \
         model.safetensors (Hugging Face); fetch one with `cargo xtask fetch-model NAME` \
         (NAME: base, tiny.en)",
        dir.display()
    )]
    NoModelFile { dir: PathBuf },
    #[error("{} is missing ({what}); re-fetch the model with `cargo xtask fetch-model NAME`", path.display())]
    MissingFile { path: PathBuf, what: &'static str },
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{} is truncated or corrupt: reading {what} at byte {offset} needs {need} bytes but the \
         file has {len} bytes; delete the model directory and fetch it again with \
         `cargo xtask fetch-model NAME`",
        path.display()
    )]
    Truncated {
        path: PathBuf,
        what: String,
        offset: u64,
        need: u64,
        len: u64,
    },
    #[error("{} is corrupt: {msg}; delete the model directory and fetch it again with `cargo xtask fetch-model NAME`", path.display())]
    Corrupt { path: PathBuf, msg: String },
    #[error("{}: tensor {tensor} has data type {dtype}, which this loader does not support (supported: float32, float16, bfloat16, int8, int16)", path.display())]
    UnknownDtype {
        path: PathBuf,
        tensor: String,
        dtype: String,
    },
    #[error("{}: {msg}", path.display())]
    Config { path: PathBuf, msg: String },
    #[error("{}: no tensor {name} in this checkpoint", path.display())]
    MissingTensor { path: PathBuf, name: String },
    #[error("{}: tensor {name} was already taken from the checkpoint", path.display())]
    AlreadyTaken { path: PathBuf, name: String },
    #[error(
        "{} changed while the model was being loaded ({detail}): another process is writing the \
         model directory (a fetch or a copy?); wait for it to finish and load the model again",
        path.display()
    )]
    Changed { path: PathBuf, detail: String },
}

/// Element type of a stored tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DType {
    F32,
    F16,
    BF16,
    I8,
    I16,
    I32,
}

impl DType {
    pub(crate) fn size(self) -> usize {
        match self {
            DType::F32 | DType::I32 => 4,
            DType::F16 | DType::BF16 | DType::I16 => 2,
            DType::I8 => 1,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            DType::F32 => "float32",
            DType::F16 => "float16",
            DType::BF16 => "bfloat16",
            DType::I8 => "int8",
            DType::I16 => "int16",
            DType::I32 => "int32",
        }
    }

    fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F16 | DType::BF16)
    }
}

/// Quantisation scale of a CTranslate2 int8/int16 variable: `x = q / scale[e / depth]` where
/// `e` is the element index in the whole variable (one scale per output row, or one in all).
#[derive(Clone, Debug)]
pub(crate) struct Scale {
    pub values: Vec<f32>,
    pub depth: usize,
}

/// Where the elements of one exposed tensor live in the mapped file.
#[derive(Clone, Debug)]
pub(crate) struct Slot {
    /// Shape of the exposed tensor (after any split).
    pub shape: Vec<usize>,
    pub dtype: DType,
    /// Byte offset of the whole stored variable's data in the file.
    pub offset: usize,
    /// First element of this tensor within the stored variable (non-zero for split parts).
    pub elem_start: usize,
    /// Name of the stored variable (for error messages).
    pub source: String,
    pub scale: Option<Scale>,
}

impl Slot {
    fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// A loaded checkpoint: dims, generation config and lazily converted tensors.
pub struct Checkpoint {
    pub dims: ModelDims,
    pub generation: GenerationConfig,
    pub dir: PathBuf,
    pub format: Format,
    /// The weights file (model.bin or model.safetensors).
    pub file: PathBuf,
    mmap: Mmap,
    slots: BTreeMap<String, Slot>,
    taken: BTreeSet<String>,
}

impl std::fmt::Debug for Checkpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checkpoint")
            .field("dir", &self.dir)
            .field("format", &self.format)
            .field("dims", &self.dims)
            .field("tensors", &self.slots.len())
            .finish()
    }
}

impl Checkpoint {
    /// Loads the checkpoint in `dir`, detecting its format from the files present.
    pub fn load(dir: &Path) -> Result<Checkpoint, WeightsError> {
        Self::load_observed(dir, || {})
    }

    /// [`Checkpoint::load`], calling `after_read` once everything is read and before the files
    /// are checked for changes (tests change a file there).
    pub(crate) fn load_observed(
        dir: &Path,
        after_read: impl FnOnce(),
    ) -> Result<Checkpoint, WeightsError> {
        let before = snapshot::Snapshot::take(dir);
        let result = Self::load_unchecked(dir);
        after_read();
        // A change wins over the load's own outcome: an error caused by a half-written file is
        // reported as what it is, with the fix (retry).
        before.verify()?;
        result
    }

    fn load_unchecked(dir: &Path) -> Result<Checkpoint, WeightsError> {
        if !dir.is_dir() {
            return Err(WeightsError::MissingDir {
                dir: dir.to_path_buf(),
            });
        }
        let ct2_file = dir.join("model.bin");
        let hf_file = dir.join("model.safetensors");
        if ct2_file.is_file() {
            ct2::load(dir, &ct2_file)
        } else if hf_file.is_file() {
            safetensors::load(dir, &hf_file)
        } else {
            Err(WeightsError::NoModelFile {
                dir: dir.to_path_buf(),
            })
        }
    }

    /// Names (Hugging Face convention) of the tensors not yet taken, sorted.
    pub fn names(&self) -> Vec<String> {
        self.slots
            .keys()
            .filter(|n| !self.taken.contains(*n))
            .cloned()
            .collect()
    }

    /// True if `name` is present and not yet taken.
    pub fn contains(&self, name: &str) -> bool {
        self.slots.contains_key(name) && !self.taken.contains(name)
    }

    /// Shape of tensor `name` without converting it.
    pub fn shape(&self, name: &str) -> Option<&[usize]> {
        self.slots.get(name).map(|s| s.shape.as_slice())
    }

    /// Converts tensor `name` to `f32` (a fresh copy each call).
    pub fn get(&self, name: &str) -> Result<Tensor, WeightsError> {
        if self.taken.contains(name) {
            return Err(WeightsError::AlreadyTaken {
                path: self.file.clone(),
                name: name.to_string(),
            });
        }
        let slot = self
            .slots
            .get(name)
            .ok_or_else(|| WeightsError::MissingTensor {
                path: self.file.clone(),
                name: name.to_string(),
            })?;
        let data = decode(&self.mmap, slot, &self.file)?;
        Ok(Tensor {
            shape: slot.shape.clone(),
            data,
        })
    }

    /// Converts tensor `name` to `f32` and marks it as consumed: a second `take` (or `get`) of the
    /// same name is an error, which catches a model that wires one tensor twice.
    pub fn take(&mut self, name: &str) -> Result<Tensor, WeightsError> {
        let t = self.get(name)?;
        self.taken.insert(name.to_string());
        Ok(t)
    }

    fn new(
        dir: &Path,
        file: &Path,
        format: Format,
        mmap: Mmap,
        slots: BTreeMap<String, Slot>,
        dims: ModelDims,
        generation: GenerationConfig,
    ) -> Checkpoint {
        Checkpoint {
            dims,
            generation,
            dir: dir.to_path_buf(),
            format,
            file: file.to_path_buf(),
            mmap,
            slots,
            taken: BTreeSet::new(),
        }
    }
}

/// Maps `path` read-only.
pub(crate) fn map_file(path: &Path) -> Result<Mmap, WeightsError> {
    let io = |source| WeightsError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io)?;
    // SAFETY: the mapping is read-only; the model files are not modified while loaded (the fetch
    // code only ever renames complete directories into place, never rewrites files in them).
    unsafe { Mmap::map(&file) }.map_err(io)
}

/// Decodes `count` elements starting at element `start` of a variable stored at `offset`.
pub(crate) fn decode_raw(
    bytes: &[u8],
    dtype: DType,
    offset: usize,
    start: usize,
    count: usize,
) -> Vec<f32> {
    let size = dtype.size();
    let b = &bytes[offset + start * size..offset + (start + count) * size];
    match dtype {
        DType::F32 => b
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        DType::F16 => b
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        DType::BF16 => b
            .chunks_exact(2)
            .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        DType::I8 => b.iter().map(|&v| v as i8 as f32).collect(),
        DType::I16 => b
            .chunks_exact(2)
            .map(|c| i16::from_le_bytes([c[0], c[1]]) as f32)
            .collect(),
        DType::I32 => b
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f32)
            .collect(),
    }
}

fn decode(bytes: &[u8], slot: &Slot, file: &Path) -> Result<Vec<f32>, WeightsError> {
    let count = slot.numel();
    let mut data = decode_raw(bytes, slot.dtype, slot.offset, slot.elem_start, count);
    match (&slot.scale, slot.dtype.is_float()) {
        (None, true) => {}
        (Some(scale), false) => {
            // Same arithmetic as CTranslate2's dequantize: q * (1 / scale).
            for (i, v) in data.iter_mut().enumerate() {
                let row = (slot.elem_start + i) / scale.depth;
                *v *= 1.0 / scale.values[row];
            }
        }
        (Some(_), true) => {
            return Err(WeightsError::Corrupt {
                path: file.to_path_buf(),
                msg: format!(
                    "variable {} is {} but has a quantisation scale",
                    slot.source,
                    slot.dtype.name()
                ),
            })
        }
        (None, false) => {
            return Err(WeightsError::Corrupt {
                path: file.to_path_buf(),
                msg: format!(
                    "variable {} is {} but has no quantisation scale ({}_scale)",
                    slot.source,
                    slot.dtype.name(),
                    slot.source
                ),
            })
        }
    }
    Ok(data)
}
