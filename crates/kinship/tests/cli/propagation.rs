//! Several processes, one truth: what the command line changes while `kinship serve` runs (a
//! segment defined, a person erased, a token revoked) reaches the running server through
//! the change feed within a second, without a restart.

use super::http::{basic, get, post_json, wait_for_profile};
use super::{Data, Serve, run, store_of};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// How soon another process's change must show: the feed is polled five times a second.
const WITHIN: Duration = Duration::from_secs(1);

/// Polls `probe` until it returns true; returns how long that took, or fails after `WITHIN`.
fn within_a_second(what: &str, mut probe: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    loop {
        if probe() {
            return started.elapsed();
        }
        assert!(started.elapsed() < WITHIN, "{what}: not seen within {WITHIN:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn order(addr: SocketAddr, key: &str, user: &str, id: &str) {
    let r = post_json(
        addr,
        "/v1/track",
        Some(&basic(key)),
        &json!({ "userId": user, "event": "Order Completed", "messageId": id, "properties": { "total": 10 } }),
    );
    assert_eq!(r.status, 200, "{}", r.text());
}

fn segment(addr: SocketAddr, token: &str, name: &str) -> (u16, Value) {
    let r = get(addr, &format!("/api/v1/segments/{name}"), Some(token));
    let body = if r.status == 200 { r.json() } else { Value::Null };
    (r.status, body)
}

#[test]
fn what_the_command_line_changes_reaches_a_running_server_within_a_second() {
    let data = Data::new(&["web"]);
    let dir = data.dir.path();
    let server = Serve::start(&data);
    let (addr, key, token) = (server.addr, data.keys["web"].clone(), data.token.clone());
    // Bob orders twice, Ann once; both resolved before anything is defined.
    order(addr, &key, "bob", "o-1");
    order(addr, &key, "bob", "o-2");
    order(addr, &key, "ann", "o-3");
    let bob =
        wait_for_profile(addr, &token, "user_id:bob", Duration::from_secs(10), |v| v["events"].as_array().is_some_and(|e| e.len() == 2));
    let bob_id = bob["id"].as_str().expect("bob's profile").to_string();
    let ann = wait_for_profile(addr, &token, "user_id:ann", Duration::from_secs(10), |v| v["id"].is_string());
    let ann_id = ann["id"].as_str().expect("ann's profile").to_string();

    // A segment defined by another process: the server evaluates it, and keeps it current.
    let (ok, out, err) = run(dir, &["segment", "create", "repeat_buyers", r#"count("Order Completed") >= 2"#]);
    assert!(ok, "{err}");
    assert!(out.contains("repeat_buyers: 1 of"), "{out}");
    let took = within_a_second("the CLI's segment on the server", || segment(addr, &token, "repeat_buyers").1["size"] == 1);
    eprintln!("segment defined by the CLI seen after {took:?}");
    order(addr, &key, "ann", "o-4");
    // Stored as a member (exports read this) and counted in the server's audience.
    let took = within_a_second("Ann's second order entering the CLI's segment", || {
        let stored = store_of(dir).segment_members("repeat_buyers", 0, 10).unwrap();
        stored.contains(&ann_id) && segment(addr, &token, "repeat_buyers").1["size"] == 2
    });
    eprintln!("membership after the event changed within {took:?}");

    // A person erased by another process leaves the server's audience.
    let (ok, _, err) = run(dir, &["erase", "--profile", &bob_id]);
    assert!(ok, "{err}");
    let took = within_a_second("the CLI's erasure in the server's segment", || segment(addr, &token, "repeat_buyers").1["size"] == 1);
    eprintln!("erasure seen after {took:?}");
    let preview = post_json(addr, "/api/v1/segments/preview", Some(&format!("Bearer {token}")), &json!({ "expression": "true" }));
    assert_eq!(preview.json()["count"], 1, "only Ann is left in memory: {}", preview.text());

    // A segment deleted by another process is gone from the server.
    assert!(run(dir, &["segment", "delete", "repeat_buyers"]).0);
    within_a_second("the CLI's deletion on the server", || segment(addr, &token, "repeat_buyers").0 == 404);

    // A token revoked by another process stops working.
    let (ok, temporary, err) = run(dir, &["token", "create", "--name", "temporary", "--role", "admin"]);
    assert!(ok, "{err}");
    let temporary = temporary.lines().last().expect("the token").trim().to_string();
    assert_eq!(get(addr, "/api/v1/segments", Some(&temporary)).status, 200);
    assert!(run(dir, &["token", "revoke", "temporary"]).0);
    let took = within_a_second("the CLI's revocation on the server", || get(addr, "/api/v1/segments", Some(&temporary)).status == 401);
    eprintln!("revocation seen after {took:?}");
    assert_eq!(get(addr, "/api/v1/segments", Some(&token)).status, 200, "other tokens still work");
}
