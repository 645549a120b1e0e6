//! Source text to tokens. Words (identifiers and keywords alike) stay words: the parser decides what they
//! mean from where they stand, so `traits.in` or `properties.count` need no escaping.

use crate::diagnostic::{ParseError, Span};
use crate::time::parse_timestamp;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum TokenKind<'src> {
    Word(&'src str),
    Number(f64),
    /// A string literal with its escapes resolved.
    Text(String),
    /// A date literal `@2026-01-31`, in milliseconds since the epoch.
    Date(i64),
    Punct(Punct),
    End,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Punct {
    LeftParen,
    RightParen,
    LeftBracket,
    RightBracket,
    Comma,
    Dot,
    Star,
    Plus,
    Minus,
    Slash,
    Equal,
    NotEqual,
    Less,
    LessEqual,
    Greater,
    GreaterEqual,
    Assign,
}

impl Punct {
    pub(crate) fn symbol(self) -> &'static str {
        match self {
            Punct::LeftParen => "(",
            Punct::RightParen => ")",
            Punct::LeftBracket => "[",
            Punct::RightBracket => "]",
            Punct::Comma => ",",
            Punct::Dot => ".",
            Punct::Star => "*",
            Punct::Plus => "+",
            Punct::Minus => "-",
            Punct::Slash => "/",
            Punct::Equal => "==",
            Punct::NotEqual => "!=",
            Punct::Less => "<",
            Punct::LessEqual => "<=",
            Punct::Greater => ">",
            Punct::GreaterEqual => ">=",
            Punct::Assign => "=",
        }
    }
}

impl TokenKind<'_> {
    /// How an error message names this token.
    pub(crate) fn describe(&self) -> String {
        match self {
            TokenKind::Word(word) => format!("`{word}`"),
            TokenKind::Number(_) => "number".to_string(),
            TokenKind::Text(_) => "string".to_string(),
            TokenKind::Date(_) => "date".to_string(),
            TokenKind::Punct(punct) => format!("`{}`", punct.symbol()),
            TokenKind::End => "end of input".to_string(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token<'src> {
    pub kind: TokenKind<'src>,
    pub span: Span,
}

/// The tokens of `source`, without the final [`TokenKind::End`].
pub(crate) fn tokenize(source: &str) -> Result<Vec<Token<'_>>, ParseError> {
    let mut lexer = Lexer { source, position: 0, tokens: Vec::new() };
    lexer.run()?;
    Ok(lexer.tokens)
}

pub(crate) fn is_word_start(character: char) -> bool {
    character.is_ascii_alphabetic() || character == '_'
}

pub(crate) fn is_word_continue(character: char) -> bool {
    character.is_ascii_alphanumeric() || character == '_'
}

struct Lexer<'src> {
    source: &'src str,
    /// Byte offset of the next character; always on a character boundary.
    position: usize,
    tokens: Vec<Token<'src>>,
}

impl<'src> Lexer<'src> {
    fn char_at(&self, position: usize) -> Option<char> {
        self.source.get(position..).and_then(|rest| rest.chars().next())
    }

    fn error(&self, span: Span, message: impl Into<String>, expected: &[&str]) -> ParseError {
        ParseError::new(self.source, span, message, expected.iter().map(|text| text.to_string()).collect())
    }

    fn push(&mut self, kind: TokenKind<'src>, start: usize) {
        self.tokens.push(Token { kind, span: Span::new(start, self.position) });
    }

    fn punct(&mut self, punct: Punct, start: usize) {
        self.position = start + punct.symbol().len();
        self.push(TokenKind::Punct(punct), start);
    }

    fn run(&mut self) -> Result<(), ParseError> {
        while let Some(character) = self.char_at(self.position) {
            let start = self.position;
            let next = self.char_at(start + character.len_utf8());
            match character {
                _ if character.is_whitespace() => self.position += character.len_utf8(),
                '/' if next == Some('/') => self.skip_comment(),
                '(' => self.punct(Punct::LeftParen, start),
                ')' => self.punct(Punct::RightParen, start),
                '[' => self.punct(Punct::LeftBracket, start),
                ']' => self.punct(Punct::RightBracket, start),
                ',' => self.punct(Punct::Comma, start),
                '.' => self.punct(Punct::Dot, start),
                '*' => self.punct(Punct::Star, start),
                '+' => self.punct(Punct::Plus, start),
                '-' => self.punct(Punct::Minus, start),
                '/' => self.punct(Punct::Slash, start),
                '=' if next == Some('=') => self.punct(Punct::Equal, start),
                '=' => self.punct(Punct::Assign, start),
                '!' if next == Some('=') => self.punct(Punct::NotEqual, start),
                '<' if next == Some('=') => self.punct(Punct::LessEqual, start),
                '<' => self.punct(Punct::Less, start),
                '>' if next == Some('=') => self.punct(Punct::GreaterEqual, start),
                '>' => self.punct(Punct::Greater, start),
                '"' => self.string(start)?,
                '@' => self.date(start)?,
                '0'..='9' => self.number(start)?,
                _ if is_word_start(character) => self.word(start),
                _ => return Err(self.unexpected_character(character, next, start)),
            }
        }
        Ok(())
    }

    fn unexpected_character(&self, character: char, next: Option<char>, start: usize) -> ParseError {
        let span = Span::new(start, start + character.len_utf8());
        let message = match (character, next) {
            ('!', _) => "unexpected `!`: negate with `not`, compare with `!=`".to_string(),
            ('&', Some('&')) => "unexpected `&&`: write `and`".to_string(),
            ('|', Some('|')) => "unexpected `||`: write `or`".to_string(),
            ('\'', _) => "unexpected `'`: strings are written in double quotes".to_string(),
            _ => format!("unexpected character `{character}`"),
        };
        self.error(span, message, &[])
    }

    fn skip_comment(&mut self) {
        let rest = self.source.get(self.position..).unwrap_or("");
        self.position += rest.find('\n').unwrap_or(rest.len());
    }

    fn word(&mut self, start: usize) {
        while self.char_at(self.position).is_some_and(is_word_continue) {
            self.position += 1;
        }
        let word = self.source.get(start..self.position).unwrap_or("");
        self.push(TokenKind::Word(word), start);
    }

    fn number(&mut self, start: usize) -> Result<(), ParseError> {
        let is_digit = |character: Option<char>| character.is_some_and(|character| character.is_ascii_digit());
        while is_digit(self.char_at(self.position)) {
            self.position += 1;
        }
        if self.char_at(self.position) == Some('.') && is_digit(self.char_at(self.position + 1)) {
            self.position += 1;
            while is_digit(self.char_at(self.position)) {
                self.position += 1;
            }
        }
        let span = Span::new(start, self.position);
        let value: f64 = self.source.get(start..self.position).and_then(|text| text.parse().ok()).unwrap_or(f64::INFINITY);
        if !value.is_finite() {
            return Err(self.error(span, "this number is too large", &[]));
        }
        self.push(TokenKind::Number(value), start);
        Ok(())
    }

    fn string(&mut self, start: usize) -> Result<(), ParseError> {
        let unclosed = |lexer: &Self| lexer.error(Span::new(start, start + 1), "unclosed string: this `\"` has no closing `\"`", &["`\"`"]);
        let mut text = String::new();
        self.position += 1;
        loop {
            match self.char_at(self.position) {
                None => return Err(unclosed(self)),
                Some('"') => {
                    self.position += 1;
                    break;
                }
                Some('\\') => {
                    let escaped = match self.char_at(self.position + 1) {
                        None => return Err(unclosed(self)),
                        Some('"') => '"',
                        Some('\\') => '\\',
                        Some('n') => '\n',
                        Some('t') => '\t',
                        Some('r') => '\r',
                        Some(other) => {
                            let span = Span::new(self.position, self.position + 1 + other.len_utf8());
                            return Err(self.error(span, "unknown escape in string", &["`\\\"`", "`\\\\`", "`\\n`", "`\\t`", "`\\r`"]));
                        }
                    };
                    text.push(escaped);
                    self.position += 2;
                }
                Some(character) => {
                    text.push(character);
                    self.position += character.len_utf8();
                }
            }
        }
        self.push(TokenKind::Text(text), start);
        Ok(())
    }

    fn date(&mut self, start: usize) -> Result<(), ParseError> {
        self.position += 1;
        while self.char_at(self.position).is_some_and(|character| character.is_ascii_digit() || ":.+-TZtz".contains(character)) {
            self.position += 1;
        }
        let text = self.source.get(start + 1..self.position).unwrap_or("");
        match parse_timestamp(text) {
            Some(milliseconds) => {
                self.push(TokenKind::Date(milliseconds), start);
                Ok(())
            }
            None => Err(self.error(
                Span::new(start, self.position.max(start + 1)),
                format!("invalid date `@{text}`"),
                &["`@YYYY-MM-DD`", "`@YYYY-MM-DDTHH:MM:SSZ`"],
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(source: &str) -> Vec<TokenKind<'_>> {
        tokenize(source).unwrap().into_iter().map(|token| token.kind).collect()
    }

    #[test]
    fn lexes_every_kind_of_token() {
        assert_eq!(
            kinds("count(\"A \\\"b\\\"\", last 90 days) >= 2.5 // note\n@2026-01-31 != x"),
            vec![
                TokenKind::Word("count"),
                TokenKind::Punct(Punct::LeftParen),
                TokenKind::Text("A \"b\"".to_string()),
                TokenKind::Punct(Punct::Comma),
                TokenKind::Word("last"),
                TokenKind::Number(90.0),
                TokenKind::Word("days"),
                TokenKind::Punct(Punct::RightParen),
                TokenKind::Punct(Punct::GreaterEqual),
                TokenKind::Number(2.5),
                TokenKind::Date(1_769_817_600_000),
                TokenKind::Punct(Punct::NotEqual),
                TokenKind::Word("x"),
            ]
        );
    }

    #[test]
    fn spans_are_byte_ranges() {
        let tokens = tokenize("é == \"ü\"").unwrap_err();
        assert_eq!((tokens.line, tokens.column), (1, 1));
        let tokens = tokenize("x == \"ü\"").unwrap();
        assert_eq!(tokens[2].span, Span::new(5, 9));
    }

    #[test]
    fn errors_point_at_the_offending_character() {
        let error = tokenize("traits.a == \"open").unwrap_err();
        assert_eq!((error.line, error.column), (1, 13));
        let error = tokenize("a && b").unwrap_err();
        assert!(error.message.contains("write `and`"), "{}", error.message);
        let error = tokenize("x == @2026-02-30").unwrap_err();
        assert_eq!((error.column, error.message.as_str()), (6, "invalid date `@2026-02-30`"));
    }
}
