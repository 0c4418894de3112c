//! Scoring transcripts: Whisper's text normalisers, word error rate, evaluation manifests, and
//! transcribing a manifest with a [`whisper_model::Whisper`] ([`evaluation::evaluate`]).

pub mod evaluation;
pub mod manifest;
pub mod normalizer;
mod numbers;
mod pytext;
pub mod wer;

pub use evaluation::{evaluate, evaluate_batched, ClipResult, EvalError, EvalReport};
pub use manifest::{read_manifest, Clip, ManifestError};
pub use normalizer::{
    english_json_in_sdist, BasicTextNormalizer, EnglishSpellingNormalizer, EnglishTextNormalizer,
    NormalizerError,
};
pub use numbers::EnglishNumberNormalizer;
pub use wer::{corpus_wer, wer, word_errors, WordErrors};
