//! Events that AWS hands to the function directly — an EventBridge event, SNS
//! records of a `lambda` subscription — through the invocation dispatcher
//! (`mailhooks::invocation::handle`, what the binary runs), into a real DynamoDB
//! API: they store exactly what the same body sent over HTTP stores, a retry
//! stores nothing new, a storage failure fails the invocation, a refused body or
//! an unknown shape never panics, and HTTP events still work through the
//! dispatcher. Then the real binary through a fake Lambda Runtime API.
//!
//! The provider of direct events is SES (`invocation::DIRECT_PROVIDER`); the
//! in-process tests drive the same generic path with a provider that is
//! registered in every build (`BODY_PROVIDER`), through `DirectRoute::new`.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::types::AttributeValue;
use lambda_http::lambda_runtime::{Context, LambdaEvent};
use mailhooks::App;
use mailhooks::invocation::{self, DIRECT_PROVIDER, DirectRoute, Invocation};
use mailhooks::store::DynamoStore;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::common::runtime::{Function, provider_env};
use crate::common::*;

/// The provider whose bodies the in-process tests send directly.
const BODY_PROVIDER: &str = "postmark";

/// The topic of the SNS records.
pub(crate) const TOPIC_ARN: &str = "arn:aws:sns:us-east-1:123456789012:mailhooks-ses-events";

/// A deterministic UUID-shaped id for a body (EventBridge `id`, SNS `MessageId`).
fn id_of(body: &[u8]) -> String {
    let hex = hex::encode(Sha256::digest(body));
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// `unix_ms` as EventBridge writes `time` (RFC 3339, whole seconds).
fn rfc3339_secs(unix_ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix_ms.div_euclid(1000))
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// An EventBridge event of SES on the default bus (the shape of the AWS docs'
/// "Amazon SES events in EventBridge"), carrying `body` as `detail`.
pub(crate) fn eventbridge_event(detail_type: &str, body: &[u8], time_ms: i64) -> Value {
    let detail: Value = serde_json::from_slice(body).expect("a JSON body");
    json!({
        "version": "0",
        "id": id_of(body),
        "detail-type": detail_type,
        "source": "aws.ses",
        "account": "123456789012",
        "time": rfc3339_secs(time_ms),
        "region": "us-east-1",
        "resources": ["arn:aws:ses:us-east-1:123456789012:configuration-set/ConfigSet"],
        "detail": detail
    })
}

/// `body` (JSON) without the whitespace between tokens, keys in their order:
/// a message as SES publishes it.
fn compact(body: &[u8]) -> String {
    let text = std::str::from_utf8(body).expect("a UTF-8 body");
    let (mut out, mut in_string, mut escaped) = (String::with_capacity(text.len()), false, false);
    for c in text.chars() {
        if in_string {
            in_string = escaped || c != '"';
            escaped = !escaped && c == '\\';
        } else if c.is_ascii_whitespace() {
            continue;
        } else {
            in_string = c == '"';
        }
        out.push(c);
    }
    out
}

/// One SNS record of a `lambda` subscription (the shape of the AWS docs' SNS
/// event for Lambda), carrying `body` as `Message`, compacted as SES sends it.
pub(crate) fn sns_record(topic_arn: &str, body: &[u8], time_ms: i64) -> Value {
    let timestamp =
        time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(time_ms) * 1_000_000)
            .unwrap()
            .format(time::macros::format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
            ))
            .unwrap();
    json!({
        "EventSource": "aws:sns",
        "EventVersion": "1.0",
        "EventSubscriptionArn": format!("{topic_arn}:2bcfbf39-05c3-41de-beaa-fcfcc21c8f55"),
        "Sns": {
            "Type": "Notification",
            "MessageId": id_of(body),
            "TopicArn": topic_arn,
            "Subject": null,
            "Message": compact(body),
            "Timestamp": timestamp,
            "SignatureVersion": "1",
            "Signature": "EXAMPLE",
            "SigningCertUrl": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-EXAMPLE.pem",
            "UnsubscribeUrl": format!("https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe&SubscriptionArn={topic_arn}:2bcfbf39-05c3-41de-beaa-fcfcc21c8f55"),
            "MessageAttributes": {}
        }
    })
}

/// An SNS invocation with one record per body.
pub(crate) fn sns_lambda_event(topic_arn: &str, bodies: &[&[u8]], time_ms: i64) -> Value {
    json!({"Records": bodies.iter().map(|b| sns_record(topic_arn, b, time_ms)).collect::<Vec<_>>()})
}

/// The route of the in-process tests: direct events to [`BODY_PROVIDER`].
fn route(topic_arns: &[&str]) -> DirectRoute {
    route_to(BODY_PROVIDER, topic_arns)
}

/// A route that sends direct events to `name`.
fn route_to(name: &str, topic_arns: &[&str]) -> DirectRoute {
    DirectRoute::new(
        Some(provider(name)),
        topic_arns.iter().map(|t| (*t).to_owned()).collect(),
    )
}

/// One invocation through the dispatcher, read from JSON as the runtime reads
/// it: the answer, or the error that fails the invocation.
async fn invoke(
    app: &App<DynamoStore>,
    route: &DirectRoute,
    event: &Value,
) -> Result<Value, String> {
    let invocation: Invocation =
        serde_json::from_slice(event.to_string().as_bytes()).map_err(|e| e.to_string())?;
    invocation::handle(app, route, LambdaEvent::new(invocation, Context::default()))
        .await
        .map(|answer| serde_json::to_value(answer).unwrap())
        .map_err(|e| e.to_string())
}

/// Every item by its key, for comparing tables.
async fn items_by_key(
    db: &Emulator,
) -> BTreeMap<(String, String), HashMap<String, AttributeValue>> {
    db.items()
        .await
        .into_iter()
        .map(|item| {
            let key = (
                text(&item, "message_id").unwrap(),
                text(&item, "timestamp").unwrap(),
            );
            (key, item)
        })
        .collect()
}

#[test]
fn compact_drops_whitespace_between_tokens_only() {
    assert_eq!(
        compact(b"{ \"a b\" : [1, \"x\\\" y\"],\n \"c\":\"\\\\\" }"),
        r#"{"a b":[1,"x\" y"],"c":"\\"}"#
    );
}

#[tokio::test]
async fn eventbridge_and_sns_events_store_the_same_items_as_http() {
    same_items_over_http_and_direct(BODY_PROVIDER).await;
}

#[tokio::test]
async fn ses_events_from_eventbridge_and_sns_store_the_same_items_as_its_https_path() {
    same_items_over_http_and_direct(DIRECT_PROVIDER).await;
}

/// Every fixture of `name` sent over HTTP, as EventBridge events and as one
/// SNS→Lambda invocation: three tables with the same items.
async fn same_items_over_http_and_direct(name: &str) {
    let (over_http, over_eventbridge, over_sns) = (
        Emulator::start().await,
        Emulator::start().await,
        Emulator::start().await,
    );
    // Events dated by their own fields only: an undated SES event takes the time
    // of the SNS delivery that carried it, which differs between deliveries by
    // nature (real SES events are always dated).
    let bodies: Vec<_> = fixtures(name)
        .into_iter()
        .filter(|(_, body)| {
            provider(name)
                .parse(body)
                .is_ok_and(|events| events.iter().all(|e| e.event_time_ms != 0))
        })
        .collect();
    let route = route_to(name, &[]);
    let app = app(&over_http);
    for (file, body) in &bodies {
        let (status, reply) = parts(app.handle(signed_post(name, body)).await);
        assert_eq!(status, 200, "{file}: {reply}");
    }
    let app = crate::common::app(&over_eventbridge);
    let mut received = 0;
    for (file, body) in &bodies {
        let answer = invoke(
            &app,
            &route,
            &eventbridge_event("Email Delivered", body, NOW_MS),
        )
        .await
        .unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(
            (
                answer["records"].clone(),
                answer["refused"].clone(),
                answer["quarantined"].clone()
            ),
            (json!(1), json!(0), json!(0)),
            "{file}"
        );
        received += answer["received"].as_u64().unwrap();
    }
    // All bodies in one invocation: every record is processed.
    let app = crate::common::app(&over_sns);
    let all: Vec<&[u8]> = bodies.iter().map(|(_, b)| b.as_slice()).collect();
    let answer = invoke(&app, &route, &sns_lambda_event(TOPIC_ARN, &all, NOW_MS))
        .await
        .unwrap();
    assert_eq!(answer["records"], json!(bodies.len()));
    assert_eq!(answer["received"], json!(received));

    let expected = items_by_key(&over_http).await;
    assert!(!expected.is_empty());
    assert_eq!(
        items_by_key(&over_eventbridge).await,
        expected,
        "EventBridge"
    );
    assert_eq!(items_by_key(&over_sns).await, expected, "SNS");
}

#[tokio::test]
async fn a_retry_stores_nothing_new_whichever_way_it_comes() {
    let db = Emulator::start().await;
    let app = app(&db);
    let route = route(&[]);
    let body = fixture(BODY_PROVIDER, "delivered");
    let first = invoke(
        &app,
        &route,
        &eventbridge_event("Email Delivered", &body, NOW_MS),
    )
    .await
    .unwrap();
    assert_eq!(
        first,
        json!({"records": 1, "received": 1, "stored": 1, "duplicates": 0, "quarantined": 0, "refused": 0})
    );
    let again = invoke(
        &app,
        &route,
        &eventbridge_event("Email Delivered", &body, NOW_MS),
    )
    .await
    .unwrap();
    let by_sns = invoke(&app, &route, &sns_lambda_event(TOPIC_ARN, &[&body], NOW_MS))
        .await
        .unwrap();
    let by_http = parts(app.handle(signed_post(BODY_PROVIDER, &body)).await);
    for answer in [again, by_sns] {
        assert_eq!(
            answer,
            json!({"records": 1, "received": 1, "stored": 0, "duplicates": 1, "quarantined": 0, "refused": 0})
        );
    }
    assert_eq!(
        (by_http.0, by_http.1["duplicates"].clone()),
        (200, json!(1))
    );
    assert_eq!(db.items().await.len(), 1);
}

#[tokio::test]
async fn a_storage_failure_fails_the_invocation_so_aws_retries() {
    // A port nothing listens on.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let app = app_with(&endpoint, config(&[("STORE_TIMEOUT_MS", "1500")]));
    let route = route(&[]);
    let body = fixture(BODY_PROVIDER, "delivered");
    let other = fixture(BODY_PROVIDER, "open");
    for event in [
        eventbridge_event("Email Delivered", &body, NOW_MS),
        sns_lambda_event(TOPIC_ARN, &[&body, &other], NOW_MS),
    ] {
        let failed = invoke(&app, &route, &event).await.unwrap_err();
        assert!(failed.contains("storage failed"), "{failed}");
    }
    // The same failure over HTTP is still a 503 answer, not a failed invocation.
    let http = apigw_event(
        "POST",
        "/webhooks/postmark",
        &format!("token={}", secrets(BODY_PROVIDER)[0]),
        &[],
        &body,
    );
    let answer = invoke(&app, &route, &http).await.unwrap();
    assert_eq!(answer["statusCode"], json!(503));
}

#[tokio::test]
async fn a_body_the_provider_cannot_read_completes_the_invocation_in_quarantine() {
    let db = Emulator::start().await;
    let app = app(&db);
    let route = route(&[]);
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let unreadable: [&[u8]; 5] = [
        br#"{}"#,
        br#"{"RecordType":"Delivery"}"#,
        br#"[]"#,
        br#""text""#,
        br#"{"RecordType":"Delivery","MessageID":"m","Recipient":"a@b.c","DeliveredAt":"not a time"}"#,
    ];
    for body in unreadable {
        let answer = invoke(
            &app,
            &route,
            &eventbridge_event("Email Delivered", body, NOW_MS),
        )
        .await
        .unwrap();
        assert_eq!(
            (answer["quarantined"].clone(), answer["stored"].clone()),
            (json!(1), json!(0))
        );
    }
    // SNS messages need not be JSON at all.
    // (`sns_record` compacts whitespace out of a message, so none here.)
    let messages: [&[u8]; 3] = [b"", b"not-json", deep.as_bytes()];
    let answer = invoke(
        &app,
        &route,
        &sns_lambda_event(TOPIC_ARN, &messages, NOW_MS),
    )
    .await
    .unwrap();
    assert_eq!(
        (answer["records"].clone(), answer["quarantined"].clone()),
        (json!(3), json!(3))
    );
    assert!(db.items().await.is_empty());
    // One record per distinct body, each kept byte for byte.
    let mut kept: Vec<Vec<u8>> = db
        .quarantined()
        .await
        .into_iter()
        .map(|record| match record.body {
            mailhooks::store::quarantine::StoredBody::Inline(body) => body,
            other => panic!("{other:?}"),
        })
        .collect();
    // EventBridge hands the `detail` over as parsed JSON: its text is re-serialized.
    let reserialized = |b: &&[u8]| serde_json::to_vec(&serde_json::from_slice::<Value>(b).unwrap());
    let mut sent: Vec<Vec<u8>> = unreadable
        .iter()
        .map(reserialized)
        .map(Result::unwrap)
        .chain(messages.iter().map(|b| b.to_vec()))
        .collect();
    let digest = |bodies: &mut Vec<Vec<u8>>| {
        bodies.sort();
        bodies
            .iter()
            .map(|b| mailhooks::store::quarantine::record_id(b))
            .collect::<Vec<_>>()
    };
    assert_eq!(digest(&mut kept), digest(&mut sent));
}

#[tokio::test]
async fn unknown_shapes_fail_the_invocation_without_a_panic() {
    let db = Emulator::start().await;
    let app = app(&db);
    let route = route(&[]);
    let body = String::from_utf8(fixture(BODY_PROVIDER, "delivered")).unwrap();
    let mut confirmation = sns_lambda_event(TOPIC_ARN, &[body.as_bytes()], NOW_MS);
    confirmation["Records"][0]["Sns"]["Type"] = json!("SubscriptionConfirmation");
    let mut s3_record = sns_lambda_event(TOPIC_ARN, &[body.as_bytes()], NOW_MS);
    s3_record["Records"][0] = json!({"eventSource": "aws:s3", "s3": {}});
    let mut other_source = eventbridge_event("Object Created", body.as_bytes(), NOW_MS);
    other_source["source"] = json!("aws.s3");
    let deep: Value =
        serde_json::from_str(&format!("{}{}", "[".repeat(100), "]".repeat(100))).unwrap();
    for event in [
        json!({}),
        json!([]),
        json!(null),
        json!("text"),
        json!(42),
        json!({"source": "aws.ses"}),
        json!({"detail": {}}),
        json!({"Records": []}),
        json!({"Records": "x"}),
        json!({"Records": [{"EventSource": "aws:sns"}]}),
        json!({"requestContext": {}, "body": body}),
        confirmation,
        s3_record,
        other_source,
        deep,
    ] {
        let failed = invoke(&app, &route, &event).await;
        assert!(failed.is_err(), "{event}: {failed:?}");
    }
    assert!(db.items().await.is_empty());
}

#[tokio::test]
async fn sns_records_are_held_to_the_topic_allow_list_when_one_is_set() {
    let db = Emulator::start().await;
    let app = app(&db);
    let listed = route(&[TOPIC_ARN]);
    let body = fixture(BODY_PROVIDER, "delivered");
    let foreign = "arn:aws:sns:us-east-1:999999999999:someone-else";
    let failed = invoke(&app, &listed, &sns_lambda_event(foreign, &[&body], NOW_MS)).await;
    assert!(failed.unwrap_err().contains("SES_TOPIC_ARNS"));
    // One foreign record refuses the whole invocation before anything is stored.
    let mut mixed = sns_lambda_event(TOPIC_ARN, &[&body, &body], NOW_MS);
    mixed["Records"][1] = sns_record(foreign, &body, NOW_MS);
    assert!(invoke(&app, &listed, &mixed).await.is_err());
    assert!(db.items().await.is_empty());
    let answer = invoke(
        &app,
        &listed,
        &sns_lambda_event(TOPIC_ARN, &[&body], NOW_MS),
    )
    .await
    .unwrap();
    assert_eq!(answer["stored"], json!(1));
    // Unset: any topic the function's permission lets through.
    let open = invoke(
        &app,
        &route(&[]),
        &sns_lambda_event(foreign, &[&body], NOW_MS),
    )
    .await
    .unwrap();
    assert_eq!(open["duplicates"], json!(1));
}

#[tokio::test]
async fn without_the_direct_provider_direct_events_fail_and_http_is_unaffected() {
    let db = Emulator::start().await;
    let app = app(&db);
    let unrouted = DirectRoute::new(None, Vec::new());
    let body = fixture(BODY_PROVIDER, "delivered");
    for event in [
        eventbridge_event("Email Delivered", &body, NOW_MS),
        sns_lambda_event(TOPIC_ARN, &[&body], NOW_MS),
    ] {
        let failed = invoke(&app, &unrouted, &event).await.unwrap_err();
        assert!(failed.contains(DIRECT_PROVIDER), "{failed}");
    }
    assert!(db.items().await.is_empty());
    let http = apigw_event(
        "POST",
        "/webhooks/postmark",
        &format!("token={}", secrets(BODY_PROVIDER)[0]),
        &[],
        &body,
    );
    let answer = invoke(&app, &unrouted, &http).await.unwrap();
    assert_eq!(answer["statusCode"], json!(200));
}

/// The direct sample files in `events/` (even those written ahead of their
/// provider's registration) are read as direct events, and each pair carries the
/// same provider event by EventBridge and by SNS.
#[test]
fn direct_sample_files_are_read_as_direct_events() {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("events");
    let mut pairs = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        let Some((provider, fixture)) = name.split_once("-eventbridge-") else {
            continue;
        };
        let read = |file: &str| std::fs::read_to_string(dir.join(file)).unwrap();
        let Invocation::EventBridge(eventbridge) = Invocation::from_json(&read(&name)) else {
            panic!("events/{name} is not an EventBridge event")
        };
        assert_eq!(eventbridge.source, invocation::EVENTBRIDGE_SOURCE, "{name}");
        let sns_name = format!("{provider}-sns-lambda-{fixture}");
        let Invocation::Sns(sns) = Invocation::from_json(&read(&sns_name)) else {
            panic!("events/{sns_name} is not an SNS invocation")
        };
        let [record] = sns.records.as_slice() else {
            panic!("events/{sns_name}: one record")
        };
        let message = &record.sns.as_ref().unwrap().message;
        let detail: Value = serde_json::from_str(eventbridge.detail.get()).unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(message).unwrap(),
            detail,
            "{sns_name}"
        );
        pairs += 1;
    }
    assert!(
        pairs >= DIRECT_SAMPLE_PAIRS,
        "direct samples in events/: {pairs}"
    );
}

/// The direct sample pairs `events/` holds (SES delivery and bounce).
const DIRECT_SAMPLE_PAIRS: usize = 2;

/// An ALB event of `body` to `path` with `query` (single-value headers).
fn alb_event(path: &str, query: &[(&str, &str)], body: &[u8]) -> Value {
    json!({
        "requestContext": {"elb": {"targetGroupArn": "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/mailhooks-tencent/abc"}},
        "httpMethod": "POST",
        "path": path,
        "queryStringParameters": query.iter().map(|(k, v)| ((*k).to_owned(), json!(v))).collect::<serde_json::Map<_, _>>(),
        "headers": {"content-type": "application/json"},
        "body": String::from_utf8(body.to_vec()).unwrap(),
        "isBase64Encoded": false
    })
}

#[tokio::test]
async fn http_events_answer_through_the_dispatcher_as_before() {
    let db = Emulator::start().await;
    let app = app(&db);
    let route = route(&[]);
    let body = fixture(BODY_PROVIDER, "delivered");
    let token = secrets(BODY_PROVIDER)[0].clone();
    // API Gateway HTTP API / Function URL (payload v2).
    let v2 = apigw_event(
        "POST",
        "/webhooks/postmark",
        &format!("token={token}"),
        &[],
        &body,
    );
    let answer = invoke(&app, &route, &v2).await.unwrap();
    assert_eq!(answer["statusCode"], json!(200));
    let reply: Value = serde_json::from_str(answer["body"].as_str().unwrap()).unwrap();
    assert_eq!(
        reply,
        json!({"code":0,"message":"ok","received":1,"stored":1,"duplicates":0,"quarantined":0})
    );
    // The same answer as the handler gives the request lambda_http builds.
    let (status, direct) = parts(app.handle(to_request(&v2)).await);
    assert_eq!((status, direct["duplicates"].clone()), (200, json!(1)));
    // ALB: answered in the ALB's shape.
    let alb = alb_event("/webhooks/postmark", &[("token", &token)], &body);
    let answer = invoke(&app, &route, &alb).await.unwrap();
    assert_eq!(answer["statusCode"], json!(200));
    assert!(answer["statusDescription"].is_string(), "{answer}");
    let wrong = alb_event("/webhooks/postmark", &[("token", "wrong")], &body);
    assert_eq!(
        invoke(&app, &route, &wrong).await.unwrap()["statusCode"],
        json!(401)
    );
    assert_eq!(db.items().await.len(), 1);
}

// ---------------------------------------------------------------------------
// The real binary, through the fake Lambda Runtime API of `common::runtime`.

#[tokio::test]
async fn the_lambda_binary_dispatches_http_and_direct_events() {
    let db = Emulator::start().await;
    let mut env = provider_env(0);
    env.push(("EMIT_METRICS".to_owned(), "false".to_owned()));
    let function = Function::start(&db.endpoint, &env).await;
    let body = fixture(BODY_PROVIDER, "delivered");
    let signed = signed(BODY_PROVIDER, &secrets(BODY_PROVIDER)[0], &body);
    let http = apigw_event(
        "POST",
        "/webhooks/postmark",
        &signed.query,
        &signed.headers,
        &signed.body,
    );
    let (kind, answer) = function.invoke(http.to_string()).await;
    assert_eq!(
        (kind.as_str(), answer["statusCode"].clone()),
        ("response", json!(200))
    );

    // Direct events go to the SES provider: stored once it is registered, a
    // failed invocation (never a crash) until then.
    let ses = mailhooks::providers::by_name(DIRECT_PROVIDER);
    let direct_body = ses.map_or_else(|| body.clone(), |p| fixtures(p.name())[0].1.clone());
    // The function is configured with the SES provider's allowed topics.
    let topic = ses.map_or_else(|| TOPIC_ARN.to_owned(), |p| secrets(p.name())[0].clone());
    for event in [
        eventbridge_event("Email Delivered", &direct_body, NOW_MS),
        sns_lambda_event(&topic, &[&direct_body], NOW_MS),
    ] {
        let (kind, answer) = function.invoke(event.to_string()).await;
        match ses {
            Some(_) => assert_eq!(
                (kind.as_str(), answer["records"].clone()),
                ("response", json!(1)),
                "{answer}"
            ),
            None => assert_eq!(kind, "error", "{answer}"),
        }
    }
    // Unknown shapes and invalid JSON fail the invocation; the process lives on.
    for event in [
        "{\"hello\":1}",
        "[]",
        "{not json",
        "{\"Records\":[{\"EventSource\":\"aws:s3\"}]}",
    ] {
        let (kind, _) = function.invoke(event.to_owned()).await;
        assert_eq!(kind, "error", "{event}");
    }
    let (kind, answer) = function.invoke(http.to_string()).await;
    assert_eq!(
        (kind.as_str(), answer["statusCode"].clone()),
        ("response", json!(200))
    );
    let reply: Value = serde_json::from_str(answer["body"].as_str().unwrap()).unwrap();
    assert_eq!(reply["duplicates"], json!(1));

    let output = function.stop();
    assert!(!output.contains("panicked"), "{output}");
    assert!(
        output.contains("\"message\":\"invocation failed\""),
        "{output}"
    );
    if ses.is_none() {
        assert!(output.contains("no provider ses"), "{output}");
    }
    assert!(
        !output.contains(BODY_MARKER_OF_DELIVERED),
        "no payload in the log: {output}"
    );
}

/// A value of the delivered fixture's body that must not reach the log.
const BODY_MARKER_OF_DELIVERED: &str = "smtp;250 2.0.0 OK";

// ---------------------------------------------------------------------------
// What telling invocations apart costs an HTTP event.

/// This thread's CPU time (user + system) in ns, from `/proc/thread-self/stat`
/// (clock ticks of 10 ms: the batches run for seconds).
fn thread_cpu_ns() -> u128 {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
    // The fields after the command name, which is in parentheses.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let ticks: u128 = fields[11].parse::<u128>().unwrap() + fields[12].parse::<u128>().unwrap();
    ticks * 10_000_000
}

/// Micro-timing (debug build; run with `cargo test --test it -- --ignored
/// direct_invocation::dispatch_cost --nocapture`): reading an API Gateway event
/// as `lambda_http` did before the dispatcher and as the dispatcher does now.
#[test]
#[ignore = "a timing printout, not a check"]
fn dispatch_cost_of_an_http_event() {
    let body = fixture(BODY_PROVIDER, "delivered");
    let http = apigw_event("POST", "/webhooks/postmark", "token=x", &[], &body).to_string();
    let direct = eventbridge_event("Email Delivered", &body, NOW_MS).to_string();
    let read_before = || {
        let request: lambda_http::request::LambdaRequest =
            serde_json::from_slice(http.as_bytes()).unwrap();
        std::hint::black_box(request);
    };
    let read_now = |json: &str| {
        let invocation: Invocation = serde_json::from_slice(json.as_bytes()).unwrap();
        std::hint::black_box(invocation);
    };
    // CPU time of this thread, not wall time: the machine is shared, and a
    // preempted loop must not count the other processes' time. Interleaved
    // batches, the cheapest of each kept.
    let (rounds, batches) = (100_000u32, 3);
    let mut best = [u128::MAX; 3];
    for _ in 0..batches {
        let runs: [&dyn Fn(); 3] = [&read_before, &|| read_now(&http), &|| read_now(&direct)];
        for (slot, run) in best.iter_mut().zip(runs) {
            let started = thread_cpu_ns();
            for _ in 0..rounds {
                run();
            }
            *slot = (*slot).min((thread_cpu_ns() - started) / u128::from(rounds));
        }
    }
    let [before, after, eventbridge] = best;
    println!("lambda_http::LambdaRequest (before): {before} ns per event");
    println!("Invocation, HTTP event (now): {after} ns per event");
    println!("Invocation, EventBridge event: {eventbridge} ns per event");
    println!(
        "HTTP event: {} bytes; dispatch adds {} ns ({:+.1} %)",
        http.len(),
        after as i128 - before as i128,
        (after as f64 / before as f64 - 1.0) * 100.0
    );
}
