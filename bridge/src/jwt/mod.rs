//! Token verification (SPEC 4): a namespace's JWT settings compiled into a verifier, with the
//! keys of a fixed secret or public key, or of an identity provider's [`jwks`]. The catalog
//! builds the verifiers; the socket layer reads tokens and asks them.

pub mod jwks;

use std::sync::Arc;

use admin_api::model::{JwtAlgorithm, JwtAuth};
use jsonwebtoken::errors::{Error as JwtError, ErrorKind};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use serde::Deserialize;

use jwks::{Jwks, JwksRegistry};

/// Seconds of clock skew tolerated on `exp` and `nbf`.
const LEEWAY_SECS: u64 = 5;

/// What an accepted token says about the socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The `sub` claim.
    pub user_id: String,
    /// The `rooms` claim: rooms joined at connect.
    pub rooms: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
    #[serde(default)]
    rooms: Vec<String>,
}

/// Where a namespace's verification key comes from.
enum KeySource {
    /// A shared secret or a PEM public key, parsed once.
    Fixed(DecodingKey),
    /// An identity provider's key set, chosen by the token's `kid`.
    Jwks(Arc<Jwks>),
}

/// A namespace's JWT settings with the key parsed once.
pub struct JwtVerifier {
    key: KeySource,
    validation: Validation,
    /// Time a socket without a handshake token has to emit `authenticate`.
    pub timeout_ms: u64,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("algorithms", &self.validation.algorithms)
            .finish_non_exhaustive()
    }
}

impl JwtVerifier {
    /// Parses the key of `auth` (a fixed one; JWKS namespaces need [`JwtVerifier::with_jwks`]).
    /// The admin API validated it already, so failure means a stale row.
    pub fn new(auth: &JwtAuth) -> Result<Self, JwtError> {
        Self::with_jwks(auth, &JwksRegistry::default())
    }

    /// Like [`JwtVerifier::new`], taking a `jwks_url`'s key set from `registry`.
    pub fn with_jwks(auth: &JwtAuth, registry: &JwksRegistry) -> Result<Self, JwtError> {
        let algorithm = algorithm(auth.algorithm);
        let key = match (&auth.jwks_url, auth.algorithm) {
            (Some(url), _) => KeySource::Jwks(registry.get(url)),
            (None, a) if a.is_hmac() => KeySource::Fixed(hmac_key(auth)),
            (None, JwtAlgorithm::ES256 | JwtAlgorithm::ES384) => {
                KeySource::Fixed(DecodingKey::from_ec_pem(pem(auth))?)
            }
            (None, JwtAlgorithm::EdDSA) => KeySource::Fixed(DecodingKey::from_ed_pem(pem(auth))?),
            (None, _) => KeySource::Fixed(DecodingKey::from_rsa_pem(pem(auth))?),
        };
        // Only the namespace's algorithm is accepted; `exp` and `nbf` are checked when present.
        let mut validation = Validation::new(algorithm);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        validation.required_spec_claims = ["sub".to_owned()].into_iter().collect();
        if let Some(issuer) = &auth.issuer {
            validation.set_issuer(&[issuer]);
        }
        match &auth.audience {
            Some(audience) => validation.set_audience(&[audience]),
            None => validation.validate_aud = false,
        }
        Ok(Self {
            key,
            validation,
            timeout_ms: auth.timeout_ms,
        })
    }

    /// Checks signature, `exp`, `nbf`, `iss` and `aud`; returns the identity it carries. A JWKS
    /// namespace's key is the one the token's `kid` names (fetched if the set lacks it).
    pub async fn verify(&self, token: &str) -> Result<Identity, JwtError> {
        let fetched;
        let key = match &self.key {
            KeySource::Fixed(key) => key,
            KeySource::Jwks(jwks) => {
                let kid = decode_header(token)?.kid;
                fetched = jwks
                    .key(kid.as_deref())
                    .await
                    .ok_or_else(|| JwtError::from(ErrorKind::InvalidKeyFormat))?;
                &fetched
            }
        };
        let data = decode::<Claims>(token.as_bytes(), key, &self.validation)?;
        Ok(Identity {
            user_id: data.claims.sub,
            rooms: data.claims.rooms,
        })
    }
}

/// jsonwebtoken's name for a namespace's algorithm.
pub fn algorithm(algorithm: JwtAlgorithm) -> Algorithm {
    match algorithm {
        JwtAlgorithm::HS256 => Algorithm::HS256,
        JwtAlgorithm::HS384 => Algorithm::HS384,
        JwtAlgorithm::HS512 => Algorithm::HS512,
        JwtAlgorithm::RS256 => Algorithm::RS256,
        JwtAlgorithm::RS384 => Algorithm::RS384,
        JwtAlgorithm::RS512 => Algorithm::RS512,
        JwtAlgorithm::PS256 => Algorithm::PS256,
        JwtAlgorithm::ES256 => Algorithm::ES256,
        JwtAlgorithm::ES384 => Algorithm::ES384,
        JwtAlgorithm::EdDSA => Algorithm::EdDSA,
    }
}

fn hmac_key(auth: &JwtAuth) -> DecodingKey {
    DecodingKey::from_secret(auth.secret.as_deref().unwrap_or_default().as_bytes())
}

fn pem(auth: &JwtAuth) -> &[u8] {
    auth.public_key.as_deref().unwrap_or_default().as_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header, encode};
    use serde_json::Value;
    use serde_json::json;

    fn hs256(issuer: Option<&str>, audience: Option<&str>) -> JwtVerifier {
        JwtVerifier::new(&JwtAuth {
            algorithm: JwtAlgorithm::HS256,
            secret: Some("k".into()),
            public_key: None,
            jwks_url: None,
            issuer: issuer.map(str::to_owned),
            audience: audience.map(str::to_owned),
            timeout_ms: 1000,
        })
        .unwrap()
    }

    fn token(alg: Algorithm, claims: Value) -> String {
        encode(&Header::new(alg), &claims, &EncodingKey::from_secret(b"k")).unwrap()
    }

    fn now() -> i64 {
        chrono::Utc::now().timestamp()
    }

    #[tokio::test]
    async fn accepts_good_tokens_and_reads_rooms() {
        let v = hs256(Some("me"), Some("app"));
        let t = token(
            Algorithm::HS256,
            json!({"sub": "u1", "rooms": ["a"], "iss": "me", "aud": "app", "exp": now() + 60}),
        );
        assert_eq!(
            v.verify(&t).await.unwrap(),
            Identity {
                user_id: "u1".into(),
                rooms: vec!["a".into()]
            }
        );
    }

    #[tokio::test]
    async fn refuses_bad_tokens() {
        let v = hs256(Some("me"), Some("app"));
        let good = json!({"sub": "u1", "iss": "me", "aud": "app"});
        let with = |k: &str, val: Value| {
            let mut c = good.clone();
            c[k] = val;
            c
        };
        for claims in [
            with("exp", json!(now() - 60)),
            with("nbf", json!(now() + 60)),
            with("iss", json!("other")),
            with("aud", json!("other")),
            json!({"iss": "me", "aud": "app"}),
        ] {
            assert!(
                v.verify(&token(Algorithm::HS256, claims.clone()))
                    .await
                    .is_err(),
                "{claims}"
            );
        }
        assert!(
            v.verify(&token(Algorithm::HS384, good.clone()))
                .await
                .is_err(),
            "other algorithm"
        );
        let forged = encode(
            &Header::new(Algorithm::HS256),
            &good,
            &EncodingKey::from_secret(b"x"),
        )
        .unwrap();
        assert!(v.verify(&forged).await.is_err());
        assert!(v.verify("not.a.jwt").await.is_err());
    }

    // Test-only keys, made once with `openssl genpkey` (RSA 2048, EC P-384) and committed, so that
    // no key-generation crate is compiled for the tests.
    const RSA_KEY: &str = include_str!("../../../tests/fixtures/jwt/rsa.key.pem");
    const RSA_PUB: &str = include_str!("../../../tests/fixtures/jwt/rsa.pub.pem");
    const RSA_OTHER_KEY: &str = include_str!("../../../tests/fixtures/jwt/rsa_other.key.pem");
    const P384_KEY: &str = include_str!("../../../tests/fixtures/jwt/p384.key.pem");
    const P384_PUB: &str = include_str!("../../../tests/fixtures/jwt/p384.pub.pem");
    const P384_OTHER_KEY: &str = include_str!("../../../tests/fixtures/jwt/p384_other.key.pem");

    /// A namespace's verifier: `key` is the shared secret (HS*) or the PEM public key.
    fn verifier(algorithm: JwtAlgorithm, key: &str) -> JwtVerifier {
        let hmac = algorithm.is_hmac();
        JwtVerifier::new(&JwtAuth {
            algorithm,
            secret: hmac.then(|| key.to_owned()),
            public_key: (!hmac).then(|| key.to_owned()),
            jwks_url: None,
            issuer: None,
            audience: None,
            timeout_ms: 1000,
        })
        .unwrap()
    }

    /// The signing key of `pem` (a private key) or of a shared secret, for `alg`.
    fn signing_key(alg: Algorithm, key: &str) -> EncodingKey {
        match alg {
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
                EncodingKey::from_secret(key.as_bytes())
            }
            Algorithm::ES256 | Algorithm::ES384 => {
                EncodingKey::from_ec_pem(key.as_bytes()).unwrap()
            }
            _ => EncodingKey::from_rsa_pem(key.as_bytes()).unwrap(),
        }
    }

    fn signed(alg: Algorithm, key: &EncodingKey, sub: &str) -> String {
        let claims = json!({"sub": sub, "exp": now() + 600});
        encode(&Header::new(alg), &claims, key).unwrap()
    }

    /// Each algorithm a namespace may choose verifies a token signed with its key, and refuses one
    /// signed with another key of the same kind, or with another algorithm of the same family.
    #[tokio::test]
    async fn every_algorithm_accepts_its_key_and_refuses_another() {
        let cases = [
            (
                JwtAlgorithm::RS384,
                Algorithm::RS384,
                RSA_PUB,
                RSA_KEY,
                RSA_OTHER_KEY,
                Algorithm::RS256,
            ),
            (
                JwtAlgorithm::RS512,
                Algorithm::RS512,
                RSA_PUB,
                RSA_KEY,
                RSA_OTHER_KEY,
                Algorithm::RS384,
            ),
            (
                JwtAlgorithm::PS256,
                Algorithm::PS256,
                RSA_PUB,
                RSA_KEY,
                RSA_OTHER_KEY,
                Algorithm::RS256,
            ),
            (
                JwtAlgorithm::ES384,
                Algorithm::ES384,
                P384_PUB,
                P384_KEY,
                P384_OTHER_KEY,
                Algorithm::ES256,
            ),
            (
                JwtAlgorithm::HS512,
                Algorithm::HS512,
                "hs512-secret",
                "hs512-secret",
                "another-secret",
                Algorithm::HS256,
            ),
        ];
        for (algorithm, alg, public, private, other, sibling) in cases {
            let v = verifier(algorithm, public);
            let good = signed(alg, &signing_key(alg, private), "u-good");
            assert_eq!(
                v.verify(&good).await.map(|id| id.user_id).ok().as_deref(),
                Some("u-good"),
                "{alg:?}: a token signed with the namespace's key is accepted"
            );
            let forged = signed(alg, &signing_key(alg, other), "u-forged");
            let err = v.verify(&forged).await.unwrap_err();
            assert!(
                matches!(err.kind(), ErrorKind::InvalidSignature),
                "{alg:?}: another key's signature is refused: {err:?}"
            );
            // ES256 cannot sign with a P-384 key; the header alone must be refused then.
            let sibling_key = if sibling == Algorithm::ES256 {
                let header = Header::new(sibling);
                let parts: Vec<&str> = good.split('.').collect();
                let header = base64::Engine::encode(
                    &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                    serde_json::to_vec(&header).unwrap(),
                );
                format!("{header}.{}.{}", parts[1], parts[2])
            } else {
                signed(sibling, &signing_key(sibling, private), "u-sibling")
            };
            let err = v.verify(&sibling_key).await.unwrap_err();
            assert!(
                matches!(err.kind(), ErrorKind::InvalidAlgorithm),
                "{alg:?}: a token of {sibling:?} is refused: {err:?}"
            );
        }
    }

    /// `nbf` and `exp` tolerate [`LEEWAY_SECS`] (5 s) of clock skew, and no more. The margins are
    /// whole seconds either side (3 s and 4 s), far more than the few microseconds between
    /// signing and verifying.
    #[tokio::test]
    /// 4 s inside and 7 s past the 5 s leeway: a second ticking between signing and checking
    /// cannot move either across it.
    async fn nbf_and_exp_tolerate_five_seconds_of_skew() {
        let v = hs256(None, None);
        let verdict = |claims: Value| {
            let v = &v;
            async move {
                v.verify(&token(Algorithm::HS256, claims))
                    .await
                    .map_err(JwtError::into_kind)
            }
        };
        assert!(
            verdict(json!({"sub": "u", "nbf": now() + 4})).await.is_ok(),
            "nbf 4 s ahead is within the leeway"
        );
        assert!(
            matches!(
                verdict(json!({"sub": "u", "nbf": now() + 7})).await,
                Err(ErrorKind::ImmatureSignature)
            ),
            "nbf 7 s ahead is past the leeway"
        );
        assert!(
            verdict(json!({"sub": "u", "exp": now() - 4})).await.is_ok(),
            "expired 4 s ago is within the leeway"
        );
        assert!(
            matches!(
                verdict(json!({"sub": "u", "exp": now() - 7})).await,
                Err(ErrorKind::ExpiredSignature)
            ),
            "expired 7 s ago is past the leeway"
        );
    }

    /// Algorithm confusion: a namespace with a public key never accepts an HMAC token whose
    /// secret is that (public) key, as its PEM text or as its DER bytes.
    #[tokio::test]
    async fn hmac_tokens_signed_with_the_public_key_are_refused() {
        for (algorithm, alg, public, private) in [
            (JwtAlgorithm::RS256, Algorithm::RS256, RSA_PUB, RSA_KEY),
            (JwtAlgorithm::ES384, Algorithm::ES384, P384_PUB, P384_KEY),
        ] {
            let v = verifier(algorithm, public);
            let genuine = signed(alg, &signing_key(alg, private), "u-genuine");
            assert!(
                v.verify(&genuine).await.is_ok(),
                "{alg:?}: the control token"
            );
            let der = match alg {
                Algorithm::ES384 => DecodingKey::from_ec_pem(public.as_bytes()),
                _ => DecodingKey::from_rsa_pem(public.as_bytes()),
            }
            .unwrap()
            .try_get_as_bytes()
            .unwrap()
            .to_vec();
            let secrets: [&[u8]; 3] = [public.as_bytes(), public.trim_end().as_bytes(), &der];
            for secret in secrets {
                for hmac in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
                    let forged = signed(hmac, &EncodingKey::from_secret(secret), "u-forged");
                    let err = v.verify(&forged).await.unwrap_err();
                    assert!(
                        matches!(err.kind(), ErrorKind::InvalidAlgorithm),
                        "{alg:?} namespace, {hmac:?} token keyed with the public key: {err:?}"
                    );
                }
            }
        }
    }
}
