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
use kinship_core::{decode_identifiers, Config, Identifier, LinkConstraint, MergeEdge, ProfileIdentifier, ProfileRow, RecordId};
use kinship_sources::Mapper;
use kinship_store::{Attachment, ChangeKind, Database, PartitionTurn, Store};
use rustc_hash::{FxHashMap, FxHashSet};
use serde_json::{json, Map, Value};

pub use kinship_store::RESOLVED_THROUGH;

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

/// Resolves up to `limit` records newer than the last resolved one: in one transaction, or
/// on a store whose resolvers take parts of the identity graph at once, in one transaction
/// per turn ([`PartitionTurn`]); the report covers every turn that committed. With a fuzzy
/// index, a record that starts a profile of its own is then matched against
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
    // Nothing logged since the last resolution: no lock (the server asks five times a second),
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
    // Resolvers on several nodes take parts of the identity graph at once. Fuzzy matching
    // may join a new profile to any other, so with a fuzzy index every resolution takes
    // the whole log.
    if fuzzy.is_none() && store.partitioned() {
        return resolve_parts(store, config, limit, through, suppression);
    }
    resolve_whole(store, config, limit, fuzzy, suppression)
}

/// One resolution of the whole log after the resolved position.
fn resolve_whole(
    store: &mut dyn Database,
    config: &Config,
    limit: usize,
    fuzzy: Option<&mut FuzzyIndex>,
    suppression: Option<&SuppressionList>,
) -> Result<IncrementalReport> {
    // The resolution's transaction starts first: on a shared store it waits for inserts in
    // flight and excludes other resolvers (and erasures), so the cursor, the records after
    // it and the suppression list agree.
    let committed_through = store.begin_resolution()?;
    resolve_in_transaction(store, config, limit, committed_through, fuzzy, suppression, Scope::Whole)
}

/// Resolutions of parts of the identity graph, one transaction each, while parts have
/// records waiting that no other resolver holds, up to `limit` records in all; then the
/// whole log's, if a record joining parts comes next.
fn resolve_parts(
    store: &mut dyn Database,
    config: &Config,
    limit: usize,
    through: RecordId,
    suppression: Option<&SuppressionList>,
) -> Result<IncrementalReport> {
    let mut all = IncrementalReport { through, ..Default::default() };
    let taken = |r: &IncrementalReport| r.attached + r.created + r.reresolved + r.erased;
    while (taken(&all) as usize) < limit {
        let left = limit - taken(&all) as usize;
        let pass = match store.partition_turn(next_start())? {
            PartitionTurn::Parts { parts, after, through: bound, committed, alone } => {
                let scope = Scope::Parts { parts: &parts, after: &after, through: bound, lock: !alone };
                match resolve_in_transaction(store, config, left, committed, None, suppression, scope) {
                    Ok(pass) => pass,
                    // Another part's resolver held a profile this batch needed while waiting
                    // for one this batch held: the database undid this batch; a later pass
                    // takes it again.
                    Err(PipelineError::Store(e)) if e.is_deadlock() => break,
                    // What earlier turns committed is reported (the caller applies it to its
                    // copies); the failure comes back at the next call.
                    Err(_) if taken(&all) > 0 => break,
                    Err(e) => return Err(e),
                }
            }
            PartitionTurn::Whole => match resolve_whole(store, config, left, None, suppression) {
                Ok(pass) => pass,
                Err(_) if taken(&all) > 0 => break,
                Err(e) => return Err(e),
            },
            PartitionTurn::Busy => break,
            PartitionTurn::CaughtUp { through } => {
                all.through = all.through.max(through);
                break;
            }
        };
        // A resolution of the whole log may only move the resolved position past records that
        // parts took already: that is progress too.
        let progressed = taken(&pass) > 0 || pass.through > all.through;
        all.absorb(pass);
        if !progressed {
            break;
        }
    }
    Ok(all)
}

impl IncrementalReport {
    /// Adds a later resolution's report to this one.
    fn absorb(&mut self, later: IncrementalReport) {
        self.attached += later.attached;
        self.created += later.created;
        self.reresolved += later.reresolved;
        self.fuzzy_merges += later.fuzzy_merges;
        self.erased += later.erased;
        self.through = self.through.max(later.through);
        // A profile touched, then merged away, is removed; one removed, then written
        // again, is touched.
        self.touched.retain(|p| !later.removed.contains(p));
        self.removed.retain(|p| !later.touched.contains(p));
        self.touched.extend(later.touched);
        self.removed.extend(later.removed);
        self.touched.sort();
        self.touched.dedup();
        self.removed.sort();
        self.removed.dedup();
    }
}

/// Where a resolver starts looking for a part with records waiting: each pass of a process
/// the next part, so that resolvers on several nodes spread over the parts.
fn next_start() -> usize {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed).wrapping_add(std::process::id() as usize)
}

/// Which records one resolution takes.
#[derive(Debug, Clone, Copy)]
enum Scope<'a> {
    /// Every record after the resolved position, in log order.
    Whole,
    /// Some parts' records, each after its part's position and up to `through`
    /// ([`PartitionTurn::Parts`]); with `lock`, beside resolvers of other parts.
    Parts { parts: &'a [i16], after: &'a [RecordId], through: RecordId, lock: bool },
}

/// Resolves within the transaction the caller began, and ends it.
fn resolve_in_transaction(
    store: &mut dyn Database,
    config: &Config,
    limit: usize,
    committed_through: RecordId,
    fuzzy: Option<&mut FuzzyIndex>,
    suppression: Option<&SuppressionList>,
    scope: Scope<'_>,
) -> Result<IncrementalReport> {
    let erased = match suppression.map(|list| list.refresh(&*store).map(|_| list.check())).transpose() {
        Ok(check) => check,
        Err(e) => {
            store.rollback()?;
            return Err(e);
        }
    };
    match resolve_pending(store, config, limit, committed_through, fuzzy, erased.as_ref(), scope) {
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
    scope: Scope<'_>,
) -> Result<IncrementalReport> {
    let through: RecordId = match scope {
        Scope::Whole => store.meta(RESOLVED_THROUGH)?.and_then(|v| v.parse().ok()).unwrap_or(0),
        Scope::Parts { after, .. } => after.iter().copied().min().unwrap_or(0),
    };
    let mut pending = Vec::new();
    let mut newest_scanned = through;
    let mut scanned = 0;
    let mut of_erased: Vec<RecordId> = Vec::new();
    let mut visit = |r: kinship_store::RecordView<'_>| {
        scanned += 1;
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
    };
    match scope {
        Scope::Whole => store.scan_after(through, limit, &mut visit)?,
        Scope::Parts { parts, after, through, .. } => store.scan_partitions(parts, after, through, limit, &mut visit)?,
    }
    // How far this resolution takes its records: the parts' first `limit` records in id
    // order are every one of theirs up to the newest taken, and all up to `through` if
    // fewer were waiting.
    let done_through = match scope {
        Scope::Parts { through, .. } if scanned < limit => through.max(newest_scanned),
        _ => newest_scanned,
    };
    if matches!(scope, Scope::Whole) && store.partitioned() {
        // Resolvers of parts may have taken records beyond the resolved position already.
        let ids: Vec<RecordId> = pending.iter().map(|p| p.id).chain(of_erased.iter().copied()).collect();
        let resolved: FxHashSet<RecordId> = store.profiles_of(&ids)?.into_iter().map(|(record, _)| record).collect();
        if !resolved.is_empty() {
            pending.retain(|p| !resolved.contains(&p.id));
            of_erased.retain(|id| !resolved.contains(id));
        }
    }
    if matches!(scope, Scope::Parts { .. }) && !of_erased.is_empty() {
        // Erasing takes the resolution lock exclusively, which this turn holds shared beside
        // other resolvers: the records are left to a resolution of the whole log instead.
        store.defer_to_whole(&of_erased)?;
        of_erased.clear();
    }
    let mut report = IncrementalReport { through, ..Default::default() };
    if !of_erased.is_empty() {
        store.erase(&[], &of_erased)?;
        report.erased = of_erased.len() as u64;
    }
    if pending.is_empty() {
        match scope {
            Scope::Parts { parts, .. } => report.through = store.finish_partitions(parts, done_through, committed_through)?,
            Scope::Whole if newest_scanned > through => {
                report.through = newest_scanned;
                store.set_meta(RESOLVED_THROUGH, &newest_scanned.to_string())?;
            }
            Scope::Whole => {}
        }
        return Ok(report);
    }
    let constraints = store.constraints()?;
    let constrained: FxHashSet<(String, String)> = constraints.iter().flat_map(|c| [c.left.clone(), c.right.clone()]).collect();
    let blocked: FxHashSet<&str> = config.resolve.blocked_values.iter().map(String::as_str).collect();
    let mappers = crate::mappers(config)?;
    let mut view = BatchView::load(store, &pending, &blocked, matches!(scope, Scope::Parts { lock: true, .. }))?;
    // Profiles records were attached to (they exist), and profiles a re-resolution touched
    // (each may have merged away).
    let mut attached_to: FxHashSet<String> = FxHashSet::default();
    let mut involved: FxHashSet<String> = FxHashSet::default();
    let mut moved: Vec<&Pending> = Vec::new();
    // Records that start profiles of their own (no identifier held by any profile) wait
    // and are resolved together, so a thousand new people cost one write, not a thousand.
    // A later record naming only them waits with them (they resolve together as a full
    // resolution would); one that also names a stored profile has them stored first.
    // Their identifiers, to know which.
    let mut creating: Vec<&Pending> = Vec::new();
    let mut creating_ids: FxHashSet<(&str, &str)> = FxHashSet::default();
    let mut created = CreatedProfiles { constraints: &constraints, involved: &mut involved };
    for record in &pending {
        let ids: Vec<&Identifier> = record.identifiers.iter().filter(|i| !blocked.contains(i.value.as_str())).collect();
        let is_constrained = !constrained.is_empty() && constrained.contains(&(record.source.clone(), record.key.clone()));
        let mut profiles = view.holders_of(&ids);
        if profiles.is_empty() && !is_constrained {
            creating_ids.extend(ids.iter().map(|i| (i.kind.as_str(), i.value.as_str())));
            creating.push(record);
            report.created += 1;
            report.through = record.id;
            continue;
        }
        if ids.iter().any(|i| creating_ids.contains(&(i.kind.as_str(), i.value.as_str()))) {
            created.store(store, config, &mut view, &mut creating, fuzzy.as_deref_mut(), &mut report)?;
            creating_ids.clear();
            profiles = view.holders_of(&ids);
        }
        let attachable = profiles.len() == 1 && !is_constrained;
        if attachable && view.attach(store, config, &mappers, record, &profiles[0], &ids)? {
            report.attached += 1;
            attached_to.insert(profiles[0].clone());
        } else {
            // Re-resolution reads the store: what this batch attached goes there first.
            view.flush(store)?;
            moved.push(record);
            created.involved.extend(profiles.iter().cloned());
            if profiles.is_empty() {
                report.created += 1
            } else {
                report.reresolved += 1
            }
            let written = reresolve(store, config, constraints.clone(), &[record.id], &profiles, Vec::new())?;
            view.rewritten(store, &profiles, &written)?;
            if let (true, Some(index)) = (profiles.is_empty(), fuzzy.as_deref_mut()) {
                let own = profile_id_for(&record.source, &record.key);
                if let Some((_, true)) = match_new_profile(store, config, &constraints, &mut view, record, &own, index)? {
                    report.fuzzy_merges += 1;
                }
            }
        }
        report.through = record.id;
    }
    created.store(store, config, &mut view, &mut creating, fuzzy, &mut report)?;
    view.flush(store)?;
    for record in &moved {
        if let Some((_, profile)) = store.record_profile(&record.source, &record.key)? {
            involved.insert(profile);
        }
    }
    // Profiles rewritten by re-resolution; those records were attached to are named in the
    // change feed by the records' range instead (a batch attaches to up to a thousand).
    let involved: Vec<String> = involved.into_iter().collect();
    let existing: FxHashSet<String> = store.profiles_by_id(&involved)?.into_iter().map(|p| p.id).collect();
    let (mut rewritten, removed): (Vec<String>, Vec<String>) = involved.into_iter().partition(|id| existing.contains(id));
    report.removed = removed;
    rewritten.sort();
    report.touched = rewritten.iter().cloned().chain(attached_to.drain().filter(|id| !report.removed.contains(id))).collect();
    report.touched.sort();
    report.touched.dedup();
    report.removed.sort();
    // Other processes read the records' range to find the profiles records were attached
    // to; parts' range holds other parts' records too, which they read again, harmlessly.
    let range = [through, done_through];
    report.through = match scope {
        Scope::Whole => {
            store.set_meta(RESOLVED_THROUGH, &done_through.to_string())?;
            done_through
        }
        Scope::Parts { parts, .. } => store.finish_partitions(parts, done_through, committed_through)?,
    };
    if !report.touched.is_empty() || !report.removed.is_empty() {
        let detail = json!({ "records": range, "touched": rewritten, "removed": report.removed });
        store.record_change(ChangeKind::Profiles, &detail)?;
    }
    Ok(report)
}

/// Where records that start profiles of their own are stored, together.
struct CreatedProfiles<'a> {
    constraints: &'a [LinkConstraint],
    /// The batch's profiles touched by re-resolution: the created ones join them.
    involved: &'a mut FxHashSet<String>,
}

impl CreatedProfiles<'_> {
    /// Resolves the waiting records together (those sharing an identifier join, as in a
    /// full resolution), writes their profiles in one write, and matches each new profile
    /// against the fuzzy index, as a record resolved alone would be.
    fn store(
        &mut self,
        store: &mut dyn Database,
        config: &Config,
        view: &mut BatchView,
        creating: &mut Vec<&Pending>,
        fuzzy: Option<&mut FuzzyIndex>,
        report: &mut IncrementalReport,
    ) -> Result<()> {
        if creating.is_empty() {
            return Ok(());
        }
        view.flush(store)?;
        let records: Vec<RecordId> = creating.iter().map(|r| r.id).collect();
        let written = reresolve(store, config, self.constraints.to_vec(), &records, &[], Vec::new())?;
        view.rewritten(store, &[], &written)?;
        self.involved.extend(written.iter().cloned());
        if let Some(index) = fuzzy {
            // A profile's id is its oldest record's: the first of its records here.
            for record in creating.iter() {
                let own = profile_id_for(&record.source, &record.key);
                if !written.contains(&own) {
                    continue;
                }
                if let Some((candidate, merged)) = match_new_profile(store, config, self.constraints, view, record, &own, index)? {
                    self.involved.extend([own.clone(), candidate]);
                    if merged {
                        report.fuzzy_merges += 1;
                    }
                }
            }
        }
        creating.clear();
        Ok(())
    }
}

/// The profiles one batch of new records names, read once for the whole batch: which
/// profiles hold each identifier (as stored when the batch began, updated by what the
/// batch does), their rows and identifiers, and attachments not yet written.
struct BatchView {
    /// kind → value → profiles holding it.
    holders: FxHashMap<String, FxHashMap<String, Vec<String>>>,
    /// Profiles re-resolved away during the batch.
    gone: FxHashSet<String>,
    held: FxHashMap<String, HeldProfile>,
    /// Records attached in memory, by profile, in the order profiles were first attached to.
    pending: Vec<(String, Vec<RecordId>, Vec<ProfileIdentifier>)>,
    /// Each profile's place in `pending`.
    pending_at: FxHashMap<String, usize>,
}

/// Notes that `profile` holds `kind`/`value`.
fn add_holder(holders: &mut FxHashMap<String, FxHashMap<String, Vec<String>>>, kind: &str, value: &str, profile: &str) {
    let values = match holders.get_mut(kind) {
        Some(values) => values,
        None => holders.entry(kind.to_string()).or_default(),
    };
    let profiles = match values.get_mut(value) {
        Some(profiles) => profiles,
        None => values.entry(value.to_string()).or_default(),
    };
    if !profiles.iter().any(|p| p == profile) {
        profiles.push(profile.to_string());
    }
}

struct HeldProfile {
    row: ProfileRow,
    identifiers: Vec<ProfileIdentifier>,
}

impl BatchView {
    /// One lookup for every identifier of the batch, one for the rows and one for the
    /// identifiers of the profiles they name. With `lock` (a part's resolution, beside
    /// resolvers of other parts) the profiles named are locked before they are read. If
    /// one no longer exists once locked, another part's resolver rewrote it meanwhile
    /// (a merge or a split), and the lookup is made again. (One that still exists holds
    /// what it held: only this part's resolver adds this part's identifiers, and another
    /// part's merges and splits delete the profiles they rewrite.)
    fn load(store: &mut dyn Database, pending: &[Pending], blocked: &FxHashSet<&str>, lock: bool) -> Result<Self> {
        let mut wanted: Vec<(String, String)> = pending
            .iter()
            .flat_map(|r| r.identifiers.iter())
            .filter(|i| !blocked.contains(i.value.as_str()))
            .map(|i| (i.kind.to_string(), i.value.clone()))
            .collect();
        wanted.sort_unstable();
        wanted.dedup();
        let mut locked: FxHashSet<String> = FxHashSet::default();
        let (holders, named) = loop {
            let mut holders: FxHashMap<String, FxHashMap<String, Vec<String>>> = FxHashMap::default();
            for (kind, value, profile) in store.find_profiles_of(&wanted)? {
                holders.entry(kind).or_default().entry(value).or_default().push(profile);
            }
            let mut named: Vec<String> = holders.values().flat_map(|values| values.values().flatten()).cloned().collect();
            named.sort_unstable();
            named.dedup();
            let unlocked: Vec<String> = named.iter().filter(|p| !locked.contains(*p)).cloned().collect();
            if !lock || unlocked.is_empty() {
                break (holders, named);
            }
            let exist = store.lock_profiles(&unlocked)?;
            let all_exist = exist.len() == unlocked.len();
            // A profile written again under the same id is a new row, not locked yet.
            locked.extend(exist);
            if all_exist {
                break (holders, named);
            }
        };
        let mut view = BatchView {
            holders,
            gone: FxHashSet::default(),
            held: FxHashMap::default(),
            pending: Vec::new(),
            pending_at: FxHashMap::default(),
        };
        view.read(store, &named)?;
        Ok(view)
    }

    fn read(&mut self, store: &dyn Database, ids: &[String]) -> Result<()> {
        let mut identifiers: FxHashMap<String, Vec<ProfileIdentifier>> = FxHashMap::default();
        for (profile, id) in store.identifiers_of_profiles(ids)? {
            identifiers.entry(profile).or_default().push(id);
        }
        for row in store.profiles_by_id(ids)? {
            let identifiers = identifiers.remove(&row.id).unwrap_or_default();
            self.held.insert(row.id.clone(), HeldProfile { row, identifiers });
        }
        Ok(())
    }

    /// The profiles holding any of these identifiers now, each once, in first-seen order.
    fn holders_of(&self, ids: &[&Identifier]) -> Vec<String> {
        let mut profiles: Vec<String> = Vec::new();
        for id in ids {
            for p in self.holders.get(id.kind.as_str()).and_then(|values| values.get(&id.value)).into_iter().flatten() {
                if !self.gone.contains(p) && !profiles.contains(p) {
                    profiles.push(p.clone());
                }
            }
        }
        profiles
    }

    /// After a re-resolution of `before` wrote `written`: profiles that went away stop
    /// holding anything, and the written ones hold their identifiers as stored now (not
    /// the ones they held before, which a split may have moved elsewhere).
    fn rewritten(&mut self, store: &dyn Database, before: &[String], written: &[String]) -> Result<()> {
        for id in before.iter().chain(written) {
            let Some(held) = self.held.remove(id) else { continue };
            for i in &held.identifiers {
                if let Some(profiles) = self.holders.get_mut(&i.kind).and_then(|values| values.get_mut(&i.value)) {
                    profiles.retain(|p| p != id);
                }
            }
        }
        self.gone.extend(before.iter().filter(|p| !written.contains(p)).cloned());
        for id in written {
            self.gone.remove(id);
        }
        self.read(store, written)?;
        for id in written {
            let Some(held) = self.held.get(id) else { continue };
            for i in &held.identifiers {
                add_holder(&mut self.holders, &i.kind, &i.value, id);
            }
        }
        Ok(())
    }

    /// Attaches a record to the one profile its identifiers point at, in memory, unless
    /// that would break a per-kind limit; returns whether it did.
    fn attach(
        &mut self,
        store: &dyn Database,
        config: &Config,
        mappers: &FxHashMap<&str, Mapper<'_>>,
        record: &Pending,
        profile: &str,
        ids: &[&Identifier],
    ) -> Result<bool> {
        if !self.held.contains_key(profile) {
            self.read(store, &[profile.to_string()])?;
        }
        let Some(held) = self.held.get_mut(profile) else { return Ok(false) };
        let mut values_of_kind: FxHashMap<&str, FxHashSet<&str>> = FxHashMap::default();
        for h in &held.identifiers {
            values_of_kind.entry(h.kind.as_str()).or_default().insert(h.value.as_str());
        }
        for id in ids {
            values_of_kind.entry(id.kind.as_str()).or_default().insert(id.value.as_str());
        }
        if values_of_kind.iter().any(|(kind, values)| config.resolve.limit_for(kind).is_some_and(|limit| values.len() > limit as usize)) {
            return Ok(false);
        }
        let new_ids: Vec<ProfileIdentifier> = {
            let mut seen = FxHashSet::default();
            ids.iter()
                .filter(|id| {
                    !held.identifiers.iter().any(|h| h.kind == id.kind.as_str() && h.value == id.value && h.source == record.source)
                })
                .filter(|id| seen.insert((id.kind.as_str(), id.value.as_str())))
                .map(|id| ProfileIdentifier { kind: id.kind.to_string(), value: id.value.clone(), source: record.source.clone() })
                .collect()
        };
        let row = &mut held.row;
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
        held.identifiers.extend(new_ids.iter().cloned());
        for id in &new_ids {
            add_holder(&mut self.holders, &id.kind, &id.value, profile);
        }
        match self.pending_at.get(profile) {
            Some(&at) => {
                let (_, records, identifiers) = &mut self.pending[at];
                records.push(record.id);
                identifiers.extend(new_ids);
            }
            None => {
                self.pending_at.insert(profile.to_string(), self.pending.len());
                self.pending.push((profile.to_string(), vec![record.id], new_ids));
            }
        }
        Ok(true)
    }

    /// Writes the attachments held in memory, in one write.
    fn flush(&mut self, store: &mut dyn Database) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.pending_at.clear();
        let attachments: Vec<Attachment> = self
            .pending
            .drain(..)
            .map(|(profile, records, identifiers)| Attachment { profile: self.held[&profile].row.clone(), records, identifiers })
            .collect();
        Ok(store.attach_records(&attachments)?)
    }
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

/// Matches the profile a record just started (`own`) against the index; merges it with the
/// best match through the guard, and tells the batch's view what it wrote. Returns the
/// candidate and whether the merge happened, when it tried one. A profile that stays alone
/// becomes a candidate itself, so a second record of the same new person in this batch
/// finds it.
fn match_new_profile(
    store: &mut dyn Database,
    config: &Config,
    constraints: &[LinkConstraint],
    view: &mut BatchView,
    record: &Pending,
    own: &str,
    index: &mut FuzzyIndex,
) -> Result<Option<(String, bool)>> {
    let Some(row) = store.profile(own)? else { return Ok(None) };
    let traits: Map<String, Value> = serde_json::from_str(&row.traits).map_err(kinship_store::StoreError::from)?;
    let Some((candidate, probability, weight)) = index.best_match(&traits, own) else {
        index.upsert(own, &row.traits)?;
        return Ok(None);
    };
    let candidate = candidate.to_string();
    // The candidate may have been merged into another profile since the index was built.
    let mut anchor = None;
    store.scan_selected(&[], std::slice::from_ref(&candidate), &mut |r| {
        anchor.get_or_insert(r.id);
    })?;
    let Some(anchor) = anchor else {
        // Merged or erased since it was indexed: this one stays alone, and is a candidate.
        index.remove(&candidate);
        index.upsert(own, &row.traits)?;
        return Ok(None);
    };
    let evidence = json!({ "probability": probability, "match_weight": weight, "matched": "in real time, against the profile index" });
    let edge = MergeEdge { left: anchor, right: record.id, stage: "fuzzy".into(), detail: evidence };
    let before = [own.to_string(), candidate.clone()];
    let written = reresolve(store, config, constraints.to_vec(), &[record.id], &before, vec![edge])?;
    view.rewritten(store, &before, &written)?;
    Ok(Some((candidate, !written.iter().any(|p| p == own))))
}
