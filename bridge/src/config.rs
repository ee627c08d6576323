//! One typed `Config`: defaults < TOML file < environment < flags (SPEC 2), validated once.

use std::path::{Path, PathBuf};
use std::time::Duration;

use admin_api::model::UrlPolicy;
use admin_api::store::{KeyError, Sealer};
use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::Deserialize;

use crate::declarations::{Declarations, DeclaredApiKey, DeclaredNamespace};
use crate::listener::Limits;
use crate::rate::RateLimit;
use crate::schedule::{DEFAULT_SCHEDULE, Schedule, parse_duration};

/// Command line of the `bridge` binary.
#[derive(Debug, Parser)]
#[command(
    name = "bridge",
    version,
    about = "Socket.IO gateway: events out as webhooks, REST in as emits"
)]
pub struct Cli {
    /// What to do; `serve` when absent.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Settings; each also has an environment variable and a TOML key.
    #[command(flatten)]
    pub settings: Settings,
}

impl Cli {
    /// Parses `args` (the program name first) and the environment. A value clap refuses names
    /// where it came from: the flag when it was given on the command line, else its environment
    /// variable (clap's own message names the flag even for `BRIDGE_MAX_PAYLOAD=abc`).
    pub fn try_parse_args(args: Vec<std::ffi::OsString>) -> Result<Self, clap::Error> {
        Self::try_parse_from(&args).map_err(|err| match from_env(&err, &args) {
            Some(message) => clap::Error::raw(err.kind(), message),
            None => err,
        })
    }
}

/// When `err` refuses a value that came from an environment variable, its message with the
/// variable named instead of the flag (`invalid value 'abc' for BRIDGE_MAX_PAYLOAD (the
/// environment variable of --max-payload): …`).
fn from_env(err: &clap::Error, args: &[std::ffi::OsString]) -> Option<String> {
    use clap::CommandFactory;
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if !matches!(
        err.kind(),
        ErrorKind::InvalidValue | ErrorKind::ValueValidation
    ) {
        return None;
    }
    // The argument as clap shows it: `--max-payload <MAX_PAYLOAD>`.
    let Some(ContextValue::String(shown)) = err.get(ContextKind::InvalidArg) else {
        return None;
    };
    let flag = shown.split_whitespace().next()?;
    let long = flag.strip_prefix("--")?;
    let command = Cli::command();
    let env = command
        .get_arguments()
        .find(|arg| arg.get_long() == Some(long))?
        .get_env()?
        .to_str()?;
    // A flag on the command line beats its variable, so the value came from the variable only
    // when the flag is absent.
    let given = args.iter().skip(1).any(|arg| {
        let arg = arg.to_string_lossy();
        arg == flag
            || arg
                .strip_prefix(flag)
                .is_some_and(|rest| rest.starts_with('='))
    });
    if given {
        return None;
    }
    let message = err.render().to_string();
    let message = message.strip_prefix("error: ").unwrap_or(&message);
    Some(message.replacen(
        &format!("'{shown}'"),
        &format!("{env} (the environment variable of {flag})"),
        1,
    ))
}

/// Subcommands.
#[derive(Debug, Clone, Subcommand, PartialEq, Eq)]
pub enum Command {
    /// Run the bridge (the default).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Print a JWT that a namespace with a shared secret (HS256/384/512) accepts, for tests.
    Token(TokenArgs),
}

/// What `bridge token` signs.
#[derive(Debug, Clone, Args, PartialEq, Eq)]
pub struct TokenArgs {
    /// The namespace, e.g. /private; its secret is read from the store.
    #[arg(long)]
    pub namespace: String,
    /// The user id (`sub` claim).
    #[arg(long)]
    pub sub: String,
    /// Rooms the socket joins at connect (`rooms` claim), comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub rooms: Vec<String>,
    /// How long the token is valid (ms, s, m, h or d).
    #[arg(long, default_value = "1h")]
    pub ttl: String,
}

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
    fn or(self, lower: Settings) -> Settings {
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

    fn validate(&self) -> Result<(), ConfigError> {
        for (name, value) in [
            ("ping_interval_ms", self.ping_interval),
            ("ping_timeout_ms", self.ping_timeout),
            ("connect_timeout_ms", self.connect_timeout),
        ] {
            if value.is_zero() {
                return Err(ConfigError::Invalid(name, "must be greater than 0".into()));
            }
        }
        for (name, rate) in [
            ("event_rate_limit", self.event_rate),
            ("api_rate_limit", self.api_rate),
        ] {
            if !(rate.per_second > 0.0 && rate.burst >= 1.0) {
                return Err(ConfigError::Invalid(
                    name,
                    "the rate must be > 0 and the burst >= 1".into(),
                ));
            }
        }
        if self.webhook_concurrency == 0 {
            return Err(ConfigError::Invalid(
                "webhook_concurrency",
                "must be at least 1".into(),
            ));
        }
        if self.drain > Duration::from_secs(3600) {
            return Err(ConfigError::Invalid("drain", "must be at most 1h".into()));
        }
        if self.outbox.lease < Duration::from_millis(300) {
            return Err(ConfigError::Invalid(
                "outbox_lease_ms",
                "must be at least 300".into(),
            ));
        }
        if self.listen_limits.max_connections == 0 {
            return Err(ConfigError::Invalid(
                "max_connections",
                "must be greater than 0".into(),
            ));
        }
        if self.listen_limits.write_timeout < Duration::from_millis(100) {
            return Err(ConfigError::Invalid(
                "write_timeout_ms",
                "must be at least 100".into(),
            ));
        }
        if self.listen_limits.header_timeout < Duration::from_millis(100) {
            return Err(ConfigError::Invalid(
                "header_timeout_ms",
                "must be at least 100".into(),
            ));
        }
        if self.max_payload == 0 {
            return Err(ConfigError::Invalid(
                "max_payload",
                "must be greater than 0".into(),
            ));
        }
        for (name, addr) in [
            ("listen", &self.listen),
            ("admin_listen", &self.admin_listen),
        ] {
            check_listen_addr(addr).map_err(|why| ConfigError::Invalid(name, why))?;
        }
        check_database_url(&self.database_url)
            .map_err(|why| ConfigError::Invalid("database_url", why))?;
        if let Some(url) = &self.redis_url {
            check_redis_url(url).map_err(|why| ConfigError::Invalid("redis_url", why))?;
        }
        if self.node_id.is_empty()
            || self.node_id.len() > 64
            || !self
                .node_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        {
            return Err(ConfigError::Invalid(
                "node_id",
                "1 to 64 characters among A-Z a-z 0-9 - _ .".into(),
            ));
        }
        self.sealer()
            .map_err(|e| ConfigError::Invalid("secrets_key", e.to_string()))?;
        if self.secrets_key.is_none() && !self.secrets_old_keys.is_empty() {
            return Err(ConfigError::Invalid(
                "secrets_old_keys",
                "old keys need a current BRIDGE_SECRETS_KEY".into(),
            ));
        }
        if self.adapter == AdapterKind::Redis && self.redis_url.is_none() {
            return Err(ConfigError::Invalid(
                "redis_url",
                "REDIS_URL is required with BRIDGE_ADAPTER=redis".into(),
            ));
        }
        if self.adapter == AdapterKind::Postgres && !self.database_url.starts_with("postgres") {
            return Err(ConfigError::Invalid(
                "adapter",
                "BRIDGE_ADAPTER=postgres needs a postgres:// DATABASE_URL".into(),
            ));
        }
        Ok(())
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

fn read_file(path: &Path) -> Result<Settings, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| ConfigError::Parse {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

/// `:3000` means every interface, as SPEC 2's `:0` does.
/// `host:port` (IPv6 in brackets) with a port number: checked before anything is created, so a
/// typo is a configuration error (exit 2) rather than a failed bind after the store was opened.
fn check_listen_addr(addr: &str) -> Result<(), String> {
    let expected = || format!("{addr:?} is not host:port (e.g. 0.0.0.0:3000, [::1]:3000, :3000)");
    let (host, port) = addr.rsplit_once(':').ok_or_else(expected)?;
    let port_ok = port.parse::<u16>().is_ok();
    let host_ok = if let Some(inner) = host.strip_prefix('[') {
        inner
            .strip_suffix(']')
            .is_some_and(|ip| ip.parse::<std::net::Ipv6Addr>().is_ok())
    } else {
        !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
    };
    if port_ok && host_ok {
        Ok(())
    } else {
        Err(expected())
    }
}

/// `sqlite:…` or `postgres://…`, the two stores the bridge speaks.
fn check_database_url(url: &str) -> Result<(), String> {
    let known = ["sqlite:", "postgres://", "postgresql://"];
    if known.iter().any(|scheme| url.starts_with(scheme)) {
        Ok(())
    } else {
        Err(format!(
            "{:?}: expected sqlite://PATH or postgres://…",
            admin_api::store::redact_url(url)
        ))
    }
}

/// `redis://` or `rediss://` with a host.
fn check_redis_url(url: &str) -> Result<(), String> {
    match url::Url::parse(url) {
        Ok(parsed)
            if matches!(parsed.scheme(), "redis" | "rediss") && parsed.host_str().is_some() =>
        {
            Ok(())
        }
        _ => Err("expected redis://[:password@]host:port[/db]".into()),
    }
}

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
    fn node_ids_are_checked() {
        let with = |id: &str| {
            Config::from_settings(Settings {
                node_id: Some(id.into()),
                ..Settings::default()
            })
        };
        assert_eq!(
            with("bridge-1.eu_west").unwrap().node_id,
            "bridge-1.eu_west"
        );
        for bad in ["", "a b", "x/y", &"n".repeat(65)] {
            assert!(
                matches!(with(bad), Err(ConfigError::Invalid("node_id", _))),
                "{bad:?}"
            );
        }
    }

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
    fn env_and_flags_parse_through_clap() {
        // Every setting this reads is given as a flag, so exported variables (REDIS_URL,
        // DATABASE_URL…) cannot change the outcome; the env layer is tested through the binary
        // with a cleared environment (tests/cli.rs).
        let cli = Cli::try_parse_from([
            "bridge",
            "migrate",
            "--listen",
            ":1",
            "--adapter",
            "postgres",
            "--database-url",
            "sqlite://x.db",
        ])
        .unwrap();
        assert_eq!(cli.command, Some(Command::Migrate));
        assert_eq!(cli.settings.listen.as_deref(), Some(":1"));
        let err = Config::from_settings(cli.settings).unwrap_err();
        assert!(err.to_string().contains("postgres://"), "{err}");
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
