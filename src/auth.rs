//! Shared verification pieces: constant-time comparison, secret tokens (query,
//! HTTP Basic or Bearer), timestamp freshness with an injectable clock, and typed errors.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use subtle::ConstantTimeEq;

use crate::event::unix_to_ms;

/// Why a request was not authenticated. The message names the problem class,
/// never the expected value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The provider has no secret configured, so every request is refused.
    #[error("no secret is configured for this provider; all requests are refused")]
    NotConfigured,
    /// Neither a `token` query parameter nor HTTP Basic or Bearer credentials were sent.
    #[error("missing credentials: send ?token=..., HTTP Basic auth or a Bearer token")]
    MissingToken,
    /// The token did not match any configured secret.
    #[error("bad token")]
    BadToken,
    /// A required header was absent (or empty).
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    /// The same authentication header was sent more than once.
    #[error("header {0} sent more than once")]
    DuplicateHeader(&'static str),
    /// The token in the query and in the `Authorization` header disagree.
    #[error("conflicting credentials: query token and Authorization header differ")]
    ConflictingTokens,
    /// The timestamp header is not a number.
    #[error("malformed timestamp")]
    MalformedTimestamp,
    /// The timestamp is outside the tolerance window.
    #[error("stale or future timestamp: outside the {0} s tolerance window")]
    StaleTimestamp(u64),
    /// The signature did not match any configured secret or algorithm.
    #[error("bad signature")]
    BadSignature,
    /// The signature is well formed but matches no configured key; `hint` names the
    /// key the ESP signs with (for the log line: a wrong key is the usual cause).
    #[error("bad signature: {hint}")]
    SignatureMismatch {
        /// Which key the provider's secret variable must hold.
        hint: &'static str,
    },
    /// The body carries no signature object (for ESPs that sign inside the body).
    #[error("missing signature: the body has no {0} object")]
    MissingBodySignature(&'static str),
    /// The body carries its signature object more than once.
    #[error("signature object {0} sent more than once")]
    DuplicateBodySignature(&'static str),
    /// A signed value already authenticated another body: a captured signature
    /// replayed with a different body inside the freshness window.
    #[error("replayed signature: it already authenticated another body")]
    Replayed,
    /// The body is in a format the provider's endpoint does not accept (e.g. a
    /// legacy form-encoded webhook where JSON is expected).
    #[error("unsupported webhook format: {0}")]
    UnsupportedFormat(&'static str),
    /// A body-signed message (an SNS envelope) carries no signature.
    #[error("missing signature: not a signed SNS message")]
    MissingSignature,
    /// A signed envelope lacks a field it must have, repeats one, or has an unknown type.
    #[error("malformed SNS envelope")]
    MalformedEnvelope,
    /// A signature version this receiver does not verify.
    #[error("unsupported signature version")]
    UnsupportedSignatureVersion,
    /// The message comes from a topic not in the allow-list.
    #[error("topic not allowed")]
    TopicNotAllowed,
    /// The signing certificate URL is not an SNS certificate URL.
    #[error("signing certificate URL is not an Amazon SNS certificate URL")]
    BadCertificateUrl,
    /// The subscription URL is not an Amazon SNS URL.
    #[error("subscribe URL is not an Amazon SNS URL")]
    BadSubscribeUrl,
    /// The signing certificate does not exist or is not a usable certificate.
    #[error("unknown or unusable signing certificate")]
    UnknownCertificate,
    /// The signing certificate is outside its validity period.
    #[error("signing certificate expired or not yet valid")]
    ExpiredCertificate,
}

impl AuthError {
    /// A stable machine-readable name for the error class.
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::NotConfigured => "not_configured",
            AuthError::MissingToken => "missing_credentials",
            AuthError::BadToken => "bad_token",
            AuthError::MissingHeader(_) => "missing_header",
            AuthError::DuplicateHeader(_) => "duplicate_header",
            AuthError::ConflictingTokens => "conflicting_credentials",
            AuthError::MalformedTimestamp => "malformed_timestamp",
            AuthError::StaleTimestamp(_) => "stale_timestamp",
            AuthError::BadSignature => "bad_signature",
            AuthError::SignatureMismatch { .. } => "bad_signature",
            AuthError::MissingBodySignature(_) => "missing_signature",
            AuthError::DuplicateBodySignature(_) => "duplicate_signature",
            AuthError::Replayed => "replayed",
            AuthError::UnsupportedFormat(_) => "unsupported_format",
            AuthError::MissingSignature => "missing_signature",
            AuthError::MalformedEnvelope => "malformed_envelope",
            AuthError::UnsupportedSignatureVersion => "unsupported_signature_version",
            AuthError::TopicNotAllowed => "topic_not_allowed",
            AuthError::BadCertificateUrl => "bad_certificate_url",
            AuthError::BadSubscribeUrl => "bad_subscribe_url",
            AuthError::UnknownCertificate => "unknown_certificate",
            AuthError::ExpiredCertificate => "certificate_expired",
        }
    }
}

/// A source of the current time, injectable for tests.
pub trait Clock: Send + Sync {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;
}

/// The real wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    }
}

/// A clock stopped at one instant.
#[derive(Debug, Clone, Copy)]
pub struct FixedClock(pub i64);

impl Clock for FixedClock {
    fn now_ms(&self) -> i64 {
        self.0
    }
}

/// Compares two byte strings in time independent of where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// True if `candidate` equals any of `secrets`. Every secret is compared, so the
/// time taken does not reveal which one (if any) matched.
pub fn matches_any(candidate: &[u8], secrets: &[String]) -> bool {
    secrets.iter().fold(false, |found, secret| {
        found | constant_time_eq(candidate, secret.as_bytes())
    })
}

/// The request parts a provider may authenticate against.
#[derive(Debug, Clone, Copy)]
pub struct Credentials<'a> {
    /// Every value of the `token` query parameter.
    pub query_tokens: &'a [String],
    /// The `Authorization` header values.
    pub authorization: &'a [&'a str],
}

/// Verifies a shared secret token sent as `?token=`, as the HTTP Basic password or
/// as an `Authorization: Bearer` token (Brevo's and SparkPost's OAuth option send
/// one; any token provider accepts it, since it is the same secret in another header).
///
/// A query token and a header may both be sent; then they must agree. Any user
/// name is accepted with Basic.
pub fn verify_token(creds: Credentials<'_>, secrets: &[String]) -> Result<(), AuthError> {
    if secrets.is_empty() {
        return Err(AuthError::NotConfigured);
    }
    let query = match creds.query_tokens {
        [] => None,
        [one] => Some(one.as_str()),
        _ => return Err(AuthError::ConflictingTokens),
    };
    let header = match creds.authorization {
        [] => None,
        [one] => header_token(one),
        _ => return Err(AuthError::DuplicateHeader("Authorization")),
    };
    let token = match (query, header.as_deref()) {
        (None, None) => return Err(AuthError::MissingToken),
        (Some(q), Some(h)) if !constant_time_eq(q.as_bytes(), h.as_bytes()) => {
            return Err(AuthError::ConflictingTokens);
        }
        (Some(q), _) => q,
        (None, Some(h)) => h,
    };
    if token.is_empty() {
        return Err(AuthError::MissingToken);
    }
    if matches_any(token.as_bytes(), secrets) {
        Ok(())
    } else {
        Err(AuthError::BadToken)
    }
}

/// The secret an `Authorization` header value carries: the password of HTTP
/// Basic credentials, or a Bearer token (RFC 6750). Other schemes carry none.
fn header_token(header: &str) -> Option<String> {
    let (scheme, credentials) = header.trim().split_once(' ')?;
    if scheme.eq_ignore_ascii_case("bearer") {
        return Some(credentials.trim().to_owned());
    }
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(credentials.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (_user, password) = text.split_once(':')?;
    Some(password.to_owned())
}

/// How far a signed timestamp may be from now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// Accept timestamps within this many seconds, past or future.
    Within(u64),
    /// Development only: accept any timestamp (static sample events).
    Disabled,
}

/// Parses a timestamp header (seconds or milliseconds) and checks it is fresh.
/// Returns the timestamp in milliseconds.
pub fn check_timestamp(
    raw: &str,
    freshness: Freshness,
    clock: &dyn Clock,
) -> Result<i64, AuthError> {
    let value: i64 = raw
        .trim()
        .parse()
        .map_err(|_| AuthError::MalformedTimestamp)?;
    let ts_ms = unix_to_ms(value);
    if let Freshness::Within(secs) = freshness {
        let tolerance_ms = i64::try_from(secs)
            .unwrap_or(i64::MAX / 2)
            .saturating_mul(1000);
        if clock.now_ms().saturating_sub(ts_ms).saturating_abs() > tolerance_ms {
            return Err(AuthError::StaleTimestamp(secs));
        }
    }
    Ok(ts_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets() -> Vec<String> {
        vec!["old-secret".into(), "new-secret".into()]
    }

    fn basic(user: &str, pass: &str) -> String {
        let enc = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
        format!("Basic {enc}")
    }

    #[test]
    fn token_in_query_or_basic_is_accepted_for_every_rotated_secret() {
        for s in ["old-secret", "new-secret"] {
            let q = vec![s.to_owned()];
            assert_eq!(
                verify_token(
                    Credentials {
                        query_tokens: &q,
                        authorization: &[]
                    },
                    &secrets()
                ),
                Ok(())
            );
            let h = basic("tencent", s);
            assert_eq!(
                verify_token(
                    Credentials {
                        query_tokens: &[],
                        authorization: &[&h]
                    },
                    &secrets()
                ),
                Ok(())
            );
        }
    }

    #[test]
    fn token_failures_are_classified() {
        let none = Credentials {
            query_tokens: &[],
            authorization: &[],
        };
        assert_eq!(verify_token(none, &secrets()), Err(AuthError::MissingToken));
        assert_eq!(verify_token(none, &[]), Err(AuthError::NotConfigured));
        let wrong = vec!["wrong".to_owned()];
        assert_eq!(
            verify_token(
                Credentials {
                    query_tokens: &wrong,
                    authorization: &[]
                },
                &secrets()
            ),
            Err(AuthError::BadToken)
        );
        let two = vec!["old-secret".to_owned(), "new-secret".to_owned()];
        assert_eq!(
            verify_token(
                Credentials {
                    query_tokens: &two,
                    authorization: &[]
                },
                &secrets()
            ),
            Err(AuthError::ConflictingTokens)
        );
        let q = vec!["old-secret".to_owned()];
        let h = basic("u", "new-secret");
        assert_eq!(
            verify_token(
                Credentials {
                    query_tokens: &q,
                    authorization: &[&h]
                },
                &secrets()
            ),
            Err(AuthError::ConflictingTokens)
        );
        let digest = "Digest username=\"u\"";
        assert_eq!(
            verify_token(
                Credentials {
                    query_tokens: &[],
                    authorization: &[digest]
                },
                &secrets()
            ),
            Err(AuthError::MissingToken)
        );
    }

    #[test]
    fn bearer_tokens_follow_the_same_rules_as_basic() {
        let check = |query: &[String], header: &str| {
            verify_token(
                Credentials {
                    query_tokens: query,
                    authorization: &[header],
                },
                &secrets(),
            )
        };
        for secret in ["old-secret", "new-secret"] {
            assert_eq!(check(&[], &format!("Bearer {secret}")), Ok(()));
            assert_eq!(check(&[], &format!("bearer  {secret} ")), Ok(()));
        }
        assert_eq!(check(&[], "Bearer wrong"), Err(AuthError::BadToken));
        assert_eq!(check(&[], "Bearer "), Err(AuthError::MissingToken));
        assert_eq!(check(&[], "Bearer"), Err(AuthError::MissingToken));
        let q = vec!["old-secret".to_owned()];
        assert_eq!(check(&q, "Bearer old-secret"), Ok(()));
        assert_eq!(
            check(&q, "Bearer new-secret"),
            Err(AuthError::ConflictingTokens)
        );
    }

    #[test]
    fn timestamp_window_accepts_seconds_and_millis_and_rejects_outside() {
        let clock = FixedClock(1_700_000_000_000);
        let w = Freshness::Within(300);
        assert_eq!(
            check_timestamp("1700000000", w, &clock),
            Ok(1_700_000_000_000)
        );
        assert_eq!(
            check_timestamp("1700000299000", w, &clock),
            Ok(1_700_000_299_000)
        );
        assert_eq!(
            check_timestamp("1699999699", w, &clock),
            Err(AuthError::StaleTimestamp(300))
        );
        assert_eq!(
            check_timestamp("1700000301", w, &clock),
            Err(AuthError::StaleTimestamp(300))
        );
        assert_eq!(
            check_timestamp("soon", w, &clock),
            Err(AuthError::MalformedTimestamp)
        );
        assert_eq!(check_timestamp("1", Freshness::Disabled, &clock), Ok(1000));
    }

    #[test]
    fn matches_any_checks_all_secrets() {
        assert!(matches_any(b"new-secret", &secrets()));
        assert!(!matches_any(b"new-secre", &secrets()));
        assert!(!matches_any(b"", &secrets()));
    }
}
