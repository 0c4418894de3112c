//! `cargo xtask bench-child` (hidden): this project's side of `cargo xtask bench`, run in a
//! process of its own so that the parent can measure its whole-process time and peak memory
//! exactly as it measures faster-whisper's. Prints one JSON report on stdout.

use std::time::Instant;

use serde_json::json;
use whisper_model::{audio, CancelToken};

use crate::bench::Args;

/// Transcribes the files as `cargo xtask bench` asked; `--multi-file`: as one multi-file run
/// (`Whisper::transcribe_files`, as `xdna-whisper transcribe` runs several files): `--jobs`
/// files at a time, their decoding steps merged.
pub fn run(mut args: Args) -> anyhow::Result<()> {
    args.files = crate::bench::files(&args)?;
    let languages = crate::bench::file_languages(&args)?;
    let t0 = Instant::now();
    let (whisper, options) = args.model.load(false)?;
    let load_seconds = t0.elapsed().as_secs_f64();
    let mut files = Vec::new();
    let t1 = Instant::now();
    match args.multi_file.then_some(args.jobs) {
        None => {
            for (file, language) in args.files.iter().zip(languages) {
                let start = Instant::now();
                let samples = audio::load_audio(file)?;
                let options = whisper_model::TranscribeOptions {
                    language,
                    ..options.clone()
                };
                let t = whisper.transcribe(&samples, &options)?;
                let seconds = start.elapsed().as_secs_f64();
                files.push(json!({"file": file, "seconds": seconds, "text": t.text}));
            }
        }
        Some(concurrency) => {
            let samples = args
                .files
                .iter()
                .map(|f| audio::load_audio(f))
                .collect::<Result<Vec<_>, _>>()?;
            let audio: Vec<&[f32]> = samples.iter().map(Vec::as_slice).collect();
            let results =
                whisper.transcribe_files(&audio, &options, concurrency, &CancelToken::new())?;
            for (file, t) in args.files.iter().zip(results) {
                files.push(json!({"file": file, "text": t?.text}));
            }
        }
    }
    let report = json!({
        "load_seconds": load_seconds,
        "transcribe_seconds": t1.elapsed().as_secs_f64(),
        "results": files,
    });
    println!("{report}");
    Ok(())
}
