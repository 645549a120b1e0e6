//! Ingest mode `nats` against a real nats-server with JetStream: the collection API
//! publishes to the stream, the server's consumer commits from it, and events land on their
//! profiles as in direct mode. Two nodes and kill -9 are in crates/kinship/tests/cli/nats.rs.

use super::{metric, ok, Server, RESOLVE_WAIT};
use crate::http::{event_names, identifier_keys, post_json, wait_for_profile};
use kinship_testkit::NatsServer;
use serde_json::json;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

fn nats_mode(url: &str) -> String {
    format!("\n[ingest]\nmode = \"nats\"\nnats_url = \"{url}\"\nack_wait_secs = 2\n")
}

/// Waits until the server's consumer has committed `n` stream messages in all.
fn wait_consumed(addr: SocketAddr, n: f64) {
    let deadline = Instant::now() + RESOLVE_WAIT;
    while metric(addr, "kinship_stream_consumed_total") < n {
        assert!(Instant::now() < deadline, "only {} of {n} stream messages consumed", metric(addr, "kinship_stream_consumed_total"));
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Publishes raw bytes to a subject of the stream, as another publisher could.
fn publish_raw(url: &str, subject: &str, payload: &[u8]) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let client = async_nats::connect(url).await.expect("the test connects to NATS");
        let jetstream = async_nats::jetstream::new(client);
        jetstream.publish(subject.to_string(), payload.to_vec().into()).await.unwrap().await.expect("JetStream stores the message");
    });
}

#[test]
fn events_go_through_jetstream_to_their_profiles() {
    let nats = NatsServer::start();
    let s = Server::with_config(&nats_mode(&nats.url));
    let auth = s.basic("web");
    ok(&post_json(
        s.addr,
        "/v1/identify",
        Some(&auth),
        &json!({"userId": "u-js", "traits": {"email": "Jo@Example.com", "name": "Jo"}, "messageId": "js-identify", "timestamp": "2024-05-01T10:00:00Z"}),
    ));
    // A batch with an invalid item: the valid ones go through, the invalid one is named.
    let batch = ok(&post_json(
        s.addr,
        "/v1/batch",
        Some(&auth),
        &json!({"batch": [
            {"type": "track", "userId": "u-js", "event": "Order Completed", "properties": {"total": 12}, "messageId": "js-1", "timestamp": "2024-05-01T10:01:00Z"},
            {"type": "track", "userId": "u-js", "messageId": "js-no-event"},
            {"type": "page", "userId": "u-js", "name": "Thanks", "messageId": "js-2", "timestamp": "2024-05-01T10:02:00Z"},
        ]}),
    ));
    assert_eq!(batch["accepted"], 2, "{batch}");
    assert_eq!(batch["rejected"][0]["index"], 1, "{batch}");
    let view = wait_for_profile(s.addr, &s.admin, "user_id:u-js", RESOLVE_WAIT, |v| event_names(v).len() == 2);
    assert_eq!(event_names(&view), ["Page Viewed", "Order Completed"], "{view:#}");
    assert!(identifier_keys(&view).contains(&"email:jo@example.com".to_string()), "{view:#}");
    assert_eq!(view["traits"]["name"], "Jo");
    assert_eq!(metric(s.addr, "kinship_stream_published_total"), 3.0);
    wait_consumed(s.addr, 3.0);
    // Validation still comes first: nothing invalid reaches the stream.
    let r = post_json(s.addr, "/v1/track", Some(&auth), &json!({"userId": "u-js"}));
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(post_json(s.addr, "/v1/track", None, &json!({"userId": "u-js", "event": "E"})).status, 401);
    assert_eq!(metric(s.addr, "kinship_stream_published_total"), 3.0);
}

#[test]
fn a_retried_message_id_is_stored_once() {
    let nats = NatsServer::start();
    let s = Server::with_config(&nats_mode(&nats.url));
    let auth = s.basic("web");
    // Within JetStream's duplicate window a retry never enters the stream.
    super::send_retries(s.addr, &auth);
    wait_consumed(s.addr, 2.0);
    // A copy the duplicate window does not catch (a redelivery, or a retry after the window)
    // is recognised by the log.
    let copy = json!({
        "source": "web", "key": "retry-me", "identifiers": "user_id\tu-retry", "timestamp": 1_714_557_600_000i64,
        "payload": json!({"type": "track", "userId": "u-retry", "event": "Checkout", "messageId": "retry-me"}).to_string(),
    });
    publish_raw(&nats.url, "kinship.events.web", copy.to_string().as_bytes());
    wait_consumed(s.addr, 3.0);
    let keys = s.stored_keys("web");
    assert_eq!((keys.get("retry-me"), keys.get("new-one")), (Some(&1), Some(&1)), "{keys:?}");
    let view = wait_for_profile(s.addr, &s.admin, "user_id:u-retry", RESOLVE_WAIT, |v| event_names(v).len() == 2);
    assert_eq!(event_names(&view).iter().filter(|e| *e == "Checkout").count(), 1, "{view:#}");
}

#[test]
fn malformed_stream_messages_are_dropped_and_counted() {
    let nats = NatsServer::start();
    let s = Server::with_config(&nats_mode(&nats.url));
    let auth = s.basic("web");
    ok(&post_json(s.addr, "/v1/track", Some(&auth), &json!({"userId": "u-m", "event": "First", "messageId": "m-1"})));
    wait_consumed(s.addr, 1.0);
    publish_raw(&nats.url, "kinship.events.web", b"not an event");
    publish_raw(&nats.url, "kinship.events.web", br#"{"source":"web","key":"k","payload":"[]","identifiers":"","timestamp":null}"#);
    // The consumer goes on past them: a later event still lands, and they never come back.
    ok(&post_json(s.addr, "/v1/track", Some(&auth), &json!({"userId": "u-m", "event": "Second", "messageId": "m-2"})));
    wait_for_profile(s.addr, &s.admin, "user_id:u-m", RESOLVE_WAIT, |v| event_names(v).len() == 2);
    wait_consumed(s.addr, 2.0);
    assert_eq!(metric(s.addr, "kinship_events_rejected_total"), 2.0);
    std::thread::sleep(Duration::from_secs(3)); // past ack_wait: a message not terminated would be back
    assert_eq!(metric(s.addr, "kinship_stream_redelivered_total"), 0.0);
    assert_eq!(metric(s.addr, "kinship_events_rejected_total"), 2.0);
    assert!(!s.stored_keys("web").contains_key("k"));
}

#[test]
fn unreachable_nats_gets_503_naming_the_server() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("nats://127.0.0.1:{port}");
    let s = Server::with_config(&nats_mode(&url));
    for (path, body) in [
        ("/v1/track", json!({"userId": "u", "event": "E", "messageId": "x-1"})),
        ("/v1/batch", json!({"batch": [{"type": "identify", "userId": "u", "messageId": "x-2"}]})),
    ] {
        let r = post_json(s.addr, path, Some(&s.basic("web")), &body);
        assert_eq!(r.status, 503, "{path}: {}", r.text());
        let reason = r.json()["error"].as_str().unwrap_or_default().to_string();
        assert!(reason.contains(&url), "{path}: the reason names the NATS server: {reason}");
    }
    assert!(s.stored_keys("web").is_empty());
}
