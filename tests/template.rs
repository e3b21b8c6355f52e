//! `template.yaml` must declare what the code expects: the table's keys, index
//! and TTL attribute, the environment the configuration reads, the one
//! permission the store uses and routes the router accepts.
//!
//! There is no YAML crate among the dependencies, so the template is read by a
//! small indentation scanner that understands the subset the file uses: block
//! mappings, block sequences (`- `), inline scalars and comment lines.

use std::cell::RefCell;
use std::collections::BTreeSet;

use mailhooks::config::{self, Config};
use mailhooks::providers;
use mailhooks::store::item::{PARTITION_KEY, RECIPIENT, RECIPIENT_INDEX, SORT_KEY, TTL_ATTRIBUTE};

const TEMPLATE: &str = include_str!("../template.yaml");

/// Variables the template may set that [`Config`] does not read: the log filter
/// is read by `telemetry::init`.
const OTHER_ENV: &[&str] = &["RUST_LOG"];

// ---------------------------------------------------------------------------
// A minimal indentation scanner.

/// One meaningful line: its indentation and its text without it.
#[derive(Debug, Clone, Copy)]
struct Line<'a> {
    indent: usize,
    text: &'a str,
}

/// A key of a block mapping, its inline value (if any) and the lines under it.
#[derive(Debug)]
struct Entry<'a> {
    key: &'a str,
    value: Option<&'a str>,
    body: Vec<Line<'a>>,
}

fn lines(text: &str) -> Vec<Line<'_>> {
    text.lines()
        .map(str::trim_end)
        .filter_map(|raw| {
            let text = raw.trim_start();
            (!text.is_empty() && !text.starts_with('#')).then(|| Line {
                indent: raw.len() - text.len(),
                text,
            })
        })
        .collect()
}

/// Splits `key: value` / `key:`; `None` for anything else (items, text).
fn split_key(text: &str) -> Option<(&str, Option<&str>)> {
    let (key, rest) = match text.strip_suffix(':') {
        Some(key) => (key, ""),
        None => text.split_once(": ")?,
    };
    let key = unquote(key);
    let well_formed = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-:.".contains(c));
    well_formed.then(|| (key, Some(rest.trim()).filter(|v| !v.is_empty())))
}

fn unquote(value: &str) -> &str {
    let value = value.trim();
    for quote in ['"', '\''] {
        if let Some(inner) = value
            .strip_prefix(quote)
            .and_then(|v| v.strip_suffix(quote))
        {
            return inner;
        }
    }
    value
}

/// The entries of the mapping at the block's outermost indentation. A sequence
/// written at its key's own indentation belongs to that key, as in YAML.
fn entries<'a>(block: &[Line<'a>]) -> Vec<Entry<'a>> {
    let Some(top) = block.iter().map(|l| l.indent).min() else {
        return Vec::new();
    };
    let mut out: Vec<Entry<'a>> = Vec::new();
    let mut in_entry = false;
    for line in block {
        if line.indent == top && !line.text.starts_with("- ") {
            in_entry = false;
            if let Some((key, value)) = split_key(line.text) {
                out.push(Entry {
                    key,
                    value,
                    body: Vec::new(),
                });
                in_entry = true;
            }
        } else if in_entry {
            out.last_mut().expect("an entry").body.push(*line);
        }
    }
    out
}

/// The sequence items of a block; each item's first line is re-indented so
/// that `- Key: value` reads as a mapping entry.
fn items<'a>(block: &[Line<'a>]) -> Vec<Vec<Line<'a>>> {
    let Some(top) = block.iter().map(|l| l.indent).min() else {
        return Vec::new();
    };
    let mut out: Vec<Vec<Line<'a>>> = Vec::new();
    for line in block {
        match line.text.strip_prefix("- ").filter(|_| line.indent == top) {
            Some(first) => out.push(vec![Line {
                indent: top + 2 + (first.len() - first.trim_start().len()),
                text: first.trim_start(),
            }]),
            None => {
                if let Some(item) = out.last_mut() {
                    item.push(*line);
                }
            }
        }
    }
    out
}

fn entry<'a>(block: &[Line<'a>], key: &str) -> Option<Entry<'a>> {
    entries(block).into_iter().find(|e| e.key == key)
}

/// The lines under a path of keys, e.g. `["Properties", "KeySchema"]`.
fn at<'a>(block: &[Line<'a>], path: &[&str]) -> Vec<Line<'a>> {
    let mut current = block.to_vec();
    for key in path {
        current = entry(&current, key)
            .unwrap_or_else(|| panic!("template: no `{}` (looking for {path:?})", key))
            .body;
    }
    current
}

/// An inline scalar under a path of keys, unquoted.
fn scalar<'a>(block: &[Line<'a>], path: &[&str]) -> Option<&'a str> {
    let (last, parents) = path.split_last()?;
    let parent = at(block, parents);
    entry(&parent, last)?.value.map(unquote)
}

/// Every resource of the given type: (logical id, its lines).
fn resources<'a>(doc: &[Line<'a>], resource_type: &str) -> Vec<(&'a str, Vec<Line<'a>>)> {
    entries(&at(doc, &["Resources"]))
        .into_iter()
        .filter(|r| scalar(&r.body, &["Type"]) == Some(resource_type))
        .map(|r| (r.key, r.body))
        .collect()
}

/// The single resource of a type.
fn resource<'a>(doc: &[Line<'a>], resource_type: &str) -> (&'a str, Vec<Line<'a>>) {
    let mut found = resources(doc, resource_type);
    assert_eq!(
        found.len(),
        1,
        "template: expected exactly one {resource_type}"
    );
    found.remove(0)
}

/// A key schema as (attribute, key type) pairs, in order.
fn key_schema(block: &[Line<'_>]) -> Vec<(String, String)> {
    items(block)
        .iter()
        .map(|item| {
            let get = |key| scalar(item, &[key]).unwrap_or_default().to_owned();
            (get("AttributeName"), get("KeyType"))
        })
        .collect()
}

fn pair(name: &str, value: &str) -> (String, String) {
    (name.to_owned(), value.to_owned())
}

// ---------------------------------------------------------------------------
// The scanner itself.

#[test]
fn scanner_reads_mappings_sequences_and_values() {
    let doc =
        lines("A:\n  # note\n  B: 'x'\n  C:\n  - K: v\n    L: w\n  - K: u\n  D: !Ref E\nF: 1\n");
    assert_eq!(scalar(&doc, &["A", "B"]), Some("x"));
    assert_eq!(scalar(&doc, &["A", "D"]), Some("!Ref E"));
    assert_eq!(scalar(&doc, &["F"]), Some("1"));
    let c = at(&doc, &["A", "C"]);
    assert_eq!(items(&c).len(), 2);
    assert_eq!(scalar(&items(&c)[0], &["L"]), Some("w"));
    assert_eq!(scalar(&items(&c)[1], &["K"]), Some("u"));
    assert_eq!(scalar(&doc, &["A", "Z"]), None);
}

// ---------------------------------------------------------------------------
// The table.

#[test]
fn table_keys_match_the_item_layout() {
    let doc = lines(TEMPLATE);
    let (_, table) = resource(&doc, "AWS::DynamoDB::Table");
    assert_eq!(
        key_schema(&at(&table, &["Properties", "KeySchema"])),
        [pair(PARTITION_KEY, "HASH"), pair(SORT_KEY, "RANGE")],
        "table key schema"
    );
    // DynamoDB wants exactly the key attributes defined, each a string here.
    let defined: BTreeSet<(String, String)> =
        items(&at(&table, &["Properties", "AttributeDefinitions"]))
            .iter()
            .map(|item| {
                pair(
                    scalar(item, &["AttributeName"]).unwrap_or_default(),
                    scalar(item, &["AttributeType"]).unwrap_or_default(),
                )
            })
            .collect();
    let expected: BTreeSet<_> = [PARTITION_KEY, SORT_KEY, RECIPIENT]
        .into_iter()
        .map(|name| pair(name, "S"))
        .collect();
    assert_eq!(defined, expected, "attribute definitions");
    assert_eq!(
        scalar(&table, &["Properties", "BillingMode"]),
        Some("PAY_PER_REQUEST")
    );
}

#[test]
fn recipient_index_matches_the_code() {
    let doc = lines(TEMPLATE);
    let (_, table) = resource(&doc, "AWS::DynamoDB::Table");
    let indexes = items(&at(&table, &["Properties", "GlobalSecondaryIndexes"]));
    let names: Vec<_> = indexes
        .iter()
        .map(|i| scalar(i, &["IndexName"]).unwrap_or_default())
        .collect();
    assert_eq!(names, [RECIPIENT_INDEX], "global secondary indexes");
    let index = &indexes[0];
    assert_eq!(
        key_schema(&at(index, &["KeySchema"])),
        [pair(RECIPIENT, "HASH"), pair(SORT_KEY, "RANGE")],
        "{RECIPIENT_INDEX} key schema"
    );
    assert_eq!(
        scalar(index, &["Projection", "ProjectionType"]),
        Some("ALL")
    );
}

#[test]
fn ttl_is_on_the_attribute_the_code_writes() {
    let doc = lines(TEMPLATE);
    let (_, table) = resource(&doc, "AWS::DynamoDB::Table");
    let ttl = ["Properties", "TimeToLiveSpecification"];
    assert_eq!(
        scalar(&table, &[ttl[0], ttl[1], "AttributeName"]),
        Some(TTL_ATTRIBUTE)
    );
    assert_eq!(scalar(&table, &[ttl[0], ttl[1], "Enabled"]), Some("true"));
}

// ---------------------------------------------------------------------------
// The function.

#[test]
fn environment_matches_what_the_configuration_reads() {
    let doc = lines(TEMPLATE);
    let (table_id, _) = resource(&doc, "AWS::DynamoDB::Table");
    let (_, function) = resource(&doc, "AWS::Serverless::Function");
    let variables = entries(&at(&function, &["Properties", "Environment", "Variables"]));
    let set: BTreeSet<&str> = variables.iter().map(|v| v.key).collect();

    let table_ref = format!("!Ref {table_id}");
    let table_var = variables.iter().find(|v| v.key == "TABLE_NAME");
    assert_eq!(
        table_var.and_then(|v| v.value),
        Some(table_ref.as_str()),
        "TABLE_NAME must name the template's table"
    );
    for provider in providers::ALL {
        assert!(
            set.contains(provider.secrets_env()),
            "{} has no {} in the template",
            provider.name(),
            provider.secrets_env()
        );
    }
    assert!(
        !set.contains(config::DEV_SKIP_FRESHNESS_ENV),
        "the development switch must never be deployed"
    );

    // Every variable the template sets is one the code reads (no typos).
    let asked = RefCell::new(BTreeSet::new());
    Config::from_lookup(|name| {
        asked.borrow_mut().insert(name.to_owned());
        (name == "TABLE_NAME").then(|| "t".to_owned())
    })
    .expect("a configuration with only TABLE_NAME");
    let asked = asked.into_inner();
    for name in &set {
        assert!(
            asked.contains(*name) || OTHER_ENV.contains(name),
            "the template sets {name}, which nothing reads"
        );
    }
}

#[test]
fn policy_grants_only_put_item_on_the_table() {
    let doc = lines(TEMPLATE);
    let (table_id, _) = resource(&doc, "AWS::DynamoDB::Table");
    let (_, function) = resource(&doc, "AWS::Serverless::Function");
    let policies = at(&function, &["Properties", "Policies"]);
    let text: Vec<&str> = policies.iter().map(|l| l.text).collect();
    let actions: BTreeSet<&str> = text
        .iter()
        .flat_map(|t| t.split(|c: char| c.is_whitespace() || "[],\"'".contains(c)))
        .filter(|word| word.starts_with("dynamodb:"))
        .collect();
    assert_eq!(
        actions,
        BTreeSet::from(["dynamodb:PutItem"]),
        "DynamoDB actions granted to the function"
    );
    let table_arn = format!("!GetAtt {table_id}.Arn");
    let resources: Vec<&str> = text
        .iter()
        .filter_map(|t| split_key(t.trim_start_matches("- ")))
        .filter(|(key, _)| *key == "Resource")
        .map(|(_, value)| value.unwrap_or_default())
        .collect();
    assert_eq!(resources, [table_arn.as_str()], "policy resources");
    assert!(
        text.iter().all(|t| !t.contains('*')),
        "no wildcard in the function policy: {text:?}"
    );
}

#[test]
fn timeout_leaves_room_for_the_storage_bound() {
    let doc = lines(TEMPLATE);
    let (_, function) = resource(&doc, "AWS::Serverless::Function");
    let timeout_secs: u64 = scalar(&function, &["Properties", "Timeout"])
        .and_then(|t| t.parse().ok())
        .expect("a numeric Timeout");
    let store_ms = config::DEFAULT_STORE_TIMEOUT.as_millis() as u64;
    assert!(
        timeout_secs * 1000 > store_ms,
        "Timeout {timeout_secs}s must exceed the {store_ms} ms storage bound"
    );
    assert_eq!(
        scalar(&function, &["Properties", "Handler"]),
        Some("bootstrap")
    );
}

// ---------------------------------------------------------------------------
// The API.

#[test]
fn routes_reach_every_provider_and_logs_skip_the_query() {
    let doc = lines(TEMPLATE);
    let (api_id, api) = resource(&doc, "AWS::Serverless::HttpApi");
    let (_, function) = resource(&doc, "AWS::Serverless::Function");
    let mut methods = BTreeSet::new();
    for event in entries(&at(&function, &["Properties", "Events"])) {
        assert_eq!(scalar(&event.body, &["Type"]), Some("HttpApi"));
        let api_ref = format!("!Ref {api_id}");
        assert_eq!(
            scalar(&event.body, &["Properties", "ApiId"]),
            Some(api_ref.as_str())
        );
        let path = scalar(&event.body, &["Properties", "Path"]).expect("a Path");
        for provider in providers::ALL {
            let concrete = path.replace("{provider}", provider.name());
            let routed = mailhooks::app::route(&concrete).map(|p| p.name()).ok();
            assert_eq!(
                routed,
                Some(provider.name()),
                "route {path} for {}",
                provider.name()
            );
        }
        methods.insert(scalar(&event.body, &["Properties", "Method"]).expect("a Method"));
    }
    assert_eq!(methods, BTreeSet::from(["GET", "HEAD", "POST"]));

    // Outputs: one URL per provider.
    let outputs = at(&doc, &["Outputs"]);
    for provider in providers::ALL {
        let suffix = format!("/webhooks/{}\"", provider.name());
        assert!(
            outputs.iter().any(|l| l.text.ends_with(&suffix)),
            "no output URL for {}",
            provider.name()
        );
    }

    // Access log: tokens can travel in the query string, so no path or query.
    let format = at(&api, &["Properties", "AccessLogSettings", "Format"]);
    assert!(!format.is_empty(), "an access log format");
    for line in &format {
        assert!(
            !line.text.contains("$context.path") && !line.text.contains("query"),
            "access log format must not record the path or query: {}",
            line.text
        );
    }
}
