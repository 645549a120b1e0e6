//! A profile document as one role may see it.

use crate::keys::{pseudonym, PseudonymKey};
use crate::mask::{mask_value, MASK};
use crate::policy::{Access, FieldRules, Policy, RecordAccess};
use crate::scrub::Scrubber;
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};

/// The keys of an event that say what and when it was, not what it carried.
const EVENT_HEADER: [&str; 5] = ["type", "event", "timestamp", "source", "record_key"];

/// A profile as one role sees it, and what of it the role saw (for the audit log).
#[derive(Clone, Debug, PartialEq)]
pub struct Projected {
    pub value: Value,
    pub fields: FieldsSeen,
}

/// What a projection returned: the "which fields or events" of an audit entry.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct FieldsSeen {
    /// Trait fields by dotted path, each with how it was shown.
    pub traits: BTreeMap<String, Access>,
    /// Identifier kinds, each with how its values were shown.
    pub identifiers: BTreeMap<String, Access>,
    /// Names of the events returned.
    pub events: BTreeSet<String>,
    /// Sources whose raw records were returned.
    pub record_sources: BTreeSet<String>,
    /// Computed traits, each with how it was shown.
    pub computed: BTreeMap<String, Access>,
    pub segments: bool,
    pub consent: bool,
}

/// `doc` (the host's profile document, see the crate docs) as the role of `policy` may see
/// it. Fields, identifiers, events and records the role may not see are absent, masked ones
/// masked, pseudonymous ones replaced by keyed pseudonyms. Sections this crate does not know
/// are dropped, so a field the host adds later is not shown to anyone until it is added
/// here. Finally every string and object key is scrubbed: a value equal to one of the
/// profile's identifiers the role may not read, or an email address when the role may not
/// read emails, is masked (or pseudonymised) wherever it appears.
pub fn project(doc: &Value, policy: &Policy, key: &PseudonymKey) -> Projected {
    let mut out = Map::new();
    let mut seen = FieldsSeen::default();
    let Some(doc) = doc.as_object() else { return Projected { value: Value::Object(out), fields: seen } };
    let projector = Projector { policy, key };
    let identifiers = doc.get("identifiers").and_then(Value::as_array).map_or(&[][..], Vec::as_slice);

    if let Some(id) = doc.get("id") {
        out.insert("id".into(), id.clone());
    }
    if let Some(traits) = doc.get("traits").and_then(Value::as_object) {
        let traits = projector.object(traits, &policy.traits, "", None, Some(&mut seen.traits));
        if let Some(sources) = doc.get("trait_sources").and_then(Value::as_object) {
            let shown = sources.iter().filter(|(name, _)| traits.contains_key(*name)).map(|(name, source)| (name.clone(), source.clone()));
            out.insert("trait_sources".into(), Value::Object(shown.collect()));
        }
        out.insert("traits".into(), Value::Object(traits));
    }
    if doc.contains_key("identifiers") {
        out.insert("identifiers".into(), Value::Array(projector.identifiers(identifiers, &mut seen.identifiers)));
    }
    let events = doc.get("events").and_then(Value::as_array).map_or(&[][..], Vec::as_slice);
    if doc.contains_key("events") {
        out.insert("events".into(), Value::Array(projector.events(events, &mut seen.events)));
    }
    if policy.records != RecordAccess::Hidden {
        if let Some(records) = doc.get("records").and_then(Value::as_array) {
            out.insert("records".into(), Value::Array(projector.records(records, events, &mut seen.record_sources)));
        }
    }
    if policy.computed {
        if let Some(computed) = doc.get("computed").and_then(Value::as_object) {
            out.insert("computed".into(), Value::Object(projector.object(computed, &policy.traits, "", None, Some(&mut seen.computed))));
        }
        // Health scores are computed from the profile as computed traits are: shown to the
        // same roles, each measure's value included.
        if let Some(health) = doc.get("health") {
            out.insert("health".into(), health.clone());
        }
    }
    for (section, shown, flag) in [("segments", policy.segments, &mut seen.segments), ("consent", policy.consent, &mut seen.consent)] {
        if let (true, Some(value)) = (shown, doc.get(section)) {
            out.insert(section.into(), value.clone());
            *flag = true;
        }
    }

    let mut value = Value::Object(out);
    if let Some(scrubber) = Scrubber::new(identifiers, policy, key) {
        scrubber.scrub(&mut value);
    }
    Projected { value, fields: seen }
}

struct Projector<'a> {
    policy: &'a Policy,
    key: &'a PseudonymKey,
}

impl Projector<'_> {
    /// The fields of `fields` (at `prefix`) that `rules` let through, as they may be shown.
    /// `inherited` is the access of the enclosing field, for nested fields no rule names.
    fn object(
        &self,
        fields: &Map<String, Value>,
        rules: &FieldRules,
        prefix: &str,
        inherited: Option<Access>,
        mut seen: Option<&mut BTreeMap<String, Access>>,
    ) -> Map<String, Value> {
        let mut out = Map::new();
        for (name, value) in fields {
            let path = if prefix.is_empty() { name.clone() } else { format!("{prefix}.{name}") };
            if let Some(shown) = self.value(value, rules, &path, inherited, seen.as_deref_mut()) {
                out.insert(name.clone(), shown);
            }
        }
        out
    }

    /// `value` at `path` as it may be shown, or `None` when hidden. Objects and arrays are
    /// projected field by field; one left empty by hidden fields is dropped, so that even
    /// its presence is not revealed.
    fn value(
        &self,
        value: &Value,
        rules: &FieldRules,
        path: &str,
        inherited: Option<Access>,
        mut seen: Option<&mut BTreeMap<String, Access>>,
    ) -> Option<Value> {
        let access = self.policy.pseudonymised(path, rules.explicit(path).or(inherited).unwrap_or(rules.default));
        if access == Access::Hide {
            return None;
        }
        match value {
            Value::Object(fields) => {
                let shown = self.object(fields, rules, path, Some(access), seen);
                (fields.is_empty() || !shown.is_empty()).then_some(Value::Object(shown))
            }
            Value::Array(items) => {
                let shown: Vec<Value> =
                    items.iter().filter_map(|item| self.value(item, rules, path, Some(access), seen.as_deref_mut())).collect();
                (items.is_empty() || !shown.is_empty()).then_some(Value::Array(shown))
            }
            leaf => {
                if let Some(seen) = seen {
                    seen.insert(path.to_string(), access);
                }
                Some(self.leaf(leaf, access))
            }
        }
    }

    fn leaf(&self, value: &Value, access: Access) -> Value {
        match (access, value) {
            (Access::Allow, _) | (_, Value::Null) => value.clone(),
            (Access::Mask, Value::String(s)) => Value::String(mask_value(s)),
            (Access::Mask, _) => Value::String(MASK.to_string()),
            (_, Value::String(s)) => Value::String(pseudonym(self.key, s)),
            (_, other) => Value::String(pseudonym(self.key, &other.to_string())),
        }
    }

    /// The identifiers of kinds the role may see, values as it may see them.
    fn identifiers(&self, identifiers: &[Value], seen: &mut BTreeMap<String, Access>) -> Vec<Value> {
        let mut out = Vec::new();
        for identifier in identifiers {
            let Some(fields) = identifier.as_object() else { continue };
            let kind = fields.get("kind").and_then(Value::as_str).unwrap_or_default();
            let access = self.policy.identifier_access(kind);
            if access == Access::Hide {
                continue;
            }
            let mut shown = fields.clone();
            if let Some(value) = fields.get("value") {
                let text = value.as_str().map_or_else(|| value.to_string(), str::to_string);
                let text = match access {
                    Access::Allow => text,
                    Access::Mask => self.policy.mask_style(kind).apply(&text),
                    _ => pseudonym(self.key, &text),
                };
                shown.insert("value".into(), Value::String(text));
            }
            seen.insert(kind.to_string(), access);
            out.push(Value::Object(shown));
        }
        out
    }

    /// The events the role may see, properties through its event property rules.
    fn events(&self, events: &[Value], seen: &mut BTreeSet<String>) -> Vec<Value> {
        let mut out = Vec::new();
        for event in events {
            let Some(fields) = event.as_object().filter(|_| self.policy.event_visible(event_name(event))) else { continue };
            let rules = &self.policy.event_properties;
            let mut shown = Map::new();
            for (name, value) in fields {
                let value = match (name.as_str(), value) {
                    (header, _) if EVENT_HEADER.contains(&header) => Some(value.clone()),
                    // The readable line is decided once the properties are.
                    ("line", _) => None,
                    ("properties", Value::Object(properties)) => Some(Value::Object(self.object(properties, rules, "", None, None))),
                    // Anything else an event carries (a `context` with an IP, say) is a property too.
                    (_, _) => self.value(value, rules, name, None, None),
                };
                if let Some(value) = value {
                    shown.insert(name.clone(), value);
                }
            }
            // The line retells the event's fields as text (a case's subject, a few values): it
            // is shown only to roles that see identities and read every property in clear.
            if let Some(line) = fields.get("line") {
                if self.policy.sees_identities() && shown.get("properties") == fields.get("properties") {
                    shown.insert("line".into(), line.clone());
                }
            }
            seen.insert(event_name(event).to_string());
            out.push(Value::Object(shown));
        }
        out
    }

    /// The records the role may see. A record behind events the role may not see is left
    /// out, or its payload would show what hiding those events hides.
    fn records(&self, records: &[Value], events: &[Value], seen: &mut BTreeSet<String>) -> Vec<Value> {
        let origin =
            |e: &'_ Value| (e["source"].as_str().unwrap_or_default().to_string(), e["record_key"].as_str().unwrap_or_default().to_string());
        let (visible, hidden): (Vec<&Value>, Vec<&Value>) = events.iter().partition(|e| self.policy.event_visible(event_name(e)));
        let visible: BTreeSet<(String, String)> = visible.into_iter().map(origin).collect();
        let hidden: BTreeSet<(String, String)> = hidden.into_iter().map(origin).filter(|o| !visible.contains(o)).collect();

        let mut out = Vec::new();
        for record in records {
            let Some(fields) = record.as_object() else { continue };
            let source = fields.get("source").and_then(Value::as_str).unwrap_or_default();
            let key = fields.get("key").and_then(Value::as_str).unwrap_or_default();
            if hidden.contains(&(source.to_string(), key.to_string())) {
                continue;
            }
            let mut shown = fields.clone();
            if let (RecordAccess::Projected, Some(payload)) = (self.policy.records, fields.get("payload")) {
                let projected = match payload {
                    Value::Object(fields) => Some(Value::Object(self.object(fields, &self.policy.traits, "", None, None))),
                    other => self.value(other, &self.policy.traits, "payload", None, None),
                };
                match projected {
                    Some(payload) => shown.insert("payload".into(), payload),
                    None => shown.remove("payload"),
                };
            }
            seen.insert(source.to_string());
            out.push(Value::Object(shown));
        }
        out
    }
}

/// What policies match an event by: its name, or its type (`page`, `identify`) when unnamed.
fn event_name(event: &Value) -> &str {
    let text = |key: &str| event.get(key).and_then(Value::as_str);
    text("event").or_else(|| text("type")).unwrap_or_default()
}

/// Fields that are not a profile document (a task's gathered facts) as the role sees event
/// properties: hidden ones dropped, masked ones masked, then scrubbed like any response.
pub fn project_fields(fields: &Map<String, Value>, identifiers: &[Value], policy: &Policy, key: &PseudonymKey) -> Map<String, Value> {
    let projector = Projector { policy, key };
    let mut value = Value::Object(projector.object(fields, &policy.event_properties, "", None, None));
    scrub(&mut value, identifiers, policy, key);
    match value {
        Value::Object(fields) => fields,
        _ => Map::new(),
    }
}

/// The last pass of [`project`], for responses that are not profile documents (match
/// evidence, source status, exports): every email address, when the role may not read
/// emails, and every value of `identifiers` (`[{kind, value}]`) the role may not read is
/// masked or pseudonymised wherever it appears, keys included.
pub fn scrub(value: &mut Value, identifiers: &[Value], policy: &Policy, key: &PseudonymKey) {
    if let Some(scrubber) = Scrubber::new(identifiers, policy, key) {
        scrubber.scrub(value);
    }
}
