//! What a caller chooses: how a model is loaded ([`LoadOptions`]) and how audio is transcribed
//! ([`TranscribeOptions`], with Whisper's defaults). Options are plain data; invalid values are
//! reported by [`TranscribeOptions::validate`] (and by every transcription) as
//! [`Error::InvalidOption`], never as a panic.

use std::path::PathBuf;

use npu_runtime::{BackendKind, ComputeType, Device, Numerics};

use crate::error::Error;

/// How [`crate::Whisper::load`] sets up the runtime.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// CPU, NPU (or NPU where one is usable, else CPU), or `Emu`: every kernel call through
    /// the dataflow emulator of its rendered design (needs a manifest of rendered designs).
    pub backend: BackendKind,
    /// `F32`: best accuracy. `Npu`: round exactly where the NPU kernels round.
    pub numerics: Numerics,
    /// How the CPU computes with `Numerics::F32`: `F32` (the accuracy reference) or `Int8`
    /// (int8 weights, faster; see [`ComputeType`]). Ignored in NPU numerics.
    pub compute_type: ComputeType,
    /// Worker threads of the one pool every kernel and the log-mel run on; 0 = one per core.
    pub threads: usize,
    /// Where the kernel table comes from (it decides the precision of each call in NPU numerics,
    /// and which compiled kernels the NPU backend runs).
    pub kernels: KernelSource,
    /// On the NPU backend, run shapes without a compiled kernel on the CPU.
    pub allow_cpu_fallback: bool,
    /// Time every kernel call (see [`crate::Whisper::profile_report`]).
    pub profile: bool,
    /// The NPU whose kernels serve calls (`None`: the detected NPU, else npu1; the emulator
    /// backend models this device).
    pub device: Option<Device>,
    /// The Silero VAD model file (`whisper_fetch::vad_weights`) that [`TranscribeOptions::vad`]
    /// needs; `None`: transcriptions asking for VAD fail with [`Error::NoVadModel`].
    pub vad_model: Option<PathBuf>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            backend: BackendKind::Auto,
            numerics: Numerics::F32,
            compute_type: ComputeType::F32,
            threads: 0,
            kernels: KernelSource::BuiltIn,
            allow_cpu_fallback: true,
            profile: false,
            device: None,
            vad_model: None,
        }
    }
}

/// The kernel table of a model. Nothing is looked up from the current directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KernelSource {
    /// The project's `kernel-specs/*.toml`, built into this library at compile time (no compiled
    /// NPU kernels: enough for the CPU backend in either numerics).
    BuiltIn,
    /// A `generated/manifest.json` written by `cargo xtask build-kernels` (compiled kernels for
    /// the NPU backend).
    Manifest(PathBuf),
    /// A directory of kernel spec TOML files.
    SpecDir(PathBuf),
}

/// What the decoder is asked to produce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Task {
    Transcribe,
    Translate,
}

/// Options of one transcription, with Whisper's defaults.
#[derive(Clone, Debug)]
pub struct TranscribeOptions {
    pub task: Task,
    /// Language code (`"en"`); `None` detects it on multilingual models.
    pub language: Option<String>,
    /// 1 = greedy; more = beam search at temperature 0.
    pub beam_size: usize,
    /// Candidates sampled at temperatures above 0.
    pub best_of: usize,
    /// Beam search keeps going until `beam_size × patience` candidates finished.
    pub patience: f32,
    /// `None`: rank candidates by mean log-probability per token; `Some(a)`: Google NMT penalty.
    pub length_penalty: Option<f32>,
    /// Temperatures tried in order until a result passes the thresholds below.
    pub temperatures: Vec<f32>,
    pub compression_ratio_threshold: Option<f32>,
    pub logprob_threshold: Option<f32>,
    pub no_speech_threshold: Option<f32>,
    pub condition_on_previous_text: bool,
    /// Decode a window again without its prompt when its text copies the prompt (see
    /// [`crate::transcribe::copies_prompt`]).
    pub redecode_prompt_copies: bool,
    pub without_timestamps: bool,
    /// The audio left after the last window, if shorter than this (seconds), is not decoded: it
    /// cannot hold a word, and decoding a near-empty window invites the repetition loops that
    /// send every temperature of the fallback to its token limit. 0 decodes it whatever its
    /// length (openai-whisper; whisper.cpp skips the last second).
    pub min_tail_seconds: f32,
    /// Latest allowed first timestamp, in seconds.
    pub max_initial_timestamp: f32,
    pub suppress_blank: bool,
    /// Seed of the sampler used above temperature 0 (results are reproducible).
    pub seed: u64,
    /// Text the first window is conditioned on, as if it had been said before the audio
    /// (spellings, names, style): openai-whisper's `initial_prompt`.
    pub initial_prompt: Option<String>,
    /// Transcribe only the speech that Silero VAD finds (faster-whisper's `vad_filter`), with
    /// these options; timestamps stay on the recording's timeline. Needs
    /// [`LoadOptions::vad_model`].
    pub vad: Option<whisper_vad::VadOptions>,
    /// Time every word (cross-attention alignment and dynamic time warping, as openai-whisper's
    /// `word_timestamps=True`): fills [`crate::Segment::words`]. Segments then end at their
    /// last word, and the next window starts there.
    pub word_timestamps: bool,
    /// With word timestamps: punctuation that joins the word after it.
    pub prepend_punctuations: String,
    /// With word timestamps: punctuation that joins the word before it.
    pub append_punctuations: String,
}

impl Default for TranscribeOptions {
    fn default() -> Self {
        TranscribeOptions {
            task: Task::Transcribe,
            language: None,
            beam_size: 5,
            best_of: 5,
            patience: 1.0,
            length_penalty: None,
            temperatures: vec![0.0, 0.2, 0.4, 0.6, 0.8, 1.0],
            compression_ratio_threshold: Some(2.4),
            logprob_threshold: Some(-1.0),
            no_speech_threshold: Some(0.6),
            condition_on_previous_text: true,
            redecode_prompt_copies: true,
            without_timestamps: false,
            min_tail_seconds: 0.1,
            max_initial_timestamp: 1.0,
            suppress_blank: true,
            seed: 0,
            initial_prompt: None,
            vad: None,
            word_timestamps: false,
            prepend_punctuations: crate::alignment::PREPEND_PUNCTUATIONS.to_string(),
            append_punctuations: crate::alignment::APPEND_PUNCTUATIONS.to_string(),
        }
    }
}

impl Task {
    pub fn name(self) -> &'static str {
        match self {
            Task::Transcribe => "transcribe",
            Task::Translate => "translate",
        }
    }
}

impl std::str::FromStr for Task {
    type Err = String;
    fn from_str(s: &str) -> Result<Task, String> {
        match s {
            "transcribe" => Ok(Task::Transcribe),
            "translate" => Ok(Task::Translate),
            _ => Err(format!(
                "unknown task {s:?}; expected transcribe or translate"
            )),
        }
    }
}

impl TranscribeOptions {
    /// Checks the values that do not depend on the model (the language is checked against the
    /// model by [`crate::Whisper::check_options`]).
    pub fn validate(&self) -> Result<(), Error> {
        let bad =
            |option: &'static str, message: String| Err(Error::InvalidOption { option, message });
        if self.beam_size == 0 {
            return bad(
                "beam_size",
                "must be at least 1 (1 = greedy decoding)".into(),
            );
        }
        if self.best_of == 0 {
            return bad("best_of", "must be at least 1".into());
        }
        if !(self.patience.is_finite() && self.patience > 0.0) {
            return bad(
                "patience",
                format!("{} is not a positive number", self.patience),
            );
        }
        if self.temperatures.is_empty() {
            return bad(
                "temperatures",
                "give at least one temperature (0 = greedy or beam search)".into(),
            );
        }
        if let Some(t) = self
            .temperatures
            .iter()
            .find(|t| !(t.is_finite() && **t >= 0.0))
        {
            return bad("temperatures", format!("{t} is not a number >= 0"));
        }
        if let Some(a) = self
            .length_penalty
            .filter(|a| !(a.is_finite() && *a >= 0.0))
        {
            return bad("length_penalty", format!("{a} is not a number >= 0"));
        }
        for (option, value) in [
            (
                "compression_ratio_threshold",
                self.compression_ratio_threshold,
            ),
            ("logprob_threshold", self.logprob_threshold),
            ("no_speech_threshold", self.no_speech_threshold),
        ] {
            if let Some(v) = value.filter(|v| !v.is_finite()) {
                return bad(option, format!("{v} is not a finite number"));
            }
        }
        if !(self.max_initial_timestamp.is_finite() && self.max_initial_timestamp >= 0.0) {
            return bad(
                "max_initial_timestamp",
                format!(
                    "{} is not a number of seconds >= 0",
                    self.max_initial_timestamp
                ),
            );
        }
        if let Some(vad) = &self.vad {
            vad.validate().map_err(|e| match e {
                whisper_vad::VadError::InvalidOption { option, message } => Error::InvalidOption {
                    option: "vad",
                    message: format!("{option}: {message}"),
                },
                e => Error::Vad(e),
            })?;
        }
        if let Some(lang) = &self.language {
            if crate::tokenizer::language_code(lang).is_none() {
                return Err(Error::UnknownLanguage(lang.clone()));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invalid(opts: TranscribeOptions) -> String {
        match opts.validate() {
            Err(e @ (Error::InvalidOption { .. } | Error::UnknownLanguage(_))) => e.to_string(),
            other => panic!("expected an invalid option, got {other:?}"),
        }
    }

    #[test]
    fn defaults_are_valid() {
        TranscribeOptions::default().validate().unwrap();
    }

    #[test]
    fn each_invalid_value_is_named() {
        let d = TranscribeOptions::default;
        let cases = [
            (
                TranscribeOptions {
                    beam_size: 0,
                    ..d()
                },
                "beam_size",
            ),
            (TranscribeOptions { best_of: 0, ..d() }, "best_of"),
            (
                TranscribeOptions {
                    patience: 0.0,
                    ..d()
                },
                "patience",
            ),
            (
                TranscribeOptions {
                    patience: f32::NAN,
                    ..d()
                },
                "patience",
            ),
            (
                TranscribeOptions {
                    temperatures: vec![],
                    ..d()
                },
                "temperatures",
            ),
            (
                TranscribeOptions {
                    temperatures: vec![0.0, -0.2],
                    ..d()
                },
                "temperatures",
            ),
            (
                TranscribeOptions {
                    length_penalty: Some(f32::INFINITY),
                    ..d()
                },
                "length_penalty",
            ),
            (
                TranscribeOptions {
                    logprob_threshold: Some(f32::NAN),
                    ..d()
                },
                "logprob_threshold",
            ),
            (
                TranscribeOptions {
                    max_initial_timestamp: -1.0,
                    ..d()
                },
                "max_initial_timestamp",
            ),
            (
                TranscribeOptions {
                    vad: Some(whisper_vad::VadOptions {
                        threshold: 1.5,
                        ..Default::default()
                    }),
                    ..d()
                },
                "threshold",
            ),
            (
                TranscribeOptions {
                    language: Some("klingon".into()),
                    ..d()
                },
                "klingon",
            ),
        ];
        for (opts, named) in cases {
            let msg = invalid(opts);
            assert!(msg.contains(named), "{msg:?} does not name {named}");
        }
    }

    #[test]
    fn languages_by_code_or_name_are_valid() {
        for lang in ["en", "de", "English", "german"] {
            TranscribeOptions {
                language: Some(lang.into()),
                ..TranscribeOptions::default()
            }
            .validate()
            .unwrap();
        }
    }

    #[test]
    fn tasks_parse() {
        assert_eq!("translate".parse::<Task>(), Ok(Task::Translate));
        assert!("summarise".parse::<Task>().is_err());
    }
}
