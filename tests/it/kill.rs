//! The function process killed (SIGKILL) in the middle of a batch write, then
//! started again and handed the same invocation, as API Gateway's caller (the
//! ESP) re-delivers a request that got no answer: nothing is lost (every event
//! of the batch is stored), nothing is doubled (one item per event), and the
//! retry's answer accounts for the whole batch (`stored` + `duplicates`).
//!
//! The real binary runs under the fake Runtime API of `common::runtime`; a
//! fault proxy in front of the store lets the first batch writes through and
//! holds the rest unforwarded, so the kill lands with writes done and writes
//! in flight.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use mailhooks::store::codec::{PARTITION_KEY, SORT_KEY, sort_key};
use serde_json::{Value, json};

use crate::common::faults::FaultyStore;
use crate::common::runtime::{Function, provider_env};
use crate::common::{Emulator, apigw_event, provider, secrets, signed, text};

/// The batching provider the test posts to (token scheme: its re-delivery is
/// the same request byte for byte, with no timestamp to go stale).
const PROVIDER: &str = "uspeedo";
/// Events in the batch: 8 `BatchExecuteStatement` calls of 25 inserts.
const EVENTS: usize = 200;
/// Inserts per `BatchExecuteStatement` call (DynamoDB's limit, what the store sends).
const WRITE_CHUNK: usize = 25;
/// Batch writes that reach the store before the rest are held.
const WRITES_BEFORE_KILL: usize = 3;

/// A uSpeedo batch of `EVENTS` distinct events (four per message).
fn batch() -> Vec<u8> {
    let kinds = ["request", "deliver", "open", "click"];
    let events: Vec<Value> = (0..EVENTS)
        .map(|n| {
            json!({"SessionNo": "kill-test", "MsgId": format!("kill-{}", n / 4),
                   "Event": kinds[n % 4], "ReceiptTime": 1_795_342_530 + n as i64,
                   "RecipientEmail": format!("k{}@example.com", n / 4)})
        })
        .collect();
    serde_json::to_vec(&json!({"MsgType": 2, "Data": events})).unwrap()
}

/// The key of every event the provider makes of `body`.
fn expected_keys(body: &[u8]) -> HashSet<(String, String)> {
    provider(PROVIDER)
        .parse(body)
        .unwrap()
        .iter()
        .map(|e| (e.message_id.clone(), sort_key(e)))
        .collect()
}

/// The keys of every event item in the table.
async fn stored_keys(db: &Emulator) -> Vec<(String, String)> {
    db.items()
        .await
        .iter()
        .map(|item| {
            (
                text(item, PARTITION_KEY).unwrap_or_default(),
                text(item, SORT_KEY).unwrap_or_default(),
            )
        })
        .collect()
}

/// Waits (bounded: a guard against a hang, not a timing assertion) until the
/// proxy holds a write and the writes let through are all in the table.
async fn until_killable(db: &Emulator, proxy: &FaultyStore) {
    let started = Instant::now();
    loop {
        let held = proxy.faults.writes_held.load(Ordering::SeqCst);
        if held > 0 && db.items().await.len() == WRITES_BEFORE_KILL * WRITE_CHUNK {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the function wrote {} items, {held} writes held",
            db.items().await.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The `received`, `stored` and `duplicates` of a 200 answer.
fn counts(answer: &Value) -> (u64, u64, u64) {
    assert_eq!(answer["statusCode"], json!(200), "{answer}");
    let reply: Value = serde_json::from_str(answer["body"].as_str().unwrap()).unwrap();
    let count = |name: &str| reply[name].as_u64().unwrap();
    (count("received"), count("stored"), count("duplicates"))
}

#[tokio::test]
async fn a_function_killed_mid_batch_write_loses_and_doubles_nothing_on_redelivery() {
    let db = Emulator::start().await;
    let proxy = FaultyStore::start(&db.endpoint).await;
    let body = batch();
    let expected = expected_keys(&body);
    assert_eq!(
        expected.len(),
        EVENTS,
        "every event of the batch is distinct"
    );
    let request = signed(PROVIDER, &secrets(PROVIDER)[0], &body);
    let event = apigw_event(
        "POST",
        &format!("/webhooks/{PROVIDER}"),
        &request.query,
        &request.headers,
        &request.body,
    )
    .to_string();
    let mut env = provider_env(0);
    env.push(("EMIT_METRICS".to_owned(), "false".to_owned()));
    // Longer than the test waits: the held writes stay in flight until the
    // kill, and no SDK timeout answers the invocation first.
    env.push(("STORE_TIMEOUT_MS".to_owned(), "120000".to_owned()));

    proxy
        .faults
        .writes_let_through
        .store(WRITES_BEFORE_KILL, Ordering::SeqCst);
    proxy.faults.hold_writes.store(true, Ordering::SeqCst);
    let first = Function::start(&proxy.endpoint, &env).await;
    let mut unanswered = first.send(event.clone()).await;
    until_killable(&db, &proxy).await;
    let output = first.stop();
    assert!(
        unanswered.try_recv().is_err(),
        "killed before it answered: {output}"
    );
    let partial = stored_keys(&db).await;
    assert_eq!(
        partial.len(),
        WRITES_BEFORE_KILL * WRITE_CHUNK,
        "killed in the middle of the batch"
    );
    assert!(partial.iter().all(|key| expected.contains(key)));

    // The store is healthy again; the provider re-delivers the same request to
    // a new process (a cold start).
    proxy.faults.hold_writes.store(false, Ordering::SeqCst);
    let second = Function::start(&proxy.endpoint, &env).await;
    let (kind, answer) = second.invoke(event.clone()).await;
    assert_eq!(kind, "response", "{answer}");
    let (received, stored, duplicates) = counts(&answer);
    assert_eq!(received, EVENTS as u64);
    assert_eq!(stored + duplicates, EVENTS as u64, "{answer}");
    assert_eq!(duplicates, partial.len() as u64, "{answer}");

    let keys = stored_keys(&db).await;
    assert_eq!(keys.len(), EVENTS, "one item per event, none doubled");
    assert_eq!(
        keys.into_iter().collect::<HashSet<_>>(),
        expected,
        "every event stored"
    );

    // A further re-delivery stores nothing new.
    let (_, answer) = second.invoke(event).await;
    assert_eq!(counts(&answer), (EVENTS as u64, 0, EVENTS as u64));
    assert_eq!(db.items().await.len(), EVENTS);
    let output = second.stop();
    assert!(!output.contains("panicked"), "{output}");
}
