//! EngageLab's own signature rules, beyond the shared security battery
//! (tests/security.rs): both documented algorithms, timestamp units, malformed
//! and mismatched timestamps, and the `itime` variant's window.

use crate::common::*;
use mailhooks::providers::engagelab::{hmac_signature, md5_signature};
use serde_json::Value;

async fn send(
    app: &mailhooks::App<mailhooks::store::DynamoStore>,
    provider: &str,
    query: &str,
    headers: &[(String, String)],
) -> (u16, Value) {
    post(
        app,
        provider,
        query,
        headers,
        &fixture("engagelab", "delivered"),
    )
    .await
}

fn engagelab_headers(ts: &str, signature: String) -> Vec<(String, String)> {
    vec![
        ("X-WebHook-Timestamp".into(), ts.into()),
        ("X-WebHook-AppKey".into(), "email".into()),
        ("X-WebHook-Signature".into(), signature),
    ]
}

#[tokio::test]
async fn engagelab_accepts_both_documented_signatures_in_seconds_or_milliseconds() {
    let db = Emulator::start().await;
    let app = app(&db);
    let key = &secrets("engagelab")[1];
    let ts = NOW_SECS.to_string();
    let ts_ms = (NOW_MS - 1234).to_string();
    for headers in [
        engagelab_headers(&ts, hmac_signature(key, &ts)),
        engagelab_headers(&ts, md5_signature(&ts, "email", key)),
        engagelab_headers(&ts_ms, hmac_signature(key, &ts_ms)),
        engagelab_headers(&ts_ms, md5_signature(&ts_ms, "email", key).to_uppercase()),
    ] {
        let (status, reply) = send(&app, "engagelab", "", &headers).await;
        assert_eq!(status, 200, "{headers:?}: {reply}");
    }
}

#[tokio::test]
async fn engagelab_refuses_stale_future_malformed_and_mismatched_timestamps() {
    let db = Emulator::start().await;
    let app = app(&db);
    let key = &secrets("engagelab")[0];
    for (offset, label) in [(-301, "stale"), (301, "future")] {
        let ts = (NOW_SECS + offset).to_string();
        let (status, reply) = send(
            &app,
            "engagelab",
            "",
            &engagelab_headers(&ts, hmac_signature(key, &ts)),
        )
        .await;
        assert_eq!(
            (status, reply["error"].as_str()),
            (401, Some("stale_timestamp")),
            "{label}"
        );
    }
    let (status, reply) = send(
        &app,
        "engagelab",
        "",
        &engagelab_headers("yesterday", hmac_signature(key, "yesterday")),
    )
    .await;
    assert_eq!(
        (status, reply["error"].as_str()),
        (401, Some("malformed_timestamp"))
    );
    // A signature made for another (fresh) timestamp.
    let ts = NOW_SECS.to_string();
    let other = (NOW_SECS - 10).to_string();
    let (status, reply) = send(
        &app,
        "engagelab",
        "",
        &engagelab_headers(&ts, hmac_signature(key, &other)),
    )
    .await;
    assert_eq!(
        (status, reply["error"].as_str()),
        (401, Some("bad_signature"))
    );
    assert!(db.items().await.is_empty());
}

/// The `itime` variant signs the body's `itime`, not the header: a signature captured
/// days ago, sent with a fresh (unsigned) header and a forged complaint whose `itime`
/// is the old signed value, must be refused and store nothing.
#[tokio::test]
async fn an_old_itime_signature_with_a_fresh_header_and_forged_body_is_refused() {
    let db = Emulator::start().await;
    let key = &secrets("engagelab")[0];
    let fresh = NOW_SECS.to_string();
    for signed in [
        (NOW_SECS - 10 * 86_400).to_string(),
        ((NOW_SECS - 10 * 86_400) * 1000).to_string(),
        (NOW_SECS - 400).to_string(),
        ((NOW_SECS + 400) * 1000).to_string(),
    ] {
        let forged = format!(
            r#"{{"message_id":"m0$victim@example.com","itime":{signed},"response":{{"event":"report_spam","response_data":{{"email_id":"m0$victim@example.com"}}}}}}"#
        );
        let event = apigw_event(
            "POST",
            "/webhooks/engagelab",
            "",
            &engagelab_headers(&fresh, hmac_signature(key, &signed)),
            forged.as_bytes(),
        );
        let (status, reply) = parts(app(&db).handle(to_request(&event)).await);
        assert_eq!(
            (status, reply["error"].as_str()),
            (401, Some("stale_timestamp")),
            "signed {signed}"
        );
    }
    assert!(db.items().await.is_empty(), "nothing forged was stored");
    // The same variant with a fresh signed itime is accepted.
    let signed = (NOW_MS - 1_000).to_string();
    let body = format!(
        r#"{{"message_id":"m0$a@example.com","itime":{signed},"response":{{"event":"open","response_data":{{"email_id":"m0$a@example.com"}}}}}}"#
    );
    let event = apigw_event(
        "POST",
        "/webhooks/engagelab",
        "",
        &engagelab_headers(&fresh, hmac_signature(key, &signed)),
        body.as_bytes(),
    );
    let (status, _) = parts(app(&db).handle(to_request(&event)).await);
    assert_eq!(status, 200);
}
