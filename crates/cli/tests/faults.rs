//! Faults while writing transcripts (`--output-dir`): a full disk and an output path that
//! cannot be written give a clear error naming the file, and never leave a half-written file in
//! place of a good one.
//!
//! A full disk is simulated with `setrlimit(RLIMIT_FSIZE)` in the child process (with SIGXFSZ
//! ignored, a write past the limit fails with EFBIG, as a write to a full disk fails with
//! ENOSPC): unlike chmod, it also stops root, and it needs no real full filesystem.

#[path = "../../model/tests/support/mod.rs"]
mod support;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

fn jfk() -> Option<PathBuf> {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/speech/audio16k/jfk.wav");
    if path.exists() {
        Some(path)
    } else {
        support::skip(format!("no speech clip at {}", path.display()));
        None
    }
}

fn transcribe(out_dir: &Path, audio: &Path, max_file_bytes: Option<u64>) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xdna-whisper"));
    cmd.env("RUST_LOG", "warn")
        .args([
            "transcribe",
            "--model",
            "tiny.en",
            "--beam-size",
            "1",
            "--format",
            "txt",
        ])
        .arg("--output-dir")
        .arg(out_dir)
        .arg(audio);
    if let Some(limit) = max_file_bytes {
        // SAFETY: between fork and exec only async-signal-safe calls (setrlimit, signal).
        unsafe {
            cmd.pre_exec(move || {
                let lim = libc::rlimit {
                    rlim_cur: limit,
                    rlim_max: limit,
                };
                if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
                Ok(())
            });
        }
    }
    cmd.output().unwrap()
}

#[test]
fn a_full_disk_keeps_the_previous_transcript() {
    let Some(jfk) = jfk() else { return };
    let out = tempfile::tempdir().unwrap();
    let good = "a transcript from an earlier run\n";
    let target = out.path().join("jfk.txt");
    std::fs::write(&target, good).unwrap();

    // JFK's transcript is ~100 bytes: a 16-byte file limit fails its write part-way.
    let run = transcribe(out.path(), &jfk, Some(16));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success(), "the write must fail: {stderr}");
    assert!(
        stderr.contains("jfk.txt") && stderr.contains("disk full") && stderr.contains("unchanged"),
        "the error must name the file and the cause: {stderr}"
    );
    assert_eq!(std::fs::read_to_string(&target).unwrap(), good);
    let names: Vec<_> = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        names,
        vec![std::ffi::OsString::from("jfk.txt")],
        "no temporary file is left"
    );

    // Without the limit the same command replaces the file with the whole transcript.
    let run = transcribe(out.path(), &jfk, None);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let text = std::fs::read_to_string(&target).unwrap();
    assert!(text.contains("ask not what your country"), "{text}");
}

#[test]
fn an_unwritable_output_dir_is_a_clear_error() {
    let Some(jfk) = jfk() else { return };
    let out = tempfile::tempdir().unwrap();
    // A regular file where the directory should be: no user, root included, can write below it.
    let not_a_dir = out.path().join("plain-file");
    std::fs::write(&not_a_dir, "x").unwrap();
    let run = transcribe(&not_a_dir, &jfk, None);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success());
    assert!(stderr.contains("plain-file"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&not_a_dir).unwrap(), "x");
}
