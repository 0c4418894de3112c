//! Transcript output formats: plain text, SubRip (SRT), WebVTT and JSON. With word timestamps,
//! JSON carries every segment's words and the subtitle formats can be laid out from words
//! ([`WriterOptions`]).

pub mod subtitles;

use std::fmt::Write;

use crate::transcribe::Transcript;
pub use subtitles::WriterOptions;

/// A transcript output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Txt,
    Srt,
    Vtt,
    Json,
}

impl Format {
    pub const ALL: [Format; 4] = [Format::Txt, Format::Srt, Format::Vtt, Format::Json];

    /// The name [`Format::from_str`](std::str::FromStr) reads, also the usual file extension.
    pub fn name(self) -> &'static str {
        match self {
            Format::Txt => "txt",
            Format::Srt => "srt",
            Format::Vtt => "vtt",
            Format::Json => "json",
        }
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Format, String> {
        Format::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| format!("unknown output format {s:?}; expected txt, srt, vtt or json"))
    }
}

/// Renders a transcript in `format`, subtitles one cue per segment.
pub fn render(t: &Transcript, format: Format) -> String {
    render_with(t, format, &WriterOptions::default())
}

/// Renders a transcript in `format`, laying subtitles out by `opts` when the transcript has
/// word timestamps.
pub fn render_with(t: &Transcript, format: Format, opts: &WriterOptions) -> String {
    let cues = |decimal| {
        subtitles::cues(t, opts, |a, b| {
            timestamp(a, decimal) == timestamp(b, decimal)
        })
    };
    match format {
        Format::Txt => t
            .segments
            .iter()
            .map(|s| format!("{}\n", s.text.trim()))
            .collect(),
        Format::Srt => {
            let mut out = String::new();
            for (i, c) in cues(',').iter().enumerate() {
                let _ = write!(
                    out,
                    "{}\n{} --> {}\n{}\n\n",
                    i + 1,
                    timestamp(c.start, ','),
                    timestamp(c.end, ','),
                    c.text
                );
            }
            out
        }
        Format::Vtt => {
            let mut out = String::from("WEBVTT\n\n");
            for c in cues('.') {
                let _ = write!(
                    out,
                    "{} --> {}\n{}\n\n",
                    timestamp(c.start, '.'),
                    timestamp(c.end, '.'),
                    c.text
                );
            }
            out
        }
        Format::Json => serde_json::to_string_pretty(t).expect("a transcript serialises") + "\n",
    }
}

/// `HH:MM:SS,mmm` (SRT) or `HH:MM:SS.mmm` (WebVTT).
fn timestamp(seconds: f32, decimal: char) -> String {
    let ms = (seconds.max(0.0) as f64 * 1000.0).round() as u64;
    let (h, m, s, ms) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000);
    format!("{h:02}:{m:02}:{s:02}{decimal}{ms:03}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transcribe::Segment;

    fn transcript() -> Transcript {
        let seg = |id, start, end, text: &str| Segment {
            id,
            seek: 0,
            start,
            end,
            text: text.to_string(),
            tokens: vec![],
            temperature: 0.0,
            avg_logprob: -0.2,
            compression_ratio: 1.2,
            no_speech_prob: 0.01,
            words: vec![],
        };
        Transcript {
            text: " Hello. World.".into(),
            language: "en".into(),
            duration: 3725.5,
            segments: vec![
                seg(0, 0.0, 1.5, " Hello."),
                seg(1, 3723.25, 3725.5, " World."),
            ],
            times: Default::default(),
        }
    }

    #[test]
    fn format_names_round_trip() {
        for f in Format::ALL {
            assert_eq!(f.name().parse::<Format>(), Ok(f));
        }
        assert!("xml".parse::<Format>().unwrap_err().contains("xml"));
    }

    #[test]
    fn timestamps_format() {
        assert_eq!(timestamp(0.0, ','), "00:00:00,000");
        assert_eq!(timestamp(3723.25, '.'), "01:02:03.250");
    }

    #[test]
    fn srt_and_vtt() {
        let t = transcript();
        assert_eq!(
            render(&t, Format::Srt),
            "1\n00:00:00,000 --> 00:00:01,500\nHello.\n\n2\n01:02:03,250 --> 01:02:05,500\nWorld.\n\n"
        );
        assert!(render(&t, Format::Vtt)
            .starts_with("WEBVTT\n\n00:00:00.000 --> 00:00:01.500\nHello.\n\n"));
        assert_eq!(render(&t, Format::Txt), "Hello.\nWorld.\n");
        let json: serde_json::Value = serde_json::from_str(&render(&t, Format::Json)).unwrap();
        assert_eq!(json["segments"][1]["end"], 3725.5);
    }
}
