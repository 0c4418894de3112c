//! A model ready to transcribe: runtime, packed weights and tokenizer, loaded from a checkpoint
//! directory. This is what `run-model`, `eval`, `bench` and the tests use.

use std::path::Path;

use npu_runtime::{Runtime, RuntimeConfig, RuntimeError};

use crate::decoding::{DecodeOptions, DecoderContext};
use crate::model::{ModelError, Whisper};
use crate::tokenizer::{TokenizerError, WhisperTokenizer};
use crate::transcribe::{self, Progress, StageTimes, Transcript};
use crate::weights::{Checkpoint, WeightsError};

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error(transparent)]
    Weights(#[from] WeightsError),
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("unknown language {0:?}; use a code such as en, de, fr, ja")]
    UnknownLanguage(String),
    #[error("this model is English-only; use a multilingual model (e.g. base) for language {0:?}")]
    EnglishOnly(String),
}

pub struct Pipeline {
    pub rt: Runtime,
    pub model: Whisper,
    pub tokenizer: WhisperTokenizer,
}

impl Pipeline {
    /// Loads the checkpoint in `dir` (CTranslate2 or Hugging Face) onto a new runtime.
    pub fn load(dir: &Path, config: RuntimeConfig) -> Result<Pipeline, PipelineError> {
        let rt = Runtime::new(config)?;
        let mut ckpt = Checkpoint::load(dir)?;
        let model = Whisper::load(&mut ckpt, &rt)?;
        let tokenizer = WhisperTokenizer::from_dir(dir)?;
        Ok(Pipeline {
            rt,
            model,
            tokenizer,
        })
    }

    /// Checks decoding options against this model (language known, English-only models).
    pub fn check_options(&self, opts: &DecodeOptions) -> Result<(), PipelineError> {
        if let Some(lang) = &opts.language {
            if !self.tokenizer.is_multilingual() {
                if lang != "en" && lang != "english" {
                    return Err(PipelineError::EnglishOnly(lang.clone()));
                }
            } else if self.tokenizer.language_token(lang).is_none() {
                return Err(PipelineError::UnknownLanguage(lang.clone()));
            }
        }
        Ok(())
    }

    /// Transcribes 16 kHz mono samples.
    pub fn transcribe(
        &self,
        samples: &[f32],
        opts: &DecodeOptions,
        progress: &mut dyn Progress,
        times: &mut StageTimes,
    ) -> Result<Transcript, PipelineError> {
        self.check_options(opts)?;
        let ctx = DecoderContext::new(&self.model, &self.rt, &self.tokenizer);
        Ok(transcribe::transcribe_audio(
            &ctx, samples, opts, progress, times,
        )?)
    }
}
