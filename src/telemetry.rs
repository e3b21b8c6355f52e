//! Logging: one JSON object per line on stderr, filter from `RUST_LOG` (else the
//! caller's default). The AWS SDK and HTTP crates are capped at `debug` whatever
//! the filter says: at `trace` they print request bodies, i.e. event payloads.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::LevelFilter;

/// Crates whose `trace` output contains request or response bodies (dynoxide:
/// the embedded store of the local run command and the tests).
const BODY_TRACING_CRATES: [&str; 11] = [
    "dynoxide",
    "aws_smithy_runtime",
    "aws_smithy_runtime_api",
    "aws_smithy_http_client",
    "aws_smithy_http",
    "aws_sdk_dynamodb",
    "aws_sdk_secretsmanager",
    "aws_config",
    "hyper",
    "hyper_util",
    "rustls",
];

/// The log filter for `spec` (a `RUST_LOG`-style directive list), with the
/// body-tracing crates capped at `debug`. An unparsable spec falls back to `info`.
pub fn filter(spec: &str) -> EnvFilter {
    let mut filter = EnvFilter::try_new(spec).unwrap_or_else(|_| EnvFilter::new("info"));
    // A directive sets a crate's level, so add the caps only where they lower it:
    // when something in the spec lets `trace` through.
    if filter
        .max_level_hint()
        .is_some_and(|max| max < LevelFilter::TRACE)
    {
        return filter;
    }
    for krate in BODY_TRACING_CRATES {
        if let Ok(directive) = format!("{krate}=debug").parse() {
            filter = filter.add_directive(directive);
        }
    }
    filter
}

/// Installs the JSON log subscriber with `RUST_LOG`, else `default_filter`.
/// Call once, first thing in `main`.
pub fn init(default_filter: &str) {
    let spec = std::env::var("RUST_LOG").unwrap_or_else(|_| default_filter.to_owned());
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter(&spec))
        .with_current_span(false)
        .with_target(false)
        .without_time()
        .with_writer(std::io::stderr)
        .init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_only_lower_the_level() {
        assert_eq!(
            filter("warn").max_level_hint(),
            Some(LevelFilter::WARN),
            "warn stays warn"
        );
        assert_eq!(filter("info").max_level_hint(), Some(LevelFilter::INFO));
        assert!(
            filter("trace")
                .to_string()
                .contains("aws_smithy_runtime=debug"),
            "trace gets the caps"
        );
        assert!(
            filter("info,hyper=trace")
                .to_string()
                .contains("hyper=debug")
        );
    }
}
