//! SDK errors → core errors. Throttling, server errors and transport failures may pass
//! if retried (`Unavailable`); everything else is `Failed`.

use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use inlet_core::store::StoreError;

const RETRYABLE_CODES: [&str; 7] = [
    "ThrottlingException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "InternalServerError",
    "ServiceUnavailable",
    "TransactionInProgressException",
    "TooManyRequestsException",
];

/// Classifies any SDK error of any AWS client.
pub fn store_error<E, R>(operation: &str, error: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let detail = format!("{operation}: {}", DisplayErrorContext(&error));
    match &error {
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or_default();
            if RETRYABLE_CODES.contains(&code) {
                StoreError::Unavailable(detail)
            } else {
                StoreError::Failed(detail)
            }
        }
        _ => StoreError::Unavailable(detail),
    }
}
