//! Records stored column by column with interned values.
//!
//! A million people share a few thousand given names, so every column keeps a dictionary
//! of its distinct normalised values and one `u32` per row. Comparisons then work on
//! dictionary ids (equal ids mean an exact match) and anything derived from a value
//! (phonetic code, parsed date, blocking key) is computed once per distinct value.

use rustc_hash::FxHashMap;

/// Dictionary id of a missing value in every column.
pub const NULL_ID: u32 = 0;

/// Dictionary id of a value that is not in the column's dictionary (a new record's value).
pub const UNKNOWN_ID: u32 = u32::MAX;

/// One column: the distinct values, how often each occurs, and the value id of every row.
#[derive(Debug, Clone)]
pub struct Column {
    name: String,
    /// `values[0]` is the empty string standing for "missing".
    values: Vec<Box<str>>,
    counts: Vec<u32>,
    index: FxHashMap<Box<str>, u32>,
    row_ids: Vec<u32>,
}

impl Column {
    fn new(name: &str) -> Self {
        Column { name: name.to_string(), values: vec!["".into()], counts: vec![0], index: FxHashMap::default(), row_ids: Vec::new() }
    }

    fn push(&mut self, raw: &str) {
        let id = match normalize_value(raw) {
            None => NULL_ID,
            Some(value) => match self.index.get(value.as_ref()) {
                Some(&id) => id,
                None => {
                    let id = self.values.len() as u32;
                    let value: Box<str> = value.into();
                    self.index.insert(value.clone(), id);
                    self.values.push(value);
                    self.counts.push(0);
                    id
                }
            },
        };
        self.counts[id as usize] += 1;
        self.row_ids.push(id);
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Value id of a row (`NULL_ID` when missing).
    #[inline]
    pub fn id(&self, row: usize) -> u32 {
        self.row_ids[row]
    }

    /// Normalised text of a value id (empty for `NULL_ID`).
    #[inline]
    pub fn value(&self, id: u32) -> &str {
        &self.values[id as usize]
    }

    /// Number of distinct values including the null slot; value ids are `0..dictionary_len()`.
    pub fn dictionary_len(&self) -> usize {
        self.values.len()
    }

    /// How many rows hold this value id.
    pub fn count(&self, id: u32) -> u32 {
        self.counts[id as usize]
    }

    /// Number of rows with a value.
    pub fn non_null_rows(&self) -> usize {
        self.row_ids.len() - self.counts[NULL_ID as usize] as usize
    }

    /// Id of an already-normalised value, `UNKNOWN_ID` if no row holds it.
    pub fn lookup(&self, normalized: &str) -> u32 {
        if normalized.is_empty() {
            return NULL_ID;
        }
        self.index.get(normalized).copied().unwrap_or(UNKNOWN_ID)
    }
}

/// Trims, transliterates to ASCII ("García" and "Γιώργος" become "garcia" and "giorgos",
/// so accents and alphabets compare equal and every later byte-indexed function sees
/// ASCII), lower-cases and maps the usual spellings of "nothing" to `None`.
pub fn normalize_value(raw: &str) -> Option<std::borrow::Cow<'_, str>> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return None;
    }
    let value = if !trimmed.is_ascii() {
        let folded = deunicode::deunicode_with_tofu(trimmed, "");
        std::borrow::Cow::Owned(folded.trim().to_ascii_lowercase())
    } else if trimmed.bytes().any(|b| b.is_ascii_uppercase()) {
        std::borrow::Cow::Owned(trimmed.to_ascii_lowercase())
    } else {
        std::borrow::Cow::Borrowed(trimmed)
    };
    match value.as_ref() {
        "" | "null" | "none" | "nan" | "n/a" | "na" | "-" => None,
        _ => Some(value),
    }
}

/// Runs a function of one value, turning a panic (a bug in a library it calls) into
/// `None`: one bad value must never stop a resolution; at worst it compares as missing.
pub(crate) fn guarded<T>(f: impl FnOnce() -> T) -> Option<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).ok()
}

/// A table of records held as interned columns.
#[derive(Debug, Clone)]
pub struct Dataset {
    columns: Vec<Column>,
    rows: usize,
}

impl Dataset {
    /// An empty dataset with these column names; fill it with [`Dataset::push_row`].
    pub fn new<S: AsRef<str>>(column_names: &[S]) -> Self {
        Dataset { columns: column_names.iter().map(|n| Column::new(n.as_ref())).collect(), rows: 0 }
    }

    /// Builds a dataset from rows whose values follow `column_names`.
    pub fn from_rows<H: AsRef<str>, S: AsRef<str>, R: AsRef<[S]>>(column_names: &[H], rows: impl IntoIterator<Item = R>) -> Self {
        let mut dataset = Dataset::new(column_names);
        for row in rows {
            let row = row.as_ref();
            dataset.push_row(row.iter().map(|v| v.as_ref()));
        }
        dataset
    }

    /// Appends a row; missing trailing values count as null.
    pub fn push_row<'a>(&mut self, values: impl IntoIterator<Item = &'a str>) {
        let mut values = values.into_iter();
        for column in &mut self.columns {
            column.push(values.next().unwrap_or(""));
        }
        self.rows += 1;
    }

    pub fn len(&self) -> usize {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    pub fn column(&self, index: usize) -> &Column {
        &self.columns[index]
    }

    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    /// Normalised text of one cell (empty when missing).
    pub fn cell(&self, row: usize, column: usize) -> &str {
        let column = &self.columns[column];
        column.value(column.id(row))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interns_normalised_values_and_counts_them() {
        let ds = Dataset::from_rows(&["name", "city"], [vec![" Anna ", "Oslo"], vec!["anna", ""], vec!["NULL", "oslo"]]);
        let name = ds.column(0);
        assert_eq!(name.id(0), name.id(1));
        assert_eq!(name.id(2), NULL_ID);
        assert_eq!(name.count(name.id(0)), 2);
        assert_eq!(name.non_null_rows(), 2);
        assert_eq!(ds.cell(1, 1), "");
        assert_eq!(ds.column(1).lookup("oslo"), ds.column(1).id(0));
        assert_eq!(ds.column(1).lookup("bergen"), UNKNOWN_ID);
    }
}
