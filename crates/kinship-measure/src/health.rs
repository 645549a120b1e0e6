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
//! [[contexts]]
//! name = "usual for them"                   # as many tickets as this customer usually has
//! usual = { measure = "tickets", over = "180 days", every = "30 days" }
//! weights = { tickets = 0 }
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
    /// When the profile is in this context (the first context that holds applies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<String>,
    /// Or: in this context when a measure is at the customer's own usual level.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usual: Option<UsualSpec>,
    /// Weights that replace the measures' own in this context (0 leaves a measure out).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub weights: BTreeMap<String, f64>,
    /// Whether this context explains a low score or a fall, so no alert is raised.
    #[serde(default)]
    pub explains_alerts: bool,
}

/// A measure at the customer's own usual level: its score now is no lower than the median of
/// its scores as of `every`, 2 × `every`, … back over `over` (at least three of them with a
/// value), and that usual is below 100. A customer who always calls a lot is not alarming
/// for calling a lot; one who starts to is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsualSpec {
    pub measure: String,
    pub over: String,
    pub every: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertSpec {
    /// Alert on a fall of at least this many points too (entering red always alerts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drop: Option<f64>,
    /// At most this many new alerts per owner per day; the rest are summarised.
    #[serde(default = "twenty")]
    pub per_owner_per_day: usize,
    /// The trait naming a customer's owner (`account_manager`); alerts of customers without
    /// one go to `unassigned`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

fn twenty() -> usize {
    20
}

impl Default for AlertSpec {
    fn default() -> Self {
        Self { drop: None, per_owner_per_day: twenty(), owner: None }
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

impl Reason {
    pub fn name(self) -> &'static str {
        match self {
            Reason::EnteredRed => "entered_red",
            Reason::Dropped => "dropped",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        [Reason::EnteredRed, Reason::Dropped].into_iter().find(|r| r.name() == name)
    }
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
    test: ContextTest,
}

enum ContextTest {
    When(Box<Program>),
    /// The measure's index, and the times back (ms) its usual is read at.
    Usual {
        measure: usize,
        back_ms: Vec<i64>,
    },
}

/// Fewest past readings a usual level is judged from.
const USUAL_READINGS: usize = 3;

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
            let test = match (&spec.when, &spec.usual) {
                (Some(when), None) => ContextTest::When(Box::new(expression(when, &format!("{at}.when"), true)?)),
                (None, Some(usual)) => ContextTest::Usual {
                    measure: measures
                        .iter()
                        .position(|m| m.spec.name == usual.measure)
                        .ok_or_else(|| DefinitionError(format!("{at}.usual.measure: no measure named `{}`", usual.measure)))?,
                    back_ms: usual_readings(usual).map_err(|e| DefinitionError(format!("{at}.usual: {e}")))?,
                },
                _ => {
                    return Err(DefinitionError(format!(
                        "{at}: give `when` (a condition) or `usual` (a measure at its usual level), one of them"
                    )))
                }
            };
            contexts.push(Context { name: spec.name.as_str().into(), spec: spec.clone(), test });
        }
        let mut dependencies = Dependencies::default();
        let when = contexts.iter().filter_map(|c| match &c.test {
            ContextTest::When(program) => Some(&**program),
            ContextTest::Usual { .. } => None,
        });
        let programs = applies.iter().chain(measures.iter().map(|m| &m.program)).chain(when);
        for d in programs.map(Program::dependencies) {
            dependencies.absorb(d);
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
            .chain(d.contexts.iter().filter_map(|c| c.when.as_deref()))
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
        // Measures first (a usual-level context reads a measure's score), then the context's weights.
        let mut measures: Vec<MeasureScore> = self
            .measures
            .iter()
            .map(|m| {
                let value = number(m.program.evaluate(profile, &context));
                let score = value.map(|v| interpolate(&m.spec.points, v)).or(m.spec.missing);
                MeasureScore { name: m.name.clone(), value, score, weight: m.spec.weight, contribution: 0.0 }
            })
            .collect();
        let applied = self.contexts.iter().find(|c| match &c.test {
            ContextTest::When(program) => program.matches(profile, &context),
            ContextTest::Usual { measure, back_ms } => self.at_usual_level(profile, now_ms, *measure, measures[*measure].score, back_ms),
        });
        if let Some(c) = applied {
            for m in &mut measures {
                if let Some(w) = c.spec.weights.get(&*m.name) {
                    m.weight = *w;
                }
            }
        }
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

    /// Whether measure `i`'s score now is no lower than its median over the past readings.
    fn at_usual_level<P: ProfileView>(&self, profile: &P, now_ms: i64, i: usize, now: Option<f64>, back_ms: &[i64]) -> bool {
        let Some(now) = now else { return false };
        let m = &self.measures[i];
        let mut past: Vec<f64> = back_ms
            .iter()
            .filter_map(|back| {
                let at = now_ms.saturating_sub(*back);
                let then = AsOf { profile, until_ms: at };
                number(m.program.evaluate(&then, &EvalContext::at(at))).map(|v| interpolate(&m.spec.points, v)).or(m.spec.missing)
            })
            .collect();
        if past.len() < USUAL_READINGS {
            return false;
        }
        past.sort_by(f64::total_cmp);
        let usual = past[past.len() / 2];
        usual < 100.0 && now >= usual
    }

    /// The profile's score as of each of `count` times `every_ms` apart, oldest first and
    /// ending now, judged on its events up to each time (see [`AsOf`]): its history and trend,
    /// recomputed from the records rather than stored, so a changed definition or an erased
    /// record changes the past too.
    pub fn history<P: ProfileView>(&self, profile: &P, now_ms: i64, every_ms: i64, count: usize) -> Vec<(i64, Option<Scored>)> {
        (0..count as i64)
            .rev()
            .map(|k| {
                let at = now_ms.saturating_sub(k.saturating_mul(every_ms));
                (at, self.score(&AsOf { profile, until_ms: at }, at))
            })
            .collect()
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
/// condition clears (or kept open while its reason is raised again), and at most
/// `per_owner_per_day` new ones per owner per day (the rest summarised as held back). A host
/// keeps the book between runs and snoozes alerts there ([`AlertBook::restore`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AlertBook {
    pub open: BTreeMap<String, BTreeMap<Reason, Alert>>,
    /// (owner, day number) → alerts raised, and held back over the limit.
    raised: BTreeMap<(String, i64), (usize, usize)>,
}

impl AlertBook {
    /// A book as a host kept it: its open alerts, and per (owner, day number) the alerts
    /// raised and held back that day.
    pub fn restore(open: impl IntoIterator<Item = Alert>, raised: impl IntoIterator<Item = ((String, i64), (usize, usize))>) -> Self {
        let mut book = Self { open: BTreeMap::new(), raised: raised.into_iter().collect() };
        for alert in open {
            book.open.entry(alert.profile.clone()).or_default().insert(alert.reason, alert);
        }
        book
    }

    /// Closes every open alert of a profile that is no longer scored (the definition no
    /// longer applies to it, or it was merged away).
    pub fn forget(&mut self, profile: &str) -> Vec<AlertChange> {
        let open = self.open.remove(profile).unwrap_or_default();
        open.into_keys().map(|reason| AlertChange::Closed { profile: profile.to_string(), reason }).collect()
    }

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
        let (reasons, _explained) = health.alert_reasons(previous, current);
        if let Some(open) = self.open.get_mut(profile) {
            open.retain(|reason, alert| {
                // A reason raised again now keeps its alert open (a fall measured from a
                // newer score), rather than closing it and opening another.
                let holds = reasons.contains(reason)
                    || match reason {
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
            };
            self.open.entry(profile.to_string()).or_default().insert(reason, alert.clone());
            changes.push(AlertChange::Opened(alert));
        }
        self.open.retain(|_, alerts| !alerts.is_empty());
        changes
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

/// The times back a usual level is read at: `every`, 2 × `every`, … up to `over`.
fn usual_readings(usual: &UsualSpec) -> Result<Vec<i64>, String> {
    let duration = |text: &str| kinship_expr::parse_duration(text).ok_or_else(|| format!("`{text}` is not a duration: write `30 days`"));
    let (over, every) = (duration(&usual.over)?, duration(&usual.every)?);
    if every <= 0 || over / every < USUAL_READINGS as i64 || over / every > 60 {
        return Err(format!(
            "`over` must hold {USUAL_READINGS} to 60 readings `every` apart (e.g. over = \"180 days\", every = \"30 days\")"
        ));
    }
    Ok((1..=over / every).map(|k| k * every).collect())
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

/// An account scored as one customer: its people's events together in time order, so a
/// measure reads an account as it reads a person ("tickets in the last 30 days" counts
/// everyone's, "days since the last order" is since anyone's). A trait is the first member's
/// that holds one; a segment holds when any member is in it; computed traits, funnels and
/// health are a person's own and read as absent. Members share one catalog of event names
/// (as one audience's profiles do): the first member names every event.
pub struct Group<'a, P: ProfileView> {
    members: &'a [P],
    /// Every member's events in time order, merged once: a score reads them once per
    /// measure, and a history once per week.
    merged: Vec<&'a P::Event>,
}

impl<'a, P: ProfileView> Group<'a, P> {
    pub fn new(members: &'a [P]) -> Self {
        let mut merged: Vec<&'a P::Event> = members.iter().flat_map(|m| m.events(None)).collect();
        // A stable sort merges the members' runs, each already in time order.
        merged.sort_by_key(|e| kinship_expr::EventView::timestamp_ms(*e));
        Group { members, merged }
    }
}

impl<P: ProfileView> ProfileView for Group<'_, P> {
    type Event = P::Event;

    fn trait_value(&self, name: &str) -> Scalar<'_> {
        self.members.iter().map(|m| m.trait_value(name)).find(|v| !matches!(v, Scalar::Null)).unwrap_or(Scalar::Null)
    }

    fn computed(&self, _name: &str) -> Scalar<'_> {
        Scalar::Null
    }

    fn in_segment(&self, name: &str) -> bool {
        self.members.iter().any(|m| m.in_segment(name))
    }

    fn event_name<'a>(&'a self, event: &'a Self::Event) -> &'a str {
        self.members.first().map_or("", |m| m.event_name(event))
    }

    fn events<'a>(&'a self, name: Option<&'a str>) -> impl DoubleEndedIterator<Item = &'a Self::Event> + 'a {
        self.merged.iter().copied().filter(move |e| name.is_none_or(|n| self.event_name(e) == n))
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
