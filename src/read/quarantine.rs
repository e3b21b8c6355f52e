//! The quarantine, read and replayed: list the records (one Query per
//! provider partition), show one, and re-run today's parsers over them. What
//! parses now is stored as normal events, idempotently and with the record's
//! first receipt time; the record is then marked resolved (kept, with the keys
//! of what it became). Replaying twice stores once: a resolved record is not
//! replayed again, and a replay cut short is completed by the next one.

use aws_sdk_dynamodb::types::AttributeValue;
use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{EventsTable, QueryError};
use crate::providers::{self, Inbound, Parsed, PartScope, Provider};
use crate::store::codec::{self, PARTITION_KEY, SORT_KEY};
use crate::store::errors::unless_condition_failed;
use crate::store::quarantine::{
    self, LISTED_ATTRIBUTES, MAX_RESOLVED_KEYS, RESOLVED_AT, RESOLVED_COUNT, RESOLVED_INTO,
    SORT_PREFIX, StoredBody, StoredRecord,
};
use crate::store::{DynamoStore, EventStore, archive};

/// Shortest id prefix `show` accepts (hex digits of the SHA-256).
pub const MIN_ID_PREFIX: usize = 6;

/// What a replay makes, or would make, of one record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// Today's parser reads it: events (and maybe smaller parts still unreadable).
    Parses {
        /// Events it normalizes into.
        events: usize,
        /// Of those, written now (0 on a dry run).
        stored: usize,
        /// Of those, already in the table.
        duplicates: usize,
        /// Parts of it that still do not parse, quarantined on their own.
        requarantined: usize,
    },
    /// Today's parser still refuses it, with this error class.
    StillFails {
        /// The error class now.
        code: String,
    },
    /// Its body cannot be replayed (cut to fit the item, in S3 with no S3
    /// access, unreadable), or it names a provider this build lacks.
    Skipped {
        /// Why.
        reason: String,
    },
    /// The replay of this record failed (the store refused a write); the
    /// others went on, and replaying again completes it.
    Failed {
        /// What failed.
        error: String,
    },
}

/// One record's line in a replay report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Replayed {
    /// The provider's route name.
    pub provider: String,
    /// The record id (hex SHA-256 of its body).
    pub id: String,
    /// The error class it was quarantined with.
    pub error_code: String,
    /// What the replay made of it.
    #[serde(flatten)]
    pub verdict: Verdict,
}

/// What a replay did (or, without `apply`, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReplayReport {
    /// Whether anything was written.
    pub applied: bool,
    /// Records already resolved by an earlier replay, left alone.
    pub already_resolved: usize,
    /// Every unresolved record, with its verdict.
    pub records: Vec<Replayed>,
}

impl EventsTable {
    /// Every quarantine record of `provider` (or of every provider), oldest first.
    pub async fn quarantine_records(
        &self,
        provider: Option<&str>,
        page_size: Option<i32>,
    ) -> Result<Vec<StoredRecord>, QueryError> {
        let names = match provider {
            Some(name) => vec![self::provider(name)?.name()],
            None => providers::ALL.iter().map(|p| p.name()).collect(),
        };
        let mut records = Vec::new();
        for name in names {
            let listed = self.records_with_prefix(name, "", page_size, false);
            records.extend(listed.await?);
        }
        records.sort_by(|a, b| (&a.received_at, &a.id).cmp(&(&b.received_at, &b.id)));
        Ok(records)
    }

    /// The one record of `provider` whose id starts with `id_prefix`.
    pub async fn quarantine_record(
        &self,
        provider: &str,
        id_prefix: &str,
    ) -> Result<StoredRecord, QueryError> {
        let name = self::provider(provider)?.name();
        let prefix = id_prefix.trim().to_ascii_lowercase();
        if prefix.len() < MIN_ID_PREFIX || !prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(QueryError::BadRecordId(id_prefix.to_owned()));
        }
        let mut found = self.records_with_prefix(name, &prefix, None, true).await?;
        match found.len() {
            1 => Ok(found.remove(0)),
            0 => Err(QueryError::UnknownRecord(id_prefix.to_owned())),
            _ => Err(QueryError::BadRecordId(format!(
                "{id_prefix} (matches {} records; give more digits)",
                found.len()
            ))),
        }
    }

    /// The body of a record: from the item, or from S3 when archived there.
    pub async fn quarantine_body(&self, record: &StoredRecord) -> Result<Vec<u8>, String> {
        match &record.body {
            StoredBody::Inline(bytes) => Ok(bytes.clone()),
            StoredBody::Truncated(_) => {
                Err("body was cut to fit the item (no RAW_BUCKET configured)".into())
            }
            StoredBody::Unreadable => Err("body is unreadable".into()),
            StoredBody::NotRead => Err("body not read (listed without it)".into()),
            StoredBody::Archived { bucket, key } => match &self.s3 {
                Some(s3) => archive::fetch(s3, bucket, key)
                    .await
                    .map_err(|e| format!("s3://{bucket}/{key}: {e}")),
                None => Err(format!(
                    "body is in s3://{bucket}/{key}; no S3 access configured"
                )),
            },
        }
    }

    /// Re-runs today's parsers over every unresolved record (of `provider`);
    /// with `apply`, stores what parses and marks the record resolved.
    pub async fn replay_quarantine(
        &self,
        provider: Option<&str>,
        apply: bool,
        now_ms: i64,
    ) -> Result<ReplayReport, QueryError> {
        let mut report = ReplayReport {
            applied: apply,
            ..ReplayReport::default()
        };
        // Listed without bodies; each record is read whole only when replayed,
        // so memory holds one body at a time.
        for listed in self.quarantine_records(provider, None).await? {
            if listed.resolved_at.is_some() {
                report.already_resolved += 1;
                continue;
            }
            let record = match self.quarantine_record(&listed.provider, &listed.id).await {
                Ok(record) => record,
                Err(err) => {
                    report.records.push(Replayed {
                        provider: listed.provider,
                        id: listed.id,
                        error_code: listed.error_code,
                        verdict: Verdict::Failed {
                            error: err.to_string(),
                        },
                    });
                    continue;
                }
            };
            let verdict = self
                .replay_one(&record, apply, now_ms)
                .await
                .unwrap_or_else(|err| Verdict::Failed {
                    error: err.to_string(),
                });
            report.records.push(Replayed {
                provider: record.provider,
                id: record.id,
                error_code: record.error_code,
                verdict,
            });
        }
        Ok(report)
    }

    async fn replay_one(
        &self,
        record: &StoredRecord,
        apply: bool,
        now_ms: i64,
    ) -> Result<Verdict, QueryError> {
        let skipped = |reason: String| Ok(Verdict::Skipped { reason });
        let Some(provider) = providers::by_name(&record.provider) else {
            return skipped(format!("no provider {} in this build", record.provider));
        };
        let body = match self.quarantine_body(record).await {
            Ok(body) => body,
            Err(reason) => return skipped(reason),
        };
        let parsed = parse_again(provider, record, &body);
        if let Some(same) = parsed.unparsed.iter().find(|part| part.body == body) {
            return Ok(Verdict::StillFails {
                code: same.code.to_owned(),
            });
        }
        let mut verdict = Verdict::Parses {
            events: parsed.events.len(),
            stored: 0,
            duplicates: 0,
            requarantined: parsed.unparsed.len(),
        };
        if apply {
            let (stored, duplicates) = self.store_replayed(provider, record, &parsed).await?;
            self.mark_resolved(record, &parsed, now_ms).await?;
            if let Verdict::Parses {
                stored: s,
                duplicates: d,
                ..
            } = &mut verdict
            {
                (*s, *d) = (stored, duplicates);
            }
        }
        Ok(verdict)
    }

    /// Stores the events and the still-unreadable parts of a replayed record,
    /// as if received when the record was; returns (stored, duplicates).
    async fn store_replayed(
        &self,
        provider: &dyn Provider,
        record: &StoredRecord,
        parsed: &Parsed,
    ) -> Result<(usize, usize), QueryError> {
        let received_at_ms = receipt_ms(record);
        let store = DynamoStore::new(self.client.clone(), &self.table, retention_days(record));
        let failed = |e: crate::store::StoreError| QueryError::Dynamo(e.to_string());
        let outcome = if parsed.events.is_empty() {
            Default::default()
        } else {
            (store.put_events(&parsed.events, received_at_ms).await).map_err(failed)?
        };
        if !parsed.unparsed.is_empty() {
            let content_type = record.content_type.as_deref();
            (store.quarantine(
                provider.name(),
                &parsed.unparsed,
                content_type,
                received_at_ms,
            ))
            .await
            .map_err(failed)?;
        }
        Ok((outcome.stored, outcome.duplicates))
    }

    /// Marks a record resolved with the keys of what it became (once: a
    /// concurrent replay that got there first is left as it is).
    async fn mark_resolved(
        &self,
        record: &StoredRecord,
        parsed: &Parsed,
        now_ms: i64,
    ) -> Result<(), QueryError> {
        let count = parsed.events.len() + parsed.unparsed.len();
        let into: Vec<AttributeValue> = parsed
            .events
            .iter()
            .map(|e| format!("{} {}", e.message_id, codec::sort_key(e)))
            .chain(parsed.unparsed.iter().map(|part| {
                let id = quarantine::record_id(&part.body);
                format!(
                    "{} {}",
                    quarantine::partition_key(&record.provider),
                    quarantine::sort_key(&id)
                )
            }))
            .take(MAX_RESOLVED_KEYS)
            .map(AttributeValue::S)
            .collect();
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(
                PARTITION_KEY,
                AttributeValue::S(quarantine::partition_key(&record.provider)),
            )
            .key(
                SORT_KEY,
                AttributeValue::S(quarantine::sort_key(&record.id)),
            )
            .update_expression("SET #at = :at, #into = :into, #count = :count")
            .condition_expression("attribute_exists(#pk) AND attribute_not_exists(#at)")
            .expression_attribute_names("#pk", PARTITION_KEY)
            .expression_attribute_names("#at", RESOLVED_AT)
            .expression_attribute_names("#into", RESOLVED_INTO)
            .expression_attribute_names("#count", RESOLVED_COUNT)
            .expression_attribute_values(":count", AttributeValue::N(count.to_string()))
            .expression_attribute_values(
                ":at",
                AttributeValue::S(crate::event::format_rfc3339_ms(now_ms)),
            )
            .expression_attribute_values(":into", AttributeValue::L(into))
            .send()
            .await;
        unless_condition_failed(result).map_err(|e| self.classify(e))?;
        Ok(())
    }

    /// The records of one provider whose id starts with `id_prefix` ("" for
    /// all), with their bodies or without ([`StoredBody::NotRead`]).
    async fn records_with_prefix(
        &self,
        provider: &str,
        id_prefix: &str,
        page_size: Option<i32>,
        with_body: bool,
    ) -> Result<Vec<StoredRecord>, QueryError> {
        let mut request = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
            .expression_attribute_names("#pk", PARTITION_KEY)
            .expression_attribute_names("#sk", SORT_KEY)
            .expression_attribute_values(
                ":pk",
                AttributeValue::S(quarantine::partition_key(provider)),
            )
            .expression_attribute_values(
                ":prefix",
                AttributeValue::S(format!("{SORT_PREFIX}{id_prefix}")),
            )
            .set_limit(page_size);
        if !with_body {
            let mut names = Vec::with_capacity(LISTED_ATTRIBUTES.len());
            for (i, attribute) in LISTED_ATTRIBUTES.iter().enumerate() {
                let name = format!("#a{i}");
                request = request.expression_attribute_names(&name, *attribute);
                names.push(name);
            }
            request = request.projection_expression(names.join(", "));
        }
        self.query_all(request, quarantine::decode).await
    }
}

/// The provider named `name`, or the error listing the known ones.
fn provider(name: &str) -> Result<&'static dyn Provider, QueryError> {
    providers::by_name(name).ok_or_else(|| QueryError::UnknownProvider {
        name: name.to_owned(),
        known: providers::ALL
            .iter()
            .map(|p| p.name())
            .collect::<Vec<_>>()
            .join(", "),
    })
}

/// Today's parse of a record's body: a whole request as the handler would
/// read it (the kept `Content-Type` is the one header a parser may look at),
/// one event as re-normalization reads `raw`.
fn parse_again(provider: &dyn Provider, record: &StoredRecord, body: &[u8]) -> Parsed {
    if record.scope == PartScope::Event {
        let mut parsed = Parsed::whole(body, provider.parse(body));
        for part in &mut parsed.unparsed {
            part.scope = PartScope::Event;
        }
        codec::quarantine_unkeyable(body, &mut parsed);
        return parsed;
    }
    let headers: Vec<(String, String)> = record
        .content_type
        .iter()
        .map(|ct| ("content-type".to_owned(), ct.clone()))
        .collect();
    let inbound = Inbound {
        headers: &headers,
        query: &[],
        body,
    };
    let mut parsed = provider.parse_each(&inbound);
    codec::quarantine_unkeyable(body, &mut parsed);
    parsed
}

/// When the record's request arrived (Unix ms); 0 if unreadable.
fn receipt_ms(record: &StoredRecord) -> i64 {
    OffsetDateTime::parse(&record.received_at, &Rfc3339)
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
        .unwrap_or(0)
}

/// The retention the record was written with, so its events expire with it.
fn retention_days(record: &StoredRecord) -> Option<u32> {
    let expires = record.expires_at?;
    let days = (expires - receipt_ms(record) / 1000) / 86_400;
    u32::try_from(days).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(received_at: &str, expires_at: Option<i64>) -> StoredRecord {
        StoredRecord {
            provider: "postmark".into(),
            id: "ab".repeat(32),
            received_at: received_at.into(),
            error_code: "invalid_json".into(),
            error: "invalid JSON".into(),
            content_type: Some("application/json".into()),
            scope: PartScope::Request,
            body_bytes: 1,
            body: StoredBody::Inline(b"{".to_vec()),
            expires_at,
            resolved_at: None,
            resolved_into: Vec::new(),
            resolved_count: 0,
        }
    }

    #[test]
    fn replayed_events_keep_the_records_receipt_and_retention() {
        let kept = record(
            "2023-11-14T22:13:20.000Z",
            Some(1_700_000_000 + 30 * 86_400),
        );
        assert_eq!(receipt_ms(&kept), 1_700_000_000_000);
        assert_eq!(retention_days(&kept), Some(30));
        assert_eq!(
            retention_days(&record("2023-11-14T22:13:20.000Z", None)),
            None
        );
    }

    #[test]
    fn an_event_part_is_read_again_as_raw_not_as_a_request() {
        // Mandrill requests are forms; one event of one is bare JSON.
        let mandrill = providers::by_name("mandrill").unwrap();
        let mut part = record("2023-11-14T22:13:20.000Z", None);
        part.scope = PartScope::Event;
        let event = br#"{"event":"send","ts":1700000000,"_id":"m-1","msg":{"email":"a@b.c","ts":1700000000}}"#;
        let again = parse_again(mandrill, &part, event);
        assert_eq!(
            (again.events.len(), again.unparsed.len()),
            (1, 0),
            "{again:?}"
        );
        part.scope = PartScope::Request;
        assert_eq!(parse_again(mandrill, &part, event).events.len(), 0);
    }

    #[test]
    fn a_fixed_body_parses_and_a_broken_one_still_fails() {
        let postmark = providers::by_name("postmark").unwrap();
        let broken = record("2023-11-14T22:13:20.000Z", None);
        let again = parse_again(postmark, &broken, b"{");
        assert_eq!(again.unparsed.len(), 1);
        assert_eq!(again.unparsed[0].body, b"{");
        let body = br#"{"RecordType":"Delivery","MessageID":"m-1","Recipient":"a@b.c","DeliveredAt":"2023-11-14T22:13:20Z"}"#;
        let fixed = parse_again(postmark, &broken, body);
        assert_eq!((fixed.events.len(), fixed.unparsed.len()), (1, 0));
    }
}
