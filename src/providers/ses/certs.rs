//! SNS signing certificates: read from `SNS_CERTIFICATES_DIR` when it is set
//! (no network at all), otherwise fetched over HTTPS once per URL and kept for
//! the container's life.
//!
//! What an unauthenticated request can make us do is bounded: only URLs that
//! pass [`super::sns::check_certificate_url`], on the host of the topic's own
//! region, are ever opened or fetched, and only after the topic allow-list and
//! the freshness window have passed; at most [`MAX_FETCHES_PER_MINUTE`]
//! network fetches start per minute for regions with no certificate yet, and
//! [`MAX_FETCHES_PER_WARM_REGION`] per region that has one (so names made up
//! in a region already served cannot spend the budget a cold region needs); a
//! failure is remembered ([`MISSING_TTL_MS`], [`UNREACHABLE_TTL_MS`]) so the
//! same URL is not fetched again at once; the cache holds at most
//! [`MAX_ENTRIES`], and a usable certificate is never evicted to remember a
//! failure; a certificate body is read up to [`MAX_CERT_BYTES`] within
//! [`FETCH_TIMEOUT`].
//!
//! Made-up certificate names on an allowed topic's region can still spend a
//! cold container's budget; `SNS_CERTIFICATES_DIR` (no fetching at all) is
//! the production answer to that (docs/providers/ses.md).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use x509_cert::der::DecodePem;

use crate::auth::{AuthError, Freshness};
use crate::providers::Unavailable;

use super::sns::url_region;

/// Most certificates (and remembered failures) kept. AWS serves one
/// certificate per region at a time, so real traffic needs a handful.
pub const MAX_ENTRIES: usize = 64;
/// Most network fetches started per minute per container, for regions that
/// have no usable certificate yet.
pub const MAX_FETCHES_PER_MINUTE: u32 = 10;
/// Most network fetches started per minute for a region that already has a
/// usable certificate (a rotation needs one), outside the budget above.
pub const MAX_FETCHES_PER_WARM_REGION: u32 = 2;
/// How long a certificate AWS does not have (403/404) or that does not parse
/// is remembered: requests naming it are refused 401 without a fetch.
pub const MISSING_TTL_MS: i64 = 60_000;
/// How long an unreachable certificate URL is remembered: requests naming it
/// are answered 503 (SNS retries) without a fetch.
pub const UNREACHABLE_TTL_MS: i64 = 10_000;
/// Largest certificate body read (AWS's are about 2 KB).
pub const MAX_CERT_BYTES: usize = 16 * 1024;
/// Bound on one certificate fetch: 0.4 s plus the 1.5 s storage bound stays
/// inside the function's 2 s timeout. Past it the answer is 503 and SNS retries.
pub const FETCH_TIMEOUT: Duration = Duration::from_millis(400);

/// A signing certificate, reduced to what verification needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate {
    /// The RSA public key, PKCS #1 `RSAPublicKey` DER.
    pub rsa_public_key: Vec<u8>,
    /// Start of the validity period, Unix ms.
    pub not_before_ms: i64,
    /// End of the validity period, Unix ms.
    pub not_after_ms: i64,
}

/// OID of `rsaEncryption` (1.2.840.113549.1.1.1).
const RSA_ENCRYPTION: &str = "1.2.840.113549.1.1.1";

impl Certificate {
    /// Parses a PEM X.509 certificate with an RSA key; `None` for anything else.
    pub fn from_pem(pem: &[u8]) -> Option<Certificate> {
        let cert = x509_cert::Certificate::from_pem(pem).ok()?;
        let tbs = &cert.tbs_certificate;
        let spki = &tbs.subject_public_key_info;
        if spki.algorithm.oid.to_string() != RSA_ENCRYPTION {
            return None;
        }
        let to_ms = |t: &x509_cert::time::Time| {
            i64::try_from(t.to_unix_duration().as_millis()).unwrap_or(i64::MAX)
        };
        Some(Certificate {
            rsa_public_key: spki.subject_public_key.as_bytes()?.to_vec(),
            not_before_ms: to_ms(&tbs.validity.not_before),
            not_after_ms: to_ms(&tbs.validity.not_after),
        })
    }

    /// Refuses a certificate outside its validity period, unless the
    /// development switch turned freshness off (recorded messages replay).
    pub fn check_validity(&self, freshness: Freshness, now_ms: i64) -> Result<(), AuthError> {
        if freshness == Freshness::Disabled
            || (self.not_before_ms..=self.not_after_ms).contains(&now_ms)
        {
            Ok(())
        } else {
            Err(AuthError::ExpiredCertificate)
        }
    }
}

/// Where a certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Source {
    /// A file in `SNS_CERTIFICATES_DIR`, named as the URL's last segment.
    File(PathBuf),
    /// The `SigningCertURL` itself, fetched over HTTPS.
    Url(String),
}

impl Source {
    /// The source for a checked certificate URL and its file name.
    pub fn new(dir: Option<&Path>, url: &str, file: &str) -> Source {
        match dir {
            Some(dir) => Source::File(dir.join(file)),
            None => Source::Url(url.to_owned()),
        }
    }
}

/// What the cache knows about a source.
#[derive(Debug, Clone)]
enum Entry {
    /// A usable certificate, kept for the container's life.
    Ready(Arc<Certificate>),
    /// AWS has no such certificate, or it does not parse: 401 until then.
    Missing { until_ms: i64 },
    /// The fetch failed for a reason that may pass: 503 until then.
    Unreachable { until_ms: i64 },
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<Source, Entry>,
    window_start_ms: i64,
    /// Fetches this minute for regions without a usable certificate.
    fetches_in_window: u32,
    /// Fetches this minute per region that has one (at most one key per
    /// region with a ready certificate, so bounded by [`MAX_ENTRIES`]).
    warm_fetches_in_window: HashMap<String, u32>,
}

impl Inner {
    /// True when a usable certificate of `region` is cached.
    fn has_ready_certificate(&self, region: &str) -> bool {
        self.entries.iter().any(|(source, entry)| {
            matches!(entry, Entry::Ready(_))
                && matches!(source, Source::Url(url) if url_region(url) == Some(region))
        })
    }
}

/// The answer of an HTTP GET.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// HTTP status code.
    pub status: u16,
    /// The body, at most the limit the fetcher was given.
    pub body: Vec<u8>,
}

/// An HTTPS GET, injectable so that tests never reach the network.
pub trait Fetch: Send + Sync {
    /// Fetches `url`, reading at most `max_bytes` of its body.
    fn get<'a>(&'a self, url: &'a str, max_bytes: usize) -> BoxFuture<'a, Result<Fetched, String>>;
}

/// The real fetcher: hyper over rustls with the system's root certificates,
/// built on first use (most containers never need it).
#[derive(Debug, Default)]
pub struct HttpsFetcher {
    client: std::sync::OnceLock<Result<HttpsClient, String>>,
}

type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Empty<Bytes>>;

impl HttpsFetcher {
    /// A fetcher whose client is built on first use.
    pub const fn new() -> HttpsFetcher {
        HttpsFetcher {
            client: std::sync::OnceLock::new(),
        }
    }

    fn client(&self) -> Result<&HttpsClient, String> {
        self.client
            .get_or_init(|| {
                let connector = hyper_rustls::HttpsConnectorBuilder::new()
                    .with_provider_and_native_roots(rustls::crypto::aws_lc_rs::default_provider())
                    .map_err(|e| format!("TLS roots: {e}"))?
                    .https_only()
                    .enable_http1()
                    .build();
                Ok(Client::builder(TokioExecutor::new()).build(connector))
            })
            .as_ref()
            .map_err(Clone::clone)
    }
}

impl Fetch for HttpsFetcher {
    fn get<'a>(&'a self, url: &'a str, max_bytes: usize) -> BoxFuture<'a, Result<Fetched, String>> {
        Box::pin(async move {
            let uri: lambda_http::http::Uri = url.parse().map_err(|_| "bad URL".to_owned())?;
            let response = self
                .client()?
                .get(uri)
                .await
                .map_err(|e| format!("request failed: {e}"))?;
            let status = response.status().as_u16();
            let body = Limited::new(response.into_body(), max_bytes)
                .collect()
                .await
                .map_err(|e| format!("body: {e}"))?
                .to_bytes();
            Ok(Fetched {
                status,
                body: body.to_vec(),
            })
        })
    }
}

/// The certificates of this container, with remembered failures.
#[derive(Debug, Default)]
pub struct CertStore {
    inner: Mutex<Inner>,
}

impl CertStore {
    /// An empty store.
    pub fn new() -> CertStore {
        CertStore::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        // A panic elsewhere while holding the lock leaves a usable map behind.
        let mut guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    }

    /// What verification finds: the certificate, or the 401 of a known-bad
    /// one; `None` when nothing is known (the pre-authentication step did not run).
    pub fn lookup(
        &self,
        source: &Source,
        now_ms: i64,
    ) -> Option<Result<Arc<Certificate>, AuthError>> {
        self.with(|inner| match inner.entries.get(source)? {
            Entry::Ready(cert) => Some(Ok(cert.clone())),
            Entry::Missing { until_ms } if *until_ms > now_ms => {
                Some(Err(AuthError::UnknownCertificate))
            }
            _ => None,
        })
    }

    /// Makes sure the certificate of `source` is known: read from its file or
    /// fetched. Err (503) when it cannot be had now; a certificate that does
    /// not exist is remembered and refused later by [`CertStore::lookup`].
    pub async fn ensure(
        &self,
        source: &Source,
        now_ms: i64,
        fetcher: &dyn Fetch,
    ) -> Result<(), Unavailable> {
        let known = self.with(|inner| match inner.entries.get(source) {
            Some(Entry::Ready(_)) => Some(Ok(())),
            Some(Entry::Missing { until_ms }) if *until_ms > now_ms => Some(Ok(())),
            Some(Entry::Unreachable { until_ms }) if *until_ms > now_ms => Some(Err(unavailable(
                "certificate_unavailable",
                "recently unreachable",
            ))),
            _ => None,
        });
        if let Some(answer) = known {
            return answer;
        }
        let entry = match source {
            Source::File(path) => read_file(path)?,
            Source::Url(url) => {
                self.take_fetch_budget(url, now_ms)?;
                fetch(url, now_ms, fetcher).await
            }
        };
        let result = match entry {
            Entry::Unreachable { .. } => Err(unavailable(
                "certificate_unavailable",
                "the signing certificate could not be fetched",
            )),
            _ => Ok(()),
        };
        self.insert(source.clone(), entry, now_ms);
        result
    }

    /// Counts a fetch of `url` against its budget: its region's own allowance
    /// when that region has a usable certificate, the shared one otherwise.
    fn take_fetch_budget(&self, url: &str, now_ms: i64) -> Result<(), Unavailable> {
        let spent = || {
            unavailable(
                "certificate_unavailable",
                "certificate fetch budget spent for this minute",
            )
        };
        self.with(|inner| {
            if now_ms.saturating_sub(inner.window_start_ms) >= 60_000 {
                inner.window_start_ms = now_ms;
                inner.fetches_in_window = 0;
                inner.warm_fetches_in_window.clear();
            }
            let warm = url_region(url).filter(|r| inner.has_ready_certificate(r));
            let (count, limit) = match warm {
                Some(region) => (
                    inner
                        .warm_fetches_in_window
                        .entry(region.to_owned())
                        .or_default(),
                    MAX_FETCHES_PER_WARM_REGION,
                ),
                None => (&mut inner.fetches_in_window, MAX_FETCHES_PER_MINUTE),
            };
            if *count >= limit {
                return Err(spent());
            }
            *count += 1;
            Ok(())
        })
    }

    /// Remembers what was learnt about `source`. When full: expired failures go
    /// first, then the other failures; a usable certificate is never evicted
    /// to remember a failure (the failure is then not remembered; the fetch
    /// budget still bounds its refetching), only to make room for another.
    fn insert(&self, source: Source, entry: Entry, now_ms: i64) {
        self.with(|inner| {
            if inner.entries.len() >= MAX_ENTRIES && !inner.entries.contains_key(&source) {
                inner.entries.retain(|_, e| match e {
                    Entry::Ready(_) => true,
                    Entry::Missing { until_ms } | Entry::Unreachable { until_ms } => {
                        *until_ms > now_ms
                    }
                });
                if inner.entries.len() >= MAX_ENTRIES {
                    inner.entries.retain(|_, e| matches!(e, Entry::Ready(_)));
                }
                if inner.entries.len() >= MAX_ENTRIES {
                    if !matches!(entry, Entry::Ready(_)) {
                        return;
                    }
                    if let Some(victim) = inner.entries.keys().next().cloned() {
                        inner.entries.remove(&victim);
                    }
                }
            }
            inner.entries.insert(source, entry);
        });
    }

    /// How many sources the store knows (for tests of the bound).
    pub fn len(&self) -> usize {
        self.with(|inner| inner.entries.len())
    }

    /// True when the store knows nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn unavailable(code: &'static str, detail: &str) -> Unavailable {
    Unavailable {
        code,
        detail: detail.to_owned(),
    }
}

/// A certificate from `SNS_CERTIFICATES_DIR`. A missing or unusable file is a
/// 503: the message may be genuine, and SNS retries while the operator adds it.
fn read_file(path: &Path) -> Result<Entry, Unavailable> {
    let not_provided = || {
        unavailable(
            "certificate_not_provided",
            "the signing certificate is not in SNS_CERTIFICATES_DIR",
        )
    };
    let metadata = std::fs::metadata(path).map_err(|_| not_provided())?;
    if metadata.len() > MAX_CERT_BYTES as u64 {
        return Err(not_provided());
    }
    let pem = std::fs::read(path).map_err(|_| not_provided())?;
    let cert = Certificate::from_pem(&pem).ok_or_else(not_provided)?;
    Ok(Entry::Ready(Arc::new(cert)))
}

/// Fetches a certificate URL within [`FETCH_TIMEOUT`].
async fn fetch(url: &str, now_ms: i64, fetcher: &dyn Fetch) -> Entry {
    let unreachable = Entry::Unreachable {
        until_ms: now_ms.saturating_add(UNREACHABLE_TTL_MS),
    };
    let missing = Entry::Missing {
        until_ms: now_ms.saturating_add(MISSING_TTL_MS),
    };
    match tokio::time::timeout(FETCH_TIMEOUT, fetcher.get(url, MAX_CERT_BYTES)).await {
        Ok(Ok(Fetched { status: 200, body })) => match Certificate::from_pem(&body) {
            Some(cert) => Entry::Ready(Arc::new(cert)),
            None => missing,
        },
        Ok(Ok(Fetched {
            status: 403 | 404 | 410,
            ..
        })) => missing,
        _ => unreachable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    const AWS_PEM: &[u8] = include_bytes!("../../../tests/fixtures/ses/sns_signing_cert.pem.txt");

    /// Answers every URL with one canned response and counts the calls.
    struct Canned {
        answer: Result<Fetched, String>,
        calls: AtomicU32,
    }

    impl Canned {
        fn new(answer: Result<Fetched, String>) -> Canned {
            Canned {
                answer,
                calls: AtomicU32::new(0),
            }
        }
    }

    impl Fetch for Canned {
        fn get<'a>(&'a self, _: &'a str, _: usize) -> BoxFuture<'a, Result<Fetched, String>> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let answer = self.answer.clone();
            Box::pin(async move { answer })
        }
    }

    fn url(n: usize) -> Source {
        Source::Url(format!(
            "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-{n}.pem"
        ))
    }

    #[test]
    fn the_aws_certificate_parses_with_its_validity_period() {
        let cert = Certificate::from_pem(AWS_PEM).unwrap();
        assert_eq!(cert.not_before_ms, 1_630_972_800_000); // 2021-09-07
        assert!(cert.not_after_ms > cert.not_before_ms);
        let inside = cert.not_before_ms + 1;
        assert_eq!(cert.check_validity(Freshness::Within(300), inside), Ok(()));
        assert_eq!(
            cert.check_validity(Freshness::Within(300), cert.not_after_ms + 1),
            Err(AuthError::ExpiredCertificate)
        );
        assert_eq!(
            cert.check_validity(Freshness::Disabled, cert.not_after_ms + 1),
            Ok(())
        );
    }

    #[test]
    fn garbage_certificates_are_refused_without_panicking() {
        let text = std::str::from_utf8(AWS_PEM).unwrap();
        let mut inputs: Vec<Vec<u8>> = vec![
            Vec::new(),
            b"-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n".to_vec(),
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".to_vec(),
            vec![0xff; 4096],
        ];
        for cut in (0..text.len()).step_by(97) {
            inputs.push(text.as_bytes()[..cut].to_vec());
        }
        // One base64 character changed at a time inside the body.
        for at in (40..text.len() - 40).step_by(53) {
            let mut bytes = AWS_PEM.to_vec();
            bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
            inputs.push(bytes);
        }
        for input in inputs {
            let _ = Certificate::from_pem(&input);
        }
        assert!(Certificate::from_pem(&AWS_PEM[..AWS_PEM.len() / 2]).is_none());
    }

    #[tokio::test]
    async fn a_fetched_certificate_is_cached_for_the_container() {
        let store = CertStore::new();
        let fetcher = Canned::new(Ok(Fetched {
            status: 200,
            body: AWS_PEM.to_vec(),
        }));
        for _ in 0..3 {
            store.ensure(&url(1), 0, &fetcher).await.unwrap();
        }
        assert_eq!(fetcher.calls.load(Ordering::SeqCst), 1);
        assert!(matches!(store.lookup(&url(1), 10_000_000), Some(Ok(_))));
    }

    #[tokio::test]
    async fn a_certificate_aws_does_not_have_is_refused_and_remembered_briefly() {
        let store = CertStore::new();
        let fetcher = Canned::new(Ok(Fetched {
            status: 404,
            body: Vec::new(),
        }));
        store.ensure(&url(1), 0, &fetcher).await.unwrap();
        store.ensure(&url(1), 1_000, &fetcher).await.unwrap();
        assert_eq!(fetcher.calls.load(Ordering::SeqCst), 1);
        assert_eq!(
            store.lookup(&url(1), 1_000),
            Some(Err(AuthError::UnknownCertificate))
        );
        store
            .ensure(&url(1), MISSING_TTL_MS + 1, &fetcher)
            .await
            .unwrap();
        assert_eq!(fetcher.calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn an_unreachable_certificate_is_a_503_and_not_refetched_at_once() {
        let store = CertStore::new();
        for answer in [
            Err("connection refused".to_owned()),
            Ok(Fetched {
                status: 500,
                body: Vec::new(),
            }),
        ] {
            let fetcher = Canned::new(answer);
            let first = store.ensure(&url(2), 0, &fetcher).await.unwrap_err();
            assert_eq!(first.code, "certificate_unavailable");
            assert!(store.ensure(&url(2), 5_000, &fetcher).await.is_err());
            assert_eq!(fetcher.calls.load(Ordering::SeqCst), 1);
            assert_eq!(store.lookup(&url(2), 5_000), None);
            // The next test case starts after the remembered failure expired.
            store.insert(url(2), Entry::Unreachable { until_ms: 0 }, 0);
        }
    }

    /// A fetch that never answers.
    struct Hanging;

    impl Fetch for Hanging {
        fn get<'a>(&'a self, _: &'a str, _: usize) -> BoxFuture<'a, Result<Fetched, String>> {
            Box::pin(std::future::pending())
        }
    }

    #[tokio::test]
    async fn a_hanging_fetch_ends_at_the_timeout_with_a_503() {
        let store = CertStore::new();
        let started = std::time::Instant::now();
        let err = store.ensure(&url(3), 0, &Hanging).await.unwrap_err();
        assert_eq!(err.code, "certificate_unavailable");
        let waited = started.elapsed();
        assert!(
            waited >= FETCH_TIMEOUT && waited < FETCH_TIMEOUT * 3,
            "{waited:?}"
        );
    }

    #[tokio::test]
    async fn distinct_urls_cannot_make_unbounded_fetches_or_entries() {
        let store = CertStore::new();
        let fetcher = Canned::new(Ok(Fetched {
            status: 404,
            body: Vec::new(),
        }));
        let mut refused = 0;
        for n in 0..100 {
            if store.ensure(&url(n), 1_000, &fetcher).await.is_err() {
                refused += 1;
            }
        }
        assert_eq!(fetcher.calls.load(Ordering::SeqCst), MAX_FETCHES_PER_MINUTE);
        assert_eq!(refused, 100 - MAX_FETCHES_PER_MINUTE as usize);
        // Over many minutes the cache stays bounded.
        for minute in 1..20 {
            for n in 0..MAX_FETCHES_PER_MINUTE as usize {
                let _ = store
                    .ensure(
                        &url(1000 * minute + n),
                        minute as i64 * 60_000 + 1_000,
                        &fetcher,
                    )
                    .await;
            }
        }
        assert!(store.len() <= MAX_ENTRIES);
    }

    fn ready() -> Entry {
        Entry::Ready(Arc::new(Certificate::from_pem(AWS_PEM).unwrap()))
    }

    fn url_in(region: &str, n: usize) -> Source {
        Source::Url(format!(
            "https://sns.{region}.amazonaws.com/SimpleNotificationService-{n}.pem"
        ))
    }

    #[test]
    fn a_ready_certificate_is_never_evicted_for_a_failure() {
        let store = CertStore::new();
        for n in 0..MAX_ENTRIES {
            store.insert(url(n), ready(), 0);
        }
        for n in 0..10 {
            let failure = Entry::Missing { until_ms: 60_000 };
            store.insert(url(1000 + n), failure, 0);
        }
        assert_eq!(store.len(), MAX_ENTRIES);
        for n in 0..MAX_ENTRIES {
            assert!(matches!(store.lookup(&url(n), 0), Some(Ok(_))), "{n}");
        }
        assert_eq!(store.lookup(&url(1000), 0), None);
        // Failures make room for each other, never by taking a certificate's place.
        let store = CertStore::new();
        store.insert(url(0), ready(), 0);
        for n in 1..200 {
            store.insert(url(n), Entry::Missing { until_ms: 60_000 }, 0);
        }
        assert!(store.len() <= MAX_ENTRIES);
        assert!(matches!(store.lookup(&url(0), 0), Some(Ok(_))));
    }

    #[tokio::test]
    async fn made_up_names_in_a_served_region_do_not_spend_a_cold_region_budget() {
        let store = CertStore::new();
        store.insert(url_in("us-east-1", 0), ready(), 0);
        let missing = Canned::new(Ok(Fetched {
            status: 404,
            body: Vec::new(),
        }));
        let mut fetched = 0;
        for n in 1..50 {
            if store
                .ensure(&url_in("us-east-1", n), 1_000, &missing)
                .await
                .is_ok()
            {
                fetched += 1;
            }
        }
        assert_eq!(fetched, MAX_FETCHES_PER_WARM_REGION);
        // A region with no certificate yet still has its whole budget.
        let genuine = Canned::new(Ok(Fetched {
            status: 200,
            body: AWS_PEM.to_vec(),
        }));
        store
            .ensure(&url_in("eu-west-1", 1), 2_000, &genuine)
            .await
            .unwrap();
        assert!(matches!(
            store.lookup(&url_in("eu-west-1", 1), 2_000),
            Some(Ok(_))
        ));
        // The next minute gives the served region its allowance again.
        store
            .ensure(&url_in("us-east-1", 99), 61_000, &missing)
            .await
            .unwrap();
        assert_eq!(
            missing.calls.load(Ordering::SeqCst),
            MAX_FETCHES_PER_WARM_REGION + 1
        );
    }

    #[tokio::test]
    async fn a_directory_certificate_needs_no_fetch_and_a_missing_one_is_a_503() {
        let dir = std::env::temp_dir().join(format!("mailhooks-certs-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("SimpleNotificationService-a.pem"), AWS_PEM).unwrap();
        let store = CertStore::new();
        let never = Canned::new(Err("no network in this test".into()));
        let present = Source::new(
            Some(&dir),
            "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-a.pem",
            "SimpleNotificationService-a.pem",
        );
        store.ensure(&present, 0, &never).await.unwrap();
        assert!(matches!(store.lookup(&present, 0), Some(Ok(_))));
        let absent = Source::new(Some(&dir), "", "SimpleNotificationService-b.pem");
        let err = store.ensure(&absent, 0, &never).await.unwrap_err();
        assert_eq!(err.code, "certificate_not_provided");
        assert_eq!(never.calls.load(Ordering::SeqCst), 0);
    }
}
