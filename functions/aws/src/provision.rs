//! Table creation for emulators and tests. In AWS the SAM template creates the tables;
//! these definitions are the template's (keys, the listing index and its projection, the
//! stream, TTL where the template turns it on), and `tests/tests/aws_tables.rs` compares
//! each provisioned table with the template's declaration.

use crate::StackNames;
use crate::error::store_error;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, StreamSpecification, StreamViewType,
    TimeToLiveSpecification,
};
use inlet_core::store::StoreError;

fn build_error(e: aws_sdk_dynamodb::error::BuildError) -> StoreError {
    StoreError::Failed(format!("building a table definition: {e}"))
}

fn key(name: &str, kind: KeyType) -> Result<KeySchemaElement, StoreError> {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(kind)
        .build()
        .map_err(build_error)
}

fn attr(name: &str) -> Result<AttributeDefinition, StoreError> {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .map_err(build_error)
}

/// Which of a stack's tables one is: what it has beyond `pk`/`sk` follows from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableKind {
    Idempotency,
    /// With `gsi1` (the listing index) and its stream (`NEW_IMAGE`).
    Events,
    Directory,
    Config,
}

impl TableKind {
    /// Whether items expire on `expires_at` (idempotency records and events do; the
    /// directory and the config are kept).
    fn expires(self) -> bool {
        matches!(self, TableKind::Idempotency | TableKind::Events)
    }
}

/// Creates one `pk`/`sk` table of `kind`, as the template declares it.
pub async fn create_table(client: &Client, name: &str, kind: TableKind) -> Result<(), StoreError> {
    let events_table = kind == TableKind::Events;
    let mut request = client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key("pk", KeyType::Hash)?)
        .key_schema(key("sk", KeyType::Range)?)
        .attribute_definitions(attr("pk")?)
        .attribute_definitions(attr("sk")?);
    if events_table {
        request = request
            .stream_specification(
                StreamSpecification::builder()
                    .stream_enabled(true)
                    .stream_view_type(StreamViewType::NewImage)
                    .build()
                    .map_err(build_error)?,
            )
            .attribute_definitions(attr("gsi1pk")?)
            .attribute_definitions(attr("gsi1sk")?)
            .global_secondary_indexes(
                GlobalSecondaryIndex::builder()
                    .index_name("gsi1")
                    .key_schema(key("gsi1pk", KeyType::Hash)?)
                    .key_schema(key("gsi1sk", KeyType::Range)?)
                    .projection(
                        Projection::builder()
                            .projection_type(ProjectionType::Include)
                            .set_non_key_attributes(Some(
                                crate::events::LISTING_ATTRIBUTES
                                    .iter()
                                    .map(|a| a.to_string())
                                    .collect(),
                            ))
                            .build(),
                    )
                    .build()
                    .map_err(build_error)?,
            );
    }
    request
        .send()
        .await
        .map_err(|e| store_error("create table", e))?;
    if !kind.expires() {
        return Ok(());
    }
    client
        .update_time_to_live()
        .table_name(name)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .enabled(true)
                .attribute_name("expires_at")
                .build()
                .map_err(build_error)?,
        )
        .send()
        .await
        .map_err(|e| store_error("enable TTL", e))?;
    Ok(())
}

/// Creates the four tables of a stack.
pub async fn create_tables(client: &Client, names: &StackNames) -> Result<(), StoreError> {
    create_table(client, &names.idempotency_table, TableKind::Idempotency).await?;
    create_table(client, &names.events_table, TableKind::Events).await?;
    create_table(client, &names.directory_table, TableKind::Directory).await?;
    create_table(client, &names.config_table, TableKind::Config).await
}
