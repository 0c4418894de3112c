//! Content keys: the same audio transcribed with the same options by the same model has the
//! same key, and so the same output names, on every machine.
//!
//! key = hex sha256 of `audio sha256 \n canonical options JSON \n canonical model JSON`, where
//! canonical JSON has sorted object keys and no spaces.

use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use whisper_model::output::WriterOptions;
use whisper_model::{ComputeType, Numerics, TranscribeOptions};

use crate::error::Error;

/// Which weights, computed how: what besides the audio and the options decides a transcript.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelIdentity {
    /// The name it was asked for by (`tiny.en`, a directory name); not part of the key.
    pub name: String,
    /// sha256 over the checkpoint directory's files (see [`ModelIdentity::of_dir`]).
    pub sha256: String,
    pub numerics: String,
    pub compute_type: String,
}

impl ModelIdentity {
    /// Hashes every file of the checkpoint directory `dir` (recursively, sorted, hidden files
    /// left out): sha256 of the lines `relative/path\0<sha256 of the file>\n`.
    pub fn of_dir(
        name: &str,
        dir: &Path,
        numerics: Numerics,
        compute_type: ComputeType,
    ) -> Result<ModelIdentity, Error> {
        let err = |message: String| Error::Model {
            dir: dir.to_path_buf(),
            message,
        };
        let mut files = Vec::new();
        crate::store::walk(dir, "", &mut files).map_err(|e| err(e.to_string()))?;
        if files.is_empty() {
            return Err(err("the directory holds no files".into()));
        }
        files.sort();
        let mut all = Sha256::new();
        for rel in &files {
            let path = dir.join(rel);
            let file_hash =
                hash_file(&path).map_err(|e| err(format!("{}: {e}", path.display())))?;
            all.update(format!("{rel}\0{file_hash}\n").as_bytes());
        }
        Ok(ModelIdentity {
            name: name.to_string(),
            sha256: hex::encode(all.finalize()),
            numerics: match numerics {
                Numerics::F32 => "f32".into(),
                Numerics::Npu => "npu".into(),
            },
            compute_type: compute_type.to_string(),
        })
    }

    /// What of the model enters the key (not its name: the same weights under another name
    /// give the same transcripts).
    fn key_json(&self) -> Value {
        json!({"sha256": self.sha256, "numerics": self.numerics, "compute_type": self.compute_type})
    }
}

fn hash_file(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Every field of the options that decides a transcript, and the subtitle layout.
pub fn options_json(o: &TranscribeOptions, writer: &WriterOptions) -> Value {
    // Destructured without `..`: a new option fails to compile here until it is keyed.
    let TranscribeOptions {
        task,
        language,
        beam_size,
        best_of,
        patience,
        length_penalty,
        temperatures,
        compression_ratio_threshold,
        logprob_threshold,
        no_speech_threshold,
        condition_on_previous_text,
        redecode_prompt_copies,
        without_timestamps,
        min_tail_seconds,
        max_initial_timestamp,
        suppress_blank,
        seed,
        initial_prompt,
        vad,
        word_timestamps,
        prepend_punctuations,
        append_punctuations,
    } = o;
    let vad = vad.as_ref().map(|v| {
        json!({
            "threshold": float(v.threshold),
            "neg_threshold": v.neg_threshold.map(float),
            "min_speech_duration_ms": v.min_speech_duration_ms,
            "max_speech_duration_s": float(v.max_speech_duration_s),
            "min_silence_duration_ms": v.min_silence_duration_ms,
            "speech_pad_ms": v.speech_pad_ms,
        })
    });
    let WriterOptions {
        max_line_width,
        max_line_count,
        max_words_per_line,
        highlight_words,
    } = writer;
    json!({
        "task": task.name(),
        "language": language,
        "beam_size": beam_size,
        "best_of": best_of,
        "patience": float(*patience),
        "length_penalty": length_penalty.map(float),
        "temperatures": temperatures.iter().map(|t| float(*t)).collect::<Vec<_>>(),
        "compression_ratio_threshold": compression_ratio_threshold.map(float),
        "logprob_threshold": logprob_threshold.map(float),
        "no_speech_threshold": no_speech_threshold.map(float),
        "condition_on_previous_text": condition_on_previous_text,
        "redecode_prompt_copies": redecode_prompt_copies,
        "without_timestamps": without_timestamps,
        "min_tail_seconds": float(*min_tail_seconds),
        "max_initial_timestamp": float(*max_initial_timestamp),
        "suppress_blank": suppress_blank,
        "seed": seed,
        "initial_prompt": initial_prompt,
        "vad": vad,
        "word_timestamps": word_timestamps,
        "prepend_punctuations": prepend_punctuations,
        "append_punctuations": append_punctuations,
        "subtitles": {
            "max_line_width": max_line_width,
            "max_line_count": max_line_count,
            "max_words_per_line": max_words_per_line,
            "highlight_words": highlight_words,
        },
    })
}

/// An f32 as its shortest decimal (0.2, not 0.20000000298...); infinities as strings.
fn float(x: f32) -> Value {
    if x.is_finite() {
        let s = format!("{x}");
        serde_json::from_str(&s).unwrap_or(Value::String(s))
    } else {
        Value::String(format!("{x}"))
    }
}

/// JSON with sorted object keys and no whitespace, whatever serde_json's map order is.
pub fn canonical(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<_> = m.keys().collect();
            keys.sort();
            let fields: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{}:{}", Value::String(k.clone()), canonical(&m[k])))
                .collect();
            format!("{{{}}}", fields.join(","))
        }
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(canonical).collect::<Vec<_>>().join(",")
        ),
        other => other.to_string(),
    }
}

/// The output key of audio with sha256 `audio_sha256`, transcribed with `options` (from
/// [`options_json`]) by `model`.
pub fn output_key(audio_sha256: &str, options: &Value, model: &ModelIdentity) -> String {
    let text = format!(
        "{audio_sha256}\n{}\n{}",
        canonical(options),
        canonical(&model.key_json())
    );
    sha256_hex(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model() -> ModelIdentity {
        ModelIdentity {
            name: "m".into(),
            sha256: "00".into(),
            numerics: "f32".into(),
            compute_type: "f32".into(),
        }
    }

    #[test]
    fn canonical_json_sorts_keys_at_every_level() {
        let a: Value =
            serde_json::from_str(r#"{"b": 1, "a": {"d": [1, {"y": 2, "x": 1}], "c": null}}"#)
                .unwrap();
        assert_eq!(
            canonical(&a),
            r#"{"a":{"c":null,"d":[1,{"x":1,"y":2}]},"b":1}"#
        );
    }

    #[test]
    fn the_key_follows_audio_options_and_weights_but_not_the_model_name() {
        let w = WriterOptions::default();
        let o = TranscribeOptions::default();
        let base = output_key("aa", &options_json(&o, &w), &model());
        assert_eq!(
            base,
            output_key("aa", &options_json(&o.clone(), &w), &model())
        );
        assert_ne!(base, output_key("ab", &options_json(&o, &w), &model()));
        let greedy = TranscribeOptions {
            beam_size: 1,
            ..o.clone()
        };
        assert_ne!(base, output_key("aa", &options_json(&greedy, &w), &model()));
        let layout = WriterOptions {
            max_line_width: Some(40),
            ..w
        };
        assert_ne!(base, output_key("aa", &options_json(&o, &layout), &model()));
        let int8 = ModelIdentity {
            compute_type: "int8".into(),
            ..model()
        };
        assert_ne!(base, output_key("aa", &options_json(&o, &w), &int8));
        let renamed = ModelIdentity {
            name: "other".into(),
            ..model()
        };
        assert_eq!(base, output_key("aa", &options_json(&o, &w), &renamed));
        assert_eq!(
            options_json(&o, &w)["temperatures"][1],
            serde_json::json!(0.2)
        );
    }

    #[test]
    fn the_model_hash_covers_every_file() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("model.bin"), "weights").unwrap();
        std::fs::write(d.path().join("tokenizer.json"), "{}").unwrap();
        let id = |d: &Path| {
            ModelIdentity::of_dir("m", d, Numerics::F32, ComputeType::F32)
                .unwrap()
                .sha256
        };
        let first = id(d.path());
        std::fs::write(d.path().join(".installed"), "marker").unwrap();
        assert_eq!(id(d.path()), first, "hidden files are not weights");
        std::fs::write(d.path().join("model.bin"), "weightz").unwrap();
        assert_ne!(id(d.path()), first);
        let e = ModelIdentity::of_dir("m", &d.path().join("none"), Numerics::F32, ComputeType::F32)
            .unwrap_err();
        assert!(e.to_string().contains("none"), "{e}");
    }
}
