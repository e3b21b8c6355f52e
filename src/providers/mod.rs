//! Providers: each module holds one ESP's authentication and its mapping to
//! [`EmailEvent`]. Adding an ESP is one new module and one line in [`ALL`].

pub mod engagelab;
mod json;
pub mod mime_words;
pub mod tencent;
pub mod uspeedo;

use crate::auth::{AuthError, Clock, Freshness};
use crate::event::EmailEvent;

pub use json::ParseError;

/// What a provider sees of a request: header and query pairs and the exact body bytes.
#[derive(Debug, Clone, Copy)]
pub struct Inbound<'a> {
    /// Header pairs; names lower-case, values as sent.
    pub headers: &'a [(String, String)],
    /// Decoded query-string pairs.
    pub query: &'a [(String, String)],
    /// The exact request body bytes.
    pub body: &'a [u8],
}

impl Inbound<'_> {
    /// Every value of a header (name matched case-insensitively).
    pub fn header_values(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// Every value of a query parameter.
    pub fn query_values(&self, name: &str) -> Vec<String> {
        self.query
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .collect()
    }
}

/// What authentication needs besides the request: secrets, window and clock.
#[derive(Clone, Copy)]
pub struct AuthContext<'a> {
    /// Every currently valid secret for this provider (several during rotation).
    pub secrets: &'a [String],
    /// How fresh a signed timestamp must be.
    pub freshness: Freshness,
    /// The current time.
    pub clock: &'a dyn Clock,
}

/// One email service provider.
pub trait Provider: Sync {
    /// The name used in the route `/webhooks/{name}` and stored in `provider`.
    fn name(&self) -> &'static str;
    /// The environment variable holding this provider's comma-separated secrets.
    fn secrets_env(&self) -> &'static str;
    /// Verifies the request; on success names the method that matched (for logs).
    fn authenticate(
        &self,
        request: &Inbound<'_>,
        ctx: &AuthContext<'_>,
    ) -> Result<&'static str, AuthError>;
    /// Parses the body into normalized events (at least one, or an error).
    fn parse(&self, body: &[u8]) -> Result<Vec<EmailEvent>, ParseError>;
}

/// Every provider, in route order.
pub static ALL: [&dyn Provider; 3] = [&tencent::Tencent, &engagelab::EngageLab, &uspeedo::Uspeedo];

/// Finds a provider by its route name (exact, lower-case).
pub fn by_name(name: &str) -> Option<&'static dyn Provider> {
    ALL.iter().copied().find(|p| p.name() == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_finds_each_provider_by_exact_name() {
        for name in ["tencent", "engagelab", "uspeedo"] {
            assert_eq!(by_name(name).map(|p| p.name()), Some(name));
        }
        assert!(by_name("Tencent").is_none());
        assert!(by_name("sendgrid").is_none());
    }
}
