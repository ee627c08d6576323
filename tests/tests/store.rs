//! The store's conformance suite: every case runs on SQLite and on a fresh Postgres database.

use std::collections::BTreeMap;

use admin_api::model::{
    ApiKey, AttemptRecord, DeliveryStatus, Namespace, NamespaceAuth, Timestamp, Webhook, new_id,
};
use admin_api::store::{DeliveryFilter, DeliveryUpdate, NewDelivery, OutboxRow};
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
    deliveries_page_by_cursor_namespace_and_time,
    outbox_rows_are_held_claimed_once_and_completed,
    outbox_leases_expire_renew_and_release,
    outbox_usage_prune_and_retry_dead,
    concurrent_changes_are_all_kept,
    a_failure_without_its_body_is_not_retried,
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
        batch: None,
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
        payload: r#"{"type":"event","args":[1,"two"]}"#.into(),
        size: 33,
        socket_id: Some("sock1".into()),
        seq: Some(3),
        status,
        next_attempt_at: Some(Timestamp::now()),
        history: vec![AttemptRecord {
            at: Timestamp::now(),
            status: Some(503),
            error: Some("service unavailable".into()),
            duration_ms: 12,
        }],
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
    assert_eq!(read.batch, None);

    hook.previous_secret = Some((hook.secret.clone(), Timestamp::now().0 + 1000));
    hook.secret = admin_api::model::generate_webhook_secret();
    hook.enabled = false;
    let batch = admin_api::model::Batch {
        max_events: 7,
        max_bytes: 4096,
        max_wait_ms: 0,
        max_in_flight: 3,
    };
    hook.batch = Some(batch);
    store.update_webhook(&hook).await.unwrap();
    let read = store.get_webhook(&hook.id).await.unwrap();
    assert_eq!(read.previous_secret, hook.previous_secret);
    assert!(!read.enabled);
    assert_eq!(read.batch, Some(batch));
    let batched = webhook(&ns.id);
    store
        .create_webhook(&Webhook {
            batch: Some(batch),
            ..batched.clone()
        })
        .await
        .unwrap();
    assert_eq!(
        store.get_webhook(&batched.id).await.unwrap().batch,
        Some(batch)
    );
    store.delete_webhook(&batched.id).await.unwrap();

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
    assert_eq!(found[0].last_status, Some(503));
    assert_eq!(found[0].attempts, 1);
    assert_eq!(found[0].socket_id.as_deref(), Some("sock1"));
    let detail = store.get_delivery(&dead.id).await.unwrap();
    assert_eq!(
        detail.payload,
        serde_json::json!({"type": "event", "args": [1, "two"]})
    );
    assert_eq!(detail.history, dead.history);
    assert_eq!(detail.summary.size, dead.payload.len() as i64);

    let retried = store.retry_delivery(&dead.id).await.unwrap();
    assert_eq!(retried.summary.status, DeliveryStatus::Pending);
    assert!(retried.summary.next_attempt_at.is_some());
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

fn outbox_row(webhook_id: &str, n: i64) -> OutboxRow {
    OutboxRow {
        id: format!("msg_{}", new_id()),
        webhook_id: webhook_id.into(),
        event: "message".into(),
        payload: format!(r#"{{"type":"event","seq":{n}}}"#),
        socket_id: Some("s1".into()),
        seq: Some(n),
        created_at: Timestamp::now().0,
    }
}

async fn hook_in_new_namespace(store: &Store, name: &str) -> Webhook {
    let ns = namespace(name);
    store.create_namespace(&ns).await.unwrap();
    let hook = webhook(&ns.id);
    store.create_webhook(&hook).await.unwrap();
    hook
}

async fn deliveries_page_by_cursor_namespace_and_time(store: Store) {
    let a = hook_in_new_namespace(&store, "/a").await;
    let b = hook_in_new_namespace(&store, "/b").await;
    let mut ids = Vec::new();
    for hook in [&a, &b, &a, &b, &a] {
        let d = delivery(&hook.id, DeliveryStatus::Failed);
        store.insert_delivery(&d).await.unwrap();
        ids.push(d.id);
        // UUIDv7 ids are ordered by millisecond.
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .list_deliveries(&DeliveryFilter {
                before_id: cursor.clone(),
                limit: 2,
                ..Default::default()
            })
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        cursor = Some(page.last().unwrap().id.clone());
        seen.extend(page.into_iter().map(|d| d.id));
    }
    ids.reverse();
    assert_eq!(seen, ids, "every delivery once, newest first");
    for namespace in ["/a".to_owned(), a.namespace_id.clone()] {
        let of_a = store
            .list_deliveries(&DeliveryFilter {
                namespace: Some(namespace),
                limit: 100,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(of_a.len(), 3);
        assert!(of_a.iter().all(|d| d.webhook_id == a.id));
    }
    let future = DeliveryFilter {
        since: Some(Timestamp(Timestamp::now().0 + 60_000)),
        limit: 100,
        ..Default::default()
    };
    assert!(store.list_deliveries(&future).await.unwrap().is_empty());
    let past = DeliveryFilter {
        until: Some(Timestamp(Timestamp::now().0 + 60_000)),
        since: Some(Timestamp(0)),
        limit: 100,
        ..Default::default()
    };
    assert_eq!(store.list_deliveries(&past).await.unwrap().len(), 5);
}

async fn outbox_rows_are_held_claimed_once_and_completed(store: Store) {
    let hook = hook_in_new_namespace(&store, "/o").await;
    let now = Timestamp::now().0;
    let mut rows: Vec<OutboxRow> = (1..=3).map(|n| outbox_row(&hook.id, n)).collect();
    let mut orphan = outbox_row(&hook.id, 9);
    orphan.webhook_id = "deleted-webhook".into();
    rows.push(orphan);
    let written = store
        .insert_outbox(&rows, "node-a", now + 60_000)
        .await
        .unwrap();
    assert_eq!(written.len(), 3, "a row of an unknown webhook is skipped");

    // Held by node-a: nobody can claim them.
    assert!(
        store
            .claim_due("node-b", now + 60_000, now + 1, 10)
            .await
            .unwrap()
            .is_empty()
    );
    // node-a records outcomes: one delivered, one due again now, one dead.
    let record = |status| AttemptRecord {
        at: Timestamp(now),
        status: Some(status),
        error: (status >= 300).then(|| format!("HTTP {status}")),
        duration_ms: 3,
    };
    let update = |i: usize, status, next: Option<i64>, code| DeliveryUpdate {
        id: rows[i].id.clone(),
        status,
        attempts: 1,
        next_attempt_at: next,
        history: vec![record(code)],
    };
    let updates = vec![
        update(0, DeliveryStatus::Delivered, None, 200),
        update(1, DeliveryStatus::Pending, Some(now), 503),
        update(2, DeliveryStatus::Dead, None, 500),
    ];
    assert_eq!(
        store
            .complete_deliveries(&updates, "node-b", now)
            .await
            .unwrap(),
        0,
        "only the holder writes"
    );
    assert_eq!(
        store
            .complete_deliveries(&updates, "node-a", now)
            .await
            .unwrap(),
        3
    );
    let retried = store.get_delivery(&rows[1].id).await.unwrap();
    assert_eq!(retried.summary.last_status, Some(503));
    assert_eq!(retried.summary.last_error.as_deref(), Some("HTTP 503"));
    assert_eq!(retried.history, vec![record(503)]);

    // Only the pending one is due; it is claimed once.
    let claimed = store
        .claim_due("node-b", now + 60_000, now + 1, 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].id, rows[1].id);
    assert_eq!(claimed[0].attempts, 1);
    assert_eq!(claimed[0].history, vec![record(503)]);
    assert!(!claimed[0].manual);
    assert!(
        store
            .claim_due("node-c", now + 60_000, now + 1, 10)
            .await
            .unwrap()
            .is_empty()
    );

    // A disabled webhook's rows wait.
    let mut disabled = hook.clone();
    disabled.enabled = false;
    store.update_webhook(&disabled).await.unwrap();
    store.release_leases("node-b").await.unwrap();
    assert!(
        store
            .claim_due("node-c", now + 60_000, now + 1, 10)
            .await
            .unwrap()
            .is_empty()
    );
    store.update_webhook(&hook).await.unwrap();
    assert_eq!(
        store
            .claim_due("node-c", now + 60_000, now + 1, 10)
            .await
            .unwrap()
            .len(),
        1
    );
}

async fn outbox_leases_expire_renew_and_release(store: Store) {
    let hook = hook_in_new_namespace(&store, "/l").await;
    let now = Timestamp::now().0;
    let rows: Vec<OutboxRow> = (1..=2).map(|n| outbox_row(&hook.id, n)).collect();
    store
        .insert_outbox(&rows, "node-a", now + 1_000)
        .await
        .unwrap();
    // node-a renews only the first; when the second's lease runs out, node-b takes it over.
    let renewed = store
        .renew_leases(&[rows[0].id.clone()], "node-a", now + 10_000)
        .await
        .unwrap();
    assert_eq!(renewed, 1);
    let later = now + 2_000;
    let taken = store
        .claim_due("node-b", later + 5_000, later, 10)
        .await
        .unwrap();
    assert_eq!(taken.len(), 1);
    assert_eq!(taken[0].id, rows[1].id);
    // node-b stops: what it holds is due at once for anyone.
    assert_eq!(store.release_leases("node-b").await.unwrap(), 1);
    let again = store
        .claim_due("node-c", later + 5_000, later, 10)
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    assert!(store.renew_leases(&[], "node-a", now).await.unwrap() == 0);
}

async fn outbox_usage_prune_and_retry_dead(store: Store) {
    let hook = hook_in_new_namespace(&store, "/u").await;
    let now = Timestamp::now().0;
    let rows: Vec<OutboxRow> = (1..=4).map(|n| outbox_row(&hook.id, n)).collect();
    store
        .insert_outbox(&rows, "node-a", now + 60_000)
        .await
        .unwrap();
    let size = rows[0].payload.len() as i64;
    let dead = |i: usize| DeliveryUpdate {
        id: rows[i].id.clone(),
        status: if i < 2 {
            DeliveryStatus::Dead
        } else {
            DeliveryStatus::Delivered
        },
        attempts: 10,
        next_attempt_at: None,
        history: Vec::new(),
    };
    store
        .complete_deliveries(&[dead(0), dead(1), dead(2)], "node-a", now)
        .await
        .unwrap();
    let usage = store.outbox_usage().await.unwrap();
    let of = |status| usage.iter().find(|u| u.status == status).unwrap();
    assert_eq!(
        (
            of(DeliveryStatus::Pending).count,
            of(DeliveryStatus::Pending).bytes
        ),
        (1, size)
    );
    assert_eq!(
        (
            of(DeliveryStatus::Dead).count,
            of(DeliveryStatus::Dead).bytes
        ),
        (2, 2 * size)
    );
    assert!(of(DeliveryStatus::Pending).oldest_due.is_some());

    // Bulk retry: both dead ones become due for one manual attempt each.
    assert_eq!(store.retry_dead(&hook.id).await.unwrap(), 2);
    assert!(matches!(
        store.retry_dead("nope").await,
        Err(StoreError::NotFound(_))
    ));
    let claimed = store
        .claim_due("node-b", now + 60_000, Timestamp::now().0 + 1, 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 2);
    assert!(claimed.iter().all(|c| c.manual && c.attempts == 10));
    // A held row cannot be retried by hand.
    assert!(matches!(
        store.retry_delivery(&claimed[0].id).await,
        Err(StoreError::Conflict(_))
    ));

    // Retention: the delivered row (updated at `now`) goes, nothing newer does.
    assert_eq!(
        store
            .prune_deliveries(DeliveryStatus::Delivered, now - 1, 10)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store
            .prune_deliveries(DeliveryStatus::Delivered, now + 1, 10)
            .await
            .unwrap(),
        1
    );
    assert!(matches!(
        store.get_delivery(&rows[2].id).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(
        store
            .prune_deliveries(DeliveryStatus::Dead, now + 1, 10)
            .await
            .unwrap(),
        0,
        "pending now"
    );
}

/// Parallel read-modify-writes of one webhook and one namespace each keep every change, and
/// parallel creations all succeed (on SQLite they used to answer `database is locked`).
async fn concurrent_changes_are_all_kept(store: Store) {
    let ns = namespace("/race");
    store.create_namespace(&ns).await.unwrap();
    let created = futures_util::future::join_all((0..50).map(|_| {
        let store = store.clone();
        let hook = webhook(&ns.id);
        async move { store.create_webhook(&hook).await }
    }))
    .await;
    assert!(created.iter().all(Result::is_ok), "{created:?}");

    let hook = webhook(&ns.id);
    store.create_webhook(&hook).await.unwrap();
    let changes = futures_util::future::join_all((0..20).map(|i| {
        let store = store.clone();
        let id = hook.id.clone();
        async move {
            store
                .modify_webhook(&id, |mut h| {
                    h.events.push(format!("e{i}"));
                    Ok::<_, StoreError>(h)
                })
                .await
        }
    }))
    .await;
    assert!(changes.iter().all(Result::is_ok), "{changes:?}");
    let events = store.get_webhook(&hook.id).await.unwrap().events;
    assert_eq!(events.len(), hook.events.len() + 20, "{events:?}");

    let renames = futures_util::future::join_all((0..10).map(|i| {
        let store = store.clone();
        let id = ns.id.clone();
        async move {
            store
                .modify_namespace(&id, |mut n| {
                    n.name = format!("{}-{i}", n.name);
                    Ok::<_, StoreError>(n)
                })
                .await
        }
    }))
    .await;
    assert!(renames.iter().all(Result::is_ok), "{renames:?}");
    let name = store.get_namespace(&ns.id).await.unwrap().name;
    assert_eq!(name.matches('-').count(), 10, "{name}");
}

/// A failure whose body was too large to keep lists its size, shows no payload, and refuses a
/// retry (it would send `null`).
async fn a_failure_without_its_body_is_not_retried(store: Store) {
    let ns = namespace("/big");
    store.create_namespace(&ns).await.unwrap();
    let hook = webhook(&ns.id);
    store.create_webhook(&hook).await.unwrap();
    let mut big = delivery(&hook.id, DeliveryStatus::Failed);
    big.payload = "null".into();
    big.size = 900_000;
    store.insert_delivery(&big).await.unwrap();
    let read = store.get_delivery(&big.id).await.unwrap();
    assert!(read.payload.is_null());
    assert_eq!(read.summary.size, 900_000);
    assert!(matches!(
        store.retry_delivery(&big.id).await,
        Err(StoreError::Conflict(msg)) if msg.contains("too large")
    ));
    let small = delivery(&hook.id, DeliveryStatus::Failed);
    store.insert_delivery(&small).await.unwrap();
    assert!(store.retry_delivery(&small.id).await.is_ok());
}

const KEY_A: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const KEY_B: &str = "HxwdHhsaGRgXFhUUExIREA8ODQwLCgkIBwYFBAMCAQA=";

async fn sealed_with(url: &str, key: Option<&str>, old: &[&str]) -> Store {
    let old: Vec<String> = old.iter().map(|k| (*k).to_owned()).collect();
    let sealer = admin_api::store::Sealer::new(key, &old).expect("keys");
    Store::connect(url)
        .await
        .expect("connect")
        .with_sealer(sealer)
}

/// A connection to the database under the store, for what the store's API does not show.
async fn raw_pool(url: &str) -> sqlx::AnyPool {
    sqlx::any::install_default_drivers();
    sqlx::AnyPool::connect(url).await.expect("raw connect")
}

/// What the database itself holds: the webhook secrets and the namespace's auth column.
async fn raw_secrets(url: &str) -> Vec<String> {
    let pool = raw_pool(url).await;
    let mut values: Vec<String> = Vec::new();
    for row in sqlx::query("SELECT secret, previous_secret FROM webhooks")
        .fetch_all(&pool)
        .await
        .unwrap()
    {
        use sqlx::Row;
        values.push(row.get("secret"));
        values.extend(row.get::<Option<String>, _>("previous_secret"));
    }
    for row in sqlx::query("SELECT auth FROM namespaces")
        .fetch_all(&pool)
        .await
        .unwrap()
    {
        use sqlx::Row;
        values.push(row.get("auth"));
    }
    pool.close().await;
    values
}

/// Secrets at rest: sealed with the key, readable only with it, resealed on rotation, and a
/// plaintext store sealed in place.
async fn secrets_are_sealed_at_rest(engine: Engine) {
    let url = fresh_database(engine).await;
    let plain = Store::connect(&url).await.unwrap();
    plain.migrate().await.unwrap();
    let mut ns = namespace("/sealed");
    ns.auth = NamespaceAuth::Jwt(admin_api::model::JwtAuth {
        algorithm: admin_api::model::JwtAlgorithm::HS256,
        secret: Some("jwt-shared-secret".into()),
        public_key: None,
        jwks_url: None,
        issuer: None,
        audience: None,
        timeout_ms: 1000,
    });
    plain.create_namespace(&ns).await.unwrap();
    let mut hook = webhook(&ns.id);
    hook.previous_secret = Some(("whsec_previous".into(), i64::MAX));
    plain.create_webhook(&hook).await.unwrap();
    let secrets = [hook.secret.as_str(), "whsec_previous", "jwt-shared-secret"];
    let shows = |raw: &[String], secret: &str| raw.iter().any(|v| v.contains(secret));
    let raw = raw_secrets(&url).await;
    assert!(
        secrets.iter().all(|s| shows(&raw, s)),
        "no key: stored as given"
    );

    // A key seals what was stored in plaintext, in place.
    let a = sealed_with(&url, Some(KEY_A), &[]).await;
    assert_eq!(
        a.reseal_secrets().await.unwrap(),
        2,
        "one webhook, one namespace"
    );
    assert_eq!(
        a.reseal_secrets().await.unwrap(),
        0,
        "nothing left to reseal"
    );
    let raw = raw_secrets(&url).await;
    for secret in secrets {
        assert!(!shows(&raw, secret), "{secret} still in plaintext: {raw:?}");
    }
    assert_eq!(
        raw.iter().filter(|v| v.contains("sealed:v1:")).count(),
        3,
        "{raw:?}"
    );
    let read = a.get_webhook(&hook.id).await.unwrap();
    assert_eq!(read.secret, hook.secret);
    assert_eq!(read.previous_secret, hook.previous_secret);
    let NamespaceAuth::Jwt(jwt) = a.get_namespace(&ns.id).await.unwrap().auth else {
        panic!("jwt auth");
    };
    assert_eq!(jwt.secret.as_deref(), Some("jwt-shared-secret"));

    // New writes are sealed too.
    let second = webhook(&ns.id);
    a.create_webhook(&second).await.unwrap();
    assert!(!shows(&raw_secrets(&url).await, &second.secret));

    // Without the key, or with another one, the secrets cannot be read.
    let keyless = Store::connect(&url).await.unwrap();
    assert!(matches!(
        keyless.load_catalog().await,
        Err(StoreError::MissingKey(_))
    ));
    let b_only = sealed_with(&url, Some(KEY_B), &[]).await;
    assert!(matches!(
        b_only.get_webhook(&hook.id).await,
        Err(StoreError::MissingKey(_))
    ));

    // Rotation: B current, A old: readable, then resealed under B.
    let rotating = sealed_with(&url, Some(KEY_B), &[KEY_A]).await;
    assert_eq!(
        rotating.get_webhook(&hook.id).await.unwrap().secret,
        hook.secret
    );
    assert_eq!(rotating.reseal_secrets().await.unwrap(), 3);
    let b_only = sealed_with(&url, Some(KEY_B), &[]).await;
    let catalog = b_only.load_catalog().await.unwrap();
    assert_eq!(catalog.webhooks.len(), 2);
    assert!(catalog.webhooks.iter().any(|w| w.secret == second.secret));
    assert!(matches!(
        sealed_with(&url, Some(KEY_A), &[])
            .await
            .load_catalog()
            .await,
        Err(StoreError::MissingKey(_))
    ));
}

/// The `batch` column as the database holds it.
async fn raw_batch(url: &str) -> Option<String> {
    use sqlx::Row;
    let pool = raw_pool(url).await;
    let row = sqlx::query("SELECT batch FROM webhooks")
        .fetch_one(&pool)
        .await
        .unwrap();
    let batch = row.get::<Option<String>, _>("batch");
    pool.close().await;
    batch
}

/// Another version reads what this one stores, and this one what another stores: a setting at its
/// default is not written (the version before it refuses fields it does not know), and settings
/// this version does not know are ignored.
async fn batch_column_is_read_across_versions(engine: Engine) {
    let url = fresh_database(engine).await;
    let store = Store::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    let ns = namespace("/batched");
    store.create_namespace(&ns).await.unwrap();
    let mut hook = webhook(&ns.id);
    hook.reply = false;
    hook.batch = Some(admin_api::model::Batch::default());
    store.create_webhook(&hook).await.unwrap();
    let stored: serde_json::Value = serde_json::from_str(&raw_batch(&url).await.unwrap()).unwrap();
    assert_eq!(
        stored,
        serde_json::json!({"max_events": 100, "max_bytes": 262144, "max_wait_ms": 20})
    );
    assert_eq!(store.get_webhook(&hook.id).await.unwrap().batch, hook.batch);

    let lanes = admin_api::model::Batch {
        max_in_flight: 4,
        ..Default::default()
    };
    hook.batch = Some(lanes);
    store.update_webhook(&hook).await.unwrap();
    let stored: serde_json::Value = serde_json::from_str(&raw_batch(&url).await.unwrap()).unwrap();
    assert_eq!(stored["max_in_flight"], 4);

    // A later version's setting in the column: the rest is read, the catalog loads.
    let pool = raw_pool(&url).await;
    sqlx::query(
        "UPDATE webhooks SET batch = '{\"max_events\": 9, \"max_bytes\": 4096, \"max_wait_ms\": 5, \"max_in_flight\": 2, \"from_a_later_version\": true}'",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
    let read = store.get_webhook(&hook.id).await.unwrap().batch.unwrap();
    assert_eq!(
        (
            read.max_events,
            read.max_bytes,
            read.max_wait_ms,
            read.max_in_flight
        ),
        (9, 4096, 5, 2)
    );
    assert_eq!(store.load_catalog().await.unwrap().webhooks.len(), 1);
}

#[tokio::test]
async fn batch_column_is_read_across_versions_sqlite() {
    batch_column_is_read_across_versions(Engine::Sqlite).await;
}

#[tokio::test]
async fn batch_column_is_read_across_versions_postgres() {
    batch_column_is_read_across_versions(Engine::Postgres).await;
}

#[tokio::test]
async fn secrets_are_sealed_at_rest_sqlite() {
    secrets_are_sealed_at_rest(Engine::Sqlite).await;
}

#[tokio::test]
async fn secrets_are_sealed_at_rest_postgres() {
    secrets_are_sealed_at_rest(Engine::Postgres).await;
}
