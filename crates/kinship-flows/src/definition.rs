//! A flow as written (TOML or JSON) and as compiled: every condition parsed and checked, every
//! template's placeholders resolved to something gathered earlier, every reference, team and
//! endpoint known to the host.

use crate::condition::Condition;
use crate::schedule::Schedule;
use crate::template::Template;
use kinship_expr::parse_duration;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// A flow as its author writes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowDefinition {
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    pub trigger: TriggerSpec,
    pub steps: Vec<StepSpec>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TriggerSpec {
    /// The event name that starts a run.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub event: String,
    /// Instead of an event, a time: `every day at 09:00` (UTC), with `segment`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// The segment whose members a scheduled flow runs on at each tick.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment: Option<String>,
    /// A condition on the event (bare words are its properties) and the profile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<String>,
}

/// One step as written: exactly one of `gather`, `if`, `task` or `deliver`, with the keys that
/// kind of step takes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepSpec {
    /// The name the gathered fact is known by in later steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gather: Option<String>,
    /// A reference source (`[references.NAME]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// The trigger property whose text names a reference row (with `by`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mentioned_in: Option<String>,
    /// The reference field a mention is looked for by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// The reference row's key, a template (`"{product.sku}"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The newest of the profile's events of this name (with `holding`, only those holding a value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holding: Option<Holding>,
    /// A warranty verdict: whether `bought` (a gathered event) is within `months` of now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warranty: Option<WarrantySpec>,
    /// The most similar reference row to this gathered fact, in stock and alike in `same`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub similar_to: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub same: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_stock: Option<InStock>,
    #[serde(default, rename = "if", skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub then: Vec<StepSpec>,
    #[serde(default, rename = "else", skip_serializing_if = "Vec::is_empty")]
    pub otherwise: Vec<StepSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<TaskSpec>,
    /// An endpoint (`[endpoints.NAME]`) that receives the run's task and facts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deliver: Option<String>,
    /// A pause, kept in the store: `{ for = "2 days" }`, or `{ until = "Order Completed",
    /// timeout = "7 days" }`; `as` names the fact that says how it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait: Option<WaitSpec>,
    /// Traits to set on the profile: `{ open_complaint = true, complained_of = "{product.name}" }`
    /// (text values are templates).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_traits: Option<serde_json::Map<String, serde_json::Value>>,
    /// A list to put the profile on (`in_list("NAME")` in segments).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub add_to_list: Option<String>,
    /// A list to take the profile off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remove_from_list: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaitSpec {
    #[serde(default, rename = "for", skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    /// An event of the profile that ends the wait early.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    /// How long to wait for `until`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// The fact saying how the wait ended (default `wait`): `outcome` is `event` or `timeout`.
    #[serde(default, rename = "as", skip_serializing_if = "Option::is_none")]
    pub fact: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Holding {
    /// The event property to look in (an array of objects is searched through).
    pub property: String,
    /// A template: the value the property must hold.
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WarrantySpec {
    /// A gathered event fact: when the item was bought.
    pub bought: String,
    /// A template giving the warranty's length in months (`"{product.warranty_months}"`).
    pub months: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InStock {
    /// The reference source holding stock, keyed like the rows compared.
    pub from: String,
    /// Its quantity field.
    pub field: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskSpec {
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    pub team: String,
    #[serde(default)]
    pub priority: Priority,
    /// How long after the trigger the task is due (`"4 hours"`, `"2 days"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due: Option<String>,
    /// The skill the assignee needs, for teams that assign by skill.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skill: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    Low,
    #[default]
    Normal,
    High,
    Urgent,
}

impl Priority {
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Normal => "normal",
            Priority::High => "high",
            Priority::Urgent => "urgent",
        }
    }
}

/// What the host has, for names a flow refers to.
#[derive(Debug, Clone, Default)]
pub struct Known {
    pub references: BTreeSet<String>,
    pub teams: BTreeSet<String>,
    pub endpoints: BTreeSet<String>,
    /// Whether the host can write what flows change about a profile (traits, lists) as records.
    pub writes_records: bool,
    /// The saved segments, computed traits, funnels and health definitions conditions may read.
    pub schema: kinship_expr::Schema,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlowError {
    #[error("the flow is not valid TOML or JSON: {0}")]
    Syntax(String),
    #[error("{at}: {message}")]
    Invalid { at: String, message: String },
}

fn invalid(at: &str, message: impl Into<String>) -> FlowError {
    FlowError::Invalid { at: at.to_string(), message: message.into() }
}

/// A checked flow, ready to run.
#[derive(Debug, Clone)]
pub struct Flow {
    pub definition: FlowDefinition,
    pub(crate) trigger: Option<Condition>,
    pub(crate) steps: Vec<Step>,
    schedule: Option<(Schedule, String)>,
}

/// The trigger event of a scheduled flow's runs: its properties are `schedule`, `segment`
/// and `tick` (the time the run was due).
pub const SCHEDULED: &str = "Scheduled";

#[derive(Debug, Clone)]
pub(crate) enum Step {
    Mentioned {
        fact: String,
        reference: String,
        property: String,
        by: String,
    },
    Newest {
        fact: String,
        event: String,
        holding: Option<(String, Template)>,
    },
    Row {
        fact: String,
        reference: String,
        key: Template,
    },
    Warranty {
        fact: String,
        bought: String,
        months: Template,
    },
    Replacement {
        fact: String,
        similar_to: String,
        reference: String,
        same: Vec<String>,
        stock: Option<InStock>,
    },
    Branch {
        condition: Condition,
        then: Vec<Step>,
        otherwise: Vec<Step>,
    },
    Task(Box<TaskStep>),
    Deliver {
        endpoint: String,
    },
    SetTraits(Vec<(String, TraitValue)>),
    List {
        list: String,
        added: bool,
    },
    /// Only among the flow's own steps (not inside `if`), so a run resumes at an index.
    Wait {
        duration_ms: i64,
        until: Option<String>,
        fact: String,
    },
}

/// A trait's new value: text is a template, anything else is set as written.
#[derive(Debug, Clone)]
pub(crate) enum TraitValue {
    Text(Template),
    Json(serde_json::Value),
}

#[derive(Debug, Clone)]
pub(crate) struct TaskStep {
    pub title: Template,
    pub body: Option<Template>,
    pub team: String,
    pub priority: Priority,
    pub due_ms: Option<i64>,
    pub skill: Option<String>,
}

impl FlowDefinition {
    /// Reads a flow from TOML or, when the text starts with `{`, JSON.
    pub fn parse(text: &str) -> Result<Self, FlowError> {
        if text.trim_start().starts_with('{') {
            serde_json::from_str(text).map_err(|e| FlowError::Syntax(e.to_string()))
        } else {
            toml::from_str(text).map_err(|e| FlowError::Syntax(e.to_string()))
        }
    }
}

impl Flow {
    /// Checks every step against what the host has. Errors name the step (`steps[2].then[0]`).
    pub fn compile(definition: FlowDefinition, known: &Known) -> Result<Self, FlowError> {
        let name_ok = !definition.name.is_empty()
            && definition.name.len() <= 64
            && definition.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !name_ok {
            return Err(invalid("name", "a flow's name is 1 to 64 ASCII letters, digits, `_` or `-`"));
        }
        let trigger_spec = &definition.trigger;
        let schedule = match (&trigger_spec.schedule, &trigger_spec.segment) {
            (None, None) if trigger_spec.event.trim().is_empty() => {
                return Err(invalid("trigger", "name the `event` that starts the flow, or a `schedule` with a `segment`"));
            }
            (None, None) => None,
            (Some(_), _) if !trigger_spec.event.is_empty() => {
                return Err(invalid("trigger", "a flow starts on an `event` or on a `schedule`, not both"));
            }
            (Some(schedule), Some(segment)) if !segment.trim().is_empty() => {
                Some((Schedule::parse(schedule).map_err(|e| invalid("trigger.schedule", e))?, segment.clone()))
            }
            (Some(_), _) => return Err(invalid("trigger.segment", "a scheduled flow runs on the members of a segment: name it")),
            (None, Some(_)) => {
                return Err(invalid(
                    "trigger.segment",
                    "`segment` goes with `schedule`; for entering a segment use `event = \"Entered Segment\"`",
                ))
            }
        };
        let trigger = match &definition.trigger.when {
            Some(text) => Some(Condition::compile(text, &known.schema).map_err(|e| invalid("trigger.when", e))?),
            None => None,
        };
        let mut gathered = BTreeSet::new();
        let steps = compile_steps(&definition.steps, "steps", known, &mut gathered, true)?;
        if !contains_action(&steps) {
            return Err(invalid(
                "steps",
                "a flow needs at least one step that acts: `task`, `deliver`, `set_traits`, `add_to_list` or `remove_from_list`",
            ));
        }
        Ok(Self { definition, trigger, steps, schedule })
    }

    /// A scheduled flow's schedule and the segment it runs on.
    pub fn schedule(&self) -> Option<(&Schedule, &str)> {
        self.schedule.as_ref().map(|(s, segment)| (s, segment.as_str()))
    }

    pub fn name(&self) -> &str {
        &self.definition.name
    }

    /// The event name that starts a run.
    pub fn trigger_event(&self) -> &str {
        if self.schedule.is_some() {
            SCHEDULED
        } else {
            &self.definition.trigger.event
        }
    }

    /// The event names a wait of this flow ends on.
    pub fn waits_for(&self) -> BTreeSet<String> {
        self.steps
            .iter()
            .filter_map(|s| match s {
                Step::Wait { until: Some(event), .. } => Some(event.clone()),
                _ => None,
            })
            .collect()
    }

    /// Whether `trigger` starts a run, when that can be known without the profile: `None` when
    /// the trigger's condition reads the profile. Hosts skip loading profiles for `Some(false)`.
    pub fn triggers_alone(&self, trigger: &crate::EventRecord) -> Option<bool> {
        if trigger.name != self.definition.trigger.event {
            return Some(false);
        }
        match &self.trigger {
            None => Some(true),
            Some(c) if c.reads_only_the_event() => Some(c.holds_on_trigger(trigger)),
            Some(_) => None,
        }
    }

    /// [`Flow::triggers_alone`] for an event of the trigger's name held by the host in its own
    /// form (the audience in memory): `None` when that cannot be known without the profile as
    /// of the event, or without the event as a record.
    pub fn triggers_alone_on<P: kinship_expr::ProfileView>(&self, profile: &P, event: &P::Event) -> Option<bool> {
        match &self.trigger {
            None => Some(true),
            Some(c) if c.reads_only_the_event() => c.holds_on(profile, event),
            Some(_) => None,
        }
    }

    /// Whether a condition reads a saved definition (a segment, computed trait, funnel or
    /// health score): then the host judges the profile under the saved definitions first.
    pub fn reads_definitions(&self) -> bool {
        self.trigger.as_ref().is_some_and(Condition::reads_definitions) || branches_read_definitions(&self.steps)
    }

    /// The names of the profile's events a run can read (gather steps and conditions), so a
    /// host need not load the others; `None` when a condition may read any event.
    pub fn events_read(&self) -> Option<BTreeSet<String>> {
        let mut names = BTreeSet::new();
        if let Some(trigger) = &self.trigger {
            names.extend(trigger.events_read()?);
        }
        events_read(&self.steps, &mut names)?;
        Some(names)
    }
}

fn events_read(steps: &[Step], names: &mut BTreeSet<String>) -> Option<()> {
    for step in steps {
        match step {
            Step::Newest { event, .. } => {
                names.insert(event.clone());
            }
            Step::Branch { condition, then, otherwise } => {
                names.extend(condition.events_read()?);
                events_read(then, names)?;
                events_read(otherwise, names)?;
            }
            _ => {}
        }
    }
    Some(())
}

fn branches_read_definitions(steps: &[Step]) -> bool {
    steps.iter().any(|s| match s {
        Step::Branch { condition, then, otherwise } => {
            condition.reads_definitions() || branches_read_definitions(then) || branches_read_definitions(otherwise)
        }
        _ => false,
    })
}

fn contains_action(steps: &[Step]) -> bool {
    steps.iter().any(|s| match s {
        Step::Task(_) | Step::Deliver { .. } | Step::SetTraits(_) | Step::List { .. } => true,
        Step::Branch { then, otherwise, .. } => contains_action(then) || contains_action(otherwise),
        _ => false,
    })
}

fn compile_steps(specs: &[StepSpec], at: &str, known: &Known, gathered: &mut BTreeSet<String>, top: bool) -> Result<Vec<Step>, FlowError> {
    specs.iter().enumerate().map(|(i, spec)| compile_step(spec, &format!("{at}[{i}]"), known, gathered, top)).collect()
}

fn compile_step(spec: &StepSpec, at: &str, known: &Known, gathered: &mut BTreeSet<String>, top: bool) -> Result<Step, FlowError> {
    let kinds = [
        spec.gather.is_some(),
        spec.condition.is_some(),
        spec.task.is_some(),
        spec.deliver.is_some(),
        spec.wait.is_some(),
        spec.set_traits.is_some(),
        spec.add_to_list.is_some(),
        spec.remove_from_list.is_some(),
    ];
    if kinds.iter().filter(|k| **k).count() != 1 {
        return Err(invalid(
            at,
            "a step is exactly one of `gather`, `if`, `task`, `deliver`, `wait`, `set_traits`, `add_to_list` or `remove_from_list`",
        ));
    }
    let writes = spec.set_traits.is_some() || spec.add_to_list.is_some() || spec.remove_from_list.is_some();
    if writes && !known.writes_records {
        return Err(invalid(
            at,
            "what a flow changes about a profile is written as records of a source: add [sources.kinship] type = \"segment\" and [flows] source = \"kinship\" to kinship.toml",
        ));
    }
    if let Some(traits) = &spec.set_traits {
        if traits.is_empty() {
            return Err(invalid(at, "`set_traits` names at least one trait: `{ open_complaint = true }`"));
        }
        let mut compiled = Vec::new();
        for (name, value) in traits {
            if name.is_empty() || name.len() > 64 || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(invalid(at, format!("`{name}` cannot name a trait: use 1 to 64 letters, digits and `_`")));
            }
            let value = match value {
                serde_json::Value::String(text) => {
                    TraitValue::Text(Template::compile(text, gathered).map_err(|e| invalid(at, format!("{name}: {e}")))?)
                }
                other => TraitValue::Json(other.clone()),
            };
            compiled.push((name.clone(), value));
        }
        return Ok(Step::SetTraits(compiled));
    }
    if let Some((list, added)) = spec.add_to_list.as_ref().map(|l| (l, true)).or(spec.remove_from_list.as_ref().map(|l| (l, false))) {
        if list.is_empty() || list.len() > 64 || !list.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
            return Err(invalid(at, format!("`{list}` cannot name a list: use 1 to 64 letters, digits, `_` or `-`")));
        }
        return Ok(Step::List { list: list.clone(), added });
    }
    if let Some(wait) = &spec.wait {
        if !top {
            return Err(invalid(at, "a `wait` is a step of the flow itself, not inside `if`: put the `if` after it"));
        }
        let duration = |text: &str| {
            parse_duration(text).ok_or_else(|| invalid(at, format!("`{text}` is not a duration: write `4 hours` or `2 days`")))
        };
        let (duration_ms, until) = match (&wait.duration, &wait.until, &wait.timeout) {
            (Some(d), None, None) => (duration(d)?, None),
            (None, Some(event), Some(t)) if !event.trim().is_empty() => (duration(t)?, Some(event.clone())),
            _ => return Err(invalid(at, "a wait is `{ for = \"2 days\" }` or `{ until = \"EVENT\", timeout = \"7 days\" }`")),
        };
        let fact = wait.fact.clone().unwrap_or_else(|| "wait".into());
        if fact.is_empty() || !fact.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') || fact == "trigger" || fact == "traits" {
            return Err(invalid(at, format!("`{fact}` cannot name a fact: use letters, digits and `_`, not `trigger` or `traits`")));
        }
        gathered.insert(fact.clone());
        return Ok(Step::Wait { duration_ms, until, fact });
    }
    let reference = |name: &Option<String>, key: &str| -> Result<String, FlowError> {
        let name = name.clone().ok_or_else(|| invalid(at, format!("`{key}` is required here")))?;
        if known.references.contains(&name) {
            Ok(name)
        } else {
            Err(invalid(at, format!("no reference source `{name}`: add [references.{name}] to kinship.toml")))
        }
    };
    let template = |text: &str, gathered: &BTreeSet<String>| Template::compile(text, gathered).map_err(|e| invalid(at, e));
    if let Some(fact) = &spec.gather {
        if !fact.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') || fact.is_empty() || fact == "trigger" || fact == "traits" {
            return Err(invalid(at, format!("`{fact}` cannot name a fact: use letters, digits and `_`, not `trigger` or `traits`")));
        }
        let step = if let Some(property) = &spec.mentioned_in {
            let by = spec.by.clone().ok_or_else(|| invalid(at, "`mentioned_in` needs `by`, the reference field to look for"))?;
            Step::Mentioned { fact: fact.clone(), reference: reference(&spec.from, "from")?, property: property.clone(), by }
        } else if let Some(event) = &spec.event {
            let holding = match &spec.holding {
                Some(h) => Some((h.property.clone(), template(&h.value, gathered)?)),
                None => None,
            };
            Step::Newest { fact: fact.clone(), event: event.clone(), holding }
        } else if let Some(w) = &spec.warranty {
            if !gathered.contains(&w.bought) {
                return Err(invalid(at, format!("`{}` is not gathered before this step", w.bought)));
            }
            Step::Warranty { fact: fact.clone(), bought: w.bought.clone(), months: template(&w.months, gathered)? }
        } else if let Some(similar_to) = &spec.similar_to {
            if !gathered.contains(similar_to) {
                return Err(invalid(at, format!("`{similar_to}` is not gathered before this step")));
            }
            if let Some(stock) = &spec.in_stock {
                reference(&Some(stock.from.clone()), "in_stock.from")?;
            }
            Step::Replacement {
                fact: fact.clone(),
                similar_to: similar_to.clone(),
                reference: reference(&spec.from, "from")?,
                same: spec.same.clone(),
                stock: spec.in_stock.clone(),
            }
        } else if let Some(key) = &spec.key {
            Step::Row { fact: fact.clone(), reference: reference(&spec.from, "from")?, key: template(key, gathered)? }
        } else {
            return Err(invalid(
                at,
                "say what to gather: `mentioned_in` (with `from`, `by`), `event`, `key` (with `from`), `warranty` or `similar_to`",
            ));
        };
        gathered.insert(fact.clone());
        return Ok(step);
    }
    if let Some(text) = &spec.condition {
        let condition = Condition::compile(text, &known.schema).map_err(|e| invalid(at, e))?;
        // Facts gathered in one branch may be missing after it; later steps see them as null.
        let mut in_then = gathered.clone();
        let then = compile_steps(&spec.then, &format!("{at}.then"), known, &mut in_then, false)?;
        let mut in_else = gathered.clone();
        let otherwise = compile_steps(&spec.otherwise, &format!("{at}.else"), known, &mut in_else, false)?;
        gathered.extend(in_then);
        gathered.extend(in_else);
        return Ok(Step::Branch { condition, then, otherwise });
    }
    if let Some(task) = &spec.task {
        if !known.teams.contains(&task.team) {
            return Err(invalid(at, format!("no team `{}`: add [teams.{}] to kinship.toml", task.team, task.team)));
        }
        let due_ms = match &task.due {
            Some(text) => {
                Some(parse_duration(text).ok_or_else(|| invalid(at, format!("`{text}` is not a duration: write `4 hours` or `2 days`")))?)
            }
            None => None,
        };
        return Ok(Step::Task(Box::new(TaskStep {
            title: template(&task.title, gathered)?,
            body: task.body.as_deref().map(|b| template(b, gathered)).transpose()?,
            team: task.team.clone(),
            priority: task.priority,
            due_ms,
            skill: task.skill.clone(),
        })));
    }
    let endpoint = spec.deliver.clone().unwrap_or_default();
    if !known.endpoints.contains(&endpoint) {
        return Err(invalid(at, format!("no endpoint `{endpoint}`: add [endpoints.{endpoint}] to kinship.toml")));
    }
    Ok(Step::Deliver { endpoint })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known() -> Known {
        Known {
            references: ["catalogue".to_string(), "inventory".to_string()].into(),
            teams: ["support".to_string()].into(),
            endpoints: ["ops".to_string()].into(),
            writes_records: false,
            schema: kinship_expr::Schema::new(),
        }
    }

    #[test]
    fn errors_name_the_step_and_the_fix() {
        let text = r#"
            name = "x"
            [trigger]
            event = "Ticket Opened"
            [[steps]]
            gather = "stock"
            from = "stock_levels"
            key = "{product.sku}"
        "#;
        let err = Flow::compile(FlowDefinition::parse(text).unwrap(), &known()).unwrap_err().to_string();
        assert!(err.contains("steps[0]") && err.contains("[references.stock_levels]"), "{err}");

        let text = r#"
            name = "x"
            [trigger]
            event = "Ticket Opened"
            [[steps]]
            gather = "stock"
            from = "inventory"
            key = "{product.sku}"
            [[steps]]
            task = { title = "t", team = "support" }
        "#;
        let err = Flow::compile(FlowDefinition::parse(text).unwrap(), &known()).unwrap_err().to_string();
        assert!(err.contains("steps[0]") && err.contains("product"), "{err}");

        let text = r#"{"name": "x", "trigger": {"event": "E", "when": "subject contains"}, "steps": [{"deliver": "ops"}]}"#;
        let err = Flow::compile(FlowDefinition::parse(text).unwrap(), &known()).unwrap_err().to_string();
        assert!(err.starts_with("trigger.when"), "{err}");

        let text = r#"{"name": "x", "trigger": {"event": "E"}, "steps": [{"gather": "p", "from": "catalogue", "key": "a"}]}"#;
        let err = Flow::compile(FlowDefinition::parse(text).unwrap(), &known()).unwrap_err().to_string();
        assert!(err.contains("at least one step that acts"), "{err}");

        let text = r#"{"name": "x", "trigger": {"event": "E"}, "steps": [{"set_traits": {"open_complaint": true}}]}"#;
        let err = Flow::compile(FlowDefinition::parse(text).unwrap(), &known()).unwrap_err().to_string();
        assert!(err.starts_with("steps[0]") && err.contains("[flows] source"), "{err}");
        let writing = Known { writes_records: true, ..known() };
        assert!(Flow::compile(FlowDefinition::parse(text).unwrap(), &writing).is_ok());
        let text = r#"{"name": "x", "trigger": {"event": "E"}, "steps": [{"set_traits": {"x": "{product.name}"}}]}"#;
        let err = Flow::compile(FlowDefinition::parse(text).unwrap(), &writing).unwrap_err().to_string();
        assert!(err.contains("steps[0]") && err.contains("product"), "{err}");
        let text = r#"{"name": "x", "trigger": {"event": "E"}, "steps": [{"add_to_list": "a b"}]}"#;
        let err = Flow::compile(FlowDefinition::parse(text).unwrap(), &writing).unwrap_err().to_string();
        assert!(err.contains("cannot name a list"), "{err}");

        assert!(matches!(FlowDefinition::parse("name = 1"), Err(FlowError::Syntax(_))));
        assert!(matches!(
            FlowDefinition::parse(r#"{"name": "x", "trigger": {"event": "E"}, "steps": [], "extra": 1}"#),
            Err(FlowError::Syntax(_))
        ));
    }
}
