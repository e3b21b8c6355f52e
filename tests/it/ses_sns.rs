//! Amazon SES through the handler: SNS envelopes signed with the development key
//! (verified through the test harness's SNS_CERTIFICATES_DIR), control messages
//! that store nothing, the real AWS-signed vector, and a deployment without the
//! development certificate. Nothing here reaches the network.

use crate::common::*;
use mailhooks::providers::ses::dev;
use mailhooks::providers::ses::sns::MessageType;

const TOPIC: &str = "ses-old-secret";

fn fixture_text(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/ses/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

#[tokio::test]
async fn a_signed_ses_event_is_stored_once_per_recipient_and_a_retry_stores_nothing() {
    let db = Emulator::start().await;
    let app = app(&db);
    let body = dev::notification(
        TOPIC,
        NOW_SECS,
        &fixture("ses", "bounce_multiple_recipients"),
    );
    let (status, reply) = post(&app, "ses", "", &[], &body).await;
    assert_eq!(
        (status, reply["stored"].as_u64()),
        (200, Some(2)),
        "{reply}"
    );
    let (status, reply) = post(&app, "ses", "", &[], &body).await;
    assert_eq!(
        (status, reply["duplicates"].as_u64()),
        (200, Some(2)),
        "{reply}"
    );
    let items = db.items().await;
    assert_eq!(items.len(), 2);
    // Undated SES event: the SNS Timestamp (signed) dates it.
    assert!(
        items
            .iter()
            .all(|i| i["event_time_ms"].as_n().unwrap() == &NOW_MS.to_string()),
        "{items:?}"
    );
}

#[tokio::test]
async fn control_messages_are_answered_200_and_store_nothing() {
    let db = Emulator::start().await;
    let app = app(&db);
    let validated = dev::notification(
        TOPIC,
        NOW_SECS,
        b"Successfully validated SNS topic for Amazon SES event publishing.",
    );
    let unsubscribe = dev::confirmation(MessageType::UnsubscribeConfirmation, TOPIC, NOW_SECS);
    for (body, kind) in [
        (validated, "text_notification"),
        (unsubscribe, "unsubscribe_confirmation"),
    ] {
        let (status, reply) = post(&app, "ses", "", &[], &body).await;
        assert_eq!(
            (status, reply["control"].as_str()),
            (200, Some(kind)),
            "{reply}"
        );
    }
    assert!(db.items().await.is_empty());
}

#[tokio::test]
async fn a_subscription_confirmation_from_another_topic_is_refused_before_any_fetch() {
    let db = Emulator::start().await;
    let app = app(&db);
    let body = dev::confirmation(
        MessageType::SubscriptionConfirmation,
        "arn:aws:sns:us-east-1:999999999999:someone-elses-topic",
        NOW_SECS,
    );
    let (status, reply) = post(&app, "ses", "", &[], &body).await;
    assert_eq!(
        (status, reply["error"].as_str()),
        (401, Some("topic_not_allowed"))
    );
}

#[tokio::test]
async fn a_deployment_without_the_development_certificate_refuses_development_signatures() {
    let db = Emulator::start().await;
    let empty = std::env::temp_dir().join(format!("mailhooks-no-dev-cert-{}", std::process::id()));
    std::fs::create_dir_all(&empty).unwrap();
    let config = config(&[("SNS_CERTIFICATES_DIR", empty.to_str().unwrap())]);
    let app = app_with(&db.endpoint, config);
    let body = dev::notification(TOPIC, NOW_SECS, &fixture("ses", "delivered"));
    let (status, reply) = post(&app, "ses", "", &[], &body).await;
    assert_eq!(
        (status, reply["error"].as_str()),
        (503, Some("certificate_not_provided")),
        "{reply}"
    );
    assert!(db.items().await.is_empty());
}

#[tokio::test]
async fn the_real_aws_signed_message_is_accepted_through_a_certificate_folder_and_a_changed_byte_is_not()
 {
    let db = Emulator::start().await;
    let dir = std::env::temp_dir().join(format!("mailhooks-aws-cert-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("SimpleNotificationService-7ff5318490ec183fbaddaa2a969abfda.pem"),
        fixture_text("sns_signing_cert.pem.txt"),
    )
    .unwrap();
    let config = config(&[
        ("SNS_CERTIFICATES_DIR", dir.to_str().unwrap()),
        (
            "SES_TOPIC_ARNS",
            "arn:aws:sns:us-east-2:295079676684:publish-and-verify-892f85fe-4836-424d-8188-ab85bef0f362",
        ),
        // Recorded in 2022: its timestamp and certificate are long past.
        ("MAILHOOKS_DEV_SKIP_FRESHNESS", "true"),
    ]);
    let app = app_with(&db.endpoint, config);
    let body = fixture_text("sns_signed_v1.txt");
    // Its Message is "Hello world": text, not an SES event.
    let (status, reply) = post(&app, "ses", "", &[], &body).await;
    assert_eq!(
        (status, reply["control"].as_str()),
        (200, Some("text_notification")),
        "{reply}"
    );
    let tampered = String::from_utf8(body)
        .unwrap()
        .replace("Hello world", "Hello World");
    let (status, reply) = post(&app, "ses", "", &[], tampered.as_bytes()).await;
    assert_eq!(
        (status, reply["error"].as_str()),
        (401, Some("bad_signature"))
    );
    // Without the development switch the 2022 message is refused.
    let strict = app_with(
        &db.endpoint,
        crate::common::config(&[
            ("SNS_CERTIFICATES_DIR", dir.to_str().unwrap()),
            (
                "SES_TOPIC_ARNS",
                "arn:aws:sns:us-east-2:295079676684:publish-and-verify-892f85fe-4836-424d-8188-ab85bef0f362",
            ),
        ]),
    );
    let (status, reply) = post(&strict, "ses", "", &[], &fixture_text("sns_signed_v1.txt")).await;
    assert_eq!(
        (status, reply["error"].as_str()),
        (401, Some("stale_timestamp"))
    );
    assert!(db.items().await.is_empty());
}

/// SES keys that a forger adds at the top level of a captured genuine
/// Notification: SNS signs only its listed keys, so the signature still holds.
const FORGED_BOUNCE: &str = r#""eventType":"Bounce","bounce":{"bounceType":"Permanent","bounceSubType":"General","timestamp":"2022-07-28T21:23:58.317Z","feedbackId":"forged","bouncedRecipients":[{"emailAddress":"ceo@victim.com"}]},"mail":{"messageId":"x","timestamp":"2022-07-28T21:23:58.317Z","destination":["ceo@victim.com"]},"#;

/// `envelope` with `keys` inserted right after its opening brace.
fn with_top_level(envelope: &[u8], keys: &str) -> Vec<u8> {
    let text = std::str::from_utf8(envelope).unwrap();
    let at = text.find('{').unwrap() + 1;
    format!("{}{keys}{}", &text[..at], &text[at..]).into_bytes()
}

#[tokio::test]
async fn unsigned_ses_keys_added_to_a_genuine_aws_message_are_refused_and_store_nothing() {
    let db = Emulator::start().await;
    let dir =
        std::env::temp_dir().join(format!("mailhooks-aws-cert-forged-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("SimpleNotificationService-7ff5318490ec183fbaddaa2a969abfda.pem"),
        fixture_text("sns_signing_cert.pem.txt"),
    )
    .unwrap();
    let app = app_with(
        &db.endpoint,
        config(&[
            ("SNS_CERTIFICATES_DIR", dir.to_str().unwrap()),
            (
                "SES_TOPIC_ARNS",
                "arn:aws:sns:us-east-2:295079676684:publish-and-verify-892f85fe-4836-424d-8188-ab85bef0f362",
            ),
            // Recorded in 2022; the attack replays a capture within 3,900 s.
            ("MAILHOOKS_DEV_SKIP_FRESHNESS", "true"),
        ]),
    );
    let genuine = fixture_text("sns_signed_v1.txt");
    let forged = with_top_level(&genuine, FORGED_BOUNCE);
    let (status, reply) = post(&app, "ses", "", &[], &forged).await;
    assert_eq!(
        (status, reply["error"].as_str()),
        (401, Some("malformed_envelope")),
        "{reply}"
    );
    // One key SNS does not send is enough.
    let (status, reply) = post(&app, "ses", "", &[], &with_top_level(&genuine, r#""x":1,"#)).await;
    assert_eq!(
        (status, reply["error"].as_str()),
        (401, Some("malformed_envelope"))
    );
    // The same message untouched still verifies.
    let (status, _) = post(&app, "ses", "", &[], &genuine).await;
    assert_eq!(status, 200);
    assert!(db.items().await.is_empty());
}

#[tokio::test]
async fn unsigned_ses_keys_added_to_a_signed_ses_event_are_refused_and_store_nothing() {
    let db = Emulator::start().await;
    let app = app(&db);
    let genuine = dev::notification(TOPIC, NOW_SECS, &fixture("ses", "delivered"));
    let forged = with_top_level(&genuine, FORGED_BOUNCE);
    let (status, reply) = post(&app, "ses", "", &[], &forged).await;
    assert_eq!(
        (status, reply["error"].as_str()),
        (401, Some("malformed_envelope")),
        "{reply}"
    );
    assert!(db.items().await.is_empty());
}

#[tokio::test]
async fn a_certificate_of_another_region_than_the_topic_is_refused_before_any_fetch() {
    let db = Emulator::start().await;
    let topic = "arn:aws:sns:eu-west-1:123456789012:ses-events";
    let app = app_with(&db.endpoint, config(&[("SES_TOPIC_ARNS", topic)]));
    // The development certificate URL is on sns.us-east-1.amazonaws.com; its
    // file is in the harness's folder, so without the region rule this would
    // verify and be stored.
    let body = dev::notification(topic, NOW_SECS, &fixture("ses", "delivered"));
    let (status, reply) = post(&app, "ses", "", &[], &body).await;
    assert_eq!(
        (status, reply["error"].as_str()),
        (401, Some("bad_certificate_url")),
        "{reply}"
    );
    assert!(db.items().await.is_empty());
}
