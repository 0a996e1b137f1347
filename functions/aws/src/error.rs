//! SDK errors → core errors. Throttling, server errors, transport failures, conflicts
//! with a concurrent transaction and transactions cancelled for one of those reasons
//! may pass if retried (`Unavailable`); everything else is `Failed`.

use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use inlet_core::store::StoreError;

const RETRYABLE_CODES: [&str; 10] = [
    "ThrottlingException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "InternalServerError",
    "ServiceUnavailable",
    "TransactionInProgressException",
    "TransactionConflictException",
    "TooManyRequestsException",
    "RequestThrottled",
    "InternalFailure",
];

/// The reasons of a cancelled transaction that may pass if it is sent again: an item of
/// it was throttled or written by another request at the same moment.
const RETRYABLE_CANCELLATION_REASONS: [&str; 3] = [
    "ThrottlingError",
    "ProvisionedThroughputExceeded",
    "TransactionConflict",
];

/// Whether `error` is a cancelled transaction that may pass if sent again.
fn retryable_cancellation(error: &(dyn std::error::Error + 'static)) -> bool {
    use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
    let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) =
        error.downcast_ref::<TransactWriteItemsError>()
    else {
        return false;
    };
    cancelled.cancellation_reasons().iter().any(|reason| {
        reason
            .code()
            .is_some_and(|code| RETRYABLE_CANCELLATION_REASONS.contains(&code))
    })
}

/// Classifies any SDK error of any AWS client.
pub fn store_error<E, R>(operation: &str, error: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let detail = format!("{operation}: {}", DisplayErrorContext(&error));
    if missing_credentials(&error) {
        // The SDK's own text lists every provider it tried, with internals; a person
        // at a terminal needs what to do.
        return StoreError::Unavailable(format!(
            "{operation}: no AWS credentials found (set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or run `aws sso login`)"
        ));
    }
    match &error {
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or_default();
            if RETRYABLE_CODES.contains(&code) || retryable_cancellation(service.err()) {
                StoreError::Unavailable(detail)
            } else {
                StoreError::Failed(detail)
            }
        }
        _ => StoreError::Unavailable(detail),
    }
}

/// Whether the request never left because no credential provider gave credentials.
fn missing_credentials<E, R>(error: &SdkError<E, R>) -> bool
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let SdkError::DispatchFailure(failure) = error else {
        return false;
    };
    let mut source: Option<&(dyn std::error::Error + 'static)> =
        failure.as_connector_error().map(|e| e as _);
    while let Some(error) = source {
        // Not loaded (no provider had any) or a provider failing (on a laptop, the
        // instance metadata service that is not there): no usable credentials.
        if error
            .downcast_ref::<aws_credential_types::provider::error::CredentialsError>()
            .is_some()
        {
            return true;
        }
        source = error.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn missing_credentials_are_said_in_one_line() {
        // A client with no credential provider at all: the request fails before it leaves.
        let config = aws_sdk_dynamodb::Config::builder()
            .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
            .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
            .credentials_provider(
                aws_credential_types::provider::SharedCredentialsProvider::new(NoCredentials),
            )
            .endpoint_url("http://127.0.0.1:9")
            .build();
        let client = aws_sdk_dynamodb::Client::from_conf(config);
        let error = client.list_tables().send().await.unwrap_err();
        let message = store_error("read config", error).to_string();
        assert!(
            message.contains("read config: no AWS credentials found (set AWS_PROFILE"),
            "{message}"
        );
        assert!(!message.contains('\n'), "{message}");
    }

    fn cancelled(reasons: &[&str]) -> StoreError {
        use aws_sdk_dynamodb::config::http::HttpResponse;
        use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
        use aws_sdk_dynamodb::types::CancellationReason;
        use aws_sdk_dynamodb::types::error::TransactionCanceledException;
        let mut exception = TransactionCanceledException::builder().message("cancelled");
        for code in reasons {
            exception =
                exception.cancellation_reasons(CancellationReason::builder().code(*code).build());
        }
        let error = TransactWriteItemsError::TransactionCanceledException(exception.build());
        let raw = HttpResponse::new(
            400.try_into().unwrap(),
            aws_smithy_types::body::SdkBody::empty(),
        );
        store_error("write event", SdkError::service_error(error, raw))
    }

    #[test]
    fn a_transaction_throttled_or_in_conflict_may_pass_later() {
        for reason in [
            "ThrottlingError",
            "ProvisionedThroughputExceeded",
            "TransactionConflict",
        ] {
            assert!(
                matches!(cancelled(&["None", reason]), StoreError::Unavailable(_)),
                "{reason}"
            );
        }
        assert!(matches!(
            cancelled(&["ConditionalCheckFailed", "None"]),
            StoreError::Failed(_)
        ));
        assert!(matches!(
            cancelled(&["ValidationError"]),
            StoreError::Failed(_)
        ));
    }

    #[derive(Debug)]
    struct NoCredentials;

    impl aws_credential_types::provider::ProvideCredentials for NoCredentials {
        fn provide_credentials<'a>(
            &'a self,
        ) -> aws_credential_types::provider::future::ProvideCredentials<'a>
        where
            Self: 'a,
        {
            aws_credential_types::provider::future::ProvideCredentials::ready(Err(
                aws_credential_types::provider::error::CredentialsError::not_loaded(
                    "no providers in chain provided credentials",
                ),
            ))
        }
    }
}
