//! VAD through the library's entry point (tiny.en and Silero VAD, fetched into the cache on
//! first use): VAD without a VAD model, or with a file that is not one, is a clear error; a
//! recording without speech gives no segments; the stream and the whole transcript agree and
//! stay on the recording's timeline.

mod support;

use std::path::Path;

use whisper_fetch as fetch;
use whisper_model::{
    load_audio, BackendKind, CancelToken, Error, LoadOptions, TranscribeOptions, VadOptions,
    Whisper,
};

fn tiny_en(vad_model: Option<&Path>) -> Result<Whisper, Error> {
    let dir = fetch::model_dir("tiny.en", &fetch::default_cache_dir(), true)
        .expect("model available (cargo xtask fetch-model tiny.en)");
    let opts = LoadOptions {
        backend: BackendKind::Cpu,
        vad_model: vad_model.map(Path::to_path_buf),
        ..LoadOptions::default()
    };
    Whisper::load(dir, &opts)
}

fn with_vad() -> TranscribeOptions {
    TranscribeOptions {
        beam_size: 1,
        vad: Some(VadOptions::default()),
        ..TranscribeOptions::default()
    }
}

#[test]
fn vad_without_a_vad_model_is_a_clear_error() {
    let w = tiny_en(None).unwrap();
    let e = w.transcribe(&vec![0.0; 16_000], &with_vad()).unwrap_err();
    assert!(matches!(e, Error::NoVadModel), "{e}");
    assert!(e.to_string().contains("vad_model"), "{e}");
}

#[test]
fn a_file_that_is_not_the_vad_model_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let bogus = dir.path().join("vad.onnx");
    std::fs::write(&bogus, b"not a model").unwrap();
    let msg = tiny_en(Some(&bogus)).err().expect("load fails").to_string();
    assert!(msg.contains("vad.onnx"), "{msg}");
    let missing = dir.path().join("missing.onnx");
    let msg = tiny_en(Some(&missing))
        .err()
        .expect("load fails")
        .to_string();
    assert!(
        msg.contains("missing.onnx") && msg.contains("fetch-model silero-vad"),
        "{msg}"
    );
}

#[test]
fn speech_is_transcribed_on_the_recordings_timeline() {
    let vad = match fetch::vad_weights(&fetch::default_cache_dir(), true) {
        Ok(p) => p,
        Err(e) => return support::skip(format!("Silero VAD cannot be fetched: {e}")),
    };
    let w = tiny_en(Some(&vad)).unwrap();

    // Silence only: nothing to transcribe, and the duration is the recording's.
    let silent = w.transcribe(&vec![0.0; 10 * 16_000], &with_vad()).unwrap();
    assert!(silent.segments.is_empty(), "{:?}", silent.segments);
    assert!((silent.duration - 10.0).abs() < 1e-3);

    let clip =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/speech/audio16k/jfk.wav");
    if !clip.exists() {
        return support::skip(format!("no speech clip at {}", clip.display()));
    }
    // JFK after 12 s of silence.
    let mut audio = vec![0.0; 12 * 16_000];
    audio.extend(load_audio(&clip).unwrap());
    let stream = w
        .transcribe_stream(&audio, &with_vad(), &CancelToken::new())
        .unwrap();
    let spans = stream.speech_spans().unwrap().to_vec();
    assert_eq!(spans.len(), 1, "{spans:?}");
    let streamed: Vec<_> = stream.map(|s| s.unwrap()).collect();
    let whole = w.transcribe(&audio, &with_vad()).unwrap();
    assert!(
        whole
            .text
            .to_lowercase()
            .contains("ask not what your country"),
        "{}",
        whole.text
    );
    assert!((whole.duration - audio.len() as f32 / 16_000.0).abs() < 1e-3);
    let times =
        |s: &[whisper_model::Segment]| s.iter().map(|s| (s.start, s.end)).collect::<Vec<_>>();
    assert_eq!(times(&streamed), times(&whole.segments));
    let span_start = spans[0].start as f32 / 16_000.0;
    assert!(span_start > 11.0, "the span starts at {span_start} s");
    assert!(
        (whole.segments[0].start - span_start).abs() < 0.5,
        "first segment at {} s, speech span at {span_start} s",
        whole.segments[0].start
    );
}
