//! `serve --vad`: a server whose defaults ask for VAD applies it to every request (OpenAI's API
//! has no such field), so the silence before the speech is skipped and the timestamps stay on
//! the uploaded recording's timeline.

mod common;

use std::sync::Arc;

use common::*;
use whisper_fetch as fetch;
use whisper_model::{BackendKind, LoadOptions, TranscribeOptions, VadOptions, Whisper};

/// 16 kHz mono 16-bit PCM WAV bytes.
fn wav(samples: &[f32]) -> Vec<u8> {
    let data = samples.len() as u32 * 2;
    let mut b = Vec::with_capacity(44 + data as usize);
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&(36 + data).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    for v in [16u32, 0x0001_0001, 16_000, 32_000, 0x0010_0002] {
        b.extend_from_slice(&v.to_le_bytes());
    }
    b.extend_from_slice(b"data");
    b.extend_from_slice(&data.to_le_bytes());
    for s in samples {
        b.extend_from_slice(&((s.clamp(-1.0, 1.0) * 32767.0) as i16).to_le_bytes());
    }
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_is_transcribed_with_vad() {
    let Some(jfk) = clip("jfk.wav") else { return };
    let cache = fetch::default_cache_dir();
    let vad_model = match fetch::vad_weights(&cache, true) {
        Ok(p) => p,
        Err(e) => return support::skip(format!("Silero VAD cannot be fetched: {e}")),
    };
    let whisper = tokio::task::spawn_blocking(move || {
        let dir = fetch::model_dir("tiny.en", &cache, true).expect("tiny.en");
        let opts = LoadOptions {
            backend: BackendKind::Cpu,
            vad_model: Some(vad_model),
            ..LoadOptions::default()
        };
        Arc::new(Whisper::load(dir, &opts).expect("tiny.en loads with VAD"))
    })
    .await
    .unwrap();
    let mut config = config();
    config.defaults = TranscribeOptions {
        vad: Some(VadOptions::default()),
        ..config.defaults
    };
    let server = TestServer::start_with(whisper, config).await;

    // 15 s of silence, then JFK.
    let mut audio = vec![0.0; 15 * 16_000];
    audio.extend(whisper_model::load_audio(&jfk).unwrap());
    let body = wav(&audio);
    let r = post(
        &server,
        "/v1/audio/transcriptions",
        form(
            &body,
            "late.wav",
            &[("model", "whisper-1"), ("response_format", "verbose_json")],
        ),
    )
    .await;
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    let text = v["text"].as_str().unwrap().to_lowercase();
    assert!(text.contains("ask not what your country"), "{text}");
    let duration = v["duration"].as_f64().unwrap();
    assert!(
        (duration - audio.len() as f64 / 16_000.0).abs() < 0.05,
        "{v}"
    );
    let first = v["segments"][0]["start"].as_f64().unwrap();
    // JFK speaks about 0.3 s into the clip; VAD pads speech by 0.4 s.
    assert!(
        (14.5..16.0).contains(&first),
        "first segment at {first} s: {v}"
    );
}
