//! Search that forgives typing: when no profile holds every word of a query, profiles
//! whose names are close to it (Jaro-Winkler per word) are offered instead, best first.

use kinship_store::{Store, StoreError};

/// How close every query word must come to some word of a profile's names.
const MIN_WORD_SIMILARITY: f64 = 0.85;
/// Shorter query words are too ambiguous to correct.
const MIN_WORD_CHARS: usize = 3;

/// Ids of the profiles whose name words best match the folded query's words, at most `limit`.
pub fn similar_names(store: &dyn Store, folded_query: &str, limit: usize) -> Result<Vec<String>, StoreError> {
    let words: Vec<&str> = folded_query.split_whitespace().filter(|w| w.chars().count() >= MIN_WORD_CHARS).collect();
    if words.is_empty() {
        return Ok(Vec::new());
    }
    let mut scored: Vec<(f64, String)> = Vec::new();
    store.scan_profiles(&mut |id, stored| {
        let traits = kinship_pipeline::golden::values(stored);
        let names: Vec<String> = ["first_name", "last_name", "name"]
            .iter()
            .filter_map(|t| traits.get(*t).and_then(|v| v.as_str()))
            .flat_map(|v| kinship_normalize::fold(v).split_whitespace().map(String::from).collect::<Vec<_>>())
            .collect();
        let mut total = 0.0;
        for word in &words {
            let best = names.iter().map(|n| strsim::jaro_winkler(word, n)).fold(0.0, f64::max);
            if best < MIN_WORD_SIMILARITY {
                return;
            }
            total += best;
        }
        scored.push((total / words.len() as f64, id.to_string()));
    })?;
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    Ok(scored.into_iter().take(limit).map(|(_, id)| id).collect())
}
