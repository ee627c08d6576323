//! Encryption at rest of the store's secrets: webhook signing secrets (current and previous) and
//! namespaces' JWT secrets, sealed with ChaCha20-Poly1305 under a 256-bit key from the environment.
//!
//! A sealed value reads `sealed:v1:<key id>:<base64url(nonce ‖ ciphertext ‖ tag)>`; the key id
//! (8 hex digits of the key's SHA-256) names the key that opens it, so old keys can still be read
//! during a rotation. Without a key, values are stored as given and a sealed value cannot be read.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use sha2::{Digest, Sha256};

use super::StoreError;

/// Prefix of every sealed value.
const PREFIX: &str = "sealed:v1:";
/// Bound to every ciphertext, so that nothing else sealed with the same key opens as a secret.
const AAD: &[u8] = b"bridge store secret v1";

/// Why a key given in the configuration is unusable.
#[derive(Debug, thiserror::Error)]
#[error("a secrets key must be 32 bytes in standard base64 (openssl rand -base64 32): {0}")]
pub struct KeyError(String);

/// One key and its id.
struct SealingKey {
    id: String,
    key: LessSafeKey,
}

impl SealingKey {
    fn parse(encoded: &str) -> Result<Self, KeyError> {
        let bytes = STANDARD
            .decode(encoded.trim())
            .map_err(|e| KeyError(e.to_string()))?;
        if bytes.len() != 32 {
            return Err(KeyError(format!("got {} bytes", bytes.len())));
        }
        let id = hex::encode(&Sha256::digest(&bytes)[..4]);
        let key = UnboundKey::new(&CHACHA20_POLY1305, &bytes)
            .map_err(|_| KeyError("rejected by the cipher".into()))?;
        Ok(Self {
            id,
            key: LessSafeKey::new(key),
        })
    }
}

/// Seals secrets on their way into the store and opens them on their way out.
pub struct Sealer {
    current: Option<SealingKey>,
    old: Vec<SealingKey>,
    random: SystemRandom,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer")
            .field("current", &self.current.as_ref().map(|k| &k.id))
            .field("old", &self.old.iter().map(|k| &k.id).collect::<Vec<_>>())
            .finish()
    }
}

impl Default for Sealer {
    /// No key: secrets are stored as given.
    fn default() -> Self {
        Self {
            current: None,
            old: Vec::new(),
            random: SystemRandom::new(),
        }
    }
}

impl Sealer {
    /// A sealer with `current` (base64) for new values and `old` keys that still open values.
    pub fn new(current: Option<&str>, old: &[String]) -> Result<Self, KeyError> {
        Ok(Self {
            current: current.map(SealingKey::parse).transpose()?,
            old: old
                .iter()
                .map(|k| SealingKey::parse(k))
                .collect::<Result<_, _>>()?,
            random: SystemRandom::new(),
        })
    }

    /// The current key's id, if a key is set.
    pub fn key_id(&self) -> Option<&str> {
        self.current.as_ref().map(|k| k.id.as_str())
    }

    /// `plain` sealed with the current key, or `plain` itself without a key.
    pub fn seal(&self, plain: &str) -> Result<String, StoreError> {
        let Some(key) = &self.current else {
            return Ok(plain.to_owned());
        };
        let mut nonce = [0u8; NONCE_LEN];
        self.random
            .fill(&mut nonce)
            .map_err(|_| StoreError::Corrupt("no randomness for a nonce".into()))?;
        let mut sealed = plain.as_bytes().to_vec();
        key.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(AAD),
                &mut sealed,
            )
            .map_err(|_| StoreError::Corrupt("sealing failed".into()))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(format!(
            "{PREFIX}{}:{}",
            key.id,
            URL_SAFE_NO_PAD.encode(out)
        ))
    }

    /// The secret `stored` holds: opened with the key it names, or as stored when not sealed.
    pub fn open(&self, stored: &str) -> Result<String, StoreError> {
        let Some(rest) = stored.strip_prefix(PREFIX) else {
            return Ok(stored.to_owned());
        };
        let (id, data) = rest
            .split_once(':')
            .ok_or_else(|| StoreError::Corrupt("a sealed secret without its key id".into()))?;
        let key = self
            .current
            .iter()
            .chain(&self.old)
            .find(|k| k.id == id)
            .ok_or_else(|| StoreError::MissingKey(id.to_owned()))?;
        let bytes = URL_SAFE_NO_PAD
            .decode(data)
            .map_err(|_| StoreError::Corrupt(format!("sealed secret (key {id}): bad base64")))?;
        if bytes.len() < NONCE_LEN {
            return Err(StoreError::Corrupt(format!(
                "sealed secret (key {id}): too short"
            )));
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce)
            .map_err(|_| StoreError::Corrupt("bad nonce".into()))?;
        let mut sealed = sealed.to_vec();
        let plain = key
            .key
            .open_in_place(nonce, Aad::from(AAD), &mut sealed)
            .map_err(|_| {
                StoreError::Corrupt(format!("sealed secret (key {id}) does not open: altered"))
            })?;
        String::from_utf8(plain.to_vec())
            .map_err(|_| StoreError::Corrupt(format!("sealed secret (key {id}): not UTF-8")))
    }

    /// Whether `stored` would be written differently now: plaintext while a key is set, or
    /// sealed with a key other than the current one.
    pub fn needs_reseal(&self, stored: &str) -> bool {
        match (&self.current, stored.strip_prefix(PREFIX)) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(key), Some(rest)) => rest.split_once(':').is_none_or(|(id, _)| id != key.id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_A: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    const KEY_B: &str = "HxwdHhsaGRgXFhUUExIREA8ODQwLCgkIBwYFBAMCAQA=";

    #[test]
    fn sealed_values_open_with_their_key_only() {
        let a = Sealer::new(Some(KEY_A), &[]).unwrap();
        let sealed = a.seal("whsec_abc").unwrap();
        assert!(sealed.starts_with("sealed:v1:") && !sealed.contains("whsec_abc"));
        assert_ne!(
            sealed,
            a.seal("whsec_abc").unwrap(),
            "a fresh nonce each time"
        );
        assert_eq!(a.open(&sealed).unwrap(), "whsec_abc");
        assert!(!a.needs_reseal(&sealed));
        assert!(a.needs_reseal("whsec_abc"));

        let b = Sealer::new(Some(KEY_B), &[]).unwrap();
        assert!(
            matches!(b.open(&sealed), Err(StoreError::MissingKey(id)) if id == a.key_id().unwrap())
        );
        assert!(b.needs_reseal(&sealed));
        let rotated = Sealer::new(Some(KEY_B), &[KEY_A.into()]).unwrap();
        assert_eq!(rotated.open(&sealed).unwrap(), "whsec_abc");
        assert!(matches!(
            Sealer::default().open(&sealed),
            Err(StoreError::MissingKey(_))
        ));
        assert_eq!(Sealer::default().open("plain").unwrap(), "plain");
    }

    #[test]
    fn altered_values_and_bad_keys_are_refused() {
        let a = Sealer::new(Some(KEY_A), &[]).unwrap();
        let sealed = a.seal("secret").unwrap();
        let mut altered = sealed.clone();
        let last = altered.pop().unwrap();
        altered.push(if last == 'A' { 'B' } else { 'A' });
        assert!(matches!(a.open(&altered), Err(StoreError::Corrupt(_))));
        assert!(Sealer::new(Some("c2hvcnQ="), &[]).is_err(), "5 bytes");
        assert!(Sealer::new(Some("not base64!"), &[]).is_err());
        assert!(Sealer::new(None, &["c2hvcnQ=".into()]).is_err());
    }
}
