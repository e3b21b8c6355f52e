//! `mailhooks-cli quarantine` end to end: bodies the handler quarantined are
//! listed and shown by the built binary; a replay with today's parsers is a dry
//! run until `--apply`, then stores the events once (with the record's first
//! receipt time) and marks the record resolved; replaying again stores nothing.

use mailhooks::providers::{ParseError, Unparsed};
use mailhooks::store::{DynamoStore, EventStore};

use crate::cli::{cli, cli_ok, json};
use crate::common::*;

/// A Postmark delivery that today's parser reads.
const FIXED: &[u8] = br#"{"RecordType":"Delivery","MessageID":"qm-1","Recipient":"a@example.com","DeliveredAt":"2026-11-20T08:00:00Z","ServerID":1,"MessageStream":"outbound","Details":"ok","Tag":"","Metadata":{}}"#;
/// When yesterday's parser quarantined it.
const QUARANTINED_AT_MS: i64 = 1_700_000_000_000;

/// Keeps `body` in quarantine as an older parser would have, with `code`.
async fn quarantine_as_yesterday(db: &Emulator, body: &[u8]) {
    let store = DynamoStore::new(db.client.clone(), TABLE, Some(30));
    let part = Unparsed::whole(
        body,
        &ParseError::WrongShape("a shape we did not know".into()),
    );
    let kept = store
        .quarantine(
            "postmark",
            &[part],
            Some("application/json"),
            QUARANTINED_AT_MS,
        )
        .await
        .unwrap();
    assert_eq!(kept.new, 1);
}

#[tokio::test]
async fn list_and_show_what_the_handler_quarantined() {
    let db = Emulator::start().await;
    let app = app(&db);
    for (provider, body) in [("postmark", &b"{not json"[..]), ("tencent", b"[]")] {
        let (status, reply) = parts(app.handle(signed_post(provider, body)).await);
        assert_eq!((status, reply["quarantined"].as_u64()), (200, Some(1)));
    }
    let listed = json(&cli_ok(&db, &["quarantine", "--json"]).await);
    let rows = listed.as_array().unwrap();
    assert_eq!(rows.len(), 2);
    let postmark = rows.iter().find(|r| r["provider"] == "postmark").unwrap();
    assert_eq!(postmark["error_code"], "invalid_json");
    assert_eq!(postmark["bytes"], 9);
    let only = json(&cli_ok(&db, &["quarantine", "--provider", "tencent", "--json"]).await);
    assert_eq!(only.as_array().unwrap().len(), 1);
    let text = cli_ok(&db, &["quarantine"]).await;
    assert!(
        text.starts_with("2 records in quarantine, 2 unresolved"),
        "{text}"
    );

    let id = postmark["id"].as_str().unwrap();
    let shown = cli_ok(&db, &["quarantine", "show", "postmark", &id[..8]]).await;
    assert!(shown.ends_with("\n{not json\n"), "{shown}");
    let shown = json(&cli_ok(&db, &["quarantine", "show", "postmark", id, "--json"]).await);
    assert_eq!(shown["body"], "{not json");
    assert_eq!(shown["content_type"], "application/json; charset=utf-8");

    let unknown = cli(&db, &["quarantine", "show", "postmark", "abcdef"]).await;
    assert_eq!(unknown.code, Some(1));
    assert!(
        unknown.stderr.contains("no quarantine record"),
        "{}",
        unknown.stderr
    );
    let short = cli(&db, &["quarantine", "show", "postmark", "ab"]).await;
    assert_eq!(short.code, Some(1), "{}", short.stderr);
}

#[tokio::test]
async fn replay_is_a_dry_run_until_apply_then_stores_once_and_resolves() {
    let db = Emulator::start().await;
    quarantine_as_yesterday(&db, FIXED).await;
    quarantine_as_yesterday(&db, b"{still broken").await;

    let dry = json(&cli_ok(&db, &["quarantine", "replay", "--json"]).await);
    assert_eq!(dry["applied"], false);
    let verdicts: Vec<&str> = dry["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["verdict"].as_str().unwrap())
        .collect();
    assert_eq!(verdicts.iter().filter(|v| **v == "parses").count(), 1);
    assert_eq!(verdicts.iter().filter(|v| **v == "still_fails").count(), 1);
    assert!(db.items().await.is_empty(), "a dry run writes nothing");

    let applied = json(&cli_ok(&db, &["quarantine", "replay", "--apply", "--json"]).await);
    let parsed = applied["records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["verdict"] == "parses")
        .unwrap();
    assert_eq!(
        (parsed["stored"].as_u64(), parsed["duplicates"].as_u64()),
        (Some(1), Some(0))
    );
    let items = db.items().await;
    assert_eq!(items.len(), 1);
    assert_eq!(text(&items[0], "message_id").as_deref(), Some("qm-1"));
    // The event keeps the receipt time and retention of the record.
    assert_eq!(
        text(&items[0], "received_at").as_deref(),
        Some("2023-11-14T22:13:20.000Z")
    );
    let expires = items[0]["expires_at"].as_n().unwrap();
    assert_eq!(expires, &(1_700_000_000 + 30 * 86_400).to_string());

    let records = db.quarantined().await;
    let resolved = records.iter().find(|r| r.resolved_at.is_some()).unwrap();
    assert_eq!(resolved.resolved_into.len(), 1);
    assert!(resolved.resolved_into[0].starts_with("qm-1 2026-11-20T08:00:00.000Z#delivered#"));

    let again = json(&cli_ok(&db, &["quarantine", "replay", "--apply", "--json"]).await);
    assert_eq!(again["already_resolved"], 1);
    assert_eq!(
        again["records"].as_array().unwrap().len(),
        1,
        "the broken one only"
    );
    assert_eq!(db.items().await.len(), 1, "replaying twice stores once");
    let text = cli_ok(&db, &["quarantine"]).await;
    assert!(
        text.starts_with("2 records in quarantine, 1 unresolved"),
        "{text}"
    );
}
