//! The OpenAPI 3 document, generated from the handlers' annotations.

use axum::Json;
use axum::extract::State;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{AdminState, api_keys, deliveries, namespaces, stats, webhooks};
use crate::error::{ErrorBody, ErrorDetail};
use crate::model::{
    ApiKey, ApiKeyCreated, AttemptRecord, Delivery, DeliveryStatus, DeliverySummary, JwtAlgorithm,
    JwtAuth, Namespace, NamespaceAuth, NamespacePatch, NewApiKey, NewNamespace, NewWebhook,
    SecretRotated, Webhook, WebhookCreated, WebhookPatch,
};

/// The admin API's part of the document.
#[derive(OpenApi)]
#[openapi(
    info(title = "bridge", description = "Socket.IO gateway: admin API (admin listener) and emit API (public listener)."),
    paths(
        namespaces::list, namespaces::create, namespaces::get_one, namespaces::update,
        namespaces::delete,
        webhooks::list, webhooks::create, webhooks::get_one, webhooks::update, webhooks::delete,
        webhooks::rotate_secret,
        api_keys::list, api_keys::create, api_keys::revoke,
        deliveries::list, deliveries::get_one, deliveries::retry, deliveries::retry_dead,
        stats::get_stats,
    ),
    components(schemas(
        ErrorBody, ErrorDetail, Namespace, NamespaceAuth, JwtAuth, JwtAlgorithm, NewNamespace,
        NamespacePatch, Webhook, WebhookCreated, NewWebhook, WebhookPatch, SecretRotated, ApiKey,
        ApiKeyCreated, NewApiKey, Delivery, DeliverySummary, AttemptRecord, DeliveryStatus,
        deliveries::DeliveryPage, deliveries::Retried, stats::Stats, stats::NodeStats, stats::OutboxStats,
    )),
    modifiers(&BearerSchemes),
    tags(
        (name = "namespaces", description = "Socket.IO namespaces and their auth"),
        (name = "webhooks", description = "Where client events are delivered"),
        (name = "api-keys", description = "Keys of the emit API"),
        (name = "deliveries", description = "Webhook delivery records"),
        (name = "stats", description = "Live counters"),
    )
)]
pub struct AdminDoc;

/// Declares the two bearer schemes: the admin token and emit API keys.
struct BearerSchemes;

impl Modify for BearerSchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        for name in ["admin_token", "api_key"] {
            components.add_security_scheme(
                name,
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
            );
        }
    }
}

/// The whole document: the admin API merged with the data plane's parts (the emit API).
pub fn openapi_document(parts: Vec<utoipa::openapi::OpenApi>) -> serde_json::Value {
    let mut doc = AdminDoc::openapi();
    for part in parts {
        doc.merge(part);
    }
    let mut doc = serde_json::to_value(&doc).unwrap_or_default();
    add_common_responses(&mut doc);
    doc
}

/// The answers every operation of a kind can give, added once here rather than on each
/// handler: 401 where a token is required, 400/413/415 where a JSON body is read, 404 where a
/// path names a resource, 429 on the rate-limited emit API, 503 when the store (or, for the emit
/// API, the cluster adapter) is unreachable.
fn add_common_responses(doc: &mut serde_json::Value) {
    use serde_json::json;
    let Some(paths) = doc.get_mut("paths").and_then(|p| p.as_object_mut()) else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        let Some(ops) = item.as_object_mut() else {
            continue;
        };
        for op in ops.values_mut() {
            let secured = op
                .get("security")
                .is_some_and(|s| s.as_array().is_some_and(|a| !a.is_empty()));
            let emit_api = path.starts_with("/v1/");
            let mut codes = vec![("503", "The store (or the cluster adapter) is unavailable")];
            if secured {
                codes.push(("401", "Missing or invalid bearer token"));
            }
            if op.get("requestBody").is_some() {
                codes.push((
                    "400",
                    "Malformed or invalid body; the message names the field",
                ));
                codes.push(("413", "Body too large"));
                codes.push(("415", "Content type is not application/json"));
            }
            if path.contains('{') {
                codes.push(("404", "No such resource"));
            }
            if emit_api {
                codes.push(("400", "Invalid query or body; the message names the field"));
                codes.push(("403", "This API key may not act on the namespace"));
                codes.push(("404", "No such namespace"));
                codes.push(("429", "Over the key's rate limit; see Retry-After"));
            }
            let Some(responses) = op.get_mut("responses").and_then(|r| r.as_object_mut()) else {
                continue;
            };
            for (code, description) in codes {
                responses.entry(code).or_insert_with(|| {
                    json!({
                        "description": description,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
                    })
                });
            }
        }
    }
}

/// Serves the document (public: it holds no secrets).
pub async fn serve(State(state): State<AdminState>) -> Json<serde_json::Value> {
    Json(state.openapi.as_ref().clone())
}
