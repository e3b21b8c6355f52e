//! Out-of-order and late events: stored by event time whatever the arrival
//! order, and the current status follows the precedence rule (src/status.rs).

use crate::common::*;
use aws_sdk_dynamodb::types::AttributeValue;
use mailhooks::status::{StatusEvent, current_status};
use mailhooks::{BounceType, EventType};
use serde_json::json;

fn push(msg: &str, event: &str, time: i64) -> Vec<u8> {
    json!({"MsgType": 2, "Data": [{"MsgId": msg, "Event": event, "ReceiptTime": time, "RecipientEmail": "late@example.com"}]})
        .to_string()
        .into_bytes()
}

/// The message's events as the table returns them (sort key order) and its status.
async fn timeline(db: &Emulator, msg: &str) -> (Vec<String>, Option<EventType>) {
    let page = db
        .client
        .query()
        .table_name(TABLE)
        .key_condition_expression("message_id = :m")
        .expression_attribute_values(":m", AttributeValue::S(msg.into()))
        .send()
        .await
        .unwrap();
    let events: Vec<StatusEvent> = page
        .items()
        .iter()
        .map(|i| StatusEvent {
            event_type: EventType::parse(&text(i, "event_type").unwrap()).unwrap(),
            bounce_type: text(i, "bounce_type").map(|b| {
                if b == "hard" {
                    BounceType::Hard
                } else {
                    BounceType::Soft
                }
            }),
            event_time_ms: i["event_time_ms"].as_n().unwrap().parse().unwrap(),
        })
        .collect();
    let types = events
        .iter()
        .map(|e| e.event_type.as_str().to_owned())
        .collect();
    (types, current_status(&events).map(|e| e.event_type))
}

#[tokio::test]
async fn events_arriving_backwards_are_stored_in_event_time_order() {
    let db = Emulator::start().await;
    let app = app(&db);
    for (event, time) in [
        ("open", 1_700_000_300),
        ("deliver", 1_700_000_200),
        ("request", 1_700_000_100),
    ] {
        let (status, _) = parts(
            app.handle(signed_post("uspeedo", &push("m-late", event, time)))
                .await,
        );
        assert_eq!(status, 200);
    }
    let (types, status) = timeline(&db, "m-late").await;
    assert_eq!(types, ["queued", "delivered", "opened"]);
    assert_eq!(status, Some(EventType::Opened));
}

#[tokio::test]
async fn a_late_deferred_or_delivered_never_downgrades_the_status() {
    let db = Emulator::start().await;
    let app = app(&db);
    // Delivered at t=200, then a deferral from t=150 arrives late.
    for (event, time) in [("deliver", 1_700_000_200), ("deferred", 1_700_000_150)] {
        parts(
            app.handle(signed_post("uspeedo", &push("m-defer", event, time)))
                .await,
        );
    }
    assert_eq!(timeline(&db, "m-defer").await.1, Some(EventType::Delivered));
    // A hard bounce, then a delivered report with a later time stamp.
    for (event, time) in [("invalid", 1_700_000_100), ("deliver", 1_700_000_900)] {
        parts(
            app.handle(signed_post("uspeedo", &push("m-bounce", event, time)))
                .await,
        );
    }
    let (types, status) = timeline(&db, "m-bounce").await;
    assert_eq!(types, ["bounced", "delivered"]);
    assert_eq!(status, Some(EventType::Bounced));
}
