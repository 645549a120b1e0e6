//! The fuzzy stage of resolution: after the exact stage, each profile's golden traits are
//! matched with the Fellegi-Sunter engine (m and u trained on the data itself), and pairs
//! above the threshold are merged through the same guard as the exact stage, so limits
//! and a person's splits hold. Each merge keeps its field-by-field weights as evidence.

use crate::{golden, PipelineError, Result};
use kinship_match::model::weight_from_probability;
use kinship_match::{Dataset, IncrementalMatcher, MatchConfig, Model, NoProgress};
use kinship_resolve::{Refusal, Resolution};
use kinship_store::Store;
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
/// traits and `representative[c]` one of its records. Returns the merges made and the
/// trained model. Merges follow the engine's clustering (strongest first, each profile a
/// match for the merged group as a whole) and then the exact stage's guard; a per-kind
/// limit gives way only to a match at `override_limits_at` or above, and never for a kind
/// the configuration declares unique.
pub(crate) fn merge_similar(
    resolution: &mut Resolution,
    config: &MatchConfig,
    resolve: &kinship_core::ResolveConfig,
    golden: &[Map<String, Value>],
    representative: &[usize],
) -> Result<(Vec<FuzzyJoin>, Model)> {
    let unique_kinds = &resolve.unique;
    let columns = config.columns();
    let rows: Vec<Vec<String>> = golden.iter().map(|traits| row_of(&columns, traits, &resolve.blocked_values)).collect();
    let dataset = Dataset::from_rows(&columns, &rows);
    let override_weight = weight_from_probability(config.override_limits_at);
    // merges the guard allowed: the two rows, and the limit overridden if any
    let mut merged: Vec<(u32, u32, Option<String>)> = Vec::new();
    let mut accept = |left: u32, right: u32, weight: f64| {
        let (a, b) = (representative[left as usize], representative[right as usize]);
        let overrode = match resolution.guard.try_merge(a as u32, b as u32) {
            Ok(_) => None,
            Err(Refusal::Limit { kind, .. }) if weight >= override_weight && !unique_kinds.contains(&kind) => {
                resolution.guard.force_merge(a, b);
                Some(kind)
            }
            Err(_) => return false,
        };
        merged.push((left, right, overrode));
        true
    };
    let result = kinship_match::dedupe_with(&dataset, config, &NoProgress, &mut accept)
        .map_err(|e| PipelineError::Config(format!("fuzzy stage: {e}")))?;
    let joins = merged
        .into_iter()
        .map(|(left, right, overrode)| {
            let mut evidence = json!(result.scorer.explain(&dataset, left, right));
            if let Some(kind) = overrode {
                evidence["overrode_limit"] = json!(kind);
            }
            FuzzyJoin { left: representative[left as usize], right: representative[right as usize], evidence }
        })
        .collect();
    resolution.relabel();
    Ok((joins, result.scorer.model().clone()))
}

/// A profile's stored golden traits as a row of the matcher's columns; a missing trait is
/// an empty (null) cell, and so is a blocked value (`test@test.com` is no more evidence
/// here than it is as an identifier).
fn row_of(columns: &[String], traits: &Map<String, Value>, blocked: &[String]) -> Vec<String> {
    columns
        .iter()
        .map(|c| match traits.get(c).map(golden::value) {
            Some(Value::String(s)) if blocked.iter().any(|b| b.eq_ignore_ascii_case(s.trim())) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(Value::Null) | None => String::new(),
            Some(other) => other.to_string(),
        })
        .collect()
}

fn hash_cells(cells: &[String]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = rustc_hash::FxHasher::default();
    cells.hash(&mut hasher);
    hasher.finish()
}

/// Meta key of the fuzzy model the last full resolution trained.
pub(crate) const FUZZY_MODEL: &str = "fuzzy_model";

/// Every profile's golden traits in in-memory blocking indexes, scored with the model the
/// last full resolution trained, so a profile that a new record starts can be matched
/// against all the others in real time. The model is not retrained here: after
/// resolution few duplicates remain, and EM needs them to learn from. Built when the
/// server starts; profiles created or changed afterwards are added as rows of their own
/// ([`FuzzyIndex::upsert`], by this process's resolver and by the change feed for other
/// processes'), and a profile's older rows stop counting.
pub struct FuzzyIndex {
    matcher: IncrementalMatcher,
    /// The profile of each row.
    profile_ids: Vec<String>,
    /// Each profile's current row and a hash of its cells; a row not named here is out of
    /// date.
    current: rustc_hash::FxHashMap<String, (u32, u64)>,
    columns: Vec<String>,
    threshold: f64,
    blocked: Vec<String>,
}

impl FuzzyIndex {
    /// `None` when no `[fuzzy]` is configured, no full resolution has trained a model yet,
    /// or there is nothing to match against.
    pub fn build(store: &dyn Store, config: &kinship_core::Config) -> Result<Option<Self>> {
        let Some(table) = &config.fuzzy else { return Ok(None) };
        let match_config = parse_config(table)?;
        let Some(model) = store.meta(FUZZY_MODEL)? else { return Ok(None) };
        let model: Model = serde_json::from_str(&model).map_err(kinship_store::StoreError::from)?;
        let columns = match_config.columns();
        let (mut profile_ids, mut rows) = (Vec::new(), Vec::new());
        let mut corrupt = None;
        store.scan_profiles(&mut |id, traits| match serde_json::from_str::<Map<String, Value>>(traits) {
            Ok(traits) => {
                profile_ids.push(id.to_string());
                rows.push(row_of(&columns, &traits, &config.resolve.blocked_values));
            }
            Err(e) => corrupt = Some(e),
        })?;
        if let Some(e) = corrupt {
            return Err(kinship_store::StoreError::Json(e).into());
        }
        if rows.len() < 2 {
            return Ok(None);
        }
        let engine = |e: kinship_match::MatchError| PipelineError::Config(format!("fuzzy stage: {e}"));
        let dataset = Dataset::from_rows(&columns, &rows);
        let matcher = IncrementalMatcher::new(dataset, &match_config, &model).map_err(engine)?;
        let current =
            profile_ids.iter().zip(&rows).enumerate().map(|(row, (id, cells))| (id.clone(), (row as u32, hash_cells(cells)))).collect();
        Ok(Some(Self {
            matcher,
            profile_ids,
            current,
            columns,
            threshold: match_config.threshold,
            blocked: config.resolve.blocked_values.clone(),
        }))
    }

    /// Profiles that are candidates now.
    pub fn len(&self) -> usize {
        self.current.len()
    }

    pub fn is_empty(&self) -> bool {
        self.current.is_empty()
    }

    /// Makes a profile's golden traits (as stored) its candidate row, replacing an older
    /// one; nothing is added when the matched columns did not change (most events).
    pub fn upsert(&mut self, id: &str, stored_traits: &str) -> Result<()> {
        let traits: Map<String, Value> = serde_json::from_str(stored_traits).map_err(kinship_store::StoreError::from)?;
        let row = row_of(&self.columns, &traits, &self.blocked);
        let hash = hash_cells(&row);
        if self.current.get(id).is_some_and(|&(_, held)| held == hash) {
            return Ok(());
        }
        let cells: Vec<&str> = row.iter().map(String::as_str).collect();
        let added = self.matcher.add_row(&cells);
        self.profile_ids.push(id.to_string());
        self.current.insert(id.to_string(), (added, hash));
        Ok(())
    }

    /// A profile that no longer exists (merged away, erased) stops being a candidate.
    pub fn remove(&mut self, id: &str) {
        self.current.remove(id);
    }

    /// Whether rows added since the build outnumber a quarter of the built ones (at least
    /// 10,000): out-of-date rows then cost memory and term frequencies drift, so the
    /// holder builds the index again from the store.
    pub fn wants_rebuild(&self) -> bool {
        let added = self.matcher.added_len();
        added >= 10_000 && added * 4 >= self.profile_ids.len() - added
    }

    /// The indexed profile most likely to be the same person as these golden traits, with
    /// its probability and match weight, when it reaches the threshold.
    pub(crate) fn best_match(&self, traits: &Map<String, Value>, except: &str) -> Option<(&str, f64, f64)> {
        let row = row_of(&self.columns, traits, &self.blocked);
        let cells: Vec<&str> = row.iter().map(String::as_str).collect();
        self.matcher
            .match_one(&cells)
            .into_iter()
            .filter(|c| {
                let id = &self.profile_ids[c.row as usize];
                self.current.get(id).is_some_and(|&(row, _)| row == c.row)
            })
            .map(|c| (self.profile_ids[c.row as usize].as_str(), c.probability, c.weight))
            .find(|(id, p, _)| *id != except && *p >= self.threshold)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocked_values_are_not_evidence() {
        let traits: Map<String, Value> = serde_json::from_value(
            serde_json::json!({ "email": ["TEST@test.com", "crm", "C1", 0], "name": ["Test User", "crm", "C1", 0] }),
        )
        .unwrap();
        let columns = ["email".to_string(), "name".to_string(), "city".to_string()];
        assert_eq!(row_of(&columns, &traits, &["test@test.com".into()]), ["", "Test User", ""]);
        assert_eq!(row_of(&columns, &traits, &[]), ["TEST@test.com", "Test User", ""]);
    }
}
