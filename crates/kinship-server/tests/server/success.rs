//! NPS, earned growth and health over HTTP, from events sent through the collection API:
//! numbers by construction for a role that sees everything, the people behind them only for
//! roles that see identities, and no measure over what a role may not read.

use super::governance::token;
use super::{ok, Server, RESOLVE_WAIT};
use crate::http::{self, get, request, wait_for_profile};
use serde_json::json;

const EARNED: &str = "\n[measures]\nearned = 'any(\"NPS Response\", why contains \"friend\")'\n";

const HEALTH: &str = r#"
name = "buyers"
applies = 'any("Invoice Issued")'
[[measures]]
name = "invoices"
value = 'count("Invoice Issued")'
points = [[1, 30], [2, 100]]
"#;

#[test]
fn nps_growth_and_health_over_http_as_each_role_may_see_them() {
    let s = Server::with_config(EARNED);
    let web = s.basic("web");
    // 30 people: u0–u19 pay 100 in February; u0–u9 pay 80 again in March; u20–u29 are new
    // in March, paying 50, and u20–u24 came because a friend told them. Everyone answers the
    // survey in March: u0–u14 promoters, u15–u23 passives, u24–u29 detractors.
    let mut batch = Vec::new();
    for i in 0..30 {
        let user = format!("g-{i}");
        batch.push(
            json!({"type": "identify", "userId": user, "traits": {"email": format!("g{i}@example.com")}, "messageId": format!("id-{i}")}),
        );
        let invoice = |n: &str, amount: i64, at: &str| json!({"type": "track", "userId": user, "event": "Invoice Issued", "properties": {"amount": amount}, "messageId": format!("{n}-{i}"), "timestamp": at});
        if i < 20 {
            batch.push(invoice("feb", 100, "2026-02-10T00:00:00Z"));
        }
        if i < 10 {
            batch.push(invoice("mar", 80, "2026-03-10T00:00:00Z"));
        }
        if i >= 20 {
            batch.push(invoice("new", 50, "2026-03-05T00:00:00Z"));
        }
        let score = if i < 15 {
            10
        } else if i < 24 {
            7
        } else {
            2
        };
        let why = if (20..25).contains(&i) { "a friend told me" } else { "an advert" };
        batch.push(json!({"type": "track", "userId": user, "event": "NPS Response", "properties": {"score": score, "why": why},
                          "messageId": format!("nps-{i}"), "timestamp": "2026-03-20T00:00:00Z"}));
    }
    ok(&crate::http::post_json(s.addr, "/v1/batch", Some(&web), &json!({ "batch": batch })));
    wait_for_profile(s.addr, &s.admin, "user_id:g-29", RESOLVE_WAIT, |v| http::event_names(v).len() >= 2);
    wait_for_profile(s.addr, &s.admin, "user_id:g-0", RESOLVE_WAIT, |v| http::event_names(v).len() >= 2);

    let nps = ok(&get(s.addr, "/api/v1/nps", Some(&s.admin)));
    assert_eq!(nps["answers"], 30);
    assert!((nps["overall"]["nps"].as_f64().unwrap() - 30.0).abs() < 1e-9, "(15 − 6) / 30: {nps}");
    assert_eq!(nps["detractors"].as_array().unwrap().len(), 6, "an admin sees who");
    let analyst = token(&s, "analyst");
    let seen = ok(&get(s.addr, "/api/v1/nps?by=month", Some(&analyst)));
    assert!(seen.get("detractors").is_none() && seen["groups"][0].get("profiles").is_none(), "{seen}");
    assert_eq!(get(s.addr, "/api/v1/nps", Some(&s.viewer)).status, 403);
    assert_eq!(get(s.addr, "/api/v1/nps?by=weekday", Some(&s.admin)).status, 400);

    // March against February: NRR 800 / 2000, earned new 250 of 500.
    let growth = ok(&get(s.addr, "/api/v1/growth?period=month&periods=2", Some(&s.admin)));
    let march = &growth["periods"][1];
    assert_eq!(march["label"], "2026-03");
    let g = &march["growth"];
    assert_eq!(
        (g["previous_revenue"].as_f64(), g["new_revenue"].as_f64(), g["earned_new_revenue"].as_f64()),
        (Some(2000.0), Some(500.0), Some(250.0))
    );
    assert!((g["net_revenue_retention"].as_f64().unwrap() - 0.4).abs() < 1e-12);
    assert!((g["earned_growth_rate"].as_f64().unwrap() - (0.4 + 0.125 - 1.0)).abs() < 1e-12);
    assert_eq!(march["earned"].as_array().unwrap().len(), 5);
    let seen = ok(&get(s.addr, "/api/v1/growth?period=month&periods=2", Some(&analyst)));
    assert!(seen["periods"][1].get("earned").is_none(), "{seen}");

    // Health: u0–u9 paid twice (100 points), the rest once (30).
    let auth = http::bearer(&s.admin);
    let scored = request(s.addr, "POST", "/api/v1/health/score", &[("Authorization", &auth)], HEALTH.as_bytes()).unwrap();
    let scored = ok(&scored);
    assert_eq!((scored["scored"].as_u64(), scored["green"].as_u64(), scored["red"].as_u64()), (Some(30), Some(10), Some(20)), "{scored}");
    let analyst_auth = http::bearer(&analyst);
    let seen = ok(&request(s.addr, "POST", "/api/v1/health/score", &[("Authorization", &analyst_auth)], HEALTH.as_bytes()).unwrap());
    assert!(seen["lowest"][0][0].is_null() && seen["lowest"][0][1]["score"].as_f64().is_some(), "{seen}");
    let prying = HEALTH.replace("applies = 'any(\"Invoice Issued\")'", "applies = 'traits.email ends_with \"@example.com\"'");
    let refused = request(s.addr, "POST", "/api/v1/health/score", &[("Authorization", &analyst_auth)], prying.as_bytes()).unwrap();
    assert_eq!(refused.status, 403, "{}", refused.text());
    let bad = request(s.addr, "POST", "/api/v1/health/score", &[("Authorization", &auth)], b"name = 1").unwrap();
    assert_eq!(bad.status, 400);
    // Saved: listed, read by name, read by a segment in real time, on the 360.
    assert_eq!(request(s.addr, "POST", "/api/v1/health", &[("Authorization", &analyst_auth)], HEALTH.as_bytes()).unwrap().status, 403);
    let created = request(s.addr, "POST", "/api/v1/health", &[("Authorization", &auth)], HEALTH.as_bytes()).unwrap();
    assert_eq!(created.status, 201, "{}", created.text());
    assert_eq!(ok(&get(s.addr, "/api/v1/health", Some(&analyst)))["health"][0]["name"], "buyers");
    assert_eq!(ok(&get(s.addr, "/api/v1/health/buyers", Some(&s.admin)))["red"], 20);
    assert_eq!(get(s.addr, "/api/v1/health/nobody", Some(&s.admin)).status, 404);
    let red = json!({ "name": "red_buyers", "expression": "health(\"buyers\").band == \"red\"" });
    let segment = crate::http::post_json(s.addr, "/api/v1/segments", Some(&auth), &red);
    assert!(segment.status == 201 && segment.text().contains("\"size\":20"), "{}", segment.text());
    // u10 pays again: two invoices, green, out of the segment.
    let again = json!({"type": "track", "userId": "g-10", "event": "Invoice Issued", "properties": {"amount": 10}, "messageId": "again-10", "timestamp": "2026-03-25T00:00:00Z"});
    ok(&crate::http::post_json(s.addr, "/v1/batch", Some(&web), &json!({ "batch": [again] })));
    let deadline = std::time::Instant::now() + RESOLVE_WAIT;
    while ok(&get(s.addr, "/api/v1/segments/red_buyers", Some(&s.admin)))["size"] != 19 {
        assert!(std::time::Instant::now() < deadline, "g-10's invoice did not take it out of the red");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let profile = wait_for_profile(s.addr, &s.admin, "user_id:g-10", RESOLVE_WAIT, |v| v["health"]["buyers"]["band"] == "green");
    assert_eq!(profile["health"]["buyers"]["measures"][0]["value"], 2.0, "{profile}");
    assert_eq!(request(s.addr, "DELETE", "/api/v1/health/buyers", &[("Authorization", &auth)], b"").unwrap().status, 409);
    let lines = s.db().audit_lines(&kinship_store::AuditFilter::default(), 1000).unwrap();
    assert!(["nps.read", "growth.read", "health.read", "health.create"].iter().all(|a| lines.iter().any(|l| l.line.contains(a))));
}

#[test]
fn health_alerts_are_kept_by_the_server_listed_by_role_and_snoozed_with_a_reason() {
    let s = Server::with_config("\n[measures]\nalerts_every = \"1 second\"\n");
    let web = s.basic("web");
    // Four customers invoiced in March; three of them open three tickets on the last day held.
    let mut batch = Vec::new();
    for i in 0..4 {
        let user = format!("h-{i}");
        batch.push(json!({"type": "track", "userId": user, "event": "Invoice Issued", "properties": {"amount": 10},
                          "messageId": format!("inv-{i}"), "timestamp": "2026-03-01T00:00:00Z"}));
        for k in 0..(if i < 3 { 3 } else { 0 }) {
            batch.push(json!({"type": "track", "userId": user, "event": "Ticket Opened", "messageId": format!("t-{i}-{k}"),
                              "timestamp": format!("2026-03-20T1{k}:00:00Z")}));
        }
    }
    ok(&crate::http::post_json(s.addr, "/v1/batch", Some(&web), &json!({ "batch": batch })));
    for i in 0..4 {
        wait_for_profile(s.addr, &s.admin, &format!("user_id:h-{i}"), RESOLVE_WAIT, |v| !http::event_names(v).is_empty());
    }
    let calls = "name = \"calls\"\napplies = 'any(\"Invoice Issued\")'\n[[measures]]\nname = \"tickets\"\n\
                 value = 'count(\"Ticket Opened\", last 30 days)'\npoints = [[0, 100], [3, 0]]\n";
    let auth = http::bearer(&s.admin);
    assert_eq!(request(s.addr, "POST", "/api/v1/health", &[("Authorization", &auth)], calls.as_bytes()).unwrap().status, 201);
    // The server keeps the alerts by itself (every second here): the three who turned red today.
    let deadline = std::time::Instant::now() + RESOLVE_WAIT;
    let alerts = loop {
        let listed = ok(&get(s.addr, "/api/v1/health/calls/alerts", Some(&s.admin)));
        if listed["alerts"].as_array().is_some_and(|a| a.len() == 3) {
            break listed;
        }
        assert!(std::time::Instant::now() < deadline, "no alerts kept: {listed}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert!(alerts["alerts"].as_array().unwrap().iter().all(|a| a["reason"] == "entered_red" && a["owner"] == "unassigned"), "{alerts}");
    // An analyst gets the counts, not whose; support works the queue; nobody without a token.
    let analyst = ok(&get(s.addr, "/api/v1/health/calls/alerts", Some(&token(&s, "analyst"))));
    assert!(analyst.get("alerts").is_none() && analyst["counts"]["open"] == 3, "{analyst}");
    let support = token(&s, "support");
    assert_eq!(ok(&get(s.addr, "/api/v1/health/calls/alerts", Some(&support)))["alerts"].as_array().unwrap().len(), 3);
    assert_eq!(get(s.addr, "/api/v1/health/calls/alerts", None).status, 401);
    assert_eq!(get(s.addr, "/api/v1/health/calls/alerts?status=lost", Some(&s.admin)).status, 400);
    assert_eq!(get(s.addr, "/api/v1/health/nothing/alerts", Some(&s.admin)).status, 404);
    // Snoozed with a reason by support; not without one, not by an analyst.
    let id = alerts["alerts"][0]["id"].as_i64().unwrap();
    let path = format!("/api/v1/health/alerts/{id}/snooze");
    let snooze = |who: &str, body: serde_json::Value| crate::http::post_json(s.addr, &path, Some(&http::bearer(who)), &body);
    assert_eq!(snooze(&token(&s, "analyst"), json!({"until": "3 days", "reason": "x"})).status, 403);
    assert_eq!(snooze(&support, json!({"until": "3 days", "reason": " "})).status, 400);
    assert_eq!(snooze(&support, json!({"until": "2001-01-01", "reason": "late"})).status, 400);
    let snoozed = ok(&snooze(&support, json!({"until": "3 days", "reason": "called, replacement on its way"})));
    assert_eq!(
        (snoozed["snooze_reason"].as_str(), snoozed["snoozed_by"].as_str()),
        (Some("called, replacement on its way"), Some("token:test-support"))
    );
    let counts = &ok(&get(s.addr, "/api/v1/health/calls/alerts", Some(&s.admin)))["counts"];
    assert_eq!((counts["open"].as_u64(), counts["snoozed"].as_u64()), (Some(2), Some(1)), "{counts}");
    assert_eq!(snooze(&support, json!({"until": "1 day", "reason": "x"})).status, 200, "snoozed again, later");
    assert_eq!(
        crate::http::post_json(
            s.addr,
            "/api/v1/health/alerts/999999/snooze",
            Some(&http::bearer(&support)),
            &json!({"until": "1 day", "reason": "x"})
        )
        .status,
        404
    );
    let lines = s.db().audit_lines(&kinship_store::AuditFilter::default(), 1000).unwrap();
    assert!(["health.alerts.read", "health.alert.snooze"].iter().all(|a| lines.iter().any(|l| l.line.contains(a))));
}
