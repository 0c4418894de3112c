//! Content-hashed, cached, atomic kernel builds: render, aiecc/Peano, manifest.
//!
//! A build ([`build`]) loads and checks every spec entry (all problems are reported together),
//! renders it and hashes everything that determines its artifact ([`hash`]). Under an advisory
//! lock on `<out>/.lock`, a kernel whose `<out>/<name>/<hash>/stamp.json` verifies (every file's
//! sha256 matches, status sufficient) is up to date; otherwise it is restored from the artifact
//! cache when a verified entry is there, or built: rendered (and with `aiecc`/Peano compiled) into
//! `<out>/.tmp-*` and renamed into place, so a `<name>/<hash>` directory is always complete.
//! Finally `<out>/manifest.json` is written atomically. An up-to-date kernel is not even rendered
//! again: `<out>/.render-index.json` records what its last render depended on (see `plan`).

mod emulate;
mod engine;
mod error;
pub mod fsutil;
pub mod hash;
pub mod lock;
pub mod manifest;
mod plan;
pub mod stamp;
pub mod toolchain;

pub use engine::{
    build, hashes, Action, BuildOptions, BuildReport, HashListing, KernelOutcome, Prune, BUILD_LOG,
    DESIGN_FILE,
};
pub use error::{BuildError, KernelFailure};
pub use hash::GENERATOR_REVISION;
pub use stamp::ArtifactStatus;
pub use toolchain::ToolchainEnv;
