//! Expressions obey the caller's projection: a role may select, count or compute only with
//! what it may read in clear. Otherwise a preview's count is an oracle: `traits.email ==
//! "x"` answering 1 tells a marketer, who sees `x***@…`, the address.

use kinship_policy::{Access, Policy};
use kinship_segments::{Audience, Kind};
use std::collections::BTreeSet;

pub use kinship_expr::redacted;

/// How many values of a trait or property are looked at to tell whether it holds contact
/// details: all of them, up to a bound that keeps a preview quick.
const CLASSIFY_SAMPLE: usize = 1_000_000;

/// Why `policy`'s role may not run `expression`: the first field, event or definition it
/// reads that the role may not read in clear, named with the role. An expression that does
/// not parse is let through: defining or previewing it reports the parse error.
pub fn check_readable(audience: &Audience, expression: &str, policy: &Policy) -> Result<(), String> {
    let Ok(mut expr) = kinship_expr::parse(expression) else { return Ok(()) };
    // `exists(traits.email)` asks only what a masked value shows: that there is one.
    let mut dependencies = expr.dependencies();
    let mut compared = BTreeSet::new();
    traits_read_for_value(&expr, &mut compared);
    for name in dependencies.traits.iter().filter(|name| !compared.contains(*name)) {
        let access = policy.nested_trait_access(name);
        if access == Access::Hide {
            return refused(policy, &format!("`traits.{name}`"), access_word(access));
        }
    }
    dependencies.traits = compared;
    let mut visited = BTreeSet::new();
    check_dependencies(audience, &dependencies, policy, &mut visited)?;
    // A role that may not read emails may not write one either: whatever field it compares
    // with, a count answers whether someone has that address.
    if let Some(kind) = quoted_contact(&mut expr) {
        let access = policy.trait_access(kind).max(policy.identifier_access(kind));
        if access != Access::Allow {
            return refused(policy, &format!("a quoted {kind} value"), access_word(access));
        }
    }
    Ok(())
}

/// `"email"` or `"phone"` when some literal of `expr` quotes one.
pub(crate) fn quoted_contact(expr: &mut kinship_expr::Expr) -> Option<&'static str> {
    let mut quoted = None;
    kinship_expr::rewrite_literals(expr, &mut |literal| {
        if quoted.is_none() {
            quoted = match literal {
                kinship_expr::Literal::Text(text) => contact_kind(text),
                // A phone number written as a number: `traits.phone == 61412345678`.
                kinship_expr::Literal::Number(n) if n.abs() >= 1e6 => Some("phone"),
                _ => None,
            };
        }
        None
    });
    quoted
}

/// The traits `expr` reads for their value: every one but those only tested by `exists`.
fn traits_read_for_value(expr: &kinship_expr::Expr, out: &mut BTreeSet<String>) {
    use kinship_expr::ExprKind;
    match &expr.kind {
        ExprKind::Exists(operand) if matches!(operand.kind, ExprKind::Trait(_)) => {}
        ExprKind::Trait(name) => {
            out.insert(name.clone());
        }
        ExprKind::Literal(_)
        | ExprKind::Computed(_)
        | ExprKind::Property(_)
        | ExprKind::InSegment { .. }
        | ExprKind::Funnel { .. }
        | ExprKind::Health { .. }
        | ExprKind::Documents { .. }
        | ExprKind::Now => {}
        ExprKind::Not(operand) | ExprKind::Negate(operand) | ExprKind::Exists(operand) | ExprKind::DaysSince(operand) => {
            traits_read_for_value(operand, out)
        }
        ExprKind::List(operands) | ExprKind::And(operands) | ExprKind::Or(operands) => {
            operands.iter().for_each(|operand| traits_read_for_value(operand, out))
        }
        ExprKind::Binary { left, right, .. } => {
            traits_read_for_value(left, out);
            traits_read_for_value(right, out);
        }
        ExprKind::In { value, list, .. } => {
            traits_read_for_value(value, out);
            traits_read_for_value(list, out);
        }
        ExprKind::Events(query) => {
            if let Some(filter) = &query.filter {
                traits_read_for_value(filter, out);
            }
        }
    }
}

/// Whether the role may read a stored definition's result, by what the definition reads.
pub fn check_definition_readable(audience: &Audience, kind: Kind, name: &str, policy: &Policy) -> Result<(), String> {
    match kind {
        Kind::Segment | Kind::Computed => match audience.expression(kind, name) {
            Some(expression) => check_readable(audience, expression, policy),
            None => Ok(()),
        },
        // Funnels and health definitions are TOML, not one expression: what all their
        // expressions read together is checked.
        Kind::Funnel | Kind::Health => match audience.dependencies(kind, name) {
            Some(dependencies) => check_dependencies(audience, dependencies, policy, &mut BTreeSet::new()),
            None => Ok(()),
        },
    }
}

fn refused(policy: &Policy, what: &str, access: &str) -> Result<(), String> {
    Err(format!(
        "role `{}` may not use {what} in an expression: it sees it {access}, and a count or selection over it would reveal it (see `[roles]` in kinship.toml)",
        policy.name()
    ))
}

fn access_word(access: Access) -> &'static str {
    match access {
        Access::Allow => "in clear",
        Access::Mask => "masked",
        Access::Pseudonym => "as a pseudonym",
        Access::Hide => "not at all",
    }
}

fn check_dependencies(
    audience: &Audience,
    dependencies: &kinship_expr::Dependencies,
    policy: &Policy,
    visited: &mut BTreeSet<(Kind, String)>,
) -> Result<(), String> {
    for name in &dependencies.traits {
        let access = policy.nested_trait_access(name);
        if access != Access::Allow {
            return refused(policy, &format!("`traits.{name}`"), access_word(access));
        }
        if let Some(kind) = holds_contact_details(audience, name) {
            let access = policy.trait_access(kind).max(policy.identifier_access(kind));
            if access != Access::Allow {
                return refused(policy, &format!("`traits.{name}` (its values are {kind} details)"), access_word(access));
            }
        }
    }
    for property in &dependencies.properties {
        let access = policy.property_access(property);
        if access != Access::Allow {
            return refused(policy, &format!("event property `{property}`"), access_word(access));
        }
        // A URL property holding `?email=…` answers `starts_with` one character at a time.
        let kind = audience.find_property_text(property, CLASSIFY_SAMPLE, contact_kind);
        if let Some(kind) = kind {
            let access = policy.trait_access(kind).max(policy.identifier_access(kind));
            if access != Access::Allow {
                return refused(policy, &format!("event property `{property}` (its values hold {kind} details)"), access_word(access));
            }
        }
    }
    for event in &dependencies.events {
        if !policy.event_visible(event) {
            return refused(policy, &format!("events `{event}`"), "not at all");
        }
    }
    if dependencies.any_event && !policy.sees_every_event() {
        return refused(policy, "events of every name (`*`)", "only in part");
    }
    if !dependencies.computed.is_empty() && !policy.sees_computed() {
        return refused(policy, "computed traits", "not at all");
    }
    let references = dependencies
        .computed
        .iter()
        .map(|n| (Kind::Computed, n))
        .chain(dependencies.segments.iter().map(|n| (Kind::Segment, n)))
        .chain(dependencies.funnels.iter().map(|n| (Kind::Funnel, n)))
        .chain(dependencies.healths.iter().map(|n| (Kind::Health, n)));
    for (kind, name) in references {
        if !visited.insert((kind, name.clone())) {
            continue;
        }
        if let Some(inner) = audience.dependencies(kind, name) {
            let label = match kind {
                Kind::Computed => "computed trait",
                Kind::Segment => "segment",
                Kind::Funnel => "funnel",
                Kind::Health => "health definition",
            };
            check_dependencies(audience, inner, policy, visited)
                .map_err(|reason| format!("{label} `{name}` reads what this role may not: {reason}"))?;
        }
    }
    Ok(())
}

/// `"email"` or `"phone"` when some of the trait's values hold an email address or phone
/// number, whatever the trait is called (`contact`, `reach_me`).
fn holds_contact_details(audience: &Audience, name: &str) -> Option<&'static str> {
    audience.find_trait_text(name, CLASSIFY_SAMPLE, contact_kind)
}

/// `"email"` or `"phone"` when `text` holds one.
fn contact_kind(text: &str) -> Option<&'static str> {
    // Most values are neither: rule them out without the scanners' allocations.
    let maybe_email = text.contains(['@', '%']);
    let maybe_phone = text.bytes().filter(u8::is_ascii_digit).count() >= 8;
    if maybe_email && !kinship_policy::emails_in(text).is_empty() {
        Some("email")
    } else if maybe_phone && !kinship_policy::phones_in(text).is_empty() {
        Some("phone")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marketer() -> Policy {
        Policy::builtin("marketer").expect("a built-in role")
    }

    #[test]
    fn a_field_inside_a_masked_one_is_masked_too() {
        let audience = Audience::new();
        let refused = check_readable(&audience, "traits.phone.number > 61400000", &marketer()).unwrap_err();
        assert!(refused.contains("traits.phone.number") && refused.contains("marketer"), "{refused}");
        assert!(check_readable(&audience, r#"traits.address.city == "Perth""#, &marketer()).is_err());
        assert!(check_readable(&audience, r#"traits.city == "Perth""#, &marketer()).is_ok());
    }

    #[test]
    fn quoted_contact_details_are_refused_whatever_they_are_compared_with() {
        let audience = Audience::new();
        for expression in [r#"traits.city == "a@b.co""#, "traits.lead_score == 61412345678", r#"traits.city in ["x", "0412 345 678"]"#] {
            assert!(check_readable(&audience, expression, &marketer()).is_err(), "{expression}");
        }
        let admin = Policy::builtin("admin").expect("a built-in role");
        assert!(check_readable(&audience, r#"traits.email == "a@b.co""#, &admin).is_ok());
        assert!(check_readable(&audience, "exists(traits.email)", &marketer()).is_ok(), "a masked value shows that it exists");
    }

    #[test]
    fn a_segment_over_a_funnel_reads_what_the_funnels_steps_read() {
        let mut audience = Audience::new();
        let funnel = "name = \"signup\"\n[[steps]]\nevent = \"Page Viewed\"\nwhere = 'email ends_with \".gov.au\"'\n[[steps]]\nevent = \"Signed Up\"\n";
        let source = kinship_segments::DefinitionSource { kind: Kind::Funnel, name: "signup".into(), expression: funnel.into() };
        audience.define(source, 0).unwrap();
        let analyst = Policy::builtin("analyst").expect("a built-in role");
        let admin = Policy::builtin("admin").expect("a built-in role");
        // The analyst may not read emails in clear, so it may not count profiles by a funnel
        // whose step filters on them either.
        assert!(analyst.property_access("email") != Access::Allow, "the built-in analyst hides emails");
        let refused = check_readable(&audience, r#"funnel("signup").step >= 1"#, &analyst).unwrap_err();
        assert!(refused.contains("funnel `signup`") && refused.contains("email"), "{refused}");
        assert!(check_readable(&audience, r#"funnel("signup").step >= 1"#, &admin).is_ok());
    }
}
