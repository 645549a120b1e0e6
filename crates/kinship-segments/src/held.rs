//! Values as the audience holds them: owned, small, and cheap to hand to a program.

use kinship_expr::Scalar;
use serde_json::Value;

/// A trait, property or computed value. Arrays and objects are not comparable in the
/// language; nested objects are flattened into dotted names before they get here.
#[derive(Debug, Clone, PartialEq)]
pub enum Held {
    Null,
    Bool(bool),
    Number(f64),
    Str(Box<str>),
    Date(i64),
    Duration(i64),
}

impl Held {
    pub fn scalar(&self) -> Scalar<'_> {
        match self {
            Held::Null => Scalar::Null,
            Held::Bool(b) => Scalar::Bool(*b),
            Held::Number(n) => Scalar::Number(*n),
            Held::Str(s) => Scalar::Str(s),
            Held::Date(ms) => Scalar::Date(*ms),
            Held::Duration(ms) => Scalar::Duration(*ms),
        }
    }

    pub fn from_scalar(s: Scalar<'_>) -> Held {
        match s {
            Scalar::Null => Held::Null,
            Scalar::Bool(b) => Held::Bool(b),
            Scalar::Number(n) => Held::Number(n),
            Scalar::Str(s) => Held::Str(s.into()),
            Scalar::Date(ms) => Held::Date(ms),
            Scalar::Duration(ms) => Held::Duration(ms),
        }
    }

    pub fn from_json(v: &Value) -> Held {
        Held::from_scalar(Scalar::from_json(v))
    }
}
