use std::path::PathBuf;

/// Why a VAD model could not be loaded or an option is unusable.
#[derive(Debug, thiserror::Error)]
pub enum VadError {
    #[error("{}: {source} (fetch the VAD model with `cargo xtask fetch-model silero-vad`)", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{}: not a readable ONNX model ({detail}); expected silero_vad_16k_op15.onnx from the \
         silero-vad wheel (`cargo xtask fetch-model silero-vad`)",
        path.display()
    )]
    Format { path: PathBuf, detail: String },
    #[error(
        "{}: tensor `{name}` is missing; this is not a Silero VAD v6 16 kHz model \
         (expected silero_vad_16k_op15.onnx from the silero-vad wheel)",
        path.display()
    )]
    MissingTensor { path: PathBuf, name: String },
    #[error(
        "{}: tensor `{name}` has shape {got:?}, Silero VAD v6 has {expected:?}; this is another \
         model version",
        path.display()
    )]
    Shape {
        path: PathBuf,
        name: String,
        expected: Vec<usize>,
        got: Vec<usize>,
    },
    #[error("VAD option {option}: {message}")]
    InvalidOption {
        option: &'static str,
        message: String,
    },
}
