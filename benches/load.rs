//! Load test with a fault phase (issue 14 "Proof"): 10,000 requests over every
//! provider of `providers::ALL`, correctly signed as each ESP signs, posted over
//! HTTP to the handler served the way the local stack serves it, storing into
//! the embedded DynamoDB API through a fault proxy.
//!
//! The workload, fixed by the request index (so every run sends the same):
//! - every provider's fixtures (tests/fixtures/<name>/), each request's events
//!   moved to their own time and tagged with their own run id
//!   (`Provider::refresh_sample`), so they are new events;
//! - the batching ESPs (uSpeedo, SendGrid, Brevo, SparkPost, Mailjet, Mandrill)
//!   send batches of 1 to 25 events, every 20th 100 and every 40th their
//!   largest (1,000; Brevo 500);
//! - 10 % exact duplicates: an earlier request sent again, byte for byte;
//! - 5 % authenticated garbage: correctly signed bodies that do not parse (not
//!   JSON, wrong shape, empty), which the handler answers 200 and quarantines,
//!   one record per distinct body.
//!
//! Every request is signed before the clock starts (SES's RSA and SendGrid's
//! ECDSA signing would otherwise be timed) at one signing time, so the run must
//! end within the signature window (300 s): the deadline is 240 s. Once 40 % of
//! the requests are answered the store is throttled (every write refused as
//! `ProvisionedThroughputExceededException`) for 2 s, then down (every call
//! 503) for 3 s. The bench retries every 5xx and every connection error as a
//! provider would: exponential backoff, unbounded within the deadline.
//!
//! Afterwards a Scan of the table must hold exactly the expected keys: the
//! events the providers' `parse_each` makes of the distinct bodies (what the
//! handler runs), one quarantine record per distinct unparsed part, one replay
//! claim per distinct Mailgun token. Nothing lost, nothing doubled, every
//! request answered 200 with the counts its body implies. Printed: requests/s,
//! events/s, latency per try and per delivery (p50/p99), 5xx answers, and the
//! bench process's RSS (it serves the handler) sampled over the run.
//!
//! `cargo bench --features local --bench load` (env LOAD_REQUESTS, default
//! 10000; LOAD_CONCURRENCY, default 32). The table lives in a temporary SQLite
//! file (on /dev/shm where there is one), so the RSS is the handler's, the
//! client's and the workload's, not the table's.

#[allow(dead_code)] // the bench steers only some of the proxy's faults
#[path = "../tests/it/common/faults.rs"]
mod faults;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::types::AttributeValue;
use axum::extract::State;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use mailhooks::auth::SystemClock;
use mailhooks::local_server::local_config;
use mailhooks::providers::{AuthContext, Inbound, Provider};
use mailhooks::store::codec::{PARTITION_KEY, SORT_KEY};
use mailhooks::store::{DynamoStore, codec, quarantine, replay, sdk, table};
use mailhooks::{App, Config};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use faults::FaultyStore;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type HttpClient = Client<HttpConnector, Full<Bytes>>;

const TABLE: &str = "mailhooks-load";
/// Within the 300 s signature window of the requests signed at the start.
const DEADLINE: Duration = Duration::from_secs(240);
/// Share of the requests answered before the fault phase starts.
const FAULTS_AFTER: f64 = 0.4;
const THROTTLED_FOR: Duration = Duration::from_secs(2);
const DOWN_FOR: Duration = Duration::from_secs(3);
/// First and largest pause between tries of one request.
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// How often the RSS is sampled.
const RSS_EVERY: Duration = Duration::from_millis(200);

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

// ---------------------------------------------------------------------------
// The workload.

/// The largest batch a batching ESP is sent; `None` for one event per request.
fn largest_batch(provider: &str) -> Option<usize> {
    match provider {
        "uspeedo" | "sendgrid" | "sparkpost" | "mailjet" | "mandrill" => Some(1000),
        "brevo" => Some(500),
        _ => None,
    }
}

/// Events in the `n`-th batch of a batching ESP.
fn batch_size(n: usize, largest: usize) -> usize {
    match n % 40 {
        0 => largest,
        20 => 100.min(largest),
        _ => 1 + (n * 7) % 25,
    }
}

/// What a request is for the checks.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Events,
    Garbage,
    Duplicate,
}

/// One request as the ESP sends it, signed.
struct Request {
    provider: &'static dyn Provider,
    kind: Kind,
    query: String,
    headers: Vec<(String, String)>,
    body: Bytes,
}

/// What the handler must make of a request's body.
#[derive(Default, Clone, Copy)]
struct Implied {
    received: u64,
    quarantined: u64,
}

/// Every fixture of `provider`, parsed, in name order.
fn fixtures(provider: &str) -> Vec<Value> {
    let dir = format!("{}/tests/fixtures/{provider}", env!("CARGO_MANIFEST_DIR"));
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .map(|entries| entries.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    paths.retain(|p| p.extension().is_some_and(|e| e == "json"));
    paths.sort();
    paths
        .iter()
        .filter_map(|p| serde_json::from_slice(&std::fs::read(p).ok()?).ok())
        .collect()
}

/// The single events of a fixture: a batch's elements (uSpeedo's `Data`
/// items), or the fixture itself.
fn elements(provider: &str, fixture: Value) -> Vec<Value> {
    match (provider, fixture) {
        ("uspeedo", Value::Array(envelopes)) => envelopes
            .into_iter()
            .flat_map(|e| elements("uspeedo", e))
            .collect(),
        ("uspeedo", mut envelope) => match envelope.get_mut("Data").map(Value::take) {
            Some(Value::Array(items)) => items,
            _ => vec![envelope],
        },
        (_, Value::Array(items)) => items,
        (_, single) => vec![single],
    }
}

/// A body of `provider` carrying `events`: its batch shape, or the one event.
fn assemble(provider: &str, mut events: Vec<Value>) -> Value {
    match provider {
        "uspeedo" => json!({"MsgType": 2, "Data": events}),
        _ if largest_batch(provider).is_some() => Value::Array(events),
        _ => events.pop().unwrap_or(Value::Null),
    }
}

/// Signs `body` for `provider` as its ESP would post it to this server.
fn sign(provider: &'static dyn Provider, addr: SocketAddr, at: i64, body: &[u8]) -> Request {
    let url = format!("http://{addr}/webhooks/{}", provider.name());
    let signed = provider.sign_for_url(&url, provider.local_secret(), at, body);
    let mut headers = signed.headers;
    // JSON unless the signed request names its own type (Mandrill's form).
    if !headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
    {
        headers.push(("content-type".into(), "application/json".into()));
    }
    Request {
        provider,
        kind: Kind::Events,
        query: signed.query,
        headers,
        body: Bytes::from(signed.body),
    }
}

/// What the handler does with a request: its body parsed by `parse_each` (then
/// unkeyable events quarantined), its replay claims, and whether it is a
/// control request. The same calls, in the same order, as `App::handle`.
struct Reading {
    parsed: mailhooks::providers::Parsed,
    claims: Vec<String>,
    control: bool,
}

fn read(config: &Config, request: &Request) -> Reading {
    let headers: Vec<(String, String)> = request
        .headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
        .collect();
    let query: Vec<(String, String)> = form_urlencoded::parse(request.query.as_bytes())
        .into_owned()
        .collect();
    let inbound = Inbound {
        headers: &headers,
        query: &query,
        body: &request.body,
    };
    let name = request.provider.name();
    let ctx = AuthContext {
        secrets: config.secrets_for(name),
        freshness: config.freshness,
        clock: &SystemClock,
        certificates_dir: config.sns_certificates_dir.as_deref(),
        webhook_urls: config.webhook_urls_for(name),
    };
    let mut parsed = request.provider.parse_each(&inbound);
    codec::quarantine_unkeyable(inbound.body, &mut parsed);
    Reading {
        claims: (request.provider.replay_claim(&inbound, &ctx).iter())
            .map(replay::claim_key)
            .collect(),
        control: request.provider.control(&inbound).is_some(),
        parsed,
    }
}

/// The fixtures' events of one provider that normalize on their own, each as
/// a one-event body: what its requests are made of.
struct Pool {
    provider: &'static dyn Provider,
    events: Vec<Value>,
    batches_made: usize,
}

impl Pool {
    fn new(provider: &'static dyn Provider, config: &Config, addr: SocketAddr, at: i64) -> Pool {
        let name = provider.name();
        let events = fixtures(name)
            .into_iter()
            .flat_map(|f| elements(name, f))
            .filter(|event| {
                let body = assemble(name, vec![event.clone()]).to_string();
                let reading = read(config, &sign(provider, addr, at, body.as_bytes()));
                !reading.control
                    && !reading.parsed.events.is_empty()
                    && reading.parsed.unparsed.is_empty()
            })
            .collect();
        Pool {
            provider,
            events,
            batches_made: 0,
        }
    }

    /// The body of request `i`: a batch or one event, every event moved to its
    /// own time (the past, a millisecond apart) and tagged `load-<i>-<n>`.
    fn body(&mut self, i: usize, now_ms: i64) -> Vec<u8> {
        let name = self.provider.name();
        let size = largest_batch(name).map_or(1, |largest| batch_size(self.batches_made, largest));
        self.batches_made += 1;
        let events = (0..size)
            .map(|n| {
                let mut one =
                    assemble(name, vec![self.events[(i + n) % self.events.len()].clone()]);
                let at = now_ms - (i * 1000 + n) as i64;
                self.provider
                    .refresh_sample(&mut one, at, &format!("load-{i}-{n}"));
                elements(name, one).pop().unwrap_or(Value::Null)
            })
            .collect();
        assemble(name, events).to_string().into_bytes()
    }
}

/// Correctly signed bodies of `provider` that do not parse, for the `g`-th
/// garbage request: not JSON, a wrong shape, empty. A provider that signs
/// inside the body (Mailgun, SES) can only carry JSON; the first candidate the
/// handler would authenticate and quarantine whole is taken.
fn garbage(
    provider: &'static dyn Provider,
    g: usize,
    config: &Config,
    addr: SocketAddr,
    at: i64,
) -> Request {
    let candidates: [Vec<u8>; 4] = [
        format!("load garbage {g}: not JSON").into_bytes(),
        json!({"load_garbage": g}).to_string().into_bytes(),
        Vec::new(),
        json!({"load_garbage": g, "Data": "none", "event-data": g})
            .to_string()
            .into_bytes(),
    ];
    let in_body = provider.scheme().body_signature_field().is_some()
        || matches!(
            provider.scheme(),
            mailhooks::providers::AuthScheme::SignedBody { .. }
        );
    let start = (g / mailhooks::providers::ALL.len()) % 3;
    (0..candidates.len())
        .map(|k| &candidates[(start + k) % candidates.len()])
        .filter(|body| !in_body || serde_json::from_slice::<Value>(body).is_ok())
        .map(|body| sign(provider, addr, at, body))
        .find(|request| {
            let reading = read(config, request);
            !reading.control
                && reading.parsed.events.is_empty()
                && !reading.parsed.unparsed.is_empty()
        })
        .map(|mut request| {
            request.kind = Kind::Garbage;
            request
        })
        .unwrap_or_else(|| panic!("no garbage body of {} quarantines", provider.name()))
}

/// The whole workload: `count` requests, signed at `at`.
fn workload(count: usize, config: &Config, addr: SocketAddr, at: i64) -> Vec<Arc<Request>> {
    let now_ms = at * 1000;
    let mut pools: Vec<Pool> = mailhooks::providers::ALL
        .iter()
        .map(|p| Pool::new(*p, config, addr, at))
        .collect();
    for pool in &pools {
        assert!(
            !pool.events.is_empty(),
            "{}: no usable fixture",
            pool.provider.name()
        );
    }
    let (mut fresh, mut bad) = (0, 0);
    let mut requests: Vec<Arc<Request>> = Vec::with_capacity(count);
    for i in 0..count {
        let request = match i % 20 {
            // 10 %: an earlier request again, exactly.
            4 | 14 if i > 0 => {
                let earlier = &requests[(i * 7919) % i];
                Arc::new(Request {
                    provider: earlier.provider,
                    kind: Kind::Duplicate,
                    query: earlier.query.clone(),
                    headers: earlier.headers.clone(),
                    body: earlier.body.clone(),
                })
            }
            // 5 %: authenticated garbage.
            19 => {
                bad += 1;
                let provider = mailhooks::providers::ALL[bad % pools.len()];
                Arc::new(garbage(provider, bad, config, addr, at))
            }
            _ => {
                let pool = &mut pools[fresh % mailhooks::providers::ALL.len()];
                fresh += 1;
                let body = pool.body(i, now_ms);
                Arc::new(sign(pool.provider, addr, at, &body))
            }
        };
        requests.push(request);
    }
    requests
}

/// The keys the table must hold, and what each request's answer must say.
#[derive(Default)]
struct Expected {
    events: HashSet<(String, String)>,
    quarantine: HashSet<(String, String)>,
    claims: HashSet<String>,
    /// By request index.
    implied: Vec<Implied>,
    events_sent: u64,
}

fn expected(config: &Config, requests: &[Arc<Request>]) -> Expected {
    let mut expected = Expected::default();
    for request in requests {
        let reading = read(config, request);
        assert!(!reading.control, "a control request in the workload");
        let name = request.provider.name();
        for event in &reading.parsed.events {
            expected
                .events
                .insert((event.message_id.clone(), codec::sort_key(event)));
        }
        for part in &reading.parsed.unparsed {
            expected.quarantine.insert((
                quarantine::partition_key(name),
                quarantine::sort_key(&quarantine::record_id(&part.body)),
            ));
        }
        expected.claims.extend(reading.claims);
        let implied = Implied {
            received: reading.parsed.events.len() as u64,
            quarantined: reading.parsed.unparsed.len() as u64,
        };
        expected.events_sent += implied.received;
        expected.implied.push(implied);
    }
    expected
}

// ---------------------------------------------------------------------------
// The stack: the embedded store, the fault proxy, the handler over HTTP.

/// The stack under load, before and while it serves.
struct Stack {
    /// The handler's HTTP address.
    addr: SocketAddr,
    /// The local stack's configuration for that address.
    config: Config,
    /// Taken by [`Stack::serve`].
    listener: Option<TcpListener>,
    /// A client of the store without the proxy, for the checks.
    direct: aws_sdk_dynamodb::Client,
    /// Between the handler and the store.
    proxy: FaultyStore,
    /// The table's SQLite file, removed at the end.
    db_path: std::path::PathBuf,
}

/// Starts the store, its fault proxy and the table; binds the handler's port.
async fn stack() -> Result<Stack, BoxError> {
    // On tmpfs where there is one: SQLite's syncs cost nothing there, and the
    // table's pages stay out of this process's RSS.
    let shm = std::path::Path::new("/dev/shm");
    let dir = if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    let db_path = dir.join(format!("mailhooks-load-{}.db", std::process::id()));
    let _ = std::fs::remove_file(&db_path);
    let db = dynoxide::Database::new(&db_path.to_string_lossy())?;
    let store_listener = TcpListener::bind("127.0.0.1:0").await?;
    let store_url = format!("http://{}", store_listener.local_addr()?);
    tokio::spawn(dynoxide::server::serve_on(store_listener, db));
    let proxy = FaultyStore::start(&store_url).await;
    let direct = sdk::local_client(&store_url, Duration::from_secs(60));
    table::create_table(&direct, TABLE).await?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    // The local stack's configuration: every provider's local secret,
    // Mandrill's URL on this port, SES's development certificate folder.
    let config = local_config(TABLE, addr)?;
    Ok(Stack {
        addr,
        config,
        listener: Some(listener),
        direct,
        proxy,
        db_path,
    })
}

impl Stack {
    /// Serves the handler over plain HTTP as the local stack does, its store
    /// behind the fault proxy.
    fn serve(&mut self) {
        let Some(listener) = self.listener.take() else {
            return;
        };
        let config = self.config.clone();
        let client = sdk::local_client(&self.proxy.endpoint, config.store_timeout);
        let store = DynamoStore::new(client, TABLE, config.retention_days);
        let app = Arc::new(App::new(config, store, Arc::new(SystemClock)));
        let router = axum::Router::new().fallback(handle).with_state(app);
        tokio::spawn(async move { axum::serve(listener, router).await });
    }
}

/// One HTTP request through the handler (the local server's adapter).
async fn handle(
    State(app): State<Arc<App<DynamoStore>>>,
    request: axum::extract::Request,
) -> axum::response::Response {
    let limit = app.config().max_body_bytes;
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, limit.saturating_add(1)).await else {
        let mut refused = axum::response::Response::new(axum::body::Body::empty());
        *refused.status_mut() = axum::http::StatusCode::PAYLOAD_TOO_LARGE;
        return refused;
    };
    let request = lambda_http::Request::from_parts(parts, lambda_http::Body::from(bytes.to_vec()));
    let (parts, body) = app.handle(request).await.into_parts();
    axum::response::Response::from_parts(parts, axum::body::Body::from(body.to_vec()))
}

// ---------------------------------------------------------------------------
// Delivery, as a provider retries.

/// How one request was delivered.
struct Delivery {
    tries_ms: Vec<f64>,
    total_ms: f64,
    answers_5xx: usize,
    connection_errors: usize,
    /// The 200 answer, or why there was none.
    accepted: Result<Value, String>,
}

impl Delivery {
    /// Not (yet) accepted, for `why`.
    fn refused(why: String) -> Delivery {
        Delivery {
            tries_ms: Vec::new(),
            total_ms: 0.0,
            answers_5xx: 0,
            connection_errors: 0,
            accepted: Err(why),
        }
    }
}

fn backoff(attempt: u32, index: usize) -> Duration {
    let exponential = FIRST_BACKOFF.saturating_mul(1 << attempt.min(8));
    // A fixed per-request jitter, so retries do not arrive in lockstep.
    exponential.min(MAX_BACKOFF) + Duration::from_millis((index as u64 * 37) % 50)
}

async fn deliver(
    client: &HttpClient,
    addr: SocketAddr,
    request: &Request,
    index: usize,
    deadline: Instant,
) -> Delivery {
    let mut delivery = Delivery::refused("deadline passed".into());
    let started = Instant::now();
    let name = request.provider.name();
    let uri = match request.query.as_str() {
        "" => format!("http://{addr}/webhooks/{name}"),
        query => format!("http://{addr}/webhooks/{name}?{query}"),
    };
    let mut attempt = 0;
    while Instant::now() < deadline {
        let mut builder = hyper::Request::post(uri.as_str());
        for (k, v) in &request.headers {
            builder = builder.header(k.as_str(), v.as_str());
        }
        let Ok(http) = builder.body(Full::new(request.body.clone())) else {
            delivery.accepted = Err("unbuildable request".into());
            break;
        };
        let sent = Instant::now();
        let answer = client.request(http).await;
        delivery
            .tries_ms
            .push(sent.elapsed().as_secs_f64() * 1000.0);
        match answer {
            Ok(answer) => {
                let status = answer.status().as_u16();
                let body = answer.into_body().collect().await.map(|b| b.to_bytes());
                let reply: Value = body
                    .ok()
                    .and_then(|b| serde_json::from_slice(&b).ok())
                    .unwrap_or(Value::Null);
                if status == 200 {
                    delivery.accepted = Ok(reply);
                    break;
                }
                if status < 500 {
                    delivery.accepted = Err(format!("{status} {reply}"));
                    break;
                }
                delivery.answers_5xx += 1;
            }
            Err(_) => delivery.connection_errors += 1,
        }
        tokio::time::sleep(backoff(attempt, index)).await;
        attempt += 1;
    }
    delivery.total_ms = started.elapsed().as_secs_f64() * 1000.0;
    delivery
}

// ---------------------------------------------------------------------------
// Faults and memory over the run.

/// When the fault phase ran, in seconds from the start of the load.
struct FaultWindow {
    throttled_at: f64,
    down_at: f64,
    healthy_at: f64,
}

/// Throttles the store, then takes it down, once `trigger` requests are answered.
async fn fault_phase(
    faults: Arc<faults::Faults>,
    answered: Arc<AtomicUsize>,
    trigger: usize,
    started: Instant,
) -> FaultWindow {
    while answered.load(Ordering::SeqCst) < trigger {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let throttled_at = started.elapsed().as_secs_f64();
    faults.throttle_all_puts.store(true, Ordering::SeqCst);
    tokio::time::sleep(THROTTLED_FOR).await;
    let down_at = started.elapsed().as_secs_f64();
    faults.down.store(true, Ordering::SeqCst);
    faults.throttle_all_puts.store(false, Ordering::SeqCst);
    tokio::time::sleep(DOWN_FOR).await;
    faults.down.store(false, Ordering::SeqCst);
    FaultWindow {
        throttled_at,
        down_at,
        healthy_at: started.elapsed().as_secs_f64(),
    }
}

/// `VmRSS` and `VmHWM` of this process, in MB.
fn memory_mb() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// (seconds since the start, RSS MB), every [`RSS_EVERY`].
type RssSamples = Arc<Mutex<Vec<(f64, f64)>>>;

fn sample_rss(started: Instant) -> (RssSamples, tokio::task::JoinHandle<()>) {
    let samples: RssSamples = Arc::new(Mutex::new(Vec::new()));
    let into = Arc::clone(&samples);
    let task = tokio::spawn(async move {
        loop {
            let (rss, _) = memory_mb();
            if let Ok(mut samples) = into.lock() {
                samples.push((started.elapsed().as_secs_f64(), rss));
            }
            tokio::time::sleep(RSS_EVERY).await;
        }
    });
    (samples, task)
}

// ---------------------------------------------------------------------------
// The checks.

/// Every key in the table, by class: events, quarantine records, replay claims.
async fn table_keys(
    client: &aws_sdk_dynamodb::Client,
) -> Result<(Vec<(String, String)>, Vec<(String, String)>, Vec<String>), BoxError> {
    let (mut events, mut records, mut claims) = (Vec::new(), Vec::new(), Vec::new());
    let mut start = None;
    loop {
        let page = client
            .scan()
            .table_name(TABLE)
            .projection_expression("#pk, #sk")
            .expression_attribute_names("#pk", PARTITION_KEY)
            .expression_attribute_names("#sk", SORT_KEY)
            .set_exclusive_start_key(start)
            .send()
            .await?;
        for item in page.items() {
            let text = |name| match item.get(name) {
                Some(AttributeValue::S(s)) => s.clone(),
                _ => String::new(),
            };
            let (pk, sk) = (text(PARTITION_KEY), text(SORT_KEY));
            if replay::is_claim(item) {
                claims.push(pk);
            } else if pk.starts_with(quarantine::PARTITION_PREFIX) {
                records.push((pk, sk));
            } else {
                events.push((pk, sk));
            }
        }
        start = page.last_evaluated_key().cloned();
        if start.is_none() {
            return Ok((events, records, claims));
        }
    }
}

/// One class of items: the table against the expected keys.
struct Count {
    what: &'static str,
    expected: usize,
    found: usize,
    lost: usize,
    unexpected: usize,
}

impl Count {
    fn of<K: std::hash::Hash + Eq + Clone>(
        what: &'static str,
        expected: &HashSet<K>,
        found: Vec<K>,
    ) -> Count {
        let found_count = found.len();
        let found: HashSet<K> = found.into_iter().collect();
        Count {
            what,
            expected: expected.len(),
            found: found_count,
            lost: expected.difference(&found).count(),
            // Items beyond the expected keys, doubled ones included.
            unexpected: found_count - found.intersection(expected).count(),
        }
    }

    fn ok(&self) -> bool {
        self.lost == 0 && self.unexpected == 0 && self.found == self.expected
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Answers that disagree with what their bodies imply.
fn wrong_answers(
    requests: &[Arc<Request>],
    expected: &Expected,
    deliveries: &[Delivery],
) -> Vec<String> {
    let mut wrong = Vec::new();
    for (i, (request, delivery)) in requests.iter().zip(deliveries).enumerate() {
        let name = request.provider.name();
        let Ok(reply) = &delivery.accepted else {
            continue;
        };
        let implied = expected.implied[i];
        let field = |f: &str| reply[f].as_u64().unwrap_or(u64::MAX);
        let ok = field("received") == implied.received
            && field("quarantined") == implied.quarantined
            && field("stored").saturating_add(field("duplicates")) == implied.received
            && (request.kind != Kind::Garbage || implied.quarantined > 0);
        if !ok {
            wrong.push(format!("request {i} ({name}): {reply}"));
        }
    }
    wrong
}

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("load: {e}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), BoxError> {
    let count = env_or("LOAD_REQUESTS", 10_000);
    let concurrency = env_or("LOAD_CONCURRENCY", 32);
    let mut stack = stack().await?;
    let signed_at = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() as i64;
    let prepared = Instant::now();
    let requests = workload(count, &stack.config, stack.addr, signed_at);
    let expected = expected(&stack.config, &requests);
    let bytes: usize = requests.iter().map(|r| r.body.len()).sum();
    let largest = requests.iter().map(|r| r.body.len()).max().unwrap_or(0);
    let kinds = |kind| requests.iter().filter(|r| r.kind == kind).count();
    println!(
        "load: {count} requests over {} providers ({} with events, {} duplicates, {} garbage), \
         {} events ({} unique), {:.1} MB (largest body {:.2} MB), signed and checked in {:.1} s; \
         concurrency {concurrency}",
        mailhooks::providers::ALL.len(),
        kinds(Kind::Events),
        kinds(Kind::Duplicate),
        kinds(Kind::Garbage),
        expected.events_sent,
        expected.events.len(),
        bytes as f64 / 1e6,
        largest as f64 / 1e6,
        prepared.elapsed().as_secs_f64()
    );
    stack.serve();
    let (addr, faults) = (stack.addr, Arc::clone(&stack.proxy.faults));

    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    let gate = Arc::new(Semaphore::new(concurrency));
    let answered = Arc::new(AtomicUsize::new(0));
    let (rss_start, _) = memory_mb();
    let started = Instant::now();
    let deadline = started + DEADLINE;
    let (rss, sampler) = sample_rss(started);
    let trigger = (count as f64 * FAULTS_AFTER) as usize;
    let fault_task = tokio::spawn(fault_phase(
        Arc::clone(&faults),
        Arc::clone(&answered),
        trigger,
        started,
    ));
    let mut tasks = Vec::with_capacity(count);
    for (index, request) in requests.iter().enumerate() {
        let permit = Arc::clone(&gate).acquire_owned().await?;
        let (client, request, answered) =
            (client.clone(), Arc::clone(request), Arc::clone(&answered));
        tasks.push(tokio::spawn(async move {
            let delivery = deliver(&client, addr, &request, index, deadline).await;
            answered.fetch_add(1, Ordering::SeqCst);
            drop(permit);
            delivery
        }));
    }
    let mut deliveries = Vec::with_capacity(count);
    for task in tasks {
        deliveries.push(
            task.await
                .unwrap_or_else(|e| Delivery::refused(format!("task failed: {e}"))),
        );
    }
    let elapsed = started.elapsed();
    sampler.abort();
    let (rss_end, hwm) = memory_mb();
    let window = if fault_task.is_finished() {
        fault_task.await.ok()
    } else {
        fault_task.abort();
        None
    };

    let (events, records, claims) = table_keys(&stack.direct).await?;
    let counts = [
        Count::of("events", &expected.events, events),
        Count::of("quarantine records", &expected.quarantine, records),
        Count::of("replay claims", &expected.claims, claims),
    ];
    let wrong = wrong_answers(&requests, &expected, &deliveries);
    let _ = std::fs::remove_file(&stack.db_path);
    let samples = rss.lock().map(|s| s.clone()).unwrap_or_default();
    let rss_middle = samples
        .iter()
        .min_by(|a, b| {
            (a.0 - elapsed.as_secs_f64() / 2.0)
                .abs()
                .total_cmp(&(b.0 - elapsed.as_secs_f64() / 2.0).abs())
        })
        .map_or(0.0, |s| s.1);
    let rss_peak_sampled = samples.iter().map(|s| s.1).fold(0.0, f64::max);

    let mut tries: Vec<f64> = deliveries
        .iter()
        .flat_map(|d| d.tries_ms.iter().copied())
        .collect();
    tries.sort_by(f64::total_cmp);
    let mut totals: Vec<f64> = deliveries.iter().map(|d| d.total_ms).collect();
    totals.sort_by(f64::total_cmp);
    let answers_5xx: usize = deliveries.iter().map(|d| d.answers_5xx).sum();
    let connection_errors: usize = deliveries.iter().map(|d| d.connection_errors).sum();
    let retried = deliveries.iter().filter(|d| d.tries_ms.len() > 1).count();
    let failed: Vec<String> = deliveries
        .iter()
        .enumerate()
        .filter_map(|(i, d)| {
            d.accepted
                .as_ref()
                .err()
                .map(|e| format!("request {i}: {e}"))
        })
        .collect();
    let stored: u64 = deliveries
        .iter()
        .filter_map(|d| d.accepted.as_ref().ok())
        .map(|r| r["stored"].as_u64().unwrap_or(0))
        .sum();
    let duplicates: u64 = deliveries
        .iter()
        .filter_map(|d| d.accepted.as_ref().ok())
        .map(|r| r["duplicates"].as_u64().unwrap_or(0))
        .sum();
    let secs = elapsed.as_secs_f64();

    let mut rows: Vec<(String, String, &str)> = vec![
        ("requests".into(), format!("{count} in {secs:.1} s"), ""),
        (
            "throughput".into(),
            format!(
                "{:.0} requests/s, {:.0} events/s",
                count as f64 / secs,
                expected.events_sent as f64 / secs
            ),
            "",
        ),
        (
            "latency per try".into(),
            format!(
                "p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
                percentile(&tries, 0.5),
                percentile(&tries, 0.99),
                percentile(&tries, 1.0)
            ),
            "",
        ),
        (
            "latency to a 200, retries included".into(),
            format!(
                "p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
                percentile(&totals, 0.5),
                percentile(&totals, 0.99),
                percentile(&totals, 1.0)
            ),
            "",
        ),
        (
            "fault phase".into(),
            window.as_ref().map_or("did not run".into(), |w| {
                format!(
                    "throttled {:.1}–{:.1} s, down {:.1}–{:.1} s",
                    w.throttled_at, w.down_at, w.down_at, w.healthy_at
                )
            }),
            "ran",
        ),
        (
            "5xx answers (all retried)".into(),
            format!(
                "{answers_5xx} 5xx, {connection_errors} connection errors, over {retried} requests"
            ),
            "> 0",
        ),
        (
            "requests never answered 200".into(),
            failed.len().to_string(),
            "0",
        ),
        (
            "answers off their body's counts".into(),
            wrong.len().to_string(),
            "0",
        ),
        (
            "answers' stored / duplicates".into(),
            format!("{stored} / {duplicates}"),
            "",
        ),
    ];
    for c in &counts {
        rows.push((
            format!("table: {}", c.what),
            format!(
                "expected {}, found {}, lost {}, unexpected {}",
                c.expected, c.found, c.lost, c.unexpected
            ),
            "exact",
        ));
    }
    rows.push((
        "RSS of the bench process".into(),
        format!(
            "start {rss_start:.0} MB, middle {rss_middle:.0} MB, end {rss_end:.0} MB; \
             peak sampled {rss_peak_sampled:.0} MB, VmHWM {hwm:.0} MB (workload held: {:.0} MB)",
            bytes as f64 / 1e6
        ),
        "",
    ));
    println!();
    println!("| measure | value | target |");
    println!("|---|---|---|");
    for (measure, value, target) in rows {
        println!("| load: {measure} | {value} | {target} |");
    }
    for line in failed.iter().chain(&wrong).take(10) {
        eprintln!("{line}");
    }
    let passed = window.is_some()
        && answers_5xx > 0
        && failed.is_empty()
        && wrong.is_empty()
        && counts.iter().all(Count::ok);
    if !passed {
        return Err("FAILED: see the table above".into());
    }
    println!(
        "\nload: OK — nothing lost, nothing doubled, every garbage body quarantined once, every 5xx retried to a 200"
    );
    Ok(())
}
