//! Transcribing only the speech ([`TranscribeOptions::vad`]), as faster-whisper's sequential
//! `transcribe(vad_filter=True)` does: Silero VAD finds the speech spans, they are concatenated
//! and transcribed as one recording, and every timestamp is mapped back to the recording's own
//! timeline (segments by their start and end, words in the span holding their middle).

use whisper_vad::{collect_speech, SileroVad, SpeechSpan, Timeline};

use crate::error::Error;
use crate::options::TranscribeOptions;
use crate::transcribe::{Segment, Transcript, FRAMES_PER_SECOND};

/// The speech of a recording and the way back to the recording's timeline.
pub(crate) struct SpeechOnly {
    pub audio: Vec<f32>,
    pub spans: Vec<SpeechSpan>,
    timeline: Timeline,
    /// Seconds of the whole recording.
    pub duration: f32,
    /// A segment's part of at most this in a span is taken as padding, not its speech
    /// ([`Timeline::original_segment`]): the padding plus Whisper's timestamp imprecision.
    edge_s: f64,
}

/// Silence a span may hold beyond its padding at an edge (the VAD ends speech at the first
/// quiet frame, and Whisper's segment timestamps stray by tenths of a second), in seconds.
const TIMESTAMP_SLACK_S: f64 = 0.5;

/// The speech of `samples` when `opts.vad` asks for VAD (`None` otherwise).
pub(crate) fn speech_only(
    model: Option<&SileroVad>,
    samples: &[f32],
    opts: &TranscribeOptions,
) -> Result<Option<SpeechOnly>, Error> {
    let Some(vad_opts) = &opts.vad else {
        return Ok(None);
    };
    let model = model.ok_or(Error::NoVadModel)?;
    let spans = model.speech_spans(samples, vad_opts);
    Ok(Some(SpeechOnly {
        audio: collect_speech(samples, &spans),
        timeline: Timeline::new(&spans),
        spans,
        duration: samples.len() as f32 / crate::SAMPLE_RATE as f32,
        edge_s: vad_opts.speech_pad_ms as f64 / 1000.0 + TIMESTAMP_SLACK_S,
    }))
}

impl SpeechOnly {
    /// `segment` (timed on the concatenated speech) on the recording's timeline.
    pub fn restore(&self, mut segment: Segment) -> Segment {
        let tl = &self.timeline;
        if segment.words.is_empty() {
            let (s, e) = tl.original_segment(segment.start as f64, segment.end as f64, self.edge_s);
            (segment.start, segment.end) = (s as f32, e as f32);
        } else {
            for w in &mut segment.words {
                let (s, e) = tl.original_range(w.start as f64, w.end as f64);
                (w.start, w.end) = (s as f32, e as f32);
            }
            segment.start = segment.words[0].start;
            segment.end = segment.words[segment.words.len() - 1].end;
        }
        let seek_s = segment.seek as f64 / FRAMES_PER_SECOND as f64;
        segment.seek = (tl.original_start(seek_s) * FRAMES_PER_SECOND as f64).round() as usize;
        segment
    }

    /// The whole transcript on the recording's timeline.
    pub fn restore_transcript(&self, mut t: Transcript) -> Transcript {
        t.segments = t.segments.into_iter().map(|s| self.restore(s)).collect();
        t.duration = self.duration;
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_and_words_move_to_the_recording_timeline() {
        // Speech at 2..4 s and 10..12 s of the recording: 0..2 s and 2..4 s of the speech.
        let spans = [
            SpeechSpan {
                start: 32_000,
                end: 64_000,
            },
            SpeechSpan {
                start: 160_000,
                end: 192_000,
            },
        ];
        let so = SpeechOnly {
            audio: Vec::new(),
            timeline: Timeline::new(&spans),
            spans: spans.to_vec(),
            duration: 20.0,
            edge_s: 0.3,
        };
        let seg = |start: f32, end: f32| Segment {
            start,
            end,
            ..Segment::default()
        };
        let a = so.restore(seg(0.5, 2.0));
        assert_eq!((a.start, a.end, a.seek), (2.5, 4.0, 200));
        let b = so.restore(seg(2.0, 3.5));
        assert_eq!((b.start, b.end), (10.0, 11.5));
        let mut w = seg(1.0, 3.0);
        w.words = vec![
            crate::Word {
                word: " a".into(),
                start: 1.0,
                end: 1.5,
                probability: 1.0,
            },
            crate::Word {
                word: " b".into(),
                start: 2.5,
                end: 3.0,
                probability: 1.0,
            },
        ];
        let w = so.restore(w);
        assert_eq!((w.start, w.end), (3.0, 11.0));
        assert_eq!((w.words[1].start, w.words[1].end), (10.5, 11.0));
    }
}
