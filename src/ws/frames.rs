//! The WebSocket wire (SPEC section 6): typed client and server frames. Text frames, one JSON
//! object each; every client op may carry a `ref` that the answer echoes.

use mailbox_actors::model::SendRequest;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::ApiError;
use crate::ops::parse;

/// A client frame, parsed at the edge. Unknown ops and fields are errors, not panics.
///
/// On the wire the op is a field (`{"op":"ack",…}`); [`ClientFrame::parse`] reads it as
/// `{"ack":{…}}` (serde's external tagging) because only that form lets the field path of an
/// error be tracked into the op's fields (`requeue`, not just "somewhere in the frame").
#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientFrame {
    Subscribe {
        #[serde(rename = "ref")]
        reference: Option<String>,
        target: String,
        from: Option<String>,
    },
    Unsubscribe {
        #[serde(rename = "ref")]
        reference: Option<String>,
        subscription: String,
    },
    Send {
        #[serde(rename = "ref")]
        reference: Option<String>,
        message: Box<SendRequest>,
        idempotency_key: Option<String>,
    },
    Ack {
        #[serde(rename = "ref")]
        reference: Option<String>,
        mailbox: String,
        id: String,
    },
    Nack {
        #[serde(rename = "ref")]
        reference: Option<String>,
        mailbox: String,
        id: String,
        requeue: Option<bool>,
        reason: Option<String>,
    },
    Read {
        #[serde(rename = "ref")]
        reference: Option<String>,
        mailbox: String,
        up_to: Option<String>,
        ids: Option<Vec<String>>,
    },
    Ping {
        #[serde(rename = "ref")]
        reference: Option<String>,
    },
}

impl ClientFrame {
    /// The op's name, as on the wire (for logs).
    pub fn op(&self) -> &'static str {
        match self {
            ClientFrame::Subscribe { .. } => "subscribe",
            ClientFrame::Unsubscribe { .. } => "unsubscribe",
            ClientFrame::Send { .. } => "send",
            ClientFrame::Ack { .. } => "ack",
            ClientFrame::Nack { .. } => "nack",
            ClientFrame::Read { .. } => "read",
            ClientFrame::Ping { .. } => "ping",
        }
    }

    pub fn reference(&self) -> Option<&str> {
        match self {
            ClientFrame::Subscribe { reference, .. }
            | ClientFrame::Unsubscribe { reference, .. }
            | ClientFrame::Send { reference, .. }
            | ClientFrame::Ack { reference, .. }
            | ClientFrame::Nack { reference, .. }
            | ClientFrame::Read { reference, .. }
            | ClientFrame::Ping { reference } => reference.as_deref(),
        }
    }

    /// Parses a text frame. On failure answers the `ref` (if one could be read) and the error:
    /// `bad_request` for what cannot be read, `validation_failed` naming a field whose value
    /// breaks a rule (the same split as every face, see [`crate::ops::parse`]).
    pub fn parse(text: &str) -> Result<Self, (Option<String>, ApiError)> {
        let value: Value = serde_json::from_str(text).map_err(|e| {
            (
                None,
                ApiError::BadRequest(format!("frame is not JSON: {e}")),
            )
        })?;
        let reference = value.get("ref").and_then(Value::as_str).map(str::to_owned);
        let Value::Object(mut fields) = value else {
            return Err((
                reference,
                ApiError::BadRequest("a frame is one JSON object".into()),
            ));
        };
        let fail = |e| (reference.clone(), e);
        let op = match fields.remove("op") {
            Some(Value::String(op)) => op,
            _ => {
                return Err(fail(ApiError::BadRequest(
                    "a frame needs an `op` string".into(),
                )))
            }
        };
        if op == "send" {
            if fields.get("message").is_some_and(|m| !m.is_object()) {
                return Err(fail(ApiError::validation(
                    "message",
                    "`message` must be a send request object",
                )));
            }
            // Parsed again from the text, so the payload keeps its exact bytes (a `Value` has
            // already rounded its numbers).
            let f: SendFrame = parse::from_slice(text.as_bytes()).map_err(fail)?;
            return Ok(ClientFrame::Send {
                reference: f.reference,
                message: f.message,
                idempotency_key: f.idempotency_key,
            });
        }
        let mut tagged = serde_json::Map::new();
        tagged.insert(op, Value::Object(fields));
        parse::from_value(Value::Object(tagged)).map_err(|e| match e {
            // The op's own fields are tracked under its name (`ack.requeue`): name them as
            // the frame does.
            ApiError::Engine(mailbox_actors::Error::Invalid { field, message }) => {
                let inner = field.split_once('.').map_or(field.as_str(), |(_, f)| f);
                let message = message.replace(&format!("`{field}`"), &format!("`{inner}`"));
                fail(ApiError::validation(inner, message))
            }
            other => fail(other),
        })
    }
}

/// The `send` op, read straight from the frame's text (see [`ClientFrame::parse`]).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SendFrame {
    #[serde(rename = "op")]
    _op: String,
    #[serde(rename = "ref")]
    reference: Option<String>,
    message: Box<SendRequest>,
    idempotency_key: Option<String>,
}

/// A server frame.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    Welcome {
        agent: String,
        session: String,
        node: String,
        heartbeat_seconds: u64,
    },
    Ok {
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
        #[serde(flatten)]
        result: serde_json::Map<String, Value>,
    },
    Error {
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
        code: String,
        message: String,
        #[serde(skip_serializing_if = "Value::is_null")]
        details: Value,
    },
    Pong {
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
    },
}

impl ServerFrame {
    pub fn to_text(&self) -> String {
        // Serializing these types cannot fail: every field is a string, number or JSON value.
        serde_json::to_string(self).unwrap_or_else(|_| {
            r#"{"type":"error","code":"internal","message":"serialization failed"}"#.to_owned()
        })
    }
}

/// An `ok` frame serialized straight from the op's result (the same text as
/// [`ServerFrame::Ok`], without building a JSON map first). A result that is not a JSON object
/// answers an empty `ok`, as `ServerFrame::Ok` with an empty map does.
pub fn ok_frame(reference: Option<&str>, result: &impl Serialize) -> String {
    #[derive(Serialize)]
    struct OkFrame<'a, T> {
        #[serde(rename = "type")]
        kind: &'static str,
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<&'a str>,
        #[serde(flatten)]
        result: &'a T,
    }
    let frame = OkFrame {
        kind: "ok",
        reference,
        result,
    };
    serde_json::to_string(&frame).unwrap_or_else(|_| {
        ServerFrame::Ok {
            reference: reference.map(str::to_owned),
            result: serde_json::Map::new(),
        }
        .to_text()
    })
}

/// A `message` frame built around an envelope already serialized once for all subscribers.
/// One allocation per push: a fanout builds one of these per subscriber.
pub fn message_frame(subscription: &str, envelope_json: &str) -> String {
    const HEAD: &str = r#"{"type":"message","subscription":"#;
    const MID: &str = r#","message":"#;
    let mut f = String::with_capacity(
        HEAD.len() + subscription.len() + 2 + MID.len() + envelope_json.len() + 1,
    );
    f.push_str(HEAD);
    if subscription
        .bytes()
        .all(|b| b >= 0x20 && b != b'"' && b != b'\\')
    {
        f.push('"');
        f.push_str(subscription);
        f.push('"');
    } else {
        f.push_str(&serde_json::to_string(subscription).unwrap_or_else(|_| "\"\"".to_owned()));
    }
    f.push_str(MID);
    f.push_str(envelope_json);
    f.push('}');
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ops_and_keeps_ref_on_errors() {
        let f = ClientFrame::parse(
            r#"{"op":"subscribe","ref":"1","target":"mailbox:bob","from":"12"}"#,
        )
        .expect("valid");
        assert!(matches!(f, ClientFrame::Subscribe { ref target, .. } if target == "mailbox:bob"));
        assert_eq!(f.reference(), Some("1"));
        assert!(matches!(
            ClientFrame::parse(r#"{"op":"ping"}"#),
            Ok(ClientFrame::Ping { reference: None })
        ));
        assert_eq!(
            ClientFrame::parse(r#"{"op":"dance","ref":"7"}"#)
                .expect_err("unknown op")
                .0
                .as_deref(),
            Some("7")
        );
        assert_eq!(
            ClientFrame::parse(r#"{"op":"ack","ref":"8"}"#)
                .expect_err("missing fields")
                .0
                .as_deref(),
            Some("8")
        );
        assert!(ClientFrame::parse("not json").is_err());
        assert!(ClientFrame::parse("[1]").is_err());
    }

    #[test]
    fn unreadable_frames_are_bad_requests_and_broken_rules_name_the_field() {
        let cases = [
            (r#"{"op":"dance"}"#, "bad_request", None),
            (r#"{"op":"ping","extra":1}"#, "bad_request", None),
            (r#"{"ref":"1"}"#, "bad_request", None),
            (r#"{"op":"subscribe"}"#, "validation_failed", Some("target")),
            (
                r#"{"op":"nack","mailbox":"b","id":"x","requeue":"yes"}"#,
                "validation_failed",
                Some("requeue"),
            ),
            (
                r#"{"op":"send","message":{"to":"mailbox:b","payload":1,"priority":"super"}}"#,
                "validation_failed",
                Some("message.priority"),
            ),
            (
                r#"{"op":"send","message":{"to":"mailbox:b","payload":1,"ttl_seconds":-5}}"#,
                "validation_failed",
                Some("message.ttl_seconds"),
            ),
        ];
        for (text, code, field) in cases {
            let (_, e) = ClientFrame::parse(text).expect_err(text);
            assert_eq!(e.code(), code, "{text}: {e}");
            if let Some(f) = field {
                assert_eq!(e.details()["field"], f, "{text}");
            }
        }
    }

    #[test]
    fn ok_frames_match_the_map_built_ones() {
        #[derive(Serialize)]
        struct Receipt {
            id: &'static str,
            seq: u64,
            #[serde(skip_serializing_if = "Option::is_none")]
            note: Option<String>,
        }
        let r = Receipt {
            id: "01J",
            seq: 7,
            note: None,
        };
        let old = |reference: Option<String>, v: Value| {
            let result = match v {
                Value::Object(m) => m,
                _ => serde_json::Map::new(),
            };
            ServerFrame::Ok { reference, result }.to_text()
        };
        let v = serde_json::to_value(&r).expect("value");
        assert_eq!(ok_frame(Some("r1"), &r), old(Some("r1".into()), v.clone()));
        assert_eq!(ok_frame(None, &r), old(None, v));
        assert_eq!(
            ok_frame(Some("r2"), &42),
            old(Some("r2".into()), serde_json::json!(42))
        );
        assert_eq!(
            ok_frame(None, &serde_json::json!({"n": 1})),
            r#"{"type":"ok","n":1}"#
        );
    }

    #[test]
    fn message_frames_are_valid_json() {
        let f = message_frame("s1", r#"{"id":"x","seq":"3"}"#);
        let v: Value = serde_json::from_str(&f).expect("json");
        assert_eq!(v["type"], "message");
        assert_eq!(v["subscription"], "s1");
        assert_eq!(v["message"]["seq"], "3");
        for sub in ["news.\"eu\"", "a\\b", "tab\there", "ünï"] {
            let f = message_frame(sub, "{}");
            let v: Value = serde_json::from_str(&f).expect("json");
            assert_eq!(v["subscription"], sub);
        }
    }
}
