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
    /// A call does not fit the host layout of its entry, or the layout cannot be derived.
    #[error("{entry}: {msg}")]
    Layout { entry: String, msg: String },
    /// The emulator refused a design or a run (the message names the design file and line).
    #[error("kernel {entry} in the emulator: {msg}")]
    Emu { entry: String, msg: String },
    #[error("runtime configuration: {0}")]
    Config(String),
    #[error("cannot start the runtime's thread pool: {0}")]
    ThreadPool(String),
}
