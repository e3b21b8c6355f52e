//! The one classification of AWS SDK failures, shared by the write path (which
//! answers a provider with a status) and the read side (which tells a person what
//! to fix): each maps the same [`FailureKind`] to its own error type.

use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use super::StoreError;

/// What went wrong with one SDK call, in classes a caller can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The call timed out or was never sent (connection refused, DNS).
    Unreachable,
    /// An answer came back but could not be read.
    BadResponse,
    /// Throttled, even after the SDK's retries.
    Throttled,
    /// The service said it failed (internal error, unavailable).
    ServiceDown,
    /// The table does not exist at this endpoint.
    NotFound,
    /// The account or its permissions were refused.
    Denied,
    /// The request's signature or token was refused (invalid, expired, missing).
    BadCredentials,
    /// Anything else the service refused.
    Other,
}

/// One classified SDK failure, with the texts each side shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdkFailure {
    /// Its class.
    pub kind: FailureKind,
    /// The service's error code, when it sent one.
    pub code: Option<String>,
    /// The service's error message, when it sent one.
    pub message: Option<String>,
    /// The error and its sources on one line (see [`error_chain`]).
    pub chain: String,
    /// The SDK's own full description (what the write path logs).
    pub context: String,
}

/// Sorts an SDK failure into a [`FailureKind`].
pub fn classify<E, R>(err: SdkError<E, R>) -> SdkFailure
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let kind = match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => FailureKind::Unreachable,
        SdkError::ResponseError(_) => FailureKind::BadResponse,
        _ => match err.code() {
            Some(
                "ProvisionedThroughputExceededException"
                | "ThrottlingException"
                | "RequestLimitExceeded",
            ) => FailureKind::Throttled,
            Some("InternalServerError" | "ServiceUnavailable") => FailureKind::ServiceDown,
            Some("ResourceNotFoundException") => FailureKind::NotFound,
            Some("AccessDeniedException" | "UnrecognizedClientException") => FailureKind::Denied,
            Some(
                "InvalidSignatureException"
                | "ExpiredTokenException"
                | "MissingAuthenticationTokenException",
            ) => FailureKind::BadCredentials,
            _ => FailureKind::Other,
        },
    };
    SdkFailure {
        kind,
        code: err.code().map(str::to_owned),
        message: err.message().map(str::to_owned),
        chain: error_chain(&err),
        context: DisplayErrorContext(&err).to_string(),
    }
}

impl From<SdkFailure> for StoreError {
    /// The write path's view: transient trouble (503, the provider retries soon)
    /// apart from a deployment mistake and the rest (500).
    fn from(failure: SdkFailure) -> Self {
        let text = failure.context;
        match failure.kind {
            FailureKind::Unreachable | FailureKind::BadResponse | FailureKind::ServiceDown => {
                StoreError::Unavailable(text)
            }
            FailureKind::Throttled => StoreError::Throttled(text),
            FailureKind::NotFound | FailureKind::Denied => StoreError::Misconfigured(text),
            FailureKind::BadCredentials | FailureKind::Other => StoreError::Other(text),
        }
    }
}

/// Classifies an SDK failure straight into a [`StoreError`] (the write path's `map_err`).
pub fn store_error<E, R>(err: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    classify(err).into()
}

/// A conditional call's result with its condition's failure told apart:
/// `Ok(Some(output))` when it was carried out, `Ok(None)` when DynamoDB
/// refused it for its condition (`ConditionalCheckFailedException`).
pub fn unless_condition_failed<O, E, R>(
    result: Result<O, SdkError<E, R>>,
) -> Result<Option<O>, SdkError<E, R>>
where
    E: ProvideErrorMetadata,
{
    match result {
        Ok(output) => Ok(Some(output)),
        Err(err)
            if err.as_service_error().and_then(ProvideErrorMetadata::code)
                == Some("ConditionalCheckFailedException") =>
        {
            Ok(None)
        }
        Err(err) => Err(err),
    }
}

/// An error and its sources on one line (`a: b: c`), leaving out a source whose
/// text its parent already shows.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(err);
    while let Some(current) = next {
        let text = current.to_string();
        if parts.last().is_none_or(|last| !last.contains(&text)) {
            parts.push(text);
        }
        next = current.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(kind: FailureKind) -> SdkFailure {
        SdkFailure {
            kind,
            code: None,
            message: None,
            chain: "chain".into(),
            context: "context".into(),
        }
    }

    #[test]
    fn the_write_path_retries_transient_trouble_only() {
        let status = |kind| StoreError::from(failure(kind)).code();
        assert_eq!(status(FailureKind::Unreachable), "storage_unavailable");
        assert_eq!(status(FailureKind::BadResponse), "storage_unavailable");
        assert_eq!(status(FailureKind::ServiceDown), "storage_unavailable");
        assert_eq!(status(FailureKind::Throttled), "storage_throttled");
        assert_eq!(status(FailureKind::NotFound), "storage_misconfigured");
        assert_eq!(status(FailureKind::Denied), "storage_misconfigured");
        assert_eq!(status(FailureKind::BadCredentials), "storage_error");
        assert_eq!(status(FailureKind::Other), "storage_error");
        assert_eq!(
            StoreError::from(failure(FailureKind::Other)),
            StoreError::Other("context".into())
        );
    }

    #[test]
    fn error_chains_fit_on_one_line_without_repeats() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer failed: inner")]
        struct Outer(#[source] std::io::Error);
        let err = Outer(std::io::Error::other("inner"));
        assert_eq!(error_chain(&err), "outer failed: inner");
        let err = Outer(std::io::Error::other("refused"));
        assert_eq!(error_chain(&err), "outer failed: inner: refused");
    }
}
