//! No secret, token or payload ever reaches the logs, even at `RUST_LOG=trace`,
//! and a request value echoed in a log line is bounded. (The same through the
//! Lambda runtime, with its dependencies' logs: `tests/it/runtime_logs.rs`.)
//! Its own test binary: a thread-scoped log subscriber is only reliable when no
//! other test in the process registers the same log call sites first.

#[path = "it/common/mod.rs"]
mod common;

use common::*;
use mailhooks::providers::engagelab::hmac_signature;

/// A provider's first fixture that parses.
fn body(provider: &str) -> Vec<u8> {
    fixtures(provider)
        .into_iter()
        .map(|(_, body)| body)
        .find(|body| common::provider(provider).parse(body).is_ok())
        .unwrap()
}

/// Collects everything the handler logs while `f` runs.
async fn captured_logs<F: std::future::Future<Output = ()>>(f: F) -> String {
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
    // The function's own subscriber, at its most verbose: RUST_LOG=trace.
    let subscriber = mailhooks::telemetry::subscriber("trace", move || writer.clone());
    let guard = tracing::subscriber::set_default(subscriber);
    f.await;
    drop(guard);
    String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap()
}

#[tokio::test]
async fn no_secret_token_or_payload_ever_reaches_the_logs() {
    let db = Emulator::start().await;
    let app = app(&db);
    let logs = captured_logs(async {
        for provider in provider_names() {
            for secret in [secrets(provider)[0].as_str(), "guessed-wrong-secret"] {
                let signed = signed(provider, secret, &body(provider));
                let event = apigw_event(
                    "POST",
                    &format!("/webhooks/{provider}"),
                    &signed.query,
                    &signed.headers,
                    &signed.body,
                );
                app.handle(to_request(&event)).await;
            }
        }
        let broken = b"{\"event\": \"bounce\", \"email\": \"leaky@example.com\", \"bulkId\": ";
        app.handle(signed_post("tencent", broken)).await;
        let unreachable = app_with("http://127.0.0.1:9", config(&[("STORE_TIMEOUT_MS", "300")]));
        unreachable
            .handle(signed_post("uspeedo", &fixture("uspeedo", "batch")))
            .await;
    })
    .await;
    assert!(
        logs.matches("\"request\"").count() >= 8,
        "the capture works: {logs}"
    );
    for provider in provider_names() {
        for secret in secrets(provider) {
            assert!(!logs.contains(&secret), "secret of {provider} in the logs");
        }
    }
    for leak in [
        "guessed-wrong-secret",
        "leaky@example.com",
        "example@example.com",
        "12345@gmail.com",
        "user@example.com",
        "551 5.1.1",
        "X-Tencentcloudses",
        "a1b2c3d4e5f6",
    ] {
        assert!(!logs.contains(leak), "{leak:?} in the logs:\n{logs}");
    }
    let signature = hmac_signature(&secrets("engagelab")[0], &NOW_SECS.to_string());
    assert!(!logs.contains(&signature), "a signature in the logs");
}

#[tokio::test]
async fn request_values_echoed_in_a_log_line_are_bounded() {
    let db = Emulator::start().await;
    let app = app(&db);
    // An `event` name that disagrees with `eventid` is echoed in a warning.
    let long_name = "x".repeat(200_000);
    let body = String::from_utf8(fixture("tencent", "delivered"))
        .unwrap()
        .replace("\"delivered\"", &format!("\"{long_name}\""));
    let logs = captured_logs(async {
        app.handle(signed_post("tencent", body.as_bytes())).await;
    })
    .await;
    let warning = logs
        .lines()
        .find(|line| line.contains("event and eventid disagree"))
        .unwrap_or_else(|| panic!("the warning is logged: {logs}"));
    let shown = format!("{}…", "x".repeat(mailhooks::log_value::MAX_CHARS));
    assert!(warning.contains(&format!("\"{shown}\"")), "{warning}");
    for line in logs.lines() {
        assert!(line.len() < 1024, "a {} byte log line", line.len());
    }
}
