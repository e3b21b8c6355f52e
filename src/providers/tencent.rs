//! Tencent Cloud SES: one flat JSON object per POST, no signature (a secret
//! token protects the URL), `timestamp` in seconds, `bulkId` + `email` as the id.

use serde_json::{Map, Value};
use tracing::warn;

use super::json::{self, ParseError};
use super::{Inbound, Parsed, Provider, mime_words};
use crate::event::{BounceType, EmailEvent, EventType, unix_to_ms};
use crate::log_value::bounded;

/// Tencent Cloud SES ("Email Event Notification").
pub struct Tencent;

/// Prefix of the custom mail headers Tencent copies into the callback.
const CALLBACK_HEADER_PREFIX: &str = "x-tencentcloudses-cb-";

impl Provider for Tencent {
    fn name(&self) -> &'static str {
        "tencent"
    }

    fn secrets_env(&self) -> &'static str {
        "TENCENT_TOKENS"
    }

    fn parse(&self, body: &[u8]) -> Result<Vec<EmailEvent>, ParseError> {
        let events = match json::parse_body(body)? {
            Value::Array(items) => items
                .iter()
                .enumerate()
                .map(|(i, v)| parse_event(i, v))
                .collect::<Result<_, _>>()?,
            single => vec![parse_event(0, &single)?],
        };
        json::validate(events)
    }

    /// Event by event: one that does not normalize is quarantined alone (as
    /// its item would keep it in `raw`), the batch's others are stored.
    fn parse_each(&self, request: &Inbound<'_>) -> Parsed {
        json::each_event(request.body, |index, item, out| {
            parse_event(index, item).map(|event| out.push(event))
        })
    }

    fn local_secret(&self) -> &'static str {
        "local-tencent-token"
    }

    fn refresh_sample(&self, sample: &mut Value, now_ms: i64, run_id: &str) {
        sample["timestamp"] = Value::from(now_ms / 1000);
        sample["X-Tencentcloudses-Cb-Mailhooks-Test"] = Value::from(run_id);
    }
}

/// Maps Tencent's event name to the normalized type.
fn event_type_from_name(name: &str) -> EventType {
    match name.to_ascii_lowercase().as_str() {
        "processed" => EventType::Queued,
        "deferred" => EventType::Deferred,
        "delivered" => EventType::Delivered,
        "dropped" => EventType::Rejected,
        "bounce" => EventType::Bounced,
        "open" => EventType::Opened,
        "click" => EventType::Clicked,
        "spamreport" => EventType::Complained,
        "unsubscribe" => EventType::Unsubscribed,
        _ => EventType::Unknown,
    }
}

/// Maps the numeric `eventid` (1–8) to Tencent's event name.
fn event_name_from_id(id: i64) -> Option<&'static str> {
    Some(match id {
        1 => "delivered",
        2 => "dropped",
        3 => "bounce",
        4 => "open",
        5 => "click",
        6 => "spamreport",
        7 => "unsubscribe",
        8 => "deferred",
        _ => return None,
    })
}

fn parse_event(index: usize, value: &Value) -> Result<EmailEvent, ParseError> {
    let obj = json::as_object(value, "a Tencent event")?;
    let missing = |field| ParseError::MissingField { index, field };

    let name = json::text(obj, "event");
    let id = json::int(obj, "eventid");
    let id_name = id.and_then(event_name_from_id);
    if let (Some(name), Some(id_name)) = (&name, id_name)
        && !name.eq_ignore_ascii_case(id_name)
    {
        warn!(provider = "tencent", event = %bounded(name), eventid = ?id, "event and eventid disagree; using event");
    }
    let provider_event = match (name, id) {
        (Some(name), _) => name,
        (None, Some(id)) => id_name.map_or_else(|| format!("eventid:{id}"), str::to_owned),
        (None, None) => return Err(missing("event")),
    };

    let message_id = json::text(obj, "bulkId")
        .or_else(|| json::text(obj, "messageId").map(|m| m.trim_matches(['<', '>']).to_owned()))
        .ok_or_else(|| missing("bulkId"))?;
    let seconds = json::int(obj, "timestamp").ok_or_else(|| missing("timestamp"))?;

    let event_type = event_type_from_name(&provider_event);
    let mut event = EmailEvent::new(
        "tencent",
        event_type,
        provider_event,
        message_id,
        unix_to_ms(seconds),
        json::canonical(value),
    );
    event.recipient = json::text(obj, "email").map(|e| e.to_lowercase());
    if event_type == EventType::Bounced {
        event.bounce_type = json::text(obj, "bounceType").and_then(|b| match b.as_str() {
            "hard_bounce" | "hard" => Some(BounceType::Hard),
            "soft_bounce" | "soft" => Some(BounceType::Soft),
            _ => None,
        });
    }
    event.reason = json::text(obj, "reason");
    event.status_code = event.reason.as_deref().and_then(json::smtp_code);
    event.url = json::text(obj, "link");
    event.user_agent = json::text(obj, "useragent");
    event.sender = json::text(obj, "from");
    event.batch_id = json::text(obj, "taskId");
    event.template_id = json::text(obj, "templateId");
    if let Some(subject) = json::text(obj, "subject") {
        let decoded = mime_words::decode(&subject);
        if decoded != subject {
            event.details.insert("subject_raw".into(), subject);
        }
        event.subject = Some(decoded);
    }
    copy_details(obj, &mut event);
    Ok(event)
}

/// Keeps the remaining documented fields and every `X-Tencentcloudses-Cb-*` pass-through key.
fn copy_details(obj: &Map<String, Value>, event: &mut EmailEvent) {
    for (field, key) in [
        ("username", "account_id"),
        ("fromDomain", "from_domain"),
        ("messageId", "smtp_message_id"),
        ("sentTimestamp", "sent_timestamp"),
        ("eventid", "eventid"),
    ] {
        if let Some(v) = json::text(obj, field) {
            event.details.insert(key.into(), v);
        }
    }
    for (key, value) in obj {
        if key.to_ascii_lowercase().starts_with(CALLBACK_HEADER_PREFIX)
            && let Some(v) = json::value_text(value)
        {
            event.metadata.insert(key.clone(), v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_fixture(name: &str) -> EmailEvent {
        let path = format!(
            "{}/tests/fixtures/tencent/{name}.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let body = std::fs::read(&path).unwrap();
        let mut events = Tencent.parse(&body).unwrap();
        assert_eq!(events.len(), 1, "{name}");
        events.remove(0)
    }

    const BULK: &str = "qcloudses-30-251200670-date-20220601142439-8jolHvVR2XcXC1";

    fn assert_common(e: &EmailEvent, event_type: EventType, provider_event: &str) {
        assert_eq!(e.provider, "tencent");
        assert_eq!(e.event_type, event_type);
        assert_eq!(e.provider_event, provider_event);
        assert_eq!(e.message_id, BULK);
        assert_eq!(e.recipient.as_deref(), Some("example@example.com"));
        assert_eq!(e.event_time_ms, 1_654_064_683_000);
        assert_eq!(e.sender.as_deref(), Some("test@fromexample.com"));
        assert_eq!(e.subject.as_deref(), Some("example subject"));
        assert_eq!(e.template_id.as_deref(), Some("123456"));
        assert_eq!(
            e.details.get("account_id").map(String::as_str),
            Some("251200670")
        );
        assert_eq!(
            e.details.get("from_domain").map(String::as_str),
            Some("fromexample.com")
        );
        assert_eq!(
            e.details.get("smtp_message_id").map(String::as_str),
            Some("ea2783c1-7704-48a8-af36-2b9e83e767ec@fromexample.com")
        );
        assert_eq!(
            e.details.get("sent_timestamp").map(String::as_str),
            Some("1761555487")
        );
        assert_eq!(
            e.metadata
                .get("X-Tencentcloudses-Cb-Info")
                .map(String::as_str),
            Some("ses callback")
        );
    }

    #[test]
    fn hard_bounce_documented_sample() {
        let e = parse_fixture("bounce");
        assert_common(&e, EventType::Bounced, "bounce");
        assert_eq!(e.bounce_type, Some(BounceType::Hard));
        assert_eq!(
            e.reason.as_deref(),
            Some("551 5.1.1 recipient is not exist")
        );
        assert_eq!(e.status_code.as_deref(), Some("551 5.1.1"));
        assert_eq!(e.details.get("eventid").map(String::as_str), Some("3"));
        assert!(e.raw.contains("\"bulkId\""));
    }

    #[test]
    fn soft_bounce() {
        let e = parse_fixture("bounce_soft");
        assert_common(&e, EventType::Bounced, "bounce");
        assert_eq!(e.bounce_type, Some(BounceType::Soft));
        assert_eq!(e.status_code.as_deref(), Some("452 4.2.2"));
    }

    #[test]
    fn delivered() {
        let e = parse_fixture("delivered");
        assert_common(&e, EventType::Delivered, "delivered");
        assert_eq!(e.bounce_type, None);
        assert_eq!(e.reason, None);
    }

    #[test]
    fn deferred() {
        let e = parse_fixture("deferred");
        assert_common(&e, EventType::Deferred, "deferred");
        assert_eq!(e.reason.as_deref(), Some("421 4.7.0 try again later"));
        assert_eq!(e.status_code.as_deref(), Some("421 4.7.0"));
    }

    #[test]
    fn dropped_is_rejected() {
        let e = parse_fixture("dropped");
        assert_common(&e, EventType::Rejected, "dropped");
        assert_eq!(
            e.reason.as_deref(),
            Some("recipient address is in the blocklist")
        );
        assert_eq!(e.status_code, None);
    }

    #[test]
    fn open() {
        let e = parse_fixture("open");
        assert_common(&e, EventType::Opened, "open");
        assert!(
            e.user_agent
                .as_deref()
                .unwrap()
                .starts_with("Mozilla/5.0 (Windows NT 10.0")
        );
    }

    #[test]
    fn click() {
        let e = parse_fixture("click");
        assert_common(&e, EventType::Clicked, "click");
        assert_eq!(
            e.url.as_deref(),
            Some("https://www.example.com/offer?id=42")
        );
        assert!(e.user_agent.as_deref().unwrap().contains("iPhone"));
    }

    #[test]
    fn spamreport_is_complained() {
        let e = parse_fixture("spamreport");
        assert_common(&e, EventType::Complained, "spamreport");
    }

    #[test]
    fn unsubscribe() {
        let e = parse_fixture("unsubscribe");
        assert_common(&e, EventType::Unsubscribed, "unsubscribe");
        assert_eq!(
            e.url.as_deref(),
            Some("https://www.example.com/unsubscribe?u=1")
        );
    }

    #[test]
    fn legacy_processed_with_empty_strings() {
        let e = parse_fixture("processed_legacy");
        assert_eq!(e.event_type, EventType::Queued);
        assert_eq!(e.provider_event, "processed");
        assert_eq!(e.message_id, "qcloud-ses-4f5c0e0ad3e5417c9b6a4a1c8a3f0d77");
        assert_eq!(e.recipient.as_deref(), Some("example@example.com"));
        assert_eq!(e.event_time_ms, 1_612_684_800_000);
        assert_eq!(e.reason, None);
        assert_eq!(e.bounce_type, None);
        assert!(e.metadata.is_empty());
    }

    #[test]
    fn eventid_only_strings_for_numbers_and_encoded_subject() {
        let e = parse_fixture("eventid_only");
        assert_eq!(e.event_type, EventType::Clicked);
        assert_eq!(e.provider_event, "click");
        assert_eq!(e.event_time_ms, 1_761_555_600_000);
        assert_eq!(e.subject.as_deref(), Some("测试邮件"));
        assert_eq!(
            e.details.get("subject_raw").map(String::as_str),
            Some("=?UTF-8?B?5rWL6K+V6YKu5Lu2?=")
        );
        assert_eq!(e.template_id.as_deref(), Some("654321"));
        assert_eq!(e.batch_id.as_deref(), Some("98765"));
        assert_eq!(
            e.details.get("account_id").map(String::as_str),
            Some("251200670")
        );
    }

    #[test]
    fn every_eventid_maps_to_its_documented_name() {
        let expected = [
            (1, EventType::Delivered),
            (2, EventType::Rejected),
            (3, EventType::Bounced),
            (4, EventType::Opened),
            (5, EventType::Clicked),
            (6, EventType::Complained),
            (7, EventType::Unsubscribed),
            (8, EventType::Deferred),
        ];
        for (id, t) in expected {
            let body = format!(r#"{{"eventid":{id},"bulkId":"b","timestamp":1}}"#);
            assert_eq!(
                Tencent.parse(body.as_bytes()).unwrap()[0].event_type,
                t,
                "eventid {id}"
            );
        }
    }

    #[test]
    fn undocumented_event_is_unknown_not_dropped() {
        let e = &Tencent
            .parse(br#"{"event":"quarantined","bulkId":"b","timestamp":1}"#)
            .unwrap()[0];
        assert_eq!(e.event_type, EventType::Unknown);
        assert_eq!(e.provider_event, "quarantined");
        let e = &Tencent
            .parse(br#"{"eventid":99,"bulkId":"b","timestamp":1}"#)
            .unwrap()[0];
        assert_eq!(
            (e.event_type, e.provider_event.as_str()),
            (EventType::Unknown, "eventid:99")
        );
    }

    #[test]
    fn arrays_of_events_are_accepted() {
        let body = br#"[{"event":"delivered","bulkId":"b","email":"a@x.com","timestamp":1},{"event":"open","bulkId":"b","email":"b@x.com","timestamp":2}]"#;
        let events = Tencent.parse(body).unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(events[1].recipient.as_deref(), Some("b@x.com"));
    }

    #[test]
    fn missing_fields_are_named() {
        assert_eq!(
            Tencent.parse(br#"{"event":"open","timestamp":1}"#),
            Err(ParseError::MissingField {
                index: 0,
                field: "bulkId"
            })
        );
        assert_eq!(
            Tencent.parse(br#"{"event":"open","bulkId":"b"}"#),
            Err(ParseError::MissingField {
                index: 0,
                field: "timestamp"
            })
        );
        assert_eq!(
            Tencent.parse(br#"{"bulkId":"b","timestamp":1}"#),
            Err(ParseError::MissingField {
                index: 0,
                field: "event"
            })
        );
        assert!(matches!(
            Tencent.parse(b"42"),
            Err(ParseError::WrongShape(_))
        ));
        assert_eq!(Tencent.parse(b"[]"), Err(ParseError::NoEvents));
    }

    #[test]
    fn message_id_falls_back_to_smtp_message_id() {
        let e = &Tencent
            .parse(br#"{"event":"open","messageId":"<m-1@x.com>","timestamp":1}"#)
            .unwrap()[0];
        assert_eq!(e.message_id, "m-1@x.com");
    }

    /// One event of a batch that does not normalize is quarantined alone; the
    /// batch's others are stored exactly as from the valid batch.
    #[test]
    fn one_bad_event_in_a_batch_is_quarantined_alone() {
        use crate::providers::json::batch_check::{self, OneBroken, remove};
        OneBroken {
            provider: &Tencent,
            items: batch_check::fixture_items("tencent", &["delivered", "open", "bounce", "click"]),
            body: batch_check::array,
            broken: 2,
            damage: |e| remove(e, "timestamp"),
            code: "missing_field",
            repair: |v, item| v["timestamp"] = item["timestamp"].clone(),
        }
        .check();
    }
}
