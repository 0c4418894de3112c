//! Pinned Python tools from PyPI, each in a virtual environment of its own: the peers the
//! benchmarks and tests compare with (faster-whisper, the OpenAI client, moto, Ray, ...).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{io_err, FetchError};

/// Records, inside a venv, what was installed into it; written only once pip has finished, so
/// an interrupted install is redone.
const READY: &str = ".installed";

/// The interpreter (`bin/python`) of the venv at `dir`, first creating it with `python3 -m venv`
/// and running one `pip install` per entry of `installs` (each a list of pip arguments, e.g.
/// `["faster-whisper==1.2.1"]` or `["--no-deps", "pkg==1.0"]`). A venv made for other
/// `installs` is made again. Calls for the same `dir` must not overlap.
pub fn python_venv(dir: &Path, installs: &[&[&str]]) -> Result<PathBuf, FetchError> {
    let python = dir.join("bin/python");
    let ready = dir.join(READY);
    let want = installs
        .iter()
        .map(|args| args.join(" "))
        .collect::<Vec<_>>()
        .join("\n");
    if std::fs::read_to_string(&ready).is_ok_and(|have| have == want) {
        return Ok(python);
    }
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(io_err(dir))?;
    }
    run(Command::new("python3").args(["-m", "venv"]).arg(dir))?;
    for args in installs {
        run(Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .args(*args))?;
    }
    std::fs::write(&ready, want).map_err(io_err(&ready))?;
    Ok(python)
}

fn run(cmd: &mut Command) -> Result<(), FetchError> {
    let name = format!("{cmd:?}");
    let failed = |detail: String| FetchError::Command {
        cmd: name.clone(),
        detail: format!(
            "{detail}\n(needs python3 with venv and pip — Debian: apt-get install python3-venv — \
             and access to PyPI)"
        ),
    };
    let out = cmd.output().map_err(|e| failed(e.to_string()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(failed(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_venv_marked_ready_for_the_same_installs_is_reused_without_python() {
        let dir = tempfile::tempdir().unwrap();
        let venv = dir.path().join("v");
        std::fs::create_dir_all(&venv).unwrap();
        std::fs::write(venv.join(READY), "a==1\n--no-deps b==2").unwrap();
        let python = python_venv(&venv, &[&["a==1"], &["--no-deps", "b==2"]]).unwrap();
        assert_eq!(python, venv.join("bin/python"));
    }
}
