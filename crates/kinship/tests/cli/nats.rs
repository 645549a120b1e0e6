//! Two `kinship serve` nodes consuming one NATS JetStream stream (`[ingest] mode = "nats"`)
//! over one store: a node killed with kill -9 mid-stream loses nothing (JetStream gives
//! what it held to another node after ack_wait), a node stopped with SIGTERM commits what it
//! pulled and exits 0, and every event that got a 200 is on its profile exactly once.
//!
//! The nodes share one data directory and one store: a SQLite file both processes open, or
//! with `KINSHIP_TEST_BACKEND=postgres` one PostgreSQL database.

use super::{Data, Load, Serve, assert_stored_once};
use crate::http::get;
use kinship_testkit::NatsServer;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Seconds a node may hold a message before JetStream gives it to another.
const ACK_WAIT_SECS: u64 = 2;

fn use_nats(data: &Data, nats: &NatsServer) {
    let path = data.dir.path().join("kinship.toml");
    let mut config = std::fs::read_to_string(&path).unwrap();
    config.push_str(&format!("\n[ingest]\nmode = \"nats\"\nnats_url = \"{}\"\nack_wait_secs = {ACK_WAIT_SECS}\n", nats.url));
    std::fs::write(path, config).unwrap();
}

/// A counter from a node's `/metrics`.
fn metric(addr: SocketAddr, name: &str) -> f64 {
    let text = get(addr, "/metrics", None).text();
    let line = text.lines().find(|l| l.starts_with(name) && l[name.len()..].starts_with(' ')).unwrap_or_else(|| panic!("{name} missing"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

fn wait_until(what: &str, timeout: Duration, done: impl Fn() -> bool) {
    assert!(happens_within(timeout, done), "{what} did not happen within {timeout:?}");
}

fn happens_within(timeout: Duration, done: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while !done() {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    true
}

/// The user a load message was sent for: `user-{n % 97}`, n being the third part of its id
/// (`PREFIX-THREAD-N` or `PREFIX-THREAD-N-ITEM`).
fn sent_for(message_id: &str) -> String {
    let n: u64 = message_id.split('-').nth(2).and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("message id {message_id:?}"));
    format!("user-{}", n % 97)
}

#[test]
fn two_nodes_share_the_stream_and_a_killed_node_loses_nothing() {
    let nats = NatsServer::start();
    let data = Data::new(&["web"]);
    use_nats(&data, &nats);
    let consumed = "kinship_stream_consumed_total";
    let mut a = Serve::start(&data);
    let mut b = Serve::start(&data);
    // Clients send to A only; B gets its share of the events through the stream.
    let load = Load::start(a.addr, &data.keys["web"], "js", 2);
    load.wait_for(2_000);
    // What B held unacknowledged when killed goes to A once ack_wait has passed. B holds
    // messages between a pull and its commit; if it was killed between two pulls there is
    // nothing to hand over, so it is started and killed again, until a kill caught some.
    let redelivered = "kinship_stream_redelivered_total";
    for attempt in 1.. {
        wait_until("B consuming", Duration::from_secs(30), || metric(b.addr, consumed) > 0.0);
        b.kill9();
        if happens_within(Duration::from_secs(ACK_WAIT_SECS + 10), || metric(a.addr, redelivered) > 0.0) {
            break;
        }
        assert!(attempt < 5, "B's messages were not redelivered to A after {attempt} kills");
        b = Serve::start(&data);
    }
    eprintln!("A consumed {} messages, {} of them redelivered", metric(a.addr, consumed), metric(a.addr, redelivered));
    // A node started again joins the same durable consumer.
    let mut b = Serve::start(&data);
    wait_until("the restarted B consuming", Duration::from_secs(30), || metric(b.addr, consumed) > 0.0);
    // SIGTERM to A in the middle of the stream: it commits and acknowledges what it pulled.
    let status = a.sigterm();
    let acked = load.finish();
    assert!(status.success(), "node A exited with {status} after SIGTERM");
    eprintln!("{} messages acknowledged to clients", acked.len());

    // B drains what is left in the stream; then every acknowledged event is in the log once.
    wait_until("every acknowledged event stored", Duration::from_secs(60), || {
        let stored = data.stored_keys("web");
        acked.iter().all(|k| stored.contains_key(k))
    });
    assert_stored_once(&data, "web", &acked);
    wait_until("every record resolved", Duration::from_secs(60), || data.unresolved() == 0);
    let users = data.profile_users("web");
    let misplaced: Vec<(&String, Option<&String>)> =
        acked.iter().map(|k| (k, users.get(k))).filter(|(k, user)| user.is_none_or(|u| *u != sent_for(k))).collect();
    assert!(
        misplaced.is_empty(),
        "{} events not on their user's profile, e.g. {:?}",
        misplaced.len(),
        &misplaced[..misplaced.len().min(5)]
    );
    assert!(b.sigterm().success());
}
