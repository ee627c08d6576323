//! The admin REST router (SPEC 7): `/admin/*` behind the admin bearer token.

mod api_keys;
mod auth;
mod deliveries;
mod namespaces;
mod openapi;
mod stats;
mod webhooks;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::routing::{get, post};

pub use auth::AdminToken;
pub use openapi::{
    AdminDoc, discriminated_union, merge_object, openapi_document, pascal_case, tagged_variants,
};
pub use stats::{NodeStats, OutboxStats, Stats, StatsSource};

use crate::error::not_found_fallback;
use crate::extract::MAX_BODY_BYTES;
use crate::store::Store;

/// What every admin handler needs.
#[derive(Clone)]
pub struct AdminState {
    /// The store.
    pub store: Store,
    /// The bearer token requests must carry.
    pub token: AdminToken,
    /// Live counters of the data plane.
    pub stats: Arc<dyn StatsSource>,
    /// The OpenAPI document served at `/admin/openapi.json`.
    pub openapi: Arc<serde_json::Value>,
    /// Which webhook destinations are allowed.
    pub url_policy: crate::model::UrlPolicy,
}

/// The `/admin/*` routes; `/admin/openapi.json` is public, everything else needs the token.
pub fn router(state: AdminState) -> Router {
    let protected = Router::new()
        .route(
            "/admin/namespaces",
            get(namespaces::list).post(namespaces::create),
        )
        .route(
            "/admin/namespaces/{id}",
            get(namespaces::get_one)
                .patch(namespaces::update)
                .delete(namespaces::delete),
        )
        .route(
            "/admin/namespaces/{id}/webhooks",
            get(webhooks::list).post(webhooks::create),
        )
        .route(
            "/admin/webhooks/{id}",
            get(webhooks::get_one)
                .patch(webhooks::update)
                .delete(webhooks::delete),
        )
        .route(
            "/admin/webhooks/{id}/rotate-secret",
            post(webhooks::rotate_secret),
        )
        .route(
            "/admin/api-keys",
            get(api_keys::list).post(api_keys::create),
        )
        .route(
            "/admin/api-keys/{id}",
            axum::routing::delete(api_keys::revoke),
        )
        .route("/admin/deliveries", get(deliveries::list))
        .route("/admin/deliveries/{id}", get(deliveries::get_one))
        .route("/admin/deliveries/{id}/retry", post(deliveries::retry))
        .route(
            "/admin/webhooks/{id}/retry-dead",
            post(deliveries::retry_dead),
        )
        .route("/admin/stats", get(stats::get_stats))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_admin_token,
        ));
    Router::new()
        .route("/admin/openapi.json", get(openapi::serve))
        .merge(protected)
        .fallback(not_found_fallback)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}
