//! The one request error type, and its mapping to an HTTP status and JSON body.

use serde_json::json;

use crate::auth::AuthError;
use crate::providers::Unavailable;
use crate::store::StoreError;

/// Why a request was not answered 200.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The path is not `/webhooks/{provider}`.
    #[error("not found: use POST /webhooks/{{provider}}")]
    NotFound,
    /// The path names a provider we do not know.
    #[error("unknown provider")]
    UnknownProvider,
    /// A method other than POST, GET or HEAD.
    #[error("method not allowed: use POST")]
    MethodNotAllowed,
    /// The body is larger than the configured limit.
    #[error("body too large: limit is {0} bytes")]
    PayloadTooLarge(usize),
    /// Authentication failed.
    #[error(transparent)]
    Unauthorized(#[from] AuthError),
    /// A check or handshake could not be done now (certificate fetch,
    /// subscription confirmation); the provider should retry.
    #[error(transparent)]
    Unavailable(#[from] Unavailable),
    /// The events could not all be stored; the provider should retry.
    #[error(transparent)]
    Storage(#[from] StoreError),
}

impl Error {
    /// The HTTP status code.
    pub fn status(&self) -> u16 {
        match self {
            Error::NotFound | Error::UnknownProvider => 404,
            Error::MethodNotAllowed => 405,
            Error::PayloadTooLarge(_) => 413,
            Error::Unauthorized(_) => 401,
            Error::Unavailable(_) => 503,
            Error::Storage(e) => e.status(),
        }
    }

    /// A stable machine-readable error class.
    pub fn code(&self) -> &'static str {
        match self {
            Error::NotFound => "not_found",
            Error::UnknownProvider => "unknown_provider",
            Error::MethodNotAllowed => "method_not_allowed",
            Error::PayloadTooLarge(_) => "payload_too_large",
            Error::Unauthorized(e) => e.code(),
            Error::Unavailable(e) => e.code,
            Error::Storage(e) => e.code(),
        }
    }

    /// The JSON body: `{"code": <status>, "error": <class>, "message": <text>}`.
    ///
    /// Storage errors are summarized: their details go to the log, not to the caller.
    pub fn body(&self) -> String {
        let message = match self {
            Error::Storage(_) => "storage unavailable, please retry".to_owned(),
            other => other.to_string(),
        };
        json!({ "code": self.status(), "error": self.code(), "message": message }).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_bodies() {
        let e = Error::from(AuthError::BadSignature);
        assert_eq!(e.status(), 401);
        let body: serde_json::Value = serde_json::from_str(&e.body()).unwrap();
        assert_eq!(body["error"], "bad_signature");
        assert_eq!(body["code"], 401);
        assert_eq!(Error::from(StoreError::Throttled("x".into())).status(), 503);
        let storage: serde_json::Value =
            serde_json::from_str(&Error::from(StoreError::Other("secret detail".into())).body())
                .unwrap();
        assert_eq!(storage["code"], 500);
        assert!(
            !storage["message"]
                .as_str()
                .unwrap()
                .contains("secret detail")
        );
        assert_eq!(Error::MethodNotAllowed.status(), 405);
        assert_eq!(Error::PayloadTooLarge(1).status(), 413);
    }
}
