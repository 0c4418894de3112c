//! Logs go to stderr; `RUST_LOG` overrides the default filter.

/// Warnings of this project's crates, and the model fetcher's progress ("downloading ...").
pub const DEFAULT_FILTER: &str = "off,xdna_whisper=info,xtask=warn,whisper_model=warn,whisper_fetch=info,whisper_server=info,npu_runtime=warn,kernel_build=warn,kernel_spec=warn";

pub fn init() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .without_time()
        .with_target(false)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                // Our crates only: third-party decoders log recoverable oddities.
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_FILTER)),
        )
        .init();
}
