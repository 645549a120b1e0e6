//! Golden-record traits as a profile stores them: each trait name maps to
//! `[value, source, record, timestamp]`. An array rather than an object because half a
//! million profiles each hold several, and the keys would double the bytes written.
//! A source's priority is not stored: it is read from the current configuration.

use serde_json::{json, Map, Value};

/// One stored trait: the value, the source and record it came from, and that record's time
/// (`i64::MIN` when it has none).
pub(crate) fn entry(value: &Value, source: &str, record: i64, timestamp: i64) -> Value {
    json!([value, source, record, timestamp])
}

pub(crate) fn value(entry: &Value) -> &Value {
    &entry[0]
}

pub(crate) fn source(entry: &Value) -> Option<&str> {
    entry[1].as_str()
}

pub(crate) fn record(entry: &Value) -> Option<i64> {
    entry[2].as_i64()
}

pub(crate) fn timestamp(entry: &Value) -> Option<i64> {
    entry[3].as_i64()
}

/// The plain `name: value` traits of a stored golden record (for listings and matching).
pub fn values(stored: &str) -> Map<String, Value> {
    match serde_json::from_str::<Value>(stored) {
        Ok(Value::Object(traits)) => traits.into_iter().map(|(name, e)| (name, value(&e).clone())).collect(),
        _ => Map::new(),
    }
}
