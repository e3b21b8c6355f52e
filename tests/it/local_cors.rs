//! The local run command's two endpoints (the embedded DynamoDB API and the
//! webhook front end) against a web page: a request from a browser (an
//! `Origin`, a cross-site `Sec-Fetch-Site`, a CORS preflight) is refused and
//! never answered with CORS headers, while the AWS SDK and webhook senders,
//! which send neither, keep working. Needs the `local` feature:
//! `cargo test --features local --test it -- local_cors::`.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mailhooks::local_server::{self, LocalOptions, LocalStack};
use mailhooks::store::sdk;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const TABLE: &str = "mailhooks-events";
const EVIL: (&str, &str) = ("Origin", "https://evil.example");

async fn stack() -> LocalStack {
    local_server::start(&LocalOptions {
        port: 0,
        dynamodb_port: 0,
        db: None,
        table: TABLE.to_owned(),
    })
    .await
    .unwrap()
}

fn dynamodb_addr(stack: &LocalStack) -> SocketAddr {
    stack
        .dynamodb_url
        .trim_start_matches("http://")
        .parse()
        .unwrap()
}

/// A ListTables call as the SDK would send it (dynoxide checks that auth
/// material is present, never the signature).
fn list_tables(extra: &[(&str, &str)]) -> (Vec<(String, String)>, Vec<u8>) {
    let headers: Vec<(String, String)> = [
        ("Content-Type", "application/x-amz-json-1.0"),
        ("X-Amz-Target", "DynamoDB_20120810.ListTables"),
        ("X-Amz-Date", "20250101T000000Z"),
        (
            "Authorization",
            "AWS4-HMAC-SHA256 Credential=local/20250101/us-east-1/dynamodb/aws4_request, \
             SignedHeaders=host;x-amz-date;x-amz-target, Signature=00",
        ),
    ]
    .iter()
    .chain(extra)
    .map(|(n, v)| (n.to_string(), v.to_string()))
    .collect();
    (headers, b"{}".to_vec())
}

/// A signed Tencent delivery, as the ESP sends it.
fn webhook(stack: &LocalStack, extra: &[(&str, &str)]) -> (String, Vec<(String, String)>, Vec<u8>) {
    let secret = stack.app.config().secrets_for("tencent")[0].clone();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let tencent = mailhooks::providers::by_name("tencent").unwrap();
    let query = tencent.sign(&secret, now, b"").query;
    let headers = [("Content-Type", "application/json")]
        .iter()
        .chain(extra)
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    let body = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/tencent/delivered.json"
    ))
    .unwrap();
    (format!("/webhooks/tencent?{query}"), headers, body)
}

/// One HTTP/1.1 exchange; returns the status, the response headers (names
/// lower-cased) and the body.
async fn exchange(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> (u16, Vec<(String, String)>, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut head = format!(
        "{method} {target} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut response))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let mut lines = head.lines();
    let status = lines.next().unwrap().split_whitespace().nth(1).unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status.parse().unwrap(), headers, body.to_owned())
}

fn assert_no_cors(headers: &[(String, String)], what: &str) {
    let cors: Vec<_> = headers
        .iter()
        .filter(|(n, _)| n.starts_with("access-control-"))
        .collect();
    assert!(
        cors.is_empty(),
        "{what} answered with CORS headers: {cors:?}"
    );
}

#[tokio::test]
async fn requests_from_a_web_origin_are_refused_without_cors_on_both_endpoints() {
    let stack = stack().await;
    let dynamo = dynamodb_addr(&stack);
    for extra in [vec![EVIL], vec![("Sec-Fetch-Site", "cross-site")]] {
        let (headers, body) = list_tables(&extra);
        let (status, answer, text) = exchange(dynamo, "POST", "/", &headers, &body).await;
        assert_eq!(status, 403, "DynamoDB API with {extra:?}: {text}");
        assert!(!text.contains(TABLE), "the table list leaked: {text}");
        assert_no_cors(&answer, "the DynamoDB API");

        let (target, headers, body) = webhook(&stack, &extra);
        let (status, answer, text) = exchange(stack.addr, "POST", &target, &headers, &body).await;
        assert_eq!(status, 403, "webhook with {extra:?}: {text}");
        assert_no_cors(&answer, "the webhook endpoint");
    }
    // Nothing a page sent reached the table.
    let scan = stack.client.scan().table_name(TABLE).send().await.unwrap();
    assert_eq!(scan.count, 0);
}

#[tokio::test]
async fn cors_preflights_are_refused_on_both_endpoints() {
    let stack = stack().await;
    let preflight: Vec<(String, String)> = [
        EVIL,
        ("Access-Control-Request-Method", "POST"),
        (
            "Access-Control-Request-Headers",
            "content-type,x-amz-target,authorization",
        ),
    ]
    .iter()
    .map(|(n, v)| (n.to_string(), v.to_string()))
    .collect();
    for (addr, target) in [
        (dynamodb_addr(&stack), "/"),
        (stack.addr, "/webhooks/tencent"),
    ] {
        let (status, answer, _) = exchange(addr, "OPTIONS", target, &preflight, b"").await;
        assert_eq!(status, 403, "preflight to {addr}{target}");
        assert_no_cors(&answer, "a preflight");
    }
}

#[tokio::test]
async fn the_sdk_and_webhook_senders_still_work() {
    let stack = stack().await;
    // The same calls as above without the browser headers are served.
    let (headers, body) = list_tables(&[]);
    let (status, _, text) = exchange(dynamodb_addr(&stack), "POST", "/", &headers, &body).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains(TABLE), "{text}");

    let (target, headers, body) = webhook(&stack, &[]);
    let (status, _, text) = exchange(stack.addr, "POST", &target, &headers, &body).await;
    assert_eq!(status, 200, "{text}");

    // An SDK client of the advertised URL (the CLI's path) reads what was stored.
    let sdk = sdk::local_client(&stack.dynamodb_url, Duration::from_secs(10));
    let scan = sdk.scan().table_name(TABLE).send().await.unwrap();
    assert!(scan.count > 0, "nothing stored");
}
