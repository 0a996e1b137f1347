//! The commit's idempotency scope: reading the record that holds it (step 1), claiming
//! it for this event (step 2) and giving it up when this event will not be stored (see
//! the commit's steps in the module docs of [`super`]).

use super::DynamoEventLog;
use super::build_error;
use super::items::{SCOPE_ATTRIBUTE, WRITER_ATTRIBUTE};

use crate::error::store_error;
use crate::event_key::event_pk;
use crate::item::{get_s, n, s};
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    ConditionCheck, Delete, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
};
use inlet_core::store::{IdempotencyClaim, StoreError};

/// Who holds an idempotency scope after a claim.
pub(super) enum Claim {
    Won,
    HeldBy(String),
}

impl DynamoEventLog {
    /// The event holding `claim`'s scope, from a read of its record.
    pub(super) async fn read_holder(
        &self,
        claim: &IdempotencyClaim,
    ) -> Result<Option<String>, StoreError> {
        let item = self
            .client
            .get_item()
            .table_name(&self.idempotency_table)
            .key("pk", s(claim.scope.storage_key()))
            .key("sk", s("CLAIM"))
            .send()
            .await
            .map_err(|e| store_error("idempotency read", e))?
            .item;
        Ok(match item {
            Some(item) => crate::idempotency::holder_of(&item, claim.now_ms)?,
            None => None,
        }
        .map(|record| record.event_id))
    }

    /// Claims `claim`'s scope for `event_id`, on condition that it is free.
    pub(super) async fn claim(
        &self,
        event_id: &str,
        claim: &IdempotencyClaim,
        event_expires_at_ms: i64,
    ) -> Result<Claim, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.idempotency_table)
            .set_item(Some(crate::idempotency::record_item(
                &claim.scope,
                event_id,
                claim.expires_at_ms.min(event_expires_at_ms),
            )))
            .condition_expression(crate::idempotency::SCOPE_IS_FREE)
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":now", n(claim.now_ms))
            .expression_attribute_values(":completed", s("completed"))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(Claim::Won),
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {
                let old = match e.into_err() {
                    PutItemError::ConditionalCheckFailedException(c) => c.item,
                    _ => None,
                };
                old.as_ref()
                    .and_then(|item| get_s(item, "event_id").ok().map(str::to_string))
                    .map(Claim::HeldBy)
                    .ok_or_else(|| {
                        StoreError::Failed(
                            "the idempotency condition failed without returning the record".into(),
                        )
                    })
            }
            Err(e) => Err(store_error("idempotency claim", e)),
        }
    }

    /// Gives up the scope `claim` won for `event_id`, whose event this commit (`writer`)
    /// will not store (its write was refused for good, or the id is another event's):
    /// deletes the record on condition that it still names `event_id` *and* that no
    /// item `event_id` was stored by this commit or for this scope. One transaction (the
    /// one place the commit pays for one, and only on these failures): a plain
    /// conditional delete could remove the record under an event another delivery
    /// stored as `event_id` meanwhile (step 4), and a third delivery would be accepted
    /// again.
    pub(super) async fn release(
        &self,
        claim: &IdempotencyClaim,
        event_id: &str,
        writer: &str,
    ) -> Result<(), StoreError> {
        let delete = Delete::builder()
            .table_name(&self.idempotency_table)
            .key("pk", s(claim.scope.storage_key()))
            .key("sk", s("CLAIM"))
            .condition_expression("event_id = :id")
            .expression_attribute_values(":id", s(event_id))
            .build()
            .map_err(build_error)?;
        let not_stored_for_it = ConditionCheck::builder()
            .table_name(&self.table)
            .key("pk", s(event_pk(event_id)))
            .key("sk", s("EVENT"))
            .condition_expression(
                "attribute_not_exists(pk) OR (#writer <> :writer AND \
                 (attribute_not_exists(#scope) OR #scope <> :scope))",
            )
            .expression_attribute_names("#writer", WRITER_ATTRIBUTE)
            .expression_attribute_names("#scope", SCOPE_ATTRIBUTE)
            .expression_attribute_values(":writer", s(writer))
            .expression_attribute_values(":scope", s(claim.scope.storage_key()))
            .build()
            .map_err(build_error)?;
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().delete(delete).build())
            .transact_items(
                TransactWriteItem::builder()
                    .condition_check(not_stored_for_it)
                    .build(),
            )
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // Another delivery holds the scope now, or stored the event: nothing of this
            // commit to give up.
            Err(e)
                if matches!(
                    e.as_service_error(),
                    Some(TransactWriteItemsError::TransactionCanceledException(c))
                        if c.cancellation_reasons().iter().any(|r| r.code() == Some("ConditionalCheckFailed"))
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(store_error("idempotency release", e)),
        }
    }
}
