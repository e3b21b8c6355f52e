//! Event storage: the [`EventStore`] trait and its DynamoDB implementation.
//!
//! - [`codec`]: the table's item layout, `encode` / `decode`;
//! - [`dynamodb`]: the [`EventStore`] implementation (conditional puts);
//! - [`batch`]: its batch path for large requests;
//! - [`archive`]: raw payloads too large for their item, in S3;
//! - [`errors`]: the one classification of SDK failures (write and read side);
//! - [`sdk`]: SDK configuration and the local emulator clients;
//! - [`table`]: the table schema (local runs, tests, benches).

pub mod archive;
pub mod batch;
pub mod codec;
pub mod dynamodb;
pub mod errors;
pub mod sdk;
pub mod table;

use std::collections::BTreeMap;
use std::future::Future;

use crate::event::{EmailEvent, EventType};

pub use dynamodb::DynamoStore;

/// What a write of several events did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PutOutcome {
    /// Events written now.
    pub stored: usize,
    /// Events that were already in the table (provider retries).
    pub duplicates: usize,
    /// Events written now, by type (for metrics).
    pub stored_by_type: BTreeMap<EventType, usize>,
}

impl PutOutcome {
    /// Counts one event written now.
    pub fn count_new(&mut self, event: &EmailEvent) {
        self.stored += 1;
        *self.stored_by_type.entry(event.event_type).or_default() += 1;
    }
}

/// Why events could not be stored. Every variant answers 5xx so the provider retries.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The store is throttling us even after the SDK's retries.
    #[error("throttled: {0}")]
    Throttled(String),
    /// The store could not be reached or did not answer in time.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The table is missing or we may not write to it.
    #[error("misconfigured: {0}")]
    Misconfigured(String),
    /// Anything else the store refused.
    #[error("store error: {0}")]
    Other(String),
}

impl StoreError {
    /// The HTTP status to answer: 503 for transient trouble, 500 otherwise.
    pub fn status(&self) -> u16 {
        match self {
            StoreError::Throttled(_) | StoreError::Unavailable(_) => 503,
            StoreError::Misconfigured(_) | StoreError::Other(_) => 500,
        }
    }

    /// A stable machine-readable error class.
    pub fn code(&self) -> &'static str {
        match self {
            StoreError::Throttled(_) => "storage_throttled",
            StoreError::Unavailable(_) => "storage_unavailable",
            StoreError::Misconfigured(_) => "storage_misconfigured",
            StoreError::Other(_) => "storage_error",
        }
    }
}

/// Durable, idempotent storage of normalized events.
pub trait EventStore: Send + Sync {
    /// Writes every event; returns once all are durable. An event already stored
    /// counts as a duplicate, not an error. On error, any event may or may not
    /// have been written, and writing the same events again is safe.
    fn put_events(
        &self,
        events: &[EmailEvent],
        received_at_ms: i64,
    ) -> impl Future<Output = Result<PutOutcome, StoreError>> + Send;
}
