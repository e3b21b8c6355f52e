//! The local stack (feature `local`), shared by the local run command and the
//! load bench: the embedded DynamoDB-compatible store (dynoxide on SQLite, its
//! HTTP API served in-process) and the same [`App`] served over plain HTTP.
//!
//! Both endpoints are closed to web pages. dynoxide answers every web origin
//! (`access-control-allow-origin: *`, preflights included) and accepts any
//! signature, so a page open in a browser could otherwise read and write the
//! table. Its router cannot be built outside the crate, so it listens on a port
//! that browsers refuse to fetch (the Fetch standard's "bad ports"), and the
//! advertised DynamoDB port is our proxy in front of it. The proxy and the
//! webhook front end refuse every request a browser makes (an `Origin` header,
//! a `Sec-Fetch-Site` other than `none`, any `OPTIONS`) and never answer with
//! CORS headers. Clients that are not browsers (the AWS SDK and CLI,
//! `mailhooks-cli`, curl, an ESP) send neither header and are served as before.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use aws_sdk_dynamodb::Client;
use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::header::ORIGIN;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::Response;
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::auth::SystemClock;
use crate::store::{DynamoStore, sdk, table};
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
    /// The embedded DynamoDB API's URL, for other processes (the CLI, the AWS
    /// CLI): the proxy that refuses browser requests.
    pub dynamodb_url: String,
    /// A client of the embedded store, talking to it directly (in-process
    /// traffic needs no browser check, and the benches measure the store
    /// without the proxy's hop).
    pub client: Client,
    /// The handler being served.
    pub app: Arc<App<DynamoStore>>,
    /// The HTTP server task.
    pub server: JoinHandle<std::io::Result<()>>,
}

/// Ports above 1024 that browsers refuse to fetch from (the Fetch standard's
/// "bad ports", the long-standing entries first): dynoxide listens on one of
/// them so that no web page can reach it around the proxy.
pub const BROWSER_BLOCKED_PORTS: [u16; 16] = [
    6665, 6666, 6667, 6668, 6669, 6000, 1719, 1720, 1723, 2049, 3659, 4045, 5060, 5061, 6697, 10080,
];

/// Starts the embedded store (creating the table and its indexes if needed) and
/// serves the handler with [`local_config`].
pub async fn start(options: &LocalOptions) -> Result<LocalStack, BoxError> {
    let db = match &options.db {
        Some(path) => dynoxide::Database::new(&path.to_string_lossy())?,
        None => dynoxide::Database::memory()?,
    };
    let store_listener = bind_browser_blocked().await?;
    let store_url = format!("http://{}", store_listener.local_addr()?);
    tokio::spawn(dynoxide::server::serve_on(store_listener, db));

    let dynamo_listener = TcpListener::bind(("127.0.0.1", options.dynamodb_port)).await?;
    let dynamodb_url = format!("http://{}", dynamo_listener.local_addr()?);
    let proxy = Arc::new(StoreProxy {
        upstream: store_url.clone(),
        client: HttpClient::builder(TokioExecutor::new()).build_http(),
    });
    let proxy_router = Router::new()
        .fallback(forward)
        .with_state(proxy)
        .layer(middleware::from_fn(refuse_browsers));
    tokio::spawn(async move { axum::serve(dynamo_listener, proxy_router).await });

    let listener = TcpListener::bind(("127.0.0.1", options.port)).await?;
    let addr = listener.local_addr()?;
    let config = local_config(&options.table, addr)?;
    let client = sdk::local_client(&store_url, config.store_timeout);
    if client
        .describe_table()
        .table_name(&options.table)
        .send()
        .await
        .is_err()
    {
        table::create_table(&client, &options.table).await?;
    }
    let store = DynamoStore::new(client.clone(), options.table.clone(), config.retention_days);
    let app = Arc::new(App::new(config, store, Arc::new(SystemClock)));

    let router = Router::new()
        .fallback(serve)
        .with_state(Arc::clone(&app))
        .layer(middleware::from_fn(refuse_browsers));
    let server = tokio::spawn(async move { axum::serve(listener, router).await });
    Ok(LocalStack {
        addr,
        dynamodb_url,
        client,
        app,
        server,
    })
}

/// Binds loopback on the first free port of [`BROWSER_BLOCKED_PORTS`].
async fn bind_browser_blocked() -> Result<TcpListener, BoxError> {
    for port in BROWSER_BLOCKED_PORTS {
        if let Ok(listener) = TcpListener::bind(("127.0.0.1", port)).await {
            return Ok(listener);
        }
    }
    Err(format!(
        "the embedded store needs a free loopback port among {BROWSER_BLOCKED_PORTS:?} \
         (ports browsers cannot reach); all are in use"
    )
    .into())
}

/// True for a request a web browser made: fetch and forms send `Origin` on
/// every cross-origin and every non-GET request, and `Sec-Fetch-Site` on every
/// request (`none` only when the user typed the address); `OPTIONS` is a
/// preflight. No webhook sender, SDK or CLI sends these.
fn is_from_browser(method: &Method, headers: &HeaderMap) -> bool {
    *method == Method::OPTIONS
        || headers.contains_key(ORIGIN)
        || headers
            .get("sec-fetch-site")
            .is_some_and(|site| site.as_bytes() != b"none")
}

/// Refuses browser requests and keeps CORS headers off every answer.
async fn refuse_browsers(request: Request, next: Next) -> Response {
    if is_from_browser(request.method(), request.headers()) {
        let mut refused = Response::new(Body::from(
            "requests from web pages are refused by the local stack\n",
        ));
        *refused.status_mut() = StatusCode::FORBIDDEN;
        return refused;
    }
    let mut response = next.run(request).await;
    // dynoxide adds them only to requests with an `Origin`, which never get
    // here; dropping them anyway keeps this true whatever a new version does.
    let cors: Vec<_> = response
        .headers()
        .keys()
        .filter(|name| name.as_str().starts_with("access-control-"))
        .cloned()
        .collect();
    for name in cors {
        response.headers_mut().remove(name);
    }
    response
}

/// The embedded store's own listener and a client of it.
struct StoreProxy {
    upstream: String,
    client: HttpClient<HttpConnector, Body>,
}

/// Forwards a request to the embedded store unchanged, body streamed.
async fn forward(State(proxy): State<Arc<StoreProxy>>, request: Request) -> Response {
    let (mut parts, body) = request.into_parts();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    parts.uri = match format!("{}{path}", proxy.upstream).parse::<Uri>() {
        Ok(uri) => uri,
        Err(_) => return status_only(StatusCode::BAD_REQUEST),
    };
    match proxy.client.request(Request::from_parts(parts, body)).await {
        Ok(answer) => answer.map(Body::new),
        Err(_) => status_only(StatusCode::BAD_GATEWAY),
    }
}

fn status_only(status: StatusCode) -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = status;
    response
}

/// The process environment, with the local development secrets where none is
/// set and metrics off. A URL-signing provider (Mandrill) is configured with its
/// development URL (what the sample events are signed for) and this server's own
/// URL at `addr` (what `send-test-event --url http://<addr>` signs).
pub fn local_config(table: &str, addr: SocketAddr) -> Result<Config, crate::config::ConfigError> {
    let mut defaults: HashMap<&str, String> = HashMap::from([
        ("TABLE_NAME", table.to_owned()),
        ("EMIT_METRICS", "false".to_owned()),
    ]);
    for provider in providers::ALL {
        defaults.insert(provider.secrets_env(), provider.local_secret().to_owned());
        if let Some(url) = provider.signed_url() {
            let path = url.local.find("/webhooks/").map_or("", |i| &url.local[i..]);
            defaults.insert(
                url.env,
                format!(
                    "{},http://{addr}{path},http://localhost:{}{path}",
                    url.local,
                    addr.port()
                ),
            );
        }
    }
    // SNS envelopes signed with the public development key verify against its
    // certificate, written to a temporary folder (never a deployment's).
    if let Ok(dir) = providers::ses::dev::temporary_certificate_dir() {
        defaults.insert("SNS_CERTIFICATES_DIR", dir.to_string_lossy().into_owned());
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
    Response::from_parts(parts, Body::from(body.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn browser_requests_are_recognised() {
        let post = Method::POST;
        assert!(!is_from_browser(&post, &headers(&[])));
        assert!(!is_from_browser(
            &Method::GET,
            &headers(&[("sec-fetch-site", "none")])
        ));
        assert!(is_from_browser(&Method::OPTIONS, &headers(&[])));
        assert!(is_from_browser(&post, &headers(&[("origin", "null")])));
        for site in ["cross-site", "same-site", "same-origin"] {
            assert!(is_from_browser(
                &Method::GET,
                &headers(&[("sec-fetch-site", site)])
            ));
        }
    }

    #[tokio::test]
    async fn the_store_listens_on_a_port_browsers_cannot_fetch() {
        let listener = bind_browser_blocked().await.unwrap();
        let port = listener.local_addr().unwrap().port();
        assert!(BROWSER_BLOCKED_PORTS.contains(&port), "{port}");
    }
}
