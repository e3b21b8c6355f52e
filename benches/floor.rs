//! Overhead over the storage floor, in one process with one SDK client: the local
//! stack (the handler behind its HTTP front end, the embedded DynamoDB API) serves
//! webhook requests, and the very `aws_sdk_dynamodb::Client` the handler writes
//! with also sends bare requests for comparison. Interleaved, so drift on a shared
//! machine hits both sides alike. Measures:
//! - one event: request (HTTP in → conditional PutItem → answer) vs one bare
//!   conditional PutItem of the same item; the same request handed to the handler
//!   directly (no HTTP: what our code adds); and a GET probe (HTTP and handler, no storage);
//! - a 100-event uSpeedo batch: request vs one bare PutItem (the ratio) and
//!   vs the least the store must do for 100 new events with duplicates detected
//!   (one BatchGetItem of the 100 keys, then four BatchExecuteStatements of 25
//!   PartiQL INSERTs in parallel: conditional writes, as the store sends them).
//!
//! `cargo bench --features local --bench floor`. Loopback only; bounded counts.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::Client as Dynamo;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use mailhooks::local_server::{LocalOptions, start};
use mailhooks::store::codec::{self, PARTITION_KEY, SORT_KEY};
use mailhooks::store::insert;
use serde_json::{Value, json};

// The Lambda binary's allocator (src/main.rs), so the handler costs what it does there.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const TABLE: &str = "mailhooks-floor";
const ROUNDS: usize = 1000;
const BATCH_ROUNDS: usize = 60;

type Http = Client<HttpConnector, Full<Bytes>>;
type Item = HashMap<String, AttributeValue>;

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A uSpeedo body carrying `n` delivered events with ids `<tag>-<i>`.
fn uspeedo_body(tag: &str, n: usize) -> Vec<u8> {
    let items: Vec<Value> = (0..n)
        .map(|i| {
            json!({"MsgId": format!("{tag}-{i}"), "Event": "deliver", "ReceiptTime": now_secs(),
                        "RecipientEmail": format!("u{i}@example.com"), "SessionNo": tag,
                        "ReceiptCode": "0", "ReceiptDesc": "ok"})
        })
        .collect();
    json!({"MsgType": 2, "Data": items})
        .to_string()
        .into_bytes()
}

/// The query string that authenticates a uSpeedo request to the local stack.
fn token_query() -> String {
    let uspeedo = mailhooks::providers::by_name("uspeedo").unwrap_or_else(|| unreachable!());
    uspeedo.sign(uspeedo.local_secret(), now_secs(), b"").query
}

/// The items the handler would write for `body`.
fn items_of(body: &[u8]) -> Vec<Item> {
    mailhooks::providers::by_name("uspeedo")
        .and_then(|p| p.parse(body).ok())
        .unwrap_or_default()
        .iter()
        .map(|e| codec::encode(e, now_secs() * 1000, None))
        .collect()
}

/// One request to the stack; returns its latency and the answer.
async fn request(
    http: &Http,
    addr: std::net::SocketAddr,
    method: &str,
    body: Vec<u8>,
) -> (Duration, Value) {
    let query = token_query();
    let request = hyper::Request::builder()
        .method(method)
        .uri(format!("http://{addr}/webhooks/uspeedo?{query}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_else(|e| panic!("{e}"));
    let sent = Instant::now();
    let answer = http
        .request(request)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let bytes = answer
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let took = sent.elapsed();
    (took, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

async fn bare_put(dynamo: &Dynamo, item: Item) -> Duration {
    let started = Instant::now();
    let put = dynamo
        .put_item()
        .table_name(TABLE)
        .set_item(Some(item))
        .condition_expression("attribute_not_exists(#pk)")
        .expression_attribute_names("#pk", PARTITION_KEY)
        .send()
        .await;
    let took = started.elapsed();
    assert!(put.is_ok(), "{put:?}");
    took
}

/// The least the store does for 100 new events: which exist, then write them all.
async fn bare_batch(dynamo: &Dynamo, items: Vec<Item>) -> Duration {
    let started = Instant::now();
    let keys: Vec<Item> = items
        .iter()
        .map(|i| {
            [PARTITION_KEY, SORT_KEY]
                .into_iter()
                .filter_map(|k| Some((k.to_owned(), i.get(k)?.clone())))
                .collect()
        })
        .collect();
    let get = dynamo
        .batch_get_item()
        .request_items(
            TABLE,
            KeysAndAttributes::builder()
                .set_keys(Some(keys))
                .projection_expression("#pk")
                .expression_attribute_names("#pk", PARTITION_KEY)
                .build()
                .unwrap_or_else(|e| panic!("{e}")),
        )
        .send()
        .await;
    assert!(get.is_ok(), "{get:?}");
    let writes = items.chunks(25).map(|chunk| {
        let statements = chunk
            .iter()
            .map(|i| insert::statement(TABLE, i.clone()).unwrap_or_else(|e| panic!("{e}")))
            .collect();
        dynamo
            .batch_execute_statement()
            .set_statements(Some(statements))
            .send()
    });
    for write in futures_util::future::join_all(writes).await {
        assert!(write.is_ok_and(|w| w.responses().iter().all(|r| r.error().is_none())));
    }
    started.elapsed()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

fn ratio(a: Duration, b: Duration) -> String {
    format!("{:.2}×", a.as_secs_f64() / b.as_secs_f64())
}

#[tokio::main(flavor = "current_thread")]
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
    let http: Http = Client::builder(TokioExecutor::new()).build_http();
    let dynamo = stack.client.clone();

    // Warm both paths (connections, caches) before timing.
    for i in 0..100 {
        request(
            &http,
            stack.addr,
            "POST",
            uspeedo_body(&format!("warm-{i}"), 1),
        )
        .await;
        let item = items_of(&uspeedo_body(&format!("warm-bare-{i}"), 1));
        bare_put(&dynamo, item.into_iter().next().unwrap_or_default()).await;
    }

    let (mut single, mut bare, mut probe, mut direct) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..ROUNDS {
        let (took, answer) = request(
            &http,
            stack.addr,
            "POST",
            uspeedo_body(&format!("one-{i}"), 1),
        )
        .await;
        assert_eq!(answer["stored"], 1, "{answer}");
        single.push(took);
        let item = items_of(&uspeedo_body(&format!("bare-{i}"), 1));
        bare.push(bare_put(&dynamo, item.into_iter().next().unwrap_or_default()).await);
        probe.push(request(&http, stack.addr, "GET", Vec::new()).await.0);
        let direct_request = lambda_http::http::Request::builder()
            .method("POST")
            .uri(format!("/webhooks/uspeedo?{}", token_query()))
            .body(lambda_http::Body::from(uspeedo_body(
                &format!("direct-{i}"),
                1,
            )))
            .unwrap_or_else(|e| panic!("{e}"));
        let started = Instant::now();
        let answer = stack.app.handle(direct_request).await;
        direct.push(started.elapsed());
        assert_eq!(answer.status(), 200);
    }

    let (mut batch, mut floor) = (Vec::new(), Vec::new());
    for i in 0..BATCH_ROUNDS {
        let (took, answer) = request(
            &http,
            stack.addr,
            "POST",
            uspeedo_body(&format!("batch-{i}"), 100),
        )
        .await;
        assert_eq!(answer["stored"], 100, "{answer}");
        batch.push(took);
        floor.push(bare_batch(&dynamo, items_of(&uspeedo_body(&format!("floor-{i}"), 100))).await);
    }

    let (single, bare, probe, direct) =
        (median(single), median(bare), median(probe), median(direct));
    let (batch, floor) = (median(batch), median(floor));
    let rows = [
        (
            "request, 1 event (HTTP in → conditional PutItem → answer): p50",
            ms(single),
            "",
        ),
        (
            "bare conditional PutItem of the same item, same SDK client: p50",
            ms(bare),
            "",
        ),
        (
            "GET probe (HTTP in → handler → answer, no storage): p50",
            ms(probe),
            "",
        ),
        (
            "1 event: request / bare PutItem",
            ratio(single, bare),
            "≤ 1.2×",
        ),
        (
            "handler called directly (no HTTP), 1 event: p50",
            ms(direct),
            "",
        ),
        (
            "1 event: handler called directly / bare PutItem",
            ratio(direct, bare),
            "",
        ),
        ("request, 100-event batch: p50", ms(batch), ""),
        (
            "100-event batch / one bare PutItem",
            ratio(batch, bare),
            "≤ 3×",
        ),
        (
            "bare BatchGetItem(100) + 4 parallel BatchExecuteStatement(25 INSERTs), same client: p50",
            ms(floor),
            "",
        ),
        (
            "100-event batch / that store floor",
            ratio(batch, floor),
            "",
        ),
    ];
    println!("| measure | value | target |");
    println!("|---|---|---|");
    for (measure, value, target) in rows {
        println!("| storage floor, in process: {measure} | {value} | {target} |");
    }
}
