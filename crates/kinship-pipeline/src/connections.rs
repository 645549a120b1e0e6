//! Connecting a source: a mapping suggested from a sample of its rows, with id columns
//! checked against the identifiers already stored. Shared by `kinship source suggest` and the
//! web UI's "Add a connection".

use crate::{PipelineError, Result};
use kinship_core::{Config, SourceConfig, SourceType};
use kinship_sources::suggest::{ColumnKind, SuggestInput, Suggestion};
use kinship_sources::{Reject, Row};
use kinship_store::Database;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// A suggestion with the rows it was made from.
pub struct Proposal {
    pub suggestion: Suggestion,
    pub rows: Vec<Row>,
    pub rejects: Vec<Reject>,
}

/// Samples `source` (its type, and its `path`, or `url_env` and `table`) and proposes the
/// rest of its mapping as `[sources.NAME]`; with a `store`, id columns are looked up among
/// its identifiers.
pub fn suggest_source(
    store: Option<&dyn Database>,
    config: &Config,
    data_dir: &Path,
    name: &str,
    source: &SourceConfig,
    rows: usize,
) -> Result<Proposal> {
    let (rows, rejects) = kinship_sources::sample(source, data_dir, rows.max(1)).map_err(|e| PipelineError::Config(e.to_string()))?;
    if rows.is_empty() {
        return Err(PipelineError::Config(format!("no row could be read ({} rejected); check the source's format", rejects.len())));
    }
    let fields: Vec<_> = rows.iter().map(|r| r.fields.clone()).collect();
    let kinds: BTreeSet<String> = config.sources.values().flat_map(|s| s.identifiers.keys().cloned()).collect();
    let region = kinship_normalize::region(&config.resolve.default_region)
        .ok_or_else(|| PipelineError::Config(format!("resolve.default_region {:?} is not a region code", config.resolve.default_region)))?;
    let stored_kind = |values: &[String]| -> Option<(String, usize)> {
        let store = store?;
        kinds
            .iter()
            .filter(|kind| !["email", "phone", "handle"].contains(&kind.as_str()))
            .map(|kind| {
                let found = values
                    .iter()
                    .filter_map(|v| kinship_normalize::identifier(kind, v, region))
                    .filter(|v| store.find_profiles(kind, v).is_ok_and(|p| !p.is_empty()))
                    .count();
                (kind.clone(), found)
            })
            .max_by_key(|(_, found)| *found)
    };
    let mut suggestion = kinship_sources::suggest::suggest(&SuggestInput {
        name,
        kind: source.kind,
        path: source.path.clone(),
        region: &config.resolve.default_region,
        rows: &fields,
        known_kinds: &kinds,
        stored_kind: Some(&stored_kind),
    });
    if source.kind == SourceType::Postgres {
        postgres_settings(&mut suggestion, source);
    }
    Ok(Proposal { suggestion, rows, rejects })
}

/// A pulled table needs its URL's variable, its table, and a cursor: the column that grows
/// with every change.
fn postgres_settings(suggestion: &mut Suggestion, source: &SourceConfig) {
    let config = &mut suggestion.config;
    config.path = PathBuf::new();
    // A URL given to sample with is never written: the mapping names its variable.
    config.url = None;
    config.url_env = source.url_env.clone();
    config.table = source.table.clone();
    let cursor = suggestion
        .columns
        .iter()
        .filter(|c| matches!(c.kind, ColumnKind::Timestamp(_)))
        .find(|c| ["updated", "modified", "changed"].iter().any(|w| c.name.to_lowercase().contains(w)))
        .or_else(|| suggestion.columns.iter().find(|c| Some(&c.name) == config.key.as_ref()))
        .map(|c| c.name.clone());
    config.cursor = cursor.clone();
    let quoted = |s: Option<&String>| toml::Value::String(s.cloned().unwrap_or_default()).to_string();
    let mut extra = format!("url_env = {}\ntable = {}\n", quoted(source.url_env.as_ref()), quoted(source.table.as_ref()));
    match cursor {
        Some(c) => extra
            .push_str(&format!("# the column that grows with every change: each pull reads past the last one stored\ncursor = {c:?}\n")),
        None => extra.push_str("# no column looks like it grows with every change; name one (an updated_at) before using this\n"),
    }
    suggestion.toml = suggestion.toml.replace("type = \"postgres\"\n", &format!("type = \"postgres\"\n{extra}"));
}
