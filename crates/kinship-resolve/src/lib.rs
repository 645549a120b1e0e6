//! Exact identity resolution: records that share an identifier join, under Segment-style
//! guards against over-merging. Pure: records in, clusters and the evidence for every join
//! out.
//!
//! Identifiers are visited strongest kind first (`resolve.priority`). An identifier joins
//! every record that holds it in one step, or none: if the joined profile would hold more
//! distinct values of a kind than `resolve.limits` allows (two `crm_id`s, six emails), or
//! would put two records declared apart (a cannot-link from a split) together, the
//! identifier is *contested* and joins nothing. So a family sharing one email keeps two
//! profiles, and an order that carries only that email stays on its own rather than being
//! given to whichever family member came first.

mod guard;

pub use guard::{GuardedClusters, Refusal};

use kinship_core::{Identifier, RecordId, ResolveConfig};
use rustc_hash::FxHashMap;

/// One record's identifiers, already normalised.
#[derive(Debug, Clone)]
pub struct InputRecord {
    pub id: RecordId,
    pub identifiers: Vec<Identifier>,
}

/// Decisions a person made that resolution must respect.
#[derive(Debug, Clone, Default)]
pub struct Constraints {
    pub must_link: Vec<(RecordId, RecordId)>,
    pub cannot_link: Vec<(RecordId, RecordId)>,
}

/// Why two records are in one profile.
#[derive(Debug, Clone, PartialEq)]
pub enum Reason {
    Identifier(Identifier),
    MustLink,
}

/// A join between two records (indexes into the input), one per merge.
#[derive(Debug, Clone, PartialEq)]
pub struct Edge {
    pub left: usize,
    pub right: usize,
    pub reason: Reason,
}

pub struct Resolution {
    /// Cluster number of each input record; clusters are numbered densely from 0.
    pub cluster: Vec<u32>,
    pub cluster_count: u32,
    pub edges: Vec<Edge>,
    /// Identifiers that would have broken a guard, with the reason, so they can be explained.
    pub contested: Vec<(Identifier, Refusal)>,
    /// The records holding each contested identifier, to try again after later merges.
    contested_members: Vec<Vec<u32>>,
    /// Identifier occurrences ignored because their value is blocked.
    pub blocked: u64,
    /// The clusters with their guards, so a later stage (fuzzy matching) can merge further
    /// under the same rules, then [`Resolution::relabel`].
    pub guard: GuardedClusters,
}

impl Resolution {
    /// Recomputes `cluster` and `cluster_count` after merges made through `guard`.
    pub fn relabel(&mut self) {
        (self.cluster, self.cluster_count) = self.guard.dense_labels();
    }

    /// Tries each contested identifier again, in its first order, after a later stage
    /// merged clusters (two duplicate contacts joined by overwhelming evidence): an email
    /// both contacts hold no longer divides them, and joins the records that hold only it.
    /// Returns how many identifiers joined now; call [`Resolution::relabel`] after.
    pub fn retry_contested(&mut self) -> usize {
        let mut joined = 0;
        let mut still = Vec::new();
        let contested = std::mem::take(&mut self.contested);
        let members = std::mem::take(&mut self.contested_members);
        for ((identifier, _), members) in contested.into_iter().zip(members) {
            match self.guard.merge_all(&members) {
                Ok(joins) => {
                    joined += 1;
                    self.edges.extend(joins.into_iter().map(|(left, right)| Edge {
                        left: left as usize,
                        right: right as usize,
                        reason: Reason::Identifier(identifier.clone()),
                    }));
                }
                Err(refusal) => still.push(((identifier, refusal), members)),
            }
        }
        (self.contested, self.contested_members) = still.into_iter().unzip();
        joined
    }
}

/// Interned identifiers: an id per distinct (kind, value), a kind id per identifier.
/// Ids are given in order of first appearance, so they are deterministic for an input.
struct Interner {
    /// Per kind id: value → identifier id.
    ids: Vec<FxHashMap<Box<str>, u32>>,
    kinds: Vec<String>,
    kind_of: Vec<u16>,
    values: Vec<Box<str>>,
}

impl Interner {
    fn new() -> Self {
        Self { ids: vec![], kinds: vec![], kind_of: vec![], values: vec![] }
    }

    fn intern(&mut self, id: &Identifier) -> u32 {
        let kind = match self.kinds.iter().position(|k| k == id.kind.as_str()) {
            Some(k) => k,
            None => {
                self.kinds.push(id.kind.as_str().to_string());
                self.ids.push(FxHashMap::default());
                self.kinds.len() - 1
            }
        };
        if let Some(&existing) = self.ids[kind].get(id.value.as_str()) {
            return existing;
        }
        let next = self.values.len() as u32;
        self.ids[kind].insert(id.value.as_str().into(), next);
        self.kind_of.push(kind as u16);
        self.values.push(id.value.as_str().into());
        next
    }

    fn identifier(&self, id: u32) -> Identifier {
        Identifier::new(self.kinds[self.kind_of[id as usize] as usize].as_str(), &*self.values[id as usize])
    }
}

/// Resolves records into clusters by exact identifiers. Deterministic for the same input.
pub fn resolve(records: &[InputRecord], config: &ResolveConfig, constraints: &Constraints) -> Resolution {
    let blocked: rustc_hash::FxHashSet<&str> = config.blocked_values.iter().map(String::as_str).collect();
    let mut interner = Interner::new();
    let mut record_ids: Vec<Vec<u32>> = Vec::with_capacity(records.len());
    let mut blocked_count = 0;
    for r in records {
        let mut ids = Vec::with_capacity(r.identifiers.len());
        for id in &r.identifiers {
            if blocked.contains(id.value.as_str()) {
                blocked_count += 1;
            } else {
                ids.push(interner.intern(id));
            }
        }
        ids.sort_unstable();
        ids.dedup();
        record_ids.push(ids);
    }

    // Postings: identifier -> records holding it, in input order.
    let mut postings: Vec<Vec<u32>> = vec![Vec::new(); interner.values.len()];
    for (i, ids) in record_ids.iter().enumerate() {
        for &id in ids {
            postings[id as usize].push(i as u32);
        }
    }

    let kinds = interner.kinds.iter().map(|k| (k.clone(), config.limit_for(k))).collect();
    let mut clusters = GuardedClusters::new(record_ids, interner.kind_of.clone(), kinds);
    let index_of: FxHashMap<RecordId, usize> = records.iter().enumerate().map(|(i, r)| (r.id, i)).collect();
    for &(a, b) in &constraints.cannot_link {
        if let (Some(&a), Some(&b)) = (index_of.get(&a), index_of.get(&b)) {
            clusters.add_cannot_link(a, b);
        }
    }

    let mut edges = Vec::new();
    // A person's explicit must-link comes before any identifier, and is not subject to limits.
    for &(a, b) in &constraints.must_link {
        if let (Some(&a), Some(&b)) = (index_of.get(&a), index_of.get(&b))
            && clusters.force_merge(a, b)
        {
            edges.push(Edge { left: a, right: b, reason: Reason::MustLink });
        }
    }

    // Strongest kind first (ties between unlisted kinds by name); within a kind, in order
    // of first appearance.
    let mut by_strength: Vec<usize> = (0..interner.kinds.len()).collect();
    by_strength.sort_by_key(|&k| (config.rank_of(&interner.kinds[k]), interner.kinds[k].as_str()));
    let mut kind_order = vec![0usize; interner.kinds.len()];
    for (position, &k) in by_strength.iter().enumerate() {
        kind_order[k] = position;
    }
    let mut order: Vec<u32> = (0..interner.values.len() as u32).filter(|&i| postings[i as usize].len() > 1).collect();
    order.sort_unstable_by_key(|&id| (kind_order[interner.kind_of[id as usize] as usize], id));

    let mut contested = Vec::new();
    let mut contested_members = Vec::new();
    for id in order {
        let members = &postings[id as usize];
        match clusters.merge_all(members) {
            Ok(joined) => edges.extend(joined.into_iter().map(|(left, right)| Edge {
                left: left as usize,
                right: right as usize,
                reason: Reason::Identifier(interner.identifier(id)),
            })),
            Err(refusal) => {
                contested.push((interner.identifier(id), refusal));
                contested_members.push(members.clone());
            }
        }
    }

    let (cluster, cluster_count) = clusters.dense_labels();
    Resolution { cluster, cluster_count, edges, contested, contested_members, blocked: blocked_count, guard: clusters }
}

#[cfg(test)]
mod tests;
