//! Mandrill through the real handler: the URL check and the empty test batch
//! Mandrill sends when a webhook is saved, the configured URL, only Mandrill's
//! one-field form accepted (a captured signature cannot carry another body), a
//! full 1,000-event batch sent twice, and sync (deny-list) events in
//! `mailhooks-cli suppressions`.

use std::process::Command;
use std::time::Instant;

use crate::common::*;
use mailhooks::providers::mandrill::{self, LOCAL_WEBHOOK_URL};
use serde_json::{Value, json};

/// A `mandrill_events` array signed for the development URL, through the handler.
async fn send(app: &mailhooks::App<mailhooks::store::DynamoStore>, events: &[u8]) -> (u16, Value) {
    parts(app.handle(signed_post("mandrill", events)).await)
}

#[tokio::test]
async fn mandrills_url_check_gets_200_without_credentials() {
    let db = Emulator::start().await;
    let app = app(&db);
    for method in ["HEAD", "GET"] {
        let event = apigw_event(method, "/webhooks/mandrill", "", &[], b"");
        let (status, _) = parts(app.handle(to_request(&event)).await);
        assert_eq!(status, 200, "{method}");
    }
    assert!(db.items().await.is_empty());
}

#[tokio::test]
async fn the_send_test_empty_batch_is_answered_and_stores_nothing() {
    let db = Emulator::start().await;
    let (status, reply) = send(&app(&db), b"[]").await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["control"], "empty_batch");
    assert!(db.items().await.is_empty());
    // Unsigned, it is refused like any other request.
    let (status, _) = post(&app(&db), "mandrill", "", &[], b"mandrill_events=%5B%5D").await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn without_a_configured_url_every_request_is_refused() {
    let db = Emulator::start().await;
    let mut config = config(&[]);
    config.webhook_urls.clear();
    let (status, reply) = parts(
        app_with(&db.endpoint, config)
            .handle(signed_post("mandrill", &fixture("mandrill", "send")))
            .await,
    );
    assert_eq!(
        (status, reply["error"].as_str()),
        (401, Some("not_configured"))
    );
    // Signed for another URL than the configured one: a bad signature.
    let other = config_with_url("https://hooks.example.com/webhooks/mandrill/");
    let (status, reply) = parts(
        app_with(&db.endpoint, other)
            .handle(signed_post("mandrill", &fixture("mandrill", "send")))
            .await,
    );
    assert_eq!(
        (status, reply["error"].as_str()),
        (401, Some("bad_signature"))
    );
    assert!(db.items().await.is_empty());
}

/// The event a captured signature covers, and the review's body that re-splits
/// into the same signed text (URL + `mandrill_events` + events) as a bare JSON
/// array with other events: an empty key `=mandrill_events`, fields in any order.
const CAPTURED_EVENTS: &str =
    r#"[{"event":"send","msg":{"email":"victim@example.com"},"_id":"abcdef0123","ts":1420303407}]"#;
const REUSING_BODY: &str = r#"[{"event":"se=nd","msg":{"email":"victim@example.com"},"_id":"ab&=mandrill_events&cdef0123","ts":1420303407}]"#;

#[tokio::test]
async fn a_captured_signature_reused_on_a_reshaped_body_is_refused_and_stores_nothing() {
    let db = Emulator::start().await;
    let app = app(&db);
    let captured = signed(
        "mandrill",
        &secrets("mandrill")[0],
        CAPTURED_EVENTS.as_bytes(),
    );
    let signature = captured.headers[0].clone();
    assert_eq!(signature.0, "X-Mandrill-Signature");
    for content_type in ["application/x-www-form-urlencoded", "application/json"] {
        let headers = [
            signature.clone(),
            ("content-type".to_owned(), content_type.to_owned()),
        ];
        let (status, reply) = post(&app, "mandrill", "", &headers, REUSING_BODY.as_bytes()).await;
        assert_eq!(
            (status, reply["error"].as_str()),
            (401, Some("unsupported_format")),
            "{content_type}: {reply}"
        );
    }
    assert!(db.items().await.is_empty());
}

#[tokio::test]
async fn only_a_form_body_of_one_mandrill_events_field_is_accepted() {
    let db = Emulator::start().await;
    let app = app(&db);
    let secret = &secrets("mandrill")[0];
    let events = CAPTURED_EVENTS.as_bytes();
    let encoded: String = form_urlencoded::byte_serialize(events).collect();
    let form = |sig: String| {
        vec![
            ("X-Mandrill-Signature".to_owned(), sig),
            (
                "content-type".to_owned(),
                "application/x-www-form-urlencoded".to_owned(),
            ),
        ]
    };
    // Each signed as the sorted-fields algorithm signs its fields.
    let empty_key = format!("=X&mandrill_events={encoded}");
    let empty_key_sig = mandrill::signature(
        secret,
        LOCAL_WEBHOOK_URL,
        &[("", b"X"), ("mandrill_events", events)],
    );
    let second = format!("mandrill_events={encoded}&x=1");
    let second_sig = mandrill::signature(
        secret,
        LOCAL_WEBHOOK_URL,
        &[("mandrill_events", events), ("x", b"1")],
    );
    let captured = signed("mandrill", secret, events);
    let json_sig = captured.headers[0].1.clone();
    for (name, headers, body) in [
        ("an empty key", form(empty_key_sig), empty_key.into_bytes()),
        ("a second field", form(second_sig), second.into_bytes()),
        ("bare JSON", form(json_sig.clone()), events.to_vec()),
        (
            "the right form sent as JSON",
            vec![("X-Mandrill-Signature".to_owned(), json_sig)],
            captured.body.clone(),
        ),
    ] {
        let (status, reply) = post(&app, "mandrill", "", &headers, &body).await;
        assert_eq!(
            (status, reply["error"].as_str()),
            (401, Some("unsupported_format")),
            "{name}: {reply}"
        );
    }
    assert!(db.items().await.is_empty());
    let (status, reply) = post(&app, "mandrill", "", &captured.headers, &captured.body).await;
    assert_eq!(
        (status, reply["stored"].as_u64()),
        (200, Some(1)),
        "{reply}"
    );
}

fn config_with_url(urls: &str) -> mailhooks::Config {
    config(&[("MANDRILL_WEBHOOK_URL", urls)])
}

#[tokio::test]
async fn several_configured_urls_are_each_accepted() {
    let db = Emulator::start().await;
    let deployed = "https://hooks.example.com/webhooks/mandrill";
    let app = app_with(
        &db.endpoint,
        config_with_url(&format!("{deployed}, {LOCAL_WEBHOOK_URL}")),
    );
    let provider = provider("mandrill");
    let events = fixture("mandrill", "example_open");
    for url in [deployed, LOCAL_WEBHOOK_URL] {
        let signed = provider.sign_for_url(url, &secrets("mandrill")[1], NOW_SECS, &events);
        let (status, reply) = post(&app, "mandrill", "", &signed.headers, &signed.body).await;
        assert_eq!(status, 200, "{url}: {reply}");
    }
    assert_eq!(
        db.items().await.len(),
        1,
        "the same event twice is one item"
    );
}

/// 1,000 distinct events in one batch, as Mandrill's largest.
fn full_batch() -> Vec<u8> {
    let template: Value =
        serde_json::from_slice(&fixture("mandrill", "example_batch_all")).unwrap();
    let template = template.as_array().unwrap();
    let events: Vec<Value> = (0..1000)
        .map(|i| {
            let mut event = template[i % 9].clone();
            event["_id"] = json!(format!("batch-{i:04}"));
            event["msg"]["email"] = json!(format!("r{i}@example.com"));
            event
        })
        .collect();
    serde_json::to_vec(&events).unwrap()
}

#[tokio::test]
async fn a_full_batch_is_stored_once_even_when_sent_twice() {
    let db = Emulator::start().await;
    // A 20 s storage bound: this tests what is stored. 1,000 items into the emulator
    // from a debug build take 0.6-1.7 s on this shared machine, at times past the
    // 1.5 s production bound (whose behaviour the fault tests cover).
    let app = app_with(&db.endpoint, config(&[("STORE_TIMEOUT_MS", "20000")]));
    let batch = full_batch();
    let started = Instant::now();
    let (status, first) = send(&app, &batch).await;
    let took = started.elapsed();
    eprintln!("1,000-event Mandrill batch stored in {took:?}");
    assert_eq!(status, 200, "{first}");
    assert_eq!(
        (first["received"].as_u64(), first["stored"].as_u64()),
        (Some(1000), Some(1000))
    );
    let (status, again) = send(&app, &batch).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(
        (again["stored"].as_u64(), again["duplicates"].as_u64()),
        (Some(0), Some(1000))
    );
    let items = db.items().await;
    assert_eq!(items.len(), 1000);
    assert!(
        items
            .iter()
            .all(|i| text(i, "provider").as_deref() == Some("mandrill"))
    );
}

/// Runs `mailhooks-cli` against the emulator; returns its standard output.
async fn cli(db: &Emulator, args: &[&str]) -> String {
    let mut command = Command::new(env!("CARGO_BIN_EXE_mailhooks-cli"));
    command
        .arg("--endpoint")
        .arg(&db.endpoint)
        .args(args)
        .env_clear();
    if let Ok(path) = std::env::var("PATH") {
        command.env("PATH", path);
    }
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .unwrap();
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// A deny-list sync event for `address` with `reason` and `action`.
fn sync_event(address: &str, reason: &str, action: &str, ts: i64) -> Value {
    json!({
        "type": "blacklist", "action": action, "ts": ts,
        "reject": {"reason": reason, "detail": "d", "email": address,
                   "created_at": "2026-11-01 10:00:00", "expired": false}
    })
}

#[tokio::test]
async fn every_deny_list_add_appears_in_suppressions_and_removals_and_allow_lists_do_not() {
    let db = Emulator::start().await;
    let app = app(&db);
    let batch = json!([
        sync_event("Hard@Example.com", "hard-bounce", "add", 1_795_000_000),
        sync_event("spam@example.com", "spam", "add", 1_795_000_001),
        sync_event("unsub@example.com", "unsub", "change", 1_795_000_002),
        sync_event("soft@example.com", "soft-bounce", "add", 1_795_000_003),
        sync_event("manual@example.com", "custom", "add", 1_795_000_004),
        sync_event("removed@example.com", "hard-bounce", "remove", 1_795_000_005),
        {"type": "whitelist", "action": "add", "ts": 1_795_000_006,
         "entry": {"email": "vip@example.com", "detail": "x"}},
    ]);
    let (status, reply) = send(&app, batch.to_string().as_bytes()).await;
    assert_eq!(
        (status, reply["stored"].as_u64()),
        (200, Some(7)),
        "{reply}"
    );

    let json_out: Value =
        serde_json::from_str(&cli(&db, &["suppressions", "--json"]).await).unwrap();
    let list = &json_out["suppressions"];
    let rows: Vec<(String, String)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["address"].as_str().unwrap().to_owned(),
                s["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("hard@example.com".to_owned(), "hard_bounce".to_owned()),
            ("manual@example.com".to_owned(), "deny_list".to_owned()),
            ("soft@example.com".to_owned(), "deny_list".to_owned()),
            ("spam@example.com".to_owned(), "complaint".to_owned()),
            ("unsub@example.com".to_owned(), "unsubscribe".to_owned()),
        ],
        "every deny-list add is a suppression; removals and allow-list entries are not"
    );
    let first = &list[0]["event"];
    assert_eq!(first["message_id"], "mandrill-sync:hard@example.com");
    assert_eq!(first["provider_event"], "blacklist.add");

    // Every sync event is kept: the address's list history is one timeline.
    let timeline = cli(
        &db,
        &["timeline", "mandrill-sync:removed@example.com", "--json"],
    )
    .await;
    let timeline: Value = serde_json::from_str(&timeline).unwrap();
    assert_eq!(timeline["events"][0]["provider_event"], "blacklist.remove");
    assert_eq!(timeline["events"][0]["event_type"], "unknown");

    // Re-normalization reads each stored sync event back to the same item.
    let report: Value =
        serde_json::from_str(&cli(&db, &["renormalize", "--provider", "mandrill", "--json"]).await)
            .unwrap();
    assert_eq!(
        (report["scanned"].as_u64(), report["unchanged"].as_u64()),
        (Some(7), Some(7)),
        "{report}"
    );
}

#[test]
fn cargo_lambda_watch_configures_the_development_url() {
    let manifest =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml")).unwrap();
    assert!(manifest.contains(&format!("MANDRILL_WEBHOOK_URL = \"{LOCAL_WEBHOOK_URL}\"")));
}
