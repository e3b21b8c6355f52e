//! Quarantine records: the parts of authenticated requests that did not
//! normalize, kept raw so that nothing a provider sent is lost and the CLI can
//! replay them once the parser learns the new shape.
//!
//! A record is one item in the events table (no second table to deploy, nothing
//! billed while there is none), laid out so that it can never be mistaken for
//! an event:
//!
//! - partition key `quarantine#<provider>`: one Query lists a provider's records;
//! - sort key `#quarantine#<hex SHA-256 of the kept body>`: content-derived, so
//!   the same bad body retried is one record (a conditional put,
//!   [`put_if_new`](super::put_if_new)), and starting
//!   with `#`, never a digit, so no event (whose sort key starts with its RFC 3339
//!   time) can share its key, whatever message id a provider sends;
//! - no `recipient`, `suppression` or `provider` attribute: in neither index,
//!   and a provider-filtered scan skips it; the readers that can still meet one
//!   drop it with [`is_event_item`];
//! - the body as bytes (`body`), gzip-compressed (`body_gz`) when that is what
//!   fits, in S3 through the raw-payload archive when neither fits, and only
//!   without an archive cut to what fits (`body_truncated`);
//! - the TTL of events, so records expire with the events around them.

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use sha2::{Digest, Sha256};

use super::codec::{
    Item, PARTITION_KEY, RECEIVED_AT, SORT_KEY, TTL_ATTRIBUTE, estimate_item, gunzip, gzip,
};
use crate::event::format_rfc3339_ms;
use crate::providers::{PartScope, Unparsed};

/// First part of every record's partition key.
pub const PARTITION_PREFIX: &str = "quarantine#";
/// First part of every record's sort key (never an event's: those start with a digit).
pub const SORT_PREFIX: &str = "#quarantine#";
/// The kept bytes, as sent.
pub const BODY: &str = "body";
/// The kept bytes, gzip-compressed.
pub const BODY_GZ: &str = "body_gz";
/// Size of the kept bytes before compression.
pub const BODY_BYTES: &str = "body_bytes";
/// `true` when the body was cut to fit the item (no archive configured).
pub const BODY_TRUNCATED: &str = "body_truncated";
/// Bucket of a body archived in S3.
pub const BODY_S3_BUCKET: &str = "body_s3_bucket";
/// Object key of a body archived in S3.
pub const BODY_S3_KEY: &str = "body_s3_key";
/// The request's `Content-Type`, kept with a whole request body.
pub const CONTENT_TYPE: &str = "content_type";
/// What the body is: `request` (the whole body) or `event` (one event of it).
pub const PART: &str = "part";
/// The stable error class.
pub const ERROR_CODE: &str = "error_code";
/// What failed.
pub const ERROR: &str = "error";
/// When a replay turned the record into events.
pub const RESOLVED_AT: &str = "resolved_at";
/// What the replay made of it: the keys of its events and of any parts
/// quarantined again, one `<partition key> <sort key>` per entry (the first
/// [`MAX_RESOLVED_KEYS`]).
pub const RESOLVED_INTO: &str = "resolved_into";
/// How many items the replay made of it (all of them, listed or not).
pub const RESOLVED_COUNT: &str = "resolved_count";
/// Most keys kept in [`RESOLVED_INTO`]: 100 keys of up to ~2 KB stay far below
/// the item limit whatever the record already holds.
pub const MAX_RESOLVED_KEYS: usize = 100;

/// Every attribute of a record but its body, for listing without reading bodies.
pub const LISTED_ATTRIBUTES: [&str; 15] = [
    PARTITION_KEY,
    SORT_KEY,
    RECEIVED_AT,
    ERROR_CODE,
    ERROR,
    CONTENT_TYPE,
    PART,
    BODY_BYTES,
    BODY_TRUNCATED,
    BODY_S3_BUCKET,
    BODY_S3_KEY,
    TTL_ATTRIBUTE,
    RESOLVED_AT,
    RESOLVED_INTO,
    RESOLVED_COUNT,
];

/// Largest item a record is built to (DynamoDB's limit is 400 KB; room is left
/// for the size estimate's rounding).
const ITEM_BUDGET: usize = 390 * 1024;
/// Longest error message kept.
const MAX_ERROR_CHARS: usize = 1000;
/// Longest `Content-Type` kept.
const MAX_CONTENT_TYPE_CHARS: usize = 200;

/// One part to quarantine, with what the request said about it.
#[derive(Debug, Clone, Copy)]
pub struct NewRecord<'a> {
    /// The provider's route name.
    pub provider: &'a str,
    /// The part that did not normalize.
    pub part: &'a Unparsed,
    /// The request's `Content-Type`, if any.
    pub content_type: Option<&'a str>,
    /// When the request arrived (Unix ms).
    pub received_at_ms: i64,
    /// Days until the record expires (`EVENT_RETENTION_DAYS`), if set.
    pub retention_days: Option<u32>,
}

/// The record's id: hex SHA-256 of the kept body.
pub fn record_id(body: &[u8]) -> String {
    hex::encode(Sha256::digest(body))
}

/// The partition key holding `provider`'s records.
pub fn partition_key(provider: &str) -> String {
    format!("{PARTITION_PREFIX}{provider}")
}

/// The sort key of the record with `id`.
pub fn sort_key(id: &str) -> String {
    format!("{SORT_PREFIX}{id}")
}

/// The S3 object key of a record's body: `raw/quarantine/<provider>/<id>.gz`,
/// under the archive's `raw/` prefix, so the function's write permission and the
/// bucket's expiry rule cover it as they cover raw payloads.
pub fn object_key(provider: &str, id: &str) -> String {
    format!("raw/quarantine/{provider}/{id}.gz")
}

/// Whether an item is an event (neither a quarantine record nor a replay
/// claim): only an event's sort key starts with a digit, its RFC 3339 time.
pub fn is_event_item(item: &Item) -> bool {
    matches!(item.get(SORT_KEY), Some(AttributeValue::S(key)) if key.starts_with(|c: char| c.is_ascii_digit()))
}

/// Where a record's body goes: decided once, from its size.
#[derive(Debug, PartialEq, Eq)]
pub enum Placement {
    /// In the item, as sent.
    Inline,
    /// In the item, gzip-compressed.
    Compressed(Vec<u8>),
    /// Too large for the item even compressed: S3 when an archive is configured.
    TooLarge(Vec<u8>),
}

/// The record's item without its body, and where the body goes.
pub fn draft(record: &NewRecord<'_>) -> (Item, Placement) {
    let id = record_id(&record.part.body);
    let mut item = Item::with_capacity(12);
    let s = |v: String| AttributeValue::S(v);
    item.insert(PARTITION_KEY.into(), s(partition_key(record.provider)));
    item.insert(SORT_KEY.into(), s(sort_key(&id)));
    item.insert(
        RECEIVED_AT.into(),
        s(format_rfc3339_ms(record.received_at_ms)),
    );
    item.insert(ERROR_CODE.into(), s(record.part.code.to_owned()));
    item.insert(
        ERROR.into(),
        s(record.part.message.chars().take(MAX_ERROR_CHARS).collect()),
    );
    item.insert(
        BODY_BYTES.into(),
        AttributeValue::N(record.part.body.len().to_string()),
    );
    item.insert(PART.into(), s(record.part.scope.as_str().to_owned()));
    let whole = record.part.scope == PartScope::Request;
    if let Some(content_type) = record.content_type.filter(|c| whole && !c.is_empty()) {
        item.insert(
            CONTENT_TYPE.into(),
            s(content_type.chars().take(MAX_CONTENT_TYPE_CHARS).collect()),
        );
    }
    if let Some(days) = record.retention_days {
        let expires = record.received_at_ms / 1000 + i64::from(days) * 86_400;
        item.insert(TTL_ATTRIBUTE.into(), AttributeValue::N(expires.to_string()));
    }
    let base = estimate_item(&item);
    let body = &record.part.body;
    if base + BODY.len() + body.len() <= ITEM_BUDGET {
        return (item, Placement::Inline);
    }
    // A `Vec` sink cannot fail; an empty result would only mean "does not fit".
    let compressed = gzip(body).unwrap_or_default();
    if !compressed.is_empty() && base + BODY_GZ.len() + compressed.len() <= ITEM_BUDGET {
        (item, Placement::Compressed(compressed))
    } else {
        (item, Placement::TooLarge(compressed))
    }
}

/// Finishes a drafted item with its body in the item (`Inline`) or compressed.
pub fn with_body(mut item: Item, body: &[u8], placement: Placement) -> Item {
    match placement {
        Placement::Inline => {
            item.insert(BODY.into(), AttributeValue::B(Blob::new(body)));
        }
        Placement::Compressed(gz) => {
            item.insert(BODY_GZ.into(), AttributeValue::B(Blob::new(gz)));
        }
        Placement::TooLarge(_) => {
            // No archive: keep as much of the body as fits, and say it was cut.
            let room = ITEM_BUDGET
                .saturating_sub(estimate_item(&item) + BODY.len() + BODY_TRUNCATED.len() + 1);
            let kept = &body[..body.len().min(room)];
            item.insert(BODY.into(), AttributeValue::B(Blob::new(kept)));
            item.insert(BODY_TRUNCATED.into(), AttributeValue::Bool(true));
        }
    }
    item
}

/// Finishes a drafted item whose compressed body was archived in S3.
pub fn with_archived_body(mut item: Item, bucket: &str, key: &str) -> Item {
    item.insert(BODY_S3_BUCKET.into(), AttributeValue::S(bucket.to_owned()));
    item.insert(BODY_S3_KEY.into(), AttributeValue::S(key.to_owned()));
    item
}

/// Where a stored record's body is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredBody {
    /// In the item (decompressed if it was stored compressed).
    Inline(Vec<u8>),
    /// Cut to fit the item: only the first bytes are kept.
    Truncated(Vec<u8>),
    /// Archived in S3, gzip-compressed.
    Archived {
        /// Bucket.
        bucket: String,
        /// Object key.
        key: String,
    },
    /// Not readable (a damaged compressed body).
    Unreadable,
    /// Not read: the record was listed without its body.
    NotRead,
}

/// A quarantine record as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    /// The provider's route name.
    pub provider: String,
    /// Hex SHA-256 of the kept body.
    pub id: String,
    /// When the request arrived (RFC 3339).
    pub received_at: String,
    /// The stable error class.
    pub error_code: String,
    /// What failed.
    pub error: String,
    /// The request's `Content-Type`, if kept (whole request bodies only).
    pub content_type: Option<String>,
    /// Whether the body is the whole request or one event of it.
    pub scope: PartScope,
    /// Size of the body as sent.
    pub body_bytes: u64,
    /// The body, or where it is.
    pub body: StoredBody,
    /// When TTL removes it (Unix seconds), if set.
    pub expires_at: Option<i64>,
    /// When a replay resolved it.
    pub resolved_at: Option<String>,
    /// What the replay made of it (keys, `<partition key> <sort key>`; the first
    /// [`MAX_RESOLVED_KEYS`]).
    pub resolved_into: Vec<String>,
    /// How many items the replay made of it.
    pub resolved_count: u64,
}

/// Reads a record item; `None` for any item that is not one.
pub fn decode(item: &Item) -> Option<StoredRecord> {
    let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
    let provider = text(PARTITION_KEY)?
        .strip_prefix(PARTITION_PREFIX)?
        .to_owned();
    let id = text(SORT_KEY)?.strip_prefix(SORT_PREFIX)?.to_owned();
    let number = |name: &str| {
        item.get(name)
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse::<i64>().ok())
    };
    let blob = |name: &str| item.get(name).and_then(|v| v.as_b().ok());
    let listed_only = !item.contains_key(BODY) && !item.contains_key(BODY_GZ);
    let body = if let (Some(bucket), Some(key)) = (text(BODY_S3_BUCKET), text(BODY_S3_KEY)) {
        StoredBody::Archived { bucket, key }
    } else if listed_only {
        StoredBody::NotRead
    } else if let Some(gz) = blob(BODY_GZ) {
        gunzip(gz.as_ref()).map_or(StoredBody::Unreadable, StoredBody::Inline)
    } else {
        let bytes = blob(BODY).map(|b| b.as_ref().to_vec()).unwrap_or_default();
        if matches!(item.get(BODY_TRUNCATED), Some(AttributeValue::Bool(true))) {
            StoredBody::Truncated(bytes)
        } else {
            StoredBody::Inline(bytes)
        }
    };
    let resolved_into: Vec<String> = item
        .get(RESOLVED_INTO)
        .and_then(|v| v.as_l().ok())
        .map(|list| list.iter().filter_map(|v| v.as_s().ok().cloned()).collect())
        .unwrap_or_default();
    Some(StoredRecord {
        provider,
        id,
        received_at: text(RECEIVED_AT).unwrap_or_default(),
        error_code: text(ERROR_CODE).unwrap_or_default(),
        error: text(ERROR).unwrap_or_default(),
        content_type: text(CONTENT_TYPE),
        scope: match text(PART).as_deref() {
            Some("event") => PartScope::Event,
            _ => PartScope::Request,
        },
        body_bytes: number(BODY_BYTES)
            .and_then(|n| u64::try_from(n).ok())
            .unwrap_or(0),
        body,
        expires_at: number(TTL_ATTRIBUTE),
        resolved_at: text(RESOLVED_AT),
        resolved_count: number(RESOLVED_COUNT)
            .and_then(|n| u64::try_from(n).ok())
            .unwrap_or(resolved_into.len() as u64),
        resolved_into,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{EmailEvent, EventType};
    use crate::providers::ParseError;
    use crate::store::codec;

    fn part(body: &[u8]) -> Unparsed {
        Unparsed::whole(body, &ParseError::InvalidJson("expected value".into()))
    }

    fn record<'a>(part: &'a Unparsed) -> NewRecord<'a> {
        NewRecord {
            provider: "sendgrid",
            part,
            content_type: Some("application/json"),
            received_at_ms: 1_700_000_000_000,
            retention_days: Some(30),
        }
    }

    fn finished(part: &Unparsed) -> Item {
        let (item, placement) = draft(&record(part));
        with_body(item, &part.body, placement)
    }

    #[test]
    fn a_small_body_is_kept_as_sent_and_reads_back() {
        let part = part(b"\xff not json");
        let item = finished(&part);
        let stored = decode(&item).unwrap();
        assert_eq!(stored.provider, "sendgrid");
        assert_eq!(stored.id, record_id(b"\xff not json"));
        assert_eq!(stored.body, StoredBody::Inline(b"\xff not json".to_vec()));
        assert_eq!(stored.error_code, "invalid_json");
        assert_eq!(stored.received_at, "2023-11-14T22:13:20.000Z");
        assert_eq!(stored.expires_at, Some(1_700_000_000 + 30 * 86_400));
        assert_eq!(stored.content_type.as_deref(), Some("application/json"));
        assert_eq!(stored.scope, PartScope::Request);
        for absent in [codec::RECIPIENT, codec::SUPPRESSION, codec::PROVIDER] {
            assert!(!item.contains_key(absent), "{absent}");
        }
        assert!(!is_event_item(&item));
    }

    #[test]
    fn an_event_part_keeps_no_content_type_and_reads_back_as_an_event() {
        let part = Unparsed::event(b"{}".to_vec(), &ParseError::NoEvents);
        let stored = decode(&finished(&part)).unwrap();
        assert_eq!(
            (stored.scope, stored.content_type),
            (PartScope::Event, None)
        );
    }

    #[test]
    fn archived_bodies_go_under_the_prefix_the_function_may_write() {
        // template.yaml grants s3:PutObject on `raw/*` only, and expires `raw/`.
        assert!(object_key("sendgrid", "ab").starts_with("raw/"));
    }

    #[test]
    fn the_same_body_is_the_same_key() {
        let a = finished(&part(b"[1]"));
        let b = finished(&Unparsed::whole(b"[1]", &ParseError::NoEvents));
        assert_eq!(a.get(SORT_KEY), b.get(SORT_KEY));
        assert_ne!(a.get(SORT_KEY), finished(&part(b"[2]")).get(SORT_KEY));
    }

    #[test]
    fn a_large_compressible_body_is_gzipped_and_reads_back_whole() {
        let body = vec![b'a'; 1_000_000];
        let item = finished(&part(&body));
        assert!(item.contains_key(BODY_GZ) && !item.contains_key(BODY));
        assert!(estimate_item(&item) <= ITEM_BUDGET);
        assert_eq!(decode(&item).unwrap().body, StoredBody::Inline(body));
    }

    #[test]
    fn an_incompressible_body_too_large_is_archived_or_cut_and_flagged() {
        // Bytes a compressor cannot shrink: a SHA-256 chain.
        let mut body = Vec::new();
        let mut block = Sha256::digest(b"seed");
        while body.len() < 1_000_000 {
            body.extend_from_slice(&block);
            block = Sha256::digest(block);
        }
        let part = part(&body);
        let (item, placement) = draft(&record(&part));
        assert!(matches!(placement, Placement::TooLarge(_)));
        let archived = with_archived_body(item.clone(), "bucket", "quarantine/sendgrid/x.gz");
        assert_eq!(
            decode(&archived).unwrap().body,
            StoredBody::Archived {
                bucket: "bucket".into(),
                key: "quarantine/sendgrid/x.gz".into()
            }
        );
        let cut = with_body(item, &body, placement);
        assert!(estimate_item(&cut) <= ITEM_BUDGET);
        match decode(&cut).unwrap().body {
            StoredBody::Truncated(kept) => assert!(body.starts_with(&kept) && kept.len() > 300_000),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn events_are_told_from_records_and_claims() {
        let mut event = EmailEvent::new(
            "sendgrid",
            EventType::Delivered,
            "delivered",
            "quarantine#sendgrid",
            0,
            "{}".into(),
        );
        event.recipient = Some("a@b.c".into());
        let item = codec::encode(&event, 0, None);
        assert!(is_event_item(&item));
        assert!(decode(&item).is_none());
        assert!(codec::sort_key(&event).as_str() > SORT_PREFIX);
    }
}
