//! Storage of the record log and the profiles derived from it, behind narrow traits
//! ([`Store`], [`AudienceStore`], [`AccessStore`], [`GovernanceStore`]). Two backends
//! implement all of them: an embedded SQLite file (the default) and a shared PostgreSQL
//! database for several nodes. [`open`] picks one by the location's form; nothing outside
//! the two modules knows which is in use.

mod act;
mod postgres;
mod sqlite;

pub use act::{
    ActStore, AlertChanges, AlertRow, DeliveryAttempt, DeliveryRow, FlowRow, NewAlert, NewDelivery, NewRun, NewTask, NewWait, RunRow,
    TASK_STATUSES, TaskFilter, TaskRow, WaitRow, endpoint_gone_key,
};
pub use postgres::PostgresStore;
pub use sqlite::{SqliteStore, audit_path};

/// Every store trait at once: what the CLI and the server hold.
pub trait Database: Store + AudienceStore + AccessStore + GovernanceStore + ChangeFeed + ActStore + Send {
    /// Makes every committed write durable before returning. SQLite commits with
    /// `synchronous=NORMAL` and flushes its log here, outside the write lock; PostgreSQL
    /// commits durably already.
    fn flush_log(&self) -> Result<()>;
    /// Moves SQLite's write-ahead log into the database file (for measuring a bulk load to
    /// the same point as a closed file); nothing to do on PostgreSQL.
    fn checkpoint(&self) -> Result<()>;
    /// `sqlite` or `postgres`, for status output.
    fn backend(&self) -> &'static str;
    /// Whether writers on different connections commit side by side (PostgreSQL), rather
    /// than one at a time (SQLite, where a process's writers had better take turns than
    /// wait in SQLite's busy handler).
    fn concurrent_writers(&self) -> bool;
    /// Opens a read-only transaction for the reads that follow, ended by
    /// [`Database::end_read`]: a document assembled from several queries then comes from one
    /// snapshot, never from both sides of a resolution. Does nothing inside a transaction.
    fn begin_read(&self) -> Result<()>;
    /// Ends the transaction [`Database::begin_read`] opened, if it opened one.
    fn end_read(&self) -> Result<()>;
}

/// Opens the store at `location`: a `postgres://` or `postgresql://` URL, or else a SQLite
/// file path. Creates the schema, or brings it up to date, either way.
pub fn open(location: &str) -> Result<Box<dyn Database>> {
    if is_postgres_url(location) {
        Ok(Box::new(PostgresStore::connect(location)?))
    } else {
        Ok(Box::new(SqliteStore::open(std::path::Path::new(location))?))
    }
}

pub fn is_postgres_url(location: &str) -> bool {
    location.starts_with("postgres://") || location.starts_with("postgresql://")
}

/// A location fit for messages: a URL's password replaced by `***`.
pub fn redacted(location: &str) -> String {
    if !is_postgres_url(location) {
        return location.to_string();
    }
    let Some((scheme, rest)) = location.split_once("://") else { return location.to_string() };
    match rest.split_once('@') {
        Some((credentials, host)) => match credentials.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
            None => location.to_string(),
        },
        None => location.to_string(),
    }
}

/// What kind of shared state a [`Change`] touched. Every process keeps copies of some of it
/// in memory (definitions compiled into its audience, profiles in its fuzzy index, tokens
/// in a cache) and follows the feed to bring them up to date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    /// A segment or computed trait defined, rewritten or deleted: `{"kind", "name"}`.
    Definition,
    /// Tokens, users, write keys or source switches: caches of them are dropped.
    Access,
    /// The suppression list of erased identifiers grew or shrank.
    Suppressions,
    /// People erased: `{"profiles": [...]}`.
    Erasure,
    /// Profiles changed by a resolution: `{"touched": [...], "removed": [...]}`.
    Profiles,
    /// Every profile rebuilt by a full resolution: whatever was derived from them is reloaded.
    Rebuild,
    /// Sources in kinship.toml added, edited or deleted by another process.
    Sources,
    /// A flow saved: `{"name", "version"}`.
    Flows,
}

impl ChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Definition => "definition",
            ChangeKind::Access => "access",
            ChangeKind::Suppressions => "suppressions",
            ChangeKind::Erasure => "erasure",
            ChangeKind::Profiles => "profiles",
            ChangeKind::Rebuild => "rebuild",
            ChangeKind::Sources => "sources",
            ChangeKind::Flows => "flows",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            ChangeKind::Definition,
            ChangeKind::Access,
            ChangeKind::Suppressions,
            ChangeKind::Erasure,
            ChangeKind::Profiles,
            ChangeKind::Rebuild,
            ChangeKind::Sources,
            ChangeKind::Flows,
        ]
        .into_iter()
        .find(|k| k.as_str() == text)
    }
}

/// One entry of the change feed, numbered in the order the changes committed.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Change {
    pub version: u64,
    pub at_ms: i64,
    /// The process that made it ([`ChangeFeed::set_origin`]).
    pub origin: String,
    pub kind: ChangeKind,
    pub detail: serde_json::Value,
}

/// How long the change feed keeps an entry: a process that falls further behind (or
/// starts) reloads what it holds instead of replaying the feed.
pub const CHANGE_RETENTION_MS: i64 = 600_000;

/// This process's name in the changes its connections write, unless one is set: the
/// process id and its start time, so two runs of the CLI never share one.
pub fn process_origin() -> &'static str {
    static ORIGIN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ORIGIN.get_or_init(|| {
        let started = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        format!("pid{}-{:x}", std::process::id(), started & 0xffff_ffff)
    })
}

/// The change feed: every change to state that processes hold copies of carries a version,
/// written in the same transaction as the change itself, so a follower that reads the feed
/// in version order misses nothing and never sees a change before the data it names.
/// The store's own methods record their changes (definitions, access, suppressions,
/// erasure, a full rebuild); callers record what only they know (profiles a real-time
/// resolution touched, sources edited in kinship.toml).
pub trait ChangeFeed {
    /// Names the process in the changes this connection writes from now on.
    fn set_origin(&mut self, origin: &str);
    /// Appends a change, in the current transaction if one is open.
    fn record_change(&mut self, kind: ChangeKind, detail: &serde_json::Value) -> Result<()>;
    /// Up to `limit` changes with versions above `after`, oldest first; kinds this build
    /// does not know are left out.
    fn changes_after(&self, after: u64, limit: usize) -> Result<Vec<Change>>;
    /// The newest version (0 when the feed is empty).
    fn change_head(&self) -> Result<u64>;
}

/// A stored change, or `None` for a kind this build does not know (written by a newer
/// kinship during a rolling upgrade: there is nothing here it could apply).
fn change_of(version: i64, at_ms: i64, origin: String, kind: &str, detail: &str) -> Result<Option<Change>> {
    let Some(kind) = ChangeKind::parse(kind) else { return Ok(None) };
    Ok(Some(Change { version: version as u64, at_ms, origin, kind, detail: serde_json::from_str(detail)? }))
}

/// What [`GovernanceStore::erase`] deleted, table by table.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ErasureCounts {
    pub profiles: u64,
    pub records: u64,
    pub assignments: u64,
    pub identifiers: u64,
    pub merge_edges: u64,
    pub link_constraints: u64,
    /// Segment memberships and the entries and exits recorded on the timeline.
    pub segment_memberships: u64,
    /// Flow runs, tasks and deliveries about the person.
    pub flow_runs: u64,
    pub tasks: u64,
    pub deliveries: u64,
    /// Health alerts about the person, open or closed.
    pub health_alerts: u64,
}

/// Which audit lines [`GovernanceStore::audit_lines`] returns; every filter set must hold.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub profile: Option<String>,
    pub actor: Option<String>,
    /// Entries at or after this time (Unix milliseconds).
    pub since_ms: Option<i64>,
    /// Entries with a higher sequence number only.
    pub after_seq: u64,
}

/// One audit entry as stored: its chained text plus copies of the fields it is searched by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    pub seq: u64,
    pub at_ms: i64,
    pub actor: String,
    pub profile: Option<String>,
    /// The entry in its canonical one-line form; the chain is verified on this text.
    pub line: String,
}

/// An API token as stored: never the token itself, only its hash.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TokenRow {
    pub name: String,
    pub role: String,
    pub created_at: i64,
}

/// A person who signs in to the web UI.
#[derive(Debug, Clone)]
pub struct UserRow {
    pub name: String,
    pub role: String,
    /// The argon2 hash in PHC string format.
    pub password_hash: String,
}

use kinship_core::{LinkConstraint, MergeEdge, NewRecord, ProfileIdentifier, ProfileRow, RecordId, SourceRun, StoredRecord};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("PostgreSQL error: {}", describe_postgres(.0))]
    Postgres(#[from] ::postgres::Error),
    #[error("{0}")]
    Schema(String),
    #[error("stored JSON is corrupt: {0}")]
    Json(#[from] serde_json::Error),
}

pub type Result<T> = std::result::Result<T, StoreError>;

impl StoreError {
    /// Whether the database gave up on this transaction because another one held what it
    /// needed (a deadlock): trying the same work again succeeds.
    pub fn is_deadlock(&self) -> bool {
        matches!(self, StoreError::Postgres(e) if e.code() == Some(&::postgres::error::SqlState::T_R_DEADLOCK_DETECTED))
    }
}

/// A PostgreSQL error with what the server said (the client's own text is only "db error").
fn describe_postgres(e: &::postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut text = format!("{} ({})", db.message(), db.code().code());
            if let Some(detail) = db.detail() {
                text.push_str(&format!("; {detail}"));
            }
            if let Some(hint) = db.hint() {
                text.push_str(&format!("; hint: {hint}"));
            }
            text
        }
        None => e.to_string(),
    }
}

/// What [`Store::scan_records`] hands over for each record, borrowed for the call.
pub struct RecordView<'a> {
    pub id: RecordId,
    pub source: &'a str,
    pub key: &'a str,
    pub payload: &'a str,
    pub identifiers: &'a str,
    pub timestamp: Option<i64>,
}

/// A complete resolution, written in one transaction so readers never see half of one.
pub struct ResolutionWrite<'a> {
    pub profiles: &'a [ProfileRow],
    /// (record, index into `profiles`).
    pub assignments: &'a [(RecordId, u32)],
    /// (index into `profiles`, identifier).
    pub identifiers: &'a [(u32, ProfileIdentifier)],
    /// (index into `profiles`, evidence).
    pub edges: &'a [(u32, MergeEdge)],
}

/// Records added to one existing profile ([`Store::attach_records`]).
pub struct Attachment {
    /// The profile as it is with the records: traits, search text, record count.
    pub profile: ProfileRow,
    pub records: Vec<RecordId>,
    /// Identifiers it did not hold before.
    pub identifiers: Vec<ProfileIdentifier>,
}

/// A profile with its records and identifiers, as a full resolution streams them.
pub struct BuiltProfile {
    pub row: ProfileRow,
    pub records: Vec<RecordId>,
    pub identifiers: Vec<ProfileIdentifier>,
}

/// A full resolution, streamed so that building golden records overlaps writing them.
pub struct FullResolution<'a> {
    /// The profile id of each cluster.
    pub ids: &'a [String],
    /// Every profile, in batches, in ascending id order.
    pub profiles: &'a mut dyn Iterator<Item = Vec<BuiltProfile>>,
    /// (cluster, evidence).
    pub edges: &'a [(u32, MergeEdge)],
}

#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct SourceStatus {
    pub source: String,
    pub records: u64,
    pub last_run: Option<SourceRun>,
}

#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Stats {
    pub records: u64,
    pub profiles: u64,
    pub multi_record_profiles: u64,
    pub identifiers: u64,
    pub merge_edges: u64,
}

/// Meta key holding the resolved position: every record with an id up to it is resolved.
pub const RESOLVED_THROUGH: &str = "resolved_through";

/// How many parts the identity graph is split into for resolvers on several nodes
/// ([`Store::partition_turn`]). Fixed: each record's part is stored when it is logged.
pub const PARTITIONS: i16 = 16;

/// The part of the identity graph a record belongs to: the part every one of its
/// identifiers hashes to, or -1 when they hash to different parts (such a record joins
/// two parts, and only a resolution of the whole log takes it). A record without
/// identifiers shares nothing, and goes by its key.
pub fn partition_of(identifiers: &str, key: &str) -> i16 {
    // FNV-1a: stable across builds and platforms, unlike the standard library's hasher.
    fn hash(parts: &[&[u8]]) -> i16 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for (i, part) in parts.iter().enumerate() {
            if i > 0 {
                h = (h ^ 0xff).wrapping_mul(0x100_0000_01b3);
            }
            for b in *part {
                h = (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
            }
        }
        (h % PARTITIONS as u64) as i16
    }
    let mut part = None;
    for (kind, value) in kinship_core::decode_identifiers(identifiers) {
        let p = hash(&[kind.as_bytes(), value.as_bytes()]);
        match part {
            None => part = Some(p),
            Some(q) if q != p => return -1,
            Some(_) => {}
        }
    }
    part.unwrap_or_else(|| hash(&[key.as_bytes()]))
}

/// What a resolver may do next on a store shared by several nodes ([`Store::partition_turn`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartitionTurn {
    /// This resolver holds these parts' turns, in an open transaction: it resolves their
    /// records with ids after each part's own position (`after`, one per part) and up to
    /// `through`, in log order, every one of them committed (`committed` is the newest id
    /// up to which all have). `alone`: it holds every part, so no other resolver writes
    /// profiles beside it.
    Parts { parts: Vec<i16>, after: Vec<RecordId>, through: RecordId, committed: RecordId, alone: bool },
    /// Next comes a record only a resolution of the whole log may take (one joining two
    /// parts, or logged before parts existed): resolve with [`Store::begin_resolution`].
    Whole,
    /// Every part with records waiting is being resolved by another resolver.
    Busy,
    /// Every committed record is resolved; the resolved position is now `through`.
    CaughtUp { through: RecordId },
}

pub trait Store {
    /// Appends records of a source; a key already logged for the source is skipped.
    /// Returns, for each record, its new id, or `None` when it was already logged.
    fn insert_records(&mut self, source: &str, records: &[NewRecord], ingested_at: i64) -> Result<Vec<Option<RecordId>>>;
    /// Visits every record in id order.
    fn scan_records(&self, visit: &mut dyn FnMut(RecordView<'_>)) -> Result<()>;
    /// The profile each of the given records is on (records on none are left out).
    fn profiles_of(&self, records: &[RecordId]) -> Result<Vec<(RecordId, String)>>;
    /// Visits every record of the given profiles with its profile, by profile then id.
    fn scan_records_of(&self, profiles: &[String], visit: &mut dyn FnMut(&str, RecordView<'_>)) -> Result<()>;
    /// Visits the given records, and every record of the given profiles, in id order.
    fn scan_selected(&self, records: &[RecordId], profiles: &[String], visit: &mut dyn FnMut(RecordView<'_>)) -> Result<()>;
    /// One source's resolved records, each with its profile (the case queue reads a help
    /// desk's tickets this way, by the log's (source, key) index).
    fn scan_source_records(&self, source: &str, visit: &mut dyn FnMut(&str, RecordView<'_>)) -> Result<()>;
    /// Replaces every derived profile with a new resolution, in one transaction.
    fn replace_resolution(&mut self, resolution: FullResolution<'_>) -> Result<()>;
    /// Removes the given profiles and writes the given ones in their place.
    fn replace_profiles(&mut self, remove: &[String], resolution: &ResolutionWrite<'_>) -> Result<()>;
    /// Adds records to existing profiles in one write: each profile's updated row, the
    /// records assigned to it and the identifiers it gained.
    fn attach_records(&mut self, attachments: &[Attachment]) -> Result<()>;
    /// Groups the following writes into one transaction, ended by [`Store::commit`].
    fn begin(&mut self) -> Result<()>;
    /// Starts the transaction of a resolution and returns the newest record id up to which
    /// every record has committed: a resolver takes records up to it, so none is skipped
    /// when inserts commit out of id order. On a store shared by several nodes it also
    /// waits until no other node resolves.
    fn begin_resolution(&mut self) -> Result<RecordId>;
    /// Whether resolvers may work on parts of the identity graph at once (a store several
    /// nodes share). Then records already resolved in their part may follow the resolved
    /// position, and a resolution of the whole log passes over them.
    fn partitioned(&self) -> bool {
        false
    }
    /// Starts a resolution of parts that have records waiting and that no other resolver
    /// holds: about an equal share of them for each resolver at work; `start` spreads
    /// resolvers over the parts. The embedded store has one resolver: it always resolves
    /// the whole log.
    fn partition_turn(&mut self, start: usize) -> Result<PartitionTurn> {
        let _ = start;
        Ok(PartitionTurn::Whole)
    }
    /// Visits, in id order, up to `limit` records of the given parts, each with an id after
    /// its part's `after` and up to `through`.
    fn scan_partitions(
        &self,
        parts: &[i16],
        after: &[RecordId],
        through: RecordId,
        limit: usize,
        visit: &mut dyn FnMut(RecordView<'_>),
    ) -> Result<()> {
        let _ = (parts, after, through, limit, visit);
        Err(StoreError::Schema("this store resolves the whole log at once; it has no parts".into()))
    }
    /// Ends a resolution of parts: their records up to `through` are resolved. Moves the
    /// resolved position as far as every part allows, and returns it.
    fn finish_partitions(&mut self, parts: &[i16], through: RecordId, committed: RecordId) -> Result<RecordId> {
        let _ = (parts, through, committed);
        Err(StoreError::Schema("this store resolves the whole log at once; it has no parts".into()))
    }
    /// Leaves these records to a resolution of the whole log: they become barriers, as if
    /// they joined parts.
    fn defer_to_whole(&mut self, records: &[RecordId]) -> Result<()> {
        let _ = records;
        Ok(())
    }
    /// Locks these profiles' rows until the transaction ends, so that resolvers of other
    /// parts wait rather than rewrite them at the same time; returns those locked, the ones
    /// that still exist (another resolver may have rewritten some while this one waited).
    fn lock_profiles(&mut self, ids: &[String]) -> Result<Vec<String>> {
        Ok(ids.to_vec())
    }
    /// Before a full rebuild: on a store shared by several nodes, holds off record inserts
    /// and resolutions on every node until [`Store::unlock_after_rebuild`], so the rebuild
    /// reads a log nobody adds to. The embedded store needs nothing (one writer at a time).
    fn lock_for_rebuild(&mut self) -> Result<()> {
        Ok(())
    }
    fn unlock_after_rebuild(&mut self) -> Result<()> {
        Ok(())
    }
    fn commit(&mut self) -> Result<()>;
    fn rollback(&mut self) -> Result<()>;
    /// Visits up to `limit` records with ids above `after`, in id order.
    fn scan_after(&self, after: RecordId, limit: usize, visit: &mut dyn FnMut(RecordView<'_>)) -> Result<()>;
    fn meta(&self, key: &str) -> Result<Option<String>>;
    fn set_meta(&mut self, key: &str, value: &str) -> Result<()>;

    fn profile(&self, id: &str) -> Result<Option<ProfileRow>>;
    fn profile_records(&self, id: &str) -> Result<Vec<StoredRecord>>;
    fn profile_identifiers(&self, id: &str) -> Result<Vec<ProfileIdentifier>>;
    fn profile_edges(&self, id: &str) -> Result<Vec<MergeEdge>>;
    /// Visits (id, traits) of every profile.
    fn scan_profiles(&self, visit: &mut dyn FnMut(&str, &str)) -> Result<()>;
    /// Profiles holding an identifier.
    fn find_profiles(&self, kind: &str, value: &str) -> Result<Vec<String>>;
    /// The profiles holding each of these (kind, value) identifiers, in one lookup:
    /// (kind, value, profile) for every holder.
    fn find_profiles_of(&self, identifiers: &[(String, String)]) -> Result<Vec<(String, String, String)>>;
    /// These profiles (those that exist), in one lookup.
    fn profiles_by_id(&self, ids: &[String]) -> Result<Vec<ProfileRow>>;
    /// The identifiers of these profiles, in one lookup: (profile, identifier).
    fn identifiers_of_profiles(&self, ids: &[String]) -> Result<Vec<(String, ProfileIdentifier)>>;
    /// The profiles holding records with ids in `(after, through]`.
    fn profiles_of_records(&self, after: RecordId, through: RecordId) -> Result<Vec<String>>;
    /// Profiles whose search text contains every word of `folded_query`.
    fn search_profiles(&self, folded_query: &str, limit: usize) -> Result<Vec<ProfileRow>>;
    /// Visits (source, record key, profile id) for every assigned record.
    fn scan_assignments(&self, visit: &mut dyn FnMut(&str, &str, &str)) -> Result<()>;
    /// The profile a record is in, and the record's id.
    fn record_profile(&self, source: &str, key: &str) -> Result<Option<(RecordId, String)>>;

    fn add_constraint(&mut self, constraint: &LinkConstraint) -> Result<()>;
    fn constraints(&self) -> Result<Vec<LinkConstraint>>;

    fn record_run(&mut self, run: &SourceRun) -> Result<()>;
    fn source_status(&self) -> Result<Vec<SourceStatus>>;
    fn stats(&self) -> Result<Stats>;
    /// Records per hour (start of the hour in Unix ms) with timestamps in `[from_ms, to_ms)`.
    fn records_per_hour(&self, from_ms: i64, to_ms: i64) -> Result<Vec<(i64, u64)>>;
    /// The newest record timestamp.
    fn newest_record_time(&self) -> Result<Option<i64>>;
    /// The records logged after `through` and not yet resolved: how many (by their id
    /// range), and when the oldest of them was ingested (Unix ms).
    fn resolution_backlog(&self, through: RecordId) -> Result<(u64, Option<i64>)>;
}

/// A stored computed-trait or segment definition.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DefinitionRow {
    /// `segment` or `computed`.
    pub kind: String,
    pub name: String,
    pub expression: String,
    pub created_at: i64,
}

/// A profile entering or leaving a segment, at a time (ms).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SegmentTransition {
    pub segment: String,
    pub profile: String,
    pub entered: bool,
    pub at: i64,
}

/// Segments and computed traits: their definitions, current members, each profile's
/// entries and exits, and each segment's size over time.
pub trait AudienceStore {
    fn definitions(&self) -> Result<Vec<DefinitionRow>>;
    fn save_definition(&mut self, definition: &DefinitionRow) -> Result<()>;
    /// Replaces a definition's expression (erasure rewrites a quoted identifier away).
    fn set_definition_expression(&mut self, kind: &str, name: &str, expression: &str) -> Result<()>;
    /// Deletes a definition with its members and size history (the profiles' timelines keep
    /// their entries and exits).
    fn delete_definition(&mut self, kind: &str, name: &str) -> Result<()>;
    /// Applies entries and exits to the members, appends them to the timelines, and records
    /// each touched segment's size at `at`, in one transaction.
    fn record_transitions(&mut self, transitions: &[SegmentTransition], sizes: &[(String, u64)], at: i64) -> Result<()>;
    /// Drops the memberships of profiles that no longer exist (merged or erased).
    fn forget_memberships(&mut self, profiles: &[String]) -> Result<()>;
    /// Every (segment, profile) membership.
    fn memberships(&self) -> Result<Vec<(String, String)>>;
    /// A page of a segment's members, by profile id.
    fn segment_members(&self, segment: &str, offset: u64, limit: u64) -> Result<Vec<String>>;
    /// A segment's sizes over time, oldest first: (ms, size).
    fn segment_sizes(&self, segment: &str) -> Result<Vec<(i64, u64)>>;
    fn profile_transitions(&self, profile: &str) -> Result<Vec<SegmentTransition>>;
    /// Every profile with its records, grouped by profile (for loading the audience).
    fn scan_profile_records(&self, visit: &mut dyn FnMut(&str, RecordView<'_>)) -> Result<()>;
}

/// Credentials and switches: API tokens, write keys of collection sources, and sources
/// turned on or off at run time. Only hashes of secrets are stored.
pub trait AccessStore {
    fn add_token(&mut self, name: &str, role: &str, hash: &str) -> Result<()>;
    fn token(&self, hash: &str) -> Result<Option<TokenRow>>;
    /// Creates a web UI user, or replaces the role and password of an existing one.
    fn set_user(&mut self, name: &str, role: &str, password_hash: &str) -> Result<()>;
    fn user(&self, name: &str) -> Result<Option<UserRow>>;
    /// Replaces the write key of a source.
    fn set_write_key(&mut self, source: &str, hash: &str) -> Result<()>;
    fn source_for_write_key(&self, hash: &str) -> Result<Option<String>>;
    fn set_source_enabled(&mut self, source: &str, enabled: bool) -> Result<()>;
    /// Sources switched at run time, overriding `enabled` in the configuration.
    fn source_switches(&self) -> Result<Vec<(String, bool)>>;
    /// Every token (never its secret), oldest first.
    fn tokens(&self) -> Result<Vec<TokenRow>>;
    /// Deletes the tokens named `name`; returns how many there were.
    fn revoke_token(&mut self, name: &str) -> Result<u64>;
}

/// The audit log, the suppression list of erased identifiers, and erasure itself.
pub trait GovernanceStore {
    /// Appends audit entries in one transaction. The log is append-only: there is no
    /// method to change or remove an entry.
    fn append_audit(&mut self, rows: &[AuditRow]) -> Result<()>;
    /// Makes appended entries survive a power loss, where a commit alone does not (SQLite
    /// in `synchronous=NORMAL`); a no-op where every commit is flushed (PostgreSQL).
    fn sync_audit(&self) -> Result<()> {
        Ok(())
    }
    /// The newest audit entry.
    fn last_audit(&self) -> Result<Option<AuditRow>>;
    /// Up to `limit` entries matching `filter`, oldest first.
    fn audit_lines(&self, filter: &AuditFilter, limit: usize) -> Result<Vec<AuditRow>>;

    /// Adds keyed hashes of erased identifiers (already present ones are kept).
    fn add_suppressions(&mut self, hashes: &[String], request: &str) -> Result<()>;
    /// Lifts suppressions; returns how many were listed.
    fn remove_suppressions(&mut self, hashes: &[String]) -> Result<u64>;
    fn suppressions(&self) -> Result<Vec<String>>;
    /// A cheap summary that changes whenever the suppression list does: its size and its
    /// newest entry's time.
    fn suppressions_version(&self) -> Result<(u64, i64)>;

    /// Records not yet assigned to a profile that hold the identifier `kind`/`value`.
    fn unassigned_records_with(&self, kind: &str, value: &str) -> Result<Vec<RecordId>>;
    /// Deletes everything held about the given profiles and records, in one transaction,
    /// overwriting the deleted content in the database file. This is the one place that
    /// knows every table holding a person's data: a new such table is added here.
    fn erase(&mut self, profiles: &[String], records: &[RecordId]) -> Result<ErasureCounts>;
    /// Rewrites storage so that nothing deleted survives in any file of the store (for
    /// SQLite: the database, its WAL and shared-memory files).
    fn purge_deleted(&mut self) -> Result<()>;
}
