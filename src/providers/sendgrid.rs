//! Twilio SendGrid Event Webhook: a JSON array of events per POST (up to about
//! 768 KB), signed with ECDSA P-256 over the timestamp header followed by the raw
//! body, verified with the account's public verification keys. Times are Unix
//! seconds; `sg_message_id` starts with the `X-Message-Id` the send API returned.

use std::sync::{Arc, RwLock};

use aws_lc_rs::digest;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1, ParsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use p256::pkcs8::DecodePrivateKey;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::json::{self, ParseError};
use super::{AuthContext, AuthScheme, Inbound, Parsed, Provider, Signed};
use crate::auth::{AuthError, check_timestamp};
use crate::event::{BounceType, EmailEvent, EventType, unix_to_ms};

/// SendGrid Event Webhook (Signed Event Webhook Requests).
pub struct SendGrid;

const SIGNATURE_HEADER: &str = "X-Twilio-Email-Event-Webhook-Signature";
const TIMESTAMP_HEADER: &str = "X-Twilio-Email-Event-Webhook-Timestamp";

/// Longest signature header looked at: a DER P-256 signature is at most 72 bytes,
/// 96 in base64. Anything longer is refused before it is decoded.
const MAX_SIGNATURE_CHARS: usize = 128;

/// The custom-arg key a test sender's run id goes in.
const TEST_TAG: &str = "mailhooks_test";

/// The development key pairs: **public development material, never for a
/// deployment.** The first one's public key is [`SendGrid::local_secret`]; the
/// second stands for a rotated-in key in the tests. Each entry is (base64 DER
/// SubjectPublicKeyInfo, as SendGrid's console shows its verification key;
/// base64 PKCS#8 private key, so the development side can sign).
pub const DEVELOPMENT_KEY_PAIRS: [(&str, &str); 2] = [
    (
        "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE4Jt7dfhSGeAdgr26O0v1CNzRT1aQ6ZCK7tSrjLt9ress6SdHffxNven7TthlLo8R+uZyvaYC3V17BRnXYq6iJg==",
        "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg0AHoUs7lj8qEbZACiibDvLdE27yLbJRIbnXpHTgyR0+hRANCAATgm3t1+FIZ4B2Cvbo7S/UI3NFPVpDpkIru1KuMu32t6yzpJ0d9/E296ftO2GUujxH65nK9pgLdXXsFGddirqIm",
    ),
    (
        "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEzOrmik+Z7b8iCrKs2Hr3PNodHTazy0+W84La4j6NeF8hAnscwpZhjJaBBXuPiQxMBzrWK7CF1DeHDj4sdgbI6g==",
        "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgvXVebt3QT78VvnPwuHlmeYNJuh7pF053d4lMsx50IEahRANCAATM6uaKT5ntvyIKsqzYevc82h0dNrPLT5bzgtriPo14XyECexzClmGMloEFe4+JDEwHOtYrsIXUN4cOPix2Bsjq",
    ),
];

impl Provider for SendGrid {
    fn name(&self) -> &'static str {
        "sendgrid"
    }

    fn secrets_env(&self) -> &'static str {
        "SENDGRID_PUBLIC_KEYS"
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
        let signature = request.single_header(SIGNATURE_HEADER)?;
        // The timestamp is what was signed: a stale one is refused before any
        // ECDSA work, so replayed captures cost no more than a string parse.
        check_timestamp(timestamp, ctx.freshness, ctx.clock)?;
        let keys = public_keys(ctx.secrets);
        if keys.is_empty() {
            return Err(AuthError::NotConfigured);
        }
        verify(&keys, timestamp, request.body, signature)?;
        Ok("ecdsa-p256")
    }

    /// SendGrid posts an array; a single event object is what each item keeps
    /// as its raw payload, read back when stored events are re-normalized.
    fn parse(&self, body: &[u8]) -> Result<Vec<EmailEvent>, ParseError> {
        let events = match json::parse_body(body)? {
            Value::Array(items) => items
                .iter()
                .enumerate()
                .map(|(index, item)| parse_event(index, item))
                .collect::<Result<Vec<_>, _>>()?,
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
        DEVELOPMENT_KEY_PAIRS[0].0
    }

    /// Signs as SendGrid does, with the development private key whose public key
    /// is `secret`. Any other `secret` (a real account's key, whose private half
    /// only SendGrid holds, or a wrong value) signs with a throwaway key derived
    /// from it, so the request is well formed and fails verification.
    fn sign(&self, secret: &str, unix_secs: i64, body: &[u8]) -> Signed {
        let ts = unix_secs.to_string();
        let mut message = ts.clone().into_bytes();
        message.extend_from_slice(body);
        let signature: Signature = signing_key_for(secret).sign(&message);
        Signed {
            query: String::new(),
            headers: vec![
                (
                    SIGNATURE_HEADER.to_owned(),
                    STANDARD.encode(signature.to_der().as_bytes()),
                ),
                (TIMESTAMP_HEADER.to_owned(), ts),
            ],
            body: body.to_vec(),
        }
    }

    fn refresh_sample(&self, sample: &mut Value, now_ms: i64, run_id: &str) {
        let Value::Array(items) = sample else {
            return;
        };
        for item in items.iter_mut().filter_map(Value::as_object_mut) {
            item.insert("timestamp".into(), Value::from(now_ms / 1000));
            item.insert(TEST_TAG.into(), Value::from(run_id));
        }
    }
}

/// Checks `signature` (base64 DER) over `timestamp || body` against each key.
///
/// The digest is computed once, streaming over the body, so nothing is copied in
/// proportion to it. Keys are public, so stopping at the first that verifies
/// reveals nothing a caller could use.
fn verify(
    keys: &[ParsedPublicKey],
    timestamp: &str,
    body: &[u8],
    signature: &str,
) -> Result<(), AuthError> {
    if signature.len() > MAX_SIGNATURE_CHARS {
        return Err(AuthError::BadSignature);
    }
    let signature = STANDARD
        .decode(signature)
        .map_err(|_| AuthError::BadSignature)?;
    let mut context = digest::Context::new(&digest::SHA256);
    context.update(timestamp.as_bytes());
    context.update(body);
    let digest = context.finish();
    if keys
        .iter()
        .any(|key| key.verify_digest_sig(&digest, &signature).is_ok())
    {
        Ok(())
    } else {
        Err(AuthError::BadSignature)
    }
}

/// The configured keys, parsed: the last list parsed and its keys.
type KeyCache = Option<(Vec<String>, Arc<Vec<ParsedPublicKey>>)>;

/// Parsed keys are kept for the life of the process (a warm Lambda): parsing
/// happens at the first request and again only when the configured list changes
/// (a Secrets Manager rotation).
static KEYS: RwLock<KeyCache> = RwLock::new(None);

/// The usable public keys among `configured`, parsed once per distinct list.
fn public_keys(configured: &[String]) -> Arc<Vec<ParsedPublicKey>> {
    if let Ok(cache) = KEYS.read()
        && let Some((list, keys)) = cache.as_ref()
        && list.as_slice() == configured
    {
        return Arc::clone(keys);
    }
    let keys = Arc::new(parse_keys(configured));
    if let Ok(mut cache) = KEYS.write() {
        *cache = Some((configured.to_vec(), Arc::clone(&keys)));
    }
    keys
}

/// Parses each configured key; one that is not a P-256 public key is logged by
/// position (never by value) and left out, so a typo in one entry does not take
/// the others down. With none usable, every request is refused `not_configured`.
fn parse_keys(configured: &[String]) -> Vec<ParsedPublicKey> {
    configured
        .iter()
        .enumerate()
        .filter_map(|(position, text)| match parse_public_key(text) {
            Some(key) => Some(key),
            None => {
                tracing::error!(
                    variable = "SENDGRID_PUBLIC_KEYS",
                    position,
                    "entry is not a base64 P-256 public key (SubjectPublicKeyInfo); ignored"
                );
                None
            }
        })
        .collect()
}

/// A verification key as the console shows it (base64 DER SubjectPublicKeyInfo),
/// also accepted wrapped in PEM armour as SendGrid's libraries print it.
pub fn parse_public_key(text: &str) -> Option<ParsedPublicKey> {
    let der = STANDARD.decode(key_base64(text)).ok()?;
    ParsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, der).ok()
}

/// The base64 body of a key: PEM armour lines and whitespace removed.
fn key_base64(text: &str) -> String {
    text.lines()
        .filter(|line| !line.trim_start().starts_with("-----"))
        .flat_map(str::split_whitespace)
        .collect()
}

/// The development private key whose public key is `public_key`, or a throwaway
/// key derived from the text (never one a deployment trusts).
fn signing_key_for(public_key: &str) -> SigningKey {
    let wanted = key_base64(public_key);
    DEVELOPMENT_KEY_PAIRS
        .iter()
        .find(|(public, _)| *public == wanted)
        .and_then(|(_, private)| STANDARD.decode(private).ok())
        .and_then(|der| SigningKey::from_pkcs8_der(&der).ok())
        .unwrap_or_else(|| throwaway_key(public_key))
}

/// A deterministic signing key from a text: SHA-256 of it, re-hashed in the
/// (about 2^-32) case that a digest is not a valid P-256 scalar.
fn throwaway_key(seed: &str) -> SigningKey {
    let mut digest = Sha256::digest(format!("mailhooks-sendgrid-throwaway:{seed}").as_bytes());
    loop {
        if let Ok(key) = SigningKey::from_slice(&digest) {
            return key;
        }
        digest = Sha256::digest(digest);
    }
}

/// Top-level fields SendGrid documents: everything else on an event is a custom
/// arg (unique_args / custom_args are merged into the event's top level) and
/// goes to `metadata`.
const SENDGRID_FIELDS: &[&str] = &[
    "asm_group_id",
    "attempt",
    "bounce_classification",
    "category",
    "cert_err",
    "email",
    "event",
    "ip",
    "marketing_campaign_id",
    "marketing_campaign_name",
    "marketing_campaign_split_id",
    "marketing_campaign_version",
    "mc_auto_id",
    "mc_pod_id",
    "mc_stats",
    "phase_id",
    "pool",
    "reason",
    "response",
    "send_at",
    "sg_content_type",
    "sg_event_id",
    "sg_machine_open",
    "sg_message_id",
    "sg_template_id",
    "sg_template_name",
    "sg_user_id",
    "singlesend_id",
    "singlesend_name",
    "smtp-id",
    "status",
    "template_hash",
    "template_id",
    "template_version_id",
    "timestamp",
    "tls",
    "type",
    "url",
    "url_offset",
    "useragent",
];

/// Documented fields kept in `details` under the same name (the ones the
/// normalized fields do not already hold).
const DETAIL_FIELDS: &[&str] = &[
    "asm_group_id",
    "attempt",
    "bounce_classification",
    "category",
    "cert_err",
    "marketing_campaign_id",
    "marketing_campaign_name",
    "marketing_campaign_split_id",
    "marketing_campaign_version",
    "pool",
    "sg_event_id",
    "sg_machine_open",
    "sg_message_id",
    "singlesend_id",
    "singlesend_name",
    "smtp-id",
    "tls",
    "type",
    "url_offset",
];

/// Maps `event` (and a bounce's `type`) to the normalized type.
fn classify(name: &str, bounce_kind: Option<&str>) -> (EventType, Option<BounceType>) {
    match name {
        "processed" => (EventType::Queued, None),
        "deferred" => (EventType::Deferred, None),
        "delivered" => (EventType::Delivered, None),
        // `type: blocked` is a block (a temporary refusal by the receiver); without
        // a type, or with `type: bounce`, it is the permanent kind.
        "bounce" => match bounce_kind {
            Some(kind) if kind.eq_ignore_ascii_case("blocked") => {
                (EventType::Bounced, Some(BounceType::Soft))
            }
            _ => (EventType::Bounced, Some(BounceType::Hard)),
        },
        // The event name of blocks before they became `bounce` + `type: blocked`.
        "blocked" => (EventType::Bounced, Some(BounceType::Soft)),
        "dropped" => (EventType::Rejected, None),
        "open" => (EventType::Opened, None),
        "click" => (EventType::Clicked, None),
        "spamreport" => (EventType::Complained, None),
        "unsubscribe" | "group_unsubscribe" => (EventType::Unsubscribed, None),
        // `group_resubscribe` lifts an unsubscribe: mailhooks has no "subscribed"
        // type, so it is stored as `unknown` (as Postmark's reactivations are).
        _ => (EventType::Unknown, None),
    }
}

/// The id the send API returned as `X-Message-Id`: `sg_message_id` up to its
/// first `.`; without `sg_message_id` (asynchronous bounces), the local part of
/// `smtp-id` (`<X-Message-Id@host>` for API sends); without either, the event's
/// own `sg_event_id`, so the event is still stored and findable.
fn message_id(index: usize, event: &Map<String, Value>) -> Result<String, ParseError> {
    if let Some(full) = json::text(event, "sg_message_id") {
        let prefix = full.split('.').next().unwrap_or_default();
        return Ok(if prefix.is_empty() {
            full.clone()
        } else {
            prefix.to_owned()
        });
    }
    let smtp_local = json::text(event, "smtp-id").and_then(|id| {
        let id = id.trim_start_matches('<').trim_end_matches('>');
        let local = id.split('@').next().unwrap_or_default().trim();
        (!local.is_empty()).then(|| local.to_owned())
    });
    smtp_local
        .or_else(|| json::text(event, "sg_event_id"))
        .ok_or(ParseError::MissingField {
            index,
            field: "sg_message_id",
        })
}

/// A value as text for `details` / `metadata`: scalars as text, arrays and
/// objects as canonical JSON.
fn value_as_text(value: &Value) -> Option<String> {
    match value {
        Value::Array(_) | Value::Object(_) => Some(json::canonical(value)),
        scalar => json::value_text(scalar),
    }
}

fn parse_event(index: usize, value: &Value) -> Result<EmailEvent, ParseError> {
    let event = json::as_object(value, "a SendGrid event")?;
    let missing = |field| ParseError::MissingField { index, field };
    let name = json::text(event, "event").ok_or_else(|| missing("event"))?;
    let seconds = json::int(event, "timestamp").ok_or_else(|| missing("timestamp"))?;
    let bounce_kind = json::text(event, "type");
    let (event_type, bounce_type) = classify(&name, bounce_kind.as_deref());

    let mut out = EmailEvent::new(
        "sendgrid",
        event_type,
        name,
        message_id(index, event)?,
        unix_to_ms(seconds),
        json::canonical(value),
    );
    out.bounce_type = bounce_type;
    out.recipient = json::text(event, "email").map(|e| e.to_lowercase());
    let reason = json::text(event, "reason");
    let response = json::text(event, "response");
    out.status_code = json::text(event, "status").or_else(|| {
        reason
            .as_deref()
            .or(response.as_deref())
            .and_then(json::smtp_code)
    });
    match event_type {
        // A deferral's explanation is in `response`.
        EventType::Deferred => out.reason = reason.or(response),
        _ => {
            out.reason = reason;
            if let Some(response) = response {
                out.details.insert("response".into(), response);
            }
        }
    }
    out.url = json::text(event, "url");
    out.ip = json::text(event, "ip");
    out.user_agent = json::text(event, "useragent");
    out.template_id = json::text(event, "template_id");
    for field in DETAIL_FIELDS {
        if let Some(text) = json::get(event, field).and_then(value_as_text) {
            out.details.insert((*field).to_owned(), text);
        }
    }
    for (key, v) in event {
        if !SENDGRID_FIELDS.contains(&key.as_str())
            && let Some(text) = value_as_text(v)
        {
            out.metadata.insert(key.clone(), text);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{FixedClock, Freshness};

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/tests/fixtures/sendgrid/{name}.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    fn parse_one(name: &str) -> EmailEvent {
        let mut events = SendGrid.parse(&fixture(name)).unwrap();
        assert_eq!(events.len(), 1, "{name}");
        events.remove(0)
    }

    /// The official test vector of sendgrid-python (tests/unit/test_eventwebhook.py).
    const VECTOR_KEY: &str = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE83T4O/n84iotIvIW4mdBgQ/7dAfSmpqIM8kF9mN1flpVKS3GRqe62gw+2fNNRaINXvVpiglSI8eNEc6wEA3F+g==";
    const VECTOR_SIGNATURE: &str = "MEUCIGHQVtGj+Y3LkG9fLcxf3qfI10QysgDWmMOVmxG0u6ZUAiEAyBiXDWzM+uOe5W0JuG+luQAbPIqHh89M15TluLtEZtM=";
    const VECTOR_TIMESTAMP: &str = "1600112502";
    const VECTOR_BODY: &str = "[{\"email\":\"hello@world.com\",\"event\":\"dropped\",\"reason\":\"Bounced Address\",\"sg_event_id\":\"ZHJvcC0xMDk5NDkxOS1MUnpYbF9OSFN0T0doUTRrb2ZTbV9BLTA\",\"sg_message_id\":\"LRzXl_NHStOGhQ4kofSm_A.filterdrecv-p3mdw1-756b745b58-kmzbl-18-5F5FC76C-9.0\",\"smtp-id\":\"<LRzXl_NHStOGhQ4kofSm_A@ismtpd0039p1iad1.sendgrid.net>\",\"timestamp\":1600112492}]\r\n";

    fn headers(ts: &str, sig: &str) -> Vec<(String, String)> {
        vec![
            (SIGNATURE_HEADER.to_ascii_lowercase(), sig.into()),
            (TIMESTAMP_HEADER.to_ascii_lowercase(), ts.into()),
        ]
    }

    fn auth_with(
        keys: &[&str],
        now_secs: i64,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Result<&'static str, AuthError> {
        let secrets: Vec<String> = keys.iter().map(|k| (*k).to_owned()).collect();
        let clock = FixedClock(now_secs * 1000);
        let ctx = AuthContext {
            secrets: &secrets,
            freshness: Freshness::Within(300),
            clock: &clock,
            certificates_dir: None,
            webhook_urls: &[],
        };
        SendGrid.authenticate(
            &Inbound {
                headers,
                query: &[],
                body,
            },
            &ctx,
        )
    }

    fn vector_auth(key: &str, sig: &str, body: &[u8]) -> Result<&'static str, AuthError> {
        auth_with(&[key], 1_600_112_502, &headers(VECTOR_TIMESTAMP, sig), body)
    }

    #[test]
    fn the_official_vector_verifies_over_the_exact_bytes() {
        assert_eq!(
            vector_auth(VECTOR_KEY, VECTOR_SIGNATURE, VECTOR_BODY.as_bytes()),
            Ok("ecdsa-p256")
        );
        // One byte changed anywhere fails: in the body, or the trailing CRLF dropped.
        let mut changed = VECTOR_BODY.as_bytes().to_vec();
        changed[3] ^= 1;
        assert_eq!(
            vector_auth(VECTOR_KEY, VECTOR_SIGNATURE, &changed),
            Err(AuthError::BadSignature)
        );
        let trimmed = VECTOR_BODY.trim_end();
        assert_eq!(
            vector_auth(VECTOR_KEY, VECTOR_SIGNATURE, trimmed.as_bytes()),
            Err(AuthError::BadSignature)
        );
        // The vector's negative cases: another signature, another key.
        let bad_sig = "MEUCIQCtIHJeH93Y+qpYeWrySphQgpNGNr/U+UyUlBkU6n7RAwIgJTz2C+8a8xonZGi6BpSzoQsbVRamr2nlxFDWYNH3j/0=";
        assert_eq!(
            vector_auth(VECTOR_KEY, bad_sig, VECTOR_BODY.as_bytes()),
            Err(AuthError::BadSignature)
        );
        let bad_key = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEqTxd43gyp8IOEto2LdIfjRQrIbsd4SXZkLW6jDutdhXSJCWHw8REntlo7aNDthvj+y7GjUuFDb/R1NGe1OPzpA==";
        assert_eq!(
            vector_auth(bad_key, VECTOR_SIGNATURE, VECTOR_BODY.as_bytes()),
            Err(AuthError::BadSignature)
        );
        // The signed timestamp is part of the message.
        assert_eq!(
            auth_with(
                &[VECTOR_KEY],
                1_600_112_502,
                &headers("1600112503", VECTOR_SIGNATURE),
                VECTOR_BODY.as_bytes()
            ),
            Err(AuthError::BadSignature)
        );
        assert_eq!(
            vector_auth(VECTOR_KEY, VECTOR_SIGNATURE, VECTOR_BODY.as_bytes())
                .and_then(|_| SendGrid
                    .parse(VECTOR_BODY.as_bytes())
                    .map_err(|_| AuthError::BadSignature))
                .map(|events| events[0].message_id.clone()),
            Ok("LRzXl_NHStOGhQ4kofSm_A".to_owned())
        );
    }

    #[test]
    fn every_configured_key_is_tried_and_bad_entries_are_skipped() {
        let [(first, _), (second, _)] = DEVELOPMENT_KEY_PAIRS;
        let body = fixture("docs_delivered");
        let signed = SendGrid.sign(second, 1_700_000_000, &body);
        let pem = format!("-----BEGIN PUBLIC KEY-----\n{second}\n-----END PUBLIC KEY-----\n");
        for keys in [
            vec![first, second],
            vec!["not-a-key", second],
            vec![pem.as_str()],
        ] {
            assert_eq!(
                auth_with(&keys, 1_700_000_000, &signed.headers, &body),
                Ok("ecdsa-p256"),
                "{keys:?}"
            );
        }
        assert_eq!(
            auth_with(&[first], 1_700_000_000, &signed.headers, &body),
            Err(AuthError::BadSignature)
        );
        assert_eq!(
            auth_with(&["not-a-key"], 1_700_000_000, &signed.headers, &body),
            Err(AuthError::NotConfigured),
            "no usable key: refused as unconfigured"
        );
        assert_eq!(
            auth_with(&[], 1_700_000_000, &signed.headers, &body),
            Err(AuthError::NotConfigured)
        );
    }

    #[test]
    fn a_wrong_secret_signs_a_well_formed_request_that_fails() {
        let body = fixture("docs_delivered");
        let signed = SendGrid.sign("not-the-secret", 1_700_000_000, &body);
        let again = SendGrid.sign("not-the-secret", 1_700_000_000, &body);
        assert_eq!(signed, again, "deterministic (RFC 6979)");
        assert_eq!(
            auth_with(
                &[SendGrid.local_secret()],
                1_700_000_000,
                &signed.headers,
                &body
            ),
            Err(AuthError::BadSignature)
        );
    }

    #[test]
    fn header_failures_are_classified() {
        let key = SendGrid.local_secret();
        let body = fixture("docs_delivered");
        let signed = SendGrid.sign(key, 1_700_000_000, &body);
        let at = |now| auth_with(&[key], now, &signed.headers, &body);
        assert_eq!(at(1_700_000_000 + 301), Err(AuthError::StaleTimestamp(300)));
        assert_eq!(at(1_700_000_000 - 301), Err(AuthError::StaleTimestamp(300)));
        assert_eq!(
            auth_with(&[key], 1_700_000_000, &signed.headers[..1], &body),
            Err(AuthError::MissingHeader(TIMESTAMP_HEADER))
        );
        assert_eq!(
            auth_with(&[key], 1_700_000_000, &headers("soon", "MEUC"), &body),
            Err(AuthError::MalformedTimestamp)
        );
        for sig in ["***", "MEUC", &"A".repeat(MAX_SIGNATURE_CHARS + 4)] {
            assert_eq!(
                auth_with(&[key], 1_700_000_000, &headers("1700000000", sig), &body),
                Err(AuthError::BadSignature),
                "{sig}"
            );
        }
    }

    #[test]
    fn keys_are_parsed_once_per_configured_list() {
        let list = vec![SendGrid.local_secret().to_owned()];
        let first = public_keys(&list);
        let second = public_keys(&list);
        // Another test may have swapped the cache in between; when it did not, the
        // same parsed keys are handed out.
        if Arc::ptr_eq(&first, &second) {
            assert_eq!(first.len(), 1);
        }
        assert_eq!(public_keys(&[]).len(), 0);
    }

    /// ECDSA verification cost per request: `cargo test --lib
    /// sendgrid::tests::verify_cost -- --ignored --nocapture`.
    #[test]
    #[ignore = "a measurement, not a check"]
    fn verify_cost() {
        let key = parse_public_key(VECTOR_KEY).unwrap();
        let signature = STANDARD.decode(VECTOR_SIGNATURE).unwrap();
        let keys = [key];
        let rounds = 2_000;
        let start = std::time::Instant::now();
        for _ in 0..rounds {
            verify(
                &keys,
                VECTOR_TIMESTAMP,
                VECTOR_BODY.as_bytes(),
                VECTOR_SIGNATURE,
            )
            .unwrap();
        }
        let per = start.elapsed() / rounds;
        let start = std::time::Instant::now();
        for _ in 0..rounds {
            std::hint::black_box(parse_public_key(VECTOR_KEY));
        }
        let parse = start.elapsed() / rounds;
        assert!(!signature.is_empty());
        println!(
            "ECDSA P-256 verify per request: {per:?}; key parse (once per cold start): {parse:?}"
        );
    }

    #[test]
    fn processed_keeps_categories_and_custom_args() {
        let e = parse_one("processed");
        assert_eq!(e.event_type, EventType::Queued);
        assert_eq!(e.message_id, "wrfRRvF7Q0GgwUo2CvDmEA");
        assert_eq!(e.recipient.as_deref(), Some("recipient@example.com"));
        assert_eq!(e.event_time_ms, 1_461_095_246_000);
        assert_eq!(
            e.details.get("sg_message_id").map(String::as_str),
            Some("wrfRRvF7Q0GgwUo2CvDmEA.filter0425p1mdw1.13037.57168B4A1D.0")
        );
        assert_eq!(
            e.details.get("category").map(String::as_str),
            Some(r#"["tag1","tag2"]"#)
        );
        let metadata: Vec<_> = e
            .metadata
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            metadata,
            [
                ("anymail_id", "3c2f4df8-c6dd-4cd2-9b91-6582b81a0349"),
                ("custom1", "value1"),
                ("custom2", "value2"),
            ]
        );
    }

    #[test]
    fn deferred_reason_is_the_response() {
        let e = parse_one("deferred");
        assert_eq!(e.event_type, EventType::Deferred);
        assert_eq!(e.message_id, "u9Gvi3mzT6iC2poAb58_qQ");
        assert_eq!(e.recipient.as_deref(), Some("recipient@example.com"));
        assert_eq!(e.event_time_ms, 1_461_200_990_000);
        assert_eq!(
            e.reason.as_deref(),
            Some(
                "Email was deferred due to the following reason(s): [IPs were throttled by recipient server]"
            )
        );
        assert_eq!(e.details.get("attempt").map(String::as_str), Some("1"));
    }

    #[test]
    fn bounce_of_type_bounce_is_hard() {
        let e = parse_one("bounce");
        assert_eq!(e.event_type, EventType::Bounced);
        assert_eq!(e.bounce_type, Some(BounceType::Hard));
        assert_eq!(e.message_id, "Lli-03HcQ5-JLybO9fXsJg");
        assert_eq!(e.recipient.as_deref(), Some("noreply@example.com"));
        assert_eq!(e.event_time_ms, 1_461_095_250_000);
        assert_eq!(e.status_code.as_deref(), Some("5.1.1"));
        assert_eq!(
            e.reason.as_deref(),
            Some("550 5.1.1 The email account that you tried to reach does not exist.")
        );
        assert_eq!(e.ip.as_deref(), Some("167.89.17.173"));
        assert_eq!(e.details.get("tls").map(String::as_str), Some("1"));
    }

    #[test]
    fn bounce_of_type_blocked_is_soft() {
        let e = parse_one("bounce_blocked");
        assert_eq!(e.event_type, EventType::Bounced);
        assert_eq!(e.bounce_type, Some(BounceType::Soft));
        assert_eq!(e.message_id, "14c5d75ce93");
        assert_eq!(e.event_time_ms, 1_513_299_569_000);
        assert_eq!(e.details.get("type").map(String::as_str), Some("blocked"));
    }

    #[test]
    fn legacy_blocked_event_is_a_soft_bounce() {
        let body =
            br#"[{"event":"blocked","email":"A@x.com","timestamp":1,"sg_message_id":"m.1"}]"#;
        let e = &SendGrid.parse(body).unwrap()[0];
        assert_eq!(
            (e.event_type, e.bounce_type, e.recipient.as_deref()),
            (EventType::Bounced, Some(BounceType::Soft), Some("a@x.com"))
        );
    }

    #[test]
    fn dropped_is_rejected() {
        let e = parse_one("dropped_bounced_address");
        assert_eq!(e.event_type, EventType::Rejected);
        assert_eq!(e.message_id, "14c5d75ce93");
        assert_eq!(e.reason.as_deref(), Some("Bounced Address"));
        assert_eq!(e.status_code.as_deref(), Some("5.0.0"));
        let e = parse_one("dropped_unsubscribed");
        assert_eq!(e.event_type, EventType::Rejected);
        assert_eq!(e.reason.as_deref(), Some("Unsubscribed Address"));
        // This sample's sg_message_id has no X-Message-Id prefix: its first part is kept.
        assert_eq!(e.message_id, "filter0199p1las1");
    }

    /// One fixture per documented event, split from the docs' all-events array.
    #[test]
    fn every_documented_event_maps() {
        let cases = [
            ("docs_processed", EventType::Queued, None),
            ("docs_deferred", EventType::Deferred, None),
            ("docs_delivered", EventType::Delivered, None),
            ("docs_open", EventType::Opened, None),
            ("docs_click", EventType::Clicked, None),
            ("docs_bounce", EventType::Bounced, Some(BounceType::Hard)),
            ("docs_dropped", EventType::Rejected, None),
            ("docs_spamreport", EventType::Complained, None),
            ("docs_unsubscribe", EventType::Unsubscribed, None),
            ("docs_group_unsubscribe", EventType::Unsubscribed, None),
            ("docs_group_resubscribe", EventType::Unknown, None),
        ];
        for (name, event_type, bounce_type) in cases {
            let e = parse_one(name);
            assert_eq!(
                (e.event_type, e.bounce_type),
                (event_type, bounce_type),
                "{name}"
            );
            assert_eq!(e.message_id, "sg_message_id", "{name}");
            assert_eq!(e.recipient.as_deref(), Some("example@test.com"), "{name}");
            assert_eq!(e.event_time_ms, 1_513_299_569_000, "{name}");
            assert_eq!(
                e.details.get("category").map(String::as_str),
                Some("cat facts")
            );
            assert!(e.metadata.is_empty(), "{name}: {:?}", e.metadata);
        }
        let click = parse_one("docs_click");
        assert_eq!(click.url.as_deref(), Some("http://www.sendgrid.com/"));
        assert_eq!(click.ip.as_deref(), Some("255.255.255.255"));
        assert!(click.user_agent.unwrap().starts_with("Mozilla/4.0"));
        let delivered = parse_one("docs_delivered");
        assert_eq!(
            delivered.details.get("response").map(String::as_str),
            Some("250 OK")
        );
        assert_eq!(delivered.status_code.as_deref(), Some("250"));
        let group = parse_one("docs_group_unsubscribe");
        assert_eq!(
            group.details.get("asm_group_id").map(String::as_str),
            Some("10")
        );
    }

    #[test]
    fn a_batch_is_one_event_per_entry_in_order() {
        let events = SendGrid.parse(&fixture("batch_all_events")).unwrap();
        let names: Vec<_> = events.iter().map(|e| e.provider_event.as_str()).collect();
        assert_eq!(
            names,
            [
                "processed",
                "deferred",
                "delivered",
                "open",
                "click",
                "bounce",
                "dropped",
                "spamreport",
                "unsubscribe",
                "group_unsubscribe",
                "group_resubscribe"
            ]
        );
        // Each raw is its own entry, and parses back (as it is stored, or as a
        // one-entry batch) to the same event.
        for e in &events {
            for body in [e.raw.clone(), format!("[{}]", e.raw)] {
                assert_eq!(SendGrid.parse(body.as_bytes()).unwrap(), vec![e.clone()]);
            }
        }
    }

    #[test]
    fn message_id_falls_back_for_asynchronous_bounces() {
        let body = br#"[{"event":"bounce","email":"a@x.com","timestamp":1,"smtp-id":"<Abc123@ismtpd.sendgrid.net>"}]"#;
        assert_eq!(SendGrid.parse(body).unwrap()[0].message_id, "Abc123");
        let body = br#"[{"event":"bounce","email":"a@x.com","timestamp":1,"sg_event_id":"ev-1"}]"#;
        assert_eq!(SendGrid.parse(body).unwrap()[0].message_id, "ev-1");
        let body = br#"[{"event":"bounce","email":"a@x.com","timestamp":1}]"#;
        assert_eq!(
            SendGrid.parse(body),
            Err(ParseError::MissingField {
                index: 0,
                field: "sg_message_id"
            })
        );
    }

    #[test]
    fn undocumented_events_are_unknown_and_shapes_are_checked() {
        let body =
            br#"[{"event":"machine_learned","email":"a@x.com","timestamp":1,"sg_message_id":"m"}]"#;
        assert_eq!(
            SendGrid.parse(body).unwrap()[0].event_type,
            EventType::Unknown
        );
        assert!(matches!(
            SendGrid.parse(br#""open""#),
            Err(ParseError::WrongShape(_))
        ));
        assert_eq!(SendGrid.parse(b"[]"), Err(ParseError::NoEvents));
        assert!(matches!(
            SendGrid.parse(b"[1]"),
            Err(ParseError::WrongShape(_))
        ));
        assert_eq!(
            SendGrid.parse(br#"[{"event":"open","sg_message_id":"m"}]"#),
            Err(ParseError::MissingField {
                index: 0,
                field: "timestamp"
            })
        );
    }

    #[test]
    fn refresh_moves_times_and_tags_every_entry() {
        let mut sample: Value = serde_json::from_slice(&fixture("batch_all_events")).unwrap();
        SendGrid.refresh_sample(&mut sample, 1_800_000_000_123, "run-1");
        let bytes = serde_json::to_vec(&sample).unwrap();
        for e in SendGrid.parse(&bytes).unwrap() {
            assert_eq!(e.event_time_ms, 1_800_000_000_000);
            assert_eq!(e.metadata.get(TEST_TAG).map(String::as_str), Some("run-1"));
        }
    }

    /// One event of a batch that does not normalize is quarantined alone; the
    /// batch's others are stored exactly as from the valid batch.
    #[test]
    fn one_bad_event_in_a_batch_is_quarantined_alone() {
        use crate::providers::json::batch_check::{self, OneBroken, remove};
        OneBroken {
            provider: &SendGrid,
            items: batch_check::fixture_items("sendgrid", &["batch_all_events"]),
            body: batch_check::array,
            broken: 3,
            damage: |e| remove(e, "event"),
            code: "missing_field",
            repair: |v, item| v["event"] = item["event"].clone(),
        }
        .check();
    }
}
