//! The endpoints: transcriptions and translations (multipart in, any response format or
//! server-sent events out), the model list, and health.

use std::sync::Arc;

use axum::extract::{FromRequest, Multipart, Path, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use tokio::time::{timeout_at, Instant};
use whisper_model::{decode_audio_limited, Task};

use crate::error::ApiError;
use crate::form::read_form;
use crate::request::{self, Job, OPENAI_MODEL};
use crate::state::{AppState, CancelOnDrop};
use crate::{formats, sse};

/// Room for the form's other fields and multipart framing beyond the audio itself.
pub const FORM_OVERHEAD: usize = 1024 * 1024;

pub async fn transcriptions(State(state): State<Arc<AppState>>, req: Request) -> Response {
    handle(state, req, Task::Transcribe)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

pub async fn translations(State(state): State<Arc<AppState>>, req: Request) -> Response {
    handle(state, req, Task::Translate)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

pub fn timed_out(seconds: u64) -> ApiError {
    ApiError::new(
        StatusCode::GATEWAY_TIMEOUT,
        format!(
            "the request took longer than this server's limit of {seconds} s; it was cancelled"
        ),
    )
    .code("timeout")
}

async fn handle(state: Arc<AppState>, req: Request, task: Task) -> Result<Response, ApiError> {
    // Admission first: a full server answers at once, without queueing the upload for work.
    let admission = match state.admit() {
        Ok(permit) => permit,
        Err(refusal) => {
            discard_body(req, state.config.max_upload_bytes + FORM_OVERHEAD).await;
            return Err(refusal);
        }
    };
    let started = Instant::now();
    let deadline = started + state.config.request_timeout;
    let timeout_s = state.config.request_timeout.as_secs();
    let max_upload = state.config.max_upload_bytes;

    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > max_upload + FORM_OVERHEAD) {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the request body is larger than this server's upload limit of {max_upload} bytes"
            ),
        )
        .code("upload_too_large"));
    }
    let mut multipart = Multipart::from_request(req, &()).await.map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("expected a multipart/form-data body with the audio in a `file` field ({e})"),
        )
        .code("malformed_body")
    })?;
    let form = timeout_at(deadline, read_form(&mut multipart, max_upload))
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                format!("the upload took longer than this server's limit of {timeout_s} s"),
            )
        })??;
    let Job {
        upload,
        options,
        format,
        granularities,
        stream,
    } = request::parse(form, task, &state.config, &state.whisper)?;

    let cancel = state.shutdown.child();
    let guard = CancelOnDrop(cancel.clone());
    let max_seconds = state.config.max_audio_seconds;
    // The admission permit stays with the decoder until it is done, even if the client leaves,
    // so that abandoned uploads cannot pile up decoding threads.
    let (decoded, admission) = timeout_at(
        deadline,
        tokio::task::spawn_blocking(move || {
            let decoded = decode_audio_limited(upload.bytes, &upload.filename, Some(max_seconds));
            (decoded, admission)
        }),
    )
    .await
    .map_err(|_| timed_out(timeout_s))?
    .map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("audio decoder failed: {e}"),
        )
    })?;
    let samples = decoded.map_err(|e| ApiError::from(whisper_model::Error::Audio(e)))?;

    let permits = timeout_at(deadline, state.worker(admission))
        .await
        .map_err(|_| timed_out(timeout_s))?;
    if stream {
        return Ok(sse::respond(
            state, samples, options, cancel, guard, permits, deadline,
        ));
    }
    let worker_state = state.clone();
    let job = tokio::task::spawn_blocking(move || {
        let _permits = permits;
        let _running = worker_state.running();
        worker_state
            .whisper
            .transcribe_stream(&samples, &options, &cancel)
            .and_then(|s| s.into_transcript())
    });
    let transcript = match timeout_at(deadline, job).await {
        Err(_) => return Err(timed_out(timeout_s)), // the guard cancels the transcription
        Ok(joined) => joined.map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("transcription failed: {e}"),
            )
        })??,
    };
    tracing::info!(
        "{} {:.1} s of audio in {:.2} s ({})",
        task.name(),
        transcript.duration,
        started.elapsed().as_secs_f64(),
        transcript.language
    );
    drop(guard);
    Ok(formats::respond(&transcript, format, task, granularities))
}

/// Reads and drops a refused request's body (up to `limit` bytes, for at most a few seconds):
/// a server that answers while the client is still sending makes the connection reset, and
/// most clients then report a network error instead of the 429.
async fn discard_body(req: Request, limit: usize) {
    use futures_util::StreamExt;
    let mut body = req.into_body().into_data_stream();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        let mut seen = 0;
        while let Some(Ok(chunk)) = body.next().await {
            seen += chunk.len();
            if seen > limit {
                break;
            }
        }
    })
    .await;
}

fn model_object(id: &str) -> serde_json::Value {
    json!({ "id": id, "object": "model", "created": 0, "owned_by": "xdna-whisper" })
}

pub async fn models(State(state): State<Arc<AppState>>) -> Json<serde_json::Value> {
    Json(json!({
        "object": "list",
        "data": [model_object(&state.config.model_id), model_object(OPENAI_MODEL)],
    }))
}

pub async fn model(State(state): State<Arc<AppState>>, Path(id): Path<String>) -> Response {
    if id == state.config.model_id || id == OPENAI_MODEL {
        Json(model_object(&id)).into_response()
    } else {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!(
                "no model {id:?} here; this server serves {:?}",
                state.config.model_id
            ),
        )
        .param("model")
        .code("model_not_found")
        .into_response()
    }
}

pub async fn health(State(state): State<Arc<AppState>>) -> Response {
    let status = if state.is_draining() {
        "shutting_down"
    } else {
        "ok"
    };
    let body = Json(json!({
        "status": status,
        "model": state.config.model_id,
        "backend": state.whisper.backend_name(),
        "threads": state.whisper.threads(),
        "workers": state.config.workers,
        "queue": state.config.queue,
        "running": state.running_count(),
        "in_flight": state.in_flight(),
    }));
    let code = if state.is_draining() {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    (code, body).into_response()
}

pub async fn not_found(req: Request) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!(
            "no such endpoint: {} {}; see POST /v1/audio/transcriptions, POST /v1/audio/translations, GET /v1/models, GET /health",
            req.method(),
            req.uri().path()
        ),
    )
}

pub async fn method_not_allowed(req: Request) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{} is not allowed on {}", req.method(), req.uri().path()),
    )
}
