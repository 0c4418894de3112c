//! Word-level timestamps on real speech (`../shared/data/speech`): every word well formed, and
//! agreement with faster-whisper 1.2.1's `word_timestamps=True` on the same CTranslate2
//! checkpoint over the 41 English clips. faster-whisper runs from the project's venv in the
//! model cache (`venvs/faster-whisper-1.2.1`, the one `cargo xtask bench` uses), installed on
//! first use; without python3 or PyPI the comparison skips loudly.

#[path = "../../model/tests/support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use whisper_eval::read_manifest;
use whisper_fetch as fetch;
use whisper_model::{
    load_audio, BackendKind, LoadOptions, Numerics, TranscribeOptions, Transcript, Whisper,
};

const FASTER_WHISPER: &str = "faster-whisper==1.2.1";

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

fn model_dir(name: &str) -> PathBuf {
    fetch::model_dir(name, &fetch::default_cache_dir(), true)
        .unwrap_or_else(|e| panic!("model {name} available (cargo xtask fetch-model {name}): {e}"))
}

fn load(name: &str, numerics: Numerics) -> Whisper {
    let opts = LoadOptions {
        backend: BackendKind::Cpu,
        numerics,
        ..LoadOptions::default()
    };
    Whisper::load(model_dir(name), &opts).expect("model loads")
}

/// Greedy English with word timestamps; the prompt-copy re-decode (this project's own addition)
/// is off so that both sides decode alike.
fn options() -> TranscribeOptions {
    TranscribeOptions {
        beam_size: 1,
        language: Some("en".into()),
        word_timestamps: true,
        redecode_prompt_copies: false,
        ..TranscribeOptions::default()
    }
}

/// Every word starts no later than it ends, starts never go back, and each word lies within
/// its segment and the audio.
fn check_words(t: &Transcript, what: &str) {
    let mut last_start = f32::NEG_INFINITY;
    for s in &t.segments {
        assert!(!s.words.is_empty(), "{what}: segment without words: {s:?}");
        for w in &s.words {
            assert!(w.start <= w.end, "{what}: {w:?} ends before it starts");
            assert!(
                w.start >= last_start,
                "{what}: {w:?} starts before the word before it"
            );
            assert!(
                s.start <= w.start && w.end <= s.end,
                "{what}: {w:?} outside its segment {:.2}-{:.2}",
                s.start,
                s.end
            );
            assert!(w.end <= t.duration + 1e-3, "{what}: {w:?} past the end");
            assert!((0.0..=1.0).contains(&w.probability), "{what}: {w:?}");
            last_start = w.start;
        }
    }
}

/// The venv's interpreter, creating the venv on first use as `cargo xtask` does.
fn faster_whisper_python() -> Result<PathBuf, String> {
    let venv = fetch::default_cache_dir()
        .join("venvs")
        .join(FASTER_WHISPER.replace("==", "-"));
    fetch::python_venv(&venv, &[&[FASTER_WHISPER]]).map_err(|e| e.to_string())
}

/// Letters and digits of a word, lower-cased: what both sides' words are matched on.
fn key(word: &str) -> String {
    word.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// Index pairs of a longest common subsequence of `a` and `b`.
fn lcs_pairs(a: &[String], b: &[String]) -> Vec<(usize, usize)> {
    let (n, m) = (a.len(), b.len());
    let mut len = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            len[i][j] = if a[i] == b[j] {
                len[i + 1][j + 1] + 1
            } else {
                len[i + 1][j].max(len[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < n && j < m {
        if a[i] == b[j] {
            out.push((i, j));
            i += 1;
            j += 1;
        } else if len[i + 1][j] >= len[i][j + 1] {
            i += 1;
        } else {
            j += 1;
        }
    }
    out
}

fn percentile(sorted: &[f32], p: f32) -> f32 {
    let i = ((sorted.len() - 1) as f32 * p).round() as usize;
    sorted[i]
}

#[test]
fn lcs_matches_words_in_order() {
    let w = |s: &str| s.split(' ').map(key).collect::<Vec<_>>();
    let pairs = lcs_pairs(&w("And so, my fellow"), &w("and so my dear fellow"));
    assert_eq!(pairs, vec![(0, 0), (1, 1), (2, 2), (3, 4)]);
}

#[test]
fn word_timestamps_agree_with_faster_whisper() {
    let Some(speech) = speech_dir() else { return };
    let clips: Vec<_> = read_manifest(&speech.join("manifest.tsv"))
        .unwrap()
        .into_iter()
        .filter(|c| c.language.as_deref() == Some("en"))
        .collect();
    assert_eq!(clips.len(), 41, "the shared data set has 41 English clips");
    let whisper = load("base", Numerics::F32);
    let opts = options();
    let ours: Vec<Transcript> = clips
        .iter()
        .map(|c| {
            let t = whisper
                .transcribe(&load_audio(&c.path).expect("audio decodes"), &opts)
                .expect("transcribes");
            check_words(&t, &c.file);
            t
        })
        .collect();

    let python = match faster_whisper_python() {
        Ok(p) => p,
        Err(why) => {
            support::skip(format!("faster-whisper cannot be installed: {why}"));
            return;
        }
    };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/faster_whisper_words.py");
    let out = Command::new(&python)
        .arg(&script)
        .arg(model_dir("base"))
        .args(clips.iter().map(|c| &c.path))
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "faster-whisper failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let peer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();

    let mut diffs = Vec::new();
    let (mut our_words, mut peer_words) = (0, 0);
    for (clip, t) in clips.iter().zip(&ours) {
        let theirs = peer[clip.path.to_str().unwrap()]
            .as_array()
            .expect("faster-whisper's words of every clip");
        let mine: Vec<_> = t.segments.iter().flat_map(|s| &s.words).collect();
        let a: Vec<String> = mine.iter().map(|w| key(&w.word)).collect();
        let b: Vec<String> = theirs.iter().map(|w| key(w[0].as_str().unwrap())).collect();
        our_words += a.len();
        peer_words += b.len();
        for (i, j) in lcs_pairs(&a, &b) {
            let start = theirs[j][1].as_f64().unwrap() as f32;
            diffs.push((mine[i].start - start).abs());
        }
    }
    diffs.sort_by(f32::total_cmp);
    assert!(!diffs.is_empty(), "no word matched");
    let (median, p90) = (percentile(&diffs, 0.5), percentile(&diffs, 0.9));
    eprintln!(
        "word starts against faster-whisper: {} matched words (ours {our_words}, theirs \
         {peer_words}); |start difference| median {:.0} ms, p90 {:.0} ms, max {:.0} ms",
        diffs.len(),
        1000.0 * median,
        1000.0 * p90,
        1000.0 * diffs.last().unwrap()
    );
    assert!(
        diffs.len() * 10 >= peer_words * 9,
        "only {} of faster-whisper's {peer_words} words matched",
        diffs.len()
    );
    assert!(
        median <= 0.040,
        "median start difference {:.0} ms > 40 ms",
        1000.0 * median
    );
}

/// Word timestamps in both numerics (tiny.en, JFK): well formed, and NPU numerics' words start
/// where f32's do.
#[test]
fn word_timestamps_in_f32_and_npu_numerics() {
    let Some(speech) = speech_dir() else { return };
    let samples = load_audio(&speech.join("audio16k/jfk.wav")).unwrap();
    let run = |numerics| {
        let t = load("tiny.en", numerics)
            .transcribe(&samples, &options())
            .unwrap();
        check_words(&t, &format!("{numerics:?}"));
        t.segments
            .iter()
            .flat_map(|s| s.words.clone())
            .collect::<Vec<_>>()
    };
    let (f32_words, npu_words) = (run(Numerics::F32), run(Numerics::Npu));
    let text = |w: &[whisper_model::Word]| w.iter().map(|w| w.word.clone()).collect::<String>();
    assert!(
        text(&f32_words).contains("ask not what your country can do for you"),
        "{}",
        text(&f32_words)
    );
    assert_eq!(text(&f32_words), text(&npu_words));
    for (a, b) in f32_words.iter().zip(&npu_words) {
        assert!(
            (a.start - b.start).abs() <= 0.1,
            "{a:?} (f32) against {b:?} (NPU numerics)"
        );
    }
}
