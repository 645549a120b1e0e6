use serde::{Deserialize, Serialize};
use std::fmt;

/// Row id of a record in the record log.
pub type RecordId = i64;

/// What an identifier names. Anything that is not one of the built-in kinds is an external
/// id such as `crm_id` or `order_id`, compared exactly after trimming.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum IdentifierKind {
    Email,
    Phone,
    UserId,
    AnonymousId,
    Handle,
    External(String),
}

impl IdentifierKind {
    pub fn as_str(&self) -> &str {
        match self {
            Self::Email => "email",
            Self::Phone => "phone",
            Self::UserId => "user_id",
            Self::AnonymousId => "anonymous_id",
            Self::Handle => "handle",
            Self::External(name) => name,
        }
    }
}

impl From<String> for IdentifierKind {
    fn from(s: String) -> Self {
        match s.as_str() {
            "email" => Self::Email,
            "phone" => Self::Phone,
            "user_id" => Self::UserId,
            "anonymous_id" => Self::AnonymousId,
            "handle" => Self::Handle,
            _ => Self::External(s),
        }
    }
}

impl From<&str> for IdentifierKind {
    fn from(s: &str) -> Self {
        Self::from(s.to_string())
    }
}

impl From<IdentifierKind> for String {
    fn from(k: IdentifierKind) -> Self {
        k.as_str().to_string()
    }
}

impl fmt::Display for IdentifierKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A normalised identifier value of one kind.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Identifier {
    pub kind: IdentifierKind,
    pub value: String,
}

impl Identifier {
    pub fn new(kind: impl Into<IdentifierKind>, value: impl Into<String>) -> Self {
        Self { kind: kind.into(), value: value.into() }
    }

    /// Parses `kind:value`.
    pub fn parse_key(s: &str) -> Option<Self> {
        let (kind, value) = s.split_once(':')?;
        if kind.is_empty() || value.is_empty() {
            return None;
        }
        Some(Self::new(kind, value))
    }
}

/// Identifiers are stored with a record as `kind\tvalue` lines: compact, and neither part can
/// contain a tab or newline after normalisation.
pub fn encode_identifiers(ids: &[Identifier]) -> String {
    let mut out = String::new();
    for id in ids {
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(id.kind.as_str());
        out.push('\t');
        out.push_str(&id.value);
    }
    out
}

pub fn decode_identifiers(s: &str) -> impl Iterator<Item = (&str, &str)> {
    s.lines().filter_map(|l| l.split_once('\t'))
}

/// A record as written to the log by a source.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRecord {
    pub key: String,
    /// The raw row as a JSON object.
    pub payload: String,
    /// Normalised identifiers, see [`encode_identifiers`].
    pub identifiers: String,
    /// Event or update time in Unix milliseconds, if the mapping names one.
    pub timestamp: Option<i64>,
}

/// A record read back from the log.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredRecord {
    pub id: RecordId,
    pub source: String,
    pub key: String,
    pub payload: serde_json::Value,
    pub identifiers: Vec<Identifier>,
    pub timestamp: Option<i64>,
    pub ingested_at: i64,
}

/// The derived profile row: golden traits and a text for search.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileRow {
    pub id: String,
    /// Golden-record traits as a JSON object: `{name: {value, source, record}}`.
    pub traits: String,
    pub search_text: String,
    pub record_count: i64,
}

/// An identifier of a profile with the source it came from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProfileIdentifier {
    pub kind: String,
    pub value: String,
    pub source: String,
}

/// Evidence that joined two records of a profile: the stage that decided and its detail
/// (the shared identifier, or the field weights of a fuzzy match) as JSON.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MergeEdge {
    pub left: RecordId,
    pub right: RecordId,
    pub stage: String,
    pub detail: serde_json::Value,
}

/// A person's decision that two records are (must) or are not (cannot) the same person,
/// named by source and key so it survives re-ingestion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LinkConstraint {
    pub must: bool,
    pub left: (String, String),
    pub right: (String, String),
}

/// One run of a source, for status and history.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SourceRun {
    pub source: String,
    pub started_at: i64,
    pub finished_at: i64,
    pub read: u64,
    pub inserted: u64,
    pub duplicates: u64,
    pub rejected: u64,
    /// Rows dropped because an identifier of theirs is on the suppression list (erased people).
    pub suppressed: u64,
    pub error: Option<String>,
}
