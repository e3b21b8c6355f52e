//! Fault injection against the in-process DynamoDB API (through the proxy in
//! tests/common/faults.rs). For each fault: the answer (5xx whenever the provider
//! must retry, 2xx only when every event is durable), what is in the table
//! afterwards, and that the provider's retry ends with exactly the right items.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::common::faults::FaultyStore;
use crate::common::*;
use serde_json::{Value, json};

/// The function's timeout (template.yaml): every answer must come before it.
const FUNCTION_TIMEOUT: Duration = Duration::from_secs(2);

/// A uSpeedo batch of `n` deliveries, MsgIds `m0..m{n-1}`.
fn batch(n: usize) -> Vec<u8> {
    let items: Vec<Value> = (0..n)
        .map(|i| json!({"MsgId": format!("m{i}"), "Event": "deliver", "ReceiptTime": 1_234_567_890 + i, "RecipientEmail": format!("u{i}@example.com")}))
        .collect();
    json!({"MsgType": 2, "Data": items})
        .to_string()
        .into_bytes()
}

async fn send(
    app: &mailhooks::App<mailhooks::store::DynamoStore>,
    body: &[u8],
) -> (u16, Value, Duration) {
    let started = Instant::now();
    let (status, reply) = parts(app.handle(signed_post("uspeedo", body)).await);
    (status, reply, started.elapsed())
}

async fn message_ids(db: &Emulator) -> Vec<String> {
    let mut ids: Vec<String> = db
        .items()
        .await
        .iter()
        .map(|i| text(i, "message_id").unwrap())
        .collect();
    ids.sort();
    ids
}

fn all_ids(n: usize) -> Vec<String> {
    let mut ids: Vec<String> = (0..n).map(|i| format!("m{i}")).collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn throttling_for_a_while_is_absorbed_by_the_sdk_retries() {
    let db = Emulator::start().await;
    let proxy = FaultyStore::start(&db.endpoint).await;
    let app = app_with(&proxy.endpoint, config(&[]));
    proxy.faults.throttle_next_puts.store(2, Ordering::SeqCst);
    let (status, reply, elapsed) = send(&app, &batch(3)).await;
    assert_eq!(
        (status, reply["stored"].as_u64()),
        (200, Some(3)),
        "{reply}"
    );
    assert!(
        proxy.faults.puts_seen.load(Ordering::SeqCst) >= 5,
        "two throttled attempts were retried"
    );
    assert!(elapsed < FUNCTION_TIMEOUT);
    assert_eq!(message_ids(&db).await, all_ids(3));
}

#[tokio::test]
async fn throttling_past_the_retries_answers_503_in_time_and_the_retry_stores_everything() {
    let db = Emulator::start().await;
    let proxy = FaultyStore::start(&db.endpoint).await;
    let app = app_with(&proxy.endpoint, config(&[]));
    proxy.faults.throttle_all_puts.store(true, Ordering::SeqCst);
    let (status, reply, elapsed) = send(&app, &batch(4)).await;
    assert_eq!(
        (status, reply["error"].as_str()),
        (503, Some("storage_throttled")),
        "{reply}"
    );
    assert!(
        elapsed < FUNCTION_TIMEOUT,
        "answered before the function timeout: {elapsed:?}"
    );
    assert!(db.items().await.is_empty());

    proxy
        .faults
        .throttle_all_puts
        .store(false, Ordering::SeqCst);
    let (status, reply, _) = send(&app, &batch(4)).await;
    assert_eq!(
        (
            status,
            reply["stored"].as_u64(),
            reply["duplicates"].as_u64()
        ),
        (200, Some(4), Some(0))
    );
    assert_eq!(message_ids(&db).await, all_ids(4));
}

#[tokio::test]
async fn part_of_a_batch_failing_answers_5xx_and_the_retry_adds_only_the_missing_event() {
    let db = Emulator::start().await;
    let proxy = FaultyStore::start(&db.endpoint).await;
    let app = app_with(&proxy.endpoint, config(&[]));
    *proxy.faults.fail_puts_containing.lock().unwrap() = Some("\"m3\"".into());
    let (status, reply, elapsed) = send(&app, &batch(6)).await;
    assert_eq!(
        (status, reply["error"].as_str()),
        (503, Some("storage_unavailable")),
        "{reply}"
    );
    assert!(elapsed < FUNCTION_TIMEOUT);
    let mut expected = all_ids(6);
    expected.retain(|id| id != "m3");
    assert_eq!(
        message_ids(&db).await,
        expected,
        "the other five are durable"
    );

    *proxy.faults.fail_puts_containing.lock().unwrap() = None;
    let (status, reply, _) = send(&app, &batch(6)).await;
    assert_eq!(
        (
            status,
            reply["stored"].as_u64(),
            reply["duplicates"].as_u64()
        ),
        (200, Some(1), Some(5))
    );
    assert_eq!(message_ids(&db).await, all_ids(6), "no loss, no duplicates");
}

#[tokio::test]
async fn a_store_slower_than_the_bound_answers_503_and_the_retry_finds_the_write_done() {
    let db = Emulator::start().await;
    let proxy = FaultyStore::start(&db.endpoint).await;
    let app = app_with(&proxy.endpoint, config(&[]));
    *proxy.faults.delay_after_forwarding.lock().unwrap() = Duration::from_millis(1800);
    let (status, reply, elapsed) = send(&app, &batch(2)).await;
    assert_eq!(
        (status, reply["error"].as_str()),
        (503, Some("storage_unavailable")),
        "{reply}"
    );
    assert!(
        elapsed < FUNCTION_TIMEOUT,
        "the 1.5 s storage bound answered first: {elapsed:?}"
    );

    *proxy.faults.delay_after_forwarding.lock().unwrap() = Duration::ZERO;
    let (status, reply, _) = send(&app, &batch(2)).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(
        reply["stored"].as_u64().unwrap() + reply["duplicates"].as_u64().unwrap(),
        2,
        "writes the slow attempt finished count as duplicates: {reply}"
    );
    assert_eq!(message_ids(&db).await, all_ids(2));
}

#[tokio::test]
async fn a_store_that_is_down_answers_503_and_nothing_is_lost_once_it_is_back() {
    let db = Emulator::start().await;
    let proxy = FaultyStore::start(&db.endpoint).await;
    let app = app_with(&proxy.endpoint, config(&[]));
    proxy.faults.down.store(true, Ordering::SeqCst);
    let (status, reply, elapsed) = send(&app, &batch(3)).await;
    assert_eq!(
        (status, reply["error"].as_str()),
        (503, Some("storage_unavailable")),
        "{reply}"
    );
    assert!(elapsed < FUNCTION_TIMEOUT);
    proxy.faults.down.store(false, Ordering::SeqCst);
    let (status, reply, _) = send(&app, &batch(3)).await;
    assert_eq!((status, reply["stored"].as_u64()), (200, Some(3)));
    assert_eq!(message_ids(&db).await, all_ids(3));
}

#[tokio::test]
async fn a_batch_too_slow_as_a_whole_answers_503_before_the_function_timeout() {
    let db = Emulator::start().await;
    let proxy = FaultyStore::start(&db.endpoint).await;
    let app = app_with(&proxy.endpoint, config(&[]));
    // Each call is within the per-call bound; the batch path's read then write is not.
    *proxy.faults.delay_after_forwarding.lock().unwrap() = Duration::from_millis(900);
    let (status, reply, elapsed) = send(&app, &batch(40)).await;
    assert_eq!(
        (status, reply["error"].as_str()),
        (503, Some("storage_unavailable")),
        "{reply}"
    );
    assert!(
        elapsed < FUNCTION_TIMEOUT,
        "the batch deadline answered first: {elapsed:?}"
    );

    *proxy.faults.delay_after_forwarding.lock().unwrap() = Duration::ZERO;
    let (status, reply, _) = send(&app, &batch(40)).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(
        message_ids(&db).await,
        all_ids(40),
        "the retry completes the batch exactly"
    );
}

#[tokio::test]
async fn a_large_batch_failing_in_part_is_completed_exactly_by_the_retry() {
    let db = Emulator::start().await;
    let proxy = FaultyStore::start(&db.endpoint).await;
    let app = app_with(&proxy.endpoint, config(&[]));
    // Over the batch threshold: BatchGetItem, then conditional inserts 25 a call
    // (the call carrying m33 fails whole).
    *proxy.faults.fail_puts_containing.lock().unwrap() = Some("\"m33\"".into());
    let (status, reply, elapsed) = send(&app, &batch(60)).await;
    assert_eq!(
        (status, reply["error"].as_str()),
        (503, Some("storage_unavailable")),
        "{reply}"
    );
    assert!(elapsed < FUNCTION_TIMEOUT);
    let partial = message_ids(&db).await.len();
    assert!(partial < 60 && !message_ids(&db).await.contains(&"m33".to_owned()));

    *proxy.faults.fail_puts_containing.lock().unwrap() = None;
    let (status, reply, _) = send(&app, &batch(60)).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["stored"].as_u64(), Some(60 - partial as u64));
    assert_eq!(reply["duplicates"].as_u64(), Some(partial as u64));
    assert_eq!(
        message_ids(&db).await,
        all_ids(60),
        "no loss, no duplicates"
    );
    let (_, reply, _) = send(&app, &batch(60)).await;
    assert_eq!(
        (reply["stored"].as_u64(), reply["duplicates"].as_u64()),
        (Some(0), Some(60)),
        "a third delivery is all duplicates"
    );
}

#[tokio::test]
async fn batch_calls_left_partly_unprocessed_are_completed_by_the_store() {
    let db = Emulator::start().await;
    let proxy = FaultyStore::start(&db.endpoint).await;
    let app = app_with(&proxy.endpoint, config(&[]));
    // 60 events: one BatchGetItem, first answered with half of its keys
    // unprocessed (the writes are conditional PutItems, never left unprocessed).
    proxy
        .faults
        .leave_unprocessed_next_batches
        .store(1, Ordering::SeqCst);
    let (status, reply, _) = send(&app, &batch(60)).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(
        (reply["stored"].as_u64(), reply["duplicates"].as_u64()),
        (Some(60), Some(0))
    );
    assert_eq!(message_ids(&db).await, all_ids(60), "every event, once");
    assert_eq!(
        proxy
            .faults
            .leave_unprocessed_next_batches
            .load(Ordering::SeqCst),
        0,
        "the faults were used"
    );
    assert!(
        proxy.faults.batch_calls_seen.load(Ordering::SeqCst) >= 2,
        "the unprocessed keys were sent again"
    );

    // Half of the existing keys left unprocessed by the read: still all found.
    proxy
        .faults
        .leave_unprocessed_next_batches
        .store(1, Ordering::SeqCst);
    let (status, reply, _) = send(&app, &batch(60)).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(
        (reply["stored"].as_u64(), reply["duplicates"].as_u64()),
        (Some(0), Some(60)),
        "a retried read still finds every stored event"
    );
}
