//! Runtime values and the operators on them. Every operator is total: a value of the wrong kind (possible
//! only through `Any` traits and properties) makes a comparison false and arithmetic null, never a panic.

use std::cmp::Ordering;

use crate::ast::BinaryOp;
use crate::check::Type;
use crate::time::{format_timestamp, parse_timestamp, DAY_MS};

/// A single value: what the host hands over for traits, computed traits and event properties, and what
/// an expression evaluates to. Strings borrow from the host's profile or from the compiled program.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scalar<'a> {
    Null,
    Bool(bool),
    Number(f64),
    Str(&'a str),
    /// Milliseconds since the Unix epoch, UTC.
    Date(i64),
    /// Milliseconds.
    Duration(i64),
}

impl<'a> Scalar<'a> {
    pub fn is_null(&self) -> bool {
        matches!(self, Scalar::Null)
    }

    /// Only `true` is true: null and values of other kinds count as false.
    pub fn is_true(&self) -> bool {
        matches!(self, Scalar::Bool(true))
    }

    /// The number, or a string holding a finite decimal number (`"12.50"`, surrounding spaces ignored).
    pub fn as_number(&self) -> Option<f64> {
        match self {
            Scalar::Number(value) => Some(*value),
            Scalar::Str(text) => text.trim().parse::<f64>().ok().filter(|value| value.is_finite()),
            _ => None,
        }
    }

    /// The date, or a string holding an ISO-8601 date or timestamp (`"2026-01-31"`, `"2026-01-31T10:00:00Z"`).
    pub fn as_date(&self) -> Option<i64> {
        match self {
            Scalar::Date(milliseconds) => Some(*milliseconds),
            Scalar::Str(text) => parse_timestamp(text.trim()),
            _ => None,
        }
    }

    /// The value's type as the checker names it.
    pub fn type_of(&self) -> Type {
        match self {
            Scalar::Null => Type::Null,
            Scalar::Bool(_) => Type::Bool,
            Scalar::Number(_) => Type::Number,
            Scalar::Str(_) => Type::String,
            Scalar::Date(_) => Type::Date,
            Scalar::Duration(_) => Type::Duration,
        }
    }

    /// A JSON value as a scalar: arrays and objects, which expressions cannot use, are null.
    pub fn from_json(value: &'a serde_json::Value) -> Self {
        match value {
            serde_json::Value::Null | serde_json::Value::Array(_) | serde_json::Value::Object(_) => Scalar::Null,
            serde_json::Value::Bool(value) => Scalar::Bool(*value),
            serde_json::Value::Number(number) => number.as_f64().map_or(Scalar::Null, Scalar::Number),
            serde_json::Value::String(text) => Scalar::Str(text),
        }
    }

    /// The value as JSON, for storing a computed trait: a date becomes its ISO-8601 text (which
    /// [`Scalar::as_date`] reads back), a duration its milliseconds, a non-finite number null.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Scalar::Null => serde_json::Value::Null,
            Scalar::Bool(value) => serde_json::Value::Bool(*value),
            Scalar::Number(value) => serde_json::Number::from_f64(*value).map_or(serde_json::Value::Null, serde_json::Value::Number),
            Scalar::Str(text) => serde_json::Value::String(text.to_string()),
            Scalar::Date(milliseconds) => serde_json::Value::String(format_timestamp(*milliseconds)),
            Scalar::Duration(milliseconds) => serde_json::Value::from(*milliseconds),
        }
    }
}

/// Equality as `==` sees it: null equals only null; a number and a numeric string compare as numbers, a
/// date and an ISO-8601 string as dates; strings compare exactly (case-sensitive); other mixes are unequal.
pub(crate) fn equals(left: Scalar<'_>, right: Scalar<'_>) -> bool {
    match (left, right) {
        (Scalar::Null, Scalar::Null) => true,
        (Scalar::Bool(left), Scalar::Bool(right)) => left == right,
        (Scalar::Str(left), Scalar::Str(right)) => left == right,
        _ => compare(left, right) == Some(Ordering::Equal),
    }
}

/// Ordering as `<` sees it, with the coercions of [`equals`]; `None` when the values do not order.
pub(crate) fn compare(left: Scalar<'_>, right: Scalar<'_>) -> Option<Ordering> {
    match (left, right) {
        (Scalar::Number(left), Scalar::Number(right)) => left.partial_cmp(&right),
        (Scalar::Str(left), Scalar::Str(right)) => Some(left.cmp(right)),
        (Scalar::Date(left), Scalar::Date(right)) | (Scalar::Duration(left), Scalar::Duration(right)) => Some(left.cmp(&right)),
        (Scalar::Number(_), Scalar::Str(_)) | (Scalar::Str(_), Scalar::Number(_)) => left.as_number()?.partial_cmp(&right.as_number()?),
        (Scalar::Date(_), Scalar::Str(_)) | (Scalar::Str(_), Scalar::Date(_)) => Some(left.as_date()?.cmp(&right.as_date()?)),
        _ => None,
    }
}

pub(crate) fn apply(op: BinaryOp, left: Scalar<'_>, right: Scalar<'_>) -> Scalar<'static> {
    let ordered = |accept: fn(Ordering) -> bool| Scalar::Bool(compare(left, right).is_some_and(accept));
    let text = |accept: fn(&str, &str) -> bool| match (left, right) {
        (Scalar::Str(left), Scalar::Str(right)) => Scalar::Bool(accept(left, right)),
        _ => Scalar::Bool(false),
    };
    match op {
        BinaryOp::Equal => Scalar::Bool(equals(left, right)),
        BinaryOp::NotEqual => Scalar::Bool(!equals(left, right)),
        BinaryOp::Less => ordered(Ordering::is_lt),
        BinaryOp::LessEqual => ordered(Ordering::is_le),
        BinaryOp::Greater => ordered(Ordering::is_gt),
        BinaryOp::GreaterEqual => ordered(Ordering::is_ge),
        BinaryOp::StartsWith => text(|left, right| left.starts_with(right)),
        BinaryOp::EndsWith => text(|left, right| left.ends_with(right)),
        BinaryOp::Contains => text(|left, right| left.contains(right)),
        BinaryOp::Add | BinaryOp::Subtract | BinaryOp::Multiply | BinaryOp::Divide => arithmetic(op, left, right),
    }
}

/// Numbers with numbers, dates with durations, durations with durations and numbers; null otherwise, and
/// for division by zero or a result that leaves `i64` milliseconds.
fn arithmetic(op: BinaryOp, left: Scalar<'_>, right: Scalar<'_>) -> Scalar<'static> {
    let number = |value: f64| if value.is_finite() { Scalar::Number(value) } else { Scalar::Null };
    let scaled = |milliseconds: i64, factor: f64| {
        let result = (milliseconds as f64 * factor).round();
        if result.is_finite() && result.abs() < i64::MAX as f64 {
            Scalar::Duration(result as i64)
        } else {
            Scalar::Null
        }
    };
    let checked = |result: Option<i64>, wrap: fn(i64) -> Scalar<'static>| result.map_or(Scalar::Null, wrap);
    match (op, left, right) {
        (BinaryOp::Add, Scalar::Duration(duration), date) | (BinaryOp::Add, date, Scalar::Duration(duration))
            if date.as_date().is_some() =>
        {
            checked(date.as_date().and_then(|date| date.checked_add(duration)), Scalar::Date)
        }
        (BinaryOp::Subtract, date, Scalar::Duration(duration)) if date.as_date().is_some() => {
            checked(date.as_date().and_then(|date| date.checked_sub(duration)), Scalar::Date)
        }
        (BinaryOp::Subtract, Scalar::Date(_), _) | (BinaryOp::Subtract, _, Scalar::Date(_)) => {
            checked(left.as_date().zip(right.as_date()).and_then(|(later, earlier)| later.checked_sub(earlier)), Scalar::Duration)
        }
        (BinaryOp::Add, Scalar::Duration(left), Scalar::Duration(right)) => checked(left.checked_add(right), Scalar::Duration),
        (BinaryOp::Subtract, Scalar::Duration(left), Scalar::Duration(right)) => checked(left.checked_sub(right), Scalar::Duration),
        (BinaryOp::Multiply, Scalar::Duration(duration), factor) | (BinaryOp::Multiply, factor, Scalar::Duration(duration)) => {
            factor.as_number().map_or(Scalar::Null, |factor| scaled(duration, factor))
        }
        (BinaryOp::Divide, Scalar::Duration(duration), divisor) => match divisor.as_number() {
            Some(divisor) if divisor != 0.0 => scaled(duration, 1.0 / divisor),
            _ => Scalar::Null,
        },
        _ => match (left.as_number(), right.as_number()) {
            (Some(left), Some(right)) => match op {
                BinaryOp::Add => number(left + right),
                BinaryOp::Subtract => number(left - right),
                BinaryOp::Multiply => number(left * right),
                _ if right == 0.0 => Scalar::Null,
                _ => number(left / right),
            },
            _ => Scalar::Null,
        },
    }
}

pub(crate) fn negate(value: Scalar<'_>) -> Scalar<'static> {
    match value {
        Scalar::Duration(milliseconds) => milliseconds.checked_neg().map_or(Scalar::Null, Scalar::Duration),
        other => other.as_number().map_or(Scalar::Null, |number| Scalar::Number(-number)),
    }
}

/// Whole days from `date` to `now`, rounded down: 1 ms short of 2 days is 1, and a date 1 ms in the
/// future is -1.
pub(crate) fn days_since(date: Scalar<'_>, now_ms: i64) -> Scalar<'static> {
    date.as_date()
        .and_then(|date| now_ms.checked_sub(date))
        .map_or(Scalar::Null, |elapsed| Scalar::Number(elapsed.div_euclid(DAY_MS) as f64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coercions_apply_only_to_mismatched_kinds() {
        assert!(equals(Scalar::Number(12.5), Scalar::Str(" 12.50 ")));
        assert!(!equals(Scalar::Str("12.5"), Scalar::Str("12.50")), "two strings compare as text");
        assert!(equals(Scalar::Date(0), Scalar::Str("1970-01-01T00:00:00Z")));
        assert!(!equals(Scalar::Bool(true), Scalar::Str("true")));
        assert!(!equals(Scalar::Null, Scalar::Number(0.0)));
        assert_eq!(compare(Scalar::Number(1.0), Scalar::Str("abc")), None);
        assert_eq!(compare(Scalar::Number(f64::NAN), Scalar::Number(1.0)), None);
    }

    #[test]
    fn arithmetic_is_total() {
        assert_eq!(apply(BinaryOp::Divide, Scalar::Number(1.0), Scalar::Number(0.0)), Scalar::Null);
        assert_eq!(apply(BinaryOp::Add, Scalar::Date(i64::MAX), Scalar::Duration(1)), Scalar::Null);
        assert_eq!(apply(BinaryOp::Subtract, Scalar::Date(10), Scalar::Duration(3)), Scalar::Date(7));
        assert_eq!(apply(BinaryOp::Subtract, Scalar::Str("1970-01-02"), Scalar::Date(0)), Scalar::Duration(DAY_MS));
        assert_eq!(apply(BinaryOp::Multiply, Scalar::Number(2.0), Scalar::Duration(5)), Scalar::Duration(10));
        assert_eq!(apply(BinaryOp::Multiply, Scalar::Duration(i64::MAX), Scalar::Number(4.0)), Scalar::Null);
        assert_eq!(apply(BinaryOp::Add, Scalar::Str("2"), Scalar::Number(3.0)), Scalar::Number(5.0));
        assert_eq!(apply(BinaryOp::Add, Scalar::Bool(true), Scalar::Number(3.0)), Scalar::Null);
        assert_eq!(negate(Scalar::Duration(i64::MIN)), Scalar::Null);
    }

    #[test]
    fn days_since_rounds_down() {
        assert_eq!(days_since(Scalar::Date(0), 2 * DAY_MS - 1), Scalar::Number(1.0));
        assert_eq!(days_since(Scalar::Date(0), 2 * DAY_MS), Scalar::Number(2.0));
        assert_eq!(days_since(Scalar::Date(1), 0), Scalar::Number(-1.0));
        assert_eq!(days_since(Scalar::Null, 0), Scalar::Null);
        assert_eq!(days_since(Scalar::Date(i64::MIN), 1), Scalar::Null);
    }
}
