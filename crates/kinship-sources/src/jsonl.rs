//! JSON Lines: one JSON object per line. A line that is not a JSON object is rejected with
//! its number and the parser's reason; blank lines are skipped.

use crate::{ByteProgress, CountingReader, Reject, Row, Source, SourceError};
use serde_json::Value;
use std::io::BufRead;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

/// Longest line kept in a reject file, so one huge bad line cannot flood it.
const MAX_RAW_IN_REJECT: usize = 2000;

pub struct JsonlSource {
    path: PathBuf,
    size: u64,
    consumed: Arc<AtomicU64>,
}

impl JsonlSource {
    pub fn open(path: PathBuf) -> Result<Self, SourceError> {
        let size = std::fs::metadata(&path).map_err(|error| SourceError::Open { path: path.clone(), error })?.len();
        Ok(Self { path, size, consumed: Arc::default() })
    }
}

impl Source for JsonlSource {
    fn read(&mut self, emit: &mut dyn FnMut(Result<Row, Reject>) -> std::ops::ControlFlow<()>) -> Result<(), SourceError> {
        let file = std::fs::File::open(&self.path).map_err(|error| SourceError::Open { path: self.path.clone(), error })?;
        let mut reader = std::io::BufReader::with_capacity(1 << 20, CountingReader { inner: file, read: self.consumed.clone() });
        let mut buf = Vec::new();
        let mut line = 0u64;
        loop {
            buf.clear();
            let n = reader.read_until(b'\n', &mut buf).map_err(|e| SourceError::Read { path: self.path.clone(), error: e.to_string() })?;
            if n == 0 {
                break;
            }
            line += 1;
            let text = match std::str::from_utf8(&buf) {
                Ok(t) => t.trim(),
                Err(_) => {
                    if emit(Err(reject(line, "the line is not valid UTF-8; save the file as UTF-8".into(), &String::from_utf8_lossy(&buf))))
                        .is_break()
                    {
                        return Ok(());
                    }
                    continue;
                }
            };
            if text.is_empty() {
                continue;
            }
            let row = match serde_json::from_str::<Value>(text) {
                Ok(Value::Object(fields)) => Ok(Row { line, fields, payload: text.to_string(), position: None }),
                Ok(other) => Err(reject(line, format!("expected a JSON object, found {}", kind_of(&other)), text)),
                Err(e) => Err(reject(line, format!("invalid JSON at column {}: {e}", e.column()), text)),
            };
            if emit(row).is_break() {
                return Ok(());
            }
        }
        Ok(())
    }

    fn progress(&self) -> ByteProgress {
        ByteProgress { total: self.size, consumed: self.consumed.clone() }
    }
}

fn reject(line: u64, reason: String, raw: &str) -> Reject {
    let mut end = raw.len().min(MAX_RAW_IN_REJECT);
    while !raw.is_char_boundary(end) {
        end -= 1;
    }
    Reject { line, reason, raw: raw[..end].to_string() }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
