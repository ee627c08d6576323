//! Webhook subscriptions: where a namespace's events go, and how they are signed.

use std::collections::BTreeMap;

use axum::http::{HeaderName, HeaderValue};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Timestamp;
use crate::error::ApiError;

/// Prefix of a Standard Webhooks secret.
pub const SECRET_PREFIX: &str = "whsec_";
/// Random bytes in a generated secret.
const SECRET_BYTES: usize = 24;
/// Longest delivery timeout accepted.
const MAX_TIMEOUT_MS: u64 = 60_000;
/// Bounds of a batch's settings: most events, least and most bytes, longest wait.
pub const BATCH_MAX_EVENTS: u32 = 1_000;
/// Least `batch.max_bytes`.
pub const BATCH_MIN_BYTES: u32 = 1_024;
/// Most `batch.max_bytes` (4 MiB).
pub const BATCH_MAX_BYTES: u32 = 4 << 20;
/// Most `batch.max_wait_ms`.
pub const BATCH_MAX_WAIT_MS: u32 = 10_000;
/// Most `batch.max_in_flight`.
pub const BATCH_MAX_IN_FLIGHT: u32 = 16;
/// Event names a client may never send (Socket.IO reserves them).
pub const RESERVED_EVENTS: [&str; 6] = [
    "connect",
    "connect_error",
    "disconnect",
    "disconnecting",
    "newListener",
    "removeListener",
];
/// Whether a client event named `name` is never forwarded: `$`-names and Socket.IO's reserved ones.
pub fn is_reserved_event(name: &str) -> bool {
    name.starts_with('$') || RESERVED_EVENTS.contains(&name)
}

/// Headers the bridge sets itself; a webhook may not override them.
const RESERVED_HEADERS: [&str; 7] = [
    "content-type",
    "content-length",
    "host",
    "user-agent",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
];

/// A subscription of a URL to some of a namespace's events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Webhook {
    /// Unique id.
    pub id: String,
    /// The namespace whose events it receives.
    pub namespace_id: String,
    /// Where deliveries are POSTed (http or https).
    pub url: String,
    /// Patterns: exact names, `*`, `prefix*`, and the lifecycle events (`$connect`, `$disconnect`, `$room_occupied`, `$room_vacated`, `$join`, `$leave`).
    pub events: Vec<String>,
    /// Signing secret (`whsec_…`); never shown after creation.
    #[serde(skip)]
    pub secret: String,
    /// The secret replaced by the last rotation, still used for signing until `.1` (unix ms).
    #[serde(skip)]
    pub previous_secret: Option<(String, i64)>,
    /// Whether its answer replies to the client (acks, joins, emits).
    pub reply: bool,
    /// Whether deliveries are written to the store and retried for hours.
    pub durable: bool,
    /// Time allowed for one attempt.
    pub timeout_ms: u64,
    /// Static extra headers sent with every delivery.
    pub headers: BTreeMap<String, String>,
    /// Disabled webhooks receive nothing.
    pub enabled: bool,
    /// When set, deliveries go out grouped into one POST (see `Batch`); null sends one POST each.
    #[schema(required = true)]
    pub batch: Option<Batch>,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
}

impl Webhook {
    /// The secrets to sign with now: the current one, then a rotated-out one still in its grace period.
    pub fn signing_secrets(&self, now_ms: i64) -> Vec<&str> {
        let mut secrets = vec![self.secret.as_str()];
        if let Some((old, until)) = &self.previous_secret
            && *until > now_ms
        {
            secrets.push(old.as_str());
        }
        secrets
    }
}

/// How a batched webhook groups its deliveries: one POST holds up to `max_events` bodies and
/// `max_bytes` of them, and leaves at most `max_wait_ms` after its first body arrived; a node has
/// at most `max_in_flight` of them under way at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Batch {
    /// Most deliveries in one POST; default 100.
    #[schema(minimum = 1, maximum = 1000)]
    pub max_events: u32,
    /// Most bytes of bodies in one POST; default 262144 (256 KiB). A body larger than this goes
    /// alone.
    #[schema(minimum = 1024, maximum = 4194304)]
    pub max_bytes: u32,
    /// Longest a delivery waits for others to join its POST, ms; default 20.
    #[schema(minimum = 0, maximum = 10000)]
    pub max_wait_ms: u32,
    /// Most POSTs of this webhook under way at once from one node; default 1. A socket's
    /// deliveries (and a room's) always travel in the same one of these lanes, so their order
    /// holds.
    #[schema(minimum = 1, maximum = 16)]
    pub max_in_flight: u32,
}

impl Default for Batch {
    /// `batch: {}`: 100 events, 256 KiB, 20 ms, one POST under way at a time.
    fn default() -> Self {
        Self {
            max_events: 100,
            max_bytes: 256 * 1024,
            max_wait_ms: 20,
            max_in_flight: 1,
        }
    }
}

impl Batch {
    /// The names of its settings, as serialized.
    pub const FIELDS: [&str; 4] = ["max_events", "max_bytes", "max_wait_ms", "max_in_flight"];

    /// Checks every bound.
    pub fn validate(&self) -> Result<(), ApiError> {
        if !(1..=BATCH_MAX_EVENTS).contains(&self.max_events) {
            return Err(ApiError::invalid(
                "batch.max_events",
                format!("must be between 1 and {BATCH_MAX_EVENTS}"),
            ));
        }
        if !(BATCH_MIN_BYTES..=BATCH_MAX_BYTES).contains(&self.max_bytes) {
            return Err(ApiError::invalid(
                "batch.max_bytes",
                format!("must be between {BATCH_MIN_BYTES} and {BATCH_MAX_BYTES}"),
            ));
        }
        if self.max_wait_ms > BATCH_MAX_WAIT_MS {
            return Err(ApiError::invalid(
                "batch.max_wait_ms",
                format!("must be between 0 and {BATCH_MAX_WAIT_MS}"),
            ));
        }
        if !(1..=BATCH_MAX_IN_FLIGHT).contains(&self.max_in_flight) {
            return Err(ApiError::invalid(
                "batch.max_in_flight",
                format!("must be between 1 and {BATCH_MAX_IN_FLIGHT}"),
            ));
        }
        Ok(())
    }
}

/// A reply webhook answers one event at a time, so it cannot also be batched.
fn validate_batch(batch: Option<&Batch>, reply: bool) -> Result<(), ApiError> {
    let Some(batch) = batch else {
        return Ok(());
    };
    if reply {
        return Err(ApiError::invalid(
            "batch",
            "a reply webhook cannot be batched: its answer replies to one event; set reply to false or batch to null",
        ));
    }
    batch.validate()
}

/// Answer of `POST /admin/namespaces/{id}/webhooks`: the webhook, and its secret when generated.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookCreated {
    /// The webhook.
    #[serde(flatten)]
    pub webhook: Webhook,
    /// The generated secret, shown this once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// Answer of `POST /admin/webhooks/{id}/rotate-secret`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SecretRotated {
    /// The webhook.
    #[serde(flatten)]
    pub webhook: Webhook,
    /// The new secret; the old one keeps signing for 24 hours beside it.
    pub secret: String,
}

/// Body of `POST /admin/namespaces/{id}/webhooks`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWebhook {
    /// Where deliveries are POSTed.
    #[schema(pattern = r"^https?://[^/?#\s]+")]
    pub url: String,
    /// At least one event pattern.
    #[schema(min_items = 1)]
    pub events: Vec<String>,
    /// `whsec_` + base64; generated when absent.
    pub secret: Option<String>,
    /// Default false.
    #[serde(default)]
    pub reply: bool,
    /// Default false.
    #[serde(default)]
    pub durable: bool,
    /// Default 5000.
    #[serde(default = "default_timeout")]
    #[schema(minimum = 1, maximum = 60000)]
    pub timeout_ms: u64,
    /// Static extra headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Default true.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Default null (one POST per delivery); `{}` batches with the default bounds.
    #[serde(default)]
    pub batch: Option<Batch>,
}

fn default_timeout() -> u64 {
    5_000
}

fn default_true() -> bool {
    true
}

impl NewWebhook {
    /// The webhook this body makes in `namespace_id`, with its secret when it was generated
    /// (given secrets are not echoed).
    pub fn create(self, namespace_id: String) -> WebhookCreated {
        let generated = self.secret.is_none().then(generate_webhook_secret);
        let now = Timestamp::now();
        let webhook = Webhook {
            id: super::new_id(),
            namespace_id,
            url: self.url,
            events: self.events,
            secret: self
                .secret
                .or_else(|| generated.clone())
                .unwrap_or_default(),
            previous_secret: None,
            reply: self.reply,
            durable: self.durable,
            timeout_ms: self.timeout_ms,
            headers: self.headers,
            enabled: self.enabled,
            batch: self.batch,
            created_at: now,
            updated_at: now,
        };
        WebhookCreated {
            webhook,
            secret: generated,
        }
    }

    /// Validates every field.
    pub fn validate(&self) -> Result<(), ApiError> {
        validate_url(&self.url)?;
        validate_events(&self.events)?;
        if let Some(secret) = &self.secret {
            validate_webhook_secret("secret", secret)?;
        }
        validate_timeout(self.timeout_ms)?;
        validate_headers(&self.headers)?;
        validate_batch(self.batch.as_ref(), self.reply)
    }
}

/// Body of `PATCH /admin/webhooks/{id}`; absent fields stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookPatch {
    /// New URL.
    #[schema(pattern = r"^https?://[^/?#\s]+")]
    pub url: Option<String>,
    /// New event patterns.
    #[schema(min_items = 1)]
    pub events: Option<Vec<String>>,
    /// New reply flag.
    pub reply: Option<bool>,
    /// New durable flag.
    pub durable: Option<bool>,
    /// New timeout.
    #[schema(minimum = 1, maximum = 60000)]
    pub timeout_ms: Option<u64>,
    /// New static headers (replaces all of them).
    pub headers: Option<BTreeMap<String, String>>,
    /// Enable or disable.
    pub enabled: Option<bool>,
    /// New batch bounds, or null to send one POST per delivery.
    #[serde(default, deserialize_with = "present")]
    pub batch: Option<Option<Batch>>,
}

/// A field that is present, even as null, is `Some`: `"batch": null` turns batching off.
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

impl WebhookPatch {
    /// Applies the patch to `current`, validating what changes.
    pub fn apply(self, current: &Webhook) -> Result<Webhook, ApiError> {
        let mut next = current.clone();
        if let Some(url) = self.url {
            validate_url(&url)?;
            next.url = url;
        }
        if let Some(events) = self.events {
            validate_events(&events)?;
            next.events = events;
        }
        if let Some(timeout_ms) = self.timeout_ms {
            validate_timeout(timeout_ms)?;
            next.timeout_ms = timeout_ms;
        }
        if let Some(headers) = self.headers {
            validate_headers(&headers)?;
            next.headers = headers;
        }
        next.reply = self.reply.unwrap_or(next.reply);
        next.durable = self.durable.unwrap_or(next.durable);
        next.enabled = self.enabled.unwrap_or(next.enabled);
        if let Some(batch) = self.batch {
            next.batch = batch;
        }
        validate_batch(next.batch.as_ref(), next.reply)?;
        next.updated_at = Timestamp::now();
        Ok(next)
    }
}

/// One compiled entry of a webhook's `events`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventPattern {
    /// `*`: every client event (not the lifecycle ones).
    All,
    /// `chat:*`: every client event starting with `chat:`.
    Prefix(String),
    /// An exact event name.
    Exact(String),
    /// `$connect`.
    Connect,
    /// `$disconnect`.
    Disconnect,
    /// `$room_occupied`: a room gets its first socket on a node.
    RoomOccupied,
    /// `$room_vacated`: a room loses its last socket on a node.
    RoomVacated,
    /// `$join`: a socket joins a room.
    Join,
    /// `$leave`: a socket leaves a room.
    Leave,
}

impl EventPattern {
    /// Parses one pattern, or says why it is not one.
    pub fn parse(pattern: &str) -> Result<Self, String> {
        match pattern {
            "" => Err("must not be empty".into()),
            "*" => Ok(Self::All),
            "$connect" => Ok(Self::Connect),
            "$disconnect" => Ok(Self::Disconnect),
            "$room_occupied" => Ok(Self::RoomOccupied),
            "$room_vacated" => Ok(Self::RoomVacated),
            "$join" => Ok(Self::Join),
            "$leave" => Ok(Self::Leave),
            p if p.starts_with('$') => Err(format!(
                "{p:?}: the only patterns starting with $ are {}",
                LIFECYCLE_EVENTS.join(", ")
            )),
            p if RESERVED_EVENTS.contains(&p) => Err(format!(
                "{p:?} is reserved by Socket.IO and never forwarded"
            )),
            p if p.len() > 256 => Err("at most 256 characters".into()),
            p => match p.find('*') {
                None => Ok(Self::Exact(p.to_owned())),
                Some(idx) if idx == p.len() - 1 => Ok(Self::Prefix(p[..idx].to_owned())),
                Some(_) => Err(format!("{p:?}: '*' is allowed only at the end")),
            },
        }
    }

    /// Whether a client event named `event` matches.
    pub fn matches_event(&self, event: &str) -> bool {
        match self {
            Self::All => true,
            Self::Prefix(prefix) => event.starts_with(prefix.as_str()),
            Self::Exact(name) => name == event,
            Self::Connect
            | Self::Disconnect
            | Self::RoomOccupied
            | Self::RoomVacated
            | Self::Join
            | Self::Leave => false,
        }
    }
}

/// The events the bridge itself raises, subscribed to by name.
pub const LIFECYCLE_EVENTS: [&str; 6] = [
    "$connect",
    "$disconnect",
    "$room_occupied",
    "$room_vacated",
    "$join",
    "$leave",
];

fn validate_url(url: &str) -> Result<(), ApiError> {
    let parsed =
        url::Url::parse(url).map_err(|e| ApiError::invalid("url", format!("not a URL: {e}")))?;
    match parsed.scheme() {
        "http" | "https" if parsed.host().is_some() => Ok(()),
        "http" | "https" => Err(ApiError::invalid("url", "must have a host")),
        other => Err(ApiError::invalid(
            "url",
            format!("scheme must be http or https, not {other}"),
        )),
    }
}

fn validate_events(events: &[String]) -> Result<(), ApiError> {
    if events.is_empty() {
        return Err(ApiError::invalid(
            "events",
            "at least one pattern is required",
        ));
    }
    for (idx, pattern) in events.iter().enumerate() {
        EventPattern::parse(pattern)
            .map_err(|msg| ApiError::invalid(format!("events[{idx}]"), msg))?;
    }
    Ok(())
}

fn validate_timeout(timeout_ms: u64) -> Result<(), ApiError> {
    if timeout_ms == 0 || timeout_ms > MAX_TIMEOUT_MS {
        return Err(ApiError::invalid(
            "timeout_ms",
            format!("must be between 1 and {MAX_TIMEOUT_MS}"),
        ));
    }
    Ok(())
}

fn validate_headers(headers: &BTreeMap<String, String>) -> Result<(), ApiError> {
    for (name, value) in headers {
        let field = format!("headers.{name}");
        let parsed = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| ApiError::invalid(&field, "not a valid header name"))?;
        if RESERVED_HEADERS.contains(&parsed.as_str()) {
            return Err(ApiError::invalid(&field, "set by the bridge itself"));
        }
        HeaderValue::from_str(value)
            .map_err(|_| ApiError::invalid(&field, "not a valid header value"))?;
    }
    Ok(())
}

/// Checks a `whsec_` secret: base64 of 24 to 64 bytes.
pub fn validate_webhook_secret(field: &str, secret: &str) -> Result<(), ApiError> {
    let encoded = secret
        .strip_prefix(SECRET_PREFIX)
        .ok_or_else(|| ApiError::invalid(field, "must start with whsec_"))?;
    let key = BASE64
        .decode(encoded)
        .map_err(|_| ApiError::invalid(field, "must be whsec_ followed by base64"))?;
    if !(24..=64).contains(&key.len()) {
        return Err(ApiError::invalid(field, "must encode 24 to 64 bytes"));
    }
    Ok(())
}

/// A new random secret: `whsec_` + base64 of 24 random bytes.
pub fn generate_webhook_secret() -> String {
    let bytes: [u8; SECRET_BYTES] = rand::random();
    format!("{SECRET_PREFIX}{}", BASE64.encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_fields_name_every_serialized_setting() {
        let value = serde_json::to_value(Batch::default()).unwrap();
        let mut names: Vec<&str> = value
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        names.sort_unstable();
        let mut listed = Batch::FIELDS.to_vec();
        listed.sort_unstable();
        assert_eq!(names, listed);
    }

    #[test]
    fn patterns_parse_and_match() {
        assert_eq!(EventPattern::parse("*"), Ok(EventPattern::All));
        let prefix = EventPattern::parse("chat:*").unwrap();
        assert!(prefix.matches_event("chat:message"));
        assert!(!prefix.matches_event("news"));
        let exact = EventPattern::parse("message").unwrap();
        assert!(exact.matches_event("message") && !exact.matches_event("messages"));
        assert!(!EventPattern::Connect.matches_event("$connect"));
        for bad in ["", "$other", "connect", "a*b", "**x"] {
            assert!(EventPattern::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn generated_secret_is_valid() {
        let secret = generate_webhook_secret();
        assert!(validate_webhook_secret("secret", &secret).is_ok());
        assert_ne!(secret, generate_webhook_secret());
        assert!(validate_webhook_secret("secret", "whsec_c2hvcnQ=").is_err());
        assert!(validate_webhook_secret("secret", "nope").is_err());
    }

    #[test]
    fn reserved_headers_are_refused() {
        let headers = BTreeMap::from([("Webhook-Id".to_owned(), "x".to_owned())]);
        assert!(validate_headers(&headers).is_err());
        let ok = BTreeMap::from([("x-team".to_owned(), "a".to_owned())]);
        assert!(validate_headers(&ok).is_ok());
    }
}
