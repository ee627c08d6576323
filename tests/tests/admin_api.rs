//! The admin API over real HTTP on port 0: every endpoint, and a table of bad inputs.

use std::time::Duration;

use admin_api::Store;
use admin_api::model::{AttemptRecord, DeliveryStatus, Timestamp};
use admin_api::store::NewDelivery;
use bridge_tests::spawn::{eventually, status_and_json};
use bridge_tests::{Engine, TestApp};
use reqwest::Method;
use serde_json::{Value, json};

#[tokio::test]
async fn namespaces_endpoints() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    let (status, ns) = app
        .admin_post(
            "/admin/namespaces",
            json!({"name": "/chat", "auth": {"mode": "jwt", "algorithm": "HS256", "secret": "hush", "audience": "app"}}),
        )
        .await;
    assert_eq!(status, 201, "{ns}");
    assert_eq!(ns["name"], "/chat");
    assert_eq!(ns["auth"]["audience"], "app");
    assert!(
        ns["auth"].get("secret").is_none(),
        "HS secret is never echoed: {ns}"
    );
    let id = ns["id"].as_str().unwrap();

    let (status, list) = app.admin_get("/admin/namespaces").await;
    assert_eq!(status, 200);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert!(list[0]["auth"].get("secret").is_none());

    let (status, one) = app.admin_get(&format!("/admin/namespaces/{id}")).await;
    assert_eq!((status, one["name"].clone()), (200, json!("/chat")));

    let (status, patched) = app
        .admin_patch(&format!("/admin/namespaces/{id}"), json!({"name": "/talk"}))
        .await;
    assert_eq!((status, patched["name"].clone()), (200, json!("/talk")));
    assert_eq!(patched["auth"]["mode"], "jwt");

    assert_eq!(
        app.admin_delete(&format!("/admin/namespaces/{id}")).await.0,
        204
    );
    let (status, _) = app.admin_get(&format!("/admin/namespaces/{id}")).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn webhooks_endpoints_and_secret_rotation() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    let ns = app.create_namespace(json!({"name": "/chat"})).await;
    let path = format!("/admin/namespaces/{ns}/webhooks");
    let (status, hook) = app
        .admin_post(&path, json!({"url": "http://127.0.0.1:9/hook", "events": ["chat:*", "$connect"], "reply": true, "headers": {"x-team": "blue"}}))
        .await;
    assert_eq!(status, 201, "{hook}");
    let secret = hook["secret"]
        .as_str()
        .expect("generated secret shown once");
    assert!(secret.starts_with("whsec_"));
    assert_eq!(hook["reply"], true);
    assert_eq!(hook["durable"], false);
    assert_eq!(hook["enabled"], true);
    assert_eq!(hook["timeout_ms"], 5000);
    let id = hook["id"].as_str().unwrap();

    // A given secret is not echoed.
    let given = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let (status, other) = app
        .admin_post(
            &path,
            json!({"url": "https://example.test/x", "events": ["*"], "secret": given}),
        )
        .await;
    assert_eq!(status, 201, "{other}");
    assert!(other.get("secret").is_none());

    let (status, list) = app.admin_get(&path).await;
    assert_eq!(status, 200);
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert!(list[0].get("secret").is_none());

    let (status, one) = app.admin_get(&format!("/admin/webhooks/{id}")).await;
    assert_eq!(
        (status, one["headers"]["x-team"].clone()),
        (200, json!("blue"))
    );
    assert!(one.get("secret").is_none());

    let (status, patched) = app
        .admin_patch(
            &format!("/admin/webhooks/{id}"),
            json!({"enabled": false, "timeout_ms": 800}),
        )
        .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(
        (patched["enabled"].clone(), patched["timeout_ms"].clone()),
        (json!(false), json!(800))
    );
    assert_eq!(patched["events"], json!(["chat:*", "$connect"]));

    let (status, rotated) = app
        .admin_post(&format!("/admin/webhooks/{id}/rotate-secret"), json!({}))
        .await;
    assert_eq!(status, 200, "{rotated}");
    let new_secret = rotated["secret"].as_str().unwrap();
    assert!(new_secret.starts_with("whsec_") && new_secret != secret);
    // Both secrets sign for 24 hours.
    let store = Store::connect(&app.database_url).await.unwrap();
    let stored = store.get_webhook(id).await.unwrap();
    assert_eq!(stored.secret, new_secret);
    let now = chrono_now_ms();
    assert_eq!(stored.signing_secrets(now), vec![new_secret, secret]);
    assert_eq!(
        stored.signing_secrets(now + 25 * 3600 * 1000),
        vec![new_secret]
    );

    assert_eq!(
        app.admin_delete(&format!("/admin/webhooks/{id}")).await.0,
        204
    );
    let (status, _) = app.admin_get(&format!("/admin/webhooks/{id}")).await;
    assert_eq!(status, 404);
}

fn chrono_now_ms() -> i64 {
    admin_api::model::Timestamp::now().0
}

#[tokio::test]
async fn api_keys_endpoints() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    let (status, created) = app
        .admin_post(
            "/admin/api-keys",
            json!({"name": "backend", "namespaces": ["/chat"]}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let key = created["key"].as_str().unwrap();
    assert!(key.starts_with(created["prefix"].as_str().unwrap()));
    let id = created["id"].as_str().unwrap();

    let (status, list) = app.admin_get("/admin/api-keys").await;
    assert_eq!(status, 200);
    assert!(
        list[0].get("key").is_none() && list[0].get("key_hash").is_none(),
        "{list}"
    );
    assert_eq!(list[0]["revoked_at"], Value::Null);

    let hash = admin_api::model::hash_api_key(key);
    assert!(
        eventually(Duration::from_secs(1), || app
            .catalog
            .current()
            .api_keys
            .contains_key(&hash))
        .await,
        "a new key reaches the catalog within 1 s"
    );

    let (status, revoked) = app.admin_delete(&format!("/admin/api-keys/{id}")).await;
    assert_eq!(status, 200);
    assert!(revoked["revoked_at"].is_string());
    assert!(
        eventually(Duration::from_secs(1), || !app
            .catalog
            .current()
            .api_keys
            .contains_key(&hash))
        .await,
        "revocation reaches the catalog within 1 s"
    );
    assert_eq!(app.admin_delete("/admin/api-keys/nope").await.0, 404);
}

#[tokio::test]
async fn deliveries_endpoints() {
    let app = TestApp::spawn(Engine::Postgres).await;
    let (status, list) = app.admin_get("/admin/deliveries").await;
    assert_eq!(
        (status, list),
        (200, json!({"deliveries": [], "next_cursor": null})),
        "listing works while the table is empty"
    );

    let ns = app.create_namespace(json!({"name": "/chat"})).await;
    let (_, hook) = app
        .admin_post(
            &format!("/admin/namespaces/{ns}/webhooks"),
            json!({"url": "http://127.0.0.1:9/", "events": ["*"]}),
        )
        .await;
    let hook_id = hook["id"].as_str().unwrap();
    let store = Store::connect(&app.database_url).await.unwrap();
    store
        .insert_delivery(&NewDelivery {
            id: "msg_dead1".into(),
            webhook_id: hook_id.into(),
            event: "message".into(),
            payload: json!({"type": "event"}).to_string(),
            size: 16,
            socket_id: None,
            seq: None,
            status: DeliveryStatus::Dead,
            next_attempt_at: None,
            history: vec![
                AttemptRecord {
                    at: Timestamp::now(),
                    status: Some(500),
                    error: Some("server error".into()),
                    duration_ms: 4,
                };
                9
            ],
        })
        .await
        .unwrap();

    let (status, list) = app
        .admin_get(&format!("/admin/deliveries?webhook={hook_id}&status=dead"))
        .await;
    assert_eq!(status, 200);
    let page = list["deliveries"].as_array().unwrap();
    assert_eq!(page[0]["id"], "msg_dead1");
    assert_eq!(page[0]["attempts"], 9);
    assert!(page[0].get("payload").is_none(), "lists carry no payload");
    assert_eq!(list["next_cursor"], json!(null));
    let (_, none) = app.admin_get("/admin/deliveries?status=delivered").await;
    assert_eq!(none, json!({"deliveries": [], "next_cursor": null}));

    let (status, one) = app.admin_get("/admin/deliveries/msg_dead1").await;
    assert_eq!((status, one["last_status"].clone()), (200, json!(500)));
    assert_eq!(one["payload"], json!({"type": "event"}));
    assert_eq!(one["history"].as_array().unwrap().len(), 9);
    assert_eq!(one["history"][0]["status"], 500);
    let (status, retried) = app
        .admin_post("/admin/deliveries/msg_dead1/retry", json!({}))
        .await;
    assert_eq!((status, retried["status"].clone()), (200, json!("pending")));
    // The outbox worker makes the one manual attempt (the port refuses), and it is dead again.
    let mut again = json!(null);
    for _ in 0..100 {
        again = app.admin_get("/admin/deliveries/msg_dead1").await.1;
        if again["status"] == "dead" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(again["status"], "dead", "{again}");
    assert_eq!(again["attempts"], 10);
    assert!(
        again["history"][9]["error"]
            .as_str()
            .unwrap()
            .contains("connection"),
        "{again}"
    );
    let (status, _) = app.admin_get("/admin/deliveries/msg_nope").await;
    assert_eq!(status, 404);
    let (status, bulk) = app
        .admin_post(&format!("/admin/webhooks/{hook_id}/retry-dead"), json!({}))
        .await;
    assert_eq!((status, bulk), (200, json!({"retried": 1})));
    let (status, _) = app
        .admin_post("/admin/webhooks/nope/retry-dead", json!({}))
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn stats_openapi_health_and_metrics() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    let (status, stats) = app.admin_get("/admin/stats").await;
    assert_eq!(status, 200);
    for field in [
        "connections",
        "events_in",
        "webhooks_sent",
        "webhooks_failed",
        "emits",
    ] {
        assert!(stats.get(field).is_some(), "{field} in {stats}");
    }

    let resp = app
        .http
        .get(app.admin_url("/admin/openapi.json"))
        .send()
        .await
        .unwrap();
    let (status, doc) = status_and_json(resp).await;
    assert_eq!(status, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/admin/namespaces",
        "/admin/namespaces/{id}",
        "/admin/namespaces/{id}/webhooks",
        "/admin/webhooks/{id}",
        "/admin/webhooks/{id}/rotate-secret",
        "/admin/api-keys",
        "/admin/api-keys/{id}",
        "/admin/deliveries",
        "/admin/deliveries/{id}",
        "/admin/deliveries/{id}/retry",
        "/admin/stats",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} documented");
    }

    for url in [
        app.public_url("/healthz"),
        app.admin_url("/healthz"),
        app.public_url("/readyz"),
    ] {
        let resp = app.http.get(&url).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{url}");
    }
    let resp = app
        .http
        .get(app.admin_url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
}

#[tokio::test]
async fn admin_changes_reach_the_catalog_within_a_second() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    assert!(app.catalog.namespace("/live").is_none());
    let id = app.create_namespace(json!({"name": "/live"})).await;
    assert!(
        eventually(Duration::from_secs(1), || app
            .catalog
            .namespace("/live")
            .is_some())
        .await
    );
    let (status, _) = app
        .admin_post(
            &format!("/admin/namespaces/{id}/webhooks"),
            json!({"url": "http://127.0.0.1:9/", "events": ["message"]}),
        )
        .await;
    assert_eq!(status, 201);
    assert!(
        eventually(Duration::from_secs(1), || {
            app.catalog
                .namespace("/live")
                .is_some_and(|ns| ns.subscriptions.len() == 1)
        })
        .await
    );
}

#[tokio::test]
async fn a_change_on_one_node_reaches_another_within_a_second() {
    let a = TestApp::spawn(Engine::Postgres).await;
    let b = TestApp::spawn_on(&a.database_url).await;
    let id = a.create_namespace(json!({"name": "/shared"})).await;
    assert!(
        eventually(Duration::from_secs(1), || b
            .catalog
            .namespace("/shared")
            .is_some())
        .await
    );
    assert_eq!(
        a.admin_delete(&format!("/admin/namespaces/{id}")).await.0,
        204
    );
    assert!(
        eventually(Duration::from_secs(1), || b
            .catalog
            .namespace("/shared")
            .is_none())
        .await
    );
}

/// One bad request: method, path, body (raw), content type, whether to send the token.
struct Bad {
    method: Method,
    path: String,
    body: Option<String>,
    content_type: &'static str,
    token: Option<&'static str>,
    status: u16,
    code: &'static str,
    message: &'static str,
}

fn bad(
    method: Method,
    path: &str,
    body: &str,
    status: u16,
    code: &'static str,
    message: &'static str,
) -> Bad {
    Bad {
        method,
        path: path.into(),
        body: Some(body.into()),
        content_type: "application/json",
        token: Some("valid"),
        status,
        code,
        message,
    }
}

#[tokio::test]
async fn bad_inputs_get_clear_errors() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    let ns = app.create_namespace(json!({"name": "/taken"})).await;
    let hooks = format!("/admin/namespaces/{ns}/webhooks");
    let huge = format!("{{\"name\": \"/{}\"}}", "a".repeat(2 * 1024 * 1024));
    let post = Method::POST;
    let mut cases = vec![
        bad(
            post.clone(),
            "/admin/namespaces",
            "{\"name\": ",
            400,
            "bad_request",
            "malformed JSON",
        ),
        bad(
            post.clone(),
            "/admin/namespaces",
            "{}",
            400,
            "bad_request",
            "missing field `name`",
        ),
        // serde would read a struct from an array; found by schemathesis.
        bad(
            Method::PATCH,
            &format!("/admin/namespaces/{ns}"),
            "[null, null]",
            400,
            "bad_request",
            "must be a JSON object",
        ),
        bad(
            post.clone(),
            "/admin/namespaces",
            "{\"name\": 5}",
            400,
            "invalid_field",
            "name: invalid type",
        ),
        bad(
            post.clone(),
            "/admin/namespaces",
            "{\"name\": \"chat\"}",
            400,
            "invalid_field",
            "name: must be",
        ),
        bad(
            post.clone(),
            "/admin/namespaces",
            "{\"name\": \"/x\", \"color\": 1}",
            400,
            "invalid_field",
            "color: unknown field",
        ),
        bad(
            post.clone(),
            "/admin/namespaces",
            "{\"name\": \"/x\", \"auth\": {\"mode\": \"jwt\", \"algorithm\": \"HS256\"}}",
            400,
            "invalid_field",
            "auth.secret",
        ),
        bad(
            post.clone(),
            "/admin/namespaces",
            "{\"name\": \"/x\", \"auth\": {\"mode\": \"jwt\", \"algorithm\": \"RS256\", \"public_key\": \"junk\"}}",
            400,
            "invalid_field",
            "auth.public_key",
        ),
        bad(
            post.clone(),
            "/admin/namespaces",
            "{\"name\": \"/x\", \"auth\": {\"mode\": \"oauth\"}}",
            400,
            "invalid_field",
            "auth",
        ),
        bad(
            post.clone(),
            "/admin/namespaces",
            "{\"name\": \"/taken\"}",
            409,
            "conflict",
            "already exists",
        ),
        bad(
            post.clone(),
            "/admin/namespaces",
            &huge,
            413,
            "payload_too_large",
            "larger than",
        ),
        bad(
            Method::GET,
            "/admin/namespaces/nope",
            "",
            404,
            "not_found",
            "namespace nope",
        ),
        bad(
            Method::PATCH,
            "/admin/namespaces/nope",
            "{}",
            404,
            "not_found",
            "namespace nope",
        ),
        bad(
            Method::PATCH,
            &format!("/admin/namespaces/{ns}"),
            "{\"name\": \"bad name\"}",
            400,
            "invalid_field",
            "name",
        ),
        bad(
            post.clone(),
            &hooks,
            "{\"url\": \"ftp://x\", \"events\": [\"*\"]}",
            400,
            "invalid_field",
            "url: scheme",
        ),
        bad(
            post.clone(),
            &hooks,
            "{\"url\": \"not a url\", \"events\": [\"*\"]}",
            400,
            "invalid_field",
            "url: not a URL",
        ),
        bad(
            post.clone(),
            &hooks,
            "{\"url\": \"http://h/\", \"events\": []}",
            400,
            "invalid_field",
            "events: at least one",
        ),
        bad(
            post.clone(),
            &hooks,
            "{\"url\": \"http://h/\", \"events\": [\"ok\", \"a*b\"]}",
            400,
            "invalid_field",
            "events[1]",
        ),
        bad(
            post.clone(),
            &hooks,
            "{\"url\": \"http://h/\", \"events\": [\"*\"], \"secret\": \"plain\"}",
            400,
            "invalid_field",
            "secret: must start with whsec_",
        ),
        bad(
            post.clone(),
            &hooks,
            "{\"url\": \"http://h/\", \"events\": [\"*\"], \"timeout_ms\": 0}",
            400,
            "invalid_field",
            "timeout_ms",
        ),
        bad(
            post.clone(),
            &hooks,
            "{\"url\": \"http://h/\", \"events\": [\"*\"], \"timeout_ms\": -1}",
            400,
            "invalid_field",
            "timeout_ms",
        ),
        bad(
            post.clone(),
            &hooks,
            "{\"url\": \"http://h/\", \"events\": [\"*\"], \"headers\": {\"webhook-id\": \"x\"}}",
            400,
            "invalid_field",
            "headers.webhook-id",
        ),
        bad(
            post.clone(),
            &hooks,
            "{\"url\": \"http://h/\", \"events\": \"*\"}",
            400,
            "invalid_field",
            "events: invalid type",
        ),
        bad(
            post.clone(),
            "/admin/namespaces/nope/webhooks",
            "{\"url\": \"http://h/\", \"events\": [\"*\"]}",
            404,
            "not_found",
            "namespace nope",
        ),
        bad(
            Method::GET,
            "/admin/webhooks/nope",
            "",
            404,
            "not_found",
            "webhook nope",
        ),
        bad(
            post.clone(),
            "/admin/webhooks/nope/rotate-secret",
            "",
            404,
            "not_found",
            "webhook nope",
        ),
        bad(
            post.clone(),
            "/admin/api-keys",
            "{\"name\": \"k\", \"namespaces\": []}",
            400,
            "invalid_field",
            "namespaces",
        ),
        bad(
            post.clone(),
            "/admin/api-keys",
            "{\"name\": \"\", \"namespaces\": [\"*\"]}",
            400,
            "invalid_field",
            "name",
        ),
        bad(
            Method::GET,
            "/admin/deliveries?status=lost",
            "",
            400,
            "invalid_field",
            "status",
        ),
        bad(
            Method::GET,
            "/admin/deliveries?limit=0",
            "",
            400,
            "invalid_field",
            "limit",
        ),
        bad(
            Method::GET,
            "/admin/deliveries?since=yesterday",
            "",
            400,
            "invalid_field",
            "since",
        ),
        bad(
            Method::GET,
            "/admin/deliveries?until=1700000000",
            "",
            400,
            "invalid_field",
            "until",
        ),
        bad(
            Method::GET,
            "/admin/no-such-thing",
            "",
            404,
            "not_found",
            "no such route",
        ),
    ];
    let mut wrong_type = bad(
        post.clone(),
        "/admin/namespaces",
        "name=/x",
        415,
        "unsupported_media_type",
        "application/json",
    );
    wrong_type.content_type = "application/x-www-form-urlencoded";
    cases.push(wrong_type);
    let mut no_token = bad(
        Method::GET,
        "/admin/namespaces",
        "",
        401,
        "unauthorized",
        "bearer token",
    );
    no_token.token = None;
    cases.push(no_token);
    let mut wrong_token = bad(
        Method::GET,
        "/admin/namespaces",
        "",
        401,
        "unauthorized",
        "bearer token",
    );
    wrong_token.token = Some("wrong");
    cases.push(wrong_token);

    for case in cases {
        let mut req = app
            .http
            .request(case.method.clone(), app.admin_url(&case.path));
        match case.token {
            Some("valid") => req = req.bearer_auth(&app.token),
            Some(other) => req = req.bearer_auth(other),
            None => {}
        }
        if let Some(body) = case.body.filter(|b| !b.is_empty()) {
            req = req.header("content-type", case.content_type).body(body);
        }
        let resp = req.send().await.unwrap();
        let (status, body) = status_and_json(resp).await;
        let label = format!(
            "{} {}",
            case.method,
            case.path.chars().take(60).collect::<String>()
        );
        assert_eq!(status, case.status, "{label}: {body}");
        assert_eq!(body["error"]["code"], case.code, "{label}: {body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(case.message),
            "{label}: {message:?} should contain {:?}",
            case.message
        );
    }
    // Nothing accepted was lost, nothing bad was stored.
    let (_, list) = app.admin_get("/admin/namespaces").await;
    assert_eq!(list.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn readyz_reports_a_lost_store_and_recovers_by_itself() {
    use sqlx::{Connection, Executor, PgConnection};
    let app = TestApp::spawn(Engine::Postgres).await;
    let ready = || async {
        app.http
            .get(app.public_url("/readyz"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(ready().await, 200);
    let name = app.database_url.rsplit('/').next().unwrap().to_owned();
    let mut admin = PgConnection::connect(&bridge_tests::db::postgres_server_url())
        .await
        .unwrap();
    admin
        .execute(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE {name} WITH (FORCE)"
        )))
        .await
        .unwrap();
    let mut seen = Vec::new();
    for _ in 0..50 {
        seen.push(ready().await);
        if seen.last() == Some(&503) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        seen.last(),
        Some(&503),
        "503 while the store is gone: {seen:?}"
    );
    let (status, body) = app.admin_get("/admin/namespaces").await;
    assert!(status == 503 || status == 500, "{status} {body}");
    assert!(
        body["error"]["code"].is_string(),
        "JSON error while the store is gone: {body}"
    );

    admin
        .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .await
        .unwrap();
    let mut back = false;
    for _ in 0..100 {
        if ready().await == 200 {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        back,
        "ready again once the store is back, without a restart"
    );
}
