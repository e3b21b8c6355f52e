//! CloudWatch Embedded Metric Format (EMF): one JSON line per request on stdout,
//! which CloudWatch Logs turns into metrics — no API call, no latency added.
//!
//! Namespace `mailhooks`. Per request, dimension `provider`: `Requests`,
//! `EventsReceived`, `EventsStored`, `Duplicates`, `AuthFailures`, `ClientErrors`
//! (4xx), `ServerErrors` (5xx), `StoreThrottles`, `Latency` (ms). Per stored event
//! type, dimensions `provider` + `event_type`: `EventsStored`.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

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
    /// Events written now, by type.
    pub stored_by_type: BTreeMap<EventType, usize>,
    /// The request failed authentication.
    pub auth_failed: bool,
    /// The store throttled us past the SDK's retries.
    pub throttled: bool,
    /// Time spent in the handler.
    pub latency_ms: f64,
}

/// The EMF lines for one request, stamped `timestamp_ms`.
pub fn emf_lines(m: &RequestMetrics, timestamp_ms: i64) -> Vec<String> {
    let counts: [(&str, f64); 8] = [
        ("Requests", 1.0),
        ("EventsReceived", m.received as f64),
        ("EventsStored", m.stored as f64),
        ("Duplicates", m.duplicates as f64),
        ("AuthFailures", f64::from(u8::from(m.auth_failed))),
        (
            "ClientErrors",
            f64::from(u8::from((400..500).contains(&m.status))),
        ),
        ("ServerErrors", f64::from(u8::from(m.status >= 500))),
        ("StoreThrottles", f64::from(u8::from(m.throttled))),
    ];
    let mut definitions: Vec<Value> = counts
        .iter()
        .map(|(name, _)| json!({"Name": name, "Unit": "Count"}))
        .collect();
    definitions.push(json!({"Name": "Latency", "Unit": "Milliseconds"}));
    let mut request = Map::new();
    request.insert(
        "_aws".into(),
        envelope(timestamp_ms, &["provider"], definitions),
    );
    request.insert("provider".into(), json!(m.provider));
    for (name, value) in counts {
        request.insert(name.into(), json!(value));
    }
    request.insert("Latency".into(), json!(m.latency_ms));

    let mut lines = vec![Value::Object(request).to_string()];
    for (event_type, count) in &m.stored_by_type {
        let definitions = vec![json!({"Name": "EventsStored", "Unit": "Count"})];
        let line = json!({
            "_aws": envelope(timestamp_ms, &["provider", "event_type"], definitions),
            "provider": m.provider,
            "event_type": event_type.as_str(),
            "EventsStored": count,
        });
        lines.push(line.to_string());
    }
    lines
}

fn envelope(timestamp_ms: i64, dimensions: &[&str], metrics: Vec<Value>) -> Value {
    json!({
        "Timestamp": timestamp_ms,
        "CloudWatchMetrics": [{"Namespace": NAMESPACE, "Dimensions": [dimensions], "Metrics": metrics}],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
