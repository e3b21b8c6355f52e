//! AWS SDK configuration: the deployed function's (from the usual AWS settings)
//! and the plain-HTTP clients of a local emulator (the local run command, tests,
//! benchmarks, `mailhooks-cli --local`), all with the same retries and time bounds.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_dynamodb::config::{Credentials, Region};

/// Retry and timeout settings: the SDK's standard retries (3 attempts, jittered
/// exponential backoff from 50 ms), bounded as a whole by
/// `operation_timeout` so we answer before the provider gives up on us.
pub fn timeouts(operation_timeout: Duration) -> (RetryConfig, TimeoutConfig) {
    // A short first backoff: three attempts must fit in the bound, so that a
    // throttled store is reported as throttled rather than as a timeout.
    let retry = RetryConfig::standard()
        .with_max_attempts(3)
        .with_initial_backoff(Duration::from_millis(50));
    let timeout = TimeoutConfig::builder()
        .connect_timeout(Duration::from_millis(500))
        .operation_timeout(operation_timeout)
        .build();
    (retry, timeout)
}

/// The AWS configuration of the deployed function, loaded once at cold start:
/// region, credentials and endpoints (`AWS_ENDPOINT_URL_DYNAMODB`) from the usual
/// AWS settings, with [`timeouts`].
pub async fn sdk_config_from_env(operation_timeout: Duration) -> SdkConfig {
    let (retry, timeout) = timeouts(operation_timeout);
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .retry_config(retry)
        .timeout_config(timeout);
    let endpoint =
        std::env::var("AWS_ENDPOINT_URL_DYNAMODB").or_else(|_| std::env::var("AWS_ENDPOINT_URL"));
    if endpoint.is_ok_and(|e| e.starts_with("http://")) {
        // A local emulator over plain HTTP: skip loading the TLS trust store.
        loader = loader.http_client(aws_smithy_http_client::Builder::new().build_http());
    }
    loader.load().await
}

/// A client for a local DynamoDB-compatible endpoint over plain HTTP, with
/// placeholder credentials (the local run command, tests, benchmarks).
pub fn local_client(endpoint: &str, operation_timeout: Duration) -> aws_sdk_dynamodb::Client {
    let (retry, timeout) = timeouts(operation_timeout);
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new(
            "local",
            "local",
            None,
            None,
            "mailhooks-local",
        ))
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .retry_config(retry)
        .timeout_config(timeout)
        .build();
    aws_sdk_dynamodb::Client::from_conf(config)
}

/// An S3 client for a local S3-compatible endpoint over plain HTTP (path-style
/// addressing, placeholder credentials): the tests and local tools.
pub fn local_s3_client(endpoint: &str, operation_timeout: Duration) -> aws_sdk_s3::Client {
    let (retry, timeout) = timeouts(operation_timeout);
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(aws_sdk_s3::config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .force_path_style(true)
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            "testing",
            "testing",
            None,
            None,
            "mailhooks-local",
        ))
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .retry_config(retry)
        .timeout_config(timeout)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}
