//! A funnel as its author writes it (TOML), compiled once to run on any host's profiles:
//! each step's event name and condition in the segment language, judged on each event of a
//! profile's unified timeline ([`FunnelProgram::moments`]).
//!
//! ```toml
//! name = "checkout"
//! window = "14 days"            # from the entry to the last step
//! order = "ordered"             # or "strict", "any"
//! counting = "first_entry"      # or "every_entry"
//! breakdown = "country"         # a trait
//! [[steps]]
//! event = "Product Viewed"
//! [[steps]]
//! event = "Order Completed"
//! where = "revenue > 50"        # bare words are the event's properties
//! within = "2 days"             # of the previous step
//! [[exclusions]]
//! event = "Order Cancelled"
//! between = [1, 2]
//! ```

use crate::funnel::{Counting, Exclusion, Funnel, Moment, Order};
use kinship_expr::{Dependencies, EvalContext, EventView, ProfileView, Program, Schema};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunnelDefinition {
    pub name: String,
    /// From the entry to the last step (`"14 days"`).
    #[serde(default = "default_window")]
    pub window: String,
    #[serde(default = "default_order")]
    pub order: Order,
    #[serde(default = "default_counting")]
    pub counting: Counting,
    pub steps: Vec<FunnelStep>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclusions: Vec<FunnelExclusion>,
    /// A trait (or a computed trait, `computed.NAME`) to break the funnel down by (its top
    /// ten values and the rest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub breakdown: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunnelStep {
    pub event: String,
    /// A condition on the event (bare words are its properties) or the profile.
    #[serde(default, rename = "where", skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    /// At most this long after the previous step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub within: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunnelExclusion {
    pub event: String,
    #[serde(default, rename = "where", skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    /// The steps (counted from 1) between which the event drops the attempt.
    pub between: (usize, usize),
}

fn default_window() -> String {
    "14 days".into()
}

fn default_order() -> Order {
    Order::Ordered
}

fn default_counting() -> Counting {
    Counting::FirstEntry
}

/// What is wrong with a funnel, naming the part at fault (`steps[2].where: …`).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct DefinitionError(pub String);

/// An event name and, perhaps, a condition on the event.
#[derive(Debug, Clone)]
struct Matcher {
    event: String,
    condition: Option<(String, Program)>,
}

impl Matcher {
    fn new(event: &str, condition: &Option<String>, at: &str) -> Result<Self, DefinitionError> {
        let condition = match condition {
            Some(text) => {
                let wrong = |rendered: String| DefinitionError(format!("{at}.where: {rendered}"));
                let expr = kinship_expr::parse_about_event(text).map_err(|e| wrong(e.render(text)))?;
                // No segments, computed traits or funnels: a step reads its event and the
                // profile's own data, so funnels never depend on each other.
                let program = Program::compile_segment(&expr, &Schema::new()).map_err(|e| wrong(e.render(text)))?;
                Some((text.clone(), program))
            }
            None => None,
        };
        Ok(Self { event: event.to_string(), condition })
    }

    fn matches<P: ProfileView>(&self, profile: &P, name: &str, event: &P::Event) -> bool {
        name == self.event
            && self.condition.as_ref().is_none_or(|(_, c)| c.evaluate_on(profile, event, &EvalContext::at(event.timestamp_ms())).is_true())
    }
}

/// A checked funnel, ready to run on profiles.
#[derive(Debug, Clone)]
pub struct FunnelProgram {
    pub definition: FunnelDefinition,
    /// Over all history, counted as the definition says; a host narrows the period.
    pub funnel: Funnel,
    steps: Vec<Matcher>,
    exclusions: Vec<Matcher>,
    dependencies: Dependencies,
}

impl FunnelProgram {
    /// Reads a funnel from TOML and checks it.
    pub fn parse(text: &str) -> Result<Self, DefinitionError> {
        let definition: FunnelDefinition =
            toml::from_str(text).map_err(|e| DefinitionError(format!("the funnel is not valid TOML: {e}")))?;
        Self::compile(definition)
    }

    /// Checks a funnel: 2 to 64 steps, durations, conditions, exclusions between steps.
    pub fn compile(definition: FunnelDefinition) -> Result<Self, DefinitionError> {
        if !(2..=64).contains(&definition.steps.len()) {
            return Err(DefinitionError("steps: a funnel has 2 to 64 steps".into()));
        }
        let window_ms = duration_ms(&definition.window, "window")?;
        let mut step_windows = Vec::new();
        let mut steps = Vec::new();
        for (i, step) in definition.steps.iter().enumerate() {
            let at = format!("steps[{}]", i + 1);
            step_windows.push(step.within.as_deref().map(|w| duration_ms(w, &format!("{at}.within"))).transpose()?);
            steps.push(Matcher::new(&step.event, &step.condition, &at)?);
        }
        let mut exclusions = Vec::new();
        let mut between = Vec::new();
        for (j, e) in definition.exclusions.iter().enumerate() {
            let at = format!("exclusions[{}]", j + 1);
            let (from, to) = e.between;
            if from < 1 || to <= from || to > steps.len() || j >= 64 {
                return Err(DefinitionError(format!("{at}.between: give two steps, the first before the second, e.g. [1, 2]")));
            }
            between.push(Exclusion { from: from - 1, to: to - 1 });
            exclusions.push(Matcher::new(&e.event, &e.condition, &at)?);
        }
        let mut dependencies = Dependencies::default();
        for m in steps.iter().chain(&exclusions) {
            dependencies.events.insert(m.event.clone());
            if let Some((_, program)) = &m.condition {
                let d = program.dependencies();
                dependencies.traits.extend(d.traits.iter().cloned());
                dependencies.events.extend(d.events.iter().cloned());
                dependencies.properties.extend(d.properties.iter().cloned());
                dependencies.any_event |= d.any_event;
            }
        }
        // Strict order looks at every event: any other one ends an attempt.
        dependencies.any_event |= definition.order == Order::Strict;
        let funnel = Funnel {
            steps: steps.len(),
            order: definition.order,
            window_ms,
            step_windows,
            exclusions: between,
            counting: definition.counting,
            period: (i64::MIN, i64::MAX),
        };
        Ok(Self { definition, funnel, steps, exclusions, dependencies })
    }

    /// What the funnel reads: its events, and the traits and properties its conditions read.
    /// Conditions are judged as of each event, so time passing changes nothing.
    pub fn dependencies(&self) -> &Dependencies {
        &self.dependencies
    }

    /// The conditions' texts, for hosts that check what they quote.
    pub fn conditions(&self) -> impl Iterator<Item = &str> {
        self.steps.iter().chain(&self.exclusions).filter_map(|m| m.condition.as_ref().map(|(text, _)| text.as_str()))
    }

    /// The profile's timeline as the funnel sees it: each event with the steps and
    /// exclusions it matches. A strict funnel keeps every event, the others only matching ones.
    pub fn moments<P: ProfileView>(&self, profile: &P) -> Vec<Moment> {
        let keep_all = self.funnel.order == Order::Strict;
        let bits = |matchers: &[Matcher], name: &str, event: &P::Event| {
            matchers.iter().enumerate().filter(|(_, m)| m.matches(profile, name, event)).fold(0u64, |bits, (i, _)| bits | 1 << i)
        };
        profile
            .events(None)
            .filter_map(|event| {
                let name = profile.event_name(event);
                let moment = Moment {
                    at_ms: event.timestamp_ms(),
                    steps: bits(&self.steps, name, event),
                    exclusions: bits(&self.exclusions, name, event),
                };
                (keep_all || moment.steps != 0 || moment.exclusions != 0).then_some(moment)
            })
            .collect()
    }
}

/// A duration as configuration writes it, or an error naming `at`.
fn duration_ms(text: &str, at: &str) -> Result<i64, DefinitionError> {
    kinship_expr::parse_duration(text)
        .ok_or_else(|| DefinitionError(format!("{at}: `{text}` is not a duration: write `14 days` or `2 hours`")))
}
