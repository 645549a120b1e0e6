//! Funnels and experiments over a real store, on a journey that crosses systems (web events,
//! shop orders, a CRM), with answers known by construction: counts per step, the window's
//! edge, a merge that moves an order onto a profile and so deepens its funnel, and a person
//! exposed to both variants under two ids that resolution joins.

use kinship_core::Config;
use kinship_measure::definition::FunnelProgram;
use kinship_pipeline::governance::SuppressionCheck;
use kinship_pipeline::measure::{experiment, funnel, Cohort, ExperimentMetric, FunnelReport};
use kinship_pipeline::{ingest_source, resolve_all};
use kinship_segments::{Audience, DefinitionSource, Kind};
use kinship_store::Database;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

const CONFIG: &str = r#"
[resolve]
default_region = "AU"
priority = ["email", "phone", "anonymous_id"]

[sources.web]
type = "jsonl"
path = "web.jsonl"
key = "id"
timestamp = "at"
identifiers = { anonymous_id = "visitor", email = "email" }
event = { field = "event" }

[sources.shop]
type = "jsonl"
path = "orders.jsonl"
key = "order_id"
timestamp = "at"
identifiers = { email = "email", phone = "phone" }
event = { name = "Order Completed" }

[sources.crm]
type = "csv"
path = "crm.csv"
key = "id"
identifiers = { email = "email", phone = "phone" }
traits = { country = "country" }
"#;

const FUNNEL: &str = r#"
name = "visit_to_order"
window = "14 days"
breakdown = "country"
[[steps]]
event = "Page Viewed"
[[steps]]
event = "Added To Cart"
[[steps]]
event = "Order Completed"
where = "total > 0"
"#;

/// 2026-01-01T00:00:00Z.
const T0: i64 = 1_767_225_600_000;
const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;

fn at(ms: i64) -> String {
    kinship_expr::format_timestamp(ms)
}

fn write_lines(path: &Path, lines: &[Value]) {
    let mut f = std::fs::File::create(path).unwrap();
    for l in lines {
        writeln!(f, "{l}").unwrap();
    }
}

/// 200 people: everyone visits, even ones add to cart; of those, i % 4 == 0 order two days
/// later, i % 4 == 2 twenty days later (past the window); i % 10 == 1 order without a cart.
/// Person `m` adds to cart by email and orders by phone only; person `c` is exposed to both
/// variants under two visitor ids, which an email later joins.
fn data(dir: &Path) {
    let (mut web, mut orders) = (Vec::new(), Vec::new());
    for i in 0..200i64 {
        let (email, t) = (format!("u{i}@example.com"), T0 + i * HOUR);
        let variant = if (i / 2) % 2 == 0 { "control" } else { "treatment" };
        web.push(json!({"id": format!("v{i}"), "visitor": format!("v-{i}"), "email": email, "event": "Page Viewed", "at": at(t)}));
        web.push(json!({"id": format!("x{i}"), "visitor": format!("v-{i}"), "email": email, "event": "Experiment Viewed",
                        "experiment": "checkout_button", "variant": variant, "at": at(t)}));
        if i % 2 == 0 {
            web.push(
                json!({"id": format!("c{i}"), "visitor": format!("v-{i}"), "email": email, "event": "Added To Cart", "at": at(t + HOUR)}),
            );
        }
        let later = match i % 4 {
            0 => Some(2 * DAY),
            2 => Some(20 * DAY),
            _ if i % 10 == 1 => Some(DAY),
            _ => None,
        };
        if let Some(later) = later {
            orders.push(json!({"order_id": format!("o{i}"), "email": email, "total": 10 + i, "at": at(t + later)}));
        }
    }
    web.push(json!({"id": "vm", "visitor": "v-m", "email": "m@example.com", "event": "Page Viewed", "at": at(T0)}));
    web.push(json!({"id": "cm", "visitor": "v-m", "email": "m@example.com", "event": "Added To Cart", "at": at(T0 + HOUR)}));
    orders.push(json!({"order_id": "om", "phone": "0412 000 111", "total": 99, "at": at(T0 + DAY)}));
    for (id, visitor, variant) in [("xa", "v-ca", "control"), ("xb", "v-cb", "treatment")] {
        web.push(json!({"id": id, "visitor": visitor, "event": "Experiment Viewed", "experiment": "checkout_button", "variant": variant, "at": at(T0)}));
    }
    for (id, visitor) in [("ja", "v-ca"), ("jb", "v-cb")] {
        web.push(json!({"id": id, "visitor": visitor, "email": "c@example.com", "event": "Signed In", "at": at(T0 + HOUR)}));
    }
    write_lines(&dir.join("web.jsonl"), &web);
    write_lines(&dir.join("orders.jsonl"), &orders);
    let mut crm = String::from("id,email,phone,country\n");
    for i in 0..200 {
        crm.push_str(&format!("k{i},u{i}@example.com,,{}\n", if i % 3 == 0 { "AU" } else { "NZ" }));
    }
    std::fs::write(dir.join("crm.csv"), crm).unwrap();
}

fn store_for(dir: &Path) -> (Config, Box<dyn Database>) {
    std::fs::write(dir.join("kinship.toml"), CONFIG).unwrap();
    let config = Config::load(dir).unwrap();
    let mut store = kinship_store::open(&kinship_testkit::database_for(dir)).unwrap();
    for name in ["web", "shop", "crm"] {
        ingest_source(&mut *store, &config, name, dir, &SuppressionCheck::nothing(), &|_, _| {}).unwrap();
    }
    resolve_all(&mut *store, &config, &|_, _| {}).unwrap();
    (config, store)
}

fn audience_of(store: &dyn Database, config: &Config) -> Audience {
    kinship_pipeline::audience::load_audience(store, config, &|_, _| {}).unwrap()
}

/// The funnel `text` over every profile of the store, all history.
fn measured(store: &dyn Database, config: &Config, text: &str) -> FunnelReport {
    funnel(&audience_of(store, config), &FunnelProgram::parse(text).unwrap(), None, &Cohort::default())
}

#[test]
fn a_funnel_across_systems_counts_by_construction_and_deepens_when_a_merge_brings_an_order() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    data(dir);
    let (config, store) = store_for(dir);
    let report = measured(&*store, &config, FUNNEL);
    let counts: Vec<u64> = report.result.steps.iter().map(|s| s.count).collect();
    // 200 visitors and m; 100 carts and m's; orders within 14 days after a cart: i % 4 == 0.
    assert_eq!(counts, [201, 101, 50], "{report:#?}");
    // Two days from cart to order (an hour after the visit): the median exactly.
    assert_eq!(report.result.steps[2].time_from_previous.median_ms, Some(2 * DAY - HOUR));
    // m dropped at the order: listed among those who did.
    let m = store.find_profiles("email", "m@example.com").unwrap().remove(0);
    assert!(report.dropped[2].contains(&m), "{:?}", report.dropped[2]);
    // By country: i % 3 == 0 are in AU.
    let au = report.result.breakdown.iter().find(|(c, _)| c == "AU").unwrap();
    assert_eq!(au.1[0], (0..200).filter(|i| i % 3 == 0).count() as u64);
    // Any order: an order without a cart still counts as a second step.
    let any = FUNNEL.replace("window = \"14 days\"", "window = \"14 days\"\norder = \"any\"");
    let any_counts: Vec<u64> = measured(&*store, &config, &any).result.steps.iter().map(|s| s.count).collect();
    assert_eq!(any_counts[1], 101 + (0..200).filter(|i| i % 10 == 1).count() as u64);

    // The CRM learns m's phone: resolution joins the order to m, and the funnel deepens.
    let mut crm = std::fs::read_to_string(dir.join("crm.csv")).unwrap();
    crm.push_str("km,m@example.com,0412 000 111,AU\n");
    std::fs::write(dir.join("crm.csv"), crm).unwrap();
    let (config, store) = store_for(dir);
    let report = measured(&*store, &config, FUNNEL);
    assert_eq!(report.result.steps[2].count, 51);
    // A condition that fails drops the step: no order totals over 1000.
    assert_eq!(measured(&*store, &config, &FUNNEL.replace("total > 0", "total > 1000")).result.steps[2].count, 0);
    // A computed trait breaks a funnel down as a trait does.
    let mut with_computed = audience_of(&*store, &config);
    let orders = DefinitionSource { kind: Kind::Computed, name: "orders".into(), expression: r#"count("Order Completed")"#.into() };
    with_computed.define(orders, 0).unwrap();
    let by_orders = FunnelProgram::parse(&FUNNEL.replace("breakdown = \"country\"", "breakdown = \"computed.orders\"")).unwrap();
    let rows = funnel(&with_computed, &by_orders, None, &Cohort::default()).result.breakdown;
    let entered_by: BTreeMap<&str, u64> = rows.iter().map(|(value, counts)| (value.as_str(), counts[0])).collect();
    assert_eq!(entered_by.values().sum::<u64>(), 201, "{rows:?}");
    assert!(entered_by.contains_key("0.0") && entered_by.contains_key("1.0"), "{rows:?}");
    // Errors name the part at fault.
    let bad = FunnelProgram::parse(&FUNNEL.replace("total > 0", "total >")).err().unwrap().to_string();
    assert!(bad.contains("steps[3].where"), "{bad}");
    let bad = FunnelProgram::parse(&FUNNEL.replace("14 days", "a fortnight")).err().unwrap().to_string();
    assert!(bad.contains("window") && bad.contains("14 days"), "{bad}");
}

#[test]
fn an_experiment_reads_out_per_variant_and_leaves_out_a_person_who_saw_both() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    data(dir);
    let (config, store) = store_for(dir);
    let conversion = ExperimentMetric { event: "Order Completed".into(), property: None, condition: None, days: 14, funnel: None };
    let audience = audience_of(&*store, &config);
    let report = experiment(&audience, "checkout_button", &conversion).unwrap();
    assert_eq!(report.control, "control");
    let c = store.find_profiles("email", "c@example.com").unwrap();
    assert_eq!(report.exposed_to_several, c, "the person under two visitor ids");
    let variant = |name: &str| report.variants.iter().find(|v| v.variant == name).unwrap();
    // (i / 2) % 2 picks the variant: 100 each; ordering within 14 days: i % 4 == 0 (control,
    // i / 2 even) and i % 10 == 1 (both).
    let converted = |pick: fn(i64) -> bool| (0..200).filter(|&i| pick(i) && (i % 4 == 0 || i % 10 == 1)).count() as f64;
    assert_eq!((variant("control").profiles, variant("treatment").profiles), (100, 100));
    // The drill-down names profiles of that variant: u0 saw control.
    let u0 = store.find_profiles("email", "u0@example.com").unwrap().remove(0);
    assert!(variant("control").sample.contains(&u0) && !variant("treatment").sample.contains(&u0));
    assert!((variant("control").mean - converted(|i| (i / 2) % 2 == 0) / 100.0).abs() < 1e-12);
    assert!((variant("treatment").mean - converted(|i| (i / 2) % 2 == 1) / 100.0).abs() < 1e-12);
    let treatment = variant("treatment");
    let f = treatment.frequentist.as_ref().expect("a readout");
    assert!(f.lift < 0.0 && f.p_value < 0.05, "control converts far better here: {f:?}");
    assert!(treatment.bayesian.as_ref().unwrap().chance_to_win < 0.05);
    assert!(report.sample_ratio_p > 0.5);
    // Revenue per user: a sum, adjusted by the same sum before exposure (CUPED).
    let revenue = ExperimentMetric { property: Some("total".into()), ..conversion };
    let report = experiment(&audience, "checkout_button", &revenue).unwrap();
    assert!(report.cuped);
    let sum = |pick: fn(i64) -> bool| (0..200).filter(|&i| pick(i) && (i % 4 == 0 || i % 10 == 1)).map(|i| 10 + i).sum::<i64>() as f64;
    let control = report.variants.iter().find(|v| v.variant == "control").unwrap();
    assert!((control.mean - sum(|i| (i / 2) % 2 == 0) / 100.0).abs() < 1e-9);
    let unknown = experiment(&audience, "no_such_test", &revenue).err().unwrap().to_string();
    assert!(unknown.contains("no_such_test"), "{unknown}");

    // Completing a saved funnel as the metric: exposure then an order within 14 days converts
    // exactly as the order event within 14 days of exposure does; a funnel not saved is an
    // error naming it.
    let mut audience = audience;
    let ordered =
        "name = \"ordered\"\nwindow = \"14 days\"\n[[steps]]\nevent = \"Experiment Viewed\"\n[[steps]]\nevent = \"Order Completed\"\n";
    audience.define(DefinitionSource { kind: Kind::Funnel, name: "ordered".into(), expression: ordered.into() }, 0).unwrap();
    let completing = ExperimentMetric { funnel: Some("ordered".into()), property: None, ..revenue };
    let by_funnel = experiment(&audience, "checkout_button", &completing).unwrap();
    let by_event = experiment(&audience, "checkout_button", &ExperimentMetric { funnel: None, ..completing.clone() }).unwrap();
    assert!(!by_funnel.cuped && by_funnel.metric.contains("completed funnel ordered"), "{}", by_funnel.metric);
    for (a, b) in by_funnel.variants.iter().zip(&by_event.variants) {
        assert_eq!((a.profiles, a.mean), (b.profiles, b.mean), "{}", a.variant);
    }
    let missing = ExperimentMetric { funnel: Some("nowhere".into()), ..completing };
    assert!(experiment(&audience, "checkout_button", &missing).err().unwrap().to_string().contains("no funnel named nowhere"));
}

/// A CRM's stage changes as a funnel: lead → qualified → won, with the time spent in each
/// stage as the time between steps, and the deals lost before winning as the drop-off.
#[test]
fn crm_stages_are_a_funnel_with_the_time_in_each_stage() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(
        dir.join("kinship.toml"),
        "[resolve]\ndefault_region = \"AU\"\n[sources.crm]\ntype = \"jsonl\"\npath = \"stages.jsonl\"\nkey = \"id\"\ntimestamp = \"at\"\n\
         identifiers = { email = \"email\" }\nevent = { name = \"Stage Changed\" }\n",
    )
    .unwrap();
    // Twelve leads: all qualify after i + 1 days; the even ones are won three days after that.
    let mut lines = Vec::new();
    for i in 0..12i64 {
        let email = format!("lead{i}@example.com");
        let qualified = T0 + (i + 1) * DAY;
        lines.push(json!({"id": format!("l{i}"), "email": email, "stage": "lead", "at": at(T0)}));
        lines.push(json!({"id": format!("q{i}"), "email": email, "stage": "qualified", "at": at(qualified)}));
        if i % 2 == 0 {
            lines.push(json!({"id": format!("w{i}"), "email": email, "stage": "won", "at": at(qualified + 3 * DAY)}));
        }
    }
    write_lines(&dir.join("stages.jsonl"), &lines);
    let config = Config::load(dir).unwrap();
    let mut store = kinship_store::open(&kinship_testkit::database_for(dir)).unwrap();
    ingest_source(&mut *store, &config, "crm", dir, &SuppressionCheck::nothing(), &|_, _| {}).unwrap();
    resolve_all(&mut *store, &config, &|_, _| {}).unwrap();
    let report = measured(
        &*store,
        &config,
        "name = \"pipeline\"\nwindow = \"90 days\"\n[[steps]]\nevent = \"Stage Changed\"\nwhere = 'stage == \"lead\"'\n\
         [[steps]]\nevent = \"Stage Changed\"\nwhere = 'stage == \"qualified\"'\n[[steps]]\nevent = \"Stage Changed\"\nwhere = 'stage == \"won\"'\n",
    );
    let steps = &report.result.steps;
    assert_eq!(steps.iter().map(|s| s.count).collect::<Vec<_>>(), [12, 12, 6]);
    // Time as a lead: 1..12 days, nearest-rank median 6 days, p90 11 days; as qualified: always 3 days.
    let lead = &steps[1].time_from_previous;
    assert_eq!((lead.median_ms, lead.p90_ms), (Some(6 * DAY), Some(11 * DAY)));
    assert_eq!(steps[2].time_from_previous.median_ms, Some(3 * DAY));
    assert_eq!(steps[2].dropped, 6);
}

/// A saved funnel is a definition like a segment: stored, loaded again with the audience, read
/// by segments as `funnel("visit_to_order").step`, kept current when a merge brings an order;
/// its numbers drill down to a breakdown value or a week; it may not quote a person.
#[test]
fn a_saved_funnel_positions_profiles_for_segments_and_follows_a_merge() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    data(dir);
    let (config, mut store) = store_for(dir);
    let mut audience = audience_of(&*store, &config);
    let define = |kind, name: &str, expression: &str| DefinitionSource { kind, name: name.into(), expression: expression.into() };
    kinship_pipeline::audience::define(&mut *store, &config, &mut audience, define(Kind::Funnel, "visit_to_order", FUNNEL)).unwrap();
    let carted = define(Kind::Segment, "carted_not_bought", r#"funnel("visit_to_order").step == 2"#);
    let size = kinship_pipeline::audience::define(&mut *store, &config, &mut audience, carted).unwrap();
    // 101 carts (100 and m's) of which 50 ordered in the window.
    assert_eq!(size, 51);
    let m = store.find_profiles("email", "m@example.com").unwrap().remove(0);
    assert!(audience.members("carted_not_bought").unwrap().contains(&m.as_str()));

    // Stored: a fresh load holds the funnel and the segment over it.
    let again = audience_of(&*store, &config);
    assert_eq!(again.size("carted_not_bought"), Some(51));
    assert!(again.saved_funnel("visit_to_order").is_some());

    // Drill-down: the AU row of the breakdown, and one week of the trend, are funnels of their own.
    let program = again.saved_funnel("visit_to_order").unwrap();
    let whole = funnel(&again, program, None, &Cohort::default());
    let au = Cohort { breakdown: Some("AU".into()), week_ms: None };
    let au_report = funnel(&again, program, None, &au);
    assert_eq!(
        au_report.result.steps.iter().map(|s| s.count).collect::<Vec<_>>(),
        whole.result.breakdown.iter().find(|b| b.0 == "AU").unwrap().1
    );
    let (week, counts) = whole.result.weekly[0].clone();
    let weekly = funnel(&again, program, None, &Cohort { breakdown: None, week_ms: Some(week) });
    assert_eq!(weekly.result.steps.iter().map(|s| s.count).collect::<Vec<_>>(), counts);
    let u0 = store.find_profiles("email", "u0@example.com").unwrap().remove(0);
    let u1 = store.find_profiles("email", "u1@example.com").unwrap().remove(0);
    let listed = |report: &FunnelReport, id: &String| report.reached.iter().flatten().any(|r| r == id);
    assert!(listed(&au_report, &u0) && !listed(&au_report, &u1), "u0 is in AU, u1 in NZ");

    // The CRM learns m's phone: the merge brings m's order, and m leaves the segment.
    let mut crm = std::fs::read_to_string(dir.join("crm.csv")).unwrap();
    crm.push_str("km,m@example.com,0412 000 111,AU\n");
    std::fs::write(dir.join("crm.csv"), crm).unwrap();
    ingest_source(&mut *store, &config, "crm", dir, &SuppressionCheck::nothing(), &|_, _| {}).unwrap();
    resolve_all(&mut *store, &config, &|_, _| {}).unwrap();
    let after = audience_of(&*store, &config);
    let m = store.find_profiles("email", "m@example.com").unwrap().remove(0);
    assert_eq!(after.size("carted_not_bought"), Some(50));
    assert!(!after.members("carted_not_bought").unwrap().contains(&m.as_str()));

    // A funnel naming a person is refused: erasure could not rewrite it.
    let mut after = after;
    let quoting = FUNNEL.replace("\"total > 0\"", "'email == \"u1@example.com\"'").replace("visit_to_order", "one_person");
    let refused = kinship_pipeline::audience::define(&mut *store, &config, &mut after, define(Kind::Funnel, "one_person", &quoting));
    let message = refused.unwrap_err().to_string();
    assert!(message.contains("quotes an email address"), "{message}");
    assert!(!message.contains("u1@example.com"), "the refusal must not repeat the address: {message}");
}
