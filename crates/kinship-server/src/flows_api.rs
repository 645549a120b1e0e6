//! `/api/v1/flows`, `/api/v1/tasks` and `/api/v1/deliveries`: save and dry-run flows, read
//! their runs' traces, work the task queue, and look at and replay dead deliveries. A task's
//! context is a person's data: it is projected through the caller's role and every read is
//! audited, as a profile is.

use crate::http::{bad_request, ApiError, Caller};
use crate::state::AppState;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use kinship_pipeline::flows::Held;
use kinship_policy::Capability;
use kinship_store::{TaskFilter, TaskRow, TASK_STATUSES};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// Most tasks, runs or deliveries one request returns.
const MAX_LIST: usize = 500;

#[derive(utoipa::OpenApi)]
#[openapi(paths(
    list_flows,
    save_flow,
    dry_run,
    flow_runs,
    list_tasks,
    get_task,
    claim_task,
    set_task_status,
    list_deliveries,
    replay_deliveries
))]
pub struct FlowsDoc;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/v1/flows", get(list_flows).post(save_flow))
        .route("/api/v1/flows/dry-run", post(dry_run))
        .route("/api/v1/flows/{name}", axum::routing::delete(delete_flow))
        .route("/api/v1/flows/{name}/runs", get(flow_runs))
        .route("/api/v1/tasks", get(list_tasks))
        .route("/api/v1/tasks/{id}", get(get_task))
        .route("/api/v1/tasks/{id}/claim", post(claim_task))
        .route("/api/v1/tasks/{id}/status", post(set_task_status))
        .route("/api/v1/deliveries", get(list_deliveries))
        .route("/api/v1/deliveries/replay", post(replay_deliveries))
}

/// The newest version of every flow.
#[utoipa::path(get, path = "/api/v1/flows", security(("bearer" = [])), responses((status = 200, description = "`{\"flows\": [{name, version, definition, created_at, created_by}]}`")))]
pub(crate) async fn list_flows(caller: Caller, State(state): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    caller.require(Capability::ReadFlows)?;
    let flows = state.read(|s| s.flows()).await?;
    Ok(Json(json!({ "flows": flows })))
}

/// Saves a flow (TOML, or JSON when the body starts with `{`) as its next version. It acts on
/// events that arrive from now on; use the dry run to see what it would have done before.
#[utoipa::path(post, path = "/api/v1/flows", request_body(content = String, description = "The flow, TOML or JSON"), security(("bearer" = [])),
    responses((status = 201, description = "`{name, version}`"), (status = 400, description = "The flow does not parse or names something kinship.toml lacks; the message says where")))]
pub(crate) async fn save_flow(
    caller: Caller,
    State(state): State<Arc<AppState>>,
    body: String,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.require(Capability::ManageFlows)?;
    let (s, by) = (state.clone(), caller.actor().to_string());
    let (name, version) = tokio::task::spawn_blocking(move || {
        let turn = s.writer.turn();
        let _turn = turn.lock().expect("not poisoned");
        let mut store = kinship_store::open(&s.database)?;
        kinship_pipeline::flows::save_flow(&mut *store, &s.config(), &body, &by)
    })
    .await
    .expect("does not panic")
    .map_err(invalid_as_bad_request)?;
    // The definition may quote values that name a person: the log keeps the name and version.
    caller.audit("flow.save", None, "POST /api/v1/flows", json!({ "flow": name, "version": version })).await?;
    Ok((StatusCode::CREATED, Json(json!({ "name": name, "version": version }))))
}

/// Stops a flow: every version is deleted; its runs and tasks stay.
#[utoipa::path(delete, path = "/api/v1/flows/{name}", params(("name" = String, Path, description = "Flow name")), security(("bearer" = [])),
    responses((status = 200, description = "`{name, versions}`"), (status = 404, description = "No such flow")))]
pub(crate) async fn delete_flow(
    caller: Caller,
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Capability::ManageFlows)?;
    let (s, flow) = (state.clone(), name.clone());
    let versions = tokio::task::spawn_blocking(move || {
        let turn = s.writer.turn();
        let _turn = turn.lock().expect("not poisoned");
        kinship_store::open(&s.database)?.delete_flow(&flow)
    })
    .await
    .expect("does not panic")?;
    if versions == 0 {
        return Err(ApiError(StatusCode::NOT_FOUND, format!("no flow `{name}`")));
    }
    caller.audit("flow.delete", None, "DELETE /api/v1/flows/{name}", json!({ "flow": name })).await?;
    Ok(Json(json!({ "name": name, "versions": versions })))
}

fn invalid_as_bad_request(e: kinship_pipeline::PipelineError) -> ApiError {
    match e {
        kinship_pipeline::PipelineError::Config(reason) => bad_request(reason),
        other => other.into(),
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
pub(crate) struct DryRunQuery {
    /// How far back to look (default 30 days, at most 3650).
    pub days: Option<u32>,
    /// How many runs to show with their traces (default 10, at most 100).
    pub samples: Option<usize>,
}

/// What a flow (saved or not, in the body) would have done over the last days: runs, people,
/// tasks and deliveries, and sample runs with the trace of which condition matched on which
/// values. Nothing is written.
#[utoipa::path(post, path = "/api/v1/flows/dry-run", params(DryRunQuery), request_body(content = String, description = "The flow, TOML or JSON"),
    security(("bearer" = [])), responses((status = 200, description = "`{flow, days, triggers, runs, profiles, tasks, deliveries, samples}`")))]
pub(crate) async fn dry_run(
    caller: Caller,
    State(state): State<Arc<AppState>>,
    Query(query): Query<DryRunQuery>,
    body: String,
) -> Result<Json<Value>, ApiError> {
    caller.require(Capability::ManageFlows)?;
    let days = query.days.unwrap_or(30).min(3650);
    let samples = query.samples.unwrap_or(10).min(100);
    let s = state.clone();
    let result = state
        .read(move |store| {
            kinship_pipeline::flows::dry_run(
                store,
                &s.config(),
                &s.data_dir,
                &body,
                days,
                samples,
                Some(Held { audience: &s.audience, database: &s.database }),
            )
        })
        .await
        .map_err(invalid_as_bad_request)?;
    let mut value = serde_json::to_value(&result).map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let profiles: Vec<Value> = result.samples.iter().map(|s| s["profile_id"].clone()).collect();
    caller.scrub(&mut value, &[]);
    caller
        .audit(
            "flow.dry_run",
            None,
            "POST /api/v1/flows/dry-run",
            json!({ "flow": result.flow, "days": days, "sampled_profiles": profiles }),
        )
        .await?;
    Ok(Json(value))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub(crate) struct LimitQuery {
    /// Most rows (default 50, at most 500).
    pub limit: Option<usize>,
}

/// A flow's runs, newest first, each with its trace and the facts it gathered.
#[utoipa::path(get, path = "/api/v1/flows/{name}/runs", params(("name" = String, Path, description = "Flow name"), LimitQuery),
    security(("bearer" = [])), responses((status = 200, description = "`{\"runs\": [{key, version, profile_id, source, record_key, at, trace}]}`")))]
pub(crate) async fn flow_runs(
    caller: Caller,
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    Query(query): Query<LimitQuery>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Capability::ReadFlows)?;
    let limit = query.limit.unwrap_or(50).min(MAX_LIST);
    let flow = name.clone();
    let runs = state.read(move |s| s.flow_runs(&flow, limit)).await?;
    let profiles: Vec<&str> = runs.iter().map(|r| r.profile_id.as_str()).collect();
    caller.audit("flow.trace", None, "GET /api/v1/flows/{name}/runs", json!({ "flow": name, "profiles": profiles })).await?;
    let mut value = json!({ "runs": runs });
    caller.scrub(&mut value, &[]);
    Ok(Json(value))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub(crate) struct TaskQuery {
    /// `open`, `in_progress`, `waiting`, `done`, `cancelled`, or `active` (the first three).
    pub status: Option<String>,
    pub team: Option<String>,
    pub assignee: Option<String>,
    /// Only the caller's own tasks.
    pub mine: Option<bool>,
    /// Only one profile's tasks.
    pub profile: Option<String>,
    pub limit: Option<usize>,
}

/// Tasks, newest first, each with its gathered context as the caller's role may see it.
#[utoipa::path(get, path = "/api/v1/tasks", params(TaskQuery), security(("bearer" = [])), responses((status = 200, description = "`{\"tasks\": [...]}`")))]
pub(crate) async fn list_tasks(
    caller: Caller,
    State(state): State<Arc<AppState>>,
    Query(query): Query<TaskQuery>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Capability::ReadTasks)?;
    if let Some(status) = &query.status {
        if status != "active" && !TASK_STATUSES.contains(&status.as_str()) {
            return Err(bad_request(format!("unknown status `{status}`: use active or one of {}", TASK_STATUSES.join(", "))));
        }
    }
    let filter = TaskFilter {
        status: query.status.clone(),
        team: query.team.clone(),
        assignee: if query.mine == Some(true) { Some(caller.name().to_string()) } else { query.assignee.clone() },
        profile: query.profile.clone(),
    };
    let limit = query.limit.unwrap_or(50).min(MAX_LIST);
    let tasks = state.read(move |s| s.tasks(&filter, limit)).await?;
    let profiles: Vec<&str> = tasks.iter().map(|t| t.profile_id.as_str()).collect();
    let ids: Vec<i64> = tasks.iter().map(|t| t.id).collect();
    caller.audit("task.list", None, "GET /api/v1/tasks", json!({ "tasks": ids, "profiles": profiles })).await?;
    Ok(Json(json!({ "tasks": tasks.iter().map(|t| task_view(&caller, t)).collect::<Vec<_>>() })))
}

/// One task with its context.
#[utoipa::path(get, path = "/api/v1/tasks/{id}", params(("id" = i64, Path, description = "Task id")), security(("bearer" = [])),
    responses((status = 200, description = "The task"), (status = 404, description = "No such task")))]
pub(crate) async fn get_task(caller: Caller, State(state): State<Arc<AppState>>, Path(id): Path<i64>) -> Result<Json<Value>, ApiError> {
    caller.require(Capability::ReadTasks)?;
    let task = state.read(move |s| s.task(id)).await?.ok_or_else(|| no_task(id))?;
    caller.audit("task.read", Some(&task.profile_id), "GET /api/v1/tasks/{id}", json!({ "task": id })).await?;
    Ok(Json(task_view(&caller, &task)))
}

fn no_task(id: i64) -> ApiError {
    ApiError(StatusCode::NOT_FOUND, format!("no task {id}"))
}

/// Takes a task: the caller becomes its assignee and it is in progress.
#[utoipa::path(post, path = "/api/v1/tasks/{id}/claim", params(("id" = i64, Path, description = "Task id")), security(("bearer" = [])),
    responses((status = 200, description = "The task"), (status = 404, description = "No such task")))]
pub(crate) async fn claim_task(caller: Caller, State(state): State<Arc<AppState>>, Path(id): Path<i64>) -> Result<Json<Value>, ApiError> {
    caller.require(Capability::WorkTasks)?;
    update(&caller, &state, id, "in_progress", Some(caller.name().to_string()), "task.claim").await
}

#[derive(Deserialize, utoipa::ToSchema)]
pub(crate) struct StatusChange {
    /// `open`, `in_progress`, `waiting`, `done` or `cancelled`.
    pub status: String,
}

/// Moves a task to another status.
#[utoipa::path(post, path = "/api/v1/tasks/{id}/status", params(("id" = i64, Path, description = "Task id")), request_body = StatusChange,
    security(("bearer" = [])), responses((status = 200, description = "The task"), (status = 400, description = "Unknown status"), (status = 404, description = "No such task")))]
pub(crate) async fn set_task_status(
    caller: Caller,
    State(state): State<Arc<AppState>>,
    Path(id): Path<i64>,
    Json(change): Json<StatusChange>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Capability::WorkTasks)?;
    if !TASK_STATUSES.contains(&change.status.as_str()) {
        return Err(bad_request(format!("unknown status `{}`: use one of {}", change.status, TASK_STATUSES.join(", "))));
    }
    update(&caller, &state, id, &change.status.clone(), None, "task.status").await
}

async fn update(
    caller: &Caller,
    state: &Arc<AppState>,
    id: i64,
    status: &str,
    assignee: Option<String>,
    action: &str,
) -> Result<Json<Value>, ApiError> {
    let (s, status_owned) = (state.clone(), status.to_string());
    let task = tokio::task::spawn_blocking(move || {
        let turn = s.writer.turn();
        let _turn = turn.lock().expect("not poisoned");
        let mut store = kinship_store::open(&s.database)?;
        if !store.update_task(id, &status_owned, assignee.as_deref(), kinship_pipeline::now_ms())? {
            return Ok(None);
        }
        store.task(id)
    })
    .await
    .expect("does not panic")
    .map_err(ApiError::from)?
    .ok_or_else(|| no_task(id))?;
    caller.audit(action, Some(&task.profile_id), "POST /api/v1/tasks/{id}", json!({ "task": id, "status": status })).await?;
    Ok(Json(task_view(caller, &task)))
}

/// A task as the caller's role sees it: each fact's value projected like event properties,
/// and the title and body scrubbed.
pub(crate) fn task_view(caller: &Caller, task: &TaskRow) -> Value {
    let empty = Map::new();
    let facts: Vec<Value> = task
        .context
        .as_array()
        .map(|facts| {
            facts
                .iter()
                .map(|fact| {
                    let value = fact["value"].as_object().unwrap_or(&empty);
                    json!({
                        "name": fact["name"],
                        "value": caller.project_fields(value),
                        "source": fact["source"],
                        "record": fact["record"],
                        "at": fact["at_ms"].as_i64().map(kinship_expr::format_timestamp),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let mut view = json!({
        "id": task.id,
        "title": task.title,
        "body": task.body,
        "status": task.status,
        "priority": task.priority,
        "team": task.team,
        "assignee": task.assignee,
        "skill": task.skill,
        "due_at": task.due_at.map(kinship_expr::format_timestamp),
        "created_at": kinship_expr::format_timestamp(task.created_at),
        "updated_at": kinship_expr::format_timestamp(task.updated_at),
        "flow": task.flow,
        "version": task.version,
        "profile_id": task.profile_id,
        "trigger": { "source": task.source, "record_key": task.record_key },
    });
    caller.scrub(&mut view, &[]);
    view["context"] = Value::Array(facts);
    view
}

#[derive(Deserialize, utoipa::IntoParams)]
pub(crate) struct DeliveryQuery {
    /// `pending`, `delivered`, `dead` (the default) or `withheld`.
    pub status: Option<String>,
    pub endpoint: Option<String>,
    /// Created at or after this time, milliseconds since the Unix epoch.
    pub since: Option<i64>,
    pub limit: Option<usize>,
}

/// Deliveries in one status, oldest first; dead ones keep the full request and the last answer.
#[utoipa::path(get, path = "/api/v1/deliveries", params(DeliveryQuery), security(("bearer" = [])), responses((status = 200, description = "`{\"deliveries\": [...], \"counts\": [...]}`")))]
pub(crate) async fn list_deliveries(
    caller: Caller,
    State(state): State<Arc<AppState>>,
    Query(query): Query<DeliveryQuery>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Capability::ManageFlows)?;
    let status = query.status.unwrap_or_else(|| "dead".into());
    let (endpoint, since, limit) = (query.endpoint.clone(), query.since.unwrap_or(0), query.limit.unwrap_or(50).min(MAX_LIST));
    let (rows, counts) = state
        .read(move |s| {
            Ok::<_, kinship_store::StoreError>((s.deliveries(endpoint.as_deref(), &status, since, limit)?, s.delivery_counts()?))
        })
        .await?;
    let profiles: Vec<&str> = rows.iter().map(|d| d.profile_id.as_str()).collect();
    caller.audit("delivery.list", None, "GET /api/v1/deliveries", json!({ "profiles": profiles })).await?;
    let counts: Vec<Value> = counts.iter().map(|(e, s, n)| json!({ "endpoint": e, "status": s, "count": n })).collect();
    let mut value = json!({ "deliveries": rows, "counts": counts });
    caller.scrub(&mut value, &[]);
    Ok(Json(value))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub(crate) struct Replay {
    pub endpoint: String,
    /// Dead deliveries created at or after this time (milliseconds); default all.
    pub since: Option<i64>,
    /// Only this delivery.
    pub id: Option<i64>,
}

/// Puts dead deliveries back in the queue, due now, with the same `webhook-id`.
#[utoipa::path(post, path = "/api/v1/deliveries/replay", request_body = Replay, security(("bearer" = [])), responses((status = 200, description = "`{\"replayed\": N}`")))]
pub(crate) async fn replay_deliveries(
    caller: Caller,
    State(state): State<Arc<AppState>>,
    Json(replay): Json<Replay>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Capability::ManageFlows)?;
    if !state.config().endpoints.contains_key(&replay.endpoint) {
        return Err(bad_request(format!("no endpoint `{}` in kinship.toml", replay.endpoint)));
    }
    let s = state.clone();
    let (endpoint, since, id) = (replay.endpoint.clone(), replay.since.unwrap_or(0), replay.id);
    let replayed = tokio::task::spawn_blocking(move || {
        let turn = s.writer.turn();
        let _turn = turn.lock().expect("not poisoned");
        let mut store = kinship_store::open(&s.database)?;
        store.replay_deliveries(&endpoint, since, id, kinship_pipeline::now_ms())
    })
    .await
    .expect("does not panic")?;
    caller
        .audit("delivery.replay", None, "POST /api/v1/deliveries/replay", json!({ "endpoint": replay.endpoint, "replayed": replayed }))
        .await?;
    Ok(Json(json!({ "replayed": replayed })))
}
