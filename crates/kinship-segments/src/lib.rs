//! The audience engine: every profile's golden traits and events held in memory, with the
//! computed traits and segments defined over them in the expression language (`kinship-expr`).
//!
//! Apache Unomi answers "who is in this segment" by translating the condition into an
//! Elasticsearch query over indexed profile and event documents. Kinship instead keeps a compact
//! copy of each profile (traits, and events sorted by time) in memory and runs a compiled program
//! over it: a full recomputation is one parallel pass over the profiles, and an arriving event
//! re-evaluates, for that one profile, only the definitions that read what changed.
//!
//! Definitions are computed traits (`lifetime_value = sum("Order Completed", revenue)`),
//! segments (a boolean expression) and funnels (`kinship-measure`'s TOML), which segments read
//! as `funnel("checkout").step`. All are kept in dependency order, so one pass evaluates a
//! definition after everything it reads. A segment's membership changes are returned as
//! [`Transition`]s for the host to store on the profile's timeline. The crate is pure: no I/O.

mod held;
mod profile;

use held::Held;
pub use kinship_expr::MAX_SOURCE_BYTES as MAX_EXPRESSION_BYTES;
use profile::{Event, Profile};

use kinship_expr::{find_cycle, Dependencies, EvalContext, FunnelField, HealthField, ProfileView, Program, Reference, Scalar, Schema};
use kinship_measure::definition::FunnelProgram;
use kinship_measure::funnel::{Attempt, Funnel};
use kinship_measure::health::{HealthProgram, Scored};
use rayon::prelude::*;
use rustc_hash::{FxHashMap, FxHashSet};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

/// What a definition is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Segment,
    Computed,
    Funnel,
    Health,
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Kind::Segment => "segment",
            Kind::Computed => "computed trait",
            Kind::Funnel => "funnel",
            Kind::Health => "health definition",
        })
    }
}

/// A named expression as the host stores it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DefinitionSource {
    pub kind: Kind,
    pub name: String,
    pub expression: String,
}

#[derive(Debug, thiserror::Error)]
pub enum DefinitionError {
    /// The expression does not parse or type-check; `rendered` shows the line with a caret.
    #[error("{kind} {name}: {rendered}")]
    Expression { kind: Kind, name: String, line: usize, column: usize, message: String, rendered: String },
    #[error("{0} {1} is already defined")]
    Exists(Kind, String),
    #[error("no {0} named {1}")]
    Unknown(Kind, String),
    #[error("definitions refer to each other in a cycle: {0}")]
    Cycle(String),
    #[error("{kind} {name} is used by {users}; delete or change those first")]
    InUse { kind: Kind, name: String, users: String },
    #[error("{0} name {1:?} must be 1 to 64 letters, digits, '_' or '-'")]
    BadName(Kind, String),
    #[error("funnel {name}: {message}")]
    Funnel { name: String, message: String },
    #[error("health definition {name}: {message}")]
    Health { name: String, message: String },
}

/// A profile entering or leaving a segment.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Transition {
    pub segment: String,
    pub profile: String,
    pub entered: bool,
}

/// A count and a sample of the profiles an expression selects.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Preview {
    pub count: usize,
    pub sample: Vec<String>,
}

struct Definition {
    kind: Kind,
    name: String,
    expression: String,
    compiled: Compiled,
}

enum Compiled {
    Expression(Box<Program>),
    Funnel(Box<FunnelState>),
    Health(Box<HealthProgram>),
}

/// A funnel and what the last full pass learnt of it.
struct FunnelState {
    program: FunnelProgram,
    /// Per step reached (index 0: step 1): the 90th percentile of the time attempts took to
    /// the next step, what `.stuck` compares a wait with.
    p90_to_next: Vec<Option<i64>>,
}

impl Compiled {
    fn dependencies(&self) -> &Dependencies {
        match self {
            Compiled::Expression(program) => program.dependencies(),
            Compiled::Funnel(state) => state.program.dependencies(),
            Compiled::Health(program) => program.dependencies(),
        }
    }

    fn program(&self) -> Option<&Program> {
        match self {
            Compiled::Expression(program) => Some(program),
            Compiled::Funnel(_) | Compiled::Health(_) => None,
        }
    }
}

/// Whether `dependencies` read the definition `kind` `name`.
fn reads(dependencies: &Dependencies, kind: Kind, name: &str) -> bool {
    match kind {
        Kind::Segment => dependencies.segments.contains(name),
        Kind::Computed => dependencies.computed.contains(name),
        Kind::Funnel => dependencies.funnels.contains(name),
        Kind::Health => dependencies.healths.contains(name),
    }
}

/// Names the profiles and the definitions share, kept apart from the profiles so that a
/// parallel pass can read it while each profile's values are written.
#[derive(Default)]
pub(crate) struct Catalog {
    pub(crate) event_names: FxHashMap<Box<str>, u32>,
    /// Event names by id.
    event_list: Vec<Box<str>>,
    /// Trait names as small ids: a profile's traits are sorted by id, so a lookup hashes
    /// the name once and then compares integers.
    trait_ids: FxHashMap<Box<str>, u32>,
    pub(crate) trait_names: Vec<Box<str>>,
    /// Event property names, shared by every event that has them.
    keys: FxHashSet<Arc<str>>,
    /// In dependency order: each definition comes after everything it reads.
    definitions: Vec<Definition>,
    position: FxHashMap<(Kind, String), usize>,
}

impl Catalog {
    pub(crate) fn event_id(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.event_names.get(name) {
            return id;
        }
        let id = self.event_list.len() as u32;
        self.event_list.push(name.into());
        self.event_names.insert(name.into(), id);
        id
    }

    pub(crate) fn trait_id(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.trait_ids.get(name) {
            return id;
        }
        let id = self.trait_names.len() as u32;
        self.trait_names.push(name.into());
        self.trait_ids.insert(name.into(), id);
        id
    }

    pub(crate) fn key(&mut self, name: &str) -> Arc<str> {
        if let Some(k) = self.keys.get(name) {
            return k.clone();
        }
        let k: Arc<str> = name.into();
        self.keys.insert(k.clone());
        k
    }

    fn schema(&self) -> Schema {
        let mut schema = Schema::new();
        for d in &self.definitions {
            schema = match &d.compiled {
                Compiled::Expression(_) if d.kind == Kind::Segment => schema.with_segment(&d.name),
                Compiled::Expression(program) => schema.with_computed(&d.name, program.result_type()),
                Compiled::Funnel(_) => schema.with_funnel(&d.name),
                Compiled::Health(_) => schema.with_health(&d.name),
            };
        }
        schema
    }

    /// What segments and computed traits read, for cycle checks: funnels read no definition.
    fn dependencies(&self) -> BTreeMap<Reference, Dependencies> {
        self.definitions.iter().filter_map(|d| Some((reference(d.kind, &d.name)?, d.compiled.dependencies().clone()))).collect()
    }

    fn funnel(&self, name: &str) -> Option<&FunnelState> {
        let &i = self.position.get(&(Kind::Funnel, name.to_string()))?;
        match &self.definitions[i].compiled {
            Compiled::Funnel(state) => Some(state),
            _ => None,
        }
    }

    fn health(&self, name: &str) -> Option<&HealthProgram> {
        let &i = self.position.get(&(Kind::Health, name.to_string()))?;
        match &self.definitions[i].compiled {
            Compiled::Health(program) => Some(program),
            _ => None,
        }
    }
}

fn reference(kind: Kind, name: &str) -> Option<Reference> {
    match kind {
        Kind::Segment => Some(Reference::Segment(name.to_string())),
        Kind::Computed => Some(Reference::Computed(name.to_string())),
        Kind::Funnel | Kind::Health => None,
    }
}

/// One held profile as a program sees it: what a host measuring over the audience reads
/// ([`Audience::map_profiles`]).
pub struct HeldProfile<'a> {
    catalog: &'a Catalog,
    profile: &'a Profile,
}

impl<'a> HeldProfile<'a> {
    /// The profile's id, borrowed from the audience (not from this view).
    pub fn id(&self) -> &'a str {
        &self.profile.id
    }
}

impl ProfileView for HeldProfile<'_> {
    type Event = Event;

    fn trait_value(&self, name: &str) -> kinship_expr::Scalar<'_> {
        match self.catalog.trait_ids.get(name) {
            Some(&id) => self.profile.trait_value(id),
            None => kinship_expr::Scalar::Null,
        }
    }

    fn computed(&self, name: &str) -> kinship_expr::Scalar<'_> {
        match self.catalog.position.get(&(Kind::Computed, name.to_string())) {
            Some(&i) => self.profile.values.get(i).map_or(kinship_expr::Scalar::Null, Held::scalar),
            None => kinship_expr::Scalar::Null,
        }
    }

    fn in_segment(&self, name: &str) -> bool {
        match self.catalog.position.get(&(Kind::Segment, name.to_string())) {
            Some(&i) => matches!(self.profile.values.get(i), Some(Held::Bool(true))),
            None => false,
        }
    }

    fn funnel(&self, name: &str, field: FunnelField, now_ms: i64) -> Scalar<'_> {
        let Some(state) = self.catalog.funnel(name) else { return Scalar::Null };
        let position = state.program.funnel.position(&state.program.moments(self));
        match (field, position) {
            (FunnelField::Step, None) => Scalar::Number(0.0),
            (FunnelField::Step, Some(attempt)) => Scalar::Number(attempt.depth() as f64),
            (FunnelField::Reached, attempt) => attempt.and_then(|a| a.reached.last().copied()).map_or(Scalar::Null, Scalar::Date),
            (FunnelField::Stuck, None) => Scalar::Bool(false),
            (FunnelField::Stuck, Some(attempt)) => {
                let threshold = state.p90_to_next.get(attempt.depth() - 1).copied().flatten();
                let waited = now_ms.saturating_sub(attempt.reached.last().copied().unwrap_or(now_ms));
                Scalar::Bool(attempt.depth() < state.program.funnel.steps && threshold.is_some_and(|p90| waited > p90))
            }
        }
    }

    fn health(&self, name: &str, field: HealthField, now_ms: i64) -> Scalar<'_> {
        let Some(scored) = self.catalog.health(name).and_then(|h| h.score(self, now_ms)) else { return Scalar::Null };
        match field {
            HealthField::Score => Scalar::Number(scored.score),
            HealthField::Band => Scalar::Str(scored.band.name()),
        }
    }

    fn event_name<'a>(&'a self, event: &'a Event) -> &'a str {
        self.catalog.event_list.get(event.name as usize).map_or("", |n| n)
    }

    fn events<'a>(&'a self, name: Option<&'a str>) -> impl DoubleEndedIterator<Item = &'a Event> + 'a {
        // An unknown name selects nothing: u32::MAX is never an event id.
        let wanted = name.map(|n| self.catalog.event_names.get(n).copied().unwrap_or(u32::MAX));
        self.profile.events.iter().filter(move |e| wanted.is_none_or(|w| e.name == w))
    }
}

/// What changed on a profile when it was loaded again.
#[derive(Debug, Default, Clone)]
pub struct ProfileChange {
    pub new: bool,
    pub traits: FxHashSet<String>,
    pub events: FxHashSet<String>,
}

impl ProfileChange {
    pub fn is_empty(&self) -> bool {
        !self.new && self.traits.is_empty() && self.events.is_empty()
    }
}

/// Every profile, and the definitions evaluated over them.
#[derive(Default)]
pub struct Audience {
    catalog: Catalog,
    profiles: Vec<Option<Profile>>,
    slot_of: FxHashMap<Box<str>, u32>,
    free: Vec<u32>,
    /// Members of each definition position (segments only; zero for computed traits).
    sizes: Vec<usize>,
    /// Programs run against a profile so far (previews excluded): what shows that an event
    /// costs a few runs, not a recomputation.
    evaluations: u64,
    /// Profiles are not held: nothing was defined, so keeping every profile current would
    /// cost the real-time path for nothing. The host loads them before defining.
    unloaded: bool,
    /// A stamp of the source mappings the host made the events with (0: not given), so a
    /// reader can tell that they were edited since.
    mapped_by: u64,
}

impl Audience {
    pub fn new() -> Self {
        Self::default()
    }

    /// An audience that holds no profiles until the host loads them (see [`Audience::is_unloaded`]).
    pub fn unloaded() -> Self {
        Self { unloaded: true, ..Self::default() }
    }

    pub fn is_unloaded(&self) -> bool {
        self.unloaded
    }

    /// Records the stamp of the source mappings the events were made with.
    pub fn set_mapped_by(&mut self, stamp: u64) {
        self.mapped_by = stamp;
    }

    /// The stamp given by [`Audience::set_mapped_by`], 0 if none.
    pub fn mapped_by(&self) -> u64 {
        self.mapped_by
    }

    pub fn profile_count(&self) -> usize {
        self.slot_of.len()
    }

    /// How many times a definition has been evaluated against a profile.
    pub fn evaluations(&self) -> u64 {
        self.evaluations
    }

    /// Adds a profile, or replaces one with what the store now holds, and says what changed.
    /// Its definitions are not evaluated: call [`Audience::evaluate_profile`] with the change.
    pub fn upsert_profile<'e>(
        &mut self,
        id: &str,
        traits: &Map<String, Value>,
        events: impl IntoIterator<Item = (&'e str, i64, &'e Map<String, Value>)>,
    ) -> ProfileChange {
        self.upsert_recorded_profile(id, traits, events.into_iter().map(|(name, ts, properties)| (name, ts, properties, 0)))
    }

    /// [`Audience::upsert_profile`] with each event's record id, which readers of held events
    /// get back (`record()`) to fetch only the records they need.
    pub fn upsert_recorded_profile<'e>(
        &mut self,
        id: &str,
        traits: &Map<String, Value>,
        events: impl IntoIterator<Item = (&'e str, i64, &'e Map<String, Value>, i64)>,
    ) -> ProfileChange {
        let mut profile = Profile::build(id, traits, events, &mut self.catalog);
        match self.slot_of.get(id) {
            Some(&slot) => {
                let old = self.profiles[slot as usize].as_mut().expect("a mapped slot holds a profile");
                let change = old.difference(&profile, &self.catalog);
                profile.values = std::mem::take(&mut old.values);
                *old = profile;
                change
            }
            None => {
                profile.values = vec![Held::Null; self.catalog.definitions.len()];
                let slot = match self.free.pop() {
                    Some(slot) => {
                        self.profiles[slot as usize] = Some(profile);
                        slot
                    }
                    None => {
                        self.profiles.push(Some(profile));
                        (self.profiles.len() - 1) as u32
                    }
                };
                self.slot_of.insert(id.into(), slot);
                ProfileChange { new: true, ..Default::default() }
            }
        }
    }

    /// Removes a profile (merged into another, or erased); returns the segments it was in.
    /// No transition is recorded: the person did not leave, their profile went away.
    pub fn remove_profile(&mut self, id: &str) -> Vec<String> {
        let Some(slot) = self.slot_of.remove(id) else { return Vec::new() };
        let profile = self.profiles[slot as usize].take().expect("a mapped slot holds a profile");
        self.free.push(slot);
        let mut was_in = Vec::new();
        for (i, d) in self.catalog.definitions.iter().enumerate() {
            if d.kind == Kind::Segment && profile.values[i] == Held::Bool(true) {
                self.sizes[i] -= 1;
                was_in.push(d.name.clone());
            }
        }
        was_in
    }

    /// The first of up to `limit` text values of trait `name` (from the first profiles
    /// holding one) that `found` picks: what a host classifies a trait by when its name says
    /// nothing (does it hold emails?). Nothing is copied, so looking costs only the scan.
    pub fn find_trait_text<T>(&self, name: &str, limit: usize, found: impl Fn(&str) -> Option<T>) -> Option<T> {
        let &id = self.catalog.trait_ids.get(name)?;
        self.profiles
            .iter()
            .flatten()
            .filter_map(|p| match p.trait_value(id) {
                kinship_expr::Scalar::Str(text) => Some(text),
                _ => None,
            })
            .take(limit)
            .find_map(found)
    }

    /// As [`Audience::find_trait_text`], over the values of event property `name` in every
    /// profile's events.
    pub fn find_property_text<T>(&self, name: &str, limit: usize, found: impl Fn(&str) -> Option<T>) -> Option<T> {
        self.profiles
            .iter()
            .flatten()
            .flat_map(|p| p.events.iter())
            .filter_map(|e| match kinship_expr::EventView::property(e, name) {
                kinship_expr::Scalar::Str(text) => Some(text),
                _ => None,
            })
            .take(limit)
            .find_map(found)
    }

    /// The schema expressions are checked against: the defined computed traits and segments.
    pub fn schema(&self) -> Schema {
        self.catalog.schema()
    }

    /// Compiles a definition against the current ones without adding it.
    fn compile(&self, source: &DefinitionSource) -> Result<Compiled, DefinitionError> {
        check_name(source.kind, &source.name)?;
        if source.kind == Kind::Health {
            let health = |message: String| DefinitionError::Health { name: source.name.clone(), message };
            // Against the definitions so far: a health definition may read computed traits,
            // segments and funnels defined before it, and nothing defined later can be read
            // by it, so no cycle can form.
            let program = HealthProgram::parse(&source.expression, &self.catalog.schema()).map_err(|e| health(e.0))?;
            if program.definition.name != source.name {
                return Err(health(format!("its definition is named `{}`", program.definition.name)));
            }
            return Ok(Compiled::Health(Box::new(program)));
        }
        if source.kind == Kind::Funnel {
            let funnel = |message: String| DefinitionError::Funnel { name: source.name.clone(), message };
            let program = FunnelProgram::parse(&source.expression).map_err(|e| funnel(e.0))?;
            if program.definition.name != source.name {
                return Err(funnel(format!("its definition is named `{}`", program.definition.name)));
            }
            let steps = program.funnel.steps;
            return Ok(Compiled::Funnel(Box::new(FunnelState { program, p90_to_next: vec![None; steps] })));
        }
        self.compile_expression(source).map(|program| Compiled::Expression(Box::new(program)))
    }

    fn compile_expression(&self, source: &DefinitionSource) -> Result<Program, DefinitionError> {
        let schema = self.catalog.schema();
        let compiled = match source.kind {
            Kind::Segment => kinship_expr::compile_segment(&source.expression, &schema),
            _ => kinship_expr::compile_computed(&source.expression, &schema),
        };
        compiled.map_err(|e| {
            let (line, column) = e.line_column(&source.expression);
            DefinitionError::Expression {
                kind: source.kind,
                name: source.name.clone(),
                line,
                column,
                message: e.to_string(),
                rendered: e.render(&source.expression),
            }
        })
    }

    /// Adds a definition (after checking its name is free, its expression, and that it closes
    /// no cycle) and evaluates it over every profile. Returns the segment's transitions.
    pub fn define(&mut self, source: DefinitionSource, now_ms: i64) -> Result<Vec<Transition>, DefinitionError> {
        if self.catalog.position.contains_key(&(source.kind, source.name.clone())) {
            return Err(DefinitionError::Exists(source.kind, source.name));
        }
        // A definition reading itself is a cycle, not an unknown name.
        if let (Some(r), Ok(expr)) = (reference(source.kind, &source.name), kinship_expr::parse(&source.expression)) {
            if reads(&expr.dependencies(), source.kind, &source.name) {
                return Err(DefinitionError::Cycle(format!("{r} -> {r}")));
            }
        }
        let compiled = self.compile(&source)?;
        if let Some(r) = reference(source.kind, &source.name) {
            let mut deps = self.catalog.dependencies();
            deps.insert(r, compiled.dependencies().clone());
            if let Some(cycle) = find_cycle(&deps) {
                let path: Vec<String> = cycle.iter().map(ToString::to_string).collect();
                return Err(DefinitionError::Cycle(path.join(" -> ")));
            }
        }
        // Everything it reads is already defined, so it can go last in dependency order.
        let position = self.catalog.definitions.len();
        self.catalog.position.insert((source.kind, source.name.clone()), position);
        self.catalog.definitions.push(Definition { kind: source.kind, name: source.name, expression: source.expression, compiled });
        self.sizes.push(0);
        for p in self.profiles.iter_mut().flatten() {
            p.values.push(Held::Null);
        }
        Ok(self.evaluate_positions(&[position], now_ms))
    }

    /// Removes a definition nothing else reads; returns the segment's members as leaving.
    pub fn undefine(&mut self, kind: Kind, name: &str) -> Result<Vec<Transition>, DefinitionError> {
        let Some(&position) = self.catalog.position.get(&(kind, name.to_string())) else {
            return Err(DefinitionError::Unknown(kind, name.to_string()));
        };
        let users: Vec<String> = self
            .catalog
            .definitions
            .iter()
            .filter(|d| reads(d.compiled.dependencies(), kind, name))
            .map(|d| reference(d.kind, &d.name).map_or_else(|| format!("{} {}", d.kind, d.name), |r| r.to_string()))
            .collect();
        if !users.is_empty() {
            return Err(DefinitionError::InUse { kind, name: name.to_string(), users: users.join(", ") });
        }
        let mut left = Vec::new();
        for (slot_id, slot) in &self.slot_of {
            let p = self.profiles[*slot as usize].as_ref().expect("a mapped slot holds a profile");
            if kind == Kind::Segment && p.values[position] == Held::Bool(true) {
                left.push(Transition { segment: name.to_string(), profile: slot_id.to_string(), entered: false });
            }
        }
        self.catalog.definitions.remove(position);
        self.sizes.remove(position);
        for p in self.profiles.iter_mut().flatten() {
            p.values.remove(position);
        }
        self.catalog.position = self.catalog.definitions.iter().enumerate().map(|(i, d)| ((d.kind, d.name.clone()), i)).collect();
        Ok(left)
    }

    /// Gives a definition a new expression that reads the same things (erasure rewriting a
    /// quoted identifier away), and recomputes it and what reads it.
    pub fn replace_expression(
        &mut self,
        kind: Kind,
        name: &str,
        expression: String,
        now_ms: i64,
    ) -> Result<Vec<Transition>, DefinitionError> {
        let Some(&position) = self.catalog.position.get(&(kind, name.to_string())) else {
            return Err(DefinitionError::Unknown(kind, name.to_string()));
        };
        let source = DefinitionSource { kind, name: name.to_string(), expression };
        let compiled = self.compile(&source)?;
        if compiled.dependencies() != self.catalog.definitions[position].compiled.dependencies() {
            return Err(DefinitionError::Expression {
                kind,
                name: name.to_string(),
                line: 1,
                column: 1,
                message: "a replaced expression must read what the old one read".to_string(),
                rendered: source.expression.clone(),
            });
        }
        let definition = &mut self.catalog.definitions[position];
        definition.expression = source.expression;
        definition.compiled = compiled;
        self.recompute(kind, name, now_ms)
    }

    /// Loads stored definitions in an order where each follows what it reads. Fails on the
    /// first that does not compile or closes a cycle.
    pub fn define_all(&mut self, sources: Vec<DefinitionSource>, now_ms: i64) -> Result<Vec<Transition>, DefinitionError> {
        let mut pending = sources;
        let mut transitions = Vec::new();
        while !pending.is_empty() {
            let before = pending.len();
            let mut blocked = Vec::new();
            let mut last_error = None;
            for source in pending {
                match self.define(source.clone(), now_ms) {
                    Ok(t) => transitions.extend(t),
                    Err(e @ DefinitionError::Expression { .. }) => {
                        last_error = Some(e);
                        blocked.push(source);
                    }
                    Err(e) => return Err(e),
                }
            }
            if blocked.len() == before {
                return Err(last_error.expect("a blocked definition has an error"));
            }
            pending = blocked;
        }
        Ok(transitions)
    }

    /// Evaluates the definitions at `positions` (in dependency order) over every profile, in
    /// parallel, and returns the segment transitions.
    fn evaluate_positions(&mut self, positions: &[usize], now_ms: i64) -> Vec<Transition> {
        let context = EvalContext::at(now_ms);
        let mut transitions = Vec::new();
        for &position in positions {
            self.evaluations += self.slot_of.len() as u64;
            let d = &self.catalog.definitions[position];
            let Some(program) = d.compiled.program() else {
                let p90_to_next = self.funnel_thresholds(position);
                if let Compiled::Funnel(state) = &mut self.catalog.definitions[position].compiled {
                    state.p90_to_next = p90_to_next;
                }
                continue;
            };
            let catalog = &self.catalog;
            let changed: Vec<(String, bool)> = self
                .profiles
                .par_iter_mut()
                .flatten()
                .filter_map(|p| {
                    let value = Held::from_scalar(program.evaluate(&HeldProfile { catalog, profile: p }, &context));
                    let before = std::mem::replace(&mut p.values[position], value);
                    membership_change(d.kind, &before, &p.values[position]).map(|entered| (p.id.to_string(), entered))
                })
                .collect();
            for (profile, entered) in changed {
                if entered {
                    self.sizes[position] += 1;
                } else {
                    self.sizes[position] -= 1;
                }
                transitions.push(Transition { segment: d.name.clone(), profile, entered });
            }
        }
        transitions
    }

    /// Recomputes every definition over every profile.
    pub fn evaluate_all(&mut self, now_ms: i64) -> Vec<Transition> {
        let all: Vec<usize> = (0..self.catalog.definitions.len()).collect();
        self.evaluate_positions(&all, now_ms)
    }

    /// Recomputes one definition, and those that read it, over every profile.
    pub fn recompute(&mut self, kind: Kind, name: &str, now_ms: i64) -> Result<Vec<Transition>, DefinitionError> {
        let Some(&position) = self.catalog.position.get(&(kind, name.to_string())) else {
            return Err(DefinitionError::Unknown(kind, name.to_string()));
        };
        let mut affected = vec![false; self.catalog.definitions.len()];
        affected[position] = true;
        let positions = self.with_dependents(affected);
        Ok(self.evaluate_positions(&positions, now_ms))
    }

    /// Recomputes the definitions that can change with time alone (windows, `days_since`,
    /// `now()`) and those that read them.
    pub fn refresh_time_relative(&mut self, now_ms: i64) -> Vec<Transition> {
        // Funnels too: their waits' percentiles move as attempts go on.
        let affected = self.catalog.definitions.iter().map(|d| d.kind == Kind::Funnel || d.compiled.dependencies().time_relative).collect();
        let positions = self.with_dependents(affected);
        self.evaluate_positions(&positions, now_ms)
    }

    /// Extends a set of affected positions with every definition reading one of them; the
    /// result is in dependency order.
    fn with_dependents(&self, mut affected: Vec<bool>) -> Vec<usize> {
        for (i, d) in self.catalog.definitions.iter().enumerate() {
            if affected[i] {
                continue;
            }
            let deps = d.compiled.dependencies();
            affected[i] = self.catalog.definitions[..i]
                .iter()
                .enumerate()
                .any(|(j, earlier)| affected[j] && reads(deps, earlier.kind, &earlier.name));
        }
        affected.iter().enumerate().filter(|(_, a)| **a).map(|(i, _)| i).collect()
    }

    /// Re-evaluates, for one profile, only the definitions that read what changed (and those
    /// that read them). This is the real-time path: one event costs a few program runs.
    pub fn evaluate_profile(&mut self, id: &str, change: &ProfileChange, now_ms: i64) -> Vec<Transition> {
        let Some(&slot) = self.slot_of.get(id) else { return Vec::new() };
        let affected: Vec<bool> = self
            .catalog
            .definitions
            .iter()
            .map(|d| {
                let deps = d.compiled.dependencies();
                change.new
                    || deps.traits.iter().any(|t| change.traits.contains(t))
                    || deps.events.iter().any(|e| change.events.contains(e))
                    || (deps.any_event && !change.events.is_empty())
            })
            .collect();
        let positions = self.with_dependents(affected);
        let context = EvalContext::at(now_ms);
        let mut transitions = Vec::new();
        let profile = self.profiles[slot as usize].as_mut().expect("a mapped slot holds a profile");
        self.evaluations += positions.len() as u64;
        for position in positions {
            let d = &self.catalog.definitions[position];
            // A funnel holds no value per profile: segments read its position when evaluated.
            let Some(program) = d.compiled.program() else { continue };
            let value = Held::from_scalar(program.evaluate(&HeldProfile { catalog: &self.catalog, profile }, &context));
            let before = std::mem::replace(&mut profile.values[position], value);
            if let Some(entered) = membership_change(d.kind, &before, &profile.values[position]) {
                if entered {
                    self.sizes[position] += 1;
                } else {
                    self.sizes[position] -= 1;
                }
                transitions.push(Transition { segment: d.name.clone(), profile: id.to_string(), entered });
            }
        }
        transitions
    }

    /// The 90th percentile of each step's time to the next, over every profile's attempts.
    fn funnel_thresholds(&self, position: usize) -> Vec<Option<i64>> {
        let Compiled::Funnel(state) = &self.catalog.definitions[position].compiled else { return Vec::new() };
        let funnel = &state.program.funnel;
        let attempts = self.attempts_of(&state.program, funnel, None);
        let result = kinship_measure::funnel::tally(funnel, attempts.iter().map(|(_, a, _)| (a, None)), 0);
        // The wait at step k is judged by the time to step k + 1.
        (0..funnel.steps).map(|k| result.steps.get(k + 1).and_then(|s| s.time_from_previous.p90_ms)).collect()
    }

    /// Every profile's attempts at `funnel` (the program's, perhaps with another period or
    /// counting) with its value of trait `breakdown` as text; profiles without one left out.
    fn attempts_of(&self, program: &FunnelProgram, funnel: &Funnel, breakdown: Option<&str>) -> Vec<(&str, Vec<Attempt>, Option<String>)> {
        let catalog = &self.catalog;
        self.profiles
            .par_iter()
            .flatten()
            .filter_map(|profile| {
                let view = HeldProfile { catalog, profile };
                let attempts = funnel.attempts(&program.moments(&view));
                if attempts.is_empty() {
                    return None;
                }
                // A trait, or a computed trait as `computed.name`.
                let value =
                    breakdown.and_then(|t| match t.strip_prefix("computed.").map_or_else(|| view.trait_value(t), |c| view.computed(c)) {
                        Scalar::Null => None,
                        Scalar::Str(text) => Some(text.to_string()),
                        other => Some(other.to_json().to_string()),
                    });
                Some((&*profile.id, attempts, value))
            })
            .collect()
    }

    /// As [`Audience::attempts_of`], for a host measuring a funnel over the held profiles:
    /// a saved one ([`Audience::saved_funnel`]) or one compiled for the occasion.
    pub fn funnel_attempts(&self, program: &FunnelProgram, funnel: &Funnel) -> Vec<(&str, Vec<Attempt>, Option<String>)> {
        self.attempts_of(program, funnel, program.definition.breakdown.as_deref())
    }

    /// Runs `visit` on every held profile in parallel and keeps what it returns, in the
    /// audience's order: for hosts measuring over the profiles (NPS, growth, health).
    pub fn map_profiles<'a, T: Send>(&'a self, visit: impl Fn(&HeldProfile<'a>) -> Option<T> + Sync + Send) -> Vec<T> {
        let catalog = &self.catalog;
        self.profiles.par_iter().flatten().filter_map(|profile| visit(&HeldProfile { catalog, profile })).collect()
    }

    /// Runs `visit` on one held profile, or `None` when it is not held.
    pub fn map_one<T>(&self, id: &str, visit: impl FnOnce(&HeldProfile<'_>) -> T) -> Option<T> {
        let &slot = self.slot_of.get(id)?;
        let profile = self.profiles[slot as usize].as_ref()?;
        Some(visit(&HeldProfile { catalog: &self.catalog, profile }))
    }

    /// Runs `visit` on the held profiles among `ids` together (an account's people, read as
    /// one by [`kinship_measure::health::Group`]); ids not held are left out.
    pub fn map_group<T>(&self, ids: &[String], visit: impl FnOnce(&[HeldProfile<'_>]) -> T) -> T {
        let catalog = &self.catalog;
        let members: Vec<HeldProfile<'_>> = ids
            .iter()
            .filter_map(|id| Some(HeldProfile { catalog, profile: self.profiles[*self.slot_of.get(id.as_str())? as usize].as_ref()? }))
            .collect();
        visit(&members)
    }

    /// Every saved health definition's name and program, in definition order.
    pub fn saved_healths(&self) -> impl Iterator<Item = (&str, &HealthProgram)> {
        self.catalog.definitions.iter().filter_map(|d| match &d.compiled {
            Compiled::Health(program) => Some((d.name.as_str(), &**program)),
            _ => None,
        })
    }

    /// A saved health definition's program.
    pub fn saved_health(&self, name: &str) -> Option<&HealthProgram> {
        self.catalog.health(name)
    }

    /// One profile's score under every saved health definition that applies to it, or `None`
    /// when the profile is not held.
    pub fn health_scores(&self, id: &str, now_ms: i64) -> Option<Vec<(String, Scored)>> {
        self.map_one(id, |view| {
            self.saved_healths().filter_map(|(name, program)| Some((name.to_string(), program.score(view, now_ms)?))).collect()
        })
    }

    /// A saved funnel's program.
    pub fn saved_funnel(&self, name: &str) -> Option<&FunnelProgram> {
        self.catalog.funnel(name).map(|state| &state.program)
    }

    /// A saved funnel's thresholds for `.stuck` (per step, the 90th percentile of the time to
    /// the next), as last learnt over the profiles held.
    pub fn stuck_thresholds(&self, name: &str) -> Option<&[Option<i64>]> {
        self.catalog.funnel(name).map(|state| state.p90_to_next.as_slice())
    }

    /// Takes a funnel's thresholds learnt over a whole audience: a host judging one profile
    /// at a time (a flow, the 360) has no others to learn them from. Evaluates nothing: call
    /// it before [`Audience::evaluate_profile`]. False when no such funnel is saved.
    pub fn use_stuck_thresholds(&mut self, name: &str, p90_to_next: &[Option<i64>]) -> bool {
        let Some(&i) = self.catalog.position.get(&(Kind::Funnel, name.to_string())) else { return false };
        match &mut self.catalog.definitions[i].compiled {
            Compiled::Funnel(state) if state.p90_to_next.len() == p90_to_next.len() => {
                state.p90_to_next = p90_to_next.to_vec();
                true
            }
            _ => false,
        }
    }

    /// How many profiles an expression selects, and the first `sample` of them (by id), without
    /// defining anything.
    pub fn preview(&self, expression: &str, now_ms: i64, sample: usize) -> Result<Preview, DefinitionError> {
        let source = DefinitionSource { kind: Kind::Segment, name: "preview".into(), expression: expression.into() };
        let program = self.compile_expression(&source)?;
        let context = EvalContext::at(now_ms);
        let catalog = &self.catalog;
        let matches = |p: &&Profile| program.matches(&HeldProfile { catalog, profile: p }, &context);
        let count = self.profiles.par_iter().flatten().filter(matches).count();
        let mut picked: Vec<String> = self.profiles.iter().flatten().filter(matches).take(sample).map(|p| p.id.to_string()).collect();
        picked.sort();
        Ok(Preview { count, sample: picked })
    }

    /// The definitions, in dependency order.
    pub fn definitions(&self) -> Vec<DefinitionSource> {
        self.catalog
            .definitions
            .iter()
            .map(|d| DefinitionSource { kind: d.kind, name: d.name.clone(), expression: d.expression.clone() })
            .collect()
    }

    /// A saved definition's text, as it was saved.
    pub fn expression(&self, kind: Kind, name: &str) -> Option<&str> {
        let &i = self.catalog.position.get(&(kind, name.to_string()))?;
        Some(&self.catalog.definitions[i].expression)
    }

    /// What a definition reads.
    pub fn dependencies(&self, kind: Kind, name: &str) -> Option<&Dependencies> {
        let &i = self.catalog.position.get(&(kind, name.to_string()))?;
        Some(self.catalog.definitions[i].compiled.dependencies())
    }

    /// A segment's size, or `None` when there is no such segment.
    pub fn size(&self, segment: &str) -> Option<usize> {
        self.catalog.position.get(&(Kind::Segment, segment.to_string())).map(|&i| self.sizes[i])
    }

    /// A segment's members, sorted by profile id.
    pub fn members(&self, segment: &str) -> Option<Vec<&str>> {
        let &i = self.catalog.position.get(&(Kind::Segment, segment.to_string()))?;
        let mut ids: Vec<&str> = self.profiles.iter().flatten().filter(|p| p.values[i] == Held::Bool(true)).map(|p| &*p.id).collect();
        ids.sort_unstable();
        Some(ids)
    }

    /// A profile's segments and computed traits, or `None` when it is not loaded.
    pub fn profile_values(&self, id: &str) -> Option<(Vec<String>, Map<String, Value>)> {
        let &slot = self.slot_of.get(id)?;
        let p = self.profiles[slot as usize].as_ref()?;
        let mut segments = Vec::new();
        let mut computed = Map::new();
        for (d, v) in self.catalog.definitions.iter().zip(&p.values) {
            match d.kind {
                Kind::Segment if *v == Held::Bool(true) => segments.push(d.name.clone()),
                Kind::Segment | Kind::Funnel | Kind::Health => {}
                Kind::Computed => {
                    computed.insert(d.name.clone(), v.scalar().to_json());
                }
            }
        }
        segments.sort();
        Some((segments, computed))
    }
}

/// Whether a segment's value change is an entry (`Some(true)`) or an exit (`Some(false)`).
fn membership_change(kind: Kind, before: &Held, after: &Held) -> Option<bool> {
    let (was, is) = (*before == Held::Bool(true), *after == Held::Bool(true));
    (kind == Kind::Segment && was != is).then_some(is)
}

fn check_name(kind: Kind, name: &str) -> Result<(), DefinitionError> {
    let ok = !name.is_empty() && name.len() <= 64 && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(DefinitionError::BadName(kind, name.to_string()))
    }
}
