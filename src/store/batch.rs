//! The batch path for large requests: find which events are already stored
//! (`BatchGetItem`, 100 keys a call), then write only the missing ones
//! (`BatchWriteItem`, 25 items a call), retrying unprocessed keys and items with
//! a short backoff. Far fewer round trips than one conditional `PutItem` per
//! event, with duplicates still reported. A duplicate delivered concurrently
//! between the read and the write is overwritten by the same event (same key):
//! still one item, only its `received_at` changes.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, PutRequest, WriteRequest};
use futures_util::stream::{self, StreamExt, TryStreamExt};

use super::StoreError;
use super::codec::{PARTITION_KEY, SORT_KEY};
use super::errors::store_error;

/// Requests with more events than this take the batch path.
pub const BATCH_THRESHOLD: usize = 25;
/// DynamoDB's limit of keys per `BatchGetItem`.
const GET_CHUNK: usize = 100;
/// DynamoDB's limit of items per `BatchWriteItem`.
const WRITE_CHUNK: usize = 25;
/// Batch calls in flight for one request.
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

/// Backoff before the `attempt`-th retry of unprocessed keys or items.
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

/// Calls `call` with the pending requests until it reports none unprocessed,
/// backing off between calls; returns everything the calls found.
async fn until_processed<T, R, Fut>(
    mut pending: Vec<T>,
    call: impl Fn(Vec<T>) -> Fut,
) -> Result<Vec<R>, StoreError>
where
    Fut: Future<Output = Result<(Vec<R>, Vec<T>), StoreError>>,
{
    let mut found = Vec::new();
    let mut attempt = 0;
    while !pending.is_empty() {
        let (mut results, unprocessed) = call(pending).await?;
        found.append(&mut results);
        pending = unprocessed;
        if !pending.is_empty() {
            tokio::time::sleep(backoff(attempt)).await;
            attempt += 1;
        }
    }
    Ok(found)
}

async fn get_chunk(
    client: &Client,
    table: &str,
    keys: Vec<HashMap<String, AttributeValue>>,
) -> Result<Vec<Key>, StoreError> {
    until_processed(keys, |keys| get_once(client, table, keys)).await
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

/// Writes every item (plain puts: the caller has checked they are new).
pub async fn write_all(
    client: &Client,
    table: &str,
    items: Vec<HashMap<String, AttributeValue>>,
) -> Result<(), StoreError> {
    let mut chunks: Vec<Vec<WriteRequest>> = Vec::new();
    let mut requests = Vec::with_capacity(items.len());
    for item in items {
        let put = PutRequest::builder()
            .set_item(Some(item))
            .build()
            .map_err(|e| StoreError::Other(e.to_string()))?;
        requests.push(WriteRequest::builder().put_request(put).build());
    }
    while !requests.is_empty() {
        let rest = requests.split_off(requests.len().min(WRITE_CHUNK));
        chunks.push(std::mem::replace(&mut requests, rest));
    }
    stream::iter(chunks)
        .map(|chunk| write_chunk(client, table, chunk))
        .buffer_unordered(MAX_CONCURRENT_CALLS)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

async fn write_chunk(
    client: &Client,
    table: &str,
    requests: Vec<WriteRequest>,
) -> Result<(), StoreError> {
    until_processed(requests, |requests| write_once(client, table, requests)).await?;
    Ok(())
}

/// One `BatchWriteItem`: nothing found, and the writes left unprocessed.
async fn write_once(
    client: &Client,
    table: &str,
    requests: Vec<WriteRequest>,
) -> Result<(Vec<()>, Vec<WriteRequest>), StoreError> {
    let output = client
        .batch_write_item()
        .request_items(table, requests)
        .send()
        .await
        .map_err(store_error)?;
    let unprocessed = output
        .unprocessed_items()
        .and_then(|u| u.get(table))
        .cloned()
        .unwrap_or_default();
    Ok((Vec::new(), unprocessed))
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
