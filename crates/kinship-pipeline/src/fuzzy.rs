//! The fuzzy stage of resolution: after the exact stage, each profile's golden traits are
//! matched with the Fellegi-Sunter engine (m and u trained on the data itself), and pairs
//! above the threshold are merged through the same guard as the exact stage, so limits
//! and a person's splits hold. Each merge keeps its field-by-field weights as evidence.

use crate::{PipelineError, Result};
use kinship_match::{Dataset, MatchConfig, NoProgress};
use kinship_resolve::Resolution;
use serde_json::{json, Map, Value};

/// A fuzzy merge: the two records that represent the merged profiles, and why.
pub(crate) struct FuzzyJoin {
    pub left: usize,
    pub right: usize,
    pub evidence: Value,
}

pub(crate) fn parse_config(table: &toml::Table) -> Result<MatchConfig> {
    MatchConfig::from_toml(&table.to_string()).map_err(|e| PipelineError::Config(format!("[fuzzy] in kinship.toml: {e}")))
}

/// Merges exact-stage profiles whose traits match; `golden[c]` are cluster c's golden
/// traits and `representative[c]` one of its records. Returns the merges made.
pub(crate) fn merge_similar(
    resolution: &mut Resolution,
    config: &MatchConfig,
    golden: &[Map<String, Value>],
    representative: &[usize],
) -> Result<Vec<FuzzyJoin>> {
    let columns = config.columns();
    // Golden traits are stored as {value, source, ...}; the matcher compares the value.
    let text = |entry: Option<&Value>| match entry.map(|e| &e["value"]) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    };
    let rows: Vec<Vec<String>> = golden.iter().map(|traits| columns.iter().map(|c| text(traits.get(c))).collect()).collect();
    let dataset = Dataset::from_rows(&columns, &rows);
    let result = kinship_match::dedupe(&dataset, config, &NoProgress).map_err(|e| PipelineError::Config(format!("fuzzy stage: {e}")))?;
    let mut pairs: Vec<_> = result.prediction.pairs.iter().filter(|p| p.probability() >= config.threshold).collect();
    pairs.sort_by(|a, b| b.weight.total_cmp(&a.weight).then((a.left, a.right).cmp(&(b.left, b.right))));
    let mut joins = Vec::new();
    for pair in pairs {
        let (a, b) = (representative[pair.left as usize], representative[pair.right as usize]);
        if let Ok(true) = resolution.guard.try_merge(a as u32, b as u32) {
            let why = result.scorer.explain(&dataset, pair.left, pair.right);
            joins.push(FuzzyJoin { left: a, right: b, evidence: json!(why) });
        }
    }
    resolution.relabel();
    Ok(joins)
}
