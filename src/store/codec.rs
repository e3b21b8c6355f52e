//! The table codec: how one event is laid out as a DynamoDB item, and read back.
//!
//! Everything the table's layout says is written here and only here: attribute
//! and index names, what each index copies ([`INDEXES`]), the sort key
//! `<RFC 3339 ms>#<event_type>#<hash>`, where the raw payload goes (inline text,
//! gzip, S3 or dropped), the TTL, the suppression attribute and the `~` encoding
//! of map names. [`encode`] builds an item and [`decode`] reads one back as a
//! [`StoredEvent`], whichever layout wrote it.
//!
//! Write units drive the layout: DynamoDB bills a new item one unit per started
//! KB in the table and again in each index it is in ([`WriteUnits`]), so the
//! indexes copy what the views print and not the raw payload, and the raw
//! payload is gzipped when that saves a unit (docs/performance.md).
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
use serde::{Serialize, Serializer};
use sha2::{Digest, Sha256};

use crate::event::{BounceType, EmailEvent, EventType, format_rfc3339_ms};
use crate::providers::{Parsed, PartScope, Unparsed};
use crate::status::{DENY_LIST, suppression_reason};

/// One DynamoDB item, as the SDK takes and returns it.
pub type Item = HashMap<String, AttributeValue>;

/// Partition key attribute: the provider's per-recipient message id.
pub const PARTITION_KEY: &str = "message_id";
/// Sort key attribute: `<RFC 3339 ms>#<event_type>#<hash>` (see [`sort_key`]).
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
/// Provider name.
pub const PROVIDER: &str = "provider";
/// Normalized event type.
pub const EVENT_TYPE: &str = "event_type";
/// The event name as the provider sent it.
pub const PROVIDER_EVENT: &str = "provider_event";
/// Event time, Unix milliseconds.
pub const EVENT_TIME_MS: &str = "event_time_ms";
/// When mailhooks received the event, RFC 3339 ms.
pub const RECEIVED_AT: &str = "received_at";
/// `hard` or `soft`.
pub const BOUNCE_TYPE: &str = "bounce_type";
/// Pass-through data attached at send time (a map, names per [`map_key`]).
pub const METADATA: &str = "metadata";
/// Other provider fields (a map, names per [`map_key`]).
pub const DETAILS: &str = "details";
/// The raw payload as text.
pub const RAW: &str = "raw";
/// The raw payload gzip-compressed (binary).
pub const RAW_GZ: &str = "raw_gz";
/// `gzip` when the raw payload is compressed (in the item or in S3).
pub const RAW_ENCODING: &str = "raw_encoding";
/// Size of the raw payload before compression, when it is not kept as text.
pub const RAW_BYTES: &str = "raw_bytes";
/// `true` when the raw payload was too large to keep.
pub const RAW_TRUNCATED: &str = "raw_truncated";
/// S3 bucket of an archived raw payload.
pub const RAW_S3_BUCKET: &str = "raw_s3_bucket";
/// S3 object key of an archived raw payload.
pub const RAW_S3_KEY: &str = "raw_s3_key";
/// `true` when the maps were dropped to fit the item.
pub const FIELDS_TRUNCATED: &str = "fields_truncated";
/// Attributes of a raw payload kept in the item: two items of one event built
/// at different times may differ there (text or gzip) and nowhere else.
pub const INLINE_RAW_ATTRIBUTES: [&str; 4] = [RAW, RAW_GZ, RAW_ENCODING, RAW_BYTES];
/// Attributes set when an event is received rather than derived from it.
pub const RECEIPT_ATTRIBUTES: [&str; 2] = [RECEIVED_AT, TTL_ATTRIBUTE];
/// Value of [`RAW_ENCODING`].
const GZIP: &str = "gzip";
/// The least the gzip attributes add to an item: their names, a one-digit
/// `raw_bytes`, `gzip`, and gzip's 18 bytes of header and trailer around at
/// least 2 bytes of deflate.
const GZIP_ATTRIBUTES_BYTES: usize =
    RAW_BYTES.len() + 2 + RAW_ENCODING.len() + GZIP.len() + RAW_GZ.len() + 20;

/// What an event's entry in either index carries besides the keys: what the
/// views (`mailhooks-cli recipient`, `suppressions`, text or `--json`) print of
/// an event, which is everything [`decode`] reads but the raw payload, the
/// expiry and `fields_truncated`. The raw payload is most of an item; the
/// views never print it, only whether it was dropped (`raw_truncated`).
const VIEW_ATTRIBUTES: [&str; 18] = [
    PROVIDER,
    EVENT_TYPE,
    PROVIDER_EVENT,
    EVENT_TIME_MS,
    RECEIVED_AT,
    BOUNCE_TYPE,
    "reason",
    "status_code",
    "url",
    "ip",
    "user_agent",
    "subject",
    "sender",
    "batch_id",
    "template_id",
    METADATA,
    DETAILS,
    RAW_TRUNCATED,
];

/// A global secondary index of the table: its partition key (the sort key is
/// always [`SORT_KEY`]) and the attributes it copies from an item (projection
/// `INCLUDE`). The table's and the index's keys are copied whatever the projection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Index {
    /// Index name.
    pub name: &'static str,
    /// Partition key attribute; an item without it is not in the index.
    pub partition_key: &'static str,
    /// The view attribute that is a key of the other index (the recipient
    /// view prints the suppression reason, the suppression view the address).
    other_key: &'static str,
}

impl Index {
    /// The non-key attributes the index copies: [`VIEW_ATTRIBUTES`] and the
    /// other index's partition key.
    pub fn projected(&self) -> impl Iterator<Item = &'static str> {
        VIEW_ATTRIBUTES
            .into_iter()
            .chain(std::iter::once(self.other_key))
    }

    /// The entry an item has in this index, as DynamoDB projects it; `None`
    /// when the item lacks the index's partition key.
    pub fn entry(&self, item: &Item) -> Option<Item> {
        item.get(self.partition_key)?;
        let keys = [PARTITION_KEY, SORT_KEY, self.partition_key];
        Some(
            keys.into_iter()
                .chain(self.projected())
                .filter_map(|name| Some((name.to_owned(), item.get(name)?.clone())))
                .collect(),
        )
    }
}

/// The table's global secondary indexes, as `template.yaml` declares them.
pub const INDEXES: [Index; 2] = [
    Index {
        name: RECIPIENT_INDEX,
        partition_key: RECIPIENT,
        other_key: SUPPRESSION,
    },
    Index {
        name: SUPPRESSION_INDEX,
        partition_key: SUPPRESSION,
        other_key: RECIPIENT,
    },
];

/// Bytes per write unit: DynamoDB bills a write by each started KB.
pub const WRITE_UNIT_BYTES: usize = 1024;

/// The write units of writing `bytes` (an item or an index entry): one per
/// started KB, at least one.
pub fn write_units(bytes: usize) -> usize {
    bytes.div_ceil(WRITE_UNIT_BYTES).max(1)
}

/// What putting a new item costs in write units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteUnits {
    /// The table's.
    pub table: usize,
    /// Each index's of [`INDEXES`], in order: 0 for an index the item is not in.
    pub indexes: [usize; 2],
}

impl WriteUnits {
    /// The units of putting `item`.
    pub fn of(item: &Item) -> WriteUnits {
        WriteUnits {
            table: write_units(estimate_item(item)),
            indexes: INDEXES.map(|index| {
                index
                    .entry(item)
                    .map_or(0, |entry| write_units(estimate_item(&entry)))
            }),
        }
    }

    /// Table and indexes together.
    pub fn total(&self) -> usize {
        self.table + self.indexes.iter().sum::<usize>()
    }
}

/// Separator of the sort key's parts.
const KEY_SEPARATOR: char = '#';

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

/// The sort key of `event`: `<RFC 3339 UTC ms>#<event_type>#<8 hex content hash>`.
///
/// Events of one message sort by time; two events in the same millisecond
/// differ by type or hash; a provider retry of the same event gives the same key.
pub fn sort_key(event: &EmailEvent) -> String {
    format!(
        "{}{KEY_SEPARATOR}{}{KEY_SEPARATOR}{}",
        format_rfc3339_ms(event.event_time_ms),
        event.event_type.as_str(),
        event.content_hash()
    )
}

/// The smallest sort key of an event at or after `unix_ms`: its time part
/// alone, since `#` sorts after nothing a time ends with.
pub fn sort_key_from(unix_ms: i64) -> String {
    format_rfc3339_ms(unix_ms)
}

/// The time part of a stored sort key (RFC 3339 UTC ms).
pub fn sort_key_time(key: &str) -> &str {
    key.split(KEY_SEPARATOR).next().unwrap_or_default()
}

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
pub fn encode(event: &EmailEvent, received_at_ms: i64, retention_days: Option<u32>) -> Item {
    draft(event, received_at_ms, retention_days).with_raw_inline(&event.raw)
}

/// An item with every attribute but the raw payload. Built once per event;
/// the store then decides where the raw payload goes ([`Draft::raw_fits_as_text`])
/// and finishes the item with [`Draft::with_raw_inline`] or [`Draft::with_raw_archived`].
#[derive(Debug, Clone, PartialEq)]
pub struct Draft {
    item: Item,
}

impl Draft {
    /// Whether the raw payload fits in the item as plain text.
    pub fn raw_fits_as_text(&self, raw: &str) -> bool {
        estimate_item(&self.item) + RAW.len() + raw.len() <= ITEM_BUDGET
    }

    /// The item with `raw` inline: text, or gzip when that takes fewer write
    /// units (or only gzip fits), else dropped.
    ///
    /// Text is kept whenever gzip would not cross a 1 KB write-unit boundary:
    /// a write is billed by the started KB, so a smaller item in the same unit
    /// saves nothing and would cost CPU on every write and read.
    pub fn with_raw_inline(mut self, raw: &str) -> Item {
        let without_raw = estimate_item(&self.item);
        let text_bytes = without_raw + RAW.len() + raw.len();
        let fits_as_text = text_bytes <= ITEM_BUDGET;
        let gzip_can_help = !fits_as_text
            || write_units(without_raw + GZIP_ATTRIBUTES_BYTES) < write_units(text_bytes);
        if gzip_can_help && self.insert_gzip(raw, fits_as_text.then_some(text_bytes)) {
            return self.item;
        }
        if fits_as_text {
            self.item
                .insert(RAW.into(), AttributeValue::S(raw.to_owned()));
            return self.item;
        }
        let item = &mut self.item;
        item.insert(RAW_BYTES.into(), AttributeValue::N(raw.len().to_string()));
        item.insert(RAW_TRUNCATED.into(), AttributeValue::Bool(true));
        shrink_to_budget(item);
        self.item
    }

    /// Puts `raw` gzip-compressed into the item if it fits the budget and, when
    /// the text would fit in `text_bytes`, takes fewer write units than the text.
    fn insert_gzip(&mut self, raw: &str, text_bytes: Option<usize>) -> bool {
        let Some(gz) = gzip(raw.as_bytes()) else {
            return false;
        };
        let item = &mut self.item;
        item.insert(RAW_BYTES.into(), AttributeValue::N(raw.len().to_string()));
        item.insert(RAW_ENCODING.into(), AttributeValue::S(GZIP.into()));
        item.insert(RAW_GZ.into(), AttributeValue::B(Blob::new(gz)));
        let gz_bytes = estimate_item(item);
        let better = match text_bytes {
            Some(text) => write_units(gz_bytes) < write_units(text),
            None => gz_bytes <= ITEM_BUDGET,
        };
        if !better {
            for name in [RAW_BYTES, RAW_ENCODING, RAW_GZ] {
                item.remove(name);
            }
        }
        better
    }

    /// The item pointing at its raw payload archived in S3.
    pub fn with_raw_archived(mut self, archived: &ArchivedRaw) -> Item {
        let item = &mut self.item;
        item.insert(
            RAW_S3_BUCKET.into(),
            AttributeValue::S(archived.bucket.clone()),
        );
        item.insert(RAW_S3_KEY.into(), AttributeValue::S(archived.key.clone()));
        item.insert(
            RAW_BYTES.into(),
            AttributeValue::N(archived.bytes.to_string()),
        );
        item.insert(RAW_ENCODING.into(), AttributeValue::S(GZIP.into()));
        shrink_to_budget(item);
        self.item
    }
}

/// The normalized text fields that are optional, by attribute name.
fn optional_fields(event: &EmailEvent) -> [(&'static str, &Option<String>); 9] {
    [
        ("reason", &event.reason),
        ("status_code", &event.status_code),
        ("url", &event.url),
        ("ip", &event.ip),
        ("user_agent", &event.user_agent),
        ("subject", &event.subject),
        ("sender", &event.sender),
        ("batch_id", &event.batch_id),
        ("template_id", &event.template_id),
    ]
}

/// The same fields of a decoded record, in the same order as [`optional_fields`].
fn optional_fields_mut(stored: &mut StoredEvent) -> [(&'static str, &mut Option<String>); 9] {
    [
        ("reason", &mut stored.reason),
        ("status_code", &mut stored.status_code),
        ("url", &mut stored.url),
        ("ip", &mut stored.ip),
        ("user_agent", &mut stored.user_agent),
        ("subject", &mut stored.subject),
        ("sender", &mut stored.sender),
        ("batch_id", &mut stored.batch_id),
        ("template_id", &mut stored.template_id),
    ]
}

/// Starts the item for `event`: every attribute but the raw payload.
pub fn draft(event: &EmailEvent, received_at_ms: i64, retention_days: Option<u32>) -> Draft {
    let mut item = HashMap::with_capacity(24);
    let s = |v: &str| AttributeValue::S(clip(v).to_owned());
    item.insert(
        PARTITION_KEY.into(),
        AttributeValue::S(event.message_id.clone()),
    );
    item.insert(SORT_KEY.into(), AttributeValue::S(sort_key(event)));
    item.insert(PROVIDER.into(), s(event.provider));
    item.insert(EVENT_TYPE.into(), s(event.event_type.as_str()));
    item.insert(PROVIDER_EVENT.into(), s(&event.provider_event));
    item.insert(
        EVENT_TIME_MS.into(),
        AttributeValue::N(event.event_time_ms.to_string()),
    );
    item.insert(
        RECEIVED_AT.into(),
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
    for (name, value) in optional_fields(event) {
        if let Some(v) = value {
            item.insert(name.into(), s(v));
        }
    }
    if let Some(bounce) = event.bounce_type {
        item.insert(BOUNCE_TYPE.into(), s(bounce.as_str()));
    }
    if recipient.is_some()
        && let Some(reason) = suppression_reason(event.event_type, event.bounce_type)
            .or(event.deny_listed.then_some(DENY_LIST))
    {
        item.insert(SUPPRESSION.into(), s(reason));
    }
    for (name, map) in [(METADATA, &event.metadata), (DETAILS, &event.details)] {
        if !map.is_empty() {
            item.insert(name.into(), text_map(map));
        }
    }
    if let Some(days) = retention_days {
        let expires = received_at_ms / 1000 + i64::from(days) * 86_400;
        item.insert(TTL_ATTRIBUTE.into(), AttributeValue::N(expires.to_string()));
    }
    Draft { item }
}

/// Drops the pass-through and detail maps if the item is still over budget.
fn shrink_to_budget(item: &mut Item) {
    if estimate_item(item) > ITEM_BUDGET {
        // Thousands of pass-through keys: keep the keys and normalized fields.
        item.remove(METADATA);
        item.remove(DETAILS);
        item.insert(FIELDS_TRUNCATED.into(), AttributeValue::Bool(true));
    }
}

/// One stored event, decoded from its item: the event's fields, typed, and
/// what the store added (key, receipt time, expiry, suppression, where the raw
/// payload is). Attributes that are missing or of another type read as empty.
///
/// Serializes as `mailhooks-cli --json` prints events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredEvent {
    /// Event time, RFC 3339 UTC with milliseconds (the sort key's time part).
    pub time: String,
    /// Provider name.
    pub provider: String,
    /// Normalized event type; a name this code does not know reads as `unknown`.
    #[serde(serialize_with = "event_type_name")]
    pub event_type: EventType,
    /// The event name as the provider sent it.
    pub provider_event: String,
    /// Partition key.
    pub message_id: String,
    /// Recipient address, lower-cased.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recipient: Option<String>,
    /// Hard or soft, for bounces whose provider says which.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "bounce_type_name"
    )]
    pub bounce_type: Option<BounceType>,
    /// Failure text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// SMTP or provider status code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_code: Option<String>,
    /// Clicked URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// IP address of the opener or clicker.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// User agent, or browser and OS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// Subject.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Sender address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sender: Option<String>,
    /// Request / batch / task id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch_id: Option<String>,
    /// Provider template id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub template_id: Option<String>,
    /// Why this event suppresses its address (`hard_bounce`, `complaint`, `unsubscribe`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suppression: Option<String>,
    /// Pass-through data attached at send time, names as the provider sent them
    /// (a name clipped for length keeps its stored form).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    /// Other provider fields, names as for `metadata`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub details: BTreeMap<String, String>,
    /// When mailhooks received it, RFC 3339 ms.
    pub received_at: String,
    /// Event time, Unix milliseconds.
    pub event_time_ms: i64,
    /// The full sort key.
    pub sort_key: String,
    /// Where the raw payload is; printed only as `raw_truncated: true` when it was dropped.
    #[serde(
        rename = "raw_truncated",
        skip_serializing_if = "StoredRaw::is_kept",
        serialize_with = "truncated_flag"
    )]
    pub raw: StoredRaw,
    /// Expiry (Unix seconds), when a retention was configured.
    #[serde(skip)]
    pub expires_at: Option<i64>,
    /// The maps were dropped to fit the item.
    #[serde(skip)]
    pub fields_truncated: bool,
}

/// Where an item keeps its event's raw payload.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum StoredRaw {
    /// As text.
    Text(String),
    /// Gzip-compressed (decompressed on demand by [`StoredRaw::text`]).
    Gzip(Vec<u8>),
    /// In S3.
    Archived(ArchivedRaw),
    /// Dropped: too large even compressed; `bytes` is its size.
    Truncated {
        /// Size of the dropped payload, when recorded.
        bytes: Option<usize>,
    },
    /// No raw payload attribute (or an unreadable one).
    #[default]
    Absent,
}

impl StoredRaw {
    /// The payload, when the item holds it (decompressed); `None` if it was
    /// dropped, archived in S3 or is unreadable.
    pub fn text(&self) -> Option<String> {
        match self {
            StoredRaw::Text(text) => Some(text.clone()),
            StoredRaw::Gzip(bytes) => gunzip_raw(bytes),
            _ => None,
        }
    }

    /// Anything but a dropped payload.
    pub fn is_kept(&self) -> bool {
        !matches!(self, StoredRaw::Truncated { .. })
    }
}

fn event_type_name<S: Serializer>(event_type: &EventType, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(event_type.as_str())
}

fn bounce_type_name<S: Serializer>(bounce: &Option<BounceType>, s: S) -> Result<S::Ok, S::Error> {
    match bounce {
        Some(bounce) => s.serialize_str(bounce.as_str()),
        None => s.serialize_none(),
    }
}

fn truncated_flag<S: Serializer>(raw: &StoredRaw, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_bool(!raw.is_kept())
}

/// Reads an item back; attributes that are missing or of another type read as empty.
pub fn decode(item: &Item) -> StoredEvent {
    let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
    let number = |name: &str| {
        item.get(name)
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse::<i64>().ok())
    };
    let sort_key = text(SORT_KEY).unwrap_or_default();
    let mut stored = StoredEvent {
        time: sort_key_time(&sort_key).to_owned(),
        provider: text(PROVIDER).unwrap_or_default(),
        event_type: text(EVENT_TYPE)
            .and_then(|t| EventType::parse(&t))
            .unwrap_or(EventType::Unknown),
        provider_event: text(PROVIDER_EVENT).unwrap_or_default(),
        message_id: text(PARTITION_KEY).unwrap_or_default(),
        recipient: text(RECIPIENT),
        bounce_type: match text(BOUNCE_TYPE).as_deref() {
            Some("hard") => Some(BounceType::Hard),
            Some("soft") => Some(BounceType::Soft),
            _ => None,
        },
        reason: None,
        status_code: None,
        url: None,
        ip: None,
        user_agent: None,
        subject: None,
        sender: None,
        batch_id: None,
        template_id: None,
        suppression: text(SUPPRESSION),
        metadata: decode_map(item.get(METADATA)),
        details: decode_map(item.get(DETAILS)),
        received_at: text(RECEIVED_AT).unwrap_or_default(),
        event_time_ms: number(EVENT_TIME_MS).unwrap_or_default(),
        sort_key,
        raw: decode_raw(item),
        expires_at: number(TTL_ATTRIBUTE),
        fields_truncated: flag(item, FIELDS_TRUNCATED),
    };
    for (name, field) in optional_fields_mut(&mut stored) {
        *field = text(name);
    }
    stored
}

fn flag(item: &Item, name: &str) -> bool {
    item.get(name) == Some(&AttributeValue::Bool(true))
}

fn decode_raw(item: &Item) -> StoredRaw {
    let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
    if let Some(raw) = text(RAW) {
        return StoredRaw::Text(raw);
    }
    if let Some(AttributeValue::B(blob)) = item.get(RAW_GZ) {
        return StoredRaw::Gzip(blob.as_ref().to_vec());
    }
    let bytes = item
        .get(RAW_BYTES)
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse().ok());
    if let (Some(bucket), Some(key)) = (text(RAW_S3_BUCKET), text(RAW_S3_KEY)) {
        return StoredRaw::Archived(ArchivedRaw {
            bucket,
            key,
            bytes: bytes.unwrap_or_default(),
        });
    }
    if flag(item, RAW_TRUNCATED) {
        return StoredRaw::Truncated { bytes };
    }
    StoredRaw::Absent
}

/// The S3 location of an item's archived raw payload, if it was archived.
pub fn archived_raw(item: &Item) -> Option<(String, String)> {
    match decode_raw(item) {
        StoredRaw::Archived(archived) => Some((archived.bucket, archived.key)),
        _ => None,
    }
}

/// The stored raw payload of an item, decompressed; `None` if it was truncated
/// or archived in S3 (see [`archived_raw`]).
pub fn raw_payload(item: &Item) -> Option<String> {
    decode_raw(item).text()
}

/// Gzip-compresses a raw payload (as archived in S3 or stored in `raw_gz`).
pub fn gzip_raw(raw: &str) -> Option<Vec<u8>> {
    gzip(raw.as_bytes())
}

/// Decompresses a gzip-compressed raw payload.
pub fn gunzip_raw(bytes: &[u8]) -> Option<String> {
    String::from_utf8(gunzip(bytes)?).ok()
}

/// Decompresses gzip bytes.
pub fn gunzip(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    GzDecoder::new(bytes).read_to_end(&mut out).ok()?;
    Some(out)
}

/// Gzip-compresses bytes.
pub fn gzip(bytes: &[u8]) -> Option<Vec<u8>> {
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

fn decode_map(value: Option<&AttributeValue>) -> BTreeMap<String, String> {
    let Some(AttributeValue::M(map)) = value else {
        return BTreeMap::new();
    };
    map.iter()
        .filter_map(|(k, v)| Some((map_name(k).into_owned(), v.as_s().ok()?.clone())))
        .collect()
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

/// The name a provider gave a map entry stored as `stored`: the inverse of
/// [`map_key`], except that a name clipped for length keeps its stored form
/// (its whole name is in the raw payload).
pub fn map_name(stored: &str) -> Cow<'_, str> {
    if stored == EMPTY_NAME {
        return Cow::Borrowed("");
    }
    match stored.strip_prefix(ESCAPE) {
        Some(escaped) if escaped.starts_with(ESCAPE) => Cow::Borrowed(escaped),
        _ => Cow::Borrowed(stored),
    }
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

/// DynamoDB's item size by its published rules (attribute names plus values;
/// maps and lists 3 bytes plus 1 per element), exact but for numbers, which
/// it rounds up by at most a byte.
pub fn estimate_item(item: &Item) -> usize {
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

/// Longest message id or recipient accepted: half of DynamoDB's 2048-byte
/// partition-key limit, leaving room for the longest ids providers document.
pub const MAX_ID_BYTES: usize = 1024;

/// The last millisecond a four-digit RFC 3339 year can write: 9999-12-31T23:59:59.999Z.
/// The sort key is RFC 3339, so a time past it (or before 1970) has no place in the order.
pub const MAX_EVENT_TIME_MS: i64 = 253_402_300_799_999;

/// Why an event cannot have a key in the table: the event is quarantined
/// (a retry of the same event could never be stored either).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// A key field is longer than the table accepts.
    #[error("event {index}: {field} is too long")]
    TooLong {
        /// Position of the event in the body.
        index: usize,
        /// The oversized field.
        field: &'static str,
    },
    /// An event time outside 1970-01-01 .. 9999-12-31 (UTC).
    #[error("event {index}: event time out of range")]
    TimeOutOfRange {
        /// Position of the event in the body.
        index: usize,
    },
}

impl KeyError {
    /// A stable machine-readable name for the error class.
    pub fn code(&self) -> &'static str {
        match self {
            KeyError::TooLong { .. } => "field_too_long",
            KeyError::TimeOutOfRange { .. } => "time_out_of_range",
        }
    }
}

/// Checks that every event can be keyed in the table: its time fits the RFC 3339
/// sort key and its message id and recipient fit a partition key.
pub fn check_keys(events: &[EmailEvent]) -> Result<(), KeyError> {
    events
        .iter()
        .enumerate()
        .try_for_each(|(index, event)| check_key(index, event))
}

/// [`check_keys`] for the event at `index`.
fn check_key(index: usize, event: &EmailEvent) -> Result<(), KeyError> {
    if !(0..=MAX_EVENT_TIME_MS).contains(&event.event_time_ms) {
        return Err(KeyError::TimeOutOfRange { index });
    }
    if event.message_id.len() > MAX_ID_BYTES {
        return Err(KeyError::TooLong {
            index,
            field: "message id",
        });
    }
    if event
        .recipient
        .as_ref()
        .is_some_and(|r| r.len() > MAX_ID_BYTES)
    {
        return Err(KeyError::TooLong {
            index,
            field: "recipient",
        });
    }
    Ok(())
}

/// Moves every event of `body` the table cannot key from `parsed.events` to
/// its quarantined parts, as its raw payload (once per payload: the recipients
/// of one fanned-out event share it; bounded by [`Parsed::keep_unparsed`]).
pub fn quarantine_unkeyable(body: &[u8], parsed: &mut Parsed) {
    if check_keys(&parsed.events).is_ok() {
        return;
    }
    let events = std::mem::take(&mut parsed.events);
    for (index, event) in events.into_iter().enumerate() {
        match check_key(index, &event) {
            Ok(()) => parsed.events.push(event),
            Err(error) => {
                let part = Unparsed {
                    body: event.raw.into_bytes(),
                    code: error.code(),
                    message: error.to_string(),
                    scope: PartScope::Event,
                };
                parsed.keep_unparsed(body, part);
            }
        }
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

    fn text(item: &Item, name: &str) -> String {
        item.get(name)
            .and_then(|v| v.as_s().ok())
            .cloned()
            .unwrap_or_default()
    }

    #[test]
    fn small_event_keeps_raw_text_and_every_field() {
        let item = encode(&event(r#"{"a":1}"#.into()), 1_700_000_000_000, Some(30));
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
        assert_eq!(text(&encode(&e, 0, None), SUPPRESSION), "hard_bounce");
        e.recipient = None;
        assert!(
            !encode(&e, 0, None).contains_key(SUPPRESSION),
            "no address, nothing to suppress"
        );
    }

    #[test]
    fn a_deny_list_entry_suppresses_whatever_its_type() {
        let mut e = event("{}".into());
        e.event_type = EventType::Rejected;
        e.bounce_type = None;
        assert!(!encode(&e, 0, None).contains_key(SUPPRESSION));
        e.deny_listed = true;
        assert_eq!(text(&encode(&e, 0, None), SUPPRESSION), DENY_LIST);
        // The more specific reason wins when the type says one.
        e.event_type = EventType::Complained;
        assert_eq!(text(&encode(&e, 0, None), SUPPRESSION), "complaint");
    }

    #[test]
    fn large_compressible_raw_is_gzipped_and_round_trips() {
        let raw = format!(r#"{{"html":"{}"}}"#, "<p>hello</p>".repeat(60_000));
        let item = encode(&event(raw.clone()), 0, None);
        assert!(!item.contains_key("raw"));
        assert_eq!(text(&item, "raw_encoding"), "gzip");
        assert!(estimate_item(&item) <= MAX_ITEM_BYTES);
        assert_eq!(raw_payload(&item), Some(raw));
    }

    /// Pseudo-random hex: 4 bits of entropy per byte, so gzip no more than halves it.
    fn noise(len: usize) -> String {
        let mut noise = String::new();
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        while noise.len() < len {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            noise.push_str(&format!("{x:016x}"));
        }
        noise.truncate(len);
        noise
    }

    #[test]
    fn raw_is_gzipped_only_when_that_saves_a_write_unit() {
        let repetitive = format!(r#"{{"a":"{}"}}"#, "abc".repeat(500));
        let item = encode(&event(repetitive.clone()), 0, None);
        assert!(item.contains_key(RAW_GZ) && !item.contains_key(RAW));
        assert_eq!(
            WriteUnits::of(&item).table,
            1,
            "1.5 KB as text, 1 unit gzipped"
        );
        assert_eq!(raw_payload(&item), Some(repetitive));
        // Under 1 KB already: nothing to save.
        let small = encode(
            &event(format!(r#"{{"a":"{}"}}"#, "abc".repeat(200))),
            0,
            None,
        );
        assert!(small.contains_key(RAW) && !small.contains_key(RAW_GZ));
        // Over 1 KB but gzip cannot bring it under: text, readable as it is.
        let dense = encode(&event(noise(1_500)), 0, None);
        assert!(dense.contains_key(RAW) && !dense.contains_key(RAW_GZ));
        assert_eq!(
            WriteUnits::of(&dense).table,
            2,
            "1.7 KB as text, 1.1 KB gzipped"
        );
        assert!(!dense.contains_key(RAW_BYTES) && !dense.contains_key(RAW_ENCODING));
    }

    #[test]
    fn item_sizes_follow_dynamodb_rules() {
        let size =
            |name: &str, value: AttributeValue| estimate_item(&Item::from([(name.into(), value)]));
        assert_eq!(
            size("ab", AttributeValue::S("é".into())),
            2 + 2,
            "UTF-8 bytes"
        );
        assert_eq!(size("n", AttributeValue::N("123".into())), 1 + 2 + 1);
        // Two significant digits per byte plus one, rounded up by a byte at most.
        assert_eq!(size("n", AttributeValue::N("1234".into())), 1 + 4);
        assert_eq!(
            size("b", AttributeValue::B(Blob::new(vec![0; 5]))),
            1 + 5,
            "raw bytes, not base64"
        );
        assert_eq!(size("t", AttributeValue::Bool(true)), 1 + 1);
        let map = AttributeValue::M(HashMap::from([("k".into(), AttributeValue::S("v".into()))]));
        assert_eq!(
            size("m", map),
            1 + 3 + (1 + 1 + 1),
            "3 per map, 1 per entry"
        );
        assert_eq!(write_units(0), 1);
        assert_eq!(write_units(WRITE_UNIT_BYTES), 1);
        assert_eq!(write_units(WRITE_UNIT_BYTES + 1), 2);
    }

    #[test]
    fn index_entries_hold_the_keys_and_what_the_views_print_not_raw() {
        let mut e = event(r#"{"a":1}"#.into());
        e.event_type = EventType::Bounced;
        e.bounce_type = Some(BounceType::Hard);
        e.reason = Some("550".into());
        let item = encode(&e, 0, Some(30));
        let [recipients, suppressions] = INDEXES.map(|index| index.entry(&item).unwrap());
        for entry in [&recipients, &suppressions] {
            for name in [
                PARTITION_KEY,
                SORT_KEY,
                RECIPIENT,
                SUPPRESSION,
                "reason",
                METADATA,
            ] {
                assert!(entry.contains_key(name), "{name}");
            }
            assert!(!entry.contains_key(RAW) && !entry.contains_key(TTL_ATTRIBUTE));
            assert_eq!(decode(entry).raw, StoredRaw::Absent);
        }
        let units = WriteUnits::of(&item);
        assert_eq!((units.table, units.indexes, units.total()), (1, [1, 1], 3));
        e.event_type = EventType::Delivered;
        let delivered = encode(&e, 0, None);
        assert_eq!(
            INDEXES[1].entry(&delivered),
            None,
            "the suppression index is sparse"
        );
        assert_eq!(WriteUnits::of(&delivered).indexes, [1, 0]);
    }

    #[test]
    fn incompressible_huge_raw_is_truncated_but_fields_kept() {
        // Pseudo-random hex does not compress below the limit.
        let item = encode(&event(noise(1_200_000)), 0, None);
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
        let item = draft(&event("{}".into()), 0, None).with_raw_archived(&archived);
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
        let item = encode(&e, 0, None);
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
            let item = encode(&e, 0, None);
            assert!(!item.contains_key(RECIPIENT) && !item.contains_key(SUPPRESSION));
        }
        e.recipient = Some("a".repeat(MAX_PARTITION_KEY_BYTES));
        let item = encode(&e, 0, None);
        assert_eq!(text(&item, RECIPIENT).len(), MAX_PARTITION_KEY_BYTES);
        assert_eq!(text(&item, SUPPRESSION), "hard_bounce");
    }

    #[test]
    fn long_fields_are_clipped_on_char_boundaries() {
        let mut e = event("{}".into());
        e.subject = Some("é".repeat(10_000));
        let item = encode(&e, 0, None);
        let subject = text(&item, "subject");
        assert!(subject.len() <= MAX_FIELD_BYTES && subject.len() > MAX_FIELD_BYTES - 2);
    }

    #[test]
    fn every_field_of_an_event_survives_encode_and_decode() {
        let mut e = event(r#"{"a":1}"#.into());
        e.event_type = EventType::Bounced;
        e.bounce_type = Some(BounceType::Hard);
        e.reason = Some("551 no such user".into());
        e.status_code = Some("551".into());
        e.url = Some("https://example.com/".into());
        e.ip = Some("192.0.2.1".into());
        e.user_agent = Some("agent".into());
        e.subject = Some("Hello".into());
        e.sender = Some("from@example.com".into());
        e.batch_id = Some("batch".into());
        e.template_id = Some("tpl".into());
        e.metadata.insert(String::new(), "empty".into());
        e.metadata.insert("~x".into(), "tilde".into());
        e.details.insert("account".into(), "7".into());
        let stored = decode(&encode(&e, 1_700_000_000_000, Some(30)));

        assert_eq!(stored.provider, e.provider);
        assert_eq!(stored.event_type, e.event_type);
        assert_eq!(stored.provider_event, e.provider_event);
        assert_eq!(stored.message_id, e.message_id);
        assert_eq!(stored.recipient, e.recipient);
        assert_eq!(stored.event_time_ms, e.event_time_ms);
        assert_eq!(stored.bounce_type, e.bounce_type);
        let fields = |r: [Option<&String>; 9]| r.map(|v| v.cloned());
        assert_eq!(
            fields([
                stored.reason.as_ref(),
                stored.status_code.as_ref(),
                stored.url.as_ref(),
                stored.ip.as_ref(),
                stored.user_agent.as_ref(),
                stored.subject.as_ref(),
                stored.sender.as_ref(),
                stored.batch_id.as_ref(),
                stored.template_id.as_ref(),
            ]),
            optional_fields(&e).map(|(_, v)| v.clone())
        );
        assert_eq!(stored.metadata, e.metadata);
        assert_eq!(stored.details, e.details);
        assert_eq!(stored.raw.text(), Some(e.raw.clone()));
        assert_eq!(stored.sort_key, sort_key(&e));
        assert_eq!(stored.time, "2023-02-17T07:19:06.192Z");
        assert_eq!(stored.received_at, "2023-11-14T22:13:20.000Z");
        assert_eq!(stored.expires_at, Some(1_700_000_000 + 30 * 86_400));
        assert_eq!(stored.suppression.as_deref(), Some("hard_bounce"));
        assert!(!stored.fields_truncated);
    }

    #[test]
    fn decode_says_where_the_raw_payload_is() {
        let raw = format!(r#"{{"html":"{}"}}"#, "<p>hello</p>".repeat(60_000));
        let gz = decode(&encode(&event(raw.clone()), 0, None));
        assert!(matches!(gz.raw, StoredRaw::Gzip(_)));
        assert_eq!(gz.raw.text(), Some(raw));
        let archived = ArchivedRaw {
            bucket: "b".into(),
            key: "k".into(),
            bytes: 9,
        };
        let s3 = decode(&draft(&event("{}".into()), 0, None).with_raw_archived(&archived));
        assert_eq!(s3.raw, StoredRaw::Archived(archived));
        let mut item = encode(&event("{}".into()), 0, None);
        item.remove(RAW);
        assert_eq!(decode(&item).raw, StoredRaw::Absent);
        item.insert(RAW_TRUNCATED.into(), AttributeValue::Bool(true));
        assert_eq!(decode(&item).raw, StoredRaw::Truncated { bytes: None });
        assert!(!decode(&item).raw.is_kept());
    }

    #[test]
    fn the_sort_key_is_time_type_and_content_hash() {
        let e = event("{}".into());
        let key = sort_key(&e);
        let parts: Vec<&str> = key.split('#').collect();
        let hash = e.content_hash();
        assert_eq!(
            parts,
            ["2023-02-17T07:19:06.192Z", "inbound", hash.as_str()]
        );
        assert_eq!(sort_key_time(&sort_key(&e)), "2023-02-17T07:19:06.192Z");
        assert!(sort_key_from(e.event_time_ms).as_str() <= sort_key(&e).as_str());
    }

    #[test]
    fn stored_map_names_read_back_as_sent() {
        for name in ["", "~empty", "~~empty", "~", "a~b", "order_id"] {
            assert_eq!(map_name(&map_key(name)), name, "{name:?}");
        }
        let long = "k".repeat(2 * MAX_NAME_BYTES);
        let stored = map_key(&long);
        assert_eq!(
            map_name(&stored),
            stored,
            "a clipped name keeps its stored form"
        );
    }

    #[test]
    fn events_that_cannot_be_keyed_are_named() {
        let at = |ms| {
            let mut e = event("{}".into());
            e.event_time_ms = ms;
            e
        };
        for ms in [0, 1_795_342_530_000, MAX_EVENT_TIME_MS] {
            assert_eq!(check_keys(&[at(ms)]), Ok(()), "{ms}");
        }
        for ms in [-1, i64::MIN, MAX_EVENT_TIME_MS + 1, i64::MAX] {
            assert_eq!(
                check_keys(&[at(1), at(ms)]),
                Err(KeyError::TimeOutOfRange { index: 1 }),
                "{ms}"
            );
        }
        let mut long_id = at(1);
        long_id.message_id = "m".repeat(MAX_ID_BYTES + 1);
        assert_eq!(
            check_keys(&[long_id]).map_err(|e| e.code()),
            Err("field_too_long")
        );
        let mut long_recipient = at(1);
        long_recipient.recipient = Some("r".repeat(MAX_ID_BYTES + 1));
        assert_eq!(
            check_keys(&[long_recipient]),
            Err(KeyError::TooLong {
                index: 0,
                field: "recipient"
            })
        );
    }

    #[test]
    fn unkeyable_events_are_quarantined_once_per_raw_payload() {
        let at = |ms, recipient: &str| {
            let mut e = event(format!("{{\"t\":{ms}}}"));
            e.event_time_ms = ms;
            e.recipient = Some(recipient.into());
            e
        };
        let mut parsed = Parsed {
            events: vec![at(1, "a@x"), at(-1, "b@x"), at(-1, "c@x"), at(2, "d@x")],
            unparsed: Vec::new(),
        };
        quarantine_unkeyable(b"{}", &mut parsed);
        let kept: Vec<i64> = parsed.events.iter().map(|e| e.event_time_ms).collect();
        assert_eq!(kept, [1, 2]);
        assert_eq!(parsed.unparsed.len(), 1);
        assert_eq!(parsed.unparsed[0].body, br#"{"t":-1}"#);
        assert_eq!(parsed.unparsed[0].code, "time_out_of_range");
        assert_eq!(
            parsed.unparsed[0].message,
            "event 1: event time out of range"
        );
    }
}
