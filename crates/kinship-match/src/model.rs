//! The Fellegi-Sunter model and pair scoring.
//!
//! Each field level has m (probability of the level among true matches) and u (among
//! non-matches). A pair's match weight is `log2(prior / (1 - prior)) + Σ log2(m / u)`
//! over its fields' levels, and its probability is `1 / (1 + 2^-weight)`. Missing values
//! (level 0) add nothing.

use serde::{Deserialize, Serialize};

use crate::blocking::column_index;
use crate::compare::{Comparison, Value, NULL_LEVEL};
use crate::config::{MatchConfig, MAX_FIELDS};
use crate::dataset::{normalize_value, Dataset, NULL_ID, UNKNOWN_ID};
use crate::dependence::{combine, units, DependentGroup};
use crate::MatchError;

/// Trained parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Model {
    /// Probability that two records drawn at random are the same entity.
    pub prior: f64,
    pub fields: Vec<FieldParams>,
    /// Fields that carry the same information, each group scored as one piece of evidence.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dependent: Vec<DependentGroup>,
    /// Estimates that training found implausible and what it did about them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// m and u of one field, indexed by level (index 0, "null", is unused).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldParams {
    pub column: String,
    pub levels: Vec<String>,
    pub m: Vec<f64>,
    pub u: Vec<f64>,
}

impl FieldParams {
    /// The weight (log2 Bayes factor) of a level.
    pub fn weight(&self, level: u8) -> f64 {
        if level == NULL_LEVEL {
            0.0
        } else {
            (self.m[level as usize] / self.u[level as usize]).log2()
        }
    }
}

impl Model {
    pub fn prior_weight(&self) -> f64 {
        weight_from_probability(self.prior)
    }
}

/// `log2(p / (1 - p))`.
pub fn weight_from_probability(p: f64) -> f64 {
    (p / (1.0 - p)).log2()
}

/// `1 / (1 + 2^-w)`.
pub fn probability_from_weight(weight: f64) -> f64 {
    1.0 / (1.0 + (-weight).exp2())
}

/// How far above the field's average exact weight a rare value may lift it. Unbounded, a
/// value seen twice in a million rows would weigh 20 bits and outvote every other field.
const MAX_TF_BOOST: f64 = 4.0;

/// Marks a level not computed yet (real levels are below 16).
const UNSET_LEVEL: u8 = u8::MAX;

/// A pair's levels packed four bits per field (field `f` at bits `4f..4f+4`).
pub type Pattern = u64;

pub(crate) fn pattern_level(pattern: Pattern, field: usize) -> u8 {
    ((pattern >> (4 * field)) & 0xF) as u8
}

/// The configured fields compiled against a dataset: column, comparison, and each
/// dictionary value's precomputed feature.
#[derive(Debug, Clone)]
pub struct PreparedFields {
    fields: Vec<PreparedField>,
    /// Value id of every field of every row, row by row (`row * fields + field`): a pair's
    /// comparison then reads two cache lines instead of one per field and row.
    row_ids: Vec<u32>,
}

#[derive(Debug, Clone)]
struct PreparedField {
    column: usize,
    /// The field whose values this one is also compared with, crosswise (given name and
    /// surname entered the wrong way round).
    swap_partner: Option<usize>,
    comparison: Comparison,
    features: Vec<u64>,
}

impl PreparedFields {
    pub fn new(dataset: &Dataset, config: &MatchConfig) -> Result<Self, MatchError> {
        use rayon::prelude::*;
        let partner_of = |field: &crate::config::FieldConfig| {
            config.fields.iter().position(|other| {
                other.swap_with.as_deref() == Some(field.column.as_str()) || field.swap_with.as_deref() == Some(other.column.as_str())
            })
        };
        let fields = config
            .fields
            .iter()
            .map(|field| {
                let index = column_index(dataset, &field.column)?;
                let column = dataset.column(index);
                let features =
                    (0..column.dictionary_len() as u32).into_par_iter().map(|id| field.comparison.feature(column.value(id))).collect();
                Ok(PreparedField { swap_partner: partner_of(field), column: index, comparison: field.comparison.clone(), features })
            })
            .collect::<Result<Vec<PreparedField>, MatchError>>()?;
        let row_ids = (0..dataset.len()).flat_map(|row| fields.iter().map(move |f| dataset.column(f.column).id(row))).collect();
        Ok(PreparedFields { fields, row_ids })
    }

    pub fn len(&self) -> usize {
        self.fields.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    #[inline]
    fn row_value<'d>(&self, dataset: &'d Dataset, field: usize, row: u32) -> Value<'d> {
        let f = &self.fields[field];
        let column = dataset.column(f.column);
        let id = self.row_ids[row as usize * self.fields.len() + field];
        Value { id, text: column.value(id), feature: f.features[id as usize] }
    }

    /// Values of a record that is not in the dataset (raw values in the dataset's column
    /// order); known values reuse the dictionary id and feature.
    pub(crate) fn record_values(&self, dataset: &Dataset, record: &[&str]) -> Vec<RecordValue> {
        self.fields
            .iter()
            .map(|f| {
                let raw = record.get(f.column).copied().unwrap_or("");
                let text = normalize_value(raw).map(|v| v.into_owned()).unwrap_or_default();
                let id = dataset.column(f.column).lookup(&text);
                let feature = match id {
                    NULL_ID => 0,
                    UNKNOWN_ID => f.comparison.feature(&text),
                    known => f.features[known as usize],
                };
                RecordValue { id, text, feature }
            })
            .collect()
    }

    /// Level of `field` and, if it has a swap partner, the partner's level. The two are
    /// compared crosswise as well, and the crosswise levels win when they agree more.
    #[inline]
    fn levels_of<'v>(
        &self,
        field: usize,
        left: &impl Fn(usize) -> Value<'v>,
        right: &impl Fn(usize) -> Value<'v>,
    ) -> (u8, Option<(usize, u8)>) {
        let comparison = &self.fields[field].comparison;
        let straight = comparison.level(&left(field), &right(field));
        let Some(partner) = self.fields[field].swap_partner else {
            return (straight, None);
        };
        let partner_straight = comparison.level(&left(partner), &right(partner));
        let exact = comparison.exact_level();
        if straight == exact && partner_straight == exact {
            return (straight, Some((partner, partner_straight)));
        }
        // dictionary ids belong to one column, so crosswise values compare by text
        let cross = |v: Value<'v>| Value { id: UNKNOWN_ID, ..v };
        let crossed = comparison.level(&cross(left(field)), &cross(right(partner)));
        let partner_crossed = comparison.level(&cross(left(partner)), &cross(right(field)));
        if crossed + partner_crossed > straight + partner_straight {
            (crossed, Some((partner, partner_crossed)))
        } else {
            (straight, Some((partner, partner_straight)))
        }
    }

    fn levels_with<'v>(&self, left: impl Fn(usize) -> Value<'v>, right: impl Fn(usize) -> Value<'v>) -> [u8; MAX_FIELDS] {
        let mut levels = [UNSET_LEVEL; MAX_FIELDS];
        for field in 0..self.fields.len() {
            if levels[field] == UNSET_LEVEL {
                let (level, partner) = self.levels_of(field, &left, &right);
                levels[field] = level;
                if let Some((partner, partner_level)) = partner {
                    levels[partner] = partner_level;
                }
            }
        }
        levels
    }

    /// Levels of every field for a pair of rows.
    pub fn pattern(&self, dataset: &Dataset, a: u32, b: u32) -> Pattern {
        let levels = self.levels_with(|f| self.row_value(dataset, f, a), |f| self.row_value(dataset, f, b));
        (0..self.fields.len()).fold(0, |pattern, f| pattern | (u64::from(levels[f]) << (4 * f)))
    }

    pub(crate) fn comparison(&self, field: usize) -> &Comparison {
        &self.fields[field].comparison
    }

    pub(crate) fn column_of(&self, field: usize) -> usize {
        self.fields[field].column
    }
}

/// A field value of a record outside the dataset.
#[derive(Debug, Clone)]
pub(crate) struct RecordValue {
    id: u32,
    text: String,
    feature: u64,
}

impl RecordValue {
    fn as_value(&self) -> Value<'_> {
        Value { id: self.id, text: &self.text, feature: self.feature }
    }
}

/// Why a pair scored what it did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Explanation {
    pub prior_weight: f64,
    pub fields: Vec<FieldContribution>,
    pub match_weight: f64,
    pub probability: f64,
    /// The group of dependent fields the pair shares (a household), when what was measured
    /// among pairs that share it applies: its odds in place of the prior and the group's
    /// own evidence, and the caps on other fields.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shared_group: Option<Vec<String>>,
}

/// One field's part in a pair's score.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldContribution {
    pub column: String,
    pub level: u8,
    pub label: String,
    /// What the field added to the match weight.
    pub weight: f64,
    /// The weight comes from how rare the shared value is, not the field average.
    pub term_frequency_adjusted: bool,
    /// When the field carries the same information as others (a postcode and its town),
    /// its own weight, of which the group counted only the strongest agreement and the
    /// strongest disagreement.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub own_weight: Option<f64>,
    /// When the pair shares a group of dependent fields (a household) and this field's
    /// agreement is common between different people who share it (twins' birth date), its
    /// weight before that was taken into account.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uncapped_weight: Option<f64>,
}

/// Scores pairs with a trained model.
#[derive(Debug, Clone)]
pub struct Scorer {
    prepared: PreparedFields,
    model: Model,
    /// Weight per field and level.
    weights: Vec<Vec<f64>>,
    /// Exact-match weight per dictionary value, for term-frequency adjusted fields.
    tf_weights: Vec<Option<Vec<f64>>>,
    /// Units (a field, or a group of dependent fields) in evaluation order: cheap
    /// comparisons first so hopeless pairs stop early.
    order: Vec<Vec<usize>>,
    /// `best_remaining[k]`: the most the units `order[k..]` can still add.
    best_remaining: Vec<f64>,
    prior_weight: f64,
    /// Per dependent group with `u_shared`: the most each field's level may weigh between
    /// records that share the group (`+inf` for the group's own members).
    shared_caps: Vec<(usize, Vec<Vec<f64>>)>,
}

impl Scorer {
    pub fn new(dataset: &Dataset, config: &MatchConfig, model: &Model) -> Result<Self, MatchError> {
        let prepared = PreparedFields::new(dataset, config)?;
        if model.fields.len() != prepared.len() {
            return Err(MatchError::Config("model and configuration have different fields".into()));
        }
        let weights: Vec<Vec<f64>> = model.fields.iter().map(|f| (0..f.levels.len() as u8).map(|l| f.weight(l)).collect()).collect();
        let tf_weights: Vec<Option<Vec<f64>>> = config
            .fields
            .iter()
            .zip(&model.fields)
            .enumerate()
            .map(|(i, (field, params))| {
                field.tf_adjust.then(|| {
                    let column = dataset.column(prepared.column_of(i));
                    let m_exact = *params.m.last().expect("levels");
                    let total = column.non_null_rows().max(1) as f64;
                    let ceiling = params.weight(params.m.len() as u8 - 1) + MAX_TF_BOOST;
                    (0..column.dictionary_len() as u32)
                        .map(|id| (m_exact / (f64::from(column.count(id).max(1)) / total)).log2().min(ceiling))
                        .collect()
                })
            })
            .collect();
        let cost = |c: &Comparison| match c {
            Comparison::Exact | Comparison::Numeric { .. } => 0,
            Comparison::Date { .. } | Comparison::Levenshtein { .. } => 1,
            Comparison::JaroWinkler { .. } => 2,
        };
        let mut order = units(prepared.len(), &model.dependent);
        order.sort_by_key(|unit| unit.iter().map(|&f| cost(prepared.comparison(f))).max());
        let best = |f: usize| {
            let level_best = weights[f].iter().copied().fold(0.0, f64::max);
            let tf_best = tf_weights[f].iter().flatten().copied().fold(0.0, f64::max);
            level_best.max(tf_best)
        };
        let mut best_remaining = vec![0.0; order.len() + 1];
        for k in (0..order.len()).rev() {
            // a group adds at most its best member's agreement, or what sharing it is worth
            let shared = model.dependent.iter().find(|g| g.fields == order[k]).and_then(|g| g.shared_odds);
            let shared_best = shared.map_or(0.0, |odds| odds - model.prior_weight());
            best_remaining[k] = best_remaining[k + 1] + order[k].iter().map(|&f| best(f)).fold(shared_best, f64::max);
        }
        let shared_caps = model
            .dependent
            .iter()
            .enumerate()
            .filter(|(_, group)| !group.u_shared.is_empty() || group.shared_odds.is_some())
            .map(|(g, group)| {
                let caps = model
                    .fields
                    .iter()
                    .enumerate()
                    .map(|(f, params)| match group.u_shared.get(f).filter(|u| u.len() == params.m.len()) {
                        // level 0 (missing) adds nothing and is never capped
                        Some(u) => params
                            .m
                            .iter()
                            .zip(u)
                            .enumerate()
                            .map(|(level, (m, u))| Some((m / u).log2()).filter(|cap| level > 0 && cap.is_finite()).unwrap_or(f64::INFINITY))
                            .collect(),
                        None => vec![f64::INFINITY; params.m.len()],
                    })
                    .collect();
                (g, caps)
            })
            .collect();
        Ok(Scorer {
            prepared,
            model: model.clone(),
            weights,
            tf_weights,
            order,
            best_remaining,
            prior_weight: model.prior_weight(),
            shared_caps,
        })
    }

    /// The group a pair with these `levels` shares, with its caps, if `unit` (a unit of
    /// `order`) is one that has them.
    fn shared_group(&self, unit: &[usize], levels: impl Fn(usize) -> u8) -> Option<(&DependentGroup, &[Vec<f64>])> {
        let exact = |f: usize| self.prepared.comparison(f).exact_level();
        self.shared_caps
            .iter()
            .map(|(g, caps)| (&self.model.dependent[*g], caps.as_slice()))
            .find(|(group, _)| group.fields == unit && group.shared(&levels, exact))
    }

    pub fn model(&self) -> &Model {
        &self.model
    }

    pub fn prepared(&self) -> &PreparedFields {
        &self.prepared
    }

    #[inline]
    fn field_weight(&self, field: usize, level: u8, left: &Value) -> (f64, bool) {
        if level == self.prepared.comparison(field).exact_level() && left.id != UNKNOWN_ID {
            if let Some(tf) = &self.tf_weights[field] {
                return (tf[left.id as usize], true);
            }
        }
        (self.weights[field][level as usize], false)
    }

    fn score_values<'v>(&self, left: impl Fn(usize) -> Value<'v>, right: impl Fn(usize) -> Value<'v>, min_weight: f64) -> Option<f64> {
        let mut weight = self.prior_weight;
        // levels of swap partners are decided together with the first of the two
        let mut decided = [UNSET_LEVEL; MAX_FIELDS];
        // each field's weight before any cap, to cap units scored before a shared group
        let mut raw = [0.0f64; MAX_FIELDS];
        let mut caps: Option<&[Vec<f64>]> = None;
        let contribution = |unit: &[usize], raw: &[f64; MAX_FIELDS], decided: &[u8; MAX_FIELDS], caps: Option<&[Vec<f64>]>| {
            let capped = |f: usize| caps.map_or(raw[f], |caps| raw[f].min(caps[f][decided[f] as usize]));
            match unit {
                [field] => capped(*field),
                group => combine(group.iter().map(|&f| capped(f))),
            }
        };
        for (k, unit) in self.order.iter().enumerate() {
            if weight + self.best_remaining[k] < min_weight {
                return None;
            }
            for &field in unit {
                if decided[field] == UNSET_LEVEL {
                    let (level, partner) = self.prepared.levels_of(field, &left, &right);
                    decided[field] = level;
                    if let Some((partner, partner_level)) = partner {
                        decided[partner] = partner_level;
                    }
                }
                let (a, b) = (left(field), right(field));
                // use the side with a dictionary id for the term frequency
                let known = if a.id == UNKNOWN_ID { b } else { a };
                raw[field] = self.field_weight(field, decided[field], &known).0;
            }
            if caps.is_none() && unit.len() > 1 && !self.shared_caps.is_empty() {
                let shared = self.shared_group(unit, |f| decided[f]);
                if let Some((group, group_caps)) = shared {
                    caps = Some(group_caps);
                    // the pair shares this group: what was added before counts capped
                    for earlier in &self.order[..k] {
                        weight += contribution(earlier, &raw, &decided, caps) - contribution(earlier, &raw, &decided, None);
                    }
                    if let Some(odds) = group.shared_odds {
                        // the measured odds of one person among pairs sharing it replace
                        // the prior and the group's own evidence
                        weight += odds - self.prior_weight;
                        continue;
                    }
                }
            }
            weight += contribution(unit, &raw, &decided, caps);
        }
        (weight >= min_weight).then_some(weight)
    }

    /// Match weight of two rows, or `None` when it is below `min_weight` (computed lazily:
    /// a pair stops being compared once it cannot reach `min_weight`).
    pub fn score(&self, dataset: &Dataset, a: u32, b: u32, min_weight: f64) -> Option<f64> {
        let p = &self.prepared;
        self.score_values(|f| p.row_value(dataset, f, a), |f| p.row_value(dataset, f, b), min_weight)
    }

    /// Match weight of two records that are not rows of the dataset, as [`Scorer::score`].
    pub(crate) fn score_records(&self, left: &[RecordValue], right: &[RecordValue], min_weight: f64) -> Option<f64> {
        self.score_values(|f| left[f].as_value(), |f| right[f].as_value(), min_weight)
    }

    pub(crate) fn score_record(&self, dataset: &Dataset, record: &[RecordValue], row: u32, min_weight: f64) -> Option<f64> {
        let p = &self.prepared;
        self.score_values(|f| p.row_value(dataset, f, row), |f| record[f].as_value(), min_weight)
    }

    /// Per-field levels, labels and weights of a pair of rows.
    pub fn explain(&self, dataset: &Dataset, a: u32, b: u32) -> Explanation {
        let mut fields = Vec::with_capacity(self.prepared.len());
        let mut total = self.prior_weight;
        let p = &self.prepared;
        let levels = p.levels_with(|f| p.row_value(dataset, f, a), |f| p.row_value(dataset, f, b));
        // the first group in scoring order that the pair shares, as `score` finds it
        let shared = self.order.iter().find_map(|unit| self.shared_group(unit, |f| levels[f]));
        let caps = shared.map(|(_, caps)| caps);
        for (f, params) in self.model.fields.iter().enumerate() {
            let left = self.prepared.row_value(dataset, f, a);
            let right = self.prepared.row_value(dataset, f, b);
            let level = levels[f];
            let (weight, tf) = self.field_weight(f, level, if left.id == UNKNOWN_ID { &right } else { &left });
            let cap = caps.map_or(f64::INFINITY, |caps| caps[f][level as usize]);
            fields.push(FieldContribution {
                column: params.column.clone(),
                level,
                label: params.levels[level as usize].clone(),
                weight: weight.min(cap),
                term_frequency_adjusted: tf,
                own_weight: None,
                uncapped_weight: (weight > cap).then_some(weight),
            });
        }
        // a group of dependent fields counts its strongest agreement and disagreement once:
        // the member that carries each keeps its weight, the others add nothing
        let shared_odds = shared.and_then(|(group, _)| group.shared_odds.map(|odds| (group, odds)));
        for unit in self.order.iter().filter(|unit| unit.len() > 1) {
            let strongest =
                unit.iter().copied().filter(|&f| fields[f].weight > 0.0).max_by(|&x, &y| fields[x].weight.total_cmp(&fields[y].weight));
            let weakest =
                unit.iter().copied().filter(|&f| fields[f].weight < 0.0).min_by(|&x, &y| fields[x].weight.total_cmp(&fields[y].weight));
            // a shared group's worth is the odds measured among pairs that share it, shown on
            // its strongest member
            let odds = shared_odds.filter(|(group, _)| &group.fields == unit).map(|(_, odds)| odds - self.prior_weight);
            for &f in unit {
                fields[f].own_weight = Some(fields[f].weight);
                if odds.is_some() || (Some(f) != strongest && Some(f) != weakest) {
                    fields[f].weight = 0.0;
                }
            }
            if let (Some(odds), Some(&first)) = (odds, unit.first()) {
                fields[strongest.unwrap_or(first)].weight = odds;
            }
        }
        total += fields.iter().map(|f| f.weight).sum::<f64>();
        Explanation {
            prior_weight: self.prior_weight,
            fields,
            match_weight: total,
            probability: probability_from_weight(total),
            shared_group: shared.map(|(group, _)| group.columns.clone()),
        }
    }
}
