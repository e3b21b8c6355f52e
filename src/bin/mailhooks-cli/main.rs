//! `mailhooks-cli`: reads the events table — one message's timeline, one
//! address's events, the suppression list, the quarantine — re-normalizes
//! stored events with the current provider code and replays quarantined bodies.
//!
//! ```text
//! mailhooks-cli [--table NAME] [--local | --endpoint URL] [--page-size N] [--json] <command>
//!   timeline <message-id>
//!   recipient <address> [--since TIME]
//!   suppressions [--since TIME]
//!   renormalize [--provider NAME] [--since TIME] [--apply]
//!   quarantine [--provider NAME]
//!   quarantine show <provider> <record-id>
//!   quarantine replay [--provider NAME] [--apply]
//! ```
//!
//! Exit status: 0 done, 1 the command failed, 2 the arguments are wrong.

mod quarantine;

use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::ProvideCredentials;
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use mailhooks::read::{
    EventsTable, QueryError, Since, StoredEvent, Suppression, Timeline, error_chain,
};
use mailhooks::renormalize::{Progress, RenormalizeOptions, RenormalizeReport};
use mailhooks::store::sdk;
use serde_json::json;

const DEFAULT_TABLE: &str = "mailhooks-events";
/// The embedded DynamoDB API of the local run command.
const LOCAL_ENDPOINT: &str = "http://127.0.0.1:8000";
/// Bound on one DynamoDB call, retries included.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest table cell, in characters.
const MAX_CELL_CHARS: usize = 100;
/// Most frequent changes shown per field in the renormalize summary.
const CHANGES_SHOWN: usize = 3;

/// Reads the mailhooks events table: one message's timeline, one address's
/// events, the suppression list; and re-normalizes stored events with the
/// current provider code.
#[derive(Debug, Parser)]
#[command(
    name = "mailhooks-cli",
    version,
    after_help = "Exit status: 0 done, 1 the command failed, 2 the arguments are wrong."
)]
struct Cli {
    #[command(flatten)]
    table: TableArgs,
    #[command(subcommand)]
    command: CommandArgs,
}

/// Where the table is and how to print; accepted before or after the command.
#[derive(Debug, Args)]
struct TableArgs {
    /// The events table [default: $TABLE_NAME, else mailhooks-events]
    #[arg(long, global = true, value_name = "NAME")]
    table: Option<String>,
    /// The local run command's store (http://127.0.0.1:8000)
    #[arg(long, global = true, conflicts_with = "endpoint")]
    local: bool,
    /// Another plain-http DynamoDB endpoint (without this or --local: the usual
    /// AWS configuration, AWS_ENDPOINT_URL_DYNAMODB included)
    #[arg(long, global = true, value_name = "URL")]
    endpoint: Option<String>,
    /// Items per DynamoDB page [default: DynamoDB's 1 MB pages]
    #[arg(long, global = true, value_name = "N")]
    page_size: Option<String>,
    /// Print JSON instead of a table
    #[arg(long, global = true)]
    json: bool,
}

/// `--since`, for the commands that take it.
#[derive(Debug, Args)]
struct SinceArg {
    /// Only events at or after TIME (RFC 3339, e.g. 2026-11-22T10:15:30Z, or a date, 2026-11-22)
    #[arg(long, value_name = "TIME")]
    since: Option<String>,
}

#[derive(Debug, Subcommand)]
enum CommandArgs {
    /// Every event of one message in time order, and its current status
    Timeline {
        /// The provider's per-recipient message id
        message_id: String,
    },
    /// Every event for one address, across messages and providers
    Recipient {
        /// The address (any case)
        address: String,
        #[command(flatten)]
        since: SinceArg,
    },
    /// The addresses not to mail again (hard bounce, complaint, unsubscribe)
    Suppressions {
        #[command(flatten)]
        since: SinceArg,
    },
    /// Re-run the current normalizers over the stored raw payloads; a dry run unless --apply
    Renormalize {
        /// Only this provider's events
        #[arg(long, value_name = "NAME")]
        provider: Option<String>,
        /// Rewrite the stale items
        #[arg(long)]
        apply: bool,
        #[command(flatten)]
        since: SinceArg,
    },
    /// What authenticated requests sent that did not normalize, kept raw: list (the default), show, replay
    #[command(args_conflicts_with_subcommands = true)]
    Quarantine {
        #[command(subcommand)]
        action: Option<QuarantineArgs>,
        /// Only this provider's records
        #[arg(long, value_name = "NAME")]
        provider: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum QuarantineArgs {
    /// Print one record and its body as received
    Show {
        /// The provider's route name
        provider: String,
        /// The record id (at least its first 6 hex digits)
        id: String,
    },
    /// Re-run today's parsers over the unresolved records; a dry run unless --apply
    Replay {
        /// Only this provider's records
        #[arg(long, value_name = "NAME")]
        provider: Option<String>,
        /// Store what parses now and mark the records resolved
        #[arg(long)]
        apply: bool,
    },
}

/// Which command to run, with its argument.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Command {
    Timeline(String),
    Recipient(String),
    Suppressions,
    Renormalize,
    QuarantineList,
    QuarantineShow { provider: String, id: String },
    QuarantineReplay,
}

/// Where DynamoDB is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Endpoint {
    /// The usual AWS configuration: region, credentials chain, endpoint variables.
    Aws,
    /// A local DynamoDB-compatible API over plain HTTP, placeholder credentials.
    Plain(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Options {
    command: Command,
    table: String,
    endpoint: Endpoint,
    page_size: Option<i32>,
    json: bool,
    since: Option<Since>,
    provider: Option<String>,
    apply: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Parsed {
    /// Help or version text, for stdout.
    Show(String),
    Run(Options),
}

/// Why a command failed, in words a user can act on.
#[derive(Debug)]
enum CliError {
    Query(QueryError),
    NoRegion,
    NoCredentials(String),
    Output(String),
}

impl From<QueryError> for CliError {
    fn from(err: QueryError) -> Self {
        CliError::Query(err)
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let table_env = std::env::var("TABLE_NAME").ok().filter(|t| !t.is_empty());
    let options = match parse_args(std::env::args().skip(1), table_env) {
        Ok(Parsed::Show(text)) => {
            return match print(&text) {
                Ok(()) => ExitCode::SUCCESS,
                Err(_) => ExitCode::FAILURE,
            };
        }
        Ok(Parsed::Run(options)) => options,
        Err(problem) => {
            eprintln!("error: {problem} (mailhooks-cli --help shows the usage)");
            return ExitCode::from(2);
        }
    };
    let result = match run(&options).await {
        Ok(text) => print(&text),
        Err(err) => Err(err),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", one_line(&explain(&err, &options)));
            ExitCode::from(1)
        }
    }
}

fn parse_args(
    args: impl IntoIterator<Item = String>,
    table_env: Option<String>,
) -> Result<Parsed, String> {
    let argv = std::iter::once("mailhooks-cli".to_owned()).chain(args);
    match Cli::try_parse_from(argv) {
        Ok(cli) => options(cli, table_env).map(Parsed::Run),
        Err(err) if !err.use_stderr() => Ok(Parsed::Show(err.to_string())),
        Err(err)
            if err.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand =>
        {
            Err("no command given".to_owned())
        }
        Err(err) => Err(clap_problem(&err)),
    }
}

/// clap's message on one line: its text up to the usage and tips that follow
/// the first blank line, without the `error:` prefix we add back.
fn clap_problem(err: &clap::Error) -> String {
    let text = err.to_string();
    let first_paragraph: Vec<&str> = text
        .lines()
        .take_while(|line| !line.trim().is_empty())
        .map(str::trim)
        .collect();
    let joined = first_paragraph.join(" ");
    joined.strip_prefix("error: ").unwrap_or(&joined).to_owned()
}

/// Checks the values clap leaves to us and resolves the defaults.
fn options(cli: Cli, table_env: Option<String>) -> Result<Options, String> {
    let TableArgs {
        table,
        local,
        endpoint,
        page_size,
        json,
    } = cli.table;
    let endpoint = match (local, endpoint) {
        (true, _) => Endpoint::Plain(LOCAL_ENDPOINT.to_owned()),
        (false, Some(url)) => plain_endpoint(&url)?,
        (false, None) => Endpoint::Aws,
    };
    let page_size = page_size.as_deref().map(parse_page_size).transpose()?;
    let (command, since, provider, apply) = match cli.command {
        CommandArgs::Timeline { message_id } => {
            let id = required(message_id, "timeline needs a message id")?;
            (Command::Timeline(id), None, None, false)
        }
        CommandArgs::Recipient { address, since } => {
            let address = required(address, "recipient needs an address")?;
            (Command::Recipient(address), since.since, None, false)
        }
        CommandArgs::Suppressions { since } => (Command::Suppressions, since.since, None, false),
        CommandArgs::Renormalize {
            provider,
            apply,
            since,
        } => (Command::Renormalize, since.since, provider, apply),
        CommandArgs::Quarantine { action, provider } => match action {
            None => (Command::QuarantineList, None, provider, false),
            Some(QuarantineArgs::Show { provider, id }) => {
                let provider = required(provider, "quarantine show needs a provider")?;
                let id = required(id, "quarantine show needs a record id")?;
                (Command::QuarantineShow { provider, id }, None, None, false)
            }
            Some(QuarantineArgs::Replay { provider, apply }) => {
                (Command::QuarantineReplay, None, provider, apply)
            }
        },
    };
    let since = since
        .map(|text| Since::parse(&text).map_err(|e| format!("--since: {e}")))
        .transpose()?;
    Ok(Options {
        command,
        table: table
            .or(table_env)
            .unwrap_or_else(|| DEFAULT_TABLE.to_owned()),
        endpoint,
        page_size,
        json,
        since,
        provider,
        apply,
    })
}

/// A positional argument that must not be blank.
fn required(value: String, problem: &str) -> Result<String, String> {
    if value.trim().is_empty() {
        Err(problem.to_owned())
    } else {
        Ok(value)
    }
}

/// Only plain HTTP is supported with `--endpoint`.
fn plain_endpoint(url: &str) -> Result<Endpoint, String> {
    if !url.starts_with("http://") {
        return Err(format!(
            "--endpoint {url}: expected a plain http:// URL (for an https endpoint set AWS_ENDPOINT_URL_DYNAMODB)"
        ));
    }
    Ok(Endpoint::Plain(url.to_owned()))
}

fn parse_page_size(text: &str) -> Result<i32, String> {
    text.parse()
        .ok()
        .filter(|n| *n > 0)
        .ok_or(format!("--page-size {text}: expected a positive number"))
}

/// Runs the command; returns what to print.
async fn run(options: &Options) -> Result<String, CliError> {
    let (client, s3) = clients(&options.endpoint).await?;
    let mut table = EventsTable::new(client, &options.table);
    if let Some(s3) = s3 {
        table = table.with_s3(s3);
    }
    let since = options.since.as_ref();
    match &options.command {
        Command::Timeline(message_id) => {
            let timeline = table.timeline(message_id, options.page_size).await?;
            output(&timeline, options.json, render_timeline)
        }
        Command::Recipient(address) => {
            let events = table
                .recipient_events(address, since, options.page_size)
                .await?;
            let address = address.trim().to_lowercase();
            let value =
                json!({ "address": address, "since": since.map(Since::as_str), "events": events });
            output(&value, options.json, |_| {
                render_recipient(&address, since, &events)
            })
        }
        Command::Suppressions => {
            let list = table.suppressions(since, options.page_size).await?;
            let value = json!({ "since": since.map(Since::as_str), "suppressions": list });
            output(&value, options.json, |_| render_suppressions(since, &list))
        }
        Command::Renormalize => {
            let report = renormalize(&table, options).await?;
            output(&report, options.json, render_report)
        }
        Command::QuarantineList => {
            let records =
                (table.quarantine_records(options.provider.as_deref(), options.page_size)).await?;
            let rows: Vec<_> = records.iter().map(quarantine::Listed::from).collect();
            output(&rows, options.json, |rows| quarantine::render_list(rows))
        }
        Command::QuarantineShow { provider, id } => {
            let record = table.quarantine_record(provider, id).await?;
            let body = table.quarantine_body(&record).await;
            let shown = quarantine::Shown::new(&record, &body);
            output(&shown, options.json, quarantine::render_shown)
        }
        Command::QuarantineReplay => {
            let now_ms = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
            let report = table
                .replay_quarantine(options.provider.as_deref(), options.apply, now_ms)
                .await?;
            output(&report, options.json, quarantine::render_replay)
        }
    }
}

/// The DynamoDB client, and an S3 client for payloads archived there: from
/// the AWS configuration, or, for a plain endpoint, from `AWS_ENDPOINT_URL_S3`
/// when set.
async fn clients(endpoint: &Endpoint) -> Result<(Client, Option<aws_sdk_s3::Client>), CliError> {
    match endpoint {
        Endpoint::Plain(url) => {
            let s3 = std::env::var("AWS_ENDPOINT_URL_S3")
                .ok()
                .filter(|url| !url.is_empty())
                .map(|url| sdk::local_s3_client(&url, OPERATION_TIMEOUT));
            Ok((sdk::local_client(url, OPERATION_TIMEOUT), s3))
        }
        Endpoint::Aws => aws_clients().await,
    }
}

/// Clients from the usual AWS configuration, after checking that it names a
/// region and that its credentials resolve (so a missing one is named, not
/// buried in a request failure).
async fn aws_clients() -> Result<(Client, Option<aws_sdk_s3::Client>), CliError> {
    let config = sdk::sdk_config_from_env(OPERATION_TIMEOUT).await;
    if config.region().is_none() {
        return Err(CliError::NoRegion);
    }
    let provider = config
        .credentials_provider()
        .ok_or_else(|| CliError::NoCredentials("no credentials provider".to_owned()))?;
    provider
        .provide_credentials()
        .await
        .map_err(|e| CliError::NoCredentials(error_chain(&e)))?;
    Ok((Client::new(&config), Some(aws_sdk_s3::Client::new(&config))))
}

/// Runs the re-normalization with a progress bar on stderr (drawn only on a terminal).
async fn renormalize(
    table: &EventsTable,
    options: &Options,
) -> Result<RenormalizeReport, QueryError> {
    let renormalize_options = RenormalizeOptions {
        provider: options.provider.clone(),
        since: options.since.clone(),
        apply: options.apply,
        page_size: options.page_size,
    };
    let bar = ProgressBar::new_spinner();
    bar.set_style(style("{spinner} scanned {pos}"));
    let mut writing = false;
    let mut on_progress = |progress: Progress| match progress {
        Progress::Scanned(scanned) => bar.set_position(scanned),
        Progress::Written { done, total } => {
            if !writing {
                writing = true;
                bar.reset();
                bar.set_length(total);
                bar.set_style(style("{bar:30} rewritten {pos}/{len}"));
            }
            bar.set_position(done);
        }
    };
    let report = table
        .renormalize(&renormalize_options, &mut on_progress)
        .await;
    bar.finish_and_clear();
    report
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_spinner())
}

/// JSON of `value`, or the table `render` makes of it.
fn output<T: serde::Serialize>(
    value: &T,
    json: bool,
    render: impl FnOnce(&T) -> String,
) -> Result<String, CliError> {
    if !json {
        return Ok(render(value));
    }
    serde_json::to_string_pretty(value)
        .map(|text| text + "\n")
        .map_err(|e| CliError::Output(e.to_string()))
}

fn print(text: &str) -> Result<(), CliError> {
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(CliError::Output(e.to_string()))
        }
        _ => Ok(()),
    }
}

fn render_timeline(timeline: &Timeline) -> String {
    let mut out = format!(
        "timeline of {}: {}\n",
        cell(&timeline.message_id),
        count(timeline.events.len(), "event")
    );
    for status in &timeline.current_status {
        let recipient = status
            .recipient
            .as_deref()
            .map(|r| format!(" of {}", cell(r)))
            .unwrap_or_default();
        let bounce = status
            .bounce_type
            .as_deref()
            .map(|b| format!(" ({b})"))
            .unwrap_or_default();
        out.push_str(&format!(
            "current status{recipient}: {}{bounce} at {}\n",
            status.status, status.time
        ));
    }
    let rows = timeline
        .events
        .iter()
        .map(|e| {
            let recipient = e.recipient.clone().unwrap_or_default();
            vec![
                e.time.clone(),
                e.provider.clone(),
                e.event_type.as_str().to_owned(),
                recipient,
                e.detail(),
            ]
        })
        .collect::<Vec<_>>();
    out.push('\n');
    out + &render_table(&["time", "provider", "event", "recipient", "detail"], &rows)
}

fn render_recipient(address: &str, since: Option<&Since>, events: &[StoredEvent]) -> String {
    let mut out = format!(
        "events for {}{}: {}\n",
        cell(address),
        since_note(since),
        count(events.len(), "event")
    );
    if events.is_empty() {
        return out;
    }
    let rows = events
        .iter()
        .map(|e| {
            let message_id = e.message_id.clone();
            vec![
                e.time.clone(),
                e.provider.clone(),
                e.event_type.as_str().to_owned(),
                message_id,
                e.detail(),
            ]
        })
        .collect::<Vec<_>>();
    out.push('\n');
    out + &render_table(
        &["time", "provider", "event", "message id", "detail"],
        &rows,
    )
}

fn render_suppressions(since: Option<&Since>, list: &[Suppression]) -> String {
    let mut out = format!(
        "{} not to mail again{}\n",
        count(list.len(), "address"),
        since_note(since)
    );
    if list.is_empty() {
        return out;
    }
    let rows = list
        .iter()
        .map(|s| {
            let e = &s.event;
            vec![
                s.address.clone(),
                s.reason.clone(),
                e.time.clone(),
                e.provider.clone(),
                e.event_type.as_str().to_owned(),
                e.message_id.clone(),
                e.detail(),
            ]
        })
        .collect::<Vec<_>>();
    let header = [
        "address",
        "reason",
        "time",
        "provider",
        "event",
        "message id",
        "detail",
    ];
    out.push('\n');
    out + &render_table(&header, &rows)
}

fn render_report(report: &RenormalizeReport) -> String {
    let verb = if report.written.is_some() {
        "changed"
    } else {
        "would change"
    };
    let mut out = format!(
        "scanned {}: {} unchanged, {} {verb}, {} skipped{}\n",
        report.scanned,
        report.unchanged,
        report.changed,
        report.skipped_total(),
        skipped_breakdown(report)
    );
    if !report.fields.is_empty() {
        out.push_str("\nchanged fields:\n");
        let rows = report
            .fields
            .iter()
            .map(|(field, changes)| {
                let common = changes
                    .most_common(CHANGES_SHOWN)
                    .into_iter()
                    .map(|(change, n)| format!("{} ({n})", cell(change)))
                    .collect::<Vec<_>>()
                    .join("; ");
                vec![
                    format!("  {field}"),
                    count(changes.items as usize, "item"),
                    common,
                ]
            })
            .collect::<Vec<_>>();
        out.push_str(&render_rows(&rows));
    }
    out.push('\n');
    out.push_str(&match &report.written {
        None if report.changed == 0 => "dry run: nothing to rewrite\n".to_owned(),
        None => format!(
            "dry run: nothing written; --apply rewrites {}\n",
            count(report.changed as usize, "item")
        ),
        Some(w) => format!(
            "rewritten: {} in place, {} moved to a new key; {} changed or deleted meanwhile (left alone)\n",
            w.in_place, w.moved, w.conflicts
        ),
    });
    out
}

fn skipped_breakdown(report: &RenormalizeReport) -> String {
    if report.skipped.is_empty() {
        return String::new();
    }
    let reasons: Vec<String> = report
        .skipped
        .iter()
        .map(|(reason, n)| format!("{reason}: {n}"))
        .collect();
    format!(" ({})", reasons.join(", "))
}

fn since_note(since: Option<&Since>) -> String {
    since
        .map(|s| format!(" since {}", s.as_str()))
        .unwrap_or_default()
}

/// `1 event`, `2 events`, `2 addresses`.
fn count(n: usize, noun: &str) -> String {
    let plural = if noun.ends_with('s') { "es" } else { "s" };
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}{plural}")
    }
}

/// Aligned columns under a header line.
fn render_table(header: &[&str], rows: &[Vec<String>]) -> String {
    let header: Vec<String> = header.iter().map(|h| (*h).to_owned()).collect();
    let cleaned = rows.iter().map(|row| row.iter().map(|c| cell(c)).collect());
    let all: Vec<Vec<String>> = std::iter::once(header).chain(cleaned).collect();
    render_rows(&all)
}

/// Pads each column but the last to its widest cell; two spaces between columns.
fn render_rows(rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = Vec::new();
    for row in rows {
        widths.resize(widths.len().max(row.len()), 0);
        for (width, text) in widths.iter_mut().zip(row) {
            *width = (*width).max(text.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let padded: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(text, width)| format!("{text:<width$}"))
            .collect();
        out.push_str(padded.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// Provider text made safe for one table cell: control characters (newlines,
/// terminal escapes) become spaces, and long text is clipped.
fn cell(text: &str) -> String {
    let visible: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    clip(&visible, MAX_CELL_CHARS)
}

fn clip(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        return text.to_owned();
    }
    let mut clipped: String = text.chars().take(max_chars - 1).collect();
    clipped.push('…');
    clipped
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The error message, with a hint where one helps.
fn explain(err: &CliError, options: &Options) -> String {
    const LOCAL_HINT: &str = "or pass --local (or --endpoint URL) for a local store";
    match (err, &options.endpoint) {
        (CliError::Query(QueryError::TableMissing(table)), endpoint) => {
            let place = match endpoint {
                Endpoint::Plain(url) => format!(" at {url}"),
                Endpoint::Aws => String::new(),
            };
            format!(
                "table {table} does not exist{place}: name the table with --table or TABLE_NAME, {LOCAL_HINT}"
            )
        }
        (CliError::Query(QueryError::Unreachable(detail)), Endpoint::Plain(url)) => {
            format!("cannot reach DynamoDB at {url} (is the local run command running?): {detail}")
        }
        (CliError::Query(err), _) => err.to_string(),
        (CliError::NoRegion, _) => format!(
            "no AWS region configured: set AWS_REGION (or a region in your AWS profile), {LOCAL_HINT}"
        ),
        (CliError::NoCredentials(detail), _) => format!(
            "no AWS credentials found ({detail}): configure them (environment, profile, SSO, instance role), {LOCAL_HINT}"
        ),
        (CliError::Output(detail), _) => format!("cannot write the output: {detail}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Parsed, String> {
        parse_args(args.iter().map(|a| (*a).to_owned()), None)
    }

    fn options(args: &[&str]) -> Options {
        match parse(args) {
            Ok(Parsed::Run(options)) => options,
            other => panic!("{args:?}: {other:?}"),
        }
    }

    #[test]
    fn global_options_go_before_or_after_the_command() {
        let o = options(&["--local", "timeline", "m-1", "--table", "t", "--json"]);
        assert_eq!(o.command, Command::Timeline("m-1".into()));
        assert_eq!(o.table, "t");
        assert_eq!(o.endpoint, Endpoint::Plain(LOCAL_ENDPOINT.into()));
        assert!(o.json);
        let o = options(&[
            "renormalize",
            "--apply",
            "--provider",
            "uspeedo",
            "--page-size",
            "5",
        ]);
        assert_eq!(
            (o.command, o.apply, o.page_size),
            (Command::Renormalize, true, Some(5))
        );
        assert_eq!(o.provider.as_deref(), Some("uspeedo"));
        assert_eq!(o.endpoint, Endpoint::Aws);
        assert_eq!(o.table, DEFAULT_TABLE);
        let o = options(&["recipient", "a@x.com", "--since", "2026-01-01"]);
        assert_eq!(o.command, Command::Recipient("a@x.com".into()));
        assert_eq!(
            o.since.as_ref().map(Since::as_str),
            Some("2026-01-01T00:00:00.000Z")
        );
    }

    #[test]
    fn the_table_comes_from_the_flag_then_the_environment() {
        let from_env = |args: &[&str]| match parse_args(
            args.iter().map(|a| (*a).to_owned()),
            Some("from-env".into()),
        ) {
            Ok(Parsed::Run(o)) => o.table,
            other => panic!("{other:?}"),
        };
        assert_eq!(from_env(&["suppressions"]), "from-env");
        assert_eq!(from_env(&["suppressions", "--table", "flag"]), "flag");
    }

    #[test]
    fn mistakes_are_named_on_one_line() {
        // Checked by us: the same words as before clap.
        for (args, problem) in [
            (&["recipient", " "][..], "recipient needs an address"),
            (&["timeline", ""], "timeline needs a message id"),
            (&[], "no command given"),
            (
                &["suppressions", "--page-size", "0"],
                "--page-size 0: expected a positive number",
            ),
        ] {
            assert_eq!(parse(args), Err(problem.to_owned()), "{args:?}");
        }
        // Checked by clap: its words, naming the culprit.
        for (args, culprit) in [
            (&["timeline"][..], "<MESSAGE_ID>"),
            (&["suppressions", "x"], "'x'"),
            (&["timeline", "a", "b"], "'b'"),
            (&["purge"], "'purge'"),
            (&["timeline", "m", "--since", "2026-01-01"], "'--since'"),
            (&["suppressions", "--apply"], "'--apply'"),
            (
                &["recipient", "a@x.com", "--provider", "tencent"],
                "'--provider'",
            ),
            (&["suppressions", "--verbose"], "'--verbose'"),
            (&["suppressions", "--table"], "'--table <NAME>'"),
            (
                &["suppressions", "--local", "--endpoint", "http://x"],
                "'--local'",
            ),
        ] {
            let problem = parse(args).expect_err("refused");
            assert!(problem.contains(culprit), "{args:?}: {problem}");
            assert!(
                !problem.contains('\n') && !problem.starts_with("error"),
                "{problem}"
            );
        }
        let since = parse(&["suppressions", "--since", "last week"]);
        assert!(since.is_err_and(|e| e.starts_with("--since: cannot read \"last week\"")));
        let https = parse(&["suppressions", "--endpoint", "https://dynamodb.example"]);
        assert!(https.is_err_and(|e| e.contains("expected a plain http:// URL")));
    }

    #[test]
    fn help_and_version_go_to_stdout() {
        let Ok(Parsed::Show(help)) = parse(&["--help"]) else {
            panic!("--help shows the help");
        };
        for command in ["timeline", "recipient", "suppressions", "renormalize"] {
            assert!(help.contains(command), "{help}");
        }
        let Ok(Parsed::Show(own)) = parse(&["timeline", "--help"]) else {
            panic!("each command has its help");
        };
        assert!(
            own.contains("<MESSAGE_ID>") && !own.contains("--apply"),
            "{own}"
        );
        assert_eq!(
            parse(&["--version"]),
            Ok(Parsed::Show(format!(
                "mailhooks-cli {}\n",
                env!("CARGO_PKG_VERSION")
            )))
        );
    }

    #[test]
    fn tables_align_columns_and_neutralize_control_characters() {
        let rows = vec![
            vec!["a".to_owned(), "long value".to_owned(), "x".to_owned()],
            vec!["bbb".to_owned(), "v\n\u{1b}[2J".to_owned(), String::new()],
        ];
        assert_eq!(
            render_table(&["h1", "h2", "h3"], &rows),
            "h1   h2          h3\na    long value  x\nbbb  v  [2J\n"
        );
        let long = "é".repeat(150);
        assert_eq!(cell(&long).chars().count(), MAX_CELL_CHARS);
        assert!(cell(&long).ends_with('…'));
    }

    #[test]
    fn counts_are_pluralized() {
        assert_eq!(count(1, "event"), "1 event");
        assert_eq!(count(0, "event"), "0 events");
        assert_eq!(count(2, "address"), "2 addresses");
    }

    #[test]
    fn errors_carry_a_hint_and_fit_on_one_line() {
        let local = options(&["--endpoint", "http://127.0.0.1:9", "suppressions"]);
        let missing = CliError::Query(QueryError::TableMissing("t".into()));
        assert_eq!(
            explain(&missing, &local),
            "table t does not exist at http://127.0.0.1:9: name the table with --table or TABLE_NAME, or pass --local (or --endpoint URL) for a local store"
        );
        let down = CliError::Query(QueryError::Unreachable("refused".into()));
        assert!(explain(&down, &local).contains("is the local run command running?"));
        assert_eq!(one_line("a\n  b\tc"), "a b c");
    }
}
