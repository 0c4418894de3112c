//! CTranslate2 `model.bin` reader (binary versions 1 to 6, `WhisperSpec`).
//!
//! Layout (little-endian): `u32` binary version; from version 2 the spec name (string) and the spec
//! revision (`u32`); `u32` variable count, then per variable its name (string), `u8` rank, rank ×
//! `u32` dims, and either (version >= 4) `u8` dtype id + `u32` byte count or (older) `u8` item size +
//! `u32` element count, followed by the raw data; from version 3 a `u32` alias count and
//! (alias, target) string pairs. Strings are a `u16` length that counts a trailing NUL.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use super::config::{ct2_generation, dims_from_slots};
use super::{decode_raw, map_file, Checkpoint, DType, Format, Scale, Slot, WeightsError};

const MAX_BINARY_VERSION: u32 = 6;
/// The smallest variable record: an empty name (a 2-byte length and its NUL), rank 0, a dtype
/// or item-size byte and a 4-byte count.
const MIN_VAR_BYTES: usize = 9;
/// CTranslate2's scale for int16 variables saved without one.
const GLOBAL_INT16_SCALE: f32 = 1000.0;

struct Var {
    shape: Vec<usize>,
    dtype: DType,
    offset: usize,
}

impl Var {
    fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    path: &'a Path,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &dyn Fn() -> String) -> Result<&'a [u8], WeightsError> {
        match self.pos.checked_add(n) {
            Some(end) if end <= self.bytes.len() => {
                let s = &self.bytes[self.pos..end];
                self.pos = end;
                Ok(s)
            }
            _ => Err(WeightsError::Truncated {
                path: self.path.to_path_buf(),
                what: what(),
                offset: self.pos as u64,
                need: n as u64,
                len: self.bytes.len() as u64,
            }),
        }
    }

    fn u8(&mut self, what: &dyn Fn() -> String) -> Result<u8, WeightsError> {
        Ok(self.take(1, what)?[0])
    }

    fn u16(&mut self, what: &dyn Fn() -> String) -> Result<u16, WeightsError> {
        let b = self.take(2, what)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self, what: &dyn Fn() -> String) -> Result<u32, WeightsError> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn string(&mut self, what: &dyn Fn() -> String) -> Result<String, WeightsError> {
        let start = self.pos;
        let len = self.u16(what)? as usize;
        if len == 0 {
            return Err(self.corrupt(format!("empty string at byte {start} ({})", what())));
        }
        let b = self.take(len, what)?;
        let s = &b[..len - 1];
        String::from_utf8(s.to_vec())
            .map_err(|_| self.corrupt(format!("string at byte {start} is not UTF-8 ({})", what())))
    }

    fn corrupt(&self, msg: String) -> WeightsError {
        WeightsError::Corrupt {
            path: self.path.to_path_buf(),
            msg,
        }
    }
}

fn dtype_from_id(id: u8) -> Option<DType> {
    Some(match id {
        0 => DType::F32,
        1 => DType::I8,
        2 => DType::I16,
        3 => DType::I32,
        4 => DType::F16,
        5 => DType::BF16,
        _ => return None,
    })
}

struct Ct2Model {
    vars: HashMap<String, Var>,
    aliases: HashMap<String, String>,
}

fn parse(bytes: &[u8], path: &Path) -> Result<Ct2Model, WeightsError> {
    let mut r = Reader {
        bytes,
        pos: 0,
        path,
    };
    let version = r.u32(&|| "the binary version".into())?;
    if version == 0 || version > MAX_BINARY_VERSION {
        return Err(r.corrupt(format!(
            "binary version {version} is not a CTranslate2 model.bin this loader reads (1..={MAX_BINARY_VERSION})"
        )));
    }
    if version >= 2 {
        let spec = r.string(&|| "the spec name".into())?;
        let _revision = r.u32(&|| "the spec revision".into())?;
        if spec != "WhisperSpec" {
            return Err(r.corrupt(format!(
                "the model is a CTranslate2 {spec}, not a Whisper model (WhisperSpec)"
            )));
        }
    }
    let n_vars = r.u32(&|| "the variable count".into())?;
    // A declared count is checked against the bytes left before anything is allocated for it:
    // a 100-byte file must not reserve room for 4 billion variables.
    let left = bytes.len() - r.pos;
    if n_vars as usize > left / MIN_VAR_BYTES {
        return Err(WeightsError::Truncated {
            path: path.to_path_buf(),
            what: format!("{n_vars} variables (each at least {MIN_VAR_BYTES} bytes)"),
            offset: r.pos as u64,
            need: u64::from(n_vars) * MIN_VAR_BYTES as u64,
            len: bytes.len() as u64,
        });
    }
    let mut vars = HashMap::with_capacity(n_vars as usize);
    for i in 0..n_vars {
        let name = r.string(&|| format!("the name of variable {i}"))?;
        let ctx = |field: &str| format!("the {field} of variable {name}");
        let rank = r.u8(&|| ctx("rank"))? as usize;
        let mut shape = Vec::with_capacity(rank);
        for _ in 0..rank {
            shape.push(r.u32(&|| ctx("dimensions"))? as usize);
        }
        let too_big = || WeightsError::Corrupt {
            path: path.to_path_buf(),
            msg: format!("variable {name} has shape {shape:?}, more elements than any file holds"),
        };
        let numel = shape
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(d))
            .ok_or_else(too_big)?;
        let (dtype, nbytes) = if version >= 4 {
            let id = r.u8(&|| ctx("dtype"))?;
            let nbytes = r.u32(&|| ctx("byte count"))? as usize;
            let dtype = dtype_from_id(id).ok_or_else(|| WeightsError::UnknownDtype {
                path: path.to_path_buf(),
                tensor: name.clone(),
                dtype: format!("id {id}"),
            })?;
            (dtype, nbytes)
        } else {
            let item = r.u8(&|| ctx("item size"))?;
            let count = r.u32(&|| ctx("element count"))? as usize;
            let dtype = match item {
                4 => DType::F32,
                2 => DType::I16,
                1 => DType::I8,
                _ => {
                    return Err(WeightsError::UnknownDtype {
                        path: path.to_path_buf(),
                        tensor: name.clone(),
                        dtype: format!("item size {item}"),
                    })
                }
            };
            (dtype, count.checked_mul(item as usize).ok_or_else(too_big)?)
        };
        let need = numel.checked_mul(dtype.size()).ok_or_else(too_big)?;
        if nbytes != need {
            return Err(r.corrupt(format!(
                "variable {name} claims {nbytes} bytes but shape {shape:?} of {} needs {need}",
                dtype.name(),
            )));
        }
        let offset = r.pos;
        r.take(nbytes, &|| ctx("data"))?;
        vars.insert(
            name,
            Var {
                shape,
                dtype,
                offset,
            },
        );
    }
    let mut aliases = HashMap::new();
    if version >= 3 {
        let n = r.u32(&|| "the alias count".into())?;
        for i in 0..n {
            let alias = r.string(&|| format!("alias {i}"))?;
            let target = r.string(&|| format!("the target of alias {alias}"))?;
            aliases.insert(alias, target);
        }
    }
    if r.pos != bytes.len() {
        return Err(r.corrupt(format!(
            "{} unexpected bytes after the last record (the file should end at byte {})",
            bytes.len() - r.pos,
            r.pos
        )));
    }
    Ok(Ct2Model { vars, aliases })
}

impl Ct2Model {
    /// Follows aliases (a few hops at most) to the stored variable.
    fn var(&self, name: &str) -> Option<(&str, &Var)> {
        let mut cur = name;
        for _ in 0..8 {
            if let Some((k, v)) = self.vars.get_key_value(cur) {
                return Some((k.as_str(), v));
            }
            cur = self.aliases.get(cur)?;
        }
        None
    }

    fn resolve(&self, name: &str) -> Option<&str> {
        self.var(name).map(|(k, _)| k)
    }
}

/// Which part of a CTranslate2 variable an exposed tensor is: all of it, or the `k`-th of `n`
/// equal blocks along dim 0 (fused QKV / KV).
#[derive(Clone, Copy)]
enum Part {
    Whole,
    Rows(usize, usize),
}

struct Builder<'a> {
    model: &'a Ct2Model,
    bytes: &'a [u8],
    path: &'a Path,
    slots: BTreeMap<String, Slot>,
}

impl Builder<'_> {
    fn missing(&self, name: &str) -> WeightsError {
        WeightsError::MissingTensor {
            path: self.path.to_path_buf(),
            name: format!("{name} (CTranslate2 variable)"),
        }
    }

    fn corrupt(&self, msg: String) -> WeightsError {
        WeightsError::Corrupt {
            path: self.path.to_path_buf(),
            msg,
        }
    }

    fn scale(&self, var_name: &str, var: &Var) -> Result<Option<Scale>, WeightsError> {
        if matches!(var.dtype, DType::F32 | DType::F16 | DType::BF16) {
            return Ok(None);
        }
        let numel = var.numel();
        let Some((scale_name, s)) = self.model.var(&format!("{var_name}_scale")) else {
            return match var.dtype {
                DType::I16 => Ok(Some(Scale {
                    values: vec![GLOBAL_INT16_SCALE],
                    depth: numel.max(1),
                })),
                DType::I32 => Err(WeightsError::UnknownDtype {
                    path: self.path.to_path_buf(),
                    tensor: var_name.to_string(),
                    dtype: "int32 (as a weight)".into(),
                }),
                _ => Err(self.corrupt(format!(
                    "{} variable {var_name} has no scale {var_name}_scale",
                    var.dtype.name()
                ))),
            };
        };
        if !matches!(s.dtype, DType::F32 | DType::F16 | DType::BF16) {
            return Err(self.corrupt(format!(
                "scale {scale_name} is {}, expected a float type",
                s.dtype.name()
            )));
        }
        let values = decode_raw(self.bytes, s.dtype, s.offset, 0, s.numel());
        if values.is_empty() || !numel.is_multiple_of(values.len()) {
            return Err(self.corrupt(format!(
                "scale {scale_name} has {} values for {numel} elements of {var_name}",
                values.len()
            )));
        }
        if values.iter().any(|&v| v == 0.0 || !v.is_finite()) {
            return Err(self.corrupt(format!(
                "scale {scale_name} holds zero or non-finite values"
            )));
        }
        Ok(Some(Scale {
            depth: numel / values.len(),
            values,
        }))
    }

    fn slot(&self, ct2: &str, part: Part) -> Result<Slot, WeightsError> {
        let (real, var) = self.model.var(ct2).ok_or_else(|| self.missing(ct2))?;
        let scale = self.scale(real, var)?;
        let (shape, elem_start) = match part {
            Part::Whole => (var.shape.clone(), 0),
            Part::Rows(k, n) => {
                let rows = var.shape.first().copied().unwrap_or(0);
                if rows == 0 || !rows.is_multiple_of(n) {
                    return Err(self.corrupt(format!(
                        "fused variable {ct2} has shape {:?}, not {n} equal blocks",
                        var.shape
                    )));
                }
                let inner: usize = var.shape[1..].iter().product();
                let mut shape = var.shape.clone();
                shape[0] = rows / n;
                (shape, k * (rows / n) * inner)
            }
        };
        Ok(Slot {
            shape,
            dtype: var.dtype,
            offset: var.offset,
            elem_start,
            source: real.to_string(),
            scale,
        })
    }

    fn add(&mut self, hf: String, ct2: &str, part: Part) -> Result<(), WeightsError> {
        let slot = self.slot(ct2, part)?;
        self.slots.insert(hf, slot);
        Ok(())
    }

    /// `gamma`/`beta` -> `weight`/`bias`.
    fn layer_norm(&mut self, hf: &str, ct2: &str) -> Result<(), WeightsError> {
        self.add(format!("{hf}.weight"), &format!("{ct2}/gamma"), Part::Whole)?;
        self.add(format!("{hf}.bias"), &format!("{ct2}/beta"), Part::Whole)
    }

    fn linear(&mut self, hf: &str, ct2: &str, part: Part) -> Result<(), WeightsError> {
        self.add(format!("{hf}.weight"), &format!("{ct2}/weight"), part)?;
        self.add(format!("{hf}.bias"), &format!("{ct2}/bias"), part)
    }

    /// The K projection: Whisper's has no bias, so CTranslate2 stores zeros there. The bias is
    /// exposed only if it is not all zero (then the model must use it).
    fn key(&mut self, hf: &str, ct2: &str, part: Part) -> Result<(), WeightsError> {
        self.add(format!("{hf}.weight"), &format!("{ct2}/weight"), part)?;
        let bias = self.slot(&format!("{ct2}/bias"), part)?;
        let values = super::decode(self.bytes, &bias, self.path)?;
        if values.iter().any(|&v| v != 0.0) {
            self.slots.insert(format!("{hf}.bias"), bias);
        }
        Ok(())
    }

    fn self_attention(&mut self, hf: &str, ct2: &str) -> Result<(), WeightsError> {
        self.layer_norm(
            &format!("{hf}.self_attn_layer_norm"),
            &format!("{ct2}/self_attention/layer_norm"),
        )?;
        let fused = format!("{ct2}/self_attention/linear_0");
        self.linear(&format!("{hf}.self_attn.q_proj"), &fused, Part::Rows(0, 3))?;
        self.key(&format!("{hf}.self_attn.k_proj"), &fused, Part::Rows(1, 3))?;
        self.linear(&format!("{hf}.self_attn.v_proj"), &fused, Part::Rows(2, 3))?;
        self.linear(
            &format!("{hf}.self_attn.out_proj"),
            &format!("{ct2}/self_attention/linear_1"),
            Part::Whole,
        )
    }

    fn ffn(&mut self, hf: &str, ct2: &str) -> Result<(), WeightsError> {
        self.layer_norm(
            &format!("{hf}.final_layer_norm"),
            &format!("{ct2}/ffn/layer_norm"),
        )?;
        self.linear(
            &format!("{hf}.fc1"),
            &format!("{ct2}/ffn/linear_0"),
            Part::Whole,
        )?;
        self.linear(
            &format!("{hf}.fc2"),
            &format!("{ct2}/ffn/linear_1"),
            Part::Whole,
        )
    }

    fn count_layers(&self, side: &str) -> usize {
        (0..)
            .take_while(|i| {
                self.model
                    .var(&format!("{side}/layer_{i}/ffn/linear_0/weight"))
                    .is_some()
            })
            .count()
    }

    fn build(&mut self) -> Result<(usize, usize), WeightsError> {
        for conv in ["conv1", "conv2"] {
            self.linear(
                &format!("model.encoder.{conv}"),
                &format!("encoder/{conv}"),
                Part::Whole,
            )?;
        }
        self.add(
            "model.encoder.embed_positions.weight".into(),
            "encoder/position_encodings/encodings",
            Part::Whole,
        )?;
        let n_enc = self.count_layers("encoder");
        for i in 0..n_enc {
            let hf = format!("model.encoder.layers.{i}");
            let ct2 = format!("encoder/layer_{i}");
            self.self_attention(&hf, &ct2)?;
            self.ffn(&hf, &ct2)?;
        }
        self.layer_norm("model.encoder.layer_norm", "encoder/layer_norm")?;

        self.add(
            "model.decoder.embed_tokens.weight".into(),
            "decoder/embeddings/weight",
            Part::Whole,
        )?;
        self.add(
            "model.decoder.embed_positions.weight".into(),
            "decoder/position_encodings/encodings",
            Part::Whole,
        )?;
        let n_dec = self.count_layers("decoder");
        for i in 0..n_dec {
            let hf = format!("model.decoder.layers.{i}");
            let ct2 = format!("decoder/layer_{i}");
            self.self_attention(&hf, &ct2)?;
            self.layer_norm(
                &format!("{hf}.encoder_attn_layer_norm"),
                &format!("{ct2}/attention/layer_norm"),
            )?;
            self.linear(
                &format!("{hf}.encoder_attn.q_proj"),
                &format!("{ct2}/attention/linear_0"),
                Part::Whole,
            )?;
            let kv = format!("{ct2}/attention/linear_1");
            self.key(&format!("{hf}.encoder_attn.k_proj"), &kv, Part::Rows(0, 2))?;
            self.linear(&format!("{hf}.encoder_attn.v_proj"), &kv, Part::Rows(1, 2))?;
            self.linear(
                &format!("{hf}.encoder_attn.out_proj"),
                &format!("{ct2}/attention/linear_2"),
                Part::Whole,
            )?;
            self.ffn(&hf, &ct2)?;
        }
        self.layer_norm("model.decoder.layer_norm", "decoder/layer_norm")?;
        // The output projection is normally an alias of the token embedding (tied, as in HF where
        // `proj_out` is absent); expose it only when it is a separate tensor.
        if let Some((real, _)) = self.model.var("decoder/projection/weight") {
            if Some(real) != self.model.resolve("decoder/embeddings/weight") {
                self.add(
                    "proj_out.weight".into(),
                    "decoder/projection/weight",
                    Part::Whole,
                )?;
            }
        }
        Ok((n_enc, n_dec))
    }

    /// Integer scalar such as `encoder/num_heads`.
    fn scalar(&self, name: &str) -> Result<Option<usize>, WeightsError> {
        let Some((_, v)) = self.model.var(name) else {
            return Ok(None);
        };
        if v.numel() != 1 {
            return Err(self.corrupt(format!("{name} is not a scalar: shape {:?}", v.shape)));
        }
        let x = decode_raw(self.bytes, v.dtype, v.offset, 0, 1)[0];
        if !(x >= 1.0 && x.fract() == 0.0) {
            return Err(self.corrupt(format!("{name} = {x} is not a positive integer")));
        }
        Ok(Some(x as usize))
    }
}

pub(crate) fn load(dir: &Path, file: &Path) -> Result<Checkpoint, WeightsError> {
    let mmap = map_file(file)?;
    let model = parse(&mmap, file)?;
    let mut b = Builder {
        model: &model,
        bytes: &mmap,
        path: file,
        slots: BTreeMap::new(),
    };
    b.build()?;
    let heads = |name: &str, state_of: &str| -> Result<usize, WeightsError> {
        if let Some(h) = b.scalar(name)? {
            return Ok(h);
        }
        // Older conversions lack the head count; every released Whisper uses 64-wide heads.
        let state = b.slots.get(state_of).map(|s| s.shape[0]).unwrap_or(0);
        tracing::warn!(
            "{}: no {name}; assuming 64-wide heads ({} heads)",
            file.display(),
            state / 64
        );
        Ok(state / 64)
    };
    let n_audio_head = heads("encoder/num_heads", "model.encoder.conv1.bias")?;
    let n_text_head = heads("decoder/num_heads", "model.decoder.layer_norm.weight")?;
    let slots = std::mem::take(&mut b.slots);
    let dims = dims_from_slots(&slots, file, n_audio_head, n_text_head)?;
    let generation = ct2_generation(dir, &dims)?;
    check_vocabulary(dir, &dims)?;
    Ok(Checkpoint::new(
        dir,
        file,
        Format::CTranslate2,
        mmap,
        slots,
        dims,
        generation,
    ))
}

/// A vocabulary file must exist next to model.bin, and vocabulary.txt must match the embedding.
fn check_vocabulary(dir: &Path, dims: &super::ModelDims) -> Result<(), WeightsError> {
    let vocab: PathBuf = dir.join("vocabulary.txt");
    if vocab.is_file() {
        let text = std::fs::read_to_string(&vocab).map_err(|source| WeightsError::Io {
            path: vocab.clone(),
            source,
        })?;
        let n = text.lines().count();
        if n != dims.n_vocab {
            return Err(WeightsError::Corrupt {
                path: vocab,
                msg: format!(
                    "{n} tokens, but the model's embedding has {} rows",
                    dims.n_vocab
                ),
            });
        }
        return Ok(());
    }
    if dir.join("tokenizer.json").is_file() {
        return Ok(());
    }
    Err(WeightsError::MissingFile {
        path: vocab,
        what: "CTranslate2 vocabulary: vocabulary.txt or tokenizer.json",
    })
}
