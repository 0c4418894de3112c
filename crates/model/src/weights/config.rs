//! Model dimensions (from tensor shapes + config) and the generation config.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde_json::Value;

use super::{Slot, WeightsError};

/// Whisper's hyper-parameters, named as in openai-whisper's `ModelDimensions`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModelDims {
    pub n_mels: usize,
    pub n_vocab: usize,
    pub n_audio_ctx: usize,
    pub n_audio_state: usize,
    pub n_audio_head: usize,
    pub n_audio_layer: usize,
    pub n_text_ctx: usize,
    pub n_text_state: usize,
    pub n_text_head: usize,
    pub n_text_layer: usize,
}

impl ModelDims {
    /// openai-whisper's rule: multilingual vocabularies have at least 51865 tokens.
    pub fn is_multilingual(&self) -> bool {
        self.n_vocab >= 51865
    }
}

/// Decoding settings shipped with the checkpoint.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GenerationConfig {
    /// Tokens never sampled (non-speech symbols and special tokens).
    pub suppress_tokens: Vec<u32>,
    /// Tokens suppressed at the first sampled position (blank, end of text).
    pub begin_suppress_tokens: Vec<u32>,
    /// Language code (`en`, `de`, …) and its token id, ordered by id. Empty for English-only models.
    pub lang_to_id: Vec<(String, u32)>,
    /// Cross-attention heads used for word timestamps: (decoder layer, head).
    pub alignment_heads: Vec<(usize, usize)>,
    pub is_multilingual: bool,
    pub eot: Option<u32>,
    pub sot: Option<u32>,
    pub sot_prev: Option<u32>,
    pub no_timestamps: Option<u32>,
    pub transcribe: Option<u32>,
    pub translate: Option<u32>,
    pub max_initial_timestamp_index: Option<u32>,
}

pub(crate) fn read_json(path: &Path) -> Result<Value, WeightsError> {
    let text = std::fs::read_to_string(path).map_err(|source| WeightsError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|e| WeightsError::Config {
        path: path.to_path_buf(),
        msg: format!("invalid JSON: {e}"),
    })
}

fn bad(path: &Path, msg: String) -> WeightsError {
    WeightsError::Config {
        path: path.to_path_buf(),
        msg,
    }
}

fn ids(v: &Value, key: &str, path: &Path) -> Result<Vec<u32>, WeightsError> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| {
                x.as_u64()
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or_else(|| bad(path, format!("`{key}` must hold token ids, found {x}")))
            })
            .collect(),
        Some(other) => Err(bad(path, format!("`{key}` must be a list, found {other}"))),
    }
}

fn opt_id(v: &Value, key: &str) -> Option<u32> {
    v.get(key)
        .and_then(Value::as_u64)
        .and_then(|n| u32::try_from(n).ok())
}

pub(crate) fn opt_usize(v: &Value, key: &str) -> Option<usize> {
    v.get(key)
        .and_then(Value::as_u64)
        .and_then(|n| usize::try_from(n).ok())
}

fn alignment_heads(v: &Value, path: &Path) -> Result<Vec<(usize, usize)>, WeightsError> {
    let Some(a) = v.get("alignment_heads").and_then(Value::as_array) else {
        return Ok(Vec::new());
    };
    a.iter()
        .map(|pair| match pair.as_array().map(Vec::as_slice) {
            Some([l, h]) => match (l.as_u64(), h.as_u64()) {
                (Some(l), Some(h)) => Ok((l as usize, h as usize)),
                _ => Err(bad(path, format!("bad alignment head {pair}"))),
            },
            _ => Err(bad(path, format!("bad alignment head {pair}"))),
        })
        .collect()
}

/// `<|en|>` -> `en`.
fn lang_code(token: &str) -> Option<String> {
    let code = token.strip_prefix("<|")?.strip_suffix("|>")?;
    let ok = (2..=3).contains(&code.len()) && code.bytes().all(|b| b.is_ascii_lowercase());
    ok.then(|| code.to_string())
}

/// Token strings of a CTranslate2 directory: `vocabulary.txt` (one token a line, line n = id n),
/// else the added tokens of `tokenizer.json` (enough for the special tokens).
fn ct2_token_strings(dir: &Path) -> Result<HashMap<u32, String>, WeightsError> {
    let vocab = dir.join("vocabulary.txt");
    if vocab.is_file() {
        let text = std::fs::read_to_string(&vocab).map_err(|source| WeightsError::Io {
            path: vocab.clone(),
            source,
        })?;
        return Ok(text
            .lines()
            .enumerate()
            .map(|(i, l)| (i as u32, l.to_string()))
            .collect());
    }
    let tok = dir.join("tokenizer.json");
    if tok.is_file() {
        let v = read_json(&tok)?;
        let mut out = HashMap::new();
        for t in v
            .get("added_tokens")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let (Some(id), Some(content)) = (opt_id(t, "id"), t.get("content")) {
                if let Some(s) = content.as_str() {
                    out.insert(id, s.to_string());
                }
            }
        }
        return Ok(out);
    }
    Err(WeightsError::MissingFile {
        path: dir.join("vocabulary.txt"),
        what: "CTranslate2 vocabulary: vocabulary.txt or tokenizer.json",
    })
}

/// Generation config from a CTranslate2 `config.json` (`suppress_ids`, `suppress_ids_begin`,
/// `lang_ids`, `alignment_heads`); language codes are looked up in the vocabulary.
pub(crate) fn ct2_generation(
    dir: &Path,
    dims: &ModelDims,
) -> Result<GenerationConfig, WeightsError> {
    let path = dir.join("config.json");
    if !path.is_file() {
        return Err(WeightsError::MissingFile {
            path,
            what: "CTranslate2 model config",
        });
    }
    let v = read_json(&path)?;
    let is_multilingual = dims.is_multilingual();
    // English-only conversions still carry `lang_ids`, but those models never take a language
    // token, so no language is offered for them.
    let lang_to_id = if is_multilingual {
        let strings = ct2_token_strings(dir)?;
        ids(&v, "lang_ids", &path)?
            .into_iter()
            .map(|id| {
                strings
                    .get(&id)
                    .and_then(|s| lang_code(s))
                    .map(|code| (code, id))
                    .ok_or_else(|| {
                        bad(
                            &path,
                            format!("lang_ids holds {id}, which is not a language token"),
                        )
                    })
            })
            .collect::<Result<Vec<_>, _>>()?
    } else {
        Vec::new()
    };
    Ok(GenerationConfig {
        suppress_tokens: ids(&v, "suppress_ids", &path)?,
        begin_suppress_tokens: ids(&v, "suppress_ids_begin", &path)?,
        lang_to_id,
        alignment_heads: alignment_heads(&v, &path)?,
        is_multilingual,
        ..GenerationConfig::default()
    })
}

/// Generation config from Hugging Face `generation_config.json`, falling back to `config.json`.
pub(crate) fn hf_generation(
    dir: &Path,
    config: &Value,
    dims: &ModelDims,
) -> Result<GenerationConfig, WeightsError> {
    let gen_path = dir.join("generation_config.json");
    let cfg_path = dir.join("config.json");
    let (g, path) = if gen_path.is_file() {
        (read_json(&gen_path)?, gen_path)
    } else {
        (config.clone(), cfg_path)
    };
    let pick = |key: &str| -> Result<Vec<u32>, WeightsError> {
        let from_gen = ids(&g, key, &path)?;
        if from_gen.is_empty() {
            ids(config, key, &dir.join("config.json"))
        } else {
            Ok(from_gen)
        }
    };
    let is_multilingual = g
        .get("is_multilingual")
        .and_then(Value::as_bool)
        .unwrap_or_else(|| dims.is_multilingual());
    let mut lang_to_id = Vec::new();
    if is_multilingual {
        if let Some(map) = g.get("lang_to_id").and_then(Value::as_object) {
            for (tok, id) in map {
                let code = lang_code(tok)
                    .ok_or_else(|| bad(&path, format!("lang_to_id has a bad key {tok}")))?;
                let id = id
                    .as_u64()
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or_else(|| bad(&path, format!("lang_to_id[{tok}] is not a token id")))?;
                lang_to_id.push((code, id));
            }
            lang_to_id.sort_by_key(|(_, id)| *id);
        }
    }
    let task = g.get("task_to_id");
    Ok(GenerationConfig {
        suppress_tokens: pick("suppress_tokens")?,
        begin_suppress_tokens: pick("begin_suppress_tokens")?,
        lang_to_id,
        alignment_heads: alignment_heads(&g, &path)?,
        is_multilingual,
        eot: opt_id(&g, "eos_token_id").or_else(|| opt_id(config, "eos_token_id")),
        sot: opt_id(&g, "decoder_start_token_id")
            .or_else(|| opt_id(config, "decoder_start_token_id")),
        sot_prev: opt_id(&g, "prev_sot_token_id"),
        no_timestamps: opt_id(&g, "no_timestamps_token_id"),
        transcribe: task.and_then(|t| opt_id(t, "transcribe")),
        translate: task.and_then(|t| opt_id(t, "translate")),
        max_initial_timestamp_index: opt_id(&g, "max_initial_timestamp_index"),
    })
}

/// Number of consecutive layers `prefix.{i}.` present, counted from 0.
fn count_layers(slots: &BTreeMap<String, Slot>, prefix: &str) -> usize {
    (0..)
        .take_while(|i| {
            slots.contains_key(&format!("{prefix}.{i}.self_attn.q_proj.weight"))
                || slots.contains_key(&format!("{prefix}.{i}.fc1.weight"))
        })
        .count()
}

/// Dims from tensor shapes; head counts come from the format's own metadata.
pub(crate) fn dims_from_slots(
    slots: &BTreeMap<String, Slot>,
    file: &Path,
    n_audio_head: usize,
    n_text_head: usize,
) -> Result<ModelDims, WeightsError> {
    let shape = |name: &str, rank: usize| -> Result<&[usize], WeightsError> {
        let s = slots.get(name).ok_or_else(|| WeightsError::MissingTensor {
            path: file.to_path_buf(),
            name: name.to_string(),
        })?;
        if s.shape.len() != rank {
            return Err(WeightsError::Corrupt {
                path: file.to_path_buf(),
                msg: format!(
                    "{name} ({}) has shape {:?}, expected rank {rank}",
                    s.source, s.shape
                ),
            });
        }
        Ok(&s.shape)
    };
    let conv1 = shape("model.encoder.conv1.weight", 3)?;
    let enc_pos = shape("model.encoder.embed_positions.weight", 2)?;
    let emb = shape("model.decoder.embed_tokens.weight", 2)?;
    let dec_pos = shape("model.decoder.embed_positions.weight", 2)?;
    let dims = ModelDims {
        n_mels: conv1[1],
        n_vocab: emb[0],
        n_audio_ctx: enc_pos[0],
        n_audio_state: conv1[0],
        n_audio_head,
        n_audio_layer: count_layers(slots, "model.encoder.layers"),
        n_text_ctx: dec_pos[0],
        n_text_state: emb[1],
        n_text_head,
        n_text_layer: count_layers(slots, "model.decoder.layers"),
    };
    let corrupt = |msg: String| WeightsError::Corrupt {
        path: file.to_path_buf(),
        msg,
    };
    if enc_pos[1] != dims.n_audio_state || dec_pos[1] != dims.n_text_state {
        return Err(corrupt(format!(
            "positional embeddings {enc_pos:?}/{dec_pos:?} disagree with widths {}/{}",
            dims.n_audio_state, dims.n_text_state
        )));
    }
    if dims.n_audio_layer == 0 || dims.n_text_layer == 0 {
        return Err(corrupt("no encoder or decoder layers found".into()));
    }
    for (what, state, heads) in [
        ("audio", dims.n_audio_state, dims.n_audio_head),
        ("text", dims.n_text_state, dims.n_text_head),
    ] {
        if heads == 0 || !state.is_multiple_of(heads) {
            return Err(corrupt(format!(
                "{what} width {state} is not divisible by {heads} heads"
            )));
        }
    }
    Ok(dims)
}

#[cfg(test)]
mod tests {
    use super::lang_code;

    #[test]
    fn language_codes() {
        assert_eq!(lang_code("<|en|>").as_deref(), Some("en"));
        assert_eq!(lang_code("<|haw|>").as_deref(), Some("haw"));
        assert_eq!(lang_code("<|transcribe|>"), None);
        assert_eq!(lang_code("<|0.00|>"), None);
    }
}
