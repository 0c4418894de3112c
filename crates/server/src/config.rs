//! What the server allows and how much work it takes on at once.

use std::time::Duration;

use whisper_model::TranscribeOptions;

#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// The model's name in `/v1/models` and the `model` field (`whisper-1` is accepted too).
    pub model_id: String,
    /// Transcriptions that run at once; they share the model and its thread pool.
    pub workers: usize,
    /// Requests that may wait for a worker. Past `workers + queue` requests in the server, a new
    /// one gets 429 at once instead of piling up.
    pub queue: usize,
    /// Largest audio upload in bytes (413 above it).
    pub max_upload_bytes: usize,
    /// Longest audio in seconds (413 above it): bounds the memory and time one request takes.
    pub max_audio_seconds: f64,
    /// Longest a request may take from its first byte to its last, upload included (408 while
    /// uploading, 504 while transcribing; the transcription is cancelled).
    pub request_timeout: Duration,
    /// On shutdown, running requests get this long to finish before they are cancelled.
    pub shutdown_timeout: Duration,
    /// Decoding options of every request (beam size, fallback, ...); a request sets the
    /// language, prompt, temperature and task.
    pub defaults: TranscribeOptions,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            model_id: "whisper".into(),
            workers: 2,
            queue: 8,
            max_upload_bytes: 25 * 1024 * 1024,
            max_audio_seconds: 1800.0,
            request_timeout: Duration::from_secs(600),
            shutdown_timeout: Duration::from_secs(30),
            defaults: TranscribeOptions::default(),
        }
    }
}
