//! Large batches of the ESPs that send many events per POST (Brevo's `batched`
//! webhooks, SparkPost's msys arrays, Mailjet's grouped events): each is stored
//! exactly once through the store's batch path, within the request deadline, and a
//! retry of the same body stores nothing new. Also the bodies that are not events
//! (SparkPost's creation ping) and ids no float can hold (Mailjet's MessageID).

use crate::common::*;
use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{Value, json};

/// `count` distinct Brevo events, as one `batched: true` body (Brevo's maximum is 500).
fn brevo_batch(count: usize) -> Vec<u8> {
    let names = [
        "request",
        "delivered",
        "unique_opened",
        "click",
        "proxy_open",
    ];
    let events: Vec<Value> = (0..count)
        .map(|i| {
            json!({
                "event": names[i % names.len()],
                "email": format!("reader{}@example.org", i / names.len()),
                "id": 4242,
                "message-id": format!("<20260309.{}@smtp-relay.mailin.fr>", i / names.len()),
                "date": "2026-03-09 15:02:17",
                "ts_epoch": 1_773_064_937_512_i64 + i as i64,
                "link": "https://example.com/spring",
            })
        })
        .collect();
    serde_json::to_vec(&events).unwrap()
}

/// `count` distinct SparkPost events in one batch, a ping among them.
fn sparkpost_batch(count: usize) -> Vec<u8> {
    let mut elements = vec![json!({"msys": {}})];
    elements.extend((0..count).map(|i| {
        json!({"msys": {"message_event": {
            "type": if i % 2 == 0 { "delivery" } else { "bounce" },
            "bounce_class": "10",
            "event_id": format!("{}", 92_356_927_693_813_856_u64 + i as u64),
            "rcpt_to": format!("reader{i}@example.org"),
            "timestamp": format!("{}", 1_773_064_937 + i),
            "transmission_id": format!("{}", 65_832_150_921_904_138_u64 + (i / 10) as u64),
        }}})
    }));
    serde_json::to_vec(&elements).unwrap()
}

/// `count` distinct Mailjet events in one grouped body, with 19-digit ids.
fn mailjet_batch(count: usize) -> Vec<u8> {
    let events: Vec<String> = (0..count)
        .map(|i| {
            // Written as text: the ids are integers above 2^53.
            format!(
                r#"{{"event":"open","time":{},"MessageID":{},"email":"reader{i}@example.org","mj_campaign_id":7173}}"#,
                1_773_064_937 + i,
                1_942_177_783_514_649_001_u64 + i as u64
            )
        })
        .collect();
    format!("[{}]", events.join(",")).into_bytes()
}

/// Posts `body` to `provider` twice: the first time every event is stored, the
/// second every event is a duplicate; the table then holds exactly `count` items.
///
/// The storage bound is 20 s here: these tests check what is stored, and a debug
/// build writing 1000 items to the emulator on a loaded machine passes the 1.5 s
/// default (the deadline has its own tests in faults.rs). The time taken is printed.
async fn stored_once_when_sent_twice(provider: &str, body: &[u8], count: usize) {
    let db = Emulator::start().await;
    let app = app_with(&db.endpoint, config(&[("STORE_TIMEOUT_MS", "20000")]));
    let parsed = crate::common::provider(provider).parse(body).unwrap();
    assert_eq!(parsed.len(), count, "{provider}");
    let started = std::time::Instant::now();
    let (status, first) = parts(app.handle(signed_post(provider, body)).await);
    let first_ms = started.elapsed().as_millis();
    assert_eq!(status, 200, "{provider}: {first}");
    assert_eq!(
        (first["received"].as_u64(), first["stored"].as_u64()),
        (Some(count as u64), Some(count as u64)),
        "{provider}"
    );
    let (status, second) = parts(app.handle(signed_post(provider, body)).await);
    assert_eq!(status, 200, "{provider}: {second}");
    assert_eq!(
        (second["stored"].as_u64(), second["duplicates"].as_u64()),
        (Some(0), Some(count as u64)),
        "{provider}"
    );
    assert_eq!(db.items().await.len(), count, "{provider}");
    eprintln!("{provider}: {count} events stored in {first_ms} ms (debug build, emulator)");
}

#[tokio::test]
async fn a_500_event_brevo_batch_stores_exactly_its_events_once_even_when_sent_twice() {
    stored_once_when_sent_twice("brevo", &brevo_batch(500), 500).await;
}

#[tokio::test]
async fn a_large_sparkpost_batch_stores_its_events_once_and_skips_its_ping() {
    stored_once_when_sent_twice("sparkpost", &sparkpost_batch(1000), 1000).await;
}

#[tokio::test]
async fn a_large_grouped_mailjet_body_stores_its_events_once() {
    stored_once_when_sent_twice("mailjet", &mailjet_batch(1000), 1000).await;
}

#[tokio::test]
async fn the_sparkpost_ping_answers_200_and_stores_nothing() {
    let db = Emulator::start().await;
    let app = app(&db);
    for name in ["ping", "webhook_validate_ping"] {
        let body = std::fs::read(format!(
            "{}/tests/fixtures/sparkpost/{name}.txt",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        let (status, reply) = parts(app.handle(signed_post("sparkpost", &body)).await);
        assert_eq!(
            (status, reply["control"].as_str()),
            (200, Some("ping")),
            "{name}: {reply}"
        );
        // A ping authenticates like any request.
        let (status, reply) = post(&app, "sparkpost", "", &[], &body).await;
        assert_eq!(
            (status, reply["error"].as_str()),
            (401, Some("missing_credentials"))
        );
    }
    assert!(db.items().await.is_empty());
}

#[tokio::test]
async fn mailjet_message_ids_past_2_pow_53_are_stored_with_every_digit() {
    let db = Emulator::start().await;
    let app = app(&db);
    for id in ["1942177783514649012", "19421777835146490123"] {
        let body = format!(
            r#"{{"event":"sent","time":1433333949,"MessageID":{id},"email":"a@example.com"}}"#
        );
        let (status, reply) = parts(app.handle(signed_post("mailjet", body.as_bytes())).await);
        assert_eq!(
            (status, reply["stored"].as_u64()),
            (200, Some(1)),
            "{reply}"
        );
        let items = db.items().await;
        assert!(
            items
                .iter()
                .any(|item| item.get("message_id") == Some(&AttributeValue::S(id.to_owned()))),
            "{id} stored exactly"
        );
    }
}
