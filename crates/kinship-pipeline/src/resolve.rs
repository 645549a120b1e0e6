use crate::fuzzy::FuzzyJoin;
use crate::{golden, PipelineError, Progress, Result};
use kinship_core::{decode_identifiers, Config, Identifier, LinkConstraint, MergeEdge, ProfileIdentifier, ProfileRow, RecordId};
use kinship_resolve::{Constraints, InputRecord, Reason, Resolution};
use kinship_sources::Mapper;
use kinship_store::{BuiltProfile, FullResolution, RecordView, ResolutionWrite, Store};
use rayon::prelude::*;
use rustc_hash::{FxHashMap, FxHashSet};
use serde_json::{json, Map, Value};

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ResolveReport {
    pub records: u64,
    pub profiles: u64,
    pub multi_record_profiles: u64,
    /// Joins made: one per pair of groups merged.
    pub merges: u64,
    /// Of those, joins made by the fuzzy stage.
    pub fuzzy_merges: u64,
    /// Identifiers that would have broken a guard and so joined nothing.
    pub contested: u64,
    /// Identifier occurrences ignored because their value is blocked.
    pub blocked: u64,
    pub seconds: f64,
    /// Seconds spent reading the log, clustering, building profiles and writing them.
    pub phases: Vec<(&'static str, f64)>,
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
    key: Box<str>,
    timestamp: Option<i64>,
    traits: Vec<(u16, Value)>,
}

/// A record's resolution input, its facts, and its traits with names not yet interned.
type ParsedRecord = (InputRecord, RecordFacts, Vec<(String, Value)>);

/// A record as read, before its payload is parsed (which runs in parallel).
struct RawRecord {
    id: RecordId,
    source: u16,
    key: Box<str>,
    payload: String,
    identifiers: String,
    timestamp: Option<i64>,
}

/// Gathers, record by record, what resolution and survivorship need, interning source and
/// trait names.
pub(crate) struct Collector<'c> {
    mappers: FxHashMap<&'c str, Mapper<'c>>,
    config: &'c Config,
    wanted: FxHashSet<(String, String)>,
    record_of_key: FxHashMap<(String, String), RecordId>,
    constraints: Vec<LinkConstraint>,
    sources: Vec<String>,
    trait_names: Vec<String>,
    raw: Vec<RawRecord>,
    inputs: Vec<InputRecord>,
    facts: Vec<RecordFacts>,
}

impl<'c> Collector<'c> {
    pub(crate) fn new(config: &'c Config, constraints: Vec<LinkConstraint>) -> Result<Self> {
        Ok(Self {
            mappers: crate::mappers(config)?,
            config,
            wanted: constraints.iter().flat_map(|c| [c.left.clone(), c.right.clone()]).collect(),
            record_of_key: FxHashMap::default(),
            constraints,
            sources: Vec::new(),
            trait_names: Vec::new(),
            raw: Vec::new(),
            inputs: Vec::new(),
            facts: Vec::new(),
        })
    }

    pub(crate) fn add(&mut self, r: RecordView<'_>) {
        let source = intern(&mut self.sources, r.source);
        if !self.wanted.is_empty() {
            let k = (r.source.to_string(), r.key.to_string());
            if self.wanted.contains(&k) {
                self.record_of_key.insert(k, r.id);
            }
        }
        self.raw.push(RawRecord {
            id: r.id,
            source,
            key: r.key.into(),
            payload: r.payload.to_string(),
            identifiers: r.identifiers.to_string(),
            timestamp: r.timestamp,
        });
    }

    /// Parses what was added: identifiers, and traits through each source's mapping.
    pub(crate) fn prepare(&mut self) {
        let raw = std::mem::take(&mut self.raw);
        let parsed = parse_records(raw, &self.mappers, &self.sources);
        self.absorb(parsed);
    }

    /// Reads the whole log, parsing each chunk on the thread pool while the next is read.
    fn read_all(&mut self, store: &dyn Store, progress: Progress<'_>) -> Result<()> {
        const CHUNK: usize = 65_536;
        let total = store.stats()?.records;
        let config = self.config;
        let (chunks, received) = std::sync::mpsc::sync_channel::<(Vec<RawRecord>, Vec<String>)>(2);
        std::thread::scope(|scope| {
            let parser = scope.spawn(move || -> Result<Vec<Vec<ParsedRecord>>> {
                let mappers = crate::mappers(config)?;
                Ok(received.into_iter().map(|(raw, sources)| parse_records(raw, &mappers, &sources)).collect())
            });
            let mut read = 0u64;
            let scanned = store.scan_records(&mut |r| {
                self.add(r);
                read += 1;
                if self.raw.len() == CHUNK {
                    progress(read, total);
                    // A send fails only when the parser stopped, and its error is returned below.
                    let _ = chunks.send((std::mem::take(&mut self.raw), self.sources.clone()));
                }
            });
            let _ = chunks.send((std::mem::take(&mut self.raw), self.sources.clone()));
            drop(chunks);
            let parsed = parser.join().map_err(|_| PipelineError::Config("parsing records panicked".into()))??;
            scanned?;
            progress(read, total);
            for chunk in parsed {
                self.absorb(chunk);
            }
            Ok(())
        })
    }

    /// Takes parsed records in, in order, interning their trait names.
    fn absorb(&mut self, parsed: Vec<ParsedRecord>) {
        self.inputs.reserve(parsed.len());
        self.facts.reserve(parsed.len());
        for (input, mut facts, traits) in parsed {
            facts.traits = traits.into_iter().map(|(name, v)| (intern(&mut self.trait_names, &name), v)).collect();
            self.inputs.push(input);
            self.facts.push(facts);
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.facts.len() + self.raw.len()
    }

    pub(crate) fn resolve(&self, config: &Config) -> Resolution {
        let mut constraints = Constraints::default();
        for c in &self.constraints {
            if let (Some(&l), Some(&r)) = (self.record_of_key.get(&c.left), self.record_of_key.get(&c.right)) {
                if c.must {
                    constraints.must_link.push((l, r))
                } else {
                    constraints.cannot_link.push((l, r))
                }
            }
        }
        kinship_resolve::resolve(&self.inputs, &config.resolve, &constraints)
    }

    /// Runs the exact stage, then the fuzzy stage when `[fuzzy]` is configured (returning
    /// the model it trained).
    pub(crate) fn resolve_all_stages(&self, config: &Config) -> Result<(Resolution, Vec<FuzzyJoin>, Option<kinship_match::Model>)> {
        let mut resolution = self.resolve(config);
        let Some(table) = &config.fuzzy else { return Ok((resolution, Vec::new(), None)) };
        let match_config = crate::fuzzy::parse_config(table)?;
        let members = members_of(&resolution);
        let source_priority = self.source_priority();
        let golden: Vec<Map<String, Value>> = members
            .par_iter()
            .map(|records| survivorship(records, &self.facts, &self.trait_names, &self.sources, &source_priority).0)
            .collect();
        let representative: Vec<usize> = members.iter().map(|m| m[0] as usize).collect();
        let (joins, model) = crate::fuzzy::merge_similar(&mut resolution, &match_config, &config.resolve, &golden, &representative)?;
        // An identifier two now-joined profiles held no longer divides them.
        if resolution.retry_contested() > 0 {
            resolution.relabel();
        }
        Ok((resolution, joins, Some(model)))
    }

    /// The exact stage, then earlier fuzzy merges replayed through the guard: for
    /// re-resolving a few profiles in real time, where the fuzzy model (trained on all
    /// profiles) cannot be retrained on a handful of rows. A merge a new split forbids is
    /// refused by the guard like any other.
    pub(crate) fn resolve_keeping(&self, config: &Config, fuzzy: &[MergeEdge]) -> (Resolution, Vec<FuzzyJoin>) {
        let mut resolution = self.resolve(config);
        let index_of: FxHashMap<RecordId, usize> = self.facts.iter().enumerate().map(|(i, f)| (f.id, i)).collect();
        // a merge that overrode a per-kind limit in the full resolution does so again
        let override_weight = config
            .fuzzy
            .as_ref()
            .and_then(|table| crate::fuzzy::parse_config(table).ok())
            .map_or(f64::INFINITY, |c| kinship_match::model::weight_from_probability(c.override_limits_at));
        let mut joins = Vec::new();
        for edge in fuzzy {
            if let (Some(&left), Some(&right)) = (index_of.get(&edge.left), index_of.get(&edge.right)) {
                let joined = match resolution.guard.try_merge(left as u32, right as u32) {
                    Ok(joined) => joined,
                    Err(kinship_resolve::Refusal::Limit { kind, .. })
                        if !config.resolve.unique.contains(&kind)
                            && edge.detail["match_weight"].as_f64().is_some_and(|w| w >= override_weight) =>
                    {
                        resolution.guard.force_merge(left, right)
                    }
                    Err(_) => false,
                };
                if joined {
                    joins.push(FuzzyJoin { left, right, evidence: edge.detail.clone() });
                }
            }
        }
        if !joins.is_empty() {
            resolution.retry_contested();
        }
        resolution.relabel();
        (resolution, joins)
    }

    fn source_priority(&self) -> Vec<i32> {
        self.sources.iter().map(|s| self.config.sources.get(s).map_or(i32::MAX, |c| c.priority)).collect()
    }

    /// Profiles, assignments, identifiers and evidence of a resolution, ready to write.
    pub(crate) fn build(&self, resolution: &Resolution, fuzzy: &[FuzzyJoin]) -> Built {
        let members = members_of(resolution);
        let source_priority = self.source_priority();
        let built: Vec<BuiltProfile> = members.par_iter().map(|records| self.build_profile(records, &source_priority)).collect();
        let mut profiles = Vec::with_capacity(built.len());
        let mut identifiers = Vec::new();
        for (p, b) in built.into_iter().enumerate() {
            profiles.push(b.row);
            identifiers.extend(b.identifiers.into_iter().map(|id| (p as u32, id)));
        }
        let assignments = self.facts.iter().zip(&resolution.cluster).map(|(f, &c)| (f.id, c)).collect();
        Built { profiles, assignments, identifiers, edges: self.edges(resolution, fuzzy) }
    }

    /// The id a cluster's profile takes: named after its oldest record, so it stays put
    /// while records join it.
    fn profile_id(&self, records: &[u32]) -> String {
        let first = &self.facts[records[0] as usize];
        profile_id_for(&self.sources[first.source as usize], &first.key)
    }

    /// One profile: golden traits by survivorship, and every identifier with its source.
    fn build_profile(&self, records: &[u32], source_priority: &[i32]) -> BuiltProfile {
        let (traits, mut search_text) = survivorship(records, &self.facts, &self.trait_names, &self.sources, source_priority);
        let mut seen: FxHashSet<(&str, &str, u16)> = FxHashSet::default();
        let mut identifiers = Vec::new();
        for &i in records {
            let source = self.facts[i as usize].source;
            for id in &self.inputs[i as usize].identifiers {
                if seen.insert((id.kind.as_str(), id.value.as_str(), source)) {
                    add_search_word(&mut search_text, &id.value);
                    identifiers.push(ProfileIdentifier {
                        kind: id.kind.to_string(),
                        value: id.value.clone(),
                        source: self.sources[source as usize].clone(),
                    });
                }
            }
        }
        let row = ProfileRow {
            id: self.profile_id(records),
            traits: Value::Object(traits).to_string(),
            search_text,
            record_count: records.len() as i64,
        };
        BuiltProfile { row, records: records.iter().map(|&i| self.facts[i as usize].id).collect(), identifiers }
    }

    /// The evidence kept for joins: a person's decisions and fuzzy matches. Joins by shared
    /// identifiers are not stored: `explain` derives them again from the profile's records.
    fn edges(&self, resolution: &Resolution, fuzzy: &[FuzzyJoin]) -> Vec<(u32, MergeEdge)> {
        resolution
            .edges
            .iter()
            .filter(|e| e.reason == Reason::MustLink)
            .map(|e| {
                let edge =
                    MergeEdge { left: self.facts[e.left].id, right: self.facts[e.right].id, stage: "must_link".into(), detail: json!({}) };
                (resolution.cluster[e.left], edge)
            })
            .chain(fuzzy.iter().map(|j| {
                let edge = MergeEdge {
                    left: self.facts[j.left].id,
                    right: self.facts[j.right].id,
                    stage: "fuzzy".into(),
                    detail: j.evidence.clone(),
                };
                (resolution.cluster[j.left], edge)
            }))
            .collect()
    }

    /// Builds every profile in id order, in batches, on the thread pool, and writes them as
    /// they come: the store writes one batch while the next is built. Returns how many
    /// profiles have more than one record.
    fn build_and_write(&self, store: &mut dyn Store, resolution: &Resolution, fuzzy: &[FuzzyJoin]) -> Result<u64> {
        const BATCH: usize = 16_384;
        let members = members_of(resolution);
        let ids: Vec<String> = members.par_iter().map(|m| self.profile_id(m)).collect();
        let mut order: Vec<u32> = (0..members.len() as u32).collect();
        order.par_sort_unstable_by(|a, b| ids[*a as usize].cmp(&ids[*b as usize]));
        let source_priority = self.source_priority();
        let (batches, received) = std::sync::mpsc::sync_channel::<Vec<BuiltProfile>>(2);
        std::thread::scope(|scope| {
            scope.spawn(|| {
                for chunk in order.chunks(BATCH) {
                    let batch = chunk.par_iter().map(|&c| self.build_profile(&members[c as usize], &source_priority)).collect();
                    if batches.send(batch).is_err() {
                        break; // the writer failed; its error is returned below
                    }
                }
                drop(batches);
            });
            let edges = self.edges(resolution, fuzzy);
            let full = FullResolution { ids: &ids, profiles: &mut received.into_iter(), edges: &edges };
            store.replace_resolution(full)?;
            Ok(members.iter().filter(|m| m.len() > 1).count() as u64)
        })
    }
}

pub(crate) struct Built {
    pub profiles: Vec<ProfileRow>,
    pub assignments: Vec<(RecordId, u32)>,
    pub identifiers: Vec<(u32, ProfileIdentifier)>,
    pub edges: Vec<(u32, MergeEdge)>,
}

impl Built {
    pub(crate) fn as_write(&self) -> ResolutionWrite<'_> {
        ResolutionWrite { profiles: &self.profiles, assignments: &self.assignments, identifiers: &self.identifiers, edges: &self.edges }
    }
}

/// Parses raw records on the thread pool: identifiers, and traits through each source's
/// mapping (`sources` names each record's source index).
fn parse_records(raw: Vec<RawRecord>, mappers: &FxHashMap<&str, Mapper<'_>>, sources: &[String]) -> Vec<ParsedRecord> {
    raw.into_par_iter()
        .map(|r| {
            let mut traits = Vec::new();
            if let Some(mapper) = mappers.get(sources[r.source as usize].as_str()) {
                if let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(&r.payload) {
                    traits = mapper.traits(&fields).into_iter().map(|(name, v)| (name.into_owned(), v)).collect();
                }
            }
            let input =
                InputRecord { id: r.id, identifiers: decode_identifiers(&r.identifiers).map(|(k, v)| Identifier::new(k, v)).collect() };
            let facts = RecordFacts { id: r.id, source: r.source, key: r.key, timestamp: r.timestamp, traits: Vec::new() };
            (input, facts, traits)
        })
        .collect()
}

/// Members of each cluster, in record order, so the first is the oldest.
fn members_of(resolution: &Resolution) -> Vec<Vec<u32>> {
    let mut members: Vec<Vec<u32>> = vec![Vec::new(); resolution.cluster_count as usize];
    for (i, &c) in resolution.cluster.iter().enumerate() {
        members[c as usize].push(i as u32);
    }
    members
}

fn intern(names: &mut Vec<String>, name: &str) -> u16 {
    match names.iter().position(|n| n == name) {
        Some(i) => i as u16,
        None => {
            names.push(name.to_string());
            (names.len() - 1) as u16
        }
    }
}

pub(crate) fn add_search_word(text: &mut String, word: &str) {
    if !text.contains(word) {
        if !text.is_empty() {
            text.push(' ');
        }
        text.push_str(word);
    }
}

/// Re-resolves the whole log into profiles and replaces the derived tables in one
/// transaction.
pub fn resolve_all(store: &mut dyn Store, config: &Config, progress: Progress<'_>) -> Result<ResolveReport> {
    store.lock_for_rebuild()?;
    let report = rebuild(store, config, progress);
    store.unlock_after_rebuild()?;
    report
}

fn rebuild(store: &mut dyn Store, config: &Config, progress: Progress<'_>) -> Result<ResolveReport> {
    let started = std::time::Instant::now();
    let mut collector = Collector::new(config, store.constraints()?)?;
    collector.read_all(store, progress)?;
    let mut phases = Vec::new();
    let mut lap = started;
    let mut phase = |name| {
        phases.push((name, lap.elapsed().as_secs_f64()));
        lap = std::time::Instant::now();
    };
    phase("read");
    let (resolution, fuzzy, model) = collector.resolve_all_stages(config)?;
    phase("cluster");
    // The profiles and the position real-time resolution continues from are one commit: a
    // crash between them would have it resolve records the rebuild already placed.
    let newest = collector.facts.iter().map(|f| f.id).max().unwrap_or(0);
    store.begin()?;
    let written = (|| -> Result<u64> {
        let multi_record_profiles = collector.build_and_write(store, &resolution, &fuzzy)?;
        if let Some(model) = &model {
            store.set_meta(crate::fuzzy::FUZZY_MODEL, &serde_json::to_string(model).map_err(kinship_store::StoreError::from)?)?;
        }
        store.set_meta(crate::RESOLVED_THROUGH, &newest.to_string())?;
        Ok(multi_record_profiles)
    })();
    let multi_record_profiles = match written {
        Ok(n) => {
            store.commit()?;
            n
        }
        Err(e) => {
            store.rollback()?;
            return Err(e);
        }
    };
    phase("build and write");
    Ok(ResolveReport {
        records: collector.len() as u64,
        profiles: u64::from(resolution.cluster_count),
        multi_record_profiles,
        merges: (resolution.edges.len() + fuzzy.len()) as u64,
        fuzzy_merges: fuzzy.len() as u64,
        contested: resolution.contested.len() as u64,
        blocked: resolution.blocked,
        seconds: started.elapsed().as_secs_f64(),
        phases,
    })
}

/// Golden-record traits: for each trait, the value from the source with the best (lowest)
/// priority, then the most recent record. Each value keeps where it came from and the rank
/// it won by, so a later record can be compared without the others. Also returns the
/// folded trait text for search.
fn survivorship(
    records: &[u32],
    facts: &[RecordFacts],
    trait_names: &[String],
    sources: &[String],
    source_priority: &[i32],
) -> (Map<String, Value>, String) {
    let mut best: FxHashMap<u16, (usize, &Value)> = FxHashMap::default();
    let rank = |i: usize| {
        let f = &facts[i];
        TraitRank { priority: source_priority[f.source as usize], timestamp: f.timestamp.unwrap_or(i64::MIN), record: f.id }
    };
    for &i in records {
        let i = i as usize;
        for (t, v) in &facts[i].traits {
            match best.get(t) {
                Some(&(held, _)) if !rank(i).beats(&rank(held)) => {}
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
        let r = rank(i);
        traits.insert(trait_names[t as usize].clone(), golden::entry(v, &sources[facts[i].source as usize], r.record, r.timestamp));
        if let Value::String(s) = v {
            add_search_word(&mut search, &kinship_normalize::fold(s));
        }
    }
    (traits, search)
}

/// How a trait value ranks in survivorship: lower source priority, then newer, then the
/// later record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TraitRank {
    pub priority: i32,
    pub timestamp: i64,
    pub record: RecordId,
}

impl TraitRank {
    pub(crate) fn beats(&self, other: &TraitRank) -> bool {
        (self.priority, std::cmp::Reverse(self.timestamp), std::cmp::Reverse(self.record))
            < (other.priority, std::cmp::Reverse(other.timestamp), std::cmp::Reverse(other.record))
    }

    /// The rank of a stored golden trait, its source's priority taken from `config`.
    pub(crate) fn of_entry(entry: &Value, config: &Config) -> Option<TraitRank> {
        let priority = config.sources.get(golden::source(entry)?).map_or(i32::MAX, |s| s.priority);
        Some(TraitRank { priority, timestamp: golden::timestamp(entry)?, record: golden::record(entry)? })
    }
}
