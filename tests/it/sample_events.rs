//! `events/` holds one API Gateway HTTP API (v2) event per provider and event
//! type, built from the fixtures and signed with the local development secrets,
//! and, for the provider whose events AWS hands over directly
//! (`invocation::DIRECT_PROVIDER`), an EventBridge event and an SNS invocation
//! per [`DIRECT_SAMPLES`] entry.
//! This test fails when they drift from the fixtures; regenerate them with
//! `UPDATE_GENERATED=1 cargo test --test it -- sample_events:: fuzz_regressions::`. Every file is then run
//! through the real handler (with the development freshness switch, since the
//! files carry fixed timestamps).

use std::path::PathBuf;

use lambda_http::lambda_runtime::{Context, LambdaEvent};
use mailhooks::invocation::{self, DIRECT_PROVIDER, DirectRoute, Invocation};
use mailhooks::providers::{self, Provider};

use crate::common::*;
use crate::direct_invocation::{TOPIC_ARN, eventbridge_event, sns_lambda_event};

/// The direct samples: a fixture of the direct provider and its EventBridge
/// `detail-type`. Each gives `<provider>-eventbridge-<fixture>.json` and
/// `<provider>-sns-lambda-<fixture>.json` once the provider is registered.
const DIRECT_SAMPLES: &[(&str, &str)] = &[
    ("delivered", "Email Delivered"),
    ("bounce", "Email Bounced"),
];

/// The kinds of direct sample file, as their names say them.
const DIRECT_KINDS: [&str; 2] = ["eventbridge", "sns-lambda"];

/// The EventBridge event and the SNS invocation that carry `fixture` of `provider`.
fn direct_samples(
    provider: &dyn Provider,
    fixture_name: &str,
    detail_type: &str,
) -> [(String, String); 2] {
    let name = provider.name();
    let body = fixture(name, fixture_name);
    // The event's own time, so the file is reproducible.
    let time_ms = provider.parse(&body).unwrap()[0].event_time_ms;
    let file = fixture_name.replace('_', "-");
    [
        (
            format!("{name}-{}-{file}.json", DIRECT_KINDS[0]),
            eventbridge_event(detail_type, &body, time_ms),
        ),
        (
            format!("{name}-{}-{file}.json", DIRECT_KINDS[1]),
            sns_lambda_event(TOPIC_ARN, &[&body], time_ms),
        ),
    ]
    .map(|(file, event)| (file, serde_json::to_string_pretty(&event).unwrap() + "\n"))
}

/// Every direct sample, for the direct provider when it is registered.
fn expected_direct_events() -> Vec<(String, String)> {
    let Some(provider) = providers::by_name(DIRECT_PROVIDER) else {
        return Vec::new();
    };
    DIRECT_SAMPLES
        .iter()
        .flat_map(|(fixture_name, detail_type)| direct_samples(provider, fixture_name, detail_type))
        .collect()
}

/// Direct sample files written ahead of their provider's registration (on a
/// branch without it): left alone until it is registered, then regenerated.
fn awaiting_provider(file: &str) -> bool {
    providers::by_name(DIRECT_PROVIDER).is_none()
        && DIRECT_KINDS
            .iter()
            .any(|kind| file.starts_with(&format!("{DIRECT_PROVIDER}-{kind}-")))
}

fn events_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("events")
}

/// The expected file name and content of every sample event.
fn expected_events() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for provider in mailhooks::providers::ALL {
        for (name, body) in fixtures(provider.name()) {
            let events = provider.parse(&body).unwrap();
            // A signed timestamp is the event's own time, so the file is reproducible.
            let signed_at = events[0].event_time_ms / 1000;
            let signed = provider.sign(provider.local_secret(), signed_at, &body);
            let provider = provider.name();
            let event = apigw_event(
                "POST",
                &format!("/webhooks/{provider}"),
                &signed.query,
                &signed.headers,
                &signed.body,
            );
            let text = serde_json::to_string_pretty(&event).unwrap() + "\n";
            out.push((format!("{provider}-{}.json", name.replace('_', "-")), text));
        }
    }
    out.extend(expected_direct_events());
    out
}

#[test]
fn events_directory_matches_the_fixtures() {
    let expected = expected_events();
    if std::env::var_os("UPDATE_GENERATED").is_some() {
        std::fs::create_dir_all(events_dir()).unwrap();
        for (name, text) in &expected {
            std::fs::write(events_dir().join(name), text).unwrap();
        }
    }
    let mut on_disk: Vec<String> = std::fs::read_dir(events_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json") && !awaiting_provider(n))
        .collect();
    on_disk.sort();
    let mut names: Vec<String> = expected.iter().map(|(n, _)| n.clone()).collect();
    names.sort();
    assert_eq!(
        on_disk, names,
        "run UPDATE_GENERATED=1 cargo test --test it -- sample_events:: fuzz_regressions::"
    );
    for (name, text) in expected {
        let actual = std::fs::read_to_string(events_dir().join(&name)).unwrap();
        assert_eq!(
            actual, text,
            "events/{name} is stale: run UPDATE_GENERATED=1 cargo test --test it -- sample_events:: fuzz_regressions::"
        );
    }
}

#[tokio::test]
async fn every_sample_event_is_accepted_by_the_handler() {
    let db = Emulator::start().await;
    let mut vars = vec![("MAILHOOKS_DEV_SKIP_FRESHNESS", "true")];
    let secrets: Vec<(String, String)> = mailhooks::providers::ALL
        .iter()
        .map(|p| (p.secrets_env().to_owned(), p.local_secret().to_owned()))
        .collect();
    vars.extend(secrets.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let app = app_with(&db.endpoint, config(&vars));
    let route = DirectRoute::new(
        providers::by_name(DIRECT_PROVIDER),
        vec![TOPIC_ARN.to_owned()],
    );
    for (name, text) in expected_events() {
        // What the function is invoked with: the dispatcher tells the kinds apart.
        let invocation: Invocation = serde_json::from_str(&text).unwrap();
        let answer = invocation::handle(
            &app,
            &route,
            LambdaEvent::new(invocation, Context::default()),
        )
        .await
        .unwrap_or_else(|e| panic!("events/{name}: {e}"));
        let answer = serde_json::to_value(answer).unwrap();
        match answer.get("statusCode") {
            Some(status) => assert_eq!(status, 200, "events/{name}: {answer}"),
            None => assert_eq!(answer["refused"], 0, "events/{name}: {answer}"),
        }
    }
    // Without the development switch the static EngageLab files are stale.
    let strict = app_with(&db.endpoint, config(&vars[1..]));
    let (_, text) = expected_events()
        .into_iter()
        .find(|(n, _)| n.starts_with("engagelab-"))
        .unwrap();
    let (status, reply) = parts(
        strict
            .handle(lambda_http::request::from_str(&text).unwrap())
            .await,
    );
    assert_eq!(
        (status, reply["error"].as_str()),
        (401, Some("stale_timestamp"))
    );
}

#[test]
fn cargo_lambda_watch_defaults_use_the_local_secrets() {
    let manifest =
        std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
            .unwrap();
    for provider in mailhooks::providers::ALL {
        let env = provider.secrets_env();
        let line = format!("{env} = \"{}\"", provider.local_secret());
        assert!(
            manifest.contains(&line),
            "Cargo.toml [package.metadata.lambda] must set {line}"
        );
    }
}
