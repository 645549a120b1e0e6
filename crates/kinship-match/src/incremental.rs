//! Matching one new record against an indexed dataset, for resolution on arrival.

use crate::blocking::{BlockIndex, Blocking};
use crate::config::MatchConfig;
use crate::dataset::Dataset;
use crate::model::{probability_from_weight, weight_from_probability, Model, RecordValue, Scorer};
use crate::MatchError;
use rustc_hash::FxHashMap;

/// An existing row that a new record matches.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MatchCandidate {
    pub row: u32,
    pub probability: f64,
    pub weight: f64,
}

/// Blocking indexes and a scorer over a dataset, and rows added since it was indexed.
///
/// Added rows are held apart (their prepared values, and per rule a key → rows map) rather
/// than merged into the packed blocks, which would mean re-sorting them: a profile created
/// on arrival becomes a candidate at once. The scorer keeps the dataset's term frequencies;
/// callers rebuild from scratch once the added rows are many.
#[derive(Debug)]
pub struct IncrementalMatcher {
    dataset: Dataset,
    scorer: Scorer,
    blocking: Blocking,
    index: BlockIndex,
    min_weight: f64,
    max_block_size: usize,
    added: Vec<Vec<RecordValue>>,
    /// Per rule: key → added rows (numbered after the dataset's).
    added_blocks: Vec<FxHashMap<u64, Vec<u32>>>,
}

impl IncrementalMatcher {
    /// Indexes `dataset` with the configuration's blocking rules.
    pub fn new(dataset: Dataset, config: &MatchConfig, model: &Model) -> Result<Self, MatchError> {
        let scorer = Scorer::new(&dataset, config, model)?;
        let blocking = Blocking::new(&dataset, &config.blocking, config.max_block_size)?;
        let index = blocking.index();
        let added_blocks = vec![FxHashMap::default(); blocking.rule_count()];
        Ok(IncrementalMatcher {
            dataset,
            scorer,
            blocking,
            index,
            min_weight: weight_from_probability(config.threshold),
            max_block_size: config.max_block_size,
            added: Vec::new(),
            added_blocks,
        })
    }

    /// Adds a row (raw values in the order of [`Dataset::columns`]) that later records are
    /// matched against; returns its row number, which follows the dataset's rows.
    pub fn add_row(&mut self, record: &[&str]) -> u32 {
        let row = (self.dataset.len() + self.added.len()) as u32;
        for (blocks, key) in self.added_blocks.iter_mut().zip(self.blocking.record_keys(record)) {
            if let Some(key) = key {
                blocks.entry(key).or_default().push(row);
            }
        }
        self.added.push(self.scorer.prepared().record_values(&self.dataset, record));
        row
    }

    /// Rows added since the dataset was indexed.
    pub fn added_len(&self) -> usize {
        self.added.len()
    }

    pub fn dataset(&self) -> &Dataset {
        &self.dataset
    }

    /// Rows matching `record` at or above the threshold, strongest first. `record` holds
    /// raw values in the order of [`Dataset::columns`] (empty for missing).
    pub fn match_one(&self, record: &[&str]) -> Vec<MatchCandidate> {
        let values = self.scorer.prepared().record_values(&self.dataset, record);
        let indexed = self.dataset.len() as u32;
        let mut rows = self.blocking.candidates(record, &self.index);
        // Added rows of each block the record falls in, unless the block has grown past the
        // size blocking skips (as the packed blocks do).
        for (rule, key) in self.blocking.record_keys(record).into_iter().enumerate() {
            let Some(key) = key else { continue };
            if let Some(added) = self.added_blocks[rule].get(&key) {
                if self.blocking.block_len(rule, key, &self.index) + added.len() <= self.max_block_size {
                    rows.extend_from_slice(added);
                }
            }
        }
        rows.sort_unstable();
        rows.dedup();
        let mut matches: Vec<MatchCandidate> = rows
            .into_iter()
            .filter_map(|row| {
                let weight = match row.checked_sub(indexed) {
                    None => self.scorer.score_record(&self.dataset, &values, row, self.min_weight)?,
                    Some(added) => self.scorer.score_records(&values, &self.added[added as usize], self.min_weight)?,
                };
                Some(MatchCandidate { row, probability: probability_from_weight(weight), weight })
            })
            .collect();
        matches.sort_by(|a, b| b.weight.total_cmp(&a.weight).then(a.row.cmp(&b.row)));
        matches
    }
}
