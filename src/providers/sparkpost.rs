//! SparkPost event webhooks: each POST is a JSON array of `{"msys": {"<class>":
//! {…event…}}}` (`message_event`, `track_event`, `gen_event`, `unsubscribe_event`,
//! `relay_event`, …); the console's test POST `[{"msys":{}}]` must be answered 200
//! or the webhook is not created. No signature: a secret token protects the URL,
//! as the HTTP Basic password (`auth_type: basic`), an OAuth Bearer token, or
//! `?token=`. `transmission_id` is the id; `timestamp` is seconds as a string.

use serde::Deserialize;
use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::json::{self, ParseError};
use super::{Control, Inbound, Parsed, Provider, Unparsed};
use crate::event::{BounceType, EmailEvent, EventType, unix_to_ms};

/// SparkPost event webhooks.
pub struct SparkPost;

/// The time of an event without `timestamp`: the Unix epoch, fixed so that a
/// retry of the same body keeps its sort key.
const NO_TIME_MS: i64 = 0;

/// The `rcpt_meta` key a test sender's run id goes in.
const TEST_TAG: &str = "mailhooks_test";

impl Provider for SparkPost {
    fn name(&self) -> &'static str {
        "sparkpost"
    }

    fn secrets_env(&self) -> &'static str {
        "SPARKPOST_TOKENS"
    }

    /// The test batch SparkPost posts when a webhook is created or its target
    /// changes: every element's `msys` is empty. Deserialization stops at the
    /// first element that holds an event, so an event batch costs one element.
    fn control(&self, request: &Inbound<'_>) -> Option<Control> {
        let pings: Vec<PingElement> = serde_json::from_slice(request.body).ok()?;
        (!pings.is_empty()).then_some(Control { kind: "ping" })
    }

    /// A batch (a JSON array), or one element: the `raw` stored for each event,
    /// which re-normalization parses again.
    fn parse(&self, body: &[u8]) -> Result<Vec<EmailEvent>, ParseError> {
        let elements = read_elements(body)?;
        let mut events = Vec::with_capacity(elements.len());
        for (index, element) in elements.iter().enumerate() {
            let msys = element_msys(index, element)?;
            for (class, event) in msys {
                let raw = class_raw(element, msys, class, event);
                events.push(parse_event(index, class, event, raw)?);
            }
        }
        json::validate(events)
    }

    /// Event by event: an element that is not `{"msys": {...}}` is quarantined
    /// alone, and so is each event of an element that does not normalize (as
    /// its `raw`: the element with that event's class only); the batch's
    /// others are stored.
    fn parse_each(&self, request: &Inbound<'_>) -> Parsed {
        let elements = match read_elements(request.body) {
            Ok(elements) => elements,
            Err(error) => return Parsed::whole(request.body, Err(error)),
        };
        let mut parsed = Parsed {
            events: Vec::with_capacity(elements.len()),
            unparsed: Vec::new(),
        };
        for (index, element) in elements.iter().enumerate() {
            let msys = match element_msys(index, element) {
                Ok(msys) => msys,
                Err(error) => {
                    let alone = json::item_alone(element);
                    parsed.unparsed.push(Unparsed::event(alone, &error));
                    continue;
                }
            };
            for (class, event) in msys {
                let raw = class_raw(element, msys, class, event);
                match parse_event(index, class, event, raw) {
                    Ok(event) => parsed.events.push(event),
                    // The raw moved into the failed parse: made again for this one.
                    Err(error) => parsed.unparsed.push(Unparsed::event(
                        class_raw(element, msys, class, event),
                        &error,
                    )),
                }
            }
        }
        json::not_empty(request.body, parsed)
    }

    fn local_secret(&self) -> &'static str {
        "local-sparkpost-token"
    }

    fn refresh_sample(&self, sample: &mut Value, now_ms: i64, run_id: &str) {
        let Some(elements) = sample.as_array_mut() else {
            return;
        };
        let classes = elements
            .iter_mut()
            .filter_map(|e| e.get_mut("msys").and_then(Value::as_object_mut))
            .flat_map(|msys| msys.values_mut().filter_map(Value::as_object_mut));
        for event in classes {
            event.insert("timestamp".into(), Value::from((now_ms / 1000).to_string()));
            if !matches!(event.get("rcpt_meta"), Some(Value::Object(_))) {
                event.insert("rcpt_meta".into(), Value::Object(Map::new()));
            }
            if let Some(Value::Object(meta)) = event.get_mut("rcpt_meta") {
                meta.insert(TEST_TAG.into(), Value::from(run_id));
            }
        }
    }
}

/// A batch element whose `msys` holds no event (other keys are ignored).
#[derive(Deserialize)]
struct PingElement {
    #[serde(rename = "msys")]
    _msys: EmptyObject,
}

/// A JSON object with no key at all.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EmptyObject {}

/// A body's batch elements: a JSON array of them, or one element (a stored `raw`).
fn read_elements(body: &[u8]) -> Result<Vec<Value>, ParseError> {
    match json::parse_body(body)? {
        Value::Array(elements) => Ok(elements),
        element @ Value::Object(_) => Ok(vec![element]),
        _ => Err(ParseError::WrongShape(
            "a SparkPost batch must be a JSON array of {\"msys\": {...}}".into(),
        )),
    }
}

/// An element's `msys` object, whose members are its events by class.
fn element_msys(index: usize, element: &Value) -> Result<&Map<String, Value>, ParseError> {
    let element = json::as_object(element, "a SparkPost batch element")?;
    match element.get("msys") {
        Some(msys) => json::as_object(msys, "\"msys\""),
        None => Err(ParseError::MissingField {
            index,
            field: "msys",
        }),
    }
}

/// What the event of `class` keeps as `raw`: its element, narrowed to that
/// class when the element holds several.
fn class_raw(element: &Value, msys: &Map<String, Value>, class: &str, event: &Value) -> String {
    if msys.len() == 1 {
        json::canonical(element)
    } else {
        json::canonical(&only_class(element, class, event))
    }
}

/// An element reduced to one of several event classes in its `msys`, so that
/// each event's `raw` holds only itself.
fn only_class(element: &Value, class: &str, event: &Value) -> Value {
    let mut msys = Map::new();
    msys.insert(class.to_owned(), event.clone());
    let mut out = element.as_object().cloned().unwrap_or_default();
    out.insert("msys".into(), Value::Object(msys));
    Value::Object(out)
}

/// SparkPost's bounce classification codes (support doc "Bounce Classification
/// Codes"), by category: `Hard` and `Admin` are hard; `Soft`, `Block` and
/// `Undetermined` are soft. Auto-replies (60), subscribe requests (80) and
/// challenge-responses (100) are not delivery failures (`unknown`, as Postmark's
/// equivalents); an unsubscribe (90) is `unsubscribed`.
const BOUNCE_CLASSES: &[(&str, EventType, Option<BounceType>)] = &[
    ("1", EventType::Bounced, Some(BounceType::Soft)),
    ("10", EventType::Bounced, Some(BounceType::Hard)),
    ("20", EventType::Bounced, Some(BounceType::Soft)),
    ("21", EventType::Bounced, Some(BounceType::Soft)),
    ("22", EventType::Bounced, Some(BounceType::Soft)),
    ("23", EventType::Bounced, Some(BounceType::Soft)),
    ("24", EventType::Bounced, Some(BounceType::Soft)),
    ("25", EventType::Bounced, Some(BounceType::Hard)),
    ("30", EventType::Bounced, Some(BounceType::Hard)),
    ("40", EventType::Bounced, Some(BounceType::Soft)),
    ("50", EventType::Bounced, Some(BounceType::Soft)),
    ("51", EventType::Bounced, Some(BounceType::Soft)),
    ("52", EventType::Bounced, Some(BounceType::Soft)),
    ("53", EventType::Bounced, Some(BounceType::Soft)),
    ("54", EventType::Bounced, Some(BounceType::Soft)),
    ("60", EventType::Unknown, None),
    ("70", EventType::Bounced, Some(BounceType::Soft)),
    ("80", EventType::Unknown, None),
    ("90", EventType::Unsubscribed, None),
    ("100", EventType::Unknown, None),
];

/// Types a `bounce` or `out_of_band` event by its `bounce_class`; a class the
/// table does not name (or none) is a bounce of unknown kind.
fn classify_bounce(bounce_class: Option<&str>) -> (EventType, Option<BounceType>) {
    bounce_class
        .and_then(|class| BOUNCE_CLASSES.iter().find(|(c, ..)| *c == class))
        .map_or((EventType::Bounced, None), |&(_, t, b)| (t, b))
}

/// Maps SparkPost's `type` (django-anymail's table; decisions on
/// docs/providers/sparkpost.md) to the normalized type.
fn classify(name: &str, bounce_class: Option<&str>) -> (EventType, Option<BounceType>) {
    match name.to_ascii_lowercase().as_str() {
        "injection" => (EventType::Queued, None),
        "delivery" => (EventType::Delivered, None),
        "delay" => (EventType::Deferred, None),
        "bounce" | "out_of_band" => classify_bounce(bounce_class),
        "policy_rejection" | "generation_failure" | "generation_rejection" => {
            (EventType::Rejected, None)
        }
        "spam_complaint" => (EventType::Complained, None),
        "open" | "initial_open" | "amp_open" | "amp_initial_open" => (EventType::Opened, None),
        "click" | "amp_click" => (EventType::Clicked, None),
        "list_unsubscribe" | "link_unsubscribe" => (EventType::Unsubscribed, None),
        // A message arrived at an inbound (relay) domain; the relay's later
        // steps (relay_delivery, relay_tempfail, …) stay `unknown`.
        "relay_injection" => (EventType::Inbound, None),
        _ => (EventType::Unknown, None),
    }
}

/// `timestamp`: Unix seconds (a string or a number; milliseconds are recognised
/// by size), or RFC 3339 (`generation_failure` events send
/// `2018-10-11T23:24:45.000+00:00`). Absent is [`NO_TIME_MS`]; unreadable is an error.
fn event_time(index: usize, event: &Map<String, Value>) -> Result<i64, ParseError> {
    let Some(text) = json::text(event, "timestamp") else {
        return Ok(NO_TIME_MS);
    };
    let bad = ParseError::MissingField {
        index,
        field: "timestamp",
    };
    if let Ok(secs) = text.parse::<i64>() {
        return Ok(unix_to_ms(secs));
    }
    if !matches!(text.as_bytes().get(10), Some(b'T' | b't')) {
        return Err(bad);
    }
    let at = OffsetDateTime::parse(&text, &Rfc3339).map_err(|_| bad.clone())?;
    i64::try_from(at.unix_timestamp_nanos().div_euclid(1_000_000)).map_err(|_| bad)
}

fn parse_event(
    index: usize,
    class: &str,
    value: &Value,
    raw: String,
) -> Result<EmailEvent, ParseError> {
    let event = json::as_object(value, "a SparkPost event")?;
    let missing = |field| ParseError::MissingField { index, field };
    let name = json::text(event, "type").ok_or_else(|| missing("type"))?;
    // The transmission groups a send's messages and is what the send API
    // returned; events without one (relay events) fall back to their own ids.
    let message_id = ["transmission_id", "message_id", "event_id"]
        .iter()
        .find_map(|field| json::text(event, field))
        .ok_or_else(|| missing("transmission_id"))?;
    let time = event_time(index, event)?;
    let bounce_class = json::text(event, "bounce_class");
    let (event_type, bounce_type) = classify(&name, bounce_class.as_deref());

    let mut out = EmailEvent::new("sparkpost", event_type, name, message_id, time, raw);
    out.bounce_type = bounce_type;
    out.recipient = json::text(event, "rcpt_to")
        .or_else(|| json::text(event, "raw_rcpt_to"))
        .map(|r| r.to_lowercase());
    out.reason = json::text(event, "raw_reason").or_else(|| json::text(event, "reason"));
    out.status_code = out
        .reason
        .as_deref()
        .and_then(json::smtp_code)
        .or_else(|| json::text(event, "error_code"));
    out.url = json::text(event, "target_link_url");
    out.ip = json::text(event, "ip_address");
    out.user_agent = json::text(event, "user_agent");
    out.subject = json::text(event, "subject");
    out.sender = json::text(event, "friendly_from").or_else(|| json::text(event, "msg_from"));
    out.template_id = json::text(event, "template_id");
    if let Some(meta) = json::object(event, "rcpt_meta") {
        for (key, v) in meta {
            let text = match v {
                Value::Object(_) | Value::Array(_) => Some(json::canonical(v)),
                scalar => json::value_text(scalar),
            };
            if let Some(text) = text {
                out.metadata.insert(key.clone(), text);
            }
        }
    }
    out.details.insert("class".into(), class.to_owned());
    copy_details(event, &mut out);
    Ok(out)
}

/// Keeps the documented fields the normalized ones do not hold. Looked up by
/// their exact documented names: a case-insensitive fallback would scan the
/// whole event once for every field it lacks.
fn copy_details(event: &Map<String, Value>, out: &mut EmailEvent) {
    for field in [
        "event_id",
        "message_id",
        "bounce_class",
        "error_code",
        "reason",
        "fbtype",
        "report_by",
        "report_to",
        "user_str",
        "campaign_id",
        "customer_id",
        "subaccount_id",
        "ip_pool",
        "sending_ip",
        "remote_addr",
        "rcpt_type",
        "num_retries",
        "queue_time",
        "template_version",
        "target_link_name",
        "mailbox_provider",
        "initial_pixel",
        "delv_method",
        "routing_domain",
        "relay_id",
    ] {
        if let Some(v) = event.get(field).and_then(json::value_text) {
            out.details.insert(field.into(), v);
        }
    }
    for field in ["rcpt_tags", "geo_ip"] {
        if let Some(v @ (Value::Array(_) | Value::Object(_))) = json::get(event, field) {
            out.details.insert(field.into(), json::canonical(v));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::test_support::map;

    fn body(name: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/tests/fixtures/sparkpost/{name}.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    fn parse_one(name: &str) -> EmailEvent {
        let mut events = SparkPost.parse(&body(name)).unwrap();
        assert_eq!(events.len(), 1, "{name}");
        events.remove(0)
    }

    /// Type, bounce type, id, recipient and time of a fixture's one event.
    fn check(
        name: &str,
        want: (EventType, Option<BounceType>),
        transmission_id: &str,
        recipient: &str,
        time_ms: i64,
    ) -> EmailEvent {
        let e = parse_one(name);
        assert_eq!((e.event_type, e.bounce_type), want, "{name}");
        assert_eq!(e.message_id, transmission_id, "{name}");
        assert_eq!(e.recipient.as_deref(), Some(recipient), "{name}");
        assert_eq!(e.event_time_ms, time_ms, "{name}");
        let raw: Value = serde_json::from_slice(&body(name)).unwrap();
        assert_eq!(e.raw, json::canonical(&raw[0]), "{name}");
        // The stored raw parses again into the same event (re-normalization).
        assert_eq!(
            SparkPost.parse(e.raw.as_bytes()),
            Ok(vec![e.clone()]),
            "{name}"
        );
        e
    }

    /// SparkPost's sample events: transmission, recipient, time.
    const SAMPLE: (&str, &str, i64) = (
        "65832150921904138",
        "recipient@example.com",
        1_454_442_600_000,
    );

    #[test]
    fn injection_is_queued_with_metadata_and_campaign() {
        let (tx, rcpt, ms) = SAMPLE;
        let e = check("injection", (EventType::Queued, None), tx, rcpt, ms);
        assert_eq!(e.metadata, map(&[("customKey", "customValue")]));
        assert_eq!(e.subject.as_deref(), Some("Summer deals are here!"));
        assert_eq!(e.sender.as_deref(), Some("sender@example.com"));
        assert_eq!(e.template_id.as_deref(), Some("templ-1234"));
        assert_eq!(e.details["campaign_id"], "Example Campaign Name");
        assert_eq!(e.details["message_id"], "000443ee14578172be22");
        assert_eq!(e.details["event_id"], "92356927693813856");
        assert_eq!(e.details["class"], "message_event");
        assert_eq!(e.details["rcpt_tags"], r#"["male","US"]"#);
    }

    #[test]
    fn delivery() {
        let (tx, _, ms) = SAMPLE;
        // `raw_rcpt_to` keeps the case; `rcpt_to` is the address, lower-cased.
        let e = check(
            "delivered",
            (EventType::Delivered, None),
            tx,
            "recipient@example.com",
            ms,
        );
        assert!(e.metadata.is_empty());
    }

    #[test]
    fn bounce_class_10_is_hard() {
        let e = check(
            "bounce",
            (EventType::Bounced, Some(BounceType::Hard)),
            "84345317650824116",
            "bounce@example.com",
            1_464_824_548_000,
        );
        assert_eq!(
            e.reason.as_deref(),
            Some("550 5.1.1 <bounce@example.com>: Recipient address rejected: User unknown")
        );
        assert_eq!(e.status_code.as_deref(), Some("550 5.1.1"));
        assert_eq!(e.details["bounce_class"], "10");
    }

    #[test]
    fn out_of_band_class_1_is_soft() {
        let (tx, rcpt, ms) = SAMPLE;
        let e = check(
            "out_of_band",
            (EventType::Bounced, Some(BounceType::Soft)),
            tx,
            rcpt,
            ms,
        );
        assert_eq!(e.status_code.as_deref(), Some("554"));
        assert_eq!(e.ip.as_deref(), Some("127.0.0.1"));
    }

    #[test]
    fn delay_is_deferred_whatever_its_class() {
        let e = check(
            "delay",
            (EventType::Deferred, None),
            "84345317650824116",
            "recipient@nomx.example.com",
            1_464_825_748_000,
        );
        assert_eq!(e.status_code.as_deref(), Some("454 4.4.4"));
        assert_eq!(e.details["num_retries"], "1");
    }

    #[test]
    fn rejections() {
        let (tx, rcpt, ms) = SAMPLE;
        let e = check(
            "policy_rejection",
            (EventType::Rejected, None),
            tx,
            rcpt,
            ms,
        );
        assert_eq!(e.details["bounce_class"], "25");
        check(
            "generation_rejection",
            (EventType::Rejected, None),
            "102360394387646691",
            "suppressed@example.com",
            1_464_900_034_000,
        );
        // An RFC 3339 timestamp, and no per-message id.
        let e = check(
            "generation_failure",
            (EventType::Rejected, None),
            "139013368081177607",
            "recipient@example.com",
            1_539_300_285_000,
        );
        assert_eq!(e.status_code.as_deref(), Some("554 5.3.3"));
    }

    #[test]
    fn spam_complaint() {
        let (tx, rcpt, ms) = SAMPLE;
        let e = check(
            "spam_complaint",
            (EventType::Complained, None),
            tx,
            rcpt,
            ms,
        );
        assert_eq!(e.details["fbtype"], "abuse");
        assert_eq!(e.metadata, map(&[("hashId", "2")]));
    }

    #[test]
    fn opens_and_clicks_including_amp() {
        let (tx, rcpt, ms) = SAMPLE;
        for name in ["open", "initial_open", "amp_open", "amp_initial_open"] {
            let e = check(name, (EventType::Opened, None), tx, rcpt, ms);
            assert_eq!(e.provider_event, name);
            assert_eq!(e.details["class"], "track_event");
            assert_eq!(
                e.user_agent.as_deref(),
                Some("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_10_3) AppleWebKit/537.36")
            );
        }
        for name in ["click", "amp_click"] {
            let e = check(name, (EventType::Clicked, None), tx, rcpt, ms);
            assert_eq!(e.url.as_deref(), Some("https://example.com/summer"));
            assert_eq!(e.details["target_link_name"], "Summer deals");
        }
    }

    #[test]
    fn unsubscribes() {
        let (tx, rcpt, ms) = SAMPLE;
        for name in ["list_unsubscribe", "link_unsubscribe"] {
            let e = check(name, (EventType::Unsubscribed, None), tx, rcpt, ms);
            assert_eq!(e.provider_event, name);
        }
        // anymail's `list_unsubscribe`.
        check(
            "unsubscribe",
            (EventType::Unsubscribed, None),
            "84345993965073285",
            rcpt,
            1_464_894_280_000,
        );
    }

    #[test]
    fn relay_injection_is_inbound_and_other_relay_steps_unknown() {
        let events = SparkPost.parse(&body("relay")).unwrap();
        let got: Vec<_> = events
            .iter()
            .map(|e| {
                (
                    e.provider_event.as_str(),
                    e.event_type,
                    e.message_id.as_str(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("relay_injection", EventType::Inbound, "92356927693813856"),
                ("relay_delivery", EventType::Unknown, "92356927693813857"),
            ]
        );
    }

    #[test]
    fn every_bounce_class_of_the_table_and_one_outside_it() {
        for &(class, event_type, bounce_type) in BOUNCE_CLASSES {
            assert_eq!(classify("bounce", Some(class)), (event_type, bounce_type));
            assert_eq!(
                classify("out_of_band", Some(class)),
                (event_type, bounce_type)
            );
        }
        for (class, want) in [
            ("10", (EventType::Bounced, Some(BounceType::Hard))),
            ("25", (EventType::Bounced, Some(BounceType::Hard))),
            ("30", (EventType::Bounced, Some(BounceType::Hard))),
            ("22", (EventType::Bounced, Some(BounceType::Soft))),
            ("51", (EventType::Bounced, Some(BounceType::Soft))),
            ("60", (EventType::Unknown, None)),
            ("80", (EventType::Unknown, None)),
            ("90", (EventType::Unsubscribed, None)),
            ("100", (EventType::Unknown, None)),
            // Not in the published table: a bounce, kind unknown.
            ("26", (EventType::Bounced, None)),
        ] {
            assert_eq!(classify("bounce", Some(class)), want, "{class}");
        }
        assert_eq!(classify("bounce", None), (EventType::Bounced, None));
        assert_eq!(classify("delay", Some("10")), (EventType::Deferred, None));
        assert_eq!(classify("sms_status", None), (EventType::Unknown, None));
    }

    #[test]
    fn pings_are_control_requests_and_events_are_not() {
        let control = |body: &[u8]| {
            SparkPost.control(&Inbound {
                headers: &[],
                query: &[],
                body,
            })
        };
        let ping = std::fs::read(format!(
            "{}/tests/fixtures/sparkpost/ping.txt",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        assert_eq!(control(&ping), Some(Control { kind: "ping" }));
        assert_eq!(
            control(br#"[{"msys":{}},{"msys":{}, "cust":{"id":"1"}}]"#),
            Some(Control { kind: "ping" })
        );
        assert_eq!(control(&body("delivered")), None);
        assert_eq!(
            control(br#"[{"msys":{}},{"msys":{"track_event":{}}}]"#),
            None
        );
        assert_eq!(control(b"[]"), None);
        assert_eq!(control(b"{}"), None);
        // Pings inside an event batch are skipped.
        let mixed = format!(
            "[{{\"msys\":{{}}}},{}]",
            String::from_utf8(body("delivered"))
                .unwrap()
                .trim()
                .trim_start_matches('[')
                .trim_end_matches(']')
        );
        assert_eq!(SparkPost.parse(mixed.as_bytes()).unwrap().len(), 1);
        assert_eq!(SparkPost.parse(&ping), Err(ParseError::NoEvents));
    }

    #[test]
    fn two_classes_in_one_element_are_two_events_each_with_its_own_raw() {
        let body = br#"[{"msys":{"message_event":{"type":"delivery","transmission_id":"t","timestamp":"1"},
            "track_event":{"type":"open","transmission_id":"t","timestamp":"2"}}}]"#;
        let events = SparkPost.parse(body).unwrap();
        assert_eq!(events.len(), 2);
        assert!(events[0].raw.contains("message_event") && !events[0].raw.contains("track_event"));
        assert!(events[1].raw.contains("track_event") && !events[1].raw.contains("message_event"));
    }

    #[test]
    fn shape_and_field_errors() {
        assert!(matches!(
            SparkPost.parse(b"7"),
            Err(ParseError::WrongShape(_))
        ));
        assert_eq!(
            SparkPost.parse(b"{}"),
            Err(ParseError::MissingField {
                index: 0,
                field: "msys"
            })
        );
        assert!(matches!(
            SparkPost.parse(b"[1]"),
            Err(ParseError::WrongShape(_))
        ));
        assert_eq!(
            SparkPost.parse(br#"[{"cust":{}}]"#),
            Err(ParseError::MissingField {
                index: 0,
                field: "msys"
            })
        );
        assert_eq!(
            SparkPost.parse(br#"[{"msys":{"message_event":{"transmission_id":"t"}}}]"#),
            Err(ParseError::MissingField {
                index: 0,
                field: "type"
            })
        );
        assert_eq!(
            SparkPost.parse(br#"[{"msys":{"track_event":{"type":"open"}}}]"#),
            Err(ParseError::MissingField {
                index: 0,
                field: "transmission_id"
            })
        );
        assert_eq!(
            SparkPost.parse(br#"[{"msys":{"track_event":{"type":"open","transmission_id":"t","timestamp":"soon"}}}]"#),
            Err(ParseError::MissingField { index: 0, field: "timestamp" })
        );
        let undated = SparkPost
            .parse(br#"[{"msys":{"track_event":{"type":"open","transmission_id":"t"}}}]"#)
            .unwrap();
        assert_eq!(undated[0].event_time_ms, NO_TIME_MS);
    }

    #[test]
    fn refreshed_samples_are_new_tagged_events() {
        let now_ms = 1_767_225_600_123;
        for name in ["delivered", "spam_complaint"] {
            let mut sample: Value = serde_json::from_slice(&body(name)).unwrap();
            SparkPost.refresh_sample(&mut sample, now_ms, "run-1");
            let event = &SparkPost.parse(sample.to_string().as_bytes()).unwrap()[0];
            assert_eq!(event.event_time_ms, 1_767_225_600_000);
            assert_eq!(
                event.metadata.get(TEST_TAG).map(String::as_str),
                Some("run-1")
            );
        }
    }

    /// One event of a batch that does not normalize is quarantined alone; the
    /// batch's others are stored exactly as from the valid batch.
    #[test]
    fn one_bad_event_in_a_batch_is_quarantined_alone() {
        use crate::providers::json::batch_check::{self, OneBroken, remove};
        OneBroken {
            provider: &SparkPost,
            items: batch_check::fixture_items("sparkpost", &["delivered", "bounce", "click"]),
            body: batch_check::array,
            broken: 1,
            damage: |e| remove(&mut e["msys"]["message_event"], "type"),
            code: "missing_field",
            repair: |v, item| {
                v["msys"]["message_event"]["type"] = item["msys"]["message_event"]["type"].clone();
            },
        }
        .check();
    }

    /// An element holding two events, one of them broken: the other is stored,
    /// and the broken one is quarantined as its own `raw` (the element with
    /// its class only), which parses once repaired.
    #[test]
    fn one_bad_event_of_an_element_with_two_is_quarantined_alone() {
        use serde_json::json;
        let track = json!({"type": "click", "timestamp": "1700000001"});
        let body = serde_json::to_vec(&json!([{"cust": 1, "msys": {
            "message_event": {"type": "delivery", "transmission_id": "t1", "timestamp": "1700000000"},
            "track_event": track,
        }}]))
        .unwrap();
        assert_eq!(SparkPost.parse(&body).unwrap_err().code(), "missing_field");
        let parsed = SparkPost.parse_each(&Inbound {
            headers: &[],
            query: &[],
            body: &body,
        });
        let [stored] = parsed.events.as_slice() else {
            panic!("{:?}", parsed.events);
        };
        assert_eq!(stored.message_id, "t1");
        let [unparsed] = parsed.unparsed.as_slice() else {
            panic!("{:?}", parsed.unparsed);
        };
        assert_eq!(unparsed.code, "missing_field");
        let mut alone: Value = serde_json::from_slice(&unparsed.body).unwrap();
        assert_eq!(alone, json!({"cust": 1, "msys": {"track_event": track}}));
        assert_eq!(
            SparkPost.parse(&unparsed.body).unwrap_err().code(),
            "missing_field"
        );
        alone["msys"]["track_event"]["event_id"] = json!("e2");
        let repaired = SparkPost.parse(alone.to_string().as_bytes()).unwrap();
        assert_eq!(repaired[0].message_id, "e2");
    }
}
