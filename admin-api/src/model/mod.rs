//! The entities of SPEC 3 and their validation. Nothing here touches the store or HTTP.

mod api_key;
mod delivery;
mod namespace;
mod url_policy;
mod webhook;

pub use api_key::{
    ApiKey, ApiKeyCreated, NewApiKey, api_key_prefix, generate_api_key, hash_api_key,
};
pub use delivery::{
    AttemptRecord, Delivery, DeliveryStatus, DeliverySummary, MAX_HISTORY, push_history,
};
pub use namespace::{
    JwtAlgorithm, JwtAuth, Namespace, NamespaceAuth, NamespacePatch, NewNamespace,
    validate_namespace_name,
};
pub use url_policy::UrlPolicy;
pub use webhook::{
    BATCH_MAX_IN_FLIGHT, Batch, EventPattern, NewWebhook, RESERVED_EVENTS, SECRET_PREFIX,
    SecretRotated, Webhook, WebhookCreated, WebhookPatch, generate_webhook_secret,
    is_reserved_event, validate_webhook_secret,
};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use utoipa::ToSchema;

/// A point in time, stored as unix milliseconds and shown as RFC 3339 (`2026-11-25T22:47:05.123Z`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ToSchema)]
#[schema(value_type = String, format = DateTime)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// The current time.
    pub fn now() -> Self {
        Self(chrono::Utc::now().timestamp_millis())
    }

    /// Parses an RFC 3339 time (`2026-11-25T22:47:05.123Z`, any offset).
    pub fn parse_rfc3339(text: &str) -> Option<Self> {
        chrono::DateTime::parse_from_rfc3339(text)
            .ok()
            .map(|t| Self(t.timestamp_millis()))
    }

    /// RFC 3339 with millisecond precision and a `Z` suffix.
    pub fn to_rfc3339(self) -> String {
        chrono::DateTime::from_timestamp_millis(self.0)
            .unwrap_or_default()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    /// Reads the RFC 3339 form [`Serialize`] writes.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse_rfc3339(&text).ok_or_else(|| serde::de::Error::custom("not an RFC 3339 time"))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_rfc3339())
    }
}

/// A new, time-ordered unique id.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}
