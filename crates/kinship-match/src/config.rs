//! The matching configuration (`match.toml`).

use serde::{Deserialize, Serialize};

use crate::blocking::BlockingRule;
use crate::compare::Comparison;
use crate::MatchError;

/// Everything the engine needs to know about a dataset.
///
/// ```toml
/// threshold = 0.9
/// unique_columns = ["user_id"]
/// blocking = [["surname", "date_of_birth"], ["substr(given_name,0,3)", "postcode"]]
///
/// [prior]
/// rules = [["given_name", "surname", "date_of_birth"]]
/// recall = 0.7
///
/// [[fields]]
/// column = "given_name"
/// kind = "jaro_winkler"
/// thresholds = [0.92, 0.8]
/// phonetic = true
/// tf_adjust = true
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchConfig {
    /// Pairs at or above this match probability are linked.
    #[serde(default = "default_threshold")]
    pub threshold: f64,
    /// Columns of which one person has at most one value: clusters holding two different
    /// values are never joined.
    #[serde(default)]
    pub unique_columns: Vec<String>,
    /// Blocks with more rows than this are not compared (and reported).
    #[serde(default = "default_max_block_size")]
    pub max_block_size: usize,
    /// Candidate pairs: records agreeing on every expression of at least one rule.
    pub blocking: Vec<BlockingRule>,
    /// Rules whose pairs train m by EM, one session each (defaults to `blocking`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub training_rules: Vec<BlockingRule>,
    #[serde(default)]
    pub training: TrainingConfig,
    #[serde(default)]
    pub prior: PriorConfig,
    /// Groups of fields that carry the same information, each scored as one piece of
    /// evidence: what a household shares (surname, address, mailbox, phone). Training adds
    /// the groups it detects in the data (a town, its postcode and state), joining
    /// overlapping ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dependent_fields: Option<Vec<Vec<String>>>,
    /// Two clusters join only when the mean match weight over their cross pairs (not just
    /// the one pair at hand) reaches half the threshold's weight, so one weak link cannot
    /// chain two groups together. `false` gives plain connected components.
    #[serde(default = "default_true")]
    pub cluster_linkage_check: bool,
    /// Match probability at which the resolver's fuzzy stage joins two profiles although a
    /// per-kind identifier limit objects (two `crm_id`s: a sales rep's duplicate contact with
    /// the same email, phone, name and birth date). Kinds in `[resolve] unique` never give way.
    #[serde(default = "default_override_limits_at")]
    pub override_limits_at: f64,
    pub fields: Vec<FieldConfig>,
}

/// How the probability that two random records match is set. By default it is estimated
/// from the EM sessions: the matches EM finds among a training rule's pairs, divided by
/// the share of all matches that agree on the rule's columns (from the trained m).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriorConfig {
    /// Deterministic rules instead (as Splink does): pairs agreeing on all of a rule's
    /// columns are taken as matches, scaled up by `recall`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<BlockingRule>,
    /// Share of all true matches the rules are believed to find.
    #[serde(default = "default_recall")]
    pub recall: f64,
    /// A fixed prior instead of the estimate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probability: Option<f64>,
}

/// Sample sizes and limits of training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingConfig {
    /// Random pairs drawn to estimate u.
    #[serde(default = "default_u_sample_pairs")]
    pub u_sample_pairs: usize,
    /// Pairs per EM session at most (blocks are sampled beyond that).
    #[serde(default = "default_max_em_pairs")]
    pub max_em_pairs: usize,
    #[serde(default = "default_em_iterations")]
    pub em_iterations: usize,
    #[serde(default = "default_seed")]
    pub seed: u64,
}

impl Default for PriorConfig {
    fn default() -> Self {
        PriorConfig { rules: Vec::new(), recall: default_recall(), probability: None }
    }
}

impl Default for TrainingConfig {
    fn default() -> Self {
        TrainingConfig {
            u_sample_pairs: default_u_sample_pairs(),
            max_em_pairs: default_max_em_pairs(),
            em_iterations: default_em_iterations(),
            seed: default_seed(),
        }
    }
}

/// One compared column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldConfig {
    pub column: String,
    #[serde(flatten)]
    pub comparison: Comparison,
    /// Exact agreement on a rare value weighs more than on a common one.
    #[serde(default, skip_serializing_if = "is_false")]
    pub tf_adjust: bool,
    /// Another field whose values may have been entered in this one's place (given name
    /// and surname): the pair is also compared crosswise. Both need the same comparison.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swap_with: Option<String>,
}

fn is_false(b: &bool) -> bool {
    !*b
}
fn default_true() -> bool {
    true
}
fn default_override_limits_at() -> f64 {
    0.999_999
}
fn default_threshold() -> f64 {
    0.9
}
fn default_max_block_size() -> usize {
    1000
}
fn default_recall() -> f64 {
    0.7
}
fn default_u_sample_pairs() -> usize {
    500_000
}
fn default_max_em_pairs() -> usize {
    200_000
}
fn default_em_iterations() -> usize {
    25
}
fn default_seed() -> u64 {
    42
}

/// At most this many fields: a pair's levels are packed four bits each into a `u64`.
pub const MAX_FIELDS: usize = 16;

impl MatchConfig {
    /// Parses and validates a `match.toml`.
    pub fn from_toml(text: &str) -> Result<Self, MatchError> {
        let mut config: MatchConfig = toml::from_str(text).map_err(|e| MatchError::Config(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("a match config always serialises")
    }

    /// Checks settings that cannot work and puts thresholds in evaluation order.
    pub fn validate(&mut self) -> Result<(), MatchError> {
        let bad = |msg: String| Err(MatchError::Config(msg));
        if !(0.0..1.0).contains(&self.threshold) || self.threshold <= 0.0 {
            return bad(format!("threshold must be between 0 and 1, got {}", self.threshold));
        }
        if self.fields.is_empty() || self.fields.len() > MAX_FIELDS {
            return bad(format!("need 1 to {MAX_FIELDS} fields, got {}", self.fields.len()));
        }
        if self.blocking.is_empty() || self.blocking.iter().any(|r| r.0.is_empty()) {
            return bad("need at least one non-empty blocking rule".into());
        }
        if !(self.override_limits_at > 0.0 && self.override_limits_at <= 1.0) {
            return bad(format!("override_limits_at must be in (0, 1] (1 = never), got {}", self.override_limits_at));
        }
        if !(self.prior.recall > 0.0 && self.prior.recall <= 1.0) {
            return bad("prior.recall must be in (0, 1]".into());
        }
        if let Some(p) = self.prior.probability {
            if !(p > 0.0 && p < 1.0) {
                return bad("prior.probability must be in (0, 1)".into());
            }
        }
        for field in &mut self.fields {
            field.comparison.validate().map_err(|e| MatchError::Config(format!("field {}: {e}", field.column)))?;
        }
        for group in self.dependent_fields.iter().flatten() {
            if let Some(unknown) = group.iter().find(|c| !self.fields.iter().any(|f| &f.column == *c)) {
                return bad(format!("dependent_fields names `{unknown}`, which is not a compared field"));
            }
        }
        for field in &self.fields {
            let Some(partner) = &field.swap_with else { continue };
            match self.fields.iter().find(|f| &f.column == partner) {
                Some(other) if other.comparison == field.comparison && other.column != field.column => {}
                _ => return bad(format!("field {}: swap_with must name another field with the same comparison", field.column)),
            }
        }
        Ok(())
    }

    /// Every column the configuration reads.
    pub fn columns(&self) -> Vec<String> {
        let mut columns: Vec<String> = self.fields.iter().map(|f| f.column.clone()).collect();
        let rules = self.blocking.iter().chain(&self.training_rules).chain(&self.prior.rules);
        columns.extend(rules.flat_map(|r| r.columns().map(str::to_string)));
        columns.extend(self.unique_columns.iter().cloned());
        let mut seen = std::collections::HashSet::new();
        columns.retain(|c| seen.insert(c.clone()));
        columns
    }

    pub(crate) fn training_rules(&self) -> &[BlockingRule] {
        if self.training_rules.is_empty() {
            &self.blocking
        } else {
            &self.training_rules
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
threshold = 0.95
unique_columns = ["user_id"]
blocking = [["surname"], ["substr(given_name,0,3)", "postcode"]]

[prior]
rules = [["given_name", "surname"]]

[[fields]]
column = "given_name"
kind = "jaro_winkler"
thresholds = [0.8, 0.92]
phonetic = true
tf_adjust = true

[[fields]]
column = "dob"
kind = "date"
"#;

    #[test]
    fn loads_validates_and_round_trips_toml() {
        let config = MatchConfig::from_toml(EXAMPLE).unwrap();
        assert_eq!(config.threshold, 0.95);
        assert_eq!(config.prior.recall, 0.7);
        assert_eq!(config.blocking[1].0.len(), 2);
        assert_eq!(config.fields[0].comparison, Comparison::JaroWinkler { thresholds: vec![0.92, 0.8], phonetic: true });
        assert_eq!(config.fields[1].comparison, Comparison::Date { within_days: 31 });
        let again = MatchConfig::from_toml(&config.to_toml()).unwrap();
        assert_eq!(again, config);
        assert_eq!(config.columns(), ["given_name", "dob", "surname", "postcode", "user_id"]);
    }

    #[test]
    fn rejects_bad_settings_with_a_reason() {
        let err = MatchConfig::from_toml(&EXAMPLE.replace("0.95", "1.5")).unwrap_err();
        assert!(err.to_string().contains("threshold"));
        let err = MatchConfig::from_toml(&EXAMPLE.replace("\"date\"", "\"datee\"")).unwrap_err();
        assert!(err.to_string().contains("datee"), "{err}");
        let err = MatchConfig::from_toml(&EXAMPLE.replace("substr(given_name,0,3)", "substr(given_name)")).unwrap_err();
        assert!(err.to_string().contains("substr"), "{err}");
    }
}
