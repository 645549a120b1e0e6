//! One accepted event as a stream message: the record the writer would have committed,
//! validated and keyed already, with its source. JSON, so other tools can read the stream.

use kinship_core::NewRecord;
use serde::{Deserialize, Serialize};

/// Borrowed to encode, owned to decode.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StreamEvent<S> {
    source: S,
    key: S,
    /// The Segment message as stored, a JSON object in text.
    payload: S,
    /// Normalised identifiers, see [`kinship_core::encode_identifiers`].
    identifiers: S,
    timestamp: Option<i64>,
}

pub fn encode(source: &str, record: &NewRecord) -> Vec<u8> {
    let event = StreamEvent {
        source,
        key: record.key.as_str(),
        payload: record.payload.as_str(),
        identifiers: record.identifiers.as_str(),
        timestamp: record.timestamp,
    };
    serde_json::to_vec(&event).expect("strings and numbers serialise")
}

/// The source and record of a message, or why it cannot be stored.
pub fn decode(bytes: &[u8]) -> Result<(String, NewRecord), String> {
    let e: StreamEvent<String> = serde_json::from_slice(bytes).map_err(|e| format!("not a kinship stream event: {e}"))?;
    if e.source.is_empty() || e.key.is_empty() {
        return Err("the event has an empty source or key".into());
    }
    // The resolver maps the payload later; one it cannot read must not reach the log.
    if !serde_json::from_str::<serde_json::Value>(&e.payload).is_ok_and(|p| p.is_object()) {
        return Err("the event's payload is not a JSON object".into());
    }
    Ok((e.source, NewRecord { key: e.key, payload: e.payload, identifiers: e.identifiers, timestamp: e.timestamp }))
}

/// The `Nats-Msg-Id` of an event, by which JetStream drops a retry within its duplicate
/// window. A key that cannot go in a header line verbatim is hashed.
pub fn message_id(source: &str, key: &str) -> String {
    if key.chars().all(|c| c.is_ascii_graphic() || c == ' ') {
        format!("{source}:{key}")
    } else {
        format!("{source}#{}", blake3::hash(key.as_bytes()).to_hex())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> NewRecord {
        NewRecord {
            key: "m-1".into(),
            payload: r#"{"type":"track","event":"Paid","userId":"u1"}"#.into(),
            identifiers: "user_id\tu1".into(),
            timestamp: Some(1_700_000_000_000),
        }
    }

    #[test]
    fn an_event_survives_the_trip() {
        assert_eq!(decode(&encode("web", &record())).unwrap(), ("web".to_string(), record()));
    }

    #[test]
    fn malformed_messages_say_why() {
        assert!(decode(b"not json").unwrap_err().contains("not a kinship stream event"));
        assert!(decode(br#"{"source":"web"}"#).unwrap_err().contains("missing field"));
        let mut bad = record();
        bad.payload = "[1]".into();
        assert!(decode(&encode("web", &bad)).unwrap_err().contains("payload"));
        assert!(decode(&encode("", &record())).unwrap_err().contains("empty source"));
    }

    #[test]
    fn message_ids_are_header_safe() {
        assert_eq!(message_id("web", "m-1"), "web:m-1");
        let odd = message_id("web", "m\r\n1");
        assert!(odd.starts_with("web#") && odd.chars().all(|c| c.is_ascii_graphic()), "{odd}");
        assert_ne!(odd, message_id("web", "m\n\r1"));
    }
}
