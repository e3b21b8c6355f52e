//! Large events, losslessly: with a bucket configured, a raw payload too large
//! for its DynamoDB item is archived in a real S3 API (moto's server on loopback,
//! started by `.ci/moto-tests.sh`) and the item points at it. Ignored by a plain
//! `cargo test` because it needs that server.

use std::sync::Arc;
use std::time::Duration;

use crate::common::*;
use mailhooks::auth::FixedClock;
use mailhooks::store::archive::RawArchive;
use mailhooks::store::codec::{archived_raw, gunzip_raw};
use mailhooks::store::{DynamoStore, sdk};
use serde_json::{Value, json};

fn moto_endpoint() -> String {
    std::env::var("MOTO_ENDPOINT").expect("MOTO_ENDPOINT: run bash .ci/moto-tests.sh")
}

/// Pseudo-random hex: does not compress, so gzip alone cannot save the item.
fn noise(bytes: usize) -> String {
    let mut out = String::with_capacity(bytes + 16);
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    while out.len() < bytes {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.push_str(&format!("{x:016x}"));
    }
    out
}

/// An EngageLab `route` (inbound mail) event carrying `bytes` of raw MIME.
fn route_event(bytes: usize) -> Value {
    let mut route: Value = serde_json::from_slice(&fixture("engagelab", "route")).unwrap();
    route["response"]["response_data"]["raw_message"] = json!(noise(bytes));
    route
}

async fn setup(bucket: &str) -> (Emulator, aws_sdk_s3::Client, mailhooks::App<DynamoStore>) {
    let db = Emulator::start().await;
    let s3 = sdk::local_s3_client(&moto_endpoint(), Duration::from_secs(10));
    s3.create_bucket().bucket(bucket).send().await.unwrap();
    // These tests are about what is archived, not the deadline: moto (a Python
    // server) takes seconds for a 6 MB object on a busy machine, over the default
    // 1.5 s storage bound (the deadline has its own tests in faults.rs).
    let config = config(&[("RAW_BUCKET", bucket), ("STORE_TIMEOUT_MS", "20000")]);
    let store = DynamoStore::new(
        sdk::local_client(&db.endpoint, Duration::from_secs(10)),
        TABLE,
        None,
    )
    .with_raw_archive(RawArchive::new(s3.clone(), bucket));
    let app = mailhooks::App::new(config, store, Arc::new(FixedClock(NOW_MS)));
    (db, s3, app)
}

#[tokio::test]
#[ignore = "needs an S3 API: bash .ci/moto-tests.sh"]
async fn an_incompressible_3_mb_inbound_mail_is_archived_whole_and_retries_are_idempotent() {
    let bucket = format!("mailhooks-raw-{}", std::process::id());
    let (db, s3, app) = setup(&bucket).await;
    let route = route_event(3_000_000);
    let body = route.to_string();
    let (status, reply) = parts(app.handle(signed_post("engagelab", body.as_bytes())).await);
    assert_eq!(
        (status, reply["stored"].as_u64()),
        (200, Some(1)),
        "{reply}"
    );

    let items = db.items().await;
    assert_eq!(items.len(), 1);
    let item = &items[0];
    assert!(
        !item.contains_key("raw_truncated"),
        "nothing truncated with a bucket"
    );
    assert_eq!(text(item, "event_type").as_deref(), Some("inbound"));
    let (stored_bucket, key) = archived_raw(item).expect("the item points at the archived raw");
    assert_eq!(stored_bucket, bucket);
    let object = s3
        .get_object()
        .bucket(&bucket)
        .key(&key)
        .send()
        .await
        .unwrap();
    let gz = object.body.collect().await.unwrap().into_bytes();
    let raw: Value = serde_json::from_str(&gunzip_raw(&gz).unwrap()).unwrap();
    assert_eq!(raw, route, "the archived raw is the whole event");

    // The provider retries: same item, same single object.
    let (status, reply) = parts(app.handle(signed_post("engagelab", body.as_bytes())).await);
    assert_eq!((status, reply["duplicates"].as_u64()), (200, Some(1)));
    assert_eq!(db.items().await.len(), 1);
    let listed = s3
        .list_objects_v2()
        .bucket(&bucket)
        .prefix("raw/")
        .send()
        .await
        .unwrap();
    assert_eq!(listed.key_count(), Some(1));
}

#[tokio::test]
#[ignore = "needs an S3 API: bash .ci/moto-tests.sh"]
async fn up_to_the_lambda_payload_limit_nothing_is_truncated() {
    let bucket = format!("mailhooks-big-{}", std::process::id());
    let (db, _s3, app) = setup(&bucket).await;
    let route = route_event(5_900_000);
    let body = route.to_string();
    assert!(
        body.len() < 6 * 1024 * 1024,
        "within Lambda's 6 MB synchronous payload limit"
    );
    let (status, reply) = parts(app.handle(signed_post("engagelab", body.as_bytes())).await);
    assert_eq!(
        (status, reply["stored"].as_u64()),
        (200, Some(1)),
        "{reply}"
    );
    let items = db.items().await;
    assert!(archived_raw(&items[0]).is_some());
    assert!(!items[0].contains_key("raw_truncated"));
}

#[tokio::test]
#[ignore = "needs an S3 API: bash .ci/moto-tests.sh"]
async fn small_events_stay_inline_even_with_a_bucket() {
    let bucket = format!("mailhooks-small-{}", std::process::id());
    let (db, s3, app) = setup(&bucket).await;
    let (status, _) = parts(
        app.handle(signed_post("engagelab", &fixture("engagelab", "route")))
            .await,
    );
    assert_eq!(status, 200);
    let items = db.items().await;
    assert!(items[0].contains_key("raw") && archived_raw(&items[0]).is_none());
    let listed = s3.list_objects_v2().bucket(&bucket).send().await.unwrap();
    assert_eq!(listed.key_count(), Some(0));
}

#[tokio::test]
#[ignore = "needs an S3 API: bash .ci/moto-tests.sh"]
async fn renormalize_reads_a_raw_payload_archived_in_s3() {
    let bucket = format!("mailhooks-renorm-{}", std::process::id());
    let (db, s3, app) = setup(&bucket).await;
    let body = route_event(1_000_000).to_string();
    let (status, _) = parts(app.handle(signed_post("engagelab", body.as_bytes())).await);
    assert_eq!(status, 200);
    let options = mailhooks::renormalize::RenormalizeOptions::default();
    let table = mailhooks::read::EventsTable::new(db.client.clone(), TABLE);
    let blind = table.renormalize(&options, &mut |_| {}).await.unwrap();
    assert_eq!(blind.skipped.get("raw not in the item"), Some(&1));
    let report = (table.with_s3(s3).renormalize(&options, &mut |_| {}))
        .await
        .unwrap();
    assert_eq!(
        (report.scanned, report.unchanged, report.skipped_total()),
        (1, 1, 0)
    );
}

#[tokio::test]
#[ignore = "needs an S3 API: bash .ci/moto-tests.sh"]
async fn an_incompressible_quarantined_body_too_large_for_its_item_goes_to_s3_whole() {
    let bucket = format!("mailhooks-quarantine-{}", std::process::id());
    let (db, s3, app) = setup(&bucket).await;
    // Authenticated, not JSON, and too large for an item even compressed.
    let body = format!("<{}", noise(1_000_000));
    let (status, reply) = parts(app.handle(signed_post("postmark", body.as_bytes())).await);
    assert_eq!((status, reply["quarantined"].as_u64()), (200, Some(1)));
    let records = db.quarantined().await;
    assert_eq!(records.len(), 1);
    assert!(matches!(
        records[0].body,
        mailhooks::store::quarantine::StoredBody::Archived { .. }
    ));
    let table = mailhooks::read::EventsTable::new(db.client.clone(), TABLE).with_s3(s3);
    let kept = table.quarantine_body(&records[0]).await.unwrap();
    assert!(kept == body.as_bytes(), "the exact bytes come back from S3");
}
