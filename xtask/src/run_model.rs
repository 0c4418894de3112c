//! `cargo xtask run-model AUDIO`: transcribe a file. The transcript goes to stdout (or
//! `--output`), progress and logs to stderr.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};
use npu_runtime::{BackendKind, Numerics, RuntimeConfig};
use whisper_model::decoding::{DecodeOptions, Task};
use whisper_model::output::{self, Format};
use whisper_model::pipeline::Pipeline;
use whisper_model::transcribe::{self, Progress, Segment, StageTimes};
use whisper_model::{audio, fetch, mel};

#[derive(clap::Args)]
pub struct Args {
    /// Audio file (WAV, FLAC, MP3, OGG). Omit with --sample.
    #[arg(required_unless_present = "sample")]
    pub audio: Option<PathBuf>,
    /// Transcribe the demo clip (downloaded on first use).
    #[arg(long, conflicts_with = "audio")]
    pub sample: bool,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Output format.
    #[arg(long, value_enum, default_value = "txt")]
    pub format: Format,
    /// Write the transcript to FILE instead of stdout.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// Print where the time went: load, mel, encoder per layer, decoder per token, real-time factor.
    #[arg(long)]
    pub profile: bool,
}

/// Options shared by every command that runs the model (`run-model`, `eval`, `bench`).
#[derive(clap::Args, Clone)]
pub struct ModelArgs {
    /// Model name (tiny.en, base) or a checkpoint directory (CTranslate2 or Hugging Face).
    #[arg(long, default_value = "base")]
    pub model: String,
    /// Where fetched models live (default: $XDNA_WHISPER_CACHE or ~/.cache/xdna-whisper).
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "auto")]
    pub backend: BackendArg,
    /// f32: best accuracy. npu: round exactly where the NPU kernels round (bf16/int8).
    #[arg(long, value_enum, default_value = "f32")]
    pub numerics: NumericsArg,
    /// The NPU whose kernels to use (default: the detected NPU, else npu1; the emulator
    /// models this device).
    #[arg(long, value_enum)]
    pub device: Option<DeviceArg>,
    /// Worker threads (0 = all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Beam size; 1 = greedy.
    #[arg(long, default_value_t = 5)]
    pub beam_size: usize,
    /// Spoken language code (e.g. en, de); detected when omitted on multilingual models.
    #[arg(long)]
    pub language: Option<String>,
    #[arg(long, value_enum, default_value = "transcribe")]
    pub task: TaskArg,
    /// Disable temperature fallback (decode at temperature 0 only).
    #[arg(long)]
    pub no_fallback: bool,
    /// Do not condition each window on the previous window's text.
    #[arg(long)]
    pub no_condition_on_previous_text: bool,
    /// Keep a window whose text copies the previous text (by default it is decoded again
    /// without the previous text as prompt).
    #[arg(long)]
    pub keep_prompt_copies: bool,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum DeviceArg {
    Npu1,
    Npu2,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum BackendArg {
    Auto,
    Cpu,
    Npu,
    /// Every kernel through the dataflow emulator of its rendered design (slow; proves the
    /// NPU path without an NPU).
    Emu,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum NumericsArg {
    F32,
    Npu,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum TaskArg {
    Transcribe,
    Translate,
}

/// A loaded model with the decoding options of the command line.
pub struct LoadedModel {
    pub pipeline: Pipeline,
    pub options: DecodeOptions,
}

impl LoadedModel {
    pub fn load(args: &ModelArgs, profile: bool) -> anyhow::Result<LoadedModel> {
        Self::load_with_manifest(args, profile, None)
    }

    /// As [`LoadedModel::load`], with the kernel manifest given (its entries carry the
    /// emulator's NPU-time estimates, which the profile adds up).
    pub fn load_with_manifest(
        args: &ModelArgs,
        profile: bool,
        manifest: Option<PathBuf>,
    ) -> anyhow::Result<LoadedModel> {
        if args.threads > 0 {
            // The log-mel and the CPU kernels share one pool sized by --threads.
            let _ = rayon::ThreadPoolBuilder::new()
                .num_threads(args.threads)
                .build_global();
        }
        let cache = args
            .cache_dir
            .clone()
            .unwrap_or_else(fetch::default_cache_dir);
        let dir = fetch::model_dir(&args.model, &cache, true)?;
        let config = RuntimeConfig {
            backend: match args.backend {
                BackendArg::Auto => BackendKind::Auto,
                BackendArg::Cpu => BackendKind::Cpu,
                BackendArg::Npu => BackendKind::Npu,
                BackendArg::Emu => BackendKind::Emu,
            },
            // Under the emulator, what no kernel serves runs on the CPU as the NPU would round.
            numerics: match (args.numerics, args.backend) {
                (_, BackendArg::Emu) | (NumericsArg::Npu, _) => Numerics::Npu,
                (NumericsArg::F32, _) => Numerics::F32,
            },
            manifest: match args.backend {
                _ if manifest.is_some() => manifest,
                BackendArg::Emu => Some(crate::build_kernels::emitted_manifest()?),
                BackendArg::Cpu => None,
                BackendArg::Auto | BackendArg::Npu => crate::build_kernels::built_manifest(),
            },
            device: args.device.map(|d| match d {
                DeviceArg::Npu1 => npu_runtime::Device::Npu1,
                DeviceArg::Npu2 => npu_runtime::Device::Npu2,
            }),
            threads: args.threads,
            profile,
            ..RuntimeConfig::default()
        };
        let pipeline = Pipeline::load(&dir, config)
            .with_context(|| format!("loading model {}", dir.display()))?;
        let mut options = DecodeOptions {
            beam_size: args.beam_size.max(1),
            language: args.language.clone(),
            task: match args.task {
                TaskArg::Transcribe => Task::Transcribe,
                TaskArg::Translate => Task::Translate,
            },
            condition_on_previous_text: !args.no_condition_on_previous_text,
            redecode_prompt_copies: !args.keep_prompt_copies,
            ..DecodeOptions::default()
        };
        if args.no_fallback {
            options.temperatures = vec![0.0];
        }
        pipeline.check_options(&options)?;
        Ok(LoadedModel { pipeline, options })
    }

    /// Transcribes 16 kHz mono samples.
    pub fn transcribe(
        &self,
        samples: &[f32],
        progress: &mut dyn Progress,
        times: &mut StageTimes,
    ) -> anyhow::Result<transcribe::Transcript> {
        Ok(self
            .pipeline
            .transcribe(samples, &self.options, progress, times)?)
    }
}

/// A progress bar over the audio's duration, printing finished segments above it when verbose.
struct Bar(ProgressBar);

impl Progress for Bar {
    fn advance(&mut self, done: usize, _total: usize) {
        self.0.set_position(done as u64);
    }
    fn segment(&mut self, s: &Segment) {
        self.0
            .set_message(format!("[{:.1}s] {}", s.end, s.text.trim()));
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let cache = args
        .model
        .cache_dir
        .clone()
        .unwrap_or_else(fetch::default_cache_dir);
    let path = match (&args.audio, args.sample) {
        (Some(p), _) => p.clone(),
        (None, _) => fetch::fetch_sample(&cache)?,
    };

    let t0 = Instant::now();
    let loaded = LoadedModel::load(&args.model, args.profile)?;
    let load_time = t0.elapsed();

    let t1 = Instant::now();
    let samples = audio::load_audio(&path)?;
    let decode_time = t1.elapsed();
    if samples.len() < mel::HOP_LENGTH {
        bail!(
            "{}: the audio is shorter than one mel frame (10 ms); nothing to transcribe",
            path.display()
        );
    }
    let duration = samples.len() as f64 / audio::SAMPLE_RATE as f64;

    let bar = ProgressBar::new((samples.len() / mel::HOP_LENGTH) as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} {elapsed_precise} [{bar:30}] {percent}% {wide_msg}",
        )
        .expect("valid template"),
    );
    let mut progress = Bar(bar);
    let mut times = StageTimes::default();
    let t2 = Instant::now();
    let transcript = loaded.transcribe(&samples, &mut progress, &mut times)?;
    let transcribe_time = t2.elapsed();
    progress.0.finish_and_clear();

    let text = output::render(&transcript, args.format);
    match &args.output {
        Some(file) => {
            std::fs::write(file, &text).with_context(|| format!("writing {}", file.display()))?
        }
        None => std::io::stdout().write_all(text.as_bytes())?,
    }

    if args.profile {
        let total = transcribe_time.as_secs_f64();
        eprintln!(
            "audio {:.2} s ({}), model {}, backend {}",
            duration,
            path.display(),
            args.model.model,
            loaded.pipeline.rt.backend_name()
        );
        eprintln!("load model   {:8.1} ms", load_time.as_secs_f64() * 1e3);
        eprintln!("decode audio {:8.1} ms", decode_time.as_secs_f64() * 1e3);
        eprintln!("log-mel      {:8.1} ms", times.mel.as_secs_f64() * 1e3);
        eprintln!(
            "encoder      {:8.1} ms over {} windows",
            times.encoder.as_secs_f64() * 1e3,
            times.windows
        );
        eprintln!(
            "decoder      {:8.1} ms over {} tokens ({:.2} ms/token)",
            times.decoder.as_secs_f64() * 1e3,
            times.decoded_tokens,
            times.decoder.as_secs_f64() * 1e3 / times.decoded_tokens.max(1) as f64
        );
        eprintln!(
            "transcribe   {:8.1} ms: {:.1}x real time",
            total * 1e3,
            duration / total
        );
        eprintln!("{}", loaded.pipeline.rt.profile_report());
    }
    Ok(())
}
