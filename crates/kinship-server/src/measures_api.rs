//! `/api/v1/funnels/measure` and `/api/v1/experiments/{name}`: a funnel (TOML in the body)
//! and an experiment's readout over every profile. They are aggregates, read as segments
//! are: a role needs `read_segments`, may not filter or break down by what it may not read in
//! clear (a count would answer the question), sees no group smaller than `server.min_count`,
//! and sees the profiles behind a number only if it sees identities. Every call is audited.

use crate::http::{ApiError, Caller};
use crate::state::AppState;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use kinship_pipeline::measure::{CompiledFunnel, ExperimentMetric};
use kinship_policy::{Access, Capability};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

#[derive(utoipa::OpenApi)]
#[openapi(paths(measure_funnel, experiment_readout))]
pub struct MeasuresDoc;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/api/v1/funnels/measure", post(measure_funnel)).route("/api/v1/experiments/{name}", get(experiment_readout))
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

/// A funnel over every profile's timeline: per step its count, conversion, drop-off and time
/// from the previous step (median, p90, histogram), a breakdown and a weekly trend; for roles
/// that see identities, the profiles behind each step.
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
    let compiled = CompiledFunnel::parse(&body).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.to_string()))?;
    let definition = &compiled.definition;
    for step in &definition.steps {
        if let Some(condition) = &step.condition {
            condition_readable(&caller, &state, condition).await?;
        }
    }
    for exclusion in &definition.exclusions {
        if let Some(condition) = &exclusion.condition {
            condition_readable(&caller, &state, condition).await?;
        }
    }
    if let Some(breakdown) = &definition.breakdown {
        if caller.policy().nested_trait_access(breakdown) != Access::Allow {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!("role `{}` may not break a funnel down by `{breakdown}`: it may not read it in clear", caller.role),
            ));
        }
    }
    let name = definition.name.clone();
    let days = query.days.map(|d| d.min(3650));
    let s = state.clone();
    let report = state.read(move |store| kinship_pipeline::measure::funnel(store, &s.config(), &compiled, days)).await?;
    let entered = report.result.steps.first().map_or(0, |s| s.count) as usize;
    let sees = caller.policy().sees_identities();
    if entered < caller.min_count() && !sees {
        return Err(too_small(&caller, &format!("funnel {name}")));
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
    caller
        .audit("funnel.measure", None, "POST /api/v1/funnels/measure", json!({ "funnel": name, "days": days, "entered": entered }))
        .await?;
    Ok(Json(value))
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
    let metric = ExperimentMetric { event, property: query.sum, condition: query.condition, days: query.days.unwrap_or(14).min(3650) };
    let s = state.clone();
    let lookup = name.clone();
    let report = state
        .read(move |store| kinship_pipeline::measure::experiment(store, &s.config(), &lookup, &metric))
        .await
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
