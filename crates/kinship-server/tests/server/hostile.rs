//! A curious insider and a hostile client: expressions as an oracle, erasure that must reach
//! every copy, contact details hidden in URLs, slow and idle connections, huge error bodies.

use super::governance::{call, seed_ann, token};
use super::{ok, Server, RESOLVE_WAIT};
use crate::http::{self, get, post_json, wait_for_profile};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

fn preview(s: &Server, token: &str, expression: &str) -> http::Response {
    call(s.addr, "POST", "/api/v1/segments/preview", token, Some(&json!({ "expression": expression })))
}

#[test]
fn a_segment_preview_is_no_oracle_for_what_a_role_may_not_see() {
    let s = Server::start();
    seed_ann(&s);
    let marketer = token(&s, "marketer");
    let analyst = token(&s, "analyst");
    // What the probe did: one condition per guess on a field the role sees masked or not at all.
    let guesses = [
        (&marketer, "marketer", r#"traits.email == "ann.lee@example.com""#, "traits.email"),
        (&marketer, "marketer", r#"traits.email in ["ann.lee@example.com", "x@y.z"]"#, "traits.email"),
        (&analyst, "analyst", r#"traits.email == "ann.lee@example.com""#, "traits.email"),
        (&analyst, "analyst", r#"traits.phone == "+14155550134""#, "traits.phone"),
        (&marketer, "marketer", r#"count("Email Opened", contact == "ann.lee@example.com") > 0"#, "email"),
        // A trait the rules let through, compared with a quoted address: still a guess.
        (&marketer, "marketer", r#"traits.first_name == "ann.lee@example.com""#, "email"),
    ];
    for (token, role, expression, field) in guesses {
        let r = preview(&s, token, expression);
        assert_eq!(r.status, 403, "{role}: {expression}: {}", r.text());
        let reason = r.json()["error"].as_str().unwrap().to_string();
        assert!(reason.contains(field) && reason.contains(role), "the refusal names the field and the role: {reason}");
    }
    // What the role sees in clear it may count, but one person is not a count it is shown.
    let r = ok(&preview(&s, &marketer, r#"traits.first_name == "Ann""#));
    assert_eq!((r["count"].as_str(), r["sample"].as_array().map(Vec::len)), (Some("fewer than 5"), Some(0)), "{r}");
    assert_eq!(ok(&preview(&s, &marketer, "exists(traits.email)"))["count"], "fewer than 5");
    assert_eq!(ok(&preview(&s, &s.admin, r#"traits.first_name == "Ann""#))["count"], 1, "admin sees identities");
    // A group smaller than k cannot be listed either.
    let one = json!({"name": "just_ann", "expression": r#"traits.first_name == "Ann""#});
    assert_eq!(call(s.addr, "POST", "/api/v1/segments", &marketer, Some(&one)).status, 201);
    let members = get(s.addr, "/api/v1/segments/just_ann/members", Some(&marketer));
    assert_eq!(members.status, 403, "{}", members.text());
    assert_eq!(ok(&get(s.addr, "/api/v1/segments/just_ann/members", Some(&s.admin)))["size"], 1);
    // Defining, too, obeys the projection.
    let create = call(
        s.addr,
        "POST",
        "/api/v1/segments",
        &marketer,
        Some(&json!({"name": "one", "expression": r#"traits.phone == "+14155550134""#})),
    );
    assert_eq!(create.status, 403, "{}", create.text());

    // Every preview is audited, refused ones too, with the values redacted.
    let audit = ok(&get(s.addr, "/api/v1/audit?actor=token:test-marketer&limit=1000", Some(&s.admin)));
    let previews: Vec<&Value> =
        audit["entries"].as_array().unwrap().iter().filter(|e| e["action"].as_str().unwrap_or("").starts_with("segment.preview")).collect();
    assert_eq!(previews.len(), 6, "{audit:#}");
    assert!(previews.iter().any(|e| e["detail"]["expression"] == r#"traits.email == "<redacted>""#), "{audit:#}");
    let all = ok(&get(s.addr, "/api/v1/audit?limit=1000", Some(&s.admin))).to_string().to_lowercase();
    assert!(!all.contains("ann.lee@example.com") && !all.contains("4155550134"), "the audit log quotes no identifier");
}

#[test]
fn masking_reaches_emails_in_urls_and_phones_under_any_name() {
    let s = Server::start();
    let auth = s.basic("web");
    ok(&post_json(
        s.addr,
        "/v1/identify",
        Some(&auth),
        &json!({"userId": "u-amanda", "traits": {"email": "amanda.gonzalez@iinet.net.au", "mobile_number": "0412 345 678", "tel": "(08) 9123 4567", "cell": "+61 423 111 222"}, "messageId": "a-1"}),
    ));
    ok(&post_json(
        s.addr,
        "/v1/page",
        Some(&auth),
        &json!({"userId": "u-amanda", "name": "Signup", "messageId": "a-2",
                "properties": {"url": "https://shop.example/signup?email=amanda.gonzalez%40iinet.net.au&phone=0412345678",
                               "referrer": "https://mail.example/?to=AMANDA.GONZALEZ%2540IINET.NET.AU", "search": "?q=amanda.gonzalez%40iinet.net.au"}}),
    ));
    let view = wait_for_profile(s.addr, &s.admin, "user_id:u-amanda", RESOLVE_WAIT, |v| !http::event_names(v).is_empty());
    let id = view["id"].as_str().unwrap().to_string();
    for role in ["marketer", "analyst"] {
        let secret = token(&s, role);
        let body = ok(&get(s.addr, &format!("/api/v1/profiles/{id}"), Some(&secret))).to_string().to_lowercase();
        let digits: String = body.chars().filter(char::is_ascii_digit).collect();
        for leak in ["amanda.gonzalez@iinet", "amanda.gonzalez%40", "amanda.gonzalez%2540"] {
            assert!(!body.contains(leak), "{role} got {leak}: {body}");
        }
        for number in ["412345678", "91234567", "423111222"] {
            assert!(!digits.contains(number), "{role} got {number}: {body}");
        }
    }
}

/// Every file under `dir`, recursively.
fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files(&path, out);
        } else {
            out.push(path);
        }
    }
}

#[test]
fn erasure_reaches_definitions_audit_details_reject_files_and_scheduled_pulls() {
    let sources = tempfile::tempdir().unwrap();
    let csv = sources.path().join("crm.csv");
    // Ann's good row, a row of hers that cannot be mapped (no id), a line that is not CSV at
    // all naming her, and someone else's bad row.
    std::fs::write(
        &csv,
        "id,email,city\nc1,zara.zhang@example.com,Perth\n,zara.zhang@example.com,Perth\n,bob@example.com,Perth\nc3,\"unterminated Zara zara.zhang@example.com\n",
    )
    .unwrap();
    let s = Server::with_config(&format!(
        r#"
[sources.crm]
type = "csv"
path = "{}"
key = "id"
schedule = "1s"
identifiers = {{ email = "email" }}
traits = {{ city = "city", email = "email" }}
"#,
        csv.display()
    ));
    wait_for_profile(s.addr, &s.admin, "email:zara.zhang@example.com", RESOLVE_WAIT, |_| true);
    let segment = json!({"name": "zara", "expression": r#"traits.email == "Zara.Zhang@example.com" or traits.city == "Hobart""#});
    assert_eq!(call(s.addr, "POST", "/api/v1/segments", &s.admin, Some(&segment)).status, 201);
    // Until flows exist, a computed trait stands in for the next thing that keeps an expression.
    let computed = json!({"name": "is_zara", "expression": r#"traits.email in ["zara.zhang@example.com", "nobody@example.com"]"#});
    assert_eq!(call(s.addr, "POST", "/api/v1/computed-traits", &s.admin, Some(&computed)).status, 201);

    let report =
        ok(&post_json(s.addr, "/api/v1/privacy/erasure", Some(&http::bearer(&s.admin)), &json!({"email": "zara.zhang@example.com"})));
    let mut rewritten: Vec<&str> = report["definitions_rewritten"].as_array().unwrap().iter().filter_map(|d| d["name"].as_str()).collect();
    rewritten.sort_unstable();
    assert_eq!(rewritten, ["is_zara", "zara"], "{report}");
    let listed = ok(&get(s.addr, "/api/v1/computed-traits", Some(&s.admin)));
    assert_eq!(listed["computed_traits"][0]["expression"], r#"traits.email in ["<erased>", "nobody@example.com"]"#, "{listed}");
    let shown = ok(&get(s.addr, "/api/v1/segments/zara", Some(&s.admin)));
    assert_eq!(shown["expression"], r#"traits.email == "<erased>" or traits.city == "Hobart""#, "{shown}");
    assert!(shown["note"].as_str().is_some_and(|n| n.contains("erasure")), "the definer is told: {shown}");

    // A re-run by hand and two scheduled pulls read her rows again.
    let run = ok(&call(s.addr, "POST", "/api/v1/sources/crm/run", &s.admin, None));
    assert!(run["suppressed"].as_u64().unwrap() >= 2, "{run}");
    std::thread::sleep(Duration::from_millis(2500));

    let mut written = Vec::new();
    files(s._dir.path(), &mut written);
    let rejects = written.iter().find(|p| p.to_string_lossy().contains("rejects")).expect("bob's row was rejected");
    assert!(std::fs::read_to_string(rejects).unwrap().contains("bob@example.com"));
    for path in &written {
        let bytes = std::fs::read(path).unwrap().to_ascii_lowercase();
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains("zara.zhang@example.com") && !text.contains("zara.zhang"), "{} still holds her", path.display());
    }
    // On PostgreSQL the log is in the database, not the data directory.
    let all = ok(&get(s.addr, "/api/v1/audit?limit=1000", Some(&s.admin))).to_string().to_lowercase();
    assert!(!all.contains("zara.zhang"), "{all}");
}

#[test]
fn a_batch_of_bad_items_gets_a_bounded_answer() {
    let s = Server::start();
    let items: Vec<Value> = (0..100_000).map(|_| json!({})).collect();
    let r = post_json(s.addr, "/v1/batch", Some(&s.basic("web")), &json!({ "batch": items }));
    assert_eq!(r.status, 400);
    assert!(r.body.len() < 8 * 1024, "{} bytes", r.body.len());
    let body = r.json();
    assert_eq!((body["rejected_total"].as_u64(), body["rejected"].as_array().map(Vec::len)), (Some(100_000), Some(20)));
}

/// Milliseconds `/healthz` takes on a new connection.
fn healthz_ms(s: &Server) -> u128 {
    let started = Instant::now();
    let r = get(s.addr, "/healthz", None);
    assert_eq!(r.status, 200, "{}", r.text());
    started.elapsed().as_millis()
}

#[test]
fn slow_and_idle_clients_cannot_take_the_server_down() {
    let s = Server::with_config("[server]\nheader_timeout_secs = 1\nidle_timeout_secs = 2\nmax_connections = 64\n");
    let connect = || TcpStream::connect(s.addr).unwrap();
    // Slowloris: a request line, then a header line now and then, never finished.
    let mut slow: Vec<TcpStream> = (0..20)
        .map(|_| {
            let mut stream = connect();
            stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").unwrap();
            stream
        })
        .collect();
    // Idle sockets, more than the cap allows.
    let idle: Vec<TcpStream> = (0..100).map(|_| connect()).collect();
    let started = Instant::now();
    let mut worst = 0;
    while started.elapsed() < Duration::from_millis(2500) {
        for stream in &mut slow {
            let _ = stream.write_all(b"X-Slow: 1\r\n");
        }
        worst = worst.max(healthz_ms(&s));
        // A valid collection request from the crowd's neighbour is served too.
        assert_eq!(post_json(s.addr, "/v1/track", Some(&s.basic("web")), &json!({"userId": "u", "event": "E"})).status, 200);
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(worst < 100, "healthz took {worst} ms beside slow and idle clients");
    // Both kinds were disconnected: reading gets end of file (or a reset), not a hang.
    for mut stream in slow.into_iter().chain(idle) {
        stream.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let mut buf = [0u8; 512];
        match stream.read(&mut buf) {
            Ok(0) => {}
            Err(e) => assert!(!matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut), "still open: {e}"),
            // A connection refused at the cap is told so first.
            Ok(n) => assert!(String::from_utf8_lossy(&buf[..n]).contains("503"), "{}", String::from_utf8_lossy(&buf[..n])),
        }
    }
}

/// What a role must never receive, in the forms it could arrive in.
struct Secret {
    /// Lower-case text that must not appear in the body.
    texts: Vec<String>,
    /// Digits that must not appear in the body's digits run together.
    digits: Vec<String>,
}

fn secret_for(role: &str) -> Secret {
    let contact = || Secret {
        texts: vec![
            "maria.ortiz+shop@example.com".into(),
            "maria.ortiz%2bshop%40example.com".into(),
            "maria.ortiz%252bshop%2540example.com".into(),
            "ortiz+shop@".into(),
        ],
        digits: vec!["412777888".into(), "95551234".into(), "433222111".into()],
    };
    match role {
        "marketer" => contact(),
        "analyst" => {
            let mut s = contact();
            s.texts.extend(["1971-07-09".to_string(), "ortiz".to_string()]);
            s
        }
        "support" | "viewer" => Secret { texts: vec!["987.125".into()], digits: vec![] },
        "sales" => Secret { texts: vec!["987.125".into(), "vip-secret-xyz".into()], digits: vec![] },
        other => panic!("no secrets listed for {other}"),
    }
}

/// Role × route × field × encoding: Maria's contact details in every encoding and place, a
/// marketing score, an internal note and a birth date; every non-admin role calls every
/// route it may (and previews a condition on every field), and no answer holds what the
/// role may not see.
#[test]
fn no_answer_to_a_non_admin_role_holds_a_value_it_may_not_see() {
    let s = Server::start();
    let auth = s.basic("web");
    ok(&post_json(
        s.addr,
        "/v1/identify",
        Some(&auth),
        &json!({"userId": "u-maria", "messageId": "m-1", "traits": {
            "email": "Maria.Ortiz+shop@Example.com", "first_name": "Maria", "last_name": "Ortiz", "phone": "+61 412 777 888",
            "tel": "(02) 9555 1234", "mobile_number": "0433 222 111", "contact_pref": "MARIA.ORTIZ+SHOP@EXAMPLE.COM",
            "lead_score": 987.125, "internal_note": "vip-secret-xyz", "birth_date": "1971-07-09", "city": "Perth"}}),
    ));
    ok(&post_json(
        s.addr,
        "/v1/page",
        Some(&auth),
        &json!({"userId": "u-maria", "name": "Signup", "messageId": "m-2", "properties": {
            "url": "https://shop.example/signup?email=maria.ortiz%2Bshop%40example.com&tel=%2B61412777888",
            "referrer": "https://mail.example/?to=maria.ortiz%252Bshop%2540example.com", "search": "call 0433-222-111"}}),
    ));
    ok(&post_json(
        s.addr,
        "/v1/track",
        Some(&auth),
        &json!({"userId": "u-maria", "event": "Order Completed", "messageId": "m-3",
                "properties": {"total": 10, "billing_contact": "Maria.Ortiz+shop@example.com / 0412 777 888"}}),
    ));
    let view = wait_for_profile(s.addr, &s.admin, "user_id:u-maria", RESOLVE_WAIT, |v| http::event_names(v).len() == 2);
    let id = view["id"].as_str().unwrap().to_string();
    assert_eq!(
        call(s.addr, "POST", "/api/v1/segments", &s.admin, Some(&json!({"name": "perth", "expression": "traits.city == \"Perth\""})))
            .status,
        201
    );
    assert_eq!(
        call(
            s.addr,
            "POST",
            "/api/v1/computed-traits",
            &s.admin,
            Some(&json!({"name": "orders", "expression": "count(\"Order Completed\")"}))
        )
        .status,
        201
    );

    let reads = [
        format!("/api/v1/profiles/{id}"),
        format!("/api/v1/profiles/{id}/explain"),
        "/api/v1/profiles?q=Maria".to_string(),
        "/api/v1/profiles?email=maria.ortiz%2Bshop@example.com".to_string(),
        "/api/v1/profiles?phone=%2B61412777888".to_string(),
        "/api/v1/segments".to_string(),
        "/api/v1/segments/perth".to_string(),
        "/api/v1/segments/perth/members".to_string(),
        "/api/v1/computed-traits".to_string(),
        "/api/v1/sources".to_string(),
        format!("/api/v1/privacy/export?profile={id}"),
        "/api/v1/audit?limit=1000".to_string(),
    ];
    let conditions = [
        "traits.email == \"maria.ortiz+shop@example.com\"",
        "traits.email starts_with \"m\"",
        "traits.phone == \"+61412777888\"",
        "traits.tel == \"(02) 9555 1234\"",
        "traits.mobile_number == \"0433 222 111\"",
        "traits.contact_pref == \"x\"",
        "traits.birth_date == \"1971-07-09\"",
        "traits.last_name == \"x\"",
        "traits.lead_score > 900",
        "traits.internal_note == \"vip-secret-xyz\"",
        "count(\"page\", url starts_with \"https://shop.example/signup?email=m\") > 0",
        "count(\"Order Completed\", billing_contact == \"x\") > 0",
        "traits.city == \"Perth\"",
    ];
    let mut checked = 0;
    for role in ["support", "sales", "marketer", "analyst", "viewer"] {
        let secret = secret_for(role);
        let secret_token = token(&s, role);
        let mut answers: Vec<(String, bool, http::Response)> =
            reads.iter().map(|path| (path.clone(), false, get(s.addr, path, Some(&secret_token)))).collect();
        for condition in conditions {
            answers.push((condition.to_string(), true, preview(&s, &secret_token, condition)));
        }
        for (what, is_preview, answer) in answers {
            let body = answer.text().to_lowercase();
            let digits: String = body.chars().filter(char::is_ascii_digit).collect();
            for text in &secret.texts {
                assert!(!body.contains(text.as_str()), "{role} {what} ({}): {text} in {body}", answer.status);
            }
            for number in &secret.digits {
                assert!(!digits.contains(number.as_str()), "{role} {what} ({}): {number} in {body}", answer.status);
            }
            // A preview the role may run shows a count it may see: one person is "fewer than 5".
            if is_preview && answer.status == 200 && ["marketer", "analyst"].contains(&role) {
                let count = answer.json()["count"].clone();
                assert!(count == 0 || count == "fewer than 5", "{role} {what}: count {count}");
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 5 * (reads.len() + conditions.len()));
}
