//! The web UI over HTTP: pages need a session, the session cookie is HttpOnly and
//! SameSite=Strict, every form needs the session's CSRF token, and a page follows the
//! role exactly as the API does. (The browser test is in crates/kinship/tests/cli/web_ui.rs.)

use super::Server;
use crate::http::{request, Response};

fn form(s: &Server, path: &str, cookie: &str, body: &str) -> Response {
    let headers = [("Content-Type", "application/x-www-form-urlencoded"), ("Cookie", cookie)];
    request(s.addr, "POST", path, &headers, body.as_bytes()).unwrap()
}

fn page(s: &Server, path: &str, cookie: &str) -> Response {
    request(s.addr, "GET", path, &[("Cookie", cookie)], b"").unwrap()
}

/// The value of `name="csrf" value="..."` in a page.
fn csrf(html: &str) -> String {
    let at = html.find(r#"name="csrf" value=""#).expect("the page has a CSRF field") + r#"name="csrf" value=""#.len();
    html[at..].split('"').next().unwrap().to_string()
}

/// The `name=value` of a `Set-Cookie` header, and the header itself.
fn set_cookie(r: &Response, name: &str) -> (String, String) {
    let header = r
        .headers
        .iter()
        .find(|(k, v)| k.eq_ignore_ascii_case("set-cookie") && v.starts_with(&format!("{name}=")))
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| panic!("no {name} cookie in {:?}", r.headers));
    (header.split(';').next().unwrap().to_string(), header)
}

/// Signs in with a user name and password; returns the session cookie.
fn sign_in(s: &Server, credentials: &str) -> Response {
    let form_page = page(s, "/signin", "");
    let (signin_cookie, _) = set_cookie(&form_page, "kinship_signin");
    let body = format!("{credentials}&csrf={}", csrf(&form_page.text()));
    form(s, "/signin", &signin_cookie, &body)
}

#[test]
fn pages_need_a_session_and_forms_the_sessions_csrf_token() {
    let s = Server::start();
    let mut store = s.db();
    store.set_user("alice", "admin", &kinship_server::auth::hash_password("correct horse battery")).unwrap();
    drop(store);

    let anonymous = page(&s, "/connections", "");
    assert_eq!(anonymous.status, 303);
    assert_eq!(anonymous.header("location"), Some("/signin?next=%2Fconnections"));

    assert_eq!(sign_in(&s, "name=alice&password=wrong+horse").status, 401);
    let forged = form(&s, "/signin", "kinship_signin=a", "name=alice&password=correct+horse+battery&csrf=b");
    assert_eq!(forged.status, 403, "a sign-in form not served by this site is refused");

    let signed_in = sign_in(&s, "name=alice&password=correct+horse+battery");
    assert_eq!(signed_in.status, 303, "{}", signed_in.text());
    let (session, header) = set_cookie(&signed_in, "kinship_session");
    assert!(header.contains("HttpOnly") && header.contains("SameSite=Strict"), "{header}");
    assert!(!header.contains("Secure"), "plain http on loopback: Secure is off unless server.secure_cookies");

    let connections = page(&s, "/connections", &session);
    assert_eq!(connections.status, 200);
    let html = connections.text();
    assert!(html.contains("legacy"), "every source is listed");
    assert!(connections.header("content-security-policy").is_some_and(|c| c.contains("script-src 'self'")));
    let token = csrf(&html);

    let without = form(&s, "/connections/web/switch", &session, "on=false&csrf=not-the-token");
    assert_eq!(without.status, 403, "a form without the session's CSRF token is refused");
    assert!(page(&s, "/connections", &session).text().contains(r#"aria-checked="true" aria-label="web on""#));
    let with = form(&s, "/connections/web/switch", &session, &format!("on=false&csrf={token}"));
    assert_eq!(with.status, 303);
    let after = page(&s, "/connections", &session);
    let html = after.text();
    assert!(html.contains(r#"aria-checked="false" aria-label="web on""#), "status {}: {html}", after.status);

    let signed_out = form(&s, "/signout", &session, &format!("csrf={token}"));
    assert_eq!(signed_out.status, 303);
    assert_eq!(page(&s, "/connections", &session).status, 303, "the session ended");
}

#[test]
fn a_page_follows_the_role_like_the_api() {
    let s = Server::start();
    // A viewer signs in with its API token: it may read sources but not switch them, and
    // the audit viewer is refused like GET /api/v1/audit.
    let signed_in = sign_in(&s, &format!("token={}", s.viewer));
    assert_eq!(signed_in.status, 303, "{}", signed_in.text());
    let (session, _) = set_cookie(&signed_in, "kinship_session");
    let connections = page(&s, "/connections", &session).text();
    assert!(!connections.contains("/switch"), "no switch for a role that may not manage sources");
    assert!(!connections.contains(r#"href="/audit""#), "no audit link for a viewer");
    assert_eq!(page(&s, "/audit", &session).status, 403);
    let token = csrf(&connections);
    assert_eq!(form(&s, "/connections/web/switch", &session, &format!("on=false&csrf={token}")).status, 403);
}

#[test]
fn a_user_given_another_role_by_another_process_is_signed_out_within_a_second() {
    let s = Server::start();
    let mut store = s.db();
    store.set_user("alice", "admin", &kinship_server::auth::hash_password("correct horse battery")).unwrap();
    let signed_in = sign_in(&s, "name=alice&password=correct+horse+battery");
    let (session, _) = set_cookie(&signed_in, "kinship_session");
    assert_eq!(page(&s, "/audit", &session).status, 200, "an admin reads the audit log");
    // Another process (here the test's own connection, as `kinship user create` would)
    // makes her a viewer: her session, which holds the admin role, must end.
    store.set_user("alice", "viewer", &kinship_server::auth::hash_password("correct horse battery")).unwrap();
    let started = std::time::Instant::now();
    while page(&s, "/connections", &session).status != 303 {
        assert!(started.elapsed() < std::time::Duration::from_secs(1), "the admin session outlived the role change");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let again = sign_in(&s, "name=alice&password=correct+horse+battery");
    let (session, _) = set_cookie(&again, "kinship_session");
    assert_eq!(page(&s, "/audit", &session).status, 403, "signed in again, she is a viewer");
}

#[test]
fn a_session_signed_in_with_a_token_ends_when_the_token_is_revoked() {
    let s = Server::start();
    let created = crate::ok(&crate::governance::call(
        s.addr,
        "POST",
        "/api/v1/tokens",
        &s.admin,
        Some(&serde_json::json!({"name": "kiosk", "role": "support"})),
    ));
    let kiosk = created["token"].as_str().unwrap().to_string();
    let signed_in = sign_in(&s, &format!("token={kiosk}"));
    assert_eq!(signed_in.status, 303, "{}", signed_in.text());
    let (session, _) = set_cookie(&signed_in, "kinship_session");
    assert_eq!(page(&s, "/connections", &session).status, 200);
    let revoked = crate::governance::call(s.addr, "DELETE", "/api/v1/tokens/kiosk", &s.admin, None);
    assert_eq!(revoked.status, 200, "{}", revoked.text());
    let after = page(&s, "/connections", &session);
    assert_eq!(after.status, 303, "a revoked token's session is over");
    assert!(after.header("location").is_some_and(|l| l.starts_with("/signin")));
}

/// A native case through the pages: opened from the customer's 360, answered with an
/// internal note, shown with its clocks and conversation, and reached from the queue.
#[test]
fn a_native_case_is_opened_from_the_360_and_answered_on_its_page() {
    let s = Server::with_config("\n[service]\nsource = \"app\"\n");
    let mut store = s.db();
    store.set_user("sam", "support", &kinship_server::auth::hash_password("correct horse battery")).unwrap();
    drop(store);
    let auth = s.basic("web");
    super::ok(&crate::http::post_json(
        s.addr,
        "/v1/identify",
        Some(&auth),
        &serde_json::json!({"userId": "u-web", "traits": {"name": "Wen"}, "messageId": "web-id"}),
    ));
    let view = crate::http::wait_for_profile(s.addr, &s.admin, "user_id:u-web", super::RESOLVE_WAIT, |v| v["traits"]["name"] == "Wen");
    let profile = view["id"].as_str().unwrap().to_string();

    let (session, _) = set_cookie(&sign_in(&s, "name=sam&password=correct+horse+battery"), "kinship_session");
    let person = page(&s, &format!("/profiles/{profile}"), &session).text();
    assert!(person.contains("Open a case for this customer"), "support may open cases");
    let token = csrf(&person);
    let opened = form(&s, &format!("/profiles/{profile}/cases"), &session, &format!("csrf={token}&subject=Lost+parcel&priority=high"));
    assert_eq!(opened.status, 303, "{}", opened.text());
    let at = opened.header("location").unwrap().to_string();
    assert!(at.starts_with("/cases/app/K-"), "{at}");
    let replied = form(&s, &format!("{at}/reply"), &session, &format!("csrf={token}&body=Called+the+carrier&internal=yes"));
    assert_eq!(replied.status, 303, "{}", replied.text());
    let shown = page(&s, &at, &session).text();
    assert!(shown.contains("Lost parcel") && shown.contains("Called the carrier") && shown.contains("internal note"), "{shown}");
    assert!(shown.contains("SLA clocks"));
    let queue = page(&s, "/cases", &session).text();
    assert!(queue.contains(&format!(r#"href="{at}""#)), "the queue links to the case");
}
