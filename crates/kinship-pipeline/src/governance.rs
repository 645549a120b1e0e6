//! Governance on the data path: the keys file, the suppression list of erased identifiers,
//! the audit log's chain and anchor, erasure, and the export of everything held about a
//! person. The rules themselves (roles, masking, hashing, the chain) are in kinship-policy.

use crate::{now_ms, PipelineError, Result};
use kinship_core::{Config, Identifier};
use kinship_policy::{suppression_hash, verify_chain, AuditEntry, AuditEvent, ChainError, PseudonymKey, SuppressionKey};
use kinship_store::{AuditFilter, AuditRow, ErasureCounts, GovernanceStore, Store};
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashSet};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

/// The secrets behind pseudonyms and suppression hashes, in the data directory.
pub const KEYS_FILE: &str = "secret.key";
/// The newest audit entry's sequence number and hash, kept beside the database so that
/// removing the newest entries, or replacing the whole log, is detected.
pub const AUDIT_ANCHOR_FILE: &str = "audit.anchor";
/// Files of the data directory that Kinship writes and erasure therefore scrubs or rewrites.
const OWNED: [&str; 9] = [
    "kinship.sqlite",
    "kinship.sqlite-wal",
    "kinship.sqlite-shm",
    "kinship-audit.sqlite",
    "kinship-audit.sqlite-wal",
    "kinship-audit.sqlite-shm",
    KEYS_FILE,
    AUDIT_ANCHOR_FILE,
    ".kinship-demo",
];

fn io_error(path: &Path) -> impl Fn(std::io::Error) -> PipelineError + '_ {
    move |error| PipelineError::Write { path: path.to_path_buf(), error }
}

/// The keys of a data directory.
#[derive(Clone, Debug)]
pub struct Keys {
    pub pseudonym: PseudonymKey,
    pub suppression: SuppressionKey,
}

impl Keys {
    /// Reads `DIR/secret.key`, creating it with fresh random keys (readable by its owner
    /// only) on first use. Losing it changes every pseudonym and makes the suppression list
    /// unusable, so it belongs in backups with the database.
    pub fn load_or_create(data_dir: &Path) -> Result<Keys> {
        let path = data_dir.join(KEYS_FILE);
        if !path.exists() {
            let mut bytes = [0u8; 64];
            getrandom::fill(&mut bytes).map_err(|e| PipelineError::Config(format!("no randomness for the keys: {e}")))?;
            let text = format!("pseudonym={}\nsuppression={}\n", hex::encode(&bytes[..32]), hex::encode(&bytes[32..]));
            use std::os::unix::fs::OpenOptionsExt;
            match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path) {
                Ok(mut file) => file.write_all(text.as_bytes()).and_then(|()| file.sync_all()).map_err(io_error(&path))?,
                // Another process created it first: use theirs.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io_error(&path)(e)),
            }
        }
        let text = std::fs::read_to_string(&path).map_err(io_error(&path))?;
        let key = |name: &str| -> Result<[u8; 32]> {
            let hex_text = text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix('=')).unwrap_or_default();
            let bytes = hex::decode(hex_text.trim()).ok().and_then(|b| <[u8; 32]>::try_from(b).ok());
            bytes.ok_or_else(|| {
                PipelineError::Config(format!("{} has no valid `{name}=` line (64 hex digits); restore it from a backup", path.display()))
            })
        };
        Ok(Keys { pseudonym: PseudonymKey::from_bytes(key("pseudonym")?), suppression: SuppressionKey::from_bytes(key("suppression")?) })
    }
}

/// The suppression list in memory: keyed hashes of erased identifiers. Incoming records
/// are checked against a snapshot, hashing their identifiers only when the list is not
/// empty.
pub struct SuppressionList {
    key: SuppressionKey,
    hashes: RwLock<Arc<HashSet<String>>>,
    /// Raised whenever the list grows, so that work checked against an older snapshot can
    /// be checked again before it is committed.
    generation: AtomicU64,
    /// The store's list as last read (`GovernanceStore::suppressions_version`).
    read_version: Mutex<(u64, i64)>,
}

/// A snapshot of the suppression list to check records against.
#[derive(Clone)]
pub struct SuppressionCheck {
    key: SuppressionKey,
    hashes: Arc<HashSet<String>>,
}

impl SuppressionCheck {
    /// A check that suppresses nothing, for data that has no suppression list (tests,
    /// scratch stores).
    pub fn nothing() -> SuppressionCheck {
        SuppressionCheck { key: SuppressionKey::from_bytes([0; 32]), hashes: Arc::default() }
    }

    /// Whether any of the (kind, normalised value) identifiers is suppressed.
    pub fn matches<'a>(&self, mut identifiers: impl Iterator<Item = (&'a str, &'a str)>) -> bool {
        !self.hashes.is_empty() && identifiers.any(|(kind, value)| self.hashes.contains(&suppression_hash(&self.key, kind, value)))
    }

    /// Whether a raw row that could not be mapped (so has no identifiers yet) holds a
    /// suppressed email or phone number in any field: such a row is dropped rather than
    /// written to a reject file.
    pub fn matches_raw(&self, raw: &str, region: phonenumber::country::Id) -> bool {
        if self.hashes.is_empty() {
            return false;
        }
        let names_erased = |s: &str| {
            kinship_normalize::email(s).is_some_and(|e| self.matches(std::iter::once(("email", e.as_str()))))
                || (s.chars().filter(char::is_ascii_digit).count() >= 7
                    && kinship_normalize::phone(s, region).is_some_and(|p| self.matches(std::iter::once(("phone", p.as_str())))))
        };
        // Whole values, and addresses and numbers inside text: a CSV line that did not parse
        // is one string, and a note may hold an email among other words.
        let holds_erased = |s: &str| {
            names_erased(s)
                || kinship_policy::emails_in(s).iter().any(|e| names_erased(e))
                || kinship_policy::phones_in(s).iter().any(|p| names_erased(p))
        };
        match serde_json::from_str::<Value>(raw) {
            Ok(value) => {
                let mut found = false;
                visit_strings(&value, &mut |s| found = found || holds_erased(s));
                found
            }
            Err(_) => holds_erased(raw),
        }
    }

    /// Whether an encoded identifier list (see `kinship_core::encode_identifiers`) is suppressed.
    pub fn matches_encoded(&self, identifiers: &str) -> bool {
        !self.hashes.is_empty() && self.matches(kinship_core::decode_identifiers(identifiers))
    }
}

impl SuppressionList {
    pub fn load(store: &dyn GovernanceStore, key: SuppressionKey) -> Result<SuppressionList> {
        let version = store.suppressions_version()?;
        let hashes: HashSet<String> = store.suppressions()?.into_iter().collect();
        Ok(SuppressionList { key, hashes: RwLock::new(Arc::new(hashes)), generation: AtomicU64::new(0), read_version: Mutex::new(version) })
    }

    /// Reads the list again from the store: on a store several nodes share, another node's
    /// erasure reaches this node's collection this way. Returns whether the list changed.
    pub fn refresh(&self, store: &dyn GovernanceStore) -> Result<bool> {
        // Every resolver pass asks: read the whole list only when it changed.
        let version = store.suppressions_version()?;
        let mut read = self.read_version.lock().expect("not poisoned");
        if *read == version {
            return Ok(false);
        }
        *read = version;
        let stored: HashSet<String> = store.suppressions()?.into_iter().collect();
        if **self.hashes.read().expect("not poisoned") == stored {
            return Ok(false);
        }
        self.update(|held| *held = stored);
        Ok(true)
    }

    pub fn check(&self) -> SuppressionCheck {
        SuppressionCheck { key: self.key.clone(), hashes: self.hashes.read().expect("not poisoned").clone() }
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub fn hash(&self, kind: &str, value: &str) -> String {
        suppression_hash(&self.key, kind, value)
    }

    fn update(&self, change: impl FnOnce(&mut HashSet<String>)) {
        let mut slot = self.hashes.write().expect("not poisoned");
        let mut next = (**slot).clone();
        change(&mut next);
        *slot = Arc::new(next);
        self.generation.fetch_add(1, Ordering::AcqRel);
    }
}

/// Appends to the audit log, keeping the chain's head in memory.
pub struct AuditLog {
    anchor: PathBuf,
    head: Option<AuditEntry>,
}

impl AuditLog {
    pub fn open(store: &dyn GovernanceStore, data_dir: &Path) -> Result<AuditLog> {
        let mut log = AuditLog { anchor: data_dir.join(AUDIT_ANCHOR_FILE), head: None };
        log.reload(store)?;
        Ok(log)
    }

    fn reload(&mut self, store: &dyn GovernanceStore) -> Result<()> {
        self.head = match store.last_audit()? {
            None => None,
            Some(row) => Some(AuditEntry::from_json_line(&row.line).map_err(|e| {
                PipelineError::Config(format!("the newest audit entry ({}) is damaged: {e}; run `kinship audit verify`", row.seq))
            })?),
        };
        Ok(())
    }

    /// Chains and stores `events` in one transaction, then moves the anchor to the new head.
    /// If another process (or node, on a shared store) appended since this log last read
    /// the head, the sequence number is taken: the head is read again and the entries
    /// chained anew, a few times.
    pub fn append(&mut self, store: &mut dyn GovernanceStore, events: &[AuditEvent]) -> Result<()> {
        const ATTEMPTS: usize = 8;
        if events.is_empty() {
            return Ok(());
        }
        let mut attempt = 1;
        let sealed = loop {
            match self.try_append(store, events) {
                Ok(sealed) => break sealed,
                Err(e) if attempt == ATTEMPTS => return Err(e),
                Err(_) => {
                    attempt += 1;
                    self.reload(store)?;
                }
            }
        };
        self.head = Some(sealed);
        write_anchor(&self.anchor, self.head.as_ref().expect("set above"))
    }

    fn try_append(&self, store: &mut dyn GovernanceStore, events: &[AuditEvent]) -> Result<AuditEntry> {
        let mut head = self.head.clone();
        let mut rows = Vec::with_capacity(events.len());
        for event in events.iter().cloned() {
            let entry = match &head {
                Some(prev) => prev.next(event),
                None => AuditEntry::first(event),
            };
            rows.push(AuditRow {
                seq: entry.seq,
                at_ms: entry.at_ms,
                actor: entry.actor.clone(),
                profile: entry.profile.clone(),
                line: entry.to_json_line(),
            });
            head = Some(entry);
        }
        store.append_audit(&rows)?;
        Ok(head.expect("at least one event"))
    }
}

fn write_anchor(path: &Path, head: &AuditEntry) -> Result<()> {
    let temporary = path.with_extension("anchor.tmp");
    std::fs::write(&temporary, format!("{} {}\n", head.seq, head.hash)).map_err(io_error(&temporary))?;
    std::fs::rename(&temporary, path).map_err(io_error(path))
}

/// An audit event now, by `actor`.
pub fn audit_event(actor: &str, action: &str, profile: Option<&str>, route: Option<&str>, detail: Value) -> AuditEvent {
    AuditEvent {
        at_ms: now_ms(),
        actor: actor.to_string(),
        action: action.to_string(),
        profile: profile.map(String::from),
        route: route.map(String::from),
        detail,
    }
}

/// A `since` bound of the audit log: Unix milliseconds, RFC 3339, or a date.
pub fn parse_since(text: &str) -> std::result::Result<i64, String> {
    if let Ok(ms) = text.trim().parse::<i64>() {
        return Ok(ms);
    }
    kinship_normalize::parse_timestamp_ms(text).ok_or_else(|| {
        format!("since {text:?} is not a time; give RFC 3339 (2024-05-01T10:00:00Z), a date (2024-05-01) or Unix milliseconds")
    })
}

/// What `kinship audit verify` found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AuditVerification {
    pub entries: u64,
    /// Entries written after the anchor was last moved (a crash between the two writes).
    pub after_anchor: u64,
}

/// Why the audit log fails verification.
#[derive(Debug, thiserror::Error)]
pub enum AuditBroken {
    #[error("audit entry {seq} was changed: {reason}")]
    Changed { seq: u64, reason: String },
    #[error(transparent)]
    Chain(#[from] ChainError),
    #[error("{0}")]
    Anchor(String),
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
}

/// Checks every entry's text, the chain, and the anchor.
pub fn verify_audit(store: &dyn GovernanceStore, data_dir: &Path) -> std::result::Result<AuditVerification, AuditBroken> {
    const PAGE: usize = 10_000;
    let mut damaged: Option<AuditBroken> = None;
    let mut after_seq = 0;
    let mut page: std::vec::IntoIter<AuditRow> = Vec::new().into_iter();
    let mut last: Option<AuditEntry> = None;
    let entries = std::iter::from_fn(|| {
        if damaged.is_some() {
            return None;
        }
        let row = match page.next() {
            Some(row) => row,
            None => {
                let filter = AuditFilter { after_seq, ..AuditFilter::default() };
                match store.audit_lines(&filter, PAGE) {
                    Ok(rows) => page = rows.into_iter(),
                    Err(e) => {
                        damaged = Some(PipelineError::from(e).into());
                        return None;
                    }
                }
                page.next()?
            }
        };
        after_seq = row.seq;
        let entry = match AuditEntry::from_json_line(&row.line) {
            Ok(entry) => entry,
            Err(e) => {
                damaged = Some(AuditBroken::Changed { seq: row.seq, reason: e.to_string() });
                return None;
            }
        };
        // The searchable copies must say what the chained text says.
        if (entry.seq, entry.at_ms, &entry.actor, &entry.profile) != (row.seq, row.at_ms, &row.actor, &row.profile) {
            damaged = Some(AuditBroken::Changed { seq: row.seq, reason: "its indexed columns differ from its text".into() });
            return None;
        }
        last = Some(entry.clone());
        Some(entry)
    });
    let chained = verify_chain(entries);
    if let Some(broken) = damaged {
        return Err(broken);
    }
    let entries = chained?;
    let anchor_path = data_dir.join(AUDIT_ANCHOR_FILE);
    let anchor = match std::fs::read_to_string(&anchor_path) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(io_error(&anchor_path)(e).into()),
    };
    let Some(anchor) = anchor else {
        return if entries == 0 {
            Ok(AuditVerification { entries, after_anchor: 0 })
        } else {
            Err(AuditBroken::Anchor(format!("{} is missing: removal of the newest entries cannot be ruled out", anchor_path.display())))
        };
    };
    let (seq, hash) = anchor
        .trim()
        .split_once(' ')
        .and_then(|(s, h)| Some((s.parse::<u64>().ok()?, h.to_string())))
        .ok_or_else(|| AuditBroken::Anchor(format!("{} is not `SEQ HASH`", anchor_path.display())))?;
    if seq > entries {
        return Err(AuditBroken::Anchor(format!("the log ends at entry {entries} but the anchor names entry {seq}: entries were removed")));
    }
    let anchored = if seq == entries {
        last
    } else {
        let filter = AuditFilter { after_seq: seq - 1, ..AuditFilter::default() };
        let rows = store.audit_lines(&filter, 1).map_err(PipelineError::from)?;
        rows.first().and_then(|r| AuditEntry::from_json_line(&r.line).ok())
    };
    if seq > 0 && anchored.is_none_or(|e| e.hash != hash) {
        return Err(AuditBroken::Anchor(format!("entry {seq} does not have the anchored hash: the log was rewritten")));
    }
    Ok(AuditVerification { entries, after_anchor: entries - seq })
}

/// Whom an erasure or export is about.
#[derive(Debug, Clone)]
pub enum Subject {
    Profile(String),
    /// A normalised identifier.
    Identifier(Identifier),
}

impl Subject {
    /// A subject from at most one of the ways to name one, normalising the identifier.
    pub fn parse(
        profile: Option<&str>,
        email: Option<&str>,
        phone: Option<&str>,
        identifier: Option<&str>,
        config: &Config,
    ) -> std::result::Result<Subject, String> {
        let region = kinship_normalize::region(&config.resolve.default_region)
            .ok_or_else(|| format!("resolve.default_region {:?} is not a region code", config.resolve.default_region))?;
        match (profile, email, phone, identifier) {
            (Some(id), None, None, None) => Ok(Subject::Profile(id.to_string())),
            (None, Some(e), None, None) => Ok(Subject::Identifier(Identifier::new(
                "email",
                kinship_normalize::email(e).ok_or(format!("{e:?} is not an email address"))?,
            ))),
            (None, None, Some(p), None) => Ok(Subject::Identifier(Identifier::new(
                "phone",
                kinship_normalize::phone(p, region).ok_or(format!("{p:?} is not a valid phone number"))?,
            ))),
            (None, None, None, Some(i)) => {
                let id = Identifier::parse_key(i).ok_or(format!("{i:?} is not KIND:VALUE, e.g. crm_id:C-00042"))?;
                let value = kinship_normalize::identifier(id.kind.as_str(), &id.value, region)
                    .ok_or(format!("{:?} is not a valid {}", id.value, id.kind))?;
                Ok(Subject::Identifier(Identifier::new(id.kind, value)))
            }
            _ => Err("name the person by exactly one of: profile, email, phone, identifier (KIND:VALUE)".into()),
        }
    }

    /// The kind of name used, for audit entries, which must not hold the value itself.
    pub fn kind(&self) -> &str {
        match self {
            Subject::Profile(_) => "profile",
            Subject::Identifier(id) => id.kind.as_str(),
        }
    }
}

/// The profiles and unassigned records of a subject.
fn locate<S: Store + GovernanceStore + ?Sized>(store: &S, subject: &Subject) -> Result<(Vec<String>, Vec<i64>)> {
    match subject {
        Subject::Profile(id) => Ok((store.profile(id)?.map(|p| p.id).into_iter().collect(), Vec::new())),
        Subject::Identifier(id) => {
            let profiles = store.find_profiles(id.kind.as_str(), &id.value)?;
            let records = store.unassigned_records_with(id.kind.as_str(), &id.value)?;
            Ok((profiles, records))
        }
    }
}

/// What an erasure did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ErasureReport {
    /// The id of this request, named in its audit entry.
    pub request: String,
    pub profiles: Vec<String>,
    pub deleted: ErasureCounts,
    /// Identifiers added to the suppression list (as keyed hashes).
    pub suppressed_identifiers: usize,
    /// Lines removed from Kinship's reject files.
    pub reject_lines_removed: u64,
    /// Rows removed from exports uploaded through the web UI (`DIR/uploads`): copies Kinship
    /// holds, unlike the files its operators keep.
    pub upload_rows_removed: u64,
    /// Files in the data directory that Kinship does not own (source files) and that still
    /// mention the person: Kinship does not edit its customers' files.
    pub files_still_mentioning: Vec<PathBuf>,
    /// Segments and computed traits whose expressions quoted the person's identifiers, now
    /// quoting [`ERASED`] instead; each has a note (meta `definition.KIND.NAME.note`).
    pub definitions_rewritten: Vec<RewrittenDefinition>,
}

/// A definition erasure rewrote.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RewrittenDefinition {
    /// `segment` or `computed`.
    pub kind: String,
    pub name: String,
    /// The expression now stored.
    pub expression: String,
}

/// What a quoted identifier of an erased person becomes in a stored expression.
pub const ERASED: &str = "<erased>";

/// The meta key of the note erasure leaves on a definition it rewrote.
pub fn definition_note_key(kind: &str, name: &str) -> String {
    format!("definition.{kind}.{name}.note")
}

/// Erases a person: every record, identifier, profile and derived row, rewritten out of
/// every file of the store; their identifiers are kept only as keyed hashes in the
/// suppression list so they are not ingested again. Refuses an identifier that several
/// profiles hold (the guards kept them apart, so they may be different people).
pub fn erase<S: Store + GovernanceStore + kinship_store::AudienceStore + ?Sized>(
    store: &mut S,
    config: &Config,
    data_dir: &Path,
    subject: &Subject,
    suppression: &SuppressionList,
) -> Result<ErasureReport> {
    // Finding the person and deleting them is one transaction under the resolution lock: no
    // resolver (of any node sharing the store) can merge their records elsewhere meanwhile,
    // and records inserted before the lock are all visible.
    store.begin_resolution()?;
    let erased = match erase_in_transaction(store, config, subject, suppression) {
        Ok(erased) => {
            store.commit()?;
            erased
        }
        Err(e) => {
            store.rollback()?;
            return Err(e);
        }
    };
    let (request, profiles, deleted, suppressed_identifiers, spellings) = erased;
    // Before the purge, which leaves no old copy of the rewritten rows behind. The person is
    // already deleted: a failure here is reported, not a reason to skip the purge.
    let definitions_rewritten = rewrite_definitions(store, &spellings, &request).unwrap_or_else(|e| {
        eprintln!("warning: erasure {request}: definitions quoting the person could not be rewritten: {e}; check `kinship segment list`");
        Vec::new()
    });
    store.purge_deleted()?;
    let reject_lines_removed = scrub_rejects(data_dir, &spellings)?;
    let upload_rows_removed = scrub_uploads(data_dir, &spellings)?;
    let files_still_mentioning = foreign_files_mentioning(data_dir, &spellings)?;
    Ok(ErasureReport {
        request,
        profiles,
        deleted,
        suppressed_identifiers,
        reject_lines_removed,
        upload_rows_removed,
        files_still_mentioning,
        definitions_rewritten,
    })
}

/// Rewrites every stored definition that quotes one of the person's identifiers (any
/// spelling) so that it quotes [`ERASED`] instead, and leaves a note saying so for whoever
/// defined it. The rewritten condition selects nobody by that value any more; what else it
/// says is kept.
fn rewrite_definitions<S: Store + kinship_store::AudienceStore + ?Sized>(
    store: &mut S,
    spellings: &Spellings,
    request: &str,
) -> Result<Vec<RewrittenDefinition>> {
    let mut rewritten = Vec::new();
    for definition in store.definitions()? {
        let Ok(mut expr) = kinship_expr::parse(&definition.expression) else { continue };
        let replaced = kinship_expr::rewrite_literals(&mut expr, &mut |literal| match literal {
            kinship_expr::Literal::Text(text) if spellings.names_identifier(text) || spellings.in_text(text) => {
                Some(kinship_expr::Literal::Text(ERASED.to_string()))
            }
            _ => None,
        });
        if replaced == 0 {
            continue;
        }
        let expression = expr.to_string();
        store.set_definition_expression(&definition.kind, &definition.name, &expression)?;
        let note = format!(
            "erasure request {request} replaced {replaced} quoted value(s) naming an erased person with \"{ERASED}\"; review this {}'s condition",
            definition.kind
        );
        store.set_meta(&definition_note_key(&definition.kind, &definition.name), &note)?;
        rewritten.push(RewrittenDefinition { kind: definition.kind, name: definition.name, expression });
    }
    Ok(rewritten)
}

/// What an erasure's transaction did: the request id, the profiles, the rows deleted, how
/// many identifiers it suppressed, and the person's spellings (to scrub files with).
type Erased = (String, Vec<String>, ErasureCounts, usize, Spellings);

fn erase_in_transaction<S: Store + GovernanceStore + ?Sized>(
    store: &mut S,
    config: &Config,
    subject: &Subject,
    suppression: &SuppressionList,
) -> Result<Erased> {
    let (profiles, unassigned) = locate(store, subject)?;
    if profiles.len() > 1 {
        return Err(PipelineError::Config(format!(
            "{} profiles hold this {} (resolution kept them apart, so they may be different people): {}; erase each by profile id",
            profiles.len(),
            subject.kind(),
            profiles.join(", ")
        )));
    }
    if profiles.is_empty() && unassigned.is_empty() {
        return Err(PipelineError::Config(format!("nothing is held for this {}", subject.kind())));
    }
    let region = kinship_normalize::region(&config.resolve.default_region).unwrap_or(phonenumber::country::Id::US);
    // Every identifier the person had, and every spelling of them in their raw records.
    let mut identifiers: BTreeSet<(String, String)> = BTreeSet::new();
    let mut raw_records: Vec<Value> = Vec::new();
    for p in &profiles {
        for r in store.profile_records(p)? {
            identifiers.extend(r.identifiers.iter().map(|i| (i.kind.as_str().to_string(), i.value.clone())));
            raw_records.push(r.payload);
        }
        identifiers.extend(store.profile_identifiers(p)?.into_iter().map(|i| (i.kind, i.value)));
    }
    let mut records = unassigned;
    store.scan_selected(&records.clone(), &[], &mut |r| {
        identifiers.extend(kinship_core::decode_identifiers(r.identifiers).map(|(k, v)| (k.to_string(), v.to_string())));
        raw_records.push(serde_json::from_str(r.payload).unwrap_or(Value::Null));
    })?;
    if let Subject::Identifier(id) = subject {
        identifiers.insert((id.kind.as_str().to_string(), id.value.clone()));
    }
    // Unresolved records holding any of their identifiers are theirs too.
    for (kind, value) in &identifiers {
        records.extend(store.unassigned_records_with(kind, value)?);
    }
    records.sort_unstable();
    records.dedup();
    let spellings = Spellings::new(&identifiers, &raw_records, region);

    let request = format!("er_{:x}_{:08x}", now_ms(), rand_u32());
    let hashes: Vec<String> = identifiers.iter().map(|(kind, value)| suppression.hash(kind, value)).collect();
    // Suppress first: from here on, anything arriving with these identifiers is dropped.
    store.add_suppressions(&hashes, &request)?;
    suppression.update(|set| set.extend(hashes.iter().cloned()));
    let deleted = store.erase(&profiles, &records)?;
    Ok((request, profiles, deleted, hashes.len(), spellings))
}

/// Lifts the suppression of an identifier; returns whether it was suppressed.
pub fn unsuppress(store: &mut dyn GovernanceStore, suppression: &SuppressionList, identifier: &Identifier) -> Result<bool> {
    let hash = suppression.hash(identifier.kind.as_str(), &identifier.value);
    let removed = store.remove_suppressions(std::slice::from_ref(&hash))? > 0;
    suppression.update(|set| {
        set.remove(&hash);
    });
    Ok(removed)
}

fn rand_u32() -> u32 {
    let mut bytes = [0u8; 4];
    getrandom::fill(&mut bytes).map_or(0, |()| u32::from_le_bytes(bytes))
}

/// The ways a person's identifiers are written: normalised values, and every string of
/// their raw records that normalises to one of them.
struct Spellings {
    /// Lower-cased spellings, for substring search.
    texts: Vec<String>,
    identifiers: BTreeSet<(String, String)>,
    region: phonenumber::country::Id,
}

impl Spellings {
    fn new(identifiers: &BTreeSet<(String, String)>, raw: &[Value], region: phonenumber::country::Id) -> Spellings {
        let mut spellings = Spellings { texts: Vec::new(), identifiers: identifiers.clone(), region };
        let mut texts: BTreeSet<String> = identifiers.iter().filter(|(_, v)| v.len() >= 4).map(|(_, v)| v.to_lowercase()).collect();
        for record in raw {
            visit_strings(record, &mut |s| {
                if spellings.names_identifier(s) {
                    texts.insert(s.trim().to_lowercase());
                }
            });
        }
        spellings.texts = texts.into_iter().filter(|t| t.len() >= 4).collect();
        spellings
    }

    /// Whether a string is one of the identifiers, as an email, a phone or verbatim.
    fn names_identifier(&self, s: &str) -> bool {
        let has = |kind: &str, value: Option<String>| value.is_some_and(|v| self.identifiers.contains(&(kind.to_string(), v)));
        has("email", kinship_normalize::email(s))
            || (s.chars().filter(char::is_ascii_digit).count() >= 7 && has("phone", kinship_normalize::phone(s, self.region)))
            || self.identifiers.iter().any(|(_, v)| v == s.trim())
    }

    /// Whether a text holds one of the person's spellings, or an email or phone of theirs.
    fn in_text(&self, text: &str) -> bool {
        let lower = text.to_lowercase();
        self.texts.iter().any(|t| lower.contains(t.as_str()))
            || kinship_policy::emails_in(text).iter().any(|e| self.names_identifier(e))
            || kinship_policy::phones_in(text).iter().any(|p| self.names_identifier(p))
    }

    /// Whether a line of text mentions the person.
    fn in_line(&self, line: &str) -> bool {
        let lower = line.to_lowercase();
        if self.texts.iter().any(|t| lower.contains(t.as_str())) {
            return true;
        }
        let mut found = false;
        if let Ok(value) = serde_json::from_str::<Value>(line) {
            visit_strings(&value, &mut |s| found = found || self.names_identifier(s));
        }
        found
    }
}

fn visit_strings(value: &Value, visit: &mut dyn FnMut(&str)) {
    match value {
        Value::String(s) => visit(s),
        Value::Array(items) => items.iter().for_each(|v| visit_strings(v, visit)),
        Value::Object(fields) => fields.iter().for_each(|(k, v)| {
            visit(k);
            visit_strings(v, visit);
        }),
        _ => {}
    }
}

/// Rewrites `DIR/rejects/*.jsonl` without the lines that mention the person.
fn scrub_rejects(data_dir: &Path, spellings: &Spellings) -> Result<u64> {
    let mut removed = 0;
    for path in files_in(&data_dir.join("rejects")) {
        if path.extension().is_some_and(|e| e == "jsonl") {
            removed += scrub_lines(&path, spellings)?;
        }
    }
    Ok(removed)
}

/// Rewrites the exports uploaded through the web UI without the rows that mention the
/// person: JSON lines by line, CSV by record (a quoted field may span lines).
fn scrub_uploads(data_dir: &Path, spellings: &Spellings) -> Result<u64> {
    let mut removed = 0;
    for path in files_in(&data_dir.join(kinship_core::config::UPLOADS_DIR)) {
        match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
            Some("jsonl" | "ndjson") => removed += scrub_lines(&path, spellings)?,
            Some("csv") => removed += scrub_csv(&path, spellings)?,
            _ => {}
        }
    }
    Ok(removed)
}

fn files_in(dir: &Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    entries.flatten().map(|e| e.path()).filter(|p| p.is_file()).collect()
}

/// Rewrites a file of lines without those that mention the person; how many it dropped.
fn scrub_lines(path: &Path, spellings: &Spellings) -> Result<u64> {
    let text = std::fs::read_to_string(path).map_err(io_error(path))?;
    let kept: Vec<&str> = text.lines().filter(|line| !spellings.in_line(line)).collect();
    let dropped = (text.lines().count() - kept.len()) as u64;
    if dropped > 0 {
        let mut body = kept.join("\n");
        if !body.is_empty() {
            body.push('\n');
        }
        replace_file(path, body.as_bytes())?;
    }
    Ok(dropped)
}

/// Rewrites a CSV file without the records one of whose fields mentions the person; the
/// header stays.
fn scrub_csv(path: &Path, spellings: &Spellings) -> Result<u64> {
    let csv_error = |e: csv::Error| PipelineError::Config(format!("erasure cannot rewrite {}: {e}", path.display()));
    let mut reader = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_path(path).map_err(csv_error)?;
    let mut writer = csv::WriterBuilder::new().flexible(true).from_writer(Vec::new());
    let mut dropped = 0;
    for (i, record) in reader.byte_records().enumerate() {
        let record = record.map_err(csv_error)?;
        let mentions = i > 0
            && record.iter().any(|field| {
                let field = String::from_utf8_lossy(field);
                spellings.in_text(&field) || spellings.names_identifier(&field)
            });
        if mentions {
            dropped += 1;
        } else {
            writer.write_byte_record(&record).map_err(csv_error)?;
        }
    }
    if dropped > 0 {
        let body = writer.into_inner().map_err(|e| PipelineError::Config(format!("erasure cannot rewrite {}: {e}", path.display())))?;
        replace_file(path, &body)?;
    }
    Ok(dropped)
}

/// Writes a new file and renames it over the old one: the old file's blocks are released
/// by the file system, which Kinship cannot overwrite portably.
fn replace_file(path: &Path, body: &[u8]) -> Result<()> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    let temporary = std::path::PathBuf::from(temporary);
    std::fs::write(&temporary, body).map_err(io_error(&temporary))?;
    std::fs::rename(&temporary, path).map_err(io_error(path))
}

/// Files under the data directory, outside what Kinship owns, that mention the person.
fn foreign_files_mentioning(data_dir: &Path, spellings: &Spellings) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let mut pending = vec![data_dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if path.is_dir() {
                if dir != data_dir || name != "rejects" {
                    pending.push(path);
                }
                continue;
            }
            if (dir == data_dir && (OWNED.contains(&name.as_str()) || name == kinship_core::config::CONFIG_FILE)) || !path.is_file() {
                continue;
            }
            let Ok(file) = std::fs::File::open(&path) else { continue };
            let mentions = std::io::BufReader::new(file).split(b'\n').map_while(std::result::Result::ok).any(|line| {
                let line = String::from_utf8_lossy(&line);
                let lower = line.to_lowercase();
                spellings.texts.iter().any(|t| lower.contains(t.as_str()))
            });
            if mentions {
                found.push(path);
            }
        }
    }
    found.sort();
    Ok(found)
}

/// Everything held about a person (GDPR article 15): each profile's 360 document with the
/// evidence that joined its records, and records not yet resolved into a profile.
pub fn subject_export(store: &dyn kinship_store::Database, config: &Config, subject: &Subject) -> Result<Option<Value>> {
    let (profiles, unassigned) = locate(store, subject)?;
    if profiles.is_empty() && unassigned.is_empty() {
        return Ok(None);
    }
    let mut documents = Vec::new();
    for p in &profiles {
        if let Some(mut doc) = crate::profile_document(store, config, p)? {
            doc["explain"] = crate::explain(store, config, p)?.unwrap_or(Value::Null);
            documents.push(doc);
        }
    }
    let mut records = Vec::new();
    store.scan_selected(&unassigned, &[], &mut |r| {
        records
            .push(json!({ "source": r.source, "key": r.key, "payload": serde_json::from_str::<Value>(r.payload).unwrap_or(Value::Null) }));
    })?;
    Ok(Some(json!({ "generated_at_ms": now_ms(), "profiles": documents, "unresolved_records": records })))
}

/// The ids of the profiles an export or erasure of `subject` would cover, for audit entries.
pub fn subject_profiles<S: Store + GovernanceStore + ?Sized>(store: &S, subject: &Subject) -> Result<Vec<String>> {
    Ok(locate(store, subject)?.0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn since_accepts_times_dates_and_milliseconds() {
        assert_eq!(super::parse_since("1714557600000"), Ok(1_714_557_600_000));
        assert_eq!(super::parse_since("2024-05-01T10:00:00Z"), Ok(1_714_557_600_000));
        assert!(super::parse_since("2024-05-01").is_ok());
        assert!(super::parse_since("yesterday").unwrap_err().contains("RFC 3339"));
    }
}
