//! The Amazon SNS envelope: its decoding, the AWS URL rule for certificate and
//! subscription URLs, the string that SNS signs, and signature verification
//! (SignatureVersion 1 = SHA1withRSA, 2 = SHA256withRSA, PKCS #1 v1.5).
//!
//! Allocation before verification: the envelope is decoded once into borrowed
//! strings; a value is copied only when it holds JSON escapes (an SES event in
//! `Message` always does), so decoding holds at most one copy of the body, and
//! the string to sign is a second one. Nothing else grows with the body before
//! the signature has been checked.

use std::borrow::Cow;

use aws_lc_rs::signature::{
    RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY, RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey,
};
use base64::Engine;
use serde::Deserialize;
use serde::de::IgnoredAny;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::auth::{AuthError, Freshness, matches_any};

/// Past side of the freshness window on the signed `Timestamp`, whatever
/// `SIGNATURE_TOLERANCE_SECS` says: SNS retries an HTTP(S) delivery for up to
/// 3,600 s after publishing (its hard limit), plus 300 s for delivery latency
/// and clock skew. A narrower window would refuse SNS's own late retries, and
/// a refused retry is a lost event.
pub const SNS_RETRY_WINDOW_SECS: u64 = 3_900;

/// The three message types SNS posts to an HTTP(S) endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    /// A published message (an SES event, or SES's plain-text topic check).
    Notification,
    /// The handshake of a new subscription: confirmed by visiting `SubscribeURL`.
    SubscriptionConfirmation,
    /// The notice that the subscription was deleted.
    UnsubscribeConfirmation,
}

impl MessageType {
    fn parse(text: &str) -> Option<MessageType> {
        match text {
            "Notification" => Some(MessageType::Notification),
            "SubscriptionConfirmation" => Some(MessageType::SubscriptionConfirmation),
            "UnsubscribeConfirmation" => Some(MessageType::UnsubscribeConfirmation),
            _ => None,
        }
    }
}

/// An SNS message as posted to an HTTP(S) subscription, strings borrowed from
/// the body where they hold no escapes. Every field is optional here so that
/// each absence gets its own 401 code; a repeated key is a decoding error.
///
/// Any key outside SNS's documented set is a decoding error too (401
/// `malformed_envelope`): only some keys are signed, so an unsigned extra one
/// (`eventType`, `mail`…) added to a captured genuine message must never be
/// read as if SNS had sent it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope<'a> {
    /// `Notification`, `SubscriptionConfirmation` or `UnsubscribeConfirmation`.
    #[serde(rename = "Type", borrow)]
    pub kind: Option<Cow<'a, str>>,
    /// SNS's id of the published message; the same on every retry.
    #[serde(rename = "MessageId", borrow)]
    pub message_id: Option<Cow<'a, str>>,
    /// The topic that published it: must be in the allow-list.
    #[serde(rename = "TopicArn", borrow)]
    pub topic_arn: Option<Cow<'a, str>>,
    /// Present only when the publisher set one; signed only when present.
    #[serde(rename = "Subject", borrow)]
    pub subject: Option<Cow<'a, str>>,
    /// The payload: an SES event as JSON text, or a text message.
    #[serde(rename = "Message", borrow)]
    pub message: Option<Cow<'a, str>>,
    /// Publish time, ISO 8601 UTC with milliseconds: the signed time.
    #[serde(rename = "Timestamp", borrow)]
    pub timestamp: Option<Cow<'a, str>>,
    /// `1` (SHA1withRSA) or `2` (SHA256withRSA).
    #[serde(rename = "SignatureVersion", borrow)]
    pub signature_version: Option<Cow<'a, str>>,
    /// Base64 RSA signature over [`string_to_sign`].
    #[serde(rename = "Signature", borrow)]
    pub signature: Option<Cow<'a, str>>,
    /// Where the signing certificate is: checked by [`check_certificate_url`].
    #[serde(rename = "SigningCertURL", borrow)]
    pub signing_cert_url: Option<Cow<'a, str>>,
    /// The URL that confirms a subscription (control messages only).
    #[serde(rename = "SubscribeURL", borrow)]
    pub subscribe_url: Option<Cow<'a, str>>,
    /// The subscription token (control messages only).
    #[serde(rename = "Token", borrow)]
    pub token: Option<Cow<'a, str>>,
    /// The URL that ends the subscription (notifications): unsigned, never read.
    #[serde(rename = "UnsubscribeURL")]
    pub unsubscribe_url: Option<IgnoredAny>,
    /// Attributes a publisher set (SES sets none): unsigned, never read.
    #[serde(rename = "MessageAttributes")]
    pub message_attributes: Option<IgnoredAny>,
}

/// Decodes an envelope; `None` when the body is not one JSON object of strings
/// with keys of the SNS envelope only (or repeats a key).
pub fn decode(body: &[u8]) -> Option<Envelope<'_>> {
    serde_json::from_slice(body).ok()
}

/// For a body that does not decode as an envelope: true when it is a JSON
/// object with no (or an empty) `Signature`, an unsigned request (401
/// `missing_signature`) rather than a malformed signed one. Reads nothing but
/// that one key.
pub fn lacks_signature(body: &[u8]) -> bool {
    #[derive(Deserialize)]
    struct SignatureOnly<'a> {
        #[serde(rename = "Signature", borrow)]
        signature: Option<Cow<'a, str>>,
    }
    serde_json::from_slice::<SignatureOnly<'_>>(body)
        .is_ok_and(|s| s.signature.as_deref().is_none_or(str::is_empty))
}

/// An envelope whose required fields are all present.
#[derive(Debug)]
pub struct Checked<'e> {
    /// The message type.
    pub kind: MessageType,
    /// The envelope itself.
    pub envelope: &'e Envelope<'e>,
    /// The signing certificate URL (passed the AWS URL rule).
    pub cert_url: &'e str,
    /// The certificate's file name: the URL's last path segment.
    pub cert_file: &'e str,
    /// The signed publish time, in Unix milliseconds.
    pub timestamp_ms: i64,
}

/// The checks that need no certificate, in the order that gives each failure
/// its own code: signature present, shape, version, topic allow-list,
/// certificate URL, subscription URL, freshness.
pub fn precheck<'e>(
    envelope: &'e Envelope<'e>,
    allowed_topics: &[String],
    freshness: Freshness,
    now_ms: i64,
) -> Result<Checked<'e>, AuthError> {
    if envelope.signature.as_deref().is_none_or(str::is_empty) {
        return Err(AuthError::MissingSignature);
    }
    let kind = envelope
        .kind
        .as_deref()
        .and_then(MessageType::parse)
        .ok_or(AuthError::MalformedEnvelope)?;
    let required = [
        &envelope.message_id,
        &envelope.topic_arn,
        &envelope.message,
        &envelope.timestamp,
        &envelope.signing_cert_url,
    ];
    if required.iter().any(|field| field.is_none()) {
        return Err(AuthError::MalformedEnvelope);
    }
    if kind != MessageType::Notification
        && (envelope.subscribe_url.is_none() || envelope.token.is_none())
    {
        return Err(AuthError::MalformedEnvelope);
    }
    if !matches!(envelope.signature_version.as_deref(), Some("1" | "2")) {
        return Err(AuthError::UnsupportedSignatureVersion);
    }
    let topic = envelope.topic_arn.as_deref().unwrap_or_default();
    if !matches_any(topic.as_bytes(), allowed_topics) {
        return Err(AuthError::TopicNotAllowed);
    }
    let cert_url = envelope.signing_cert_url.as_deref().unwrap_or_default();
    let cert_file = check_certificate_url(cert_url).ok_or(AuthError::BadCertificateUrl)?;
    if !certificate_matches_topic(cert_url, topic) {
        return Err(AuthError::BadCertificateUrl);
    }
    if kind == MessageType::SubscriptionConfirmation
        && !is_subscribe_url(envelope.subscribe_url.as_deref().unwrap_or_default())
    {
        return Err(AuthError::BadSubscribeUrl);
    }
    let timestamp = envelope.timestamp.as_deref().unwrap_or_default();
    let timestamp_ms = parse_time(timestamp).ok_or(AuthError::MalformedTimestamp)?;
    check_fresh(timestamp_ms, freshness, now_ms)?;
    Ok(Checked {
        kind,
        envelope,
        cert_url,
        cert_file,
        timestamp_ms,
    })
}

/// The signed time must be at most `max(tolerance, SNS_RETRY_WINDOW_SECS)` old
/// and at most `tolerance` in the future (clock skew only: SNS never signs a
/// time it has not reached).
fn check_fresh(timestamp_ms: i64, freshness: Freshness, now_ms: i64) -> Result<(), AuthError> {
    let Freshness::Within(tolerance) = freshness else {
        return Ok(());
    };
    let past = tolerance.max(SNS_RETRY_WINDOW_SECS);
    let to_ms = |secs: u64| {
        i64::try_from(secs)
            .unwrap_or(i64::MAX / 2)
            .saturating_mul(1000)
    };
    let age_ms = now_ms.saturating_sub(timestamp_ms);
    if age_ms > to_ms(past) || -age_ms > to_ms(tolerance) {
        return Err(AuthError::StaleTimestamp(past));
    }
    Ok(())
}

/// An SNS time (`2022-07-28T21:23:58.317Z`) in Unix milliseconds.
pub fn parse_time(text: &str) -> Option<i64> {
    if !matches!(text.as_bytes().get(10), Some(b'T' | b't')) {
        return None;
    }
    let at = OffsetDateTime::parse(text, &Rfc3339).ok()?;
    i64::try_from(at.unix_timestamp_nanos().div_euclid(1_000_000)).ok()
}

/// The host rule AWS's own validators use: `sns.<region>.amazonaws.com` or
/// `sns.<region>.amazonaws.com.cn`, region letters, digits and dashes (three
/// or more). Nothing else under amazonaws.com: S3 buckets live there too.
pub fn is_sns_host(host: &str) -> bool {
    sns_host_region(host).is_some()
}

/// The region of an SNS host (see [`is_sns_host`]); `None` for another host.
fn sns_host_region(host: &str) -> Option<&str> {
    let rest = host.strip_prefix("sns.")?;
    let region = rest
        .strip_suffix(".amazonaws.com")
        .or_else(|| rest.strip_suffix(".amazonaws.com.cn"))?;
    let shaped = region.len() >= 3
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    shaped.then_some(region)
}

/// The region of a URL on an SNS host (a checked `SigningCertURL`).
pub fn url_region(url: &str) -> Option<&str> {
    let after = url.strip_prefix("https://")?;
    let end = after.find(['/', '?', '#']).unwrap_or(after.len());
    sns_host_region(&after[..end])
}

/// The region of an SNS topic ARN, `arn:<partition>:sns:<region>:<account>:<name>`;
/// `None` when the text is not one.
pub fn topic_region(topic_arn: &str) -> Option<&str> {
    let mut parts = topic_arn.splitn(6, ':');
    let shaped =
        parts.next() == Some("arn") && parts.next().is_some() && parts.next() == Some("sns");
    let region = parts.next().filter(|r| shaped && !r.is_empty())?;
    parts.next()?;
    parts.next()?;
    Some(region)
}

/// A topic's messages are signed by a certificate of the topic's own region:
/// any other region is refused before a certificate is opened or fetched, so
/// a forger cannot spend the fetch budget on every region's host. A topic
/// that is not an ARN (the development topic; SNS never sends one) has no
/// region to compare.
fn certificate_matches_topic(cert_url: &str, topic_arn: &str) -> bool {
    topic_region(topic_arn).is_none_or(|region| url_region(cert_url) == Some(region))
}

/// Splits `https://<host><rest>`; `None` for another scheme, userinfo or a port.
fn split_https(url: &str) -> Option<(&str, &str)> {
    let after = url.strip_prefix("https://")?;
    let end = after.find(['/', '?', '#']).unwrap_or(after.len());
    let (host, rest) = after.split_at(end);
    is_sns_host(host).then_some((host, rest))
}

/// Checks a `SigningCertURL` and returns its file name. Besides the host rule:
/// the path is one segment shaped as AWS names its certificates,
/// `SimpleNotificationService-<1 to 64 letters or digits>.pem`, with no query
/// or fragment. The shape bounds what an unauthenticated request can make us
/// fetch or open (no traversal in `SNS_CERTIFICATES_DIR`).
pub fn check_certificate_url(url: &str) -> Option<&str> {
    let (_, rest) = split_https(url)?;
    let file = rest.strip_prefix('/')?;
    let stem = file
        .strip_suffix(".pem")?
        .strip_prefix("SimpleNotificationService-")?;
    let shaped = (1..=64).contains(&stem.len()) && stem.bytes().all(|b| b.is_ascii_alphanumeric());
    shaped.then_some(file)
}

/// Checks a `SubscribeURL`: the same host rule, path `/`, a query, no fragment.
pub fn is_subscribe_url(url: &str) -> bool {
    split_https(url).is_some_and(|(_, rest)| rest.starts_with("/?") && !rest.contains('#'))
}

/// The string SNS signs: `Key\nValue\n` for the keys of the message type, in
/// byte order, over the JSON-decoded values. `Subject` only when present.
pub fn string_to_sign(envelope: &Envelope<'_>, kind: MessageType) -> String {
    let fields: &[(&str, &Option<Cow<'_, str>>)] = match kind {
        MessageType::Notification => &[
            ("Message", &envelope.message),
            ("MessageId", &envelope.message_id),
            ("Subject", &envelope.subject),
            ("Timestamp", &envelope.timestamp),
            ("TopicArn", &envelope.topic_arn),
            ("Type", &envelope.kind),
        ],
        MessageType::SubscriptionConfirmation | MessageType::UnsubscribeConfirmation => &[
            ("Message", &envelope.message),
            ("MessageId", &envelope.message_id),
            ("SubscribeURL", &envelope.subscribe_url),
            ("Timestamp", &envelope.timestamp),
            ("Token", &envelope.token),
            ("TopicArn", &envelope.topic_arn),
            ("Type", &envelope.kind),
        ],
    };
    let len = fields
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| k.len() + v.len() + 2))
        .sum();
    let mut out = String::with_capacity(len);
    for (key, value) in fields {
        if let Some(value) = value {
            out.push_str(key);
            out.push('\n');
            out.push_str(value);
            out.push('\n');
        }
    }
    out
}

/// Verifies the envelope's signature with an RSA public key (PKCS #1
/// `RSAPublicKey` DER, as in a certificate's key bit string).
pub fn verify(checked: &Checked<'_>, rsa_public_key: &[u8]) -> Result<(), AuthError> {
    let envelope = checked.envelope;
    let signature = base64::engine::general_purpose::STANDARD
        .decode(envelope.signature.as_deref().unwrap_or_default())
        .map_err(|_| AuthError::BadSignature)?;
    let message = string_to_sign(envelope, checked.kind);
    let algorithm = match envelope.signature_version.as_deref() {
        Some("1") => &RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
        Some("2") => &RSA_PKCS1_2048_8192_SHA256,
        _ => return Err(AuthError::UnsupportedSignatureVersion),
    };
    UnparsedPublicKey::new(algorithm, rsa_public_key)
        .verify(message.as_bytes(), &signature)
        .map_err(|_| AuthError::BadSignature)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_url_rule_table() {
        let good = [
            "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-f3ecfb7224c7233fe7bb5f59f96de52f.pem",
            "https://sns.us-gov-west-1.amazonaws.com/SimpleNotificationService-abc.pem",
            "https://sns.cn-north-1.amazonaws.com.cn/SimpleNotificationService-0123.pem",
        ];
        for url in good {
            assert!(check_certificate_url(url).is_some(), "{url}");
        }
        let pem = "SimpleNotificationService-f3ecfb7224c7233fe7bb5f59f96de52f.pem";
        let evil = [
            format!("https://sns.us-east-1.amazonaws.com.evil.com/{pem}"),
            format!("https://evil.com/sns.us-east-1.amazonaws.com/{pem}"),
            format!("https://evil.com/?x=sns.us-east-1.amazonaws.com/{pem}"),
            format!("http://sns.us-east-1.amazonaws.com/{pem}"),
            "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.crt".into(),
            "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem.txt".into(),
            format!("https://sns.us-east-1.amazonaws.com@evil.com/{pem}"),
            format!("https://evil.com@sns.us-east-1.amazonaws.com/{pem}"),
            format!("https://user:pass@sns.us-east-1.amazonaws.com/{pem}"),
            format!("https://sns.us-east-1.amazonaws.com:8443/{pem}"),
            format!("https://s3.amazonaws.com/{pem}"),
            format!("https://sns-bucket.s3.amazonaws.com/{pem}"),
            format!("https://s3.us-east-1.amazonaws.com/sns.us-east-1.amazonaws.com/{pem}"),
            format!("https://sns.amazonaws.com/{pem}"),
            format!("https://sns.us.amazonaws.com/{pem}"),
            format!("https://sns.evil.com.amazonaws.com/{pem}"),
            format!("https://SNS.us-east-1.amazonaws.com/{pem}"),
            format!("https://sns.us-east-1.amazonaws.com/a/{pem}"),
            format!("https://sns.us-east-1.amazonaws.com/../{pem}"),
            format!("https://sns.us-east-1.amazonaws.com/{pem}?x=1"),
            format!("https://sns.us-east-1.amazonaws.com/{pem}#x"),
            "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-..%2f.pem".into(),
            "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-.pem".into(),
            "https://sns.us-east-1.amazonaws.com/evil.pem".into(),
            format!(" https://sns.us-east-1.amazonaws.com/{pem}"),
            format!("https://sns.us-east-1.amazonaws.com./{pem}"),
            String::new(),
        ];
        for url in &evil {
            assert_eq!(check_certificate_url(url), None, "{url}");
        }
    }

    #[test]
    fn subscribe_url_rule() {
        assert!(is_subscribe_url(
            "https://sns.us-west-2.amazonaws.com/?Action=ConfirmSubscription&TopicArn=arn:aws:sns:us-west-2:123456789012:MyTopic&Token=2336412f37"
        ));
        for url in [
            "http://sns.us-west-2.amazonaws.com/?Action=ConfirmSubscription",
            "https://sns.us-west-2.amazonaws.com.evil.com/?Action=ConfirmSubscription",
            "https://evil.com/?https://sns.us-west-2.amazonaws.com/",
            "https://sns.us-west-2.amazonaws.com/other?Action=ConfirmSubscription",
            "https://x@sns.us-west-2.amazonaws.com/?Action=ConfirmSubscription",
        ] {
            assert!(!is_subscribe_url(url), "{url}");
        }
    }

    #[test]
    fn string_to_sign_follows_the_key_sets() {
        let envelope: Envelope = serde_json::from_str(
            r#"{"Type":"Notification","MessageId":"m","TopicArn":"t","Message":"a\nb","Timestamp":"ts","Token":"no","SubscribeURL":"no"}"#,
        )
        .unwrap();
        assert_eq!(
            string_to_sign(&envelope, MessageType::Notification),
            "Message\na\nb\nMessageId\nm\nTimestamp\nts\nTopicArn\nt\nType\nNotification\n"
        );
        let with_subject: Envelope = serde_json::from_str(
            r#"{"Type":"Notification","MessageId":"m","TopicArn":"t","Message":"x","Subject":"s","Timestamp":"ts"}"#,
        )
        .unwrap();
        assert!(string_to_sign(&with_subject, MessageType::Notification).contains("Subject\ns\n"));
        let confirm: Envelope = serde_json::from_str(
            r#"{"Type":"UnsubscribeConfirmation","MessageId":"m","TopicArn":"t","Message":"x","Timestamp":"ts","Token":"k","SubscribeURL":"u","Subject":"ignored"}"#,
        )
        .unwrap();
        assert_eq!(
            string_to_sign(&confirm, MessageType::UnsubscribeConfirmation),
            "Message\nx\nMessageId\nm\nSubscribeURL\nu\nTimestamp\nts\nToken\nk\nTopicArn\nt\nType\nUnsubscribeConfirmation\n"
        );
    }

    #[test]
    fn a_repeated_key_is_not_an_envelope() {
        assert!(decode(br#"{"Signature":"a","Signature":"b"}"#).is_none());
        assert!(decode(br#"{"Signature":1}"#).is_none());
        assert!(decode(b"[]").is_none());
        assert!(decode(br#"{"Signature":"a","Other":[1,{"x":2}]}"#).is_none());
    }

    #[test]
    fn only_the_keys_sns_sends_decode() {
        let genuine = br#"{"Type":"Notification","Signature":"a","UnsubscribeURL":"u","MessageAttributes":{"k":{"Type":"String","Value":"v"}}}"#;
        assert!(decode(genuine).is_some());
        for extra in [
            r#""eventType":"Bounce""#,
            r#""notificationType":"Bounce""#,
            r#""mail":{"messageId":"x"}"#,
            r#""bounce":{}"#,
            r#""SigningCertUrl":"https://sns.us-east-1.amazonaws.com/x.pem""#,
        ] {
            let body = format!(r#"{{"Type":"Notification","Signature":"a",{extra}}}"#);
            assert!(decode(body.as_bytes()).is_none(), "{extra}");
        }
    }

    #[test]
    fn the_certificate_region_must_be_the_topic_region() {
        let url = |region: &str, suffix: &str| {
            format!("https://sns.{region}.amazonaws.{suffix}/SimpleNotificationService-abc.pem")
        };
        let east = "arn:aws:sns:us-east-1:123456789012:ses";
        assert_eq!(topic_region(east), Some("us-east-1"));
        assert_eq!(
            topic_region("arn:aws-cn:sns:cn-north-1:1:t"),
            Some("cn-north-1")
        );
        assert_eq!(topic_region("arn:aws:sqs:us-east-1:1:t"), None);
        assert_eq!(topic_region("arn:aws:sns:us-east-1"), None);
        assert_eq!(topic_region("local-topic"), None);
        assert!(certificate_matches_topic(&url("us-east-1", "com"), east));
        assert!(!certificate_matches_topic(&url("eu-west-1", "com"), east));
        assert!(!certificate_matches_topic(
            &url("us-east-1", "com.cn"),
            "arn:aws-cn:sns:cn-north-1:1:t"
        ));
        assert!(certificate_matches_topic(
            &url("cn-north-1", "com.cn"),
            "arn:aws-cn:sns:cn-north-1:1:t"
        ));
        assert!(certificate_matches_topic(
            &url("eu-west-1", "com"),
            "local-topic"
        ));
    }

    #[test]
    fn the_window_covers_sns_retries_in_the_past_and_only_skew_in_the_future() {
        let now = 10_000_000_000;
        let within = Freshness::Within(300);
        assert_eq!(check_fresh(now - 3_600_000, within, now), Ok(()));
        assert_eq!(check_fresh(now - 3_900_000, within, now), Ok(()));
        assert_eq!(
            check_fresh(now - 3_900_001, within, now),
            Err(AuthError::StaleTimestamp(3_900))
        );
        assert_eq!(check_fresh(now + 300_000, within, now), Ok(()));
        assert!(check_fresh(now + 300_001, within, now).is_err());
        // A wider configured window widens both sides.
        assert_eq!(
            check_fresh(now - 7_000_000, Freshness::Within(7_200), now),
            Ok(())
        );
        assert_eq!(check_fresh(0, Freshness::Disabled, now), Ok(()));
    }

    #[test]
    fn sns_times_are_parsed_to_the_millisecond() {
        assert_eq!(
            parse_time("2022-07-28T21:23:58.317Z"),
            Some(1_659_043_438_317)
        );
        assert_eq!(parse_time("2022-07-28 21:23:58.317Z"), None);
        assert_eq!(parse_time("yesterday"), None);
    }
}
