//! `cargo xtask verify-kernels`: runs `crates/kernel-verify` (melior + LLVM/MLIR 22) as its own
//! process, so that xtask itself never links LLVM and `run-model` builds without it.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context};

use crate::{llvm, workspace_root};

#[derive(clap::Args)]
pub struct Args {
    /// Only entries whose name contains this string.
    #[arg(long)]
    pub filter: Option<String>,
    /// Directory of the kernel spec TOML files (default: kernel-specs/).
    #[arg(long)]
    pub specs: Option<PathBuf>,
    /// Seed of the random inputs (default: kernel-verify's).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Write each entry's MLIR reference module into this directory.
    #[arg(long)]
    pub emit_mlir: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let root = workspace_root();
    let Some(prefix) = llvm::prefix() else {
        bail!(
            "verify-kernels needs LLVM/MLIR 22 (melior) and /usr/lib/llvm-22 has no MLIR: run `bash scripts/install-system-packages.sh` (Debian packages libmlir-22-dev mlir-22-tools llvm-22-dev libpolly-22-dev libclang-22-dev)"
        );
    };
    let specs = args.specs.unwrap_or_else(|| root.join("kernel-specs"));
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(&root)
        .args(["run", "--quiet", "--release", "-p", "kernel-verify", "--"])
        .arg("--specs")
        .arg(&specs)
        .arg("--templates")
        .arg(root.join("templates"));
    if let Some(f) = &args.filter {
        cmd.arg("--filter").arg(f);
    }
    if let Some(s) = args.seed {
        cmd.arg("--seed").arg(s.to_string());
    }
    if let Some(d) = &args.emit_mlir {
        cmd.arg("--emit-mlir").arg(d);
    }
    llvm::set_env(&mut cmd);
    tracing::debug!(?cmd, prefix = %prefix.display(), "running kernel-verify");
    let status = cmd
        .status()
        .context("running `cargo run -p kernel-verify`")?;
    if !status.success() {
        bail!("verify-kernels failed ({status}); see the FAIL lines above");
    }
    Ok(())
}
