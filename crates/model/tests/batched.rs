//! Batched transcription against the sequential path, on real speech (`../shared/data/speech`)
//! with tiny.en: a window alone in a batch decodes exactly the sequential tokens, and a batch
//! of clips gives each clip the tokens it gets alone where the products keep their summation
//! order. Tests whose speech data is missing skip loudly.

mod support;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use whisper_fetch as fetch;
use whisper_model::batch::BatchWindow;
use whisper_model::decoding::{DecodeResult, DecoderContext};
use whisper_model::mel::{LogMel, HOP_LENGTH};
use whisper_model::{
    load_audio, BackendKind, BatchOptions, CancelToken, Error, LoadOptions, TranscribeOptions,
    Whisper,
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

/// The short English clips of the data set (each one 30 s window), or `None` (skipped).
fn short_clips(n: usize) -> Option<Vec<(String, Vec<f32>)>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/speech");
    let Ok(manifest) = std::fs::read_to_string(dir.join("manifest.tsv")) else {
        support::skip(format!("no speech data at {}", dir.display()));
        return None;
    };
    let files: Vec<PathBuf> = manifest
        .lines()
        .skip(1)
        .filter_map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            let secs: f32 = cols.get(1)?.parse().ok()?;
            (secs < 29.0 && !cols[0].contains("_de_")).then(|| dir.join(cols[0]))
        })
        .take(n)
        .collect();
    Some(
        files
            .iter()
            .map(|f| {
                (
                    f.display().to_string(),
                    load_audio(f).expect("clip decodes"),
                )
            })
            .collect(),
    )
}

fn greedy() -> TranscribeOptions {
    TranscribeOptions {
        beam_size: 1,
        language: Some("en".into()),
        ..TranscribeOptions::default()
    }
}

/// One clip's 30 s log-mel window, as the transcription computes it.
fn mel_window(w: &Whisper, samples: &[f32]) -> Vec<f32> {
    let dims = w.dims();
    LogMel::new(dims.n_mels)
        .compute_with_padding(samples, HOP_LENGTH)
        .frames(0, 2 * dims.n_audio_ctx)
}

/// Encoder output of every clip: one at a time and all as one batch.
fn encode_both(w: &Whisper, clips: &[(String, Vec<f32>)]) -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
    let (rt, net, _) = w.parts();
    let mels: Vec<Vec<f32>> = clips.iter().map(|(_, s)| mel_window(w, s)).collect();
    let alone = mels
        .iter()
        .map(|m| net.encoder.forward(rt, &net.dims, m).unwrap())
        .collect();
    let refs: Vec<&[f32]> = mels.iter().map(Vec::as_slice).collect();
    let batched = net
        .encoder
        .forward_batch(rt, &net.dims, &refs, &CancelToken::new())
        .unwrap();
    (alone, batched)
}

/// Decodes each window alone and all of them as one batch, with fallback.
fn decode_both(
    w: &Whisper,
    features: &[Vec<f32>],
    opts: &TranscribeOptions,
) -> (Vec<DecodeResult>, Vec<DecodeResult>) {
    let (rt, net, tok) = w.parts();
    let ctx = DecoderContext::new(net, rt, tok);
    let sot = ctx.sot_sequence(Some("en"), opts.task);
    let alone = features
        .iter()
        .map(|f| ctx.decode_with_fallback(f, &[], &sot, opts).unwrap())
        .collect();
    let windows: Vec<BatchWindow> = features
        .iter()
        .map(|f| BatchWindow {
            cross: net.decoder.cross_kv(rt, &net.dims, f).unwrap(),
            prompt: Vec::new(),
            sot_sequence: sot.clone(),
        })
        .collect();
    let batched = ctx.decode_batch_with_fallback(&windows, opts).unwrap();
    (alone, batched)
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn a_window_alone_in_a_batch_decodes_the_sequential_tokens() {
    let Some(clips) = short_clips(1) else { return };
    let w = tiny_en();
    let (alone, batched) = encode_both(w, &clips);
    assert_eq!(alone, batched, "a batch of one encodes bit for bit alike");
    for beam_size in [1, 5] {
        let opts = TranscribeOptions {
            beam_size,
            ..greedy()
        };
        let (a, b) = decode_both(w, &alone, &opts);
        assert!(!a[0].tokens.is_empty(), "{} decodes to text", clips[0].0);
        assert_eq!(a[0].tokens, b[0].tokens, "beam {beam_size}");
        assert_eq!(a[0].sum_logprob, b[0].sum_logprob, "beam {beam_size}");
        assert_eq!(a[0].no_speech_prob, b[0].no_speech_prob);
        assert_eq!(a[0].temperature, b[0].temperature);
    }
}

/// The encoder's batch changes only the rows of its GEMMs: bit for bit the same output. Greedy
/// decoding of up to 8 windows keeps every step's products on the few-row kernel, whose rows
/// are independent, and each prompt runs alone: each clip's tokens and scores are those it gets
/// alone.
#[test]
fn a_batch_of_clips_gives_each_clip_its_own_tokens() {
    let Some(clips) = short_clips(8) else { return };
    let w = tiny_en();
    let (alone, batched) = encode_both(w, &clips);
    for (i, (a, b)) in alone.iter().zip(&batched).enumerate() {
        // The GEMM's sum for one output element does not depend on the number of rows.
        assert_eq!(
            a,
            b,
            "{}: encoder differs by {:e}",
            clips[i].0,
            max_abs_diff(a, b)
        );
    }
    // The same features decoded alone and batched: greedy (one row per window, 8 rows).
    let (a, b) = decode_both(w, &alone, &greedy());
    for (i, (a, b)) in a.iter().zip(&b).enumerate() {
        assert_eq!(a.tokens, b.tokens, "{}", clips[i].0);
        assert_eq!(a.sum_logprob, b.sum_logprob, "{}", clips[i].0);
    }
    // Beam 5 over 8 windows is 40 rows a step: the blocked GEMM instead of the few-row kernel,
    // another summation order. Report how many clips keep their tokens; most must.
    let beam = TranscribeOptions {
        beam_size: 5,
        ..greedy()
    };
    let (a, b) = decode_both(w, &alone, &beam);
    let same = a
        .iter()
        .zip(&b)
        .filter(|(a, b)| a.tokens == b.tokens)
        .count();
    eprintln!(
        "beam 5, batch of {}: {same} clips decode to identical tokens",
        a.len()
    );
    for (i, (a, b)) in a.iter().zip(&b).enumerate() {
        if a.tokens != b.tokens {
            eprintln!(
                "{}:\n  alone   {:?}\n  batched {:?}",
                clips[i].0, a.text, b.text
            );
        }
    }
    assert!(
        same * 4 >= a.len() * 3,
        "only {same} of {} identical",
        a.len()
    );
}

/// The library's batched entry point on several files: each clip's text is what
/// `Whisper::transcribe` gives it (one window each, no previous text to condition on).
#[test]
fn transcribe_many_matches_transcribing_each_file() {
    let Some(clips) = short_clips(6) else { return };
    let w = tiny_en();
    let opts = TranscribeOptions {
        without_timestamps: true,
        ..greedy()
    };
    let audio: Vec<&[f32]> = clips.iter().map(|(_, s)| s.as_slice()).collect();
    let many = w
        .transcribe_many(&audio, &opts, &BatchOptions { batch_size: 4 })
        .unwrap();
    assert_eq!(many.len(), clips.len());
    for ((name, samples), t) in clips.iter().zip(&many) {
        let alone = w.transcribe(samples, &opts).unwrap();
        assert_eq!(t.text, alone.text, "{name}");
        let dur = samples.len() as f32 / 16_000.0;
        for s in &t.segments {
            assert!(
                0.0 <= s.start && s.start < s.end && s.end <= dur + 1e-3,
                "{name}: {s:?}"
            );
        }
    }
}

/// With timestamps, a long recording in fixed 30 s windows: segments in order, on the
/// recording's timeline, inside its duration.
#[test]
fn batched_segments_lie_on_the_recording_timeline() {
    let Some(clips) = short_clips(41) else { return };
    let w = tiny_en();
    // Clips back to back with 1 s of silence: about two minutes, several windows.
    let mut long = Vec::new();
    for (_, s) in clips.iter().take(24) {
        long.extend_from_slice(s);
        long.extend(std::iter::repeat_n(0.0, 16_000));
    }
    let t = w
        .transcribe_batched(&long, &greedy(), &BatchOptions { batch_size: 3 })
        .unwrap();
    let dur = long.len() as f32 / 16_000.0;
    assert!(
        t.times.windows >= 3,
        "{} windows over {dur} s",
        t.times.windows
    );
    assert!(!t.segments.is_empty());
    let mut last_start = 0.0;
    for s in &t.segments {
        assert!(
            s.start >= last_start && s.start < s.end && s.end <= dur + 1e-3,
            "{s:?}"
        );
        last_start = s.start;
    }
}

#[test]
fn bad_recordings_and_options_are_named() {
    let w = tiny_en();
    let good = vec![0.0f32; 16_000];
    let short = vec![0.0f32; 10];
    let err = w
        .transcribe_many(&[&good, &short], &greedy(), &BatchOptions::default())
        .unwrap_err();
    assert!(matches!(err, Error::Recording { index: 1, .. }), "{err}");
    assert!(err.is_bad_input());
    let err = w
        .transcribe_many(&[&good], &greedy(), &BatchOptions { batch_size: 0 })
        .unwrap_err();
    assert!(err.to_string().contains("batch_size"), "{err}");
}

/// VAD windows: three clips with 20 s of silence between them, timestamps on. Every segment
/// starts and ends within a placed clip on the recording's timeline (none in the gaps), and
/// every clip's speech is transcribed.
#[test]
fn vad_windows_keep_the_recording_timeline() {
    let Some(clips) = short_clips(3) else { return };
    let cache = fetch::default_cache_dir();
    let dir = fetch::model_dir("tiny.en", &cache, true).expect("tiny.en");
    let load = LoadOptions {
        backend: BackendKind::Cpu,
        vad_model: Some(fetch::vad_weights(&cache, true).expect("Silero VAD weights")),
        ..LoadOptions::default()
    };
    let w = Whisper::load(dir, &load).expect("tiny.en loads");
    let gap = 20 * 16_000;
    let mut long = vec![0.0f32; gap];
    let mut placed = Vec::new();
    for (_, s) in &clips {
        let start = long.len() as f32 / 16_000.0;
        long.extend_from_slice(s);
        placed.push((start, long.len() as f32 / 16_000.0));
        long.extend(std::iter::repeat_n(0.0, gap));
    }
    let opts = TranscribeOptions {
        vad: Some(whisper_model::batched::batched_vad_options()),
        ..greedy()
    };
    let t = w
        .transcribe_batched(&long, &opts, &BatchOptions { batch_size: 4 })
        .unwrap();
    eprintln!("{placed:?}");
    for s in &t.segments {
        eprintln!("[{:.2} → {:.2}] {}", s.start, s.end, s.text);
        // A segment may run from one clip into the next (the silence between was cut out
        // before decoding), but neither end lies in a gap.
        let in_speech = |t: f32| placed.iter().any(|&(a, b)| t >= a - 0.5 && t <= b + 0.5);
        assert!(
            in_speech(s.start) && in_speech(s.end),
            "segment ends in a gap: {s:?}"
        );
    }
    for &(a, b) in &placed {
        assert!(
            t.segments.iter().any(|s| s.start < b && s.end > a),
            "no segment for the clip at {a:.1}–{b:.1} s"
        );
    }
}

#[test]
fn transcribe_files_gives_each_file_what_transcribe_gives_it() {
    let Some(clips) = short_clips(5) else { return };
    let w = tiny_en();
    // Clips back to back make a recording longer than one window: it is transcribed alone.
    let mut long: Vec<f32> = Vec::new();
    while long.len() <= 30 * 16_000 {
        long.extend(clips.iter().flat_map(|(_, s)| s));
    }
    let mut recordings: Vec<&[f32]> = clips.iter().map(|(_, s)| s.as_slice()).collect();
    recordings.insert(2, &long);
    recordings.push(&[]);
    let results = w
        .transcribe_files(&recordings, &greedy(), 3, &CancelToken::new())
        .expect("the options are valid");
    assert_eq!(results.len(), recordings.len());
    let (last, files) = results.split_last().expect("results");
    assert!(last.is_err(), "an empty recording fails alone");
    let mut same = 0;
    for (i, (samples, got)) in recordings.iter().zip(files).enumerate() {
        let got = got.as_ref().expect("the recording transcribes");
        let alone = w.transcribe(samples, &greedy()).expect("transcribes alone");
        let times = |t: &whisper_model::Transcript| -> Vec<(f32, f32)> {
            t.segments.iter().map(|s| (s.start, s.end)).collect()
        };
        assert_eq!(times(got), times(&alone), "recording {i}: segment times");
        same += usize::from(got.text == alone.text);
    }
    // Greedy steps of a few rows keep their summation order: every clip keeps its text.
    assert_eq!(same, files.len(), "{same} of {} identical", files.len());
}

#[test]
fn concurrent_transcriptions_share_decoding_steps_and_keep_their_text() {
    let Some(clips) = short_clips(4) else { return };
    let w = tiny_en();
    let alone: Vec<String> = clips
        .iter()
        .map(|(_, s)| w.transcribe(s, &greedy()).expect("transcribes").text)
        .collect();
    let before = w.step_stats();
    // Four threads at once, each transcribing its clip several times so that their decoding
    // loops overlap.
    let together: Vec<Vec<String>> = std::thread::scope(|s| {
        let handles: Vec<_> = clips
            .iter()
            .map(|(_, samples)| {
                s.spawn(move || {
                    (0..3)
                        .map(|_| w.transcribe(samples, &greedy()).expect("transcribes").text)
                        .collect()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    let after = w.step_stats();
    for ((name, _), (a, runs)) in clips.iter().zip(alone.iter().zip(&together)) {
        for t in runs {
            assert_eq!(t, a, "{name}: concurrent text differs from the text alone");
        }
    }
    let (calls, steps) = (after.calls - before.calls, after.steps - before.steps);
    eprintln!("{steps} decoding steps in {calls} decoder calls");
    assert!(
        steps > calls + calls / 4,
        "concurrent steps were not merged: {steps} steps in {calls} calls"
    );
}
