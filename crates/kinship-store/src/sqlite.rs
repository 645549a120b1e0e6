//! The embedded store: one SQLite file in WAL mode, and the audit log in a second one.

mod act;

use crate::{
    AccessStore, Attachment, AudienceStore, AuditFilter, AuditRow, CHANGE_RETENTION_MS, Change, ChangeFeed, ChangeKind, Database,
    DefinitionRow, ErasureCounts, FullResolution, GovernanceStore, RecordView, ResolutionWrite, Result, SegmentTransition, SourceStatus,
    Stats, Store, StoreError, TokenRow, UserRow,
};
use kinship_core::{
    Identifier, LinkConstraint, MergeEdge, NewRecord, ProfileIdentifier, ProfileRow, RecordId, SourceRun, StoredRecord, decode_identifiers,
};
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::{Value, json};
use std::path::Path;

/// Indexes of the derived tables, rebuilt after a full resolution.
const DERIVED_INDEXES: &str = "CREATE UNIQUE INDEX assignments_by_record ON assignments (record_id);
    CREATE INDEX profile_identifiers_by_value ON profile_identifiers (kind, value);";

/// Numbered migrations, applied in order once each.
const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        "CREATE TABLE records (
        id INTEGER PRIMARY KEY,
        source TEXT NOT NULL,
        record_key TEXT NOT NULL,
        payload TEXT NOT NULL,
        identifiers TEXT NOT NULL,
        ts INTEGER,
        ingested_at INTEGER NOT NULL,
        UNIQUE (source, record_key)
    );
    CREATE TABLE profiles (
        id TEXT PRIMARY KEY,
        traits TEXT NOT NULL,
        search_text TEXT NOT NULL,
        record_count INTEGER NOT NULL
    );
    CREATE TABLE assignments (
        record_id INTEGER PRIMARY KEY,
        profile_id TEXT NOT NULL
    );
    CREATE TABLE profile_identifiers (
        kind TEXT NOT NULL,
        value TEXT NOT NULL,
        profile_id TEXT NOT NULL,
        source TEXT NOT NULL
    );
    CREATE TABLE merge_edges (
        profile_id TEXT NOT NULL,
        left_record INTEGER NOT NULL,
        right_record INTEGER NOT NULL,
        stage TEXT NOT NULL,
        detail TEXT NOT NULL
    );
    CREATE TABLE link_constraints (
        must INTEGER NOT NULL,
        left_source TEXT NOT NULL,
        left_key TEXT NOT NULL,
        right_source TEXT NOT NULL,
        right_key TEXT NOT NULL,
        PRIMARY KEY (left_source, left_key, right_source, right_key)
    );
    CREATE TABLE source_runs (
        id INTEGER PRIMARY KEY,
        source TEXT NOT NULL,
        started_at INTEGER NOT NULL,
        finished_at INTEGER NOT NULL,
        read INTEGER NOT NULL,
        inserted INTEGER NOT NULL,
        duplicates INTEGER NOT NULL,
        rejected INTEGER NOT NULL,
        error TEXT
    );
    CREATE TABLE meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    CREATE INDEX assignments_by_profile ON assignments (profile_id);
    CREATE INDEX profile_identifiers_by_value ON profile_identifiers (kind, value);
    CREATE INDEX profile_identifiers_by_profile ON profile_identifiers (profile_id);
    CREATE INDEX merge_edges_by_profile ON merge_edges (profile_id);",
    ),
    (
        2,
        "CREATE TABLE api_tokens (
        hash TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        role TEXT NOT NULL,
        created_at INTEGER NOT NULL
    );
    CREATE TABLE write_keys (
        source TEXT PRIMARY KEY,
        hash TEXT NOT NULL UNIQUE,
        created_at INTEGER NOT NULL
    );
    CREATE TABLE source_switches (
        source TEXT PRIMARY KEY,
        enabled INTEGER NOT NULL
    );",
    ),
    (
        // Assignments, identifiers and merge evidence clustered by profile: a full resolution
        // inserts them in key order, so no by-profile index has to be sorted. Golden traits
        // become compact `[value, source, record, timestamp]` arrays.
        3,
        "CREATE TABLE assignments_v3 (
        profile_id TEXT NOT NULL,
        record_id INTEGER NOT NULL,
        PRIMARY KEY (profile_id, record_id)
    ) WITHOUT ROWID;
    INSERT INTO assignments_v3 SELECT profile_id, record_id FROM assignments;
    DROP TABLE assignments;
    ALTER TABLE assignments_v3 RENAME TO assignments;
    CREATE UNIQUE INDEX assignments_by_record ON assignments (record_id);
    CREATE TABLE profile_identifiers_v3 (
        profile_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        value TEXT NOT NULL,
        source TEXT NOT NULL,
        PRIMARY KEY (profile_id, kind, value, source)
    ) WITHOUT ROWID;
    INSERT OR IGNORE INTO profile_identifiers_v3 SELECT profile_id, kind, value, source FROM profile_identifiers;
    DROP TABLE profile_identifiers;
    ALTER TABLE profile_identifiers_v3 RENAME TO profile_identifiers;
    CREATE INDEX profile_identifiers_by_value ON profile_identifiers (kind, value);
    CREATE TABLE merge_edges_v3 (
        profile_id TEXT NOT NULL,
        left_record INTEGER NOT NULL,
        right_record INTEGER NOT NULL,
        stage TEXT NOT NULL,
        detail TEXT NOT NULL,
        PRIMARY KEY (profile_id, left_record, right_record, stage)
    ) WITHOUT ROWID;
    INSERT OR IGNORE INTO merge_edges_v3 SELECT profile_id, left_record, right_record, stage, detail FROM merge_edges;
    DROP TABLE merge_edges;
    ALTER TABLE merge_edges_v3 RENAME TO merge_edges;
    UPDATE profiles SET traits = (
        SELECT json_group_object(key, json_array(json_extract(value, '$.value'), json_extract(value, '$.source'),
                                                 json_extract(value, '$.record'), json_extract(value, '$.ts')))
        FROM json_each(profiles.traits));",
    ),
    (
        4,
        "CREATE TABLE definitions (
        kind TEXT NOT NULL,
        name TEXT NOT NULL,
        expression TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        PRIMARY KEY (kind, name)
    );
    CREATE TABLE segment_members (
        segment TEXT NOT NULL,
        profile_id TEXT NOT NULL,
        since INTEGER NOT NULL,
        PRIMARY KEY (segment, profile_id)
    ) WITHOUT ROWID;
    CREATE INDEX segment_members_by_profile ON segment_members (profile_id);
    CREATE TABLE segment_transitions (
        profile_id TEXT NOT NULL,
        segment TEXT NOT NULL,
        entered INTEGER NOT NULL,
        at INTEGER NOT NULL
    );
    CREATE INDEX segment_transitions_by_profile ON segment_transitions (profile_id, at);
    CREATE TABLE segment_sizes (
        segment TEXT NOT NULL,
        at INTEGER NOT NULL,
        size INTEGER NOT NULL,
        PRIMARY KEY (segment, at)
    ) WITHOUT ROWID;",
    ),
    (
        // Governance. The audit log keeps each entry's chained text (`line`) with copies of
        // the fields it is searched by; triggers refuse changes, so only someone editing the
        // file outside kinship can alter it, and the hash chain shows that. The suppression
        // list holds keyed hashes of erased identifiers, never the identifiers.
        5,
        "CREATE TABLE audit_log (
        seq INTEGER PRIMARY KEY,
        at_ms INTEGER NOT NULL,
        actor TEXT NOT NULL,
        profile TEXT,
        line TEXT NOT NULL
    );
    CREATE INDEX audit_log_by_profile ON audit_log (profile, seq);
    CREATE INDEX audit_log_by_actor ON audit_log (actor, seq);
    CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    CREATE TABLE suppressions (
        hash TEXT PRIMARY KEY,
        request TEXT NOT NULL,
        created_at INTEGER NOT NULL
    );
    ALTER TABLE source_runs ADD COLUMN suppressed INTEGER NOT NULL DEFAULT 0;",
    ),
    (
        // People who sign in to the web UI: argon2 password hashes (PHC strings), never passwords.
        6,
        "CREATE TABLE users (
        name TEXT PRIMARY KEY,
        role TEXT NOT NULL,
        password_hash TEXT NOT NULL,
        created_at INTEGER NOT NULL
    );",
    ),
    (
        // The audit log moves to its own file (see `AUDIT_SCHEMA`): `move_audit_log` copies
        // and checks the entries there first, then this drops the table (DROP TABLE fires no
        // trigger).
        AUDIT_MOVED,
        "DROP TABLE main.audit_log;",
    ),
    (
        // The change feed (`ChangeFeed`): what processes holding copies of shared state follow.
        8,
        "CREATE TABLE changes (
        version INTEGER PRIMARY KEY AUTOINCREMENT,
        at_ms INTEGER NOT NULL,
        origin TEXT NOT NULL,
        kind TEXT NOT NULL,
        detail TEXT NOT NULL
    );
    CREATE INDEX changes_by_time ON changes (at_ms);",
    ),
    (
        // Flows (`ActStore`): versions, runs with their traces, tasks, and the deliveries
        // outbox, written with the run that asked for them.
        9,
        "CREATE TABLE flows (
        name TEXT NOT NULL,
        version INTEGER NOT NULL,
        definition TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        created_by TEXT NOT NULL,
        PRIMARY KEY (name, version)
    );
    CREATE TABLE flow_runs (
        run_key TEXT PRIMARY KEY,
        flow TEXT NOT NULL,
        version INTEGER NOT NULL,
        profile_id TEXT NOT NULL,
        source TEXT NOT NULL,
        record_key TEXT NOT NULL,
        at INTEGER NOT NULL,
        trace TEXT NOT NULL
    );
    CREATE INDEX flow_runs_by_flow ON flow_runs (flow, at);
    CREATE INDEX flow_runs_by_profile ON flow_runs (profile_id);
    CREATE TABLE tasks (
        id INTEGER PRIMARY KEY,
        run_key TEXT NOT NULL UNIQUE,
        flow TEXT NOT NULL,
        version INTEGER NOT NULL,
        profile_id TEXT NOT NULL,
        source TEXT NOT NULL,
        record_key TEXT NOT NULL,
        title TEXT NOT NULL,
        body TEXT NOT NULL,
        context TEXT NOT NULL,
        priority TEXT NOT NULL,
        status TEXT NOT NULL,
        team TEXT NOT NULL,
        assignee TEXT,
        skill TEXT,
        due_at INTEGER,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    );
    CREATE INDEX tasks_by_team ON tasks (team, status, assignee);
    CREATE INDEX tasks_by_profile ON tasks (profile_id);
    CREATE TABLE deliveries (
        id INTEGER PRIMARY KEY,
        webhook_id TEXT NOT NULL UNIQUE,
        endpoint TEXT NOT NULL,
        profile_id TEXT NOT NULL,
        body TEXT NOT NULL,
        status TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_at INTEGER NOT NULL,
        last_status INTEGER,
        last_response TEXT,
        created_at INTEGER NOT NULL,
        done_at INTEGER
    );
    CREATE INDEX deliveries_pending ON deliveries (endpoint, id) WHERE status = 'pending';
    CREATE INDEX deliveries_by_profile ON deliveries (endpoint, profile_id, id);
    CREATE INDEX segment_transitions_by_time ON segment_transitions (at);
    CREATE TABLE flow_waits (
        run_key TEXT PRIMARY KEY,
        flow TEXT NOT NULL,
        version INTEGER NOT NULL,
        profile_id TEXT NOT NULL,
        step INTEGER NOT NULL,
        until_event TEXT,
        resume_at INTEGER NOT NULL,
        fact TEXT NOT NULL,
        trigger TEXT NOT NULL,
        facts TEXT NOT NULL,
        created_at INTEGER NOT NULL
    );
    CREATE INDEX flow_waits_due ON flow_waits (resume_at);
    CREATE INDEX flow_waits_by_profile ON flow_waits (profile_id);",
    ),
    (
        // Health alerts (`ActStore::record_alerts`): at most one open per definition, profile
        // and reason; held-back ones are kept (once a day each) to count the owner's day.
        10,
        "CREATE TABLE health_alerts (
        id INTEGER PRIMARY KEY,
        definition TEXT NOT NULL,
        profile_id TEXT NOT NULL,
        reason TEXT NOT NULL,
        owner TEXT NOT NULL,
        status TEXT NOT NULL,
        opened_at INTEGER NOT NULL,
        from_score REAL NOT NULL,
        score REAL NOT NULL,
        snoozed_until INTEGER,
        snooze_reason TEXT,
        snoozed_by TEXT,
        closed_at INTEGER
    );
    CREATE UNIQUE INDEX health_alerts_open ON health_alerts (definition, profile_id, reason) WHERE status = 'open';
    CREATE UNIQUE INDEX health_alerts_held ON health_alerts (definition, profile_id, reason, (opened_at / 86400000)) WHERE status = 'held';
    CREATE INDEX health_alerts_by_definition ON health_alerts (definition, status, opened_at);
    CREATE INDEX health_alerts_by_profile ON health_alerts (profile_id);",
    ),
];

/// The migration that moves the audit log into its own file.
const AUDIT_MOVED: i64 = 7;

/// The audit log, in its own file beside the database ([`audit_path`]), on a connection of
/// its own. Every read through the API appends an entry; in the main file those commits
/// would grow it, make every reader's page cache stale (SQLite drops a connection's cache
/// when the file changed) and make erasure's VACUUM rewrite the whole log. Not attached to
/// the main connection: `BEGIN IMMEDIATE` would then lock both files, and every ingest and
/// resolver transaction would hold up the audit writer.
const AUDIT_SCHEMA: &str = "CREATE TABLE IF NOT EXISTS audit_log (
        seq INTEGER PRIMARY KEY,
        at_ms INTEGER NOT NULL,
        actor TEXT NOT NULL,
        profile TEXT,
        line TEXT NOT NULL
    );
    CREATE TRIGGER IF NOT EXISTS audit_log_no_update BEFORE UPDATE ON audit_log
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    CREATE TRIGGER IF NOT EXISTS audit_log_no_delete BEFORE DELETE ON audit_log
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;";

/// The audit log's file for the database at `database`: `kinship.sqlite` keeps its log in
/// `kinship-audit.sqlite`. It belongs in backups with the database.
pub fn audit_path(database: &Path) -> std::path::PathBuf {
    let stem = database.file_stem().map_or_else(|| "kinship".into(), |s| s.to_string_lossy().into_owned());
    let name = match database.extension() {
        Some(ext) => format!("{stem}-audit.{}", ext.to_string_lossy()),
        None => format!("{stem}-audit"),
    };
    database.with_file_name(name)
}

/// The most of the database file a connection maps into memory for reading.
const MMAP_BYTES: i64 = 0x7fff_0000;

pub struct SqliteStore {
    conn: Connection,
    /// The audit log's file.
    audit: Connection,
    /// Whether [`Database::begin_read`] opened the current transaction.
    reading: std::cell::Cell<bool>,
    /// Who the changes this connection writes come from ([`ChangeFeed::set_origin`]).
    origin: String,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Self> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        // WAL lets readers run beside the writer; NORMAL sync survives a process crash (the
        // collection API's writer flushes the log itself before answering). secure_delete=FAST
        // zeroes deleted cells in place; erasure additionally rewrites the file. A new file
        // gets 8 KiB pages: fewer, fuller pages for the bulk writes of a full resolve.
        conn.pragma_update(None, "page_size", 8192)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.pragma_update(None, "temp_store", "MEMORY")?;
        conn.pragma_update(None, "cache_size", -262_144)?;
        conn.pragma_update(None, "secure_delete", "FAST")?;
        // Reads map the file instead of copying pages into each connection's cache: a
        // profile read touches a few dozen random pages, and the copies were a tenth of it.
        // Writes still go through the WAL; SQLite caps the map at its build's limit (2 GiB).
        conn.pragma_update(None, "mmap_size", MMAP_BYTES)?;
        // Plans that do not depend on bound values: otherwise returning a statement to the
        // statement cache (which clears its bindings) makes SQLite compile it again on its
        // next use, and the hot reads spent a fifth of their time recompiling.
        conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
        let audit = open_audit_log(&audit_path(path))?;
        let mut store = Self { conn, audit, reading: std::cell::Cell::new(false), origin: crate::process_origin().to_string() };
        store.migrate()?;
        Ok(store)
    }

    fn migrate(&mut self) -> Result<()> {
        self.conn
            .execute_batch("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)")?;
        let current: i64 = self.conn.query_row("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", [], |r| r.get(0))?;
        let newest = MIGRATIONS.last().map_or(0, |m| m.0);
        if current > newest {
            return Err(StoreError::Schema(format!(
                "the database has schema version {current}, newer than this kinship knows ({newest}); upgrade kinship"
            )));
        }
        for (version, sql) in MIGRATIONS.iter().filter(|m| m.0 > current) {
            if *version == AUDIT_MOVED {
                self.move_audit_log()?;
            }
            let tx = self.conn.transaction()?;
            tx.execute_batch(sql)?;
            tx.execute("INSERT INTO schema_migrations (version, applied_at) VALUES (?1, ?2)", params![version, now_ms()])?;
            tx.commit()?;
        }
        Ok(())
    }

    /// The first half of migration 7: copies the audit log into its own file in a
    /// transaction of that file alone, then checks every entry arrived unchanged. The
    /// table is dropped from the database only after that, so a crash at any point leaves
    /// the log whole somewhere (WAL commits are atomic per file, not across files).
    fn move_audit_log(&self) -> Result<()> {
        let target = audit_path(Path::new(self.conn.path().unwrap_or_default()));
        self.conn.execute("ATTACH DATABASE ?1 AS audit_file", [target.to_string_lossy()])?;
        let copied = (|| -> Result<i64> {
            let tx = self.conn.unchecked_transaction()?;
            tx.execute(
                "INSERT OR IGNORE INTO audit_file.audit_log (seq, at_ms, actor, profile, line)
                 SELECT seq, at_ms, actor, profile, line FROM main.audit_log",
                [],
            )?;
            tx.commit()?;
            Ok(self.conn.query_row(
                "SELECT COUNT(*) FROM main.audit_log m
                 WHERE NOT EXISTS (SELECT 1 FROM audit_file.audit_log a WHERE a.seq = m.seq AND a.line = m.line)",
                [],
                |r| r.get(0),
            )?)
        })();
        self.conn.execute_batch("DETACH DATABASE audit_file")?;
        match copied? {
            0 => Ok(()),
            differ => Err(StoreError::Schema(format!(
                "moving the audit log into {}: that file already holds {differ} entries with the same numbers but other contents; \
                 move it away (it is not this database's log) and run kinship again",
                target.display()
            ))),
        }
    }
}

/// Opens the audit log's file, creating the log when the file has none.
fn open_audit_log(path: &Path) -> Result<Connection> {
    let audit = Connection::open(path)?;
    audit.busy_timeout(std::time::Duration::from_secs(10))?;
    audit.pragma_update(None, "journal_mode", "WAL")?;
    audit.pragma_update(None, "synchronous", "NORMAL")?;
    let has_log: bool = audit.query_row("SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE name = 'audit_log')", [], |r| r.get(0))?;
    if !has_log {
        audit.execute_batch(AUDIT_SCHEMA)?;
    }
    Ok(audit)
}

/// Flushes the write-ahead log of the database at `db` to disk (see `Database::flush_log`).
fn sync_wal(db: Option<&str>) -> Result<()> {
    let Some(db) = db.filter(|p| !p.is_empty()) else { return Ok(()) };
    match std::fs::File::open(format!("{db}-wal")) {
        Ok(log) => log.sync_data().map_err(|e| StoreError::Schema(format!("flushing {db}-wal to disk: {e}"))),
        // No log: everything is in the database file, flushed by the checkpoint that removed it.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StoreError::Schema(format!("opening {db}-wal: {e}"))),
    }
}

/// Runs `work` and appends the change it makes, atomically (a savepoint: part of the
/// caller's transaction when there is one).
fn changing<T>(
    conn: &Connection,
    origin: &str,
    kind: ChangeKind,
    detail: &Value,
    work: impl FnOnce(&Connection) -> Result<T>,
) -> Result<T> {
    conn.execute_batch("SAVEPOINT change")?;
    let done = work(conn).and_then(|value| {
        append_change(conn, origin, kind, detail)?;
        Ok(value)
    });
    match done {
        Ok(value) => {
            conn.execute_batch("RELEASE change")?;
            Ok(value)
        }
        Err(e) => {
            conn.execute_batch("ROLLBACK TO change; RELEASE change")?;
            Err(e)
        }
    }
}

/// Appends a change; one append in 256 also drops entries older than the retention.
fn append_change(conn: &Connection, origin: &str, kind: ChangeKind, detail: &Value) -> Result<()> {
    let now = now_ms();
    conn.prepare_cached("INSERT INTO changes (at_ms, origin, kind, detail) VALUES (?1, ?2, ?3, ?4)")?.execute(params![
        now,
        origin,
        kind.as_str(),
        detail.to_string()
    ])?;
    if conn.last_insert_rowid() % 256 == 0 {
        conn.prepare_cached("DELETE FROM changes WHERE at_ms < ?1")?.execute([now - CHANGE_RETENTION_MS])?;
    }
    Ok(())
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

fn view<'r>(r: &'r rusqlite::Row<'_>) -> rusqlite::Result<RecordView<'r>> {
    Ok(RecordView {
        id: r.get(0)?,
        source: r.get_ref(1)?.as_str().map_err(rusqlite::Error::from)?,
        key: r.get_ref(2)?.as_str().map_err(rusqlite::Error::from)?,
        payload: r.get_ref(3)?.as_str().map_err(rusqlite::Error::from)?,
        identifiers: r.get_ref(4)?.as_str().map_err(rusqlite::Error::from)?,
        timestamp: r.get(5)?,
    })
}

/// Writes a few re-resolved profiles (the full rebuild streams instead).
fn write_resolution(tx: &Connection, w: &ResolutionWrite<'_>) -> Result<()> {
    let id_of = |p: &u32| w.profiles[*p as usize].id.as_str();
    let mut stmt = tx.prepare_cached("INSERT INTO profiles (id, traits, search_text, record_count) VALUES (?1, ?2, ?3, ?4)")?;
    for p in w.profiles {
        stmt.execute(params![p.id, p.traits, p.search_text, p.record_count])?;
    }
    let mut stmt = tx.prepare_cached("INSERT INTO assignments (record_id, profile_id) VALUES (?1, ?2)")?;
    for (record, p) in w.assignments {
        stmt.execute(params![record, id_of(p)])?;
    }
    let mut stmt =
        tx.prepare_cached("INSERT OR IGNORE INTO profile_identifiers (profile_id, kind, value, source) VALUES (?1, ?2, ?3, ?4)")?;
    for (p, id) in w.identifiers {
        stmt.execute(params![id_of(p), id.kind, id.value, id.source])?;
    }
    write_edges(tx, w.edges.iter().map(|(p, e)| (id_of(p), e)).collect())
}

/// Merge evidence, (profile id, edge), written in primary-key order.
fn write_edges(tx: &Connection, mut edges: Vec<(&str, &MergeEdge)>) -> Result<()> {
    edges.sort_unstable_by(|a, b| (a.0, a.1.left, a.1.right, &a.1.stage).cmp(&(b.0, b.1.left, b.1.right, &b.1.stage)));
    let mut stmt = tx.prepare_cached(
        "INSERT OR IGNORE INTO merge_edges (profile_id, left_record, right_record, stage, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for (profile, e) in edges {
        stmt.execute(params![profile, e.left, e.right, e.stage, e.detail.to_string()])?;
    }
    Ok(())
}

fn profile_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ProfileRow> {
    Ok(ProfileRow { id: r.get(0)?, traits: r.get(1)?, search_text: r.get(2)?, record_count: r.get(3)? })
}

impl Database for SqliteStore {
    /// Copies the write-ahead log into the database file and empties it: what closing the
    /// last connection does, for measuring a bulk load up to the same point.
    fn checkpoint(&self) -> Result<()> {
        self.conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(())
    }

    /// Flushes the write-ahead log to disk. A commit (in `synchronous=NORMAL`) writes its
    /// pages to the log without flushing; calling this after the commit makes it as durable as
    /// `synchronous=FULL` would, but outside the write lock, so the next writer works while
    /// the disk flushes. Pages already checkpointed out of the log were flushed by that
    /// checkpoint. For the collection API, where a 200 promises the event survives a crash.
    fn flush_log(&self) -> Result<()> {
        sync_wal(self.conn.path())
    }

    fn backend(&self) -> &'static str {
        "sqlite"
    }

    fn concurrent_writers(&self) -> bool {
        false
    }

    fn begin_read(&self) -> Result<()> {
        // A read that panicked left its transaction open: end it, or this connection would
        // keep serving that old snapshot.
        if self.reading.replace(false) && !self.conn.is_autocommit() {
            self.conn.execute_batch("ROLLBACK")?;
        }
        // Deferred: the snapshot (and the one read lock of the whole document) is taken by
        // the first read.
        if self.conn.is_autocommit() {
            self.conn.execute_batch("BEGIN DEFERRED")?;
            self.reading.set(true);
        }
        Ok(())
    }

    fn end_read(&self) -> Result<()> {
        if self.reading.replace(false)
            && let Err(e) = self.conn.execute_batch("COMMIT")
        {
            // Never leave the snapshot open on a pooled connection.
            let _ = self.conn.execute_batch("ROLLBACK");
            return Err(e.into());
        }
        Ok(())
    }
}

impl Store for SqliteStore {
    fn insert_records(&mut self, source: &str, records: &[NewRecord], ingested_at: i64) -> Result<Vec<Option<RecordId>>> {
        let tx = self.conn.savepoint()?;
        let mut ids = Vec::with_capacity(records.len());
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO records (source, record_key, payload, identifiers, ts, ingested_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (source, record_key) DO NOTHING",
            )?;
            for r in records {
                let inserted = stmt.execute(params![source, r.key, r.payload, r.identifiers, r.timestamp, ingested_at])? == 1;
                ids.push(inserted.then(|| tx.last_insert_rowid()));
            }
        }
        tx.commit()?;
        Ok(ids)
    }

    fn scan_records(&self, visit: &mut dyn FnMut(RecordView<'_>)) -> Result<()> {
        let mut stmt = self.conn.prepare("SELECT id, source, record_key, payload, identifiers, ts FROM records ORDER BY id")?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            visit(view(r)?);
        }
        Ok(())
    }

    fn profiles_of(&self, records: &[RecordId]) -> Result<Vec<(RecordId, String)>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT record_id, profile_id FROM assignments WHERE record_id IN (SELECT value FROM json_each(?1))")?;
        let rows = stmt.query_map([serde_json::to_string(records)?], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn scan_records_of(&self, profiles: &[String], visit: &mut dyn FnMut(&str, RecordView<'_>)) -> Result<()> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT r.id, r.source, r.record_key, r.payload, r.identifiers, r.ts, a.profile_id
             FROM assignments a JOIN records r ON r.id = a.record_id
             WHERE a.profile_id IN (SELECT value FROM json_each(?1)) ORDER BY a.profile_id, r.id",
        )?;
        let mut rows = stmt.query([serde_json::to_string(profiles)?])?;
        while let Some(r) = rows.next()? {
            let profile = r.get_ref(6)?.as_str().map_err(rusqlite::Error::from)?;
            visit(profile, view(r)?);
        }
        Ok(())
    }

    fn scan_source_records(&self, source: &str, visit: &mut dyn FnMut(&str, RecordView<'_>)) -> Result<()> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT r.id, r.source, r.record_key, r.payload, r.identifiers, r.ts, a.profile_id
             FROM records r JOIN assignments a ON a.record_id = r.id WHERE r.source = ?1",
        )?;
        let mut rows = stmt.query([source])?;
        while let Some(r) = rows.next()? {
            visit(r.get_ref(6)?.as_str().map_err(rusqlite::Error::from)?, view(r)?);
        }
        Ok(())
    }

    fn scan_selected(&self, records: &[RecordId], profiles: &[String], visit: &mut dyn FnMut(RecordView<'_>)) -> Result<()> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, source, record_key, payload, identifiers, ts FROM records WHERE id IN (SELECT value FROM json_each(?1))
             UNION
             SELECT r.id, r.source, r.record_key, r.payload, r.identifiers, r.ts FROM assignments a JOIN records r ON r.id = a.record_id
             WHERE a.profile_id IN (SELECT value FROM json_each(?2))
             ORDER BY 1",
        )?;
        let mut rows = stmt.query([serde_json::to_string(records)?, serde_json::to_string(profiles)?])?;
        while let Some(r) = rows.next()? {
            visit(view(r)?);
        }
        Ok(())
    }

    fn replace_resolution(&mut self, full: FullResolution<'_>) -> Result<()> {
        // A full rebuild drops the derived indexes and builds them again after the inserts:
        // SQLite builds an index by sorting, far faster than a million random insertions.
        // Every table is written in its primary-key order, so inserts append to the b-trees.
        let tx = self.conn.savepoint()?;
        tx.execute_batch(
            "DROP INDEX assignments_by_record; DROP INDEX profile_identifiers_by_value;
             DELETE FROM assignments; DELETE FROM profile_identifiers; DELETE FROM merge_edges; DELETE FROM profiles;",
        )?;
        {
            let mut profile = tx.prepare_cached("INSERT INTO profiles (id, traits, search_text, record_count) VALUES (?1, ?2, ?3, ?4)")?;
            let mut identifier =
                tx.prepare_cached("INSERT OR IGNORE INTO profile_identifiers (profile_id, kind, value, source) VALUES (?1, ?2, ?3, ?4)")?;
            let mut assignment = tx.prepare_cached("INSERT INTO assignments (profile_id, record_id) VALUES (?1, ?2)")?;
            for batch in full.profiles {
                for mut built in batch {
                    let p = &built.row;
                    profile.execute(params![p.id, p.traits, p.search_text, p.record_count])?;
                    built.records.sort_unstable();
                    for record in &built.records {
                        assignment.execute(params![p.id, record])?;
                    }
                    built.identifiers.sort_unstable_by(|a, b| (&a.kind, &a.value, &a.source).cmp(&(&b.kind, &b.value, &b.source)));
                    for id in &built.identifiers {
                        identifier.execute(params![p.id, id.kind, id.value, id.source])?;
                    }
                }
            }
            let edges: Vec<(&str, &MergeEdge)> = full.edges.iter().map(|(c, e)| (full.ids[*c as usize].as_str(), e)).collect();
            write_edges(&tx, edges)?;
        }
        // Index builds sort; let SQLite's sorter use a helper thread for them.
        tx.pragma_update(None, "threads", 2)?;
        tx.execute_batch(DERIVED_INDEXES)?;
        tx.pragma_update(None, "threads", 0)?;
        append_change(&tx, &self.origin, ChangeKind::Rebuild, &json!({}))?;
        tx.commit()?;
        Ok(())
    }

    fn replace_profiles(&mut self, remove: &[String], w: &ResolutionWrite<'_>) -> Result<()> {
        let tx = self.conn.savepoint()?;
        let ids = serde_json::to_string(remove)?;
        for table in ["assignments", "profile_identifiers", "merge_edges"] {
            tx.execute(&format!("DELETE FROM {table} WHERE profile_id IN (SELECT value FROM json_each(?1))"), [&ids])?;
        }
        tx.execute("DELETE FROM profiles WHERE id IN (SELECT value FROM json_each(?1))", [&ids])?;
        write_resolution(&tx, w)?;
        tx.commit()?;
        Ok(())
    }

    fn attach_records(&mut self, attachments: &[Attachment]) -> Result<()> {
        // The real-time path calls this for most events: every statement is prepared once.
        let tx = self.conn.savepoint()?;
        {
            let mut update = tx.prepare_cached("UPDATE profiles SET traits = ?2, search_text = ?3, record_count = ?4 WHERE id = ?1")?;
            let mut assign = tx.prepare_cached("INSERT INTO assignments (record_id, profile_id) VALUES (?1, ?2)")?;
            let mut identify =
                tx.prepare_cached("INSERT OR IGNORE INTO profile_identifiers (profile_id, kind, value, source) VALUES (?1, ?2, ?3, ?4)")?;
            for a in attachments {
                let p = &a.profile;
                update.execute(params![p.id, p.traits, p.search_text, p.record_count])?;
                for record in &a.records {
                    assign.execute(params![record, p.id])?;
                }
                for id in &a.identifiers {
                    identify.execute(params![p.id, id.kind, id.value, id.source])?;
                }
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn begin(&mut self) -> Result<()> {
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        Ok(())
    }

    fn begin_resolution(&mut self) -> Result<RecordId> {
        // The write lock is held from here: no insert is in flight.
        self.begin()?;
        Ok(self.conn.prepare_cached("SELECT COALESCE(MAX(id), 0) FROM records")?.query_row([], |r| r.get(0))?)
    }

    fn commit(&mut self) -> Result<()> {
        self.conn.execute_batch("COMMIT")?;
        Ok(())
    }

    fn rollback(&mut self) -> Result<()> {
        self.conn.execute_batch("ROLLBACK")?;
        Ok(())
    }

    fn scan_after(&self, after: RecordId, limit: usize, visit: &mut dyn FnMut(RecordView<'_>)) -> Result<()> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id, source, record_key, payload, identifiers, ts FROM records WHERE id > ?1 ORDER BY id LIMIT ?2")?;
        let mut rows = stmt.query(params![after, limit as i64])?;
        while let Some(r) = rows.next()? {
            visit(view(r)?);
        }
        Ok(())
    }

    fn meta(&self, key: &str) -> Result<Option<String>> {
        Ok(self.conn.prepare_cached("SELECT value FROM meta WHERE key = ?1")?.query_row([key], |r| r.get(0)).optional()?)
    }

    fn set_meta(&mut self, key: &str, value: &str) -> Result<()> {
        self.conn
            .prepare_cached("INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value")?
            .execute([key, value])?;
        Ok(())
    }

    fn profile(&self, id: &str) -> Result<Option<ProfileRow>> {
        Ok(self
            .conn
            .prepare_cached("SELECT id, traits, search_text, record_count FROM profiles WHERE id = ?1")?
            .query_row([id], profile_row)
            .optional()?)
    }

    fn profile_records(&self, id: &str) -> Result<Vec<StoredRecord>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT r.id, r.source, r.record_key, r.payload, r.identifiers, r.ts, r.ingested_at
             FROM assignments a JOIN records r ON r.id = a.record_id WHERE a.profile_id = ?1 ORDER BY r.id",
        )?;
        let rows = stmt.query_map([id], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get(5)?,
                r.get(6)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, source, key, payload, identifiers, timestamp, ingested_at) = row?;
            out.push(StoredRecord {
                id,
                source,
                key,
                payload: serde_json::from_str(&payload)?,
                identifiers: decode_identifiers(&identifiers).map(|(k, v)| Identifier::new(k, v)).collect(),
                timestamp,
                ingested_at,
            });
        }
        Ok(out)
    }

    fn profile_identifiers(&self, id: &str) -> Result<Vec<ProfileIdentifier>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT kind, value, source FROM profile_identifiers WHERE profile_id = ?1 ORDER BY kind, value, source")?;
        let rows = stmt.query_map([id], |r| Ok(ProfileIdentifier { kind: r.get(0)?, value: r.get(1)?, source: r.get(2)? }))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn profile_edges(&self, id: &str) -> Result<Vec<MergeEdge>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT left_record, right_record, stage, detail FROM merge_edges WHERE profile_id = ?1 ORDER BY left_record, right_record, stage")?;
        let rows = stmt.query_map([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get::<_, String>(3)?)))?;
        let mut out = Vec::new();
        for row in rows {
            let (left, right, stage, detail) = row?;
            out.push(MergeEdge { left, right, stage, detail: serde_json::from_str(&detail)? });
        }
        Ok(out)
    }

    fn scan_profiles(&self, visit: &mut dyn FnMut(&str, &str)) -> Result<()> {
        let mut stmt = self.conn.prepare("SELECT id, traits FROM profiles ORDER BY id")?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            visit(r.get_ref(0)?.as_str().map_err(rusqlite::Error::from)?, r.get_ref(1)?.as_str().map_err(rusqlite::Error::from)?);
        }
        Ok(())
    }

    // In process, one indexed lookup per item costs less than building a query: the bulk
    // lookups are the single ones in a loop.
    fn find_profiles_of(&self, identifiers: &[(String, String)]) -> Result<Vec<(String, String, String)>> {
        let mut found = Vec::new();
        for (kind, value) in identifiers {
            found.extend(self.find_profiles(kind, value)?.into_iter().map(|profile| (kind.clone(), value.clone(), profile)));
        }
        Ok(found)
    }

    fn profiles_by_id(&self, ids: &[String]) -> Result<Vec<ProfileRow>> {
        let mut rows = Vec::with_capacity(ids.len());
        for id in ids {
            rows.extend(self.profile(id)?);
        }
        Ok(rows)
    }

    fn identifiers_of_profiles(&self, ids: &[String]) -> Result<Vec<(String, ProfileIdentifier)>> {
        let mut found = Vec::new();
        for id in ids {
            found.extend(self.profile_identifiers(id)?.into_iter().map(|i| (id.clone(), i)));
        }
        Ok(found)
    }

    fn profiles_of_records(&self, after: RecordId, through: RecordId) -> Result<Vec<String>> {
        let mut stmt =
            self.conn.prepare_cached("SELECT DISTINCT profile_id FROM assignments WHERE record_id > ?1 AND record_id <= ?2 ORDER BY 1")?;
        let rows = stmt.query_map([after, through], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn find_profiles(&self, kind: &str, value: &str) -> Result<Vec<String>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT DISTINCT profile_id FROM profile_identifiers WHERE kind = ?1 AND value = ?2 ORDER BY profile_id")?;
        let rows = stmt.query_map([kind, value], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn search_profiles(&self, folded_query: &str, limit: usize) -> Result<Vec<ProfileRow>> {
        let words: Vec<String> = folded_query.split_whitespace().map(|w| format!("%{}%", w.replace(['%', '_'], ""))).collect();
        if words.is_empty() {
            return Ok(vec![]);
        }
        let clause = (1..=words.len()).map(|i| format!("search_text LIKE ?{i}")).collect::<Vec<_>>().join(" AND ");
        let sql = format!(
            "SELECT id, traits, search_text, record_count FROM profiles WHERE {clause} ORDER BY record_count DESC, id LIMIT {limit}"
        );
        let mut stmt = self.conn.prepare(&sql)?;
        let rows = stmt.query_map(rusqlite::params_from_iter(words.iter()), profile_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn scan_assignments(&self, visit: &mut dyn FnMut(&str, &str, &str)) -> Result<()> {
        let mut stmt = self
            .conn
            .prepare("SELECT r.source, r.record_key, a.profile_id FROM records r JOIN assignments a ON a.record_id = r.id ORDER BY r.id")?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            visit(
                r.get_ref(0)?.as_str().map_err(rusqlite::Error::from)?,
                r.get_ref(1)?.as_str().map_err(rusqlite::Error::from)?,
                r.get_ref(2)?.as_str().map_err(rusqlite::Error::from)?,
            );
        }
        Ok(())
    }

    fn record_profile(&self, source: &str, key: &str) -> Result<Option<(i64, String)>> {
        Ok(self
            .conn
            .query_row(
                "SELECT r.id, a.profile_id FROM records r JOIN assignments a ON a.record_id = r.id WHERE r.source = ?1 AND r.record_key = ?2",
                [source, key],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?)
    }

    fn add_constraint(&mut self, c: &LinkConstraint) -> Result<()> {
        // Stored in a canonical order so (a, b) and (b, a) are one decision; the newest wins.
        let (l, r) = if c.left <= c.right { (&c.left, &c.right) } else { (&c.right, &c.left) };
        self.conn.execute(
            "INSERT INTO link_constraints (must, left_source, left_key, right_source, right_key) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (left_source, left_key, right_source, right_key) DO UPDATE SET must = excluded.must",
            params![c.must, l.0, l.1, r.0, r.1],
        )?;
        Ok(())
    }

    fn constraints(&self) -> Result<Vec<LinkConstraint>> {
        let mut stmt =
            self.conn.prepare("SELECT must, left_source, left_key, right_source, right_key FROM link_constraints ORDER BY rowid")?;
        let rows =
            stmt.query_map([], |r| Ok(LinkConstraint { must: r.get(0)?, left: (r.get(1)?, r.get(2)?), right: (r.get(3)?, r.get(4)?) }))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn record_run(&mut self, run: &SourceRun) -> Result<()> {
        self.conn.execute(
            "INSERT INTO source_runs (source, started_at, finished_at, read, inserted, duplicates, rejected, suppressed, error) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![run.source, run.started_at, run.finished_at, run.read as i64, run.inserted as i64, run.duplicates as i64, run.rejected as i64, run.suppressed as i64, run.error],
        )?;
        Ok(())
    }

    fn source_status(&self) -> Result<Vec<SourceStatus>> {
        let mut stmt = self.conn.prepare(
            "SELECT s.source, (SELECT COUNT(*) FROM records r WHERE r.source = s.source),
                    s.started_at, s.finished_at, s.read, s.inserted, s.duplicates, s.rejected, s.error, s.suppressed
             FROM source_runs s WHERE s.id = (SELECT MAX(id) FROM source_runs t WHERE t.source = s.source) ORDER BY s.source",
        )?;
        let rows = stmt.query_map([], |r| {
            let source: String = r.get(0)?;
            Ok(SourceStatus {
                records: r.get::<_, i64>(1)? as u64,
                last_run: Some(SourceRun {
                    source: source.clone(),
                    started_at: r.get(2)?,
                    finished_at: r.get(3)?,
                    read: r.get::<_, i64>(4)? as u64,
                    inserted: r.get::<_, i64>(5)? as u64,
                    duplicates: r.get::<_, i64>(6)? as u64,
                    rejected: r.get::<_, i64>(7)? as u64,
                    error: r.get(8)?,
                    suppressed: r.get::<_, i64>(9)? as u64,
                }),
                source,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn stats(&self) -> Result<Stats> {
        let count = |sql: &str| -> Result<u64> { Ok(self.conn.query_row(sql, [], |r| r.get::<_, i64>(0))? as u64) };
        Ok(Stats {
            records: count("SELECT COUNT(*) FROM records")?,
            profiles: count("SELECT COUNT(*) FROM profiles")?,
            multi_record_profiles: count("SELECT COUNT(*) FROM profiles WHERE record_count > 1")?,
            identifiers: count("SELECT COUNT(*) FROM profile_identifiers")?,
            merge_edges: count("SELECT COUNT(*) FROM merge_edges")?,
        })
    }

    fn records_per_hour(&self, from_ms: i64, to_ms: i64) -> Result<Vec<(i64, u64)>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT ts / 3600000 * 3600000 AS hour, COUNT(*) FROM records WHERE ts >= ?1 AND ts < ?2 GROUP BY hour ORDER BY hour",
        )?;
        let rows = stmt.query_map([from_ms, to_ms], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)? as u64)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn newest_record_time(&self) -> Result<Option<i64>> {
        Ok(self.conn.query_row("SELECT MAX(ts) FROM records", [], |r| r.get(0))?)
    }

    fn resolution_backlog(&self, through: RecordId) -> Result<(u64, Option<i64>)> {
        // The id range, not a count: counting a large backlog would cost more than resolving.
        let newest: i64 = self.conn.prepare_cached("SELECT COALESCE(MAX(id), 0) FROM records")?.query_row([], |r| r.get(0))?;
        let count = (newest - through).max(0);
        let oldest = self
            .conn
            .prepare_cached("SELECT ingested_at FROM records WHERE id > ?1 ORDER BY id LIMIT 1")?
            .query_row([through], |r| r.get(0))
            .optional()?;
        Ok((count as u64, oldest))
    }
}

impl ChangeFeed for SqliteStore {
    fn set_origin(&mut self, origin: &str) {
        self.origin = origin.to_string();
    }

    fn record_change(&mut self, kind: ChangeKind, detail: &Value) -> Result<()> {
        append_change(&self.conn, &self.origin, kind, detail)
    }

    fn changes_after(&self, after: u64, limit: usize) -> Result<Vec<Change>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT version, at_ms, origin, kind, detail FROM changes WHERE version > ?1 ORDER BY version LIMIT ?2")?;
        let rows = stmt.query_map(params![after as i64, limit.min(i64::MAX as usize) as i64], |r| {
            Ok((r.get::<_, i64>(0)?, r.get(1)?, r.get(2)?, r.get::<_, String>(3)?, r.get::<_, String>(4)?))
        })?;
        rows.map(|row| {
            let (version, at_ms, origin, kind, detail) = row?;
            crate::change_of(version, at_ms, origin, &kind, &detail)
        })
        .filter_map(Result::transpose)
        .collect()
    }

    fn change_head(&self) -> Result<u64> {
        let head: i64 = self.conn.prepare_cached("SELECT COALESCE(MAX(version), 0) FROM changes")?.query_row([], |r| r.get(0))?;
        Ok(head as u64)
    }
}

impl AudienceStore for SqliteStore {
    fn definitions(&self) -> Result<Vec<DefinitionRow>> {
        let mut stmt = self.conn.prepare_cached("SELECT kind, name, expression, created_at FROM definitions ORDER BY created_at, name")?;
        let rows =
            stmt.query_map([], |r| Ok(DefinitionRow { kind: r.get(0)?, name: r.get(1)?, expression: r.get(2)?, created_at: r.get(3)? }))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn save_definition(&mut self, d: &DefinitionRow) -> Result<()> {
        changing(&self.conn, &self.origin, ChangeKind::Definition, &json!({ "kind": d.kind, "name": d.name }), |conn| {
            conn.execute(
                "INSERT INTO definitions (kind, name, expression, created_at) VALUES (?1, ?2, ?3, ?4)",
                params![d.kind, d.name, d.expression, d.created_at],
            )?;
            Ok(())
        })
    }

    fn set_definition_expression(&mut self, kind: &str, name: &str, expression: &str) -> Result<()> {
        changing(&self.conn, &self.origin, ChangeKind::Definition, &json!({ "kind": kind, "name": name }), |conn| {
            conn.execute("UPDATE definitions SET expression = ?3 WHERE kind = ?1 AND name = ?2", [kind, name, expression])?;
            Ok(())
        })
    }

    fn delete_definition(&mut self, kind: &str, name: &str) -> Result<()> {
        changing(&self.conn, &self.origin, ChangeKind::Definition, &json!({ "kind": kind, "name": name }), |conn| {
            conn.execute("DELETE FROM definitions WHERE kind = ?1 AND name = ?2", [kind, name])?;
            if kind == "segment" {
                conn.execute("DELETE FROM segment_members WHERE segment = ?1", [name])?;
                conn.execute("DELETE FROM segment_sizes WHERE segment = ?1", [name])?;
            }
            Ok(())
        })
    }

    fn record_transitions(&mut self, transitions: &[SegmentTransition], sizes: &[(String, u64)], at: i64) -> Result<()> {
        let tx = self.conn.savepoint()?;
        {
            // Only for profiles that exist: an engine may still hold one merged away or erased
            // by another process. A transition is logged only when it changes the stored
            // membership: with several nodes each evaluating time-based segments, the first to
            // record an entry logs it and the others find it done (one flow run, not one per node).
            let mut enter = tx.prepare_cached(
                "INSERT INTO segment_members (segment, profile_id, since) SELECT ?1, ?2, ?3
                 WHERE EXISTS (SELECT 1 FROM profiles WHERE id = ?2) ON CONFLICT (segment, profile_id) DO NOTHING",
            )?;
            let mut leave = tx.prepare_cached("DELETE FROM segment_members WHERE segment = ?1 AND profile_id = ?2")?;
            let mut log = tx.prepare_cached(
                "INSERT INTO segment_transitions (profile_id, segment, entered, at) SELECT ?1, ?2, ?3, ?4
                 WHERE EXISTS (SELECT 1 FROM profiles WHERE id = ?1)",
            )?;
            for t in transitions {
                let changed = if t.entered {
                    enter.execute(params![t.segment, t.profile, t.at])?
                } else {
                    leave.execute(params![t.segment, t.profile])?
                };
                if changed > 0 {
                    log.execute(params![t.profile, t.segment, t.entered, t.at])?;
                }
            }
            let mut size = tx.prepare_cached("INSERT OR REPLACE INTO segment_sizes (segment, at, size) VALUES (?1, ?2, ?3)")?;
            for (segment, n) in sizes {
                size.execute(params![segment, at, *n as i64])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn forget_memberships(&mut self, profiles: &[String]) -> Result<()> {
        self.conn.execute(
            "DELETE FROM segment_members WHERE profile_id IN (SELECT value FROM json_each(?1))",
            [serde_json::to_string(profiles)?],
        )?;
        Ok(())
    }

    fn memberships(&self) -> Result<Vec<(String, String)>> {
        let mut stmt = self.conn.prepare("SELECT segment, profile_id FROM segment_members ORDER BY segment, profile_id")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn segment_members(&self, segment: &str, offset: u64, limit: u64) -> Result<Vec<String>> {
        let mut stmt =
            self.conn.prepare_cached("SELECT profile_id FROM segment_members WHERE segment = ?1 ORDER BY profile_id LIMIT ?2 OFFSET ?3")?;
        let rows = stmt.query_map(params![segment, limit as i64, offset as i64], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn segment_sizes(&self, segment: &str) -> Result<Vec<(i64, u64)>> {
        let mut stmt = self.conn.prepare_cached("SELECT at, size FROM segment_sizes WHERE segment = ?1 ORDER BY at")?;
        let rows = stmt.query_map([segment], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn profile_transitions(&self, profile: &str) -> Result<Vec<SegmentTransition>> {
        let mut stmt =
            self.conn.prepare_cached("SELECT segment, entered, at FROM segment_transitions WHERE profile_id = ?1 ORDER BY at, rowid")?;
        let rows = stmt.query_map([profile], |r| {
            Ok(SegmentTransition { segment: r.get(0)?, profile: profile.to_string(), entered: r.get(1)?, at: r.get(2)? })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn scan_profile_records(&self, visit: &mut dyn FnMut(&str, RecordView<'_>)) -> Result<()> {
        let mut stmt = self.conn.prepare(
            "SELECT r.id, r.source, r.record_key, r.payload, r.identifiers, r.ts, a.profile_id
             FROM assignments a JOIN records r ON r.id = a.record_id ORDER BY a.profile_id, r.id",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            visit(r.get_ref(6)?.as_str().map_err(rusqlite::Error::from)?, view(r)?);
        }
        Ok(())
    }
}

impl AccessStore for SqliteStore {
    fn add_token(&mut self, name: &str, role: &str, hash: &str) -> Result<()> {
        changing(&self.conn, &self.origin, ChangeKind::Access, &json!({ "token": name }), |conn| {
            conn.execute(
                "INSERT INTO api_tokens (hash, name, role, created_at) VALUES (?1, ?2, ?3, ?4)",
                params![hash, name, role, now_ms()],
            )?;
            Ok(())
        })
    }

    fn set_user(&mut self, name: &str, role: &str, password_hash: &str) -> Result<()> {
        changing(&self.conn, &self.origin, ChangeKind::Access, &json!({ "user": name }), |conn| {
            conn.execute(
                "INSERT INTO users (name, role, password_hash, created_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (name) DO UPDATE SET role = excluded.role, password_hash = excluded.password_hash",
                params![name, role, password_hash, now_ms()],
            )?;
            Ok(())
        })
    }

    fn user(&self, name: &str) -> Result<Option<UserRow>> {
        Ok(self
            .conn
            .prepare_cached("SELECT name, role, password_hash FROM users WHERE name = ?1")?
            .query_row([name], |r| Ok(UserRow { name: r.get(0)?, role: r.get(1)?, password_hash: r.get(2)? }))
            .optional()?)
    }

    fn token(&self, hash: &str) -> Result<Option<TokenRow>> {
        Ok(self
            .conn
            .prepare_cached("SELECT name, role, created_at FROM api_tokens WHERE hash = ?1")?
            .query_row([hash], |r| Ok(TokenRow { name: r.get(0)?, role: r.get(1)?, created_at: r.get(2)? }))
            .optional()?)
    }

    fn set_write_key(&mut self, source: &str, hash: &str) -> Result<()> {
        changing(&self.conn, &self.origin, ChangeKind::Access, &json!({ "write_key": source }), |conn| {
            conn.execute(
                "INSERT INTO write_keys (source, hash, created_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (source) DO UPDATE SET hash = excluded.hash, created_at = excluded.created_at",
                params![source, hash, now_ms()],
            )?;
            Ok(())
        })
    }

    fn source_for_write_key(&self, hash: &str) -> Result<Option<String>> {
        Ok(self.conn.query_row("SELECT source FROM write_keys WHERE hash = ?1", [hash], |r| r.get(0)).optional()?)
    }

    fn set_source_enabled(&mut self, source: &str, enabled: bool) -> Result<()> {
        changing(&self.conn, &self.origin, ChangeKind::Access, &json!({ "switch": source }), |conn| {
            conn.execute(
                "INSERT INTO source_switches (source, enabled) VALUES (?1, ?2) ON CONFLICT (source) DO UPDATE SET enabled = excluded.enabled",
                params![source, enabled],
            )?;
            Ok(())
        })
    }

    fn source_switches(&self) -> Result<Vec<(String, bool)>> {
        let mut stmt = self.conn.prepare_cached("SELECT source, enabled FROM source_switches ORDER BY source")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn tokens(&self) -> Result<Vec<TokenRow>> {
        let mut stmt = self.conn.prepare("SELECT name, role, created_at FROM api_tokens ORDER BY created_at, name")?;
        let rows = stmt.query_map([], |r| Ok(TokenRow { name: r.get(0)?, role: r.get(1)?, created_at: r.get(2)? }))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn revoke_token(&mut self, name: &str) -> Result<u64> {
        changing(&self.conn, &self.origin, ChangeKind::Access, &json!({ "token": name }), |conn| {
            Ok(conn.execute("DELETE FROM api_tokens WHERE name = ?1", [name])? as u64)
        })
    }
}

fn audit_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AuditRow> {
    Ok(AuditRow { seq: r.get::<_, i64>(0)? as u64, at_ms: r.get(1)?, actor: r.get(2)?, profile: r.get(3)?, line: r.get(4)? })
}

impl GovernanceStore for SqliteStore {
    fn append_audit(&mut self, rows: &[AuditRow]) -> Result<()> {
        let tx = self.audit.savepoint()?;
        {
            let mut stmt = tx.prepare_cached("INSERT INTO audit_log (seq, at_ms, actor, profile, line) VALUES (?1, ?2, ?3, ?4, ?5)")?;
            for row in rows {
                stmt.execute(params![row.seq as i64, row.at_ms, row.actor, row.profile, row.line])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn sync_audit(&self) -> Result<()> {
        sync_wal(self.audit.path())
    }

    fn last_audit(&self) -> Result<Option<AuditRow>> {
        Ok(self
            .audit
            .query_row("SELECT seq, at_ms, actor, profile, line FROM audit_log ORDER BY seq DESC LIMIT 1", [], audit_row)
            .optional()?)
    }

    fn audit_lines(&self, filter: &AuditFilter, limit: usize) -> Result<Vec<AuditRow>> {
        let mut stmt = self.audit.prepare_cached(
            "SELECT seq, at_ms, actor, profile, line FROM audit_log
             WHERE seq > ?1 AND (?2 IS NULL OR profile = ?2) AND (?3 IS NULL OR actor = ?3) AND (?4 IS NULL OR at_ms >= ?4)
             ORDER BY seq LIMIT ?5",
        )?;
        let rows = stmt.query_map(
            params![filter.after_seq as i64, filter.profile, filter.actor, filter.since_ms, limit.min(i64::MAX as usize) as i64],
            audit_row,
        )?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn add_suppressions(&mut self, hashes: &[String], request: &str) -> Result<()> {
        changing(&self.conn, &self.origin, ChangeKind::Suppressions, &json!({}), |conn| {
            let mut stmt = conn.prepare_cached("INSERT OR IGNORE INTO suppressions (hash, request, created_at) VALUES (?1, ?2, ?3)")?;
            for hash in hashes {
                stmt.execute(params![hash, request, now_ms()])?;
            }
            Ok(())
        })
    }

    fn remove_suppressions(&mut self, hashes: &[String]) -> Result<u64> {
        let list = serde_json::to_string(hashes)?;
        changing(&self.conn, &self.origin, ChangeKind::Suppressions, &json!({}), |conn| {
            Ok(conn.execute("DELETE FROM suppressions WHERE hash IN (SELECT value FROM json_each(?1))", [list])? as u64)
        })
    }

    fn suppressions_version(&self) -> Result<(u64, i64)> {
        Ok(self
            .conn
            .prepare_cached("SELECT COUNT(*), COALESCE(MAX(created_at), 0) FROM suppressions")?
            .query_row([], |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?)))?)
    }

    fn suppressions(&self) -> Result<Vec<String>> {
        let mut stmt = self.conn.prepare("SELECT hash FROM suppressions ORDER BY hash")?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn unassigned_records_with(&self, kind: &str, value: &str) -> Result<Vec<RecordId>> {
        // Identifiers are stored as `kind\tvalue` lines; `instr` narrows, the decode confirms.
        let mut stmt = self.conn.prepare(
            "SELECT r.id, r.identifiers FROM records r
             WHERE instr(r.identifiers, ?1) > 0 AND NOT EXISTS (SELECT 1 FROM assignments a WHERE a.record_id = r.id)",
        )?;
        let rows = stmt.query_map([format!("{kind}\t{value}")], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))?;
        let mut out = Vec::new();
        for row in rows {
            let (id, identifiers) = row?;
            if decode_identifiers(&identifiers).any(|(k, v)| k == kind && v == value) {
                out.push(id);
            }
        }
        Ok(out)
    }

    fn erase(&mut self, profiles: &[String], records: &[RecordId]) -> Result<ErasureCounts> {
        // ON, not FAST: FAST leaves deleted content in pages that go to the freelist.
        self.conn.pragma_update(None, "secure_delete", "ON")?;
        let erased = changing(&self.conn, &self.origin, ChangeKind::Erasure, &json!({ "profiles": profiles }), |conn| {
            erase_rows(conn, profiles, records)
        });
        self.conn.pragma_update(None, "secure_delete", "FAST")?;
        erased
    }

    fn purge_deleted(&mut self) -> Result<()> {
        // Deleting leaves copies where secure_delete cannot reach them: divider keys in
        // interior b-tree pages, and older page images in the WAL. VACUUM writes the live
        // rows into a fresh file; the TRUNCATE checkpoint then copies it over the database
        // and empties the WAL. A reader in the middle of a transaction holds the WAL, so
        // the checkpoint is retried for a while.
        self.conn.execute_batch("VACUUM")?;
        for _ in 0..200 {
            let busy: i64 = self.conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))?;
            if busy == 0 {
                return Ok(());
            }
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        Err(StoreError::Schema(
            "the write-ahead log could not be emptied because another connection kept reading for 5 s; \
             the erased data is deleted but may remain in kinship.sqlite-wal until the next checkpoint: run the erasure again"
                .into(),
        ))
    }
}

/// The deletes of [`GovernanceStore::erase`], in one transaction.
fn erase_rows(conn: &Connection, profiles: &[String], records: &[RecordId]) -> Result<ErasureCounts> {
    // A savepoint: atomic on its own, and part of the caller's transaction when there is one.
    conn.execute_batch("SAVEPOINT erase")?;
    match delete_rows(conn, profiles, records) {
        Ok(counts) => {
            conn.execute_batch("RELEASE erase")?;
            Ok(counts)
        }
        Err(e) => {
            conn.execute_batch("ROLLBACK TO erase; RELEASE erase")?;
            Err(e)
        }
    }
}

fn delete_rows(tx: &Connection, profiles: &[String], records: &[RecordId]) -> Result<ErasureCounts> {
    let profile_list = serde_json::to_string(profiles)?;
    let mut record_ids: Vec<RecordId> = {
        let mut stmt = tx.prepare("SELECT record_id FROM assignments WHERE profile_id IN (SELECT value FROM json_each(?1))")?;
        stmt.query_map([&profile_list], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?
    };
    record_ids.extend_from_slice(records);
    record_ids.sort_unstable();
    record_ids.dedup();
    let record_list = serde_json::to_string(&record_ids)?;
    let by_profile = |table: &str| -> Result<u64> {
        Ok(tx.execute(&format!("DELETE FROM {table} WHERE profile_id IN (SELECT value FROM json_each(?1))"), [&profile_list])? as u64)
    };
    let mut counts = ErasureCounts {
        link_constraints: tx.execute(
            "DELETE FROM link_constraints WHERE EXISTS (SELECT 1 FROM records r WHERE r.id IN (SELECT value FROM json_each(?1))
               AND ((r.source = left_source AND r.record_key = left_key) OR (r.source = right_source AND r.record_key = right_key)))",
            [&record_list],
        )? as u64,
        assignments: by_profile("assignments")?,
        identifiers: by_profile("profile_identifiers")?,
        merge_edges: by_profile("merge_edges")?,
        ..ErasureCounts::default()
    };
    counts.assignments +=
        tx.execute("DELETE FROM assignments WHERE record_id IN (SELECT value FROM json_each(?1))", [&record_list])? as u64;
    counts.merge_edges += tx.execute(
        "DELETE FROM merge_edges WHERE left_record IN (SELECT value FROM json_each(?1)) OR right_record IN (SELECT value FROM json_each(?1))",
        [&record_list],
    )? as u64;
    counts.profiles = tx.execute("DELETE FROM profiles WHERE id IN (SELECT value FROM json_each(?1))", [&profile_list])? as u64;
    counts.records = tx.execute("DELETE FROM records WHERE id IN (SELECT value FROM json_each(?1))", [&record_list])? as u64;
    // Every table that holds a person's data is deleted here, so that erasure stays
    // complete: segment memberships and the entries and exits on their timeline, flow runs
    // (their traces hold gathered values), tasks and deliveries.
    counts.segment_memberships = by_profile("segment_members")? + by_profile("segment_transitions")?;
    counts.flow_runs = by_profile("flow_runs")?;
    counts.tasks = by_profile("tasks")?;
    counts.deliveries = by_profile("deliveries")?;
    counts.flow_runs += by_profile("flow_waits")?;
    counts.health_alerts = by_profile("health_alerts")?;
    // Earlier change-feed entries stop naming the profiles (an entry may name others too, so
    // it stays); the erasure's own entry names them for the other processes, for the
    // feed's ten minutes.
    let mut unname = tx.prepare_cached("UPDATE changes SET detail = replace(detail, ?1, '\"<erased>\"') WHERE instr(detail, ?1) > 0")?;
    for profile in profiles {
        unname.execute([format!("\"{profile}\"")])?;
    }
    tx.execute("DELETE FROM changes WHERE at_ms < ?1", [now_ms() - CHANGE_RETENTION_MS])?;
    Ok(counts)
}
