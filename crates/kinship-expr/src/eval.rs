//! Compiled programs and their evaluation against a host's profiles.
//!
//! A [`Program`] is checked once and lowered to a tree of [`Node`]s holding only what evaluation needs
//! (no spans, windows in milliseconds, constants ready to hand out). Evaluation is generic over the host's
//! [`ProfileView`], so it is statically dispatched, reads events through the host's own iterator and
//! allocates nothing, but for a document count's map of the documents seen.

use crate::ast::{BinaryOp, EventFunction, EventSelector, Expr, ExprKind, FunnelField, HealthField, Literal};
use crate::check::{check, check_segment, Schema, Type};
use crate::deps::Dependencies;
use crate::diagnostic::TypeError;
use crate::value::{apply, days_since, equals, negate, Scalar};

/// One event as the host stores it.
pub trait EventView {
    fn timestamp_ms(&self) -> i64;
    /// The property's value, [`Scalar::Null`] when absent. Dotted names (`address.city`) arrive whole.
    fn property(&self, name: &str) -> Scalar<'_>;
}

/// One profile as the host stores it.
pub trait ProfileView {
    type Event: EventView;

    /// The trait's value, [`Scalar::Null`] when absent. Dotted names (`address.city`) arrive whole.
    fn trait_value(&self, name: &str) -> Scalar<'_>;
    /// The computed trait's current value, [`Scalar::Null`] when absent.
    fn computed(&self, name: &str) -> Scalar<'_>;
    fn in_segment(&self, name: &str) -> bool;
    /// Where the profile stands in funnel `name`. A host that defines no funnels keeps this
    /// default: its schema names none, so no checked program asks.
    fn funnel(&self, _name: &str, _field: FunnelField, _now_ms: i64) -> Scalar<'_> {
        Scalar::Null
    }
    /// The profile's health under definition `name`; the default, for hosts without health
    /// definitions, is null (their schema names none).
    fn health(&self, _name: &str, _field: HealthField, _now_ms: i64) -> Scalar<'_> {
        Scalar::Null
    }
    /// The name of one of the profile's events (a funnel's steps match on it).
    fn event_name<'a>(&'a self, event: &'a Self::Event) -> &'a str;
    /// The profile's events named `name`, or all its events for `None`, oldest first. Time windows rely
    /// on the order: they stop reading at the first event outside the window.
    fn events<'a>(&'a self, name: Option<&'a str>) -> impl DoubleEndedIterator<Item = &'a Self::Event> + 'a;
}

/// What evaluation needs besides the profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EvalContext {
    /// The instant windows, `days_since` and `now()` measure from, in milliseconds since the Unix epoch.
    pub now_ms: i64,
}

impl EvalContext {
    pub fn at(now_ms: i64) -> Self {
        Self { now_ms }
    }
}

/// A checked expression, ready to evaluate against any number of profiles. `Send + Sync`: share one
/// across threads.
#[derive(Debug, Clone)]
pub struct Program {
    root: Node,
    result_type: Type,
    dependencies: Dependencies,
}

impl Program {
    /// Checks and compiles an expression of any type, such as a computed trait's.
    pub fn compile(expr: &Expr, schema: &Schema) -> Result<Self, TypeError> {
        let result_type = check(expr, schema)?;
        Ok(Self { root: lower(expr), result_type, dependencies: expr.dependencies() })
    }

    /// Checks and compiles a segment's condition.
    pub fn compile_segment(expr: &Expr, schema: &Schema) -> Result<Self, TypeError> {
        check_segment(expr, schema)?;
        Self::compile(expr, schema)
    }

    /// The type every evaluation returns (or null).
    pub fn result_type(&self) -> Type {
        self.result_type
    }

    pub fn dependencies(&self) -> &Dependencies {
        &self.dependencies
    }

    /// The expression's value for one profile.
    pub fn evaluate<'a, P: ProfileView>(&'a self, profile: &'a P, context: &EvalContext) -> Scalar<'a> {
        Evaluation { profile, now_ms: context.now_ms }.value(&self.root, None)
    }

    /// The value of an expression about one event ([`parse_about_event`](crate::parse_about_event)):
    /// bare names outside event functions read `event`.
    pub fn evaluate_on<'a, P: ProfileView>(&'a self, profile: &'a P, event: &'a P::Event, context: &EvalContext) -> Scalar<'a> {
        Evaluation { profile, now_ms: context.now_ms }.value(&self.root, Some(event))
    }

    /// Whether the profile is in the segment: the value is `true` (null and anything else is not).
    pub fn matches<P: ProfileView>(&self, profile: &P, context: &EvalContext) -> bool {
        self.evaluate(profile, context).is_true()
    }
}

#[derive(Debug, Clone)]
enum Node {
    Constant(Constant),
    Trait(Box<str>),
    Computed(Box<str>),
    Property(Box<str>),
    InSegment(Box<str>),
    Funnel(Box<str>, FunnelField),
    Health(Box<str>, HealthField),
    /// (status, kind) of `overdue invoices`.
    Documents(&'static str, &'static str),
    Now,
    Not(Box<Node>),
    Negate(Box<Node>),
    And(Box<[Node]>),
    Or(Box<[Node]>),
    Binary(BinaryOp, Box<Node>, Box<Node>),
    In {
        value: Box<Node>,
        list: Box<[Node]>,
        negated: bool,
    },
    Exists(Box<Node>),
    DaysSince(Box<Node>),
    Events(Box<EventNode>),
}

/// An owned [`Scalar`], for literals.
#[derive(Debug, Clone)]
enum Constant {
    Null,
    Bool(bool),
    Number(f64),
    Text(Box<str>),
    Date(i64),
    Duration(i64),
}

impl Constant {
    fn as_scalar(&self) -> Scalar<'_> {
        match self {
            Constant::Null => Scalar::Null,
            Constant::Bool(value) => Scalar::Bool(*value),
            Constant::Number(value) => Scalar::Number(*value),
            Constant::Text(text) => Scalar::Str(text),
            Constant::Date(milliseconds) => Scalar::Date(*milliseconds),
            Constant::Duration(milliseconds) => Scalar::Duration(*milliseconds),
        }
    }
}

#[derive(Debug, Clone)]
struct EventNode {
    function: EventFunction,
    /// `None` for every event name.
    event: Option<Box<str>>,
    property: Option<Box<str>>,
    filter: Option<Node>,
    window_ms: Option<i64>,
}

fn lower_all(exprs: &[Expr]) -> Box<[Node]> {
    exprs.iter().map(lower).collect()
}

fn lower(expr: &Expr) -> Node {
    let boxed = |expr: &Expr| Box::new(lower(expr));
    match &expr.kind {
        ExprKind::Literal(literal) => Node::Constant(match literal {
            Literal::Null => Constant::Null,
            Literal::Bool(value) => Constant::Bool(*value),
            Literal::Number(value) => Constant::Number(*value),
            Literal::Text(text) => Constant::Text(text.as_str().into()),
            Literal::Date(milliseconds) => Constant::Date(*milliseconds),
            Literal::Duration(duration) => Constant::Duration(duration.milliseconds()),
        }),
        // The checker allows lists only on the right of `in`, which lowers their items itself.
        ExprKind::List(_) => Node::Constant(Constant::Null),
        ExprKind::Trait(name) => Node::Trait(name.as_str().into()),
        ExprKind::Computed(name) => Node::Computed(name.as_str().into()),
        ExprKind::Property(name) => Node::Property(name.as_str().into()),
        ExprKind::InSegment { name, .. } => Node::InSegment(name.as_str().into()),
        ExprKind::Funnel { name, field, .. } => Node::Funnel(name.as_str().into(), *field),
        ExprKind::Health { name, field, .. } => Node::Health(name.as_str().into(), *field),
        ExprKind::Documents { status, kind } => Node::Documents(status, kind),
        ExprKind::Now => Node::Now,
        ExprKind::Not(operand) => Node::Not(boxed(operand)),
        ExprKind::Negate(operand) => Node::Negate(boxed(operand)),
        ExprKind::And(operands) => Node::And(lower_all(operands)),
        ExprKind::Or(operands) => Node::Or(lower_all(operands)),
        ExprKind::Binary { op, left, right } => Node::Binary(*op, boxed(left), boxed(right)),
        ExprKind::In { value, list, negated } => {
            let items = match &list.kind {
                ExprKind::List(items) => lower_all(items),
                _ => Box::new([lower(list)]),
            };
            Node::In { value: boxed(value), list: items, negated: *negated }
        }
        ExprKind::Exists(operand) => Node::Exists(boxed(operand)),
        ExprKind::DaysSince(operand) => Node::DaysSince(boxed(operand)),
        ExprKind::Events(query) => Node::Events(Box::new(EventNode {
            function: query.function,
            event: match &query.event {
                EventSelector::Named(name) => Some(name.as_str().into()),
                EventSelector::AnyEvent => None,
            },
            property: query.property.as_deref().map(Into::into),
            filter: query.filter.as_ref().map(lower),
            window_ms: query.window.map(|window| window.milliseconds()),
        })),
    }
}

struct Evaluation<'a, P> {
    profile: &'a P,
    now_ms: i64,
}

impl<'a, P: ProfileView> Evaluation<'a, P> {
    /// The node's value; `event` is the event an event filter is looking at.
    fn value(&self, node: &'a Node, event: Option<&'a P::Event>) -> Scalar<'a> {
        match node {
            Node::Constant(constant) => constant.as_scalar(),
            Node::Trait(name) => self.profile.trait_value(name),
            Node::Computed(name) => self.profile.computed(name),
            Node::Property(name) => event.map_or(Scalar::Null, |event| event.property(name)),
            Node::InSegment(name) => Scalar::Bool(self.profile.in_segment(name)),
            Node::Funnel(name, field) => self.profile.funnel(name, *field, self.now_ms),
            Node::Health(name, field) => self.profile.health(name, *field, self.now_ms),
            Node::Documents(status, kind) => Scalar::Number(self.documents(status, kind) as f64),
            Node::Now => Scalar::Date(self.now_ms),
            Node::Not(operand) => Scalar::Bool(!self.value(operand, event).is_true()),
            Node::Negate(operand) => negate(self.value(operand, event)),
            Node::And(operands) => Scalar::Bool(operands.iter().all(|operand| self.value(operand, event).is_true())),
            Node::Or(operands) => Scalar::Bool(operands.iter().any(|operand| self.value(operand, event).is_true())),
            Node::Binary(op, left, right) => apply(*op, self.value(left, event), self.value(right, event)),
            Node::In { value, list, negated } => {
                let value = self.value(value, event);
                let found = list.iter().any(|item| equals(value, self.value(item, event)));
                Scalar::Bool(found != *negated)
            }
            Node::Exists(operand) => Scalar::Bool(!self.value(operand, event).is_null()),
            Node::DaysSince(operand) => days_since(self.value(operand, event), self.now_ms),
            Node::Events(query) => self.events(query),
        }
    }

    /// How many documents of `kind` are in `status` now: each document (by source and
    /// number) counted once, its latest version (its newest event up to now) deciding, and an
    /// invoice still `invoiced` past its due time overdue. The one evaluation that allocates:
    /// a map of the documents seen.
    fn documents(&self, status: &str, kind: &str) -> usize {
        use crate::ast::document_field as field;
        let mut latest: std::collections::HashMap<(&'a str, &'a str), (&'a str, Option<f64>)> = std::collections::HashMap::new();
        for event in self.profile.events(None).take_while(|e| e.timestamp_ms() <= self.now_ms) {
            if !matches!(event.property(field("kind")), Scalar::Str(k) if k == kind) {
                continue;
            }
            let (Scalar::Str(number), Scalar::Str(stated)) = (event.property(field("number")), event.property(field("status"))) else {
                continue;
            };
            let source = match event.property(field("source")) {
                Scalar::Str(source) => source,
                _ => "",
            };
            let due = match event.property(field("due")) {
                Scalar::Number(ms) => Some(ms),
                _ => None,
            };
            latest.insert((source, number), (stated, due));
        }
        let now = self.now_ms as f64;
        latest
            .values()
            .filter(|(stated, due)| {
                let overdue = *stated == "overdue" || (*stated == "invoiced" && due.is_some_and(|d| d < now));
                match status {
                    "overdue" => overdue,
                    "invoiced" => *stated == "invoiced" && !overdue,
                    "unpaid" => *stated == "invoiced" || *stated == "overdue",
                    other => *stated == other,
                }
            })
            .count()
    }

    /// Reads the events a query selects, newest first (oldest first for `first`, so it can stop at the
    /// first match), inside the window `(now - window, now]` when there is one.
    fn events(&self, query: &'a EventNode) -> Scalar<'a> {
        let events = self.profile.events(query.event.as_deref());
        let now = self.now_ms;
        match (query.function, query.window_ms) {
            (EventFunction::First, None) => self.aggregate(query, events),
            (EventFunction::First, Some(window)) => {
                let start = now.saturating_sub(window);
                self.aggregate(
                    query,
                    events.skip_while(|event| event.timestamp_ms() <= start).take_while(|event| event.timestamp_ms() <= now),
                )
            }
            (_, None) => self.aggregate(query, events.rev()),
            (_, Some(window)) => {
                let start = now.saturating_sub(window);
                let newest_first = events.rev();
                self.aggregate(
                    query,
                    newest_first.skip_while(|event| event.timestamp_ms() > now).take_while(|event| event.timestamp_ms() > start),
                )
            }
        }
    }

    fn aggregate(&self, query: &'a EventNode, events: impl Iterator<Item = &'a P::Event>) -> Scalar<'a> {
        let mut matching = events.filter(|event| query.filter.as_ref().is_none_or(|filter| self.value(filter, Some(event)).is_true()));
        let property = query.property.as_deref().unwrap_or_default();
        let numbers = |event: &'a P::Event| event.property(property).as_number();
        match query.function {
            EventFunction::Count => Scalar::Number(matching.count() as f64),
            EventFunction::Any => Scalar::Bool(matching.next().is_some()),
            // `first` reads oldest first and `last` newest first, so both want the first match.
            EventFunction::First | EventFunction::Last => matching.next().map_or(Scalar::Null, |event| Scalar::Date(event.timestamp_ms())),
            EventFunction::Sum => Scalar::Number(matching.filter_map(numbers).sum()),
            EventFunction::Avg => {
                let (total, count) = matching.filter_map(numbers).fold((0.0, 0_u64), |(total, count), value| (total + value, count + 1));
                if count == 0 {
                    Scalar::Null
                } else {
                    Scalar::Number(total / count as f64)
                }
            }
            EventFunction::Min => matching.filter_map(numbers).reduce(f64::min).map_or(Scalar::Null, Scalar::Number),
            EventFunction::Max => matching.filter_map(numbers).reduce(f64::max).map_or(Scalar::Null, Scalar::Number),
        }
    }
}
