//! `--vad` and its options: transcribe only the speech that Silero VAD finds (faster-whisper's
//! `vad_filter`). The defaults are faster-whisper's (`VadOptions::default()`).

use whisper_model::VadOptions;

#[derive(clap::Args, Clone, Debug, Default)]
pub struct VadArgs {
    /// Skip what is not speech (Silero VAD v6, fetched into the cache on first use); timestamps
    /// stay on the recording's timeline.
    #[arg(long)]
    pub vad: bool,
    /// Speech probability at or above which a 32 ms frame is speech [default: 0.5].
    #[arg(long, value_name = "P", requires = "vad")]
    pub vad_threshold: Option<f32>,
    /// Drop speech shorter than this [default: 0].
    #[arg(long, value_name = "MS", requires = "vad")]
    pub vad_min_speech_ms: Option<u32>,
    /// Silence shorter than this does not end speech [default: 2000].
    #[arg(long, value_name = "MS", requires = "vad")]
    pub vad_min_silence_ms: Option<u32>,
    /// Padding kept on each side of speech [default: 400].
    #[arg(long, value_name = "MS", requires = "vad")]
    pub vad_speech_pad_ms: Option<u32>,
    /// Split speech longer than this at its last pause [default: no limit].
    #[arg(long, value_name = "S", requires = "vad")]
    pub vad_max_speech_s: Option<f32>,
}

impl VadArgs {
    /// The VAD options, when `--vad` is given.
    pub fn options(&self) -> Option<VadOptions> {
        if !self.vad {
            return None;
        }
        Some(self.over(VadOptions::default()))
    }

    /// `defaults` with the values given on the command line (batched mode has defaults of its
    /// own).
    pub fn over(&self, d: VadOptions) -> VadOptions {
        VadOptions {
            threshold: self.vad_threshold.unwrap_or(d.threshold),
            neg_threshold: d.neg_threshold,
            min_speech_duration_ms: self.vad_min_speech_ms.unwrap_or(d.min_speech_duration_ms),
            max_speech_duration_s: self.vad_max_speech_s.unwrap_or(d.max_speech_duration_s),
            min_silence_duration_ms: self.vad_min_silence_ms.unwrap_or(d.min_silence_duration_ms),
            speech_pad_ms: self.vad_speech_pad_ms.unwrap_or(d.speech_pad_ms),
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        vad: VadArgs,
    }

    #[test]
    fn defaults_are_faster_whispers_and_flags_override_them() {
        let none = Cli::parse_from(["x"]);
        assert_eq!(none.vad.options(), None);
        let on = Cli::parse_from(["x", "--vad"]);
        assert_eq!(on.vad.options(), Some(VadOptions::default()));
        let tuned = Cli::parse_from([
            "x",
            "--vad",
            "--vad-threshold",
            "0.6",
            "--vad-min-silence-ms",
            "500",
            "--vad-max-speech-s",
            "30",
        ]);
        let o = tuned.vad.options().unwrap();
        assert_eq!((o.threshold, o.min_silence_duration_ms), (0.6, 500));
        assert_eq!(o.max_speech_duration_s, 30.0);
        assert_eq!(o.speech_pad_ms, 400);
        assert!(Cli::try_parse_from(["x", "--vad-threshold", "0.6"]).is_err());
    }
}
