//! Providers: each module holds everything about one ESP — its route name,
//! secret variable, authentication, control requests, mapping to [`EmailEvent`],
//! and its development side (local secret, test signing, sample refresh).
//! Adding an ESP is one new module, its fixtures folder, one line in [`ALL`] and
//! its docs page (docs/adding-an-esp.md).

pub mod brevo;
pub mod engagelab;
mod json;
pub mod mailgun;
pub mod mailjet;
pub mod mandrill;
pub mod mime_words;
pub mod postmark;
pub mod resend;
pub mod sendgrid;
pub mod ses;
pub mod sparkpost;
pub mod tencent;
pub mod uspeedo;

use futures_util::future::BoxFuture;
use serde_json::Value;

use crate::auth::{AuthError, Clock, Credentials, Freshness, verify_token};
use crate::event::EmailEvent;
use crate::store::ReplayClaim;

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

    /// The one value of a required signing header, trimmed; absent, empty or
    /// repeated is an authentication error.
    pub fn single_header(&self, name: &'static str) -> Result<&str, AuthError> {
        match self.header_values(name).as_slice() {
            [] => Err(AuthError::MissingHeader(name)),
            [one] if one.trim().is_empty() => Err(AuthError::MissingHeader(name)),
            [one] => Ok(one.trim()),
            _ => Err(AuthError::DuplicateHeader(name)),
        }
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
    /// Where a provider that verifies with public certificates finds them
    /// without a network call (`SNS_CERTIFICATES_DIR`); `None`: fetched.
    pub certificates_dir: Option<&'a std::path::Path>,
    /// The URLs the ESP was configured to post to, for a scheme that signs the
    /// URL ([`Provider::signed_url`]); empty for the others.
    pub webhook_urls: &'a [String],
}

/// How a provider authenticates its requests: what the security battery, the
/// local banner and the docs say about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthScheme {
    /// A shared secret the ESP sends as `?token=`, as the HTTP Basic password or
    /// as an `Authorization: Bearer` token.
    Token,
    /// Headers carrying a signature over a timestamp, keyed with the secret; a
    /// signed timestamp outside the freshness window is refused.
    SignedHeaders {
        /// The header that holds the signature.
        signature: &'static str,
    },
    /// A JSON object inside the body carrying a timestamp, a one-time token and
    /// a signature over them; the rest of the body is not signed, so the token is
    /// bound to the first body it authenticated ([`Provider::replay_claim`]).
    SignedBody {
        /// The top-level member of the body that holds the signature object.
        object: &'static str,
        /// The member of that object that holds the hex signature.
        signature: &'static str,
    },
    /// An Amazon SNS message: the body is a JSON envelope signed by AWS (RSA,
    /// certificate from an SNS host), and the secret is a topic ARN the
    /// envelope's `TopicArn` must equal. Its signed `Timestamp` may be as old as
    /// SNS's retries last (see [`AuthScheme::min_past_window_secs`]).
    SnsEnvelope,
    /// A header carrying a signature over the request with no timestamp: there
    /// is no window, a captured request stays valid, and its replay stores
    /// nothing new because storage is idempotent (docs/security.md).
    UntimedSignature {
        /// The header that holds the signature.
        signature: &'static str,
    },
}

impl AuthScheme {
    /// The 401 code of a request that carries no credential at all.
    pub fn missing_code(self) -> &'static str {
        match self {
            AuthScheme::Token => AuthError::MissingToken.code(),
            AuthScheme::SignedHeaders { .. } | AuthScheme::UntimedSignature { .. } => {
                "missing_header"
            }
            AuthScheme::SignedBody { object, .. } => AuthError::MissingBodySignature(object).code(),
            AuthScheme::SnsEnvelope => AuthError::MissingSignature.code(),
        }
    }

    /// The 401 code of a credential made with the wrong secret.
    pub fn bad_code(self) -> &'static str {
        match self {
            AuthScheme::Token => AuthError::BadToken.code(),
            AuthScheme::SignedHeaders { .. }
            | AuthScheme::UntimedSignature { .. }
            | AuthScheme::SignedBody { .. } => AuthError::BadSignature.code(),
            AuthScheme::SnsEnvelope => AuthError::TopicNotAllowed.code(),
        }
    }

    /// The JSON field of the body that holds the signature, for a scheme that
    /// signs inside the body.
    pub fn body_signature_field(self) -> Option<&'static str> {
        match self {
            AuthScheme::SnsEnvelope => Some("Signature"),
            _ => None,
        }
    }

    /// The least the past side of the freshness window is, whatever
    /// `SIGNATURE_TOLERANCE_SECS` says (0: the configured window alone).
    pub fn min_past_window_secs(self) -> u64 {
        match self {
            AuthScheme::SnsEnvelope => ses::sns::SNS_RETRY_WINDOW_SECS,
            _ => 0,
        }
    }

    /// What the ESP's console is given, for the local run command's banner.
    pub fn console_hint(self, url: &str, secret: &str) -> String {
        match self {
            AuthScheme::Token => format!("POST {url}?token={secret}"),
            AuthScheme::SignedHeaders { .. }
            | AuthScheme::UntimedSignature { .. }
            | AuthScheme::SignedBody { .. } => {
                format!("POST {url}   signing key: {secret}")
            }
            AuthScheme::SnsEnvelope => {
                format!("SNS HTTPS subscription {url}   allowed topic ARN: {secret}")
            }
        }
    }
}

/// A request that is not an event: a probe, a ping or a handshake, answered
/// 200 with this message and nothing stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Control {
    /// What the request was, for the log line and the answer.
    pub kind: &'static str,
}

/// A provider's request could not be checked or completed for a reason that
/// may pass (a certificate that cannot be fetched, a handshake that failed):
/// answered 503 with `code`, so the ESP retries.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{detail}")]
pub struct Unavailable {
    /// A stable machine-readable name for the failure.
    pub code: &'static str,
    /// What failed, for the log and the answer (never a secret).
    pub detail: String,
}

/// A request as the ESP would send it: what a test sender adds so that it
/// authenticates, and the body to send.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Signed {
    /// The query string (without `?`), empty when the scheme uses none.
    pub query: String,
    /// Headers to send.
    pub headers: Vec<(String, String)>,
    /// The body to send: the given body, or a copy that carries the signature
    /// when the ESP signs inside the body (an SNS envelope, Mailgun's
    /// `signature` object).
    pub body: Vec<u8>,
}

/// A part of an authenticated body that did not normalize, kept raw in
/// quarantine (never answered 4xx: a retry could not fix it, so the provider
/// would drop it, and the batch's valid events with it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unparsed {
    /// A body this provider's [`Provider::parse`] takes holding only the part
    /// that failed: the whole request body when the body itself fails, or the
    /// one event as its item would keep it in `raw`.
    pub body: Vec<u8>,
    /// A stable machine-readable error class (the former 400 codes).
    pub code: &'static str,
    /// What failed, for the record and the CLI (never a secret).
    pub message: String,
    /// Whether `body` is the whole request or one event of it.
    pub scope: PartScope,
}

/// What an [`Unparsed`] body is, which decides how a replay reads it again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartScope {
    /// The whole request body, read again as a request ([`Provider::parse_each`]
    /// with the request's `Content-Type`).
    Request,
    /// One event alone, as its item would keep it in `raw`, read again with
    /// [`Provider::parse`] (as re-normalization reads `raw`).
    Event,
}

impl PartScope {
    /// The name stored in a quarantine record.
    pub fn as_str(self) -> &'static str {
        match self {
            PartScope::Request => "request",
            PartScope::Event => "event",
        }
    }
}

impl Unparsed {
    /// The whole body failed.
    pub fn whole(body: &[u8], error: &ParseError) -> Self {
        Unparsed {
            body: body.to_vec(),
            code: error.code(),
            message: error.to_string(),
            scope: PartScope::Request,
        }
    }

    /// One event of a batch failed; `raw` is that event alone.
    pub fn event(raw: impl Into<Vec<u8>>, error: &ParseError) -> Self {
        Unparsed {
            body: raw.into(),
            code: error.code(),
            message: error.to_string(),
            scope: PartScope::Event,
        }
    }
}

/// Most parts of one request quarantined one by one: past it, the whole body
/// is kept instead, once, so a body of many bad items costs one record (one
/// write, bounded memory), not one per item.
pub const MAX_UNPARSED_PARTS: usize = 25;

/// What a request's body became: the events that normalized, and the parts
/// that did not.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Parsed {
    /// Normalized events.
    pub events: Vec<EmailEvent>,
    /// Parts kept raw in quarantine.
    pub unparsed: Vec<Unparsed>,
}

impl Parsed {
    /// Keeps `part` of `body` unparsed, once per distinct body; past
    /// [`MAX_UNPARSED_PARTS`], the parts give way to the whole `body` (its
    /// valid events are still stored, and a replay finds them as duplicates).
    pub fn keep_unparsed(&mut self, body: &[u8], part: Unparsed) {
        let whole_kept = self.unparsed.iter().any(|p| p.scope == PartScope::Request);
        if whole_kept || self.unparsed.iter().any(|p| p.body == part.body) {
            return;
        }
        if self.unparsed.len() < MAX_UNPARSED_PARTS {
            self.unparsed.push(part);
            return;
        }
        let error = ParseError::TooManyUnparsed {
            limit: MAX_UNPARSED_PARTS,
        };
        self.unparsed = vec![Unparsed::whole(body, &error)];
    }

    /// All of `body` or none of it: the events of a whole-body parse, or the
    /// whole body unparsed.
    pub fn whole(body: &[u8], result: Result<Vec<EmailEvent>, ParseError>) -> Self {
        match result {
            Ok(events) => Parsed {
                events,
                unparsed: Vec::new(),
            },
            Err(error) => Parsed {
                events: Vec::new(),
                unparsed: vec![Unparsed::whole(body, &error)],
            },
        }
    }
}

/// The URL a scheme signs besides the body (the one entered in the ESP's
/// console): where it is configured, and its development value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignedUrl {
    /// The variable holding the URL(s) as configured at the ESP, comma-separated.
    pub env: &'static str,
    /// The URL the local run command, the sample events and the tests sign and
    /// configure.
    pub local: &'static str,
}

/// One email service provider: everything the rest of the code knows about an
/// ESP comes from its module through this trait.
pub trait Provider: Sync {
    /// The name used in the route `/webhooks/{name}` and stored in `provider`.
    fn name(&self) -> &'static str;

    /// The environment variable holding this provider's comma-separated secrets.
    fn secrets_env(&self) -> &'static str;

    /// How requests authenticate; the token scheme unless the provider signs.
    fn scheme(&self) -> AuthScheme {
        AuthScheme::Token
    }

    /// Work that authentication needs and that may wait on the network (e.g.
    /// making sure a signing certificate is in the cache), awaited before
    /// [`Provider::authenticate`]; its failure answers 503. It must do nothing
    /// for a request that authentication will refuse without it. The default
    /// needs nothing.
    fn prepare<'a>(
        &'a self,
        _request: &'a Inbound<'a>,
        _ctx: &'a AuthContext<'a>,
    ) -> Option<BoxFuture<'a, Result<(), Unavailable>>> {
        None
    }

    /// Verifies the request; on success names the method that matched (for logs).
    /// The default is the token scheme: `?token=`, the HTTP Basic password or a
    /// Bearer token.
    fn authenticate(
        &self,
        request: &Inbound<'_>,
        ctx: &AuthContext<'_>,
    ) -> Result<&'static str, AuthError> {
        let query_tokens = request.query_values("token");
        let authorization = request.header_values("authorization");
        verify_token(
            Credentials {
                query_tokens: &query_tokens,
                authorization: &authorization,
            },
            ctx.secrets,
        )?;
        Ok("token")
    }

    /// The URL the scheme signs, for ESPs that sign the URL they post to;
    /// `None` (the default) when no URL is signed.
    fn signed_url(&self) -> Option<SignedUrl> {
        None
    }

    /// For an authenticated request whose signature does not cover the body: one
    /// claim per credential in it that verifies, each to be bound to this body
    /// before anything is stored (the same credential with another body is
    /// refused as `replayed`). Empty (the default) when the signature covers the
    /// body or there is none; a [`AuthScheme::SignedBody`] provider whose
    /// authenticated request yields none is refused (fail closed).
    fn replay_claim(&self, _request: &Inbound<'_>, _ctx: &AuthContext<'_>) -> Vec<ReplayClaim> {
        Vec::new()
    }

    /// An authenticated request that carries no event (a ping, a subscription
    /// handshake), recognised before parsing; `None` for event requests.
    fn control(&self, _request: &Inbound<'_>) -> Option<Control> {
        None
    }

    /// Work that completes an authenticated control request (e.g. confirming a
    /// subscription), awaited before the 200; its failure answers 503 so the
    /// ESP sends it again. The default needs nothing.
    fn complete_control<'a>(
        &'a self,
        _request: &'a Inbound<'a>,
        _control: Control,
    ) -> Option<BoxFuture<'a, Result<(), Unavailable>>> {
        None
    }

    /// Parses a body into normalized events (at least one, or an error). Also
    /// used to re-normalize stored raw payloads, so it sees only the body.
    fn parse(&self, body: &[u8]) -> Result<Vec<EmailEvent>, ParseError>;

    /// Parses a request; override when the ESP puts event data in headers.
    fn parse_request(&self, request: &Inbound<'_>) -> Result<Vec<EmailEvent>, ParseError> {
        self.parse(request.body)
    }

    /// Parses an authenticated request event by event: what normalizes, and
    /// what does not (quarantined raw). The default is all or nothing
    /// ([`Parsed::whole`]); an ESP that batches overrides it so that one bad
    /// event does not take the batch's valid events with it.
    fn parse_each(&self, request: &Inbound<'_>) -> Parsed {
        Parsed::whole(request.body, self.parse_request(request))
    }

    /// The secret of the local run command, the sample events and the tests.
    /// Public: never use it in a deployment.
    fn local_secret(&self) -> &'static str;

    /// The request carrying `body`, signed with `secret` at `unix_secs`, as the
    /// ESP would send it (the test sender, demo, samples, tests and benches).
    fn sign(&self, secret: &str, _unix_secs: i64, body: &[u8]) -> Signed {
        Signed {
            query: form_urlencoded::Serializer::new(String::new())
                .append_pair("token", secret)
                .finish(),
            headers: Vec::new(),
            body: body.to_vec(),
        }
    }

    /// [`Provider::sign`] for a request posted to `url`: an ESP that signs the
    /// URL signs this one (a test sender posting to a deployment); the others
    /// ignore it.
    fn sign_for_url(&self, _url: &str, secret: &str, unix_secs: i64, body: &[u8]) -> Signed {
        self.sign(secret, unix_secs, body)
    }

    /// Moves a stored sample's event times to `now_ms` and tags it with `run_id`,
    /// so a test sender's events are new and findable.
    fn refresh_sample(&self, sample: &mut Value, now_ms: i64, run_id: &str);
}

/// Every provider, in route order: the one list the handler, the tools, the
/// tests, the fuzz seeds, the sample events and the template checks loop over.
pub static ALL: &[&dyn Provider] = &[
    &tencent::Tencent,
    &engagelab::EngageLab,
    &uspeedo::Uspeedo,
    &postmark::Postmark,
    &brevo::Brevo,
    &sparkpost::SparkPost,
    &mailjet::Mailjet,
    &mailgun::Mailgun,
    &sendgrid::SendGrid,
    &resend::Resend,
    &ses::Ses,
    &mandrill::Mandrill,
];

/// Helpers the provider modules' unit tests share.
#[cfg(test)]
pub(crate) mod test_support {
    use std::collections::BTreeMap;

    /// A string map from literal pairs: an expected `metadata` or `details`.
    pub fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }
}

/// Finds a provider by its route name (exact, lower-case).
pub fn by_name(name: &str) -> Option<&'static dyn Provider> {
    ALL.iter().copied().find(|p| p.name() == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_finds_each_provider_by_exact_name() {
        for provider in ALL {
            assert_eq!(
                by_name(provider.name()).map(|p| p.name()),
                Some(provider.name())
            );
        }
        assert!(by_name("Tencent").is_none());
        assert!(by_name("nonesuch").is_none());
    }

    #[test]
    fn many_bad_items_are_one_whole_body_record_not_one_each() {
        let body = b"[0,0,0]";
        let bad = |text: &str| Unparsed::event(text.as_bytes().to_vec(), &ParseError::NoEvents);
        let mut parsed = Parsed::default();
        parsed.keep_unparsed(body, bad("[0]"));
        parsed.keep_unparsed(body, bad("[0]"));
        assert_eq!(parsed.unparsed.len(), 1, "the same bytes are kept once");
        for i in 1..MAX_UNPARSED_PARTS {
            parsed.keep_unparsed(body, bad(&format!("[{i}]")));
        }
        assert_eq!(parsed.unparsed.len(), MAX_UNPARSED_PARTS);
        parsed.keep_unparsed(body, bad("[\"one too many\"]"));
        parsed.keep_unparsed(body, bad("[\"and more\"]"));
        assert_eq!(parsed.unparsed.len(), 1);
        let whole = &parsed.unparsed[0];
        assert_eq!(
            (whole.body.as_slice(), whole.code, whole.scope),
            (&body[..], "too_many_unparsed", PartScope::Request)
        );
    }

    #[test]
    fn names_secrets_and_local_secrets_are_distinct() {
        let mut names: Vec<_> = ALL.iter().map(|p| p.name()).collect();
        let mut envs: Vec<_> = ALL.iter().map(|p| p.secrets_env()).collect();
        let mut locals: Vec<_> = ALL.iter().map(|p| p.local_secret()).collect();
        for list in [&mut names, &mut envs, &mut locals] {
            list.sort();
            list.dedup();
            assert_eq!(list.len(), ALL.len());
        }
        for provider in ALL {
            let name = provider.name();
            assert!(
                name.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()),
                "{name}"
            );
            // A public key cannot carry the prefix: SendGrid's is a labelled development key.
            let labelled = provider.local_secret().starts_with("local-")
                || sendgrid::DEVELOPMENT_KEY_PAIRS[0].0 == provider.local_secret();
            assert!(labelled, "{name}");
        }
    }
}
