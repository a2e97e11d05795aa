//! The API described by itself: `GET /openapi.json` (OpenAPI 3.1) and `GET /docs` (Swagger UI,
//! its assets compiled into the binary by `utoipa-swagger-ui`'s `vendored` feature: nothing is
//! loaded from outside).
//!
//! Why it cannot drift: routes are registered through `utoipa-actix-web`, so the document's
//! paths are collected from the very `service(…)` calls that register the handlers, and each
//! handler's `#[utoipa::path]` (parameters, bodies, answers) sits on the handler itself. The few
//! routes that are not handlers of that kind (the WebSocket upgrade and MCP are, health and
//! metrics are; `/docs` and `/dashboard` are static) are added here by hand and checked by
//! `tests/openapi.rs` against the running server.

use actix_web::{get, web, HttpResponse};
use serde::Serialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::OpenApi as Document;
use utoipa::{Modify, OpenApi, ToSchema};
use utoipa_swagger_ui::SwaggerUi;

/// Every error body (SPEC section 7).
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    pub code: ErrorCode,
    /// A human sentence.
    pub message: String,
    /// E.g. `field` for `validation_failed`, `retry_after_seconds` for `rate_limited`.
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
}

/// The refusals any `/v1` operation may answer, with the error body (SPEC section 7): named in
/// each operation's `responses(…)` instead of two lines repeated on every handler.
pub struct Refusals;

impl utoipa::IntoResponses for Refusals {
    fn responses() -> std::collections::BTreeMap<
        String,
        utoipa::openapi::RefOr<utoipa::openapi::response::Response>,
    > {
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder, ResponsesBuilder};
        let error = |description: &str| {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                        .build(),
                )
                .build()
        };
        ResponsesBuilder::new()
            .response(
                "4XX",
                error(
                    "Refused: bad_request 400, unauthenticated 401, permission_denied 403, \
                     not_found 404, conflict 409, payload_too_large 413, validation_failed 422, \
                     rate_limited 429",
                ),
            )
            .response(
                "5XX",
                error("internal 500, unavailable 503 (with Retry-After), mailbox_full 507"),
            )
            .build()
            .into()
    }
}

/// The codes of SPEC section 7 and their HTTP status.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// 400: unparsable body or frame, unknown field.
    BadRequest,
    /// 422: a rule of SPEC sections 2–3 broken; `details.field` names it.
    ValidationFailed,
    /// 401
    Unauthenticated,
    /// 403
    PermissionDenied,
    /// 404
    NotFound,
    /// 409
    Conflict,
    /// 413
    PayloadTooLarge,
    /// 429, with `Retry-After`.
    RateLimited,
    /// 507
    MailboxFull,
    /// 503, with `Retry-After`.
    Unavailable,
    /// 500
    Internal,
}

/// A JSON-RPC 2.0 message as `POST /mcp` takes it (its `params` are the MCP method's).
#[derive(Serialize, ToSchema)]
pub struct JsonRpcMessage {
    /// Always `"2.0"`.
    #[schema(value_type = String, pattern = "^2\\.0$")]
    pub jsonrpc: String,
    /// E.g. `initialize`, `server/discover`, `tools/list`, `tools/call`.
    pub method: String,
    /// Absent for a notification.
    #[schema(value_type = Option<Object>)]
    pub id: Option<serde_json::Value>,
    #[schema(value_type = Option<Object>)]
    pub params: Option<serde_json::Value>,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Inter-LLM Mailbox",
        description = "A message broker for LLM agents: mailboxes, topics, broadcast, acks and \
            dead letters over REST, WebSocket (`GET /v1/ws`) and MCP (`POST /mcp`). Every `/v1` \
            call takes a bearer token (JWT). Errors are `{\"error\":{\"code\",\"message\",\"details\"}}`."
    ),
    components(schemas(ErrorBody, ErrorDetail, ErrorCode)),
    modifiers(&Bearer),
    security(("bearer" = [])),
    tags(
        (name = "messages", description = "Sending"),
        (name = "mailboxes", description = "Mailboxes: info, settings, browse, consume, settle"),
        (name = "topics", description = "Topics and their history"),
        (name = "subscriptions", description = "Durable topic subscriptions"),
        (name = "dead-letters", description = "The dead-letter queue"),
        (name = "blobs", description = "Large payloads: upload, download; messages reference them by id"),
        (name = "live", description = "WebSocket and MCP"),
        (name = "admin", description = "Administration"),
        (name = "operations", description = "Health, metrics and these docs"),
    )
)]
pub struct ApiDoc;

/// The bearer (JWT) scheme every `/v1` operation names.
struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut Document) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// The document being served, shared by `/openapi.json` and the 405 fallback.
#[derive(Clone)]
pub struct Served(pub std::sync::Arc<Document>);

impl Served {
    /// The methods the document lists for a route pattern (`GET, PUT`), for an `Allow` header.
    pub fn allowed(&self, pattern: &str) -> Option<String> {
        let item = self.0.paths.paths.get(pattern)?;
        let methods: Vec<&str> = [
            ("GET", item.get.is_some()),
            ("PUT", item.put.is_some()),
            ("POST", item.post.is_some()),
            ("DELETE", item.delete.is_some()),
            ("PATCH", item.patch.is_some()),
        ]
        .into_iter()
        .filter_map(|(m, present)| present.then_some(m))
        .collect();
        (!methods.is_empty()).then(|| methods.join(", "))
    }
}

#[utoipa::path(
    tag = "operations",
    operation_id = "openapi_document",
    security(()),
    responses((status = 200, description = "This OpenAPI 3.1 document", content_type = "application/json"))
)]
#[get("/openapi.json")]
pub async fn document(doc: web::Data<Served>) -> HttpResponse {
    HttpResponse::Ok().json(doc.0.as_ref())
}

/// `GET /docs/` and its assets: Swagger UI reading `/openapi.json`; `GET /docs` redirects there
/// (the page loads its assets by relative paths).
pub fn docs(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/docs",
        web::get().to(|| async {
            HttpResponse::PermanentRedirect()
                .insert_header((actix_web::http::header::LOCATION, "/docs/"))
                .finish()
        }),
    )
    .service(
        SwaggerUi::new("/docs/{_:.*}").config(utoipa_swagger_ui::Config::from("/openapi.json")),
    );
}

/// The route that is not a `#[utoipa::path]` handler (the interactive docs), added by hand.
pub fn finish(mut doc: Document) -> Document {
    use utoipa::openapi::path::{HttpMethod, OperationBuilder, PathItem};
    use utoipa::openapi::{ResponseBuilder, SecurityRequirement};
    let op = OperationBuilder::new()
        .operation_id(Some("docs"))
        .tag("operations")
        .summary(Some(
            "Interactive API docs (Swagger UI, served from the binary)",
        ))
        .securities(Some(Vec::<SecurityRequirement>::new()))
        .response(
            "308",
            ResponseBuilder::new().description("Redirect to `/docs/`, the Swagger UI page"),
        )
        .build();
    doc.paths
        .paths
        .insert("/docs".to_owned(), PathItem::new(HttpMethod::Get, op));
    doc
}
