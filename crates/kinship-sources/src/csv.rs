//! CSV files with a header row. Values are kept as strings; a row with the wrong number of
//! fields or invalid UTF-8 is rejected with its line.

use crate::{ByteProgress, CountingReader, Reject, Row, Source, SourceError};
use serde_json::{Map, Value};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

pub struct CsvSource {
    path: PathBuf,
    size: u64,
    consumed: Arc<AtomicU64>,
}

impl CsvSource {
    pub fn open(path: PathBuf) -> Result<Self, SourceError> {
        let size = std::fs::metadata(&path).map_err(|error| SourceError::Open { path: path.clone(), error })?.len();
        Ok(Self { path, size, consumed: Arc::default() })
    }
}

impl Source for CsvSource {
    fn read(&mut self, emit: &mut dyn FnMut(Result<Row, Reject>) -> std::ops::ControlFlow<()>) -> Result<(), SourceError> {
        let file = std::fs::File::open(&self.path).map_err(|error| SourceError::Open { path: self.path.clone(), error })?;
        let counting = CountingReader { inner: std::io::BufReader::with_capacity(1 << 20, file), read: self.consumed.clone() };
        let mut reader = ::csv::ReaderBuilder::new().trim(::csv::Trim::All).from_reader(counting);
        let headers: Vec<String> = reader
            .headers()
            .map_err(|e| SourceError::Read { path: self.path.clone(), error: format!("the header row: {e}") })?
            .iter()
            .map(str::to_string)
            .collect();
        if headers.iter().all(String::is_empty) {
            return Err(SourceError::Read {
                path: self.path.clone(),
                error: "the file has no header row; the first line must name the columns".into(),
            });
        }
        let mut record = ::csv::ByteRecord::new();
        loop {
            let line = reader.position().line();
            match reader.read_byte_record(&mut record) {
                Ok(false) => break,
                Ok(true) => {
                    if emit(to_row(&headers, &record, line)).is_break() {
                        return Ok(());
                    }
                }
                Err(e) => {
                    let line = e.position().map_or(line, |p| p.line());
                    let reason = match e.kind() {
                        ::csv::ErrorKind::UnequalLengths { expected_len, len, .. } => {
                            format!("has {len} fields, the header has {expected_len}")
                        }
                        _ => e.to_string(),
                    };
                    // The reader recovers at the next record; io errors are fatal.
                    if let ::csv::ErrorKind::Io(_) = e.kind() {
                        return Err(SourceError::Read { path: self.path.clone(), error: e.to_string() });
                    }
                    if emit(Err(Reject { line, reason, raw: String::new() })).is_break() {
                        return Ok(());
                    }
                }
            }
        }
        Ok(())
    }

    fn progress(&self) -> ByteProgress {
        ByteProgress { total: self.size, consumed: self.consumed.clone() }
    }
}

fn to_row(headers: &[String], record: &::csv::ByteRecord, line: u64) -> Result<Row, Reject> {
    let mut fields = Map::new();
    for (h, v) in headers.iter().zip(record.iter()) {
        let v = std::str::from_utf8(v).map_err(|_| Reject {
            line,
            reason: format!("column `{h}` is not valid UTF-8; save the file as UTF-8"),
            raw: String::from_utf8_lossy(&record.as_slice()[..record.as_slice().len().min(500)]).into_owned(),
        })?;
        fields.insert(h.clone(), Value::String(v.to_string()));
    }
    let payload = serde_json::to_string(&fields).expect("a map of strings serialises");
    Ok(Row { line, fields, payload, position: None })
}
