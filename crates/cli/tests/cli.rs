//! The installed command end to end (tiny.en from the model cache, clips from
//! `../shared/data/speech`): several files share one model and land in `--output-dir`, a bad
//! file fails alone, and a bad option fails before any audio is read.

#[path = "../../model/tests/support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

fn xdna_whisper() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xdna-whisper"));
    cmd.env("RUST_LOG", "warn");
    cmd
}

fn clip(name: &str) -> Option<PathBuf> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/speech/audio16k")
        .join(name);
    if path.exists() {
        Some(path)
    } else {
        support::skip(format!("no speech clip at {}", path.display()));
        None
    }
}

#[test]
fn several_files_share_one_model_and_a_bad_one_fails_alone() {
    let (Some(jfk), Some(other)) = (clip("jfk.wav"), clip("ps_librivox_0870.wav")) else {
        return;
    };
    let out = tempfile::tempdir().unwrap();
    let not_audio = out.path().join("notes.wav");
    std::fs::write(&not_audio, "not a recording").unwrap();
    let run = xdna_whisper()
        .args([
            "transcribe",
            "--model",
            "tiny.en",
            "--beam-size",
            "1",
            "--format",
            "srt",
        ])
        .arg("--output-dir")
        .arg(out.path().join("subs"))
        .args([&jfk, &not_audio, &other])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success(), "one file is not audio: {stderr}");
    assert!(
        stderr.contains("notes.wav") && stderr.contains("1 of 3 files"),
        "{stderr}"
    );
    let jfk_srt = std::fs::read_to_string(out.path().join("subs/jfk.srt")).unwrap();
    assert!(jfk_srt.starts_with("1\n00:00:00,000 --> "), "{jfk_srt}");
    assert!(jfk_srt.contains("ask not what your country"), "{jfk_srt}");
    let other_srt = std::fs::read_to_string(out.path().join("subs/ps_librivox_0870.srt")).unwrap();
    assert!(other_srt.contains("Dashwood"), "{other_srt}");
    assert!(!out.path().join("subs/notes.srt").exists());
}

#[test]
fn a_bad_option_fails_before_the_audio_is_read() {
    let run = xdna_whisper()
        .args([
            "transcribe",
            "--model",
            "tiny.en",
            "--language",
            "de",
            "/no/such/file.wav",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success());
    assert!(stderr.contains("English-only"), "{stderr}");
    assert!(!stderr.contains("/no/such/file.wav"), "{stderr}");

    let run = xdna_whisper().args(["transcribe"]).output().unwrap();
    assert!(!run.status.success());
    assert!(String::from_utf8_lossy(&run.stderr).contains("at least one audio file"));
}

/// `--batch-size`: the files' VAD windows decoded together; each file gets its own transcript
/// on its own timeline, and an unreadable file still fails alone.
#[test]
fn batched_mode_transcribes_several_files_together() {
    let (Some(jfk), Some(other)) = (clip("jfk.wav"), clip("ps_librivox_0870.wav")) else {
        return;
    };
    let out = tempfile::tempdir().unwrap();
    let not_audio = out.path().join("notes.wav");
    std::fs::write(&not_audio, "not a recording").unwrap();
    let run = xdna_whisper()
        .args([
            "transcribe",
            "--model",
            "tiny.en",
            "--beam-size",
            "1",
            "--batch-size",
            "4",
            "--format",
            "json",
        ])
        .arg("--output-dir")
        .arg(out.path())
        .args([&jfk, &not_audio, &other])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success(), "one file is not audio: {stderr}");
    assert!(stderr.contains("1 of 3 files"), "{stderr}");
    let jfk: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("jfk.json")).unwrap())
            .unwrap();
    let text = jfk["text"].as_str().unwrap();
    assert!(text.contains("ask not what your country"), "{text}");
    let segments = jfk["segments"].as_array().unwrap();
    let end = segments.last().unwrap()["end"].as_f64().unwrap();
    assert!(
        end > 8.0 && end <= 11.0,
        "JFK's speech ends near 11 s: {end}"
    );
    let other = std::fs::read_to_string(out.path().join("ps_librivox_0870.json")).unwrap();
    assert!(other.contains("Dashwood"), "{other}");
}
