//! Mandrill (Mailchimp Transactional): an `application/x-www-form-urlencoded`
//! POST whose one field `mandrill_events` is a JSON array of up to 1,000 events,
//! signed in `X-Mandrill-Signature` = base64 HMAC-SHA1 (webhook key, the URL as
//! configured in Mandrill + each form key and decoded value, keys sorted). No
//! timestamp is signed. Message events carry `event`, `_id` and `ts` (seconds);
//! sync events (allow/deny-list changes) carry `type`, `action` and `ts` and no
//! message, and are stored under a synthetic id (docs/providers/mandrill.md).

use base64::Engine;
use hmac::{Hmac, Mac};
use percent_encoding::percent_decode;
use serde_json::{Map, Value};
use sha1::Sha1;

use super::json::{self, ParseError};
use super::{AuthContext, AuthScheme, Control, Inbound, Parsed, Provider, Signed, SignedUrl};
use crate::auth::{AuthError, constant_time_eq};
use crate::event::{BounceType, EmailEvent, EventType, unix_to_ms};

/// Mandrill webhooks (message and sync events).
pub struct Mandrill;

/// The header holding the signature.
const SIGNATURE_HEADER: &str = "X-Mandrill-Signature";

/// The form field holding the JSON array of events.
const EVENTS_FIELD: &str = "mandrill_events";

/// The URL the local run command, the samples and the tests sign and configure:
/// the local run command's default address.
pub const LOCAL_WEBHOOK_URL: &str = "http://127.0.0.1:3000/webhooks/mandrill";

/// Prefix of the synthetic message id of a sync event: `mandrill-sync:<address>`.
pub const SYNC_ID_PREFIX: &str = "mandrill-sync:";

/// What a body must start with: Mandrill's one form field, as every form
/// encoder writes its key (`_` is never escaped).
const EVENTS_PREFIX: &[u8] = b"mandrill_events=";

/// The media type Mandrill posts with (parameters such as `charset` allowed).
const FORM_CONTENT_TYPE: &str = "application/x-www-form-urlencoded";

/// Why a request is refused before its signature is computed: it is not the
/// one form Mandrill posts.
const NOT_MANDRILLS_FORM: AuthError = AuthError::UnsupportedFormat(
    "Mandrill posts application/x-www-form-urlencoded with one field, mandrill_events",
);

/// Length of an HMAC-SHA1 digest.
const SHA1_LEN: usize = 20;

/// The metadata key a test sender's run id goes in.
const TEST_TAG: &str = "mailhooks_test";

type HmacSha1 = Hmac<Sha1>;

impl Provider for Mandrill {
    fn name(&self) -> &'static str {
        "mandrill"
    }

    fn secrets_env(&self) -> &'static str {
        "MANDRILL_WEBHOOK_KEYS"
    }

    fn scheme(&self) -> AuthScheme {
        AuthScheme::UntimedSignature {
            signature: SIGNATURE_HEADER,
        }
    }

    fn signed_url(&self) -> Option<SignedUrl> {
        Some(SignedUrl {
            env: "MANDRILL_WEBHOOK_URL",
            local: LOCAL_WEBHOOK_URL,
        })
    }

    fn authenticate(
        &self,
        request: &Inbound<'_>,
        ctx: &AuthContext<'_>,
    ) -> Result<&'static str, AuthError> {
        if ctx.secrets.is_empty() || ctx.webhook_urls.is_empty() {
            return Err(AuthError::NotConfigured);
        }
        let header = match request.header_values(SIGNATURE_HEADER).as_slice() {
            [] => return Err(AuthError::MissingHeader(SIGNATURE_HEADER)),
            [one] if one.trim().is_empty() => {
                return Err(AuthError::MissingHeader(SIGNATURE_HEADER));
            }
            [one] => one.trim(),
            _ => return Err(AuthError::DuplicateHeader(SIGNATURE_HEADER)),
        };
        // A header that is not base64 of a SHA-1 digest is refused before any digest.
        let signature = decode_signature(header).ok_or(AuthError::BadSignature)?;
        // Only the exact value that is signed is ever parsed (`parse_request`):
        // any other body shape (JSON, an empty key, a second field) is refused,
        // so no signature can be reused for a body that parses differently.
        if !is_form(request) {
            return Err(NOT_MANDRILLS_FORM);
        }
        let events = events_value(request.body).ok_or(NOT_MANDRILLS_FORM)?;
        if verify(&signature, ctx.secrets, ctx.webhook_urls, events) {
            Ok("hmac-sha1")
        } else {
            Err(AuthError::BadSignature)
        }
    }

    /// Mandrill's "send test" button and the empty batch it may post: `mandrill_events=[]`.
    fn control(&self, request: &Inbound<'_>) -> Option<Control> {
        let raw = events_value(request.body)?;
        // Only a short value can be an empty array: nothing is decoded otherwise.
        if raw.len() > 64 {
            return None;
        }
        let decoded = decode_component(raw);
        let value: Value = serde_json::from_slice(&decoded).ok()?;
        value
            .as_array()
            .is_some_and(Vec::is_empty)
            .then_some(Control {
                kind: "empty_batch",
            })
    }

    /// A stored `raw` (one event), a bare `mandrill_events` array (the
    /// fixtures) or a form body. Requests never come here: see
    /// [`Mandrill::parse_request`].
    fn parse(&self, body: &[u8]) -> Result<Vec<EmailEvent>, ParseError> {
        let first = body.iter().find(|b| !b.is_ascii_whitespace());
        match first {
            None => Err(ParseError::EmptyBody),
            Some(b'[' | b'{') => {
                let mut events = Vec::new();
                match json::parse_body(body)? {
                    Value::Array(items) => parse_all(&items, &mut events)?,
                    single => events.push(parse_event(0, &single)?),
                }
                json::validate(events)
            }
            Some(_) => parse_form(body),
        }
    }

    /// A request's events come only from its `mandrill_events` field, the
    /// value the signature covers; a body of bare JSON is not Mandrill's.
    fn parse_request(&self, request: &Inbound<'_>) -> Result<Vec<EmailEvent>, ParseError> {
        parse_form(request.body)
    }

    /// [`Mandrill::parse_request`] event by event: only the signed
    /// `mandrill_events` value is read; an event that does not normalize is
    /// quarantined alone (as its item would keep it in `raw`), the batch's
    /// others are stored.
    fn parse_each(&self, request: &Inbound<'_>) -> Parsed {
        match form_items(request.body) {
            Ok(items) => json::each_item(
                request.body,
                &items,
                |index, item, out| parse_event(index, item).map(|event| out.push(event)),
                json::item_alone,
            ),
            Err(error) => Parsed::whole(request.body, Err(error)),
        }
    }

    fn local_secret(&self) -> &'static str {
        "local-mandrill-webhook-key"
    }

    /// The fixture is the `mandrill_events` array: sent form-encoded, signed
    /// with [`LOCAL_WEBHOOK_URL`].
    fn sign(&self, secret: &str, unix_secs: i64, body: &[u8]) -> Signed {
        self.sign_for_url(LOCAL_WEBHOOK_URL, secret, unix_secs, body)
    }

    fn sign_for_url(&self, url: &str, secret: &str, _unix_secs: i64, body: &[u8]) -> Signed {
        // A body already in Mandrill's form (an events/ file, a captured request)
        // is signed again, not wrapped a second time.
        let unwrapped = events_value(body).map(decode_component);
        let body = unwrapped.as_deref().unwrap_or(body);
        // The bytes as given, even when they are not UTF-8 (the bad-input tests).
        let encoded: String = form_urlencoded::byte_serialize(body).collect();
        Signed {
            query: String::new(),
            headers: vec![
                (
                    SIGNATURE_HEADER.to_owned(),
                    signature(secret, url, &[(EVENTS_FIELD, body)]),
                ),
                ("content-type".to_owned(), FORM_CONTENT_TYPE.to_owned()),
            ],
            body: format!("{EVENTS_FIELD}={encoded}").into_bytes(),
        }
    }

    fn refresh_sample(&self, sample: &mut Value, now_ms: i64, run_id: &str) {
        let events = match sample {
            Value::Array(items) => items.iter_mut().collect(),
            single => vec![single],
        };
        for event in events {
            let Some(event) = event.as_object_mut() else {
                continue;
            };
            event.insert("ts".into(), Value::from(now_ms / 1000));
            // Sync events have no pass-through data: their new time makes them new.
            if let Some(Value::Object(msg)) = event.get_mut("msg") {
                match msg.get_mut("metadata") {
                    Some(Value::Object(metadata)) => {
                        metadata.insert(TEST_TAG.into(), Value::from(run_id));
                    }
                    _ => {
                        let tag = Map::from_iter([(TEST_TAG.to_owned(), Value::from(run_id))]);
                        msg.insert("metadata".into(), Value::Object(tag));
                    }
                }
            }
        }
    }
}

/// Base64 HMAC-SHA1 keyed with `secret` over `url` and each field's key and
/// decoded value, in the order given (Mandrill's "How to Authenticate Webhook
/// Requests"; the fields must already be sorted by key).
pub fn signature(secret: &str, url: &str, fields: &[(&str, &[u8])]) -> String {
    let mut mac = new_mac(secret, url);
    for (key, value) in fields {
        mac.update(key.as_bytes());
        mac.update(value);
    }
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

fn new_mac(secret: &str, url: &str) -> HmacSha1 {
    // HMAC takes keys of any length, so this cannot fail.
    let mut mac =
        <HmacSha1 as Mac>::new_from_slice(secret.as_bytes()).unwrap_or_else(|_| unreachable!());
    mac.update(url.as_bytes());
    mac
}

/// The 20 digest bytes of a base64 header value; `None` for anything else.
fn decode_signature(header: &str) -> Option<[u8; SHA1_LEN]> {
    // A longer header cannot be a SHA-1 digest: nothing is decoded from it.
    if header.len() > 4 * SHA1_LEN.div_ceil(3) {
        return None;
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(header)
        .ok()?;
    bytes.try_into().ok()
}

/// True if the request carries exactly one `Content-Type`, the form media type.
fn is_form(request: &Inbound<'_>) -> bool {
    match request.header_values("content-type").as_slice() {
        [one] => one
            .split(';')
            .next()
            .is_some_and(|media| media.trim().eq_ignore_ascii_case(FORM_CONTENT_TYPE)),
        _ => false,
    }
}

/// The still-encoded value of a body that is exactly one `mandrill_events`
/// field; `None` for any other body (an empty or other key, a second field, a
/// leading or trailing `&`): with one field, the signed text (URL + key +
/// decoded value) names one body only.
fn events_value(body: &[u8]) -> Option<&[u8]> {
    let value = body.strip_prefix(EVENTS_PREFIX)?;
    (!value.contains(&b'&')).then_some(value)
}

/// True if `signature` is the HMAC of any (URL, key) pair over the
/// `mandrill_events` field. Every digest is computed and compared in constant
/// time; the value is decoded once, in chunks, into all of them.
fn verify(signature: &[u8; SHA1_LEN], secrets: &[String], urls: &[String], events: &[u8]) -> bool {
    let mut macs: Vec<HmacSha1> = urls
        .iter()
        .flat_map(|url| secrets.iter().map(move |secret| new_mac(secret, url)))
        .collect();
    for mac in &mut macs {
        mac.update(EVENTS_FIELD.as_bytes());
    }
    stream_decoded(events, |chunk| {
        for mac in &mut macs {
            mac.update(chunk);
        }
    });
    macs.into_iter().fold(false, |found, mac| {
        found | constant_time_eq(&mac.finalize().into_bytes(), signature)
    })
}

/// Feeds the form decoding of `raw` (`+` is a space, `%XX` a byte) to `sink`
/// in chunks, without building the decoded value.
fn stream_decoded(raw: &[u8], mut sink: impl FnMut(&[u8])) {
    let mut buffer = [0u8; 4096];
    let mut len = 0;
    let mut push = |byte: u8, sink: &mut dyn FnMut(&[u8])| {
        buffer[len] = byte;
        len += 1;
        if len == buffer.len() {
            sink(&buffer);
            len = 0;
        }
    };
    for (i, segment) in raw.split(|b| *b == b'+').enumerate() {
        if i > 0 {
            push(b' ', &mut sink);
        }
        for byte in percent_decode(segment) {
            push(byte, &mut sink);
        }
    }
    sink(&buffer[..len]);
}

/// The form decoding of `raw` as bytes (the same decoding the signature covers).
fn decode_component(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    stream_decoded(raw, |chunk| out.extend_from_slice(chunk));
    out
}

/// The events of a form body: its one `mandrill_events` field, a JSON array.
fn parse_form(body: &[u8]) -> Result<Vec<EmailEvent>, ParseError> {
    let mut events = Vec::new();
    parse_all(&form_items(body)?, &mut events)?;
    json::validate(events)
}

/// The items of a form body's one `mandrill_events` field, a JSON array: the
/// value the signature covers, and nothing else of the body.
fn form_items(body: &[u8]) -> Result<Vec<Value>, ParseError> {
    let raw = events_value(body).ok_or_else(|| {
        ParseError::WrongShape("the body must be one form field, mandrill_events".into())
    })?;
    let decoded = String::from_utf8(decode_component(raw)).map_err(|_| ParseError::NotUtf8)?;
    match json::parse_body(decoded.as_bytes())? {
        Value::Array(items) => Ok(items),
        _ => Err(ParseError::WrongShape(
            "mandrill_events must be a JSON array".into(),
        )),
    }
}

fn parse_all(items: &[Value], out: &mut Vec<EmailEvent>) -> Result<(), ParseError> {
    out.reserve(items.len());
    for (index, item) in items.iter().enumerate() {
        out.push(parse_event(index, item)?);
    }
    Ok(())
}

/// One Mandrill event: a message event (`event`) or a sync event (`type` + `action`).
fn parse_event(index: usize, value: &Value) -> Result<EmailEvent, ParseError> {
    let event = json::as_object(value, "a Mandrill event")?;
    let missing = |field| ParseError::MissingField { index, field };
    // `ts` is the event's own time; `msg.ts` is when the message was sent.
    let ts = json::int(event, "ts").ok_or_else(|| missing("ts"))?;
    let time_ms = unix_to_ms(ts);
    if let Some(name) = event.get("event").and_then(json::value_text) {
        parse_message_event(index, event, &name, time_ms, value)
    } else if event.contains_key("type") && event.contains_key("action") {
        parse_sync_event(index, event, time_ms, value)
    } else {
        Err(missing("event"))
    }
}

fn message_type(name: &str) -> (EventType, Option<BounceType>) {
    match name {
        "send" => (EventType::Sent, None),
        "delivered" => (EventType::Delivered, None),
        "deferral" => (EventType::Deferred, None),
        "hard_bounce" => (EventType::Bounced, Some(BounceType::Hard)),
        "soft_bounce" => (EventType::Bounced, Some(BounceType::Soft)),
        "open" => (EventType::Opened, None),
        "click" => (EventType::Clicked, None),
        "spam" => (EventType::Complained, None),
        "unsub" => (EventType::Unsubscribed, None),
        "reject" => (EventType::Rejected, None),
        "inbound" => (EventType::Inbound, None),
        _ => (EventType::Unknown, None),
    }
}

fn parse_message_event(
    index: usize,
    event: &Map<String, Value>,
    name: &str,
    time_ms: i64,
    value: &Value,
) -> Result<EmailEvent, ParseError> {
    let empty = Map::new();
    let msg = event
        .get("msg")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let message_id = event
        .get("_id")
        .and_then(json::value_text)
        .or_else(|| msg.get("_id").and_then(json::value_text))
        // Inbound messages have no Mandrill id: their Message-Id header names them.
        .or_else(|| inbound_message_id(msg))
        .ok_or(ParseError::MissingField {
            index,
            field: "_id",
        })?;
    let (event_type, bounce_type) = message_type(name);
    let mut e = EmailEvent::new(
        "mandrill",
        event_type,
        name,
        message_id,
        time_ms,
        json::canonical(value),
    );
    e.bounce_type = bounce_type;
    e.recipient = text(msg, "email").map(|r| r.to_lowercase());
    e.subject = text(msg, "subject");
    e.sender = text(msg, "sender").or_else(|| text(msg, "from_email"));
    e.ip = text(event, "ip");
    e.user_agent = text(event, "user_agent");
    e.url = text(event, "url");
    e.template_id = text(msg, "template");
    let diag = text(msg, "diag").or_else(|| last_smtp_diag(msg));
    e.status_code = diag
        .as_deref()
        .and_then(|d| json::smtp_code(d.strip_prefix("smtp;").unwrap_or(d)));
    match (event_type, diag) {
        // A success's SMTP reply is no failure text.
        (EventType::Sent | EventType::Delivered, Some(reply)) => {
            e.details.insert("smtp_response".into(), reply);
        }
        (_, diag) => e.reason = diag.or_else(|| text(msg, "bounce_description")),
    }
    for (field, key) in [
        ("bounce_description", "bounce_description"),
        ("bgtools_code", "bgtools_code"),
        ("state", "state"),
        ("subaccount", "subaccount"),
    ] {
        if let Some(v) = text(msg, field) {
            e.details.insert(key.into(), v);
        }
    }
    if let Some(tags) = msg.get("tags").and_then(Value::as_array) {
        let tags: Vec<String> = tags.iter().filter_map(json::value_text).collect();
        if !tags.is_empty() {
            e.details.insert("tags".into(), tags.join(","));
        }
    }
    if let Some(location) = event.get("location").and_then(Value::as_object) {
        for field in ["country_short", "region", "city"] {
            if let Some(v) = text(location, field) {
                e.details.insert(format!("location_{field}"), v);
            }
        }
    }
    if let Some(parsed) = event.get("user_agent_parsed").and_then(Value::as_object) {
        for (field, key) in [
            ("type", "client_type"),
            ("ua_name", "client"),
            ("os_name", "os"),
            ("mobile", "mobile"),
        ] {
            if let Some(v) = text(parsed, field) {
                e.details.insert(key.into(), v);
            }
        }
    }
    if let Some(metadata) = msg.get("metadata").and_then(Value::as_object) {
        for (key, v) in metadata {
            let v = json::value_text(v).unwrap_or_else(|| json::canonical(v));
            e.metadata.insert(key.clone(), v);
        }
    }
    Ok(e)
}

/// The `diag` of the last SMTP attempt (deferrals carry it there, not in `msg.diag`).
fn last_smtp_diag(msg: &Map<String, Value>) -> Option<String> {
    let attempts = msg.get("smtp_events")?.as_array()?;
    text(attempts.last()?.as_object()?, "diag")
}

/// The `Message-Id` header of an inbound message, if it has one.
fn inbound_message_id(msg: &Map<String, Value>) -> Option<String> {
    let headers = msg.get("headers")?.as_object()?;
    headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("message-id"))
        .and_then(|(_, v)| json::value_text(v))
}

/// A sync event: an allow- or deny-list change of one address, stored under
/// `mandrill-sync:<address>` so each address's list history is one timeline.
///
/// A deny-list entry added or changed maps by its reason, so that it enters the
/// suppression list like the event that caused it: `hard-bounce` → bounced
/// (hard), `spam` → complained, `unsub` → unsubscribed, `soft-bounce` → bounced
/// (soft, Mandrill lets it expire); `custom` (added by hand) and other reasons →
/// rejected. Every deny-list add or change is marked `deny_listed`, so the address
/// is in the suppression list whatever its reason (`deny_list` where the type names
/// none). Removals and allow-list changes are `unknown`: they suppress nothing.
fn parse_sync_event(
    index: usize,
    event: &Map<String, Value>,
    time_ms: i64,
    value: &Value,
) -> Result<EmailEvent, ParseError> {
    let missing = |field| ParseError::MissingField { index, field };
    let list = text(event, "type").ok_or_else(|| missing("type"))?;
    let action = text(event, "action").ok_or_else(|| missing("action"))?;
    let entry = ["reject", "entry"]
        .into_iter()
        .find_map(|field| event.get(field).and_then(Value::as_object))
        .ok_or_else(|| missing("reject"))?;
    let address = text(entry, "email")
        .map(|a| a.to_lowercase())
        .ok_or_else(|| missing("reject.email"))?;
    let reason = text(entry, "reason");
    let deny_listed = list == "blacklist" && matches!(action.as_str(), "add" | "change");
    let (event_type, bounce_type) = if deny_listed {
        deny_list_type(reason.as_deref())
    } else {
        (EventType::Unknown, None)
    };
    let mut e = EmailEvent::new(
        "mandrill",
        event_type,
        format!("{list}.{action}"),
        format!("{SYNC_ID_PREFIX}{address}"),
        time_ms,
        json::canonical(value),
    );
    e.bounce_type = bounce_type;
    e.deny_listed = deny_listed;
    e.recipient = Some(address);
    e.reason = text(entry, "detail");
    e.sender = text(entry, "sender");
    for field in [
        "reason",
        "created_at",
        "expires_at",
        "expired",
        "last_event_at",
        "subaccount",
    ] {
        if let Some(v) = text(entry, field) {
            e.details.insert(format!("list_{field}"), v);
        }
    }
    Ok(e)
}

fn deny_list_type(reason: Option<&str>) -> (EventType, Option<BounceType>) {
    match reason {
        Some("hard-bounce") => (EventType::Bounced, Some(BounceType::Hard)),
        Some("soft-bounce") => (EventType::Bounced, Some(BounceType::Soft)),
        Some("spam") => (EventType::Complained, None),
        Some("unsub") => (EventType::Unsubscribed, None),
        _ => (EventType::Rejected, None),
    }
}

/// A field as text, exact key only (Mandrill's keys are lower-case).
fn text(obj: &Map<String, Value>, key: &str) -> Option<String> {
    json::value_text(obj.get(key)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{FixedClock, Freshness};

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/tests/fixtures/mandrill/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    fn parse_one(name: &str) -> EmailEvent {
        let events = Mandrill.parse(&fixture(&format!("{name}.json"))).unwrap();
        assert_eq!(events.len(), 1, "{name}");
        events.into_iter().next().unwrap()
    }

    const EXAMPLE_ID: &str = "fa239ebedd0a4831a3eefa59e880d8b2";
    const EXAMPLE_TO: &str = "example.webhook@mandrillapp.com";
    const EXAMPLE_MS: i64 = 1_420_303_407_000;

    fn assert_example(e: &EmailEvent, event_type: EventType, name: &str) {
        assert_eq!(e.event_type, event_type, "{name}");
        assert_eq!(e.provider_event, name);
        assert_eq!(e.message_id, EXAMPLE_ID);
        assert_eq!(e.recipient.as_deref(), Some(EXAMPLE_TO));
        assert_eq!(e.event_time_ms, EXAMPLE_MS, "ts, not msg.ts");
        assert_eq!(
            e.subject.as_deref(),
            Some("This an example webhook message")
        );
        assert_eq!(e.sender.as_deref(), Some("example.sender@mandrillapp.com"));
        assert_eq!(
            e.details.get("tags").map(String::as_str),
            Some("webhook-example")
        );
        assert_eq!(e.metadata.get("user_id").map(String::as_str), Some("111"));
    }

    #[test]
    fn anymail_send() {
        let e = parse_one("send");
        assert_eq!(e.event_type, EventType::Sent);
        assert_eq!(e.message_id, "abcdef012345789abcdef012345789");
        assert_eq!(e.recipient.as_deref(), Some("recipient@example.com"));
        assert_eq!(e.event_time_ms, 1_461_095_246_000);
        assert_eq!(e.details.get("tags").map(String::as_str), Some("tag1,tag2"));
        assert_eq!(
            e.metadata.get("custom2").map(String::as_str),
            Some("value2")
        );
    }

    #[test]
    fn anymail_click() {
        let e = parse_one("click");
        assert_eq!(e.event_type, EventType::Clicked);
        assert_eq!(e.url.as_deref(), Some("http://example.com"));
        assert_eq!(
            e.user_agent.as_deref(),
            Some("Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0")
        );
        assert_eq!(e.event_time_ms, 1_461_095_246_000);
    }

    /// Built for mailhooks from the example `send` (no published `delivered` sample).
    #[test]
    fn delivered() {
        let e = parse_one("delivered");
        assert_example(&e, EventType::Delivered, "delivered");
        assert_eq!(e.reason, None);
        assert_eq!(e.status_code.as_deref(), Some("250 2.0.0"));
        assert_eq!(
            e.details.get("smtp_response").map(String::as_str),
            Some("250 2.0.0 OK")
        );
    }

    #[test]
    fn example_send() {
        let e = parse_one("example_send");
        assert_example(&e, EventType::Sent, "send");
        assert_eq!(e.details.get("state").map(String::as_str), Some("sent"));
    }

    #[test]
    fn example_deferral_keeps_the_last_smtp_reply() {
        let e = parse_one("example_deferral");
        assert_example(&e, EventType::Deferred, "deferral");
        assert_eq!(
            e.reason.as_deref(),
            Some("451 4.3.5 Temporarily unavailable, try again later.")
        );
        assert_eq!(e.status_code.as_deref(), Some("451 4.3.5"));
    }

    #[test]
    fn example_hard_bounce() {
        let e = parse_one("example_hard_bounce");
        assert_example(&e, EventType::Bounced, "hard_bounce");
        assert_eq!(e.bounce_type, Some(BounceType::Hard));
        assert!(e.reason.as_deref().unwrap().starts_with("smtp;550 5.1.1"));
        assert_eq!(e.status_code.as_deref(), Some("550 5.1.1"));
        assert_eq!(
            e.details.get("bounce_description").map(String::as_str),
            Some("bad_mailbox")
        );
        assert_eq!(
            e.details.get("bgtools_code").map(String::as_str),
            Some("10")
        );
    }

    #[test]
    fn example_soft_bounce() {
        let e = parse_one("example_soft_bounce");
        assert_example(&e, EventType::Bounced, "soft_bounce");
        assert_eq!(e.bounce_type, Some(BounceType::Soft));
        assert_eq!(e.status_code.as_deref(), Some("552 5.2.2"));
        assert_eq!(
            e.details.get("bounce_description").map(String::as_str),
            Some("mailbox_full")
        );
    }

    #[test]
    fn example_open() {
        let e = parse_one("example_open");
        assert_example(&e, EventType::Opened, "open");
        assert_eq!(e.ip.as_deref(), Some("127.0.0.1"));
        assert!(e.user_agent.as_deref().unwrap().contains("Postbox/1.1.3"));
        assert_eq!(
            e.details.get("client").map(String::as_str),
            Some("Postbox 1.1.3")
        );
        assert_eq!(
            e.details.get("location_city").map(String::as_str),
            Some("Oklahoma City")
        );
        assert_eq!(e.details.get("mobile").map(String::as_str), Some("false"));
    }

    #[test]
    fn example_click() {
        let e = parse_one("example_click");
        assert_example(&e, EventType::Clicked, "click");
        assert_eq!(e.url.as_deref(), Some("http://mandrill.com"));
    }

    #[test]
    fn example_spam() {
        assert_example(&parse_one("example_spam"), EventType::Complained, "spam");
    }

    #[test]
    fn example_unsub() {
        assert_example(
            &parse_one("example_unsub"),
            EventType::Unsubscribed,
            "unsub",
        );
    }

    #[test]
    fn example_reject() {
        let e = parse_one("example_reject");
        assert_example(&e, EventType::Rejected, "reject");
        assert_eq!(e.details.get("state").map(String::as_str), Some("rejected"));
    }

    fn assert_sync(e: &EmailEvent, event_type: EventType, name: &str) {
        assert_eq!(e.event_type, event_type, "{name}");
        assert_eq!(e.provider_event, name);
        assert_eq!(e.message_id, format!("mandrill-sync:{EXAMPLE_TO}"));
        assert_eq!(e.recipient.as_deref(), Some(EXAMPLE_TO));
        assert_eq!(e.event_time_ms, EXAMPLE_MS);
    }

    #[test]
    fn sync_blacklist_add_of_a_hard_bounce_is_a_hard_bounce_suppression() {
        let e = parse_one("sync_blacklist_add");
        assert_sync(&e, EventType::Bounced, "blacklist.add");
        assert_eq!(e.bounce_type, Some(BounceType::Hard));
        assert_eq!(
            crate::status::suppression_reason(e.event_type, e.bounce_type),
            Some("hard_bounce")
        );
        assert_eq!(e.reason.as_deref(), Some("Example detail"));
        assert_eq!(e.sender.as_deref(), Some("example.sender@mandrillapp.com"));
        assert_eq!(
            e.details.get("list_expires_at").map(String::as_str),
            Some("2020-04-02 12:09:18")
        );
        assert_eq!(
            e.details.get("list_reason").map(String::as_str),
            Some("hard-bounce")
        );
    }

    #[test]
    fn sync_blacklist_change_keeps_the_entry() {
        let e = parse_one("sync_blacklist_change");
        assert_sync(&e, EventType::Bounced, "blacklist.change");
        assert_eq!(e.bounce_type, Some(BounceType::Hard));
    }

    #[test]
    fn sync_blacklist_remove_suppresses_nothing() {
        let e = parse_one("sync_blacklist_remove");
        assert_sync(&e, EventType::Unknown, "blacklist.remove");
        assert_eq!(
            crate::status::suppression_reason(e.event_type, e.bounce_type),
            None
        );
    }

    #[test]
    fn sync_whitelist_add() {
        let e = parse_one("sync_whitelist_add");
        assert_sync(&e, EventType::Unknown, "whitelist.add");
        assert_eq!(e.reason.as_deref(), Some("example details"));
    }

    #[test]
    fn sync_whitelist_remove() {
        assert_sync(
            &parse_one("sync_whitelist_remove"),
            EventType::Unknown,
            "whitelist.remove",
        );
    }

    #[test]
    fn a_form_body_is_signed_again_not_wrapped_twice() {
        let events = fixture("example_send.json");
        let first = Mandrill.sign("k", 0, &events);
        let again = Mandrill.sign("k", 0, &first.body);
        assert_eq!(
            again, first,
            "an events/ file re-signed is the same request"
        );
        assert_eq!(Mandrill.parse(&again.body), Mandrill.parse(&events));
    }

    #[test]
    fn deny_list_reasons_map_to_what_caused_them() {
        for (reason, event_type, bounce) in [
            ("hard-bounce", EventType::Bounced, Some(BounceType::Hard)),
            ("soft-bounce", EventType::Bounced, Some(BounceType::Soft)),
            ("spam", EventType::Complained, None),
            ("unsub", EventType::Unsubscribed, None),
            ("custom", EventType::Rejected, None),
        ] {
            let body = format!(
                r#"[{{"type":"blacklist","action":"add","ts":1,"reject":{{"reason":"{reason}","email":"A@X.com"}}}}]"#
            );
            let e = &Mandrill.parse(body.as_bytes()).unwrap()[0];
            assert_eq!(
                (e.event_type, e.bounce_type),
                (event_type, bounce),
                "{reason}"
            );
            assert!(e.deny_listed, "{reason}: an add is a deny-list entry");
            assert_eq!(e.recipient.as_deref(), Some("a@x.com"));
        }
    }

    #[test]
    fn the_example_batch_is_one_item_per_event() {
        let events = Mandrill.parse(&fixture("example_batch_all.json")).unwrap();
        assert_eq!(events.len(), 14);
        let names: Vec<&str> = events.iter().map(|e| e.provider_event.as_str()).collect();
        assert_eq!(names[0], "send");
        assert_eq!(names[13], "whitelist.remove");
    }

    #[test]
    fn delivered_and_undocumented_events() {
        let body = br#"[{"event":"delivered","_id":"m1","ts":1700000000,"msg":{"email":"B@x.com"}},
            {"event":"warmup","_id":"m2","ts":1700000001},
            {"type":"greylist","action":"add","ts":1,"entry":{"email":"c@x.com"}}]"#;
        let events = Mandrill.parse(body).unwrap();
        assert_eq!(events[0].event_type, EventType::Delivered);
        assert_eq!(events[0].recipient.as_deref(), Some("b@x.com"));
        assert_eq!(events[0].event_time_ms, 1_700_000_000_000);
        assert_eq!(
            (events[1].event_type, events[1].provider_event.as_str()),
            (EventType::Unknown, "warmup")
        );
        assert_eq!(events[2].event_type, EventType::Unknown);
    }

    #[test]
    fn inbound_is_named_by_its_message_id_header() {
        let body = br#"[{"event":"inbound","ts":5,"msg":{"email":"in@x.com","headers":{"Message-Id":"<a@b>"}}}]"#;
        let e = &Mandrill.parse(body).unwrap()[0];
        assert_eq!(
            (e.event_type, e.message_id.as_str()),
            (EventType::Inbound, "<a@b>")
        );
    }

    #[test]
    fn form_bodies_and_stored_raw_parse_to_the_same_events() {
        let json = fixture("send.json");
        let form = fixture("send_form_body.txt");
        let from_form = Mandrill.parse(&form).unwrap();
        assert_eq!(from_form.len(), 1);
        assert_eq!(from_form[0].message_id, "abcdef012345789abcdef012345789");
        let from_json = Mandrill.parse(&json).unwrap();
        assert_eq!(from_form[0].raw, from_json[0].raw);
        // Re-normalization reads one stored event.
        let again = Mandrill.parse(from_form[0].raw.as_bytes()).unwrap();
        assert_eq!(again, from_form);
        for name in ["hard_bounce_form_body.txt", "click_form_body.txt"] {
            assert_eq!(Mandrill.parse(&fixture(name)).unwrap().len(), 1, "{name}");
        }
    }

    #[test]
    fn shape_errors() {
        assert_eq!(Mandrill.parse(b" "), Err(ParseError::EmptyBody));
        assert!(matches!(
            Mandrill.parse(b"other=1"),
            Err(ParseError::WrongShape(_))
        ));
        assert!(matches!(
            Mandrill.parse(b"mandrill_events=%5B%5D&mandrill_events=%5B%5D"),
            Err(ParseError::WrongShape(_))
        ));
        assert!(matches!(
            Mandrill.parse(b"mandrill_events=%7B%7D"),
            Err(ParseError::WrongShape(_))
        ));
        assert_eq!(
            Mandrill.parse(b"mandrill_events=%FF"),
            Err(ParseError::NotUtf8)
        );
        assert_eq!(
            Mandrill.parse(b"mandrill_events=%5B%5D"),
            Err(ParseError::NoEvents)
        );
        assert_eq!(
            Mandrill.parse(br#"[{"event":"send","_id":"x"}]"#),
            Err(ParseError::MissingField {
                index: 0,
                field: "ts"
            })
        );
        assert_eq!(
            Mandrill.parse(br#"[{"event":"send","ts":1}]"#),
            Err(ParseError::MissingField {
                index: 0,
                field: "_id"
            })
        );
        assert_eq!(
            Mandrill.parse(br#"[{"ts":1}]"#),
            Err(ParseError::MissingField {
                index: 0,
                field: "event"
            })
        );
    }

    fn auth_with(
        headers: &[(String, String)],
        body: &[u8],
        urls: &[String],
    ) -> Result<&'static str, AuthError> {
        let secrets = vec!["key-one".to_owned(), "key-two".to_owned()];
        let clock = FixedClock(0);
        let ctx = AuthContext {
            secrets: &secrets,
            freshness: Freshness::Within(300),
            clock: &clock,
            webhook_urls: urls,
            certificates_dir: None,
        };
        Mandrill.authenticate(
            &Inbound {
                headers,
                query: &[],
                body,
            },
            &ctx,
        )
    }

    fn auth(headers: &[(String, String)], body: &[u8]) -> Result<&'static str, AuthError> {
        auth_with(headers, body, &[LOCAL_WEBHOOK_URL.to_owned()])
    }

    /// A signature header on a form request, as Mandrill sends it.
    fn header(value: &str) -> Vec<(String, String)> {
        vec![
            ("x-mandrill-signature".into(), value.into()),
            ("content-type".into(), FORM_CONTENT_TYPE.into()),
        ]
    }

    #[test]
    fn signed_requests_verify_with_either_key_and_any_configured_url() {
        let events = fixture("send.json");
        for secret in ["key-one", "key-two"] {
            let signed = Mandrill.sign(secret, 0, &events);
            assert_eq!(auth(&signed.headers, &signed.body), Ok("hmac-sha1"));
        }
        let other = "https://hooks.example.com/webhooks/mandrill?x=1";
        let signed = Mandrill.sign_for_url(other, "key-two", 0, &events);
        let urls = [LOCAL_WEBHOOK_URL.to_owned(), other.to_owned()];
        assert_eq!(
            auth_with(&signed.headers, &signed.body, &urls),
            Ok("hmac-sha1")
        );
        assert_eq!(
            auth(&signed.headers, &signed.body),
            Err(AuthError::BadSignature),
            "a URL that is not configured"
        );
        let slash = format!("{other}/");
        assert_eq!(
            auth_with(&signed.headers, &signed.body, &[slash]),
            Err(AuthError::BadSignature),
            "one trailing slash apart"
        );
    }

    #[test]
    fn signature_failures_are_classified() {
        let signed = Mandrill.sign("key-one", 0, &fixture("send.json"));
        assert_eq!(
            auth(&[], &signed.body),
            Err(AuthError::MissingHeader(SIGNATURE_HEADER))
        );
        assert_eq!(
            auth(&header(" "), &signed.body),
            Err(AuthError::MissingHeader(SIGNATURE_HEADER))
        );
        let mut twice = signed.headers.clone();
        twice.push(("X-Mandrill-Signature".into(), "x".into()));
        assert_eq!(
            auth(&twice, &signed.body),
            Err(AuthError::DuplicateHeader(SIGNATURE_HEADER))
        );
        for bad in ["not base64!", "AAAA", &"A".repeat(10_000)] {
            assert_eq!(
                auth(&header(bad), &signed.body),
                Err(AuthError::BadSignature),
                "{bad:.8}"
            );
        }
        let wrong = Mandrill.sign("other", 0, &fixture("send.json"));
        assert_eq!(
            auth(&wrong.headers, &signed.body),
            Err(AuthError::BadSignature)
        );
        // Each byte of the value is signed; an extra field is not Mandrill's form.
        let mut extra = signed.body.clone();
        extra.extend_from_slice(b"&x=1");
        assert_eq!(auth(&signed.headers, &extra), Err(NOT_MANDRILLS_FORM));
        let mut changed = signed.body.clone();
        let at = changed.len() - 5;
        changed[at] ^= 1;
        assert_eq!(
            auth(&signed.headers, &changed),
            Err(AuthError::BadSignature)
        );
        // Unconfigured: no key, or no URL.
        assert_eq!(
            auth_with(&signed.headers, &signed.body, &[]),
            Err(AuthError::NotConfigured)
        );
    }

    /// The event `V` a captured signature covers, and a body whose form
    /// fields, sorted and joined without separators, spell the same signed
    /// text (URL + `mandrill_events` + `V`) while its JSON says other things.
    const CAPTURED_EVENTS: &str = r#"[{"event":"send","msg":{"email":"victim@example.com"},"_id":"abcdef0123","ts":1420303407}]"#;
    const REUSING_BODY: &str = r#"[{"event":"se=nd","msg":{"email":"victim@example.com"},"_id":"ab&=mandrill_events&cdef0123","ts":1420303407}]"#;

    #[test]
    fn a_captured_signature_does_not_authenticate_a_body_that_parses_differently() {
        let captured = Mandrill.sign("key-one", 0, CAPTURED_EVENTS.as_bytes());
        assert_eq!(auth(&captured.headers, &captured.body), Ok("hmac-sha1"));
        // The review's body: its fields `=mandrill_events`, `[{"event":"se=nd…ab`
        // and `cdef0123…}]` sort and join to the captured signed text.
        let [(_, signature_value), _] = captured.headers.as_slice() else {
            panic!("signature and content type");
        };
        let fields_of_the_reusing_body = [
            ("", b"mandrill_events".as_slice()),
            (
                r#"[{"event":"se"#,
                br#"nd","msg":{"email":"victim@example.com"},"_id":"ab"#.as_slice(),
            ),
            (r#"cdef0123","ts":1420303407}]"#, b"".as_slice()),
        ];
        assert_eq!(
            &signature("key-one", LOCAL_WEBHOOK_URL, &fields_of_the_reusing_body),
            signature_value,
            "the reuse the review found is real"
        );
        let body = REUSING_BODY.as_bytes();
        assert_eq!(auth(&captured.headers, body), Err(NOT_MANDRILLS_FORM));
        let as_json = [
            captured.headers[0].clone(),
            ("content-type".into(), "application/json".into()),
        ];
        assert_eq!(auth(&as_json, body), Err(NOT_MANDRILLS_FORM));
        // And were it let through, its events would not be parsed from JSON.
        let request = Inbound {
            headers: &captured.headers,
            query: &[],
            body,
        };
        assert!(matches!(
            Mandrill.parse_request(&request),
            Err(ParseError::WrongShape(_))
        ));
    }

    /// A form key and its decoded value, as [`signature`] takes them.
    type SignedField<'a> = (&'a str, &'a [u8]);

    #[test]
    fn only_one_mandrill_events_field_is_accepted_even_correctly_signed() {
        let events = CAPTURED_EVENTS.as_bytes();
        let encoded: String = form_urlencoded::byte_serialize(events).collect();
        let value = encoded.as_bytes();
        // Each body is signed as the sorted-fields algorithm signs it.
        let cases: [(&str, String, Vec<SignedField>); 6] = [
            (
                "an empty key",
                format!("=X&mandrill_events={encoded}"),
                vec![("", b"X"), (EVENTS_FIELD, events)],
            ),
            (
                "a second field",
                format!("mandrill_events={encoded}&x=1"),
                vec![(EVENTS_FIELD, events), ("x", b"1")],
            ),
            (
                "the field twice",
                format!("mandrill_events={encoded}&mandrill_events={encoded}"),
                vec![(EVENTS_FIELD, events), (EVENTS_FIELD, events)],
            ),
            (
                "a trailing separator",
                format!("mandrill_events={encoded}&"),
                vec![(EVENTS_FIELD, events)],
            ),
            (
                "an encoded key",
                format!("mandrill%5Fevents={encoded}"),
                vec![(EVENTS_FIELD, events)],
            ),
            ("bare JSON", CAPTURED_EVENTS.to_owned(), vec![]),
        ];
        for (name, body, fields) in cases {
            let sig = if fields.is_empty() {
                Mandrill.sign("key-one", 0, events).headers[0].1.clone()
            } else {
                signature("key-one", LOCAL_WEBHOOK_URL, &fields)
            };
            assert_eq!(
                auth(&header(&sig), body.as_bytes()),
                Err(NOT_MANDRILLS_FORM),
                "{name}"
            );
        }
        let sig = signature("key-one", LOCAL_WEBHOOK_URL, &[(EVENTS_FIELD, events)]);
        let body = [EVENTS_PREFIX, value].concat();
        assert_eq!(auth(&header(&sig), &body), Ok("hmac-sha1"));
    }

    #[test]
    fn the_content_type_must_be_the_form_type() {
        let signed = Mandrill.sign("key-one", 0, CAPTURED_EVENTS.as_bytes());
        let with = |types: &[&str]| {
            let mut headers = vec![signed.headers[0].clone()];
            headers.extend(types.iter().map(|t| ("Content-Type".into(), (*t).into())));
            auth(&headers, &signed.body)
        };
        for accepted in [
            "application/x-www-form-urlencoded",
            "Application/X-WWW-Form-Urlencoded; charset=utf-8",
            " application/x-www-form-urlencoded ;charset=UTF-8",
        ] {
            assert_eq!(with(&[accepted]), Ok("hmac-sha1"), "{accepted}");
        }
        for refused in [
            &[][..],
            &["application/json"],
            &["multipart/form-data; boundary=x"],
            &["application/x-www-form-urlencoded-x"],
            &["application/x-www-form-urlencoded", "application/json"],
        ] {
            assert_eq!(with(refused), Err(NOT_MANDRILLS_FORM), "{refused:?}");
        }
    }

    #[test]
    fn stored_raw_json_still_parses_for_renormalization() {
        let events = Mandrill.parse(CAPTURED_EVENTS.as_bytes()).unwrap();
        let again = Mandrill.parse(events[0].raw.as_bytes()).unwrap();
        assert_eq!(again, events);
    }

    /// The derived vectors in the research samples (anymail's key and URLs).
    #[test]
    fn derived_signature_vectors_verify_and_one_changed_byte_fails() {
        let vectors: Value = serde_json::from_slice(&fixture("signature_vectors.txt")).unwrap();
        let vectors = vectors.as_array().unwrap();
        assert_eq!(vectors.len(), 6);
        for vector in vectors {
            let name = vector["sample"].as_str().unwrap().replace("mandrill-", "");
            // The sample files end with a newline that the signed body did not have.
            let mut body = fixture(&name.replace('-', "_"));
            assert_eq!(body.pop(), Some(b'\n'));
            let key = vector["webhook_key"].as_str().unwrap().to_owned();
            let url = vector["webhook_url_as_configured_in_mandrill"]
                .as_str()
                .unwrap()
                .to_owned();
            let expected = vector["X-Mandrill-Signature"].as_str().unwrap();
            let ctx_auth = |headers: &[(String, String)], body: &[u8]| {
                let secrets = [key.clone()];
                let urls = [url.clone()];
                let clock = FixedClock(0);
                Mandrill.authenticate(
                    &Inbound {
                        headers,
                        query: &[],
                        body,
                    },
                    &AuthContext {
                        secrets: &secrets,
                        freshness: Freshness::Disabled,
                        clock: &clock,
                        webhook_urls: &urls,
                        certificates_dir: None,
                    },
                )
            };
            assert_eq!(ctx_auth(&header(expected), &body), Ok("hmac-sha1"), "{url}");
            let mut changed = body.clone();
            let at = changed.len() / 2;
            changed[at] = if changed[at] == b'A' { b'B' } else { b'A' };
            assert_eq!(
                ctx_auth(&header(expected), &changed),
                Err(AuthError::BadSignature),
                "{url}"
            );
        }
    }

    #[test]
    fn an_empty_batch_is_a_control_request() {
        let inbound = |body: &'static [u8]| Inbound {
            headers: &[],
            query: &[],
            body,
        };
        assert_eq!(
            Mandrill.control(&inbound(b"mandrill_events=%5B%5D")),
            Some(Control {
                kind: "empty_batch"
            })
        );
        assert_eq!(
            Mandrill.control(&inbound(b"mandrill_events=[ ]")),
            Some(Control {
                kind: "empty_batch"
            })
        );
        assert_eq!(Mandrill.control(&inbound(b"mandrill_events=%5B1%5D")), None);
        assert_eq!(Mandrill.control(&inbound(b"other=%5B%5D")), None);
    }

    #[test]
    fn streaming_decoding_matches_form_urlencoded() {
        let raw = "a+b%20c%zz%2".repeat(2_000) + &"%E6%B5%8B".repeat(3_000);
        let ours = decode_component(raw.as_bytes());
        let theirs: String = form_urlencoded::parse(format!("k={raw}").as_bytes())
            .next()
            .unwrap()
            .1
            .into_owned();
        assert_eq!(ours, theirs.into_bytes());
    }

    #[test]
    fn refreshed_samples_are_new_and_tagged() {
        let mut sample: Value = serde_json::from_slice(&fixture("example_batch_all.json")).unwrap();
        Mandrill.refresh_sample(&mut sample, 1_795_342_530_123, "run-1");
        let events = Mandrill.parse(sample.to_string().as_bytes()).unwrap();
        assert!(events.iter().all(|e| e.event_time_ms == 1_795_342_530_000));
        assert_eq!(
            events[0].metadata.get(TEST_TAG).map(String::as_str),
            Some("run-1")
        );
    }

    #[test]
    fn a_thousand_event_batch_parses_in_linear_time() {
        let one: Value = serde_json::from_slice(&fixture("example_open.json")).unwrap();
        let batch: Vec<Value> = (0..1000)
            .map(|i| {
                let mut e = one[0].clone();
                e["_id"] = Value::from(format!("id-{i}"));
                e
            })
            .collect();
        let json = serde_json::to_vec(&batch).unwrap();
        let signed = Mandrill.sign("key-one", 0, &json);
        let started = std::time::Instant::now();
        assert_eq!(auth(&signed.headers, &signed.body), Ok("hmac-sha1"));
        let events = Mandrill.parse(&signed.body).unwrap();
        assert_eq!(events.len(), 1000);
        assert_eq!(events[999].message_id, "id-999");
        assert!(started.elapsed().as_secs() < 5, "{:?}", started.elapsed());
    }

    /// One event of a batch that does not normalize is quarantined alone; the
    /// batch's others are stored exactly as from the valid batch.
    #[test]
    fn one_bad_event_in_a_batch_is_quarantined_alone() {
        use crate::providers::json::batch_check::{self, OneBroken, remove};
        OneBroken {
            provider: &Mandrill,
            items: batch_check::fixture_items("mandrill", &["example_batch_all"]),
            body: form,
            broken: 4,
            damage: |e| remove(e, "ts"),
            code: "missing_field",
            repair: |v, item| v["ts"] = item["ts"].clone(),
        }
        .check();
    }

    /// A batch as Mandrill posts it: the array form-encoded as `mandrill_events`.
    fn form(items: &[Value]) -> Vec<u8> {
        let events = serde_json::to_vec(items).unwrap();
        let encoded: String = form_urlencoded::byte_serialize(&events).collect();
        format!("mandrill_events={encoded}").into_bytes()
    }

    /// A request's events come only from the signed `mandrill_events` field,
    /// event by event too: a body of bare JSON events (which `parse` takes as
    /// stored raw) is quarantined whole, none of it stored.
    #[test]
    fn parse_each_reads_only_the_signed_field() {
        let body = fixture("example_batch_all.json");
        let parsed = Mandrill.parse_each(&Inbound {
            headers: &[],
            query: &[],
            body: &body,
        });
        assert!(parsed.events.is_empty());
        let [unparsed] = parsed.unparsed.as_slice() else {
            panic!("{:?}", parsed.unparsed);
        };
        assert_eq!(
            (unparsed.code, unparsed.body.as_slice()),
            ("wrong_shape", &body[..])
        );
    }
}
