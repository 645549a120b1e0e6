//! PostgreSQL sources end to end, on a real server (`kinship_testkit::fresh_database`): pulled
//! rows become records and profiles like a file's, each pull reads only what changed since the
//! last committed one, and an updated row's new values win survivorship.

use super::profile_of;
use kinship_core::Config;
use kinship_pipeline::governance::SuppressionCheck;
use kinship_pipeline::{ingest_source, profile_document, resolve_all, resolve_new_records, IngestReport};
use kinship_store::Database;
use std::path::Path;

/// A data directory whose `accounts` source pulls table `customers` of a fresh database
/// (`extra` adds settings to it), beside a CSV source sharing Alice's email.
struct Fixture {
    dir: tempfile::TempDir,
    db: postgres::Client,
    config: Config,
    /// Where the log is: a SQLite file, or a database of its own on the suite's backend.
    log: String,
    store: Box<dyn Database>,
}

impl Fixture {
    fn new(extra: &str) -> Self {
        let url = kinship_testkit::fresh_database();
        let mut db = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        db.batch_execute(
            "CREATE TABLE customers (id int PRIMARY KEY, email text, first_name text, city text, age text, updated_at timestamptz NOT NULL);",
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let toml = format!(
            r#"
[sources.accounts]
type = "postgres"
url = "{url}"
table = "customers"
cursor = "updated_at"
key = "id"
timestamp = "updated_at"
identifiers = {{ email = "email" }}
traits = {{ first_name = "first_name", city = "city" }}
types = {{ age = "integer" }}
{extra}

[sources.crm]
type = "csv"
path = "crm.csv"
key = "crm_id"
priority = 200
identifiers = {{ crm_id = "crm_id", email = "email" }}
traits = {{ city = "city" }}
"#
        );
        std::fs::write(dir.path().join("kinship.toml"), toml).unwrap();
        std::fs::write(dir.path().join("crm.csv"), "crm_id,email,city\nC1,alice@example.com,Hobart\n").unwrap();
        let config = Config::load(dir.path()).unwrap();
        let log = kinship_testkit::database_for(dir.path());
        let store = kinship_store::open(&log).unwrap();
        Fixture { dir, db, config, log, store }
    }

    /// Makes the log refuse (or accept again) new records, as a full disk would.
    fn refuse_records(&self, refuse: bool) {
        if kinship_store::is_postgres_url(&self.log) {
            let mut log = postgres::Client::connect(&self.log, postgres::NoTls).unwrap();
            log.batch_execute(if refuse {
                "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'disk full'; END $$;
                 CREATE TRIGGER refuse BEFORE INSERT ON records EXECUTE FUNCTION refuse();"
            } else {
                "DROP TRIGGER refuse ON records; DROP FUNCTION refuse();"
            })
            .unwrap();
        } else {
            let log = rusqlite::Connection::open(&self.log).unwrap();
            log.execute_batch(if refuse {
                "CREATE TRIGGER refuse BEFORE INSERT ON records BEGIN SELECT RAISE(ABORT, 'disk full'); END;"
            } else {
                "DROP TRIGGER refuse;"
            })
            .unwrap();
        }
    }

    fn sql(&mut self, statements: &str) {
        self.db.batch_execute(statements).unwrap();
    }

    fn pull(&mut self) -> IngestReport {
        self.try_pull().unwrap()
    }

    fn try_pull(&mut self) -> kinship_pipeline::Result<IngestReport> {
        ingest_source(&mut *self.store, &self.config, "accounts", self.dir.path(), &SuppressionCheck::nothing(), &|_, _| {})
    }

    fn golden(&self, email: &str, name: &str) -> serde_json::Value {
        let ids = self.store.find_profiles("email", email).unwrap();
        assert_eq!(ids.len(), 1, "{email} is in one profile");
        profile_document(&*self.store, &self.config, &ids[0]).unwrap().unwrap()["traits"][name].clone()
    }

    fn dir(&self) -> &Path {
        self.dir.path()
    }
}

#[test]
fn pulls_map_rows_into_profiles_and_then_read_only_changes() {
    let mut f = Fixture::new("");
    f.sql(
        "INSERT INTO customers VALUES
            (1, 'Alice@Example.com', 'Alice', 'Sydney', '41', '2024-01-01T10:00:00Z'),
            (2, 'bob@example.com', 'Bob', 'Perth', NULL, '2024-01-01T11:00:00Z'),
            (3, 'carol@example.com', 'Carol', 'Darwin', '29', '2024-01-01T12:00:00Z');",
    );
    let first = f.pull();
    assert_eq!((first.read, first.inserted, first.rejected), (3, 3, 0));
    ingest_source(&mut *f.store, &f.config, "crm", f.dir.path(), &SuppressionCheck::nothing(), &|_, _| {}).unwrap();
    resolve_all(&mut *f.store, &f.config, &|_, _| {}).unwrap();
    let alice = profile_of(&*f.store, "accounts", "1@2024-01-01T10:00:00+00:00");
    assert_eq!(profile_of(&*f.store, "crm", "C1"), alice, "joined to the CSV contact by the normalised email");
    assert_eq!(f.golden("alice@example.com", "city"), "Sydney", "the postgres source has the lower priority number");
    assert_eq!(f.golden("bob@example.com", "first_name"), "Bob");

    let again = f.pull();
    assert_eq!((again.read, again.inserted), (0, 0), "nothing changed: nothing read");

    f.sql(
        "UPDATE customers SET city = 'Melbourne', updated_at = '2024-02-01T09:00:00Z' WHERE id = 1;
         INSERT INTO customers VALUES (4, 'dan@example.com', 'Dan', 'Cairns', NULL, '2024-02-01T09:30:00Z');",
    );
    let changes = f.pull();
    assert_eq!((changes.read, changes.inserted, changes.duplicates), (2, 2, 0), "the update and the insert, nothing else");
    // The server's path: new records are resolved as they arrive.
    let live = resolve_new_records(&mut *f.store, &f.config, 100, None, None).unwrap();
    assert_eq!(live.attached + live.created + live.reresolved, 2, "{live:?}");
    assert_eq!(f.golden("alice@example.com", "city"), "Melbourne", "the updated row is a newer record: its city wins");
    assert_eq!(f.golden("alice@example.com", "first_name"), "Alice");
    assert_eq!(f.golden("dan@example.com", "city"), "Cairns");
    // A full resolution from the log agrees.
    resolve_all(&mut *f.store, &f.config, &|_, _| {}).unwrap();
    assert_eq!(f.golden("alice@example.com", "city"), "Melbourne");
    let records = f.store.profile_records(&profile_of(&*f.store, "crm", "C1")).unwrap();
    let keys: Vec<&str> = records.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(keys, ["1@2024-01-01T10:00:00+00:00", "C1", "1@2024-02-01T09:00:00+00:00"], "both versions stay in the log");
}

#[test]
fn rows_sharing_a_cursor_value_survive_a_page_boundary() {
    let mut f = Fixture::new("batch_size = 2");
    f.sql(
        "INSERT INTO customers SELECT n, 'p' || n || '@example.com', 'P' || n, 'Perth', NULL, '2024-03-01T00:00:00Z'
            FROM generate_series(1, 5) n;",
    );
    let first = f.pull();
    assert_eq!((first.read, first.inserted), (5, 5), "five rows at one instant, two per page");
    // Committed later with the same cursor value as the last row read: `updated_at > last`
    // alone would skip it.
    f.sql("INSERT INTO customers VALUES (6, 'p6@example.com', 'P6', 'Perth', NULL, '2024-03-01T00:00:00Z');");
    let late = f.pull();
    assert_eq!((late.read, late.inserted), (1, 1));
    assert_eq!(f.store.stats().unwrap().records, 6);
}

#[test]
fn a_bad_row_is_rejected_with_its_reason_while_the_rest_loads() {
    let mut f = Fixture::new("");
    f.sql(
        "INSERT INTO customers VALUES
            (1, 'a@example.com', 'Ann', 'Perth', '33', '2024-01-01T00:00:00Z'),
            (2, 'b@example.com', 'Ben', 'Perth', 'forty', '2024-01-02T00:00:00Z'),
            (3, 'c@example.com', 'Cat', 'Perth', '51', '2024-01-03T00:00:00Z');",
    );
    let report = f.pull();
    assert_eq!((report.read, report.inserted, report.rejected), (3, 2, 1));
    let rejects = std::fs::read_to_string(report.reject_file.expect("a reject file")).unwrap();
    let reject: serde_json::Value = serde_json::from_str(rejects.trim()).unwrap();
    assert_eq!(reject["line"], 2, "its place in the pull");
    assert_eq!(reject["reason"], "field `age` = \"forty\" is not a whole number");
    assert!(reject["raw"].as_str().unwrap().contains("\"email\":\"b@example.com\""), "{reject}");
    assert!(f.dir().join("rejects/accounts.jsonl").exists());
    let again = f.pull();
    assert_eq!((again.read, again.rejected), (0, 0), "the position moved past the rejected row too");
}

#[test]
fn a_failed_commit_keeps_the_position_so_the_rows_are_read_again() {
    let mut f = Fixture::new("");
    f.sql(
        "INSERT INTO customers SELECT n, 'p' || n || '@example.com', 'P' || n, 'Perth', NULL, '2024-01-01T00:00:00Z'::timestamptz + n * interval '1 hour'
            FROM generate_series(1, 3) n;",
    );
    f.refuse_records(true);
    let e = f.try_pull().unwrap_err().to_string();
    assert!(e.contains("disk full"), "{e}");
    let run = f.store.source_status().unwrap().into_iter().find(|s| s.source == "accounts").unwrap().last_run.unwrap();
    assert!(run.error.as_deref().is_some_and(|e| e.contains("disk full")), "{run:?}");

    f.refuse_records(false);
    let retried = f.pull();
    assert_eq!((retried.read, retried.inserted), (3, 3), "nothing was lost");
}

#[test]
fn an_unreachable_database_is_the_runs_error() {
    let mut f = Fixture::new("");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    f.config.sources.get_mut("accounts").unwrap().url = Some(format!("postgres://kinship@127.0.0.1:{port}/gone"));
    let e = f.try_pull().unwrap_err().to_string();
    assert!(e.starts_with("PostgreSQL: cannot connect"), "{e}");
    let status = f.store.source_status().unwrap();
    let run = status.iter().find(|s| s.source == "accounts").and_then(|s| s.last_run.as_ref()).expect("the failed run is recorded");
    assert_eq!(run.error.as_deref(), Some(e.as_str()));
    assert_eq!(run.read, 0);
}
