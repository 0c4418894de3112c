//! `cargo xtask bench --batched`: batched long-form transcription against faster-whisper's
//! `BatchedInferencePipeline` in one run. The recording is the 41 English clips of
//! `../shared/data/speech` back to back with 1.5 s of silence between them (the same every run);
//! both systems find its speech with Silero VAD and transcribe windows `--batch-size` at a time,
//! with the same checkpoint, threads, beam size and language. Our batched mode without
//! timestamps (faster-whisper's batched default) and our sequential mode run on it too. Word error rates are against the clips' references joined in order.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context};
use whisper_eval::{read_manifest, word_errors, EnglishTextNormalizer};
use whisper_model::batched::batched_vad_options;
use whisper_model::{audio, BatchOptions};

use crate::bench::{Args, FASTER_WHISPER};
use crate::{python, workspace_root};

/// Silence between the clips, in samples (1.5 s).
const GAP: usize = 24_000;

/// One system's transcription of the recording.
struct Run {
    name: String,
    seconds: f64,
    text: String,
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    let speech = workspace_root().join("../shared/data/speech");
    let clips: Vec<_> = read_manifest(&speech.join("manifest.tsv"))
        .with_context(|| format!("the English clips of {}", speech.display()))?
        .into_iter()
        .filter(|c| c.language.as_deref() == Some("en"))
        .collect();
    let mut recording = Vec::new();
    let mut reference = String::new();
    for clip in &clips {
        recording.extend(audio::load_audio(&clip.path)?);
        recording.extend(std::iter::repeat_n(0.0f32, GAP));
        reference.push_str(&clip.reference);
        reference.push(' ');
    }
    let duration = recording.len() as f64 / audio::SAMPLE_RATE as f64;
    let mut model = args.model.clone();
    model.language.get_or_insert_with(|| "en".into());
    model.vad.vad = true;
    eprintln!(
        "{} English clips joined with {:.1} s gaps: {duration:.1} s; model {}, {} threads, beam {}, batch {}",
        clips.len(),
        GAP as f64 / audio::SAMPLE_RATE as f64,
        model.model,
        model.threads,
        model.beam_size,
        args.batch_size
    );

    let mut runs = Vec::new();
    {
        let (whisper, options) = model.load(false)?;
        let batch = BatchOptions {
            batch_size: args.batch_size,
        };
        // Our default (timestamps: a window whose text stops early is decoded again from
        // there), then faster-whisper's batched default (no timestamps).
        for (name, without_timestamps) in [
            ("xdna-whisper batched", false),
            ("xdna-whisper batched, no timestamps", true),
        ] {
            let batched = whisper_model::TranscribeOptions {
                vad: Some(model.vad.over(batched_vad_options())),
                without_timestamps,
                ..options.clone()
            };
            let start = Instant::now();
            let t = whisper.transcribe_batched(&recording, &batched, &batch)?;
            runs.push(Run {
                name: name.into(),
                seconds: start.elapsed().as_secs_f64(),
                text: t.text,
            });
        }
        let sequential = whisper_model::TranscribeOptions {
            vad: None,
            ..options
        };
        let start = Instant::now();
        let t = whisper.transcribe(&recording, &sequential)?;
        runs.push(Run {
            name: "xdna-whisper sequential".into(),
            seconds: start.elapsed().as_secs_f64(),
            text: t.text,
        });
    }
    if !args.no_peer {
        let cache = model.cache();
        let python = python::venv(&cache, FASTER_WHISPER)?;
        let raw = workspace_root().join("target/tmp/bench-batched-recording.f32");
        std::fs::create_dir_all(raw.parent().expect("has a parent"))?;
        let bytes: Vec<u8> = recording.iter().flat_map(|s| s.to_le_bytes()).collect();
        std::fs::write(&raw, bytes).with_context(|| format!("writing {}", raw.display()))?;
        for compute in &args.peer_compute_types {
            runs.push(faster_whisper(&python, &model, compute, args, &raw)?);
        }
    }

    let sdist = whisper_fetch::fetch_openai_whisper_sdist(&model.cache())?;
    let norm = EnglishTextNormalizer::from_sdist(&sdist)?;
    let words = |s: &str| -> Vec<String> {
        norm.normalize(s)
            .split_whitespace()
            .map(str::to_string)
            .collect()
    };
    let reference = words(&reference);
    println!(
        "{:<36} {:>9} {:>10} {:>8}",
        "system", "wall s", "x realtime", "WER"
    );
    for run in &runs {
        let wer = word_errors(&reference, &words(&run.text)).wer();
        println!(
            "{:<36} {:>9.2} {:>10.2} {:>7.2}%",
            run.name,
            run.seconds,
            duration / run.seconds,
            100.0 * wer
        );
    }
    for run in &runs[1..] {
        println!(
            "speed of xdna-whisper batched relative to {}: {:.2}x",
            run.name,
            run.seconds / runs[0].seconds
        );
    }
    Ok(())
}

fn faster_whisper(
    python: &Path,
    model: &xdna_whisper::ModelArgs,
    compute: &str,
    args: &Args,
    raw: &Path,
) -> anyhow::Result<Run> {
    let script = workspace_root().join("scripts/reference/fw_batched.py");
    let out = Command::new(python)
        .arg(&script)
        .arg(model.model_dir()?)
        .args([
            compute,
            &model.beam_size.to_string(),
            &model.threads.to_string(),
            &args.batch_size.to_string(),
            model.language.as_deref().unwrap_or("auto"),
        ])
        .arg(raw)
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    if !out.status.success() {
        bail!(
            "faster-whisper's batched pipeline failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let json: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("reading faster-whisper's output")?;
    let text = json["segments"]
        .as_array()
        .context("faster-whisper output has no segments")?
        .iter()
        .filter_map(|s| s["text"].as_str())
        .collect();
    Ok(Run {
        name: format!("faster-whisper 1.2.1 batched ({compute})"),
        seconds: json["seconds"].as_f64().unwrap_or(f64::NAN),
        text,
    })
}
