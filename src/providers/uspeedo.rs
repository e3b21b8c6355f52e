//! uSpeedo Email: batches `{"MsgType":2,"Data":[...]}`, no signature (a secret
//! token protects the URL), `ReceiptTime` in seconds or milliseconds, `MsgId` as the id.

use serde_json::{Map, Value};

use super::json::{self, ParseError};
use super::{Inbound, Parsed, Provider};
use crate::event::{BounceType, EmailEvent, EventType, unix_to_ms};

/// uSpeedo Email webhooks.
pub struct Uspeedo;

impl Provider for Uspeedo {
    fn name(&self) -> &'static str {
        "uspeedo"
    }

    fn secrets_env(&self) -> &'static str {
        "USPEEDO_TOKENS"
    }

    fn parse(&self, body: &[u8]) -> Result<Vec<EmailEvent>, ParseError> {
        let events = read_items(body)?
            .iter()
            .enumerate()
            .map(|(i, item)| parse_item(i, item))
            .collect::<Result<_, _>>()?;
        json::validate(events)
    }

    /// Item by item: one that does not normalize is quarantined alone in an
    /// envelope of its own ([`item_in_envelope`]), the push's others are
    /// stored. An envelope of the wrong shape quarantines the body whole.
    fn parse_each(&self, request: &Inbound<'_>) -> Parsed {
        match read_items(request.body) {
            Ok(items) => json::each_item(
                request.body,
                &items,
                |index, item, out| parse_item(index, item).map(|event| out.push(event)),
                item_in_envelope,
            ),
            Err(error) => Parsed::whole(request.body, Err(error)),
        }
    }

    fn local_secret(&self) -> &'static str {
        "local-uspeedo-token"
    }

    fn refresh_sample(&self, sample: &mut Value, now_ms: i64, run_id: &str) {
        let items = match sample {
            Value::Array(envelopes) => envelopes
                .iter_mut()
                .filter_map(|e| e["Data"].as_array_mut())
                .flatten()
                .collect::<Vec<_>>(),
            envelope => match envelope.get_mut("Data").and_then(Value::as_array_mut) {
                Some(items) => items.iter_mut().collect(),
                None => vec![envelope],
            },
        };
        for item in items {
            item["ReceiptTime"] = Value::from(now_ms / 1000);
            item["MailhooksTest"] = Value::from(run_id);
        }
    }
}

/// The `Data` items of a push: one envelope, an array of envelopes, or a bare item.
fn read_items(body: &[u8]) -> Result<Vec<Value>, ParseError> {
    let mut items = Vec::new();
    match json::parse_body(body)? {
        Value::Array(envelopes) => {
            for envelope in envelopes {
                collect_items(envelope, &mut items)?;
            }
        }
        single => collect_items(single, &mut items)?,
    }
    Ok(items)
}

/// One `Data` item as a body `parse` takes whatever the item lacks:
/// `{"Data":[item]}` (canonical, as the only key sorts first). Its bare form,
/// the one its event keeps in `raw`, is read as an item only when it has a
/// `MsgId`, so an item that failed for want of one would fail differently.
fn item_in_envelope(item: &Value) -> Vec<u8> {
    let inner = json::canonical(item);
    let mut body = Vec::with_capacity(inner.len() + 11);
    body.extend_from_slice(b"{\"Data\":[");
    body.extend_from_slice(inner.as_bytes());
    body.extend_from_slice(b"]}");
    body
}

/// Flattens an envelope (`{"MsgType":2,"Data":[...]}`) or a bare item into items.
fn collect_items(value: Value, items: &mut Vec<Value>) -> Result<(), ParseError> {
    let Value::Object(mut obj) = value else {
        return Err(ParseError::WrongShape(
            "a uSpeedo push must be a JSON object".into(),
        ));
    };
    match obj.remove("Data") {
        Some(Value::Array(data)) => items.extend(data),
        Some(Value::Object(one)) => items.push(Value::Object(one)),
        Some(_) => {
            return Err(ParseError::WrongShape(
                "\"Data\" must be an array of events".into(),
            ));
        }
        None if json::get(&obj, "MsgId").is_some() => items.push(Value::Object(obj)),
        None => {
            return Err(ParseError::WrongShape(
                "expected {\"MsgType\":2,\"Data\":[...]}".into(),
            ));
        }
    }
    Ok(())
}

/// Maps uSpeedo's `Event` (documented: request, deliver, open; the rest by meaning
/// of the console's Click, Bounce and Complaint events) to the normalized type.
fn classify(name: &str) -> (EventType, Option<BounceType>) {
    match name.to_ascii_lowercase().as_str() {
        "request" => (EventType::Queued, None),
        "send" | "sent" => (EventType::Sent, None),
        "deliver" | "delivered" | "delivery" => (EventType::Delivered, None),
        "open" => (EventType::Opened, None),
        "click" => (EventType::Clicked, None),
        "soft_bounce" | "softbounce" => (EventType::Bounced, Some(BounceType::Soft)),
        "invalid" | "invalid_email" | "hard_bounce" | "hardbounce" => {
            (EventType::Bounced, Some(BounceType::Hard))
        }
        "bounce" => (EventType::Bounced, None),
        "report_spam" | "spam" | "spamreport" | "complaint" | "complain" => {
            (EventType::Complained, None)
        }
        "unsubscribe" | "unsubscribed" => (EventType::Unsubscribed, None),
        "dropped" | "reject" | "rejected" => (EventType::Rejected, None),
        "deferred" | "delayed" | "defer" => (EventType::Deferred, None),
        _ => (EventType::Unknown, None),
    }
}

fn parse_item(index: usize, value: &Value) -> Result<EmailEvent, ParseError> {
    let item = json::as_object(value, "a uSpeedo Data item")?;
    let missing = |field| ParseError::MissingField { index, field };
    let message_id = json::text(item, "MsgId").ok_or_else(|| missing("MsgId"))?;
    let name = json::text(item, "Event")
        .or_else(|| json::text(item, "ReceiptResult"))
        .ok_or_else(|| missing("Event"))?;
    let time = json::int(item, "ReceiptTime").ok_or_else(|| missing("ReceiptTime"))?;
    let (event_type, bounce_type) = classify(&name);

    let mut event = EmailEvent::new(
        "uspeedo",
        event_type,
        name,
        message_id,
        unix_to_ms(time),
        json::canonical(value),
    );
    event.bounce_type = bounce_type;
    event.recipient = json::text(item, "RecipientEmail").map(|r| r.to_lowercase());
    event.batch_id = json::text(item, "SessionNo");
    event.ip = json::text(item, "ClientIp");
    event.url = json::text(item, "ClickedURL");
    event.user_agent = json::client_description(
        json::text(item, "ExplorerName"),
        json::text(item, "ExplorerVer"),
        json::text(item, "OSName"),
        json::text(item, "OSVer"),
    );
    let description = json::text(item, "ReceiptDesc");
    if matches!(
        event_type,
        EventType::Bounced | EventType::Rejected | EventType::Deferred | EventType::Unknown
    ) {
        event.reason = description.clone();
        event.status_code = json::text(item, "ReceiptCode");
    }
    copy_details(item, description, &mut event);
    Ok(event)
}

fn copy_details(item: &Map<String, Value>, description: Option<String>, event: &mut EmailEvent) {
    for (field, key) in [
        ("ReceiptCode", "receipt_code"),
        ("ReceiptResult", "receipt_result"),
        ("Domain", "sender_domain"),
        ("ExplorerName", "browser"),
        ("ExplorerVer", "browser_version"),
        ("OSName", "os"),
        ("OSVer", "os_version"),
    ] {
        if let Some(v) = json::text(item, field) {
            event.details.insert(key.into(), v);
        }
    }
    if let Some(d) = description {
        event.details.insert("receipt_desc".into(), d);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(name: &str) -> Vec<EmailEvent> {
        let body = std::fs::read(format!(
            "{}/tests/fixtures/uspeedo/{name}.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        Uspeedo.parse(&body).unwrap()
    }

    fn parse_one(name: &str) -> EmailEvent {
        let mut events = parse(name);
        assert_eq!(events.len(), 1, "{name}");
        events.remove(0)
    }

    const MSG: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90";
    const SESSION: &str = "4f1c7e2a-3b5d-4c8e-9f10-2a3b4c5d6e7f";

    #[test]
    fn request_v2_doc_has_no_recipient() {
        let e = parse_one("request");
        assert_eq!(
            (e.event_type, e.provider_event.as_str()),
            (EventType::Queued, "request")
        );
        assert_eq!(e.message_id, MSG);
        assert_eq!(e.batch_id.as_deref(), Some(SESSION));
        assert_eq!(e.event_time_ms, 1_234_567_890_000);
        assert_eq!(e.recipient, None);
        assert_eq!(e.reason, None);
        assert_eq!(e.details.get("receipt_code").map(String::as_str), Some("0"));
        assert_eq!(
            e.details.get("receipt_desc").map(String::as_str),
            Some("request success")
        );
    }

    #[test]
    fn request_products_doc_in_milliseconds_with_domain() {
        let e = parse_one("request_products_doc");
        assert_eq!(e.event_type, EventType::Queued);
        assert_eq!(e.event_time_ms, 1_234_567_890_000);
        assert_eq!(e.recipient.as_deref(), Some("buyer@example.org"));
        assert_eq!(
            e.details.get("sender_domain").map(String::as_str),
            Some("mail.example.net")
        );
        assert_eq!(
            e.details.get("receipt_code").map(String::as_str),
            Some("request")
        );
    }

    #[test]
    fn deliver() {
        let e = parse_one("deliver");
        assert_eq!(e.event_type, EventType::Delivered);
        assert_eq!(e.recipient.as_deref(), Some("user@example.com"));
        assert_eq!(e.event_time_ms, 1_234_567_895_000);
        assert_eq!(e.ip.as_deref(), Some("203.0.113.25"));
    }

    #[test]
    fn open() {
        let e = parse_one("open");
        assert_eq!(e.event_type, EventType::Opened);
        assert_eq!(e.ip.as_deref(), Some("198.51.100.7"));
        assert_eq!(e.user_agent.as_deref(), Some("Chrome 120.0 / Windows 10"));
        assert_eq!(e.details.get("os").map(String::as_str), Some("Windows"));
    }

    #[test]
    fn click() {
        let e = parse_one("click");
        assert_eq!(e.event_type, EventType::Clicked);
        assert_eq!(e.url.as_deref(), Some("https://shop.example.com/sale"));
        assert_eq!(e.user_agent.as_deref(), Some("Safari 17.0 / iOS 17.0"));
    }

    #[test]
    fn soft_bounce() {
        let e = parse_one("soft_bounce");
        assert_eq!(
            (e.event_type, e.bounce_type),
            (EventType::Bounced, Some(BounceType::Soft))
        );
        assert_eq!(e.reason.as_deref(), Some("452 4.2.2 mailbox full"));
        assert_eq!(e.status_code.as_deref(), Some("452"));
        assert_eq!(e.recipient.as_deref(), Some("full@example.com"));
    }

    #[test]
    fn hard_bounce() {
        let e = parse_one("bounce");
        assert_eq!(
            (e.event_type, e.bounce_type),
            (EventType::Bounced, Some(BounceType::Hard))
        );
        assert_eq!(e.provider_event, "invalid");
        assert_eq!(e.reason.as_deref(), Some("550 5.1.1 user unknown"));
        assert_eq!(e.status_code.as_deref(), Some("550"));
    }

    #[test]
    fn complaint() {
        let e = parse_one("complaint");
        assert_eq!(
            (e.event_type, e.provider_event.as_str()),
            (EventType::Complained, "report_spam")
        );
        assert_eq!(e.event_time_ms, 1_234_569_000_000);
    }

    #[test]
    fn unsubscribe() {
        let e = parse_one("unsubscribe");
        assert_eq!(e.event_type, EventType::Unsubscribed);
        assert_eq!(e.recipient.as_deref(), Some("user@example.com"));
    }

    #[test]
    fn batch_yields_every_item_with_its_own_raw() {
        let events = parse("batch");
        let types: Vec<_> = events.iter().map(|e| e.event_type).collect();
        assert_eq!(
            types,
            vec![EventType::Queued, EventType::Delivered, EventType::Opened]
        );
        assert!(events.iter().all(|e| e.message_id == MSG));
        assert!(events[1].raw.contains("\"deliver\"") && !events[1].raw.contains("\"open\""));
        // The same item in a single push and in a batch maps to the same key.
        assert_eq!(
            crate::store::codec::sort_key(&events[1]),
            crate::store::codec::sort_key(&parse_one("deliver"))
        );
    }

    #[test]
    fn every_meaning_of_the_console_events_is_mapped() {
        for (name, t) in [
            ("bounce", EventType::Bounced),
            ("hard_bounce", EventType::Bounced),
            ("spam", EventType::Complained),
            ("complaint", EventType::Complained),
            ("unsubscribed", EventType::Unsubscribed),
            ("sent", EventType::Sent),
            ("dropped", EventType::Rejected),
            ("deferred", EventType::Deferred),
            ("DELIVER", EventType::Delivered),
            ("teleported", EventType::Unknown),
        ] {
            assert_eq!(classify(name).0, t, "{name}");
        }
    }

    #[test]
    fn shape_errors() {
        assert!(matches!(
            Uspeedo.parse(br#"{"MsgType":2}"#),
            Err(ParseError::WrongShape(_))
        ));
        assert!(matches!(
            Uspeedo.parse(br#"{"MsgType":2,"Data":"x"}"#),
            Err(ParseError::WrongShape(_))
        ));
        assert_eq!(
            Uspeedo.parse(br#"{"MsgType":2,"Data":[]}"#),
            Err(ParseError::NoEvents)
        );
        assert_eq!(
            Uspeedo.parse(br#"{"MsgType":2,"Data":[{"Event":"open","ReceiptTime":1}]}"#),
            Err(ParseError::MissingField {
                index: 0,
                field: "MsgId"
            })
        );
        let single = Uspeedo
            .parse(br#"{"MsgId":"m","Event":"open","ReceiptTime":"1234567890"}"#)
            .unwrap();
        assert_eq!(single[0].event_time_ms, 1_234_567_890_000);
    }

    /// One item of a push that does not normalize is quarantined alone, in an
    /// envelope of its own; the push's others are stored exactly as from the
    /// valid push.
    #[test]
    fn one_bad_event_in_a_batch_is_quarantined_alone() {
        use crate::providers::json::batch_check::{self, OneBroken, remove};
        let envelope = batch_check::fixture_items("uspeedo", &["batch"]).remove(0);
        OneBroken {
            provider: &Uspeedo,
            items: envelope["Data"].as_array().unwrap().clone(),
            body: |items| {
                serde_json::to_vec(&serde_json::json!({"MsgType": 2, "Data": items})).unwrap()
            },
            broken: 1,
            damage: |e| remove(e, "MsgId"),
            code: "missing_field",
            repair: |v, item| v["Data"][0]["MsgId"] = item["MsgId"].clone(),
        }
        .check();
    }
}
