//! `xdna-whisper`: transcribe audio files, or serve OpenAI's transcription API.

use clap::{Parser, Subcommand};
use xdna_whisper::{batch, logging, serve, transcribe};

#[derive(Parser)]
#[command(
    name = "xdna-whisper",
    version,
    about = "Whisper speech-to-text on AMD Ryzen AI NPUs and CPUs"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Transcribe audio files (one loaded model for all of them).
    Transcribe(transcribe::TranscribeArgs),
    /// Serve /v1/audio/transcriptions and /v1/audio/translations over HTTP (OpenAI's API).
    Serve(serve::ServeArgs),
    /// Transcribe an archive (manifest, directory or S3 prefix) into content-addressed outputs:
    /// shardable (--shard i/N), resumable, one failing file never stops the rest.
    Batch(batch::BatchRunArgs),
}

fn main() -> anyhow::Result<()> {
    logging::init();
    match Cli::parse().command {
        Command::Transcribe(args) => transcribe::run(&args),
        Command::Serve(args) => serve::run(&args),
        Command::Batch(args) => {
            // 2: some inputs failed (recorded); errors that stop the run exit 1 via `?`.
            let status = batch::run(&args)?;
            std::process::exit(status)
        }
    }
}
