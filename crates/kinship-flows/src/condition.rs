//! Conditions in the segment language, evaluated on one run: bare words are the trigger's
//! properties and the facts gathered so far (`stock.on_hand`), `traits.x` is the profile's
//! trait and event functions read the profile's events.
//!
//! Parsed with [`kinship_expr::parse_about_event`] and evaluated on one event made of the
//! trigger's properties (also as `trigger.x`) and the facts, so flows use the language's
//! checker and evaluator as they are.

use crate::run::{lookup_path, EventRecord, Subject};
use kinship_expr::{EvalContext, EventView, ProfileView, Program, Scalar, Schema};
use serde_json::{Map, Value};

#[derive(Debug, Clone)]
pub struct Condition {
    pub text: String,
    program: Program,
    /// The words the condition reads, for the trace.
    reads: Vec<String>,
}

impl Condition {
    /// Parses and checks `text`; the error shows the text with a caret under the fault.
    pub fn compile(text: &str) -> Result<Self, String> {
        let expr = kinship_expr::parse_about_event(text).map_err(|e| e.render(text))?;
        let program = Program::compile_segment(&expr, &Schema::new()).map_err(|e| e.render(text))?;
        let dependencies = program.dependencies();
        let reads = dependencies.properties.iter().cloned().chain(dependencies.traits.iter().map(|t| format!("traits.{t}"))).collect();
        Ok(Self { text: text.to_string(), program, reads })
    }

    /// Whether the condition reads nothing but the event it is about: no trait, computed trait,
    /// segment or other event. Then it can be judged before the profile is loaded.
    pub fn reads_only_the_event(&self) -> bool {
        let d = self.program.dependencies();
        d.traits.is_empty() && d.computed.is_empty() && d.segments.is_empty() && d.events.is_empty() && !d.any_event
    }

    /// The event names the condition's functions read, or `None` when it reads every event
    /// (`count(*)`) or segments and computed traits, which may read any.
    pub fn events_read(&self) -> Option<std::collections::BTreeSet<String>> {
        let d = self.program.dependencies();
        (!d.any_event && d.segments.is_empty() && d.computed.is_empty()).then(|| d.events.clone())
    }

    /// Whether the condition holds, and the values of what it read.
    pub fn evaluate(
        &self,
        subject: &Subject,
        trigger: &EventRecord,
        facts: &Map<String, Value>,
        now_ms: i64,
    ) -> (bool, Map<String, Value>) {
        let mut properties = trigger.properties.clone();
        for (name, value) in &trigger.properties {
            properties.insert(format!("trigger.{name}"), value.clone());
        }
        for (name, value) in facts {
            properties.insert(name.clone(), value.clone());
        }
        let view = View { subject };
        let about = EventRecord { properties, ..trigger.clone() };
        let holds = self.program.evaluate_on(&view, &about, &EvalContext::at(now_ms)).is_true();
        let mut values = Map::new();
        for word in &self.reads {
            let value = match word.strip_prefix("traits.") {
                Some(name) => lookup_path(&subject.traits, name),
                None => lookup_path(&about.properties, word),
            };
            values.insert(word.clone(), value.cloned().unwrap_or(Value::Null));
        }
        (holds, values)
    }
}

struct View<'a> {
    subject: &'a Subject,
}

impl EventView for EventRecord {
    fn timestamp_ms(&self) -> i64 {
        self.timestamp_ms
    }

    fn property(&self, name: &str) -> Scalar<'_> {
        lookup_path(&self.properties, name).map_or(Scalar::Null, Scalar::from_json)
    }
}

impl ProfileView for View<'_> {
    type Event = EventRecord;

    fn trait_value(&self, name: &str) -> Scalar<'_> {
        lookup_path(&self.subject.traits, name).map_or(Scalar::Null, Scalar::from_json)
    }

    fn computed(&self, name: &str) -> Scalar<'_> {
        self.subject.computed.get(name).map_or(Scalar::Null, Scalar::from_json)
    }

    fn in_segment(&self, name: &str) -> bool {
        self.subject.segments.iter().any(|s| s == name)
    }

    fn event_name<'a>(&'a self, event: &'a EventRecord) -> &'a str {
        &event.name
    }

    fn events<'a>(&'a self, name: Option<&'a str>) -> impl DoubleEndedIterator<Item = &'a EventRecord> + 'a {
        self.subject.events.iter().filter(move |e| name.is_none_or(|n| e.name == n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(name: &str, ts: i64, properties: Value) -> EventRecord {
        EventRecord {
            name: name.into(),
            timestamp_ms: ts,
            properties: properties.as_object().unwrap().clone(),
            source: "s".into(),
            key: format!("k{ts}"),
        }
    }

    #[test]
    fn words_read_the_trigger_and_facts_and_functions_read_the_profile() {
        let subject = Subject {
            traits: json!({"country": "AU"}).as_object().unwrap().clone(),
            events: vec![event("Order Completed", 1, json!({})), event("Order Completed", 2, json!({}))],
            ..Subject::default()
        };
        let trigger = event("Ticket Opened", 3, json!({"subject": "Tent arrived damaged"}));
        let facts = json!({"stock": {"on_hand": 0}}).as_object().unwrap().clone();
        let c = Condition::compile(
            r#"subject contains "damaged" and stock.on_hand <= 0 and traits.country == "AU" and count("Order Completed") == 2"#,
        )
        .unwrap();
        let (holds, values) = c.evaluate(&subject, &trigger, &facts, 10);
        assert!(holds);
        assert_eq!(values["subject"], json!("Tent arrived damaged"));
        assert_eq!(values["stock.on_hand"], json!(0));
        assert_eq!(values["traits.country"], json!("AU"));
        let facts = json!({"stock": {"on_hand": 3}}).as_object().unwrap().clone();
        assert!(!c.evaluate(&subject, &trigger, &facts, 10).0);
    }

    #[test]
    fn errors_point_into_the_condition_as_written() {
        let err = Condition::compile("subject contains").unwrap_err();
        assert!(err.contains("subject contains"), "{err}");
        let err = Condition::compile("count(\"X\") > \"two\"").unwrap_err();
        assert!(err.contains("^"), "{err}");
        assert!(Condition::compile(r#"subject == "a") or (count("X") > 0"#).is_err());
    }
}
