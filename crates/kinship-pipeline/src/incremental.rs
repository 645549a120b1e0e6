//! Real-time resolution: records appended since the last resolution are resolved against
//! the existing profiles, touching only the profiles they share identifiers with.
//!
//! The common case, a record whose identifiers all point at one profile and break no
//! guard, attaches it there: its new identifiers are added and its traits compete with the
//! held ones by the same survivorship rank as a full resolution. Anything else (a record
//! that joins two profiles, a limited kind over its limit, a person's split decision)
//! re-resolves just the profiles involved, with the same resolver as the batch, so both
//! paths agree.

use crate::fuzzy::FuzzyIndex;
use crate::golden;
use crate::governance::{SuppressionCheck, SuppressionList};
use crate::resolve::{add_search_word, profile_id_for, Collector, TraitRank};
use crate::{PipelineError, Result};
use kinship_core::{decode_identifiers, Config, Identifier, LinkConstraint, MergeEdge, ProfileIdentifier, RecordId};
use kinship_sources::Mapper;
use kinship_store::{ChangeKind, Database, Store};
use rustc_hash::{FxHashMap, FxHashSet};
use serde_json::{json, Map, Value};

/// Meta key holding the id of the newest record already resolved.
pub const RESOLVED_THROUGH: &str = "resolved_through";

#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct IncrementalReport {
    /// Records attached to an existing profile.
    pub attached: u64,
    /// Records that started a profile of their own.
    pub created: u64,
    /// Records whose arrival re-resolved the profiles they touch (merges, guards).
    pub reresolved: u64,
    /// New profiles merged into an indexed one by fuzzy matching.
    pub fuzzy_merges: u64,
    /// New records of erased people, deleted instead of resolved.
    pub erased: u64,
    /// The newest record now resolved.
    pub through: RecordId,
    /// Profiles that gained records or were rewritten, as they now exist.
    pub touched: Vec<String>,
    /// Profiles that no longer exist (merged into another).
    pub removed: Vec<String>,
}

/// Resolves up to `limit` records newer than the last resolved one, in one transaction.
/// With a fuzzy index, a record that starts a profile of its own is then matched against
/// every indexed profile and merged with the best one above the threshold.
///
/// With a suppression list, the list is read again once the resolution holds its lock, and
/// a new record of an erased person is deleted instead of resolved: on a store several
/// nodes share, a node may have accepted it just before it learnt of another node's erasure.
pub fn resolve_new_records(
    store: &mut dyn Database,
    config: &Config,
    limit: usize,
    fuzzy: Option<&mut FuzzyIndex>,
    suppression: Option<&SuppressionList>,
) -> Result<IncrementalReport> {
    // Nothing logged since the last resolution: no lock (the server asks twice a second),
    // only the suppression list's cheap version check. A record that commits meanwhile is
    // taken by the next pass.
    let through: RecordId = store.meta(RESOLVED_THROUGH)?.and_then(|v| v.parse().ok()).unwrap_or(0);
    let mut anything_new = false;
    store.scan_after(through, 1, &mut |_| anything_new = true)?;
    if !anything_new {
        if let Some(list) = suppression {
            list.refresh(&*store)?;
        }
        return Ok(IncrementalReport { through, ..Default::default() });
    }
    // The resolution's transaction starts first: on a shared store it waits for inserts in
    // flight and excludes other resolvers (and erasures), so the cursor, the records after
    // it and the suppression list agree.
    let committed_through = store.begin_resolution()?;
    let erased = match suppression.map(|list| list.refresh(&*store).map(|_| list.check())).transpose() {
        Ok(check) => check,
        Err(e) => {
            store.rollback()?;
            return Err(e);
        }
    };
    match resolve_pending(store, config, limit, committed_through, fuzzy, erased.as_ref()) {
        Ok(report) => {
            store.commit()?;
            Ok(report)
        }
        Err(e) => {
            store.rollback()?;
            Err(e)
        }
    }
}

fn resolve_pending(
    store: &mut dyn Database,
    config: &Config,
    limit: usize,
    committed_through: RecordId,
    mut fuzzy: Option<&mut FuzzyIndex>,
    erased: Option<&SuppressionCheck>,
) -> Result<IncrementalReport> {
    let through: RecordId = store.meta(RESOLVED_THROUGH)?.and_then(|v| v.parse().ok()).unwrap_or(0);
    let mut pending = Vec::new();
    let mut newest_scanned = through;
    let mut of_erased: Vec<RecordId> = Vec::new();
    store.scan_after(through, limit, &mut |r| {
        if r.id > committed_through {
            // Committed ahead of a lower id still in flight: taken next time, in order.
            return;
        }
        newest_scanned = r.id;
        if erased.is_some_and(|check| check.matches_encoded(r.identifiers)) {
            of_erased.push(r.id);
            return;
        }
        pending.push(Pending {
            id: r.id,
            source: r.source.to_string(),
            key: r.key.to_string(),
            payload: r.payload.to_string(),
            identifiers: decode_identifiers(r.identifiers).map(|(k, v)| Identifier::new(k, v)).collect(),
            timestamp: r.timestamp,
        })
    })?;
    let mut report = IncrementalReport { through, ..Default::default() };
    if !of_erased.is_empty() {
        store.erase(&[], &of_erased)?;
        report.erased = of_erased.len() as u64;
    }
    if pending.is_empty() {
        if newest_scanned > through {
            report.through = newest_scanned;
            store.set_meta(RESOLVED_THROUGH, &newest_scanned.to_string())?;
        }
        return Ok(report);
    }
    let constraints = store.constraints()?;
    let constrained: FxHashSet<(String, String)> = constraints.iter().flat_map(|c| [c.left.clone(), c.right.clone()]).collect();
    let blocked: FxHashSet<&str> = config.resolve.blocked_values.iter().map(String::as_str).collect();
    let mappers = crate::mappers(config)?;
    // Profiles records were attached to (they exist), and profiles a re-resolution touched
    // (each may have merged away).
    let mut attached_to: FxHashSet<String> = FxHashSet::default();
    let mut involved: FxHashSet<String> = FxHashSet::default();
    let mut moved: Vec<&Pending> = Vec::new();
    for record in &pending {
        let ids: Vec<&Identifier> = record.identifiers.iter().filter(|i| !blocked.contains(i.value.as_str())).collect();
        let mut profiles: Vec<String> = Vec::new();
        for id in &ids {
            for p in store.find_profiles(id.kind.as_str(), &id.value)? {
                if !profiles.contains(&p) {
                    profiles.push(p);
                }
            }
        }
        let attachable = profiles.len() == 1 && !constrained.contains(&(record.source.clone(), record.key.clone()));
        if attachable && attach(store, config, &mappers, record, &profiles[0], &ids)? {
            report.attached += 1;
            attached_to.insert(profiles[0].clone());
        } else {
            moved.push(record);
            involved.extend(profiles.iter().cloned());
            if profiles.is_empty() {
                report.created += 1
            } else {
                report.reresolved += 1
            }
            reresolve(store, config, constraints.clone(), &[record.id], &profiles, Vec::new())?;
            if let (true, Some(index)) = (profiles.is_empty(), fuzzy.as_deref_mut()) {
                if match_new_profile(store, config, &constraints, record, index)? {
                    report.fuzzy_merges += 1;
                }
            }
        }
        report.through = record.id;
    }
    for record in &moved {
        if let Some((_, profile)) = store.record_profile(&record.source, &record.key)? {
            involved.insert(profile);
        }
    }
    for id in involved.drain() {
        if store.profile(&id)?.is_some() {
            report.touched.push(id);
        } else {
            report.removed.push(id);
        }
    }
    report.touched.extend(attached_to.drain().filter(|id| !report.removed.contains(id)));
    report.touched.sort();
    report.touched.dedup();
    report.removed.sort();
    report.through = report.through.max(newest_scanned);
    store.set_meta(RESOLVED_THROUGH, &report.through.to_string())?;
    if !report.touched.is_empty() || !report.removed.is_empty() {
        store.record_change(ChangeKind::Profiles, &json!({ "touched": report.touched, "removed": report.removed }))?;
    }
    Ok(report)
}

struct Pending {
    id: RecordId,
    source: String,
    key: String,
    payload: String,
    identifiers: Vec<Identifier>,
    timestamp: Option<i64>,
}

/// Re-resolves just these profiles, after a person's split or merge decision on them: their
/// records are resolved again with every decision and the fuzzy merges they hold, and
/// only they are rewritten.
pub fn reresolve_profiles(store: &mut dyn Database, config: &Config, profiles: &[String]) -> Result<()> {
    store.begin_resolution()?;
    // Read under the resolution lock: a decision another node just stored is included.
    let constraints = match store.constraints() {
        Ok(c) => c,
        Err(e) => {
            store.rollback()?;
            return Err(e.into());
        }
    };
    let rewritten = reresolve(store, config, constraints, &[], profiles, Vec::new()).and_then(|written| {
        let removed: Vec<&String> = profiles.iter().filter(|p| !written.contains(p)).collect();
        Ok(store.record_change(ChangeKind::Profiles, &json!({ "touched": written, "removed": removed }))?)
    });
    match rewritten {
        Ok(()) => Ok(store.commit()?),
        Err(e) => {
            store.rollback()?;
            Err(e)
        }
    }
}

/// Splits the record `source:key` out of profile `id`: a cannot-link decision between it
/// and each other record of the profile is remembered, and the profile is re-resolved.
/// Returns the profile that now holds the record and the number of decisions stored.
pub fn split_record(store: &mut dyn Database, config: &Config, id: &str, source: &str, key: &str) -> Result<(String, usize)> {
    let (_, holder) =
        store.record_profile(source, key)?.ok_or_else(|| PipelineError::Config(format!("no record {source}:{key} in the log")))?;
    if holder != id {
        return Err(PipelineError::Config(format!("record {source}:{key} is in profile {holder}, not {id}")));
    }
    let others: Vec<_> = store.profile_records(id)?.into_iter().filter(|r| !(r.source == source && r.key == key)).collect();
    if others.is_empty() {
        return Err(PipelineError::Config(format!("record {source}:{key} is the only record of {id}; nothing to split")));
    }
    for other in &others {
        store.add_constraint(&LinkConstraint {
            must: false,
            left: (source.into(), key.into()),
            right: (other.source.clone(), other.key.clone()),
        })?;
    }
    reresolve_profiles(store, config, &[id.to_string()])?;
    let (_, now) = store.record_profile(source, key)?.ok_or_else(|| PipelineError::Config("the record left the log".into()))?;
    Ok((now, others.len()))
}

/// Re-resolves new records together with the records of the profiles they touch, keeping
/// the fuzzy merges those profiles hold, and any new one in `fuzzy`. Returns the profiles
/// written.
fn reresolve(
    store: &mut dyn Store,
    config: &Config,
    constraints: Vec<LinkConstraint>,
    records: &[RecordId],
    profiles: &[String],
    mut fuzzy: Vec<MergeEdge>,
) -> Result<Vec<String>> {
    for p in profiles {
        fuzzy.extend(store.profile_edges(p)?.into_iter().filter(|e| e.stage == "fuzzy"));
    }
    let mut collector = Collector::new(config, constraints)?;
    store.scan_selected(records, profiles, &mut |r| collector.add(r))?;
    collector.prepare();
    let (resolution, joins) = collector.resolve_keeping(config, &fuzzy);
    let built = collector.build(&resolution, &joins);
    let write = built.as_write();
    store.replace_profiles(profiles, &write)?;
    Ok(write.profiles.iter().map(|p| p.id.clone()).collect())
}

/// Matches the profile a record just started against the index; merges it with the best
/// match through the guard. Returns whether it merged. A profile that stays alone becomes
/// a candidate itself, so a second record of the same new person in this batch finds it.
fn match_new_profile(
    store: &mut dyn Store,
    config: &Config,
    constraints: &[LinkConstraint],
    record: &Pending,
    index: &mut FuzzyIndex,
) -> Result<bool> {
    let own = profile_id_for(&record.source, &record.key);
    let Some(row) = store.profile(&own)? else { return Ok(false) };
    let traits: Map<String, Value> = serde_json::from_str(&row.traits).map_err(kinship_store::StoreError::from)?;
    let Some((candidate, probability, weight)) = index.best_match(&traits, &own) else {
        index.upsert(&own, &row.traits)?;
        return Ok(false);
    };
    let candidate = candidate.to_string();
    // The candidate may have been merged into another profile since the index was built.
    let mut anchor = None;
    store.scan_selected(&[], std::slice::from_ref(&candidate), &mut |r| {
        anchor.get_or_insert(r.id);
    })?;
    let Some(anchor) = anchor else { return Ok(false) };
    let evidence = json!({ "probability": probability, "match_weight": weight, "matched": "in real time, against the profile index" });
    let edge = MergeEdge { left: anchor, right: record.id, stage: "fuzzy".into(), detail: evidence };
    reresolve(store, config, constraints.to_vec(), &[record.id], &[own.clone(), candidate], vec![edge])?;
    Ok(store.record_profile(&record.source, &record.key)?.is_some_and(|(_, now)| now != own))
}

/// Attaches a record to the one profile its identifiers point at, unless that would break
/// a per-kind limit; returns whether it did.
fn attach(
    store: &mut dyn Store,
    config: &Config,
    mappers: &FxHashMap<&str, Mapper<'_>>,
    record: &Pending,
    profile: &str,
    ids: &[&Identifier],
) -> Result<bool> {
    let held = store.profile_identifiers(profile)?;
    let mut values_of_kind: FxHashMap<&str, FxHashSet<&str>> = FxHashMap::default();
    for h in &held {
        values_of_kind.entry(h.kind.as_str()).or_default().insert(h.value.as_str());
    }
    for id in ids {
        values_of_kind.entry(id.kind.as_str()).or_default().insert(id.value.as_str());
    }
    if values_of_kind.iter().any(|(kind, values)| config.resolve.limit_for(kind).is_some_and(|limit| values.len() > limit as usize)) {
        return Ok(false);
    }
    let Some(mut row) = store.profile(profile)? else { return Ok(false) };
    let new_ids: Vec<ProfileIdentifier> = {
        let mut seen = FxHashSet::default();
        ids.iter()
            .filter(|id| !held.iter().any(|h| h.kind == id.kind.as_str() && h.value == id.value && h.source == record.source))
            .filter(|id| seen.insert((id.kind.as_str(), id.value.as_str())))
            .map(|id| ProfileIdentifier { kind: id.kind.to_string(), value: id.value.clone(), source: record.source.clone() })
            .collect()
    };
    for id in &new_ids {
        add_search_word(&mut row.search_text, &id.value);
    }
    if let (Some(source), Some(mapper)) = (config.sources.get(&record.source), mappers.get(record.source.as_str())) {
        if let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(&record.payload) {
            let mut traits: Map<String, Value> = serde_json::from_str(&row.traits).map_err(kinship_store::StoreError::from)?;
            let rank = TraitRank { priority: source.priority, timestamp: record.timestamp.unwrap_or(i64::MIN), record: record.id };
            for (name, value) in mapper.traits(&fields) {
                let wins = traits.get(name.as_ref()).and_then(|e| TraitRank::of_entry(e, config)).is_none_or(|held| rank.beats(&held));
                if wins {
                    if let Value::String(s) = &value {
                        add_search_word(&mut row.search_text, &kinship_normalize::fold(s));
                    }
                    traits.insert(name.into_owned(), golden::entry(&value, &record.source, rank.record, rank.timestamp));
                }
            }
            row.traits = Value::Object(traits).to_string();
        }
    }
    row.record_count += 1;
    store.attach_record(&row, record.id, &new_ids)?;
    Ok(true)
}
