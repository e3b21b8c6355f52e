//! The security battery every provider must pass, plus EngageLab's signature
//! and timestamp rules. Nothing is stored for any refused request.

mod common;

use common::*;
use mailhooks::providers::engagelab::{hmac_signature, md5_signature};
use serde_json::{Value, json};

/// A valid body for each provider.
fn body(provider: &str) -> Vec<u8> {
    match provider {
        "tencent" => fixture("tencent", "delivered"),
        "engagelab" => fixture("engagelab", "delivered"),
        _ => fixture("uspeedo", "deliver"),
    }
}

async fn send(
    app: &mailhooks::App<mailhooks::store::DynamoStore>,
    provider: &str,
    query: &str,
    headers: &[(String, String)],
) -> (u16, Value) {
    let event = apigw_event(
        "POST",
        &format!("/webhooks/{provider}"),
        query,
        headers,
        &body(provider),
    );
    parts(app.handle(to_request(&event)).await)
}

#[tokio::test]
async fn every_provider_refuses_missing_and_wrong_credentials_and_accepts_rotated_ones() {
    let db = Emulator::start().await;
    let app = app(&db);
    for provider in PROVIDERS {
        let stored_before = db.items().await.len();
        let (status, reply) = send(&app, provider, "", &[]).await;
        assert_eq!(status, 401, "{provider}: no credentials");
        let expected = if provider == "engagelab" {
            "missing_header"
        } else {
            "missing_credentials"
        };
        assert_eq!(reply["error"], expected, "{provider}");

        let (query, headers) = signed(provider, "not-the-secret");
        let (status, reply) = send(&app, provider, &query, &headers).await;
        assert_eq!(status, 401, "{provider}: wrong secret");
        let expected = if provider == "engagelab" {
            "bad_signature"
        } else {
            "bad_token"
        };
        assert_eq!(reply["error"], expected, "{provider}");
        assert!(
            !reply.to_string().contains("secret"),
            "{provider}: the answer never names the expected value"
        );
        assert_eq!(
            db.items().await.len(),
            stored_before,
            "{provider}: nothing stored when refused"
        );

        for (i, secret) in secrets(provider).iter().enumerate() {
            let (query, headers) = signed(provider, secret);
            let (status, reply) = send(&app, provider, &query, &headers).await;
            assert_eq!(status, 200, "{provider}: secret #{i} accepted: {reply}");
        }
    }
}

#[tokio::test]
async fn every_provider_refuses_a_tampered_credential() {
    let db = Emulator::start().await;
    let app = app(&db);
    for provider in PROVIDERS {
        let (query, mut headers) = signed(provider, &secrets(provider)[0]);
        let query = query.replace("secret", "secreT");
        if let Some(sig) = headers.iter_mut().find(|(k, _)| k == "X-WebHook-Signature") {
            let flipped = if sig.1.starts_with('0') { "1" } else { "0" };
            sig.1.replace_range(0..1, flipped);
        }
        let (status, _) = send(&app, provider, &query, &headers).await;
        assert_eq!(status, 401, "{provider}");
    }
    assert!(db.items().await.is_empty());
}

#[tokio::test]
async fn a_provider_without_secrets_fails_closed() {
    let db = Emulator::start().await;
    let mut config = config(&[]);
    config.secrets.clear();
    let app = app_with(&db.endpoint, config);
    for provider in PROVIDERS {
        let (query, headers) = signed(provider, &secrets(provider)[0]);
        let (status, reply) = send(&app, provider, &query, &headers).await;
        assert_eq!(
            (status, reply["error"].as_str()),
            (401, Some("not_configured")),
            "{provider}"
        );
    }
}

#[tokio::test]
async fn token_providers_accept_basic_auth_and_refuse_disagreeing_credentials() {
    let db = Emulator::start().await;
    let app = app(&db);
    use base64::Engine;
    for provider in ["tencent", "uspeedo"] {
        let [old, new] = secrets(provider);
        let basic = |secret: &str| {
            let encoded =
                base64::engine::general_purpose::STANDARD.encode(format!("{provider}:{secret}"));
            vec![("Authorization".to_owned(), format!("Basic {encoded}"))]
        };
        assert_eq!(
            send(&app, provider, "", &basic(&new)).await.0,
            200,
            "{provider} basic"
        );
        assert_eq!(
            send(&app, provider, "", &basic("nope")).await.0,
            401,
            "{provider} wrong basic"
        );
        let (status, reply) = send(&app, provider, &format!("token={old}"), &basic(&new)).await;
        assert_eq!(
            (status, reply["error"].as_str()),
            (401, Some("conflicting_credentials")),
            "{provider}"
        );
    }
}

fn engagelab_headers(ts: &str, signature: String) -> Vec<(String, String)> {
    vec![
        ("X-WebHook-Timestamp".into(), ts.into()),
        ("X-WebHook-AppKey".into(), "email".into()),
        ("X-WebHook-Signature".into(), signature),
    ]
}

#[tokio::test]
async fn engagelab_accepts_both_documented_signatures_in_seconds_or_milliseconds() {
    let db = Emulator::start().await;
    let app = app(&db);
    let key = &secrets("engagelab")[1];
    let ts = NOW_SECS.to_string();
    let ts_ms = (NOW_MS - 1234).to_string();
    for headers in [
        engagelab_headers(&ts, hmac_signature(key, &ts)),
        engagelab_headers(&ts, md5_signature(&ts, "email", key)),
        engagelab_headers(&ts_ms, hmac_signature(key, &ts_ms)),
        engagelab_headers(&ts_ms, md5_signature(&ts_ms, "email", key).to_uppercase()),
    ] {
        let (status, reply) = send(&app, "engagelab", "", &headers).await;
        assert_eq!(status, 200, "{headers:?}: {reply}");
    }
}

#[tokio::test]
async fn engagelab_refuses_stale_future_malformed_and_mismatched_timestamps() {
    let db = Emulator::start().await;
    let app = app(&db);
    let key = &secrets("engagelab")[0];
    for (offset, label) in [(-301, "stale"), (301, "future")] {
        let ts = (NOW_SECS + offset).to_string();
        let (status, reply) = send(
            &app,
            "engagelab",
            "",
            &engagelab_headers(&ts, hmac_signature(key, &ts)),
        )
        .await;
        assert_eq!(
            (status, reply["error"].as_str()),
            (401, Some("stale_timestamp")),
            "{label}"
        );
    }
    let (status, reply) = send(
        &app,
        "engagelab",
        "",
        &engagelab_headers("yesterday", hmac_signature(key, "yesterday")),
    )
    .await;
    assert_eq!(
        (status, reply["error"].as_str()),
        (401, Some("malformed_timestamp"))
    );
    // A signature made for another (fresh) timestamp.
    let ts = NOW_SECS.to_string();
    let other = (NOW_SECS - 10).to_string();
    let (status, reply) = send(
        &app,
        "engagelab",
        "",
        &engagelab_headers(&ts, hmac_signature(key, &other)),
    )
    .await;
    assert_eq!(
        (status, reply["error"].as_str()),
        (401, Some("bad_signature"))
    );
    assert!(db.items().await.is_empty());
}

#[tokio::test]
async fn engagelab_window_is_configurable_and_can_be_disabled_for_development() {
    let db = Emulator::start().await;
    let key = &secrets("engagelab")[0];
    let ts = (NOW_SECS - 3600).to_string();
    let headers = engagelab_headers(&ts, hmac_signature(key, &ts));
    let wide = app_with(
        &db.endpoint,
        config(&[("SIGNATURE_TOLERANCE_SECS", "7200")]),
    );
    assert_eq!(send(&wide, "engagelab", "", &headers).await.0, 200);
    let narrow = app_with(&db.endpoint, config(&[("SIGNATURE_TOLERANCE_SECS", "60")]));
    assert_eq!(send(&narrow, "engagelab", "", &headers).await.0, 401);
    let dev = app_with(
        &db.endpoint,
        config(&[("MAILHOOKS_DEV_SKIP_FRESHNESS", "true")]),
    );
    let old = "1676615714";
    assert_eq!(
        send(
            &dev,
            "engagelab",
            "",
            &engagelab_headers(old, hmac_signature(key, old))
        )
        .await
        .0,
        200
    );
}

#[tokio::test]
async fn engagelab_header_names_are_case_insensitive() {
    let db = Emulator::start().await;
    let app = app(&db);
    let key = &secrets("engagelab")[0];
    let ts = NOW_SECS.to_string();
    let lower: Vec<(String, String)> = engagelab_headers(&ts, hmac_signature(key, &ts))
        .into_iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect();
    assert_eq!(send(&app, "engagelab", "", &lower).await.0, 200);
}

// ---------------------------------------------------------------------------
// Extended battery: replays, header tricks, path tricks, cross-provider bodies.

#[tokio::test]
async fn a_captured_engagelab_request_replayed_after_the_window_is_refused() {
    let db = Emulator::start().await;
    let key = &secrets("engagelab")[0];
    let ts = NOW_SECS.to_string();
    let event = apigw_event(
        "POST",
        "/webhooks/engagelab",
        "",
        &engagelab_headers(&ts, hmac_signature(key, &ts)),
        &body("engagelab"),
    );
    let (status, _) = parts(app(&db).handle(to_request(&event)).await);
    assert_eq!(status, 200);
    // The same bytes, 301 s later.
    let later = mailhooks::App::new(
        config(&[]),
        mailhooks::store::DynamoStore::new(
            mailhooks::store::dynamodb::local_client(
                &db.endpoint,
                std::time::Duration::from_secs(2),
            ),
            TABLE,
            None,
        ),
        std::sync::Arc::new(mailhooks::auth::FixedClock(NOW_MS + 301_000)),
    );
    let (status, reply) = parts(later.handle(to_request(&event)).await);
    assert_eq!(
        (status, reply["error"].as_str()),
        (401, Some("stale_timestamp"))
    );
}

/// The `itime` variant signs the body's `itime`, not the header: a signature captured
/// days ago, sent with a fresh (unsigned) header and a forged complaint whose `itime`
/// is the old signed value, must be refused and store nothing.
#[tokio::test]
async fn an_old_itime_signature_with_a_fresh_header_and_forged_body_is_refused() {
    let db = Emulator::start().await;
    let key = &secrets("engagelab")[0];
    let fresh = NOW_SECS.to_string();
    for signed in [
        (NOW_SECS - 10 * 86_400).to_string(),
        ((NOW_SECS - 10 * 86_400) * 1000).to_string(),
        (NOW_SECS - 400).to_string(),
        ((NOW_SECS + 400) * 1000).to_string(),
    ] {
        let forged = format!(
            r#"{{"message_id":"m0$victim@example.com","itime":{signed},"response":{{"event":"report_spam","response_data":{{"email_id":"m0$victim@example.com"}}}}}}"#
        );
        let event = apigw_event(
            "POST",
            "/webhooks/engagelab",
            "",
            &engagelab_headers(&fresh, hmac_signature(key, &signed)),
            forged.as_bytes(),
        );
        let (status, reply) = parts(app(&db).handle(to_request(&event)).await);
        assert_eq!(
            (status, reply["error"].as_str()),
            (401, Some("stale_timestamp")),
            "signed {signed}"
        );
    }
    assert!(db.items().await.is_empty(), "nothing forged was stored");
    // The same variant with a fresh signed itime is accepted.
    let signed = (NOW_MS - 1_000).to_string();
    let body = format!(
        r#"{{"message_id":"m0$a@example.com","itime":{signed},"response":{{"event":"open","response_data":{{"email_id":"m0$a@example.com"}}}}}}"#
    );
    let event = apigw_event(
        "POST",
        "/webhooks/engagelab",
        "",
        &engagelab_headers(&fresh, hmac_signature(key, &signed)),
        body.as_bytes(),
    );
    let (status, _) = parts(app(&db).handle(to_request(&event)).await);
    assert_eq!(status, 200);
}

#[tokio::test]
async fn header_name_case_never_matters() {
    let db = Emulator::start().await;
    let key = &secrets("engagelab")[0];
    let ts = NOW_SECS.to_string();
    // ALB passes header names as the client sent them.
    let alb = json!({
        "requestContext": {"elb": {"targetGroupArn": "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/t/1"}},
        "httpMethod": "POST",
        "path": "/webhooks/engagelab",
        "headers": {
            "X-WEBHOOK-TIMESTAMP": ts,
            "x-webhook-appkey": "email",
            "X-Webhook-Signature": hmac_signature(key, &ts),
            "Content-Type": "application/json"
        },
        "body": String::from_utf8(body("engagelab")).unwrap(),
        "isBase64Encoded": false
    });
    let (status, reply) = parts(app(&db).handle(to_request(&alb)).await);
    assert_eq!(status, 200, "{reply}");
}

/// A request built directly, as the local server or any non-merging front end delivers it.
fn raw_request(
    path_and_query: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> lambda_http::Request {
    let mut builder = lambda_http::http::Request::builder()
        .method("POST")
        .uri(path_and_query);
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    builder.body(lambda_http::Body::from(body)).unwrap()
}

#[tokio::test]
async fn duplicated_authentication_headers_are_refused() {
    let db = Emulator::start().await;
    let app = app(&db);
    let key = &secrets("engagelab")[0];
    let ts = NOW_SECS.to_string();
    let good = hmac_signature(key, &ts);
    let request = raw_request(
        "/webhooks/engagelab",
        &[
            ("X-WebHook-Timestamp", &ts),
            ("X-WebHook-AppKey", "email"),
            ("X-WebHook-Signature", "0000"),
            ("x-webhook-signature", &good),
        ],
        body("engagelab"),
    );
    let (status, reply) = parts(app.handle(request).await);
    assert_eq!(
        (status, reply["error"].as_str()),
        (401, Some("duplicate_header"))
    );
    let [old, new] = secrets("tencent");
    let request = raw_request(
        &format!("/webhooks/tencent?token={old}&token={new}"),
        &[],
        body("tencent"),
    );
    let (status, reply) = parts(app.handle(request).await);
    assert_eq!(
        (status, reply["error"].as_str()),
        (401, Some("conflicting_credentials"))
    );
    assert!(db.items().await.is_empty());
}

#[tokio::test]
async fn oversized_credentials_are_refused_without_harm() {
    let db = Emulator::start().await;
    let app = app(&db);
    let huge = "a".repeat(256 * 1024);
    let ts = NOW_SECS.to_string();
    let request = raw_request(
        "/webhooks/engagelab",
        &[
            ("X-WebHook-Timestamp", &ts),
            ("X-WebHook-AppKey", &huge),
            ("X-WebHook-Signature", &huge),
        ],
        body("engagelab"),
    );
    assert_eq!(parts(app.handle(request).await).0, 401);
    // URIs over 64 KB cannot even be built by the `http` crate, so 60 KB is the worst case.
    let long_token = "b".repeat(60 * 1024);
    let request = raw_request(
        &format!("/webhooks/uspeedo?token={long_token}"),
        &[],
        body("uspeedo"),
    );
    let (status, reply) = parts(app.handle(request).await);
    assert_eq!((status, reply["error"].as_str()), (401, Some("bad_token")));
    let request = raw_request(
        &format!("/webhooks/tencent?token={}", "9".repeat(30)),
        &[],
        body("tencent"),
    );
    assert_eq!(parts(app.handle(request).await).0, 401);
    assert!(db.items().await.is_empty());
}

#[tokio::test]
async fn path_tricks_never_reach_a_provider() {
    let db = Emulator::start().await;
    let app = app(&db);
    let token = format!("token={}", secrets("tencent")[0]);
    for (path, expected) in [
        ("/webhooks/../webhooks/tencent", 404),
        ("/webhooks/./tencent", 404),
        ("/webhooks%2Ftencent", 404),
        ("/webhooks%2ftencent", 404),
        ("/webhooks/tencent%2F", 404),
        ("/webhooks//tencent", 404),
        ("/webhooks/Tencent", 404),
        ("/WEBHOOKS/tencent", 404),
        ("/webhooks/tencent/extra", 404),
        ("/webhooks/tencent/", 200),
        ("/prod/webhooks/tencent", 200),
    ] {
        let request = raw_request(&format!("{path}?{token}"), &[], body("tencent"));
        let (status, reply) = parts(app.handle(request).await);
        assert_eq!(status, expected, "{path}: {reply}");
    }
    assert_eq!(
        db.items().await.len(),
        1,
        "the accepted paths stored the same event once"
    );
}

#[tokio::test]
async fn a_valid_secret_does_not_make_another_providers_body_acceptable() {
    let db = Emulator::start().await;
    let app = app(&db);
    for (route, foreign) in [
        ("tencent", fixture("uspeedo", "batch")),
        ("tencent", fixture("engagelab", "click")),
        ("uspeedo", fixture("tencent", "bounce")),
        ("uspeedo", fixture("engagelab", "open")),
        ("engagelab", fixture("tencent", "click")),
        ("engagelab", fixture("uspeedo", "batch")),
    ] {
        let (status, reply) = parts(app.handle(signed_post(route, &foreign)).await);
        assert_eq!(status, 400, "{route} given a foreign body: {reply}");
    }
    assert!(db.items().await.is_empty());
}
