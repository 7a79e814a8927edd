//! JSON request bodies read strictly: an object that gives a key twice is an error naming
//! the key, at any depth (`environ.A`, `x[0].k`).
//!
//! Why: serde_json keeps the last of two equal keys without a word, and
//! `#[serde(deny_unknown_fields)]` does not see duplicates. A body like
//! `{"command": "true", ..., "command": "rm -rf ~"}` reads as harmless to whoever looks at
//! its first lines, and runs the second.

use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Parses `bytes` as JSON into a [`Value`], refusing an object with a key given twice.
///
/// # Errors
/// serde_json's error: a syntax error, or (category `Data`) a duplicate key, whose message
/// names the key's path, with the line and column of the second one.
pub fn from_slice(bytes: &[u8]) -> Result<Value, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = Strict {
        path: String::new(),
    }
    .deserialize(&mut de)?;
    de.end()?;
    Ok(value)
}

/// A value at `path` (empty at the top).
struct Strict {
    path: String,
}

impl Strict {
    fn key(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }
}

impl<'de> DeserializeSeed<'de> for Strict {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict {
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

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        loop {
            let path = format!("{}[{}]", self.path, out.len());
            match seq.next_element_seed(Strict { path })? {
                Some(v) => out.push(v),
                None => return Ok(Value::Array(out)),
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let path = self.key(&key);
            if out.contains_key(&key) {
                return Err(de::Error::custom(format_args!(
                    "the key \"{path}\" is given twice: give each key once"
                )));
            }
            let value = map.next_value_seed(Strict { path })?;
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_value_as_serde_json_without_duplicates() {
        let text =
            r#"{"a": [1, -2, 3.5, true, null, "s", {"b": {}}], "c": {"d": 18446744073709551615}}"#;
        let strict = from_slice(text.as_bytes()).unwrap();
        let loose: Value = serde_json::from_str(text).unwrap();
        assert_eq!(strict, loose);
    }

    #[test]
    fn a_duplicate_is_named_with_its_path() {
        for (text, path) in [
            (r#"{"a": 1, "a": 2}"#, "\"a\""),
            (r#"{"e": {"X": "1", "Y": "2", "X": "3"}}"#, "\"e.X\""),
            (r#"{"l": [0, {"k": 1, "k": 2}]}"#, "\"l[1].k\""),
            (r#"[{"k": 1}, {"k": 2, "k": 3}]"#, "\"[1].k\""),
        ] {
            let e = from_slice(text.as_bytes()).unwrap_err();
            assert_eq!(e.classify(), serde_json::error::Category::Data);
            let msg = e.to_string();
            assert!(msg.contains(path) && msg.contains("twice"), "{msg}");
        }
    }

    #[test]
    fn syntax_errors_stay_syntax_errors() {
        for text in ["{", "{\"a\": 1} x", "[1,]", ""] {
            let e = from_slice(text.as_bytes()).unwrap_err();
            assert_ne!(e.classify(), serde_json::error::Category::Data, "{text}");
        }
    }
}
