//! `POST /v1/blobs`: upload a large payload (the raw body, streamed to storage in chunks);
//! `GET /v1/blobs/{id}`: stream it back. A message carries `"blob": "<id>"` instead of a payload.

use actix_web::body::SizedStream;
use actix_web::http::header;
use actix_web::{get, post, web, HttpRequest, HttpResponse};
use futures_util::{StreamExt, TryStreamExt};

use crate::auth::Agent;
use crate::error::ApiError;
use crate::server::AppState;

pub fn routes(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(upload).service(download);
}

#[utoipa::path(
    tag = "blobs",
    operation_id = "blob_upload",
    request_body(
        content = Vec<u8>,
        content_type = "application/octet-stream",
        description = "The raw bytes, 1 to `limits.max_blob_bytes` (any `Content-Type`; it is given back on download)"
    ),
    responses(
        (status = 201, description = "Stored; `Location` is its download URL", body = crate::ops::BlobInfo,
            headers(("Location" = String, description = "/v1/blobs/{id}"))),
        crate::openapi::Refusals
    )
)]
#[post("/blobs")]
async fn upload(
    state: web::Data<AppState>,
    agent: Agent,
    req: HttpRequest,
    mut payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let text = |name| req.headers().get(name).and_then(|v| v.to_str().ok());
    let declared = text(header::CONTENT_LENGTH).and_then(|v| v.trim().parse().ok());
    let mut up = state
        .ops
        .blob_upload(&agent, text(header::CONTENT_TYPE), declared)?;
    while let Some(chunk) = payload.next().await {
        match chunk {
            Ok(bytes) => up.push(&bytes).await?,
            Err(e) => {
                up.abort().await;
                return Err(ApiError::BadRequest(format!("cannot read body: {e}")));
            }
        }
    }
    let info = up.finish().await?;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/v1/blobs/{}", info.id)))
        .json(info))
}

#[utoipa::path(
    tag = "blobs",
    operation_id = "blob_download",
    params(
        ("id" = String, Path, description = "Blob id from `POST /v1/blobs`"),
        ("If-None-Match" = Option<String>, Header, description = "The `ETag` of a copy held: 304 if it is this blob")
    ),
    responses(
        (status = 200, description = "The bytes, as uploaded, with the upload's `Content-Type`", body = Vec<u8>,
            content_type = "application/octet-stream",
            headers(("ETag" = String, description = "The SHA-256 of the bytes, quoted"))),
        (status = 304, description = "Not modified (`If-None-Match` named this blob)"),
        crate::openapi::Refusals
    )
)]
#[get("/blobs/{id}")]
async fn download(
    state: web::Data<AppState>,
    agent: Agent,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let meta = state.ops.blob_meta(&agent, &id).await?;
    let etag = format!("\"{}\"", meta.sha256);
    let held = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| matches!(t.trim(), "*") || t.trim() == etag)
        });
    if held {
        return Ok(HttpResponse::NotModified()
            .insert_header((header::ETAG, etag))
            .finish());
    }
    // The first chunk is read before the answer is committed: a blob that expires between its
    // meta and its bytes is a 404, not a 200 with a cut body (only an expiry in the middle of a
    // multi-chunk download can still cut one).
    let mut bytes = Box::pin(state.ops.blob_bytes(&meta).map_ok(web::Bytes::from));
    let first = bytes.next().await.transpose()?;
    let body = futures_util::stream::iter(first.map(Ok)).chain(bytes);
    Ok(HttpResponse::Ok()
        .insert_header((header::ETAG, etag))
        .insert_header((header::CONTENT_TYPE, meta.content_type.clone()))
        .body(SizedStream::new(meta.size, Box::pin(body))))
}
