//! The read side of the events table: one message's timeline, one address's
//! events, the addresses not to mail again, and re-normalization of the stored
//! raw payloads with the current provider code. `mailhooks-cli` is built on it;
//! nothing here prints.
//!
//! Every read follows `LastEvaluatedKey` to the end; each takes an optional page
//! size (DynamoDB's `Limit`) so a caller can keep pages small.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Debug;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::operation::scan::builders::ScanFluentBuilder;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem};
use serde::Serialize;
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

use crate::event::{BounceType, EmailEvent, EventType, format_rfc3339_ms};
use crate::providers;
use crate::status::{self, SUPPRESSION_REASONS, StatusEvent};
use crate::store::item::{
    self, PARTITION_KEY, RECIPIENT, RECIPIENT_INDEX, SORT_KEY, SUPPRESSION, SUPPRESSION_INDEX,
    TTL_ATTRIBUTE,
};

/// One DynamoDB item, as the SDK returns it.
pub type Item = HashMap<String, AttributeValue>;

/// Attributes that hold the raw payload rather than a normalized field.
const RAW_ATTRIBUTES: [&str; 4] = ["raw", "raw_gz", "raw_encoding", "raw_bytes"];
/// Attributes a rewrite keeps from the original item.
const KEPT_ATTRIBUTES: [&str; 2] = ["received_at", TTL_ATTRIBUTE];
/// DynamoDB error codes that mean our credentials or permissions were refused.
const DENIED_CODES: [&str; 5] = [
    "AccessDeniedException",
    "UnrecognizedClientException",
    "InvalidSignatureException",
    "ExpiredTokenException",
    "MissingAuthenticationTokenException",
];

/// Why a read or a rewrite failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// The table does not exist at this endpoint.
    #[error("table {0} does not exist")]
    TableMissing(String),
    /// No event is stored under this message id.
    #[error("no events for message id {0}")]
    UnknownMessage(String),
    /// A time that is neither RFC 3339 nor a date.
    #[error(
        "cannot read {0:?} as a time: expected RFC 3339 (2026-11-22T10:15:30Z) or a date (2026-11-22)"
    )]
    BadTime(String),
    /// No provider module has this name.
    #[error("unknown provider {name}: expected one of {known}")]
    UnknownProvider {
        /// The name asked for.
        name: String,
        /// The known names, comma-separated.
        known: String,
    },
    /// DynamoDB could not be reached or did not answer in time.
    #[error("cannot reach DynamoDB: {0}")]
    Unreachable(String),
    /// DynamoDB refused the credentials or the permissions.
    #[error("access denied: {0}")]
    AccessDenied(String),
    /// Any other DynamoDB failure.
    #[error("DynamoDB error: {0}")]
    Dynamo(String),
}

/// A lower bound on event time, held as the RFC 3339 prefix the sort keys start
/// with, so `timestamp >= since` selects the events at or after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Since(String);

impl Since {
    /// Reads a date (`2026-11-22`, midnight UTC) or an RFC 3339 time with any
    /// offset (`2026-11-22T10:15:30.5+08:00`), rounded up to the millisecond.
    pub fn parse(text: &str) -> Result<Since, QueryError> {
        let at = parse_time(text.trim()).ok_or_else(|| QueryError::BadTime(text.to_owned()))?;
        Ok(Since(format_rfc3339_ms(ceil_to_millis(at))))
    }

    /// The bound as stored in sort keys, e.g. `2026-11-22T02:15:30.500Z`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn parse_time(text: &str) -> Option<OffsetDateTime> {
    let (date, rest) = text.split_at_checked(10)?;
    let date = parse_date(date)?;
    if rest.is_empty() {
        return Some(date.midnight().assume_utc());
    }
    let clock = rest.strip_prefix(['T', 't', ' '])?;
    let (clock, offset) = split_offset(clock)?;
    Some(PrimitiveDateTime::new(date, parse_clock(clock)?).assume_offset(offset))
}

/// `YYYY-MM-DD`.
fn parse_date(text: &str) -> Option<Date> {
    if text.as_bytes().get(4) != Some(&b'-') || text.as_bytes().get(7) != Some(&b'-') {
        return None;
    }
    let year = digits(text.get(0..4)?)?;
    let month = Month::try_from(u8::try_from(digits(text.get(5..7)?)?).ok()?).ok()?;
    let day = u8::try_from(digits(text.get(8..10)?)?).ok()?;
    Date::from_calendar_date(i32::try_from(year).ok()?, month, day).ok()
}

/// Splits `HH:MM:SS[.fraction]` from its `Z` or `±HH:MM` offset.
fn split_offset(text: &str) -> Option<(&str, UtcOffset)> {
    if let Some(clock) = text.strip_suffix(['Z', 'z']) {
        return Some((clock, UtcOffset::UTC));
    }
    let (clock, offset) = text.split_at_checked(text.len().checked_sub(6)?)?;
    let sign = match offset.get(..1)? {
        "+" => 1,
        "-" => -1,
        _ => return None,
    };
    let (hours, minutes) = offset.get(1..)?.split_once(':')?;
    let hours = i8::try_from(two_digits(hours)?).ok()?;
    let minutes = i8::try_from(two_digits(minutes)?).ok()?;
    let offset = UtcOffset::from_hms(sign * hours, sign * minutes, 0).ok()?;
    Some((clock, offset))
}

/// `HH:MM:SS[.fraction]`.
fn parse_clock(text: &str) -> Option<Time> {
    let (hms, fraction) = match text.split_once('.') {
        Some((hms, fraction)) => (hms, Some(fraction)),
        None => (text, None),
    };
    let mut parts = hms.split(':').map(two_digits);
    let (hour, minute, second) = (parts.next()??, parts.next()??, parts.next()??);
    if parts.next().is_some() {
        return None;
    }
    let nanos = match fraction {
        Some(fraction) => fraction_nanos(fraction)?,
        None => 0,
    };
    Time::from_hms_nano(
        u8::try_from(hour).ok()?,
        u8::try_from(minute).ok()?,
        u8::try_from(second).ok()?,
        nanos,
    )
    .ok()
}

/// A decimal fraction of a second in nanoseconds (digits past the ninth ignored).
fn fraction_nanos(fraction: &str) -> Option<u32> {
    digits(fraction)?;
    let nine: String = fraction
        .chars()
        .chain(std::iter::repeat('0'))
        .take(9)
        .collect();
    nine.parse().ok()
}

fn two_digits(text: &str) -> Option<u32> {
    (text.len() == 2).then_some(())?;
    digits(text)
}

/// A non-empty run of ASCII digits as a number.
fn digits(text: &str) -> Option<u32> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Unix milliseconds, rounded up: an event at a whole millisecond is at or after
/// `at` exactly when it is at or after this.
fn ceil_to_millis(at: OffsetDateTime) -> i64 {
    let nanos = at.unix_timestamp_nanos();
    let millis = nanos.div_euclid(1_000_000) + i128::from(nanos.rem_euclid(1_000_000) != 0);
    i64::try_from(millis).unwrap_or(i64::MAX)
}

/// One stored event, as read back from the table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredEvent {
    /// Event time, RFC 3339 UTC with milliseconds (the sort key's prefix).
    pub time: String,
    /// Provider name.
    pub provider: String,
    /// Normalized event type.
    pub event_type: String,
    /// The event name as the provider sent it.
    pub provider_event: String,
    /// Partition key.
    pub message_id: String,
    /// Recipient address, lower-cased.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recipient: Option<String>,
    /// `hard` or `soft`, for bounces whose provider says which.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bounce_type: Option<String>,
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
    /// Pass-through data attached at send time.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    /// Other provider fields.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub details: BTreeMap<String, String>,
    /// When mailhooks received it.
    pub received_at: String,
    /// Event time, Unix milliseconds.
    pub event_time_ms: i64,
    /// The full sort key.
    pub sort_key: String,
    /// The raw payload was too large to keep.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub raw_truncated: bool,
}

impl StoredEvent {
    /// Reads an item; attributes that are missing or of another type read as empty.
    pub fn from_item(item: &Item) -> StoredEvent {
        let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
        let sort_key = text(SORT_KEY).unwrap_or_default();
        StoredEvent {
            time: sort_key.split('#').next().unwrap_or_default().to_owned(),
            provider: text("provider").unwrap_or_default(),
            event_type: text("event_type").unwrap_or_default(),
            provider_event: text("provider_event").unwrap_or_default(),
            message_id: text(PARTITION_KEY).unwrap_or_default(),
            recipient: text(RECIPIENT),
            bounce_type: text("bounce_type"),
            reason: text("reason"),
            status_code: text("status_code"),
            url: text("url"),
            ip: text("ip"),
            user_agent: text("user_agent"),
            subject: text("subject"),
            sender: text("sender"),
            batch_id: text("batch_id"),
            template_id: text("template_id"),
            suppression: text(SUPPRESSION),
            metadata: text_map(item.get("metadata")),
            details: text_map(item.get("details")),
            received_at: text("received_at").unwrap_or_default(),
            event_time_ms: item
                .get("event_time_ms")
                .and_then(|v| v.as_n().ok())
                .and_then(|n| n.parse().ok())
                .unwrap_or_default(),
            sort_key,
            raw_truncated: item.get("raw_truncated") == Some(&AttributeValue::Bool(true)),
        }
    }

    /// One line of what matters beyond the type: bounce type, status code and
    /// reason, clicked URL, the provider's name for an unknown event.
    pub fn detail(&self) -> String {
        let mut parts = Vec::new();
        if let Some(bounce) = &self.bounce_type {
            parts.push(format!("{bounce} bounce"));
        }
        match (&self.status_code, &self.reason) {
            (Some(code), Some(reason)) if !reason.contains(code.as_str()) => {
                parts.push(format!("{code} {reason}"));
            }
            (_, Some(reason)) => parts.push(reason.clone()),
            (Some(code), None) => parts.push(code.clone()),
            (None, None) => {}
        }
        if let Some(url) = &self.url {
            parts.push(url.clone());
        }
        if self.event_type == EventType::Unknown.as_str() {
            parts.push(format!("provider event {:?}", self.provider_event));
        }
        if self.raw_truncated {
            parts.push("(raw truncated)".to_owned());
        }
        parts.join(" | ")
    }

    fn status_event(&self) -> StatusEvent {
        StatusEvent {
            event_type: EventType::parse(&self.event_type).unwrap_or(EventType::Unknown),
            bounce_type: match self.bounce_type.as_deref() {
                Some("hard") => Some(BounceType::Hard),
                Some("soft") => Some(BounceType::Soft),
                _ => None,
            },
            event_time_ms: self.event_time_ms,
        }
    }

    /// Later by event time, then by sort key.
    fn is_later_than(&self, other: &StoredEvent) -> bool {
        (self.event_time_ms, &self.sort_key) > (other.event_time_ms, &other.sort_key)
    }
}

fn text_map(value: Option<&AttributeValue>) -> BTreeMap<String, String> {
    let Some(AttributeValue::M(map)) = value else {
        return BTreeMap::new();
    };
    map.iter()
        .filter_map(|(k, v)| Some((k.clone(), v.as_s().ok()?.clone())))
        .collect()
}

/// Every event of one message, in time order, and where it stands now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Timeline {
    /// The message id asked for.
    pub message_id: String,
    /// The current status for each recipient of the message (see [`current_statuses`]).
    pub current_status: Vec<RecipientStatus>,
    /// The events, in time order.
    pub events: Vec<StoredEvent>,
}

/// The current status of a message for one recipient, by [`status::current_status`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecipientStatus {
    /// The recipient; `None` when no event names one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recipient: Option<String>,
    /// The event type of the deciding event.
    pub status: String,
    /// Its bounce type, for bounces.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bounce_type: Option<String>,
    /// Its time, RFC 3339.
    pub time: String,
}

/// The status of each recipient of one message. One message id can cover several
/// recipients (a Tencent `bulkId`), so each gets its own; an event without a
/// recipient counts for all of them.
pub fn current_statuses(events: &[StoredEvent]) -> Vec<RecipientStatus> {
    let named: BTreeSet<&str> = events
        .iter()
        .filter_map(|e| e.recipient.as_deref())
        .collect();
    let recipients: Vec<Option<&str>> = if named.is_empty() {
        vec![None]
    } else {
        named.into_iter().map(Some).collect()
    };
    recipients
        .into_iter()
        .filter_map(|recipient| {
            let concerning: Vec<StatusEvent> = events
                .iter()
                .filter(|e| e.recipient.is_none() || e.recipient.as_deref() == recipient)
                .map(StoredEvent::status_event)
                .collect();
            let deciding = status::current_status(&concerning)?;
            Some(RecipientStatus {
                recipient: recipient.map(str::to_owned),
                status: deciding.event_type.as_str().to_owned(),
                bounce_type: deciding.bounce_type.map(|b| b.as_str().to_owned()),
                time: format_rfc3339_ms(deciding.event_time_ms),
            })
        })
        .collect()
}

/// An address not to mail again, and the latest event that says so.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Suppression {
    /// The address, lower-cased.
    pub address: String,
    /// `hard_bounce`, `complaint` or `unsubscribe`.
    pub reason: String,
    /// The latest suppressing event of the address.
    pub event: StoredEvent,
}

/// One entry per address, from its latest event, sorted by address.
pub fn latest_per_address(events: Vec<StoredEvent>) -> Vec<Suppression> {
    let mut latest: BTreeMap<String, StoredEvent> = BTreeMap::new();
    for event in events {
        let Some(address) = event.recipient.clone() else {
            continue;
        };
        match latest.get(&address) {
            Some(kept) if !event.is_later_than(kept) => {}
            _ => {
                latest.insert(address, event);
            }
        }
    }
    latest
        .into_iter()
        .map(|(address, event)| Suppression {
            reason: event.suppression.clone().unwrap_or_default(),
            address,
            event,
        })
        .collect()
}

/// What [`EventsTable::renormalize`] looks at and whether it writes.
#[derive(Debug, Clone, Default)]
pub struct RenormalizeOptions {
    /// Only this provider's items.
    pub provider: Option<String>,
    /// Only events at or after this time.
    pub since: Option<Since>,
    /// Rewrite the stale items; without it nothing is written.
    pub apply: bool,
    /// Items per Scan page.
    pub page_size: Option<i32>,
}

/// How far [`EventsTable::renormalize`] has got, for a progress display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Items examined so far.
    Scanned(u64),
    /// Stale items rewritten so far, of how many.
    Written {
        /// Rewrites done.
        done: u64,
        /// Rewrites to do.
        total: u64,
    },
}

/// Why an item could not be re-normalized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// The raw payload did not fit in the item and was dropped.
    RawTruncated,
    /// The item holds no readable raw payload (none, or kept elsewhere).
    RawNotInItem,
    /// The item names a provider no module answers to.
    UnknownProvider,
    /// The current code refuses the raw payload.
    RawUnreadable,
    /// No event of the raw payload has the item's message id and recipient.
    NoMatchingEvent,
}

impl SkipReason {
    /// A short description, used as a key in [`RenormalizeReport::skipped`].
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::RawTruncated => "raw truncated",
            SkipReason::RawNotInItem => "raw not in the item",
            SkipReason::UnknownProvider => "unknown provider",
            SkipReason::RawUnreadable => "raw no longer parses",
            SkipReason::NoMatchingEvent => "no matching event in raw",
        }
    }
}

/// What a re-normalization found (and, with `apply`, did).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RenormalizeReport {
    /// Items examined (after the provider and time filters).
    pub scanned: u64,
    /// Items that are what the current code would build.
    pub unchanged: u64,
    /// Items the current code would build differently.
    pub changed: u64,
    /// Items that could not be re-normalized, by reason.
    pub skipped: BTreeMap<&'static str, u64>,
    /// For each attribute that differs: how many items, and the `old → new` changes.
    pub fields: BTreeMap<String, FieldChanges>,
    /// What was written; `None` on a dry run.
    pub written: Option<Written>,
}

impl RenormalizeReport {
    /// Items skipped for any reason.
    pub fn skipped_total(&self) -> u64 {
        self.skipped.values().sum()
    }

    /// Counts one reviewed item; returns its rewrite if it is stale.
    fn record(&mut self, review: Review) -> Option<Rewrite> {
        self.scanned += 1;
        match review {
            Review::Unchanged => self.unchanged += 1,
            Review::Skipped(reason) => *self.skipped.entry(reason.as_str()).or_default() += 1,
            Review::Stale(rewrite, changes) => {
                self.changed += 1;
                self.count_changes(changes);
                return Some(rewrite);
            }
        }
        None
    }

    fn count_changes(&mut self, changes: Vec<FieldChange>) {
        for change in changes {
            let field = self.fields.entry(change.field).or_default();
            field.items += 1;
            *field
                .changes
                .entry(format!("{} → {}", change.old, change.new))
                .or_default() += 1;
        }
    }
}

/// How one attribute changed across the stale items.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FieldChanges {
    /// Items where it differs.
    pub items: u64,
    /// `old → new` and how many items changed that way.
    pub changes: BTreeMap<String, u64>,
}

impl FieldChanges {
    /// The `n` most frequent changes, most frequent first.
    pub fn most_common(&self, n: usize) -> Vec<(&str, u64)> {
        let mut changes: Vec<(&str, u64)> =
            self.changes.iter().map(|(c, k)| (c.as_str(), *k)).collect();
        changes.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        changes.truncate(n);
        changes
    }
}

/// What `apply` wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Written {
    /// Items overwritten under the same key.
    pub in_place: u64,
    /// Items moved to a new key (old deleted, new put, in one transaction).
    pub moved: u64,
    /// Items that changed or vanished in the meantime, left alone.
    pub conflicts: u64,
}

/// One attribute that differs between a stored item and its re-normalization.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FieldChange {
    /// Attribute name.
    field: String,
    /// Stored value, `(none)` when absent.
    old: String,
    /// Value the current code builds, `(none)` when absent.
    new: String,
}

/// A stale item and what replaces it.
#[derive(Debug, Clone, PartialEq)]
struct Rewrite {
    old_key: Item,
    new_item: Item,
}

impl Rewrite {
    fn moves(&self) -> bool {
        self.old_key != key_of(&self.new_item)
    }
}

/// The verdict on one stored item.
enum Review {
    Unchanged,
    Stale(Rewrite, Vec<FieldChange>),
    Skipped(SkipReason),
}

/// Re-normalizes one stored item: rebuilds it from its raw payload with the
/// current code, keeping `received_at` and `expires_at`, and compares.
fn review(stored: &Item) -> Review {
    match current_item(stored) {
        Err(reason) => Review::Skipped(reason),
        Ok(current) => {
            let changes = changed_fields(stored, &current);
            if changes.is_empty() {
                Review::Unchanged
            } else {
                let rewrite = Rewrite {
                    old_key: key_of(stored),
                    new_item: current,
                };
                Review::Stale(rewrite, changes)
            }
        }
    }
}

/// The item the current code builds from the stored raw payload.
fn current_item(stored: &Item) -> Result<Item, SkipReason> {
    let event = StoredEvent::from_item(stored);
    let raw = stored_raw(stored, &event)?;
    let provider = providers::by_name(&event.provider).ok_or(SkipReason::UnknownProvider)?;
    let events = provider
        .parse(raw.as_bytes())
        .map_err(|_| SkipReason::RawUnreadable)?;
    let fresh = pick_event(events, &event.message_id, event.recipient.as_deref())
        .ok_or(SkipReason::NoMatchingEvent)?;
    let mut current = item::build(&fresh, 0, None);
    keep_original_attributes(stored, &mut current);
    Ok(current)
}

/// The raw payload kept in the item, decompressed.
fn stored_raw(stored: &Item, event: &StoredEvent) -> Result<String, SkipReason> {
    item::raw_payload(stored).ok_or(if event.raw_truncated {
        SkipReason::RawTruncated
    } else {
        SkipReason::RawNotInItem
    })
}

/// `received_at` and `expires_at` stay what they were (present or absent).
fn keep_original_attributes(stored: &Item, current: &mut Item) {
    for name in KEPT_ATTRIBUTES {
        match stored.get(name) {
            Some(value) => current.insert(name.to_owned(), value.clone()),
            None => current.remove(name),
        };
    }
}

/// The event of a raw payload that a stored item came from: the only one, or the
/// one with the item's message id and recipient (an EngageLab `target` holds one
/// event per recipient).
fn pick_event(
    events: Vec<EmailEvent>,
    message_id: &str,
    recipient: Option<&str>,
) -> Option<EmailEvent> {
    if events.len() == 1 {
        return events.into_iter().next();
    }
    events
        .into_iter()
        .find(|e| e.message_id == message_id && e.recipient.as_deref() == recipient)
}

/// The normalized attributes that differ, by name (raw payload storage aside).
fn changed_fields(stored: &Item, current: &Item) -> Vec<FieldChange> {
    let names: BTreeSet<&String> = stored.keys().chain(current.keys()).collect();
    names
        .into_iter()
        .filter(|name| !RAW_ATTRIBUTES.contains(&name.as_str()))
        .filter(|name| stored.get(*name) != current.get(*name))
        .map(|name| FieldChange {
            field: name.clone(),
            old: show(stored.get(name)),
            new: show(current.get(name)),
        })
        .collect()
}

/// An attribute value as short text for a diff summary.
fn show(value: Option<&AttributeValue>) -> String {
    match value {
        None => "(none)".to_owned(),
        Some(AttributeValue::S(s)) => s.clone(),
        Some(AttributeValue::N(n)) => n.clone(),
        Some(AttributeValue::Bool(b)) => b.to_string(),
        Some(AttributeValue::M(map)) => {
            let sorted: BTreeMap<&String, String> =
                map.iter().map(|(k, v)| (k, show(Some(v)))).collect();
            let pairs: Vec<String> = sorted.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!("{{{}}}", pairs.join(", "))
        }
        Some(other) => format!("{other:?}"),
    }
}

fn key_of(item: &Item) -> Item {
    [PARTITION_KEY, SORT_KEY]
        .into_iter()
        .filter_map(|name| Some((name.to_owned(), item.get(name)?.clone())))
        .collect()
}

/// The events table, read through one client.
#[derive(Debug, Clone)]
pub struct EventsTable {
    client: Client,
    table: String,
}

impl EventsTable {
    /// The table `table` through `client`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        EventsTable {
            client,
            table: table.into(),
        }
    }

    /// Every event of one message in time order, with its current status.
    pub async fn timeline(
        &self,
        message_id: &str,
        page_size: Option<i32>,
    ) -> Result<Timeline, QueryError> {
        let unknown = || QueryError::UnknownMessage(message_id.to_owned());
        if message_id.is_empty() {
            return Err(unknown());
        }
        let request = self.partition_query(None, PARTITION_KEY, message_id, None, page_size);
        let events = self.query_events(request).await?;
        if events.is_empty() {
            return Err(unknown());
        }
        Ok(Timeline {
            message_id: message_id.to_owned(),
            current_status: current_statuses(&events),
            events,
        })
    }

    /// Every event for one address (any case), across messages and providers,
    /// in time order, through the recipient index.
    pub async fn recipient_events(
        &self,
        address: &str,
        since: Option<&Since>,
        page_size: Option<i32>,
    ) -> Result<Vec<StoredEvent>, QueryError> {
        let address = address.trim().to_lowercase();
        if address.is_empty() {
            return Ok(Vec::new());
        }
        let request =
            self.partition_query(Some(RECIPIENT_INDEX), RECIPIENT, &address, since, page_size);
        self.query_events(request).await
    }

    /// The addresses not to mail again, each with its latest suppressing event,
    /// sorted by address: one Query per suppression reason on the sparse index.
    pub async fn suppressions(
        &self,
        since: Option<&Since>,
        page_size: Option<i32>,
    ) -> Result<Vec<Suppression>, QueryError> {
        let mut events = Vec::new();
        for reason in SUPPRESSION_REASONS {
            let request = self.partition_query(
                Some(SUPPRESSION_INDEX),
                SUPPRESSION,
                reason,
                since,
                page_size,
            );
            events.extend(self.query_events(request).await?);
        }
        Ok(latest_per_address(events))
    }

    /// Re-runs the current normalizers over the stored raw payloads (a filtered
    /// Scan) and reports the items they would build differently. With
    /// `options.apply`, rewrites those items once the Scan is done: in place when
    /// the key is the same, otherwise deleting the old item and putting the new
    /// one in one transaction. `progress` is told how far it has got.
    pub async fn renormalize(
        &self,
        options: &RenormalizeOptions,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<RenormalizeReport, QueryError> {
        if let Some(name) = &options.provider {
            check_provider(name)?;
        }
        let mut report = RenormalizeReport::default();
        let mut rewrites = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .renormalize_scan(options)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| self.classify(e))?;
            for stored in page.items.unwrap_or_default() {
                rewrites.extend(report.record(review(&stored)));
                progress(Progress::Scanned(report.scanned));
            }
            start = page.last_evaluated_key;
            if start.is_none() {
                break;
            }
        }
        if options.apply {
            report.written = Some(self.write_all(&rewrites, progress).await?);
        }
        Ok(report)
    }

    fn renormalize_scan(&self, options: &RenormalizeOptions) -> ScanFluentBuilder {
        let mut scan = self
            .client
            .scan()
            .table_name(&self.table)
            .set_limit(options.page_size);
        let mut conditions = Vec::new();
        if let Some(provider) = &options.provider {
            conditions.push("#provider = :provider");
            scan = scan
                .expression_attribute_names("#provider", "provider")
                .expression_attribute_values(":provider", AttributeValue::S(provider.clone()));
        }
        if let Some(since) = &options.since {
            conditions.push("#sk >= :since");
            scan = scan
                .expression_attribute_names("#sk", SORT_KEY)
                .expression_attribute_values(":since", AttributeValue::S(since.0.clone()));
        }
        if conditions.is_empty() {
            scan
        } else {
            scan.filter_expression(conditions.join(" AND "))
        }
    }

    async fn write_all(
        &self,
        rewrites: &[Rewrite],
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Written, QueryError> {
        let mut written = Written::default();
        let total = rewrites.len() as u64;
        for (done, rewrite) in (1..).zip(rewrites) {
            let moves = rewrite.moves();
            let landed = if moves {
                self.move_item(rewrite).await?
            } else {
                self.overwrite(rewrite).await?
            };
            match (landed, moves) {
                (false, _) => written.conflicts += 1,
                (true, true) => written.moved += 1,
                (true, false) => written.in_place += 1,
            }
            progress(Progress::Written { done, total });
        }
        Ok(written)
    }

    /// Puts the new item over the old one, if that still exists; `false` if not.
    async fn overwrite(&self, rewrite: &Rewrite) -> Result<bool, QueryError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(rewrite.new_item.clone()))
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#pk", PARTITION_KEY)
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(err) => Err(self.classify(err)),
        }
    }

    /// Deletes the old item (if it still exists) and puts the new one, in one
    /// transaction; `false` if the old one was gone or changing.
    async fn move_item(&self, rewrite: &Rewrite) -> Result<bool, QueryError> {
        let delete = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(rewrite.old_key.clone()))
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#pk", PARTITION_KEY)
            .build()
            .map_err(|e| QueryError::Dynamo(e.to_string()))?;
        // The new key is a content hash of the same event: an item already there is this one.
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(rewrite.new_item.clone()))
            .build()
            .map_err(|e| QueryError::Dynamo(e.to_string()))?;
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().delete(delete).build())
            .transact_items(TransactWriteItem::builder().put(put).build())
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(err) if err.as_service_error().is_some_and(is_conflict) => Ok(false),
            Err(err) => Err(self.classify(err)),
        }
    }

    /// A Query of one partition of the table or an index, from `since` on.
    fn partition_query(
        &self,
        index: Option<&str>,
        partition_attribute: &str,
        value: &str,
        since: Option<&Since>,
        page_size: Option<i32>,
    ) -> QueryFluentBuilder {
        let mut condition = "#pk = :pk".to_owned();
        let mut request = self
            .client
            .query()
            .table_name(&self.table)
            .set_index_name(index.map(str::to_owned))
            .expression_attribute_names("#pk", partition_attribute)
            .expression_attribute_values(":pk", AttributeValue::S(value.to_owned()))
            .set_limit(page_size);
        if let Some(since) = since {
            condition.push_str(" AND #sk >= :since");
            request = request
                .expression_attribute_names("#sk", SORT_KEY)
                .expression_attribute_values(":since", AttributeValue::S(since.0.clone()));
        }
        request.key_condition_expression(condition)
    }

    /// Every item a Query matches, page after page.
    async fn query_events(
        &self,
        request: QueryFluentBuilder,
    ) -> Result<Vec<StoredEvent>, QueryError> {
        let mut events = Vec::new();
        let mut start = None;
        loop {
            let page = request
                .clone()
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| self.classify(e))?;
            events.extend(page.items().iter().map(StoredEvent::from_item));
            start = page.last_evaluated_key;
            if start.is_none() {
                return Ok(events);
            }
        }
    }

    /// Sorts an SDK failure into what a user can act on.
    fn classify<E, R>(&self, err: SdkError<E, R>) -> QueryError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: Debug,
    {
        if matches!(
            err,
            SdkError::TimeoutError(_) | SdkError::DispatchFailure(_)
        ) {
            return QueryError::Unreachable(error_chain(&err));
        }
        match err.code() {
            Some("ResourceNotFoundException") => QueryError::TableMissing(self.table.clone()),
            Some(code) if DENIED_CODES.contains(&code) => {
                QueryError::AccessDenied(format!("{code}: {}", err.message().unwrap_or_default()))
            }
            _ => QueryError::Dynamo(error_chain(&err)),
        }
    }
}

/// An error and its sources on one line (`a: b: c`), leaving out a source whose
/// text its parent already shows.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(err);
    while let Some(current) = next {
        let text = current.to_string();
        if parts.last().is_none_or(|last| !last.contains(&text)) {
            parts.push(text);
        }
        next = current.source();
    }
    parts.join(": ")
}

/// A transaction cancelled only because an item was gone or being changed.
fn is_conflict(err: &TransactWriteItemsError) -> bool {
    let TransactWriteItemsError::TransactionCanceledException(cancelled) = err else {
        return false;
    };
    cancelled.cancellation_reasons().iter().all(|reason| {
        matches!(
            reason.code(),
            None | Some("None" | "ConditionalCheckFailed" | "TransactionConflict")
        )
    })
}

fn check_provider(name: &str) -> Result<(), QueryError> {
    if providers::by_name(name).is_some() {
        return Ok(());
    }
    let known: Vec<&str> = providers::ALL.iter().map(|p| p.name()).collect();
    Err(QueryError::UnknownProvider {
        name: name.to_owned(),
        known: known.join(", "),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn since(text: &str) -> Option<String> {
        Since::parse(text).ok().map(|s| s.as_str().to_owned())
    }

    #[test]
    fn since_reads_dates_and_rfc3339_times_in_any_offset() {
        assert_eq!(
            since("2026-11-22").as_deref(),
            Some("2026-11-22T00:00:00.000Z")
        );
        assert_eq!(
            since("2026-11-22T10:15:30Z").as_deref(),
            Some("2026-11-22T10:15:30.000Z")
        );
        assert_eq!(
            since("2026-11-22t10:15:30.5+08:00").as_deref(),
            Some("2026-11-22T02:15:30.500Z")
        );
        assert_eq!(
            since("2026-11-22 00:30:00-01:30").as_deref(),
            Some("2026-11-22T02:00:00.000Z")
        );
        // Sub-millisecond parts round up: an event at .123 is before .1231.
        assert_eq!(
            since("2026-11-22T10:15:30.1231Z").as_deref(),
            Some("2026-11-22T10:15:30.124Z")
        );
    }

    #[test]
    fn since_refuses_anything_else() {
        for bad in [
            "",
            "yesterday",
            "2026-13-01",
            "2026-02-30",
            "2026-11-22T10:15Z",
            "2026-11-22T10:15:30",
            "2026-11-22T25:00:00Z",
            "2026-11-22T10:15:30.Z",
            "2026-11-22T10:15:30+0800",
            "1795342530",
            "２０２６-11-22",
        ] {
            assert_eq!(
                Since::parse(bad),
                Err(QueryError::BadTime(bad.to_owned())),
                "{bad}"
            );
        }
    }

    fn event(recipient: Option<&str>, event_type: &str, t: i64) -> StoredEvent {
        StoredEvent::from_item(&Item::from([
            (
                SORT_KEY.to_owned(),
                AttributeValue::S(format!("{}#{event_type}#0000000{t}", format_rfc3339_ms(t))),
            ),
            (
                "event_type".to_owned(),
                AttributeValue::S(event_type.into()),
            ),
            ("event_time_ms".to_owned(), AttributeValue::N(t.to_string())),
        ]))
        .with_recipient(recipient)
    }

    impl StoredEvent {
        fn with_recipient(mut self, recipient: Option<&str>) -> Self {
            self.recipient = recipient.map(str::to_owned);
            self
        }
    }

    #[test]
    fn stored_events_read_their_time_from_the_sort_key() {
        let e = event(None, "opened", 1_000);
        assert_eq!(e.time, "1970-01-01T00:00:01.000Z");
        assert_eq!(e.event_time_ms, 1_000);
        assert_eq!(e.detail(), "");
    }

    #[test]
    fn each_recipient_of_a_message_has_its_own_status() {
        let events = [
            event(None, "queued", 1),
            event(Some("a@x.com"), "delivered", 2),
            event(Some("b@x.com"), "bounced", 3),
            event(Some("a@x.com"), "opened", 4),
        ];
        let statuses = current_statuses(&events);
        let summary: Vec<(Option<&str>, &str)> = statuses
            .iter()
            .map(|s| (s.recipient.as_deref(), s.status.as_str()))
            .collect();
        assert_eq!(
            summary,
            [(Some("a@x.com"), "opened"), (Some("b@x.com"), "bounced")]
        );
        assert_eq!(statuses[0].time, "1970-01-01T00:00:00.004Z");
        let anonymous = current_statuses(&[event(None, "queued", 1)]);
        assert_eq!(anonymous[0].recipient, None);
        assert_eq!(anonymous[0].status, "queued");
        assert!(current_statuses(&[]).is_empty());
    }

    #[test]
    fn suppressions_keep_the_latest_event_per_address_sorted() {
        let mut later = event(Some("b@x.com"), "complained", 9);
        later.suppression = Some("complaint".into());
        let mut earlier = event(Some("b@x.com"), "unsubscribed", 5);
        earlier.suppression = Some("unsubscribe".into());
        let mut other = event(Some("a@x.com"), "bounced", 7);
        other.suppression = Some("hard_bounce".into());
        let list = latest_per_address(vec![later, earlier, other]);
        let summary: Vec<(&str, &str)> = list
            .iter()
            .map(|s| (s.address.as_str(), s.reason.as_str()))
            .collect();
        assert_eq!(
            summary,
            [("a@x.com", "hard_bounce"), ("b@x.com", "complaint")]
        );
    }

    #[test]
    fn details_name_bounce_code_reason_url_and_unknown_names() {
        let mut e = event(Some("a@x.com"), "bounced", 1);
        e.bounce_type = Some("hard".into());
        e.reason = Some("551 5.1.1 recipient is not exist".into());
        e.status_code = Some("551 5.1.1".into());
        assert_eq!(e.detail(), "hard bounce | 551 5.1.1 recipient is not exist");
        e.status_code = Some("402".into());
        e.reason = Some("unsubscribed".into());
        e.raw_truncated = true;
        assert_eq!(
            e.detail(),
            "hard bounce | 402 unsubscribed | (raw truncated)"
        );
        let mut unknown = event(None, "unknown", 1);
        unknown.provider_event = "teleported".into();
        unknown.url = Some("https://example.com/".into());
        assert_eq!(
            unknown.detail(),
            "https://example.com/ | provider event \"teleported\""
        );
    }

    fn email(message_id: &str, recipient: &str) -> EmailEvent {
        let mut e = EmailEvent::new(
            "engagelab",
            EventType::Queued,
            "target",
            message_id,
            1,
            "{}".into(),
        );
        e.recipient = Some(recipient.into());
        e
    }

    #[test]
    fn the_event_of_a_multi_event_raw_is_picked_by_id_and_recipient() {
        let events = vec![
            email("m0$a@x.com", "a@x.com"),
            email("m1$b@x.com", "b@x.com"),
        ];
        let picked = pick_event(events.clone(), "m1$b@x.com", Some("b@x.com"));
        assert_eq!(picked.map(|e| e.message_id), Some("m1$b@x.com".to_owned()));
        assert_eq!(pick_event(events, "m1$b@x.com", Some("a@x.com")), None);
        let single = vec![email("renamed", "a@x.com")];
        assert!(pick_event(single, "m0$a@x.com", Some("a@x.com")).is_some());
    }

    fn stored_uspeedo_click() -> Item {
        let body = std::fs::read(format!(
            "{}/tests/fixtures/uspeedo/click.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        let events = providers::by_name("uspeedo").unwrap().parse(&body).unwrap();
        item::build(&events[0], 1_700_000_000_000, Some(30))
    }

    #[test]
    fn review_compares_with_what_the_current_code_builds() {
        let stored = stored_uspeedo_click();
        assert!(matches!(review(&stored), Review::Unchanged));

        let mut stale = stored.clone();
        stale.insert("event_type".into(), AttributeValue::S("unknown".into()));
        let old_key = text_of(&stored, SORT_KEY).replace("#clicked#", "#unknown#");
        stale.insert(SORT_KEY.into(), AttributeValue::S(old_key));
        let Review::Stale(rewrite, changes) = review(&stale) else {
            panic!("a stale type is found");
        };
        assert!(rewrite.moves());
        assert_eq!(
            rewrite.new_item, stored,
            "received_at and expires_at are kept"
        );
        let fields: Vec<&str> = changes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(fields, ["event_type", SORT_KEY]);

        let mut raw_elsewhere = stored.clone();
        raw_elsewhere.remove("raw");
        assert!(matches!(
            review(&raw_elsewhere),
            Review::Skipped(SkipReason::RawNotInItem)
        ));
        raw_elsewhere.insert("raw_truncated".into(), AttributeValue::Bool(true));
        assert!(matches!(
            review(&raw_elsewhere),
            Review::Skipped(SkipReason::RawTruncated)
        ));
        let mut unknown_provider = stored;
        unknown_provider.insert("provider".into(), AttributeValue::S("sendgrid".into()));
        assert!(matches!(
            review(&unknown_provider),
            Review::Skipped(SkipReason::UnknownProvider)
        ));
    }

    fn text_of(item: &Item, name: &str) -> String {
        item.get(name)
            .and_then(|v| v.as_s().ok())
            .cloned()
            .unwrap_or_default()
    }

    #[test]
    fn diffs_ignore_raw_storage_and_show_absent_values() {
        let stored = Item::from([
            ("event_type".to_owned(), AttributeValue::S("unknown".into())),
            ("raw".to_owned(), AttributeValue::S("{}".into())),
            ("same".to_owned(), AttributeValue::N("1".into())),
        ]);
        let current = Item::from([
            ("event_type".to_owned(), AttributeValue::S("clicked".into())),
            ("raw_gz".to_owned(), AttributeValue::S("..".into())),
            ("same".to_owned(), AttributeValue::N("1".into())),
            (
                "details".to_owned(),
                AttributeValue::M(HashMap::from([(
                    "b".to_owned(),
                    AttributeValue::S("2".into()),
                )])),
            ),
        ]);
        let changes = changed_fields(&stored, &current);
        let summary: Vec<(&str, &str, &str)> = changes
            .iter()
            .map(|c| (c.field.as_str(), c.old.as_str(), c.new.as_str()))
            .collect();
        assert_eq!(
            summary,
            [
                ("details", "(none)", "{b=2}"),
                ("event_type", "unknown", "clicked")
            ]
        );
    }

    #[test]
    fn field_changes_list_the_most_common_first() {
        let changes = FieldChanges {
            items: 4,
            changes: BTreeMap::from([
                ("a → b".to_owned(), 1),
                ("c → d".to_owned(), 3),
                ("e → f".to_owned(), 1),
            ]),
        };
        assert_eq!(changes.most_common(2), [("c → d", 3), ("a → b", 1)]);
    }

    #[test]
    fn error_chains_fit_on_one_line_without_repeats() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer failed: inner")]
        struct Outer(#[source] std::io::Error);
        let err = Outer(std::io::Error::other("inner"));
        assert_eq!(error_chain(&err), "outer failed: inner");
        let err = Outer(std::io::Error::other("refused"));
        assert_eq!(error_chain(&err), "outer failed: inner: refused");
    }

    #[test]
    fn unknown_providers_are_named_with_the_known_ones() {
        assert_eq!(check_provider("uspeedo"), Ok(()));
        let err = check_provider("sendgrid").map_err(|e| e.to_string());
        assert_eq!(
            err,
            Err(
                "unknown provider sendgrid: expected one of tencent, engagelab, uspeedo".to_owned()
            )
        );
    }
}
