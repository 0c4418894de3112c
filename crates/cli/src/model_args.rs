//! The options every command that runs the model shares (`transcribe`, `serve`, and xtask's
//! `run-model`, `eval`, `bench`), turned into the library's [`LoadOptions`] and
//! [`TranscribeOptions`].

use std::path::PathBuf;

use anyhow::Context;
use whisper_model::{
    BackendKind, KernelSource, LoadOptions, Numerics, Task, TranscribeOptions, Whisper,
};

/// The widest beam the command accepts: each beam holds its own KV cache, and Whisper's own
/// default is 5; a typo such as `--beam-size 5000` should fail, not exhaust memory.
pub const MAX_BEAM_SIZE: u64 = 64;
/// The most threads `--threads` accepts (far above any machine this runs on).
pub const MAX_THREADS: u64 = 1024;

#[derive(clap::Args, Clone, Debug)]
pub struct ModelArgs {
    /// Model name (tiny.en, base: fetched into the cache on first use) or a checkpoint directory
    /// (CTranslate2 or Hugging Face).
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
    /// How the CPU computes (with --numerics f32): int8 weights (faster, and as accurate as
    /// faster-whisper's int8 on the English clips), or f32, the accuracy reference.
    #[arg(long, default_value = "int8", value_parser = parse_compute_type)]
    pub compute_type: whisper_model::ComputeType,
    /// Worker threads of the one pool the model runs on (0 = all cores; at most 1024).
    #[arg(long, default_value_t = 0,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(0..=MAX_THREADS))]
    pub threads: usize,
    /// The NPU whose kernels to use (default: the detected NPU, else npu1; the emulator models
    /// this device).
    #[arg(long, value_enum)]
    pub device: Option<DeviceArg>,
    /// Kernel table: a generated/manifest.json of `cargo xtask build-kernels` (needed to run
    /// compiled kernels on the NPU) or a directory of kernel spec TOML files. Default: the
    /// kernel specs built into this program.
    #[arg(long, value_name = "PATH")]
    pub kernels: Option<PathBuf>,
    /// Beam size; 1 = greedy (at most 64).
    #[arg(long, default_value_t = 5,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=MAX_BEAM_SIZE))]
    pub beam_size: usize,
    /// Spoken language code (e.g. en, de); detected when omitted on multilingual models.
    #[arg(long)]
    pub language: Option<String>,
    #[arg(long, value_enum, default_value = "transcribe")]
    pub task: TaskArg,
    /// Text to condition the first window on (names, spellings, style).
    #[arg(long)]
    pub prompt: Option<String>,
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
    /// Time every word (json: each segment's `words`; srt/vtt: see --max-line-width,
    /// --max-words-per-line, --highlight-words). Segments then end at their last word.
    #[arg(long)]
    pub word_timestamps: bool,
    #[command(flatten)]
    pub vad: crate::vad_args::VadArgs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendArg {
    Auto,
    Cpu,
    Npu,
    /// Every kernel call through the dataflow emulator of its rendered NPU design (slow; proves
    /// the NPU path without an NPU). Needs `--kernels` naming a manifest of rendered designs.
    Emu,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DeviceArg {
    Npu1,
    Npu2,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum NumericsArg {
    F32,
    Npu,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum TaskArg {
    Transcribe,
    Translate,
}

impl ModelArgs {
    /// The fetch cache directory.
    pub fn cache(&self) -> PathBuf {
        self.cache_dir
            .clone()
            .unwrap_or_else(whisper_fetch::default_cache_dir)
    }

    /// The checkpoint directory of `--model`, fetching a known model on first use.
    pub fn model_dir(&self) -> anyhow::Result<PathBuf> {
        Ok(whisper_fetch::model_dir(&self.model, &self.cache(), true)?)
    }

    /// A short name for the model (`base`, or the checkpoint directory's name).
    pub fn model_id(&self) -> String {
        let path = std::path::Path::new(&self.model);
        match path.file_name() {
            Some(name) if path.exists() => name.to_string_lossy().into_owned(),
            _ => self.model.clone(),
        }
    }

    pub fn load_options(&self, profile: bool) -> LoadOptions {
        let kernels = match &self.kernels {
            None => KernelSource::BuiltIn,
            Some(p) if p.is_dir() => KernelSource::SpecDir(p.clone()),
            Some(p) => KernelSource::Manifest(p.clone()),
        };
        LoadOptions {
            backend: match self.backend {
                BackendArg::Auto => BackendKind::Auto,
                BackendArg::Cpu => BackendKind::Cpu,
                BackendArg::Npu => BackendKind::Npu,
                BackendArg::Emu => BackendKind::Emu,
            },
            // Under the emulator, what no kernel serves runs on the CPU as the NPU would round.
            numerics: match (self.numerics, self.backend) {
                (_, BackendArg::Emu) | (NumericsArg::Npu, _) => Numerics::Npu,
                (NumericsArg::F32, _) => Numerics::F32,
            },
            device: self.device.map(|d| match d {
                DeviceArg::Npu1 => whisper_model::Device::Npu1,
                DeviceArg::Npu2 => whisper_model::Device::Npu2,
            }),
            compute_type: self.compute_type,
            threads: self.threads,
            kernels,
            profile,
            ..LoadOptions::default()
        }
    }

    pub fn transcribe_options(&self) -> TranscribeOptions {
        let mut options = TranscribeOptions {
            beam_size: self.beam_size,
            language: self.language.clone(),
            task: match self.task {
                TaskArg::Transcribe => Task::Transcribe,
                TaskArg::Translate => Task::Translate,
            },
            initial_prompt: self.prompt.clone(),
            condition_on_previous_text: !self.no_condition_on_previous_text,
            redecode_prompt_copies: !self.keep_prompt_copies,
            word_timestamps: self.word_timestamps,
            vad: self.vad.options(),
            ..TranscribeOptions::default()
        };
        if self.no_fallback {
            options.temperatures = vec![0.0];
        }
        options
    }

    /// Loads the model and checks the decoding options against it (so that a bad
    /// `--language` fails before any audio is decoded).
    pub fn load(&self, profile: bool) -> anyhow::Result<(Whisper, TranscribeOptions)> {
        let dir = self.model_dir()?;
        let mut load = self.load_options(profile);
        if self.vad.vad {
            // Fetched like the models: into the cache, once.
            load.vad_model = Some(whisper_fetch::vad_weights(&self.cache(), true)?);
        }
        let whisper = Whisper::load(&dir, &load)?;
        let options = whisper
            .check_options(&self.transcribe_options())
            .context("checking the decoding options")?;
        Ok((whisper, options))
    }
}

fn parse_compute_type(s: &str) -> Result<whisper_model::ComputeType, String> {
    s.parse()
}
