//! Log-mel front end: the filter bank against openai-whisper's own `mel_filters.npz`, the STFT
//! framing against a naive DFT written out here, and the properties of Whisper's scaling.

mod support;

use std::f64::consts::PI;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};
use whisper_model::audio::load_audio;
use whisper_model::mel::{
    content_frames, hann_window, hz_to_mel, mel_to_hz, LogMel, HOP_LENGTH, N_FFT, N_FRAMES,
    N_FREQS, N_SAMPLES,
};

/// The openai-whisper release whose `whisper/assets/mel_filters.npz` is the reference.
const WHISPER_SDIST: &str = "openai_whisper-20250625.tar.gz";
const WHISPER_SDIST_SHA256: &str =
    "37a91a3921809d9f44748ffc73c0a55c9f366c85a3ef5c2ae0cc09540432eb96";

fn cache_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/test-cache/openai-whisper")
}

/// `mel_filters.npz` from the pinned openai-whisper sdist, downloaded once with pip into
/// `target/test-cache/`. None (with a loud message) where pip or the network is unavailable.
fn reference_npz() -> Option<Vec<u8>> {
    let dir = cache_dir();
    let sdist = dir.join(WHISPER_SDIST);
    if !sdist.is_file() {
        std::fs::create_dir_all(&dir).unwrap();
        let status = Command::new("python3")
            .args([
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                "--no-binary",
                ":all:",
                "openai-whisper==20250625",
                "-d",
            ])
            .arg(&dir)
            .status();
        match status {
            Ok(s) if s.success() && sdist.is_file() => {}
            other => {
                support::skip(format!(
                    "could not download the openai-whisper sdist with pip ({other:?}); \
                     the mel filter bank is not compared with Whisper's mel_filters.npz"
                ));
                return None;
            }
        }
    }
    let bytes = std::fs::read(&sdist).unwrap();
    let digest = hex::encode(Sha256::digest(&bytes));
    assert_eq!(
        digest,
        WHISPER_SDIST_SHA256,
        "{} is not the pinned openai-whisper sdist: delete it to download again",
        sdist.display()
    );
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(&bytes[..]));
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry
            .path()
            .unwrap()
            .ends_with("whisper/assets/mel_filters.npz")
        {
            let mut npz = Vec::new();
            entry.read_to_end(&mut npz).unwrap();
            return Some(npz);
        }
    }
    panic!("{} has no whisper/assets/mel_filters.npz", sdist.display());
}

/// A little-endian float32 C-order array from a `.npy` file: (shape, values).
fn parse_npy_f32(bytes: &[u8]) -> (Vec<usize>, Vec<f32>) {
    assert_eq!(&bytes[..6], b"\x93NUMPY", "not a .npy file");
    let (header_len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => panic!("unknown .npy version {v}"),
    };
    let header = std::str::from_utf8(&bytes[start..start + header_len]).unwrap();
    assert!(
        header.contains("'descr': '<f4'"),
        "expected float32: {header}"
    );
    assert!(
        header.contains("'fortran_order': False"),
        "expected C order: {header}"
    );
    let shape_text = header
        .split("'shape': (")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .unwrap_or_else(|| panic!("no shape in {header}"));
    let shape: Vec<usize> = shape_text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect();
    let data = &bytes[start + header_len..];
    let n: usize = shape.iter().product();
    assert_eq!(
        data.len(),
        4 * n,
        "data size does not match shape {shape:?}"
    );
    let values = data
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    (shape, values)
}

fn npz_array(npz: &[u8], name: &str) -> (Vec<usize>, Vec<f32>) {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(npz)).unwrap();
    let mut file = zip.by_name(&format!("{name}.npy")).unwrap();
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).unwrap();
    parse_npy_f32(&bytes)
}

#[test]
fn filter_bank_matches_whispers_mel_filters_npz() {
    let Some(npz) = reference_npz() else { return };
    for n_mels in [80usize, 128] {
        let (shape, reference) = npz_array(&npz, &format!("mel_{n_mels}"));
        assert_eq!(shape, vec![n_mels, N_FREQS]);
        let ours = LogMel::new(n_mels);
        let filters = ours.filters();
        let mut worst = 0.0f32;
        for (a, b) in filters.iter().zip(&reference) {
            worst = worst.max((a - b).abs());
        }
        let peak = reference.iter().copied().fold(0.0f32, f32::max);
        eprintln!("mel_{n_mels}: max |ours - whisper| = {worst:e} (largest weight {peak})");
        assert!(worst < 1e-8, "mel_{n_mels}: filter bank differs by {worst}");
        // Same sparsity pattern: the triangles start and stop at the same FFT bins.
        for (i, (a, b)) in filters.iter().zip(&reference).enumerate() {
            assert_eq!(*a == 0.0, *b == 0.0, "mel_{n_mels} entry {i}: {a} vs {b}");
        }
    }
}

#[test]
fn slaney_mel_scale() {
    // Linear part: 200/3 Hz per mel; the log part starts at 1 kHz = 15 mel.
    assert!((hz_to_mel(0.0)).abs() < 1e-12);
    assert!((hz_to_mel(200.0) - 3.0).abs() < 1e-12);
    assert!((hz_to_mel(1000.0) - 15.0).abs() < 1e-12);
    // 6.4× the frequency above 1 kHz is 27 mel more.
    assert!((hz_to_mel(6400.0) - 42.0).abs() < 1e-9);
    for hz in [0.0, 10.0, 500.0, 999.9, 1000.0, 1234.5, 4000.0, 8000.0] {
        assert!((mel_to_hz(hz_to_mel(hz)) - hz).abs() < 1e-9 * hz.max(1.0));
    }
}

#[test]
fn frame_count_and_padding_follow_whisper() {
    let mel = LogMel::new(80);
    for len in [0usize, 1, 159, 160, 161, 400, 16_000, 16_123] {
        let samples: Vec<f32> = (0..len)
            .map(|i| ((i * 7919) % 200) as f32 / 400.0)
            .collect();
        let m = mel.compute(&samples);
        assert_eq!(m.n_frames, (len + N_SAMPLES) / HOP_LENGTH, "len {len}");
        assert_eq!(m.n_mels, 80);
        assert_eq!(m.data.len(), 80 * m.n_frames);
        assert_eq!(content_frames(len), m.n_frames - N_FRAMES);
    }
    // Silence: log10(1e-10) = -10 everywhere, so (-10 + 4) / 4.
    let m = mel.compute(&[]);
    assert!(m.data.iter().all(|&v| v == -1.5));
    assert_eq!(mel.compute_with_padding(&[0.0; 100], 0).n_frames, 0);
}

/// Naive reference of one spectrogram column: build the reflect-padded signal explicitly, window,
/// DFT in f64, power, filter bank, log10 with the 1e-10 floor.
fn naive_log10_mel(
    samples: &[f32],
    padding: usize,
    filters: &[f32],
    n_mels: usize,
    frame: usize,
) -> Vec<f64> {
    let mut x: Vec<f64> = samples.iter().map(|&v| v as f64).collect();
    x.resize(samples.len() + padding, 0.0);
    let pad = N_FFT / 2;
    let mut padded = Vec::with_capacity(x.len() + 2 * pad);
    padded.extend((1..=pad).rev().map(|i| x[i]));
    padded.extend_from_slice(&x);
    padded.extend((1..=pad).map(|i| x[x.len() - 1 - i]));
    let window: Vec<f64> = (0..N_FFT)
        .map(|n| 0.5 - 0.5 * (2.0 * PI * n as f64 / N_FFT as f64).cos())
        .collect();
    let seg = &padded[frame * HOP_LENGTH..frame * HOP_LENGTH + N_FFT];
    let power: Vec<f64> = (0..N_FREQS)
        .map(|k| {
            let (mut re, mut im) = (0.0, 0.0);
            for (n, (&s, &w)) in seg.iter().zip(&window).enumerate() {
                let a = -2.0 * PI * (k * n) as f64 / N_FFT as f64;
                re += s * w * a.cos();
                im += s * w * a.sin();
            }
            re * re + im * im
        })
        .collect();
    (0..n_mels)
        .map(|m| {
            let e: f64 = (0..N_FREQS)
                .map(|k| filters[m * N_FREQS + k] as f64 * power[k])
                .sum();
            e.max(1e-10).log10()
        })
        .collect()
}

fn speech(name: &str) -> Option<Vec<f32>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/speech/audio16k")
        .join(name);
    if !path.is_file() {
        support::skip(format!("{} not found", path.display()));
        return None;
    }
    Some(load_audio(&path).unwrap())
}

#[test]
fn columns_match_a_naive_stft_on_real_speech() {
    let Some(jfk) = speech("jfk.wav") else { return };
    for n_mels in [80usize, 128] {
        let front = LogMel::new(n_mels);
        let mel = front.compute(&jfk);
        // The global maximum of log10 energies, recovered from the scaled output.
        let max_log = mel.data.iter().copied().fold(f32::MIN, f32::max) as f64 * 4.0 - 4.0;
        let last_content = content_frames(jfk.len()) - 1;
        let frames = [
            0,
            1,
            2,
            500,
            last_content,
            last_content + 1,
            last_content + 2,
            mel.n_frames - 1,
        ];
        let mut worst = 0.0f64;
        for &t in &frames {
            let reference = naive_log10_mel(&jfk, N_SAMPLES, front.filters(), n_mels, t);
            for (m, r) in reference.iter().enumerate() {
                let expect = (r.max(max_log - 8.0) + 4.0) / 4.0;
                let got = mel.get(m, t) as f64;
                worst = worst.max((got - expect).abs());
            }
        }
        eprintln!("jfk, {n_mels} mels: max |fast - naive f64| over checked frames = {worst:e}");
        // f32 STFT vs f64: Whisper itself computes in float32 (torch), with errors of this size.
        assert!(
            worst < 1e-5,
            "{n_mels} mels: fast STFT differs from naive DFT by {worst}"
        );
    }
}

#[test]
fn other_paddings_reflect_real_samples_at_the_end() {
    let Some(jfk) = speech("jfk.wav") else { return };
    let clip = &jfk[16_000..16_000 + 8_037];
    let front = LogMel::new(80);
    for padding in [0usize, 100, 250, 400, 1000] {
        let mel = front.compute_with_padding(clip, padding);
        assert_eq!(mel.n_frames, (clip.len() + padding) / HOP_LENGTH);
        let max_log = mel.data.iter().copied().fold(f32::MIN, f32::max) as f64 * 4.0 - 4.0;
        let mut worst = 0.0f64;
        for t in [0, mel.n_frames - 2, mel.n_frames - 1] {
            let reference = naive_log10_mel(clip, padding, front.filters(), 80, t);
            for (m, r) in reference.iter().enumerate() {
                let expect = (r.max(max_log - 8.0) + 4.0) / 4.0;
                worst = worst.max((mel.get(m, t) as f64 - expect).abs());
            }
        }
        assert!(
            worst < 1e-5,
            "padding {padding}: differs from naive DFT by {worst}"
        );
    }
}

#[test]
fn whisper_scaling_invariants_on_real_speech() {
    let Some(jfk) = speech("jfk.wav") else { return };
    let mel = LogMel::new(80).compute(&jfk);
    let max = mel.data.iter().copied().fold(f32::MIN, f32::max);
    let min = mel.data.iter().copied().fold(f32::MAX, f32::min);
    // Dynamic range clamped to 8 (log10 units), then divided by 4.
    assert!(max - min <= 2.0 + 1e-6, "range {min}..{max}");
    // Speech is loud somewhere and the 30 s of padding is silence: the clamp is active.
    assert!((max - min - 2.0).abs() < 1e-6, "range {min}..{max}");
    // Padding frames (wholly past the audio) sit at the floor.
    let first_silent = (jfk.len() + N_FFT / 2).div_ceil(HOP_LENGTH);
    for m in 0..80 {
        for t in first_silent..mel.n_frames {
            assert_eq!(mel.get(m, t), min);
        }
    }
}

#[test]
fn a_tone_lands_in_the_right_mel_bin() {
    let front = LogMel::new(80);
    for hz in [250.0f64, 1000.0, 2500.0, 6000.0] {
        let samples: Vec<f32> = (0..16_000)
            .map(|i| (0.5 * (2.0 * PI * hz * i as f64 / 16_000.0).sin()) as f32)
            .collect();
        let mel = front.compute(&samples);
        let t = 50; // a frame well inside the tone
        let loudest = (0..80)
            .max_by(|&a, &b| mel.get(a, t).total_cmp(&mel.get(b, t)))
            .unwrap();
        // Expected: the filter whose triangle peaks closest to the tone on the mel scale.
        let mel_hi = hz_to_mel(8000.0);
        let centre = |m: usize| mel_to_hz(mel_hi * (m + 1) as f64 / 81.0);
        let expected = (0..80)
            .min_by(|&a, &b| {
                (hz_to_mel(centre(a)) - hz_to_mel(hz))
                    .abs()
                    .total_cmp(&(hz_to_mel(centre(b)) - hz_to_mel(hz)).abs())
            })
            .unwrap();
        assert!(
            loudest.abs_diff(expected) <= 1,
            "{hz} Hz: loudest bin {loudest}, expected {expected} (centre {:.0} Hz)",
            centre(expected)
        );
        // Far-away bins are at the floor (tone energy is confined).
        let floor = mel.data.iter().copied().fold(f32::MAX, f32::min);
        let far = if expected > 40 { 0 } else { 79 };
        assert!(
            mel.get(far, t) - floor < 0.5,
            "{hz} Hz leaks into bin {far}"
        );
    }
}

#[test]
fn windows_are_cut_and_zero_padded_like_pad_or_trim() {
    let samples: Vec<f32> = (0..16_000 * 5)
        .map(|i| ((i as f32) * 0.01).sin() * 0.3)
        .collect();
    let mel = LogMel::new(80).compute(&samples);
    let n = 3000;
    let w = mel.frames(100, n);
    assert_eq!(w.len(), 80 * n);
    for m in [0, 17, 79] {
        assert_eq!(w[m * n], mel.get(m, 100));
        assert_eq!(w[m * n + 5], mel.get(m, 105));
    }
    // Past the end: zeros, as torch.nn.functional.pad does.
    let tail = mel.frames(mel.n_frames - 10, n);
    for m in 0..80 {
        assert_eq!(tail[m * n + 9], mel.get(m, mel.n_frames - 1));
        assert!(tail[m * n + 10..(m + 1) * n].iter().all(|&v| v == 0.0));
    }
    assert!(mel.frames(mel.n_frames + 5, 10).iter().all(|&v| v == 0.0));
}

#[test]
fn hann_window_is_periodic() {
    let w = hann_window(N_FFT);
    assert_eq!(w[0], 0.0);
    assert!((w[N_FFT / 2] - 1.0).abs() < 1e-7);
    // Periodic: symmetric about N/2 (w[n] == w[N - n]), unlike the symmetric variant.
    for n in 1..N_FFT {
        assert!((w[n] - w[N_FFT - n]).abs() < 1e-6);
    }
}

/// If python3 with numpy is present, compare with an independent numpy implementation of
/// `log_mel_spectrogram` that uses Whisper's own filter bank. Optional: skipped loudly otherwise.
#[test]
fn matches_a_numpy_reference_when_available() {
    let Some(jfk) = speech("jfk.wav") else { return };
    let Some(npz) = reference_npz() else { return };
    // `cargo xtask test` provides a venv with numpy; otherwise the system python3.
    let python = std::env::var("XDNA_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let has_numpy = Command::new(&python)
        .args(["-c", "import numpy"])
        .stderr(std::process::Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !has_numpy {
        support::skip(format!(
            "{python} has no numpy for the numpy reference check (cargo xtask test provides one)"
        ));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let npz_path = dir.path().join("mel_filters.npz");
    std::fs::write(&npz_path, &npz).unwrap();
    let audio_path = dir.path().join("audio.f32");
    let raw: Vec<u8> = jfk.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(&audio_path, raw).unwrap();
    let out_path = dir.path().join("mel.f32");
    // Whisper's algorithm in numpy float32 (torch.stft semantics: center, reflect, drop last).
    let script = r#"
import sys, numpy as np
audio = np.fromfile(sys.argv[1], dtype='<f4')
filters = np.load(sys.argv[2])['mel_80']
x = np.pad(audio, (0, 480000))
x = np.pad(x, (200, 200), mode='reflect')
n = np.arange(400)
window = (0.5 - 0.5 * np.cos(2 * np.pi * n / 400)).astype(np.float32)
frames = 1 + (len(x) - 400) // 160
idx = np.arange(400)[None, :] + 160 * np.arange(frames)[:, None]
spec = np.fft.rfft(x[idx] * window, axis=1).astype(np.complex64)
power = (np.abs(spec[:-1]) ** 2).T.astype(np.float32)
mel = filters @ power
log_spec = np.log10(np.maximum(mel, 1e-10))
log_spec = np.maximum(log_spec, log_spec.max() - 8.0)
((log_spec + 4.0) / 4.0).astype('<f4').tofile(sys.argv[3])
"#;
    let ok = Command::new(&python)
        .arg("-c")
        .arg(script)
        .arg(&audio_path)
        .arg(&npz_path)
        .arg(&out_path)
        .status()
        .unwrap()
        .success();
    assert!(ok, "numpy reference script failed");
    let reference: Vec<f32> = std::fs::read(&out_path)
        .unwrap()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let mel = LogMel::new(80).compute(&jfk);
    assert_eq!(reference.len(), mel.data.len());
    let worst = mel
        .data
        .iter()
        .zip(&reference)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    eprintln!("jfk: max |ours - numpy reference| = {worst:e}");
    assert!(worst < 1e-4, "differs from the numpy reference by {worst}");
}
