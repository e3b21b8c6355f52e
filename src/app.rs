//! The request handler: route, authenticate, parse, store, answer — the same
//! for API Gateway (REST and HTTP APIs), Lambda Function URLs, ALB and the local server.
//! Events that AWS hands to the function directly (EventBridge, SNS; see
//! [`crate::invocation`]) take the same parse → store path through
//! [`App::ingest_direct`], without the HTTP authentication IAM already did.

use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

use lambda_http::http::{Method, StatusCode, header};
use lambda_http::{Body, Request, Response};
use serde_json::json;
use tracing::{error, info, warn};

use crate::auth::{AuthError, Clock};
use crate::config::Config;
use crate::error::Error;
use crate::metrics::{RequestMetrics, emf_line};
use crate::providers::{self, AuthContext, AuthScheme, Inbound, Provider};
use crate::store::{
    ClaimOutcome, EventStore, PutOutcome, QuarantineOutcome, ReplayClaim, StoreError, codec,
};

/// The webhook receiver, built once at cold start and shared by every request.
pub struct App<S> {
    config: Config,
    store: S,
    clock: Arc<dyn Clock>,
}

/// The `auth` of the log line of an event that AWS handed to the function
/// directly: IAM authorised the invocation (its resource policy).
pub const DIRECT_AUTH: &str = "iam";

/// What storing one body did: how many events it held, how many were new,
/// how many parts were kept raw because they did not normalize.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ingested {
    /// Events in the body that normalized.
    pub received: usize,
    /// What the store did with them.
    pub outcome: PutOutcome,
    /// Parts of the body kept in quarantine (new or already kept).
    pub quarantined: usize,
}

/// What a successful request did.
enum Success {
    /// A GET/HEAD probe of a provider URL.
    Probe,
    /// An authenticated request that carries no event (a ping, a handshake).
    Control {
        kind: &'static str,
        auth: &'static str,
    },
    /// Events were stored.
    Stored {
        ingested: Ingested,
        auth: &'static str,
    },
}

impl<S: EventStore> App<S> {
    /// Builds the app; logs once for every provider with no secret configured.
    pub fn new(config: Config, store: S, clock: Arc<dyn Clock>) -> Self {
        for provider in providers::ALL {
            if config.secrets_for(provider.name()).is_empty() {
                warn!(
                    provider = provider.name(),
                    env = provider.secrets_env(),
                    "no secret configured: every request for this provider will be refused with 401"
                );
            }
            if let Some(url) = provider.signed_url()
                && config.webhook_urls_for(provider.name()).is_empty()
            {
                warn!(
                    provider = provider.name(),
                    env = url.env,
                    "no webhook URL configured: every request for this provider will be refused with 401"
                );
            }
        }
        App {
            config,
            store,
            clock,
        }
    }

    /// The configuration the app runs with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Handles one request; logs one structured line and, when enabled, emits its metrics.
    pub async fn handle(&self, request: Request) -> Response<Body> {
        let started = Instant::now();
        let routed = route(request.uri().path());
        let provider = routed.as_ref().map_or("none", |p| p.name());
        let result = match routed {
            Ok(provider) => self.process(provider, &request).await,
            Err(err) => Err(err),
        };
        let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
        self.report(
            provider,
            request.method().as_str(),
            result.as_ref(),
            latency_ms,
        );
        answer(provider, result.as_ref())
    }

    /// Stores the events of `body`, which AWS handed to the function directly
    /// (`via` names how: `eventbridge`, `sns`): no HTTP authentication, since IAM
    /// authorised the invocation; otherwise the path of an authenticated request
    /// — the same size limit, parse, key checks, idempotent store under the same
    /// deadline, log line (with `method` = `via`, `auth` = `iam`) and metrics.
    pub async fn ingest_direct(
        &self,
        provider: &dyn Provider,
        via: &'static str,
        body: &[u8],
    ) -> Result<Ingested, Error> {
        let started = Instant::now();
        let result = if body.len() > self.config.max_body_bytes {
            Err(Error::PayloadTooLarge(self.config.max_body_bytes))
        } else {
            let inbound = Inbound {
                headers: &[],
                query: &[],
                body,
            };
            self.ingest(provider, &inbound, &[]).await
        };
        let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
        // The log line and metrics take a `Success`: the one clone is of a few counters.
        let reported = result.as_ref().map(|ingested| Success::Stored {
            ingested: ingested.clone(),
            auth: DIRECT_AUTH,
        });
        self.report(
            provider.name(),
            via,
            reported.as_ref().map_err(|err| *err),
            latency_ms,
        );
        result
    }

    /// Logs one structured line for a request and, when enabled, emits its metrics.
    fn report(
        &self,
        provider: &str,
        method: &str,
        result: Result<&Success, &Error>,
        latency_ms: f64,
    ) {
        log_request(provider, method, result, latency_ms);
        if self.config.emit_metrics {
            let mut line = emf_line(&request_metrics(provider, result), self.clock.now_ms());
            line.push('\n');
            // One write; a failed write to stdout must not fail the request.
            let _ = std::io::stdout().lock().write_all(line.as_bytes());
        }
    }

    async fn process(
        &self,
        provider: &'static dyn Provider,
        request: &Request,
    ) -> Result<Success, Error> {
        match *request.method() {
            Method::GET | Method::HEAD => return Ok(Success::Probe),
            Method::POST => {}
            _ => return Err(Error::MethodNotAllowed),
        }
        let body: &[u8] = request.body().as_ref();
        if body.len() > self.config.max_body_bytes {
            return Err(Error::PayloadTooLarge(self.config.max_body_bytes));
        }
        let headers = header_pairs(request);
        let query = query_pairs(request.uri().query());
        let inbound = Inbound {
            headers: &headers,
            query: &query,
            body,
        };
        let ctx = AuthContext {
            secrets: self.config.secrets_for(provider.name()),
            freshness: self.config.freshness,
            clock: self.clock.as_ref(),
            certificates_dir: self.config.sns_certificates_dir.as_deref(),
            webhook_urls: self.config.webhook_urls_for(provider.name()),
        };
        if let Some(preparing) = provider.prepare(&inbound, &ctx) {
            preparing.await?;
        }
        let auth = provider.authenticate(&inbound, &ctx)?;
        if let Some(control) = provider.control(&inbound) {
            if let Some(completing) = provider.complete_control(&inbound, control) {
                completing.await?;
            }
            return Ok(Success::Control {
                kind: control.kind,
                auth,
            });
        }
        let claims = provider.replay_claim(&inbound, &ctx);
        if claims.is_empty() && matches!(provider.scheme(), AuthScheme::SignedBody { .. }) {
            // The signature does not cover the body: storing it unclaimed would
            // let the captured signature carry any other body. Fail closed.
            return Err(AuthError::BadSignature.into());
        }
        let ingested = self.ingest(provider, &inbound, &claims).await?;
        Ok(Success::Stored { ingested, auth })
    }

    /// Parses an authenticated (or IAM-authorised) body and stores its events;
    /// what does not normalize is quarantined raw, never refused: a retry could
    /// not fix it, so a 4xx would only make the provider drop it.
    async fn ingest(
        &self,
        provider: &dyn Provider,
        inbound: &Inbound<'_>,
        claims: &[ReplayClaim],
    ) -> Result<Ingested, Error> {
        let mut parsed = provider.parse_each(inbound);
        codec::quarantine_unkeyable(inbound.body, &mut parsed);
        // One deadline for the claim and the whole batch, SDK retries included:
        // answer 5xx (the provider retries, idempotently) before the function or
        // the provider gives up.
        let deadline = tokio::time::Instant::now() + self.config.store_timeout;
        let passed = |_| StoreError::Unavailable("storage deadline passed".into());
        for claim in claims {
            // Before any event is written. A claim written for a request whose
            // events then fail to store is this body's: the retry of the same
            // body finds `SameBody` and stores the events.
            let claimed = tokio::time::timeout_at(deadline, self.store.claim_replay(claim))
                .await
                .map_err(passed)??;
            if claimed == ClaimOutcome::OtherBody {
                return Err(AuthError::Replayed.into());
            }
        }
        let received_at_ms = self.clock.now_ms();
        let events = async {
            if parsed.events.is_empty() {
                return Ok(PutOutcome::default());
            }
            self.store.put_events(&parsed.events, received_at_ms).await
        };
        let content_type = inbound.header_values("content-type").first().copied();
        let kept = async {
            if parsed.unparsed.is_empty() {
                return Ok(QuarantineOutcome::default());
            }
            let name = provider.name();
            (self.store)
                .quarantine(name, &parsed.unparsed, content_type, received_at_ms)
                .await
        };
        let both = async { futures_util::try_join!(events, kept) };
        let (outcome, _) = tokio::time::timeout_at(deadline, both)
            .await
            .map_err(passed)??;
        Ok(Ingested {
            received: parsed.events.len(),
            outcome,
            quarantined: parsed.unparsed.len(),
        })
    }
}

/// The one structured log line of a request.
fn log_request(provider: &str, method: &str, result: Result<&Success, &Error>, latency_ms: f64) {
    match result {
        Ok(Success::Probe) => {
            info!(
                provider,
                method,
                status = 200,
                outcome = "probe",
                latency_ms,
                "request"
            );
        }
        Ok(Success::Control { kind, auth }) => {
            info!(
                provider,
                method,
                status = 200,
                outcome = "control",
                control = kind,
                auth,
                latency_ms,
                "request"
            );
        }
        Ok(Success::Stored { ingested, auth }) => {
            info!(
                provider,
                method,
                status = 200,
                outcome = "stored",
                auth,
                received = ingested.received,
                stored = ingested.outcome.stored,
                duplicates = ingested.outcome.duplicates,
                quarantined = ingested.quarantined,
                latency_ms,
                "request"
            );
        }
        Err(err) => {
            let status = err.status();
            if let Error::Storage(detail) = err {
                error!(provider, method, status, outcome = err.code(), error = %detail, latency_ms, "request");
            } else {
                warn!(provider, method, status, outcome = err.code(), error = %err, latency_ms, "request");
            }
        }
    }
}

/// The HTTP answer to a request.
fn answer(provider: &str, result: Result<&Success, &Error>) -> Response<Body> {
    match result {
        Ok(Success::Probe) => respond(
            StatusCode::OK,
            json!({"code": 0, "message": "ok", "provider": provider}).to_string(),
        ),
        Ok(Success::Control { kind, .. }) => respond(
            StatusCode::OK,
            json!({"code": 0, "message": "ok", "provider": provider, "control": kind}).to_string(),
        ),
        Ok(Success::Stored { ingested, .. }) => {
            let body = json!({
                "code": 0, "message": "ok", "received": ingested.received,
                "stored": ingested.outcome.stored, "duplicates": ingested.outcome.duplicates,
                "quarantined": ingested.quarantined,
            });
            respond(StatusCode::OK, body.to_string())
        }
        Err(err) => {
            let code =
                StatusCode::from_u16(err.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            respond(code, err.body())
        }
    }
}

/// Counts what a request did, for [`emf_line`].
fn request_metrics(provider: &str, result: Result<&Success, &Error>) -> RequestMetrics {
    let mut metrics = RequestMetrics {
        provider: provider.to_owned(),
        status: 200,
        ..Default::default()
    };
    match result {
        Ok(Success::Probe | Success::Control { .. }) => {}
        Ok(Success::Stored { ingested, .. }) => {
            metrics.stored = ingested.outcome.stored;
            metrics.quarantined = ingested.quarantined;
            metrics.stored_by_type = ingested.outcome.stored_by_type.clone();
        }
        Err(err) => {
            metrics.status = err.status();
            metrics.auth_failed = matches!(err, Error::Unauthorized(_));
        }
    }
    metrics
}

/// Finds the provider in `.../webhooks/{provider}` (a stage prefix and one
/// trailing slash are allowed; dot segments and encoded slashes are not).
pub fn route(path: &str) -> Result<&'static dyn Provider, Error> {
    let lowered = path.to_ascii_lowercase();
    if lowered.contains("%2f") || lowered.contains("%5c") || path.contains('\\') {
        return Err(Error::NotFound);
    }
    let path = path.strip_suffix('/').unwrap_or(path);
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    if segments
        .iter()
        .any(|s| s.is_empty() || *s == "." || *s == "..")
    {
        return Err(Error::NotFound);
    }
    match segments.as_slice() {
        [.., "webhooks", name] => providers::by_name(name).ok_or(Error::UnknownProvider),
        _ => Err(Error::NotFound),
    }
}

fn header_pairs(request: &Request) -> Vec<(String, String)> {
    request
        .headers()
        .iter()
        .filter_map(|(name, value)| {
            Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned()))
        })
        .collect()
}

fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

fn respond(status: StatusCode, body: String) -> Response<Body> {
    let mut response = Response::new(Body::Text(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(path: &str) -> Result<&'static str, &'static str> {
        route(path).map(|p| p.name()).map_err(|e| e.code())
    }

    #[test]
    fn routes_with_and_without_stage_prefix() {
        assert_eq!(name("/webhooks/tencent"), Ok("tencent"));
        assert_eq!(name("/prod/webhooks/engagelab"), Ok("engagelab"));
        assert_eq!(name("/webhooks/uspeedo/"), Ok("uspeedo"));
    }

    #[test]
    fn rejects_unknown_providers_and_path_tricks() {
        assert_eq!(name("/webhooks/nonesuch"), Err("unknown_provider"));
        assert_eq!(name("/webhooks/Tencent"), Err("unknown_provider"));
        assert_eq!(name("/webhooks"), Err("not_found"));
        assert_eq!(name("/"), Err("not_found"));
        assert_eq!(name("/webhooks/../webhooks/tencent"), Err("not_found"));
        assert_eq!(name("/webhooks%2ftencent"), Err("not_found"));
        assert_eq!(name("/webhooks//tencent"), Err("not_found"));
        assert_eq!(name("/webhooks/tencent//"), Err("not_found"));
    }

    #[test]
    fn metrics_count_what_the_request_did() {
        let outcome = PutOutcome {
            stored: 1,
            duplicates: 2,
            stored_by_type: [(crate::EventType::Opened, 1)].into(),
        };
        let ok = request_metrics(
            "uspeedo",
            Ok(&Success::Stored {
                ingested: Ingested {
                    received: 3,
                    outcome,
                    quarantined: 4,
                },
                auth: "token",
            }),
        );
        assert_eq!((ok.status, ok.stored, ok.quarantined), (200, 1, 4));
        assert_eq!(ok.stored_by_type.get(&crate::EventType::Opened), Some(&1));
        let denied = request_metrics(
            "tencent",
            Err(&Error::Unauthorized(crate::auth::AuthError::BadToken)),
        );
        assert!(denied.auth_failed && denied.status == 401);
        let throttled = request_metrics(
            "tencent",
            Err(&Error::Storage(StoreError::Throttled("x".into()))),
        );
        assert!(!throttled.auth_failed && throttled.status == 503);
    }

    #[test]
    fn query_is_decoded() {
        assert_eq!(
            query_pairs(Some("token=a%2Bb&x=1")),
            vec![("token".into(), "a+b".into()), ("x".into(), "1".into())]
        );
        assert!(query_pairs(None).is_empty());
    }

    /// A provider whose authenticated `ping` bodies are control requests.
    struct Pinging;

    impl Provider for Pinging {
        fn name(&self) -> &'static str {
            "pinging"
        }
        fn secrets_env(&self) -> &'static str {
            "PINGING_TOKENS"
        }
        fn control(&self, request: &Inbound<'_>) -> Option<crate::providers::Control> {
            (request.body == b"ping").then_some(crate::providers::Control { kind: "ping" })
        }
        fn parse(
            &self,
            _body: &[u8],
        ) -> Result<Vec<crate::EmailEvent>, crate::providers::ParseError> {
            Err(crate::providers::ParseError::NoEvents)
        }
        fn local_secret(&self) -> &'static str {
            "local-pinging-token"
        }
        fn refresh_sample(&self, _: &mut serde_json::Value, _: i64, _: &str) {}
    }

    /// A provider whose pre-authentication step fails on `unavailable`, and whose
    /// `ping` control request completes only when the body says so.
    struct Hooked;

    impl Provider for Hooked {
        fn name(&self) -> &'static str {
            "hooked"
        }
        fn secrets_env(&self) -> &'static str {
            "HOOKED_TOKENS"
        }
        fn prepare<'a>(
            &'a self,
            request: &'a Inbound<'a>,
            _ctx: &'a AuthContext<'a>,
        ) -> Option<futures_util::future::BoxFuture<'a, Result<(), providers::Unavailable>>>
        {
            let fails = request.body == b"unavailable";
            Some(Box::pin(async move {
                if fails {
                    Err(providers::Unavailable {
                        code: "certificate_unavailable",
                        detail: "down".into(),
                    })
                } else {
                    Ok(())
                }
            }))
        }
        fn control(&self, request: &Inbound<'_>) -> Option<crate::providers::Control> {
            request
                .body
                .starts_with(b"ping")
                .then_some(crate::providers::Control { kind: "ping" })
        }
        fn complete_control<'a>(
            &'a self,
            request: &'a Inbound<'a>,
            _control: crate::providers::Control,
        ) -> Option<futures_util::future::BoxFuture<'a, Result<(), providers::Unavailable>>>
        {
            let fails = request.body == b"ping-fails";
            Some(Box::pin(async move {
                if fails {
                    Err(providers::Unavailable {
                        code: "subscription_not_confirmed",
                        detail: "no".into(),
                    })
                } else {
                    Ok(())
                }
            }))
        }
        fn parse(
            &self,
            _body: &[u8],
        ) -> Result<Vec<crate::EmailEvent>, crate::providers::ParseError> {
            Err(crate::providers::ParseError::NoEvents)
        }
        fn local_secret(&self) -> &'static str {
            "local-hooked-token"
        }
        fn refresh_sample(&self, _: &mut serde_json::Value, _: i64, _: &str) {}
    }

    /// Pure logic: a control request never reaches storage.
    struct NoStore;

    impl EventStore for NoStore {
        async fn put_events(
            &self,
            _: &[crate::EmailEvent],
            _: i64,
        ) -> Result<PutOutcome, StoreError> {
            Err(StoreError::Unavailable(
                "a control request reached the store".into(),
            ))
        }

        async fn quarantine(
            &self,
            _: &str,
            _: &[crate::providers::Unparsed],
            _: Option<&str>,
            _: i64,
        ) -> Result<QuarantineOutcome, StoreError> {
            Err(StoreError::Unavailable(
                "a control request reached the store".into(),
            ))
        }
    }

    #[tokio::test]
    async fn control_requests_are_answered_after_authentication_and_store_nothing() {
        let mut config = Config::from_lookup(|k| (k == "TABLE_NAME").then(|| "t".into())).unwrap();
        config.secrets.insert("pinging", vec!["s".into()]);
        let app = App::new(config, NoStore, Arc::new(crate::auth::FixedClock(0)));
        let post = |query: &str, body: &'static [u8]| {
            lambda_http::http::Request::builder()
                .method("POST")
                .uri(format!("/webhooks/pinging?{query}"))
                .body(Body::from(body))
                .unwrap()
        };
        // `process` takes the provider directly: `Pinging` is not in `ALL`.
        let Ok(Success::Control { kind, auth }) =
            app.process(&Pinging, &post("token=s", b"ping")).await
        else {
            panic!("a ping is a control request");
        };
        assert_eq!((kind, auth), ("ping", "token"));
        assert!(matches!(
            app.process(&Pinging, &post("token=wrong", b"ping")).await,
            Err(Error::Unauthorized(_))
        ));
        // Not a control request: it goes to the store (which this one refuses).
        assert!(matches!(
            app.process(&Pinging, &post("token=s", b"event")).await,
            Err(Error::Storage(_))
        ));
    }

    #[tokio::test]
    async fn the_provider_hooks_run_around_authentication_and_their_failures_are_503() {
        let mut config = Config::from_lookup(|k| (k == "TABLE_NAME").then(|| "t".into())).unwrap();
        config.secrets.insert("hooked", vec!["s".into()]);
        let app = App::new(config, NoStore, Arc::new(crate::auth::FixedClock(0)));
        let post = |query: &str, body: &'static [u8]| {
            lambda_http::http::Request::builder()
                .method("POST")
                .uri(format!("/webhooks/hooked?{query}"))
                .body(Body::from(body))
                .unwrap()
        };
        let unavailable = app
            .process(&Hooked, &post("token=s", b"unavailable"))
            .await
            .err()
            .unwrap();
        assert_eq!(
            (unavailable.status(), unavailable.code()),
            (503, "certificate_unavailable")
        );
        assert!(matches!(
            app.process(&Hooked, &post("token=s", b"ping")).await,
            Ok(Success::Control { kind: "ping", .. })
        ));
        let unconfirmed = app
            .process(&Hooked, &post("token=s", b"ping-fails"))
            .await
            .err()
            .unwrap();
        assert_eq!(
            (unconfirmed.status(), unconfirmed.code()),
            (503, "subscription_not_confirmed")
        );
        // Authentication still decides after a successful preparation.
        assert!(matches!(
            app.process(&Hooked, &post("token=wrong", b"ping-fails"))
                .await,
            Err(Error::Unauthorized(_))
        ));
    }
}
