//! EngageLab Email (SendCloud engine): signed with `X-WebHook-*` headers, one
//! envelope per POST holding either a `status` or a `response` callback,
//! `itime` in milliseconds, `email_id` as the per-recipient id.

use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use serde_json::{Map, Value};
use sha2::Sha256;

use super::json::{self, ParseError};
use super::{AuthContext, Inbound, Provider, mime_words};
use crate::auth::{AuthError, check_timestamp, constant_time_eq};
use crate::event::{BounceType, EmailEvent, EventType, unix_to_ms};

/// EngageLab Email webhooks.
pub struct EngageLab;

const TIMESTAMP_HEADER: &str = "X-WebHook-Timestamp";
const APPKEY_HEADER: &str = "X-WebHook-AppKey";
const SIGNATURE_HEADER: &str = "X-WebHook-Signature";

impl Provider for EngageLab {
    fn name(&self) -> &'static str {
        "engagelab"
    }

    fn secrets_env(&self) -> &'static str {
        "ENGAGELAB_APP_KEYS"
    }

    fn authenticate(
        &self,
        request: &Inbound<'_>,
        ctx: &AuthContext<'_>,
    ) -> Result<&'static str, AuthError> {
        if ctx.secrets.is_empty() {
            return Err(AuthError::NotConfigured);
        }
        let timestamp = single_header(request, TIMESTAMP_HEADER)?;
        let app_key_header = single_header(request, APPKEY_HEADER)?;
        let signature = single_header(request, SIGNATURE_HEADER)?;
        check_timestamp(timestamp, ctx.freshness, ctx.clock)?;
        verify_signature(
            signature,
            timestamp,
            app_key_header,
            ctx.secrets,
            request.body,
        )
    }

    fn parse(&self, body: &[u8]) -> Result<Vec<EmailEvent>, ParseError> {
        let mut events = Vec::new();
        match json::parse_body(body)? {
            Value::Array(items) => {
                for item in &items {
                    parse_envelope(events.len(), item, &mut events)?;
                }
            }
            single => parse_envelope(0, &single, &mut events)?,
        }
        json::validate(events)
    }
}

/// The one value of a required header; absent, empty or repeated is an error.
fn single_header<'a>(request: &'a Inbound<'_>, name: &'static str) -> Result<&'a str, AuthError> {
    match request.header_values(name).as_slice() {
        [] => Err(AuthError::MissingHeader(name)),
        [one] if one.trim().is_empty() => Err(AuthError::MissingHeader(name)),
        [one] => Ok(one.trim()),
        _ => Err(AuthError::DuplicateHeader(name)),
    }
}

/// Hex MD5 of `timestamp + app key header + secret` (the "Learn about WebHook" page).
pub fn md5_signature(timestamp: &str, app_key_header: &str, secret: &str) -> String {
    hex::encode(md5_digest(timestamp, app_key_header, secret))
}

fn md5_digest(timestamp: &str, app_key_header: &str, secret: &str) -> [u8; 16] {
    let mut hasher = Md5::new();
    hasher.update(timestamp.as_bytes());
    hasher.update(app_key_header.as_bytes());
    hasher.update(secret.as_bytes());
    hasher.finalize().into()
}

/// Hex HMAC-SHA256 keyed with the secret over `message` (the webhook page).
pub fn hmac_signature(secret: &str, message: &str) -> String {
    hex::encode(hmac_digest(secret, message))
}

fn hmac_digest(secret: &str, message: &str) -> [u8; 32] {
    // HMAC takes keys of any length, so this cannot fail.
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).unwrap_or_else(|_| unreachable!());
    mac.update(message.as_bytes());
    mac.finalize().into_bytes().into()
}

/// Checks the signature against every secret and both documented algorithms;
/// returns which variant matched. Every candidate is compared in constant time.
fn verify_signature(
    signature: &str,
    timestamp: &str,
    app_key_header: &str,
    secrets: &[String],
    body: &[u8],
) -> Result<&'static str, AuthError> {
    // Hex of either case decodes to the same bytes; the digests are compared as bytes.
    let Ok(signature) = hex::decode(signature) else {
        return Err(AuthError::BadSignature);
    };
    let mut matched = None;
    match signature.len() {
        16 => {
            for secret in secrets {
                if constant_time_eq(&md5_digest(timestamp, app_key_header, secret), &signature) {
                    matched = Some("md5");
                }
            }
        }
        32 => {
            for secret in secrets {
                if constant_time_eq(&hmac_digest(secret, timestamp), &signature) {
                    matched = Some("hmac-sha256");
                }
            }
            // The zh_CN copy says the HMAC is over the body's `itime`, the English one
            // over the header. Parse the body for it only when the header did not match.
            if matched.is_none()
                && let Some(itime) = body_itime(body)
            {
                for secret in secrets {
                    if constant_time_eq(&hmac_digest(secret, &itime), &signature) {
                        matched = Some("hmac-sha256-itime");
                    }
                }
            }
        }
        _ => {}
    }
    matched.ok_or(AuthError::BadSignature)
}

/// The body's top-level `itime`, as text, when the body is a JSON object that has one.
fn body_itime(body: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    json::text(value.as_object()?, "itime")
}

/// Parses one envelope (status or response callback) into one or more events.
fn parse_envelope(
    index: usize,
    value: &Value,
    out: &mut Vec<EmailEvent>,
) -> Result<(), ParseError> {
    let envelope = json::as_object(value, "an EngageLab event")?;
    let missing = |field| ParseError::MissingField { index, field };
    let itime = json::int(envelope, "itime").ok_or_else(|| missing("itime"))?;
    let event_time_ms = unix_to_ms(itime);
    let raw = json::canonical(value);

    if let Some(status) = json::object(envelope, "status") {
        let name =
            json::text(status, "message_status").ok_or_else(|| missing("status.message_status"))?;
        let empty = Map::new();
        let data = json::object(status, "status_data").unwrap_or(&empty);
        if name == "target" {
            return expand_target(index, envelope, data, event_time_ms, &raw, out);
        }
        let mut event = base_event(
            index,
            envelope,
            data,
            &name,
            status_type(&name, status),
            event_time_ms,
            raw,
        )?;
        add_failure(&mut event, status, data);
        out.push(event);
        Ok(())
    } else if let Some(response) = json::object(envelope, "response") {
        let name = json::text(response, "event").ok_or_else(|| missing("response.event"))?;
        let empty = Map::new();
        let data = json::object(response, "response_data").unwrap_or(&empty);
        let event_type = response_type(&name);
        let mut event = base_event(index, envelope, data, &name, event_type, event_time_ms, raw)?;
        event.ip = json::text(data, "ip");
        event.url = json::text(data, "url");
        for (field, key) in [
            ("explorer_name", "browser"),
            ("explorer_ver", "browser_version"),
            ("os_name", "os"),
            ("os_ver", "os_version"),
        ] {
            if let Some(v) = json::text(data, field) {
                event.details.insert(key.into(), v);
            }
        }
        // From the details just kept: each field is looked up in the JSON once.
        let detail = |key: &str| event.details.get(key).cloned();
        event.user_agent = json::client_description(
            detail("browser"),
            detail("browser_version"),
            detail("os"),
            detail("os_version"),
        );
        if event_type == EventType::Inbound {
            add_inbound(&mut event, envelope, data);
        }
        out.push(event);
        Ok(())
    } else {
        Err(ParseError::WrongShape(format!(
            "event {index}: neither \"status\" nor \"response\""
        )))
    }
}

fn status_type(name: &str, status: &Map<String, Value>) -> EventType {
    match name {
        "sent" => EventType::Sent,
        "delivered" => EventType::Delivered,
        "soft_bounce" => EventType::Bounced,
        // sub_stat 401 (blacklist) and 402 (unsubscribed): EngageLab refused to send.
        "invalid_email" => match sub_stat(status) {
            Some(401 | 402) => EventType::Rejected,
            _ => EventType::Bounced,
        },
        _ => EventType::Unknown,
    }
}

fn response_type(name: &str) -> EventType {
    match name {
        "open" => EventType::Opened,
        "click" => EventType::Clicked,
        "unsubscribe" => EventType::Unsubscribed,
        "report_spam" => EventType::Complained,
        "route" => EventType::Inbound,
        _ => EventType::Unknown,
    }
}

/// `error_detail` sits beside `status_data` in the samples but inside it in the field table.
fn error_detail<'a>(
    status: &'a Map<String, Value>,
    data: &'a Map<String, Value>,
) -> Option<&'a Map<String, Value>> {
    json::object(status, "error_detail").or_else(|| json::object(data, "error_detail"))
}

fn sub_stat(status: &Map<String, Value>) -> Option<i64> {
    let empty = Map::new();
    let data = json::object(status, "status_data").unwrap_or(&empty);
    error_detail(status, data).and_then(|d| json::int(d, "sub_stat"))
}

/// The per-recipient address encoded in an `email_id` (`<request id><n>$<address>`).
fn recipient_of(email_id: &str) -> Option<String> {
    email_id
        .rsplit_once('$')
        .map(|(_, addr)| addr.trim().to_lowercase())
        .filter(|a| !a.is_empty())
}

/// The request id encoded in an `email_id`: the part before `<n>$<address>`.
fn request_id_of(email_id: &str) -> Option<String> {
    let (prefix, _) = email_id.rsplit_once('$')?;
    let id = prefix.trim_end_matches(|c: char| c.is_ascii_digit());
    (!id.is_empty()).then(|| id.to_owned())
}

/// Builds the fields every status/response event shares.
fn base_event(
    index: usize,
    envelope: &Map<String, Value>,
    data: &Map<String, Value>,
    name: &str,
    event_type: EventType,
    event_time_ms: i64,
    raw: String,
) -> Result<EmailEvent, ParseError> {
    // Trust the per-recipient email_id over the envelope (the report_spam sample shows they can differ).
    let message_id = json::text(data, "email_id")
        .or_else(|| json::text(envelope, "message_id"))
        .ok_or(ParseError::MissingField {
            index,
            field: "email_id",
        })?;
    let mut event = EmailEvent::new(
        "engagelab",
        event_type,
        name,
        message_id,
        event_time_ms,
        raw,
    );
    event.recipient = recipient_of(&event.message_id)
        .or_else(|| json::text(envelope, "to").map(|t| t.to_lowercase()));
    event.batch_id = request_id_of(&event.message_id);
    event.sender = json::text(envelope, "from").or_else(|| json::text(data, "from"));
    event.subject = json::text(envelope, "subject")
        .or_else(|| json::text(data, "subject"))
        .map(|s| mime_words::decode(&s));
    for field in ["task_id", "api_user", "label_id"] {
        if let Some(v) = json::text(data, field) {
            event.details.insert(field.into(), v);
        }
    }
    if let Some(args) = json::object(envelope, "custom_args") {
        for (key, value) in args {
            let text = json::value_text(value).unwrap_or_else(|| value.to_string());
            event.metadata.insert(key.clone(), text);
        }
    }
    Ok(event)
}

/// Adds bounce type, reason and codes of `invalid_email` / `soft_bounce`.
fn add_failure(event: &mut EmailEvent, status: &Map<String, Value>, data: &Map<String, Value>) {
    if event.event_type == EventType::Bounced {
        event.bounce_type = Some(if event.provider_event == "soft_bounce" {
            BounceType::Soft
        } else {
            BounceType::Hard
        });
    }
    let detail = error_detail(status, data);
    event.reason = detail.and_then(|d| json::text(d, "message"));
    event.status_code = detail
        .and_then(|d| json::text(d, "sub_stat"))
        .or_else(|| json::text(status, "error_code"))
        .or_else(|| json::text(data, "error_code"));
    if let Some(desc) = detail.and_then(|d| json::text(d, "sub_stat_desc")) {
        event.details.insert("sub_stat_desc".into(), desc);
    }
    if let Some(code) = json::text(status, "error_code").or_else(|| json::text(data, "error_code"))
    {
        event.details.insert("error_code".into(), code);
    }
}

/// Adds what identifies an inbound (route) message; bodies stay in `raw` only.
fn add_inbound(event: &mut EmailEvent, envelope: &Map<String, Value>, data: &Map<String, Value>) {
    event.batch_id = None;
    if let Some(rcpt) = json::text(data, "x_mx_rcptto") {
        event.recipient = Some(rcpt.to_lowercase());
    }
    for field in ["from_name", "x_mx_mailfrom", "raw_message_url", "reference"] {
        if let Some(v) = json::text(data, field) {
            event.details.insert(field.into(), v);
        }
    }
    if let Some(to) = json::text(envelope, "to") {
        event.details.insert("to".into(), to);
    }
}

/// One `target` callback lists every recipient of a request: one event each.
fn expand_target(
    index: usize,
    envelope: &Map<String, Value>,
    data: &Map<String, Value>,
    event_time_ms: i64,
    raw: &str,
    out: &mut Vec<EmailEvent>,
) -> Result<(), ParseError> {
    let ids: Vec<String> = json::get(data, "email_ids")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(json::value_text).collect())
        .unwrap_or_default();
    if ids.is_empty() {
        return Err(ParseError::MissingField {
            index,
            field: "status.status_data.email_ids",
        });
    }
    let tos: Vec<String> = json::get(data, "tos")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(json::value_text).collect())
        .unwrap_or_default();
    for (i, email_id) in ids.into_iter().enumerate() {
        let mut scoped = data.clone();
        scoped.insert("email_id".into(), Value::String(email_id));
        let mut event = base_event(
            index,
            envelope,
            &scoped,
            "target",
            EventType::Queued,
            event_time_ms,
            raw.to_owned(),
        )?;
        if let Some(to) = tos.get(i) {
            event.recipient = Some(to.to_lowercase());
        }
        event.batch_id = json::text(envelope, "message_id").or(event.batch_id);
        out.push(event);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{FixedClock, Freshness};

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/tests/fixtures/engagelab/{name}.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    fn parse_one(name: &str) -> EmailEvent {
        let mut events = EngageLab.parse(&fixture(name)).unwrap();
        assert_eq!(events.len(), 1, "{name}");
        events.remove(0)
    }

    const SUBJECT: &str = "Template interface sending-dynamic_vars-Unicast sending";

    #[test]
    fn target_becomes_one_queued_event_per_recipient() {
        let e = parse_one("target");
        assert_eq!(e.event_type, EventType::Queued);
        assert_eq!(e.provider_event, "target");
        assert_eq!(
            e.message_id,
            "1676615711309_104117_18546_8821.sc-10_43_7_16-inbound0$12345@hotmail.com"
        );
        assert_eq!(e.recipient.as_deref(), Some("12345@hotmail.com"));
        assert_eq!(e.event_time_ms, 1_676_615_711_325);
        assert_eq!(
            e.batch_id.as_deref(),
            Some("1676615711309_104117_18546_8821.sc-10_43_7_16-inbound")
        );
        assert_eq!(e.sender.as_deref(), Some("newsletter@mail.engagelab.com"));
        assert_eq!(e.subject.as_deref(), Some(SUBJECT));
        assert_eq!(
            e.details.get("api_user").map(String::as_str),
            Some("scgp_email_system_trigger")
        );
        assert_eq!(e.details.get("task_id").map(String::as_str), Some("-1"));

        let events = EngageLab.parse(&fixture("target_multi")).unwrap();
        let pairs: Vec<_> = events
            .iter()
            .map(|e| (e.message_id.as_str(), e.recipient.as_deref()))
            .collect();
        assert_eq!(
            pairs,
            vec![
                (
                    "1676615711309_104117_18546_8821.sc-10_43_7_16-inbound0$12345@hotmail.com",
                    Some("12345@hotmail.com")
                ),
                (
                    "1676615711309_104117_18546_8821.sc-10_43_7_16-inbound1$67890@gmail.com",
                    Some("67890@gmail.com")
                ),
            ]
        );
        assert_eq!(
            events[1].metadata.get("order_id").map(String::as_str),
            Some("A-1001")
        );
        assert_ne!(events[0].sort_key(), events[1].sort_key());
    }

    #[test]
    fn sent() {
        let e = parse_one("sent");
        assert_eq!(
            (e.event_type, e.provider_event.as_str()),
            (EventType::Sent, "sent")
        );
        assert_eq!(
            e.message_id,
            "1676615711309_104117_18546_8821.sc-10_43_7_16-inbound0$12345@hotmail.com"
        );
        assert_eq!(e.recipient.as_deref(), Some("12345@hotmail.com"));
        assert_eq!(e.event_time_ms, 1_676_615_714_397);
        assert_eq!(e.subject.as_deref(), Some(SUBJECT));
        assert_eq!(
            e.batch_id.as_deref(),
            Some("1676615711309_104117_18546_8821.sc-10_43_7_16-inbound")
        );
    }

    #[test]
    fn delivered() {
        let e = parse_one("delivered");
        assert_eq!(e.event_type, EventType::Delivered);
        assert_eq!(
            e.message_id,
            "1675758375681_15_6393_8309.sc-10_2_226_96-test0$12345@gmail.com"
        );
        assert_eq!(e.recipient.as_deref(), Some("12345@gmail.com"));
        assert_eq!(e.event_time_ms, 1_675_758_376_586);
        assert_eq!(
            e.details.get("api_user").map(String::as_str),
            Some("1224_xjm")
        );
    }

    #[test]
    fn invalid_email_is_a_hard_bounce_with_reason_and_codes() {
        let e = parse_one("invalid_email");
        assert_eq!(
            (e.event_type, e.bounce_type),
            (EventType::Bounced, Some(BounceType::Hard))
        );
        assert_eq!(e.provider_event, "invalid_email");
        assert_eq!(e.status_code.as_deref(), Some("409"));
        assert!(
            e.reason
                .as_deref()
                .unwrap()
                .starts_with("Domain may not exist or DNS check failed")
        );
        assert_eq!(
            e.details.get("sub_stat_desc").map(String::as_str),
            Some("Other")
        );
        assert_eq!(e.details.get("error_code").map(String::as_str), Some("409"));
        assert_eq!(e.event_time_ms, 1_676_537_132_783);
    }

    #[test]
    fn invalid_email_for_a_blacklisted_address_is_rejected() {
        let e = parse_one("invalid_email_blacklist");
        assert_eq!((e.event_type, e.bounce_type), (EventType::Rejected, None));
        assert_eq!(e.status_code.as_deref(), Some("401"));
        assert_eq!(
            e.details.get("sub_stat_desc").map(String::as_str),
            Some("Blacklist")
        );
    }

    #[test]
    fn soft_bounce() {
        let e = parse_one("soft_bounce");
        assert_eq!(
            (e.event_type, e.bounce_type),
            (EventType::Bounced, Some(BounceType::Soft))
        );
        assert_eq!(e.status_code.as_deref(), Some("509"));
        assert_eq!(e.recipient.as_deref(), Some("12345@gmail.com"));
        assert_ne!(e.sort_key(), parse_one("invalid_email").sort_key());
    }

    #[test]
    fn open_keeps_ip_browser_and_os() {
        let e = parse_one("open");
        assert_eq!(e.event_type, EventType::Opened);
        assert_eq!(
            e.message_id,
            "1676618583015_104117_18546_8822.sc-10_43_7_16-inbound0$12345@hotmail.com"
        );
        assert_eq!(e.recipient.as_deref(), Some("12345@hotmail.com"));
        assert_eq!(e.event_time_ms, 1_676_620_370_426);
        assert_eq!(e.ip.as_deref(), Some("8.219.124.204"));
        assert_eq!(
            e.user_agent.as_deref(),
            Some("Chrome 101.0.4951 / Windows 8")
        );
        assert_eq!(e.details.get("browser").map(String::as_str), Some("Chrome"));
        assert_eq!(e.details.get("os_version").map(String::as_str), Some("8"));
        assert_eq!(e.url, None);
    }

    #[test]
    fn click_keeps_url_and_differs_from_the_open_at_the_same_millisecond() {
        let e = parse_one("click");
        assert_eq!(e.event_type, EventType::Clicked);
        assert_eq!(
            e.url.as_deref(),
            Some("https://www.engagelab.com/zh_CN/email/")
        );
        assert_eq!(e.ip.as_deref(), Some("8.219.124.204"));
        assert_ne!(e.sort_key(), parse_one("open").sort_key());
    }

    #[test]
    fn unsubscribe() {
        let e = parse_one("unsubscribe");
        assert_eq!(e.event_type, EventType::Unsubscribed);
        assert_eq!(
            e.message_id,
            "1676460128030_100669_28018_8253.sg-10_1_253_26-inbound86$12345@gmail.com"
        );
        assert_eq!(
            e.batch_id.as_deref(),
            Some("1676460128030_100669_28018_8253.sg-10_1_253_26-inbound")
        );
        assert_eq!(
            e.user_agent.as_deref(),
            Some("Mobile Safari 16.2 / iOS 16.2")
        );
        assert_eq!(
            e.details.get("label_id").map(String::as_str),
            Some("221223")
        );
    }

    #[test]
    fn report_spam_trusts_the_email_id_over_the_envelope() {
        let e = parse_one("report_spam");
        assert_eq!(e.event_type, EventType::Complained);
        assert_eq!(
            e.message_id,
            "1676857822846_15_23558_89.sg-10_1_253_26-inbound0$1406064670@gmail.com"
        );
        assert_eq!(e.recipient.as_deref(), Some("1406064670@gmail.com"));
        assert_eq!(e.event_time_ms, 1_677_548_340_323);
    }

    #[test]
    fn route_is_inbound_keyed_by_its_uuid() {
        let e = parse_one("route");
        assert_eq!(e.event_type, EventType::Inbound);
        assert_eq!(e.message_id, "01b6f68b-da52-4f6f-a049-68d0ca01dd8c");
        assert_eq!(e.recipient.as_deref(), Some("12345@icloud.com"));
        assert_eq!(e.sender.as_deref(), Some("Archimonde <12345@outlook.com>"));
        assert_eq!(e.subject.as_deref(), Some("Re: Work plan for next month"));
        assert_eq!(
            e.details.get("from_name").map(String::as_str),
            Some("Sargeras")
        );
        assert_eq!(
            e.details.get("x_mx_mailfrom").map(String::as_str),
            Some("12345@hotmail.com")
        );
        assert_eq!(e.batch_id, None);
        assert!(e.raw.contains("raw_message"), "bodies are kept in raw");
        assert!(!e.details.contains_key("html"));
    }

    #[test]
    fn published_route_sample_is_invalid_json() {
        let path = format!(
            "{}/tests/fixtures/engagelab/route_published_sample.txt",
            env!("CARGO_MANIFEST_DIR")
        );
        let published = std::fs::read(path).unwrap();
        assert!(matches!(
            EngageLab.parse(&published),
            Err(ParseError::InvalidJson(_))
        ));
    }

    #[test]
    fn undocumented_events_are_unknown() {
        let body = br#"{"message_id":"m0$a@x.com","itime":1,"status":{"message_status":"requeued","status_data":{"email_id":"m0$a@x.com"}}}"#;
        let e = &EngageLab.parse(body).unwrap()[0];
        assert_eq!(
            (e.event_type, e.provider_event.as_str()),
            (EventType::Unknown, "requeued")
        );
        let body = br#"{"message_id":"m0$a@x.com","itime":1,"response":{"event":"forward","response_data":{}}}"#;
        assert_eq!(
            EngageLab.parse(body).unwrap()[0].event_type,
            EventType::Unknown
        );
    }

    #[test]
    fn shape_errors() {
        assert!(matches!(
            EngageLab.parse(br#"{"itime":1}"#),
            Err(ParseError::WrongShape(_))
        ));
        assert_eq!(
            EngageLab.parse(br#"{"status":{"message_status":"sent"}}"#),
            Err(ParseError::MissingField {
                index: 0,
                field: "itime"
            })
        );
        assert_eq!(
            EngageLab
                .parse(br#"{"itime":1,"status":{"message_status":"target","status_data":{}}}"#),
            Err(ParseError::MissingField {
                index: 0,
                field: "status.status_data.email_ids"
            })
        );
    }

    fn headers(ts: &str, sig: &str) -> Vec<(String, String)> {
        vec![
            ("x-webhook-timestamp".into(), ts.into()),
            ("x-webhook-appkey".into(), "email".into()),
            ("x-webhook-signature".into(), sig.into()),
        ]
    }

    fn auth(headers: &[(String, String)], body: &[u8]) -> Result<&'static str, AuthError> {
        let secrets = vec!["key-one".to_owned(), "key-two".to_owned()];
        let clock = FixedClock(1_700_000_000_000);
        let ctx = AuthContext {
            secrets: &secrets,
            freshness: Freshness::Within(300),
            clock: &clock,
        };
        EngageLab.authenticate(
            &Inbound {
                headers,
                query: &[],
                body,
            },
            &ctx,
        )
    }

    #[test]
    fn both_documented_signatures_are_accepted_with_either_key() {
        let ts = "1700000000";
        assert_eq!(
            auth(&headers(ts, &hmac_signature("key-two", ts)), b"{}"),
            Ok("hmac-sha256")
        );
        assert_eq!(
            auth(&headers(ts, &md5_signature(ts, "email", "key-one")), b"{}"),
            Ok("md5")
        );
        assert_eq!(
            auth(
                &headers(ts, &hmac_signature("key-one", ts).to_uppercase()),
                b"{}"
            ),
            Ok("hmac-sha256")
        );
        let body = br#"{"itime":1700000000123}"#;
        assert_eq!(
            auth(
                &headers(ts, &hmac_signature("key-one", "1700000000123")),
                body
            ),
            Ok("hmac-sha256-itime")
        );
    }

    #[test]
    fn signature_failures_are_classified() {
        let ts = "1700000000";
        assert_eq!(
            auth(&headers(ts, &hmac_signature("other", ts)), b"{}"),
            Err(AuthError::BadSignature)
        );
        assert_eq!(
            auth(&headers(ts, "abc"), b"{}"),
            Err(AuthError::BadSignature)
        );
        assert_eq!(
            auth(
                &headers(ts, &hmac_signature("key-one", "1700000001")),
                b"{}"
            ),
            Err(AuthError::BadSignature)
        );
        assert_eq!(
            auth(
                &headers("1699999000", &hmac_signature("key-one", "1699999000")),
                b"{}"
            ),
            Err(AuthError::StaleTimestamp(300))
        );
        let unsigned = headers(ts, "x");
        assert_eq!(
            auth(&unsigned[..2], b"{}"),
            Err(AuthError::MissingHeader(SIGNATURE_HEADER))
        );
        let mut dup = headers(ts, &hmac_signature("key-one", ts));
        dup.push(("X-WebHook-Signature".into(), "x".into()));
        assert_eq!(
            auth(&dup, b"{}"),
            Err(AuthError::DuplicateHeader(SIGNATURE_HEADER))
        );
    }
}
