//! How srt and vtt subtitles are laid out from words (`--word-timestamps`), as openai-whisper's
//! command does it.

use whisper_model::output::WriterOptions;

#[derive(clap::Args, Clone, Debug, Default)]
pub struct SubtitleArgs {
    /// Characters per subtitle line at most (needs --word-timestamps).
    #[arg(long, value_name = "N", requires = "word_timestamps",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub max_line_width: Option<u64>,
    /// Lines per subtitle at most; cues then also break at pauses over 3 s (needs
    /// --max-line-width).
    #[arg(long, value_name = "N", requires = "max_line_width",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub max_line_count: Option<u64>,
    /// Words per subtitle at most; 1 gives one cue per word (needs --word-timestamps).
    #[arg(long, value_name = "N", requires = "word_timestamps",
          conflicts_with = "max_line_width", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_words_per_line: Option<u64>,
    /// Underline each word of a subtitle while it is spoken (needs --word-timestamps).
    #[arg(long, requires = "word_timestamps")]
    pub highlight_words: bool,
}

impl SubtitleArgs {
    pub fn writer_options(&self) -> WriterOptions {
        let size = |n: Option<u64>| n.map(|n| n as usize);
        WriterOptions {
            max_line_width: size(self.max_line_width),
            max_line_count: size(self.max_line_count),
            max_words_per_line: size(self.max_words_per_line),
            highlight_words: self.highlight_words,
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        model: crate::ModelArgs,
        #[command(flatten)]
        subtitles: super::SubtitleArgs,
    }

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("x").chain(args.iter().copied()))
    }

    #[test]
    fn layout_flags_need_word_timestamps() {
        for flags in [
            &["--max-line-width", "40"][..],
            &["--max-words-per-line", "1"],
            &["--highlight-words"],
        ] {
            let err = parse(flags)
                .err()
                .expect("rejected without --word-timestamps");
            assert!(err.to_string().contains("--word-timestamps"), "{err}");
        }
        let ok = parse(&[
            "--word-timestamps",
            "--max-line-width",
            "40",
            "--max-line-count",
            "2",
        ])
        .unwrap();
        assert!(ok.model.transcribe_options().word_timestamps);
        let w = ok.subtitles.writer_options();
        assert_eq!((w.max_line_width, w.max_line_count), (Some(40), Some(2)));
        assert!(parse(&["--word-timestamps", "--max-line-width", "0"]).is_err());
        assert!(parse(&["--word-timestamps", "--max-line-count", "2"]).is_err());
    }
}
