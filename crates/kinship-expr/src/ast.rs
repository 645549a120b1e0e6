//! The parsed expression tree. Every node carries the span of source it came from; `Display` prints the
//! canonical spelling, which parses back to the same tree.

use std::fmt::{self, Display, Formatter};

use crate::diagnostic::Span;
use crate::lexer::{is_word_continue, is_word_start};
use crate::time::{format_timestamp, DurationUnit};

#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ExprKind {
    Literal(Literal),
    /// `[a, b, c]`: only meaningful on the right of `in`.
    List(Vec<Expr>),
    /// `traits.name`; a dotted path `traits.address.city` is the single name `address.city`.
    Trait(String),
    /// `computed.name`.
    Computed(String),
    /// An event property inside an event filter: `status` or `properties.status`.
    Property(String),
    Not(Box<Expr>),
    Negate(Box<Expr>),
    /// Two or more operands: `a and b and c` is one node.
    And(Vec<Expr>),
    /// Two or more operands.
    Or(Vec<Expr>),
    Binary {
        op: BinaryOp,
        left: Box<Expr>,
        right: Box<Expr>,
    },
    /// `value in [..]` or, with `negated`, `value not in [..]`.
    In {
        value: Box<Expr>,
        list: Box<Expr>,
        negated: bool,
    },
    Exists(Box<Expr>),
    DaysSince(Box<Expr>),
    InSegment {
        name: String,
        /// The span of the quoted name, for "unknown segment" errors.
        name_span: Span,
    },
    Now,
    Events(Box<EventQuery>),
    /// `funnel("checkout").step`: where the profile stands in a funnel the host defines.
    Funnel {
        name: String,
        /// The span of the quoted name, for "unknown funnel" errors.
        name_span: Span,
        field: FunnelField,
    },
    /// `health("customer").score`: the profile's score under a health definition the host holds.
    Health {
        name: String,
        /// The span of the quoted name, for "unknown health definition" errors.
        name_span: Span,
        field: HealthField,
    },
    /// `overdue invoices`: how many of the profile's commercial documents of a kind are in a
    /// status now, each document counted once, as its latest version says. Read from the
    /// [`DOCUMENT_PROPERTY`] the host puts on a document's events.
    Documents {
        /// One of [`DOCUMENT_STATUSES`].
        status: &'static str,
        /// One of [`DOCUMENT_KINDS`], singular.
        kind: &'static str,
    },
}

/// The event property a host puts a record's commercial document under: an object with
/// `source`, `kind`, `number`, `status` and `due` (Unix ms), flattened to `$document.kind`
/// and so on.
pub const DOCUMENT_PROPERTY: &str = "$document";

/// The flattened names a document count reads, without building them per event.
pub const DOCUMENT_FIELDS: [&str; 5] = ["$document.source", "$document.kind", "$document.number", "$document.status", "$document.due"];

/// `$document.FIELD` for one of [`DOCUMENT_FIELDS`]' fields.
pub(crate) fn document_field(field: &str) -> &'static str {
    DOCUMENT_FIELDS.iter().find(|f| f.strip_prefix("$document.") == Some(field)).copied().unwrap_or("$document")
}

/// The kinds of commercial document, singular as `$document.kind` holds them; an expression
/// writes them plural (`overdue invoices`).
pub const DOCUMENT_KINDS: [&str; 6] = ["quote", "order", "invoice", "payment", "shipment", "refund"];

/// The statuses a document count asks for: the normalised ones, and `unpaid` (an invoice
/// invoiced or overdue).
pub const DOCUMENT_STATUSES: [&str; 12] =
    ["draft", "sent", "accepted", "ordered", "invoiced", "paid", "overdue", "shipped", "delivered", "void", "refunded", "unpaid"];

/// `(status, kind)` when `first second` is a document count: `overdue invoices`.
pub(crate) fn document_count(first: &str, second: &str) -> Option<(&'static str, &'static str)> {
    let status = DOCUMENT_STATUSES.iter().find(|s| **s == first)?;
    let kind = DOCUMENT_KINDS.iter().find(|k| second.strip_suffix('s') == Some(**k))?;
    Some((status, kind))
}

/// What `health("x").field` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HealthField {
    /// The 0–100 score (a Number; null when the definition does not apply or nothing is measured).
    Score,
    /// `"red"`, `"yellow"` or `"green"` (a String; null likewise).
    Band,
}

impl HealthField {
    pub const ALL: [HealthField; 2] = [HealthField::Score, HealthField::Band];

    pub fn name(self) -> &'static str {
        match self {
            HealthField::Score => "score",
            HealthField::Band => "band",
        }
    }
}

/// What `funnel("x").field` reads of the profile's latest attempt at the funnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FunnelField {
    /// How many steps it reached (a Number; 0 when the profile never entered).
    Step,
    /// When it reached that step (a Date; null when it never entered).
    Reached,
    /// Whether it has waited at a step other than the last longer than the 90th percentile of
    /// the time others took to the next step (a Bool).
    Stuck,
}

impl FunnelField {
    pub const ALL: [FunnelField; 3] = [FunnelField::Step, FunnelField::Reached, FunnelField::Stuck];

    pub fn name(self) -> &'static str {
        match self {
            FunnelField::Step => "step",
            FunnelField::Reached => "reached",
            FunnelField::Stuck => "stuck",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Null,
    Bool(bool),
    Number(f64),
    Text(String),
    /// Milliseconds since the Unix epoch, UTC.
    Date(i64),
    Duration(DurationLiteral),
}

/// A duration as written, `90 days`; the parser guarantees it fits comfortably in an `i64` of milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DurationLiteral {
    pub amount: f64,
    pub unit: DurationUnit,
}

impl DurationLiteral {
    pub fn milliseconds(&self) -> i64 {
        // `as` saturates; the parser bounds the product well inside i64 anyway.
        (self.amount * self.unit.milliseconds() as f64).round() as i64
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOp {
    Equal,
    NotEqual,
    Less,
    LessEqual,
    Greater,
    GreaterEqual,
    StartsWith,
    EndsWith,
    Contains,
    Add,
    Subtract,
    Multiply,
    Divide,
}

impl BinaryOp {
    pub fn symbol(self) -> &'static str {
        match self {
            BinaryOp::Equal => "==",
            BinaryOp::NotEqual => "!=",
            BinaryOp::Less => "<",
            BinaryOp::LessEqual => "<=",
            BinaryOp::Greater => ">",
            BinaryOp::GreaterEqual => ">=",
            BinaryOp::StartsWith => "starts_with",
            BinaryOp::EndsWith => "ends_with",
            BinaryOp::Contains => "contains",
            BinaryOp::Add => "+",
            BinaryOp::Subtract => "-",
            BinaryOp::Multiply => "*",
            BinaryOp::Divide => "/",
        }
    }

    fn precedence(self) -> Precedence {
        match self {
            BinaryOp::Add | BinaryOp::Subtract => Precedence::Additive,
            BinaryOp::Multiply | BinaryOp::Divide => Precedence::Multiplicative,
            _ => Precedence::Comparison,
        }
    }
}

/// `count("Order Completed", status == "paid", last 90 days)` and its siblings.
#[derive(Debug, Clone, PartialEq)]
pub struct EventQuery {
    pub function: EventFunction,
    pub event: EventSelector,
    /// The property `sum`, `avg`, `min` and `max` aggregate; `None` for the others.
    pub property: Option<String>,
    pub filter: Option<Expr>,
    pub window: Option<DurationLiteral>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventFunction {
    Count,
    Any,
    Sum,
    Avg,
    Min,
    Max,
    First,
    Last,
}

impl EventFunction {
    pub(crate) const ALL: [EventFunction; 8] = [
        EventFunction::Count,
        EventFunction::Any,
        EventFunction::Sum,
        EventFunction::Avg,
        EventFunction::Min,
        EventFunction::Max,
        EventFunction::First,
        EventFunction::Last,
    ];

    pub fn name(self) -> &'static str {
        match self {
            EventFunction::Count => "count",
            EventFunction::Any => "any",
            EventFunction::Sum => "sum",
            EventFunction::Avg => "avg",
            EventFunction::Min => "min",
            EventFunction::Max => "max",
            EventFunction::First => "first",
            EventFunction::Last => "last",
        }
    }

    /// Whether the function aggregates a property, written as its second argument.
    pub fn takes_property(self) -> bool {
        matches!(self, EventFunction::Sum | EventFunction::Avg | EventFunction::Min | EventFunction::Max)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventSelector {
    /// `"Order Completed"`.
    Named(String),
    /// `*`: events of every name.
    AnyEvent,
}

/// Words that cannot be a bare event property name, because they mean something else where an expression
/// starts; such properties are written `properties.<name>`.
pub(crate) fn is_reserved_word(word: &str) -> bool {
    matches!(
        word,
        "and"
            | "or"
            | "not"
            | "in"
            | "true"
            | "false"
            | "null"
            | "starts_with"
            | "ends_with"
            | "contains"
            | "last"
            | "traits"
            | "computed"
            | "properties"
    )
}

/// Binding strength, loosest first: an operand printed inside a tighter operator gets parentheses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Precedence {
    Or,
    And,
    Not,
    Comparison,
    Additive,
    Multiplicative,
    Unary,
    Primary,
}

impl Expr {
    fn precedence(&self) -> Precedence {
        match &self.kind {
            ExprKind::Or(_) => Precedence::Or,
            ExprKind::And(_) => Precedence::And,
            ExprKind::Not(_) => Precedence::Not,
            ExprKind::In { .. } => Precedence::Comparison,
            ExprKind::Binary { op, .. } => op.precedence(),
            ExprKind::Negate(_) => Precedence::Unary,
            _ => Precedence::Primary,
        }
    }

    /// Writes `self`, parenthesised unless it binds at least as tightly as `minimum`.
    fn write_operand(&self, formatter: &mut Formatter<'_>, minimum: Precedence) -> fmt::Result {
        if self.precedence() < minimum {
            write!(formatter, "({self})")
        } else {
            write!(formatter, "{self}")
        }
    }
}

impl Display for Expr {
    fn fmt(&self, formatter: &mut Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ExprKind::Literal(literal) => write!(formatter, "{literal}"),
            ExprKind::List(items) => {
                formatter.write_str("[")?;
                write_separated(formatter, items, ", ")?;
                formatter.write_str("]")
            }
            ExprKind::Trait(name) => write_path(formatter, "traits", name),
            ExprKind::Computed(name) => write_path(formatter, "computed", name),
            ExprKind::Property(name) => write_property(formatter, name),
            ExprKind::Not(operand) => {
                formatter.write_str("not ")?;
                operand.write_operand(formatter, Precedence::Not)
            }
            ExprKind::Negate(operand) => {
                formatter.write_str("-")?;
                operand.write_operand(formatter, Precedence::Unary)
            }
            // Nested `and` inside `and` keeps its parentheses so the tree survives a round trip.
            ExprKind::And(operands) => write_chain(formatter, operands, " and ", Precedence::Not),
            ExprKind::Or(operands) => write_chain(formatter, operands, " or ", Precedence::And),
            ExprKind::Binary { op, left, right } => {
                let (left_minimum, right_minimum) = match op.precedence() {
                    Precedence::Additive => (Precedence::Additive, Precedence::Multiplicative),
                    Precedence::Multiplicative => (Precedence::Multiplicative, Precedence::Unary),
                    _ => (Precedence::Additive, Precedence::Additive),
                };
                left.write_operand(formatter, left_minimum)?;
                write!(formatter, " {} ", op.symbol())?;
                right.write_operand(formatter, right_minimum)
            }
            ExprKind::In { value, list, negated } => {
                value.write_operand(formatter, Precedence::Additive)?;
                formatter.write_str(if *negated { " not in " } else { " in " })?;
                list.write_operand(formatter, Precedence::Additive)
            }
            ExprKind::Exists(operand) => write!(formatter, "exists({operand})"),
            ExprKind::DaysSince(operand) => write!(formatter, "days_since({operand})"),
            ExprKind::InSegment { name, .. } => {
                formatter.write_str("in_segment(")?;
                write_string(formatter, name)?;
                formatter.write_str(")")
            }
            ExprKind::Now => formatter.write_str("now()"),
            ExprKind::Events(query) => write!(formatter, "{query}"),
            ExprKind::Funnel { name, field, .. } => {
                formatter.write_str("funnel(")?;
                write_string(formatter, name)?;
                write!(formatter, ").{}", field.name())
            }
            ExprKind::Health { name, field, .. } => {
                formatter.write_str("health(")?;
                write_string(formatter, name)?;
                write!(formatter, ").{}", field.name())
            }
            ExprKind::Documents { status, kind } => write!(formatter, "{status} {kind}s"),
        }
    }
}

impl Display for EventQuery {
    fn fmt(&self, formatter: &mut Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}(", self.function.name())?;
        match &self.event {
            EventSelector::Named(name) => write_string(formatter, name)?,
            EventSelector::AnyEvent => formatter.write_str("*")?,
        }
        if let Some(property) = &self.property {
            formatter.write_str(", ")?;
            write_property(formatter, property)?;
        }
        if let Some(filter) = &self.filter {
            write!(formatter, ", {filter}")?;
        }
        if let Some(window) = &self.window {
            write!(formatter, ", last {window}")?;
        }
        formatter.write_str(")")
    }
}

impl Display for Literal {
    fn fmt(&self, formatter: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Literal::Null => formatter.write_str("null"),
            Literal::Bool(value) => write!(formatter, "{value}"),
            Literal::Number(value) => write!(formatter, "{value}"),
            Literal::Text(text) => write_string(formatter, text),
            Literal::Date(milliseconds) => write!(formatter, "@{}", format_timestamp(*milliseconds)),
            Literal::Duration(duration) => write!(formatter, "{duration}"),
        }
    }
}

impl Display for DurationLiteral {
    fn fmt(&self, formatter: &mut Formatter<'_>) -> fmt::Result {
        write!(formatter, "{} {}", self.amount, self.unit.word(self.amount == 1.0))
    }
}

fn write_separated(formatter: &mut Formatter<'_>, items: &[Expr], separator: &str) -> fmt::Result {
    for (index, item) in items.iter().enumerate() {
        if index > 0 {
            formatter.write_str(separator)?;
        }
        write!(formatter, "{item}")?;
    }
    Ok(())
}

fn write_chain(formatter: &mut Formatter<'_>, operands: &[Expr], separator: &str, minimum: Precedence) -> fmt::Result {
    for (index, operand) in operands.iter().enumerate() {
        if index > 0 {
            formatter.write_str(separator)?;
        }
        operand.write_operand(formatter, minimum)?;
    }
    Ok(())
}

fn write_string(formatter: &mut Formatter<'_>, text: &str) -> fmt::Result {
    formatter.write_str("\"")?;
    for character in text.chars() {
        match character {
            '"' => formatter.write_str("\\\"")?,
            '\\' => formatter.write_str("\\\\")?,
            '\n' => formatter.write_str("\\n")?,
            '\t' => formatter.write_str("\\t")?,
            '\r' => formatter.write_str("\\r")?,
            _ => write!(formatter, "{character}")?,
        }
    }
    formatter.write_str("\"")
}

fn is_word(text: &str) -> bool {
    let mut characters = text.chars();
    characters.next().is_some_and(is_word_start) && characters.all(is_word_continue)
}

/// `prefix.a.b` when every part of the name is a word, otherwise `prefix."the name"`.
fn write_path(formatter: &mut Formatter<'_>, prefix: &str, name: &str) -> fmt::Result {
    write!(formatter, "{prefix}.")?;
    if name.split('.').all(is_word) {
        formatter.write_str(name)
    } else {
        write_string(formatter, name)
    }
}

/// A property bare when that parses back as the same property, otherwise `properties.<name>`.
fn write_property(formatter: &mut Formatter<'_>, name: &str) -> fmt::Result {
    let first = name.split('.').next().unwrap_or("");
    if name.split('.').all(is_word) && !is_reserved_word(first) {
        formatter.write_str(name)
    } else {
        write_path(formatter, "properties", name)
    }
}
