//! Configuration from the environment, read once at cold start.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use crate::auth::Freshness;
use crate::providers;

/// Default freshness window for signed timestamps, in seconds.
pub const DEFAULT_TOLERANCE_SECS: u64 = 300;
/// Default largest accepted body: Lambda's synchronous payload limit.
pub const DEFAULT_MAX_BODY_BYTES: usize = 6 * 1024 * 1024;
/// Default bound on the whole storage call, retries included: under the 2 s
/// function timeout, itself well under EngageLab's 3 s answer limit.
pub const DEFAULT_STORE_TIMEOUT: Duration = Duration::from_millis(1500);

/// Everything the handler needs to know from its environment.
#[derive(Debug, Clone)]
pub struct Config {
    /// DynamoDB table name (`TABLE_NAME`).
    pub table_name: String,
    /// Valid secrets per provider name; several at once during rotation.
    pub secrets: BTreeMap<&'static str, Vec<String>>,
    /// The URLs each URL-signing provider was configured with at its ESP
    /// ([`providers::SignedUrl::env`], comma-separated), by provider name.
    pub webhook_urls: BTreeMap<&'static str, Vec<String>>,
    /// Freshness window for signed timestamps.
    pub freshness: Freshness,
    /// Days to keep events (`EVENT_RETENTION_DAYS`); sets the `expires_at` TTL attribute.
    pub retention_days: Option<u32>,
    /// Largest accepted body in bytes (`MAX_BODY_BYTES`).
    pub max_body_bytes: usize,
    /// Bound on storing one request's events, SDK retries included (`STORE_TIMEOUT_MS`).
    pub store_timeout: Duration,
    /// Print CloudWatch EMF metric lines on stdout (`EMIT_METRICS`, default on).
    pub emit_metrics: bool,
    /// S3 bucket for raw payloads too large for their item (`RAW_BUCKET`).
    pub raw_bucket: Option<String>,
    /// Open the DynamoDB connection during the Lambda init phase (`WARM_UP`, default on).
    pub warm_up: bool,
    /// SNS signing certificates on disk, named as their URL's last segment
    /// (`SNS_CERTIFICATES_DIR`): used instead of fetching them.
    pub sns_certificates_dir: Option<std::path::PathBuf>,
}

/// A setting that is present but unusable; the function refuses to start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration: {name}: {problem}")]
pub struct ConfigError {
    /// The environment variable.
    pub name: &'static str,
    /// What is wrong with it.
    pub problem: &'static str,
}

/// The development-only switch that turns the timestamp window off.
pub const DEV_SKIP_FRESHNESS_ENV: &str = "MAILHOOKS_DEV_SKIP_FRESHNESS";

impl Config {
    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the configuration through `get` (the environment, or a map in tests).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let table_name = get("TABLE_NAME")
            .filter(|t| !t.trim().is_empty())
            .ok_or(ConfigError {
                name: "TABLE_NAME",
                problem: "must be set",
            })?;
        let secrets = providers::ALL
            .iter()
            .map(|p| (p.name(), split_secrets(get(p.secrets_env()).as_deref())))
            .collect();
        let webhook_urls = providers::ALL
            .iter()
            .filter_map(|p| Some((p.name(), split_secrets(get(p.signed_url()?.env).as_deref()))))
            .collect();
        let tolerance = parse_number(&get, "SIGNATURE_TOLERANCE_SECS", DEFAULT_TOLERANCE_SECS)?;
        let freshness = if is_true(get(DEV_SKIP_FRESHNESS_ENV).as_deref()) {
            Freshness::Disabled
        } else {
            Freshness::Within(tolerance)
        };
        let retention_days = match get("EVENT_RETENTION_DAYS").filter(|v| !v.trim().is_empty()) {
            None => None,
            Some(v) => Some(v.trim().parse::<u32>().ok().filter(|d| *d > 0).ok_or(
                ConfigError {
                    name: "EVENT_RETENTION_DAYS",
                    problem: "must be a positive whole number of days",
                },
            )?),
        };
        let max_body_bytes = parse_number(&get, "MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES as u64)?;
        let store_timeout_ms = parse_number(
            &get,
            "STORE_TIMEOUT_MS",
            DEFAULT_STORE_TIMEOUT.as_millis() as u64,
        )?;
        Ok(Config {
            table_name: table_name.trim().to_owned(),
            secrets,
            webhook_urls,
            freshness,
            retention_days,
            max_body_bytes: usize::try_from(max_body_bytes).unwrap_or(usize::MAX),
            store_timeout: Duration::from_millis(store_timeout_ms),
            warm_up: get("WARM_UP").is_none_or(|v| v.trim().is_empty() || is_true(Some(&v))),
            raw_bucket: get("RAW_BUCKET")
                .map(|b| b.trim().to_owned())
                .filter(|b| !b.is_empty()),
            sns_certificates_dir: get("SNS_CERTIFICATES_DIR")
                .map(|d| d.trim().to_owned())
                .filter(|d| !d.is_empty())
                .map(std::path::PathBuf::from),
            emit_metrics: get("EMIT_METRICS")
                .is_none_or(|v| v.trim().is_empty() || is_true(Some(&v))),
        })
    }

    /// Replaces the secrets of every provider whose variable appears in `vars`
    /// (the lists read from Secrets Manager win over the environment). Each
    /// entry is one secret as given: nothing is split here.
    pub fn with_secrets_from(mut self, vars: &HashMap<String, Vec<String>>) -> Config {
        for provider in providers::ALL {
            if let Some(list) = vars.get(provider.secrets_env()) {
                self.secrets.insert(provider.name(), list.clone());
            }
        }
        self
    }

    /// The secrets configured for a provider (empty: the provider rejects everything).
    pub fn secrets_for(&self, provider: &str) -> &[String] {
        self.secrets.get(provider).map_or(&[], Vec::as_slice)
    }

    /// The URLs a provider was configured with at its ESP (empty: none set, or
    /// the provider signs no URL).
    pub fn webhook_urls_for(&self, provider: &str) -> &[String] {
        self.webhook_urls.get(provider).map_or(&[], Vec::as_slice)
    }
}

/// A secret variable's comma-separated list: entries trimmed, empty ones dropped.
pub(crate) fn split_secrets(value: Option<&str>) -> Vec<String> {
    value
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn is_true(value: Option<&str>) -> bool {
    matches!(
        value.map(|v| v.trim().to_ascii_lowercase()).as_deref(),
        Some("1" | "true" | "yes")
    )
}

fn parse_number(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: u64,
) -> Result<u64, ConfigError> {
    match get(name).filter(|v| !v.trim().is_empty()) {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or(ConfigError {
                name,
                problem: "must be a positive whole number",
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn secrets_are_comma_separated_lists_per_provider() {
        let c = config(&[
            ("TABLE_NAME", "t"),
            ("TENCENT_TOKENS", " a, b ,,"),
            ("ENGAGELAB_APP_KEYS", "k"),
        ])
        .unwrap();
        assert_eq!(c.secrets_for("tencent"), ["a", "b"]);
        assert_eq!(c.secrets_for("engagelab"), ["k"]);
        assert!(c.secrets_for("uspeedo").is_empty());
        assert_eq!(c.freshness, Freshness::Within(300));
        assert_eq!(c.retention_days, None);
        assert_eq!(c.max_body_bytes, DEFAULT_MAX_BODY_BYTES);
        assert!(c.emit_metrics);
        assert!(
            !config(&[("TABLE_NAME", "t"), ("EMIT_METRICS", "false")])
                .unwrap()
                .emit_metrics
        );
    }

    #[test]
    fn secrets_manager_values_replace_the_environment_per_provider() {
        let c = config(&[
            ("TABLE_NAME", "t"),
            ("TENCENT_TOKENS", "env"),
            ("USPEEDO_TOKENS", "env-u"),
        ])
        .unwrap();
        let vars = HashMap::from([(
            "TENCENT_TOKENS".to_owned(),
            vec!["sm1".to_owned(), "with,comma".to_owned()],
        )]);
        let c = c.with_secrets_from(&vars);
        assert_eq!(c.secrets_for("tencent"), ["sm1", "with,comma"]);
        assert_eq!(c.secrets_for("uspeedo"), ["env-u"]);
    }

    #[test]
    fn overrides_and_dev_switch() {
        let c = config(&[
            ("TABLE_NAME", "t"),
            ("SIGNATURE_TOLERANCE_SECS", "60"),
            ("EVENT_RETENTION_DAYS", "30"),
        ])
        .unwrap();
        assert_eq!(c.freshness, Freshness::Within(60));
        assert_eq!(c.retention_days, Some(30));
        let c = config(&[("TABLE_NAME", "t"), (DEV_SKIP_FRESHNESS_ENV, "true")]).unwrap();
        assert_eq!(c.freshness, Freshness::Disabled);
    }

    #[test]
    fn bad_values_refuse_to_start() {
        assert_eq!(config(&[]).unwrap_err().name, "TABLE_NAME");
        assert_eq!(
            config(&[("TABLE_NAME", "t"), ("SIGNATURE_TOLERANCE_SECS", "soon")])
                .unwrap_err()
                .name,
            "SIGNATURE_TOLERANCE_SECS"
        );
        assert_eq!(
            config(&[("TABLE_NAME", "t"), ("EVENT_RETENTION_DAYS", "0")])
                .unwrap_err()
                .name,
            "EVENT_RETENTION_DAYS"
        );
    }
}
