//! Governance through the `kinship` binary: erasure leaves no copy in any file of the data
//! directory and keeps the person out on re-ingest; the audit log verifies, and fails after
//! any byte of an entry changes or its newest entry is removed; tokens are listed, revoked,
//! and shape what `profile show --token` prints.

use super::kinship_in;
use std::path::{Path, PathBuf};
use std::process::Output;

/// The person to erase, spelled as each source writes her.
const ANN_SPELLINGS: [&str; 7] = [
    "Ann.Lee@Example.COM",
    "ann.lee@example.com",
    "ANN.LEE@EXAMPLE.COM",
    "(415) 555-0134",
    "+1 415 555 0134",
    "+14155550134",
    "415.555.0134",
];

fn run(data: &Path, args: &[&str]) -> Output {
    kinship_in(data).args(args).arg("--data").arg(data).output().expect("kinship runs")
}

fn run_ok(data: &Path, args: &[&str]) -> String {
    let out = run(data, args);
    assert!(
        out.status.success(),
        "kinship {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A data directory whose sources live outside it, as a customer's exports would: a CRM
/// CSV and a shop's JSONL order feed, both naming Ann (in different spellings) and Bob.
struct Sources {
    root: tempfile::TempDir,
}

impl Sources {
    fn new() -> Sources {
        let root = tempfile::tempdir().unwrap();
        let sources = root.path().join("exports");
        std::fs::create_dir_all(&sources).unwrap();
        std::fs::write(
            sources.join("crm.csv"),
            "id,first_name,last_name,email,phone,lead_score\n\
             C-1,Ann,Lee, Ann.Lee@Example.COM ,(415) 555-0134,80\n\
             C-2,Bob,Stone,bob.stone@example.org,(212) 555-0199,20\n",
        )
        .unwrap();
        std::fs::write(
            sources.join("shop.jsonl"),
            concat!(
                r#"{"order_id":"O-1","email":"ann.lee@example.com","phone":"+1 415 555 0134","total":"25.50","at":"2024-05-01T10:00:00Z"}"#,
                "\n",
                r#"{"order_id":"O-2","email":"ANN.LEE@EXAMPLE.COM","phone":"415.555.0134","total":"12.00","at":"2024-05-02T10:00:00Z"}"#,
                "\n",
                r#"{"order_id":"O-3","email":"ann.lee@example.com","total":"not a number","at":"2024-05-03T10:00:00Z"}"#,
                "\n",
                r#"{"order_id":"O-4","email":"bob.stone@example.org","total":"99.00","at":"2024-05-04T10:00:00Z"}"#,
                "\n",
            ),
        )
        .unwrap();
        let data = root.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        let config = format!(
            r#"
[sources.crm]
type = "csv"
path = "{crm}"
key = "id"
identifiers = {{ email = "email", phone = "phone", crm_id = "id" }}
traits = {{ first_name = "first_name", last_name = "last_name", email = "email", phone = "phone", lead_score = "lead_score" }}

[sources.shop]
type = "jsonl"
path = "{shop}"
key = "order_id"
timestamp = "at"
identifiers = {{ email = "email", phone = "phone" }}
event = {{ name = "Order Completed" }}
types = {{ total = "number" }}
"#,
            crm = sources.join("crm.csv").display(),
            shop = sources.join("shop.jsonl").display()
        );
        std::fs::write(data.join("kinship.toml"), config).unwrap();
        Sources { root }
    }

    fn data(&self) -> PathBuf {
        self.root.path().join("data")
    }
}

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// (file, spelling) for every spelling found, case-insensitively, in the raw bytes of any
/// file of the data directory, and of its PostgreSQL database's tables and indexes when it
/// has one.
fn mentions(dir: &Path, spellings: &[&str]) -> Vec<(PathBuf, String)> {
    let mut found = Vec::new();
    let mut contents: Vec<(PathBuf, Vec<u8>)> = files(dir).into_iter().map(|p| (p.clone(), std::fs::read(&p).unwrap())).collect();
    let database = super::database_of(dir);
    if kinship_store::is_postgres_url(&database) {
        contents.extend(postgres_files(&database));
    }
    for (path, bytes) in contents {
        let bytes = bytes.to_ascii_lowercase();
        for s in spellings {
            let needle = s.to_ascii_lowercase().into_bytes();
            if bytes.windows(needle.len()).any(|w| w == needle.as_slice()) {
                found.push((path.clone(), s.to_string()));
            }
        }
    }
    found
}

/// The files of every table, TOAST table and index of a PostgreSQL database, read through
/// the server (`pg_read_binary_file`, as the superuser the tests run), named by relation.
fn postgres_files(url: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let mut client = postgres::Client::connect(url, postgres::NoTls).unwrap();
    // Pages changed in shared memory reach the files at a checkpoint: force one.
    client.batch_execute("CHECKPOINT").unwrap();
    let relations = client
        .query("SELECT relname::text, pg_relation_filepath(oid) FROM pg_class WHERE relkind IN ('r', 'i', 't') AND relfilenode <> 0", &[])
        .unwrap();
    relations
        .iter()
        .filter_map(|r| {
            let (name, path): (String, Option<String>) = (r.get(0), r.get(1));
            let path = path?;
            let bytes: Vec<u8> =
                client.query_one("SELECT pg_read_binary_file($1)", &[&path]).unwrap_or_else(|e| panic!("reading {path}: {e}")).get(0);
            Some((PathBuf::from(format!("postgres:{name}")), bytes))
        })
        .collect()
}

/// The `suppressed` column of a source's row in the ingest summary.
fn suppressed_column(summary: &str, source: &str) -> u64 {
    let row =
        summary.lines().find(|l| l.split_whitespace().next() == Some(source)).unwrap_or_else(|| panic!("no row for {source}: {summary}"));
    row.split_whitespace().nth(5).unwrap().parse().unwrap()
}

#[test]
fn erasure_leaves_no_copy_on_disk_and_reingest_is_suppressed() {
    let sources = Sources::new();
    let data = sources.data();
    run_ok(&data, &["ingest"]);
    let shown = run_ok(&data, &["profile", "show", "--email", "ann.lee@example.com", "--json"]);
    let doc: serde_json::Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(doc["records"].as_array().unwrap().len(), 3, "Ann is in both sources: {doc:#}");
    assert!(doc["consent"]["marketing"]["granted"].is_boolean(), "the profile shows consent: {doc:#}");
    let before = mentions(&data, &ANN_SPELLINGS);
    assert!(!before.is_empty(), "before erasure the data directory holds Ann");
    if kinship_testkit::postgres_backend() {
        assert!(
            before.iter().any(|(p, _)| p.to_string_lossy().starts_with("postgres:")),
            "the database's files hold Ann before erasure: {before:?}"
        );
    }
    assert!(files(&data).iter().any(|p| p.ends_with("rejects/shop.jsonl")), "the bad order row is rejected with Ann's email in it");

    // Copies of the exports uploaded through the web UI are Kinship's to scrub.
    let uploads = data.join(kinship_core::config::UPLOADS_DIR);
    std::fs::create_dir_all(&uploads).unwrap();
    for file in ["crm.csv", "shop.jsonl"] {
        std::fs::copy(sources.root.path().join("exports").join(file), uploads.join(file)).unwrap();
    }

    let erased = run_ok(&data, &["erase", "--email", " ANN.LEE@example.com"]);
    assert!(erased.contains("erased request er_") && erased.contains("3 record(s)"), "{erased}");
    assert!(erased.contains("4 row(s) removed from uploaded exports"), "one CRM row and three orders: {erased}");
    let kept = std::fs::read_to_string(uploads.join("crm.csv")).unwrap();
    assert!(kept.starts_with("id,first_name") && kept.contains("bob.stone@example.org"), "the header and Bob stay: {kept}");
    let left = mentions(&data, &ANN_SPELLINGS);
    assert!(left.is_empty(), "copies of Ann remain after erasure: {left:?}");
    let bob = ["bob.stone@example.org"];
    assert!(!mentions(&data, &bob).is_empty(), "erasure kept everyone else");
    let lookup = run(&data, &["profile", "show", "--email", "ann.lee@example.com"]);
    assert!(!lookup.status.success(), "Ann's profile is gone");
    assert!(String::from_utf8_lossy(&run(&data, &["profile", "search", "ann"]).stdout).contains("no profile matches"));

    // The same files again: Ann does not come back, and the summary says why.
    let again = run_ok(&data, &["ingest"]);
    assert_eq!(suppressed_column(&again, "crm"), 1, "{again}");
    assert_eq!(suppressed_column(&again, "shop"), 3, "{again}");
    assert!(!run(&data, &["profile", "show", "--email", "ann.lee@example.com"]).status.success(), "Ann stays erased");
    let left = mentions(&data, &ANN_SPELLINGS);
    assert!(left.is_empty(), "re-ingest wrote Ann back: {left:?}");

    // The audit entry names the request, not Ann.
    let audit = run_ok(&data, &["audit", "--actor", &format!("cli:{}", std::env::var("USER").unwrap_or_else(|_| "unknown".into()))]);
    assert!(audit.lines().any(|l| l.contains(r#""action":"erase""#) && l.contains("er_")), "{audit}");

    // An admin lifts the suppression: the next ingest brings her back.
    run_ok(&data, &["privacy", "unsuppress", "--email", "ann.lee@example.com"]);
    run_ok(&data, &["privacy", "unsuppress", "--phone", "(415) 555-0134"]);
    run_ok(&data, &["privacy", "unsuppress", "--identifier", "crm_id:C-1"]);
    let back = run_ok(&data, &["ingest"]);
    assert_eq!(suppressed_column(&back, "crm"), 0, "{back}");
    run_ok(&data, &["profile", "show", "--email", "ann.lee@example.com"]);
}

/// The audit table reached with SQL, as someone with access to the database would.
enum AuditTable {
    Sqlite(rusqlite::Connection),
    Postgres(postgres::Client),
}

impl AuditTable {
    fn open(data: &Path) -> Self {
        let database = super::database_of(data);
        if kinship_store::is_postgres_url(&database) {
            AuditTable::Postgres(postgres::Client::connect(&database, postgres::NoTls).unwrap())
        } else {
            AuditTable::Sqlite(rusqlite::Connection::open(kinship_store::audit_path(Path::new(&database))).unwrap())
        }
    }

    fn update_refused(&mut self) -> bool {
        match self {
            AuditTable::Sqlite(c) => c.execute("UPDATE audit_log SET line = line WHERE seq = 1", []).is_err(),
            AuditTable::Postgres(c) => c.execute("UPDATE audit_log SET line = line WHERE seq = 1", &[]).is_err(),
        }
    }

    fn drop_triggers(&mut self) {
        match self {
            AuditTable::Sqlite(c) => c.execute_batch("DROP TRIGGER audit_log_no_update; DROP TRIGGER audit_log_no_delete;").unwrap(),
            AuditTable::Postgres(c) => c.batch_execute("ALTER TABLE audit_log DISABLE TRIGGER USER").unwrap(),
        }
    }

    fn lines(&mut self) -> Vec<(i64, String)> {
        match self {
            AuditTable::Sqlite(c) => c
                .prepare("SELECT seq, line FROM audit_log ORDER BY seq")
                .unwrap()
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap()
                .map(Result::unwrap)
                .collect(),
            AuditTable::Postgres(c) => {
                c.query("SELECT seq, line FROM audit_log ORDER BY seq", &[]).unwrap().iter().map(|r| (r.get(0), r.get(1))).collect()
            }
        }
    }

    fn set_line(&mut self, seq: i64, line: &str) {
        let sql = "UPDATE audit_log SET line = $1 WHERE seq = $2";
        match self {
            AuditTable::Sqlite(c) => c.execute(sql, rusqlite::params![line, seq]).map(drop).unwrap(),
            AuditTable::Postgres(c) => c.execute(sql, &[&line, &seq]).map(drop).unwrap(),
        }
    }

    /// Deletes an entry; returns its time and actor.
    fn remove(&mut self, seq: i64) -> (i64, String) {
        match self {
            AuditTable::Sqlite(c) => {
                let kept = c.query_row("SELECT at_ms, actor FROM audit_log WHERE seq = ?1", [seq], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
                c.execute("DELETE FROM audit_log WHERE seq = ?1", [seq]).unwrap();
                kept
            }
            AuditTable::Postgres(c) => {
                let row = c.query_one("SELECT at_ms, actor FROM audit_log WHERE seq = $1", &[&seq]).unwrap();
                c.execute("DELETE FROM audit_log WHERE seq = $1", &[&seq]).unwrap();
                (row.get(0), row.get(1))
            }
        }
    }

    fn insert(&mut self, seq: i64, at_ms: i64, actor: &str, line: &str) {
        let sql = "INSERT INTO audit_log (seq, at_ms, actor, profile, line) VALUES ($1, $2, $3, NULL, $4)";
        match self {
            AuditTable::Sqlite(c) => c.execute(sql, rusqlite::params![seq, at_ms, actor, line]).map(drop).unwrap(),
            AuditTable::Postgres(c) => c.execute(sql, &[&seq, &at_ms, &actor, &line]).map(drop).unwrap(),
        }
    }
}

/// Runs `kinship audit verify` and returns whether it passed.
fn audit_verifies(data: &Path) -> bool {
    run(data, &["audit", "verify"]).status.success()
}

#[test]
fn audit_verify_passes_on_a_real_log_and_fails_after_any_change() {
    let sources = Sources::new();
    let data = sources.data();
    run_ok(&data, &["ingest"]);
    run_ok(&data, &["profile", "show", "--email", "bob.stone@example.org"]);
    run_ok(&data, &["profile", "search", "stone"]);
    run_ok(&data, &["token", "create", "--name", "ops", "--role", "support"]);
    run_ok(&data, &["erase", "--email", "ann.lee@example.com"]);
    assert!(audit_verifies(&data), "a real log verifies");
    let log = run_ok(&data, &["audit"]);
    for action in ["read", "search", "token.create", "erase"] {
        assert!(log.contains(&format!(r#""action":"{action}""#)), "{action} is audited: {log}");
    }

    let mut table = AuditTable::open(&data);
    // The triggers refuse changes made through SQL; an attacker drops them first.
    assert!(table.update_refused(), "the log is append-only");
    table.drop_triggers();
    let lines = table.lines();
    assert!(lines.len() >= 4, "{lines:?}");
    // Change one byte, at several positions of several entries: every change is caught.
    for (seq, line) in lines.iter().step_by(2) {
        for position in [0, line.len() / 3, line.len() / 2, line.len() - 2] {
            let mut bytes = line.clone().into_bytes();
            bytes[position] = if bytes[position] == b'7' { b'8' } else { b'7' };
            table.set_line(*seq, &String::from_utf8(bytes).unwrap());
            assert!(!audit_verifies(&data), "changing byte {position} of entry {seq} went unnoticed");
            table.set_line(*seq, line);
        }
    }
    assert!(audit_verifies(&data), "restored, it verifies again");
    // Removing the newest entry is caught by the anchor.
    let (last_seq, last_line) = lines.last().unwrap().clone();
    let (at_ms, actor) = table.remove(last_seq);
    let out = run(&data, &["audit", "verify"]);
    assert!(!out.status.success(), "removing the newest entry went unnoticed");
    assert!(String::from_utf8_lossy(&out.stderr).contains("removed"), "{}", String::from_utf8_lossy(&out.stderr));
    table.insert(last_seq, at_ms, &actor, &last_line);
    assert!(audit_verifies(&data));
}

#[test]
fn tokens_are_listed_revoked_and_shape_what_the_cli_shows() {
    let sources = Sources::new();
    let data = sources.data();
    run_ok(&data, &["ingest"]);
    let marketer = run_ok(&data, &["token", "create", "--name", "campaigns", "--role", "marketer"]).trim().to_string();
    let analyst = run_ok(&data, &["token", "create", "--name", "insights", "--role", "analyst"]).trim().to_string();
    let unknown = run(&data, &["token", "create", "--name", "x", "--role", "janitor"]);
    assert!(
        String::from_utf8_lossy(&unknown.stderr).contains("the roles are: admin, analyst"),
        "{}",
        String::from_utf8_lossy(&unknown.stderr)
    );
    let listed = run_ok(&data, &["token", "list"]);
    assert!(listed.contains("campaigns") && listed.contains("marketer") && !listed.contains(&marketer), "{listed}");

    let as_marketer = run_ok(&data, &["profile", "show", "--email", "bob.stone@example.org", "--json", "--token", &marketer]);
    assert!(!as_marketer.contains("bob.stone@example.org") && as_marketer.contains("b***@example.org"), "{as_marketer}");
    assert!(as_marketer.contains("lead_score"), "marketers see scores: {as_marketer}");
    let by_id: serde_json::Value = serde_json::from_str(&as_marketer).unwrap();
    let id = by_id["id"].as_str().unwrap();
    let as_analyst = run_ok(&data, &["profile", "show", "--id", id, "--json", "--token", &analyst]);
    assert!(!as_analyst.contains("bob.stone") && as_analyst.contains("anon_"), "analysts see pseudonyms: {as_analyst}");
    assert!(!run(&data, &["profile", "search", "stone", "--token", &analyst]).status.success(), "analysts may not search");

    run_ok(&data, &["token", "revoke", "campaigns"]);
    assert!(!run_ok(&data, &["token", "list"]).contains("campaigns"));
    let revoked = run(&data, &["profile", "show", "--id", id, "--token", &marketer]);
    assert!(!revoked.status.success() && String::from_utf8_lossy(&revoked.stderr).contains("revoked"));
}
