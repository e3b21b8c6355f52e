//! The codec's former name and builder functions, kept for callers outside the
//! store that have not moved to [`super::codec`] yet (tests, benches, the fuzz
//! targets). New code uses the codec.

pub use super::codec::encode as build;
pub use super::codec::*;

/// Builds the item for `event` pointing at its raw payload archived in S3.
pub fn build_archived(
    event: &crate::event::EmailEvent,
    received_at_ms: i64,
    retention_days: Option<u32>,
    archived: &ArchivedRaw,
) -> Item {
    draft(event, received_at_ms, retention_days).with_raw_archived(archived)
}
