//! Errors that stop a batch run. A failing input (unreadable, not audio, a bad per-file
//! option) is not one of them: it is recorded as failed and the run goes on.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{location}, line {line}: {message}")]
    Manifest {
        location: String,
        line: usize,
        message: String,
    },

    #[error("{location}: no audio files found (looked for {extensions}); give a directory, an s3:// prefix or a .jsonl manifest")]
    NoInputs {
        location: String,
        extensions: String,
    },

    #[error("{location}: {message}")]
    Storage { location: String, message: String },

    #[error("bad shard {given:?}: {message} (expected i/N with 0 <= i < N, e.g. 0/4)")]
    Shard { given: String, message: String },

    #[error("hashing the model in {}: {message}", dir.display())]
    Model { dir: PathBuf, message: String },
}

impl Error {
    pub(crate) fn storage(
        location: impl std::fmt::Display,
        message: impl std::fmt::Display,
    ) -> Self {
        Error::Storage {
            location: location.to_string(),
            message: message.to_string(),
        }
    }
}
