//! `template.yaml` must declare what the code expects: the table's keys, index
//! and TTL attribute, the environment the configuration reads, the one
//! permission the store uses and routes the router accepts; each `FrontDoor`
//! value must create exactly one front door (HTTP API, Function URL, ALB) and
//! every provider a URL through it; its dashboard and alarms must read metrics
//! the code emits (`src/metrics.rs`) and its Logs Insights widgets fields of the
//! same line; the ALB must serve Tencent on a port Tencent accepts, and the
//! optional direct SES sources (EventBridge, SNS) must each be let in by a
//! permission for that one source.
//!
//! There is no YAML crate among the dependencies, so the template is read by a
//! small indentation scanner that understands the subset the file uses: block
//! mappings, block sequences (`- `), inline scalars and comment lines.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

use mailhooks::EventType;
use mailhooks::config::{self, Config};
use mailhooks::metrics::{self, RequestMetrics};
use mailhooks::providers;
use mailhooks::store::codec::{
    INDEXES, PARTITION_KEY, RECIPIENT, RECIPIENT_INDEX, SORT_KEY, SUPPRESSION, SUPPRESSION_INDEX,
    TTL_ATTRIBUTE,
};
use serde_json::Value;

const TEMPLATE: &str = include_str!("../../template.yaml");

/// Tencent Cloud SES only accepts callback URLs on these ports.
const TENCENT_CALLBACK_PORTS: std::ops::RangeInclusive<u16> = 8080..=8082;

/// EngageLab gives up on a webhook answer after this long.
const ENGAGELAB_DEADLINE_MS: f64 = 3000.0;

/// Variables the template may set that [`Config`] does not read: the log filter
/// is read by `telemetry::init`.
const OTHER_ENV: &[&str] = &["RUST_LOG", mailhooks::secrets::SECRETS_ARN_ENV];

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
            .all(|c| c.is_ascii_alphanumeric() || "_-:./{}".contains(c));
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

/// The single `AWS::Lambda::Permission` granted to `principal`.
fn permission_for<'a>(doc: &[Line<'a>], principal: &str) -> (&'a str, Vec<Line<'a>>) {
    let mut found: Vec<_> = resources(doc, "AWS::Lambda::Permission")
        .into_iter()
        .filter(|(_, body)| scalar(body, &["Properties", "Principal"]) == Some(principal))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "template: expected one permission for {principal}"
    );
    found.remove(0)
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
    let expected: BTreeSet<_> = [PARTITION_KEY, SORT_KEY, RECIPIENT, SUPPRESSION]
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
fn indexes_match_the_code() {
    let doc = lines(TEMPLATE);
    let (_, table) = resource(&doc, "AWS::DynamoDB::Table");
    let indexes = items(&at(&table, &["Properties", "GlobalSecondaryIndexes"]));
    let names: Vec<_> = indexes
        .iter()
        .map(|i| scalar(i, &["IndexName"]).unwrap_or_default())
        .collect();
    assert_eq!(
        names,
        [RECIPIENT_INDEX, SUPPRESSION_INDEX],
        "global secondary indexes"
    );
    for ((index, partition), code) in indexes.iter().zip([RECIPIENT, SUPPRESSION]).zip(INDEXES) {
        let name = scalar(index, &["IndexName"]).unwrap_or_default();
        assert_eq!(name, code.name);
        assert_eq!(
            key_schema(&at(index, &["KeySchema"])),
            [pair(partition, "HASH"), pair(SORT_KEY, "RANGE")],
            "{name} key schema"
        );
        assert_eq!(
            scalar(index, &["Projection", "ProjectionType"]),
            Some("INCLUDE"),
            "{name} projection"
        );
        // Exactly what the views print: one missing would be blank in the CLI.
        let projected: Vec<&str> = items(&at(index, &["Projection", "NonKeyAttributes"]))
            .iter()
            .map(|item| item[0].text)
            .collect();
        assert_eq!(
            projected,
            code.projected().collect::<Vec<_>>(),
            "{name} projected attributes"
        );
    }
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
        // Fed by a parameter of its own that CloudFormation never shows.
        let value = variables
            .iter()
            .find(|v| v.key == provider.secrets_env())
            .and_then(|v| v.value)
            .unwrap_or_default();
        let parameter = value.strip_prefix("!Ref ").unwrap_or_else(|| {
            panic!(
                "{} must be `!Ref <a parameter>` for {}",
                provider.secrets_env(),
                provider.name()
            )
        });
        assert_eq!(
            scalar(&doc, &["Parameters", parameter, "NoEcho"]),
            Some("true"),
            "parameter {parameter} of {} must be NoEcho",
            provider.name()
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
fn policy_grants_only_what_the_code_needs() {
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
        BTreeSet::from([
            "dynamodb:PutItem",
            "dynamodb:BatchGetItem",
            "dynamodb:PartiQLInsert",
            "dynamodb:DescribeTable"
        ]),
        "DynamoDB actions granted to the function"
    );
    let other_actions: BTreeSet<&str> = text
        .iter()
        .flat_map(|t| t.split(|c: char| c.is_whitespace() || "[],\"'".contains(c)))
        .filter(|word| {
            word.contains(':') && !word.starts_with("dynamodb:") && !word.starts_with('!')
        })
        .filter(|word| {
            word.split(':').next().is_some_and(|service| {
                service
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            })
        })
        .collect();
    assert_eq!(
        other_actions,
        BTreeSet::from(["secretsmanager:GetSecretValue", "s3:PutObject"]),
        "the only other actions: reading the provider secret, archiving large raw payloads"
    );
    let table_arn = format!("!GetAtt {table_id}.Arn");
    let resources: Vec<&str> = text
        .iter()
        .filter_map(|t| split_key(t.trim_start_matches("- ")))
        .filter(|(key, _)| *key == "Resource")
        .map(|(_, value)| value.unwrap_or_default())
        .collect();
    let archive_objects = "!Sub \"${RawPayloadBucket.Arn}/raw/*\"";
    assert_eq!(
        resources,
        [table_arn.as_str(), "!Ref SecretsArn", archive_objects],
        "policy resources: the table, the one secret, the archive's raw/ objects"
    );
    assert!(
        text.iter().any(|t| t.contains("HasSecretsArn")),
        "the secret statement exists only when a secret is configured"
    );
    // The only wildcard: object keys under the archive's raw/ prefix.
    assert!(
        text.iter()
            .all(|t| !t.replace("/raw/*", "/raw/").contains('*')),
        "no other wildcard in the function policy: {text:?}"
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
// The front doors.

/// The values of the `FrontDoor` parameter, and the condition each creates.
const FRONT_DOORS: [(&str, &str); 3] = [
    ("HttpApi", "UseHttpApi"),
    ("FunctionUrl", "UseFunctionUrl"),
    ("Alb", "UseAlb"),
];

/// The resource types that make up each front door.
fn front_door_types(condition: &str) -> &'static [&'static str] {
    match condition {
        "UseHttpApi" => &["AWS::ApiGatewayV2::Api", "AWS::ApiGatewayV2::Stage"],
        "UseFunctionUrl" => &["AWS::Lambda::Url"],
        "UseAlb" => &[
            "AWS::EC2::SecurityGroup",
            "AWS::ElasticLoadBalancingV2::LoadBalancer",
            "AWS::ElasticLoadBalancingV2::TargetGroup",
            "AWS::ElasticLoadBalancingV2::Listener",
        ],
        other => panic!("no front door {other}"),
    }
}

/// The parameters a deployment with `front_door` must give besides it.
fn front_door_deployment(front_door: &'static str) -> Vec<(&'static str, &'static str)> {
    match front_door {
        "Alb" => {
            let mut given = ALB_NETWORK.to_vec();
            given.push(("AlbIngressCidr", "0.0.0.0/0"));
            given
        }
        other => vec![("FrontDoor", other)],
    }
}

#[test]
fn each_front_door_value_creates_exactly_one_front_door() {
    let doc = lines(TEMPLATE);
    let parameters = at(&doc, &["Parameters"]);
    assert_eq!(
        scalar(&parameters, &["FrontDoor", "Default"]),
        Some("HttpApi"),
        "the HTTP API stays the default"
    );
    let allowed = parse_flow(scalar(&parameters, &["FrontDoor", "AllowedValues"]).unwrap());
    let values: Vec<Flow> = FRONT_DOORS
        .iter()
        .map(|(value, _)| Flow::Scalar((*value).to_owned()))
        .collect();
    assert_eq!(allowed, Flow::List(values));

    // Every resource of a front door carries its condition, and only front-door
    // resources do.
    let all_conditions: Vec<&str> = FRONT_DOORS.iter().map(|(_, c)| *c).collect();
    for (_, condition) in FRONT_DOORS {
        for resource_type in front_door_types(condition) {
            let found = resources(&doc, resource_type);
            assert!(!found.is_empty(), "no {resource_type}");
            for (id, body) in found {
                assert_eq!(scalar(&body, &["Condition"]), Some(condition), "{id}");
            }
        }
    }
    for entry in entries(&at(&doc, &["Resources"])) {
        let resource_type = scalar(&entry.body, &["Type"]).unwrap_or_default();
        let is_front_door = all_conditions
            .iter()
            .any(|c| front_door_types(c).contains(&resource_type));
        let prefix_of_one = ["AWS::ApiGatewayV2::", "AWS::ElasticLoadBalancingV2::"]
            .iter()
            .any(|p| resource_type.starts_with(p))
            || resource_type == "AWS::Lambda::Url"
            || resource_type == "AWS::Serverless::HttpApi";
        assert!(
            !prefix_of_one || is_front_door,
            "{}: {resource_type} belongs to no front door",
            entry.key
        );
    }

    // Each value makes exactly its own condition true, and is accepted by the Rules
    // once its own requirements are given.
    for (value, condition) in FRONT_DOORS {
        let given = front_door_deployment(value);
        let deployment = Deployment::new(&doc, &given);
        let on: Vec<&str> = all_conditions
            .iter()
            .copied()
            .filter(|c| deployment.condition(c))
            .collect();
        assert_eq!(on, [condition], "FrontDoor={value}");
        assert_eq!(
            deployment.refused_by(),
            Vec::<String>::new(),
            "FrontDoor={value}"
        );
    }
}

#[test]
fn http_api_routes_reach_every_provider_and_logs_skip_the_query() {
    let doc = lines(TEMPLATE);
    let (api_id, api) = resource(&doc, "AWS::ApiGatewayV2::Api");
    let (function_id, _) = resource(&doc, "AWS::Serverless::Function");
    let invocations = format!("${{{function_id}.Arn}}/invocations\"");
    let paths = entries(&at(&api, &["Properties", "Body", "paths"]));
    assert_eq!(paths.len(), 1, "one path");
    let path = paths[0].key;
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
    let mut methods = BTreeSet::new();
    for operation in entries(&paths[0].body) {
        if operation.key == "parameters" {
            continue;
        }
        let integration = at(&operation.body, &["x-amazon-apigateway-integration"]);
        let method = operation.key;
        assert_eq!(
            scalar(&integration, &["type"]),
            Some("aws_proxy"),
            "{method}"
        );
        assert!(
            scalar(&integration, &["uri"]).is_some_and(|uri| uri.ends_with(&invocations)),
            "{method}: the integration invokes {function_id}"
        );
        // The payload src/invocation.rs reads as API Gateway v2 (a Function URL's too).
        assert_eq!(
            scalar(&integration, &["payloadFormatVersion"]),
            Some("2.0"),
            "{method}"
        );
        methods.insert(method.to_ascii_uppercase());
    }
    assert_eq!(
        methods,
        BTreeSet::from(["GET".to_owned(), "HEAD".to_owned(), "POST".to_owned()])
    );

    // The HTTP API throttles every route; the function may be invoked by this API only.
    let (_, stage) = resource(&doc, "AWS::ApiGatewayV2::Stage");
    let api_ref = format!("!Ref {api_id}");
    assert_eq!(
        scalar(&stage, &["Properties", "ApiId"]),
        Some(api_ref.as_str())
    );
    let throttling = at(&stage, &["Properties", "DefaultRouteSettings"]);
    assert_eq!(
        scalar(&throttling, &["ThrottlingRateLimit"]),
        Some("!Ref ThrottlingRateLimit")
    );
    let (id, permission) = permission_for(&doc, "apigateway.amazonaws.com");
    assert_eq!(
        scalar(&permission, &["Condition"]),
        Some("UseHttpApi"),
        "{id}"
    );
    let source = scalar(&permission, &["Properties", "SourceArn"]).unwrap_or_default();
    assert!(
        source.contains(&format!("${{{api_id}}}/")) && source.ends_with("/webhooks/*\""),
        "{id}: {source}"
    );

    // Access log: tokens can travel in the query string, so no path or query.
    let format = at(&stage, &["Properties", "AccessLogSettings", "Format"]);
    assert!(!format.is_empty(), "an access log format");
    for line in &format {
        assert!(
            !line.text.contains("$context.path") && !line.text.contains("query"),
            "access log format must not record the path or query: {}",
            line.text
        );
    }
}

#[test]
fn function_url_is_public_and_bounded_by_reserved_concurrency() {
    let doc = lines(TEMPLATE);
    let (function_id, _) = resource(&doc, "AWS::Serverless::Function");
    let function_arn = format!("!GetAtt {function_id}.Arn");
    let (id, url) = resource(&doc, "AWS::Lambda::Url");
    let properties = at(&url, &["Properties"]);
    // The function authenticates every request itself, as behind the other doors.
    assert_eq!(scalar(&properties, &["AuthType"]), Some("NONE"), "{id}");
    assert_eq!(
        scalar(&properties, &["TargetFunctionArn"]),
        Some(function_arn.as_str())
    );

    // Both permissions a public URL needs, for calls through the URL only.
    let public: Vec<_> = resources(&doc, "AWS::Lambda::Permission")
        .into_iter()
        .filter(|(_, body)| scalar(body, &["Properties", "Principal"]) == Some("*"))
        .collect();
    let actions: BTreeSet<&str> = public
        .iter()
        .map(|(_, body)| scalar(body, &["Properties", "Action"]).unwrap_or_default())
        .collect();
    assert_eq!(
        actions,
        BTreeSet::from(["lambda:InvokeFunction", "lambda:InvokeFunctionUrl"])
    );
    for (id, body) in &public {
        assert_eq!(scalar(body, &["Condition"]), Some("UseFunctionUrl"), "{id}");
        let properties = at(body, &["Properties"]);
        // Each public action is scoped its own way: the URL action to an
        // unauthenticated URL, the invoke action to invocations through the URL.
        let scoped = match scalar(&properties, &["Action"]) {
            Some("lambda:InvokeFunctionUrl") => {
                scalar(&properties, &["FunctionUrlAuthType"]) == Some("NONE")
            }
            Some("lambda:InvokeFunction") => {
                scalar(&properties, &["InvokedViaFunctionUrl"]) == Some("true")
            }
            _ => false,
        };
        assert!(scoped, "{id}: public, but only through the URL");
    }

    // Reserved concurrency is set by default and cannot be turned off on this path.
    let (_, function) = resource(&doc, "AWS::Serverless::Function");
    let expression = parse_flow(
        scalar(&function, &["Properties", "ReservedConcurrentExecutions"])
            .expect("ReservedConcurrentExecutions"),
    );
    let url_door = [("FrontDoor", "FunctionUrl")];
    let deployment = Deployment::new(&doc, &url_door);
    assert!(
        deployment.value(&expression).is_some(),
        "reserved by default"
    );
    let unbounded = Deployment::new(
        &doc,
        &[
            ("FrontDoor", "FunctionUrl"),
            ("FrontDoorReservedConcurrency", "-1"),
        ],
    );
    assert!(
        !unbounded.refused_by().is_empty(),
        "a Function URL without reserved concurrency must be refused"
    );
    let explicit = Deployment::new(
        &doc,
        &[
            ("FrontDoor", "FunctionUrl"),
            ("FrontDoorReservedConcurrency", "-1"),
            ("ReservedConcurrency", "5"),
        ],
    );
    assert_eq!(explicit.refused_by(), Vec::<String>::new());
    assert_eq!(explicit.value(&expression), Some("5".into()));
}

#[test]
fn every_provider_has_a_webhook_url_through_every_front_door() {
    let doc = lines(TEMPLATE);
    let outputs = entries(&at(&doc, &["Outputs"]));
    let (api_id, _) = resource(&doc, "AWS::ApiGatewayV2::Api");
    let (url_id, _) = resource(&doc, "AWS::Lambda::Url");
    let (lb_id, _) = resource(&doc, "AWS::ElasticLoadBalancingV2::LoadBalancer");
    let mut bases = BTreeSet::new();
    for provider in providers::ALL {
        let route = format!("/webhooks/{}", provider.name());
        assert_eq!(
            mailhooks::app::route(&route).map(|p| p.name()).ok(),
            Some(provider.name())
        );
        let value = outputs
            .iter()
            .filter(|o| scalar(&o.body, &["Condition"]).is_none())
            .filter_map(|o| scalar(&o.body, &["Value"]))
            .find(|v| {
                v.starts_with(&format!(
                    "!Sub [\"${{Base}}webhooks/{}\", ",
                    provider.name()
                ))
            })
            .unwrap_or_else(|| panic!("no unconditional output URL for {}", provider.name()));
        bases.insert(
            value
                .split_once(", ")
                .map(|(_, base)| base)
                .unwrap_or_default(),
        );
    }
    // One base for all of them, naming each front door under its condition, each
    // ending in the / that the route follows (a Function URL's own ends in /).
    assert_eq!(bases.len(), 1, "one base URL expression: {bases:?}");
    let base = bases.pop_first().unwrap_or_default();
    for needed in [
        format!("!If [UseHttpApi, !Sub \"https://${{{api_id}}}.execute-api."),
        format!("{}/\"", "${AWS::URLSuffix}"),
        format!("!If [UseFunctionUrl, !GetAtt {url_id}.FunctionUrl, "),
        format!("!Sub \"https://${{{lb_id}.DNSName}}/\""),
    ] {
        assert!(base.contains(&needed), "{needed} not in {base}");
    }
}

// ---------------------------------------------------------------------------
// Monitoring: the dashboard and the alarms.

/// One metric a dashboard widget or an alarm reads.
#[derive(Debug, Clone)]
struct MetricRef {
    /// Where it is read, for messages.
    origin: String,
    namespace: String,
    name: String,
    /// Dimension names and values; a SEARCH names the dimensions only.
    dimensions: BTreeMap<String, Option<String>>,
    /// The statistic, when one is given.
    stat: Option<String>,
}

impl MetricRef {
    fn is(&self, namespace: &str, name: &str) -> bool {
        self.namespace == namespace && self.name == name
    }

    fn dimension_names(&self) -> BTreeSet<String> {
        self.dimensions.keys().cloned().collect()
    }

    fn dimension(&self, name: &str) -> Option<&str> {
        self.dimensions.get(name)?.as_deref()
    }

    /// Whether it is one of the code's own (EMF) metrics rather than an AWS one.
    fn is_custom(&self) -> bool {
        !self.namespace.starts_with("AWS/")
    }
}

/// The dashboard's logical id and its body, which must be JSON once `!Sub` has
/// replaced its `${...}` (all of which sit inside JSON strings).
fn dashboard(doc: &[Line<'_>]) -> (String, Value) {
    let (id, dashboard) = resource(doc, "AWS::CloudWatch::Dashboard");
    let (text, _) = dashboard_sub(&dashboard);
    let json =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("DashboardBody is not JSON: {e}"));
    (id.to_owned(), json)
}

/// The dashboard's `!Sub [body, variables]`: the body's text and the variables'
/// definitions (name, inline value).
fn dashboard_sub<'a>(dashboard: &[Line<'a>]) -> (String, Vec<(&'a str, &'a str)>) {
    let body = entry(&at(dashboard, &["Properties"]), "DashboardBody").expect("a DashboardBody");
    assert_eq!(
        body.value,
        Some("!Sub"),
        "DashboardBody is a !Sub with variables"
    );
    let parts = items(&body.body);
    assert_eq!(parts.len(), 2, "!Sub [body, variables]");
    assert_eq!(parts[0][0].text, "|", "the body is a literal block");
    let text: Vec<&str> = parts[0][1..].iter().map(|l| l.text).collect();
    let variables = entries(&parts[1])
        .into_iter()
        .map(|v| (v.key, v.value.unwrap_or_default()))
        .collect();
    (text.join("\n"), variables)
}

/// The metrics named by `SEARCH('{namespace,dimension,...} MetricName="name"', 'stat', period)`
/// calls in a metric-math expression.
fn searched(expression: &str, origin: &str) -> Vec<MetricRef> {
    expression
        .split("SEARCH(")
        .skip(1)
        .map(|call| {
            let quoted: Vec<&str> = call.split('\'').collect();
            let (query, stat) = match quoted.as_slice() {
                ["", query, _, stat, ..] => (query.trim(), stat),
                _ => panic!("{origin}: unreadable SEARCH({call}"),
            };
            let (schema, filter) = query
                .strip_prefix('{')
                .and_then(|q| q.split_once('}'))
                .unwrap_or_else(|| panic!("{origin}: SEARCH without a {{schema}}: {query}"));
            let mut schema = schema.split(',').map(|s| unquote(s).to_owned());
            let namespace = schema.next().unwrap_or_default();
            let name = filter
                .split_once("MetricName=\"")
                .and_then(|(_, rest)| rest.split_once('"'))
                .map(|(name, _)| name.to_owned())
                .unwrap_or_else(|| panic!("{origin}: SEARCH without MetricName=\"...\": {query}"));
            MetricRef {
                origin: origin.to_owned(),
                namespace,
                name,
                dimensions: schema.map(|d| (d, None)).collect(),
                stat: Some((*stat).to_owned()),
            }
        })
        .collect()
}

/// Every metric the dashboard's metric widgets read: explicit rows
/// `[namespace, name, dimension, value, ..., {options}]` and SEARCH expressions.
fn dashboard_metrics(body: &Value) -> Vec<MetricRef> {
    let widgets = body["widgets"].as_array().expect("dashboard widgets");
    let mut out = Vec::new();
    for widget in widgets.iter().filter(|w| w["type"] == "metric") {
        let properties = &widget["properties"];
        let origin = format!("dashboard widget {}", properties["title"]);
        let default_stat = properties["stat"].as_str();
        let rows = properties["metrics"].as_array().expect("widget metrics");
        assert!(!rows.is_empty(), "{origin} has no metrics");
        for row in rows {
            let row = row.as_array().expect("a metrics row");
            if let Some(expression) = row.first().and_then(|first| first["expression"].as_str()) {
                out.extend(searched(expression, &origin));
                continue;
            }
            let (options, strings) = match row.split_last() {
                Some((Value::Object(options), strings)) => (Some(options), strings),
                _ => (None, row.as_slice()),
            };
            let strings: Vec<&str> = strings
                .iter()
                .map(|s| s.as_str().expect("metric row strings"))
                .collect();
            assert!(
                strings.len() >= 2 && strings.len().is_multiple_of(2) && !strings.contains(&"."),
                "{origin}: write rows out in full, without the \".\" shorthand: {strings:?}"
            );
            let stat = options
                .and_then(|o| o.get("stat"))
                .and_then(Value::as_str)
                .or(default_stat);
            out.push(MetricRef {
                origin: origin.clone(),
                namespace: strings[0].to_owned(),
                name: strings[1].to_owned(),
                dimensions: strings[2..]
                    .chunks(2)
                    .map(|d| (d[0].to_owned(), Some(d[1].to_owned())))
                    .collect(),
                stat: stat.map(str::to_owned),
            });
        }
    }
    out
}

/// A `Namespace` / `MetricName` / `Dimensions` mapping of an alarm.
fn alarm_metric(block: &[Line<'_>], stat: Option<&str>, origin: &str) -> MetricRef {
    let dimensions = entry(block, "Dimensions")
        .map(|e| e.body)
        .unwrap_or_default();
    MetricRef {
        origin: origin.to_owned(),
        namespace: scalar(block, &["Namespace"])
            .unwrap_or_else(|| panic!("{origin}: no Namespace"))
            .to_owned(),
        name: scalar(block, &["MetricName"])
            .unwrap_or_else(|| panic!("{origin}: no MetricName"))
            .to_owned(),
        dimensions: items(&dimensions)
            .iter()
            .map(|d| {
                let get = |key| scalar(d, &[key]).map(str::to_owned);
                (get("Name").unwrap_or_default(), get("Value"))
            })
            .collect(),
        stat: stat.map(str::to_owned),
    }
}

/// Every alarm: (logical id, its lines, the metrics it reads). Each reads either
/// one metric (`MetricName` in its properties) or `Metrics` with `MetricStat`s.
fn alarms<'a>(doc: &[Line<'a>]) -> Vec<(&'a str, Vec<Line<'a>>, Vec<MetricRef>)> {
    resources(doc, "AWS::CloudWatch::Alarm")
        .into_iter()
        .map(|(id, alarm)| {
            let properties = at(&alarm, &["Properties"]);
            let origin = format!("alarm {id}");
            let mut read = Vec::new();
            if entry(&properties, "MetricName").is_some() {
                let stat = scalar(&properties, &["Statistic"])
                    .or_else(|| scalar(&properties, &["ExtendedStatistic"]));
                read.push(alarm_metric(&properties, stat, &origin));
            }
            for item in items(
                &entry(&properties, "Metrics")
                    .map(|e| e.body)
                    .unwrap_or_default(),
            ) {
                if entry(&item, "MetricStat").is_some() {
                    let stat = scalar(&item, &["MetricStat", "Stat"]);
                    read.push(alarm_metric(
                        &at(&item, &["MetricStat", "Metric"]),
                        stat,
                        &origin,
                    ));
                }
            }
            let named = alarm
                .iter()
                .filter(|l| l.text.starts_with("MetricName:"))
                .count();
            assert_eq!(
                read.len(),
                named,
                "{origin}: a metric the scanner did not read"
            );
            assert!(!read.is_empty(), "{origin} reads no metric");
            (id, alarm, read)
        })
        .collect()
}

/// (namespace, dimension names, metric name) of every metric the code emits.
fn emitted_metrics() -> BTreeSet<(String, BTreeSet<String>, String)> {
    let sample = RequestMetrics {
        provider: providers::ALL[0].name().to_owned(),
        status: 200,
        stored: 1,
        stored_by_type: BTreeMap::from([(EventType::ALL[0], 1)]),
        ..RequestMetrics::default()
    };
    let mut out = BTreeSet::new();
    {
        let line: Value =
            serde_json::from_str(&metrics::emf_line(&sample, 0)).expect("an EMF line is JSON");
        for directive in line["_aws"]["CloudWatchMetrics"]
            .as_array()
            .expect("EMF directives")
        {
            let namespace = directive["Namespace"].as_str().expect("a namespace");
            for set in directive["Dimensions"].as_array().expect("dimension sets") {
                let set: BTreeSet<String> = set
                    .as_array()
                    .expect("a dimension set")
                    .iter()
                    .map(|d| d.as_str().expect("a dimension name").to_owned())
                    .collect();
                for metric in directive["Metrics"].as_array().expect("metric definitions") {
                    let name = metric["Name"].as_str().expect("a metric name");
                    out.insert((namespace.to_owned(), set.clone(), name.to_owned()));
                }
            }
        }
    }
    out
}

#[test]
fn dashboard_and_alarms_read_metrics_the_code_emits() {
    let doc = lines(TEMPLATE);
    let (function_id, _) = resource(&doc, "AWS::Serverless::Function");
    let (_, body) = dashboard(&doc);
    let mut read = dashboard_metrics(&body);
    read.extend(alarms(&doc).into_iter().flat_map(|(_, _, read)| read));
    let emitted = emitted_metrics();

    for metric in read.iter().filter(|m| m.is_custom()) {
        let origin = &metric.origin;
        assert_eq!(
            metric.namespace,
            metrics::NAMESPACE,
            "{origin}: namespace of {}",
            metric.name
        );
        let key = (
            metric.namespace.clone(),
            metric.dimension_names(),
            metric.name.clone(),
        );
        assert!(
            emitted.contains(&key),
            "{origin}: the code emits no {} with dimensions {:?}",
            metric.name,
            key.1
        );
        // This stack's function: never another stack's series in the same account.
        let value = metric.dimension(metrics::DIMENSION);
        assert!(
            value == Some(format!("${{{function_id}}}").as_str())
                || value == Some(format!("!Ref {function_id}").as_str()),
            "{origin}: {} {} = {value:?}",
            metric.name,
            metrics::DIMENSION
        );
    }

    // The dashboard graphs every metric the code emits.
    let shown = dashboard_metrics(&body);
    for (_, dimensions, name) in &emitted {
        assert!(
            shown
                .iter()
                .any(|m| m.is(metrics::NAMESPACE, name) && m.dimension_names() == *dimensions),
            "the dashboard does not show {name}"
        );
    }
}

/// The fields a Logs Insights query reads: `sum(x)`, `filter x ...`,
/// `ispresent(x)` and `by x`.
fn query_fields(query: &str) -> BTreeSet<String> {
    let mut fields = BTreeSet::new();
    for (open, close) in [("sum(", ')'), ("ispresent(", ')')] {
        for part in query.split(open).skip(1) {
            fields.extend(part.split(close).next().map(str::to_owned));
        }
    }
    for stage in query.split('|').map(str::trim) {
        if let Some(rest) = stage.strip_prefix("filter ") {
            fields.extend(
                rest.split_whitespace()
                    .next()
                    .filter(|f| !f.contains('('))
                    .map(str::to_owned),
            );
        }
        if let Some((_, by)) = stage.split_once(" by ") {
            fields.extend(by.split(',').map(|f| f.trim().to_owned()));
        }
    }
    fields
}

#[test]
fn log_widgets_read_fields_the_metrics_line_has() {
    let doc = lines(TEMPLATE);
    let (_, body) = dashboard(&doc);
    let (log_group, _) = resources(&doc, "AWS::Logs::LogGroup")
        .into_iter()
        .find(|(_, group)| scalar(group, &["Condition"]).is_none())
        .expect("the function's log group");
    // A line with every member present: every event type stored once.
    let sample = RequestMetrics {
        provider: providers::ALL[0].name().to_owned(),
        status: 200,
        stored: EventType::ALL.len(),
        stored_by_type: EventType::ALL.iter().map(|t| (*t, 1)).collect(),
        ..RequestMetrics::default()
    };
    let line: Value = serde_json::from_str(&metrics::emf_line(&sample, 0)).unwrap();
    let has = |field: &str| {
        let mut value = &line;
        for part in field.split('.') {
            value = &value[part];
        }
        !value.is_null()
    };

    let queries: Vec<&str> = body["widgets"]
        .as_array()
        .expect("widgets")
        .iter()
        .filter(|w| w["type"] == "log")
        .map(|w| w["properties"]["query"].as_str().expect("a query"))
        .collect();
    assert!(!queries.is_empty(), "Logs Insights widgets");
    let mut read = BTreeSet::new();
    for query in &queries {
        assert!(
            query.starts_with(&format!("SOURCE '${{{log_group}}}' | ")),
            "reads the function's log: {query}"
        );
        for field in query_fields(query) {
            assert!(has(&field), "the metrics line has no {field}: {query}");
            read.insert(field);
        }
    }
    // Which provider fails, and the event-type mix of every type.
    for needed in ["provider", "ServerErrors", "AuthFailures", "Quarantined"] {
        assert!(read.contains(needed), "no widget reads {needed}");
    }
    for event_type in EventType::ALL {
        let field = format!("stored_by_type.{}", event_type.as_str());
        assert!(read.contains(&field), "no widget reads {field}");
    }
}

#[test]
fn dashboard_shows_this_stacks_function_table_and_front_door() {
    let doc = lines(TEMPLATE);
    let (function_id, _) = resource(&doc, "AWS::Serverless::Function");
    let (table_id, _) = resource(&doc, "AWS::DynamoDB::Table");
    let (api_id, _) = resource(&doc, "AWS::ApiGatewayV2::Api");
    let (lb_id, _) = resource(&doc, "AWS::ElasticLoadBalancingV2::LoadBalancer");
    let (_, dashboard_lines) = resource(&doc, "AWS::CloudWatch::Dashboard");
    let (_, variables) = dashboard_sub(&dashboard_lines);
    let (_, body) = dashboard(&doc);
    let mut read = dashboard_metrics(&body);
    read.extend(alarms(&doc).into_iter().flat_map(|(_, _, read)| read));

    // A front door that may not exist is named through a variable that falls back
    // to a placeholder when it does not.
    let variable = |name: &str| {
        variables
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| *value)
            .unwrap_or_else(|| panic!("no !Sub variable {name}"))
    };
    let api_variable = format!("!If [UseHttpApi, !Ref {api_id}, none]");
    let lb_variable = format!("!If [UseAlb, !GetAtt {lb_id}.LoadBalancerFullName, none]");
    let variable_is = |value: Option<&str>, expected: &str| {
        value
            .and_then(|v| v.strip_prefix("${"))
            .and_then(|v| v.strip_suffix('}'))
            .is_some_and(|name| variable(name) == expected)
    };

    // Dimensions of AWS metrics point at this stack's resources.
    let refers_to = |value: Option<&str>, id: &str| {
        value == Some(format!("${{{id}}}").as_str()) || value == Some(format!("!Ref {id}").as_str())
    };
    for metric in read.iter().filter(|m| !m.is_custom()) {
        for (dimension, value) in &metric.dimensions {
            let value = value.as_deref();
            let ok = match dimension.as_str() {
                "FunctionName" => refers_to(value, function_id),
                "TableName" => refers_to(value, table_id),
                "ApiId" => variable_is(value, &api_variable),
                "LoadBalancer" => variable_is(value, &lb_variable),
                "GlobalSecondaryIndexName" => value == Some(RECIPIENT_INDEX),
                "QueueName" => value == Some("!GetAtt SesUndeliveredQueue.QueueName"),
                // The only operation the function is allowed.
                "Operation" => value == Some("PutItem"),
                _ => false,
            };
            assert!(
                ok,
                "{}: {} {dimension} = {value:?}",
                metric.origin, metric.name
            );
        }
    }

    let shown = dashboard_metrics(&body);
    let has = |namespace: &str, name: &str, stat: Option<&str>| {
        shown
            .iter()
            .any(|m| m.is(namespace, name) && (stat.is_none() || m.stat.as_deref() == stat))
    };
    for stat in ["p50", "p99"] {
        assert!(
            has("AWS/Lambda", "Duration", Some(stat)),
            "Lambda Duration {stat}"
        );
    }
    for name in ["Errors", "Throttles", "ConcurrentExecutions"] {
        assert!(has("AWS/Lambda", name, None), "Lambda {name}");
    }
    for name in ["WriteThrottleEvents", "ThrottledRequests"] {
        assert!(has("AWS/DynamoDB", name, None), "DynamoDB {name}");
    }
    // Each front door's requests, 4xx, 5xx and latency: what the function's own
    // metrics no longer count.
    for (namespace, names) in [
        ("AWS/ApiGateway", ["Count", "4xx", "5xx", "Latency"]),
        (
            "AWS/Lambda",
            [
                "UrlRequestCount",
                "Url4xxCount",
                "Url5xxCount",
                "UrlRequestLatency",
            ],
        ),
        (
            "AWS/ApplicationELB",
            [
                "RequestCount",
                "HTTPCode_Target_4XX_Count",
                "HTTPCode_Target_5XX_Count",
                "TargetResponseTime",
            ],
        ),
    ] {
        for name in names {
            assert!(has(namespace, name, None), "{namespace} {name}");
        }
    }
}

#[test]
fn alarms_cover_every_provider_and_notify_the_topic() {
    let doc = lines(TEMPLATE);
    let parameters = at(&doc, &["Parameters"]);
    assert_eq!(
        scalar(&parameters, &["AlarmTopicArn", "Default"]),
        Some(""),
        "alarms notify no one by default"
    );
    assert_eq!(
        scalar(&doc, &["Conditions", "HasAlarmTopic"]),
        Some("!Not [!Equals [!Ref AlarmTopicArn, \"\"]]")
    );
    let notify = "!If [HasAlarmTopic, [!Ref AlarmTopicArn], !Ref AWS::NoValue]";
    let all = alarms(&doc);
    let (_, body) = dashboard(&doc);

    for (id, alarm, read) in &all {
        for key in ["AlarmActions", "OKActions"] {
            assert_eq!(
                scalar(alarm, &["Properties", key]),
                Some(notify),
                "alarm {id} {key}"
            );
        }
        assert_eq!(
            scalar(alarm, &["Properties", "TreatMissingData"]),
            Some("notBreaching"),
            "alarm {id}: no traffic is no problem"
        );

        // A math alarm sums every metric it reads, so none is left out.
        let properties = at(alarm, &["Properties"]);
        if let Some(metrics) = entry(&properties, "Metrics") {
            let queries = items(&metrics.body);
            let returned: Vec<_> = queries
                .iter()
                .filter(|q| scalar(q, &["ReturnData"]) == Some("true"))
                .collect();
            assert_eq!(returned.len(), 1, "alarm {id}: one returned expression");
            let expression = scalar(returned[0], &["Expression"]).expect("an Expression");
            assert!(
                !expression.starts_with("SELECT"),
                "alarm {id}: a Metrics Insights alarm is billed per series it reads"
            );
            for query in queries.iter().filter(|q| entry(q, "MetricStat").is_some()) {
                let metric_id = scalar(query, &["Id"]).expect("an Id");
                assert!(
                    expression
                        .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
                        .any(|word| word == metric_id),
                    "alarm {id}: {metric_id} is not in {expression}"
                );
            }
        }

        // The dashboard's alarm widget shows it, unless the alarm is optional
        // (a `!Sub` cannot name a resource that may not exist).
        let arn = Value::String(format!("${{{id}.Arn}}"));
        let optional = scalar(alarm, &["Condition"]).is_some();
        assert!(
            optional
                || body["widgets"]
                    .as_array()
                    .expect("widgets")
                    .iter()
                    .filter(|w| w["type"] == "alarm")
                    .any(|w| w["properties"]["alarms"]
                        .as_array()
                        .is_some_and(|a| a.contains(&arn))),
            "the dashboard's alarm widget does not show {id}"
        );
        assert!(!read.is_empty());
    }

    let alarm_on = |namespace: &str, name: &str| {
        all.iter()
            .find(|(_, _, read)| read.iter().any(|m| m.is(namespace, name)))
            .unwrap_or_else(|| panic!("no alarm on {namespace} {name}"))
    };
    alarm_on("AWS/DynamoDB", "WriteThrottleEvents");
    alarm_on("AWS/Lambda", "Errors");

    // The code's counters, all providers in one series: any 5xx and any quarantined
    // body alarm; authentication failures past a threshold.
    for (name, threshold) in [
        ("ServerErrors", "0"),
        ("Quarantined", "0"),
        ("AuthFailures", "!Ref AuthFailureAlarmThreshold"),
    ] {
        let (id, alarm, read) = alarm_on(metrics::NAMESPACE, name);
        assert_eq!(
            scalar(alarm, &["Properties", "Threshold"]),
            Some(threshold),
            "alarm {id}"
        );
        assert_eq!(
            scalar(alarm, &["Properties", "ComparisonOperator"]),
            Some("GreaterThanThreshold"),
            "alarm {id}"
        );
        assert!(
            read.iter().all(|m| m.is(metrics::NAMESPACE, name)),
            "alarm {id}"
        );
        assert_eq!(read[0].stat.as_deref(), Some("Sum"), "alarm {id}");
    }
    assert!(entry(&parameters, "AuthFailureAlarmThreshold").is_some());

    let (id, alarm, read) = alarm_on("AWS/Lambda", "Duration");
    assert_eq!(read[0].stat.as_deref(), Some("p99"), "alarm {id}");
    let threshold: f64 = scalar(alarm, &["Properties", "Threshold"])
        .and_then(|t| t.parse().ok())
        .expect("a numeric Threshold");
    assert!(
        threshold < ENGAGELAB_DEADLINE_MS,
        "alarm {id}: {threshold} ms must be below EngageLab's {ENGAGELAB_DEADLINE_MS} ms"
    );
}

#[test]
fn dashboard_url_output_opens_the_dashboard() {
    let doc = lines(TEMPLATE);
    let (dashboard_id, _) = dashboard(&doc);
    let expected = format!(
        "!Sub \"https://${{AWS::Region}}.console.aws.amazon.com/cloudwatch/home?region=${{AWS::Region}}#dashboards:name=${{{dashboard_id}}}\""
    );
    assert_eq!(
        scalar(&doc, &["Outputs", "DashboardUrl", "Value"]),
        Some(expected.as_str())
    );
    // Optional (a dashboard past the account's free three costs $3 a month), on by default.
    let (_, body) = resource(&doc, "AWS::CloudWatch::Dashboard");
    let condition = scalar(&body, &["Condition"]).expect("the dashboard's condition");
    assert_eq!(
        scalar(&doc, &["Outputs", "DashboardUrl", "Condition"]),
        Some(condition)
    );
    assert!(Deployment::new(&doc, &[]).condition(condition));
    assert!(!Deployment::new(&doc, &[("CreateDashboard", "false")]).condition(condition));
}

// ---------------------------------------------------------------------------
// The ALB front door: HTTPS on 443, and on 8080 for Tencent (its console only
// accepts ports 8080-8082). Its resources' conditions:
// each_front_door_value_creates_exactly_one_front_door.

#[test]
fn alb_is_https_on_443_and_tencents_8080_to_the_function() {
    let doc = lines(TEMPLATE);

    let (function_id, _) = resource(&doc, "AWS::Serverless::Function");
    let (lb_id, lb) = resource(&doc, "AWS::ElasticLoadBalancingV2::LoadBalancer");
    let (tg_id, tg) = resource(&doc, "AWS::ElasticLoadBalancingV2::TargetGroup");
    let listeners = resources(&doc, "AWS::ElasticLoadBalancingV2::Listener");
    let (permission_id, permission) = permission_for(&doc, "elasticloadbalancing.amazonaws.com");
    assert_eq!(scalar(&permission, &["Condition"]), Some("UseAlb"));
    let (sg_id, sg) = resource(&doc, "AWS::EC2::SecurityGroup");
    let function_arn = format!("!GetAtt {function_id}.Arn");

    // The listeners: HTTPS with the certificate, on 443 and on a port Tencent accepts.
    let lb_ref = format!("!Ref {lb_id}");
    let tg_ref = format!("!Ref {tg_id}");
    let mut ports = Vec::new();
    for (id, listener) in &listeners {
        let port: u16 = scalar(listener, &["Properties", "Port"])
            .and_then(|p| p.parse().ok())
            .expect("a numeric listener Port");
        ports.push(port);
        assert_eq!(
            scalar(listener, &["Properties", "Protocol"]),
            Some("HTTPS"),
            "{id}"
        );
        let certificates = items(&at(listener, &["Properties", "Certificates"]));
        assert_eq!(certificates.len(), 1, "{id}");
        assert_eq!(
            scalar(&certificates[0], &["CertificateArn"]),
            Some("!Ref AlbCertificateArn"),
            "{id}"
        );
        assert_eq!(
            scalar(listener, &["Properties", "LoadBalancerArn"]),
            Some(lb_ref.as_str()),
            "{id}"
        );
        let actions = items(&at(listener, &["Properties", "DefaultActions"]));
        assert_eq!(actions.len(), 1, "{id}");
        assert_eq!(scalar(&actions[0], &["Type"]), Some("forward"), "{id}");
        assert_eq!(
            scalar(&actions[0], &["TargetGroupArn"]),
            Some(tg_ref.as_str()),
            "{id}"
        );
    }
    ports.sort_unstable();
    assert_eq!(ports, [443, 8080], "listener ports");
    let port = ports[1];
    assert!(TENCENT_CALLBACK_PORTS.contains(&port));

    // The load balancer faces the internet through the security group, which
    // opens the listener's port.
    assert_eq!(
        scalar(&lb, &["Properties", "Scheme"]),
        Some("internet-facing")
    );
    assert_eq!(scalar(&lb, &["Properties", "Type"]), Some("application"));
    let sg_ref = format!("!Ref {sg_id}");
    assert!(
        scalar(&lb, &["Properties", "SecurityGroups"]).is_some_and(|v| v.contains(&sg_ref)),
        "the ALB uses {sg_id}"
    );
    let ingress = items(&at(&sg, &["Properties", "SecurityGroupIngress"]));
    assert_eq!(ingress.len(), ports.len(), "one ingress rule per listener");
    for (rule, listener_port) in ingress.iter().zip(&ports) {
        let port_text = listener_port.to_string();
        for key in ["FromPort", "ToPort"] {
            assert_eq!(scalar(rule, &[key]), Some(port_text.as_str()), "{key}");
        }
        assert_eq!(scalar(rule, &["IpProtocol"]), Some("tcp"));
        assert_eq!(scalar(rule, &["CidrIp"]), Some("!Ref AlbIngressCidr"));
    }

    // The target group: the function, registered once the permission exists.
    assert_eq!(scalar(&tg, &["Properties", "TargetType"]), Some("lambda"));
    let targets = items(&at(&tg, &["Properties", "Targets"]));
    assert_eq!(targets.len(), 1);
    assert_eq!(scalar(&targets[0], &["Id"]), Some(function_arn.as_str()));
    assert_eq!(
        scalar(&tg, &["DependsOn"]),
        Some(permission_id),
        "{tg_id} DependsOn"
    );

    // The permission: ELB, only from that target group (by its name).
    let properties = at(&permission, &["Properties"]);
    assert_eq!(
        scalar(&properties, &["Principal"]),
        Some("elasticloadbalancing.amazonaws.com")
    );
    assert_eq!(
        scalar(&properties, &["Action"]),
        Some("lambda:InvokeFunction")
    );
    assert_eq!(
        scalar(&properties, &["FunctionName"]),
        Some(function_arn.as_str())
    );
    let tg_name = scalar(&tg, &["Properties", "Name"]).expect("a target group Name");
    let source_arn = scalar(&properties, &["SourceArn"]).expect("a SourceArn");
    assert!(
        source_arn.contains(":targetgroup/${Name}/*") && source_arn.contains(tg_name),
        "SourceArn must name the target group {tg_name}: {source_arn}"
    );

    // Rules refuse the ALB without a network and a certificate.
    let rules: Vec<&str> = at(&doc, &["Rules"]).iter().map(|l| l.text).collect();
    for parameter in ["AlbVpcId", "AlbSubnetIds", "AlbCertificateArn"] {
        assert!(
            rules
                .iter()
                .any(|l| l.contains(&format!("!Ref {parameter}"))),
            "no rule requires {parameter}"
        );
    }

    // The output: the listener's port and the Tencent route.
    let output = at(&doc, &["Outputs", "TencentAlbWebhookUrl"]);
    assert_eq!(scalar(&output, &["Condition"]), Some("UseAlb"));
    let url = scalar(&output, &["Value"]).expect("a URL");
    let path = "/webhooks/tencent";
    assert_eq!(
        url,
        format!("!Sub \"https://${{{lb_id}.DNSName}}:{port}{path}\"")
    );
    assert_eq!(
        mailhooks::app::route(path).map(|p| p.name()).ok(),
        Some("tencent")
    );
}

// ---------------------------------------------------------------------------
// Optional SES events without HTTP: an EventBridge rule and an SNS subscription.

#[test]
fn direct_ses_sources_are_optional_and_each_permission_names_its_one_source() {
    let doc = lines(TEMPLATE);
    let (function_id, _) = resource(&doc, "AWS::Serverless::Function");
    let function_arn = format!("!GetAtt {function_id}.Arn");

    // Off by default; on when the parameter is given.
    let off = Deployment::new(&doc, &[]);
    let on = Deployment::new(
        &doc,
        &[
            ("SesConfigurationSetName", "mailhooks"),
            (
                "SesSnsTopicArn",
                "arn:aws:sns:us-east-1:123456789012:ses-events",
            ),
        ],
    );
    for condition in ["HasSesEventRule", "HasSesSnsTopic"] {
        assert!(
            !off.condition(condition) && on.condition(condition),
            "{condition}"
        );
    }

    // The rule: SES's email events of that configuration set, on the default bus,
    // to the function only.
    let (rule_id, rule) = resource(&doc, "AWS::Events::Rule");
    assert_eq!(scalar(&rule, &["Condition"]), Some("HasSesEventRule"));
    let properties = at(&rule, &["Properties"]);
    assert_eq!(scalar(&properties, &["EventBusName"]), Some("default"));
    let pattern = at(&properties, &["EventPattern"]);
    assert_eq!(
        parse_flow(scalar(&pattern, &["source"]).unwrap()),
        Flow::List(vec![Flow::Scalar(
            mailhooks::invocation::EVENTBRIDGE_SOURCE.into()
        )])
    );
    let detail_types = items(&at(&pattern, &["detail-type"]));
    assert!(!detail_types.is_empty());
    for detail_type in &detail_types {
        assert!(
            detail_type[0].text.starts_with("Email "),
            "{}",
            detail_type[0].text
        );
    }
    assert_eq!(
        scalar(
            &pattern,
            &["detail", "mail", "tags", "ses:configuration-set"]
        ),
        Some("[!Ref SesConfigurationSetName]")
    );
    let targets = items(&at(&properties, &["Targets"]));
    assert_eq!(targets.len(), 1);
    assert_eq!(scalar(&targets[0], &["Arn"]), Some(function_arn.as_str()));

    // The subscription: protocol lambda, that topic, the function.
    let (_, subscription) = resource(&doc, "AWS::SNS::Subscription");
    assert_eq!(
        scalar(&subscription, &["Condition"]),
        Some("HasSesSnsTopic")
    );
    let properties = at(&subscription, &["Properties"]);
    assert_eq!(scalar(&properties, &["Protocol"]), Some("lambda"));
    assert_eq!(
        scalar(&properties, &["TopicArn"]),
        Some("!Ref SesSnsTopicArn")
    );
    assert_eq!(
        scalar(&properties, &["Endpoint"]),
        Some(function_arn.as_str())
    );

    // Nothing lost: what the rule or the topic cannot deliver, and what still
    // fails after Lambda's retries, goes to one queue, which only they may fill.
    let queue = "!GetAtt SesUndeliveredQueue.Arn";
    assert_eq!(
        scalar(&targets[0], &["DeadLetterConfig", "Arn"]),
        Some(queue)
    );
    assert_eq!(
        scalar(&properties, &["RedrivePolicy", "deadLetterTargetArn"]),
        Some(queue)
    );
    let (_, invoke_config) = resource(&doc, "AWS::Lambda::EventInvokeConfig");
    assert_eq!(scalar(&invoke_config, &["Condition"]), Some("HasSesDirect"));
    assert_eq!(
        scalar(
            &invoke_config,
            &[
                "Properties",
                "DestinationConfig",
                "OnFailure",
                "Destination"
            ]
        ),
        Some(queue)
    );
    assert_eq!(
        scalar(&doc, &["Conditions", "HasSesDirect"]),
        Some("!Or [!Condition HasSesEventRule, !Condition HasSesSnsTopic]")
    );
    assert!(on.condition("HasSesDirect") && !off.condition("HasSesDirect"));
    let (_, queue_policy) = resource(&doc, "AWS::SQS::QueuePolicy");
    let policy_text: String = queue_policy
        .iter()
        .map(|l| l.text)
        .collect::<Vec<_>>()
        .join("\n");
    for source in [
        "\"aws:SourceArn\": !GetAtt SesEventRule.Arn",
        "\"aws:SourceArn\": !Ref SesSnsTopicArn",
    ] {
        assert!(
            policy_text.contains(source),
            "queue policy scoped to {source}"
        );
    }

    // Each permission: one service, invoking only from its one rule or topic,
    // under the same condition as what it lets in.
    let rule_arn = format!("!GetAtt {rule_id}.Arn");
    for (principal, condition, source) in [
        ("events.amazonaws.com", "HasSesEventRule", rule_arn.as_str()),
        ("sns.amazonaws.com", "HasSesSnsTopic", "!Ref SesSnsTopicArn"),
    ] {
        let (id, permission) = permission_for(&doc, principal);
        assert_eq!(scalar(&permission, &["Condition"]), Some(condition), "{id}");
        let properties = at(&permission, &["Properties"]);
        assert_eq!(scalar(&properties, &["SourceArn"]), Some(source), "{id}");
        assert_eq!(
            scalar(&properties, &["Action"]),
            Some("lambda:InvokeFunction"),
            "{id}"
        );
        assert_eq!(
            scalar(&properties, &["FunctionName"]),
            Some(function_arn.as_str()),
            "{id}"
        );
    }

    // No way in that is unconditional or not scoped to one source, but the public
    // Function URL's (function_url_is_public_and_bounded_by_reserved_concurrency).
    for (id, permission) in resources(&doc, "AWS::Lambda::Permission") {
        let condition = scalar(&permission, &["Condition"]);
        assert!(condition.is_some(), "{id}");
        assert!(
            condition == Some("UseFunctionUrl")
                || scalar(&permission, &["Properties", "SourceArn"]).is_some(),
            "{id}"
        );
    }
}

// ---------------------------------------------------------------------------
// Intrinsic functions in flow style (`!If [Cond, a, !Ref B]`), evaluated for given
// parameter values: enough of CloudFormation to ask what a deployment would get.

/// A flow-style value: a scalar, a list, or a tagged (intrinsic) value.
#[derive(Debug, Clone, PartialEq)]
enum Flow {
    Scalar(String),
    List(Vec<Flow>),
    Tagged(String, Box<Flow>),
}

/// Parses one flow value from the start of `rest`, advancing it.
fn flow_value(rest: &mut &str) -> Flow {
    *rest = rest.trim_start();
    if let Some(after) = rest.strip_prefix('[') {
        *rest = after;
        let mut list = Vec::new();
        loop {
            *rest = rest.trim_start();
            if let Some(after) = rest.strip_prefix(']') {
                *rest = after;
                return Flow::List(list);
            }
            assert!(!rest.is_empty(), "unclosed [");
            list.push(flow_value(rest));
            *rest = rest.trim_start();
            if let Some(after) = rest.strip_prefix(',') {
                *rest = after;
            }
        }
    } else if let Some(after) = rest.strip_prefix('!') {
        let end = after.find(char::is_whitespace).unwrap_or(after.len());
        let tag = after[..end].to_owned();
        *rest = &after[end..];
        Flow::Tagged(tag, Box::new(flow_value(rest)))
    } else if let Some(after) = rest.strip_prefix('"') {
        let end = after.find('"').expect("a closing quote");
        *rest = &after[end + 1..];
        Flow::Scalar(after[..end].to_owned())
    } else {
        let end = rest.find([',', ']']).unwrap_or(rest.len());
        let scalar = rest[..end].trim().to_owned();
        *rest = &rest[end..];
        Flow::Scalar(scalar)
    }
}

fn parse_flow(text: &str) -> Flow {
    let mut rest = text;
    let value = flow_value(&mut rest);
    assert!(rest.trim().is_empty(), "trailing text after {text}");
    value
}

/// The template deployed with some parameters given, the others at their defaults.
struct Deployment<'a> {
    doc: &'a [Line<'a>],
    given: BTreeMap<&'a str, &'a str>,
}

impl<'a> Deployment<'a> {
    fn new(doc: &'a [Line<'a>], given: &[(&'a str, &'a str)]) -> Self {
        let declared = at(doc, &["Parameters"]);
        for (name, _) in given {
            assert!(entry(&declared, name).is_some(), "no parameter {name}");
        }
        Deployment {
            doc,
            given: given.iter().copied().collect(),
        }
    }

    fn parameter(&self, name: &str) -> String {
        match self.given.get(name) {
            Some(value) => (*value).to_owned(),
            None => scalar(&at(self.doc, &["Parameters"]), &[name, "Default"])
                .unwrap_or_else(|| panic!("parameter {name} has no default"))
                .to_owned(),
        }
    }

    fn condition(&self, name: &str) -> bool {
        let text = scalar(self.doc, &["Conditions", name])
            .unwrap_or_else(|| panic!("no condition {name}"));
        self.holds(&parse_flow(text))
    }

    /// A condition function's truth.
    fn holds(&self, flow: &Flow) -> bool {
        let Flow::Tagged(tag, arg) = flow else {
            panic!("not a condition: {flow:?}")
        };
        let args = |n: usize| match &**arg {
            Flow::List(list) if list.len() >= n => list.clone(),
            other => panic!("!{tag} wants {n}+ arguments: {other:?}"),
        };
        match (tag.as_str(), &**arg) {
            ("Condition", Flow::Scalar(name)) => self.condition(name),
            ("Not", _) => !self.holds(&args(1)[0]),
            ("And", _) => args(2).iter().all(|c| self.holds(c)),
            ("Or", _) => args(2).iter().any(|c| self.holds(c)),
            ("Equals", _) => {
                let pair = args(2);
                self.value(&pair[0]) == self.value(&pair[1])
            }
            // A CommaDelimitedList parameter holding the value as one element.
            ("Contains", _) => {
                let pair = args(2);
                let list = self.value(&pair[0]).unwrap_or_default();
                let wanted = self.value(&pair[1]).unwrap_or_default();
                list.split(',').any(|element| element == wanted)
            }
            _ => panic!("unsupported condition !{tag}"),
        }
    }

    /// A property's value; `None` for `AWS::NoValue` (the property is left out).
    fn value(&self, flow: &Flow) -> Option<String> {
        match flow {
            Flow::Scalar(s) => Some(s.clone()),
            Flow::Tagged(tag, arg) => match (tag.as_str(), &**arg) {
                ("Ref", Flow::Scalar(name)) if name == "AWS::NoValue" => None,
                ("Ref", Flow::Scalar(name)) => Some(self.parameter(name)),
                ("If", Flow::List(branches)) if branches.len() == 3 => {
                    let Flow::Scalar(condition) = &branches[0] else {
                        panic!("!If needs a condition name: {branches:?}")
                    };
                    self.value(&branches[if self.condition(condition) { 1 } else { 2 }])
                }
                _ => panic!("unsupported value !{tag} {arg:?}"),
            },
            Flow::List(_) => panic!("a list is not a value: {flow:?}"),
        }
    }

    /// The `Assert`s of the template's Rules that refuse this deployment.
    fn refused_by(&self) -> Vec<String> {
        let mut refused = Vec::new();
        for rule in entries(&at(self.doc, &["Rules"])) {
            let applies =
                scalar(&rule.body, &["RuleCondition"]).is_none_or(|c| self.holds(&parse_flow(c)));
            if !applies {
                continue;
            }
            for assertion in items(&at(&rule.body, &["Assertions"])) {
                let assert = scalar(&assertion, &["Assert"]).expect("an Assert");
                if !self.holds(&parse_flow(assert)) {
                    refused.push(assert.to_owned());
                }
            }
        }
        refused
    }
}

/// A folded (`>-`) or inline description, as one line of text.
fn description(block: &[Line<'_>], path: &[&str]) -> String {
    let inline = scalar(block, path).unwrap_or_default();
    let folded: Vec<&str> = at(block, path).iter().map(|l| l.text).collect();
    if inline == ">-" || inline.is_empty() {
        folded.join(" ")
    } else {
        inline.to_owned()
    }
}

#[test]
fn flow_evaluator_follows_conditions_and_refs() {
    let doc = lines(
        "Parameters:\n  A:\n    Default: x\n  B:\n    Default: \"\"\nConditions:\n  IsX: !Equals [!Ref A, \"x\"]\n  Both: !And [!Condition IsX, !Not [!Equals [!Ref B, \"\"]]]\n",
    );
    let pick = parse_flow("!If [Both, !Ref B, !If [IsX, \"only x\", !Ref AWS::NoValue]]");
    assert_eq!(
        Deployment::new(&doc, &[]).value(&pick),
        Some("only x".into())
    );
    assert_eq!(
        Deployment::new(&doc, &[("B", "b")]).value(&pick),
        Some("b".into())
    );
    assert_eq!(Deployment::new(&doc, &[("A", "y")]).value(&pick), None);
}

// ---------------------------------------------------------------------------
// The ALB path is bounded like the API path: concurrency and who may connect.
// (The Function URL's bound: function_url_is_public_and_bounded_by_reserved_concurrency.)

/// The Alb* parameters a deployment with the ALB must give (Rules require them).
const ALB_NETWORK: [(&str, &str); 4] = [
    ("FrontDoor", "Alb"),
    ("AlbVpcId", "vpc-0123456789abcdef0"),
    (
        "AlbSubnetIds",
        "subnet-0123456789abcdef0,subnet-0fedcba9876543210",
    ),
    (
        "AlbCertificateArn",
        "arn:aws:acm:eu-west-1:123456789012:certificate/x",
    ),
];

#[test]
fn alb_reserves_concurrency_unless_told_otherwise() {
    let doc = lines(TEMPLATE);
    let (_, function) = resource(&doc, "AWS::Serverless::Function");
    let expression = parse_flow(
        scalar(&function, &["Properties", "ReservedConcurrentExecutions"])
            .expect("ReservedConcurrentExecutions"),
    );
    let reserved = |given: &[(&str, &str)]| Deployment::new(&doc, given).value(&expression);
    let with_alb = |extra: &[(&'static str, &'static str)]| {
        let mut given = ALB_NETWORK.to_vec();
        given.extend_from_slice(extra);
        given
    };

    let parameters = at(&doc, &["Parameters"]);
    let alb_default: u32 = scalar(&parameters, &["FrontDoorReservedConcurrency", "Default"])
        .and_then(|d| d.parse().ok())
        .expect("a numeric FrontDoorReservedConcurrency default");
    // A bound, but one that still serves hundreds of webhooks a second and leaves
    // most of an account's default 1,000 to other functions.
    assert!(
        (5..=100).contains(&alb_default),
        "FrontDoorReservedConcurrency default {alb_default}"
    );

    assert_eq!(
        reserved(&[]),
        None,
        "without the ALB the HTTP API throttles; the function stays unreserved"
    );
    assert_eq!(
        reserved(&with_alb(&[])),
        Some(alb_default.to_string()),
        "with the ALB, concurrency is reserved by default"
    );
    assert_eq!(
        reserved(&with_alb(&[("FrontDoorReservedConcurrency", "7")])),
        Some("7".into())
    );
    assert_eq!(
        reserved(&with_alb(&[("ReservedConcurrency", "50")])),
        Some("50".into()),
        "an explicit ReservedConcurrency wins"
    );
    assert_eq!(
        reserved(&[("ReservedConcurrency", "50")]),
        Some("50".into())
    );
    assert_eq!(
        reserved(&with_alb(&[("FrontDoorReservedConcurrency", "-1")])),
        None,
        "unreserved behind the ALB only when asked for explicitly"
    );
    let why = description(
        &parameters,
        &["FrontDoorReservedConcurrency", "Description"],
    );
    assert!(
        why.contains("-1") && why.contains("explicit"),
        "FrontDoorReservedConcurrency must say that -1 is an explicit opt-out: {why}"
    );
}

#[test]
fn alb_ingress_range_is_an_explicit_choice() {
    let doc = lines(TEMPLATE);
    let parameters = at(&doc, &["Parameters"]);
    assert_eq!(
        scalar(&parameters, &["AlbIngressCidr", "Default"]),
        Some(""),
        "no default range: the operator chooses"
    );
    let pattern = scalar(&parameters, &["AlbIngressCidr", "AllowedPattern"]).unwrap_or_default();
    assert!(
        pattern.ends_with(")?$"),
        "empty must pass AllowedPattern so that the other front doors need nothing: {pattern}"
    );

    // With the ALB, the Rules refuse a deployment that names no range, and accept
    // any range, the whole Internet included, once it is named.
    let refused = Deployment::new(&doc, &ALB_NETWORK).refused_by();
    assert!(
        refused.iter().any(|a| a.contains("!Ref AlbIngressCidr")),
        "FrontDoor Alb without AlbIngressCidr must be refused: {refused:?}"
    );
    for cidr in ["203.0.113.0/24", "0.0.0.0/0"] {
        let mut given = ALB_NETWORK.to_vec();
        given.push(("AlbIngressCidr", cidr));
        assert_eq!(
            Deployment::new(&doc, &given).refused_by(),
            Vec::<String>::new(),
            "{cidr}"
        );
    }
    assert_eq!(
        Deployment::new(&doc, &[]).refused_by(),
        Vec::<String>::new(),
        "without the ALB nothing is required"
    );

    let why = description(&parameters, &["AlbIngressCidr", "Description"]);
    for needed in ["not publish", "0.0.0.0/0"] {
        assert!(
            why.contains(needed),
            "AlbIngressCidr's Description must say {needed:?}: {why}"
        );
    }
}

/// cargo-lambda (and so `sam build`) compiles with `panic = "abort"` unless the
/// release profile names a strategy; the handler relies on lambda_runtime catching
/// panics, which needs unwinding.
#[test]
fn the_release_profile_keeps_panics_catchable() {
    let manifest = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"),
    )
    .unwrap();
    let release: Vec<&str> = manifest
        .lines()
        .skip_while(|l| l.trim() != "[profile.release]")
        .skip(1)
        .take_while(|l| !l.trim_start().starts_with('['))
        .map(str::trim)
        .collect();
    assert!(
        release.contains(&"panic = \"unwind\""),
        "[profile.release] must set panic = \"unwind\": {release:?}"
    );
}
