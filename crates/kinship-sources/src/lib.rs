//! Connectors that read rows from outside systems, and the mapping that turns a row into a
//! record of the log. Each connector is one module implementing [`Source`]; adding one
//! means adding a module and a line in [`open`].

mod csv;
mod jsonl;
pub mod mapping;
mod postgres;
pub mod segment;
pub mod suggest;
pub mod transform;

pub use mapping::{Mapped, MappedEvent, Mapper};
pub use postgres::sample_table;

use kinship_core::{SourceConfig, SourceType};
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

/// A row read from a source, as a JSON object, with the line it started on (for a
/// database, its number in the pull).
pub struct Row {
    pub line: u64,
    pub fields: Map<String, Value>,
    /// The row as stored in the log: a JSON object text.
    pub payload: String,
    /// Where a source that resumes (a database) stands after this row. Ingest stores it once
    /// the row is committed and hands it back to [`open`] next time; `None` for files, which
    /// are read whole each time.
    pub position: Option<String>,
}

/// A row that could not be read, with the line it started on and why.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Reject {
    pub line: u64,
    pub reason: String,
    pub raw: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot open {path}: {error}; check `path` in the source's configuration")]
    Open { path: PathBuf, error: std::io::Error },
    #[error("a segment source receives events from the collection API; it has no file to read{}", if .0.as_os_str().is_empty() { String::new() } else { format!(" (drop `path = {:?}`)", .0) })]
    NotAFile(PathBuf),
    #[error("reading {path}: {error}")]
    Read { path: PathBuf, error: String },
    #[error("PostgreSQL: {0}")]
    Postgres(String),
}

/// A connector: reads all rows, handing each good or bad row to `emit` in order.
pub trait Source: Send {
    /// `emit` returns `Break` to stop early (a sample has enough rows).
    fn read(&mut self, emit: &mut dyn FnMut(Result<Row, Reject>) -> std::ops::ControlFlow<()>) -> Result<(), SourceError>;
    /// Input size and bytes consumed, readable while `read` runs, for progress bars.
    fn progress(&self) -> ByteProgress;
}

#[derive(Clone, Default)]
pub struct ByteProgress {
    pub total: u64,
    pub consumed: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl ByteProgress {
    pub fn done(&self) -> u64 {
        self.consumed.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Opens the connector a source's configuration names. Relative paths are read from
/// `data_dir`; `position` is where the last run of a resuming source stopped.
pub fn open(config: &SourceConfig, data_dir: &Path, position: Option<&str>) -> Result<Box<dyn Source>, SourceError> {
    let path = if config.path.is_absolute() { config.path.clone() } else { data_dir.join(&config.path) };
    Ok(match config.kind {
        SourceType::Csv => Box::new(csv::CsvSource::open(path)?),
        SourceType::Jsonl => Box::new(jsonl::JsonlSource::open(path)?),
        SourceType::Postgres => Box::new(postgres::PostgresSource::open(config, position)?),
        SourceType::Segment => return Err(SourceError::NotAFile(config.path.clone())),
    })
}

/// Counts bytes read through it, for progress.
struct CountingReader<R> {
    inner: R,
    read: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl<R: std::io::Read> std::io::Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(n)
    }
}

/// Up to `limit` rows of a source as read (rejects beside them), for the mapping assistant.
/// A PostgreSQL source is sampled from its `table`, whatever its cursor.
pub fn sample(config: &SourceConfig, data_dir: &Path, limit: usize) -> Result<(Vec<Row>, Vec<Reject>), SourceError> {
    let (mut rows, mut rejects) = (Vec::new(), Vec::new());
    if config.kind == SourceType::Postgres {
        let url = match (&config.url, &config.url_env) {
            (Some(url), _) => url.clone(),
            (None, Some(var)) => {
                std::env::var(var).map_err(|_| SourceError::Postgres(format!("the environment variable {var} is not set")))?
            }
            (None, None) => return Err(SourceError::Postgres("give the database URL in an environment variable".into())),
        };
        let table = config.table.as_deref().ok_or_else(|| SourceError::Postgres("give the table to read".into()))?;
        for row in postgres::sample_table(&url, table, limit as i64)? {
            match row {
                Ok(row) => rows.push(row),
                Err(reject) => rejects.push(reject),
            }
        }
        return Ok((rows, rejects));
    }
    let mut source = open(config, data_dir, None)?;
    source.read(&mut |row| {
        match row {
            Ok(row) => rows.push(row),
            Err(reject) => rejects.push(reject),
        }
        if rows.len() + rejects.len() >= limit { std::ops::ControlFlow::Break(()) } else { std::ops::ControlFlow::Continue(()) }
    })?;
    Ok((rows, rejects))
}
