//! Clustering linked pairs into entities.
//!
//! Pairs are joined strongest first with union-find. Before two clusters merge, their
//! unique columns are checked: if both already hold a value for a unique column and the
//! values differ (two different user ids), the merge is refused. Because the strongest
//! evidence is applied first, a weak pair cannot chain two well-established people together.

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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clustering {
    pub cluster_of: Vec<u32>,
    /// Pairs above the threshold that were not applied because unique values conflicted.
    pub refused_merges: usize,
}

impl Clustering {
    pub fn cluster_count(&self) -> usize {
        self.cluster_of.iter().max().map_or(0, |&c| c as usize + 1)
    }
}

/// Clusters `rows` records from pairs at or above `min_weight`; `unique` are the columns
/// that may hold at most one value per cluster.
pub fn cluster(rows: usize, pairs: &[ScoredPair], min_weight: f64, unique: &[&Column]) -> Clustering {
    let mut order: Vec<&ScoredPair> = pairs.iter().filter(|p| p.weight >= min_weight).collect();
    // strongest first; ties broken by rows so the result does not depend on thread timing
    order.sort_unstable_by(|a, b| b.weight.total_cmp(&a.weight).then((a.left, a.right).cmp(&(b.left, b.right))));

    let mut parent: Vec<u32> = (0..rows as u32).collect();
    let mut size = vec![1u32; rows];
    // the value each cluster root holds per unique column (NULL_ID when none yet)
    let mut held: Vec<u32> = (0..rows).flat_map(|row| unique.iter().map(move |c| c.id(row))).collect();
    let width = unique.len();
    let mut refused_merges = 0;

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
        let (root, child) = if size[a as usize] >= size[b as usize] { (a, b) } else { (b, a) };
        parent[child as usize] = root;
        size[root as usize] += size[child as usize];
        for c in 0..width {
            let (root_slot, child_slot) = (root as usize * width + c, child as usize * width + c);
            if held[root_slot] == NULL_ID {
                held[root_slot] = held[child_slot];
            }
        }
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
    Clustering { cluster_of, refused_merges }
}

fn find(parent: &mut [u32], mut row: u32) -> u32 {
    while parent[row as usize] != row {
        // path halving keeps the trees flat without recursion
        parent[row as usize] = parent[parent[row as usize] as usize];
        row = parent[row as usize];
    }
    row
}
