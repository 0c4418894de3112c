//! Starting a server on a loopback port with the tiny.en model, and talking to it.

#![allow(dead_code)] // each test file uses part of this

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use whisper_model::{BackendKind, CancelToken, LoadOptions, TranscribeOptions, Whisper};
use whisper_server::{Server, ServerConfig};

#[path = "../../../model/tests/support/mod.rs"]
pub mod support;

/// tiny.en on the CPU, loaded once per test binary and shared by every server it starts.
pub fn tiny_en() -> Arc<Whisper> {
    static W: OnceLock<Arc<Whisper>> = OnceLock::new();
    W.get_or_init(|| {
        let dir = whisper_fetch::model_dir("tiny.en", &whisper_fetch::default_cache_dir(), true)
            .expect("model available (cargo xtask fetch-model tiny.en)");
        let opts = LoadOptions {
            backend: BackendKind::Cpu,
            ..LoadOptions::default()
        };
        Arc::new(Whisper::load(dir, &opts).expect("tiny.en loads"))
    })
    .clone()
}

/// Whisper base (multilingual) on the CPU, loaded once per test binary.
pub fn base() -> Arc<Whisper> {
    static W: OnceLock<Arc<Whisper>> = OnceLock::new();
    W.get_or_init(|| {
        let dir = whisper_fetch::model_dir("base", &whisper_fetch::default_cache_dir(), true)
            .expect("model available (cargo xtask fetch-model base)");
        let opts = LoadOptions {
            backend: BackendKind::Cpu,
            ..LoadOptions::default()
        };
        Arc::new(Whisper::load(dir, &opts).expect("base loads"))
    })
    .clone()
}

/// A clip of the shared speech data, or a loud skip.
pub fn clip(name: &str) -> Option<PathBuf> {
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

/// Greedy decoding keeps the tests quick.
pub fn config() -> ServerConfig {
    ServerConfig {
        model_id: "tiny.en".into(),
        workers: 1,
        queue: 4,
        defaults: TranscribeOptions {
            beam_size: 1,
            ..TranscribeOptions::default()
        },
        ..ServerConfig::default()
    }
}

pub struct TestServer {
    pub addr: SocketAddr,
    cancel: CancelToken,
    stop: Option<oneshot::Sender<()>>,
    pub handle: JoinHandle<std::io::Result<()>>,
}

impl TestServer {
    pub async fn start(config: ServerConfig) -> TestServer {
        let whisper = tokio::task::spawn_blocking(tiny_en).await.unwrap();
        Self::start_with(whisper, config).await
    }

    pub async fn start_with(whisper: Arc<Whisper>, config: ServerConfig) -> TestServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let server = Server::new(whisper, config);
        let cancel = server.cancel_token();
        let handle = tokio::spawn(server.serve(listener, async {
            let _ = stopped.await;
        }));
        TestServer {
            addr,
            cancel,
            stop: Some(stop),
            handle,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Starts the graceful shutdown.
    pub fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    pub async fn health(&self) -> serde_json::Value {
        reqwest::get(self.url("/health"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Polls /health until nothing is in flight, at most `limit`; returns how long it took.
    pub async fn wait_idle(&self, limit: Duration) -> Option<Duration> {
        let start = std::time::Instant::now();
        while start.elapsed() < limit {
            let h = self.health().await;
            if h["running"] == 0 && h["in_flight"] == 0 {
                return Some(start.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }

    /// Polls /health until a transcription is running, at most `limit`.
    pub async fn wait_running(&self, limit: Duration) -> bool {
        let start = std::time::Instant::now();
        while start.elapsed() < limit {
            if self.health().await["running"] == 1 {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        // Nothing outlives the test: running transcriptions stop at their next decoding step.
        self.cancel.cancel();
        self.shutdown();
        self.handle.abort();
    }
}

/// A multipart form with `file` and the given text fields.
pub fn form(file: &[u8], filename: &str, fields: &[(&str, &str)]) -> reqwest::multipart::Form {
    let mut form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(file.to_vec()).file_name(filename.to_string()),
    );
    for (k, v) in fields {
        form = form.text(k.to_string(), v.to_string());
    }
    form
}

pub async fn post(
    server: &TestServer,
    path: &str,
    form: reqwest::multipart::Form,
) -> reqwest::Response {
    reqwest::Client::new()
        .post(server.url(path))
        .multipart(form)
        .send()
        .await
        .unwrap()
}

/// The raw bytes of a multipart body with one file field, and its content type.
pub fn multipart_body(file: &[u8], filename: &str, fields: &[(&str, &str)]) -> (Vec<u8>, String) {
    let boundary = "XDNAboundary7MA4YWxkTrZu0gW";
    let mut body = Vec::new();
    for (k, v) in fields {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n")
                .as_bytes(),
        );
    }
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(file);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (body, format!("multipart/form-data; boundary={boundary}"))
}

/// Sends a hand-made request over a plain TCP connection (for bodies no client library would
/// send) and returns the status and the body of the response.
pub async fn raw_request(
    addr: SocketAddr,
    path: &str,
    content_type: &str,
    body: &[u8],
    content_length: usize,
) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {content_type}\r\nContent-Length: {content_length}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    if body.len() < content_length {
        // The client stops sending: the upload is cut off.
        stream.shutdown().await.unwrap();
    }
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut response))
        .await
        .expect("a response within 30 s")
        .unwrap();
    let text = String::from_utf8_lossy(&response).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// Checks OpenAI's error shape and returns the error object.
pub fn openai_error(body: &str) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_str(body)
        .unwrap_or_else(|e| panic!("error body is not JSON ({e}): {body:?}"));
    let err = v["error"].clone();
    assert!(err["message"].is_string(), "no error.message in {body}");
    assert!(err["type"].is_string(), "no error.type in {body}");
    assert!(
        err.get("param").is_some() && err.get("code").is_some(),
        "no param/code in {body}"
    );
    err
}
