//! The briefing against the files it was loaded from: for 50 profiles drawn at random from
//! the demo, each order's invoice, payment and shipment state is what invoices.csv and
//! shipments.csv say about that order id, read here with a CSV reader of its own.

use kinship_core::Config;
use kinship_pipeline::briefing::{briefing, data_now};
use kinship_pipeline::governance::SuppressionCheck;
use kinship_pipeline::{ingest_source, resolve_all};
use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;

fn seconds(text: &str) -> Option<i64> {
    kinship_normalize::parse_timestamp_ms(text).map(|ms| ms / 1000)
}

/// Order id → (invoiced, paid at) from invoices.csv; rows the source rejects are skipped, as
/// ingest skips them.
fn invoices(dir: &Path) -> HashMap<String, (bool, Option<i64>)> {
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_path(dir.join("invoices.csv")).unwrap();
    let header = reader.headers().unwrap().clone();
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let (order, paid) = (col("order_id"), col("paid_at"));
    let mut out = HashMap::new();
    for row in reader.records().map(Result::unwrap).filter(|r| r.len() == header.len()) {
        out.insert(row[order].to_string(), (true, seconds(&row[paid])));
    }
    out
}

/// Order id → (shipped at, delivered at) from shipments.csv.
fn shipments(dir: &Path) -> HashMap<String, (Option<i64>, Option<i64>)> {
    let mut reader = csv::Reader::from_path(dir.join("shipments.csv")).unwrap();
    let header = reader.headers().unwrap().clone();
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let (order, shipped, delivered) = (col("order_id"), col("shipped_at"), col("delivered_at"));
    reader.records().map(Result::unwrap).map(|r| (r[order].to_string(), (seconds(&r[shipped]), seconds(&r[delivered])))).collect()
}

fn at(v: &Value) -> Option<i64> {
    v.as_str().and_then(seconds)
}

fn demo(dir: &Path) -> (Config, Box<dyn kinship_store::Database>) {
    kinship_demo::generate(dir, &kinship_demo::DemoOptions { customers: 2000, seed: 23 }, &mut |_, _, _| {}).unwrap();
    let config = Config::load(dir).unwrap();
    let mut store = kinship_store::open(&kinship_testkit::database_for(dir)).unwrap();
    // The demo's segment source receives its events over HTTP; the rest are files.
    for name in config.sources.iter().filter(|(_, s)| s.kind.is_pulled()).map(|(n, _)| n) {
        ingest_source(&mut *store, &config, name, dir, &SuppressionCheck::nothing(), &|_, _| {}).unwrap();
    }
    resolve_all(&mut *store, &config, &|_, _| {}).unwrap();
    (config, store)
}

#[test]
fn each_orders_trail_matches_the_source_files_for_50_random_profiles() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let (config, store) = demo(dir);
    let (invoices, shipments) = (invoices(dir), shipments(dir));

    // Profiles holding an order, in an order fixed by a hash of their ids: a random draw
    // that a failure can be replayed from.
    let mut buyers = std::collections::BTreeSet::new();
    store
        .scan_assignments(&mut |source, _key, profile| {
            if source == "shop" {
                buyers.insert(profile.to_string());
            }
        })
        .unwrap();
    let mut drawn: Vec<String> = buyers.into_iter().collect();
    drawn.sort_by_key(|id| blake3::hash(id.as_bytes()).as_bytes()[..8].to_vec());
    drawn.truncate(50);
    assert_eq!(drawn.len(), 50);

    let now = data_now(&*store).unwrap();
    let admin = kinship_policy::Policy::builtin("admin").unwrap();
    let (mut orders, mut paid, mut shipped, mut delivered, mut overdue) = (0, 0, 0, 0, 0);
    for id in &drawn {
        let brief = briefing(&*store, &config, id, None, now, &admin).unwrap().unwrap();
        let held = store.profile_records(id).unwrap().iter().filter(|r| r.source == "shop").count();
        let listed = brief["orders"].as_array().unwrap();
        assert_eq!(listed.len(), held, "{id}: one line per order the profile holds");
        for o in listed {
            let number = o["number"].as_str().unwrap();
            let (invoiced, paid_at) = invoices.get(number).copied().unwrap_or((false, None));
            let (shipped_at, delivered_at) = shipments.get(number).copied().unwrap_or((None, None));
            assert_eq!(o["invoiced"].as_bool(), Some(invoiced), "{id} order {number}: invoiced");
            assert_eq!(at(&o["paid_at"]), paid_at, "{id} order {number}: paid");
            assert_eq!(at(&o["shipped_at"]), shipped_at, "{id} order {number}: shipped");
            assert_eq!(at(&o["delivered_at"]), delivered_at, "{id} order {number}: delivered");
            // The one list of documents holds the order and, paid or not, its invoice.
            let documents = brief["documents"].as_array().unwrap();
            let listed_as = |kind: &str| documents.iter().find(|d| d["kind"] == kind && (d["number"] == number || d["order"] == number));
            assert!(listed_as("order").is_some(), "{id} order {number} in the documents");
            if invoiced {
                let status = listed_as("invoice").map(|d| d["status"].as_str().unwrap_or_default().to_string());
                let expected = if paid_at.is_some() { "paid" } else { "invoiced or overdue" };
                assert!(
                    status.as_deref().is_some_and(|s| expected.contains(s)),
                    "{id} order {number}: invoice {status:?}, expected {expected}"
                );
            }
            // The line says the same: unpaid 14 days after issue is overdue as of the data.
            let summary = o["summary"].as_str().unwrap();
            assert!(summary.starts_with("ordered "), "{summary}");
            assert_eq!(summary.contains("paid "), paid_at.is_some(), "{summary}");
            assert_eq!(summary.contains("not shipped"), shipped_at.is_none(), "{summary}");
            orders += 1;
            paid += usize::from(paid_at.is_some());
            shipped += usize::from(shipped_at.is_some());
            delivered += usize::from(delivered_at.is_some());
            overdue += usize::from(summary.contains("overdue since"));
        }
    }
    // The draw covers every state the trail can be in.
    assert!(
        orders > 100 && paid > 0 && shipped > delivered && delivered > 0 && overdue > 0,
        "{orders} {paid} {shipped} {delivered} {overdue}"
    );
}

/// Every ticket in tickets.jsonl (the lines a JSON reader accepts) is one case, its requester
/// the profile its record is in, open as the file says; the queue puts open cases first, by
/// their next SLA clock due.
#[test]
fn the_case_queue_holds_every_ticket_of_the_file_in_due_order() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let (config, store) = demo(dir);
    let tickets: Vec<Value> =
        std::fs::read_to_string(dir.join("tickets.jsonl")).unwrap().lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let now = data_now(&*store).unwrap();
    let queue = kinship_pipeline::cases::all_cases(&*store, &config, now).unwrap();
    assert_eq!(queue.len(), tickets.len());
    let open_in_file = tickets.iter().filter(|t| t["status"] == "open").count();
    let open: Vec<_> = queue.iter().take_while(|q| !q.case.status.is_done()).collect();
    assert_eq!(open.len(), open_in_file);
    assert!(open.windows(2).all(|w| w[0].next_due.unwrap_or(i64::MAX) <= w[1].next_due.unwrap_or(i64::MAX)), "due order");
    assert!(open.iter().all(|q| q.next_due.is_some()), "an open case with a first-reply target has a clock due");
    for q in queue.iter().step_by(7) {
        let (_, profile) = store.record_profile("tickets", &q.case.number).unwrap().unwrap();
        assert_eq!(q.case.requester, profile, "ticket {}", q.case.number);
        let line = tickets.iter().find(|t| t["ticket_id"] == q.case.number.as_str()).unwrap();
        assert_eq!(q.case.subject.as_deref(), line["subject"].as_str());
    }
    // Social tickets follow the "social" policy, the rest "standard".
    let policies: std::collections::BTreeSet<&str> = queue.iter().flat_map(|q| q.clocks.iter().map(|c| c.policy.as_str())).collect();
    assert_eq!(policies, ["social", "standard"].into_iter().collect());
}

/// An account's health is its people's events read together: the count of orders in the last
/// 90 days is the sum of each member's, the days since the last order the least of theirs.
/// The server reads it from the whole audience, a command from an audience of the account's
/// people alone: both give the same scores.
#[test]
fn an_accounts_health_reads_its_people_together_from_either_audience() {
    use kinship_pipeline::{accounts, audience};
    use kinship_segments::{DefinitionSource, Kind};
    let dir = tempfile::tempdir().unwrap();
    let (config, mut store) = demo(dir.path());
    let mut everyone = audience::load_audience(&*store, &config, &|_, _| {}).unwrap();
    let source = DefinitionSource { kind: Kind::Health, name: "customer".into(), expression: kinship_demo::CUSTOMER_HEALTH.into() };
    audience::define(&mut *store, &config, &mut everyone, source).unwrap();
    let program = everyone.saved_health("customer").unwrap();
    let now = data_now(&*store).unwrap();
    let index = accounts::account_index(&*store, &config).unwrap();
    let scores = accounts::account_scores(&everyone, &index, "customer", now).unwrap();
    assert!(scores.windows(2).all(|w| w[0].1.score <= w[1].1.score), "lowest first");
    let admin = kinship_policy::Policy::builtin("admin").unwrap();
    let mut checked = 0;
    for account in index.accounts.values().filter(|a| a.members.len() >= 2).take(15) {
        let health = accounts::account_health(&everyone, account, now, &admin);
        let Some(entry) = health.get("customer") else { continue };
        let measure = |name: &str| entry["measures"].as_array().unwrap().iter().find(|m| m["name"] == name).unwrap()["value"].as_f64();
        let members: Vec<Vec<f64>> = account.members.iter().filter_map(|id| everyone.map_one(id, |p| program.values(p, now))).collect();
        let orders: f64 = members.iter().map(|v| v[0]).sum();
        assert_eq!(measure("orders_90d"), Some(orders), "{}: {entry}", account.key.id());
        let least = members.iter().map(|v| v[1]).filter(|d| !d.is_nan()).min_by(f64::total_cmp);
        assert_eq!(measure("days_since_order"), least, "{}", account.key.id());
        let listed = scores.iter().find(|(id, _)| *id == account.key.id()).expect("every scored account is listed");
        assert_eq!(entry["score"].as_f64(), Some(listed.1.score));
        assert_eq!(entry["history"].as_array().map(Vec::len), Some(13), "a quarter of weekly scores");
        let alone = audience::audience_of(&*store, &config, &account.members).unwrap();
        assert_eq!(accounts::account_health(&alone, account, now, &admin)["customer"]["score"], entry["score"], "{}", account.key.id());
        checked += 1;
    }
    assert!(checked >= 5, "the demo has accounts of several people with orders: {checked}");
}

/// `overdue invoices > 0` in the segment language selects exactly the profiles whose
/// briefing lists an overdue invoice, judged as of the same moment.
#[test]
fn overdue_invoices_in_the_segment_language_agree_with_the_briefing() {
    use kinship_pipeline::audience;
    let dir = tempfile::tempdir().unwrap();
    let (config, store) = demo(dir.path());
    let everyone = audience::load_audience(&*store, &config, &|_, _| {}).unwrap();
    let now = data_now(&*store).unwrap();
    let program = kinship_expr::compile_segment("overdue invoices > 0", &everyone.schema()).unwrap();
    let context = kinship_expr::EvalContext::at(now);
    let mut selected: Vec<String> = everyone.map_profiles(|p| program.matches(p, &context).then(|| p.id().to_string()));
    selected.sort();
    let admin = kinship_policy::Policy::builtin("admin").unwrap();
    let mut expected = Vec::new();
    store.scan_profiles(&mut |id, _| expected.push(id.to_string())).unwrap();
    expected
        .retain(|id| briefing(&*store, &config, id, None, now, &admin).unwrap().is_some_and(|b| b["overdue_invoices"].as_u64() > Some(0)));
    expected.sort();
    assert!(!expected.is_empty(), "the demo has unpaid invoices past their terms");
    assert_eq!(selected, expected);
}
