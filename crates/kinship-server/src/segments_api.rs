//! `/api/v1/segments` and `/api/v1/computed-traits`: define, list, show, preview and delete
//! segments and computed traits, and page through a segment's members.

use crate::http::{ApiError, Caller};
use crate::state::AppState;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use kinship_pipeline::{audience, PipelineError};
use kinship_policy::Capability;
use kinship_segments::{DefinitionError, DefinitionSource, Kind, MAX_EXPRESSION_BYTES};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

#[derive(utoipa::OpenApi)]
#[openapi(
    paths(
        list_segments,
        create_segment,
        preview_segment,
        show_segment,
        segment_members,
        delete_segment,
        list_computed,
        create_computed,
        delete_computed
    ),
    components(schemas(NewDefinition, Expression))
)]
pub struct SegmentsDoc;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/v1/segments", get(list_segments).post(create_segment))
        .route("/api/v1/segments/preview", post(preview_segment))
        .route("/api/v1/segments/{name}", get(show_segment).delete(delete_segment))
        .route("/api/v1/segments/{name}/members", get(segment_members))
        .route("/api/v1/computed-traits", get(list_computed).post(create_computed))
        .route("/api/v1/computed-traits/{name}", axum::routing::delete(delete_computed))
}

/// A definition's error as a response: a bad expression says where (line, column, and the
/// line with a caret under the problem).
pub(crate) fn definition_error(e: PipelineError) -> Response {
    let (status, body) = match e {
        PipelineError::Definition(d) => match d {
            DefinitionError::Expression { line, column, message, rendered, .. } => {
                (StatusCode::BAD_REQUEST, json!({ "error": message, "line": line, "column": column, "rendered": rendered }))
            }
            DefinitionError::Exists(..) | DefinitionError::InUse { .. } => (StatusCode::CONFLICT, json!({ "error": d.to_string() })),
            DefinitionError::Unknown(..) => (StatusCode::NOT_FOUND, json!({ "error": d.to_string() })),
            DefinitionError::Cycle(_) | DefinitionError::BadName(..) | DefinitionError::Funnel { .. } | DefinitionError::Health { .. } => {
                (StatusCode::BAD_REQUEST, json!({ "error": d.to_string() }))
            }
        },
        other => (StatusCode::INTERNAL_SERVER_ERROR, json!({ "error": other.to_string() })),
    };
    (status, Json(body)).into_response()
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct NewDefinition {
    pub name: String,
    pub expression: String,
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct Expression {
    pub expression: String,
}

pub(crate) fn bounded(expression: &str) -> Result<(), ApiError> {
    if expression.len() > MAX_EXPRESSION_BYTES {
        return Err(ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, format!("expressions are limited to {MAX_EXPRESSION_BYTES} bytes")));
    }
    Ok(())
}

/// The expression as the audit log keeps it: values redacted, so that it never holds a
/// person's email or phone (and erasure need not rewrite a hash-chained entry).
fn kinship_expr_redacted(expression: &str) -> String {
    kinship_pipeline::readable::redacted(expression)
}

/// Refuses an expression that reads what the caller's role may not read in clear (see
/// `kinship_pipeline::readable`), loading the audience first if nothing was defined yet.
pub(crate) async fn readable(caller: &Caller, state: &Arc<AppState>, expression: &str) -> Result<(), ApiError> {
    let (state, policy, expression) = (state.clone(), caller.policy().clone(), expression.to_string());
    let verdict = tokio::task::spawn_blocking(move || {
        ensure_loaded(&state)?;
        let engine = state.audience.read().expect("not poisoned");
        Ok::<_, PipelineError>(kinship_pipeline::readable::check_readable(&engine, &expression, &policy))
    })
    .await
    .expect("does not panic")?;
    verdict.map_err(|reason| ApiError::new(StatusCode::FORBIDDEN, reason))
}

/// The text of a saved definition of `kind`, read from the audience in memory.
pub(crate) fn saved_text(state: &AppState, kind: kinship_segments::Kind, name: &str) -> Option<String> {
    state.audience.read().expect("not poisoned").expression(kind, name).map(str::to_string)
}

pub(crate) fn ensure_loaded(state: &AppState) -> Result<(), PipelineError> {
    if state.audience.read().expect("not poisoned").is_unloaded() {
        let store = kinship_store::open(&state.database)?;
        audience::ensure_loaded(&*store, &state.config(), &mut state.audience.write().expect("not poisoned"))?;
    }
    Ok(())
}

/// A count as the caller may see it: below `server.min_count`, roles that do not see who
/// people are get "fewer than N" (a count of 1 after a narrow condition names a person).
pub(crate) fn shown_count(caller: &Caller, count: usize) -> Value {
    let min = caller.min_count();
    if count < min && !caller.policy().sees_identities() {
        json!(format!("fewer than {min}"))
    } else {
        json!(count)
    }
}

/// How the audit log names a kind: the action prefix and the detail's key.
fn audit_names(kind: Kind) -> (&'static str, &'static str) {
    match kind {
        Kind::Segment => ("segment", "segment"),
        Kind::Computed => ("computed", "computed_trait"),
        Kind::Funnel => ("funnel", "funnel"),
        Kind::Health => ("health", "health"),
    }
}

/// Checks the caller may define, then defines and evaluates on a blocking thread (holding
/// the audience for writing), and audits the change. Returns the segment's size.
async fn define(caller: &Caller, state: Arc<AppState>, kind: Kind, body: NewDefinition, route: &str) -> Result<usize, Response> {
    caller.require(Capability::ManageSegments).map_err(IntoResponse::into_response)?;
    bounded(&body.expression).map_err(IntoResponse::into_response)?;
    readable(caller, &state, &body.expression).await.map_err(IntoResponse::into_response)?;
    let (prefix, key) = audit_names(kind);
    let detail = json!({ key: body.name, "expression": kinship_expr_redacted(&body.expression) });
    let source = DefinitionSource { kind, name: body.name, expression: body.expression };
    let size = store_definition(state, source).await?;
    caller.audit(&format!("{prefix}.create"), None, route, detail).await?;
    Ok(size)
}

/// Defines on a blocking thread, holding the audience for writing: checked, evaluated over
/// every profile, stored with its members. Returns what `audience::define` does.
pub(crate) async fn store_definition(state: Arc<AppState>, source: DefinitionSource) -> Result<usize, Response> {
    tokio::task::spawn_blocking(move || {
        let mut store = kinship_store::open(&state.database)?;
        let mut engine = state.audience.write().expect("not poisoned");
        audience::define(&mut *store, &state.config(), &mut engine, source)
    })
    .await
    .expect("does not panic")
    .map_err(definition_error)
}

/// Deletes a definition nothing reads, on a blocking thread holding the audience.
pub(crate) async fn remove_definition(state: Arc<AppState>, kind: Kind, name: String) -> Result<(), Response> {
    tokio::task::spawn_blocking(move || {
        let mut store = kinship_store::open(&state.database)?;
        let mut engine = state.audience.write().expect("not poisoned");
        audience::undefine(&mut *store, &mut engine, kind, &name)
    })
    .await
    .expect("does not panic")
    .map_err(definition_error)
}

/// Checks the caller may delete, deletes a definition nothing reads, and audits it.
async fn undefine(caller: &Caller, state: Arc<AppState>, kind: Kind, name: String, route: &str) -> Result<Json<Value>, Response> {
    caller.require(Capability::ManageSegments).map_err(IntoResponse::into_response)?;
    remove_definition(state, kind, name.clone()).await?;
    let (prefix, key) = audit_names(kind);
    caller.audit(&format!("{prefix}.delete"), None, route, json!({ key: name })).await?;
    Ok(Json(json!({ "deleted": name })))
}

/// The definitions of one kind (segments with their sizes). An expression may quote an
/// email or phone: a role that may not read them gets it masked.
async fn listing(caller: &Caller, state: &AppState, kind: Kind, field: &str) -> Result<Json<Value>, ApiError> {
    caller.require(Capability::ReadSegments)?;
    let items: Vec<Value> = {
        let engine = state.audience.read().expect("not poisoned");
        engine
            .definitions()
            .into_iter()
            .filter(|d| d.kind == kind)
            .map(|d| match kind {
                Kind::Segment => {
                    let size = engine.size(&d.name).map(|n| shown_count(caller, n));
                    json!({ "name": d.name, "expression": d.expression, "size": size })
                }
                Kind::Computed | Kind::Funnel | Kind::Health => json!({ "name": d.name, "expression": d.expression }),
            })
            .collect()
    };
    let (action, route) = match kind {
        Kind::Segment => ("segment.list", "GET /api/v1/segments"),
        Kind::Computed => ("computed.list", "GET /api/v1/computed-traits"),
        Kind::Funnel => ("funnel.list", "GET /api/v1/funnels"),
        Kind::Health => ("health.list", "GET /api/v1/health"),
    };
    caller.audit(action, None, route, json!({ "definitions": items.len() })).await?;
    let mut body = json!({ field: items });
    caller.scrub(&mut body, &[]);
    Ok(Json(body))
}

/// Every segment with its size and expression.
#[utoipa::path(get, path = "/api/v1/segments", security(("bearer" = [])), responses((status = 200, description = "`{\"segments\": [{name, expression, size}]}`")))]
pub(crate) async fn list_segments(caller: Caller, State(state): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    listing(&caller, &state, Kind::Segment, "segments").await
}

/// Define a segment; its members are computed at once and kept current as data arrives.
#[utoipa::path(post, path = "/api/v1/segments", request_body = NewDefinition, security(("bearer" = [])),
    responses((status = 201, description = "`{name, size}`"), (status = 400, description = "`{error, line, column, rendered}` for a bad expression"), (status = 409, description = "The name is taken")))]
pub(crate) async fn create_segment(
    caller: Caller,
    State(state): State<Arc<AppState>>,
    Json(body): Json<NewDefinition>,
) -> Result<Response, Response> {
    let name = body.name.clone();
    let size = define(&caller, state, Kind::Segment, body, "POST /api/v1/segments").await?;
    Ok((StatusCode::CREATED, Json(json!({ "name": name, "size": shown_count(&caller, size) }))).into_response())
}

/// Count and sample the profiles an expression selects, without saving it.
#[utoipa::path(post, path = "/api/v1/segments/preview", request_body = Expression, security(("bearer" = [])),
    responses((status = 200, description = "`{count, sample: [profile id]}`"), (status = 400, description = "`{error, line, column, rendered}`")))]
pub(crate) async fn preview_segment(
    caller: Caller,
    State(state): State<Arc<AppState>>,
    Json(body): Json<Expression>,
) -> Result<Json<Value>, Response> {
    caller.require(Capability::ReadSegments).map_err(IntoResponse::into_response)?;
    bounded(&body.expression).map_err(IntoResponse::into_response)?;
    let detail = kinship_expr_redacted(&body.expression);
    if let Err(refusal) = readable(&caller, &state, &body.expression).await {
        caller.audit("segment.preview_refused", None, "POST /api/v1/segments/preview", json!({ "expression": detail })).await?;
        return Err(refusal.into_response());
    }
    let expression = body.expression;
    let preview = tokio::task::spawn_blocking(move || {
        let engine = state.audience.read().expect("not poisoned");
        Ok::<_, PipelineError>(engine.preview(&expression, chrono_now(), 10)?)
    })
    .await
    .expect("does not panic")
    .map_err(definition_error)?;
    let count = shown_count(&caller, preview.count);
    // A sample of a group smaller than k would single its members out.
    let sample = if count.is_number() { preview.sample } else { Vec::new() };
    caller
        .audit(
            "segment.preview",
            None,
            "POST /api/v1/segments/preview",
            json!({ "expression": detail, "count": preview.count, "sample": sample.len() }),
        )
        .await?;
    Ok(Json(json!({ "count": count, "sample": sample })))
}

/// A segment: expression, size, what it reads, and its size over time.
#[utoipa::path(get, path = "/api/v1/segments/{name}", params(("name" = String, Path)), security(("bearer" = [])),
    responses((status = 200, description = "`{name, expression, size, reads, sizes: [{at, size}]}`"), (status = 404, description = "No such segment")))]
pub(crate) async fn show_segment(
    caller: Caller,
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Capability::ReadSegments)?;
    let (expression, size, reads) = {
        let engine = state.audience.read().expect("not poisoned");
        let Some(expression) = engine.expression(Kind::Segment, &name) else {
            return Err(ApiError::new(StatusCode::NOT_FOUND, format!("no segment {name}")));
        };
        (expression.to_string(), engine.size(&name), engine.dependencies(Kind::Segment, &name).cloned())
    };
    let lookup = name.clone();
    let (sizes, note) = state
        .read(move |s| {
            Ok::<_, kinship_store::StoreError>((
                s.segment_sizes(&lookup)?,
                s.meta(&kinship_pipeline::governance::definition_note_key("segment", &lookup))?,
            ))
        })
        .await?;
    let sizes: Vec<Value> = sizes.into_iter().map(|(at, size)| json!({ "at": at, "size": shown_count(&caller, size as usize) })).collect();
    let size = size.map(|n| shown_count(&caller, n));
    caller.audit("segment.read", None, "GET /api/v1/segments/{name}", json!({ "segment": name })).await?;
    let mut body = json!({ "name": name, "expression": expression, "size": size, "reads": reads, "sizes": sizes });
    if let Some(note) = note {
        body["note"] = json!(note);
    }
    caller.scrub(&mut body, &[]);
    Ok(Json(body))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub(crate) struct MemberPage {
    /// Members to skip (default 0).
    pub offset: Option<u64>,
    /// Most members (default 100, at most 1000).
    pub limit: Option<u64>,
}

/// A page of a segment's members, by profile id: only those with marketing consent; the
/// others on the page are counted in `withheld_no_marketing_consent`.
#[utoipa::path(get, path = "/api/v1/segments/{name}/members", params(("name" = String, Path), MemberPage), security(("bearer" = [])),
    responses((status = 200, description = "`{name, size, members: [profile id], withheld_no_marketing_consent}`"), (status = 404, description = "No such segment")))]
pub(crate) async fn segment_members(
    caller: Caller,
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    Query(page): Query<MemberPage>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Capability::ExportSegments)?;
    let size = {
        let engine = state.audience.read().expect("not poisoned");
        let Some(size) = engine.size(&name) else {
            return Err(ApiError::new(StatusCode::NOT_FOUND, format!("no segment {name}")));
        };
        // Membership of a segment over what the role may not read would reveal it.
        kinship_pipeline::readable::check_definition_readable(&engine, Kind::Segment, &name, caller.policy())
            .map_err(|reason| ApiError::new(StatusCode::FORBIDDEN, reason))?;
        // Listing a group smaller than k would single its members out, as a count would.
        if !shown_count(&caller, size).is_number() {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!(
                    "segment {name} has fewer than {} members; role `{}` may export only larger groups (server.min_count)",
                    caller.min_count(),
                    caller.role
                ),
            ));
        }
        size
    };
    let (offset, limit) = (page.offset.unwrap_or(0), page.limit.unwrap_or(100).clamp(1, 1000));
    let (lookup, config) = (name.clone(), state.config().clone());
    let (members, withheld) = state.read(move |s| audience::consented_members(s, &config, &lookup, offset, limit)).await?;
    caller
        .audit("segment.members", None, "GET /api/v1/segments/{name}/members", json!({ "segment": name, "profiles": members.len() }))
        .await?;
    Ok(Json(json!({ "name": name, "size": shown_count(&caller, size), "members": members, "withheld_no_marketing_consent": withheld })))
}

/// Delete a segment no other definition uses; its members' timelines record the exit.
#[utoipa::path(delete, path = "/api/v1/segments/{name}", params(("name" = String, Path)), security(("bearer" = [])),
    responses((status = 200, description = "Deleted"), (status = 404, description = "No such segment"), (status = 409, description = "Another definition uses it")))]
async fn delete_segment(caller: Caller, State(state): State<Arc<AppState>>, Path(name): Path<String>) -> Result<Json<Value>, Response> {
    undefine(&caller, state, Kind::Segment, name, "DELETE /api/v1/segments/{name}").await
}

/// Every computed trait with its expression.
#[utoipa::path(get, path = "/api/v1/computed-traits", security(("bearer" = [])), responses((status = 200, description = "`{\"computed_traits\": [{name, expression}]}`")))]
async fn list_computed(caller: Caller, State(state): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    listing(&caller, &state, Kind::Computed, "computed_traits").await
}

/// Define a computed trait (e.g. `lifetime_value` = `sum("Order Completed", revenue)`); it shows
/// on every profile under `computed` and can be used in segments as `computed.NAME`.
#[utoipa::path(post, path = "/api/v1/computed-traits", request_body = NewDefinition, security(("bearer" = [])),
    responses((status = 201, description = "`{name}`"), (status = 400, description = "`{error, line, column, rendered}`"), (status = 409, description = "The name is taken")))]
async fn create_computed(
    caller: Caller,
    State(state): State<Arc<AppState>>,
    Json(body): Json<NewDefinition>,
) -> Result<Response, Response> {
    let name = body.name.clone();
    define(&caller, state, Kind::Computed, body, "POST /api/v1/computed-traits").await?;
    Ok((StatusCode::CREATED, Json(json!({ "name": name }))).into_response())
}

/// Delete a computed trait no other definition uses.
#[utoipa::path(delete, path = "/api/v1/computed-traits/{name}", params(("name" = String, Path)), security(("bearer" = [])),
    responses((status = 200, description = "Deleted"), (status = 404, description = "No such computed trait"), (status = 409, description = "Another definition uses it")))]
async fn delete_computed(caller: Caller, State(state): State<Arc<AppState>>, Path(name): Path<String>) -> Result<Json<Value>, Response> {
    undefine(&caller, state, Kind::Computed, name, "DELETE /api/v1/computed-traits/{name}").await
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}
