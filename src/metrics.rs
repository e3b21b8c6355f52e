//! CloudWatch Embedded Metric Format (EMF): one JSON line per request on stdout,
//! which CloudWatch Logs turns into metrics — no API call, no latency added.
//!
//! Namespace `mailhooks`, one dimension, `function` (the Lambda function's name,
//! so that two stacks in one account never share a series): `EventsStored`,
//! `Quarantined` (parts of authenticated bodies kept raw because they did not
//! normalize), `AuthFailures` and `ServerErrors` (5xx). Four metrics whatever the
//! number of providers, at $0.30 each a month (docs/cost.md): the provider and the
//! event types are plain members of the same line (`provider`, `stored_by_type`),
//! which CloudWatch Logs Insights reads per query instead of per month.
//! Requests, 4xx, latency and throttles come free from the front door's, Lambda's
//! and DynamoDB's own metrics.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};

use crate::event::EventType;

/// The CloudWatch namespace of every metric.
pub const NAMESPACE: &str = "mailhooks";

/// The one dimension of every metric: the function's name.
pub const DIMENSION: &str = "function";

/// The variable in which Lambda names the running function.
const FUNCTION_NAME_ENV: &str = "AWS_LAMBDA_FUNCTION_NAME";

/// The `function` dimension's value outside Lambda (the local server, tests).
const LOCAL_FUNCTION: &str = "local";

/// The running function's name, read once: Lambda sets it before the process starts.
static FUNCTION_NAME: LazyLock<String> = LazyLock::new(|| {
    std::env::var(FUNCTION_NAME_ENV).unwrap_or_else(|_| LOCAL_FUNCTION.to_owned())
});

/// What one request did, as counted for metrics.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestMetrics {
    /// Provider name from the route, or `none`.
    pub provider: String,
    /// HTTP status answered.
    pub status: u16,
    /// Events written now.
    pub stored: usize,
    /// Parts of the body kept raw in quarantine.
    pub quarantined: usize,
    /// Events written now, by type.
    pub stored_by_type: BTreeMap<EventType, usize>,
    /// The request failed authentication.
    pub auth_failed: bool,
}

/// A metric declared in an EMF directive.
#[derive(Serialize)]
struct Definition {
    #[serde(rename = "Name")]
    name: &'static str,
    #[serde(rename = "Unit")]
    unit: &'static str,
}

const fn count(name: &'static str) -> Definition {
    Definition {
        name,
        unit: "Count",
    }
}

/// The metrics of the line, in the order of [`RequestLine`]'s values.
const DEFINITIONS: [Definition; 4] = [
    count("EventsStored"),
    count("Quarantined"),
    count("AuthFailures"),
    count("ServerErrors"),
];

/// The dimension sets of the line: the function alone.
const DIMENSIONS: [&[&str]; 1] = [&[DIMENSION]];

/// The `_aws` member: when, and which members are metrics under which dimensions.
#[derive(Serialize)]
struct Envelope {
    #[serde(rename = "Timestamp")]
    timestamp: i64,
    #[serde(rename = "CloudWatchMetrics")]
    directives: [Directive; 1],
}

#[derive(Serialize)]
struct Directive {
    #[serde(rename = "Namespace")]
    namespace: &'static str,
    #[serde(rename = "Dimensions")]
    dimensions: &'static [&'static [&'static str]],
    #[serde(rename = "Metrics")]
    metrics: &'static [Definition],
}

/// Events stored by type, as `{"delivered": 2, ...}`.
struct ByType<'a>(&'a BTreeMap<EventType, usize>);

impl Serialize for ByType<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (event_type, count) in self.0 {
            map.serialize_entry(event_type.as_str(), count)?;
        }
        map.end()
    }
}

/// The per-request line: four metrics, and what Logs Insights groups them by.
#[derive(Serialize)]
struct RequestLine<'a> {
    #[serde(rename = "_aws")]
    aws: Envelope,
    function: &'a str,
    provider: &'a str,
    #[serde(rename = "EventsStored")]
    events_stored: usize,
    #[serde(rename = "Quarantined")]
    quarantined: usize,
    #[serde(rename = "AuthFailures")]
    auth_failures: u8,
    #[serde(rename = "ServerErrors")]
    server_errors: u8,
    /// Not a metric: a dimension per type would be a metric per type and provider.
    #[serde(skip_serializing_if = "is_empty")]
    stored_by_type: ByType<'a>,
}

fn is_empty(by_type: &ByType<'_>) -> bool {
    by_type.0.is_empty()
}

/// The EMF line for one request, stamped `timestamp_ms`.
pub fn emf_line(m: &RequestMetrics, timestamp_ms: i64) -> String {
    // Typed lines serialized straight to text: building `serde_json::Value` trees
    // cost ~7 µs per request (benches/cpu.rs), more than normalizing an event.
    let line = RequestLine {
        aws: Envelope {
            timestamp: timestamp_ms,
            directives: [Directive {
                namespace: NAMESPACE,
                dimensions: &DIMENSIONS,
                metrics: &DEFINITIONS,
            }],
        },
        function: &FUNCTION_NAME,
        provider: &m.provider,
        events_stored: m.stored,
        quarantined: m.quarantined,
        auth_failures: u8::from(m.auth_failed),
        server_errors: u8::from(m.status >= 500),
        stored_by_type: ByType(&m.stored_by_type),
    };
    serde_json::to_string(&line).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn parse(line: &str) -> Value {
        serde_json::from_str(line).unwrap()
    }

    /// The whole line, byte for byte: its size is paid per request in log ingestion.
    #[test]
    fn a_stored_request_is_one_line_of_four_metrics_and_its_event_types() {
        let m = RequestMetrics {
            provider: "uspeedo".into(),
            status: 200,
            stored: 2,
            quarantined: 1,
            stored_by_type: BTreeMap::from([(EventType::Delivered, 1), (EventType::Opened, 1)]),
            ..RequestMetrics::default()
        };
        let emitted = emf_line(&m, 1_700_000_000_000);
        let expected = format!(
            concat!(
                r#"{{"_aws":{{"Timestamp":1700000000000,"CloudWatchMetrics":[{{"Namespace":"mailhooks","#,
                r#""Dimensions":[["function"]],"Metrics":[{{"Name":"EventsStored","Unit":"Count"}},"#,
                r#"{{"Name":"Quarantined","Unit":"Count"}},{{"Name":"AuthFailures","Unit":"Count"}},"#,
                r#"{{"Name":"ServerErrors","Unit":"Count"}}]}}]}},"function":"{}","provider":"uspeedo","#,
                r#""EventsStored":2,"Quarantined":1,"AuthFailures":0,"ServerErrors":0,"#,
                r#""stored_by_type":{{"delivered":1,"opened":1}}}}"#
            ),
            *FUNCTION_NAME
        );
        assert_eq!(emitted, expected);

        let line = parse(&emitted);
        let directive = &line["_aws"]["CloudWatchMetrics"][0];
        for definition in directive["Metrics"].as_array().unwrap() {
            let name = definition["Name"].as_str().unwrap();
            assert!(line[name].is_number(), "declared metric {name} has a value");
        }
        for dimension in directive["Dimensions"][0].as_array().unwrap() {
            let name = dimension.as_str().unwrap();
            assert!(line[name].is_string(), "dimension {name} has a value");
        }
    }

    #[test]
    fn failures_are_classified() {
        let auth = RequestMetrics {
            provider: "tencent".into(),
            status: 401,
            auth_failed: true,
            ..Default::default()
        };
        let line = parse(&emf_line(&auth, 0));
        assert_eq!(
            (line["AuthFailures"].as_u64(), line["ServerErrors"].as_u64()),
            (Some(1), Some(0))
        );
        assert_eq!(line.get("stored_by_type"), None, "nothing stored, no types");
        let failed = RequestMetrics {
            provider: "tencent".into(),
            status: 503,
            ..Default::default()
        };
        let line = parse(&emf_line(&failed, 0));
        assert_eq!(
            (line["ServerErrors"].as_u64(), line["AuthFailures"].as_u64()),
            (Some(1), Some(0))
        );
        assert_eq!(line["provider"], json!("tencent"));
    }
}
