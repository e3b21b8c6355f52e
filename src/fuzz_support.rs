//! Support for the fuzz targets (`fuzz/`) and their regression tests
//! (`tests/fuzz_regressions.rs`): the invariants every accepted event must meet,
//! and raw request text for the whole-request target.
//!
//! Raw request format: a request line `METHOD /path?query`, header lines
//! `name: value`, an empty line, then the body bytes.

use lambda_http::{Body, Request};

use crate::providers;
use crate::store::item;

/// Parses `data` with the named provider and panics if an accepted event breaks
/// an invariant: at least one event, a non-empty message id, a well-formed sort
/// key, and an item within DynamoDB's size limit.
pub fn check_parser(provider: &str, data: &[u8]) {
    let Some(provider) = providers::by_name(provider) else {
        panic!("no provider {provider}");
    };
    let Ok(events) = provider.parse(data) else {
        return;
    };
    assert!(!events.is_empty(), "accepted a body with no event");
    for event in &events {
        assert!(!event.message_id.is_empty(), "empty message id");
        let key = event.sort_key();
        assert_eq!(key.split('#').count(), 3, "sort key {key}");
        let built = item::build(event, 0, Some(30));
        assert!(
            item::estimate_item(&built) <= item::MAX_ITEM_BYTES,
            "item over the limit"
        );
    }
}

/// Builds a request from raw text; `None` when the method, path or a header is not valid HTTP.
pub fn parse_request(data: &[u8]) -> Option<Request> {
    let split = data.windows(2).position(|w| w == b"\n\n");
    let (head, body) = match split {
        Some(at) => (&data[..at], &data[at + 2..]),
        None => (data, &data[data.len()..]),
    };
    let head = std::str::from_utf8(head).ok()?;
    let mut lines = head.lines();
    let (method, target) = lines.next()?.split_once(' ')?;
    let mut builder = lambda_http::http::Request::builder()
        .method(method)
        .uri(target);
    for line in lines {
        let (name, value) = line.split_once(':')?;
        builder = builder.header(name.trim(), value.trim());
    }
    builder.body(Body::from(body.to_vec())).ok()
}

/// The raw text of a request: the inverse of [`parse_request`], for building seeds.
pub fn render_request(
    method: &str,
    target: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> Vec<u8> {
    let mut out = format!("{method} {target}\n").into_bytes();
    for (name, value) in headers {
        out.extend_from_slice(format!("{name}: {value}\n").as_bytes());
    }
    out.push(b'\n');
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_method_target_headers_and_body() {
        let headers = vec![("X-WebHook-AppKey".to_owned(), "email".to_owned())];
        let text = render_request("POST", "/webhooks/tencent?token=t", &headers, b"{\n\n}");
        let request = parse_request(&text).unwrap();
        assert_eq!(request.method(), "POST");
        assert_eq!(request.uri().query(), Some("token=t"));
        assert_eq!(request.headers()["x-webhook-appkey"], "email");
        assert_eq!(request.body().as_ref(), b"{\n\n}");
    }

    #[test]
    fn fixtures_meet_the_parser_invariants() {
        let body = std::fs::read(format!(
            "{}/tests/fixtures/engagelab/target_multi.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        check_parser("engagelab", &body);
        check_parser("tencent", b"not json");
    }

    #[test]
    fn invalid_http_is_none() {
        assert!(parse_request(b"").is_none());
        assert!(parse_request(b"POST").is_none());
        assert!(parse_request(b"P OST /x\n\n").is_none());
        assert!(parse_request(b"POST /x\nbad header\n\n").is_none());
    }
}
