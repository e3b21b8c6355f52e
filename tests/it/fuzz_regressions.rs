//! Replays every input in `fuzz/regressions/<target>/` (crashes found by
//! `fuzz/run.sh`, plus hand-picked nasty inputs) and the fuzz seeds on every
//! `cargo test`: none may panic or break the parser invariants
//! (`fuzz_support::check_parser`), and every request gets a known status.

use std::path::PathBuf;

use crate::common::*;

fn inputs(dir: &str) -> Vec<(String, Vec<u8>)> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join(dir);
    let Ok(entries) = std::fs::read_dir(&path) else {
        return Vec::new();
    };
    let mut files: Vec<_> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
        .collect()
}

#[test]
fn parser_regressions_do_not_panic() {
    // Every parser sees every kept input: the `parsers` target's and those of
    // the earlier per-provider targets.
    let mut kept = inputs("regressions/parsers");
    for provider in provider_names() {
        kept.extend(inputs(&format!("regressions/{provider}")));
    }
    for (name, data) in kept {
        let outcome =
            std::panic::catch_unwind(|| mailhooks::fuzz_support::check_all_parsers(&data));
        assert!(outcome.is_ok(), "{name} panics");
    }
    for (name, data) in inputs("regressions/mime_words") {
        let text = String::from_utf8_lossy(&data);
        let outcome = std::panic::catch_unwind(|| mailhooks::providers::mime_words::decode(&text));
        assert!(outcome.is_ok(), "{name} panics");
    }
}

/// The `parsers` target's seeds: every fixture of every provider through every
/// parser, with the target's invariants (`fuzz_support::check_parser`: `parse`
/// and `parse_each` agree, every event and every quarantine record storable).
#[test]
fn parser_seeds_meet_the_parser_invariants() {
    let mut seen = 0;
    for provider in provider_names() {
        for (name, body) in fixtures(provider) {
            let outcome =
                std::panic::catch_unwind(|| mailhooks::fuzz_support::check_all_parsers(&body));
            assert!(outcome.is_ok(), "{provider}/{name} breaks an invariant");
            seen += 1;
        }
    }
    assert!(seen > 100, "the fixtures are there: {seen}");
}

/// The request seeds: every fixture of every provider as a signed request, with
/// the provider's local secret (the fuzz request target's configuration).
fn expected_request_seeds() -> Vec<(String, Vec<u8>)> {
    let mut seeds = Vec::new();
    for provider in mailhooks::providers::ALL {
        for (name, body) in fixtures(provider.name()) {
            let Ok(events) = provider.parse(&body) else {
                continue;
            };
            let signed_at = events[0].event_time_ms / 1000;
            let signed = provider.sign(provider.local_secret(), signed_at, &body);
            let route = format!("/webhooks/{}", provider.name());
            let target = if signed.query.is_empty() {
                route
            } else {
                format!("{route}?{}", signed.query)
            };
            // JSON unless the signed request names its own content type.
            let own_type = signed
                .headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("content-type"));
            let mut headers = Vec::new();
            if !own_type {
                headers.push(("content-type".to_owned(), "application/json".to_owned()));
            }
            headers.extend(signed.headers);
            let text =
                mailhooks::fuzz_support::render_request("POST", &target, &headers, &signed.body);
            seeds.push((format!("{}-{name}.txt", provider.name()), text));
        }
    }
    seeds.sort();
    seeds
}

#[test]
fn request_seeds_are_generated_from_the_fixtures() {
    let dir = format!("{}/fuzz/seeds/request", env!("CARGO_MANIFEST_DIR"));
    let expected = expected_request_seeds();
    if std::env::var_os("UPDATE_GENERATED").is_some() {
        std::fs::create_dir_all(&dir).unwrap();
        for (name, text) in &expected {
            std::fs::write(format!("{dir}/{name}"), text).unwrap();
        }
    }
    let on_disk: Vec<(String, Vec<u8>)> = inputs("seeds/request")
        .into_iter()
        .map(|(path, data)| (path.rsplit('/').next().unwrap().to_owned(), data))
        .collect();
    assert!(
        on_disk == expected,
        "fuzz/seeds/request is stale: run UPDATE_GENERATED=1 cargo test --test it -- sample_events:: fuzz_regressions::"
    );
}

#[tokio::test]
async fn request_regressions_and_seeds_get_a_known_answer() {
    let db = Emulator::start().await;
    let mut vars = vec![("MAILHOOKS_DEV_SKIP_FRESHNESS", "true")];
    vars.extend(
        mailhooks::providers::ALL
            .iter()
            .map(|p| (p.secrets_env(), p.local_secret())),
    );
    let app = app_with(&db.endpoint, config(&vars));
    let mut seen = 0;
    for dir in ["seeds/request", "regressions/request"] {
        for (name, data) in inputs(dir) {
            let Some(request) = mailhooks::fuzz_support::parse_request(&data) else {
                continue;
            };
            let (status, reply) = parts(app.handle(request).await);
            assert!(
                matches!(status, 200 | 400 | 401 | 404 | 405 | 413),
                "{name}: {status} {reply}"
            );
            if dir == "seeds/request" {
                assert_eq!(
                    status, 200,
                    "every seed is a valid signed request: {name}: {reply}"
                );
            }
            seen += 1;
        }
    }
    assert!(
        seen >= expected_request_seeds().len(),
        "the request seeds are there"
    );
}
