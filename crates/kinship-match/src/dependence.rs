//! Fields that carry the same information.
//!
//! Fellegi-Sunter adds one weight per field as if fields were independent. Suburb,
//! postcode and state are not: among random pairs the three agree together far more often
//! than their separate agreement rates would predict, so adding their weights counts one
//! fact ("same place") three times and lets two strangers who share a surname and a town
//! outvote a different first name and birth date. Such fields are detected from the random
//! pairs that estimate u (agreement together against the product of the separate rates) and
//! scored as a group: the group adds its strongest agreement and its strongest
//! disagreement, not the sum of all of them.

use serde::{Deserialize, Serialize};

/// Two fields are dependent when they agree together at least this many times as often
/// among random pairs as independence predicts...
const MIN_LIFT: f64 = 4.0;
/// ...and agreement on the rarer one comes with agreement on the other this often or more
/// (a town implies its state; a given name does not imply a birth year).
const MIN_IMPLIED: f64 = 0.7;
/// Joint agreements needed before a rate means anything.
const MIN_JOINT: u64 = 20;

/// Fields counted once, with what showed them to be dependent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DependentGroup {
    /// Field indexes in configuration order.
    pub fields: Vec<usize>,
    pub columns: Vec<String>,
    /// The largest joint agreement rate over the product of the separate rates among the
    /// group's detected pairs (0 when only declared in the configuration).
    pub lift: f64,
    /// Per field outside the group (empty for its members, and when too few pairs share the
    /// group to tell): u among different people who share the group, by level. Twins share
    /// a household and a birth date far more often than strangers share a birth date, so
    /// between records that share the group a field's agreement weighs at most
    /// `log2(m / u_shared)`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub u_shared: Vec<Vec<f64>>,
    /// Log-odds (bits) that two records sharing the group are one person, measured among
    /// the pairs that share it. Between such records it stands in for the prior and the
    /// group's own agreement: "same household" is one piece of evidence whose worth the
    /// data says directly (a duplicate contact or a family member, about even odds in a
    /// file with families), where the strongest member alone would undersell it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared_odds: Option<f64>,
}

impl DependentGroup {
    /// Whether two records with these field `levels` share the group: more than half of its
    /// members and two more agree exactly (all of a group of four or fewer). That is what a
    /// household shares (surname, street, number, town, postcode, state), not a surname and
    /// a town. `exact(f)` is field f's exact level.
    pub fn shared(&self, levels: impl Fn(usize) -> u8, exact: impl Fn(usize) -> u8) -> bool {
        let needed = (self.fields.len() / 2 + 2).min(self.fields.len());
        self.fields.iter().filter(|&&f| levels(f) == exact(f)).count() >= needed
    }
}

/// Exact agreement among random pairs, per field and per pair of fields.
#[derive(Debug, Clone, PartialEq)]
pub struct CoAgreement {
    fields: usize,
    /// Per field: pairs where both values are present, and where they agree exactly.
    present: Vec<u64>,
    agree: Vec<u64>,
    /// Per pair of fields (`a * fields + b`): both fields present on both sides, and both agree.
    both_present: Vec<u64>,
    both_agree: Vec<u64>,
}

impl CoAgreement {
    pub fn new(fields: usize) -> Self {
        CoAgreement {
            fields,
            present: vec![0; fields],
            agree: vec![0; fields],
            both_present: vec![0; fields * fields],
            both_agree: vec![0; fields * fields],
        }
    }

    /// Counts one random pair; `present[f]` and `agree[f]` describe field f.
    pub fn add(&mut self, present: &[bool], agree: &[bool]) {
        for a in 0..self.fields {
            if !present[a] {
                continue;
            }
            self.present[a] += 1;
            self.agree[a] += u64::from(agree[a]);
            for b in a + 1..self.fields {
                if present[b] {
                    self.both_present[a * self.fields + b] += 1;
                    self.both_agree[a * self.fields + b] += u64::from(agree[a] && agree[b]);
                }
            }
        }
    }

    pub fn merge(&mut self, other: &CoAgreement) {
        let add = |x: &mut Vec<u64>, y: &Vec<u64>| x.iter_mut().zip(y).for_each(|(x, y)| *x += y);
        add(&mut self.present, &other.present);
        add(&mut self.agree, &other.agree);
        add(&mut self.both_present, &other.both_present);
        add(&mut self.both_agree, &other.both_agree);
    }

    /// Lift and implied share of a pair of fields, when there is enough joint agreement to
    /// judge.
    fn dependence(&self, a: usize, b: usize) -> Option<(f64, f64)> {
        let joint = self.both_agree[a * self.fields + b];
        if joint < MIN_JOINT {
            return None;
        }
        let rate = |agree: u64, present: u64| agree as f64 / present.max(1) as f64;
        let (pa, pb) = (rate(self.agree[a], self.present[a]), rate(self.agree[b], self.present[b]));
        let pab = rate(joint, self.both_present[a * self.fields + b]);
        Some((pab / (pa * pb).max(f64::MIN_POSITIVE), pab / pa.min(pb).max(f64::MIN_POSITIVE)))
    }

    /// Groups of fields that carry the same information: connected components of the
    /// dependent pairs.
    pub fn groups(&self, columns: &[String]) -> Vec<DependentGroup> {
        let mut pairs = Vec::new();
        for a in 0..self.fields {
            for b in a + 1..self.fields {
                let Some((lift, implied)) = self.dependence(a, b) else { continue };
                if lift >= MIN_LIFT && implied >= MIN_IMPLIED {
                    pairs.push(DependentGroup { fields: vec![a, b], columns: Vec::new(), lift, u_shared: Vec::new(), shared_odds: None });
                }
            }
        }
        merge_groups(columns, &[], pairs)
    }
}

/// Declared groups (field indexes) and detected ones, overlapping groups joined into one.
pub fn merge_groups(columns: &[String], declared: &[Vec<usize>], detected: Vec<DependentGroup>) -> Vec<DependentGroup> {
    let mut component: Vec<usize> = (0..columns.len()).collect();
    let mut lift = vec![0.0f64; columns.len()];
    let groups = declared.iter().map(|fields| (fields.as_slice(), 0.0)).chain(detected.iter().map(|g| (g.fields.as_slice(), g.lift)));
    for (fields, group_lift) in groups {
        let Some(&first) = fields.first() else { continue };
        let to = component[first];
        for &field in fields {
            let from = component[field];
            component.iter_mut().filter(|c| **c == from).for_each(|c| *c = to);
        }
        lift[to] = lift[to].max(group_lift);
    }
    (0..columns.len())
        .filter_map(|root| {
            let fields: Vec<usize> = (0..columns.len()).filter(|&f| component[f] == root).collect();
            let lift = fields.iter().map(|&f| lift[f]).fold(0.0, f64::max);
            (fields.len() > 1).then(|| DependentGroup {
                columns: fields.iter().map(|&f| columns[f].clone()).collect(),
                fields,
                lift,
                u_shared: Vec::new(),
                shared_odds: None,
            })
        })
        .collect()
}

/// Which fields are scored together: every field in exactly one unit, in field order of
/// each unit's first member. A field in no group is a unit of its own.
pub fn units(fields: usize, groups: &[DependentGroup]) -> Vec<Vec<usize>> {
    let mut units: Vec<Vec<usize>> = Vec::new();
    let mut placed = vec![false; fields];
    for field in 0..fields {
        if placed[field] {
            continue;
        }
        let unit = groups.iter().find(|g| g.fields.contains(&field)).map_or_else(|| vec![field], |g| g.fields.clone());
        for &f in &unit {
            placed[f] = true;
        }
        units.push(unit);
    }
    units
}

/// The weight a group of dependent fields adds: its strongest agreement plus its strongest
/// disagreement. One field alone adds its own weight.
pub fn combine(weights: impl IntoIterator<Item = f64>) -> f64 {
    let (mut best, mut worst) = (0.0f64, 0.0f64);
    for w in weights {
        best = best.max(w);
        worst = worst.min(w);
    }
    best + worst
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combining_counts_the_strongest_evidence_each_way_once() {
        assert_eq!(combine([5.0]), 5.0);
        assert_eq!(combine([-3.0]), -3.0);
        assert_eq!(combine([13.9, 10.9, 5.4]), 13.9);
        assert_eq!(combine([-1.0, -2.5, -0.5]), -2.5);
        assert_eq!(combine([8.0, -2.0, 3.0]), 6.0);
        assert_eq!(combine([]), 0.0);
    }

    #[test]
    fn declared_and_detected_groups_that_overlap_become_one() {
        let columns: Vec<String> = ["surname", "email", "suburb", "postcode", "state", "dob"].map(String::from).to_vec();
        let detected = vec![DependentGroup { fields: vec![2, 3, 4], columns: vec![], lift: 300.0, u_shared: vec![], shared_odds: None }];
        let merged = merge_groups(&columns, &[vec![0, 1, 2]], detected);
        assert_eq!(merged.len(), 1);
        assert_eq!(merged[0].fields, [0, 1, 2, 3, 4]);
        assert_eq!(merged[0].lift, 300.0);
        assert_eq!(merge_groups(&columns, &[], Vec::new()), Vec::new());
    }

    #[test]
    fn units_cover_every_field_once() {
        let group =
            DependentGroup { fields: vec![1, 3], columns: vec!["b".into(), "d".into()], lift: 10.0, u_shared: vec![], shared_odds: None };
        assert_eq!(units(4, &[group]), vec![vec![0], vec![1, 3], vec![2]]);
        assert_eq!(units(2, &[]), vec![vec![0], vec![1]]);
    }
}
