//! The data flow on a real store (a SQLite file, or PostgreSQL with
//! `KINSHIP_TEST_BACKEND=postgres`): ingest, rejects, idempotency, resolution,
//! survivorship, the 360 document, and decisions that survive re-resolution.

#[path = "pipeline/briefing.rs"]
mod briefing;
#[path = "pipeline/exports.rs"]
mod exports;
#[path = "pipeline/flows.rs"]
mod flows;
#[path = "pipeline/measure.rs"]
mod measure;
#[path = "pipeline/postgres_source.rs"]
mod postgres_source;
#[path = "pipeline/shared_store.rs"]
mod shared_store;
#[path = "pipeline/success.rs"]
mod success;

use kinship_core::{Config, LinkConstraint};
use kinship_pipeline::governance::SuppressionCheck;
use kinship_pipeline::{explain, ingest_source, profile_document, resolve_all};
use kinship_store::Database;
use std::path::Path;

const CONFIG: &str = r#"
[resolve]
default_region = "AU"
priority = ["crm_id", "email", "phone"]
[resolve.limits]
crm_id = 1
order_id = 0

[sources.crm]
type = "csv"
path = "crm.csv"
key = "crm_id"
priority = 1
timestamp = "updated_at"
identifiers = { crm_id = "crm_id", email = "email", phone = "phone" }
traits = { first_name = "first_name", city = "city", email = "email" }

[sources.shop]
type = "jsonl"
path = "orders.jsonl"
key = "order_id"
priority = 2
timestamp = "created_at"
identifiers = { email = "customer.email", phone = "customer.phone", order_id = "order_id" }
traits = { city = "customer.city", first_name = "customer.name" }
event = { name = "Order Completed" }
properties = ["order_id", "total"]
types = { total = "number" }

[sources.web]
type = "jsonl"
path = "web.jsonl"
timestamp = "ts"
identifiers = { email = "email" }
event = { field = "type" }
"#;

const CRM: &str = "crm_id,first_name,email,phone,city,updated_at
C1,Alice,Alice@Example.com ,0412 345 678,Sydney,2024-01-01
C2,Bob,family@example.com,0412 000 111,Perth,2024-01-01
C3,Carol,family@example.com,0412 000 222,Perth,2024-01-01
C4,Dan,test@test.com,,Hobart,2024-01-01
C5,Erin,test@test.com,,Darwin,2024-01-01
";

const ORDERS: &str = r#"{"order_id":"O1","customer":{"email":"alice@example.com","city":"Melbourne","name":"Alice"},"total":10.5,"created_at":"2024-03-01T10:00:00Z"}
{"order_id":"O2","customer":{"phone":"+61412345678","city":"Brisbane"},"total":20,"created_at":"2024-04-01T10:00:00Z"}
{"order_id":"O3","customer":{"email":"family@example.com","phone":"0412000111"},"total":5,"created_at":"2024-02-01T10:00:00Z"}
{"order_id":"O4","customer":{"email":"family@example.com"},"total":7,"created_at":"2024-02-02T10:00:00Z"}
"#;

fn setup(dir: &Path, orders: &str) -> (Config, Box<dyn Database>) {
    std::fs::write(dir.join("kinship.toml"), CONFIG).unwrap();
    std::fs::write(dir.join("crm.csv"), CRM).unwrap();
    std::fs::write(dir.join("orders.jsonl"), orders).unwrap();
    std::fs::write(dir.join("web.jsonl"), "{\"email\":\"ALICE@example.com\",\"type\":\"Page Viewed\",\"ts\":1709290000}\n").unwrap();
    let config = Config::load(dir).unwrap();
    let store = kinship_store::open(&kinship_testkit::database_for(dir)).unwrap();
    (config, store)
}

fn ingest_all(store: &mut dyn Database, config: &Config, dir: &Path) -> u64 {
    let mut inserted = 0;
    for name in ["crm", "shop", "web"] {
        inserted += ingest_source(store, config, name, dir, &SuppressionCheck::nothing(), &|_, _| {}).unwrap().inserted;
    }
    resolve_all(store, config, &|_, _| {}).unwrap();
    inserted
}

fn profile_of(store: &dyn Database, source: &str, key: &str) -> String {
    store.record_profile(source, key).unwrap().unwrap_or_else(|| panic!("{source}:{key} is assigned")).1
}

#[test]
fn exact_resolution_with_guards() {
    let tmp = tempfile::tempdir().unwrap();
    let (config, mut store) = setup(tmp.path(), ORDERS);
    ingest_all(&mut *store, &config, tmp.path());
    let alice = profile_of(&*store, "crm", "C1");
    assert_eq!(profile_of(&*store, "shop", "O1"), alice, "email differs only in case and whitespace");
    assert_eq!(profile_of(&*store, "shop", "O2"), alice, "phone in another format");
    assert_eq!(profile_of(&*store, "web", &web_key(&*store)), alice);
    assert_ne!(profile_of(&*store, "crm", "C2"), profile_of(&*store, "crm", "C3"), "a family email does not fuse two CRM contacts");
    assert_eq!(profile_of(&*store, "shop", "O3"), profile_of(&*store, "crm", "C2"), "the phone decides whose order it is");
    let o4 = profile_of(&*store, "shop", "O4");
    assert!(
        o4 != profile_of(&*store, "crm", "C2") && o4 != profile_of(&*store, "crm", "C3"),
        "email-only order of a shared email stays apart"
    );
    assert_ne!(profile_of(&*store, "crm", "C4"), profile_of(&*store, "crm", "C5"), "blocked test email joins nothing");
    assert_eq!(store.find_profiles("email", "alice@example.com").unwrap(), vec![alice]);
}

fn web_key(store: &dyn Database) -> String {
    let mut key = String::new();
    store
        .scan_assignments(&mut |s, k, _| {
            if s == "web" {
                key = k.to_string()
            }
        })
        .unwrap();
    assert_eq!(key.len(), 32, "no key field: the key is a content hash");
    key
}

#[test]
fn reingest_adds_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (config, mut store) = setup(tmp.path(), ORDERS);
    assert_eq!(ingest_all(&mut *store, &config, tmp.path()), 10);
    let before = store.stats().unwrap();
    let report = ingest_source(&mut *store, &config, "shop", tmp.path(), &SuppressionCheck::nothing(), &|_, _| {}).unwrap();
    assert_eq!((report.inserted, report.duplicates), (0, 4));
    assert_eq!(ingest_all(&mut *store, &config, tmp.path()), 0);
    assert_eq!(store.stats().unwrap(), before, "records and profiles unchanged");
}

#[test]
fn bad_rows_are_rejected_with_line_and_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let orders = format!(
        "{ORDERS}{}\n\n{}\n{}\n{}\n[1,2]\n",
        r#"{"order_id":"O5","customer":{"email":"x@y.com"},"total":"lots","created_at":"2024-01-01"}"#,
        r#"{"order_id":"O6","customer":{"email":"x@y.com"}, broken"#,
        r#"{"customer":{"email":"x@y.com"},"total":1,"created_at":"2024-01-01"}"#,
        r#"{"order_id":"O7","customer":{"email":"x@y.com"},"total":1,"created_at":"next week"}"#,
    );
    let (config, mut store) = setup(tmp.path(), &orders);
    std::fs::write(tmp.path().join("crm.csv"), format!("{CRM}C6,Fay,fay@x.com\nC7,Gus,gus@x.com,,Perth,2024-01-01\n")).unwrap();
    let shop = ingest_source(&mut *store, &config, "shop", tmp.path(), &SuppressionCheck::nothing(), &|_, _| {}).unwrap();
    assert_eq!((shop.inserted, shop.rejected), (4, 5));
    let rejects = std::fs::read_to_string(shop.reject_file.unwrap()).unwrap();
    let lines: Vec<serde_json::Value> = rejects.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let by_line = |n: u64| {
        lines.iter().find(|r| r["line"] == n).unwrap_or_else(|| panic!("line {n} rejected: {rejects}"))["reason"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert!(by_line(5).contains("`total`") && by_line(5).contains("number"), "{}", by_line(5));
    assert!(by_line(7).contains("invalid JSON"));
    assert!(by_line(8).contains("key field `order_id`"));
    assert!(by_line(9).contains("timestamp"));
    assert!(by_line(10).contains("expected a JSON object"));
    let crm = ingest_source(&mut *store, &config, "crm", tmp.path(), &SuppressionCheck::nothing(), &|_, _| {}).unwrap();
    assert_eq!((crm.inserted, crm.rejected), (6, 1));
    let crm_rejects = std::fs::read_to_string(crm.reject_file.unwrap()).unwrap();
    assert!(crm_rejects.contains("\"line\":7") && crm_rejects.contains("has 3 fields, the header has 6"), "{crm_rejects}");
}

#[test]
fn survivorship_and_the_360_document() {
    let tmp = tempfile::tempdir().unwrap();
    let (config, mut store) = setup(tmp.path(), ORDERS);
    ingest_all(&mut *store, &config, tmp.path());
    let alice = profile_of(&*store, "crm", "C1");
    let doc = profile_document(&*store, &config, &alice).unwrap().unwrap();
    // The CRM (priority 1) beats newer shop orders (priority 2) for city.
    assert_eq!(doc["traits"]["city"], "Sydney");
    assert_eq!(doc["trait_sources"]["city"]["source"], "crm");
    assert_eq!(doc["traits"]["email"], "Alice@Example.com", "traits keep the source's spelling");
    let kinds: Vec<(&str, &str)> =
        doc["identifiers"].as_array().unwrap().iter().map(|i| (i["kind"].as_str().unwrap(), i["source"].as_str().unwrap())).collect();
    assert!(
        kinds.contains(&("email", "crm"))
            && kinds.contains(&("email", "shop"))
            && kinds.contains(&("phone", "shop"))
            && kinds.contains(&("order_id", "shop"))
    );
    assert_eq!(doc["records"].as_array().unwrap().len(), 4);
    let events: Vec<&str> = doc["events"].as_array().unwrap().iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(events, ["Order Completed", "Page Viewed", "Order Completed"], "newest first");
    assert_eq!(doc["events"][0]["properties"], serde_json::json!({"order_id": "O2", "total": 20}));

    // Without the CRM source, the most recent shop order wins.
    let mut shop_first = config.clone();
    shop_first.sources.get_mut("shop").unwrap().priority = 0;
    resolve_all(&mut *store, &shop_first, &|_, _| {}).unwrap();
    let doc = profile_document(&*store, &shop_first, &profile_of(&*store, "crm", "C1")).unwrap().unwrap();
    assert_eq!(doc["traits"]["city"], "Brisbane", "order O2 (April) is newer than O1 (March)");
    assert_eq!(doc["traits"]["first_name"], "Alice", "a trait only the older order has still survives");
}

#[test]
fn split_and_merge_survive_reresolution() {
    let tmp = tempfile::tempdir().unwrap();
    let (config, mut store) = setup(tmp.path(), ORDERS);
    ingest_all(&mut *store, &config, tmp.path());
    let alice = profile_of(&*store, "crm", "C1");
    let records = store.profile_records(&alice).unwrap();
    for r in records.iter().filter(|r| r.key != "O2") {
        store
            .add_constraint(&LinkConstraint { must: false, left: ("shop".into(), "O2".into()), right: (r.source.clone(), r.key.clone()) })
            .unwrap();
    }
    resolve_all(&mut *store, &config, &|_, _| {}).unwrap();
    assert_ne!(profile_of(&*store, "shop", "O2"), profile_of(&*store, "crm", "C1"));
    assert_eq!(profile_of(&*store, "crm", "C1"), alice, "the profile keeps its id: its oldest record stayed");
    // Re-ingesting and re-resolving keeps the decision.
    ingest_all(&mut *store, &config, tmp.path());
    assert_ne!(profile_of(&*store, "shop", "O2"), profile_of(&*store, "crm", "C1"));

    store.add_constraint(&LinkConstraint { must: true, left: ("crm".into(), "C4".into()), right: ("crm".into(), "C5".into()) }).unwrap();
    resolve_all(&mut *store, &config, &|_, _| {}).unwrap();
    let merged = profile_of(&*store, "crm", "C4");
    assert_eq!(profile_of(&*store, "crm", "C5"), merged);

    // The same decisions applied to just the profiles they touch give the same answer as
    // the full resolutions above, and leave every other profile as it was.
    store.add_constraint(&LinkConstraint { must: false, left: ("shop".into(), "O1".into()), right: ("crm".into(), "C1".into()) }).unwrap();
    let before = assignment_map(&*store);
    let alice = profile_of(&*store, "crm", "C1");
    kinship_pipeline::reresolve_profiles(&mut *store, &config, std::slice::from_ref(&alice)).unwrap();
    let local = assignment_map(&*store);
    assert_ne!(profile_of(&*store, "shop", "O1"), profile_of(&*store, "crm", "C1"), "the split took effect");
    for (record, profile) in &before {
        if *profile != alice {
            assert_eq!(&local[record], profile, "{record:?} was not touched");
        }
    }
    resolve_all(&mut *store, &config, &|_, _| {}).unwrap();
    assert_eq!(local, assignment_map(&*store), "local re-resolution agrees with a full one");
    let why = explain(&*store, &config, &merged).unwrap().unwrap();
    assert_eq!(why["joins"][0]["stage"], "must_link");
    let why = explain(&*store, &config, &alice).unwrap().unwrap();
    assert!(why["joins"].as_array().unwrap().iter().all(|j| j["stage"] == "exact" && j["evidence"]["kind"].is_string()), "{why}");
}

fn assignment_map(store: &dyn Database) -> std::collections::BTreeMap<(String, String), String> {
    let mut m = std::collections::BTreeMap::new();
    store
        .scan_assignments(&mut |s, k, p| {
            m.insert((s.to_string(), k.to_string()), p.to_string());
        })
        .unwrap();
    m
}

/// The demo's seven messy sources (shared family mailboxes, duplicate contacts, records
/// that join two profiles later) resolved in real time, batch after batch, give the same
/// profiles as one full resolution: in small batches, and in batches large enough that new
/// people and records naming them meet in one batch. The fuzzy stage is left out: real
/// time matches only against an index the full resolution trained.
#[test]
fn real_time_resolution_of_the_demo_agrees_with_a_full_resolution() {
    for batch in [157, 2000] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        kinship_demo::generate(dir, &kinship_demo::DemoOptions { customers: 600, seed: 11 }, &mut |_, _, _| {}).unwrap();
        let mut config = Config::load(dir).unwrap();
        config.fuzzy = None;
        let mut store = kinship_store::open(&kinship_testkit::database_for(dir)).unwrap();
        let mut sources: Vec<String> = config.sources.iter().filter(|(_, s)| s.kind.is_pulled()).map(|(n, _)| n.clone()).collect();
        sources.sort();
        for name in &sources {
            ingest_source(&mut *store, &config, name, dir, &SuppressionCheck::nothing(), &|_, _| {}).unwrap();
        }
        let mut total = kinship_pipeline::IncrementalReport::default();
        loop {
            let r = kinship_pipeline::resolve_new_records(&mut *store, &config, batch, None, None).unwrap();
            if r.attached + r.created + r.reresolved == 0 {
                break;
            }
            total.attached += r.attached;
            total.created += r.created;
            total.reresolved += r.reresolved;
        }
        assert!(total.attached > 500 && total.created > 300 && total.reresolved > 0, "batches of {batch}: {total:?}");
        let real_time = assignment_map(&*store);
        resolve_all(&mut *store, &config, &|_, _| {}).unwrap();
        let full = assignment_map(&*store);
        assert_eq!(real_time.len(), full.len());
        let differing: Vec<_> = real_time.iter().filter(|(record, profile)| full.get(*record) != Some(*profile)).take(5).collect();
        assert!(differing.is_empty(), "batches of {batch}: records on other profiles than a full resolution gives: {differing:?}");
    }
}

#[test]
fn incremental_resolution_agrees_with_batch() {
    let tmp = tempfile::tempdir().unwrap();
    let (config, mut store) = setup(tmp.path(), ORDERS);
    // Records arrive in an order where later ones merge earlier profiles (O2's phone
    // reaches Alice only through the CRM row) and a guard must split a shared email.
    for name in ["shop", "web", "crm"] {
        ingest_source(&mut *store, &config, name, tmp.path(), &SuppressionCheck::nothing(), &|_, _| {}).unwrap();
    }
    let mut total = kinship_pipeline::IncrementalReport::default();
    loop {
        let r = kinship_pipeline::resolve_new_records(&mut *store, &config, 3, None, None).unwrap();
        if r.attached + r.created + r.reresolved == 0 {
            break;
        }
        total.attached += r.attached;
        total.created += r.created;
        total.reresolved += r.reresolved;
    }
    assert_eq!(total.attached + total.created + total.reresolved, 10, "each record resolved once");
    assert!(total.attached > 0 && total.reresolved > 0, "{total:?}");
    let incremental = assignment_map(&*store);
    let incremental_traits = profile_document(&*store, &config, &profile_of(&*store, "crm", "C1")).unwrap().unwrap()["traits"].clone();
    resolve_all(&mut *store, &config, &|_, _| {}).unwrap();
    assert_eq!(incremental, assignment_map(&*store), "same profiles, same ids");
    let batch_traits = profile_document(&*store, &config, &profile_of(&*store, "crm", "C1")).unwrap().unwrap()["traits"].clone();
    assert_eq!(incremental_traits, batch_traits, "same golden record");
    assert_eq!(
        kinship_pipeline::resolve_new_records(&mut *store, &config, 100, None, None).unwrap().attached,
        0,
        "nothing left after a full resolve"
    );
}

const FUZZY: &str = r#"
[fuzzy]
threshold = 0.9
blocking = [["last_name"], ["postcode"]]
prior = { probability = 0.01 }

[[fuzzy.fields]]
column = "first_name"
kind = "jaro_winkler"
thresholds = [0.92, 0.8]

[[fuzzy.fields]]
column = "last_name"
kind = "jaro_winkler"
thresholds = [0.92, 0.8]

[[fuzzy.fields]]
column = "postcode"
kind = "exact"
"#;

/// The fuzzy fixture: a CRM of 64 distinct people plus `extra_crm` rows, and a web source
/// of `web` rows (id,first,last,postcode,email,email2), with the fuzzy stage on names and
/// postcode; both ingested and resolved.
fn fuzzy_fixture(dir: &Path, extra_crm: &str, web: &str) -> (Config, Box<dyn Database>) {
    let (config, store, _) = fuzzy_fixture_at(dir, extra_crm, web);
    (config, store)
}

/// The fuzzy fixture and where its store is, for opening a second connection to it.
fn fuzzy_fixture_at(dir: &Path, extra_crm: &str, web: &str) -> (Config, Box<dyn Database>, String) {
    std::fs::write(
        dir.join("kinship.toml"),
        format!(
            r#"
[resolve]
limits = {{ crm_id = 1 }}
[sources.crm]
type = "csv"
path = "crm.csv"
key = "crm_id"
identifiers = {{ crm_id = "crm_id", email = "email" }}
traits = {{ first_name = "first", last_name = "last", postcode = "postcode" }}
[sources.web]
type = "csv"
path = "web.csv"
key = "id"
identifiers = {{ email = ["email", "email2"] }}
traits = {{ first_name = "first", last_name = "last", postcode = "postcode" }}
{FUZZY}"#
        ),
    )
    .unwrap();
    // Distinct people, so u can be estimated.
    let mut crm = String::from("crm_id,first,last,postcode,email\n");
    let (firsts, lasts) =
        (["Ann", "Ben", "Cal", "Dee", "Eve", "Fay", "Gus", "Hal"], ["Ames", "Bond", "Cole", "Dunn", "Ellis", "Frost", "Gray", "Hart"]);
    for i in 0..64 {
        crm.push_str(&format!("B{i},{},{},{},b{i}@x.com\n", firsts[i % 8], lasts[i / 8], 2000 + i));
    }
    crm.push_str(extra_crm);
    std::fs::write(dir.join("crm.csv"), crm).unwrap();
    std::fs::write(dir.join("web.csv"), format!("id,first,last,postcode,email,email2\n{web}")).unwrap();
    let config = Config::load(dir).unwrap();
    let location = kinship_testkit::database_for(dir);
    let mut store = kinship_store::open(&location).unwrap();
    for name in ["crm", "web"] {
        ingest_source(&mut *store, &config, name, dir, &SuppressionCheck::nothing(), &|_, _| {}).unwrap();
    }
    resolve_all(&mut *store, &config, &|_, _| {}).unwrap();
    (config, store, location)
}

#[test]
fn fuzzy_stage_merges_by_traits_under_the_guards() {
    let tmp = tempfile::tempdir().unwrap();
    // No shared identifiers: only names and postcodes say who is who. C1 and W1 are one
    // person (a typo in the surname); C2 and C3 look alike but hold two crm_ids.
    let (config, mut store) = fuzzy_fixture(
        tmp.path(),
        "C1,Margaret,Thornbury,3141,meg@x.com\nC2,Jonathan,Whitcombe,3000,jw1@x.com\nC3,Jonathan,Whitcombe,3000,jw2@x.com\n",
        "W1,Margaret,Thornbery,3141,mthornbury@y.com,\n",
    );
    // The fixture resolved once; a second full resolution must decide the same.
    let report = resolve_all(&mut *store, &config, &|_, _| {}).unwrap();
    let meg = profile_of(&*store, "crm", "C1");
    assert_eq!(profile_of(&*store, "web", "W1"), meg, "a typo in the surname, same first name and postcode");
    assert_ne!(profile_of(&*store, "crm", "C2"), profile_of(&*store, "crm", "C3"), "two crm_ids stay apart however alike");
    assert_eq!(report.fuzzy_merges, 1, "{report:?}");
    assert_ne!(profile_of(&*store, "crm", "B0"), profile_of(&*store, "crm", "B1"));
    let why = explain(&*store, &config, &meg).unwrap().unwrap();
    let join = &why["joins"][0];
    assert_eq!(join["stage"], "fuzzy");
    let fields: Vec<&str> = join["evidence"]["fields"].as_array().unwrap().iter().map(|f| f["column"].as_str().unwrap()).collect();
    assert_eq!(fields, ["first_name", "last_name", "postcode"]);
    assert!(join["evidence"]["probability"].as_f64().unwrap() >= 0.9);

    // A split is a cannot-link: the fuzzy stage respects it on re-resolution.
    store.add_constraint(&LinkConstraint { must: false, left: ("web".into(), "W1".into()), right: ("crm".into(), "C1".into()) }).unwrap();
    resolve_all(&mut *store, &config, &|_, _| {}).unwrap();
    assert_ne!(profile_of(&*store, "web", "W1"), profile_of(&*store, "crm", "C1"));
}

#[test]
fn real_time_resolution_keeps_fuzzy_merges() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (config, mut store) =
        fuzzy_fixture(dir, "C1,Margaret,Thornbury,3141,meg@x.com\n", "W1,Margaret,Thornbery,3141,mthornbury@y.com,\n");
    let meg = profile_of(&*store, "crm", "C1");
    assert_eq!(profile_of(&*store, "web", "W1"), meg, "joined by the fuzzy stage");
    // New records arrive: W2 names Meg and B5 at once (two crm_ids: the guard refuses),
    // so her profile, which holds a fuzzy merge, is re-resolved in real time.
    std::fs::write(
        dir.join("web.csv"),
        "id,first,last,postcode,email,email2\nW2,Meg,,,meg@x.com,b5@x.com\nW3,Bo,,,b1@x.com,\nW4,,,,mthornbury@y.com,\n",
    )
    .unwrap();
    ingest_source(&mut *store, &config, "web", dir, &SuppressionCheck::nothing(), &|_, _| {}).unwrap();
    let report = kinship_pipeline::resolve_new_records(&mut *store, &config, 100, None, None).unwrap();
    assert_eq!(report.attached + report.created + report.reresolved, 3, "{report:?}");
    assert_eq!(report.reresolved, 1, "{report:?}");
    let meg = profile_of(&*store, "crm", "C1");
    for key in ["W1", "W4"] {
        assert_eq!(profile_of(&*store, "web", key), meg, "{key}: the fuzzy merge holds through real-time resolution");
    }
    assert_ne!(profile_of(&*store, "web", "W2"), meg, "W2's emails are contested: it stays apart");
    assert_ne!(profile_of(&*store, "crm", "B5"), meg);
    let why = explain(&*store, &config, &meg).unwrap().unwrap();
    assert!(why["joins"].as_array().unwrap().iter().any(|j| j["stage"] == "fuzzy"), "{why}");

    // Real-time fuzzy matching: a record with no known identifier that starts a profile is
    // matched against the in-memory index of every profile's golden traits.
    let mut index = kinship_pipeline::FuzzyIndex::build(&*store, &config).unwrap().expect("fuzzy is configured");
    assert!(index.len() >= 65);
    std::fs::write(
        dir.join("web.csv"),
        "id,first,last,postcode,email,email2\nW9,Margaret,Thornbury,3141,new.address@z.com,\nW10,Zed,Quux,9999,zq@z.com,\n",
    )
    .unwrap();
    ingest_source(&mut *store, &config, "web", dir, &SuppressionCheck::nothing(), &|_, _| {}).unwrap();
    let report = kinship_pipeline::resolve_new_records(&mut *store, &config, 100, Some(&mut index), None).unwrap();
    assert_eq!((report.created, report.fuzzy_merges), (2, 1), "{report:?}");
    let meg = profile_of(&*store, "crm", "C1");
    assert_eq!(profile_of(&*store, "web", "W9"), meg, "same name and postcode, new email");
    assert_ne!(profile_of(&*store, "web", "W10"), meg, "resembles nobody: stays alone");
    let why = explain(&*store, &config, &meg).unwrap().unwrap();
    let live = why["joins"].as_array().unwrap().iter().find(|j| j["right"]["key"] == "W9").expect("the real-time join is explained");
    assert_eq!(live["stage"], "fuzzy");
    assert!(live["evidence"]["probability"].as_f64().unwrap() >= 0.9);
}

/// Two nodes over one store, each with its own fuzzy index: a profile one node creates
/// becomes a candidate on the other at its next poll of the change feed, and the other's
/// new record then merges with it.
#[test]
fn a_profile_one_node_creates_is_a_fuzzy_candidate_on_another_after_one_poll() {
    use kinship_pipeline::follow::{Copies, Follower};
    use kinship_pipeline::governance::{Keys, SuppressionList};
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (config, mut node_a, location) = fuzzy_fixture_at(dir, "", "");
    node_a.set_origin("node-a");
    let mut node_b = kinship_store::open(&location).unwrap();
    node_b.set_origin("node-b");
    let mut follower = Follower::start(&*node_b, "node-b").unwrap();
    let mut index_a = kinship_pipeline::FuzzyIndex::build(&*node_a, &config).unwrap();
    let mut index_b = kinship_pipeline::FuzzyIndex::build(&*node_b, &config).unwrap();
    let audience = std::sync::RwLock::new(kinship_segments::Audience::unloaded());
    let suppression = SuppressionList::load(&*node_b, Keys::load_or_create(dir).unwrap().suppression).unwrap();
    let arrive = |store: &mut dyn Database, row: &str| {
        std::fs::write(dir.join("web.csv"), format!("id,first,last,postcode,email,email2\n{row}\n")).unwrap();
        ingest_source(store, &config, "web", dir, &SuppressionCheck::nothing(), &|_, _| {}).unwrap();
    };

    arrive(&mut *node_a, "W20,Rosalind,Featherstonehaugh,5150,rf@z.com,");
    let report = kinship_pipeline::resolve_new_records(&mut *node_a, &config, 100, index_a.as_mut(), None).unwrap();
    assert_eq!((report.created, report.fuzzy_merges), (1, 0), "{report:?}");
    let before = index_b.as_ref().unwrap().len();
    let followed =
        follower.poll(&*node_b, &config, Copies { audience: &audience, index: &mut index_b, suppression: &suppression }).unwrap();
    assert!(followed.applied >= 1 && followed.warnings.is_empty(), "{followed:?}");
    assert_eq!(index_b.as_ref().unwrap().len(), before + 1, "node A's new profile is a candidate on node B");

    arrive(&mut *node_b, "W21,Rosalind,Featherstonhaugh,5150,other@z.com,");
    let report = kinship_pipeline::resolve_new_records(&mut *node_b, &config, 100, index_b.as_mut(), None).unwrap();
    assert_eq!((report.created, report.fuzzy_merges), (1, 1), "{report:?}");
    assert_eq!(profile_of(&*node_b, "web", "W21"), profile_of(&*node_b, "web", "W20"), "one person, a typo apart");
}

/// The change feed names profiles by id: after an erasure only the erasure's own entry
/// names the person (for the other processes to drop them); the entries that named them
/// before name `<erased>` instead and still name everyone else.
#[test]
fn an_erasure_leaves_the_person_only_in_its_own_change_feed_entry() {
    use kinship_pipeline::governance::{erase, Keys, Subject, SuppressionList};
    use kinship_store::ChangeKind;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(
        dir.join("kinship.toml"),
        "[sources.app]\ntype = \"jsonl\"\npath = \"app.jsonl\"\nkey = \"id\"\nidentifiers = { email = \"email\" }\n",
    )
    .unwrap();
    std::fs::write(dir.join("app.jsonl"), "{\"id\":\"1\",\"email\":\"ann@x.com\"}\n{\"id\":\"2\",\"email\":\"bob@x.com\"}\n").unwrap();
    let config = Config::load(dir).unwrap();
    let mut store = kinship_store::open(&kinship_testkit::database_for(dir)).unwrap();
    ingest_source(&mut *store, &config, "app", dir, &SuppressionCheck::nothing(), &|_, _| {}).unwrap();
    kinship_pipeline::resolve_new_records(&mut *store, &config, 100, None, None).unwrap();
    // A second record of Ann's, resolved in real time, names her profile in the feed.
    std::fs::write(dir.join("app.jsonl"), "{\"id\":\"3\",\"email\":\"ann@x.com\"}\n").unwrap();
    ingest_source(&mut *store, &config, "app", dir, &SuppressionCheck::nothing(), &|_, _| {}).unwrap();
    kinship_pipeline::resolve_new_records(&mut *store, &config, 100, None, None).unwrap();
    let ann = profile_of(&*store, "app", "1");
    let naming = |store: &dyn Database, who: &str| -> Vec<ChangeKind> {
        store.changes_after(0, 1000).unwrap().into_iter().filter(|c| c.detail.to_string().contains(who)).map(|c| c.kind).collect()
    };
    assert!(naming(&*store, &ann).contains(&ChangeKind::Profiles), "the feed named Ann's profile");
    let bob = profile_of(&*store, "app", "2");
    let bob_named = naming(&*store, &bob);
    assert!(!bob_named.is_empty());

    let list = SuppressionList::load(&*store, Keys::load_or_create(dir).unwrap().suppression).unwrap();
    erase(&mut *store, &config, dir, &Subject::Profile(ann.clone()), &list).unwrap();
    assert_eq!(naming(&*store, &ann), [ChangeKind::Erasure], "only the erasure names her now");
    assert_eq!(naming(&*store, &bob), bob_named, "Bob's entries stay");
}

/// On SQLite the audit log is a file of its own, and a database from before that move has
/// its log moved there when opened: the entries, their chain and the anchor all still hold.
#[test]
fn an_sqlite_audit_log_lives_in_its_own_file_and_an_older_one_is_moved_there() {
    use kinship_pipeline::governance::{audit_event, verify_audit, AuditLog};
    let count = |path: &Path, sql: &str| -> i64 { rusqlite::Connection::open(path).unwrap().query_row(sql, [], |r| r.get(0)).unwrap() };
    let tables = "SELECT COUNT(*) FROM sqlite_master WHERE name = 'audit_log'";

    // A log written now: in kinship-audit.sqlite, none of it in the database file.
    let written = tempfile::tempdir().unwrap();
    let database = written.path().join("kinship.sqlite");
    let mut store = kinship_store::open(database.to_str().unwrap()).unwrap();
    let events: Vec<_> =
        (0..3).map(|i| audit_event("token:ops", "read", Some(&format!("p_{i}")), Some("GET /x"), serde_json::json!({}))).collect();
    AuditLog::open(&*store, written.path()).unwrap().append(&mut *store, &events).unwrap();
    let audit_file = kinship_store::audit_path(&database);
    assert_eq!(audit_file, written.path().join("kinship-audit.sqlite"));
    assert_eq!(count(&audit_file, "SELECT COUNT(*) FROM audit_log"), 3);
    assert_eq!(count(&database, tables), 0, "the database file holds no audit table");
    let rows = store.audit_lines(&kinship_store::AuditFilter::default(), 10).unwrap();
    drop(store);

    // The same entries in the database file, as an older kinship kept them.
    let older = tempfile::tempdir().unwrap();
    let database = older.path().join("kinship.sqlite");
    drop(kinship_store::open(database.to_str().unwrap()).unwrap());
    std::fs::remove_file(kinship_store::audit_path(&database)).unwrap();
    std::fs::copy(written.path().join("audit.anchor"), older.path().join("audit.anchor")).unwrap();
    let old = rusqlite::Connection::open(&database).unwrap();
    old.execute_batch(
        "CREATE TABLE audit_log (seq INTEGER PRIMARY KEY, at_ms INTEGER NOT NULL, actor TEXT NOT NULL, profile TEXT, line TEXT NOT NULL);
         CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
         DROP TABLE changes; DROP TABLE flows; DROP TABLE flow_runs; DROP TABLE tasks; DROP TABLE deliveries; DROP TABLE flow_waits; DROP TABLE health_alerts;
         DROP INDEX segment_transitions_by_time;
         DELETE FROM schema_migrations WHERE version >= 7;",
    )
    .unwrap();
    for r in &rows {
        old.execute(
            "INSERT INTO audit_log VALUES (?1, ?2, ?3, ?4, ?5)",
            rusqlite::params![r.seq as i64, r.at_ms, r.actor, r.profile, r.line],
        )
        .unwrap();
    }
    drop(old);

    let store = kinship_store::open(database.to_str().unwrap()).unwrap();
    assert_eq!(count(&database, tables), 0, "the old table is gone");
    assert_eq!(count(&kinship_store::audit_path(&database), "SELECT COUNT(*) FROM audit_log"), 3);
    let verified = verify_audit(&*store, older.path()).unwrap();
    assert_eq!((verified.entries, verified.after_anchor), (3, 0));
}

/// On SQLite the audit log takes no part in the database's write lock: an entry is appended
/// at once while another connection holds a write transaction open (ingest, a resolution).
#[test]
fn an_sqlite_audit_append_does_not_wait_for_a_database_writer() {
    use kinship_pipeline::governance::{audit_event, AuditLog};
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("kinship.sqlite");
    let mut writer = kinship_store::open(database.to_str().unwrap()).unwrap();
    let mut auditor = kinship_store::open(database.to_str().unwrap()).unwrap();
    writer.begin().unwrap();
    let started = std::time::Instant::now();
    let event = audit_event("token:ops", "read", Some("p_1"), Some("GET /x"), serde_json::json!({}));
    AuditLog::open(&*auditor, dir.path()).unwrap().append(&mut *auditor, &[event]).unwrap();
    // The busy timeout is 10 s: waiting for the writer would take all of it.
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "the append waited {:?}", started.elapsed());
    writer.rollback().unwrap();
    assert_eq!(auditor.audit_lines(&kinship_store::AuditFilter::default(), 10).unwrap().len(), 1);
}

#[test]
fn a_duplicate_crm_contact_joins_while_a_family_sharing_a_mailbox_stays_apart() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(
        dir.join("kinship.toml"),
        r#"
[resolve]
limits = { crm_id = 1 }
[sources.crm]
type = "csv"
path = "crm.csv"
key = "crm_id"
identifiers = { crm_id = "crm_id", email = "email", phone = "phone" }
traits = { first_name = "first", last_name = "last", birth_date = "dob", email = "email", phone = "phone" }

[fuzzy]
threshold = 0.9
blocking = [["last_name"], ["email"]]
prior = { probability = 0.0005 }

[[fuzzy.fields]]
column = "first_name"
kind = "jaro_winkler"
thresholds = [0.92, 0.8]

[[fuzzy.fields]]
column = "last_name"
kind = "jaro_winkler"
thresholds = [0.92, 0.8]

[[fuzzy.fields]]
column = "birth_date"
kind = "date"

[[fuzzy.fields]]
column = "email"
kind = "exact"

[[fuzzy.fields]]
column = "phone"
kind = "exact"
"#,
    )
    .unwrap();
    let mut crm = String::from("crm_id,first,last,dob,email,phone\n");
    let firsts = ["Ann", "Ben", "Cal", "Dee", "Eve", "Fay", "Gus", "Hal", "Ida", "Jon", "Kim", "Lou"];
    let lasts = ["Ames", "Bond", "Cole", "Dunn", "Ellis", "Frost", "Gray", "Hart", "Ives", "Jory", "Knox", "Lyle"];
    for i in 0..144 {
        crm.push_str(&format!(
            "B{i},{},{},19{:02}-0{}-1{},b{i}@x.com,+6141{:07}\n",
            firsts[i % 12],
            lasts[i / 12],
            40 + i % 50,
            1 + i % 9,
            i % 10,
            i
        ));
    }
    // a sales rep's second contact for one person: every field the same, another crm_id
    crm.push_str("D1,Priya,Raman,1980-04-12,priya.raman@x.com,+61412345678\n");
    crm.push_str("D2,Priya,Raman,1980-04-12,priya.raman@x.com,+61412345678\n");
    // a mother and daughter sharing the family mailbox, phone and surname
    crm.push_str("F1,Margaret,Okafor,1961-09-30,okafors@x.com,+61498765432\n");
    crm.push_str("F2,Chioma,Okafor,1994-02-17,okafors@x.com,+61498765432\n");
    std::fs::write(dir.join("crm.csv"), crm).unwrap();
    let config = Config::load(dir).unwrap();
    let mut store = kinship_store::open(&kinship_testkit::database_for(dir)).unwrap();
    ingest_source(&mut *store, &config, "crm", dir, &SuppressionCheck::nothing(), &|_, _| {}).unwrap();
    resolve_all(&mut *store, &config, &|_, _| {}).unwrap();

    let priya = profile_of(&*store, "crm", "D1");
    assert_eq!(profile_of(&*store, "crm", "D2"), priya, "the duplicate contact joins despite crm_id = 1");
    let why = explain(&*store, &config, &priya).unwrap().unwrap();
    let join = why["joins"].as_array().unwrap().iter().find(|j| j["stage"] == "fuzzy").expect("joined by the fuzzy stage");
    assert_eq!(join["evidence"]["overrode_limit"], "crm_id", "{join}");
    assert_ne!(profile_of(&*store, "crm", "F1"), profile_of(&*store, "crm", "F2"), "mother and daughter stay apart");

    // declared unique, the same limit never gives way
    let mut strict = config.clone();
    strict.resolve.unique.push("crm_id".into());
    resolve_all(&mut *store, &strict, &|_, _| {}).unwrap();
    assert_ne!(profile_of(&*store, "crm", "D1"), profile_of(&*store, "crm", "D2"));
}

#[test]
fn accented_names_resolve_with_a_phonetic_blocking_key() {
    let tmp = tempfile::tempdir().unwrap();
    // the demo's kind of key, metaphone of a surname, over names that once panicked it
    let extra = "C1,José,GARCÍA,3141,jg@x.com\nC2,Zoë,MÜLLER,3000,zm@x.com\nC3,Łukasz,Sørensen,3100,ls@x.com\n";
    let web = "W1,Jose,Garcia,3141,jose@y.com,\nW2,Zoe,Muller,3000,zoe@y.com,\nW3,Γιώργος,Παπαδόπουλος,3200,gp@y.com,\n";
    let (config, mut store) = fuzzy_fixture(tmp.path(), extra, web);
    let mut config = config;
    let mut table = config.fuzzy.clone().unwrap();
    table.insert(
        "blocking".into(),
        toml::Value::try_from(vec![vec!["metaphone(last_name)".to_string()], vec!["postcode".to_string()]]).unwrap(),
    );
    config.fuzzy = Some(table);
    resolve_all(&mut *store, &config, &|_, _| {}).unwrap();
    assert_eq!(profile_of(&*store, "web", "W1"), profile_of(&*store, "crm", "C1"), "García and Garcia");
    assert_eq!(profile_of(&*store, "web", "W2"), profile_of(&*store, "crm", "C2"), "Müller and Muller");
}
