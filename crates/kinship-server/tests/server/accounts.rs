//! Accounts over HTTP: people grouped by a Segment `group` call and by a business email
//! domain (never a free-mail one), listed largest first, and an account's 360, which lists
//! people and so needs the search capability and is audited; its health is scored on its
//! people's events together.

use super::governance::{call, token};
use super::{ok, Server, RESOLVE_WAIT};
use crate::http::{bearer, post_json, request, wait_for_profile};
use serde_json::json;
use std::time::{Duration, Instant};

#[test]
fn group_calls_and_business_domains_make_accounts() {
    let s = Server::start();
    let auth = s.basic("web");
    let identify = |user: &str, email: &str, name: &str| {
        ok(&post_json(
            s.addr,
            "/v1/identify",
            Some(&auth),
            &json!({"userId": user, "traits": {"email": email, "name": name}, "messageId": format!("{user}-id"), "timestamp": "2024-05-01T10:00:00Z"}),
        ));
    };
    identify("u-ann", "ann@acme.io", "Ann Acme");
    identify("u-bob", "Bob@ACME.io", "Bob Acme");
    identify("u-cat", "cat@gmail.com", "Cat Free");
    identify("u-dan", "dan@hotmail.co.uk", "Dan Free");
    ok(&post_json(
        s.addr,
        "/v1/group",
        Some(&auth),
        &json!({"userId": "u-cat", "groupId": "acme-1", "traits": {"name": "ACME Pty"}, "messageId": "cat-group", "timestamp": "2024-05-02T10:00:00Z"}),
    ));
    for user in ["u-ann", "u-bob", "u-dan"] {
        wait_for_profile(s.addr, &s.admin, &format!("user_id:{user}"), RESOLVE_WAIT, |_| true);
    }
    let cat = wait_for_profile(s.addr, &s.admin, "user_id:u-cat", RESOLVE_WAIT, |v| v["traits"]["group_id"] == "acme-1");
    assert_eq!(cat["traits"]["group_name"], "ACME Pty", "a group call names the group: {cat}");

    let listed = call(s.addr, "GET", "/api/v1/accounts", &s.admin, None).json();
    assert_eq!(listed["total"], 2, "acme.io and the group; gmail and hotmail are no company: {listed}");
    assert_eq!((listed["accounts"][0]["id"].as_str(), listed["accounts"][0]["people"].as_u64()), (Some("domain:acme.io"), Some(2)));
    assert_eq!((listed["accounts"][1]["id"].as_str(), listed["accounts"][1]["name"].as_str()), (Some("group_id:acme-1"), Some("ACME Pty")));

    let account = call(s.addr, "GET", "/api/v1/accounts/domain:acme.io", &s.admin, None).json();
    let mut names: Vec<&str> = account["people"].as_array().unwrap().iter().filter_map(|p| p["name"].as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["Ann Acme", "Bob Acme"]);
    assert_eq!(call(s.addr, "GET", "/api/v1/accounts/domain:nowhere.io", &s.admin, None).status, 404);
    // An analyst may not look people up: an account of one is one person's domain.
    let analyst = token(&s, "analyst");
    assert_eq!(call(s.addr, "GET", "/api/v1/accounts", &analyst, None).status, 403);
    assert_eq!(call(s.addr, "GET", "/api/v1/accounts/domain:acme.io", &analyst, None).status, 403);
    let audit = call(s.addr, "GET", "/api/v1/audit?limit=500", &s.admin, None).text();
    assert!(audit.contains("account.read") && audit.contains("domain:acme.io"), "{audit}");

    // Health per account: Ann ordered twice and Bob once, so acme.io has three orders.
    for (user, k) in [("u-ann", 1), ("u-ann", 2), ("u-bob", 3)] {
        ok(&post_json(
            s.addr,
            "/v1/track",
            Some(&auth),
            &json!({"userId": user, "event": "Order Completed", "properties": {"total": 10}, "messageId": format!("order-{k}"), "timestamp": "2024-05-03T10:00:00Z"}),
        ));
    }
    let definition = "name = \"orders\"\napplies = 'any(\"Order Completed\")'\n[[measures]]\nname = \"orders\"\nvalue = 'count(\"Order Completed\")'\npoints = [[1, 30], [3, 100]]\n[[measures]]\nname = \"tickets\"\nvalue = 'count(\"Ticket Opened\")'\npoints = [[0, 100], [3, 0]]\n";
    let created = request(s.addr, "POST", "/api/v1/health", &[("Authorization", &bearer(&s.admin))], definition.as_bytes()).unwrap();
    assert_eq!(created.status, 201, "{}", created.text());
    let deadline = Instant::now() + RESOLVE_WAIT;
    let account = loop {
        let account = call(s.addr, "GET", "/api/v1/accounts/domain:acme.io", &s.admin, None).json();
        if account["health"]["orders"]["measures"][0]["value"] == 3.0 || Instant::now() > deadline {
            break account;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let orders = &account["health"]["orders"];
    assert_eq!(orders["measures"][0]["value"], 3.0, "both people's orders, counted together: {account}");
    assert_eq!((orders["score"].as_f64(), orders["band"].as_str()), (Some(100.0), Some("green")), "{orders}");
    assert_eq!(orders["history"].as_array().map(Vec::len), Some(13));
    let scored = call(s.addr, "GET", "/api/v1/accounts?health=orders", &s.admin, None).json();
    assert_eq!(scored["total"], 1, "Cat's group has no order, so the definition does not apply to it: {scored}");
    assert_eq!((scored["accounts"][0]["id"].as_str(), scored["accounts"][0]["band"].as_str()), (Some("domain:acme.io"), Some("green")));
    assert_eq!(call(s.addr, "GET", "/api/v1/accounts?health=nothing", &s.admin, None).status, 404);
    // Sales sees orders, tickets and scores; the marketer, who sees no tickets, gets no score
    // that reads them.
    let sales = token(&s, "sales");
    assert!(call(s.addr, "GET", "/api/v1/accounts/domain:acme.io", &sales, None).json()["health"]["orders"]["score"].is_number());
    let marketer = token(&s, "marketer");
    let seen = call(s.addr, "GET", "/api/v1/accounts/domain:acme.io", &marketer, None).json();
    assert!(seen["health"].get("orders").is_none(), "the marketer sees no tickets, so no score over them: {seen}");
    assert_eq!(call(s.addr, "GET", "/api/v1/accounts?health=orders", &marketer, None).status, 403);
}
