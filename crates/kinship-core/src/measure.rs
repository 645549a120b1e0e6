//! What the customer-success measures read (`[measures]`): the survey answer NPS is made of,
//! the events revenue is made of, what makes a new customer's arrival earned, and when a
//! customer counts as gone.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeasuresConfig {
    #[serde(default)]
    pub nps: NpsConfig,
    #[serde(default)]
    pub revenue: RevenueConfig,
    /// A condition on a new customer's profile (the segment language) that says it came by
    /// referral or recommendation: a survey's "why did you buy", a lead source, a referral
    /// code. Without it every new customer counts as bought.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub earned: Option<String>,
    /// A customer with no revenue event for this long has stopped buying (`"90 days"`).
    #[serde(default = "default_churn_after")]
    pub churn_after: String,
    /// Below this many answers a group's NPS is shown as insufficient.
    #[serde(default = "default_min_answers")]
    pub min_answers: u64,
    /// How often a server keeps the saved health definitions' alerts (`"15 minutes"`): each
    /// pass scores every profile twice (now and a day before).
    #[serde(default = "default_alerts_every")]
    pub alerts_every: String,
}

impl Default for MeasuresConfig {
    fn default() -> Self {
        Self {
            nps: NpsConfig::default(),
            revenue: RevenueConfig::default(),
            earned: None,
            churn_after: default_churn_after(),
            min_answers: default_min_answers(),
            alerts_every: default_alerts_every(),
        }
    }
}

fn default_churn_after() -> String {
    "90 days".into()
}

fn default_alerts_every() -> String {
    "15 minutes".into()
}

fn default_min_answers() -> u64 {
    30
}

/// The survey answer: its event and the 0–10 property.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NpsConfig {
    #[serde(default = "default_nps_event")]
    pub event: String,
    #[serde(default = "default_score")]
    pub score: String,
}

impl Default for NpsConfig {
    fn default() -> Self {
        Self { event: default_nps_event(), score: default_score() }
    }
}

fn default_nps_event() -> String {
    "NPS Response".into()
}

fn default_score() -> String {
    "score".into()
}

/// Revenue: the events (invoices or orders) and their amount property.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevenueConfig {
    #[serde(default = "default_revenue_event")]
    pub event: String,
    #[serde(default = "default_amount")]
    pub amount: String,
}

impl Default for RevenueConfig {
    fn default() -> Self {
        Self { event: default_revenue_event(), amount: default_amount() }
    }
}

fn default_revenue_event() -> String {
    "Invoice Issued".into()
}

fn default_amount() -> String {
    "amount".into()
}
