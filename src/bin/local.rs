//! The local run command: an embedded DynamoDB-compatible store (dynoxide, on
//! SQLite, served over HTTP in-process) and the same handler as the Lambda,
//! served over plain HTTP on 127.0.0.1. No Docker, no JVM, no AWS account.
//!
//! ```text
//! cargo run --features local --bin local -- [--port 3000] [--dynamodb-port 8000] [--db FILE] [--demo] [--once]
//! cargo run --features local --bin local -- timeline <message-id> [--dynamodb-port 8000]
//! ```

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use axum::Router;
use axum::body::to_bytes;
use axum::extract::{Request as AxumRequest, State};
use axum::response::Response as AxumResponse;
use mailhooks::auth::SystemClock;
use mailhooks::signing::{LOCAL_DEV_SECRETS, local_secret, sign};
use mailhooks::store::item::{PARTITION_KEY, raw_payload};
use mailhooks::store::{DynamoStore, dynamodb};
use mailhooks::{App, Config};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const DEFAULT_TABLE: &str = "mailhooks-events";

struct Options {
    port: u16,
    dynamodb_port: u16,
    db: Option<PathBuf>,
    demo: bool,
    once: bool,
    timeline: Option<String>,
}

fn parse_args() -> Result<Options, String> {
    let mut options = Options {
        port: 3000,
        dynamodb_port: 8000,
        db: None,
        demo: false,
        once: false,
        timeline: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--port" => {
                options.port = value("--port")?
                    .parse()
                    .map_err(|_| "--port must be a number")?
            }
            "--dynamodb-port" => {
                options.dynamodb_port = value("--dynamodb-port")?
                    .parse()
                    .map_err(|_| "--dynamodb-port must be a number")?
            }
            "--db" => options.db = Some(PathBuf::from(value("--db")?)),
            "--demo" => options.demo = true,
            "--once" => options.once = true,
            "timeline" => options.timeline = Some(value("timeline")?),
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(options)
}

const USAGE: &str =
    "usage: local [--port 3000] [--dynamodb-port 8000] [--db FILE] [--demo] [--once]
       local timeline <message-id> [--dynamodb-port 8000]

  --demo   post every file in events/ (freshly signed) and print what landed
  --once   with --demo: exit after the demo instead of serving
  --db     keep the table in this SQLite file instead of in memory";

#[tokio::main]
async fn main() {
    let options = match parse_args() {
        Ok(o) => o,
        Err(problem) => {
            if !problem.is_empty() {
                eprintln!("{problem}");
            }
            eprintln!("{USAGE}");
            std::process::exit(2);
        }
    };
    if let Err(err) = run(options).await {
        eprintln!("error: {err}");
        std::process::exit(1);
    }
}

async fn run(options: Options) -> Result<(), BoxError> {
    let table = std::env::var("TABLE_NAME").unwrap_or_else(|_| DEFAULT_TABLE.to_owned());
    let dynamodb_url = format!("http://127.0.0.1:{}", options.dynamodb_port);
    if let Some(message_id) = &options.timeline {
        let client = dynamodb::local_client(&dynamodb_url, Duration::from_secs(5));
        return print_timeline(&client, &table, message_id).await;
    }

    // The emulator logs every expected error answer (e.g. "table not found" before creating it).
    mailhooks::telemetry::init("info,dynoxide=error");
    let db = match &options.db {
        Some(path) => dynoxide::Database::new(&path.to_string_lossy())?,
        None => dynoxide::Database::memory()?,
    };
    let dynamo_listener = TcpListener::bind(("127.0.0.1", options.dynamodb_port)).await?;
    let dynamodb_url = format!("http://{}", dynamo_listener.local_addr()?);
    tokio::spawn(dynoxide::server::serve_on(dynamo_listener, db));

    let config = local_config(&table)?;
    let client = dynamodb::local_client(&dynamodb_url, config.store_timeout);
    ensure_table(&client, &table).await?;
    let store = DynamoStore::new(client.clone(), table.clone(), config.retention_days);
    let app = Arc::new(App::new(config, store, Arc::new(SystemClock)));

    let listener = TcpListener::bind(("127.0.0.1", options.port)).await?;
    let addr = listener.local_addr()?;
    let router = Router::new().fallback(serve).with_state(Arc::clone(&app));
    let server = tokio::spawn(async move { axum::serve(listener, router).await });
    print_banner(addr, &dynamodb_url, &table, app.config());

    if options.demo {
        run_demo(addr, &client, &table).await?;
        if options.once {
            return Ok(());
        }
    }
    println!("Serving. Press Ctrl-C to stop.");
    tokio::select! {
        result = server => result??,
        _ = tokio::signal::ctrl_c() => println!("stopped"),
    }
    Ok(())
}

/// The process environment, with the local development secrets where none is set.
fn local_config(table: &str) -> Result<Config, BoxError> {
    let mut defaults: HashMap<&str, String> = HashMap::from([
        ("TABLE_NAME", table.to_owned()),
        ("EMIT_METRICS", "false".to_owned()),
    ]);
    for provider in mailhooks::providers::ALL {
        if let Some(secret) = local_secret(provider.name()) {
            defaults.insert(provider.secrets_env(), secret.to_owned());
        }
    }
    Ok(Config::from_lookup(|k| {
        std::env::var(k).ok().or_else(|| defaults.get(k).cloned())
    })?)
}

async fn ensure_table(client: &Client, table: &str) -> Result<(), BoxError> {
    if client
        .describe_table()
        .table_name(table)
        .send()
        .await
        .is_err()
    {
        dynamodb::create_table(client, table).await?;
    }
    Ok(())
}

/// Adapts a plain HTTP request to the Lambda handler and back.
async fn serve(State(app): State<Arc<App<DynamoStore>>>, request: AxumRequest) -> AxumResponse {
    let limit = app.config().max_body_bytes;
    let (parts, body) = request.into_parts();
    let response = match to_bytes(body, limit.saturating_add(1)).await {
        Ok(bytes) => {
            let request =
                lambda_http::Request::from_parts(parts, lambda_http::Body::from(bytes.to_vec()));
            app.handle(request).await
        }
        Err(_) => {
            let err = mailhooks::Error::PayloadTooLarge(limit);
            let mut response = lambda_http::Response::new(lambda_http::Body::from(err.body()));
            *response.status_mut() = lambda_http::http::StatusCode::PAYLOAD_TOO_LARGE;
            response
        }
    };
    let (parts, body) = response.into_parts();
    AxumResponse::from_parts(parts, axum::body::Body::from(body.to_vec()))
}

fn print_banner(addr: SocketAddr, dynamodb_url: &str, table: &str, config: &Config) {
    println!();
    println!("mailhooks is running locally");
    println!("  DynamoDB API (embedded): {dynamodb_url}   table: {table}");
    for provider in mailhooks::providers::ALL {
        let name = provider.name();
        let secret = config
            .secrets_for(name)
            .first()
            .map_or("(none)", String::as_str);
        if name == "engagelab" {
            println!("  POST http://{addr}/webhooks/{name}   app key: {secret}");
        } else {
            println!("  POST http://{addr}/webhooks/{name}?token={secret}");
        }
    }
    let dev = LOCAL_DEV_SECRETS
        .iter()
        .any(|(p, s)| config.secrets_for(p).iter().any(|c| c == s));
    if dev {
        println!("  (local development secrets: never use them in a deployment)");
    }
    println!(
        "  one message's timeline: cargo run --features local --bin local -- timeline <message-id>"
    );
    println!();
}

/// Posts every file in `events/` to the local server, freshly signed, and
/// prints the answers and what landed in the table.
async fn run_demo(addr: SocketAddr, client: &Client, table: &str) -> Result<(), BoxError> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("events");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.retain(|p| p.extension().is_some_and(|e| e == "json"));
    files.sort();
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() as i64;
    let mut messages = Vec::new();
    let mut failures = 0;
    println!("{:<40} {:>6}  answer", "events/ file", "status");
    for file in &files {
        let event: Value = serde_json::from_str(&std::fs::read_to_string(file)?)?;
        let path = event["rawPath"].as_str().unwrap_or("/");
        let provider = path.rsplit('/').next().unwrap_or_default();
        let body = event["body"].as_str().unwrap_or_default();
        let secret = local_secret(provider).unwrap_or_default();
        let (query, headers) = sign(provider, secret, now);
        let target = if query.is_empty() {
            path.to_owned()
        } else {
            format!("{path}?{query}")
        };
        let (status, answer) = post(addr, &target, &headers, body.as_bytes()).await?;
        failures += usize::from(status != 200);
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        println!("{name:<40} {status:>6}  {answer}");
        if let Some(provider) = mailhooks::providers::by_name(provider)
            && let Ok(events) = provider.parse(body.as_bytes())
        {
            messages.extend(events.into_iter().map(|e| e.message_id));
        }
    }
    messages.dedup();
    let count = client
        .scan()
        .table_name(table)
        .select(aws_sdk_dynamodb::types::Select::Count)
        .send()
        .await?
        .count;
    println!(
        "\n{} files posted, {failures} not accepted; {count} items in table {table}\n",
        files.len()
    );
    if let Some(first) = messages.first() {
        print_timeline(client, table, first).await?;
    }
    if failures > 0 {
        return Err(format!("{failures} demo requests were not accepted").into());
    }
    Ok(())
}

/// A minimal HTTP/1.1 POST over loopback; returns the status and the body.
async fn post(
    addr: SocketAddr,
    target: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> Result<(u16, String), BoxError> {
    let mut stream = TcpStream::connect(addr).await?;
    let mut head = format!(
        "POST {target} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body).await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    let text = String::from_utf8_lossy(&response);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or("malformed HTTP response")?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

/// Prints every event of one message in time order.
async fn print_timeline(client: &Client, table: &str, message_id: &str) -> Result<(), BoxError> {
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let page = client
            .query()
            .table_name(table)
            .key_condition_expression("#pk = :id")
            .expression_attribute_names("#pk", PARTITION_KEY)
            .expression_attribute_values(":id", AttributeValue::S(message_id.to_owned()))
            .set_exclusive_start_key(start)
            .send()
            .await?;
        items.extend(page.items().iter().cloned());
        start = page.last_evaluated_key().cloned();
        if start.is_none() {
            break;
        }
    }
    println!("timeline of {message_id}: {} events", items.len());
    println!(
        "{:<25} {:<10} {:<13} {:<28} detail",
        "time", "provider", "event", "recipient"
    );
    for item in &items {
        let s = |name: &str| {
            item.get(name)
                .and_then(|v| v.as_s().ok())
                .cloned()
                .unwrap_or_default()
        };
        let time = s("timestamp")
            .split('#')
            .next()
            .unwrap_or_default()
            .to_owned();
        let detail = [s("bounce_type"), s("reason"), s("url"), s("subject")]
            .into_iter()
            .filter(|d| !d.is_empty())
            .collect::<Vec<_>>()
            .join(" | ");
        let raw = if raw_payload(item).is_some() {
            ""
        } else {
            " (raw truncated)"
        };
        println!(
            "{time:<25} {:<10} {:<13} {:<28} {detail}{raw}",
            s("provider"),
            s("event_type"),
            s("recipient")
        );
    }
    Ok(())
}
