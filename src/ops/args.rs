//! Helpers for arguments as wires give them: a query string has only text, a JSON object (MCP
//! tool arguments) may say `10` or `true` where a query says `"10"`. Both land in the same
//! `Option<String>` and are checked by the same code, so both get the same errors.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::de::{self, Deserializer, Visitor};

use crate::error::ApiError;

/// `deserialize_with` for `Option<String>` fields that accept a string, number or boolean.
pub(crate) fn text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    struct Text;
    impl Visitor<'_> for Text {
        type Value = Option<String>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a string, number or boolean")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Some(v.to_owned()))
        }
        fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
            Ok(Some(v))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
    }
    d.deserialize_any(Text)
}

/// A parameter that was given and is not empty (`?limit=` means "not given").
pub(crate) fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().filter(|s| !s.is_empty())
}

/// A count in `1..=max`, `default` when not given.
pub(crate) fn limit(
    field: &str,
    v: &Option<String>,
    default: usize,
    max: usize,
) -> Result<usize, ApiError> {
    match given(v) {
        None => Ok(default),
        Some(s) => match s.parse::<usize>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(ApiError::validation(
                field,
                format!("`{field}` must be 1-{max}"),
            )),
        },
    }
}

/// `true` / `false` (default false).
pub(crate) fn flag(field: &str, v: &Option<String>) -> Result<bool, ApiError> {
    match given(v) {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(_) => Err(ApiError::validation(
            field,
            format!("`{field}` must be true or false"),
        )),
    }
}

/// A stream position.
pub(crate) fn seq(field: &str, v: &str) -> Result<u64, ApiError> {
    v.parse()
        .map_err(|_| ApiError::validation(field, format!("`{v}` is not a seq from this stream")))
}

/// An RFC 3339 time.
pub(crate) fn time(field: &str, v: &str) -> Result<DateTime<Utc>, ApiError> {
    DateTime::parse_from_rfc3339(v)
        .map(|d| d.with_timezone(&Utc))
        .map_err(|_| ApiError::validation(field, format!("`{v}` is not an RFC 3339 time")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize)]
    struct Q {
        #[serde(default, deserialize_with = "text")]
        limit: Option<String>,
    }

    #[test]
    fn numbers_and_words_read_the_same() {
        for v in [
            serde_json::json!({"limit": 10}),
            serde_json::json!({"limit": "10"}),
        ] {
            let q: Q = serde_json::from_value(v).expect("parses");
            assert_eq!(limit("limit", &q.limit, 50, 500).expect("in range"), 10);
        }
        let q: Q = serde_json::from_value(serde_json::json!({})).expect("parses");
        assert_eq!(limit("limit", &q.limit, 50, 500).expect("default"), 50);
        let e = limit("limit", &Some("0".into()), 50, 500).expect_err("out of range");
        assert_eq!(e.details()["field"], "limit");
        assert!(flag("unread", &Some("true".into())).expect("a flag"));
        assert!(flag("unread", &Some("yes".into())).is_err());
    }
}
