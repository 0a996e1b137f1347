//! Idempotency on DynamoDB: one conditional `PutItem` claims a key; `UpdateItem`
//! completes it and `DeleteItem` releases it, each conditional on the claim's event id.
//! DynamoDB deletes expired items lazily (or, in emulators, never), so the claim's
//! condition compares the stored expiry with now itself.

use crate::error::store_error;
use crate::item::{Item, get_n, get_s, n, s, ttl};
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure;
use inlet_core::store::{
    ClaimOutcome, ClaimState, ClaimTimes, IdempotencyRecord, IdempotencyScope, IdempotencyStore,
    StoreError,
};

pub struct DynamoIdempotency {
    pub client: Client,
    pub table: String,
}

fn record_of(item: &Item) -> Result<IdempotencyRecord, StoreError> {
    Ok(IdempotencyRecord {
        event_id: get_s(item, "event_id")?.to_string(),
        state: ClaimState::parse(get_s(item, "status")?).unwrap_or(ClaimState::Completed),
        expires_at_ms: get_n(item, "expires_at_ms")?,
        in_progress_until_ms: get_n(item, "in_progress_until_ms")?,
    })
}

#[async_trait]
impl IdempotencyStore for DynamoIdempotency {
    async fn claim(
        &self,
        scope: &IdempotencyScope,
        event_id: &str,
        times: ClaimTimes,
    ) -> Result<ClaimOutcome, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(scope.storage_key()))
            .item("sk", s("CLAIM"))
            .item("event_id", s(event_id))
            .item("status", s("in_progress"))
            .item("expires_at_ms", n(times.expires_at_ms))
            .item("in_progress_until_ms", n(times.in_progress_until_ms))
            .item("expires_at", ttl(times.expires_at_ms))
            .condition_expression(
                "attribute_not_exists(pk) OR expires_at_ms <= :now \
                 OR (#status = :in_progress AND in_progress_until_ms <= :now)",
            )
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":now", n(times.now_ms))
            .expression_attribute_values(":in_progress", s("in_progress"))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(ClaimOutcome::Claimed),
            Err(error) => match error.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(failed)) => {
                    let old = failed.item().ok_or_else(|| {
                        StoreError::Failed("conditional check failed without the old item".into())
                    })?;
                    // The condition failed, so the record still counts; read what it says.
                    Ok(record_of(old)?.blocks_claim(times.now_ms).unwrap_or(
                        ClaimOutcome::InFlight {
                            original_event_id: get_s(old, "event_id")?.to_string(),
                            retry_after_ms: 1000,
                        },
                    ))
                }
                _ => Err(store_error("idempotency claim", error)),
            },
        }
    }

    async fn complete(
        &self,
        scope: &IdempotencyScope,
        event_id: &str,
        _now_ms: i64,
    ) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(scope.storage_key()))
            .key("sk", s("CLAIM"))
            .update_expression("SET #status = :completed")
            .condition_expression("event_id = :event_id")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":completed", s("completed"))
            .expression_attribute_values(":event_id", s(event_id))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(store_error("idempotency complete", e)),
        }
    }

    async fn release(&self, scope: &IdempotencyScope, event_id: &str) -> Result<(), StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(scope.storage_key()))
            .key("sk", s("CLAIM"))
            .condition_expression("event_id = :event_id AND #status = :in_progress")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":event_id", s(event_id))
            .expression_attribute_values(":in_progress", s("in_progress"))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(store_error("idempotency release", e)),
        }
    }
}
