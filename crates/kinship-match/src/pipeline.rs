//! Batch deduplication: train, score every candidate pair, cluster.

use rayon::prelude::*;

use crate::blocking::{column_index, Blocking, RuleStats};
use crate::cluster::{cluster_with, Clustering, Linkage, ScoredPair};
use crate::config::MatchConfig;
use crate::dataset::{Column, Dataset};
use crate::model::{weight_from_probability, Model, Scorer};
use crate::train::train_with_blocking;
use crate::{MatchError, Progress};

/// Pairs at or above the threshold and what blocking did.
#[derive(Debug, Clone)]
pub struct Prediction {
    pub pairs: Vec<ScoredPair>,
    pub blocking: Vec<RuleStats>,
    /// Candidate pairs compared (each once, over all rules).
    pub compared_pairs: u64,
}

/// Scores every candidate pair and keeps those at or above the threshold. Pairs are
/// scored as blocks stream by; only the kept ones are stored.
pub fn predict(dataset: &Dataset, config: &MatchConfig, scorer: &Scorer, progress: &dyn Progress) -> Result<Prediction, MatchError> {
    let blocking = Blocking::new(dataset, &config.blocking, config.max_block_size)?;
    Ok(predict_with_blocking(dataset, config, scorer, &blocking, progress))
}

/// [`predict`] over blocks already built from `config.blocking`.
pub fn predict_with_blocking(
    dataset: &Dataset,
    config: &MatchConfig,
    scorer: &Scorer,
    blocking: &Blocking,
    progress: &dyn Progress,
) -> Prediction {
    let stats = blocking.stats();
    progress.phase("scoring candidate pairs", stats.iter().map(|s| s.pairs).sum());
    let min_weight = weight_from_probability(config.threshold);
    let mut pairs = Vec::new();
    let mut compared_pairs = 0;
    for (rule, rule_stats) in stats.iter().enumerate() {
        let (kept, compared) = blocking
            .rule_pairs(rule, true, 1)
            .fold(
                || (Vec::new(), 0u64),
                |(mut kept, compared), (a, b)| {
                    if let Some(weight) = scorer.score(dataset, a, b, min_weight) {
                        kept.push(ScoredPair { left: a, right: b, weight });
                    }
                    (kept, compared + 1)
                },
            )
            .reduce(
                || (Vec::new(), 0),
                |(mut a, n), (b, m)| {
                    a.extend(b);
                    (a, n + m)
                },
            );
        pairs.extend(kept);
        compared_pairs += compared;
        progress.advance(rule_stats.pairs);
    }
    Prediction { pairs, blocking: stats, compared_pairs }
}

/// Everything a batch deduplication produced.
#[derive(Debug)]
pub struct Dedupe {
    pub scorer: Scorer,
    pub prediction: Prediction,
    pub clustering: Clustering,
}

impl Dedupe {
    pub fn model(&self) -> &Model {
        self.scorer.model()
    }
}

/// Trains a model on the dataset itself, scores candidate pairs and clusters them.
pub fn dedupe(dataset: &Dataset, config: &MatchConfig, progress: &dyn Progress) -> Result<Dedupe, MatchError> {
    dedupe_with(dataset, config, progress, &mut |_, _, _| true)
}

/// [`dedupe`] where `accept(left, right, weight)` has the last say on each merge the
/// clustering would make (the resolver's guard).
pub fn dedupe_with(
    dataset: &Dataset,
    config: &MatchConfig,
    progress: &dyn Progress,
    accept: &mut dyn FnMut(u32, u32, f64) -> bool,
) -> Result<Dedupe, MatchError> {
    progress.phase("building blocks", 0);
    let blocking = Blocking::new(dataset, &config.blocking, config.max_block_size)?;
    let model = train_with_blocking(dataset, config, &blocking, progress)?;
    let scorer = Scorer::new(dataset, config, &model)?;
    let prediction = predict_with_blocking(dataset, config, &scorer, &blocking, progress);
    progress.phase("clustering", prediction.pairs.len() as u64);
    let unique =
        config.unique_columns.iter().map(|name| column_index(dataset, name).map(|i| dataset.column(i))).collect::<Result<Vec<_>, _>>()?;
    let clustering = cluster_pairs(dataset, config, &scorer, &prediction.pairs, &unique, accept);
    progress.advance(prediction.pairs.len() as u64);
    Ok(Dedupe { scorer, prediction, clustering })
}

/// Clusters scored pairs as the configuration says (with or without the linkage check);
/// `accept` may refuse a merge the engine would make.
fn cluster_pairs(
    dataset: &Dataset,
    config: &MatchConfig,
    scorer: &Scorer,
    pairs: &[ScoredPair],
    unique: &[&Column],
    accept: &mut dyn FnMut(u32, u32, f64) -> bool,
) -> Clustering {
    let score = |a: u32, b: u32| scorer.score(dataset, a, b, f64::NEG_INFINITY).unwrap_or(f64::NEG_INFINITY);
    let linkage = Linkage {
        min_weight: weight_from_probability(config.threshold),
        unique,
        score: config.cluster_linkage_check.then_some(&score as &(dyn Fn(u32, u32) -> f64 + Sync)),
    };
    cluster_with(dataset.len(), pairs, &linkage, accept)
}
