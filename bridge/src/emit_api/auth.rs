//! Emit API authentication: `Authorization: Bearer <api key>` against the catalog's key hashes
//! (no store query per request), a rate limit per key, and `last_used_at` written in batches.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use admin_api::model::{ApiKey, Timestamp, hash_api_key};
use admin_api::{ApiError, Store};
use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use socketioxide::adapter::Adapter;

use super::EmitState;
use crate::rate::{RateLimit, TokenBucket};

/// How often `last_used_at` is written.
const USAGE_FLUSH_INTERVAL: Duration = Duration::from_secs(1);

/// The API key a request authenticated with.
#[derive(Debug, Clone)]
pub struct Caller(pub ApiKey);

impl Caller {
    /// 403 unless the key may act on `namespace`.
    pub fn require(&self, namespace: &str) -> Result<(), ApiError> {
        if self.0.allows(namespace) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "this API key may not act on namespace {namespace}"
            )))
        }
    }
}

impl<A: Adapter> FromRequestParts<EmitState<A>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &EmitState<A>) -> Result<Self, ApiError> {
        let token = bearer(parts).ok_or(ApiError::Unauthorized)?;
        let key = state
            .gateway
            .catalog
            .current()
            .api_keys
            .get(&hash_api_key(token))
            .cloned()
            .ok_or(ApiError::Unauthorized)?;
        state.keys.admit(&key.id)?;
        Ok(Caller(key))
    }
}

fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Per-key rate limits and usage records.
pub struct KeyActivity {
    rate: RateLimit,
    buckets: Mutex<HashMap<String, TokenBucket>>,
    used: Mutex<HashSet<String>>,
}

impl KeyActivity {
    /// Starts the background writer of `last_used_at`; it stops once this is dropped.
    pub fn start(rate: RateLimit, store: Store) -> Arc<Self> {
        let activity = Arc::new(Self {
            rate,
            buckets: Mutex::new(HashMap::new()),
            used: Mutex::new(HashSet::new()),
        });
        tokio::spawn(flush_usage(Arc::downgrade(&activity), store));
        activity
    }

    /// Takes one request from the key's budget (429 with `Retry-After` when empty) and notes the use.
    fn admit(&self, key_id: &str) -> Result<(), ApiError> {
        {
            let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
            let bucket = buckets
                .entry(key_id.to_owned())
                .or_insert_with(|| TokenBucket::new(self.rate));
            if !bucket.take(Instant::now()) {
                let secs = bucket.wait_time().as_secs_f64().ceil().max(1.0);
                return Err(ApiError::RateLimited(secs as u64));
            }
        }
        self.used
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key_id.to_owned());
        Ok(())
    }

    fn take_used(&self) -> Vec<String> {
        self.used
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
            .collect()
    }
}

async fn flush_usage(activity: Weak<KeyActivity>, store: Store) {
    loop {
        tokio::time::sleep(USAGE_FLUSH_INTERVAL).await;
        let Some(activity) = activity.upgrade() else {
            return;
        };
        let used = activity.take_used();
        if used.is_empty() {
            continue;
        }
        if let Err(err) = store.touch_api_keys(&used, Timestamp::now()).await {
            tracing::warn!(%err, "cannot record API key use");
        }
    }
}
