//! Namespaces and how their sockets authenticate.

use jsonwebtoken::DecodingKey;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Timestamp;
use crate::error::ApiError;

/// Longest namespace name accepted.
const MAX_NAME_LEN: usize = 128;
/// Default time a socket admitted without a token has to emit `authenticate`.
const DEFAULT_AUTH_TIMEOUT_MS: u64 = 10_000;

/// A Socket.IO namespace the bridge serves.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Namespace {
    /// Unique id.
    pub id: String,
    /// `/` or `/segment[/segment…]`.
    pub name: String,
    /// How sockets authenticate; secrets are never shown.
    pub auth: NamespaceAuth,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
}

impl Namespace {
    /// A copy fit to show over the API: the HS secret removed.
    pub fn redacted(&self) -> Self {
        let mut copy = self.clone();
        if let NamespaceAuth::Jwt(jwt) = &mut copy.auth {
            jwt.secret = None;
        }
        copy
    }
}

/// Authentication mode of a namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
#[serde(tag = "mode", rename_all = "lowercase")]
pub enum NamespaceAuth {
    /// Anyone may connect.
    #[default]
    None,
    /// A JWT is required (SPEC 4).
    Jwt(JwtAuth),
}

/// JWT settings of a namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JwtAuth {
    /// The only algorithm accepted.
    pub algorithm: JwtAlgorithm,
    /// Shared secret, required for HS*; write-only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// PEM public key, for the key-pair algorithms (or `jwks_url`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
    /// An identity provider's JWKS (HTTPS; HTTP on loopback only): its keys, chosen by `kid`,
    /// instead of a fixed `public_key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_url: Option<String>,
    /// Required `iss` claim, when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// Required `aud` claim, when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    /// Time a socket connected without a token has to emit `authenticate`.
    #[serde(default = "default_auth_timeout")]
    pub timeout_ms: u64,
}

fn default_auth_timeout() -> u64 {
    DEFAULT_AUTH_TIMEOUT_MS
}

/// JWT signature algorithms a namespace may require.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum JwtAlgorithm {
    /// HMAC SHA-256.
    HS256,
    /// HMAC SHA-384.
    HS384,
    /// HMAC SHA-512.
    HS512,
    /// RSA PKCS#1 v1.5 SHA-256.
    RS256,
    /// RSA PKCS#1 v1.5 SHA-384.
    RS384,
    /// RSA PKCS#1 v1.5 SHA-512.
    RS512,
    /// RSA-PSS SHA-256.
    PS256,
    /// ECDSA P-256 SHA-256.
    ES256,
    /// ECDSA P-384 SHA-384.
    ES384,
    /// Ed25519.
    EdDSA,
}

impl JwtAlgorithm {
    /// True for the shared-secret (HMAC) algorithms.
    pub fn is_hmac(self) -> bool {
        matches!(self, Self::HS256 | Self::HS384 | Self::HS512)
    }
}

impl JwtAuth {
    /// Checks that the key material fits the algorithm and parses.
    pub fn validate(&self) -> Result<(), ApiError> {
        if self.algorithm.is_hmac() {
            match self.secret.as_deref() {
                None | Some("") => {
                    return Err(ApiError::invalid(
                        "auth.secret",
                        "required for HS256, HS384 and HS512",
                    ));
                }
                // Stored sealed values start so; a secret that did would read as one.
                Some(secret) if secret.starts_with("sealed:") => {
                    return Err(ApiError::invalid(
                        "auth.secret",
                        "may not start with `sealed:`",
                    ));
                }
                Some(_) => {}
            }
            if self.jwks_url.is_some() {
                return Err(ApiError::invalid(
                    "auth.jwks_url",
                    "a JWKS holds public keys: use it with RS*, PS256, ES* or EdDSA",
                ));
            }
        } else if let Some(url) = &self.jwks_url {
            if self.public_key.is_some() || self.secret.is_some() {
                return Err(ApiError::invalid(
                    "auth.jwks_url",
                    "either jwks_url or public_key, and no secret",
                ));
            }
            validate_jwks_url(url)?;
        } else {
            let pem = self.public_key.as_deref().ok_or_else(|| {
                ApiError::invalid(
                    "auth.public_key",
                    "required for RS*, PS256, ES* and EdDSA (or give jwks_url)",
                )
            })?;
            let parsed = match self.algorithm {
                JwtAlgorithm::RS256
                | JwtAlgorithm::RS384
                | JwtAlgorithm::RS512
                | JwtAlgorithm::PS256 => DecodingKey::from_rsa_pem(pem.as_bytes()),
                JwtAlgorithm::ES256 | JwtAlgorithm::ES384 => {
                    DecodingKey::from_ec_pem(pem.as_bytes())
                }
                _ => DecodingKey::from_ed_pem(pem.as_bytes()),
            };
            parsed.map_err(|e| {
                ApiError::invalid("auth.public_key", format!("not a valid PEM key: {e}"))
            })?;
        }
        if self.timeout_ms == 0 || self.timeout_ms > 600_000 {
            return Err(ApiError::invalid(
                "auth.timeout_ms",
                "must be between 1 and 600000",
            ));
        }
        Ok(())
    }
}

/// A JWKS address: HTTPS, or HTTP to a loopback address (a provider under test).
fn validate_jwks_url(url: &str) -> Result<(), ApiError> {
    let invalid = |why: &str| ApiError::invalid("auth.jwks_url", why.to_owned());
    let parsed = url::Url::parse(url).map_err(|e| invalid(&format!("not a URL: {e}")))?;
    let loopback = match parsed.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name == "localhost",
        None => false,
    };
    match parsed.scheme() {
        "https" if parsed.host().is_some() => Ok(()),
        "http" if loopback => Ok(()),
        _ => Err(invalid(
            "must be https:// (http:// only for a loopback address)",
        )),
    }
}

/// Body of `POST /admin/namespaces`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewNamespace {
    /// `/` or `/segment[/segment…]`.
    #[schema(pattern = r"^/([A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*)?$", max_length = 128)]
    pub name: String,
    /// Defaults to `{"mode": "none"}`.
    #[serde(default)]
    pub auth: NamespaceAuth,
}

impl NewNamespace {
    /// Validates every field.
    pub fn validate(&self) -> Result<(), ApiError> {
        validate_namespace_name("name", &self.name)?;
        validate_auth(&self.auth)
    }
}

/// Body of `PATCH /admin/namespaces/{id}`; absent fields stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NamespacePatch {
    /// New name.
    #[schema(pattern = r"^/([A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*)?$", max_length = 128)]
    pub name: Option<String>,
    /// New auth; a JWT auth without `secret` keeps the current secret.
    pub auth: Option<NamespaceAuth>,
}

impl NamespacePatch {
    /// Applies the patch to `current`, validating the result.
    pub fn apply(self, current: &Namespace) -> Result<Namespace, ApiError> {
        let mut next = current.clone();
        if let Some(name) = self.name {
            validate_namespace_name("name", &name)?;
            next.name = name;
        }
        if let Some(mut auth) = self.auth {
            keep_secret_if_omitted(&mut auth, &current.auth);
            validate_auth(&auth)?;
            next.auth = auth;
        }
        next.updated_at = Timestamp::now();
        Ok(next)
    }
}

/// The secret is write-only, so a client that read the namespace cannot send it back.
fn keep_secret_if_omitted(auth: &mut NamespaceAuth, current: &NamespaceAuth) {
    if let (NamespaceAuth::Jwt(new), NamespaceAuth::Jwt(old)) = (auth, current)
        && new.secret.is_none()
        && new.algorithm.is_hmac()
    {
        new.secret = old.secret.clone();
    }
}

fn validate_auth(auth: &NamespaceAuth) -> Result<(), ApiError> {
    match auth {
        NamespaceAuth::None => Ok(()),
        NamespaceAuth::Jwt(jwt) => jwt.validate(),
    }
}

/// Checks SPEC 3's namespace name rule for the field called `field`.
pub fn validate_namespace_name(field: &str, name: &str) -> Result<(), ApiError> {
    if name == "/" {
        return Ok(());
    }
    let valid_segments = name.strip_prefix('/').is_some_and(|rest| {
        rest.split('/').all(|segment| {
            !segment.is_empty()
                && segment
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        })
    });
    if name.len() > MAX_NAME_LEN {
        return Err(ApiError::invalid(
            field,
            format!("at most {MAX_NAME_LEN} characters"),
        ));
    }
    if !valid_segments {
        return Err(ApiError::invalid(
            field,
            "must be \"/\" or \"/\"-separated segments of A-Z, a-z, 0-9, _ and -",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_names() {
        for ok in ["/", "/chat", "/a/b-c_d/E9"] {
            assert!(validate_namespace_name("name", ok).is_ok(), "{ok}");
        }
        let long = format!("/{}", "a".repeat(128));
        for bad in [
            "",
            "chat",
            "/chat/",
            "//x",
            "/chat?x=1",
            "/sp ace",
            "/é",
            &long,
        ] {
            assert!(validate_namespace_name("name", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_secret_that_reads_as_sealed_is_refused() {
        let auth = JwtAuth {
            algorithm: JwtAlgorithm::HS256,
            secret: Some("sealed:v1:0011aabb:AAAA".into()),
            public_key: None,
            jwks_url: None,
            issuer: None,
            audience: None,
            timeout_ms: 1000,
        };
        assert!(auth.validate().is_err());
    }

    #[test]
    fn hmac_requires_secret_and_patch_keeps_it() {
        let jwt = |secret: Option<&str>| {
            NamespaceAuth::Jwt(JwtAuth {
                algorithm: JwtAlgorithm::HS256,
                secret: secret.map(str::to_owned),
                public_key: None,
                jwks_url: None,
                issuer: None,
                audience: None,
                timeout_ms: 1000,
            })
        };
        assert!(validate_auth(&jwt(None)).is_err());
        let current = Namespace {
            id: "1".into(),
            name: "/a".into(),
            auth: jwt(Some("s3cret")),
            created_at: Timestamp(0),
            updated_at: Timestamp(0),
        };
        let patch = NamespacePatch {
            name: None,
            auth: Some(jwt(None)),
        };
        let next = patch.apply(&current).unwrap();
        assert_eq!(next.auth, jwt(Some("s3cret")));
        assert!(matches!(next.redacted().auth, NamespaceAuth::Jwt(j) if j.secret.is_none()));
    }

    #[test]
    fn asymmetric_requires_parsable_pem() {
        let auth = JwtAuth {
            algorithm: JwtAlgorithm::RS256,
            secret: None,
            public_key: Some("-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----".into()),
            jwks_url: None,
            issuer: None,
            audience: None,
            timeout_ms: 1000,
        };
        let err = auth.validate().unwrap_err();
        assert!(err.to_string().starts_with("auth.public_key"), "{err}");
    }
}
