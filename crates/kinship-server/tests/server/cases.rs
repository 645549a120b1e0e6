//! The case queue over HTTP: tickets arriving as Segment `track` calls from a help desk's
//! webhook, mapped by `[sources.web.case]`, queued by their SLA due time, with attainment per
//! team, read by the roles that read tasks; breached clocks become events for flows.

use super::governance::{call, token};
use super::{ok, Server, RESOLVE_WAIT};
use crate::http::{self, post_json, wait_for_profile};
use serde_json::{json, Value};

const CASES: &str = r#"
[sources.web.case]
number = "properties.ticket_id"
status = "properties.status"
priority = "properties.priority"
subject = "properties.subject"
team = "properties.team"

[flows]
source = "app"

[service]
events_every = "1 second"

[[service.sla]]
name = "everyone"
targets.urgent = { first_reply = "30 minutes" }
targets.normal = { first_reply = "1 hour", requester_wait = "1 day" }
"#;

#[test]
fn tickets_from_a_help_desk_queue_by_sla_due_and_report_attainment_per_team() {
    let s = Server::with_config(CASES);
    let auth = s.basic("web");
    let track = |id: &str, at: &str, properties: serde_json::Value| {
        ok(&post_json(
            s.addr,
            "/v1/track",
            Some(&auth),
            &json!({"userId": "u-cas", "event": "Ticket Updated", "properties": properties, "messageId": id, "timestamp": at}),
        ));
    };
    ok(&post_json(
        s.addr,
        "/v1/identify",
        Some(&auth),
        &json!({"userId": "u-cas", "traits": {"email": "cas@example.org"}, "messageId": "cas-id", "timestamp": "2024-05-01T09:00:00Z"}),
    ));
    // T1: urgent, solved 20 minutes after it was opened. T2: normal, still open; billing's.
    track(
        "t1-a",
        "2024-05-01T10:00:00Z",
        json!({"ticket_id": "T1", "status": "new", "priority": "urgent", "team": "support", "subject": "Zip broke"}),
    );
    track("t1-b", "2024-05-01T10:20:00Z", json!({"ticket_id": "T1", "status": "solved", "priority": "urgent", "team": "support"}));
    track(
        "t2-a",
        "2024-05-01T11:00:00Z",
        json!({"ticket_id": "T2", "status": "open", "priority": "normal", "team": "billing", "subject": "Charged twice"}),
    );
    // The data's present: a day later.
    track("later", "2024-05-02T11:30:00Z", json!({"ticket_id": "T2", "status": "open", "priority": "normal", "team": "billing"}));
    wait_for_profile(s.addr, &s.admin, "user_id:u-cas", RESOLVE_WAIT, |v| {
        http::event_names(v).len() == 4 && v["traits"]["email"].is_string()
    });

    let queue = call(s.addr, "GET", "/api/v1/cases", &s.admin, None).json();
    assert_eq!(queue["total"], 1, "{queue}");
    let t2 = &queue["cases"][0];
    assert_eq!((t2["number"].as_str(), t2["team"].as_str(), t2["subject"].as_str()), (Some("T2"), Some("billing"), Some("Charged twice")));
    // An hour to first reply from 11:00, calendar hours; a day later it is long breached.
    assert_eq!(t2["next_due"], "2024-05-01T12:00:00Z");
    assert_eq!(t2["state"], "breached");
    assert_eq!(queue["counts"]["breached"], 1);
    let all = call(s.addr, "GET", "/api/v1/cases?status=all", &s.admin, None).json();
    assert_eq!(all["total"], 2);

    let report = call(s.addr, "GET", "/api/v1/cases/attainment?days=30", &s.admin, None).json();
    let rows = report["teams"].as_array().unwrap();
    let support: Vec<_> = rows.iter().filter(|r| r["team"] == "support").collect();
    assert_eq!(support.len(), 1, "{report}");
    assert_eq!(
        (support[0]["metric"].as_str(), support[0]["achieved"].as_u64(), support[0]["ended"].as_u64()),
        (Some("first_reply"), Some(1), Some(1))
    );
    assert!(rows.iter().all(|r| r["team"] != "billing"), "billing's clock still runs: {report}");

    // Roles that read tasks read the queue; others are refused; bad filters name the fix.
    for (role, status) in [("support", 200), ("sales", 200), ("marketer", 403), ("analyst", 403)] {
        assert_eq!(call(s.addr, "GET", "/api/v1/cases", &token(&s, role), None).status, status, "{role}");
    }
    let bad = call(s.addr, "GET", "/api/v1/cases?state=late", &s.admin, None);
    assert_eq!(bad.status, 400);
    assert!(bad.text().contains("breached, warning, active or paused"), "{}", bad.text());

    // Each breached clock of the open case became an event a flow can start on, once,
    // however many passes look.
    let breached = |v: &serde_json::Value| http::event_names(v).iter().filter(|e| *e == "Case SLA Breached").count();
    let view = wait_for_profile(s.addr, &s.admin, "user_id:u-cas", RESOLVE_WAIT, |v| breached(v) == 2);
    assert_eq!(breached(&view), 2, "first reply and requester wait of T2: {view}");
    let event = view["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event"] == "Case SLA Breached" && e["properties"]["metric"] == "first_reply")
        .unwrap();
    assert_eq!((event["properties"]["case"].as_str(), event["timestamp"].as_str()), (Some("T2"), Some("2024-05-01T12:00:00.000Z")));
    std::thread::sleep(std::time::Duration::from_millis(2500));
    let again = wait_for_profile(s.addr, &s.admin, "user_id:u-cas", RESOLVE_WAIT, |_| true);
    assert_eq!(breached(&again), 2, "no event twice");

    // The queue the server keeps forgets an erased requester at once.
    let erased = call(s.addr, "POST", "/api/v1/privacy/erasure", &s.admin, Some(&json!({"email": "cas@example.org"})));
    assert_eq!(erased.status, 200, "{}", erased.text());
    assert_eq!(call(s.addr, "GET", "/api/v1/cases?status=all", &s.admin, None).json()["total"], 0);
}

/// Native cases: opened, answered (publicly and with an internal note) and updated over the
/// API, written to `[service] source` and read back like a help desk's; connected desks'
/// cases are answered there; roles that may not work cases, or see notes, do not.
#[test]
fn native_cases_are_opened_answered_and_updated_here() {
    let s = Server::with_config(
        r#"
[service]
source = "app"

[[service.sla]]
name = "native"
targets.high = { first_reply = "1 hour", requester_wait = "1 day" }
"#,
    );
    let auth = s.basic("web");
    ok(&post_json(
        s.addr,
        "/v1/identify",
        Some(&auth),
        &json!({"userId": "u-nat", "traits": {"email": "nat@example.org", "name": "Nat"}, "messageId": "nat-id"}),
    ));
    let view = wait_for_profile(s.addr, &s.admin, "user_id:u-nat", RESOLVE_WAIT, |v| v["traits"]["name"] == "Nat");
    let profile = view["id"].as_str().unwrap().to_string();

    let opened =
        call(s.addr, "POST", "/api/v1/cases", &s.admin, Some(&json!({"profile": profile, "subject": "Zip broke", "priority": "high"})));
    assert_eq!(opened.status, 201, "{}", opened.text());
    let number = opened.json()["number"].as_str().unwrap().to_string();
    let path = format!("/api/v1/cases/app/{number}");
    let case = call(s.addr, "GET", &path, &s.admin, None).json();
    assert_eq!(
        (case["status"].as_str(), case["subject"].as_str(), case["requester"].as_str()),
        (Some("new"), Some("Zip broke"), Some(profile.as_str()))
    );
    assert_eq!(case["native"], true);

    let reply = |token: &str, body: &str, public: bool| {
        call(s.addr, "POST", &format!("{path}/replies"), token, Some(&json!({"body": body, "public": public})))
    };
    assert_eq!(reply(&s.admin, "A new zip is on its way", true).status, 201);
    assert_eq!(reply(&s.admin, "Second zip this year", false).status, 201);
    assert_eq!(call(s.addr, "POST", &format!("{path}/update"), &s.admin, Some(&json!({"status": "pending"}))).status, 201);

    let case = call(s.addr, "GET", &path, &s.admin, None).json();
    assert_eq!(case["status"], "pending");
    let conversation = case["conversation"].as_array().unwrap();
    assert_eq!(conversation.len(), 2, "{case}");
    let first_reply = case["sla"].as_array().unwrap().iter().find(|k| k["metric"] == "first_reply").unwrap_or_else(|| panic!("{case}"));
    assert_eq!(first_reply["state"], "achieved", "the public reply answered it: {case}");

    // Sales reads cases but neither works them nor reads internal notes.
    let sales = token(&s, "sales");
    let seen = call(s.addr, "GET", &path, &sales, None).json();
    let bodies: Vec<&Value> = seen["conversation"].as_array().unwrap().iter().map(|r| &r["body"]).collect();
    assert_eq!(bodies, [&json!("A new zip is on its way"), &Value::Null], "{seen}");
    assert_eq!(reply(&sales, "hello", true).status, 403);
    let timeline = call(s.addr, "GET", &format!("/api/v1/profiles/{profile}"), &sales, None).text();
    assert!(
        timeline.contains("A new zip is on its way") && !timeline.contains("Second zip this year"),
        "no note on sales' timeline: {timeline}"
    );
    // Only Kinship writes native cases: the source's write key is refused.
    let forged = post_json(
        s.addr,
        "/v1/track",
        Some(&s.basic("app")),
        &json!({"userId": "u-nat", "event": "Ticket Comment", "properties": {"comment_on": number, "author_role": "agent", "body": "forged"}}),
    );
    assert_eq!(forged.status, 403, "{}", forged.text());
    // A connected help desk's case is answered in that desk.
    assert_eq!(call(s.addr, "POST", "/api/v1/cases/web/T9/replies", &s.admin, Some(&json!({"body": "x", "public": true}))).status, 422);
    let bad = call(s.addr, "POST", "/api/v1/cases", &s.admin, Some(&json!({"profile": profile, "subject": "x", "priority": "asap"})));
    assert_eq!(bad.status, 400);
    let audit = call(s.addr, "GET", &format!("/api/v1/audit?profile={profile}"), &s.admin, None).text();
    for action in ["case.open", "case.reply", "case.note", "case.update", "case.read"] {
        assert!(audit.contains(action), "{action} audited");
    }

    // Without `[service] source`, native cases are off, and the error says how to turn them on.
    let plain = Server::start();
    let off = call(plain.addr, "POST", "/api/v1/cases", &plain.admin, Some(&json!({"profile": "p_x", "subject": "x"})));
    assert_eq!(off.status, 409);
    assert!(off.text().contains("[service] source"), "{}", off.text());
}
