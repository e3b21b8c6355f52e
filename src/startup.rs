//! Cold-start warnings about how a deployed function is configured. Decided from
//! variable names and the parsed configuration only: no secret value is read into
//! a warning, so none can reach the log.

use crate::auth::Freshness;
use crate::config::DEV_SKIP_FRESHNESS_ENV;
use crate::providers;
use crate::secrets::SECRETS_ARN_ENV;

/// Set by the Lambda service in every function's environment (and nowhere else
/// mailhooks runs): tells a deployment from a local run or a test.
pub const LAMBDA_FUNCTION_NAME_ENV: &str = "AWS_LAMBDA_FUNCTION_NAME";

/// Something about the configuration an operator must hear of at every cold start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Warning {
    /// A deployed function holds provider secrets in plain environment variables,
    /// which anyone allowed `lambda:GetFunctionConfiguration` can read.
    SecretsInEnvironment {
        /// The variables holding secrets (names only).
        variables: Vec<&'static str>,
        /// Whether `SECRETS_ARN` is set too: the plain copies are then exposed for
        /// nothing (or used for the providers the secret leaves out).
        secrets_arn_set: bool,
    },
    /// The development switch is on: signed timestamps are not checked, so a
    /// captured request can be replayed at any time.
    FreshnessDisabled,
}

/// The warnings for an environment read through `get` and the freshness the
/// configuration settled on.
pub fn cold_start_warnings(
    get: impl Fn(&str) -> Option<String>,
    freshness: Freshness,
) -> Vec<Warning> {
    let set = |name: &str| get(name).is_some_and(|v| !v.trim().is_empty());
    let mut warnings = Vec::new();
    if set(LAMBDA_FUNCTION_NAME_ENV) {
        // "," or blanks configure no secret, so only a real entry counts.
        let variables: Vec<&'static str> = providers::ALL
            .iter()
            .map(|p| p.secrets_env())
            .filter(|name| get(name).is_some_and(|v| v.split(',').any(|s| !s.trim().is_empty())))
            .collect();
        if !variables.is_empty() {
            warnings.push(Warning::SecretsInEnvironment {
                variables,
                secrets_arn_set: set(SECRETS_ARN_ENV),
            });
        }
    }
    if freshness == Freshness::Disabled {
        warnings.push(Warning::FreshnessDisabled);
    }
    warnings
}

/// Logs each warning: a `warn` for plain-variable secrets, an `error` (so that
/// error-level alerting and filters catch it) for the disabled timestamp window.
pub fn log_warnings(warnings: &[Warning]) {
    for warning in warnings {
        match warning {
            Warning::SecretsInEnvironment {
                variables,
                secrets_arn_set: false,
            } => tracing::warn!(
                ?variables,
                "provider secrets come from plain environment variables, readable by anyone \
                 allowed lambda:GetFunctionConfiguration: deploy with SecretsArn (a Secrets \
                 Manager secret) and leave these parameters empty"
            ),
            Warning::SecretsInEnvironment {
                variables,
                secrets_arn_set: true,
            } => tracing::warn!(
                ?variables,
                "provider secrets are set in plain environment variables as well as SecretsArn: \
                 put every provider's secrets in the secret and leave these parameters empty"
            ),
            Warning::FreshnessDisabled => tracing::error!(
                variable = DEV_SKIP_FRESHNESS_ENV,
                "SIGNED TIMESTAMPS ARE NOT CHECKED: any captured signed request is accepted \
                 again at any time (replay). This development switch must never be set on a \
                 deployed function; unset it"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    const FRESH: Freshness = Freshness::Within(300);

    fn warnings(pairs: &[(&str, &str)], freshness: Freshness) -> Vec<Warning> {
        let env: HashMap<&str, &str> = pairs.iter().copied().collect();
        cold_start_warnings(|name| env.get(name).map(|v| (*v).to_owned()), freshness)
    }

    const DEPLOYED: (&str, &str) = (LAMBDA_FUNCTION_NAME_ENV, "mailhooks-WebhookFunction-x");

    #[test]
    fn deployed_with_plain_secrets_recommends_secrets_manager() {
        let found = warnings(
            &[
                DEPLOYED,
                ("TENCENT_TOKENS", "t1,t2"),
                ("USPEEDO_TOKENS", "u"),
            ],
            FRESH,
        );
        assert_eq!(
            found,
            [Warning::SecretsInEnvironment {
                variables: vec!["TENCENT_TOKENS", "USPEEDO_TOKENS"],
                secrets_arn_set: false,
            }]
        );
    }

    #[test]
    fn plain_copies_beside_a_secret_are_named_too() {
        let arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:mailhooks-AbCdEf";
        let found = warnings(
            &[
                DEPLOYED,
                (SECRETS_ARN_ENV, arn),
                ("ENGAGELAB_APP_KEYS", "k"),
            ],
            FRESH,
        );
        assert_eq!(
            found,
            [Warning::SecretsInEnvironment {
                variables: vec!["ENGAGELAB_APP_KEYS"],
                secrets_arn_set: true,
            }]
        );
    }

    #[test]
    fn no_secrets_warning_when_nothing_is_exposed() {
        let arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:mailhooks-AbCdEf";
        // The template sets the variables empty when SecretsArn is used.
        let template_with_secret = [
            DEPLOYED,
            (SECRETS_ARN_ENV, arn),
            ("TENCENT_TOKENS", ""),
            ("ENGAGELAB_APP_KEYS", " , "),
            ("USPEEDO_TOKENS", ""),
        ];
        assert_eq!(warnings(&template_with_secret, FRESH), []);
        // A local run or a test: secrets in the environment are expected there.
        assert_eq!(warnings(&[("TENCENT_TOKENS", "t")], FRESH), []);
        assert_eq!(
            warnings(
                &[(LAMBDA_FUNCTION_NAME_ENV, " "), ("TENCENT_TOKENS", "t")],
                FRESH
            ),
            []
        );
    }

    #[test]
    fn disabled_freshness_is_reported_deployed_or_not() {
        assert_eq!(
            warnings(&[], Freshness::Disabled),
            [Warning::FreshnessDisabled]
        );
        assert_eq!(
            warnings(&[DEPLOYED], Freshness::Disabled),
            [Warning::FreshnessDisabled]
        );
        assert_eq!(
            warnings(&[DEPLOYED, ("TENCENT_TOKENS", "t")], Freshness::Disabled),
            [
                Warning::SecretsInEnvironment {
                    variables: vec!["TENCENT_TOKENS"],
                    secrets_arn_set: false,
                },
                Warning::FreshnessDisabled
            ]
        );
        assert_eq!(warnings(&[DEPLOYED], FRESH), []);
    }

    /// The JSON log lines `log_warnings` prints for `warnings`.
    fn logged(warnings: &[Warning]) -> Vec<serde_json::Value> {
        crate::telemetry::captured("trace", || log_warnings(warnings))
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn logged_at_their_levels_with_names_never_values() {
        let secret = "s3cr3t-token-value";
        let found = warnings(&[DEPLOYED, ("TENCENT_TOKENS", secret)], Freshness::Disabled);
        let lines = logged(&found);
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert_eq!(lines[0]["level"], "WARN");
        assert!(
            lines[0]["fields"]["message"]
                .as_str()
                .unwrap()
                .contains("SecretsArn")
        );
        assert!(
            lines[0]["fields"]["variables"]
                .as_str()
                .unwrap()
                .contains("TENCENT_TOKENS")
        );
        assert_eq!(lines[1]["level"], "ERROR");
        assert!(
            lines[1]["fields"]["message"]
                .as_str()
                .unwrap()
                .contains("NOT CHECKED")
        );
        assert_eq!(lines[1]["fields"]["variable"], DEV_SKIP_FRESHNESS_ENV);
        let all = format!("{lines:?}");
        assert!(!all.contains(secret), "a secret value in the log: {all}");
    }
}
