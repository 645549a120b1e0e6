//! `kinship nps`, `kinship growth` and `kinship health` on the demo, checked against what
//! its files say: the NPS of every answer in nps.csv, one quarter's revenue from
//! invoices.csv, and no alert on the customers journeys.csv says are new or upgraded (their
//! context explains a low score).

use super::{run, store_of};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

fn json_of(d: &std::path::Path, args: &[&str]) -> Value {
    let (ok, out, err) = run(d, args);
    assert!(ok, "kinship {args:?}: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

#[test]
fn nps_growth_and_health_on_the_demo_agree_with_its_files() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (ok, _, err) = run(d, &["demo", "--no-serve", "--customers", "1500", "--seed", "5"]);
    assert!(ok, "{err}");

    // NPS of every answer, by hand from the survey export.
    let mut answers = csv::Reader::from_path(d.join("nps.csv")).unwrap();
    let (mut n, mut promoters, mut detractors) = (0u64, 0u64, 0u64);
    for row in answers.records() {
        let score: u8 = row.unwrap()[2].parse().unwrap();
        n += 1;
        promoters += u64::from(score >= 9);
        detractors += u64::from(score <= 6);
    }
    let nps = json_of(d, &["nps", "--json"]);
    assert_eq!(nps["answers"], n);
    let by_hand = (promoters as f64 - detractors as f64) * 100.0 / n as f64;
    assert!((nps["overall"]["nps"].as_f64().unwrap() - by_hand).abs() < 1e-9, "{} vs {by_hand}", nps["overall"]);
    let months: u64 = nps["groups"].as_array().unwrap().iter().map(|g| g["answers"].as_u64().unwrap()).sum();
    assert_eq!(months, n, "every answer falls in one month");
    let (ok, out, _) = run(d, &["nps", "--by", "cohort"]);
    assert!(ok && out.contains("±") && out.contains("revenue-weighted"), "{out}");

    // The last complete quarter's revenue: every well-formed invoice issued in it.
    let growth = json_of(d, &["growth", "--period", "quarter", "--periods", "3", "--json"]);
    let quarter = growth.as_array().unwrap().iter().rev().find(|p| p["partial"] == false).expect("a complete quarter");
    let (start, end) = (quarter["start_ms"].as_i64().unwrap(), quarter["end_ms"].as_i64().unwrap());
    let mut invoices = csv::ReaderBuilder::new().flexible(true).from_path(d.join("invoices.csv")).unwrap();
    let mut revenue = 0.0;
    for row in invoices.records() {
        let row = row.unwrap();
        // Malformed lines (a column short) are rejected at ingest.
        if row.len() != 7 {
            continue;
        }
        let issued = kinship_expr::parse_timestamp(&row[5]).unwrap();
        if (start..end).contains(&issued) {
            revenue += row[4].parse::<f64>().unwrap();
        }
    }
    let ours = quarter["growth"]["current_revenue"].as_f64().unwrap();
    assert!((ours - revenue).abs() < 0.01, "{ours} vs {revenue} from invoices.csv");
    let g = &quarter["growth"];
    let egr = g["net_revenue_retention"].as_f64().unwrap()
        + g["earned_new_revenue"].as_f64().unwrap() / g["previous_revenue"].as_f64().unwrap()
        - 1.0;
    assert!((g["earned_growth_rate"].as_f64().unwrap() - egr).abs() < 1e-12);
    assert!(g["earned_new_revenue"].as_f64().unwrap() > 0.0, "the demo's survey says some came by recommendation");

    // Health: every profile in one band; new customers and upgraders raise no alert.
    let health = json_of(d, &["health", "score", &d.join("health/customer.toml").to_string_lossy(), "--json"]);
    let bands: u64 = ["red", "yellow", "green"].iter().map(|b| health[b].as_u64().unwrap()).sum();
    assert_eq!(bands, health["scored"].as_u64().unwrap());
    let alerted: BTreeSet<String> = health["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["change"] == "opened")
        .map(|a| a["profile"].as_str().unwrap().to_string())
        .collect();
    let store = store_of(d);
    let mut profile_of: BTreeMap<(String, String), String> = BTreeMap::new();
    store.scan_assignments(&mut |source, key, profile| drop(profile_of.insert((source.into(), key.into()), profile.into()))).unwrap();
    let mut person_profiles: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for row in csv::Reader::from_path(d.join("truth.csv")).unwrap().records() {
        let row = row.unwrap();
        if let Some(p) = profile_of.get(&(row[0].to_string(), row[1].to_string())) {
            person_profiles.entry(row[2].to_string()).or_default().insert(p.clone());
        }
    }
    let mut explained = 0;
    let mut spared = BTreeSet::new();
    for row in csv::Reader::from_path(d.join("journeys.csv")).unwrap().records() {
        let row = row.unwrap();
        if &row[1] == "new" || &row[1] == "upgraded" {
            explained += 1;
            spared.insert(row[0].to_string());
            for p in person_profiles.get(&row[0]).into_iter().flatten() {
                assert!(!alerted.contains(p), "{} customer {} ({p}) was alerted on", &row[1], &row[0]);
            }
        }
    }
    assert!(explained > 0, "the demo has new customers and upgraders");

    let backtest = json_of(
        d,
        &["health", "backtest", &d.join("health/customer.toml").to_string_lossy(), "--as-of", "2025-02-01", "--horizon", "90d", "--json"],
    );
    assert!(backtest["customers"].as_u64().unwrap() > 100, "{backtest}");
    assert!(backtest["health_auc"].as_f64().is_some() && backtest["baseline_auc"].as_f64().is_some(), "{backtest}");
    let difference: Vec<f64> = backtest["auc_difference"].as_array().unwrap().iter().filter_map(|v| v.as_f64()).collect();
    assert!(
        difference.len() == 3 && difference[1] <= difference[0] && difference[0] <= difference[2],
        "an estimate inside its interval: {backtest}"
    );

    // Weights learnt from the year before a date, written into a copy of the definition
    // (its comments kept), which the backtest then reads.
    let learnt_file = d.join("health/learnt.toml");
    let (ok, out, err) = run(
        d,
        &[
            "health",
            "learn",
            &d.join("health/customer.toml").to_string_lossy(),
            "--as-of",
            "2024-11-01",
            "--write",
            &learnt_file.to_string_lossy(),
        ],
    );
    assert!(
        ok && out.contains("learnt from 12 dates 30 days apart, 2023-12-07 to 2024-11-01") && out.contains("orders_per_year"),
        "{out}{err}"
    );
    let learnt = std::fs::read_to_string(&learnt_file).unwrap();
    assert!(learnt.contains("# How often they buy") && learnt.contains("name = \"orders_per_year\""), "{learnt}");
    let weights: Vec<f64> = toml::from_str::<toml::Value>(&learnt).unwrap()["measures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["weight"].as_float().or_else(|| m["weight"].as_integer().map(|w| w as f64)).unwrap_or(1.0))
        .collect();
    assert!((weights.iter().sum::<f64>() - 9.5).abs() < 0.05, "the weights add up as the definition's do: {weights:?}");
    let judged = json_of(d, &["health", "backtest", &learnt_file.to_string_lossy(), "--as-of", "2025-03-01", "--json"]);
    assert!(judged["health_auc"].as_f64().is_some(), "{judged}");
    // Not over the definition it read, and not with a horizon past the data.
    let input = d.join("health/customer.toml").to_string_lossy().to_string();
    let (ok, _, err) = run(d, &["health", "learn", &input, "--as-of", "2024-11-01", "--write", &input]);
    assert!(!ok && err.contains("that is the definition read"), "{err}");
    let (ok, _, err) = run(d, &["health", "learn", &input, "--as-of", "2025-06-01"]);
    assert!(!ok && err.contains("runs past the newest event held"), "{err}");
    let (ok, _, err) = run(d, &["health", "learn", "customer-missing", "--as-of", "2024-11-01"]);
    assert!(!ok && err.contains("neither a saved health definition nor a file"), "{err}");

    // Saved, the definition scores every profile on its 360 and segments read it.
    let file = d.join("health/customer.toml").to_string_lossy().to_string();
    let (ok, out, err) = run(d, &["health", "create", &file]);
    assert!(ok && out.contains("health(\"customer\").score"), "{out}{err}");
    let (ok, out, _) = run(d, &["health", "list"]);
    assert!(ok && out.contains("orders_90d, days_since_order"), "{out}");
    let (ok, out, err) = run(d, &["segment", "create", "at_risk", "health(\"customer\").band == \"red\""]);
    assert!(ok, "{out}{err}");
    let saved = json_of(d, &["health", "score", "customer", "--json"]);
    assert_eq!(saved["scored"], health["scored"], "the saved definition scores as the file did");
    let someone = health["lowest"][0][0].as_str().unwrap();
    let doc = json_of(d, &["profile", "show", "--id", someone, "--json"]);
    let scored = &doc["health"]["customer"];
    assert!(scored["score"].as_f64().is_some() && scored["measures"].as_array().unwrap().len() == 6, "{doc}");
    // Its history: the score as of each of the last 13 weeks, ending with today's.
    let history = scored["history"].as_array().unwrap();
    assert_eq!(history.len(), 13, "{scored}");
    assert_eq!(history[12]["score"], scored["score"], "{scored}");

    // Alerts kept in the store: a pass, then another that changes nothing; none on new
    // customers or upgraders; one snoozed with a reason.
    let (ok, _, err) = run(d, &["health", "alerts", "customer", "--keep"]);
    assert!(ok && err.contains("opened"), "{err}");
    let kept = json_of(d, &["health", "alerts", "customer", "--keep", "--json"]);
    let kept = kept.as_array().unwrap();
    assert_eq!(
        kept.len(),
        json_of(d, &["health", "alerts", "customer", "--json"]).as_array().unwrap().len(),
        "a second pass opens nothing"
    );
    for a in kept {
        let profile = a["profile_id"].as_str().unwrap();
        assert!(person_profiles.iter().all(|(person, ps)| !ps.contains(profile) || !spared.contains(person)), "{a}");
    }
    let (ok, _, err) = run(d, &["health", "snooze", "999999", "--until", "2 days", "--reason", "x"]);
    assert!(!ok && err.contains("no open alert 999999"), "{err}");
    if let Some(first) = kept.first() {
        let id = first["id"].to_string();
        let (ok, out, err) = run(d, &["health", "snooze", &id, "--until", "2 days", "--reason", "called; a replacement is on its way"]);
        assert!(ok && out.contains("snoozed until"), "{out}{err}");
        let after = json_of(d, &["health", "alerts", "customer", "--json"]);
        let snoozed = after.as_array().unwrap().iter().find(|a| a["id"] == first["id"]).unwrap();
        assert_eq!(snoozed["snooze_reason"], "called; a replacement is on its way");
    }
    let (ok, _, err) = run(d, &["health", "delete", "customer"]);
    assert!(!ok && err.contains("at_risk"), "a segment reads it: {err}");

    let (_, audit, _) = run(d, &["audit"]);
    assert!(["nps.read", "growth.read", "health.read", "health.backtest", "health.create"].iter().all(|a| audit.contains(a)), "{audit}");
}

/// `kinship deal list` on the demo: every opportunity in crm_deals.csv is one deal, and the
/// weighted forecast by close month equals a hand computation from the file's latest row of
/// each deal and the demo's stage probabilities.
#[test]
fn the_deal_forecast_on_the_demo_equals_a_hand_computation_from_its_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (ok, _, err) = run(d, &["demo", "--no-serve", "--customers", "1500", "--seed", "5"]);
    assert!(ok, "{err}");
    // The file lists each deal's versions in time order: its last row is where it stands.
    let mut latest: BTreeMap<String, (String, f64, String)> = BTreeMap::new();
    let mut versions = csv::Reader::from_path(d.join("crm_deals.csv")).unwrap();
    for row in versions.records() {
        let row = row.unwrap();
        let amount: f64 = row[5].replace(',', "").parse().unwrap();
        latest.insert(row[1].to_string(), (row[4].to_lowercase(), amount, row[7][..7].to_string()));
    }
    assert!(latest.len() > 10, "the demo has deals: {}", latest.len());
    let mut by_month: BTreeMap<String, f64> = BTreeMap::new();
    for (stage, amount, month) in latest.values() {
        let weight = match stage.as_str() {
            "prospecting" => 0.1,
            "qualification" => 0.2,
            "proposal" => 0.5,
            "negotiation" => 0.8,
            "closed won" => 1.0,
            "closed lost" => continue,
            other => panic!("stage {other}"),
        };
        *by_month.entry(month.clone()).or_default() += amount * weight;
    }
    let listed = json_of(d, &["deal", "list", "--status", "all", "--limit", "10000", "--json"]);
    assert_eq!(listed["total"].as_u64(), Some(latest.len() as u64), "{}", listed["problems"]);
    let forecast: BTreeMap<String, f64> = listed["report"]["forecast"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["month"].as_str().unwrap().to_string(), m["weighted"].as_f64().unwrap()))
        .collect();
    assert_eq!(forecast.keys().collect::<Vec<_>>(), by_month.keys().collect::<Vec<_>>());
    for (month, weighted) in &by_month {
        assert!((forecast[month] - weighted).abs() < 1e-6, "{month}: {} against {weighted} by hand", forecast[month]);
    }
    let funnel = listed["report"]["funnel"].as_array().unwrap();
    assert_eq!(funnel[0]["count"].as_u64(), Some(latest.len() as u64), "every deal starts prospecting");
    let (ok, out, _) = run(d, &["deal", "list"]);
    assert!(ok && out.contains("weighted forecast by close month") && out.contains("win rate"), "{out}");
}
