//! Service and sales on the unified customer, as pure engines: business-hours calendars
//! (`calendar`), SLA clocks from a case's event log (`sla`), cases read from a help desk's records (`cases`), commercial documents with a
//! normalised status followed order by order (`documents`), and deals with their stage history,
//! forecast, win rate, time in stage and stage funnel (`deals`).
//! No store, no runtime: the host reads records and hands them in.

pub mod accounts;
pub mod calendar;
pub mod cases;
pub mod deals;
pub mod documents;
pub mod sla;

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `[service]` in kinship.toml: business-hours calendars and SLA policies, in order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub calendars: BTreeMap<String, calendar::CalendarConfig>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sla: Vec<sla::SlaPolicyConfig>,
    /// How often a server looks for clocks newly breached or in warning, to append their
    /// events to `[flows] source` (`"1 minute"`, the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events_every: Option<String>,
    /// The Segment source native cases (opened, answered and updated in Kinship) are
    /// written to; read with [`cases::CaseMapping::native`] unless it maps cases itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// `[[service.stages]]`: the deal pipeline's stages in order, each with its default
    /// probability and type; [`deals::default_stages`] when none are set.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stages: Vec<deals::Stage>,
}

impl ServiceConfig {
    /// The deal stages in pipeline order: those configured, or the defaults.
    pub fn stages(&self) -> Vec<deals::Stage> {
        if self.stages.is_empty() {
            deals::default_stages()
        } else {
            self.stages.clone()
        }
    }
}
