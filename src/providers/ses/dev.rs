//! The development side of SES: a PUBLIC RSA key and its self-signed
//! certificate (`dev/README.md`) that sign SNS envelopes the way Amazon SNS
//! does, for the local run command, the sample events, the tests and benches.
//! A message signed with it verifies only where `SNS_CERTIFICATES_DIR` holds
//! [`CERTIFICATE_FILE`]; AWS has no such file, so a deployment refuses it.

use std::path::{Path, PathBuf};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use base64::Engine;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::event::format_rfc3339_ms;

use super::sns::{Envelope, MessageType, string_to_sign};

/// The file name of the development certificate: an AWS-shaped name, so the
/// URL passes the same rule as a real one.
pub const CERTIFICATE_FILE: &str = "SimpleNotificationService-6d61696c686f6f6b732d6c6f63616c21.pem";

/// The development certificate (PEM), public.
pub const CERTIFICATE_PEM: &str =
    include_str!("dev/SimpleNotificationService-6d61696c686f6f6b732d6c6f63616c21.pem");

/// The development private key (PKCS #8 DER), public: never trusted anywhere.
const KEY_PKCS8: &[u8] = include_bytes!("dev/development-key.pk8.der");

/// The `SigningCertURL` of development envelopes.
pub fn certificate_url() -> String {
    format!("https://sns.us-east-1.amazonaws.com/{CERTIFICATE_FILE}")
}

/// Writes the development certificate into `dir` (created if needed), for
/// `SNS_CERTIFICATES_DIR` of the local run command and the tests.
pub fn write_certificate(dir: &Path) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(CERTIFICATE_FILE);
    std::fs::write(&path, CERTIFICATE_PEM)?;
    Ok(path)
}

/// A per-process temporary `SNS_CERTIFICATES_DIR` holding the development
/// certificate, written once.
pub fn temporary_certificate_dir() -> std::io::Result<PathBuf> {
    static DIR: std::sync::OnceLock<Result<PathBuf, String>> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!(
            "mailhooks-dev-sns-certificates-{}",
            std::process::id()
        ));
        write_certificate(&dir)
            .map(|_| dir)
            .map_err(|e| e.to_string())
    })
    .clone()
    .map_err(std::io::Error::other)
}

/// An SNS `Notification` envelope carrying `body` as its `Message`, from
/// `topic_arn`, published at `unix_secs`, signed (SignatureVersion 2) with the
/// development key. The `MessageId` is derived from the content, so signing
/// the same body at the same time gives the same envelope.
pub fn notification(topic_arn: &str, unix_secs: i64, body: &[u8]) -> Vec<u8> {
    envelope(
        MessageType::Notification,
        topic_arn,
        unix_secs,
        &String::from_utf8_lossy(body),
    )
}

/// A subscription or unsubscribe confirmation from `topic_arn`, signed like
/// [`notification`], whose `SubscribeURL` is on SNS's host.
pub fn confirmation(kind: MessageType, topic_arn: &str, unix_secs: i64) -> Vec<u8> {
    envelope(
        kind,
        topic_arn,
        unix_secs,
        "You have chosen to subscribe to the topic. To confirm the subscription, visit the SubscribeURL.",
    )
}

fn envelope(kind: MessageType, topic_arn: &str, unix_secs: i64, message: &str) -> Vec<u8> {
    let type_name = match kind {
        MessageType::Notification => "Notification",
        MessageType::SubscriptionConfirmation => "SubscriptionConfirmation",
        MessageType::UnsubscribeConfirmation => "UnsubscribeConfirmation",
    };
    let timestamp = format_rfc3339_ms(unix_secs.saturating_mul(1000));
    let message_id = content_uuid(topic_arn, &timestamp, message);
    let control = kind != MessageType::Notification;
    let token = control.then(|| content_uuid(type_name, &timestamp, topic_arn));
    let subscribe_url = token.as_ref().map(|token| {
        format!(
            "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn={topic_arn}&Token={token}"
        )
    });
    let unsigned = Envelope {
        kind: Some(type_name.into()),
        message_id: Some(message_id.as_str().into()),
        topic_arn: Some(topic_arn.into()),
        message: Some(message.into()),
        timestamp: Some(timestamp.as_str().into()),
        signature_version: Some("2".into()),
        subscribe_url: subscribe_url.as_deref().map(Into::into),
        token: token.as_deref().map(Into::into),
        ..Envelope::default()
    };
    let signature = sign(string_to_sign(&unsigned, kind).as_bytes());
    let mut out = Map::new();
    out.insert("Type".into(), type_name.into());
    out.insert("MessageId".into(), message_id.into());
    if let (Some(token), Some(url)) = (token, subscribe_url) {
        out.insert("Token".into(), token.into());
        out.insert("SubscribeURL".into(), url.into());
    }
    out.insert("TopicArn".into(), topic_arn.into());
    out.insert("Message".into(), message.into());
    out.insert("Timestamp".into(), timestamp.into());
    out.insert("SignatureVersion".into(), "2".into());
    out.insert("Signature".into(), signature.into());
    out.insert("SigningCertURL".into(), certificate_url().into());
    if !control {
        out.insert(
            "UnsubscribeURL".into(),
            format!(
                "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe&SubscriptionArn={topic_arn}:local"
            )
            .into(),
        );
    }
    serde_json::to_vec_pretty(&Value::Object(out)).unwrap_or_default()
}

/// A UUID-shaped id from SHA-256 of the content.
fn content_uuid(topic: &str, timestamp: &str, message: &str) -> String {
    let mut hasher = Sha256::new();
    for part in [topic, timestamp, message] {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    let h = hex::encode(&hasher.finalize()[..16]);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Base64 SHA256withRSA of `message` with the development key; empty if the
/// embedded key were unusable (the tests prove it is not).
fn sign(message: &[u8]) -> String {
    let Ok(key) = RsaKeyPair::from_pkcs8(KEY_PKCS8) else {
        return String::new();
    };
    let mut signature = vec![0; key.public_modulus_len()];
    if key
        .sign(
            &RSA_PKCS1_SHA256,
            &SystemRandom::new(),
            message,
            &mut signature,
        )
        .is_err()
    {
        return String::new();
    }
    base64::engine::general_purpose::STANDARD.encode(signature)
}
