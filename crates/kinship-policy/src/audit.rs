//! The audit log as a hash chain: each entry's hash covers its contents and the previous
//! entry's hash, so changing, deleting or reordering an entry breaks every link after it.
//!
//! The chain shows tampering by anyone who does not also rewrite every later entry; to
//! catch that, and the removal of the newest entries, keep the latest hash somewhere the
//! log's writer cannot change (and compare it with the last entry [`verify_chain`] saw).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The `prev_hash` of the first entry.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Tag in front of every hashed entry, so a future encoding cannot be confused with this one.
const ENCODING: &[u8] = b"kinship-audit-v1";

/// What happened: the contents of an entry before it is chained.
#[derive(Clone, Debug, PartialEq)]
pub struct AuditEvent {
    /// Milliseconds since the Unix epoch.
    pub at_ms: i64,
    /// Who: a token name, a CLI user.
    pub actor: String,
    /// What: `read`, `merge`, `split`, `erase`, `token.create`, ...
    pub action: String,
    /// Which profile, when one.
    pub profile: Option<String>,
    /// Which route or command.
    pub route: Option<String>,
    /// The rest: which fields or events were read, what changed.
    pub detail: Value,
}

/// One entry of the audit log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditEntry {
    /// 1 for the first entry, one more for each after it.
    pub seq: u64,
    pub at_ms: i64,
    pub actor: String,
    pub action: String,
    pub profile: Option<String>,
    pub route: Option<String>,
    pub detail: Value,
    /// The previous entry's `hash`; [`GENESIS_HASH`] for the first.
    pub prev_hash: String,
    /// SHA-256, in hex, of `prev_hash` and the canonical encoding of every other field.
    pub hash: String,
}

impl AuditEntry {
    /// The entry numbered `seq` after the entry whose hash is `prev_hash`.
    pub fn seal(seq: u64, prev_hash: &str, event: AuditEvent) -> AuditEntry {
        let AuditEvent { at_ms, actor, action, profile, route, detail } = event;
        let mut entry =
            AuditEntry { seq, at_ms, actor, action, profile, route, detail, prev_hash: prev_hash.to_string(), hash: String::new() };
        entry.hash = entry.computed_hash();
        entry
    }

    /// The first entry of a log.
    pub fn first(event: AuditEvent) -> AuditEntry {
        AuditEntry::seal(1, GENESIS_HASH, event)
    }

    /// The entry that follows this one.
    pub fn next(&self, event: AuditEvent) -> AuditEntry {
        AuditEntry::seal(self.seq + 1, &self.hash, event)
    }

    /// The hash the entry should carry, from its contents: every field but `hash`, each
    /// length-prefixed so no two different entries encode alike, `detail` as canonical JSON.
    pub fn computed_hash(&self) -> String {
        let mut hasher = Sha256::new();
        let mut field = |bytes: &[u8]| {
            hasher.update((bytes.len() as u64).to_be_bytes());
            hasher.update(bytes);
        };
        field(ENCODING);
        field(self.prev_hash.as_bytes());
        field(&self.seq.to_be_bytes());
        field(&self.at_ms.to_be_bytes());
        field(self.actor.as_bytes());
        field(self.action.as_bytes());
        for optional in [&self.profile, &self.route] {
            // Absent and empty differ: a one-byte tag says which.
            match optional {
                None => field(&[0]),
                Some(text) => field(&[&[1], text.as_bytes()].concat()),
            }
        }
        field(canonical_json(&self.detail).as_bytes());
        hex::encode(hasher.finalize())
    }

    /// The entry as one line of JSON in canonical form (fields in declaration order, `detail`
    /// with sorted keys, no spaces): the form to store in a log file.
    pub fn to_json_line(&self) -> String {
        let text = |s: &str| Value::from(s).to_string();
        let optional = |s: &Option<String>| s.as_deref().map_or_else(|| "null".to_string(), text);
        format!(
            r#"{{"seq":{},"at_ms":{},"actor":{},"action":{},"profile":{},"route":{},"detail":{},"prev_hash":{},"hash":{}}}"#,
            self.seq,
            self.at_ms,
            text(&self.actor),
            text(&self.action),
            optional(&self.profile),
            optional(&self.route),
            canonical_json(&self.detail),
            text(&self.prev_hash),
            text(&self.hash),
        )
    }

    /// An entry from a line written by [`to_json_line`](Self::to_json_line). A line that is
    /// not exactly in canonical form is refused even when it means the same entry, so that
    /// a change to any byte of a stored line is caught, here or by [`verify_chain`].
    pub fn from_json_line(line: &str) -> Result<AuditEntry, AuditLineError> {
        let entry: AuditEntry = serde_json::from_str(line).map_err(|e| AuditLineError::Json(e.to_string()))?;
        if entry.to_json_line() != line {
            return Err(AuditLineError::NotCanonical);
        }
        Ok(entry)
    }
}

/// Why a stored line is not an audit entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuditLineError {
    #[error("not an audit entry: {0}")]
    Json(String),
    #[error("an audit entry, but not as written: the line was changed")]
    NotCanonical,
}

/// JSON with object keys sorted at every level and no spaces: one text per value.
fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(fields) => {
            let mut fields: Vec<_> = fields.iter().collect();
            fields.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (key, value)) in fields.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::from(key.as_str()).to_string());
                out.push(':');
                write_canonical(value, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// Where a chain breaks: the position (1 for the first entry) of the first bad entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    #[error("audit entry {seq}: numbered {found}, out of sequence (an entry was removed, added or moved)")]
    SeqGap { seq: u64, found: u64 },
    #[error("audit entry {seq}: its prev_hash is not the hash of the entry before it")]
    BrokenLink { seq: u64 },
    #[error("audit entry {seq}: its hash does not match its contents (the entry was changed)")]
    HashMismatch { seq: u64 },
}

impl ChainError {
    /// The position of the first bad entry.
    pub fn seq(&self) -> u64 {
        match *self {
            ChainError::SeqGap { seq, .. } | ChainError::BrokenLink { seq } | ChainError::HashMismatch { seq } => seq,
        }
    }
}

/// Checks a whole log, oldest entry first: numbering from 1 without gaps, each entry linked
/// to the one before, each hash matching its entry. Returns how many entries it checked.
pub fn verify_chain(entries: impl IntoIterator<Item = AuditEntry>) -> Result<u64, ChainError> {
    let mut prev_hash = GENESIS_HASH.to_string();
    let mut count = 0;
    for entry in entries {
        let seq = count + 1;
        if entry.seq != seq {
            return Err(ChainError::SeqGap { seq, found: entry.seq });
        }
        if entry.prev_hash != prev_hash {
            return Err(ChainError::BrokenLink { seq });
        }
        if entry.computed_hash() != entry.hash {
            return Err(ChainError::HashMismatch { seq });
        }
        prev_hash = entry.hash;
        count = seq;
    }
    Ok(count)
}
