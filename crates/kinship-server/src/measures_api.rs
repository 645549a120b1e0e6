//! `/api/v1/funnels` and `/api/v1/experiments/{name}`: saved funnels (create, list, delete),
//! a funnel (saved, or TOML in the body) and an experiment's readout over every profile, both
//! measured over the audience engine's profiles in memory. They are aggregates,
//! read as segments are: a role needs `read_segments`, may not filter or break down by what it may not read in
//! clear (a count would answer the question), sees no group smaller than `server.min_count`,
//! and sees the profiles behind a number only if it sees identities. Every call is audited.

use crate::http::{ApiError, Caller};
use crate::state::AppState;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use kinship_measure::definition::FunnelProgram;
use kinship_pipeline::measure::{Cohort, ExperimentMetric};
use kinship_pipeline::PipelineError;
use kinship_policy::{Access, Capability};
use kinship_segments::{DefinitionSource, Kind};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

#[derive(utoipa::OpenApi)]
#[openapi(paths(list_funnels, create_funnel, measure_funnel, show_funnel, delete_funnel, experiment_readout))]
pub struct MeasuresDoc;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/v1/funnels", get(list_funnels).post(create_funnel))
        .route("/api/v1/funnels/measure", post(measure_funnel))
        .route("/api/v1/funnels/{name}", get(show_funnel).delete(delete_funnel))
        .route("/api/v1/experiments/{name}", get(experiment_readout))
}

/// A group smaller than `server.min_count` would single its members out, as a count would.
fn too_small(caller: &Caller, what: &str) -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        format!(
            "{what} counts fewer than {} profiles; role `{}` sees only larger groups (server.min_count)",
            caller.min_count(),
            caller.role
        ),
    )
}

#[derive(Deserialize, utoipa::IntoParams)]
pub(crate) struct FunnelQuery {
    /// Only entries in the last days (all history by default).
    pub(crate) days: Option<u32>,
    /// Only profiles with this value of the breakdown trait: one row of the breakdown.
    pub(crate) breakdown: Option<String>,
    /// Only entries in the week starting on this Monday (YYYY-MM-DD): one point of the trend.
    pub(crate) week: Option<String>,
}

impl FunnelQuery {
    fn cohort(&self) -> Result<Cohort, ApiError> {
        let week_ms = match &self.week {
            Some(text) => {
                Some(kinship_expr::parse_timestamp(text).filter(|ms| kinship_measure::funnel::week_of(*ms) == *ms).ok_or_else(|| {
                    ApiError::new(StatusCode::BAD_REQUEST, format!("week `{text}`: give the Monday a week starts on, as YYYY-MM-DD"))
                })?)
            }
            None => None,
        };
        Ok(Cohort { breakdown: self.breakdown.clone(), week_ms })
    }
}

/// Refuses a condition on events that reads what the role may not read in clear: it is
/// checked as the segment expression `any(*, (condition))` would be (roles are limited by
/// property and trait, not by event name). The readability check lets through what does not
/// parse, so a condition that does not parse in that form is refused here.
async fn condition_readable(caller: &Caller, state: &Arc<AppState>, condition: &str) -> Result<(), ApiError> {
    let expression = format!("any(*, ({condition}))");
    if let Err(e) = kinship_expr::parse(&expression) {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, format!("`{condition}` cannot be checked as a condition on events: {e}")));
    }
    crate::segments_api::readable(caller, state, &expression).await
}

/// Parses a funnel and refuses one whose conditions or breakdown read what the role may not.
async fn readable_funnel(caller: &Caller, state: &Arc<AppState>, text: &str) -> Result<FunnelProgram, ApiError> {
    crate::segments_api::bounded(text)?;
    let program = FunnelProgram::parse(text).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.to_string()))?;
    for condition in program.conditions() {
        condition_readable(caller, state, condition).await?;
    }
    if let Some(computed) = program.definition.breakdown.as_deref().and_then(|b| b.strip_prefix("computed.")) {
        crate::segments_api::readable(caller, state, &format!("exists(computed.{computed})")).await?;
    } else if let Some(breakdown) = &program.definition.breakdown {
        if caller.policy().nested_trait_access(breakdown) != Access::Allow {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!("role `{}` may not break a funnel down by `{breakdown}`: it may not read it in clear", caller.role),
            ));
        }
    }
    Ok(program)
}

/// The funnel a request measures: given in its body, or saved under a name.
enum Which {
    Given(Box<FunnelProgram>),
    Saved(String),
}

/// Measures over the audience in memory (loaded first if nothing was defined yet), and
/// shapes the report for the caller: no group under `server.min_count` and no profiles for a
/// role that does not see identities. Audited.
async fn funnel_report(
    caller: &Caller,
    state: &Arc<AppState>,
    which: Which,
    query: &FunnelQuery,
    route: &str,
) -> Result<Json<Value>, ApiError> {
    let cohort = query.cohort()?;
    let days = query.days.map(|d| d.min(3650));
    let s = state.clone();
    let report = tokio::task::spawn_blocking(move || {
        crate::segments_api::ensure_loaded(&s)?;
        let engine = s.audience.read().expect("not poisoned");
        let program = match &which {
            Which::Given(program) => program.as_ref(),
            Which::Saved(name) => engine.saved_funnel(name).ok_or_else(|| PipelineError::Config(format!("no funnel named {name}")))?,
        };
        Ok::<_, PipelineError>(kinship_pipeline::measure::funnel(&engine, program, days, &cohort))
    })
    .await
    .expect("does not panic")
    .map_err(|e| match e {
        PipelineError::Config(reason) => ApiError::new(StatusCode::NOT_FOUND, reason),
        other => other.into(),
    })?;
    let entered = report.result.steps.first().map_or(0, |s| s.count) as usize;
    let sees = caller.policy().sees_identities();
    if entered < caller.min_count() && !sees {
        return Err(too_small(caller, &format!("funnel {}", report.name)));
    }
    let mut value = serde_json::to_value(&report).map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    if !sees {
        // A breakdown row smaller than k would single its members out, as a count would.
        let min = caller.min_count() as u64;
        if let Some(rows) = value["result"]["breakdown"].as_array_mut() {
            rows.retain(|row| row[1][0].as_u64().is_some_and(|n| n >= min));
        }
        if let Some(object) = value.as_object_mut() {
            object.remove("reached");
            object.remove("dropped");
        }
    }
    let detail =
        json!({ "funnel": report.name, "days": days, "entered": entered, "breakdown": query.breakdown.is_some(), "week": query.week });
    caller.audit("funnel.measure", None, route, detail).await?;
    Ok(Json(value))
}

/// A funnel (TOML in the body) over every profile's timeline: per step its count, conversion,
/// drop-off and time from the previous step (median, p90, histogram), a breakdown and a
/// weekly trend; for roles that see identities, the profiles behind each step.
#[utoipa::path(post, path = "/api/v1/funnels/measure", params(FunnelQuery), request_body(content = String, description = "The funnel, TOML"),
    security(("bearer" = [])), responses((status = 200, description = "`{name, steps, result, reached?, dropped?}`"),
    (status = 400, description = "The funnel does not parse; the message says where"), (status = 403, description = "It reads what the role may not")))]
pub(crate) async fn measure_funnel(
    caller: Caller,
    State(state): State<Arc<AppState>>,
    Query(query): Query<FunnelQuery>,
    body: String,
) -> Result<Json<Value>, ApiError> {
    caller.require(Capability::ReadSegments)?;
    let program = readable_funnel(&caller, &state, &body).await?;
    funnel_report(&caller, &state, Which::Given(Box::new(program)), &query, "POST /api/v1/funnels/measure").await
}

/// A saved funnel measured now, as `POST /api/v1/funnels/measure` measures one.
#[utoipa::path(get, path = "/api/v1/funnels/{name}", params(("name" = String, Path), FunnelQuery), security(("bearer" = [])),
    responses((status = 200, description = "`{name, steps, result, reached?, dropped?}`"), (status = 404, description = "No such funnel")))]
pub(crate) async fn show_funnel(
    caller: Caller,
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    Query(query): Query<FunnelQuery>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Capability::ReadSegments)?;
    // What the funnel reads is checked as if the caller had posted it.
    if let Some(definition) = crate::segments_api::saved_text(&state, Kind::Funnel, &name) {
        readable_funnel(&caller, &state, &definition).await?;
    }
    funnel_report(&caller, &state, Which::Saved(name), &query, "GET /api/v1/funnels/{name}").await
}

/// The saved funnels: name, steps and definition.
#[utoipa::path(get, path = "/api/v1/funnels", security(("bearer" = [])), responses((status = 200, description = "`{\"funnels\": [{name, definition}]}`")))]
pub(crate) async fn list_funnels(caller: Caller, State(state): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    caller.require(Capability::ReadSegments)?;
    let funnels: Vec<Value> = {
        let engine = state.audience.read().expect("not poisoned");
        engine
            .definitions()
            .into_iter()
            .filter(|d| d.kind == Kind::Funnel)
            .filter_map(|d| Some(json!({ "name": d.name, "definition": engine.saved_funnel(&d.name)?.definition })))
            .collect()
    };
    caller.audit("funnel.list", None, "GET /api/v1/funnels", json!({ "funnels": funnels.len() })).await?;
    Ok(Json(json!({ "funnels": funnels })))
}

/// Save a funnel (TOML in the body): segments then read each profile's position in it as
/// `funnel("name").step`, `.reached` and `.stuck`, kept current as events arrive.
#[utoipa::path(post, path = "/api/v1/funnels", request_body(content = String, description = "The funnel, TOML"), security(("bearer" = [])),
    responses((status = 201, description = "`{name, profiles}`"), (status = 400, description = "It does not parse, or quotes a person"),
    (status = 409, description = "A funnel of that name exists")))]
pub(crate) async fn create_funnel(caller: Caller, State(state): State<Arc<AppState>>, body: String) -> Result<Response, ApiError> {
    caller.require(Capability::ManageSegments)?;
    let program = readable_funnel(&caller, &state, &body).await?;
    let name = program.definition.name.clone();
    let source = DefinitionSource { kind: Kind::Funnel, name: name.clone(), expression: body };
    let profiles = match crate::segments_api::store_definition(state.clone(), source).await {
        Ok(n) => n,
        Err(refused) => return Ok(refused),
    };
    // The name only: conditions may not quote a person, and need not be kept twice.
    caller.audit("funnel.create", None, "POST /api/v1/funnels", json!({ "funnel": name })).await?;
    Ok((StatusCode::CREATED, Json(json!({ "name": name, "profiles": profiles }))).into_response())
}

/// Delete a saved funnel no segment reads.
#[utoipa::path(delete, path = "/api/v1/funnels/{name}", params(("name" = String, Path)), security(("bearer" = [])),
    responses((status = 200, description = "`{deleted}`"), (status = 404, description = "No such funnel"), (status = 409, description = "A segment reads it")))]
pub(crate) async fn delete_funnel(
    caller: Caller,
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    caller.require(Capability::ManageSegments)?;
    if let Err(refused) = crate::segments_api::remove_definition(state.clone(), Kind::Funnel, name.clone()).await {
        return Ok(refused);
    }
    caller.audit("funnel.delete", None, "DELETE /api/v1/funnels/{name}", json!({ "funnel": name })).await?;
    Ok(Json(json!({ "deleted": name })).into_response())
}

#[derive(Deserialize, utoipa::IntoParams)]
pub(crate) struct ExperimentQuery {
    /// The metric's event (default `Order Completed`): conversion to it, or with `sum` the sum
    /// of a property.
    pub event: Option<String>,
    pub sum: Option<String>,
    /// A condition on the metric's events, in the segment language.
    #[serde(rename = "where")]
    pub condition: Option<String>,
    /// Days after each profile's first exposure that count (default 14).
    pub days: Option<u32>,
    /// Conversion is completing this saved funnel (entered within `days` of exposure).
    pub funnel: Option<String>,
}

/// An experiment's readout from its `Experiment Viewed` events: per variant against control,
/// frequentist, sequential and Bayesian, with the sample-ratio check and the profiles exposed
/// to more than one variant (listed for roles that see identities, counted for others).
#[utoipa::path(get, path = "/api/v1/experiments/{name}", params(("name" = String, Path), ExperimentQuery), security(("bearer" = [])),
    responses((status = 200, description = "`{experiment, metric, cuped, control, variants, sample_ratio_p, exposed_to_several}`"),
    (status = 400, description = "No exposures, or a condition that does not parse"), (status = 403, description = "It reads what the role may not")))]
pub(crate) async fn experiment_readout(
    caller: Caller,
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    Query(query): Query<ExperimentQuery>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Capability::ReadSegments)?;
    let event = query.event.unwrap_or_else(|| "Order Completed".into());
    let mut read = query.condition.clone().unwrap_or_else(|| "true".into());
    if let Some(property) = &query.sum {
        read = format!("({read}) and exists({property})");
    }
    condition_readable(&caller, &state, &read).await?;
    if let Some(funnel) = &query.funnel {
        // The funnel's conditions and breakdown are checked against the role as when it is read.
        let Some(saved) = crate::segments_api::saved_text(&state, Kind::Funnel, funnel) else {
            return Err(ApiError::new(StatusCode::NOT_FOUND, format!("no funnel named {funnel}")));
        };
        readable_funnel(&caller, &state, &saved).await?;
    }
    let days = query.days.unwrap_or(14).min(3650);
    let metric = ExperimentMetric { event, property: query.sum, condition: query.condition, days, funnel: query.funnel };
    let (s, lookup) = (state.clone(), name.clone());
    let report = tokio::task::spawn_blocking(move || {
        crate::segments_api::ensure_loaded(&s)?;
        let engine = s.audience.read().expect("not poisoned");
        kinship_pipeline::measure::experiment(&engine, &lookup, &metric)
    })
    .await
    .expect("does not panic")
    .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.to_string()))?;
    let sees = caller.policy().sees_identities();
    let smallest = report.variants.iter().map(|v| v.profiles).min().unwrap_or(0) as usize;
    if smallest < caller.min_count() && !sees {
        return Err(too_small(&caller, &format!("a variant of experiment {name}")));
    }
    let mut value = serde_json::to_value(&report).map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    if !sees {
        value["exposed_to_several"] = json!(report.exposed_to_several.len());
        for variant in value["variants"].as_array_mut().into_iter().flatten() {
            if let Some(v) = variant.as_object_mut() {
                v.remove("sample");
            }
        }
    }
    caller.audit("experiment.read", None, "GET /api/v1/experiments/{name}", json!({ "experiment": name, "metric": report.metric })).await?;
    Ok(Json(value))
}
