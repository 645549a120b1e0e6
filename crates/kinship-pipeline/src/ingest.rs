use crate::governance::SuppressionCheck;
use crate::{now_ms, PipelineError, Progress, Result};
use kinship_core::{encode_identifiers, Config, NewRecord, SourceRun};
use kinship_sources::Reject;
use kinship_store::Store;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

/// Records per transaction: large enough to amortise the commit, small enough to bound memory.
const BATCH: usize = 20_000;

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct IngestReport {
    pub source: String,
    pub read: u64,
    pub inserted: u64,
    /// Rows whose key was already in the log (re-ingesting a file adds nothing).
    pub duplicates: u64,
    pub rejected: u64,
    /// Rows dropped because an identifier of theirs belongs to an erased person.
    pub suppressed: u64,
    /// Identifier values present but invalid for their kind; the row is kept.
    pub invalid_identifiers: u64,
    pub reject_file: Option<PathBuf>,
    pub seconds: f64,
}

/// Reads one source into the record log. Bad rows go to `DATA/rejects/SOURCE.jsonl` with
/// their line and reason; rows naming an erased person (`suppressed`) are counted and
/// dropped; the rest is stored. Parsing and mapping run on one thread while the store
/// writes on another. A source that resumes (a database) starts where the last run's
/// committed rows end, and its new position is stored after each batch is committed, so a
/// run cut short reads its uncommitted rows again rather than losing them. Every run is
/// recorded, with its error if it failed (a missing file, a database that is down).
pub fn ingest_source(
    store: &mut dyn Store,
    config: &Config,
    name: &str,
    data_dir: &Path,
    suppressed: &SuppressionCheck,
    progress: Progress<'_>,
) -> Result<IngestReport> {
    let source_config = config.sources.get(name).ok_or_else(|| {
        let known: Vec<&str> = config.sources.keys().map(String::as_str).collect();
        PipelineError::Config(format!("no source named `{name}` in kinship.toml; the sources are: {}", known.join(", ")))
    })?;
    if !source_config.kind.is_pulled() {
        return Err(PipelineError::Config(format!(
            "source `{name}` is a Segment source: it receives its events at /v1/track and the other Segment routes, and has nothing to pull"
        )));
    }
    let mapper = crate::mapper(name, source_config, config)?;
    let region = kinship_normalize::region(&config.resolve.default_region)
        .ok_or_else(|| PipelineError::Config(format!("resolve.default_region {:?} is not a region code", config.resolve.default_region)))?;
    let started = std::time::Instant::now();
    let started_at = now_ms();
    let position_key = position_key(name);
    let resume_from = store.meta(&position_key)?;
    let mut report = IngestReport { source: name.to_string(), ..Default::default() };
    let mut rejects: Vec<Reject> = Vec::new();

    let (tx, rx) = mpsc::sync_channel::<Batch>(4);
    let read_result = std::thread::scope(|scope| {
        let reader = scope.spawn(|| {
            let mut batch = Vec::with_capacity(BATCH);
            let mut position = None;
            let mut read = 0u64;
            let mut invalid = 0u64;
            let mut dropped = 0u64;
            let mut rejected: Vec<Reject> = Vec::new();
            let mut source = match kinship_sources::open(source_config, data_dir, resume_from.as_deref()) {
                Ok(source) => source,
                Err(e) => return (Err(e), read, invalid, dropped, rejected),
            };
            let bytes = source.progress();
            let result = source.read(&mut |row| {
                read += 1;
                let row = row.and_then(|mut row| {
                    // Rejected and dropped rows move the position on too: they are done with.
                    if let Some(p) = row.position.take() {
                        position = Some(p);
                    }
                    let mapped = mapper.map(&row.fields, &row.payload).map_err(|reason| Reject {
                        line: row.line,
                        reason,
                        raw: row.payload.clone(),
                    })?;
                    invalid += u64::from(mapped.invalid_identifiers);
                    if suppressed.matches(mapped.identifiers.iter().map(|i| (i.kind.as_str(), i.value.as_str()))) {
                        return Ok(None);
                    }
                    Ok(Some(NewRecord {
                        key: mapped.key,
                        identifiers: encode_identifiers(&mapped.identifiers),
                        timestamp: mapped.timestamp,
                        payload: row.payload,
                    }))
                });
                match row {
                    Ok(Some(record)) => batch.push(record),
                    Ok(None) => dropped += 1,
                    Err(reject) if suppressed.matches_raw(&reject.raw, region) => dropped += 1,
                    Err(reject) => rejected.push(reject),
                }
                if batch.len() == BATCH {
                    progress(bytes.done(), bytes.total);
                    // A closed channel means the writer failed (its error is reported below):
                    // reading on would be wasted.
                    let records = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
                    if tx.send(Batch { records, position: position.take() }).is_err() {
                        return std::ops::ControlFlow::Break(());
                    }
                }
                std::ops::ControlFlow::Continue(())
            });
            if !batch.is_empty() || position.is_some() {
                let _ = tx.send(Batch { records: batch, position });
            }
            progress(bytes.done(), bytes.total);
            drop(tx);
            (result, read, invalid, dropped, rejected)
        });
        let mut write_result = Ok(());
        for batch in rx {
            if let Err(e) = store_batch(store, name, &batch, &position_key, started_at, &mut report) {
                write_result = Err(e);
                break; // dropping rx stops the reader
            }
        }
        let (read_result, read, invalid, dropped, rejected) = reader.join().expect("the reader thread does not panic");
        report.read = read;
        report.suppressed = dropped;
        report.invalid_identifiers = invalid;
        rejects = rejected;
        write_result.map_err(PipelineError::from).and(read_result.map_err(PipelineError::from))
    });
    report.rejected = rejects.len() as u64;
    report.reject_file = write_rejects(data_dir, name, &rejects)?;
    report.seconds = started.elapsed().as_secs_f64();
    store.record_run(&SourceRun {
        source: name.to_string(),
        started_at,
        finished_at: now_ms(),
        read: report.read,
        inserted: report.inserted,
        duplicates: report.duplicates,
        rejected: report.rejected,
        suppressed: report.suppressed,
        error: read_result.as_ref().err().map(ToString::to_string),
    })?;
    read_result?;
    Ok(report)
}

/// Rows on their way from the reader to the writer, with where the source stands after them.
struct Batch {
    records: Vec<NewRecord>,
    position: Option<String>,
}

/// The `meta` key under which a resuming source's position is kept.
fn position_key(source: &str) -> String {
    format!("source.{source}.position")
}

/// Commits a batch's records, then, and only then, the source's position after them.
fn store_batch(
    store: &mut dyn Store,
    source: &str,
    batch: &Batch,
    position_key: &str,
    ingested_at: i64,
    report: &mut IngestReport,
) -> kinship_store::Result<()> {
    if !batch.records.is_empty() {
        let inserted = store.insert_records(source, &batch.records, ingested_at)?.iter().flatten().count() as u64;
        report.inserted += inserted;
        report.duplicates += batch.records.len() as u64 - inserted;
    }
    match &batch.position {
        Some(position) => store.set_meta(position_key, position),
        None => Ok(()),
    }
}

/// Writes this run's rejects, replacing the last run's; no file when there are none.
fn write_rejects(data_dir: &Path, source: &str, rejects: &[Reject]) -> Result<Option<PathBuf>> {
    let path = data_dir.join("rejects").join(format!("{source}.jsonl"));
    if rejects.is_empty() {
        let _ = std::fs::remove_file(&path);
        return Ok(None);
    }
    let io = |error| PipelineError::Write { path: path.clone(), error };
    std::fs::create_dir_all(path.parent().expect("has a parent")).map_err(io)?;
    let mut out = std::io::BufWriter::new(std::fs::File::create(&path).map_err(io)?);
    for r in rejects {
        serde_json::to_writer(&mut out, r).map_err(|e| io(e.into()))?;
        out.write_all(b"\n").map_err(io)?;
    }
    out.flush().map_err(io)?;
    Ok(Some(path))
}
