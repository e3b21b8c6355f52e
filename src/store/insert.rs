//! The write half of the batch path: conditional writes 25 at a time, as
//! PartiQL `INSERT` statements in one `BatchExecuteStatement` call. An `INSERT`
//! fails on its own (`DuplicateItem`) when the key is already stored, so one
//! call does what 25 conditional `PutItem`s do: a duplicate — even one
//! delivered concurrently by another request — is counted once and its item is
//! untouched (first `received_at` kept), at the round trips of the unconditional
//! `BatchWriteItem` it replaces.
//!
//! A statement throttled or failed inside DynamoDB is sent again with a short
//! backoff (the request's deadline bounds it). A call that fails as a whole
//! (after the SDK's retries) gives its items back as [`Inserted::NotRun`], for
//! the caller to write with conditional `PutItem`s: that is how a store that
//! does not run PartiQL — an implementation without it (some answer 500), a
//! role without `dynamodb:PartiQLInsert` from an older template — still gets
//! every event, and a store that is really down fails those writes too.

use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{BatchStatementErrorCodeEnum, BatchStatementRequest};
use futures_util::stream::{self, StreamExt, TryStreamExt};

use super::StoreError;
use super::codec::Item;

/// DynamoDB's limit of statements per `BatchExecuteStatement`.
const CHUNK: usize = 25;
/// Calls in flight for one request.
const MAX_CONCURRENT_CALLS: usize = 8;

/// What became of one item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    /// Written now.
    New,
    /// Its key was already stored: nothing written.
    Duplicate,
    /// The store did not run the statement (see the module docs): write it
    /// another way.
    NotRun,
}

/// Inserts every item unless its key is stored; one [`Inserted`] per item, in
/// order.
pub async fn insert_all(
    client: &Client,
    table: &str,
    items: Vec<Item>,
) -> Result<Vec<Inserted>, StoreError> {
    let mut chunks: Vec<Vec<BatchStatementRequest>> = Vec::new();
    let mut statements = Vec::with_capacity(items.len().min(CHUNK));
    for item in items {
        statements.push(statement(table, item)?);
        if statements.len() == CHUNK {
            chunks.push(std::mem::take(&mut statements));
        }
    }
    if !statements.is_empty() {
        chunks.push(statements);
    }
    let results: Vec<Vec<Inserted>> = stream::iter(chunks)
        .map(|chunk| insert_chunk(client, chunk))
        .buffered(MAX_CONCURRENT_CALLS)
        .try_collect()
        .await?;
    Ok(results.into_iter().flatten().collect())
}

/// `INSERT INTO "<table>" VALUE {'<name>': ?, ...}` with the item's values as
/// parameters. Names and the table are ours (never a sender's); quotes are
/// doubled all the same.
pub fn statement(table: &str, item: Item) -> Result<BatchStatementRequest, StoreError> {
    let mut text = format!("INSERT INTO \"{}\" VALUE {{", table.replace('"', "\"\""));
    let mut parameters = Vec::with_capacity(item.len());
    for (i, (name, value)) in item.into_iter().enumerate() {
        if i > 0 {
            text.push_str(", ");
        }
        text.push('\'');
        text.push_str(&name.replace('\'', "''"));
        text.push_str("': ?");
        parameters.push(value);
    }
    text.push('}');
    BatchStatementRequest::builder()
        .statement(text)
        .set_parameters(Some(parameters))
        .build()
        .map_err(|e| StoreError::Other(e.to_string()))
}

/// One chunk: the call, then again for the statements DynamoDB could not run
/// now, until each has an answer.
async fn insert_chunk(
    client: &Client,
    statements: Vec<BatchStatementRequest>,
) -> Result<Vec<Inserted>, StoreError> {
    let mut results = vec![Inserted::NotRun; statements.len()];
    let mut pending: Vec<usize> = (0..statements.len()).collect();
    let mut attempt = 0;
    while !pending.is_empty() {
        let batch = pending.iter().map(|&i| statements[i].clone()).collect();
        let sent = client
            .batch_execute_statement()
            .set_statements(Some(batch))
            .send()
            .await;
        let Ok(output) = sent else {
            // Not run: the caller writes what is left another way.
            return Ok(results);
        };
        let responses = output.responses();
        if responses.len() != pending.len() {
            // An answer we cannot pair with the statements: write them another way.
            return Ok(results);
        }
        let mut again = Vec::new();
        for (&i, response) in pending.iter().zip(responses) {
            match response.error().map(|e| e.code()) {
                None => results[i] = Inserted::New,
                Some(code) => match statement_outcome(code) {
                    Outcome::Done(inserted) => results[i] = inserted,
                    Outcome::Again => again.push(i),
                },
            }
        }
        pending = again;
        if !pending.is_empty() {
            tokio::time::sleep(backoff(attempt)).await;
            attempt += 1;
        }
    }
    Ok(results)
}

/// What a statement's error code means.
enum Outcome {
    /// Settled.
    Done(Inserted),
    /// DynamoDB could not run it now: send it again.
    Again,
}

fn statement_outcome(code: Option<&BatchStatementErrorCodeEnum>) -> Outcome {
    use BatchStatementErrorCodeEnum as Code;
    match code {
        Some(Code::DuplicateItem | Code::ConditionalCheckFailed) => {
            Outcome::Done(Inserted::Duplicate)
        }
        Some(
            Code::ThrottlingError
            | Code::ProvisionedThroughputExceeded
            | Code::RequestLimitExceeded
            | Code::InternalServerError
            | Code::TransactionConflict,
        ) => Outcome::Again,
        // Anything else (a validation error, a code added later): the item is
        // written with a conditional PutItem, whose error, if any, is precise.
        _ => Outcome::Done(Inserted::NotRun),
    }
}

/// Backoff before the `attempt`-th retry of statements DynamoDB could not run.
fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(10 << attempt.min(6))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::types::AttributeValue;

    #[test]
    fn a_statement_names_every_attribute_once_with_its_value_as_a_parameter() {
        let item = Item::from([
            ("message_id".to_owned(), AttributeValue::S("m-1".into())),
            ("it's".to_owned(), AttributeValue::N("1".into())),
        ]);
        let request = statement("events", item).unwrap();
        let text = request.statement();
        assert!(text.starts_with("INSERT INTO \"events\" VALUE {"), "{text}");
        assert!(
            text.contains("'message_id': ?") && text.contains("'it''s': ?"),
            "{text}"
        );
        assert_eq!(request.parameters().len(), 2);
    }

    #[test]
    fn duplicates_settle_and_throttling_is_sent_again() {
        use BatchStatementErrorCodeEnum as Code;
        let settled = |code| matches!(statement_outcome(Some(&code)), Outcome::Done(_));
        assert!(matches!(
            statement_outcome(Some(&Code::DuplicateItem)),
            Outcome::Done(Inserted::Duplicate)
        ));
        assert!(!settled(Code::ThrottlingError));
        assert!(!settled(Code::ProvisionedThroughputExceeded));
        assert!(matches!(
            statement_outcome(Some(&Code::ValidationError)),
            Outcome::Done(Inserted::NotRun)
        ));
    }
}
