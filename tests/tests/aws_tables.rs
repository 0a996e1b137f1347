//! The tables the tests and the emulator runs provision (`inlet_aws::provision`) are the
//! template's: for each of a stack's four tables, DynamoDB's own description of the
//! provisioned table (keys, attribute types, indexes with their keys and projections,
//! the stream, TTL) equals what the SAM template declares. A change to one that is not
//! made to the other fails here.

mod common;

use aws_sdk_dynamodb::Client;
use common::aws::Stack;
use common::{expanded_template, require_emulator};
use serde_json::{Value, json};
use std::collections::BTreeSet;

/// The parts of a table definition both sides state, in one comparable shape.
#[derive(Debug, PartialEq)]
struct Shape {
    keys: Vec<(String, String)>,
    attributes: BTreeSet<(String, String)>,
    indexes: Vec<Value>,
    stream: Option<String>,
    ttl: Option<String>,
}

fn keys(schema: &Value) -> Vec<(String, String)> {
    schema
        .as_array()
        .into_iter()
        .flatten()
        .map(|k| {
            (
                k["AttributeName"].as_str().unwrap().to_string(),
                k["KeyType"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn index(name: &str, key_schema: Value, projection_type: &str, non_keys: Vec<String>) -> Value {
    let non_keys: BTreeSet<String> = non_keys.into_iter().collect();
    json!({"name": name, "keys": keys(&key_schema), "projection": projection_type, "non_keys": non_keys})
}

/// The template's declaration of a table (its `Properties`).
fn declared(properties: &Value) -> Shape {
    Shape {
        keys: keys(&properties["KeySchema"]),
        attributes: properties["AttributeDefinitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                (
                    a["AttributeName"].as_str().unwrap().to_string(),
                    a["AttributeType"].as_str().unwrap().to_string(),
                )
            })
            .collect(),
        indexes: properties["GlobalSecondaryIndexes"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|i| {
                let non_keys = i["Projection"]["NonKeyAttributes"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|a| a.as_str().unwrap().to_string())
                    .collect();
                index(
                    i["IndexName"].as_str().unwrap(),
                    i["KeySchema"].clone(),
                    i["Projection"]["ProjectionType"].as_str().unwrap(),
                    non_keys,
                )
            })
            .collect(),
        stream: properties["StreamSpecification"]["StreamViewType"]
            .as_str()
            .map(str::to_string),
        ttl: (properties["TimeToLiveSpecification"]["Enabled"] == true).then(|| {
            properties["TimeToLiveSpecification"]["AttributeName"]
                .as_str()
                .unwrap()
                .to_string()
        }),
    }
}

/// DynamoDB's description of a provisioned table.
async fn provisioned(client: &Client, name: &str) -> Shape {
    let table = client
        .describe_table()
        .table_name(name)
        .send()
        .await
        .unwrap()
        .table
        .unwrap();
    let key_json = |schema: &[aws_sdk_dynamodb::types::KeySchemaElement]| {
        Value::Array(
            schema
                .iter()
                .map(|k| json!({"AttributeName": k.attribute_name(), "KeyType": k.key_type().as_str()}))
                .collect(),
        )
    };
    let ttl = client
        .describe_time_to_live()
        .table_name(name)
        .send()
        .await
        .unwrap()
        .time_to_live_description
        .filter(|t| {
            t.time_to_live_status()
                .is_some_and(|s| s.as_str() == "ENABLED")
        })
        .and_then(|t| t.attribute_name().map(str::to_string));
    Shape {
        keys: keys(&key_json(table.key_schema())),
        attributes: table
            .attribute_definitions()
            .iter()
            .map(|a| {
                (
                    a.attribute_name().to_string(),
                    a.attribute_type().as_str().to_string(),
                )
            })
            .collect(),
        indexes: table
            .global_secondary_indexes()
            .iter()
            .map(|i| {
                let projection = i.projection().unwrap();
                index(
                    i.index_name().unwrap(),
                    key_json(i.key_schema()),
                    projection.projection_type().unwrap().as_str(),
                    projection.non_key_attributes().to_vec(),
                )
            })
            .collect(),
        stream: table
            .stream_specification()
            .filter(|s| s.stream_enabled())
            .and_then(|s| s.stream_view_type())
            .map(|v| v.as_str().to_string()),
        ttl,
    }
}

#[tokio::test]
async fn provisioned_tables_are_the_template_s() {
    require_emulator();
    let template = expanded_template();
    let Stack { names, dynamo, .. } = Stack::for_environment("tables").await;
    for (resource, table) in [
        ("IdempotencyTable", &names.idempotency_table),
        ("EventsTable", &names.events_table),
        ("DirectoryTable", &names.directory_table),
        ("ConfigTable", &names.config_table),
    ] {
        let properties = &template["Resources"][resource]["Properties"];
        assert!(properties.is_object(), "the template has no {resource}");
        assert_eq!(
            provisioned(&dynamo, table).await,
            declared(properties),
            "{resource} as provisioned (left) and as the template declares it (right)"
        );
    }
}
