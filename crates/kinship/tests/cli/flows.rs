//! Act, end to end: `kinship serve` on the demo data with the complaint flow delivering to two
//! real webhook receivers (Python, verifying with the `standardwebhooks` reference library).
//! A complaint sent through the collection API becomes one task within a second, with its
//! context; the same ticket again makes no second task; a receiver that is down gets
//! everything once it is back, in order per profile, while the other is not held up; and a
//! `kill -9` of the server in a stream of complaints loses no task, duplicates none, loses no
//! delivery, and keeps every wait, each resumed once by the customer's next event.

use super::http::{basic, get, post_json, request};
use super::{Data, Serve, kinship_in, last_line, python_with_sdks};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const OPS_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const CRM_SECRET: &str = "whsec_c2Vjb25kIHNlY3JldCBvZiBzaXh0ZWVu";

/// A receiver process on a port, writing verified deliveries to a file.
struct Receiver {
    child: Child,
    port: u16,
    out: PathBuf,
}

impl Receiver {
    fn start(python: &Path, port: u16, secret: &str, out: &Path) -> Self {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/webhook_receiver.py");
        let mut child = Command::new(python)
            .arg(&script)
            .args([&port.to_string(), secret])
            .arg(out)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the receiver starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let port = line.trim().parse().unwrap_or_else(|_| panic!("the receiver printed {line:?}, not its port"));
        Receiver { child, port, out: out.to_path_buf() }
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Every verified delivery so far, in arrival order.
    fn received(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.out).unwrap_or_default().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Waits for `probe` to hold, up to `limit`; returns how long it took.
fn wait(what: &str, limit: Duration, mut probe: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !probe() {
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    started.elapsed()
}

/// A complaint ticket through the collection API, from the customer with `email`.
fn complaint(addr: SocketAddr, key: &str, id: &str, email: &str, product: &str, at: &str) -> u16 {
    let body = json!({
        "type": "track", "event": "Ticket Opened", "messageId": id, "anonymousId": format!("visitor-{id}"), "timestamp": at,
        "context": { "traits": { "email": email } },
        "properties": { "subject": format!("{product} arrived damaged"), "status": "open" },
    });
    post_json(addr, "/v1/track", Some(&basic(key)), &body).status
}

fn tasks_for(addr: SocketAddr, token: &str, record: &str) -> Vec<Value> {
    let r = get(addr, "/api/v1/tasks?status=active&limit=500", Some(token));
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["tasks"].as_array().unwrap().iter().filter(|t| t["trigger"]["record_key"] == record).cloned().collect()
}

/// Customers of the demo with an order of a product: (email, product name, order time).
fn customers(dir: &Path) -> Vec<(String, String, String)> {
    let text = std::fs::read_to_string(dir.join("shop_orders.jsonl")).unwrap();
    let mut seen = HashSet::new();
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|o| {
            let email = o["customer"]["email"].as_str()?.trim().to_lowercase();
            let product = o["items"][0]["name"].as_str()?.to_string();
            let at = o["created_at"].as_str()?.to_string();
            (o["customer"]["id"].is_string() && seen.insert(email.clone())).then_some((email, product, at))
        })
        .collect()
}

#[test]
fn complaints_become_tasks_once_and_signed_deliveries_survive_a_receiver_outage_and_a_kill_9() {
    let python = python_with_sdks();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let demo = kinship_in(dir).args(["demo", "--customers", "600", "--no-serve", "--data"]).arg(dir).output().unwrap();
    assert!(demo.status.success(), "{}", String::from_utf8_lossy(&demo.stderr));
    let key = last_line(dir, &["source", "add", "--type", "segment", "--name", "desk"]);
    let token = last_line(dir, &["token", "create", "--name", "tests", "--role", "admin"]);

    let mut ops = Receiver::start(&python, 0, OPS_SECRET, &dir.join("ops.jsonl"));
    let crm = Receiver::start(&python, 0, CRM_SECRET, &dir.join("crm.jsonl"));
    let endpoints = format!(
        "\n[endpoints.ops]\ntype = \"webhook\"\nurl = \"http://127.0.0.1:{}/hook\"\nsecrets_env = [\"OPS_SECRET\"]\nmax_attempts = 100\n\
         \n[endpoints.crm]\ntype = \"webhook\"\nurl = \"http://127.0.0.1:{}/hook\"\nsecrets_env = [\"CRM_SECRET\"]\n",
        ops.port, crm.port
    );
    let mut config = std::fs::read_to_string(dir.join("kinship.toml")).unwrap();
    config.push_str(&endpoints);
    std::fs::write(dir.join("kinship.toml"), config).unwrap();
    let mut flow = std::fs::read_to_string(dir.join("flows/complaint_to_task.toml")).unwrap();
    flow.push_str("\n[[steps]]\ndeliver = \"ops\"\n\n[[steps]]\ndeliver = \"crm\"\n");
    std::fs::write(dir.join("flows/with_deliveries.toml"), &flow).unwrap();
    let saved = last_line(dir, &["flow", "create", &dir.join("flows/with_deliveries.toml").to_string_lossy()]);
    assert!(saved.contains("version 2"), "{saved}");
    let waiting = r#"
        name = "feedback_after_return"
        [trigger]
        event = "Return Requested"
        [[steps]]
        wait = { until = "Feedback Given", timeout = "7 days", as = "feedback" }
        [[steps]]
        task = { title = "Feedback after a return: {feedback.properties.score}", team = "support" }
    "#;
    std::fs::write(dir.join("flows/feedback_after_return.toml"), waiting).unwrap();
    last_line(dir, &["flow", "create", &dir.join("flows/feedback_after_return.toml").to_string_lossy()]);

    let data = Data { dir: tmp, keys: HashMap::from([("desk".to_string(), key.clone())]), token: token.clone() };
    let env = [("OPS_SECRET", OPS_SECRET), ("CRM_SECRET", CRM_SECRET)];
    let mut server = Serve::start_with_env(&data, &env);
    let dir = data.dir.path();
    let people = customers(dir);
    assert!(people.len() > 100);

    // One complaint: one task within a second, with the customer and the order found.
    let (email, product, bought) = &people[0];
    assert_eq!(complaint(server.addr, &key, "c-1", email, product, bought), 200);
    let took = wait("the complaint's task", Duration::from_secs(1), || tasks_for(server.addr, &token, "c-1").len() == 1);
    eprintln!("complaint to task in {took:?}");
    let task = tasks_for(server.addr, &token, "c-1").remove(0);
    assert!(task["assignee"].is_string(), "{task}");
    let facts: BTreeMap<&str, &Value> = task["context"].as_array().unwrap().iter().map(|f| (f["name"].as_str().unwrap(), f)).collect();
    assert_eq!(facts["product"]["value"]["name"], product.as_str());
    assert_eq!(facts["order"]["source"], "shop");
    assert!(facts.contains_key("warranty") && facts.contains_key("stock"), "{task}");
    let shown = get(server.addr, &format!("/api/v1/tasks/{}", task["id"]), Some(&token));
    assert_eq!(shown.json()["context"], task["context"]);
    // The same ticket again: acknowledged, stored once, no second task.
    assert_eq!(complaint(server.addr, &key, "c-1", email, product, bought), 200);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(tasks_for(server.addr, &token, "c-1").len(), 1);
    wait("both receivers verify the delivery", Duration::from_secs(5), || ops.received().len() == 1 && crm.received().len() == 1);
    assert_eq!(ops.received()[0]["record"], "c-1");

    // A tampered delivery is refused by the receiver.
    let body = br#"{"type":"flow.run","data":{"profile_id":"p_x","trigger":{"record_key":"forged"},"flow":"x"}}"#;
    let headers = [
        ("webhook-id", "msg_forged"),
        ("webhook-timestamp", "1614265330"),
        ("webhook-signature", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="),
    ];
    let forged = request(SocketAddr::from(([127, 0, 0, 1], ops.port)), "POST", "/hook", &headers, body).unwrap();
    assert_eq!(forged.status, 400);

    // The ops receiver goes down; complaints go on (three from one customer, in order).
    ops.stop();
    let sent: Vec<(String, String)> = (2..12)
        .map(|i| {
            let (email, product, bought) = if i < 5 { &people[1] } else { &people[i] };
            let id = format!("c-{i}");
            assert_eq!(complaint(server.addr, &key, &id, email, product, bought), 200);
            (id, email.clone())
        })
        .collect();
    // The healthy receiver is not held up by the one that is down.
    let took = wait("crm receives while ops is down", Duration::from_secs(3), || crm.received().len() == 11);
    eprintln!("crm received 10 deliveries within {took:?} while ops was down");
    std::thread::sleep(Duration::from_secs(2));
    let ops_out = dir.join("ops.jsonl");
    let ops = Receiver::start(&python, ops.port, OPS_SECRET, &ops_out);
    wait("ops receives everything once it is back", Duration::from_secs(30), || {
        ops.received().iter().map(|d| d["id"].as_str().unwrap().to_string()).collect::<HashSet<_>>().len() == 11
    });
    let ops_order: Vec<String> =
        ops.received().iter().filter(|d| d["record"] != "c-1").map(|d| d["record"].as_str().unwrap().to_string()).collect();
    let first_customer: Vec<&String> = ops_order.iter().filter(|r| ["c-2", "c-3", "c-4"].contains(&r.as_str())).collect();
    let mut deduplicated = Vec::new();
    for r in first_customer {
        if !deduplicated.contains(&r) {
            deduplicated.push(r);
        }
    }
    assert_eq!(deduplicated, ["c-2", "c-3", "c-4"], "one profile's deliveries arrive in order: {ops_order:?}");
    assert_eq!(sent.len(), 10);

    // A stream of complaints and returns with a kill -9 in the middle: every acknowledged
    // complaint has exactly one task, both receivers get a delivery for each, and every
    // acknowledged return's wait is kept through the kill.
    let mut acked = Vec::new();
    let mut returns = Vec::new();
    for (i, (email, product, bought)) in people.iter().enumerate().take(60).skip(12) {
        let id = format!("c-{i}");
        match request(
            server.addr,
            "POST",
            "/v1/track",
            &[("Authorization", &basic(&key)), ("Content-Type", "application/json")],
            json!({
                "type": "track", "event": "Ticket Opened", "messageId": id, "anonymousId": format!("visitor-{id}"), "timestamp": bought,
                "context": { "traits": { "email": email } },
                "properties": { "subject": format!("{product} arrived damaged"), "status": "open" },
            })
            .to_string()
            .as_bytes(),
        ) {
            Ok(r) if r.status == 200 => acked.push(id),
            _ => {}
        }
        // Sent now (a wait's time counts from its trigger), from one visitor id the feedback
        // below shares, so it joins the same profile whatever the email does.
        let body =
            json!({ "type": "track", "event": "Return Requested", "messageId": format!("r-{i}"), "anonymousId": format!("returner-{i}") });
        let headers = [("Authorization", basic(&key)), ("Content-Type", "application/json".to_string())];
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        if request(server.addr, "POST", "/v1/track", &headers, body.to_string().as_bytes()).is_ok_and(|r| r.status == 200) {
            returns.push(i);
        }
        if i == 30 {
            server.kill9();
            server = Serve::start_with_env(&data, &env);
        }
    }
    let expected: Vec<String> = (1..12).map(|i| format!("c-{i}")).chain(acked.iter().cloned()).collect();
    wait("every acknowledged complaint has its task after the restart", Duration::from_secs(30), || {
        let r = get(server.addr, "/api/v1/tasks?status=active&limit=500", Some(&token));
        let records: Vec<String> =
            r.json()["tasks"].as_array().unwrap().iter().map(|t| t["trigger"]["record_key"].as_str().unwrap().to_string()).collect();
        expected.iter().all(|id| records.contains(id))
    });
    // The waits kept through the kill resume, each once, on the customer's feedback.
    assert!(returns.len() > 30, "{returns:?}");
    for i in &returns {
        let body = json!({ "type": "track", "event": "Feedback Given", "messageId": format!("f-{i}"), "anonymousId": format!("returner-{i}"),
                           "properties": { "score": 9 } });
        assert_eq!(post_json(server.addr, "/v1/track", Some(&basic(&key)), &body).status, 200);
    }
    let feedback_tasks = || -> Vec<Value> {
        let r = get(server.addr, "/api/v1/tasks?status=active&limit=500", Some(&token));
        r.json()["tasks"].as_array().unwrap().iter().filter(|t| t["flow"] == "feedback_after_return").cloned().collect()
    };
    wait("every kept wait resumes on its feedback", Duration::from_secs(30), || feedback_tasks().len() >= returns.len());
    let resumed: HashSet<String> = feedback_tasks().iter().map(|t| t["trigger"]["record_key"].as_str().unwrap().to_string()).collect();
    assert!(returns.iter().all(|i| resumed.contains(&format!("r-{i}"))), "{resumed:?}");
    assert!(feedback_tasks().iter().all(|t| t["title"] == "Feedback after a return: 9"));
    let r = get(server.addr, "/api/v1/tasks?status=active&limit=500", Some(&token));
    let mut per_record: HashMap<(String, String), usize> = HashMap::new();
    for t in r.json()["tasks"].as_array().unwrap() {
        let key = (t["flow"].as_str().unwrap().to_string(), t["trigger"]["record_key"].as_str().unwrap().to_string());
        *per_record.entry(key).or_default() += 1;
    }
    let doubled: Vec<_> = per_record.iter().filter(|(_, n)| **n > 1).collect();
    assert!(doubled.is_empty(), "tasks made twice: {doubled:?}");
    for receiver in [&ops, &crm] {
        wait("every delivery arrives after the restart", Duration::from_secs(30), || {
            let got: HashSet<String> = receiver.received().iter().map(|d| d["record"].as_str().unwrap().to_string()).collect();
            expected.iter().all(|id| got.contains(id))
        });
    }
    eprintln!(
        "{} complaints acknowledged around the kill -9, each made one task and reached both receivers; {} waits kept and resumed once",
        acked.len(),
        returns.len()
    );
}

/// Two `kinship serve` nodes over one store (one SQLite file, or one PostgreSQL database),
/// complaints sent to both at once: both nodes' flow runners act on what is resolved, and
/// each complaint still makes exactly one task.
#[test]
fn two_nodes_over_one_store_make_each_task_once() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let demo = kinship_in(dir).args(["demo", "--customers", "400", "--no-serve", "--data"]).arg(dir).output().unwrap();
    assert!(demo.status.success(), "{}", String::from_utf8_lossy(&demo.stderr));
    let key = last_line(dir, &["source", "add", "--type", "segment", "--name", "desk"]);
    let token = last_line(dir, &["token", "create", "--name", "tests", "--role", "admin"]);
    let data = Data { dir: tmp, keys: HashMap::from([("desk".to_string(), key.clone())]), token: token.clone() };
    let (a, b) = (Serve::start(&data), Serve::start(&data));
    let people = customers(data.dir.path());
    let sent: Vec<String> = std::thread::scope(|scope| {
        let senders: Vec<_> = [(a.addr, 0), (b.addr, 1)]
            .into_iter()
            .map(|(addr, half)| {
                let (people, key) = (&people, &key);
                scope.spawn(move || {
                    let mut acked = Vec::new();
                    for (i, (email, product, bought)) in people.iter().enumerate().take(60).filter(|(i, _)| i % 2 == half) {
                        let id = format!("n-{i}");
                        if complaint(addr, key, &id, email, product, bought) == 200 {
                            acked.push(id);
                        }
                    }
                    acked
                })
            })
            .collect();
        senders.into_iter().flat_map(|s| s.join().unwrap()).collect()
    });
    assert_eq!(sent.len(), 60);
    let tasks = |addr: SocketAddr| -> Vec<Value> {
        let r = get(addr, "/api/v1/tasks?status=active&limit=500", Some(&token));
        r.json()["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["trigger"]["record_key"].as_str().unwrap().starts_with("n-"))
            .cloned()
            .collect()
    };
    let took = wait("every complaint's task", Duration::from_secs(30), || {
        let made: HashSet<String> = tasks(a.addr).iter().map(|t| t["trigger"]["record_key"].as_str().unwrap().to_string()).collect();
        sent.iter().all(|id| made.contains(id))
    });
    // A little longer, for a node acting late to show a second task if it would make one.
    std::thread::sleep(Duration::from_millis(1500));
    let made = tasks(b.addr);
    let mut per_record: HashMap<String, usize> = HashMap::new();
    for t in &made {
        *per_record.entry(t["trigger"]["record_key"].as_str().unwrap().to_string()).or_default() += 1;
    }
    assert_eq!(per_record.len(), 60);
    assert!(per_record.values().all(|n| *n == 1), "tasks made twice: {:?}", per_record.iter().filter(|(_, n)| **n > 1).collect::<Vec<_>>());
    // Each node counts the tasks its own runs created: together, one per complaint.
    let metric = |addr: SocketAddr, name: &str| -> f64 {
        let text = get(addr, "/metrics", None).text();
        text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok()).unwrap_or_else(|| panic!("{name} missing"))
    };
    let created = [a.addr, b.addr].map(|addr| metric(addr, "kinship_tasks_created_total"));
    let runs = [a.addr, b.addr].map(|addr| metric(addr, "kinship_flow_runs_total"));
    assert_eq!(created[0] + created[1], 60.0, "{created:?}");
    assert!(runs.iter().all(|r| *r > 0.0), "both nodes acted: {runs:?}");
    eprintln!(
        "60 complaints to two nodes at once: one task each, all within {took:?}; runs planned per node {runs:?}, tasks created {created:?}"
    );
}
