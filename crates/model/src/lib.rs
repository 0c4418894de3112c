//! OpenAI Whisper on the npu-runtime kernel API.
//!
//! The entry point is [`Whisper`]: [`Whisper::load`] a checkpoint with [`LoadOptions`], then
//! [`Whisper::transcribe`] 16 kHz mono samples ([`load_audio`] decodes files) with
//! [`TranscribeOptions`], or [`Whisper::transcribe_stream`] for segments as they are decoded,
//! cancellable with a [`CancelToken`]. Every failure is an [`Error`].
//!
//! The modules below are the parts: audio decoding, log-mel, checkpoint loading (CTranslate2 and
//! Hugging Face), the encoder/decoder network, decoding (greedy, beam search, temperature
//! fallback, timestamp rules), long-form transcription and output formats.

pub mod alignment;
pub mod audio;
pub mod batch;
pub mod batched;
pub mod cancel;
pub mod decoding;
mod embedding;
pub mod error;
pub mod kernel_table;
pub mod mel;
pub mod model;
mod multi_file;
pub mod options;
pub mod output;
pub mod step_batcher;
pub mod tokenizer;
pub mod transcribe;
mod vad;
pub mod weights;
pub mod whisper;

pub use alignment::Word;
pub use audio::{decode_audio_bytes, decode_audio_limited, load_audio, AudioError, SAMPLE_RATE};
pub use batched::BatchOptions;
pub use cancel::CancelToken;
pub use error::Error;
pub use npu_runtime::{BackendKind, ComputeType, Device, Numerics};
pub use options::{KernelSource, LoadOptions, Task, TranscribeOptions};
pub use output::Format;
pub use transcribe::{Segment, StageTimes, Transcript};
pub use whisper::{SegmentStream, Whisper};
pub use whisper_vad::{SileroVad, SpeechSpan, VadOptions};
