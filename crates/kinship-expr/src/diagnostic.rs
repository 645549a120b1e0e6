//! Source positions and the errors that point at them.

use serde::{Deserialize, Serialize};

/// A range of byte offsets into the source, `start..end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Self {
        Self { start, end }
    }

    /// The smallest span holding both.
    pub fn to(self, other: Span) -> Span {
        Span { start: self.start.min(other.start), end: self.end.max(other.end) }
    }
}

/// 1-based line and column (in characters) of a byte offset. An offset inside a multi-byte character or
/// past the end counts as the next character position, so any offset gives a position within the input.
pub fn line_column(source: &str, offset: usize) -> (usize, usize) {
    let mut line = 1;
    let mut column = 1;
    for (index, character) in source.char_indices() {
        if index >= offset {
            break;
        }
        if character == '\n' {
            line += 1;
            column = 1;
        } else {
            column += 1;
        }
    }
    (line, column)
}

/// Why the source is not a well-formed expression.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("line {line}, column {column}: {message}{}", expected_suffix(.expected))]
pub struct ParseError {
    /// 1-based line of the offending token.
    pub line: usize,
    /// 1-based column, in characters, of the offending token.
    pub column: usize,
    /// The offending token's bytes.
    pub span: Span,
    pub message: String,
    /// What the parser would have accepted there, each as it would be written (`` `)` ``, `an expression`).
    pub expected: Vec<String>,
}

impl ParseError {
    pub(crate) fn new(source: &str, span: Span, message: impl Into<String>, expected: Vec<String>) -> Self {
        let (line, column) = line_column(source, span.start);
        Self { line, column, span, message: message.into(), expected }
    }

    /// The message, the source line with a caret under the offending token, and what was expected.
    pub fn render(&self, source: &str) -> String {
        render(source, self.span, &self.message, &self.expected)
    }
}

/// Why a well-formed expression cannot run: operands of the wrong type, unknown computed traits or segments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct TypeError {
    /// The offending sub-expression's bytes.
    pub span: Span,
    pub message: String,
}

impl TypeError {
    pub(crate) fn new(span: Span, message: impl Into<String>) -> Self {
        Self { span, message: message.into() }
    }

    /// 1-based line and column of the offending sub-expression.
    pub fn line_column(&self, source: &str) -> (usize, usize) {
        line_column(source, self.span.start)
    }

    /// The message and the source line with carets under the offending sub-expression.
    pub fn render(&self, source: &str) -> String {
        render(source, self.span, &self.message, &[])
    }
}

/// A parse or type error, from the one-call [`compile_segment`](crate::compile_segment) and
/// [`compile_computed`](crate::compile_computed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Parse(#[from] ParseError),
    #[error(transparent)]
    Type(#[from] TypeError),
}

impl Error {
    pub fn span(&self) -> Span {
        match self {
            Error::Parse(error) => error.span,
            Error::Type(error) => error.span,
        }
    }

    pub fn line_column(&self, source: &str) -> (usize, usize) {
        line_column(source, self.span().start)
    }

    pub fn render(&self, source: &str) -> String {
        match self {
            Error::Parse(error) => error.render(source),
            Error::Type(error) => error.render(source),
        }
    }
}

fn expected_suffix(expected: &[String]) -> String {
    expected_text(expected).map(|text| format!(" ({text})")).unwrap_or_default()
}

fn expected_text(expected: &[String]) -> Option<String> {
    match expected {
        [] => None,
        [only] => Some(format!("expected {only}")),
        many => Some(format!("expected one of {}", many.join(", "))),
    }
}

/// ```text
/// error: cannot compare Number with String
///  --> line 1, column 14
///   |
/// 1 | count("X") > "two"
///   |              ^^^^^
/// ```
fn render(source: &str, span: Span, message: &str, expected: &[String]) -> String {
    let (line, column) = line_column(source, span.start);
    let line_text: String = source.split('\n').nth(line - 1).unwrap_or("").trim_end_matches('\r').replace('\t', " ");
    let line_length = line_text.chars().count();
    // Underline the span's characters on this line; at least one caret, also at the end of the input.
    let span_length = source.get(span.start..span.end).map_or(1, |text| text.split('\n').next().unwrap_or("").chars().count());
    let underline = span_length.clamp(1, (line_length + 1).saturating_sub(column - 1).max(1));
    let gutter = " ".repeat(line.to_string().len());
    let mut rendered = format!(
        "error: {message}\n{gutter}--> line {line}, column {column}\n{gutter} |\n{line} | {line_text}\n{gutter} | {}{}",
        " ".repeat(column - 1),
        "^".repeat(underline)
    );
    if let Some(text) = expected_text(expected) {
        rendered.push_str(&format!("\n{gutter} = {text}"));
    }
    rendered
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_count_characters_and_lines_restart() {
        let source = "é + x\n  y";
        assert_eq!(line_column(source, 0), (1, 1));
        assert_eq!(line_column(source, 2), (1, 2));
        assert_eq!(line_column(source, 1), (1, 2), "inside a character counts as the next position");
        assert_eq!(line_column(source, source.len() - 1), (2, 3));
        assert_eq!(line_column(source, 999), (2, 4));
    }

    #[test]
    fn render_underlines_the_span_on_its_line() {
        let source = "a and\n  count(\"X\") > \"two\"";
        let start = source.find("\"two\"").unwrap();
        let rendered = TypeError::new(Span::new(start, start + 5), "cannot compare Number with String").render(source);
        assert_eq!(
            rendered,
            "error: cannot compare Number with String\n --> line 2, column 16\n  |\n2 |   count(\"X\") > \"two\"\n  |                ^^^^^"
        );
    }
}
