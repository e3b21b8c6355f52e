//! Support for the fuzz targets (`fuzz/`) and their regression tests
//! (`tests/it/fuzz_regressions.rs`): the invariants every parser meets
//! ([`check_parser`]: `parse` and `parse_each` agree, every accepted event is
//! storable, every quarantined part is a record DynamoDB accepts), DynamoDB's
//! documented rules every built item must meet ([`check_item`] for events, also
//! used by the property tests in `tests/it/item_rules.rs`, and [`check_record`]
//! for quarantine records), and raw request text for the whole-request target.
//!
//! Raw request format: a request line `METHOD /path?query`, header lines
//! `name: value`, an empty line, then the body bytes.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use lambda_http::{Body, Request};

use crate::event::EmailEvent;
use crate::providers::{self, Inbound, PartScope, Provider, Unparsed};
use crate::store::codec::{self, Item};
use crate::store::quarantine::{self, NewRecord, StoredBody};

/// Days to expiry the fuzzed items are built with (any `Some` adds the TTL attribute).
const RETENTION_DAYS: Option<u32> = Some(30);

/// [`check_parser`] for every registered provider: one input, every parser.
pub fn check_all_parsers(data: &[u8]) {
    for provider in providers::ALL {
        check_parser(provider.name(), data);
    }
}

/// Parses `data` with the named provider, as `parse` and as `parse_each` (the
/// handler's path), and panics if an invariant breaks:
///
/// - when `parse` accepts the body: at least one event, and `parse_each` gives
///   the same events and nothing unparsed;
/// - when `parse` refuses it: `parse_each` quarantines at least one part, and
///   every single event it quarantines (`PartScope::Event`) is refused by
///   `parse` alone with the same error code, so a replay reads it as it was kept;
/// - after the handler's own split (`codec::quarantine_unkeyable`): every event
///   to store has a non-empty message id, a well-formed sort key and an item
///   DynamoDB accepts ([`check_item`]), and every quarantined part is a record
///   DynamoDB accepts that keeps its body ([`check_record`]).
pub fn check_parser(provider: &str, data: &[u8]) {
    let Some(provider) = providers::by_name(provider) else {
        panic!("no provider {provider}");
    };
    let request = Inbound {
        headers: &[],
        query: &[],
        body: data,
    };
    let mut parsed = provider.parse_each(&request);
    match provider.parse_request(&request) {
        Ok(events) => {
            assert!(!events.is_empty(), "accepted a body with no event");
            assert!(
                parsed.events == events,
                "parse_each and parse disagree on the events"
            );
            assert!(
                parsed.unparsed.is_empty(),
                "parse_each quarantined part of a body parse accepts"
            );
        }
        Err(error) => {
            assert!(
                !parsed.unparsed.is_empty(),
                "parse refused the body ({}) and parse_each kept nothing",
                error.code()
            );
            for part in parsed
                .unparsed
                .iter()
                .filter(|u| u.scope == PartScope::Event)
            {
                check_event_part(provider, part);
            }
        }
    }
    codec::quarantine_unkeyable(data, &mut parsed);
    for event in &parsed.events {
        assert!(!event.message_id.is_empty(), "empty message id");
        let key = codec::sort_key(event);
        assert_eq!(key.split('#').count(), 3, "sort key {key}");
        let built = codec::encode(event, 0, RETENTION_DAYS);
        if let Err(broken) = check_item(event, &built) {
            panic!("item DynamoDB would refuse: {broken}");
        }
    }
    for part in &parsed.unparsed {
        let record = new_record(provider.name(), part, Some("application/json"), 0);
        if let Err(broken) = check_record(&record, &record_item(&record)) {
            panic!("quarantine record DynamoDB would refuse: {broken}");
        }
    }
}

/// A single event `parse_each` quarantined: `parse` alone refuses it, with the same code.
fn check_event_part(provider: &dyn Provider, part: &Unparsed) {
    match provider.parse(&part.body) {
        Ok(_) => panic!("an event quarantined as {} parses alone", part.code),
        Err(again) => assert_eq!(
            again.code(),
            part.code,
            "an event quarantined alone fails otherwise"
        ),
    }
}

/// A quarantine record of `part` as the fuzz targets build it (the events' retention).
pub fn new_record<'a>(
    provider: &'a str,
    part: &'a Unparsed,
    content_type: Option<&'a str>,
    received_at_ms: i64,
) -> NewRecord<'a> {
    NewRecord {
        provider,
        part,
        content_type,
        received_at_ms,
        retention_days: RETENTION_DAYS,
    }
}

/// The record's item as `DynamoStore` builds it without a raw archive:
/// `quarantine::draft`, then the body inline, compressed or cut (`with_body`).
pub fn record_item(record: &NewRecord<'_>) -> Item {
    let (draft, placement) = quarantine::draft(record);
    quarantine::with_body(draft, &record.part.body, placement)
}

/// DynamoDB's limit on attribute names: at least one byte, less than 64 KB.
const MAX_DYNAMODB_NAME_BYTES: usize = 64 * 1024 - 1;
/// DynamoDB's limit on nesting, counting a top-level attribute as level 1.
const MAX_DYNAMODB_DEPTH: usize = 32;
/// DynamoDB's limit on a number's significant digits.
const MAX_DYNAMODB_DIGITS: usize = 38;

/// Checks `item`, built for `event`, against DynamoDB's documented rules for a
/// `PutItem` into the events table, and that no map entry of the event was lost.
///
/// The rules (DynamoDB developer guide, "Constraints" and "Naming rules"): key
/// values non-empty strings of at most 2048 bytes (partition keys of the table and
/// both indexes) or 1024 bytes (the `timestamp` sort key); every attribute and map
/// name 1 byte to under 64 KB; nesting at most 32 levels; numbers at most 38
/// significant digits; sets non-empty without repeats; the item at most 400 KB
/// by the documented size rules (names plus values, 3 bytes per map or list and
/// 1 per element). Returns the first rule broken; the message names no payload text.
pub fn check_item(
    event: &EmailEvent,
    item: &HashMap<String, AttributeValue>,
) -> Result<(), String> {
    check_keys(
        item,
        &[
            (codec::PARTITION_KEY, codec::MAX_PARTITION_KEY_BYTES, true),
            (codec::SORT_KEY, codec::MAX_SORT_KEY_BYTES, true),
            (codec::RECIPIENT, codec::MAX_PARTITION_KEY_BYTES, false),
            (codec::SUPPRESSION, codec::MAX_PARTITION_KEY_BYTES, false),
        ],
    )?;
    check_attributes(item)?;
    let truncated = item.get("fields_truncated") == Some(&AttributeValue::Bool(true));
    for (name, map) in [("metadata", &event.metadata), ("details", &event.details)] {
        match item.get(name) {
            Some(AttributeValue::M(stored)) if stored.len() == map.len() => {}
            None if map.is_empty() || truncated => {}
            Some(AttributeValue::M(stored)) => {
                return Err(format!(
                    "{name}: {} entries stored of {}",
                    stored.len(),
                    map.len()
                ));
            }
            _ => {
                return Err(format!(
                    "{name}: {} entries, not stored as a map",
                    map.len()
                ));
            }
        }
    }
    Ok(())
}

/// Checks `item`, built for `record`, against DynamoDB's rules for a `PutItem`
/// into the events table (those of [`check_item`]: key sizes, names, nesting,
/// numbers, sets, 400 KB), that it keys no index and can never be read as an
/// event, and that it reads back as the record it was built from: its provider,
/// id, error code and scope, and its body whole (or, cut to fit, a prefix of it).
pub fn check_record(record: &NewRecord<'_>, item: &Item) -> Result<(), String> {
    check_keys(
        item,
        &[
            (codec::PARTITION_KEY, codec::MAX_PARTITION_KEY_BYTES, true),
            (codec::SORT_KEY, codec::MAX_SORT_KEY_BYTES, true),
        ],
    )?;
    if let Some(name) = [codec::RECIPIENT, codec::SUPPRESSION, codec::PROVIDER]
        .into_iter()
        .find(|name| item.contains_key(*name))
    {
        return Err(format!(
            "record carries {name}: it would be read as an event"
        ));
    }
    if quarantine::is_event_item(item) {
        return Err("record keyed as an event".into());
    }
    check_attributes(item)?;
    let Some(stored) = quarantine::decode(item) else {
        return Err("record does not read back".into());
    };
    let part = record.part;
    let read_back = (
        stored.provider.as_str(),
        stored.id,
        stored.error_code.as_str(),
        stored.scope,
    );
    let built = (
        record.provider,
        quarantine::record_id(&part.body),
        part.code,
        part.scope,
    );
    if read_back != built {
        return Err(format!(
            "record reads back as {read_back:?}, built as {built:?}"
        ));
    }
    if stored.body_bytes != part.body.len() as u64 {
        return Err(format!(
            "body_bytes {} of a {}-byte body",
            stored.body_bytes,
            part.body.len()
        ));
    }
    match stored.body {
        StoredBody::Inline(body) if body == part.body => Ok(()),
        StoredBody::Truncated(kept) if part.body.starts_with(&kept) => Ok(()),
        _ => Err(format!("the {}-byte body is not kept", part.body.len())),
    }
}

/// Checks key attributes `(name, max bytes, required)`: non-empty strings of at most `max` bytes.
fn check_keys(item: &Item, keys: &[(&str, usize, bool)]) -> Result<(), String> {
    for &(name, max, required) in keys {
        match item.get(name) {
            None if required => return Err(format!("key attribute {name} missing")),
            None => {}
            Some(AttributeValue::S(v)) if !v.is_empty() && v.len() <= max => {}
            Some(AttributeValue::S(v)) => {
                return Err(format!(
                    "key attribute {name} of {} bytes (1..={max})",
                    v.len()
                ));
            }
            Some(_) => return Err(format!("key attribute {name} is not a string")),
        }
    }
    Ok(())
}

/// Checks every attribute's name and value, and the item's documented size.
fn check_attributes(item: &Item) -> Result<(), String> {
    let mut size = 0;
    for (name, value) in item {
        check_name(name)?;
        check_value(value, 1).map_err(|e| format!("attribute {}: {e}", printable(name)))?;
        size += name.len() + documented_size(value);
    }
    if size > codec::MAX_ITEM_BYTES {
        return Err(format!(
            "item of {size} bytes (max {})",
            codec::MAX_ITEM_BYTES
        ));
    }
    Ok(())
}

/// An attribute name for a message: ours are short, a provider's is only measured.
fn printable(name: &str) -> String {
    if name.len() <= 32 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        name.to_owned()
    } else {
        format!("<name of {} bytes>", name.len())
    }
}

fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_DYNAMODB_NAME_BYTES {
        return Err(format!("attribute name of {} bytes", name.len()));
    }
    Ok(())
}

/// Checks a value found at nesting `level` (a top-level attribute is level 1).
fn check_value(value: &AttributeValue, level: usize) -> Result<(), String> {
    if level > MAX_DYNAMODB_DEPTH {
        return Err(format!("nested deeper than {MAX_DYNAMODB_DEPTH} levels"));
    }
    match value {
        AttributeValue::M(map) => map.iter().try_for_each(|(name, v)| {
            check_name(name)?;
            check_value(v, level + 1)
        }),
        AttributeValue::L(list) => list.iter().try_for_each(|v| check_value(v, level + 1)),
        AttributeValue::N(n) => check_number(n),
        AttributeValue::Ns(set) => {
            set.iter().try_for_each(|n| check_number(n))?;
            check_set(set)
        }
        AttributeValue::Ss(set) => check_set(set),
        AttributeValue::Bs(set) => check_set(set),
        _ => Ok(()),
    }
}

fn check_set<T: PartialEq>(set: &[T]) -> Result<(), String> {
    if set.is_empty() {
        return Err("empty set".into());
    }
    if set.iter().enumerate().any(|(i, a)| set[..i].contains(a)) {
        return Err("set with a repeated element".into());
    }
    Ok(())
}

/// A number DynamoDB accepts: `[-]digits[.digits][e[+-]digits]`, at most 38
/// significant digits.
fn check_number(text: &str) -> Result<(), String> {
    let unsigned = text.strip_prefix('-').unwrap_or(text);
    let (mantissa, exponent) = match unsigned.split_once(['e', 'E']) {
        Some((m, e)) => (m, Some(e.strip_prefix(['+', '-']).unwrap_or(e))),
        None => (unsigned, None),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits_only = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let well_formed = !(whole.is_empty() && fraction.is_empty())
        && digits_only(whole)
        && digits_only(fraction)
        && exponent.is_none_or(|e| !e.is_empty() && digits_only(e));
    if !well_formed {
        return Err(format!("number not well formed ({} bytes)", text.len()));
    }
    let digits = format!("{whole}{fraction}");
    let significant = digits.trim_start_matches('0').trim_end_matches('0').len();
    if significant > MAX_DYNAMODB_DIGITS {
        return Err(format!("number of {significant} significant digits"));
    }
    Ok(())
}

/// A value's size as DynamoDB documents it ("Item sizes and formats"), rounded up.
fn documented_size(value: &AttributeValue) -> usize {
    match value {
        AttributeValue::S(s) => s.len(),
        AttributeValue::N(n) => n.len().div_ceil(2) + 1,
        AttributeValue::B(b) => b.as_ref().len(),
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        AttributeValue::M(map) => {
            3 + map
                .iter()
                .map(|(k, v)| 1 + k.len() + documented_size(v))
                .sum::<usize>()
        }
        AttributeValue::L(list) => 3 + list.iter().map(|v| 1 + documented_size(v)).sum::<usize>(),
        AttributeValue::Ss(set) => set.iter().map(String::len).sum(),
        AttributeValue::Ns(set) => set.iter().map(|n| n.len().div_ceil(2) + 1).sum(),
        AttributeValue::Bs(set) => set.iter().map(|b| b.as_ref().len()).sum(),
        _ => 0,
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
    use sha2::Digest;

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
    fn the_checker_refuses_what_dynamodb_refuses() {
        let mut event = EmailEvent::new(
            "tencent",
            crate::EventType::Delivered,
            "delivered",
            "m-1",
            0,
            "{}".into(),
        );
        event.metadata.insert("a".into(), "1".into());
        let good = codec::encode(&event, 0, None);
        assert_eq!(check_item(&event, &good), Ok(()));
        let with = |name: &str, value: AttributeValue| {
            let mut bad = good.clone();
            bad.insert(name.to_owned(), value);
            check_item(&event, &bad)
        };
        let s = |text: &str| AttributeValue::S(text.to_owned());
        let empty_name = AttributeValue::M(HashMap::from([(String::new(), s("v"))]));
        assert!(with("metadata", empty_name).is_err(), "empty map name");
        assert!(
            with("metadata", AttributeValue::M(HashMap::new())).is_err(),
            "entry lost"
        );
        assert!(with(codec::RECIPIENT, s("")).is_err(), "empty index key");
        assert!(
            with(codec::SUPPRESSION, s(&"x".repeat(2049))).is_err(),
            "long index key"
        );
        assert!(
            with(codec::PARTITION_KEY, s(&"x".repeat(2049))).is_err(),
            "long key"
        );
        assert!(
            with(codec::SORT_KEY, s(&"x".repeat(1025))).is_err(),
            "long sort key"
        );
        assert!(with(&"n".repeat(64 * 1024), s("v")).is_err(), "long name");
        assert!(
            with("x", s(&"v".repeat(codec::MAX_ITEM_BYTES))).is_err(),
            "large item"
        );
        assert!(
            with("x", AttributeValue::N("1".repeat(39))).is_err(),
            "39 digits"
        );
        assert!(
            with("x", AttributeValue::N("1e".into())).is_err(),
            "bad number"
        );
        assert!(
            with("x", AttributeValue::Ss(Vec::new())).is_err(),
            "empty set"
        );
        assert_eq!(with("x", AttributeValue::N("-1.5E+3".into())), Ok(()));
        assert_eq!(
            with("x", AttributeValue::N(format!("{}00", "1".repeat(38)))),
            Ok(())
        );
        let nested = |levels: usize| {
            (1..levels).fold(s("leaf"), |v, _| {
                AttributeValue::M(HashMap::from([("n".to_owned(), v)]))
            })
        };
        assert_eq!(
            with("x", nested(32)),
            Ok(()),
            "32 levels, the leaf included"
        );
        assert!(with("x", nested(33)).is_err(), "33 levels");
    }

    #[test]
    fn the_record_checker_passes_what_the_store_builds_and_refuses_what_dynamodb_refuses() {
        let error = providers::ParseError::NoEvents;
        let part = Unparsed::event(b"{\"a\":1}".to_vec(), &error);
        let record = new_record("sendgrid", &part, Some("application/json"), 0);
        let good = record_item(&record);
        assert_eq!(check_record(&record, &good), Ok(()));
        // A body too large for the item, and incompressible: cut, and still accepted.
        let mut noise = Vec::new();
        let mut block = sha2::Sha256::digest(b"seed");
        while noise.len() < 600_000 {
            noise.extend_from_slice(&block);
            block = sha2::Sha256::digest(block);
        }
        let large = Unparsed::whole(&noise, &error);
        let cut = new_record("sendgrid", &large, None, 0);
        assert_eq!(check_record(&cut, &record_item(&cut)), Ok(()));
        let with = |name: &str, value: AttributeValue| {
            let mut bad = good.clone();
            bad.insert(name.to_owned(), value);
            check_record(&record, &bad)
        };
        let s = |text: &str| AttributeValue::S(text.to_owned());
        let blob = |bytes: &[u8]| AttributeValue::B(aws_sdk_dynamodb::primitives::Blob::new(bytes));
        assert!(
            with(codec::PARTITION_KEY, s(&"x".repeat(2049))).is_err(),
            "long key"
        );
        assert!(
            with(codec::SORT_KEY, s("2026-01-01T00:00:00Z#x#y")).is_err(),
            "an event's key"
        );
        assert!(
            with(codec::RECIPIENT, s("a@b.c")).is_err(),
            "in the recipient index"
        );
        assert!(with(quarantine::BODY, blob(b"{}")).is_err(), "body lost");
        assert!(
            with(quarantine::ERROR_CODE, s("other")).is_err(),
            "code lost"
        );
        assert!(
            with("x", s(&"v".repeat(codec::MAX_ITEM_BYTES))).is_err(),
            "large item"
        );
        assert!(
            with("x", AttributeValue::N("1e".into())).is_err(),
            "bad number"
        );
        let mut no_body = good.clone();
        no_body.remove(quarantine::BODY);
        assert!(check_record(&record, &no_body).is_err(), "no body");
    }

    #[test]
    fn invalid_http_is_none() {
        assert!(parse_request(b"").is_none());
        assert!(parse_request(b"POST").is_none());
        assert!(parse_request(b"P OST /x\n\n").is_none());
        assert!(parse_request(b"POST /x\nbad header\n\n").is_none());
    }
}
