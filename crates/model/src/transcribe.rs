//! Long-form transcription: 30-second windows over the whole file, each advanced to the last
//! complete timestamp the decoder produced. Mirrors `transcribe()` in openai-whisper's
//! `whisper/transcribe.py`, with its word-level timestamps (see [`crate::alignment`]).

use std::borrow::Cow;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::alignment::{self, Word, WordClock};
use crate::decoding::{DecodeResult, DecoderContext, TranscribeOptions};
use crate::mel::{LogMel, Mel, HOP_LENGTH};
use crate::model::ModelError;

/// Mel frames per second (hop length 160 at 16 kHz).
pub const FRAMES_PER_SECOND: usize = 100;

/// One transcribed segment with its time span in seconds.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Segment {
    pub id: usize,
    /// Mel frame at which the window that produced this segment started.
    pub seek: usize,
    pub start: f32,
    pub end: f32,
    pub text: String,
    pub tokens: Vec<u32>,
    pub temperature: f32,
    pub avg_logprob: f32,
    pub compression_ratio: f32,
    pub no_speech_prob: f32,
    /// Each word with its time span, with [`TranscribeOptions::word_timestamps`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub words: Vec<Word>,
}

/// A whole transcription.
#[derive(Clone, Debug, Serialize)]
pub struct Transcript {
    pub text: String,
    /// Language code (`en`): given in the options, or detected.
    pub language: String,
    /// Seconds of audio.
    pub duration: f32,
    pub segments: Vec<Segment>,
    /// Where the time went.
    #[serde(skip)]
    pub times: StageTimes,
}

/// Where the time of a transcription went (for `--profile`).
#[derive(Clone, Debug, Default)]
pub struct StageTimes {
    pub mel: Duration,
    pub encoder: Duration,
    pub decoder: Duration,
    pub windows: usize,
    pub decoded_tokens: usize,
}

impl std::ops::AddAssign<&StageTimes> for StageTimes {
    fn add_assign(&mut self, o: &StageTimes) {
        self.mel += o.mel;
        self.encoder += o.encoder;
        self.decoder += o.decoder;
        self.windows += o.windows;
        self.decoded_tokens += o.decoded_tokens;
    }
}

/// Progress callbacks of a transcription.
pub trait Progress {
    /// `done` of `total` mel frames have been transcribed.
    fn advance(&mut self, _done: usize, _total: usize) {}
    /// A segment was finished.
    fn segment(&mut self, _segment: &Segment) {}
}

/// Ignores all progress.
pub struct NoProgress;
impl Progress for NoProgress {}

/// Transcribes 16 kHz mono samples.
///
/// The log-mel is computed over the audio plus one hop of zeros, and each 30 s window is
/// zero-filled past the end of the audio: the feature extraction of CTranslate2/faster-whisper,
/// the reference decoder this project's tokens are checked against. (openai-whisper instead
/// appends 30 s of silent audio before the log-mel; the two differ only in the padded tail.)
pub fn transcribe_audio(
    ctx: &DecoderContext<'_>,
    samples: &[f32],
    opts: &TranscribeOptions,
    progress: &mut dyn Progress,
    times: &mut StageTimes,
) -> Result<Transcript, ModelError> {
    let (mel, content_frames) = log_mel(ctx, samples, times);
    transcribe(ctx, &mel, content_frames, opts, progress, times)
}

/// The log-mel of `samples` as [`transcribe_audio`] computes it (on the runtime's threads), and
/// the number of frames that hold audio.
pub fn log_mel(ctx: &DecoderContext<'_>, samples: &[f32], times: &mut StageTimes) -> (Mel, usize) {
    let start = Instant::now();
    let n_mels = ctx.model.dims.n_mels;
    let mel = ctx
        .rt
        .install(|| LogMel::new(n_mels).compute_with_padding(samples, HOP_LENGTH));
    times.mel += start.elapsed();
    (mel, samples.len() / HOP_LENGTH)
}

/// Transcribes the log-mel spectrogram of a whole file. `mel` holds at least `content_frames`
/// frames of audio; frames past the end of the audio are read as zeros.
pub fn transcribe(
    ctx: &DecoderContext<'_>,
    mel: &Mel,
    content_frames: usize,
    opts: &TranscribeOptions,
    progress: &mut dyn Progress,
    times: &mut StageTimes,
) -> Result<Transcript, ModelError> {
    let mut windows = Windows::new(ctx.clone(), Cow::Borrowed(mel), content_frames, opts);
    while let Some(segments) = windows.next_window()? {
        for s in &segments {
            progress.segment(s);
        }
        progress.advance(windows.done_frames(), content_frames);
    }
    *times += &windows.times;
    Ok(windows.finish())
}

/// A transcription in progress, one 30 s window at a time: what both the whole-file
/// [`transcribe`] and the segment-by-segment stream of [`crate::Whisper`] are built on.
pub struct Windows<'a, 'm> {
    ctx: DecoderContext<'a>,
    mel: Cow<'m, Mel>,
    content_frames: usize,
    opts: TranscribeOptions,
    /// Known once the first window has been decoded (or given in the options).
    language: Option<String>,
    sot_sequence: Vec<u32>,
    first_features: Option<Vec<f32>>,
    segments: Vec<Segment>,
    /// Prompt of the first window (`initial_prompt`), then the text of every segment.
    all_tokens: Vec<u32>,
    prompt_reset_since: usize,
    seek: usize,
    /// Where speech last ended, for word timestamps.
    clock: WordClock,
    pub times: StageTimes,
}

impl<'a, 'm> Windows<'a, 'm> {
    pub fn new(
        ctx: DecoderContext<'a>,
        mel: Cow<'m, Mel>,
        content_frames: usize,
        opts: &TranscribeOptions,
    ) -> Self {
        let all_tokens = match opts.initial_prompt.as_deref().map(str::trim) {
            Some(p) if !p.is_empty() => ctx.tokenizer.encode(&format!(" {p}")),
            _ => Vec::new(),
        };
        Windows {
            ctx,
            mel,
            content_frames,
            opts: opts.clone(),
            language: None,
            sot_sequence: Vec::new(),
            first_features: None,
            segments: Vec::new(),
            all_tokens,
            prompt_reset_since: 0,
            seek: 0,
            clock: WordClock::default(),
            times: StageTimes::default(),
        }
    }

    /// Mel frames transcribed so far (of `content_frames`).
    pub fn done_frames(&self) -> usize {
        self.seek.min(self.content_frames)
    }

    /// The spoken language, once known.
    pub fn language(&self) -> Option<&str> {
        self.language.as_deref()
    }

    /// Duration of the audio in seconds.
    pub fn duration(&self) -> f32 {
        self.content_frames as f32 / FRAMES_PER_SECOND as f32
    }

    fn encode(&mut self, seek: usize) -> Result<Vec<f32>, ModelError> {
        self.ctx.check_cancelled()?;
        let dims = &self.ctx.model.dims;
        let start = Instant::now();
        let window = self.mel.frames(seek, 2 * dims.n_audio_ctx);
        let features = self.ctx.model.encoder.forward_cancellable(
            self.ctx.rt,
            dims,
            &window,
            self.ctx.cancel_token(),
        )?;
        self.times.encoder += start.elapsed();
        self.times.windows += 1;
        Ok(features)
    }

    /// The language: given, English on English-only models, or detected on the first window.
    fn resolve_language(&mut self) -> Result<(), ModelError> {
        if self.language.is_some() {
            return Ok(());
        }
        let language = match (&self.opts.language, self.ctx.tokenizer.is_multilingual()) {
            (Some(l), _) => l.clone(),
            (None, false) => "en".to_string(),
            (None, true) => {
                let features = self.encode(0)?;
                let (code, _p) = self.ctx.detect_language(&features)?;
                self.first_features = Some(features);
                code
            }
        };
        self.sot_sequence = self.ctx.sot_sequence(Some(&language), self.opts.task);
        self.language = Some(language);
        Ok(())
    }

    /// Decodes the next window and returns the segments it finished (possibly none, for
    /// silence); `None` once the audio is done.
    pub fn next_window(&mut self) -> Result<Option<Vec<Segment>>, ModelError> {
        if self.content_frames > 0 {
            self.resolve_language()?;
        }
        if skips_tail(self.seek, self.content_frames, self.opts.min_tail_seconds) {
            self.seek = self.content_frames;
        }
        if self.seek >= self.content_frames {
            return Ok(None);
        }
        let ctx = self.ctx.clone();
        let opts = &self.opts.clone();
        let dims = &ctx.model.dims;
        let n_frames = 2 * dims.n_audio_ctx; // the encoder's conv2 halves the frame count
        let input_stride = n_frames / dims.n_audio_ctx;
        let time_precision = input_stride as f32 / FRAMES_PER_SECOND as f32;
        let ts_begin = ctx.tokenizer.timestamp_begin();
        let frames_to_s = |f: usize| f as f32 / FRAMES_PER_SECOND as f32;
        let content_frames = self.content_frames;

        let time_offset = frames_to_s(self.seek);
        let segment_size = n_frames.min(content_frames - self.seek);
        let segment_duration = frames_to_s(segment_size);
        let features = match self.first_features.take() {
            Some(f) if self.seek == 0 => f,
            _ => self.encode(self.seek)?,
        };

        let start = Instant::now();
        let prompt = &self.all_tokens[self.prompt_reset_since..];
        let mut result = ctx.decode_with_fallback(&features, prompt, &self.sot_sequence, opts)?;
        if opts.redecode_prompt_copies && copies_prompt(&result.tokens, prompt, ctx.tokenizer.eot())
        {
            // The previous text is a hint of style and vocabulary; a window that repeats it
            // verbatim is the decoder looping on its prompt, not what was said. Decode the
            // window again with no prompt.
            tracing::debug!(
                "window at {time_offset:.2}s repeats the previous text ({:?}); decoding it again without the prompt",
                result.text
            );
            self.times.decoded_tokens += result.tokens.len() + 1;
            result = ctx.decode_with_fallback(&features, &[], &self.sot_sequence, opts)?;
        }
        self.times.decoder += start.elapsed();
        self.times.decoded_tokens += result.tokens.len() + 1;

        // Silence: skip the window unless the text was confidently decoded anyway.
        let silent = opts
            .no_speech_threshold
            .is_some_and(|th| result.no_speech_prob > th)
            && !opts
                .logprob_threshold
                .is_some_and(|th| result.avg_logprob > th);
        if silent {
            self.seek += segment_size;
            return Ok(Some(Vec::new()));
        }

        let previous_seek = self.seek;
        let tokens = &result.tokens;
        let is_ts: Vec<bool> = tokens.iter().map(|&t| t >= ts_begin).collect();
        let single_timestamp_ending =
            is_ts.len() >= 2 && !is_ts[is_ts.len() - 2] && is_ts[is_ts.len() - 1];
        // Indices where a timestamp pair (end of one segment, start of the next) splits the text.
        let consecutive: Vec<usize> = (1..is_ts.len())
            .filter(|&i| is_ts[i - 1] && is_ts[i])
            .collect();

        let mut current: Vec<Segment> = Vec::new();
        let ts_seconds = |tok: u32| (tok - ts_begin) as f32 * time_precision;
        if !consecutive.is_empty() {
            let mut slices = consecutive.clone();
            if single_timestamp_ending {
                slices.push(tokens.len());
            }
            let mut last_slice = 0;
            for &cut in &slices {
                let sliced = &tokens[last_slice..cut];
                let start = time_offset + ts_seconds(sliced[0]);
                let end = time_offset + ts_seconds(*sliced.last().unwrap());
                current.push(new_segment(
                    &ctx,
                    previous_seek,
                    start,
                    end,
                    sliced,
                    &result,
                ));
                last_slice = cut;
            }
            if single_timestamp_ending {
                self.seek += segment_size;
            } else {
                // Resume from the last timestamp the decoder closed a segment with.
                let last_ts_pos = (tokens[last_slice - 1] - ts_begin) as usize;
                self.seek += last_ts_pos * input_stride;
            }
        } else {
            let mut duration = segment_duration;
            if let Some(&last) = tokens.iter().rev().find(|&&t| t >= ts_begin) {
                if last != ts_begin {
                    duration = ts_seconds(last);
                }
            }
            current.push(new_segment(
                &ctx,
                previous_seek,
                time_offset,
                time_offset + duration,
                tokens,
                &result,
            ));
            self.seek += segment_size;
        }
        if opts.word_timestamps {
            let start = Instant::now();
            alignment::add_word_timestamps(
                &ctx,
                &features,
                &self.sot_sequence,
                self.language.as_deref().unwrap_or("en"),
                &mut current,
                segment_size,
                (&opts.prepend_punctuations, &opts.append_punctuations),
                &mut self.clock,
            )?;
            self.times.decoder += start.elapsed();
            let last_end = alignment::last_word_end(&current);
            if !single_timestamp_ending {
                // Resume where the last word ended rather than at the last timestamp token.
                if let Some(end) = last_end.filter(|&e| e > time_offset) {
                    self.seek = (end * FRAMES_PER_SECOND as f32).round() as usize;
                }
            }
            if let Some(end) = last_end {
                self.clock.last_speech = end;
            }
        }
        if self.seek <= previous_seek {
            // Never loop on the same window.
            self.seek = previous_seek + segment_size;
        }

        let mut finished = Vec::new();
        for mut seg in current {
            // An instantaneous or empty segment carries nothing.
            if seg.start == seg.end || seg.text.trim().is_empty() {
                continue;
            }
            seg.end = seg.end.min(frames_to_s(content_frames).max(seg.start));
            fit_words(&mut seg, frames_to_s(content_frames));
            seg.id = self.segments.len();
            self.all_tokens.extend_from_slice(&seg.tokens);
            self.segments.push(seg.clone());
            finished.push(seg);
        }
        if !opts.condition_on_previous_text || result.temperature > 0.5 {
            self.prompt_reset_since = self.all_tokens.len();
        }
        Ok(Some(finished))
    }

    /// The transcript of the windows decoded so far.
    pub fn finish(self) -> Transcript {
        let text = self
            .segments
            .iter()
            .map(|s| s.text.as_str())
            .collect::<String>();
        let duration = self.duration();
        Transcript {
            text,
            language: self.language.unwrap_or_else(|| "en".to_string()),
            duration,
            segments: self.segments,
            times: self.times,
        }
    }
}

/// Whether `decoded` mostly copies `prompt`: at least [`COPY_MIN_TOKENS`] of its text tokens,
/// and at least [`COPY_MIN_FRACTION`] of them, lie in runs of [`COPY_NGRAM`] tokens that also
/// occur in the prompt. Only text tokens (below `eot`) count; timestamps are ignored.
///
/// Whisper's compression-ratio check catches a decoder that loops within one window; this
/// catches the loop across windows, where the conditioning text is copied instead of the audio
/// being transcribed (seen on the LibriVox sonnet of the evaluation set, in f32 beam search and
/// in NPU numerics alike).
pub fn copies_prompt(decoded: &[u32], prompt: &[u32], eot: u32) -> bool {
    let text = |t: &[u32]| -> Vec<u32> { t.iter().copied().filter(|&x| x < eot).collect() };
    let (decoded, prompt) = (text(decoded), text(prompt));
    if decoded.len() < COPY_MIN_TOKENS || prompt.len() < COPY_NGRAM {
        return false;
    }
    let grams: std::collections::HashSet<&[u32]> = prompt.windows(COPY_NGRAM).collect();
    let mut covered = vec![false; decoded.len()];
    for (i, w) in decoded.windows(COPY_NGRAM).enumerate() {
        if grams.contains(w) {
            covered[i..i + COPY_NGRAM].fill(true);
        }
    }
    let n = covered.iter().filter(|&&c| c).count();
    n >= COPY_MIN_TOKENS && n as f32 >= COPY_MIN_FRACTION * decoded.len() as f32
}

/// Length of the token runs [`copies_prompt`] looks for.
const COPY_NGRAM: usize = 4;
/// Fewest copied tokens that count as a copy (short phrases recur naturally).
const COPY_MIN_TOKENS: usize = 8;
/// Share of a window's text that must be copied.
const COPY_MIN_FRACTION: f32 = 0.6;

/// Keeps a segment's words inside the audio and the segment around its words (openai-whisper
/// lets a cut-back first or last word overhang its segment slightly).
fn fit_words(seg: &mut Segment, duration: f32) {
    for w in &mut seg.words {
        w.end = w.end.min(duration);
        w.start = w.start.min(w.end);
    }
    if let (Some(first), Some(last)) = (seg.words.first(), seg.words.last()) {
        seg.start = seg.start.min(first.start);
        seg.end = seg.end.max(last.end);
    }
}

fn new_segment(
    ctx: &DecoderContext<'_>,
    seek: usize,
    start: f32,
    end: f32,
    tokens: &[u32],
    result: &DecodeResult,
) -> Segment {
    let eot = ctx.tokenizer.eot();
    let text_tokens: Vec<u32> = tokens.iter().copied().filter(|&t| t < eot).collect();
    Segment {
        id: 0,
        seek,
        start,
        end,
        text: ctx.tokenizer.decode(&text_tokens),
        tokens: tokens.to_vec(),
        temperature: result.temperature,
        avg_logprob: result.avg_logprob,
        compression_ratio: result.compression_ratio,
        no_speech_prob: result.no_speech_prob,
        words: Vec::new(),
    }
}

/// Whether the audio left from `seek` is a tail too short to decode (see
/// [`TranscribeOptions::min_tail_seconds`]); a recording shorter than that is still decoded.
fn skips_tail(seek: usize, content_frames: usize, min_tail_seconds: f32) -> bool {
    let min_frames = (min_tail_seconds * FRAMES_PER_SECOND as f32).round() as usize;
    seek > 0 && seek < content_frames && content_frames - seek < min_frames
}

#[cfg(test)]
mod tests {
    use super::{copies_prompt, skips_tail};

    #[test]
    fn only_a_final_tail_shorter_than_the_minimum_is_skipped() {
        // 100 frames per second: 0.1 s is 10 frames.
        assert!(
            skips_tail(6792, 6798, 0.1),
            "6 frames left after the last window"
        );
        assert!(!skips_tail(6788, 6798, 0.1), "10 frames are decoded");
        assert!(
            !skips_tail(0, 6, 0.1),
            "a recording shorter than the minimum is decoded"
        );
        assert!(!skips_tail(6792, 6798, 0.0), "0 decodes every tail");
        assert!(!skips_tail(6798, 6798, 0.1), "nothing is left");
    }

    const EOT: u32 = 50257;

    #[test]
    fn a_window_that_repeats_its_prompt_is_a_copy() {
        let prompt: Vec<u32> = (100..140).collect();
        // Twelve tokens lifted from the prompt (timestamps around them do not matter).
        let mut decoded = vec![EOT + 100];
        decoded.extend(110..122);
        decoded.push(EOT + 150);
        assert!(copies_prompt(&decoded, &prompt, EOT));
    }

    #[test]
    fn new_text_or_short_phrases_are_not_copies() {
        let prompt: Vec<u32> = (100..140).collect();
        let fresh: Vec<u32> = (200..230).collect();
        assert!(!copies_prompt(&fresh, &prompt, EOT));
        // One recurring four-token phrase in otherwise new text.
        let mut mixed: Vec<u32> = (200..220).collect();
        mixed.extend(100..104);
        assert!(!copies_prompt(&mixed, &prompt, EOT));
        // Too short to judge.
        assert!(!copies_prompt(&[100, 101, 102, 103, 104], &prompt, EOT));
        assert!(!copies_prompt(&(110..122).collect::<Vec<_>>(), &[], EOT));
    }
}
