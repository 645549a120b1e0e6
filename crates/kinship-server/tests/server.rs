//! HTTP-level tests of `kinship serve`, run in process: each test starts the real server
//! (`kinship_server::serve`) on 127.0.0.1:0 over a fresh SQLite file in a temporary data
//! directory, and talks to it over loopback with a plain HTTP/1.1 client.
//!
//! Process-level tests (the official SDKs, kill -9, SIGTERM, two nodes on one NATS stream) are in
//! crates/kinship/tests/cli.rs.

#[path = "support/http.rs"]
mod http;

#[path = "server/accounts.rs"]
mod accounts;
#[path = "server/cases.rs"]
mod cases;
#[path = "server/deals.rs"]
mod deals;
#[path = "server/flows.rs"]
mod flows;
#[path = "server/governance.rs"]
mod governance;
#[path = "server/hostile.rs"]
mod hostile;
#[path = "server/measures.rs"]
mod measures;
#[path = "server/nats.rs"]
mod nats;
#[path = "server/scheduled_pulls.rs"]
mod scheduled_pulls;
#[path = "server/success.rs"]
mod success;
#[path = "server/web.rs"]
mod web;

use http::{basic, event_names, get, identifier_keys, post_json, request, wait_for_profile};
use kinship_store::Database;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

const RESOLVE_WAIT: Duration = Duration::from_secs(10);

/// A running server over its own data directory; shut down cleanly on drop.
struct Server {
    addr: SocketAddr,
    /// The data directory (keys, anchor), removed when the server is dropped.
    _dir: tempfile::TempDir,
    /// The store: a SQLite file in `dir`, or a fresh PostgreSQL database when the suite
    /// runs with `KINSHIP_TEST_BACKEND=postgres`.
    database: String,
    admin: String,
    viewer: String,
    keys: HashMap<&'static str, String>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<(), kinship_server::ServerError>>>,
}

const CONFIG: &str = r#"
[sources.web]
type = "segment"

[sources.app]
type = "segment"

[sources.legacy]
type = "segment"
enabled = false
"#;

impl Server {
    fn start() -> Self {
        Self::with_config("")
    }

    /// A server whose kinship.toml has `extra` after the test sources.
    fn with_config(extra: &str) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        std::fs::write(dir.path().join("kinship.toml"), format!("{CONFIG}{extra}")).unwrap();
        let database = kinship_testkit::database_for(dir.path());
        let mut store = kinship_store::open(&database).expect("database opens");
        let mut keys = HashMap::new();
        for source in ["web", "app", "legacy"] {
            let key = kinship_server::auth::new_secret("wk_");
            store.set_write_key(source, &kinship_server::auth::hash_secret(&key)).unwrap();
            keys.insert(source, key);
        }
        let admin = kinship_server::auth::new_secret("kt_");
        let viewer = kinship_server::auth::new_secret("kt_");
        store.add_token("test-admin", "admin", &kinship_server::auth::hash_secret(&admin)).unwrap();
        store.add_token("test-viewer", "viewer", &kinship_server::auth::hash_secret(&viewer)).unwrap();
        drop(store);

        let config = kinship_core::Config::load(dir.path()).expect("kinship.toml loads");
        let options = kinship_server::ServeOptions {
            data_dir: dir.path().to_path_buf(),
            database: database.clone(),
            config,
            bind: "127.0.0.1:0".into(),
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (listening, addr) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
            runtime.block_on(kinship_server::serve(
                options,
                async {
                    let _ = stopped.await;
                },
                move |a| listening.send(a).unwrap(),
            ))
        });
        let addr = addr.recv_timeout(Duration::from_secs(30)).expect("the server listens");
        Server { addr, _dir: dir, database, admin, viewer, keys, stop: Some(stop), thread: Some(thread) }
    }

    fn key(&self, source: &str) -> String {
        self.keys[source].clone()
    }

    fn basic(&self, source: &str) -> String {
        basic(&self.keys[source])
    }

    /// A connection to the server's store.
    fn db(&self) -> Box<dyn Database> {
        kinship_store::open(&self.database).expect("the store opens")
    }

    /// Record keys stored for a source, with how often each occurs.
    fn stored_keys(&self, source: &str) -> HashMap<String, i64> {
        let mut counts = HashMap::new();
        self.db()
            .scan_records(&mut |r| {
                if r.source == source {
                    *counts.entry(r.key.to_string()).or_insert(0) += 1;
                }
            })
            .unwrap();
        counts
    }

    fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
            self.thread.take().unwrap().join().expect("server thread does not panic").expect("server stops cleanly");
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            self.shutdown();
        } else if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn ok(r: &http::Response) -> Value {
    assert_eq!(r.status, 200, "expected 200, got {}: {}", r.status, r.text());
    r.json()
}

#[test]
fn every_call_type_is_accepted_and_lands_on_the_profile() {
    let s = Server::start();
    let auth = s.basic("web");
    let a = s.addr;

    // An anonymous visitor, with the write key as HTTP Basic user.
    ok(&post_json(
        a,
        "/v1/page",
        Some(&auth),
        &json!({"anonymousId": "anon-1", "name": "Home", "properties": {"path": "/"}, "messageId": "m-page-1", "timestamp": "2024-05-01T10:00:00Z"}),
    ));
    ok(&post_json(
        a,
        "/v1/track",
        Some(&auth),
        &json!({"anonymousId": "anon-1", "event": "Product Viewed", "properties": {"sku": "S-1"}, "messageId": "m-track-1", "timestamp": "2024-05-01T10:01:00Z"}),
    ));
    ok(&post_json(
        a,
        "/v1/screen",
        Some(&auth),
        &json!({"anonymousId": "anon-1", "name": "Cart", "messageId": "m-screen-1", "timestamp": "2024-05-01T10:01:30Z"}),
    ));
    // The write key in the body instead.
    ok(&post_json(
        a,
        "/v1/identify",
        None,
        &json!({"writeKey": s.key("web"), "userId": "user-1", "anonymousId": "anon-1", "traits": {"email": "Ann@Example.com", "name": "Ann Lee"}, "messageId": "m-identify-1", "timestamp": "2024-05-01T10:02:00Z"}),
    ));
    ok(&post_json(
        a,
        "/v1/group",
        Some(&auth),
        &json!({"userId": "user-1", "groupId": "acme", "traits": {"name": "Acme"}, "messageId": "m-group-1"}),
    ));
    ok(&post_json(a, "/v1/alias", Some(&auth), &json!({"userId": "user-1", "previousId": "old-anon-9", "messageId": "m-alias-1"})));
    // A batch with a top-level context, and a message type per item.
    let batch = ok(&post_json(
        a,
        "/v1/batch",
        Some(&auth),
        &json!({
            "context": {"library": {"name": "test"}},
            "batch": [
                {"type": "track", "userId": "user-1", "event": "Order Completed", "properties": {"total": 99.5}, "messageId": "m-batch-1", "timestamp": "2024-05-01T10:05:00Z"},
                {"type": "page", "userId": "user-1", "name": "Thanks", "messageId": "m-batch-2", "timestamp": "2024-05-01T10:06:00Z"},
            ]
        }),
    ));
    assert_eq!(batch["accepted"], 2);

    // Everything is on one profile, found by user id, by email, and by the old anonymous id.
    let view = wait_for_profile(a, &s.admin, "user_id:user-1", RESOLVE_WAIT, |v| {
        event_names(v).len() >= 5 && identifier_keys(v).iter().any(|k| k.starts_with("anonymous_id:old-anon-9"))
    });
    let names = event_names(&view);
    assert_eq!(names, ["Page Viewed", "Order Completed", "Screen Viewed", "Product Viewed", "Page Viewed"], "newest first: {view:#}");
    let first = &view["events"][0];
    assert_eq!(first["source"], "web");
    assert_eq!(first["timestamp"], "2024-05-01T10:06:00.000Z");
    assert_eq!(view["events"][1]["properties"]["total"], 99.5);
    assert_eq!(view["traits"]["name"], "Ann Lee", "{view:#}");
    let ids = identifier_keys(&view);
    for want in ["user_id:user-1", "anonymous_id:anon-1", "anonymous_id:old-anon-9", "email:ann@example.com"] {
        assert!(ids.iter().any(|k| k == want), "{want} missing from {ids:?}");
    }
    assert!(view["identifiers"].as_array().unwrap().iter().all(|i| i["source"] == "web"));
    assert_eq!(view["records"].as_array().unwrap().len(), 8, "every message is a record of the profile");
    // The batch context was merged into its items.
    let rec = view["records"].as_array().unwrap().iter().find(|r| r["key"] == "m-batch-1").expect("batch record");
    let payload: Value = match &rec["payload"] {
        Value::String(s) => serde_json::from_str(s).unwrap(),
        other => other.clone(),
    };
    assert_eq!(payload["context"]["library"]["name"], "test", "{payload}");

    // The same profile through the other lookups.
    let id = view["id"].as_str().unwrap();
    for q in ["email=ann@example.com", "identifier=anonymous_id:anon-1", "q=ann%20lee"] {
        let found = ok(&get(a, &format!("/api/v1/profiles?{q}"), Some(&s.viewer)));
        let ids: Vec<&str> = found["profiles"].as_array().unwrap().iter().filter_map(|p| p["id"].as_str()).collect();
        assert_eq!(ids, [id], "lookup {q}");
    }
    // Events are paged.
    let page = ok(&get(a, &format!("/api/v1/profiles/{id}?limit=2&offset=1"), Some(&s.admin)));
    assert_eq!(event_names(&page), ["Order Completed", "Screen Viewed"]);
    assert_eq!(page["events_total"], 5);
    assert_eq!(get(a, "/api/v1/profiles/no-such-profile", Some(&s.viewer)).status, 404);
}

#[test]
fn anonymous_history_is_stitched_to_the_user_on_identify() {
    let s = Server::start();
    let auth = s.basic("web");
    let a = s.addr;
    // The anonymous events are resolved first, into their own profile.
    for (i, event) in ["Search", "Product Viewed", "Added To Cart"].iter().enumerate() {
        ok(&post_json(
            a,
            "/v1/track",
            Some(&auth),
            &json!({"anonymousId": "anon-77", "event": event, "messageId": format!("anon-{i}"), "timestamp": format!("2024-06-01T09:0{i}:00Z")}),
        ));
    }
    let anon = wait_for_profile(a, &s.admin, "anonymous_id:anon-77", RESOLVE_WAIT, |v| event_names(v).len() == 3);
    assert_eq!(event_names(&anon).len(), 3, "{anon:#}");
    // A known user, with history of their own, on another source.
    ok(&post_json(
        a,
        "/v1/track",
        Some(&s.basic("app")),
        &json!({"userId": "u-77", "event": "App Opened", "messageId": "app-1", "timestamp": "2024-05-01T00:00:00Z"}),
    ));
    wait_for_profile(a, &s.admin, "user_id:u-77", RESOLVE_WAIT, |v| event_names(v).len() == 1);
    // The identify carrying both ids joins the two histories.
    ok(&post_json(
        a,
        "/v1/identify",
        Some(&auth),
        &json!({"userId": "u-77", "anonymousId": "anon-77", "traits": {"email": "bo@example.com"}, "messageId": "id-77", "timestamp": "2024-06-01T09:10:00Z"}),
    ));
    let view = wait_for_profile(a, &s.admin, "user_id:u-77", RESOLVE_WAIT, |v| event_names(v).len() == 4);
    assert_eq!(event_names(&view), ["Added To Cart", "Product Viewed", "Search", "App Opened"], "{view:#}");
    let sources: Vec<&str> = view["events"].as_array().unwrap().iter().filter_map(|e| e["source"].as_str()).collect();
    assert_eq!(sources, ["web", "web", "web", "app"]);
    // The anonymous id now finds the same single profile.
    let by_anon = wait_for_profile(a, &s.admin, "anonymous_id:anon-77", RESOLVE_WAIT, |v| v["id"] == view["id"]);
    assert_eq!(by_anon["id"], view["id"]);
}

/// Sends message `retry-me` once, three times again, then once more in a batch beside a
/// new message (`new-one`): every retry is answered as a duplicate.
fn send_retries(addr: SocketAddr, auth: &str) {
    let msg = json!({"userId": "u-retry", "event": "Checkout", "messageId": "retry-me"});
    assert_eq!(ok(&post_json(addr, "/v1/track", Some(auth), &msg))["duplicates"], 0);
    for _ in 0..3 {
        let again = ok(&post_json(addr, "/v1/track", Some(auth), &msg));
        assert_eq!(again["duplicates"], 1, "{again}");
    }
    let batch = ok(&post_json(
        addr,
        "/v1/batch",
        Some(auth),
        &json!({"batch": [
            {"type": "track", "userId": "u-retry", "event": "Checkout", "messageId": "retry-me"},
            {"type": "track", "userId": "u-retry", "event": "Paid", "messageId": "new-one"},
        ]}),
    ));
    // `accepted` counts what was stored: the retry is a duplicate, not accepted again.
    assert_eq!((batch["accepted"].as_u64(), batch["duplicates"].as_u64()), (Some(1), Some(1)), "{batch}");
}

#[test]
fn a_retried_message_id_is_stored_once() {
    let s = Server::start();
    send_retries(s.addr, &s.basic("web"));
    let keys = s.stored_keys("web");
    assert_eq!(keys.get("retry-me"), Some(&1));
    assert_eq!(keys.get("new-one"), Some(&1));
    let view = wait_for_profile(s.addr, &s.admin, "user_id:u-retry", RESOLVE_WAIT, |v| event_names(v).len() == 2);
    assert_eq!(event_names(&view).iter().filter(|e| *e == "Checkout").count(), 1, "{view:#}");
}

#[test]
fn bad_requests_get_the_right_status_and_a_reason() {
    let s = Server::start();
    let a = s.addr;
    let auth = s.basic("web");
    let reason = |r: &http::Response| r.json()["error"].as_str().unwrap_or_default().to_string();
    let valid = json!({"userId": "u1", "event": "E"});

    // Write keys: missing, unknown.
    let r = post_json(a, "/v1/track", None, &valid);
    assert_eq!(r.status, 401, "{}", r.text());
    assert!(reason(&r).contains("write key"));
    let r = post_json(a, "/v1/track", Some(&basic("wk_not_a_key")), &valid);
    assert_eq!(r.status, 401, "{}", r.text());
    let r = post_json(a, "/v1/batch", None, &json!({"writeKey": "wk_nope", "batch": [{"type": "track", "userId": "u", "event": "E"}]}));
    assert_eq!(r.status, 401);

    // A 40 KB event: 413 naming the limit, on the single route and inside a batch.
    let big = json!({"userId": "u1", "event": "Big", "properties": {"blob": "x".repeat(40 * 1024)}});
    let r = post_json(a, "/v1/track", Some(&auth), &big);
    assert_eq!(r.status, 413, "{}", r.text());
    assert!(reason(&r).contains("max_event_bytes"), "{}", r.text());
    let r = post_json(
        a,
        "/v1/batch",
        Some(&auth),
        &json!({"batch": [{"type": "track", "userId": "u1", "event": "Small", "messageId": "small-1"}, {"type": "track", "userId": "u1", "event": "Big", "properties": {"blob": "x".repeat(40 * 1024)}}]}),
    );
    let body = ok(&r);
    assert_eq!(body["rejected"][0]["index"], 1, "{body}");
    // An oversized batch.
    let huge: Vec<Value> = (0..30).map(|i| json!({"type": "track", "userId": "u1", "event": "E", "properties": {"blob": "y".repeat(20_000)}, "messageId": format!("h{i}")})).collect();
    let r = post_json(a, "/v1/batch", Some(&auth), &json!({ "batch": huge }));
    assert_eq!(r.status, 413, "{}", r.text());

    // Invalid JSON, and JSON that is not a message.
    let r = request(a, "POST", "/v1/track", &[("Authorization", &auth), ("Content-Type", "application/json")], b"{\"userId\": \"u1\", ")
        .unwrap();
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(reason(&r).contains("invalid JSON"), "{}", r.text());
    let r = post_json(a, "/v1/track", Some(&auth), &json!([1, 2]));
    assert_eq!(r.status, 400);
    let r = post_json(a, "/v1/track", Some(&auth), &json!({"event": "No Ids"}));
    assert_eq!(r.status, 400);
    assert!(reason(&r).contains("userId"), "{}", r.text());
    let r = post_json(a, "/v1/track", Some(&auth), &json!({"userId": "u1"}));
    assert_eq!(r.status, 400);
    assert!(reason(&r).contains("event"), "{}", r.text());

    // One invalid item does not lose the valid ones: they are stored, the bad one is named.
    let r = post_json(
        a,
        "/v1/batch",
        Some(&auth),
        &json!({"batch": [
            {"type": "track", "userId": "u-b", "event": "One", "messageId": "b-1"},
            {"type": "track", "event": "No ids", "messageId": "b-2"},
            {"type": "teleport", "userId": "u-b", "messageId": "b-3"},
            {"type": "identify", "userId": "u-b", "traits": {"name": "Bee"}, "messageId": "b-4"},
            "not an object",
        ]}),
    );
    let body = ok(&r);
    assert_eq!(body["accepted"], 2, "{body}");
    let rejected: Vec<u64> = body["rejected"].as_array().unwrap().iter().map(|x| x["index"].as_u64().unwrap()).collect();
    assert_eq!(rejected, [1, 2, 4], "{body}");
    assert!(body["rejected"][0]["error"].as_str().unwrap().contains("userId"));
    let keys = s.stored_keys("web");
    assert!(keys.contains_key("b-1") && keys.contains_key("b-4") && !keys.contains_key("b-2") && !keys.contains_key("b-3"));
    // A batch with nothing valid is a 400 that still names each item.
    let r = post_json(a, "/v1/batch", Some(&auth), &json!({"batch": [{"type": "track", "event": "x"}]}));
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["rejected"][0]["index"], 0);
    let r = post_json(a, "/v1/batch", Some(&auth), &json!({"nobatch": []}));
    assert_eq!(r.status, 400);

    // A source switched off in kinship.toml: 403.
    let r = post_json(a, "/v1/track", Some(&s.basic("legacy")), &valid);
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(reason(&r).contains("legacy"));
    // Switched off at run time through the REST API, then on again.
    ok(&admin_post(&s, "/api/v1/sources/app/disable"));
    let r = post_json(a, "/v1/track", Some(&s.basic("app")), &valid);
    assert_eq!(r.status, 403, "{}", r.text());
    ok(&admin_post(&s, "/api/v1/sources/app/enable"));
    ok(&post_json(a, "/v1/track", Some(&s.basic("app")), &valid));
    ok(&admin_post(&s, "/api/v1/sources/legacy/enable"));
    ok(&post_json(a, "/v1/track", Some(&s.basic("legacy")), &valid));
}

fn admin_post(s: &Server, path: &str) -> http::Response {
    request(s.addr, "POST", path, &[("Authorization", &http::bearer(&s.admin))], b"").unwrap()
}

#[test]
fn gzip_bodies_are_accepted() {
    let s = Server::start();
    let body = json!({"batch": [
        {"type": "identify", "userId": "u-gz", "traits": {"email": "gz@example.com"}, "messageId": "gz-1"},
        {"type": "track", "userId": "u-gz", "event": "Zipped", "messageId": "gz-2"},
    ]});
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(body.to_string().as_bytes()).unwrap();
    let gz = enc.finish().unwrap();
    let auth = s.basic("web");
    let r = request(
        s.addr,
        "POST",
        "/v1/batch",
        &[("Authorization", &auth), ("Content-Type", "application/json"), ("Content-Encoding", "gzip")],
        &gz,
    )
    .unwrap();
    assert_eq!(ok(&r)["accepted"], 2);
    let view = wait_for_profile(s.addr, &s.admin, "email:gz@example.com", RESOLVE_WAIT, |v| event_names(v) == ["Zipped"]);
    assert_eq!(event_names(&view), ["Zipped"], "{view:#}");
    // A body that claims gzip but is not.
    let r = request(s.addr, "POST", "/v1/batch", &[("Authorization", &auth), ("Content-Encoding", "gzip")], b"{\"batch\": []}").unwrap();
    assert!(r.status == 400, "{} {}", r.status, r.text());
    // The size limit counts decompressed bytes: a small zip bomb of a single event is refused.
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(json!({"userId": "u", "event": "Bomb", "properties": {"z": "0".repeat(5_000_000)}}).to_string().as_bytes()).unwrap();
    let bomb = enc.finish().unwrap();
    assert!(bomb.len() < 50_000);
    let r = request(s.addr, "POST", "/v1/track", &[("Authorization", &auth), ("Content-Encoding", "gzip")], &bomb).unwrap();
    assert_eq!(r.status, 413, "{}", r.text());
}

#[test]
fn rest_api_requires_tokens_and_roles() {
    let s = Server::start();
    let a = s.addr;
    // No token, an unknown token.
    let r = get(a, "/api/v1/sources", None);
    assert_eq!(r.status, 401, "{}", r.text());
    assert!(r.json()["error"].as_str().unwrap().contains("token create"));
    assert_eq!(get(a, "/api/v1/sources", Some("kt_unknown")).status, 401);
    assert_eq!(get(a, "/api/v1/profiles?q=x", None).status, 401);
    assert_eq!(request(a, "POST", "/api/v1/sources/web/disable", &[], b"").unwrap().status, 401);
    // A viewer reads, but may not switch sources.
    let sources = ok(&get(a, "/api/v1/sources", Some(&s.viewer)));
    let names: Vec<&str> = sources["sources"].as_array().unwrap().iter().filter_map(|x| x["name"].as_str()).collect();
    assert_eq!(names, ["app", "legacy", "web"]);
    let r = request(a, "POST", "/api/v1/sources/web/disable", &[("Authorization", &http::bearer(&s.viewer))], b"").unwrap();
    assert_eq!(r.status, 403, "{}", r.text());
    // An admin may.
    let r = ok(&admin_post(&s, "/api/v1/sources/web/disable"));
    assert_eq!(r["enabled"], false);
    let listed = ok(&get(a, "/api/v1/sources", Some(&s.viewer)));
    let web = listed["sources"].as_array().unwrap().iter().find(|x| x["name"] == "web").unwrap().clone();
    assert_eq!(web["enabled"], false);
    assert_eq!(web["type"], "segment");
    assert_eq!(admin_post(&s, "/api/v1/sources/nope/disable").status, 404);
    // Running a segment source is refused: it has no file.
    assert_eq!(admin_post(&s, "/api/v1/sources/web/run").status, 422);
    // Lookups need one of the parameters, in a valid form.
    assert_eq!(get(a, "/api/v1/profiles", Some(&s.viewer)).status, 400);
    assert_eq!(get(a, "/api/v1/profiles?identifier=nocolon", Some(&s.viewer)).status, 400);
    assert_eq!(get(a, "/api/v1/profiles?email=not-an-email", Some(&s.viewer)).status, 400);

    // The OpenAPI document is JSON and names the routes.
    let doc = ok(&get(a, "/api/v1/openapi.json", Some(&s.viewer)));
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().expect("paths");
    for p in
        ["/api/v1/profiles", "/api/v1/profiles/{id}", "/api/v1/sources", "/api/v1/sources/{name}/enable", "/api/v1/sources/{name}/disable"]
    {
        assert!(paths.contains_key(p), "{p} missing from the OpenAPI paths: {:?}", paths.keys().collect::<Vec<_>>());
    }

    // Health and metrics need no token.
    assert_eq!(ok(&get(a, "/healthz", None))["status"], "ok");
    ok(&post_json(a, "/v1/track", Some(&s.basic("app")), &json!({"userId": "m", "event": "Counted"})));
    let metrics = get(a, "/metrics", None);
    assert_eq!(metrics.status, 200);
    let text = metrics.text();
    for name in ["kinship_events_received", "kinship_http_requests", "kinship_queue_depth", "kinship_http_request_duration_seconds"] {
        assert!(text.contains(name), "{name} missing from /metrics:\n{text}");
    }
    let received = text.lines().find(|l| l.starts_with("kinship_events_received")).expect("counter line");
    assert!(received.ends_with(" 1"), "{received}");
}

#[test]
fn shutdown_commits_everything_acknowledged() {
    let mut s = Server::start();
    let addr = s.addr;
    let auth = s.basic("web");
    // Clients keep sending while the server is told to stop.
    let senders: Vec<_> = (0..4)
        .map(|t| {
            let auth = auth.clone();
            std::thread::spawn(move || {
                let mut acked = Vec::new();
                for i in 0..10_000 {
                    let id = format!("sd-{t}-{i}");
                    let body = json!({"userId": format!("u{t}"), "event": "E", "messageId": id});
                    match request(addr, "POST", "/v1/track", &[("Authorization", &auth)], body.to_string().as_bytes()) {
                        Ok(r) if r.status == 200 => acked.push(id),
                        Ok(_) => {}
                        Err(_) => break,
                    }
                }
                acked
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    s.shutdown();
    let acked: Vec<String> = senders.into_iter().flat_map(|h| h.join().unwrap()).collect();
    assert!(acked.len() > 10, "only {} acknowledged before the shutdown", acked.len());
    let stored = s.stored_keys("web");
    let missing: Vec<&String> = acked.iter().filter(|k| stored.get(*k) != Some(&1)).collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged events not stored exactly once, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    // And they were resolved before the server returned.
    let store = s.db();
    let mut assigned = 0;
    store.scan_assignments(&mut |_, _, _| assigned += 1).unwrap();
    let unresolved = store.stats().unwrap().records - assigned;
    assert_eq!(unresolved, 0, "{unresolved} records left unresolved at shutdown");
}

/// The value of a metric line `NAME VALUE` in `/metrics`.
fn metric(addr: SocketAddr, name: &str) -> f64 {
    let text = get(addr, "/metrics", None).text();
    let line = text.lines().find(|l| l.starts_with(name) && l[name.len()..].starts_with(' ')).unwrap_or_else(|| panic!("{name} missing"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

#[test]
fn one_event_moves_a_profile_between_segments_in_real_time() {
    let s = Server::start();
    let (a, web) = (s.addr, s.basic("web"));
    let admin = http::bearer(&s.admin);
    // Twenty other people, so a full recomputation would show in the evaluation count.
    let batch: Vec<Value> = (0..20)
        .map(|i| json!({"type": "identify", "userId": format!("other-{i}"), "traits": {"plan": "free"}, "messageId": format!("o-{i}")}))
        .collect();
    ok(&post_json(a, "/v1/batch", Some(&web), &json!({ "batch": batch })));
    ok(&post_json(
        a,
        "/v1/identify",
        Some(&web),
        &json!({"userId": "buyer", "traits": {"email": "b@example.com", "marketing_opt_in": true}, "messageId": "b-1"}),
    ));
    wait_for_profile(a, &s.viewer, "user_id:other-19", RESOLVE_WAIT, |v| v["id"].is_string());
    wait_for_profile(a, &s.viewer, "user_id:buyer", RESOLVE_WAIT, |v| v["id"].is_string());

    let created =
        post_json(a, "/api/v1/computed-traits", Some(&admin), &json!({"name": "orders", "expression": "count(\"Order Completed\")"}));
    assert_eq!(created.status, 201, "{}", created.text());
    let created = post_json(
        a,
        "/api/v1/segments",
        Some(&admin),
        &json!({"name": "buyers", "expression": "computed.orders >= 2 and exists(traits.email)"}),
    );
    assert_eq!(created.status, 201, "{}", created.text());
    assert_eq!(created.json()["size"], 0);
    let created =
        post_json(a, "/api/v1/segments", Some(&admin), &json!({"name": "browsers", "expression": "not any(\"Order Completed\")"}));
    assert_eq!(created.json()["size"], 21, "{}", created.text());
    // An unrelated segment: an order must not re-evaluate it.
    post_json(a, "/api/v1/segments", Some(&admin), &json!({"name": "free", "expression": "traits.plan == \"free\""}));
    // Preview counts without saving; a viewer (support's view) has no segments; a bad
    // expression says where.
    let preview = ok(&post_json(a, "/api/v1/segments/preview", Some(&admin), &json!({"expression": "exists(traits.plan)"})));
    assert_eq!(preview["count"], 20);
    assert_eq!(post_json(a, "/api/v1/segments/preview", Some(&http::bearer(&s.viewer)), &json!({"expression": "true"})).status, 403);
    assert_eq!(post_json(a, "/api/v1/segments", Some(&http::bearer(&s.viewer)), &json!({"name": "x", "expression": "true"})).status, 403);
    let bad = post_json(a, "/api/v1/segments", Some(&admin), &json!({"name": "bad", "expression": "computed.orders > \"two\""}));
    assert_eq!(bad.status, 400);
    assert_eq!(bad.json()["column"], 19, "{}", bad.text());
    assert!(bad.json()["rendered"].as_str().unwrap().contains('^'));
    let cycle = post_json(a, "/api/v1/segments", Some(&admin), &json!({"name": "loop", "expression": "in_segment(\"loop\")"}));
    assert_eq!(cycle.status, 400, "{}", cycle.text());

    let before = metric(a, "kinship_segment_evaluations");
    for (i, at) in ["2026-01-01T10:00:00Z", "2026-01-02T10:00:00Z"].iter().enumerate() {
        let order = json!({"userId": "buyer", "event": "Order Completed", "properties": {"total": 10}, "messageId": format!("ord-{i}"), "timestamp": at});
        ok(&post_json(a, "/v1/track", Some(&web), &order));
    }
    // The entry is stored just after the order that causes it: wait for both.
    let view = wait_for_profile(a, &s.admin, "user_id:buyer", RESOLVE_WAIT, |v| {
        v["segments"].as_array().is_some_and(|s| s.iter().any(|x| x == "buyers"))
            && v["events"]
                .as_array()
                .is_some_and(|e| e.iter().any(|x| x["event"] == "Entered Segment" && x["properties"]["segment"] == "buyers"))
    });
    assert_eq!(view["segments"], json!(["buyers"]), "{view:#}");
    assert_eq!(view["computed"]["orders"], 2.0);
    // Entering and leaving are on the timeline, with the time.
    let moves: Vec<(String, String)> = view["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "segment")
        .map(|e| (e["event"].as_str().unwrap().to_string(), e["properties"]["segment"].as_str().unwrap().to_string()))
        .collect();
    assert!(moves.contains(&("Entered Segment".into(), "buyers".into())), "{moves:?}");
    assert!(moves.contains(&("Exited Segment".into(), "browsers".into())), "{moves:?}");
    assert!(moves.contains(&("Entered Segment".into(), "browsers".into())), "created while it matched: {moves:?}");
    // Two events re-evaluated only the definitions reading orders, for one profile: far
    // fewer runs than one pass over the 21 profiles.
    let runs = metric(a, "kinship_segment_evaluations") - before;
    assert!((1.0..=6.0).contains(&runs), "{runs} evaluations for two events");

    let id = view["id"].as_str().unwrap();
    let members = ok(&get(a, "/api/v1/segments/buyers/members", Some(&s.admin)));
    assert_eq!(members["members"], json!([id]));
    // People without marketing consent are left out of exports, and counted.
    let members = ok(&get(a, "/api/v1/segments/browsers/members", Some(&s.admin)));
    assert_eq!(members["members"], json!([]));
    assert_eq!(members["withheld_no_marketing_consent"], 20);
    let shown = ok(&get(a, "/api/v1/segments/buyers", Some(&s.admin)));
    assert_eq!(shown["size"], 1);
    assert_eq!(shown["sizes"].as_array().unwrap().last().unwrap()["size"], 1);
    let listed = ok(&get(a, "/api/v1/segments", Some(&s.admin)));
    assert_eq!(listed["segments"].as_array().unwrap().len(), 3);
    // A definition in use cannot be deleted; an unused one can.
    let r = request(a, "DELETE", "/api/v1/computed-traits/orders", &[("Authorization", &admin)], b"").unwrap();
    assert_eq!(r.status, 409, "{}", r.text());
    let r = request(a, "DELETE", "/api/v1/segments/buyers", &[("Authorization", &admin)], b"").unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(get(a, "/api/v1/segments/buyers", Some(&s.admin)).status, 404);
}
