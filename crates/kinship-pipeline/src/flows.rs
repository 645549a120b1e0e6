//! Flows over the store: saving a flow (checked against kinship.toml's references, teams and
//! endpoints), running every flow on the records resolution has just placed, and a dry run
//! over history. The engine is `kinship-flows`; this module reads what it needs and writes
//! each run with its task and deliveries in one transaction (`ActStore::record_runs`).

use crate::{golden, PipelineError, Result};
use kinship_core::act::EndpointConfig;
use kinship_core::{Config, RecordId};
use kinship_flows::{assign, EventRecord, Flow, FlowDefinition, Known, Reference, Run, Subject};
use kinship_store::{Database, NewDelivery, NewRun, NewTask};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::SystemTime;

/// Names a flow may use: the references, teams and endpoints configured.
pub fn known(config: &Config) -> Known {
    Known {
        references: config.references.keys().cloned().collect(),
        teams: config.teams.keys().cloned().collect(),
        endpoints: config.endpoints.keys().cloned().collect(),
    }
}

/// Checks a flow written as TOML or JSON and stores it as its next version. Returns its name
/// and version.
pub fn save_flow(store: &mut dyn Database, config: &Config, text: &str, by: &str) -> Result<(String, i64)> {
    let flow = compile(config, text)?;
    let version = store.save_flow(flow.name(), text, by, crate::now_ms())?;
    Ok((flow.name().to_string(), version))
}

fn compile(config: &Config, text: &str) -> Result<Flow> {
    let definition = FlowDefinition::parse(text).map_err(|e| PipelineError::Config(e.to_string()))?;
    Flow::compile(definition, &known(config)).map_err(|e| PipelineError::Config(e.to_string()))
}

/// A stored flow's newest version, compiled.
pub struct StoredFlow {
    pub flow: Flow,
    pub version: i64,
}

/// The newest version of every stored flow, compiled. A stored flow that no longer compiles
/// (a team removed from kinship.toml) is left out with a warning rather than stopping the rest.
pub fn load_flows(store: &dyn Database, config: &Config) -> Result<(Vec<StoredFlow>, Vec<String>)> {
    let mut flows = Vec::new();
    let mut warnings = Vec::new();
    for row in store.flows()? {
        match compile(config, &row.definition) {
            Ok(flow) => flows.push(StoredFlow { flow, version: row.version }),
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
    let mut pass = FlowPass::default();
    if through <= after {
        return Ok(pass);
    }
    if flows.is_empty() {
        store.record_runs(&[], through)?;
        return Ok(pass);
    }
    let mappers = crate::mappers(config)?;
    let wanted: Vec<&str> = flows.iter().map(|f| f.flow.trigger_event()).collect();
    // (source, key, event, time) of each trigger, in log order.
    let mut triggers = Vec::new();
    let mut cursor = after;
    while cursor < through {
        let mut last = cursor;
        store.scan_after(cursor, 5000, &mut |r| {
            last = r.id;
            if r.id > through {
                return;
            }
            let Some(mapper) = mappers.get(r.source) else { return };
            let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(r.payload) else { return };
            if let Some((event, ts)) = crate::audience::record_event(mapper, &fields, r.timestamp) {
                if wanted.contains(&event.event.as_str()) {
                    triggers.push(EventRecord {
                        name: event.event,
                        timestamp_ms: ts,
                        properties: event.properties,
                        source: r.source.to_string(),
                        key: r.key.to_string(),
                    });
                }
            }
        })?;
        if last == cursor {
            break;
        }
        cursor = last;
    }
    pass.triggers = triggers.len();
    let mut subjects: HashMap<String, Subject> = HashMap::new();
    let mut load = TeamLoad::default();
    let mut runs = Vec::new();
    for trigger in &triggers {
        // A record erased or not placed since has no profile: nothing to act on.
        let Some((_, profile)) = store.record_profile(&trigger.source, &trigger.key)? else { continue };
        if !subjects.contains_key(&profile) {
            let subject = subject(store, config, &profile)?;
            subjects.insert(profile.clone(), subject);
        }
        let subject = &subjects[&profile];
        for stored in flows {
            // Judged as of the trigger (a warranty on the day of the complaint), which for a
            // live event is now, and for records read late is when they happened.
            let run = kinship_flows::run(&stored.flow, trigger, subject, references, trigger.timestamp_ms);
            if !run.matched {
                continue;
            }
            runs.push(new_run(store, config, stored, trigger, subject, &run, &mut load)?);
        }
    }
    pass.runs = runs.len();
    pass.deliveries = runs.iter().map(|r| r.deliveries.len()).sum();
    pass.tasks = store.record_runs(&runs, through)?;
    Ok(pass)
}

/// Each team's load as this pass sees it: the store's counts plus the tasks assigned so far.
#[derive(Default)]
struct TeamLoad {
    teams: HashMap<String, (BTreeMap<String, u64>, u64)>,
}

fn new_run(
    store: &dyn Database,
    config: &Config,
    stored: &StoredFlow,
    trigger: &EventRecord,
    subject: &Subject,
    run: &Run,
    load: &mut TeamLoad,
) -> Result<NewRun> {
    let (flow, version) = (&stored.flow, stored.version);
    let key = format!("{}@{version}/{}/{}/{}", flow.name(), trigger.source, trigger.key, subject.id);
    let context = serde_json::to_string(&run.facts).map_err(kinship_store::StoreError::from)?;
    let task = match run.tasks.first() {
        Some(draft) => {
            let team = &config.teams[&draft.team];
            if !load.teams.contains_key(&draft.team) {
                let (open, total) = store.team_load(&draft.team)?;
                load.teams.insert(draft.team.clone(), (open.into_iter().collect(), total));
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
    let trace = json!({ "trace": run.trace, "facts": run.facts });
    Ok(NewRun {
        key,
        flow: flow.name().into(),
        version,
        profile_id: subject.id.clone(),
        source: trigger.source.clone(),
        record_key: trigger.key.clone(),
        at: crate::now_ms(),
        trace: trace.to_string(),
        task,
        deliveries,
    })
}

/// `msg_` and a hash of the run and endpoint: the same on every retry, replay and node.
fn webhook_id(run_key: &str, endpoint: &str) -> String {
    let hash = blake3::hash(format!("{run_key}\n{endpoint}").as_bytes());
    format!("msg_{}", hex::encode(&hash.as_bytes()[..16]))
}

/// A profile as flows see it: golden traits and its events with their records, oldest first.
pub fn subject(store: &dyn Database, config: &Config, id: &str) -> Result<Subject> {
    let mappers = crate::mappers(config)?;
    let traits = store.profile(id)?.map(|row| golden::values(&row.traits)).unwrap_or_default();
    let mut events = Vec::new();
    for r in store.profile_records(id)? {
        let (Some(mapper), Some(fields)) = (mappers.get(r.source.as_str()), r.payload.as_object()) else { continue };
        if let Some((event, ts)) = crate::audience::record_event(mapper, fields, r.timestamp) {
            events.push(EventRecord { name: event.event, timestamp_ms: ts, properties: event.properties, source: r.source, key: r.key });
        }
    }
    events.sort_by_key(|e| e.timestamp_ms);
    Ok(Subject { id: id.to_string(), traits, events, ..Subject::default() })
}

/// What a flow would have done over the last `days`: how many runs, tasks and deliveries,
/// the people it would have acted on, and up to `samples` runs with their traces.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DryRun {
    pub flow: String,
    pub days: u32,
    pub triggers: usize,
    pub runs: usize,
    pub profiles: usize,
    pub tasks: usize,
    pub deliveries: usize,
    pub samples: Vec<Value>,
}

/// Runs `text` (a flow, saved or not) against the events of the last `days` without writing
/// anything. Each trigger is judged on the profile as it is now.
pub fn dry_run(store: &dyn Database, config: &Config, data_dir: &Path, text: &str, days: u32, samples: usize) -> Result<DryRun> {
    let flow = compile(config, text)?;
    let mut references = References::default();
    let references = references.current(config, data_dir)?;
    let now = crate::now_ms();
    let from = now - i64::from(days) * 86_400_000;
    let mappers = crate::mappers(config)?;
    let mut triggers = Vec::new();
    store.scan_records(&mut |r| {
        if r.timestamp.is_none_or(|t| t < from) {
            return;
        }
        let Some(mapper) = mappers.get(r.source) else { return };
        let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(r.payload) else { return };
        if let Some((event, ts)) = crate::audience::record_event(mapper, &fields, r.timestamp) {
            if event.event == flow.trigger_event() {
                triggers.push(EventRecord {
                    name: event.event,
                    timestamp_ms: ts,
                    properties: event.properties,
                    source: r.source.to_string(),
                    key: r.key.to_string(),
                });
            }
        }
    })?;
    let mut out = DryRun {
        flow: flow.name().into(),
        days,
        triggers: triggers.len(),
        runs: 0,
        profiles: 0,
        tasks: 0,
        deliveries: 0,
        samples: Vec::new(),
    };
    let mut acted = std::collections::BTreeSet::new();
    for trigger in &triggers {
        let Some((_, profile)) = store.record_profile(&trigger.source, &trigger.key)? else { continue };
        let mut subject = subject(store, config, &profile)?;
        // Judged as of the trigger: its time, and the events before it.
        subject.events.retain(|e| e.timestamp_ms <= trigger.timestamp_ms);
        let run = kinship_flows::run(&flow, trigger, &subject, references, trigger.timestamp_ms);
        if !run.matched {
            continue;
        }
        out.runs += 1;
        out.tasks += run.tasks.len();
        out.deliveries += run.deliveries.len();
        acted.insert(profile.clone());
        if out.samples.len() < samples {
            out.samples.push(json!({
                "profile_id": profile,
                "trigger": { "source": trigger.source, "record_key": trigger.key, "at": kinship_expr::format_timestamp(trigger.timestamp_ms) },
                "trace": run.trace,
                "facts": run.facts,
                "tasks": run.tasks,
            }));
        }
    }
    out.profiles = acted.len();
    Ok(out)
}

/// Whether the profile has granted `purpose` now, derived from its traits and events by the
/// `[consent]` rules: a delivery with a purpose is checked when it is sent, not when queued.
pub fn consent_granted(store: &dyn Database, config: &Config, profile: &str, purpose: &str) -> Result<bool> {
    let subject = subject(store, config, profile)?;
    let consent = kinship_policy::derive_consent(
        &subject.traits,
        subject.events.iter().map(|e| (e.name.as_str(), e.timestamp_ms, &e.properties)),
        &config.consent,
    );
    Ok(consent.get(&kinship_policy::Purpose::new(purpose)).is_some_and(|c| c.granted))
}

/// An endpoint's consent purpose, if its deliveries need one.
pub fn endpoint_purpose(config: &Config, endpoint: &str) -> Option<String> {
    match config.endpoints.get(endpoint)? {
        EndpointConfig::Webhook(w) => w.purpose.clone(),
    }
}
