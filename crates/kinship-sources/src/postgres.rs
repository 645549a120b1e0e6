//! PostgreSQL tables and queries, pulled incrementally by a cursor column.
//!
//! Rows are read in pages of `batch_size`, ordered by (cursor, key), each page starting after
//! the last row of the one before: `WHERE (cursor, key) > ($cursor, $key)`. The key breaks
//! ties, so rows sharing a cursor value are neither lost nor read twice at a page boundary.
//! Each row carries that position; ingest stores it once the row is committed and hands it
//! back next time, so a pull reads only rows inserted or changed since. Rows whose cursor is
//! NULL are never read.
//!
//! PostgreSQL turns each row into JSON itself (`to_json`), so every column type arrives as
//! PostgreSQL documents it: numbers and booleans as JSON numbers and booleans, timestamps as
//! RFC 3339 text in UTC, dates as `YYYY-MM-DD`, json and jsonb as nested values, arrays as
//! arrays, NULL as null, and any other type (uuid, inet, interval, bytea...) as its text.
//! Numerics are read as 64-bit floats when mapped; the stored payload keeps PostgreSQL's digits.

use crate::{ByteProgress, Reject, Row, Source, SourceError};
use bytes::BytesMut;
use kinship_core::SourceConfig;
use postgres::types::{Format, IsNull, ToSql, Type, to_sql_checked};
use postgres::{Client, Statement};
use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Rows per query when `batch_size` is not set.
const DEFAULT_BATCH_SIZE: u32 = 1000;

/// Column types a cursor may have: ones a writer can make grow whenever a row changes.
const CURSOR_TYPES: [Type; 5] = [Type::INT2, Type::INT4, Type::INT8, Type::TIMESTAMP, Type::TIMESTAMPTZ];

pub struct PostgresSource {
    url: String,
    /// The FROM item: a table name, or a query in parentheses.
    rows: String,
    cursor: String,
    key: String,
    batch_size: i64,
    position: Option<Position>,
    consumed: Arc<AtomicU64>,
}

/// Where a pull stands: the last row read, by its cursor and key as PostgreSQL prints them
/// (so they read back exactly, whatever the column types), and the cursor column they are
/// of. A position taken on another cursor column is ignored: the pull starts over, and the
/// record keys already logged are skipped.
#[derive(serde::Serialize, serde::Deserialize)]
struct Position {
    column: String,
    cursor: String,
    /// NULL keys sort last, so a NULL here still marks a place in the order.
    key: Option<String>,
}

impl PostgresSource {
    /// Reads the settings; connects only when rows are read, so that a database being down
    /// is that run's error.
    pub fn open(config: &SourceConfig, position: Option<&str>) -> Result<Self, SourceError> {
        let missing = |key: &str| SourceError::Postgres(format!("`{key}` is not set; see the source's configuration"));
        let url = match (&config.url, &config.url_env) {
            (Some(url), _) => url.clone(),
            (None, Some(var)) => std::env::var(var)
                .map_err(|_| SourceError::Postgres(format!("`url_env` names {var}, which is not set in kinship's environment")))?,
            (None, None) => return Err(missing("url")),
        };
        let rows = match (&config.table, &config.query) {
            (Some(table), _) => table.clone(),
            (None, Some(query)) => format!("({})", query.trim().trim_end_matches(';')),
            (None, None) => return Err(missing("table")),
        };
        let cursor = config.cursor.clone().ok_or_else(|| missing("cursor"))?;
        let key = config.key.clone().ok_or_else(|| missing("key"))?;
        let position = position.and_then(|text| serde_json::from_str::<Position>(text).ok()).filter(|p| p.column == cursor);
        let batch_size = i64::from(config.batch_size.unwrap_or(DEFAULT_BATCH_SIZE));
        Ok(Self { url, rows, cursor, key, batch_size, position, consumed: Arc::default() })
    }

    /// The query for the first page and the one for each page after a position.
    fn statements(&self, client: &mut Client) -> Result<(Statement, Statement), SourceError> {
        let (cursor, key) = (quote(&self.cursor), quote(&self.key));
        let select = format!("SELECT to_json(src)::text, src.{cursor}::text, src.{key}::text FROM {} AS src", self.rows);
        let order = format!("ORDER BY src.{cursor}, src.{key}");
        let query_failed = |e| failed("the query for the rows failed", e);
        let next =
            client.prepare(&format!("{select} WHERE (src.{cursor}, src.{key}) > ($1, $2) {order} LIMIT $3")).map_err(query_failed)?;
        // PostgreSQL infers $1 from the cursor column, which tells us its type.
        let cursor_type = &next.params()[0];
        if !CURSOR_TYPES.contains(cursor_type) {
            return Err(SourceError::Postgres(format!(
                "the cursor column `{}` is of type {cursor_type}; use a timestamp, timestamptz or integer column that grows whenever a row is inserted or changed",
                self.cursor
            )));
        }
        let first = client.prepare(&format!("{select} WHERE src.{cursor} IS NOT NULL {order} LIMIT $1")).map_err(query_failed)?;
        Ok((first, next))
    }
}

impl Source for PostgresSource {
    fn read(&mut self, emit: &mut dyn FnMut(Result<Row, Reject>) -> std::ops::ControlFlow<()>) -> Result<(), SourceError> {
        let mut client = kinship_pg::connect(&self.url).map_err(|e| SourceError::Postgres(format!("cannot connect: {e}")))?;
        // Timestamps print in UTC, in rows and positions alike; a pull never writes.
        client
            .batch_execute("SET TIME ZONE 'UTC'; SET default_transaction_read_only = on")
            .map_err(|e| failed("cannot set up the session", e))?;
        let (first, next) = self.statements(&mut client)?;
        let mut line = 0;
        loop {
            let page = match &self.position {
                None => client.query(&first, &[&self.batch_size]),
                Some(p) => client.query(&next, &[&AsText(&p.cursor), &p.key.as_deref().map(AsText), &self.batch_size]),
            }
            .map_err(|e| failed("reading rows failed", e))?;
            for row in &page {
                line += 1;
                let payload: String = row.get(0);
                self.consumed.fetch_add(payload.len() as u64, Ordering::Relaxed);
                let position = Position { column: self.cursor.clone(), cursor: row.get(1), key: row.get(2) };
                let stored = serde_json::to_string(&position).expect("a position serialises");
                self.position = Some(position);
                if emit(parse_row(line, payload, Some(stored))).is_break() {
                    return Ok(());
                }
            }
            if (page.len() as i64) < self.batch_size {
                return Ok(());
            }
        }
    }

    /// Bytes read so far; the total is not known before the pull ends.
    fn progress(&self) -> ByteProgress {
        ByteProgress { total: 0, consumed: self.consumed.clone() }
    }
}

/// A row's JSON text as a row, or why it is not one.
fn parse_row(line: u64, payload: String, position: Option<String>) -> Result<Row, Reject> {
    match serde_json::from_str::<Value>(&payload) {
        Ok(Value::Object(fields)) => Ok(Row { line, fields, payload, position }),
        // to_json gives an object, but a numeric beyond a float's range does not parse.
        Ok(_) => Err(Reject { line, reason: "the row is not a JSON object".into(), raw: payload }),
        Err(e) => Err(Reject { line, reason: format!("the row's JSON does not parse: {e}"), raw: payload }),
    }
}

/// The first `limit` rows of a table or view, for the mapping assistant.
pub fn sample_table(url: &str, table: &str, limit: i64) -> Result<Vec<Result<Row, Reject>>, SourceError> {
    let mut client = kinship_pg::connect(url).map_err(|e| SourceError::Postgres(format!("cannot connect: {e}")))?;
    client
        .batch_execute("SET TIME ZONE 'UTC'; SET default_transaction_read_only = on")
        .map_err(|e| failed("cannot set up the session", e))?;
    let rows = table_name(table).map_err(SourceError::Postgres)?;
    let query = format!("SELECT to_json(src)::text FROM {rows} AS src LIMIT $1");
    let page = client.query(&query, &[&limit]).map_err(|e| failed("reading rows failed", e))?;
    Ok(page.iter().enumerate().map(|(i, row)| parse_row(i as u64 + 1, row.get(0), None)).collect())
}

/// A table or view as SQL names it (`customers`, `crm.contacts`), and nothing else.
fn table_name(table: &str) -> Result<String, String> {
    let ok =
        !table.is_empty() && table.split('.').all(|part| !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
    if ok {
        Ok(table.split('.').map(quote).collect::<Vec<_>>().join("."))
    } else {
        Err(format!("{table:?} is not a table name; use letters, digits and '_', with a '.' after the schema"))
    }
}

/// A column name as an SQL identifier, exactly as written (the case of a JSON field).
fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A PostgreSQL error as a reason: the server's message and hint, not the error's plumbing.
fn failed(doing: &str, e: postgres::Error) -> SourceError {
    let reason = match e.as_db_error() {
        Some(db) => match db.hint() {
            Some(hint) => format!("{} ({hint})", db.message()),
            None => db.message().to_string(),
        },
        None => e.to_string(),
    };
    SourceError::Postgres(format!("{doing}: {reason}"))
}

/// A position value sent as text, for PostgreSQL to read as whatever type the column has.
#[derive(Debug)]
struct AsText<'a>(&'a str);

impl ToSql for AsText<'_> {
    fn to_sql(&self, _: &Type, out: &mut BytesMut) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        out.extend_from_slice(self.0.as_bytes());
        Ok(IsNull::No)
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    fn encode_format(&self, _: &Type) -> Format {
        Format::Text
    }

    to_sql_checked!();
}
