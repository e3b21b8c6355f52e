//! The real Lambda binary (`bootstrap`) at `RUST_LOG=trace`, through the Lambda
//! runtime: no secret, token, `Authorization` value, signature or body reaches
//! its output, whatever its dependencies (`lambda_runtime`, `aws_sigv4`, the SDK,
//! hyper) log. `tests/log_hygiene.rs` calls the handler directly and cannot see
//! what the runtime logs around it.

use std::collections::HashMap;
use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::common::{Emulator, TABLE, apigw_event, fixtures, provider, provider_names, secrets};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::routing::{get, post};
use base64::Engine;
use mailhooks::providers::AuthScheme;
use serde_json::Value;
use tokio::sync::{Mutex, mpsc, oneshot};

/// In every body; must never be seen in the output.
const BODY_MARKER: &str = "BodyMarker-5e1d7a";
/// The function's AWS secret key (the store is reached with SigV4).
const AWS_SECRET: &str = "aws-secret-marker-90c2";

/// The configured secret of a provider: the harness's rotated-in one (for
/// SendGrid a development public key, the only kind of secret it accepts).
fn secret(provider: &str) -> String {
    secrets(provider)[1].clone()
}

/// A wrong secret of a provider.
fn wrong(provider: &str) -> String {
    format!("{provider}-wrong-Zp91")
}

/// One invocation for the function, and where its answer goes.
type Invocation = (String, oneshot::Sender<Value>);

/// A minimal Lambda Runtime API: hands out queued events, routes answers back.
struct RuntimeApi {
    queue: Mutex<mpsc::Receiver<Invocation>>,
    waiting: Mutex<HashMap<String, oneshot::Sender<Value>>>,
    next_id: AtomicU64,
}

async fn next(State(api): State<Arc<RuntimeApi>>) -> (HeaderMap, String) {
    // One function process polls at a time: holding the lock while waiting is fine.
    let Some((event, reply)) = api.queue.lock().await.recv().await else {
        return std::future::pending().await;
    };
    let id = format!("req-{}", api.next_id.fetch_add(1, Ordering::SeqCst));
    api.waiting.lock().await.insert(id.clone(), reply);
    let mut headers = HeaderMap::new();
    headers.insert(
        "lambda-runtime-aws-request-id",
        HeaderValue::from_str(&id).unwrap(),
    );
    let deadline = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        + 30_000;
    headers.insert(
        "lambda-runtime-deadline-ms",
        HeaderValue::from_str(&deadline.to_string()).unwrap(),
    );
    headers.insert(
        "lambda-runtime-invoked-function-arn",
        HeaderValue::from_static("arn:aws:lambda:us-east-1:123456789012:function:mailhooks"),
    );
    (headers, event)
}

/// A response or an invocation error: handed to whoever waits for it.
async fn answer(
    State(api): State<Arc<RuntimeApi>>,
    Path((id, _kind)): Path<(String, String)>,
    body: Bytes,
) -> StatusCode {
    if let Some(reply) = api.waiting.lock().await.remove(&id) {
        let _ = reply.send(serde_json::from_slice(&body).unwrap_or(Value::Null));
    }
    StatusCode::ACCEPTED
}

/// The function process and the channel that feeds it invocations.
struct Function {
    child: Child,
    events: mpsc::Sender<Invocation>,
    output: Vec<std::thread::JoinHandle<String>>,
}

impl Function {
    async fn start(dynamodb_endpoint: &str) -> Function {
        let (events, queue) = mpsc::channel(1);
        let api = Arc::new(RuntimeApi {
            queue: Mutex::new(queue),
            waiting: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
        });
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route("/2018-06-01/runtime/invocation/{id}/{kind}", post(answer))
            .with_state(api);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let mut child = Command::new(env!("CARGO_BIN_EXE_bootstrap"))
            .env_clear()
            .env("RUST_LOG", "trace")
            .env("AWS_LAMBDA_RUNTIME_API", address.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", "mailhooks")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "test")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", "test")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
            .env("AWS_ENDPOINT_URL_DYNAMODB", dynamodb_endpoint)
            .env("TABLE_NAME", TABLE)
            .envs(
                mailhooks::providers::ALL
                    .iter()
                    .map(|p| (p.secrets_env(), secret(p.name()))),
            )
            // SNS envelopes signed with the development key verify; nothing is fetched.
            .env(
                "SNS_CERTIFICATES_DIR",
                mailhooks::providers::ses::dev::temporary_certificate_dir().unwrap(),
            )
            .envs(
                mailhooks::providers::ALL
                    .iter()
                    .filter_map(|p| p.signed_url())
                    .map(|url| (url.env, url.local)),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut output = Vec::new();
        let streams: [Box<dyn Read + Send>; 2] = [
            Box::new(child.stdout.take().unwrap()),
            Box::new(child.stderr.take().unwrap()),
        ];
        for mut stream in streams {
            output.push(std::thread::spawn(move || {
                let mut text = String::new();
                let _ = stream.read_to_string(&mut text);
                text
            }));
        }
        Function {
            child,
            events,
            output,
        }
    }

    /// Invokes once; the status code of the answer.
    async fn invoke(&self, event: Value) -> u64 {
        let (reply, answer) = oneshot::channel();
        self.events.send((event.to_string(), reply)).await.unwrap();
        // A guard against a hung process, not a timing assertion.
        let answer = tokio::time::timeout(Duration::from_secs(60), answer)
            .await
            .expect("the function answers")
            .unwrap();
        answer["statusCode"].as_u64().unwrap_or(0)
    }

    /// Stops the process; everything it wrote on stdout and stderr.
    fn stop(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.output
            .drain(..)
            .map(|reader| reader.join().unwrap())
            .collect()
    }
}

/// A valid body of `provider` (its delivery fixture with the shortest name),
/// every address carrying [`BODY_MARKER`].
fn body(provider: &str) -> Vec<u8> {
    let (_, body) = fixtures(provider)
        .into_iter()
        .filter(|(name, _)| name.contains("deliver"))
        .min_by_key(|(name, _)| name.len())
        .unwrap();
    String::from_utf8(body)
        .unwrap()
        .replace('@', &format!("+{BODY_MARKER}@"))
        .into_bytes()
}

fn basic(token: &str) -> String {
    let credentials = base64::engine::general_purpose::STANDARD.encode(format!("esp:{token}"));
    format!("Basic {credentials}")
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A request: its query, its headers, its body and the status it must be answered.
type Request = (String, Vec<(String, String)>, Vec<u8>, u64);

/// Every request sent to `name`: good ones (twice: stored, then a duplicate),
/// wrong secrets, wrong signatures.
fn requests(name: &str) -> Vec<Request> {
    let (good, bad) = (secret(name), wrong(name));
    let body = body(name);
    match provider(name).scheme() {
        AuthScheme::SignedHeaders { signature } | AuthScheme::UntimedSignature { signature } => {
            let signed = |secret: &str| provider(name).sign(secret, now_secs(), &body);
            let mut tampered = signed(&good);
            for (_, value) in tampered
                .headers
                .iter_mut()
                .filter(|(k, _)| k.eq_ignore_ascii_case(signature))
            {
                let flipped = if value.starts_with('0') { "1" } else { "0" };
                value.replace_range(0..1, flipped);
            }
            [
                (signed(&good), 200),
                (signed(&good), 200),
                (signed(&bad), 401),
                (tampered, 401),
            ]
            .into_iter()
            .map(|(request, status)| (request.query, request.headers, request.body, status))
            .collect()
        }
        AuthScheme::SignedBody { object, signature } => {
            let sign = |key: &str| provider(name).sign(key, now_secs(), &body).body;
            let mut tampered: Value = serde_json::from_slice(&sign(&good)).unwrap();
            tampered[object][signature] = Value::from("ab".repeat(32));
            vec![
                (String::new(), Vec::new(), sign(&good), 200),
                (String::new(), Vec::new(), sign(&good), 200),
                (String::new(), Vec::new(), sign(&bad), 401),
                (
                    String::new(),
                    Vec::new(),
                    serde_json::to_vec(&tampered).unwrap(),
                    401,
                ),
            ]
        }
        // Signed inside the body by AWS: see [`body_signed_requests`].
        AuthScheme::SnsEnvelope => Vec::new(),
        AuthScheme::Token => {
            let query = |token: &str| format!("token={token}");
            let auth = |token: &str| vec![("Authorization".to_owned(), basic(token))];
            vec![
                (query(&good), Vec::new(), body.clone(), 200),
                (query(&good), Vec::new(), body.clone(), 200),
                (String::new(), auth(&good), body.clone(), 200),
                (query(&bad), Vec::new(), body.clone(), 401),
                (String::new(), auth(&bad), body.clone(), 401),
                (query(&good), auth(&bad), body, 401),
            ]
        }
    }
}

/// For a provider that signs inside the body: the bodies to send (signed with
/// the secret, twice; with a wrong secret; with a changed signature), each with
/// its signature and the status it must be answered.
fn body_signed_requests(provider: &str) -> Vec<(Vec<u8>, String, u64)> {
    let esp = crate::common::provider(provider);
    let Some(field) = esp.scheme().body_signature_field() else {
        return Vec::new();
    };
    let sign = |secret: &str| esp.sign(secret, now_secs(), &body(provider)).body;
    let signature = |body: &[u8]| {
        let value: Value = serde_json::from_slice(body).unwrap();
        value[field].as_str().unwrap().to_owned()
    };
    let good = sign(&secret(provider));
    let mut tampered: Value = serde_json::from_slice(&good).unwrap();
    let original = signature(&good);
    let first = if original.starts_with('A') { 'B' } else { 'A' };
    let changed = format!("{first}{}", &original[1..]);
    tampered[field] = Value::String(changed);
    let tampered = serde_json::to_vec(&tampered).unwrap();
    let bad = sign(&wrong(provider));
    [
        (good.clone(), 200),
        (good, 200),
        (bad, 401),
        (tampered, 401),
    ]
    .into_iter()
    .map(|(body, status)| {
        let signature = signature(&body);
        (body, signature, status)
    })
    .collect()
}

#[tokio::test]
async fn the_lambda_binary_at_trace_logs_no_secret_token_signature_or_body() {
    let db = Emulator::start().await;
    let function = Function::start(&db.endpoint).await;
    let mut invocations = 0;
    let mut forbidden = vec![
        BODY_MARKER.to_owned(),
        AWS_SECRET.to_owned(),
        // SigV4's Authorization header to the store, and its signing steps.
        "Signature=".to_owned(),
        "canonical_request".to_owned(),
    ];
    for provider in provider_names() {
        forbidden.push(secret(provider));
        forbidden.push(wrong(provider));
        let signature = match crate::common::provider(provider).scheme() {
            AuthScheme::SignedHeaders { signature }
            | AuthScheme::UntimedSignature { signature } => signature,
            AuthScheme::Token | AuthScheme::SignedBody { .. } | AuthScheme::SnsEnvelope => {
                "Authorization"
            }
        };
        for (query, headers, body, status) in requests(provider) {
            for (name, value) in &headers {
                if name == "Authorization" || name.eq_ignore_ascii_case(signature) {
                    forbidden.push(value.clone());
                    forbidden.extend(value.strip_prefix("Basic ").map(str::to_owned));
                }
            }
            // A signature carried in the body: its hex and its token.
            if let AuthScheme::SignedBody { object, .. } =
                crate::common::provider(provider).scheme()
                && let Ok(value) = serde_json::from_slice::<Value>(&body)
                && let Some(fields) = value[object].as_object()
            {
                forbidden.extend(
                    fields
                        .values()
                        .filter_map(|v| v.as_str())
                        .filter(|v| v.len() > 12)
                        .map(str::to_owned),
                );
            }
            let event = apigw_event(
                "POST",
                &format!("/webhooks/{provider}"),
                &query,
                &headers,
                &body,
            );
            let answered = function.invoke(event).await;
            assert_eq!(answered, status, "{provider} {query} {headers:?}");
            invocations += 1;
        }
        for (body, signature, status) in body_signed_requests(provider) {
            forbidden.push(signature);
            let event = apigw_event("POST", &format!("/webhooks/{provider}"), "", &[], &body);
            let answered = function.invoke(event).await;
            assert_eq!(answered, status, "{provider} body-signed");
            invocations += 1;
        }
    }
    let output = function.stop();
    assert!(
        output.matches("\"message\":\"request\"").count() >= invocations,
        "the capture works: {output}"
    );
    assert!(
        output.contains("\"level\":\"DEBUG\""),
        "RUST_LOG=trace was in force (dependencies log at debug): {output}"
    );
    for secret in forbidden {
        assert!(
            !output.contains(&secret),
            "{secret:?} in the output:\n{output}"
        );
    }
}
