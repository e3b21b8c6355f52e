//! Items DynamoDB always accepts: whatever names a provider puts in its
//! free-form maps, the event is answered 200 and stored with every entry.
//!
//! A property test builds items from arbitrary events and checks each against
//! DynamoDB's documented rules (`mailhooks::fuzz_support::check_item`, which the
//! fuzz request target applies too); end-to-end tests send the poison events of
//! issue 10 through the handler into the emulator.

use std::collections::{BTreeMap, HashMap};

use crate::common::*;
use aws_sdk_dynamodb::types::AttributeValue;
use mailhooks::event::{BounceType, EmailEvent, EventType};
use mailhooks::fuzz_support::check_item;
use mailhooks::store::codec::{self, ArchivedRaw};
use proptest::prelude::*;
use serde_json::{Value, json};

/// `bytes` bytes (or one less, on a character boundary) of `unit` repeated.
fn filled(unit: &str, bytes: usize) -> String {
    unit.repeat(bytes / unit.len())
}

/// Text around a size that matters: the stored-name limit (1024), the field clip
/// (8 KB), DynamoDB's key limits (1024 / 2048) and name limit (64 KB).
fn long_text() -> impl Strategy<Value = String> {
    (
        prop::sample::select(vec![1023, 1024, 1025, 2048, 2049, 8192, 8193, 70_000]),
        prop::sample::select(vec!["x", "é", "~", "\u{1F600}"]),
        "[a-z~]{0,2}",
    )
        .prop_map(|(bytes, unit, tail)| format!("{}{tail}", filled(unit, bytes)))
}

/// Map names: empty, unicode, starting with the escape `~`, and long ones that
/// share their start, so that clipping alone would make them collide.
fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "\\PC{0,12}",
        1 => Just(String::new()),
        2 => "~{1,3}(empty)?[a-z]{0,2}",
        2 => long_text(),
    ]
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![4 => "\\PC{0,16}", 1 => Just(String::new()), 1 => long_text()]
}

fn text_map() -> impl Strategy<Value = BTreeMap<String, String>> {
    prop::collection::btree_map(name(), value(), 0..10)
}

fn optional_text() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        2 => Just(None),
        2 => "\\PC{0,24}".prop_map(Some),
        1 => Just(Some(String::new())),
        1 => long_text().prop_map(Some),
    ]
}

prop_compose! {
    fn arbitrary_event()(
        event_type in prop::sample::select(EventType::ALL.to_vec()),
        bounce in prop::option::of(prop::sample::select(vec![BounceType::Hard, BounceType::Soft])),
        // What the providers accept as a message id: 1 to 1024 bytes.
        message_id in prop_oneof!["[!-~]{1,40}", Just("m".repeat(1024))],
        recipient in optional_text(),
        reason in optional_text(),
        subject in optional_text(),
        provider_event in "\\PC{0,12}",
        mut metadata in text_map(),
        details in text_map(),
        // Sometimes enough entries to pass 400 KB on their own.
        bulk in prop::bool::weighted(0.1),
        raw in prop_oneof![Just("{}".to_owned()), "\\PC{0,64}"],
    ) -> EmailEvent {
        if bulk {
            for i in 0..60 {
                metadata.insert(format!("bulk{i}"), filled("v", 9000));
            }
        }
        let mut e = EmailEvent::new("engagelab", event_type, provider_event, message_id, 1_700_000_000_000, raw);
        e.bounce_type = bounce;
        e.recipient = recipient;
        e.reason = reason;
        e.subject = subject;
        e.metadata = metadata;
        e.details = details;
        e
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(192))]

    /// Every item built (raw inline, and raw archived in S3) meets DynamoDB's
    /// documented rules and keeps every map entry.
    #[test]
    fn every_built_item_is_one_dynamodb_accepts(event in arbitrary_event()) {
        let inline = codec::encode(&event, 1_700_000_000_000, Some(30));
        prop_assert_eq!(check_item(&event, &inline), Ok(()));
        let archived = ArchivedRaw { bucket: "b".into(), key: "raw/k.json.gz".into(), bytes: 1 };
        let archived = codec::draft(&event, 1_700_000_000_000, None).with_raw_archived(&archived);
        prop_assert_eq!(check_item(&event, &archived), Ok(()));
    }
}

/// The stored `metadata` map of the only item in the table.
async fn only_metadata(db: &Emulator) -> HashMap<String, AttributeValue> {
    let items = db.items().await;
    assert_eq!(items.len(), 1, "one event, one item");
    items[0]["metadata"].as_m().unwrap().clone()
}

fn s(map: &HashMap<String, AttributeValue>, name: &str) -> String {
    map.get(name)
        .unwrap_or_else(|| panic!("no {name:?} in {:?}", map.keys()))
        .as_s()
        .unwrap()
        .clone()
}

#[tokio::test]
async fn engagelab_custom_args_with_an_empty_name_are_stored() {
    let db = Emulator::start().await;
    let mut body: Value = serde_json::from_slice(&fixture("engagelab", "delivered")).unwrap();
    body["custom_args"] = json!({"": "v", "a": "1", "~empty": "tilde"});
    let (status, reply) = parts(
        app(&db)
            .handle(signed_post("engagelab", body.to_string().as_bytes()))
            .await,
    );
    assert_eq!(
        (status, reply["stored"].clone()),
        (200, json!(1)),
        "{reply}"
    );
    let metadata = only_metadata(&db).await;
    assert_eq!(metadata.len(), 3);
    assert_eq!(s(&metadata, "~empty"), "v", "the empty name's placeholder");
    assert_eq!(s(&metadata, "a"), "1");
    assert_eq!(
        s(&metadata, "~~empty"),
        "tilde",
        "a real `~` name is escaped"
    );
}

#[tokio::test]
async fn tencent_callback_keys_with_long_and_empty_suffixes_are_all_stored() {
    let db = Emulator::start().await;
    let mut body: Value = serde_json::from_slice(&fixture("tencent", "bounce")).unwrap();
    // Two names longer than any stored name that differ only at their end.
    let long = format!("X-Tencentcloudses-Cb-{}", "x".repeat(70_000));
    body[format!("{long}1")] = json!("first");
    body[format!("{long}2")] = json!("second");
    body["X-Tencentcloudses-Cb-"] = json!("empty suffix");
    let (status, reply) = parts(
        app(&db)
            .handle(signed_post("tencent", body.to_string().as_bytes()))
            .await,
    );
    assert_eq!(
        (status, reply["stored"].clone()),
        (200, json!(1)),
        "{reply}"
    );
    let metadata = only_metadata(&db).await;
    assert_eq!(
        metadata.len(),
        4,
        "{:?}",
        metadata.keys().map(|k| k.len()).collect::<Vec<_>>()
    );
    assert_eq!(s(&metadata, "X-Tencentcloudses-Cb-Info"), "ses callback");
    assert_eq!(s(&metadata, "X-Tencentcloudses-Cb-"), "empty suffix");
    let mut long_values: Vec<String> = metadata
        .iter()
        .filter(|(k, _)| k.starts_with('~'))
        .map(|(k, v)| {
            assert!(k.len() <= 1024, "stored name of {} bytes", k.len());
            v.as_s().unwrap().clone()
        })
        .collect();
    long_values.sort();
    assert_eq!(long_values, ["first", "second"]);
}
