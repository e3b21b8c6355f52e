//! Replays every input in `fuzz/regressions/<target>/` (crashes found by
//! `fuzz/run.sh`, plus hand-picked nasty inputs) and the request seeds on every
//! `cargo test`: none may panic, and every request gets a known status.

mod common;

use std::path::PathBuf;

use common::*;

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
    for provider in PROVIDERS {
        for (name, data) in inputs(&format!("regressions/{provider}")) {
            let outcome =
                std::panic::catch_unwind(|| mailhooks::fuzz_support::check_parser(provider, &data));
            assert!(outcome.is_ok(), "{name} panics");
        }
    }
    for (name, data) in inputs("regressions/mime_words") {
        let text = String::from_utf8_lossy(&data);
        let outcome = std::panic::catch_unwind(|| mailhooks::providers::mime_words::decode(&text));
        assert!(outcome.is_ok(), "{name} panics");
    }
}

#[tokio::test]
async fn request_regressions_and_seeds_get_a_known_answer() {
    let db = Emulator::start().await;
    let app = app_with(
        &db.endpoint,
        config(&[
            ("TENCENT_TOKENS", "t"),
            ("ENGAGELAB_APP_KEYS", "k"),
            ("USPEEDO_TOKENS", "u"),
            ("MAILHOOKS_DEV_SKIP_FRESHNESS", "true"),
        ]),
    );
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
    assert!(seen >= PROVIDERS.len(), "the request seeds are there");
}
