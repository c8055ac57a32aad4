//! The common crate of the SMS phone-verification backend.
//!
//! Read it in the order a request flows: [`api`] (HTTP in and out) → [`flow`] (the protocol steps)
//! → [`ciba`] (the upstream calls) and [`store`] (the state). [`config`] is loaded once at cold
//! start into an [`App`]; [`crypto`], [`phone`], [`redact`] and [`telemetry`] are the small
//! helpers those use.

pub mod api;
pub mod app;
pub mod aws;
pub mod ciba;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod error;
pub mod flow;
pub mod limits;
pub mod metrics;
pub mod outcome;
pub mod phone;
pub mod redact;
pub mod secret;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod timings;
pub mod tls;

pub use app::App;
pub use startup::StartupError;
