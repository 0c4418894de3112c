//! The server over real HTTP on a loopback port, with tiny.en: every response format, streaming,
//! each bad input's status and message, the queue bound, client disconnects, timeouts and
//! graceful shutdown.

mod common;

use std::time::{Duration, Instant};

use common::*;
use whisper_server::ServerConfig;

fn jfk() -> Option<Vec<u8>> {
    clip("jfk.wav").map(|p| std::fs::read(p).unwrap())
}

/// 68 s of German: a long run for tiny.en (several windows), to be interrupted.
fn long_clip() -> Option<Vec<u8>> {
    clip("aeneas_de_librivox.wav").map(|p| std::fs::read(p).unwrap())
}

fn says_ask_not(text: &str) -> bool {
    text.to_lowercase().contains("ask not what your country")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_response_format() {
    let Some(audio) = jfk() else { return };
    let server = TestServer::start(config()).await;
    let path = "/v1/audio/transcriptions";

    let r = post(
        &server,
        path,
        form(&audio, "jfk.wav", &[("model", "whisper-1")]),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let json: serde_json::Value = r.json().await.unwrap();
    let text = json["text"].as_str().unwrap();
    assert!(says_ask_not(text), "{json}");
    assert_eq!(text, text.trim());
    assert_eq!(json["usage"]["type"], "duration");
    assert_eq!(json["usage"]["seconds"], 11);

    let r = post(
        &server,
        path,
        form(&audio, "jfk.wav", &[("response_format", "text")]),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let plain = r.text().await.unwrap();
    assert_eq!(plain, format!("{text}\n"));

    let r = post(
        &server,
        path,
        form(&audio, "jfk.wav", &[("response_format", "srt")]),
    )
    .await;
    assert_eq!(r.status(), 200);
    let srt = r.text().await.unwrap();
    assert!(srt.starts_with("1\n00:00:00,000 --> 00:00:"), "{srt}");
    assert!(says_ask_not(&srt.replace('\n', " ")), "{srt}");

    let r = post(
        &server,
        path,
        form(&audio, "jfk.wav", &[("response_format", "vtt")]),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/vtt"));
    let vtt = r.text().await.unwrap();
    assert!(
        vtt.starts_with("WEBVTT\n\n00:00:00.000 --> 00:00:"),
        "{vtt}"
    );

    let r = post(
        &server,
        path,
        form(
            &audio,
            "jfk.wav",
            &[
                ("response_format", "verbose_json"),
                ("timestamp_granularities[]", "segment"),
            ],
        ),
    )
    .await;
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["task"], "transcribe");
    assert_eq!(v["language"], "english");
    assert!((v["duration"].as_f64().unwrap() - 11.0).abs() < 0.01, "{v}");
    assert_eq!(v["text"], text);
    let segments = v["segments"].as_array().unwrap();
    assert!(!segments.is_empty());
    for (i, s) in segments.iter().enumerate() {
        assert_eq!(s["id"], i);
        for key in [
            "seek",
            "start",
            "end",
            "text",
            "tokens",
            "temperature",
            "avg_logprob",
            "compression_ratio",
            "no_speech_prob",
        ] {
            assert!(s.get(key).is_some(), "segment {i} has no {key}: {s}");
        }
        assert!(s["start"].as_f64() < s["end"].as_f64());
    }
}

/// `/v1/audio/translations` on a multilingual model: French speech comes back in English, and
/// the same clip on `/transcriptions` stays French.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn translations_into_english() {
    let Some(path) = clip("sr_french.wav") else {
        return;
    };
    let audio = std::fs::read(path).unwrap();
    let whisper = tokio::task::spawn_blocking(base).await.unwrap();
    let server = TestServer::start_with(
        whisper,
        ServerConfig {
            model_id: "base".into(),
            ..config()
        },
    )
    .await;
    let r = post(
        &server,
        "/v1/audio/translations",
        form(
            &audio,
            "fr.wav",
            &[("model", "base"), ("response_format", "verbose_json")],
        ),
    )
    .await;
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["task"], "translate");
    assert_eq!(v["language"], "french");
    let english = v["text"].as_str().unwrap().to_lowercase();
    assert!(english.contains("dictation"), "{v}");
    let r = post(
        &server,
        "/v1/audio/transcriptions",
        form(&audio, "fr.wav", &[]),
    )
    .await;
    let french: serde_json::Value = r.json().await.unwrap();
    assert!(
        french["text"].as_str().unwrap().contains("dictée"),
        "{french}"
    );
}

/// `stream=true`: data-only events, deltas that add up to the done event's text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_sent_events() {
    let Some(audio) = jfk() else { return };
    let server = TestServer::start(config()).await;
    let r = post(
        &server,
        "/v1/audio/transcriptions",
        form(&audio, "jfk.wav", &[("stream", "true")]),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let body = r.text().await.unwrap();
    let events: Vec<serde_json::Value> = body
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let (done, deltas) = events.split_last().expect("events");
    assert!(!deltas.is_empty());
    assert!(
        deltas.iter().all(|e| e["type"] == "transcript.text.delta"),
        "{body}"
    );
    assert_eq!(done["type"], "transcript.text.done", "{body}");
    let joined: String = deltas
        .iter()
        .map(|e| e["delta"].as_str().unwrap())
        .collect();
    assert_eq!(joined.trim_end(), done["text"].as_str().unwrap());
    assert!(says_ask_not(&joined), "{joined}");
}

/// Each bad input answers with its status, OpenAI's error shape and a message naming it; the
/// server keeps serving afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_inputs_get_their_status_and_message() {
    let Some(audio) = jfk() else { return };
    let server = TestServer::start(ServerConfig {
        max_upload_bytes: 400_000, // jfk.wav is 352 kB
        max_audio_seconds: 20.0,
        ..config()
    })
    .await;
    let path = "/v1/audio/transcriptions";
    let check = |status: u16, body: &str, want: u16, says: &str, param: Option<&str>| {
        assert_eq!(status, want, "{body}");
        let err = openai_error(body);
        let message = err["message"].as_str().unwrap();
        assert!(message.contains(says), "{message:?} does not say {says:?}");
        if let Some(p) = param {
            assert_eq!(err["param"], p, "{body}");
        }
    };
    let send = |f: reqwest::multipart::Form| post(&server, path, f);

    let r = send(form(b"hello, this is not a recording", "notes.txt", &[])).await;
    check(
        r.status().as_u16(),
        &r.text().await.unwrap(),
        400,
        "not audio",
        Some("file"),
    );

    let r = send(form(b"", "empty.wav", &[])).await;
    check(
        r.status().as_u16(),
        &r.text().await.unwrap(),
        400,
        "empty",
        Some("file"),
    );

    // A WAV cut to half its length: its header announces twice the audio.
    let r = send(form(&audio[..audio.len() / 2], "cut.wav", &[])).await;
    check(
        r.status().as_u16(),
        &r.text().await.unwrap(),
        400,
        "truncated",
        Some("file"),
    );

    let r = send(form(&audio, "jfk.wav", &[("response_format", "xml")])).await;
    check(
        r.status().as_u16(),
        &r.text().await.unwrap(),
        400,
        "response_format",
        Some("response_format"),
    );

    let r = send(form(&audio, "jfk.wav", &[("language", "xx")])).await;
    check(
        r.status().as_u16(),
        &r.text().await.unwrap(),
        400,
        "unknown language",
        Some("language"),
    );

    let r = send(form(&audio, "jfk.wav", &[("language", "de")])).await;
    check(
        r.status().as_u16(),
        &r.text().await.unwrap(),
        400,
        "English-only",
        Some("language"),
    );

    let r = send(form(&audio, "jfk.wav", &[("temperature", "3")])).await;
    check(
        r.status().as_u16(),
        &r.text().await.unwrap(),
        400,
        "temperature",
        Some("temperature"),
    );

    let r = send(form(
        &audio,
        "jfk.wav",
        &[
            ("response_format", "verbose_json"),
            ("timestamp_granularities[]", "character"),
        ],
    ))
    .await;
    check(
        r.status().as_u16(),
        &r.text().await.unwrap(),
        400,
        "unknown timestamp granularity \"character\"",
        Some("timestamp_granularities[]"),
    );

    let r = send(form(&audio, "jfk.wav", &[("stream", "maybe")])).await;
    check(
        r.status().as_u16(),
        &r.text().await.unwrap(),
        400,
        "stream",
        Some("stream"),
    );

    let r = send(form(&audio, "jfk.wav", &[("model", "gpt-9")])).await;
    check(
        r.status().as_u16(),
        &r.text().await.unwrap(),
        404,
        "gpt-9",
        Some("model"),
    );

    // tiny.en cannot translate.
    let r = post(
        &server,
        "/v1/audio/translations",
        form(&audio, "jfk.wav", &[]),
    )
    .await;
    check(
        r.status().as_u16(),
        &r.text().await.unwrap(),
        400,
        "cannot translate",
        Some("model"),
    );

    let big = vec![7u8; 500_000];
    let r = send(form(&big, "big.wav", &[])).await;
    check(
        r.status().as_u16(),
        &r.text().await.unwrap(),
        413,
        "larger than this server's limit",
        Some("file"),
    );

    // 68 s of audio against a 20 s limit.
    if let Some(long) = long_clip() {
        let server = TestServer::start(ServerConfig {
            max_audio_seconds: 20.0,
            max_upload_bytes: 5_000_000,
            ..config()
        })
        .await;
        let r = post(&server, path, form(&long, "long.wav", &[])).await;
        check(
            r.status().as_u16(),
            &r.text().await.unwrap(),
            413,
            "more than 20 s of audio",
            Some("file"),
        );
    }

    // No file field.
    let r = send(reqwest::multipart::Form::new().text("model", "whisper-1")).await;
    check(
        r.status().as_u16(),
        &r.text().await.unwrap(),
        400,
        "no `file` field",
        Some("file"),
    );

    // Not multipart at all.
    let r = reqwest::Client::new()
        .post(server.url(path))
        .json(&serde_json::json!({"file": "x"}))
        .send()
        .await
        .unwrap();
    check(
        r.status().as_u16(),
        &r.text().await.unwrap(),
        400,
        "multipart/form-data",
        None,
    );

    // A multipart body cut off before its closing boundary (the client sends all it announced).
    let (body, content_type) = multipart_body(&audio, "jfk.wav", &[]);
    let cut = &body[..body.len() - 200];
    let (status, text) = raw_request(server.addr, path, &content_type, cut, cut.len()).await;
    check(status, &text, 400, "malformed or truncated", None);

    // An upload that stops early: the client announces more than it sends, then closes.
    let (status, text) = raw_request(
        server.addr,
        path,
        &content_type,
        &body[..body.len() / 3],
        body.len(),
    )
    .await;
    if status != 0 {
        check(status, &text, 400, "malformed or truncated", None);
    }

    // Garbage where the multipart framing should be.
    let (status, text) = raw_request(
        server.addr,
        path,
        &content_type,
        b"\x00\x01garbage without any boundary",
        29,
    )
    .await;
    check(status, &text, 400, "malformed or truncated", None);

    let r = reqwest::get(server.url("/v1/audio/speech")).await.unwrap();
    check(
        r.status().as_u16(),
        &r.text().await.unwrap(),
        404,
        "no such endpoint",
        None,
    );
    let r = reqwest::get(server.url(path)).await.unwrap();
    check(
        r.status().as_u16(),
        &r.text().await.unwrap(),
        405,
        "GET is not allowed",
        None,
    );

    // Still serving.
    let r = send(form(&audio, "jfk.wav", &[])).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        server.wait_idle(Duration::from_secs(5)).await.map(|_| ()),
        Some(())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_and_health() {
    let server = TestServer::start(config()).await;
    let models: serde_json::Value = reqwest::get(server.url("/v1/models"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(models["object"], "list");
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["tiny.en", "whisper-1"]);
    let m = reqwest::get(server.url("/v1/models/tiny.en"))
        .await
        .unwrap();
    assert_eq!(m.status(), 200);
    let m = reqwest::get(server.url("/v1/models/large-v3"))
        .await
        .unwrap();
    assert_eq!(m.status(), 404);
    openai_error(&m.text().await.unwrap());
    let h = server.health().await;
    assert_eq!(h["status"], "ok");
    assert_eq!(h["model"], "tiny.en");
    assert_eq!(h["backend"], "cpu");
}

/// One worker and one place in the queue: of four requests sent at once, two are served and
/// two are refused with 429 at once, not after the others' transcription.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_queue_bound_requests_get_429_at_once() {
    let Some(audio) = jfk() else { return };
    let server = TestServer::start(ServerConfig {
        workers: 1,
        queue: 1,
        ..config()
    })
    .await;
    let client = reqwest::Client::new();
    let mut tasks = Vec::new();
    for i in 0..4 {
        let (client, url, audio) = (
            client.clone(),
            server.url("/v1/audio/transcriptions"),
            audio.clone(),
        );
        tasks.push(tokio::spawn(async move {
            // Staggered so that the first two are in before the others arrive.
            tokio::time::sleep(Duration::from_millis(if i < 2 { 0 } else { 300 })).await;
            let start = Instant::now();
            let r = client
                .post(url)
                .multipart(form(&audio, "jfk.wav", &[]))
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let retry_after = r.headers().get("retry-after").is_some();
            let body = r.text().await.unwrap();
            (status, start.elapsed(), retry_after, body)
        }));
    }
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap());
    }
    let ok: Vec<_> = results.iter().filter(|r| r.0 == 200).collect();
    let busy: Vec<_> = results.iter().filter(|r| r.0 == 429).collect();
    assert_eq!((ok.len(), busy.len()), (2, 2), "{results:?}");
    for (_, took, retry_after, body) in busy {
        assert!(*took < Duration::from_millis(500), "429 took {took:?}");
        assert!(retry_after);
        let err = openai_error(body);
        assert_eq!(err["code"], "rate_limit_exceeded");
    }
}

/// Two requests at once with two workers share one loaded model and get the same text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_share_the_model() {
    let Some(audio) = jfk() else { return };
    let server = TestServer::start(ServerConfig {
        workers: 2,
        ..config()
    })
    .await;
    let send = || {
        post(
            &server,
            "/v1/audio/transcriptions",
            form(&audio, "jfk.wav", &[]),
        )
    };
    let (a, b) = tokio::join!(send(), send());
    let (a, b): (serde_json::Value, serde_json::Value) =
        (a.json().await.unwrap(), b.json().await.unwrap());
    assert!(says_ask_not(a["text"].as_str().unwrap()), "{a}");
    assert_eq!(a, b);
}

/// A client that disconnects mid-transcription frees the only worker at once: the next request
/// is served instead of refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_disconnect_frees_the_worker() {
    let (Some(long), Some(audio)) = (long_clip(), jfk()) else {
        return;
    };
    let server = TestServer::start(ServerConfig {
        workers: 1,
        queue: 0,
        max_upload_bytes: 5_000_000,
        ..config()
    })
    .await;
    for stream in ["false", "true"] {
        let (body, content_type) = multipart_body(&long, "long.wav", &[("stream", stream)]);
        let mut conn = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        let head = format!(
            "POST /v1/audio/transcriptions HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        use tokio::io::AsyncWriteExt;
        conn.write_all(head.as_bytes()).await.unwrap();
        conn.write_all(&body).await.unwrap();
        assert!(
            server.wait_running(Duration::from_secs(10)).await,
            "stream={stream}: never started"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        // Busy: with no queue, another request is refused.
        let r = post(
            &server,
            "/v1/audio/transcriptions",
            form(&audio, "jfk.wav", &[]),
        )
        .await;
        assert_eq!(r.status(), 429, "stream={stream}");
        drop(conn);
        let freed = server.wait_idle(Duration::from_secs(3)).await;
        assert!(
            freed.is_some(),
            "stream={stream}: the worker is still busy 3 s after the disconnect"
        );
        let r = post(
            &server,
            "/v1/audio/transcriptions",
            form(&audio, "jfk.wav", &[]),
        )
        .await;
        assert_eq!(r.status(), 200, "stream={stream}");
    }
}

/// A request past the time limit is answered 504 and its transcription cancelled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_past_the_time_limit_are_cancelled() {
    let Some(long) = long_clip() else { return };
    let server = TestServer::start(ServerConfig {
        request_timeout: Duration::from_secs(2),
        max_upload_bytes: 5_000_000,
        ..config()
    })
    .await;
    let start = Instant::now();
    let r = post(
        &server,
        "/v1/audio/transcriptions",
        form(&long, "long.wav", &[]),
    )
    .await;
    assert_eq!(r.status(), 504);
    let err = openai_error(&r.text().await.unwrap());
    assert_eq!(err["code"], "timeout");
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "{:?}",
        start.elapsed()
    );
    assert!(
        server.wait_idle(Duration::from_secs(2)).await.is_some(),
        "still transcribing after the timeout"
    );
}

/// Shutdown lets a running request finish, refuses new ones, and returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_finishes_running_work() {
    let Some(audio) = jfk() else { return };
    let mut server = TestServer::start(config()).await;
    let url = server.url("/v1/audio/transcriptions");
    let running = tokio::spawn(async move {
        reqwest::Client::new()
            .post(url)
            .multipart(form(&audio, "jfk.wav", &[]))
            .send()
            .await
            .unwrap()
    });
    assert!(server.wait_running(Duration::from_secs(10)).await);
    server.shutdown();
    let r = running.await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(says_ask_not(&r.text().await.unwrap()));
    let stopped = tokio::time::timeout(Duration::from_secs(10), &mut server.handle).await;
    assert!(
        matches!(stopped, Ok(Ok(Ok(())))),
        "serve did not return: {stopped:?}"
    );
    assert!(
        tokio::net::TcpStream::connect(server.addr).await.is_err(),
        "still accepting connections"
    );
}

/// With no grace period, shutdown cancels running work at once: the request gets 503 and the
/// server returns within a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_cancels_work_after_the_grace_period() {
    let Some(long) = long_clip() else { return };
    let mut server = TestServer::start(ServerConfig {
        shutdown_timeout: Duration::ZERO,
        max_upload_bytes: 5_000_000,
        ..config()
    })
    .await;
    let url = server.url("/v1/audio/transcriptions");
    let running = tokio::spawn(async move {
        reqwest::Client::new()
            .post(url)
            .multipart(form(&long, "long.wav", &[]))
            .send()
            .await
            .unwrap()
    });
    assert!(server.wait_running(Duration::from_secs(10)).await);
    let start = Instant::now();
    server.shutdown();
    let r = running.await.unwrap();
    assert_eq!(r.status(), 503);
    assert!(openai_error(&r.text().await.unwrap())["message"]
        .as_str()
        .unwrap()
        .contains("cancelled"));
    let stopped = tokio::time::timeout(Duration::from_secs(10), &mut server.handle).await;
    assert!(
        matches!(stopped, Ok(Ok(Ok(())))),
        "serve did not return: {stopped:?}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
}
