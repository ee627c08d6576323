//! Test harness of the bridge: fresh databases, the real application on port 0, HTTP helpers.

pub mod db;
pub mod proxy;
pub mod spawn;

pub use db::{Engine, fresh_database};
pub use spawn::TestApp;
