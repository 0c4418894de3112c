//! Subtitle cues (SRT, WebVTT) from a transcript: one cue per segment, or, when the segments
//! have words, cues built from words with line-width, line-count and words-per-line limits and
//! optional highlighting of the word being spoken, as openai-whisper's subtitle writers do.

use crate::transcribe::Transcript;

/// How subtitles are laid out from words (used only when the transcript has word timestamps).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriterOptions {
    /// Characters per line before a line break; with `max_line_count` also breaks cues across
    /// segments (at long pauses or when the cue is full) instead of one cue per segment.
    pub max_line_width: Option<usize>,
    /// Lines per cue (needs `max_line_width`).
    pub max_line_count: Option<usize>,
    /// Words per cue at most; 1 gives one cue per word.
    pub max_words_per_line: Option<usize>,
    /// Underline each word while it is spoken (`<u>word</u>`), one cue per word.
    pub highlight_words: bool,
}

/// One subtitle: a time span and its (possibly multi-line) text.
#[derive(Clone, Debug, PartialEq)]
pub struct Cue {
    pub start: f32,
    pub end: f32,
    pub text: String,
}

/// A word placed in a cue: its text as shown (with the line break before it, if any).
struct Placed {
    text: String,
    start: f32,
    end: f32,
}

/// Pause (seconds) after which a new cue starts when segments are not preserved.
const LONG_PAUSE: f32 = 3.0;

/// The cues of `t`. `same_time` says whether two times print the same (highlighting skips the
/// gap cue between words that touch at the printed precision).
pub fn cues(
    t: &Transcript,
    opts: &WriterOptions,
    same_time: impl Fn(f32, f32) -> bool,
) -> Vec<Cue> {
    if !t.segments.iter().any(|s| !s.words.is_empty()) {
        return t
            .segments
            .iter()
            .map(|s| Cue {
                start: s.start,
                end: s.end,
                text: s.text.trim().replace("-->", "->"),
            })
            .collect();
    }
    let mut out = Vec::new();
    for sub in group_words(t, opts) {
        let text: String = sub.iter().map(|w| w.text.as_str()).collect();
        let (start, end) = (sub[0].start, sub[sub.len() - 1].end);
        if !opts.highlight_words {
            out.push(Cue { start, end, text });
            continue;
        }
        let mut last = start;
        for (i, w) in sub.iter().enumerate() {
            if !same_time(last, w.start) {
                out.push(Cue {
                    start: last,
                    end: w.start,
                    text: text.clone(),
                });
            }
            let marked: String = sub
                .iter()
                .enumerate()
                .map(|(j, o)| {
                    if i == j {
                        underline(&o.text)
                    } else {
                        o.text.clone()
                    }
                })
                .collect();
            out.push(Cue {
                start: w.start,
                end: w.end,
                text: marked,
            });
            last = w.end;
        }
    }
    out
}

/// `<u>…</u>` around a word, after its leading whitespace (and line break).
fn underline(word: &str) -> String {
    let body = word.trim_start();
    let lead = &word[..word.len() - body.len()];
    format!("{lead}<u>{body}</u>")
}

/// Groups the words of every segment into cues, breaking lines at `max_line_width` characters.
fn group_words(t: &Transcript, opts: &WriterOptions) -> Vec<Vec<Placed>> {
    let preserve_segments = opts.max_line_count.is_none() || opts.max_line_width.is_none();
    let max_width = opts.max_line_width.unwrap_or(1000);
    let per_chunk = opts.max_words_per_line.unwrap_or(1000).max(1);
    let mut subs = Vec::new();
    let mut sub: Vec<Placed> = Vec::new();
    let (mut line_len, mut line_count) = (0usize, 1usize);
    let mut last = t
        .segments
        .iter()
        .find_map(|s| s.words.first().map(|w| w.start))
        .or_else(|| t.segments.first().map(|s| s.start))
        .unwrap_or(0.0);
    for segment in &t.segments {
        for chunk in segment.words.chunks(per_chunk) {
            for (i, w) in chunk.iter().enumerate() {
                let len = w.word.chars().count();
                let long_pause = !preserve_segments && w.start - last > LONG_PAUSE;
                let has_room = line_len + len <= max_width;
                let chunk_break = i == 0 && !sub.is_empty() && preserve_segments;
                let mut text = w.word.clone();
                if line_len > 0 && has_room && !long_pause && !chunk_break {
                    line_len += len;
                } else {
                    text = text.trim().to_string();
                    let full = opts
                        .max_line_count
                        .is_some_and(|max| long_pause || line_count >= max);
                    if (!sub.is_empty() && full) || chunk_break {
                        subs.push(std::mem::take(&mut sub));
                        line_count = 1;
                    } else if line_len > 0 {
                        line_count += 1;
                        text.insert(0, '\n');
                    }
                    line_len = text.trim().chars().count();
                }
                sub.push(Placed {
                    text,
                    start: w.start,
                    end: w.end,
                });
                last = w.start;
            }
        }
    }
    if !sub.is_empty() {
        subs.push(sub);
    }
    subs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::{render, render_with, Format};
    use crate::transcribe::Segment;
    use crate::Word;

    fn word(word: &str, start: f32, end: f32) -> Word {
        Word {
            word: word.into(),
            start,
            end,
            probability: 0.9,
        }
    }

    fn segment(id: usize, words: Vec<Word>) -> Segment {
        Segment {
            id,
            seek: 0,
            start: words[0].start,
            end: words[words.len() - 1].end,
            text: words.iter().map(|w| w.word.as_str()).collect(),
            tokens: vec![],
            temperature: 0.0,
            avg_logprob: -0.2,
            compression_ratio: 1.2,
            no_speech_prob: 0.01,
            words,
        }
    }

    fn transcript() -> Transcript {
        let segments = vec![
            segment(
                0,
                vec![
                    word(" Hello", 0.0, 0.5),
                    word(" big", 0.6, 1.0),
                    word(" world.", 1.1, 2.0),
                ],
            ),
            segment(1, vec![word(" Bye", 6.0, 6.4), word(" now.", 6.5, 7.0)]),
        ];
        Transcript {
            text: segments.iter().map(|s| s.text.as_str()).collect(),
            language: "en".into(),
            duration: 7.5,
            segments,
            times: Default::default(),
        }
    }

    fn texts(opts: &WriterOptions) -> Vec<(f32, f32, String)> {
        cues(&transcript(), opts, |a, b| a == b)
            .into_iter()
            .map(|c| (c.start, c.end, c.text))
            .collect()
    }

    #[test]
    fn one_cue_per_segment_by_default() {
        let got = texts(&WriterOptions::default());
        assert_eq!(
            got,
            vec![
                (0.0, 2.0, "Hello big world.".to_string()),
                (6.0, 7.0, "Bye now.".to_string())
            ]
        );
    }

    #[test]
    fn one_cue_per_word() {
        let opts = WriterOptions {
            max_words_per_line: Some(1),
            ..WriterOptions::default()
        };
        let got = texts(&opts);
        assert_eq!(got.len(), 5);
        assert_eq!(got[1], (0.6, 1.0, "big".to_string()));
        let srt = render_with(&transcript(), Format::Srt, &opts);
        assert!(
            srt.starts_with("1\n00:00:00,000 --> 00:00:00,500\nHello\n\n2\n"),
            "{srt}"
        );
    }

    #[test]
    fn lines_wrap_and_cues_break_at_long_pauses() {
        let opts = WriterOptions {
            max_line_width: Some(10),
            max_line_count: Some(2),
            ..WriterOptions::default()
        };
        assert_eq!(
            texts(&opts),
            vec![
                (0.0, 2.0, "Hello big\nworld.".to_string()),
                (6.0, 7.0, "Bye now.".to_string())
            ]
        );
        // A full cue breaks even without a pause.
        let one_line = WriterOptions {
            max_line_width: Some(10),
            max_line_count: Some(1),
            ..WriterOptions::default()
        };
        let got = texts(&one_line);
        assert_eq!(got[0].2, "Hello big");
        assert_eq!(got[1], (1.1, 2.0, "world.".to_string()));
    }

    #[test]
    fn highlighting_underlines_each_word_in_turn() {
        let opts = WriterOptions {
            highlight_words: true,
            ..WriterOptions::default()
        };
        let got = texts(&opts);
        assert_eq!(got.len(), 8, "{got:?}");
        assert_eq!(got[0], (0.0, 0.5, "<u>Hello</u> big world.".to_string()));
        // The gap between two words shows the plain text.
        assert_eq!(got[1], (0.5, 0.6, "Hello big world.".to_string()));
        assert_eq!(got[2], (0.6, 1.0, "Hello <u>big</u> world.".to_string()));
        assert_eq!(underline("\nworld."), "\n<u>world.</u>");
    }

    #[test]
    fn json_has_words_only_when_timed() {
        let mut t = transcript();
        let json: serde_json::Value = serde_json::from_str(&render(&t, Format::Json)).unwrap();
        assert_eq!(json["segments"][0]["words"][2]["word"], " world.");
        assert_eq!(json["segments"][1]["words"][0]["start"], 6.0);
        t.segments[1].words.clear();
        let json: serde_json::Value = serde_json::from_str(&render(&t, Format::Json)).unwrap();
        assert!(json["segments"][1].get("words").is_none());
    }
}
