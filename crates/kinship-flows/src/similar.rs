//! Next best offer for an item out of stock: the most similar row of the same category that is
//! in stock. Never one of another category: rows that differ in any `same` field are not
//! candidates at all, however alike otherwise.

use crate::run::Reference;
use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq)]
pub struct Suggestion {
    pub key: String,
    /// Mean agreement over the compared attributes, 0 to 1.
    pub similarity: f64,
    /// Why this one, in words: what it shares and how it differs.
    pub reason: String,
}

/// The row of `catalogue` most like the row keyed `original`: the same value in every `same`
/// field, in stock (`stock`: a reference keyed like the catalogue and its quantity field;
/// without it every row counts as in stock), compared on the other fields (text by shared
/// words, numbers by ratio). Ties go to the first row in the catalogue.
pub fn suggest_replacement(
    catalogue: &Reference,
    original: &str,
    same: &[String],
    stock: Option<(&Reference, &str)>,
) -> Option<Suggestion> {
    let wanted = catalogue.row(original)?;
    let on_hand = |key: &str| -> Option<f64> {
        let (reference, field) = stock?;
        reference.row(key).and_then(|row| row.get(field)).and_then(number)
    };
    let in_stock = |key: &str| stock.is_none() || on_hand(key).is_some_and(|n| n > 0.0);
    let mut best: Option<(f64, &String, Vec<String>)> = None;
    for (key, row) in &catalogue.rows {
        if key == original || !in_stock(key) {
            continue;
        }
        if !same.iter().all(|field| matches!((wanted.get(field), row.get(field)), (Some(a), Some(b)) if !a.is_null() && text(a) == text(b)))
        {
            continue;
        }
        let (similarity, shared) = compare(wanted, row, same, original);
        if best.as_ref().is_none_or(|(s, _, _)| similarity > *s) {
            best = Some((similarity, key, shared));
        }
    }
    let (similarity, key, shared) = best?;
    let mut reason = same.iter().map(|f| format!("same {f} ({})", wanted.get(f).map(text).unwrap_or_default())).collect::<Vec<_>>();
    if let Some(n) = on_hand(key) {
        reason.push(format!("{n} in stock"));
    }
    if !shared.is_empty() {
        reason.push(format!("shares {}", shared.join(", ")));
    }
    reason.push(format!("{:.0}% alike", similarity * 100.0));
    Some(Suggestion { key: key.clone(), similarity, reason: reason.join("; ") })
}

/// Mean agreement over the fields the original has (besides `same` and the key), and the
/// words or values the two share.
fn compare(a: &Map<String, Value>, b: &Map<String, Value>, same: &[String], key: &str) -> (f64, Vec<String>) {
    let mut total = 0.0;
    let mut count = 0usize;
    let mut shared = Vec::new();
    for (field, left) in a {
        // The key column (`sku`) names the row; it says nothing about likeness.
        if same.contains(field) || field == "key" || left.is_null() || text(left) == key.trim().to_lowercase() {
            continue;
        }
        count += 1;
        let Some(right) = b.get(field).filter(|v| !v.is_null()) else { continue };
        total += match (number(left), number(right)) {
            (Some(x), Some(y)) => {
                let scale = x.abs().max(y.abs());
                if scale == 0.0 {
                    1.0
                } else {
                    1.0 - (x - y).abs() / scale
                }
            }
            _ => {
                let (x, y) = (tokens(&text(left)), tokens(&text(right)));
                let common: Vec<&String> = x.iter().filter(|t| y.contains(t)).collect();
                let union = x.len() + y.len() - common.len();
                shared.extend(common.iter().map(|t| t.to_string()));
                if union == 0 {
                    1.0
                } else {
                    common.len() as f64 / union as f64
                }
            }
        };
    }
    shared.sort();
    shared.dedup();
    (if count == 0 { 0.0 } else { total / count as f64 }, shared)
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok().filter(|x| x.is_finite()),
        _ => None,
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.trim().to_lowercase(),
        Value::Array(items) => items.iter().map(text).collect::<Vec<_>>().join(";"),
        other => other.to_string(),
    }
}

fn tokens(text: &str) -> Vec<String> {
    let mut out: Vec<String> = text.split(|c: char| !c.is_alphanumeric()).filter(|t| !t.is_empty()).map(str::to_string).collect();
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn reference(name: &str, rows: Value) -> Reference {
        let rows =
            rows.as_array().unwrap().iter().map(|r| (r["sku"].as_str().unwrap().to_string(), r.as_object().unwrap().clone())).collect();
        Reference::new(name, name, 0, rows)
    }

    #[test]
    fn the_most_similar_in_stock_item_of_the_same_category_never_another() {
        let catalogue = reference(
            "catalogue",
            json!([
                {"sku": "JKT-001", "category": "jackets", "attributes": "waterproof;packable;hooded", "price": 129.95},
                {"sku": "JKT-002", "category": "jackets", "attributes": "insulated;packable", "price": 229.95},
                {"sku": "JKT-003", "category": "jackets", "attributes": "waterproof;hooded;softshell", "price": 159.95},
                {"sku": "JKT-004", "category": "jackets", "attributes": "waterproof;packable;hooded", "price": 135.00},
                {"sku": "TNT-001", "category": "tents", "attributes": "waterproof;packable;hooded", "price": 129.95},
            ]),
        );
        let stock = reference(
            "inventory",
            json!([
                {"sku": "JKT-001", "on_hand": 0}, {"sku": "JKT-002", "on_hand": 4},
                {"sku": "JKT-003", "on_hand": 2}, {"sku": "JKT-004", "on_hand": 0}, {"sku": "TNT-001", "on_hand": 9},
            ]),
        );
        let same = vec!["category".to_string()];
        // JKT-004 is the twin but out of stock; TNT-001 is as alike but a tent.
        let s = suggest_replacement(&catalogue, "JKT-001", &same, Some((&stock, "on_hand"))).unwrap();
        assert_eq!(s.key, "JKT-003");
        assert!(s.reason.contains("same category (jackets)") && s.reason.contains("waterproof"), "{}", s.reason);
        let s = suggest_replacement(&catalogue, "JKT-001", &same, None).unwrap();
        assert_eq!(s.key, "JKT-004");
        // Nothing in stock in the category: no suggestion rather than a tent.
        let empty = reference("inventory", json!([{"sku": "TNT-001", "on_hand": 9}]));
        assert_eq!(suggest_replacement(&catalogue, "JKT-001", &same, Some((&empty, "on_hand"))), None);
    }
}
