//! EngageLab Email (SendCloud engine): signed with `X-WebHook-*` headers, one
//! envelope per POST holding either a `status` or a `response` callback,
//! `itime` in milliseconds, `email_id` as the per-recipient id.

use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::{Map, Value};
use sha2::Sha256;

use super::json::{self, ParseError};
use super::{AuthContext, AuthScheme, Inbound, Parsed, Provider, Signed, mime_words};
use crate::auth::{AuthError, Freshness, check_timestamp, constant_time_eq};
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

    fn scheme(&self) -> AuthScheme {
        AuthScheme::SignedHeaders {
            signature: SIGNATURE_HEADER,
        }
    }

    fn authenticate(
        &self,
        request: &Inbound<'_>,
        ctx: &AuthContext<'_>,
    ) -> Result<&'static str, AuthError> {
        if ctx.secrets.is_empty() {
            return Err(AuthError::NotConfigured);
        }
        let timestamp = request.single_header(TIMESTAMP_HEADER)?;
        let app_key_header = request.single_header(APPKEY_HEADER)?;
        let signature = request.single_header(SIGNATURE_HEADER)?;
        // A header that is not even a number is refused before any digest is computed.
        check_timestamp(timestamp, Freshness::Disabled, ctx.clock)?;
        let matched = verify_signature(
            signature,
            timestamp,
            app_key_header,
            ctx.secrets,
            request.body,
        )?;
        // The window applies to the value that was signed, whichever variant matched:
        // the header's timestamp is not covered by the `itime` variant's signature.
        check_timestamp(&matched.signed_time, ctx.freshness, ctx.clock)?;
        Ok(matched.variant)
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

    /// Envelope by envelope: one that does not normalize is quarantined alone
    /// (a `target` envelope whole, before it is split per recipient), the
    /// batch's others are stored.
    fn parse_each(&self, request: &Inbound<'_>) -> Parsed {
        json::each_event(request.body, parse_envelope)
    }

    fn local_secret(&self) -> &'static str {
        "local-engagelab-key"
    }

    /// EngageLab's HMAC-SHA256 variant over the timestamp header.
    fn sign(&self, secret: &str, unix_secs: i64, body: &[u8]) -> Signed {
        let ts = unix_secs.to_string();
        Signed {
            query: String::new(),
            headers: vec![
                (TIMESTAMP_HEADER.to_owned(), ts.clone()),
                (APPKEY_HEADER.to_owned(), "email".to_owned()),
                (SIGNATURE_HEADER.to_owned(), hmac_signature(secret, &ts)),
            ],
            body: body.to_vec(),
        }
    }

    fn refresh_sample(&self, sample: &mut Value, now_ms: i64, run_id: &str) {
        let envelopes = match sample {
            Value::Array(items) => items.iter_mut().collect(),
            single => vec![single],
        };
        for envelope in envelopes {
            envelope["itime"] = Value::from(now_ms);
            envelope["custom_args"]["mailhooks_test"] = Value::from(run_id);
        }
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

/// A signature that verified: which variant, and the time value it covers.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Matched {
    /// The variant's name, logged so production settles which one EngageLab uses.
    variant: &'static str,
    /// The signed timestamp (seconds or milliseconds, as text).
    signed_time: String,
}

/// Checks the signature against every secret and the documented algorithms; returns
/// which variant matched and what time value it signed. Every candidate is compared
/// in constant time.
fn verify_signature(
    signature: &str,
    timestamp: &str,
    app_key_header: &str,
    secrets: &[String],
    body: &[u8],
) -> Result<Matched, AuthError> {
    // Hex of either case decodes to the same bytes; the digests are compared as bytes.
    let Ok(signature) = hex::decode(signature) else {
        return Err(AuthError::BadSignature);
    };
    let header_match = |variant| Matched {
        variant,
        signed_time: timestamp.to_owned(),
    };
    let mut matched = None;
    match signature.len() {
        16 => {
            for secret in secrets {
                if constant_time_eq(&md5_digest(timestamp, app_key_header, secret), &signature) {
                    matched = Some(header_match("md5"));
                }
            }
        }
        32 => {
            for secret in secrets {
                if constant_time_eq(&hmac_digest(secret, timestamp), &signature) {
                    matched = Some(header_match("hmac-sha256"));
                }
            }
            // The zh_CN copy says the HMAC is over the body's `itime`, the English one
            // over the header. Look for it only when the header did not match.
            if matched.is_none()
                && let Some(itime) = body_itime(body)
            {
                for secret in secrets {
                    if constant_time_eq(&hmac_digest(secret, &itime), &signature) {
                        matched = Some(Matched {
                            variant: "hmac-sha256-itime",
                            signed_time: itime.clone(),
                        });
                    }
                }
            }
        }
        _ => {}
    }
    matched.ok_or(AuthError::BadSignature)
}

/// The body's top-level `itime` (an integer, or a string of digits) as text.
///
/// Read before the request is authenticated, so nothing is built from the body:
/// values are skipped by the streaming parser without allocating, a body that is
/// not an object is refused at its first byte, and a repeated `itime` (which the
/// event parser would read differently) yields nothing.
fn body_itime(body: &[u8]) -> Option<String> {
    let mut reader = serde_json::Deserializer::from_slice(body);
    let TopLevelItime(itime) = TopLevelItime::deserialize(&mut reader).ok()?;
    reader.end().ok()?;
    itime
}

/// The outcome of scanning a body's top level for `itime`.
struct TopLevelItime(Option<String>);

impl<'de> Deserialize<'de> for TopLevelItime {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(TopLevelItimeVisitor)
    }
}

struct TopLevelItimeVisitor;

impl<'de> Visitor<'de> for TopLevelItimeVisitor {
    type Value = TopLevelItime;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut itime = None;
        while let Some(IsItime(is_itime)) = map.next_key()? {
            if !is_itime {
                map.next_value::<IgnoredAny>()?;
            } else if itime.is_some() {
                return Err(de::Error::duplicate_field("itime"));
            } else {
                itime = Some(map.next_value::<ItimeText>()?.0);
            }
        }
        Ok(TopLevelItime(itime.flatten()))
    }
}

/// A top-level key, reduced to whether it is `itime`.
struct IsItime(bool);

impl<'de> Deserialize<'de> for IsItime {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = IsItime;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_str<E: de::Error>(self, key: &str) -> Result<IsItime, E> {
                Ok(IsItime(key == "itime"))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// An `itime` value as the decimal text that would have been signed; other shapes
/// (floats, objects, non-digit strings) are `None`.
struct ItimeText(Option<String>);

impl<'de> Deserialize<'de> for ItimeText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ValueVisitor;
        impl<'de> Visitor<'de> for ValueVisitor {
            type Value = ItimeText;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a timestamp")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ItimeText, E> {
                Ok(ItimeText(Some(v.to_string())))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ItimeText, E> {
                Ok(ItimeText(Some(v.to_string())))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ItimeText, E> {
                let digits =
                    !v.is_empty() && v.len() <= 20 && v.bytes().all(|b| b.is_ascii_digit());
                Ok(ItimeText(digits.then(|| v.to_owned())))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<ItimeText, E> {
                Ok(ItimeText(None))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<ItimeText, E> {
                Ok(ItimeText(None))
            }
            fn visit_unit<E: de::Error>(self) -> Result<ItimeText, E> {
                Ok(ItimeText(None))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<ItimeText, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(ItimeText(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ItimeText, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(ItimeText(None))
            }
        }
        deserializer.deserialize_any(ValueVisitor)
    }
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

    if let Some(status) = json::object(envelope, "status") {
        let name =
            json::text(status, "message_status").ok_or_else(|| missing("status.message_status"))?;
        let empty = Map::new();
        let data = json::object(status, "status_data").unwrap_or(&empty);
        if name == "target" {
            return expand_target(index, value, event_time_ms, out);
        }
        let mut event = base_event(
            index,
            envelope,
            data,
            &name,
            status_type(&name, status),
            event_time_ms,
            None,
        )?;
        event.raw = json::canonical(value);
        add_failure(&mut event, status, data);
        out.push(event);
        Ok(())
    } else if let Some(response) = json::object(envelope, "response") {
        let name = json::text(response, "event").ok_or_else(|| missing("response.event"))?;
        let empty = Map::new();
        let data = json::object(response, "response_data").unwrap_or(&empty);
        let event_type = response_type(&name);
        let mut event = base_event(
            index,
            envelope,
            data,
            &name,
            event_type,
            event_time_ms,
            None,
        )?;
        event.raw = json::canonical(value);
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

/// Builds the fields every status/response event shares; `email_id` stands in for
/// `data.email_id` when the caller already holds it (a `target` recipient).
/// The raw JSON is left empty for the caller.
fn base_event(
    index: usize,
    envelope: &Map<String, Value>,
    data: &Map<String, Value>,
    name: &str,
    event_type: EventType,
    event_time_ms: i64,
    email_id: Option<&str>,
) -> Result<EmailEvent, ParseError> {
    // Trust the per-recipient email_id over the envelope (the report_spam sample shows they can differ).
    let message_id = email_id
        .map(str::to_owned)
        .or_else(|| json::text(data, "email_id"))
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
        String::new(),
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

/// Most bytes of per-recipient raw JSON one `target` callback may expand into.
///
/// Each recipient's item keeps the envelope without the other recipients, so the
/// work is recipients × envelope size. Real callbacks (a ~1 KB envelope, at most a
/// few hundred recipients) use well under 1 % of it; a callback past it is refused
/// as a whole rather than stored in part (docs/security.md).
pub const MAX_FAN_OUT_BYTES: usize = 16 * 1024 * 1024;

/// One `target` callback lists every recipient of a request: one event each, whose
/// raw JSON is the envelope with this recipient's `email_ids`/`tos` entry only.
///
/// Linear in the number of recipients: the shared fields (subject decoding,
/// sender, details, pass-through data) are read once and copied per recipient.
fn expand_target(
    index: usize,
    envelope: &Value,
    event_time_ms: i64,
    out: &mut Vec<EmailEvent>,
) -> Result<(), ParseError> {
    let missing_ids = ParseError::MissingField {
        index,
        field: "status.status_data.email_ids",
    };
    // The envelope without the recipient lists: the part every recipient shares.
    let mut shared = envelope.clone();
    let Some(data) = shared
        .get_mut("status")
        .and_then(|s| s.get_mut("status_data"))
        .and_then(Value::as_object_mut)
    else {
        return Err(missing_ids);
    };
    let ids = take_texts(data, "email_ids");
    let tos_present = json::get(data, "tos").is_some();
    let tos = take_texts(data, "tos");
    if ids.is_empty() {
        return Err(missing_ids);
    }
    let shared_bytes = json::canonical(&shared).len();
    let per_recipient = shared_bytes.saturating_add(64);
    if ids.len().saturating_mul(per_recipient) > MAX_FAN_OUT_BYTES {
        return Err(ParseError::FanOutTooLarge {
            index,
            recipients: ids.len(),
        });
    }

    // Everything but the per-recipient fields, built once.
    let shared_object = json::as_object(&shared, "an EngageLab event")?;
    let empty = Map::new();
    let shared_data = json::object(shared_object, "status")
        .and_then(|s| json::object(s, "status_data"))
        .unwrap_or(&empty);
    let mut template = base_event(
        index,
        shared_object,
        shared_data,
        "target",
        EventType::Queued,
        event_time_ms,
        Some(&ids[0].1),
    )?;
    let batch_id = json::text(shared_object, "message_id");

    out.reserve(ids.len());
    for (i, (id_value, email_id)) in ids.into_iter().enumerate() {
        let to = tos.get(i);
        if let Some(data) = shared
            .get_mut("status")
            .and_then(|s| s.get_mut("status_data"))
            .and_then(Value::as_object_mut)
        {
            data.insert("email_ids".into(), Value::Array(vec![id_value]));
            if tos_present {
                let own = to.map(|(v, _)| vec![v.clone()]).unwrap_or_default();
                data.insert("tos".into(), Value::Array(own));
            }
        }
        template.raw = json::canonical(&shared);
        let mut event = template.clone();
        event.recipient = recipient_of(&email_id).or_else(|| template.recipient.clone());
        if let Some((_, to)) = to {
            event.recipient = Some(to.to_lowercase());
        }
        event.batch_id = batch_id.clone().or_else(|| request_id_of(&email_id));
        event.message_id = email_id;
        out.push(event);
    }
    Ok(())
}

/// Removes an array field and returns its text entries with their original values.
fn take_texts(data: &mut Map<String, Value>, key: &str) -> Vec<(Value, String)> {
    let Some(Value::Array(items)) = data.remove(key) else {
        return Vec::new();
    };
    items
        .into_iter()
        .filter_map(|v| json::value_text(&v).map(|t| (v, t)))
        .collect()
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
        assert_ne!(
            crate::store::codec::sort_key(&events[0]),
            crate::store::codec::sort_key(&events[1])
        );
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
        assert_ne!(
            crate::store::codec::sort_key(&e),
            crate::store::codec::sort_key(&parse_one("invalid_email"))
        );
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
        assert_ne!(
            crate::store::codec::sort_key(&e),
            crate::store::codec::sort_key(&parse_one("open"))
        );
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
            certificates_dir: None,
            webhook_urls: &[],
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

    /// Every variant, in seconds and milliseconds: the window is on the signed value.
    #[test]
    fn the_window_applies_to_the_signed_value_of_every_variant() {
        let now_s = 1_700_000_000_i64;
        let fresh = now_s.to_string();
        let ages = [
            ("10 days old", -10 * 86_400),
            ("400 s old", -400),
            ("400 s in the future", 400),
        ];
        for (age, offset) in ages {
            for millis in [false, true] {
                let signed = if millis {
                    ((now_s + offset) * 1000 + 123).to_string()
                } else {
                    (now_s + offset).to_string()
                };
                let why = format!("{age}, millis={millis}");
                // Header variants: the header is what was signed.
                let md5 = headers(&signed, &md5_signature(&signed, "email", "key-one"));
                assert_eq!(
                    auth(&md5, b"{}"),
                    Err(AuthError::StaleTimestamp(300)),
                    "md5 {why}"
                );
                let hmac = headers(&signed, &hmac_signature("key-two", &signed));
                assert_eq!(
                    auth(&hmac, b"{}"),
                    Err(AuthError::StaleTimestamp(300)),
                    "hmac {why}"
                );
                // The itime variant: an old signature with a fresh, unsigned header and
                // a forged body that carries the old signed itime.
                let forged = format!(
                    r#"{{"itime":{signed},"message_id":"m0$victim@example.com","response":{{"event":"report_spam","response_data":{{}}}}}}"#
                );
                let replay = headers(&fresh, &hmac_signature("key-one", &signed));
                assert_eq!(
                    auth(&replay, forged.as_bytes()),
                    Err(AuthError::StaleTimestamp(300)),
                    "itime {why}"
                );
                let quoted = forged.replace(&format!(":{signed},"), &format!(":\"{signed}\","));
                assert_eq!(
                    auth(&replay, quoted.as_bytes()),
                    Err(AuthError::StaleTimestamp(300)),
                    "itime as a string, {why}"
                );
            }
        }
        // Within the window every variant passes, in both units.
        for signed in [now_s - 100, (now_s + 100) * 1000] {
            let signed = signed.to_string();
            let body = format!(r#"{{"itime":{signed}}}"#);
            let replay = headers(&fresh, &hmac_signature("key-one", &signed));
            assert_eq!(auth(&replay, body.as_bytes()), Ok("hmac-sha256-itime"));
        }
    }

    #[test]
    fn the_published_sample_signature_is_refused_outside_the_window() {
        // events/engagelab-click.json: a 2023 itime signed with the local key.
        let body = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/events/engagelab-click.json"
        ))
        .unwrap();
        let event: Value = serde_json::from_slice(&body).unwrap();
        let headers: Vec<(String, String)> = event["headers"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.to_lowercase(), v.as_str().unwrap_or_default().to_owned()))
            .collect();
        let mut headers: Vec<_> = headers
            .into_iter()
            .filter(|(k, _)| k != "x-webhook-timestamp")
            .collect();
        headers.push(("x-webhook-timestamp".into(), "1700000000".into()));
        // The captured header value, moved into a forged body's itime.
        let old_signed = event["headers"]["x-webhook-timestamp"].as_str().unwrap();
        let mut forged: Value = serde_json::from_str(event["body"].as_str().unwrap()).unwrap();
        forged["itime"] = Value::String(old_signed.to_owned());
        let payload = serde_json::to_vec(&forged).unwrap();
        let secrets = vec![EngageLab.local_secret().to_owned()];
        let clock = FixedClock(1_700_000_000_000);
        let ctx = AuthContext {
            secrets: &secrets,
            freshness: Freshness::Within(300),
            clock: &clock,
            certificates_dir: None,
            webhook_urls: &[],
        };
        let request = Inbound {
            headers: &headers,
            query: &[],
            body: &payload,
        };
        assert_eq!(
            EngageLab.authenticate(&request, &ctx),
            Err(AuthError::StaleTimestamp(300))
        );
    }

    #[test]
    fn itime_is_read_from_the_top_level_only_and_once() {
        assert_eq!(
            body_itime(br#"{"a":[1,{"itime":5}],"itime":7}"#),
            Some("7".into())
        );
        assert_eq!(
            body_itime(br#"{"itime":"1700000000123"}"#),
            Some("1700000000123".into())
        );
        assert_eq!(body_itime(br#"{"itime":1.5e12}"#), None);
        assert_eq!(body_itime(br#"{"itime":"12ab"}"#), None);
        assert_eq!(body_itime(br#"{"itime":1,"itime":2}"#), None, "repeated");
        assert_eq!(body_itime(br#"[{"itime":1}]"#), None, "not an object");
        assert_eq!(body_itime(br#"{"itime":1} trailing"#), None);
        assert_eq!(
            body_itime(b"{\"\\u0069time\":9}"),
            Some("9".into()),
            "escaped key"
        );
    }

    #[test]
    fn a_large_unauthenticated_body_is_scanned_not_built() {
        // 4 MB of `[0,0,...]`: refused at its first byte, whatever its size.
        let mut body = b"[".to_vec();
        body.extend(std::iter::repeat_n(b"0,".as_slice(), 2 * 1024 * 1024).flatten());
        body.extend_from_slice(b"0]");
        assert_eq!(body_itime(&body), None);
        let ts = "1700000000";
        assert_eq!(
            auth(&headers(ts, &"ab".repeat(32)), &body),
            Err(AuthError::BadSignature)
        );
    }

    /// A `target` with `n` recipients, in the shape of the published sample.
    fn target_body(n: usize) -> Vec<u8> {
        let ids: Vec<String> = (0..n).map(|i| format!("req-{i}${i}@example.com")).collect();
        let tos: Vec<String> = (0..n).map(|i| format!("{i}@example.com")).collect();
        serde_json::to_vec(&serde_json::json!({
            "message_id": "req-",
            "itime": 1_676_615_711_325_i64,
            "custom_args": {"order_id": "A-1"},
            "subject": "=?UTF-8?B?5rWL6K+V?=",
            "status": {"message_status": "target", "status_data": {
                "email_ids": ids, "tos": tos, "task_id": "-1", "api_user": "u"
            }}
        }))
        .unwrap()
    }

    #[test]
    fn target_fan_out_keeps_only_each_recipients_part_and_is_linear() {
        let body = target_body(8_000);
        let events = EngageLab.parse(&body).unwrap();
        assert_eq!(events.len(), 8_000);
        let total_raw: usize = events.iter().map(|e| e.raw.len()).sum();
        // Each raw holds one recipient, so the total grows with the recipients,
        // not with recipients × body (which would be ~1.6 GB here).
        assert!(total_raw < 8_000 * 400, "total raw {total_raw} bytes");
        let last = &events[7_999];
        assert_eq!(last.message_id, "req-7999$7999@example.com");
        assert_eq!(last.recipient.as_deref(), Some("7999@example.com"));
        assert_eq!(last.subject.as_deref(), Some("测试"));
        assert_eq!(
            last.metadata.get("order_id").map(String::as_str),
            Some("A-1")
        );
        assert!(
            last.raw
                .contains(r#""email_ids":["req-7999$7999@example.com"]"#)
        );
        assert!(last.raw.contains(r#""tos":["7999@example.com"]"#));
        assert!(!last.raw.contains("req-7998"));
        // The raw of each recipient parses back into exactly that recipient's event.
        let again = EngageLab.parse(last.raw.as_bytes()).unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].message_id, last.message_id);
        assert_eq!(
            crate::store::codec::sort_key(&again[0]),
            crate::store::codec::sort_key(last)
        );
    }

    #[test]
    fn a_fan_out_past_the_budget_is_refused_whole() {
        let mut value: Value = serde_json::from_slice(&target_body(2_000)).unwrap();
        value["custom_args"]["padding"] = Value::String("x".repeat(10_000));
        let body = serde_json::to_vec(&value).unwrap();
        assert_eq!(
            EngageLab.parse(&body),
            Err(ParseError::FanOutTooLarge {
                index: 0,
                recipients: 2_000
            })
        );
    }

    /// One event of a batch that does not normalize is quarantined alone; the
    /// batch's others are stored exactly as from the valid batch.
    #[test]
    fn one_bad_event_in_a_batch_is_quarantined_alone() {
        use crate::providers::json::batch_check::{self, OneBroken, remove};
        OneBroken {
            provider: &EngageLab,
            items: batch_check::fixture_items("engagelab", &["delivered", "target_multi", "open"]),
            body: batch_check::array,
            broken: 1,
            damage: |e| remove(e, "itime"),
            code: "missing_field",
            repair: |v, item| v["itime"] = item["itime"].clone(),
        }
        .check();
    }
}
