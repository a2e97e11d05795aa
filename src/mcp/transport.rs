//! Streamable HTTP: one POST carries one JSON-RPC message and gets one answer — JSON, or the
//! same answer as a single SSE event when the client's `Accept` allows only
//! `text/event-stream`. Nothing is pushed outside an answer, so there is no GET stream: GET
//! and DELETE answer 405 in both protocol generations.

use actix_web::http::header;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Map, Value};

use super::protocol::{self, Era, Incoming, RoutingHeaders, RpcError};
use super::{schema, tools};
use crate::auth::{authenticate, Agent};
use crate::body::read_body;
use crate::error::ApiError;
use crate::ops::BODY_OVERHEAD;
use crate::server::AppState;

/// `POST /mcp`. No or a bad token: HTTP 401 with the SPEC error body, before anything else.
pub async fn post(
    req: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let agent = authenticate(&req, &state)?;
    tracing::Span::current().record("agent", agent.id.as_str());
    let body = read_body(
        payload,
        state.ops.message_limits().max_message_bytes + BODY_OVERHEAD,
    )
    .await?;
    let sse = wants_sse(&req);
    let (id, method, params) = match protocol::parse(&body) {
        Ok(Incoming::Request { id, method, params }) => (id, method, params),
        Ok(Incoming::Accepted) => return Ok(HttpResponse::Accepted().finish()),
        Err((id, e)) => return Ok(answer(sse, 400, &protocol::response(&id, Err(e)))),
    };
    let era = match protocol::classify(&routing_headers(&req), &method, &params) {
        Ok(era) => era,
        Err(e) => {
            let status = e.http_status();
            return Ok(answer(sse, status, &protocol::response(&id, Err(e))));
        }
    };
    let result = dispatch(&state, &agent, &era, &method, params).await;
    // The stateless era gives protocol errors their HTTP status; the handshake era answers
    // them with 200, as its servers always have (some of its clients end the session on a 4xx).
    let status = match (&era, &result) {
        (Era::Modern { .. }, Err(e)) => e.http_status(),
        _ => 200,
    };
    let result = result.map(|r| protocol::finish(&era, &method, r));
    Ok(answer(sse, status, &protocol::response(&id, result)))
}

/// GET and DELETE: there is no server-to-client stream and no session to end.
pub async fn not_allowed() -> HttpResponse {
    HttpResponse::MethodNotAllowed()
        .insert_header((header::ALLOW, "POST"))
        .finish()
}

/// Answers one protocol method.
async fn dispatch(
    state: &AppState,
    agent: &Agent,
    era: &Era,
    method: &str,
    mut params: Map<String, Value>,
) -> Result<Value, RpcError> {
    match method {
        "initialize" if !era.is_modern() => {
            state.ops.connect(agent).await;
            protocol::initialize(&params)
        }
        "server/discover" => {
            state.ops.connect(agent).await;
            Ok(protocol::discover())
        }
        "ping" => Ok(json!({})),
        "tools/list" => Ok(json!({ "tools": schema::tools() })),
        "tools/call" => {
            let Some(Value::String(name)) = params.remove("name") else {
                return Err(RpcError::new(
                    protocol::INVALID_PARAMS,
                    "tools/call needs `name`, the tool's name",
                ));
            };
            let arguments = params.remove("arguments").unwrap_or(Value::Null);
            Ok(tools::call(&state.ops, agent, &name, arguments).await)
        }
        other => Err(RpcError::new(
            protocol::METHOD_NOT_FOUND,
            format!("method `{other}` is not supported by this server"),
        )),
    }
}

/// The routing headers of the stateless era.
fn routing_headers(req: &HttpRequest) -> RoutingHeaders {
    let get = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.trim().to_owned())
    };
    RoutingHeaders {
        protocol_version: get("mcp-protocol-version"),
        method: get("mcp-method"),
        name: get("mcp-name"),
    }
}

/// True when `Accept` allows SSE but not JSON. A missing or unusual `Accept` gets JSON: it is
/// what every client reads.
fn wants_sse(req: &HttpRequest) -> bool {
    let accept = req
        .headers()
        .get_all(header::ACCEPT)
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(",")
        .to_ascii_lowercase();
    let json = ["application/json", "application/*", "*/*"]
        .iter()
        .any(|t| accept.contains(t));
    !json && accept.contains("text/event-stream")
}

fn answer(sse: bool, status: u16, message: &Value) -> HttpResponse {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    let mut res = HttpResponse::build(status);
    if sse {
        res.insert_header((header::CONTENT_TYPE, "text/event-stream"))
            .insert_header((header::CACHE_CONTROL, "no-cache"))
            .body(format!("event: message\ndata: {message}\n\n"))
    } else {
        res.json(message)
    }
}
