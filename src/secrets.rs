//! Provider secrets from AWS Secrets Manager, read once at cold start when
//! `SECRETS_ARN` names a secret. The secret is a JSON object whose keys are the
//! secret variables (`TENCENT_TOKENS`, `ENGAGELAB_APP_KEYS`, `USPEEDO_TOKENS`)
//! and whose values are comma-separated lists (as in the environment) or arrays
//! of secrets. An array entry is one secret, commas included.

use std::collections::HashMap;

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::error::DisplayErrorContext;
use serde_json::Value;

use crate::config::split_secrets;
use crate::providers;

/// The environment variable naming the secret (ARN or name).
pub const SECRETS_ARN_ENV: &str = "SECRETS_ARN";

/// Why the secret could not be used; the function refuses to start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretsError {
    /// Secrets Manager could not be read.
    #[error("cannot read the secret: {0}")]
    Fetch(String),
    /// The secret has no string value or is not a JSON object.
    #[error("the secret must be a JSON object like {{\"TENCENT_TOKENS\": \"a,b\"}}")]
    NotAnObject,
    /// A key that names no provider's secret variable (a typo would silently lock a provider out).
    #[error("unknown key {0:?} in the secret")]
    UnknownKey(String),
    /// A value that is neither a string nor an array of strings.
    #[error("the value of {0} must be a string or an array of strings")]
    BadValue(String),
}

/// Reads the secret and returns each variable's list of secrets.
pub async fn fetch(
    client: &Client,
    secret_id: &str,
) -> Result<HashMap<String, Vec<String>>, SecretsError> {
    let output = client
        .get_secret_value()
        .secret_id(secret_id)
        .send()
        .await
        .map_err(|e| SecretsError::Fetch(DisplayErrorContext(&e).to_string()))?;
    parse(output.secret_string().ok_or(SecretsError::NotAnObject)?)
}

/// Parses a secret's JSON into each variable's list of secrets. A string is
/// split on commas like the environment variable; an array is kept entry by
/// entry, so a secret containing a comma stays whole. Either way entries are
/// trimmed and empty ones dropped (an empty secret must never be accepted).
pub fn parse(secret: &str) -> Result<HashMap<String, Vec<String>>, SecretsError> {
    let Ok(Value::Object(map)) = serde_json::from_str::<Value>(secret) else {
        return Err(SecretsError::NotAnObject);
    };
    let known: Vec<&str> = providers::ALL.iter().map(|p| p.secrets_env()).collect();
    let mut vars = HashMap::new();
    for (key, value) in map {
        if !known.contains(&key.as_str()) {
            return Err(SecretsError::UnknownKey(key));
        }
        let list = match value {
            Value::String(s) => split_secrets(Some(&s)),
            Value::Array(items) => {
                let mut list = Vec::with_capacity(items.len());
                for item in &items {
                    let Some(entry) = item.as_str() else {
                        return Err(SecretsError::BadValue(key));
                    };
                    let entry = entry.trim();
                    if !entry.is_empty() {
                        list.push(entry.to_owned());
                    }
                }
                list
            }
            _ => return Err(SecretsError::BadValue(key)),
        };
        vars.insert(key, list);
    }
    Ok(vars)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_and_arrays_are_accepted() {
        let vars = parse(r#"{"TENCENT_TOKENS":"a,b","ENGAGELAB_APP_KEYS":["k1","k2"]}"#).unwrap();
        assert_eq!(vars["TENCENT_TOKENS"], ["a", "b"]);
        assert_eq!(vars["ENGAGELAB_APP_KEYS"], ["k1", "k2"]);
        assert!(!vars.contains_key("USPEEDO_TOKENS"));
    }

    #[test]
    fn an_array_entry_with_a_comma_is_one_secret() {
        let vars =
            parse(r#"{"USPEEDO_TOKENS":["a,b", " c ", "", "  "],"TENCENT_TOKENS":" x, ,y "}"#)
                .unwrap();
        assert_eq!(vars["USPEEDO_TOKENS"], ["a,b", "c"]);
        assert_eq!(vars["TENCENT_TOKENS"], ["x", "y"]);
        assert_eq!(
            parse(r#"{"USPEEDO_TOKENS":["a", 1]}"#),
            Err(SecretsError::BadValue("USPEEDO_TOKENS".into()))
        );
    }

    #[test]
    fn mistakes_are_named_without_values() {
        assert_eq!(parse("not json"), Err(SecretsError::NotAnObject));
        assert_eq!(parse(r#"["a"]"#), Err(SecretsError::NotAnObject));
        let err = parse(r#"{"TENCENT_TOKEN":"s3cret"}"#).unwrap_err();
        assert_eq!(err, SecretsError::UnknownKey("TENCENT_TOKEN".into()));
        assert!(!err.to_string().contains("s3cret"));
        assert_eq!(
            parse(r#"{"USPEEDO_TOKENS":7}"#),
            Err(SecretsError::BadValue("USPEEDO_TOKENS".into()))
        );
    }
}
