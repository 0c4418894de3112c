//! The `xdna-whisper` command: `transcribe FILE...`, `serve` and `batch`. Thin layers over
//! [`whisper_model::Whisper`] and [`whisper_server`]; `cargo xtask run-model` runs the same code.

mod atomic;
pub mod batch;
pub mod batched;
pub mod logging;
pub mod model_args;
mod multi_file;
pub mod serve;
pub mod subtitle_args;
pub mod transcribe;
pub mod vad_args;

pub use model_args::ModelArgs;
