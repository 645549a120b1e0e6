//! Custom roles from the configuration (`[roles.NAME]` in `kinship.toml`) and the set of
//! roles a host serves.

use crate::glob::Glob;
use crate::mask::MaskStyle;
use crate::policy::{Access, Capability, FieldRules, Policy, RecordAccess, BUILTIN_ROLES};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Rules for one kind of name: `{ default = "allow", rules = { email = "mask", "*_score" = "hide" } }`.
/// Patterns are case-insensitive globs (`*`, `?`); an exact name beats a pattern, a pattern
/// pinning more characters beats one pinning fewer, and at equal specificity the stricter
/// access wins. A role's rules are consulted before those of the role it extends.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RulesConfig {
    /// For names no rule matches; inherited when absent.
    pub default: Option<Access>,
    pub rules: BTreeMap<String, Access>,
}

impl RulesConfig {
    fn over(&self, base: FieldRules) -> FieldRules {
        let mut rules = base.layered(self.rules.iter().map(|(pattern, &access)| (pattern.as_str(), access)));
        if let Some(default) = self.default {
            rules.default = default;
        }
        rules
    }
}

/// One custom role. Every setting left out is inherited from `extends`; a role that extends
/// nothing starts from a role that may do and see nothing. A role named like a built-in
/// refines that built-in.
///
/// ```toml
/// [roles.support_lead]
/// extends = "support"
/// capabilities = ["read_profiles", "search_profiles", "explain_profiles", "read_sources", "read_audit"]
/// records = "raw"
/// traits = { rules = { lead_score = "allow" } }
/// ```
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RoleConfig {
    /// The role this one starts from: a built-in or another custom role.
    pub extends: Option<String>,
    /// Replaces the inherited capabilities when given.
    pub capabilities: Option<BTreeSet<Capability>>,
    pub traits: RulesConfig,
    pub identifiers: RulesConfig,
    /// Identifier kind → how its values are masked, e.g. `{ crm_id = "full" }`.
    pub identifier_masks: BTreeMap<String, MaskStyle>,
    /// Event names (or patterns) the role sees; replaces the inherited list. `["*"]` is all.
    pub events: Option<Vec<String>>,
    pub event_properties: RulesConfig,
    pub records: Option<RecordAccess>,
    pub computed: Option<bool>,
    pub segments: Option<bool>,
    pub consent: Option<bool>,
    pub pseudonymous: Option<bool>,
    /// More field patterns to treat as direct identifiers in pseudonymous mode (added to
    /// the inherited ones).
    pub direct_identifiers: Vec<String>,
}

impl RoleConfig {
    fn apply(&self, name: &str, base: Policy) -> Policy {
        let mut identifier_masks = base.identifier_masks;
        identifier_masks.extend(self.identifier_masks.iter().map(|(kind, &style)| (kind.to_lowercase(), style)));
        let mut direct_identifiers = base.direct_identifiers;
        direct_identifiers.extend(self.direct_identifiers.iter().map(|p| Glob::new(p)));
        Policy {
            name: name.to_string(),
            capabilities: self.capabilities.clone().unwrap_or(base.capabilities),
            traits: self.traits.over(base.traits),
            identifiers: self.identifiers.over(base.identifiers),
            identifier_masks,
            events: self.events.as_ref().map_or(base.events, |events| events.iter().map(|e| Glob::new(e)).collect()),
            event_properties: self.event_properties.over(base.event_properties),
            records: self.records.unwrap_or(base.records),
            computed: self.computed.unwrap_or(base.computed),
            segments: self.segments.unwrap_or(base.segments),
            consent: self.consent.unwrap_or(base.consent),
            pseudonymous: self.pseudonymous.unwrap_or(base.pseudonymous),
            direct_identifiers,
        }
    }
}

/// Why the configured roles cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("role `{role}` extends `{base}`, which is neither a built-in role nor configured")]
    UnknownBase { role: String, base: String },
    #[error("role `{role}` extends itself through a chain of `extends`")]
    Cycle { role: String },
}

/// Every role a host serves: the built-ins and the configured ones, by name.
#[derive(Clone, Debug)]
pub struct Roles {
    policies: BTreeMap<String, Policy>,
}

impl Roles {
    /// The built-in roles only.
    pub fn builtin() -> Roles {
        Roles::from_config(&BTreeMap::new()).expect("built-in roles extend nothing")
    }

    /// The built-ins plus the roles of `[roles.NAME]` tables, each resolved against what it
    /// extends.
    pub fn from_config(configs: &BTreeMap<String, RoleConfig>) -> Result<Roles, PolicyError> {
        let mut policies = BTreeMap::new();
        for name in BUILTIN_ROLES.iter().copied().chain(configs.keys().map(String::as_str)) {
            resolve(name, configs, &mut policies, &mut Vec::new())?;
        }
        Ok(Roles { policies })
    }

    pub fn get(&self, name: &str) -> Option<&Policy> {
        self.policies.get(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.policies.keys().map(String::as_str)
    }
}

/// The policy of role `name`, resolving what it extends first. `visiting` holds the roles
/// whose resolution is under way, to report a cycle instead of recursing forever.
fn resolve(
    name: &str,
    configs: &BTreeMap<String, RoleConfig>,
    resolved: &mut BTreeMap<String, Policy>,
    visiting: &mut Vec<String>,
) -> Result<Policy, PolicyError> {
    if let Some(policy) = resolved.get(name) {
        return Ok(policy.clone());
    }
    let Some(config) = configs.get(name) else {
        let policy = Policy::builtin(name)
            .ok_or_else(|| PolicyError::UnknownBase { role: visiting.last().cloned().unwrap_or_default(), base: name.to_string() })?;
        resolved.insert(name.to_string(), policy.clone());
        return Ok(policy);
    };
    if visiting.iter().any(|v| v == name) {
        return Err(PolicyError::Cycle { role: name.to_string() });
    }
    visiting.push(name.to_string());
    let base = match config.extends.as_deref() {
        // A built-in refined under its own name starts from the built-in.
        Some(base) if base == name => Policy::builtin(name).ok_or_else(|| PolicyError::Cycle { role: name.to_string() })?,
        Some(base) => resolve(base, configs, resolved, visiting)?,
        None => Policy::builtin(name).unwrap_or_else(|| Policy::empty(name)),
    };
    visiting.pop();
    let policy = config.apply(name, base);
    resolved.insert(name.to_string(), policy.clone());
    Ok(policy)
}
