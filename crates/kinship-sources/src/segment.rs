//! Messages of the Segment tracking spec (identify, track, page, screen, group, alias), as
//! Segment's and RudderStack's SDKs send them to the collection API. Validation turns a
//! message into a record of the log; the mapping to traits and events is fixed by the spec.

use kinship_core::{Identifier, NewRecord, encode_identifiers};
use kinship_normalize::parse_timestamp_ms;
use phonenumber::country::Id as Region;
use serde_json::{Map, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    Identify,
    Track,
    Page,
    Screen,
    Group,
    Alias,
}

impl MessageType {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "identify" => Self::Identify,
            "track" => Self::Track,
            "page" => Self::Page,
            "screen" => Self::Screen,
            "group" => Self::Group,
            "alias" => Self::Alias,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Identify => "identify",
            Self::Track => "track",
            Self::Page => "page",
            Self::Screen => "screen",
            Self::Group => "group",
            Self::Alias => "alias",
        }
    }
}

/// Validates a message and turns it into a record. `kind` comes from the route (`/v1/track`)
/// or, inside a batch, from the message's `type`. The batch's top-level `context` fills in
/// keys the message's own context lacks. `Err` is a reason fit for a 400 response.
pub fn accept(
    mut msg: Map<String, Value>,
    kind: Option<MessageType>,
    batch_context: Option<&Map<String, Value>>,
    received_at_ms: i64,
    region: Region,
) -> Result<NewRecord, String> {
    let kind = match kind {
        Some(k) => k,
        None => {
            let t = msg
                .get("type")
                .and_then(Value::as_str)
                .ok_or("each batch item needs a `type` (identify, track, page, screen, group or alias)")?;
            MessageType::parse(t).ok_or_else(|| format!("unknown message type {t:?}; use identify, track, page, screen, group or alias"))?
        }
    };
    msg.insert("type".into(), kind.as_str().into());
    if let Some(batch) = batch_context {
        let context = msg.entry("context").or_insert_with(|| Value::Object(Map::new()));
        let Value::Object(context) = context else { return Err("`context` must be an object".into()) };
        for (k, v) in batch {
            context.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    let user_id = id_field(&msg, "userId")?;
    let anonymous_id = id_field(&msg, "anonymousId")?;
    if user_id.is_none() && anonymous_id.is_none() {
        return Err("`userId` or `anonymousId` is required".into());
    }
    match kind {
        MessageType::Track if msg.get("event").and_then(Value::as_str).is_none_or(|e| e.trim().is_empty()) => {
            return Err("a track call needs an `event` name".into());
        }
        MessageType::Alias if id_field(&msg, "previousId")?.is_none() => return Err("an alias call needs `previousId`".into()),
        MessageType::Group if id_field(&msg, "groupId")?.is_none() => return Err("a group call needs `groupId`".into()),
        _ => {}
    }
    for field in ["traits", "properties", "context", "integrations"] {
        if msg.get(field).is_some_and(|v| !v.is_object() && !v.is_null()) {
            return Err(format!("`{field}` must be an object"));
        }
    }
    let timestamp = match msg.get("timestamp").or_else(|| msg.get("sentAt")) {
        None | Some(Value::Null) => received_at_ms,
        Some(Value::String(t)) => parse_timestamp_ms(t).ok_or_else(|| format!("`timestamp` {t:?} is not an ISO 8601 date-time"))?,
        Some(other) => return Err(format!("`timestamp` must be an ISO 8601 string, not {other}")),
    };
    let mut identifiers = Vec::new();
    let mut push = |kind: &str, raw: Option<String>| {
        if let Some(value) = raw.and_then(|r| kinship_normalize::identifier(kind, &r, region)) {
            identifiers.push(Identifier::new(kind, value));
        }
    };
    push("user_id", user_id);
    push("anonymous_id", anonymous_id);
    // Alias links the previous (usually anonymous) id to the user.
    push("anonymous_id", id_field(&msg, "previousId")?);
    let traits = user_traits(&msg);
    push("email", traits.and_then(|t| t.get("email")).and_then(Value::as_str).map(String::from));
    push("phone", traits.and_then(|t| t.get("phone")).and_then(Value::as_str).map(String::from));

    let key = match msg.get("messageId") {
        Some(Value::String(id)) if !id.trim().is_empty() && id.len() <= 256 => id.trim().to_string(),
        Some(Value::String(_)) | Some(Value::Number(_)) | Some(Value::Null) | None => {
            // Without a messageId a retry cannot be recognised; the content hash (taken
            // before the arrival time is added) at least recognises an identical resend.
            blake3::hash(Value::Object(msg.clone()).to_string().as_bytes()).to_hex()[..32].to_string()
        }
        Some(_) => return Err("`messageId` must be a string of at most 256 characters".into()),
    };
    msg.insert("receivedAt".into(), received_at_ms.into());
    let payload = Value::Object(msg);
    Ok(NewRecord { key, payload: payload.to_string(), identifiers: encode_identifiers(&identifiers), timestamp: Some(timestamp) })
}

/// A string or number id field; other types are an error.
fn id_field(msg: &Map<String, Value>, field: &str) -> Result<Option<String>, String> {
    match msg.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) if s.len() <= 256 => Ok(Some(s.trim().to_string())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(_) => Err(format!("`{field}` must be a string of at most 256 characters")),
    }
}

/// The person's traits: `traits` of an identify call, else `context.traits`.
fn user_traits(msg: &Map<String, Value>) -> Option<&Map<String, Value>> {
    let own = msg.get("traits").and_then(Value::as_object).filter(|_| msg.get("type").and_then(Value::as_str) == Some("identify"));
    own.or_else(|| msg.get("context")?.get("traits")?.as_object())
}

/// Traits a stored message contributes to the golden record. A `group` call says which
/// group (account, company) the user belongs to: `group_id`, and `group_name` when the
/// group's traits name it.
pub fn traits(msg: &Map<String, Value>) -> Vec<(String, Value)> {
    if msg.get("type").and_then(Value::as_str) == Some("group") {
        let Some(id) = msg.get("groupId").filter(|v| v.is_string() || v.is_number()) else { return Vec::new() };
        let mut out = vec![("group_id".to_string(), id.clone())];
        if let Some(name) = msg.get("traits").and_then(|t| t.get("name")).filter(|v| v.is_string()) {
            out.push(("group_name".to_string(), name.clone()));
        }
        return out;
    }
    user_traits(msg).into_iter().flatten().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// The timeline event of a stored message: track, page and screen calls.
pub fn event(msg: &Map<String, Value>) -> Option<(String, Map<String, Value>)> {
    let name = match msg.get("type")?.as_str()? {
        "track" => msg.get("event")?.as_str()?.to_string(),
        "page" => "Page Viewed".to_string(),
        "screen" => "Screen Viewed".to_string(),
        _ => return None,
    };
    let mut properties = msg.get("properties").and_then(Value::as_object).cloned().unwrap_or_default();
    if let Some(page_name) = msg.get("name").filter(|v| v.is_string()) {
        properties.entry("name").or_insert_with(|| page_name.clone());
    }
    Some((name, properties))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn us() -> Region {
        kinship_normalize::region("US").unwrap()
    }

    #[test]
    fn identify_extracts_identifiers() {
        let r = accept(
            obj(json!({"userId": "u1", "anonymousId": "a1", "messageId": "m1", "traits": {"email": " Ann@X.com", "phone": "(415) 555-2671"}, "timestamp": "2024-01-01T00:00:00Z"})),
            Some(MessageType::Identify),
            None,
            0,
            us(),
        )
        .unwrap();
        assert_eq!(r.key, "m1");
        assert_eq!(r.identifiers, "user_id\tu1\nanonymous_id\ta1\nemail\tann@x.com\nphone\t+14155552671");
        assert_eq!(r.timestamp, Some(1_704_067_200_000));
    }

    #[test]
    fn a_group_call_names_the_users_group() {
        let group = obj(json!({"type": "group", "userId": "u1", "groupId": "acme-1", "traits": {"name": "ACME", "employees": 40}}));
        assert_eq!(traits(&group), vec![("group_id".to_string(), json!("acme-1")), ("group_name".to_string(), json!("ACME"))]);
        assert!(traits(&obj(json!({"type": "group", "userId": "u1", "groupId": null}))).is_empty());
        assert_eq!(event(&group), None, "a group call is not a timeline event");
    }

    #[test]
    fn batch_context_fills_gaps_and_item_wins() {
        let ctx = obj(json!({"library": {"name": "batch"}, "ip": "1.2.3.4"}));
        let r = accept(
            obj(json!({"type": "track", "event": "Signed Up", "userId": "u", "context": {"ip": "5.6.7.8"}})),
            None,
            Some(&ctx),
            7,
            us(),
        )
        .unwrap();
        let p: Value = serde_json::from_str(&r.payload).unwrap();
        assert_eq!(p["context"]["ip"], "5.6.7.8");
        assert_eq!(p["context"]["library"]["name"], "batch");
        assert_eq!(r.timestamp, Some(7), "no timestamp: the time it arrived");
    }

    #[test]
    fn invalid_messages_say_why() {
        let cases = [
            (json!({"event": "x"}), Some(MessageType::Track), "`userId` or `anonymousId`"),
            (json!({"userId": "u"}), Some(MessageType::Track), "`event`"),
            (json!({"userId": "u"}), Some(MessageType::Alias), "previousId"),
            (json!({"userId": "u", "type": "shout"}), None, "unknown message type"),
            (json!({"userId": "u"}), None, "needs a `type`"),
            (json!({"userId": "u", "timestamp": "last tuesday"}), Some(MessageType::Page), "ISO 8601"),
            (json!({"userId": ["u"]}), Some(MessageType::Page), "`userId` must be"),
            (json!({"userId": "u", "properties": 3}), Some(MessageType::Page), "`properties` must be an object"),
        ];
        for (msg, kind, expect) in cases {
            let err = accept(obj(msg.clone()), kind, None, 0, us()).unwrap_err();
            assert!(err.contains(expect), "{msg}: {err}");
        }
    }

    #[test]
    fn retried_message_without_id_keeps_its_key_when_resent_later() {
        let m = json!({"userId": "u", "event": "E", "timestamp": "2024-01-01T00:00:00Z"});
        let a = accept(obj(m.clone()), Some(MessageType::Track), None, 5, us()).unwrap();
        let b = accept(obj(m), Some(MessageType::Track), None, 9, us()).unwrap();
        assert_eq!(a.key, b.key);
    }

    #[test]
    fn timeline_and_traits() {
        let page = obj(json!({"type": "page", "name": "Pricing", "properties": {"url": "/p"}, "context": {"traits": {"plan": "pro"}}}));
        let (name, props) = event(&page).unwrap();
        assert_eq!((name.as_str(), props["name"].as_str()), ("Page Viewed", Some("Pricing")));
        assert_eq!(traits(&page), vec![("plan".to_string(), json!("pro"))]);
        assert!(event(&obj(json!({"type": "identify", "traits": {"a": 1}}))).is_none());
    }
}
