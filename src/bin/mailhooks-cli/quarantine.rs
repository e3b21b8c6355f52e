//! How `mailhooks-cli quarantine` prints: the list, one record with its body,
//! and a replay report.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use mailhooks::read::quarantine::{ReplayReport, Verdict};
use mailhooks::store::quarantine::StoredRecord;
use serde::Serialize;

use super::{cell, count, render_table};

/// One row of the list.
#[derive(Debug, Serialize)]
pub struct Listed<'a> {
    provider: &'a str,
    id: &'a str,
    received_at: &'a str,
    error_code: &'a str,
    error: &'a str,
    bytes: u64,
    resolved_at: Option<&'a str>,
}

impl<'a> From<&'a StoredRecord> for Listed<'a> {
    fn from(record: &'a StoredRecord) -> Self {
        Listed {
            provider: &record.provider,
            id: &record.id,
            received_at: &record.received_at,
            error_code: &record.error_code,
            error: &record.error,
            bytes: record.body_bytes,
            resolved_at: record.resolved_at.as_deref(),
        }
    }
}

/// Digits of a record id shown in the list (enough for `show`).
const SHORT_ID: usize = 12;

pub fn render_list(rows: &[Listed<'_>]) -> String {
    let unresolved = rows.iter().filter(|r| r.resolved_at.is_none()).count();
    let mut out = format!(
        "{} in quarantine, {unresolved} unresolved\n",
        count(rows.len(), "record")
    );
    if rows.is_empty() {
        return out;
    }
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.received_at.to_owned(),
                r.provider.to_owned(),
                r.id.chars().take(SHORT_ID).collect(),
                r.error_code.to_owned(),
                r.bytes.to_string(),
                r.resolved_at.unwrap_or("-").to_owned(),
                r.error.to_owned(),
            ]
        })
        .collect();
    out.push('\n');
    out + &render_table(
        &[
            "received", "provider", "id", "error", "bytes", "resolved", "detail",
        ],
        &table,
    )
}

/// One record and its body (or why the body cannot be shown).
#[derive(Debug, Serialize)]
pub struct Shown<'a> {
    #[serde(flatten)]
    listed: Listed<'a>,
    content_type: Option<&'a str>,
    resolved_into: &'a [String],
    /// The body as text, when it is UTF-8.
    body: Option<String>,
    /// The body as base64 (always, when readable: the exact bytes).
    body_base64: Option<String>,
    /// Why the body is not shown.
    body_unavailable: Option<&'a str>,
}

impl<'a> Shown<'a> {
    pub fn new(record: &'a StoredRecord, body: &'a Result<Vec<u8>, String>) -> Self {
        let (text, base64, unavailable) = match body {
            Ok(bytes) => (
                String::from_utf8(bytes.clone()).ok(),
                Some(STANDARD.encode(bytes)),
                None,
            ),
            Err(reason) => (None, None, Some(reason.as_str())),
        };
        Shown {
            listed: Listed::from(record),
            content_type: record.content_type.as_deref(),
            resolved_into: &record.resolved_into,
            body: text,
            body_base64: base64,
            body_unavailable: unavailable,
        }
    }
}

pub fn render_shown(shown: &Shown<'_>) -> String {
    let l = &shown.listed;
    let mut out = format!(
        "record {} of {}\nreceived {}, {} bytes, content type {}\nerror {}: {}\n",
        l.id,
        l.provider,
        l.received_at,
        l.bytes,
        shown.content_type.unwrap_or("-"),
        l.error_code,
        cell(l.error)
    );
    if let Some(at) = l.resolved_at {
        out.push_str(&format!(
            "resolved {at} into {}\n",
            count(shown.resolved_into.len(), "item")
        ));
        for key in shown.resolved_into {
            out.push_str(&format!("  {}\n", cell(key)));
        }
    }
    out.push('\n');
    match (&shown.body, &shown.body_base64, shown.body_unavailable) {
        (Some(text), _, _) => out.push_str(text),
        (None, Some(base64), _) => {
            out.push_str("(not UTF-8; base64:)\n");
            out.push_str(base64);
        }
        (_, _, reason) => out.push_str(&format!("(body not shown: {})", reason.unwrap_or("-"))),
    }
    out.push('\n');
    out
}

pub fn render_replay(report: &ReplayReport) -> String {
    let parses = report
        .records
        .iter()
        .filter(|r| matches!(r.verdict, Verdict::Parses { .. }))
        .count();
    let verb = if report.applied {
        "replayed"
    } else {
        "would replay"
    };
    let mut out = format!(
        "{}: {parses} parse now ({verb}), {} still fail or cannot be read; {} already resolved\n",
        count(report.records.len(), "unresolved record"),
        report.records.len() - parses,
        report.already_resolved
    );
    if report.records.is_empty() {
        return out;
    }
    let rows: Vec<Vec<String>> = report
        .records
        .iter()
        .map(|r| {
            let outcome = match &r.verdict {
                Verdict::Parses {
                    events,
                    stored,
                    duplicates,
                    requarantined,
                } if report.applied => format!(
                    "{}: {stored} stored, {duplicates} already there, {requarantined} quarantined again",
                    count(*events, "event")
                ),
                Verdict::Parses {
                    events,
                    requarantined,
                    ..
                } => format!(
                    "would store {}, {requarantined} part(s) would stay quarantined",
                    count(*events, "event")
                ),
                Verdict::StillFails { code } => format!("still fails: {code}"),
                Verdict::Skipped { reason } => format!("skipped: {reason}"),
            };
            vec![
                r.provider.clone(),
                r.id.chars().take(SHORT_ID).collect(),
                r.error_code.clone(),
                outcome,
            ]
        })
        .collect();
    out.push('\n');
    out.push_str(&render_table(&["provider", "id", "was", "now"], &rows));
    if !report.applied && parses > 0 {
        out.push_str(
            "\ndry run: nothing written; --apply stores them and marks the records resolved\n",
        );
    }
    out
}
