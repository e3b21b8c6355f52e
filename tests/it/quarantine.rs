//! An authenticated body that does not normalize is never refused for its
//! content: it is kept raw in quarantine (answered 200 with `quarantined`), one
//! record per distinct body, with the error class the 400 used to carry. What
//! cannot be authenticated, or is too large, keeps its answer and stores nothing.

use mailhooks::store::quarantine::{StoredBody, StoredRecord};

use crate::common::*;

/// Posts a signed body to a fresh store: the answer, the event items, the
/// quarantine records.
async fn post(provider: &str, body: &[u8]) -> (u16, serde_json::Value, usize, Vec<StoredRecord>) {
    let db = Emulator::start().await;
    let (status, reply) = parts(app(&db).handle(signed_post(provider, body)).await);
    (
        status,
        reply,
        db.items().await.len(),
        db.quarantined().await,
    )
}

/// Checks that `body` was quarantined whole under `code` and nothing stored.
async fn assert_quarantined(provider: &str, body: &[u8], code: &str) {
    let sent = signed(provider, &secrets(provider)[0], body).body;
    let (status, reply, stored, records) = post(provider, body).await;
    let context = format!("{provider} {}: {reply}", String::from_utf8_lossy(body));
    assert_eq!(
        (
            status,
            reply["quarantined"].as_u64(),
            reply["stored"].as_u64(),
            stored
        ),
        (200, Some(1), Some(0), 0),
        "{context}"
    );
    assert_eq!(records.len(), 1, "{context}");
    let record = &records[0];
    assert_eq!(
        (record.provider.as_str(), record.error_code.as_str()),
        (provider, code),
        "{context}"
    );
    assert_eq!(record.body, StoredBody::Inline(sent), "{context}");
    assert_eq!(record.resolved_at, None);
}

#[tokio::test]
async fn the_published_engagelab_route_sample_is_quarantined_as_invalid_json() {
    let sample = std::fs::read(format!(
        "{}/tests/fixtures/engagelab/route_published_sample.txt",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    assert_quarantined("engagelab", &sample, "invalid_json").await;
    let (_, _, _, records) = post("engagelab", &sample).await;
    assert!(
        records[0].error.starts_with("invalid JSON"),
        "{}",
        records[0].error
    );
}

/// Providers whose signature travels outside the body: the body reaches the
/// parser as sent. (An SNS envelope carries its payload as a JSON string, so an
/// empty or non-UTF-8 payload cannot be signed; those are tested in the provider.)
fn unwrapped_providers() -> impl Iterator<Item = &'static str> {
    provider_names().filter(|p| provider(p).scheme().body_signature_field().is_none())
}

/// Where the signature lives in the body, a body that cannot hold one is not
/// authenticated: 401, nothing kept.
fn signs_inside_the_body(provider: &str) -> bool {
    matches!(
        crate::common::provider(provider).scheme(),
        mailhooks::providers::AuthScheme::SignedBody { .. }
    )
}

#[tokio::test]
async fn empty_and_whitespace_bodies() {
    for provider in unwrapped_providers() {
        for body in [&b""[..], b" \r\n"] {
            if signs_inside_the_body(provider) {
                let (status, reply, stored, records) = post(provider, body).await;
                assert_eq!(
                    (status, reply["error"].as_str(), stored, records.len()),
                    (401, Some("missing_signature"), 0, 0),
                    "{provider}"
                );
            } else {
                assert_quarantined(provider, body, "empty_body").await;
            }
        }
    }
}

#[tokio::test]
async fn non_utf8_bodies() {
    for provider in unwrapped_providers() {
        let body = [b'{', 0xff, 0xfe, b'}'];
        if signs_inside_the_body(provider) {
            let (status, _, _, records) = post(provider, &body).await;
            assert_eq!((status, records.len()), (401, 0), "{provider}");
        } else {
            assert_quarantined(provider, &body, "not_utf8").await;
        }
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
        let (status, reply, stored, records) = post(provider, body).await;
        assert_eq!(
            (status, reply["quarantined"].as_u64(), stored, records.len()),
            (200, Some(1), 0, 1),
            "{provider} {}: {reply}",
            String::from_utf8_lossy(body)
        );
    }
}

#[tokio::test]
async fn no_events() {
    for (provider, body) in [
        ("tencent", &b"[]"[..]),
        ("uspeedo", br#"{"MsgType":2,"Data":[]}"#),
        ("engagelab", b"[]"),
    ] {
        assert_quarantined(provider, body, "no_events").await;
    }
}

#[tokio::test]
async fn missing_message_id_is_quarantined() {
    let cases: [(&str, &[u8]); 2] = [
        ("tencent", br#"{"event":"delivered","email":"a@x.com","timestamp":1654064683}"#),
        ("engagelab", br#"{"server":"email","itime":1676615714397,"status":{"message_status":"sent","status_data":{}}}"#),
    ];
    for (provider, body) in cases {
        assert_quarantined(provider, body, "missing_field").await;
    }
}

#[tokio::test]
async fn an_oversized_message_id_is_quarantined_not_retried_forever() {
    let id = "x".repeat(5000);
    let body = format!(r#"{{"event":"open","bulkId":"{id}","timestamp":1}}"#);
    let (status, reply, stored, records) = post("tencent", body.as_bytes()).await;
    assert_eq!(
        (status, reply["quarantined"].as_u64(), stored, records.len()),
        (200, Some(1), 0, 1)
    );
    assert_eq!(records[0].error_code, "field_too_long");
    // The event's own raw payload, which the parser reads back on replay.
    let StoredBody::Inline(kept) = &records[0].body else {
        panic!("{:?}", records[0].body);
    };
    assert!(provider("tencent").parse(kept).is_ok());
}

#[tokio::test]
async fn the_same_bad_body_retried_is_one_record_with_its_first_receipt() {
    let db = Emulator::start().await;
    let body = b"{not json";
    let early = app_at(&db, 1_700_000_000_000);
    let late = app_at(&db, 1_700_000_060_000);
    for app in [&early, &late, &early] {
        let (status, reply) = parts(app.handle(signed_post("postmark", body)).await);
        assert_eq!((status, reply["quarantined"].as_u64()), (200, Some(1)));
    }
    let records = db.quarantined().await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].received_at, "2023-11-14T22:13:20.000Z");
}

#[tokio::test]
async fn a_storage_failure_while_quarantining_is_a_5xx_to_retry() {
    // A port nothing listens on.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let app = app_with(&endpoint, config(&[("STORE_TIMEOUT_MS", "1000")]));
    let (status, _) = parts(app.handle(signed_post("postmark", b"{not json")).await);
    assert_eq!(status, 503);
}

#[tokio::test]
async fn unauthenticated_bad_bodies_are_refused_and_kept_nowhere() {
    let db = Emulator::start().await;
    for provider in provider_names() {
        let request = signed_post_with(provider, "not-the-secret", b"{not json");
        let (status, _) = parts(app(&db).handle(request).await);
        assert_eq!(status, 401, "{provider}");
    }
    assert!(db.all_items().await.is_empty());
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
    assert!(db.all_items().await.is_empty());
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
async fn deeply_nested_json_is_quarantined_without_crashing() {
    let body = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert_quarantined("tencent", body.as_bytes(), "invalid_json").await;
}
