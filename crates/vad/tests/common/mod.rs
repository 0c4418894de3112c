//! Shared by the VAD's integration tests: the speech clips, a WAV reader for them, noise.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

#[path = "../../../model/tests/support/mod.rs"]
pub mod support;

/// `../shared/data/speech` beside the workspace.
pub fn speech_dir() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/speech");
    if dir.join("manifest.tsv").is_file() {
        Some(dir)
    } else {
        support::skip(format!(
            "no speech data at {} (the project's shared/ data)",
            dir.display()
        ));
        None
    }
}

/// Every clip of the manifest: (file name, samples).
pub fn clips(dir: &Path) -> Vec<(String, Vec<f32>)> {
    let manifest = std::fs::read_to_string(dir.join("manifest.tsv")).unwrap();
    manifest
        .lines()
        .skip(1)
        .filter_map(|l| l.split('\t').next())
        .map(|f| {
            let name = f.trim_start_matches("audio16k/").to_string();
            (name, read_wav16(&dir.join(f)))
        })
        .collect()
}

/// A 16 kHz mono 16-bit PCM WAV, as the clips in `audio16k/` are.
pub fn read_wav16(path: &Path) -> Vec<f32> {
    let b = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        &b[0..4] == b"RIFF" && &b[8..12] == b"WAVE",
        "{}",
        path.display()
    );
    let mut at = 12;
    let mut fmt_ok = false;
    while at + 8 <= b.len() {
        let id = &b[at..at + 4];
        let len = u32::from_le_bytes(b[at + 4..at + 8].try_into().unwrap()) as usize;
        let body = &b[at + 8..(at + 8 + len).min(b.len())];
        if id == b"fmt " {
            let channels = u16::from_le_bytes([body[2], body[3]]);
            let rate = u32::from_le_bytes(body[4..8].try_into().unwrap());
            let bits = u16::from_le_bytes([body[14], body[15]]);
            fmt_ok = channels == 1 && rate == 16_000 && bits == 16;
        } else if id == b"data" {
            assert!(fmt_ok, "{}: not 16 kHz mono 16-bit", path.display());
            return body
                .chunks_exact(2)
                .map(|s| i16::from_le_bytes([s[0], s[1]]) as f32 / 32768.0)
                .collect();
        }
        at += 8 + len + (len & 1);
    }
    panic!("{}: no data chunk", path.display());
}

/// Deterministic white noise of the given RMS (xorshift64*, uniform).
pub fn white_noise(n: usize, rms: f32, seed: u64) -> Vec<f32> {
    let mut s = seed.max(1);
    // A uniform variable on [-1, 1) has RMS 1/√3.
    let scale = rms * 3f32.sqrt();
    (0..n)
        .map(|_| {
            s ^= s >> 12;
            s ^= s << 25;
            s ^= s >> 27;
            let u = (s.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40) as f32 / (1u64 << 24) as f32;
            (u * 2.0 - 1.0) * scale
        })
        .collect()
}
