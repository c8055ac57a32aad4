//! The common crate of the SMS phone-verification backend.
//!
//! Read it in the order a request flows: [`api`] (HTTP in and out, the one handler skeleton) →
//! [`flow`] (the protocol steps, in domain words: a result or a [`flow::FlowError`], and the
//! request's [`flow::Facts`]) → [`ciba`] (the upstream calls) and [`store`] (the state). Back at
//! the edge, [`error`] turns a `FlowError` into the one error shape (its [`error::ErrorCode`] is
//! the only list of codes) and [`telemetry`] writes the request's one line, with the time the
//! adapters charged to it ([`timings`]). [`config`] is loaded once at cold start into an [`App`]
//! (with its [`clock`]); [`secret`], [`crypto`], [`phone`], [`limits`], [`fraud_guard`] and
//! [`client_log`] are the small pieces those use.

pub mod api;
pub mod app;
pub mod aws;
pub mod challenge;
pub mod ciba;
pub mod client_log;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod error;
pub mod flow;
pub mod fraud_guard;
pub mod limits;
pub mod metrics;
pub mod origins;
pub mod outbound;
pub mod outcome;
pub mod phone;
pub mod rotation;
pub mod secret;
pub mod signed_result;
pub mod sms_text;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod timings;
pub mod tls;

pub use app::App;
pub use startup::StartupError;
