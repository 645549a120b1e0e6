//! `kinship ingest --source NAME` on a PostgreSQL source: one pull per run, the URL read from
//! the environment variable `url_env` names, and a failed pull shown by `kinship stats`.

use super::kinship;
use std::path::Path;

/// Runs `kinship ARGS --data DIR` with `ACCOUNTS_URL` set to `url` (if any); (success, stdout, stderr).
fn run_with_url(dir: &Path, url: Option<&str>, args: &[&str]) -> (bool, String, String) {
    let mut command = kinship();
    command.args(args).arg("--data").arg(dir);
    match url {
        Some(url) => command.env("ACCOUNTS_URL", url),
        None => command.env_remove("ACCOUNTS_URL"),
    };
    let out = command.output().expect("kinship runs");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// The `accounts` row of `kinship ingest`'s summary: (read, new).
fn summary(out: &str) -> (u64, u64) {
    let line = out.lines().find(|l| l.starts_with("accounts ")).unwrap_or_else(|| panic!("no summary line: {out}"));
    let numbers: Vec<u64> = line.split_whitespace().skip(1).take(2).map(|n| n.parse().unwrap()).collect();
    (numbers[0], numbers[1])
}

#[test]
fn ingest_pulls_a_postgres_source_once_per_run() {
    let url = kinship_testkit::fresh_database();
    let mut db = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    db.batch_execute(
        "CREATE TABLE customers (id int PRIMARY KEY, email text, city text, updated_at timestamptz NOT NULL);
         INSERT INTO customers VALUES (1, 'ann@example.com', 'Sydney', '2024-01-01T00:00:00Z'),
                                      (2, 'bo@example.com', 'Perth', '2024-01-01T00:00:00Z');",
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("kinship.toml"),
        r#"
[sources.accounts]
type = "postgres"
url_env = "ACCOUNTS_URL"
query = "SELECT id, lower(email) AS email, city, updated_at FROM customers"
cursor = "updated_at"
key = "id"
timestamp = "updated_at"
identifiers = { email = "email" }
traits = { city = "city" }
"#,
    )
    .unwrap();
    let ingest = ["ingest", "--source", "accounts"];

    let (ok, out, err) = run_with_url(d, Some(&url), &ingest);
    assert!(ok, "{err}");
    assert_eq!(summary(&out), (2, 2));
    let (ok, out, err) = run_with_url(d, Some(&url), &ingest);
    assert!(ok, "nothing new is not a failure: {err}");
    assert_eq!(summary(&out), (0, 0));

    db.batch_execute("UPDATE customers SET city = 'Melbourne', updated_at = '2024-02-01T00:00:00Z' WHERE id = 1").unwrap();
    let (ok, out, err) = run_with_url(d, Some(&url), &ingest);
    assert!(ok, "{err}");
    assert_eq!(summary(&out), (1, 1));
    let (ok, out, err) = run_with_url(d, None, &["profile", "show", "--email", "ann@example.com", "--json"]);
    assert!(ok, "{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["traits"]["city"], "Melbourne", "{doc:#}");

    let (ok, _, err) = run_with_url(d, None, &ingest);
    assert!(!ok);
    assert!(err.contains("`url_env` names ACCOUNTS_URL, which is not set"), "{err}");
    let (ok, out, err) = run_with_url(d, None, &["stats"]);
    assert!(ok, "{err}");
    assert!(out.contains("error: PostgreSQL: `url_env` names ACCOUNTS_URL"), "{out}");
}

#[test]
fn source_suggest_maps_a_postgres_table_with_a_cursor() {
    let url = kinship_testkit::fresh_database();
    let mut db = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    db.batch_execute(
        "CREATE SCHEMA crm;
         CREATE TABLE crm.contacts (id int PRIMARY KEY, email text, first_name text, phone text, opted_in boolean, updated_at timestamptz NOT NULL);
         INSERT INTO crm.contacts SELECT i, 'person' || i || '@example.com', (ARRAY['Ann','Bo','Cy'])[1 + i % 3], '(415) 555-' || lpad(i::text, 4, '0'),
                                         i % 2 = 0, timestamptz '2024-01-01' + i * interval '1 hour' FROM generate_series(1, 50) AS i;",
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("kinship.toml"), "[resolve]\ndefault_region = \"US\"\n").unwrap();
    let (ok, proposal, err) = run_with_url(
        d,
        Some(&url),
        &["source", "suggest", "--url-env", "ACCOUNTS_URL", "--table", "crm.contacts", "--name", "accounts", "--write", "--yes"],
    );
    assert!(ok, "{err}");
    for line in [
        "type = \"postgres\"",
        "url_env = \"ACCOUNTS_URL\"",
        "table = \"crm.contacts\"",
        "cursor = \"updated_at\"",
        "email = \"email\"",
        "phone = \"phone\"",
    ] {
        assert!(proposal.contains(line), "{line} in {proposal}");
    }
    assert!(!proposal.contains("postgres://"), "the URL stays in the environment");
    assert!(err.contains("Preview: 50 of 50 sampled rows map"), "{err}");
    let (ok, out, err) = run_with_url(d, Some(&url), &["ingest", "--source", "accounts"]);
    assert!(ok, "{err}");
    assert_eq!(summary(&out), (50, 50));
    let (ok, _, err) = run_with_url(
        d,
        Some(&url),
        &["source", "suggest", "--url-env", "ACCOUNTS_URL", "--table", "crm.contacts; DROP TABLE x", "--name", "b"],
    );
    assert!(!ok && err.contains("is not a table name"), "{err}");
    // By URL: sampled with it, written as a variable.
    let (ok, proposal, err) = run_with_url(d, None, &["source", "suggest", &url, "--table", "crm.contacts", "--name", "by_url"]);
    assert!(ok, "{err}");
    assert!(proposal.contains("url_env = \"CONTACTS_DATABASE_URL\"") && !proposal.contains("postgres://"), "{proposal}");
    assert!(err.contains("set CONTACTS_DATABASE_URL"), "{err}");
}
