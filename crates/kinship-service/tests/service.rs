//! SLA clocks on worked cases whose answers were computed by hand from Zendesk's published
//! metric definitions, to the minute: business hours in Sydney (Mon–Fri 09:00–17:00, AEDT),
//! with 25 and 28 December 2026 as holidays. Then deals (`mod deals`): read from a CRM's
//! versions, the forecast against a hand computation, and the stage funnel.

use chrono::TimeZone;
use kinship_service::sla::{Author, CaseChange, CaseStatus, Clock, ClockState, Comment, Metric, Sla};
use kinship_service::ServiceConfig;
use std::collections::BTreeMap;

const CONFIG: &str = r#"
[calendars.sydney]
time_zone = "Australia/Sydney"
hours = { mon = "09:00-17:00", tue = "09:00-17:00", wed = "09:00-17:00", thu = "09:00-17:00", fri = "09:00-17:00" }
holidays = ["2026-12-25", "2026-12-28"]

[[sla]]
name = "phone"
when = { channel = "phone" }
targets.urgent = { first_reply = "15 minutes" }
targets.normal = { first_reply = "30 minutes" }

[[sla]]
name = "standard"
calendar = "sydney"
warn_before = "1 hour"
targets.normal = { first_reply = "4 hours", next_reply = "8 hours", requester_wait = "16 hours", agent_work = "12 hours", total_resolution = "3 days", periodic_update = "1 day", pausable_update = "1 day" }
targets.urgent = { first_reply = "1 hour", next_reply = "2 hours", requester_wait = "8 hours" }
"#;

fn sla(text: &str) -> Sla {
    let config: ServiceConfig = toml::from_str(text).unwrap();
    Sla::compile(&config).unwrap()
}

/// Sydney local time → Unix seconds.
fn at(text: &str) -> i64 {
    let local = chrono::NaiveDateTime::parse_from_str(&format!("2026-{text}"), "%Y-%m-%d %H:%M").unwrap();
    chrono_tz::Australia::Sydney.from_local_datetime(&local).unwrap().timestamp()
}

fn created(when: &str, channel: &str, priority: &str) -> CaseChange {
    CaseChange {
        at: at(when),
        status: Some(CaseStatus::New),
        priority: Some(priority.into()),
        fields: BTreeMap::from([("channel".to_string(), channel.to_string())]),
        comment: Some(Comment { public: true, by: Author::EndUser }),
    }
}

fn comment(when: &str, by: Author, public: bool) -> CaseChange {
    CaseChange { at: at(when), comment: Some(Comment { public, by }), ..Default::default() }
}

fn status(when: &str, s: CaseStatus) -> CaseChange {
    CaseChange { at: at(when), status: Some(s), ..Default::default() }
}

fn one(clocks: &[Clock], metric: Metric) -> &Clock {
    let found: Vec<&Clock> = clocks.iter().filter(|c| c.metric == metric).collect();
    assert_eq!(found.len(), 1, "{metric:?} in {clocks:#?}");
    found[0]
}

fn minutes(c: &Clock) -> i64 {
    c.counted_seconds / 60
}

#[test]
fn first_reply_across_a_weekend_and_two_holidays() {
    // Thu 24 Dec 15:00 → Tue 29 Dec 11:30: 2 h on Thursday; Friday the 25th and Monday the
    // 28th are holidays; 2.5 h on Tuesday. 270 business minutes against 240: breached at
    // Tuesday 11:00.
    let case = [created("12-24 15:00", "email", "normal"), comment("12-29 11:30", Author::Agent, true)];
    let clocks = sla(CONFIG).clocks(&case, at("12-30 09:00"));
    let c = one(&clocks, Metric::FirstReply);
    assert_eq!((c.policy.as_str(), minutes(c), c.target_minutes), ("standard", 270, 240));
    assert_eq!(c.state, ClockState::Breached);
    assert_eq!(c.breached_at, Some(at("12-29 11:00")));
    assert_eq!(c.end, Some(at("12-29 11:30")));
}

#[test]
fn next_reply_runs_from_the_oldest_unanswered_comment() {
    let case = [
        created("12-07 09:00", "email", "normal"),
        comment("12-07 10:00", Author::Agent, true),
        comment("12-07 11:00", Author::EndUser, true),
        comment("12-07 13:00", Author::EndUser, true),
        // An internal note answers nobody.
        comment("12-07 14:00", Author::Agent, false),
        comment("12-07 14:30", Author::Agent, true),
        comment("12-07 16:00", Author::EndUser, true),
    ];
    let now = at("12-08 12:00");
    let clocks = sla(CONFIG).clocks(&case, now);
    assert_eq!(minutes(one(&clocks, Metric::FirstReply)), 60);
    let next: Vec<&Clock> = clocks.iter().filter(|c| c.metric == Metric::NextReply).collect();
    assert_eq!(next.len(), 2);
    assert_eq!((next[0].start, next[0].end, minutes(next[0])), (at("12-07 11:00"), Some(at("12-07 14:30")), 210));
    assert_eq!(next[0].state, ClockState::Achieved);
    // Running: 1 h Monday + 3 h Tuesday morning counted; 4 h left, due Tuesday 16:00.
    assert_eq!((minutes(next[1]), next[1].due, next[1].state), (240, Some(at("12-08 16:00")), ClockState::Active));
    // An hour before that, the same clock warns.
    let later = sla(CONFIG).clocks(&case, at("12-08 15:10"));
    let running = later.iter().find(|c| c.metric == Metric::NextReply && c.end.is_none()).unwrap();
    assert_eq!(running.state, ClockState::Warning);
}

#[test]
fn pending_and_on_hold_pause_the_clocks_zendesk_pauses() {
    let case = [
        created("12-07 09:00", "email", "normal"),
        CaseChange { status: Some(CaseStatus::Pending), ..comment("12-07 10:00", Author::Agent, true) },
        // The requester answers: Zendesk reopens the case.
        comment("12-08 09:00", Author::EndUser, true),
        status("12-08 10:00", CaseStatus::OnHold),
        status("12-08 14:00", CaseStatus::Open),
        status("12-08 15:00", CaseStatus::Solved),
    ];
    let clocks = sla(CONFIG).clocks(&case, at("12-10 09:00"));
    // New 1 h + open 1 h + on hold 4 h + open 1 h; pending does not count.
    assert_eq!(minutes(one(&clocks, Metric::RequesterWait)), 420);
    // New and open only.
    assert_eq!(minutes(one(&clocks, Metric::AgentWork)), 180);
    // Every status until solved: Monday 8 h, Tuesday 6 h.
    assert_eq!(minutes(one(&clocks, Metric::TotalResolution)), 840);
    // Updates run from the agent's reply to solving; the pausable one skips pending.
    assert_eq!(minutes(one(&clocks, Metric::PeriodicUpdate)), 780);
    assert_eq!(minutes(one(&clocks, Metric::PausableUpdate)), 360);
    // The requester's comment waited for no reply: solving fulfilled it after 6 h.
    assert_eq!(minutes(one(&clocks, Metric::NextReply)), 360);
    assert!(clocks.iter().all(|c| c.state == ClockState::Achieved), "{clocks:#?}");

    // While pending, the resolution clocks that pause have no due time.
    let paused = sla(CONFIG).clocks(&case[..2], at("12-07 16:00"));
    let wait = one(&paused, Metric::RequesterWait);
    assert_eq!((wait.state, wait.due, minutes(wait)), (ClockState::Paused, None, 60));
    let total = one(&paused, Metric::TotalResolution);
    assert_eq!((total.state, minutes(total)), (ClockState::Active, 420));
    // "3 days" is 72 business hours, as Zendesk counts a target: 65 h left from Monday 16:00
    // is Monday's last hour and eight more working days.
    assert_eq!(total.due, Some(at("12-17 17:00")));
}

#[test]
fn the_policy_follows_the_case_and_a_changed_policy_recomputes_history() {
    // Opened by phone, urgent: calendar minutes, 15 of them. Answered after 20.
    let case = [created("12-05 10:00", "phone", "urgent"), comment("12-05 10:20", Author::Agent, true)];
    let c = sla(CONFIG).clocks(&case, at("12-06 00:00"));
    let first = one(&c, Metric::FirstReply);
    assert_eq!((first.policy.as_str(), first.state, minutes(first)), ("phone", ClockState::Breached, 20));
    assert_eq!(first.breached_at, Some(at("12-05 10:15")));

    // The same history under a policy edited to 30 minutes: achieved, nothing stored to fix.
    let edited = CONFIG.replace("first_reply = \"15 minutes\"", "first_reply = \"30 minutes\"");
    assert_eq!(one(&sla(&edited).clocks(&case, at("12-06 00:00")), Metric::FirstReply).state, ClockState::Achieved);

    // Moved to email before the reply: the standard policy applies, in business hours, and a
    // Saturday morning counts nothing until Monday 09:00.
    let moved = [
        case[0].clone(),
        CaseChange { at: at("12-05 10:05"), fields: BTreeMap::from([("channel".to_string(), "email".to_string())]), ..Default::default() },
        comment("12-07 09:30", Author::Agent, true),
    ];
    let c = sla(CONFIG).clocks(&moved, at("12-08 00:00"));
    let first = one(&c, Metric::FirstReply);
    assert_eq!((first.policy.as_str(), minutes(first), first.target_minutes, first.state), ("standard", 30, 60, ClockState::Achieved));
}

#[test]
fn raising_the_priority_applies_the_new_target_from_the_start() {
    let case = [
        created("12-07 09:00", "email", "normal"),
        CaseChange { at: at("12-07 10:00"), priority: Some("urgent".into()), ..Default::default() },
        comment("12-07 11:30", Author::Agent, true),
    ];
    let first = one(&sla(CONFIG).clocks(&case, at("12-08 00:00")), Metric::FirstReply).clone();
    assert_eq!((first.priority.as_str(), first.target_minutes, first.state), ("urgent", 60, ClockState::Breached));
    assert_eq!(first.breached_at, Some(at("12-07 10:00")));
}

#[test]
fn a_case_an_agent_opened_waits_for_the_requester_first() {
    let mut opened = created("12-07 09:00", "email", "normal");
    opened.comment = Some(Comment { public: true, by: Author::Agent });
    let case = [opened, comment("12-07 13:00", Author::EndUser, true), comment("12-07 14:00", Author::Agent, true)];
    let first = one(&sla(CONFIG).clocks(&case, at("12-08 00:00")), Metric::FirstReply).clone();
    assert_eq!((first.start, minutes(&first)), (at("12-07 13:00"), 60));
}

#[test]
fn queue_order_and_attainment_per_team() {
    let s = sla(CONFIG);
    let now = at("12-07 12:00");
    let cases = [
        vec![created("12-07 09:00", "email", "urgent")],
        vec![created("12-07 11:00", "email", "normal")],
        vec![created("12-04 16:00", "email", "normal")],
    ];
    let clocks: Vec<Vec<Clock>> = cases.iter().map(|c| s.clocks(c, now)).collect();
    let due: Vec<Option<i64>> = clocks.iter().map(|c| kinship_service::sla::next_due(c)).collect();
    // Urgent: an hour of business time from 09:00, already past. Friday's case: 1 h Friday,
    // 3 h Monday: due at 12:00 exactly. Monday 11:00's: 15:00.
    assert_eq!(due, vec![Some(at("12-07 10:00")), Some(at("12-07 15:00")), Some(at("12-07 12:00"))]);
    let done = [created("12-07 09:00", "email", "normal"), comment("12-07 09:10", Author::Agent, true)];
    let late = [created("12-04 09:00", "email", "normal"), comment("12-07 09:10", Author::Agent, true)];
    let (a, b) = (s.clocks(&done, now), s.clocks(&late, now));
    let report = kinship_service::sla::attainment([("support", a.as_slice()), ("support", b.as_slice())]);
    assert_eq!(report[&("support".to_string(), Metric::FirstReply)], (1, 2));
}

proptest::proptest! {
    /// Any log, in any order of statuses and comments, gives clocks without panicking, each
    /// counting no more time than passed.
    #[test]
    fn any_log_gives_sane_clocks(steps in proptest::collection::vec((0i64..200_000, 0u8..10, proptest::option::of("\\PC{0,8}")), 1..30)) {
        let s = sla(CONFIG);
        let mut t = at("12-01 08:00");
        let mut changes = Vec::new();
        for (gap, kind, text) in steps {
            t += gap;
            let mut c = CaseChange { at: t, ..Default::default() };
            match kind {
                0..=5 => c.status = Some(CaseStatus::ALL[kind as usize]),
                6 => c.comment = Some(Comment { public: true, by: Author::EndUser }),
                7 => c.comment = Some(Comment { public: true, by: Author::Agent }),
                8 => c.priority = text.clone(),
                _ => { c.fields.insert("channel".into(), text.unwrap_or_default()); }
            }
            changes.push(c);
        }
        let now = t + 3600;
        for c in s.clocks(&changes, now) {
            proptest::prop_assert!(c.counted_seconds <= c.end.unwrap_or(now) - c.start);
        }
    }
}

#[test]
fn a_solve_ends_the_first_reply_and_a_reopening_comment_waits_for_the_next() {
    // A reply and a solve in one update, then the requester writes again: next reply runs.
    let answered = [
        created("12-07 09:00", "email", "normal"),
        comment("12-07 10:00", Author::Agent, true),
        status("12-07 10:00", CaseStatus::Solved),
        comment("12-07 11:00", Author::EndUser, true),
    ];
    let clocks = sla(CONFIG).clocks(&answered, at("12-07 12:00"));
    assert_eq!(one(&clocks, Metric::FirstReply).end, Some(at("12-07 10:00")));
    let next = one(&clocks, Metric::NextReply);
    assert_eq!((next.start, next.end, minutes(next)), (at("12-07 11:00"), None, 60));
    // Solved with no reply at all, then reopened: the same.
    let unanswered = [
        created("12-07 09:00", "email", "normal"),
        status("12-07 09:30", CaseStatus::Solved),
        comment("12-07 10:00", Author::EndUser, true),
    ];
    let clocks = sla(CONFIG).clocks(&unanswered, at("12-07 12:00"));
    assert_eq!((one(&clocks, Metric::FirstReply).state, minutes(one(&clocks, Metric::FirstReply))), (ClockState::Achieved, 30));
    assert_eq!(one(&clocks, Metric::NextReply).start, at("12-07 10:00"));
}

#[test]
fn closing_after_solving_does_not_move_when_it_was_solved() {
    let case =
        [created("12-07 09:00", "email", "normal"), status("12-07 10:00", CaseStatus::Solved), status("12-08 12:00", CaseStatus::Closed)];
    let clocks = sla(CONFIG).clocks(&case, at("12-09 09:00"));
    let wait = one(&clocks, Metric::RequesterWait);
    assert_eq!((wait.end, minutes(wait)), (Some(at("12-07 10:00")), 60));
}

mod deals {
    use kinship_service::deals::{deals, default_stages, forecast, stage_funnel, win_rate, Deal, DealMapping, DealRow, Stage, StageType};
    use proptest::prelude::*;
    use serde_json::{json, Map, Value};
    use std::collections::BTreeMap;

    fn salesforce() -> Vec<Stage> {
        [
            ("Prospecting", 0.1, StageType::Open),
            ("Proposal", 0.5, StageType::Open),
            ("Closed Won", 1.0, StageType::Won),
            ("Closed Lost", 0.0, StageType::Lost),
        ]
        .into_iter()
        .map(|(name, probability, kind)| Stage { name: name.into(), probability, kind })
        .collect()
    }

    fn mapping() -> DealMapping {
        serde_json::from_value(json!({"id": "deal_id", "name": "name", "stage": "stage", "amount": "amount", "currency": "currency", "close": "close_date", "owner": "owner", "updated": "changed_at", "probability": "prob"})).unwrap()
    }

    fn read(rows: &[(&str, Value)], stages: &[Stage]) -> (Vec<Deal>, kinship_service::deals::DealProblems) {
        let m = mapping();
        let maps: Vec<(&str, Map<String, Value>)> = rows.iter().map(|(owner, r)| (*owner, r.as_object().unwrap().clone())).collect();
        deals(maps.iter().map(|(owner, f)| DealRow { mapping: &m, owner, source: "crm", key: "k", fields: f, time: None }), stages)
    }

    #[test]
    fn a_crms_versions_make_a_deal_with_its_stage_history() {
        let rows = [
            (
                "p1",
                json!({"deal_id": "OPP-1", "name": "Gifts", "stage": "Prospecting", "amount": "12,500.00", "currency": "aud", "close_date": "2025-03-31", "owner": "Mia", "changed_at": "2025-01-06T09:00:00.000+0000"}),
            ),
            // The same stage again (a field edit), then a partial version without the name.
            ("p1", json!({"deal_id": "OPP-1", "stage": "prospecting", "amount": "13000", "changed_at": "2025-01-08T09:00:00Z"})),
            ("p2", json!({"deal_id": "OPP-1", "stage": "PROPOSAL", "prob": "60%", "changed_at": "2025-01-20 09:00:00+10:00"})),
            // A full row with the owner cleared and the amount garbled: the owner is gone, the
            // amount keeps its last readable value.
            ("p2", json!({"deal_id": "OPP-1", "stage": "Proposal", "amount": "n/a", "owner": "", "changed_at": "2025-01-21T00:00:00Z"})),
            ("p3", json!({"deal_id": "OPP-2", "stage": "Closing", "close_date": "2025-03-01", "changed_at": "2025-01-20T00:00:00Z"})),
            // No time anywhere: counted, not placed.
            ("p5", json!({"deal_id": "OPP-9", "stage": "Proposal"})),
            ("p3", json!({"deal_id": "OPP-3", "stage": "Proposal", "changed_at": "2025-01-20T00:00:00Z"})),
            // No id: not a deal row.
            ("p4", json!({"stage": "Proposal", "changed_at": "2025-01-20T00:00:00Z"})),
        ];
        let (found, problems) = read(&rows, &salesforce());
        assert_eq!(found.len(), 1, "{found:?}");
        let d = &found[0];
        assert_eq!((d.id.as_str(), d.stage.as_str(), d.amount, d.currency.as_str()), ("OPP-1", "Proposal", 13_000.0, "AUD"));
        assert_eq!(
            (d.name.as_deref(), d.owner.as_deref(), d.close.as_str(), d.probability),
            (Some("Gifts"), None, "2025-03-31", Some(0.6))
        );
        assert_eq!(problems.no_time, 1);
        let stages: Vec<&str> = d.history.iter().map(|(_, s)| s.as_str()).collect();
        assert_eq!(stages, ["Prospecting", "Proposal"], "a repeated stage is one entry");
        // 09:00 AEST on 20 January is 23:00 UTC the day before.
        assert_eq!(d.history[1].0, chrono::DateTime::parse_from_rfc3339("2025-01-19T23:00:00Z").unwrap().timestamp());
        assert_eq!(d.contacts, ["p2", "p1"], "newest first");
        assert_eq!(problems.unknown_stages, [("crm".to_string(), "OPP-2".to_string(), "Closing".to_string())]);
        assert_eq!(problems.no_close, [("crm".to_string(), "OPP-3".to_string())]);
    }

    /// A small deterministic generator, so the hand computation below sees varied deals.
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self, n: u64) -> u64 {
            self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            (self.0 >> 33) % n
        }
    }

    #[test]
    fn the_weighted_forecast_by_close_month_equals_a_hand_computation_on_generated_deals() {
        let stages = default_stages();
        let mut g = Lcg(7);
        let generated: Vec<Deal> = (0..2_000)
            .map(|i| {
                let stage = stages[g.next(stages.len() as u64) as usize].name.clone();
                let month = 1 + g.next(12);
                let own = (g.next(4) == 0).then(|| g.next(101) as f64 / 100.0);
                let currency = ["AUD", "USD"][g.next(2) as usize];
                serde_json::from_value(json!({
                    "id": format!("D{i}"), "stage": stage, "amount": (g.next(100_000) as f64) / 4.0,
                    "currency": currency, "close": format!("2026-{month:02}-{:02}", 1 + g.next(28)),
                    "probability": own,
                }))
                .unwrap()
            })
            .collect();
        // By hand: per (month, currency), open deals add amount × their own probability or
        // their stage's; won deals add the whole amount; lost ones nothing (a month of only
        // lost deals is not listed).
        let mut expected: BTreeMap<(String, String), (f64, f64, f64, u64)> = BTreeMap::new();
        let (mut won, mut lost) = (0, 0);
        for d in &generated {
            if d.stage == "lost" {
                lost += 1;
                continue;
            }
            let e = expected.entry((d.close[..7].to_string(), d.currency.clone())).or_default();
            match d.stage.as_str() {
                "won" => {
                    e.0 += d.amount;
                    e.2 += d.amount;
                    won += 1;
                }
                stage => {
                    let p = d.probability.unwrap_or(match stage {
                        "qualification" => 0.1,
                        "discovery" => 0.2,
                        "proposal" => 0.5,
                        _ => 0.8,
                    });
                    e.0 += d.amount * p;
                    e.1 += d.amount;
                    e.3 += 1;
                }
            }
        }
        let computed = forecast(&generated, &stages).unwrap();
        assert_eq!(computed.len(), expected.len());
        for (key, (weighted, pipeline, won_amount, open)) in &expected {
            let m = &computed[key];
            assert!((m.weighted - weighted).abs() < 1e-6, "{key:?}: {} against {weighted}", m.weighted);
            assert!((m.pipeline - pipeline).abs() < 1e-6 && (m.won - won_amount).abs() < 1e-6 && m.open_deals == *open, "{key:?}");
        }
        assert_eq!(win_rate(&generated, &stages).unwrap(), Some(won as f64 / (won + lost) as f64));
    }

    fn moved(id: &str, history: &[(i64, &str)]) -> Deal {
        serde_json::from_value(json!({
            "id": id, "stage": history.last().unwrap().1, "amount": 1.0, "currency": "AUD", "close": "2026-01-01",
            "history": history.iter().map(|(at, s)| json!([at, s])).collect::<Vec<_>>(),
        }))
        .unwrap()
    }

    #[test]
    fn the_stage_funnel_counts_a_skipped_stage_as_passed_and_a_step_back_as_nothing() {
        let stages = default_stages();
        let d = 86_400;
        let all = [
            moved("a", &[(0, "qualification"), (d, "discovery"), (2 * d, "proposal"), (3 * d, "won")]),
            // Skips discovery: it has passed it.
            moved("b", &[(0, "qualification"), (d, "proposal"), (2 * d, "lost")]),
            // Back from proposal to discovery: proposal stays reached.
            moved("c", &[(0, "qualification"), (d, "discovery"), (2 * d, "proposal"), (3 * d, "discovery")]),
            moved("d", &[(0, "qualification"), (d, "lost")]),
        ];
        let result = stage_funnel(&all, &stages);
        let counts: Vec<u64> = result.steps.iter().map(|s| s.count).collect();
        // qualification, discovery, proposal, negotiation, won
        assert_eq!(counts, [4, 3, 3, 1, 1]);
        assert_eq!(result.steps[4].conversion, 0.25);
    }

    proptest! {
        /// No field value read from a CRM export panics the reader, whatever its text.
        #[test]
        fn no_field_value_panics(stage in "\\PC{0,12}", amount in "\\PC{0,12}", close in "\\PC{0,25}", prob in "\\PC{0,6}", at in "\\PC{0,30}") {
            let rows = [("p", json!({"deal_id": "X", "stage": stage, "amount": amount, "close_date": close, "prob": prob, "changed_at": at}))];
            let (found, problems) = read(&rows, &salesforce());
            prop_assert!(found.len() + problems.unknown_stages.len() + problems.no_close.len() <= 1);
            for d in &found {
                prop_assert!(d.amount.is_finite());
                prop_assert!(d.probability.is_none_or(|p| (0.0..=1.0).contains(&p)));
            }
        }
    }
}
