//! The type checker: every mistake that does not depend on a profile's data is reported before anything
//! runs, pointing at the offending sub-expression.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::{self, Display, Formatter};

use serde::{Deserialize, Serialize};

use crate::ast::{BinaryOp, EventFunction, Expr, ExprKind, FunnelField, HealthField, Literal};
use crate::diagnostic::TypeError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Type {
    Bool,
    Number,
    String,
    Date,
    Duration,
    /// A list literal; only the right of `in` takes one.
    List,
    /// The `null` literal.
    Null,
    /// Unknown until run time: traits the schema does not type, and event properties.
    Any,
}

impl Display for Type {
    fn fmt(&self, formatter: &mut Formatter<'_>) -> fmt::Result {
        write!(formatter, "{self:?}")
    }
}

/// What the host knows about the names an expression may use.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schema {
    /// Trait types where known; any other trait is [`Type::Any`].
    pub traits: BTreeMap<String, Type>,
    /// Every computed trait with its type; `computed.x` for any other name is an error.
    pub computed: BTreeMap<String, Type>,
    /// Every segment name; `in_segment("x")` for any other name is an error.
    pub segments: BTreeSet<String>,
    /// Every funnel name; `funnel("x")` for any other name is an error.
    #[serde(default)]
    pub funnels: BTreeSet<String>,
    /// Every health definition's name; `health("x")` for any other name is an error.
    #[serde(default)]
    pub healths: BTreeSet<String>,
}

impl Schema {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_trait(mut self, name: impl Into<String>, trait_type: Type) -> Self {
        self.traits.insert(name.into(), trait_type);
        self
    }

    pub fn with_computed(mut self, name: impl Into<String>, computed_type: Type) -> Self {
        self.computed.insert(name.into(), computed_type);
        self
    }

    pub fn with_segment(mut self, name: impl Into<String>) -> Self {
        self.segments.insert(name.into());
        self
    }

    pub fn with_funnel(mut self, name: impl Into<String>) -> Self {
        self.funnels.insert(name.into());
        self
    }

    pub fn with_health(mut self, name: impl Into<String>) -> Self {
        self.healths.insert(name.into());
        self
    }
}

/// The type `expr` evaluates to: what a computed trait defined by it holds. Event names are not checked:
/// an event nobody has sent yet simply has no occurrences.
pub fn check(expr: &Expr, schema: &Schema) -> Result<Type, TypeError> {
    Checker { schema }.single(expr)
}

/// Checks an expression that defines a segment: it must be a condition (`Bool`, or `Any` that is tested for
/// `true` at run time).
pub fn check_segment(expr: &Expr, schema: &Schema) -> Result<(), TypeError> {
    let found = check(expr, schema)?;
    if !matches!(found, Type::Bool | Type::Any) {
        return Err(TypeError::new(expr.span, format!("a segment must be a condition (Bool), but this is a {found}")));
    }
    Ok(())
}

struct Checker<'a> {
    schema: &'a Schema,
}

fn is_orderable(found: Type) -> bool {
    matches!(found, Type::Number | Type::String | Type::Date | Type::Duration | Type::Any)
}

/// Whether `==` between the two types can ever be true (or is a meaningful null test).
fn comparable_for_equality(left: Type, right: Type) -> bool {
    left == right || matches!(left, Type::Any | Type::Null) || matches!(right, Type::Any | Type::Null)
}

/// The type of `left op right` for an arithmetic operator, `None` when the operator does not apply.
fn arithmetic_type(op: BinaryOp, left: Type, right: Type) -> Option<Type> {
    use Type::{Any, Date, Duration, Number};
    let arithmetic_operand = |found: Type| matches!(found, Number | Date | Duration | Any);
    if (left == Any || right == Any) && arithmetic_operand(left) && arithmetic_operand(right) {
        return Some(Any);
    }
    match (op, left, right) {
        (_, Number, Number) => Some(Number),
        (BinaryOp::Add, Date, Duration) | (BinaryOp::Add, Duration, Date) | (BinaryOp::Subtract, Date, Duration) => Some(Date),
        (BinaryOp::Subtract, Date, Date) => Some(Duration),
        (BinaryOp::Add | BinaryOp::Subtract, Duration, Duration) => Some(Duration),
        (BinaryOp::Multiply, Duration, Number) | (BinaryOp::Multiply, Number, Duration) | (BinaryOp::Divide, Duration, Number) => {
            Some(Duration)
        }
        _ => None,
    }
}

impl Checker<'_> {
    /// The type of an expression that must be a single value, not a list.
    fn single(&self, expr: &Expr) -> Result<Type, TypeError> {
        let found = self.type_of(expr)?;
        if found == Type::List {
            return Err(TypeError::new(
                expr.span,
                "a list can only be used on the right of `in`, as in traits.plan in [\"pro\", \"enterprise\"]",
            ));
        }
        Ok(found)
    }

    /// The type of an operand that must be a condition.
    fn condition(&self, expr: &Expr, context: &str) -> Result<(), TypeError> {
        let found = self.single(expr)?;
        if !matches!(found, Type::Bool | Type::Any) {
            return Err(TypeError::new(expr.span, format!("{context} needs a condition (Bool), but this is a {found}")));
        }
        Ok(())
    }

    fn type_of(&self, expr: &Expr) -> Result<Type, TypeError> {
        Ok(match &expr.kind {
            ExprKind::Literal(literal) => match literal {
                Literal::Null => Type::Null,
                Literal::Bool(_) => Type::Bool,
                Literal::Number(_) => Type::Number,
                Literal::Text(_) => Type::String,
                Literal::Date(_) => Type::Date,
                Literal::Duration(_) => Type::Duration,
            },
            ExprKind::List(items) => {
                self.list_item_type(items)?;
                Type::List
            }
            ExprKind::Trait(name) => self.schema.traits.get(name).copied().unwrap_or(Type::Any),
            ExprKind::Computed(name) => match self.schema.computed.get(name) {
                Some(found) => *found,
                None => return Err(TypeError::new(expr.span, format!("unknown computed trait `{name}`"))),
            },
            ExprKind::Property(_) => Type::Any,
            ExprKind::Not(operand) => {
                self.condition(operand, "`not`")?;
                Type::Bool
            }
            ExprKind::Negate(operand) => match self.single(operand)? {
                found @ (Type::Number | Type::Duration | Type::Any) => found,
                found => return Err(TypeError::new(operand.span, format!("`-` needs a Number or a Duration, but this is a {found}"))),
            },
            ExprKind::And(operands) | ExprKind::Or(operands) => {
                let keyword = if matches!(expr.kind, ExprKind::And(_)) { "`and`" } else { "`or`" };
                for operand in operands {
                    self.condition(operand, keyword)?;
                }
                Type::Bool
            }
            ExprKind::Binary { op, left, right } => self.binary(*op, left, right)?,
            ExprKind::In { value, list, .. } => {
                let value_type = self.single(value)?;
                let ExprKind::List(items) = &list.kind else {
                    return Err(TypeError::new(list.span, "the right of `in` must be a list, as in [\"pro\", \"enterprise\"]"));
                };
                let item_type = self.list_item_type(items)?;
                if !comparable_for_equality(value_type, item_type) {
                    return Err(TypeError::new(list.span, format!("cannot look for a {value_type} in a list of {item_type}")));
                }
                Type::Bool
            }
            ExprKind::Exists(operand) => {
                self.single(operand)?;
                Type::Bool
            }
            ExprKind::DaysSince(operand) => match self.single(operand)? {
                Type::Date | Type::Any => Type::Number,
                found => return Err(TypeError::new(operand.span, format!("`days_since` needs a Date, but this is a {found}"))),
            },
            ExprKind::InSegment { name, name_span } => {
                if !self.schema.segments.contains(name) {
                    return Err(TypeError::new(*name_span, format!("unknown segment `{name}`")));
                }
                Type::Bool
            }
            ExprKind::Now => Type::Date,
            ExprKind::Funnel { name, name_span, field } => {
                if !self.schema.funnels.contains(name) {
                    return Err(TypeError::new(*name_span, format!("unknown funnel `{name}`")));
                }
                match field {
                    FunnelField::Step => Type::Number,
                    FunnelField::Reached => Type::Date,
                    FunnelField::Stuck => Type::Bool,
                }
            }
            ExprKind::Health { name, name_span, field } => {
                if !self.schema.healths.contains(name) {
                    return Err(TypeError::new(*name_span, format!("unknown health definition `{name}`")));
                }
                match field {
                    HealthField::Score => Type::Number,
                    HealthField::Band => Type::String,
                }
            }
            ExprKind::Documents { .. } => Type::Number,
            ExprKind::Events(query) => {
                if let Some(filter) = &query.filter {
                    self.condition(filter, "an event filter")?;
                }
                match query.function {
                    EventFunction::Count | EventFunction::Sum | EventFunction::Avg | EventFunction::Min | EventFunction::Max => {
                        Type::Number
                    }
                    EventFunction::Any => Type::Bool,
                    EventFunction::First | EventFunction::Last => Type::Date,
                }
            }
        })
    }

    /// The one type a list's items share, ignoring `null` and `Any` items (`Any` for an empty list).
    fn list_item_type(&self, items: &[Expr]) -> Result<Type, TypeError> {
        let mut shared = Type::Any;
        for item in items {
            let found = self.single(item)?;
            if matches!(found, Type::Any | Type::Null) {
                continue;
            }
            if shared == Type::Any {
                shared = found;
            } else if found != shared {
                return Err(TypeError::new(item.span, format!("list items must share one type: expected {shared}, found {found}")));
            }
        }
        Ok(shared)
    }

    fn binary(&self, op: BinaryOp, left: &Expr, right: &Expr) -> Result<Type, TypeError> {
        let left_type = self.single(left)?;
        let right_type = self.single(right)?;
        let mismatch = |message: String| Err(TypeError::new(right.span, message));
        match op {
            BinaryOp::Equal | BinaryOp::NotEqual => {
                if !comparable_for_equality(left_type, right_type) {
                    return mismatch(format!("cannot compare {left_type} with {right_type}"));
                }
                Ok(Type::Bool)
            }
            BinaryOp::Less | BinaryOp::LessEqual | BinaryOp::Greater | BinaryOp::GreaterEqual => {
                if !is_orderable(left_type) {
                    return Err(TypeError::new(left.span, format!("`{}` cannot order a {left_type}", op.symbol())));
                }
                if !is_orderable(right_type) || (left_type != right_type && left_type != Type::Any && right_type != Type::Any) {
                    return mismatch(format!("cannot compare {left_type} with {right_type}"));
                }
                Ok(Type::Bool)
            }
            BinaryOp::StartsWith | BinaryOp::EndsWith | BinaryOp::Contains => {
                for (operand, found) in [(left, left_type), (right, right_type)] {
                    if !matches!(found, Type::String | Type::Any) {
                        return Err(TypeError::new(operand.span, format!("`{}` needs a String, but this is a {found}", op.symbol())));
                    }
                }
                Ok(Type::Bool)
            }
            BinaryOp::Add | BinaryOp::Subtract | BinaryOp::Multiply | BinaryOp::Divide => arithmetic_type(op, left_type, right_type)
                .ok_or_else(|| {
                    let operand_ok = |found: Type| matches!(found, Type::Number | Type::Date | Type::Duration | Type::Any);
                    let culprit = if operand_ok(left_type) { right.span } else { left.span };
                    TypeError::new(culprit, format!("cannot apply `{}` to {left_type} and {right_type}", op.symbol()))
                }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse;

    fn type_of(source: &str) -> Result<Type, TypeError> {
        let schema = Schema::new().with_trait("age", Type::Number).with_computed("ltv", Type::Number).with_segment("engaged");
        check(&parse(source).unwrap(), &schema)
    }

    #[test]
    fn infers_result_types() {
        assert_eq!(type_of("sum(\"Order Completed\", revenue)"), Ok(Type::Number));
        assert_eq!(type_of("last(\"Order Completed\")"), Ok(Type::Date));
        assert_eq!(type_of("now() - last(*)"), Ok(Type::Duration));
        assert_eq!(type_of("traits.country"), Ok(Type::Any));
        assert_eq!(type_of("traits.x + 1"), Ok(Type::Any));
        assert_eq!(type_of("computed.ltv > 1000 and in_segment(\"engaged\")"), Ok(Type::Bool));
        assert_eq!(type_of("traits.plan in [\"a\", null, traits.other]"), Ok(Type::Bool));
    }

    #[test]
    fn rejects_mismatches_at_the_offending_operand() {
        let error = type_of("traits.age > \"x\"").unwrap_err();
        assert_eq!((error.span.start, error.message.as_str()), (13, "cannot compare Number with String"));
        let error = type_of("traits.plan in [\"a\", 2]").unwrap_err();
        assert_eq!(error.span.start, 21);
        assert!(type_of("[1, 2]").unwrap_err().message.contains("right of `in`"));
        assert!(type_of("traits.a in traits.b").is_err());
        assert!(type_of("true < false").is_err());
        assert!(type_of("now() + 1").is_err());
        assert!(type_of("count(\"X\", 1)").unwrap_err().message.contains("event filter"));
        assert_eq!(type_of("computed.nope").unwrap_err().message, "unknown computed trait `nope`");
    }

    #[test]
    fn segments_must_be_conditions() {
        let error = check_segment(&parse("count(\"X\")").unwrap(), &Schema::new()).unwrap_err();
        assert_eq!(error.message, "a segment must be a condition (Bool), but this is a Number");
        assert!(check_segment(&parse("traits.vip").unwrap(), &Schema::new()).is_ok());
    }
}
