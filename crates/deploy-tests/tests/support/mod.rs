//! Shared by the deploy tests: the repository's paths, skips that are never mistaken for passes,
//! and pinned Python tools from PyPI in venvs of the project's cache.

#![allow(dead_code)] // each test file uses its own part

#[path = "../../../model/tests/support/mod.rs"]
mod skip_log;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

pub use skip_log::skip;

/// The repository's root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `deploy/<rel>` in the repository.
pub fn deploy(rel: &str) -> PathBuf {
    repo().join("deploy").join(rel)
}

/// The interpreter's `bin/` directory of a venv `venvs/<name>` in the project's cache holding
/// `requirement`, created on first use as `cargo xtask` creates its venvs (CI is a fresh
/// machine). Ready only once pip has finished, so an interrupted install is redone.
pub fn venv_bin(name: &str, requirement: &str) -> Result<PathBuf, String> {
    // The tests of one file run in parallel threads: one of them installs, the others wait.
    static INSTALLING: Mutex<()> = Mutex::new(());
    let _guard = INSTALLING.lock().unwrap_or_else(|e| e.into_inner());
    let venv = whisper_fetch::default_cache_dir().join("venvs").join(name);
    let python = whisper_fetch::python_venv(&venv, &[&[requirement]]).map_err(|e| e.to_string())?;
    Ok(python.parent().unwrap_or(&venv).to_path_buf())
}

/// Runs `cmd`, `Err` with its stderr unless it succeeded.
pub fn checked(cmd: &mut Command) -> Result<Output, String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(format!(
            "{cmd:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The `xdna-whisper` command, built as `cargo xtask test` builds it (a no-op when that already
/// did): the deploy files run the real binary.
pub fn xdna_whisper() -> PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    checked(Command::new(cargo).current_dir(repo()).args([
        "build",
        "--release",
        "--quiet",
        "-p",
        "xdna-whisper",
    ]))
    .unwrap_or_else(|e| panic!("{e}"));
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).parent().unwrap();
    let bin = target.join("release/xdna-whisper");
    assert!(bin.is_file(), "no {}", bin.display());
    bin
}

/// The speech clips `names` from `../shared/data/speech/audio16k`, or `None` after a loud skip.
pub fn speech_clips(names: &[&str]) -> Option<Vec<PathBuf>> {
    let dir = repo().join("../shared/data/speech/audio16k");
    let clips: Vec<PathBuf> = names.iter().map(|n| dir.join(n)).collect();
    if let Some(missing) = clips.iter().find(|c| !c.is_file()) {
        skip(format!("no speech clip at {}", missing.display()));
        return None;
    }
    Some(clips)
}

/// The tiny.en checkpoint from the project's cache (fetched on first use), or `None` after a
/// loud skip.
pub fn tiny_en() -> Option<PathBuf> {
    match whisper_fetch::model_dir("tiny.en", &whisper_fetch::default_cache_dir(), true) {
        Ok(dir) => Some(dir),
        Err(e) => {
            skip(format!("no tiny.en model: {e}"));
            None
        }
    }
}

/// `<64 hex digits>.json`: a record of `xdna-whisper batch` (its `json` format is
/// `<key>.transcript.json`).
pub fn is_record(name: &str) -> bool {
    name.strip_suffix(".json")
        .is_some_and(|k| k.len() == 64 && k.bytes().all(|b| b.is_ascii_hexdigit()))
}
