//! Conditions in the segment language, evaluated on one run: bare words are the trigger's
//! properties and the facts gathered so far (`stock.on_hand`), `traits.x` is the profile's
//! trait and event functions read the profile's events; `in_segment`, `computed.x`,
//! `funnel("x")` and `health("x")` read what the host judged of the profile under its saved
//! definitions ([`Subject`]).
//!
//! Parsed with [`kinship_expr::parse_about_event`] and evaluated on one event made of the
//! trigger's properties (also as `trigger.x`) and the facts, so flows use the language's
//! checker and evaluator as they are.

use crate::run::{lookup_path, EventRecord, Subject};
use kinship_expr::{EvalContext, EventView, FunnelField, HealthField, ProfileView, Program, Scalar, Schema};
use serde_json::{Map, Value};

#[derive(Debug, Clone)]
pub struct Condition {
    pub text: String,
    program: Program,
    /// The words the condition reads, for the trace.
    reads: Vec<String>,
    /// Whether one of them is `trigger.x`, which only an [`EventRecord`] answers.
    names_trigger: bool,
}

impl Condition {
    /// Parses and checks `text` against the saved definitions in `schema`; the error shows
    /// the text with a caret under the fault.
    pub fn compile(text: &str, schema: &Schema) -> Result<Self, String> {
        let expr = kinship_expr::parse_about_event(text).map_err(|e| e.render(text))?;
        let program = Program::compile_segment(&expr, schema).map_err(|e| e.render(text))?;
        let dependencies = program.dependencies();
        let reads: Vec<String> = dependencies
            .properties
            .iter()
            .cloned()
            .chain(dependencies.traits.iter().map(|t| format!("traits.{t}")))
            .chain(dependencies.computed.iter().map(|c| format!("computed.{c}")))
            .chain(dependencies.funnels.iter().map(|f| format!("funnel.{f}")))
            .chain(dependencies.healths.iter().map(|h| format!("health.{h}")))
            .chain(dependencies.segments.iter().map(|s| format!("segment.{s}")))
            .collect();
        let names_trigger = reads.iter().any(|w| w.starts_with("trigger."));
        Ok(Self { text: text.to_string(), program, reads, names_trigger })
    }

    /// Whether the condition reads a saved definition: a segment, computed trait, funnel or
    /// health score.
    pub fn reads_definitions(&self) -> bool {
        let d = self.program.dependencies();
        !(d.segments.is_empty() && d.computed.is_empty() && d.funnels.is_empty() && d.healths.is_empty())
    }

    /// Whether the condition reads nothing but the event it is about: no trait, computed trait,
    /// segment or other event. Then it can be judged before the profile is loaded.
    pub fn reads_only_the_event(&self) -> bool {
        let d = self.program.dependencies();
        d.traits.is_empty() && d.events.is_empty() && !d.any_event && !self.reads_definitions()
    }

    /// The event names the condition's functions read, or `None` when it reads every event
    /// (`count(*)`) or saved definitions, which may read any.
    pub fn events_read(&self) -> Option<std::collections::BTreeSet<String>> {
        let d = self.program.dependencies();
        (!d.any_event && !self.reads_definitions()).then(|| d.events.clone())
    }

    /// Whether the condition holds on the trigger alone, with no profile and no facts: what a
    /// host asks of every candidate event, so it copies nothing unless the condition names
    /// `trigger.x`.
    pub fn holds_on_trigger(&self, trigger: &EventRecord) -> bool {
        if self.names_trigger {
            return self.evaluate(&Subject::default(), trigger, &Map::new(), trigger.timestamp_ms).0;
        }
        let nobody = Subject::default();
        self.program.evaluate_on(&View { subject: &nobody }, trigger, &EvalContext::at(trigger.timestamp_ms)).is_true()
    }

    /// Whether the condition holds on `event` of a host's own kind (a held profile's event),
    /// for a condition that reads only the event; `None` when it names `trigger.x`, which
    /// only an [`EventRecord`] answers.
    pub fn holds_on<P: ProfileView>(&self, profile: &P, event: &P::Event) -> Option<bool> {
        if self.names_trigger {
            return None;
        }
        Some(self.program.evaluate_on(profile, event, &EvalContext::at(event.timestamp_ms())).is_true())
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
            let value = if let Some(name) = word.strip_prefix("traits.") {
                lookup_path(&subject.traits, name).cloned()
            } else if let Some(name) = word.strip_prefix("computed.") {
                subject.computed.get(name).cloned()
            } else if let Some(name) = word.strip_prefix("funnel.") {
                subject.funnels.get(name).cloned()
            } else if let Some(name) = word.strip_prefix("health.") {
                subject.health.get(name).cloned()
            } else if let Some(name) = word.strip_prefix("segment.") {
                Some(Value::Bool(subject.segments.iter().any(|s| s == name)))
            } else {
                lookup_path(&about.properties, word).cloned()
            };
            values.insert(word.clone(), value.unwrap_or(Value::Null));
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

    fn funnel(&self, name: &str, field: FunnelField, _now_ms: i64) -> Scalar<'_> {
        let Some(position) = self.subject.funnels.get(name) else { return Scalar::Null };
        match field {
            FunnelField::Step => Scalar::Number(position.get("step").and_then(Value::as_f64).unwrap_or(0.0)),
            FunnelField::Reached => position.get("reached").and_then(Value::as_i64).map_or(Scalar::Null, Scalar::Date),
            FunnelField::Stuck => Scalar::Bool(position.get("stuck").and_then(Value::as_bool).unwrap_or(false)),
        }
    }

    fn health(&self, name: &str, field: HealthField, _now_ms: i64) -> Scalar<'_> {
        let Some(scored) = self.subject.health.get(name) else { return Scalar::Null };
        let value = match field {
            HealthField::Score => scored.get("score"),
            HealthField::Band => scored.get("band"),
        };
        value.map_or(Scalar::Null, Scalar::from_json)
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
            &Schema::new(),
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
    fn judged_on_the_trigger_alone_as_on_a_run_without_facts() {
        let trigger = event("Ticket Opened", 3, json!({"subject": "Tent arrived damaged", "status": "open", "n": 2}));
        let other = event("Ticket Opened", 4, json!({"subject": "Thanks", "status": "open"}));
        for text in [
            r#"status == "open" and subject contains "damaged""#,
            r#"trigger.status == "open" and trigger.subject contains "damaged""#,
            r#"trigger.n > 1 or subject contains "Thanks""#,
            r#"missing == null and subject contains "damaged""#,
        ] {
            let c = Condition::compile(text, &Schema::new()).unwrap();
            for t in [&trigger, &other] {
                let full = c.evaluate(&Subject::default(), t, &Map::new(), t.timestamp_ms).0;
                assert_eq!(c.holds_on_trigger(t), full, "{text} on {:?}", t.properties);
            }
            assert!(c.holds_on_trigger(&trigger), "{text}");
        }
    }

    #[test]
    fn errors_point_into_the_condition_as_written() {
        let err = Condition::compile("subject contains", &Schema::new()).unwrap_err();
        assert!(err.contains("subject contains"), "{err}");
        let err = Condition::compile("count(\"X\") > \"two\"", &Schema::new()).unwrap_err();
        assert!(err.contains("^"), "{err}");
        assert!(Condition::compile(r#"subject == "a") or (count("X") > 0"#, &Schema::new()).is_err());
    }

    #[test]
    fn saved_definitions_are_read_as_the_host_judged_them() {
        let mut schema = Schema::new();
        schema.funnels.insert("checkout".into());
        schema.healths.insert("customer".into());
        schema.segments.insert("vip".into());
        schema.computed.insert("ltv".into(), kinship_expr::Type::Number);
        let subject = Subject {
            funnels: json!({"checkout": {"step": 2, "reached": 5, "stuck": true}}).as_object().unwrap().clone(),
            health: json!({"customer": {"score": 31.5, "band": "red"}}).as_object().unwrap().clone(),
            segments: vec!["vip".into()],
            computed: json!({"ltv": 900}).as_object().unwrap().clone(),
            ..Subject::default()
        };
        let trigger = event("Ticket Opened", 10, json!({}));
        let text = r#"funnel("checkout").step >= 2 and health("customer").band == "red" and in_segment("vip") and computed.ltv > 500"#;
        let c = Condition::compile(text, &schema).unwrap();
        assert!(c.reads_definitions() && !c.reads_only_the_event() && c.events_read().is_none());
        let (holds, values) = c.evaluate(&subject, &trigger, &Map::new(), 10);
        assert!(holds, "{values:?}");
        assert_eq!(values["health.customer"], json!({"score": 31.5, "band": "red"}));
        assert_eq!(values["segment.vip"], json!(true));
        // A profile the host did not judge (no position, no score) meets none of it.
        assert!(!c.evaluate(&Subject::default(), &trigger, &Map::new(), 10).0);
        let early = Condition::compile(r#"funnel("checkout").reached < now()"#, &schema).unwrap();
        assert!(early.evaluate(&subject, &trigger, &Map::new(), 10).0);
        let stuck = Condition::compile(r#"funnel("checkout").stuck"#, &schema).unwrap();
        assert!(stuck.evaluate(&subject, &trigger, &Map::new(), 10).0);
        assert!(!stuck.evaluate(&Subject::default(), &trigger, &Map::new(), 10).0);
        // Names not saved are refused.
        assert!(Condition::compile(r#"funnel("cart").step > 1"#, &schema).is_err());
        assert!(Condition::compile(r#"health("customer").score < 50"#, &Schema::new()).is_err());
    }
}
