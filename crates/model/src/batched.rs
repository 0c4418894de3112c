//! Batched long-form transcription (faster-whisper's `BatchedInferencePipeline`): a recording,
//! or several, cut into windows of at most 30 s (speech found by VAD, or fixed 30 s pieces),
//! and the windows transcribed `batch_size` at a time — their log-mels through the encoder
//! together, then decoded together ([`crate::batch`]). Each window is decoded without the
//! previous window's text (windows of a batch are decoded at the same time); when the decoder's
//! timestamps stop well before a window's end, the rest is decoded again in a later batch (as the
//! sequential mode seeks). Every timestamp is mapped back to its recording's timeline.

use std::time::Instant;

use crate::audio::SAMPLE_RATE;
use crate::batch::BatchWindow;
use crate::decoding::{DecodeResult, DecoderContext, TranscribeOptions};
use crate::mel::{LogMel, HOP_LENGTH, N_SAMPLES};
use crate::model::ModelError;
use crate::transcribe::{StageTimes, Transcript, FRAMES_PER_SECOND};
use crate::Segment;
use whisper_vad::{collect_speech, merge_into_windows, SpeechSpan, Timeline, VadOptions};

/// How batched transcription groups windows.
#[derive(Clone, Debug)]
pub struct BatchOptions {
    /// Windows encoded and decoded together (faster-whisper's default: 8). More windows share
    /// each read of the weights but hold more memory (about 12 MB of decoder state per sequence
    /// and 25 MB of encoder activations per window with base).
    pub batch_size: usize,
}

impl Default for BatchOptions {
    fn default() -> Self {
        BatchOptions { batch_size: 8 }
    }
}

/// Audio transcribed as one window: spans of one recording (speech, in order), joined end to
/// end; at most 30 s in all.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chunk {
    /// Index of the recording.
    pub file: usize,
    /// Sample ranges on the recording's timeline.
    pub spans: Vec<SpeechSpan>,
}

impl Chunk {
    /// Samples in the chunk.
    fn len(&self) -> usize {
        self.spans.iter().map(|s| s.end - s.start).sum()
    }

    /// The chunk from `seconds` into it on.
    fn tail(&self, seconds: f32) -> Chunk {
        let mut skip = (seconds * SAMPLE_RATE as f32) as usize;
        let mut spans = Vec::new();
        for s in &self.spans {
            let len = s.end - s.start;
            if skip >= len {
                skip -= len;
                continue;
            }
            spans.push(SpeechSpan {
                start: s.start + skip,
                end: s.end,
            });
            skip = 0;
        }
        Chunk {
            file: self.file,
            spans,
        }
    }
}

/// VAD options of batched mode: faster-whisper's `BatchedInferencePipeline` defaults (speech
/// spans of at most 30 s, split at silences of 160 ms).
pub fn batched_vad_options() -> VadOptions {
    VadOptions {
        max_speech_duration_s: (N_SAMPLES / SAMPLE_RATE as usize) as f32,
        min_silence_duration_ms: 160,
        ..VadOptions::default()
    }
}

/// The windows of one recording from its speech spans: consecutive spans grouped into at most
/// 30 s of speech each.
pub fn speech_chunks(file: usize, spans: &[SpeechSpan]) -> Vec<Chunk> {
    merge_into_windows(spans, N_SAMPLES)
        .into_iter()
        .map(|w| Chunk {
            file,
            spans: w.spans,
        })
        .collect()
}

/// Fixed windows of 30 s over each recording (for audio without VAD).
pub fn fixed_chunks(lengths: &[usize]) -> Vec<Chunk> {
    lengths
        .iter()
        .enumerate()
        .flat_map(|(file, &len)| {
            (0..len.div_ceil(N_SAMPLES)).map(move |k| Chunk {
                file,
                spans: vec![SpeechSpan {
                    start: k * N_SAMPLES,
                    end: ((k + 1) * N_SAMPLES).min(len),
                }],
            })
        })
        .collect()
}

/// Transcribes `chunks` of `audio` (one slice per recording) `batch_size` windows at a time and
/// returns one transcript per recording.
pub fn transcribe_chunks(
    ctx: &DecoderContext<'_>,
    audio: &[&[f32]],
    chunks: &[Chunk],
    opts: &TranscribeOptions,
    batch: &BatchOptions,
) -> Result<Vec<Transcript>, ModelError> {
    let dims = &ctx.model.dims;
    let mut languages: Vec<Option<String>> = vec![opts.language.clone(); audio.len()];
    if !ctx.tokenizer.is_multilingual() {
        languages.fill(Some("en".to_string()));
    }
    let prompt = match opts.initial_prompt.as_deref().map(str::trim) {
        Some(p) if !p.is_empty() => ctx.tokenizer.encode(&format!(" {p}")),
        _ => Vec::new(),
    };
    let mut segments: Vec<Vec<Segment>> = vec![Vec::new(); audio.len()];
    let mut times: Vec<StageTimes> = vec![StageTimes::default(); audio.len()];
    let log_mel = LogMel::new(dims.n_mels);
    // Windows still to decode: the chunks, then the rest of any window whose text ended early.
    let mut queue: std::collections::VecDeque<Chunk> = chunks.iter().cloned().collect();
    while !queue.is_empty() {
        ctx.check_cancelled()?;
        let take = batch.batch_size.max(1).min(queue.len());
        let group: Vec<Chunk> = queue.drain(..take).collect();
        // Each chunk's log-mel on its own (normalised over the chunk, as faster-whisper's
        // batched pipeline does), zero-filled to the 30 s window.
        let start = Instant::now();
        let mels: Vec<Vec<f32>> = ctx.rt.install(|| {
            group
                .iter()
                .map(|c| {
                    let samples = collect_speech(audio[c.file], &c.spans);
                    let mel = log_mel.compute_with_padding(&samples, HOP_LENGTH);
                    mel.frames(0, 2 * dims.n_audio_ctx)
                })
                .collect()
        });
        let mel_time = start.elapsed();
        let start = Instant::now();
        let refs: Vec<&[f32]> = mels.iter().map(Vec::as_slice).collect();
        let features = ctx
            .model
            .encoder
            .forward_batch(ctx.rt, dims, &refs, ctx.cancel_token())?;
        let encoder_time = start.elapsed();

        let start = Instant::now();
        let mut windows = Vec::with_capacity(group.len());
        for (c, f) in group.iter().zip(&features) {
            if languages[c.file].is_none() {
                // Multilingual, no language given: detected on the recording's first window.
                languages[c.file] = Some(ctx.detect_language(f)?.0);
            }
            windows.push(BatchWindow {
                cross: ctx.model.decoder.cross_kv(ctx.rt, dims, f)?,
                prompt: prompt.clone(),
                sot_sequence: ctx.sot_sequence(languages[c.file].as_deref(), opts.task),
            });
        }
        drop(features);
        let results = ctx.decode_batch_with_fallback(&windows, opts)?;
        let decoder_time = start.elapsed();

        let share = group.len() as u32;
        for (c, r) in group.iter().zip(&results) {
            let t = &mut times[c.file];
            t.mel += mel_time / share;
            t.encoder += encoder_time / share;
            t.decoder += decoder_time / share;
            t.windows += 1;
            t.decoded_tokens += r.tokens.len() + 1;
            if !is_silent(opts, r) {
                let (found, resume) = window_segments(ctx, c, r, audio[c.file].len());
                segments[c.file].extend(found);
                if let Some(at) = resume {
                    queue.push_back(c.tail(at));
                }
            }
        }
    }
    Ok(segments
        .into_iter()
        .zip(times)
        .zip(languages)
        .zip(audio)
        .map(|(((mut segments, times), language), samples)| {
            // The rest of a window is decoded in a later batch: order by time.
            segments.sort_by(|a, b| a.start.total_cmp(&b.start));
            for (i, s) in segments.iter_mut().enumerate() {
                s.id = i;
            }
            Transcript {
                text: segments.iter().map(|s| s.text.as_str()).collect(),
                language: language.unwrap_or_else(|| "en".to_string()),
                duration: samples.len() as f32 / SAMPLE_RATE as f32,
                segments,
                times,
            }
        })
        .collect())
}

/// Whisper's silence rule: no speech, and the text not confidently decoded anyway.
fn is_silent(opts: &TranscribeOptions, r: &DecodeResult) -> bool {
    opts.no_speech_threshold
        .is_some_and(|th| r.no_speech_prob > th)
        && !opts.logprob_threshold.is_some_and(|th| r.avg_logprob > th)
}

/// The segments of one decoded window, on the recording's timeline (of `total` samples), and
/// where to decode the window again from (seconds into it), if anywhere. With timestamps, the
/// text between each pair of timestamps is a segment; when the last complete pair ends more
/// than [`MIN_REST`] before the window's end, what follows is decoded again from there (as the
/// sequential mode seeks: the decoder stopped early or left a segment unfinished), else text
/// after the last pair ends at the window's end. Without timestamps the window is one segment.
fn window_segments(
    ctx: &DecoderContext<'_>,
    chunk: &Chunk,
    r: &DecodeResult,
    total: usize,
) -> (Vec<Segment>, Option<f32>) {
    let ts_begin = ctx.tokenizer.timestamp_begin();
    let eot = ctx.tokenizer.eot();
    // Seconds per timestamp token: the encoder's two frames per position.
    let precision = 2.0 / FRAMES_PER_SECOND as f32;
    let duration = chunk.len() as f32 / SAMPLE_RATE as f32;
    let ts = |tok: u32| (tok - ts_begin) as f32 * precision;
    let tokens = &r.tokens;
    let is_ts = |i: usize| tokens[i] >= ts_begin;

    // Chunk-local (start, end, tokens) pieces.
    let mut pieces: Vec<(f32, f32, &[u32])> = Vec::new();
    let n = tokens.len();
    // Text then one timestamp at the end: the last segment is complete.
    let single_ending = n >= 2 && !is_ts(n - 2) && is_ts(n - 1);
    let cuts: Vec<usize> = (1..n).filter(|&i| is_ts(i - 1) && is_ts(i)).collect();
    // Where the complete segments end (None without timestamps), and an unfinished rest.
    let mut done_at = None;
    let mut rest: &[u32] = &[];
    if cuts.is_empty() {
        let end = match tokens.iter().rev().find(|&&t| t >= ts_begin) {
            Some(&last) if last != ts_begin => ts(last),
            _ => duration,
        };
        if single_ending {
            done_at = Some(end);
        }
        pieces.push((0.0, end, tokens));
    } else {
        let mut last = 0;
        for &cut in &cuts {
            let s = &tokens[last..cut];
            pieces.push((ts(s[0]), ts(*s.last().unwrap()), s));
            last = cut;
        }
        if single_ending {
            pieces.push((ts(tokens[last]), ts(tokens[n - 1]), &tokens[last..]));
            done_at = Some(ts(tokens[n - 1]));
        } else {
            done_at = Some(ts(tokens[last - 1]));
            rest = &tokens[last..];
        }
    }
    let resume = done_at.filter(|&t| t > 0.0 && duration - t > MIN_REST);
    if resume.is_none() && rest.iter().any(|&t| t < eot) {
        pieces.push((ts(rest[0]), duration, rest));
    }

    let file_end = total as f32 / SAMPLE_RATE as f32;
    let seek = chunk.spans.first().map_or(0, |s| s.start) / HOP_LENGTH;
    let timeline = Timeline::new(&chunk.spans);
    let segments = pieces
        .into_iter()
        .filter_map(|(start, end, toks)| {
            let text_tokens: Vec<u32> = toks.iter().copied().filter(|&t| t < eot).collect();
            let text = ctx.tokenizer.decode(&text_tokens);
            let (start, end) =
                to_recording(chunk, &timeline, start.min(duration), end.min(duration));
            let end = end.min(file_end);
            if text.trim().is_empty() || end <= start {
                return None;
            }
            Some(Segment {
                id: 0,
                seek,
                start,
                end,
                text,
                tokens: toks.to_vec(),
                temperature: r.temperature,
                avg_logprob: r.avg_logprob,
                compression_ratio: r.compression_ratio,
                no_speech_prob: r.no_speech_prob,
                words: Vec::new(),
            })
        })
        .collect();
    (segments, resume)
}

/// Speech left in a window after the decoder's last complete segment that is decoded again
/// (seconds): less is the padding VAD leaves after speech, or a window's trailing silence.
const MIN_REST: f32 = 2.0;

/// Least overlap with a speech span for a segment to count as being in it, in seconds: a
/// timestamp a few frames before a junction of spans is not speech of the span it ends.
const MIN_SPAN_OVERLAP: f32 = 0.2;

/// A chunk-local segment `[start, end]` (seconds into the joined spans) on the recording's
/// timeline: it starts in the first span it overlaps by at least [`MIN_SPAN_OVERLAP`] and ends in
/// the last, so that it never begins or ends inside a removed silence.
fn to_recording(chunk: &Chunk, timeline: &Timeline, start: f32, end: f32) -> (f32, f32) {
    let sr = SAMPLE_RATE as f32;
    let mut at = 0.0;
    let bounds: Vec<(f32, f32)> = chunk
        .spans
        .iter()
        .map(|s| {
            let b = (at, at + (s.end - s.start) as f32 / sr);
            at = b.1;
            b
        })
        .collect();
    let overlapping: Vec<usize> = (0..bounds.len())
        .filter(|&i| end.min(bounds[i].1) - start.max(bounds[i].0) >= MIN_SPAN_OVERLAP)
        .collect();
    match (overlapping.first(), overlapping.last()) {
        (Some(&first), Some(&last)) => (
            timeline.original_time_in(start.max(bounds[first].0) as f64, first) as f32,
            timeline.original_time_in(end.min(bounds[last].1) as f64, last) as f32,
        ),
        _ => (
            timeline.original_start(start as f64) as f32,
            timeline.original_end(end as f64) as f32,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_start_and_end_in_the_spans_they_cover() {
        let sr = SAMPLE_RATE as usize;
        // Speech at 20–31 s and 51–58 s: 0–11 s and 11–18 s of the joined audio.
        let chunk = Chunk {
            file: 0,
            spans: vec![
                SpeechSpan {
                    start: 20 * sr,
                    end: 31 * sr,
                },
                SpeechSpan {
                    start: 51 * sr,
                    end: 58 * sr,
                },
            ],
        };
        let tl = Timeline::new(&chunk.spans);
        let map = |a, b| to_recording(&chunk, &tl, a, b);
        assert_eq!(map(1.0, 10.0), (21.0, 30.0));
        // Starting 20 ms before the junction: the segment is the second span's speech.
        let (a, b) = map(10.98, 17.0);
        assert!(
            (a - 51.0).abs() < 1e-4 && (b - 57.0).abs() < 1e-4,
            "{a} {b}"
        );
        // Across the junction: from the first span into the second.
        assert_eq!(map(5.0, 15.0), (25.0, 55.0));
        // Ending just past the junction: it ends with the first span.
        let (a, b) = map(5.0, 11.05);
        assert!(
            (a - 25.0).abs() < 1e-4 && (b - 31.0).abs() < 1e-4,
            "{a} {b}"
        );
    }

    #[test]
    fn a_chunk_tail_starts_mid_span() {
        let span = |start, end| SpeechSpan { start, end };
        let c = Chunk {
            file: 2,
            spans: vec![span(100, 200), span(500, 600)],
        };
        let sr = SAMPLE_RATE as f32;
        assert_eq!(
            c.tail(50.0 / sr).spans,
            vec![span(150, 200), span(500, 600)]
        );
        assert_eq!(c.tail(130.0 / sr).spans, vec![span(530, 600)]);
        assert_eq!(c.tail(130.0 / sr).file, 2);
    }

    #[test]
    fn fixed_chunks_cover_each_file() {
        let chunks = fixed_chunks(&[N_SAMPLES * 2 + 5, 10]);
        let spans: Vec<(usize, Vec<(usize, usize)>)> = chunks
            .into_iter()
            .map(|c| (c.file, c.spans.iter().map(|s| (s.start, s.end)).collect()))
            .collect();
        assert_eq!(
            spans,
            vec![
                (0, vec![(0, N_SAMPLES)]),
                (0, vec![(N_SAMPLES, 2 * N_SAMPLES)]),
                (0, vec![(2 * N_SAMPLES, 2 * N_SAMPLES + 5)]),
                (1, vec![(0, 10)]),
            ]
        );
    }
}
