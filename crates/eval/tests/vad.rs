//! Voice activity detection end to end (`TranscribeOptions::vad`, faster-whisper's default VAD
//! options): a recording built from four English clips of `../shared/data/speech` with long
//! digital silences and low white noise between them is transcribed with VAD and word
//! timestamps (tiny.en, greedy). No word or segment may fall in the gaps, every clip's words
//! must be recognised, and each clip's first word must start on the recording's timeline within
//! 0.2 s of where its speech was placed. The same recording with segment timestamps only must
//! keep the gaps empty too; without VAD it is transcribed and reported (not asserted).

#[path = "../../model/tests/support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};

use whisper_eval::{read_manifest, wer, EnglishTextNormalizer};
use whisper_fetch as fetch;
use whisper_model::{
    load_audio, BackendKind, LoadOptions, Segment, TranscribeOptions, Transcript, VadOptions,
    Whisper, Word,
};

const SR: f32 = 16_000.0;
/// The clips, in order, and the gap placed before each (seconds, white-noise RMS; 0 = digital
/// silence). A 5 s silence ends the recording.
const LAYOUT: [(&str, f32, f32); 4] = [
    ("jfk.wav", 20.0, 0.0),
    ("ps_librivox_0870.wav", 10.0, 0.005),
    ("mfa_61_70968_0000.wav", 20.0, 0.0),
    ("sb_LJ050_0131.wav", 10.0, 0.005),
];
const TAIL_SILENCE_S: f32 = 5.0;
const ONSET_TOLERANCE_S: f32 = 0.2;
/// faster-whisper's default speech padding, used here.
const PAD_S: f32 = 0.4;

fn speech_dir() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/speech");
    if dir.join("manifest.tsv").exists() {
        Some(dir)
    } else {
        support::skip(format!("no speech data at {}", dir.display()));
        None
    }
}

/// Deterministic white noise of the given RMS (xorshift64*, uniform).
fn white_noise(n: usize, rms: f32, seed: u64) -> Vec<f32> {
    let mut s = seed.max(1);
    let scale = rms * 3f32.sqrt();
    (0..n)
        .map(|_| {
            s ^= s >> 12;
            s ^= s << 25;
            s ^= s >> 27;
            let u = (s.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40) as f32 / (1u64 << 24) as f32;
            (u * 2.0 - 1.0) * scale
        })
        .collect()
}

/// Where speech begins in a clip: the first 10 ms frame whose RMS reaches a fifth of the clip's
/// loudest frame (independent of the VAD under test; a tenth is within the noise floor of some
/// clips).
fn energy_onset_s(clip: &[f32]) -> f32 {
    let rms: Vec<f32> = clip
        .chunks(160)
        .map(|c| (c.iter().map(|v| v * v).sum::<f32>() / c.len() as f32).sqrt())
        .collect();
    let loudest = rms.iter().cloned().fold(0.0, f32::max);
    let first = rms.iter().position(|&r| r >= 0.2 * loudest).unwrap_or(0);
    first as f32 * 0.01
}

struct Placed {
    name: &'static str,
    reference: String,
    start_s: f32,
    end_s: f32,
    /// Where the clip's speech begins on the recording's timeline (offset + energy onset).
    onset_s: f32,
    /// Whisper's first word when it transcribes the clip alone (reported: Whisper dates the
    /// first word of a window at the window's start, 0.00, even after a pause).
    alone_onset_s: f32,
    alone: String,
}

/// Slack around a clip for a word or segment to count as its own.
const EDGE_S: f32 = 0.2;

fn holds(p: &Placed, start: f32, end: f32) -> bool {
    let mid = (start + end) / 2.0;
    mid >= p.start_s - EDGE_S && mid <= p.end_s + EDGE_S
}

fn overlaps(s: &Segment, p: &Placed) -> bool {
    s.start < p.end_s + EDGE_S && s.end > p.start_s - EDGE_S
}

fn print(label: &str, t: &Transcript) {
    eprintln!("{label}: {} segments", t.segments.len());
    for s in &t.segments {
        eprintln!("  [{:6.2} → {:6.2}] {}", s.start, s.end, s.text);
    }
}

#[test]
fn vad_skips_the_gaps_and_keeps_the_timeline() {
    let Some(dir) = speech_dir() else { return };
    let cache = fetch::default_cache_dir();
    let vad_model = match fetch::vad_weights(&cache, true) {
        Ok(p) => p,
        Err(e) => {
            support::skip(format!("Silero VAD cannot be fetched: {e}"));
            return;
        }
    };
    let model = fetch::model_dir("tiny.en", &cache, true)
        .expect("tiny.en (cargo xtask fetch-model tiny.en)");
    let whisper = Whisper::load(
        &model,
        &LoadOptions {
            backend: BackendKind::Cpu,
            vad_model: Some(vad_model),
            ..LoadOptions::default()
        },
    )
    .unwrap();
    let sdist = fetch::fetch_openai_whisper_sdist(&cache).expect("openai-whisper sdist");
    let normalizer = EnglishTextNormalizer::from_sdist(&sdist).expect("normaliser");
    let manifest = read_manifest(&dir.join("manifest.tsv")).unwrap();
    let words = TranscribeOptions {
        beam_size: 1,
        language: Some("en".into()),
        word_timestamps: true,
        ..TranscribeOptions::default()
    };
    let score = |reference: &str, h: &str| wer(&normalizer.words(reference), &normalizer.words(h));

    let mut recording = Vec::new();
    let mut placed = Vec::new();
    for (i, (name, gap_s, noise_rms)) in LAYOUT.into_iter().enumerate() {
        let gap = (gap_s * SR) as usize;
        if noise_rms > 0.0 {
            recording.extend(white_noise(gap, noise_rms, 1 + i as u64));
        } else {
            recording.extend(std::iter::repeat_n(0.0, gap));
        }
        let clip = manifest
            .iter()
            .find(|c| c.path.ends_with(name))
            .unwrap_or_else(|| panic!("{name} in the manifest"));
        let audio = load_audio(&clip.path).unwrap();
        let start_s = recording.len() as f32 / SR;
        let alone = whisper.transcribe(&audio, &words).unwrap();
        let first_word = alone.segments.iter().flat_map(|s| &s.words).next();
        placed.push(Placed {
            name,
            reference: clip.reference.clone(),
            start_s,
            end_s: start_s + audio.len() as f32 / SR,
            onset_s: start_s + energy_onset_s(&audio),
            alone_onset_s: start_s + first_word.expect("a word").start,
            alone: alone.text,
        });
        recording.extend_from_slice(&audio);
    }
    recording.extend(std::iter::repeat_n(0.0, (TAIL_SILENCE_S * SR) as usize));
    let total_s = recording.len() as f32 / SR;
    let vad = Some(VadOptions::default());

    let stream = whisper
        .transcribe_stream(
            &recording,
            &TranscribeOptions {
                vad: vad.clone(),
                ..words.clone()
            },
            &Default::default(),
        )
        .unwrap();
    let spans: Vec<(f32, f32)> = stream
        .speech_spans()
        .unwrap()
        .iter()
        .map(|s| (s.start as f32 / SR, s.end as f32 / SR))
        .collect();
    let t = stream.into_transcript().unwrap();
    eprintln!("recording {total_s:.1} s, speech spans (s): {spans:.2?}");
    print("with VAD and word timestamps", &t);
    assert!(
        (t.duration - total_s).abs() < 0.01,
        "duration {} vs {total_s}",
        t.duration
    );

    let mut failures = Vec::new();
    let all_words: Vec<&Word> = t.segments.iter().flat_map(|s| &s.words).collect();
    for w in &all_words {
        if !placed.iter().any(|p| holds(p, w.start, w.end)) {
            failures.push(format!(
                "word in a gap: [{:.2} → {:.2}]{}",
                w.start, w.end, w.word
            ));
        }
    }
    for s in &t.segments {
        if !placed.iter().any(|p| overlaps(s, p)) {
            failures.push(format!(
                "text in a gap: [{:.2} → {:.2}] {}",
                s.start, s.end, s.text
            ));
        }
    }
    for p in &placed {
        let mine: Vec<&&Word> = all_words
            .iter()
            .filter(|w| holds(p, w.start, w.end))
            .collect();
        let text: String = mine.iter().map(|w| w.word.as_str()).collect();
        let (w, w_alone) = (score(&p.reference, &text), score(&p.reference, &p.alone));
        let first = mine.first().map_or(f32::NAN, |w| w.start);
        eprintln!(
            "{}: placed {:.2}–{:.2} s; speech onset {:.2} s, first word {first:.2} s (Δ {:+.2}; \
             alone {:.2} s); WER {:.1} % with VAD, {:.1} % alone",
            p.name,
            p.start_s,
            p.end_s,
            p.onset_s,
            first - p.onset_s,
            p.alone_onset_s,
            100.0 * w,
            100.0 * w_alone
        );
        if !(w <= w_alone + 0.15 && w <= 0.3) {
            failures.push(format!(
                "{}: WER {:.1} % (alone {:.1} %): {text}",
                p.name,
                100.0 * w,
                100.0 * w_alone
            ));
        }
        // The first word of the speech audio Whisper is given is dated at its start (0.00), the
        // start of a padded span: there it may lie in the padding before the speech.
        let opens_span = spans.iter().any(|&(s, _)| (first - s).abs() < 0.02);
        let in_padding = opens_span && first >= p.onset_s - PAD_S - ONSET_TOLERANCE_S;
        if !((first - p.onset_s).abs() <= ONSET_TOLERANCE_S
            || (in_padding && first <= p.onset_s + ONSET_TOLERANCE_S))
        {
            failures.push(format!(
                "{}: first word at {first:.2} s, speech placed at {:.2} s",
                p.name, p.onset_s
            ));
        }
    }

    // Segment timestamps only: nothing in the gaps either; starts reported.
    let segs = whisper
        .transcribe(
            &recording,
            &TranscribeOptions {
                vad,
                word_timestamps: false,
                ..words.clone()
            },
        )
        .unwrap();
    print("with VAD, segment timestamps only", &segs);
    for s in &segs.segments {
        if !placed.iter().any(|p| overlaps(s, p)) {
            failures.push(format!(
                "segment in a gap: [{:.2} → {:.2}] {}",
                s.start, s.end, s.text
            ));
        }
    }
    for p in &placed {
        if let Some(s) = segs.segments.iter().find(|s| holds(p, s.start, s.start)) {
            eprintln!(
                "{}: first segment starts {:+.2} s from the speech",
                p.name,
                s.start - p.onset_s
            );
        }
    }

    // The same recording without VAD: reported, not asserted.
    let plain = whisper
        .transcribe(
            &recording,
            &TranscribeOptions {
                word_timestamps: false,
                ..words.clone()
            },
        )
        .unwrap();
    print("without VAD", &plain);
    let in_gaps = plain
        .segments
        .iter()
        .filter(|s| !placed.iter().any(|p| overlaps(s, p)))
        .count();
    let late = placed
        .iter()
        .filter_map(|p| {
            plain
                .segments
                .iter()
                .find(|s| overlaps(s, p))
                .map(|s| s.start - p.onset_s)
        })
        .map(|d| format!("{d:+.2}"))
        .collect::<Vec<_>>();
    eprintln!("without VAD: {in_gaps} segments wholly in gaps; first segment of each clip vs its speech: {late:?} s");
    assert!(failures.is_empty(), "{failures:#?}");
}
