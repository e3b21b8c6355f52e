//! Raw payloads too large for their DynamoDB item, archived gzip-compressed in
//! S3 when a bucket is configured (`RAW_BUCKET`). The object is written before
//! the item that points at it, and its key derives from the event key, so a
//! provider retry overwrites the same object and nothing ever dangles.

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use sha2::{Digest, Sha256};

use super::StoreError;
use super::codec::{self, ArchivedRaw, gzip_raw};
use super::errors::store_error;
use crate::event::EmailEvent;

/// An S3 bucket holding large raw payloads under `raw/`.
#[derive(Debug, Clone)]
pub struct RawArchive {
    client: Client,
    bucket: String,
}

/// The object key of an event's raw payload: `raw/<provider>/<hash of the event key>.json.gz`.
pub fn object_key(event: &EmailEvent) -> String {
    let mut hasher = Sha256::new();
    hasher.update(event.message_id.as_bytes());
    hasher.update([0]);
    hasher.update(codec::sort_key(event).as_bytes());
    format!(
        "raw/{}/{}.json.gz",
        event.provider,
        hex::encode(hasher.finalize())
    )
}

impl RawArchive {
    /// An archive writing to `bucket` through `client`.
    pub fn new(client: Client, bucket: impl Into<String>) -> Self {
        RawArchive {
            client,
            bucket: bucket.into(),
        }
    }

    /// Writes the event's raw payload, gzip-compressed; returns where it went.
    pub async fn put(&self, event: &EmailEvent) -> Result<ArchivedRaw, StoreError> {
        let body = gzip_raw(&event.raw).ok_or_else(|| StoreError::Other("gzip failed".into()))?;
        let key = object_key(event);
        self.put_compressed(&key, "application/json", body).await?;
        Ok(ArchivedRaw {
            bucket: self.bucket.clone(),
            key,
            bytes: event.raw.len(),
        })
    }

    /// Writes gzip-compressed bytes under `key`; returns the bucket.
    pub async fn put_compressed(
        &self,
        key: &str,
        content_type: &str,
        gz: Vec<u8>,
    ) -> Result<&str, StoreError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .content_encoding("gzip")
            .body(ByteStream::from(gz))
            .send()
            .await
            .map_err(store_error)?;
        Ok(&self.bucket)
    }
}

/// Reads an archived object back, decompressed.
pub async fn fetch(client: &Client, bucket: &str, key: &str) -> Result<Vec<u8>, StoreError> {
    let object = client
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(store_error)?;
    let gz = object
        .body
        .collect()
        .await
        .map_err(|e| StoreError::Unavailable(e.to_string()))?
        .into_bytes();
    codec::gunzip(&gz).ok_or_else(|| StoreError::Other(format!("{key}: not gzip")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventType;

    #[test]
    fn keys_derive_from_the_event_key() {
        let event = EmailEvent::new(
            "engagelab",
            EventType::Inbound,
            "route",
            "m-1",
            1,
            "{}".into(),
        );
        let key = object_key(&event);
        assert!(key.starts_with("raw/engagelab/") && key.ends_with(".json.gz"));
        assert_eq!(
            key,
            object_key(&event.clone()),
            "a retry writes the same object"
        );
        let mut other = event.clone();
        other.message_id = "m-2".into();
        assert_ne!(key, object_key(&other));
    }
}
