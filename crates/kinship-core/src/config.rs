//! `kinship.toml`, layered: built-in defaults < the file < `KINSHIP_*` environment variables
//! (nested keys joined by `__`, e.g. `KINSHIP_RESOLVE__DEFAULT_REGION=GB`).

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const CONFIG_FILE: &str = "kinship.toml";
/// The embedded store's file in the data directory, when no `database_url` is set.
pub const DATABASE_FILE: &str = "kinship.sqlite";
/// Where the web UI keeps uploaded exports, inside the data directory. Erasure scrubs them.
pub const UPLOADS_DIR: &str = "uploads";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
    #[error("reading configuration: {0}")]
    Load(#[from] Box<figment::Error>),
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where profiles are stored: a `postgres://` URL for a shared PostgreSQL database, or a
    /// SQLite file path (relative to the data directory). Absent: `kinship.sqlite` in the
    /// data directory. Usually set as `KINSHIP_DATABASE_URL`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    #[serde(default)]
    pub resolve: ResolveConfig,
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub sources: BTreeMap<String, SourceConfig>,
    /// The fuzzy stage of resolution: a matching configuration over profile traits (the
    /// format of `kinship dedupe --config`); absent, resolution is exact only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fuzzy: Option<toml::Table>,
    /// Custom roles (`[roles.NAME]`), added to the built-in ones; a table named like a
    /// built-in refines it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub roles: BTreeMap<String, kinship_policy::RoleConfig>,
    /// Which traits and events grant or revoke consent, per purpose.
    #[serde(default)]
    pub consent: kinship_policy::ConsentConfig,
    /// How the collection API hands events to the log: directly, or through NATS JetStream.
    #[serde(default)]
    pub ingest: crate::ingest::IngestConfig,
    /// Reference data for flows (`[references.catalogue]`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub references: BTreeMap<String, crate::act::ReferenceConfig>,
    /// Teams that work tasks.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub teams: BTreeMap<String, crate::act::TeamConfig>,
    /// Where flows deliver.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub endpoints: BTreeMap<String, crate::act::EndpointConfig>,
    /// Where flows write the traits and lists they set.
    #[serde(default)]
    pub flows: crate::act::FlowsConfig,
    /// What NPS, revenue and earned growth read.
    #[serde(default)]
    pub measures: crate::measure::MeasuresConfig,
    /// Business-hours calendars and SLA policies for cases.
    #[serde(default)]
    pub service: kinship_service::ServiceConfig,
    /// What groups people into accounts (companies).
    #[serde(default)]
    pub accounts: kinship_service::accounts::AccountsConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResolveConfig {
    /// Region for phone numbers written without a country code (ISO 3166 code).
    pub default_region: String,
    /// Identifier values that never join records (compared after normalisation).
    pub blocked_values: Vec<String>,
    /// Most distinct values of a kind one profile may hold; 0 means no limit.
    pub limits: BTreeMap<String, u32>,
    /// Limit for kinds not named in `limits`.
    pub default_limit: u32,
    /// Kinds in order of trust, strongest first. When joining would break a limit, the
    /// weaker identifier gives way. Kinds not listed come after, alphabetically.
    pub priority: Vec<String>,
    /// Kinds of which a person truly has one value (a login's user id): two profiles
    /// holding different values are never joined, whatever the evidence. Other limits may
    /// give way to overwhelming fuzzy evidence (`[fuzzy] override_limits_at`).
    pub unique: Vec<String>,
}

impl Default for ResolveConfig {
    fn default() -> Self {
        Self {
            default_region: "US".into(),
            blocked_values: [
                "null",
                "none",
                "nil",
                "n/a",
                "na",
                "unknown",
                "undefined",
                "-",
                "0",
                "test@test.com",
                "test@example.com",
                "noemail@example.com",
                "no@email.com",
                "0000000000",
                "+10000000000",
                "1234567890",
                "+11234567890",
            ]
            .map(String::from)
            .to_vec(),
            limits: BTreeMap::from([("user_id".to_string(), 1)]),
            default_limit: 5,
            priority: ["user_id", "email", "phone", "handle", "anonymous_id"].map(String::from).to_vec(),
            unique: vec!["user_id".to_string()],
        }
    }
}

impl ResolveConfig {
    pub fn limit_for(&self, kind: &str) -> Option<u32> {
        match self.limits.get(kind).copied().unwrap_or(self.default_limit) {
            0 => None,
            n => Some(n),
        }
    }

    /// Rank of a kind: lower is stronger.
    pub fn rank_of(&self, kind: &str) -> usize {
        self.priority.iter().position(|k| k == kind).unwrap_or(self.priority.len())
    }
}

/// `kinship serve`: where it listens and what it accepts.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub bind: String,
    /// Largest single event accepted by the collection API, in bytes.
    pub max_event_bytes: usize,
    /// Largest `/v1/batch` request, in bytes (after decompression).
    pub max_batch_bytes: usize,
    /// Requests waiting for the writer before new ones get 429.
    pub queue_capacity: usize,
    /// Failed token or write-key checks one client address may make per minute before it
    /// gets 429 for the rest of the minute.
    pub auth_failures_per_minute: u32,
    /// Longest query string accepted on any route, in bytes (longer: 414).
    pub max_query_bytes: usize,
    /// Largest JSON body of a REST API call (`/api/v1/...`), in bytes.
    pub max_api_body_bytes: usize,
    /// Largest file an admin may upload for a new connection in the web UI, in bytes.
    pub max_upload_bytes: usize,
    /// Mark the web UI's session cookie `Secure` (sent over HTTPS only). Turn on whenever
    /// the UI is reached over TLS (e.g. behind a reverse proxy); off by default so that
    /// plain `http://127.0.0.1` works.
    pub secure_cookies: bool,
    /// Seconds a client has to send a request's headers, from connecting (or from the end
    /// of its previous request); a slow-header client is then disconnected.
    pub header_timeout_secs: u64,
    /// Seconds a client has to send a request's body.
    pub body_timeout_secs: u64,
    /// Seconds an idle keep-alive connection is kept open waiting for another request.
    pub idle_timeout_secs: u64,
    /// Most connections open at once; beyond it a new one is answered 503 and closed.
    pub max_connections: usize,
    /// Seconds a request may take from its headers to its answer (then 503).
    pub request_deadline_secs: u64,
    /// Rejected items a collection response lists one by one; the rest are counted.
    pub max_listed_rejects: usize,
    /// Segment sizes and preview counts below this are shown as "fewer than N" to roles
    /// that do not see who people are (marketer, analyst): a count of 1 names a person.
    pub min_count: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1:7878".into(),
            max_event_bytes: 32 * 1024,
            max_batch_bytes: 500 * 1024,
            queue_capacity: 1024,
            auth_failures_per_minute: 20,
            max_query_bytes: 2048,
            max_api_body_bytes: 64 * 1024,
            max_upload_bytes: 64 * 1024 * 1024,
            secure_cookies: false,
            header_timeout_secs: 10,
            body_timeout_secs: 30,
            idle_timeout_secs: 60,
            max_connections: 1024,
            request_deadline_secs: 60,
            max_listed_rejects: 20,
            min_count: 5,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceType {
    Csv,
    Jsonl,
    /// Events sent to the Segment-compatible collection API, authenticated by a write key.
    Segment,
    /// Rows of a PostgreSQL table or query, pulled incrementally by a cursor column.
    Postgres,
}

impl SourceType {
    /// Whether the source reads a file (and so needs `path`).
    pub fn is_file(self) -> bool {
        matches!(self, Self::Csv | Self::Jsonl)
    }

    /// Whether Kinship reads the source itself (files, databases), on request or on a
    /// schedule, rather than receiving its events.
    pub fn is_pulled(self) -> bool {
        !matches!(self, Self::Segment)
    }
}

/// A period written as a whole number and a unit: `30s`, `5m`, `2h` or `1d`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Interval(Duration);

impl Interval {
    pub fn duration(self) -> Duration {
        self.0
    }
}

impl TryFrom<String> for Interval {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        let bad = || format!("{text:?} is not a period; write a whole number and a unit: 30s, 5m, 2h or 1d");
        let t = text.trim();
        let (number, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?);
        let seconds = match unit.trim() {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            _ => return Err(bad()),
        };
        match number.parse::<u64>() {
            Ok(n) if n > 0 => Ok(Self(Duration::from_secs(n.saturating_mul(seconds)))),
            _ => Err(bad()),
        }
    }
}

impl From<Interval> for String {
    fn from(interval: Interval) -> String {
        let s = interval.0.as_secs();
        match [(86_400, "d"), (3600, "h"), (60, "m")].into_iter().find(|(unit, _)| s.is_multiple_of(*unit)) {
            Some((unit, name)) => format!("{}{name}", s / unit),
            None => format!("{s}s"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FieldType {
    String,
    Number,
    Integer,
    Boolean,
    Date,
    Timestamp,
}

/// One field of a mapping, read from the row and transformed by declared steps, always in
/// this order: read (`from`, or `join`), trim, `extract`, `split` / `pick`, `name_part`,
/// `case`, `map`, `divide` / `multiply` / `minor_units`, `format`, `default`, `type`. A
/// step that cannot apply rejects the row, naming the field and the step.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldSpec {
    /// The column or dotted path to read; absent, the field's own name.
    pub from: Option<String>,
    /// Several columns or paths joined with `separator` (default a space), blanks skipped.
    pub join: Option<Vec<String>>,
    /// Between joined values, or where `split` cuts.
    pub separator: Option<String>,
    /// Trim surrounding white space (default true).
    pub trim: Option<bool>,
    /// A regular expression: the first capture group, or the whole match without groups. A
    /// value that does not match is `default` if set, else a reject.
    pub extract: Option<String>,
    /// Cut text into an array at this delimiter (`";"`).
    pub split: Option<String>,
    /// From an array of objects (line items), the value of this key in each, or an object
    /// of these keys in each. A JSON array written as text is read too.
    pub pick: Option<OneOrMany>,
    /// `first`, `middle` or `last`: the part of a full name written `First Last`,
    /// `First M. Last` or `LAST, First`.
    pub name_part: Option<NamePart>,
    /// `lower`, `upper` or `title`.
    pub case: Option<TextCase>,
    /// Value → value (`{ yes = true, no = false }`); matched exactly, then ignoring case.
    /// A value not listed is `default` if set, else a reject.
    pub map: Option<BTreeMap<String, serde_json::Value>>,
    /// Divide a number (`100` for amounts written in cents).
    pub divide: Option<f64>,
    /// Multiply a number.
    pub multiply: Option<f64>,
    /// The field holding an ISO 4217 currency code: the number is in that currency's minor
    /// units (cents), divided by 100, 1 (JPY) or 1000 (KWD) as the currency has it.
    pub minor_units: Option<String>,
    /// How a date or time is written: `rfc3339`, `unix`, `unix_ms`, `salesforce`,
    /// `day_first`, `month_first` or a strftime pattern. The value becomes `YYYY-MM-DD`
    /// (a date) or RFC 3339 in UTC (a time).
    pub format: Option<String>,
    /// IANA time zone for times written without an offset (default UTC).
    pub timezone: Option<String>,
    /// The value when the field is blank or absent (or, with `map`, not listed).
    pub default: Option<serde_json::Value>,
    /// Convert the result to this type; a value that does not convert is a reject.
    #[serde(rename = "type")]
    pub kind: Option<FieldType>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NamePart {
    First,
    Middle,
    Last,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TextCase {
    Lower,
    Upper,
    Title,
}

/// How an event source names its events: a fixed name, or the value of a field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventMapping {
    pub name: Option<String>,
    pub field: Option<String>,
}

/// One field path, or several (e.g. two email columns of the same kind).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        let s: &[String] = match self {
            Self::One(s) => std::slice::from_ref(s),
            Self::Many(v) => v,
        };
        s.iter().map(String::as_str)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    #[serde(rename = "type")]
    pub kind: SourceType,
    /// File path, relative to the data directory unless absolute (file sources only).
    #[serde(default)]
    pub path: PathBuf,
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Field whose value is the record key; without it the key is a hash of the row.
    pub key: Option<String>,
    /// Survivorship rank of this source's trait values: lower wins, then the most recent.
    #[serde(default = "default_source_priority")]
    pub priority: i32,
    /// Field holding the record's time (RFC 3339, `YYYY-MM-DD`, or Unix seconds).
    pub timestamp: Option<String>,
    /// Identifier kind → field path(s). Paths use dots for nested JSON (`customer.email`).
    #[serde(default)]
    pub identifiers: BTreeMap<String, OneOrMany>,
    /// Trait name → field path.
    #[serde(default)]
    pub traits: BTreeMap<String, String>,
    /// Present for event sources.
    pub event: Option<EventMapping>,
    /// Event properties: the listed fields; absent means every field of the row.
    pub properties: Option<Vec<String>>,
    /// Declared field types; a value that does not parse as its type rejects the row.
    #[serde(default)]
    pub types: BTreeMap<String, FieldType>,
    /// Fields as the mapping reads them: a column's format, or a value derived from columns
    /// by declared transforms. Identifiers, traits, the key, the time and properties name
    /// these like columns; one named as a column replaces it.
    #[serde(default)]
    pub fields: BTreeMap<String, FieldSpec>,
    /// How often `kinship serve` pulls this source (`30s`, `5m`, `1h`); absent, it is pulled
    /// only by `kinship ingest` or "run now".
    pub schedule: Option<Interval>,
    /// What the rows are as commercial documents (orders, invoices, shipments …), for the
    /// briefing and the customer's documents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document: Option<kinship_service::documents::DocumentMapping>,
    /// What the rows say about help desk cases (tickets or their comments).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub case: Option<kinship_service::cases::CaseMapping>,
    /// What the rows say about deals (a CRM's opportunities, each row a version).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deal: Option<kinship_service::deals::DealMapping>,

    // PostgreSQL sources.
    /// The connection URL (`postgres://user:password@host:5432/db`)...
    pub url: Option<String>,
    /// ...or the environment variable holding it, so that no password sits in this file.
    pub url_env: Option<String>,
    /// The table or view to pull, as SQL names it (`customers`, `crm.contacts`)...
    pub table: Option<String>,
    /// ...or a query whose rows to pull (`SELECT ...`, without a trailing `;`).
    pub query: Option<String>,
    /// Column that grows whenever a row is inserted or changed (a timestamp or an integer);
    /// each pull reads the rows past the last one stored. With `key`, it also names each
    /// version of a row: the record key is `KEY@CURSOR`, so an update becomes a new record.
    pub cursor: Option<String>,
    /// Rows per query (default 1000).
    pub batch_size: Option<u32>,
}

impl SourceConfig {
    /// The settings only PostgreSQL sources take, by name, with whether each is set.
    fn postgres_settings(&self) -> [(&'static str, bool); 6] {
        [
            ("url", self.url.is_some()),
            ("url_env", self.url_env.is_some()),
            ("table", self.table.is_some()),
            ("query", self.query.is_some()),
            ("cursor", self.cursor.is_some()),
            ("batch_size", self.batch_size.is_some()),
        ]
    }
}

fn yes() -> bool {
    true
}

fn default_source_priority() -> i32 {
    100
}

/// The settings the environment may set (`KINSHIP_DATABASE_URL`, `KINSHIP_SERVER__BIND`);
/// other `KINSHIP_` variables (`KINSHIP_TOKEN`, the tests' switches) are not configuration.
const ENV_SECTIONS: &[&str] = &["database_url", "resolve", "server", "sources", "fuzzy", "roles", "consent", "ingest"];

impl Config {
    /// Loads `DIR/kinship.toml` (if present) over the defaults, then the environment.
    pub fn load(data_dir: &Path) -> Result<Self, ConfigError> {
        Self::load_file(&data_dir.join(CONFIG_FILE))
    }

    pub fn load_file(path: &Path) -> Result<Self, ConfigError> {
        let config: Config = Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::file(path))
            .merge(Env::prefixed("KINSHIP_").split("__").filter(|key| {
                let section = key.as_str().split('.').next().unwrap_or("").to_ascii_lowercase();
                ENV_SECTIONS.contains(&section.as_str())
            }))
            .extract()
            .map_err(|e| ConfigError::Load(Box::new(e)))?;
        let mut config = config;
        // Native cases and deals are read back with the mappings they are written with.
        if let Some(name) = config.service.source.clone()
            && let Some(source) = config.sources.get_mut(&name)
        {
            for (mapped, what) in [(source.case.is_some(), "case"), (source.deal.is_some(), "deal")] {
                if mapped {
                    return Err(ConfigError::Invalid {
                        path: format!("sources.{name}.{what}"),
                        message: format!(
                            "this source holds native cases and deals ([service] source), read with the mapping they are written with: remove this {what} mapping"
                        ),
                    });
                }
            }
            source.case = Some(kinship_service::cases::CaseMapping::native());
            source.deal = Some(kinship_service::deals::DealMapping::native());
        }
        config.validate()?;
        Ok(config)
    }

    /// Where the store is: `database_url`, with a
    /// relative SQLite path taken from the data directory, or `DIR/kinship.sqlite`.
    pub fn database(&self, data_dir: &Path) -> String {
        match self.database_url.as_deref().map(str::trim).filter(|u| !u.is_empty()) {
            Some(url) if url.contains("://") => url.to_string(),
            Some(path) => data_dir.join(path).display().to_string(),
            None => data_dir.join(DATABASE_FILE).display().to_string(),
        }
    }

    /// Every role this configuration serves: the built-ins and `[roles.NAME]`.
    pub fn roles(&self) -> Result<kinship_policy::Roles, kinship_policy::PolicyError> {
        kinship_policy::Roles::from_config(&self.roles)
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("configuration serialises")
    }

    /// Checks what serde cannot: each error names the key and how to fix it.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |path: String, message: &str| Err(ConfigError::Invalid { path, message: message.into() });
        for (name, s) in &self.sources {
            let at = |k: &str| format!("sources.{name}.{k}");
            if !is_source_name(name) {
                return invalid(format!("sources.{name}"), "source names may use letters, digits, '_' and '-' only");
            }
            if s.kind.is_file() && s.path.as_os_str().is_empty() {
                return invalid(at("path"), "is empty; give the file to read, relative to the data directory");
            }
            if let Some(ev) = &s.event
                && ev.name.is_some() == ev.field.is_some()
            {
                return invalid(at("event"), "set exactly one of `name` (a fixed event name) or `field` (the field holding it)");
            }
            for kind in s.identifiers.keys() {
                if kind.is_empty() || kind.contains([':', '\t', '\n']) {
                    return invalid(at("identifiers"), "identifier kinds may not be empty or contain ':'");
                }
            }
            if s.kind.is_pulled() && s.identifiers.is_empty() && s.event.is_none() && s.traits.is_empty() {
                return invalid(format!("sources.{name}"), "maps nothing; add `identifiers`, `traits` or `event`");
            }
            if !s.fields.is_empty() && !s.kind.is_pulled() {
                return invalid(at("fields"), "is for sources Kinship reads; a segment source's events follow the Segment spec");
            }
            if s.schedule.is_some() && !s.kind.is_pulled() {
                return invalid(at("schedule"), "is for sources Kinship reads; a segment source receives its events as they are sent");
            }
            if s.kind == SourceType::Postgres {
                validate_postgres(s).map_err(|(key, message)| ConfigError::Invalid { path: at(key), message: message.into() })?;
            } else if let Some((key, _)) = s.postgres_settings().into_iter().find(|(_, set)| *set) {
                return invalid(at(key), "is for postgres sources only");
            }
        }
        self.validate_act()?;
        self.validate_fuzzy_columns()?;
        if let Err(e) = kinship_service::sla::Sla::compile(&self.service) {
            return invalid("service".into(), &e.to_string());
        }
        if let Err(e) = kinship_service::deals::check_stages(&self.service.stages) {
            return invalid("service.stages".into(), &e);
        }
        if let Some(source) = &self.service.source
            && self.sources.get(source).is_none_or(|s| s.kind != SourceType::Segment)
        {
            return invalid(
                "service.source".into(),
                &format!("`{source}` is not a source of type \"segment\": add [sources.{source}] type = \"segment\" for native cases"),
            );
        }
        if let Err(e) = self.roles() {
            return invalid("roles".into(), &format!("{e}; extend one of: {}", kinship_policy::BUILTIN_ROLES.join(", ")));
        }
        if self.resolve.default_region.len() != 2 {
            return invalid("resolve.default_region".into(), "must be a two-letter region code such as \"US\" or \"AU\"");
        }
        self.ingest.validate()
    }

    /// The fuzzy stage compares profiles' golden traits: a column no source maps as a trait
    /// would compare nothing, silently. A segment source may bring any trait, so with one
    /// configured any column may fill.
    /// References, teams and endpoints: names a flow can use, files and URLs that can work.
    fn validate_act(&self) -> Result<(), ConfigError> {
        let invalid = |path: String, message: String| Err(ConfigError::Invalid { path, message });
        for (name, r) in &self.references {
            let ext = r.path.extension().and_then(|e| e.to_str()).unwrap_or_default();
            if !is_source_name(name) {
                return invalid(format!("references.{name}"), "reference names may use letters, digits, '_' and '-' only".into());
            }
            if !matches!(ext, "csv" | "jsonl") {
                return invalid(format!("references.{name}.path"), format!("`{}` is neither .csv nor .jsonl", r.path.display()));
            }
        }
        if let Some(source) = &self.flows.source
            && self.sources.get(source).is_none_or(|s| s.kind != SourceType::Segment)
        {
            return invalid(
                "flows.source".into(),
                format!("`{source}` is not a source of type \"segment\": add [sources.{source}] type = \"segment\""),
            );
        }
        for (name, t) in &self.teams {
            if t.members.is_empty() {
                return invalid(format!("teams.{name}.members"), "is empty; list who works this team's tasks: [{ name = \"ana\" }]".into());
            }
        }
        for (name, crate::act::EndpointConfig::Webhook(w)) in &self.endpoints {
            if !(w.url.starts_with("http://") || w.url.starts_with("https://")) {
                return invalid(format!("endpoints.{name}.url"), format!("`{}` is not an http:// or https:// URL", w.url));
            }
            if w.secrets_env.is_empty() {
                return invalid(
                    format!("endpoints.{name}.secrets_env"),
                    "is empty; name the environment variable holding the signing secret (whsec_...)".into(),
                );
            }
            if w.concurrency == 0 || w.max_attempts == 0 || w.timeout_secs == 0 {
                return invalid(format!("endpoints.{name}"), "concurrency, max_attempts and timeout_secs must be at least 1".into());
            }
        }
        Ok(())
    }

    fn validate_fuzzy_columns(&self) -> Result<(), ConfigError> {
        let Some(fields) = self.fuzzy.as_ref().and_then(|f| f.get("fields")).and_then(|f| f.as_array()) else { return Ok(()) };
        if self.sources.is_empty() || self.sources.values().any(|s| !s.kind.is_pulled()) {
            return Ok(());
        }
        let mapped: std::collections::BTreeSet<&str> = self.sources.values().flat_map(|s| s.traits.keys().map(String::as_str)).collect();
        for (i, field) in fields.iter().enumerate() {
            let Some(column) = field.get("column").and_then(|c| c.as_str()) else { continue };
            if !mapped.contains(column) {
                let identifier = self.sources.values().any(|s| s.identifiers.contains_key(column));
                let hint =
                    if identifier { " (it is an identifier kind; map its column under a source's `traits` too to compare it)" } else { "" };
                let traits = mapped.iter().copied().collect::<Vec<_>>().join(", ");
                return Err(ConfigError::Invalid {
                    path: format!("fuzzy.fields[{i}].column"),
                    message: format!("`{column}` is no trait any source maps, so it would compare nothing{hint}; traits mapped: {traits}"),
                });
            }
        }
        Ok(())
    }
}

/// Letters, digits, '_' and '-': what a source may be called (it names tables, files and
/// URL paths).
pub fn is_source_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// A PostgreSQL source's settings; `Err` is the offending key and what to do.
fn validate_postgres(s: &SourceConfig) -> Result<(), (&'static str, &'static str)> {
    if !s.path.as_os_str().is_empty() {
        return Err(("path", "is for files; a postgres source reads `table` or `query`"));
    }
    if s.url.is_some() == s.url_env.is_some() {
        return Err(("url", "set exactly one of `url` (a postgres:// URL) or `url_env` (the environment variable holding it)"));
    }
    if s.url.as_deref().is_some_and(|u| !(u.starts_with("postgres://") || u.starts_with("postgresql://"))) {
        return Err(("url", "must be a postgres:// URL, e.g. postgres://kinship@db.internal:5432/crm"));
    }
    if s.table.is_some() == s.query.is_some() {
        return Err(("table", "set exactly one of `table` (a table or view) or `query` (a SELECT whose rows to pull)"));
    }
    if s.cursor.is_none() {
        return Err(("cursor", "is required: the column that grows whenever a row is inserted or changed (a timestamp or an integer)"));
    }
    if s.key.is_none() {
        return Err((
            "key",
            "is required: the column that identifies a row (e.g. its primary key); it orders rows that share a cursor value",
        ));
    }
    if s.batch_size == Some(0) {
        return Err(("batch_size", "must be at least 1"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail fails with its own large error type
    fn layered_defaults_file_environment() {
        let dir = std::env::temp_dir().join(format!("kinship-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join(CONFIG_FILE),
            r#"
            [resolve]
            default_region = "AU"
            [sources.crm]
            type = "csv"
            path = "crm.csv"
            key = "id"
            identifiers = { email = "email", phone = ["mobile", "home"] }
            "#,
        )
        .unwrap();
        let c = Config::load(&dir).unwrap();
        assert_eq!(c.resolve.default_region, "AU");
        assert_eq!(c.resolve.default_limit, 5, "defaults survive under the file");
        assert_eq!(c.resolve.limit_for("user_id"), Some(1));
        let crm = &c.sources["crm"];
        assert!(crm.enabled);
        assert_eq!(crm.identifiers["phone"].iter().collect::<Vec<_>>(), ["mobile", "home"]);
        figment::Jail::expect_with(|jail| {
            jail.set_env("KINSHIP_RESOLVE__DEFAULT_REGION", "GB");
            let c = Config::load(&dir).unwrap();
            assert_eq!(c.resolve.default_region, "GB", "environment beats the file");
            assert_eq!(c.database(&dir), dir.join(DATABASE_FILE).display().to_string());
            jail.set_env("KINSHIP_DATABASE_URL", "postgres://kinship@db/kinship");
            // Other KINSHIP_ variables are not settings, and do not break loading.
            jail.set_env("KINSHIP_TOKEN", "kt_secret");
            jail.set_env("KINSHIP_TEST_BACKEND", "postgres");
            jail.set_env("KINSHIP_INGEST__MODE", "nats");
            let c = Config::load(&dir).unwrap();
            assert_eq!(c.database(&dir), "postgres://kinship@db/kinship");
            assert_eq!(c.ingest.mode, crate::IngestMode::Nats);
            Ok(())
        });
    }

    #[test]
    fn errors_name_the_key() {
        let mut c = Config::default();
        c.sources.insert(
            "shop".into(),
            SourceConfig {
                kind: SourceType::Jsonl,
                path: "orders.jsonl".into(),
                enabled: true,
                key: None,
                priority: 1,
                timestamp: None,
                identifiers: BTreeMap::new(),
                traits: BTreeMap::new(),
                event: Some(EventMapping { name: Some("Order".into()), field: Some("type".into()) }),
                properties: None,
                types: BTreeMap::new(),
                fields: BTreeMap::new(),
                schedule: None,
                document: None,
                case: None,
                deal: None,
                url: None,
                url_env: None,
                table: None,
                query: None,
                cursor: None,
                batch_size: None,
            },
        );
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("sources.shop.event") && e.contains("exactly one"), "{e}");
    }

    #[test]
    fn a_fuzzy_column_must_be_a_mapped_trait() {
        let text = |fuzzy_column: &str, extra: &str| {
            format!(
                "[sources.crm]\ntype = \"csv\"\npath = \"c.csv\"\nidentifiers = {{ email = \"Email\" }}\ntraits = {{ first_name = \"First\" }}\n{extra}\n\
                 [fuzzy]\nthreshold = 0.9\nblocking = [[\"first_name\"]]\n[[fuzzy.fields]]\ncolumn = \"{fuzzy_column}\"\nkind = \"exact\"\n"
            )
        };
        let load = |t: String| toml::from_str::<Config>(&t).unwrap().validate().map_err(|e| e.to_string());
        assert!(load(text("first_name", "")).is_ok());
        let e = load(text("email", "")).unwrap_err();
        assert!(e.contains("fuzzy.fields[0].column") && e.contains("identifier kind") && e.contains("first_name"), "{e}");
        // a segment source may send any trait
        assert!(load(text("email", "[sources.web]\ntype = \"segment\"")).is_ok());
    }

    /// A postgres source with `settings`, loaded and validated; `Err` is the message.
    fn postgres_source(settings: &str) -> Result<Config, String> {
        let text = format!("[sources.accounts]\ntype = \"postgres\"\nidentifiers = {{ email = \"email\" }}\n{settings}");
        let config: Config = toml::from_str(&text).map_err(|e| e.to_string())?;
        config.validate().map_err(|e| e.to_string())?;
        Ok(config)
    }

    const PULL: &str = "url_env = \"CRM_URL\"\ntable = \"customers\"\ncursor = \"updated_at\"\nkey = \"id\"\n";

    #[test]
    fn postgres_source_settings() {
        let c = postgres_source(&format!("{PULL}schedule = \"5m\"\nbatch_size = 200")).unwrap();
        let accounts = &c.sources["accounts"];
        assert_eq!(accounts.schedule.map(Interval::duration), Some(Duration::from_secs(300)));
        assert_eq!(accounts.batch_size, Some(200));
        let without = |key: &str| PULL.lines().filter(|l| !l.starts_with(key)).collect::<Vec<_>>().join("\n");
        for (settings, path, says) in [
            (format!("{PULL}query = \"SELECT * FROM customers\""), "sources.accounts.table", "exactly one"),
            (without("table"), "sources.accounts.table", "exactly one"),
            (without("url_env"), "sources.accounts.url", "exactly one"),
            (format!("{PULL}url = \"postgres://db/crm\""), "sources.accounts.url", "exactly one"),
            (format!("{}\nurl = \"mysql://db/crm\"", without("url_env")), "sources.accounts.url", "postgres://"),
            (without("cursor"), "sources.accounts.cursor", "required"),
            (without("key"), "sources.accounts.key", "primary key"),
            (format!("{PULL}path = \"x.csv\""), "sources.accounts.path", "`table` or `query`"),
            (format!("{PULL}batch_size = 0"), "sources.accounts.batch_size", "at least 1"),
        ] {
            let e = postgres_source(&settings).unwrap_err();
            assert!(e.contains(path) && e.contains(says), "{settings}: {e}");
        }
        let e = postgres_source(&format!("{PULL}schedule = \"5 minutes\"")).unwrap_err();
        assert!(e.contains("not a period") && e.contains("30s, 5m"), "{e}");
    }

    #[test]
    fn postgres_settings_elsewhere_are_refused() {
        let csv: Config =
            toml::from_str("[sources.crm]\ntype = \"csv\"\npath = \"crm.csv\"\ncursor = \"updated_at\"\ntraits = { a = \"a\" }").unwrap();
        let e = csv.validate().unwrap_err().to_string();
        assert!(e.contains("sources.crm.cursor") && e.contains("postgres sources only"), "{e}");
        let segment: Config = toml::from_str("[sources.web]\ntype = \"segment\"\nschedule = \"1m\"").unwrap();
        let e = segment.validate().unwrap_err().to_string();
        assert!(e.contains("sources.web.schedule"), "{e}");
    }

    #[test]
    fn intervals_read_and_print_in_their_largest_unit() {
        for (text, seconds, printed) in
            [("30s", 30, "30s"), ("90s", 90, "90s"), ("120s", 120, "2m"), (" 2h ", 7200, "2h"), ("1d", 86_400, "1d")]
        {
            let interval = Interval::try_from(text.to_string()).unwrap();
            assert_eq!(interval.duration(), Duration::from_secs(seconds), "{text}");
            assert_eq!(String::from(interval), printed);
        }
        for bad in ["", "0s", "5", "m", "1.5h", "-1m", "5w"] {
            assert!(Interval::try_from(bad.to_string()).is_err(), "{bad:?}");
        }
    }
}
