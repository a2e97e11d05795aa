//! The MCP face: `POST /mcp` (SPEC section 10), so LLM agents use the broker with any MCP
//! client and no glue code.
//!
//! - `protocol.rs`: JSON-RPC 2.0, the two protocol generations (handshake `initialize` and the
//!   stateless `server/discover` envelope), version negotiation.
//! - `transport.rs`: Streamable HTTP — auth, one answer per POST (JSON or one SSE event), 405s.
//! - `schema.rs`: the eight tool definitions (input and output JSON Schemas).
//! - `tools.rs`: each tool's call — arguments → operation → result.
//! - `render.rs`: the text a model reads, framing messages as data from other agents.
//!
//! Nothing is kept between requests: the token names the agent on every POST, which is also
//! why a message's `from` is always the token's agent.

pub mod protocol;
pub mod render;
pub mod schema;
pub mod tools;
pub mod transport;

use actix_web::web;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/mcp")
            .route(web::post().to(transport::post))
            .default_service(web::to(transport::not_allowed)),
    );
}
