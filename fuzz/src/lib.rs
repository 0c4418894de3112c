//! What the fuzz targets share: splitting one input into several files, a scratch directory per
//! process, and the checks every target makes on what the parsers accept.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Splits `data` into `N` parts: each but the last is a little-endian `u16` length and that many
/// bytes (clamped to what is left); the last part is the rest. Any input splits, so the fuzzer
/// never wastes runs on a framing error. The seed builder (`cargo xtask fuzz`) writes the same
/// framing.
pub fn parts<const N: usize>(mut data: &[u8]) -> [&[u8]; N] {
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

/// A directory of this process's own (fuzzers may run in parallel), reused for every input.
pub fn scratch() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = if Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        let d = base.join(format!("xdna-whisper-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("create the fuzz scratch directory");
        d
    })
}

/// Writes `bytes` to `dir/name`, or removes the file when `bytes` is `None`.
pub fn put(dir: &Path, name: &str, bytes: Option<&[u8]>) {
    let p = dir.join(name);
    match bytes {
        Some(b) => std::fs::write(&p, b).expect("write a fuzz input file"),
        None => {
            let _ = std::fs::remove_file(&p);
        }
    }
}

/// The most audio one input may decode to: enough for every container's framing, small enough
/// that the log-mel of each input stays fast.
const MAX_SECONDS: f64 = 8.0;

/// Decodes `data` as the file `name` (its extension hints at the container), then resamples
/// (inside the decoder) and computes Whisper's log-mel of what came out.
pub fn audio(data: &[u8], name: &str) {
    static MEL: OnceLock<whisper_model::mel::LogMel> = OnceLock::new();
    let Ok(samples) = whisper_model::decode_audio_limited(data.to_vec(), name, Some(MAX_SECONDS))
    else {
        return;
    };
    assert!(!samples.is_empty(), "a decode that succeeds has samples");
    assert!(
        samples.len() as f64 <= (MAX_SECONDS + 1.0) * f64::from(whisper_model::SAMPLE_RATE),
        "{} samples exceed the {MAX_SECONDS} s limit",
        samples.len()
    );
    assert!(
        samples.iter().all(|s| s.is_finite() && s.abs() <= 1.0),
        "samples must be finite and in [-1, 1]"
    );
    let mel = MEL
        .get_or_init(|| whisper_model::mel::LogMel::new(80))
        .compute_with_padding(&samples, 0);
    for m in 0..mel.n_mels.min(2) {
        assert!(
            mel.row(m).iter().all(|v| v.is_finite()),
            "log-mel is finite"
        );
    }
}
