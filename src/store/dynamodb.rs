//! DynamoDB implementation of [`EventStore`]: one conditional `PutItem` per event,
//! written concurrently (or the batch path for large requests), so retries never
//! create a second item.

use std::collections::HashSet;

use aws_sdk_dynamodb::Client;
use futures_util::stream::{self, StreamExt, TryStreamExt};

use super::archive::RawArchive;
use super::batch;
use super::codec::{self, Item, PARTITION_KEY};
use super::errors::store_error;
use super::quarantine::{self, NewRecord, Placement};
use super::{
    ClaimOutcome, EventStore, PutOutcome, QuarantineOutcome, ReplayClaim, StoreError, replay,
};
use crate::event::EmailEvent;
use crate::providers::Unparsed;

/// Most writes in flight for one request.
const MAX_CONCURRENT_WRITES: usize = 16;

/// Events stored in one DynamoDB table.
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
    retention_days: Option<u32>,
    archive: Option<RawArchive>,
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
        quarantine::put(&self.client, &self.table, item).await
    }

    async fn put_one(
        &self,
        event: &EmailEvent,
        received_at_ms: i64,
    ) -> Result<Written, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(self.item_for(event, received_at_ms).await?))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", PARTITION_KEY)
            .send()
            .await;
        match result {
            Ok(_) => Ok(Written::New),
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(Written::Duplicate)
            }
            Err(err) => Err(store_error(err)),
        }
    }
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
    /// The batch path (see [`batch`]): read which keys exist, write the rest.
    pub async fn put_batch(
        &self,
        events: &[EmailEvent],
        received_at_ms: i64,
    ) -> Result<PutOutcome, StoreError> {
        let mut outcome = PutOutcome::default();
        let mut seen = HashSet::with_capacity(events.len());
        let mut unique = Vec::with_capacity(events.len());
        for event in events {
            let key = (event.message_id.clone(), codec::sort_key(event));
            if seen.insert(key.clone()) {
                unique.push((key, event));
            } else {
                outcome.duplicates += 1;
            }
        }
        let keys: Vec<batch::Key> = unique.iter().map(|(k, _)| k.clone()).collect();
        let existing = batch::existing_keys(&self.client, &self.table, &keys).await?;
        outcome.duplicates += existing.len();
        let missing: Vec<&EmailEvent> = unique
            .into_iter()
            .filter(|(k, _)| !existing.contains(k))
            .map(|(_, e)| e)
            .collect();
        let builds: Vec<_> = missing
            .iter()
            .map(|e| self.item_for(e, received_at_ms))
            .collect();
        let items: Vec<Item> = stream::iter(builds)
            .buffered(MAX_CONCURRENT_WRITES)
            .try_collect()
            .await?;
        batch::write_all(&self.client, &self.table, items).await?;
        for event in missing {
            outcome.count_new(event);
        }
        Ok(outcome)
    }
}
