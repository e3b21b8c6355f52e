//! The real Lambda binary (`bootstrap`) at `RUST_LOG=trace`, through the Lambda
//! runtime: no secret, token, `Authorization` value, signature or body reaches
//! its output, whatever its dependencies (`lambda_runtime`, `aws_sigv4`, the SDK,
//! hyper) log. `tests/log_hygiene.rs` calls the handler directly and cannot see
//! what the runtime logs around it.

use crate::common::runtime::{Function, provider_env};
use crate::common::{Emulator, apigw_event, fixtures, provider, provider_names, secrets};
use base64::Engine;
use mailhooks::providers::AuthScheme;
use serde_json::Value;

/// In every body; must never be seen in the output.
const BODY_MARKER: &str = "BodyMarker-5e1d7a";
/// The function's AWS secret key (the store is reached with SigV4).
const AWS_SECRET: &str = "aws-secret-marker-90c2";

/// The configured secret of a provider: the harness's rotated-in one (for
/// SendGrid a development public key, the only kind of secret it accepts).
fn secret(provider: &str) -> String {
    secrets(provider)[1].clone()
}

/// A wrong secret of a provider.
fn wrong(provider: &str) -> String {
    format!("{provider}-wrong-Zp91")
}

/// Invokes the function once; the status code of its answer.
async fn status_of(function: &Function, event: Value) -> u64 {
    let (_, answer) = function.invoke(event.to_string()).await;
    answer["statusCode"].as_u64().unwrap_or(0)
}

/// A valid body of `provider` (its delivery fixture with the shortest name),
/// every address carrying [`BODY_MARKER`].
fn body(provider: &str) -> Vec<u8> {
    let (_, body) = fixtures(provider)
        .into_iter()
        .filter(|(name, _)| name.contains("deliver"))
        .min_by_key(|(name, _)| name.len())
        .unwrap();
    String::from_utf8(body)
        .unwrap()
        .replace('@', &format!("+{BODY_MARKER}@"))
        .into_bytes()
}

fn basic(token: &str) -> String {
    let credentials = base64::engine::general_purpose::STANDARD.encode(format!("esp:{token}"));
    format!("Basic {credentials}")
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A request: its query, its headers, its body and the status it must be answered.
type Request = (String, Vec<(String, String)>, Vec<u8>, u64);

/// Every request sent to `name`: good ones (twice: stored, then a duplicate),
/// wrong secrets, wrong signatures.
fn requests(name: &str) -> Vec<Request> {
    let (good, bad) = (secret(name), wrong(name));
    let body = body(name);
    match provider(name).scheme() {
        AuthScheme::SignedHeaders { signature } | AuthScheme::UntimedSignature { signature } => {
            let signed = |secret: &str| provider(name).sign(secret, now_secs(), &body);
            let mut tampered = signed(&good);
            for (_, value) in tampered
                .headers
                .iter_mut()
                .filter(|(k, _)| k.eq_ignore_ascii_case(signature))
            {
                let flipped = if value.starts_with('0') { "1" } else { "0" };
                value.replace_range(0..1, flipped);
            }
            [
                (signed(&good), 200),
                (signed(&good), 200),
                (signed(&bad), 401),
                (tampered, 401),
            ]
            .into_iter()
            .map(|(request, status)| (request.query, request.headers, request.body, status))
            .collect()
        }
        AuthScheme::SignedBody { object, signature } => {
            let sign = |key: &str| provider(name).sign(key, now_secs(), &body).body;
            let mut tampered: Value = serde_json::from_slice(&sign(&good)).unwrap();
            tampered[object][signature] = Value::from("ab".repeat(32));
            vec![
                (String::new(), Vec::new(), sign(&good), 200),
                (String::new(), Vec::new(), sign(&good), 200),
                (String::new(), Vec::new(), sign(&bad), 401),
                (
                    String::new(),
                    Vec::new(),
                    serde_json::to_vec(&tampered).unwrap(),
                    401,
                ),
            ]
        }
        // Signed inside the body by AWS: see [`body_signed_requests`].
        AuthScheme::SnsEnvelope => Vec::new(),
        AuthScheme::Token => {
            let query = |token: &str| format!("token={token}");
            let auth = |token: &str| vec![("Authorization".to_owned(), basic(token))];
            vec![
                (query(&good), Vec::new(), body.clone(), 200),
                (query(&good), Vec::new(), body.clone(), 200),
                (String::new(), auth(&good), body.clone(), 200),
                (query(&bad), Vec::new(), body.clone(), 401),
                (String::new(), auth(&bad), body.clone(), 401),
                (query(&good), auth(&bad), body, 401),
            ]
        }
    }
}

/// For a provider that signs inside the body: the bodies to send (signed with
/// the secret, twice; with a wrong secret; with a changed signature), each with
/// its signature and the status it must be answered.
fn body_signed_requests(provider: &str) -> Vec<(Vec<u8>, String, u64)> {
    let esp = crate::common::provider(provider);
    let Some(field) = esp.scheme().body_signature_field() else {
        return Vec::new();
    };
    let sign = |secret: &str| esp.sign(secret, now_secs(), &body(provider)).body;
    let signature = |body: &[u8]| {
        let value: Value = serde_json::from_slice(body).unwrap();
        value[field].as_str().unwrap().to_owned()
    };
    let good = sign(&secret(provider));
    let mut tampered: Value = serde_json::from_slice(&good).unwrap();
    let original = signature(&good);
    let first = if original.starts_with('A') { 'B' } else { 'A' };
    let changed = format!("{first}{}", &original[1..]);
    tampered[field] = Value::String(changed);
    let tampered = serde_json::to_vec(&tampered).unwrap();
    let bad = sign(&wrong(provider));
    [
        (good.clone(), 200),
        (good, 200),
        (bad, 401),
        (tampered, 401),
    ]
    .into_iter()
    .map(|(body, status)| {
        let signature = signature(&body);
        (body, signature, status)
    })
    .collect()
}

#[tokio::test]
async fn the_lambda_binary_at_trace_logs_no_secret_token_signature_or_body() {
    let db = Emulator::start().await;
    let mut env = provider_env(1);
    env.push(("RUST_LOG".to_owned(), "trace".to_owned()));
    env.push(("AWS_SECRET_ACCESS_KEY".to_owned(), AWS_SECRET.to_owned()));
    let function = Function::start(&db.endpoint, &env).await;
    let mut invocations = 0;
    let mut forbidden = vec![
        BODY_MARKER.to_owned(),
        AWS_SECRET.to_owned(),
        // SigV4's Authorization header to the store, and its signing steps.
        "Signature=".to_owned(),
        "canonical_request".to_owned(),
    ];
    for provider in provider_names() {
        forbidden.push(secret(provider));
        forbidden.push(wrong(provider));
        let signature = match crate::common::provider(provider).scheme() {
            AuthScheme::SignedHeaders { signature }
            | AuthScheme::UntimedSignature { signature } => signature,
            AuthScheme::Token | AuthScheme::SignedBody { .. } | AuthScheme::SnsEnvelope => {
                "Authorization"
            }
        };
        for (query, headers, body, status) in requests(provider) {
            for (name, value) in &headers {
                if name == "Authorization" || name.eq_ignore_ascii_case(signature) {
                    forbidden.push(value.clone());
                    forbidden.extend(value.strip_prefix("Basic ").map(str::to_owned));
                }
            }
            // A signature carried in the body: its hex and its token.
            if let AuthScheme::SignedBody { object, .. } =
                crate::common::provider(provider).scheme()
                && let Ok(value) = serde_json::from_slice::<Value>(&body)
                && let Some(fields) = value[object].as_object()
            {
                forbidden.extend(
                    fields
                        .values()
                        .filter_map(|v| v.as_str())
                        .filter(|v| v.len() > 12)
                        .map(str::to_owned),
                );
            }
            let event = apigw_event(
                "POST",
                &format!("/webhooks/{provider}"),
                &query,
                &headers,
                &body,
            );
            let answered = status_of(&function, event).await;
            assert_eq!(answered, status, "{provider} {query} {headers:?}");
            invocations += 1;
        }
        for (body, signature, status) in body_signed_requests(provider) {
            forbidden.push(signature);
            let event = apigw_event("POST", &format!("/webhooks/{provider}"), "", &[], &body);
            let answered = status_of(&function, event).await;
            assert_eq!(answered, status, "{provider} body-signed");
            invocations += 1;
        }
    }
    let output = function.stop();
    assert!(
        output.matches("\"message\":\"request\"").count() >= invocations,
        "the capture works: {output}"
    );
    assert!(
        output.contains("\"level\":\"DEBUG\""),
        "RUST_LOG=trace was in force (dependencies log at debug): {output}"
    );
    for secret in forbidden {
        assert!(
            !output.contains(&secret),
            "{secret:?} in the output:\n{output}"
        );
    }
}
