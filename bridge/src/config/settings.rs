//! Every setting as one layer (flags and environment through clap, the TOML file through serde),
//! and how a higher layer is laid over a lower one.

use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use serde::Deserialize;

use super::ConfigError;
use crate::declarations::{DeclaredApiKey, DeclaredNamespace};

/// Cluster adapter of socketioxide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum AdapterKind {
    /// One node.
    #[default]
    Memory,
    /// Several nodes over Redis.
    Redis,
    /// Several nodes over Postgres LISTEN/NOTIFY.
    Postgres,
}

impl AdapterKind {
    /// The setting's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Memory => "memory",
            Self::Redis => "redis",
            Self::Postgres => "postgres",
        }
    }
}

/// Every setting, unset ones `None`; the same struct reads flags/env (clap) and the TOML file (serde).
#[derive(Debug, Clone, Default, Args, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// TOML file with any of these settings (keys are the flag names with `_`).
    #[arg(long, env = "BRIDGE_CONFIG", global = true)]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Public listener: Socket.IO, emit API, /healthz, /readyz [default: 0.0.0.0:3000].
    #[arg(long, env = "BRIDGE_LISTEN", global = true)]
    pub listen: Option<String>,
    /// Admin listener: admin API, /metrics, /healthz [default: 127.0.0.1:3001].
    #[arg(long, env = "BRIDGE_ADMIN_LISTEN", global = true)]
    pub admin_listen: Option<String>,
    /// sqlite://PATH or postgres://… [default: sqlite://bridge.db].
    #[arg(long, env = "DATABASE_URL", global = true)]
    pub database_url: Option<String>,
    /// Bearer token of the admin API; generated and logged once when unset.
    #[arg(
        long,
        env = "BRIDGE_ADMIN_TOKEN",
        global = true,
        hide_env_values = true
    )]
    pub admin_token: Option<String>,
    /// Key sealing webhook and JWT secrets in the store: 32 bytes, base64 [default: none].
    #[arg(
        long,
        env = "BRIDGE_SECRETS_KEY",
        global = true,
        hide_env_values = true
    )]
    pub secrets_key: Option<String>,
    /// Earlier secrets keys, comma-separated: they still open secrets during a rotation.
    #[arg(
        long,
        env = "BRIDGE_SECRETS_OLD_KEYS",
        global = true,
        hide_env_values = true
    )]
    pub secrets_old_keys: Option<String>,
    /// memory, redis or postgres [default: memory].
    #[arg(long, env = "BRIDGE_ADAPTER", global = true)]
    pub adapter: Option<AdapterKind>,
    /// Redis URL for the redis adapter.
    #[arg(long, env = "REDIS_URL", global = true)]
    pub redis_url: Option<String>,
    /// This node's id in logs, metrics, stats and socket listings [default: generated].
    #[arg(long, env = "BRIDGE_NODE_ID", global = true)]
    pub node_id: Option<String>,
    /// Engine.IO ping interval, ms [default: 25000].
    #[arg(long, env = "BRIDGE_PING_INTERVAL_MS", global = true)]
    pub ping_interval_ms: Option<u64>,
    /// Engine.IO ping timeout, ms [default: 20000].
    #[arg(long, env = "BRIDGE_PING_TIMEOUT_MS", global = true)]
    pub ping_timeout_ms: Option<u64>,
    /// Close connections that send no namespace CONNECT in time, ms [default: 45000].
    #[arg(long, env = "BRIDGE_CONNECT_TIMEOUT_MS", global = true)]
    pub connect_timeout_ms: Option<u64>,
    /// Largest Engine.IO payload accepted from a client, bytes [default: 1000000].
    #[arg(long, env = "BRIDGE_MAX_PAYLOAD", global = true)]
    pub max_payload: Option<u64>,
    /// Events per second a socket may send on average [default: 100].
    #[arg(long, env = "BRIDGE_EVENT_RATE_LIMIT", global = true)]
    pub event_rate_limit: Option<f64>,
    /// Largest burst of events a socket may send [default: 200].
    #[arg(long, env = "BRIDGE_EVENT_RATE_BURST", global = true)]
    pub event_rate_burst: Option<f64>,
    /// Emit API requests per second per API key, on average [default: 1000].
    #[arg(long, env = "BRIDGE_API_RATE_LIMIT", global = true)]
    pub api_rate_limit: Option<f64>,
    /// Largest burst of emit API requests per API key [default: 2000].
    #[arg(long, env = "BRIDGE_API_RATE_BURST", global = true)]
    pub api_rate_burst: Option<f64>,
    /// Connections open at once on the public listener (the admin one: at most 1024) [default: 16384].
    #[arg(long, env = "BRIDGE_MAX_CONNECTIONS", global = true)]
    pub max_connections: Option<usize>,
    /// Longest a write to a client that stopped reading may wait before its connection is closed, ms [default: 20000].
    #[arg(long, env = "BRIDGE_WRITE_TIMEOUT_MS", global = true)]
    pub write_timeout_ms: Option<u64>,
    /// Time a client has to send a request's headers, ms [default: 10000].
    #[arg(long, env = "BRIDGE_HEADER_TIMEOUT_MS", global = true)]
    pub header_timeout_ms: Option<u64>,
    /// Bytes of messages one webhook may have waiting in memory [default: 67108864 (64 MiB)].
    #[arg(long, env = "BRIDGE_QUEUE_WEBHOOK_BYTES", global = true)]
    pub queue_webhook_bytes: Option<usize>,
    /// Bytes of messages all webhooks may have waiting in memory [default: 268435456 (256 MiB)].
    #[arg(long, env = "BRIDGE_QUEUE_TOTAL_BYTES", global = true)]
    pub queue_total_bytes: Option<usize>,
    /// Refuse webhooks to private and loopback addresses [default: false].
    #[arg(long, env = "BRIDGE_WEBHOOK_DENY_PRIVATE", global = true)]
    pub webhook_deny_private: Option<bool>,
    /// Webhook requests in flight per webhook [default: 64].
    #[arg(long, env = "BRIDGE_WEBHOOK_CONCURRENCY", global = true)]
    pub webhook_concurrency: Option<usize>,
    /// Durable retry schedule, delays between attempts [default: 5s,30s,2m,10m,30m,1h,2h,4h,8h].
    #[arg(long, env = "BRIDGE_OUTBOX_SCHEDULE", global = true)]
    pub outbox_schedule: Option<String>,
    /// Undelivered durable bytes one webhook may hold [default: 268435456 (256 MiB)].
    #[arg(long, env = "BRIDGE_OUTBOX_WEBHOOK_BYTES", global = true)]
    pub outbox_webhook_bytes: Option<u64>,
    /// Undelivered durable bytes all webhooks may hold [default: 1073741824 (1 GiB)].
    #[arg(long, env = "BRIDGE_OUTBOX_TOTAL_BYTES", global = true)]
    pub outbox_total_bytes: Option<u64>,
    /// How long a process holds a durable delivery without renewing its lease, ms [default: 30000].
    #[arg(long, env = "BRIDGE_OUTBOX_LEASE_MS", global = true)]
    pub outbox_lease_ms: Option<u64>,
    /// How long delivered deliveries are kept [default: 7d].
    #[arg(long, env = "BRIDGE_DELIVERED_RETENTION", global = true)]
    pub delivered_retention: Option<String>,
    /// How long failed and dead deliveries are kept [default: 30d].
    #[arg(long, env = "BRIDGE_FAILED_RETENTION", global = true)]
    pub failed_retention: Option<String>,
    /// On SIGTERM, the time over which connected clients are handed to other nodes (ms, s, m) [default: 10s].
    #[arg(long, env = "BRIDGE_DRAIN", global = true)]
    pub drain: Option<String>,
    /// Serve the client playground at /playground/ on the public listener [default: false].
    #[arg(
        long,
        env = "BRIDGE_PLAYGROUND",
        global = true,
        num_args = 0..=1,
        default_missing_value = "true"
    )]
    pub playground: Option<bool>,
    /// Namespaces (with their auth and webhooks) created or updated at start: TOML only.
    #[arg(skip)]
    #[serde(default)]
    pub namespaces: Vec<DeclaredNamespace>,
    /// API keys created or updated at start: TOML only.
    #[arg(skip)]
    #[serde(default)]
    pub api_keys: Vec<DeclaredApiKey>,
    /// Tracing filter [default: info].
    #[arg(long = "log", env = "RUST_LOG", global = true)]
    #[serde(rename = "log")]
    pub rust_log: Option<String>,
}

impl Settings {
    /// Fills every unset field of `self` from `lower`.
    pub(super) fn or(self, lower: Settings) -> Settings {
        Settings {
            config: self.config.or(lower.config),
            listen: self.listen.or(lower.listen),
            admin_listen: self.admin_listen.or(lower.admin_listen),
            database_url: self.database_url.or(lower.database_url),
            admin_token: self.admin_token.or(lower.admin_token),
            secrets_key: self.secrets_key.or(lower.secrets_key),
            secrets_old_keys: self.secrets_old_keys.or(lower.secrets_old_keys),
            adapter: self.adapter.or(lower.adapter),
            redis_url: self.redis_url.or(lower.redis_url),
            node_id: self.node_id.or(lower.node_id),
            webhook_deny_private: self.webhook_deny_private.or(lower.webhook_deny_private),
            max_connections: self.max_connections.or(lower.max_connections),
            queue_webhook_bytes: self.queue_webhook_bytes.or(lower.queue_webhook_bytes),
            queue_total_bytes: self.queue_total_bytes.or(lower.queue_total_bytes),
            header_timeout_ms: self.header_timeout_ms.or(lower.header_timeout_ms),
            write_timeout_ms: self.write_timeout_ms.or(lower.write_timeout_ms),
            ping_interval_ms: self.ping_interval_ms.or(lower.ping_interval_ms),
            ping_timeout_ms: self.ping_timeout_ms.or(lower.ping_timeout_ms),
            connect_timeout_ms: self.connect_timeout_ms.or(lower.connect_timeout_ms),
            max_payload: self.max_payload.or(lower.max_payload),
            event_rate_limit: self.event_rate_limit.or(lower.event_rate_limit),
            event_rate_burst: self.event_rate_burst.or(lower.event_rate_burst),
            api_rate_limit: self.api_rate_limit.or(lower.api_rate_limit),
            api_rate_burst: self.api_rate_burst.or(lower.api_rate_burst),
            webhook_concurrency: self.webhook_concurrency.or(lower.webhook_concurrency),
            outbox_schedule: self.outbox_schedule.or(lower.outbox_schedule),
            outbox_webhook_bytes: self.outbox_webhook_bytes.or(lower.outbox_webhook_bytes),
            outbox_total_bytes: self.outbox_total_bytes.or(lower.outbox_total_bytes),
            outbox_lease_ms: self.outbox_lease_ms.or(lower.outbox_lease_ms),
            delivered_retention: self.delivered_retention.or(lower.delivered_retention),
            failed_retention: self.failed_retention.or(lower.failed_retention),
            rust_log: self.rust_log.or(lower.rust_log),
            playground: self.playground.or(lower.playground),
            drain: self.drain.or(lower.drain),
            // Declarations come from the file alone.
            namespaces: if self.namespaces.is_empty() {
                lower.namespaces
            } else {
                self.namespaces
            },
            api_keys: if self.api_keys.is_empty() {
                lower.api_keys
            } else {
                self.api_keys
            },
        }
    }
}

/// The TOML file as a layer.
pub(super) fn read_file(path: &Path) -> Result<Settings, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| ConfigError::Parse {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::Config;

    #[test]
    fn flags_beat_env_beat_file() {
        let dir = std::env::temp_dir().join(format!("bridge-cfg-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bridge.toml");
        std::fs::write(
            &path,
            "listen = \":4000\"\nmax_payload = 10\nping_interval_ms = 7\n",
        )
        .unwrap();
        // clap resolves flag-over-env; here the "cli" layer sets listen, the file the rest.
        let cli = Settings {
            config: Some(path),
            listen: Some(":5000".into()),
            ..Settings::default()
        };
        let c = Config::load(cli).unwrap();
        assert_eq!(c.listen, "0.0.0.0:5000");
        assert_eq!(c.max_payload, 10);
        assert_eq!(c.ping_interval, Duration::from_millis(7));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn bad_file_is_a_clear_error() {
        let dir = std::env::temp_dir().join(format!("bridge-cfg-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bad.toml");
        std::fs::write(&path, "nope = 1\n").unwrap();
        let err = Config::load(Settings {
            config: Some(path),
            ..Settings::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("invalid config file"), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
