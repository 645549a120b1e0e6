//! The data flow, end to end: sources are ingested into the record log, the log is resolved
//! into profiles, and a profile is assembled into its 360 document. The CLI and the server
//! call these; they hold no logic of their own.

pub mod accounts;
pub mod audience;
pub mod briefing;
pub mod cases;
pub mod connections;
pub mod deals;
pub mod flows;
pub mod follow;
mod fuzzy;
pub mod golden;
pub mod governance;
mod incremental;
mod ingest;
pub mod measure;
mod profile;
pub mod readable;
mod resolve;
pub mod success;

pub use fuzzy::FuzzyIndex;
pub use incremental::{reresolve_profiles, resolve_new_records, split_record, IncrementalReport, RESOLVED_THROUGH};
pub use ingest::{ingest_source, IngestReport};
pub use profile::{explain, profile_document};
pub use resolve::{profile_id_for, resolve_all, ResolveReport};

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Store(#[from] kinship_store::StoreError),
    #[error(transparent)]
    Source(#[from] kinship_sources::SourceError),
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Definition(#[from] kinship_segments::DefinitionError),
    #[error("writing {path}: {error}")]
    Write { path: PathBuf, error: std::io::Error },
}

pub type Result<T> = std::result::Result<T, PipelineError>;

/// Progress of long work: (done, total) in the unit the caller was told.
pub type Progress<'a> = &'a (dyn Fn(u64, u64) + Sync);

/// Every configured source's mapping, by source name.
pub(crate) fn mappers(config: &kinship_core::Config) -> Result<rustc_hash::FxHashMap<&str, kinship_sources::Mapper<'_>>> {
    config.sources.iter().map(|(name, source)| Ok((name.as_str(), mapper(name, source, config)?))).collect()
}

/// One source's mapping; a bad declaration names the source and the setting.
pub(crate) fn mapper<'a>(
    name: &str,
    source: &'a kinship_core::SourceConfig,
    config: &kinship_core::Config,
) -> Result<kinship_sources::Mapper<'a>> {
    kinship_sources::Mapper::new(source, &config.resolve)
        .map_err(|e| PipelineError::Config(if e.starts_with("fields.") { format!("sources.{name}.{e}") } else { e }))
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}
