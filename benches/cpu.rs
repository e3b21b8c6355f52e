//! CPU per event: raw bytes in → authenticated → normalized → DynamoDB item
//! built, per provider and event type, for a typical event, batches of 1 to 1000
//! uSpeedo events, EngageLab `target` fan-outs to 100 and 8,000 recipients, a
//! 240 KB adversarial subject and a 1 MB EngageLab `route`. Prints ns/event and MB/s.
//!
//! `cargo bench --bench cpu [-- NAME...]` (the median of 15 timed rounds after a
//! warm-up; with names, only the cases whose label contains one of them).

use std::hint::black_box;
use std::time::{Duration, Instant};

use mailhooks::auth::{FixedClock, Freshness};
use mailhooks::metrics::{RequestMetrics, emf_lines};
use mailhooks::providers::{self, AuthContext, Inbound};
use mailhooks::store::codec;
use serde_json::{Value, json};

// The Lambda binary's allocator (src/main.rs), so the figures are the function's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const NOW_SECS: i64 = 1_795_342_530;
const SECRET: &str = "bench-secret";

/// One request: its provider, headers, query and body.
struct Case {
    label: String,
    provider: &'static str,
    headers: Vec<(String, String)>,
    query: Vec<(String, String)>,
    body: Vec<u8>,
    events: usize,
}

fn case(label: impl Into<String>, provider: &'static str, body: Vec<u8>) -> Case {
    let signed = providers::by_name(provider)
        .map(|p| p.sign(SECRET, NOW_SECS, &body))
        .unwrap_or_default();
    let (query, headers) = (signed.query, signed.headers);
    // The body as sent: a provider that signs inside the body wraps it.
    let body = if signed.body.is_empty() {
        body
    } else {
        signed.body
    };
    let headers = headers
        .into_iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect();
    let query = form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let events = providers::by_name(provider).map_or(0, |p| p.parse(&body).map_or(0, |e| e.len()));
    Case {
        label: label.into(),
        provider,
        headers,
        query,
        body,
        events,
    }
}

/// The whole CPU path of one request; returns the item count (kept alive).
fn process(case: &Case) -> usize {
    let Some(provider) = providers::by_name(case.provider) else {
        return 0;
    };
    let secrets = [SECRET.to_owned()];
    let clock = FixedClock(NOW_SECS * 1000);
    let ctx = AuthContext {
        secrets: &secrets,
        freshness: Freshness::Within(300),
        clock: &clock,
        certificates_dir: None,
        webhook_urls: &[],
    };
    let inbound = Inbound {
        headers: &case.headers,
        query: &case.query,
        body: &case.body,
    };
    if provider.authenticate(&inbound, &ctx).is_err() {
        return 0;
    }
    let Ok(events) = provider.parse(&case.body) else {
        return 0;
    };
    events
        .iter()
        .map(|e| black_box(codec::encode(e, NOW_SECS * 1000, Some(30))).len())
        .sum()
}

/// Median time of one `process` call over 15 rounds.
fn measure(case: &Case) -> Duration {
    let warm = Instant::now();
    let mut per_round = 0u32;
    while warm.elapsed() < Duration::from_millis(200) {
        black_box(process(case));
        per_round += 1;
    }
    let per_round = (per_round / 4).max(1);
    let mut rounds: Vec<Duration> = (0..15)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..per_round {
                black_box(process(case));
            }
            start.elapsed() / per_round
        })
        .collect();
    rounds.sort();
    rounds[rounds.len() / 2]
}

fn fixture(provider: &str, name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/{provider}/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap_or_default()
}

fn uspeedo_batch(n: usize) -> Vec<u8> {
    let events = ["request", "deliver", "open", "click"];
    let items: Vec<Value> = (0..n)
        .map(|i| json!({"SessionNo": "bench", "MsgId": format!("msg-{}", i / 4), "Event": events[i % 4], "ReceiptTime": NOW_SECS,
                        "ReceiptResult": events[i % 4], "ReceiptCode": "0", "ReceiptDesc": "ok",
                        "RecipientEmail": format!("user{}@example.com", i / 4), "ClientIp": "198.51.100.7"}))
        .collect();
    json!({"MsgType": 2, "Data": items})
        .to_string()
        .into_bytes()
}

fn route_of(bytes: usize) -> Vec<u8> {
    let mut route: Value =
        serde_json::from_slice(&fixture("engagelab", "route")).unwrap_or(Value::Null);
    route["response"]["response_data"]["raw_message"] =
        json!("Received: from mx.example.com; ".repeat(bytes / 31));
    route.to_string().into_bytes()
}

/// An EngageLab `target` callback listing `n` recipients (fan-out: one event each).
fn target_of(n: usize) -> Vec<u8> {
    let mut target: Value =
        serde_json::from_slice(&fixture("engagelab", "target")).unwrap_or(Value::Null);
    let data = &mut target["status"]["status_data"];
    data["email_ids"] = (0..n)
        .map(|i| json!(format!("bench-request{i}$user{i}@example.com")))
        .collect();
    data["tos"] = (0..n)
        .map(|i| json!(format!("user{i}@example.com")))
        .collect();
    target.to_string().into_bytes()
}

/// An EngageLab `sent` event whose subject is `bytes` of unterminated encoded-word starts.
fn subject_of(bytes: usize) -> Vec<u8> {
    let mut sent: Value =
        serde_json::from_slice(&fixture("engagelab", "sent")).unwrap_or(Value::Null);
    sent["subject"] = json!("=?x".repeat(bytes / 3));
    sent.to_string().into_bytes()
}

fn main() {
    let mut cases = Vec::new();
    for provider in ["tencent", "engagelab", "uspeedo"] {
        let dir = format!("{}/tests/fixtures/{provider}", env!("CARGO_MANIFEST_DIR"));
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .map(|d| {
                d.filter_map(|e| {
                    e.ok()?
                        .file_name()
                        .to_str()?
                        .strip_suffix(".json")
                        .map(str::to_owned)
                })
                .collect()
            })
            .unwrap_or_default();
        names.sort();
        for name in names {
            cases.push(case(
                format!("{provider}/{name}"),
                provider,
                fixture(provider, &name),
            ));
        }
    }
    for n in [1, 10, 100, 1000] {
        cases.push(case(
            format!("uspeedo batch of {n}"),
            "uspeedo",
            uspeedo_batch(n),
        ));
    }
    for n in [100, 8_000] {
        cases.push(case(
            format!("engagelab target fan-out to {n}"),
            "engagelab",
            target_of(n),
        ));
    }
    cases.push(case(
        "engagelab subject of 240 KB `=?x`",
        "engagelab",
        subject_of(240_000),
    ));
    cases.push(case(
        "engagelab route, 1 MB",
        "engagelab",
        route_of(1_000_000),
    ));

    // `cargo bench --bench cpu -- engagelab/open` measures only the cases containing that text.
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    cases.retain(|c| filter.is_empty() || filter.iter().any(|f| c.label.contains(f.as_str())));

    println!("| measure | value | target |");
    println!("|---|---|---|");
    for case in &cases {
        assert!(process(case) > 0, "{} is not accepted", case.label);
        let t = measure(case);
        let per_event = t / case.events.max(1) as u32;
        let mb_s = case.body.len() as f64 / t.as_secs_f64() / 1e6;
        let target = if case.label.contains("1 MB") || case.label.contains("240 KB") {
            ""
        } else if case.label.contains("batch of") || case.label.contains("fan-out") {
            "flat per event"
        } else {
            "< 5 µs per event"
        };
        println!(
            "| CPU per event: {} ({} B, {} event{}) | {:.2} µs per event, {:.0} MB/s | {target} |",
            case.label,
            case.body.len(),
            case.events,
            if case.events == 1 { "" } else { "s" },
            per_event.as_secs_f64() * 1e6,
            mb_s
        );
    }
    // The per-request metrics output (CloudWatch EMF) of a stored 1-event request.
    let metrics = RequestMetrics {
        provider: "uspeedo".into(),
        status: 200,
        received: 1,
        stored: 1,
        stored_by_type: [(mailhooks::EventType::Delivered, 1)].into(),
        latency_ms: 4.2,
        ..RequestMetrics::default()
    };
    let rounds = 20_000u32;
    let started = Instant::now();
    for _ in 0..rounds {
        black_box(emf_lines(black_box(&metrics), NOW_SECS * 1000));
    }
    println!(
        "| CPU per request: metrics lines (EMF) of a stored 1-event request | {:.2} µs | |",
        (started.elapsed() / rounds).as_secs_f64() * 1e6
    );
}
