//! Load test: many concurrent requests of all three providers — including large
//! uSpeedo batches and exact duplicates — against the local stack (the handler
//! over HTTP, the embedded DynamoDB API), all on loopback. A 5xx is retried as a
//! provider would; afterwards the table must hold exactly the expected items.
//!
//! `cargo bench --features local --bench load` (env LOAD_REQUESTS, default 2000;
//! LOAD_CONCURRENCY, default 32). Bounded: a fixed request count, 5 retries per
//! request, and a 5-minute deadline.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use mailhooks::local_server::{LocalOptions, start};
use serde_json::{Value, json};
use tokio::sync::Semaphore;

const TABLE: &str = "mailhooks-load";
const DEADLINE: Duration = Duration::from_secs(300);
const MAX_TRIES: usize = 5;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn fixture(provider: &str, name: &str) -> Value {
    let path = format!(
        "{}/tests/fixtures/{provider}/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap_or_default()).unwrap_or(Value::Null)
}

/// The `i`-th request of the workload: (provider, body). Every 10th repeats an
/// earlier body exactly; every 50th is a 1000-event uSpeedo batch.
fn workload(count: usize, now_secs: i64) -> Vec<(&'static str, Vec<u8>)> {
    let mut requests: Vec<(&'static str, Vec<u8>)> = Vec::with_capacity(count);
    for i in 0..count {
        let request = if i % 10 == 9 {
            requests[i - 5].clone()
        } else if i % 50 == 0 {
            ("uspeedo", uspeedo_batch(i, 1000, now_secs))
        } else {
            match i % 10 {
                0..=3 => {
                    let names = ["delivered", "open", "click", "bounce"];
                    let mut body = fixture("tencent", names[i % 4]);
                    body["bulkId"] = json!(format!("load-tencent-{i}"));
                    body["email"] = json!(format!("t{i}@example.com"));
                    body["timestamp"] = json!(now_secs);
                    ("tencent", body.to_string().into_bytes())
                }
                4..=6 => {
                    let names = ["delivered", "open", "click"];
                    let mut body = fixture("engagelab", names[i % 3]);
                    let email_id = format!("load-engagelab-{i}0$e{i}@example.com");
                    let data = if body.get("status").is_some() {
                        "/status/status_data"
                    } else {
                        "/response/response_data"
                    };
                    if let Some(slot) = body.pointer_mut(data) {
                        slot["email_id"] = json!(email_id);
                    }
                    body["message_id"] = json!(email_id);
                    body["itime"] = json!(now_secs * 1000 + i as i64);
                    ("engagelab", body.to_string().into_bytes())
                }
                _ => ("uspeedo", uspeedo_batch(i, 100, now_secs)),
            }
        };
        requests.push(request);
    }
    requests
}

fn uspeedo_batch(i: usize, size: usize, now_secs: i64) -> Vec<u8> {
    let events = ["request", "deliver", "open", "click"];
    let items: Vec<Value> = (0..size)
        .map(|n| {
            json!({"SessionNo": format!("load-{i}"), "MsgId": format!("load-uspeedo-{i}-{}", n / 4),
                   "Event": events[n % 4], "ReceiptTime": now_secs, "RecipientEmail": format!("u{i}-{}@example.com", n / 4)})
        })
        .collect();
    json!({"MsgType": 2, "Data": items})
        .to_string()
        .into_bytes()
}

/// The keys every accepted event of the workload must have in the table.
fn expected_keys(requests: &[(&'static str, Vec<u8>)]) -> HashSet<(String, String)> {
    let mut keys = HashSet::new();
    for (provider, body) in requests {
        if let Some(p) = mailhooks::providers::by_name(provider) {
            for event in p.parse(body).unwrap_or_default() {
                keys.insert((
                    event.message_id.clone(),
                    mailhooks::store::codec::sort_key(&event),
                ));
            }
        }
    }
    keys
}

struct Outcome {
    latencies_ms: Vec<f64>,
    retries: usize,
    failed: usize,
    duplicates_reported: u64,
}

#[tokio::main]
async fn main() {
    let count = env_or("LOAD_REQUESTS", 2000);
    let concurrency = env_or("LOAD_CONCURRENCY", 32);
    let options = LocalOptions {
        port: 0,
        dynamodb_port: 0,
        db: None,
        table: TABLE.into(),
    };
    let stack = match start(&options).await {
        Ok(stack) => stack,
        Err(e) => return eprintln!("cannot start the local stack: {e}"),
    };
    let now_secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let requests = workload(count, now_secs);
    let expected = expected_keys(&requests);
    let events: usize = requests
        .iter()
        .map(|(p, b)| {
            mailhooks::providers::by_name(p).map_or(0, |p| p.parse(b).map_or(0, |e| e.len()))
        })
        .sum();
    let bytes: usize = requests.iter().map(|(_, b)| b.len()).sum();
    println!(
        "load: {count} requests ({events} events, {:.1} MB, {} unique events) at concurrency {concurrency} against {}",
        bytes as f64 / 1e6,
        expected.len(),
        stack.addr
    );

    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let gate = Arc::new(Semaphore::new(concurrency));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(count);
    for (provider, body) in requests {
        let permit = Arc::clone(&gate).acquire_owned().await;
        let client = client.clone();
        let addr = stack.addr;
        tasks.push(tokio::spawn(async move {
            let _permit = permit;
            send_with_retries(&client, addr, provider, body).await
        }));
    }
    let mut outcome = Outcome {
        latencies_ms: Vec::with_capacity(count),
        retries: 0,
        failed: 0,
        duplicates_reported: 0,
    };
    for task in tasks {
        match tokio::time::timeout(DEADLINE.saturating_sub(started.elapsed()), task).await {
            Ok(Ok((latencies, duplicates, ok))) => {
                outcome.retries += latencies.len().saturating_sub(1);
                outcome.latencies_ms.extend(latencies);
                outcome.duplicates_reported += duplicates;
                outcome.failed += usize::from(!ok);
            }
            _ => outcome.failed += 1,
        }
    }
    let elapsed = started.elapsed();
    let stored = count_items(&stack.client).await;
    report(count, events, elapsed, &mut outcome, expected.len(), stored);
    if stored != Some(expected.len()) || outcome.failed > 0 {
        std::process::exit(1);
    }
}

/// Posts one request, retrying a 5xx like a provider; returns each try's latency,
/// the duplicates the final answer reported, and whether it ended in a 200.
async fn send_with_retries(
    client: &Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
    addr: std::net::SocketAddr,
    provider: &'static str,
    body: Vec<u8>,
) -> (Vec<f64>, u64, bool) {
    let mut latencies = Vec::new();
    for _ in 0..MAX_TRIES {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let Some(esp) = mailhooks::providers::by_name(provider) else {
            break;
        };
        let mailhooks::providers::Signed {
            query,
            headers,
            body,
        } = esp.sign(esp.local_secret(), now, &body);
        let uri = if query.is_empty() {
            format!("http://{addr}/webhooks/{provider}")
        } else {
            format!("http://{addr}/webhooks/{provider}?{query}")
        };
        let mut request = hyper::Request::post(uri).header("content-type", "application/json");
        for (k, v) in &headers {
            request = request.header(k.as_str(), v.as_str());
        }
        let Ok(request) = request.body(Full::new(Bytes::from(body.clone()))) else {
            break;
        };
        let sent = Instant::now();
        let answer = client.request(request).await;
        latencies.push(sent.elapsed().as_secs_f64() * 1000.0);
        let Ok(answer) = answer else { continue };
        let status = answer.status().as_u16();
        let reply: Value = answer
            .into_body()
            .collect()
            .await
            .map(|b| serde_json::from_slice(&b.to_bytes()).unwrap_or(Value::Null))
            .unwrap_or(Value::Null);
        if status == 200 {
            return (latencies, reply["duplicates"].as_u64().unwrap_or(0), true);
        }
        if status < 500 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    (latencies, 0, false)
}

async fn count_items(client: &aws_sdk_dynamodb::Client) -> Option<usize> {
    let mut total = 0usize;
    let mut start = None;
    loop {
        let page = client
            .scan()
            .table_name(TABLE)
            .select(aws_sdk_dynamodb::types::Select::Count)
            .set_exclusive_start_key(start)
            .send()
            .await
            .ok()?;
        total += page.count() as usize;
        start = page.last_evaluated_key().cloned();
        if start.is_none() {
            return Some(total);
        }
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn report(
    count: usize,
    events: usize,
    elapsed: Duration,
    outcome: &mut Outcome,
    expected: usize,
    stored: Option<usize>,
) {
    outcome.latencies_ms.sort_by(f64::total_cmp);
    let secs = elapsed.as_secs_f64();
    let count_check = format!(
        "expected {expected} unique events, table holds {} — {}",
        stored.map_or("?".into(), |s| s.to_string()),
        if stored == Some(expected) {
            "OK"
        } else {
            "MISMATCH"
        }
    );
    let rows = [
        ("requests".to_owned(), format!("{count} in {secs:.1} s"), ""),
        (
            "throughput".to_owned(),
            format!(
                "{:.0} requests/s, {:.0} events/s",
                count as f64 / secs,
                events as f64 / secs
            ),
            "",
        ),
        (
            "latency per try".to_owned(),
            format!(
                "p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
                percentile(&outcome.latencies_ms, 0.5),
                percentile(&outcome.latencies_ms, 0.99),
                percentile(&outcome.latencies_ms, 1.0)
            ),
            "",
        ),
        (
            "5xx answers retried".to_owned(),
            outcome.retries.to_string(),
            "",
        ),
        (
            "requests never accepted".to_owned(),
            outcome.failed.to_string(),
            "0",
        ),
        (
            "duplicates reported".to_owned(),
            outcome.duplicates_reported.to_string(),
            "",
        ),
        ("count check".to_owned(), count_check, "OK"),
    ];
    println!();
    println!("| measure | value | target |");
    println!("|---|---|---|");
    for (measure, value, target) in rows {
        println!("| load: {measure} | {value} | {target} |");
    }
}
