//! Customer success over an audience built to match: NPS with its interval and groups,
//! Reichheld's worked example of earned growth from invoices and survey answers, and a health
//! backtest that tells customers who stopped from those who stayed.

use kinship_core::measure::MeasuresConfig;
use kinship_measure::health::HealthProgram;
use kinship_pipeline::success::{backtest, growth, health, keep_alerts, learn_weights, nps, NpsBy, Period};
use kinship_segments::Audience;
use serde_json::{json, Map, Value};

const DAY: i64 = 86_400_000;
/// 2026-05-15T00:00:00Z: mid-quarter.
const NOW: i64 = 1_778_803_200_000;
/// 2026-04-01 and 2026-01-01: this quarter and the last.
const THIS_QUARTER: i64 = 1_775_001_600_000;
const LAST_QUARTER: i64 = 1_767_225_600_000;

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

fn add(a: &mut Audience, id: &str, events: &[(&str, i64, Value)]) {
    let events: Vec<(&str, i64, Map<String, Value>)> = events.iter().map(|(n, t, p)| (*n, *t, obj(p.clone()))).collect();
    a.upsert_profile(id, &Map::new(), events.iter().map(|(n, t, p)| (*n, *t, p)));
}

fn config() -> MeasuresConfig {
    MeasuresConfig { earned: Some(r#"any("NPS Response", why contains "friend")"#.into()), min_answers: 10, ..MeasuresConfig::default() }
}

#[test]
fn reichheld_worked_example_from_invoices_and_survey_answers() {
    let mut a = Audience::new();
    let invoice = |at: i64, amount: f64| ("Invoice Issued", at, json!({ "amount": amount }));
    // Last quarter 100 from A (60) and B (40); this quarter A spends 85, B nothing; new
    // customers C (15) and D (10) came because a friend recommended us, E (20) from an ad.
    add(&mut a, "A", &[invoice(LAST_QUARTER + 10 * DAY, 60.0), invoice(THIS_QUARTER + 5 * DAY, 85.0)]);
    add(&mut a, "B", &[invoice(LAST_QUARTER + 20 * DAY, 40.0)]);
    let survey = |at: i64, why: &str| ("NPS Response", at, json!({ "score": 9, "why": why }));
    add(&mut a, "C", &[invoice(THIS_QUARTER + DAY, 15.0), survey(THIS_QUARTER + 2 * DAY, "a friend told me")]);
    add(&mut a, "D", &[invoice(THIS_QUARTER + 3 * DAY, 10.0), survey(THIS_QUARTER + 4 * DAY, "my friend's socks")]);
    add(&mut a, "E", &[invoice(THIS_QUARTER + 3 * DAY, 20.0), survey(THIS_QUARTER + 4 * DAY, "an ad")]);
    // F bought two quarters ago and is back: won back, neither retained nor new.
    add(&mut a, "F", &[invoice(LAST_QUARTER - 30 * DAY, 70.0), invoice(THIS_QUARTER + 9 * DAY, 5.0)]);
    let periods = growth(&a, &config(), Period::Quarter, 2, NOW).unwrap();
    assert_eq!(periods.len(), 2);
    let (last, this) = (&periods[0], &periods[1]);
    assert_eq!((last.start_ms, this.start_ms), (LAST_QUARTER, THIS_QUARTER));
    assert!(this.partial && !last.partial);
    let g = &this.growth;
    assert_eq!((g.previous_revenue, g.retained_revenue, g.new_revenue, g.earned_new_revenue), (100.0, 85.0, 45.0, 25.0));
    assert!((g.net_revenue_retention.unwrap() - 0.85).abs() < 1e-12);
    assert!((g.earned_growth_rate.unwrap() - 0.10).abs() < 1e-12);
    assert_eq!(format!("{:.1}%", g.earned_share_of_new_revenue.unwrap() * 100.0), "55.6%");
    assert_eq!((g.won_back_customers, g.won_back_revenue), (1, 5.0));
    // The numbers drill down to the customers behind them.
    assert_eq!(this.earned, ["C", "D"]);
    assert_eq!(this.bought, ["E"]);
    assert_eq!(this.lost, ["B"]);
}

#[test]
fn nps_with_its_interval_by_month_weighted_by_revenue_and_among_those_who_left() {
    let mut a = Audience::new();
    // 100 answers: 50 promoters, 30 passives, 20 detractors. Promoters answered in April,
    // the rest in May; detractors stopped buying a year ago, the others bought last week.
    for i in 0..100 {
        let (score, at) = match i {
            0..50 => (10, NOW - 40 * DAY),
            50..80 => (8, NOW - 5 * DAY),
            _ => (3, NOW - 5 * DAY),
        };
        let bought = if score == 3 { NOW - 365 * DAY } else { NOW - 7 * DAY };
        let amount = if score == 10 { 300.0 } else { 100.0 };
        add(
            &mut a,
            &format!("p{i:03}"),
            &[("Invoice Issued", bought, json!({ "amount": amount })), ("NPS Response", at, json!({ "score": score }))],
        );
    }
    let report = nps(&a, &config(), &NpsBy::Month, NOW).unwrap();
    let overall = report.overall.unwrap();
    assert!((overall.nps - 30.0).abs() < 1e-9 && (overall.margin - 15.3).abs() < 0.05, "{overall:?}");
    // Promoters spend three times as much: weighted, (15,000 − 2,000) / 20,000 of the revenue.
    let weighted = report.revenue_weighted.unwrap();
    assert!((weighted.nps - 65.0).abs() < 1e-9, "{weighted:?}");
    assert_eq!(report.groups.iter().map(|g| (g.label.as_str(), g.answers)).collect::<Vec<_>>(), [("2026-04", 50), ("2026-05", 50)]);
    assert!((report.groups[1].score.unwrap().nps - -40.0).abs() < 1e-9);
    assert_eq!((report.churned_answered, report.detractors_among_churned), (20, Some(1.0)));
    assert_eq!(report.detractors_among_active, Some(0.0));
    assert!(report.detractors.contains(&"p080".to_string()) && report.promoters.contains(&"p000".to_string()));
    // Under the minimum a group is insufficient, not a number.
    let strict = MeasuresConfig { min_answers: 60, ..config() };
    assert!(nps(&a, &strict, &NpsBy::Month, NOW).unwrap().groups.iter().all(|g| g.score.is_none()));
    assert!("property:channel".parse::<NpsBy>().is_ok() && "weekday".parse::<NpsBy>().is_err());
}

const HEALTH: &str = r#"
name = "customer"
applies = 'any("Invoice Issued")'
[[measures]]
name = "tickets"
value = 'count("Ticket Opened", last 30 days)'
points = [[0, 100], [3, 0]]
[[measures]]
name = "recency"
value = 'days_since(last("Invoice Issued"))'
points = [[0, 100], [120, 0]]
[[contexts]]
name = "new customer"
when = 'days_since(first("Invoice Issued")) < 60'
weights = { tickets = 0 }
explains_alerts = true
"#;

#[test]
fn a_health_backtest_tells_who_stopped_and_context_spares_new_customers() {
    let mut a = Audience::new();
    let as_of = NOW - 120 * DAY;
    for i in 0..200i64 {
        let mut events = vec![("Invoice Issued", as_of - 400 * DAY, json!({ "amount": 50 }))];
        let leaving = i % 4 == 0;
        // Leavers complained in the month before the date, and buy nothing after it.
        for k in 0..(if leaving { 3 } else { i % 2 }) {
            events.push(("Ticket Opened", as_of - (k + 1) * 5 * DAY, json!({})));
        }
        events.push(("Invoice Issued", as_of - (i % 30 + 1) * DAY, json!({ "amount": 50 })));
        if !leaving {
            events.push(("Invoice Issued", as_of + 30 * DAY, json!({ "amount": 50 })));
        }
        add(&mut a, &format!("c{i:03}"), &events);
    }
    let program = HealthProgram::parse(HEALTH, &a.schema()).unwrap();
    let b = backtest(&a, &config(), &program, as_of, 90).unwrap();
    assert_eq!((b.customers, b.churned), (200, 50));
    assert!(b.health_auc.unwrap() > 0.95, "{b:?}");
    assert!(b.baseline_auc.unwrap() > 0.9, "{b:?}");
    assert_eq!(b.health_precision_top, Some(1.0), "the lowest tenth all left");

    // Today: a new customer who calls a lot is not an alert; an old one is.
    add(
        &mut a,
        "new",
        &[
            ("Invoice Issued", NOW - 10 * DAY, json!({ "amount": 50 })),
            ("Ticket Opened", NOW - 2 * DAY, json!({})),
            ("Ticket Opened", NOW - DAY, json!({})),
            ("Ticket Opened", NOW - DAY / 2, json!({})),
        ],
    );
    add(
        &mut a,
        "old",
        &[
            ("Invoice Issued", NOW - 300 * DAY, json!({ "amount": 50 })),
            ("Invoice Issued", NOW - 100 * DAY, json!({ "amount": 50 })),
            ("Ticket Opened", NOW - 2 * DAY, json!({})),
            ("Ticket Opened", NOW - DAY, json!({})),
            ("Ticket Opened", NOW - DAY / 2, json!({})),
        ],
    );
    let report = health(&a, &program, NOW);
    let alerted: Vec<&str> = report
        .alerts
        .iter()
        .filter_map(|c| match c {
            kinship_measure::health::AlertChange::Opened(alert) => Some(alert.profile.as_str()),
            _ => None,
        })
        .collect();
    assert!(alerted.contains(&"old") && !alerted.contains(&"new"), "{alerted:?}");
    assert_eq!(report.scored, 202);
}

#[test]
fn weights_learnt_from_history_follow_the_signal_and_flag_points_the_wrong_way_round() {
    const DEFINITION: &str = r#"
name = "learn"
[[measures]]
name = "tickets"
value = 'count("Ticket Opened", last 30 days)'
points = [[0, 100], [3, 0]]
[[measures]]
name = "page_views"
value = 'count("Page Viewed", last 30 days)'
points = [[0, 0], [3, 100]]
[[measures]]
name = "quiet_days"
value = 'days_since(last("Invoice Issued"))'
points = [[0, 0], [120, 100]]
weight = 2
"#;
    let mut a = Audience::new();
    let as_of = NOW - 120 * DAY;
    for i in 0..400i64 {
        // A quarter leave: they complained and have been quiet for two months. Page views
        // are the same for leavers and stayers.
        let leaving = i % 4 == 0;
        let mut events = vec![("Invoice Issued", as_of - if leaving { 60 + i % 30 } else { 1 + i % 30 } * DAY, json!({ "amount": 50 }))];
        for k in 0..(if leaving { 2 + i % 2 } else { i % 3 / 2 }) {
            events.push(("Ticket Opened", as_of - (k + 1) * 3 * DAY, json!({})));
        }
        for k in 0..(i / 4 % 4) {
            events.push(("Page Viewed", as_of - (k + 1) * DAY, json!({})));
        }
        if !leaving {
            events.push(("Invoice Issued", as_of + 20 * DAY, json!({ "amount": 50 })));
        }
        add(&mut a, &format!("c{i:03}"), &events);
    }
    // The data runs to 200 days after the date.
    add(&mut a, "late", &[("Page Viewed", as_of + 200 * DAY, json!({}))]);
    let program = HealthProgram::parse(DEFINITION, &a.schema()).unwrap();
    let config = MeasuresConfig { churn_after: "100 days".into(), ..config() };
    let learnt = learn_weights(&a, &config, &program, as_of, 90, 1).unwrap();
    assert_eq!((learnt.customers, learnt.churned), (400, 100));
    let by_name = |n: &str| learnt.measures.iter().find(|m| m.name == n).unwrap();
    let (tickets, views, quiet) = (by_name("tickets"), by_name("page_views"), by_name("quiet_days"));
    assert_eq!((tickets.weight, views.weight, quiet.weight), (1.0, 1.0, 2.0));
    assert!(!tickets.dropped && tickets.learnt > 2.0 * views.learnt, "{learnt:?}");
    // Long quiet scores high by these points, yet it is the leavers who are quiet: left out.
    assert!(quiet.dropped && quiet.learnt == 0.0, "{learnt:?}");
    assert!(learnt.measures.iter().all(|m| m.learnt >= 0.0 && !m.learnt.is_sign_negative()), "{learnt:?}");
    // The learnt weights add up to the definition's, 4.
    let total: f64 = learnt.measures.iter().map(|m| m.learnt).sum();
    assert!((total - 4.0).abs() < 0.02, "{learnt:?}");
    // Three months: the dates a month apart, each date's active customers counted.
    let three = learn_weights(&a, &config, &program, as_of, 90, 3).unwrap();
    assert_eq!(three.dates_ms, [as_of, as_of - 30 * DAY, as_of - 60 * DAY]);
    assert!(three.customers > 400, "{three:?}");
    // A date before any purchase has nothing to learn from, and says so.
    let err = learn_weights(&a, &config, &program, as_of - 2_000 * DAY, 90, 1).unwrap_err().to_string();
    assert!(err.contains("nothing to learn from"), "{err}");
    // After the last purchases everyone active "stopped": nothing tells them apart.
    let err = learn_weights(&a, &config, &program, as_of + 25 * DAY, 90, 1).unwrap_err().to_string();
    assert!(err.contains("stopped: nothing tells them apart"), "{err}");
    // A horizon past the newest event would count as stopped those who may yet buy.
    let err = learn_weights(&a, &config, &program, as_of + 150 * DAY, 90, 1).unwrap_err().to_string();
    assert!(err.contains("runs past the newest event held"), "{err}");
    // A definition whose every measure runs the wrong way has nothing to weigh.
    const BACKWARDS: &str = r#"
name = "backwards"
[[measures]]
name = "tickets"
value = 'count("Ticket Opened", last 30 days)'
points = [[0, 0], [3, 100]]
[[measures]]
name = "quiet_days"
value = 'days_since(last("Invoice Issued"))'
points = [[0, 0], [120, 100]]
"#;
    let backwards = HealthProgram::parse(BACKWARDS, &a.schema()).unwrap();
    let err = learn_weights(&a, &config, &backwards, as_of, 90, 1).unwrap_err().to_string();
    assert!(err.contains("nothing to weigh"), "{err}");
}

/// A customer owned by `owner` whose tickets of the last day turned them red today.
fn turned_red(a: &mut Audience, id: &str, owner: &str) {
    let events: Vec<(&str, i64, Map<String, Value>)> = vec![
        ("Invoice Issued", NOW - 100 * DAY, obj(json!({ "amount": 50 }))),
        ("Ticket Opened", NOW - DAY / 2, obj(json!({}))),
        ("Ticket Opened", NOW - DAY / 3, obj(json!({}))),
        ("Ticket Opened", NOW - DAY / 4, obj(json!({}))),
    ];
    a.upsert_profile(id, &obj(json!({ "account_manager": owner })), events.iter().map(|(n, t, p)| (*n, *t, p)));
}

#[test]
fn alerts_are_kept_in_the_store_once_each_capped_per_owner_snoozed_closed_and_erased() {
    use kinship_segments::{DefinitionSource, Kind};
    let tmp = tempfile::tempdir().unwrap();
    let mut store = kinship_store::open(&kinship_testkit::database_for(tmp.path())).unwrap();
    let mut a = Audience::new();
    for i in 0..5 {
        turned_red(&mut a, &format!("ana{i}"), "ana");
    }
    turned_red(&mut a, "bo0", "bo");
    add(&mut a, "fine", &[("Invoice Issued", NOW - 2 * DAY, json!({ "amount": 50 }))]);
    let text = HEALTH.replace("applies = ", "alerts = { per_owner_per_day = 3, owner = \"account_manager\" }\napplies = ");
    a.define(DefinitionSource { kind: Kind::Health, name: "customer".into(), expression: text }, NOW).unwrap();

    let first = keep_alerts(&mut *store, &kinship_core::Config::default(), &a, "customer", NOW).unwrap();
    assert_eq!((first.scored, first.opened, first.held_back, first.closed, first.open), (7, 4, 2, 0, 4), "{first:?}");
    let open = store.health_alerts("customer", Some("open"), 100).unwrap();
    assert_eq!(open.iter().filter(|r| r.owner == "ana").count(), 3, "ana's limit is three a day: {open:?}");
    assert!(open.iter().all(|r| r.reason == "entered_red" && r.score < 40.0 && r.from_score >= 40.0), "{open:?}");
    // Again, nothing changed: nothing opens twice, and the held-back are not raised again.
    let again = keep_alerts(&mut *store, &kinship_core::Config::default(), &a, "customer", NOW).unwrap();
    assert_eq!((again.opened, again.held_back, again.closed, again.open), (0, 0, 0, 4), "{again:?}");
    assert_eq!(store.health_alerts("customer", None, 100).unwrap().len(), 6);

    // Two passes at once (two nodes, or the CLI beside a server) write each alert, each
    // held-back one and each alert's event once: the store keeps the first.
    let twice = |status: &'static str, profile: &str| kinship_store::NewAlert {
        definition: "customer".into(),
        profile_id: profile.into(),
        reason: "entered_red".into(),
        owner: "ana".into(),
        status,
        opened_at: NOW,
        from_score: 50.0,
        score: 10.0,
        record: Some((
            "kinship".into(),
            kinship_core::NewRecord {
                key: format!("alert-{profile}-{status}"),
                payload: "{}".into(),
                identifiers: String::new(),
                timestamp: Some(NOW),
            },
        )),
    };
    let open_one = open[0].profile_id.clone();
    let held_one = store.health_alerts("customer", Some("held"), 100).unwrap()[0].profile_id.clone();
    let again = kinship_store::AlertChanges { opened: vec![twice("open", &open_one), twice("held", &held_one)], ..Default::default() };
    store.record_alerts(&again, NOW).unwrap();
    assert_eq!(store.health_alerts("customer", None, 100).unwrap().len(), 6, "nothing written twice");
    let mut events = 0;
    store.scan_after(0, 1000, &mut |r| events += usize::from(r.key.starts_with("alert-"))).unwrap();
    assert_eq!(events, 0, "no event for an alert that was not new");

    // Snoozed with a reason; a held-back alert cannot be.
    let ana = open.iter().find(|r| r.owner == "ana").unwrap();
    assert!(store.snooze_alert(ana.id, NOW + 3 * DAY, "on leave, called back", "tester").unwrap());
    let snoozed = store.health_alert(ana.id).unwrap().unwrap();
    assert_eq!((snoozed.snoozed_until, snoozed.snooze_reason.as_deref()), (Some(NOW + 3 * DAY), Some("on leave, called back")));
    let held = store.health_alerts("customer", Some("held"), 100).unwrap();
    assert_eq!(held.len(), 2);
    assert!(!store.snooze_alert(held[0].id, NOW + DAY, "x", "tester").unwrap());

    // Bo's customer orders again: out of red, the alert closes by itself.
    let back: Vec<(&str, i64, Map<String, Value>)> = vec![
        ("Invoice Issued", NOW - 100 * DAY, obj(json!({ "amount": 50 }))),
        ("Invoice Issued", NOW - DAY / 5, obj(json!({ "amount": 80 }))),
        ("Ticket Opened", NOW - DAY / 2, obj(json!({}))),
    ];
    a.upsert_profile("bo0", &obj(json!({ "account_manager": "bo" })), back.iter().map(|(n, t, p)| (*n, *t, p)));
    let later = keep_alerts(&mut *store, &kinship_core::Config::default(), &a, "customer", NOW + DAY / 10).unwrap();
    assert_eq!((later.opened, later.closed, later.open), (0, 1, 3), "{later:?}");
    let bo = store.health_alerts("customer", None, 100).unwrap().into_iter().find(|r| r.profile_id == "bo0").unwrap();
    assert_eq!((bo.status.as_str(), bo.closed_at), ("closed", Some(NOW + DAY / 10)));

    // Erasure takes a person's alerts with them.
    let counts = store.erase(std::slice::from_ref(&ana.profile_id), &[]).unwrap();
    assert!(counts.health_alerts >= 1, "{counts:?}");
    assert!(store.health_alerts("customer", None, 100).unwrap().iter().all(|r| r.profile_id != ana.profile_id));
}
