//! The DynamoDB item for one event: attribute names, size limits and the
//! compression / truncation that keeps every event storable.
//!
//! Whatever a provider sends, the item is one DynamoDB accepts: a refused item
//! would fail the whole request with a 5xx, and the provider would retry it (and
//! every other event in it) forever. Free-form map keys are renamed by
//! [`map_key`]; index keys that DynamoDB would refuse are left out.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use sha2::{Digest, Sha256};

use crate::event::{EmailEvent, format_rfc3339_ms};
use crate::status::suppression_reason;

/// Partition key attribute: the provider's per-recipient message id.
pub const PARTITION_KEY: &str = "message_id";
/// Sort key attribute: `<RFC 3339 ms>#<event_type>#<hash>`.
pub const SORT_KEY: &str = "timestamp";
/// Global secondary index: `recipient` + `timestamp`.
pub const RECIPIENT_INDEX: &str = "recipient-index";
/// Partition key of [`RECIPIENT_INDEX`].
pub const RECIPIENT: &str = "recipient";
/// Sparse global secondary index of the addresses not to mail again:
/// [`SUPPRESSION`] + `timestamp`, present only on suppressing events.
pub const SUPPRESSION_INDEX: &str = "suppression-index";
/// Partition key of [`SUPPRESSION_INDEX`]: the reason (see [`crate::status::suppression_reason`]).
pub const SUPPRESSION: &str = "suppression";
/// TTL attribute (Unix seconds), set when a retention is configured.
pub const TTL_ATTRIBUTE: &str = "expires_at";
/// DynamoDB's item size limit.
pub const MAX_ITEM_BYTES: usize = 400 * 1024;

/// DynamoDB's longest partition key value (table and index), in bytes.
pub const MAX_PARTITION_KEY_BYTES: usize = 2048;
/// DynamoDB's longest sort key value (table and index), in bytes.
pub const MAX_SORT_KEY_BYTES: usize = 1024;
/// Longest stored name of a map entry (`metadata`, `details`), in bytes.
///
/// Far below DynamoDB's 64 KB per name, and far above any real header or
/// custom-argument name, so that names alone cannot fill an item.
pub const MAX_NAME_BYTES: usize = 1024;
/// Stored name of a map entry whose name is empty (DynamoDB refuses empty names).
pub const EMPTY_NAME: &str = "~empty";
/// First character of every name [`map_key`] rewrote.
const ESCAPE: char = '~';
/// Hex digits of the SHA-256 of a clipped name kept in its stored name: 128
/// bits, so two different names never meet in practice, even chosen ones.
const NAME_HASH_HEX: usize = 32;

/// What we allow ourselves, leaving room for the estimate's error.
const ITEM_BUDGET: usize = MAX_ITEM_BYTES - 4 * 1024;
/// Longest stored value of one normalized text field; the full text stays in `raw`.
const MAX_FIELD_BYTES: usize = 8 * 1024;

/// Where a raw payload too large for its item was archived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchivedRaw {
    /// S3 bucket.
    pub bucket: String,
    /// S3 object key (derived from the event key, so retries overwrite the same object).
    pub key: String,
    /// Size of the raw JSON before compression.
    pub bytes: usize,
}

/// Builds the item for `event` with its raw payload inline: as text when the
/// item fits, gzip-compressed when that fits, and otherwise dropped with
/// `raw_truncated = true`, so that an event is always storable.
pub fn build(
    event: &EmailEvent,
    received_at_ms: i64,
    retention_days: Option<u32>,
) -> HashMap<String, AttributeValue> {
    let mut item = base(event, received_at_ms, retention_days);
    attach_raw(&mut item, &event.raw);
    item
}

/// Whether the raw payload fits in `item` as plain text.
pub fn raw_fits_as_text(item: &HashMap<String, AttributeValue>, raw: &str) -> bool {
    estimate_item(item) + "raw".len() + raw.len() <= ITEM_BUDGET
}

/// Builds the item for `event` pointing at its raw payload archived in S3.
pub fn build_archived(
    event: &EmailEvent,
    received_at_ms: i64,
    retention_days: Option<u32>,
    archived: &ArchivedRaw,
) -> HashMap<String, AttributeValue> {
    let mut item = base(event, received_at_ms, retention_days);
    item.insert(
        "raw_s3_bucket".into(),
        AttributeValue::S(archived.bucket.clone()),
    );
    item.insert("raw_s3_key".into(), AttributeValue::S(archived.key.clone()));
    item.insert(
        "raw_bytes".into(),
        AttributeValue::N(archived.bytes.to_string()),
    );
    item.insert("raw_encoding".into(), AttributeValue::S("gzip".into()));
    shrink_to_budget(&mut item);
    item
}

/// The item without any raw payload attribute.
pub fn base(
    event: &EmailEvent,
    received_at_ms: i64,
    retention_days: Option<u32>,
) -> HashMap<String, AttributeValue> {
    let mut item = HashMap::with_capacity(24);
    let s = |v: &str| AttributeValue::S(clip(v).to_owned());
    item.insert(
        PARTITION_KEY.into(),
        AttributeValue::S(event.message_id.clone()),
    );
    item.insert(SORT_KEY.into(), AttributeValue::S(event.sort_key()));
    item.insert("provider".into(), s(event.provider));
    item.insert("event_type".into(), s(event.event_type.as_str()));
    item.insert("provider_event".into(), s(&event.provider_event));
    item.insert(
        "event_time_ms".into(),
        AttributeValue::N(event.event_time_ms.to_string()),
    );
    item.insert(
        "received_at".into(),
        AttributeValue::S(format_rfc3339_ms(received_at_ms)),
    );
    // An index key must be non-empty and within the key limit, or DynamoDB refuses
    // the whole item; such a recipient (which the providers already reject) is
    // left out, and with it the suppression entry. The raw payload still has it.
    let recipient = event
        .recipient
        .as_deref()
        .filter(|r| !r.is_empty() && r.len() <= MAX_PARTITION_KEY_BYTES);
    if let Some(r) = recipient {
        item.insert(RECIPIENT.into(), AttributeValue::S(r.to_owned()));
    }
    let optional = [
        ("reason", &event.reason),
        ("status_code", &event.status_code),
        ("url", &event.url),
        ("ip", &event.ip),
        ("user_agent", &event.user_agent),
        ("subject", &event.subject),
        ("sender", &event.sender),
        ("batch_id", &event.batch_id),
        ("template_id", &event.template_id),
    ];
    for (name, value) in optional {
        if let Some(v) = value {
            item.insert(name.into(), s(v));
        }
    }
    if let Some(bounce) = event.bounce_type {
        item.insert("bounce_type".into(), s(bounce.as_str()));
    }
    if recipient.is_some()
        && let Some(reason) = suppression_reason(event.event_type, event.bounce_type)
    {
        item.insert(SUPPRESSION.into(), s(reason));
    }
    for (name, map) in [("metadata", &event.metadata), ("details", &event.details)] {
        if !map.is_empty() {
            item.insert(name.into(), text_map(map));
        }
    }
    if let Some(days) = retention_days {
        let expires = received_at_ms / 1000 + i64::from(days) * 86_400;
        item.insert(TTL_ATTRIBUTE.into(), AttributeValue::N(expires.to_string()));
    }
    item
}

fn attach_raw(item: &mut HashMap<String, AttributeValue>, raw: &str) {
    if raw_fits_as_text(item, raw) {
        item.insert("raw".into(), AttributeValue::S(raw.to_owned()));
        return;
    }
    item.insert("raw_bytes".into(), AttributeValue::N(raw.len().to_string()));
    let compressed = gzip(raw.as_bytes());
    let with_meta = estimate_item(item) + "raw_encoding".len() + 4;
    if let Some(gz) = compressed.filter(|gz| with_meta + "raw_gz".len() + gz.len() <= ITEM_BUDGET) {
        item.insert("raw_gz".into(), AttributeValue::B(Blob::new(gz)));
        item.insert("raw_encoding".into(), AttributeValue::S("gzip".into()));
        return;
    }
    item.insert("raw_truncated".into(), AttributeValue::Bool(true));
    shrink_to_budget(item);
}

/// Drops the pass-through and detail maps if the item is still over budget.
fn shrink_to_budget(item: &mut HashMap<String, AttributeValue>) {
    if estimate_item(item) > ITEM_BUDGET {
        // Thousands of pass-through keys: keep the keys and normalized fields.
        item.remove("metadata");
        item.remove("details");
        item.insert("fields_truncated".into(), AttributeValue::Bool(true));
    }
}

/// The S3 location of an item's archived raw payload, if it was archived.
pub fn archived_raw(item: &HashMap<String, AttributeValue>) -> Option<(String, String)> {
    let bucket = item.get("raw_s3_bucket")?.as_s().ok()?;
    let key = item.get("raw_s3_key")?.as_s().ok()?;
    Some((bucket.clone(), key.clone()))
}

/// Gzip-compresses a raw payload (as archived in S3 or stored in `raw_gz`).
pub fn gzip_raw(raw: &str) -> Option<Vec<u8>> {
    gzip(raw.as_bytes())
}

/// Decompresses a gzip-compressed raw payload.
pub fn gunzip_raw(bytes: &[u8]) -> Option<String> {
    let mut text = String::new();
    GzDecoder::new(bytes).read_to_string(&mut text).ok()?;
    Some(text)
}

/// The stored raw payload of an item, decompressed; `None` if it was truncated
/// or archived in S3 (see [`archived_raw`]).
pub fn raw_payload(item: &HashMap<String, AttributeValue>) -> Option<String> {
    if let Some(AttributeValue::S(raw)) = item.get("raw") {
        return Some(raw.clone());
    }
    let AttributeValue::B(blob) = item.get("raw_gz")? else {
        return None;
    };
    gunzip_raw(blob.as_ref())
}

fn gzip(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut encoder = GzEncoder::new(Vec::with_capacity(bytes.len() / 4), Compression::default());
    encoder.write_all(bytes).ok()?;
    encoder.finish().ok()
}

fn text_map(map: &BTreeMap<String, String>) -> AttributeValue {
    AttributeValue::M(
        map.iter()
            .map(|(k, v)| {
                (
                    map_key(k).into_owned(),
                    AttributeValue::S(clip(v).to_owned()),
                )
            })
            .collect(),
    )
}

/// The stored name of a map entry named `name` by a provider.
///
/// Names DynamoDB accepts are kept as they are; the others are rewritten into a
/// name starting with `~`, so that no two names ever share a stored name:
///
/// - the empty name is stored as [`EMPTY_NAME`] (`~empty`);
/// - a name starting with `~` gets one more in front (`~empty` is stored as `~~empty`);
/// - a name (after that) longer than [`MAX_NAME_BYTES`] is stored as `~`, the first
///   32 hex digits of the SHA-256 of the whole name, `~`, and as much of the
///   name's start as fits; the whole name stays in the raw payload.
///
/// The three forms cannot meet: the second starts with `~~`, the third with `~`
/// and a hex digit and is longer than `~empty`.
pub fn map_key(name: &str) -> Cow<'_, str> {
    if name.is_empty() {
        return Cow::Borrowed(EMPTY_NAME);
    }
    let escaped = if name.starts_with(ESCAPE) {
        Cow::Owned(format!("{ESCAPE}{name}"))
    } else {
        Cow::Borrowed(name)
    };
    if escaped.len() <= MAX_NAME_BYTES {
        return escaped;
    }
    let hash = hex::encode(&Sha256::digest(name.as_bytes())[..NAME_HASH_HEX / 2]);
    let room = MAX_NAME_BYTES - 2 * ESCAPE.len_utf8() - NAME_HASH_HEX;
    Cow::Owned(format!("{ESCAPE}{hash}{ESCAPE}{}", clip_to(name, room)))
}

/// Cuts text to [`MAX_FIELD_BYTES`] on a character boundary.
fn clip(text: &str) -> &str {
    clip_to(text, MAX_FIELD_BYTES)
}

/// Cuts text to at most `max` bytes on a character boundary.
fn clip_to(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// DynamoDB's item size: attribute names plus values (an upper-bound estimate).
pub fn estimate_item(item: &HashMap<String, AttributeValue>) -> usize {
    item.iter().map(|(k, v)| k.len() + estimate_value(v)).sum()
}

fn estimate_value(value: &AttributeValue) -> usize {
    match value {
        AttributeValue::S(s) => s.len(),
        AttributeValue::N(n) => n.len() / 2 + 2,
        AttributeValue::B(b) => b.as_ref().len(),
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        AttributeValue::M(m) => {
            3 + m
                .iter()
                .map(|(k, v)| 1 + k.len() + estimate_value(v))
                .sum::<usize>()
        }
        AttributeValue::L(l) => 3 + l.iter().map(|v| 1 + estimate_value(v)).sum::<usize>(),
        AttributeValue::Ss(v) => v.iter().map(String::len).sum(),
        AttributeValue::Ns(v) => v.iter().map(|n| n.len() / 2 + 2).sum(),
        AttributeValue::Bs(v) => v.iter().map(|b| b.as_ref().len()).sum(),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{BounceType, EventType};

    fn event(raw: String) -> EmailEvent {
        let mut e = EmailEvent::new(
            "engagelab",
            EventType::Inbound,
            "route",
            "m-1",
            1_676_618_346_192,
            raw,
        );
        e.recipient = Some("a@example.com".into());
        e.bounce_type = Some(BounceType::Soft);
        e.metadata.insert("order".into(), "42".into());
        e
    }

    fn text(item: &HashMap<String, AttributeValue>, name: &str) -> String {
        item.get(name)
            .and_then(|v| v.as_s().ok())
            .cloned()
            .unwrap_or_default()
    }

    #[test]
    fn small_event_keeps_raw_text_and_every_field() {
        let item = build(&event(r#"{"a":1}"#.into()), 1_700_000_000_000, Some(30));
        assert_eq!(text(&item, "message_id"), "m-1");
        assert!(text(&item, "timestamp").starts_with("2023-02-17T07:19:06.192Z#inbound#"));
        assert_eq!(text(&item, "recipient"), "a@example.com");
        assert_eq!(text(&item, "bounce_type"), "soft");
        assert_eq!(text(&item, "received_at"), "2023-11-14T22:13:20.000Z");
        assert_eq!(
            item["event_time_ms"],
            AttributeValue::N("1676618346192".into())
        );
        assert_eq!(
            item["expires_at"],
            AttributeValue::N((1_700_000_000 + 30 * 86_400).to_string())
        );
        assert_eq!(raw_payload(&item).as_deref(), Some(r#"{"a":1}"#));
        assert!(!item.contains_key("raw_gz"));
        assert!(
            !item.contains_key(SUPPRESSION),
            "an inbound event suppresses nothing"
        );
    }

    #[test]
    fn suppressing_events_carry_the_sparse_index_key() {
        let mut e = event("{}".into());
        e.event_type = EventType::Bounced;
        e.bounce_type = Some(BounceType::Hard);
        assert_eq!(text(&build(&e, 0, None), SUPPRESSION), "hard_bounce");
        e.recipient = None;
        assert!(
            !build(&e, 0, None).contains_key(SUPPRESSION),
            "no address, nothing to suppress"
        );
    }

    #[test]
    fn large_compressible_raw_is_gzipped_and_round_trips() {
        let raw = format!(r#"{{"html":"{}"}}"#, "<p>hello</p>".repeat(60_000));
        let item = build(&event(raw.clone()), 0, None);
        assert!(!item.contains_key("raw"));
        assert_eq!(text(&item, "raw_encoding"), "gzip");
        assert!(estimate_item(&item) <= MAX_ITEM_BYTES);
        assert_eq!(raw_payload(&item), Some(raw));
    }

    #[test]
    fn incompressible_huge_raw_is_truncated_but_fields_kept() {
        // Pseudo-random hex does not compress below the limit.
        let mut noise = String::new();
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        while noise.len() < 1_200_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            noise.push_str(&format!("{x:016x}"));
        }
        let item = build(&event(noise), 0, None);
        assert_eq!(item["raw_truncated"], AttributeValue::Bool(true));
        assert_eq!(item["raw_bytes"], AttributeValue::N("1200000".into()));
        assert_eq!(raw_payload(&item), None);
        assert_eq!(text(&item, "recipient"), "a@example.com");
        assert!(estimate_item(&item) <= MAX_ITEM_BYTES);
    }

    #[test]
    fn archived_items_point_at_the_object_and_carry_no_raw() {
        let archived = ArchivedRaw {
            bucket: "b".into(),
            key: "raw/k.json.gz".into(),
            bytes: 3_000_000,
        };
        let item = build_archived(&event("{}".into()), 0, None, &archived);
        assert_eq!(
            archived_raw(&item),
            Some(("b".to_owned(), "raw/k.json.gz".to_owned()))
        );
        assert_eq!(item["raw_bytes"], AttributeValue::N("3000000".into()));
        assert!(
            !item.contains_key("raw")
                && !item.contains_key("raw_gz")
                && !item.contains_key("raw_truncated")
        );
        assert_eq!(raw_payload(&item), None);
        assert_eq!(
            gunzip_raw(&gzip_raw("{\"a\":1}").unwrap()).as_deref(),
            Some("{\"a\":1}")
        );
    }

    #[test]
    fn map_names_dynamodb_accepts_are_kept_and_the_others_escaped() {
        assert_eq!(map_key("order_id"), "order_id");
        assert_eq!(map_key(""), EMPTY_NAME);
        assert_eq!(map_key("~empty"), "~~empty");
        assert_eq!(map_key("~"), "~~");
        assert_eq!(map_key("a~b"), "a~b", "only a leading `~` is escaped");
        let fits = "n".repeat(MAX_NAME_BYTES);
        assert_eq!(map_key(&fits), fits.as_str());
    }

    #[test]
    fn long_map_names_are_clipped_hashed_and_stay_distinct() {
        let long = "é".repeat(MAX_NAME_BYTES);
        let (a, b) = (format!("{long}a"), format!("{long}b"));
        let (stored_a, stored_b) = (map_key(&a), map_key(&b));
        assert_ne!(stored_a, stored_b);
        for stored in [&stored_a, &stored_b] {
            assert!(stored.len() <= MAX_NAME_BYTES && stored.len() > MAX_NAME_BYTES - 2);
            assert!(stored.starts_with('~') && stored.ends_with('é'));
            assert_eq!(stored.as_bytes()[1 + NAME_HASH_HEX], b'~');
        }
        assert_eq!(
            map_key(&a),
            stored_a,
            "deterministic: retries store the same name"
        );
        // A `~` name just at the limit no longer fits once escaped.
        let tilde = format!("~{}", "n".repeat(MAX_NAME_BYTES - 1));
        assert!(map_key(&tilde).starts_with('~') && map_key(&tilde).len() <= MAX_NAME_BYTES);
        assert_ne!(map_key(&tilde), tilde.as_str());
    }

    #[test]
    fn every_map_entry_survives_renaming() {
        let mut e = event("{}".into());
        let long = "k".repeat(2 * MAX_NAME_BYTES);
        for name in [
            "",
            "~empty",
            "~~empty",
            "a",
            &format!("{long}1"),
            &format!("{long}2"),
        ] {
            e.metadata.insert(name.to_owned(), name.len().to_string());
        }
        let item = build(&e, 0, None);
        let stored = item["metadata"].as_m().unwrap();
        assert_eq!(stored.len(), e.metadata.len());
        assert_eq!(stored[EMPTY_NAME], AttributeValue::S("0".into()));
        assert_eq!(stored["~~empty"], AttributeValue::S("6".into()));
        assert_eq!(stored["~~~empty"], AttributeValue::S("7".into()));
    }

    #[test]
    fn recipients_that_cannot_be_an_index_key_are_left_out() {
        let mut e = event("{}".into());
        e.event_type = EventType::Bounced;
        e.bounce_type = Some(BounceType::Hard);
        for bad in [String::new(), "a".repeat(MAX_PARTITION_KEY_BYTES + 1)] {
            e.recipient = Some(bad);
            let item = build(&e, 0, None);
            assert!(!item.contains_key(RECIPIENT) && !item.contains_key(SUPPRESSION));
        }
        e.recipient = Some("a".repeat(MAX_PARTITION_KEY_BYTES));
        let item = build(&e, 0, None);
        assert_eq!(text(&item, RECIPIENT).len(), MAX_PARTITION_KEY_BYTES);
        assert_eq!(text(&item, SUPPRESSION), "hard_bounce");
    }

    #[test]
    fn long_fields_are_clipped_on_char_boundaries() {
        let mut e = event("{}".into());
        e.subject = Some("é".repeat(10_000));
        let item = build(&e, 0, None);
        let subject = text(&item, "subject");
        assert!(subject.len() <= MAX_FIELD_BYTES && subject.len() > MAX_FIELD_BYTES - 2);
    }
}
