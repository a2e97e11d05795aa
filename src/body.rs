//! Reading a request body under a size limit: shared by the faces that arrive over HTTP (REST
//! and MCP), so neither borrows from the other.

use actix_web::web;
use futures_util::StreamExt;

use crate::error::ApiError;

/// Reads a request body of at most `limit` bytes; larger answers 413 without reading it all.
pub async fn read_body(mut payload: web::Payload, limit: usize) -> Result<web::Bytes, ApiError> {
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ApiError::BadRequest(format!("cannot read body: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::Engine(mailbox_actors::Error::TooLarge {
                field: "body".into(),
                message: format!("request body is over the limit of {limit} bytes"),
            }));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}
