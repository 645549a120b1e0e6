//! `/api/v1/cases`: the case queue over every connected help desk, sorted by the next SLA
//! clock due, and SLA attainment per team. Cases are work items like tasks: reading them
//! needs `read_tasks`. The queue names the profiles behind it and is audited as a read of
//! each; subjects are free text and go only to roles that see identities.

use crate::http::{bad_request, ApiError, Caller};
use crate::state::AppState;
use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use kinship_pipeline::cases::{self, QueuedCase};
use kinship_policy::Capability;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

#[derive(utoipa::OpenApi)]
#[openapi(paths(case_queue, case_attainment))]
pub struct CasesDoc;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/api/v1/cases", get(case_queue)).route("/api/v1/cases/attainment", get(case_attainment))
}

/// Most cases one page returns.
const MAX_PAGE: usize = 500;

#[derive(Default, Deserialize, utoipa::IntoParams)]
pub(crate) struct QueueQuery {
    /// `open` (default), `done` or `all`.
    pub status: Option<String>,
    pub team: Option<String>,
    pub assignee: Option<String>,
    /// The most urgent running clock's state: `breached`, `warning`, `active` or `paused`.
    pub state: Option<String>,
    /// Cases per page (default 50, at most 500).
    pub limit: Option<usize>,
    pub offset: Option<usize>,
}

/// Every case judged as of the data's present, in queue order. Clocks for every case cost
/// a scan of the help desks' records and ~0.4 s at 50,000 tickets (BENCHMARKS.md), so the
/// server keeps the judged queue (`AppState::case_queue`): five seconds while records are
/// resolved, a minute while nothing changes (clocks cross their targets as time goes by),
/// never past an erasure, a rebuild or a new configuration. Under steady ingest a new ticket
/// reaches the queue within five seconds.
///
/// Not done yet: judging only the cases whose records changed.
async fn judged(state: &Arc<AppState>) -> Result<Arc<(i64, Vec<QueuedCase>)>, ApiError> {
    let config = state.config().clone();
    let reader = state.clone();
    Ok(state
        .read(move |s| {
            reader.case_queue.get(s, &config, 5, 60, || {
                let now = reader.data_now(s)?;
                Ok((now, cases::all_cases(s, &config, now)?))
            })
        })
        .await?)
}

fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map_or_else(|| ms.to_string(), |t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

/// The queue: open cases first by their next SLA clock due, with every clock.
#[utoipa::path(get, path = "/api/v1/cases", params(QueueQuery), security(("bearer" = [])),
    responses((status = 200, description = "`{as_of, total, counts, cases: [{number, requester, subject, status, priority, team, next_due, state, sla}]}`")))]
pub(crate) async fn case_queue(
    caller: Caller,
    State(state): State<Arc<AppState>>,
    Query(q): Query<QueueQuery>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Capability::ReadTasks)?;
    let status = q.status.as_deref().unwrap_or("open");
    if !matches!(status, "open" | "done" | "all") {
        return Err(bad_request(format!("unknown status `{status}`: use open, done or all")));
    }
    if let Some(s) = q.state.as_deref().filter(|s| !matches!(*s, "breached" | "warning" | "active" | "paused")) {
        return Err(bad_request(format!("unknown state `{s}`: use breached, warning, active or paused")));
    }
    let judged = judged(&state).await?;
    let (now, all) = (judged.0, &judged.1);
    let state_of = |c: &QueuedCase| c.state().map(|s| serde_json::to_value(s).unwrap_or_default().as_str().unwrap_or_default().to_string());
    let chosen: Vec<&QueuedCase> = all
        .iter()
        .filter(|c| match status {
            "open" => !c.case.status.is_done(),
            "done" => c.case.status.is_done(),
            _ => true,
        })
        .filter(|c| q.team.as_ref().is_none_or(|t| c.case.team.as_ref() == Some(t)))
        .filter(|c| q.assignee.as_ref().is_none_or(|a| c.case.assignee.as_ref() == Some(a)))
        .filter(|c| q.state.as_ref().is_none_or(|s| state_of(c).as_ref() == Some(s)))
        .collect();
    let mut counts = std::collections::BTreeMap::<String, u64>::new();
    for c in &chosen {
        *counts.entry(state_of(c).unwrap_or_else(|| "none".into())).or_default() += 1;
    }
    let (limit, offset) = (q.limit.unwrap_or(50).clamp(1, MAX_PAGE), q.offset.unwrap_or(0));
    let page: Vec<&QueuedCase> = chosen.iter().skip(offset).take(limit).copied().collect();
    let mut cases = Value::Array(
        page.iter()
            .map(|c| {
                let mut v = kinship_pipeline::briefing::case_json(&c.case, &c.clocks);
                v["state"] = json!(state_of(c));
                v["next_due"] = json!(c.next_due.map(|d| iso(d * 1000)));
                v
            })
            .collect(),
    );
    kinship_pipeline::briefing::cases_for_role(&mut cases, caller.policy());
    // Contact details in a subject or comment are masked for roles that may not read them.
    caller.scrub(&mut cases, &[]);
    let profiles: Vec<&str> = page.iter().map(|c| c.case.requester.as_str()).collect();
    caller.audit("case.list", None, "GET /api/v1/cases", json!({ "cases": page.len(), "profiles": profiles })).await?;
    Ok(Json(json!({ "as_of": iso(now), "total": chosen.len(), "counts": counts, "cases": cases })))
}

#[derive(Default, Deserialize, utoipa::IntoParams)]
pub(crate) struct AttainmentQuery {
    /// Clocks that ended in the last this many days, as of the data's present (default 30).
    pub days: Option<u32>,
}

/// SLA attainment per team and metric: clocks that ended in the period within their target.
#[utoipa::path(get, path = "/api/v1/cases/attainment", params(AttainmentQuery), security(("bearer" = [])),
    responses((status = 200, description = "`{from, to, teams: [{team, metric, achieved, ended, rate}]}`")))]
pub(crate) async fn case_attainment(
    caller: Caller,
    State(state): State<Arc<AppState>>,
    Query(q): Query<AttainmentQuery>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Capability::ReadTasks)?;
    let days = q.days.unwrap_or(30);
    if !(1..=3660).contains(&days) {
        return Err(bad_request(format!("days {days} is out of range: give 1 to 3660")));
    }
    let judged = judged(&state).await?;
    let (now, all) = (judged.0, &judged.1);
    let from = now - i64::from(days) * 86_400_000;
    let report = cases::attainment(all, from, now + 1);
    let teams: Vec<Value> = report
        .iter()
        .map(|((team, metric), (achieved, ended))| {
            json!({ "team": team, "metric": metric.as_str(), "achieved": achieved, "ended": ended, "rate": *achieved as f64 / (*ended).max(1) as f64 })
        })
        .collect();
    // Counts per team hold no one's data: not audited, as the dashboard's totals are not.
    Ok(Json(json!({ "from": iso(from), "to": iso(now), "teams": teams })))
}
