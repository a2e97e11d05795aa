//! The WebSocket face (`GET /v1/ws`, SPEC section 6).
//!
//! The design card names actix-web-actors, which is deprecated upstream. We use its successor,
//! actix-ws, and keep each connection an actix actor ([`session::WsSession`]) by adding the
//! actix-ws message stream to the actor's context. Do not "fix" this back. Frames go out through
//! our own response body (`outbound.rs`), not actix-ws's `Session`.

pub mod frames;
mod outbound;
pub mod session;

use actix_web::{get, web, HttpRequest, HttpResponse};

use crate::auth::authenticate;
use crate::error::ApiError;
use crate::server::AppState;

pub fn routes(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(upgrade);
}

/// Authenticates before the upgrade (a bad token is a plain 401), then hands over to a session.
/// The frames (SPEC section 6) are JSON text: `subscribe`, `unsubscribe`, `send`, `ack`,
/// `nack`, `read`, `ping` from the client; `welcome`, `ok`, `message`, `error`, `pong` back.
#[utoipa::path(
    tag = "live",
    operation_id = "websocket",
    params(("token" = Option<String>, Query, description = "The bearer token, for clients that cannot set headers")),
    responses(
        (status = 101, description = "Switching Protocols: a WebSocket of JSON text frames (SPEC section 6)"),
        (status = "4XX", description = "Refused: bad_request 400, unauthenticated 401", body = crate::openapi::ErrorBody)
    )
)]
#[get("/ws")]
async fn upgrade(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let agent = authenticate(&req, &state)?;
    // actix-ws's `Session` is not used: the session's frames are written by our own body.
    let (response, _, stream) = actix_ws::handle(&req, body)
        .map_err(|e| ApiError::BadRequest(format!("not a WebSocket upgrade: {e}")))?;
    state.ops.connect(&agent).await;
    Ok(session::WsSession::start(agent, state, response, stream))
}
