//! Accounts over HTTP: people grouped by a Segment `group` call and by a business email
//! domain (never a free-mail one), listed largest first, and an account's 360, which lists
//! people and so needs the search capability and is audited.

use super::governance::{call, token};
use super::{ok, Server, RESOLVE_WAIT};
use crate::http::{post_json, wait_for_profile};
use serde_json::json;

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
}
