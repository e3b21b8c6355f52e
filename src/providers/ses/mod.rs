//! Amazon SES, route `ses`: SES events published to an SNS topic, delivered by
//! an SNS HTTPS subscription. Each request is one SNS message, authenticated by
//! its SNS signature (certificate from an `sns.<region>.amazonaws.com` URL) and
//! a topic allow-list (`SES_TOPIC_ARNS`); subscription handshakes are confirmed.
//!
//! [`Ses::parse`] accepts both the SNS envelope and a bare SES event (what
//! EventBridge's `detail` or an SNS→Lambda record's `Message` holds, and what
//! a stored `raw` holds); a body with SNS's `Type` key is an envelope only,
//! whose signed `Message` alone gives the events. See docs/providers/ses.md.

mod certs;
pub mod dev;
mod events;
pub mod sns;

use std::sync::LazyLock;

use futures_util::future::BoxFuture;
use serde_json::{Map, Value};

use crate::auth::AuthError;
use crate::event::{EmailEvent, format_rfc3339_ms};
use crate::providers::json::{self, ParseError};
use crate::providers::{AuthContext, AuthScheme, Control, Inbound, Provider, Signed, Unavailable};

pub use certs::{CertStore, Certificate, Fetch, Fetched, HttpsFetcher, Source};

/// The certificates of this container (see [`certs`] for the bounds).
static CERTIFICATES: LazyLock<CertStore> = LazyLock::new(CertStore::new);
/// The HTTPS client for certificates and subscription confirmations.
static HTTPS: HttpsFetcher = HttpsFetcher::new();

/// Bound on confirming a subscription (a GET of `SubscribeURL`); nothing is
/// stored on that path, so it may use most of the function's 2 s.
pub const CONFIRM_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(1500);

/// Control kinds: what an authenticated SNS message that carries no SES event was.
const SUBSCRIPTION_CONFIRMATION: &str = "subscription_confirmation";
const UNSUBSCRIBE_CONFIRMATION: &str = "unsubscribe_confirmation";
const TEXT_NOTIFICATION: &str = "text_notification";

/// Amazon SES through SNS.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ses;

impl Provider for Ses {
    fn name(&self) -> &'static str {
        events::PROVIDER
    }

    fn secrets_env(&self) -> &'static str {
        "SES_TOPIC_ARNS"
    }

    fn scheme(&self) -> AuthScheme {
        AuthScheme::SnsEnvelope
    }

    fn prepare<'a>(
        &'a self,
        request: &'a Inbound<'a>,
        ctx: &'a AuthContext<'a>,
    ) -> Option<BoxFuture<'a, Result<(), Unavailable>>> {
        // Only a message that passes every check needing no certificate (topic
        // allowed, URL shape, fresh) may make us open or fetch anything.
        let envelope = sns::decode(request.body)?;
        let now_ms = ctx.clock.now_ms();
        let checked = sns::precheck(&envelope, ctx.secrets, ctx.freshness, now_ms).ok()?;
        let source = Source::new(ctx.certificates_dir, checked.cert_url, checked.cert_file);
        Some(Box::pin(async move {
            CERTIFICATES.ensure(&source, now_ms, &HTTPS).await
        }))
    }

    fn authenticate(
        &self,
        request: &Inbound<'_>,
        ctx: &AuthContext<'_>,
    ) -> Result<&'static str, AuthError> {
        authenticate_with(&CERTIFICATES, request, ctx)
    }

    fn control(&self, request: &Inbound<'_>) -> Option<Control> {
        let envelope = sns::decode(request.body)?;
        let kind = match envelope.kind.as_deref()? {
            "SubscriptionConfirmation" => SUBSCRIPTION_CONFIRMATION,
            "UnsubscribeConfirmation" => UNSUBSCRIBE_CONFIRMATION,
            // SES's "Successfully validated SNS topic…" notice: text, not an event.
            "Notification" if is_plain_text(envelope.message.as_deref()?) => TEXT_NOTIFICATION,
            _ => return None,
        };
        Some(Control { kind })
    }

    fn complete_control<'a>(
        &'a self,
        request: &'a Inbound<'a>,
        control: Control,
    ) -> Option<BoxFuture<'a, Result<(), Unavailable>>> {
        if control.kind != SUBSCRIPTION_CONFIRMATION {
            return None;
        }
        let url = sns::decode(request.body)?.subscribe_url?.into_owned();
        Some(Box::pin(
            async move { confirm_subscription(&HTTPS, &url).await },
        ))
    }

    fn parse(&self, body: &[u8]) -> Result<Vec<EmailEvent>, ParseError> {
        parse(body)
    }

    fn local_secret(&self) -> &'static str {
        "local-ses-topic"
    }

    /// Wraps `body` in a development-signed SNS Notification. A body that is
    /// already a Notification (a file of `events/`) is re-signed: its `Message`
    /// is wrapped anew, never an envelope inside an envelope.
    fn sign(&self, secret: &str, unix_secs: i64, body: &[u8]) -> Signed {
        let inner = sns::decode(body)
            .filter(|e| e.kind.as_deref() == Some("Notification"))
            .and_then(|e| e.message)
            .map(|m| m.into_owned().into_bytes());
        Signed {
            query: String::new(),
            headers: Vec::new(),
            body: dev::notification(secret, unix_secs, inner.as_deref().unwrap_or(body)),
        }
    }

    fn refresh_sample(&self, sample: &mut Value, now_ms: i64, run_id: &str) {
        let Some(record) = sample.as_object_mut() else {
            return;
        };
        let now = Value::from(format_rfc3339_ms(now_ms));
        for (key, value) in record.iter_mut() {
            if let Some(detail) = value.as_object_mut()
                && (key == "mail" || detail.contains_key("timestamp"))
            {
                detail.insert("timestamp".into(), now.clone());
            }
        }
        let Some(Value::Object(mail)) = record.get_mut("mail") else {
            return;
        };
        let tags = mail
            .entry("tags")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(tags) = tags.as_object_mut() {
            tags.insert(TEST_TAG.into(), Value::from(vec![run_id]));
        }
    }
}

/// The message tag `send-test-event` adds, so its events are findable.
const TEST_TAG: &str = "mailhooks_test";

/// Authentication against a given certificate store (the provider's, or a
/// test's): allow-list, envelope checks, certificate, validity, signature.
pub fn authenticate_with(
    store: &CertStore,
    request: &Inbound<'_>,
    ctx: &AuthContext<'_>,
) -> Result<&'static str, AuthError> {
    if ctx.secrets.is_empty() {
        return Err(AuthError::NotConfigured);
    }
    let envelope = sns::decode(request.body).ok_or_else(|| {
        if sns::lacks_signature(request.body) {
            AuthError::MissingSignature
        } else {
            AuthError::MalformedEnvelope
        }
    })?;
    let now_ms = ctx.clock.now_ms();
    let checked = sns::precheck(&envelope, ctx.secrets, ctx.freshness, now_ms)?;
    let source = Source::new(ctx.certificates_dir, checked.cert_url, checked.cert_file);
    let certificate = store
        .lookup(&source, now_ms)
        .unwrap_or(Err(AuthError::UnknownCertificate))?;
    certificate.check_validity(ctx.freshness, now_ms)?;
    sns::verify(&checked, &certificate.rsa_public_key)?;
    Ok(match envelope.signature_version.as_deref() {
        Some("1") => "sns_sha1",
        _ => "sns_sha256",
    })
}

/// Confirms a subscription by GETting its `SubscribeURL` (already checked by
/// the AWS URL rule during authentication, and checked again here). Anything
/// but a 200 within [`CONFIRM_TIMEOUT`] is a 503, so SNS sends it again.
pub async fn confirm_subscription(fetcher: &dyn Fetch, url: &str) -> Result<(), Unavailable> {
    let failed = |detail: &str| Unavailable {
        code: "subscription_not_confirmed",
        detail: detail.to_owned(),
    };
    if !sns::is_subscribe_url(url) {
        return Err(failed("SubscribeURL is not an Amazon SNS URL"));
    }
    match tokio::time::timeout(CONFIRM_TIMEOUT, fetcher.get(url, 64 * 1024)).await {
        Ok(Ok(Fetched { status: 200, .. })) => Ok(()),
        Ok(Ok(Fetched { status, .. })) => Err(failed(&format!("SNS answered {status}"))),
        Ok(Err(e)) => Err(failed(&e)),
        Err(_) => Err(failed("timed out")),
    }
}

/// True when `text` is a plain-text message (SES's notice after subscribing), not
/// meant as JSON: one that opens like a JSON object or array is parsed as an
/// event, so a broken or foreign payload is refused rather than silently dropped.
fn is_plain_text(text: &str) -> bool {
    !text.trim_start().starts_with(['{', '['])
}

/// Whether a JSON object is an SES event rather than an envelope.
fn is_ses_event(obj: &Map<String, Value>) -> bool {
    obj.contains_key("eventType") || obj.contains_key("notificationType")
}

/// Parses an SNS `Notification` envelope, or a bare SES event (what a direct
/// invocation hands over, or a stored `raw`).
///
/// Any body with SNS's `Type` key is an envelope and nothing else: only its
/// signed `Message` gives events, and an envelope carrying SES keys of its own
/// (unsigned, added to a captured genuine message) is refused, never read as
/// a bare event. An HTTP request is always such an envelope (authentication
/// requires one, with no key outside SNS's set), so its events come only from
/// what SNS signed. SES events have no `Type` key.
pub fn parse(body: &[u8]) -> Result<Vec<EmailEvent>, ParseError> {
    let value = json::parse_body(body)?;
    let obj = json::as_object(&value, "an SES event or SNS message")?;
    if obj.contains_key("Type") {
        return parse_notification(body);
    }
    if is_ses_event(obj) {
        return events::map(&value, None, json::canonical(&value));
    }
    Err(ParseError::WrongShape(
        "neither an SES event (eventType, notificationType) nor an SNS message".into(),
    ))
}

/// Parses an SNS `Notification` envelope: its events come only from the
/// signed `Message`, dated by the signed `Timestamp` when they carry no time
/// of their own. Nothing else in the envelope is read.
fn parse_notification(body: &[u8]) -> Result<Vec<EmailEvent>, ParseError> {
    let envelope = sns::decode(body).ok_or_else(|| {
        ParseError::WrongShape("an SNS message with keys SNS does not send".into())
    })?;
    let Some(message) = envelope.message.as_deref() else {
        return Err(ParseError::WrongShape(
            "an SNS message without a Message".into(),
        ));
    };
    if envelope.kind.as_deref() != Some("Notification") {
        return Err(ParseError::WrongShape("not an SNS Notification".into()));
    }
    let event: Value = serde_json::from_str(message).map_err(|_| ParseError::NoEvents)?;
    if !event.as_object().is_some_and(is_ses_event) {
        return Err(ParseError::WrongShape(
            "the SNS Message is not an SES event".into(),
        ));
    }
    let sns_time = envelope.timestamp.as_deref().and_then(sns::parse_time);
    // An event without a time of its own is dated by the envelope; its raw keeps
    // the envelope's signed fields so that re-normalizing it finds the same time.
    let raw = if events::own_time(&event)?.is_some() {
        json::canonical(&event)
    } else {
        let signed = [
            ("Type", &envelope.kind),
            ("MessageId", &envelope.message_id),
            ("TopicArn", &envelope.topic_arn),
            ("Timestamp", &envelope.timestamp),
            ("Message", &envelope.message),
        ];
        let kept: Map<String, Value> = signed
            .into_iter()
            .filter_map(|(k, v)| Some((k.to_owned(), Value::from(v.as_deref()?))))
            .collect();
        json::canonical(&Value::Object(kept))
    };
    events::map(&event, sns_time, raw)
}

#[cfg(test)]
mod tests;
