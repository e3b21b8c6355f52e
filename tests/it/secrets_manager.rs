//! Provider secrets read from a real Secrets Manager API (moto's server on
//! loopback, installed and started by `.ci/moto-tests.sh`), then used to
//! authenticate a webhook end to end. Ignored by a plain `cargo test` because
//! it needs that server: `bash .ci/moto-tests.sh` runs it.

use crate::common::*;
use aws_sdk_secretsmanager::config::{BehaviorVersion, Credentials, Region};
use mailhooks::secrets::{self, SecretsError};

fn client(endpoint: &str) -> aws_sdk_secretsmanager::Client {
    let config = aws_sdk_secretsmanager::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .build();
    aws_sdk_secretsmanager::Client::from_conf(config)
}

fn moto_endpoint() -> String {
    std::env::var("MOTO_ENDPOINT").expect("MOTO_ENDPOINT: run bash .ci/moto-tests.sh")
}

#[tokio::test]
#[ignore = "needs a Secrets Manager API: bash .ci/moto-tests.sh"]
async fn secrets_from_secrets_manager_authenticate_webhooks() {
    let sm = client(&moto_endpoint());
    let created = sm
        .create_secret()
        .name(format!("mailhooks-test-{}", std::process::id()))
        .secret_string(r#"{"TENCENT_TOKENS": "from-secrets-manager,rotated-in", "ENGAGELAB_APP_KEYS": ["sm-key", "with,comma"]}"#)
        .send()
        .await
        .unwrap();
    let vars = secrets::fetch(&sm, created.arn().unwrap()).await.unwrap();
    assert_eq!(
        vars["TENCENT_TOKENS"],
        ["from-secrets-manager", "rotated-in"]
    );
    // An array entry is one secret, its comma included.
    assert_eq!(vars["ENGAGELAB_APP_KEYS"], ["sm-key", "with,comma"]);

    let db = Emulator::start().await;
    let app = app_with(&db.endpoint, config(&[]).with_secrets_from(&vars));
    for (provider, secret, expected) in [
        ("tencent", "rotated-in", 200),
        ("engagelab", "sm-key", 200),
        ("engagelab", "with,comma", 200),
        ("engagelab", "with", 401), // not split into two keys
        ("tencent", secrets("tencent")[0].as_str(), 401), // the environment's token was replaced
        ("uspeedo", secrets("uspeedo")[0].as_str(), 200), // not in the secret: the environment's stays
    ] {
        let body = if provider == "uspeedo" {
            fixture("uspeedo", "deliver")
        } else {
            fixture(provider, "delivered")
        };
        let signed = signed(provider, secret, &body);
        let event = apigw_event(
            "POST",
            &format!("/webhooks/{provider}"),
            &signed.query,
            &signed.headers,
            &signed.body,
        );
        let (status, reply) = parts(app.handle(to_request(&event)).await);
        assert_eq!(status, expected, "{provider} with {secret}: {reply}");
    }
}

#[tokio::test]
#[ignore = "needs a Secrets Manager API: bash .ci/moto-tests.sh"]
async fn a_missing_or_malformed_secret_stops_the_cold_start() {
    let sm = client(&moto_endpoint());
    let missing = secrets::fetch(&sm, "no-such-secret").await;
    assert!(
        matches!(missing, Err(SecretsError::Fetch(_))),
        "{missing:?}"
    );
    let created = sm
        .create_secret()
        .name(format!("mailhooks-bad-{}", std::process::id()))
        .secret_string(r#"{"TENCENT_TOKEN": "typo"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(
        secrets::fetch(&sm, created.arn().unwrap()).await,
        Err(SecretsError::UnknownKey("TENCENT_TOKEN".into()))
    );
}
