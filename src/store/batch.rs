//! The read half of the batch path for large requests: which of a request's
//! keys are already stored (`BatchGetItem`, 100 keys a call, 8 calls in flight),
//! retrying unprocessed keys with a short backoff. The store then writes only the
//! missing events, each with a conditional `PutItem` (see
//! [`DynamoStore::put_batch`](super::DynamoStore::put_batch)).
//!
//! The read is a filter, not the judge: a whole batch sent again (the common
//! duplicate: a provider retrying after a timeout or a 5xx) costs half a read unit
//! per 4 KB item here instead of a failed conditional write per event (a failed
//! condition still costs a write unit). A duplicate delivered concurrently,
//! between this read and the write, is caught by the write's condition: counted
//! as a duplicate, its item untouched.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use futures_util::stream::{self, StreamExt, TryStreamExt};

use super::StoreError;
use super::codec::{PARTITION_KEY, SORT_KEY};
use super::errors::store_error;

/// Requests with more events than this take the batch path.
pub const BATCH_THRESHOLD: usize = 25;
/// DynamoDB's limit of keys per `BatchGetItem`.
const GET_CHUNK: usize = 100;
/// `BatchGetItem` calls in flight for one request.
const MAX_CONCURRENT_CALLS: usize = 8;

/// An item's key: message id and sort key.
pub type Key = (String, String);

fn key_attributes(key: &Key) -> HashMap<String, AttributeValue> {
    HashMap::from([
        (PARTITION_KEY.to_owned(), AttributeValue::S(key.0.clone())),
        (SORT_KEY.to_owned(), AttributeValue::S(key.1.clone())),
    ])
}

fn key_of(item: &HashMap<String, AttributeValue>) -> Option<Key> {
    let pk = item.get(PARTITION_KEY)?.as_s().ok()?;
    let sk = item.get(SORT_KEY)?.as_s().ok()?;
    Some((pk.clone(), sk.clone()))
}

/// Backoff before the `attempt`-th retry of unprocessed keys.
fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(10 << attempt.min(6))
}

/// The subset of `keys` already in the table.
pub async fn existing_keys(
    client: &Client,
    table: &str,
    keys: &[Key],
) -> Result<HashSet<Key>, StoreError> {
    let chunks: Vec<Vec<HashMap<String, AttributeValue>>> = keys
        .chunks(GET_CHUNK)
        .map(|c| c.iter().map(key_attributes).collect())
        .collect();
    let found: Vec<Vec<Key>> = stream::iter(chunks)
        .map(|chunk| get_chunk(client, table, chunk))
        .buffer_unordered(MAX_CONCURRENT_CALLS)
        .try_collect()
        .await?;
    Ok(found.into_iter().flatten().collect())
}

/// The keys of one chunk that are stored: `BatchGetItem` until no key is left
/// unprocessed, backing off between calls.
async fn get_chunk(
    client: &Client,
    table: &str,
    mut pending: Vec<HashMap<String, AttributeValue>>,
) -> Result<Vec<Key>, StoreError> {
    let mut found = Vec::new();
    let mut attempt = 0;
    while !pending.is_empty() {
        let (mut keys, unprocessed) = get_once(client, table, pending).await?;
        found.append(&mut keys);
        pending = unprocessed;
        if !pending.is_empty() {
            tokio::time::sleep(backoff(attempt)).await;
            attempt += 1;
        }
    }
    Ok(found)
}

/// One `BatchGetItem`: the keys found, and the keys left unprocessed.
async fn get_once(
    client: &Client,
    table: &str,
    keys: Vec<HashMap<String, AttributeValue>>,
) -> Result<(Vec<Key>, Vec<HashMap<String, AttributeValue>>), StoreError> {
    let request = KeysAndAttributes::builder()
        .set_keys(Some(keys))
        .projection_expression("#pk, #sk")
        .expression_attribute_names("#pk", PARTITION_KEY)
        .expression_attribute_names("#sk", SORT_KEY)
        .build()
        .map_err(|e| StoreError::Other(e.to_string()))?;
    let output = client
        .batch_get_item()
        .request_items(table, request)
        .send()
        .await
        .map_err(store_error)?;
    let found = output
        .responses()
        .and_then(|r| r.get(table))
        .map(|items| items.iter().filter_map(key_of).collect())
        .unwrap_or_default();
    let unprocessed = output
        .unprocessed_keys()
        .and_then(|u| u.get(table))
        .map(|k| k.keys().to_vec())
        .unwrap_or_default();
    Ok((found, unprocessed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_through_attributes() {
        let key = (
            "m-1".to_owned(),
            "2026-01-01T00:00:00.000Z#opened#abcd1234".to_owned(),
        );
        assert_eq!(key_of(&key_attributes(&key)), Some(key));
        assert_eq!(key_of(&HashMap::new()), None);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert_eq!(backoff(0), Duration::from_millis(10));
        assert_eq!(backoff(3), Duration::from_millis(80));
        assert_eq!(backoff(40), backoff(6));
    }
}
