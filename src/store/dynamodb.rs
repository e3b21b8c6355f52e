//! DynamoDB implementation of [`EventStore`]: every event is written with a
//! conditional `PutItem` (`attribute_not_exists`), so an item is written once,
//! by exactly one request, and never again: retries and concurrent deliveries
//! never create a second item, never move its `received_at`, and are counted as
//! duplicates. Small requests write each event straight away
//! ([`DynamoStore::put_each`]); large ones first skip the events a
//! `BatchGetItem` finds ([`batch`]), then insert the rest 25 to a call
//! ([`insert`]: PartiQL `INSERT`, conditional like the `PutItem`s), falling back
//! to conditional `PutItem`s where the store does not run those
//! ([`DynamoStore::put_batch`]).

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use aws_sdk_dynamodb::Client;
use futures_util::stream::{self, StreamExt, TryStreamExt};

use super::archive::RawArchive;
use super::batch;
use super::codec::{self, Item, PARTITION_KEY};
use super::errors::{store_error, unless_condition_failed};
use super::insert::{self, Inserted};
use super::quarantine::{self, NewRecord, Placement};
use super::{
    ClaimOutcome, EventStore, PutOutcome, QuarantineOutcome, ReplayClaim, StoreError, replay,
};
use crate::event::EmailEvent;
use crate::providers::Unparsed;

/// Most writes in flight for one small request (and for quarantine records).
const MAX_CONCURRENT_WRITES: usize = 16;
/// Most conditional `PutItem`s in flight for one request on the batch path when
/// the store does not run PartiQL inserts (docs/performance.md). Each one in
/// flight is one HTTP connection; the pool keeps them between requests.
pub const MAX_CONCURRENT_BATCH_PUTS: usize = 64;

/// Events stored in one DynamoDB table.
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
    retention_days: Option<u32>,
    archive: Option<RawArchive>,
    /// Whether batches go as PartiQL inserts; cleared (for this process) the
    /// first time the store does not run them.
    inserts: Arc<AtomicBool>,
}

enum Written {
    New,
    Duplicate,
}

impl DynamoStore {
    /// A store writing to `table` through `client`.
    pub fn new(client: Client, table: impl Into<String>, retention_days: Option<u32>) -> Self {
        DynamoStore {
            client,
            table: table.into(),
            retention_days,
            archive: None,
            inserts: Arc::new(AtomicBool::new(true)),
        }
    }

    /// Archives raw payloads too large for their item in S3 instead of compressing
    /// or truncating them.
    pub fn with_raw_archive(mut self, archive: RawArchive) -> Self {
        self.archive = Some(archive);
        self
    }

    /// The item for `event`. Where its raw payload goes is decided here, once:
    /// inline (text, gzip or dropped), or in S3 when it does not fit as text and
    /// an archive is configured.
    async fn item_for(&self, event: &EmailEvent, received_at_ms: i64) -> Result<Item, StoreError> {
        let draft = codec::draft(event, received_at_ms, self.retention_days);
        if let Some(archive) = &self.archive
            && !draft.raw_fits_as_text(&event.raw)
        {
            let archived = archive.put(event).await?;
            return Ok(draft.with_raw_archived(&archived));
        }
        Ok(draft.with_raw_inline(&event.raw))
    }

    /// Opens (and, over HTTPS, handshakes) the connection to DynamoDB with one
    /// cheap call, so the first webhook after a cold start does not pay for it.
    /// Also fails the cold start early, with a clear message, if the table is missing.
    pub async fn warm_up(&self) -> Result<(), StoreError> {
        self.client
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
            .map_err(store_error)?;
        Ok(())
    }

    /// The SDK client, for callers that also read the table.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Writes one quarantine record (its body in S3 first when it fits nowhere
    /// else and an archive is configured); `true` when new.
    async fn put_record(&self, record: NewRecord<'_>) -> Result<bool, StoreError> {
        let (draft, placement) = quarantine::draft(&record);
        let item = match (placement, &self.archive) {
            (Placement::TooLarge(gz), Some(archive)) => {
                let id = quarantine::record_id(&record.part.body);
                let key = quarantine::object_key(record.provider, &id);
                let bucket = archive
                    .put_compressed(&key, "application/octet-stream", gz)
                    .await?;
                quarantine::with_archived_body(draft, bucket, &key)
            }
            (placement, _) => {
                if matches!(placement, Placement::TooLarge(_)) {
                    // Says where the rest would have gone, never what it said.
                    tracing::warn!(
                        provider = record.provider,
                        bytes = record.part.body.len(),
                        "quarantined body cut to fit its item: set RAW_BUCKET to keep it whole"
                    );
                }
                quarantine::with_body(draft, &record.part.body, placement)
            }
        };
        put_if_new(&self.client, &self.table, item).await
    }

    async fn put_one(
        &self,
        event: &EmailEvent,
        received_at_ms: i64,
    ) -> Result<Written, StoreError> {
        let item = self.item_for(event, received_at_ms).await?;
        Ok(if put_if_new(&self.client, &self.table, item).await? {
            Written::New
        } else {
            Written::Duplicate
        })
    }
}

/// Writes `item` unless an item with its key is stored (`attribute_not_exists`
/// on the partition key): `true` when written, `false` when it was there (and
/// is left untouched). Events and quarantine records are written this way.
pub async fn put_if_new(client: &Client, table: &str, item: Item) -> Result<bool, StoreError> {
    let result = client
        .put_item()
        .table_name(table)
        .set_item(Some(item))
        .condition_expression("attribute_not_exists(#pk)")
        .expression_attribute_names("#pk", PARTITION_KEY)
        .send()
        .await;
    Ok(unless_condition_failed(result)
        .map_err(store_error)?
        .is_some())
}

impl EventStore for DynamoStore {
    /// Small requests take [`DynamoStore::put_each`], larger ones [`DynamoStore::put_batch`]
    /// (see `benches/lambda.rs` for the measured crossover).
    async fn put_events(
        &self,
        events: &[EmailEvent],
        received_at_ms: i64,
    ) -> Result<PutOutcome, StoreError> {
        if events.len() > batch::BATCH_THRESHOLD {
            self.put_batch(events, received_at_ms).await
        } else {
            self.put_each(events, received_at_ms).await
        }
    }

    /// One conditional `PutItem` per record, keyed by its body ([`quarantine`]).
    async fn quarantine(
        &self,
        provider: &str,
        parts: &[Unparsed],
        content_type: Option<&str>,
        received_at_ms: i64,
    ) -> Result<QuarantineOutcome, StoreError> {
        let writes: Vec<_> = parts
            .iter()
            .map(|part| {
                self.put_record(NewRecord {
                    provider,
                    part,
                    content_type,
                    received_at_ms,
                    retention_days: self.retention_days,
                })
            })
            .collect();
        let results: Vec<bool> = stream::iter(writes)
            .buffered(MAX_CONCURRENT_WRITES)
            .try_collect()
            .await?;
        let new = results.iter().filter(|new| **new).count();
        Ok(QuarantineOutcome {
            new,
            duplicates: results.len() - new,
        })
    }

    /// A conditional `PutItem` of the claim item in the events table ([`replay`]).
    async fn claim_replay(&self, claim: &ReplayClaim) -> Result<ClaimOutcome, StoreError> {
        replay::claim(&self.client, &self.table, claim).await
    }
}

impl DynamoStore {
    /// One conditional `PutItem` per event, up to 16 in flight.
    pub async fn put_each(
        &self,
        events: &[EmailEvent],
        received_at_ms: i64,
    ) -> Result<PutOutcome, StoreError> {
        // Futures do nothing until polled, so building them all first is cheap.
        let writes: Vec<_> = events
            .iter()
            .map(|event| self.put_one(event, received_at_ms))
            .collect();
        // `buffered` keeps results in input order, so they zip back onto the events.
        let results: Vec<Result<Written, StoreError>> = stream::iter(writes)
            .buffered(MAX_CONCURRENT_WRITES)
            .collect()
            .await;
        let mut outcome = PutOutcome::default();
        for (event, result) in events.iter().zip(results) {
            match result? {
                Written::New => outcome.count_new(event),
                Written::Duplicate => outcome.duplicates += 1,
            }
        }
        Ok(outcome)
    }
}

impl DynamoStore {
    /// The batch path: read which keys are stored ([`batch::existing_keys`]),
    /// then insert the missing events 25 to a call ([`insert::insert_all`]),
    /// each conditional on its key being new; what the store does not run as an
    /// insert is written with conditional `PutItem`s, up to
    /// [`MAX_CONCURRENT_BATCH_PUTS`] in flight. The read spares the write units
    /// of a whole batch sent again; the condition decides the rest, so an event
    /// delivered twice at the same time is stored by exactly one request (the
    /// other counts it as a duplicate) and its first `received_at` stays.
    pub async fn put_batch(
        &self,
        events: &[EmailEvent],
        received_at_ms: i64,
    ) -> Result<PutOutcome, StoreError> {
        let mut outcome = PutOutcome::default();
        let (keys, unique) = distinct_keys(events, &mut outcome);
        let existing = batch::existing_keys(&self.client, &self.table, &keys).await?;
        outcome.duplicates += existing.len();
        let missing: Vec<&EmailEvent> = keys
            .iter()
            .zip(unique)
            .filter(|(key, _)| !existing.contains(*key))
            .map(|(_, event)| event)
            .collect();
        let inserted = self.insert_missing(&missing, received_at_ms).await?;
        let none_run = !missing.is_empty() && inserted.iter().all(|i| *i == Inserted::NotRun);
        let mut not_run = Vec::new();
        for (event, inserted) in missing.into_iter().zip(inserted) {
            match inserted {
                Inserted::New => outcome.count_new(event),
                Inserted::Duplicate => outcome.duplicates += 1,
                Inserted::NotRun => not_run.push(event),
            }
        }
        let writes: Vec<_> = not_run
            .iter()
            .map(|event| self.put_one(event, received_at_ms))
            .collect();
        let results: Vec<Written> = stream::iter(writes)
            .buffered(MAX_CONCURRENT_BATCH_PUTS)
            .try_collect()
            .await?;
        for (event, written) in not_run.into_iter().zip(results) {
            match written {
                Written::New => outcome.count_new(event),
                Written::Duplicate => outcome.duplicates += 1,
            }
        }
        if none_run && self.inserts.swap(false, Ordering::Relaxed) {
            // The store took the same writes as PutItems: it does not run the
            // inserts (were it down, those would have failed too).
            tracing::warn!(
                "the store did not run PartiQL inserts (BatchExecuteStatement): large batches are written item by item (grant dynamodb:PartiQLInsert, see template.yaml)"
            );
        }
        Ok(outcome)
    }

    /// The missing events as PartiQL inserts, or all [`Inserted::NotRun`] once
    /// this store has been found not to run them.
    async fn insert_missing(
        &self,
        missing: &[&EmailEvent],
        received_at_ms: i64,
    ) -> Result<Vec<Inserted>, StoreError> {
        if missing.is_empty() || !self.inserts.load(Ordering::Relaxed) {
            return Ok(vec![Inserted::NotRun; missing.len()]);
        }
        let builds: Vec<_> = missing
            .iter()
            .map(|event| self.item_for(event, received_at_ms))
            .collect();
        let items: Vec<Item> = stream::iter(builds)
            .buffered(MAX_CONCURRENT_WRITES)
            .try_collect()
            .await?;
        let inserted = insert::insert_all(&self.client, &self.table, items).await?;
        if inserted.iter().all(|i| *i == Inserted::NotRun)
            && self.inserts.swap(false, Ordering::Relaxed)
        {
            tracing::warn!(
                "the store did not run PartiQL inserts (BatchExecuteStatement): large batches are written item by item (grant dynamodb:PartiQLInsert, see template.yaml)"
            );
        }
        Ok(inserted)
    }
}

/// The keys of `events` without repeats, with the first event of each; every
/// repeat within the request is counted in `outcome` as a duplicate.
fn distinct_keys<'a>(
    events: &'a [EmailEvent],
    outcome: &mut PutOutcome,
) -> (Vec<batch::Key>, Vec<&'a EmailEvent>) {
    let mut seen = HashSet::with_capacity(events.len());
    let (mut keys, mut unique) = (Vec::new(), Vec::new());
    for event in events {
        let key = (event.message_id.clone(), codec::sort_key(event));
        if seen.insert(key.clone()) {
            keys.push(key);
            unique.push(event);
        } else {
            outcome.duplicates += 1;
        }
    }
    (keys, unique)
}
