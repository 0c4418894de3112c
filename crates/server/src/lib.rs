//! An OpenAI-compatible speech-to-text server over one loaded [`whisper_model::Whisper`]:
//! `POST /v1/audio/transcriptions` and `/v1/audio/translations` (multipart; json, text, srt,
//! vtt, verbose_json, or server-sent events with `stream=true`), `GET /v1/models`,
//! `GET /health`. Concurrent requests share the model; work is bounded (429 past the queue),
//! uploads, audio length and request time are limited, a client that disconnects cancels its
//! transcription, and shutdown lets running work finish (or cancels it after a grace period).

pub mod config;
mod error;
pub mod form;
mod formats;
mod request;
mod routes;
mod sse;
mod state;

use std::future::Future;
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;
use whisper_model::Whisper;

pub use config::ServerConfig;
pub use error::ApiError;
use state::AppState;

/// The server: a model and its limits.
pub struct Server {
    state: Arc<AppState>,
}

impl Server {
    pub fn new(whisper: Arc<Whisper>, config: ServerConfig) -> Server {
        Server {
            state: Arc::new(AppState::new(whisper, config)),
        }
    }

    /// Cancelling this token cancels every transcription running or waiting (they answer 503);
    /// the server keeps serving. The shutdown of [`Server::serve`] cancels it after the grace
    /// period.
    pub fn cancel_token(&self) -> whisper_model::CancelToken {
        self.state.shutdown.clone()
    }

    /// The routes, for embedding into another axum application.
    pub fn router(&self) -> Router {
        let body_limit = self.state.config.max_upload_bytes + routes::FORM_OVERHEAD;
        Router::new()
            .route("/v1/audio/transcriptions", post(routes::transcriptions))
            .route("/v1/audio/translations", post(routes::translations))
            .route("/v1/models", get(routes::models))
            .route("/v1/models/{id}", get(routes::model))
            .route("/health", get(routes::health))
            .fallback(routes::not_found)
            .method_not_allowed_fallback(routes::method_not_allowed)
            .layer(DefaultBodyLimit::max(body_limit))
            .layer(CatchPanicLayer::custom(panic_response))
            .with_state(self.state.clone())
    }

    /// Serves on `listener` until `shutdown` completes; then stops accepting connections, lets
    /// running requests finish for the configured grace period, cancels what is still running,
    /// and returns once every connection is closed (or a few seconds after the cancellation, if
    /// a client does not read its response).
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let state = self.state.clone();
        let grace = state.config.shutdown_timeout;
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let signal = async move {
            shutdown.await;
            tracing::info!(
                "shutting down: {} requests in flight get {} s to finish",
                state.in_flight(),
                grace.as_secs()
            );
            state.begin_drain();
            let token = state.shutdown.clone();
            tokio::spawn(async move {
                tokio::time::sleep(grace).await;
                token.cancel();
                // Cancelled work ends within a decoding step; give stalled clients a moment.
                tokio::time::sleep(std::time::Duration::from_secs(5)).await;
                let _ = stop_tx.send(());
            });
        };
        let serve = axum::serve(listener, self.router()).with_graceful_shutdown(signal);
        tokio::select! {
            r = serve => r,
            _ = stop_rx => {
                tracing::warn!("connections still open after the grace period: closing them");
                Ok(())
            }
        }
    }
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a request handler panicked");
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal error (a bug): the request failed",
    )
    .into_response()
}
