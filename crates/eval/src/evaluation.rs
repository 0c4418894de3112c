//! Transcribing a manifest of clips and scoring the result: what `cargo xtask eval`, the
//! benchmark and the accuracy tests share.

use std::time::Instant;

use serde::Serialize;

use whisper_model::{audio, TranscribeOptions, Whisper};

use crate::{word_errors, Clip, EnglishTextNormalizer, WordErrors};

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error(transparent)]
    Audio(#[from] audio::AudioError),
    #[error("transcribing {clip}: {source}")]
    Transcribe {
        clip: String,
        #[source]
        source: Box<whisper_model::Error>,
    },
}

/// One clip's outcome.
#[derive(Clone, Debug, Serialize)]
pub struct ClipResult {
    pub file: String,
    /// Normalised reference and hypothesis, as scored.
    pub reference: String,
    pub hypothesis: String,
    /// The transcript as the model wrote it.
    pub text: String,
    pub tokens: Vec<u32>,
    pub errors: usize,
    pub reference_words: usize,
    pub audio_seconds: f64,
    pub wall_seconds: f64,
}

/// The outcome of a set of clips.
#[derive(Clone, Debug, Serialize)]
pub struct EvalReport {
    pub clips: Vec<ClipResult>,
    pub errors: usize,
    pub reference_words: usize,
    /// Corpus word error rate: total errors over total reference words.
    pub wer: f64,
    pub audio_seconds: f64,
    pub wall_seconds: f64,
    /// Audio seconds transcribed per wall-clock second (higher is faster).
    pub realtime_factor: f64,
}

/// Transcribes every clip with `whisper` and `opts` and scores it against its reference with
/// `normalizer`. `on_clip` sees each result as it is done.
pub fn evaluate(
    whisper: &Whisper,
    opts: &TranscribeOptions,
    clips: &[Clip],
    normalizer: &EnglishTextNormalizer,
    mut on_clip: impl FnMut(&ClipResult),
) -> Result<EvalReport, EvalError> {
    let mut results = Vec::with_capacity(clips.len());
    let mut total = WordErrors::default();
    for clip in clips {
        let samples = audio::load_audio(&clip.path)?;
        let start = Instant::now();
        let transcript =
            whisper
                .transcribe(&samples, opts)
                .map_err(|source| EvalError::Transcribe {
                    clip: clip.file.clone(),
                    source: Box::new(source),
                })?;
        let wall_seconds = start.elapsed().as_secs_f64();
        let reference = normalizer.normalize(&clip.reference);
        let hypothesis = normalizer.normalize(&transcript.text);
        let r: Vec<&str> = reference.split_whitespace().collect();
        let h: Vec<&str> = hypothesis.split_whitespace().collect();
        let e = word_errors(&r, &h);
        total += e;
        let result = ClipResult {
            file: clip.file.clone(),
            reference,
            hypothesis,
            text: transcript.text,
            tokens: transcript
                .segments
                .iter()
                .flat_map(|s| s.tokens.iter().copied())
                .collect(),
            errors: e.errors(),
            reference_words: e.ref_words,
            audio_seconds: samples.len() as f64 / audio::SAMPLE_RATE as f64,
            wall_seconds,
        };
        on_clip(&result);
        results.push(result);
    }
    let audio_seconds: f64 = results.iter().map(|r| r.audio_seconds).sum();
    let wall_seconds: f64 = results.iter().map(|r| r.wall_seconds).sum();
    Ok(EvalReport {
        clips: results,
        errors: total.errors(),
        reference_words: total.ref_words,
        wer: total.errors() as f64 / total.ref_words.max(1) as f64,
        audio_seconds,
        wall_seconds,
        realtime_factor: audio_seconds / wall_seconds.max(1e-9),
    })
}
