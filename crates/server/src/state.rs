//! What the handlers share: the model, the limits, and the two bounds on work: requests in the
//! server (`workers + queue`, 429 past it) and transcriptions running at once (`workers`).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use axum::http::StatusCode;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use whisper_model::{CancelToken, Whisper};

use crate::config::ServerConfig;
use crate::error::ApiError;

pub struct AppState {
    pub whisper: Arc<Whisper>,
    pub config: ServerConfig,
    /// Requests in the server, from admission to their last byte.
    admission: Arc<Semaphore>,
    workers: Arc<Semaphore>,
    running: AtomicUsize,
    /// Cancelled when the shutdown grace period ends: every request's token is its child.
    pub shutdown: CancelToken,
    draining: AtomicBool,
}

/// Permits a transcription holds until its worker thread is done with it, even if the client
/// that asked for it has gone.
pub struct Permits {
    _admission: OwnedSemaphorePermit,
    _worker: OwnedSemaphorePermit,
}

impl AppState {
    pub fn new(whisper: Arc<Whisper>, mut config: ServerConfig) -> AppState {
        config.workers = config.workers.max(1);
        AppState {
            whisper,
            admission: Arc::new(Semaphore::new(config.workers + config.queue)),
            workers: Arc::new(Semaphore::new(config.workers)),
            config,
            running: AtomicUsize::new(0),
            shutdown: CancelToken::new(),
            draining: AtomicBool::new(false),
        }
    }

    /// A place in the server, or 503 while shutting down and 429 when `workers + queue`
    /// requests are already in.
    pub fn admit(&self) -> Result<OwnedSemaphorePermit, ApiError> {
        if self.is_draining() {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the server is shutting down; retry on another instance or later",
            )
            .code("shutting_down"));
        }
        self.admission.clone().try_acquire_owned().map_err(|_| {
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "the server is busy: {} transcriptions running and {} waiting, its limit; retry later",
                    self.config.workers, self.config.queue
                ),
            )
            .code("rate_limit_exceeded")
        })
    }

    /// Waits for a free worker.
    pub async fn worker(&self, admission: OwnedSemaphorePermit) -> Permits {
        let worker = self
            .workers
            .clone()
            .acquire_owned()
            .await
            .expect("the worker semaphore is never closed");
        Permits {
            _admission: admission,
            _worker: worker,
        }
    }

    /// Counts a transcription as running until the returned guard is dropped.
    pub fn running(self: &Arc<Self>) -> RunningGuard {
        self.running.fetch_add(1, Ordering::SeqCst);
        RunningGuard(self.clone())
    }

    pub fn running_count(&self) -> usize {
        self.running.load(Ordering::SeqCst)
    }

    /// Requests admitted and not finished (uploading, decoding, waiting or running).
    pub fn in_flight(&self) -> usize {
        self.config.workers + self.config.queue - self.admission.available_permits()
    }

    pub fn begin_drain(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }
}

pub struct RunningGuard(Arc<AppState>);

impl Drop for RunningGuard {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Cancels a request's transcription when the request goes away: the client disconnected (its
/// handler future or response stream is dropped), or the request timed out.
pub struct CancelOnDrop(pub CancelToken);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}
