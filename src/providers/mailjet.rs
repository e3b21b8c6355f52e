//! Mailjet Event API: one JSON object per POST, or an array of the last second's
//! events when "group events" is on (both are accepted); no signature (a secret
//! token protects the URL, as the HTTP Basic password Mailjet sends from
//! `https://user:token@…`, or `?token=`); `MessageID` as the id, kept as the exact
//! digits it was sent with (the values exceed 2^53, so never through a float); no
//! event id, so idempotency rests on the content hash; `time` in Unix seconds.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::json::{self, ParseError};
use super::{Inbound, Parsed, Provider};
use crate::event::{BounceType, EmailEvent, EventType, unix_to_ms};

/// Mailjet event callbacks (grouped or not).
pub struct Mailjet;

/// The `Payload` key a test sender's run id goes in.
const TEST_TAG: &str = "mailhooks_test";

impl Provider for Mailjet {
    fn name(&self) -> &'static str {
        "mailjet"
    }

    fn secrets_env(&self) -> &'static str {
        "MAILJET_TOKENS"
    }

    fn parse(&self, body: &[u8]) -> Result<Vec<EmailEvent>, ParseError> {
        let events = read_records(body)?
            .iter()
            .enumerate()
            .map(|(index, record)| parse_record(index, &record.0))
            .collect::<Result<_, _>>()?;
        json::validate(events)
    }

    /// Record by record: one that does not normalize is quarantined alone (as
    /// its item would keep it in `raw`), the group's others are stored. A body
    /// that is not an object or an array of objects is quarantined whole.
    fn parse_each(&self, request: &Inbound<'_>) -> Parsed {
        let body = request.body;
        let grouped = body.trim_ascii_start().starts_with(b"[");
        match read_records(body) {
            Ok(records) => json::each_item(
                body,
                records.iter().map(|record| &record.0),
                |index, record, out| parse_record(index, record).map(|event| out.push(event)),
                |record| {
                    if grouped {
                        json::item_alone(record)
                    } else {
                        body.to_vec()
                    }
                },
            ),
            Err(error) => Parsed::whole(request.body, Err(error)),
        }
    }

    fn local_secret(&self) -> &'static str {
        "local-mailjet-token"
    }

    fn refresh_sample(&self, sample: &mut Value, now_ms: i64, run_id: &str) {
        let records: Vec<&mut Value> = match sample {
            Value::Array(items) => items.iter_mut().collect(),
            single => vec![single],
        };
        for record in records.into_iter().filter_map(Value::as_object_mut) {
            record.insert("time".into(), Value::from(now_ms / 1000));
            let mut payload = json::text(record, "Payload")
                .and_then(|text| serde_json::from_str::<Map<String, Value>>(&text).ok())
                .unwrap_or_default();
            payload.insert(TEST_TAG.into(), Value::from(run_id));
            record.insert(
                "Payload".into(),
                Value::from(Value::Object(payload).to_string()),
            );
        }
    }
}

/// One event object (a `Value::Object`) whose integers are exact: each value is
/// first captured as its JSON text, and an integer is converted from that text
/// (to a 64-bit number when it fits, else kept as a string of its digits), never
/// via `f64`.
struct ExactObject(Value);

impl<'de> Deserialize<'de> for ExactObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(ExactObjectVisitor)
    }
}

struct ExactObjectVisitor;

impl<'de> Visitor<'de> for ExactObjectVisitor {
    type Value = ExactObject;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a Mailjet event object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<ExactObject, A::Error> {
        let mut object = Map::new();
        while let Some(key) = access.next_key::<String>()? {
            let raw: Box<RawValue> = access.next_value()?;
            let value = exact_value(raw.get()).map_err(de::Error::custom)?;
            object.insert(key, value);
        }
        Ok(ExactObject(Value::Object(object)))
    }
}

/// A JSON value from its text; an integer literal becomes a 64-bit number when it
/// fits and otherwise a string of its exact digits.
fn exact_value(text: &str) -> Result<Value, serde_json::Error> {
    let is_integer = {
        let digits = text.strip_prefix('-').unwrap_or(text);
        !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
    };
    if !is_integer {
        return serde_json::from_str(text);
    }
    if let Ok(n) = text.parse::<u64>() {
        return Ok(Value::from(n));
    }
    if let Ok(n) = text.parse::<i64>() {
        return Ok(Value::from(n));
    }
    Ok(Value::String(text.to_owned()))
}

/// The body's records: an array of objects (grouped) or one object, read in one
/// pass. Empty, non-UTF-8 and malformed bodies are told apart as everywhere.
fn read_records(body: &[u8]) -> Result<Vec<ExactObject>, ParseError> {
    let text = std::str::from_utf8(body).map_err(|_| ParseError::NotUtf8)?;
    let trimmed = text.trim_start();
    let result = match trimmed.as_bytes().first() {
        None => return Err(ParseError::EmptyBody),
        Some(b'[') => serde_json::from_str::<Vec<ExactObject>>(text),
        Some(b'{') => serde_json::from_str::<ExactObject>(text).map(|one| vec![one]),
        Some(_) => {
            return Err(ParseError::WrongShape(
                "a Mailjet callback must be a JSON object or an array of objects".into(),
            ));
        }
    };
    result.map_err(|e| match e.classify() {
        serde_json::error::Category::Data => ParseError::WrongShape(e.to_string()),
        _ => ParseError::InvalidJson(e.to_string()),
    })
}

/// Maps Mailjet's `event` (django-anymail's table) to the normalized type. A
/// bounce is hard when `hard_bounce` is true; a greylisting that is not hard is a
/// deferral (anymail); any other bounce is soft.
fn classify(name: &str, record: &Map<String, Value>) -> (EventType, Option<BounceType>) {
    match name.to_ascii_lowercase().as_str() {
        // "The destination SMTP server has accepted the message."
        "sent" => (EventType::Delivered, None),
        "open" => (EventType::Opened, None),
        "click" => (EventType::Clicked, None),
        "bounce" => {
            let hard = json::text(record, "hard_bounce").is_some_and(|h| h == "true");
            let greylisted =
                json::text(record, "error").is_some_and(|e| e.eq_ignore_ascii_case("greylisted"));
            match (hard, greylisted) {
                (true, _) => (EventType::Bounced, Some(BounceType::Hard)),
                (false, true) => (EventType::Deferred, None),
                (false, false) => (EventType::Bounced, Some(BounceType::Soft)),
            }
        }
        "blocked" => (EventType::Rejected, None),
        "spam" => (EventType::Complained, None),
        "unsub" => (EventType::Unsubscribed, None),
        _ => (EventType::Unknown, None),
    }
}

/// `time`, Unix seconds: every Mailjet event has one, so absent or unreadable is
/// an error (which also keeps other ESPs' bodies off this route).
fn event_time(index: usize, record: &Map<String, Value>) -> Result<i64, ParseError> {
    json::int(record, "time")
        .map(unix_to_ms)
        .ok_or(ParseError::MissingField {
            index,
            field: "time",
        })
}

fn parse_record(index: usize, value: &Value) -> Result<EmailEvent, ParseError> {
    let record = json::as_object(value, "a Mailjet event")?;
    let missing = |field| ParseError::MissingField { index, field };
    let name = json::text(record, "event").ok_or_else(|| missing("event"))?;
    // Matched exactly: Tencent's `messageId` is not Mailjet's `MessageID`.
    let message_id = record
        .get("MessageID")
        .and_then(json::value_text)
        .ok_or_else(|| missing("MessageID"))?;
    let time = event_time(index, record)?;
    let (event_type, bounce_type) = classify(&name, record);
    let failed = matches!(
        event_type,
        EventType::Bounced | EventType::Rejected | EventType::Deferred
    );

    let mut out = EmailEvent::new(
        "mailjet",
        event_type,
        name,
        message_id,
        time,
        json::canonical(value),
    );
    out.bounce_type = bounce_type;
    out.recipient = json::text(record, "email").map(|r| r.to_lowercase());
    if failed {
        out.reason = json::text(record, "comment").or_else(|| json::text(record, "error"));
        out.status_code = out.reason.as_deref().and_then(json::smtp_code);
    }
    out.url = json::text(record, "url");
    out.ip = json::text(record, "ip");
    out.user_agent = json::text(record, "agent");
    copy_payload(record, &mut out);
    copy_details(record, &mut out);
    Ok(out)
}

/// `Payload` (the `X-MJ-EventPayload` header): a JSON object's entries become
/// metadata; any other text is kept whole under `Payload`.
fn copy_payload(record: &Map<String, Value>, out: &mut EmailEvent) {
    let Some(payload) = json::text(record, "Payload") else {
        return;
    };
    match serde_json::from_str::<Map<String, Value>>(&payload) {
        Ok(entries) => {
            for (key, v) in &entries {
                let text = match v {
                    Value::Object(_) | Value::Array(_) => Some(json::canonical(v)),
                    scalar => json::value_text(scalar),
                };
                if let Some(text) = text {
                    out.metadata.insert(key.clone(), text);
                }
            }
        }
        Err(_) => {
            out.metadata.insert("Payload".into(), payload);
        }
    }
}

/// Keeps the documented fields the normalized ones do not hold. Looked up by
/// their exact documented names: a case-insensitive fallback would scan the
/// whole event once for every field it lacks.
fn copy_details(record: &Map<String, Value>, out: &mut EmailEvent) {
    for (field, key) in [
        ("Message_GUID", "message_guid"),
        ("mj_message_id", "mj_message_id"),
        ("mj_campaign_id", "mj_campaign_id"),
        ("mj_contact_id", "mj_contact_id"),
        ("mj_list_id", "mj_list_id"),
        ("customcampaign", "customcampaign"),
        ("CustomID", "custom_id"),
        ("smtp_reply", "smtp_reply"),
        ("error_related_to", "error_related_to"),
        ("error", "error"),
        ("comment", "comment"),
        ("blocked", "blocked"),
        ("hard_bounce", "hard_bounce"),
        ("source", "source"),
        ("geo", "geo"),
    ] {
        if let Some(v) = record.get(field).and_then(json::value_text) {
            out.details.insert(key.into(), v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::test_support::map;

    fn body(name: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/tests/fixtures/mailjet/{name}.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    fn parse_one(name: &str) -> EmailEvent {
        let mut events = Mailjet.parse(&body(name)).unwrap();
        assert_eq!(events.len(), 1, "{name}");
        events.remove(0)
    }

    /// Type, bounce type, id, recipient and time of a fixture's one event.
    fn check(
        name: &str,
        want: (EventType, Option<BounceType>),
        message_id: &str,
        recipient: &str,
        time_secs: i64,
    ) -> EmailEvent {
        let e = parse_one(name);
        assert_eq!((e.event_type, e.bounce_type), want, "{name}");
        assert_eq!(e.message_id, message_id, "{name}");
        assert_eq!(e.recipient.as_deref(), Some(recipient), "{name}");
        assert_eq!(e.event_time_ms, time_secs * 1000, "{name}");
        e
    }

    /// anymail's grouped samples: id, time.
    const GROUPED: (&str, i64) = ("12345678901234567", 1_498_093_527);

    #[test]
    fn sent_is_delivered_with_an_exact_id_above_2_pow_53() {
        let e = check(
            "delivered",
            (EventType::Delivered, None),
            // 19421777835146490 as an f64 would be 19421777835146488.
            "19421777835146490",
            "api@mailjet.com",
            1_433_333_949,
        );
        assert_eq!(
            e.details,
            map(&[
                ("custom_id", "helloworld"),
                ("message_guid", "1ab23cd4-e567-8901-2345-6789f0gh1i2j"),
                ("mj_campaign_id", "7257"),
                ("mj_contact_id", "4"),
                ("mj_message_id", "19421777835146490"),
                (
                    "smtp_reply",
                    "sent (250 2.0.0 OK 1433333948 fa5si855896wjc.199 - gsmtp)"
                ),
            ])
        );
        assert!(
            e.raw.contains(r#""MessageID":19421777835146490"#),
            "{}",
            e.raw
        );
        assert_eq!(e.reason, None);
    }

    #[test]
    fn grouped_sent_with_a_json_payload() {
        let (id, time) = GROUPED;
        let e = check(
            "sent_grouped",
            (EventType::Delivered, None),
            id,
            "recipient@example.com",
            time,
        );
        assert_eq!(
            e.metadata,
            map(&[("meta1", "simple string"), ("meta2", "2")])
        );
        assert_eq!(e.details["customcampaign"], "tag1");
    }

    #[test]
    fn a_grouped_batch_is_one_event_per_element() {
        let events = Mailjet.parse(&body("batch_sent")).unwrap();
        let ids: Vec<_> = events.iter().map(|e| e.message_id.as_str()).collect();
        assert_eq!(ids, ["19421777835146490", "19421777835146491"]);
    }

    #[test]
    fn opens_and_clicks() {
        let e = check(
            "open",
            (EventType::Opened, None),
            "19421777396190490",
            "api@mailjet.com",
            1_433_103_519,
        );
        assert_eq!(e.ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(e.details["geo"], "US");
        let (id, time) = GROUPED;
        let e = check(
            "open_grouped",
            (EventType::Opened, None),
            id,
            "recipient@example.com",
            time,
        );
        assert_eq!(
            e.user_agent.as_deref(),
            Some("Mozilla/5.0 (via ggpht.com GoogleImageProxy)")
        );
        let e = check(
            "click",
            (EventType::Clicked, None),
            "19421777836302490",
            "api@mailjet.com",
            1_433_334_653,
        );
        assert_eq!(e.url.as_deref(), Some("https://mailjet.com"));
    }

    #[test]
    fn bounces_are_hard_by_the_flag_soft_otherwise_greylisting_deferred() {
        let e = check(
            "bounce",
            (EventType::Bounced, Some(BounceType::Hard)),
            "13792286917004336",
            "bounce@mailjet.com",
            1_430_812_195,
        );
        assert_eq!(
            e.reason.as_deref(),
            Some(
                "Host or domain name not found. Name service error for \
                 name=lbjsnrftlsiuvbsren.com type=A: Host not found"
            )
        );
        assert_eq!(e.details["error"], "user unknown");
        let (id, time) = GROUPED;
        let e = check(
            "bounce_grouped",
            (EventType::Bounced, Some(BounceType::Hard)),
            id,
            "invalid@invalid",
            time,
        );
        assert_eq!(e.reason.as_deref(), Some("invalid domain"));
        let e = check(
            "bounce_soft",
            (EventType::Bounced, Some(BounceType::Soft)),
            "288230376151711744",
            "reader@example.org",
            1_773_061_337,
        );
        assert_eq!(e.status_code.as_deref(), Some("452 4.2.2"));
        check(
            "bounce_greylisted",
            (EventType::Deferred, None),
            "288230376151711745",
            "reader@example.org",
            1_773_061_338,
        );
    }

    #[test]
    fn blocked_is_rejected() {
        let e = check(
            "blocked",
            (EventType::Rejected, None),
            "13792286917004336",
            "bounce@mailjet.com",
            1_430_812_195,
        );
        assert_eq!(e.reason.as_deref(), Some("user unknown"));
        let (id, time) = GROUPED;
        let e = check(
            "blocked_grouped",
            (EventType::Rejected, None),
            id,
            "bad@example.com",
            time,
        );
        assert_eq!(e.reason.as_deref(), Some("typofix"));
    }

    #[test]
    fn spam_is_a_complaint() {
        let e = check(
            "spam",
            (EventType::Complained, None),
            "13792286917004336",
            "bounce@mailjet.com",
            1_430_812_195,
        );
        assert_eq!(e.details["source"], "JMRPP");
    }

    #[test]
    fn unsub_is_unsubscribed() {
        let e = check(
            "unsub",
            (EventType::Unsubscribed, None),
            "20547674933128000",
            "api@mailjet.com",
            1_433_334_941,
        );
        assert_eq!(e.details["mj_list_id"], "1");
        let (id, time) = GROUPED;
        let e = check(
            "unsub_grouped",
            (EventType::Unsubscribed, None),
            id,
            "recipient@example.com",
            time,
        );
        assert_eq!(e.user_agent.as_deref(), Some("List-Unsubscribe"));
    }

    #[test]
    fn message_ids_keep_every_digit_even_beyond_64_bits() {
        for digits in [
            "9007199254740993",
            "1234567890123456789",
            "18446744073709551615",
            "18446744073709551616",
            "123456789012345678901234567890",
        ] {
            let body = format!(r#"{{"event":"sent","MessageID":{digits},"time":1}}"#);
            let event = &Mailjet.parse(body.as_bytes()).unwrap()[0];
            assert_eq!(event.message_id, digits);
            assert!(event.raw.contains(digits), "{}", event.raw);
            // Grouped, too.
            let body = format!("[{body}]");
            assert_eq!(
                Mailjet.parse(body.as_bytes()).unwrap()[0].message_id,
                digits
            );
        }
        // A string id is taken as it is; floats and negatives stay numbers.
        let event = &Mailjet
            .parse(br#"{"event":"sent","MessageID":"77","time":1,"x":1.5e3,"y":-3}"#)
            .unwrap()[0];
        assert_eq!(event.message_id, "77");
        assert!(event.raw.contains(r#""x":1500.0"#) && event.raw.contains(r#""y":-3"#));
    }

    #[test]
    fn undocumented_events_are_unknown() {
        let events = Mailjet
            .parse(br#"{"event":"teleported","MessageID":1,"time":1}"#)
            .unwrap();
        assert_eq!(events[0].event_type, EventType::Unknown);
    }

    #[test]
    fn the_published_bounce_sample_is_invalid_json() {
        let text = std::fs::read(format!(
            "{}/tests/fixtures/mailjet/bounce_docs_verbatim.txt",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        assert!(matches!(
            Mailjet.parse(&text),
            Err(ParseError::InvalidJson(_))
        ));
    }

    #[test]
    fn shape_and_field_errors() {
        assert_eq!(Mailjet.parse(b" \n"), Err(ParseError::EmptyBody));
        assert_eq!(Mailjet.parse(&[b'{', 0xff, b'}']), Err(ParseError::NotUtf8));
        assert!(matches!(
            Mailjet.parse(b"{"),
            Err(ParseError::InvalidJson(_))
        ));
        assert!(matches!(
            Mailjet.parse(b"7"),
            Err(ParseError::WrongShape(_))
        ));
        assert!(matches!(
            Mailjet.parse(b"[7]"),
            Err(ParseError::WrongShape(_))
        ));
        assert_eq!(Mailjet.parse(b"[]"), Err(ParseError::NoEvents));
        assert_eq!(
            Mailjet.parse(br#"{"MessageID":1}"#),
            Err(ParseError::MissingField {
                index: 0,
                field: "event"
            })
        );
        assert_eq!(
            Mailjet.parse(br#"[{"event":"sent","MessageID":1,"time":1},{"event":"sent"}]"#),
            Err(ParseError::MissingField {
                index: 1,
                field: "MessageID"
            })
        );
        assert_eq!(
            Mailjet.parse(br#"{"event":"sent","MessageID":1,"time":"soon"}"#),
            Err(ParseError::MissingField {
                index: 0,
                field: "time"
            })
        );
        assert_eq!(
            Mailjet.parse(br#"{"event":"sent","MessageID":1}"#),
            Err(ParseError::MissingField {
                index: 0,
                field: "time"
            })
        );
        assert_eq!(
            Mailjet.parse(br#"{"event":"sent","messageId":1,"time":1}"#),
            Err(ParseError::MissingField {
                index: 0,
                field: "MessageID"
            })
        );
        // Deeply nested values hit serde_json's recursion limit, not the stack.
        let deep = format!(
            r#"{{"event":"sent","MessageID":1,"x":{}{}}}"#,
            "[".repeat(10_000),
            "]".repeat(10_000)
        );
        assert!(Mailjet.parse(deep.as_bytes()).is_err());
    }

    #[test]
    fn refreshed_samples_are_new_tagged_events() {
        let now_ms = 1_767_225_600_123;
        for name in ["delivered", "sent_grouped", "batch_sent"] {
            let mut sample: Value = serde_json::from_slice(&body(name)).unwrap();
            Mailjet.refresh_sample(&mut sample, now_ms, "run-1");
            for event in Mailjet.parse(sample.to_string().as_bytes()).unwrap() {
                assert_eq!(event.event_time_ms, 1_767_225_600_000, "{name}");
                assert_eq!(
                    event.metadata.get(TEST_TAG).map(String::as_str),
                    Some("run-1")
                );
            }
        }
    }

    /// One event of a batch that does not normalize is quarantined alone; the
    /// batch's others are stored exactly as from the valid batch.
    #[test]
    fn one_bad_event_in_a_batch_is_quarantined_alone() {
        use crate::providers::json::batch_check::{self, OneBroken, remove};
        OneBroken {
            provider: &Mailjet,
            items: batch_check::fixture_items("mailjet", &["batch_sent", "open", "bounce"]),
            body: batch_check::array,
            broken: 2,
            damage: |e| remove(e, "MessageID"),
            code: "missing_field",
            repair: |v, item| v["MessageID"] = item["MessageID"].clone(),
        }
        .check();
    }
}
