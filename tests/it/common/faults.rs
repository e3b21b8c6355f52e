//! A fault-injecting HTTP proxy in front of the in-process DynamoDB API: it
//! forwards every request unless told to throttle, fail writes that mention a
//! marker, throttle after some writes, leave half of a batch call unprocessed,
//! delay writes or answers, hold writes unforwarded (a writer about to be
//! killed), or be down.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// What the proxy does to the requests it sees.
#[derive(Default)]
pub struct Faults {
    /// Answer this many of the next writes (PutItem, BatchWriteItem,
    /// BatchExecuteStatement) with a throttling error.
    pub throttle_next_puts: AtomicUsize,
    /// Answer every write with a throttling error.
    pub throttle_all_puts: AtomicBool,
    /// Fail (HTTP 500) every write whose body contains this text.
    pub fail_puts_containing: Mutex<Option<String>>,
    /// For this many of the next batch calls (BatchGetItem, BatchWriteItem), forward
    /// only the first half of the keys or items and answer the rest as unprocessed,
    /// as DynamoDB does when a call exceeds capacity or size limits.
    pub leave_unprocessed_next_batches: AtomicUsize,
    /// Batch calls seen.
    pub batch_calls_seen: AtomicUsize,
    /// Forward, then hold the answer this long (the write is already done).
    pub delay_after_forwarding: Mutex<Duration>,
    /// Refuse everything as if the store were down (503 without forwarding).
    pub down: AtomicBool,
    /// Writes seen.
    pub puts_seen: AtomicUsize,
    /// Hold every write (PutItem, BatchWriteItem, BatchExecuteStatement) this long before forwarding it,
    /// so that a concurrent request's read reaches the store first.
    pub delay_puts_before_forwarding: Mutex<Duration>,
    /// Forward this many writes, then throttle every later one (a store that
    /// starts throttling in the middle of a batch).
    pub throttle_puts_after: Mutex<Option<usize>>,
    /// Refuse every `BatchExecuteStatement` as an implementation without PartiQL
    /// does (`UnknownOperationException`).
    pub refuse_statements: AtomicBool,
    /// Hold writes: forward the next [`Faults::writes_let_through`] of them,
    /// then never forward nor answer another (the writer is to be killed
    /// with its calls in flight).
    pub hold_writes: AtomicBool,
    /// Writes still forwarded while [`Faults::hold_writes`] is on.
    pub writes_let_through: AtomicUsize,
    /// Writes held so far.
    pub writes_held: AtomicUsize,
}

/// A running proxy: point the store at `endpoint`, steer it through `faults`.
pub struct FaultyStore {
    pub endpoint: String,
    pub faults: Arc<Faults>,
}

struct Proxy {
    upstream: String,
    faults: Arc<Faults>,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl FaultyStore {
    /// Starts a proxy in front of `upstream` (an emulator endpoint).
    pub async fn start(upstream: &str) -> FaultyStore {
        let faults = Arc::new(Faults::default());
        let proxy = Arc::new(Proxy {
            upstream: upstream.to_owned(),
            faults: Arc::clone(&faults),
            client: Client::builder(TokioExecutor::new()).build_http(),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let router = axum::Router::new().fallback(forward).with_state(proxy);
        tokio::spawn(async move { axum::serve(listener, router).await });
        FaultyStore { endpoint, faults }
    }
}

fn dynamodb_error(status: StatusCode, kind: &str, message: &str) -> Response {
    let body =
        format!(r#"{{"__type":"com.amazonaws.dynamodb.v20120810#{kind}","message":"{message}"}}"#);
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        "content-type",
        HeaderValue::from_static("application/x-amz-json-1.0"),
    );
    response
}

async fn forward(State(proxy): State<Arc<Proxy>>, request: Request) -> Response {
    let faults = &proxy.faults;
    if faults.down.load(Ordering::SeqCst) {
        return dynamodb_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            "store down",
        );
    }
    let (parts, body) = request.into_parts();
    let body = to_bytes(body, 64 * 1024 * 1024).await.unwrap();
    let statements = parts
        .headers
        .get("x-amz-target")
        .is_some_and(|t| t.as_bytes().ends_with(b".BatchExecuteStatement"));
    if statements && faults.refuse_statements.load(Ordering::SeqCst) {
        return dynamodb_error(
            StatusCode::BAD_REQUEST,
            "UnknownOperationException",
            "no PartiQL here",
        );
    }
    let is_put = parts.headers.get("x-amz-target").is_some_and(|t| {
        let t = t.as_bytes();
        t.ends_with(b".PutItem")
            || t.ends_with(b".BatchWriteItem")
            || t.ends_with(b".BatchExecuteStatement")
    });
    if is_put {
        let seen = faults.puts_seen.fetch_add(1, Ordering::SeqCst);
        if faults.hold_writes.load(Ordering::SeqCst)
            && faults
                .writes_let_through
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_err()
        {
            faults.writes_held.fetch_add(1, Ordering::SeqCst);
            return std::future::pending().await;
        }
        let delay = *faults.delay_puts_before_forwarding.lock().unwrap();
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let past_the_limit = faults
            .throttle_puts_after
            .lock()
            .unwrap()
            .is_some_and(|limit| seen >= limit);
        let throttle_one = faults
            .throttle_next_puts
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if throttle_one || past_the_limit || faults.throttle_all_puts.load(Ordering::SeqCst) {
            return dynamodb_error(
                StatusCode::BAD_REQUEST,
                "ProvisionedThroughputExceededException",
                "throttled by the test",
            );
        }
        let marker = faults.fail_puts_containing.lock().unwrap().clone();
        if marker.is_some_and(|m| String::from_utf8_lossy(&body).contains(&m)) {
            return dynamodb_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalServerError",
                "failed by the test",
            );
        }
    }
    let target = parts
        .headers
        .get("x-amz-target")
        .and_then(|t| t.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let is_batch = target.ends_with(".BatchGetItem") || target.ends_with(".BatchWriteItem");
    if is_batch {
        faults.batch_calls_seen.fetch_add(1, Ordering::SeqCst);
    }
    let mut held_back = None;
    let mut body = body;
    if is_batch
        && faults
            .leave_unprocessed_next_batches
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    {
        let (forwarded, rest) = split_batch(&body);
        body = forwarded;
        held_back = Some(rest);
    }
    let mut upstream = axum::http::Request::builder()
        .method(parts.method)
        .uri(format!("{}{}", proxy.upstream, parts.uri.path()));
    for (name, value) in &parts.headers {
        // The body may have been rewritten: let the client set its length.
        if name != "content-length" {
            upstream = upstream.header(name, value);
        }
    }
    let answer = proxy
        .client
        .request(upstream.body(Full::new(body)).unwrap())
        .await
        .unwrap();
    let delay = *faults.delay_after_forwarding.lock().unwrap();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let (mut parts, body) = answer.into_parts();
    let mut body = body.collect().await.unwrap().to_bytes();
    if let Some(rest) = held_back {
        let mut answer: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let field = if target.ends_with(".BatchGetItem") {
            "UnprocessedKeys"
        } else {
            "UnprocessedItems"
        };
        answer[field] = rest;
        body = Bytes::from(answer.to_string());
        parts.headers.remove("content-length");
        parts.headers.remove("x-amz-crc32");
    }
    Response::from_parts(parts, Body::from(body))
}

/// Splits a batch call's `RequestItems` (one table): the request carrying the
/// first half of its keys or items, and the rest as an `Unprocessed*` value.
fn split_batch(body: &[u8]) -> (Bytes, serde_json::Value) {
    let mut request: serde_json::Value = serde_json::from_slice(body).unwrap();
    let mut rest = request.clone();
    let tables = request["RequestItems"].as_object_mut().unwrap();
    let rest_tables = rest["RequestItems"].as_object_mut().unwrap();
    for (table, entry) in tables.iter_mut() {
        // BatchGetItem: {"Keys": [...], ...}; BatchWriteItem: [...].
        let (list, rest_list) = if entry.is_array() {
            (entry, &mut rest_tables[table])
        } else {
            (&mut entry["Keys"], &mut rest_tables[table]["Keys"])
        };
        let all = list.as_array().unwrap().clone();
        let half = all.len().div_ceil(2);
        *list = serde_json::Value::Array(all[..half].to_vec());
        *rest_list = serde_json::Value::Array(all[half..].to_vec());
    }
    (
        Bytes::from(request.to_string()),
        rest["RequestItems"].take(),
    )
}
