//! Whisper tokenizer: special ids for English-only and multilingual vocabularies, round trips,
//! the non-speech suppress list against the checkpoints' own lists, and the merge repair.

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use whisper_fetch::{default_cache_dir, model_dir};
use whisper_model::tokenizer::{repair_merges, TokenizerError, WhisperTokenizer};

fn hf_tiny_en() -> Option<PathBuf> {
    let dir =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/models/whisper-tiny.en-hf");
    if dir.join("tokenizer.json").is_file() {
        Some(dir)
    } else {
        support::skip(format!(
            "{} is missing (the shared Hugging Face tiny.en)",
            dir.display()
        ));
        None
    }
}

/// A fetched model from the cache (CI runs `cargo xtask fetch-model` first); fetched here if
/// missing, skipped loudly if that is impossible.
fn cached(name: &'static str) -> Option<PathBuf> {
    static TINY: OnceLock<Option<PathBuf>> = OnceLock::new();
    static BASE: OnceLock<Option<PathBuf>> = OnceLock::new();
    let cell = if name == "base" { &BASE } else { &TINY };
    cell.get_or_init(|| match model_dir(name, &default_cache_dir(), true) {
        Ok(dir) => Some(dir),
        Err(e) => {
            support::skip(format!(
                "model {name} is not available and could not be fetched: {e}"
            ));
            None
        }
    })
    .clone()
}

const TEXTS: [&str; 6] = [
    " And so my fellow Americans, ask not what your country can do for you.",
    "Hello world! 123,456.78 — naïve café, São Paulo.",
    " the",
    "  leading spaces and\ttabs\nnewlines",
    "日本語のテキストと emoji 🎉",
    "",
];

fn check_english_only(t: &WhisperTokenizer) {
    assert_eq!(t.eot(), 50256);
    assert_eq!(t.sot(), 50257);
    assert_eq!(t.translate(), 50357);
    assert_eq!(t.transcribe(), 50358);
    assert_eq!(t.sot_lm(), 50359);
    assert_eq!(t.sot_prev(), 50360);
    assert_eq!(t.no_speech(), 50361);
    assert_eq!(t.no_timestamps(), 50362);
    assert_eq!(t.timestamp_begin(), 50363);
    assert_eq!(t.n_vocab(), 51864);
    assert!(!t.is_multilingual());
    assert!(t.languages().is_empty());
    assert_eq!(t.language_token("en"), None);
    assert_eq!(t.sot_sequence(None, false), vec![50257]);
    // GPT-2's " the".
    assert_eq!(t.encode(" the"), vec![262]);
}

#[test]
fn tiny_en_special_ids() {
    for dir in [hf_tiny_en(), cached("tiny.en")].into_iter().flatten() {
        let t = WhisperTokenizer::from_dir(&dir).unwrap();
        check_english_only(&t);
    }
}

#[test]
fn base_special_ids_and_languages() {
    let Some(dir) = cached("base") else { return };
    let t = WhisperTokenizer::from_dir(&dir).unwrap();
    assert_eq!(t.eot(), 50257);
    assert_eq!(t.sot(), 50258);
    assert_eq!(t.language_token("en"), Some(50259));
    assert_eq!(t.language_token("English"), Some(50259));
    assert_eq!(t.translate(), 50358);
    assert_eq!(t.transcribe(), 50359);
    assert_eq!(t.sot_lm(), 50360);
    assert_eq!(t.sot_prev(), 50361);
    assert_eq!(t.no_speech(), 50362);
    assert_eq!(t.no_timestamps(), 50363);
    assert_eq!(t.timestamp_begin(), 50364);
    assert_eq!(t.n_vocab(), 51865);
    assert!(t.is_multilingual());
    let langs = t.languages();
    assert_eq!(langs.len(), 99);
    assert_eq!(langs[0], ("en".to_string(), 50259));
    assert_eq!(langs[98], ("su".to_string(), 50357));
    // Hebrew is <|he|> in some files and <|iw|> in others: both names find it.
    assert_eq!(t.language_token("he"), Some(50279));
    assert_eq!(t.language_token("iw"), Some(50279));
    assert_eq!(t.language_token("hebrew"), Some(50279));
    assert_eq!(t.language_token("de"), Some(50261));
    assert_eq!(t.language_of(50261), Some("de"));
    assert_eq!(t.language_token("xx"), None);
    assert_eq!(
        t.sot_sequence(Some(50259), false),
        vec![50258, 50259, 50359]
    );
    assert_eq!(t.sot_sequence(Some(50261), true), vec![50258, 50261, 50358]);
}

#[test]
fn base_missing_merge_is_repaired() {
    let Some(dir) = cached("base") else { return };
    // The shipped file really lacks the merge: the raw tokenizer splits " the".
    let raw = tokenizers::Tokenizer::from_file(dir.join("tokenizer.json")).unwrap();
    assert_eq!(raw.encode(" the", false).unwrap().get_ids(), &[220, 3322]);
    let t = WhisperTokenizer::from_dir(&dir).unwrap();
    assert_eq!(t.encode(" the"), vec![264]);
    for s in TEXTS {
        assert_eq!(t.decode(&t.encode(s)), s);
    }
}

#[test]
fn repair_restores_a_merge_dropped_anywhere() {
    let Some(dir) = hf_tiny_en() else { return };
    let text = std::fs::read_to_string(dir.join("tokenizer.json")).unwrap();
    let original: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut damaged = original.clone();
    let removed = damaged["model"]["merges"]
        .as_array_mut()
        .unwrap()
        .remove(1000);
    let mut fixed = damaged.clone();
    let repaired = repair_merges(&mut fixed);
    assert_eq!(repaired.len(), 1);
    assert_eq!(fixed["model"]["merges"][1000], removed);
    assert_eq!(fixed, original);

    // Loading the damaged file repairs it too.
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("tokenizer.json"), damaged.to_string()).unwrap();
    let t = WhisperTokenizer::from_dir(tmp.path()).unwrap();
    let good = WhisperTokenizer::from_dir(&dir).unwrap();
    for s in TEXTS {
        assert_eq!(t.encode(s), good.encode(s), "{s:?}");
    }
    // An intact list is left alone.
    let mut intact = original.clone();
    assert!(repair_merges(&mut intact).is_empty());
}

#[test]
fn round_trips_and_formats_agree() {
    let dirs: Vec<PathBuf> = [hf_tiny_en(), cached("tiny.en")]
        .into_iter()
        .flatten()
        .collect();
    let toks: Vec<WhisperTokenizer> = dirs
        .iter()
        .map(|d| WhisperTokenizer::from_dir(d).unwrap())
        .collect();
    for t in &toks {
        for s in TEXTS {
            let ids = t.encode(s);
            assert!(ids.iter().all(|&i| i < t.eot()), "{s:?}: {ids:?}");
            assert_eq!(t.decode(&ids), s);
        }
    }
    // The HF file and the CTranslate2 wheel's file encode identically.
    if let [a, b] = toks.as_slice() {
        for s in TEXTS {
            assert_eq!(a.encode(s), b.encode(s), "{s:?}");
        }
    }
}

#[test]
fn decode_drops_or_renders_special_tokens() {
    let Some(dir) = hf_tiny_en().or_else(|| cached("tiny.en")) else {
        return;
    };
    let t = WhisperTokenizer::from_dir(&dir).unwrap();
    let hello = t.encode(" Hello there.");
    let tb = t.timestamp_begin();
    let mut ids = vec![t.sot(), t.no_timestamps(), tb];
    ids.extend(&hello);
    ids.extend([tb + 54, t.eot()]);
    assert_eq!(t.decode(&ids), " Hello there.");
    assert_eq!(
        t.decode_with_timestamps(&ids),
        "<|startoftranscript|><|notimestamps|><|0.00|> Hello there.<|1.08|><|endoftext|>"
    );
}

/// Whisper's suppress list is the non-speech tokens plus the task/control tokens: the
/// checkpoints' own lists (computed by the converters with openai-whisper) must match ours.
fn check_non_speech(t: &WhisperTokenizer, suppress: &[u32]) {
    let ours: BTreeSet<u32> = t.non_speech_tokens().into_iter().collect();
    let mut expected = ours.clone();
    expected.extend([
        t.sot(),
        t.translate(),
        t.transcribe(),
        t.sot_lm(),
        t.sot_prev(),
        t.no_speech(),
    ]);
    let theirs: BTreeSet<u32> = suppress.iter().copied().collect();
    assert_eq!(expected, theirs);
    assert!(ours.len() > 70, "{}", ours.len());
}

fn config_ids(dir: &Path, file: &str, key: &str) -> Vec<u32> {
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join(file)).unwrap()).unwrap();
    v[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

#[test]
fn non_speech_tokens_match_the_checkpoints_suppress_lists() {
    if let Some(dir) = hf_tiny_en() {
        let t = WhisperTokenizer::from_dir(&dir).unwrap();
        check_non_speech(
            &t,
            &config_ids(&dir, "generation_config.json", "suppress_tokens"),
        );
    }
    for name in ["tiny.en", "base"] {
        if let Some(dir) = cached(name) {
            let t = WhisperTokenizer::from_dir(&dir).unwrap();
            check_non_speech(&t, &config_ids(&dir, "config.json", "suppress_ids"));
        }
    }
}

#[test]
fn missing_tokenizer_says_how_to_fetch() {
    let tmp = tempfile::tempdir().unwrap();
    let err = WhisperTokenizer::from_dir(tmp.path()).unwrap_err();
    assert!(matches!(err, TokenizerError::Missing { .. }));
    assert!(err.to_string().contains("cargo xtask fetch-model"), "{err}");
    std::fs::write(tmp.path().join("tokenizer.json"), "{not json").unwrap();
    let err = WhisperTokenizer::from_dir(tmp.path()).unwrap_err();
    assert!(matches!(err, TokenizerError::Invalid { .. }), "{err}");
}
