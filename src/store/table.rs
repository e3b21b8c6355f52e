//! The events table's schema, as `template.yaml` declares it: created here for
//! the local run command, the tests and the benchmarks.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
};

use super::StoreError;
use super::codec::{
    INDEXES, Index, PARTITION_KEY, RECIPIENT, SORT_KEY, SUPPRESSION, TTL_ATTRIBUTE,
};
use super::errors::store_error;

/// Creates the events table exactly as `template.yaml` declares it: keys, the
/// recipient and suppression indexes with the attributes they copy
/// ([`Index::projected`]) and TTL.
pub async fn create_table(client: &Client, table: &str) -> Result<(), StoreError> {
    let key = |name: &str, key_type| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(key_type)
            .build()
            .map_err(build_error)
    };
    let string_attribute = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .map_err(build_error)
    };
    let index = |index: &Index| {
        let projection = Projection::builder()
            .projection_type(ProjectionType::Include)
            .set_non_key_attributes(Some(index.projected().map(str::to_owned).collect()))
            .build();
        GlobalSecondaryIndex::builder()
            .index_name(index.name)
            .key_schema(key(index.partition_key, KeyType::Hash)?)
            .key_schema(key(SORT_KEY, KeyType::Range)?)
            .projection(projection)
            .build()
            .map_err(build_error)
    };
    let [recipient_index, suppression_index] = &INDEXES;
    client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key(PARTITION_KEY, KeyType::Hash)?)
        .key_schema(key(SORT_KEY, KeyType::Range)?)
        .attribute_definitions(string_attribute(PARTITION_KEY)?)
        .attribute_definitions(string_attribute(SORT_KEY)?)
        .attribute_definitions(string_attribute(RECIPIENT)?)
        .attribute_definitions(string_attribute(SUPPRESSION)?)
        .global_secondary_indexes(index(recipient_index)?)
        .global_secondary_indexes(index(suppression_index)?)
        .send()
        .await
        .map_err(store_error)?;
    let ttl = TimeToLiveSpecification::builder()
        .enabled(true)
        .attribute_name(TTL_ATTRIBUTE)
        .build()
        .map_err(build_error)?;
    client
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(ttl)
        .send()
        .await
        .map_err(store_error)?;
    Ok(())
}

fn build_error(err: aws_sdk_dynamodb::error::BuildError) -> StoreError {
    StoreError::Other(err.to_string())
}
