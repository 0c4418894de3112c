//! Sharded, resumable batch transcription of audio archives (`xdna-whisper batch`).
//!
//! The inputs come from a JSON Lines manifest or a listed directory / S3 prefix ([`input`]);
//! `--shard i/N` keeps a stable share of them ([`shard`]); each input's outputs are named by a
//! content key of its audio, its options and the model ([`key`]), written atomically to a local
//! directory or S3 ([`store`]), and completed by a record written last ([`record`]). The
//! [`runner`] transcribes with a loaded [`whisper_model::Whisper`], skipping what a previous run
//! finished, and reports through a [`runner::Progress`]. Nothing here prints or reads the
//! environment: the command (`crates/cli/src/batch.rs`) does.
//!
//! The layout of an output location `OUT`:
//! - `OUT/<key>.<fmt>`: the transcript in each chosen format (`txt`, `srt`, `vtt`); the `json`
//!   format is `OUT/<key>.transcript.json`, as `<key>.json` is the record;
//! - `OUT/<key>.json`: the [`record::Record`], written after the outputs: present, `done` and
//!   matching the outputs' hashes means finished;
//! - `OUT/inputs/<sha256 of the input id>.json`: the [`record::IndexEntry`] mapping an input to
//!   its key (or to its error when the input could not even be read).

pub mod error;
pub mod input;
pub mod key;
pub mod record;
pub mod runner;
pub mod shard;
pub mod store;

pub use error::Error;
pub use input::{Input, Overrides};
pub use key::ModelIdentity;
pub use record::{IndexEntry, Record, Status};
pub use runner::{output_name, run, BatchConfig, NoProgress, Outcome, Progress, Summary};
pub use shard::Shard;
pub use store::{Location, S3Settings, Storage};
