//! Data plane of the bridge.
//!
//! - [`config`]: the one typed configuration (defaults < TOML < env < flags).
//! - [`app`]: [`Application`], which binds the public and admin listeners and wires everything.
//! - [`catalog`]: the in-memory view of namespaces, webhooks and API keys the hot paths read.
//! - [`health`], [`metrics`], [`stats`], [`telemetry`], [`shutdown`]: operations.
//!
//! The control plane (model, store, admin API) is the `admin-api` crate.

pub mod app;
pub mod catalog;
pub mod config;
pub mod health;
pub mod metrics;
pub mod shutdown;
pub mod stats;
pub mod telemetry;

pub use app::{Application, StartError};
pub use config::Config;
