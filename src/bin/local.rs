//! The local run command: an embedded DynamoDB-compatible store (dynoxide, on
//! SQLite, served over HTTP in-process) and the same handler as the Lambda,
//! served over plain HTTP on 127.0.0.1. No Docker, no JVM, no AWS account.
//! Both endpoints refuse requests from web pages (see [`local_server`]).
//!
//! ```text
//! cargo run --features local --bin local -- [--port 3000] [--dynamodb-port 8000] [--db FILE] [--demo] [--once]
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::Client;
use clap::Parser;
use mailhooks::Config;
use mailhooks::local_server::{self, LocalOptions};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const DEFAULT_TABLE: &str = "mailhooks-events";

/// mailhooks on this machine: an embedded DynamoDB-compatible store and the
/// Lambda's handler over plain HTTP on 127.0.0.1.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Options {
    /// Port of the webhook front end (0: any free port).
    #[arg(long, default_value_t = 3000)]
    port: u16,
    /// Port of the embedded DynamoDB API (0: any free port).
    #[arg(long, default_value_t = 8000)]
    dynamodb_port: u16,
    /// Keep the table in this SQLite file instead of in memory.
    #[arg(long)]
    db: Option<PathBuf>,
    /// Post every file in events/ (freshly signed) and print what landed.
    #[arg(long)]
    demo: bool,
    /// With --demo: exit after the demo instead of serving.
    #[arg(long, requires = "demo")]
    once: bool,
}

#[tokio::main]
async fn main() {
    let options = Options::parse();
    if let Err(err) = run(options).await {
        eprintln!("error: {err}");
        std::process::exit(1);
    }
}

async fn run(options: Options) -> Result<(), BoxError> {
    let table = std::env::var("TABLE_NAME").unwrap_or_else(|_| DEFAULT_TABLE.to_owned());

    // The emulator logs every expected error answer (e.g. "table not found" before
    // creating it). At a terminal the demo table already shows every answer, so the
    // per-request lines are left out unless RUST_LOG asks for them.
    let default_filter = if mailhooks::telemetry::is_interactive() {
        "warn,dynoxide=error"
    } else {
        "info,dynoxide=error"
    };
    mailhooks::telemetry::init(default_filter);
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
    print!("{}", banner(addr, dynamodb_url, table, config));
}

/// The start-up banner. Only the built-in development secrets are shown (they
/// are public); a secret from the environment is named by its variable, never
/// printed, so a real token does not end up on screen or in a terminal log.
fn banner(addr: SocketAddr, dynamodb_url: &str, table: &str, config: &Config) -> String {
    let mut text = String::from("\nmailhooks is running locally\n");
    text.push_str(&format!(
        "  DynamoDB API (embedded): {dynamodb_url}   table: {table}\n"
    ));
    let mut dev = false;
    for provider in mailhooks::providers::ALL {
        let name = provider.name();
        let url = format!("http://{addr}/webhooks/{name}");
        let configured = config.secrets_for(name);
        let dev_secret =
            Some(provider.local_secret()).filter(|s| configured.iter().any(|c| c == s));
        let others = configured.len() - usize::from(dev_secret.is_some());
        let line = match dev_secret {
            Some(secret) => provider.scheme().console_hint(&url, secret),
            None if others == 0 => {
                format!("POST {url}   no secret configured: every request is refused")
            }
            None => format!(
                "POST {url}   secret: from {} (not shown)",
                provider.secrets_env()
            ),
        };
        text.push_str(&format!("  {line}\n"));
        if dev_secret.is_some() && others > 0 {
            text.push_str(&format!(
                "      (also {others} from {}, not shown)\n",
                provider.secrets_env()
            ));
        }
        dev |= dev_secret.is_some();
    }
    if dev {
        text.push_str("  (local development secrets: never use them in a deployment)\n");
    }
    text.push_str(&format!(
        "  read the table: {} timeline <message-id>   (also: recipient, suppressions)\n\n",
        cli_command(dynamodb_url)
    ));
    text
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
    // Direct invocations (EventBridge, SNS→Lambda) have no HTTP route: they are
    // for `cargo lambda invoke` (docs/deploy.md), not for this server.
    let mut direct = 0;
    files.retain(|file| {
        let is_http = std::fs::read_to_string(file)
            .ok()
            .and_then(|text| serde_json::from_str::<Value>(&text).ok())
            .is_some_and(|event| event.get("rawPath").is_some());
        direct += usize::from(!is_http);
        is_http
    });
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() as i64;
    let mut messages = Vec::new();
    let mut failures = 0;
    // The file-name column is as wide as the longest name (every provider's files).
    let width = files
        .iter()
        .filter_map(|f| f.file_name())
        .map(|n| n.len())
        .max()
        .unwrap_or(0)
        .max("events/ file".len());
    println!("{:<width$} {:>6}  answer", "events/ file", "status");
    for file in &files {
        let event: Value = serde_json::from_str(&std::fs::read_to_string(file)?)?;
        let path = event["rawPath"].as_str().unwrap_or("/");
        let provider = path.rsplit('/').next().unwrap_or_default();
        let body = event["body"].as_str().unwrap_or_default();
        let Some(esp) = mailhooks::providers::by_name(provider) else {
            return Err(format!("{}: no provider {provider:?}", file.display()).into());
        };
        let signed = esp.sign(esp.local_secret(), now, body.as_bytes());
        let (query, headers) = (signed.query, signed.headers);
        let body = signed.body;
        let target = if query.is_empty() {
            path.to_owned()
        } else {
            format!("{path}?{query}")
        };
        let (status, answer) = post(addr, &target, &headers, &body).await?;
        failures += usize::from(status != 200);
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        println!("{name:<width$} {status:>6}  {answer}");
        if let Ok(events) = esp.parse(&body) {
            messages.extend(events.into_iter().map(|e| e.message_id));
        }
    }
    messages.dedup();
    // Events only: Mailgun's replay claims share the table (store::replay).
    let count = client
        .scan()
        .table_name(table)
        .select(aws_sdk_dynamodb::types::Select::Count)
        .filter_expression("#sk <> :claim")
        .expression_attribute_names("#sk", mailhooks::store::codec::SORT_KEY)
        .expression_attribute_values(
            ":claim",
            aws_sdk_dynamodb::types::AttributeValue::S(
                mailhooks::store::replay::CLAIM_SORT_KEY.to_owned(),
            ),
        )
        .send()
        .await?
        .count;
    println!(
        "\n{} files posted, {failures} not accepted; {count} items in table {table} \
         ({direct} direct-invocation files skipped: cargo lambda invoke)\n",
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
        "POST {target} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    // JSON unless the signed request names its own type (Mandrill's form).
    if !headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("content-type"))
    {
        head.push_str("Content-Type: application/json; charset=utf-8\r\n");
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn config(pairs: &[(&str, &str)]) -> Config {
        Config::from_lookup(|k| {
            if k == "TABLE_NAME" {
                return Some("t".to_owned());
            }
            pairs
                .iter()
                .find(|(name, _)| *name == k)
                .map(|(_, v)| (*v).to_owned())
        })
        .unwrap()
    }

    fn text(config: &Config) -> String {
        let addr: SocketAddr = "127.0.0.1:3000".parse().unwrap();
        banner(addr, "http://127.0.0.1:8000", "t", config)
    }

    #[test]
    fn development_secrets_are_shown() {
        let pairs: Vec<(&str, &str)> = mailhooks::providers::ALL
            .iter()
            .map(|p| (p.secrets_env(), p.local_secret()))
            .collect();
        let banner = text(&config(&pairs));
        assert!(banner.contains("/webhooks/tencent?token=local-tencent-token\n"));
        assert!(banner.contains("/webhooks/uspeedo?token=local-uspeedo-token\n"));
        assert!(banner.contains("signing key: local-engagelab-key\n"));
        assert!(banner.contains("never use them in a deployment"));
    }

    #[test]
    fn secrets_from_the_environment_are_never_printed() {
        let banner = text(&config(&[
            ("TENCENT_TOKENS", "real-tencent-token"),
            ("ENGAGELAB_APP_KEYS", "real-engagelab-key"),
            ("USPEEDO_TOKENS", "local-uspeedo-token,real-uspeedo-token"),
        ]));
        for secret in [
            "real-tencent-token",
            "real-engagelab-key",
            "real-uspeedo-token",
        ] {
            assert!(!banner.contains(secret), "{secret} printed:\n{banner}");
        }
        assert!(banner.contains("/webhooks/tencent   secret: from TENCENT_TOKENS (not shown)"));
        assert!(banner.contains("secret: from ENGAGELAB_APP_KEYS (not shown)"));
        // A development secret among them is still shown, the others counted.
        assert!(banner.contains("?token=local-uspeedo-token\n"));
        assert!(banner.contains("(also 1 from USPEEDO_TOKENS, not shown)"));
    }

    #[test]
    fn a_provider_without_secrets_is_said_to_refuse_everything() {
        let banner = text(&config(&[("TENCENT_TOKENS", " , ")]));
        assert!(banner.contains("/webhooks/tencent   no secret configured"));
        assert!(!banner.contains("never use them in a deployment"));
    }

    #[test]
    fn arguments_are_well_formed() {
        Options::command().debug_assert();
    }
}
