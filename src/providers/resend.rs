//! Resend: one JSON event per POST (`{type, created_at, data}`), signed by Svix
//! per the Standard Webhooks spec — HMAC-SHA256 over `{id}.{timestamp}.{body}`
//! keyed with the base64 part of the `whsec_` secret, sent in `svix-*` (or the
//! equivalent `webhook-*`) headers. ISO 8601 times; `data.email_id` (the id the
//! send API returned) as the id; one item per address in `data.to`.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use hmac::{Hmac, Mac};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::json::{self, ParseError};
use super::{AuthContext, AuthScheme, Inbound, Provider, Signed};
use crate::auth::{AuthError, check_timestamp, constant_time_eq};
use crate::event::{BounceType, EmailEvent, EventType, format_rfc3339_ms};

/// Resend webhooks (delivered by Svix).
pub struct Resend;

/// The three signed values, each under its Svix name and its Standard Webhooks name.
const ID_HEADERS: [&str; 2] = ["svix-id", "webhook-id"];
const TIMESTAMP_HEADERS: [&str; 2] = ["svix-timestamp", "webhook-timestamp"];
const SIGNATURE_HEADERS: [&str; 2] = ["svix-signature", "webhook-signature"];

/// The prefix of the signing secret the dashboard shows.
const SECRET_PREFIX: &str = "whsec_";

/// Longest signature header looked at: Svix sends one `v1,<44 chars>` entry per
/// active secret (two during a rotation), plus perhaps `v1a` entries.
const MAX_SIGNATURE_CHARS: usize = 1024;

/// Most bytes of raw JSON one event may expand into across its recipients
/// (`data.to` × body). Resend allows 50 recipients per email; a body past this
/// is refused whole, not stored in part.
pub const MAX_FAN_OUT_BYTES: usize = 16 * 1024 * 1024;

/// The tag a test sender's run id goes in.
const TEST_TAG: &str = "mailhooks_test";

impl Provider for Resend {
    fn name(&self) -> &'static str {
        "resend"
    }

    fn secrets_env(&self) -> &'static str {
        "RESEND_SECRETS"
    }

    fn scheme(&self) -> AuthScheme {
        AuthScheme::SignedHeaders {
            signature: SIGNATURE_HEADERS[0],
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
        let id = signed_header(request, ID_HEADERS)?;
        let timestamp = signed_header(request, TIMESTAMP_HEADERS)?;
        let signature = signed_header(request, SIGNATURE_HEADERS)?;
        // Integer seconds only: the window is checked on the value that is signed.
        if !timestamp.bytes().all(|b| b.is_ascii_digit()) {
            return Err(AuthError::MalformedTimestamp);
        }
        check_timestamp(timestamp, ctx.freshness, ctx.clock)?;
        let keys = signing_keys(ctx.secrets);
        if keys.is_empty() {
            return Err(AuthError::NotConfigured);
        }
        if verify(&keys, id, timestamp, request.body, signature) {
            Ok("standard-webhooks-v1")
        } else {
            Err(AuthError::BadSignature)
        }
    }

    fn parse(&self, body: &[u8]) -> Result<Vec<EmailEvent>, ParseError> {
        let value = json::parse_body(body)?;
        json::validate(parse_event(&value)?)
    }

    fn local_secret(&self) -> &'static str {
        "local-resend-secret"
    }

    /// Signs as Svix does: a message id derived from the body (Svix keeps one id
    /// per event across retries), the timestamp, one `v1` signature.
    fn sign(&self, secret: &str, unix_secs: i64, body: &[u8]) -> Signed {
        let id = format!("msg_{}", hex::encode(&Sha256::digest(body)[..12]));
        let ts = unix_secs.to_string();
        let key = signing_key(secret).unwrap_or_else(|| secret.as_bytes().to_vec());
        let signature = STANDARD.encode(mac(&key, &id, &ts, body));
        Signed {
            query: String::new(),
            headers: vec![
                (ID_HEADERS[0].to_owned(), id),
                (TIMESTAMP_HEADERS[0].to_owned(), ts),
                (SIGNATURE_HEADERS[0].to_owned(), format!("v1,{signature}")),
            ],
            body: body.to_vec(),
        }
    }

    fn refresh_sample(&self, sample: &mut Value, now_ms: i64, run_id: &str) {
        let Some(event) = sample.as_object_mut() else {
            return;
        };
        event.insert("created_at".into(), Value::from(format_rfc3339_ms(now_ms)));
        if let Some(Value::Object(data)) = event.get_mut("data") {
            match data.get_mut("tags") {
                Some(Value::Object(tags)) => {
                    tags.insert(TEST_TAG.into(), Value::from(run_id));
                }
                Some(Value::Array(tags)) => {
                    tags.push(serde_json::json!({"name": TEST_TAG, "value": run_id}));
                }
                _ => {
                    let mut tags = Map::new();
                    tags.insert(TEST_TAG.into(), Value::from(run_id));
                    data.insert("tags".into(), Value::Object(tags));
                }
            }
        }
    }
}

/// One signed value, sent under its Svix name or its Standard Webhooks name.
///
/// Each name may appear once. Both names may be sent (some relays copy them),
/// but then they must carry the same value: whatever is used — for the MAC and
/// for the window — is the one value both say, so a second set of headers can
/// never supply an unverified id, time or signature.
fn signed_header<'a>(
    request: &'a Inbound<'_>,
    names: [&'static str; 2],
) -> Result<&'a str, AuthError> {
    let mut found: Option<&str> = None;
    for name in names {
        let value = match request.header_values(name).as_slice() {
            [] => continue,
            [one] if one.trim().is_empty() => continue,
            [one] => one.trim(),
            _ => return Err(AuthError::DuplicateHeader(name)),
        };
        match found {
            Some(other) if !constant_time_eq(other.as_bytes(), value.as_bytes()) => {
                return Err(AuthError::ConflictingTokens);
            }
            _ => found = Some(value),
        }
    }
    found.ok_or(AuthError::MissingHeader(names[0]))
}

/// The HMAC key of a secret: the base64 after `whsec_` (padding optional, as in
/// the reference libraries). `None` when that part is not base64.
fn signing_key(secret: &str) -> Option<Vec<u8>> {
    match secret.strip_prefix(SECRET_PREFIX) {
        Some(encoded) => {
            let encoded = encoded.trim_end_matches('=');
            STANDARD_NO_PAD
                .decode(encoded)
                .ok()
                .filter(|k| !k.is_empty())
        }
        // Not a Resend secret (the development `local-resend-secret`): its bytes.
        None => Some(secret.as_bytes().to_vec()),
    }
}

/// The keys of the configured secrets; a `whsec_` secret that does not decode is
/// logged by position (never by value) and left out, so it answers 401, not 500.
fn signing_keys(secrets: &[String]) -> Vec<Vec<u8>> {
    secrets
        .iter()
        .enumerate()
        .filter_map(|(position, secret)| {
            let key = signing_key(secret);
            if key.is_none() {
                tracing::error!(
                    variable = "RESEND_SECRETS",
                    position,
                    "entry is whsec_ followed by something that is not base64; ignored"
                );
            }
            key
        })
        .collect()
}

/// HMAC-SHA256 of `{id}.{timestamp}.{body}`, streamed: the body is not copied.
fn mac(key: &[u8], id: &str, timestamp: &str, body: &[u8]) -> [u8; 32] {
    // HMAC takes keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    for part in [id.as_bytes(), b".", timestamp.as_bytes(), b".", body] {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// True if any `v1,<base64>` entry of the space-separated header matches the MAC
/// under any key. Other versions (`v1a` asymmetric signatures) are skipped;
/// every candidate is compared in constant time.
fn verify(keys: &[Vec<u8>], id: &str, timestamp: &str, body: &[u8], header: &str) -> bool {
    if header.len() > MAX_SIGNATURE_CHARS {
        return false;
    }
    let candidates: Vec<Vec<u8>> = header
        .split_whitespace()
        .filter_map(|entry| entry.split_once(','))
        .filter(|(version, _)| *version == "v1")
        .filter_map(|(_, signature)| STANDARD.decode(signature).ok())
        .collect();
    if candidates.is_empty() {
        return false;
    }
    keys.iter().fold(false, |found, key| {
        let expected = mac(key, id, timestamp, body);
        candidates.iter().fold(found, |found, candidate| {
            found | constant_time_eq(&expected, candidate)
        })
    })
}

/// Reads an RFC 3339 time (Resend sends `2023-09-28T17:19:44.823Z`) in ms.
fn parse_time(text: &str) -> Option<i64> {
    if !matches!(text.as_bytes().get(10), Some(b'T' | b't')) {
        return None;
    }
    let at = OffsetDateTime::parse(text, &Rfc3339).ok()?;
    i64::try_from(at.unix_timestamp_nanos().div_euclid(1_000_000)).ok()
}

/// Maps `type` to the normalized type; a bounce is refined by [`classify_bounce`].
fn classify(name: &str) -> EventType {
    match name {
        "email.sent" => EventType::Sent,
        "email.scheduled" => EventType::Queued,
        "email.delivered" => EventType::Delivered,
        "email.delivery_delayed" => EventType::Deferred,
        "email.bounced" => EventType::Bounced,
        "email.complained" => EventType::Complained,
        "email.opened" => EventType::Opened,
        "email.clicked" => EventType::Clicked,
        // Resend refused to send: an error on its side, or a suppressed address.
        "email.failed" | "email.suppressed" => EventType::Rejected,
        "email.received" => EventType::Inbound,
        // contact.* and domain.* are account changes, not deliveries: stored, unknown.
        _ => EventType::Unknown,
    }
}

/// A bounce by `data.bounce` (SES terms): `subType` `Suppressed` /
/// `OnAccountSuppressionList` means Resend did not send (rejected); `type`
/// `Permanent` is hard, `Transient` soft, anything else (`Undetermined`,
/// absent) says nothing.
fn classify_bounce(bounce: Option<&Map<String, Value>>) -> (EventType, Option<BounceType>) {
    let field = |key| bounce.and_then(|b| json::text(b, key)).unwrap_or_default();
    let sub_type = field("subType").to_ascii_lowercase();
    if sub_type == "suppressed" || sub_type == "onaccountsuppressionlist" {
        return (EventType::Rejected, None);
    }
    let bounce_type = match field("type").to_ascii_lowercase().as_str() {
        "permanent" | "hard" => Some(BounceType::Hard),
        "transient" | "soft" => Some(BounceType::Soft),
        _ => None,
    };
    (EventType::Bounced, bounce_type)
}

/// The address in `Name <addr>` (or the whole text), lower-cased.
fn address(text: &str) -> Option<String> {
    let inner = match (text.rfind('<'), text.rfind('>')) {
        (Some(open), Some(close)) if open < close => text.get(open + 1..close)?,
        _ => text,
    };
    let inner = inner.trim();
    (!inner.is_empty()).then(|| inner.to_lowercase())
}

/// The addresses of `data.to` (a list, or one string); empty when none is named.
fn recipients(data: &Map<String, Value>) -> Vec<String> {
    match json::get(data, "to") {
        Some(Value::Array(list)) => list
            .iter()
            .filter_map(json::value_text)
            .filter_map(|t| address(&t))
            .collect(),
        Some(value) => json::value_text(value)
            .and_then(|t| address(&t))
            .into_iter()
            .collect(),
        None => Vec::new(),
    }
}

fn parse_event(value: &Value) -> Result<Vec<EmailEvent>, ParseError> {
    let event = json::as_object(value, "a Resend webhook")?;
    let missing = |field| ParseError::MissingField { index: 0, field };
    let name = json::text(event, "type").ok_or_else(|| missing("type"))?;
    let empty = Map::new();
    let data = json::object(event, "data").unwrap_or(&empty);
    // The top-level `created_at` is the event's time; `data.created_at` is when
    // the email was created (the same for every event of one email).
    let time_text = json::text(event, "created_at").ok_or_else(|| missing("created_at"))?;
    let time = parse_time(&time_text).ok_or_else(|| missing("created_at"))?;
    // Email events carry `email_id`; contact and domain events their own `id`.
    let message_id = json::text(data, "email_id")
        .or_else(|| json::text(data, "id"))
        .ok_or_else(|| missing("data.email_id"))?;
    let bounce = json::object(data, "bounce");
    let (event_type, bounce_type) = match classify(&name) {
        EventType::Bounced => classify_bounce(bounce),
        other => (other, None),
    };
    let raw = json::canonical(value);

    let mut template = EmailEvent::new("resend", event_type, name, message_id, time, raw);
    template.bounce_type = bounce_type;
    template.sender = json::text(data, "from");
    template.subject = json::text(data, "subject");
    template.batch_id = json::text(data, "broadcast_id");
    template.template_id = json::text(data, "template_id");
    template.reason = bounce
        .and_then(|b| json::text(b, "message"))
        .or_else(|| json::object(data, "failed").and_then(|f| json::text(f, "reason")));
    add_engagement(&mut template, data);
    add_details(&mut template, data, bounce);
    add_tags(&mut template, data);

    let mut to = recipients(data);
    if to.is_empty() {
        // Contact events name their address in `email`; domain events none.
        template.recipient = json::text(data, "email").and_then(|e| address(&e));
        return Ok(vec![template]);
    }
    if to.len().saturating_mul(template.raw.len()) > MAX_FAN_OUT_BYTES {
        return Err(ParseError::FanOutTooLarge {
            index: 0,
            recipients: to.len(),
        });
    }
    to.sort();
    to.dedup();
    Ok(to
        .into_iter()
        .map(|recipient| {
            let mut event = template.clone();
            event.recipient = Some(recipient);
            event
        })
        .collect())
}

/// Click and open data: `data.click` / `data.open` (`link`, `ipAddress`, `userAgent`).
fn add_engagement(event: &mut EmailEvent, data: &Map<String, Value>) {
    let Some(engagement) = json::object(data, "click").or_else(|| json::object(data, "open"))
    else {
        return;
    };
    event.url = json::text(engagement, "link");
    event.ip = json::text(engagement, "ipAddress");
    event.user_agent = json::text(engagement, "userAgent");
    if let Some(at) = json::text(engagement, "timestamp") {
        event.details.insert("engagement_at".into(), at);
    }
}

/// Keeps the documented fields the normalized ones do not hold.
fn add_details(
    event: &mut EmailEvent,
    data: &Map<String, Value>,
    bounce: Option<&Map<String, Value>>,
) {
    for (field, key) in [
        ("created_at", "email_created_at"),
        ("message_id", "message_id_header"),
        ("audience_id", "audience_id"),
        ("name", "domain"),
        ("status", "status"),
    ] {
        if let Some(v) = json::text(data, field) {
            event.details.insert(key.into(), v);
        }
    }
    if let Some(bounce) = bounce {
        for (field, key) in [("type", "bounce_type"), ("subType", "bounce_sub_type")] {
            if let Some(v) = json::text(bounce, field) {
                event.details.insert(key.into(), v);
            }
        }
    }
    if let Some(Value::Array(to)) = json::get(data, "to")
        && to.len() > 1
    {
        // Resend does not say which recipient an event is about: keep the list.
        let list: Vec<String> = to.iter().filter_map(json::value_text).collect();
        event.details.insert("to".into(), list.join(", "));
    }
}

/// `data.tags`, as an object (`{name: value}`) or a list (`[{name, value}]`).
fn add_tags(event: &mut EmailEvent, data: &Map<String, Value>) {
    match json::get(data, "tags") {
        Some(Value::Object(tags)) => {
            for (name, value) in tags {
                if let Some(text) = json::value_text(value) {
                    event.metadata.insert(name.clone(), text);
                }
            }
        }
        Some(Value::Array(tags)) => {
            for tag in tags.iter().filter_map(Value::as_object) {
                if let (Some(name), Some(value)) =
                    (json::text(tag, "name"), json::text(tag, "value"))
                {
                    event.metadata.insert(name, value);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{FixedClock, Freshness};

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/tests/fixtures/resend/{name}.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    fn parse_one(name: &str) -> EmailEvent {
        let mut events = Resend.parse(&fixture(name)).unwrap();
        assert_eq!(events.len(), 1, "{name}");
        events.remove(0)
    }

    fn headers(id: &str, ts: &str, sig: &str) -> Vec<(String, String)> {
        vec![
            ("svix-id".into(), id.into()),
            ("svix-timestamp".into(), ts.into()),
            ("svix-signature".into(), sig.into()),
        ]
    }

    fn auth_at(
        secrets: &[&str],
        now_secs: i64,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Result<&'static str, AuthError> {
        let secrets: Vec<String> = secrets.iter().map(|s| (*s).to_owned()).collect();
        let clock = FixedClock(now_secs * 1000);
        let ctx = AuthContext {
            secrets: &secrets,
            freshness: Freshness::Within(300),
            clock: &clock,
            certificates_dir: None,
            webhook_urls: &[],
        };
        Resend.authenticate(
            &Inbound {
                headers,
                query: &[],
                body,
            },
            &ctx,
        )
    }

    /// The Standard Webhooks reference libraries' vector (libraries/rust/src/lib.rs).
    const SPEC_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    const SPEC_ID: &str = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
    const SPEC_TS: &str = "1649367553";
    const SPEC_BODY: &str = r#"{"email":"test@example.com","username":"test_user"}"#;
    const SPEC_SIGNATURE: &str = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";

    /// A Resend-shaped body signed for this project (resend-signature-vector-derived.json).
    const DERIVED_SECRET: &str = "whsec_VEVTVF9TSUdOSU5HX1NFQ1JFVA==";
    const DERIVED_ID: &str = "msg_abcdefghijklmnopqrst12345";
    const DERIVED_TS: &str = "1700000000";
    const DERIVED_BODY: &str = r#"{"created_at": "2023-09-28T17:19:44.823Z", "data": {"created_at": "2023-09-28T17:19:43.982Z", "email_id": "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee", "from": "Sender <from@example.com>", "subject": "Sending test", "to": ["to@example.org"]}, "type": "email.delivered"}"#;
    const DERIVED_SIGNATURE: &str = "v1,v6Gua0zoyUE55E/yIabeSRuz3S7egx6xTlQuEeM/qb4=";

    #[test]
    fn both_vectors_verify_and_fail_with_one_byte_changed() {
        for (secret, id, ts, body, sig) in [
            (SPEC_SECRET, SPEC_ID, SPEC_TS, SPEC_BODY, SPEC_SIGNATURE),
            (
                DERIVED_SECRET,
                DERIVED_ID,
                DERIVED_TS,
                DERIVED_BODY,
                DERIVED_SIGNATURE,
            ),
        ] {
            let now: i64 = ts.parse().unwrap();
            assert_eq!(
                auth_at(&[secret], now, &headers(id, ts, sig), body.as_bytes()),
                Ok("standard-webhooks-v1")
            );
            let mut changed = body.as_bytes().to_vec();
            changed[5] ^= 1;
            assert_eq!(
                auth_at(&[secret], now, &headers(id, ts, sig), &changed),
                Err(AuthError::BadSignature)
            );
            // The id and the timestamp are signed too.
            let other_id = format!("{id}x");
            assert_eq!(
                auth_at(
                    &[secret],
                    now,
                    &headers(&other_id, ts, sig),
                    body.as_bytes()
                ),
                Err(AuthError::BadSignature)
            );
            let later = (now + 1).to_string();
            assert_eq!(
                auth_at(&[secret], now, &headers(id, &later, sig), body.as_bytes()),
                Err(AuthError::BadSignature)
            );
            // Unpadded secrets decode the same (as the reference libraries allow).
            let unpadded = secret.trim_end_matches('=');
            assert_eq!(
                auth_at(&[unpadded], now, &headers(id, ts, sig), body.as_bytes()),
                Ok("standard-webhooks-v1")
            );
        }
        let negative = "v1,R3PTzyfHASBKHH98a7yexTwaJ4yNIcGhFQc1yuN+BPU=";
        assert_eq!(
            auth_at(
                &[SPEC_SECRET],
                1_649_367_553,
                &headers(SPEC_ID, SPEC_TS, negative),
                SPEC_BODY.as_bytes()
            ),
            Err(AuthError::BadSignature)
        );
        let events = Resend.parse(DERIVED_BODY.as_bytes()).unwrap();
        assert_eq!(events[0].event_type, EventType::Delivered);
    }

    #[test]
    fn any_v1_entry_of_a_multi_signature_header_may_match() {
        let now = 1_649_367_553;
        let good = SPEC_SIGNATURE;
        let other = "v1,R3PTzyfHASBKHH98a7yexTwaJ4yNIcGhFQc1yuN+BPU=";
        let asym = "v1a,hnO3f9T8Ytu9HwrXslvumlUpqtNVqkhqw/enGzPCXe5BdqzCInXqYXFymVJaA7AZdpXwVLPo3mNl8EM+m7TBAg==";
        for header in [
            format!("{other} {good}"),
            format!("{asym} {good}"),
            format!("{good}  {other}"),
        ] {
            assert_eq!(
                auth_at(
                    &[SPEC_SECRET],
                    now,
                    &headers(SPEC_ID, SPEC_TS, &header),
                    SPEC_BODY.as_bytes()
                ),
                Ok("standard-webhooks-v1"),
                "{header}"
            );
        }
        // A good signature under another version tag is not accepted.
        let relabelled = good.replacen("v1,", "v2,", 1);
        for header in [
            other.to_owned(),
            relabelled,
            asym.to_owned(),
            String::new(),
            "v1,".into(),
        ] {
            let result = auth_at(
                &[SPEC_SECRET],
                now,
                &headers(SPEC_ID, SPEC_TS, &header),
                SPEC_BODY.as_bytes(),
            );
            assert!(
                matches!(
                    result,
                    Err(AuthError::BadSignature | AuthError::MissingHeader(_))
                ),
                "{header}: {result:?}"
            );
        }
    }

    #[test]
    fn rotation_tries_every_secret_and_bad_secrets_are_401() {
        let now = 1_649_367_553;
        let request = headers(SPEC_ID, SPEC_TS, SPEC_SIGNATURE);
        let body = SPEC_BODY.as_bytes();
        assert_eq!(
            auth_at(&[DERIVED_SECRET, SPEC_SECRET], now, &request, body),
            Ok("standard-webhooks-v1")
        );
        assert_eq!(
            auth_at(&["whsec_%%%not-base64", SPEC_SECRET], now, &request, body),
            Ok("standard-webhooks-v1"),
            "a broken entry does not take the others down"
        );
        assert_eq!(
            auth_at(&["whsec_%%%not-base64"], now, &request, body),
            Err(AuthError::NotConfigured)
        );
        assert_eq!(
            auth_at(&["whsec_"], now, &request, body),
            Err(AuthError::NotConfigured)
        );
        assert_eq!(
            auth_at(&[DERIVED_SECRET], now, &request, body),
            Err(AuthError::BadSignature)
        );
    }

    #[test]
    fn webhook_header_names_are_equivalent_and_cannot_disagree() {
        let now = 1_649_367_553;
        let body = SPEC_BODY.as_bytes();
        let unbranded: Vec<(String, String)> = headers(SPEC_ID, SPEC_TS, SPEC_SIGNATURE)
            .into_iter()
            .map(|(k, v)| (k.replace("svix-", "webhook-"), v))
            .collect();
        assert_eq!(
            auth_at(&[SPEC_SECRET], now, &unbranded, body),
            Ok("standard-webhooks-v1")
        );
        // Both sets with the same values: one request.
        let mut both = headers(SPEC_ID, SPEC_TS, SPEC_SIGNATURE);
        both.extend(unbranded.iter().cloned());
        assert_eq!(
            auth_at(&[SPEC_SECRET], now, &both, body),
            Ok("standard-webhooks-v1")
        );
        // A fresh unsigned timestamp beside the old signed one is no bypass of the
        // window, and a second signature cannot be slipped in beside the first.
        let mut replay = headers(SPEC_ID, SPEC_TS, SPEC_SIGNATURE);
        replay.push(("webhook-timestamp".into(), "1649369999".into()));
        assert_eq!(
            auth_at(&[SPEC_SECRET], 1_649_369_999, &replay, body),
            Err(AuthError::ConflictingTokens)
        );
        let mut mixed = headers(SPEC_ID, SPEC_TS, "v1,AAAA");
        mixed.push(("webhook-signature".into(), SPEC_SIGNATURE.into()));
        assert_eq!(
            auth_at(&[SPEC_SECRET], now, &mixed, body),
            Err(AuthError::ConflictingTokens)
        );
        let mut dup = headers(SPEC_ID, SPEC_TS, SPEC_SIGNATURE);
        dup.push(("Svix-Signature".into(), "v1,AAAA".into()));
        assert_eq!(
            auth_at(&[SPEC_SECRET], now, &dup, body),
            Err(AuthError::DuplicateHeader("svix-signature"))
        );
    }

    #[test]
    fn header_failures_are_classified() {
        let body = SPEC_BODY.as_bytes();
        let full = headers(SPEC_ID, SPEC_TS, SPEC_SIGNATURE);
        assert_eq!(
            auth_at(&[SPEC_SECRET], 1_649_367_553, &full[1..], body),
            Err(AuthError::MissingHeader("svix-id"))
        );
        assert_eq!(
            auth_at(&[SPEC_SECRET], 1_649_367_553 + 301, &full, body),
            Err(AuthError::StaleTimestamp(300))
        );
        assert_eq!(
            auth_at(
                &[SPEC_SECRET],
                1_649_367_553,
                &headers(SPEC_ID, "-5", SPEC_SIGNATURE),
                body
            ),
            Err(AuthError::MalformedTimestamp)
        );
        let huge = format!("v1,{}", "A".repeat(MAX_SIGNATURE_CHARS));
        assert_eq!(
            auth_at(
                &[SPEC_SECRET],
                1_649_367_553,
                &headers(SPEC_ID, SPEC_TS, &huge),
                body
            ),
            Err(AuthError::BadSignature)
        );
        assert_eq!(
            auth_at(&[], 1_649_367_553, &full, body),
            Err(AuthError::NotConfigured)
        );
    }

    #[test]
    fn signing_round_trips_and_a_wrong_secret_fails() {
        let body = fixture("email_delivered");
        let signed = Resend.sign("whsec_VEVTVF9TSUdOSU5HX1NFQ1JFVA==", 1_700_000_000, &body);
        assert_eq!(
            auth_at(&[DERIVED_SECRET], 1_700_000_000, &signed.headers, &body),
            Ok("standard-webhooks-v1")
        );
        let wrong = Resend.sign("not-the-secret", 1_700_000_000, &body);
        assert_eq!(
            auth_at(&[DERIVED_SECRET], 1_700_000_000, &wrong.headers, &body),
            Err(AuthError::BadSignature)
        );
        let local = Resend.sign(Resend.local_secret(), 1_700_000_000, &body);
        assert_eq!(
            auth_at(
                &[Resend.local_secret()],
                1_700_000_000,
                &local.headers,
                &body
            ),
            Ok("standard-webhooks-v1")
        );
        assert_eq!(
            local.headers[0], signed.headers[0],
            "the id comes from the body"
        );
    }

    #[test]
    fn delivered() {
        let e = parse_one("email_delivered");
        assert_eq!(e.event_type, EventType::Delivered);
        assert_eq!(e.message_id, "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee");
        assert_eq!(e.recipient.as_deref(), Some("to@example.org"));
        assert_eq!(e.event_time_ms, 1_695_921_584_823);
        assert_eq!(e.sender.as_deref(), Some("Sender <from@example.com>"));
        assert_eq!(e.subject.as_deref(), Some("Sending test"));
        assert_eq!(
            e.details.get("email_created_at").map(String::as_str),
            Some("2023-09-28T17:19:43.982Z")
        );
    }

    #[test]
    fn bounced_without_a_type_says_no_bounce_type() {
        let e = parse_one("email_bounced");
        assert_eq!(e.event_type, EventType::Bounced);
        assert_eq!(e.bounce_type, None);
        assert_eq!(e.recipient.as_deref(), Some("bounced@resend.dev"));
        assert_eq!(e.event_time_ms, 1_696_270_286_101);
        assert!(
            e.reason
                .unwrap()
                .starts_with("The recipient's email provider sent a hard bounce")
        );
    }

    #[test]
    fn bounce_type_and_suppression_come_from_data_bounce() {
        let body = |bounce: &str| {
            format!(
                r#"{{"type":"email.bounced","created_at":"2024-11-22T23:41:12.126Z","data":{{"email_id":"e1","to":["a@x.com"],"bounce":{bounce}}}}}"#
            )
        };
        let case = |bounce: &str| {
            let e = &Resend.parse(body(bounce).as_bytes()).unwrap()[0];
            (e.event_type, e.bounce_type)
        };
        assert_eq!(
            case(r#"{"type":"Permanent","subType":"General","message":"m"}"#),
            (EventType::Bounced, Some(BounceType::Hard))
        );
        assert_eq!(
            case(r#"{"type":"Transient","subType":"MailboxFull"}"#),
            (EventType::Bounced, Some(BounceType::Soft))
        );
        assert_eq!(
            case(r#"{"type":"Undetermined"}"#),
            (EventType::Bounced, None)
        );
        assert_eq!(
            case(r#"{"type":"Permanent","subType":"Suppressed"}"#),
            (EventType::Rejected, None)
        );
    }

    #[test]
    fn opened() {
        let e = parse_one("email_opened");
        assert_eq!(e.event_type, EventType::Opened);
        assert_eq!(e.event_time_ms, 1_695_921_638_990);
        assert_eq!(e.recipient.as_deref(), Some("to@example.org"));
    }

    #[test]
    fn clicked() {
        let e = parse_one("email_clicked");
        assert_eq!(e.event_type, EventType::Clicked);
        assert_eq!(e.url.as_deref(), Some("https://example.com/test"));
        assert_eq!(e.ip.as_deref(), Some("192.168.1.101"));
        assert_eq!(e.user_agent.as_deref(), Some("Mozilla/5.0 ..."));
        assert_eq!(e.event_time_ms, 1_695_921_695_257);
    }

    /// The types no published sample shows, in the documented envelope.
    #[test]
    fn every_other_documented_type_maps() {
        for (name, want) in [
            ("email.sent", EventType::Sent),
            ("email.scheduled", EventType::Queued),
            ("email.delivery_delayed", EventType::Deferred),
            ("email.complained", EventType::Complained),
            ("email.failed", EventType::Rejected),
            ("email.suppressed", EventType::Rejected),
            ("email.received", EventType::Inbound),
            ("email.something_new", EventType::Unknown),
        ] {
            let body = format!(
                r#"{{"type":"{name}","created_at":"2024-01-01T00:00:00Z","data":{{"email_id":"e1","to":["A <A@X.com>"],"failed":{{"reason":"quota"}}}}}}"#
            );
            let e = &Resend.parse(body.as_bytes()).unwrap()[0];
            assert_eq!(e.event_type, want, "{name}");
            assert_eq!(e.recipient.as_deref(), Some("a@x.com"), "{name}");
            assert_eq!(e.event_time_ms, 1_704_067_200_000, "{name}");
        }
    }

    #[test]
    fn contact_and_domain_events_are_stored_as_unknown() {
        let contact = br#"{"type":"contact.updated","created_at":"2024-01-01T00:00:00Z","data":{"id":"c-1","audience_id":"aud","email":"Someone@X.com","unsubscribed":true}}"#;
        let e = &Resend.parse(contact).unwrap()[0];
        assert_eq!(
            (e.event_type, e.message_id.as_str(), e.recipient.as_deref()),
            (EventType::Unknown, "c-1", Some("someone@x.com"))
        );
        let domain = br#"{"type":"domain.created","created_at":"2024-01-01T00:00:00Z","data":{"id":"d-1","name":"example.com","status":"not_started"}}"#;
        let e = &Resend.parse(domain).unwrap()[0];
        assert_eq!(
            (e.event_type, e.message_id.as_str(), e.recipient.as_deref()),
            (EventType::Unknown, "d-1", None)
        );
        assert_eq!(
            e.details.get("domain").map(String::as_str),
            Some("example.com")
        );
    }

    #[test]
    fn one_item_per_address_in_to_with_the_same_raw() {
        let body = br#"{"type":"email.sent","created_at":"2024-01-01T00:00:00Z","data":{"email_id":"e1","to":["B@x.com","Ann <a@x.com>","b@x.com"],"tags":[{"name":"k","value":"v"}]}}"#;
        let events = Resend.parse(body).unwrap();
        let to: Vec<_> = events.iter().map(|e| e.recipient.as_deref()).collect();
        assert_eq!(to, [Some("a@x.com"), Some("b@x.com")]);
        assert!(events.iter().all(|e| e.raw == events[0].raw));
        assert_eq!(events[0].metadata.get("k").map(String::as_str), Some("v"));
        assert_eq!(
            events[0].details.get("to").map(String::as_str),
            Some("B@x.com, Ann <a@x.com>, b@x.com")
        );
        assert_ne!(
            crate::store::codec::sort_key(&events[0]),
            crate::store::codec::sort_key(&events[1])
        );
    }

    #[test]
    fn shape_errors() {
        assert!(matches!(
            Resend.parse(b"[]"),
            Err(ParseError::WrongShape(_))
        ));
        assert_eq!(
            Resend.parse(br#"{"type":"email.sent","data":{"email_id":"e"}}"#),
            Err(ParseError::MissingField {
                index: 0,
                field: "created_at"
            })
        );
        assert_eq!(
            Resend.parse(
                br#"{"type":"email.sent","created_at":"yesterday","data":{"email_id":"e"}}"#
            ),
            Err(ParseError::MissingField {
                index: 0,
                field: "created_at"
            })
        );
        assert_eq!(
            Resend.parse(br#"{"type":"email.sent","created_at":"2024-01-01T00:00:00Z","data":{}}"#),
            Err(ParseError::MissingField {
                index: 0,
                field: "data.email_id"
            })
        );
        let many: Vec<String> = (0..40_000).map(|i| format!("r{i}@example.com")).collect();
        let body = serde_json::to_vec(&serde_json::json!({
            "type": "email.sent", "created_at": "2024-01-01T00:00:00Z",
            "data": {"email_id": "e", "to": many}
        }))
        .unwrap();
        assert!(matches!(
            Resend.parse(&body),
            Err(ParseError::FanOutTooLarge { .. })
        ));
    }

    #[test]
    fn refresh_moves_the_time_and_tags_the_sample() {
        let mut sample: Value = serde_json::from_slice(&fixture("email_clicked")).unwrap();
        Resend.refresh_sample(&mut sample, 1_800_000_000_123, "run-1");
        let e = &Resend.parse(&serde_json::to_vec(&sample).unwrap()).unwrap()[0];
        assert_eq!(e.event_time_ms, 1_800_000_000_123);
        assert_eq!(e.metadata.get(TEST_TAG).map(String::as_str), Some("run-1"));
    }
}
