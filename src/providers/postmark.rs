//! Postmark: one JSON object per POST whose `RecordType` names the kind
//! (`Delivery`, `Bounce`, `SpamComplaint`, `Open`, `Click`, `SubscriptionChange`),
//! no signature (a secret token protects the URL, as `?token=` or the HTTP Basic
//! password), ISO 8601 times with an offset and up to 7 fractional digits,
//! `MessageID` (the id the send API returned) as the id.

use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::Provider;
use super::json::{self, ParseError};
use crate::event::{BounceType, EmailEvent, EventType, format_rfc3339_ms};

/// Postmark webhooks (modular webhooks, one per message stream).
pub struct Postmark;

/// The event's own time, by record type: `DeliveredAt` (Delivery), `BouncedAt`
/// (Bounce, SpamComplaint), `ReceivedAt` (Open, Click), `ChangedAt`
/// (SubscriptionChange). The first one present is the event time.
const TIME_FIELDS: [&str; 4] = ["DeliveredAt", "BouncedAt", "ReceivedAt", "ChangedAt"];

/// The time of an event that carries none of [`TIME_FIELDS`] (Postmark sends
/// `Bounce` records of `Type: Unsubscribe` without `BouncedAt`): the Unix epoch.
/// Fixed rather than the receive time, so that a retry of the same body has the
/// same sort key and stays a duplicate; stored raw payloads re-normalize to it too.
const NO_TIME_MS: i64 = 0;

/// The `Metadata` key a test sender's run id goes in.
const TEST_TAG: &str = "mailhooks_test";

impl Provider for Postmark {
    fn name(&self) -> &'static str {
        "postmark"
    }

    fn secrets_env(&self) -> &'static str {
        "POSTMARK_TOKENS"
    }

    fn parse(&self, body: &[u8]) -> Result<Vec<EmailEvent>, ParseError> {
        let value = json::parse_body(body)?;
        json::validate(vec![parse_record(&value)?])
    }

    fn local_secret(&self) -> &'static str {
        "local-postmark-token"
    }

    fn refresh_sample(&self, sample: &mut Value, now_ms: i64, run_id: &str) {
        let Some(record) = sample.as_object_mut() else {
            return;
        };
        let now = format_rfc3339_ms(now_ms);
        let mut dated = false;
        for field in TIME_FIELDS {
            if let Some(time) = record.get_mut(field) {
                *time = Value::from(now.as_str());
                dated = true;
            }
        }
        if !dated {
            // An undated sample is sent dated: the test sender's events are at now.
            let field = own_time_field(json::text(record, "RecordType").as_deref());
            record.insert(field.into(), Value::from(now));
        }
        match record.get_mut("Metadata") {
            Some(Value::Object(metadata)) => {
                metadata.insert(TEST_TAG.into(), Value::from(run_id));
            }
            _ => {
                let mut metadata = Map::new();
                metadata.insert(TEST_TAG.into(), Value::from(run_id));
                record.insert("Metadata".into(), Value::Object(metadata));
            }
        }
    }
}

/// The time field a record type carries (for dating an undated sample).
fn own_time_field(record_type: Option<&str>) -> &'static str {
    match record_type.map(str::to_ascii_lowercase).as_deref() {
        Some("delivery") => "DeliveredAt",
        Some("open" | "click") => "ReceivedAt",
        Some("subscriptionchange") => "ChangedAt",
        _ => "BouncedAt",
    }
}

/// What a bounce `Type` (or, without one, its `TypeCode`) means, from Postmark's
/// bounce type list. Types that say nothing about delivery (auto-replies,
/// subscribe requests, inbound failures, `Unknown`) stay `unknown`.
const BOUNCE_TYPES: &[(&str, i64, EventType, Option<BounceType>)] = &[
    ("HardBounce", 1, EventType::Bounced, Some(BounceType::Hard)),
    ("Transient", 2, EventType::Deferred, None),
    ("Unsubscribe", 16, EventType::Unsubscribed, None),
    ("Subscribe", 32, EventType::Unknown, None),
    ("AutoResponder", 64, EventType::Unknown, None),
    ("AddressChange", 128, EventType::Unknown, None),
    ("DnsError", 256, EventType::Deferred, None),
    ("SpamNotification", 512, EventType::Complained, None),
    ("OpenRelayTest", 1024, EventType::Deferred, None),
    ("Unknown", 2048, EventType::Unknown, None),
    (
        "SoftBounce",
        4096,
        EventType::Bounced,
        Some(BounceType::Soft),
    ),
    (
        "VirusNotification",
        8192,
        EventType::Bounced,
        Some(BounceType::Soft),
    ),
    ("ChallengeVerification", 16384, EventType::Unknown, None),
    ("BadEmailAddress", 100_000, EventType::Rejected, None),
    ("SpamComplaint", 100_001, EventType::Complained, None),
    ("ManuallyDeactivated", 100_002, EventType::Rejected, None),
    ("Unconfirmed", 100_003, EventType::Rejected, None),
    ("Blocked", 100_006, EventType::Rejected, None),
    ("SMTPApiError", 100_007, EventType::Rejected, None),
    ("InboundError", 100_008, EventType::Unknown, None),
    ("DMARCPolicy", 100_009, EventType::Rejected, None),
    (
        "TemplateRenderingFailed",
        100_010,
        EventType::Rejected,
        None,
    ),
];

/// Classifies a `Bounce` or `SpamComplaint` record: its `Type` decides (matched
/// case-insensitively), else its `TypeCode`; a record with neither keeps what its
/// `RecordType` says; a type no table row names is `unknown`.
fn classify_bounce(
    record_default: EventType,
    type_name: Option<&str>,
    type_code: Option<i64>,
) -> (EventType, Option<BounceType>) {
    let row = match (type_name, type_code) {
        (Some(name), _) => BOUNCE_TYPES
            .iter()
            .find(|(n, ..)| n.eq_ignore_ascii_case(name)),
        (None, Some(code)) => BOUNCE_TYPES.iter().find(|(_, c, ..)| *c == code),
        (None, None) => return (record_default, None),
    };
    row.map_or((EventType::Unknown, None), |&(_, _, t, b)| (t, b))
}

/// Classifies a `SubscriptionChange`: `SuppressSending: false` is a reactivation
/// (mailhooks has no "subscribed" type: `unknown`, lifting nothing); true or
/// absent is a suppression, typed by `SuppressionReason`.
fn classify_subscription_change(record: &Map<String, Value>) -> (EventType, Option<BounceType>) {
    let reactivated =
        json::text(record, "SuppressSending").is_some_and(|s| s.eq_ignore_ascii_case("false"));
    if reactivated {
        return (EventType::Unknown, None);
    }
    match json::text(record, "SuppressionReason").as_deref() {
        Some(r) if r.eq_ignore_ascii_case("HardBounce") => {
            (EventType::Bounced, Some(BounceType::Hard))
        }
        Some(r) if r.eq_ignore_ascii_case("SpamComplaint") => (EventType::Complained, None),
        // `ManualSuppression`, a reason Postmark adds later, or none: the address is
        // suppressed all the same.
        _ => (EventType::Unsubscribed, None),
    }
}

/// Maps a record to its normalized type, by `RecordType` (case-insensitive).
fn classify(record_type: &str, record: &Map<String, Value>) -> (EventType, Option<BounceType>) {
    let bounce = |default| {
        classify_bounce(
            default,
            json::text(record, "Type").as_deref(),
            json::int(record, "TypeCode"),
        )
    };
    match record_type.to_ascii_lowercase().as_str() {
        "delivery" => (EventType::Delivered, None),
        "bounce" => bounce(EventType::Bounced),
        "spamcomplaint" => bounce(EventType::Complained),
        "open" => (EventType::Opened, None),
        "click" => (EventType::Clicked, None),
        "subscriptionchange" => classify_subscription_change(record),
        _ => (EventType::Unknown, None),
    }
}

/// Reads a Postmark time: RFC 3339 with a `T` (or space) separator, an offset
/// (`Z` or `±hh:mm`) and any number of fractional digits (Postmark sends up to 7),
/// truncated to the millisecond. Integer arithmetic only.
fn parse_time(text: &str) -> Option<i64> {
    // `time`'s RFC 3339 parser accepts any byte between date and time.
    if !matches!(text.as_bytes().get(10), Some(b'T' | b't' | b' ')) {
        return None;
    }
    let at = OffsetDateTime::parse(text, &Rfc3339).ok()?;
    i64::try_from(at.unix_timestamp_nanos().div_euclid(1_000_000)).ok()
}

/// The event time: the first of [`TIME_FIELDS`] present; one present but not a
/// time is an error (the body is refused, not stored at a wrong time).
fn event_time(record: &Map<String, Value>) -> Result<i64, ParseError> {
    for field in TIME_FIELDS {
        if let Some(text) = json::text(record, field) {
            return parse_time(&text).ok_or(ParseError::MissingField { index: 0, field });
        }
    }
    Ok(NO_TIME_MS)
}

/// The SMTP code of a Postmark `Details` text, which may start with the DSN
/// diagnostic type (`smtp;550 5.1.1 …`).
fn status_code(details: &str) -> Option<String> {
    let text = match details.split_once(';') {
        Some((kind, rest)) if kind.trim().eq_ignore_ascii_case("smtp") => rest,
        _ => details,
    };
    json::smtp_code(text.trim_start())
}

fn parse_record(value: &Value) -> Result<EmailEvent, ParseError> {
    let record = json::as_object(value, "a Postmark webhook")?;
    let missing = |field| ParseError::MissingField { index: 0, field };
    let record_type = json::text(record, "RecordType").ok_or_else(|| missing("RecordType"))?;
    let message_id = json::text(record, "MessageID").ok_or_else(|| missing("MessageID"))?;
    let time = event_time(record)?;
    let (event_type, bounce_type) = classify(&record_type, record);
    let is_bounce_record = ["bounce", "spamcomplaint"]
        .iter()
        .any(|r| record_type.eq_ignore_ascii_case(r));

    let mut event = EmailEvent::new(
        "postmark",
        event_type,
        record_type,
        message_id,
        time,
        json::canonical(value),
    );
    event.bounce_type = bounce_type;
    event.recipient = json::text(record, "Recipient")
        .or_else(|| json::text(record, "Email"))
        .map(|r| r.to_lowercase());
    let details = json::text(record, "Details");
    event.status_code = details.as_deref().and_then(status_code);
    if is_bounce_record {
        event.reason = details.or_else(|| json::text(record, "Description"));
    } else if let Some(d) = details {
        event.details.insert("delivery_details".into(), d);
    }
    event.url = json::text(record, "OriginalLink");
    let geo = json::object(record, "Geo");
    event.ip = geo.and_then(|g| json::text(g, "IP"));
    let client = json::object(record, "Client").and_then(|c| json::text(c, "Name"));
    let os = json::object(record, "OS").and_then(|o| json::text(o, "Name"));
    event.user_agent = json::text(record, "UserAgent")
        .or_else(|| json::client_description(client.clone(), None, os.clone(), None));
    event.subject = json::text(record, "Subject");
    event.sender = json::text(record, "From");
    if let Some(metadata) = json::object(record, "Metadata") {
        for (name, v) in metadata {
            let text = match v {
                Value::Object(_) | Value::Array(_) => Some(json::canonical(v)),
                scalar => json::value_text(scalar),
            };
            if let Some(text) = text {
                event.metadata.insert(name.clone(), text);
            }
        }
    }
    for (key, v) in [("client", client), ("os", os)] {
        if let Some(v) = v {
            event.details.insert(key.into(), v);
        }
    }
    copy_details(record, geo, &mut event);
    Ok(event)
}

/// Keeps the documented fields the normalized ones do not hold.
fn copy_details(
    record: &Map<String, Value>,
    geo: Option<&Map<String, Value>>,
    event: &mut EmailEvent,
) {
    for (field, key) in [
        ("ID", "bounce_id"),
        ("Type", "type"),
        ("TypeCode", "type_code"),
        ("Name", "bounce_name"),
        ("Description", "description"),
        ("Inactive", "inactive"),
        ("CanActivate", "can_activate"),
        ("DumpAvailable", "dump_available"),
        ("ServerID", "server_id"),
        ("MessageStream", "message_stream"),
        ("Tag", "tag"),
        ("FirstOpen", "first_open"),
        ("ReadSeconds", "read_seconds"),
        ("Platform", "platform"),
        ("ClickLocation", "click_location"),
        ("Origin", "origin"),
        ("SuppressSending", "suppress_sending"),
        ("SuppressionReason", "suppression_reason"),
    ] {
        if let Some(v) = json::text(record, field) {
            event.details.insert(key.into(), v);
        }
    }
    if let Some(geo) = geo {
        for (field, key) in [("Country", "country"), ("City", "city")] {
            if let Some(v) = json::text(geo, field) {
                event.details.insert(key.into(), v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::test_support::map;
    use std::collections::BTreeMap;

    fn body(name: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/tests/fixtures/postmark/{name}.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    fn parse_one(name: &str) -> EmailEvent {
        let mut events = Postmark.parse(&body(name)).unwrap();
        assert_eq!(events.len(), 1, "{name}");
        events.remove(0)
    }

    /// The event a fixture must become: the given fields, the fixture's canonical raw.
    fn expected(
        name: &str,
        (event_type, provider_event): (EventType, &str),
        message_id: &str,
        event_time_ms: i64,
    ) -> EmailEvent {
        let raw: Value = serde_json::from_slice(&body(name)).unwrap();
        EmailEvent::new(
            "postmark",
            event_type,
            provider_event,
            message_id,
            event_time_ms,
            json::canonical(&raw),
        )
    }

    #[test]
    fn delivery() {
        let mut want = expected(
            "delivered",
            (EventType::Delivered, "Delivery"),
            "6d1a5b5e-3f7c-4a39-9d52-0c8e1f2a7b14",
            // 2026-03-09T14:02:17.5+01:00: one fractional digit, a positive offset.
            1_773_061_337_500,
        );
        want.recipient = Some("reader@example.org".into());
        want.status_code = Some("250 2.0.0".into());
        want.metadata = map(&[("campaign", "spring"), ("customer_id", "c-1042")]);
        want.details = map(&[
            (
                "delivery_details",
                "smtp;250 2.0.0 OK 1773061337 q7si1234567wrb.12 - gsmtp",
            ),
            ("message_stream", "outbound"),
            ("server_id", "23"),
            ("tag", "welcome-email"),
        ]);
        assert_eq!(parse_one("delivered"), want);
    }

    #[test]
    fn hard_bounce() {
        let mut want = expected(
            "bounce_hard",
            (EventType::Bounced, "Bounce"),
            "2706ee8a-737c-4285-b032-ccd317af53ed",
            // 2016-04-27T16:28:50.3963933-04:00: 7 digits, truncated to the ms.
            1_461_788_930_396,
        );
        want.bounce_type = Some(BounceType::Hard);
        want.recipient = Some("bounce@example.com".into());
        want.reason =
            Some("smtp;550 5.1.1 The email account that you tried to reach does not exist.".into());
        want.status_code = Some("550 5.1.1".into());
        want.subject = Some("Postmark event test".into());
        want.sender = Some("sender@example.com".into());
        want.details = map(&[
            ("bounce_id", "901542550"),
            ("bounce_name", "Hard bounce"),
            ("can_activate", "true"),
            (
                "description",
                "The server was unable to deliver your message (ex: unknown user, mailbox not found).",
            ),
            ("dump_available", "true"),
            ("inactive", "true"),
            ("server_id", "23"),
            ("type", "HardBounce"),
            ("type_code", "1"),
        ]);
        assert_eq!(parse_one("bounce_hard"), want);
    }

    #[test]
    fn unsubscribe_bounce_without_time_recipient_or_suppress_sending() {
        // The shape of django-anymail issue #447: a `Bounce` record that is an
        // unsubscribe request, with no `BouncedAt`, `Email` or `SuppressSending`.
        let mut want = expected(
            "bounce_unsubscribe",
            (EventType::Unsubscribed, "Bounce"),
            "e2a84c1b-5f0d-4c9e-8a37-7b6d2f1e0c95",
            NO_TIME_MS,
        );
        want.reason = Some("Unsubscribe or Remove request.".into());
        want.details = map(&[
            ("bounce_id", "3907414252"),
            ("bounce_name", "Unsubscribe request"),
            ("description", "Unsubscribe or Remove request."),
            ("message_stream", "outbound"),
            ("server_id", "23"),
            ("type", "Unsubscribe"),
            ("type_code", "16"),
        ]);
        let event = parse_one("bounce_unsubscribe");
        assert_eq!(event, want);
        // A retry of the same body (re-serialized) has the same key.
        let value: Value = serde_json::from_slice(&body("bounce_unsubscribe")).unwrap();
        let retry = Postmark.parse(value.to_string().as_bytes()).unwrap();
        assert_eq!(
            crate::store::codec::sort_key(&retry[0]),
            crate::store::codec::sort_key(&event)
        );
    }

    #[test]
    fn spam_complaint() {
        let mut want = expected(
            "spam_complaint",
            (EventType::Complained, "SpamComplaint"),
            "9b3e0f4c-2a61-4d8e-b7c5-5f1d0e9a3c72",
            // 2026-03-10T08:45:03.0714462Z
            1_773_132_303_071,
        );
        want.recipient = Some("complainer@example.net".into());
        want.reason = Some("Complaint from the recipient's mailbox provider feedback loop".into());
        want.subject = Some("This week at Example".into());
        want.sender = Some("news@example.com".into());
        want.metadata = map(&[("list", "weekly")]);
        want.details = map(&[
            ("bounce_id", "4218860917"),
            ("bounce_name", "Spam complaint"),
            ("can_activate", "false"),
            (
                "description",
                "The subscriber explicitly marked this message as spam.",
            ),
            ("dump_available", "true"),
            ("inactive", "true"),
            ("message_stream", "broadcast"),
            ("server_id", "23"),
            ("tag", "newsletter"),
            ("type", "SpamComplaint"),
            ("type_code", "100001"),
        ]);
        assert_eq!(parse_one("spam_complaint"), want);
    }

    #[test]
    fn open() {
        let mut want = expected(
            "open",
            (EventType::Opened, "Open"),
            "f4830d10-9c35-4f0c-bca3-3d9b459821f8",
            // 2016-04-27T16:21:41.2493688-04:00
            1_461_788_501_249,
        );
        want.recipient = Some("recipient@example.com".into());
        want.user_agent = Some("Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0".into());
        want.details = map(&[
            ("client", "Gmail"),
            ("first_open", "true"),
            ("os", "unknown"),
            ("platform", "Unknown"),
            ("read_seconds", "0"),
        ]);
        assert_eq!(parse_one("open"), want);
    }

    #[test]
    fn click() {
        let mut want = expected(
            "click",
            (EventType::Clicked, "Click"),
            "f4830d10-9c35-4f0c-bca3-3d9b459821f8",
            // 2017-10-25T15:21:11.9065619Z
            1_508_944_871_906,
        );
        want.recipient = Some("recipient@example.com".into());
        want.url = Some("https://example.com/click/me".into());
        want.ip = Some("8.8.8.8".into());
        want.user_agent = Some("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_7_5) etc.".into());
        want.details = map(&[
            ("city", "Novi Sad"),
            ("click_location", "HTML"),
            ("client", "Chrome 35.0.1916.153"),
            ("country", "Serbia"),
            ("os", "OS X 10.7 Lion"),
            ("platform", "Desktop"),
            ("tag", "welcome-email"),
        ]);
        assert_eq!(parse_one("click"), want);
    }

    /// The details every sample `SubscriptionChange` carries.
    fn subscription_details(extra: &[(&str, &str)]) -> BTreeMap<String, String> {
        let mut details = map(&[("origin", "Recipient"), ("server_id", "23")]);
        details.extend(map(extra));
        details
    }

    #[test]
    fn subscription_change_for_a_hard_bounce() {
        let mut want = expected(
            "subscription_change_hard_bounce",
            (EventType::Bounced, "SubscriptionChange"),
            "b4cb783d-78ed-43f2-983b-63f55c712dc8",
            1_654_449_452_000,
        );
        want.bounce_type = Some(BounceType::Hard);
        want.recipient = Some("john@example.com".into());
        want.metadata = map(&[("example", "value"), ("example_2", "value")]);
        want.details = subscription_details(&[
            ("message_stream", "outbound"),
            ("suppress_sending", "true"),
            ("suppression_reason", "HardBounce"),
            ("tag", "my-tag"),
        ]);
        assert_eq!(parse_one("subscription_change_hard_bounce"), want);
    }

    #[test]
    fn subscription_change_manual_suppression() {
        let mut want = expected(
            "subscription_change_manual",
            (EventType::Unsubscribed, "SubscriptionChange"),
            "1c7f2e9a-8b43-4d05-a6e1-3b9c0d5f8e27",
            // 2026-03-11T19:30:00.25-05:00
            1_773_275_400_250,
        );
        want.recipient = Some("leaver@example.net".into());
        want.details = subscription_details(&[
            ("message_stream", "broadcast"),
            ("suppress_sending", "true"),
            ("suppression_reason", "ManualSuppression"),
            ("tag", "newsletter"),
        ]);
        assert_eq!(parse_one("subscription_change_manual"), want);
    }

    #[test]
    fn subscription_change_reactivation_is_stored_as_unknown() {
        let mut want = expected(
            "subscription_change_resubscribe",
            (EventType::Unknown, "SubscriptionChange"),
            "a4909a96-73d7-4c49-b148-a54522d3f7ac",
            1_654_449_452_000,
        );
        want.recipient = Some("john@example.com".into());
        want.metadata = map(&[("example", "value"), ("example_2", "value")]);
        want.details = subscription_details(&[
            ("message_stream", "outbound"),
            ("suppress_sending", "false"),
            ("tag", "welcome-email"),
        ]);
        assert_eq!(parse_one("subscription_change_resubscribe"), want);
    }

    #[test]
    fn subscription_change_without_suppress_sending_is_a_suppression() {
        let events = Postmark
            .parse(
                br#"{"RecordType":"SubscriptionChange","MessageID":"m","Recipient":"A@B.example",
                    "ChangedAt":"2022-06-05T17:17:32Z","SuppressionReason":"SpamComplaint"}"#,
            )
            .unwrap();
        assert_eq!(events[0].event_type, EventType::Complained);
        assert_eq!(events[0].recipient.as_deref(), Some("a@b.example"));
        let events = Postmark
            .parse(br#"{"RecordType":"SubscriptionChange","MessageID":"m","ChangedAt":"2022-06-05T17:17:32Z"}"#)
            .unwrap();
        assert_eq!(events[0].event_type, EventType::Unsubscribed);
    }

    #[test]
    fn every_bounce_type_is_mapped_by_name_and_by_code() {
        for &(name, code, event_type, bounce_type) in BOUNCE_TYPES {
            let want = (event_type, bounce_type);
            assert_eq!(
                classify_bounce(EventType::Bounced, Some(name), None),
                want,
                "{name}"
            );
            assert_eq!(
                classify_bounce(EventType::Bounced, None, Some(code)),
                want,
                "{code}"
            );
        }
        // Pinned decisions (docs/providers/postmark.md).
        for (name, want) in [
            ("hardbounce", (EventType::Bounced, Some(BounceType::Hard))),
            ("SoftBounce", (EventType::Bounced, Some(BounceType::Soft))),
            ("Transient", (EventType::Deferred, None)),
            ("Unsubscribe", (EventType::Unsubscribed, None)),
            ("SpamNotification", (EventType::Complained, None)),
            ("Blocked", (EventType::Rejected, None)),
            ("AutoResponder", (EventType::Unknown, None)),
            ("Teleported", (EventType::Unknown, None)),
        ] {
            assert_eq!(classify_bounce(EventType::Bounced, Some(name), None), want);
        }
        // The name decides over a disagreeing code; neither keeps the record's type.
        assert_eq!(
            classify_bounce(EventType::Bounced, Some("SoftBounce"), Some(1)).1,
            Some(BounceType::Soft)
        );
        assert_eq!(
            classify_bounce(EventType::Complained, None, None),
            (EventType::Complained, None)
        );
        assert_eq!(
            classify_bounce(EventType::Bounced, None, Some(3)).0,
            EventType::Unknown
        );
    }

    #[test]
    fn unknown_record_types_are_stored_as_unknown() {
        let events = Postmark
            .parse(
                br#"{"RecordType":"Teleport","MessageID":"m","ReceivedAt":"2022-06-05T17:17:32Z"}"#,
            )
            .unwrap();
        assert_eq!(
            (events[0].event_type, events[0].provider_event.as_str()),
            (EventType::Unknown, "Teleport")
        );
        // postmark.js types the Delivery payload as `MessageId`: the lookup falls
        // back to a case-insensitive match.
        let events = Postmark
            .parse(br#"{"RecordType":"delivery","MessageId":"m","DeliveredAt":"2022-06-05T17:17:32Z"}"#)
            .unwrap();
        assert_eq!(
            (events[0].event_type, events[0].message_id.as_str()),
            (EventType::Delivered, "m")
        );
    }

    #[test]
    fn times_with_offsets_and_one_to_seven_fractional_digits() {
        for (text, ms) in [
            ("2022-06-05T17:17:32Z", 1_654_449_452_000),
            ("2022-06-05T17:17:32.1Z", 1_654_449_452_100),
            ("2022-06-05T17:17:32.12Z", 1_654_449_452_120),
            ("2022-06-05T17:17:32.123Z", 1_654_449_452_123),
            ("2022-06-05T17:17:32.1239Z", 1_654_449_452_123),
            ("2022-06-05T17:17:32.12399Z", 1_654_449_452_123),
            ("2022-06-05T17:17:32.123999Z", 1_654_449_452_123),
            ("2022-06-05T17:17:32.9999999Z", 1_654_449_452_999),
            ("2022-06-05T13:17:32.5-04:00", 1_654_449_452_500),
            ("2022-06-06T02:47:32+09:30", 1_654_449_452_000),
            ("2022-06-05 17:17:32Z", 1_654_449_452_000),
        ] {
            assert_eq!(parse_time(text), Some(ms), "{text}");
        }
        for bad in [
            "2022-06-05T17:17:32",
            "2022-06-05",
            "2022-06-05X17:17:32Z",
            "2022-06-05T17:17:32.Z",
            "1654449452",
            "2022-13-05T17:17:32Z",
        ] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
    }

    #[test]
    fn shape_and_time_errors() {
        assert!(matches!(
            Postmark.parse(br#"[{"RecordType":"Open"}]"#),
            Err(ParseError::WrongShape(_))
        ));
        assert_eq!(
            Postmark.parse(br#"{"MessageID":"m"}"#),
            Err(ParseError::MissingField {
                index: 0,
                field: "RecordType"
            })
        );
        assert_eq!(
            Postmark.parse(br#"{"RecordType":"Open"}"#),
            Err(ParseError::MissingField {
                index: 0,
                field: "MessageID"
            })
        );
        assert_eq!(
            Postmark.parse(br#"{"RecordType":"Open","MessageID":"m","ReceivedAt":"yesterday"}"#),
            Err(ParseError::MissingField {
                index: 0,
                field: "ReceivedAt"
            })
        );
        // An empty or null time is no time: the fixed time, not an error.
        let events = Postmark
            .parse(
                br#"{"RecordType":"Bounce","MessageID":"m","BouncedAt":null,"Type":"HardBounce"}"#,
            )
            .unwrap();
        assert_eq!(events[0].event_time_ms, NO_TIME_MS);
    }

    #[test]
    fn refreshed_samples_are_new_tagged_events() {
        let now_ms = 1_767_225_600_123;
        let mut sample: Value = serde_json::from_slice(&body("delivered")).unwrap();
        Postmark.refresh_sample(&mut sample, now_ms, "run-1");
        let event = &Postmark.parse(sample.to_string().as_bytes()).unwrap()[0];
        assert_eq!(event.event_time_ms, now_ms);
        assert_eq!(
            event.metadata.get(TEST_TAG).map(String::as_str),
            Some("run-1")
        );
        assert_eq!(
            event.metadata.get("campaign").map(String::as_str),
            Some("spring")
        );

        // An undated sample gets its record type's time field.
        let mut sample: Value = serde_json::from_slice(&body("bounce_unsubscribe")).unwrap();
        Postmark.refresh_sample(&mut sample, now_ms, "run-2");
        assert_eq!(sample["BouncedAt"], "2026-01-01T00:00:00.123Z");
        let event = &Postmark.parse(sample.to_string().as_bytes()).unwrap()[0];
        assert_eq!(event.event_time_ms, now_ms);
        assert_eq!(
            event.metadata.get(TEST_TAG).map(String::as_str),
            Some("run-2")
        );
        for (record_type, field) in [
            (Some("Delivery"), "DeliveredAt"),
            (Some("click"), "ReceivedAt"),
            (Some("SubscriptionChange"), "ChangedAt"),
            (Some("SpamComplaint"), "BouncedAt"),
            (None, "BouncedAt"),
        ] {
            assert_eq!(own_time_field(record_type), field);
        }
    }
}
