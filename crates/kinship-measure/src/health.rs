//! Customer health, managed by exception: measures a business thinks matter (expressions in
//! the segment language), each turned into a 0–100 score by thresholds and weighted into one
//! score, banded red, yellow or green; read in context (a new customer calls more, an upgrade
//! explains a spike), and raising an alert only when a score enters red or drops by a set
//! amount and no context explains it. Every score explains itself: each measure's value,
//! score, weight and contribution.
//!
//! ```toml
//! name = "customer"
//! applies = 'any("Order Completed")'       # who is scored (everyone without it)
//! bands = { red = 40, yellow = 70 }         # below 40 red, below 70 yellow, else green
//! alerts = { drop = 25 }                    # also alert on a fall of 25 points
//! [[measures]]
//! name = "orders"
//! value = 'count("Order Completed", last 90 days)'
//! points = [[0, 0], [1, 60], [3, 100]]      # (value, score), straight lines between
//! weight = 2
//! [[measures]]
//! name = "tickets"
//! value = 'count("Ticket Opened", last 30 days)'
//! points = [[0, 100], [2, 50], [5, 0]]
//! [[contexts]]
//! name = "new customer"
//! when = 'days_since(first("Order Completed")) < 60'
//! weights = { tickets = 0 }                 # new customers call more: tickets do not count
//! explains_alerts = true
//! ```

use kinship_expr::{Dependencies, EvalContext, FunnelField, HealthField, ProfileView, Program, Scalar, Schema};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthDefinition {
    pub name: String,
    /// Which profiles are scored; every profile without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applies: Option<String>,
    #[serde(default)]
    pub bands: Bands,
    pub measures: Vec<MeasureSpec>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub contexts: Vec<ContextSpec>,
    #[serde(default)]
    pub alerts: AlertSpec,
}

impl HealthDefinition {
    /// Reads a definition from TOML, unchecked (see [`HealthProgram::compile`]).
    pub fn parse(text: &str) -> Result<Self, DefinitionError> {
        toml::from_str(text).map_err(|e| DefinitionError(format!("the health definition is not valid TOML: {e}")))
    }
}

/// Scores below `red` are red, below `yellow` yellow, the rest green.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bands {
    pub red: f64,
    pub yellow: f64,
}

impl Default for Bands {
    fn default() -> Self {
        Self { red: 40.0, yellow: 70.0 }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeasureSpec {
    pub name: String,
    /// An expression over the profile (a number; `true` is 1).
    pub value: String,
    /// (value, score) points, by value; the score runs in straight lines between them and
    /// stays level beyond the first and the last.
    pub points: Vec<(f64, f64)>,
    #[serde(default = "one")]
    pub weight: f64,
    /// The score when the value is null; without it the measure is left out of that profile's mean.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missing: Option<f64>,
}

fn one() -> f64 {
    1.0
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContextSpec {
    pub name: String,
    /// When the profile is in this context (the first that holds applies).
    pub when: String,
    /// Weights that replace the measures' own in this context (0 leaves a measure out).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub weights: BTreeMap<String, f64>,
    /// Whether this context explains a low score or a fall, so no alert is raised.
    #[serde(default)]
    pub explains_alerts: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertSpec {
    /// Alert on a fall of at least this many points too (entering red always alerts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drop: Option<f64>,
    /// At most this many new alerts per owner per day; the rest are summarised.
    #[serde(default = "twenty")]
    pub per_owner_per_day: usize,
}

fn twenty() -> usize {
    20
}

impl Default for AlertSpec {
    fn default() -> Self {
        Self { drop: None, per_owner_per_day: twenty() }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Band {
    Red,
    Yellow,
    Green,
}

impl Band {
    pub fn name(self) -> &'static str {
        match self {
            Band::Red => "red",
            Band::Yellow => "yellow",
            Band::Green => "green",
        }
    }
}

/// One measure's part in a score.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MeasureScore {
    /// Shared with the definition: scoring a million profiles copies no names.
    pub name: Arc<str>,
    /// The expression's value (null when absent).
    pub value: Option<f64>,
    /// Its 0–100 score (null when the value is null and no `missing` score is set).
    pub score: Option<f64>,
    /// The weight used (the context's, when one applies).
    pub weight: f64,
    /// Points this measure adds to the score: weight × score ÷ the weights counted.
    pub contribution: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scored {
    pub score: f64,
    pub band: Band,
    pub measures: Vec<MeasureScore>,
    /// The context that applied, if any.
    pub context: Option<Arc<str>>,
}

/// Why an alert is raised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    EnteredRed,
    Dropped,
}

/// What is wrong with a definition, naming the part at fault.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct DefinitionError(pub String);

struct Measure {
    spec: MeasureSpec,
    name: Arc<str>,
    program: Program,
}

struct Context {
    spec: ContextSpec,
    name: Arc<str>,
    program: Program,
}

/// A checked health definition, ready to score any host's profiles.
pub struct HealthProgram {
    pub definition: HealthDefinition,
    applies: Option<Program>,
    measures: Vec<Measure>,
    contexts: Vec<Context>,
    dependencies: Dependencies,
}

impl HealthProgram {
    /// Reads a definition from TOML and checks it against the host's schema (its computed
    /// traits, segments and funnels).
    pub fn parse(text: &str, schema: &Schema) -> Result<Self, DefinitionError> {
        Self::compile(HealthDefinition::parse(text)?, schema)
    }

    pub fn compile(definition: HealthDefinition, schema: &Schema) -> Result<Self, DefinitionError> {
        let expression = |text: &str, at: &str, condition: bool| {
            let compiled =
                if condition { kinship_expr::compile_segment(text, schema) } else { kinship_expr::compile_computed(text, schema) };
            compiled.map_err(|e| DefinitionError(format!("{at}: {}", e.render(text))))
        };
        if definition.measures.is_empty() {
            return Err(DefinitionError("measures: give at least one".into()));
        }
        let Bands { red, yellow } = definition.bands;
        if !(0.0..=100.0).contains(&red) || !(red..=100.0).contains(&yellow) {
            return Err(DefinitionError("bands: give 0 ≤ red ≤ yellow ≤ 100, e.g. { red = 40, yellow = 70 }".into()));
        }
        let applies = definition.applies.as_deref().map(|text| expression(text, "applies", true)).transpose()?;
        let mut measures = Vec::new();
        for (i, spec) in definition.measures.iter().enumerate() {
            let at = format!("measures[{}] ({})", i + 1, spec.name);
            if spec.points.is_empty() || spec.points.iter().any(|(v, s)| !v.is_finite() || !(0.0..=100.0).contains(s)) {
                return Err(DefinitionError(format!("{at}.points: give (value, score) pairs with scores from 0 to 100")));
            }
            if !(spec.weight.is_finite() && spec.weight >= 0.0) || spec.missing.is_some_and(|m| !(0.0..=100.0).contains(&m)) {
                return Err(DefinitionError(format!("{at}: the weight is a number ≥ 0 and `missing` a score from 0 to 100")));
            }
            if definition.measures[..i].iter().any(|m| m.name == spec.name) {
                return Err(DefinitionError(format!("{at}: the name is used twice")));
            }
            let mut spec = spec.clone();
            spec.points.sort_by(|a, b| a.0.total_cmp(&b.0));
            let program = expression(&spec.value, &format!("{at}.value"), false)?;
            measures.push(Measure { name: spec.name.as_str().into(), spec, program });
        }
        let mut contexts = Vec::new();
        for (i, spec) in definition.contexts.iter().enumerate() {
            let at = format!("contexts[{}] ({})", i + 1, spec.name);
            if let Some(unknown) = spec.weights.keys().find(|k| !definition.measures.iter().any(|m| &&m.name == k)) {
                return Err(DefinitionError(format!("{at}.weights: no measure named `{unknown}`")));
            }
            if spec.weights.values().any(|w| !(w.is_finite() && *w >= 0.0)) {
                return Err(DefinitionError(format!("{at}.weights: weights are numbers ≥ 0")));
            }
            let program = expression(&spec.when, &format!("{at}.when"), true)?;
            contexts.push(Context { name: spec.name.as_str().into(), spec: spec.clone(), program });
        }
        let mut dependencies = Dependencies::default();
        let programs = applies.iter().chain(measures.iter().map(|m| &m.program)).chain(contexts.iter().map(|c| &c.program));
        for d in programs.map(Program::dependencies) {
            dependencies.traits.extend(d.traits.iter().cloned());
            dependencies.computed.extend(d.computed.iter().cloned());
            dependencies.segments.extend(d.segments.iter().cloned());
            dependencies.events.extend(d.events.iter().cloned());
            dependencies.properties.extend(d.properties.iter().cloned());
            dependencies.funnels.extend(d.funnels.iter().cloned());
            dependencies.healths.extend(d.healths.iter().cloned());
            dependencies.any_event |= d.any_event;
            dependencies.time_relative |= d.time_relative;
        }
        Ok(Self { definition, applies, measures, contexts, dependencies })
    }

    /// Everything the definition's expressions read: what can change a profile's score.
    pub fn dependencies(&self) -> &Dependencies {
        &self.dependencies
    }

    /// Every expression's text (applies, measures, contexts), for hosts that check what they quote.
    pub fn expressions(&self) -> impl Iterator<Item = &str> {
        let d = &self.definition;
        d.applies
            .iter()
            .map(String::as_str)
            .chain(d.measures.iter().map(|m| m.value.as_str()))
            .chain(d.contexts.iter().map(|c| c.when.as_str()))
    }

    pub fn measure_names(&self) -> impl Iterator<Item = &str> {
        self.measures.iter().map(|m| m.spec.name.as_str())
    }

    /// The profile's measure values as numbers (null as NaN), in the definition's order: what
    /// a baseline model is fitted on.
    pub fn values<P: ProfileView>(&self, profile: &P, now_ms: i64) -> Vec<f64> {
        let context = EvalContext::at(now_ms);
        self.measures.iter().map(|m| number(m.program.evaluate(profile, &context)).unwrap_or(f64::NAN)).collect()
    }

    /// The profile's score as of `now_ms`, or `None` when the definition does not apply to it
    /// or no measure has a value.
    pub fn score<P: ProfileView>(&self, profile: &P, now_ms: i64) -> Option<Scored> {
        let context = EvalContext::at(now_ms);
        if self.applies.as_ref().is_some_and(|a| !a.matches(profile, &context)) {
            return None;
        }
        let applied = self.contexts.iter().find(|c| c.program.matches(profile, &context));
        let mut measures: Vec<MeasureScore> = self
            .measures
            .iter()
            .map(|m| {
                let value = number(m.program.evaluate(profile, &context));
                let score = value.map(|v| interpolate(&m.spec.points, v)).or(m.spec.missing);
                let weight = applied.and_then(|c| c.spec.weights.get(&m.spec.name).copied()).unwrap_or(m.spec.weight);
                MeasureScore { name: m.name.clone(), value, score, weight, contribution: 0.0 }
            })
            .collect();
        let counted: f64 = measures.iter().filter(|m| m.score.is_some()).map(|m| m.weight).sum();
        if counted <= 0.0 {
            return None;
        }
        for m in &mut measures {
            m.contribution = m.score.map_or(0.0, |s| m.weight * s / counted);
        }
        let score = measures.iter().map(|m| m.contribution).sum::<f64>().clamp(0.0, 100.0);
        Some(Scored { score, band: self.band(score), measures, context: applied.map(|c| c.name.clone()) })
    }

    pub fn band(&self, score: f64) -> Band {
        let Bands { red, yellow } = self.definition.bands;
        if score < red {
            Band::Red
        } else if score < yellow {
            Band::Yellow
        } else {
            Band::Green
        }
    }

    /// Why an alert should be raised now, given the profile's previous score: entering red,
    /// or a fall of at least `alerts.drop` points. Empty when nothing is wrong, or when the
    /// context that applies explains it (returned as the second value).
    pub fn alert_reasons(&self, previous: Option<&Scored>, current: &Scored) -> (Vec<Reason>, Option<String>) {
        let mut reasons = Vec::new();
        if current.band == Band::Red && previous.is_none_or(|p| p.band != Band::Red) {
            reasons.push(Reason::EnteredRed);
        }
        if let (Some(drop), Some(previous)) = (self.definition.alerts.drop, previous) {
            if previous.score - current.score >= drop {
                reasons.push(Reason::Dropped);
            }
        }
        let explained = current.context.as_ref().filter(|name| self.contexts.iter().any(|c| c.name == **name && c.spec.explains_alerts));
        match explained {
            Some(name) if !reasons.is_empty() => (Vec::new(), Some(name.to_string())),
            _ => (reasons, None),
        }
    }
}

/// One open alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub profile: String,
    pub reason: Reason,
    pub owner: String,
    pub opened_ms: i64,
    /// The score before the fall (for `Dropped`) or when it entered red.
    pub from_score: f64,
    pub score: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snoozed_until_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snooze_reason: Option<String>,
}

/// What one observation changed.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum AlertChange {
    Opened(Alert),
    /// Its condition cleared: back out of red, or back within the drop of where it fell from.
    Closed {
        profile: String,
        reason: Reason,
    },
    /// Over the owner's daily limit: counted in the day's summary instead.
    HeldBack {
        profile: String,
        reason: Reason,
        owner: String,
    },
}

/// Alerts by exception: at most one open per (profile, reason), closed by itself when its
/// condition clears, snoozable with a reason, and at most `per_owner_per_day` new ones per
/// owner per day (the rest summarised as held back).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AlertBook {
    pub open: BTreeMap<String, BTreeMap<Reason, Alert>>,
    /// (owner, day number) → alerts raised, and held back over the limit.
    raised: BTreeMap<(String, i64), (usize, usize)>,
}

impl AlertBook {
    /// Takes a profile's new score (with its previous one) and opens, keeps or closes its
    /// alerts. `explained` is the context that explains a low score or fall, if any.
    pub fn observe(
        &mut self,
        health: &HealthProgram,
        profile: &str,
        owner: &str,
        previous: Option<&Scored>,
        current: &Scored,
        now_ms: i64,
    ) -> Vec<AlertChange> {
        let mut changes = Vec::new();
        let drop = health.definition.alerts.drop;
        if let Some(open) = self.open.get_mut(profile) {
            open.retain(|reason, alert| {
                let holds = match reason {
                    Reason::EnteredRed => current.band == Band::Red,
                    Reason::Dropped => drop.is_some_and(|d| current.score <= alert.from_score - d),
                };
                alert.score = current.score;
                if !holds {
                    changes.push(AlertChange::Closed { profile: profile.to_string(), reason: *reason });
                }
                holds
            });
        }
        let (reasons, _explained) = health.alert_reasons(previous, current);
        let day = now_ms.div_euclid(86_400_000);
        for reason in reasons {
            if self.open.get(profile).is_some_and(|o| o.contains_key(&reason)) {
                continue;
            }
            let (raised, held) = self.raised.entry((owner.to_string(), day)).or_default();
            if *raised >= health.definition.alerts.per_owner_per_day {
                *held += 1;
                changes.push(AlertChange::HeldBack { profile: profile.to_string(), reason, owner: owner.to_string() });
                continue;
            }
            *raised += 1;
            let from_score = previous.map_or(current.score, |p| p.score);
            let alert = Alert {
                profile: profile.to_string(),
                reason,
                owner: owner.to_string(),
                opened_ms: now_ms,
                from_score,
                score: current.score,
                snoozed_until_ms: None,
                snooze_reason: None,
            };
            self.open.entry(profile.to_string()).or_default().insert(reason, alert.clone());
            changes.push(AlertChange::Opened(alert));
        }
        self.open.retain(|_, alerts| !alerts.is_empty());
        changes
    }

    /// Snoozes an open alert until `until_ms`, saying why; false when there is none.
    pub fn snooze(&mut self, profile: &str, reason: Reason, until_ms: i64, why: &str) -> bool {
        match self.open.get_mut(profile).and_then(|o| o.get_mut(&reason)) {
            Some(alert) => {
                alert.snoozed_until_ms = Some(until_ms);
                alert.snooze_reason = Some(why.to_string());
                true
            }
            None => false,
        }
    }

    /// The alerts to act on now: open and not snoozed, oldest first.
    pub fn queue(&self, now_ms: i64) -> Vec<&Alert> {
        let mut alerts: Vec<&Alert> =
            self.open.values().flat_map(|o| o.values()).filter(|a| a.snoozed_until_ms.is_none_or(|until| until <= now_ms)).collect();
        alerts.sort_by(|a, b| (a.opened_ms, &a.profile).cmp(&(b.opened_ms, &b.profile)));
        alerts
    }

    /// How many alerts were held back over the limit, per owner, on the day holding `now_ms`.
    pub fn held_back(&self, now_ms: i64) -> BTreeMap<&str, usize> {
        let day = now_ms.div_euclid(86_400_000);
        self.raised
            .iter()
            .filter(|((_, d), (_, held))| *d == day && *held > 0)
            .map(|((owner, _), (_, held))| (owner.as_str(), *held))
            .collect()
    }
}

/// A value as a number: numbers as they are, `true`/`false` as 1/0, durations in days.
fn number(value: Scalar<'_>) -> Option<f64> {
    match value {
        Scalar::Number(n) if n.is_finite() => Some(n),
        Scalar::Bool(b) => Some(f64::from(u8::from(b))),
        Scalar::Duration(ms) => Some(ms as f64 / 86_400_000.0),
        Scalar::Str(s) => s.trim().parse().ok().filter(|n: &f64| n.is_finite()),
        _ => None,
    }
}

/// The score at `value` on the straight lines through `points` (sorted by value).
fn interpolate(points: &[(f64, f64)], value: f64) -> f64 {
    let (first, last) = (points[0], points[points.len() - 1]);
    if value <= first.0 {
        return first.1;
    }
    if value >= last.0 {
        return last.1;
    }
    let i = points.partition_point(|p| p.0 <= value);
    let ((x0, y0), (x1, y1)) = (points[i - 1], points[i]);
    if x1 == x0 {
        y1
    } else {
        y0 + (y1 - y0) * (value - x0) / (x1 - x0)
    }
}

/// A profile as it was at `until_ms`: its events up to then and nothing after, for scoring
/// the past without the future leaking in (traits are as the host holds them now).
pub struct AsOf<'a, P> {
    pub profile: &'a P,
    pub until_ms: i64,
}

impl<P: ProfileView> ProfileView for AsOf<'_, P> {
    type Event = P::Event;

    fn trait_value(&self, name: &str) -> Scalar<'_> {
        self.profile.trait_value(name)
    }

    /// Computed traits and segments are the host's current values, not the past's: left out.
    fn computed(&self, _name: &str) -> Scalar<'_> {
        Scalar::Null
    }

    fn in_segment(&self, _name: &str) -> bool {
        false
    }

    fn funnel(&self, _name: &str, _field: FunnelField, _now_ms: i64) -> Scalar<'_> {
        Scalar::Null
    }

    fn health(&self, _name: &str, _field: HealthField, _now_ms: i64) -> Scalar<'_> {
        Scalar::Null
    }

    fn event_name<'a>(&'a self, event: &'a Self::Event) -> &'a str {
        self.profile.event_name(event)
    }

    fn events<'a>(&'a self, name: Option<&'a str>) -> impl DoubleEndedIterator<Item = &'a Self::Event> + 'a {
        let until = self.until_ms;
        self.profile.events(name).filter(move |e| kinship_expr::EventView::timestamp_ms(*e) <= until)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn straight_lines_between_points_and_level_beyond() {
        let points = [(0.0, 0.0), (1.0, 60.0), (3.0, 100.0)];
        assert_eq!(interpolate(&points, -5.0), 0.0);
        assert_eq!(interpolate(&points, 0.5), 30.0);
        assert_eq!(interpolate(&points, 2.0), 80.0);
        assert_eq!(interpolate(&points, 9.0), 100.0);
        assert_eq!(interpolate(&[(2.0, 50.0)], 1.0), 50.0);
        // Two points at one value make a step.
        let step = [(1.0, 10.0), (1.0, 90.0), (2.0, 90.0)];
        assert_eq!((interpolate(&step, 0.5), interpolate(&step, 1.5)), (10.0, 90.0));
    }
}
