//! Rewriting an expression's literals: the audit log keeps expressions with their values
//! redacted, and erasure rewrites stored definitions that quote an erased person's details.

use crate::ast::{EventQuery, EventSelector, Expr, ExprKind, Literal};
use crate::parser::parse;

/// What a redacted literal is shown as.
pub const REDACTED: &str = "<redacted>";

/// Numbers with at least this many digits may be phone numbers or account ids.
const IDENTIFYING_DIGITS: usize = 7;

/// Replaces every literal for which `replace` returns a new one (in lists, filters and
/// every operand); returns how many were replaced.
pub fn rewrite_literals(expr: &mut Expr, replace: &mut impl FnMut(&Literal) -> Option<Literal>) -> usize {
    let mut replaced = 0;
    walk(
        expr,
        &mut |literal| {
            if let Some(new) = replace(literal) {
                *literal = new;
                replaced += 1;
            }
        },
        &mut |_| {},
    );
    replaced
}

/// Visits every literal and every event query (`count("Order Completed", ...)`) of `expr`.
fn walk(expr: &mut Expr, visit: &mut impl FnMut(&mut Literal), query: &mut impl FnMut(&mut EventQuery)) {
    match &mut expr.kind {
        ExprKind::Literal(literal) => visit(literal),
        ExprKind::Trait(_)
        | ExprKind::Computed(_)
        | ExprKind::Property(_)
        | ExprKind::InSegment { .. }
        | ExprKind::Funnel { .. }
        | ExprKind::Health { .. }
        | ExprKind::Documents { .. }
        | ExprKind::Now => {}
        ExprKind::Not(operand) | ExprKind::Negate(operand) | ExprKind::Exists(operand) | ExprKind::DaysSince(operand) => {
            walk(operand, visit, query)
        }
        ExprKind::List(operands) | ExprKind::And(operands) | ExprKind::Or(operands) => {
            operands.iter_mut().for_each(|o| walk(o, visit, query))
        }
        ExprKind::Binary { left, right, .. } => {
            walk(left, visit, query);
            walk(right, visit, query);
        }
        ExprKind::In { value, list, .. } => {
            walk(value, visit, query);
            walk(list, visit, query);
        }
        ExprKind::Events(events) => {
            query(events);
            if let Some(filter) = &mut events.filter {
                walk(filter, visit, query);
            }
        }
    }
}

/// `source` with every text literal, and every number long enough to be a phone number,
/// shown as `"<redacted>"`: the form in which expressions are written to the audit log, so
/// that it never holds a person's email or phone. What the expression reads (traits,
/// events, segments) and its shape stay readable; an event name stays too, unless it could
/// hold a contact detail (an `@`, or as many digits as a phone number). Text that does not
/// parse is redacted whole.
pub fn redacted(source: &str) -> String {
    let Ok(mut expr) = parse(source) else { return format!("{REDACTED} (an expression that does not parse)") };
    walk(
        &mut expr,
        &mut |literal| match literal {
            Literal::Text(_) => *literal = Literal::Text(REDACTED.to_string()),
            Literal::Number(n) if n.abs().trunc().to_string().len() >= IDENTIFYING_DIGITS => *literal = Literal::Text(REDACTED.to_string()),
            _ => {}
        },
        &mut |query| {
            if let EventSelector::Named(name) = &mut query.event {
                if name.contains('@') || name.chars().filter(char::is_ascii_digit).count() >= IDENTIFYING_DIGITS {
                    *name = REDACTED.to_string();
                }
            }
        },
    );
    expr.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_redacted_and_the_shape_kept() {
        assert_eq!(
            redacted(r#"traits.email == "zara@x.com" or traits.phone in ["0429 111 222", 61429111222] and traits.age > 30"#),
            r#"traits.email == "<redacted>" or traits.phone in ["<redacted>", "<redacted>"] and traits.age > 30"#
        );
        assert_eq!(
            redacted(r#"count("Order Completed", email == "a@b.c") >= 2"#),
            r#"count("Order Completed", email == "<redacted>") >= 2"#
        );
        assert!(!redacted("traits.email == \"a@b.c").contains("a@b.c"));
        // An event name is what the expression reads, unless it could be someone's address or number.
        assert_eq!(
            redacted(r#"any("Quote for zara@x.com") or count("Call 0429 111 222 back") > 0 or any("Signed Up")"#),
            r#"any("<redacted>") or count("<redacted>") > 0 or any("Signed Up")"#
        );
    }
}
