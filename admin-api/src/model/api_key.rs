//! API keys of the emit API: the key is shown once, only its SHA-256 is kept.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use super::{Timestamp, validate_namespace_name};
use crate::error::ApiError;

/// Prefix that makes keys recognisable in logs and secret scanners.
const KEY_PREFIX: &str = "bk_";
/// Characters of the key kept for display.
const DISPLAY_PREFIX_LEN: usize = 8;

/// An API key of the emit API (without the key itself).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ApiKey {
    /// Unique id.
    pub id: String,
    /// A label for humans.
    pub name: String,
    /// Namespace names this key may act on, or `["*"]`.
    pub namespaces: Vec<String>,
    /// First 8 characters of the key, for display.
    pub prefix: String,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it last authenticated a request.
    pub last_used_at: Option<Timestamp>,
    /// When it was revoked; a revoked key authenticates nothing.
    pub revoked_at: Option<Timestamp>,
    /// Hex SHA-256 of the key.
    #[serde(skip)]
    pub key_hash: String,
}

impl ApiKey {
    /// Whether this key may act on `namespace`.
    pub fn allows(&self, namespace: &str) -> bool {
        self.namespaces.iter().any(|n| n == "*" || n == namespace)
    }
}

/// Answer of `POST /admin/api-keys`: the key itself, shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyCreated {
    /// The stored key.
    #[serde(flatten)]
    pub api_key: ApiKey,
    /// The bearer token; it cannot be shown again.
    pub key: String,
}

/// Body of `POST /admin/api-keys`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewApiKey {
    /// A label for humans.
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    pub name: String,
    /// Namespace names, or `["*"]` for all.
    #[schema(value_type = Vec<NamespaceSelector>, min_items = 1)]
    pub namespaces: Vec<String>,
}

impl NewApiKey {
    /// Validates every field.
    pub fn validate(&self) -> Result<(), ApiError> {
        if self.name.trim().is_empty() || self.name.len() > 200 {
            return Err(ApiError::invalid("name", "must be 1 to 200 characters"));
        }
        if self.namespaces.is_empty() {
            return Err(ApiError::invalid(
                "namespaces",
                "at least one namespace name, or \"*\"",
            ));
        }
        for (idx, ns) in self.namespaces.iter().enumerate() {
            if ns != "*" {
                validate_namespace_name(&format!("namespaces[{idx}]"), ns)?;
            }
        }
        Ok(())
    }
}

/// A new random key and its display prefix.
pub fn generate_api_key() -> (String, String) {
    let bytes: [u8; 32] = rand::random();
    let key = format!("{KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes));
    let prefix = key[..DISPLAY_PREFIX_LEN].to_owned();
    (key, prefix)
}

/// The display prefix of `key` (its first characters), as stored beside the hash.
pub fn api_key_prefix(key: &str) -> String {
    key.chars().take(DISPLAY_PREFIX_LEN).collect()
}

/// The stored form of a key: hex SHA-256 (keys are 256 random bits, so no slow hash is needed).
pub fn hash_api_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_are_distinct_and_prefixed() {
        let (a, prefix) = generate_api_key();
        let (b, _) = generate_api_key();
        assert_ne!(a, b);
        assert!(a.starts_with(&prefix) && prefix.len() == 8);
        assert_eq!(hash_api_key(&a).len(), 64);
        assert_ne!(hash_api_key(&a), hash_api_key(&b));
    }

    #[test]
    fn namespaces_are_checked() {
        let key = |ns: &[&str]| NewApiKey {
            name: "k".into(),
            namespaces: ns.iter().map(|s| s.to_string()).collect(),
        };
        assert!(key(&["*"]).validate().is_ok());
        assert!(key(&["/chat", "/"]).validate().is_ok());
        assert!(key(&[]).validate().is_err());
        let err = key(&["/ok", "bad"]).validate().unwrap_err();
        assert!(err.to_string().starts_with("namespaces[1]"), "{err}");
    }
}

/// A namespace name, or `*` for all (documentation only: keys store plain strings).
#[derive(ToSchema)]
#[schema(
    pattern = r"^(\*|/([A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*)?)$",
    max_length = 128
)]
#[expect(dead_code, reason = "a schema for the OpenAPI document only")]
pub struct NamespaceSelector(String);
