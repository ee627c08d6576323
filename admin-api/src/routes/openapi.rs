//! The OpenAPI 3.1 document, generated from the handlers' annotations and the types' schemas.
//!
//! What the annotations cannot say is added here, once for every operation: the error answers
//! each kind of operation can give (as shared `components/responses`, each naming its `code`s),
//! and tagged unions rewritten as generators read them best: a `oneOf` of named schemas with a
//! `discriminator` ([`tagged_variants`], [`discriminated_union`]).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use utoipa::openapi::schema::{Discriminator, Object, OneOf, Schema};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Components, Ref, RefOr};
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
    info(title = "bridge", description = "Socket.IO gateway. The admin API (`/admin/*`, bearer \
        `admin_token`) is served on the admin listener, the emit API (`/v1/*`, bearer `api_key`) on \
        the public one. `webhooks` describes the requests the bridge sends to webhook URLs. Every \
        error answers `{\"error\": {\"code\", \"message\"}}`; each response names its codes."),
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
    modifiers(&BearerSchemes, &NamespaceAuthUnion),
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
        for (name, description) in [
            ("admin_token", "The admin token (`BRIDGE_ADMIN_TOKEN`)"),
            (
                "api_key",
                "An API key (`bk_…`) made with `POST /admin/api-keys`",
            ),
        ] {
            components.add_security_scheme(
                name,
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .description(Some(description))
                        .build(),
                ),
            );
        }
    }
}

/// `NamespaceAuth` (`{"mode": "none"}` or `{"mode": "jwt", …JwtAuth}`) as a discriminated union of
/// `NamespaceAuthNone` and `NamespaceAuthJwt`.
struct NamespaceAuthUnion;

impl Modify for NamespaceAuthUnion {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let Some(RefOr::T(union)) = components.schemas.get("NamespaceAuth").cloned() else {
            return;
        };
        let mut names = Vec::new();
        for (mode, object) in tagged_variants(&union, "mode", components) {
            let name = format!("NamespaceAuth{}", pascal_case(&mode));
            components
                .schemas
                .insert(name.clone(), RefOr::T(Schema::Object(object)));
            names.push((mode, name));
        }
        let description = "How sockets of a namespace authenticate, by `mode`.";
        components.schemas.insert(
            "NamespaceAuth".into(),
            RefOr::T(discriminated_union("mode", description, &names)),
        );
    }
}

/// `snake_case` or `lower` as `PascalCase`: the name of a variant's schema.
pub fn pascal_case(name: &str) -> String {
    name.split('_')
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|first| first.to_uppercase().chain(chars).collect::<String>())
                .unwrap_or_default()
        })
        .collect()
}

/// The variants of a serde internally tagged enum's schema, as utoipa writes it (a `oneOf` of
/// objects that carry the tag property; a newtype variant as the `allOf` of its type and the
/// tag), each flattened into one object: `(tag value, object)`. References are resolved in
/// `components`.
pub fn tagged_variants(
    union: &Schema,
    tag: &str,
    components: &Components,
) -> Vec<(String, Object)> {
    let Schema::OneOf(one_of) = union else {
        return Vec::new();
    };
    let mut variants = Vec::new();
    for item in &one_of.items {
        let Some(object) = flatten(item, components) else {
            continue;
        };
        let value = match object.properties.get(tag) {
            Some(RefOr::T(Schema::Object(tag_schema))) => tag_schema
                .enum_values
                .as_ref()
                .and_then(|values| values.first())
                .and_then(|value| value.as_str())
                .map(str::to_owned),
            _ => None,
        };
        if let Some(value) = value {
            variants.push((value, object));
        }
    }
    variants
}

/// One object of an object schema, a reference to one, or the `allOf` of such.
fn flatten(schema: &RefOr<Schema>, components: &Components) -> Option<Object> {
    match schema {
        RefOr::Ref(reference) => {
            let name = reference.ref_location.rsplit('/').next()?;
            flatten(components.schemas.get(name)?, components)
        }
        RefOr::T(Schema::Object(object)) => Some(object.clone()),
        RefOr::T(Schema::AllOf(all_of)) => {
            let mut merged = Object::new();
            for part in &all_of.items {
                merge_object(&mut merged, &flatten(part, components)?);
            }
            if all_of.description.is_some() {
                merged.description.clone_from(&all_of.description);
            }
            Some(merged)
        }
        _ => None,
    }
}

/// Adds `other`'s properties and required names to `target` (and its description, its closed
/// `additionalProperties`, when `target` has none).
pub fn merge_object(target: &mut Object, other: &Object) {
    target.schema_type = other.schema_type.clone();
    for (name, property) in &other.properties {
        target.properties.insert(name.clone(), property.clone());
    }
    for name in &other.required {
        if !target.required.contains(name) {
            target.required.push(name.clone());
        }
    }
    if target.description.is_none() {
        target.description.clone_from(&other.description);
    }
    if target.additional_properties.is_none() {
        target
            .additional_properties
            .clone_from(&other.additional_properties);
    }
}

/// A `oneOf` of the named schemas with a `discriminator` on `tag`: `variants` are `(tag value,
/// schema name)`; several values may name one schema.
pub fn discriminated_union(tag: &str, description: &str, variants: &[(String, String)]) -> Schema {
    let mut one_of = OneOf::new();
    let mut mapping = BTreeMap::new();
    for (value, name) in variants {
        let reference = format!("#/components/schemas/{name}");
        if !mapping.values().any(|r| r == &reference) {
            one_of.items.push(RefOr::Ref(Ref::new(reference.clone())));
        }
        mapping.insert(value.clone(), reference);
    }
    let mut discriminator = Discriminator::new(tag);
    discriminator.mapping = mapping;
    one_of.discriminator = Some(discriminator);
    one_of.description = Some(description.to_owned());
    Schema::OneOf(one_of)
}

/// Every `error.code` the REST APIs answer with, its HTTP status, and when.
pub const ERROR_CODES: [(&str, u16, &str); 14] = [
    (
        "bad_request",
        400,
        "The body or query is not JSON, or not of the expected shape",
    ),
    (
        "invalid_field",
        400,
        "A field is well-typed but its value is not allowed",
    ),
    ("unauthorized", 401, "No or a wrong bearer token"),
    (
        "forbidden",
        403,
        "The API key may not act on this namespace",
    ),
    ("not_found", 404, "No such resource or route"),
    (
        "conflict",
        409,
        "A unique name is taken, or a delivery is being sent",
    ),
    (
        "payload_too_large",
        413,
        "The body (or the message to clients) is too large",
    ),
    (
        "unsupported_media_type",
        415,
        "The content type is not application/json",
    ),
    (
        "rate_limited",
        429,
        "Over the API key's rate limit; see Retry-After",
    ),
    (
        "internal",
        500,
        "Something failed inside (details are logged, never sent)",
    ),
    ("unavailable", 503, "The store cannot be reached"),
    (
        "adapter_unavailable",
        503,
        "The link to the other nodes is down",
    ),
    (
        "shutting_down",
        503,
        "This node is stopping; retry on another",
    ),
    (
        "draining",
        503,
        "This node takes no new connection; connect to another",
    ),
];

/// The shared error answers: `(name, status, codes, description)`.
const ERROR_RESPONSES: [(&str, u16, &[&str], &str); 10] = [
    (
        "BadRequest",
        400,
        &["bad_request", "invalid_field"],
        "Malformed or invalid body or query; the message names the field",
    ),
    (
        "Unauthorized",
        401,
        &["unauthorized"],
        "Missing or invalid bearer token",
    ),
    (
        "Forbidden",
        403,
        &["forbidden"],
        "This API key may not act on the namespace",
    ),
    (
        "NotFound",
        404,
        &["not_found"],
        "No such resource (for the emit API: no such namespace)",
    ),
    (
        "PayloadTooLarge",
        413,
        &["payload_too_large"],
        "Body too large",
    ),
    (
        "UnsupportedMediaType",
        415,
        &["unsupported_media_type"],
        "Content type is not application/json",
    ),
    (
        "RateLimited",
        429,
        &["rate_limited"],
        "Over the key's rate limit; retry after `Retry-After` seconds",
    ),
    ("Internal", 500, &["internal"], "Internal error"),
    (
        "StoreUnavailable",
        503,
        &["unavailable"],
        "The store is unreachable; retry later",
    ),
    (
        "ClusterUnavailable",
        503,
        &["adapter_unavailable", "shutting_down"],
        "The link to the other nodes is down, or this node is stopping; retry (on another node)",
    ),
];

/// The whole document: the admin API merged with the data plane's parts (the emit API and the
/// webhooks), as JSON.
pub fn openapi_document(parts: Vec<utoipa::openapi::OpenApi>) -> serde_json::Value {
    let mut doc = AdminDoc::openapi();
    for mut part in parts {
        // `merge` leaves `webhooks` out.
        if let Some(webhooks) = part.webhooks.take() {
            doc.webhooks
                .get_or_insert_with(Default::default)
                .merge(webhooks);
        }
        doc.merge(part);
    }
    if let Some(components) = doc.components.as_mut() {
        flatten_all_of(components);
        type_delivery_payload(components);
    }
    let mut doc = serde_json::to_value(&doc).unwrap_or_default();
    add_error_components(&mut doc);
    add_common_responses(&mut doc);
    doc
}

/// Each schema written as an `allOf` (utoipa's form of `#[serde(flatten)]`, e.g. `WebhookCreated`:
/// a `Webhook` and its `secret`) as the one object it is, which every generator reads alike.
fn flatten_all_of(components: &mut Components) {
    let flattened: Vec<(String, Object)> = components
        .schemas
        .iter()
        .filter(|(_, schema)| matches!(schema, RefOr::T(Schema::AllOf(_))))
        .filter_map(|(name, schema)| Some((name.clone(), flatten(schema, components)?)))
        .collect();
    for (name, object) in flattened {
        components
            .schemas
            .insert(name, RefOr::T(Schema::Object(object)));
    }
}

/// A delivery's `payload` is the body that was sent: one of the `webhooks` bodies, when the
/// document describes them (`WebhookBody`, from the data plane's part).
fn type_delivery_payload(components: &mut Components) {
    if !components.schemas.contains_key("WebhookBody") {
        return;
    }
    if let Some(RefOr::T(Schema::Object(delivery))) = components.schemas.get_mut("Delivery")
        && let Some(payload) = delivery.properties.get_mut("payload")
    {
        *payload = RefOr::Ref(Ref::from_schema_name("WebhookBody"));
    }
}

/// `ErrorCode` (every code, described) as the type of `ErrorDetail.code`, and the shared error
/// responses under `components/responses`.
fn add_error_components(doc: &mut serde_json::Value) {
    use serde_json::json;
    let codes: Vec<&str> = ERROR_CODES.iter().map(|(code, ..)| *code).collect();
    let described: Vec<String> = ERROR_CODES
        .iter()
        .map(|(code, status, why)| format!("- `{code}` ({status}): {why}"))
        .collect();
    let components = &mut doc["components"];
    components["schemas"]["ErrorCode"] = json!({
        "type": "string",
        "enum": codes,
        "description": format!("Stable machine-readable code of an error:\n{}", described.join("\n")),
    });
    if let Some(code) = components["schemas"]["ErrorDetail"]["properties"].get_mut("code") {
        *code = json!({"$ref": "#/components/schemas/ErrorCode"});
    }
    let mut responses = serde_json::Map::new();
    for (name, _, codes, description) in ERROR_RESPONSES {
        let codes: Vec<String> = codes.iter().map(|c| format!("`{c}`")).collect();
        let mut response = json!({
            "description": format!("{description} ({})", codes.join(", ")),
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
        });
        if name == "RateLimited" {
            response["headers"] = json!({"Retry-After": {
                "description": "Seconds to wait before the next request",
                "required": true,
                "schema": {"type": "integer", "minimum": 1},
            }});
        }
        responses.insert(name.to_owned(), response);
    }
    components["responses"] = serde_json::Value::Object(responses);
}

/// The answers every operation of a kind can give, added once here rather than on each
/// handler (an answer a handler describes itself is kept): 401 where a token is required,
/// 400/413/415 where a JSON body is read, 404 where a path names a resource, 500 and 503 where
/// the store is read; on the emit API 400 (query or body), 403 and 404 (the namespace), 429 and
/// 503 (the cluster), except on a batch, whose messages get their own errors.
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
            let batch = path == "/v1/emit/batch";
            let mut codes = Vec::new();
            if secured {
                codes.push(("401", "Unauthorized"));
            }
            if op.get("requestBody").is_some() {
                codes.extend([
                    ("400", "BadRequest"),
                    ("413", "PayloadTooLarge"),
                    ("415", "UnsupportedMediaType"),
                ]);
            }
            if emit_api {
                codes.extend([("400", "BadRequest"), ("429", "RateLimited")]);
                if !batch {
                    codes.extend([
                        ("403", "Forbidden"),
                        ("404", "NotFound"),
                        ("503", "ClusterUnavailable"),
                    ]);
                }
            } else if path != "/admin/stats" {
                // Stats are counters in memory; everything else reads or writes the store.
                codes.extend([("500", "Internal"), ("503", "StoreUnavailable")]);
                if path.contains('{') {
                    codes.push(("404", "NotFound"));
                }
            }
            let Some(responses) = op.get_mut("responses").and_then(|r| r.as_object_mut()) else {
                continue;
            };
            for (code, name) in codes {
                responses
                    .entry(code)
                    .or_insert_with(|| json!({"$ref": format!("#/components/responses/{name}")}));
            }
        }
    }
}

/// Serves the document (public: it holds no secrets).
pub async fn serve(State(state): State<AdminState>) -> Json<serde_json::Value> {
    Json(state.openapi.as_ref().clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ApiError;

    /// Every error the APIs can answer is in [`ERROR_CODES`] with its status, and every shared
    /// response names codes of its own status. (A new `ApiError` variant fails to compile here
    /// until it is added.)
    #[test]
    fn error_codes_are_all_documented() {
        let every = |e: &ApiError| match e {
            ApiError::BadRequest(_)
            | ApiError::Invalid { .. }
            | ApiError::Unauthorized
            | ApiError::Forbidden(_)
            | ApiError::NotFound(_)
            | ApiError::Conflict(_)
            | ApiError::PayloadTooLarge(_)
            | ApiError::MessageTooLarge(..)
            | ApiError::UnsupportedMediaType
            | ApiError::RateLimited(_)
            | ApiError::Internal(_)
            | ApiError::Unavailable(_)
            | ApiError::AdapterUnavailable(_)
            | ApiError::ShuttingDown
            | ApiError::Draining => e.status_and_code(),
        };
        let errors = [
            ApiError::BadRequest(String::new()),
            ApiError::invalid("f", "m"),
            ApiError::Unauthorized,
            ApiError::Forbidden(String::new()),
            ApiError::NotFound(String::new()),
            ApiError::Conflict(String::new()),
            ApiError::PayloadTooLarge(1),
            ApiError::MessageTooLarge(2, 1),
            ApiError::UnsupportedMediaType,
            ApiError::RateLimited(1),
            ApiError::Internal(String::new()),
            ApiError::Unavailable(String::new()),
            ApiError::AdapterUnavailable(String::new()),
            ApiError::ShuttingDown,
            ApiError::Draining,
        ];
        for error in &errors {
            let (status, code) = every(error);
            assert!(
                ERROR_CODES
                    .iter()
                    .any(|(c, s, _)| *c == code && *s == status.as_u16()),
                "{code} ({status}) is not in ERROR_CODES"
            );
        }
        for (name, status, codes, _) in ERROR_RESPONSES {
            for code in codes {
                assert!(
                    ERROR_CODES
                        .iter()
                        .any(|(c, s, _)| c == code && *s == status),
                    "{name}: {code} is not a {status} code"
                );
            }
        }
    }

    #[test]
    fn namespace_auth_is_a_discriminated_union_of_named_schemas() {
        let doc = openapi_document(Vec::new());
        let schemas = &doc["components"]["schemas"];
        let auth = &schemas["NamespaceAuth"];
        assert_eq!(auth["discriminator"]["propertyName"], "mode");
        assert_eq!(
            auth["discriminator"]["mapping"]["jwt"],
            "#/components/schemas/NamespaceAuthJwt"
        );
        let jwt = &schemas["NamespaceAuthJwt"];
        assert_eq!(jwt["properties"]["mode"]["enum"][0], "jwt");
        assert!(jwt["properties"]["algorithm"].is_object());
        assert!(
            jwt["required"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r == "mode")
        );
        assert_eq!(
            schemas["NamespaceAuthNone"]["properties"]["mode"]["enum"][0],
            "none"
        );
    }
}
