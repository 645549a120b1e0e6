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

/// Every case, as of `now_ms`: open ones first by their next due time (none due last), then
/// the rest by when they were opened, newest first.
pub fn all_cases(store: &dyn Database, config: &Config, now_ms: i64) -> Result<Vec<QueuedCase>> {
    let sla = Sla::compile(&config.service).map_err(|e| crate::PipelineError::Config(format!("[service]: {e}")))?;
    // Rows are parsed first and borrowed by the engine after.
    struct Row<'c> {
        source: &'c str,
        profile: String,
        key: String,
        fields: Map<String, Value>,
        time: Option<i64>,
    }
    let mut rows: Vec<Row<'_>> = Vec::new();
    for name in config.sources.iter().filter(|(_, s)| s.case.is_some()).map(|(name, _)| name) {
        store.scan_source_records(name, &mut |profile, r| {
            if let Ok(Value::Object(fields)) = serde_json::from_str(r.payload) {
                rows.push(Row {
                    source: name,
                    profile: profile.to_string(),
                    key: r.key.to_string(),
                    fields,
                    time: r.timestamp.map(|t| t.div_euclid(1000)),
                });
            }
        })?;
    }
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
