//! Namespaces (with their auth and webhooks) and API keys declared in the TOML config file, read
//! with their secrets from the environment and validated as the admin API would, when the
//! configuration is read; [`crate::bootstrap`] applies them to the store at start.
//!
//! Secrets never sit in the file: they come from environment variables named there
//! (`secret_env`, `key_env`), or are generated (a webhook secret, logged once at creation).

use std::collections::BTreeMap;

use admin_api::model::{
    Batch, JwtAlgorithm, JwtAuth, NamespaceAuth, NewApiKey, NewNamespace, NewWebhook, UrlPolicy,
};
use serde::Deserialize;

/// Shortest API key value accepted from the environment.
const MIN_KEY_LEN: usize = 24;

/// A namespace as the file declares it.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DeclaredNamespace {
    /// `/` or `/segment[/segment…]`.
    pub name: String,
    /// How sockets authenticate; none when absent.
    #[serde(default)]
    pub auth: DeclaredAuth,
    /// Its webhooks.
    #[serde(default)]
    pub webhooks: Vec<DeclaredWebhook>,
}

/// A namespace's auth as the file declares it: the JWT secret named by an environment variable.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(tag = "mode", rename_all = "lowercase", deny_unknown_fields)]
pub enum DeclaredAuth {
    /// Anyone may connect.
    #[default]
    None,
    /// A JWT is required.
    Jwt {
        /// The only algorithm accepted.
        algorithm: JwtAlgorithm,
        /// Environment variable holding the shared secret (HS256/384/512).
        secret_env: Option<String>,
        /// PEM public key (RS*, PS256, ES*, EdDSA).
        public_key: Option<String>,
        /// An identity provider's JWKS, instead of `public_key`.
        jwks_url: Option<String>,
        /// Required `iss`.
        issuer: Option<String>,
        /// Required `aud`.
        audience: Option<String>,
        /// Time to `authenticate` without a handshake token, ms.
        timeout_ms: Option<u64>,
    },
}

/// A webhook as the file declares it.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DeclaredWebhook {
    /// Where deliveries go; identifies the webhook within its namespace.
    pub url: String,
    /// Event patterns.
    pub events: Vec<String>,
    /// Environment variable holding its `whsec_` secret; generated (and logged once) when absent.
    pub secret_env: Option<String>,
    /// Whether its answers reply to the client.
    #[serde(default)]
    pub reply: bool,
    /// Whether deliveries are durable.
    #[serde(default)]
    pub durable: bool,
    /// Request timeout, ms [default: 5000].
    pub timeout_ms: Option<u64>,
    /// Static headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Whether it receives deliveries [default: true].
    pub enabled: Option<bool>,
    /// Batch bounds (`batch = {}` for the defaults); absent sends one POST per delivery.
    pub batch: Option<Batch>,
}

/// An API key as the file declares it: its value from an environment variable, stored hashed.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DeclaredApiKey {
    /// Its name; identifies it.
    pub name: String,
    /// Namespace names, or `["*"]`.
    pub namespaces: Vec<String>,
    /// Environment variable holding the key (24 characters or more).
    pub key_env: String,
}

/// What the file declares, secrets read from the environment and every field validated.
#[derive(Clone, Default)]
pub struct Declarations {
    /// Each namespace with its webhooks.
    pub(crate) namespaces: Vec<(NewNamespace, Vec<NewWebhook>)>,
    /// Each API key with its value.
    pub(crate) api_keys: Vec<(NewApiKey, String)>,
}

impl std::fmt::Debug for Declarations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Declarations")
            .field("namespaces", &self.namespaces.len())
            .field("api_keys", &self.api_keys.len())
            .finish()
    }
}

impl Declarations {
    /// Reads the secrets named in the declarations through `env` and validates everything as
    /// the admin API would; `Err` names the object and the field.
    pub fn resolve(
        namespaces: &[DeclaredNamespace],
        api_keys: &[DeclaredApiKey],
        policy: UrlPolicy,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, String> {
        let read = |var: &str, what: &str| {
            env(var)
                .filter(|v| !v.is_empty())
                .ok_or_else(|| format!("{what}: environment variable {var} is not set"))
        };
        let mut out = Declarations::default();
        for ns in namespaces {
            let what = format!("namespace {}", ns.name);
            let auth = match &ns.auth {
                DeclaredAuth::None => NamespaceAuth::None,
                DeclaredAuth::Jwt {
                    algorithm,
                    secret_env,
                    public_key,
                    jwks_url,
                    issuer,
                    audience,
                    timeout_ms,
                } => NamespaceAuth::Jwt(JwtAuth {
                    algorithm: *algorithm,
                    secret: secret_env
                        .as_deref()
                        .map(|var| read(var, &what))
                        .transpose()?,
                    public_key: public_key.clone(),
                    jwks_url: jwks_url.clone(),
                    issuer: issuer.clone(),
                    audience: audience.clone(),
                    timeout_ms: timeout_ms.unwrap_or(10_000),
                }),
            };
            let new = NewNamespace {
                name: ns.name.clone(),
                auth,
            };
            new.validate()
                .and_then(|()| policy.check_namespace_auth(&new.auth))
                .map_err(|e| format!("{what}: {e}"))?;
            let mut hooks = Vec::new();
            for hook in &ns.webhooks {
                let what = format!("{what}, webhook {}", hook.url);
                let new = NewWebhook {
                    url: hook.url.clone(),
                    events: hook.events.clone(),
                    secret: hook
                        .secret_env
                        .as_deref()
                        .map(|var| read(var, &what))
                        .transpose()?,
                    reply: hook.reply,
                    durable: hook.durable,
                    timeout_ms: hook.timeout_ms.unwrap_or(5_000),
                    headers: hook.headers.clone(),
                    enabled: hook.enabled.unwrap_or(true),
                    batch: hook.batch,
                };
                new.validate().map_err(|e| format!("{what}: {e}"))?;
                policy
                    .check_webhook_url(&new.url)
                    .map_err(|e| format!("{what}: {e}"))?;
                if hooks.iter().any(|h: &NewWebhook| h.url == new.url) {
                    return Err(format!("{what}: declared twice"));
                }
                hooks.push(new);
            }
            if out.namespaces.iter().any(|(n, _)| n.name == ns.name) {
                return Err(format!("{what}: declared twice"));
            }
            out.namespaces.push((new, hooks));
        }
        for key in api_keys {
            let what = format!("api key {}", key.name);
            let new = NewApiKey {
                name: key.name.clone(),
                namespaces: key.namespaces.clone(),
            };
            new.validate().map_err(|e| format!("{what}: {e}"))?;
            let value = read(&key.key_env, &what)?;
            if value.len() < MIN_KEY_LEN || value.chars().any(char::is_whitespace) {
                return Err(format!(
                    "{what}: {} must hold {MIN_KEY_LEN} or more characters without spaces",
                    key.key_env
                ));
            }
            if out.api_keys.iter().any(|(k, _)| k.name == key.name) {
                return Err(format!("{what}: declared twice"));
            }
            out.api_keys.push((new, value));
        }
        Ok(out)
    }

    /// Whether the file declares anything.
    pub fn is_empty(&self) -> bool {
        self.namespaces.is_empty() && self.api_keys.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(var: &str) -> Option<String> {
        match var {
            "HOOK_SECRET" => Some("whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3".into()),
            "KEY" => Some("bk_quickstart_0123456789abcdef".into()),
            "SHORT" => Some("bk_short".into()),
            _ => None,
        }
    }

    fn parse(toml_text: &str) -> Result<Declarations, String> {
        #[derive(Deserialize)]
        struct File {
            #[serde(default)]
            namespaces: Vec<DeclaredNamespace>,
            #[serde(default)]
            api_keys: Vec<DeclaredApiKey>,
        }
        let file: File = toml::from_str(toml_text).map_err(|e| e.to_string())?;
        Declarations::resolve(&file.namespaces, &file.api_keys, UrlPolicy::default(), env)
    }

    #[test]
    fn a_valid_file_resolves_with_its_secrets() {
        let declared = parse(
            r#"
            [[namespaces]]
            name = "/chat"
            [[namespaces.webhooks]]
            url = "http://127.0.0.1:4000/hooks"
            events = ["*", "$connect"]
            secret_env = "HOOK_SECRET"
            [[api_keys]]
            name = "backend"
            namespaces = ["*"]
            key_env = "KEY"
            "#,
        )
        .unwrap();
        let (ns, hooks) = &declared.namespaces[0];
        assert_eq!(ns.name, "/chat");
        assert_eq!(hooks[0].secret.as_deref(), env("HOOK_SECRET").as_deref());
        assert_eq!(declared.api_keys[0].1, "bk_quickstart_0123456789abcdef");
    }

    #[test]
    fn missing_variables_and_invalid_fields_name_the_object() {
        let cases = [
            (
                "[[namespaces]]\nname = \"/p\"\nauth = { mode = \"jwt\", algorithm = \"HS256\", secret_env = \"NOPE\" }",
                "namespace /p: environment variable NOPE is not set",
            ),
            (
                "[[namespaces]]\nname = \"bad name\"",
                "namespace bad name: ",
            ),
            (
                "[[namespaces]]\nname = \"/c\"\n[[namespaces.webhooks]]\nurl = \"http://169.254.169.254/\"\nevents = [\"*\"]",
                "webhook http://169.254.169.254/",
            ),
            (
                "[[namespaces]]\nname = \"/c\"\n[[namespaces.webhooks]]\nurl = \"http://127.0.0.1/\"\nevents = [\"$nope\"]",
                "webhook http://127.0.0.1/",
            ),
            (
                "[[namespaces]]\nname = \"/m\"\nauth = { mode = \"jwt\", algorithm = \"RS256\", jwks_url = \"https://169.254.169.254/jwks\" }",
                "namespace /m: auth.jwks_url: destination not allowed",
            ),
            (
                "[[api_keys]]\nname = \"k\"\nnamespaces = [\"*\"]\nkey_env = \"SHORT\"",
                "api key k: SHORT must hold 24",
            ),
            (
                "[[namespaces]]\nname = \"/c\"\n[[namespaces]]\nname = \"/c\"",
                "declared twice",
            ),
        ];
        for (text, says) in cases {
            let err = parse(text).err().unwrap_or_default();
            assert!(err.contains(says), "{text}: {err}");
        }
    }
}
