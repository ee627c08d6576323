//! The checks a `Config` passes before anything is opened: ranges, addresses, URLs, and
//! settings that only make sense together. Each refusal names its setting.

use std::time::Duration;

use super::{AdapterKind, Config, ConfigError};

impl Config {
    /// Refuses values out of range or inconsistent with each other.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;

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
}
