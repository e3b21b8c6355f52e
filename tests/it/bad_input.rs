//! Bad input gets a precise status and a JSON error, and nothing is stored.

use crate::common::*;

async fn post(provider: &str, body: &[u8]) -> (u16, serde_json::Value, usize) {
    let db = Emulator::start().await;
    let (status, reply) = parts(app(&db).handle(signed_post(provider, body)).await);
    (status, reply, db.items().await.len())
}

#[tokio::test]
async fn the_published_engagelab_route_sample_is_invalid_json() {
    let sample = std::fs::read(format!(
        "{}/tests/fixtures/engagelab/route_published_sample.txt",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let (status, reply, stored) = post("engagelab", &sample).await;
    assert_eq!(
        (status, reply["error"].as_str(), stored),
        (400, Some("invalid_json"), 0)
    );
    assert_eq!(reply["code"], 400);
    assert!(
        reply["message"]
            .as_str()
            .unwrap()
            .starts_with("invalid JSON")
    );
}

/// What a body that cannot hold a signature gets: 400 `code`, or, where the
/// signature lives in the body (so such a body carries none), 401.
fn unreadable(provider: &str, code: &'static str) -> (u16, Option<&'static str>, usize) {
    match crate::common::provider(provider).scheme() {
        mailhooks::providers::AuthScheme::SignedBody { .. } => (401, Some("missing_signature"), 0),
        _ => (400, Some(code), 0),
    }
}

/// Providers whose signature travels outside the body: the body reaches the
/// parser as sent. (An SNS envelope carries its payload as a JSON string, so an
/// empty or non-UTF-8 payload cannot be signed; those are tested in the provider.)
fn unwrapped_providers() -> impl Iterator<Item = &'static str> {
    provider_names().filter(|p| provider(p).scheme().body_signature_field().is_none())
}

#[tokio::test]
async fn empty_and_whitespace_bodies() {
    for provider in unwrapped_providers() {
        for body in [&b""[..], b" \r\n"] {
            let (status, reply, stored) = post(provider, body).await;
            assert_eq!(
                (status, reply["error"].as_str(), stored),
                unreadable(provider, "empty_body"),
                "{provider}"
            );
        }
    }
}

#[tokio::test]
async fn non_utf8_bodies() {
    for provider in unwrapped_providers() {
        let (status, reply, stored) = post(provider, &[b'{', 0xff, 0xfe, b'}']).await;
        assert_eq!(
            (status, reply["error"].as_str(), stored),
            unreadable(provider, "not_utf8"),
            "{provider}"
        );
    }
}

#[tokio::test]
async fn wrong_shapes() {
    let cases: [(&str, &[u8]); 7] = [
        ("tencent", b"\"delivered\""),
        ("tencent", b"[1,2]"),
        ("engagelab", br#"{"server":"email","itime":1}"#),
        ("engagelab", b"42"),
        ("uspeedo", br#"{"MsgType":2,"Data":{"x":1},"y":[]}"#),
        ("uspeedo", br#"{"MsgType":2,"Data":"none"}"#),
        ("uspeedo", b"null"),
    ];
    for (provider, body) in cases {
        let (status, reply, stored) = post(provider, body).await;
        assert_eq!(
            status,
            400,
            "{provider} {}: {reply}",
            String::from_utf8_lossy(body)
        );
        assert_eq!(stored, 0);
    }
}

#[tokio::test]
async fn no_events() {
    for (provider, body) in [
        ("tencent", &b"[]"[..]),
        ("uspeedo", br#"{"MsgType":2,"Data":[]}"#),
        ("engagelab", b"[]"),
    ] {
        let (status, reply, stored) = post(provider, body).await;
        assert_eq!(
            (status, reply["error"].as_str(), stored),
            (400, Some("no_events"), 0),
            "{provider}"
        );
    }
}

#[tokio::test]
async fn missing_message_id_refuses_the_whole_body() {
    let cases: [(&str, &[u8]); 3] = [
        ("tencent", br#"{"event":"delivered","email":"a@x.com","timestamp":1654064683}"#),
        ("engagelab", br#"{"server":"email","itime":1676615714397,"status":{"message_status":"sent","status_data":{}}}"#),
        // One good item and one without MsgId: nothing is stored, the provider can fix and resend.
        ("uspeedo", br#"{"MsgType":2,"Data":[{"MsgId":"m1","Event":"deliver","ReceiptTime":1},{"Event":"open","ReceiptTime":2}]}"#),
    ];
    for (provider, body) in cases {
        let (status, reply, stored) = post(provider, body).await;
        assert_eq!(
            (status, reply["error"].as_str(), stored),
            (400, Some("missing_field"), 0),
            "{provider}: {reply}"
        );
    }
}

#[tokio::test]
async fn oversized_message_id_is_refused_not_retried_forever() {
    let id = "x".repeat(5000);
    let body = format!(r#"{{"event":"open","bulkId":"{id}","timestamp":1}}"#);
    let (status, reply, stored) = post("tencent", body.as_bytes()).await;
    assert_eq!(
        (status, reply["error"].as_str(), stored),
        (400, Some("field_too_long"), 0)
    );
}

#[tokio::test]
async fn bodies_over_the_limit_get_413() {
    let db = Emulator::start().await;
    let app = app_with(&db.endpoint, config(&[("MAX_BODY_BYTES", "1024")]));
    let body = format!(
        r#"{{"event":"open","bulkId":"b","timestamp":1,"pad":"{}"}}"#,
        "x".repeat(2000)
    );
    let (status, reply) = parts(app.handle(signed_post("tencent", body.as_bytes())).await);
    assert_eq!(
        (status, reply["error"].as_str()),
        (413, Some("payload_too_large"))
    );
    assert!(db.items().await.is_empty());
}

#[tokio::test]
async fn huge_valid_batch_is_accepted_in_full() {
    let items: Vec<String> = (0..2000)
        .map(|i| format!(r#"{{"MsgId":"m{i}","Event":"deliver","ReceiptTime":1234567890,"RecipientEmail":"u{i}@example.com"}}"#))
        .collect();
    let body = format!(r#"{{"MsgType":2,"Data":[{}]}}"#, items.join(","));
    // About size, not speed: a debug build writes 2,000 items to the emulator in
    // more than the default 1.5 s storage deadline.
    let db = Emulator::start().await;
    let app = app_with(&db.endpoint, config(&[("STORE_TIMEOUT_MS", "30000")]));
    let (status, reply) = parts(app.handle(signed_post("uspeedo", body.as_bytes())).await);
    let stored = db.items().await.len();
    assert_eq!(
        (status, reply["stored"].as_u64(), stored),
        (200, Some(2000), 2000)
    );
}

#[tokio::test]
async fn deeply_nested_json_is_refused_without_crashing() {
    let body = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let (status, reply, stored) = post("tencent", body.as_bytes()).await;
    assert_eq!(
        (status, reply["error"].as_str(), stored),
        (400, Some("invalid_json"), 0)
    );
}
