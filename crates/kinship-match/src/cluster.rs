//! Clustering linked pairs into entities.
//!
//! Pairs are applied strongest first with union-find. Two clusters merge only when:
//! - their unique columns do not conflict (two different user ids), and the caller's own
//!   guard agrees (the resolver's per-kind limits and a person's splits);
//! - with the linkage check, the records of one are on average a match for the records of
//!   the other (mean match weight over the cross pairs, not just the pair at hand, at
//!   least half the threshold's weight). Connected components let one weak bridge, a duplicate with a
//!   blank first name that resembles two sisters, join two groups; each further bridge
//!   makes the next more likely, and a million records chained into clusters of thousands.

use crate::dataset::{Column, NULL_ID};

/// A pair of rows and its match weight.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScoredPair {
    pub left: u32,
    pub right: u32,
    pub weight: f64,
}

impl ScoredPair {
    pub fn probability(&self) -> f64 {
        crate::model::probability_from_weight(self.weight)
    }
}

/// Cluster of every row, numbered from 0 in order of first appearance.
#[derive(Debug, Clone, PartialEq)]
pub struct Clustering {
    pub cluster_of: Vec<u32>,
    /// Pairs above the threshold that were not applied because unique values conflicted
    /// or the caller's guard refused.
    pub refused_merges: usize,
    /// Pairs above the threshold not applied because the two clusters as a whole were not
    /// a match (the linkage check).
    pub refused_by_linkage: usize,
    /// The pairs that joined clusters: what holds each cluster together.
    pub links: Vec<ScoredPair>,
}

impl Clustering {
    pub fn cluster_count(&self) -> usize {
        self.cluster_of.iter().max().map_or(0, |&c| c as usize + 1)
    }

    /// Sizes, the largest clusters and the weakest link holding each together.
    pub fn report(&self, largest: usize) -> ClusterReport {
        let mut sizes = vec![0u32; self.cluster_count()];
        for &c in &self.cluster_of {
            sizes[c as usize] += 1;
        }
        let bands: [(u32, u32, &str); 6] =
            [(1, 1, "1"), (2, 2, "2"), (3, 5, "3-5"), (6, 10, "6-10"), (11, 100, "11-100"), (101, u32::MAX, "over 100")];
        let histogram =
            bands.iter().map(|&(lo, hi, label)| (label.to_string(), sizes.iter().filter(|&&s| s >= lo && s <= hi).count())).collect();
        let mut weakest: Vec<Option<ScoredPair>> = vec![None; sizes.len()];
        for link in &self.links {
            let slot = &mut weakest[self.cluster_of[link.left as usize] as usize];
            if slot.is_none_or(|w| link.weight < w.weight) {
                *slot = Some(*link);
            }
        }
        let mut order: Vec<usize> = (0..sizes.len()).filter(|&c| sizes[c] > 1).collect();
        order.sort_by_key(|&c| (std::cmp::Reverse(sizes[c]), c));
        let mut multi: Vec<u32> = order.iter().map(|&c| sizes[c]).collect();
        multi.reverse();
        // a person has a handful of records; a cluster far beyond what nearly every other
        // cluster holds is more likely strangers chained together
        let p99 = multi.get(multi.len().saturating_sub(1) * 99 / 100).copied().unwrap_or(1);
        let supportable = (5 * p99).max(SMALLEST_SUSPECT_SIZE);
        let largest = order
            .iter()
            .take(largest)
            .map(|&c| LargeCluster { cluster: c as u32, size: sizes[c], weakest_link: weakest[c], suspect: sizes[c] > supportable })
            .collect();
        ClusterReport { histogram, largest, supportable }
    }
}

/// Clusters up to this size are never suspect by size alone.
const SMALLEST_SUSPECT_SIZE: u32 = 10;

/// How a clustering came out.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterReport {
    /// Clusters per size band ("1", "2", "3-5", ...).
    pub histogram: Vec<(String, usize)>,
    pub largest: Vec<LargeCluster>,
    /// Larger clusters than this are suspect: five times the 99th percentile of the sizes
    /// of clusters with more than one record, and at least 10.
    pub supportable: u32,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LargeCluster {
    pub cluster: u32,
    pub size: u32,
    /// The weakest pair that joined two parts of it.
    pub weakest_link: Option<ScoredPair>,
    pub suspect: bool,
}

/// How clusters are formed from scored pairs.
pub struct Linkage<'a> {
    /// Pairs below this weight are ignored.
    pub min_weight: f64,
    /// Columns that may hold at most one value per cluster.
    pub unique: &'a [&'a Column],
    /// Scores any two rows, for the linkage check; `None` gives connected components.
    pub score: Option<&'a (dyn Fn(u32, u32) -> f64 + Sync)>,
}

/// The mean weight across two clusters must reach this share of the pair threshold:
/// duplicates of one person that were each mistyped differently can be weak matches for
/// each other, while strangers across a bridge are strong non-matches.
const LINKAGE_SHARE: f64 = 0.5;
/// Cross pairs compared at most per linkage check (sampled evenly beyond that).
const MAX_CROSS_PAIRS: usize = 400;
/// One cross pair moves the mean by at most this many bits either way, so a single
/// extreme pair neither vetoes nor carries a merge.
const CROSS_PAIR_CLIP: f64 = 30.0;

/// Clusters `rows` records from `pairs`; `accept(a, b, weight)` is asked last before two
/// clusters merge (by the rows of the pair at hand) and may refuse.
pub fn cluster_with(rows: usize, pairs: &[ScoredPair], linkage: &Linkage, accept: &mut dyn FnMut(u32, u32, f64) -> bool) -> Clustering {
    let mut order: Vec<&ScoredPair> = pairs.iter().filter(|p| p.weight >= linkage.min_weight).collect();
    // strongest first; ties broken by rows so the result does not depend on thread timing
    order.sort_unstable_by(|a, b| b.weight.total_cmp(&a.weight).then((a.left, a.right).cmp(&(b.left, b.right))));

    let mut parent: Vec<u32> = (0..rows as u32).collect();
    // members of each root, kept only when the linkage check needs them
    let mut members: Vec<Vec<u32>> = if linkage.score.is_some() { (0..rows as u32).map(|r| vec![r]).collect() } else { Vec::new() };
    let mut size = vec![1u32; rows];
    let unique = linkage.unique;
    // the value each cluster root holds per unique column (NULL_ID when none yet)
    let mut held: Vec<u32> = (0..rows).flat_map(|row| unique.iter().map(move |c| c.id(row))).collect();
    let width = unique.len();
    let (mut refused_merges, mut refused_by_linkage) = (0, 0);
    let mut links = Vec::new();

    for pair in order {
        let (a, b) = (find(&mut parent, pair.left), find(&mut parent, pair.right));
        if a == b {
            continue;
        }
        let (a_held, b_held) = (a as usize * width, b as usize * width);
        let conflict = (0..width).any(|c| {
            let (x, y) = (held[a_held + c], held[b_held + c]);
            x != NULL_ID && y != NULL_ID && x != y
        });
        if conflict {
            refused_merges += 1;
            continue;
        }
        if let Some(score) = linkage.score {
            let (ma, mb) = (&members[a as usize], &members[b as usize]);
            if ma.len() + mb.len() > 2 && mean_cross_weight(ma, mb, score) < linkage.min_weight.min(linkage.min_weight * LINKAGE_SHARE) {
                refused_by_linkage += 1;
                continue;
            }
        }
        if !accept(pair.left, pair.right, pair.weight) {
            refused_merges += 1;
            continue;
        }
        let (root, child) = if size[a as usize] >= size[b as usize] { (a, b) } else { (b, a) };
        parent[child as usize] = root;
        size[root as usize] += size[child as usize];
        if !members.is_empty() {
            let moved = std::mem::take(&mut members[child as usize]);
            members[root as usize].extend(moved);
        }
        for c in 0..width {
            let (root_slot, child_slot) = (root as usize * width + c, child as usize * width + c);
            if held[root_slot] == NULL_ID {
                held[root_slot] = held[child_slot];
            }
        }
        links.push(*pair);
    }

    let mut label_of_root = vec![u32::MAX; rows];
    let mut next = 0;
    let cluster_of = (0..rows as u32)
        .map(|row| {
            let root = find(&mut parent, row) as usize;
            if label_of_root[root] == u32::MAX {
                label_of_root[root] = next;
                next += 1;
            }
            label_of_root[root]
        })
        .collect();
    Clustering { cluster_of, refused_merges, refused_by_linkage, links }
}

/// Connected components over pairs at or above `min_weight` that respect `unique`
/// columns, without the linkage check.
pub fn cluster(rows: usize, pairs: &[ScoredPair], min_weight: f64, unique: &[&Column]) -> Clustering {
    cluster_with(rows, pairs, &Linkage { min_weight, unique, score: None }, &mut |_, _, _| true)
}

/// Mean clipped match weight over the pairs of rows across two clusters (an even sample of
/// them when there are many).
fn mean_cross_weight(a: &[u32], b: &[u32], score: &(dyn Fn(u32, u32) -> f64 + Sync)) -> f64 {
    let total = a.len() * b.len();
    let stride = total.div_ceil(MAX_CROSS_PAIRS).max(1);
    let (mut sum, mut count) = (0.0, 0usize);
    for k in (0..total).step_by(stride) {
        let (x, y) = (a[k / b.len()], b[k % b.len()]);
        sum += score(x, y).clamp(-CROSS_PAIR_CLIP, CROSS_PAIR_CLIP);
        count += 1;
    }
    sum / count.max(1) as f64
}

fn find(parent: &mut [u32], mut row: u32) -> u32 {
    while parent[row as usize] != row {
        // path halving keeps the trees flat without recursion
        parent[row as usize] = parent[parent[row as usize] as usize];
        row = parent[row as usize];
    }
    row
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two people with three records each, and a seventh record: a duplicate of the first
    /// person with fields blanked, so it also resembles one record of the second: a bridge.
    fn bridged() -> (Vec<ScoredPair>, impl Fn(u32, u32) -> f64 + Sync) {
        let same = |x: u32, y: u32| (x < 3 && y < 3) || ((3..6).contains(&x) && (3..6).contains(&y));
        let score = move |x: u32, y: u32| match (x.min(y), x.max(y)) {
            (x, y) if same(x, y) => 20.0,
            (0, 6) => 12.0,
            (1, 6) | (2, 6) => 5.0,
            (3, 6) => 4.0,
            _ => -15.0,
        };
        let mut pairs = Vec::new();
        for x in 0..7u32 {
            for y in x + 1..7 {
                pairs.push(ScoredPair { left: x, right: y, weight: score(x, y) });
            }
        }
        (pairs, score)
    }

    #[test]
    fn a_weak_bridge_does_not_chain_two_clusters() {
        let (pairs, score) = bridged();
        let plain = cluster(7, &pairs, 3.0, &[]);
        assert_eq!(plain.cluster_count(), 1, "connected components chain through the bridge");

        let linkage = Linkage { min_weight: 3.0, unique: &[], score: Some(&score) };
        let guarded = cluster_with(7, &pairs, &linkage, &mut |_, _, _| true);
        assert_eq!(guarded.cluster_count(), 2, "{:?}", guarded.cluster_of);
        assert_ne!(guarded.cluster_of[0], guarded.cluster_of[3]);
        assert!(guarded.refused_by_linkage >= 1);
        // the bridge record joins the person it matches as a whole
        assert_eq!(guarded.cluster_of[6], guarded.cluster_of[0]);
    }

    #[test]
    fn a_record_that_matches_a_cluster_as_a_whole_joins_it() {
        // a duplicate close to one member and fairly close to the other
        let score = |x: u32, y: u32| if (x.min(y), x.max(y)) == (1, 2) { 2.0 } else { 18.0 };
        let pairs = [ScoredPair { left: 0, right: 1, weight: 18.0 }, ScoredPair { left: 0, right: 2, weight: 18.0 }];
        let linkage = Linkage { min_weight: 3.0, unique: &[], score: Some(&score) };
        let clustering = cluster_with(3, &pairs, &linkage, &mut |_, _, _| true);
        assert_eq!(clustering.cluster_count(), 1);
        assert_eq!(clustering.links.len(), 2);
    }

    #[test]
    fn the_callers_guard_can_refuse() {
        let pairs = [ScoredPair { left: 0, right: 1, weight: 10.0 }];
        let clustering = cluster_with(2, &pairs, &Linkage { min_weight: 3.0, unique: &[], score: None }, &mut |_, _, _| false);
        assert_eq!(clustering.cluster_count(), 2);
        assert_eq!(clustering.refused_merges, 1);
    }

    #[test]
    fn the_report_flags_a_cluster_far_above_the_rest() {
        // 100 pairs and one chain of 40
        let mut pairs: Vec<ScoredPair> = (0..100).map(|i| ScoredPair { left: 2 * i, right: 2 * i + 1, weight: 10.0 }).collect();
        pairs.extend((200..239).map(|i| ScoredPair { left: i, right: i + 1, weight: 5.0 + f64::from(i - 200) }));
        let clustering = cluster(240, &pairs, 3.0, &[]);
        let report = clustering.report(3);
        assert_eq!(report.largest[0].size, 40);
        assert!(report.largest[0].suspect);
        assert!(!report.largest[1].suspect);
        assert_eq!(report.largest[0].weakest_link.unwrap().weight, 5.0);
        assert_eq!(report.histogram[1], ("2".to_string(), 100));
    }
}
