//! CloudWatch Embedded Metric Format (EMF): one JSON line per request on stdout,
//! which CloudWatch Logs turns into metrics — no API call, no latency added.
//!
//! Namespace `mailhooks`. Per request, dimension `provider`: `Requests`,
//! `EventsReceived`, `EventsStored`, `Duplicates`, `Quarantined` (parts of
//! authenticated bodies kept raw because they did not normalize), `AuthFailures`, `ClientErrors`
//! (4xx), `ServerErrors` (5xx), `StoreThrottles`, `Latency` (ms). Per stored event
//! type, dimensions `provider` + `event_type`: `EventsStored`.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::event::EventType;

/// The CloudWatch namespace of every metric.
pub const NAMESPACE: &str = "mailhooks";

/// What one request did, as counted for metrics.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestMetrics {
    /// Provider name from the route, or `none`.
    pub provider: String,
    /// HTTP status answered.
    pub status: u16,
    /// Events in the body.
    pub received: usize,
    /// Events written now.
    pub stored: usize,
    /// Events already stored.
    pub duplicates: usize,
    /// Parts of the body kept raw in quarantine.
    pub quarantined: usize,
    /// Events written now, by type.
    pub stored_by_type: BTreeMap<EventType, usize>,
    /// The request failed authentication.
    pub auth_failed: bool,
    /// The store throttled us past the SDK's retries.
    pub throttled: bool,
    /// Time spent in the handler.
    pub latency_ms: f64,
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

/// The metrics of the per-request line, in the order of [`RequestLine`]'s values.
const REQUEST_DEFINITIONS: [Definition; 10] = [
    count("Requests"),
    count("EventsReceived"),
    count("EventsStored"),
    count("Duplicates"),
    count("Quarantined"),
    count("AuthFailures"),
    count("ClientErrors"),
    count("ServerErrors"),
    count("StoreThrottles"),
    Definition {
        name: "Latency",
        unit: "Milliseconds",
    },
];

const BY_TYPE_DEFINITIONS: [Definition; 1] = [count("EventsStored")];

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
    dimensions: [&'static [&'static str]; 1],
    #[serde(rename = "Metrics")]
    metrics: &'static [Definition],
}

impl Envelope {
    fn new(
        timestamp: i64,
        dimensions: &'static [&'static str],
        metrics: &'static [Definition],
    ) -> Self {
        Envelope {
            timestamp,
            directives: [Directive {
                namespace: NAMESPACE,
                dimensions: [dimensions],
                metrics,
            }],
        }
    }
}

/// The per-request line (dimension `provider`).
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct RequestLine<'a> {
    #[serde(rename = "_aws")]
    aws: Envelope,
    #[serde(rename = "provider")]
    provider: &'a str,
    requests: u8,
    events_received: usize,
    events_stored: usize,
    duplicates: usize,
    quarantined: usize,
    auth_failures: u8,
    client_errors: u8,
    server_errors: u8,
    store_throttles: u8,
    latency: f64,
}

/// One line per stored event type (dimensions `provider` + `event_type`).
#[derive(Serialize)]
struct ByTypeLine<'a> {
    #[serde(rename = "_aws")]
    aws: Envelope,
    provider: &'a str,
    event_type: &'static str,
    #[serde(rename = "EventsStored")]
    events_stored: usize,
}

/// The EMF lines for one request, stamped `timestamp_ms`.
pub fn emf_lines(m: &RequestMetrics, timestamp_ms: i64) -> Vec<String> {
    // Typed lines serialized straight to text: building `serde_json::Value` trees
    // cost ~7 µs per request (benches/cpu.rs), more than normalizing an event.
    let request = RequestLine {
        aws: Envelope::new(timestamp_ms, &["provider"], &REQUEST_DEFINITIONS),
        provider: &m.provider,
        requests: 1,
        events_received: m.received,
        events_stored: m.stored,
        duplicates: m.duplicates,
        quarantined: m.quarantined,
        auth_failures: u8::from(m.auth_failed),
        client_errors: u8::from((400..500).contains(&m.status)),
        server_errors: u8::from(m.status >= 500),
        store_throttles: u8::from(m.throttled),
        latency: m.latency_ms,
    };
    let mut lines = Vec::with_capacity(1 + m.stored_by_type.len());
    lines.push(serde_json::to_string(&request).unwrap_or_default());
    for (event_type, count) in &m.stored_by_type {
        let line = ByTypeLine {
            aws: Envelope::new(
                timestamp_ms,
                &["provider", "event_type"],
                &BY_TYPE_DEFINITIONS,
            ),
            provider: &m.provider,
            event_type: event_type.as_str(),
            events_stored: *count,
        };
        lines.push(serde_json::to_string(&line).unwrap_or_default());
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn parse(line: &str) -> Value {
        serde_json::from_str(line).unwrap()
    }

    #[test]
    fn a_stored_request_counts_events_by_provider_and_type() {
        let m = RequestMetrics {
            provider: "uspeedo".into(),
            status: 200,
            received: 3,
            stored: 2,
            duplicates: 1,
            quarantined: 1,
            stored_by_type: BTreeMap::from([(EventType::Delivered, 1), (EventType::Opened, 1)]),
            latency_ms: 4.5,
            ..RequestMetrics::default()
        };
        let lines = emf_lines(&m, 1_700_000_000_000);
        assert_eq!(lines.len(), 3);
        let request = parse(&lines[0]);
        assert_eq!(
            request["_aws"]["CloudWatchMetrics"][0]["Namespace"],
            "mailhooks"
        );
        assert_eq!(
            request["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["provider"]])
        );
        assert_eq!(request["_aws"]["Timestamp"], 1_700_000_000_000i64);
        assert_eq!(
            (
                request["EventsStored"].as_f64(),
                request["Duplicates"].as_f64()
            ),
            (Some(2.0), Some(1.0))
        );
        assert_eq!(request["Quarantined"].as_f64(), Some(1.0));
        assert_eq!(
            (
                request["ServerErrors"].as_f64(),
                request["Latency"].as_f64()
            ),
            (Some(0.0), Some(4.5))
        );
        let names: Vec<&str> = request["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["Name"].as_str().unwrap())
            .collect();
        for name in names {
            assert!(
                request.get(name).is_some(),
                "every declared metric has a value: {name}"
            );
        }
        let by_type = parse(&lines[1]);
        assert_eq!(
            by_type["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["provider", "event_type"]])
        );
        assert_eq!(
            (
                by_type["event_type"].as_str(),
                by_type["EventsStored"].as_u64()
            ),
            (Some("delivered"), Some(1))
        );
    }

    #[test]
    fn failures_are_classified() {
        let auth = RequestMetrics {
            provider: "tencent".into(),
            status: 401,
            auth_failed: true,
            ..Default::default()
        };
        let line = parse(&emf_lines(&auth, 0)[0]);
        assert_eq!(
            (line["AuthFailures"].as_f64(), line["ClientErrors"].as_f64()),
            (Some(1.0), Some(1.0))
        );
        let throttled = RequestMetrics {
            provider: "tencent".into(),
            status: 503,
            throttled: true,
            ..Default::default()
        };
        let line = parse(&emf_lines(&throttled, 0)[0]);
        assert_eq!(
            (
                line["ServerErrors"].as_f64(),
                line["StoreThrottles"].as_f64()
            ),
            (Some(1.0), Some(1.0))
        );
        assert_eq!(emf_lines(&throttled, 0).len(), 1);
    }
}
