//! Small helpers for DynamoDB items.

use aws_sdk_dynamodb::types::AttributeValue;
use inlet_core::store::StoreError;
use std::collections::HashMap;

pub type Item = HashMap<String, AttributeValue>;

pub fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub fn n(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

pub fn get_s<'a>(item: &'a Item, name: &str) -> Result<&'a str, StoreError> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
        .ok_or_else(|| {
            StoreError::Failed(format!(
                "item attribute `{name}` is missing or not a string"
            ))
        })
}

pub fn get_n(item: &Item, name: &str) -> Result<i64, StoreError> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| {
            StoreError::Failed(format!(
                "item attribute `{name}` is missing or not a number"
            ))
        })
}

/// Reads the JSON document kept in attribute `name`.
pub fn get_json<T: serde::de::DeserializeOwned>(item: &Item, name: &str) -> Result<T, StoreError> {
    serde_json::from_str(get_s(item, name)?).map_err(|e| {
        StoreError::Failed(format!(
            "item attribute `{name}` is not the expected JSON: {e}"
        ))
    })
}

pub fn json<T: serde::Serialize>(value: &T) -> AttributeValue {
    s(serde_json::to_string(value).expect("plain data serialises"))
}

/// TTL attribute value: unix seconds.
pub fn ttl(ms: i64) -> AttributeValue {
    n(ms.div_euclid(1000))
}
