//! Funnels and experiments over HTTP: counts by construction from events sent through the
//! collection API, the profiles behind each step only for roles that see identities, no
//! filter or breakdown over what a role may not read, and readouts per variant.

use super::governance::token;
use super::{ok, Server, RESOLVE_WAIT};
use crate::http::{self, get, request, wait_for_profile};
use serde_json::json;

const FUNNEL: &str = r#"
name = "browse_to_buy"
window = "7 days"
[[steps]]
event = "Page Viewed"
[[steps]]
event = "Added To Cart"
[[steps]]
event = "Order Completed"
where = "total >= 20"
"#;

fn send(s: &Server, bearer: &str, method: &str, path: &str, body: &str) -> http::Response {
    let auth = http::bearer(bearer);
    request(s.addr, method, path, &[("Authorization", &auth), ("Content-Type", "text/plain")], body.as_bytes()).unwrap()
}

fn counts(report: &serde_json::Value) -> Vec<u64> {
    report["result"]["steps"].as_array().unwrap().iter().map(|s| s["count"].as_u64().unwrap()).collect()
}

fn measure(s: &Server, bearer: &str, body: &str) -> http::Response {
    let auth = http::bearer(bearer);
    request(s.addr, "POST", "/api/v1/funnels/measure", &[("Authorization", &auth), ("Content-Type", "text/plain")], body.as_bytes())
        .unwrap()
}

#[test]
fn a_funnel_and_an_experiment_over_http_as_each_role_may_see_them() {
    let s = Server::start();
    let web = s.basic("web");
    // 40 people: all view a page, even ones add to cart, i % 4 == 0 buy for 20 or more
    // (i % 8 == 4 for 10 only, under the step's condition); all see variant (i / 2) % 2.
    let mut batch = Vec::new();
    for i in 0..40 {
        let user = format!("m-{i}");
        let day = |h: i64| format!("2026-03-01T{:02}:00:00Z", h);
        batch.push(json!({"type": "identify", "userId": user, "traits": {"email": format!("m{i}@example.com"), "country": if i % 2 == 0 { "AU" } else { "NZ" }}, "messageId": format!("id-{i}")}));
        batch.push(json!({"type": "track", "userId": user, "event": "Page Viewed", "messageId": format!("pv-{i}"), "timestamp": day(1)}));
        let variant = if (i / 2) % 2 == 0 { "control" } else { "treatment" };
        batch.push(
            json!({"type": "track", "userId": user, "event": "Experiment Viewed", "properties": {"experiment": "btn", "variant": variant},
                          "messageId": format!("xv-{i}"), "timestamp": day(1)}),
        );
        if i % 2 == 0 {
            batch.push(
                json!({"type": "track", "userId": user, "event": "Added To Cart", "messageId": format!("ac-{i}"), "timestamp": day(2)}),
            );
        }
        if i % 4 == 0 {
            let total = if i % 8 == 0 { 25 } else { 10 };
            batch.push(json!({"type": "track", "userId": user, "event": "Order Completed", "properties": {"total": total},
                              "messageId": format!("oc-{i}"), "timestamp": day(3)}));
        }
    }
    ok(&crate::http::post_json(s.addr, "/v1/batch", Some(&web), &json!({ "batch": batch })));
    wait_for_profile(s.addr, &s.admin, "user_id:m-39", RESOLVE_WAIT, |v| http::event_names(v).len() >= 2);
    wait_for_profile(s.addr, &s.admin, "user_id:m-36", RESOLVE_WAIT, |v| http::event_names(v).len() >= 4);

    let admin = ok(&measure(&s, &s.admin, FUNNEL));
    assert_eq!(counts(&admin), [40, 20, 5], "{admin:#}");
    assert_eq!(admin["result"]["steps"][1]["time_from_previous"]["median_ms"], 3_600_000);
    assert_eq!(admin["reached"][2].as_array().unwrap().len(), 5, "the buyers, for a role that sees identities");

    // An analyst sees the numbers, not who is behind them, and may not filter or break down
    // by an email.
    let analyst = token(&s, "analyst");
    let seen = ok(&measure(&s, &analyst, FUNNEL));
    assert_eq!(seen["result"]["steps"][2]["count"], 5);
    assert!(seen.get("reached").is_none() && seen.get("dropped").is_none(), "{seen}");
    let by_email = measure(&s, &analyst, &FUNNEL.replace("window = \"7 days\"", "window = \"7 days\"\nbreakdown = \"email\""));
    assert_eq!(by_email.status, 403, "{}", by_email.text());
    let oracle = measure(&s, &analyst, &FUNNEL.replace("where = \"total >= 20\"", "where = 'contact == \"m4@example.com\"'"));
    assert_eq!(oracle.status, 403, "{}", oracle.text());
    // An event name the language could not quote does not slip the condition past the check.
    let odd = FUNNEL
        .replace("event = \"Order Completed\"", "event = \"\\u001bOrder\"")
        .replace("where = \"total >= 20\"", "where = 'contact == \"m4@example.com\"'");
    assert!(odd.contains("u001b") && odd.contains("contact"), "{odd}");
    assert_eq!(measure(&s, &analyst, &odd).status, 403);
    assert_eq!(measure(&s, &token(&s, "viewer"), FUNNEL).status, 403);
    let bad = measure(&s, &s.admin, &FUNNEL.replace("7 days", "a week"));
    assert_eq!(bad.status, 400);
    assert!(bad.text().contains("window"), "{}", bad.text());

    // The experiment: conversion to an order within 14 days of exposure, per variant.
    let readout = ok(&get(s.addr, "/api/v1/experiments/btn?event=Order%20Completed", Some(&s.admin)));
    assert_eq!(readout["control"], "control");
    let variants: Vec<(String, u64, f64)> = readout["variants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["variant"].as_str().unwrap().to_string(), v["profiles"].as_u64().unwrap(), v["mean"].as_f64().unwrap()))
        .collect();
    // Buyers are i % 4 == 0: (i / 2) even, so all in control: 10 of 20.
    assert_eq!(variants, [("control".into(), 20, 0.5), ("treatment".into(), 20, 0.0)]);
    assert_eq!(readout["variants"][0]["sample"].as_array().unwrap().len(), 20, "an admin sees who is behind each variant");
    let seen = ok(&get(s.addr, "/api/v1/experiments/btn", Some(&analyst)));
    assert!(seen["variants"][0].get("sample").is_none() && seen["variants"][0]["profiles"] == 20, "{seen}");
    let missing = get(s.addr, "/api/v1/experiments/nothing", Some(&s.admin));
    assert_eq!(missing.status, 400);
    let lines = s.db().audit_lines(&kinship_store::AuditFilter::default(), 1000).unwrap();
    assert!(lines.iter().any(|l| l.line.contains("funnel.measure")), "audited");
    assert!(lines.iter().any(|l| l.line.contains("experiment.read")));

    // Saved, the funnel positions each profile for segments, kept current as events arrive.
    let saved = FUNNEL.replace("window = \"7 days\"", "window = \"7 days\"\nbreakdown = \"country\"");
    assert_eq!(send(&s, &analyst, "POST", "/api/v1/funnels", &saved).status, 403, "an analyst may not define");
    let created = send(&s, &s.admin, "POST", "/api/v1/funnels", &saved);
    assert_eq!(created.status, 201, "{}", created.text());
    let carted = json!({ "name": "carted", "expression": "funnel(\"browse_to_buy\").step == 2" });
    let segment = crate::http::post_json(s.addr, "/api/v1/segments", Some(&http::bearer(&s.admin)), &carted);
    assert_eq!(segment.status, 201, "{}", segment.text());
    assert!(segment.text().contains("\"size\":15"), "20 carts, 5 bought: {}", segment.text());
    // The experiment's metric may be completing the saved funnel; an unknown one is a 404.
    let by_funnel = ok(&get(s.addr, "/api/v1/experiments/btn?funnel=browse_to_buy", Some(&s.admin)));
    assert!(by_funnel["metric"].as_str().unwrap().contains("completed funnel browse_to_buy"), "{by_funnel}");
    assert_eq!(get(s.addr, "/api/v1/experiments/btn?funnel=nowhere", Some(&s.admin)).status, 404);
    // m-2 carted without buying; now it buys, and leaves the segment in real time.
    let order = json!({"type": "track", "userId": "m-2", "event": "Order Completed", "properties": {"total": 30}, "messageId": "oc-late", "timestamp": "2026-03-04T00:00:00Z"});
    ok(&crate::http::post_json(s.addr, "/v1/batch", Some(&web), &json!({ "batch": [order] })));
    let deadline = std::time::Instant::now() + RESOLVE_WAIT;
    while ok(&get(s.addr, "/api/v1/segments/carted", Some(&s.admin)))["size"] != 14 {
        assert!(std::time::Instant::now() < deadline, "m-2's order did not move it out of the segment");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let whole = ok(&get(s.addr, "/api/v1/funnels/browse_to_buy", Some(&s.admin)));
    assert_eq!(counts(&whole), [40, 20, 6]);
    // Drill-down: one row of the breakdown, one week of the trend (2026-03-01 is a Sunday).
    let au = ok(&get(s.addr, "/api/v1/funnels/browse_to_buy?breakdown=AU", Some(&s.admin)));
    assert_eq!(counts(&au), [20, 20, 6]);
    assert!(au["reached"][2].as_array().unwrap().len() == 6, "{au}");
    let week = ok(&get(s.addr, "/api/v1/funnels/browse_to_buy?week=2026-02-23", Some(&s.admin)));
    assert_eq!(counts(&week), [40, 20, 6]);
    assert_eq!(counts(&ok(&get(s.addr, "/api/v1/funnels/browse_to_buy?week=2026-03-02", Some(&s.admin))))[0], 0);
    assert_eq!(get(s.addr, "/api/v1/funnels/browse_to_buy?week=2026-03-01", Some(&s.admin)).status, 400, "not a Monday");
    assert_eq!(get(s.addr, "/api/v1/funnels/nothing", Some(&s.admin)).status, 404);
    let listed = ok(&get(s.addr, "/api/v1/funnels", Some(&analyst)));
    assert_eq!(listed["funnels"][0]["definition"]["steps"][2]["where"], "total >= 20");
    // A funnel quoting a person is refused, without repeating the address.
    let quoting = saved.replace("browse_to_buy", "one").replace("where = \"total >= 20\"", "where = 'contact == \"m4@example.com\"'");
    let refused = send(&s, &s.admin, "POST", "/api/v1/funnels", &quoting);
    assert_eq!(refused.status, 400, "{}", refused.text());
    assert!(refused.text().contains("quotes an email address") && !refused.text().contains("m4@example.com"), "{}", refused.text());
    // A funnel a segment reads cannot go; once the segment has gone, it can.
    assert_eq!(send(&s, &s.admin, "DELETE", "/api/v1/funnels/browse_to_buy", "").status, 409);
    ok(&send(&s, &s.admin, "DELETE", "/api/v1/segments/carted", ""));
    ok(&send(&s, &s.admin, "DELETE", "/api/v1/funnels/browse_to_buy", ""));
    let lines = s.db().audit_lines(&kinship_store::AuditFilter::default(), 1000).unwrap();
    assert!(lines.iter().any(|l| l.line.contains("funnel.create")) && lines.iter().any(|l| l.line.contains("funnel.delete")));
}
