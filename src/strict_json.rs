//! Strict JSON parsing for webhook bodies: like `serde_json::from_slice`, but an object
//! that names the same key twice is an error.
//!
//! Owns only that rule. Duplicate keys are refused because parsers disagree on them (first
//! wins, last wins, both): a sender could show the signature check, the audit reader and a
//! downstream service different `id`s in one signed body. Depth stays bounded by
//! serde_json's recursion limit. It must never accept what `serde_json` refuses.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Parses `bytes` as one JSON value, refusing duplicate object keys.
pub fn from_slice(bytes: &[u8]) -> Result<Value, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = StrictValue.deserialize(&mut de)?;
    de.end()?;
    Ok(value)
}

/// A seed that builds a [`Value`] and fails on a repeated key.
struct StrictValue;

impl<'de> DeserializeSeed<'de> for StrictValue {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        serde_json::Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("a number is not finite"))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(StrictValue)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(de::Error::custom(format!(
                    "the key {key:?} appears twice in one object"
                )));
            }
            let value = map.next_value_seed(StrictValue)?;
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn same_values_as_serde_json_for_valid_input() {
        for text in [
            r#"{"a":1,"b":[true,null,"x",{"c":-2.5}],"d":{}}"#,
            "[]",
            "\"s\"",
            "12345678901234567890",
            "-9223372036854775808",
            "1e300",
        ] {
            let want: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}"));
            let got = from_slice(text.as_bytes()).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(got, want, "{text}");
        }
    }

    #[test]
    fn duplicate_keys_at_any_depth_are_refused() {
        for text in [
            r#"{"id":"a","id":"b"}"#,
            r#"{"x":{"id":1,"id":1}}"#,
            r#"[{"k":1},{"k":2,"k":3}]"#,
        ] {
            let err = from_slice(text.as_bytes()).err().map(|e| e.to_string());
            assert!(err.unwrap_or_default().contains("appears twice"), "{text}");
        }
        assert_eq!(
            from_slice(br#"[{"k":1},{"k":2}]"#).ok(),
            Some(json!([{"k":1},{"k":2}]))
        );
    }

    #[test]
    fn what_serde_json_refuses_stays_refused() {
        for text in ["1e400", "{\"a\":", "[1,]", "{} x", &"[".repeat(5000)] {
            assert!(from_slice(text.as_bytes()).is_err(), "{text}");
        }
    }
}
