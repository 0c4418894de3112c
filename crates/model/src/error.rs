//! The one error type of the library's entry points ([`crate::Whisper`]).

use std::path::PathBuf;

use npu_runtime::RuntimeError;

use crate::audio::AudioError;
use crate::model::ModelError;
use crate::tokenizer::TokenizerError;
use crate::weights::WeightsError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An option has a value no transcription can use.
    #[error("invalid option {option}: {message}")]
    InvalidOption {
        option: &'static str,
        message: String,
    },
    #[error("unknown language {0:?}; use a code such as en, de, fr, ja (or an English name such as german)")]
    UnknownLanguage(String),
    #[error("this model is English-only; use a multilingual model (e.g. base) for language {0:?}")]
    EnglishOnly(String),
    #[error(
        "this model is English-only and cannot translate; use a multilingual model (e.g. base)"
    )]
    TranslateEnglishOnly,
    /// Fewer samples than one mel frame (10 ms at 16 kHz).
    #[error("the audio is {samples} samples long, shorter than one mel frame (10 ms); nothing to transcribe")]
    NoAudio { samples: usize },
    #[error("the audio has a non-finite sample (NaN or infinity) at index {index}")]
    NonFiniteSample { index: usize },
    #[error(transparent)]
    Audio(#[from] AudioError),
    /// What failed while loading the checkpoint in `dir` (the message includes the cause, so
    /// it is not repeated as an error source).
    #[error("loading the model from {}: {error}", dir.display())]
    Load { dir: PathBuf, error: Box<Error> },
    #[error("kernel table: {0}")]
    Kernels(String),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error(transparent)]
    Weights(#[from] WeightsError),
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    #[error(transparent)]
    Model(ModelError),
    /// The transcription's [`crate::CancelToken`] was cancelled.
    #[error("the transcription was cancelled")]
    Cancelled,
    /// [`crate::TranscribeOptions::vad`] is set but the model was loaded without a VAD model.
    #[error(
        "VAD was asked for but no VAD model was loaded: set LoadOptions::vad_model to the Silero \
         VAD file (whisper_fetch::vad_weights; `cargo xtask fetch-model silero-vad`)"
    )]
    NoVadModel,
    #[error(transparent)]
    Vad(#[from] whisper_vad::VadError),
    /// One recording of several ([`crate::Whisper::transcribe_many`]) is unusable.
    #[error("recording {index}: {error}")]
    Recording { index: usize, error: Box<Error> },
}

impl From<ModelError> for Error {
    fn from(e: ModelError) -> Error {
        match e {
            ModelError::Cancelled => Error::Cancelled,
            ModelError::Runtime(e) => Error::Runtime(e),
            ModelError::Weights(e) => Error::Weights(e),
            e => Error::Model(e),
        }
    }
}

impl Error {
    /// Whether the caller's input (options or audio) is at fault, not the model or the machine.
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            Error::InvalidOption { .. }
                | Error::UnknownLanguage(_)
                | Error::EnglishOnly(_)
                | Error::TranslateEnglishOnly
                | Error::NoAudio { .. }
                | Error::NonFiniteSample { .. }
                | Error::Audio(_)
        ) || matches!(self, Error::Recording { error, .. } if error.is_bad_input())
    }
}
