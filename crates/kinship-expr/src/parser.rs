//! Recursive descent over the tokens, one function per precedence level (see the grammar in the crate
//! docs). The parser never panics: tokens are read through `get`, nesting is bounded by
//! [`MAX_NESTING`] and input by [`MAX_SOURCE_BYTES`].

use crate::ast::{
    is_reserved_word, BinaryOp, DurationLiteral, EventFunction, EventQuery, EventSelector, Expr, ExprKind, FunnelField, HealthField,
    Literal,
};
use crate::diagnostic::{ParseError, Span};
use crate::lexer::{tokenize, Punct, Token, TokenKind};
use crate::time::DurationUnit;

/// The longest source accepted, in bytes.
pub const MAX_SOURCE_BYTES: usize = 16 * 1024;
/// How deeply parentheses, `not`, `-`, function arguments and arithmetic operators may nest.
pub const MAX_NESTING: usize = 64;
/// Durations beyond about 3,000 years are mistakes, and bounding them keeps every window inside `i64`.
const MAX_DURATION_MS: f64 = 1e14;

/// Parses one expression, the whole of `source`.
pub fn parse(source: &str) -> Result<Expr, ParseError> {
    let mut parser = Parser::new(source)?;
    let expr = parser.expression()?;
    parser.expect_end()?;
    Ok(expr)
}

/// Parses an expression about one event, as a flow's conditions are: bare names (and
/// `properties.x`) outside any event function read that event's properties, and event
/// functions still read the profile's events. Evaluate it with [`Program::evaluate_on`](crate::Program::evaluate_on).
pub fn parse_about_event(source: &str) -> Result<Expr, ParseError> {
    let mut parser = Parser::new(source)?;
    parser.about_event = true;
    let expr = parser.expression()?;
    parser.expect_end()?;
    Ok(expr)
}

/// Parses a computed-trait definition `name = expression`, returning the name and the expression. Spans
/// stay offsets into the whole `source`.
pub fn parse_definition(source: &str) -> Result<(String, Expr), ParseError> {
    let mut parser = Parser::new(source)?;
    let name = match parser.peek().kind {
        TokenKind::Word(word) if !is_reserved_word(word) => word.to_string(),
        _ => {
            parser.expected.push("a computed trait name".to_string());
            return Err(parser.unexpected());
        }
    };
    parser.advance();
    parser.expect_punct(Punct::Assign)?;
    let expr = parser.expression()?;
    parser.expect_end()?;
    Ok((name, expr))
}

struct Parser<'src> {
    source: &'src str,
    tokens: Vec<Token<'src>>,
    /// Stands for every position past the last token.
    end: Token<'src>,
    position: usize,
    /// What was looked for at the current token; reported when it turns out to be wrong.
    expected: Vec<String>,
    depth: usize,
    /// Inside an event function's filter, where bare names are event properties.
    in_event_filter: bool,
    /// Bare names are properties of the event the whole expression is about ([`parse_about_event`]).
    about_event: bool,
}

enum Comparison {
    Binary(BinaryOp),
    In { negated: bool },
}

impl<'src> Parser<'src> {
    fn new(source: &'src str) -> Result<Self, ParseError> {
        if source.len() > MAX_SOURCE_BYTES {
            let limit = (0..=MAX_SOURCE_BYTES).rev().find(|offset| source.is_char_boundary(*offset)).unwrap_or(0);
            let message =
                format!("this expression is {} bytes long; the limit is {MAX_SOURCE_BYTES} bytes (16 KiB), exceeded here", source.len());
            return Err(ParseError::new(source, Span::new(limit, limit), message, Vec::new()));
        }
        let tokens = tokenize(source)?;
        let end = Token { kind: TokenKind::End, span: Span::new(source.len(), source.len()) };
        Ok(Self { source, tokens, end, position: 0, expected: Vec::new(), depth: 0, in_event_filter: false, about_event: false })
    }

    // ---- token access ----

    fn peek(&self) -> &Token<'src> {
        self.peek_at(0)
    }

    fn peek_at(&self, ahead: usize) -> &Token<'src> {
        self.tokens.get(self.position + ahead).unwrap_or(&self.end)
    }

    fn advance(&mut self) -> Token<'src> {
        let token = self.peek().clone();
        if self.position < self.tokens.len() {
            self.position += 1;
        }
        self.expected.clear();
        token
    }

    fn is_punct(&self, ahead: usize, punct: Punct) -> bool {
        self.peek_at(ahead).kind == TokenKind::Punct(punct)
    }

    fn is_word(&self, ahead: usize, word: &str) -> bool {
        self.peek_at(ahead).kind == TokenKind::Word(word)
    }

    fn eat_punct(&mut self, punct: Punct) -> Option<Span> {
        if self.is_punct(0, punct) {
            return Some(self.advance().span);
        }
        self.expect_here(format!("`{}`", punct.symbol()));
        None
    }

    fn eat_word(&mut self, word: &str) -> Option<Span> {
        if self.is_word(0, word) {
            return Some(self.advance().span);
        }
        self.expect_here(format!("`{word}`"));
        None
    }

    fn expect_punct(&mut self, punct: Punct) -> Result<Span, ParseError> {
        self.eat_punct(punct).ok_or_else(|| self.unexpected())
    }

    fn expect_end(&mut self) -> Result<(), ParseError> {
        if self.peek().kind == TokenKind::End {
            return Ok(());
        }
        self.expect_here("end of input".to_string());
        Err(self.unexpected())
    }

    fn expect_here(&mut self, what: String) {
        if !self.expected.contains(&what) {
            self.expected.push(what);
        }
    }

    // ---- errors ----

    fn error(&self, span: Span, message: impl Into<String>) -> ParseError {
        ParseError::new(self.source, span, message, self.expected.clone())
    }

    /// "unexpected X" at the current token, with everything that was looked for there.
    fn unexpected(&self) -> ParseError {
        let token = self.peek();
        let message = match token.kind {
            TokenKind::Punct(Punct::Assign) => "unexpected `=`: compare with `==`".to_string(),
            _ => format!("unexpected {}", token.kind.describe()),
        };
        self.error(token.span, message)
    }

    /// Counts one more level of nesting; fails past [`MAX_NESTING`] so deep input cannot overflow the stack.
    fn enter(&mut self) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            let message = format!("this expression nests too deeply: the limit is {MAX_NESTING} levels");
            return Err(ParseError::new(self.source, self.peek().span, message, Vec::new()));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    // ---- precedence levels, loosest first ----

    fn expression(&mut self) -> Result<Expr, ParseError> {
        self.chain("or", Self::conjunction, ExprKind::Or)
    }

    fn conjunction(&mut self) -> Result<Expr, ParseError> {
        self.chain("and", Self::negation, ExprKind::And)
    }

    /// `operand (keyword operand)*` as one n-ary node, so long chains stay shallow.
    fn chain(
        &mut self,
        keyword: &str,
        operand: fn(&mut Self) -> Result<Expr, ParseError>,
        node: fn(Vec<Expr>) -> ExprKind,
    ) -> Result<Expr, ParseError> {
        let first = operand(self)?;
        if !self.is_word(0, keyword) {
            self.expect_here(format!("`{keyword}`"));
            return Ok(first);
        }
        let mut span = first.span;
        let mut operands = vec![first];
        while self.eat_word(keyword).is_some() {
            let next = operand(self)?;
            span = span.to(next.span);
            operands.push(next);
        }
        Ok(Expr { kind: node(operands), span })
    }

    fn negation(&mut self) -> Result<Expr, ParseError> {
        if !self.is_word(0, "not") {
            return self.comparison();
        }
        let not_span = self.advance().span;
        self.enter()?;
        let operand = self.negation()?;
        self.leave();
        Ok(Expr { span: not_span.to(operand.span), kind: ExprKind::Not(Box::new(operand)) })
    }

    fn comparison(&mut self) -> Result<Expr, ParseError> {
        let left = self.additive()?;
        let Some((comparison, token_count)) = self.peek_comparison() else {
            return Ok(left);
        };
        for _ in 0..token_count {
            self.advance();
        }
        let right = self.additive()?;
        let expected_before = self.expected.len();
        if self.peek_comparison().is_some() {
            self.expected.clear();
            return Err(self.error(self.peek().span, "comparisons cannot be chained: join them with `and`"));
        }
        self.expected.truncate(expected_before);
        let span = left.span.to(right.span);
        let kind = match comparison {
            Comparison::Binary(op) => ExprKind::Binary { op, left: Box::new(left), right: Box::new(right) },
            Comparison::In { negated } => ExprKind::In { value: Box::new(left), list: Box::new(right), negated },
        };
        Ok(Expr { kind, span })
    }

    /// The comparison operator at the current token and how many tokens it spans, recording the
    /// alternatives when there is none.
    fn peek_comparison(&mut self) -> Option<(Comparison, usize)> {
        const SYMBOLS: [(Punct, BinaryOp); 6] = [
            (Punct::Equal, BinaryOp::Equal),
            (Punct::NotEqual, BinaryOp::NotEqual),
            (Punct::Less, BinaryOp::Less),
            (Punct::LessEqual, BinaryOp::LessEqual),
            (Punct::Greater, BinaryOp::Greater),
            (Punct::GreaterEqual, BinaryOp::GreaterEqual),
        ];
        const WORDS: [(&str, BinaryOp); 3] =
            [("starts_with", BinaryOp::StartsWith), ("ends_with", BinaryOp::EndsWith), ("contains", BinaryOp::Contains)];
        if let Some((_, op)) = SYMBOLS.iter().find(|(punct, _)| self.is_punct(0, *punct)) {
            return Some((Comparison::Binary(*op), 1));
        }
        if let Some((_, op)) = WORDS.iter().find(|(word, _)| self.is_word(0, word)) {
            return Some((Comparison::Binary(*op), 1));
        }
        if self.is_word(0, "in") {
            return Some((Comparison::In { negated: false }, 1));
        }
        if self.is_word(0, "not") && self.is_word(1, "in") {
            return Some((Comparison::In { negated: true }, 2));
        }
        for (punct, _) in SYMBOLS {
            self.expect_here(format!("`{}`", punct.symbol()));
        }
        for (word, _) in WORDS {
            self.expect_here(format!("`{word}`"));
        }
        self.expect_here("`in`".to_string());
        self.expect_here("`not in`".to_string());
        None
    }

    fn additive(&mut self) -> Result<Expr, ParseError> {
        self.arithmetic(&[(Punct::Plus, BinaryOp::Add), (Punct::Minus, BinaryOp::Subtract)], Self::multiplicative)
    }

    fn multiplicative(&mut self) -> Result<Expr, ParseError> {
        self.arithmetic(&[(Punct::Star, BinaryOp::Multiply), (Punct::Slash, BinaryOp::Divide)], Self::unary)
    }

    /// A left-associative chain of arithmetic operators; each operator nests the tree one level deeper,
    /// so it counts towards [`MAX_NESTING`].
    fn arithmetic(
        &mut self,
        operators: &[(Punct, BinaryOp)],
        operand: fn(&mut Self) -> Result<Expr, ParseError>,
    ) -> Result<Expr, ParseError> {
        let depth_before = self.depth;
        let mut left = operand(self)?;
        loop {
            let Some((_, op)) = operators.iter().find(|(punct, _)| self.is_punct(0, *punct)) else {
                for (punct, _) in operators {
                    self.expect_here(format!("`{}`", punct.symbol()));
                }
                break;
            };
            self.advance();
            self.enter()?;
            let right = operand(self)?;
            left =
                Expr { span: left.span.to(right.span), kind: ExprKind::Binary { op: *op, left: Box::new(left), right: Box::new(right) } };
        }
        self.depth = depth_before;
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr, ParseError> {
        if !self.is_punct(0, Punct::Minus) {
            return self.primary();
        }
        let minus_span = self.advance().span;
        self.enter()?;
        let operand = self.unary()?;
        self.leave();
        Ok(Expr { span: minus_span.to(operand.span), kind: ExprKind::Negate(Box::new(operand)) })
    }

    fn primary(&mut self) -> Result<Expr, ParseError> {
        let token = self.peek().clone();
        let literal = |literal| Ok(Expr { kind: ExprKind::Literal(literal), span: token.span });
        match token.kind {
            TokenKind::Number(_) if self.duration_unit_follows() => {
                let (duration, span) = self.duration()?;
                Ok(Expr { kind: ExprKind::Literal(Literal::Duration(duration)), span })
            }
            TokenKind::Number(value) => {
                self.advance();
                literal(Literal::Number(value))
            }
            TokenKind::Text(text) => {
                self.advance();
                literal(Literal::Text(text))
            }
            TokenKind::Date(milliseconds) => {
                self.advance();
                literal(Literal::Date(milliseconds))
            }
            TokenKind::Punct(Punct::LeftParen) => {
                self.advance();
                self.enter()?;
                let inner = self.expression()?;
                let close = self.expect_punct(Punct::RightParen)?;
                self.leave();
                Ok(Expr { kind: inner.kind, span: token.span.to(close) })
            }
            TokenKind::Punct(Punct::LeftBracket) => self.list(token.span),
            TokenKind::Word(word) => self.word(word, token.span),
            _ => {
                self.expect_here("an expression".to_string());
                Err(self.unexpected())
            }
        }
    }

    fn list(&mut self, open: Span) -> Result<Expr, ParseError> {
        self.advance();
        self.enter()?;
        let mut items = Vec::new();
        let close = loop {
            if let Some(close) = self.eat_punct(Punct::RightBracket) {
                break close;
            }
            items.push(self.expression()?);
            if self.eat_punct(Punct::Comma).is_none() {
                break self.expect_punct(Punct::RightBracket)?;
            }
        };
        self.leave();
        Ok(Expr { kind: ExprKind::List(items), span: open.to(close) })
    }

    /// A word where an expression starts: a literal keyword, a function call or a path.
    fn word(&mut self, word: &'src str, span: Span) -> Result<Expr, ParseError> {
        match word {
            "true" | "false" | "null" => {
                self.advance();
                let literal = match word {
                    "true" => Literal::Bool(true),
                    "false" => Literal::Bool(false),
                    _ => Literal::Null,
                };
                Ok(Expr { kind: ExprKind::Literal(literal), span })
            }
            _ if self.is_punct(1, Punct::LeftParen) => self.call(word, span),
            "traits" => {
                self.advance();
                let (name, end) = self.dotted_name()?;
                Ok(Expr { kind: ExprKind::Trait(name), span: span.to(end) })
            }
            "computed" => {
                self.advance();
                let (name, end) = self.dotted_name()?;
                Ok(Expr { kind: ExprKind::Computed(name), span: span.to(end) })
            }
            "properties" if !self.in_event_filter && !self.about_event => Err(self.error(
                span,
                "event properties can only be used inside an event function's filter, as in count(\"Order Completed\", properties.status == \"paid\")",
            )),
            _ if is_reserved_word(word) && word != "properties" => {
                self.expect_here("an expression".to_string());
                Err(self.unexpected())
            }
            _ if !self.in_event_filter && self.document_count_follows(word).is_some() => {
                let (status, kind) = self.document_count_follows(word).expect("checked");
                self.advance();
                let end = self.advance().span;
                Ok(Expr { kind: ExprKind::Documents { status, kind }, span: span.to(end) })
            }
            _ if !self.in_event_filter && !self.about_event => Err(self.error(
                span,
                format!("unknown name `{word}`: write traits.{word} for a trait or computed.{word} for a computed trait"),
            )),
            _ => {
                let (name, end) = self.property_name()?;
                Ok(Expr { kind: ExprKind::Property(name), span: span.to(end) })
            }
        }
    }

    /// `(status, kind)` when `word` and the next word count documents (`overdue invoices`).
    fn document_count_follows(&self, word: &str) -> Option<(&'static str, &'static str)> {
        match self.peek_at(1).kind {
            TokenKind::Word(next) => crate::ast::document_count(word, next),
            _ => None,
        }
    }

    /// `.part(.part)*` after `traits`, `computed` or `properties`; a part is a word or a quoted string.
    fn dotted_name(&mut self) -> Result<(String, Span), ParseError> {
        self.expect_punct(Punct::Dot)?;
        let mut name = String::new();
        loop {
            let token = self.peek().clone();
            match token.kind {
                TokenKind::Word(word) => name.push_str(word),
                TokenKind::Text(text) => name.push_str(&text),
                _ => {
                    self.expect_here("a name".to_string());
                    return Err(self.unexpected());
                }
            }
            self.advance();
            if self.eat_punct(Punct::Dot).is_none() {
                return Ok((name, token.span));
            }
            name.push('.');
        }
    }

    /// An event property: `properties.<name>` or a bare `name(.part)*` that is not a reserved word.
    fn property_name(&mut self) -> Result<(String, Span), ParseError> {
        let token = self.peek().clone();
        match token.kind {
            TokenKind::Word("properties") => {
                self.advance();
                self.dotted_name()
            }
            TokenKind::Word(word) if !is_reserved_word(word) => {
                self.advance();
                if !self.is_punct(0, Punct::Dot) {
                    self.expect_here("`.`".to_string());
                    return Ok((word.to_string(), token.span));
                }
                let (rest, end) = self.dotted_name()?;
                Ok((format!("{word}.{rest}"), end))
            }
            _ => {
                self.expect_here("a property name".to_string());
                Err(self.unexpected())
            }
        }
    }

    fn duration_unit_follows(&self) -> bool {
        matches!(self.peek_at(1).kind, TokenKind::Word(word) if DurationUnit::from_word(word).is_some())
    }

    /// `<number> <unit>`, as in `90 days`.
    fn duration(&mut self) -> Result<(DurationLiteral, Span), ParseError> {
        let TokenKind::Number(amount) = self.peek().kind else {
            self.expect_here("a duration such as `90 days`".to_string());
            return Err(self.unexpected());
        };
        let number_span = self.advance().span;
        let unit_token = self.peek().clone();
        let TokenKind::Word(word) = unit_token.kind else {
            self.expected = ["seconds", "minutes", "hours", "days", "weeks"].iter().map(|unit| format!("`{unit}`")).collect();
            return Err(self.unexpected());
        };
        let Some(unit) = DurationUnit::from_word(word) else {
            self.expected = ["seconds", "minutes", "hours", "days", "weeks"].iter().map(|unit| format!("`{unit}`")).collect();
            return Err(self.error(unit_token.span, format!("unknown time unit `{word}` (months and years have no fixed length)")));
        };
        self.advance();
        let span = number_span.to(unit_token.span);
        if amount * unit.milliseconds() as f64 > MAX_DURATION_MS {
            return Err(self.error(span, "this duration is too long"));
        }
        Ok((DurationLiteral { amount, unit }, span))
    }

    // ---- function calls ----

    fn call(&mut self, name: &str, name_span: Span) -> Result<Expr, ParseError> {
        if let Some(function) = EventFunction::ALL.into_iter().find(|function| function.name() == name) {
            if self.in_event_filter {
                return Err(self.error(name_span, format!("`{name}` cannot be used inside an event filter")));
            }
            return self.event_query(function, name_span);
        }
        match name {
            "exists" => self.single_argument(name_span, ExprKind::Exists),
            "days_since" => self.single_argument(name_span, ExprKind::DaysSince),
            "in_segment" => {
                self.advance();
                self.advance();
                let token = self.peek().clone();
                let TokenKind::Text(segment) = token.kind else {
                    self.expect_here("a segment name in quotes".to_string());
                    return Err(self.unexpected());
                };
                self.advance();
                let close = self.expect_punct(Punct::RightParen)?;
                Ok(Expr { kind: ExprKind::InSegment { name: segment, name_span: token.span }, span: name_span.to(close) })
            }
            "in_list" => {
                self.advance();
                self.advance();
                let token = self.peek().clone();
                let TokenKind::Text(list) = token.kind else {
                    self.expect_here("a list name in quotes".to_string());
                    return Err(self.unexpected());
                };
                self.advance();
                let close = self.expect_punct(Punct::RightParen)?;
                Ok(in_list(&list, name_span.to(close)))
            }
            "now" => {
                self.advance();
                self.advance();
                let close = self.expect_punct(Punct::RightParen)?;
                Ok(Expr { kind: ExprKind::Now, span: name_span.to(close) })
            }
            "health" => {
                let (name, name_span, field, span) =
                    self.definition_field(name_span, "a health definition's name", &HealthField::ALL, HealthField::name)?;
                Ok(Expr { kind: ExprKind::Health { name, name_span, field }, span })
            }
            "funnel" => {
                let (name, name_span, field, span) =
                    self.definition_field(name_span, "a funnel name", &FunnelField::ALL, FunnelField::name)?;
                Ok(Expr { kind: ExprKind::Funnel { name, name_span, field }, span })
            }
            _ => {
                self.expected = EventFunction::ALL
                    .iter()
                    .map(|function| function.name())
                    .chain(["exists", "days_since", "in_segment", "in_list", "now", "funnel", "health"])
                    .map(|function| format!("`{function}`"))
                    .collect();
                Err(self.error(name_span, format!("unknown function `{name}`")))
            }
        }
    }

    /// `NAME("x").field`: a definition the host holds, named in quotes, and one of its
    /// `fields`. Returns the name, its span, the field and the whole span.
    fn definition_field<F: Copy>(
        &mut self,
        name_span: Span,
        what: &str,
        fields: &[F],
        field_name: fn(F) -> &'static str,
    ) -> Result<(String, Span, F, Span), ParseError> {
        self.advance();
        self.advance();
        let token = self.peek().clone();
        let TokenKind::Text(name) = token.kind else {
            self.expect_here(format!("{what} in quotes"));
            return Err(self.unexpected());
        };
        self.advance();
        self.expect_punct(Punct::RightParen)?;
        self.expect_punct(Punct::Dot)?;
        let field_token = self.peek().clone();
        let field = match &field_token.kind {
            TokenKind::Word(word) => fields.iter().copied().find(|f| field_name(*f) == *word),
            _ => None,
        };
        let Some(field) = field else {
            self.expected = fields.iter().map(|f| format!("`{}`", field_name(*f))).collect();
            return Err(self.unexpected());
        };
        self.advance();
        Ok((name, token.span, field, name_span.to(field_token.span)))
    }

    fn single_argument(&mut self, name_span: Span, node: fn(Box<Expr>) -> ExprKind) -> Result<Expr, ParseError> {
        self.advance();
        self.advance();
        self.enter()?;
        let argument = self.expression()?;
        let close = self.expect_punct(Punct::RightParen)?;
        self.leave();
        Ok(Expr { kind: node(Box::new(argument)), span: name_span.to(close) })
    }

    /// `function(selector [, property] [, filter] [, last <duration>])`; the filter and the window may come
    /// in either order.
    fn event_query(&mut self, function: EventFunction, name_span: Span) -> Result<Expr, ParseError> {
        self.advance();
        self.advance();
        let selector = self.peek().clone();
        let event = match selector.kind {
            TokenKind::Text(name) => EventSelector::Named(name),
            TokenKind::Punct(Punct::Star) => EventSelector::AnyEvent,
            _ => {
                self.expect_here("an event name in quotes".to_string());
                self.expect_here("`*` for any event".to_string());
                return Err(self.unexpected());
            }
        };
        self.advance();
        let property = if function.takes_property() {
            if self.eat_punct(Punct::Comma).is_none() {
                return Err(self.error(
                    self.peek().span,
                    format!(
                        "`{}` needs the property to aggregate, as in {}(\"Order Completed\", revenue)",
                        function.name(),
                        function.name()
                    ),
                ));
            }
            if self.is_word(0, "last") && matches!(self.peek_at(1).kind, TokenKind::Number(_)) {
                return Err(self.error(
                    self.peek().span,
                    format!(
                        "`{}` needs the property to aggregate before the time window, as in {}(\"Order Completed\", revenue, last 30 days)",
                        function.name(),
                        function.name()
                    ),
                ));
            }
            Some(self.property_name()?.0)
        } else {
            None
        };
        let mut filter = None;
        let mut window = None;
        while self.eat_punct(Punct::Comma).is_some() {
            if self.is_word(0, "last") && !self.is_punct(1, Punct::LeftParen) {
                let last_span = self.advance().span;
                if window.is_some() {
                    return Err(self.error(last_span, "only one time window is allowed"));
                }
                window = Some(self.duration()?.0);
            } else {
                if filter.is_some() {
                    return Err(self.error(self.peek().span, "only one filter is allowed: combine conditions with `and`"));
                }
                self.enter()?;
                self.in_event_filter = true;
                let condition = self.expression();
                self.in_event_filter = false;
                filter = Some(condition?);
                self.leave();
            }
        }
        let close = self.expect_punct(Punct::RightParen)?;
        let query = EventQuery { function, event, property, filter, window };
        Ok(Expr { kind: ExprKind::Events(Box::new(query)), span: name_span.to(close) })
    }
}

/// The event that puts a profile on a list (`list` names it), as flows write it.
pub const ADDED_TO_LIST: &str = "Added To List";
/// The event that takes a profile off a list.
pub const REMOVED_FROM_LIST: &str = "Removed From List";

/// `in_list("x")`: the profile was added to list `x` and not removed since, written out in
/// the language itself so that nothing downstream (types, dependencies, evaluation,
/// projection) needs to know lists: `exists(last("Added To List", list == "x")) and not
/// (last("Removed From List", list == "x") > last("Added To List", list == "x"))`.
fn in_list(list: &str, span: Span) -> Expr {
    let node = |kind| Expr { kind, span };
    let last = |event: &str| {
        let filter = node(ExprKind::Binary {
            op: BinaryOp::Equal,
            left: Box::new(node(ExprKind::Property("list".into()))),
            right: Box::new(node(ExprKind::Literal(Literal::Text(list.into())))),
        });
        node(ExprKind::Events(Box::new(EventQuery {
            function: EventFunction::Last,
            event: EventSelector::Named(event.into()),
            property: None,
            filter: Some(filter),
            window: None,
        })))
    };
    let removed_since =
        node(ExprKind::Binary { op: BinaryOp::Greater, left: Box::new(last(REMOVED_FROM_LIST)), right: Box::new(last(ADDED_TO_LIST)) });
    node(ExprKind::And(vec![node(ExprKind::Exists(Box::new(last(ADDED_TO_LIST)))), node(ExprKind::Not(Box::new(removed_since)))]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence_follows_the_grammar() {
        let printed = |source: &str| parse(source).unwrap().to_string();
        assert_eq!(printed("traits.a == 1 or traits.b == 2 and not traits.c == 3"), "traits.a == 1 or traits.b == 2 and not traits.c == 3");
        assert_eq!(printed("(traits.a == 1 or traits.b == 2) and traits.c"), "(traits.a == 1 or traits.b == 2) and traits.c");
        assert_eq!(printed("1 + 2 * 3 - -4"), "1 + 2 * 3 - -4");
        assert_eq!(printed("(1 + 2) * 3"), "(1 + 2) * 3");
        assert_eq!(printed("1 - (2 - 3)"), "1 - (2 - 3)");
        assert_eq!(printed("now() - 90 days"), "now() - 90 days");
    }

    #[test]
    fn nested_and_keeps_its_parentheses() {
        let expr = parse("(traits.a and traits.b) and traits.c").unwrap();
        assert_eq!(expr.to_string(), "(traits.a and traits.b) and traits.c");
        assert_eq!(parse(&expr.to_string()).unwrap().to_string(), expr.to_string());
    }

    #[test]
    fn bare_names_are_properties_only_inside_event_filters() {
        let expr = parse("count(\"X\", status == \"open\" and properties.last == 1 and address.city == \"Perth\")").unwrap();
        assert_eq!(expr.to_string(), "count(\"X\", status == \"open\" and properties.last == 1 and address.city == \"Perth\")");
        assert!(parse("status == \"open\"").unwrap_err().message.contains("traits.status"));
    }

    #[test]
    fn spans_cover_their_source() {
        let source = "traits.a == 1 and count(\"X\", last 2 days) > 0";
        let ExprKind::And(operands) = parse(source).unwrap().kind else { panic!("expected and") };
        assert_eq!(&source[operands[0].span.start..operands[0].span.end], "traits.a == 1");
        assert_eq!(&source[operands[1].span.start..operands[1].span.end], "count(\"X\", last 2 days) > 0");
    }
}
