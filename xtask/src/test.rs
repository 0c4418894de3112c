//! `cargo xtask test`: the whole test suite on a fresh machine. Installs what the tests need
//! (LLVM/MLIR 22 for the melior verifier), fetches the models the model tests use, then runs
//! every crate's tests in the release profile (the model tests run the real network).

use std::process::Command;

use anyhow::{bail, Context};

use crate::{llvm, workspace_root};

#[derive(clap::Args)]
pub struct Args {
    /// Skip installing system packages (LLVM/MLIR 22); the melior verifier is then not built.
    #[arg(long)]
    pub no_install: bool,
    /// Arguments passed on to `cargo test` (after `--`).
    #[arg(last = true)]
    pub cargo_args: Vec<String>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let root = workspace_root();
    let have_llvm = if args.no_install {
        llvm::prefix().is_some()
    } else {
        llvm::ensure_installed()?
    };

    // Models used by the model tests: fetched once into the shared cache, verified by sha256.
    for name in ["tiny.en", "base"] {
        let cache = whisper_model::fetch::default_cache_dir();
        whisper_model::fetch::model_dir(name, &cache, true)
            .with_context(|| format!("fetching model {name} for the tests"))?;
    }

    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(&root).args(["test", "--release"]);
    if have_llvm {
        cmd.arg("--workspace");
        llvm::set_env(&mut cmd);
    } else {
        eprintln!("warning: LLVM/MLIR 22 not installed: skipping crates/kernel-verify (run scripts/install-llvm.sh)");
    }
    cmd.args(&args.cargo_args);
    eprintln!("running: {cmd:?}");
    let status = cmd.status().context("running cargo test")?;
    if !status.success() {
        bail!("cargo test failed ({status})");
    }
    Ok(())
}
