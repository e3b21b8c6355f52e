//! DynamoDB implementation of [`EventStore`]: one conditional `PutItem` per event,
//! written concurrently, so retries never create a second item.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::{Credentials, Region};
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, KeySchemaElement,
    KeyType, Projection, ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
};
use futures_util::stream::{self, StreamExt, TryStreamExt};

use super::archive::RawArchive;
use super::batch;
use super::item::{
    self, PARTITION_KEY, RECIPIENT, RECIPIENT_INDEX, SORT_KEY, SUPPRESSION, SUPPRESSION_INDEX,
    TTL_ATTRIBUTE,
};
use super::{EventStore, PutOutcome, StoreError};
use crate::event::EmailEvent;

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

    /// The item for `event`, archiving its raw payload first when it does not fit.
    async fn item_for(
        &self,
        event: &EmailEvent,
        received_at_ms: i64,
    ) -> Result<HashMap<String, AttributeValue>, StoreError> {
        if let Some(archive) = &self.archive
            && !item::raw_fits_as_text(
                &item::base(event, received_at_ms, self.retention_days),
                &event.raw,
            )
        {
            let archived = archive.put(event).await?;
            return Ok(item::build_archived(
                event,
                received_at_ms,
                self.retention_days,
                &archived,
            ));
        }
        Ok(item::build(event, received_at_ms, self.retention_days))
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
            .map_err(classify)?;
        Ok(())
    }

    /// The SDK client, for callers that also read the table.
    pub fn client(&self) -> &Client {
        &self.client
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
            Err(err) => Err(classify(err)),
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
            let key = (event.message_id.clone(), event.sort_key());
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
        let items: Vec<HashMap<String, AttributeValue>> = stream::iter(builds)
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

/// Sorts an SDK failure into the retry-worthy classes the handler answers with.
pub(super) fn classify<
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
>(
    err: SdkError<E, R>,
) -> StoreError {
    let text = DisplayErrorContext(&err).to_string();
    match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            StoreError::Unavailable(text)
        }
        _ => match err.code() {
            Some(
                "ProvisionedThroughputExceededException"
                | "ThrottlingException"
                | "RequestLimitExceeded",
            ) => StoreError::Throttled(text),
            Some("InternalServerError" | "ServiceUnavailable") => StoreError::Unavailable(text),
            Some(
                "ResourceNotFoundException"
                | "AccessDeniedException"
                | "UnrecognizedClientException",
            ) => StoreError::Misconfigured(text),
            _ => StoreError::Other(text),
        },
    }
}

/// Retry and timeout settings: the SDK's standard retries (3 attempts, jittered
/// exponential backoff from 50 ms), bounded as a whole by
/// `operation_timeout` so we answer before the provider gives up on us.
pub fn timeouts(operation_timeout: Duration) -> (RetryConfig, TimeoutConfig) {
    // A short first backoff: three attempts must fit in the bound, so that a
    // throttled store is reported as throttled rather than as a timeout.
    let retry = RetryConfig::standard()
        .with_max_attempts(3)
        .with_initial_backoff(Duration::from_millis(50));
    let timeout = TimeoutConfig::builder()
        .connect_timeout(Duration::from_millis(500))
        .operation_timeout(operation_timeout)
        .build();
    (retry, timeout)
}

/// The AWS configuration of the deployed function, loaded once at cold start:
/// region, credentials and endpoints (`AWS_ENDPOINT_URL_DYNAMODB`) from the usual
/// AWS settings, with [`timeouts`].
pub async fn sdk_config_from_env(operation_timeout: Duration) -> SdkConfig {
    let (retry, timeout) = timeouts(operation_timeout);
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .retry_config(retry)
        .timeout_config(timeout);
    let endpoint =
        std::env::var("AWS_ENDPOINT_URL_DYNAMODB").or_else(|_| std::env::var("AWS_ENDPOINT_URL"));
    if endpoint.is_ok_and(|e| e.starts_with("http://")) {
        // A local emulator over plain HTTP: skip loading the TLS trust store.
        loader = loader.http_client(aws_smithy_http_client::Builder::new().build_http());
    }
    loader.load().await
}

/// A client for a local DynamoDB-compatible endpoint over plain HTTP, with
/// placeholder credentials (the local run command, tests, benchmarks).
pub fn local_client(endpoint: &str, operation_timeout: Duration) -> Client {
    let (retry, timeout) = timeouts(operation_timeout);
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new(
            "local",
            "local",
            None,
            None,
            "mailhooks-local",
        ))
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .retry_config(retry)
        .timeout_config(timeout)
        .build();
    Client::from_conf(config)
}

/// Creates the events table exactly as `template.yaml` declares it: keys, the
/// recipient and suppression indexes and TTL. Used by the local run command and the tests.
pub async fn create_table(client: &Client, table: &str) -> Result<(), StoreError> {
    let key = |name: &str, key_type| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(key_type)
            .build()
            .map_err(build_error)
    };
    let string_attribute = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .map_err(build_error)
    };
    let index = |name: &str, partition: &str| {
        GlobalSecondaryIndex::builder()
            .index_name(name)
            .key_schema(key(partition, KeyType::Hash)?)
            .key_schema(key(SORT_KEY, KeyType::Range)?)
            .projection(
                Projection::builder()
                    .projection_type(ProjectionType::All)
                    .build(),
            )
            .build()
            .map_err(build_error)
    };
    client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key(PARTITION_KEY, KeyType::Hash)?)
        .key_schema(key(SORT_KEY, KeyType::Range)?)
        .attribute_definitions(string_attribute(PARTITION_KEY)?)
        .attribute_definitions(string_attribute(SORT_KEY)?)
        .attribute_definitions(string_attribute(RECIPIENT)?)
        .attribute_definitions(string_attribute(SUPPRESSION)?)
        .global_secondary_indexes(index(RECIPIENT_INDEX, RECIPIENT)?)
        .global_secondary_indexes(index(SUPPRESSION_INDEX, SUPPRESSION)?)
        .send()
        .await
        .map_err(classify)?;
    let ttl = TimeToLiveSpecification::builder()
        .enabled(true)
        .attribute_name(TTL_ATTRIBUTE)
        .build()
        .map_err(build_error)?;
    client
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(ttl)
        .send()
        .await
        .map_err(classify)?;
    Ok(())
}

fn build_error(err: aws_sdk_dynamodb::error::BuildError) -> StoreError {
    StoreError::Other(err.to_string())
}
