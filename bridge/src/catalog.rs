//! In-memory view of the store: namespaces, their webhooks and API keys.
//!
//! The hot paths (events, emits) read it without touching the store. A refresher reloads it when
//! `catalog_version` changes: at once for writes made through this node, within
//! [`POLL_INTERVAL`] for writes made on other nodes.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use admin_api::model::{ApiKey, EventPattern, Namespace, NamespaceAuth, UrlPolicy, Webhook};
use admin_api::{CatalogSnapshot, Store};
use tokio::sync::watch;

use crate::jwt::JwtVerifier;
use crate::jwt::jwks::JwksRegistry;

/// How often other nodes' changes are looked for.
pub const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// A webhook with its patterns compiled.
#[derive(Debug, Clone)]
pub struct Subscription {
    /// The webhook as stored.
    pub webhook: Arc<Webhook>,
    patterns: Vec<EventPattern>,
}

impl Subscription {
    fn new(webhook: Webhook) -> Self {
        let patterns = webhook
            .events
            .iter()
            .filter_map(|p| EventPattern::parse(p).ok())
            .collect();
        Self {
            webhook: Arc::new(webhook),
            patterns,
        }
    }

    /// Whether a client event named `event` goes to this webhook.
    pub fn wants_event(&self, event: &str) -> bool {
        self.webhook.enabled && self.patterns.iter().any(|p| p.matches_event(event))
    }

    /// Whether this webhook asked for `$connect` or `$disconnect`.
    pub fn wants_lifecycle(&self, pattern: &EventPattern) -> bool {
        self.webhook.enabled && self.patterns.contains(pattern)
    }
}

/// A namespace and its webhooks.
#[derive(Debug, Clone)]
pub struct NamespaceEntry {
    /// The namespace as stored.
    pub namespace: Namespace,
    /// Its webhooks, oldest first.
    pub subscriptions: Vec<Subscription>,
    /// Its JWT settings with the key parsed, for `mode: "jwt"`.
    pub verifier: Option<Arc<JwtVerifier>>,
}

impl NamespaceEntry {
    /// Whether sockets must authenticate with a JWT.
    pub fn requires_jwt(&self) -> bool {
        matches!(self.namespace.auth, NamespaceAuth::Jwt(_))
    }
}

/// One consistent version of the catalog.
#[derive(Debug, Clone, Default)]
pub struct CatalogData {
    /// `catalog_version` it was read at.
    pub version: i64,
    /// Namespaces by name.
    pub namespaces: HashMap<String, Arc<NamespaceEntry>>,
    /// Unrevoked API keys by key hash.
    pub api_keys: HashMap<String, ApiKey>,
    /// Every webhook by id (for the outbox worker, which starts from a stored row).
    pub webhooks: HashMap<String, Arc<Webhook>>,
}

impl CatalogData {
    /// Indexes a snapshot read from the store; JWKS namespaces take their key sets from `jwks`.
    pub fn from_snapshot(snapshot: CatalogSnapshot, jwks: &JwksRegistry) -> Self {
        let mut by_ns: HashMap<String, Vec<Subscription>> = HashMap::new();
        for webhook in snapshot.webhooks {
            by_ns
                .entry(webhook.namespace_id.clone())
                .or_default()
                .push(Subscription::new(webhook));
        }
        let webhooks = by_ns
            .values()
            .flatten()
            .map(|sub| (sub.webhook.id.clone(), sub.webhook.clone()))
            .collect();
        let namespaces = snapshot
            .namespaces
            .into_iter()
            .map(|namespace| {
                let subscriptions = by_ns.remove(&namespace.id).unwrap_or_default();
                let verifier = compile_verifier(&namespace, jwks);
                let entry = NamespaceEntry {
                    namespace,
                    subscriptions,
                    verifier,
                };
                (entry.namespace.name.clone(), Arc::new(entry))
            })
            .collect();
        let api_keys = snapshot
            .api_keys
            .into_iter()
            .map(|key| (key.key_hash.clone(), key))
            .collect();
        Self {
            version: snapshot.version,
            namespaces,
            api_keys,
            webhooks,
        }
    }
}

/// Parses a namespace's JWT key once per catalog version; a key that no longer parses refuses
/// every token of that namespace (and says so in the log) rather than admitting anyone.
fn compile_verifier(namespace: &Namespace, jwks: &JwksRegistry) -> Option<Arc<JwtVerifier>> {
    let NamespaceAuth::Jwt(auth) = &namespace.auth else {
        return None;
    };
    match JwtVerifier::with_jwks(auth, jwks) {
        Ok(verifier) => Some(Arc::new(verifier)),
        Err(err) => {
            tracing::error!(namespace = %namespace.name, %err, "invalid JWT key; every token will be refused");
            None
        }
    }
}

/// Shared handle to the current catalog; cheap to clone.
#[derive(Debug, Clone)]
pub struct Catalog {
    rx: watch::Receiver<Arc<CatalogData>>,
}

impl Catalog {
    /// Loads the catalog once and starts refreshing it in the background.
    pub async fn start(store: Store, policy: UrlPolicy) -> Result<Self, admin_api::StoreError> {
        // One registry for the process: key sets outlive catalog versions. Its fetches follow
        // the webhooks' URL `policy`.
        let jwks = JwksRegistry::new(policy);
        let data = CatalogData::from_snapshot(store.load_catalog().await?, &jwks);
        let (tx, rx) = watch::channel(Arc::new(data));
        tokio::spawn(refresh_loop(store, tx, jwks));
        Ok(Self { rx })
    }

    /// The current version of the catalog.
    pub fn current(&self) -> Arc<CatalogData> {
        self.rx.borrow().clone()
    }

    /// A receiver that is told of every new version.
    pub fn subscribe(&self) -> watch::Receiver<Arc<CatalogData>> {
        self.rx.clone()
    }

    /// The webhook with this id, if the store has it.
    pub fn webhook(&self, id: &str) -> Option<Arc<Webhook>> {
        self.rx.borrow().webhooks.get(id).cloned()
    }

    /// The namespace named `name`, if the store has it.
    pub fn namespace(&self, name: &str) -> Option<Arc<NamespaceEntry>> {
        self.rx.borrow().namespaces.get(name).cloned()
    }
}

/// Reloads on local change notices and on the poll tick; stops when every reader is gone.
async fn refresh_loop(store: Store, tx: watch::Sender<Arc<CatalogData>>, jwks: JwksRegistry) {
    let changes = store.changes();
    let mut healthy = true;
    loop {
        tokio::select! {
            () = changes.notified() => {}
            () = tokio::time::sleep(POLL_INTERVAL) => {}
            () = tx.closed() => return,
        }
        let known = tx.borrow().version;
        match reload_if_changed(&store, known, &jwks).await {
            Ok(Some(data)) => {
                tracing::debug!(version = data.version, "catalog reloaded");
                tx.send_replace(Arc::new(data));
                healthy = true;
            }
            Ok(None) => healthy = true,
            Err(err) => {
                if healthy {
                    tracing::warn!(%err, "cannot refresh the catalog; serving the last one");
                }
                healthy = false;
            }
        }
    }
}

async fn reload_if_changed(
    store: &Store,
    known: i64,
    jwks: &JwksRegistry,
) -> Result<Option<CatalogData>, admin_api::StoreError> {
    if store.catalog_version().await? == known {
        return Ok(None);
    }
    Ok(Some(CatalogData::from_snapshot(
        store.load_catalog().await?,
        jwks,
    )))
}
