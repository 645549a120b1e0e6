//! The PostgreSQL connector against a real server (`kinship_testkit::fresh_database`): how
//! column types arrive, paging through rows that share a cursor value, and the errors a
//! misconfigured or unreachable source reports.

use kinship_core::SourceConfig;
use kinship_sources::{Reject, Row, SourceError};
use serde_json::{Value, json};

/// A postgres source over `url` with the given settings on top of table `people`, cursor
/// `updated_at` and key `id`.
fn config(url: &str, settings: Value) -> SourceConfig {
    let mut config = json!({ "type": "postgres", "url": url, "table": "people", "cursor": "updated_at", "key": "id",
        "identifiers": { "email": "email" } });
    config.as_object_mut().unwrap().extend(settings.as_object().unwrap().clone());
    serde_json::from_value(config).unwrap()
}

/// What one run read.
struct Pulled {
    rows: Vec<Row>,
    rejects: Vec<Reject>,
    /// The position after the last row.
    position: Option<String>,
}

/// One run from `position`.
fn pull(config: &SourceConfig, position: Option<&str>) -> Result<Pulled, SourceError> {
    let mut source = kinship_sources::open(config, std::path::Path::new("."), position)?;
    let (mut rows, mut rejects) = (Vec::new(), Vec::new());
    source.read(&mut |row| {
        match row {
            Ok(row) => rows.push(row),
            Err(reject) => rejects.push(reject),
        }
        std::ops::ControlFlow::Continue(())
    })?;
    let position = rows.last().and_then(|r: &Row| r.position.clone());
    Ok(Pulled { rows, rejects, position })
}

fn database(setup: &str) -> String {
    let url = kinship_testkit::fresh_database();
    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    client.batch_execute(setup).unwrap();
    url
}

#[test]
fn columns_arrive_as_json_values() {
    let url = database(
        "CREATE TABLE people (id int PRIMARY KEY, updated_at timestamptz, email text, age smallint, visits bigint,
            balance numeric(12,2), vip boolean, seen timestamp, born date, prefs jsonb, tags text[], ref uuid, note text);
         INSERT INTO people VALUES (1, '2024-05-01 12:30:00.123456+02', 'a@example.com', 41, 9000000000, 12.50, true,
            '2024-05-01 08:00:00', '1983-02-01', '{\"lang\": \"en\", \"n\": [1, 2]}', '{x,y}',
            'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', NULL);",
    );
    let Pulled { rows, rejects, .. } = pull(&config(&url, json!({})), None).unwrap();
    assert!(rejects.is_empty());
    let fields = Value::Object(rows[0].fields.clone());
    assert_eq!(
        fields,
        json!({ "id": 1, "updated_at": "2024-05-01T10:30:00.123456+00:00", "email": "a@example.com", "age": 41, "visits": 9_000_000_000i64,
            "balance": 12.5, "vip": true, "seen": "2024-05-01T08:00:00", "born": "1983-02-01", "prefs": { "lang": "en", "n": [1, 2] },
            "tags": ["x", "y"], "ref": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "note": null })
    );
    assert!(rows[0].payload.contains("\"balance\":12.50"), "the payload keeps PostgreSQL's digits: {}", rows[0].payload);
}

#[test]
fn pages_never_split_rows_sharing_a_cursor_value() {
    // Five rows at one instant, read two at a time: each page starts after the last key read.
    let url = database(
        "CREATE TABLE people (id int PRIMARY KEY, updated_at timestamptz NOT NULL, email text);
         INSERT INTO people SELECT n, '2024-01-01T00:00:00Z', 'p' || n || '@example.com' FROM generate_series(1, 5) n;
         INSERT INTO people VALUES (6, '2024-01-02T00:00:00Z', 'p6@example.com');",
    );
    let source = config(&url, json!({ "batch_size": 2 }));
    let Pulled { rows, position, .. } = pull(&source, None).unwrap();
    let ids: Vec<i64> = rows.iter().map(|r| r.fields["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, [1, 2, 3, 4, 5, 6]);
    let again = pull(&source, position.as_deref()).unwrap();
    assert!(again.rows.is_empty(), "nothing changed, nothing read");

    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    client
        .batch_execute(
            "INSERT INTO people VALUES (7, '2024-01-02T00:00:00Z', 'p7@example.com');
             UPDATE people SET updated_at = '2024-01-03T00:00:00Z', email = 'new@example.com' WHERE id = 2;",
        )
        .unwrap();
    let changed = pull(&source, position.as_deref()).unwrap();
    let ids: Vec<i64> = changed.rows.iter().map(|r| r.fields["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, [7, 2], "a late row at the last cursor value and an update, in cursor order");

    let other_cursor = config(&url, json!({ "batch_size": 2, "cursor": "id" }));
    let all = pull(&other_cursor, position.as_deref()).unwrap();
    assert_eq!(all.rows.len(), 7, "a position on another cursor column is ignored: the pull starts over");
}

#[test]
fn a_query_is_pulled_like_a_table() {
    let url = database(
        "CREATE TABLE people (id bigint PRIMARY KEY, updated_at bigint, email text, active boolean);
         INSERT INTO people VALUES (1, 10, 'a@example.com', true), (2, 20, 'b@example.com', false), (3, 30, 'c@example.com', true);",
    );
    let query = config(&url, json!({ "table": null, "query": "SELECT id, updated_at, upper(email) AS email FROM people WHERE active;\n" }));
    let Pulled { rows, position, .. } = pull(&query, None).unwrap();
    let emails: Vec<&str> = rows.iter().map(|r| r.fields["email"].as_str().unwrap()).collect();
    assert_eq!(emails, ["A@EXAMPLE.COM", "C@EXAMPLE.COM"]);
    let stored: Value = serde_json::from_str(position.as_deref().unwrap()).unwrap();
    assert_eq!(stored, json!({ "column": "updated_at", "cursor": "30", "key": "3" }));
}

#[test]
fn errors_say_what_is_wrong() {
    let url = database("CREATE TABLE people (id int PRIMARY KEY, updated_at text, email text);");
    let error = |config: SourceConfig| pull(&config, None).err().expect("the pull fails").to_string();

    let e = error(config(&url, json!({})));
    assert!(e.contains("cursor column `updated_at` is of type text") && e.contains("timestamp"), "{e}");
    let e = error(config(&url, json!({ "table": "nobody" })));
    assert!(e.contains("relation \"nobody\" does not exist"), "{e}");
    let e = error(config(&url, json!({ "cursor": "changed" })));
    assert!(e.contains("column src.changed does not exist"), "{e}");
    let unreachable = format!("postgres://kinship@127.0.0.1:{}/nowhere", free_port());
    let e = error(config(&unreachable, json!({})));
    assert!(e.starts_with("PostgreSQL: cannot connect"), "{e}");
    let e = error(config(&url, json!({ "url": null, "url_env": "KINSHIP_TEST_UNSET_URL" })));
    assert!(e.contains("KINSHIP_TEST_UNSET_URL, which is not set"), "{e}");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}
