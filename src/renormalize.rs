//! Re-normalization: re-runs the current provider code over the raw payloads
//! stored in the events table and reports (and, with `apply`, rewrites) the
//! items it would build differently. The one part of `mailhooks-cli` that
//! writes; it reads and builds items through the store's codec.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_dynamodb::operation::scan::builders::ScanFluentBuilder;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem};
use serde::Serialize;

use crate::event::EmailEvent;
use crate::providers;
use crate::read::{EventsTable, QueryError, Since};
use crate::store::archive;
use crate::store::codec::{
    self, INLINE_RAW_ATTRIBUTES, Item, PARTITION_KEY, PROVIDER, RECEIPT_ATTRIBUTES, SORT_KEY,
    StoredRaw,
};
use crate::store::errors::unless_condition_failed;
use crate::store::quarantine::is_event_item;

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
    /// The item holds no readable raw payload (none, or in S3 without S3 access).
    RawNotInItem,
    /// The raw payload is archived in S3 and could not be read from there.
    ArchiveUnreadable,
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
            SkipReason::ArchiveUnreadable => "raw in S3 could not be read",
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

/// Re-normalizes one stored item: rebuilds it from its raw payload (`archived`:
/// the payload read from S3, for an item that points there) with the current
/// code, keeping `received_at` and `expires_at`, and compares.
fn review(stored: &Item, archived: Option<Result<String, SkipReason>>) -> Review {
    match current_item(stored, archived) {
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

/// The item the current code builds from the stored raw payload. An item
/// whose payload is in S3 keeps pointing at it.
fn current_item(
    stored: &Item,
    archived: Option<Result<String, SkipReason>>,
) -> Result<Item, SkipReason> {
    let event = codec::decode(stored);
    let raw = match (&event.raw, archived) {
        (StoredRaw::Archived(_), Some(fetched)) => fetched?,
        (raw, _) => stored_raw(raw)?,
    };
    let provider = providers::by_name(&event.provider).ok_or(SkipReason::UnknownProvider)?;
    let events = provider
        .parse(raw.as_bytes())
        .map_err(|_| SkipReason::RawUnreadable)?;
    let fresh = pick_event(events, &event.message_id, event.recipient.as_deref())
        .ok_or(SkipReason::NoMatchingEvent)?;
    let mut current = match &event.raw {
        StoredRaw::Archived(pointer) => codec::draft(&fresh, 0, None).with_raw_archived(pointer),
        _ => codec::encode(&fresh, 0, None),
    };
    keep_original_attributes(stored, &mut current);
    Ok(current)
}

/// The raw payload kept in the item, decompressed.
fn stored_raw(raw: &StoredRaw) -> Result<String, SkipReason> {
    match raw {
        StoredRaw::Truncated { .. } => Err(SkipReason::RawTruncated),
        kept => kept.text().ok_or(SkipReason::RawNotInItem),
    }
}

/// `received_at` and `expires_at` stay what they were (present or absent).
fn keep_original_attributes(stored: &Item, current: &mut Item) {
    for name in RECEIPT_ATTRIBUTES {
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
        .filter(|name| !INLINE_RAW_ATTRIBUTES.contains(&name.as_str()))
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

impl EventsTable {
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
            // Replay claims and quarantine records are not events: not
            // reviewed, not counted (store::replay, store::quarantine).
            let events = page.items.unwrap_or_default().into_iter();
            for stored in events.filter(is_event_item) {
                let archived = self.archived_payload(&stored).await;
                rewrites.extend(report.record(review(&stored, archived)));
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

    /// The raw payload of an item that points at S3, read from there; `None`
    /// for an item that keeps its payload, or when there is no S3 access.
    async fn archived_payload(&self, stored: &Item) -> Option<Result<String, SkipReason>> {
        let (bucket, key) = codec::archived_raw(stored)?;
        let s3 = self.s3.as_ref()?;
        let fetched = archive::fetch(s3, &bucket, &key).await.ok();
        Some(
            fetched
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .ok_or(SkipReason::ArchiveUnreadable),
        )
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
                .expression_attribute_names("#provider", PROVIDER)
                .expression_attribute_values(":provider", AttributeValue::S(provider.clone()));
        }
        if let Some(since) = &options.since {
            conditions.push("#sk >= :since");
            scan = scan
                .expression_attribute_names("#sk", SORT_KEY)
                .expression_attribute_values(
                    ":since",
                    AttributeValue::S(since.as_str().to_owned()),
                );
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
        let written = unless_condition_failed(result).map_err(|e| self.classify(e))?;
        Ok(written.is_some())
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
    use crate::event::EventType;
    use crate::store::codec::{DETAILS, EVENT_TYPE, RAW, RAW_GZ, RAW_TRUNCATED};
    use std::collections::HashMap;

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
        codec::encode(&events[0], 1_700_000_000_000, Some(30))
    }

    #[test]
    fn review_compares_with_what_the_current_code_builds() {
        let stored = stored_uspeedo_click();
        assert!(matches!(review(&stored, None), Review::Unchanged));

        let mut stale = stored.clone();
        stale.insert(EVENT_TYPE.into(), AttributeValue::S("unknown".into()));
        let old_key = text_of(&stored, SORT_KEY).replace("#clicked#", "#unknown#");
        stale.insert(SORT_KEY.into(), AttributeValue::S(old_key));
        let Review::Stale(rewrite, changes) = review(&stale, None) else {
            panic!("a stale type is found");
        };
        assert!(rewrite.moves());
        assert_eq!(
            rewrite.new_item, stored,
            "received_at and expires_at are kept"
        );
        let fields: Vec<&str> = changes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(fields, [EVENT_TYPE, SORT_KEY]);

        let mut raw_elsewhere = stored.clone();
        raw_elsewhere.remove(RAW);
        assert!(matches!(
            review(&raw_elsewhere, None),
            Review::Skipped(SkipReason::RawNotInItem)
        ));
        raw_elsewhere.insert(RAW_TRUNCATED.into(), AttributeValue::Bool(true));
        assert!(matches!(
            review(&raw_elsewhere, None),
            Review::Skipped(SkipReason::RawTruncated)
        ));
        let mut unknown_provider = stored;
        unknown_provider.insert(PROVIDER.into(), AttributeValue::S("nonesuch".into()));
        assert!(matches!(
            review(&unknown_provider, None),
            Review::Skipped(SkipReason::UnknownProvider)
        ));
    }

    #[test]
    fn a_payload_archived_in_s3_is_reviewed_from_there_and_stays_there() {
        let stored = stored_uspeedo_click();
        let raw = codec::raw_payload(&stored).unwrap();
        let event = &providers::by_name("uspeedo")
            .unwrap()
            .parse(raw.as_bytes())
            .unwrap()[0];
        let pointer = codec::ArchivedRaw {
            bucket: "b".into(),
            key: "raw/uspeedo/k.json.gz".into(),
            bytes: raw.len(),
        };
        let mut archived =
            codec::draft(event, 1_700_000_000_000, Some(30)).with_raw_archived(&pointer);
        assert!(matches!(
            review(&archived, None),
            Review::Skipped(SkipReason::RawNotInItem)
        ));
        assert!(matches!(
            review(&archived, Some(Err(SkipReason::ArchiveUnreadable))),
            Review::Skipped(SkipReason::ArchiveUnreadable)
        ));
        assert!(matches!(
            review(&archived, Some(Ok(raw.clone()))),
            Review::Unchanged
        ));
        archived.insert(EVENT_TYPE.into(), AttributeValue::S("unknown".into()));
        let Review::Stale(rewrite, _) = review(&archived, Some(Ok(raw))) else {
            panic!("a stale type is found from the archived payload");
        };
        assert_eq!(text_of(&rewrite.new_item, codec::RAW_S3_KEY), pointer.key);
        assert!(!rewrite.new_item.contains_key(RAW));
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
            (EVENT_TYPE.to_owned(), AttributeValue::S("unknown".into())),
            (RAW.to_owned(), AttributeValue::S("{}".into())),
            ("same".to_owned(), AttributeValue::N("1".into())),
        ]);
        let current = Item::from([
            (EVENT_TYPE.to_owned(), AttributeValue::S("clicked".into())),
            (RAW_GZ.to_owned(), AttributeValue::S("..".into())),
            ("same".to_owned(), AttributeValue::N("1".into())),
            (
                DETAILS.to_owned(),
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
                (DETAILS, "(none)", "{b=2}"),
                (EVENT_TYPE, "unknown", "clicked")
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
    fn unknown_providers_are_named_with_the_known_ones() {
        for provider in providers::ALL {
            assert_eq!(check_provider(provider.name()), Ok(()));
        }
        let known: Vec<&str> = providers::ALL.iter().map(|p| p.name()).collect();
        let err = check_provider("nonesuch").map_err(|e| e.to_string());
        assert_eq!(
            err,
            Err(format!(
                "unknown provider nonesuch: expected one of {}",
                known.join(", ")
            ))
        );
    }
}
