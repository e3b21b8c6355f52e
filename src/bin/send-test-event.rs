//! Posts a realistic sample webhook — any provider, any event type — with a
//! fresh event time and a valid signature or token to any URL (the local run
//! command or a deployed API), and prints each answer. This is how to check the
//! wiring before pointing an ESP at the URL.
//!
//! ```text
//! cargo run --bin send-test-event -- --provider engagelab --url https://.../webhooks/engagelab --secret KEY
//! cargo run --bin send-test-event -- --provider all --event all --url http://127.0.0.1:3000
//! ```

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use lambda_http::http::{Request, Uri};
use mailhooks::signing::{local_secret, sign};
use serde_json::{Value, json};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// One sample per documented event type (the test fixtures, built from the providers' samples).
const SAMPLES: &[(&str, &str, &str)] = &[
    (
        "tencent",
        "bounce",
        include_str!("../../tests/fixtures/tencent/bounce.json"),
    ),
    (
        "tencent",
        "bounce_soft",
        include_str!("../../tests/fixtures/tencent/bounce_soft.json"),
    ),
    (
        "tencent",
        "click",
        include_str!("../../tests/fixtures/tencent/click.json"),
    ),
    (
        "tencent",
        "deferred",
        include_str!("../../tests/fixtures/tencent/deferred.json"),
    ),
    (
        "tencent",
        "delivered",
        include_str!("../../tests/fixtures/tencent/delivered.json"),
    ),
    (
        "tencent",
        "dropped",
        include_str!("../../tests/fixtures/tencent/dropped.json"),
    ),
    (
        "tencent",
        "eventid_only",
        include_str!("../../tests/fixtures/tencent/eventid_only.json"),
    ),
    (
        "tencent",
        "open",
        include_str!("../../tests/fixtures/tencent/open.json"),
    ),
    (
        "tencent",
        "processed_legacy",
        include_str!("../../tests/fixtures/tencent/processed_legacy.json"),
    ),
    (
        "tencent",
        "spamreport",
        include_str!("../../tests/fixtures/tencent/spamreport.json"),
    ),
    (
        "tencent",
        "unsubscribe",
        include_str!("../../tests/fixtures/tencent/unsubscribe.json"),
    ),
    (
        "engagelab",
        "click",
        include_str!("../../tests/fixtures/engagelab/click.json"),
    ),
    (
        "engagelab",
        "delivered",
        include_str!("../../tests/fixtures/engagelab/delivered.json"),
    ),
    (
        "engagelab",
        "invalid_email",
        include_str!("../../tests/fixtures/engagelab/invalid_email.json"),
    ),
    (
        "engagelab",
        "invalid_email_blacklist",
        include_str!("../../tests/fixtures/engagelab/invalid_email_blacklist.json"),
    ),
    (
        "engagelab",
        "open",
        include_str!("../../tests/fixtures/engagelab/open.json"),
    ),
    (
        "engagelab",
        "report_spam",
        include_str!("../../tests/fixtures/engagelab/report_spam.json"),
    ),
    (
        "engagelab",
        "route",
        include_str!("../../tests/fixtures/engagelab/route.json"),
    ),
    (
        "engagelab",
        "sent",
        include_str!("../../tests/fixtures/engagelab/sent.json"),
    ),
    (
        "engagelab",
        "soft_bounce",
        include_str!("../../tests/fixtures/engagelab/soft_bounce.json"),
    ),
    (
        "engagelab",
        "target",
        include_str!("../../tests/fixtures/engagelab/target.json"),
    ),
    (
        "engagelab",
        "target_multi",
        include_str!("../../tests/fixtures/engagelab/target_multi.json"),
    ),
    (
        "engagelab",
        "unsubscribe",
        include_str!("../../tests/fixtures/engagelab/unsubscribe.json"),
    ),
    (
        "uspeedo",
        "batch",
        include_str!("../../tests/fixtures/uspeedo/batch.json"),
    ),
    (
        "uspeedo",
        "bounce",
        include_str!("../../tests/fixtures/uspeedo/bounce.json"),
    ),
    (
        "uspeedo",
        "click",
        include_str!("../../tests/fixtures/uspeedo/click.json"),
    ),
    (
        "uspeedo",
        "complaint",
        include_str!("../../tests/fixtures/uspeedo/complaint.json"),
    ),
    (
        "uspeedo",
        "deliver",
        include_str!("../../tests/fixtures/uspeedo/deliver.json"),
    ),
    (
        "uspeedo",
        "open",
        include_str!("../../tests/fixtures/uspeedo/open.json"),
    ),
    (
        "uspeedo",
        "request",
        include_str!("../../tests/fixtures/uspeedo/request.json"),
    ),
    (
        "uspeedo",
        "request_products_doc",
        include_str!("../../tests/fixtures/uspeedo/request_products_doc.json"),
    ),
    (
        "uspeedo",
        "soft_bounce",
        include_str!("../../tests/fixtures/uspeedo/soft_bounce.json"),
    ),
    (
        "uspeedo",
        "unsubscribe",
        include_str!("../../tests/fixtures/uspeedo/unsubscribe.json"),
    ),
];

const USAGE: &str = "usage: send-test-event --provider <tencent|engagelab|uspeedo|all> --url <URL> [--event <name|all>] [--secret S] [--basic] [--list]

  --url      the webhook URL; with --provider all, the base URL (…/webhooks/<provider> is appended)
  --event    a sample name (see --list); default all
  --secret   the provider's token or app key; defaults to the local development secret
             for loopback URLs, else to the first value of TENCENT_TOKENS / ENGAGELAB_APP_KEYS / USPEEDO_TOKENS
  --basic    send Tencent/uSpeedo tokens as HTTP Basic auth instead of ?token=
  --list     print the sample names and exit";

struct Options {
    provider: String,
    event: String,
    url: String,
    secret: Option<String>,
    basic: bool,
    list: bool,
}

fn parse_args() -> Result<Options, String> {
    let mut o = Options {
        provider: String::new(),
        event: "all".into(),
        url: String::new(),
        secret: None,
        basic: false,
        list: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--provider" => o.provider = value("--provider")?,
            "--event" => o.event = value("--event")?,
            "--url" => o.url = value("--url")?,
            "--secret" => o.secret = Some(value("--secret")?),
            "--basic" => o.basic = true,
            "--list" => o.list = true,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if !o.list && (o.provider.is_empty() || o.url.is_empty()) {
        return Err("--provider and --url are required".into());
    }
    Ok(o)
}

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
    if o.list {
        for (provider, name, _) in SAMPLES {
            println!("{provider:<10} {name}");
        }
        return Ok(true);
    }
    let selected: Vec<_> = SAMPLES
        .iter()
        .filter(|(p, n, _)| {
            (o.provider == "all" || *p == o.provider) && (o.event == "all" || *n == o.event)
        })
        .collect();
    if selected.is_empty() {
        return Err(format!(
            "no sample for provider {:?} and event {:?} (see --list)",
            o.provider, o.event
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
    for (provider, name, sample) in selected {
        let url = if o.provider == "all" {
            format!("{}/webhooks/{provider}", o.url.trim_end_matches('/'))
        } else {
            o.url.clone()
        };
        let secret = secret_for(provider, &url, o.secret.as_deref())?;
        let body = refresh_times(provider, sample, now_ms)?;
        let (query, mut headers) = sign(provider, &secret, now_ms / 1000);
        let target = if query.is_empty() || o.basic {
            url.clone()
        } else {
            format!("{url}{}{query}", if url.contains('?') { '&' } else { '?' })
        };
        if o.basic && *provider != "engagelab" {
            use base64::Engine;
            let credentials =
                base64::engine::general_purpose::STANDARD.encode(format!("{provider}:{secret}"));
            headers.push(("Authorization".into(), format!("Basic {credentials}")));
        }
        let mut request = Request::post(target.parse::<Uri>()?)
            .header("content-type", "application/json; charset=utf-8");
        for (k, v) in &headers {
            request = request.header(k.as_str(), v.as_str());
        }
        let response = client
            .request(request.body(Full::new(Bytes::from(body)))?)
            .await?;
        let status = response.status();
        let answer = response.into_body().collect().await?.to_bytes();
        all_ok &= status.is_success();
        println!(
            "{provider:<10} {name:<24} {} {}",
            status.as_u16(),
            String::from_utf8_lossy(&answer)
        );
    }
    Ok(all_ok)
}

/// The secret to sign with: `--secret`, else the local one for loopback URLs, else the environment.
fn secret_for(provider: &str, url: &str, given: Option<&str>) -> Result<String, BoxError> {
    if let Some(secret) = given {
        return Ok(secret.to_owned());
    }
    let host = url.parse::<Uri>()?.host().unwrap_or_default().to_owned();
    if host == "127.0.0.1" || host == "localhost" || host == "[::1]" {
        return Ok(local_secret(provider).unwrap_or_default().to_owned());
    }
    let env = mailhooks::providers::by_name(provider)
        .map(|p| p.secrets_env())
        .unwrap_or_default();
    std::env::var(env)
        .ok()
        .and_then(|v| {
            v.split(',')
                .map(str::trim)
                .find(|s| !s.is_empty())
                .map(str::to_owned)
        })
        .ok_or_else(|| format!("no secret for {provider}: pass --secret or set {env}").into())
}

/// The sample with its event time set to now and tagged with this run's id (in
/// the provider's pass-through data), so every test send is a new, findable event.
fn refresh_times(provider: &str, sample: &str, now_ms: i64) -> Result<String, BoxError> {
    let mut value: Value = serde_json::from_str(sample)?;
    let run_id = format!("test-{now_ms:x}");
    match provider {
        "tencent" => {
            value["timestamp"] = json!(now_ms / 1000);
            value["X-Tencentcloudses-Cb-Mailhooks-Test"] = json!(run_id);
        }
        "engagelab" => {
            value["itime"] = json!(now_ms);
            value["custom_args"]["mailhooks_test"] = json!(run_id);
        }
        _ => {
            if let Some(items) = value["Data"].as_array_mut() {
                for item in items.iter_mut() {
                    item["ReceiptTime"] = json!(now_ms / 1000);
                    item["MailhooksTest"] = json!(run_id);
                }
            }
        }
    }
    Ok(value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fixture_is_a_sample() {
        let mut fixtures = Vec::new();
        for provider in ["tencent", "engagelab", "uspeedo"] {
            let dir = format!("{}/tests/fixtures/{provider}", env!("CARGO_MANIFEST_DIR"));
            for entry in std::fs::read_dir(dir).unwrap() {
                let name = entry.unwrap().file_name().to_string_lossy().into_owned();
                if let Some(stem) = name.strip_suffix(".json") {
                    fixtures.push((provider.to_owned(), stem.to_owned()));
                }
            }
        }
        fixtures.sort();
        let mut samples: Vec<_> = SAMPLES
            .iter()
            .map(|(p, n, _)| (p.to_string(), n.to_string()))
            .collect();
        samples.sort();
        assert_eq!(samples, fixtures);
    }

    #[test]
    fn refreshed_samples_parse_with_the_new_time() {
        let now_ms = 1_795_342_530_123;
        for (provider, name, sample) in SAMPLES {
            let body = refresh_times(provider, sample, now_ms).unwrap();
            let events = mailhooks::providers::by_name(provider)
                .unwrap()
                .parse(body.as_bytes())
                .unwrap();
            assert!(
                events
                    .iter()
                    .all(|e| e.event_time_ms / 1000 == now_ms / 1000),
                "{provider}/{name}"
            );
            let original = mailhooks::providers::by_name(provider)
                .unwrap()
                .parse(sample.as_bytes())
                .unwrap();
            assert_ne!(
                events[0].sort_key(),
                original[0].sort_key(),
                "{provider}/{name}: a new event"
            );
        }
    }

    #[test]
    fn loopback_urls_default_to_the_local_secret() {
        assert_eq!(
            secret_for("tencent", "http://127.0.0.1:3000/webhooks/tencent", None).unwrap(),
            "local-tencent-token"
        );
        assert_eq!(
            secret_for("tencent", "https://x.example/webhooks/tencent", Some("s")).unwrap(),
            "s"
        );
    }
}
