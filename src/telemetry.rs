//! Logging: one JSON object per line on stderr (plain text when a person reads a
//! terminal), filter from `RUST_LOG` (else the caller's default), under a cap on
//! every crate but ours.
//!
//! At `trace`, dependencies print what passes through them: `lambda_runtime` the
//! raw invocation (query token, `Authorization`, signature headers, body),
//! `aws_sigv4` the canonical request, the SDK and HTTP crates request bodies, i.e.
//! event payloads. So only our own code may emit `trace`, whatever `RUST_LOG`
//! says; every other crate is capped at `debug`. The cap is decided by the
//! event's target, not by a list of known crates: a new dependency is capped too.
//! None of the dependencies in the build logs bodies or headers at `debug` (their
//! `debug` lines were reviewed; `tests/it/runtime_logs.rs` runs the Lambda binary at
//! `RUST_LOG=trace` and fails if one starts to), so `debug` stays available for
//! diagnosing retries and connections.

use tracing::{Metadata, Subscriber};
use tracing_subscriber::filter::combinator::And;
use tracing_subscriber::filter::{FilterExt, FilterFn, LevelFilter};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

/// The crates of this package: the library and its binaries' crate names, the
/// first segment of the targets of their log events.
const OWN_CRATES: [&str; 5] = [
    "mailhooks",
    "bootstrap",
    "local",
    "send_test_event",
    "mailhooks_cli",
];

/// The most verbose level a log event or span with `target` may have.
fn level_cap(target: &str) -> LevelFilter {
    let krate = target.split("::").next().unwrap_or(target);
    if OWN_CRATES.contains(&krate) {
        LevelFilter::TRACE
    } else {
        LevelFilter::DEBUG
    }
}

/// Whether the cap lets `metadata` through: a pure function of the call site,
/// so the decision is cached once per call site.
fn under_cap(metadata: &Metadata<'_>) -> bool {
    *metadata.level() <= level_cap(metadata.target())
}

/// The cap as a plain function pointer: a nameable filter type.
type Cap = fn(&Metadata<'_>) -> bool;

/// The filter [`filter`] builds: the `RUST_LOG` spec and the cap on other crates.
pub type LogFilter<S> = And<EnvFilter, FilterFn<Cap>, S>;

/// The log filter: `spec` (a `RUST_LOG`-style directive list; unparsable falls
/// back to `info`) and the cap on other crates. The cap only ever lowers a level:
/// `warn` stays `warn`.
pub fn filter<S: Subscriber>(spec: &str) -> LogFilter<S> {
    let spec = EnvFilter::try_new(spec).unwrap_or_else(|_| EnvFilter::new("info"));
    let cap: FilterFn<Cap> =
        FilterFn::new(under_cap as Cap).with_max_level_hint(LevelFilter::TRACE);
    spec.and(cap)
}

/// The function's log subscriber with filter `spec`, writing JSON lines to `writer`.
pub fn subscriber<W>(spec: &str, writer: W) -> impl Subscriber + Send + Sync + 'static
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let format = tracing_subscriber::fmt::layer()
        .json()
        .with_current_span(false)
        .with_target(false)
        .without_time()
        .with_writer(writer);
    Registry::default().with(format.with_filter(filter(spec)))
}

/// A subscriber for a person at a terminal: one short plain-text line per
/// event, same filter and cap as [`subscriber`].
pub fn human_subscriber<W>(spec: &str, writer: W) -> impl Subscriber + Send + Sync + 'static
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let format = tracing_subscriber::fmt::layer()
        .compact()
        .with_target(false)
        .without_time()
        .with_writer(writer);
    Registry::default().with(format.with_filter(filter(spec)))
}

/// Whether logs go to a person: stderr is a terminal and this is not a Lambda.
pub fn is_interactive() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_none()
}

/// Installs the log subscriber on stderr with `RUST_LOG`, else `default_filter`:
/// JSON lines (for CloudWatch and log tools), or plain text when a person reads
/// a terminal. Call once, first thing in `main`.
pub fn init(default_filter: &str) {
    let spec = std::env::var("RUST_LOG").unwrap_or_else(|_| default_filter.to_owned());
    // Fails only when a subscriber is already installed: that one stays.
    let _ = if is_interactive() {
        tracing::subscriber::set_global_default(human_subscriber(&spec, std::io::stderr))
    } else {
        tracing::subscriber::set_global_default(subscriber(&spec, std::io::stderr))
    };
}

/// What the function's subscriber writes, with filter `spec`, while `emit` runs:
/// for the unit tests of what the code logs.
#[cfg(test)]
pub(crate) fn captured(spec: &str, emit: impl FnOnce()) -> String {
    use std::sync::{Arc, Mutex};
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buffer {
        fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(data);
            Ok(data.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buffer = Buffer::default();
    let writer = buffer.clone();
    tracing::subscriber::with_default(subscriber(spec, move || writer.clone()), emit);
    String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::Filter;

    /// The most verbose level `filter(spec)` can let through.
    fn max_level(spec: &str) -> Option<LevelFilter> {
        Filter::<Registry>::max_level_hint(&filter::<Registry>(spec))
    }

    #[test]
    fn caps_only_lower_the_level() {
        assert_eq!(
            max_level("warn"),
            Some(LevelFilter::WARN),
            "warn stays warn"
        );
        assert_eq!(max_level("info"), Some(LevelFilter::INFO));
        assert_eq!(
            max_level("trace"),
            Some(LevelFilter::TRACE),
            "ours may trace"
        );
        assert_eq!(max_level("not a [ filter"), Some(LevelFilter::INFO));
    }

    #[test]
    fn only_our_crates_may_trace() {
        for ours in [
            "mailhooks",
            "mailhooks::app",
            "bootstrap",
            "local",
            "mailhooks_cli",
            "send_test_event",
        ] {
            assert_eq!(level_cap(ours), LevelFilter::TRACE, "{ours}");
        }
        for theirs in [
            "lambda_runtime::layers::api_response",
            "lambda_http",
            "aws_sigv4::http_request::sign",
            "aws_smithy_runtime::client::orchestrator",
            "hyper::proto::h1::io",
            "dynoxide",
            "some_future_dependency",
            // A prefix of ours is not ours.
            "mailhooks_evil",
            "localhost",
        ] {
            assert_eq!(level_cap(theirs), LevelFilter::DEBUG, "{theirs}");
        }
    }

    #[test]
    fn trace_from_a_dependency_is_dropped_whatever_the_spec() {
        for spec in [
            "trace",
            "lambda_runtime=trace",
            "info,lambda_runtime=trace,aws_sigv4=trace",
        ] {
            let logs = captured(spec, || {
                tracing::trace!(target: "lambda_runtime::layers::api_response", "dependency-trace");
                tracing::trace!(target: "aws_sigv4::http_request::sign", "sigv4-trace");
                tracing::debug!(target: "lambda_runtime::runtime", "dependency-debug");
                tracing::trace!(target: "mailhooks::app", "own-trace");
            });
            assert!(!logs.contains("dependency-trace"), "{spec}: {logs}");
            assert!(!logs.contains("sigv4-trace"), "{spec}: {logs}");
            assert!(logs.contains("dependency-debug"), "{spec}: {logs}");
            let own_traces = spec == "trace";
            assert_eq!(logs.contains("own-trace"), own_traces, "{spec}: {logs}");
        }
        let logs = captured("warn", || {
            tracing::info!(target: "mailhooks::app", "own-info");
            tracing::warn!(target: "hyper", "dependency-warn");
        });
        assert!(!logs.contains("own-info") && logs.contains("dependency-warn"));
    }
}
