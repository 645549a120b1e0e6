//! Running a compiled flow against one trigger: the trace, the facts with their sources, the
//! task and the deliveries it asks for. Nothing here writes; the host stores the result.

use crate::definition::{Flow, Priority, Step, TraitValue};
use crate::similar::suggest_replacement;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// An event of the profile (or the trigger), with the record it came from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    pub name: String,
    pub timestamp_ms: i64,
    pub properties: Map<String, Value>,
    pub source: String,
    pub key: String,
}

/// The profile a run is about.
#[derive(Debug, Clone, Default)]
pub struct Subject {
    pub id: String,
    pub traits: Map<String, Value>,
    pub computed: Map<String, Value>,
    pub segments: Vec<String>,
    /// Per saved funnel, the profile's position: `{"step": 2, "reached": ms, "stuck": false}`.
    pub funnels: Map<String, Value>,
    /// Per saved health definition, the profile's score: `{"score": 41.5, "band": "red"}`.
    pub health: Map<String, Value>,
    /// Oldest first.
    pub events: Vec<EventRecord>,
}

/// Reference data that is not about people (a product catalogue, stock levels), keyed.
#[derive(Debug, Clone, Default)]
pub struct Reference {
    pub name: String,
    /// Where the rows came from (a file), for facts' sources.
    pub origin: String,
    /// When the rows were read or last changed, in milliseconds.
    pub as_of_ms: i64,
    /// Rows in their file's order, each with its key.
    pub rows: Vec<(String, Map<String, Value>)>,
    index: BTreeMap<String, usize>,
}

impl Reference {
    pub fn new(name: &str, origin: &str, as_of_ms: i64, rows: Vec<(String, Map<String, Value>)>) -> Self {
        let mut index = BTreeMap::new();
        for (i, (key, _)) in rows.iter().enumerate() {
            index.entry(key.clone()).or_insert(i);
        }
        Self { name: name.into(), origin: origin.into(), as_of_ms, rows, index }
    }

    pub fn row(&self, key: &str) -> Option<&Map<String, Value>> {
        self.index.get(key).map(|&i| &self.rows[i].1)
    }
}

/// A gathered fact: its value and where it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fact {
    pub name: String,
    pub value: Value,
    /// The source (or reference) and record key the value was read from.
    pub source: String,
    pub record: String,
    /// The record's time, in milliseconds.
    pub at_ms: i64,
}

/// One line of a run's trace: a step, what it found, and the values it decided on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceStep {
    pub step: String,
    pub outcome: String,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub values: Map<String, Value>,
}

/// A task the run asks for; the host assigns it and stores it once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskDraft {
    pub title: String,
    pub body: String,
    pub team: String,
    pub priority: Priority,
    pub due_ms: Option<i64>,
    pub skill: Option<String>,
}

/// What one run of a flow on one trigger decided.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Run {
    /// Whether the trigger's condition held; nothing else happens when it did not.
    pub matched: bool,
    pub trace: Vec<TraceStep>,
    pub facts: Vec<Fact>,
    pub tasks: Vec<TaskDraft>,
    /// Endpoints to deliver the run to.
    pub deliveries: Vec<String>,
    /// What the run changes about the profile, in step order; the host writes each as a
    /// record of the profile, so it resolves, shows on the timeline and is erased like any other.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<ProfileChange>,
    /// Set when the run stopped at a wait: the host keeps it and resumes it ([`resume`]).
    pub wait: Option<WaitDraft>,
}

/// A change a run makes to its profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProfileChange {
    SetTraits(Map<String, Value>),
    /// On (`added`) or off a list.
    List {
        list: String,
        added: bool,
    },
}

/// A run paused at a wait step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WaitDraft {
    /// The wait's index among the flow's steps; the run resumes after it.
    pub step: usize,
    /// The event that ends the wait early.
    pub until: Option<String>,
    /// When the wait ends if that event does not come.
    pub resume_at: i64,
    /// The fact that will say how it ended.
    pub fact: String,
}

/// Runs `flow` on `trigger`, an event of `subject`, at `now_ms`.
pub fn run(flow: &Flow, trigger: &EventRecord, subject: &Subject, references: &BTreeMap<String, Reference>, now_ms: i64) -> Run {
    let mut out = Run::default();
    if trigger.name != flow.trigger_event() {
        return out;
    }
    let mut facts = Map::new();
    if let Some(condition) = &flow.trigger {
        let (holds, values) = condition.evaluate(subject, trigger, &facts, now_ms);
        out.trace.push(TraceStep {
            step: format!("trigger {} when {}", trigger.name, condition.text),
            outcome: if holds { "matched" } else { "not matched" }.into(),
            values,
        });
        if !holds {
            return out;
        }
    } else {
        out.trace.push(TraceStep { step: format!("trigger {}", trigger.name), outcome: "matched".into(), values: Map::new() });
    }
    out.matched = true;
    let mut runner = Runner { trigger, subject, references, now_ms, facts: &mut facts, out: &mut out };
    runner.top(&flow.steps, 0);
    out
}

/// Continues a run that waited at step `step`: `facts` are those gathered before the wait,
/// `ended` the event that ended it (`None`: its time ran out), judged at `now_ms`.
#[allow(clippy::too_many_arguments)]
pub fn resume(
    flow: &Flow,
    trigger: &EventRecord,
    subject: &Subject,
    references: &BTreeMap<String, Reference>,
    facts: &[Fact],
    step: usize,
    ended: Option<&EventRecord>,
    now_ms: i64,
) -> Run {
    let mut out = Run { matched: true, facts: facts.to_vec(), ..Run::default() };
    let Some(Step::Wait { fact, .. }) = flow.steps.get(step) else {
        out.trace.push(TraceStep {
            step: format!("resume at step {step}"),
            outcome: "this version of the flow has no wait there".into(),
            values: Map::new(),
        });
        return out;
    };
    let mut gathered: Map<String, Value> = facts.iter().map(|f| (f.name.clone(), f.value.clone())).collect();
    let ending = match ended {
        Some(e) => Fact {
            name: fact.clone(),
            value: json!({ "outcome": "event", "event": e.name, "at": kinship_expr::format_timestamp(e.timestamp_ms), "properties": e.properties }),
            source: e.source.clone(),
            record: e.key.clone(),
            at_ms: e.timestamp_ms,
        },
        None => Fact {
            name: fact.clone(),
            value: json!({ "outcome": "timeout", "at": kinship_expr::format_timestamp(now_ms) }),
            source: "flows".into(),
            record: format!("{}#{step}", trigger.key),
            at_ms: now_ms,
        },
    };
    let outcome = if ended.is_some() { "ended by the event" } else { "timed out" };
    let mut runner = Runner { trigger, subject, references, now_ms, facts: &mut gathered, out: &mut out };
    runner.gathered(ending, format!("resume after wait {step}"), outcome.into());
    runner.top(&flow.steps, step + 1);
    out
}

struct Runner<'a> {
    trigger: &'a EventRecord,
    subject: &'a Subject,
    references: &'a BTreeMap<String, Reference>,
    now_ms: i64,
    /// Gathered values by fact name, as conditions and templates read them.
    facts: &'a mut Map<String, Value>,
    out: &'a mut Run,
}

impl Runner<'_> {
    /// The flow's own steps from `from`, stopping at a wait.
    fn top(&mut self, steps: &[Step], from: usize) {
        for (i, step) in steps.iter().enumerate().skip(from) {
            if let Step::Wait { duration_ms, until, fact } = step {
                let resume_at = self.now_ms.saturating_add(*duration_ms);
                let label = match until {
                    Some(event) => format!("wait for {event}, until {}", kinship_expr::format_timestamp(resume_at)),
                    None => format!("wait until {}", kinship_expr::format_timestamp(resume_at)),
                };
                self.out.trace.push(TraceStep { step: label, outcome: "waiting".into(), values: Map::new() });
                self.out.wait = Some(WaitDraft { step: i, until: until.clone(), resume_at, fact: fact.clone() });
                return;
            }
            self.step(step);
        }
    }

    fn steps(&mut self, steps: &[Step]) {
        for step in steps {
            self.step(step);
        }
    }

    fn lookup(&self) -> impl Fn(&str, &str) -> Option<String> + '_ {
        move |root: &str, path: &str| {
            let value = match root {
                "trigger" => lookup_path(&self.trigger.properties, path),
                "traits" => lookup_path(&self.subject.traits, path),
                fact => match (self.facts.get(fact), path) {
                    (Some(value), "") => Some(value),
                    (Some(Value::Object(fields)), path) => lookup_path(fields, path),
                    _ => None,
                },
            }?;
            match value {
                Value::Null => None,
                Value::String(s) => Some(s.clone()),
                other => Some(other.to_string()),
            }
        }
    }

    fn gathered(&mut self, fact: Fact, step: String, outcome: String) {
        let mut values = Map::new();
        values.insert("source".into(), json!(fact.source));
        values.insert("record".into(), json!(fact.record));
        self.out.trace.push(TraceStep { step, outcome, values });
        self.facts.insert(fact.name.clone(), fact.value.clone());
        self.out.facts.retain(|f| f.name != fact.name);
        self.out.facts.push(fact);
    }

    fn missing(&mut self, step: String, outcome: String) {
        self.out.trace.push(TraceStep { step, outcome, values: Map::new() });
    }

    fn step(&mut self, step: &Step) {
        match step {
            Step::Mentioned { fact, reference, property, by } => {
                let label = format!("gather {fact}: the {reference} row whose {by} the trigger's {property} mentions");
                let text = self.trigger.properties.get(property).and_then(Value::as_str).unwrap_or_default();
                let found = self.references.get(reference).and_then(|r| mentioned_row(r, text, by).map(|row| (r, row)));
                match found {
                    Some((r, (key, row))) => {
                        let fact = Fact {
                            name: fact.clone(),
                            value: Value::Object(with_key(row, key)),
                            source: r.origin.clone(),
                            record: key.clone(),
                            at_ms: r.as_of_ms,
                        };
                        self.gathered(fact, label, format!("found {key}"));
                    }
                    None => self.missing(label, format!("none mentioned in {text:?}")),
                }
            }
            Step::Newest { fact, event, holding } => {
                let wanted = holding.as_ref().map(|(property, value)| (property, value.render(&self.lookup())));
                let label = match &wanted {
                    Some((property, value)) => {
                        format!("gather {fact}: the newest {event} whose {property} holds {}", value.as_deref().unwrap_or("?"))
                    }
                    None => format!("gather {fact}: the newest {event}"),
                };
                if let Some((_, None)) = &wanted {
                    return self.missing(label, "not looked for: a value it needs was not gathered".into());
                }
                let found = self.subject.events.iter().rev().filter(|e| e.name == *event).find(|e| match &wanted {
                    Some((property, Some(value))) => lookup_path(&e.properties, property).is_some_and(|v| holds(v, value)),
                    _ => true,
                });
                match found {
                    Some(e) => {
                        let mut value = e.properties.clone();
                        value.insert("timestamp".into(), json!(kinship_expr::format_timestamp(e.timestamp_ms)));
                        let fact = Fact {
                            name: fact.clone(),
                            value: Value::Object(value),
                            source: e.source.clone(),
                            record: e.key.clone(),
                            at_ms: e.timestamp_ms,
                        };
                        let outcome = format!("found {} {}", e.source, e.key);
                        self.gathered(fact, label, outcome);
                    }
                    None => self.missing(label, "none".into()),
                }
            }
            Step::Row { fact, reference, key } => {
                let key = key.render(&self.lookup());
                let label = format!("gather {fact}: the {reference} row {}", key.as_deref().unwrap_or("?"));
                let r = self.references.get(reference);
                match (r, key) {
                    (Some(r), Some(key)) => match r.row(&key) {
                        Some(row) => {
                            let fact = Fact {
                                name: fact.clone(),
                                value: Value::Object(with_key(row, &key)),
                                source: r.origin.clone(),
                                record: key.clone(),
                                at_ms: r.as_of_ms,
                            };
                            self.gathered(fact, label, format!("found {key}"));
                        }
                        None => self.missing(label, "no such row".into()),
                    },
                    _ => self.missing(label, "not looked for: a value it needs was not gathered".into()),
                }
            }
            Step::Warranty { fact, bought, months } => {
                let label = format!("gather {fact}: whether {bought} is under warranty");
                let months_value =
                    months.render(&self.lookup()).and_then(|m| m.trim().parse::<f64>().ok()).filter(|m| m.is_finite() && *m >= 0.0);
                let purchase = self.out.facts.iter().find(|f| f.name == *bought).cloned();
                match (purchase, months_value) {
                    (Some(purchase), Some(months)) => {
                        // A month is a twelfth of a Gregorian year; the verdict is a day-level matter.
                        let until = purchase.at_ms.saturating_add((months * 2_629_746_000.0) as i64);
                        let under = self.now_ms <= until;
                        let value = json!({
                            "under_warranty": under,
                            "months": if months.fract() == 0.0 { json!(months as i64) } else { json!(months) },
                            "bought": kinship_expr::format_timestamp(purchase.at_ms),
                            "until": kinship_expr::format_timestamp(until),
                        });
                        let outcome = if under { "under warranty" } else { "out of warranty" };
                        let fact =
                            Fact { name: fact.clone(), value, source: purchase.source, record: purchase.record, at_ms: purchase.at_ms };
                        self.gathered(fact, label, outcome.into());
                    }
                    _ => self.missing(label, "unknown: the purchase or the warranty's length was not found".into()),
                }
            }
            Step::Replacement { fact, similar_to, reference, same, stock } => {
                let label = format!("gather {fact}: the most similar in-stock {reference} row to {similar_to}, same {}", same.join(", "));
                let original = self.out.facts.iter().find(|f| f.name == *similar_to).cloned();
                let (Some(original), Some(catalogue)) = (original, self.references.get(reference)) else {
                    return self.missing(label, format!("not looked for: {similar_to} was not gathered"));
                };
                let stock = stock.as_ref().and_then(|s| self.references.get(&s.from).map(|r| (r, s.field.as_str())));
                match suggest_replacement(catalogue, &original.record, same, stock) {
                    Some(s) => {
                        let mut value = with_key(catalogue.row(&s.key).cloned().as_ref().unwrap_or(&Map::new()), &s.key);
                        value.insert("reason".into(), json!(s.reason));
                        value.insert("similarity".into(), json!(s.similarity));
                        let outcome = format!("suggested {}: {}", s.key, s.reason);
                        let fact = Fact {
                            name: fact.clone(),
                            value: Value::Object(value),
                            source: catalogue.origin.clone(),
                            record: s.key,
                            at_ms: catalogue.as_of_ms,
                        };
                        self.gathered(fact, label, outcome);
                    }
                    None => self.missing(label, "no in-stock row alike in every `same` field".into()),
                }
            }
            Step::Branch { condition, then, otherwise } => {
                let (holds, values) = condition.evaluate(self.subject, self.trigger, self.facts, self.now_ms);
                self.out.trace.push(TraceStep { step: format!("if {}", condition.text), outcome: holds.to_string(), values });
                self.steps(if holds { then } else { otherwise });
            }
            Step::Task(task) => {
                let (title, body) = {
                    let lookup = self.lookup();
                    (task.title.render_lenient(&lookup), task.body.as_ref().map(|b| b.render_lenient(&lookup)).unwrap_or_default())
                };
                let draft = TaskDraft {
                    title: title.clone(),
                    body,
                    team: task.team.clone(),
                    priority: task.priority,
                    due_ms: task.due_ms.map(|d| self.trigger.timestamp_ms.max(0).saturating_add(d)),
                    skill: task.skill.clone(),
                };
                self.out.trace.push(TraceStep { step: format!("task for team {}", task.team), outcome: title, values: Map::new() });
                self.out.tasks.push(draft);
            }
            Step::SetTraits(traits) => {
                // A trait whose template needs a fact that was not gathered is left as it is,
                // not overwritten with a placeholder.
                let (mut values, mut unset) = (Map::new(), Vec::new());
                {
                    let lookup = self.lookup();
                    for (name, value) in traits {
                        match value {
                            TraitValue::Text(template) => match template.render(&lookup) {
                                Some(text) => drop(values.insert(name.clone(), Value::String(text))),
                                None => unset.push(name.as_str()),
                            },
                            TraitValue::Json(value) => drop(values.insert(name.clone(), value.clone())),
                        }
                    }
                }
                let step = format!("set traits {}", traits.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(", "));
                let outcome = if unset.is_empty() {
                    "queued".to_string()
                } else {
                    format!("queued; not set, a value they need was not gathered: {}", unset.join(", "))
                };
                self.out.trace.push(TraceStep { step, outcome, values: values.clone() });
                if !values.is_empty() {
                    self.out.changes.push(ProfileChange::SetTraits(values));
                }
            }
            Step::List { list, added } => {
                let step = if *added { format!("add to list {list}") } else { format!("remove from list {list}") };
                self.out.trace.push(TraceStep { step, outcome: "queued".into(), values: Map::new() });
                self.out.changes.push(ProfileChange::List { list: list.clone(), added: *added });
            }
            // Compilation keeps waits out of branches; the flow's own steps go through `top`.
            Step::Wait { .. } => {}
            Step::Deliver { endpoint } => {
                self.out.trace.push(TraceStep { step: format!("deliver to {endpoint}"), outcome: "queued".into(), values: Map::new() });
                self.out.deliveries.push(endpoint.clone());
            }
        }
    }
}

fn with_key(row: &Map<String, Value>, key: &str) -> Map<String, Value> {
    let mut value = row.clone();
    value.entry("key").or_insert_with(|| json!(key));
    value
}

/// The row whose `by` field appears in `text` as whole words, case-insensitively; the longest
/// such mention wins (`Insulated Bottle 1L` over `Insulated Bottle`).
fn mentioned_row<'r>(reference: &'r Reference, text: &str, by: &str) -> Option<(&'r String, &'r Map<String, Value>)> {
    let haystack = format!(" {} ", words(text));
    reference
        .rows
        .iter()
        .filter_map(|(key, row)| {
            let name = words(row.get(by)?.as_str()?);
            (!name.is_empty() && haystack.contains(&format!(" {name} "))).then_some((name.len(), key, row))
        })
        .max_by(|a, b| a.0.cmp(&b.0).then_with(|| b.1.cmp(a.1)))
        .map(|(_, key, row)| (key, row))
}

/// Lower-case alphanumeric words separated by single spaces.
fn words(text: &str) -> String {
    text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase).collect::<Vec<_>>().join(" ")
}

/// Whether a JSON value is, or holds somewhere inside it, the text `wanted`.
fn holds(value: &Value, wanted: &str) -> bool {
    match value {
        Value::String(s) => s == wanted,
        Value::Number(n) => n.to_string() == wanted,
        Value::Array(items) => items.iter().any(|v| holds(v, wanted)),
        Value::Object(fields) => fields.values().any(|v| holds(v, wanted)),
        _ => false,
    }
}

/// A dotted name in a JSON object: the whole name first (`"address.city"` as one key), then
/// one object inside another.
pub(crate) fn lookup_path<'v>(fields: &'v Map<String, Value>, name: &str) -> Option<&'v Value> {
    if let Some(value) = fields.get(name) {
        return Some(value);
    }
    let (head, rest) = name.split_once('.')?;
    match fields.get(head)? {
        Value::Object(inner) => lookup_path(inner, rest),
        _ => None,
    }
}
