//! Brevo (ex-Sendinblue) transactional webhooks: one JSON object per POST, or an
//! array of up to 500 when the webhook is `batched`; no signature (a secret token
//! protects the URL: `?token=`, the HTTP Basic password, or the Bearer token of
//! Brevo's `auth` option); `message-id` as the id; `ts_epoch` (milliseconds UTC)
//! as the time — `date` is Paris local time and used only when nothing else is there.

use serde_json::{Map, Value};
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, Duration, Month, OffsetDateTime, PrimitiveDateTime};

use super::json::{self, ParseError};
use super::{Inbound, Parsed, Provider};
use crate::event::{BounceType, EmailEvent, EventType, unix_to_ms};

/// Brevo transactional webhooks (single or batched).
pub struct Brevo;

/// The time of an event that carries none of `ts_epoch`, `ts_event` or `date`:
/// the Unix epoch, fixed so that a retry of the same body keeps its sort key.
const NO_TIME_MS: i64 = 0;

/// The `X-Mailin-custom` key a test sender's run id goes in.
const TEST_TAG: &str = "mailhooks_test";

/// The field carrying what the sender attached at send time (the
/// `X-Mailin-custom` header), usually a JSON object in a string.
const CUSTOM_FIELD: &str = "X-Mailin-custom";

impl Provider for Brevo {
    fn name(&self) -> &'static str {
        "brevo"
    }

    fn secrets_env(&self) -> &'static str {
        "BREVO_TOKENS"
    }

    fn parse(&self, body: &[u8]) -> Result<Vec<EmailEvent>, ParseError> {
        let events = match json::parse_body(body)? {
            Value::Array(items) => items
                .iter()
                .enumerate()
                .map(|(index, item)| parse_event(index, item))
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
        "local-brevo-token"
    }

    fn refresh_sample(&self, sample: &mut Value, now_ms: i64, run_id: &str) {
        let events: Vec<&mut Value> = match sample {
            Value::Array(items) => items.iter_mut().collect(),
            single => vec![single],
        };
        for event in events {
            let Some(event) = event.as_object_mut() else {
                continue;
            };
            event.insert("ts_epoch".into(), Value::from(now_ms));
            if event.contains_key("ts_event") {
                event.insert("ts_event".into(), Value::from(now_ms / 1000));
            }
            let mut custom = json::text(event, CUSTOM_FIELD)
                .and_then(|text| serde_json::from_str::<Map<String, Value>>(&text).ok())
                .unwrap_or_default();
            custom.insert(TEST_TAG.into(), Value::from(run_id));
            event.insert(
                CUSTOM_FIELD.into(),
                Value::from(Value::Object(custom).to_string()),
            );
        }
    }
}

/// Maps Brevo's `event` (django-anymail's table; decisions on
/// docs/providers/brevo.md) to the normalized type.
fn classify(name: &str) -> (EventType, Option<BounceType>) {
    match name.to_ascii_lowercase().as_str() {
        "request" => (EventType::Queued, None),
        "delivered" => (EventType::Delivered, None),
        "hard_bounce" => (EventType::Bounced, Some(BounceType::Hard)),
        "soft_bounce" => (EventType::Bounced, Some(BounceType::Soft)),
        // Brevo refused to send: a blocked contact, a malformed address, a send error.
        "blocked" | "invalid_email" | "error" => (EventType::Rejected, None),
        "spam" | "complaint" => (EventType::Complained, None),
        "deferred" => (EventType::Deferred, None),
        "opened" | "unique_opened" | "proxy_open" | "unique_proxy_open" => {
            (EventType::Opened, None)
        }
        "click" => (EventType::Clicked, None),
        "unsubscribe" | "unsubscribed" => (EventType::Unsubscribed, None),
        // `list_addition` (anymail's "subscribed") and anything undocumented.
        _ => (EventType::Unknown, None),
    }
}

/// The open flags Brevo's event names carry: `unique` (the first open) and
/// `proxy` (loaded through a privacy proxy such as Apple Mail Privacy Protection,
/// so it says little about the reader).
fn open_flags(name: &str) -> &'static [&'static str] {
    match name.to_ascii_lowercase().as_str() {
        "unique_opened" => &["unique"],
        "proxy_open" => &["proxy"],
        "unique_proxy_open" => &["unique", "proxy"],
        _ => &[],
    }
}

/// The event time in ms: `ts_epoch` (ms UTC; a seconds value is accepted too),
/// else `ts_event` (seconds UTC), else `date` read as Paris local time, else
/// [`NO_TIME_MS`]. A field present but unreadable is an error.
fn event_time(index: usize, event: &Map<String, Value>) -> Result<i64, ParseError> {
    for field in ["ts_epoch", "ts_event"] {
        if json::text(event, field).is_some() {
            let value = json::int(event, field).ok_or(ParseError::MissingField { index, field })?;
            return Ok(unix_to_ms(value));
        }
    }
    match json::text(event, "date") {
        Some(date) => date_ms(&date).ok_or(ParseError::MissingField {
            index,
            field: "date",
        }),
        None => Ok(NO_TIME_MS),
    }
}

/// Reads a `date`: RFC 3339 with an offset when it has one (an exact instant),
/// else Brevo's `YYYY-MM-DD HH:MM:SS` as Paris local time.
fn date_ms(text: &str) -> Option<i64> {
    if matches!(text.as_bytes().get(10), Some(b'T' | b't')) {
        let at = OffsetDateTime::parse(text, &Rfc3339).ok()?;
        return i64::try_from(at.unix_timestamp_nanos().div_euclid(1_000_000)).ok();
    }
    paris_time_ms(text)
}

/// Reads `YYYY-MM-DD HH:MM:SS` as Paris local time (CET, UTC+1; CEST, UTC+2 from
/// the last Sunday of March to the last Sunday of October, 01:00 UTC, the EU rule
/// since 1996). In the repeated autumn hour the first (summer) reading is taken.
fn paris_time_ms(text: &str) -> Option<i64> {
    let format = format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    let local = PrimitiveDateTime::parse(text, &format).ok()?.assume_utc();
    let year = local.year();
    let summer_starts = last_sunday(year, Month::March)?.with_hms(1, 0, 0).ok()?;
    let summer_ends = last_sunday(year, Month::October)?.with_hms(1, 0, 0).ok()?;
    let as_summer = local.checked_sub(Duration::hours(2))?;
    let as_summer_utc = PrimitiveDateTime::new(as_summer.date(), as_summer.time());
    let utc = if (summer_starts..summer_ends).contains(&as_summer_utc) {
        as_summer
    } else {
        local.checked_sub(Duration::hours(1))?
    };
    i64::try_from(utc.unix_timestamp_nanos().div_euclid(1_000_000)).ok()
}

/// The last Sunday of a month (`month` is March or October: 31 days).
fn last_sunday(year: i32, month: Month) -> Option<Date> {
    let last = Date::from_calendar_date(year, month, 31).ok()?;
    let back = last.weekday().number_days_from_sunday();
    last.checked_sub(Duration::days(i64::from(back)))
}

/// The SMTP reply code inside a Brevo `reason`, which may be prefixed
/// (` RecipientError: 550 5.5.0 …`): the first word of three digits starting 2, 4 or 5.
fn status_code(reason: &str) -> Option<String> {
    let words: Vec<&str> = reason.split_whitespace().collect();
    let is_reply_code = |w: &str| {
        w.len() == 3
            && w.bytes().all(|b| b.is_ascii_digit())
            && matches!(w.as_bytes().first(), Some(b'2' | b'4' | b'5'))
    };
    let at = words.iter().position(|w| is_reply_code(w))?;
    let pair: Vec<&str> = words.iter().skip(at).take(2).copied().collect();
    json::smtp_code(&pair.join(" "))
}

fn parse_event(index: usize, value: &Value) -> Result<EmailEvent, ParseError> {
    let event = json::as_object(value, "a Brevo webhook event")?;
    let missing = |field| ParseError::MissingField { index, field };
    let name = json::text(event, "event").ok_or_else(|| missing("event"))?;
    let message_id = json::text(event, "message-id").ok_or_else(|| missing("message-id"))?;
    let time = event_time(index, event)?;
    let (event_type, bounce_type) = classify(&name);
    let flags = open_flags(&name);

    let mut out = EmailEvent::new(
        "brevo",
        event_type,
        name,
        message_id,
        time,
        json::canonical(value),
    );
    out.bounce_type = bounce_type;
    out.recipient = json::text(event, "email").map(|r| r.to_lowercase());
    out.reason = json::text(event, "reason");
    out.status_code = out.reason.as_deref().and_then(status_code);
    out.url = json::text(event, "link");
    out.user_agent = json::text(event, "user_agent");
    out.subject = json::text(event, "subject");
    out.sender = json::text(event, "sender_email");
    out.template_id = json::text(event, "template_id");
    for flag in flags {
        out.details.insert((*flag).into(), "true".into());
    }
    copy_metadata(event, &mut out);
    copy_details(event, &mut out);
    Ok(out)
}

/// `X-Mailin-custom`: a JSON object's entries become metadata; any other text is
/// kept whole under its field name.
fn copy_metadata(event: &Map<String, Value>, out: &mut EmailEvent) {
    let Some(custom) = json::text(event, CUSTOM_FIELD) else {
        return;
    };
    match serde_json::from_str::<Map<String, Value>>(&custom) {
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
            out.metadata.insert(CUSTOM_FIELD.into(), custom);
        }
    }
}

/// Keeps the documented fields the normalized ones do not hold. Looked up by
/// their exact documented names: a case-insensitive fallback would scan the
/// whole event once for every field it lacks.
fn copy_details(event: &Map<String, Value>, out: &mut EmailEvent) {
    for (field, key) in [
        ("id", "webhook_id"),
        ("date", "date"),
        ("ts", "ts"),
        ("ts_event", "ts_event"),
        ("sending_ip", "sending_ip"),
        ("contact_id", "contact_id"),
        ("mirror_link", "mirror_link"),
    ] {
        if let Some(v) = event.get(field).and_then(json::value_text) {
            out.details.insert(key.into(), v);
        }
    }
    // `tag` is a string (the X-Mailin-Tag header or the template name, sometimes
    // JSON-looking) or an array; `tags` is an array.
    for field in ["tag", "tags"] {
        let text = match json::get(event, field) {
            Some(v @ Value::Array(_)) => Some(json::canonical(v)),
            Some(v) => json::value_text(v),
            None => None,
        };
        if let Some(text) = text {
            out.details.insert(field.into(), text);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::test_support::map;

    fn body(name: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/tests/fixtures/brevo/{name}.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    fn parse_one(name: &str) -> EmailEvent {
        let mut events = Brevo.parse(&body(name)).unwrap();
        assert_eq!(events.len(), 1, "{name}");
        events.remove(0)
    }

    /// The event a fixture must become: the given fields, the fixture's canonical raw.
    fn expected(
        name: &str,
        (event_type, provider_event): (EventType, &str),
        message_id: &str,
        recipient: &str,
        event_time_ms: i64,
    ) -> EmailEvent {
        let raw: Value = serde_json::from_slice(&body(name)).unwrap();
        let mut event = EmailEvent::new(
            "brevo",
            event_type,
            provider_event,
            message_id,
            event_time_ms,
            json::canonical(&raw),
        );
        event.recipient = Some(recipient.into());
        event
    }

    /// The id and time of anymail's live-captured samples.
    const RELAY_ID: &str = "<201803011158.9876543210@smtp-relay.mailin.fr>";
    const SAMPLE_MS: i64 = 1_520_363_423_000;

    #[test]
    fn request_is_queued_with_metadata_tags_and_template() {
        let mut want = expected(
            "request",
            (EventType::Queued, "request"),
            "<201803062010.27287306012@smtp-relay.mailin.fr>",
            "recipient@example.com",
            // ts_epoch, not `date` (2018-03-06 11:10:23 Paris) nor `ts`.
            SAMPLE_MS,
        );
        want.subject = Some("Test subject".into());
        want.template_id = Some("12".into());
        want.metadata = map(&[("meta", "data")]);
        want.details = map(&[
            ("date", "2018-03-06 11:10:23"),
            ("sending_ip", "333.33.33.33"),
            ("tag", r#"["tag1","tag2"]"#),
            ("tags", r#"["tag1","tag2"]"#),
            ("ts", "1520331023"),
            ("ts_event", "1520331023"),
            ("webhook_id", "9999999"),
        ]);
        assert_eq!(parse_one("request"), want);
    }

    #[test]
    fn delivered() {
        let want = expected(
            "delivered",
            (EventType::Delivered, "delivered"),
            RELAY_ID,
            "recipient@example.com",
            SAMPLE_MS,
        );
        assert_eq!(parse_one("delivered"), want);
    }

    #[test]
    fn hard_bounce_with_a_prefixed_reason() {
        let mut want = expected(
            "hard_bounce",
            (EventType::Bounced, "hard_bounce"),
            RELAY_ID,
            "not-a-user@example.com",
            SAMPLE_MS,
        );
        want.bounce_type = Some(BounceType::Hard);
        want.reason = Some(
            "RecipientError: 550 5.5.0 Requested action not taken: mailbox unavailable.".into(),
        );
        want.status_code = Some("550 5.5.0".into());
        want.details = map(&[("tag", "header-tag")]);
        assert_eq!(parse_one("hard_bounce"), want);
    }

    #[test]
    fn soft_bounce() {
        let e = parse_one("soft_bounce");
        assert_eq!(
            (e.event_type, e.bounce_type),
            (EventType::Bounced, Some(BounceType::Soft))
        );
        assert_eq!(
            e.reason.as_deref(),
            Some("undefined Unable to find MX of domain no-mx.example.com")
        );
        assert_eq!(e.status_code, None);
        assert_eq!(e.event_time_ms, SAMPLE_MS);
    }

    #[test]
    fn blocked_is_rejected() {
        let mut want = expected(
            "blocked",
            (EventType::Rejected, "blocked"),
            RELAY_ID,
            "recipient@example.com",
            SAMPLE_MS,
        );
        want.reason = Some("blocked : due to blacklist user".into());
        assert_eq!(parse_one("blocked"), want);
    }

    #[test]
    fn invalid_email_and_error_are_rejected() {
        for name in ["invalid_email", "error"] {
            let e = parse_one(name);
            assert_eq!((e.event_type, e.bounce_type), (EventType::Rejected, None));
            assert_eq!(e.provider_event, name);
        }
        // The `error` sample's ts_epoch is in seconds: read as seconds.
        assert_eq!(parse_one("error").event_time_ms, 1_604_933_623_000);
    }

    #[test]
    fn spam_and_complaint_are_complaints() {
        let e = parse_one("spam");
        assert_eq!(
            (e.event_type, e.message_id.as_str(), e.event_time_ms),
            (EventType::Complained, RELAY_ID, SAMPLE_MS)
        );
        let mut want = expected(
            "complaint",
            (EventType::Complained, "complaint"),
            "201798300811.5787683@relay.domain.com",
            "example@domain.com",
            // No ts_epoch: ts_event (UTC seconds), not `ts` or `date`.
            1_604_933_654_000,
        );
        want.metadata = map(&[("meta", "data")]);
        want.details = map(&[
            ("date", "2020-10-09 00:00:00"),
            ("tags", r#"["transac_messages"]"#),
            ("ts", "1604933619"),
            ("ts_event", "1604933654"),
            ("webhook_id", "xxxxx"),
        ]);
        assert_eq!(parse_one("complaint"), want);
    }

    #[test]
    fn deferred() {
        let e = parse_one("deferred");
        assert_eq!((e.event_type, e.bounce_type), (EventType::Deferred, None));
        // Brevo's own classification stands, even for a 550 (anymail's live capture).
        assert_eq!(e.status_code.as_deref(), Some("550"));
    }

    #[test]
    fn opens_keep_their_unique_and_proxy_flags() {
        for (name, flags) in [
            ("opened", &[][..]),
            ("unique_opened", &[("unique", "true")][..]),
            ("proxy_open", &[("proxy", "true")][..]),
        ] {
            let e = parse_one(name);
            assert_eq!(
                (e.event_type, e.provider_event.as_str()),
                (EventType::Opened, name)
            );
            for (flag, value) in flags {
                assert_eq!(
                    e.details.get(*flag).map(String::as_str),
                    Some(*value),
                    "{name}"
                );
            }
            assert_eq!(
                e.details.contains_key("proxy"),
                name == "proxy_open",
                "{name}"
            );
        }
    }

    #[test]
    fn unique_proxy_open_without_utc_time_reads_date_as_paris_time() {
        let mut want = expected(
            "unique_proxy_open",
            (EventType::Opened, "unique_proxy_open"),
            "201798300811.5787683@relay.domain.com",
            "example@domain.com",
            // 2020-10-09 00:00:00 CEST = 2020-10-08T22:00:00Z (anymail's sample has
            // `s_epoch`, not `ts_epoch`: no UTC field).
            1_602_194_400_000,
        );
        want.subject = Some("My first Transactional".into());
        want.template_id = Some("1".into());
        want.details = map(&[
            ("date", "2020-10-09 00:00:00"),
            ("proxy", "true"),
            ("sending_ip", "xxx.xxx.xxx.xxx"),
            ("tag", r#"["transactionalTag"]"#),
            ("unique", "true"),
            ("webhook_id", "1"),
        ]);
        assert_eq!(parse_one("unique_proxy_open"), want);
    }

    #[test]
    fn click() {
        let e = parse_one("click");
        assert_eq!(e.event_type, EventType::Clicked);
        assert_eq!(e.url.as_deref(), Some("https://example.com/click/me"));
        assert_eq!(e.recipient.as_deref(), Some("recipient@example.com"));
    }

    #[test]
    fn unsubscribe() {
        let e = parse_one("unsubscribe");
        assert_eq!(e.event_type, EventType::Unsubscribed);
    }

    #[test]
    fn list_addition_and_undocumented_events_are_unknown() {
        let e = parse_one("list_addition");
        assert_eq!(
            (e.event_type, e.provider_event.as_str()),
            (EventType::Unknown, "list_addition")
        );
        let events = Brevo
            .parse(br#"{"event":"teleported","message-id":"m","ts_epoch":1}"#)
            .unwrap();
        assert_eq!(events[0].event_type, EventType::Unknown);
    }

    #[test]
    fn a_batch_is_one_event_per_element_in_order() {
        let events = Brevo.parse(&body("batch")).unwrap();
        let names: Vec<_> = events.iter().map(|e| e.provider_event.as_str()).collect();
        assert_eq!(names, ["request", "delivered", "unique_opened", "click"]);
        for (i, event) in events.iter().enumerate() {
            assert_eq!(
                event.message_id,
                "<202603091402.11223344556@smtp-relay.mailin.fr>"
            );
            assert_eq!(event.recipient.as_deref(), Some("reader@example.org"));
            assert_eq!(event.event_time_ms, 1_773_064_937_512 + 1000 * i as i64);
            assert_eq!(event.metadata.get("order").map(String::as_str), Some("A-7"));
        }
        assert_eq!(
            events[3].url.as_deref(),
            Some("https://example.com/spring?utm=brevo")
        );
    }

    #[test]
    fn paris_time_follows_summer_time() {
        for (text, utc_ms) in [
            // Winter: UTC+1.
            ("2026-01-15 12:00:00", 1_768_474_800_000),
            // 2026-03-29 is the last Sunday of March: 01:59 local is still winter.
            ("2026-03-29 01:59:00", 1_774_745_940_000),
            // 03:00 local is summer (UTC+2) = 01:00 UTC.
            ("2026-03-29 03:00:00", 1_774_746_000_000),
            // 2026-10-25: 02:30 local happens twice; the summer reading is taken.
            ("2026-10-25 02:30:00", 1_792_888_200_000),
            ("2026-10-25 03:00:00", 1_792_893_600_000),
        ] {
            assert_eq!(paris_time_ms(text), Some(utc_ms), "{text}");
        }
        assert_eq!(paris_time_ms("2026-10-25T03:00:00"), None);
        assert_eq!(paris_time_ms("yesterday"), None);
        // The edges of the calendar give no time, never a panic.
        assert_eq!(paris_time_ms("-9999-01-01 00:30:00"), None);
        assert!(paris_time_ms("9999-12-31 23:59:59").is_some());
        // A `date` with an offset is an exact instant.
        assert_eq!(
            date_ms("2026-10-25T03:00:00+01:00"),
            Some(1_792_893_600_000)
        );
        assert_eq!(date_ms("2026-10-25T03:00:00"), None);
        assert_eq!(date_ms("2026-10-25 03:00:00"), Some(1_792_893_600_000));
    }

    #[test]
    fn shape_and_field_errors() {
        assert!(matches!(
            Brevo.parse(b"[1]"),
            Err(ParseError::WrongShape(_))
        ));
        assert_eq!(Brevo.parse(b"[]"), Err(ParseError::NoEvents));
        assert_eq!(
            Brevo.parse(br#"{"message-id":"m"}"#),
            Err(ParseError::MissingField {
                index: 0,
                field: "event"
            })
        );
        assert_eq!(
            Brevo.parse(br#"[{"event":"delivered","message-id":"m"},{"event":"delivered"}]"#),
            Err(ParseError::MissingField {
                index: 1,
                field: "message-id"
            })
        );
        assert_eq!(
            Brevo.parse(br#"{"event":"delivered","message-id":"m","ts_epoch":"soon"}"#),
            Err(ParseError::MissingField {
                index: 0,
                field: "ts_epoch"
            })
        );
        let undated = Brevo
            .parse(br#"{"event":"delivered","message-id":"m"}"#)
            .unwrap();
        assert_eq!(undated[0].event_time_ms, NO_TIME_MS);
        // A custom header that is not a JSON object is kept whole.
        let plain = Brevo
            .parse(br#"{"event":"delivered","message-id":"m","X-Mailin-custom":"order 7"}"#)
            .unwrap();
        assert_eq!(
            plain[0].metadata.get(CUSTOM_FIELD).map(String::as_str),
            Some("order 7")
        );
    }

    #[test]
    fn status_codes_are_found_after_a_prefix() {
        assert_eq!(status_code("550 5.1.1 no"), Some("550 5.1.1".into()));
        assert_eq!(status_code("Error: 421 try later"), Some("421".into()));
        assert_eq!(status_code("blocked : due to blacklist user"), None);
        assert_eq!(status_code("ref 123 only"), None);
        assert_eq!(
            status_code("5xx then 451 4.7.1 later"),
            Some("451 4.7.1".into())
        );
    }

    #[test]
    fn refreshed_samples_are_new_tagged_events() {
        let now_ms = 1_767_225_600_123;
        for name in ["request", "unique_proxy_open", "batch"] {
            let mut sample: Value = serde_json::from_slice(&body(name)).unwrap();
            Brevo.refresh_sample(&mut sample, now_ms, "run-1");
            for event in Brevo.parse(sample.to_string().as_bytes()).unwrap() {
                assert_eq!(event.event_time_ms, now_ms, "{name}");
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
            provider: &Brevo,
            items: batch_check::fixture_items("brevo", &["batch"]),
            body: batch_check::array,
            broken: 1,
            damage: |e| remove(e, "message-id"),
            code: "missing_field",
            repair: |v, item| v["message-id"] = item["message-id"].clone(),
        }
        .check();
    }
}
