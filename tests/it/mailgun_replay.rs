//! Mailgun's signature covers `timestamp + token`, not the body: a token is
//! bound to the first body it authenticated by a replay claim in the events
//! table (`store::replay`). Against the embedded DynamoDB emulator: a retry of
//! the same body is a duplicate, another body under the same token is refused,
//! the claim expires after the window, and a storage failure never makes the
//! retry impossible. The claim's nonce is the verified digest, so a timestamp
//! that takes digits from the token, an upper-case spelling of the digest or the
//! other signature object of a subaccount's event is bound to the first body too.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use crate::common::faults::FaultyStore;
use crate::common::*;
use mailhooks::auth::Clock;
use mailhooks::providers::{Signed, mailgun};
use mailhooks::store::replay::{BODY_SHA256, CLAIM_SORT_KEY};
use serde_json::{Value, json};

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

/// The hex digest of a signed body's `signature` object (the claim's nonce).
fn digest_of(body: &[u8]) -> String {
    serde_json::from_slice::<Value>(body).unwrap()["signature"]["signature"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// `other`'s event data under a hand-made signature object.
fn with_signature_object(other: &str, member: &str, object: Value) -> Vec<u8> {
    let mut body: Value = serde_json::from_slice(&fixture(MAILGUN, other)).unwrap();
    body[member] = object;
    serde_json::to_vec(&body).unwrap()
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
    assert_eq!(
        text(claim, "message_id"),
        Some(format!("replay#mailgun#{}", digest_of(&request.body)))
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
    let table = mailhooks::read::EventsTable::new(db.client.clone(), TABLE);
    let claim_id = format!("replay#mailgun#{}", digest_of(&request.body));
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

#[tokio::test]
async fn a_timestamp_that_takes_digits_from_the_token_is_refused() {
    // Captured: NOW + a token starting with three digits. Forged: those digits
    // moved to the timestamp (which would read as fresh milliseconds), the rest
    // as a new token, the same digest, another body.
    let db = Emulator::start().await;
    let app = app(&db);
    let key = &secrets(MAILGUN)[0];
    let (timestamp, token) = (
        NOW_SECS.to_string(),
        "389f0c5a1e2d3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d",
    );
    let signature = mailgun::signature_hex(key, &timestamp, token);
    let captured = with_signature_object(
        "delivered",
        "signature",
        json!({"timestamp": timestamp, "token": token, "signature": signature}),
    );
    assert_eq!(send(&app, &captured).await.0, 200);
    let forged = with_signature_object(
        "docs_failed_permanent",
        "signature",
        json!({"timestamp": format!("{timestamp}389"), "token": &token[3..], "signature": signature}),
    );
    let (status, reply) = send(&app, &forged).await;
    assert_eq!(
        (status, reply["error"].as_str()),
        (401, Some("malformed_timestamp")),
        "{reply}"
    );
    assert_eq!(
        db.items().await.len(),
        1,
        "nothing of the forged body is stored"
    );
}

#[tokio::test]
async fn an_upper_case_spelling_of_a_captured_digest_is_refused_as_replayed() {
    let db = Emulator::start().await;
    let app = app(&db);
    let captured = signed_fixture("delivered");
    assert_eq!(send(&app, &captured.body).await.0, 200);
    let mut forged: Value =
        serde_json::from_slice(&replayed_with(&captured, "docs_failed_permanent")).unwrap();
    forged["signature"]["signature"] = json!(digest_of(&captured.body).to_ascii_uppercase());
    let (status, reply) = send(&app, &serde_json::to_vec(&forged).unwrap()).await;
    assert_eq!(
        (status, reply["error"].as_str()),
        (401, Some("replayed")),
        "{reply}"
    );
    assert_eq!(db.items().await.len(), 1);
    assert_eq!(db.claims().await.len(), 1);
}

#[tokio::test]
async fn either_signature_object_of_a_subaccounts_event_is_bound_to_its_first_body() {
    // A subaccount's event carries `signature` (subaccount key) and
    // `parent-signature` (primary key); both keys are configured.
    let db = Emulator::start().await;
    let app = app(&db);
    let [subaccount_key, primary_key] = secrets(MAILGUN);
    let object = |key: &str, token: &str| {
        let timestamp = NOW_SECS.to_string();
        let signature = mailgun::signature_hex(key, &timestamp, token);
        json!({"timestamp": timestamp, "token": token, "signature": signature})
    };
    let signature = object(&subaccount_key, &"1".repeat(50));
    let parent = object(&primary_key, &"2".repeat(50));
    let mut original: Value = serde_json::from_slice(&fixture(MAILGUN, "delivered")).unwrap();
    original["signature"] = signature.clone();
    original["parent-signature"] = parent.clone();
    assert_eq!(
        send(&app, &serde_json::to_vec(&original).unwrap()).await.0,
        200
    );
    assert_eq!(db.claims().await.len(), 2, "one claim per signature object");

    let corrupted = json!({"timestamp": "1", "token": "t", "signature": "00"});
    for (name, signature, parent) in [
        ("parent only", None, Some(&parent)),
        (
            "parent, signature corrupted",
            Some(&corrupted),
            Some(&parent),
        ),
        ("signature only", Some(&signature), None),
    ] {
        let mut forged: Value =
            serde_json::from_slice(&fixture(MAILGUN, "docs_failed_permanent")).unwrap();
        if let Some(object) = signature {
            forged["signature"] = object.clone();
        }
        if let Some(object) = parent {
            forged["parent-signature"] = object.clone();
        }
        let (status, reply) = send(&app, &serde_json::to_vec(&forged).unwrap()).await;
        assert_eq!(
            (status, reply["error"].as_str()),
            (401, Some("replayed")),
            "{name}: {reply}"
        );
    }
    assert_eq!(
        db.items().await.len(),
        1,
        "nothing of a forged body is stored"
    );
}

/// A clock that moves a minute forward at every reading.
struct SteppingClock(AtomicI64);

impl Clock for SteppingClock {
    fn now_ms(&self) -> i64 {
        self.0.fetch_add(60_000, Ordering::SeqCst)
    }
}

#[tokio::test]
async fn a_window_edge_crossed_between_authentication_and_claim_still_claims() {
    // Authenticated at 299 s of a 300 s window; the claim is derived a minute
    // later by the clock. The claim must still be written.
    let db = Emulator::start().await;
    let config = config(&[]);
    let client = mailhooks::store::sdk::local_client(&db.endpoint, config.store_timeout);
    let store = mailhooks::store::DynamoStore::new(client, TABLE, config.retention_days);
    let clock = SteppingClock(AtomicI64::new(NOW_MS + 299_000));
    let moving = mailhooks::App::new(config, store, Arc::new(clock));
    let captured = signed_fixture("delivered");
    let (status, reply) = send(&moving, &captured.body).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(db.claims().await.len(), 1, "the body is claimed");
    let forged = replayed_with(&captured, "docs_failed_permanent");
    let (status, reply) = send(&app(&db), &forged).await;
    assert_eq!(
        (status, reply["error"].as_str()),
        (401, Some("replayed")),
        "{reply}"
    );
}
