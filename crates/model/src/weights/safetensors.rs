//! Hugging Face `model.safetensors` + `config.json` (+ `generation_config.json`).

use std::collections::BTreeMap;
use std::path::Path;

use ::safetensors::tensor::{Dtype, SafeTensors};

use super::config::{dims_from_slots, hf_generation, opt_usize, read_json};
use super::{map_file, Checkpoint, DType, Format, Slot, WeightsError};

pub(crate) fn load(dir: &Path, file: &Path) -> Result<Checkpoint, WeightsError> {
    let config_path = dir.join("config.json");
    if !config_path.is_file() {
        return Err(WeightsError::MissingFile {
            path: config_path,
            what: "Hugging Face model config",
        });
    }
    let config = read_json(&config_path)?;
    let mmap = map_file(file)?;
    let (header_len, metadata) =
        SafeTensors::read_metadata(&mmap).map_err(|e| WeightsError::Corrupt {
            path: file.to_path_buf(),
            msg: format!("not a valid safetensors file ({e})"),
        })?;
    let data_start = 8 + header_len;
    let mut slots = BTreeMap::new();
    for (name, info) in metadata.tensors() {
        let dtype = match info.dtype {
            Dtype::F32 => DType::F32,
            Dtype::F16 => DType::F16,
            Dtype::BF16 => DType::BF16,
            other => {
                return Err(WeightsError::UnknownDtype {
                    path: file.to_path_buf(),
                    tensor: name,
                    dtype: format!("{other:?}"),
                })
            }
        };
        // `WhisperModel` checkpoints lack the `model.` prefix of `WhisperForConditionalGeneration`.
        let hf = if name.starts_with("encoder.") || name.starts_with("decoder.") {
            format!("model.{name}")
        } else {
            name.clone()
        };
        slots.insert(
            hf,
            Slot {
                shape: info.shape.clone(),
                dtype,
                offset: data_start + info.data_offsets.0,
                elem_start: 0,
                source: name,
                scale: None,
            },
        );
    }
    let heads = |key: &str| {
        opt_usize(&config, key).ok_or_else(|| WeightsError::Config {
            path: config_path.clone(),
            msg: format!("`{key}` is missing; it gives the number of attention heads"),
        })
    };
    let dims = dims_from_slots(
        &slots,
        file,
        heads("encoder_attention_heads")?,
        heads("decoder_attention_heads")?,
    )?;
    for (key, have) in [
        ("encoder_layers", dims.n_audio_layer),
        ("decoder_layers", dims.n_text_layer),
        ("num_mel_bins", dims.n_mels),
        ("d_model", dims.n_audio_state),
        ("vocab_size", dims.n_vocab),
    ] {
        if let Some(want) = opt_usize(&config, key) {
            if want != have {
                return Err(WeightsError::Config {
                    path: config_path.clone(),
                    msg: format!(
                        "`{key}` is {want} but the weights in model.safetensors give {have}"
                    ),
                });
            }
        }
    }
    let generation = hf_generation(dir, &config, &dims)?;
    Ok(Checkpoint::new(
        dir,
        file,
        Format::HuggingFace,
        mmap,
        slots,
        dims,
        generation,
    ))
}
