//! What one role may do and see: route capabilities and the field rules that
//! [`project`](crate::project) applies to a profile.

use crate::glob::Glob;
use crate::mask::MaskStyle;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// What a role gets of one field, identifier kind or property. Ordered from most to least
/// revealing; among equally specific rules the later (stricter) one wins.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    /// The value as it is.
    Allow,
    /// A masked value: `j***@example.com`, `*******5678`, `***`.
    Mask,
    /// A stable keyed [`pseudonym`](crate::pseudonym): joinable, not readable.
    Pseudonym,
    /// Absent from the response: not `null`, not there.
    Hide,
}

/// What a role gets of the raw source records behind a profile.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordAccess {
    /// Payloads as the source sent them (the final scrubbing pass still applies).
    Raw,
    /// Payload fields through the role's trait rules, as if each were a trait.
    Projected,
    /// No `records` section at all.
    Hidden,
}

/// A route permission the host checks before serving a request. See the crate docs for
/// which built-in role has which.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Capability {
    /// Read one profile by its id.
    ReadProfiles,
    /// Look profiles up by email, phone, identifier or text.
    SearchProfiles,
    /// See why records were joined (match evidence).
    ExplainProfiles,
    /// Split and merge profiles.
    SplitMerge,
    /// Enable, disable, run and configure sources.
    ManageSources,
    /// List sources and their status.
    ReadSources,
    /// Create, change and delete segments.
    ManageSegments,
    /// List segments and their members.
    ReadSegments,
    /// Export segment members (projected through the role like any read).
    ExportSegments,
    /// Read and verify the audit log.
    ReadAudit,
    /// Create and revoke tokens, change roles.
    ManageTokens,
    /// Erase a person.
    Erasure,
    /// Export everything held about a person (a data subject access request).
    PrivacyExport,
    /// See tasks and their context (projected through the role like a profile).
    ReadTasks,
    /// Claim, update and close tasks.
    WorkTasks,
    /// List flows and read their runs' traces.
    ReadFlows,
    /// Create flows, dry-run them, and replay dead deliveries.
    ManageFlows,
    /// See deals, the pipeline board and the forecast.
    ReadDeals,
    /// Open deals and move them between stages.
    WorkDeals,
}

impl Capability {
    pub const ALL: [Capability; 19] = [
        Capability::ReadProfiles,
        Capability::SearchProfiles,
        Capability::ExplainProfiles,
        Capability::SplitMerge,
        Capability::ManageSources,
        Capability::ReadSources,
        Capability::ManageSegments,
        Capability::ReadSegments,
        Capability::ExportSegments,
        Capability::ReadAudit,
        Capability::ManageTokens,
        Capability::Erasure,
        Capability::PrivacyExport,
        Capability::ReadTasks,
        Capability::WorkTasks,
        Capability::ReadFlows,
        Capability::ManageFlows,
        Capability::ReadDeals,
        Capability::WorkDeals,
    ];
}

/// Rules for one kind of name (trait fields, identifier kinds or event properties): the
/// first rule whose pattern matches wins, else the default.
#[derive(Clone, Debug)]
pub(crate) struct FieldRules {
    rules: Vec<(Glob, Access)>,
    pub(crate) default: Access,
}

impl FieldRules {
    pub(crate) fn new(default: Access) -> FieldRules {
        FieldRules { rules: Vec::new(), default }
    }

    /// Puts `rules` in front of the existing ones, so a role's own rules beat those it
    /// extends. Within the layer exact names go first, then the patterns that pin down the
    /// most characters, then the stricter access.
    pub(crate) fn layered<'a>(mut self, rules: impl IntoIterator<Item = (&'a str, Access)>) -> FieldRules {
        let mut layer: Vec<(Glob, Access)> = rules.into_iter().map(|(pattern, access)| (Glob::new(pattern), access)).collect();
        layer.sort_by_key(|(glob, access)| (!glob.is_literal(), std::cmp::Reverse(glob.literal_len()), std::cmp::Reverse(*access)));
        layer.append(&mut self.rules);
        self.rules = layer;
        self
    }

    /// The rule that names `path` (a dotted path such as `address.city`), trying the whole
    /// path first and then its last segment, so a rule for `email` also covers
    /// `customer.email` in a raw payload.
    pub(crate) fn explicit(&self, path: &str) -> Option<Access> {
        let first_match = |name: &str| self.rules.iter().find(|(glob, _)| glob.matches(name)).map(|&(_, access)| access);
        first_match(path).or_else(|| path.rsplit_once('.').and_then(|(_, leaf)| first_match(leaf)))
    }

    pub(crate) fn access(&self, path: &str) -> Access {
        self.explicit(path).unwrap_or(self.default)
    }
}

/// One role's policy. Built-ins come from [`Policy::builtin`]; custom roles from
/// [`Roles::from_config`](crate::Roles::from_config).
#[derive(Clone, Debug)]
pub struct Policy {
    pub(crate) name: String,
    pub(crate) capabilities: BTreeSet<Capability>,
    pub(crate) traits: FieldRules,
    pub(crate) identifiers: FieldRules,
    /// Lower-cased identifier kind → how its values are masked, where not by [`MaskStyle::for_kind`].
    pub(crate) identifier_masks: BTreeMap<String, MaskStyle>,
    /// Event names (or types, for unnamed events) the role sees.
    pub(crate) events: Vec<Glob>,
    pub(crate) event_properties: FieldRules,
    pub(crate) records: RecordAccess,
    pub(crate) computed: bool,
    pub(crate) segments: bool,
    pub(crate) consent: bool,
    pub(crate) pseudonymous: bool,
    /// Fields that name or reach a person; in pseudonymous mode they are never shown plainly.
    pub(crate) direct_identifiers: Vec<Glob>,
}

/// The built-in roles, in the order the docs list them.
pub const BUILTIN_ROLES: [&str; 6] = ["admin", "support", "sales", "marketer", "analyst", "viewer"];

/// Ways to reach a person: what marketers see masked. Patterns end with the contact word so
/// that flags about contact details (`email_opt_in`, `phone_verified`) stay readable.
const CONTACT_FIELDS: &[&str] = &[
    "*email",
    "*emails",
    "*email_address",
    "*emailaddress",
    "*e_mail",
    "*phone",
    "*phones",
    "*phone_number",
    "*phonenumber",
    "*mobile",
    "*mobile_number",
    "*mobilenumber",
    "tel",
    "*_tel",
    "cell",
    "*_cell",
    "*fax",
    "*whatsapp",
    "*street",
    "street_*",
    "*address",
    "address_*",
    "address.*",
    "*_address.*",
    "handle",
    "twitter",
];
/// Fields that name a person.
const NAME_FIELDS: &[&str] = &[
    "name",
    "first_name",
    "last_name",
    "middle_name",
    "full_name",
    "given_name",
    "family_name",
    "nickname",
    "username",
    "user_name",
    "recipient",
    "billing_name",
    "customer_name",
    "contact_name",
];
const NETWORK_FIELDS: &[&str] = &["ip", "*_ip"];
const BIRTH_DATES: &[&str] = &["birth_date", "birthdate", "date_of_birth", "dob", "birthday"];
/// Text people type, which may name anyone.
const FREE_TEXT: &[&str] = &["subject", "body", "message", "text", "description", "*note*", "*comment*"];
const MARKETING_SCORES: &[&str] = &["*score"];
const INTERNAL_NOTES: &[&str] = &["*internal*", "*note*"];

const ORDER_EVENTS: &[&str] = &["Order *", "Invoice *", "Shipment *", "Payment *", "Refund *", "Return *"];
const TICKET_EVENTS: &[&str] = &["Ticket *"];
const DEAL_EVENTS: &[&str] = &["Deal *"];
/// Engagement: email campaign events, page views, browsing, surveys, and purchases.
const ENGAGEMENT_EVENTS: &[&str] = &[
    "delivered",
    "opened",
    "clicked",
    "bounced",
    "subscribed",
    "unsubscribed",
    "Email *",
    "Campaign *",
    "page",
    "screen",
    "Page *",
    "Product *",
    "Cart *",
    "Checkout *",
    "Signed Up",
    "NPS *",
    "Order Completed",
];

/// One access for every pattern of the given lists, as rules for [`FieldRules::layered`].
fn rules(access: Access, lists: &[&[&'static str]]) -> Vec<(&'static str, Access)> {
    lists.iter().flat_map(|list| list.iter()).map(|&pattern| (pattern, access)).collect()
}

impl Policy {
    /// A role that may do and see nothing: the base of a custom role that extends none.
    pub fn empty(name: &str) -> Policy {
        Policy {
            name: name.to_string(),
            capabilities: BTreeSet::new(),
            traits: FieldRules::new(Access::Hide),
            identifiers: FieldRules::new(Access::Hide),
            identifier_masks: BTreeMap::new(),
            events: Vec::new(),
            event_properties: FieldRules::new(Access::Hide),
            records: RecordAccess::Hidden,
            computed: false,
            segments: false,
            consent: false,
            pseudonymous: false,
            direct_identifiers: Vec::new(),
        }
    }

    /// A role that sees every field, event, computed trait, segment and consent, but no
    /// raw records: what the built-ins restrict.
    fn open(name: &str, capabilities: &[Capability]) -> Policy {
        Policy {
            capabilities: capabilities.iter().copied().collect(),
            traits: FieldRules::new(Access::Allow),
            identifiers: FieldRules::new(Access::Allow),
            events: vec![Glob::new("*")],
            event_properties: FieldRules::new(Access::Allow),
            computed: true,
            segments: true,
            consent: true,
            ..Policy::empty(name)
        }
    }

    /// The built-in role called `name` (see [`BUILTIN_ROLES`] and the crate docs).
    pub fn builtin(name: &str) -> Option<Policy> {
        use Access::{Allow, Hide, Mask, Pseudonym};
        use Capability::*;
        let globs = |lists: &[&[&str]]| lists.iter().flat_map(|list| list.iter()).map(|p| Glob::new(p)).collect();
        let support = || Policy {
            traits: FieldRules::new(Allow).layered(rules(Hide, &[MARKETING_SCORES])),
            events: globs(&[ORDER_EVENTS, TICKET_EVENTS]),
            event_properties: FieldRules::new(Allow).layered(rules(Hide, &[MARKETING_SCORES])),
            records: RecordAccess::Projected,
            segments: false,
            ..Policy::open(name, &[ReadProfiles, SearchProfiles, ExplainProfiles, ReadSources, ReadTasks, WorkTasks, ReadFlows])
        };
        let policy = match name {
            "admin" => Policy { records: RecordAccess::Raw, ..Policy::open(name, &Capability::ALL) },
            "support" => support(),
            // The legacy reader role: support's view without raw records.
            "viewer" => {
                let mut viewer = Policy { records: RecordAccess::Hidden, ..support() };
                viewer.capabilities.remove(&WorkTasks);
                viewer
            }
            "sales" => Policy {
                traits: FieldRules::new(Allow).layered(rules(Hide, &[MARKETING_SCORES, INTERNAL_NOTES])),
                events: globs(&[ORDER_EVENTS, TICKET_EVENTS, DEAL_EVENTS]),
                event_properties: FieldRules::new(Allow).layered(rules(Hide, &[MARKETING_SCORES, INTERNAL_NOTES])),
                records: RecordAccess::Projected,
                ..Policy::open(name, &[ReadProfiles, SearchProfiles, ReadSources, ReadSegments, ReadTasks, ReadDeals, WorkDeals])
            },
            "marketer" => Policy {
                traits: FieldRules::new(Allow).layered(rules(Mask, &[CONTACT_FIELDS])),
                identifiers: FieldRules::new(Allow).layered(rules(Mask, &[CONTACT_FIELDS])),
                events: globs(&[ENGAGEMENT_EVENTS]),
                event_properties: FieldRules::new(Allow).layered(rules(Mask, &[CONTACT_FIELDS])),
                ..Policy::open(name, &[ReadProfiles, SearchProfiles, ReadSources, ManageSegments, ReadSegments, ExportSegments])
            },
            "analyst" => Policy {
                traits: FieldRules::new(Allow).layered(rules(Hide, &[FREE_TEXT, BIRTH_DATES])),
                identifiers: FieldRules::new(Pseudonym),
                event_properties: FieldRules::new(Allow).layered(rules(Hide, &[FREE_TEXT, BIRTH_DATES])),
                pseudonymous: true,
                direct_identifiers: globs(&[CONTACT_FIELDS, NAME_FIELDS, NETWORK_FIELDS]),
                ..Policy::open(name, &[ReadProfiles, ReadSources, ReadSegments, ExportSegments])
            },
            _ => return None,
        };
        Some(policy)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the role may use routes that need `capability`.
    pub fn allows(&self, capability: Capability) -> bool {
        self.capabilities.contains(&capability)
    }

    /// What the role gets of the trait field at `path` (`email`, `address.city`).
    pub fn trait_access(&self, path: &str) -> Access {
        self.pseudonymised(path, self.traits.access(path))
    }

    /// What the role gets of a trait at a dotted path: the strictest of the rules for the
    /// path and each field it lies in, as a projection shows `phone.number` as its `phone`
    /// is shown (an expression reading the inner field may learn no more).
    pub fn nested_trait_access(&self, path: &str) -> Access {
        let mut access = self.trait_access(path);
        let mut rest = path;
        while let Some((parent, _)) = rest.rsplit_once('.') {
            access = access.max(self.trait_access(parent));
            rest = parent;
        }
        access
    }

    /// What the role gets of identifiers of `kind`. In pseudonymous mode every identifier
    /// the role may see is a pseudonym.
    pub fn identifier_access(&self, kind: &str) -> Access {
        match self.identifiers.access(kind) {
            Access::Allow | Access::Mask if self.pseudonymous => Access::Pseudonym,
            access => access,
        }
    }

    /// How a masked identifier of `kind` is shown.
    pub fn mask_style(&self, kind: &str) -> MaskStyle {
        self.identifier_masks.get(&kind.to_lowercase()).copied().unwrap_or_else(|| MaskStyle::for_kind(kind))
    }

    /// Whether events called `name` are in the role's view.
    pub fn event_visible(&self, name: &str) -> bool {
        self.events.iter().any(|glob| glob.matches(name))
    }

    /// What the role gets of the event property at `path`.
    pub fn property_access(&self, path: &str) -> Access {
        self.pseudonymised(path, self.event_properties.access(path))
    }

    /// Whether the role sees events of every name (so may count them all, `count(*)`).
    pub fn sees_every_event(&self) -> bool {
        self.events.iter().any(|glob| glob.matches_everything())
    }

    /// Whether the role sees computed traits.
    pub fn sees_computed(&self) -> bool {
        self.computed
    }

    /// Whether the role sees who people are: email addresses and phone numbers in clear.
    /// Roles that do not see small counts only as "fewer than k" (a count of one names a person).
    pub fn sees_identities(&self) -> bool {
        ["email", "phone"].iter().all(|kind| self.identifier_access(kind) == Access::Allow && self.trait_access(kind) == Access::Allow)
    }

    pub fn records(&self) -> RecordAccess {
        self.records
    }

    pub fn is_pseudonymous(&self) -> bool {
        self.pseudonymous
    }

    /// In pseudonymous mode a direct identifier the rules would show, plainly or masked,
    /// is shown as a pseudonym instead.
    pub(crate) fn pseudonymised(&self, path: &str, access: Access) -> Access {
        let direct = || {
            let leaf = path.rsplit_once('.').map_or(path, |(_, leaf)| leaf);
            self.direct_identifiers.iter().any(|glob| glob.matches(path) || glob.matches(leaf))
        };
        match access {
            Access::Allow | Access::Mask if self.pseudonymous && direct() => Access::Pseudonym,
            access => access,
        }
    }
}
