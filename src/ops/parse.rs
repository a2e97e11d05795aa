//! Reading a JSON body, frame or tool-argument object into an ops argument struct, with the one
//! rule every face shares (SPEC section 7):
//!
//! - text that is not JSON, a body that is not the expected shape at its top (an array where an
//!   object belongs), an unknown field or an unknown WebSocket op → `bad_request` (400): the
//!   request could not be read;
//! - a known field whose value breaks a rule of sections 2–3 (wrong type, enum value not in the
//!   list, a negative or out-of-range number, a required field missing) → `validation_failed`
//!   (422) with `details.field` naming it (`priority`, `tags[1]`, `message.ttl_seconds`).
//!
//! The field path comes from `serde_path_to_error`, so it is exact for nested values too; a
//! face never classifies serde errors itself.

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::ApiError;

/// Parses JSON text (a REST body, a WebSocket frame, a batch item).
pub fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.is_empty() {
        return Err(ApiError::BadRequest("a JSON body is required".into()));
    }
    // serde reads a struct from an array too (`[1, 2]` as its fields in order); every body,
    // frame and argument list of the API is an object, so anything else is refused here.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::BadRequest(
            "the body must be a JSON object".into(),
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(classify)?;
    de.end()
        .map_err(|e| ApiError::BadRequest(format!("invalid JSON: {e}")))?;
    Ok(value)
}

/// Parses an already-decoded JSON value (MCP tool arguments, a WebSocket frame's object).
pub fn from_value<T: DeserializeOwned>(value: Value) -> Result<T, ApiError> {
    if !value.is_object() {
        return Err(ApiError::BadRequest(
            "the arguments must be a JSON object".into(),
        ));
    }
    serde_path_to_error::deserialize(value).map_err(classify)
}

/// `deserialize_with` for a nested struct field: only an object (serde alone would also take
/// an array of the fields in order). A wrong type is a broken rule, named by the field path.
pub(crate) fn object<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: DeserializeOwned,
{
    use serde::de::{Deserialize, Error};
    let v = Value::deserialize(d)?;
    if !v.is_object() {
        return Err(D::Error::custom("invalid type: expected an object"));
    }
    T::deserialize(v).map_err(D::Error::custom)
}

fn classify(e: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let path = e.path().to_string();
    let inner = e.into_inner();
    if !inner.is_data() {
        return ApiError::BadRequest(format!("invalid JSON: {inner}"));
    }
    let text = inner.to_string();
    // serde's messages are stable; they are the only place the kind of a data error shows.
    let message = text.split(" at line ").next().unwrap_or(&text).to_owned();
    if message.starts_with("unknown field")
        || (message.starts_with("unknown variant") && path == ".")
    {
        return ApiError::BadRequest(at(&path, &message));
    }
    if let Some(missing) = quoted_after(&message, "missing field ") {
        let field = if path == "." {
            missing.to_owned()
        } else {
            format!("{path}.{missing}")
        };
        return ApiError::validation(&field, format!("`{field}` is required"));
    }
    if path == "." {
        return ApiError::BadRequest(format!("the body must be a JSON object: {message}"));
    }
    ApiError::validation(&path, format!("`{path}`: {message}"))
}

fn at(path: &str, message: &str) -> String {
    if path == "." {
        message.to_owned()
    } else {
        format!("`{path}`: {message}")
    }
}

/// The name in backquotes after `prefix` (serde writes ``missing field `to` ``).
fn quoted_after<'a>(message: &'a str, prefix: &str) -> Option<&'a str> {
    message
        .strip_prefix(prefix)?
        .strip_prefix('`')?
        .split('`')
        .next()
}

#[cfg(test)]
mod tests {
    use super::*;
    use mailbox_actors::model::SendRequest;

    fn field(e: &ApiError) -> (&'static str, Value) {
        (e.code(), e.details()["field"].clone())
    }

    #[test]
    fn broken_rules_name_their_field_and_unreadable_input_is_a_bad_request() {
        let cases: &[(&str, &str, Option<&str>)] = &[
            (
                r#"{"to":"mailbox:b","payload":1,"priority":"super"}"#,
                "validation_failed",
                Some("priority"),
            ),
            (
                r#"{"to":"mailbox:b","payload":1,"ttl_seconds":-5}"#,
                "validation_failed",
                Some("ttl_seconds"),
            ),
            (
                r#"{"to":"mailbox:b","payload":1,"tags":"urgent"}"#,
                "validation_failed",
                Some("tags"),
            ),
            (
                r#"{"to":"mailbox:b","payload":1,"tags":["a",3]}"#,
                "validation_failed",
                Some("tags[1]"),
            ),
            (
                r#"{"to":"mailbox:b","payload":1,"require_ack":"yes"}"#,
                "validation_failed",
                Some("require_ack"),
            ),
            (r#"{"payload":1}"#, "validation_failed", Some("to")),
            (
                r#"{"to":"mailbox:b","payload":1,"requires_ack":true}"#,
                "bad_request",
                None,
            ),
            (r#"{"to":"#, "bad_request", None),
            (r#"[]"#, "bad_request", None),
            (r#"["mailbox:b", 1]"#, "bad_request", None),
            (r#"{"to":"mailbox:b"} x"#, "bad_request", None),
        ];
        for (text, code, f) in cases {
            let e = from_slice::<SendRequest>(text.as_bytes()).expect_err(text);
            let (c, got) = field(&e);
            assert_eq!(c, *code, "{text}: {e}");
            if let Some(f) = f {
                assert_eq!(got, *f, "{text}");
            }
        }
        let ok: SendRequest =
            from_slice(br#"{"to":"mailbox:b","payload":{"x":0.10218761674816845}}"#).expect("ok");
        assert_eq!(
            ok.payload.expect("payload").get(),
            r#"{"x":0.10218761674816845}"#
        );
    }
}
