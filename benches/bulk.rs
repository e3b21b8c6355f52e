//! One bulk send under one partition key: 20,000 SparkPost events of one
//! transmission (10,000 recipients, each an `injection` then a `delivery`: the
//! first minutes of a bulk send), all keyed by its `transmission_id`, written
//! through the real store (`DynamoStore::put_events`, 1,000 events a request as
//! the handler gets them) into the embedded DynamoDB emulator. Reports the item
//! collection's shape: items and bytes under the key, write units per item
//! (DynamoDB's rounding: 1 per started KB), the time to write them, the pages and
//! time of the timeline Query of the key, and what DynamoDB's ~1,000 write units
//! per second per partition key make of it. The emulator's speed is not
//! DynamoDB's; the shape and the units are the service's.
//!
//! `cargo bench --features local --bench bulk`. Loopback only; bounded counts.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::types::AttributeValue;
use mailhooks::EmailEvent;
use mailhooks::local_server::{LocalOptions, start};
use mailhooks::providers;
use mailhooks::read::EventsTable;
use mailhooks::store::codec::{self, PARTITION_KEY, PROVIDER_EVENT};
use mailhooks::store::{DynamoStore, EventStore};
use serde_json::{Value, json};

// The Lambda binary's allocator (src/main.rs), so the store costs what it does there.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const TABLE: &str = "mailhooks-bulk";
/// The transmission every event belongs to (SparkPost's `transmission_id`).
const BULK_ID: &str = "7312345678901234567";
/// Recipients of the transmission; two events each.
const RECIPIENTS: usize = 10_000;
/// Events per webhook request (SparkPost batches its webhook posts).
const PER_REQUEST: usize = 1_000;
/// DynamoDB's write throughput for one partition (write units per second),
/// which a time-ordered sort key keeps one key from splitting past.
const PARTITION_WCU_PER_SECOND: f64 = 1_000.0;
/// DynamoDB's largest Query page.
const QUERY_PAGE_BYTES: usize = 1024 * 1024;

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The one `msys` event of a SparkPost fixture (an array of one), or `Null`.
fn fixture_event(name: &str) -> Value {
    let path = format!(
        "{}/tests/fixtures/sparkpost/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(path)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
        .and_then(|mut events| events.get_mut(0).map(Value::take))
        .unwrap_or(Value::Null)
}

/// `template` (an `msys` event) sent to recipient `r` of the bulk transmission at `unix_secs`.
fn event_for(template: &Value, r: usize, unix_secs: i64, event_id: usize) -> Value {
    let mut event = template.clone();
    if let Some(Value::Object(kinds)) = event.get_mut("msys") {
        for inner in kinds.values_mut() {
            inner["transmission_id"] = json!(BULK_ID);
            inner["message_id"] = json!(format!("{r:020x}"));
            inner["event_id"] = json!(format!("{}", 90_000_000_000_000_000 + event_id));
            inner["rcpt_to"] = json!(format!("user{r}@example.com"));
            inner["raw_rcpt_to"] = json!(format!("user{r}@example.com"));
            inner["timestamp"] = json!(unix_secs.to_string());
        }
    }
    event
}

/// The webhook bodies of the send: every recipient's injection, then its
/// delivery a second later, injected at 100 recipients a second.
fn bodies(start_secs: i64) -> Vec<Vec<u8>> {
    let injection = fixture_event("injection");
    let delivery = fixture_event("delivered");
    let events: Vec<Value> = (0..RECIPIENTS)
        .flat_map(|r| {
            let injected = start_secs + (r / 100) as i64;
            [
                event_for(&injection, r, injected, 2 * r),
                event_for(&delivery, r, injected + 1, 2 * r + 1),
            ]
        })
        .collect();
    events
        .chunks(PER_REQUEST)
        .map(|chunk| Value::Array(chunk.to_vec()).to_string().into_bytes())
        .collect()
}

/// What one page-by-page Query of the bulk key found.
struct Collection {
    items: usize,
    bytes: usize,
    write_units: usize,
    /// Items and write units by SparkPost event type.
    by_type: BTreeMap<String, (usize, usize)>,
    pages: usize,
    took: Duration,
}

/// Every item under the bulk key, read page after page as DynamoDB serves it.
async fn read_collection(client: &Client) -> Collection {
    let mut collection = Collection {
        items: 0,
        bytes: 0,
        write_units: 0,
        by_type: BTreeMap::new(),
        pages: 0,
        took: Duration::ZERO,
    };
    let started = Instant::now();
    let mut start = None;
    loop {
        let page = client
            .query()
            .table_name(TABLE)
            .key_condition_expression("#pk = :pk")
            .expression_attribute_names("#pk", PARTITION_KEY)
            .expression_attribute_values(":pk", AttributeValue::S(BULK_ID.into()))
            .set_exclusive_start_key(start)
            .send()
            .await
            .unwrap_or_else(|e| panic!("Query of the bulk key: {e:?}"));
        collection.pages += 1;
        for item in page.items() {
            let size = codec::estimate_item(item);
            collection.items += 1;
            collection.bytes += size;
            collection.write_units += size.div_ceil(1024);
            let kind = match item.get(PROVIDER_EVENT) {
                Some(AttributeValue::S(kind)) => kind.clone(),
                _ => String::new(),
            };
            let (items, units) = collection.by_type.entry(kind).or_default();
            *items += 1;
            *units += size.div_ceil(1024);
        }
        start = page.last_evaluated_key;
        if start.is_none() {
            break;
        }
    }
    collection.took = started.elapsed();
    collection
}

/// `client` without the handler's per-operation deadline: a 1,000-event write to
/// the emulator on a shared machine takes longer than one to DynamoDB, and the
/// bench measures the key's shape, not the deadline.
fn patient(client: &Client) -> Client {
    let timeouts = TimeoutConfig::builder()
        .operation_timeout(Duration::from_secs(120))
        .build();
    Client::from_conf(
        client
            .config()
            .to_builder()
            .timeout_config(timeouts)
            .build(),
    )
}

fn row(measure: &str, value: impl std::fmt::Display) {
    println!("| bulk send under one key: {measure} | {value} | |");
}

#[tokio::main]
async fn main() {
    let options = LocalOptions {
        port: 0,
        dynamodb_port: 0,
        db: None,
        table: TABLE.into(),
    };
    let stack = start(&options)
        .await
        .unwrap_or_else(|e| panic!("cannot start the local stack: {e}"));
    let sparkpost = providers::by_name("sparkpost").unwrap_or_else(|| unreachable!());
    let requests: Vec<Vec<EmailEvent>> = bodies(now_secs() - 3600)
        .iter()
        .map(|body| {
            sparkpost
                .parse(body)
                .unwrap_or_else(|e| panic!("a bulk body did not parse: {e}"))
        })
        .collect();
    let events: usize = requests.iter().map(Vec::len).sum();
    let keys: BTreeSet<&str> = requests
        .iter()
        .flatten()
        .map(|e| e.message_id.as_str())
        .collect();
    assert_eq!(keys.into_iter().collect::<Vec<_>>(), [BULK_ID]);

    let client = patient(&stack.client);
    let store = DynamoStore::new(client.clone(), TABLE, Some(30));
    let mut stored = 0;
    let started = Instant::now();
    for events in &requests {
        let outcome = store
            .put_events(events, now_secs() * 1000)
            .await
            .unwrap_or_else(|e| panic!("the store refused a bulk request: {e}"));
        stored += outcome.stored;
    }
    let write_time = started.elapsed();
    assert_eq!(stored, events, "every event of the send is a new item");

    let collection = read_collection(&client).await;
    assert_eq!(collection.items, events, "the key holds every event");
    let table = EventsTable::new(client, TABLE);
    let timeline_started = Instant::now();
    let timeline = table
        .timeline(BULK_ID, None)
        .await
        .unwrap_or_else(|e| panic!("timeline of the bulk key: {e}"));
    let timeline_time = timeline_started.elapsed();
    assert_eq!(timeline.events.len(), events);

    let per_item = collection.write_units as f64 / collection.items as f64;
    let events_per_second_at_limit = PARTITION_WCU_PER_SECOND / per_item;
    println!("| measure | value | target |");
    println!("|---|---|---|");
    row(
        "items under one partition key",
        format!(
            "{} (SparkPost `transmission_id`, {RECIPIENTS} recipients × injection + delivery)",
            collection.items
        ),
    );
    row(
        "bytes under the key",
        format!(
            "{:.1} MB, {:.0} B per item (DynamoDB's size rules, estimated)",
            collection.bytes as f64 / 1e6,
            collection.bytes as f64 / collection.items as f64
        ),
    );
    row(
        "write units, base table",
        format!(
            "{} for the send, {per_item:.2} per item ({}; index copies go to other keys)",
            collection.write_units,
            collection
                .by_type
                .iter()
                .map(|(kind, (items, units))| format!(
                    "{kind} {:.2}",
                    *units as f64 / *items as f64
                ))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );
    row(
        "write, embedded emulator",
        format!(
            "{:.2} s for {events} events in {} requests of {PER_REQUEST}: {:.0} events/s",
            write_time.as_secs_f64(),
            requests.len(),
            events as f64 / write_time.as_secs_f64()
        ),
    );
    row(
        "timeline Query of the key",
        format!(
            "{} pages from the emulator ({} at DynamoDB's 1 MB a page), {:.2} s paged, {:.2} s through `timeline`",
            collection.pages,
            collection.bytes.div_ceil(QUERY_PAGE_BYTES),
            collection.took.as_secs_f64(),
            timeline_time.as_secs_f64()
        ),
    );
    row(
        "DynamoDB's ~1,000 write units/s per key",
        format!(
            "{events_per_second_at_limit:.0} events/s under one key ({:.0} messages/s at 2 events each); this send needs ≥ {:.1} s of the key's writes",
            events_per_second_at_limit / 2.0,
            collection.write_units as f64 / PARTITION_WCU_PER_SECOND
        ),
    );
}
