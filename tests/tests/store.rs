//! The store's conformance suite: every case runs on SQLite and on a fresh Postgres database.

use std::collections::BTreeMap;

use admin_api::model::{
    ApiKey, DeliveryStatus, Namespace, NamespaceAuth, Timestamp, Webhook, new_id,
};
use admin_api::store::{DeliveryFilter, NewDelivery};
use admin_api::{Store, StoreError};
use bridge_tests::{Engine, fresh_database};

/// Generates `<case>_sqlite` and `<case>_postgres` tests from one async fn taking a `Store`.
macro_rules! on_both_engines {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test] async fn $case() { super::$case(super::store(super::Engine::Sqlite).await).await; })*
        }
        mod postgres {
            $(#[tokio::test] async fn $case() { super::$case(super::store(super::Engine::Postgres).await).await; })*
        }
    };
}

on_both_engines!(
    namespaces_crud_and_conflicts,
    webhooks_belong_to_namespaces_and_cascade,
    api_keys_revoke_and_touch,
    deliveries_filter_get_and_retry,
    every_write_bumps_the_catalog_version,
    migrations_are_idempotent,
);

async fn store(engine: Engine) -> Store {
    let store = Store::connect(&fresh_database(engine).await)
        .await
        .expect("connect");
    store.migrate().await.expect("migrate");
    store
}

fn namespace(name: &str) -> Namespace {
    let now = Timestamp::now();
    Namespace {
        id: new_id(),
        name: name.into(),
        auth: NamespaceAuth::None,
        created_at: now,
        updated_at: now,
    }
}

fn webhook(namespace_id: &str) -> Webhook {
    let now = Timestamp::now();
    Webhook {
        id: new_id(),
        namespace_id: namespace_id.into(),
        url: "http://127.0.0.1:9/hook".into(),
        events: vec!["*".into(), "$connect".into()],
        secret: admin_api::model::generate_webhook_secret(),
        previous_secret: None,
        reply: true,
        durable: false,
        timeout_ms: 1500,
        headers: BTreeMap::from([("x-team".into(), "blue".into())]),
        enabled: true,
        created_at: now,
        updated_at: now,
    }
}

fn api_key(name: &str) -> ApiKey {
    let (key, prefix) = admin_api::model::generate_api_key();
    ApiKey {
        id: new_id(),
        name: name.into(),
        namespaces: vec!["/chat".into()],
        prefix,
        created_at: Timestamp::now(),
        last_used_at: None,
        revoked_at: None,
        key_hash: admin_api::model::hash_api_key(&key),
    }
}

fn delivery(webhook_id: &str, status: DeliveryStatus) -> NewDelivery {
    NewDelivery {
        id: format!("msg_{}", new_id()),
        webhook_id: webhook_id.into(),
        event: "message".into(),
        payload: serde_json::json!({"type": "event", "args": [1, "two"]}),
        status,
        attempts: 1,
        next_attempt_at: Some(Timestamp::now()),
        last_status: Some(503),
        last_error: Some("service unavailable".into()),
    }
}

async fn namespaces_crud_and_conflicts(store: Store) {
    let mut chat = namespace("/chat");
    store.create_namespace(&chat).await.unwrap();
    store.create_namespace(&namespace("/")).await.unwrap();
    let err = store
        .create_namespace(&namespace("/chat"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");

    let names: Vec<_> = store
        .list_namespaces()
        .await
        .unwrap()
        .into_iter()
        .map(|n| n.name)
        .collect();
    assert_eq!(names, ["/", "/chat"]);

    chat.name = "/rooms".into();
    chat.auth = serde_json::from_value(serde_json::json!(
        {"mode": "jwt", "algorithm": "HS256", "secret": "k", "issuer": "me"}
    ))
    .unwrap();
    store.update_namespace(&chat).await.unwrap();
    let read = store.get_namespace(&chat.id).await.unwrap();
    assert_eq!(read.name, "/rooms");
    assert_eq!(read.auth, chat.auth);

    let mut clash = chat.clone();
    clash.name = "/".into();
    assert!(matches!(
        store.update_namespace(&clash).await,
        Err(StoreError::Conflict(_))
    ));

    store.delete_namespace(&chat.id).await.unwrap();
    assert!(matches!(
        store.get_namespace(&chat.id).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.delete_namespace(&chat.id).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.update_namespace(&chat).await,
        Err(StoreError::NotFound(_))
    ));
}

async fn webhooks_belong_to_namespaces_and_cascade(store: Store) {
    let orphan = webhook("no-such-namespace");
    assert!(matches!(
        store.create_webhook(&orphan).await,
        Err(StoreError::NotFound(_))
    ));

    let ns = namespace("/chat");
    store.create_namespace(&ns).await.unwrap();
    let mut hook = webhook(&ns.id);
    store.create_webhook(&hook).await.unwrap();
    let read = store.get_webhook(&hook.id).await.unwrap();
    assert_eq!(read.events, hook.events);
    assert_eq!(read.headers, hook.headers);
    assert_eq!(read.secret, hook.secret);
    assert!(read.reply && !read.durable && read.enabled);
    assert_eq!(read.timeout_ms, 1500);

    hook.previous_secret = Some((hook.secret.clone(), Timestamp::now().0 + 1000));
    hook.secret = admin_api::model::generate_webhook_secret();
    hook.enabled = false;
    store.update_webhook(&hook).await.unwrap();
    let read = store.get_webhook(&hook.id).await.unwrap();
    assert_eq!(read.previous_secret, hook.previous_secret);
    assert!(!read.enabled);

    store
        .insert_delivery(&delivery(&hook.id, DeliveryStatus::Failed))
        .await
        .unwrap();
    assert_eq!(store.list_webhooks(Some(&ns.id)).await.unwrap().len(), 1);
    store.delete_namespace(&ns.id).await.unwrap();
    assert!(matches!(
        store.get_webhook(&hook.id).await,
        Err(StoreError::NotFound(_))
    ));
    let left = store
        .list_deliveries(&DeliveryFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(left.is_empty(), "deliveries cascade with their webhook");
}

async fn api_keys_revoke_and_touch(store: Store) {
    let a = api_key("a");
    let b = api_key("b");
    store.create_api_key(&a).await.unwrap();
    store.create_api_key(&b).await.unwrap();
    let revoked = store.revoke_api_key(&a.id, Timestamp(1_000)).await.unwrap();
    assert_eq!(revoked.revoked_at, Some(Timestamp(1_000)));
    let again = store.revoke_api_key(&a.id, Timestamp(2_000)).await.unwrap();
    assert_eq!(
        again.revoked_at,
        Some(Timestamp(1_000)),
        "first revocation time is kept"
    );
    assert!(matches!(
        store.revoke_api_key("nope", Timestamp(1)).await,
        Err(StoreError::NotFound(_))
    ));

    store
        .touch_api_keys(std::slice::from_ref(&b.id), Timestamp(5_000))
        .await
        .unwrap();
    let keys = store.list_api_keys().await.unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(
        keys.iter().find(|k| k.id == b.id).unwrap().last_used_at,
        Some(Timestamp(5_000))
    );

    let catalog = store.load_catalog().await.unwrap();
    let ids: Vec<_> = catalog.api_keys.iter().map(|k| k.id.as_str()).collect();
    assert_eq!(ids, [b.id.as_str()], "revoked keys are not in the catalog");
    assert_eq!(catalog.api_keys[0].key_hash, b.key_hash);
}

async fn deliveries_filter_get_and_retry(store: Store) {
    let ns = namespace("/chat");
    store.create_namespace(&ns).await.unwrap();
    let h1 = webhook(&ns.id);
    let h2 = webhook(&ns.id);
    store.create_webhook(&h1).await.unwrap();
    store.create_webhook(&h2).await.unwrap();
    let all = |limit| DeliveryFilter {
        limit,
        ..Default::default()
    };
    assert!(store.list_deliveries(&all(100)).await.unwrap().is_empty());

    let dead = delivery(&h1.id, DeliveryStatus::Dead);
    store.insert_delivery(&dead).await.unwrap();
    store
        .insert_delivery(&delivery(&h1.id, DeliveryStatus::Delivered))
        .await
        .unwrap();
    store
        .insert_delivery(&delivery(&h2.id, DeliveryStatus::Dead))
        .await
        .unwrap();

    assert_eq!(store.list_deliveries(&all(100)).await.unwrap().len(), 3);
    assert_eq!(store.list_deliveries(&all(2)).await.unwrap().len(), 2);
    let by_hook = DeliveryFilter {
        webhook_id: Some(h1.id.clone()),
        limit: 100,
        ..Default::default()
    };
    assert_eq!(store.list_deliveries(&by_hook).await.unwrap().len(), 2);
    let dead_of_h1 = DeliveryFilter {
        status: Some(DeliveryStatus::Dead),
        ..by_hook
    };
    let found = store.list_deliveries(&dead_of_h1).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].id, dead.id);
    assert_eq!(found[0].payload, dead.payload);
    assert_eq!(found[0].last_status, Some(503));

    let retried = store.retry_delivery(&dead.id).await.unwrap();
    assert_eq!(retried.status, DeliveryStatus::Pending);
    assert!(retried.next_attempt_at.is_some());
    assert!(matches!(
        store.get_delivery("msg_nope").await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.retry_delivery("msg_nope").await,
        Err(StoreError::NotFound(_))
    ));
}

async fn every_write_bumps_the_catalog_version(store: Store) {
    let v0 = store.catalog_version().await.unwrap();
    let ns = namespace("/v");
    store.create_namespace(&ns).await.unwrap();
    let hook = webhook(&ns.id);
    store.create_webhook(&hook).await.unwrap();
    let key = api_key("k");
    store.create_api_key(&key).await.unwrap();
    store
        .revoke_api_key(&key.id, Timestamp::now())
        .await
        .unwrap();
    store.delete_webhook(&hook.id).await.unwrap();
    store.delete_namespace(&ns.id).await.unwrap();
    assert_eq!(store.catalog_version().await.unwrap(), v0 + 6);
    // A failed write changes nothing.
    let _ = store.delete_namespace(&ns.id).await;
    assert_eq!(store.catalog_version().await.unwrap(), v0 + 6);
}

async fn migrations_are_idempotent(store: Store) {
    store.migrate().await.unwrap();
    store.ping().await.unwrap();
    assert_eq!(store.catalog_version().await.unwrap(), 0);
}
