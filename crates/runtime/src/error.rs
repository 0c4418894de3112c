use std::path::PathBuf;

/// Everything a runtime call can fail with; messages name the file and the fix.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("{op}: {msg}")]
    Shape { op: String, msg: String },
    /// The NPU backend has no compiled kernel for a shape and CPU fallback is off.
    #[error("no {family} kernel for {shape} {dtype} on {device}: add an entry to kernel-specs/{family}.toml")]
    NoKernel {
        family: String,
        shape: String,
        dtype: String,
        device: String,
    },
    #[error("kernel manifest {}: {msg}", path.display())]
    Manifest { path: PathBuf, msg: String },
    #[error("NPU backend unavailable: {0}")]
    NpuUnavailable(String),
    #[error("NPU: {0}")]
    Npu(String),
    #[error("runtime configuration: {0}")]
    Config(String),
    #[error("cannot start the runtime's thread pool: {0}")]
    ThreadPool(String),
}
