//! Inputs the fuzzers (`cargo xtask fuzz`, `fuzz/`) found crashing, hanging or exhausting memory,
//! replayed through the same entry points as their fuzz target. `tests/regressions/<target>/`
//! holds each input as libFuzzer saved it; every one must now give an error that names the file,
//! never a panic, and quickly.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use whisper_model::tokenizer::WhisperTokenizer;
use whisper_model::weights::Checkpoint;

fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/regressions")
        .join(target);
    let mut out: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            let p = e.unwrap().path();
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no regression inputs in {}", dir.display());
    out
}

/// The framing of the fuzz targets (`fuzz/src/lib.rs`): `u16` length-prefixed parts, the last
/// part the rest.
fn parts<const N: usize>(mut data: &[u8]) -> [&[u8]; N] {
    let mut out = [&[][..]; N];
    for slot in out.iter_mut().take(N - 1) {
        let n = match data {
            [a, b, rest @ ..] => {
                data = rest;
                usize::from(u16::from_le_bytes([*a, *b]))
            }
            _ => {
                data = &[];
                0
            }
        };
        let n = n.min(data.len());
        *slot = &data[..n];
        data = &data[n..];
    }
    out[N - 1] = data;
    out
}

fn put(dir: &Path, name: &str, bytes: Option<&[u8]>) {
    if let Some(b) = bytes {
        std::fs::write(dir.join(name), b).unwrap();
    }
}

/// Each input must be handled within a few seconds (the fuzzers' limit is 10 s).
fn quick<T>(input: &Path, f: impl FnOnce() -> T) -> T {
    let t = Instant::now();
    let out = f();
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "{} took {:?}",
        input.display(),
        t.elapsed()
    );
    out
}

#[test]
fn ct2_model_inputs_are_clear_errors() {
    for (input, data) in inputs("ct2_model") {
        let [config, vocab, model] = parts::<3>(&data);
        let dir = tempfile::tempdir().unwrap();
        put(dir.path(), "config.json", Some(config));
        put(
            dir.path(),
            "vocabulary.txt",
            (!vocab.is_empty()).then_some(vocab),
        );
        put(dir.path(), "model.bin", Some(model));
        let e =
            quick(&input, || Checkpoint::load(dir.path())).expect_err(&input.display().to_string());
        let msg = e.to_string();
        assert!(
            msg.contains(&dir.path().display().to_string()),
            "{}: {msg}",
            input.display()
        );
        // The checks that fixed each input (in release builds an overflowing product wraps
        // silently, so the message is what tells the check ran).
        let name = input.file_name().unwrap().to_string_lossy();
        let want = if name.starts_with("variable_count") {
            "variables (each at least 9 bytes)"
        } else {
            "more elements than any file holds"
        };
        assert!(msg.contains(want), "{name}: {msg}");
    }
}

#[test]
fn tokenizer_inputs_are_clear_errors() {
    for (input, data) in inputs("tokenizer") {
        let dir = tempfile::tempdir().unwrap();
        put(dir.path(), "tokenizer.json", Some(&data));
        let e = quick(&input, || WhisperTokenizer::from_dir(dir.path()))
            .expect_err(&input.display().to_string());
        let msg = e.to_string();
        // Rejected by our own syntax check; tokenizers itself panicked on this one.
        assert!(
            msg.contains("tokenizer.json") && msg.contains("invalid JSON"),
            "{}: {msg}",
            input.display()
        );
    }
}

/// Audio inputs, decoded as their fuzz target does (`fuzz.<ext>`, at most 8 s).
fn audio(target: &str, ext: &str) {
    for (input, data) in inputs(target) {
        let name = format!("fuzz.{ext}");
        let e = quick(&input, || {
            whisper_model::decode_audio_limited(data.clone(), &name, Some(8.0))
        })
        .expect_err(&input.display().to_string());
        assert!(e.to_string().contains(&name), "{e}");
    }
}

#[test]
fn audio_wav_inputs_are_clear_errors() {
    audio("audio_wav", "wav");
    // Rejected by our header check before symphonia computes with the count (which panics on
    // overflow in builds with overflow checks).
    let (input, data) = inputs("audio_wav")
        .into_iter()
        .find(|(p, _)| p.ends_with("fmt_declares_37378_channels"))
        .unwrap();
    let e = whisper_model::decode_audio_bytes(&data, "x.wav").unwrap_err();
    assert!(
        e.to_string().contains("declares 37378 channels"),
        "{}: {e}",
        input.display()
    );
    // A rate of 3 GHz asked the resampler for blocks of gigabytes.
    let data =
        std::fs::read(input.with_file_name("rate_3070508672_hz_allocates_gigabytes")).unwrap();
    let e = whisper_model::decode_audio_bytes(&data, "x.wav").unwrap_err();
    assert!(e.to_string().contains("3070508672 Hz"), "{e}");
}
