//! `events/` holds one API Gateway HTTP API (v2) event per provider and event
//! type, built from the fixtures and signed with the local development secrets.
//! This test fails when they drift from the fixtures; regenerate them with
//! `UPDATE_GENERATED=1 cargo test --test it -- sample_events:: fuzz_regressions::`. Every file is then run
//! through the real handler (with the development freshness switch, since the
//! files carry fixed timestamps).

use std::path::PathBuf;

use crate::common::*;

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
        .filter(|n| n.ends_with(".json"))
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
    for (name, text) in expected_events() {
        let request = lambda_http::request::from_str(&text).unwrap();
        let (status, reply) = parts(app.handle(request).await);
        assert_eq!(status, 200, "events/{name}: {reply}");
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
