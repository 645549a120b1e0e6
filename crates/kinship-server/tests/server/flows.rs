//! A flow's dry run over HTTP: the same answer whether the server finds the triggers in the
//! audience it holds (something defined) or in the log (nothing defined).

use super::{ok, Server, RESOLVE_WAIT};
use crate::http::{self, post_json, request, wait_for_profile};
use serde_json::json;

const FLOW: &str = r#"
name = "damaged_to_task"
[trigger]
event = "Ticket Opened"
when = 'subject contains "damaged" and priority >= 2'
[[steps]]
if = 'count("Order Completed") >= 1'
then = [{ task = { title = "Buyer: {trigger.subject}", team = "support" } }]
else = [{ task = { title = "Not a buyer: {trigger.subject}", team = "support" } }]
"#;

fn dry_run(s: &Server, days: u32, samples: usize) -> serde_json::Value {
    let auth = http::bearer(&s.admin);
    let path = format!("/api/v1/flows/dry-run?days={days}&samples={samples}");
    ok(&request(s.addr, "POST", &path, &[("Authorization", &auth), ("Content-Type", "text/plain")], FLOW.as_bytes()).unwrap())
}

#[test]
fn a_dry_run_finds_the_same_triggers_in_the_held_audience_as_in_the_log() {
    let s = Server::with_config("[teams.support]\nmembers = [{ name = \"ana\" }, { name = \"ben\" }]\n");
    let web = s.basic("web");
    // 60 people, each with two tickets a day apart; (i % 3 == 0) tickets say damaged, of
    // which those with priority 2 or more start a run (i % 2 == 0); even people also bought.
    let mut batch = Vec::new();
    let (mut tickets, mut runs) = (0, 0);
    for i in 0..60 {
        let user = format!("t-{i}");
        for day in 1..=2 {
            let subject = if i % 3 == 0 { format!("Kettle {i} arrived damaged") } else { format!("Question {i}") };
            let priority = if i % 2 == 0 { 3 } else { 1 };
            batch.push(json!({"type": "track", "userId": user, "event": "Ticket Opened", "messageId": format!("tk-{i}-{day}"),
                              "properties": {"subject": subject, "priority": priority}, "timestamp": format!("2026-0{day}-10T09:00:00Z")}));
            tickets += 1;
            runs += usize::from(i % 3 == 0 && i % 2 == 0);
        }
        if i % 4 == 0 {
            batch.push(json!({"type": "track", "userId": user, "event": "Order Completed", "messageId": format!("oc-{i}"),
                              "timestamp": "2025-12-01T00:00:00Z"}));
        }
    }
    ok(&post_json(s.addr, "/v1/batch", Some(&web), &json!({ "batch": batch })));
    for i in [0, 59] {
        wait_for_profile(s.addr, &s.admin, &format!("user_id:t-{i}"), RESOLVE_WAIT, |v| http::event_names(v).len() >= 2);
    }
    // Nothing defined: the audience is not held, and the log is read.
    let by_log = dry_run(&s, 3650, 5);
    assert_eq!((by_log["triggers"].as_u64(), by_log["runs"].as_u64()), (Some(tickets), Some(runs as u64)), "{by_log:#}");
    assert_eq!((by_log["profiles"].as_u64(), by_log["tasks"].as_u64()), (Some(10), Some(runs as u64)), "{by_log:#}");
    assert_eq!(by_log["samples"].as_array().unwrap().len(), 5);
    // A segment makes the server hold the audience; the answer is the same, samples too.
    let segment = json!({"name": "ticket_holders", "expression": "count(\"Ticket Opened\") >= 1"});
    let created = post_json(s.addr, "/api/v1/segments", Some(&http::bearer(&s.admin)), &segment);
    assert_eq!(created.status, 201, "{}", created.text());
    assert_eq!(dry_run(&s, 3650, 5), by_log);
    // A window that holds no ticket.
    let none = dry_run(&s, 1, 5);
    assert_eq!((none["triggers"].as_u64(), none["runs"].as_u64()), (Some(0), Some(0)), "{none:#}");
}
