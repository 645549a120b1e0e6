//! What an expression reads, for incremental re-evaluation, and cycle detection across definitions.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::{self, Display, Formatter};

use serde::{Deserialize, Serialize};

use crate::ast::{EventSelector, Expr, ExprKind, FunnelField};

/// Everything an expression reads. A profile's result can change only when one of these changes, or, when
/// `time_relative` is set, when time passes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dependencies {
    pub traits: BTreeSet<String>,
    pub computed: BTreeSet<String>,
    pub segments: BTreeSet<String>,
    /// Event names read by name.
    pub events: BTreeSet<String>,
    /// Event properties read, in filters or aggregated (`status`, `revenue`).
    #[serde(default)]
    pub properties: BTreeSet<String>,
    /// Funnels whose position is read (`funnel("checkout").step`).
    #[serde(default)]
    pub funnels: BTreeSet<String>,
    /// Health definitions whose score is read (`health("customer").score`).
    #[serde(default)]
    pub healths: BTreeSet<String>,
    /// Whether some event function reads events of every name (`count(*)`).
    pub any_event: bool,
    /// Whether the expression uses a time window, `days_since` or `now()`.
    pub time_relative: bool,
}

impl Dependencies {
    /// Adds what `other` reads: the dependencies of several expressions judged together.
    pub fn absorb(&mut self, other: &Dependencies) {
        self.traits.extend(other.traits.iter().cloned());
        self.computed.extend(other.computed.iter().cloned());
        self.segments.extend(other.segments.iter().cloned());
        self.events.extend(other.events.iter().cloned());
        self.properties.extend(other.properties.iter().cloned());
        self.funnels.extend(other.funnels.iter().cloned());
        self.healths.extend(other.healths.iter().cloned());
        self.any_event |= other.any_event;
        self.time_relative |= other.time_relative;
    }
}

impl Expr {
    /// The traits, computed traits, segments and events this expression reads.
    pub fn dependencies(&self) -> Dependencies {
        let mut dependencies = Dependencies::default();
        collect(self, &mut dependencies);
        dependencies
    }
}

fn collect(expr: &Expr, dependencies: &mut Dependencies) {
    match &expr.kind {
        ExprKind::Literal(_) => {}
        ExprKind::Property(name) => {
            dependencies.properties.insert(name.clone());
        }
        ExprKind::Trait(name) => {
            dependencies.traits.insert(name.clone());
        }
        ExprKind::Computed(name) => {
            dependencies.computed.insert(name.clone());
        }
        ExprKind::InSegment { name, .. } => {
            dependencies.segments.insert(name.clone());
        }
        ExprKind::Now => dependencies.time_relative = true,
        ExprKind::Funnel { name, field, .. } => {
            dependencies.funnels.insert(name.clone());
            // Being stuck is waiting too long: it changes as time passes.
            dependencies.time_relative |= *field == FunnelField::Stuck;
        }
        // Whether a score moves with time depends on its measures: the host knows.
        ExprKind::Health { name, .. } => {
            dependencies.healths.insert(name.clone());
        }
        // Documents ride on events of any name, and an invoice falls overdue as time passes.
        ExprKind::Documents { .. } => {
            dependencies.any_event = true;
            dependencies.time_relative = true;
            dependencies.properties.extend(crate::ast::DOCUMENT_FIELDS.iter().map(|f| f.to_string()));
        }
        ExprKind::DaysSince(operand) => {
            dependencies.time_relative = true;
            collect(operand, dependencies);
        }
        ExprKind::Not(operand) | ExprKind::Negate(operand) | ExprKind::Exists(operand) => collect(operand, dependencies),
        ExprKind::List(operands) | ExprKind::And(operands) | ExprKind::Or(operands) => {
            operands.iter().for_each(|operand| collect(operand, dependencies));
        }
        ExprKind::Binary { left, right, .. } => {
            collect(left, dependencies);
            collect(right, dependencies);
        }
        ExprKind::In { value, list, .. } => {
            collect(value, dependencies);
            collect(list, dependencies);
        }
        ExprKind::Events(query) => {
            match &query.event {
                EventSelector::Named(name) => {
                    dependencies.events.insert(name.clone());
                }
                EventSelector::AnyEvent => dependencies.any_event = true,
            }
            dependencies.time_relative |= query.window.is_some();
            if let Some(property) = &query.property {
                dependencies.properties.insert(property.clone());
            }
            if let Some(filter) = &query.filter {
                collect(filter, dependencies);
            }
        }
    }
}

/// A definition another expression can refer to. Segments and computed traits are separate namespaces,
/// so a segment and a computed trait may share a name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Reference {
    Segment(String),
    Computed(String),
}

impl Display for Reference {
    /// As the expression language spells a reference: `in_segment("engaged")`, `computed.lifetime_value`.
    fn fmt(&self, formatter: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Reference::Segment(name) => write!(formatter, "in_segment({name:?})"),
            Reference::Computed(name) => write!(formatter, "computed.{name}"),
        }
    }
}

/// A cycle of `in_segment` and `computed` references among `definitions`, as the path that closes it:
/// `[a, b, a]` for a that reads b that reads a, `[a, a]` for a definition reading itself. References to
/// names missing from `definitions` lead nowhere. The first cycle in key order is returned, so the answer
/// is deterministic.
pub fn find_cycle(definitions: &BTreeMap<Reference, Dependencies>) -> Option<Vec<Reference>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Visit {
        OnPath,
        Finished,
    }
    let references_of = |dependencies: &Dependencies| -> Vec<Reference> {
        let segments = dependencies.segments.iter().map(|name| Reference::Segment(name.clone()));
        let computed = dependencies.computed.iter().map(|name| Reference::Computed(name.clone()));
        segments.chain(computed).filter(|reference| definitions.contains_key(reference)).collect()
    };
    let mut visits: BTreeMap<&Reference, Visit> = BTreeMap::new();
    for (root, root_dependencies) in definitions {
        if visits.contains_key(root) {
            continue;
        }
        // An explicit stack instead of recursion: definition chains may be long.
        let mut path: Vec<(&Reference, Vec<Reference>)> = vec![(root, references_of(root_dependencies))];
        visits.insert(root, Visit::OnPath);
        while let Some((current, pending)) = path.last_mut() {
            let Some(next) = pending.pop() else {
                visits.insert(*current, Visit::Finished);
                path.pop();
                continue;
            };
            let Some((next, next_dependencies)) = definitions.get_key_value(&next) else { continue };
            match visits.get(next) {
                Some(Visit::Finished) => {}
                Some(Visit::OnPath) => {
                    let start = path.iter().position(|(reference, _)| *reference == next).unwrap_or(0);
                    let mut cycle: Vec<Reference> = path[start..].iter().map(|(reference, _)| (*reference).clone()).collect();
                    cycle.push(next.clone());
                    return Some(cycle);
                }
                None => {
                    visits.insert(next, Visit::OnPath);
                    let mut references = references_of(next_dependencies);
                    // Popped from the back: reverse so references are followed in key order.
                    references.reverse();
                    path.push((next, references));
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse;

    #[test]
    fn collects_every_kind_of_dependency() {
        let expr = parse(
            "traits.country == \"AU\" and computed.ltv > 1 and in_segment(\"vip\") and \
             count(\"Order Completed\", status == traits.wanted, last 90 days) > 1 and last(*) > @2026-01-01",
        )
        .unwrap();
        let dependencies = expr.dependencies();
        assert_eq!(dependencies.traits, BTreeSet::from(["country".to_string(), "wanted".to_string()]));
        assert_eq!(dependencies.computed, BTreeSet::from(["ltv".to_string()]));
        assert_eq!(dependencies.segments, BTreeSet::from(["vip".to_string()]));
        assert_eq!(dependencies.events, BTreeSet::from(["Order Completed".to_string()]));
        assert!(dependencies.any_event && dependencies.time_relative);
        assert!(!parse("last(\"X\") > @2026-01-01").unwrap().dependencies().time_relative);
        assert!(parse("days_since(traits.signup) > 3").unwrap().dependencies().time_relative);
    }
}
