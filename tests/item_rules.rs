//! Items DynamoDB always accepts: whatever names a provider puts in its
//! free-form maps, the event is answered 200 and stored with every entry.

mod common;

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use common::*;
use serde_json::{Value, json};

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
