//! One Lambda invocation, whatever invoked the function.
//!
//! - An HTTP event (API Gateway HTTP API, a Lambda Function URL, an ALB: what
//!   `lambda_http` accepts) goes to [`App::handle`] through `lambda_http`'s own
//!   adapter, exactly as `lambda_http::run` would hand it over.
//! - An SES event that AWS hands to the function directly — an EventBridge event
//!   (`source` [`EVENTBRIDGE_SOURCE`], the SES event in `detail`) or an SNS
//!   subscription of protocol `lambda` (`Records[].Sns.Message`) — goes to
//!   [`App::ingest_direct`] for the provider named [`DIRECT_PROVIDER`]. IAM
//!   authorised these invocations (the function's resource policy), so there is
//!   no HTTP authentication; SNS records may further be held to
//!   [`TOPIC_ARNS_ENV`].
//!
//! What fails the invocation (Lambda retries an asynchronous invocation twice,
//! then drops it or hands it to the function's on-failure destination): a
//! storage failure (any 5xx outcome: the retry is idempotent), an event of no
//! known shape, the direct provider not being registered, an SNS record from a
//! topic outside [`TOPIC_ARNS_ENV`]. What completes it: events stored or already
//! there (what does not normalize is quarantined raw, as for HTTP requests),
//! and a body over the size limit (the same bytes would be refused again, so a
//! retry only repeats the failure; the refusal is logged and counted like an
//! HTTP 413).

use std::convert::Infallible;

use lambda_http::aws_lambda_events::alb::AlbTargetGroupRequest;
use lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use lambda_http::lambda_runtime::{Context, LambdaEvent, Service};
use lambda_http::request::LambdaRequest;
use lambda_http::{Adapter, Request, service_fn};
use serde::de::{Deserialize, Deserializer};
use serde::{Serialize, Serializer};
use serde_json::value::RawValue;
use tracing::error;

use crate::app::{App, Ingested};
use crate::config::Config;
use crate::log_value::bounded;
use crate::providers::{self, Provider};
use crate::store::EventStore;

/// The route name of the provider whose events AWS hands to the function directly.
pub const DIRECT_PROVIDER: &str = "ses";

/// The EventBridge `source` of SES events.
pub const EVENTBRIDGE_SOURCE: &str = "aws.ses";

/// The `EventSource` of a record that SNS delivers to a Lambda subscription.
pub const SNS_EVENT_SOURCE: &str = "aws:sns";

/// Comma-separated topic ARNs whose SNS records are accepted; unset or empty:
/// any topic the function's resource policy lets invoke it.
pub const TOPIC_ARNS_ENV: &str = "SES_TOPIC_ARNS";

/// The `via` of an event from EventBridge (log line `method`).
pub const VIA_EVENTBRIDGE: &str = "eventbridge";

/// The `via` of a record from an SNS subscription (log line `method`).
pub const VIA_SNS: &str = "sns";

/// What invoked the function, told apart by shape.
// The HTTP variant stays unboxed, as `lambda_http` keeps it: one invocation holds
// one value, and a box would cost every HTTP event an allocation and a copy
// (measured: +1.5 % on reading the event, against −1 % unboxed).
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Invocation {
    /// An HTTP event, as `lambda_http` reads it.
    Http(LambdaRequest),
    /// An EventBridge event.
    EventBridge(EventBridgeEvent),
    /// Records from SNS subscriptions.
    Sns(SnsEvent),
    /// Anything else: refused with this reason.
    Unrecognized(&'static str),
}

/// An EventBridge event: who sent it and the provider's event in `detail`.
#[derive(Debug, serde::Deserialize)]
pub struct EventBridgeEvent {
    /// The sending service, e.g. `aws.ses`.
    pub source: String,
    /// What happened, e.g. `Email Delivered`.
    #[serde(rename = "detail-type", default)]
    pub detail_type: String,
    /// The provider's event, as sent (its exact bytes).
    pub detail: Box<RawValue>,
}

/// The records of one invocation by SNS.
#[derive(Debug, serde::Deserialize)]
pub struct SnsEvent {
    /// Usually one; each is processed.
    #[serde(rename = "Records")]
    pub records: Vec<SnsRecord>,
}

/// One record of an SNS invocation.
#[derive(Debug, serde::Deserialize)]
pub struct SnsRecord {
    /// `aws:sns` for SNS; other services' records are refused.
    #[serde(rename = "EventSource", default)]
    pub event_source: String,
    /// The notification; absent in other services' records.
    #[serde(rename = "Sns")]
    pub sns: Option<SnsNotification>,
}

/// The notification inside an SNS record.
#[derive(Debug, serde::Deserialize)]
pub struct SnsNotification {
    /// `Notification` (the only type SNS delivers to a Lambda subscription).
    #[serde(rename = "Type", default)]
    pub kind: String,
    /// The topic that published it.
    #[serde(rename = "TopicArn", default)]
    pub topic_arn: String,
    /// The provider's event, a JSON document as a string.
    #[serde(rename = "Message")]
    pub message: String,
}

/// The fields that tell a non-HTTP event's kind; read only when the event is not HTTP.
#[derive(serde::Deserialize)]
struct DirectShape {
    source: Option<String>,
    detail: Option<Box<RawValue>>,
    #[serde(rename = "detail-type")]
    detail_type: Option<String>,
    #[serde(rename = "Records")]
    records: Option<Vec<SnsRecord>>,
}

/// The HTTP event in `json`, read as `lambda_http` reads it: its variants, in
/// its order, for the features this crate enables (`apigw_http`, `alb`). Read
/// here rather than through `LambdaRequest`'s own `Deserialize`, which first
/// copies the document into a buffer of its own: this way an HTTP event costs
/// what it cost under `lambda_http::run` (one scan for the document's end, then
/// the typed read) and no more. A test holds the two readings equal.
fn http_request(json: &str) -> Option<LambdaRequest> {
    if let Ok(request) = serde_json::from_str::<ApiGatewayV2httpRequest>(json) {
        return Some(LambdaRequest::ApiGatewayV2(request));
    }
    if let Ok(request) = serde_json::from_str::<AlbTargetGroupRequest>(json) {
        return Some(LambdaRequest::Alb(request));
    }
    None
}

impl Invocation {
    /// Tells one invocation's JSON apart: HTTP first ([`http_request`]), the
    /// direct shapes only when that fails. Never fails: what is neither becomes
    /// [`Invocation::Unrecognized`].
    pub fn from_json(json: &str) -> Invocation {
        if let Some(request) = http_request(json) {
            return Invocation::Http(request);
        }
        let Ok(shape) = serde_json::from_str::<DirectShape>(json) else {
            return Invocation::Unrecognized(
                "not an HTTP event, an EventBridge event or SNS records",
            );
        };
        match shape {
            DirectShape {
                records: Some(records),
                ..
            } => Invocation::Sns(SnsEvent { records }),
            DirectShape {
                source: Some(source),
                detail: Some(detail),
                detail_type,
                ..
            } => Invocation::EventBridge(EventBridgeEvent {
                source,
                detail_type: detail_type.unwrap_or_default(),
                detail,
            }),
            _ => Invocation::Unrecognized("not an HTTP event, an EventBridge event or SNS records"),
        }
    }
}

impl<'de> Deserialize<'de> for Invocation {
    /// Borrows the document (no copy) and reads it with [`Invocation::from_json`].
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = <&RawValue>::deserialize(deserializer)?;
        Ok(Invocation::from_json(raw.get()))
    }
}

/// Where direct events go: the provider that parses them and the SNS topics accepted.
pub struct DirectRoute {
    provider: Option<&'static dyn Provider>,
    topic_arns: Vec<String>,
}

impl DirectRoute {
    /// The route of the deployed function: [`DIRECT_PROVIDER`] (if registered)
    /// and its topics as configured — [`TOPIC_ARNS_ENV`] from the environment,
    /// or from the Secrets Manager secret when the configuration read one, the
    /// same list the HTTP route holds SNS messages to.
    pub fn from_config(config: &Config) -> DirectRoute {
        DirectRoute::new(
            providers::by_name(DIRECT_PROVIDER),
            config.secrets_for(DIRECT_PROVIDER).to_vec(),
        )
    }

    /// A route to `provider` (none: every direct event fails), accepting SNS
    /// records from `topic_arns` (empty: from any topic).
    pub fn new(provider: Option<&'static dyn Provider>, topic_arns: Vec<String>) -> DirectRoute {
        DirectRoute {
            provider,
            topic_arns,
        }
    }

    fn provider(&self) -> Result<&'static dyn Provider, DirectError> {
        self.provider
            .ok_or(DirectError::NoProvider(DIRECT_PROVIDER))
    }

    fn topic_allowed(&self, topic_arn: &str) -> bool {
        self.topic_arns.is_empty() || self.topic_arns.iter().any(|t| t == topic_arn)
    }
}

/// Why a direct invocation failed (Lambda then retries it).
#[derive(Debug, thiserror::Error)]
pub enum DirectError {
    /// The provider of direct events is not registered in this build.
    #[error("no provider {0} is registered to take SES events")]
    NoProvider(&'static str),
    /// The event has no shape this function takes.
    #[error("unrecognized invocation: {0}")]
    Unrecognized(&'static str),
    /// An SNS record from a topic outside the allow-list.
    #[error("SNS record from a topic not listed in {TOPIC_ARNS_ENV}")]
    TopicNotAllowed,
    /// Storing failed (5xx): the retry stores what is missing.
    #[error("storage failed for {failed} of {records} record(s); retry")]
    Storage {
        /// Records whose events could not all be stored.
        failed: usize,
        /// Records in the invocation.
        records: usize,
    },
}

/// What a direct invocation did, returned to the invoker (a synchronous
/// `aws lambda invoke` or `cargo lambda invoke` shows it).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DirectSummary {
    /// Bodies handed to the provider (one per EventBridge event or SNS record).
    pub records: usize,
    /// Events in them.
    pub received: usize,
    /// Events written now.
    pub stored: usize,
    /// Events already stored.
    pub duplicates: usize,
    /// Parts kept raw in quarantine (they did not normalize).
    pub quarantined: usize,
    /// Bodies refused (over the size limit; logged with their error class; not retried).
    pub refused: usize,
}

impl DirectSummary {
    fn add(&mut self, ingested: &Ingested) {
        self.received += ingested.received;
        self.stored += ingested.outcome.stored;
        self.duplicates += ingested.outcome.duplicates;
        self.quarantined += ingested.quarantined;
    }
}

/// The answer to one invocation: the HTTP response `lambda_http` builds (its
/// type is private to it), or a direct summary.
pub enum Answer<H> {
    /// An HTTP event's response.
    Http(H),
    /// A direct invocation's summary.
    Direct(DirectSummary),
}

impl<H: Serialize> Serialize for Answer<H> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Answer::Http(response) => response.serialize(serializer),
            Answer::Direct(summary) => summary.serialize(serializer),
        }
    }
}

/// Handles one invocation: HTTP events as `lambda_http::run` would, direct
/// events through [`App::ingest_direct`]. An `Err` fails the invocation.
pub async fn handle<S: EventStore>(
    app: &App<S>,
    route: &DirectRoute,
    event: LambdaEvent<Invocation>,
) -> Result<Answer<impl Serialize + use<S>>, lambda_http::Error> {
    let LambdaEvent { payload, context } = event;
    let direct = match payload {
        Invocation::Http(request) => {
            return Ok(Answer::Http(handle_http(app, request, context).await));
        }
        Invocation::EventBridge(event) => ingest_eventbridge(app, route, &event).await,
        Invocation::Sns(event) => ingest_sns(app, route, &event).await,
        Invocation::Unrecognized(reason) => Err(DirectError::Unrecognized(reason)),
    };
    direct.map(Answer::Direct).map_err(|err| {
        // One line, no payload: what failed and why; the runtime logs the error too.
        error!(error = %err, "invocation failed");
        err.into()
    })
}

/// An HTTP event through `lambda_http`'s adapter: the request it builds (with
/// the Lambda context and the X-Ray trace header), the response it serializes.
async fn handle_http<S: EventStore>(
    app: &App<S>,
    request: LambdaRequest,
    context: Context,
) -> impl Serialize + use<S> {
    let mut adapter = Adapter::from(service_fn(|request: Request| async move {
        Ok::<_, Infallible>(app.handle(request).await)
    }));
    match adapter.call(LambdaEvent::new(request, context)).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}

/// An EventBridge event: its `detail` is the provider's body.
pub async fn ingest_eventbridge<S: EventStore>(
    app: &App<S>,
    route: &DirectRoute,
    event: &EventBridgeEvent,
) -> Result<DirectSummary, DirectError> {
    if event.source != EVENTBRIDGE_SOURCE {
        error!(
            source = %bounded(&event.source),
            detail_type = %bounded(&event.detail_type),
            "EventBridge event from a source no provider takes"
        );
        return Err(DirectError::Unrecognized(
            "an EventBridge event from another source",
        ));
    }
    let provider = route.provider()?;
    let mut summary = DirectSummary::default();
    let storage_failed = ingest_one(
        app,
        provider,
        VIA_EVENTBRIDGE,
        event.detail.get().as_bytes(),
        &mut summary,
    )
    .await;
    if storage_failed {
        return Err(DirectError::Storage {
            failed: 1,
            records: 1,
        });
    }
    Ok(summary)
}

/// SNS records: each record's `Message` is a provider body. Every record is
/// processed before the invocation fails, so one failure does not hold back the
/// others (their retry is idempotent).
pub async fn ingest_sns<S: EventStore>(
    app: &App<S>,
    route: &DirectRoute,
    event: &SnsEvent,
) -> Result<DirectSummary, DirectError> {
    // Every record is checked before any is stored: a shape or topic error is
    // the invocation's, not one record's.
    let mut messages = Vec::with_capacity(event.records.len());
    for record in &event.records {
        let notification = match &record.sns {
            Some(notification) if record.event_source == SNS_EVENT_SOURCE => notification,
            _ => {
                return Err(DirectError::Unrecognized(
                    "a Records event whose records are not from SNS",
                ));
            }
        };
        if notification.kind != "Notification" {
            return Err(DirectError::Unrecognized(
                "an SNS record that is not a Notification",
            ));
        }
        if !route.topic_allowed(&notification.topic_arn) {
            error!(
                topic_arn = %bounded(&notification.topic_arn),
                env = TOPIC_ARNS_ENV,
                "SNS record from a topic not allowed: the function's permission and the allow-list disagree"
            );
            return Err(DirectError::TopicNotAllowed);
        }
        messages.push(notification.message.as_bytes());
    }
    if messages.is_empty() {
        return Err(DirectError::Unrecognized("SNS records: none"));
    }
    let provider = route.provider()?;
    let mut summary = DirectSummary::default();
    let mut failed = 0;
    for message in &messages {
        if ingest_one(app, provider, VIA_SNS, message, &mut summary).await {
            failed += 1;
        }
    }
    match failed {
        0 => Ok(summary),
        failed => Err(DirectError::Storage {
            failed,
            records: messages.len(),
        }),
    }
}

/// Stores one body, adding to `summary`; `true` when storage failed (5xx), so
/// the invocation must fail. A refused body (4xx: too large) is counted, not retried.
async fn ingest_one<S: EventStore>(
    app: &App<S>,
    provider: &dyn Provider,
    via: &'static str,
    body: &[u8],
    summary: &mut DirectSummary,
) -> bool {
    summary.records += 1;
    match app.ingest_direct(provider, via, body).await {
        Ok(ingested) => {
            summary.add(&ingested);
            false
        }
        Err(err) if err.status() >= 500 => true,
        Err(_) => {
            summary.refused += 1;
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(json: &str) -> &'static str {
        match Invocation::from_json(json) {
            Invocation::Http(_) => "http",
            Invocation::EventBridge(_) => "eventbridge",
            Invocation::Sns(_) => "sns",
            Invocation::Unrecognized(_) => "unrecognized",
        }
    }

    #[test]
    fn shapes_are_told_apart() {
        let http = r#"{"version":"2.0","rawPath":"/webhooks/postmark","headers":{},
            "requestContext":{"http":{"method":"POST","path":"/webhooks/postmark"}},"body":"{}"}"#;
        assert_eq!(kind(http), "http");
        let alb = r#"{"httpMethod":"POST","path":"/webhooks/tencent","headers":{},
            "requestContext":{"elb":{"targetGroupArn":"arn"}},"body":"{}","isBase64Encoded":false}"#;
        assert_eq!(kind(alb), "http");
        let eventbridge = r#"{"version":"0","source":"aws.ses","detail-type":"Email Delivered","detail":{"eventType":"Delivery"}}"#;
        assert_eq!(kind(eventbridge), "eventbridge");
        let sns = r#"{"Records":[{"EventSource":"aws:sns","Sns":{"Type":"Notification","TopicArn":"t","Message":"{}"}}]}"#;
        assert_eq!(kind(sns), "sns");
        for other in [
            "{}",
            "null",
            "[]",
            "\"text\"",
            r#"{"source":"aws.ses"}"#,
            r#"{"Records":"x"}"#,
            r#"{"Records":[{"Sns":{"Type":"Notification"}}]}"#,
        ] {
            assert_eq!(kind(other), "unrecognized", "{other}");
        }
    }

    /// Events of every kind API Gateway, Function URLs and ALBs send, and some
    /// that are not HTTP: the dispatcher takes as HTTP exactly what
    /// `lambda_http` takes (enabling a `lambda_http` event feature without
    /// teaching [`http_request`] its variant fails here).
    #[test]
    fn http_reading_matches_lambda_http() {
        let samples = [
            // HTTP API payload v2 (also a Function URL's).
            r#"{"version":"2.0","rawPath":"/webhooks/x","requestContext":{"http":{"method":"POST"}},"body":"{}"}"#,
            // ALB.
            r#"{"httpMethod":"POST","path":"/webhooks/x","requestContext":{"elb":{"targetGroupArn":"a"}}}"#,
            // REST API payload v1.
            r#"{"resource":"/webhooks/{provider}","path":"/webhooks/x","httpMethod":"POST","headers":{},
                "requestContext":{"resourcePath":"/webhooks/{provider}","httpMethod":"POST","stage":"prod","requestId":"r","accountId":"1","apiId":"a"},"body":"{}"}"#,
            // WebSocket API.
            r#"{"requestContext":{"routeKey":"$default","eventType":"MESSAGE","connectionId":"c","connectedAt":1,"requestTimeEpoch":1,"apiId":"a","stage":"s","requestId":"r"},"body":"{}","isBase64Encoded":false}"#,
            // VPC Lattice v2.
            r#"{"version":"2.0","path":"/webhooks/x","method":"POST","headers":{},"body":"{}","isBase64Encoded":false,
                "requestContext":{"serviceNetworkArn":"a","serviceArn":"b","targetGroupArn":"c","region":"us-east-1","timeEpoch":"1"}}"#,
            r#"{"source":"aws.ses","detail":{}}"#,
            r#"{"Records":[]}"#,
            "{}",
        ];
        for json in samples {
            assert_eq!(
                http_request(json).is_some(),
                serde_json::from_str::<LambdaRequest>(json).is_ok(),
                "{json}"
            );
        }
        assert!(http_request(samples[0]).is_some() && http_request(samples[1]).is_some());
        // The samples of the kinds this build leaves out are real ones: the
        // guard above would see those features being enabled.
        use lambda_http::aws_lambda_events::apigw::{
            ApiGatewayProxyRequest, ApiGatewayWebsocketProxyRequest,
        };
        assert!(serde_json::from_str::<ApiGatewayProxyRequest>(samples[2]).is_ok());
        assert!(serde_json::from_str::<ApiGatewayWebsocketProxyRequest>(samples[3]).is_ok());
    }

    #[test]
    fn eventbridge_detail_keeps_its_exact_bytes() {
        let json = r#"{"source":"aws.ses","detail-type":"x","detail":{ "b" :1,"a":[ 2 ]}}"#;
        let Invocation::EventBridge(event) = Invocation::from_json(json) else {
            panic!("an EventBridge event")
        };
        assert_eq!(event.detail.get(), r#"{ "b" :1,"a":[ 2 ]}"#);
    }

    #[test]
    fn deserializing_from_bytes_borrows_and_dispatches() {
        let json = br#"{"Records":[{"EventSource":"aws:sns","Sns":{"Type":"Notification","TopicArn":"t","Message":"m"}}]}"#;
        let Invocation::Sns(event) = serde_json::from_slice::<Invocation>(json).unwrap() else {
            panic!("SNS records")
        };
        assert_eq!(event.records[0].sns.as_ref().unwrap().message, "m");
        assert!(serde_json::from_slice::<Invocation>(b"{not json").is_err());
    }

    #[test]
    fn topic_allow_list_is_optional() {
        let config = |topics: Option<&str>| {
            Config::from_lookup(|name| match name {
                "TABLE_NAME" => Some("t".to_owned()),
                TOPIC_ARNS_ENV => topics.map(str::to_owned),
                _ => None,
            })
            .unwrap()
        };
        let open = DirectRoute::from_config(&config(None));
        assert!(open.topic_allowed("arn:aws:sns:us-east-1:123456789012:any"));
        let listed = DirectRoute::from_config(&config(Some(" arn:a , arn:b ,")));
        assert!(listed.topic_allowed("arn:a") && listed.topic_allowed("arn:b"));
        assert!(!listed.topic_allowed("arn:c") && !listed.topic_allowed(""));
    }

    #[test]
    fn topics_from_secrets_manager_hold_direct_records_too() {
        // The environment has no topics (they live in the secret): the route
        // must still hold SNS records to the secret's list.
        let config = Config::from_lookup(|name| (name == "TABLE_NAME").then(|| "t".to_owned()))
            .unwrap()
            .with_secrets_from(&std::collections::HashMap::from([(
                TOPIC_ARNS_ENV.to_owned(),
                vec!["arn:aws:sns:us-east-1:123456789012:ses".to_owned()],
            )]));
        let route = DirectRoute::from_config(&config);
        assert!(route.topic_allowed("arn:aws:sns:us-east-1:123456789012:ses"));
        assert!(!route.topic_allowed("arn:aws:sns:us-east-1:123456789012:other"));
    }
}
