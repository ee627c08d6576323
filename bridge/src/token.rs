//! `bridge token`: a test JWT for a namespace whose tokens are signed with a shared secret.
//!
//! The secret is read from the store (the namespace's own), so a developer can connect a client
//! to a JWT namespace without writing code; tokens for key-pair namespaces (RS256, ES256, EdDSA)
//! come from whoever holds the private key.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use admin_api::Store;
use admin_api::model::NamespaceAuth;
use jsonwebtoken::{EncodingKey, Header};
use serde::Serialize;

use crate::config::TokenArgs;
use crate::schedule::parse_duration;

/// Why no token could be made.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// No such namespace in the store.
    #[error("namespace {0} not found")]
    NoNamespace(String),
    /// The namespace takes no token, or one the bridge cannot sign.
    #[error("namespace {0}: {1}")]
    CannotSign(String, &'static str),
    /// `--ttl` is not a duration.
    #[error("--ttl: {0}")]
    Ttl(String),
    /// Reading the store failed.
    #[error(transparent)]
    Store(#[from] admin_api::StoreError),
    /// Signing failed.
    #[error("signing: {0}")]
    Sign(#[from] jsonwebtoken::errors::Error),
}

/// The claims the bridge reads (SPEC 4), plus the namespace's required `iss` and `aud`.
#[derive(Serialize)]
struct Claims<'a> {
    sub: &'a str,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    rooms: &'a [String],
    iat: u64,
    exp: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    iss: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    aud: Option<&'a str>,
}

/// A token the namespace `args.namespace` accepts, for user `args.sub`.
pub async fn mint(store: &Store, args: &TokenArgs) -> Result<String, TokenError> {
    let ttl: Duration = parse_duration(&args.ttl).map_err(TokenError::Ttl)?;
    let namespace = store
        .list_namespaces()
        .await?
        .into_iter()
        .find(|ns| ns.name == args.namespace)
        .ok_or_else(|| TokenError::NoNamespace(args.namespace.clone()))?;
    let refuse = |why| TokenError::CannotSign(args.namespace.clone(), why);
    let NamespaceAuth::Jwt(jwt) = namespace.auth else {
        return Err(refuse("it takes no token (auth mode none)"));
    };
    if !jwt.algorithm.is_hmac() {
        return Err(refuse(
            "its tokens are signed with a private key the bridge does not have",
        ));
    }
    let secret = jwt
        .secret
        .as_deref()
        .ok_or_else(|| refuse("no secret stored"))?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let claims = Claims {
        sub: &args.sub,
        rooms: &args.rooms,
        iat: now,
        exp: now + ttl.as_secs().max(1),
        iss: jwt.issuer.as_deref(),
        aud: jwt.audience.as_deref(),
    };
    Ok(jsonwebtoken::encode(
        &Header::new(crate::jwt::algorithm(jwt.algorithm)),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )?)
}
