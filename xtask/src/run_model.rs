//! `cargo xtask run-model AUDIO...`: `xdna-whisper transcribe` (the same code), plus `--sample`
//! for the demo clip.

use anyhow::bail;
use xdna_whisper::model_args::BackendArg;
use xdna_whisper::transcribe::{self, TranscribeArgs};

#[derive(clap::Args)]
pub struct Args {
    /// Transcribe the demo clip (downloaded on first use) instead of files.
    #[arg(long)]
    pub sample: bool,
    #[command(flatten)]
    pub transcribe: TranscribeArgs,
}

pub fn run(mut args: Args) -> anyhow::Result<()> {
    if args.sample {
        if !args.transcribe.files.is_empty() {
            bail!("give audio files or --sample, not both");
        }
        let sample = whisper_fetch::fetch_sample(&args.transcribe.model.cache())?;
        args.transcribe.files.push(sample);
    } else if args.transcribe.files.is_empty() {
        bail!("give an audio file to transcribe (or --sample for the demo clip)");
    }
    // The emulator runs rendered designs: render this workspace's kernels (up-to-date ones
    // cost only their hash) unless a manifest was named.
    let model = &mut args.transcribe.model;
    if model.backend == BackendArg::Emu && model.kernels.is_none() {
        model.kernels = Some(crate::build_kernels::emitted_manifest()?);
    }
    if model.backend == BackendArg::Npu && model.kernels.is_none() {
        model.kernels = crate::build_kernels::built_manifest();
    }
    transcribe::run(&args.transcribe)
}
