//! `xdna-whisper serve`: the OpenAI-compatible server on one loaded model.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use whisper_server::{Server, ServerConfig};

use crate::ModelArgs;

#[derive(clap::Args, Clone, Debug)]
pub struct ServeArgs {
    /// Address to listen on (use 0.0.0.0 to accept other machines).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port (0 = any free port; the address is printed on stdout).
    #[arg(long, default_value_t = 8000)]
    pub port: u16,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Transcriptions that run at once (they share the model and its threads).
    #[arg(long, default_value_t = 2,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1024))]
    pub workers: usize,
    /// Requests that may wait for a worker; past workers + queue, requests get 429 at once.
    #[arg(long, default_value_t = 8,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(0..=1_000_000))]
    pub queue: usize,
    /// Largest upload in MiB (413 above it; 1 to 4096).
    #[arg(long, default_value_t = 25,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=4096))]
    pub max_upload_mb: usize,
    /// Longest audio in seconds (413 above it).
    #[arg(long, default_value_t = 1800.0, value_parser = positive_seconds)]
    pub max_audio_seconds: f64,
    /// Longest a request may take, upload included, in seconds.
    #[arg(long, default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..=MAX_SECONDS))]
    pub request_timeout: u64,
    /// On Ctrl-C or SIGTERM, seconds running requests get to finish before they are cancelled.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(0..=MAX_SECONDS))]
    pub shutdown_timeout: u64,
}

/// The longest time limit the server's flags accept (a day): `Duration` arithmetic on deadlines
/// must not overflow, and a longer limit is surely a typo.
const MAX_SECONDS: u64 = 24 * 3600;

/// `--max-audio-seconds`: a finite number of seconds above 0, at most a day.
fn positive_seconds(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if !(v.is_finite() && v > 0.0 && v <= MAX_SECONDS as f64) {
        return Err(format!("{s} is not in (0, {MAX_SECONDS}] seconds"));
    }
    Ok(v)
}

impl ServeArgs {
    pub fn config(&self) -> ServerConfig {
        ServerConfig {
            model_id: self.model.model_id(),
            workers: self.workers,
            queue: self.queue,
            max_upload_bytes: self.max_upload_mb * 1024 * 1024,
            max_audio_seconds: self.max_audio_seconds,
            request_timeout: Duration::from_secs(self.request_timeout),
            shutdown_timeout: Duration::from_secs(self.shutdown_timeout),
            defaults: self.model.transcribe_options(),
        }
    }
}

pub fn run(args: &ServeArgs) -> anyhow::Result<()> {
    let (whisper, _) = args.model.load(false)?;
    let server = Server::new(Arc::new(whisper), args.config());
    // A few async threads for I/O; the transcriptions run on the model's own pool.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind((args.host.as_str(), args.port))
            .await
            .with_context(|| format!("listening on {}:{}", args.host, args.port))?;
        let addr: SocketAddr = listener.local_addr()?;
        // On stdout, so that scripts (and `cargo xtask bench-server`) can read the port.
        println!("listening on http://{addr}");
        tracing::info!(
            "serving model {} on http://{addr} ({} workers, queue {})",
            args.model.model_id(),
            args.workers.max(1),
            args.queue
        );
        server.serve(listener, shutdown_signal()).await?;
        tracing::info!("stopped");
        Ok(())
    })
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
