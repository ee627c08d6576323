//! Read-your-writes for the admin API: a write answers only once this node serves it.
//!
//! Every admin write bumps `catalog_version`; the catalog reloads and the gateway registers
//! namespaces in the background. Without waiting, a client that connects right after a 201 could
//! get `Invalid namespace`, or a new API key a 401, on the very node that took the write.

use std::time::Duration;

use admin_api::Store;
use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use tokio::sync::watch;

/// Longest wait before a write answers anyway (the change still applies, a little later).
const PATIENCE: Duration = Duration::from_secs(2);

/// What the wait needs: the store's version and the version this node serves.
#[derive(Clone)]
pub struct CatalogSync {
    /// The store.
    pub store: Store,
    /// The catalog version whose namespaces the gateway serves.
    pub applied: watch::Receiver<i64>,
}

impl CatalogSync {
    /// Waits until this node serves at least the store's current catalog version.
    async fn caught_up(&self) {
        let Ok(version) = self.store.catalog_version().await else {
            return;
        };
        let mut applied = self.applied.clone();
        if tokio::time::timeout(PATIENCE, applied.wait_for(|v| *v >= version))
            .await
            .is_err()
        {
            tracing::warn!(version, "admin write answered before this node applied it");
        }
    }
}

/// Middleware: after a successful non-GET request, waits for the catalog to catch up.
pub async fn read_your_writes(
    State(sync): State<CatalogSync>,
    request: Request,
    next: Next,
) -> Response {
    let write = !matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    let response = next.run(request).await;
    if write && response.status().is_success() {
        sync.caught_up().await;
    }
    response
}
