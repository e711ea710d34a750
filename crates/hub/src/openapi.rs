//! The OpenAPI 3.1 document, generated: the routes' `#[utoipa::path]` attributes and the DTOs'
//! schemas (collected by `utoipa_axum` from the same list that builds the router, see
//! [`crate::api::routes`]), this module's description of the API as a whole, and the responses
//! every operation shares, added by rule in [`shared_responses`]. Served at `/api/openapi.json`
//! and browsable at `/api/docs` (Swagger UI, served from the binary).

use std::sync::OnceLock;

use serde_json::{Value, json};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::dto;

const DESCRIPTION: &str = "The hub's REST API: a consent ledger for Turkey's IYS (İleti Yönetim \
Sistemi), send-time checks, message categories, profiles and API keys, and the brand's side of \
IYS (sync status, push receiver, backfill, outbox, reconciliation).

**JSON.** Bodies and answers are JSON in camelCase, like IYS's own. The body is read as JSON \
whatever the Content-Type; at most 32 MiB. Text (strings and keys) must not contain the NUL \
character U+0000 (422 invalid_value, `field` the JSON path such as `changes[2].actor`). A body \
that does not fit its schema is refused naming the field as a JSON path (`iys.baseUrl`).

**Authentication.** Every `/api/v1` operation needs an API key: `Authorization: Bearer ihk_…` \
(IYS's push deliveries use the brand's Basic credentials instead). A key belongs to one brand \
(or to every brand: the bootstrap admin key) and has scopes: `read` (lookups, history, checks, \
verify), `write` (consent changes, profiles) and `admin` (brands, categories, API keys; implies \
read and write). `write` does not imply `read`. Each operation says the scope it needs (as the \
role in its security requirement). A key of another brand gets 404 for a brand, so keys cannot \
probe which brands exist. Each key has a request rate (429 with `Retry-After` above it). \
`/healthz`, `/readyz` and this document need no key; `/metrics` needs the provider's admin key \
(operators can scrape it without one on the metrics address).

**Errors.** Every error answer is `{\"error\":{\"code\",\"message\",\"field\",\"value\"}}`: \
`code` is IYS's H-code when the input breaks one of IYS's rules (always 422), else a snake_case \
name (see the ErrorCode schema). `field` and `value` name the offending input when there is one. \
Batches answer per item instead. A known path with another method answers 405 \
`method_not_allowed` with an `Allow` header; an unknown path 404 `not_found`. A request that \
takes over 60 s (an import's upload: an hour) is answered 503 with an empty body.

**Recipients.** Phones are normalised to E.164 (`0532 123 45 67` → `+905321234567`, national \
numbers read as Turkish), e-mails lower-cased. IYS dates (`consentDate`) are \
`YYYY-MM-DD HH:MM:SS` in Turkey's time; instants (`createdAt`, `deadline`…) are RFC 3339 in UTC.
";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "iyshub",
        description = DESCRIPTION,
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    servers((url = "http://127.0.0.1:8080", description = "`iyshub serve` with the default IYSHUB_BIND")),
    security(("apiKey" = [])),
    tags(
        (name = "operations", description = "Health, readiness, metrics and this document."),
        (name = "brands", description = "Brands: name, IYS code, IYS connection, mode."),
        (name = "consents", description = "Consent changes, current state, history, hash chain."),
        (name = "checks", description = "Send-time checks."),
        (name = "categories", description = "Message categories (marketing or transactional)."),
        (name = "profiles", description = "User ids with their addresses, for checks by profileId."),
        (name = "api-keys", description = "API keys; only their SHA-256 is stored."),
        (name = "sync", description = "The brand's side of IYS: sync status, IYS's push deliveries, backfill, outbox, reconciliation."),
        (name = "imports", description = "Bulk imports (CSV, NDJSON, XLSX) with progress and rejected rows, and streamed exports."),
        (name = "audiences", description = "Segments of who may be contacted, their counts and members, and the campaign filter."),
        (name = "analytics", description = "Consents now by channel, status and IYS state; opt-ins and opt-outs per day."),
        (name = "events", description = "State changes as CloudEvents: by polling, and to webhooks signed as Standard Webhooks say (NATS JetStream too, when configured)."),
    ),
    components(schemas(dto::error::ErrorResponse, dto::error::ErrorCode)),
    modifiers(&SecuritySchemes),
)]
struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "apiKey",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("ihk_ followed by 64 hex characters")
                    .description(Some(
                        "An API key: `Authorization: Bearer ihk_…`. An operation's security \
                         requirement names the scope it needs (a property of the key, not an \
                         OAuth scope): `read` for lookups, history, checks and verify; `write` \
                         for consent changes and profiles; `admin` for brands, categories and \
                         API keys, and everything else. A key is for one brand, or for every \
                         brand (the bootstrap admin key, from IYSHUB_ADMIN_KEY or printed once \
                         at first start). Unknown, revoked and expired keys get 401, missing \
                         scopes 403.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "iysPushBasic",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Basic)
                    .description(Some(
                        "The brand's push credentials, which IYS was given at push registration.",
                    ))
                    .build(),
            ),
        );
    }
}

/// The document, generated once.
pub fn document() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| {
        let (_, doc) = crate::api::routes::<hub_store::SqlStore>().split_for_parts();
        let mut base = ApiDoc::openapi();
        base.merge(doc);
        let mut v = serde_json::to_value(base).expect("the document serialises");
        for (name, keywords) in dto::constraints() {
            let schema = v["components"]["schemas"]
                .get_mut(name)
                .and_then(Value::as_object_mut)
                .unwrap_or_else(|| panic!("constraints for {name}, which is not a schema"));
            schema.extend(keywords.as_object().cloned().unwrap_or_default());
        }
        shared_responses(&mut v);
        v
    })
}

/// The errors a request can meet before or around its handler, documented on every operation
/// they apply to:
///
/// - every operation: 503 (over the request timeout); 500 (an internal failure) on those that
///   read the store (with a key or path parameters);
/// - with an API key (`apiKey` in its security): 401, 403 (the scope its requirement names) and
///   429 with `Retry-After` (the key's rate);
/// - with path parameters: 400 `invalid_path`; a `{brandCode}`: 400 `invalid_value` and, with a
///   key, 404 for an unknown brand or another brand's key;
/// - with a request body: 400 `invalid_json` and 413 `body_too_large`.
///
/// A response the operation documents itself keeps its description; the shared example is added
/// to it.
fn shared_responses(doc: &mut Value) {
    let components = &mut doc["components"];
    components["responses"]["Unauthorized"] = json!({
        "description": "No API key, an unknown key, a revoked key or an expired key (`Authorization: Bearer <key>`).",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}, "examples": {
            "unauthorized": {"summary": "No or unknown API key", "value": error("unauthorized", "an API key is required: Authorization: Bearer <key>")},
        }}},
    });
    components["responses"]["TooManyRequests"] = json!({
        "description": "Over this API key's request rate (IYSHUB_RATE_LIMIT per second); `Retry-After` says when to try again.",
        "headers": {"Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer", "minimum": 1}}},
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}, "examples": {
            "rateLimited": {"summary": "Over the key's rate", "value": error("rate_limited", "this API key is over its request rate; slow down")},
        }}},
    });
    components["responses"]["Internal"] = json!({
        "description": "An internal failure; the cause is in the hub's log.",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}, "examples": {
            "internal": {"summary": "Internal failure", "value": error("internal", "internal error; see the hub's log")},
        }}},
    });
    components["responses"]["Timeout"] = json!({
        "description": "The request took over 60 s (or waited that long for its turn); the body is empty.",
    });
    let Some(paths) = doc["paths"].as_object_mut() else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        let path_params: Vec<&str> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            .collect();
        for (method, op) in item.iter_mut() {
            if !METHODS.contains(&method.as_str()) {
                continue;
            }
            // An operation for API keys names the scope it needs as its requirement's role (none:
            // any valid key).
            let keyed: Option<Option<String>> = op["security"].as_array().and_then(|reqs| {
                reqs.iter()
                    .find_map(|r| r.get("apiKey"))
                    .map(|roles| roles.get(0).and_then(Value::as_str).map(str::to_owned))
            });
            let has_body = op.get("requestBody").is_some();
            let responses = &mut op["responses"];
            if let Some(scope) = &keyed {
                refer(responses, "401", "Unauthorized");
                if let Some(scope) = scope {
                    let brand = if path_params.contains(&"brandCode") {
                        " for this brand"
                    } else {
                        ""
                    };
                    shared(
                        responses,
                        "403",
                        &format!("The API key lacks the `{scope}` scope{brand}."),
                        "forbidden",
                        &format!("The key lacks the {scope} scope"),
                        error(
                            "forbidden",
                            &format!("this API key lacks the {scope} scope"),
                        ),
                    );
                }
                refer(responses, "429", "TooManyRequests");
            }
            if path_params.contains(&"brandCode") {
                shared(
                    responses,
                    "400",
                    "Bad request (see the error code).",
                    "badBrandCode",
                    "brandCode is not a positive integer",
                    json!({"error": {"code": "invalid_value", "message": "\"abc\" is not a valid brandCode: expected a positive integer (the brand's IYS number)", "field": "brandCode", "value": "abc"}}),
                );
                if keyed.is_some() {
                    shared(
                        responses,
                        "404",
                        "Not found.",
                        "brandNotFound",
                        "No such brand (or a key of another brand)",
                        error("not_found", "brand 600123 not found"),
                    );
                }
            }
            if let Some(first) = path_params.first() {
                shared(
                    responses,
                    "400",
                    "Bad request (see the error code).",
                    "invalidPath",
                    "A path segment that is not UTF-8",
                    error(
                        "invalid_path",
                        &format!("Invalid URL: Invalid UTF-8 in `{first}`"),
                    ),
                );
            }
            if has_body {
                shared(
                    responses,
                    "400",
                    "Bad request (see the error code).",
                    "invalidJson",
                    "Not JSON",
                    error(
                        "invalid_json",
                        "the body is not valid JSON: key must be a string at line 1 column 2",
                    ),
                );
                shared(
                    responses,
                    "413",
                    "Payload too large.",
                    "bodyTooLarge",
                    "Over 32 MiB",
                    error("body_too_large", "the body is over 33554432 bytes"),
                );
            }
            if keyed.is_some() || !path_params.is_empty() {
                refer(responses, "500", "Internal");
            }
            refer(responses, "503", "Timeout");
        }
    }
}

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

fn error(code: &str, message: &str) -> Value {
    json!({"error": {"code": code, "message": message}})
}

/// `responses[status]` as a reference to a shared response, unless the operation has its own.
fn refer(responses: &mut Value, status: &str, name: &str) {
    if responses.get(status).is_none() {
        responses[status] = json!({"$ref": format!("#/components/responses/{name}")});
    }
}

/// Adds a shared error example to `responses[status]`, creating the response when the operation
/// has none.
fn shared(
    responses: &mut Value,
    status: &str,
    description: &str,
    name: &str,
    summary: &str,
    value: Value,
) {
    let response = &mut responses[status];
    if response.get("$ref").is_some() {
        return;
    }
    if response.get("description").is_none() {
        response["description"] = json!(description);
    }
    let content = &mut response["content"]["application/json"];
    if content.get("schema").is_none() {
        content["schema"] = json!({"$ref": "#/components/schemas/Error"});
    }
    let examples = &mut content["examples"];
    if examples.get(name).is_none() {
        examples[name] = json!({"summary": summary, "value": value});
    }
}
