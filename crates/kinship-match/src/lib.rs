//! Fellegi-Sunter record matching for Kinship: find which records are the same person.
//!
//! The pipeline, each step in its own module:
//! 1. [`dataset`]: records as interned columns;
//! 2. [`blocking`]: candidate pairs from an OR of blocking rules;
//! 3. [`compare`]: per-field comparison levels;
//! 4. [`train`] and [`em`]: u from random pairs, the prior from deterministic rules, m by
//!    expectation-maximisation, all without labels;
//! 5. [`model`]: match weights, probabilities and explanations;
//! 6. [`cluster`]: union-find that respects unique columns;
//! 7. [`incremental`]: one new record against an indexed dataset.
//!
//! [`config`] is the `match.toml` and [`infer`] guesses one from a sample.

pub mod blocking;
pub mod cluster;
pub mod compare;
pub mod config;
pub mod dataset;
pub mod dependence;
pub mod em;
pub mod incremental;
pub mod infer;
pub mod model;
mod nicknames;
pub mod pipeline;
pub mod train;

pub use blocking::{BlockingRule, KeyExpr, RuleStats};
pub use cluster::{cluster, cluster_with, ClusterReport, Clustering, Linkage, ScoredPair};
pub use compare::Comparison;
pub use config::{FieldConfig, MatchConfig, PriorConfig, TrainingConfig};
pub use dataset::Dataset;
pub use dependence::DependentGroup;
pub use incremental::{IncrementalMatcher, MatchCandidate};
pub use infer::infer_config;
pub use model::{Explanation, FieldContribution, Model, Scorer};
pub use pipeline::{dedupe, dedupe_with, predict, Dedupe, Prediction};
pub use train::train;

/// Why matching could not run.
#[derive(Debug, thiserror::Error)]
pub enum MatchError {
    #[error("column `{column}` is not in the data; available columns: {}", available.join(", "))]
    UnknownColumn { column: String, available: Vec<String> },
    #[error("invalid match configuration: {0}")]
    Config(String),
}

/// Receives progress of long phases; the engine calls it from worker threads.
pub trait Progress: Sync {
    /// A new phase of `total` units of work starts.
    fn phase(&self, _name: &str, _total: u64) {}
    /// `done` more units of the current phase are finished.
    fn advance(&self, _done: u64) {}
}

/// Progress that goes nowhere.
pub struct NoProgress;

impl Progress for NoProgress {}
