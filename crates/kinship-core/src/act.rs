//! What flows act with, from `kinship.toml`: reference data (`[references.NAME]`), teams that
//! work tasks (`[teams.NAME]`) and endpoints that receive deliveries (`[endpoints.NAME]`).

use kinship_flows::{AssignRule, Member};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Rows about things, not people (a product catalogue, stock per SKU), read by flows' gather
/// steps. A CSV or JSON Lines file, read again when it changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReferenceConfig {
    /// Relative to the data directory; `.csv` or `.jsonl`.
    pub path: PathBuf,
    /// The column that names a row (`sku`).
    pub key: String,
}

/// `[flows]`: where what a flow changes about a profile (`set_traits`, `add_to_list`,
/// `remove_from_list`) is written. Each change is a record of this source (`type =
/// "segment"`, an `identify` or a `track` message), so it joins the profile, survives a
/// rebuild, shows on the timeline and is erased like any other record.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowsConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// People who work tasks, and how a new task picks one of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamConfig {
    pub members: Vec<Member>,
    #[serde(default)]
    pub assign: AssignRule,
}

/// A destination for deliveries; `type` picks the kind, each with its own settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum EndpointConfig {
    Webhook(WebhookConfig),
}

/// A webhook signed as the Standard Webhooks specification says (`webhook-id`,
/// `webhook-timestamp`, `webhook-signature`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    pub url: String,
    /// Environment variables holding the signing secrets (`whsec_` and base64). Every one signs
    /// each delivery, so a secret is rotated by adding the new one, letting receivers take it,
    /// then removing the old one. Secrets never go in this file.
    pub secrets_env: Vec<String>,
    /// Seconds to wait for an answer.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// Deliveries in flight at once (never two of one profile).
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Attempts before a delivery goes to the dead letters.
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    /// A consent purpose (`marketing`) the profile must have granted when the delivery is sent;
    /// absent, deliveries are operational and need none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purpose: Option<String>,
}

fn default_timeout() -> u64 {
    10
}

fn default_concurrency() -> usize {
    16
}

fn default_attempts() -> u32 {
    12
}
