//! CPU per event: raw bytes in → authenticated → normalized → DynamoDB item
//! built, for every fixture of every provider in `providers::ALL` (each signed
//! with its own local secret, as the ESP would send it), batches of 1 to 1,000
//! uSpeedo events, SendGrid, Brevo, SparkPost and Mailjet arrays built from
//! their fixtures, EngageLab `target` fan-outs to 100 and 8,000 recipients, a
//! 240 KB adversarial subject and a 1 MB EngageLab `route`; and, reported
//! separately, authentication alone for the asymmetric signatures (SES's RSA,
//! SendGrid's ECDSA). Prints µs per event and MB/s. A case that does not
//! authenticate or parse prints a FAILED row instead of a figure, and the bench
//! then exits non-zero.
//!
//! `cargo bench --bench cpu [-- NAME...]` (the median of 15 timed rounds after a
//! warm-up; with names, only the cases whose label contains one of them).
//!
//! `PEER_BODIES=DIR cargo bench --bench cpu -- peer:` adds (and with the name,
//! keeps only) the comparison with django-anymail that benches/peer.sh runs:
//! SendGrid's `DIR/sendgrid-1.json` and `DIR/sendgrid-100.json`, the very files
//! the peer is timed on, each without and with ECDSA signature verification.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use mailhooks::auth::{FixedClock, Freshness};
use mailhooks::metrics::{RequestMetrics, emf_line};
use mailhooks::providers::ses::dev::temporary_certificate_dir;
use mailhooks::providers::{self, AuthContext, Inbound, Provider};
use mailhooks::store::codec;
use serde_json::{Value, json};

// The Lambda binary's allocator (src/main.rs), so the figures are the function's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The bench's fixed clock; every case is signed at this time, so signed
/// timestamps are fresh (age 0) under the 300 s window.
const NOW_SECS: i64 = 1_795_342_530;
const FRESHNESS: Freshness = Freshness::Within(300);

/// What the figure of a case is compared with.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Bar {
    /// One typical event: < 5 µs.
    SingleEvent,
    /// Many events in one request: flat per event as it grows.
    FlatPerEvent,
    /// A very large or adversarial body: no bar, only bounded.
    Bounded,
    /// Authentication alone (prepare + authenticate), reported separately.
    VerifyOnly,
    /// A body of the peer comparison (benches/peer.sh): µs per request, with and
    /// without the signature check.
    Peer,
}

/// One request: its provider, the secrets it is checked against, headers, query and body.
struct Case {
    label: String,
    provider: &'static dyn Provider,
    secrets: Vec<String>,
    /// The webhook URLs a URL-signing provider (Mandrill) is configured with.
    urls: Vec<String>,
    headers: Vec<(String, String)>,
    query: Vec<(String, String)>,
    body: Vec<u8>,
    bar: Bar,
}

/// `body` signed at the bench's clock with the provider's local secret, which is
/// also the one secret its context holds.
fn case(label: impl Into<String>, provider: &'static dyn Provider, body: &[u8], bar: Bar) -> Case {
    let secret = provider.local_secret();
    let signed = provider.sign(secret, NOW_SECS, body);
    let headers = signed
        .headers
        .into_iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect();
    let query = form_urlencoded::parse(signed.query.as_bytes())
        .into_owned()
        .collect();
    Case {
        label: label.into(),
        provider,
        secrets: vec![secret.to_owned()],
        urls: provider
            .signed_url()
            .map(|url| vec![url.local.to_owned()])
            .unwrap_or_default(),
        headers,
        query,
        // The body as sent: a provider that signs inside the body (an SNS
        // envelope, Mailgun's `signature` object) returns a rewritten one.
        body: signed.body,
        bar,
    }
}

/// The directory holding SES's development certificate, as the tests configure
/// `SNS_CERTIFICATES_DIR`; `None` (SES rows then fail loudly) if it cannot be written.
fn certificates_dir() -> Option<&'static Path> {
    static DIR: OnceLock<Option<PathBuf>> = OnceLock::new();
    DIR.get_or_init(|| temporary_certificate_dir().ok())
        .as_deref()
}

/// The context every provider authenticates with, as the handler builds it from
/// its configuration. The one place to extend when a provider needs another
/// context field (e.g. a webhook URL list): fill it here for `case.provider`.
fn context<'a>(case: &'a Case, clock: &'a FixedClock) -> AuthContext<'a> {
    AuthContext {
        secrets: &case.secrets,
        freshness: FRESHNESS,
        clock,
        certificates_dir: certificates_dir(),
        webhook_urls: &case.urls,
    }
}

/// Why a case did not reach the items: shown in its row instead of a figure.
#[derive(Debug)]
enum Failure {
    /// `prepare` could not complete (or would have waited on the network).
    Unavailable(String),
    /// `authenticate` refused the request: the 401 code.
    Unauthorized(&'static str),
    /// The request is a control request (ping, handshake), not events.
    Control(&'static str),
    /// The body did not parse into events, or an item key is out of range.
    Unparsed(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Unavailable(e) => write!(f, "prepare unavailable: {e}"),
            Failure::Unauthorized(code) => write!(f, "401 {code}"),
            Failure::Control(kind) => write!(f, "control request ({kind}), no events"),
            Failure::Unparsed(e) => write!(f, "not parsed: {e}"),
        }
    }
}

/// The authentication stage of the handler: `prepare` (here, a certificate
/// cache hit: it never waits) then `authenticate`.
fn authenticate(
    case: &Case,
    inbound: &Inbound<'_>,
    ctx: &AuthContext<'_>,
) -> Result<&'static str, Failure> {
    if let Some(preparing) = case.provider.prepare(inbound, ctx) {
        match preparing.now_or_never() {
            Some(Ok(())) => {}
            Some(Err(e)) => return Err(Failure::Unavailable(e.code.to_owned())),
            None => return Err(Failure::Unavailable("would wait on the network".into())),
        }
    }
    case.provider
        .authenticate(inbound, ctx)
        .map_err(|e| Failure::Unauthorized(e.code()))
}

/// Authentication alone; returns the method that matched.
fn verify(case: &Case) -> Result<&'static str, Failure> {
    let clock = FixedClock(NOW_SECS * 1000);
    let ctx = context(case, &clock);
    let inbound = Inbound {
        headers: &case.headers,
        query: &case.query,
        body: &case.body,
    };
    authenticate(case, &inbound, &ctx)
}

/// What a processed request yielded: events, and item bytes (kept alive).
struct Processed {
    events: usize,
    item_bytes: usize,
}

/// The whole CPU path of one request, in the handler's order (src/app.rs).
fn process(case: &Case) -> Result<Processed, Failure> {
    let clock = FixedClock(NOW_SECS * 1000);
    let ctx = context(case, &clock);
    let inbound = Inbound {
        headers: &case.headers,
        query: &case.query,
        body: &case.body,
    };
    authenticate(case, &inbound, &ctx)?;
    normalize(case, &inbound, &ctx)
}

/// The path of one request without authentication: normalized, items built.
fn process_unauthenticated(case: &Case) -> Result<Processed, Failure> {
    let clock = FixedClock(NOW_SECS * 1000);
    let ctx = context(case, &clock);
    let inbound = Inbound {
        headers: &case.headers,
        query: &case.query,
        body: &case.body,
    };
    normalize(case, &inbound, &ctx)
}

/// Everything after authentication: control check, replay claim, events
/// parsed, keys checked, one DynamoDB item built per event.
fn normalize(
    case: &Case,
    inbound: &Inbound<'_>,
    ctx: &AuthContext<'_>,
) -> Result<Processed, Failure> {
    if let Some(control) = case.provider.control(inbound) {
        return Err(Failure::Control(control.kind));
    }
    black_box(case.provider.replay_claim(inbound, ctx));
    let events = case
        .provider
        .parse_request(inbound)
        .map_err(|e| Failure::Unparsed(e.to_string()))?;
    codec::check_keys(&events).map_err(|e| Failure::Unparsed(e.to_string()))?;
    let item_bytes = events
        .iter()
        .map(|e| black_box(codec::encode(e, NOW_SECS * 1000, Some(30))).len())
        .sum();
    Ok(Processed {
        events: events.len(),
        item_bytes,
    })
}

/// Median time of one `run` over 15 rounds.
fn measure<T>(run: impl Fn() -> T) -> Duration {
    let warm = Instant::now();
    let mut per_round = 0u32;
    while warm.elapsed() < Duration::from_millis(200) {
        black_box(run());
        per_round += 1;
    }
    let per_round = (per_round / 4).max(1);
    let mut rounds: Vec<Duration> = (0..15)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..per_round {
                black_box(run());
            }
            start.elapsed() / per_round
        })
        .collect();
    rounds.sort();
    rounds[rounds.len() / 2]
}

/// Requests timed one by one in a peer row.
const PEER_SAMPLES: usize = 10_001;

/// Median wall time of one `run`, each of `PEER_SAMPLES` runs timed alone after
/// a warm-up. One run (microseconds) is rarely preempted, so on a shared machine
/// the median is the run's own time, not the waits a round of many runs collects.
fn median_of_single_runs<T>(run: impl Fn() -> T) -> Duration {
    let warm = Instant::now();
    while warm.elapsed() < Duration::from_millis(200) {
        black_box(run());
    }
    let mut samples: Vec<Duration> = (0..PEER_SAMPLES)
        .map(|_| {
            let start = Instant::now();
            black_box(run());
            start.elapsed()
        })
        .collect();
    samples.sort();
    samples[samples.len() / 2]
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

/// The names of a provider's `*.json` fixtures, sorted.
fn fixture_names(provider: &str) -> Vec<String> {
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
    names
}

/// A JSON array of `n` events cycled from every event of a provider's fixtures
/// (a fixture holding an array gives each of its elements), each sent to its
/// own recipient, as an ESP that batches would send them.
fn array_batch(provider: &str, n: usize) -> Vec<u8> {
    let pool: Vec<Value> = fixture_names(provider)
        .iter()
        .filter_map(|name| serde_json::from_slice(&fixture(provider, name)).ok())
        .flat_map(|fixture: Value| match fixture {
            Value::Array(events) => events,
            event => vec![event],
        })
        .collect();
    let events: Vec<Value> = pool
        .iter()
        .cycle()
        .take(if pool.is_empty() { 0 } else { n })
        .enumerate()
        .map(|(i, event)| with_recipient(event.clone(), &format!("user{i}@example.com")))
        .collect();
    Value::Array(events).to_string().into_bytes()
}

/// `event` addressed to `recipient`: its top-level `email` (SendGrid, Brevo,
/// Mailjet) or the `rcpt_to` of a SparkPost `msys` event.
fn with_recipient(mut event: Value, recipient: &str) -> Value {
    if let Some(email) = event.get_mut("email") {
        *email = json!(recipient);
    }
    if let Some(Value::Object(kinds)) = event.get_mut("msys") {
        for inner in kinds.values_mut() {
            for field in ["rcpt_to", "raw_rcpt_to"] {
                if let Some(to) = inner.get_mut(field) {
                    *to = json!(recipient);
                }
            }
        }
    }
    event
}

/// Authentication alone for the schemes whose verification is a fixed,
/// per-request public-key operation: provider, fixture, what is verified.
const VERIFY_ONLY: [(&str, &str, &str); 2] = [
    (
        "ses",
        "delivered",
        "RSA SHA256withRSA, SNS SignatureVersion 2",
    ),
    ("sendgrid", "docs_delivered", "ECDSA P-256"),
];

/// The peer comparison's bodies (benches/peer.sh), when `PEER_BODIES` names
/// their directory: a missing file gives an empty body, whose row then fails.
fn peer_cases() -> Vec<Case> {
    let Some(dir) = std::env::var_os("PEER_BODIES") else {
        return Vec::new();
    };
    [1, 100]
        .into_iter()
        .filter_map(|n| {
            let body = std::fs::read(Path::new(&dir).join(format!("sendgrid-{n}.json")))
                .unwrap_or_default();
            providers::by_name("sendgrid")
                .map(|p| case(format!("peer: sendgrid {n}"), p, &body, Bar::Peer))
        })
        .collect()
}

fn all_cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for &provider in providers::ALL {
        let name = provider.name();
        for fixture_name in fixture_names(name) {
            cases.push(case(
                format!("{name}/{fixture_name}"),
                provider,
                &fixture(name, &fixture_name),
                Bar::SingleEvent,
            ));
        }
    }
    let batch = |label: String, name: &str, body: Vec<u8>, bar: Bar| {
        providers::by_name(name).map(|p| case(label, p, &body, bar))
    };
    let batches =
        [1, 10, 100, 1000].map(|n| (format!("uspeedo batch of {n}"), "uspeedo", uspeedo_batch(n)));
    let arrays = [
        ("sendgrid", 100),
        ("sendgrid", 1000),
        ("brevo", 500),
        ("sparkpost", 1000),
        ("mailjet", 100),
        ("mandrill", 1000),
    ]
    .map(|(name, n)| (format!("{name} batch of {n}"), name, array_batch(name, n)));
    let fan_outs = [100, 8_000].map(|n| {
        (
            format!("engagelab target fan-out to {n}"),
            "engagelab",
            target_of(n),
        )
    });
    for (label, name, body) in batches.into_iter().chain(arrays).chain(fan_outs) {
        cases.extend(batch(label, name, body, Bar::FlatPerEvent));
    }
    cases.extend(batch(
        "engagelab subject of 240 KB `=?x`".into(),
        "engagelab",
        subject_of(240_000),
        Bar::Bounded,
    ));
    cases.extend(batch(
        "engagelab route, 1 MB".into(),
        "engagelab",
        route_of(1_000_000),
        Bar::Bounded,
    ));
    for (name, fixture_name, scheme) in VERIFY_ONLY {
        cases.extend(batch(
            format!("{name}/{fixture_name}: {scheme}"),
            name,
            fixture(name, fixture_name),
            Bar::VerifyOnly,
        ));
    }
    cases.extend(peer_cases());
    cases
}

/// One row: the case checked once (a failure prints a FAILED row), then timed.
fn report(case: &Case) -> bool {
    let size = case.body.len();
    if case.bar == Bar::VerifyOnly {
        if let Err(failure) = verify(case) {
            println!(
                "| signature verification: {} ({size} B) | **FAILED: {failure}** | |",
                case.label
            );
            return false;
        }
        let t = measure(|| verify(case));
        println!(
            "| signature verification only: {} ({size} B) | {:.2} µs per request | reported separately |",
            case.label,
            t.as_secs_f64() * 1e6
        );
        return true;
    }
    let events = match process(case) {
        Ok(processed) if processed.item_bytes > 0 => processed.events,
        Ok(_) => {
            println!(
                "| CPU per event: {} ({size} B) | **FAILED: no item built** | |",
                case.label
            );
            return false;
        }
        Err(failure) => {
            println!(
                "| CPU per event: {} ({size} B) | **FAILED: {failure}** | |",
                case.label
            );
            return false;
        }
    };
    if case.bar == Bar::Peer {
        report_peer(case, events);
        return true;
    }
    let t = measure(|| process(case).map(|p| p.item_bytes));
    let per_event = t / u32::try_from(events.max(1)).unwrap_or(u32::MAX);
    let mb_s = size as f64 / t.as_secs_f64() / 1e6;
    let target = match case.bar {
        Bar::SingleEvent => "< 5 µs per event",
        Bar::FlatPerEvent => "flat per event",
        Bar::Bounded | Bar::VerifyOnly | Bar::Peer => "",
    };
    println!(
        "| CPU per event: {} ({size} B, {events} event{}) | {:.2} µs per event, {mb_s:.0} MB/s | {target} |",
        case.label,
        if events == 1 { "" } else { "s" },
        per_event.as_secs_f64() * 1e6,
    );
    true
}

/// One way through a request: with or without authentication.
type Stage = fn(&Case) -> Result<Processed, Failure>;

/// The two rows of a peer body (benches/peer.sh parses them): µs per request
/// normalized with items built, then with ECDSA verification in front.
fn report_peer(case: &Case, events: usize) {
    let stages: [(&str, Stage); 2] = [
        ("normalize + item built", process_unauthenticated),
        ("with ECDSA P-256 verification", process),
    ];
    for (stage, run) in stages {
        let t = median_of_single_runs(|| run(case).map(|p| p.item_bytes)).as_secs_f64() * 1e6;
        println!(
            "| {} ({} B, {events} event{}): {stage} | {t:.2} µs per request, {:.2} µs per event | median of {PEER_SAMPLES} requests timed alone |",
            case.label,
            case.body.len(),
            if events == 1 { "" } else { "s" },
            t / events as f64,
        );
    }
}

fn main() {
    // `prepare` futures are polled once, never awaited: one that would wait
    // (a certificate fetch) finds a runtime for its timer and fails its row.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("a Tokio runtime for prepare futures: {e}"));
    let _entered = runtime.enter();
    let mut cases = all_cases();

    // `cargo bench --bench cpu -- engagelab/open` measures only the cases containing that text.
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    cases.retain(|c| filter.is_empty() || filter.iter().any(|f| c.label.contains(f.as_str())));

    println!("| measure | value | target |");
    println!("|---|---|---|");
    let failed = cases.iter().filter(|case| !report(case)).count();
    // The per-request metrics output (CloudWatch EMF) of a stored 1-event request.
    let metrics = RequestMetrics {
        provider: "uspeedo".into(),
        status: 200,
        stored: 1,
        stored_by_type: [(mailhooks::EventType::Delivered, 1)].into(),
        ..RequestMetrics::default()
    };
    let rounds = 20_000u32;
    let started = Instant::now();
    for _ in 0..rounds {
        black_box(emf_line(black_box(&metrics), NOW_SECS * 1000));
    }
    println!(
        "| CPU per request: metrics line (EMF) of a stored 1-event request | {:.2} µs | |",
        (started.elapsed() / rounds).as_secs_f64() * 1e6
    );
    if failed > 0 {
        eprintln!("{failed} case(s) FAILED to authenticate or parse: their rows carry no figure");
        std::process::exit(1);
    }
}
