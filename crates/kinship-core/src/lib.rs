//! Shared vocabulary of Kinship: identifier kinds, records, profiles and the configuration
//! file. No I/O beyond reading the configuration.

pub mod act;
pub mod config;
pub mod config_file;
pub mod ingest;
pub mod measure;
pub mod types;

pub use config::{
    Config, ConfigError, EventMapping, FieldSpec, FieldType, Interval, NamePart, OneOrMany, ResolveConfig, ServerConfig, SourceConfig,
    SourceType, TextCase,
};
pub use ingest::{IngestConfig, IngestMode};
pub use types::*;
