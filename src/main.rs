//! The Lambda entry point: configuration, secrets and the DynamoDB client are
//! built once at cold start; every invocation goes to
//! [`mailhooks::invocation::handle`]: HTTP events to [`mailhooks::App::handle`],
//! SES events from EventBridge or SNS to [`mailhooks::App::ingest_direct`].

use std::sync::Arc;

use lambda_http::lambda_runtime::{self, LambdaEvent};
use lambda_http::{Error, service_fn};
use mailhooks::auth::SystemClock;
use mailhooks::invocation::{self, DirectRoute, Invocation};
use mailhooks::secrets::{self, SECRETS_ARN_ENV};
use mailhooks::store::archive::RawArchive;
use mailhooks::store::{DynamoStore, sdk};
use mailhooks::{App, Config, startup, telemetry};

// mimalloc (its v2 line) instead of glibc's malloc: the event path allocates many
// small strings and maps. CPU per event −20–25 % (benches/cpu.rs); peak RSS 14.5 →
// 20 MB (benches/lambda.rs), where mimalloc v3 took 33 MB (docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

// One invocation at a time per process and well under one vCPU at 128 MB: a
// single-threaded runtime saves the cross-thread wake-ups (warm invocation p50
// 0.71 → 0.50 ms, peak RSS 15.2 → 14.4 MB in benches/lambda.rs).
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    telemetry::init("info");
    let mut config = Config::from_env()?;
    // First, before any network call can fail the start: operators must see these
    // in the log of every cold start, not only of the ones that succeed.
    startup::log_warnings(&startup::cold_start_warnings(
        |name| std::env::var(name).ok(),
        config.freshness,
    ));
    let sdk = sdk::sdk_config_from_env(config.store_timeout).await;
    if let Some(secret_id) = std::env::var(SECRETS_ARN_ENV)
        .ok()
        .filter(|s| !s.is_empty())
    {
        let vars = secrets::fetch(&aws_sdk_secretsmanager::Client::new(&sdk), &secret_id).await?;
        tracing::info!(keys = ?vars.keys().collect::<Vec<_>>(), "provider secrets read from Secrets Manager");
        config = config.with_secrets_from(&vars);
    }
    let mut store = DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        config.table_name.clone(),
        config.retention_days,
    );
    if let Some(bucket) = &config.raw_bucket {
        let archive = RawArchive::new(aws_sdk_s3::Client::new(&sdk), bucket.clone());
        store = store.with_raw_archive(archive);
    }
    if config.warm_up {
        // Init has its own time budget and runs at full CPU: the TLS handshake is
        // cheaper here than on the first webhook's clock.
        store.warm_up().await?;
    }
    // From the final configuration: with a Secrets Manager secret, the topic
    // allow-list is in the secret, not the environment.
    let direct = Arc::new(DirectRoute::from_config(&config));
    let app = Arc::new(App::new(config, store, Arc::new(SystemClock)));
    // lambda_runtime directly rather than lambda_http::run: the same HTTP path
    // (lambda_http's adapter), plus the events AWS hands over without HTTP.
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Invocation>| {
        let (app, direct) = (Arc::clone(&app), Arc::clone(&direct));
        async move { invocation::handle(&app, &direct, event).await }
    }))
    .await
}
