//! The REST face: one file per resource. Handlers are thin: authenticate (the [`Agent`]
//! extractor), parse the path, query and body into [`crate::ops`] arguments, call ops, render
//! its result (status code, JSON). Validation, permission and rate limits live in ops.
//!
//! [`Agent`]: crate::auth::Agent

pub mod admin;
pub mod blobs;
pub mod dead_letters;
pub mod delivery;
pub mod health;
pub mod mailboxes;
pub mod messages;
pub mod overview;
pub mod subscriptions;
pub mod topics;

use std::collections::HashMap;
use std::time::Instant;

use actix_web::dev::{Service, ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tracing::Instrument;

pub use crate::body::read_body;
use crate::error::ApiError;

/// Routes of every resource, registered through `utoipa-actix-web` so that the OpenAPI
/// document ([`crate::openapi`]) is collected from these very registrations.
pub fn routes(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(
        // Routes with path parameters are matched one after another by regex (actix-router),
        // so the hot ones come first: send, then receive/ack/nack, then the rest.
        utoipa_actix_web::scope("/v1")
            .configure(messages::routes)
            .configure(delivery::routes)
            .configure(crate::ws::routes)
            .configure(mailboxes::routes)
            .configure(topics::routes)
            .configure(subscriptions::routes)
            .configure(dead_letters::routes)
            .configure(overview::routes)
            .configure(admin::routes)
            .configure(blobs::routes),
    )
    .configure(crate::mcp::routes)
    .configure(health::routes)
    .configure(crate::dashboard::routes)
    .service(crate::openapi::document);
}

/// Answers what no route took: a known path asked with a method it does not serve is 405
/// (each handler's route guards its method, so such a request falls through to here); any
/// other path is 404 with the SPEC's error body.
pub async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    if let Some(pattern) = req.resource_map().match_pattern(req.path()) {
        // `Allow` from the API description, which is collected from the same registrations.
        let allow = req
            .app_data::<web::Data<crate::openapi::Served>>()
            .and_then(|doc| doc.allowed(&pattern))
            .unwrap_or_else(|| "GET".to_owned());
        return Ok(HttpResponse::MethodNotAllowed()
            .insert_header((actix_web::http::header::ALLOW, allow))
            .finish());
    }
    Err(ApiError::not_found("route"))
}

/// Small JSON bodies (settings, mark-read, receive, nack) are capped at this size.
pub const SMALL_BODY: usize = 1 << 20;

/// The query string as an ops argument struct. Every field of those takes text, so only a
/// malformed query string fails (`bad_request`, as actix's own query extractor answers).
pub fn query_args<T: DeserializeOwned>(req: &HttpRequest) -> Result<T, ApiError> {
    let bad =
        |e: &dyn std::fmt::Display| ApiError::BadRequest(format!("invalid query string: {e}"));
    let q = web::Query::<HashMap<String, String>>::from_query(req.query_string())
        .map_err(|e| bad(&e))?;
    let object = q
        .into_inner()
        .into_iter()
        .map(|(k, v)| (k, serde_json::Value::String(v)))
        .collect();
    serde_json::from_value(serde_json::Value::Object(object)).map_err(|e| bad(&e))
}

/// 201 with the body when something was created, else 200.
pub fn created_or_ok(created: bool, body: &impl Serialize) -> HttpResponse {
    if created {
        HttpResponse::Created().json(body)
    } else {
        HttpResponse::Ok().json(body)
    }
}

/// Parses a JSON body: unreadable is `bad_request`, a broken rule `validation_failed` naming
/// the field ([`crate::ops::parse`] decides which, for every face).
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    crate::ops::parse::from_slice(body)
}

/// Reads and parses a required small JSON body (at most [`SMALL_BODY`]).
pub async fn small_json<T: DeserializeOwned>(payload: web::Payload) -> Result<T, ApiError> {
    parse_json(&read_body(payload, SMALL_BODY).await?)
}

/// Parses an optional JSON body: an empty body means the type's defaults.
pub fn parse_json_or_default<T: DeserializeOwned + Default>(body: &[u8]) -> Result<T, ApiError> {
    if body.is_empty() {
        Ok(T::default())
    } else {
        parse_json(body)
    }
}

/// Whether a caller's `X-Request-Id` is kept: 1-128 of `A-Za-z0-9._:-` (nothing a log line or
/// a header could be confused by).
fn is_request_id(v: &str) -> bool {
    (1..=128).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b))
}

/// A request span with an id (a valid `X-Request-Id` of the caller, else a new ULID; echoed as
/// `x-request-id`; a valid `traceparent` header joins the
/// caller's trace in the OTLP export), and `mailbox_http_requests_total`.
pub fn observe<S>(
    req: ServiceRequest,
    srv: &S,
) -> impl std::future::Future<Output = Result<ServiceResponse, actix_web::Error>>
where
    S: Service<ServiceRequest, Response = ServiceResponse, Error = actix_web::Error>,
{
    let start = Instant::now();
    // A caller's own id (a proxy's, a client's retry) is kept so its logs and ours line up;
    // anything that is not a short token gets a fresh one.
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| is_request_id(v))
        .map_or_else(|| ulid::Ulid::generate().to_string(), str::to_owned);
    let method = req.method().to_string();
    let span = tracing::info_span!("request", request_id = %request_id, method = %method, path = %req.path(), agent = tracing::field::Empty, traceparent = tracing::field::Empty);
    // A caller's W3C trace context: the OTLP export puts this request in the caller's trace.
    if let Some(tp) = req
        .headers()
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .filter(|v| crate::telemetry::otlp::parse_traceparent(v).is_some())
    {
        span.record("traceparent", tp);
    }
    let fut = srv.call(req);
    async move {
        let mut res = fut.await?;
        let status = res.status().as_u16();
        let route = res.request().match_pattern().unwrap_or_else(|| "unmatched".to_owned());
        metrics::counter!("mailbox_http_requests_total", "method" => method, "route" => route.clone(), "status" => status.to_string())
            .increment(1);
        tracing::debug!(status, route = %route, elapsed_ms = start.elapsed().as_secs_f64() * 1e3, "handled");
        if let Ok(v) = HeaderValue::from_str(&request_id) {
            res.headers_mut().insert(HeaderName::from_static("x-request-id"), v);
        }
        Ok(res)
    }
    .instrument(span)
}
