//! `cargo xtask <command>`: the project's command line (see README.md).

mod bench;
mod bench_batched;
mod bench_child;
mod bench_process;
mod bench_server;
mod build_kernels;
mod cpu;
mod eval;
mod fetch_model;
mod fuzz;
mod fuzz_seeds;
mod llvm;
mod npu_estimate;
mod python;
mod run_model;
mod test;
mod verify_kernels;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    about = "Build NPU kernels and run Whisper on them"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check, render and build every kernel of kernel-specs/ into generated/.
    BuildKernels(build_kernels::Args),
    /// Check every spec entry against an MLIR reference run with melior.
    VerifyKernels(verify_kernels::Args),
    /// Download a Whisper model into the model cache.
    FetchModel(fetch_model::Args),
    /// Transcribe audio files (`xdna-whisper transcribe`, plus --sample).
    RunModel(run_model::Args),
    /// Transcribe every clip of a manifest and report word error rate.
    Eval(eval::Args),
    /// Measure our real-time factor against faster-whisper on the same files and threads.
    Bench(bench::Args),
    /// One system's side of `bench`, in a process of its own (used by `bench`).
    #[command(hide = true)]
    BenchChild(bench::Args),
    /// Load on `xdna-whisper serve`: requests/s, latency, errors, 429s and peak RSS.
    BenchServer(bench_server::Args),
    /// Fuzz every parser of untrusted input (cargo-fuzz; see README "Fuzzing").
    Fuzz(fuzz::Args),
    /// Run the whole test suite (installs LLVM/MLIR 22 and fetches the test models first).
    Test(test::Args),
}

/// The workspace root (xtask lives one level below it).
pub fn workspace_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask is inside the workspace")
        .to_path_buf()
}

fn main() -> anyhow::Result<()> {
    // The same logging as the xdna-whisper command (RUST_LOG overrides it).
    xdna_whisper::logging::init();
    match Cli::parse().command {
        Command::BuildKernels(args) => build_kernels::run(args),
        Command::VerifyKernels(args) => verify_kernels::run(args),
        Command::FetchModel(args) => fetch_model::run(args),
        Command::RunModel(args) => run_model::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Test(args) => test::run(args),
        Command::Fuzz(args) => fuzz::run(args),
        Command::Bench(args) => bench::run(args),
        Command::BenchChild(args) => bench_child::run(args),
        Command::BenchServer(args) => bench_server::run(args),
    }
}
