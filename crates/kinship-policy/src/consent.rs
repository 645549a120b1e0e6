//! Consent per purpose, derived from traits and events.
//!
//! Privacy first: a purpose nothing speaks for is **not granted** (unless the configuration
//! grants it by default), and where signals conflict and their order is unknown, the
//! revocation wins.

use crate::glob::Glob;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

/// What data may be used for: `marketing`, `analytics`, `personalization`, or any purpose
/// the configuration names.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Purpose(Cow<'static, str>);

impl Purpose {
    pub const MARKETING: Purpose = Purpose(Cow::Borrowed("marketing"));
    pub const ANALYTICS: Purpose = Purpose(Cow::Borrowed("analytics"));
    pub const PERSONALIZATION: Purpose = Purpose(Cow::Borrowed("personalization"));

    pub fn new(name: impl Into<String>) -> Purpose {
        Purpose(Cow::Owned(name.into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Purpose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A trait that says whether a purpose is granted: `true`/`false`, `1`/`0`, or words such
/// as `yes`, `no`, `opted_in`, `unsubscribed`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TraitConsentRule {
    #[serde(rename = "trait")]
    pub trait_name: String,
    pub purpose: Purpose,
}

/// Events that grant or revoke a purpose: named `event` (case-insensitive, `*` and `?`
/// allowed), with the effect fixed by `grants`, or read from the boolean property
/// `property` when `grants` is absent. An event saying neither is no signal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventConsentRule {
    pub event: String,
    pub purpose: Purpose,
    #[serde(default)]
    pub grants: Option<bool>,
    #[serde(default)]
    pub property: Option<String>,
}

/// The `[consent]` configuration. Every setting left out has its default:
///
/// ```toml
/// [consent]
/// purposes = ["marketing", "analytics", "personalization"]
/// defaults = {}   # purpose = true to grant it when nothing says otherwise
/// traits = [
///   { trait = "email_opt_in", purpose = "marketing" },
///   { trait = "marketing_opt_in", purpose = "marketing" },
///   { trait = "analytics_opt_in", purpose = "analytics" },
///   { trait = "personalization_opt_in", purpose = "personalization" },
/// ]
/// events = [
///   { event = "Unsubscribed", purpose = "marketing", grants = false },
///   { event = "Email Unsubscribed", purpose = "marketing", grants = false },
///   { event = "Subscribed", purpose = "marketing", grants = true },
///   { event = "Email Subscribed", purpose = "marketing", grants = true },
///   { event = "Consent Updated", purpose = "marketing", property = "marketing" },
///   { event = "Consent Updated", purpose = "analytics", property = "analytics" },
///   { event = "Consent Updated", purpose = "personalization", property = "personalization" },
/// ]
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConsentConfig {
    /// The purposes every profile shows. A purpose only a rule names is shown too.
    pub purposes: Vec<Purpose>,
    /// Whether a purpose is granted when no trait or event says; unlisted: not granted.
    pub defaults: BTreeMap<Purpose, bool>,
    pub traits: Vec<TraitConsentRule>,
    pub events: Vec<EventConsentRule>,
}

impl Default for ConsentConfig {
    fn default() -> ConsentConfig {
        let purposes = vec![Purpose::MARKETING, Purpose::ANALYTICS, Purpose::PERSONALIZATION];
        let opt_in = |name: &str, purpose: Purpose| TraitConsentRule { trait_name: name.to_string(), purpose };
        let event = |name: &str, grants: bool| EventConsentRule {
            event: name.to_string(),
            purpose: Purpose::MARKETING,
            grants: Some(grants),
            property: None,
        };
        let mut events = vec![
            event("Unsubscribed", false),
            event("Email Unsubscribed", false),
            event("Subscribed", true),
            event("Email Subscribed", true),
        ];
        events.extend(purposes.iter().map(|purpose| EventConsentRule {
            event: "Consent Updated".to_string(),
            purpose: purpose.clone(),
            grants: None,
            property: Some(purpose.to_string()),
        }));
        ConsentConfig {
            traits: vec![
                opt_in("email_opt_in", Purpose::MARKETING),
                opt_in("marketing_opt_in", Purpose::MARKETING),
                opt_in("analytics_opt_in", Purpose::ANALYTICS),
                opt_in("personalization_opt_in", Purpose::PERSONALIZATION),
            ],
            events,
            defaults: BTreeMap::new(),
            purposes,
        }
    }
}

/// Whether one purpose is granted, and what said so.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentState {
    pub granted: bool,
    /// `default`, `trait:NAME` or `event:NAME`.
    pub source: String,
    /// When, for an event; traits carry no time.
    pub at_ms: Option<i64>,
}

/// Consent per purpose from a profile's `traits` and its `events` (name, time in ms,
/// properties), in any order:
/// - among events, the latest signal wins (a revocation, at the same moment as a grant);
/// - a trait's time is unknown, so a dated event overrides it, except that an event cannot
///   grant what a trait revokes (an opt-out in the CRM stands until the CRM says otherwise);
/// - with no signal, the configured default, else not granted.
pub fn derive_consent<'a>(
    traits: &Map<String, Value>,
    events: impl IntoIterator<Item = (&'a str, i64, &'a Map<String, Value>)>,
    config: &ConsentConfig,
) -> BTreeMap<Purpose, ConsentState> {
    let mut from_traits: BTreeMap<&Purpose, ConsentState> = BTreeMap::new();
    for rule in &config.traits {
        let value =
            traits.get(&rule.trait_name).or_else(|| traits.iter().find(|(k, _)| k.eq_ignore_ascii_case(&rule.trait_name)).map(|(_, v)| v));
        let Some(granted) = value.and_then(as_consent) else { continue };
        let signal = ConsentState { granted, source: format!("trait:{}", rule.trait_name), at_ms: None };
        // Two traits for one purpose: a revocation from either stands.
        if from_traits.get(&rule.purpose).is_none_or(|held| held.granted) {
            from_traits.insert(&rule.purpose, signal);
        }
    }

    let event_rules: Vec<(Glob, &EventConsentRule)> = config.events.iter().map(|rule| (Glob::new(&rule.event), rule)).collect();
    let mut from_events: BTreeMap<&Purpose, ConsentState> = BTreeMap::new();
    for (name, at_ms, properties) in events {
        for (_, rule) in event_rules.iter().filter(|(glob, _)| glob.matches(name)) {
            let granted = rule.grants.or_else(|| rule.property.as_ref().and_then(|p| properties.get(p)).and_then(as_consent));
            let Some(granted) = granted else { continue };
            let later =
                from_events.get(&rule.purpose).is_none_or(|held| (at_ms, !granted) > (held.at_ms.unwrap_or(i64::MIN), !held.granted));
            if later {
                from_events.insert(&rule.purpose, ConsentState { granted, source: format!("event:{name}"), at_ms: Some(at_ms) });
            }
        }
    }

    let named = config.purposes.iter().chain(config.defaults.keys());
    let named = named.chain(config.traits.iter().map(|r| &r.purpose)).chain(config.events.iter().map(|r| &r.purpose));
    let mut consent = BTreeMap::new();
    for purpose in named {
        let state = match (from_traits.get(purpose), from_events.get(purpose)) {
            (Some(by_trait), Some(by_event)) if !by_trait.granted && by_event.granted => by_trait.clone(),
            (_, Some(by_event)) => by_event.clone(),
            (Some(by_trait), None) => by_trait.clone(),
            (None, None) => {
                ConsentState { granted: config.defaults.get(purpose).copied().unwrap_or(false), source: "default".to_string(), at_ms: None }
            }
        };
        consent.insert(purpose.clone(), state);
    }
    consent
}

/// A trait or property value read as granted (`true`) or revoked (`false`), if it says.
fn as_consent(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => match n.as_i64() {
            Some(1) => Some(true),
            Some(0) => Some(false),
            _ => None,
        },
        Value::String(s) => match s.trim().to_lowercase().as_str() {
            "true" | "yes" | "y" | "1" | "on" | "granted" | "opted_in" | "opt_in" | "subscribed" => Some(true),
            "false" | "no" | "n" | "0" | "off" | "revoked" | "denied" | "opted_out" | "opt_out" | "unsubscribed" => Some(false),
            _ => None,
        },
        _ => None,
    }
}
