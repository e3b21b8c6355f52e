//! Mailgun's signature covers `timestamp + token`, not the body: a token is
//! bound to the first body it authenticated by a replay claim in the events
//! table (`store::replay`). Against the embedded DynamoDB emulator: a retry of
//! the same body is a duplicate, another body under the same token is refused,
//! the claim expires after the window, and a storage failure never makes the
//! retry impossible.

use std::sync::atomic::Ordering;

use crate::common::faults::FaultyStore;
use crate::common::*;
use mailhooks::providers::Signed;
use mailhooks::store::replay::{BODY_SHA256, CLAIM_SORT_KEY};
use serde_json::Value;

const MAILGUN: &str = "mailgun";

/// A fixture signed now with the first key.
fn signed_fixture(name: &str) -> Signed {
    signed(MAILGUN, &secrets(MAILGUN)[0], &fixture(MAILGUN, name))
}

/// `other`'s event data under `captured`'s signature object: what an attacker
/// holding one captured request could send inside the window.
fn replayed_with(captured: &Signed, other: &str) -> Vec<u8> {
    let captured: Value = serde_json::from_slice(&captured.body).unwrap();
    let mut forged: Value = serde_json::from_slice(&fixture(MAILGUN, other)).unwrap();
    forged["signature"] = captured["signature"].clone();
    serde_json::to_vec(&forged).unwrap()
}

async fn send(app: &mailhooks::App<mailhooks::store::DynamoStore>, body: &[u8]) -> (u16, Value) {
    post(app, MAILGUN, "", &[], body).await
}

#[tokio::test]
async fn the_same_token_with_the_same_body_is_a_duplicate() {
    let db = Emulator::start().await;
    let app = app(&db);
    let request = signed_fixture("delivered");
    let (status, reply) = send(&app, &request.body).await;
    assert_eq!(
        (status, reply["stored"].as_u64()),
        (200, Some(1)),
        "{reply}"
    );
    let (status, reply) = send(&app, &request.body).await;
    assert_eq!(
        (
            status,
            reply["stored"].as_u64(),
            reply["duplicates"].as_u64()
        ),
        (200, Some(0), Some(1)),
        "{reply}"
    );
    assert_eq!(db.items().await.len(), 1);
    assert_eq!(db.claims().await.len(), 1, "one claim for one token");
}

#[tokio::test]
async fn the_same_token_with_another_body_is_refused_as_replayed() {
    let db = Emulator::start().await;
    let app = app(&db);
    let captured = signed_fixture("delivered");
    assert_eq!(send(&app, &captured.body).await.0, 200);
    let forged = replayed_with(&captured, "docs_failed_permanent");
    let (status, reply) = send(&app, &forged).await;
    assert_eq!(
        (status, reply["error"].as_str()),
        (401, Some("replayed")),
        "{reply}"
    );
    let items = db.items().await;
    assert_eq!(items.len(), 1, "nothing of the forged body is stored");
    assert_eq!(text(&items[0], "event_type").as_deref(), Some("delivered"));
}

#[tokio::test]
async fn the_claim_is_keyed_apart_from_events_and_expires_after_the_window() {
    let db = Emulator::start().await;
    let app = app(&db);
    let request = signed_fixture("opened");
    assert_eq!(send(&app, &request.body).await.0, 200);
    let claims = db.claims().await;
    let [claim] = claims.as_slice() else {
        panic!("one claim: {claims:?}");
    };
    let token = serde_json::from_slice::<Value>(&request.body).unwrap()["signature"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        text(claim, "message_id"),
        Some(format!("replay#mailgun#{token}"))
    );
    assert_eq!(text(claim, "timestamp").as_deref(), Some(CLAIM_SORT_KEY));
    assert_eq!(text(claim, BODY_SHA256).map(|h| h.len()), Some(64));
    // Signed at NOW; the default window is 300 s; one hour of margin.
    let expires: i64 = claim
        .get("expires_at")
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert_eq!(expires, NOW_SECS + 300 + 3600);
    for index_attribute in ["recipient", "suppression", "provider"] {
        assert!(!claim.contains_key(index_attribute), "{index_attribute}");
    }
}

#[tokio::test]
async fn readers_never_show_a_claim() {
    let db = Emulator::start().await;
    let app = app(&db);
    let request = signed_fixture("opened");
    assert_eq!(send(&app, &request.body).await.0, 200);
    let token = serde_json::from_slice::<Value>(&request.body).unwrap()["signature"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let table = mailhooks::read::EventsTable::new(db.client.clone(), TABLE);
    let claim_id = format!("replay#mailgun#{token}");
    assert!(
        table.timeline(&claim_id, None).await.is_err(),
        "a claim's key is no message"
    );
    let report = table
        .renormalize(
            &mailhooks::renormalize::RenormalizeOptions::default(),
            &mut |_| {},
        )
        .await
        .unwrap();
    assert_eq!(report.scanned, 1, "only the event is scanned");
    assert_eq!(report.skipped_total(), 0);
}

#[tokio::test]
async fn storage_down_answers_5xx_and_the_retry_succeeds() {
    let db = Emulator::start().await;
    let proxy = FaultyStore::start(&db.endpoint).await;
    let app = app_with(&proxy.endpoint, config(&[]));
    let request = signed_fixture("delivered");

    // Down before the claim: nothing written.
    proxy.faults.down.store(true, Ordering::SeqCst);
    let (status, reply) = send(&app, &request.body).await;
    assert!(status >= 500, "{status} {reply}");
    proxy.faults.down.store(false, Ordering::SeqCst);
    assert!(db.all_items().await.is_empty());

    // The claim is written, the event's write fails: the claim stays.
    let message_id = "20180812211713.1.DF5966851B4BAA99@example.org";
    *proxy.faults.fail_puts_containing.lock().unwrap() = Some(message_id.to_owned());
    let (status, reply) = send(&app, &request.body).await;
    assert!(status >= 500, "{status} {reply}");
    assert_eq!(db.claims().await.len(), 1);
    assert!(db.items().await.is_empty());

    // Mailgun's retry of the same body is stored.
    *proxy.faults.fail_puts_containing.lock().unwrap() = None;
    let (status, reply) = send(&app, &request.body).await;
    assert_eq!(
        (status, reply["stored"].as_u64()),
        (200, Some(1)),
        "{reply}"
    );
    assert_eq!(db.items().await.len(), 1);
}
