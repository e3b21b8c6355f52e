//! Mailgun (JSON webhooks, 2018 on): one event per POST, `{"signature": {...},
//! "event-data": {...}}`. The signature is inside the body: hex HMAC-SHA256,
//! keyed with the **HTTP webhook signing key** (not the API key), over
//! `timestamp + token`. It does not cover the event data, so every signature
//! object that verifies is bound, by its digest, to the first body it
//! authenticated ([`Provider::replay_claim`]). Event time is
//! `event-data.timestamp`, Unix seconds as a decimal with microseconds; the id is
//! `event-data.message.headers.message-id` without angle brackets.
//!
//! # Work before authentication
//!
//! The signature has to be found in the body before the body can be trusted. That
//! scan ([`locate`]) is one pass of serde_json's streaming parser over the raw
//! bytes: the top-level members other than `signature` and `parent-signature`
//! (the event data) are skipped with `IgnoredAny`, which checks their syntax and
//! allocates nothing; the three signature fields are borrowed from the body, never
//! copied (an escaped string is refused rather than unescaped). So the scan is
//! linear in the body, allocates a constant amount, and the body's size is
//! already capped by the app (`MAX_BODY_BYTES`) before any provider sees it. Only
//! after a signature verifies is the body parsed into values.

use std::fmt;

use hmac::{Hmac, Mac};
use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::json::{self, ParseError};
use super::{AuthContext, AuthScheme, Inbound, Provider, Signed};
use crate::auth::{AuthError, Freshness, check_timestamp, constant_time_eq};
use crate::event::{BounceType, EmailEvent, EventType};
use crate::store::ReplayClaim;

/// Mailgun webhooks.
pub struct Mailgun;

/// The body member holding the signature object.
const SIGNATURE_OBJECT: &str = "signature";
/// The signature object Mailgun adds to a subaccount's events, keyed with the
/// primary account's signing key.
const PARENT_SIGNATURE_OBJECT: &str = "parent-signature";
/// The member of the signature object holding the hex digest.
const SIGNATURE_FIELD: &str = "signature";
/// Longest token accepted (Mailgun's are 50 characters). It becomes part of the
/// replay claim's key, which must stay far below DynamoDB's 2 KB key limit.
const MAX_TOKEN_BYTES: usize = 256;
/// Most digits a signed timestamp may have: Unix seconds until the year 2286.
/// Ten digits stay below 10^11, where the shared freshness check would start
/// reading a value as milliseconds.
const MAX_TIMESTAMP_DIGITS: usize = 10;
/// How long a replay claim outlives the end of the freshness window; TTL deletion
/// is lazy anyway, and a claim kept longer only refuses more.
const CLAIM_MARGIN_SECS: i64 = 3600;
/// The window a claim covers when freshness is disabled (development only).
const UNBOUNDED_WINDOW_SECS: i64 = 86_400;
/// A signature that matches no key: the log line says which key it must be.
const KEY_MISMATCH: AuthError = AuthError::SignatureMismatch {
    hint: "MAILGUN_SIGNING_KEYS must hold the HTTP webhook signing key (Mailgun: Settings → API Security), not the API key",
};
/// The `user-variables` key a test sender's run id goes in.
const TEST_TAG: &str = "mailhooks_test";

impl Provider for Mailgun {
    fn name(&self) -> &'static str {
        "mailgun"
    }

    fn secrets_env(&self) -> &'static str {
        "MAILGUN_SIGNING_KEYS"
    }

    fn scheme(&self) -> AuthScheme {
        AuthScheme::SignedBody {
            object: SIGNATURE_OBJECT,
            signature: SIGNATURE_FIELD,
        }
    }

    fn authenticate(
        &self,
        request: &Inbound<'_>,
        ctx: &AuthContext<'_>,
    ) -> Result<&'static str, AuthError> {
        verify(request, ctx)
    }

    /// One claim per signature object that verifies, keyed by its digest and
    /// bound to this body. Freshness is not checked again: `authenticate` did,
    /// and a second clock reading must not decide whether a claim is made.
    fn replay_claim(&self, request: &Inbound<'_>, ctx: &AuthContext<'_>) -> Vec<ReplayClaim> {
        let Some(located) = locate(request.body) else {
            return Vec::new();
        };
        let now_secs = ctx.clock.now_ms().div_euclid(1000);
        let window = match ctx.freshness {
            Freshness::Within(secs) => i64::try_from(secs).unwrap_or(i64::MAX / 4),
            Freshness::Disabled => UNBOUNDED_WINDOW_SECS,
        };
        let body_sha256 = hex::encode(Sha256::digest(request.body));
        candidates(&located)
            .filter_map(|(_, slot)| check_signature(slot, ctx).ok())
            .map(|verified| ReplayClaim {
                provider: self.name(),
                nonce: hex::encode(verified.digest),
                body_sha256: body_sha256.clone(),
                expires_at_secs: verified
                    .timestamp_secs
                    .max(now_secs)
                    .saturating_add(window)
                    .saturating_add(CLAIM_MARGIN_SECS),
            })
            .collect()
    }

    fn parse(&self, body: &[u8]) -> Result<Vec<EmailEvent>, ParseError> {
        let value = json::parse_body(body)?;
        let root = json::as_object(&value, "a Mailgun webhook")?;
        let data = root.get("event-data").ok_or(ParseError::MissingField {
            index: 0,
            field: "event-data",
        })?;
        json::validate(vec![parse_event(data)?])
    }

    fn local_secret(&self) -> &'static str {
        "local-mailgun-signing-key"
    }

    /// The body with a fresh `signature` object. The token is derived from the
    /// key, time and body ([`test_token`]), so samples are reproducible and one
    /// body signed twice with one key at one time is a retry. A JSON
    /// value that is not an object is wrapped as the `event-data`; bytes that are
    /// not JSON are sent as they are (unsigned).
    fn sign(&self, secret: &str, unix_secs: i64, body: &[u8]) -> Signed {
        let Ok(value) = serde_json::from_slice::<Value>(body) else {
            return Signed {
                body: body.to_vec(),
                ..Signed::default()
            };
        };
        let mut envelope = match value {
            Value::Object(map) => map,
            other => Map::from_iter([("event-data".to_owned(), other)]),
        };
        let timestamp = unix_secs.to_string();
        let token = test_token(secret, &timestamp, body);
        let signature = hex::encode(hmac_digest(secret, &timestamp, &token));
        envelope.insert(
            SIGNATURE_OBJECT.to_owned(),
            json!({"timestamp": timestamp, "token": token, "signature": signature}),
        );
        Signed {
            body: serde_json::to_vec(&envelope).unwrap_or_else(|_| body.to_vec()),
            ..Signed::default()
        }
    }

    fn refresh_sample(&self, sample: &mut Value, now_ms: i64, run_id: &str) {
        let Some(data) = sample.get_mut("event-data").and_then(Value::as_object_mut) else {
            return;
        };
        // Whole milliseconds as decimal seconds: read back exactly (see `seconds_to_ms`).
        let seconds = format!("{}.{:03}", now_ms.div_euclid(1000), now_ms.rem_euclid(1000));
        if let Ok(number) = seconds.parse::<serde_json::Number>() {
            data.insert("timestamp".into(), Value::Number(number));
        }
        match data.get_mut("user-variables") {
            Some(Value::Object(vars)) => {
                vars.insert(TEST_TAG.into(), Value::from(run_id));
            }
            _ => {
                data.insert("user-variables".into(), json!({ TEST_TAG: run_id }));
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Authentication

/// A signature object that verified against one of the keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Verified {
    /// The signed timestamp, Unix seconds.
    timestamp_secs: i64,
    /// The verified digest (the hex decoded, so upper- and lower-case spellings
    /// of one signature agree): the replay claim's nonce. Unlike the token, it
    /// fixes where the timestamp ends and the token begins, so no split of the
    /// signed string into another timestamp and token escapes the claim.
    digest: [u8; 32],
}

/// The signature objects present, in the order they are tried, each with the
/// name the log gives it.
fn candidates<'a>(
    located: &Located<'a>,
) -> impl Iterator<Item = (&'static str, SignatureSlot<'a>)> {
    [
        ("hmac-sha256", located.signature),
        ("parent-hmac-sha256", located.parent),
    ]
    .into_iter()
    .filter_map(|(variant, slot)| Some((variant, slot?)))
}

/// Finds the signature objects, verifies one against every key, then checks the
/// window on the timestamp that was signed; names the object that matched.
fn verify(request: &Inbound<'_>, ctx: &AuthContext<'_>) -> Result<&'static str, AuthError> {
    if ctx.secrets.is_empty() {
        return Err(AuthError::NotConfigured);
    }
    if is_form(request) {
        return Err(AuthError::UnsupportedFormat(
            "legacy form-encoded Mailgun webhook; configure the webhook under Sending → Webhooks (JSON)",
        ));
    }
    let located = locate(request.body).ok_or(AuthError::MissingBodySignature(SIGNATURE_OBJECT))?;
    if located.duplicate {
        return Err(AuthError::DuplicateBodySignature(SIGNATURE_OBJECT));
    }
    let mut first_error = None;
    for (variant, slot) in candidates(&located) {
        match check_signature(slot, ctx) {
            Ok(verified) => {
                check_timestamp(
                    &verified.timestamp_secs.to_string(),
                    ctx.freshness,
                    ctx.clock,
                )?;
                return Ok(variant);
            }
            Err(err) => {
                first_error.get_or_insert(err);
            }
        }
    }
    Err(first_error.unwrap_or(AuthError::MissingBodySignature(SIGNATURE_OBJECT)))
}

/// Verifies one signature object against every configured key (each compared in
/// constant time).
fn check_signature(slot: SignatureSlot<'_>, ctx: &AuthContext<'_>) -> Result<Verified, AuthError> {
    let (Some(timestamp), Some(token), Some(signature)) =
        (slot.timestamp, slot.token, slot.signature)
    else {
        return Err(AuthError::BadSignature);
    };
    if token.is_empty() || token.len() > MAX_TOKEN_BYTES {
        return Err(AuthError::BadSignature);
    }
    let timestamp_secs = parse_timestamp(timestamp)?;
    let Ok(decoded) = hex::decode(signature) else {
        return Err(AuthError::BadSignature);
    };
    // Hex of another length matches no key, as a wrong digest would not.
    let Ok(digest) = <[u8; 32]>::try_from(decoded) else {
        return Err(KEY_MISMATCH);
    };
    let found = ctx.secrets.iter().fold(false, |found, secret| {
        found | constant_time_eq(&hmac_digest(secret, timestamp, token), &digest)
    });
    if found {
        Ok(Verified {
            timestamp_secs,
            digest,
        })
    } else {
        Err(KEY_MISMATCH)
    }
}

/// The signed timestamp: 1 to 10 ASCII digits, Unix seconds. Anything else
/// (a sign, milliseconds, more digits) is refused before any digest: the signed
/// string has no separator, so a longer timestamp could take digits from the
/// start of the token and still verify.
fn parse_timestamp(timestamp: &str) -> Result<i64, AuthError> {
    if timestamp.is_empty()
        || timestamp.len() > MAX_TIMESTAMP_DIGITS
        || !timestamp.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(AuthError::MalformedTimestamp);
    }
    timestamp.parse().map_err(|_| AuthError::MalformedTimestamp)
}

/// A legacy webhook: form fields instead of JSON (pre-2018 "legacy" webhooks).
fn is_form(request: &Inbound<'_>) -> bool {
    request.header_values("content-type").iter().any(|v| {
        let v = v.trim_start().to_ascii_lowercase();
        v.starts_with("application/x-www-form-urlencoded") || v.starts_with("multipart/form-data")
    })
}

/// A test sender's token: 50 hex digits like Mailgun's, HMAC-derived from the key,
/// time and body, so it is reproducible, differs per key (two keys never sign
/// one token, as with Mailgun) and reveals nothing about the key.
fn test_token(key: &str, timestamp: &str, body: &[u8]) -> String {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(key.as_bytes()).unwrap_or_else(|_| unreachable!());
    mac.update(b"mailhooks test token\0");
    mac.update(timestamp.as_bytes());
    mac.update(b"\0");
    mac.update(body);
    let mut token = hex::encode(mac.finalize().into_bytes());
    token.truncate(50);
    token
}

/// HMAC-SHA256 keyed with the signing key over `timestamp + token`.
fn hmac_digest(key: &str, timestamp: &str, token: &str) -> [u8; 32] {
    // HMAC takes keys of any length, so this cannot fail.
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(key.as_bytes()).unwrap_or_else(|_| unreachable!());
    mac.update(timestamp.as_bytes());
    mac.update(token.as_bytes());
    mac.finalize().into_bytes().into()
}

/// Hex HMAC-SHA256 of `timestamp + token`, as Mailgun signs (for tests and tools).
pub fn signature_hex(key: &str, timestamp: &str, token: &str) -> String {
    hex::encode(hmac_digest(key, timestamp, token))
}

/// The signature objects found at the body's top level.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Located<'a> {
    signature: Option<SignatureSlot<'a>>,
    parent: Option<SignatureSlot<'a>>,
    /// Either object appeared more than once (a parser may keep either copy).
    duplicate: bool,
}

/// One signature object's fields, borrowed from the body; `None` where a field
/// is absent, repeated, escaped or not a string.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct SignatureSlot<'a> {
    timestamp: Option<&'a str>,
    token: Option<&'a str>,
    signature: Option<&'a str>,
}

/// Scans the body's top level for the signature objects (see the module docs:
/// one streaming pass, nothing allocated). `None` when the body is not one JSON
/// object.
fn locate(body: &[u8]) -> Option<Located<'_>> {
    let mut reader = serde_json::Deserializer::from_slice(body);
    let located = Located::deserialize(&mut reader).ok()?;
    reader.end().ok()?;
    Some(located)
}

impl<'de> Deserialize<'de> for Located<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(LocatedVisitor)
    }
}

struct LocatedVisitor;

impl<'de> Visitor<'de> for LocatedVisitor {
    type Value = Located<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut located = Located::default();
        while let Some(key) = map.next_key::<TopKey>()? {
            let slot = match key {
                TopKey::Signature => &mut located.signature,
                TopKey::Parent => &mut located.parent,
                TopKey::Other => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            let value = map.next_value::<SlotValue<'de>>()?.0;
            if slot.is_some() {
                located.duplicate = true;
            }
            *slot = value.or(Some(SignatureSlot::default()));
        }
        Ok(located)
    }
}

/// A top-level key, reduced to what the scan looks for.
enum TopKey {
    Signature,
    Parent,
    Other,
}

impl<'de> Deserialize<'de> for TopKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = TopKey;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_str<E: de::Error>(self, key: &str) -> Result<TopKey, E> {
                Ok(match key {
                    SIGNATURE_OBJECT => TopKey::Signature,
                    PARENT_SIGNATURE_OBJECT => TopKey::Parent,
                    _ => TopKey::Other,
                })
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// A signature object's value: its fields when it is an object, `None` for any
/// other JSON value (skipped, not built).
struct SlotValue<'a>(Option<SignatureSlot<'a>>);

impl<'de> Deserialize<'de> for SlotValue<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(SlotVisitor)
    }
}

struct SlotVisitor;

impl<'de> Visitor<'de> for SlotVisitor {
    type Value = SlotValue<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a signature object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut slot = SignatureSlot::default();
        let mut repeated = false;
        while let Some(key) = map.next_key::<FieldKey>()? {
            let field = match key {
                FieldKey::Timestamp => &mut slot.timestamp,
                FieldKey::Token => &mut slot.token,
                FieldKey::Signature => &mut slot.signature,
                FieldKey::Other => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            let value = map.next_value::<BorrowedText<'de>>()?.0;
            repeated |= field.is_some();
            *field = value;
        }
        if repeated {
            // Which copy was signed is ambiguous: verify nothing.
            slot = SignatureSlot::default();
        }
        Ok(SlotValue(Some(slot)))
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(SlotValue(None))
    }

    fn visit_borrowed_str<E: de::Error>(self, _: &'de str) -> Result<Self::Value, E> {
        Ok(SlotValue(None))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(SlotValue(None))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(SlotValue(None))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(SlotValue(None))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(SlotValue(None))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(SlotValue(None))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(SlotValue(None))
    }
}

/// A key of the signature object.
enum FieldKey {
    Timestamp,
    Token,
    Signature,
    Other,
}

impl<'de> Deserialize<'de> for FieldKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = FieldKey;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_str<E: de::Error>(self, key: &str) -> Result<FieldKey, E> {
                Ok(match key {
                    "timestamp" => FieldKey::Timestamp,
                    "token" => FieldKey::Token,
                    SIGNATURE_FIELD => FieldKey::Signature,
                    _ => FieldKey::Other,
                })
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// A string borrowed straight from the body; anything else (an escaped string,
/// which would need a copy, or another type) is `None`.
struct BorrowedText<'a>(Option<&'a str>);

impl<'de> Deserialize<'de> for BorrowedText<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor;
        impl<'de> Visitor<'de> for TextVisitor {
            type Value = BorrowedText<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(BorrowedText(Some(v)))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
                Ok(BorrowedText(None))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(BorrowedText(None))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(BorrowedText(None))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(BorrowedText(None))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(BorrowedText(None))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(BorrowedText(None))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(BorrowedText(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(BorrowedText(None))
            }
        }
        deserializer.deserialize_any(TextVisitor)
    }
}

// ---------------------------------------------------------------------------
// Mapping

/// Parses one `event-data` object into its event. The raw payload is
/// `{"event-data": ...}` only: the signature object differs on every delivery
/// attempt and must not change the content hash (nor is it worth keeping).
fn parse_event(value: &Value) -> Result<EmailEvent, ParseError> {
    let data = json::as_object(value, "event-data")?;
    let missing = |field| ParseError::MissingField { index: 0, field };
    let name = json::text(data, "event").ok_or_else(|| missing("event-data.event"))?;
    let message = json::object(data, "message");
    let headers = message.and_then(|m| json::object(m, "headers"));
    let message_id = headers
        .and_then(|h| json::text(h, "message-id"))
        .map(|id| strip_angle_brackets(&id).to_owned())
        .filter(|id| !id.is_empty())
        .ok_or_else(|| missing("event-data.message.headers.message-id"))?;
    let time = data
        .get("timestamp")
        .and_then(seconds_to_ms)
        .ok_or_else(|| missing("event-data.timestamp"))?;
    let severity = json::text(data, "severity");
    let (event_type, bounce_type) = classify(&name, severity.as_deref());

    let mut event = EmailEvent::new(
        "mailgun",
        event_type,
        name,
        message_id,
        time,
        json::canonical(&json!({ "event-data": value })),
    );
    event.bounce_type = bounce_type;
    event.recipient = json::text(data, "recipient")
        .or_else(|| {
            headers
                .and_then(|h| json::text(h, "to"))
                .and_then(|to| single_address(&to))
        })
        .map(|r| r.to_lowercase());
    let envelope = json::object(data, "envelope");
    event.subject = headers.and_then(|h| json::text(h, "subject"));
    event.sender = headers
        .and_then(|h| json::text(h, "from"))
        .or_else(|| envelope.and_then(|e| json::text(e, "sender")));
    event.url = json::text(data, "url");
    event.ip =
        json::text(data, "ip").or_else(|| envelope.and_then(|e| json::text(e, "sending-ip")));
    let client = json::object(data, "client-info");
    event.user_agent = client.and_then(|c| json::text(c, "user-agent"));
    add_failure(&mut event, data);
    add_metadata(&mut event, data);
    add_details(&mut event, data, client);
    Ok(event)
}

/// Mailgun's event name (and, for `failed`, its severity) in the shared vocabulary.
fn classify(name: &str, severity: Option<&str>) -> (EventType, Option<BounceType>) {
    match name {
        "accepted" => (EventType::Queued, None),
        "rejected" => (EventType::Rejected, None),
        "delivered" => (EventType::Delivered, None),
        "failed" => match severity {
            Some("permanent") => (EventType::Bounced, Some(BounceType::Hard)),
            Some("temporary") => (EventType::Deferred, None),
            _ => (EventType::Bounced, None),
        },
        "opened" => (EventType::Opened, None),
        "clicked" => (EventType::Clicked, None),
        "unsubscribed" => (EventType::Unsubscribed, None),
        "complained" => (EventType::Complained, None),
        // A message kept by an inbound route's `store()` action.
        "stored" => (EventType::Inbound, None),
        _ => (EventType::Unknown, None),
    }
}

/// The reason and SMTP code of a failure or rejection.
fn add_failure(event: &mut EmailEvent, data: &Map<String, Value>) {
    let status = json::object(data, "delivery-status");
    if let Some(status) = status {
        event.status_code = json::text(status, "code");
    }
    let failed = matches!(
        event.event_type,
        EventType::Bounced | EventType::Deferred | EventType::Rejected
    );
    if failed {
        event.reason = status
            .and_then(|s| json::text(s, "description").or_else(|| json::text(s, "message")))
            .or_else(|| json::object(data, "reject").and_then(|r| json::text(r, "reason")));
    } else if let Some(message) = status.and_then(|s| json::text(s, "message")) {
        event.details.insert("delivery_message".into(), message);
    }
}

/// `user-variables` (values as text, nested values as JSON) and `tags` (a JSON
/// array, under `tags` unless a user variable already has that name).
fn add_metadata(event: &mut EmailEvent, data: &Map<String, Value>) {
    if let Some(vars) = json::object(data, "user-variables") {
        for (name, v) in vars {
            let text = match v {
                Value::Object(_) | Value::Array(_) => Some(json::canonical(v)),
                scalar => json::value_text(scalar),
            };
            if let Some(text) = text {
                event.metadata.insert(name.clone(), text);
            }
        }
    }
    if let Some(tags) = data
        .get("tags")
        .filter(|t| t.as_array().is_some_and(|a| !a.is_empty()))
    {
        event
            .metadata
            .entry("tags".into())
            .or_insert_with(|| json::canonical(tags));
    }
}

/// The documented fields the normalized ones do not hold.
fn add_details(
    event: &mut EmailEvent,
    data: &Map<String, Value>,
    client: Option<&Map<String, Value>>,
) {
    for (field, key) in [
        ("id", "event_id"),
        ("severity", "severity"),
        ("reason", "failure_reason"),
        ("log-level", "log_level"),
        ("recipient-domain", "recipient_domain"),
    ] {
        if let Some(v) = json::text(data, field) {
            event.details.insert(key.into(), v);
        }
    }
    let groups = [
        (
            json::object(data, "delivery-status"),
            &[
                ("attempt-no", "attempt_no"),
                ("mx-host", "mx_host"),
                ("retry-seconds", "retry_seconds"),
            ][..],
        ),
        (
            json::object(data, "geolocation"),
            &[
                ("country", "country"),
                ("region", "region"),
                ("city", "city"),
            ][..],
        ),
        (
            client,
            &[
                ("client-type", "client_type"),
                ("client-os", "client_os"),
                ("client-name", "client_name"),
                ("device-type", "device_type"),
            ][..],
        ),
    ];
    for (group, fields) in groups {
        let Some(group) = group else { continue };
        for (field, key) in fields {
            if let Some(v) = json::text(group, field) {
                event.details.insert((*key).into(), v);
            }
        }
    }
}

/// A message id without the angle brackets of its header form.
fn strip_angle_brackets(id: &str) -> &str {
    let id = id.trim();
    id.strip_prefix('<')
        .and_then(|rest| rest.strip_suffix('>'))
        .unwrap_or(id)
        .trim()
}

/// The address of a `To` header naming exactly one (`a@b`, `Name <a@b>`); `None`
/// for lists (a `rejected` event carries no `recipient`).
fn single_address(to: &str) -> Option<String> {
    if to.contains(',') {
        return None;
    }
    let address = match (to.rfind('<'), to.rfind('>')) {
        (Some(open), Some(close)) if open < close => &to[open + 1..close],
        _ => to,
    };
    let address = address.trim();
    (address.contains('@') && !address.contains(char::is_whitespace)).then(|| address.to_owned())
}

/// Unix seconds with a decimal fraction (`1534108637.153125`) as milliseconds,
/// exactly: from the number's decimal text, never by float arithmetic (the
/// fraction of `1534108637.007` as a float, times 1000, is `6.99996…`). The fraction is truncated
/// to whole milliseconds. Integers and numeric strings are accepted too.
fn seconds_to_ms(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => match n.as_i64() {
            Some(secs) => secs.checked_mul(1000),
            // serde_json prints a float as the shortest text that reads back to
            // it: Mailgun's own digits, for their 16-17 significant digits.
            None => decimal_seconds_to_ms(&n.to_string()),
        },
        Value::String(s) => decimal_seconds_to_ms(s.trim()),
        _ => None,
    }
}

/// `<digits>[.<digits>]` seconds as milliseconds (no sign, no exponent).
fn decimal_seconds_to_ms(text: &str) -> Option<i64> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || whole.len() > 12 || !digits(whole) || !digits(fraction) {
        return None;
    }
    let secs: i64 = whole.parse().ok()?;
    let millis = fraction
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(3)
        .fold(0_i64, |acc, b| acc * 10 + i64::from(b - b'0'));
    secs.checked_mul(1000)?.checked_add(millis)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{Clock, FixedClock};
    use crate::providers::test_support::map;

    fn body(name: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/tests/fixtures/mailgun/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    fn parse_one(name: &str) -> EmailEvent {
        let mut events = Mailgun.parse(&body(&format!("{name}.json"))).unwrap();
        assert_eq!(events.len(), 1, "{name}");
        events.remove(0)
    }

    /// The event a fixture must become: these fields, its `event-data` as raw.
    fn expected(
        name: &str,
        (event_type, provider_event): (EventType, &str),
        message_id: &str,
        recipient: Option<&str>,
        event_time_ms: i64,
    ) -> EmailEvent {
        let value: Value = serde_json::from_slice(&body(&format!("{name}.json"))).unwrap();
        let mut event = EmailEvent::new(
            "mailgun",
            event_type,
            provider_event,
            message_id,
            event_time_ms,
            json::canonical(&json!({"event-data": value["event-data"]})),
        );
        event.recipient = recipient.map(str::to_owned);
        event
    }

    #[test]
    fn delivered() {
        let mut want = expected(
            "delivered",
            (EventType::Delivered, "delivered"),
            "20180812211713.1.DF5966851B4BAA99@example.org",
            Some("recipient@example.com"),
            1_534_108_637_153,
        );
        want.status_code = Some("250".into());
        want.subject = Some("Testing".into());
        want.sender = Some("test@example.org".into());
        want.ip = Some("333.123.123.200".into());
        want.details = map(&[
            ("attempt_no", "1"),
            ("delivery_message", "OK"),
            ("event_id", "hTWCTD81RtiDN-..."),
            ("log_level", "info"),
            ("mx_host", "smtp-in.example.com"),
            ("recipient_domain", "example.com"),
        ]);
        assert_eq!(parse_one("delivered"), want);
        let docs = parse_one("docs_delivered");
        assert_eq!(
            (docs.event_type, docs.event_time_ms),
            (EventType::Delivered, 1_529_692_199_626)
        );
        assert_eq!(docs.recipient.as_deref(), Some("john@example.com"));
    }

    #[test]
    fn accepted_is_queued() {
        let event = parse_one("docs_accepted");
        assert_eq!(event.event_type, EventType::Queued);
        assert_eq!(
            event.message_id,
            "20180622182958.1.48906CB188F1A454@exmple.org"
        );
        assert_eq!(event.recipient.as_deref(), Some("team@example.org"));
        assert_eq!(event.event_time_ms, 1_529_692_198_641);
        assert_eq!(event.bounce_type, None);
    }

    #[test]
    fn rejected_takes_its_recipient_from_the_to_header() {
        let event = parse_one("docs_rejected");
        assert_eq!(event.event_type, EventType::Rejected);
        assert_eq!(event.recipient.as_deref(), Some("joan@example.org"));
        assert_eq!(event.event_time_ms, 1_529_704_976_104);
        assert!(event.reason.unwrap().starts_with("Sandbox subdomains"));
    }

    #[test]
    fn permanent_failures_are_hard_bounces() {
        let event = parse_one("docs_failed_permanent");
        assert_eq!(
            (event.event_type, event.bounce_type),
            (EventType::Bounced, Some(BounceType::Hard))
        );
        assert_eq!(
            event.message_id,
            "20180622211249.1.2A6098970A380E12@example.org"
        );
        assert_eq!(event.recipient.as_deref(), Some("slava@mailgun.com"));
        assert_eq!(event.event_time_ms, 1_529_701_969_818);
        assert_eq!(event.status_code.as_deref(), Some("605"));
        assert_eq!(
            event.reason.as_deref(),
            Some("Not delivering to previously bounced address")
        );
        assert_eq!(
            event.details.get("failure_reason").map(String::as_str),
            Some("suppress-bounce")
        );

        let delayed = parse_one("docs_failed_permanent_delayed");
        assert_eq!(
            (delayed.event_type, delayed.bounce_type),
            (EventType::Bounced, Some(BounceType::Hard))
        );
        // 17 significant digits: still exact.
        assert_eq!(delayed.event_time_ms, 1_666_214_138_404);
        assert_eq!(delayed.recipient.as_deref(), Some("christest123@test.com"));
    }

    #[test]
    fn temporary_failures_are_deferred() {
        let event = parse_one("failed_temporary_greylisted");
        assert_eq!(
            (event.event_type, event.bounce_type),
            (EventType::Deferred, None)
        );
        assert_eq!(
            event.message_id,
            "20180812214638.1.4A7D468E9BC18C5D@example.org"
        );
        assert_eq!(
            event.recipient.as_deref(),
            Some("undeliverable@mx.example.com")
        );
        assert_eq!(event.event_time_ms, 1_534_111_899_659);
        assert_eq!(
            event.details.get("failure_reason").map(String::as_str),
            Some("greylisted")
        );
        let docs = parse_one("docs_failed_temporary");
        assert_eq!(docs.event_type, EventType::Deferred);
        assert_eq!(docs.event_time_ms, 1_665_066_523_871);
    }

    #[test]
    fn opened() {
        let event = parse_one("opened");
        assert_eq!(event.event_type, EventType::Opened);
        assert_eq!(
            event.message_id,
            "20180812213139.1.BC6694A917BB7E6A@example.org"
        );
        assert_eq!(event.recipient.as_deref(), Some("recipient@example.com"));
        assert_eq!(event.event_time_ms, 1_534_109_600_089);
        let docs = parse_one("docs_opened");
        assert_eq!(docs.ip.as_deref(), Some("111.111.111.111"));
        assert!(docs.user_agent.unwrap().starts_with("Mozilla/5.0 (iPhone"));
        assert_eq!(docs.details.get("city").map(String::as_str), Some("Austin"));
        assert_eq!(
            docs.details.get("device_type").map(String::as_str),
            Some("mobile")
        );
        assert_eq!(docs.event_time_ms, 1_377_047_343_042);
    }

    #[test]
    fn clicked() {
        let event = parse_one("docs_clicked");
        assert_eq!(event.event_type, EventType::Clicked);
        assert_eq!(
            event.message_id,
            "20130821085807.30688.67706@samples.mailgun.org"
        );
        assert_eq!(event.recipient.as_deref(), Some("recipient@example.com"));
        assert_eq!(event.event_time_ms, 1_377_075_564_094);
        assert!(event.url.is_some());
    }

    #[test]
    fn a_click_without_a_message_id_is_refused() {
        // anymail's clicked sample is an excerpt without `message`: no key to store it under.
        assert_eq!(
            Mailgun.parse(&body("clicked_without_message_id.txt")),
            Err(ParseError::MissingField {
                index: 0,
                field: "event-data.message.headers.message-id"
            })
        );
    }

    #[test]
    fn unsubscribed_and_complained() {
        for name in ["unsubscribed", "docs_unsubscribed"] {
            let event = parse_one(name);
            assert_eq!(event.event_type, EventType::Unsubscribed, "{name}");
            assert_eq!(
                event.message_id,
                "20130822232216.13966.79700@samples.mailgun.org"
            );
            assert_eq!(event.event_time_ms, 1_377_213_791_421);
            assert_eq!(event.recipient.as_deref(), Some("recipient@example.com"));
        }
        let event = parse_one("docs_complained");
        assert_eq!(event.event_type, EventType::Complained);
        assert_eq!(event.message_id, "20130718032413.263EE2E0926@example.com");
        assert_eq!(event.recipient.as_deref(), Some("foo@example.com"));
        assert_eq!(event.event_time_ms, 1_377_214_260_049);
    }

    fn minimal(event: &str, extra: Value) -> Value {
        let mut data = json!({
            "event": event,
            "timestamp": 1_700_000_000.5,
            "recipient": "Someone@Example.COM",
            "message": {"headers": {"message-id": "<abc@mg.example.com>"}},
        });
        if let (Some(data), Value::Object(extra)) = (data.as_object_mut(), extra) {
            data.extend(extra);
        }
        json!({"event-data": data})
    }

    fn parse_value(value: &Value) -> Result<EmailEvent, ParseError> {
        Mailgun
            .parse(value.to_string().as_bytes())
            .map(|mut events| events.remove(0))
    }

    #[test]
    fn ids_lose_their_brackets_and_recipients_their_case() {
        let event = parse_value(&minimal("delivered", json!({}))).unwrap();
        assert_eq!(event.message_id, "abc@mg.example.com");
        assert_eq!(event.recipient.as_deref(), Some("someone@example.com"));
        assert_eq!(event.event_time_ms, 1_700_000_000_500);
    }

    #[test]
    fn stored_is_inbound_and_unknown_names_are_unknown() {
        for (name, want) in [
            ("stored", EventType::Inbound),
            ("list_member_uploaded", EventType::Unknown),
            ("", EventType::Unknown),
        ] {
            let value = minimal(name, json!({}));
            match parse_value(&value) {
                Ok(event) => assert_eq!(event.event_type, want, "{name}"),
                // An empty name is no name at all.
                Err(err) => assert_eq!((name, err.code()), ("", "missing_field")),
            }
        }
        let unknown_severity = parse_value(&minimal("failed", json!({}))).unwrap();
        assert_eq!(
            (unknown_severity.event_type, unknown_severity.bounce_type),
            (EventType::Bounced, None)
        );
    }

    #[test]
    fn user_variables_and_tags_are_metadata() {
        let event = parse_value(&minimal(
            "opened",
            json!({"user-variables": {"order": 42, "nested": {"b": 1, "a": 2}}, "tags": ["t1", "t2"]}),
        ))
        .unwrap();
        assert_eq!(
            event.metadata,
            map(&[
                ("nested", r#"{"a":2,"b":1}"#),
                ("order", "42"),
                ("tags", r#"["t1","t2"]"#)
            ])
        );
    }

    #[test]
    fn event_times_are_exact_milliseconds() {
        for (value, want) in [
            (json!(1_534_108_637.153_125), Some(1_534_108_637_153)),
            (json!(1_534_108_637.153), Some(1_534_108_637_153)),
            (json!(1_534_108_637.007), Some(1_534_108_637_007)),
            (json!(1_534_108_637.999_999), Some(1_534_108_637_999)),
            (json!(1_534_108_637), Some(1_534_108_637_000)),
            (json!(1_534_108_637.0), Some(1_534_108_637_000)),
            (json!("1534108637.1"), Some(1_534_108_637_100)),
            (json!(-1.5), None),
            (json!(1.0e300), None),
            (json!("soon"), None),
            (json!(null), None),
        ] {
            assert_eq!(seconds_to_ms(&value), want, "{value}");
        }
        // What float arithmetic would have made of the last one.
        let float: f64 = 1_534_108_637.007;
        assert_eq!((float.fract() * 1000.0) as i64, 6);
    }

    #[test]
    fn the_raw_payload_leaves_the_signature_out() {
        let event = parse_one("delivered");
        assert!(event.raw.starts_with(r#"{"event-data":"#));
        assert!(
            !event
                .raw
                .contains("651869375b9df3c98fc15c4889b102119add1235c38fc92824")
        );
        // A re-delivery signed anew is the same event, with the same key.
        let resigned = Mailgun
            .sign("k", 1_800_000_000, &body("delivered.json"))
            .body;
        let again = &Mailgun.parse(&resigned).unwrap()[0];
        assert_eq!(
            crate::store::codec::sort_key(again),
            crate::store::codec::sort_key(&event)
        );
        // The stored raw re-normalizes to the same event.
        assert_eq!(Mailgun.parse(event.raw.as_bytes()).unwrap()[0], event);
    }

    // -- Authentication ----------------------------------------------------

    /// The signature vectors of `mailgun-signature-vectors.json` (computed with
    /// Python's hmac from anymail's test key and tokens).
    const VECTORS: [(&str, &str, &str); 2] = [
        (
            "1534108637",
            "651869375b9df3c98fc15c4889b102119add1235c38fc92824",
            "2a75affe24846ead9e37e614a5e7643a04abf4d5b49b34d224ede9af23a00ccc",
        ),
        (
            "1534109600",
            "1234567890abcdef1234567890abcdef",
            "55d7cdae3cff972e9a63ee432f780efcac70a05f9b55a7269f8346134532a122",
        ),
    ];
    const VECTOR_KEY: &str = "TEST_WEBHOOK_SIGNING_KEY";

    fn auth_at(body: &[u8], secrets: &[&str], now_secs: i64) -> Result<&'static str, AuthError> {
        let secrets: Vec<String> = secrets.iter().map(|s| (*s).to_owned()).collect();
        let clock = FixedClock(now_secs * 1000);
        let ctx = AuthContext {
            secrets: &secrets,
            freshness: Freshness::Within(300),
            clock: &clock,
            certificates_dir: None,
            webhook_urls: &[],
        };
        let headers = [("content-type".to_owned(), "application/json".to_owned())];
        Mailgun.authenticate(
            &Inbound {
                headers: &headers,
                query: &[],
                body,
            },
            &ctx,
        )
    }

    fn with_signature(timestamp: &str, token: &str, signature: &str) -> Vec<u8> {
        let mut value: Value = serde_json::from_slice(&body("delivered.json")).unwrap();
        value["signature"] =
            json!({"timestamp": timestamp, "token": token, "signature": signature});
        serde_json::to_vec(&value).unwrap()
    }

    #[test]
    fn the_signature_vectors_verify_and_a_one_byte_change_fails() {
        for (timestamp, token, signature) in VECTORS {
            assert_eq!(signature_hex(VECTOR_KEY, timestamp, token), signature);
            let now: i64 = timestamp.parse().unwrap();
            let good = with_signature(timestamp, token, signature);
            assert_eq!(
                auth_at(&good, &["other", VECTOR_KEY], now),
                Ok("hmac-sha256")
            );
            let mut flipped = signature.to_owned();
            flipped.replace_range(63..64, if signature.ends_with('0') { "1" } else { "0" });
            for bad in [
                with_signature(timestamp, token, &flipped),
                with_signature(timestamp, &format!("{token}x"), signature),
                with_signature(&(now + 1).to_string(), token, signature),
            ] {
                assert_eq!(auth_at(&bad, &[VECTOR_KEY], now), Err(KEY_MISMATCH));
            }
            assert_eq!(
                auth_at(&good, &["TEST_WEBHOOK_SIGNING_KEy"], now),
                Err(KEY_MISMATCH)
            );
        }
        // A wrong key is the usual cause: the log line says which key it must be.
        assert!(
            KEY_MISMATCH
                .to_string()
                .contains("HTTP webhook signing key")
        );
        assert_eq!(KEY_MISMATCH.code(), "bad_signature");
        // The delivered fixture carries the first vector.
        assert_eq!(
            auth_at(&body("delivered.json"), &[VECTOR_KEY], 1_534_108_637),
            Ok("hmac-sha256")
        );
    }

    #[test]
    fn signature_failures_are_classified() {
        let (ts, token, sig) = VECTORS[0];
        let now = 1_534_108_637;
        assert_eq!(auth_at(b"{}", &[], now), Err(AuthError::NotConfigured));
        for missing in [
            &b"{}"[..],
            b"[]",
            b"",
            b"not json",
            br#"{"event-data":{}}"#,
            br#"{"signature":null}"#,
        ] {
            assert_eq!(
                auth_at(missing, &[VECTOR_KEY], now).map_err(|e| e.code()),
                Err(if missing == br#"{"signature":null}"# {
                    "bad_signature"
                } else {
                    "missing_signature"
                }),
                "{}",
                String::from_utf8_lossy(missing)
            );
        }
        let sig_object = format!(r#"{{"timestamp":"{ts}","token":"{token}","signature":"{sig}"}}"#);
        let twice = format!(r#"{{"signature":{sig_object},"signature":{sig_object}}}"#);
        assert_eq!(
            auth_at(twice.as_bytes(), &[VECTOR_KEY], now),
            Err(AuthError::DuplicateBodySignature("signature"))
        );
        let inner_twice = format!(
            r#"{{"signature":{{"timestamp":"{ts}","token":"{token}","token":"{token}","signature":"{sig}"}}}}"#
        );
        assert_eq!(
            auth_at(inner_twice.as_bytes(), &[VECTOR_KEY], now),
            Err(AuthError::BadSignature)
        );
        let escaped = format!(
            r#"{{"signature":{{"timestamp":"{ts}","token":"\u0031{}","signature":"{sig}"}}}}"#,
            &token[1..]
        );
        assert_eq!(
            auth_at(escaped.as_bytes(), &[VECTOR_KEY], now),
            Err(AuthError::BadSignature)
        );
        let numeric = format!(
            r#"{{"signature":{{"timestamp":{ts},"token":"{token}","signature":"{sig}"}}}}"#
        );
        assert_eq!(
            auth_at(numeric.as_bytes(), &[VECTOR_KEY], now),
            Err(AuthError::BadSignature)
        );
        assert_eq!(
            auth_at(&with_signature("soon", token, sig), &[VECTOR_KEY], now),
            Err(AuthError::MalformedTimestamp)
        );
        assert_eq!(
            auth_at(&with_signature(ts, token, "zz"), &[VECTOR_KEY], now),
            Err(AuthError::BadSignature)
        );
        let long_token = "a".repeat(MAX_TOKEN_BYTES + 1);
        let long = with_signature(ts, &long_token, &signature_hex(VECTOR_KEY, ts, &long_token));
        assert_eq!(
            auth_at(&long, &[VECTOR_KEY], now),
            Err(AuthError::BadSignature)
        );
        assert_eq!(
            auth_at(&with_signature(ts, token, sig), &[VECTOR_KEY], now + 301),
            Err(AuthError::StaleTimestamp(300))
        );
    }

    #[test]
    fn a_subaccounts_parent_signature_verifies_with_the_primary_key() {
        let (ts, token, sig) = VECTORS[0];
        let mut value: Value = serde_json::from_slice(&body("delivered.json")).unwrap();
        value["signature"]["signature"] = json!("00".repeat(32));
        value["parent-signature"] = json!({"timestamp": ts, "token": token, "signature": sig});
        let signed = serde_json::to_vec(&value).unwrap();
        assert_eq!(
            auth_at(&signed, &[VECTOR_KEY], 1_534_108_637),
            Ok("parent-hmac-sha256")
        );
        value.as_object_mut().unwrap().remove("signature");
        let only_parent = serde_json::to_vec(&value).unwrap();
        assert_eq!(
            auth_at(&only_parent, &[VECTOR_KEY], 1_534_108_637),
            Ok("parent-hmac-sha256")
        );
        assert_eq!(
            auth_at(&only_parent, &["subaccount-key"], 1_534_108_637),
            Err(KEY_MISMATCH)
        );
    }

    #[test]
    fn legacy_form_webhooks_are_refused_with_their_own_code() {
        let secrets = vec!["k".to_owned()];
        let clock = FixedClock(0);
        let ctx = AuthContext {
            secrets: &secrets,
            freshness: Freshness::Disabled,
            clock: &clock,
            certificates_dir: None,
            webhook_urls: &[],
        };
        let headers = [(
            "content-type".to_owned(),
            "application/x-www-form-urlencoded".to_owned(),
        )];
        let request = Inbound {
            headers: &headers,
            query: &[],
            body: b"event=delivered&timestamp=1&token=t&signature=s",
        };
        assert_eq!(
            Mailgun.authenticate(&request, &ctx).map_err(|e| e.code()),
            Err("unsupported_format")
        );
    }

    #[test]
    fn sign_round_trips_and_is_reproducible() {
        let now = 1_795_342_530;
        let signed = Mailgun.sign("key", now, &body("opened.json"));
        assert_eq!(signed, Mailgun.sign("key", now, &body("opened.json")));
        assert!(signed.query.is_empty() && signed.headers.is_empty());
        assert_eq!(auth_at(&signed.body, &["key"], now), Ok("hmac-sha256"));
        let value: Value = serde_json::from_slice(&signed.body).unwrap();
        assert_eq!(value["signature"]["token"].as_str().map(str::len), Some(50));
        // Not an object: wrapped as the event data.
        let wrapped: Value =
            serde_json::from_slice(&Mailgun.sign("key", now, b"[1]").body).unwrap();
        assert_eq!(wrapped["event-data"], json!([1]));
    }

    /// A clock whose reading the test moves between two calls.
    struct MovingClock(std::sync::atomic::AtomicI64);

    impl Clock for MovingClock {
        fn now_ms(&self) -> i64 {
            self.0.load(std::sync::atomic::Ordering::SeqCst)
        }
    }

    fn ctx_at<'a>(secrets: &'a [String], clock: &'a dyn Clock) -> AuthContext<'a> {
        AuthContext {
            secrets,
            freshness: Freshness::Within(300),
            clock,
            certificates_dir: None,
            webhook_urls: &[],
        }
    }

    fn inbound(body: &[u8]) -> Inbound<'_> {
        Inbound {
            headers: &[],
            query: &[],
            body,
        }
    }

    #[test]
    fn the_replay_claim_binds_the_digest_to_the_body_past_the_window() {
        let now = 1_795_342_530;
        let signed = Mailgun.sign("key", now, &body("opened.json"));
        let secrets = vec!["key".to_owned()];
        let clock = FixedClock(now * 1000);
        let request = inbound(&signed.body);
        let claims = Mailgun.replay_claim(&request, &ctx_at(&secrets, &clock));
        let [claim] = claims.as_slice() else {
            panic!("one claim: {claims:?}");
        };
        let value: Value = serde_json::from_slice(&signed.body).unwrap();
        assert_eq!(
            claim.nonce,
            value["signature"]["signature"].as_str().unwrap()
        );
        assert_eq!(claim.body_sha256, hex::encode(Sha256::digest(&signed.body)));
        assert_eq!(claim.expires_at_secs, now + 300 + CLAIM_MARGIN_SECS);
        let wrong = vec!["other".to_owned()];
        assert!(
            Mailgun
                .replay_claim(&request, &ctx_at(&wrong, &clock))
                .is_empty()
        );
    }

    #[test]
    fn the_claim_does_not_depend_on_a_second_clock_reading() {
        // Authenticated one second before the window closes; the clock passes the
        // edge before the claim is derived: the claim is still made.
        let now = 1_795_342_530;
        let signed = Mailgun.sign("key", now, &body("opened.json"));
        let secrets = vec!["key".to_owned()];
        let clock = MovingClock((now + 299).saturating_mul(1000).into());
        let ctx = ctx_at(&secrets, &clock);
        let request = inbound(&signed.body);
        assert_eq!(Mailgun.authenticate(&request, &ctx), Ok("hmac-sha256"));
        clock
            .0
            .store((now + 400) * 1000, std::sync::atomic::Ordering::SeqCst);
        assert_eq!(
            Mailgun.authenticate(&request, &ctx),
            Err(AuthError::StaleTimestamp(300))
        );
        let claims = Mailgun.replay_claim(&request, &ctx);
        assert_eq!(claims.len(), 1, "{claims:?}");
        assert_eq!(
            claims[0].expires_at_secs,
            now + 400 + 300 + CLAIM_MARGIN_SECS
        );
    }

    #[test]
    fn a_timestamp_that_takes_digits_from_the_token_is_refused() {
        // The signed string has no separator: `1764683000` + `389f0c…` is also
        // `1764683000389` + `f0c…`. The longer value would read as milliseconds.
        let (ts, token) = (
            "1764683000",
            "389f0c5a1e2d3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d",
        );
        let sig = signature_hex(VECTOR_KEY, ts, token);
        let now = 1_764_683_010;
        assert_eq!(
            auth_at(&with_signature(ts, token, &sig), &[VECTOR_KEY], now),
            Ok("hmac-sha256")
        );
        let shifted = with_signature("1764683000389", &token[3..], &sig);
        assert_eq!(
            auth_at(&shifted, &[VECTOR_KEY], now),
            Err(AuthError::MalformedTimestamp)
        );
        for bad in [
            "",
            "-1",
            "+1764683000",
            " 1764683000",
            "1764683000.5",
            "17646830001",
        ] {
            let shifted = with_signature(bad, token, &signature_hex(VECTOR_KEY, bad, token));
            assert_eq!(
                auth_at(&shifted, &[VECTOR_KEY], now),
                Err(AuthError::MalformedTimestamp),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn every_split_and_spelling_of_one_signature_has_one_nonce() {
        // A shorter timestamp that gives its last digit to the token verifies
        // (when freshness is off) but claims the same digest.
        let (ts, token) = (
            "1764683000",
            "389f0c5a1e2d3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d",
        );
        let sig = signature_hex(VECTOR_KEY, ts, token);
        let secrets = vec![VECTOR_KEY.to_owned()];
        let clock = FixedClock(1_764_683_010_000);
        let ctx = AuthContext {
            freshness: Freshness::Disabled,
            ..ctx_at(&secrets, &clock)
        };
        let nonces = |body: &[u8]| -> Vec<String> {
            Mailgun
                .replay_claim(&inbound(body), &ctx)
                .into_iter()
                .map(|claim| claim.nonce)
                .collect()
        };
        let original = nonces(&with_signature(ts, token, &sig));
        assert_eq!(original, vec![sig.clone()]);
        let split = with_signature("176468300", &format!("0{token}"), &sig);
        assert_eq!(
            Mailgun.authenticate(&inbound(&split), &ctx),
            Ok("hmac-sha256")
        );
        assert_eq!(nonces(&split), original);
        let upper = with_signature(ts, token, &sig.to_ascii_uppercase());
        assert_eq!(
            Mailgun.authenticate(&inbound(&upper), &ctx),
            Ok("hmac-sha256")
        );
        assert_eq!(nonces(&upper), original);
    }

    #[test]
    fn both_signature_objects_that_verify_are_claimed() {
        let (ts, token, sig) = VECTORS[0];
        let parent_token = "f".repeat(50);
        let parent_sig = signature_hex("primary-key", ts, &parent_token);
        let mut value: Value = serde_json::from_slice(&with_signature(ts, token, sig)).unwrap();
        value["parent-signature"] =
            json!({"timestamp": ts, "token": parent_token, "signature": parent_sig});
        let both = serde_json::to_vec(&value).unwrap();
        let secrets = vec![VECTOR_KEY.to_owned(), "primary-key".to_owned()];
        let clock = FixedClock(1_534_108_637_000);
        let nonces: Vec<String> = Mailgun
            .replay_claim(&inbound(&both), &ctx_at(&secrets, &clock))
            .into_iter()
            .map(|claim| claim.nonce)
            .collect();
        assert_eq!(nonces, vec![sig.to_owned(), parent_sig.clone()]);
        // With one key configured, only the object it verifies is claimed.
        let only_primary = vec!["primary-key".to_owned()];
        let claims = Mailgun.replay_claim(&inbound(&both), &ctx_at(&only_primary, &clock));
        assert_eq!(
            claims.iter().map(|c| c.nonce.as_str()).collect::<Vec<_>>(),
            vec![parent_sig.as_str()]
        );
    }

    #[test]
    fn a_large_unauthenticated_body_is_scanned_not_built() {
        // 4 MB of event data: skipped in one pass; a body that is not an object
        // is refused at its first byte.
        let mut body = br#"{"event-data":["#.to_vec();
        body.extend(std::iter::repeat_n(b"{\"a\":0},".as_slice(), 512 * 1024).flatten());
        body.extend_from_slice(
            br#"0],"signature":{"timestamp":"1","token":"t","signature":"00"}}"#,
        );
        let located = locate(&body).unwrap();
        assert_eq!(located.signature.and_then(|s| s.token), Some("t"));
        assert_eq!(auth_at(&body, &["k"], 1), Err(KEY_MISMATCH));
        assert_eq!(locate(&body[1..]), None);
    }

    #[test]
    fn refreshed_samples_are_new_tagged_events() {
        let now_ms = 1_767_225_600_123;
        let mut sample: Value = serde_json::from_slice(&body("delivered.json")).unwrap();
        Mailgun.refresh_sample(&mut sample, now_ms, "run-1");
        let event = &Mailgun.parse(sample.to_string().as_bytes()).unwrap()[0];
        assert_eq!(event.event_time_ms, now_ms);
        assert_eq!(
            event.metadata.get(TEST_TAG).map(String::as_str),
            Some("run-1")
        );
    }
}
