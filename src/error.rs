//! The one mapping from errors to what clients see: HTTP status + `{"error":{code,message,details}}`
//! (SPEC section 7), and the same code for WebSocket error frames and MCP tool errors.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use mailbox_actors::Error as EngineError;
use serde_json::{json, Value};

/// Seconds a client is told to wait when storage is unavailable.
const RETRY_AFTER_UNAVAILABLE: u64 = 2;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    PermissionDenied(String),
    #[error("{message}")]
    RateLimited { message: String, retry_after: u64 },
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// One item of a batch was refused; `details.index` names it.
    #[error("messages[{index}]: {inner}")]
    AtIndex { index: usize, inner: Box<ApiError> },
}

impl From<mailbox_actors::model::RequestError> for ApiError {
    fn from(e: mailbox_actors::model::RequestError) -> Self {
        ApiError::Engine(e.into())
    }
}

impl ApiError {
    pub fn validation(field: &str, message: impl Into<String>) -> Self {
        ApiError::Engine(EngineError::invalid(field, message))
    }

    pub fn not_found(what: impl Into<String>) -> Self {
        ApiError::Engine(EngineError::NotFound { what: what.into() })
    }

    /// This error, as the refusal of item `index` of a batch.
    pub fn at_index(self, index: usize) -> Self {
        ApiError::AtIndex {
            index,
            inner: Box::new(self),
        }
    }

    /// The SPEC section 7 code.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "bad_request",
            ApiError::Unauthenticated(_) => "unauthenticated",
            ApiError::PermissionDenied(_) => "permission_denied",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::AtIndex { inner, .. } => inner.code(),
            ApiError::Engine(e) => match e {
                EngineError::Invalid { .. } => "validation_failed",
                EngineError::TooLarge { .. } => "payload_too_large",
                EngineError::NotFound { .. } => "not_found",
                EngineError::Conflict(_) => "conflict",
                EngineError::MailboxFull { .. } => "mailbox_full",
                EngineError::Unavailable(_) | EngineError::KeyMissing { .. } => "unavailable",
                EngineError::Internal(_) => "internal",
            },
        }
    }

    pub fn details(&self) -> Value {
        match self {
            ApiError::Engine(
                EngineError::Invalid { field, .. } | EngineError::TooLarge { field, .. },
            ) => {
                json!({ "field": field })
            }
            ApiError::Engine(EngineError::MailboxFull { mailbox, max_len }) => {
                json!({ "mailbox": mailbox, "max_len": max_len })
            }
            ApiError::Engine(EngineError::KeyMissing { key_id, .. }) => {
                json!({ "key_id": key_id })
            }
            ApiError::RateLimited { retry_after, .. } => {
                json!({ "retry_after_seconds": retry_after })
            }
            ApiError::AtIndex { index, inner } => {
                let mut d = inner.details();
                if let Value::Object(m) = &mut d {
                    m.insert("index".into(), json!(index));
                }
                d
            }
            _ => json!({}),
        }
    }

    /// What the client is told. Internal errors say nothing of their cause (it is logged).
    pub fn client_message(&self) -> String {
        match self {
            ApiError::Engine(EngineError::Internal(_)) => {
                "internal error; it has been logged".to_owned()
            }
            ApiError::Engine(EngineError::Unavailable(_)) => {
                "storage is unavailable; retry shortly".to_owned()
            }
            ApiError::AtIndex { index, inner } => {
                format!("messages[{index}]: {}", inner.client_message())
            }
            other => other.to_string(),
        }
    }

    pub fn body(&self) -> Value {
        json!({ "error": { "code": self.code(), "message": self.client_message(), "details": self.details() } })
    }

    fn retry_after(&self) -> Option<u64> {
        match self {
            ApiError::RateLimited { retry_after, .. } => Some(*retry_after),
            ApiError::Engine(EngineError::Unavailable(_) | EngineError::KeyMissing { .. }) => {
                Some(RETRY_AFTER_UNAVAILABLE)
            }
            ApiError::AtIndex { inner, .. } => inner.retry_after(),
            _ => None,
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            ApiError::PermissionDenied(_) => StatusCode::FORBIDDEN,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::AtIndex { inner, .. } => inner.status_code(),
            ApiError::Engine(e) => match e {
                EngineError::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
                EngineError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
                EngineError::NotFound { .. } => StatusCode::NOT_FOUND,
                EngineError::Conflict(_) => StatusCode::CONFLICT,
                EngineError::MailboxFull { .. } => StatusCode::INSUFFICIENT_STORAGE,
                EngineError::Unavailable(_) | EngineError::KeyMissing { .. } => {
                    StatusCode::SERVICE_UNAVAILABLE
                }
                EngineError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            },
        }
    }

    fn error_response(&self) -> HttpResponse {
        let root = match self {
            ApiError::AtIndex { inner, .. } => inner.as_ref(),
            other => other,
        };
        match root {
            ApiError::Engine(EngineError::Internal(cause)) => {
                tracing::error!(cause = %cause, "internal error")
            }
            ApiError::Engine(EngineError::Unavailable(cause)) => {
                tracing::warn!(cause = %cause, "unavailable")
            }
            ApiError::Engine(EngineError::KeyMissing { key_id, .. }) => {
                tracing::warn!(%key_id, "a stored message is encrypted with a key this node does not have")
            }
            _ => {}
        }
        let mut res = HttpResponse::build(self.status_code());
        if let Some(s) = self.retry_after() {
            res.insert_header((header::RETRY_AFTER, s.to_string()));
        }
        if matches!(root, ApiError::Unauthenticated(_)) {
            res.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        res.json(self.body())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_its_status() {
        let cases: Vec<(ApiError, u16, &str)> = vec![
            (ApiError::BadRequest("x".into()), 400, "bad_request"),
            (ApiError::validation("to", "x"), 422, "validation_failed"),
            (
                ApiError::Unauthenticated("x".into()),
                401,
                "unauthenticated",
            ),
            (
                ApiError::PermissionDenied("x".into()),
                403,
                "permission_denied",
            ),
            (ApiError::not_found("x"), 404, "not_found"),
            (EngineError::Conflict("x".into()).into(), 409, "conflict"),
            (
                EngineError::TooLarge {
                    field: "payload".into(),
                    message: "x".into(),
                }
                .into(),
                413,
                "payload_too_large",
            ),
            (
                ApiError::RateLimited {
                    message: "x".into(),
                    retry_after: 1,
                },
                429,
                "rate_limited",
            ),
            (
                EngineError::MailboxFull {
                    mailbox: "b".into(),
                    max_len: 1,
                }
                .into(),
                507,
                "mailbox_full",
            ),
            (
                EngineError::Unavailable("x".into()).into(),
                503,
                "unavailable",
            ),
            (
                EngineError::Internal("secret cause".into()).into(),
                500,
                "internal",
            ),
        ];
        for (e, status, code) in cases {
            assert_eq!(e.status_code().as_u16(), status, "{code}");
            assert_eq!(e.code(), code);
            assert_eq!(e.body()["error"]["code"], code);
        }
        let item = ApiError::validation("ttl_seconds", "x").at_index(3);
        assert_eq!(item.status_code().as_u16(), 422);
        assert_eq!(
            item.body()["error"]["details"],
            json!({"field": "ttl_seconds", "index": 3})
        );
        let internal: ApiError = EngineError::Internal("secret cause".into()).into();
        assert!(!internal.client_message().contains("secret"));
        let key: ApiError = EngineError::KeyMissing {
            key_id: "0a1b2c3d".into(),
            message: "encrypted with key `0a1b2c3d`".into(),
        }
        .into();
        assert_eq!(
            (key.status_code().as_u16(), key.code()),
            (503, "unavailable")
        );
        assert_eq!(
            key.body()["error"]["details"],
            json!({"key_id": "0a1b2c3d"})
        );
        assert!(key.client_message().contains("0a1b2c3d"));
    }
}
