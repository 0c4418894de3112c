//! Errors of a kernel build.

use std::fmt;
use std::path::PathBuf;

/// One kernel whose toolchain run failed.
#[derive(Debug)]
pub struct KernelFailure {
    pub name: String,
    pub hash: String,
    pub summary: String,
    /// Where the full tool log was kept (`<out>/<name>/failed-<hash>.log`).
    pub log_path: Option<PathBuf>,
    /// The log's last lines.
    pub log_tail: String,
}

impl fmt::Display for KernelFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "kernel {} ({}): {}", self.name, self.hash, self.summary)?;
        if let Some(p) = &self.log_path {
            writeln!(f, "  full log: {}", p.display())?;
        }
        if !self.log_tail.is_empty() {
            writeln!(f, "  last lines of the log:")?;
            for l in self.log_tail.lines() {
                writeln!(f, "  | {l}")?;
            }
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// Every problem found while loading, checking and rendering the specs.
    #[error("{} problem(s) in the kernel specs:\n{}", .0.len(), .0.join("\n"))]
    Spec(Vec<String>),
    #[error("{0}")]
    ToolchainMissing(String),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} kernel(s) failed to build:\n{}", .0.len(), .0.iter().map(|f| f.to_string()).collect::<Vec<_>>().join("\n"))]
    KernelsFailed(Vec<KernelFailure>),
    #[error("{0}")]
    Other(String),
}
