//! A message payload: the sender's JSON, kept as the exact bytes it arrived as.
//!
//! Parsing a payload into a `serde_json::Value` would re-encode it on the way out: floats lose
//! digits (`0.10218761674816845` comes back `…844`), big integers become floats, object keys are
//! sorted. A broker hands back exactly what it accepted, so the payload is held as raw JSON from
//! the request to storage and back; only validation looks inside it.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;

#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Payload(Box<RawValue>);

impl Payload {
    /// The raw JSON text, exactly as sent.
    pub fn get(&self) -> &str {
        self.0.get()
    }

    pub fn is_null(&self) -> bool {
        self.get() == "null"
    }

    /// The string, if the payload is a JSON string.
    pub fn as_string(&self) -> Option<String> {
        if self.get().starts_with('"') {
            serde_json::from_str(self.get()).ok()
        } else {
            None
        }
    }

    /// A parsed copy, for display and for clients that want a `Value` (numbers as `f64` may
    /// lose digits; [`Payload::get`] never does).
    pub fn to_value(&self) -> Value {
        serde_json::from_str(self.get()).unwrap_or(Value::Null)
    }

    /// A payload from raw JSON text; `None` if it is not valid JSON.
    pub fn from_json(text: &str) -> Option<Self> {
        RawValue::from_string(text.to_owned()).ok().map(Self)
    }
}

impl From<&Value> for Payload {
    fn from(v: &Value) -> Self {
        // Serializing a `Value` cannot fail (its map keys are strings).
        Self::from_json(&v.to_string()).unwrap_or_default()
    }
}

impl From<Value> for Payload {
    fn from(v: Value) -> Self {
        Self::from(&v)
    }
}

impl Default for Payload {
    fn default() -> Self {
        Self(RawValue::NULL.to_owned())
    }
}

impl PartialEq for Payload {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get()
    }
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.get())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_keys_and_spacing_come_back_as_sent() {
        let body =
            r#"{"payload": {"z": 0.10218761674816845, "a": 12345678901234567890123, "f": 1e400}}"#;
        #[derive(Deserialize, Serialize)]
        struct Body {
            payload: Payload,
        }
        let b: Body = serde_json::from_str(body).expect("parses");
        assert_eq!(
            b.payload.get(),
            r#"{"z": 0.10218761674816845, "a": 12345678901234567890123, "f": 1e400}"#
        );
        let out = serde_json::to_string(&b).expect("serializes");
        assert_eq!(
            out,
            r#"{"payload":{"z": 0.10218761674816845, "a": 12345678901234567890123, "f": 1e400}}"#
        );
        assert!(!b.payload.is_null());
        assert_eq!(
            Payload::from_json(r#""hi""#).and_then(|p| p.as_string()),
            Some("hi".into())
        );
    }
}
