//! Expressions obey the caller's projection: a role may select, count or compute only with
//! what it may read in clear. Otherwise a preview's count is an oracle: `traits.email ==
//! "x"` answering 1 tells a marketer, who sees `x***@…`, the address.

use kinship_policy::{Access, Policy};
use kinship_segments::{Audience, Kind};
use std::collections::BTreeSet;

pub use kinship_expr::redacted;

/// How many values of a trait are looked at to tell whether it holds contact details.
const CLASSIFY_SAMPLE: usize = 200;

/// Why `policy`'s role may not run `expression`: the first field, event or definition it
/// reads that the role may not read in clear, named with the role. An expression that does
/// not parse is let through: defining or previewing it reports the parse error.
pub fn check_readable(audience: &Audience, expression: &str, policy: &Policy) -> Result<(), String> {
    let Ok(mut expr) = kinship_expr::parse(expression) else { return Ok(()) };
    // A role that may not read emails may not write one either: whatever field it compares
    // with, a count answers whether someone has that address.
    let mut quoted = None;
    kinship_expr::rewrite_literals(&mut expr, &mut |literal| {
        if let (None, kinship_expr::Literal::Text(text)) = (&quoted, literal) {
            quoted = contact_kind(text);
        }
        None
    });
    if let Some(kind) = quoted {
        let access = policy.trait_access(kind).max(policy.identifier_access(kind));
        if access != Access::Allow {
            return refused(policy, &format!("a quoted {kind} value"), access_word(access));
        }
    }
    let mut visited = BTreeSet::new();
    check_dependencies(audience, &expr.dependencies(), policy, &mut visited)
}

/// Whether the role may read a stored definition's result, by what the definition reads.
pub fn check_definition_readable(audience: &Audience, kind: Kind, name: &str, policy: &Policy) -> Result<(), String> {
    match audience.dependencies(kind, name) {
        Some(dependencies) => check_dependencies(audience, dependencies, policy, &mut BTreeSet::from([(kind, name.to_string())])),
        None => Ok(()),
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
        let access = policy.trait_access(name);
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
    let references = dependencies.computed.iter().map(|n| (Kind::Computed, n)).chain(dependencies.segments.iter().map(|n| (Kind::Segment, n)));
    for (kind, name) in references {
        if !visited.insert((kind, name.clone())) {
            continue;
        }
        if let Some(inner) = audience.dependencies(kind, name) {
            let label = match kind {
                Kind::Computed => "computed trait",
                Kind::Segment => "segment",
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
    audience.trait_texts(name, CLASSIFY_SAMPLE).iter().find_map(|value| contact_kind(value))
}

/// `"email"` or `"phone"` when `text` holds one.
fn contact_kind(text: &str) -> Option<&'static str> {
    if !kinship_policy::emails_in(text).is_empty() {
        Some("email")
    } else if !kinship_policy::phones_in(text).is_empty() {
        Some("phone")
    } else {
        None
    }
}
