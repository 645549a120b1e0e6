//! A PostgreSQL source with a `schedule`, pulled by the running server: new and updated rows
//! reach their profiles without anyone asking, each pull is audited as the scheduler, and a
//! failing pull becomes the source's last error while the server carries on.

use super::{ok, Server, RESOLVE_WAIT};
use crate::http::{get, wait_for_profile};
use serde_json::Value;
use std::time::{Duration, Instant};

#[test]
fn a_postgres_source_is_pulled_on_its_schedule() {
    let url = kinship_testkit::fresh_database();
    let mut db = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    db.batch_execute(
        "CREATE TABLE customers (id int PRIMARY KEY, email text, city text, updated_at timestamptz NOT NULL);
         INSERT INTO customers VALUES (1, 'ann@example.com', 'Sydney', '2024-01-01T00:00:00Z');",
    )
    .unwrap();
    let s = Server::with_config(&format!(
        r#"
[sources.accounts]
type = "postgres"
url = "{url}"
table = "customers"
cursor = "updated_at"
key = "id"
timestamp = "updated_at"
schedule = "1s"
identifiers = {{ email = "email" }}
traits = {{ city = "city" }}
"#
    ));
    let city = |v: &Value| v["traits"]["city"].clone();
    let view = wait_for_profile(s.addr, &s.admin, "email:ann@example.com", RESOLVE_WAIT, |v| city(v) == "Sydney");
    assert_eq!(city(&view), "Sydney", "pulled at start-up: {view:#}");

    db.batch_execute("UPDATE customers SET city = 'Melbourne', updated_at = '2024-02-01T00:00:00Z' WHERE id = 1").unwrap();
    let view = wait_for_profile(s.addr, &s.admin, "email:ann@example.com", RESOLVE_WAIT, |v| city(v) == "Melbourne");
    assert_eq!(city(&view), "Melbourne", "the update was pulled on schedule and won: {view:#}");

    let audit = ok(&get(s.addr, "/api/v1/audit?actor=scheduler&limit=1000", Some(&s.admin)));
    let runs: Vec<&Value> = audit["entries"].as_array().unwrap().iter().filter(|e| e["action"] == "source.run").collect();
    assert!(runs.len() >= 2, "{audit:#}");
    assert!(runs.iter().any(|e| e["detail"]["source"] == "accounts" && e["detail"]["inserted"] == 1), "{audit:#}");

    db.batch_execute("DROP TABLE customers").unwrap();
    let deadline = Instant::now() + RESOLVE_WAIT;
    let error = loop {
        let sources = ok(&get(s.addr, "/api/v1/sources", Some(&s.admin)));
        let accounts = sources["sources"].as_array().unwrap().iter().find(|s| s["name"] == "accounts").unwrap().clone();
        assert_eq!((accounts["type"].as_str(), accounts["schedule"].as_str()), (Some("postgres"), Some("1s")));
        if let Some(error) = accounts["last_error"].as_str() {
            break error.to_string();
        }
        assert!(Instant::now() < deadline, "no error recorded: {accounts:#}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(error.contains("relation \"customers\" does not exist"), "{error}");
    ok(&get(s.addr, "/healthz", None));
}
