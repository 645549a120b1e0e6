use crate::{PipelineError, Progress, Result};
use kinship_core::{decode_identifiers, Config, Identifier, MergeEdge, ProfileIdentifier, ProfileRow, RecordId};
use kinship_resolve::{Constraints, InputRecord, Reason};
use kinship_sources::Mapper;
use kinship_store::{ResolutionWrite, Store};
use rustc_hash::{FxHashMap, FxHashSet};
use serde_json::{json, Map, Value};

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ResolveReport {
    pub records: u64,
    pub profiles: u64,
    pub multi_record_profiles: u64,
    /// Joins made: one per pair of groups merged.
    pub merges: u64,
    /// Identifiers that would have broken a guard and so joined nothing.
    pub contested: u64,
    /// Identifier occurrences ignored because their value is blocked.
    pub blocked: u64,
    pub seconds: f64,
}

/// A profile's id: a hash of the source and key of its oldest record, so it stays the same
/// across re-resolution while that record stays in it, on any backend.
pub fn profile_id_for(source: &str, key: &str) -> String {
    let mut h = blake3::Hasher::new();
    h.update(source.as_bytes());
    h.update(&[0]);
    h.update(key.as_bytes());
    format!("p_{}", &h.finalize().to_hex()[..16])
}

/// What resolution keeps of each record while it runs.
struct RecordFacts {
    id: RecordId,
    source: u16,
    timestamp: Option<i64>,
    profile_id_seed: String,
    traits: Vec<(u16, Value)>,
}

/// Re-resolves the whole log into profiles and replaces the derived tables in one
/// transaction.
pub fn resolve_all(store: &mut dyn Store, config: &Config, progress: Progress<'_>) -> Result<ResolveReport> {
    let started = std::time::Instant::now();
    let total = store.stats()?.records;
    let mut mappers: FxHashMap<&str, (Mapper<'_>, i32)> = FxHashMap::default();
    for (name, s) in &config.sources {
        mappers.insert(name, (Mapper::new(s, &config.resolve).map_err(PipelineError::Config)?, s.priority));
    }
    let constraint_list = store.constraints()?;
    let wanted: FxHashSet<(String, String)> = constraint_list.iter().flat_map(|c| [c.left.clone(), c.right.clone()]).collect();
    let mut record_of_key: FxHashMap<(String, String), RecordId> = FxHashMap::default();

    let mut sources: Vec<String> = Vec::new();
    let mut trait_names: Vec<String> = Vec::new();
    let mut inputs: Vec<InputRecord> = Vec::with_capacity(total as usize);
    let mut facts: Vec<RecordFacts> = Vec::with_capacity(total as usize);
    store.scan_records(&mut |r| {
        let source = match sources.iter().position(|s| s == r.source) {
            Some(i) => i as u16,
            None => {
                sources.push(r.source.to_string());
                (sources.len() - 1) as u16
            }
        };
        let mut traits = Vec::new();
        if let Some((mapper, _)) = mappers.get(r.source) {
            if let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(r.payload) {
                for (name, value) in mapper.traits(&fields) {
                    let idx = match trait_names.iter().position(|t| t == name) {
                        Some(i) => i,
                        None => {
                            trait_names.push(name.to_string());
                            trait_names.len() - 1
                        }
                    };
                    traits.push((idx as u16, value));
                }
            }
        }
        if !wanted.is_empty() {
            let k = (r.source.to_string(), r.key.to_string());
            if wanted.contains(&k) {
                record_of_key.insert(k, r.id);
            }
        }
        inputs.push(InputRecord { id: r.id, identifiers: decode_identifiers(r.identifiers).map(|(k, v)| Identifier::new(k, v)).collect() });
        facts.push(RecordFacts { id: r.id, source, timestamp: r.timestamp, profile_id_seed: profile_id_for(r.source, r.key), traits });
        if facts.len() % 50_000 == 0 {
            progress(facts.len() as u64, total);
        }
    })?;
    progress(facts.len() as u64, total);

    let mut constraints = Constraints::default();
    for c in &constraint_list {
        if let (Some(&l), Some(&r)) = (record_of_key.get(&c.left), record_of_key.get(&c.right)) {
            if c.must { constraints.must_link.push((l, r)) } else { constraints.cannot_link.push((l, r)) }
        }
    }
    let resolution = kinship_resolve::resolve(&inputs, &config.resolve, &constraints);

    // Members of each cluster, in record order, so the first is the oldest.
    let n = resolution.cluster_count as usize;
    let mut members: Vec<Vec<u32>> = vec![Vec::new(); n];
    for (i, &c) in resolution.cluster.iter().enumerate() {
        members[c as usize].push(i as u32);
    }
    let source_priority: Vec<i32> = sources.iter().map(|s| mappers.get(s.as_str()).map_or(i32::MAX, |m| m.1)).collect();

    let mut profiles = Vec::with_capacity(n);
    let mut identifiers = Vec::new();
    for (p, records) in members.iter().enumerate() {
        let first = &facts[records[0] as usize];
        let (traits, search_words) = survivorship(records, &facts, &trait_names, &sources, &source_priority);
        let mut seen: FxHashSet<(&str, &str, u16)> = FxHashSet::default();
        let mut search_text = search_words;
        for &i in records {
            for id in &inputs[i as usize].identifiers {
                if seen.insert((id.kind.as_str(), id.value.as_str(), facts[i as usize].source)) {
                    identifiers.push((p as u32, ProfileIdentifier { kind: id.kind.to_string(), value: id.value.clone(), source: sources[facts[i as usize].source as usize].clone() }));
                    if !search_text.contains(id.value.as_str()) {
                        search_text.push(' ');
                        search_text.push_str(&id.value);
                    }
                }
            }
        }
        profiles.push(ProfileRow { id: first.profile_id_seed.clone(), traits: Value::Object(traits).to_string(), search_text, record_count: records.len() as i64 });
    }
    let assignments: Vec<(RecordId, u32)> = facts.iter().zip(&resolution.cluster).map(|(f, &c)| (f.id, c)).collect();
    let edges: Vec<(u32, MergeEdge)> = resolution
        .edges
        .iter()
        .map(|e| {
            let (stage, detail) = match &e.reason {
                Reason::Identifier(id) => ("exact", json!({ "kind": id.kind.as_str(), "value": id.value })),
                Reason::MustLink => ("must_link", json!({})),
            };
            (resolution.cluster[e.left], MergeEdge { left: facts[e.left].id, right: facts[e.right].id, stage: stage.into(), detail })
        })
        .collect();
    store.replace_resolution(&ResolutionWrite { profiles: &profiles, assignments: &assignments, identifiers: &identifiers, edges: &edges })?;

    Ok(ResolveReport {
        records: facts.len() as u64,
        profiles: n as u64,
        multi_record_profiles: members.iter().filter(|m| m.len() > 1).count() as u64,
        merges: resolution.edges.len() as u64,
        contested: resolution.contested.len() as u64,
        blocked: resolution.blocked,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Golden-record traits: for each trait, the value from the source with the best (lowest)
/// priority, then the most recent record. Each value keeps where it came from. Also returns
/// the folded trait text for search.
fn survivorship(records: &[u32], facts: &[RecordFacts], trait_names: &[String], sources: &[String], source_priority: &[i32]) -> (Map<String, Value>, String) {
    let mut best: FxHashMap<u16, (usize, &Value)> = FxHashMap::default();
    let rank = |i: usize| {
        let f = &facts[i];
        (source_priority[f.source as usize], std::cmp::Reverse(f.timestamp.unwrap_or(i64::MIN)), std::cmp::Reverse(f.id))
    };
    for &i in records {
        let i = i as usize;
        for (t, v) in &facts[i].traits {
            match best.get(t) {
                Some(&(held, _)) if rank(held) <= rank(i) => {}
                _ => {
                    best.insert(*t, (i, v));
                }
            }
        }
    }
    let mut chosen: Vec<(u16, (usize, &Value))> = best.into_iter().collect();
    chosen.sort_by_key(|(t, _)| &trait_names[*t as usize]);
    let mut traits = Map::new();
    let mut search = String::new();
    for (t, (i, v)) in chosen {
        let f = &facts[i];
        traits.insert(trait_names[t as usize].clone(), json!({ "value": v, "source": sources[f.source as usize], "record": f.id }));
        if let Value::String(s) = v {
            if !search.is_empty() {
                search.push(' ');
            }
            search.push_str(&kinship_normalize::fold(s));
        }
    }
    (traits, search)
}
