//! Process-level tests of the `kinship` binary: `kinship serve` as a child process, set up
//! with `kinship source add` and `kinship token create` as a user would, and driven over
//! loopback. Covers the official Python SDKs, `kill -9` in the middle of ingest, SIGTERM, and
//! two nodes sharing a NATS JetStream stream.

#[path = "../../kinship-server/tests/support/http.rs"]
mod http;

#[path = "cli/backends.rs"]
mod backends;
#[path = "cli/connections.rs"]
mod connections;
#[path = "cli/flows.rs"]
mod flows;
#[path = "cli/governance.rs"]
mod governance;
#[path = "cli/measure.rs"]
mod measure;
#[path = "cli/nats.rs"]
mod nats;
#[path = "cli/postgres_source.rs"]
mod postgres_source;
#[path = "cli/propagation.rs"]
mod propagation;
#[path = "cli/success.rs"]
mod success;
#[path = "cli/web_ui.rs"]
mod web_ui;

use http::{basic, event_names, identifier_keys, request, wait_for_profile};
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn kinship() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kinship"));
    // Settings from the environment would change what is tested.
    for (k, _) in std::env::vars() {
        if k.starts_with("KINSHIP_") {
            c.env_remove(k);
        }
    }
    c
}

/// The store of a data directory as the test's `kinship` commands reach it: the SQLite file
/// in it, or, when the suite runs with `KINSHIP_TEST_BACKEND=postgres`, a fresh PostgreSQL
/// database of its own.
fn database_of(dir: &Path) -> String {
    static DATABASES: Mutex<BTreeMap<PathBuf, String>> = Mutex::new(BTreeMap::new());
    DATABASES.lock().unwrap().entry(dir.to_path_buf()).or_insert_with(|| kinship_testkit::database_for(dir)).clone()
}

/// `kinship` over a data directory's store.
fn kinship_in(dir: &Path) -> Command {
    let mut c = kinship();
    if kinship_testkit::postgres_backend() {
        c.env("KINSHIP_DATABASE_URL", database_of(dir));
    }
    c
}

/// A connection to a data directory's store, for checking what the commands stored.
fn store_of(dir: &Path) -> Box<dyn kinship_store::Database> {
    kinship_store::open(&database_of(dir)).expect("the store opens")
}

/// Runs a command to completion and returns the last line of its stdout.
fn last_line(dir: &Path, args: &[&str]) -> String {
    let out = kinship_in(dir).args(args).arg("--data").arg(dir).output().expect("kinship runs");
    assert!(out.status.success(), "kinship {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().lines().last().expect("a line of output").trim().to_string()
}

/// A data directory with segment sources (name → write key) and an admin token.
struct Data {
    dir: tempfile::TempDir,
    keys: HashMap<String, String>,
    token: String,
}

impl Data {
    fn new(sources: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let keys = sources
            .iter()
            .map(|s| (s.to_string(), last_line(dir.path(), &["source", "add", "--type", "segment", "--name", s])))
            .collect::<HashMap<_, _>>();
        for key in keys.values() {
            assert!(key.starts_with("wk_"), "write key {key:?}");
        }
        let token = last_line(dir.path(), &["token", "create", "--name", "tests", "--role", "admin"]);
        assert!(token.starts_with("kt_"), "token {token:?}");
        Data { dir, keys, token }
    }

    /// How often each record key of a source is stored.
    fn stored_keys(&self, source: &str) -> HashMap<String, i64> {
        let mut counts = HashMap::new();
        store_of(self.dir.path())
            .scan_records(&mut |r| {
                if r.source == source {
                    *counts.entry(r.key.to_string()).or_insert(0) += 1;
                }
            })
            .unwrap();
        counts
    }

    /// The `user_id` of the profile each record of a source is on (records on a profile
    /// without one are absent).
    fn profile_users(&self, source: &str) -> HashMap<String, String> {
        let store = store_of(self.dir.path());
        let mut on_profile: Vec<(String, String)> = Vec::new();
        store
            .scan_assignments(&mut |s, key, profile| {
                if s == source {
                    on_profile.push((key.to_string(), profile.to_string()));
                }
            })
            .unwrap();
        let mut user_of: HashMap<String, Option<String>> = HashMap::new();
        on_profile
            .into_iter()
            .filter_map(|(key, profile)| {
                let user = user_of
                    .entry(profile)
                    .or_insert_with_key(|p| {
                        store.profile_identifiers(p).unwrap().into_iter().find(|i| i.kind == "user_id").map(|i| i.value)
                    })
                    .clone()?;
                Some((key, user))
            })
            .collect()
    }

    fn unresolved(&self) -> u64 {
        let store = store_of(self.dir.path());
        let mut assigned = 0;
        store.scan_assignments(&mut |_, _, _| assigned += 1).unwrap();
        store.stats().unwrap().records - assigned
    }
}

/// `kinship serve` as a child process on a free loopback port.
struct Serve {
    child: Child,
    addr: SocketAddr,
}

impl Serve {
    fn start(data: &Data) -> Self {
        Self::start_with_env(data, &[])
    }

    /// With environment variables set for the server alone (webhook secrets).
    fn start_with_env(data: &Data, env: &[(&str, &str)]) -> Self {
        let mut child = kinship_in(data.dir.path())
            .envs(env.iter().copied())
            .args(["serve", "--bind", "127.0.0.1:0", "--data"])
            .arg(data.dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("kinship serve starts");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines.next().expect("kinship serve prints where it listens").unwrap();
        let addr = first.rsplit("http://").next().unwrap().trim().parse().unwrap_or_else(|_| panic!("no address in {first:?}"));
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Serve { child, addr }
    }

    fn kill9(&mut self) {
        self.child.kill().unwrap(); // SIGKILL on Unix
        self.child.wait().unwrap();
    }

    fn sigterm(&mut self) -> std::process::ExitStatus {
        let ok = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(ok.success());
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "kinship serve did not stop within 60 s of SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Client threads that send events until stopped or until the server goes away: single
/// tracks and 50-event batches, each message with a unique messageId. Returns the ids of
/// every message whose request got a 200.
struct Load {
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<String>>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(addr: SocketAddr, write_key: &str, prefix: &str, clients: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(Vec::new()));
        let threads = (0..clients)
            .map(|t| {
                let (stop, acked, auth, prefix) = (stop.clone(), acked.clone(), basic(write_key), prefix.to_string());
                std::thread::spawn(move || {
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        n += 1;
                        let (path, ids, body) = if n.is_multiple_of(2) {
                            let ids: Vec<String> = (0..50).map(|i| format!("{prefix}-{t}-{n}-{i}")).collect();
                            let batch: Vec<_> = ids
                                .iter()
                                .map(|id| json!({"type": "track", "userId": format!("user-{}", n % 97), "event": "Load", "messageId": id}))
                                .collect();
                            ("/v1/batch", ids, json!({ "batch": batch }))
                        } else {
                            let id = format!("{prefix}-{t}-{n}");
                            let body = json!({"userId": format!("user-{}", n % 97), "anonymousId": format!("anon-{}", n % 97), "event": "Load", "messageId": id});
                            ("/v1/track", vec![id], body)
                        };
                        match request(addr, "POST", path, &[("Authorization", &auth)], body.to_string().as_bytes()) {
                            Ok(r) if r.status == 200 => acked.lock().unwrap().extend(ids),
                            Ok(r) if r.status == 429 => std::thread::sleep(Duration::from_millis(50)),
                            Ok(r) => panic!("unexpected {}: {}", r.status, r.text()),
                            // The server is gone (killed or shutting down).
                            Err(_) => break,
                        }
                    }
                })
            })
            .collect();
        Load { stop, acked, threads }
    }

    fn acked_count(&self) -> usize {
        self.acked.lock().unwrap().len()
    }

    /// Waits until at least `n` messages are acknowledged.
    fn wait_for(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.acked_count() < n {
            assert!(Instant::now() < deadline, "only {} messages acknowledged in 60 s", self.acked_count());
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn finish(self) -> Vec<String> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().expect("client thread does not panic");
        }
        Arc::try_unwrap(self.acked).unwrap().into_inner().unwrap()
    }
}

fn assert_stored_once(data: &Data, source: &str, acked: &[String]) {
    let stored = data.stored_keys(source);
    let bad: Vec<(&String, Option<&i64>)> = acked.iter().map(|k| (k, stored.get(k))).filter(|(_, n)| *n != Some(&1)).collect();
    assert!(
        bad.is_empty(),
        "{} of {} acknowledged messages are not stored exactly once, e.g. {:?}",
        bad.len(),
        acked.len(),
        &bad[..bad.len().min(5)]
    );
}

#[test]
fn kill_9_loses_no_acknowledged_event() {
    let data = Data::new(&["web"]);
    let key = data.keys["web"].clone();
    let mut all_acked = Vec::new();
    for round in 0..2 {
        let mut server = Serve::start(&data);
        let load = Load::start(server.addr, &key, &format!("crash{round}"), 4);
        // Kill in the middle of the stream, well after it got going.
        load.wait_for(2_000 + 1_000 * round);
        std::thread::sleep(Duration::from_millis(200));
        server.kill9();
        let acked = load.finish();
        eprintln!("round {round}: {} messages acknowledged before kill -9", acked.len());
        assert_stored_once(&data, "web", &acked);
        all_acked.extend(acked);
    }
    // After a restart everything acknowledged is still there once, the resolver catches up
    // with what was logged before the crash, and retries of logged messages are recognised.
    let mut server = Serve::start(&data);
    assert_stored_once(&data, "web", &all_acked);
    let deadline = Instant::now() + Duration::from_secs(60);
    while data.unresolved() > 0 {
        assert!(Instant::now() < deadline, "{} records still unresolved 60 s after the restart", data.unresolved());
        std::thread::sleep(Duration::from_millis(50));
    }
    let retry: Vec<_> =
        all_acked[..100].iter().map(|id| json!({"type": "track", "userId": "user-1", "event": "Load", "messageId": id})).collect();
    let r = request(server.addr, "POST", "/v1/batch", &[("Authorization", &basic(&key))], json!({ "batch": retry }).to_string().as_bytes())
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["duplicates"], 100);
    assert_stored_once(&data, "web", &all_acked);
    let view = wait_for_profile(server.addr, &data.token, "user_id:user-1", Duration::from_secs(10), |v| !event_names(v).is_empty());
    assert!(event_names(&view).iter().all(|e| e == "Load"));
    assert!(server.sigterm().success());
}

/// Reads under load, then `kill -9`: every read that was answered 200 has its audit entry
/// after the restart (the answer waits for the entry to be durable), and the chain verifies.
#[test]
fn kill_9_loses_no_answered_read_from_the_audit_log() {
    let data = Data::new(&["web"]);
    let server = Serve::start(&data);
    let identify = json!({"userId": "u-read", "traits": {"email": "reader@example.com"}, "messageId": "r-1"});
    let auth = basic(&data.keys["web"]);
    let r = request(server.addr, "POST", "/v1/identify", &[("Authorization", &auth)], identify.to_string().as_bytes()).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let view = wait_for_profile(server.addr, &data.token, "user_id:u-read", Duration::from_secs(10), |_| true);
    let id = view["id"].as_str().unwrap().to_string();
    let answered = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let (answered, addr, token, path) =
                (answered.clone(), server.addr, format!("Bearer {}", data.token), format!("/api/v1/profiles/{id}"));
            std::thread::spawn(move || {
                while let Ok(r) = request(addr, "GET", &path, &[("Authorization", &token)], b"") {
                    if r.status == 200 {
                        answered.fetch_add(1, Ordering::SeqCst);
                    }
                }
            })
        })
        .collect();
    let mut server = server;
    let deadline = Instant::now() + Duration::from_secs(60);
    while answered.load(Ordering::SeqCst) < 300 {
        assert!(Instant::now() < deadline, "reads too slow: {}", answered.load(Ordering::SeqCst));
        std::thread::sleep(Duration::from_millis(10));
    }
    server.kill9();
    readers.into_iter().for_each(|t| t.join().unwrap());
    let answered = answered.load(Ordering::SeqCst);
    let store = store_of(data.dir.path());
    let filter = kinship_store::AuditFilter { profile: Some(id.clone()), actor: None, since_ms: None, after_seq: 0 };
    let audited = store.audit_lines(&filter, usize::MAX).unwrap().iter().filter(|row| row.line.contains("\"action\":\"read\"")).count();
    eprintln!("{answered} reads answered before kill -9, {audited} audited");
    assert!(audited >= answered, "{answered} reads were answered but only {audited} audited");
    drop(store);
    let server = Serve::start(&data);
    let verify = request(server.addr, "GET", "/api/v1/audit/verify", &[("Authorization", &format!("Bearer {}", data.token))], b"").unwrap();
    assert_eq!(verify.json()["ok"], true, "{}", verify.text());
}

#[test]
fn sigterm_finishes_in_flight_requests_and_exits_0() {
    let data = Data::new(&["web"]);
    let mut server = Serve::start(&data);
    let load = Load::start(server.addr, &data.keys["web"], "term", 4);
    load.wait_for(1_000);
    let status = server.sigterm();
    let acked = load.finish();
    assert!(status.success(), "kinship serve exited with {status} after SIGTERM");
    eprintln!("{} messages acknowledged before SIGTERM", acked.len());
    assert_stored_once(&data, "web", &acked);
    // Everything committed was also resolved before the process exited.
    assert_eq!(data.unresolved(), 0);
}

/// A virtual environment under the target directory with both SDKs and the Standard Webhooks
/// library from PyPI, made once; other tests' threads wait for the first install.
fn python_with_sdks() -> PathBuf {
    static PYTHON: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    PYTHON.get_or_init(install_sdks).clone()
}

fn install_sdks() -> PathBuf {
    let venv = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("sdk-venv");
    let python = venv.join("bin").join("python");
    let has_sdks = || {
        Command::new(&python)
            .args(["-c", "import segment.analytics, rudderstack.analytics, standardwebhooks"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if has_sdks() {
        return python;
    }
    let base = std::env::var("KINSHIP_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let made = Command::new(&base).args(["-m", "venv"]).arg(&venv).status();
    assert!(
        made.is_ok_and(|s| s.success()),
        "the SDK test needs Python 3 with venv: `{base} -m venv {}` failed (install python3 and python3-venv, or set KINSHIP_TEST_PYTHON)",
        venv.display()
    );
    let pip = Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--quiet",
            "segment-analytics-python",
            "rudder-sdk-python",
            "standardwebhooks",
        ])
        .status();
    assert!(
        pip.is_ok_and(|s| s.success()),
        "the SDK test needs pip and PyPI: `{} -m pip install segment-analytics-python rudder-sdk-python standardwebhooks` failed",
        python.display()
    );
    assert!(has_sdks(), "the SDKs were installed but do not import in {}", venv.display());
    python
}

#[test]
fn official_segment_and_rudderstack_python_sdks_work_unchanged() {
    let python = python_with_sdks();
    let data = Data::new(&["segment_sdk", "rudder_sdk"]);
    let mut server = Serve::start(&data);
    let url = format!("http://{}", server.addr);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/sdk_check.py");
    let run = "t1";
    let out = Command::new(&python)
        .arg(&script)
        .args(["--url", &url, "--segment-key", &data.keys["segment_sdk"], "--rudder-key", &data.keys["rudder_sdk"], "--run", run])
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "scripts/sdk_check.py failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    for (sdk, source) in [("segment", "segment_sdk"), ("rudder", "rudder_sdk")] {
        let user = format!("user_id:{sdk}-{run}-user");
        let want = ["Page Viewed", "Order Completed", "Product Viewed", "Page Viewed"];
        let view = wait_for_profile(server.addr, &data.token, &user, Duration::from_secs(10), |v| {
            event_names(v).len() == want.len() && identifier_keys(v).len() >= 4
        });
        // The anonymous page view and track were stitched to the user by the identify.
        let mut names = event_names(&view);
        names.sort();
        let mut sorted = want.to_vec();
        sorted.sort();
        assert_eq!(names, sorted, "{sdk}: {view:#}");
        let ids = identifier_keys(&view);
        for want in [
            format!("user_id:{sdk}-{run}-user"),
            format!("anonymous_id:{sdk}-{run}-anon"),
            format!("anonymous_id:{sdk}-{run}-old"),
            format!("email:{sdk}-{run}@example.com"),
        ] {
            assert!(ids.contains(&want), "{sdk}: {want} missing from {ids:?}");
        }
        assert_eq!(view["traits"]["email"], format!("{sdk}-{run}@example.com"), "{sdk}: {view:#}");
        let events = view["events"].as_array().unwrap();
        assert!(events.iter().all(|e| e["source"] == source), "{sdk}: {view:#}");
        let order = events.iter().find(|e| e["event"] == "Order Completed").unwrap();
        assert_eq!(order["properties"]["total"], 42.5);
        assert_eq!(order["properties"]["sdk"], sdk);
        // Every call is a record: 2 pages, 2 tracks, identify, alias.
        assert_eq!(view["records"].as_array().unwrap().len(), 6, "{sdk}: {view:#}");
    }
    assert!(server.sigterm().success());
}

/// Runs a command and returns (success, stdout, stderr).
fn run(dir: &Path, args: &[&str]) -> (bool, String, String) {
    let out = kinship_in(dir).args(args).arg("--data").arg(dir).output().expect("kinship runs");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn segments_from_the_command_line_select_what_the_records_say() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (ok, _, err) = run(d, &["demo", "--no-serve", "--customers", "300", "--seed", "3"]);
    assert!(ok, "{err}");
    // Who placed an order, by construction: profiles holding a shop record.
    let mut buyers = std::collections::BTreeSet::new();
    store_of(d)
        .scan_profile_records(&mut |profile, r| {
            if r.source == "shop" && r.timestamp.is_some() {
                buyers.insert(profile.to_string());
            }
        })
        .unwrap();
    let buyers = buyers.len() as i64;
    assert!(buyers > 0);

    let (ok, out, err) = run(d, &["segment", "preview", "--json", r#"count("Order Completed") >= 1"#]);
    assert!(ok, "{err}");
    let preview: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!(preview["count"], buyers, "{preview}");
    assert_eq!(preview["sample"].as_array().unwrap().len(), 10);

    assert!(run(d, &["computed", "create", "lifetime_value", r#"sum("Order Completed", total)"#]).0);
    let (ok, out, err) = run(d, &["segment", "create", "buyers", r#"computed.lifetime_value > 0 and count("Order Completed") >= 1"#]);
    assert!(ok, "{err}");
    assert!(out.contains(&format!("segment buyers: {buyers} of")), "{out}");
    let csv_path = d.join("buyers.csv");
    let (ok, _, err) = run(d, &["segment", "members", "buyers", "--out", csv_path.to_str().unwrap()]);
    assert!(ok, "{err}");
    let csv = std::fs::read_to_string(&csv_path).unwrap();
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("profile_id,name,email"));
    let members: Vec<&str> = lines.map(|l| l.split(',').next().unwrap()).collect();
    // Only people with marketing consent are exported; the command counts the others.
    let withheld: i64 =
        err.split(';').nth(1).and_then(|t| t.split_whitespace().next()).and_then(|n| n.parse().ok()).expect("withheld count");
    assert!(withheld > 0 && !members.is_empty(), "{err}");
    assert_eq!(members.len() as i64 + withheld, buyers, "{err}");

    // A member's 360 view shows the segment, the computed trait, and the entry on its timeline.
    let (ok, out, err) = run(d, &["profile", "show", "--id", members[0], "--json"]);
    assert!(ok, "{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(doc["segments"].as_array().unwrap().iter().any(|s| s == "buyers"), "{}", doc["segments"]);
    assert_eq!(doc["consent"]["marketing"]["granted"], true, "{}", doc["consent"]);
    assert!(doc["computed"]["lifetime_value"].as_f64().unwrap() > 0.0);
    assert!(doc["events"].as_array().unwrap().iter().any(|e| e["event"] == "Entered Segment" && e["properties"]["segment"] == "buyers"));

    // Errors point at the column, and nothing is saved.
    let (ok, _, err) = run(d, &["segment", "create", "bad", r#"count("X") > "two""#]);
    assert!(!ok);
    assert!(err.contains("line 1, column 14") && err.contains('^'), "{err}");
    let (ok, _, err) = run(d, &["computed", "delete", "lifetime_value"]);
    assert!(!ok && err.contains("buyers"), "in use by the segment: {err}");
    assert!(run(d, &["segment", "delete", "buyers"]).0);
    let (_, out, _) = run(d, &["segment", "list"]);
    assert!(!out.contains("buyers"), "{out}");
}
