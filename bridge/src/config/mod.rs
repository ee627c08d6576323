//! One typed `Config`: defaults < TOML file < environment < flags (SPEC 2), validated once.
//!
//! `cli.rs` is the command line, `settings.rs` one layer of settings and how layers merge,
//! `validate.rs` the checks; this file lays the layers over the defaults.

mod cli;
mod settings;
mod validate;

use std::path::PathBuf;
use std::time::Duration;

use admin_api::model::UrlPolicy;
use admin_api::store::{KeyError, Sealer};

pub use cli::{Cli, Command, TokenArgs};
pub use settings::{AdapterKind, Settings};

use crate::declarations::Declarations;
use crate::listener::Limits;
use crate::rate::RateLimit;
use crate::schedule::{DEFAULT_SCHEDULE, Schedule, parse_duration};
use settings::read_file;

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The TOML file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The TOML file is not valid.
    #[error("invalid config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A value is out of range or inconsistent.
    #[error("invalid setting {0}: {1}")]
    Invalid(&'static str, String),
}

/// Settings of the durable outbox.
#[derive(Debug, Clone)]
pub struct OutboxConfig {
    /// Delays between attempts.
    pub schedule: Schedule,
    /// Undelivered bytes one webhook may hold.
    pub webhook_bytes: u64,
    /// Undelivered bytes all webhooks may hold.
    pub total_bytes: u64,
    /// How long a lease lasts without renewal.
    pub lease: Duration,
    /// How long delivered rows are kept.
    pub delivered_retention: Duration,
    /// How long failed and dead rows are kept.
    pub failed_retention: Duration,
}

/// The validated configuration the application runs with.
#[derive(Clone)]
pub struct Config {
    /// Public listener address (`host:port`; port 0 picks a free one).
    pub listen: String,
    /// Admin listener address.
    pub admin_listen: String,
    /// Store URL.
    pub database_url: String,
    /// Admin token; `None` means generate one at start.
    pub admin_token: Option<String>,
    /// Key sealing secrets in the store (base64), if any.
    pub secrets_key: Option<String>,
    /// Earlier keys that still open sealed secrets.
    pub secrets_old_keys: Vec<String>,
    /// Namespaces, webhooks and API keys the config file declares.
    pub bootstrap: Declarations,
    /// Whether `/playground/` is served on the public listener.
    pub playground: bool,
    /// Cluster adapter.
    pub adapter: AdapterKind,
    /// Redis URL for the redis adapter.
    pub redis_url: Option<String>,
    /// This node's id.
    pub node_id: String,
    /// Engine.IO ping interval.
    pub ping_interval: Duration,
    /// Engine.IO ping timeout.
    pub ping_timeout: Duration,
    /// Time allowed before a namespace CONNECT.
    pub connect_timeout: Duration,
    /// Largest client payload in bytes.
    pub max_payload: u64,
    /// Per-socket event rate limit.
    pub event_rate: RateLimit,
    /// Per-API-key request rate limit of the emit API.
    pub api_rate: RateLimit,
    /// Webhook requests in flight per webhook.
    pub webhook_concurrency: usize,
    /// Bytes one webhook may have queued in memory.
    pub queue_webhook_bytes: usize,
    /// Bytes all webhooks may have queued in memory.
    pub queue_total_bytes: usize,
    /// Which webhook destinations are allowed.
    pub url_policy: UrlPolicy,
    /// Connection cap and header timeout of the listeners.
    pub listen_limits: Limits,
    /// The durable outbox.
    pub outbox: OutboxConfig,
    /// Tracing filter.
    pub rust_log: String,
    /// The window over which a stopping node closes its clients' transports.
    pub drain: Duration,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("admin_listen", &self.admin_listen)
            .field(
                "database_url",
                &admin_api::store::redact_url(&self.database_url),
            )
            .field("admin_token", &self.admin_token.as_ref().map(|_| "***"))
            .field("secrets_key", &self.secrets_key.as_ref().map(|_| "***"))
            .field("secrets_old_keys", &self.secrets_old_keys.len())
            .field("adapter", &self.adapter)
            .field("node_id", &self.node_id)
            .field("ping_interval", &self.ping_interval)
            .field("ping_timeout", &self.ping_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("max_payload", &self.max_payload)
            .field("event_rate", &self.event_rate)
            .field("api_rate", &self.api_rate)
            .field("webhook_concurrency", &self.webhook_concurrency)
            .field("queue_webhook_bytes", &self.queue_webhook_bytes)
            .field("queue_total_bytes", &self.queue_total_bytes)
            .field("url_policy", &self.url_policy)
            .field("listen_limits", &self.listen_limits)
            .field("outbox", &self.outbox)
            .field("bootstrap", &self.bootstrap)
            .field("playground", &self.playground)
            .field("drain", &self.drain)
            .finish_non_exhaustive()
    }
}

impl Config {
    /// Merges the layers: `cli` (flags over env, by clap) over the TOML file over defaults.
    pub fn load(cli: Settings) -> Result<Self, ConfigError> {
        let file = match &cli.config {
            Some(path) => read_file(path)?,
            None => Settings::default(),
        };
        Self::from_settings(cli.or(file))
    }

    /// Applies defaults to `s` and validates the result.
    pub fn from_settings(s: Settings) -> Result<Self, ConfigError> {
        let url_policy = UrlPolicy {
            deny_private: s.webhook_deny_private.unwrap_or(false),
        };
        let config = Config {
            listen: normalize_addr(s.listen.as_deref().unwrap_or("0.0.0.0:3000")),
            admin_listen: normalize_addr(s.admin_listen.as_deref().unwrap_or("127.0.0.1:3001")),
            database_url: s
                .database_url
                .unwrap_or_else(|| "sqlite://bridge.db".into()),
            admin_token: s.admin_token.filter(|t| !t.is_empty()),
            secrets_key: s.secrets_key.filter(|k| !k.is_empty()),
            secrets_old_keys: s
                .secrets_old_keys
                .iter()
                .flat_map(|keys| keys.split(','))
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .map(str::to_owned)
                .collect(),
            adapter: s.adapter.unwrap_or_default(),
            redis_url: s.redis_url,
            node_id: s.node_id.unwrap_or_else(generated_node_id),
            ping_interval: Duration::from_millis(s.ping_interval_ms.unwrap_or(25_000)),
            ping_timeout: Duration::from_millis(s.ping_timeout_ms.unwrap_or(20_000)),
            connect_timeout: Duration::from_millis(s.connect_timeout_ms.unwrap_or(45_000)),
            max_payload: s.max_payload.unwrap_or(1_000_000),
            event_rate: RateLimit {
                per_second: s.event_rate_limit.unwrap_or(100.0),
                burst: s.event_rate_burst.unwrap_or(200.0),
            },
            api_rate: RateLimit {
                per_second: s.api_rate_limit.unwrap_or(1000.0),
                burst: s.api_rate_burst.unwrap_or(2000.0),
            },
            webhook_concurrency: s.webhook_concurrency.unwrap_or(64),
            queue_webhook_bytes: s.queue_webhook_bytes.unwrap_or(64 << 20),
            queue_total_bytes: s.queue_total_bytes.unwrap_or(256 << 20),
            url_policy,
            listen_limits: Limits {
                max_connections: s.max_connections.unwrap_or(16_384),
                header_timeout: Duration::from_millis(s.header_timeout_ms.unwrap_or(10_000)),
                write_timeout: Duration::from_millis(s.write_timeout_ms.unwrap_or(20_000)),
            },
            outbox: OutboxConfig {
                schedule: Schedule::parse(s.outbox_schedule.as_deref().unwrap_or(DEFAULT_SCHEDULE))
                    .map_err(|e| ConfigError::Invalid("outbox_schedule", e))?,
                webhook_bytes: s.outbox_webhook_bytes.unwrap_or(256 << 20),
                total_bytes: s.outbox_total_bytes.unwrap_or(1 << 30),
                lease: Duration::from_millis(s.outbox_lease_ms.unwrap_or(30_000)),
                delivered_retention: retention("delivered_retention", s.delivered_retention, "7d")?,
                failed_retention: retention("failed_retention", s.failed_retention, "30d")?,
            },
            rust_log: s.rust_log.unwrap_or_else(|| "info".into()),
            drain: parse_duration(s.drain.as_deref().unwrap_or("10s"))
                .map_err(|e| ConfigError::Invalid("drain", e))?,
            playground: s.playground.unwrap_or(false),
            bootstrap: Declarations::resolve(&s.namespaces, &s.api_keys, url_policy, |var| {
                std::env::var(var).ok()
            })
            .map_err(|e| ConfigError::Invalid("namespaces/api_keys", e))?,
        };
        config.validate()?;
        Ok(config)
    }
}

impl Config {
    /// The store's sealer for the configured secrets keys.
    pub fn sealer(&self) -> Result<Sealer, KeyError> {
        Sealer::new(self.secrets_key.as_deref(), &self.secrets_old_keys)
    }
}

/// A node id for this run: `node-` and 8 random hex digits.
fn generated_node_id() -> String {
    format!("node-{:08x}", rand::random::<u32>())
}

fn retention(
    name: &'static str,
    value: Option<String>,
    default: &str,
) -> Result<Duration, ConfigError> {
    parse_duration(value.as_deref().unwrap_or(default)).map_err(|e| ConfigError::Invalid(name, e))
}

/// `:3000` means every interface, as SPEC 2's `:0` does.
fn normalize_addr(addr: &str) -> String {
    match addr.strip_prefix(':') {
        Some(port) => format!("0.0.0.0:{port}"),
        None => addr.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_spec() {
        let c = Config::from_settings(Settings::default()).unwrap();
        assert_eq!(c.listen, "0.0.0.0:3000");
        assert_eq!(c.admin_listen, "127.0.0.1:3001");
        assert_eq!(c.database_url, "sqlite://bridge.db");
        assert_eq!(c.adapter, AdapterKind::Memory);
        assert!(c.node_id.starts_with("node-") && c.node_id.len() == 13);
        assert_eq!(c.ping_interval, Duration::from_millis(25_000));
        assert_eq!(c.ping_timeout, Duration::from_millis(20_000));
        assert_eq!(c.connect_timeout, Duration::from_millis(45_000));
        assert_eq!(c.max_payload, 1_000_000);
        assert_eq!(c.outbox.schedule.attempts(), 10);
        assert_eq!(
            c.outbox.delivered_retention,
            Duration::from_secs(7 * 86_400)
        );
        assert_eq!(c.outbox.failed_retention, Duration::from_secs(30 * 86_400));
        assert_eq!(c.drain, Duration::from_secs(10));
    }

    #[test]
    fn the_drain_window_is_a_bounded_duration() {
        let drain = |text: &str| {
            Config::from_settings(Settings {
                drain: Some(text.into()),
                ..Settings::default()
            })
            .map(|c| c.drain)
        };
        assert_eq!(drain("0s").unwrap(), Duration::ZERO);
        assert_eq!(drain("1500ms").unwrap(), Duration::from_millis(1500));
        for bad in ["2h", "10", "soon"] {
            match drain(bad) {
                Err(ConfigError::Invalid("drain", _)) => {}
                other => panic!("{bad}: {other:?}"),
            }
        }
    }

    #[test]
    fn bad_outbox_settings_name_the_setting() {
        for (settings, name) in [
            (
                Settings {
                    outbox_schedule: Some("5s,soon".into()),
                    ..Settings::default()
                },
                "outbox_schedule",
            ),
            (
                Settings {
                    delivered_retention: Some("7".into()),
                    ..Settings::default()
                },
                "delivered_retention",
            ),
            (
                Settings {
                    outbox_lease_ms: Some(10),
                    ..Settings::default()
                },
                "outbox_lease_ms",
            ),
        ] {
            let err = Config::from_settings(settings).unwrap_err();
            assert!(err.to_string().contains(name), "{err}");
        }
    }
}
