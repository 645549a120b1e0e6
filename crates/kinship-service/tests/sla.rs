//! SLA clocks on worked cases whose answers were computed by hand from Zendesk's published
//! metric definitions, to the minute: business hours in Sydney (Mon–Fri 09:00–17:00, AEDT),
//! with 25 and 28 December 2026 as holidays.

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
