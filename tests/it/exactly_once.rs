//! Exactly once on the batch path (requests over 25 events), under concurrency and
//! faults: the same events delivered twice at the same time are stored by exactly
//! one of the two requests (the other counts them as duplicates), and an item's
//! first `received_at` never moves. The fault proxy holds every write back so the
//! second request's `BatchGetItem` surely runs before the first request writes:
//! the window in which an unconditional batch write stored an event twice.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::common::faults::FaultyStore;
use crate::common::*;
use mailhooks::auth::FixedClock;
use mailhooks::event::{EmailEvent, format_rfc3339_ms};
use mailhooks::store::{DynamoStore, PutOutcome, sdk};
use mailhooks::{App, Config};
use serde_json::{Value, json};

/// The clock of the first request, and a later one for the other.
const FIRST_MS: i64 = NOW_MS;
const SECOND_MS: i64 = NOW_MS + 7_000;
/// Events per batch: over the batch threshold, more than one `BatchGetItem`'s
/// worth of writes in flight.
const EVENTS: usize = 200;

/// A uSpeedo batch of `n` deliveries, MsgIds `{tag}-m0..`.
fn batch(tag: &str, n: usize) -> Vec<u8> {
    let items: Vec<Value> = (0..n)
        .map(|i| json!({"MsgId": format!("{tag}-m{i}"), "Event": "deliver", "ReceiptTime": 1_234_567_890 + i, "RecipientEmail": format!("u{i}@example.com")}))
        .collect();
    json!({"MsgType": 2, "Data": items})
        .to_string()
        .into_bytes()
}

/// Storage bound of 20 s: these tests check counts and items, and a debug build
/// on a loaded machine can pass the 1.5 s default (the deadline has its own tests).
fn roomy_config() -> Config {
    config(&[("STORE_TIMEOUT_MS", "20000")])
}

fn store(endpoint: &str) -> DynamoStore {
    DynamoStore::new(
        sdk::local_client(endpoint, Duration::from_secs(20)),
        TABLE,
        None,
    )
}

/// The real handler over `endpoint`, its clock stopped at `now_ms`.
fn app_at(endpoint: &str, now_ms: i64) -> App<DynamoStore> {
    App::new(
        roomy_config(),
        store(endpoint),
        Arc::new(FixedClock(now_ms)),
    )
}

/// How many items whose message id starts with `{tag}-` carry each `received_at`.
async fn received_at_counts(db: &Emulator, tag: &str) -> HashMap<String, usize> {
    let prefix = format!("{tag}-");
    let mut counts = HashMap::new();
    for item in db.items().await {
        if text(&item, "message_id").is_some_and(|id| id.starts_with(&prefix)) {
            *counts
                .entry(text(&item, "received_at").unwrap())
                .or_default() += 1;
        }
    }
    counts
}

/// What the table must hold after two requests answered `first` and `second`:
/// each item written by the request that counted it stored, at its time.
fn written_by(first: usize, second: usize) -> HashMap<String, usize> {
    [(FIRST_MS, first), (SECOND_MS, second)]
        .into_iter()
        .filter(|(_, stored)| *stored > 0)
        .map(|(ms, stored)| (format_rfc3339_ms(ms), stored))
        .collect()
}

fn counts(reply: &Value) -> (usize, usize) {
    let count = |name: &str| reply[name].as_u64().unwrap() as usize;
    (count("stored"), count("duplicates"))
}

#[tokio::test]
async fn two_identical_batches_sent_at_once_store_each_event_once_at_the_first_writers_time() {
    let db = Emulator::start().await;
    let proxy = FaultyStore::start(&db.endpoint).await;
    *proxy.faults.delay_puts_before_forwarding.lock().unwrap() = Duration::from_millis(30);
    let (first_app, second_app) = (
        app_at(&proxy.endpoint, FIRST_MS),
        app_at(&proxy.endpoint, SECOND_MS),
    );
    let body = batch("app", EVENTS);
    let (first, second) = tokio::join!(
        first_app.handle(signed_post("uspeedo", &body)),
        second_app.handle(signed_post("uspeedo", &body)),
    );
    let ((status_a, first), (status_b, second)) = (parts(first), parts(second));
    assert_eq!((status_a, status_b), (200, 200), "{first} {second}");
    let ((stored_a, dup_a), (stored_b, dup_b)) = (counts(&first), counts(&second));
    assert_eq!(
        (stored_a + stored_b, dup_a + dup_b),
        (EVENTS, EVENTS),
        "each event counted stored exactly once across both answers: {first} {second}"
    );
    assert_eq!(
        received_at_counts(&db, "app").await,
        written_by(stored_a, stored_b),
        "one item per event, at the time of the request that stored it"
    );

    // Delivered again later: all duplicates, and no item's received_at moves.
    *proxy.faults.delay_puts_before_forwarding.lock().unwrap() = Duration::ZERO;
    let late_app = app_at(&proxy.endpoint, SECOND_MS + 60_000);
    let (status, late) = parts(late_app.handle(signed_post("uspeedo", &body)).await);
    assert_eq!((status, counts(&late)), (200, (0, EVENTS)), "{late}");
    assert_eq!(
        received_at_counts(&db, "app").await,
        written_by(stored_a, stored_b)
    );
}

#[tokio::test]
async fn concurrent_put_batches_of_the_same_events_count_each_event_stored_exactly_once() {
    let db = Emulator::start().await;
    let proxy = FaultyStore::start(&db.endpoint).await;
    let (first_store, second_store) = (store(&proxy.endpoint), store(&proxy.endpoint));
    let uspeedo = provider("uspeedo");
    // Writes held back long enough for both reads to come first, briefly, or not
    // at all (the two requests then interleave however the scheduler runs them).
    let delays = [30, 0, 5, 30, 0, 5, 30, 0, 5, 30];
    let mut outcomes: Vec<(PutOutcome, PutOutcome)> = Vec::new();
    // Rounds in which both requests sent writes: both reads missed the events,
    // so the writes' condition alone decided (the window this is about).
    let mut both_wrote = 0;
    let calls_for_one = EVENTS.div_ceil(25);
    for (round, delay) in delays.into_iter().enumerate() {
        *proxy.faults.delay_puts_before_forwarding.lock().unwrap() = Duration::from_millis(delay);
        let writes_before = proxy.faults.puts_seen.load(Ordering::SeqCst);
        let events: Vec<EmailEvent> = uspeedo
            .parse(&batch(&format!("round{round}"), EVENTS))
            .unwrap();
        let (first, second) = tokio::join!(
            first_store.put_batch(&events, FIRST_MS),
            second_store.put_batch(&events, SECOND_MS),
        );
        outcomes.push((first.unwrap(), second.unwrap()));
        if proxy.faults.puts_seen.load(Ordering::SeqCst) - writes_before > calls_for_one {
            both_wrote += 1;
        }
    }
    for (round, (first, second)) in outcomes.iter().enumerate() {
        assert_eq!(
            (
                first.stored + second.stored,
                first.duplicates + second.duplicates
            ),
            (EVENTS, EVENTS),
            "round {round}: {first:?} {second:?}"
        );
        assert_eq!(
            received_at_counts(&db, &format!("round{round}")).await,
            written_by(first.stored, second.stored),
            "round {round}: one item per event, at its writer's time"
        );
    }
    assert!(
        both_wrote > 0,
        "some round had both requests write after both reads (the window was hit)"
    );
}

#[tokio::test]
async fn a_batch_throttled_midway_is_completed_exactly_by_the_retry() {
    let db = Emulator::start().await;
    let proxy = FaultyStore::start(&db.endpoint).await;
    // From the fourth write call on (a call inserts 25 events): throttled.
    *proxy.faults.throttle_puts_after.lock().unwrap() = Some(3);
    let body = batch("throttled", EVENTS);
    let (status, reply) = parts(
        app_at(&proxy.endpoint, FIRST_MS)
            .handle(signed_post("uspeedo", &body))
            .await,
    );
    assert_eq!(
        (status, reply["error"].as_str()),
        (503, Some("storage_throttled")),
        "{reply}"
    );
    let partial: usize = received_at_counts(&db, "throttled").await.values().sum();
    assert!(partial > 0 && partial < EVENTS, "{partial} written before");

    *proxy.faults.throttle_puts_after.lock().unwrap() = None;
    let (status, retry) = parts(
        app_at(&proxy.endpoint, SECOND_MS)
            .handle(signed_post("uspeedo", &body))
            .await,
    );
    assert_eq!(
        (status, counts(&retry)),
        (200, (EVENTS - partial, partial)),
        "the retry stores exactly the missing events: {retry}"
    );
    assert_eq!(
        received_at_counts(&db, "throttled").await,
        written_by(partial, EVENTS - partial),
        "the events written before the throttling keep their first received_at"
    );
}

#[tokio::test]
async fn a_store_without_partiql_gets_the_batch_as_conditional_puts_exactly_once() {
    let db = Emulator::start().await;
    let proxy = FaultyStore::start(&db.endpoint).await;
    proxy.faults.refuse_statements.store(true, Ordering::SeqCst);
    let app = app_at(&proxy.endpoint, FIRST_MS);
    let body = batch("no-partiql", EVENTS);
    let (status, first) = parts(app.handle(signed_post("uspeedo", &body)).await);
    assert_eq!((status, counts(&first)), (200, (EVENTS, 0)), "{first}");
    // The same app again: it no longer tries, and still counts exactly.
    let (status, again) = parts(app.handle(signed_post("uspeedo", &body)).await);
    assert_eq!((status, counts(&again)), (200, (0, EVENTS)), "{again}");
    assert_eq!(
        received_at_counts(&db, "no-partiql").await,
        written_by(EVENTS, 0)
    );
}
