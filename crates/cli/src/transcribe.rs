//! `xdna-whisper transcribe FILE...` (and `cargo xtask run-model`): transcribe files with one
//! loaded model. Transcripts go to stdout (or `--output` / `--output-dir`), progress and logs to
//! stderr.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};
use whisper_model::output::render_with;
use whisper_model::{load_audio, CancelToken, Format, TranscribeOptions, Transcript, Whisper};

use crate::ModelArgs;

#[derive(clap::Args, Clone, Debug)]
pub struct TranscribeArgs {
    /// Audio files (WAV, FLAC, MP3, OGG/Vorbis, M4A, AIFF); all share one loaded model.
    pub files: Vec<PathBuf>,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Output format.
    #[arg(long, value_enum, default_value = "txt")]
    pub format: FormatArg,
    /// Write the transcript to FILE instead of stdout (one input file only).
    #[arg(long, short, conflicts_with = "output_dir")]
    pub output: Option<PathBuf>,
    /// Write each transcript to DIR/<file stem>.<format>.
    #[arg(long, value_name = "DIR")]
    pub output_dir: Option<PathBuf>,
    /// Print where the time went: load, mel, encoder, decoder per token, real-time factor, and
    /// the time per kernel.
    #[arg(long)]
    pub profile: bool,
    /// With several files: how many are transcribed at once, their decoding steps sharing
    /// decoder calls (each file gets the transcript it gets alone).
    #[arg(long, default_value_t = 4,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=64))]
    pub jobs: usize,
    #[command(flatten)]
    pub batched: crate::batched::BatchArgs,
    #[command(flatten)]
    pub subtitles: crate::subtitle_args::SubtitleArgs,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum FormatArg {
    Txt,
    Srt,
    Vtt,
    Json,
}

impl From<FormatArg> for Format {
    fn from(f: FormatArg) -> Format {
        match f {
            FormatArg::Txt => Format::Txt,
            FormatArg::Srt => Format::Srt,
            FormatArg::Vtt => Format::Vtt,
            FormatArg::Json => Format::Json,
        }
    }
}

pub fn run(args: &TranscribeArgs) -> anyhow::Result<()> {
    if args.files.is_empty() {
        bail!("give at least one audio file to transcribe");
    }
    if args.output.is_some() && args.files.len() > 1 {
        bail!(
            "--output takes one input file, got {}; use --output-dir DIR for several",
            args.files.len()
        );
    }
    if let Some(batch_size) = args.batched.batch_size {
        return crate::batched::run(args, batch_size);
    }
    let t0 = Instant::now();
    let (whisper, options) = args.model.load(args.profile)?;
    let load_time = t0.elapsed();
    if let Some(dir) = &args.output_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }

    if args.files.len() > 1 && !args.profile {
        return crate::multi_file::run(args, &whisper, &options);
    }
    let mut failed = Vec::new();
    for (i, path) in args.files.iter().enumerate() {
        match transcribe_file(&whisper, &options, path, args) {
            Ok((transcript, timing)) => {
                let text = render_with(
                    &transcript,
                    args.format.into(),
                    &args.subtitles.writer_options(),
                );
                write_transcript(args, i, path, &text)?;
                if args.profile {
                    print_profile(&whisper, args, path, &transcript, load_time, &timing);
                }
            }
            Err(e) => {
                tracing::error!("{}: {e:#}", path.display());
                failed.push(path.display().to_string());
            }
        }
    }
    if !failed.is_empty() {
        bail!(
            "{} of {} files could not be transcribed: {}",
            failed.len(),
            args.files.len(),
            failed.join(", ")
        );
    }
    Ok(())
}

/// Wall-clock times of one file.
struct Timing {
    decode_audio: Duration,
    transcribe: Duration,
}

fn transcribe_file(
    whisper: &Whisper,
    options: &TranscribeOptions,
    path: &Path,
    args: &TranscribeArgs,
) -> anyhow::Result<(Transcript, Timing)> {
    let t1 = Instant::now();
    let samples = load_audio(path)?;
    let decode_audio = t1.elapsed();

    let t2 = Instant::now();
    let mut stream = whisper.transcribe_stream(&samples, options, &CancelToken::new())?;
    // Progress in hundredths of a second of audio.
    let bar = ProgressBar::new((stream.duration() * 100.0) as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} {elapsed_precise} [{bar:30}] {percent}% {wide_msg}",
        )
        .expect("valid template"),
    );
    if args.files.len() > 1 {
        bar.set_prefix(path.display().to_string());
    }
    while let Some(segment) = stream.next() {
        let segment = segment?;
        bar.set_message(format!("[{:.1}s] {}", segment.end, segment.text.trim()));
        bar.set_position((stream.done_seconds() * 100.0) as u64);
    }
    let transcript = stream.into_transcript()?;
    bar.finish_and_clear();
    Ok((
        transcript,
        Timing {
            decode_audio,
            transcribe: t2.elapsed(),
        },
    ))
}

pub(crate) fn write_transcript(
    args: &TranscribeArgs,
    index: usize,
    path: &Path,
    text: &str,
) -> anyhow::Result<()> {
    if let Some(file) = &args.output {
        return crate::atomic::write_atomic(file, text);
    }
    if let Some(dir) = &args.output_dir {
        let stem = path.file_stem().unwrap_or(path.as_os_str());
        let format: Format = args.format.into();
        let file = dir.join(stem).with_extension(format.name());
        return crate::atomic::write_atomic(&file, text);
    }
    let mut out = std::io::stdout().lock();
    if args.files.len() > 1 {
        // Which transcript is which, as `head` marks files.
        if index > 0 {
            writeln!(out)?;
        }
        writeln!(out, "==> {} <==", path.display())?;
    }
    out.write_all(text.as_bytes())?;
    Ok(())
}

fn print_profile(
    whisper: &Whisper,
    args: &TranscribeArgs,
    path: &Path,
    t: &Transcript,
    load_time: Duration,
    timing: &Timing,
) {
    let times = &t.times;
    let total = timing.transcribe.as_secs_f64();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    eprintln!(
        "audio {:.2} s ({}), model {}, backend {}, {} threads",
        t.duration,
        path.display(),
        args.model.model,
        whisper.backend_name(),
        whisper.threads()
    );
    eprintln!("load model   {:8.1} ms", ms(load_time));
    eprintln!("decode audio {:8.1} ms", ms(timing.decode_audio));
    eprintln!("log-mel      {:8.1} ms", ms(times.mel));
    eprintln!(
        "encoder      {:8.1} ms over {} windows",
        ms(times.encoder),
        times.windows
    );
    eprintln!(
        "decoder      {:8.1} ms over {} tokens ({:.2} ms/token)",
        ms(times.decoder),
        times.decoded_tokens,
        ms(times.decoder) / times.decoded_tokens.max(1) as f64
    );
    eprintln!(
        "transcribe   {:8.1} ms: {:.1}x real time",
        total * 1e3,
        t.duration as f64 / total
    );
    eprintln!("{}", whisper.profile_report());
}
