//! Posts a realistic sample webhook — any provider, any event type — with a
//! fresh event time and a valid signature or token to any URL (the local run
//! command or a deployed API), and prints each answer. This is how to check the
//! wiring before pointing an ESP at the URL. The samples are the test fixtures
//! (`tests/fixtures/<provider>/*.json`), found by directory.
//!
//! ```text
//! cargo run --bin send-test-event -- --provider engagelab --url https://.../webhooks/engagelab --secret KEY
//! cargo run --bin send-test-event -- --provider all --event all --url http://127.0.0.1:3000
//! ```

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use lambda_http::http::{Request, Uri};
use mailhooks::providers::{self, AuthScheme, Provider};
use serde_json::Value;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Posts freshly timed, correctly signed sample webhooks to a URL.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Options {
    /// A provider's route name, or `all`.
    #[arg(long, required_unless_present = "list")]
    provider: Option<String>,
    /// The webhook URL; with `--provider all`, the base URL (`/webhooks/<provider>` is appended).
    #[arg(long, required_unless_present = "list")]
    url: Option<String>,
    /// A sample name (see `--list`), or `all`.
    #[arg(long, default_value = "all")]
    event: String,
    /// The provider's secret; defaults to its local development secret for
    /// loopback URLs, else to the first value of its secret variable.
    #[arg(long)]
    secret: Option<String>,
    /// Send tokens as HTTP Basic auth instead of `?token=` (token providers only).
    #[arg(long)]
    basic: bool,
    /// Print the sample names and exit.
    #[arg(long)]
    list: bool,
    /// Where the samples are: one folder per provider.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures"))]
    fixtures: PathBuf,
}

/// One sample: its provider, name and body.
struct Sample {
    provider: &'static dyn Provider,
    name: String,
    body: String,
}

/// Every `*.json` sample of every registered provider that its parser accepts.
fn samples(dir: &Path) -> Vec<Sample> {
    let mut out = Vec::new();
    for provider in providers::ALL {
        let Ok(entries) = std::fs::read_dir(dir.join(provider.name())) else {
            continue;
        };
        let mut found: Vec<Sample> = entries
            .filter_map(|e| {
                let path = e.ok()?.path();
                let name = path
                    .file_name()?
                    .to_str()?
                    .strip_suffix(".json")?
                    .to_owned();
                let body = std::fs::read_to_string(&path).ok()?;
                provider.parse(body.as_bytes()).ok()?;
                Some(Sample {
                    provider: *provider,
                    name,
                    body,
                })
            })
            .collect();
        found.sort_by(|a, b| a.name.cmp(&b.name));
        out.extend(found);
    }
    out
}

#[tokio::main]
async fn main() {
    let options = Options::parse();
    match run(options).await {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(err) => {
            eprintln!("error: {err}");
            std::process::exit(1);
        }
    }
}

/// Sends the selected samples; true when every answer was 2xx.
async fn run(o: Options) -> Result<bool, BoxError> {
    let all = samples(&o.fixtures);
    if o.list {
        for sample in &all {
            println!("{:<10} {}", sample.provider.name(), sample.name);
        }
        return Ok(true);
    }
    let provider = o.provider.unwrap_or_default();
    let base_url = o.url.unwrap_or_default();
    let selected: Vec<&Sample> = all
        .iter()
        .filter(|s| {
            (provider == "all" || s.provider.name() == provider)
                && (o.event == "all" || s.name == o.event)
        })
        .collect();
    if selected.is_empty() {
        return Err(format!(
            "no sample for provider {provider:?} and event {:?} in {} (see --list)",
            o.event,
            o.fixtures.display()
        )
        .into());
    }
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_native_roots(rustls::crypto::aws_lc_rs::default_provider())?
        .https_or_http()
        .enable_http1()
        .build();
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build(connector);
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() as i64;
    let mut all_ok = true;
    for sample in selected {
        let esp = sample.provider;
        let name = esp.name();
        let url = if provider == "all" {
            format!("{}/webhooks/{name}", base_url.trim_end_matches('/'))
        } else {
            base_url.clone()
        };
        let secret = secret_for(esp, &url, o.secret.as_deref())?;
        let body = refreshed(esp, &sample.body, now_ms)?;
        // An ESP that signs its URL signs the one posted to, as it would.
        let signed = esp.sign_for_url(&url, &secret, now_ms / 1000, body.as_bytes());
        let mut headers = signed.headers;
        let basic = o.basic && esp.scheme() == AuthScheme::Token;
        let target = if signed.query.is_empty() || basic {
            url.clone()
        } else {
            let separator = if url.contains('?') { '&' } else { '?' };
            format!("{url}{separator}{}", signed.query)
        };
        if basic {
            use base64::Engine;
            let credentials =
                base64::engine::general_purpose::STANDARD.encode(format!("{name}:{secret}"));
            headers.push(("Authorization".into(), format!("Basic {credentials}")));
        }
        let mut request = Request::post(target.parse::<Uri>()?);
        // JSON unless the signed request names its own type (Mandrill's form).
        if !headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        {
            request = request.header("content-type", "application/json; charset=utf-8");
        }
        for (k, v) in &headers {
            request = request.header(k.as_str(), v.as_str());
        }
        let response = client
            .request(request.body(Full::new(Bytes::from(signed.body)))?)
            .await?;
        let status = response.status();
        let answer = response.into_body().collect().await?.to_bytes();
        all_ok &= status.is_success();
        println!(
            "{name:<10} {:<24} {} {}",
            sample.name,
            status.as_u16(),
            String::from_utf8_lossy(&answer)
        );
    }
    Ok(all_ok)
}

/// The secret to sign with: `--secret`, else the local one for loopback URLs, else the environment.
fn secret_for(esp: &dyn Provider, url: &str, given: Option<&str>) -> Result<String, BoxError> {
    if let Some(secret) = given {
        return Ok(secret.to_owned());
    }
    let host = url.parse::<Uri>()?.host().unwrap_or_default().to_owned();
    if host == "127.0.0.1" || host == "localhost" || host == "[::1]" {
        return Ok(esp.local_secret().to_owned());
    }
    let env = esp.secrets_env();
    std::env::var(env)
        .ok()
        .and_then(|v| {
            v.split(',')
                .map(str::trim)
                .find(|s| !s.is_empty())
                .map(str::to_owned)
        })
        .ok_or_else(|| format!("no secret for {}: pass --secret or set {env}", esp.name()).into())
}

/// The sample with its event time set to now and tagged with this run's id (in
/// the provider's pass-through data), so every test send is a new, findable event.
fn refreshed(esp: &dyn Provider, sample: &str, now_ms: i64) -> Result<String, BoxError> {
    let mut value: Value = serde_json::from_str(sample)?;
    esp.refresh_sample(&mut value, now_ms, &format!("test-{now_ms:x}"));
    Ok(value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn fixtures() -> PathBuf {
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures"))
    }

    #[test]
    fn arguments_are_well_formed() {
        Options::command().debug_assert();
    }

    #[test]
    fn every_provider_has_samples_found_by_directory() {
        let all = samples(&fixtures());
        for provider in providers::ALL {
            let count = all
                .iter()
                .filter(|s| s.provider.name() == provider.name())
                .count();
            let on_disk = std::fs::read_dir(fixtures().join(provider.name()))
                .unwrap()
                .filter(|e| {
                    let path = e.as_ref().unwrap().path();
                    path.extension().is_some_and(|x| x == "json")
                })
                .count();
            assert!(count > 0, "{}", provider.name());
            assert_eq!(
                count,
                on_disk,
                "{}: every .json fixture is a sample",
                provider.name()
            );
        }
    }

    #[test]
    fn refreshed_samples_parse_with_the_new_time() {
        let now_ms = 1_795_342_530_123;
        for sample in samples(&fixtures()) {
            let esp = sample.provider;
            let body = refreshed(esp, &sample.body, now_ms).unwrap();
            let events = esp.parse(body.as_bytes()).unwrap();
            assert!(
                events
                    .iter()
                    .all(|e| e.event_time_ms / 1000 == now_ms / 1000),
                "{}/{}",
                esp.name(),
                sample.name
            );
            let original = esp.parse(sample.body.as_bytes()).unwrap();
            assert_ne!(
                mailhooks::store::codec::sort_key(&events[0]),
                mailhooks::store::codec::sort_key(&original[0]),
                "{}/{}: a new event",
                esp.name(),
                sample.name
            );
        }
    }

    #[test]
    fn loopback_urls_default_to_the_local_secret() {
        for esp in providers::ALL {
            let url = format!("http://127.0.0.1:3000/webhooks/{}", esp.name());
            assert_eq!(secret_for(*esp, &url, None).unwrap(), esp.local_secret());
            let remote = format!("https://x.example/webhooks/{}", esp.name());
            assert_eq!(secret_for(*esp, &remote, Some("s")).unwrap(), "s");
        }
    }
}
