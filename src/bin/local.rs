//! The local run command: an embedded DynamoDB-compatible store (dynoxide, on
//! SQLite, served over HTTP in-process) and the same handler as the Lambda,
//! served over plain HTTP on 127.0.0.1. No Docker, no JVM, no AWS account.
//!
//! ```text
//! cargo run --features local --bin local -- [--port 3000] [--dynamodb-port 8000] [--db FILE] [--demo] [--once]
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::Client;
use mailhooks::Config;
use mailhooks::local_server::{self, LocalOptions};
use mailhooks::signing::{LOCAL_DEV_SECRETS, local_secret, sign};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const DEFAULT_TABLE: &str = "mailhooks-events";

struct Options {
    port: u16,
    dynamodb_port: u16,
    db: Option<PathBuf>,
    demo: bool,
    once: bool,
}

fn parse_args() -> Result<Options, String> {
    let mut options = Options {
        port: 3000,
        dynamodb_port: 8000,
        db: None,
        demo: false,
        once: false,
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
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(options)
}

const USAGE: &str =
    "usage: local [--port 3000] [--dynamodb-port 8000] [--db FILE] [--demo] [--once]

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

    // The emulator logs every expected error answer (e.g. "table not found" before creating it).
    mailhooks::telemetry::init("info,dynoxide=error");
    let stack = local_server::start(&LocalOptions {
        port: options.port,
        dynamodb_port: options.dynamodb_port,
        db: options.db.clone(),
        table: table.clone(),
    })
    .await?;
    print_banner(stack.addr, &stack.dynamodb_url, &table, stack.app.config());

    if options.demo {
        run_demo(stack.addr, &stack.client, &stack.dynamodb_url, &table).await?;
        if options.once {
            return Ok(());
        }
    }
    println!("Serving. Press Ctrl-C to stop.");
    tokio::select! {
        result = stack.server => result??,
        _ = tokio::signal::ctrl_c() => println!("stopped"),
    }
    Ok(())
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
        "  read the table: {} timeline <message-id>   (also: recipient, suppressions)",
        cli_command(dynamodb_url)
    );
    println!();
}

/// Posts every file in `events/` to the local server, freshly signed, and
/// prints the answers and what landed in the table.
async fn run_demo(
    addr: SocketAddr,
    client: &Client,
    dynamodb_url: &str,
    table: &str,
) -> Result<(), BoxError> {
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
        println!(
            "one of them: {} timeline \'{first}\'\n",
            cli_command(dynamodb_url)
        );
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

/// How to run `mailhooks-cli` against this run command's store.
fn cli_command(dynamodb_url: &str) -> String {
    if dynamodb_url == "http://127.0.0.1:8000" {
        "cargo run --bin mailhooks-cli -- --local".to_owned()
    } else {
        format!("cargo run --bin mailhooks-cli -- --endpoint {dynamodb_url}")
    }
}
