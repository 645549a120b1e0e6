//! The expression language of Kinship segments and computed traits.
//!
//! ```text
//! traits.country == "AU" and count("Order Completed", last 90 days) >= 2
//! sum("Order Completed", revenue, last 365 days) > 500
//! not any("Ticket Opened", status == "open")
//! days_since(last("Order Completed")) > 60
//! computed.lifetime_value > 1000 and in_segment("engaged")
//! ```
//!
//! An expression is [parsed](parse) into an [`Expr`] (every node with its byte [`Span`]),
//! [checked](check) against the host's [`Schema`], and [compiled](Program::compile) once into a
//! [`Program`] that evaluates against any number of profiles the host exposes through [`ProfileView`].
//! [`Expr::dependencies`] says what an expression reads, and [`find_cycle`] rejects definitions that
//! refer to themselves through `in_segment` or `computed`. The crate is pure: no I/O, no async, no
//! database.
//!
//! # Grammar
//!
//! ```text
//! expression  = or
//! or          = and { "or" and }
//! and         = not { "and" not }
//! not         = "not" not | comparison
//! comparison  = additive [ compare_op additive | ["not"] "in" additive ]   (* not chainable *)
//! compare_op  = "==" | "!=" | "<" | "<=" | ">" | ">=" | "starts_with" | "ends_with" | "contains"
//! additive    = multiplicative { ("+" | "-") multiplicative }
//! multiplicative = unary { ("*" | "/") unary }
//! unary       = "-" unary | primary
//! primary     = number | duration | string | date | "true" | "false" | "null"
//!             | "traits" path | "computed" path | property
//!             | "[" [ expression { "," expression } [","] ] "]"
//!             | "(" expression ")" | call | documents
//! path        = "." part { "." part }          part = word | string
//! property    = "properties" path | word { "." part }   (* only inside an event filter *)
//! duration    = number unit                    unit = second(s) | minute(s) | hour(s) | day(s) | week(s)
//! date        = "@" YYYY-MM-DD [ "T" HH:MM[:SS[.fff]] ( "Z" | ±HH:MM ) ]
//! call        = event_fn "(" selector [ "," property ] { "," ( filter | window ) } ")"
//!             | "exists" "(" expression ")" | "days_since" "(" expression ")"
//!             | "in_segment" "(" string ")" | "in_list" "(" string ")" | "now" "(" ")"
//!             | "funnel" "(" string ")" "." ( "step" | "reached" | "stuck" )
//!             | "health" "(" string ")" "." ( "score" | "band" )
//! event_fn    = "count" | "any" | "first" | "last"             (* no property *)
//!             | "sum" | "avg" | "min" | "max"                  (* property required *)
//! documents   = status kind_plural             (* `overdue invoices`: a count, Number *)
//! status      = "draft" | "sent" | "accepted" | "ordered" | "invoiced" | "paid" | "overdue"
//!             | "shipped" | "delivered" | "void" | "refunded" | "unpaid"
//! kind_plural = "quotes" | "orders" | "invoices" | "payments" | "shipments" | "refunds"
//! selector    = string | "*"
//! filter      = expression                     (* at most one; bare words are event properties *)
//! window      = "last" duration                (* at most one; before or after the filter *)
//! ```
//!
//! Words are ASCII letters, digits and `_`, not starting with a digit. Strings are double-quoted with the
//! escapes `\"`, `\\`, `\n`, `\t`, `\r`. Numbers are decimal (`2`, `12.50`); `-2` is negation. Whitespace,
//! newlines included, separates tokens, and `//` starts a comment to the end of the line.
//!
//! Precedence, loosest first: `or`; `and`; `not`; the comparisons `== != < <= > >= in not in
//! starts_with ends_with contains`; `+ -`; `* /`; unary `-`. `and`, `or` and the arithmetic operators
//! associate to the left; comparisons do not chain (`1 < x < 3` is an error: write `1 < x and x < 3`).
//! So `not a == 1 or b` is `(not (a == 1)) or b`.
//!
//! A computed-trait definition `name = expression` is read by [`parse_definition`].
//!
//! # Types
//!
//! [`Type`]: `Bool`, `Number`, `String`, `Date`, `Duration`, `List` (a list literal, only on the right of
//! `in`), `Null` (the `null` literal) and `Any`: a trait the schema does not type, or an event property.
//! `Any` passes every check and is compared at run time. Everything else is checked before anything runs:
//! `count("X") > "two"` is an error pointing at `"two"`, `traits.age > "x"` is fine while `age` is untyped.
//! `==`/`!=` need equal types (or `Any`/`Null` on a side); ordering needs two Numbers, Strings, Dates or
//! Durations; `starts_with`/`ends_with`/`contains` need Strings; `and`/`or`/`not` and event filters need
//! Bools. Arithmetic: Number with Number; `Date ± Duration` is a Date, `Date - Date` a Duration,
//! `Duration ± Duration` a Duration, `Duration * Number`, `Number * Duration` and `Duration / Number`
//! Durations. `computed.x` must name a computed trait of the schema and `in_segment("x")` a segment of
//! the schema; event names are never checked. A segment must be a `Bool` (or `Any`); a computed trait
//! may be of any type, which [`check`] and [`Program::result_type`] return.
//!
//! # Meaning
//!
//! * **Functions.** `count` is the number of matching events; `any` whether there is one; `sum`, `avg`,
//!   `min`, `max` aggregate a numeric property over them, skipping events where it is missing or not a
//!   number (a numeric string such as `"12.50"` counts as 12.5). `sum` of nothing is 0; `avg`, `min`,
//!   `max` of nothing are null. `first`/`last` are the timestamp (a Date) of the oldest/newest matching
//!   event, or null. `exists(x)` is whether `x` is not null. `in_segment("x")` asks the host.
//!   `in_list("x")` is whether the profile's newest `Added To List` event with `list == "x"` is
//!   not followed by a `Removed From List` one (what a flow's `add_to_list` and
//!   `remove_from_list` steps write); it is written out in the language itself, so its
//!   canonical spelling is that longer expression.
//! * **Funnels.** `funnel("checkout").step` is how many steps the profile's latest attempt at
//!   the host's funnel reached (0: never entered), `.reached` when it reached that step (a Date,
//!   null when never), `.stuck` whether it has waited at a step other than the last longer
//!   than the 90th percentile of the time others took to the next (a Bool, false when nobody
//!   has gone on yet). `funnel("x")` must name a funnel of the schema.
//! * **Health.** `health("customer").score` is the profile's 0–100 score under the host's
//!   health definition, `.band` its band (`"red"`, `"yellow"`, `"green"`); both null when the
//!   definition does not apply to the profile. `health("x")` must name one of the schema.
//! * **Any event.** `*` in place of the event name selects events of every name: `last(*)` is when the
//!   profile was last seen, `count(*, last 7 days)` its recent activity.
//! * **Windows.** `last 90 days` keeps events with `now - 90 days < timestamp <= now`: an event exactly
//!   90 days old is out, one a millisecond younger is in, and events after `now` are out. Without a
//!   window every event counts, whatever its timestamp. `now` is [`EvalContext::now_ms`].
//! * **Dates.** Date literals are `@2026-01-31` (UTC midnight) or `@2026-01-31T10:30:00Z`; they compare
//!   with `<`, `>`, etc. `now()` is the evaluation instant. Durations are `30 seconds`, `30 minutes`,
//!   `12 hours`, `90 days`, `2 weeks` (fractions allowed, no months or years: they have no fixed length).
//! * **`days_since(date)`** is the whole number of days from `date` to now, rounded down: 59 days and 23
//!   hours is 59; a future date gives a negative number; null gives null.
//! * **Null and mismatches.** A missing trait or property is null. Any ordering comparison (`<` …) with
//!   null, or between values that do not order at run time, is false. `==` is false across kinds and
//!   `null == null` is true; `!=` is always the negation of `==`, so `traits.country != "AU"` holds for a
//!   profile without a country. Arithmetic on mismatched kinds or dividing by zero is null. `and`, `or`
//!   and `not` treat anything but `true` as false. So `days_since(last("Order Completed")) > 60` is false
//!   for a profile with no order at all: write `not any("Order Completed", last 60 days)` to include them.
//! * **Coercion** happens only at run time, between a value of unknown type and another kind: a number
//!   and a numeric string compare as numbers, a date and an ISO-8601 string (`"2026-01-31"`,
//!   `"2026-01-31T10:00:00Z"`) as dates. Two strings always compare as text.
//! * **Strings** compare exactly: case-sensitive, no Unicode normalisation (normalise at ingestion);
//!   ordering is by code point.
//!
//! # Host API
//!
//! ```
//! use kinship_expr::{compile_segment, EvalContext, EventView, ProfileView, Scalar, Schema};
//!
//! struct Order { at_ms: i64, revenue: f64 }
//! struct Customer { country: String, orders: Vec<Order> }
//!
//! impl EventView for Order {
//!     fn timestamp_ms(&self) -> i64 { self.at_ms }
//!     fn property(&self, name: &str) -> Scalar<'_> {
//!         if name == "revenue" { Scalar::Number(self.revenue) } else { Scalar::Null }
//!     }
//! }
//!
//! impl ProfileView for Customer {
//!     type Event = Order;
//!     fn trait_value(&self, name: &str) -> Scalar<'_> {
//!         if name == "country" { Scalar::Str(&self.country) } else { Scalar::Null }
//!     }
//!     fn computed(&self, _name: &str) -> Scalar<'_> { Scalar::Null }
//!     fn in_segment(&self, _name: &str) -> bool { false }
//!     fn event_name<'a>(&'a self, _event: &'a Order) -> &'a str { "Order Completed" }
//!     fn events<'a>(&'a self, name: Option<&'a str>) -> impl DoubleEndedIterator<Item = &'a Order> + 'a {
//!         // This host only stores orders, oldest first.
//!         let orders = if name.is_none_or(|name| name == "Order Completed") { &self.orders[..] } else { &[] };
//!         orders.iter()
//!     }
//! }
//!
//! let source = r#"traits.country == "AU" and sum("Order Completed", revenue, last 30 days) > 100"#;
//! let segment = compile_segment(source, &Schema::new()).map_err(|error| error.render(source)).unwrap();
//! const DAY: i64 = 86_400_000;
//! let customer = Customer {
//!     country: "AU".into(),
//!     orders: vec![Order { at_ms: 10 * DAY, revenue: 500.0 }, Order { at_ms: 95 * DAY, revenue: 120.0 }],
//! };
//! assert!(segment.matches(&customer, &EvalContext::at(100 * DAY)));
//! assert!(!segment.matches(&customer, &EvalContext::at(130 * DAY)));
//! ```
//!
//! * [`parse`]`(&str) -> Result<Expr, ParseError>`, [`parse_definition`]`(&str) -> Result<(String, Expr), ParseError>`
//! * [`check`]`(&Expr, &Schema) -> Result<Type, TypeError>`, [`check_segment`]`(&Expr, &Schema) -> Result<(), TypeError>`
//! * [`Program::compile`] / [`Program::compile_segment`]`(&Expr, &Schema) -> Result<Program, TypeError>`, and
//!   the one-call [`compile_segment`] / [`compile_computed`]`(&str, &Schema) -> Result<Program, Error>`
//! * [`Program::evaluate`]`(&self, &P, &EvalContext) -> Scalar`, [`Program::matches`]`(…) -> bool`,
//!   [`Program::result_type`], [`Program::dependencies`]
//! * [`Expr::dependencies`]`() -> Dependencies`, [`find_cycle`]`(&BTreeMap<Reference, Dependencies>) -> Option<Vec<Reference>>`
//! * [`ParseError`] and [`TypeError`] (and [`Error`], either) have `render(source)`: the message, the
//!   source line with carets under the offending token, and for parse errors what was expected there.
//! * `Display` on [`Expr`] prints the canonical spelling, which parses back to the same tree.
//! * [`Scalar::from_json`] / [`Scalar::to_json`] convert to and from `serde_json` values.
//!
//! Evaluation is generic over the host's types, allocates nothing (but for a document count's
//! map of the documents seen), and never panics. Events must come
//! oldest first (windows stop reading at the first event outside them). Strings are looked up by name on
//! every call, so a host backs `trait_value` and `property` with whatever map it already has.
//!
//! # Limits
//!
//! Sources longer than [`MAX_SOURCE_BYTES`] (16 KiB) and nesting deeper than [`MAX_NESTING`] (64 levels
//! of parentheses, `not`, `-`, function arguments and arithmetic operators) are parse errors, so no input
//! can exhaust the stack. `and`/`or` chains are flat and do not count towards the nesting.

mod ast;
mod check;
mod deps;
mod diagnostic;
mod eval;
mod lexer;
mod parser;
mod rewrite;
mod time;
mod value;

pub use ast::{
    BinaryOp, DurationLiteral, EventFunction, EventQuery, EventSelector, Expr, ExprKind, FunnelField, HealthField, Literal,
    DOCUMENT_FIELDS, DOCUMENT_KINDS, DOCUMENT_PROPERTY, DOCUMENT_STATUSES,
};
pub use check::{check, check_segment, Schema, Type};
pub use deps::{find_cycle, Dependencies, Reference};
pub use diagnostic::{line_column, Error, ParseError, Span, TypeError};
pub use eval::{EvalContext, EventView, ProfileView, Program};
pub use parser::{parse, parse_about_event, parse_definition, ADDED_TO_LIST, MAX_NESTING, MAX_SOURCE_BYTES, REMOVED_FROM_LIST};
pub use rewrite::{redacted, rewrite_literals, REDACTED};
pub use time::{civil_from_days, days_from_civil, format_timestamp, parse_duration, parse_timestamp, DurationUnit};
pub use value::Scalar;

/// Parses, checks and compiles a segment's condition.
pub fn compile_segment(source: &str, schema: &Schema) -> Result<Program, Error> {
    Ok(Program::compile_segment(&parse(source)?, schema)?)
}

/// Parses, checks and compiles a computed trait's expression (the part after `name =`); the program's
/// [`result_type`](Program::result_type) is the trait's type.
pub fn compile_computed(source: &str, schema: &Schema) -> Result<Program, Error> {
    Ok(Program::compile(&parse(source)?, schema)?)
}
