//! Starts the real `Application` in-process on port 0, as `main` does.

use std::net::SocketAddr;
use std::time::Duration;

use bridge::config::{Config, Settings};
use bridge::{Application, catalog::Catalog};
use tokio::sync::oneshot;

use crate::db::{Engine, fresh_database};

/// A running bridge with its addresses and admin token.
pub struct TestApp {
    /// Public listener.
    pub public: SocketAddr,
    /// Admin listener.
    pub admin: SocketAddr,
    /// Admin bearer token.
    pub token: String,
    /// The store URL it runs on.
    pub database_url: String,
    /// Its in-memory catalog.
    pub catalog: Catalog,
    /// HTTP client for the tests.
    pub http: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
}

impl TestApp {
    /// A bridge on a fresh database of `engine`.
    pub async fn spawn(engine: Engine) -> Self {
        let url = fresh_database(engine).await;
        Self::spawn_on(&url).await
    }

    /// A bridge on an existing database (several nodes share one).
    pub async fn spawn_on(database_url: &str) -> Self {
        Self::spawn_with(settings(database_url)).await
    }

    /// A bridge with explicit settings (listen addresses and token must be set; see [`settings`]).
    pub async fn spawn_with(settings: Settings) -> Self {
        Self::spawn_config(Config::from_settings(settings).expect("valid test config")).await
    }

    /// A bridge with a configuration built by the test (e.g. its declarations replaced).
    pub async fn spawn_config(config: Config) -> Self {
        bridge::telemetry::init(&config.rust_log, &config.node_id);
        let database_url = config.database_url.clone();
        let app = Application::build(config).await.expect("bridge starts");
        let (stop, stopped) = oneshot::channel::<()>();
        let public = app.public_addr();
        let admin = app.admin_addr();
        let token = app.admin_token().to_owned();
        let catalog = app.catalog().clone();
        tokio::spawn(app.run_until(async {
            let _ = stopped.await;
        }));
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("http client");
        Self {
            public,
            admin,
            token,
            database_url,
            catalog,
            http,
            stop: Some(stop),
        }
    }

    /// `http://admin-addr{path}`.
    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }

    /// `http://public-addr{path}`.
    pub fn public_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.public)
    }

    /// An authorized admin request.
    pub fn admin(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, self.admin_url(path))
            .bearer_auth(&self.token)
    }

    /// Sends an admin request (with a JSON body when given) and returns status and body.
    pub async fn admin_send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let mut req = self.admin(method, path);
        if let Some(body) = body {
            req = req.json(&body);
        }
        status_and_json(req.send().await.expect("request")).await
    }

    /// POSTs JSON to the admin API.
    pub async fn admin_post(
        &self,
        path: &str,
        body: serde_json::Value,
    ) -> (u16, serde_json::Value) {
        self.admin_send(reqwest::Method::POST, path, Some(body))
            .await
    }

    /// GETs from the admin API.
    pub async fn admin_get(&self, path: &str) -> (u16, serde_json::Value) {
        self.admin_send(reqwest::Method::GET, path, None).await
    }

    /// PATCHes JSON on the admin API.
    pub async fn admin_patch(
        &self,
        path: &str,
        body: serde_json::Value,
    ) -> (u16, serde_json::Value) {
        self.admin_send(reqwest::Method::PATCH, path, Some(body))
            .await
    }

    /// DELETEs on the admin API.
    pub async fn admin_delete(&self, path: &str) -> (u16, serde_json::Value) {
        self.admin_send(reqwest::Method::DELETE, path, None).await
    }

    /// Creates a namespace and returns its id.
    pub async fn create_namespace(&self, body: serde_json::Value) -> String {
        let (status, ns) = self.admin_post("/admin/namespaces", body).await;
        assert_eq!(status, 201, "{ns}");
        ns["id"].as_str().expect("id").to_owned()
    }

    /// Stops the bridge (graceful shutdown).
    pub fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The settings of [`TestApp::spawn_on`]: both listeners on port 0, a random admin token, warnings
/// only; change what a test needs before [`TestApp::spawn_with`].
pub fn settings(database_url: &str) -> Settings {
    Settings {
        listen: Some("127.0.0.1:0".into()),
        admin_listen: Some("127.0.0.1:0".into()),
        database_url: Some(database_url.to_owned()),
        admin_token: Some(format!("test-{}", uuid::Uuid::new_v4())),
        rust_log: Some("warn".into()),
        ..Settings::default()
    }
}

/// Status code and JSON body (`null` when the body is not JSON).
pub async fn status_and_json(resp: reqwest::Response) -> (u16, serde_json::Value) {
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
    )
}

/// Polls `check` every 20 ms for up to `within`; true as soon as it holds.
pub async fn eventually(within: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if check() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
