//! One bad event does not take a batch's valid events with it: for every ESP
//! that posts several events per request, a signed batch with one broken event
//! goes through the real handler into the embedded store; the valid events are
//! stored, and the broken one alone is quarantined (answered 200 either way).

use std::collections::BTreeSet;

use mailhooks::store::codec::{PARTITION_KEY, SORT_KEY, sort_key};
use mailhooks::store::quarantine::{self, StoredBody};
use serde_json::{Value, json};

use crate::common::*;

/// A fixture-derived batch of one provider with one event to break.
struct Case {
    provider: &'static str,
    /// The valid batch's items, from these fixtures (an array's items, or the object).
    fixtures: &'static [&'static str],
    /// The body that carries items (signed by the provider's `sign`).
    body: fn(&[Value]) -> Vec<u8>,
    /// What the quarantined body of a broken item is: the item alone.
    alone: fn(&Value) -> Value,
    broken: usize,
    damage: fn(&mut Value),
}

fn array(items: &[Value]) -> Vec<u8> {
    serde_json::to_vec(items).unwrap()
}

fn bare(item: &Value) -> Value {
    item.clone()
}

fn remove(item: &mut Value, field: &str) {
    item.as_object_mut().unwrap().remove(field).unwrap();
}

const CASES: &[Case] = &[
    Case {
        provider: "sendgrid",
        fixtures: &["batch_all_events"],
        body: array,
        alone: bare,
        broken: 3,
        damage: |e| remove(e, "event"),
    },
    Case {
        provider: "brevo",
        fixtures: &["batch"],
        body: array,
        alone: bare,
        broken: 1,
        damage: |e| remove(e, "message-id"),
    },
    Case {
        provider: "tencent",
        fixtures: &["delivered", "open", "bounce", "click"],
        body: array,
        alone: bare,
        broken: 2,
        damage: |e| remove(e, "timestamp"),
    },
    Case {
        provider: "engagelab",
        fixtures: &["delivered", "target_multi", "open"],
        body: array,
        alone: bare,
        broken: 0,
        damage: |e| remove(e, "itime"),
    },
    Case {
        provider: "mailjet",
        fixtures: &["batch_sent", "open", "bounce"],
        body: array,
        alone: bare,
        broken: 2,
        damage: |e| remove(e, "MessageID"),
    },
    Case {
        provider: "uspeedo",
        fixtures: &["deliver", "open", "click"],
        body: |items| serde_json::to_vec(&json!({"MsgType": 2, "Data": items})).unwrap(),
        alone: |item| json!({"Data": [item]}),
        broken: 1,
        damage: |e| remove(e, "MsgId"),
    },
    Case {
        // The JSON array: Mandrill's `sign` posts it form-encoded as `mandrill_events`.
        provider: "mandrill",
        fixtures: &["example_batch_all"],
        body: array,
        alone: bare,
        broken: 4,
        damage: |e| remove(e, "ts"),
    },
    Case {
        provider: "sparkpost",
        fixtures: &["delivered", "bounce", "click"],
        body: array,
        alone: bare,
        broken: 1,
        damage: |e| remove(&mut e["msys"]["message_event"], "type"),
    },
];

/// The items of `names`, fixtures of `provider`; uSpeedo's are its envelope's `Data`.
fn items(provider: &str, names: &[&str]) -> Vec<Value> {
    let mut items = Vec::new();
    for name in names {
        match serde_json::from_slice(&fixture(provider, name)).unwrap() {
            Value::Array(all) => items.extend(all),
            Value::Object(mut one) if provider == "uspeedo" => match one.remove("Data") {
                Some(Value::Array(data)) => items.extend(data),
                _ => panic!("{provider}/{name}: no Data"),
            },
            one => items.push(one),
        }
    }
    items
}

fn text(
    item: &std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>,
    name: &str,
) -> String {
    item[name].as_s().unwrap().clone()
}

async fn one_broken_event_is_quarantined_alone(case: &Case) {
    let name = case.provider;
    let provider = provider(name);
    let mut items = items(name, case.fixtures);
    let broken = items[case.broken].clone();
    (case.damage)(&mut items[case.broken]);
    let body = (case.body)(&items);
    let damaged = items.remove(case.broken);
    let valid = provider.parse(&(case.body)(&items)).unwrap();
    let expected: BTreeSet<(String, String)> = valid
        .iter()
        .map(|e| (e.message_id.clone(), sort_key(e)))
        .collect();
    assert_eq!(expected.len(), valid.len(), "{name}: distinct keys");

    let db = Emulator::start().await;
    let app = app(&db);
    let (status, answer) = parts(app.handle(signed_post(name, &body)).await);
    assert_eq!(status, 200, "{name}: {answer}");
    assert_eq!(answer["stored"], json!(valid.len()), "{name}: {answer}");
    assert_eq!(answer["quarantined"], json!(1), "{name}: {answer}");
    assert_eq!(answer["duplicates"], json!(0), "{name}: {answer}");

    let mut stored = BTreeSet::new();
    let mut records = Vec::new();
    for item in db.items().await {
        match quarantine::decode(&item) {
            Some(record) => records.push((text(&item, PARTITION_KEY), record)),
            None => {
                stored.insert((text(&item, PARTITION_KEY), text(&item, SORT_KEY)));
            }
        }
    }
    assert_eq!(stored, expected, "{name}: the valid events, exactly");
    let [(partition, record)] = records.as_slice() else {
        panic!("{name}: one quarantine record expected, got {records:?}");
    };
    assert_eq!(partition, &format!("quarantine#{name}"));
    assert_eq!(
        record.error_code, "missing_field",
        "{name}: {}",
        record.error
    );
    let StoredBody::Inline(kept) = &record.body else {
        panic!("{name}: {:?}", record.body);
    };
    let kept_value: Value = serde_json::from_slice(kept).unwrap();
    assert_eq!(
        kept_value,
        (case.alone)(&damaged),
        "{name}: the broken event alone"
    );
    let again = provider.parse(kept).unwrap_err();
    assert_eq!(again.code(), "missing_field", "{name}: {again}");

    // Put back, the broken event parses as it did in the valid batch.
    let own = provider.parse(&(case.body)(std::slice::from_ref(&broken)));
    let repaired = provider.parse(&serde_json::to_vec(&(case.alone)(&broken)).unwrap());
    assert_eq!(repaired.unwrap(), own.unwrap(), "{name}");
}

#[tokio::test]
async fn each_batching_provider_stores_the_valid_events_and_quarantines_the_broken_one() {
    for case in CASES {
        one_broken_event_is_quarantined_alone(case).await;
    }
}

/// Every file below `dir` (relative to the crate), sorted; none when it is absent.
fn files_under(dir: &str) -> Vec<(String, Vec<u8>)> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut paths = Vec::new();
    let mut pending = vec![root];
    while let Some(path) = pending.pop() {
        match std::fs::read_dir(&path) {
            Ok(entries) => pending.extend(entries.map(|e| e.unwrap().path())),
            Err(_) => paths.push(path),
        }
    }
    paths.sort();
    paths
        .into_iter()
        .filter_map(|p| Some((p.display().to_string(), std::fs::read(&p).ok()?)))
        .collect()
}

/// The bodies every provider's `parse_each` is held to `parse_request` on: every
/// fixture and fuzz regression, and each batch fixture with one item replaced by
/// a value no provider reads as an event.
fn bodies() -> Vec<(String, Vec<u8>)> {
    let mut bodies = files_under("tests/fixtures");
    bodies.extend(files_under("fuzz/regressions"));
    let batches: Vec<_> = bodies
        .iter()
        .filter_map(|(name, body)| match serde_json::from_slice(body) {
            Ok(Value::Array(items)) if items.len() > 1 => Some((name.clone(), items)),
            _ => None,
        })
        .collect();
    for (name, items) in batches {
        for odd in [json!(5), json!([]), json!([{}]), json!({})] {
            let mut items = items.clone();
            items[1] = odd.clone();
            bodies.push((format!("{name} with {odd}"), array(&items)));
        }
    }
    bodies
}

/// What `parse_each` stores is what `parse_request` stores when the body
/// normalizes whole; when it does not, something is quarantined, and an event
/// quarantined alone fails `parse` with its recorded class.
#[test]
fn parse_each_agrees_with_parse_request_on_every_known_body() {
    let bodies = bodies();
    let mut split = 0;
    for provider in mailhooks::providers::ALL {
        let name = provider.name();
        for (file, body) in &bodies {
            let request = mailhooks::providers::Inbound {
                headers: &[],
                query: &[],
                body,
            };
            let each = provider.parse_each(&request);
            match provider.parse_request(&request) {
                Ok(events) => {
                    assert_eq!(each.events, events, "{name} {file}");
                    assert_eq!(each.unparsed, [], "{name} {file}");
                }
                Err(error) => {
                    assert!(!each.unparsed.is_empty(), "{name} {file}: {error}");
                    for part in each.unparsed.iter().filter(|u| &u.body != body) {
                        split += 1;
                        let again = provider.parse(&part.body).unwrap_err();
                        assert_eq!(again.code(), part.code, "{name} {file}: {again}");
                    }
                }
            }
        }
    }
    assert!(split > 0, "no body was split into events");
}
