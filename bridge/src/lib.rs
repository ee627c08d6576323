//! Data plane of the bridge.
//!
//! - [`config`]: the one typed configuration (defaults < TOML < env < flags); the namespaces,
//!   webhooks and keys it declares are [`declarations`], applied at start by [`bootstrap`].
//! - [`admin_writes`]: admin writes answer once this node serves them.
//! - [`app`]: [`Application`], which binds the public and admin listeners and wires everything.
//! - [`catalog`]: the in-memory view of namespaces, webhooks and API keys the hot paths read.
//! - [`cluster`]: several nodes: the node id, the Redis and Postgres adapter drivers, their health.
//! - [`jwt`]: token verification (a fixed key or an identity provider's JWKS), which the
//!   catalog compiles and the socket layer asks.
//! - [`socket`]: the Socket.IO gateway (namespaces, auth, the catch-all forwarder).
//! - [`emit_api`]: the REST emit API of the public listener (`/v1/*`).
//! - [`webhook`]: delivery bodies, signing, sending with retries, replies.
//! - [`payload`]: Socket.IO arguments as JSON, binaries as `{"$binary": base64}`.
//! - [`schedule`]: durations as operators write them, and the durable retry schedule.
//! - [`listener`]: serving a listener with a header timeout and a connection cap.
//! - [`v2_connect`]: socket.io-client v2's CONNECT query stripped (polling bodies, WebSocket
//!   frames on the listener's connections).
//! - [`outgoing`]: the URL policy applied to the bridge's own requests (webhooks, JWKS) when a
//!   host name is resolved.
//! - [`health`], [`metrics`], [`stats`], [`telemetry`], [`shutdown`]: operations.
//!
//! The control plane (model, store, admin API) is the `admin-api` crate.

pub mod admin_writes;
pub mod app;
pub mod bootstrap;
pub mod catalog;
pub mod cluster;
pub mod config;
pub mod console;
pub mod declarations;
pub mod emit_api;
pub mod health;
pub mod jwt;
pub mod listener;
pub mod metrics;
pub mod outgoing;
pub mod payload;
pub mod rate;
pub mod schedule;
pub mod shutdown;
pub mod socket;
pub mod stats;
pub mod telemetry;
pub mod token;
pub mod v2_connect;
pub mod webhook;

pub use app::{Application, StartError};
pub use config::Config;
