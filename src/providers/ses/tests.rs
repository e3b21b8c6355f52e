//! SES unit tests: one per event type (bare and through an SNS envelope), the
//! real SNS-signed vector, development signing, control messages and the
//! subscription handshake (with an injected fetcher: no network).

use std::path::Path;
use std::sync::Mutex;

use super::*;
use crate::auth::{FixedClock, Freshness};
use crate::event::{BounceType, EventType};

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/ses/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn events(name: &str) -> Vec<EmailEvent> {
    let events = Ses.parse(&fixture(&format!("{name}.json"))).unwrap();
    // Through an envelope the mapping is the same (these events carry their own times).
    let wrapped = Ses.parse(&dev::notification(
        "arn:topic",
        1_700_000_000,
        &fixture(&format!("{name}.json")),
    ));
    if events.iter().all(|e| e.event_time_ms != 0) {
        assert_eq!(wrapped.as_ref(), Ok(&events), "{name} in an envelope");
    }
    // Re-normalizing a stored raw gives the same events.
    for event in &events {
        assert_eq!(
            Ses.parse(event.raw.as_bytes()).unwrap(),
            events,
            "{name} raw"
        );
    }
    events
}

fn one(name: &str) -> EmailEvent {
    let mut all = events(name);
    assert_eq!(all.len(), 1, "{name}");
    all.remove(0)
}

const EXAMPLE_ID: &str = "EXAMPLE7c191be45-e9aedb9a-02f9-4d12-a87d-dd0099a07f8a-000000";

#[test]
fn bounce_permanent_is_hard_with_the_recipient_diagnostic() {
    let e = one("bounce");
    assert_eq!(e.event_type, EventType::Bounced);
    assert_eq!(e.provider_event, "Bounce");
    assert_eq!(e.message_id, EXAMPLE_ID);
    assert_eq!(e.recipient.as_deref(), Some("recipient@example.com"));
    assert_eq!(e.event_time_ms, 1_501_893_662_669); // bounce.timestamp 2017-08-05T00:41:02.669Z
    assert_eq!(e.bounce_type, Some(BounceType::Hard));
    assert_eq!(e.reason.as_deref(), Some("smtp; 550 5.1.1 user unknown"));
    assert_eq!(e.status_code.as_deref(), Some("5.1.1"));
    assert_eq!(e.details["bounceSubType"], "General");
    assert_eq!(e.details["action"], "failed");
    assert_eq!(e.details["ses:configuration-set"], "ConfigSet");
    assert_eq!(e.subject.as_deref(), Some("Message sent from Amazon SES"));
    assert_eq!(
        e.sender.as_deref(),
        Some("Sender Name <sender@example.com>")
    );
}

#[test]
fn bounce_types_transient_and_undetermined() {
    let body = |kind: &str| {
        format!(
            r#"{{"eventType":"Bounce","mail":{{"messageId":"m","timestamp":"2020-01-01T00:00:00.000Z","destination":["a@x.com"]}},
               "bounce":{{"bounceType":"{kind}","bouncedRecipients":[{{"emailAddress":"A@X.com"}}],"timestamp":"2020-01-01T00:00:01.000Z"}}}}"#
        )
    };
    let parse = |kind: &str| Ses.parse(body(kind).as_bytes()).unwrap().remove(0);
    assert_eq!(parse("Transient").bounce_type, Some(BounceType::Soft));
    let undetermined = parse("Undetermined");
    assert_eq!(undetermined.event_type, EventType::Bounced);
    assert_eq!(undetermined.bounce_type, None);
    assert_eq!(undetermined.recipient.as_deref(), Some("a@x.com"));
    assert_eq!(undetermined.event_time_ms, 1_577_836_801_000);
}

#[test]
fn bounce_fans_out_to_bounced_recipients_only() {
    let all = events("bounce_multiple_recipients");
    let recipients: Vec<_> = all.iter().map(|e| e.recipient.clone().unwrap()).collect();
    assert_eq!(recipients, ["jane@example.com", "richard@example.com"]);
    assert!(all.iter().all(|e| e.event_type == EventType::Bounced
        && e.bounce_type == Some(BounceType::Hard)
        && e.message_id == "00000137860315fd-34208509-5b74-41f3-95c5-22c1edc3c924-000000"
        // Bare and undated: the epoch, so a retry keeps its key.
        && e.event_time_ms == 0));
}

#[test]
fn an_undated_event_in_an_envelope_takes_the_sns_timestamp_and_keeps_it_in_raw() {
    let body = dev::notification(
        "arn:topic",
        1_700_000_000,
        &fixture("bounce_multiple_recipients.json"),
    );
    let all = Ses.parse(&body).unwrap();
    assert!(all.iter().all(|e| e.event_time_ms == 1_700_000_000_000));
    assert_eq!(Ses.parse(all[0].raw.as_bytes()).unwrap(), all);
}

#[test]
fn complaint() {
    let e = one("complaint");
    assert_eq!(e.event_type, EventType::Complained);
    assert_eq!(e.recipient.as_deref(), Some("recipient@example.com"));
    assert_eq!(e.event_time_ms, 1_501_893_662_669);
    assert_eq!(e.reason.as_deref(), Some("abuse"));
    assert_eq!(
        e.details["feedbackId"],
        "01000157c44f053b-61b59c11-9236-11e6-8f96-7be8aexample-000000"
    );
    assert!(e.user_agent.as_deref().unwrap().starts_with("Mozilla/5.0"));
}

#[test]
fn delivery() {
    let e = one("delivered");
    assert_eq!(e.event_type, EventType::Delivered);
    assert_eq!(e.recipient.as_deref(), Some("recipient@example.com"));
    assert_eq!(e.event_time_ms, 1_476_919_264_133); // delivery.timestamp 2016-10-19T23:21:04.133Z
    assert_eq!(e.reason.as_deref(), Some("250 2.6.0 Message received"));
    assert_eq!(e.status_code.as_deref(), Some("250 2.6.0"));
    assert_eq!(e.details["processingTimeMillis"], "11893");
}

#[test]
fn delivery_delay_is_deferred() {
    let e = one("delivery_delay");
    assert_eq!(e.event_type, EventType::Deferred);
    assert_eq!(e.recipient.as_deref(), Some("recipient@example.com"));
    assert_eq!(e.event_time_ms, 1_592_267_140_095); // 2020-06-16T00:25:40.095Z
    assert_eq!(
        e.reason.as_deref(),
        Some("smtp; 421 4.4.1 Unable to connect to remote host")
    );
    assert_eq!(e.status_code.as_deref(), Some("4.4.1"));
    assert_eq!(e.details["delayType"], "TransientCommunicationFailure");
    assert_eq!(e.details["expirationTime"], "2020-06-16T00:25:40.914Z");
}

#[test]
fn open_is_attributed_to_every_destination() {
    let e = one("open");
    assert_eq!(e.event_type, EventType::Opened);
    assert_eq!(e.recipient.as_deref(), Some("recipient@example.com"));
    assert_eq!(e.event_time_ms, 1_502_316_019_652); // open.timestamp 2017-08-09T22:00:19.652Z
    assert_eq!(e.ip.as_deref(), Some("192.0.2.1"));
    assert!(e.user_agent.is_some());
}

#[test]
fn click_carries_the_link_and_custom_tags_as_metadata() {
    let e = one("click");
    assert_eq!(e.event_type, EventType::Clicked);
    assert_eq!(e.event_time_ms, 1_502_322_685_570); // click.timestamp 2017-08-09T23:51:25.570Z
    assert_eq!(
        e.url.as_deref(),
        Some("http://docs.aws.amazon.com/ses/latest/DeveloperGuide/send-email-smtp.html")
    );
    assert_eq!(e.ip.as_deref(), Some("192.0.2.1"));
}

#[test]
fn reject_is_rejected_at_the_send_time() {
    let e = one("reject");
    assert_eq!(e.event_type, EventType::Rejected);
    assert_eq!(e.event_time_ms, 1_476_466_695_211); // mail.timestamp 2016-10-14T17:38:15.211Z
    assert_eq!(e.reason.as_deref(), Some("Bad content"));
    assert_eq!(e.recipient.as_deref(), Some("sender@example.com"));
}

#[test]
fn rendering_failure_is_rejected_with_the_template() {
    let e = one("rendering_failure");
    assert_eq!(e.event_type, EventType::Rejected);
    assert_eq!(e.provider_event, "Rendering Failure");
    assert_eq!(e.event_time_ms, 1_516_646_586_197); // mail.timestamp 2018-01-22T18:43:06.197Z
    assert_eq!(e.template_id.as_deref(), Some("MyTemplate"));
    assert!(e.reason.as_deref().unwrap().contains("attributeName"));
}

#[test]
fn send_is_queued_at_the_send_time() {
    let e = one("send");
    assert_eq!(e.event_type, EventType::Queued);
    assert_eq!(e.event_time_ms, 1_476_421_336_645); // mail.timestamp 2016-10-14T05:02:16.645Z
    assert_eq!(e.message_id, EXAMPLE_ID);
}

#[test]
fn subscription_opt_out_is_unsubscribed_and_opt_in_unknown() {
    let e = one("subscription");
    assert_eq!(e.event_type, EventType::Unsubscribed);
    assert_eq!(e.event_time_ms, 1_641_949_217_910); // subscription.timestamp 2022-01-12T01:00:17.910Z
    assert_eq!(e.details["optedOutTopics"], "ExampleTopicName");
    assert_eq!(e.details["unsubscribeAll"], "true");
    assert_eq!(e.details["contactList"], "ContactListName");
    assert_eq!(e.metadata["myCustomTag1"], "myCustomValue1");
    let opt_in = br#"{"eventType":"Subscription","mail":{"messageId":"m","destination":["a@x.com"]},
        "subscription":{"timestamp":"2022-01-12T01:00:17.910Z","newTopicPreferences":{"unsubscribeAll":false,
        "topicSubscriptionStatus":[{"topicName":"T","subscriptionStatus":"OptIn"}]}}}"#;
    assert_eq!(Ses.parse(opt_in).unwrap()[0].event_type, EventType::Unknown);
}

#[test]
fn identity_notifications_map_like_event_publishing() {
    let bounce = one("notification_bounce");
    assert_eq!(bounce.event_type, EventType::Bounced);
    assert_eq!(bounce.provider_event, "Bounce");
    assert_eq!(bounce.bounce_type, Some(BounceType::Hard));
    assert_eq!(bounce.event_time_ms, 1_453_906_778_237); // 2016-01-27T14:59:38.237Z
    let complaint = one("notification_complaint");
    assert_eq!(complaint.event_type, EventType::Complained);
    assert_eq!(complaint.recipient.as_deref(), Some("richard@example.com"));
    let delivery = one("notification_delivery");
    assert_eq!(delivery.event_type, EventType::Delivered);
    assert_eq!(
        delivery.message_id,
        "0000014644fe5ef6-9a483358-9170-4cb4-a269-f5dcdf415321-000000"
    );
}

#[test]
fn undocumented_types_are_unknown_and_stored() {
    let body = br#"{"eventType":"Teleport","mail":{"messageId":"m","timestamp":"2020-01-01T00:00:00Z","destination":["A@x.com","b@x.com"]}}"#;
    let all = Ses.parse(body).unwrap();
    assert_eq!(all.len(), 2);
    assert!(
        all.iter()
            .all(|e| e.event_type == EventType::Unknown && e.event_time_ms == 1_577_836_800_000)
    );
    assert_eq!(all[0].recipient.as_deref(), Some("a@x.com"));
}

#[test]
fn bodies_that_are_not_ses_events_are_refused() {
    for body in [
        &b"[]"[..],
        br#"{"Type":"Notification","Message":"{\"RecordType\":\"Delivery\"}"}"#,
        br#"{"Type":"SubscriptionConfirmation","Message":"{\"eventType\":\"Send\"}"}"#,
        br#"{"eventType":"Send"}"#,
        br#"{"eventType":"Send","mail":{"timestamp":"yesterday","messageId":"m"}}"#,
        br#"{"MessageID":"x","RecordType":"Bounce"}"#,
    ] {
        assert!(
            Ses.parse(body).is_err(),
            "{}",
            String::from_utf8_lossy(body)
        );
    }
    let text = dev::notification(
        "t",
        0,
        b"Successfully validated SNS topic for Amazon SES event publishing.",
    );
    assert_eq!(Ses.parse(&text), Err(ParseError::NoEvents));
}

// ---------------------------------------------------------------------------
// Authentication.

/// The real SNS-signed message of the AWS PHP validator's tests.
fn real_vector() -> Vec<u8> {
    fixture("sns_signed_v1.txt")
}

const REAL_TOPIC: &str =
    "arn:aws:sns:us-east-2:295079676684:publish-and-verify-892f85fe-4836-424d-8188-ab85bef0f362";
/// 2022-07-28T21:24:00Z: two seconds after the vector's Timestamp, inside its certificate.
const REAL_NOW_MS: i64 = 1_659_043_440_000;

/// A certificate directory holding `files` (name → PEM), unique per test.
fn cert_dir(test: &str, files: &[(&str, &[u8])]) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("mailhooks-ses-{test}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (name, pem) in files {
        std::fs::write(dir.join(name), pem).unwrap();
    }
    dir
}

/// Runs the provider's two steps, as the handler does, against `store`.
async fn check(
    store: &CertStore,
    fetcher: &dyn Fetch,
    body: &[u8],
    secrets: &[String],
    freshness: Freshness,
    now_ms: i64,
    dir: Option<&Path>,
) -> Result<&'static str, String> {
    let request = Inbound {
        headers: &[],
        query: &[],
        body,
    };
    let clock = FixedClock(now_ms);
    let ctx = AuthContext {
        secrets,
        freshness,
        clock: &clock,
        certificates_dir: dir,
        webhook_urls: &[],
    };
    if let Ok(checked) = sns::decode(body)
        .ok_or(AuthError::MalformedEnvelope)
        .and_then(|e| {
            sns::precheck(&e, secrets, freshness, now_ms)
                .map(|c| Source::new(dir, c.cert_url, c.cert_file))
        })
    {
        store
            .ensure(&checked, now_ms, fetcher)
            .await
            .map_err(|e| e.code.to_owned())?;
    }
    authenticate_with(store, &request, &ctx).map_err(|e| e.code().to_owned())
}

/// A fetcher that must never be called.
struct NoNetwork;

impl Fetch for NoNetwork {
    fn get<'a>(&'a self, url: &'a str, _: usize) -> BoxFuture<'a, Result<Fetched, String>> {
        panic!("no network in tests: {url}")
    }
}

#[tokio::test]
async fn the_real_sns_vector_verifies_through_the_certificate_dir_and_a_changed_byte_fails() {
    let dir = cert_dir(
        "real",
        &[(
            "SimpleNotificationService-7ff5318490ec183fbaddaa2a969abfda.pem",
            &fixture("sns_signing_cert.pem.txt"),
        )],
    );
    let topics = vec![REAL_TOPIC.to_owned()];
    let store = CertStore::new();
    let body = real_vector();
    // At its own time, inside the certificate's validity, with the real window.
    let at_its_time = check(
        &store,
        &NoNetwork,
        &body,
        &topics,
        Freshness::Within(300),
        REAL_NOW_MS,
        Some(&dir),
    )
    .await;
    assert_eq!(at_its_time, Ok("sns_sha1"));
    // Today: stale and expired, accepted only with the development switch.
    let today = 1_795_342_530_000;
    assert_eq!(
        check(
            &store,
            &NoNetwork,
            &body,
            &topics,
            Freshness::Within(300),
            today,
            Some(&dir)
        )
        .await,
        Err("stale_timestamp".into())
    );
    assert_eq!(
        check(
            &store,
            &NoNetwork,
            &body,
            &topics,
            Freshness::Disabled,
            today,
            Some(&dir)
        )
        .await,
        Ok("sns_sha1")
    );
    // One byte of Message changed.
    let text = String::from_utf8(body.clone()).unwrap();
    let tampered = text.replace("\"Hello world\"", "\"Hello World\"");
    assert_ne!(tampered, text);
    assert_eq!(
        check(
            &store,
            &NoNetwork,
            tampered.as_bytes(),
            &topics,
            Freshness::Disabled,
            today,
            Some(&dir)
        )
        .await,
        Err("bad_signature".into())
    );
    // Another topic, or none configured.
    let other = vec!["arn:aws:sns:us-east-2:295079676684:other".to_owned()];
    assert_eq!(
        check(
            &store,
            &NoNetwork,
            &body,
            &other,
            Freshness::Disabled,
            today,
            Some(&dir)
        )
        .await,
        Err("topic_not_allowed".into())
    );
    assert_eq!(
        check(
            &store,
            &NoNetwork,
            &body,
            &[],
            Freshness::Disabled,
            today,
            Some(&dir)
        )
        .await,
        Err("not_configured".into())
    );
}

#[tokio::test]
async fn an_expired_certificate_is_refused_without_the_development_switch() {
    // A window wide enough for the vector's timestamp, so only the certificate is late.
    let dir = cert_dir(
        "expired",
        &[(
            "SimpleNotificationService-7ff5318490ec183fbaddaa2a969abfda.pem",
            &fixture("sns_signing_cert.pem.txt"),
        )],
    );
    let after_expiry = 1_661_990_400_000; // 2022-09-01
    let result = check(
        &CertStore::new(),
        &NoNetwork,
        &real_vector(),
        &[REAL_TOPIC.to_owned()],
        Freshness::Within(400 * 86_400),
        after_expiry,
        Some(&dir),
    )
    .await;
    assert_eq!(result, Err("certificate_expired".into()));
}

#[tokio::test]
async fn the_real_vector_verifies_with_a_fetched_certificate() {
    struct Aws;
    impl Fetch for Aws {
        fn get<'a>(&'a self, url: &'a str, _: usize) -> BoxFuture<'a, Result<Fetched, String>> {
            assert_eq!(
                url,
                "https://sns.us-east-2.amazonaws.com/SimpleNotificationService-7ff5318490ec183fbaddaa2a969abfda.pem"
            );
            Box::pin(async {
                Ok(Fetched {
                    status: 200,
                    body: fixture("sns_signing_cert.pem.txt"),
                })
            })
        }
    }
    let result = check(
        &CertStore::new(),
        &Aws,
        &real_vector(),
        &[REAL_TOPIC.to_owned()],
        Freshness::Within(300),
        REAL_NOW_MS,
        None,
    )
    .await;
    assert_eq!(result, Ok("sns_sha1"));
}

#[tokio::test]
async fn development_signatures_verify_only_where_the_development_certificate_is() {
    let topic = vec!["arn:aws:sns:us-east-1:123456789012:ses-events".to_owned()];
    let body = Ses
        .sign(&topic[0], 1_795_342_530, &fixture("delivered.json"))
        .body;
    let now = 1_795_342_530_000;
    let with_dev = dev::temporary_certificate_dir().unwrap();
    assert_eq!(
        check(
            &CertStore::new(),
            &NoNetwork,
            &body,
            &topic,
            Freshness::Within(300),
            now,
            Some(&with_dev)
        )
        .await,
        Ok("sns_sha256")
    );
    // A deployment with its own directory, without the development certificate: 503, never 200.
    let empty = cert_dir("empty", &[]);
    assert_eq!(
        check(
            &CertStore::new(),
            &NoNetwork,
            &body,
            &topic,
            Freshness::Within(300),
            now,
            Some(&empty)
        )
        .await,
        Err("certificate_not_provided".into())
    );
    // A deployment that fetches: AWS has no such certificate.
    struct NotFound;
    impl Fetch for NotFound {
        fn get<'a>(&'a self, _: &'a str, _: usize) -> BoxFuture<'a, Result<Fetched, String>> {
            Box::pin(async {
                Ok(Fetched {
                    status: 404,
                    body: b"<Error/>".to_vec(),
                })
            })
        }
    }
    assert_eq!(
        check(
            &CertStore::new(),
            &NotFound,
            &body,
            &topic,
            Freshness::Within(300),
            now,
            None
        )
        .await,
        Err("unknown_certificate".into())
    );
}

/// SES keys a forger adds at the top level of a captured genuine Notification.
const FORGED_BOUNCE: &str = r#""eventType":"Bounce","bounce":{"bounceType":"Permanent","bounceSubType":"General","timestamp":"2022-07-28T21:23:58.317Z","feedbackId":"f","bouncedRecipients":[{"emailAddress":"ceo@victim.com"}]},"mail":{"messageId":"x","timestamp":"2022-07-28T21:23:58.317Z","destination":["ceo@victim.com"]},"#;

/// `envelope` with `keys` inserted right after its opening brace.
fn with_top_level(envelope: &[u8], keys: &str) -> Vec<u8> {
    let text = std::str::from_utf8(envelope).unwrap();
    let at = text.find('{').unwrap() + 1;
    format!("{}{keys}{}", &text[..at], &text[at..]).into_bytes()
}

#[tokio::test]
async fn unsigned_ses_keys_beside_a_genuine_signature_are_refused_and_never_parsed() {
    let dir = cert_dir(
        "forged",
        &[(
            "SimpleNotificationService-7ff5318490ec183fbaddaa2a969abfda.pem",
            &fixture("sns_signing_cert.pem.txt"),
        )],
    );
    let topics = [REAL_TOPIC.to_owned()];
    let run = |body: Vec<u8>| {
        let dir = dir.clone();
        let topics = topics.clone();
        async move {
            let store = CertStore::new();
            let freshness = Freshness::Within(300);
            check(
                &store,
                &NoNetwork,
                &body,
                &topics,
                freshness,
                REAL_NOW_MS,
                Some(&dir),
            )
            .await
        }
    };
    assert_eq!(run(real_vector()).await, Ok("sns_sha1"));
    for keys in [
        FORGED_BOUNCE,
        r#""eventType":"Bounce","#,
        r#""notificationType":"Bounce","#,
        r#""mail":{"messageId":"x"},"#,
        r#""Unexpected":"x","#,
    ] {
        let forged = with_top_level(&real_vector(), keys);
        assert_eq!(
            run(forged.clone()).await,
            Err("malformed_envelope".into()),
            "{keys}"
        );
        // Not read as a bare SES event by the parser either.
        assert!(Ses.parse(&forged).is_err(), "{keys}");
    }
    // The keys SNS does send beside the signed ones are accepted, never read.
    let attributes = with_top_level(
        &real_vector(),
        r#""MessageAttributes":{"a":{"Type":"String","Value":"v"}},"#,
    );
    assert_eq!(run(attributes).await, Ok("sns_sha1"));
}

#[tokio::test]
async fn a_certificate_of_another_region_than_the_topic_is_refused_before_any_fetch() {
    let topic = vec!["arn:aws:sns:eu-west-1:123456789012:ses-events".to_owned()];
    // Signed with the development certificate, on sns.us-east-1.amazonaws.com.
    let body = Ses
        .sign(&topic[0], 1_795_342_530, &fixture("delivered.json"))
        .body;
    let store = CertStore::new();
    // No certificate folder and a fetcher that panics: nothing is fetched.
    let result = check(
        &store,
        &NoNetwork,
        &body,
        &topic,
        Freshness::Within(300),
        1_795_342_530_000,
        None,
    )
    .await;
    assert_eq!(result, Err("bad_certificate_url".into()));
    assert!(store.is_empty());
}

#[tokio::test]
async fn envelope_failures_have_their_own_codes() {
    let topic = vec!["t".to_owned()];
    let dir = dev::temporary_certificate_dir().unwrap();
    let now = 1_795_342_530_000;
    let signed =
        String::from_utf8(Ses.sign("t", 1_795_342_530, &fixture("send.json")).body).unwrap();
    let edit = |from: &str, to: &str| signed.replacen(from, to, 1);
    let url = dev::certificate_url();
    let cases = [
        (fixture("send.json"), "missing_signature"),
        (b"not json".to_vec(), "malformed_envelope"),
        (
            edit("{", "{\"Signature\": \"x\",").into_bytes(),
            "malformed_envelope",
        ),
        (
            edit("\"Type\": \"Notification\"", "\"Type\": \"Other\"").into_bytes(),
            "malformed_envelope",
        ),
        (
            edit("\"SignatureVersion\": \"2\"", "\"SignatureVersion\": \"3\"").into_bytes(),
            "unsupported_signature_version",
        ),
        (
            edit(
                &url,
                "https://sns.us-east-1.amazonaws.com.evil.com/SimpleNotificationService-a.pem",
            )
            .into_bytes(),
            "bad_certificate_url",
        ),
        (
            edit(
                &url,
                "https://s3.amazonaws.com/SimpleNotificationService-a.pem",
            )
            .into_bytes(),
            "bad_certificate_url",
        ),
        (
            edit("\"Timestamp\": \"", "\"Timestamp\": \"x").into_bytes(),
            "malformed_timestamp",
        ),
        (
            edit("\"SignatureVersion\": \"2\"", "\"SignatureVersion\": \"1\"").into_bytes(),
            "bad_signature",
        ),
        (
            edit("\"Signature\": \"", "\"Signature\": \"!").into_bytes(),
            "bad_signature",
        ),
    ];
    for (body, code) in cases {
        let result = check(
            &CertStore::new(),
            &NoNetwork,
            &body,
            &topic,
            Freshness::Within(300),
            now,
            Some(&dir),
        )
        .await;
        assert_eq!(
            result,
            Err(code.to_owned()),
            "{}",
            String::from_utf8_lossy(&body)
        );
    }
}

// ---------------------------------------------------------------------------
// Control messages.

fn inbound(body: &[u8]) -> Inbound<'_> {
    Inbound {
        headers: &[],
        query: &[],
        body,
    }
}

/// The AWS documentation's sample request, body only.
fn doc_body(name: &str) -> Vec<u8> {
    let text = String::from_utf8(fixture(name)).unwrap();
    let start = text.find("\n{").unwrap();
    text.as_bytes()[start + 1..].to_vec()
}

#[test]
fn control_messages_are_recognised() {
    let confirm = doc_body("sns_subscription_confirmation.txt");
    assert_eq!(
        Ses.control(&inbound(&confirm)).map(|c| c.kind),
        Some(SUBSCRIPTION_CONFIRMATION)
    );
    let unsubscribe = doc_body("sns_unsubscribe_confirmation.txt");
    assert_eq!(
        Ses.control(&inbound(&unsubscribe)).map(|c| c.kind),
        Some(UNSUBSCRIBE_CONFIRMATION)
    );
    assert!(
        Ses.complete_control(
            &inbound(&unsubscribe),
            Control {
                kind: UNSUBSCRIBE_CONFIRMATION
            }
        )
        .is_none()
    );
    let text = doc_body("sns_notification.txt");
    assert_eq!(
        Ses.control(&inbound(&text)).map(|c| c.kind),
        Some(TEXT_NOTIFICATION)
    );
    let validated = dev::notification(
        "t",
        0,
        b"Successfully validated SNS topic for Amazon SES event publishing.",
    );
    assert_eq!(
        Ses.control(&inbound(&validated)).map(|c| c.kind),
        Some(TEXT_NOTIFICATION)
    );
    let event = dev::notification("t", 0, &fixture("send.json"));
    assert_eq!(Ses.control(&inbound(&event)), None);
    assert_eq!(Ses.control(&inbound(&fixture("send.json"))), None);
}

#[test]
fn the_documented_envelopes_give_the_documented_string_to_sign_shape() {
    let confirm = doc_body("sns_subscription_confirmation.txt");
    let envelope = sns::decode(&confirm).unwrap();
    let text = sns::string_to_sign(&envelope, sns::MessageType::SubscriptionConfirmation);
    let keys = [
        "Message",
        "MessageId",
        "SubscribeURL",
        "Timestamp",
        "Token",
        "TopicArn",
        "Type",
    ];
    let positions: Vec<usize> = keys
        .iter()
        .map(|k| text.find(&format!("{k}\n")).unwrap())
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{text}");
    assert!(text.starts_with("Message\n") && text.ends_with("Type\nSubscriptionConfirmation\n"));
}

/// Records the URLs it is asked for and answers with a status.
struct Recorder {
    status: u16,
    urls: Mutex<Vec<String>>,
}

impl Fetch for Recorder {
    fn get<'a>(&'a self, url: &'a str, _: usize) -> BoxFuture<'a, Result<Fetched, String>> {
        self.urls.lock().unwrap().push(url.to_owned());
        let status = self.status;
        Box::pin(async move {
            Ok(Fetched {
                status,
                body: b"<ConfirmSubscriptionResponse/>".to_vec(),
            })
        })
    }
}

#[tokio::test]
async fn a_subscription_is_confirmed_by_fetching_its_subscribe_url() {
    let confirm = doc_body("sns_subscription_confirmation.txt");
    let url = sns::decode(&confirm)
        .unwrap()
        .subscribe_url
        .unwrap()
        .into_owned();
    let ok = Recorder {
        status: 200,
        urls: Mutex::new(Vec::new()),
    };
    assert_eq!(confirm_subscription(&ok, &url).await, Ok(()));
    assert_eq!(*ok.urls.lock().unwrap(), std::slice::from_ref(&url));
    let refused = Recorder {
        status: 403,
        urls: Mutex::new(Vec::new()),
    };
    let err = confirm_subscription(&refused, &url).await.unwrap_err();
    assert_eq!(err.code, "subscription_not_confirmed");
    // A URL off the SNS hosts is never fetched.
    let evil = Recorder {
        status: 200,
        urls: Mutex::new(Vec::new()),
    };
    assert!(
        confirm_subscription(&evil, "https://evil.com/?Action=ConfirmSubscription")
            .await
            .is_err()
    );
    assert!(evil.urls.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_confirmation_from_another_topic_or_with_a_foreign_url_is_refused_before_any_fetch() {
    let confirm = String::from_utf8(doc_body("sns_subscription_confirmation.txt")).unwrap();
    let store = CertStore::new();
    let dir = cert_dir("confirm", &[]);
    // Not an allowed topic: 401 without opening a certificate or fetching anything.
    let result = check(
        &store,
        &NoNetwork,
        confirm.as_bytes(),
        &["arn:other".to_owned()],
        Freshness::Disabled,
        0,
        Some(&dir),
    )
    .await;
    assert_eq!(result, Err("topic_not_allowed".into()));
    let topic = vec!["arn:aws:sns:us-west-2:123456789012:MyTopic".to_owned()];
    let foreign = confirm.replace(
        "https://sns.us-west-2.amazonaws.com/?Action",
        "https://evil.example/?Action",
    );
    let result = check(
        &store,
        &NoNetwork,
        foreign.as_bytes(),
        &topic,
        Freshness::Disabled,
        0,
        Some(&dir),
    )
    .await;
    assert_eq!(result, Err("bad_subscribe_url".into()));
    assert!(store.is_empty());
}

#[test]
fn refresh_sample_moves_times_to_now_and_tags_the_run() {
    let mut sample: Value = serde_json::from_slice(&fixture("bounce.json")).unwrap();
    Ses.refresh_sample(&mut sample, 1_795_342_530_000, "run-1");
    let e = Ses.parse(sample.to_string().as_bytes()).unwrap().remove(0);
    assert_eq!(e.event_time_ms, 1_795_342_530_000);
    assert_eq!(e.metadata[TEST_TAG], "run-1");
}

#[test]
fn signing_a_signed_notification_re_signs_its_message() {
    let once = Ses.sign("t", 1_795_342_530, &fixture("send.json")).body;
    let twice = Ses.sign("t", 1_795_342_530, &once).body;
    assert_eq!(once, twice);
    let later = Ses.sign("u", 1_795_342_600, &once).body;
    assert_eq!(Ses.parse(&later), Ses.parse(&once));
}
