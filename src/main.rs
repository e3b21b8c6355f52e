//! The Lambda entry point: configuration and the DynamoDB client are built once
//! at cold start; every invocation goes to [`mailhooks::App::handle`].

use std::convert::Infallible;
use std::sync::Arc;

use lambda_http::{Error, Request, service_fn};
use mailhooks::auth::SystemClock;
use mailhooks::store::{DynamoStore, dynamodb};
use mailhooks::{App, Config, telemetry};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init("info");
    let config = Config::from_env()?;
    let client = dynamodb::client_from_env(config.store_timeout).await;
    let store = DynamoStore::new(client, config.table_name.clone(), config.retention_days);
    let app = Arc::new(App::new(config, store, Arc::new(SystemClock)));
    lambda_http::run(service_fn(move |request: Request| {
        let app = Arc::clone(&app);
        async move { Ok::<_, Infallible>(app.handle(request).await) }
    }))
    .await
}
