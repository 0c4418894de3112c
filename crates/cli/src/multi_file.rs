//! `xdna-whisper transcribe A B C ...` without `--batch-size`: files go in groups through
//! [`Whisper::transcribe_files`], which transcribes `--jobs` at once and merges their decoding
//! steps, so a run over many files shares each read of the decoder's weights. Each file gets
//! the transcript it gets alone; transcripts are written in the order of the files given.

use anyhow::bail;
use indicatif::{ProgressBar, ProgressStyle};
use whisper_model::output::render_with;
use whisper_model::{load_audio, CancelToken, TranscribeOptions, Whisper};

use crate::transcribe::{write_transcript, TranscribeArgs};

/// Files whose audio is held at once.
const GROUP: usize = 32;

pub fn run(
    args: &TranscribeArgs,
    whisper: &Whisper,
    options: &TranscribeOptions,
) -> anyhow::Result<()> {
    let bar = ProgressBar::new(args.files.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{spinner} {elapsed_precise} [{bar:30}] {pos}/{len} files")
            .expect("valid template"),
    );
    let mut failed = Vec::new();
    for (g, group) in args.files.chunks(GROUP).enumerate() {
        let first = g * GROUP;
        let mut loaded = Vec::new();
        for (i, path) in group.iter().enumerate() {
            match load_audio(path) {
                Ok(samples) => loaded.push((first + i, path, samples)),
                Err(e) => {
                    tracing::error!("{}: {e:#}", path.display());
                    failed.push(path.display().to_string());
                }
            }
        }
        let audio: Vec<&[f32]> = loaded.iter().map(|(_, _, s)| s.as_slice()).collect();
        let results = whisper.transcribe_files(&audio, options, args.jobs, &CancelToken::new())?;
        for ((i, path, _), result) in loaded.iter().zip(results) {
            match result {
                Ok(t) => {
                    let text =
                        render_with(&t, args.format.into(), &args.subtitles.writer_options());
                    write_transcript(args, *i, path, &text)?;
                }
                Err(e) => {
                    tracing::error!("{}: {e:#}", path.display());
                    failed.push(path.display().to_string());
                }
            }
        }
        bar.inc(group.len() as u64);
    }
    bar.finish_and_clear();
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
