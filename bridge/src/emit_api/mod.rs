//! The emit API (SPEC 6): how backends push to clients, on the public listener under `/v1/`.
//!
//! - [`auth`]: API keys from the in-memory catalog, per-key rate limits, usage records.
//! - [`model`]: request and answer bodies and their validation.
//! - [`handlers`]: each endpoint, through socketioxide's operators so that an adapter reaches
//!   every node.

pub mod auth;
pub mod handlers;
pub mod model;

use std::sync::Arc;

use admin_api::error::not_found_fallback;
use admin_api::extract::MAX_BODY_BYTES;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{any, get, post};
use socketioxide::adapter::Adapter;
use utoipa::OpenApi;

use crate::socket::Gateway;
use crate::webhook::openapi::Webhooks;
use auth::KeyActivity;

/// What every emit API handler needs.
pub struct EmitState<A: Adapter> {
    /// The Socket.IO gateway (operators, catalog, counters, cluster).
    pub gateway: Arc<Gateway<A>>,
    /// Per-key rate limits and usage.
    pub keys: Arc<KeyActivity>,
}

impl<A: Adapter> Clone for EmitState<A> {
    fn clone(&self) -> Self {
        Self {
            gateway: self.gateway.clone(),
            keys: self.keys.clone(),
        }
    }
}

/// The `/v1/*` routes.
pub fn router<A: Adapter>(state: EmitState<A>) -> Router {
    Router::new()
        .route("/v1/emit", post(handlers::emit::<A>))
        .route("/v1/emit/batch", post(handlers::batch::<A>))
        .route("/v1/join", post(handlers::join::<A>))
        .route("/v1/leave", post(handlers::leave::<A>))
        .route("/v1/disconnect", post(handlers::disconnect::<A>))
        .route("/v1/sockets", get(handlers::sockets::<A>))
        .route("/v1/rooms", get(handlers::rooms::<A>))
        .route("/v1/rooms/{room}/members", get(handlers::members::<A>))
        .route("/v1/{*rest}", any(not_found_fallback))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// The data plane's part of the OpenAPI document: the emit API, and the `webhooks` section.
#[derive(OpenApi)]
#[openapi(
    paths(handlers::emit, handlers::batch, handlers::join, handlers::leave, handlers::disconnect,
        handlers::sockets, handlers::rooms, handlers::members),
    components(schemas(model::EmitRequest, model::EmitResponse, model::AckEntry, model::BatchRequest,
        model::BatchResponse, model::BatchResult, model::RoomsRequest, model::DisconnectRequest,
        model::OkResponse, model::SocketEntry, model::SocketsResponse, model::RoomsResponse,
        model::Member, model::MembersResponse)),
    modifiers(&Webhooks),
    tags(
        (name = "emit", description = "Emit API (public listener): send events to clients"),
        (name = "rooms", description = "Emit API (public listener): rooms, listings, disconnects"),
        (name = "webhooks", description = "Requests the bridge sends to webhook URLs"),
    )
)]
pub struct EmitDoc;
