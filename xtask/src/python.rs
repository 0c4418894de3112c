//! Python tools the benchmarks and tests compare with, each in its own virtual environment in the
//! model cache, installed from PyPI at a pinned version on first use.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};

/// The interpreter of a venv holding `requirement` (`name==version`). A venv counts as ready only
/// once pip has finished, so an interrupted install is redone.
pub fn venv(cache: &Path, requirement: &str) -> anyhow::Result<PathBuf> {
    let venv = cache.join("venvs").join(requirement.replace("==", "-"));
    let python = venv.join("bin/python");
    let ready = venv.join(".installed");
    if !ready.exists() {
        eprintln!("installing {requirement} into {}", venv.display());
        let status = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .context("running python3 -m venv")?;
        if !status.success() {
            bail!(
                "python3 -m venv {} failed; install python3-venv",
                venv.display()
            );
        }
        let status = Command::new(&python)
            .args(["-m", "pip", "install", "--quiet", requirement])
            .status()?;
        if !status.success() {
            bail!("pip install {requirement} failed (is PyPI reachable?)");
        }
        std::fs::write(&ready, requirement)?;
    }
    Ok(python)
}
