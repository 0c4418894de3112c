//! `stream=true`: server-sent events as OpenAI sends them, one `transcript.text.delta` per
//! decoded segment, then `transcript.text.done` with the whole text. An error after the
//! response started is sent as an `{"error": ...}` event, which OpenAI's clients raise.

use std::convert::Infallible;
use std::sync::Arc;

use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tokio::sync::mpsc;
use tokio::time::Instant;
use whisper_model::{CancelToken, Segment, TranscribeOptions};

use crate::error::ApiError;
use crate::formats::usage;
use crate::state::{AppState, CancelOnDrop, Permits};

/// What the event stream holds: when the client goes, it is dropped and the guard cancels the
/// transcription.
struct Events {
    rx: mpsc::Receiver<Result<Segment, whisper_model::Error>>,
    text: String,
    duration: f32,
    deadline: Instant,
    timeout_s: u64,
    guard: CancelOnDrop,
    done: bool,
}

pub fn respond(
    state: Arc<AppState>,
    samples: Vec<f32>,
    options: TranscribeOptions,
    cancel: CancelToken,
    guard: CancelOnDrop,
    permits: Permits,
    deadline: Instant,
) -> Response {
    let (tx, rx) = mpsc::channel(16);
    let duration = samples.len() as f32 / whisper_model::SAMPLE_RATE as f32;
    let worker_state = state.clone();
    tokio::task::spawn_blocking(move || {
        let _permits = permits;
        let _running = worker_state.running();
        match worker_state
            .whisper
            .transcribe_stream(&samples, &options, &cancel)
        {
            Ok(stream) => {
                for segment in stream {
                    if tx.blocking_send(segment).is_err() {
                        break; // the client is gone (and the guard has cancelled the token)
                    }
                }
            }
            Err(e) => {
                let _ = tx.blocking_send(Err(e));
            }
        }
    });
    let events = Events {
        rx,
        text: String::new(),
        duration,
        deadline,
        timeout_s: state.config.request_timeout.as_secs(),
        guard,
        done: false,
    };
    let stream = futures_util::stream::unfold(events, |mut ev| async move {
        if ev.done {
            return None;
        }
        let event = match tokio::time::timeout_at(ev.deadline, ev.rx.recv()).await {
            Ok(Some(Ok(segment))) => {
                let delta = if ev.text.is_empty() {
                    segment.text.trim_start()
                } else {
                    segment.text.as_str()
                };
                ev.text.push_str(delta);
                json!({ "type": "transcript.text.delta", "delta": delta }).to_string()
            }
            Ok(Some(Err(e))) => {
                ev.done = true;
                ApiError::from(e).to_json()
            }
            Ok(None) => {
                ev.done = true;
                json!({
                    "type": "transcript.text.done",
                    "text": ev.text.trim_end(),
                    "usage": usage(ev.duration),
                })
                .to_string()
            }
            Err(_) => {
                ev.done = true;
                ev.guard.0.cancel();
                crate::routes::timed_out(ev.timeout_s).to_json()
            }
        };
        Some((Ok::<_, Infallible>(Event::default().data(event)), ev))
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}
