//! `xdna-whisper transcribe --batch-size N FILE...`: batched mode (faster-whisper's
//! `BatchedInferencePipeline`). The speech of every file (Silero VAD, on by default here) is cut
//! into windows of at most 30 s, and windows of all files go N at a time through the encoder and
//! the decoder; each window is decoded once, without the previous window's text.

use std::time::Instant;

use anyhow::{bail, Context};
use whisper_model::batched::batched_vad_options;
use whisper_model::output::render;
use whisper_model::{load_audio, BatchOptions};

use crate::transcribe::{write_transcript, TranscribeArgs};

#[derive(clap::Args, Clone, Debug, Default)]
pub struct BatchArgs {
    /// Batched mode: transcribe N windows at a time across all files (speech found by VAD,
    /// windows of up to 30 s, no conditioning on previous text; much faster on long audio).
    #[arg(long, value_name = "N")]
    pub batch_size: Option<usize>,
    /// In batched mode: fixed 30 s windows instead of VAD's speech windows.
    #[arg(long, requires = "batch_size")]
    pub no_vad: bool,
    /// In batched mode: decode no timestamps, each window one segment (faster-whisper's batched
    /// default; less accurate: a window whose text stops early cannot be decoded again).
    #[arg(long, requires = "batch_size")]
    pub without_timestamps: bool,
}

pub fn run(args: &TranscribeArgs, batch_size: usize) -> anyhow::Result<()> {
    if batch_size == 0 {
        bail!("--batch-size must be at least 1 (windows decoded together)");
    }
    let mut model = args.model.clone();
    // VAD is on unless --no-vad; its options start from the batched pipeline's defaults.
    model.vad.vad = !args.batched.no_vad;
    let t0 = Instant::now();
    let (whisper, mut options) = model.load(args.profile)?;
    let load_time = t0.elapsed();
    options.vad = model.vad.vad.then(|| model.vad.over(batched_vad_options()));
    options.without_timestamps = args.batched.without_timestamps;
    if let Some(dir) = &args.output_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }

    // A file that cannot be decoded fails alone; the rest are transcribed together.
    let t1 = Instant::now();
    let mut failed = Vec::new();
    let mut loaded = Vec::new();
    for (i, path) in args.files.iter().enumerate() {
        match load_audio(path) {
            Ok(samples) => loaded.push((i, path, samples)),
            Err(e) => {
                tracing::error!("{}: {e:#}", path.display());
                failed.push(path.display().to_string());
            }
        }
    }
    let decode_audio = t1.elapsed();
    let t2 = Instant::now();
    let audio: Vec<&[f32]> = loaded.iter().map(|(_, _, s)| s.as_slice()).collect();
    let transcripts = whisper.transcribe_many(&audio, &options, &BatchOptions { batch_size })?;
    let wall = t2.elapsed();
    for ((i, path, _), t) in loaded.iter().zip(&transcripts) {
        write_transcript(args, *i, path, &render(t, args.format.into()))?;
    }
    if args.profile {
        let audio_s: f32 = transcripts.iter().map(|t| t.duration).sum();
        let windows: usize = transcripts.iter().map(|t| t.times.windows).sum();
        eprintln!(
            "batched: {} files, {audio_s:.1} s of audio in {windows} windows of up to {batch_size}; \
             load {:.1} s, decode audio {:.1} s, transcribe {:.2} s: {:.1}x real time",
            transcripts.len(),
            load_time.as_secs_f64(),
            decode_audio.as_secs_f64(),
            wall.as_secs_f64(),
            audio_s as f64 / wall.as_secs_f64()
        );
        eprintln!("{}", whisper.profile_report());
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
