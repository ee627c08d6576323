//! Control plane of the bridge.
//!
//! - [`model`]: the entities of SPEC 3 (namespaces, webhooks, API keys, deliveries) and their
//!   validation.
//! - [`store`]: every SQL statement, over Postgres or SQLite, with embedded migrations.
//! - [`routes`]: the admin REST router (SPEC 7), mounted by the `bridge` binary on its admin
//!   listener.
//! - [`error`] and [`extract`]: the JSON error shape of SPEC 9 and a JSON extractor that uses it;
//!   the data plane's emit API shares both.
//!
//! This crate knows nothing of sockets: live numbers come in through [`routes::StatsSource`].

pub mod error;
pub mod extract;
pub mod model;
pub mod routes;
pub mod store;

pub use error::ApiError;
pub use routes::{AdminState, AdminToken, NodeStats, OutboxStats, Stats, StatsSource, router};
pub use store::{CatalogSnapshot, Store, StoreError};
