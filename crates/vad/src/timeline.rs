//! Speech-only audio and the way back: concatenating the speech spans of a recording, grouping
//! them into windows for batched decoding, and mapping a time in the concatenated audio to the
//! recording's timeline (faster-whisper's `collect_chunks` and `SpeechTimestampsMap`).

use crate::{SpeechSpan, SAMPLE_RATE};

/// The samples of `spans` (clamped to the audio), one after the other.
pub fn collect_speech(audio: &[f32], spans: &[SpeechSpan]) -> Vec<f32> {
    let mut out = Vec::with_capacity(spans.iter().map(|s| s.end.saturating_sub(s.start)).sum());
    for s in spans {
        let end = s.end.min(audio.len());
        out.extend_from_slice(&audio[s.start.min(end)..end]);
    }
    out
}

/// Consecutive spans whose speech adds up to at most the window length: decoded as one piece
/// of concatenated audio (`collect_speech(audio, &window.spans)`, mapped back with
/// `Timeline::new(&window.spans)`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Window {
    /// First sample of the first span and end of the last, on the recording's timeline.
    pub start: usize,
    pub end: usize,
    pub spans: Vec<SpeechSpan>,
}

impl Window {
    /// Samples of speech in the window.
    pub fn speech_samples(&self) -> usize {
        self.spans.iter().map(|s| s.end - s.start).sum()
    }
}

/// Groups `spans` in order into windows of at most `max_samples` of speech (30 s for Whisper).
/// A span longer than that gets a window of its own (VAD with `max_speech_duration_s` set to the
/// window length never makes one).
pub fn merge_into_windows(spans: &[SpeechSpan], max_samples: usize) -> Vec<Window> {
    let mut windows: Vec<Window> = Vec::new();
    for &span in spans {
        let len = span.end.saturating_sub(span.start);
        match windows.last_mut() {
            Some(w) if w.speech_samples() + len <= max_samples => {
                w.end = span.end;
                w.spans.push(span);
            }
            _ => windows.push(Window {
                start: span.start,
                end: span.end,
                spans: vec![span],
            }),
        }
    }
    windows
}

/// Maps a time in the concatenation of some spans back to the recording they came from.
#[derive(Clone, Debug, Default)]
pub struct Timeline {
    /// End of each span in the concatenated audio, in samples.
    ends: Vec<usize>,
    /// Samples of the recording left out before each span.
    silence_before: Vec<usize>,
}

impl Timeline {
    /// The timeline of `collect_speech(audio, spans)`.
    pub fn new(spans: &[SpeechSpan]) -> Timeline {
        let mut t = Timeline::default();
        let (mut previous_end, mut silent) = (0usize, 0usize);
        for s in spans {
            silent += s.start.saturating_sub(previous_end);
            previous_end = s.end;
            t.ends.push(s.end - silent);
            t.silence_before.push(silent);
        }
        t
    }

    /// The span holding time `t` (seconds into the concatenated audio). An end time exactly at
    /// a span's end belongs to that span, not the next.
    pub fn span_index(&self, t: f64, is_end: bool) -> usize {
        let sample = (t * SAMPLE_RATE as f64).max(0.0) as usize;
        if is_end {
            if let Some(i) = self.ends.iter().position(|&e| e == sample) {
                return i;
            }
        }
        self.ends
            .partition_point(|&e| e <= sample)
            .min(self.ends.len().saturating_sub(1))
    }

    /// `t` (seconds into the concatenated audio) on the recording's timeline, taking the span
    /// `span` as the one it belongs to.
    pub fn original_time_in(&self, t: f64, span: usize) -> f64 {
        match self.silence_before.get(span) {
            Some(&s) => t + s as f64 / SAMPLE_RATE as f64,
            None => t,
        }
    }

    /// A start time on the recording's timeline.
    pub fn original_start(&self, t: f64) -> f64 {
        self.original_time_in(t, self.span_index(t, false))
    }

    /// An end time on the recording's timeline.
    pub fn original_end(&self, t: f64) -> f64 {
        self.original_time_in(t, self.span_index(t, true))
    }

    /// A segment's (start, end) on the recording's timeline. Whisper dates a segment that
    /// follows another at the end of the one before, so in concatenated speech a segment often
    /// begins in the last fraction of a second (the padding) of the span before its speech, or
    /// ends just inside the next one. A part of at most `edge_s` seconds in its first (last)
    /// span moves its start (end) to the next (previous) span's edge, where faster-whisper would
    /// date it seconds away, on the far side of the removed silence.
    pub fn original_segment(&self, start: f64, end: f64, edge_s: f64) -> (f64, f64) {
        let sr = SAMPLE_RATE as f64;
        let (mut first, mut last) = (self.span_index(start, false), self.span_index(end, true));
        let (mut start, mut end) = (start, end);
        while first < last && self.ends[first] as f64 / sr - start <= edge_s {
            start = self.ends[first] as f64 / sr;
            first += 1;
        }
        while last > first && end - self.ends[last - 1] as f64 / sr <= edge_s {
            end = self.ends[last - 1] as f64 / sr;
            last -= 1;
        }
        (
            self.original_time_in(start, first),
            self.original_time_in(end, last),
        )
    }

    /// A (start, end) pair, both resolved in the span holding its middle, so that a word never
    /// straddles a removed silence.
    pub fn original_range(&self, start: f64, end: f64) -> (f64, f64) {
        let span = self.span_index((start + end) / 2.0, false);
        (
            self.original_time_in(start, span),
            self.original_time_in(end, span),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(start: usize, end: usize) -> SpeechSpan {
        SpeechSpan { start, end }
    }

    #[test]
    fn collected_speech_maps_back_sample_for_sample() {
        let audio: Vec<f32> = (0..100_000).map(|i| i as f32).collect();
        let spans = [
            span(16_000, 32_000),
            span(48_000, 56_000),
            span(80_000, 96_000),
        ];
        let speech = collect_speech(&audio, &spans);
        let tl = Timeline::new(&spans);
        for (i, v) in speech.iter().enumerate().step_by(997) {
            let t = i as f64 / 16_000.0;
            let back = tl.original_start(t) * 16_000.0;
            assert!((back - *v as f64).abs() < 1e-6, "sample {i}: {back} vs {v}");
        }
        // The end of the first span stays in the first span.
        assert_eq!(tl.original_end(1.0), 2.0);
        assert_eq!(tl.original_start(1.0), 3.0);
        // A word across the first cut is resolved in the span of its middle.
        assert_eq!(tl.original_range(0.9, 1.2), (2.9, 3.2));
    }

    #[test]
    fn segments_crossing_a_cut_are_dated_on_the_side_of_their_speech() {
        // Spans 1..3 s and 10..14 s: concatenated 0..2 s and 2..6 s.
        let tl = Timeline::new(&[span(16_000, 48_000), span(160_000, 224_000)]);
        // Starts 0.1 s before the cut: the speech is after it, at 10 s.
        assert_eq!(tl.original_segment(1.9, 5.0, 0.5), (10.0, 13.0));
        // Ends 0.2 s after the cut: the speech ended before it, at 3 s.
        assert_eq!(tl.original_segment(0.5, 2.2, 0.5), (1.5, 3.0));
        // Well inside both spans: each end keeps its own span.
        assert_eq!(tl.original_segment(1.0, 4.0, 0.5), (2.0, 12.0));
        // faster-whisper's mapping, without the edge rule, dates the first case 8 s early.
        assert_eq!(tl.original_start(1.9), 2.9);
    }

    #[test]
    fn without_spans_times_are_unchanged() {
        assert_eq!(Timeline::new(&[]).original_start(3.5), 3.5);
    }

    #[test]
    fn windows_hold_at_most_the_limit() {
        let spans = [span(0, 10), span(20, 35), span(50, 52), span(60, 100)];
        let w = merge_into_windows(&spans, 20);
        assert_eq!(w.len(), 3);
        assert_eq!(w[0].spans, vec![span(0, 10)]);
        assert_eq!((w[1].start, w[1].end, w[1].speech_samples()), (20, 52, 17));
        assert_eq!(
            w[2].spans,
            vec![span(60, 100)],
            "a long span gets its own window"
        );
    }
}
