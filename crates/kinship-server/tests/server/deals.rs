//! Deals over HTTP: a CRM's opportunity versions arriving as Segment `track` calls, mapped by
//! `[sources.web.deal]`, with their stage history; native deals opened and moved between
//! stages; the board's numbers; and who may read and work them.

use super::governance::{call, token};
use super::{ok, Server, RESOLVE_WAIT};
use crate::http::{post_json, wait_for_profile};
use serde_json::json;

const DEALS: &str = r#"
[sources.web.deal]
id = "properties.opportunity_id"
name = "properties.name"
stage = "properties.stage"
amount = "properties.amount"
close = "properties.close_date"
owner = "properties.owner"
default_currency = "AUD"

[service]
source = "app"
"#;

#[test]
fn crm_and_native_deals_move_through_stages_and_forecast_by_close_month() {
    let s = Server::with_config(DEALS);
    let auth = s.basic("web");
    ok(&post_json(
        s.addr,
        "/v1/identify",
        Some(&auth),
        &json!({"userId": "u-deb", "traits": {"email": "deb@acme.io", "name": "Deb Acme"}, "messageId": "deb-id", "timestamp": "2024-05-01T09:00:00Z"}),
    ));
    let opportunity = |id: &str, at: &str, properties: serde_json::Value| {
        ok(&post_json(
            s.addr,
            "/v1/track",
            Some(&auth),
            &json!({"userId": "u-deb", "event": "Opportunity Updated", "properties": properties, "messageId": id, "timestamp": at}),
        ));
    };
    // A CRM deal: qualification on 1 May, proposal on 11 May; 10,000 closing in June.
    opportunity(
        "o1-a",
        "2024-05-01T10:00:00Z",
        json!({"opportunity_id": "OPP-1", "name": "Acme gifts", "stage": "Qualification", "amount": "10,000", "close_date": "2024-06-30", "owner": "mia"}),
    );
    opportunity("o1-b", "2024-05-11T10:00:00Z", json!({"opportunity_id": "OPP-1", "stage": "proposal"}));
    let view = wait_for_profile(s.addr, &s.admin, "user_id:u-deb", RESOLVE_WAIT, |v| v["records"].as_array().is_some_and(|r| r.len() >= 3));
    let profile = view["id"].as_str().unwrap().to_string();

    let deadline = std::time::Instant::now() + RESOLVE_WAIT;
    let listed = loop {
        let listed = call(s.addr, "GET", "/api/v1/deals", &s.admin, None).json();
        if listed["deals"][0]["stage"] == "proposal" || std::time::Instant::now() > deadline {
            break listed;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let crm = &listed["deals"][0];
    assert_eq!(
        (crm["id"].as_str(), crm["amount"].as_f64(), crm["currency"].as_str()),
        (Some("OPP-1"), Some(10_000.0), Some("AUD")),
        "{listed}"
    );
    assert_eq!(crm["history"].as_array().map(Vec::len), Some(2));
    assert_eq!(crm["contacts"][0], profile.as_str());
    // A connected CRM's deal is moved in that CRM.
    let refused = call(s.addr, "POST", "/api/v1/deals/web/OPP-1/update", &s.admin, Some(&json!({"stage": "won"})));
    assert_eq!(refused.status, 422, "{}", refused.text());

    // A native deal, opened at the first stage and moved to negotiation, then won.
    let opened = call(
        s.addr,
        "POST",
        "/api/v1/deals",
        &s.admin,
        Some(&json!({"profile": profile, "name": "Acme renewal", "amount": 4000, "currency": "aud", "close": "2024-06-15"})),
    );
    assert_eq!(opened.status, 201, "{}", opened.text());
    let id = opened.json()["id"].as_str().unwrap().to_string();
    let path = format!("/api/v1/deals/app/{id}");
    assert_eq!(call(s.addr, "GET", &path, &s.admin, None).json()["stage"], "qualification");
    let report = call(s.addr, "GET", "/api/v1/deals", &s.admin, None).json()["report"].clone();
    // June, AUD: 10,000 at proposal (0.5) and 4,000 at qualification (0.1).
    assert_eq!(report["forecast"][0]["weighted"].as_f64(), Some(5_400.0), "{report}");
    assert_eq!(call(s.addr, "POST", &format!("{path}/update"), &s.admin, Some(&json!({"stage": "Negotiation"}))).status, 201);
    assert_eq!(call(s.addr, "GET", &path, &s.admin, None).json()["stage"], "negotiation");
    assert_eq!(call(s.addr, "POST", &format!("{path}/update"), &s.admin, Some(&json!({"stage": "won"}))).status, 201);
    let listed = call(s.addr, "GET", "/api/v1/deals?status=all", &s.admin, None).json();
    let report = &listed["report"];
    assert_eq!(report["forecast"][0]["weighted"].as_f64(), Some(9_000.0), "a won deal counts whole: {report}");
    assert_eq!(report["win_rate"].as_f64(), Some(1.0));
    let won = listed["deals"].as_array().unwrap().iter().find(|d| d["id"] == id.as_str()).unwrap();
    let stages: Vec<&str> = won["history"].as_array().unwrap().iter().filter_map(|h| h["stage"].as_str()).collect();
    assert_eq!(stages, ["qualification", "negotiation", "won"]);
    // The funnel reached: qualification 2, discovery 2 (both passed it), proposal 2, negotiation 1, won 1.
    let counts: Vec<u64> = report["funnel"].as_array().unwrap().iter().filter_map(|s| s["count"].as_u64()).collect();
    assert_eq!(counts, [2, 2, 2, 1, 1]);

    // Bad input names what is wrong; nothing is written.
    for (body, says) in [
        (json!({"stage": "closing"}), "unknown stage"),
        (json!({"amount": -5}), "at least 0"),
        (json!({"close": "30/06/2024"}), "YYYY-MM-DD"),
        (json!({"probability": 2}), "between 0 and 1"),
        (json!({}), "nothing to change"),
    ] {
        let bad = call(s.addr, "POST", &format!("{path}/update"), &s.admin, Some(&body));
        assert_eq!(bad.status, 400, "{body}");
        assert!(bad.text().contains(says), "{}", bad.text());
    }
    assert_eq!(call(s.addr, "GET", "/api/v1/deals?status=maybe", &s.admin, None).status, 400);

    // The briefing and the account show the open deal; sales reads and works deals; support
    // reads none.
    let brief = call(s.addr, "GET", &format!("/api/v1/profiles/{profile}/briefing"), &s.admin, None).json();
    assert_eq!(brief["deals"][0]["id"], "OPP-1", "{brief}");
    let account = call(s.addr, "GET", "/api/v1/accounts/domain:acme.io", &s.admin, None).json();
    assert_eq!(account["deals"].as_array().map(Vec::len), Some(1), "{account}");
    assert!(
        brief["summary"].as_array().unwrap().iter().any(|l| l.as_str().is_some_and(|l| l.starts_with("1 open deal, AUD 10000.00"))),
        "{brief}"
    );
    // The analyst sees every event but may not read deals: none in its briefing either.
    let analyst = token(&s, "analyst");
    let seen = call(s.addr, "GET", &format!("/api/v1/profiles/{profile}/briefing"), &analyst, None).json();
    assert!(seen.get("deals").is_none() && !seen.to_string().contains("OPP-1"), "{seen}");
    let sales = token(&s, "sales");
    assert_eq!(call(s.addr, "GET", "/api/v1/deals", &sales, None).status, 200);
    let support = token(&s, "support");
    assert_eq!(call(s.addr, "GET", "/api/v1/deals", &support, None).status, 403);
    assert_eq!(call(s.addr, "POST", &format!("{path}/update"), &support, Some(&json!({"stage": "lost"}))).status, 403);
    let audit = call(s.addr, "GET", &format!("/api/v1/audit?profile={profile}"), &s.admin, None).text();
    for action in ["deal.open", "deal.update", "deal.read"] {
        assert!(audit.contains(action), "{action} audited");
    }

    // Erasing the contact erases the deals their records told of, native and connected.
    let erased = call(s.addr, "POST", "/api/v1/privacy/erasure", &s.admin, Some(&json!({"email": "deb@acme.io"})));
    assert_eq!(erased.status, 200, "{}", erased.text());
    let after = call(s.addr, "GET", "/api/v1/deals?status=all", &s.admin, None).json();
    assert_eq!(after["total"], 0, "{after}");
}
