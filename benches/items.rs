//! Write units per event, by DynamoDB's item-size rules: every `*.json` fixture of
//! every provider in `providers::ALL`, through the provider's parser and the item
//! `store::codec` builds, costed as the table's units plus one write per index
//! the item is in, each ceil(bytes / 1 KB) (`codec::estimate_item`, `codec::WriteUnits`).
//!
//! Prints, per provider and overall, the layouts the levers of issue 15 give:
//!
//! - `before`: the raw payload as text, both indexes projecting `ALL`;
//! - `projection`: raw as text, the indexes copying what the views print;
//! - `gzip`: raw gzipped when that saves a unit, projections `ALL`;
//! - `after`: both, which is what `codec::encode` and `template.yaml` do now;
//! - `floor`: one unit per copy (table + each index the item is in).
//!
//! Sizes only, no timing: `cargo bench --bench items`, or the same figures from
//! a debug build with `cargo test --bench items`. Exits non-zero if any event
//! costs more after than before. Ends with the row `benches/run.sh` collects.

use std::collections::BTreeMap;

use aws_sdk_dynamodb::types::AttributeValue;
use mailhooks::EmailEvent;
use mailhooks::providers;
use mailhooks::store::codec::{
    self, INDEXES, Item, RAW, RAW_BYTES, RAW_ENCODING, RAW_GZ, WriteUnits, estimate_item,
    write_units,
};

/// DynamoDB's storage overhead per item and per index entry (billed storage
/// only: write units are sized without it).
const STORAGE_OVERHEAD_BYTES: usize = 100;

/// A fixed receipt time: `received_at` is in every item, at a fixed length.
const RECEIVED_AT_MS: i64 = 1_795_342_530_000;

/// One stored event of a fixture.
struct Sample {
    provider: &'static str,
    /// The item as `codec::encode` builds it now.
    item: Item,
    /// The raw payload, for the layouts that keep it as text.
    raw: String,
}

/// Every event of every fixture, in provider then file order. A fixture that
/// does not parse (an SNS envelope of a control message, a form body) is left
/// out, as the stable-keys test leaves it out.
fn samples(retention_days: Option<u32>) -> Vec<Sample> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
    let mut samples = Vec::new();
    for provider in providers::ALL {
        let Ok(entries) = std::fs::read_dir(format!("{root}/{}", provider.name())) else {
            continue;
        };
        let mut paths: Vec<_> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        paths.sort();
        for path in paths {
            let body = std::fs::read(&path).unwrap_or_default();
            let events: Vec<EmailEvent> = provider.parse(&body).unwrap_or_default();
            samples.extend(events.into_iter().map(|event| Sample {
                provider: provider.name(),
                item: codec::encode(&event, RECEIVED_AT_MS, retention_days),
                raw: event.raw,
            }));
        }
    }
    samples
}

/// The item with its raw payload as text, as it was stored before issue 15.
fn with_text_raw(sample: &Sample) -> Item {
    let mut item = sample.item.clone();
    if item.remove(RAW_GZ).is_some() {
        item.remove(RAW_ENCODING);
        item.remove(RAW_BYTES);
        item.insert(RAW.into(), AttributeValue::S(sample.raw.clone()));
    }
    item
}

/// Units of putting `item` when every index copies the whole item.
fn units_projecting_all(item: &Item) -> usize {
    let table = write_units(estimate_item(item));
    let in_indexes = INDEXES
        .iter()
        .filter(|index| item.contains_key(index.partition_key))
        .count();
    table * (1 + in_indexes)
}

/// The layouts compared, and the units of one sample under each.
const LAYOUTS: [&str; 5] = ["before", "projection", "gzip", "after", "floor"];

fn units(sample: &Sample) -> [usize; 5] {
    let text = with_text_raw(sample);
    let after = WriteUnits::of(&sample.item);
    let copies = 1 + after.indexes.iter().filter(|u| **u > 0).count();
    [
        units_projecting_all(&text),
        WriteUnits::of(&text).total(),
        units_projecting_all(&sample.item),
        after.total(),
        copies,
    ]
}

fn mean(values: impl Iterator<Item = usize>) -> f64 {
    let (sum, n) = values.fold((0, 0), |(s, n), v| (s + v, n + 1));
    sum as f64 / f64::from(n.max(1))
}

fn median(mut values: Vec<usize>) -> usize {
    values.sort_unstable();
    values.get(values.len() / 2).copied().unwrap_or_default()
}

fn print_table(samples: &[Sample]) {
    println!(
        "{:<10} {:>6} {:>10} {:>10} {:>7} {:>7} {:>7} {:>7} {:>7}",
        "provider",
        "events",
        "item B bef",
        "item B aft",
        "before",
        "proj",
        "gzip",
        "after",
        "floor"
    );
    let mut by_provider: BTreeMap<&str, Vec<&Sample>> = BTreeMap::new();
    for sample in samples {
        by_provider.entry(sample.provider).or_default().push(sample);
    }
    let row = |name: &str, group: &[&Sample]| {
        let per_layout: Vec<f64> = (0..LAYOUTS.len())
            .map(|i| mean(group.iter().map(|s| units(s)[i])))
            .collect();
        println!(
            "{name:<10} {:>6} {:>10} {:>10} {:>7.2} {:>7.2} {:>7.2} {:>7.2} {:>7.2}",
            group.len(),
            median(
                group
                    .iter()
                    .map(|s| estimate_item(&with_text_raw(s)))
                    .collect()
            ),
            median(group.iter().map(|s| estimate_item(&s.item)).collect()),
            per_layout[0],
            per_layout[1],
            per_layout[2],
            per_layout[3],
            per_layout[4],
        );
    };
    for (provider, group) in &by_provider {
        row(provider, group);
    }
    row("all", &samples.iter().collect::<Vec<_>>());
}

/// How many events cost 1, 2, 3, … units under each layout.
fn print_distribution(samples: &[Sample]) {
    let all: Vec<[usize; 5]> = samples.iter().map(units).collect();
    let most = all.iter().flatten().copied().max().unwrap_or_default();
    let header: Vec<String> = (1..=most).map(|u| format!("{u:>4}")).collect();
    println!("\nevents by units   {}", header.join(""));
    for (i, layout) in LAYOUTS.iter().enumerate() {
        let counts: Vec<String> = (1..=most)
            .map(|u| format!("{:>4}", all.iter().filter(|a| a[i] == u).count()))
            .collect();
        println!("{layout:<17} {}", counts.join(""));
    }
}

/// Table and index units apart, after.
fn print_split(samples: &[Sample]) {
    let after: Vec<WriteUnits> = samples.iter().map(|s| WriteUnits::of(&s.item)).collect();
    let table = mean(after.iter().map(|u| u.table));
    let per_index: Vec<String> = INDEXES
        .iter()
        .enumerate()
        .map(|(i, index)| {
            let entries = after.iter().filter(|u| u.indexes[i] > 0).count();
            format!(
                "{} {:.2} ({entries} entries)",
                index.name,
                mean(after.iter().map(|u| u.indexes[i]))
            )
        })
        .collect();
    let gzipped = samples
        .iter()
        .filter(|s| s.item.contains_key(RAW_GZ))
        .count();
    println!(
        "\nafter, per event: table {table:.2}, {}; raw gzipped in {gzipped} of {} items",
        per_index.join(", "),
        samples.len()
    );
    // Real traffic holds far fewer bounces, complaints and unsubscribes than
    // the fixtures (58 of 194), so the other events' figure is shown apart.
    let unsuppressing: Vec<&Sample> = samples
        .iter()
        .filter(|s| !s.item.contains_key(INDEXES[1].partition_key))
        .collect();
    println!(
        "events outside the suppression index ({}): {:.2} before, {:.2} after",
        unsuppressing.len(),
        mean(unsuppressing.iter().map(|s| units(s)[0])),
        mean(unsuppressing.iter().map(|s| units(s)[3]))
    );
    // Storage (not write units) counts 100 bytes of overhead per item and per index entry.
    let stored = |item: &Item, all: bool| {
        let entries = INDEXES.iter().filter_map(|index| {
            let entry = if all {
                item.get(index.partition_key).map(|_| item.clone())
            } else {
                index.entry(item)
            };
            entry.map(|e| estimate_item(&e) + STORAGE_OVERHEAD_BYTES)
        });
        estimate_item(item) + STORAGE_OVERHEAD_BYTES + entries.sum::<usize>()
    };
    println!(
        "storage per event, table and indexes: {:.0} B before, {:.0} B after",
        mean(samples.iter().map(|s| stored(&with_text_raw(s), true))),
        mean(samples.iter().map(|s| stored(&s.item, false)))
    );
}

fn main() {
    for retention in [None, Some(30)] {
        let samples = samples(retention);
        let label = retention.map_or("no retention".to_owned(), |d| {
            format!("EVENT_RETENTION_DAYS={d} (expires_at in every item)")
        });
        println!(
            "\nwrite units per event, {} events of {} providers' fixtures, {label}\n",
            samples.len(),
            samples
                .iter()
                .map(|s| s.provider)
                .collect::<std::collections::BTreeSet<_>>()
                .len()
        );
        print_table(&samples);
        print_distribution(&samples);
        print_split(&samples);
        let worse: Vec<&str> = samples
            .iter()
            .filter(|s| units(s)[3] > units(s)[0])
            .map(|s| s.provider)
            .collect();
        if !worse.is_empty() {
            eprintln!("FAILED: events costing more after than before: {worse:?}");
            std::process::exit(1);
        }
        if retention.is_none() {
            summary_row(&samples);
        }
    }
}

/// The row of `benches/run.sh`'s table (measure | value | target).
fn summary_row(samples: &[Sample]) {
    let before = mean(samples.iter().map(|s| units(s)[0]));
    let after = mean(samples.iter().map(|s| units(s)[3]));
    println!(
        "\n| write units per event, table + indexes, {} fixture events | {after:.2} ({before:.2} before) | ≤ 2.0 |",
        samples.len()
    );
}
