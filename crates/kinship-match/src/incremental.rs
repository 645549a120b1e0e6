//! Matching one new record against an indexed dataset, for resolution on arrival.

use crate::blocking::{BlockIndex, Blocking};
use crate::config::MatchConfig;
use crate::dataset::Dataset;
use crate::model::{probability_from_weight, weight_from_probability, Model, Scorer};
use crate::MatchError;

/// An existing row that a new record matches.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MatchCandidate {
    pub row: u32,
    pub probability: f64,
    pub weight: f64,
}

/// Blocking indexes and a scorer over a fixed dataset.
#[derive(Debug)]
pub struct IncrementalMatcher {
    dataset: Dataset,
    scorer: Scorer,
    blocking: Blocking,
    index: BlockIndex,
    min_weight: f64,
}

impl IncrementalMatcher {
    /// Indexes `dataset` with the configuration's blocking rules.
    pub fn new(dataset: Dataset, config: &MatchConfig, model: &Model) -> Result<Self, MatchError> {
        let scorer = Scorer::new(&dataset, config, model)?;
        let blocking = Blocking::new(&dataset, &config.blocking, config.max_block_size)?;
        let index = blocking.index();
        Ok(IncrementalMatcher { dataset, scorer, blocking, index, min_weight: weight_from_probability(config.threshold) })
    }

    pub fn dataset(&self) -> &Dataset {
        &self.dataset
    }

    /// Rows matching `record` at or above the threshold, strongest first. `record` holds
    /// raw values in the order of [`Dataset::columns`] (empty for missing).
    pub fn match_one(&self, record: &[&str]) -> Vec<MatchCandidate> {
        let values = self.scorer.prepared().record_values(&self.dataset, record);
        let mut matches: Vec<MatchCandidate> = self
            .blocking
            .candidates(record, &self.index)
            .into_iter()
            .filter_map(|row| {
                let weight = self.scorer.score_record(&self.dataset, &values, row, self.min_weight)?;
                Some(MatchCandidate { row, probability: probability_from_weight(weight), weight })
            })
            .collect();
        matches.sort_by(|a, b| b.weight.total_cmp(&a.weight).then(a.row.cmp(&b.row)));
        matches
    }
}
