//! Transcribing a manifest of clips and scoring the result: what `cargo xtask eval`, the
//! benchmark and the accuracy tests share.

use std::time::Instant;

use serde::Serialize;

use whisper_model::{audio, BatchOptions, TranscribeOptions, Transcript, Whisper};

use crate::{word_errors, Clip, EnglishTextNormalizer};

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
        let result = score(clip, &transcript, normalizer, wall_seconds);
        on_clip(&result);
        results.push(result);
    }
    Ok(report(results))
}

/// [`evaluate`] in batched mode: every clip in one [`Whisper::transcribe_many`] call (windows of
/// all clips decoded `batch.batch_size` at a time). Each clip's `wall_seconds` is its share of
/// the run, by audio length.
pub fn evaluate_batched(
    whisper: &Whisper,
    opts: &TranscribeOptions,
    batch: &BatchOptions,
    clips: &[Clip],
    normalizer: &EnglishTextNormalizer,
) -> Result<EvalReport, EvalError> {
    let audio = clips
        .iter()
        .map(|c| audio::load_audio(&c.path))
        .collect::<Result<Vec<_>, _>>()?;
    let refs: Vec<&[f32]> = audio.iter().map(Vec::as_slice).collect();
    let start = Instant::now();
    let transcripts = whisper
        .transcribe_many(&refs, opts, batch)
        .map_err(|source| EvalError::Transcribe {
            clip: format!("{} clips in batched mode", clips.len()),
            source: Box::new(source),
        })?;
    let wall = start.elapsed().as_secs_f64();
    let total: usize = audio.iter().map(Vec::len).sum();
    let results = clips
        .iter()
        .zip(&transcripts)
        .zip(&audio)
        .map(|((clip, t), a)| score(clip, t, normalizer, wall * a.len() as f64 / total as f64))
        .collect();
    Ok(report(results))
}

/// One clip's transcript scored against its reference.
fn score(
    clip: &Clip,
    transcript: &Transcript,
    normalizer: &EnglishTextNormalizer,
    wall_seconds: f64,
) -> ClipResult {
    let reference = normalizer.normalize(&clip.reference);
    let hypothesis = normalizer.normalize(&transcript.text);
    let r: Vec<&str> = reference.split_whitespace().collect();
    let h: Vec<&str> = hypothesis.split_whitespace().collect();
    let e = word_errors(&r, &h);
    ClipResult {
        file: clip.file.clone(),
        reference,
        hypothesis,
        text: transcript.text.clone(),
        tokens: transcript
            .segments
            .iter()
            .flat_map(|s| s.tokens.iter().copied())
            .collect(),
        errors: e.errors(),
        reference_words: e.ref_words,
        audio_seconds: transcript.duration as f64,
        wall_seconds,
    }
}

/// Corpus totals of scored clips.
fn report(clips: Vec<ClipResult>) -> EvalReport {
    let errors: usize = clips.iter().map(|c| c.errors).sum();
    let reference_words: usize = clips.iter().map(|c| c.reference_words).sum();
    let audio_seconds: f64 = clips.iter().map(|r| r.audio_seconds).sum();
    let wall_seconds: f64 = clips.iter().map(|r| r.wall_seconds).sum();
    EvalReport {
        clips,
        errors,
        reference_words,
        wer: errors as f64 / reference_words.max(1) as f64,
        audio_seconds,
        wall_seconds,
        realtime_factor: audio_seconds / wall_seconds.max(1e-9),
    }
}
