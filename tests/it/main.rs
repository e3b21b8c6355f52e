//! The integration tests: one test crate, one binary (it links the AWS SDK and the
//! embedded store once, not once per file). `cargo test --test it <module>::` runs
//! one module, e.g. `cargo test --test it security::`. The log-capture test stays a
//! binary of its own (tests/log_hygiene.rs): a thread-scoped log subscriber is only
//! reliable when no other test in the process registers the same log call sites first.

mod common;

mod batches;
mod cli;
mod direct_invocation;
mod docs;
mod engagelab_signing;
mod exactly_once;
mod faults;
mod fuzz_regressions;
mod ingest;
mod item_rules;
mod kill;
#[cfg(feature = "local")]
mod local_cors;
mod mailgun_replay;
mod mandrill;
mod ordering;
mod other_stores;
mod partial_batches;
mod quarantine;
mod quarantine_cli;
mod runtime_logs;
mod s3_archive;
mod sample_events;
mod secrets_manager;
mod security;
mod ses_sns;
mod stable_keys;
mod template;
mod tools;
mod write_units;
