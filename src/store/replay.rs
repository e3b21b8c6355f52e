//! Replay claims: for providers whose signature covers a timestamp and a
//! one-time token but not the body (Mailgun), the token is bound to the first
//! body it authenticated, so a captured signature cannot carry another body
//! inside the freshness window.
//!
//! A claim is one small item in the events table itself (no second table to
//! deploy), laid out so that it can never be mistaken for an event:
//!
//! - partition key `replay#<provider>#<verified digest>`;
//! - sort key [`CLAIM_SORT_KEY`], `#replay-claim`. Every event's sort key starts
//!   with its RFC 3339 time (a digit, `codec::sort_key`), so no event item can
//!   ever have this key, whatever its message id: a claim and an event never
//!   share a primary key, even if a provider sent a message id that starts with
//!   `replay#`. `#` also sorts before every digit, so a `--since` key condition
//!   (`timestamp >= <time>`) never reaches a claim;
//! - no `provider`, `recipient` or `suppression` attribute: the claim is in
//!   neither index (both are sparse) and a provider-filtered scan skips it; the
//!   readers that can still meet one (a timeline Query, the re-normalize Scan)
//!   drop it with [`is_claim`];
//! - [`BODY_SHA256`], the hex SHA-256 of the body, and the TTL attribute, set
//!   past the freshness window (DynamoDB removes it some time after that).

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};

use super::codec::{Item, PARTITION_KEY, SORT_KEY, TTL_ATTRIBUTE};
use super::errors::{store_error, unless_condition_failed};
use super::{ClaimOutcome, ReplayClaim, StoreError};

/// Sort key of every claim item: never an event's (those start with a digit).
pub const CLAIM_SORT_KEY: &str = "#replay-claim";
/// First part of a claim's partition key.
pub const CLAIM_PREFIX: &str = "replay#";
/// Attribute holding the hex SHA-256 of the body the token authenticated.
pub const BODY_SHA256: &str = "body_sha256";

/// The partition key of `claim`: `replay#<provider>#<nonce>`.
pub fn claim_key(claim: &ReplayClaim) -> String {
    format!("{CLAIM_PREFIX}{}#{}", claim.provider, claim.nonce)
}

/// The item recording `claim`.
pub fn claim_item(claim: &ReplayClaim) -> Item {
    Item::from([
        (
            PARTITION_KEY.to_owned(),
            AttributeValue::S(claim_key(claim)),
        ),
        (
            SORT_KEY.to_owned(),
            AttributeValue::S(CLAIM_SORT_KEY.to_owned()),
        ),
        (
            BODY_SHA256.to_owned(),
            AttributeValue::S(claim.body_sha256.clone()),
        ),
        (
            TTL_ATTRIBUTE.to_owned(),
            AttributeValue::N(claim.expires_at_secs.to_string()),
        ),
    ])
}

/// Whether a stored item is a replay claim rather than an event.
pub fn is_claim(item: &Item) -> bool {
    matches!(item.get(SORT_KEY), Some(AttributeValue::S(key)) if key == CLAIM_SORT_KEY)
}

/// Writes `claim` unless its token is bound to another body: one conditional
/// `PutItem` (`attribute_not_exists(pk) OR body_sha256 = :h`). The old item, when
/// the condition let the write through over one, tells a retry from a first claim.
pub async fn claim(
    client: &Client,
    table: &str,
    claim: &ReplayClaim,
) -> Result<ClaimOutcome, StoreError> {
    let result = client
        .put_item()
        .table_name(table)
        .set_item(Some(claim_item(claim)))
        .condition_expression("attribute_not_exists(#pk) OR #hash = :hash")
        .expression_attribute_names("#pk", PARTITION_KEY)
        .expression_attribute_names("#hash", BODY_SHA256)
        .expression_attribute_values(":hash", AttributeValue::S(claim.body_sha256.clone()))
        .return_values(ReturnValue::AllOld)
        .send()
        .await;
    match unless_condition_failed(result).map_err(store_error)? {
        Some(output) if output.attributes().is_some_and(|old| !old.is_empty()) => {
            Ok(ClaimOutcome::SameBody)
        }
        Some(_) => Ok(ClaimOutcome::New),
        None => Ok(ClaimOutcome::OtherBody),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{EmailEvent, EventType};
    use crate::store::codec;

    fn sample() -> ReplayClaim {
        ReplayClaim {
            provider: "mailgun",
            nonce: "tok".into(),
            body_sha256: "ab".repeat(32),
            expires_at_secs: 1_700_003_900,
        }
    }

    #[test]
    fn a_claim_item_carries_no_index_or_provider_attribute() {
        let item = claim_item(&sample());
        assert_eq!(
            item.get(PARTITION_KEY),
            Some(&AttributeValue::S("replay#mailgun#tok".into()))
        );
        assert_eq!(
            item.get(TTL_ATTRIBUTE),
            Some(&AttributeValue::N("1700003900".into()))
        );
        for absent in [codec::RECIPIENT, codec::SUPPRESSION, codec::PROVIDER] {
            assert!(!item.contains_key(absent), "{absent}");
        }
        assert!(is_claim(&item));
    }

    #[test]
    fn no_event_sort_key_is_a_claims_and_every_one_sorts_after_it() {
        for ms in [0, 1_700_000_000_000, codec::MAX_EVENT_TIME_MS] {
            let mut event = EmailEvent::new(
                "mailgun",
                EventType::Delivered,
                "delivered",
                "replay#mailgun#tok",
                ms,
                "{}".into(),
            );
            event.recipient = Some("a@b.c".into());
            let item = codec::encode(&event, 0, None);
            assert!(!is_claim(&item));
            let key = codec::sort_key(&event);
            assert!(key.as_str() > CLAIM_SORT_KEY, "{key}");
            assert!(codec::sort_key_from(ms).as_str() > CLAIM_SORT_KEY);
        }
    }
}
