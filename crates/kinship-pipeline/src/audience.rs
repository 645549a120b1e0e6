//! Segments and computed traits over stored profiles: loading the audience engine from the
//! store, keeping it current as profiles change, and storing entries, exits and sizes.

use crate::{golden, now_ms, PipelineError, Result};
use kinship_core::Config;
use kinship_measure::health::HealthProgram;
use kinship_segments::{Audience, DefinitionSource, Kind, Transition};
use kinship_sources::{MappedEvent, Mapper};
use kinship_store::{AudienceStore, Database, DefinitionRow, RecordView, SegmentTransition};
use rustc_hash::{FxHashMap, FxHashSet};
use serde_json::{Map, Value};

pub(crate) fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Segment => "segment",
        Kind::Computed => "computed",
        Kind::Funnel => "funnel",
        Kind::Health => "health",
    }
}

fn kind_of(name: &str) -> Result<Kind> {
    match name {
        "segment" => Ok(Kind::Segment),
        "computed" => Ok(Kind::Computed),
        "funnel" => Ok(Kind::Funnel),
        "health" => Ok(Kind::Health),
        other => Err(PipelineError::Config(format!("stored definition of unknown kind {other:?}"))),
    }
}

/// The event a record stands for, through its source's mapping: (name, time, properties).
pub(crate) fn record_event(
    mapper: &Mapper<'_>,
    source: &str,
    fields: &Map<String, Value>,
    timestamp: Option<i64>,
) -> Option<(MappedEvent, i64)> {
    Some((mapper.record_event(source, fields, timestamp)?, timestamp?))
}

/// The stored definitions, as the engine takes them.
pub(crate) fn stored_definitions(store: &dyn AudienceStore) -> Result<Vec<DefinitionSource>> {
    store
        .definitions()?
        .into_iter()
        .map(|d| Ok(DefinitionSource { kind: kind_of(&d.kind)?, name: d.name, expression: d.expression }))
        .collect()
}

/// Loads every profile (golden traits and events) and every definition, evaluated now.
/// Memberships are not compared with the stored ones: see [`sync_memberships`].
pub fn load_audience(store: &dyn Database, config: &Config, progress: crate::Progress<'_>) -> Result<Audience> {
    let mappers = crate::mappers(config)?;
    let mut audience = Audience::new();
    let mut traits: FxHashMap<String, Map<String, Value>> = FxHashMap::default();
    store.scan_profiles(&mut |id, stored| {
        traits.insert(id.to_string(), golden::values(stored));
    })?;
    let total = traits.len() as u64;
    let mut current: Option<String> = None;
    let mut events: Vec<(MappedEvent, i64, i64)> = Vec::new();
    let mut done = 0u64;
    let mut flush = |audience: &mut Audience, id: &str, events: &mut Vec<(MappedEvent, i64, i64)>| {
        let empty = Map::new();
        let t = traits.remove(id);
        audience.upsert_recorded_profile(id, t.as_ref().unwrap_or(&empty), recorded(events));
        events.clear();
        done += 1;
        if done % 50_000 == 0 {
            progress(done, total);
        }
    };
    store.scan_profile_records(&mut |profile, r: RecordView<'_>| {
        if current.as_deref() != Some(profile) {
            if let Some(previous) = current.take() {
                flush(&mut audience, &previous, &mut events);
            }
            current = Some(profile.to_string());
        }
        if let (Some(mapper), Ok(Value::Object(fields))) = (mappers.get(r.source), serde_json::from_str::<Value>(r.payload)) {
            events.extend(record_event(mapper, r.source, &fields, r.timestamp).map(|(e, ts)| (e, ts, r.id)));
        }
    })?;
    if let Some(previous) = current.take() {
        flush(&mut audience, &previous, &mut events);
    }
    progress(total, total);
    audience.define_all(stored_definitions(store)?, now_ms())?;
    audience.set_mapped_by(mappings_stamp(config));
    Ok(audience)
}

/// A stamp of every source's mapping: an audience loaded under another one holds events
/// named and shaped as the sources were mapped then.
pub fn mappings_stamp(config: &Config) -> u64 {
    let text = serde_json::to_string(&config.sources).unwrap_or_default();
    let hash = blake3::hash(text.as_bytes());
    u64::from_le_bytes(hash.as_bytes()[..8].try_into().expect("8 bytes")).max(1)
}

/// The audience a long-running server starts with: loaded when something is defined,
/// otherwise [`Audience::unloaded`] so that following the log costs nothing extra.
pub fn audience_for_server(store: &mut dyn Database, config: &Config) -> Result<Audience> {
    if store.definitions()?.is_empty() {
        return Ok(Audience::unloaded());
    }
    let audience = load_audience(store, config, &|_, _| {})?;
    sync_memberships(store, &audience)?;
    keep_stuck_thresholds(store, &audience)?;
    Ok(audience)
}

/// Loads the profiles of an unloaded audience (before a definition or a preview needs them).
pub fn ensure_loaded(store: &dyn Database, config: &Config, audience: &mut Audience) -> Result<()> {
    if audience.is_unloaded() {
        *audience = load_audience(store, config, &|_, _| {})?;
    }
    Ok(())
}

/// Stores the difference between the engine's memberships and the stored ones as entries
/// and exits now (time passed, or profiles changed while nothing was watching). Returns
/// how many transitions were recorded.
pub fn sync_memberships(store: &mut dyn Database, audience: &Audience) -> Result<usize> {
    let stored: FxHashSet<(String, String)> = store.memberships()?.into_iter().collect();
    let mut current = FxHashSet::default();
    for d in audience.definitions().into_iter().filter(|d| d.kind == Kind::Segment) {
        for p in audience.members(&d.name).unwrap_or_default() {
            current.insert((d.name.clone(), p.to_string()));
        }
    }
    let mut transitions = Vec::new();
    for (segment, profile) in current.difference(&stored) {
        transitions.push(Transition { segment: segment.clone(), profile: profile.clone(), entered: true });
    }
    for (segment, profile) in stored.difference(&current) {
        transitions.push(Transition { segment: segment.clone(), profile: profile.clone(), entered: false });
    }
    transitions.sort_by(|a, b| (&a.segment, &a.profile).cmp(&(&b.segment, &b.profile)));
    record(store, audience, &transitions)?;
    Ok(transitions.len())
}

/// Stores transitions with the sizes of the segments they touch.
pub fn record(store: &mut dyn Database, audience: &Audience, transitions: &[Transition]) -> Result<()> {
    if transitions.is_empty() {
        return Ok(());
    }
    let at = now_ms();
    let touched: FxHashSet<&str> = transitions.iter().map(|t| t.segment.as_str()).collect();
    let mut sizes: Vec<(String, u64)> = touched.into_iter().filter_map(|s| Some((s.to_string(), audience.size(s)? as u64))).collect();
    sizes.sort();
    let mut rows: Vec<SegmentTransition> = transitions
        .iter()
        .map(|t| SegmentTransition { segment: t.segment.clone(), profile: t.profile.clone(), entered: t.entered, at })
        .collect();
    // One order for every writer: nodes sharing a store then lock rows in the same order.
    rows.sort_by(|a, b| (&a.segment, &a.profile).cmp(&(&b.segment, &b.profile)));
    Ok(store.record_transitions(&rows, &sizes, at)?)
}

/// Defines a segment, computed trait or funnel: checked against the current definitions
/// (names, types, cycles), evaluated over every profile, stored with its members. Returns its
/// size (segments) or the number of profiles (the others).
pub fn define(store: &mut dyn Database, config: &Config, audience: &mut Audience, source: DefinitionSource) -> Result<usize> {
    if matches!(source.kind, Kind::Funnel | Kind::Health) {
        refuse_quoted_contacts(&source)?;
    }
    ensure_loaded(store, config, audience)?;
    let (kind, name) = (source.kind, source.name.clone());
    let row =
        DefinitionRow { kind: kind_name(kind).into(), name: name.clone(), expression: source.expression.clone(), created_at: now_ms() };
    let transitions = audience.define(source, row.created_at)?;
    store.save_definition(&row)?;
    record(store, audience, &transitions)?;
    if kind == Kind::Funnel {
        keep_stuck_thresholds(store, audience)?;
    }
    Ok(match kind {
        Kind::Segment => audience.size(&name).unwrap_or(0),
        Kind::Computed | Kind::Funnel | Kind::Health => audience.profile_count(),
    })
}

/// Erasure rewrites a person's email or phone out of segment expressions; a funnel's or
/// health definition's expressions sit inside TOML it does not rewrite, so they may not
/// quote one at all.
fn refuse_quoted_contacts(source: &DefinitionSource) -> Result<()> {
    use kinship_segments::DefinitionError;
    let wrong = |message: String| match source.kind {
        Kind::Funnel => DefinitionError::Funnel { name: source.name.clone(), message },
        _ => DefinitionError::Health { name: source.name.clone(), message },
    };
    // (expression, whether it is about one event)
    let expressions: Vec<(String, bool)> = if source.kind == Kind::Funnel {
        let program = kinship_measure::definition::FunnelProgram::parse(&source.expression).map_err(|e| wrong(e.0))?;
        program.conditions().map(|c| (c.to_string(), true)).collect()
    } else {
        let definition = kinship_measure::health::HealthDefinition::parse(&source.expression).map_err(|e| wrong(e.0))?;
        let texts = definition
            .applies
            .iter()
            .chain(definition.measures.iter().map(|m| &m.value))
            .chain(definition.contexts.iter().filter_map(|c| c.when.as_ref()));
        texts.map(|t| (t.clone(), false)).collect()
    };
    for (text, about_event) in &expressions {
        let parsed = if *about_event { kinship_expr::parse_about_event(text) } else { kinship_expr::parse(text) };
        if let Some(kind) = parsed.ok().and_then(|mut e| crate::readable::quoted_contact(&mut e)) {
            let message = format!(
                "`{}` quotes {}; a saved {} may not name a person (erasure could not reach it): select people with a segment instead",
                crate::readable::redacted(text),
                if kind == "email" { "an email address" } else { "a phone number" },
                source.kind
            );
            return Err(wrong(message).into());
        }
    }
    Ok(())
}

/// Deletes a definition nothing else reads.
pub fn undefine(store: &mut dyn Database, audience: &mut Audience, kind: Kind, name: &str) -> Result<()> {
    let left = audience.undefine(kind, name)?;
    let at = now_ms();
    // The members' timelines record the exit; the segment's own rows go with it.
    let rows: Vec<SegmentTransition> =
        left.iter().map(|t| SegmentTransition { segment: t.segment.clone(), profile: t.profile.clone(), entered: false, at }).collect();
    store.record_transitions(&rows, &[], at)?;
    if kind == Kind::Health {
        // Nothing keeps a deleted definition's alerts any more: they close now.
        let open = store.health_alerts(name, Some("open"), usize::MAX)?;
        let closed = kinship_store::AlertChanges { closed: open.iter().map(|a| a.id).collect(), ..Default::default() };
        store.record_alerts(&closed, at)?;
    }
    Ok(store.delete_definition(kind_name(kind), name)?)
}

/// Brings the engine up to date with profiles that changed (records attached, merged,
/// split) and those that went away, re-evaluating only what each change can affect, and
/// stores the entries and exits.
pub fn refresh_profiles(
    store: &mut dyn Database,
    config: &Config,
    audience: &mut Audience,
    touched: &[String],
    removed: &[String],
) -> Result<Vec<Transition>> {
    if audience.is_unloaded() {
        return Ok(Vec::new());
    }
    if !removed.is_empty() {
        store.forget_memberships(removed)?;
    }
    let transitions = apply_profiles(store, config, audience, touched, removed)?;
    record(store, audience, &transitions)?;
    Ok(transitions)
}

/// Brings the engine up to date with changed and removed profiles as stored, and returns
/// the entries and exits without storing them: for a process following another's
/// resolution, which stored them already.
pub fn apply_profiles(
    store: &dyn Database,
    config: &Config,
    audience: &mut Audience,
    touched: &[String],
    removed: &[String],
) -> Result<Vec<Transition>> {
    if audience.is_unloaded() {
        return Ok(Vec::new());
    }
    for id in removed {
        audience.remove_profile(id);
    }
    let mappers = crate::mappers(config)?;
    let now = now_ms();
    let mut transitions = Vec::new();
    for id in touched {
        let Some(row) = store.profile(id)? else {
            // Gone since (merged or erased): a later change says so too.
            audience.remove_profile(id);
            continue;
        };
        let traits = golden::values(&row.traits);
        let events = stored_events(store, &mappers, id)?;
        let change = audience.upsert_recorded_profile(id, &traits, recorded(&events));
        if !change.is_empty() {
            transitions.extend(audience.evaluate_profile(id, &change, now));
        }
    }
    Ok(transitions)
}

/// Brings one definition in the engine in line with the store: defined, given its new
/// expression, or removed. An unloaded engine is loaded when something is first defined.
pub fn apply_definition(store: &dyn Database, config: &Config, audience: &mut Audience, kind: &str, name: &str) -> Result<()> {
    let kind = kind_of(kind)?;
    let stored = store.definitions()?.into_iter().find(|d| d.kind == kind_name(kind) && d.name == name);
    let held = audience.expression(kind, name).map(str::to_string);
    match (stored, held) {
        (Some(_), None) if audience.is_unloaded() => ensure_loaded(store, config, audience)?,
        (Some(d), None) => {
            audience.define(DefinitionSource { kind, name: d.name, expression: d.expression }, now_ms())?;
        }
        (Some(d), Some(h)) if d.expression != h => {
            // A new expression that reads other things is defined afresh.
            let replaced = audience.replace_expression(kind, name, d.expression.clone(), now_ms());
            if replaced.is_err() {
                audience.undefine(kind, name)?;
                audience.define(DefinitionSource { kind, name: d.name, expression: d.expression }, now_ms())?;
            }
        }
        (None, Some(_)) => {
            audience.undefine(kind, name)?;
        }
        _ => {}
    }
    Ok(())
}

/// Re-evaluates what can change with time alone (windows, `days_since`) and stores the
/// entries and exits.
pub fn refresh_time_relative(store: &mut dyn Database, audience: &mut Audience) -> Result<Vec<Transition>> {
    if audience.is_unloaded() {
        return Ok(Vec::new());
    }
    let transitions = audience.refresh_time_relative(now_ms());
    record(store, audience, &transitions)?;
    keep_stuck_thresholds(store, audience)?;
    Ok(transitions)
}

fn stuck_key(funnel: &str) -> String {
    format!("funnel.{funnel}.stuck_p90")
}

/// Stores each saved funnel's `.stuck` thresholds as learnt over the whole audience, for the
/// hosts that judge one profile at a time ([`judging_audience`]). Written when they change.
pub fn keep_stuck_thresholds(store: &mut dyn Database, audience: &Audience) -> Result<()> {
    for name in audience.schema().funnels {
        let Some(thresholds) = audience.stuck_thresholds(&name) else { continue };
        let value = serde_json::to_string(thresholds).map_err(kinship_store::StoreError::from)?;
        if store.meta(&stuck_key(&name))?.as_deref() != Some(value.as_str()) {
            store.set_meta(&stuck_key(&name), &value)?;
        }
    }
    Ok(())
}

/// An audience holding only `ids` (their golden traits and events, read from the store) and
/// every saved definition: what a command reads one account's health with, without loading
/// everyone. Ids with no profile are left out.
pub fn audience_of(store: &dyn Database, config: &Config, ids: &[String]) -> Result<Audience> {
    let mut some = judging_audience(store)?;
    let mappers = crate::mappers(config)?;
    let now = now_ms();
    for id in ids {
        let Some(row) = store.profile(id)? else { continue };
        let stored: Map<String, Value> = serde_json::from_str(&row.traits).map_err(kinship_store::StoreError::from)?;
        let traits: Map<String, Value> = stored.into_iter().map(|(k, held)| (k, golden::value(&held).clone())).collect();
        let events = stored_events(store, &mappers, id)?;
        let change = some.upsert_recorded_profile(id, &traits, recorded(&events));
        some.evaluate_profile(id, &change, now);
    }
    Ok(some)
}

/// An audience holding every saved definition and no profiles, for judging one profile at a
/// time (upsert it, then `evaluate_profile`): the 360 and flows. Funnels take the `.stuck`
/// thresholds the server learnt over everyone; without them nobody is stuck.
pub(crate) fn judging_audience(store: &dyn Database) -> Result<Audience> {
    let mut one = Audience::new();
    one.define_all(stored_definitions(store)?, now_ms())?;
    for name in one.schema().funnels {
        let learnt = store.meta(&stuck_key(&name))?.and_then(|v| serde_json::from_str::<Vec<Option<i64>>>(&v).ok());
        if let Some(thresholds) = learnt {
            one.use_stuck_thresholds(&name, &thresholds);
        }
    }
    Ok(one)
}

const WEEK_MS: i64 = 7 * 86_400_000;
/// Weekly scores the 360 shows: a quarter, ending now.
const HISTORY_WEEKS: usize = 13;

/// What the definitions say of one profile.
pub struct ProfileValues {
    pub segments: Vec<String>,
    pub computed: Map<String, Value>,
    /// Per saved health definition that applies: the score, band, context and measures, its
    /// weekly history over a quarter (scored as of each week, from the records) and the trend
    /// (points gained or lost over four weeks).
    pub health: Map<String, Value>,
}

/// One profile's segments, computed traits and health scores, evaluated on its own data:
/// every definition is a function of one profile (and the funnels' `.stuck` thresholds,
/// learnt over everyone, are read from the store), so this equals what the whole audience
/// holds.
pub fn profile_values(store: &dyn Database, traits: &Map<String, Value>, events: &[(MappedEvent, i64)], id: &str) -> Result<ProfileValues> {
    let mut one = judging_audience(store)?;
    let now = now_ms();
    let change = one.upsert_profile(id, traits, events.iter().map(|(e, ts)| (e.event.as_str(), *ts, &e.properties)));
    one.evaluate_profile(id, &change, now);
    let (segments, computed) = one.profile_values(id).unwrap_or_default();
    let mut health = Map::new();
    for (name, program) in one.saved_healths() {
        if let Some(entry) = one.map_one(id, |view| health_entry(program, view, now)).flatten() {
            health.insert(name.to_string(), entry);
        }
    }
    Ok(ProfileValues { segments, computed, health })
}

/// A score as the 360s show it (a profile's or an account's): the score, band, context and
/// measures, the weekly history over a quarter (scored as of each week, from the records)
/// and the trend (points gained or lost over four weeks); `None` when the definition does
/// not apply.
pub(crate) fn health_entry<P: kinship_expr::ProfileView>(program: &HealthProgram, view: &P, now: i64) -> Option<Value> {
    let scored = program.score(view, now)?;
    let history: Vec<Value> = program
        .history(view, now, WEEK_MS, HISTORY_WEEKS)
        .into_iter()
        .map(|(at, then)| serde_json::json!({ "at": at, "score": then.as_ref().map(|t| t.score), "band": then.map(|t| t.band.name()) }))
        .collect();
    // The change over the last four weeks, when it was scored then.
    let month_ago = history.len().checked_sub(5).and_then(|i| history[i]["score"].as_f64());
    let mut entry = serde_json::json!(scored);
    entry["trend"] = serde_json::json!(month_ago.map(|then| scored.score - then));
    entry["history"] = Value::Array(history);
    Some(entry)
}

/// A profile's events as its records' sources map them: (event, time).
/// A profile's events as stored: (event, time, record id).
fn stored_events(store: &dyn Database, mappers: &FxHashMap<&str, Mapper<'_>>, id: &str) -> Result<Vec<(MappedEvent, i64, i64)>> {
    let mut events = Vec::new();
    for r in store.profile_records(id)? {
        if let (Some(mapper), Some(fields)) = (mappers.get(r.source.as_str()), r.payload.as_object()) {
            events.extend(record_event(mapper, &r.source, fields, r.timestamp).map(|(e, ts)| (e, ts, r.id)));
        }
    }
    Ok(events)
}

/// Events with their record ids, as [`Audience::upsert_recorded_profile`] takes them.
fn recorded(events: &[(MappedEvent, i64, i64)]) -> impl Iterator<Item = (&str, i64, &Map<String, Value>, i64)> {
    events.iter().map(|(e, ts, record)| (e.event.as_str(), *ts, &e.properties, *record))
}

/// Whether a profile has granted `purpose` now: its consent, derived from its golden traits
/// and events by the `[consent]` rules. Segment exports leave out everyone without
/// marketing consent; deliveries with a purpose check it when they are sent.
pub fn consent_granted(store: &dyn Database, config: &Config, id: &str, purpose: &kinship_policy::Purpose) -> Result<bool> {
    consent_with(store, config, &crate::mappers(config)?, id, purpose)
}

fn consent_with(
    store: &dyn Database,
    config: &Config,
    mappers: &FxHashMap<&str, Mapper<'_>>,
    id: &str,
    purpose: &kinship_policy::Purpose,
) -> Result<bool> {
    let Some(row) = store.profile(id)? else { return Ok(false) };
    let traits = golden::values(&row.traits);
    let events = stored_events(store, mappers, id)?;
    let consent =
        kinship_policy::derive_consent(&traits, events.iter().map(|(e, ts, _)| (e.event.as_str(), *ts, &e.properties)), &config.consent);
    Ok(consent.get(purpose).is_some_and(|c| c.granted))
}

/// A page of a segment's members that may receive marketing, and how many on the page were
/// left out for lack of consent (kept + withheld is the page's length).
pub fn consented_members(store: &dyn Database, config: &Config, segment: &str, offset: u64, limit: u64) -> Result<(Vec<String>, u64)> {
    let page = store.segment_members(segment, offset, limit)?;
    let mappers = crate::mappers(config)?;
    let mut kept = Vec::with_capacity(page.len());
    let mut withheld = 0;
    for id in page {
        if consent_with(store, config, &mappers, &id, &kinship_policy::Purpose::MARKETING)? {
            kept.push(id);
        } else {
            withheld += 1;
        }
    }
    Ok((kept, withheld))
}
