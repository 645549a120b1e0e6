//! The case queue over every connected help desk: each case-mapped source's tickets (and
//! comment rows) read with the profile that asked, their SLA clocks as of the data's
//! present, sorted by the next clock due; and SLA attainment per team.

use crate::Result;
use kinship_core::Config;
use kinship_service::cases::{Case, CaseRow};
use kinship_service::sla::{self, Clock, ClockState, Metric, Sla};
use kinship_store::Database;
use rayon::prelude::*;
use serde_json::{Map, Value};

/// A case with its clocks as of the moment it was judged.
#[derive(Debug, Clone)]
pub struct QueuedCase {
    pub case: Case,
    pub clocks: Vec<Clock>,
    /// The earliest due running clock: when the case needs attention.
    pub next_due: Option<i64>,
}

impl QueuedCase {
    /// The most urgent state among its running clocks (breached, warning, active, paused), or
    /// `None` when none runs.
    pub fn state(&self) -> Option<ClockState> {
        let rank = |s: ClockState| match s {
            ClockState::Breached => 0,
            ClockState::Warning => 1,
            ClockState::Active => 2,
            ClockState::Paused => 3,
            ClockState::Achieved => 4,
        };
        self.clocks.iter().filter(|c| c.end.is_none()).map(|c| c.state).min_by_key(|s| rank(*s))
    }
}

/// One record of a source that maps cases or deals, parsed, with the profile holding it:
/// rows are parsed first and borrowed by the engines after.
pub(crate) struct MappedRow<'c> {
    pub source: &'c str,
    pub profile: String,
    pub key: String,
    pub fields: Map<String, Value>,
    pub time: Option<i64>,
}

/// Every record of the sources `wanted` picks, through the log's (source, key) index.
pub(crate) fn mapped_rows<'c>(
    store: &dyn Database,
    config: &'c Config,
    wanted: impl Fn(&kinship_core::SourceConfig) -> bool,
) -> Result<Vec<MappedRow<'c>>> {
    let mut rows = Vec::new();
    for name in config.sources.iter().filter(|(_, s)| wanted(s)).map(|(name, _)| name) {
        store.scan_source_records(name, &mut |profile, r| {
            if let Ok(Value::Object(fields)) = serde_json::from_str(r.payload) {
                rows.push(MappedRow { source: name, profile: profile.to_string(), key: r.key.to_string(), fields, time: r.timestamp });
            }
        })?;
    }
    Ok(rows)
}

/// Every case, as of `now_ms`: open ones first by their next due time (none due last), then
/// the rest by when they were opened, newest first.
pub fn all_cases(store: &dyn Database, config: &Config, now_ms: i64) -> Result<Vec<QueuedCase>> {
    let sla = Sla::compile(&config.service).map_err(|e| crate::PipelineError::Config(format!("[service]: {e}")))?;
    let rows = mapped_rows(store, config, |s| s.case.is_some())?;
    let input = rows.iter().filter_map(|r| {
        let mapping = config.sources.get(r.source)?.case.as_ref()?;
        Some(CaseRow { mapping, owner: &r.profile, source: r.source, key: &r.key, fields: &r.fields, time: r.time })
    });
    let (cases, _) = kinship_service::cases::cases(input);
    let now = now_ms.div_euclid(1000);
    let mut queued: Vec<QueuedCase> = cases
        .into_par_iter()
        .map(|case| {
            let clocks = sla.clocks(&case.log, now);
            let next_due = if case.status.is_done() { None } else { sla::next_due(&clocks) };
            QueuedCase { case, clocks, next_due }
        })
        .collect();
    queued.sort_by(|a, b| {
        let key = |q: &QueuedCase| (q.case.status.is_done(), q.next_due.unwrap_or(i64::MAX), std::cmp::Reverse(q.case.created));
        key(a).cmp(&key(b))
    });
    Ok(queued)
}

/// Which cases a queue view shows.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// `open` (the default), `done` or `all`.
    pub status: Option<String>,
    pub team: Option<String>,
    pub assignee: Option<String>,
    /// The most urgent running clock's state (`breached`, `warning`, `active`, `paused`).
    pub state: Option<String>,
}

impl Selection {
    /// The selection's statuses and states checked, each error naming the accepted words.
    pub fn check(&self) -> std::result::Result<(), String> {
        if let Some(s) = self.status.as_deref().filter(|s| !matches!(*s, "open" | "done" | "all")) {
            return Err(format!("unknown status `{s}`: use open, done or all"));
        }
        if let Some(s) = self.state.as_deref().filter(|s| !matches!(*s, "breached" | "warning" | "active" | "paused")) {
            return Err(format!("unknown state `{s}`: use breached, warning, active or paused"));
        }
        Ok(())
    }

    /// The cases it shows, in queue order.
    pub fn apply<'a>(&self, cases: &'a [QueuedCase]) -> Vec<&'a QueuedCase> {
        cases
            .iter()
            .filter(|c| match self.status.as_deref().unwrap_or("open") {
                "open" => !c.case.status.is_done(),
                "done" => c.case.status.is_done(),
                _ => true,
            })
            .filter(|c| self.team.as_ref().is_none_or(|t| c.case.team.as_ref() == Some(t)))
            .filter(|c| self.assignee.as_ref().is_none_or(|a| c.case.assignee.as_ref() == Some(a)))
            .filter(|c| self.state.as_deref().is_none_or(|s| c.state().map(ClockState::as_str) == Some(s)))
            .collect()
    }
}

/// Attainment as rows: `{team, metric, achieved, ended, rate}`.
pub fn attainment_rows(report: &std::collections::BTreeMap<(String, Metric), (u64, u64)>) -> Vec<Value> {
    report
        .iter()
        .map(|((team, metric), (achieved, ended))| {
            serde_json::json!({ "team": team, "metric": metric.as_str(), "achieved": achieved, "ended": ended, "rate": *achieved as f64 / (*ended).max(1) as f64 })
        })
        .collect()
}

/// Per team (`unassigned` for none) and metric: clocks that ended within `[from_ms, to_ms)`
/// and met their target, and all that ended then.
pub fn attainment(cases: &[QueuedCase], from_ms: i64, to_ms: i64) -> std::collections::BTreeMap<(String, Metric), (u64, u64)> {
    let (from, to) = (from_ms.div_euclid(1000), to_ms.div_euclid(1000));
    let ended: Vec<(String, Vec<Clock>)> = cases
        .iter()
        .map(|q| {
            let team = q.case.team.clone().unwrap_or_else(|| "unassigned".into());
            (team, q.clocks.iter().filter(|c| c.end.is_some_and(|e| e >= from && e < to)).cloned().collect())
        })
        .collect();
    sla::attainment(ended.iter().map(|(team, clocks)| (team.as_str(), clocks.as_slice())))
}

/// The event a running SLA clock past its target is, for flows to start on.
pub const CASE_SLA_BREACHED: &str = "Case SLA Breached";
/// The event a running SLA clock within its policy's `warn_before` is.
pub const CASE_SLA_WARNING: &str = "Case SLA Warning";

/// Records for `[flows] source`: one per running clock of an open case that has passed its
/// target (`Case SLA Breached`, at the moment it did) or is within its policy's warning time
/// (`Case SLA Warning`), keyed by case, metric, the clock's start and the state, so the
/// log's unique (source, key) keeps each once however often this runs. Each carries the one
/// identifier only the requester's profile holds (`flows::own_identifier`, as a flow's trait
/// changes do); a requester without one is skipped. Empty without `[flows] source`.
pub fn sla_events(store: &dyn Database, config: &Config, cases: &[QueuedCase], now_ms: i64) -> Result<Vec<kinship_core::NewRecord>> {
    if config.flows.source.is_none() {
        return Ok(Vec::new());
    }
    let iso = |s: i64| kinship_expr::format_timestamp(s * 1000);
    let mut anchors: std::collections::HashMap<&str, Option<kinship_core::Identifier>> = std::collections::HashMap::new();
    let mut out = Vec::new();
    for q in cases.iter().filter(|q| !q.case.status.is_done()) {
        for clock in q.clocks.iter().filter(|c| c.end.is_none()) {
            let (event, state, at_ms) = match clock.state {
                ClockState::Breached => (CASE_SLA_BREACHED, "breached", clock.breached_at.map_or(now_ms, |t| t * 1000)),
                ClockState::Warning => (CASE_SLA_WARNING, "warning", now_ms),
                _ => continue,
            };
            let anchor = match anchors.get(q.case.requester.as_str()) {
                Some(known) => known.clone(),
                None => {
                    let found = crate::flows::own_identifier(store, config, &q.case.requester)?;
                    anchors.insert(&q.case.requester, found.clone());
                    found
                }
            };
            let Some(anchor) = anchor else { continue };
            let key = format!("sla:{}:{}:{}:{}:{state}", q.case.source, q.case.number, clock.metric.as_str(), clock.start);
            let payload = serde_json::json!({
                "type": "track", "messageId": key, "timestamp": kinship_expr::format_timestamp(at_ms), "event": event,
                "properties": {
                    "case": q.case.number, "case_source": q.case.source, "metric": clock.metric.as_str(), "policy": clock.policy,
                    "priority": q.case.priority, "team": q.case.team, "assignee": q.case.assignee,
                    "target_minutes": clock.target_minutes, "due": clock.due.map(iso),
                },
            });
            out.push(kinship_core::NewRecord {
                key,
                payload: payload.to_string(),
                identifiers: kinship_core::encode_identifiers(std::slice::from_ref(&anchor)),
                timestamp: Some(at_ms),
            });
        }
    }
    Ok(out)
}
