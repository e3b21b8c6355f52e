//! The read side of the events table: one message's timeline, one address's
//! events and the addresses not to mail again, decoded through the store's
//! codec. `mailhooks-cli` is built on it; nothing here prints or writes.
//!
//! Every read follows `LastEvaluatedKey` to the end; each takes an optional page
//! size (DynamoDB's `Limit`) so a caller can keep pages small.
//!
//! The address and suppression reads query an index, whose entries carry what the
//! views print but not the raw payload ([`crate::store::codec::INDEXES`]): their
//! events' `raw` is [`StoredRaw::Absent`](crate::store::codec::StoredRaw::Absent)
//! unless it was dropped. The timeline reads the table, raw payloads included.

pub mod quarantine;
mod since;
mod timeline;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::types::AttributeValue;

use crate::store::codec::{self, Item, SORT_KEY};
use crate::store::errors::{FailureKind, SdkFailure, classify};
use crate::store::quarantine::is_event_item;

pub use crate::store::codec::StoredEvent;
pub use crate::store::errors::error_chain;
pub use since::Since;
pub use timeline::{RecipientStatus, Suppression, Timeline, current_statuses, latest_per_address};

/// Why a read or a rewrite failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// The table does not exist at this endpoint.
    #[error("table {0} does not exist")]
    TableMissing(String),
    /// No event is stored under this message id.
    #[error("no events for message id {0}")]
    UnknownMessage(String),
    /// No quarantine record has an id starting with this.
    #[error("no quarantine record with id {0}")]
    UnknownRecord(String),
    /// A record id that is too short, not hex, or names several records.
    #[error("record id {0}: expected at least 6 hex digits of one record's id")]
    BadRecordId(String),
    /// A time that is neither RFC 3339 nor a date.
    #[error(
        "cannot read {0:?} as a time: expected RFC 3339 (2026-11-22T10:15:30Z) or a date (2026-11-22)"
    )]
    BadTime(String),
    /// No provider module has this name.
    #[error("unknown provider {name}: expected one of {known}")]
    UnknownProvider {
        /// The name asked for.
        name: String,
        /// The known names, comma-separated.
        known: String,
    },
    /// DynamoDB could not be reached or did not answer in time.
    #[error("cannot reach DynamoDB: {0}")]
    Unreachable(String),
    /// DynamoDB refused the credentials or the permissions.
    #[error("access denied: {0}")]
    AccessDenied(String),
    /// Any other DynamoDB failure.
    #[error("DynamoDB error: {0}")]
    Dynamo(String),
}

impl QueryError {
    /// The person's view of a classified SDK failure on `table`: what to fix.
    fn from_failure(failure: SdkFailure, table: &str) -> QueryError {
        match failure.kind {
            FailureKind::Unreachable => QueryError::Unreachable(failure.chain),
            FailureKind::NotFound => QueryError::TableMissing(table.to_owned()),
            FailureKind::Denied | FailureKind::BadCredentials => QueryError::AccessDenied(format!(
                "{}: {}",
                failure.code.unwrap_or_default(),
                failure.message.unwrap_or_default()
            )),
            FailureKind::BadResponse
            | FailureKind::Throttled
            | FailureKind::ServiceDown
            | FailureKind::Other => QueryError::Dynamo(failure.chain),
        }
    }
}

/// The events table, read through one client (and S3, for payloads archived there).
#[derive(Debug, Clone)]
pub struct EventsTable {
    pub(crate) client: Client,
    pub(crate) table: String,
    pub(crate) s3: Option<aws_sdk_s3::Client>,
}

impl EventsTable {
    /// The table `table` through `client`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        EventsTable {
            client,
            table: table.into(),
            s3: None,
        }
    }

    /// Reads raw payloads and quarantined bodies archived in S3 through `s3`
    /// (without it they are reported, not read).
    pub fn with_s3(mut self, s3: aws_sdk_s3::Client) -> Self {
        self.s3 = Some(s3);
        self
    }

    /// A Query of one partition of the table or an index, from `since` on.
    fn partition_query(
        &self,
        index: Option<&str>,
        partition_attribute: &str,
        value: &str,
        since: Option<&Since>,
        page_size: Option<i32>,
    ) -> QueryFluentBuilder {
        let mut condition = "#pk = :pk".to_owned();
        let mut request = self
            .client
            .query()
            .table_name(&self.table)
            .set_index_name(index.map(str::to_owned))
            .expression_attribute_names("#pk", partition_attribute)
            .expression_attribute_values(":pk", AttributeValue::S(value.to_owned()))
            .set_limit(page_size);
        if let Some(since) = since {
            condition.push_str(" AND #sk >= :since");
            request = request
                .expression_attribute_names("#sk", SORT_KEY)
                .expression_attribute_values(
                    ":since",
                    AttributeValue::S(since.as_str().to_owned()),
                );
        }
        request.key_condition_expression(condition)
    }

    /// Every item a Query matches, page after page, decoded.
    async fn query_events(
        &self,
        request: QueryFluentBuilder,
    ) -> Result<Vec<StoredEvent>, QueryError> {
        // Replay claims and quarantine records share the table, never an
        // event's key (store::replay, store::quarantine).
        self.query_all(request, |item| {
            is_event_item(item).then(|| codec::decode(item))
        })
        .await
    }

    /// Every item a Query matches, page after page, that `decode` reads.
    async fn query_all<T>(
        &self,
        request: QueryFluentBuilder,
        decode: impl Fn(&Item) -> Option<T>,
    ) -> Result<Vec<T>, QueryError> {
        let mut decoded = Vec::new();
        let mut start = None;
        loop {
            let page = request
                .clone()
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| self.classify(e))?;
            decoded.extend(page.items().iter().filter_map(&decode));
            start = page.last_evaluated_key;
            if start.is_none() {
                return Ok(decoded);
            }
        }
    }

    /// Sorts an SDK failure into what a user can act on.
    pub(crate) fn classify<E, R>(&self, err: SdkError<E, R>) -> QueryError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        QueryError::from_failure(classify(err), &self.table)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(kind: FailureKind) -> SdkFailure {
        SdkFailure {
            kind,
            code: Some("ExpiredTokenException".into()),
            message: Some("expired".into()),
            chain: "chain".into(),
            context: "context".into(),
        }
    }

    #[test]
    fn failures_become_what_a_user_can_act_on() {
        let read = |kind| QueryError::from_failure(failure(kind), "t");
        assert_eq!(
            read(FailureKind::NotFound),
            QueryError::TableMissing("t".into())
        );
        assert_eq!(
            read(FailureKind::Unreachable),
            QueryError::Unreachable("chain".into())
        );
        assert_eq!(
            read(FailureKind::BadCredentials),
            QueryError::AccessDenied("ExpiredTokenException: expired".into())
        );
        assert_eq!(
            read(FailureKind::BadResponse),
            QueryError::Dynamo("chain".into())
        );
        assert_eq!(
            read(FailureKind::Throttled),
            QueryError::Dynamo("chain".into())
        );
    }
}
