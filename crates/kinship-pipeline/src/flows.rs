//! Flows over the store: saving a flow (checked against kinship.toml's references, teams and
//! endpoints), running every flow on the records resolution has just placed, and a dry run
//! over history. The engine is `kinship-flows`; this module reads what it needs and writes
//! each run with its task and deliveries in one transaction (`ActStore::record_runs`).

use crate::{golden, PipelineError, Result};
use kinship_core::{Config, RecordId};
use kinship_flows::{assign, EventRecord, Flow, FlowDefinition, Known, Reference, Run, Subject};
use kinship_store::{Database, NewDelivery, NewRun, NewTask, NewWait, WaitRow};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::SystemTime;

/// Names a flow may use: the references, teams and endpoints configured, and the saved
/// segments, computed traits, funnels and health definitions.
pub fn known(store: &dyn Database, config: &Config) -> Known {
    Known {
        references: config.references.keys().cloned().collect(),
        teams: config.teams.keys().cloned().collect(),
        endpoints: config.endpoints.keys().cloned().collect(),
        writes_records: config.flows.source.is_some(),
        // A stored definition that no longer compiles leaves flows that read none running.
        schema: match Judge::new(store) {
            Ok(judge) => judge.audience.schema(),
            Err(e) => {
                eprintln!("warning: the saved definitions do not compile ({e}); flows that read them are not run");
                kinship_expr::Schema::new()
            }
        },
    }
}

/// Judges one profile at a time under every saved definition, as the 360 does: what a flow's
/// condition reads of segments, computed traits, funnels and health. Every definition is a
/// function of one profile; a funnel's `stuck` compares with everyone's p90, which the
/// server learns over the whole audience and keeps in the store
/// ([`crate::audience::judging_audience`]).
struct Judge {
    audience: kinship_segments::Audience,
    /// The saved funnels' names, positioned for every subject.
    funnels: Vec<String>,
}

impl Judge {
    fn new(store: &dyn Database) -> Result<Self> {
        let audience = crate::audience::judging_audience(store)?;
        let funnels = audience.schema().funnels.into_iter().collect();
        Ok(Self { audience, funnels })
    }

    /// Fills the subject's segments, computed traits, funnel positions and health scores as of
    /// `now_ms`, from its traits and the events it holds.
    fn judge(&mut self, subject: &mut Subject, now_ms: i64) {
        const JUDGED: &str = "\u{0}judged";
        let events = subject.events.iter().map(|e| (e.name.as_str(), e.timestamp_ms, &e.properties));
        let change = self.audience.upsert_profile(JUDGED, &subject.traits, events);
        self.audience.evaluate_profile(JUDGED, &change, now_ms);
        let (segments, computed) = self.audience.profile_values(JUDGED).unwrap_or_default();
        (subject.segments, subject.computed) = (segments, computed);
        let funnels = &self.funnels;
        subject.funnels = self
            .audience
            .map_one(JUDGED, |p| {
                use kinship_expr::{FunnelField, ProfileView};
                let position = |name: &str| {
                    let step = match p.funnel(name, FunnelField::Step, now_ms) {
                        kinship_expr::Scalar::Number(n) => json!(n as i64),
                        _ => json!(0),
                    };
                    let reached = match p.funnel(name, FunnelField::Reached, now_ms) {
                        kinship_expr::Scalar::Date(ms) => json!(ms),
                        _ => Value::Null,
                    };
                    let stuck = matches!(p.funnel(name, FunnelField::Stuck, now_ms), kinship_expr::Scalar::Bool(true));
                    json!({ "step": step, "reached": reached, "stuck": stuck })
                };
                funnels.iter().map(|name| (name.clone(), position(name))).collect()
            })
            .unwrap_or_default();
        subject.health = self
            .audience
            .health_scores(JUDGED, now_ms)
            .unwrap_or_default()
            .into_iter()
            .map(|(name, scored)| (name, json!({ "score": scored.score, "band": scored.band.name() })))
            .collect();
        self.audience.remove_profile(JUDGED);
    }
}

/// Checks a flow written as TOML or JSON and stores it as its next version. Returns its name
/// and version.
pub fn save_flow(store: &mut dyn Database, config: &Config, text: &str, by: &str) -> Result<(String, i64)> {
    let flow = compile(&known(&*store, config), text)?;
    let version = store.save_flow(flow.name(), text, by, crate::now_ms())?;
    Ok((flow.name().to_string(), version))
}

fn compile(known: &Known, text: &str) -> Result<Flow> {
    let definition = FlowDefinition::parse(text).map_err(|e| PipelineError::Config(e.to_string()))?;
    Flow::compile(definition, known).map_err(|e| PipelineError::Config(e.to_string()))
}

/// A stored flow's newest version, compiled.
pub struct StoredFlow {
    pub flow: Flow,
    pub version: i64,
    /// When this version was saved: a scheduled flow's first tick is after it.
    pub saved_at: i64,
}

/// The newest version of every stored flow, compiled. A stored flow that no longer compiles
/// (a team removed from kinship.toml) is left out with a warning rather than stopping the rest.
pub fn load_flows(store: &dyn Database, config: &Config) -> Result<(Vec<StoredFlow>, Vec<String>)> {
    let mut flows = Vec::new();
    let mut warnings = Vec::new();
    let known = known(store, config);
    for row in store.flows()? {
        match compile(&known, &row.definition) {
            Ok(flow) => flows.push(StoredFlow { flow, version: row.version, saved_at: row.created_at }),
            Err(e) => warnings.push(format!("flow {} version {} is not run: {e}", row.name, row.version)),
        }
    }
    Ok((flows, warnings))
}

/// Reference files, read once and again when a file changes.
#[derive(Default)]
pub struct References {
    loaded: BTreeMap<String, Reference>,
    modified: BTreeMap<String, Option<SystemTime>>,
}

impl References {
    /// The references, reading any whose file changed since the last call.
    pub fn current(&mut self, config: &Config, data_dir: &Path) -> Result<&BTreeMap<String, Reference>> {
        self.loaded.retain(|name, _| config.references.contains_key(name));
        for (name, reference) in &config.references {
            let path = data_dir.join(&reference.path);
            let modified = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
            if self.loaded.contains_key(name) && self.modified.get(name) == Some(&modified) {
                continue;
            }
            let rows = read_reference(&path, &reference.key)?;
            let as_of = modified.and_then(|m| m.duration_since(SystemTime::UNIX_EPOCH).ok()).map_or(0, |d| d.as_millis() as i64);
            self.loaded.insert(name.clone(), Reference::new(name, &reference.path.display().to_string(), as_of, rows));
            self.modified.insert(name.clone(), modified);
        }
        Ok(&self.loaded)
    }
}

/// A reference file's rows by key: CSV (values that read as numbers become numbers) or JSON
/// Lines. A row without the key is an error naming the line, so a catalogue is never half read.
fn read_reference(path: &Path, key: &str) -> Result<Vec<(String, Map<String, Value>)>> {
    let invalid = |line: usize, why: &str| PipelineError::Config(format!("{}:{line}: {why}", path.display()));
    let mut rows = Vec::new();
    if path.extension().is_some_and(|e| e == "jsonl") {
        let text = std::fs::read_to_string(path).map_err(|e| PipelineError::Config(format!("{}: {e}", path.display())))?;
        for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let Ok(Value::Object(row)) = serde_json::from_str::<Value>(line) else { return Err(invalid(i + 1, "not a JSON object")) };
            let id = row.get(key).map(text_of).filter(|k| !k.is_empty()).ok_or_else(|| invalid(i + 1, &format!("no `{key}`")))?;
            rows.push((id, row));
        }
        return Ok(rows);
    }
    let mut reader = csv::Reader::from_path(path).map_err(|e| PipelineError::Config(format!("{}: {e}", path.display())))?;
    let headers = reader.headers().map_err(|e| invalid(1, &e.to_string()))?.clone();
    for (i, record) in reader.records().enumerate() {
        let record = record.map_err(|e| invalid(i + 2, &e.to_string()))?;
        let row: Map<String, Value> = headers
            .iter()
            .zip(record.iter())
            .map(|(h, v)| {
                let value = match (v.parse::<i64>(), v.parse::<f64>()) {
                    (Ok(n), _) => json!(n),
                    (_, Ok(n)) if n.is_finite() && !v.trim().is_empty() => json!(n),
                    _ => json!(v),
                };
                (h.to_string(), value)
            })
            .collect();
        let id = row.get(key).map(text_of).filter(|k| !k.is_empty()).ok_or_else(|| invalid(i + 2, &format!("no `{key}`")))?;
        rows.push((id, row));
    }
    Ok(rows)
}

fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.as_f64().filter(|f| f.fract() == 0.0).map_or_else(|| n.to_string(), |f| format!("{f:.0}")),
        other => other.to_string(),
    }
}

/// What one pass of [`run_new_records`] did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct FlowPass {
    pub triggers: usize,
    pub runs: usize,
    pub tasks: Vec<i64>,
    pub deliveries: usize,
}

/// The record position flows have run through.
pub fn flows_through(store: &dyn Database) -> Result<RecordId> {
    Ok(store.meta("flows.through")?.and_then(|v| v.parse().ok()).unwrap_or(0))
}

/// Runs every flow on the events among records (`after`, `through`] (already resolved) and
/// records the runs, their tasks and deliveries, and the new position, in one transaction.
/// A run is keyed by flow version, record and profile, so running a range again makes nothing twice.
pub fn run_new_records(
    store: &mut dyn Database,
    config: &Config,
    flows: &[StoredFlow],
    references: &BTreeMap<String, Reference>,
    after: RecordId,
    through: RecordId,
) -> Result<FlowPass> {
    let planned = plan_runs(&*store, config, flows, references, &mut TeamLoad::default(), after, through)?;
    let tasks = store.record_runs(&planned.runs, through)?;
    Ok(planned.pass(tasks))
}

/// What the flows decided over a range of records, before it is recorded: reading and
/// deciding need no write lock, so a server plans beside its writer and takes the writers'
/// turn only for `ActStore::record_runs`.
pub struct Planned {
    pub runs: Vec<NewRun>,
    pub triggers: usize,
}

impl Planned {
    /// The pass's summary, given the tasks recording it created.
    pub fn pass(&self, tasks: Vec<i64>) -> FlowPass {
        FlowPass { triggers: self.triggers, runs: self.runs.len(), deliveries: self.runs.iter().map(|r| r.deliveries.len()).sum(), tasks }
    }
}

/// Runs every flow on the events among records (`after`, `through`], writing nothing. `load`
/// is the teams' open tasks as last read, for assignment; it is read again when stale.
pub fn plan_runs(
    store: &dyn Database,
    config: &Config,
    flows: &[StoredFlow],
    references: &BTreeMap<String, Reference>,
    load: &mut TeamLoad,
    after: RecordId,
    through: RecordId,
) -> Result<Planned> {
    let mut planned = Planned { runs: Vec::new(), triggers: 0 };
    if through <= after || flows.is_empty() {
        return Ok(planned);
    }
    let mappers = crate::mappers(config)?;
    // Scheduled flows start on time, never on a record (see `plan_scheduled`).
    let trigger_names: Vec<&str> = flows.iter().filter(|f| f.flow.schedule().is_none()).map(|f| f.flow.trigger_event()).collect();
    // Events a kept wait may be ending.
    let waited_for: Vec<String> = flows.iter().flat_map(|f| f.flow.waits_for()).collect();
    let wanted: Vec<&str> = trigger_names.iter().copied().chain(waited_for.iter().map(String::as_str)).collect();
    let candidates = EventFilter::new(config, &wanted);
    // Each trigger with its record's id, in log order; and each event a wait may end on.
    let mut triggers: Vec<(RecordId, EventRecord)> = Vec::new();
    let mut arrivals: Vec<(RecordId, EventRecord)> = Vec::new();
    let mut seen = 0;
    let mut cursor = after;
    while cursor < through {
        let mut last = cursor;
        store.scan_after(cursor, 5000, &mut |r| {
            last = r.id;
            if r.id > through {
                return;
            }
            let Some(event) = trigger_of(&mappers, &candidates, &wanted, &r) else { return };
            if waited_for.contains(&event.name) {
                arrivals.push((r.id, event.clone()));
            }
            if trigger_names.contains(&event.name.as_str()) {
                seen += 1;
                // A trigger no flow's condition can hold needs no profile.
                if flows.iter().any(|f| f.flow.triggers_alone(&event) != Some(false)) {
                    triggers.push((r.id, event));
                }
            }
        })?;
        if last == cursor {
            break;
        }
        cursor = last;
    }
    planned.triggers = seen;
    load.forget_if_stale();
    let mut read_names = None;
    let planner = Planner::new(store, config, flows, references, &mappers, &mut read_names)?;
    // The profiles and their records are read a few hundred triggers at a time, in three
    // queries, rather than a few queries per trigger.
    for chunk in triggers.chunks(TRIGGERS_READ_TOGETHER) {
        let (profile_of, _) = profiles_of(store, chunk)?;
        // A record erased or not placed since has no profile: nothing to act on.
        let placed: Vec<(String, &EventRecord)> = chunk.iter().filter_map(|(id, t)| Some((profile_of.get(id)?.clone(), t))).collect();
        planner.run(load, &placed, &mut planned.runs)?;
    }
    // Waits begun in this pass, which an event of the same pass may already end.
    let begun: Vec<WaitRow> = planned
        .runs
        .iter()
        .filter_map(|r| {
            let w = r.wait.as_ref()?;
            Some(WaitRow {
                run_key: r.key.clone(),
                flow: r.flow.clone(),
                version: r.version,
                profile_id: r.profile_id.clone(),
                step: w.step,
                until_event: w.until_event.clone(),
                resume_at: w.resume_at,
                fact: w.fact.clone(),
                trigger: w.trigger.clone(),
                facts: w.facts.clone(),
                created_at: r.at,
            })
        })
        .collect();
    // Kept waits these events end: each resumes once, on the first such event after its trigger.
    for chunk in arrivals.chunks(TRIGGERS_READ_TOGETHER) {
        let (profile_of, profiles) = profiles_of(store, chunk)?;
        let mut waits = store.waits_of(&profiles)?;
        waits.extend(begun.iter().filter(|w| profiles.binary_search(&w.profile_id).is_ok()).cloned());
        waits.sort_by_key(|w| w.created_at);
        let mut resumed = Vec::new();
        for wait in &waits {
            let Ok(trigger) = serde_json::from_str::<EventRecord>(&wait.trigger) else { continue };
            let ended = chunk.iter().find(|(id, event)| {
                profile_of.get(id) == Some(&wait.profile_id)
                    && wait.until_event.as_deref() == Some(event.name.as_str())
                    && event.timestamp_ms >= trigger.timestamp_ms
                    && !(event.source == trigger.source && event.key == trigger.key)
            });
            if let Some((_, event)) = ended {
                resumed.push((wait, trigger, Some(event.clone())));
            }
        }
        planner.resume(load, &resumed, &mut planned.runs)?;
    }
    Ok(planned)
}

/// Runs waits whose time has come by `now` (the event they waited for did not come) on
/// from where they stopped.
pub fn plan_due_waits(
    store: &dyn Database,
    config: &Config,
    flows: &[StoredFlow],
    references: &BTreeMap<String, Reference>,
    load: &mut TeamLoad,
    now: i64,
) -> Result<Planned> {
    let mut planned = Planned { runs: Vec::new(), triggers: 0 };
    let due = store.due_waits(now, TRIGGERS_READ_TOGETHER)?;
    if due.is_empty() {
        return Ok(planned);
    }
    planned.triggers = due.len();
    load.forget_if_stale();
    let mappers = crate::mappers(config)?;
    let mut read_names = None;
    let planner = Planner::new(store, config, flows, references, &mappers, &mut read_names)?;
    let resumed: Vec<(&WaitRow, EventRecord, Option<EventRecord>)> =
        due.iter().filter_map(|w| Some((w, serde_json::from_str::<EventRecord>(&w.trigger).ok()?, None))).collect();
    planner.resume(load, &resumed, &mut planned.runs)?;
    Ok(planned)
}

/// The names under which segment entries and exits reach flows, as on the timeline.
pub const ENTERED_SEGMENT: &str = "Entered Segment";
pub const EXITED_SEGMENT: &str = "Exited Segment";

/// Runs the flows triggered by segments (`event = "Entered Segment"`, with a condition such
/// as `segment == "lapsed"`) on the entries and exits recorded at or after `since`. Returns
/// what they decided and the time of the newest transition read. A flow on a segment that
/// depends on time (`days_since(last("Order Completed")) > 90`) so acts on time passing, and
/// one on a segment over a computed trait on its crossing a value.
pub fn plan_transition_runs(
    store: &dyn Database,
    config: &Config,
    flows: &[StoredFlow],
    references: &BTreeMap<String, Reference>,
    load: &mut TeamLoad,
    since: i64,
) -> Result<(Planned, Option<i64>)> {
    let mut planned = Planned { runs: Vec::new(), triggers: 0 };
    if !flows.iter().any(|f| [ENTERED_SEGMENT, EXITED_SEGMENT].contains(&f.flow.trigger_event())) {
        return Ok((planned, None));
    }
    let transitions = store.transitions_since(since, TRANSITIONS_PER_PASS)?;
    let newest = transitions.last().map(|t| t.at);
    planned.triggers = transitions.len();
    let triggers: Vec<(String, EventRecord)> = transitions
        .into_iter()
        .map(|t| {
            let (name, word) = if t.entered { (ENTERED_SEGMENT, "entered") } else { (EXITED_SEGMENT, "exited") };
            let mut properties = Map::new();
            properties.insert("segment".into(), Value::String(t.segment.clone()));
            let event = EventRecord {
                name: name.into(),
                timestamp_ms: t.at,
                properties,
                source: "segments".into(),
                key: format!("{}:{word}@{}", t.segment, t.at),
            };
            (t.profile, event)
        })
        .filter(|(_, event)| flows.iter().any(|f| f.flow.triggers_alone(event) != Some(false)))
        .collect();
    load.forget_if_stale();
    let mappers = crate::mappers(config)?;
    let mut read_names = None;
    let planner = Planner::new(store, config, flows, references, &mappers, &mut read_names)?;
    for chunk in triggers.chunks(TRIGGERS_READ_TOGETHER) {
        let placed: Vec<(String, &EventRecord)> = chunk.iter().map(|(p, e)| (p.clone(), e)).collect();
        planner.run(load, &placed, &mut planned.runs)?;
    }
    Ok((planned, newest))
}

/// Where a scheduled flow stands in `meta`: the newest tick it has run.
fn schedule_meta(flow: &str) -> String {
    format!("flows.schedule.{flow}")
}

/// The scheduled flows whose newest tick at or before `now` has not run yet, each with that
/// tick. A tick before the flow's version was saved is not run: a flow acts from its saving.
pub fn due_schedules(store: &dyn Database, flows: &[StoredFlow], now: i64) -> Result<Vec<(usize, i64)>> {
    let mut due = Vec::new();
    for (i, stored) in flows.iter().enumerate() {
        let Some((schedule, _)) = stored.flow.schedule() else { continue };
        let tick = schedule.latest(now);
        let done: i64 = store.meta(&schedule_meta(stored.flow.name()))?.and_then(|v| v.parse().ok()).unwrap_or(i64::MIN);
        if tick > done && tick >= stored.saved_at {
            due.push((i, tick));
        }
    }
    Ok(due)
}

/// Records that a scheduled flow has run its tick on every member of its segment.
pub fn schedule_done(store: &mut dyn Database, flow: &str, tick: i64) -> Result<()> {
    Ok(store.set_meta(&schedule_meta(flow), &tick.to_string())?)
}

/// The trigger a scheduled flow's run at `tick` has: the same on every node, so each person
/// gets one run per tick however many nodes run it.
fn scheduled_trigger(flow: &Flow, tick: i64) -> EventRecord {
    let (schedule, segment) = flow.schedule().map(|(_, segment)| (flow.definition.trigger.schedule.clone(), segment)).unwrap_or_default();
    let at = kinship_expr::format_timestamp(tick);
    let properties = json!({ "schedule": schedule, "segment": segment, "tick": at });
    EventRecord {
        name: kinship_flows::SCHEDULED.into(),
        timestamp_ms: tick,
        properties: properties.as_object().cloned().unwrap_or_default(),
        source: "schedule".into(),
        key: at,
    }
}

/// Runs a scheduled flow's `tick` on up to `limit` members of its segment from `offset`.
/// Returns what it decided and how many members it read (fewer than `limit`: the last page).
#[allow(clippy::too_many_arguments)]
pub fn plan_scheduled(
    store: &dyn Database,
    config: &Config,
    stored: &StoredFlow,
    references: &BTreeMap<String, Reference>,
    load: &mut TeamLoad,
    tick: i64,
    offset: u64,
    limit: u64,
) -> Result<(Planned, usize)> {
    let mut planned = Planned { runs: Vec::new(), triggers: 0 };
    let Some((_, segment)) = stored.flow.schedule() else { return Ok((planned, 0)) };
    let members = store.segment_members(segment, offset, limit)?;
    planned.triggers = members.len();
    let trigger = scheduled_trigger(&stored.flow, tick);
    load.forget_if_stale();
    let mappers = crate::mappers(config)?;
    let mut read_names = None;
    let planner = Planner::new(store, config, std::slice::from_ref(stored), references, &mappers, &mut read_names)?;
    for chunk in members.chunks(TRIGGERS_READ_TOGETHER) {
        let placed: Vec<(String, &EventRecord)> = chunk.iter().map(|p| (p.clone(), &trigger)).collect();
        planner.run(load, &placed, &mut planned.runs)?;
    }
    Ok((planned, members.len()))
}

/// Most segment transitions one pass reads.
const TRANSITIONS_PER_PASS: usize = 10_000;

/// What running flows on triggers needs besides the triggers.
struct Planner<'a> {
    store: &'a dyn Database,
    config: &'a Config,
    flows: &'a [StoredFlow],
    references: &'a BTreeMap<String, Reference>,
    mappers: &'a rustc_hash::FxHashMap<&'a str, kinship_sources::Mapper<'a>>,
    /// The events flows read, loaded with each profile.
    read: EventFilter<'a>,
    /// Present when a flow's condition reads saved definitions.
    judge: Option<std::cell::RefCell<Judge>>,
}

impl<'a> Planner<'a> {
    fn new(
        store: &'a dyn Database,
        config: &'a Config,
        flows: &'a [StoredFlow],
        references: &'a BTreeMap<String, Reference>,
        mappers: &'a rustc_hash::FxHashMap<&'a str, kinship_sources::Mapper<'a>>,
        read_names: &'a mut Option<Vec<String>>,
    ) -> Result<Self> {
        let read = events_read_by(config, flows.iter().map(|f| &f.flow), read_names);
        let judge = match flows.iter().any(|f| f.flow.reads_definitions()) {
            true => Some(std::cell::RefCell::new(Judge::new(store)?)),
            false => None,
        };
        Ok(Self { store, config, flows, references, mappers, read, judge })
    }

    /// The profiles as flows see them, judged under the saved definitions if a flow reads them.
    fn subjects(&self, profiles: &[String]) -> Result<HashMap<String, Subject>> {
        let mut subjects = subjects_of(self.store, self.mappers, &self.read, profiles, None, &mut |_, _| {})?;
        if let Some(judge) = &self.judge {
            let now = crate::now_ms();
            subjects.values_mut().for_each(|s| judge.borrow_mut().judge(s, now));
        }
        Ok(subjects)
    }

    /// Resumes kept waits, each with the event that ended it or none (its time ran out). A
    /// wait's run goes on with the flow version that started it.
    fn resume(&self, load: &mut TeamLoad, waits: &[(&WaitRow, EventRecord, Option<EventRecord>)], runs: &mut Vec<NewRun>) -> Result<()> {
        if waits.is_empty() {
            return Ok(());
        }
        let mut profiles: Vec<String> = waits.iter().map(|(w, _, _)| w.profile_id.clone()).collect();
        profiles.sort_unstable();
        profiles.dedup();
        let subjects = self.subjects(&profiles)?;
        let mut versions: HashMap<(String, i64), Option<StoredFlow>> = HashMap::new();
        for (wait, trigger, ended) in waits {
            let at = (wait.flow.clone(), wait.version);
            if !versions.contains_key(&at) {
                let found = match self.flows.iter().find(|f| f.flow.name() == wait.flow && f.version == wait.version) {
                    Some(f) => Some(StoredFlow { flow: f.flow.clone(), version: f.version, saved_at: f.saved_at }),
                    None => self.store.flow_versions(&wait.flow)?.into_iter().find(|v| v.version == wait.version).and_then(|v| {
                        let known = known(self.store, self.config);
                        Some(StoredFlow { flow: compile(&known, &v.definition).ok()?, version: v.version, saved_at: v.created_at })
                    }),
                };
                versions.insert(at.clone(), found);
            }
            let Some(subject) = subjects.get(&wait.profile_id) else { continue };
            let Some(Some(stored)) = versions.get(&at) else {
                // The flow was deleted (or no longer compiles): the wait ends, doing nothing.
                let trace = json!({ "trace": [{ "step": format!("resume after wait {}", wait.step), "outcome": "the flow is gone; nothing more is done" }] });
                runs.push(NewRun {
                    key: format!("{}#{}", wait.run_key, wait.step),
                    flow: wait.flow.clone(),
                    version: wait.version,
                    profile_id: wait.profile_id.clone(),
                    source: trigger.source.clone(),
                    record_key: trigger.key.clone(),
                    at: crate::now_ms(),
                    trace: trace.to_string(),
                    task: None,
                    deliveries: Vec::new(),
                    wait: None,
                    resumes: Some(wait.run_key.clone()),
                    records: Vec::new(),
                });
                continue;
            };
            let facts: Vec<kinship_flows::Fact> = serde_json::from_str(&wait.facts).unwrap_or_default();
            let now = ended.as_ref().map_or(wait.resume_at, |e| e.timestamp_ms);
            let step = usize::try_from(wait.step).unwrap_or(usize::MAX);
            let run = kinship_flows::resume(&stored.flow, trigger, subject, self.references, &facts, step, ended.as_ref(), now);
            let key = format!("{}#{}", wait.run_key, wait.step);
            let mut new = new_run(self.store, self.config, stored, key, trigger, subject, &run, load)?;
            new.resumes = Some(wait.run_key.clone());
            runs.push(new);
        }
        Ok(())
    }

    /// Loads the triggers' profiles together and runs every flow on each trigger.
    fn run(&self, load: &mut TeamLoad, placed: &[(String, &EventRecord)], runs: &mut Vec<NewRun>) -> Result<()> {
        let mut profiles: Vec<String> = placed.iter().map(|(p, _)| p.clone()).collect();
        profiles.sort_unstable();
        profiles.dedup();
        let subjects = self.subjects(&profiles)?;
        for (profile, trigger) in placed {
            let Some(subject) = subjects.get(profile) else { continue };
            for stored in self.flows {
                // Judged as of the trigger (a warranty on the day of the complaint), which for a
                // live event is now, and for records read late is when they happened.
                let run = kinship_flows::run(&stored.flow, trigger, subject, self.references, trigger.timestamp_ms);
                if !run.matched {
                    continue;
                }
                let key = format!("{}@{}/{}/{}/{}", stored.flow.name(), stored.version, trigger.source, trigger.key, subject.id);
                runs.push(new_run(self.store, self.config, stored, key, trigger, subject, &run, load)?);
            }
        }
        Ok(())
    }
}

/// The record as an event named in `wanted`, if it is one.
fn trigger_of(
    mappers: &rustc_hash::FxHashMap<&str, kinship_sources::Mapper<'_>>,
    candidates: &EventFilter<'_>,
    wanted: &[&str],
    r: &kinship_store::RecordView<'_>,
) -> Option<EventRecord> {
    if !candidates.may_hold(r.source, r.payload) {
        return None;
    }
    let mapper = mappers.get(r.source)?;
    let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(r.payload) else { return None };
    let (event, ts) = crate::audience::record_event(mapper, r.source, &fields, r.timestamp)?;
    wanted.contains(&event.event.as_str()).then(|| EventRecord {
        name: event.event,
        timestamp_ms: ts,
        properties: event.properties,
        source: r.source.to_string(),
        key: r.key.to_string(),
    })
}

/// The events flows read, as a filter for loading profiles.
fn events_read_by<'a>(config: &'a Config, flows: impl Iterator<Item = &'a Flow>, names: &'a mut Option<Vec<String>>) -> EventFilter<'a> {
    *names = flows
        .map(Flow::events_read)
        .try_fold(std::collections::BTreeSet::new(), |mut all, read| {
            all.extend(read?);
            Some(all)
        })
        .map(|all| all.into_iter().collect());
    match names {
        Some(names) => EventFilter::new(config, &names.iter().map(String::as_str).collect::<Vec<_>>()),
        None => EventFilter::everything(),
    }
}

/// The profile of each event's record, and those profiles sorted, without repeats.
fn profiles_of(store: &dyn Database, events: &[(RecordId, EventRecord)]) -> Result<(HashMap<RecordId, String>, Vec<String>)> {
    let ids: Vec<RecordId> = events.iter().map(|(id, _)| *id).collect();
    let profile_of: HashMap<RecordId, String> = store.profiles_of(&ids)?.into_iter().collect();
    let mut profiles: Vec<String> = profile_of.values().cloned().collect();
    profiles.sort_unstable();
    profiles.dedup();
    Ok((profile_of, profiles))
}

/// Triggers whose profiles are read in one go.
const TRIGGERS_READ_TOGETHER: usize = 500;

/// Which records may be one of some named events, decided before parsing them: a source whose
/// event name is fixed is one or never is, and a source that maps no event (a CRM's contacts)
/// never is; for others the payload must contain a name as text (JSON leaves a name without
/// quotes, backslashes or control characters as it is).
struct EventFilter<'a> {
    fixed: HashMap<&'a str, bool>,
    /// The names wanted; `None`: every event.
    names: Option<Vec<&'a str>>,
    /// A name JSON may escape: every payload is parsed.
    parse_all: bool,
}

impl<'a> EventFilter<'a> {
    fn everything() -> Self {
        Self { fixed: HashMap::new(), names: None, parse_all: false }
    }

    fn new(config: &'a Config, wanted: &[&'a str]) -> Self {
        let fixed = config
            .sources
            .iter()
            .filter(|(_, s)| s.kind != kinship_core::SourceType::Segment)
            .filter_map(|(name, s)| match &s.event {
                None => Some((name.as_str(), false)),
                Some(event) => Some((name.as_str(), wanted.contains(&event.name.as_deref()?))),
            })
            .collect();
        let parse_all = wanted.iter().any(|n| n.chars().any(|c| c == '"' || c == '\\' || c.is_control()));
        Self { fixed, names: Some(wanted.to_vec()), parse_all }
    }

    /// Whether an event of this name is one of those wanted.
    fn wants(&self, name: &str) -> bool {
        self.names.as_ref().is_none_or(|names| names.contains(&name))
    }

    /// Whether any record of `source` may be one of the events.
    fn may_come_from(&self, source: &str) -> bool {
        self.fixed.get(source).copied().unwrap_or(true)
    }

    fn may_hold(&self, source: &str, payload: &str) -> bool {
        match self.fixed.get(source) {
            Some(fixed) => *fixed,
            None => self.parse_all || self.names.as_ref().is_none_or(|names| names.iter().any(|n| payload.contains(n))),
        }
    }
}
/// Each team's open tasks per member and its tasks ever (the round-robin turn): read from the
/// store, then counted up as this process assigns, and read again after `TeamLoad::MAX_AGE`
/// (others claim and close tasks). Reading on every pass cost a scan of every open task.
#[derive(Default)]
pub struct TeamLoad {
    teams: HashMap<String, (BTreeMap<String, u64>, u64)>,
    read_at: Option<std::time::Instant>,
}

impl TeamLoad {
    const MAX_AGE: std::time::Duration = std::time::Duration::from_secs(2);

    fn forget_if_stale(&mut self) {
        if self.read_at.is_some_and(|at| at.elapsed() > Self::MAX_AGE) {
            self.teams.clear();
            self.read_at = None;
        }
    }
}

/// What `run` asks for, ready to record under `key`: `flow@version/source/key/profile` for a
/// run on a trigger, with `#step` after it for the run resumed after a wait.
#[allow(clippy::too_many_arguments)]
fn new_run(
    store: &dyn Database,
    config: &Config,
    stored: &StoredFlow,
    key: String,
    trigger: &EventRecord,
    subject: &Subject,
    run: &Run,
    load: &mut TeamLoad,
) -> Result<NewRun> {
    let (flow, version) = (&stored.flow, stored.version);
    let at = crate::now_ms();
    let mut trace = run.trace.clone();
    let records = change_records(store, config, &key, stored, subject, run, at, &mut trace)?;
    let context = serde_json::to_string(&run.facts).map_err(kinship_store::StoreError::from)?;
    // The team was checked when the flow was loaded; one removed from kinship.toml since
    // leaves the task unassigned rather than lost.
    let task = match run.tasks.first() {
        Some(draft) => {
            let no_team = kinship_core::act::TeamConfig { members: Vec::new(), assign: Default::default() };
            let team = config.teams.get(&draft.team).unwrap_or(&no_team);
            if !load.teams.contains_key(&draft.team) {
                let (open, total) = store.team_load(&draft.team)?;
                load.teams.insert(draft.team.clone(), (open.into_iter().collect(), total));
                load.read_at.get_or_insert_with(std::time::Instant::now);
            }
            let (open, turn) = load.teams.get_mut(&draft.team).expect("loaded above");
            let assignee = assign(team.assign, &team.members, open, *turn, draft.skill.as_deref());
            *turn += 1;
            if let Some(a) = &assignee {
                *open.entry(a.clone()).or_default() += 1;
            }
            Some(NewTask {
                title: draft.title.clone(),
                body: draft.body.clone(),
                context: context.clone(),
                priority: draft.priority.as_str().into(),
                team: draft.team.clone(),
                assignee,
                skill: draft.skill.clone(),
                due_at: draft.due_ms,
            })
        }
        None => None,
    };
    let deliveries = run
        .deliveries
        .iter()
        .map(|endpoint| {
            let body = json!({
                "type": "flow.run",
                "timestamp": kinship_expr::format_timestamp(trigger.timestamp_ms),
                "data": {
                    "flow": flow.name(),
                    "version": version,
                    "profile_id": subject.id,
                    "trigger": { "event": trigger.name, "source": trigger.source, "record_key": trigger.key },
                    "task": run.tasks.first(),
                    "facts": run.facts,
                }
            });
            NewDelivery {
                webhook_id: webhook_id(&key, endpoint),
                endpoint: endpoint.clone(),
                profile_id: subject.id.clone(),
                body: body.to_string(),
            }
        })
        .collect();
    let trace = json!({ "trace": trace, "facts": run.facts });
    Ok(NewRun {
        key,
        flow: flow.name().into(),
        version,
        profile_id: subject.id.clone(),
        source: trigger.source.clone(),
        record_key: trigger.key.clone(),
        at,
        trace: trace.to_string(),
        task,
        deliveries,
        wait: match &run.wait {
            Some(w) => Some(NewWait {
                step: w.step as i64,
                until_event: w.until.clone(),
                resume_at: w.resume_at,
                fact: w.fact.clone(),
                trigger: serde_json::to_string(trigger).map_err(kinship_store::StoreError::from)?,
                facts: serde_json::to_string(&run.facts).map_err(kinship_store::StoreError::from)?,
            }),
            None => None,
        },
        resumes: None,
        records,
    })
}

/// The strongest identifier (by `resolve.priority`) that only this profile holds: what a
/// record Kinship writes about the profile carries, so resolution joins it to the profile
/// and to nothing else. `None` when every identifier is shared (contested).
pub fn own_identifier(store: &dyn Database, config: &Config, profile: &str) -> Result<Option<kinship_core::Identifier>> {
    let mut held = store.identifiers_of_profiles(&[profile.to_string()])?;
    held.sort_by(|a, b| config.resolve.rank_of(&a.1.kind).cmp(&config.resolve.rank_of(&b.1.kind)).then_with(|| a.1.value.cmp(&b.1.value)));
    held.dedup_by(|a, b| a.1.kind == b.1.kind && a.1.value == b.1.value);
    for (_, id) in &held {
        if store.find_profiles(&id.kind, &id.value)? == [profile.to_string()] {
            return Ok(Some(kinship_core::Identifier::new(id.kind.as_str(), id.value.clone())));
        }
    }
    Ok(None)
}

/// The records of `[flows] source` that carry what a run changed about its profile: an
/// `identify` message with the traits set, a `track` message (`Added To List`, `Removed From
/// List`) per list. Each holds one identifier that only this profile has, the strongest by
/// `resolve.priority`, so resolution joins it to the profile and to nothing else. A profile
/// with no identifier of its own (every one shared and so contested) cannot be written to;
/// the trace says so.
#[allow(clippy::too_many_arguments)]
fn change_records(
    store: &dyn Database,
    config: &Config,
    key: &str,
    stored: &StoredFlow,
    subject: &Subject,
    run: &Run,
    at: i64,
    trace: &mut Vec<kinship_flows::TraceStep>,
) -> Result<Vec<(String, kinship_core::NewRecord)>> {
    let (Some(source), false) = (&config.flows.source, run.changes.is_empty()) else { return Ok(Vec::new()) };
    let Some(anchor) = own_identifier(store, config, &subject.id)? else {
        trace.push(kinship_flows::TraceStep {
            step: "write the profile's changes".into(),
            outcome: "not written: every identifier of this profile is shared with another, so no record can name it alone".into(),
            values: Map::new(),
        });
        return Ok(Vec::new());
    };
    let identifiers = kinship_core::encode_identifiers(std::slice::from_ref(&anchor));
    let context = json!({ "kinship": { "flow": stored.flow.name(), "version": stored.version, "run": key } });
    let timestamp = kinship_expr::format_timestamp(at);
    Ok(run
        .changes
        .iter()
        .enumerate()
        .map(|(i, change)| {
            let record_key = format!("{key}#change{i}");
            let payload = match change {
                kinship_flows::ProfileChange::SetTraits(traits) => json!({
                    "type": "identify", "messageId": record_key, "timestamp": timestamp, "traits": traits, "context": context,
                }),
                kinship_flows::ProfileChange::List { list, added } => json!({
                    "type": "track",
                    "messageId": record_key,
                    "timestamp": timestamp,
                    "event": if *added { kinship_expr::ADDED_TO_LIST } else { kinship_expr::REMOVED_FROM_LIST },
                    "properties": { "list": list, "flow": stored.flow.name() },
                    "context": context,
                }),
            };
            let record = kinship_core::NewRecord {
                key: record_key,
                payload: payload.to_string(),
                identifiers: identifiers.clone(),
                timestamp: Some(at),
            };
            (source.clone(), record)
        })
        .collect())
}

/// `msg_` and a hash of the run and endpoint: the same on every retry, replay and node.
fn webhook_id(run_key: &str, endpoint: &str) -> String {
    let hash = blake3::hash(format!("{run_key}\n{endpoint}").as_bytes());
    format!("msg_{}", hex::encode(&hash.as_bytes()[..16]))
}

/// Several profiles as flows see them (with the events `read` lets through), read in two queries.
fn subjects_of(
    store: &dyn Database,
    mappers: &rustc_hash::FxHashMap<&str, kinship_sources::Mapper<'_>>,
    read: &EventFilter<'_>,
    ids: &[String],
    selected: Option<&HashMap<RecordId, &str>>,
    every_record: &mut dyn FnMut(&str, &kinship_store::RecordView<'_>),
) -> Result<HashMap<String, Subject>> {
    let mut subjects: HashMap<String, Subject> = store
        .profiles_by_id(ids)?
        .into_iter()
        .map(|row| (row.id.clone(), Subject { id: row.id.clone(), traits: golden::values(&row.traits), ..Subject::default() }))
        .collect();
    let mut take = |profile: &str, r: kinship_store::RecordView<'_>| {
        every_record(profile, &r);
        let (Some(subject), Some(mapper)) = (subjects.get_mut(profile), mappers.get(r.source)) else { return };
        if !read.may_hold(r.source, r.payload) {
            return;
        }
        let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(r.payload) else { return };
        if let Some((event, ts)) = crate::audience::record_event(mapper, r.source, &fields, r.timestamp) {
            let record = EventRecord {
                name: event.event,
                timestamp_ms: ts,
                properties: event.properties,
                source: r.source.into(),
                key: r.key.into(),
            };
            subject.events.push(record);
        }
    };
    match selected {
        // Only the records named, each on the profile it is named with.
        Some(selected) => {
            let records: Vec<RecordId> = selected.keys().copied().collect();
            store.scan_selected(&records, &[], &mut |r| {
                if let Some(profile) = selected.get(&r.id) {
                    take(profile, r);
                }
            })?;
        }
        None => store.scan_records_of(ids, &mut |profile, r| take(profile, r))?,
    }
    for subject in subjects.values_mut() {
        subject.events.sort_by_key(|e| e.timestamp_ms);
    }
    Ok(subjects)
}

/// What a flow would have done over the last `days`: how many runs, tasks and deliveries,
/// the people it would have acted on, and up to `samples` runs with their traces.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DryRun {
    pub flow: String,
    pub days: u32,
    /// Events of the trigger's name in the window, on resolved records (a record not yet
    /// resolved is on no profile and not counted); for a scheduled flow, the segment's members.
    pub triggers: usize,
    pub runs: usize,
    pub profiles: usize,
    pub tasks: usize,
    pub deliveries: usize,
    pub samples: Vec<Value>,
}

/// Runs `text` (a flow, saved or not) against the events of the last `days` without writing
/// anything. Each trigger is judged on the profile as it is now.
///
/// With `held` (a server's audience in memory, when loaded) the trigger's events are found in
/// memory on every core, and of the profiles holding one only the records needed (the
/// candidate triggers and the events the flow reads, by the ids the held events carry) are
/// read, by one connection per core; otherwise (no audience held, one being loaded, or one
/// made under source mappings edited since) every record of the sources that can hold the
/// trigger is read. The audience follows the log a moment behind, so a record resolved in the last
/// moment may be left out.
pub fn dry_run(
    store: &dyn Database,
    config: &Config,
    data_dir: &Path,
    text: &str,
    days: u32,
    samples: usize,
    held: Option<Held<'_>>,
) -> Result<DryRun> {
    let flow = compile(&known(store, config), text)?;
    let mut references = References::default();
    let references = references.current(config, data_dir)?;
    let mappers = crate::mappers(config)?;
    let mut read_names = None;
    let read = events_read_by(config, std::iter::once(&flow), &mut read_names);
    let tally_for = |store: &dyn Database| -> Result<Tally<'_>> {
        Ok(Tally {
            flow: &flow,
            references,
            judge: if flow.reads_definitions() { Some(Judge::new(store)?) } else { None },
            out: DryRun { flow: flow.name().into(), days, triggers: 0, runs: 0, profiles: 0, tasks: 0, deliveries: 0, samples: Vec::new() },
            acted: std::collections::BTreeSet::new(),
            samples: BTreeMap::new(),
            wanted_samples: samples,
        })
    };
    let mut tally = tally_for(store)?;
    if let Some((schedule, segment)) = flow.schedule() {
        // A scheduled flow: its next tick, on the segment's members now, in their order.
        let trigger = scheduled_trigger(&flow, schedule.latest(crate::now_ms()));
        const PAGE: u64 = 10_000;
        let mut offset = 0;
        loop {
            let members = store.segment_members(segment, offset, PAGE)?;
            for (i, chunk) in members.chunks(TRIGGERS_READ_TOGETHER).enumerate() {
                let mut subjects = subjects_of(store, &mappers, &read, chunk, None, &mut |_, _| {})?;
                let first = offset + (i * TRIGGERS_READ_TOGETHER) as u64;
                let placed = chunk.iter().enumerate().map(|(j, p)| (first + j as u64, p.clone(), trigger.clone())).collect();
                tally.run(placed, &mut subjects);
            }
            let got = members.len() as u64;
            offset += got;
            if got < PAGE {
                break;
            }
        }
        tally.out.triggers = offset as usize;
        return Ok(tally.finish());
    }
    let from = crate::now_ms() - i64::from(days) * 86_400_000;
    let wanted = [flow.trigger_event()];
    let candidates = EventFilter::new(config, &wanted);
    // An audience being loaded or replaced (minutes on a large store) is not waited for, and
    // one made under source mappings edited since holds events as they were: the log answers.
    let mappings = crate::audience::mappings_stamp(config);
    let audience = held.as_ref().and_then(|h| h.audience.try_read().ok()).filter(|a| !a.is_unloaded() && a.mapped_by() == mappings);
    if let (Some(audience), Some(held)) = (audience, &held) {
        // The profiles holding an event of the trigger's name in the window, with the times
        // of those that may start a run, found in memory on both cores; then each such
        // profile's records, read once for its triggers and the events the flow reads.
        let seen = std::sync::atomic::AtomicUsize::new(0);
        let found = audience.map_profiles(|p| {
            use kinship_expr::{EventView, ProfileView};
            let (mut count, mut at) = (0, Vec::new());
            for event in p.events(Some(wanted[0])).filter(|e| e.timestamp_ms() >= from) {
                count += 1;
                if flow.triggers_alone_on(p, event) != Some(false) {
                    at.push(event.timestamp_ms());
                }
            }
            seen.fetch_add(count, std::sync::atomic::Ordering::Relaxed);
            if at.is_empty() {
                return None;
            }
            // The records of its candidate triggers and of the events the flow reads, when
            // every one is known (`None`: all of the profile's records are read).
            let needed = p.events(None).filter(|e| {
                let name = p.event_name(e);
                (name == wanted[0] && at.binary_search(&e.timestamp_ms()).is_ok()) || read.wants(name)
            });
            let records: Option<Vec<RecordId>> = needed.map(|e| Some(e.record()).filter(|id| *id != 0)).collect();
            Some((p.id().to_string(), at, records))
        });
        drop(audience);
        tally.out.triggers = seen.into_inner();
        let mut found: Vec<(String, Vec<i64>, Option<Vec<RecordId>>)> = found;
        found.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        // Reading the records is the cost: each core reads a share with its own connection
        // (a share of a few profiles is not worth a connection; a big host is not given
        // connections by the dozen per request).
        const LEAST_SHARE: usize = 16;
        const MOST_READERS: usize = 4;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let workers = cores.min(MOST_READERS).min(found.len().div_ceil(LEAST_SHARE)).max(1);
        let shares: Vec<Result<Tally>> = std::thread::scope(|scope| {
            let handles: Vec<_> = found
                .chunks(found.len().div_ceil(workers).max(1))
                .map(|share| {
                    let (mappers, read, candidates, wanted, flow, tally_for) = (&mappers, &read, &candidates, &wanted, &flow, &tally_for);
                    scope.spawn(move || -> Result<Tally> {
                        let store = kinship_store::open(held.database)?;
                        // One snapshot per reader, so a profile's traits and events agree.
                        store.begin_read()?;
                        let mut tally = tally_for(&*store)?;
                        for chunk in share.chunks(TRIGGERS_READ_TOGETHER) {
                            let times: HashMap<&str, &[i64]> = chunk.iter().map(|(p, at, _)| (p.as_str(), at.as_slice())).collect();
                            let mut placed = Vec::new();
                            let mut candidate = |profile: &str, r: &kinship_store::RecordView<'_>| {
                                // Held events are oldest first, so their times are sorted.
                                let candidate =
                                    r.timestamp.is_some_and(|t| times.get(profile).is_some_and(|at| at.binary_search(&t).is_ok()));
                                if !candidate {
                                    return;
                                }
                                if let Some(trigger) = trigger_of(mappers, candidates, wanted, r) {
                                    if flow.triggers_alone(&trigger) != Some(false) {
                                        placed.push((r.id as u64, profile.to_string(), trigger));
                                    }
                                }
                            };
                            // Profiles whose every needed record is known read only those.
                            let (known, whole): (Vec<_>, Vec<_>) = chunk.iter().partition(|(_, _, records)| records.is_some());
                            let selected: HashMap<RecordId, &str> = known
                                .iter()
                                .flat_map(|(p, _, records)| records.iter().flatten().map(move |id| (*id, p.as_str())))
                                .collect();
                            let known: Vec<String> = known.iter().map(|(p, _, _)| p.clone()).collect();
                            let whole: Vec<String> = whole.iter().map(|(p, _, _)| p.clone()).collect();
                            let mut subjects = subjects_of(&*store, mappers, read, &known, Some(&selected), &mut candidate)?;
                            subjects.extend(subjects_of(&*store, mappers, read, &whole, None, &mut candidate)?);
                            tally.run(placed, &mut subjects);
                        }
                        store.end_read()?;
                        Ok(tally)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().expect("a dry run's reader does not panic")).collect()
        });
        for share in shares {
            tally.merge(share?);
        }
        return Ok(tally.finish());
    }
    // Only the sources that can hold the trigger's event are read (a help desk's tickets,
    // not the shop's orders), by the log's (source, key) index, each record with its
    // profile; records not resolved yet are on no profile and not counted.
    let mut triggers = Vec::new();
    for source in config.sources.keys().filter(|s| candidates.may_come_from(s)) {
        store.scan_source_records(source, &mut |profile, r| {
            if r.timestamp.is_none_or(|t| t < from) {
                return;
            }
            if let Some(trigger) = trigger_of(&mappers, &candidates, &wanted, &r) {
                tally.out.triggers += 1;
                if flow.triggers_alone(&trigger) != Some(false) {
                    triggers.push((r.id as u64, profile.to_string(), trigger));
                }
            }
        })?;
    }
    // In the log's order, as they arrived.
    triggers.sort_unstable_by_key(|(id, _, _)| *id);
    for chunk in triggers.chunks(TRIGGERS_READ_TOGETHER) {
        let mut profiles: Vec<String> = chunk.iter().map(|(_, p, _)| p.clone()).collect();
        profiles.sort_unstable();
        profiles.dedup();
        let mut subjects = subjects_of(store, &mappers, &read, &profiles, None, &mut |_, _| {})?;
        tally.run(chunk.to_vec(), &mut subjects);
    }
    Ok(tally.finish())
}

/// The audience a server holds, for a dry run, and its store's location (each reader opens
/// its own connection).
pub struct Held<'a> {
    pub audience: &'a std::sync::RwLock<kinship_segments::Audience>,
    pub database: &'a str,
}

/// A dry run's counts, taking triggers in any order: the samples are the first runs in
/// arrival order (each trigger's place: its record's id, or a member's place in a segment).
struct Tally<'a> {
    flow: &'a Flow,
    references: &'a BTreeMap<String, Reference>,
    judge: Option<Judge>,
    out: DryRun,
    acted: std::collections::BTreeSet<String>,
    samples: BTreeMap<u64, Value>,
    wanted_samples: usize,
}

impl Tally<'_> {
    fn run(&mut self, mut placed: Vec<(u64, String, EventRecord)>, subjects: &mut HashMap<String, Subject>) {
        placed.sort_unstable_by_key(|(place, _, _)| *place);
        let mut left: HashMap<String, usize> = HashMap::new();
        for (_, profile, _) in &placed {
            *left.entry(profile.clone()).or_default() += 1;
        }
        for (place, profile, trigger) in placed {
            // Judged as of the trigger: its time, and the events before it. A profile's last
            // trigger here takes its subject; earlier ones copy it.
            let last = left.get_mut(&profile).is_some_and(|n| {
                *n -= 1;
                *n == 0
            });
            let mut subject = if last {
                let Some(mut subject) = subjects.remove(&profile) else { continue };
                subject.events.retain(|e| e.timestamp_ms <= trigger.timestamp_ms);
                subject
            } else {
                let Some(now) = subjects.get_mut(&profile) else { continue };
                let events = std::mem::take(&mut now.events);
                let mut subject = now.clone();
                subject.events = events.iter().filter(|e| e.timestamp_ms <= trigger.timestamp_ms).cloned().collect();
                now.events = events;
                subject
            };
            if let Some(judge) = &mut self.judge {
                judge.judge(&mut subject, trigger.timestamp_ms);
            }
            let run = kinship_flows::run(self.flow, &trigger, &subject, self.references, trigger.timestamp_ms);
            if !run.matched {
                continue;
            }
            self.out.runs += 1;
            self.out.tasks += run.tasks.len();
            self.out.deliveries += run.deliveries.len();
            let later_than_kept =
                self.samples.len() == self.wanted_samples && self.samples.last_key_value().is_none_or(|(k, _)| *k < place);
            if self.wanted_samples > 0 && !later_than_kept {
                self.samples.insert(
                    place,
                    json!({
                        "profile_id": profile,
                        "trigger": { "source": trigger.source, "record_key": trigger.key, "at": kinship_expr::format_timestamp(trigger.timestamp_ms) },
                        "trace": run.trace,
                        "facts": run.facts,
                        "tasks": run.tasks,
                        "changes": run.changes,
                    }),
                );
                if self.samples.len() > self.wanted_samples {
                    self.samples.pop_last();
                }
            }
            self.acted.insert(profile);
        }
    }

    /// Adds what another reader counted over other profiles.
    fn merge(&mut self, other: Tally) {
        self.out.runs += other.out.runs;
        self.out.tasks += other.out.tasks;
        self.out.deliveries += other.out.deliveries;
        self.acted.extend(other.acted);
        self.samples.extend(other.samples);
        while self.samples.len() > self.wanted_samples {
            self.samples.pop_last();
        }
    }

    fn finish(mut self) -> DryRun {
        self.out.profiles = self.acted.len();
        self.out.samples = self.samples.into_values().collect();
        self.out
    }
}
