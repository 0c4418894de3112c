//! From frame probabilities to speech spans, with faster-whisper 1.2.1's `get_speech_timestamps`
//! rules: hysteresis between `threshold` and `neg_threshold`, a minimum silence before a span
//! ends, splitting of over-long spans at their last pause, dropping of short spans, and padding.

use crate::{VadError, FRAME_SAMPLES, SAMPLE_RATE};

/// VAD options, with faster-whisper's defaults (`faster_whisper.vad.VadOptions`).
#[derive(Clone, Debug, PartialEq)]
pub struct VadOptions {
    /// Frames with a speech probability at or above this are speech.
    pub threshold: f32,
    /// Below this, a frame is silence; between the two, it continues the current state.
    /// `None`: `max(threshold - 0.15, 0.01)`.
    pub neg_threshold: Option<f32>,
    /// Spans shorter than this are dropped.
    pub min_speech_duration_ms: u32,
    /// Spans longer than this are split at their last pause of over 98 ms, else cut.
    pub max_speech_duration_s: f32,
    /// Silence shorter than this does not end a span.
    pub min_silence_duration_ms: u32,
    /// Added on each side of every span (halved between spans closer than twice this).
    pub speech_pad_ms: u32,
}

impl Default for VadOptions {
    fn default() -> Self {
        VadOptions {
            threshold: 0.5,
            neg_threshold: None,
            min_speech_duration_ms: 0,
            max_speech_duration_s: f32::INFINITY,
            min_silence_duration_ms: 2000,
            speech_pad_ms: 400,
        }
    }
}

impl VadOptions {
    /// Checks every value; the error names the option and the accepted range.
    pub fn validate(&self) -> Result<(), VadError> {
        let bad = |option: &'static str, message: String| {
            Err(VadError::InvalidOption { option, message })
        };
        if !(self.threshold > 0.0 && self.threshold < 1.0) {
            return bad(
                "threshold",
                format!(
                    "{} is not a probability between 0 and 1 (exclusive)",
                    self.threshold
                ),
            );
        }
        if let Some(n) = self.neg_threshold {
            if !(n >= 0.0 && n <= self.threshold) {
                return bad(
                    "neg_threshold",
                    format!("{n} must be between 0 and threshold ({})", self.threshold),
                );
            }
        }
        // The longest span must leave room for one frame and the padding on both sides.
        let min_max_s = (FRAME_SAMPLES as f64 + 2.0 * self.pad_samples()) / SAMPLE_RATE as f64;
        let max_s = self.max_speech_duration_s;
        if max_s.is_nan() || (max_s as f64) <= min_max_s {
            return bad(
                "max_speech_duration_s",
                format!(
                    "{max_s} s is too short: it must exceed one 32 ms frame plus twice \
                     speech_pad_ms ({min_max_s} s); use infinity for no limit"
                ),
            );
        }
        Ok(())
    }

    fn pad_samples(&self) -> f64 {
        SAMPLE_RATE as f64 * self.speech_pad_ms as f64 / 1000.0
    }
}

/// A stretch of speech, in samples of the 16 kHz recording: `start..end`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpeechSpan {
    pub start: usize,
    pub end: usize,
}

/// The speech spans of a recording of `audio_len` samples from its frame probabilities.
pub fn speech_spans_from_probabilities(
    probs: &[f32],
    audio_len: usize,
    options: &VadOptions,
) -> Vec<SpeechSpan> {
    let sr = SAMPLE_RATE as f64;
    let window = FRAME_SAMPLES as i64;
    let threshold = options.threshold as f64;
    let neg_threshold = options
        .neg_threshold
        .map_or_else(|| (threshold - 0.15).max(0.01), |n| n as f64);
    let min_speech = sr * options.min_speech_duration_ms as f64 / 1000.0;
    let pad = options.pad_samples();
    let max_speech = sr * options.max_speech_duration_s as f64 - window as f64 - 2.0 * pad;
    let min_silence = sr * options.min_silence_duration_ms as f64 / 1000.0;
    let min_silence_at_max_speech = sr * 98.0 / 1000.0;
    let audio_len = audio_len as i64;

    // Spans as (start, end) in samples, before padding.
    let mut speeches: Vec<(i64, i64)> = Vec::new();
    let mut triggered = false;
    let mut current_start: Option<i64> = None;
    let mut temp_end = 0i64;
    let (mut prev_end, mut next_start) = (0i64, 0i64);
    for (i, &p) in probs.iter().enumerate() {
        let p = p as f64;
        let pos = window * i as i64;
        if p >= threshold && temp_end != 0 {
            temp_end = 0;
            if next_start < prev_end {
                next_start = pos;
            }
        }
        if p >= threshold && !triggered {
            triggered = true;
            current_start = Some(pos);
            continue;
        }
        if let Some(start) = current_start.filter(|_| triggered) {
            if (pos - start) as f64 > max_speech {
                if prev_end != 0 {
                    speeches.push((start, prev_end));
                    current_start = None;
                    // Silence reached at prev_end and no speech since: end the span here.
                    if next_start < prev_end {
                        triggered = false;
                    } else {
                        current_start = Some(next_start);
                    }
                    (prev_end, next_start, temp_end) = (0, 0, 0);
                } else {
                    speeches.push((start, pos));
                    current_start = None;
                    (prev_end, next_start, temp_end) = (0, 0, 0);
                    triggered = false;
                    continue;
                }
            }
        }
        if p < neg_threshold && triggered {
            if temp_end == 0 {
                temp_end = pos;
            }
            // A pause long enough to split at if the span grows too long.
            if (pos - temp_end) as f64 > min_silence_at_max_speech {
                prev_end = temp_end;
            }
            if ((pos - temp_end) as f64) < min_silence {
                continue;
            }
            if let Some(start) = current_start.take() {
                if (temp_end - start) as f64 > min_speech {
                    speeches.push((start, temp_end));
                }
            }
            (prev_end, next_start, temp_end) = (0, 0, 0);
            triggered = false;
        }
    }
    if let Some(start) = current_start {
        if (audio_len - start) as f64 > min_speech {
            speeches.push((start, audio_len));
        }
    }

    // Padding: each side by `pad`, or half the gap where two spans are closer than 2 × pad.
    let n = speeches.len();
    for i in 0..n {
        if i == 0 {
            speeches[0].0 = (speeches[0].0 as f64 - pad).max(0.0) as i64;
        }
        if i + 1 < n {
            let silence = speeches[i + 1].0 - speeches[i].1;
            if (silence as f64) < 2.0 * pad {
                speeches[i].1 += silence.div_euclid(2);
                speeches[i + 1].0 = (speeches[i + 1].0 - silence.div_euclid(2)).max(0);
            } else {
                speeches[i].1 = (speeches[i].1 as f64 + pad).min(audio_len as f64) as i64;
                speeches[i + 1].0 = (speeches[i + 1].0 as f64 - pad).max(0.0) as i64;
            }
        } else {
            speeches[i].1 = (speeches[i].1 as f64 + pad).min(audio_len as f64) as i64;
        }
    }
    speeches
        .into_iter()
        .map(|(s, e)| SpeechSpan {
            start: s.max(0) as usize,
            end: e.max(0) as usize,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probs(pattern: &[(f32, usize)]) -> Vec<f32> {
        pattern
            .iter()
            .flat_map(|&(p, n)| std::iter::repeat_n(p, n))
            .collect()
    }

    #[test]
    fn defaults_are_faster_whispers_and_valid() {
        let o = VadOptions::default();
        assert_eq!((o.threshold, o.neg_threshold), (0.5, None));
        assert_eq!(
            (o.min_speech_duration_ms, o.min_silence_duration_ms),
            (0, 2000)
        );
        assert_eq!(
            (o.max_speech_duration_s, o.speech_pad_ms),
            (f32::INFINITY, 400)
        );
        o.validate().unwrap();
    }

    #[test]
    fn invalid_values_are_named() {
        let d = VadOptions::default;
        for (o, name) in [
            (
                VadOptions {
                    threshold: 1.0,
                    ..d()
                },
                "threshold",
            ),
            (
                VadOptions {
                    threshold: f32::NAN,
                    ..d()
                },
                "threshold",
            ),
            (
                VadOptions {
                    neg_threshold: Some(0.6),
                    ..d()
                },
                "neg_threshold",
            ),
            (
                VadOptions {
                    max_speech_duration_s: 0.5,
                    ..d()
                },
                "max_speech_duration_s",
            ),
        ] {
            let e = o.validate().unwrap_err().to_string();
            assert!(e.contains(name), "{e}");
        }
    }

    #[test]
    fn one_span_is_padded_and_clamped() {
        // 10 silent frames, 20 speech frames, 100 silent frames (3.2 s > 2 s minimum silence).
        let p = probs(&[(0.0, 10), (0.9, 20), (0.0, 100)]);
        let len = p.len() * FRAME_SAMPLES;
        let s = speech_spans_from_probabilities(&p, len, &VadOptions::default());
        assert_eq!(
            s,
            vec![SpeechSpan {
                start: 0,
                end: 30 * 512 + 6400
            }],
            "start 10×512 − 6400 clamps to 0; end 30×512 + 6400"
        );
    }

    #[test]
    fn short_pauses_do_not_split_and_close_spans_share_the_gap() {
        let o = VadOptions {
            min_silence_duration_ms: 100,
            speech_pad_ms: 30,
            ..VadOptions::default()
        };
        // A 2-frame dip (64 ms < 100 ms) keeps one span; a 10-frame gap splits.
        let p = probs(&[
            (0.9, 20),
            (0.1, 2),
            (0.9, 20),
            (0.1, 10),
            (0.9, 5),
            (0.1, 20),
        ]);
        let s = speech_spans_from_probabilities(&p, p.len() * 512, &o);
        assert_eq!(s.len(), 2, "{s:?}");
        assert_eq!(s[0].start, 0);
        // Gap 42×512..52×512 is 5120 samples ≥ 2 × 480: both sides padded by 480.
        assert_eq!(s[0].end, 42 * 512 + 480);
        assert_eq!(s[1].start, 52 * 512 - 480);
    }

    #[test]
    fn hysteresis_keeps_middle_probabilities_in_speech() {
        let o = VadOptions {
            min_silence_duration_ms: 0,
            speech_pad_ms: 0,
            ..VadOptions::default()
        };
        // 0.4 is below the threshold (0.5) but above neg_threshold (0.35): still speech.
        let p = probs(&[(0.9, 3), (0.4, 5), (0.1, 3)]);
        let s = speech_spans_from_probabilities(&p, p.len() * 512, &o);
        assert_eq!(
            s,
            vec![SpeechSpan {
                start: 0,
                end: 8 * 512
            }]
        );
    }

    #[test]
    fn long_speech_is_split_at_the_last_pause() {
        let o = VadOptions {
            max_speech_duration_s: 2.0,
            speech_pad_ms: 0,
            ..VadOptions::default()
        };
        // 2 s = 62.5 frames. A 5-frame pause (160 ms > 98 ms) at frames 40..45.
        let p = probs(&[(0.9, 40), (0.1, 5), (0.9, 60), (0.1, 80)]);
        let s = speech_spans_from_probabilities(&p, p.len() * 512, &o);
        assert_eq!(
            s[0],
            SpeechSpan {
                start: 0,
                end: 40 * 512
            }
        );
        assert_eq!(s[1].start, 45 * 512);
        assert!(s.iter().all(|x| x.end - x.start <= 2 * 16000), "{s:?}");
    }
}
