//! Idempotency across releases: the sort key of every fixture event is pinned to
//! the key the released code computed, so that a provider retry of an event
//! stored before an upgrade is still recognised as a duplicate.
//!
//! `tests/fixtures/stable_keys.txt` lists `provider/fixture <tab> message id <tab> sort key`.
//! Regenerate it only for a deliberate, documented key change (docs/security.md).

use std::collections::BTreeSet;

use mailhooks::providers;

fn current_keys() -> BTreeSet<String> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
    let mut keys = BTreeSet::new();
    for provider in providers::ALL {
        let dir = format!("{root}/{}", provider.name());
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let stem = path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default();
            let body = std::fs::read(&path).unwrap();
            let Ok(events) = provider.parse(&body) else {
                continue;
            };
            for event in events {
                keys.insert(format!(
                    "{}/{stem}\t{}\t{}",
                    provider.name(),
                    event.message_id,
                    mailhooks::store::codec::sort_key(&event)
                ));
            }
        }
    }
    keys
}

#[test]
fn fixture_sort_keys_are_those_of_earlier_releases() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/stable_keys.txt"
    );
    if std::env::var_os("MAILHOOKS_WRITE_STABLE_KEYS").is_some() {
        // The comment lines (the record of deliberate key changes) stay on top.
        let old = std::fs::read_to_string(path).unwrap_or_default();
        let mut text: String = old
            .lines()
            .filter(|l| l.starts_with('#'))
            .map(|l| format!("{l}\n"))
            .collect();
        text.extend(current_keys().into_iter().map(|k| k + "\n"));
        std::fs::write(path, text).unwrap();
    }
    let pinned: BTreeSet<String> = std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect();
    let current = current_keys();
    let changed: Vec<_> = pinned.symmetric_difference(&current).collect();
    assert!(changed.is_empty(), "sort keys changed: {changed:#?}");
    assert!(pinned.len() >= 33, "every fixture event is pinned");
}
