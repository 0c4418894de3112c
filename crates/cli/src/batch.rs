//! `xdna-whisper batch INPUT --output OUT [--shard i/N]`: sharded, resumable transcription of
//! an archive (the `whisper-batch` crate does the work). Exit status: 0 when every input of the
//! shard is done (now or before), 2 when some failed (their records say why), 1 on any other
//! error (a bad manifest line, an unreachable output location).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Instant;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use whisper_batch::input::load_inputs;
use whisper_batch::{
    BatchConfig, Input, Location, ModelIdentity, Outcome, S3Settings, Shard, Storage,
};
use whisper_model::Format;

use crate::transcribe::FormatArg;
use crate::ModelArgs;

#[derive(clap::Args, Clone, Debug)]
pub struct BatchRunArgs {
    /// A JSON Lines manifest ({"path": ...} or {"url": "s3://..."} per line, with optional "id"
    /// and per-file "language", "task", "beam_size", "prompt", "word_timestamps"), or a
    /// directory or s3://bucket/prefix/ whose audio files are listed recursively.
    pub input: String,
    /// Output directory or s3://bucket/prefix: <key>.<format> per format, <key>.json records,
    /// inputs/<sha256 of id>.json index entries.
    #[arg(long, short)]
    pub output: String,
    /// Take the stable share i of N of the inputs (0 <= i < N).
    #[arg(long, value_name = "i/N")]
    pub shard: Option<Shard>,
    /// Output formats, comma-separated (json goes to <key>.transcript.json).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "txt")]
    pub format: Vec<FormatArg>,
    /// auto: a bar on a terminal, log lines otherwise.
    #[arg(long, value_enum, default_value = "auto")]
    pub progress: ProgressArg,
    /// Also write the end summary as JSON to PATH.
    #[arg(long, value_name = "PATH")]
    pub summary_json: Option<PathBuf>,
    /// Do not retry inputs a previous run recorded as failed.
    #[arg(long)]
    pub skip_failed: bool,
    /// Files transcribed at once; their decoding steps share decoder calls (with int8, the
    /// default compute type, results are bit-identical to one at a time).
    #[arg(long, default_value_t = 4,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=64))]
    pub jobs: usize,
    /// S3-compatible endpoint (default: AWS_ENDPOINT, else AWS itself). Credentials and region
    /// come from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION.
    #[arg(long, value_name = "URL")]
    pub s3_endpoint: Option<String>,
    /// Allow a plain-http S3 endpoint (a local server).
    #[arg(long)]
    pub s3_allow_http: bool,
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub subtitles: crate::subtitle_args::SubtitleArgs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ProgressArg {
    Auto,
    Bar,
    Log,
    None,
}

/// Runs the batch; returns the exit status (0 or 2).
pub fn run(args: &BatchRunArgs) -> anyhow::Result<i32> {
    let t0 = Instant::now();
    let storage = Storage::new(S3Settings {
        config: std::env::vars()
            .filter(|(k, _)| k.starts_with("AWS_"))
            .collect(),
        endpoint: args.s3_endpoint.clone(),
        allow_http: args.s3_allow_http,
    })?;
    let input = Location::parse(&args.input, None).map_err(anyhow::Error::msg)?;
    let output = Location::parse(&args.output, None)
        .map_err(anyhow::Error::msg)
        .context("--output")?;
    let shard = args.shard.unwrap_or(Shard::ALL);
    let all = load_inputs(&storage, &input)?;
    let inputs = shard.select(&all);
    // An unreachable output location fails now, not after the model is loaded.
    storage
        .prepare_output(&output)
        .with_context(|| format!("cannot reach the output location {output}"))?;
    tracing::info!("shard {shard}: {} of {} inputs", inputs.len(), all.len());

    let (whisper, options) = args.model.load(false)?;
    let load = args.model.load_options(false);
    let model = ModelIdentity::of_dir(
        &args.model.model_id(),
        &args.model.model_dir()?,
        load.numerics,
        load.compute_type,
    )?;
    let mut formats: Vec<Format> = Vec::new();
    for f in args.format.iter().map(|f| Format::from(*f)) {
        if !formats.contains(&f) {
            formats.push(f);
        }
    }
    let config = BatchConfig {
        output,
        formats,
        writer: args.subtitles.writer_options(),
        options,
        model,
        skip_failed: args.skip_failed,
        jobs: args.jobs,
    };
    let bar = matches!(args.progress, ProgressArg::Bar)
        || (args.progress == ProgressArg::Auto && std::io::stderr().is_terminal());
    let reporter = Reporter {
        bar: bar.then(|| {
            let b = ProgressBar::new(inputs.len() as u64);
            b.set_style(
                ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {wide_msg}")
                    .expect("valid template"),
            );
            b
        }),
        log: args.progress != ProgressArg::None && !bar,
        total: Mutex::new(inputs.len()),
    };
    let summary = whisper_batch::run(&whisper, &storage, &inputs, &config, &reporter)?;
    if let Some(b) = &reporter.bar {
        b.finish_and_clear();
    }
    let total_wall = t0.elapsed().as_secs_f64();
    eprintln!(
        "batch {shard}: {} inputs: {} done, {} skipped, {} failed{}; {:.3} h of audio in {:.1} s \
         ({:.1} s with model load), real-time factor {}",
        summary.inputs,
        summary.done,
        summary.skipped,
        summary.failed,
        if summary.skipped_failed > 0 {
            format!(" ({} not retried)", summary.skipped_failed)
        } else {
            String::new()
        },
        summary.audio_hours,
        summary.wall_seconds,
        total_wall,
        summary.real_time_factor.map_or("-".into(), |r| format!(
            "{r:.3} ({:.1}x real time)",
            1.0 / r
        )),
    );
    if let Some(path) = &args.summary_json {
        let mut v = serde_json::to_value(&summary)?;
        v["shard"] = serde_json::json!(shard.to_string());
        v["wall_seconds_with_load"] = serde_json::json!(total_wall);
        crate::atomic::write_atomic(path, &format!("{v:#}\n"))?;
    }
    Ok(if summary.failed > 0 { 2 } else { 0 })
}

struct Reporter {
    bar: Option<ProgressBar>,
    log: bool,
    total: Mutex<usize>,
}

impl whisper_batch::Progress for Reporter {
    fn input_started(&self, _index: usize, input: &Input) {
        if let Some(b) = &self.bar {
            b.set_message(input.id.clone());
        }
    }

    fn input_finished(&self, index: usize, input: &Input, outcome: &Outcome) {
        if let Some(b) = &self.bar {
            b.inc(1);
            if let Outcome::Failed { error, .. } = outcome {
                b.println(format!("failed: {error}"));
            }
        }
        if self.log {
            let total = *self.total.lock().expect("not poisoned");
            let what = match outcome {
                Outcome::Done {
                    key,
                    audio_seconds,
                    transcribe_seconds,
                } => format!(
                    "done {key} ({audio_seconds:.1} s of audio in {transcribe_seconds:.1} s)"
                ),
                Outcome::Skipped { failed: false, .. } => "skipped (already done)".into(),
                Outcome::Skipped { failed: true, .. } => "skipped (failed before)".into(),
                Outcome::Failed { error, .. } => format!("FAILED: {error}"),
            };
            eprintln!("[{}/{total}] {}: {what}", index + 1, input.id);
        }
    }
}
