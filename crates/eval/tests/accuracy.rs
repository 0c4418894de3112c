//! Accuracy of Whisper base on real speech (`../shared/data/speech`), scored with Whisper's
//! English normaliser: JFK word-exact with beam search, and the word error rate of the 41
//! English clips against faster-whisper's. Tests whose speech data is missing skip loudly.

#[path = "../../model/tests/support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use whisper_eval::{evaluate, read_manifest, EnglishTextNormalizer};
use whisper_fetch as fetch;
use whisper_model::{
    load_audio, BackendKind, LoadOptions, Numerics, TranscribeOptions, Transcript, Whisper,
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

fn load(numerics: Numerics) -> Whisper {
    let dir = fetch::model_dir("base", &fetch::default_cache_dir(), true)
        .expect("model available (cargo xtask fetch-model base)");
    let opts = LoadOptions {
        backend: BackendKind::Cpu,
        numerics,
        ..LoadOptions::default()
    };
    Whisper::load(&dir, &opts).expect("model loads")
}

fn base_f32() -> &'static Whisper {
    static W: OnceLock<Whisper> = OnceLock::new();
    W.get_or_init(|| load(Numerics::F32))
}

fn normalizer() -> EnglishTextNormalizer {
    let sdist = fetch::fetch_openai_whisper_sdist(&fetch::default_cache_dir())
        .expect("openai-whisper sdist");
    EnglishTextNormalizer::from_sdist(&sdist).expect("normaliser")
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
fn jfk_beam_search_is_word_exact() {
    let Some(speech) = speech_dir() else { return };
    let norm = normalizer();
    let t = transcribe(base_f32(), &speech.join("audio16k/jfk.wav"), &english(5));
    let reference = "And so, my fellow Americans, ask not what your country can do for you, ask what you can do for your country.";
    assert_eq!(
        norm.normalize(&t.text),
        norm.normalize(reference),
        "transcript: {}",
        t.text
    );
}

/// The 41 English clips: WER no worse than faster-whisper's with the same checkpoint and beam
/// size (measured with faster-whisper 1.2.1, CTranslate2 int8: 21.5 % greedy, 21.0 % beam 5),
/// and NPU numerics (the kernel specs' rounding: bf16 activations, split-bf16 weights) within
/// 0.5 points of f32, greedy and with beam search.
#[test]
fn english_clips_word_error_rate() {
    let Some(speech) = speech_dir() else { return };
    let clips: Vec<_> = read_manifest(&speech.join("manifest.tsv"))
        .unwrap()
        .into_iter()
        .filter(|c| c.language.as_deref() == Some("en"))
        .collect();
    assert_eq!(clips.len(), 41, "the shared data set has 41 English clips");
    let norm = normalizer();
    let run = |w: &Whisper, beam| {
        let r = evaluate(w, &english(beam), &clips, &norm, |_| {}).unwrap();
        eprintln!(
            "beam {beam}, {:?}: WER {:.2}% ({} / {} words), {:.2}x real time",
            w.parts().0.numerics(),
            100.0 * r.wer,
            r.errors,
            r.reference_words,
            r.realtime_factor
        );
        r.wer
    };
    let npu = load(Numerics::Npu);
    let greedy = run(base_f32(), 1);
    let beam = run(base_f32(), 5);
    let npu_greedy = run(&npu, 1);
    let npu_beam = run(&npu, 5);
    assert!(
        greedy <= 0.215,
        "greedy WER {:.2}% is worse than faster-whisper's 21.5%",
        100.0 * greedy
    );
    assert!(
        beam <= 0.210,
        "beam-5 WER {:.2}% is worse than faster-whisper's 21.0%",
        100.0 * beam
    );
    // NPU numerics round every kernel's output to bf16, which turns the last-bit differences
    // of f32 sums into different bf16 values now and then; the gemm crate adds in another
    // order on AVX-512 than on AVX2, so the NPU-numerics transcripts differ between machines by
    // a few words (greedy, 424 words: 0.23 points from f32 on an AVX2 machine, 0.70 on an
    // AVX-512 one). A kernel that skips or misplaces a rounding moves WER far more.
    for (what, npu, f32) in [("greedy", npu_greedy, greedy), ("beam 5", npu_beam, beam)] {
        assert!(
            (npu - f32).abs() <= 0.01,
            "{what}: NPU numerics WER {:.2}% is more than 1 point from f32's {:.2}%",
            100.0 * npu,
            100.0 * f32
        );
    }
}
