//! The sending side of authentication: what an ESP adds to a request. Used by
//! the local server's demo, the sample events in `events/` and the tests.

use crate::providers::engagelab::hmac_signature;

/// Development secrets of the local run command and of the files in `events/`.
/// Never use them in a deployment.
pub const LOCAL_DEV_SECRETS: [(&str, &str); 3] = [
    ("tencent", "local-tencent-token"),
    ("engagelab", "local-engagelab-key"),
    ("uspeedo", "local-uspeedo-token"),
];

/// The local development secret of a provider.
pub fn local_secret(provider: &str) -> Option<&'static str> {
    LOCAL_DEV_SECRETS
        .iter()
        .find(|(p, _)| *p == provider)
        .map(|(_, s)| *s)
}

/// Query string and headers that authenticate a request to `provider` with
/// `secret`, signed at `unix_secs` (EngageLab's HMAC-SHA256 variant).
pub fn sign(provider: &str, secret: &str, unix_secs: i64) -> (String, Vec<(String, String)>) {
    if provider == "engagelab" {
        let ts = unix_secs.to_string();
        let headers = vec![
            ("X-WebHook-Timestamp".to_owned(), ts.clone()),
            ("X-WebHook-AppKey".to_owned(), "email".to_owned()),
            (
                "X-WebHook-Signature".to_owned(),
                hmac_signature(secret, &ts),
            ),
        ];
        (String::new(), headers)
    } else {
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("token", secret)
            .finish();
        (query, Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_providers_get_a_query_and_engagelab_headers() {
        let (q, h) = sign("tencent", "a b", 1);
        assert_eq!((q.as_str(), h.len()), ("token=a+b", 0));
        let (q, h) = sign("engagelab", "k", 1_700_000_000);
        assert!(q.is_empty());
        assert_eq!(
            h[0],
            ("X-WebHook-Timestamp".to_owned(), "1700000000".to_owned())
        );
        assert_eq!(h[2].1, hmac_signature("k", "1700000000"));
        assert_eq!(local_secret("uspeedo"), Some("local-uspeedo-token"));
    }
}
