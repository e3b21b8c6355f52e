//! The real Lambda binary (`bootstrap`) under a fake Lambda Runtime API: the
//! process polls `/invocation/next` as it does in AWS, and each answer (a
//! response or an invocation error) is routed back to whoever invoked. Used by
//! the tests that must see the process itself: what it logs, how it dispatches,
//! what survives its being killed.

use std::collections::HashMap;
use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::routing::{get, post};
use serde_json::Value;
use tokio::sync::{Mutex, mpsc, oneshot};

use super::{TABLE, secrets};

/// How the function answered one invocation: `response` or `error` (the last
/// path segment it posted to), and the JSON it posted.
pub type Answered = (String, Value);

/// One invocation for the function, and where its answer goes.
type Invocation = (String, oneshot::Sender<Answered>);

/// A minimal Lambda Runtime API: hands out queued events, routes answers back.
struct RuntimeApi {
    queue: Mutex<mpsc::Receiver<Invocation>>,
    waiting: Mutex<HashMap<String, oneshot::Sender<Answered>>>,
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
    Path((id, kind)): Path<(String, String)>,
    body: Bytes,
) -> StatusCode {
    if let Some(reply) = api.waiting.lock().await.remove(&id) {
        let _ = reply.send((kind, serde_json::from_slice(&body).unwrap_or(Value::Null)));
    }
    StatusCode::ACCEPTED
}

/// The secrets of every provider (the harness's `secrets(..)[index]`), the
/// development SNS certificate folder (envelopes signed by `Ses::sign` verify,
/// nothing is fetched) and the development URL of every provider that signs
/// one: what a function needs to accept the harness's signed requests.
pub fn provider_env(index: usize) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = mailhooks::providers::ALL
        .iter()
        .map(|p| (p.secrets_env().to_owned(), secrets(p.name())[index].clone()))
        .collect();
    let certificates = mailhooks::providers::ses::dev::temporary_certificate_dir().unwrap();
    env.push((
        "SNS_CERTIFICATES_DIR".to_owned(),
        certificates.to_string_lossy().into_owned(),
    ));
    env.extend(
        mailhooks::providers::ALL
            .iter()
            .filter_map(|p| p.signed_url())
            .map(|url| (url.env.to_owned(), url.local.to_owned())),
    );
    env
}

/// The `bootstrap` process polling its own fake Runtime API.
pub struct Function {
    child: Child,
    events: mpsc::Sender<Invocation>,
    output: Vec<std::thread::JoinHandle<String>>,
}

impl Function {
    /// Starts the binary against the store at `dynamodb_endpoint` and table
    /// [`TABLE`], logging at `info` with test credentials; `env` is added last
    /// (it may override any of these).
    pub async fn start(dynamodb_endpoint: &str, env: &[(String, String)]) -> Function {
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
            .env("RUST_LOG", "info")
            .env("AWS_LAMBDA_RUNTIME_API", address.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", "mailhooks")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "test")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", "test")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_ENDPOINT_URL_DYNAMODB", dynamodb_endpoint)
            .env("TABLE_NAME", TABLE)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let streams: [Box<dyn Read + Send>; 2] = [
            Box::new(child.stdout.take().unwrap()),
            Box::new(child.stderr.take().unwrap()),
        ];
        let output = streams
            .into_iter()
            .map(|mut stream| {
                std::thread::spawn(move || {
                    let mut text = String::new();
                    let _ = stream.read_to_string(&mut text);
                    text
                })
            })
            .collect();
        Function {
            child,
            events,
            output,
        }
    }

    /// Hands `event` (any JSON text) to the function; resolves with its answer.
    /// The invocation is queued at once, so a caller can act (kill the
    /// process) while it runs.
    pub async fn send(&self, event: String) -> oneshot::Receiver<Answered> {
        let (reply, answered) = oneshot::channel();
        self.events.send((event, reply)).await.unwrap();
        answered
    }

    /// Invokes once with `event` (any JSON text): how the function answered.
    pub async fn invoke(&self, event: String) -> Answered {
        let answered = self.send(event).await;
        // A guard against a hung process, not a timing assertion.
        tokio::time::timeout(Duration::from_secs(60), answered)
            .await
            .expect("the function answers")
            .unwrap()
    }

    /// Stops the process (SIGKILL: no shutdown hook runs, no write in flight
    /// completes); everything it wrote on stdout and stderr.
    pub fn stop(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.output.drain(..).map(|r| r.join().unwrap()).collect()
    }
}
