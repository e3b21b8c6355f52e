//! The security battery every provider in `providers::ALL` must pass, driven by
//! each provider's declared authentication scheme: no provider is named here.
//! Nothing is stored for any refused request. Rules particular to one ESP live in
//! its own test file (e.g. tests/it/engagelab_signing.rs).

use crate::common::*;
use mailhooks::providers::{AuthScheme, Provider, Signed};
use serde_json::{Value, json};

/// A valid body for a provider: its first fixture, by name, that parses.
fn body(name: &str) -> Vec<u8> {
    fixtures(name)
        .into_iter()
        .map(|(_, body)| body)
        .find(|body| provider(name).parse(body).is_ok())
        .unwrap()
}

/// Sends a signed request through the handler.
async fn send(
    app: &mailhooks::App<mailhooks::store::DynamoStore>,
    provider: &str,
    request: &Signed,
) -> (u16, Value) {
    post(
        app,
        provider,
        &request.query,
        &request.headers,
        &request.body,
    )
    .await
}

/// `name`'s valid body with no credentials at all (for a scheme that signs in
/// the body, without its signature object).
fn unsigned(name: &str) -> Signed {
    let mut body = body(name);
    if let AuthScheme::SignedBody { object, .. } = provider(name).scheme() {
        body = edit_json(&body, |value| {
            value.as_object_mut().unwrap().remove(object);
        });
    }
    Signed {
        body,
        ..Signed::default()
    }
}

/// `body` as JSON, changed by `edit`, serialized again.
fn edit_json(body: &[u8], edit: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut value: Value = serde_json::from_slice(body).unwrap();
    edit(&mut value);
    serde_json::to_vec(&value).unwrap()
}

/// `name`'s valid body, signed with `secret`.
fn credentials(name: &str, secret: &str) -> Signed {
    signed(name, secret, &body(name))
}

/// `name`'s valid body, signed at `unix_secs` instead of now.
fn credentials_at(name: &str, secret: &str, unix_secs: i64) -> Signed {
    provider(name).sign(secret, unix_secs, &body(name))
}

/// The providers whose scheme signs a timestamp.
fn signing_providers() -> impl Iterator<Item = &'static dyn Provider> {
    mailhooks::providers::ALL.iter().copied().filter(|p| {
        !matches!(
            p.scheme(),
            AuthScheme::Token | AuthScheme::UntimedSignature { .. }
        )
    })
}

/// How old a signed timestamp may be with the default 300 s tolerance: a scheme
/// may need more (SNS retries for an hour).
fn past_window_secs(name: &str) -> i64 {
    300.max(provider(name).scheme().min_past_window_secs() as i64)
}

/// Rewrites the string field `field` of a JSON body (a signature carried inside it).
fn edit_body_field(body: &[u8], field: &str, edit: impl FnOnce(&mut String)) -> Vec<u8> {
    let mut value: Value = serde_json::from_slice(body).unwrap();
    let mut text = value[field].as_str().unwrap().to_owned();
    edit(&mut text);
    value[field] = Value::String(text);
    serde_json::to_vec(&value).unwrap()
}

/// The providers whose scheme signs the request but no timestamp.
fn untimed_providers() -> impl Iterator<Item = &'static dyn Provider> {
    mailhooks::providers::ALL
        .iter()
        .copied()
        .filter(|p| matches!(p.scheme(), AuthScheme::UntimedSignature { .. }))
}

/// The providers whose scheme is a shared token.
fn token_providers() -> impl Iterator<Item = &'static dyn Provider> {
    mailhooks::providers::ALL
        .iter()
        .copied()
        .filter(|p| p.scheme() == AuthScheme::Token)
}

#[tokio::test]
async fn every_provider_refuses_missing_and_wrong_credentials_and_accepts_rotated_ones() {
    let db = Emulator::start().await;
    let app = app(&db);
    for provider in provider_names() {
        let scheme = crate::common::provider(provider).scheme();
        let stored_before = db.items().await.len();
        let (status, reply) = send(&app, provider, &unsigned(provider)).await;
        assert_eq!(status, 401, "{provider}: no credentials");
        assert_eq!(reply["error"], scheme.missing_code(), "{provider}");

        let request = credentials(provider, "not-the-secret");
        let (status, reply) = send(&app, provider, &request).await;
        assert_eq!(status, 401, "{provider}: wrong secret");
        assert_eq!(reply["error"], scheme.bad_code(), "{provider}");
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
            let request = credentials(provider, secret);
            let (status, reply) = send(&app, provider, &request).await;
            assert_eq!(status, 200, "{provider}: secret #{i} accepted: {reply}");
        }
    }
}

/// The credential with one character changed: the token in the query, the
/// signature header, or the signature in the body.
fn tamper(provider: &dyn Provider, request: &mut Signed) {
    let flip = |value: &mut String| {
        let flipped = if value.starts_with('0') { "1" } else { "0" };
        value.replace_range(0..1, flipped);
    };
    match provider.scheme() {
        AuthScheme::SignedHeaders { signature } | AuthScheme::UntimedSignature { signature } => {
            if let Some((_, value)) = request
                .headers
                .iter_mut()
                .find(|(k, _)| k.eq_ignore_ascii_case(signature))
            {
                flip(value);
            }
        }
        AuthScheme::SignedBody { object, signature } => {
            request.body = edit_json(&request.body, |value| {
                let mut hex = value[object][signature].as_str().unwrap().to_owned();
                flip(&mut hex);
                value[object][signature] = Value::String(hex);
            });
        }
        AuthScheme::SnsEnvelope => {
            request.body = edit_body_field(&request.body, "Signature", flip);
        }
        AuthScheme::Token => {}
    }
    request.query = request.query.replace("secret", "secreT");
}

#[tokio::test]
async fn every_provider_refuses_a_tampered_credential() {
    let db = Emulator::start().await;
    let app = app(&db);
    for provider in provider_names() {
        let mut request = credentials(provider, &secrets(provider)[0]);
        tamper(crate::common::provider(provider), &mut request);
        let (status, _) = send(&app, provider, &request).await;
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
    for provider in provider_names() {
        let request = credentials(provider, &secrets(provider)[0]);
        let (status, reply) = send(&app, provider, &request).await;
        assert_eq!(
            (status, reply["error"].as_str()),
            (401, Some("not_configured")),
            "{provider}"
        );
    }
}

#[tokio::test]
async fn token_providers_accept_bearer_tokens_and_refuse_disagreeing_credentials() {
    let db = Emulator::start().await;
    let app = app(&db);
    for provider in token_providers().map(|p| p.name()) {
        let [old, new] = secrets(provider);
        let bearer = |query: &str, token: &str| Signed {
            query: query.to_owned(),
            headers: vec![("Authorization".to_owned(), format!("Bearer {token}"))],
            body: body(provider),
        };
        for secret in [&old, &new] {
            let (status, reply) = send(&app, provider, &bearer("", secret)).await;
            assert_eq!(status, 200, "{provider} bearer: {reply}");
        }
        let (status, reply) = send(&app, provider, &bearer("", "nope")).await;
        assert_eq!(
            (status, reply["error"].as_str()),
            (401, Some("bad_token")),
            "{provider} wrong bearer"
        );
        let (status, reply) = send(&app, provider, &bearer(&format!("token={old}"), &new)).await;
        assert_eq!(
            (status, reply["error"].as_str()),
            (401, Some("conflicting_credentials")),
            "{provider}"
        );
    }
}

#[tokio::test]
async fn token_providers_accept_basic_auth_and_refuse_disagreeing_credentials() {
    let db = Emulator::start().await;
    let app = app(&db);
    use base64::Engine;
    for provider in token_providers().map(|p| p.name()) {
        let [old, new] = secrets(provider);
        let basic = |query: &str, secret: &str| {
            let encoded =
                base64::engine::general_purpose::STANDARD.encode(format!("{provider}:{secret}"));
            Signed {
                query: query.to_owned(),
                headers: vec![("Authorization".to_owned(), format!("Basic {encoded}"))],
                body: body(provider),
            }
        };
        assert_eq!(
            send(&app, provider, &basic("", &new)).await.0,
            200,
            "{provider} basic"
        );
        assert_eq!(
            send(&app, provider, &basic("", "nope")).await.0,
            401,
            "{provider} wrong basic"
        );
        let (status, reply) = send(&app, provider, &basic(&format!("token={old}"), &new)).await;
        assert_eq!(
            (status, reply["error"].as_str()),
            (401, Some("conflicting_credentials")),
            "{provider}"
        );
    }
}

#[tokio::test]
async fn signed_timestamps_outside_the_window_are_refused() {
    let db = Emulator::start().await;
    let app = app(&db);
    for provider in signing_providers().map(|p| p.name()) {
        for (offset, label) in [
            (-past_window_secs(provider) - 1, "stale"),
            (301, "future"),
            (-10 * 86_400, "10 days old"),
        ] {
            let request = credentials_at(provider, &secrets(provider)[0], NOW_SECS + offset);
            let (status, reply) = send(&app, provider, &request).await;
            assert_eq!(
                (status, reply["error"].as_str()),
                (401, Some("stale_timestamp")),
                "{provider} {label}"
            );
        }
    }
    assert!(db.items().await.is_empty());
}

#[tokio::test]
async fn the_window_is_configurable_and_can_be_disabled_for_development() {
    let db = Emulator::start().await;
    for provider in signing_providers().map(|p| p.name()) {
        // Older than the scheme's least window by an hour; the wide window covers it.
        let floor = crate::common::provider(provider)
            .scheme()
            .min_past_window_secs();
        let request = credentials_at(
            provider,
            &secrets(provider)[0],
            NOW_SECS - floor as i64 - 3600,
        );
        let wide_secs = (floor + 7200).to_string();
        let wide = app_with(
            &db.endpoint,
            config(&[("SIGNATURE_TOLERANCE_SECS", &wide_secs)]),
        );
        assert_eq!(send(&wide, provider, &request).await.0, 200, "{provider}");
        let narrow = app_with(&db.endpoint, config(&[("SIGNATURE_TOLERANCE_SECS", "60")]));
        assert_eq!(send(&narrow, provider, &request).await.0, 401, "{provider}");
        let dev = app_with(
            &db.endpoint,
            config(&[("MAILHOOKS_DEV_SKIP_FRESHNESS", "true")]),
        );
        let request = credentials_at(provider, &secrets(provider)[0], 1_676_615_714);
        assert_eq!(send(&dev, provider, &request).await.0, 200, "{provider}");
    }
}

// ---------------------------------------------------------------------------
// Extended battery: replays, header tricks, path tricks, cross-provider bodies.

#[tokio::test]
async fn a_captured_signed_request_replayed_after_the_window_is_refused() {
    let db = Emulator::start().await;
    for provider in signing_providers().map(|p| p.name()) {
        let request = credentials(provider, &secrets(provider)[0]);
        let event = apigw_event(
            "POST",
            &format!("/webhooks/{provider}"),
            &request.query,
            &request.headers,
            &request.body,
        );
        let (status, _) = parts(app(&db).handle(to_request(&event)).await);
        assert_eq!(status, 200, "{provider}");
        // The same bytes, just past the window.
        let later_ms = NOW_MS + (past_window_secs(provider) + 1) * 1000;
        let later = mailhooks::App::new(
            config(&[]),
            mailhooks::store::DynamoStore::new(
                mailhooks::store::sdk::local_client(
                    &db.endpoint,
                    std::time::Duration::from_secs(2),
                ),
                TABLE,
                None,
            ),
            std::sync::Arc::new(mailhooks::auth::FixedClock(later_ms)),
        );
        let (status, reply) = parts(later.handle(to_request(&event)).await);
        assert_eq!(
            (status, reply["error"].as_str()),
            (401, Some("stale_timestamp")),
            "{provider}"
        );
    }
}

/// With no signed time there is no window: a captured request is still valid
/// a day later, and idempotent storage makes its replay store nothing new.
#[tokio::test]
async fn an_untimed_signature_replayed_a_day_later_stores_nothing_new() {
    let db = Emulator::start().await;
    for provider in untimed_providers().map(|p| p.name()) {
        let request = credentials(provider, &secrets(provider)[0]);
        let event = apigw_event(
            "POST",
            &format!("/webhooks/{provider}"),
            &request.query,
            &request.headers,
            &request.body,
        );
        let (status, first) = parts(app(&db).handle(to_request(&event)).await);
        assert_eq!(status, 200, "{provider}: {first}");
        let stored = db.items().await.len();
        let later = mailhooks::App::new(
            config(&[]),
            mailhooks::store::DynamoStore::new(
                mailhooks::store::sdk::local_client(
                    &db.endpoint,
                    std::time::Duration::from_secs(2),
                ),
                TABLE,
                None,
            ),
            std::sync::Arc::new(mailhooks::auth::FixedClock(NOW_MS + 86_400_000)),
        );
        let (status, replay) = parts(later.handle(to_request(&event)).await);
        assert_eq!(status, 200, "{provider}: {replay}");
        assert_eq!(replay["stored"], 0, "{provider}");
        assert_eq!(replay["duplicates"], first["received"], "{provider}");
        assert_eq!(db.items().await.len(), stored, "{provider}");
    }
}

#[tokio::test]
async fn header_name_case_never_matters() {
    let db = Emulator::start().await;
    for provider in provider_names() {
        let Signed {
            query,
            headers,
            body,
        } = credentials(provider, &secrets(provider)[0]);
        for case in [str::to_ascii_uppercase, str::to_ascii_lowercase] {
            // ALB passes header names as the client sent them.
            let mut header_map = serde_json::Map::new();
            // JSON unless the signed request names its own content type.
            if !headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
            {
                header_map.insert("Content-Type".into(), json!("application/json"));
            }
            for (k, v) in &headers {
                header_map.insert(case(k), json!(v));
            }
            let query_map: serde_json::Map<String, Value> =
                form_urlencoded::parse(query.as_bytes())
                    .map(|(k, v)| (k.into_owned(), json!(v)))
                    .collect();
            let alb = json!({
                "requestContext": {"elb": {"targetGroupArn": "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/t/1"}},
                "httpMethod": "POST",
                "path": format!("/webhooks/{provider}"),
                "queryStringParameters": query_map,
                "headers": header_map,
                "body": String::from_utf8(body.clone()).unwrap(),
                "isBase64Encoded": false
            });
            let (status, reply) = parts(app(&db).handle(to_request(&alb)).await);
            assert_eq!(status, 200, "{provider}: {reply}");
        }
    }
}

/// A request built directly, as the local server or any non-merging front end delivers it.
fn raw_request(
    path_and_query: &str,
    headers: &[(String, String)],
    body: Vec<u8>,
) -> lambda_http::Request {
    let mut builder = lambda_http::http::Request::builder()
        .method("POST")
        .uri(path_and_query);
    for (k, v) in headers {
        builder = builder.header(k.as_str(), v.as_str());
    }
    builder.body(lambda_http::Body::from(body)).unwrap()
}

/// `/webhooks/<name>`, with the query when there is one.
fn target(name: &str, query: &str) -> String {
    if query.is_empty() {
        format!("/webhooks/{name}")
    } else {
        format!("/webhooks/{name}?{query}")
    }
}

#[tokio::test]
async fn duplicated_authentication_headers_are_refused() {
    let db = Emulator::start().await;
    let app = app(&db);
    for provider in mailhooks::providers::ALL {
        let name = provider.name();
        let Signed {
            query,
            mut headers,
            mut body,
        } = credentials(name, &secrets(name)[0]);
        let expected = match provider.scheme() {
            AuthScheme::SnsEnvelope => {
                // A bad copy of the signature key before the good one.
                let field = provider.scheme().body_signature_field().unwrap();
                let text = String::from_utf8(body).unwrap();
                body = text
                    .replacen('{', &format!("{{\"{field}\":\"0000\","), 1)
                    .into_bytes();
                "malformed_envelope"
            }
            AuthScheme::SignedHeaders { signature }
            | AuthScheme::UntimedSignature { signature } => {
                // A bad copy before the good one, under another case.
                headers.insert(0, (signature.to_ascii_lowercase(), "0000".into()));
                "duplicate_header"
            }
            AuthScheme::SignedBody { object, signature } => {
                // A bad copy of the signature object before the good one.
                let copy = format!(r#"{{"{object}":{{"{signature}":"0000"}},"#);
                body.splice(0..1, copy.bytes());
                "duplicate_signature"
            }
            AuthScheme::Token => "conflicting_credentials",
        };
        let query = match provider.scheme() {
            AuthScheme::Token => {
                let [old, new] = secrets(name);
                format!("token={old}&token={new}")
            }
            _ => query,
        };
        let request = raw_request(&target(name, &query), &headers, body);
        let (status, reply) = parts(app.handle(request).await);
        assert_eq!(
            (status, reply["error"].as_str()),
            (401, Some(expected)),
            "{name}"
        );
    }
    assert!(db.items().await.is_empty());
}

#[tokio::test]
async fn oversized_credentials_are_refused_without_harm() {
    let db = Emulator::start().await;
    let app = app(&db);
    let huge = "a".repeat(256 * 1024);
    for provider in provider_names() {
        let Signed {
            query,
            headers,
            body,
        } = credentials(provider, &secrets(provider)[0]);
        // Every signing header at 256 KB.
        if !headers.is_empty() {
            let headers: Vec<_> = headers
                .iter()
                .map(|(k, _)| (k.clone(), huge.clone()))
                .collect();
            let request = raw_request(&target(provider, &query), &headers, body.clone());
            assert_eq!(parts(app.handle(request).await).0, 401, "{provider}");
        }
        // A signature of 256 KB in the body.
        if let AuthScheme::SignedBody { object, signature } =
            crate::common::provider(provider).scheme()
        {
            let body = edit_json(&body, |value| {
                value[object][signature] = Value::String(huge.clone());
            });
            let request = raw_request(&target(provider, &query), &headers, body);
            assert_eq!(parts(app.handle(request).await).0, 401, "{provider}");
        }
        // The signature of an envelope at 256 KB.
        if let Some(field) = crate::common::provider(provider)
            .scheme()
            .body_signature_field()
        {
            let body = edit_body_field(&body, field, |value| *value = huge.clone());
            let request = raw_request(&target(provider, &query), &headers, body);
            assert_eq!(parts(app.handle(request).await).0, 401, "{provider}");
        }
        // A token of 60 KB (URIs over 64 KB cannot even be built by the `http` crate).
        if !query.is_empty() {
            let long_token = format!("token={}", "b".repeat(60 * 1024));
            let request = raw_request(&target(provider, &long_token), &headers, body.clone());
            assert_eq!(parts(app.handle(request).await).0, 401, "{provider}");
        }
    }
    assert!(db.items().await.is_empty());
}

#[tokio::test]
async fn path_tricks_never_reach_a_provider() {
    let db = Emulator::start().await;
    let app = app(&db);
    for provider in provider_names() {
        let upper = provider.to_ascii_uppercase();
        let Signed {
            query,
            headers,
            body,
        } = credentials(provider, &secrets(provider)[0]);
        for (path, expected) in [
            (format!("/webhooks/../webhooks/{provider}"), 404),
            (format!("/webhooks/./{provider}"), 404),
            (format!("/webhooks%2F{provider}"), 404),
            (format!("/webhooks%2f{provider}"), 404),
            (format!("/webhooks/{provider}%2F"), 404),
            (format!("/webhooks//{provider}"), 404),
            (format!("/webhooks/{upper}"), 404),
            (format!("/WEBHOOKS/{provider}"), 404),
            (format!("/webhooks/{provider}/extra"), 404),
            (format!("/webhooks/{provider}/"), 200),
            (format!("/prod/webhooks/{provider}"), 200),
        ] {
            let uri = if query.is_empty() {
                path.clone()
            } else {
                format!("{path}?{query}")
            };
            let request = raw_request(&uri, &headers, body.clone());
            let (status, reply) = parts(app.handle(request).await);
            assert_eq!(status, expected, "{path}: {reply}");
        }
    }
    let stored = db.items().await.len();
    let expected: usize = provider_names()
        .map(|p| provider(p).parse(&body(p)).unwrap().len())
        .sum();
    assert_eq!(
        stored, expected,
        "the accepted paths stored each body's events once"
    );
}

#[tokio::test]
async fn a_valid_secret_does_not_make_another_providers_body_acceptable() {
    let db = Emulator::start().await;
    let app = app(&db);
    for route in provider_names() {
        for other in provider_names().filter(|o| *o != route) {
            for (name, foreign) in fixtures(other) {
                if provider(other).parse(&foreign).is_err() {
                    continue;
                }
                // Authenticated, so kept in quarantine; never stored as events.
                let (status, reply) = parts(app.handle(signed_post(route, &foreign)).await);
                let context = format!("{route} given {other}/{name}: {reply}");
                assert_eq!(
                    (status, reply["stored"].as_u64()),
                    (200, Some(0)),
                    "{context}"
                );
                assert!(reply["quarantined"].as_u64() >= Some(1), "{context}");
            }
        }
    }
    assert!(db.items().await.is_empty());
}
