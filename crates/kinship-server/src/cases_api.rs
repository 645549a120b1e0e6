//! `/api/v1/cases`: the case queue over every connected help desk, sorted by the next SLA
//! clock due, and SLA attainment per team. Cases are work items like tasks: reading them
//! needs `read_tasks`. The queue names the profiles behind it and is audited as a read of
//! each; subjects are free text and go only to roles that see identities.

use crate::http::{bad_request, ApiError, Caller};
use crate::native::{checked_name, native_source, write_native, written};
use crate::state::AppState;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use kinship_pipeline::briefing::iso;
use kinship_pipeline::cases::{self, QueuedCase};
use kinship_policy::Capability;
use kinship_service::sla::ClockState;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

#[derive(utoipa::OpenApi)]
#[openapi(paths(case_queue, case_attainment, open_case, get_case, reply_to_case, update_case))]
pub struct CasesDoc;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/v1/cases", get(case_queue).post(open_case))
        .route("/api/v1/cases/attainment", get(case_attainment))
        .merge(native_routes())
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

/// The queue: open cases first by their next SLA clock due, with every clock.
#[utoipa::path(get, path = "/api/v1/cases", params(QueueQuery), security(("bearer" = [])),
    responses((status = 200, description = "`{as_of, total, counts, cases: [{number, requester, subject, status, priority, team, next_due, state, sla}]}`")))]
pub(crate) async fn case_queue(
    caller: Caller,
    State(state): State<Arc<AppState>>,
    Query(q): Query<QueueQuery>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Capability::ReadTasks)?;
    let selection = cases::Selection { status: q.status, team: q.team, assignee: q.assignee, state: q.state };
    selection.check().map_err(bad_request)?;
    let judged = judged(&state).await?;
    let now = judged.0;
    let chosen = selection.apply(&judged.1);
    let state_of = |c: &QueuedCase| c.state().map(ClockState::as_str);
    let mut counts = std::collections::BTreeMap::<&str, u64>::new();
    for c in &chosen {
        *counts.entry(state_of(c).unwrap_or("none")).or_default() += 1;
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
    let teams = cases::attainment_rows(&report);
    // Counts per team hold no one's data: not audited, as the dashboard's totals are not.
    Ok(Json(json!({ "from": iso(from), "to": iso(now), "teams": teams })))
}

/// Native cases: opened, answered and updated here, written as Segment messages to
/// `[service] source` and read back like any help desk's (`CaseMapping::native`). Working
/// cases needs `work_tasks`; each write is audited with its profile.
pub fn native_routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/v1/cases/{source}/{number}", get(get_case))
        .route("/api/v1/cases/{source}/{number}/replies", axum::routing::post(reply_to_case))
        .route("/api/v1/cases/{source}/{number}/update", axum::routing::post(update_case))
}

const PRIORITIES: [&str; 4] = ["low", "normal", "high", "urgent"];
/// Longest subject and reply accepted, in characters.
const MAX_SUBJECT: usize = 300;
const MAX_BODY: usize = 20_000;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCase {
    /// The profile that asks.
    pub profile: String,
    pub subject: String,
    /// `low`, `normal` (default), `high` or `urgent`.
    pub priority: Option<String>,
    pub team: Option<String>,
    /// Where it came from (`phone`, `chat`…); SLA policies may choose by it. Default `native`.
    pub channel: Option<String>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewReply {
    pub body: String,
    /// A public reply the requester sees; `false` makes it an internal note.
    pub public: bool,
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CaseUpdate {
    /// `new`, `open`, `pending`, `on_hold`, `solved` or `closed`.
    pub status: Option<String>,
    pub priority: Option<String>,
    pub team: Option<String>,
    pub assignee: Option<String>,
}

fn checked_priority(p: Option<&str>) -> Result<Option<String>, ApiError> {
    match p.map(|p| p.trim().to_lowercase()) {
        Some(p) if !PRIORITIES.contains(&p.as_str()) => Err(bad_request(format!("unknown priority `{p}`: use {}", PRIORITIES.join(", ")))),
        other => Ok(other),
    }
}

/// The case as the kept queue holds it (this process's own writes drop the kept queue; other
/// processes' show within five seconds).
async fn find_case(state: &Arc<AppState>, source: &str, number: &str) -> Result<(i64, QueuedCase), ApiError> {
    let judged = judged(state).await?;
    let found = judged.1.iter().find(|c| c.case.source == source && c.case.number == number);
    found.map(|c| (judged.0, c.clone())).ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no case {number} in {source}")))
}

/// Opens a native case for a profile.
#[utoipa::path(post, path = "/api/v1/cases", request_body = NewCase, security(("bearer" = [])),
    responses((status = 201, description = "`{source, number}`"), (status = 409, description = "Native cases are off, or the profile cannot be named")))]
pub(crate) async fn open_case(
    caller: Caller,
    State(state): State<Arc<AppState>>,
    Json(body): Json<NewCase>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.require(Capability::WorkTasks)?;
    caller.require(Capability::ReadProfiles)?;
    let source = native_source(&state)?;
    let lookup = body.profile.clone();
    if state.read(move |s| s.profile(&lookup)).await?.is_none() {
        return Err(ApiError(StatusCode::NOT_FOUND, format!("no profile {}", body.profile)));
    }
    let (team, channel) = (checked_name("team", body.team.as_deref())?, checked_name("channel", body.channel.as_deref())?);
    let subject = body.subject.trim();
    if subject.is_empty() || subject.chars().count() > MAX_SUBJECT {
        return Err(bad_request(format!("the subject needs 1 to {MAX_SUBJECT} characters")));
    }
    let priority = checked_priority(body.priority.as_deref())?.unwrap_or_else(|| "normal".into());
    let number = format!("K-{}", &crate::auth::new_secret("")[..10]);
    let properties = json!({
        "case": number, "status": "new", "priority": priority, "subject": subject, "team": team,
        "channel": channel.as_deref().unwrap_or("native"),
    });
    let resolved = write_native(&state, &source, &body.profile, &number, kinship_service::cases::NATIVE_UPDATED, properties).await?;
    caller.audit("case.open", Some(&body.profile), "POST /api/v1/cases", json!({ "case": number })).await?;
    Ok((written(resolved), Json(json!({ "source": source, "number": number }))))
}

/// One case with its clocks and conversation.
#[utoipa::path(get, path = "/api/v1/cases/{source}/{number}", params(("source" = String, Path), ("number" = String, Path)), security(("bearer" = [])),
    responses((status = 200, description = "The case"), (status = 404, description = "No such case")))]
pub(crate) async fn get_case(
    caller: Caller,
    State(state): State<Arc<AppState>>,
    Path((source, number)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Capability::ReadTasks)?;
    let (now, found) = find_case(&state, &source, &number).await?;
    let mut one = Value::Array(vec![kinship_pipeline::briefing::case_json(&found.case, &found.clocks)]);
    kinship_pipeline::briefing::cases_for_role(&mut one, caller.policy());
    caller.scrub(&mut one, &[]);
    let mut case = one.as_array_mut().and_then(|a| a.pop()).unwrap_or_default();
    case["state"] = json!(found.state());
    case["as_of"] = json!(iso(now));
    case["native"] = json!(state.config().service.source.as_deref() == Some(source.as_str()));
    caller.audit("case.read", Some(&found.case.requester), "GET /api/v1/cases/{source}/{number}", json!({ "case": number })).await?;
    Ok(Json(case))
}

/// A public reply or an internal note on a native case, by the caller.
#[utoipa::path(post, path = "/api/v1/cases/{source}/{number}/replies", params(("source" = String, Path), ("number" = String, Path)), request_body = NewReply, security(("bearer" = [])),
    responses((status = 201, description = "Written"), (status = 422, description = "A connected help desk's case")))]
pub(crate) async fn reply_to_case(
    caller: Caller,
    State(state): State<Arc<AppState>>,
    Path((source, number)): Path<(String, String)>,
    Json(body): Json<NewReply>,
) -> Result<StatusCode, ApiError> {
    caller.require(Capability::WorkTasks)?;
    let native = native_source(&state)?;
    if source != native {
        return Err(ApiError(StatusCode::UNPROCESSABLE_ENTITY, format!("case {number} belongs to {source}: answer it in that help desk")));
    }
    let text = body.body.trim();
    if text.is_empty() || text.chars().count() > MAX_BODY {
        return Err(bad_request(format!("the reply needs 1 to {MAX_BODY} characters")));
    }
    let (_, found) = find_case(&state, &source, &number).await?;
    // A note's text goes under `internal_note`, which roles that hide notes do not read on the
    // timeline either.
    let text_field = if body.public { "body" } else { "internal_note" };
    let properties =
        json!({ "comment_on": number, "author_role": "agent", "author": caller.name(), "public": body.public, text_field: text });
    let resolved =
        write_native(&state, &source, &found.case.requester, &number, kinship_service::cases::NATIVE_COMMENT, properties).await?;
    let what = if body.public { "case.reply" } else { "case.note" };
    caller.audit(what, Some(&found.case.requester), "POST /api/v1/cases/{source}/{number}/replies", json!({ "case": number })).await?;
    Ok(written(resolved))
}

/// Changes a native case's status, priority, team or assignee.
#[utoipa::path(post, path = "/api/v1/cases/{source}/{number}/update", params(("source" = String, Path), ("number" = String, Path)), request_body = CaseUpdate, security(("bearer" = [])),
    responses((status = 201, description = "Written"), (status = 422, description = "A connected help desk's case")))]
pub(crate) async fn update_case(
    caller: Caller,
    State(state): State<Arc<AppState>>,
    Path((source, number)): Path<(String, String)>,
    Json(change): Json<CaseUpdate>,
) -> Result<StatusCode, ApiError> {
    caller.require(Capability::WorkTasks)?;
    let native = native_source(&state)?;
    if source != native {
        return Err(ApiError(StatusCode::UNPROCESSABLE_ENTITY, format!("case {number} belongs to {source}: update it in that help desk")));
    }
    let status = match change.status.as_deref() {
        Some(s) => Some(
            kinship_service::sla::CaseStatus::parse(s)
                .ok_or_else(|| bad_request(format!("unknown status `{s}`: use new, open, pending, on_hold, solved or closed")))?,
        ),
        None => None,
    };
    let priority = checked_priority(change.priority.as_deref())?;
    let (team, assignee) = (checked_name("team", change.team.as_deref())?, checked_name("assignee", change.assignee.as_deref())?);
    let (_, found) = find_case(&state, &source, &number).await?;
    // Only what changes is written: a version leaves out what it does not change, so two
    // updates at once do not undo each other.
    let mut properties = serde_json::Map::new();
    properties.insert("case".into(), json!(number));
    for (name, value) in
        [("status", status.map(|s| s.as_str().to_string())), ("priority", priority), ("team", team), ("assignee", assignee)]
    {
        if let Some(value) = value {
            properties.insert(name.into(), json!(value));
        }
    }
    let requester = found.case.requester;
    let resolved =
        write_native(&state, &source, &requester, &number, kinship_service::cases::NATIVE_UPDATED, Value::Object(properties)).await?;
    caller.audit("case.update", Some(&requester), "POST /api/v1/cases/{source}/{number}/update", json!({ "case": number })).await?;
    Ok(written(resolved))
}
