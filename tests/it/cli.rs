//! mailhooks-cli end to end: fixture events go through the real handler into the
//! embedded DynamoDB API, then are read back with the `read` functions and with
//! the built `mailhooks-cli` binary (`--endpoint` at the emulator).

use std::collections::{BTreeMap, HashMap};
use std::process::Command;

use crate::common::*;
use aws_sdk_dynamodb::types::AttributeValue;
use mailhooks::event::format_rfc3339_ms;
use mailhooks::read::{EventsTable, QueryError, Since, Suppression};
use mailhooks::renormalize::{Progress, RenormalizeOptions};
use serde_json::Value;

type Item = HashMap<String, AttributeValue>;

const TENCENT_BOUNCE_AT: &str = "2022-06-01T06:24:43.000Z";
const RECEIVED_AT: &str = "2026-11-22T10:15:30.000Z";

async fn post(db: &Emulator, provider: &str, body: &[u8]) {
    let (status, reply) = parts(app(db).handle(signed_post(provider, body)).await);
    assert_eq!(status, 200, "{provider}: {reply}");
}

async fn post_fixtures(db: &Emulator, names: &[(&str, &str)]) {
    for (provider, name) in names {
        post(db, provider, &fixture(provider, name)).await;
    }
}

/// A fixture with some fields changed.
fn edited(provider: &str, name: &str, edit: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut value: Value = serde_json::from_slice(&fixture(provider, name)).unwrap();
    edit(&mut value);
    value.to_string().into_bytes()
}

fn events_table(db: &Emulator) -> EventsTable {
    EventsTable::new(db.client.clone(), TABLE)
}

fn since(text: &str) -> Since {
    Since::parse(text).unwrap()
}

/// What the binary did.
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs the built binary with `args` and a clean AWS environment plus `env`.
async fn run_binary(args: Vec<String>, env: &[(&str, &str)]) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_mailhooks-cli"));
    command.args(args).env_clear();
    if let Ok(path) = std::env::var("PATH") {
        command.env("PATH", path);
    }
    command.envs(env.iter().copied());
    // The emulator is served by this test's runtime: wait for the child off it.
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .unwrap();
    Run {
        code: output.status.code(),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

/// Runs the binary against the emulator.
pub async fn cli(db: &Emulator, args: &[&str]) -> Run {
    let mut all = vec!["--endpoint".to_owned(), db.endpoint.clone()];
    all.extend(args.iter().map(|a| (*a).to_owned()));
    run_binary(all, &[]).await
}

/// Runs the binary against the emulator and expects success.
pub async fn cli_ok(db: &Emulator, args: &[&str]) -> String {
    let run = cli(db, args).await;
    assert_eq!(run.code, Some(0), "{args:?}: {}", run.stderr);
    run.stdout
}

pub fn json(stdout: &str) -> Value {
    serde_json::from_str(stdout).unwrap()
}

/// The `index`-th word of each line after the first `skip` lines.
fn column(stdout: &str, skip: usize, index: usize) -> Vec<&str> {
    stdout
        .lines()
        .skip(skip)
        .map(|line| line.split_whitespace().nth(index).unwrap_or_default())
        .collect()
}

/// One Tencent message id with two recipients: a hard bounce, then an open
/// and a late `delivered` for the same address, and a delivery to another.
async fn ingest_tencent_late_delivery(db: &Emulator) {
    let at = |offset: i64| 1_654_064_683 + offset;
    let bodies = [
        edited("tencent", "bounce", |v| v["bulkId"] = "bulk-late".into()),
        edited("tencent", "delivered", |v| {
            v["bulkId"] = "bulk-late".into();
            v["email"] = "Other@Example.com".into();
            v["timestamp"] = at(10).into();
        }),
        edited("tencent", "open", |v| {
            v["bulkId"] = "bulk-late".into();
            v["timestamp"] = at(30).into();
        }),
        edited("tencent", "delivered", |v| {
            v["bulkId"] = "bulk-late".into();
            v["timestamp"] = at(60).into();
        }),
    ];
    for body in bodies {
        post(db, "tencent", &body).await;
    }
}

#[tokio::test]
async fn timeline_lists_every_event_in_time_order_across_pages_with_the_ranked_status() {
    let db = Emulator::start().await;
    ingest_tencent_late_delivery(&db).await;

    let timeline = events_table(&db)
        .timeline("bulk-late", Some(1))
        .await
        .unwrap();
    let seen: Vec<(&str, Option<&str>)> = timeline
        .events
        .iter()
        .map(|e| (e.event_type.as_str(), e.recipient.as_deref()))
        .collect();
    assert_eq!(
        seen,
        [
            ("bounced", Some("example@example.com")),
            ("delivered", Some("other@example.com")),
            ("opened", Some("example@example.com")),
            ("delivered", Some("example@example.com")),
        ]
    );
    let statuses: Vec<(Option<&str>, &str, Option<&str>, &str)> = timeline
        .current_status
        .iter()
        .map(|s| {
            (
                s.recipient.as_deref(),
                s.status.as_str(),
                s.bounce_type.as_deref(),
                s.time.as_str(),
            )
        })
        .collect();
    assert_eq!(
        statuses,
        [
            (
                Some("example@example.com"),
                "bounced",
                Some("hard"),
                TENCENT_BOUNCE_AT
            ),
            (
                Some("other@example.com"),
                "delivered",
                None,
                "2022-06-01T06:24:53.000Z"
            ),
        ],
        "a late delivered never downgrades a hard bounce"
    );

    let stdout = cli_ok(&db, &["timeline", "bulk-late", "--page-size", "1"]).await;
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "timeline of bulk-late: 4 events");
    assert_eq!(
        lines[1],
        format!("current status of example@example.com: bounced (hard) at {TENCENT_BOUNCE_AT}")
    );
    assert_eq!(
        lines[2],
        "current status of other@example.com: delivered at 2022-06-01T06:24:53.000Z"
    );
    assert_eq!(
        column(&stdout, 5, 2),
        ["bounced", "delivered", "opened", "delivered"]
    );
    assert!(
        lines[5].starts_with(TENCENT_BOUNCE_AT)
            && lines[5].contains("tencent")
            && lines[5].ends_with("hard bounce | 551 5.1.1 recipient is not exist"),
        "{}",
        lines[5]
    );

    let value = json(&cli_ok(&db, &["timeline", "bulk-late", "--json"]).await);
    assert_eq!(value["message_id"], "bulk-late");
    assert_eq!(value["events"].as_array().unwrap().len(), 4);
    assert_eq!(value["events"][0]["bounce_type"], "hard");
    assert_eq!(value["events"][0]["received_at"], RECEIVED_AT);
    assert_eq!(value["current_status"][0]["status"], "bounced");
    assert_eq!(value["current_status"][1]["recipient"], "other@example.com");
}

/// uSpeedo events of user@example.com (and a `request` with no recipient), and a
/// Tencent delivery to the same address in other case, under another message id.
async fn ingest_one_address_on_two_providers(db: &Emulator) {
    post_fixtures(
        db,
        &[
            ("uspeedo", "batch"),
            ("uspeedo", "click"),
            ("uspeedo", "complaint"),
            ("uspeedo", "unsubscribe"),
            ("uspeedo", "bounce"),
        ],
    )
    .await;
    let tencent = edited("tencent", "delivered", |v| {
        v["bulkId"] = "bulk-user".into();
        v["email"] = "User@Example.com".into();
        v["timestamp"] = 1_234_568_500.into();
    });
    post(db, "tencent", &tencent).await;
}

#[tokio::test]
async fn recipient_finds_one_address_across_messages_and_providers() {
    let db = Emulator::start().await;
    ingest_one_address_on_two_providers(&db).await;
    let table = events_table(&db);

    let events = table
        .recipient_events(" USER@example.COM", None, Some(2))
        .await
        .unwrap();
    let seen: Vec<(&str, &str)> = events
        .iter()
        .map(|e| (e.provider.as_str(), e.event_type.as_str()))
        .collect();
    assert_eq!(
        seen,
        [
            ("uspeedo", "delivered"),
            ("uspeedo", "opened"),
            ("uspeedo", "clicked"),
            ("tencent", "delivered"),
            ("uspeedo", "complained"),
            ("uspeedo", "unsubscribed"),
        ]
    );
    assert_eq!(events[3].message_id, "bulk-user");

    let click_time = format_rfc3339_ms(1_234_568_000_000);
    let later = table
        .recipient_events("user@example.com", Some(&since(&click_time)), Some(1))
        .await
        .unwrap();
    let types: Vec<&str> = later.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(
        types,
        ["clicked", "delivered", "complained", "unsubscribed"],
        "--since is inclusive"
    );
    assert!(
        table
            .recipient_events("nobody-here@example.com", None, None)
            .await
            .unwrap()
            .is_empty()
    );

    let stdout = cli_ok(
        &db,
        &[
            "recipient",
            "User@Example.com",
            "--since",
            &click_time,
            "--page-size",
            "1",
        ],
    )
    .await;
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines[0],
        format!("events for user@example.com since {click_time}: 4 events")
    );
    assert_eq!(
        column(&stdout, 3, 2),
        ["clicked", "delivered", "complained", "unsubscribed"]
    );
    assert!(
        lines[3].ends_with("https://shop.example.com/sale"),
        "{}",
        lines[3]
    );
    assert_eq!(column(&stdout, 3, 1)[1], "tencent");
    assert_eq!(column(&stdout, 3, 3)[1], "bulk-user");

    let value = json(&cli_ok(&db, &["recipient", "user@example.com", "--json"]).await);
    assert_eq!(value["address"], "user@example.com");
    assert_eq!(value["events"].as_array().unwrap().len(), 6);
    assert_eq!(value["events"][2]["url"], "https://shop.example.com/sale");
}

#[tokio::test]
async fn suppressions_list_each_address_once_from_every_provider() {
    let db = Emulator::start().await;
    post_fixtures(
        &db,
        &[
            ("tencent", "bounce"),
            ("tencent", "bounce_soft"),
            ("tencent", "delivered"),
            ("engagelab", "report_spam"),
            ("engagelab", "invalid_email_blacklist"),
            ("engagelab", "open"),
            ("uspeedo", "complaint"),
            ("uspeedo", "unsubscribe"),
            ("uspeedo", "soft_bounce"),
            ("uspeedo", "bounce"),
        ],
    )
    .await;
    let table = events_table(&db);
    let summary = |list: Vec<Suppression>| -> Vec<(String, String, String)> {
        list.into_iter()
            .map(|s| (s.address, s.reason, s.event.provider))
            .collect()
    };
    let owned = |rows: &[(&str, &str, &str)]| -> Vec<(String, String, String)> {
        rows.iter()
            .map(|(a, r, p)| ((*a).to_owned(), (*r).to_owned(), (*p).to_owned()))
            .collect()
    };

    let all = table.suppressions(None, Some(1)).await.unwrap();
    assert_eq!(
        summary(all),
        owned(&[
            ("1406064670@gmail.com", "complaint", "engagelab"),
            ("example@example.com", "hard_bounce", "tencent"),
            ("nobody@example.com", "hard_bounce", "uspeedo"),
            ("user@example.com", "unsubscribe", "uspeedo"),
        ]),
        "one line per address, its latest suppressing event, sorted; soft bounces and rejections do not suppress"
    );
    let from_bounce = table
        .suppressions(Some(&since(TENCENT_BOUNCE_AT)), None)
        .await
        .unwrap();
    assert_eq!(
        summary(from_bounce),
        owned(&[
            ("1406064670@gmail.com", "complaint", "engagelab"),
            ("example@example.com", "hard_bounce", "tencent"),
        ])
    );
    let after_bounce = table
        .suppressions(Some(&since("2022-06-01T06:24:43.001Z")), None)
        .await
        .unwrap();
    assert_eq!(
        summary(after_bounce),
        owned(&[("1406064670@gmail.com", "complaint", "engagelab")])
    );

    let stdout = cli_ok(&db, &["suppressions", "--page-size", "1"]).await;
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "4 addresses not to mail again");
    assert_eq!(
        column(&stdout, 3, 0),
        [
            "1406064670@gmail.com",
            "example@example.com",
            "nobody@example.com",
            "user@example.com"
        ]
    );
    assert_eq!(
        column(&stdout, 3, 1),
        ["complaint", "hard_bounce", "hard_bounce", "unsubscribe"]
    );

    let stdout = cli_ok(&db, &["suppressions", "--since", "2023-01-01"]).await;
    assert_eq!(
        stdout.lines().next(),
        Some("1 address not to mail again since 2023-01-01T00:00:00.000Z")
    );
    assert_eq!(column(&stdout, 3, 0), ["1406064670@gmail.com"]);

    let value = json(&cli_ok(&db, &["suppressions", "--json"]).await);
    let list = value["suppressions"].as_array().unwrap();
    assert_eq!(list.len(), 4);
    assert_eq!(list[3]["address"], "user@example.com");
    assert_eq!(list[3]["event"]["event_type"], "unsubscribed");
}

#[tokio::test]
async fn unknown_ids_missing_tables_bad_times_and_dead_endpoints_are_one_line_errors() {
    let db = Emulator::start().await;
    post_fixtures(&db, &[("tencent", "bounce")]).await;
    assert_eq!(
        events_table(&db).timeline("nope", None).await,
        Err(QueryError::UnknownMessage("nope".into()))
    );
    let absent = EventsTable::new(db.client.clone(), "absent");
    assert_eq!(
        absent.suppressions(None, None).await,
        Err(QueryError::TableMissing("absent".into()))
    );
    assert_eq!(
        absent.timeline("m", None).await,
        Err(QueryError::TableMissing("absent".into()))
    );

    let run = cli(&db, &["timeline", "nope"]).await;
    assert_eq!(run.code, Some(1));
    assert_eq!(run.stderr, "error: no events for message id nope\n");
    assert_eq!(run.stdout, "");

    let run = cli(&db, &["--table", "absent", "suppressions"]).await;
    assert_eq!(run.code, Some(1));
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    assert!(
        run.stderr.starts_with(&format!(
            "error: table absent does not exist at {}",
            db.endpoint
        )) && run.stderr.contains("--local")
            && run.stderr.contains("TABLE_NAME"),
        "{}",
        run.stderr
    );

    let run = cli(&db, &["suppressions", "--since", "yesterday"]).await;
    assert_eq!(run.code, Some(2));
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    assert!(
        run.stderr
            .starts_with("error: --since: cannot read \"yesterday\" as a time"),
        "{}",
        run.stderr
    );

    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let run = run_binary(
        vec!["--endpoint".into(), closed.clone(), "suppressions".into()],
        &[],
    )
    .await;
    assert_eq!(run.code, Some(1));
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    assert!(
        run.stderr.starts_with(&format!(
            "error: cannot reach DynamoDB at {closed} (is the local run command running?)"
        )),
        "{}",
        run.stderr
    );
}

#[tokio::test]
async fn a_missing_aws_region_or_credentials_is_named() {
    let home = std::env::temp_dir().join(format!("mailhooks-cli-test-{}", std::process::id()));
    let home = home.to_string_lossy().into_owned();
    let nowhere = format!("{home}/absent");
    let isolated = [
        ("HOME", home.as_str()),
        ("AWS_CONFIG_FILE", nowhere.as_str()),
        ("AWS_SHARED_CREDENTIALS_FILE", nowhere.as_str()),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ];
    let args = || vec!["suppressions".to_owned()];

    let run = run_binary(args(), &isolated).await;
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr
            .starts_with("error: no AWS region configured: set AWS_REGION"),
        "{}",
        run.stderr
    );

    let with_region: Vec<(&str, &str)> = isolated
        .iter()
        .copied()
        .chain([("AWS_REGION", "us-east-1")])
        .collect();
    let run = run_binary(args(), &with_region).await;
    assert_eq!(run.code, Some(1));
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    assert!(
        run.stderr.starts_with("error: no AWS credentials found") && run.stderr.contains("--local"),
        "{}",
        run.stderr
    );
}

async fn get(db: &Emulator, key: &Item) -> Option<Item> {
    db.client
        .get_item()
        .table_name(TABLE)
        .set_key(Some(key.clone()))
        .send()
        .await
        .unwrap()
        .item
}

fn key_of(item: &Item) -> Item {
    ["message_id", "timestamp"]
        .into_iter()
        .map(|k| (k.to_owned(), item[k].clone()))
        .collect()
}

/// Replaces `old` by `new` in the table (as an older version of the code would have stored it).
async fn replace(db: &Emulator, old: &Item, new: Item) {
    db.client
        .delete_item()
        .table_name(TABLE)
        .set_key(Some(key_of(old)))
        .send()
        .await
        .unwrap();
    db.client
        .put_item()
        .table_name(TABLE)
        .set_item(Some(new))
        .send()
        .await
        .unwrap();
}

async fn only_item(db: &Emulator, provider: &str, event_type: &str) -> Item {
    let mut found: Vec<Item> = db
        .items()
        .await
        .into_iter()
        .filter(|i| {
            text(i, "provider").as_deref() == Some(provider)
                && text(i, "event_type").as_deref() == Some(event_type)
        })
        .collect();
    assert_eq!(found.len(), 1, "{provider} {event_type}");
    found.remove(0)
}

async fn sorted_items(db: &Emulator) -> Vec<BTreeMap<String, AttributeValue>> {
    let mut items: Vec<BTreeMap<String, AttributeValue>> = db
        .items()
        .await
        .into_iter()
        .map(|i| i.into_iter().collect())
        .collect();
    items.sort_by_key(|i| format!("{:?}{:?}", i["message_id"], i["timestamp"]));
    items
}

/// Stale items as older code would have stored them: a uSpeedo unsubscribe
/// stored as `unknown` under the old key, a Tencent hard bounce stored as soft
/// without its suppression, and an EngageLab click whose raw was truncated.
/// Returns the keys the current code gives the first two.
async fn store_stale_items(db: &Emulator) -> (Item, Item) {
    let unsubscribe = only_item(db, "uspeedo", "unsubscribed").await;
    let mut stale = unsubscribe.clone();
    let old_key = text(&unsubscribe, "timestamp")
        .unwrap()
        .replace("#unsubscribed#", "#unknown#");
    stale.insert("timestamp".into(), AttributeValue::S(old_key));
    stale.insert("event_type".into(), AttributeValue::S("unknown".into()));
    stale.insert("reason".into(), AttributeValue::S("unsubscribe".into()));
    stale.insert("status_code".into(), AttributeValue::S("0".into()));
    stale.remove("suppression");
    replace(db, &unsubscribe, stale).await;

    let bounce = only_item(db, "tencent", "bounced").await;
    let mut soft = bounce.clone();
    soft.insert("bounce_type".into(), AttributeValue::S("soft".into()));
    soft.remove("suppression");
    replace(db, &bounce, soft).await;

    let click = only_item(db, "engagelab", "clicked").await;
    let mut truncated = click.clone();
    truncated.remove("raw");
    truncated.insert("raw_truncated".into(), AttributeValue::Bool(true));
    replace(db, &click, truncated).await;
    (key_of(&unsubscribe), key_of(&bounce))
}

#[tokio::test]
async fn renormalize_fixes_stale_items_in_place_or_under_a_new_key_then_finds_nothing() {
    let db = Emulator::start().await;
    let app = app_with(&db.endpoint, config(&[("EVENT_RETENTION_DAYS", "30")]));
    for (provider, name) in [
        ("uspeedo", "unsubscribe"),
        ("tencent", "bounce"),
        ("engagelab", "target_multi"),
        ("engagelab", "click"),
    ] {
        let (status, _) = parts(
            app.handle(signed_post(provider, &fixture(provider, name)))
                .await,
        );
        assert_eq!(status, 200);
    }
    let (unsubscribe_key, bounce_key) = store_stale_items(&db).await;
    let before = sorted_items(&db).await;
    assert_eq!(before.len(), 5);

    let mut last_scanned = 0;
    let options = RenormalizeOptions {
        page_size: Some(2),
        ..RenormalizeOptions::default()
    };
    let report = events_table(&db)
        .renormalize(&options, &mut |p| {
            if let Progress::Scanned(n) = p {
                last_scanned = n;
            }
        })
        .await
        .unwrap();
    assert_eq!(last_scanned, 5);
    assert_eq!(
        (report.scanned, report.unchanged, report.changed),
        (5, 2, 2),
        "both target items are matched to their own recipient"
    );
    assert_eq!(report.skipped, BTreeMap::from([("raw truncated", 1)]));
    let fields: Vec<&str> = report.fields.keys().map(String::as_str).collect();
    assert_eq!(
        fields,
        [
            "bounce_type",
            "event_type",
            "reason",
            "status_code",
            "suppression",
            "timestamp"
        ]
    );
    assert_eq!(
        report.fields["event_type"].changes,
        BTreeMap::from([("unknown → unsubscribed".to_owned(), 1)])
    );
    assert_eq!(report.fields["suppression"].items, 2);
    assert_eq!(report.written, None);
    assert_eq!(sorted_items(&db).await, before, "a dry run writes nothing");

    let stdout = cli_ok(&db, &["renormalize"]).await;
    assert!(
        stdout
            .starts_with("scanned 5: 2 unchanged, 2 would change, 1 skipped (raw truncated: 1)\n"),
        "{stdout}"
    );
    assert!(stdout.contains("unknown → unsubscribed (1)"), "{stdout}");
    assert!(stdout.contains("soft → hard (1)"), "{stdout}");
    assert!(
        stdout.ends_with("dry run: nothing written; --apply rewrites 2 items\n"),
        "{stdout}"
    );
    assert_eq!(sorted_items(&db).await, before, "a dry run writes nothing");

    let stdout = cli_ok(&db, &["renormalize", "--apply", "--page-size", "2"]).await;
    assert!(
        stdout.starts_with("scanned 5: 2 unchanged, 2 changed, 1 skipped (raw truncated: 1)\n"),
        "{stdout}"
    );
    assert!(
        stdout.ends_with(
            "rewritten: 1 in place, 1 moved to a new key; 0 changed or deleted meanwhile (left alone)\n"
        ),
        "{stdout}"
    );

    assert_eq!(db.items().await.len(), 5, "the stale key is gone");
    let moved = get(&db, &unsubscribe_key).await.expect("the current key");
    assert_eq!(text(&moved, "event_type").as_deref(), Some("unsubscribed"));
    assert_eq!(text(&moved, "suppression").as_deref(), Some("unsubscribe"));
    assert_eq!(text(&moved, "reason"), None);
    assert_eq!(text(&moved, "received_at").as_deref(), Some(RECEIVED_AT));
    assert_eq!(
        moved["expires_at"],
        AttributeValue::N((NOW_SECS + 30 * 86_400).to_string())
    );
    let fixed = get(&db, &bounce_key).await.unwrap();
    assert_eq!(text(&fixed, "bounce_type").as_deref(), Some("hard"));
    assert_eq!(text(&fixed, "received_at").as_deref(), Some(RECEIVED_AT));
    let addresses: Vec<String> = events_table(&db)
        .suppressions(None, None)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.address)
        .collect();
    assert_eq!(addresses, ["example@example.com", "user@example.com"]);

    let stdout = cli_ok(&db, &["renormalize"]).await;
    assert_eq!(
        stdout,
        "scanned 5: 4 unchanged, 0 would change, 1 skipped (raw truncated: 1)\n\ndry run: nothing to rewrite\n"
    );
}

#[tokio::test]
async fn renormalize_of_fresh_items_changes_nothing_and_honours_its_filters() {
    let db = Emulator::start().await;
    for provider in provider_names() {
        for (_, body) in fixtures(provider) {
            post(&db, provider, &body).await;
        }
    }
    let items = db.items().await;
    let count = |keep: &dyn Fn(&Item) -> bool| items.iter().filter(|i| keep(i)).count() as u64;
    let table = events_table(&db);
    let renormalize = |options: RenormalizeOptions| {
        let table = table.clone();
        async move { table.renormalize(&options, &mut |_| {}).await }
    };

    let report = renormalize(RenormalizeOptions {
        page_size: Some(3),
        ..RenormalizeOptions::default()
    })
    .await
    .unwrap();
    assert_eq!(report.scanned, items.len() as u64);
    assert_eq!(
        (report.unchanged, report.changed, report.skipped_total()),
        (report.scanned, 0, 0),
        "{:?}",
        report.fields
    );

    let uspeedo = renormalize(RenormalizeOptions {
        provider: Some("uspeedo".into()),
        page_size: Some(2),
        ..RenormalizeOptions::default()
    })
    .await
    .unwrap();
    let uspeedo_items = count(&|i| text(i, "provider").as_deref() == Some("uspeedo"));
    assert!(uspeedo_items > 2);
    assert_eq!(uspeedo.scanned, uspeedo_items);

    let bound = since("2023-01-01");
    let recent = renormalize(RenormalizeOptions {
        since: Some(bound.clone()),
        ..RenormalizeOptions::default()
    })
    .await
    .unwrap();
    let recent_items = count(&|i| text(i, "timestamp").unwrap().as_str() >= bound.as_str());
    assert!(recent_items > 0 && recent_items < items.len() as u64);
    assert_eq!(recent.scanned, recent_items);

    assert!(matches!(
        renormalize(RenormalizeOptions {
            provider: Some("nonesuch".into()),
            ..RenormalizeOptions::default()
        })
        .await,
        Err(QueryError::UnknownProvider { .. })
    ));

    let value = json(&cli_ok(&db, &["renormalize", "--provider", "engagelab", "--json"]).await);
    let engagelab_items = count(&|i| text(i, "provider").as_deref() == Some("engagelab"));
    assert_eq!(value["scanned"], engagelab_items);
    assert_eq!(value["changed"], 0);
    assert_eq!(value["written"], Value::Null);
}

#[tokio::test]
async fn help_and_version_print_to_stdout_and_exit_0() {
    let run = run_binary(vec!["--help".into()], &[]).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(run.stderr, "");
    for command in ["timeline", "recipient", "suppressions", "renormalize"] {
        assert!(run.stdout.contains(command), "{}", run.stdout);
    }

    let run = run_binary(vec!["renormalize".into(), "--help".into()], &[]).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(
        run.stdout.contains("--apply") && run.stdout.contains("--provider"),
        "each command has its own help: {}",
        run.stdout
    );

    let run = run_binary(vec!["--version".into()], &[]).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(
        run.stdout,
        format!("mailhooks-cli {}\n", env!("CARGO_PKG_VERSION"))
    );
}

#[tokio::test]
async fn wrong_arguments_exit_2_with_one_line() {
    for args in [
        &["suppressions", "--verbose"][..],
        &["purge"],
        &[],
        &["timeline"],
    ] {
        let run = run_binary(args.iter().map(|a| (*a).to_owned()).collect(), &[]).await;
        assert_eq!(run.code, Some(2), "{args:?}: {}", run.stderr);
        assert_eq!(run.stderr.lines().count(), 1, "{args:?}: {}", run.stderr);
        assert!(
            run.stderr.starts_with("error: ") && run.stderr.contains("--help"),
            "{}",
            run.stderr
        );
        assert_eq!(run.stdout, "");
    }
}
