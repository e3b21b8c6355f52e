//! mailhooks: one AWS Lambda that receives email-delivery webhooks from several
//! ESPs, authenticates them, normalizes every event into [`event::EmailEvent`]
//! and stores it idempotently in DynamoDB.
//!
//! Flow: request → [`app::route`] → [`providers::Provider::authenticate`] →
//! [`providers::Provider::parse`] → [`store::EventStore::put_events`] → answer.

pub mod app;
pub mod auth;
pub mod config;
pub mod error;
pub mod event;
pub mod fuzz_support;
pub mod invocation;
#[cfg(feature = "local")]
pub mod local_server;
pub mod log_value;
pub mod metrics;
pub mod providers;
pub mod read;
pub mod renormalize;
pub mod secrets;
pub mod startup;
pub mod status;
pub mod store;
pub mod telemetry;

pub use app::App;
pub use config::Config;
pub use error::Error;
pub use event::{BounceType, EmailEvent, EventType};
