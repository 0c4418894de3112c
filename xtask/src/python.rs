//! Python tools the benchmarks and tests compare with, each in its own virtual environment in the
//! model cache, installed from PyPI at a pinned version on first use.

use std::path::{Path, PathBuf};

/// The interpreter of a venv holding `requirement` (`name==version`), made on first use by
/// [`whisper_fetch::python_venv`].
pub fn venv(cache: &Path, requirement: &str) -> anyhow::Result<PathBuf> {
    let venv = cache.join("venvs").join(requirement.replace("==", "-"));
    if !venv.join("bin/python").exists() {
        eprintln!("installing {requirement} into {}", venv.display());
    }
    Ok(whisper_fetch::python_venv(&venv, &[&[requirement]])?)
}
