//! Declarative bootstrap: the namespaces (with their auth and webhooks) and API keys the config
//! file declares ([`crate::declarations`]) created or updated at start, so that a deployment is
//! described as code.
//!
//! Objects are matched by name (namespaces, API keys) and by URL within their namespace
//! (webhooks). What the file declares wins over what the store has; what it does not declare is
//! left alone, so the admin API still works beside it.

use admin_api::model::{
    ApiKey, Namespace, NewApiKey, NewNamespace, NewWebhook, Timestamp, Webhook, api_key_prefix,
    hash_api_key, new_id,
};
use admin_api::{Store, StoreError};

use crate::declarations::Declarations;

/// What applying the declarations did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    /// Objects created.
    pub created: usize,
    /// Objects changed to match the file.
    pub updated: usize,
    /// Objects already as declared.
    pub unchanged: usize,
}

impl Report {
    fn count(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Created => self.created += 1,
            Outcome::Updated => self.updated += 1,
            Outcome::Unchanged => self.unchanged += 1,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Created,
    Updated,
    Unchanged,
}

/// Advisory lock key of the bootstrap ("bridgebs" in ASCII).
const LOCK_KEY: i64 = 0x6272_6964_6765_6273;

/// Creates or updates every declared object; each change is one line in the log. Nodes that
/// start together take turns, so each object is created once.
pub async fn apply(store: &Store, declared: &Declarations) -> Result<Report, StoreError> {
    store
        .exclusively(LOCK_KEY, apply_unlocked(store, declared))
        .await
}

async fn apply_unlocked(store: &Store, declared: &Declarations) -> Result<Report, StoreError> {
    let mut report = Report::default();
    let namespaces = store.list_namespaces().await?;
    let webhooks = store.list_webhooks(None).await?;
    for (new, hooks) in &declared.namespaces {
        let (ns, outcome) = upsert_namespace(store, &namespaces, new).await?;
        log(outcome, "namespace", &new.name);
        report.count(outcome);
        for hook in hooks {
            let current = webhooks
                .iter()
                .find(|w| w.namespace_id == ns.id && w.url == hook.url);
            let outcome = upsert_webhook(store, &ns, current, hook).await?;
            log(outcome, "webhook", &format!("{} of {}", hook.url, ns.name));
            report.count(outcome);
        }
    }
    let keys = store.list_api_keys().await?;
    for (new, value) in &declared.api_keys {
        let current = keys
            .iter()
            .find(|k| k.name == new.name && k.revoked_at.is_none());
        let outcome = upsert_api_key(store, current, new, value).await?;
        log(outcome, "api key", &new.name);
        report.count(outcome);
    }
    tracing::info!(
        created = report.created,
        updated = report.updated,
        unchanged = report.unchanged,
        "bootstrap applied from the config file"
    );
    Ok(report)
}

fn log(outcome: Outcome, kind: &str, name: &str) {
    match outcome {
        Outcome::Created => tracing::info!("bootstrap: {kind} {name} created"),
        Outcome::Updated => tracing::info!("bootstrap: {kind} {name} updated to match the file"),
        Outcome::Unchanged => tracing::debug!("bootstrap: {kind} {name} unchanged"),
    }
}

async fn upsert_namespace(
    store: &Store,
    existing: &[Namespace],
    new: &NewNamespace,
) -> Result<(Namespace, Outcome), StoreError> {
    let now = Timestamp::now();
    let Some(current) = existing.iter().find(|ns| ns.name == new.name) else {
        let ns = Namespace {
            id: new_id(),
            name: new.name.clone(),
            auth: new.auth.clone(),
            created_at: now,
            updated_at: now,
        };
        store.create_namespace(&ns).await?;
        return Ok((ns, Outcome::Created));
    };
    if current.auth == new.auth {
        return Ok((current.clone(), Outcome::Unchanged));
    }
    let changed = Namespace {
        auth: new.auth.clone(),
        updated_at: now,
        ..current.clone()
    };
    store.update_namespace(&changed).await?;
    Ok((changed, Outcome::Updated))
}

async fn upsert_webhook(
    store: &Store,
    ns: &Namespace,
    current: Option<&Webhook>,
    new: &NewWebhook,
) -> Result<Outcome, StoreError> {
    let Some(current) = current else {
        let created = new.clone().create(ns.id.clone());
        store.create_webhook(&created.webhook).await?;
        if let Some(secret) = created.secret {
            // The only time it is shown, as the admin API's answer would.
            tracing::warn!(
                webhook = %created.webhook.id,
                url = %created.webhook.url,
                "bootstrap: generated webhook secret {secret} (shown once; set secret_env to choose it)"
            );
        }
        return Ok(Outcome::Created);
    };
    let wanted = Webhook {
        events: new.events.clone(),
        secret: new.secret.clone().unwrap_or_else(|| current.secret.clone()),
        previous_secret: if new.secret.as_ref().is_some_and(|s| *s != current.secret) {
            None
        } else {
            current.previous_secret.clone()
        },
        reply: new.reply,
        durable: new.durable,
        timeout_ms: new.timeout_ms,
        headers: new.headers.clone(),
        enabled: new.enabled,
        batch: new.batch,
        ..current.clone()
    };
    if wanted == *current {
        return Ok(Outcome::Unchanged);
    }
    store
        .update_webhook(&Webhook {
            updated_at: Timestamp::now(),
            ..wanted
        })
        .await?;
    Ok(Outcome::Updated)
}

async fn upsert_api_key(
    store: &Store,
    current: Option<&ApiKey>,
    new: &NewApiKey,
    value: &str,
) -> Result<Outcome, StoreError> {
    let hash = hash_api_key(value);
    let Some(current) = current else {
        let key = ApiKey {
            id: new_id(),
            name: new.name.clone(),
            namespaces: new.namespaces.clone(),
            prefix: api_key_prefix(value),
            created_at: Timestamp::now(),
            last_used_at: None,
            revoked_at: None,
            key_hash: hash,
        };
        store.create_api_key(&key).await?;
        return Ok(Outcome::Created);
    };
    if current.key_hash == hash && current.namespaces == new.namespaces {
        return Ok(Outcome::Unchanged);
    }
    store
        .update_api_key(&ApiKey {
            namespaces: new.namespaces.clone(),
            prefix: api_key_prefix(value),
            key_hash: hash,
            ..current.clone()
        })
        .await?;
    Ok(Outcome::Updated)
}
