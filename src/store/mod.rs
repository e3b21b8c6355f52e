//! Event storage: the [`EventStore`] trait and its DynamoDB implementation.
//!
//! - [`codec`]: the table's item layout, `encode` / `decode`;
//! - [`dynamodb`]: the [`EventStore`] implementation (conditional puts);
//! - [`batch`]: the read half of its batch path for large requests;
//! - [`insert`]: the write half: conditional inserts, 25 to a call;
//! - [`archive`]: raw payloads too large for their item, in S3;
//! - [`quarantine`]: the parts of authenticated requests that did not normalize, kept raw;
//! - [`errors`]: the one classification of SDK failures (write and read side);
//! - [`sdk`]: SDK configuration and the local emulator clients;
//! - [`table`]: the table schema (local runs, tests, benches).

pub mod archive;
pub mod batch;
pub mod codec;
pub mod dynamodb;
pub mod errors;
pub mod insert;
pub mod quarantine;
pub mod replay;
pub mod sdk;
pub mod table;

use std::collections::BTreeMap;
use std::future::Future;

use crate::event::{EmailEvent, EventType};
use crate::providers::Unparsed;

pub use dynamodb::{DynamoStore, put_if_new};

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

/// What keeping quarantined parts did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QuarantineOutcome {
    /// Records written now.
    pub new: usize,
    /// Parts already quarantined (a retry of the same body).
    pub duplicates: usize,
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

/// A signed one-time value (a nonce) to bind to the body it authenticated, for
/// providers whose signature does not cover the body (see [`replay`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayClaim {
    /// The provider's route name.
    pub provider: &'static str,
    /// The signed one-time value (Mailgun's `token`).
    pub nonce: String,
    /// Hex SHA-256 of the exact body bytes.
    pub body_sha256: String,
    /// When the claim may be forgotten (Unix seconds): after the signature's
    /// freshness window has closed.
    pub expires_at_secs: i64,
}

/// What a [`ReplayClaim`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimOutcome {
    /// The nonce was not claimed before: it is now bound to this body.
    New,
    /// The nonce is bound to this same body: a retry, stored as duplicates.
    SameBody,
    /// The nonce is bound to another body: a replayed signature.
    OtherBody,
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

    /// Keeps the parts of an authenticated request that did not normalize, raw
    /// ([`quarantine`]); returns once all are durable. A part already kept
    /// (the same bytes for the same provider) counts as a duplicate.
    fn quarantine(
        &self,
        provider: &str,
        parts: &[Unparsed],
        content_type: Option<&str>,
        received_at_ms: i64,
    ) -> impl Future<Output = Result<QuarantineOutcome, StoreError>> + Send;

    /// Binds a nonce to a body, once: the first claim wins, the same claim again
    /// is [`ClaimOutcome::SameBody`], another body is [`ClaimOutcome::OtherBody`].
    /// The default keeps no claims and refuses, so a store that cannot hold them
    /// fails closed (5xx) rather than letting a replay through.
    fn claim_replay(
        &self,
        _claim: &ReplayClaim,
    ) -> impl Future<Output = Result<ClaimOutcome, StoreError>> + Send {
        std::future::ready(Err(StoreError::Misconfigured(
            "this store keeps no replay claims".into(),
        )))
    }
}
