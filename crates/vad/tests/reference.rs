//! Silero VAD in Rust against the reference: the silero-vad wheel's own ONNX model run by
//! onnxruntime, and faster-whisper 1.2.1's `get_speech_timestamps` on its probabilities. Every
//! clip of the shared speech data, plus silence, low noise and a recording with long gaps.
//! onnxruntime, numpy and faster-whisper (its VAD module only) are installed into a venv under
//! the target directory on first use; without pip or PyPI the test skips loudly.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use whisper_vad::{SileroVad, SpeechSpan, VadOptions};

const REQUIREMENTS: [&str; 2] = ["onnxruntime==1.32.0", "numpy==2.4.6"];
/// Installed without dependencies: only its `vad.py` is used.
const FASTER_WHISPER: &str = "faster-whisper==1.2.1";

fn reference_python() -> Result<PathBuf, String> {
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("venv-vad-reference");
    let faster_whisper: &[&str] = &["--no-deps", FASTER_WHISPER];
    whisper_fetch::python_venv(&venv, &[&REQUIREMENTS[..], faster_whisper])
        .map_err(|e| e.to_string())
}

/// Option sets compared: faster-whisper's defaults, and tight ones that split, drop and pad.
fn option_sets() -> Vec<VadOptions> {
    vec![
        VadOptions::default(),
        VadOptions {
            threshold: 0.6,
            neg_threshold: Some(0.3),
            min_speech_duration_ms: 250,
            max_speech_duration_s: 3.0,
            min_silence_duration_ms: 300,
            speech_pad_ms: 100,
        },
    ]
}

fn options_json(o: &VadOptions) -> serde_json::Value {
    let mut v = serde_json::json!({
        "threshold": o.threshold,
        "min_speech_duration_ms": o.min_speech_duration_ms,
        "min_silence_duration_ms": o.min_silence_duration_ms,
        "speech_pad_ms": o.speech_pad_ms,
    });
    if let Some(n) = o.neg_threshold {
        v["neg_threshold"] = n.into();
    }
    // JSON has no infinity; left out, faster-whisper's default (no limit) applies.
    if o.max_speech_duration_s.is_finite() {
        v["max_speech_duration_s"] = o.max_speech_duration_s.into();
    }
    v
}

fn spans_of(v: &serde_json::Value) -> Vec<SpeechSpan> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| SpeechSpan {
            start: s["start"].as_u64().unwrap() as usize,
            end: s["end"].as_u64().unwrap() as usize,
        })
        .collect()
}

#[test]
fn probabilities_and_spans_match_the_reference() {
    let Some(dir) = speech_dir() else { return };
    let cache = whisper_fetch::default_cache_dir();
    let (weights, reference) = match (
        whisper_fetch::vad_weights(&cache, true),
        whisper_fetch::vad_reference_model(&cache),
    ) {
        (Ok(w), Ok(r)) => (w, r),
        (Err(e), _) | (_, Err(e)) => {
            support::skip(format!("Silero VAD cannot be fetched: {e}"));
            return;
        }
    };
    let python = match reference_python() {
        Ok(p) => p,
        Err(why) => {
            support::skip(format!(
                "the onnxruntime reference cannot be installed: {why}"
            ));
            return;
        }
    };
    let vad = SileroVad::load(&weights).unwrap();

    let mut inputs = clips(&dir);
    // Silence, low white noise, and clips separated by long silence and noise.
    inputs.push(("silence".into(), vec![0.0; 5 * 16_000 + 123]));
    inputs.push(("noise".into(), white_noise(8 * 16_000, 0.01, 7)));
    let mut gaps = white_noise(16_000, 0.003, 11);
    for (i, (_, c)) in inputs.iter().take(4).enumerate() {
        gaps.extend_from_slice(c);
        gaps.extend(white_noise(3 * 16_000, 0.003 * i as f32, 13 + i as u64));
    }
    inputs.push(("gaps".into(), gaps));

    let work = tempfile::tempdir().unwrap();
    for (name, audio) in &inputs {
        let bytes: Vec<u8> = audio.iter().flat_map(|v| v.to_le_bytes()).collect();
        std::fs::write(work.path().join(format!("{name}.f32")), bytes).unwrap();
    }
    let options = option_sets();
    let job = serde_json::json!({
        "clips": inputs.iter().map(|(n, _)| n).collect::<Vec<_>>(),
        "dir": work.path(),
        "options": options.iter().map(options_json).collect::<Vec<_>>(),
    });
    let job_path = work.path().join("job.json");
    std::fs::write(&job_path, job.to_string()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference_vad.py");
    let out = Command::new(&python)
        .arg(&script)
        .arg(&reference)
        .arg(&job_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the reference failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reference: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();

    let (mut max_diff, mut sum_diff, mut frames) = (0f32, 0f64, 0usize);
    let (mut spans_total, mut bundled_differ) = (0usize, 0usize);
    for (name, audio) in &inputs {
        let r = &reference[name];
        let want: Vec<f32> = r["probs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        let got = vad.speech_probabilities(audio);
        assert_eq!(got.len(), want.len(), "{name}: frame count");
        let clip_max = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(clip_max < 1e-3, "{name}: max |Δp| {clip_max}");
        max_diff = max_diff.max(clip_max);
        sum_diff += got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs() as f64)
            .sum::<f64>();
        frames += got.len();
        for (k, o) in options.iter().enumerate() {
            let spans = vad.speech_spans(audio, o);
            assert_eq!(spans, spans_of(&r["spans"][k]), "{name}, options {o:?}");
            spans_total += spans.len();
            if spans != spans_of(&r["bundled_spans"][k]) {
                bundled_differ += 1;
            }
        }
    }
    // Speed, reported (not asserted): the whole set again, one thread.
    let samples: usize = inputs.iter().map(|(_, a)| a.len()).sum();
    let start = std::time::Instant::now();
    for (_, audio) in &inputs {
        std::hint::black_box(vad.speech_probabilities(audio));
    }
    let ms = start.elapsed().as_secs_f64() * 1000.0;
    let minutes = samples as f64 / 16_000.0 / 60.0;
    let peer_ms = reference["faster_whisper_vad_ms"].as_f64().unwrap();
    eprintln!(
        "speed: {minutes:.1} min of audio in {ms:.0} ms, {:.1} ms per minute; faster-whisper's \
         VAD (onnxruntime, 1 thread) {peer_ms:.0} ms, {:.1} ms per minute",
        ms / minutes,
        peer_ms / minutes
    );
    let silent = vad.speech_spans(&inputs[inputs.len() - 3].1, &VadOptions::default());
    assert!(silent.is_empty(), "speech found in silence: {silent:?}");
    eprintln!(
        "{} inputs, {frames} frames: max |Δp| {max_diff:.2e}, mean {:.2e}; {spans_total} spans \
         identical to faster-whisper's get_speech_timestamps on the reference probabilities; \
         faster-whisper's bundled model (v6.0 weights) gives other spans on {bundled_differ} of \
         {} (input, options) pairs",
        inputs.len(),
        sum_diff / frames as f64,
        inputs.len() * options.len()
    );
}
