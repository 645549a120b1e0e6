//! Governance over HTTP: the route × role matrix, what each role sees of a profile, a
//! marketer never receiving an unmasked email, token revocation, rate limits, bounded
//! queries, erasure and the audit trail of reads.

use super::{ok, Server, RESOLVE_WAIT};
use crate::http::{self, get, post_json, request, wait_for_profile};
use serde_json::{json, Value};
use std::net::SocketAddr;

const ROLES: [&str; 6] = ["admin", "support", "sales", "marketer", "analyst", "viewer"];

/// A token of `role`, added to the running server's store.
pub(crate) fn token(s: &Server, role: &str) -> String {
    let secret = kinship_server::auth::new_secret("kt_");
    let mut store = s.db();
    store.add_token(&format!("test-{role}"), role, &kinship_server::auth::hash_secret(&secret)).unwrap();
    secret
}

/// Ann: contact details, a marketing score, an order, a ticket and an email campaign event.
pub(crate) fn seed_ann(s: &Server) -> String {
    let auth = s.basic("web");
    let a = s.addr;
    ok(&post_json(
        a,
        "/v1/identify",
        Some(&auth),
        &json!({"userId": "u-ann", "traits": {"email": "Ann.Lee@Example.com", "phone": "+1 415 555 0134", "first_name": "Ann", "lead_score": 80},
                "messageId": "ann-1", "timestamp": "2024-05-01T10:00:00Z"}),
    ));
    for (n, event) in ["Order Completed", "Ticket Opened", "Email Opened"].iter().enumerate() {
        ok(&post_json(
            a,
            "/v1/track",
            Some(&auth),
            &json!({"userId": "u-ann", "event": event, "properties": {"value": 10, "contact": "ann.lee@example.com"},
                    "messageId": format!("ann-ev-{n}"), "timestamp": format!("2024-05-0{}T10:00:00Z", n + 2)}),
        ));
    }
    let view = wait_for_profile(a, &s.admin, "user_id:u-ann", RESOLVE_WAIT, |v| http::event_names(v).len() == 3);
    view["id"].as_str().expect("Ann's profile").to_string()
}

/// One route of the matrix: method, path, body, the roles allowed, and the status they get
/// (everyone else gets 403).
type RouteCase = (&'static str, String, Option<Value>, &'static [&'static str], u16);

/// Every route, with a request it accepts from a role allowed to call it.
fn routes(id: &str) -> Vec<RouteCase> {
    let all: &[&str] = &ROLES;
    vec![
        ("GET", "/api/v1/openapi.json".into(), None, all, 200),
        ("GET", "/api/v1/profiles?email=ann.lee@example.com".into(), None, &["admin", "support", "sales", "marketer", "viewer"], 200),
        ("GET", format!("/api/v1/profiles/{id}"), None, all, 200),
        ("GET", format!("/api/v1/profiles/{id}/explain"), None, &["admin", "support", "viewer"], 200),
        ("GET", format!("/api/v1/profiles/{id}/briefing"), None, all, 200),
        ("GET", "/api/v1/cases".into(), None, &["admin", "support", "sales", "viewer"], 200),
        ("GET", "/api/v1/cases/attainment".into(), None, &["admin", "support", "sales", "viewer"], 200),
        ("GET", "/api/v1/sources".into(), None, all, 200),
        ("POST", "/api/v1/sources/legacy/disable".into(), None, &["admin"], 200),
        ("POST", "/api/v1/sources/web/run".into(), None, &["admin"], 422),
        ("GET", "/api/v1/audit".into(), None, &["admin"], 200),
        ("GET", "/api/v1/audit/verify".into(), None, &["admin"], 200),
        ("GET", "/api/v1/tokens".into(), None, &["admin"], 200),
        ("POST", "/api/v1/tokens".into(), Some(json!({"name": "x", "role": "janitor"})), &["admin"], 400),
        ("DELETE", "/api/v1/tokens/nobody".into(), None, &["admin"], 404),
        ("POST", "/api/v1/privacy/erasure".into(), Some(json!({"email": "nobody@example.com"})), &["admin"], 404),
        ("GET", "/api/v1/privacy/export?email=ann.lee@example.com".into(), None, &["admin"], 200),
        ("GET", "/api/v1/segments".into(), None, &["admin", "sales", "marketer", "analyst"], 200),
        (
            "POST",
            "/api/v1/segments/preview".into(),
            Some(json!({"expression": "exists(traits.email)"})),
            &["admin", "sales", "marketer", "analyst"],
            200,
        ),
        (
            "POST",
            "/api/v1/segments".into(),
            Some(json!({"name": "bad", "expression": "count(\"Order Completed\") > \"two\""})),
            &["admin", "marketer"],
            400,
        ),
        ("GET", "/api/v1/segments/nope".into(), None, &["admin", "sales", "marketer", "analyst"], 404),
        ("GET", "/api/v1/segments/nope/members".into(), None, &["admin", "marketer", "analyst"], 404),
        ("DELETE", "/api/v1/segments/nope".into(), None, &["admin", "marketer"], 404),
        ("GET", "/api/v1/computed-traits".into(), None, &["admin", "sales", "marketer", "analyst"], 200),
        (
            "POST",
            "/api/v1/computed-traits".into(),
            Some(json!({"name": "x", "expression": "sum(\"Order Completed\")"})),
            &["admin", "marketer"],
            400,
        ),
        ("DELETE", "/api/v1/computed-traits/nope".into(), None, &["admin", "marketer"], 404),
    ]
}

pub(crate) fn call(addr: SocketAddr, method: &str, path: &str, token: &str, body: Option<&Value>) -> http::Response {
    let auth = http::bearer(token);
    let mut headers = vec![("Authorization", auth.as_str())];
    if body.is_some() {
        headers.push(("Content-Type", "application/json"));
    }
    let body = body.map(Value::to_string).unwrap_or_default();
    request(addr, method, path, &headers, body.as_bytes()).unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

/// The briefing is read like the 360: audited, and through the reader's role (only the
/// events it may see, free text only for roles that see identities); a bad `since` is
/// refused, naming the fix.
#[test]
fn briefing_is_audited_and_follows_the_role() {
    let s = Server::start();
    let id = seed_ann(&s);
    let path = format!("/api/v1/profiles/{id}/briefing?since=2024-05-02T12:00:00Z");
    let admin = call(s.addr, "GET", &path, &s.admin, None).json();
    assert_eq!(admin["id"], id);
    let changed = &admin["changed"];
    assert_eq!(changed["records"], 2, "the two events after 2 May noon: {changed}");
    assert!(changed["lines"].as_array().unwrap().iter().all(|l| l["line"].is_string()));
    let analyst_token = token(&s, "analyst");
    let analyst = call(s.addr, "GET", &path, &analyst_token, None).json();
    assert!(analyst["changed"]["lines"].as_array().unwrap().iter().all(|l| l["line"].is_null()), "{analyst}");
    // Without `since`, nothing changed is listed, for any role (the page once found an
    // empty `changed` made by the role's filtering, and failed).
    let without = call(s.addr, "GET", &format!("/api/v1/profiles/{id}/briefing"), &analyst_token, None).json();
    assert!(without["changed"].is_null(), "{without}");
    // Support sees orders and tickets, not email engagement: only the ticket of 3 May.
    let support = call(s.addr, "GET", &path, &token(&s, "support"), None).json();
    assert_eq!(support["changed"]["records"], 1, "{support}");
    let bad = call(s.addr, "GET", &format!("/api/v1/profiles/{id}/briefing?since=yesterday"), &s.admin, None);
    assert_eq!(bad.status, 400);
    assert!(bad.text().contains("RFC 3339"), "{}", bad.text());
    assert_eq!(call(s.addr, "GET", "/api/v1/profiles/p_nobody/briefing", &s.admin, None).status, 404);
    let audit = call(s.addr, "GET", &format!("/api/v1/audit?profile={id}"), &s.admin, None).text();
    assert!(audit.contains("brief") && audit.contains(&id), "{audit}");
}

#[test]
fn route_by_role_matrix() {
    let s = Server::start();
    let id = seed_ann(&s);
    let tokens: Vec<(&str, String)> = ROLES.iter().map(|r| (*r, token(&s, r))).collect();
    for (method, path, body, allowed, status) in routes(&id) {
        for (role, secret) in &tokens {
            let r = call(s.addr, method, &path, secret, body.as_ref());
            let want = if allowed.contains(role) { status } else { 403 };
            assert_eq!(r.status, want, "{role} {method} {path}: {}", r.text());
        }
    }
    // A wrong token counts toward the per-address limit of 20 failures a minute, so these
    // run against fresh servers, fifteen routes each.
    for chunk in routes(&id).chunks(15) {
        let fresh = Server::start();
        for (method, path, body, _, _) in chunk {
            assert_eq!(call(fresh.addr, method, path, "kt_wrong", body.as_ref()).status, 401, "{method} {path} without a valid token");
        }
    }
}

/// Names of a view's events.
fn events(view: &Value) -> Vec<&str> {
    view["events"].as_array().into_iter().flatten().filter_map(|e| e["event"].as_str()).collect()
}

#[test]
fn each_role_sees_exactly_its_fields() {
    let s = Server::start();
    let id = seed_ann(&s);
    let view = |role: &str| ok(&get(s.addr, &format!("/api/v1/profiles/{id}"), Some(&token(&s, role))));

    let admin = view("admin");
    assert_eq!(admin["traits"]["email"], "Ann.Lee@Example.com");
    assert_eq!(admin["traits"]["lead_score"], 80);
    assert_eq!(events(&admin), ["Email Opened", "Ticket Opened", "Order Completed"]);
    assert!(admin["records"].as_array().is_some_and(|r| r.len() == 4));
    assert_eq!(admin["events_total"], 3);

    for role in ["support", "viewer"] {
        let v = view(role);
        assert_eq!(v["traits"]["email"], "Ann.Lee@Example.com", "{role} reads contact details");
        assert!(v["traits"].get("lead_score").is_none(), "{role} does not see marketing scores: {v:#}");
        assert_eq!(events(&v), ["Ticket Opened", "Order Completed"], "{role}: orders and tickets, no campaigns");
        assert!(v.get("segments").is_none());
    }
    assert!(view("support").get("records").is_some(), "support sees records (projected)");
    assert!(view("viewer").get("records").is_none(), "viewers do not");

    let sales = view("sales");
    assert!(sales["traits"].get("lead_score").is_none());
    assert_eq!(events(&sales), ["Ticket Opened", "Order Completed"]);

    let marketer = view("marketer");
    assert_eq!(marketer["traits"]["lead_score"], 80, "marketers see scores");
    let email = marketer["traits"]["email"].as_str().unwrap();
    assert!(email.contains("***") && email.ends_with("@Example.com"), "masked: {email}");
    assert!(!marketer["traits"]["phone"].as_str().unwrap().contains("555"), "phone masked: {marketer:#}");
    assert_eq!(events(&marketer), ["Email Opened", "Order Completed"], "engagement, no tickets");
    assert!(marketer.get("records").is_none());

    let analyst = view("analyst");
    assert!(analyst["traits"]["email"].as_str().unwrap().starts_with("anon_"), "{analyst:#}");
    assert!(analyst["identifiers"].as_array().unwrap().iter().all(|i| i["value"].as_str().unwrap().starts_with("anon_")));
    assert!(analyst.get("records").is_none());

    for role in ROLES {
        let v = view(role);
        assert!(v["consent"]["marketing"].is_object(), "{role} sees consent: {v:#}");
        assert!(v.as_object().unwrap().values().all(|x| !x.is_null()), "hidden means absent, never null");
    }
}

/// Email addresses in `text` whose local part is not masked.
fn unmasked_emails(text: &str) -> Vec<String> {
    let local = |c: char| c.is_ascii_alphanumeric() || "._%+-".contains(c);
    let mut found = Vec::new();
    for (at, _) in text.match_indices('@') {
        let before: String = text[..at].chars().rev().take_while(|c| local(*c)).collect::<Vec<_>>().into_iter().rev().collect();
        let after: String = text[at + 1..].chars().take_while(|c| c.is_ascii_alphanumeric() || ".-".contains(*c)).collect();
        if !before.is_empty() && after.contains('.') {
            found.push(format!("{before}@{after}"));
        }
    }
    found
}

#[test]
fn a_marketer_never_receives_an_unmasked_email() {
    let s = Server::start();
    let id = seed_ann(&s);
    let marketer = token(&s, "marketer");
    // A segment whose expression quotes the address.
    let quoted = json!({"name": "ann", "expression": "traits.email == \"Ann.Lee@Example.com\""});
    assert_eq!(call(s.addr, "POST", "/api/v1/segments", &s.admin, Some(&quoted)).status, 201);
    for (method, path, body, _, _) in routes(&id).into_iter().chain([("GET", "/api/v1/segments/ann".to_string(), None, &[][..], 200)]) {
        let r = call(s.addr, method, &path, &marketer, body.as_ref());
        let leaked = unmasked_emails(&r.text());
        assert!(leaked.is_empty(), "{method} {path} ({}) gave a marketer {leaked:?}", r.status);
    }
    for path in ["/api/v1/profiles?q=ann", "/api/v1/profiles?phone=4155550134", "/api/v1/profiles?identifier=user_id:u-ann"] {
        let r = ok(&get(s.addr, path, Some(&marketer)));
        assert_eq!(r["profiles"].as_array().unwrap().len(), 1, "{path}: {r}");
        assert!(unmasked_emails(&r.to_string()).is_empty(), "{path}: {r}");
    }
    // The safety net: the check itself finds what it must.
    assert_eq!(unmasked_emails(r#"{"a":"x ann@b.com","b":"a***@b.com"}"#), ["ann@b.com"]);
}

#[test]
fn tokens_are_listed_created_and_revoked() {
    let s = Server::start();
    let created = ok(&call(s.addr, "POST", "/api/v1/tokens", &s.admin, Some(&json!({"name": "ops", "role": "support"}))));
    let ops = created["token"].as_str().unwrap().to_string();
    assert_eq!(get(s.addr, "/api/v1/sources", Some(&ops)).status, 200);
    let listed = ok(&get(s.addr, "/api/v1/tokens", Some(&s.admin)));
    assert!(listed["tokens"].as_array().unwrap().iter().any(|t| t["name"] == "ops" && t["role"] == "support"), "{listed}");
    assert!(!listed.to_string().contains(&ops), "secrets are never listed");
    let taken = call(s.addr, "POST", "/api/v1/tokens", &s.admin, Some(&json!({"name": "ops", "role": "admin"})));
    assert_eq!(taken.status, 409);
    ok(&call(s.addr, "DELETE", "/api/v1/tokens/ops", &s.admin, None));
    let refused = get(s.addr, "/api/v1/sources", Some(&ops));
    assert_eq!(refused.status, 401, "a revoked token is refused at once: {}", refused.text());
    let audit = ok(&get(s.addr, "/api/v1/audit?actor=token:test-admin", Some(&s.admin)));
    let actions: Vec<&str> = audit["entries"].as_array().unwrap().iter().filter_map(|e| e["action"].as_str()).collect();
    assert!(actions.contains(&"token.create") && actions.contains(&"token.revoke"), "{actions:?}");
}

#[test]
fn repeated_authentication_failures_are_rate_limited() {
    let s = Server::start();
    for n in 0..20 {
        assert_eq!(get(s.addr, "/api/v1/sources", Some("kt_guess")).status, 401, "failure {n}");
    }
    let limited = get(s.addr, "/api/v1/sources", Some("kt_guess"));
    assert_eq!(limited.status, 429, "{}", limited.text());
    assert!(limited.header("retry-after").is_some_and(|v| v.parse::<u64>().is_ok_and(|s| (1..=60).contains(&s))));
    // Its failures stay limited for the rest of the window (a bad write key too), but a
    // client that authenticates from the same address (behind one NAT) is served.
    let bad_key = http::basic("wk_guess");
    assert_eq!(post_json(s.addr, "/v1/track", Some(&bad_key), &json!({"userId": "u", "event": "E"})).status, 429);
    for _ in 0..5 {
        assert_eq!(get(s.addr, "/api/v1/sources", Some("kt_guess")).status, 429);
        assert_eq!(get(s.addr, "/api/v1/sources", Some(&s.admin)).status, 200);
        assert_eq!(post_json(s.addr, "/v1/track", Some(&s.basic("web")), &json!({"userId": "u", "event": "E"})).status, 200);
    }
}

#[test]
fn query_strings_and_api_bodies_are_bounded() {
    let s = Server::start();
    let long = "a".repeat(3000);
    let r = get(s.addr, &format!("/api/v1/profiles?q={long}"), Some(&s.admin));
    assert_eq!(r.status, 414, "{}", r.text());
    assert!(r.text().contains("server.max_query_bytes"));
    let huge = json!({"email": "x".repeat(100 * 1024)});
    assert_eq!(call(s.addr, "POST", "/api/v1/privacy/erasure", &s.admin, Some(&huge)).status, 413);
}

#[test]
fn api_erasure_removes_and_suppresses_the_person() {
    let s = Server::start();
    let id = seed_ann(&s);
    let viewer_read = get(s.addr, &format!("/api/v1/profiles/{id}"), Some(&s.viewer));
    assert_eq!(viewer_read.status, 200);

    let export = ok(&get(s.addr, "/api/v1/privacy/export?email=ann.lee@example.com", Some(&s.admin)));
    assert_eq!(export["profiles"][0]["id"], id.as_str());
    assert_eq!(export["profiles"][0]["records"].as_array().unwrap().len(), 4);

    let report = ok(&post_json(s.addr, "/api/v1/privacy/erasure", Some(&http::bearer(&s.admin)), &json!({"phone": "(415) 555-0134"})));
    assert_eq!(report["deleted"]["records"], 4, "{report}");
    assert_eq!(report["profiles"][0], id.as_str());
    assert_eq!(get(s.addr, &format!("/api/v1/profiles/{id}"), Some(&s.admin)).status, 404);
    assert!(ok(&get(s.addr, "/api/v1/profiles?email=ann.lee@example.com", Some(&s.admin)))["profiles"].as_array().unwrap().is_empty());
    assert!(ok(&get(s.addr, "/api/v1/profiles?q=ann", Some(&s.admin)))["profiles"].as_array().unwrap().is_empty());

    // New events naming her are dropped and counted.
    let again =
        ok(&post_json(s.addr, "/v1/track", Some(&s.basic("app")), &json!({"userId": "u-ann", "event": "Back", "messageId": "ann-9"})));
    assert_eq!((again["suppressed"].as_u64(), again["accepted"].as_u64()), (Some(1), Some(0)), "stored nothing: {again}");
    assert!(!s.stored_keys("app").contains_key("ann-9"));

    // The audit log has the read and the erasure, and never her email.
    let audit = ok(&get(s.addr, &format!("/api/v1/audit?profile={id}"), Some(&s.admin)));
    let read = audit["entries"].as_array().unwrap().iter().find(|e| e["actor"] == "token:test-viewer" && e["action"] == "read");
    let read = read.unwrap_or_else(|| panic!("the viewer's read is audited: {audit:#}"));
    assert_eq!(read["route"], "GET /api/v1/profiles/{id}");
    assert!(read["detail"]["fields"]["traits"]["email"].is_string(), "which fields were read: {read:#}");
    let all = ok(&get(s.addr, "/api/v1/audit?limit=1000", Some(&s.admin)));
    assert!(all["entries"].as_array().unwrap().iter().any(|e| e["action"] == "erase" && e["detail"]["request"].is_string()));
    let text = all.to_string().to_lowercase();
    // Her phone in the spellings used, not a bare "555", which hashes and times can hold.
    for spelling in ["ann.lee", "555 0134", "555-0134", "5550134"] {
        assert!(!text.contains(spelling), "the audit log holds no identifier ({spelling}): {all:#}");
    }
    assert_eq!(ok(&get(s.addr, "/api/v1/audit/verify", Some(&s.admin)))["ok"], true);
}
