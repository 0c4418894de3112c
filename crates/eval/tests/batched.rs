//! Accuracy of batched mode (`Whisper::transcribe_many`: VAD windows of the 41 English clips,
//! 8 at a time, with timestamps) against the sequential mode, Whisper base, beam 5: word error
//! rate within 1 point. Skips loudly without the shared speech data.

#[path = "../../model/tests/support/mod.rs"]
mod support;

use std::path::Path;

use whisper_eval::{evaluate, evaluate_batched, read_manifest, EnglishTextNormalizer};
use whisper_fetch as fetch;
use whisper_model::batched::batched_vad_options;
use whisper_model::{BackendKind, BatchOptions, LoadOptions, TranscribeOptions, Whisper};

#[test]
fn batched_mode_word_error_rate_is_within_a_point_of_sequential() {
    let speech = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/speech");
    if !speech.join("manifest.tsv").exists() {
        support::skip(format!("no speech data at {}", speech.display()));
        return;
    }
    let clips: Vec<_> = read_manifest(&speech.join("manifest.tsv"))
        .unwrap()
        .into_iter()
        .filter(|c| c.language.as_deref() == Some("en"))
        .collect();
    assert_eq!(clips.len(), 41, "the shared data set has 41 English clips");
    let cache = fetch::default_cache_dir();
    let dir = fetch::model_dir("base", &cache, true).expect("model (cargo xtask fetch-model base)");
    let load = LoadOptions {
        backend: BackendKind::Cpu,
        vad_model: Some(fetch::vad_weights(&cache, true).expect("Silero VAD weights")),
        ..LoadOptions::default()
    };
    let whisper = Whisper::load(&dir, &load).expect("base loads");
    let sdist = fetch::fetch_openai_whisper_sdist(&cache).expect("openai-whisper sdist");
    let norm = EnglishTextNormalizer::from_sdist(&sdist).expect("normaliser");

    let sequential_opts = TranscribeOptions {
        beam_size: 5,
        language: Some("en".into()),
        ..TranscribeOptions::default()
    };
    let batched_opts = TranscribeOptions {
        vad: Some(batched_vad_options()),
        ..sequential_opts.clone()
    };
    let sequential = evaluate(&whisper, &sequential_opts, &clips, &norm, |_| {}).unwrap();
    let batched = evaluate_batched(
        &whisper,
        &batched_opts,
        &BatchOptions { batch_size: 8 },
        &clips,
        &norm,
    )
    .unwrap();
    for (what, r) in [("sequential", &sequential), ("batched", &batched)] {
        eprintln!(
            "{what}: WER {:.2}% ({} / {} words), {:.1} s wall, {:.2}x real time",
            100.0 * r.wer,
            r.errors,
            r.reference_words,
            r.wall_seconds,
            r.realtime_factor
        );
    }
    for (s, b) in sequential.clips.iter().zip(&batched.clips) {
        if s.hypothesis != b.hypothesis {
            eprintln!(
                "{}: sequential {} errors, batched {}\n  {}\n  {}",
                s.file, s.errors, b.errors, s.hypothesis, b.hypothesis
            );
        }
    }
    assert!(
        (batched.wer - sequential.wer).abs() <= 0.01,
        "batched WER {:.2}% is more than 1 point from sequential's {:.2}%",
        100.0 * batched.wer,
        100.0 * sequential.wer
    );
}
