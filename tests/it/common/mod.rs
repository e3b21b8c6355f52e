//! Shared test harness: an in-process DynamoDB API (dynoxide over HTTP on an
//! ephemeral port), the real handler, and API Gateway v2 events.

#![allow(dead_code)] // each test binary uses a different part of the harness

pub mod faults;
pub mod runtime;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine;
use lambda_http::Body;
use mailhooks::auth::FixedClock;
use mailhooks::store::{DynamoStore, sdk, table};
use mailhooks::{App, Config};
use serde_json::{Value, json};

/// The fixed "now" of the tests: 2026-11-22T10:15:30Z.
pub const NOW_MS: i64 = 1_795_342_530_000;
pub const NOW_SECS: i64 = NOW_MS / 1000;
pub const TABLE: &str = "mailhooks-events";

/// The route name of every provider in `mailhooks::providers::ALL`.
pub fn provider_names() -> impl Iterator<Item = &'static str> {
    mailhooks::providers::ALL.iter().map(|p| p.name())
}

/// The provider named `name` (the tests only name registered ones).
pub fn provider(name: &str) -> &'static dyn mailhooks::providers::Provider {
    mailhooks::providers::by_name(name).unwrap()
}

/// Two secrets per provider: the second stands for a rotated-in secret.
/// SendGrid's secrets are public keys, so its two are its development key
/// pairs' public keys (its `sign` holds their private halves).
pub fn secrets(provider: &str) -> [String; 2] {
    if provider == "sendgrid" {
        return mailhooks::providers::sendgrid::DEVELOPMENT_KEY_PAIRS
            .map(|(public, _)| public.to_owned());
    }
    [
        format!("{provider}-old-secret"),
        format!("{provider}-new-secret"),
    ]
}

/// A DynamoDB-compatible HTTP endpoint served in-process, with the events table.
pub struct Emulator {
    pub endpoint: String,
    pub client: Client,
}

impl Emulator {
    pub async fn start() -> Emulator {
        let db = dynoxide::Database::memory().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(dynoxide::server::serve_on(listener, db));
        let client = sdk::local_client(&endpoint, Duration::from_secs(5));
        table::create_table(&client, TABLE).await.unwrap();
        Emulator { endpoint, client }
    }

    /// Every event item in the table (replay claims and quarantine records
    /// left out: see `claims` and `quarantined`).
    pub async fn items(&self) -> Vec<HashMap<String, AttributeValue>> {
        let mut items = self.all_items().await;
        items.retain(mailhooks::store::quarantine::is_event_item);
        items
    }

    /// Every quarantine record in the table, read back (`store::quarantine`).
    pub async fn quarantined(&self) -> Vec<mailhooks::store::quarantine::StoredRecord> {
        let items = self.all_items().await;
        items
            .iter()
            .filter_map(mailhooks::store::quarantine::decode)
            .collect()
    }

    /// Every replay claim in the table (`store::replay`).
    pub async fn claims(&self) -> Vec<HashMap<String, AttributeValue>> {
        let mut items = self.all_items().await;
        items.retain(mailhooks::store::replay::is_claim);
        items
    }

    /// Every item in the table: events, replay claims, quarantine records.
    pub async fn all_items(&self) -> Vec<HashMap<String, AttributeValue>> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(TABLE)
                .set_exclusive_start_key(start)
                .send()
                .await
                .unwrap();
            items.extend(page.items().iter().cloned());
            start = page.last_evaluated_key().cloned();
            if start.is_none() {
                return items;
            }
        }
    }
}

/// Configuration with both secrets of every provider, the development URL of
/// every provider that signs one, and `extra` settings.
pub fn config(extra: &[(&str, &str)]) -> Config {
    let mut vars: HashMap<String, String> = HashMap::from([
        ("TABLE_NAME".to_owned(), TABLE.to_owned()),
        ("EMIT_METRICS".to_owned(), "false".to_owned()),
    ]);
    // The development SNS certificate, so envelopes signed by `Ses::sign` verify.
    let certificates = mailhooks::providers::ses::dev::temporary_certificate_dir().unwrap();
    vars.insert(
        "SNS_CERTIFICATES_DIR".to_owned(),
        certificates.to_string_lossy().into_owned(),
    );
    for provider in mailhooks::providers::ALL {
        vars.insert(
            provider.secrets_env().into(),
            secrets(provider.name()).join(","),
        );
        if let Some(url) = provider.signed_url() {
            vars.insert(url.env.into(), url.local.into());
        }
    }
    for (k, v) in extra {
        vars.insert((*k).to_owned(), (*v).to_owned());
    }
    Config::from_lookup(|k| vars.get(k).cloned()).unwrap()
}

/// The real handler over `endpoint`, with the clock stopped at [`NOW_MS`].
pub fn app_with(endpoint: &str, config: Config) -> App<DynamoStore> {
    app_with_clock(endpoint, config, NOW_MS)
}

/// The real handler over `endpoint`, with the clock stopped at `now_ms`.
pub fn app_with_clock(endpoint: &str, config: Config, now_ms: i64) -> App<DynamoStore> {
    let client = sdk::local_client(endpoint, config.store_timeout);
    let store = DynamoStore::new(client, TABLE, config.retention_days);
    App::new(config, store, Arc::new(FixedClock(now_ms)))
}

/// The real handler over `emulator` with the clock stopped at `now_ms` (only
/// token providers authenticate at another time than [`NOW_MS`]).
pub fn app_at(emulator: &Emulator, now_ms: i64) -> App<DynamoStore> {
    app_with_clock(&emulator.endpoint, config(&[]), now_ms)
}

pub fn app(emulator: &Emulator) -> App<DynamoStore> {
    app_with(&emulator.endpoint, config(&[]))
}

/// An API Gateway HTTP API (payload v2) event.
pub fn apigw_event(
    method: &str,
    path: &str,
    query: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> Value {
    let mut header_map = serde_json::Map::new();
    header_map.insert(
        "content-type".into(),
        json!("application/json; charset=utf-8"),
    );
    for (k, v) in headers {
        header_map.insert(k.to_ascii_lowercase(), json!(v));
    }
    let (body, is_base64) = match std::str::from_utf8(body) {
        Ok(text) => (text.to_owned(), false),
        Err(_) => (base64::engine::general_purpose::STANDARD.encode(body), true),
    };
    json!({
        "version": "2.0",
        "routeKey": "POST /webhooks/{provider}",
        "rawPath": path,
        "rawQueryString": query,
        "headers": header_map,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abcdef1234",
            "domainName": "abcdef1234.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "abcdef1234",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "203.0.113.10", "userAgent": "esp-webhook"},
            "requestId": "req-1",
            "routeKey": "POST /webhooks/{provider}",
            "stage": "$default",
            "time": "22/Nov/2026:10:15:30 +0000",
            "timeEpoch": NOW_MS
        },
        "pathParameters": {"provider": path.rsplit('/').next().unwrap_or_default()},
        "body": body,
        "isBase64Encoded": is_base64
    })
}

/// The request to `name` carrying `body`, signed with `secret` now: query,
/// headers and the body to send (the signature may live in it).
pub fn signed(name: &str, secret: &str, body: &[u8]) -> mailhooks::providers::Signed {
    provider(name).sign(secret, NOW_SECS, body)
}

/// A correctly signed POST of `body` to `provider`, as API Gateway delivers it.
pub fn signed_post(provider: &str, body: &[u8]) -> lambda_http::Request {
    signed_post_with(provider, &secrets(provider)[0], body)
}

/// A POST of `body` to `provider` signed with `secret`, as API Gateway delivers it.
pub fn signed_post_with(provider: &str, secret: &str, body: &[u8]) -> lambda_http::Request {
    let signed = signed(provider, secret, body);
    to_request(&apigw_event(
        "POST",
        &format!("/webhooks/{provider}"),
        &signed.query,
        &signed.headers,
        &signed.body,
    ))
}

/// Sends `body` to `provider` with `query` and `headers` through the handler,
/// as API Gateway delivers it; returns the status and the JSON answer.
pub async fn post(
    app: &App<DynamoStore>,
    provider: &str,
    query: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> (u16, Value) {
    let event = apigw_event(
        "POST",
        &format!("/webhooks/{provider}"),
        query,
        headers,
        body,
    );
    parts(app.handle(to_request(&event)).await)
}

pub fn to_request(event: &Value) -> lambda_http::Request {
    lambda_http::request::from_str(&event.to_string()).unwrap()
}

/// The status and JSON body of a response.
pub fn parts(response: lambda_http::Response<Body>) -> (u16, Value) {
    let status = response.status().as_u16();
    let body = match response.body() {
        Body::Text(t) => serde_json::from_str(t).unwrap(),
        Body::Empty => Value::Null,
        Body::Binary(b) => serde_json::from_slice(b).unwrap(),
        _ => Value::Null,
    };
    (status, body)
}

pub fn fixture(provider: &str, name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/{provider}/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// Every fixture of a provider that is a valid event body, by name.
pub fn fixtures(provider: &str) -> Vec<(String, Vec<u8>)> {
    let dir = format!("{}/tests/fixtures/{provider}", env!("CARGO_MANIFEST_DIR"));
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter_map(|n| n.strip_suffix(".json").map(str::to_owned))
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|n| (n.clone(), fixture(provider, &n)))
        .collect()
}

pub fn text(item: &HashMap<String, AttributeValue>, name: &str) -> Option<String> {
    item.get(name).and_then(|v| v.as_s().ok()).cloned()
}
