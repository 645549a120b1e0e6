//! Kinship's governance rules, free of any runtime or store: what each role may do and see,
//! and the records that prove what happened.
//!
//! - [`Policy`], [`Roles`], [`RoleConfig`]: built-in and configured roles, route
//!   [`Capability`]s and field rules;
//! - [`project`]: a profile document as one role may see it, and [`FieldsSeen`] for the audit;
//! - [`mask_email`], [`mask_phone`], [`mask_generic`], [`mask_value`]: masking;
//! - [`pseudonym`]: stable keyed stand-ins for analysts;
//! - [`AuditEntry`], [`verify_chain`]: the tamper-evident audit log;
//! - [`suppression_hash`]: the only form in which erased identifiers are kept;
//! - [`derive_consent`]: consent per purpose from traits and events.
//!
//! # The profile document
//!
//! [`project`] reads the host's document and returns the same shape with less in it:
//!
//! ```json
//! { "id": "p_1",
//!   "traits": { "first_name": "Ann", "email": "ann@x.com", "lead_score": 80 },
//!   "trait_sources": { "first_name": { "source": "crm", "record_key": "c1" } },
//!   "identifiers": [ { "kind": "email", "value": "ann@x.com", "source": "crm" } ],
//!   "records": [ { "source": "crm", "key": "c1", "timestamp": "…", "payload": { } } ],
//!   "events": [ { "type": "track", "event": "Order Completed", "timestamp": "…",
//!                 "source": "shop", "record_key": "o1", "properties": { "revenue": 12.5 } } ],
//!   "computed": { "lifetime_value": 120.0 },
//!   "segments": ["engaged"],
//!   "consent": { "marketing": { "granted": false, "source": "event:Unsubscribed" } } }
//! ```
//!
//! What a role may not see is absent, never `null`. Other top-level keys are dropped: the
//! host adds paging counts (`events_total`) after projecting.
//!
//! # Built-in roles
//!
//! Route capabilities ([`Policy::allows`]):
//!
//! | capability         | admin | support | sales | marketer | analyst | viewer |
//! |--------------------|:-----:|:-------:|:-----:|:--------:|:-------:|:------:|
//! | `read_profiles`    |   ✓   |    ✓    |   ✓   |    ✓     |    ✓    |   ✓    |
//! | `search_profiles`  |   ✓   |    ✓    |   ✓   |    ✓     |         |   ✓    |
//! | `explain_profiles` |   ✓   |    ✓    |       |          |         |   ✓    |
//! | `read_sources`     |   ✓   |    ✓    |   ✓   |    ✓     |    ✓    |   ✓    |
//! | `read_segments`    |   ✓   |         |   ✓   |    ✓     |    ✓    |        |
//! | `manage_segments`  |   ✓   |         |       |    ✓     |         |        |
//! | `export_segments`  |   ✓   |         |       |    ✓     |    ✓    |        |
//! | `split_merge`      |   ✓   |         |       |          |         |        |
//! | `manage_sources`   |   ✓   |         |       |          |         |        |
//! | `read_audit`       |   ✓   |         |       |          |         |        |
//! | `manage_tokens`    |   ✓   |         |       |          |         |        |
//! | `erasure`          |   ✓   |         |       |          |         |        |
//! | `privacy_export`   |   ✓   |         |       |          |         |        |
//! | `read_tasks`       |   ✓   |    ✓    |   ✓   |          |         |   ✓    |
//! | `work_tasks`       |   ✓   |    ✓    |       |          |         |        |
//! | `read_flows`       |   ✓   |    ✓    |       |          |         |   ✓    |
//! | `manage_flows`     |   ✓   |         |       |          |         |        |
//! | `read_deals`       |   ✓   |         |   ✓   |          |         |        |
//! | `work_deals`       |   ✓   |         |   ✓   |          |         |        |
//!
//! Analysts cannot search: looking a person up by email is identifying them.
//!
//! What each role sees of a profile ([`project`]):
//!
//! | section          | admin | support | sales | marketer | analyst | viewer |
//! |------------------|-------|---------|-------|----------|---------|--------|
//! | traits           | all   | all but scores (`*score`) | all but scores, `*internal*`, `*note*` | all, contact fields¹ masked | all but free text² and birth dates; direct identifiers³ as pseudonyms | as support |
//! | identifiers      | all   | all     | all   | contact kinds masked, ids plain | every value a pseudonym | all |
//! | events           | all   | orders⁴, tickets | orders⁴, tickets, deals | engagement⁵ | all | as support |
//! | event properties | all   | all but scores | all but scores, `*internal*`, `*note*` | contact fields masked | as traits | as support |
//! | records          | raw   | projected | projected | hidden | hidden | hidden |
//! | computed         | ✓     | ✓ (trait rules) | ✓ (trait rules) | ✓ | ✓ (trait rules) | ✓ (trait rules) |
//! | segments         | ✓     |         | ✓     | ✓        | ✓       |        |
//! | consent          | ✓     | ✓       | ✓     | ✓        | ✓       | ✓      |
//!
//! 1. fields ending in `email`, `emails`, `email_address`, `e_mail`, `phone`, `phones`,
//!    `phone_number`, `mobile`, `mobile_number`, `fax`, `whatsapp`, `street` or `address`;
//!    `tel`, `*_tel`, `cell`, `*_cell`, `street_*`, `address_*`, `address.*`, `*_address.*`,
//!    `handle`, `twitter` (so `email_opt_in` is not one). Whatever the field's name, a value
//!    shaped like an email address or phone number is masked too (see below).
//! 2. `subject`, `body`, `message`, `text`, `description`, `*note*`, `*comment*`.
//! 3. contact fields, name fields (`name`, `first_name`, `last_name`, `recipient`, `billing_name`, ...), `ip`, `*_ip`.
//! 4. `Order *`, `Invoice *`, `Shipment *`, `Payment *`, `Refund *`, `Return *`; tickets are `Ticket *`.
//! 5. email campaign events (`delivered`, `opened`, `clicked`, `bounced`, `subscribed`,
//!    `unsubscribed`, `Email *`, `Campaign *`), `page`, `screen`, `Page *`, `Product *`,
//!    `Cart *`, `Checkout *`, `Signed Up`, `NPS *` and `Order Completed`.
//!
//! `viewer` is the reader role of earlier versions: support's view without raw records.
//! Sales sees orders and tickets but neither marketing scores nor internal notes.
//!
//! A record whose events the role may not see is left out too, so that hiding an event
//! also hides its raw row. For roles that may not read emails (marketer, analyst) a last
//! pass masks (analyst: pseudonymises) every email address anywhere in the response,
//! including inside text, percent-encoded URLs and object keys, every phone-number-shaped
//! run of digits when the role may not read phone numbers, every string equal to one of the
//! profile's protected identifier values, and the profile's protected phone numbers however
//! they are written, also inside text: nothing a rule did not foresee gets through
//! unmasked. (Other identifier values are caught when they are a whole string, not inside
//! text.)

mod audit;
mod config;
mod consent;
mod contact;
mod glob;
mod keys;
mod mask;
mod policy;
mod project;
mod scrub;

pub use audit::{verify_chain, AuditEntry, AuditEvent, AuditLineError, ChainError, GENESIS_HASH};
pub use config::{PolicyError, RoleConfig, Roles, RulesConfig};
pub use consent::{derive_consent, ConsentConfig, ConsentState, EventConsentRule, Purpose, TraitConsentRule};
pub use contact::{emails_in, percent_decoded, phones_in};
pub use keys::{pseudonym, suppression_hash, PseudonymKey, SuppressionKey};
pub use mask::{mask_email, mask_generic, mask_phone, mask_value, MaskStyle, MASK};
pub use policy::{Access, Capability, Policy, RecordAccess, BUILTIN_ROLES};
pub use project::{project, project_fields, scrub, FieldsSeen, Projected};
