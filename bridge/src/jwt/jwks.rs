//! An identity provider's JSON Web Key Set: fetched, cached, refreshed when a token names a key
//! it lacks, and kept while the provider is down.
//!
//! - Cached for the response's `Cache-Control: max-age`, within 1 minute and 1 day (10 minutes
//!   without one); refetched when stale, on the next token.
//! - A token whose `kid` is not in the set triggers one refetch, at most one per
//!   [`MIN_REFRESH`] per set, so a flood of bad tokens cannot hammer the provider.
//! - A failed fetch keeps the last good set (and is logged); bodies over 1 MiB are refused.
//! - Fetches follow the webhooks' URL policy (`BRIDGE_WEBHOOK_DENY_PRIVATE` included): never a
//!   link-local (metadata) address, whether the URL names it or a host name resolves to it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use admin_api::model::UrlPolicy;
use jsonwebtoken::DecodingKey;
use jsonwebtoken::jwk::JwkSet;

use crate::outgoing::{self, Denied};

/// Fewest seconds between two fetches of one set.
pub const MIN_REFRESH: Duration = Duration::from_secs(5);
/// Shortest and longest cache lifetimes, and the one without `Cache-Control`.
const MIN_TTL: Duration = Duration::from_secs(60);
const MAX_TTL: Duration = Duration::from_secs(86_400);
const DEFAULT_TTL: Duration = Duration::from_secs(600);
/// Longest JWKS document read.
const MAX_BODY: usize = 1 << 20;
/// Longest wait for the provider.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// The keys of one set, by `kid`.
#[derive(Default)]
struct Keys {
    by_kid: HashMap<String, DecodingKey>,
    /// The only key of a set whose one key has no `kid`.
    unnamed: Option<DecodingKey>,
    stale_at: Option<Instant>,
}

/// One provider's key set.
pub struct Jwks {
    url: String,
    http: reqwest::Client,
    policy: UrlPolicy,
    keys: Mutex<Keys>,
    /// One fetch at a time; the instant of the last attempt.
    fetching: tokio::sync::Mutex<Option<Instant>>,
}

impl Jwks {
    fn new(url: &str, http: reqwest::Client, policy: UrlPolicy) -> Self {
        Self {
            url: url.to_owned(),
            http,
            policy,
            keys: Mutex::new(Keys::default()),
            fetching: tokio::sync::Mutex::new(None),
        }
    }

    /// The key named `kid` (or the set's only key, for a token without one), fetching the set
    /// when it is stale or lacks that key.
    pub async fn key(&self, kid: Option<&str>) -> Option<DecodingKey> {
        if self.is_stale() {
            self.refresh().await;
        }
        if let Some(key) = self.find(kid) {
            return Some(key);
        }
        self.refresh().await;
        self.find(kid)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Keys> {
        self.keys.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn is_stale(&self) -> bool {
        self.lock().stale_at.is_none_or(|at| Instant::now() >= at)
    }

    fn find(&self, kid: Option<&str>) -> Option<DecodingKey> {
        let keys = self.lock();
        match kid {
            Some(kid) => keys.by_kid.get(kid).cloned(),
            None => keys.unnamed.clone(),
        }
    }

    /// Fetches the set unless another fetch ran within [`MIN_REFRESH`]; keeps the old keys on
    /// failure.
    async fn refresh(&self) {
        let mut last = self.fetching.lock().await;
        if last.is_some_and(|at| at.elapsed() < MIN_REFRESH) {
            return;
        }
        *last = Some(Instant::now());
        match self.fetch().await {
            Ok((keys, ttl)) => {
                tracing::info!(url = %self.url, keys = keys.by_kid.len() + usize::from(keys.unnamed.is_some()), "JWKS fetched");
                *self.lock() = Keys {
                    stale_at: Some(Instant::now() + ttl),
                    ..keys
                };
            }
            Err(err) => {
                tracing::warn!(url = %self.url, %err, "cannot fetch the JWKS; keeping the last keys");
            }
        }
    }

    async fn fetch(&self) -> Result<(Keys, Duration), String> {
        let url = url::Url::parse(&self.url).map_err(|e| e.to_string())?;
        outgoing::check_literal(self.policy, &url)?;
        let mut res = tokio::time::timeout(FETCH_TIMEOUT, self.http.get(url).send())
            .await
            .map_err(|_| "no answer within 5 s".to_owned())?
            .map_err(|e| match Denied::find(&e) {
                Some(denied) => denied.to_string(),
                None => e.to_string(),
            })?;
        if !res.status().is_success() {
            return Err(format!("HTTP {}", res.status()));
        }
        let ttl = cache_lifetime(res.headers().get(reqwest::header::CACHE_CONTROL));
        let mut body = Vec::new();
        while let Some(chunk) = tokio::time::timeout(FETCH_TIMEOUT, res.chunk())
            .await
            .map_err(|_| "the body did not arrive within 5 s".to_owned())?
            .map_err(|e| e.to_string())?
        {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_BODY {
                return Err("the JWKS is over 1 MiB".into());
            }
        }
        let set: JwkSet = serde_json::from_slice(&body).map_err(|e| format!("not a JWKS: {e}"))?;
        let mut keys = Keys::default();
        let single = set.keys.len() == 1;
        for jwk in &set.keys {
            // Keys of other uses or kinds (encryption keys, unsupported curves) are skipped.
            let Ok(key) = DecodingKey::from_jwk(jwk) else {
                continue;
            };
            match &jwk.common.key_id {
                Some(kid) => {
                    keys.by_kid.insert(kid.clone(), key);
                }
                None if single => keys.unnamed = Some(key),
                None => {}
            }
        }
        Ok((keys, ttl))
    }
}

/// `max-age` of a `Cache-Control` header, within bounds.
fn cache_lifetime(header: Option<&reqwest::header::HeaderValue>) -> Duration {
    header
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.split(',')
                .find_map(|d| d.trim().strip_prefix("max-age="))
                .and_then(|secs| secs.trim().parse::<u64>().ok())
        })
        .map_or(DEFAULT_TTL, |secs| {
            Duration::from_secs(secs).clamp(MIN_TTL, MAX_TTL)
        })
}

/// Every key set in use, by URL: namespaces sharing a provider share its cache, and the cache
/// outlives catalog reloads.
#[derive(Clone, Default)]
pub struct JwksRegistry {
    sets: Arc<Mutex<HashMap<String, Arc<Jwks>>>>,
    /// Where key sets may be fetched from: the webhooks' policy.
    policy: UrlPolicy,
    /// Made when the first set is: namespaces without a JWKS need no HTTP client.
    http: Arc<std::sync::OnceLock<reqwest::Client>>,
}

impl JwksRegistry {
    /// A registry whose fetches follow `policy`.
    pub fn new(policy: UrlPolicy) -> Self {
        Self {
            policy,
            ..Self::default()
        }
    }

    /// The set at `url`, made on first use.
    pub fn get(&self, url: &str) -> Arc<Jwks> {
        let http = self.http.get_or_init(|| {
            // The application installs it at start; a second install is refused harmlessly.
            let _ = rustls::crypto::ring::default_provider().install_default();
            outgoing::client(self.policy).build().unwrap_or_default()
        });
        self.sets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(url.to_owned())
            .or_insert_with(|| Arc::new(Jwks::new(url, http.clone(), self.policy)))
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    /// A URL naming a refused address (a set saved before the policy covered JWKS) is never
    /// requested; the resolver covers host names.
    #[tokio::test]
    async fn a_refused_address_is_not_fetched() {
        let registry = JwksRegistry::new(UrlPolicy::default());
        let set = registry.get("https://169.254.169.254/jwks");
        let err = set.fetch().await.err().unwrap_or_default();
        assert!(
            err.starts_with("destination not allowed: 169.254.169.254 is a link-local"),
            "{err}"
        );
    }

    #[test]
    fn cache_lifetimes_are_bounded() {
        let ttl = |v: &str| cache_lifetime(Some(&HeaderValue::from_str(v).unwrap()));
        assert_eq!(ttl("public, max-age=3600"), Duration::from_secs(3600));
        assert_eq!(ttl("max-age=5"), MIN_TTL);
        assert_eq!(ttl("max-age=9999999"), MAX_TTL);
        assert_eq!(ttl("no-cache"), DEFAULT_TTL);
        assert_eq!(cache_lifetime(None), DEFAULT_TTL);
    }
}
