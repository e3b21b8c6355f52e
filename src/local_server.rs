//! The local stack (feature `local`), shared by the local run command and the
//! load bench: the embedded DynamoDB-compatible store (dynoxide on SQLite, its
//! HTTP API served in-process) and the same [`App`] served over plain HTTP.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use aws_sdk_dynamodb::Client;
use axum::Router;
use axum::body::to_bytes;
use axum::extract::{Request, State};
use axum::response::Response;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::auth::SystemClock;
use crate::signing::local_secret;
use crate::store::{DynamoStore, dynamodb};
use crate::{App, Config, providers};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Where and how to run the local stack.
#[derive(Debug, Clone)]
pub struct LocalOptions {
    /// Port of mailhooks (0: any free port).
    pub port: u16,
    /// Port of the embedded DynamoDB API (0: any free port).
    pub dynamodb_port: u16,
    /// SQLite file for the table; in memory when `None`.
    pub db: Option<PathBuf>,
    /// Table name.
    pub table: String,
}

/// A running local stack.
pub struct LocalStack {
    /// mailhooks' address.
    pub addr: SocketAddr,
    /// The embedded DynamoDB API's URL.
    pub dynamodb_url: String,
    /// A client of that API.
    pub client: Client,
    /// The handler being served.
    pub app: Arc<App<DynamoStore>>,
    /// The HTTP server task.
    pub server: JoinHandle<std::io::Result<()>>,
}

/// Starts the embedded store (creating the table and its indexes if needed) and
/// serves the handler with [`local_config`].
pub async fn start(options: &LocalOptions) -> Result<LocalStack, BoxError> {
    let db = match &options.db {
        Some(path) => dynoxide::Database::new(&path.to_string_lossy())?,
        None => dynoxide::Database::memory()?,
    };
    let dynamo_listener = TcpListener::bind(("127.0.0.1", options.dynamodb_port)).await?;
    let dynamodb_url = format!("http://{}", dynamo_listener.local_addr()?);
    tokio::spawn(dynoxide::server::serve_on(dynamo_listener, db));

    let config = local_config(&options.table)?;
    let client = dynamodb::local_client(&dynamodb_url, config.store_timeout);
    if client
        .describe_table()
        .table_name(&options.table)
        .send()
        .await
        .is_err()
    {
        dynamodb::create_table(&client, &options.table).await?;
    }
    let store = DynamoStore::new(client.clone(), options.table.clone(), config.retention_days);
    let app = Arc::new(App::new(config, store, Arc::new(SystemClock)));

    let listener = TcpListener::bind(("127.0.0.1", options.port)).await?;
    let addr = listener.local_addr()?;
    let router = Router::new().fallback(serve).with_state(Arc::clone(&app));
    let server = tokio::spawn(async move { axum::serve(listener, router).await });
    Ok(LocalStack {
        addr,
        dynamodb_url,
        client,
        app,
        server,
    })
}

/// The process environment, with the local development secrets where none is
/// set and metrics off.
pub fn local_config(table: &str) -> Result<Config, crate::config::ConfigError> {
    let mut defaults: HashMap<&str, String> = HashMap::from([
        ("TABLE_NAME", table.to_owned()),
        ("EMIT_METRICS", "false".to_owned()),
    ]);
    for provider in providers::ALL {
        if let Some(secret) = local_secret(provider.name()) {
            defaults.insert(provider.secrets_env(), secret.to_owned());
        }
    }
    Config::from_lookup(|k| std::env::var(k).ok().or_else(|| defaults.get(k).cloned()))
}

/// Adapts a plain HTTP request to the Lambda handler and back.
async fn serve(State(app): State<Arc<App<DynamoStore>>>, request: Request) -> Response {
    let limit = app.config().max_body_bytes;
    let (parts, body) = request.into_parts();
    let response = match to_bytes(body, limit.saturating_add(1)).await {
        Ok(bytes) => {
            let request =
                lambda_http::Request::from_parts(parts, lambda_http::Body::from(bytes.to_vec()));
            app.handle(request).await
        }
        Err(_) => {
            let err = crate::Error::PayloadTooLarge(limit);
            let mut response = lambda_http::Response::new(lambda_http::Body::from(err.body()));
            *response.status_mut() = lambda_http::http::StatusCode::PAYLOAD_TOO_LARGE;
            response
        }
    };
    let (parts, body) = response.into_parts();
    Response::from_parts(parts, axum::body::Body::from(body.to_vec()))
}
