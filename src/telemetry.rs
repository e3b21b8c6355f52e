//! Logging: one JSON object per line on stderr, filter from `RUST_LOG` (else the caller's default).

use tracing_subscriber::EnvFilter;

/// Installs the JSON log subscriber with `default_filter` unless `RUST_LOG` is
/// set. Call once, first thing in `main`.
pub fn init(default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(false)
        .with_target(false)
        .without_time()
        .with_writer(std::io::stderr)
        .init();
}
