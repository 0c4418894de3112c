//! The library's entry point: a loaded model that transcribes 16 kHz mono audio, as a whole
//! ([`Whisper::transcribe`]) or segment by segment, cancellable ([`Whisper::transcribe_stream`]).

use crate::step_batcher::{StepBatcher, StepStats};
use std::borrow::Cow;
use std::collections::VecDeque;
use std::path::Path;

use npu_runtime::{ProfileReport, Runtime, RuntimeConfig};

use crate::batched::{
    batched_vad_options, fixed_chunks, speech_chunks, transcribe_chunks, BatchOptions,
};
use crate::cancel::CancelToken;
use crate::decoding::DecoderContext;
use crate::error::Error;
use crate::kernel_table;
use crate::mel::HOP_LENGTH;
use crate::model::Network;
use crate::options::{KernelSource, LoadOptions, Task, TranscribeOptions};
use crate::tokenizer::{language_code, WhisperTokenizer};
use crate::transcribe::{log_mel, Segment, StageTimes, Transcript, Windows};
use crate::weights::{Checkpoint, ModelDims};

/// A Whisper model ready to transcribe: runtime, packed weights and tokenizer.
///
/// `Send + Sync`: one loaded model serves any number of threads at once; concurrent
/// transcriptions share its thread pool.
///
/// ```no_run
/// use whisper_model::{load_audio, LoadOptions, TranscribeOptions, Whisper};
///
/// let whisper = Whisper::load("/path/to/whisper-base", &LoadOptions::default())?;
/// let samples = load_audio("speech.wav".as_ref())?;
/// let transcript = whisper.transcribe(&samples, &TranscribeOptions::default())?;
/// println!("[{}] {}", transcript.language, transcript.text);
/// # Ok::<(), whisper_model::Error>(())
/// ```
pub struct Whisper {
    rt: Runtime,
    network: Network,
    tokenizer: WhisperTokenizer,
    /// Silero VAD, when [`LoadOptions::vad_model`] names it.
    vad: Option<whisper_vad::SileroVad>,
    /// Merges the decoding steps of transcriptions running at the same time.
    steps: StepBatcher,
}

const _: fn() = || {
    fn shared_across_threads<T: Send + Sync>() {}
    shared_across_threads::<Whisper>();
    fn movable_to_a_thread<T: Send>() {}
    movable_to_a_thread::<SegmentStream<'static>>();
};

impl Whisper {
    /// Loads the checkpoint in `dir`: a CTranslate2 directory (`model.bin`) or a Hugging Face one
    /// (`model.safetensors`), each with its `tokenizer.json`.
    pub fn load(dir: impl AsRef<Path>, opts: &LoadOptions) -> Result<Whisper, Error> {
        let dir = dir.as_ref();
        Self::load_inner(dir, opts).map_err(|e| Error::Load {
            dir: dir.to_path_buf(),
            error: Box::new(e),
        })
    }

    fn load_inner(dir: &Path, opts: &LoadOptions) -> Result<Whisper, Error> {
        let cfg = RuntimeConfig {
            backend: opts.backend,
            numerics: opts.numerics,
            compute: opts.compute_type,
            threads: opts.threads,
            manifest: None,
            allow_cpu_fallback: opts.allow_cpu_fallback,
            profile: opts.profile,
            device: opts.device,
            ..RuntimeConfig::default()
        };
        let rt = match &opts.kernels {
            KernelSource::Manifest(path) => Runtime::new(RuntimeConfig {
                manifest: Some(path.clone()),
                ..cfg
            })?,
            KernelSource::SpecDir(spec_dir) => {
                Runtime::with_kernels(cfg, kernel_table::from_spec_dir(spec_dir)?)?
            }
            // The runtime has the project's kernel specs built in.
            KernelSource::BuiltIn => Runtime::new(cfg)?,
        };
        let mut ckpt = Checkpoint::load(dir)?;
        let network = Network::load(&mut ckpt, &rt)?;
        let tokenizer = WhisperTokenizer::from_dir(dir)?;
        let vad = opts
            .vad_model
            .as_ref()
            .map(whisper_vad::SileroVad::load)
            .transpose()?;
        Ok(Whisper {
            rt,
            network,
            tokenizer,
            vad,
            steps: StepBatcher::default(),
        })
    }

    /// Transcribes 16 kHz mono samples (see [`crate::audio::load_audio`] for files).
    pub fn transcribe(
        &self,
        samples: &[f32],
        opts: &TranscribeOptions,
    ) -> Result<Transcript, Error> {
        self.transcribe_stream(samples, opts, &CancelToken::new())?
            .into_transcript()
    }

    /// Starts a transcription whose segments come out of the returned iterator as each 30 s
    /// window is decoded. Cancelling `cancel` (from any thread) stops it within one decoding
    /// step with [`Error::Cancelled`]; dropping the iterator stops it between windows.
    ///
    /// The options are checked and the log-mel computed here; the network runs in `next()`.
    pub fn transcribe_stream(
        &self,
        samples: &[f32],
        opts: &TranscribeOptions,
        cancel: &CancelToken,
    ) -> Result<SegmentStream<'_>, Error> {
        let opts = self.check_options(opts)?;
        check_samples(samples)?;
        if cancel.is_cancelled() {
            return Err(Error::Cancelled);
        }
        let ctx = self.context(cancel);
        let mut times = StageTimes::default();
        let speech = crate::vad::speech_only(self.vad.as_ref(), samples, &opts)?;
        let audio = speech.as_ref().map_or(samples, |s| s.audio.as_slice());
        let (mel, content_frames) = log_mel(&ctx, audio, &mut times);
        let mut windows = Windows::new(ctx, Cow::Owned(mel), content_frames, &opts);
        windows.times = times;
        Ok(SegmentStream {
            windows,
            pending: VecDeque::new(),
            done: false,
            speech,
        })
    }

    /// Transcribes one long recording in batched mode (faster-whisper's
    /// `BatchedInferencePipeline`): cut into windows of at most 30 s, transcribed
    /// `batch.batch_size` windows at a time, each window decoded once without the previous
    /// window's text. Much faster than [`Whisper::transcribe`] on long audio; timestamps are on
    /// the recording's timeline.
    pub fn transcribe_batched(
        &self,
        samples: &[f32],
        opts: &TranscribeOptions,
        batch: &BatchOptions,
    ) -> Result<Transcript, Error> {
        let mut all = self.transcribe_many(&[samples], opts, batch)?;
        Ok(all.remove(0))
    }

    /// Transcribes several recordings together in batched mode (see
    /// [`Whisper::transcribe_batched`]): windows of different recordings share batches. Returns
    /// one transcript per recording, in order. Every recording is checked before any work; an
    /// unusable one is [`Error::Recording`] with its index.
    pub fn transcribe_many(
        &self,
        recordings: &[&[f32]],
        opts: &TranscribeOptions,
        batch: &BatchOptions,
    ) -> Result<Vec<Transcript>, Error> {
        self.transcribe_many_cancellable(recordings, opts, batch, &CancelToken::new())
    }

    /// [`Whisper::transcribe_many`], stopping with [`Error::Cancelled`] within one decoding step
    /// (or one encoder layer) once `cancel` is cancelled.
    pub fn transcribe_many_cancellable(
        &self,
        recordings: &[&[f32]],
        opts: &TranscribeOptions,
        batch: &BatchOptions,
        cancel: &CancelToken,
    ) -> Result<Vec<Transcript>, Error> {
        let opts = self.check_options(opts)?;
        if opts.word_timestamps {
            return Err(Error::InvalidOption {
                option: "word_timestamps",
                message: "not available in batched mode yet; transcribe without a batch size"
                    .into(),
            });
        }
        if batch.batch_size == 0 {
            return Err(Error::InvalidOption {
                option: "batch_size",
                message: "must be at least 1 (windows decoded together)".into(),
            });
        }
        for (index, samples) in recordings.iter().enumerate() {
            check_samples(samples).map_err(|e| Error::Recording {
                index,
                error: Box::new(e),
            })?;
        }
        if cancel.is_cancelled() {
            return Err(Error::Cancelled);
        }
        let ctx = self.context(cancel);
        let chunks = match &opts.vad {
            // Speech spans of at most one window, as faster-whisper's batched pipeline asks.
            Some(vad_opts) => {
                let vad = self.vad.as_ref().ok_or(Error::NoVadModel)?;
                let vad_opts = whisper_vad::VadOptions {
                    max_speech_duration_s: batched_vad_options().max_speech_duration_s,
                    ..vad_opts.clone()
                };
                let mut chunks = Vec::new();
                for (file, samples) in recordings.iter().enumerate() {
                    let spans = self.rt.install(|| vad.speech_spans(samples, &vad_opts));
                    chunks.extend(speech_chunks(file, &spans));
                }
                chunks
            }
            None => fixed_chunks(&recordings.iter().map(|r| r.len()).collect::<Vec<_>>()),
        };
        Ok(transcribe_chunks(&ctx, recordings, &chunks, &opts, batch)?)
    }

    /// A decoding context on this model, stopping when `cancel` is cancelled.
    pub(crate) fn context(&self, cancel: &CancelToken) -> DecoderContext<'_> {
        DecoderContext::new(&self.network, &self.rt, &self.tokenizer)
            .with_cancel(cancel.clone())
            .with_step_batcher(&self.steps)
    }

    /// Checks `opts` against this model and returns them with the language as a code (`German`
    /// → `de`).
    pub fn check_options(&self, opts: &TranscribeOptions) -> Result<TranscribeOptions, Error> {
        opts.validate()?;
        let mut opts = opts.clone();
        let multilingual = self.tokenizer.is_multilingual();
        if let Some(lang) = &opts.language {
            let code = language_code(lang).ok_or_else(|| Error::UnknownLanguage(lang.clone()))?;
            if !multilingual && code != "en" {
                return Err(Error::EnglishOnly(lang.clone()));
            }
            if multilingual && self.tokenizer.language_token(code).is_none() {
                return Err(Error::UnknownLanguage(lang.clone()));
            }
            opts.language = Some(code.to_string());
        }
        if !multilingual && opts.task == Task::Translate {
            return Err(Error::TranslateEnglishOnly);
        }
        Ok(opts)
    }

    /// Whether the model knows languages other than English (and can translate).
    pub fn is_multilingual(&self) -> bool {
        self.tokenizer.is_multilingual()
    }

    /// Codes of the languages the model knows (empty for English-only models).
    pub fn languages(&self) -> Vec<String> {
        self.tokenizer
            .languages()
            .into_iter()
            .map(|(code, _)| code)
            .collect()
    }

    /// The model's dimensions, as read from the checkpoint.
    pub fn dims(&self) -> &ModelDims {
        &self.network.dims
    }

    /// `"cpu"` or `"npu"`.
    pub fn backend_name(&self) -> &'static str {
        self.rt.backend_name()
    }

    /// Threads of the pool the kernels and the log-mel run on.
    pub fn threads(&self) -> usize {
        self.rt.threads()
    }

    /// Time per kernel family and call since load (with [`LoadOptions::profile`]).
    /// Decoder calls made by decoding loops and the steps they served: more steps than calls
    /// means concurrent transcriptions shared calls.
    pub fn step_stats(&self) -> StepStats {
        self.steps.stats()
    }

    pub fn profile_report(&self) -> ProfileReport {
        self.rt.profile_report()
    }

    /// The runtime, network and tokenizer, for tools that look inside.
    pub fn parts(&self) -> (&Runtime, &Network, &WhisperTokenizer) {
        (&self.rt, &self.network, &self.tokenizer)
    }
}

/// Audio a transcription can use: at least one mel frame, every sample finite.
fn check_samples(samples: &[f32]) -> Result<(), Error> {
    if samples.len() < HOP_LENGTH {
        return Err(Error::NoAudio {
            samples: samples.len(),
        });
    }
    if let Some(index) = samples.iter().position(|s| !s.is_finite()) {
        return Err(Error::NonFiniteSample { index });
    }
    Ok(())
}

/// A transcription in progress ([`Whisper::transcribe_stream`]): an iterator over segments as
/// they are decoded. After an error it ends.
pub struct SegmentStream<'w> {
    windows: Windows<'w, 'static>,
    pending: VecDeque<Segment>,
    done: bool,
    /// With VAD: the speech that is transcribed, and the way back to the recording's timeline.
    speech: Option<crate::vad::SpeechOnly>,
}

impl SegmentStream<'_> {
    /// The spoken language code, once the first window has been decoded (or when it was given).
    pub fn language(&self) -> Option<&str> {
        self.windows.language()
    }

    /// Seconds of audio.
    pub fn duration(&self) -> f32 {
        self.speech
            .as_ref()
            .map_or_else(|| self.windows.duration(), |s| s.duration)
    }

    /// With VAD: the speech spans that are transcribed (sample ranges of the recording).
    pub fn speech_spans(&self) -> Option<&[whisper_vad::SpeechSpan]> {
        self.speech.as_ref().map(|s| s.spans.as_slice())
    }

    /// Seconds of audio transcribed so far.
    pub fn done_seconds(&self) -> f32 {
        self.windows.done_frames() as f32 / crate::transcribe::FRAMES_PER_SECOND as f32
    }

    /// Where the time went so far.
    pub fn times(&self) -> &StageTimes {
        &self.windows.times
    }

    /// Decodes the rest and returns the whole transcript.
    pub fn into_transcript(mut self) -> Result<Transcript, Error> {
        for segment in &mut self {
            segment?;
        }
        let transcript = self.windows.finish();
        Ok(match &self.speech {
            Some(s) => s.restore_transcript(transcript),
            None => transcript,
        })
    }
}

impl Iterator for SegmentStream<'_> {
    type Item = Result<Segment, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(s) = self.pending.pop_front() {
                return Some(Ok(s));
            }
            if self.done {
                return None;
            }
            match self.windows.next_window() {
                Ok(Some(segments)) => match &self.speech {
                    Some(s) => self
                        .pending
                        .extend(segments.into_iter().map(|g| s.restore(g))),
                    None => self.pending.extend(segments),
                },
                Ok(None) => self.done = true,
                Err(e) => {
                    self.done = true;
                    return Some(Err(e.into()));
                }
            }
        }
    }
}
