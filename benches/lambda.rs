//! The real Lambda binary (`bootstrap`) under a minimal Lambda Runtime API on
//! loopback, storing into the in-process DynamoDB API. Measures:
//! - cold start: process start → ready for the first event (init), and the first
//!   invocation, with and without the init-phase connection warm-up (`WARM_UP`);
//! - overhead over the storage floor: warm invocation (event in → item stored →
//!   response) vs one bare PutItem of the same item from an SDK client, for one
//!   event and for a 100-event batch;
//! - peak RSS of the function process over 2,000 invocations;
//! - peak RSS of a fresh function process, every provider configured, after one
//!   4 MB body that fails authentication as an attacker's would (for every
//!   provider of `providers::ALL`: signed with a secret it does not have; for
//!   SES also the allowed topic with a tampered signature), against the
//!   bad-token case: nothing may be parsed in proportion to the body before
//!   authentication.
//!
//! `cargo bench --bench lambda` (`-- unauthenticated`: only the last part;
//! `-- write_paths`: only the store's two write paths).
//! All traffic stays on 127.0.0.1; bounded counts.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::routing::{get, post};
use mailhooks::auth::AuthError;
use mailhooks::providers::{self, AuthScheme, Signed, ses};
use mailhooks::store::{codec, sdk, table};
use serde_json::{Value, json};
use tokio::sync::{Mutex, mpsc, oneshot};

const TABLE: &str = "mailhooks-bench";
const SECRET: &str = "bench-token";

/// Where an invocation's response goes: when it arrived and its body.
type Reply = oneshot::Sender<(Instant, Value)>;
/// One queued invocation: the event and where its response goes.
type Invocation = (Value, Reply);

/// The runtime API: hands out queued events, routes responses back.
#[derive(Default)]
struct Runtime {
    queue: Mutex<Option<mpsc::Receiver<Invocation>>>,
    waiting: Mutex<HashMap<String, Reply>>,
    ready: Mutex<Option<oneshot::Sender<Instant>>>,
    next_id: AtomicU64,
}

async fn next(State(rt): State<Arc<Runtime>>) -> (HeaderMap, String) {
    if let Some(ready) = rt.ready.lock().await.take() {
        let _ = ready.send(Instant::now());
    }
    // Only one function process polls at a time, so holding the lock while waiting is fine.
    let item = {
        let mut queue = rt.queue.lock().await;
        match queue.as_mut() {
            Some(queue) => queue.recv().await,
            None => None,
        }
    };
    let Some((event, reply)) = item else {
        // No more events: keep the function parked, as Lambda does between invocations.
        return std::future::pending().await;
    };
    let id = format!("req-{}", rt.next_id.fetch_add(1, Ordering::SeqCst));
    rt.waiting.lock().await.insert(id.clone(), reply);
    let mut headers = HeaderMap::new();
    let hv = |s: &str| HeaderValue::from_str(s).unwrap_or(HeaderValue::from_static(""));
    headers.insert("lambda-runtime-aws-request-id", hv(&id));
    headers.insert(
        "lambda-runtime-deadline-ms",
        hv(&(now_ms() + 30_000).to_string()),
    );
    headers.insert(
        "lambda-runtime-invoked-function-arn",
        hv("arn:aws:lambda:us-east-1:123456789012:function:mailhooks"),
    );
    (headers, event.to_string())
}

async fn respond(
    State(rt): State<Arc<Runtime>>,
    Path(id): Path<String>,
    body: Bytes,
) -> StatusCode {
    let at = Instant::now();
    if let Some(reply) = rt.waiting.lock().await.remove(&id) {
        let _ = reply.send((at, serde_json::from_slice(&body).unwrap_or(Value::Null)));
    }
    StatusCode::ACCEPTED
}

async fn failed(Path(id): Path<String>, body: Bytes) -> StatusCode {
    eprintln!("invocation {id} failed: {}", String::from_utf8_lossy(&body));
    StatusCode::ACCEPTED
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A running function process and the channel that feeds it events.
struct Function {
    child: std::process::Child,
    events: mpsc::Sender<Invocation>,
    init: Duration,
}

impl Function {
    async fn start(dynamodb_url: &str, warm_up: bool) -> Function {
        Function::start_with(dynamodb_url, warm_up, &[]).await
    }

    /// [`Function::start`] with `extra_env` set as well.
    async fn start_with(
        dynamodb_url: &str,
        warm_up: bool,
        extra_env: &[(String, String)],
    ) -> Function {
        let (events, queue) = mpsc::channel(1);
        let (ready_tx, ready_rx) = oneshot::channel();
        let rt = Arc::new(Runtime {
            queue: Mutex::new(Some(queue)),
            ready: Mutex::new(Some(ready_tx)),
            ..Runtime::default()
        });
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(respond),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(failed))
            .with_state(rt);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let api = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        let started = Instant::now();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_bootstrap"))
            .env_clear()
            .env("AWS_LAMBDA_RUNTIME_API", api.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", "mailhooks")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", "bench")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "bench")
            .env("AWS_SECRET_ACCESS_KEY", "bench")
            .env("AWS_ENDPOINT_URL_DYNAMODB", dynamodb_url)
            .env("TABLE_NAME", TABLE)
            .env("TENCENT_TOKENS", SECRET)
            .env("ENGAGELAB_APP_KEYS", SECRET)
            .env("USPEEDO_TOKENS", SECRET)
            .env("WARM_UP", warm_up.to_string())
            .envs(extra_env.iter().map(|(k, v)| (k, v)))
            // Production settings: the per-request log line (info) and the metrics lines are written.
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start bootstrap: {e}"));
        let ready = ready_rx.await.unwrap_or_else(|e| panic!("{e}"));
        Function {
            child,
            events,
            init: ready - started,
        }
    }

    /// Invokes once; returns the time from handing out the event to the response, and the answer body.
    async fn invoke(&self, event: Value) -> (Duration, Value) {
        let (tx, rx) = oneshot::channel();
        let sent = Instant::now();
        let _ = self.events.send((event, tx)).await;
        let (at, response) = rx.await.unwrap_or_else(|e| panic!("{e}"));
        let body: Value = response["body"]
            .as_str()
            .and_then(|b| serde_json::from_str(b).ok())
            .unwrap_or(Value::Null);
        (at - sent, body)
    }

    fn peak_rss_kb(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmHWM:"))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            })
            .unwrap_or(0)
    }
}

impl Drop for Function {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An API Gateway v2 event for uSpeedo carrying `n` unique events.
fn uspeedo_event(tag: &str, n: usize) -> Value {
    let items: Vec<Value> = (0..n)
        .map(|i| json!({"MsgId": format!("{tag}-{i}"), "Event": "deliver", "ReceiptTime": now_ms() / 1000,
                        "RecipientEmail": format!("u{i}@example.com"), "SessionNo": tag, "ReceiptCode": "0", "ReceiptDesc": "ok"}))
        .collect();
    json!({
        "version": "2.0", "routeKey": "POST /webhooks/{provider}", "rawPath": "/webhooks/uspeedo",
        "rawQueryString": format!("token={SECRET}"), "headers": {"content-type": "application/json"},
        "requestContext": {"accountId": "123456789012", "apiId": "bench", "domainName": "bench.example.com", "domainPrefix": "bench",
            "http": {"method": "POST", "path": "/webhooks/uspeedo", "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "bench"},
            "requestId": tag, "routeKey": "POST /webhooks/{provider}", "stage": "$default", "time": "22/Nov/2026:10:15:30 +0000", "timeEpoch": now_ms()},
        "body": json!({"MsgType": 2, "Data": items}).to_string(),
        "isBase64Encoded": false
    })
}

/// An API Gateway v2 POST of `request` (query, headers, body) to `provider`.
fn post_event(provider: &str, request: &Signed) -> Value {
    let mut header_map = serde_json::Map::new();
    header_map.insert("content-type".into(), json!("application/json"));
    for (name, value) in &request.headers {
        header_map.insert(name.to_ascii_lowercase(), json!(value));
    }
    let body = std::str::from_utf8(&request.body)
        .unwrap_or_else(|e| panic!("{provider}: the signed body is not UTF-8: {e}"));
    let path = format!("/webhooks/{provider}");
    json!({
        "version": "2.0", "routeKey": "POST /webhooks/{provider}", "rawPath": path,
        "rawQueryString": request.query, "headers": header_map,
        "requestContext": {"accountId": "123456789012", "apiId": "bench", "domainName": "bench.example.com", "domainPrefix": "bench",
            "http": {"method": "POST", "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "bench"},
            "requestId": "unauthenticated", "routeKey": "POST /webhooks/{provider}", "stage": "$default", "time": "22/Nov/2026:10:15:30 +0000", "timeEpoch": now_ms()},
        "body": body,
        "isBase64Encoded": false
    })
}

/// The environment that configures every provider as a deployment would: its
/// local secret, the URL it signs (Mandrill), and for SES the directory
/// holding the development certificate, so a development-signed envelope from
/// an allowed topic reaches RSA verification.
fn every_provider_configured() -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = providers::ALL
        .iter()
        .map(|p| (p.secrets_env().to_owned(), p.local_secret().to_owned()))
        .collect();
    env.extend(
        providers::ALL
            .iter()
            .filter_map(|p| p.signed_url())
            .map(|url| (url.env.to_owned(), url.local.to_owned())),
    );
    let certificates = ses::dev::temporary_certificate_dir()
        .unwrap_or_else(|e| panic!("cannot write the development certificate: {e}"));
    env.push((
        "SNS_CERTIFICATES_DIR".to_owned(),
        certificates.to_string_lossy().into_owned(),
    ));
    env
}

/// Peak RSS of a fresh function process (peak RSS only grows) after `event`,
/// refused 401 with `code` (so each row fails where it says it does).
async fn peak_rss_after_refusal(dynamodb_url: &str, event: Value, code: &str) -> u64 {
    let function = Function::start_with(dynamodb_url, true, &every_provider_configured()).await;
    let (_, body) = function.invoke(event).await;
    assert_eq!(body["code"], 401, "{body}");
    assert_eq!(body["error"], code, "{body}");
    function.peak_rss_kb()
}

/// The size of every unauthenticated body sent: 4 MB, within 1%. Decimal on
/// purpose: every body stays under 4 MiB, because a body just over a power of
/// two makes the runtime's JSON decoding of the event double a buffer once
/// more (a first run with 4 MiB ± 1% put Mailgun, whose wrapped body was
/// 200 bytes over, 4 MB above the rest for that reason alone).
const BIG: usize = 4_000_000;

/// A valid JSON array of event-like objects of about `size` bytes: quotes,
/// commas and brackets as a real body has them (an SNS envelope escapes the
/// quotes, a form body percent-encodes the punctuation).
fn big_json(size: usize) -> Vec<u8> {
    let mut out = String::with_capacity(size + 128);
    out.push('[');
    let mut i = 0u64;
    while out.len() < size.saturating_sub(80) {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&format!(
            r#"{{"event":"delivered","email":"u{i:07}@example.com","id":"m{i:07}"}}"#
        ));
        i += 1;
    }
    out.push(']');
    out.into_bytes()
}

/// An attacker's request: `sign` (the provider's signing with a key it does
/// not have) over a JSON body sized so that the body SENT is [`BIG`] bytes
/// within 1% (a provider that wraps or encodes the body inflates it).
fn attacker_request(sign: &dyn Fn(&[u8]) -> Signed) -> Signed {
    let mut size = BIG;
    for _ in 0..4 {
        let signed = sign(&big_json(size));
        let sent = signed.body.len();
        if sent.abs_diff(BIG) * 100 <= BIG {
            return signed;
        }
        size = (size as f64 * BIG as f64 / sent as f64) as usize;
    }
    panic!("cannot size the body to {BIG} bytes")
}

/// An SES envelope from the ALLOWED topic, development-signed, with its
/// `Signature` altered: it passes every check before RSA verification (topic,
/// certificate URL, freshness, certificate), the worst an attacker can reach.
fn tampered_envelope(signed: Signed) -> Signed {
    let mut envelope: serde_json::Map<String, Value> = serde_json::from_slice(&signed.body)
        .unwrap_or_else(|e| panic!("the SES envelope is not a JSON object: {e}"));
    let Some(Value::String(signature)) = envelope.get_mut("Signature") else {
        panic!("the SES envelope has no Signature")
    };
    let first = if signature.starts_with('A') { "B" } else { "A" };
    signature.replace_range(..1, first);
    Signed {
        body: serde_json::to_vec(&envelope).unwrap_or_else(|e| panic!("{e}")),
        ..signed
    }
}

/// Makes a provider's request for a given body.
type MakeRequest = Box<dyn Fn(&[u8]) -> Signed>;

/// One unauthenticated case: what the row says, how the attacker's request
/// is made for a given body, and the 401 code it must get.
struct Refusal {
    provider: &'static str,
    case: &'static str,
    request: MakeRequest,
    code: &'static str,
}

/// For every provider, the request an attacker without its secret sends; for
/// SES two: the topic not allowed (refused at the allow-list), and the allowed
/// topic with a tampered signature (the worse case).
fn refusals() -> Vec<Refusal> {
    const WRONG: &str = "wrong-secret-of-the-attacker";
    let now = now_ms() / 1000;
    let mut out = Vec::new();
    for &provider in providers::ALL {
        let scheme = provider.scheme();
        let wrong = |case: &'static str| Refusal {
            provider: provider.name(),
            case,
            request: Box::new(move |body| provider.sign(WRONG, now, body)),
            code: scheme.bad_code(),
        };
        match scheme {
            AuthScheme::Token => out.push(wrong("wrong token")),
            AuthScheme::SignedHeaders { .. } => {
                out.push(wrong("wrong key, fresh timestamp"));
            }
            AuthScheme::SignedBody { .. } => {
                out.push(wrong("in-body signature with a wrong key, fresh timestamp"));
            }
            AuthScheme::UntimedSignature { .. } => {
                out.push(wrong("form body, wrong key, the configured URL"));
            }
            AuthScheme::SnsEnvelope => {
                out.push(Refusal {
                    provider: provider.name(),
                    case: "allowed topic, tampered signature (reaches RSA verification: the worse case)",
                    request: Box::new(move |body| {
                        tampered_envelope(provider.sign(provider.local_secret(), now, body))
                    }),
                    code: AuthError::BadSignature.code(),
                });
                out.push(wrong("topic not allowed (refused at the allow-list)"));
            }
        }
    }
    out
}

/// Fresh processes per unauthenticated case. One process's peak RSS lands on
/// one of two levels about 2 MB apart from run to run (allocator timing), so
/// each case runs five times and compares its lowest peak: what the work
/// needs, without the luck of the draw.
const ROUNDS: usize = 5;

/// Peak RSS (KB) of [`ROUNDS`] fresh processes refusing `request`, sorted.
async fn peak_rss_rounds(
    dynamodb_url: &str,
    provider: &str,
    request: &Signed,
    code: &str,
) -> Vec<u64> {
    let mut kbs = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let event = post_event(provider, request);
        kbs.push(peak_rss_after_refusal(dynamodb_url, event, code).await);
    }
    kbs.sort_unstable();
    kbs
}

/// "lowest MB (median, highest)" of sorted KB figures.
fn lowest_median_highest(kbs: &[u64]) -> String {
    let mb = |kb: u64| kb as f64 / 1024.0;
    format!(
        "{:.1} MB (median {:.1}, highest {:.1})",
        mb(kbs[0]),
        mb(kbs[kbs.len() / 2]),
        mb(kbs[kbs.len() - 1])
    )
}

/// Peak RSS after one 4 MB unauthenticated body per provider, against the
/// bad-token case (tencent, wrong token), and against the same provider's
/// refusal of a 3-byte body (what the provider's code costs whatever the size).
async fn unauthenticated_rows(dynamodb_url: &str) -> Vec<(String, String, &'static str)> {
    let mb = |kb: u64| kb as f64 / 1024.0;
    let lowest = |kbs: &[u64]| kbs[0];
    let mut measured = Vec::new();
    for refusal in refusals() {
        let small = (refusal.request)(b"[0]");
        let big = attacker_request(&refusal.request);
        let small_kbs = peak_rss_rounds(dynamodb_url, refusal.provider, &small, refusal.code).await;
        let big_kbs = peak_rss_rounds(dynamodb_url, refusal.provider, &big, refusal.code).await;
        measured.push((refusal, big.body.len(), lowest(&small_kbs), big_kbs));
    }
    let baseline = measured
        .iter()
        .find(|(r, ..)| r.provider == "tencent")
        .map(|(.., kbs)| lowest(kbs))
        .unwrap_or_else(|| panic!("no tencent row"));
    let mut rows = Vec::new();
    for (refusal, sent, small, kbs) in measured {
        let label = format!(
            "Lambda: peak RSS after a 4 MB unauthenticated body ({sent} bytes sent), {}, {} → {}",
            refusal.provider, refusal.case, refusal.code
        );
        let big = lowest(&kbs);
        let value = format!(
            "{}; lowest {:+.1} MB vs the baseline; 3-byte body: {:.1} MB (lowest)",
            lowest_median_highest(&kbs),
            mb(big) - mb(baseline),
            mb(small)
        );
        let label = if refusal.provider == "tencent" {
            format!("{label} (the bad-token baseline)")
        } else {
            label
        };
        rows.push((label, value, ""));
    }
    rows
}

/// Prints the measurement table.
fn print_rows(rows: Vec<(String, String, &str)>) {
    println!("| measure | value | target |");
    println!("|---|---|---|");
    for (measure, value, target) in rows {
        println!("| {measure} | {value} | {target} |");
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn p99(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[((v.len() - 1) as f64 * 0.99) as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// One uSpeedo event, the template of the floor and write-path rows.
fn floor_event() -> mailhooks::EmailEvent {
    mailhooks::providers::by_name("uspeedo")
        .and_then(|p| {
            p.parse(uspeedo_event("floor", 1)["body"].as_str()?.as_bytes())
                .ok()
        })
        .and_then(|mut e| e.pop())
        .unwrap_or_else(|| panic!("a floor event"))
}

/// The two write paths of the store, on the same 100 and 500 events: new, then
/// all duplicates.
async fn write_path_rows(
    client: &aws_sdk_dynamodb::Client,
    template: &mailhooks::EmailEvent,
) -> Vec<(String, String, &'static str)> {
    let mut rows = Vec::new();
    let store = mailhooks::store::DynamoStore::new(client.clone(), TABLE, None);
    for (label, batch_path) in [
        ("conditional PutItem each, 16 in flight", false),
        ("BatchGetItem + conditional PutItem, 64 in flight", true),
    ] {
        for (size, rounds) in [(100, 20), (500, 8)] {
            let (mut fresh, mut again) = (Vec::new(), Vec::new());
            for round in 0..rounds {
                let events: Vec<_> = (0..size)
                    .map(|i| {
                        let mut e = template.clone();
                        e.message_id = format!("path-{batch_path}-{size}-{round}-{i}");
                        e
                    })
                    .collect();
                for times in [&mut fresh, &mut again] {
                    let started = Instant::now();
                    let outcome = if batch_path {
                        store.put_batch(&events, now_ms()).await
                    } else {
                        store.put_each(&events, now_ms()).await
                    };
                    times.push(started.elapsed());
                    assert!(outcome.is_ok());
                }
            }
            rows.push((
                format!("write paths: {size} new events, {label}"),
                ms(median(fresh)),
                "",
            ));
            rows.push((
                format!("write paths: the same {size} again (duplicates), {label}"),
                ms(median(again)),
                "",
            ));
        }
    }
    rows
}

#[tokio::main]
async fn main() {
    let db = dynoxide::Database::memory().unwrap_or_else(|e| panic!("{e}"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let dynamodb_url = format!(
        "http://{}",
        listener.local_addr().unwrap_or_else(|e| panic!("{e}"))
    );
    tokio::spawn(dynoxide::server::serve_on(listener, db));
    let client = sdk::local_client(&dynamodb_url, Duration::from_secs(10));
    table::create_table(&client, TABLE)
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    if std::env::args().any(|arg| arg == "write_paths") {
        print_rows(write_path_rows(&client, &floor_event()).await);
        return;
    }
    if std::env::args().any(|arg| arg == "unauthenticated") {
        print_rows(unauthenticated_rows(&dynamodb_url).await);
        return;
    }

    // Cold starts, with and without the warm-up.
    let mut rows = Vec::new();
    for warm_up in [true, false] {
        let (mut inits, mut firsts) = (Vec::new(), Vec::new());
        for round in 0..10 {
            let function = Function::start(&dynamodb_url, warm_up).await;
            let (first, body) = function
                .invoke(uspeedo_event(&format!("cold-{warm_up}-{round}"), 1))
                .await;
            assert_eq!(body["stored"], 1, "{body}");
            inits.push(function.init);
            firsts.push(first);
        }
        let label = if warm_up { "with" } else { "without" };
        rows.push((
            format!("Lambda: cold start init (process start → ready), {label} warm-up"),
            ms(median(inits)),
            "< 20 ms",
        ));
        rows.push((
            format!("Lambda: first invocation after a cold start, {label} warm-up"),
            ms(median(firsts)),
            "",
        ));
    }

    // Warm invocations vs the storage floor, then memory under sustained load.
    let function = Function::start(&dynamodb_url, true).await;
    for i in 0..50 {
        function
            .invoke(uspeedo_event(&format!("warmup-{i}"), 1))
            .await;
    }
    let mut single = Vec::new();
    for i in 0..1000 {
        single.push(
            function
                .invoke(uspeedo_event(&format!("warm-{i}"), 1))
                .await
                .0,
        );
    }
    let mut probes = Vec::new();
    for _ in 0..1000 {
        let mut probe = uspeedo_event("probe", 0);
        probe["requestContext"]["http"]["method"] = json!("GET");
        probes.push(function.invoke(probe).await.0);
    }
    let mut batch = Vec::new();
    for i in 0..50 {
        let (t, body) = function
            .invoke(uspeedo_event(&format!("batch-{i}"), 100))
            .await;
        assert_eq!(body["stored"], 100, "{body}");
        batch.push(t);
    }
    for i in 0..950 {
        function
            .invoke(uspeedo_event(&format!("load-{i}"), 1 + i % 20))
            .await;
    }
    let rss_kb = function.peak_rss_kb();

    let template = floor_event();
    let mut bare = Vec::new();
    for i in 0..1000 {
        let mut event = template.clone();
        event.message_id = format!("floor-{i}");
        let item = codec::encode(&event, now_ms(), None);
        let started = Instant::now();
        let put = client
            .put_item()
            .table_name(TABLE)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(message_id)")
            .send()
            .await;
        bare.push(started.elapsed());
        assert!(put.is_ok());
    }
    let (single_m, bare_m, batch_m) = (median(single.clone()), median(bare), median(batch));
    rows.push((
        "Lambda: warm invocation, 1 event (event in → stored → response): p50 / p99".into(),
        format!("{} / {}", ms(single_m), ms(p99(single))),
        "",
    ));
    rows.push((
        "Lambda: warm invocation without storage (GET probe: runtime API + handler): p50".into(),
        ms(median(probes)),
        "",
    ));
    rows.push((
        "Lambda: bare conditional PutItem of the same item from the bench process: p50".into(),
        ms(bare_m),
        "",
    ));
    rows.push((
        "Lambda: warm invocation / bare PutItem, 1 event".into(),
        format!("{:.2}×", single_m.as_secs_f64() / bare_m.as_secs_f64()),
        "≤ 1.2×",
    ));
    rows.push((
        "Lambda: warm invocation, 100-event batch: p50".into(),
        ms(batch_m),
        "",
    ));
    rows.push((
        "Lambda: 100-event batch / one bare PutItem".into(),
        format!("{:.2}×", batch_m.as_secs_f64() / bare_m.as_secs_f64()),
        "≤ 3×",
    ));
    rows.push((
        "Lambda: peak RSS of the function over 2,000 invocations".into(),
        format!("{:.1} MB", rss_kb as f64 / 1024.0),
        "< 32 MB",
    ));

    rows.extend(write_path_rows(&client, &template).await);
    rows.extend(unauthenticated_rows(&dynamodb_url).await);
    print_rows(rows);
}
