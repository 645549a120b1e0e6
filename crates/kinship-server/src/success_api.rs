//! `/api/v1/nps`, `/api/v1/growth` and `/api/v1/health/score`: customer success over the
//! audience in memory, read as of the newest event held. They are aggregates, read as
//! segments are: a role needs `read_segments`, may only have them computed from what it may
//! read in clear (the survey's score, the revenue amount, the earned rule, each health
//! measure), sees no group smaller than `server.min_count`, and sees the profiles behind a
//! number only if it sees identities. Every call is audited.

use crate::http::{ApiError, Caller};
use crate::state::AppState;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use kinship_measure::health::{HealthDefinition, HealthProgram};
use kinship_pipeline::success::{self, NpsBy, Period};
use kinship_pipeline::PipelineError;
use kinship_policy::Capability;
use kinship_segments::{DefinitionSource, Kind};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

#[derive(utoipa::OpenApi)]
#[openapi(paths(
    nps_report,
    growth_report,
    health_score,
    list_health,
    create_health,
    saved_health,
    delete_health,
    health_alerts,
    snooze_alert
))]
pub struct SuccessDoc;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/v1/nps", get(nps_report))
        .route("/api/v1/growth", get(growth_report))
        .route("/api/v1/health", get(list_health).post(create_health))
        .route("/api/v1/health/score", post(health_score))
        .route("/api/v1/health/{name}", get(saved_health).delete(delete_health))
        .route("/api/v1/health/{name}/alerts", get(health_alerts))
        .route("/api/v1/health/alerts/{id}/snooze", post(snooze_alert))
}

/// Runs `measure` over the audience (loaded first if nothing was defined yet) as of the
/// newest event it holds.
async fn over_audience<T: Send + 'static>(
    state: &Arc<AppState>,
    measure: impl FnOnce(&kinship_segments::Audience, &kinship_core::Config, i64) -> Result<T, PipelineError> + Send + 'static,
) -> Result<T, ApiError> {
    let s = state.clone();
    tokio::task::spawn_blocking(move || {
        crate::segments_api::ensure_loaded(&s)?;
        let engine = s.audience.read().expect("not poisoned");
        let now = success::data_now(&engine);
        measure(&engine, &s.config(), now)
    })
    .await
    .expect("does not panic")
    .map_err(|e| match e {
        // A configuration or definition that does not compile: the message says where.
        PipelineError::Config(reason) => ApiError::new(StatusCode::BAD_REQUEST, reason),
        other => other.into(),
    })
}

/// Refuses when the role may not read, in clear, what the measure is computed from. The
/// readability check lets through what does not parse, so that is refused here.
async fn reads(caller: &Caller, state: &Arc<AppState>, expressions: &[String]) -> Result<(), ApiError> {
    for expression in expressions {
        if let Err(e) = kinship_expr::parse(expression) {
            return Err(ApiError::new(StatusCode::BAD_REQUEST, format!("`{expression}` cannot be checked: {e}")));
        }
        crate::segments_api::readable(caller, state, expression).await?;
    }
    Ok(())
}

fn to_value<T: serde::Serialize>(report: &T) -> Result<Value, ApiError> {
    serde_json::to_value(report).map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub(crate) struct NpsQuery {
    /// `month` (default), `cohort`, `segment` or `property:NAME`.
    pub(crate) by: Option<String>,
}

/// NPS with its 95% interval: overall, revenue-weighted, by group, and the share of
/// detractors among customers who stopped buying; groups under `min_answers` are
/// insufficient.
#[utoipa::path(get, path = "/api/v1/nps", params(NpsQuery), security(("bearer" = [])),
    responses((status = 200, description = "`{answers, overall, revenue_weighted, groups, detractors_among_churned, …}`"),
    (status = 400, description = "An unknown grouping"), (status = 403, description = "The role may not read the answers")))]
pub(crate) async fn nps_report(
    caller: Caller,
    State(state): State<Arc<AppState>>,
    Query(query): Query<NpsQuery>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Capability::ReadSegments)?;
    let by_text = query.by.unwrap_or_else(|| "month".into());
    let by: NpsBy = by_text.parse().map_err(|e: String| ApiError::new(StatusCode::BAD_REQUEST, e))?;
    let measures = state.config().measures.clone();
    let mut read = vec![
        format!("any({:?}, {} >= 0)", measures.nps.event, property(&measures.nps.score)),
        format!("sum({:?}, {})", measures.revenue.event, property(&measures.revenue.amount)),
    ];
    if let NpsBy::Property(p) = &by {
        read.push(format!("any({:?}, exists({}))", measures.nps.event, property(p)));
    }
    reads(&caller, &state, &read).await?;
    let report = over_audience(&state, move |engine, config, now| success::nps(engine, &config.measures, &by, now)).await?;
    let mut value = to_value(&report)?;
    if !caller.policy().sees_identities() {
        let min = caller.min_count() as u64;
        if let Some(groups) = value["groups"].as_array_mut() {
            groups.retain(|g| g["answers"].as_u64().is_some_and(|n| n >= min));
            groups.iter_mut().for_each(|g| drop(g.as_object_mut().and_then(|g| g.remove("profiles"))));
        }
        if let Some(object) = value.as_object_mut() {
            object.remove("detractors");
            object.remove("promoters");
        }
    }
    caller.audit("nps.read", None, "GET /api/v1/nps", json!({ "by": by_text, "answers": report.answers })).await?;
    Ok(Json(value))
}

/// A property name as the language writes it inside an event filter (`properties.x`, or
/// quoted when it is not a plain word).
fn property(name: &str) -> String {
    let plain = name.split('.').all(|part| {
        part.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    });
    if plain {
        format!("properties.{name}")
    } else {
        format!("properties.{}", serde_json::Value::String(name.to_string()))
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
pub(crate) struct GrowthQuery {
    /// `month`, `quarter` (default) or `year`.
    pub(crate) period: Option<String>,
    /// How many periods, the last one holding now (default 4, at most 120).
    pub(crate) periods: Option<usize>,
}

/// Earned growth per period (Reichheld): net revenue retention, new revenue earned and bought,
/// the earned growth rate, and for roles that see identities the customers behind them.
#[utoipa::path(get, path = "/api/v1/growth", params(GrowthQuery), security(("bearer" = [])),
    responses((status = 200, description = "`{periods: [{label, start_ms, end_ms, partial, growth, earned?, bought?, lost?}]}`"),
    (status = 400, description = "An unknown period, or an earned rule that does not compile")))]
pub(crate) async fn growth_report(
    caller: Caller,
    State(state): State<Arc<AppState>>,
    Query(query): Query<GrowthQuery>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Capability::ReadSegments)?;
    let period_text = query.period.unwrap_or_else(|| "quarter".into());
    let period: Period = period_text.parse().map_err(|e: String| ApiError::new(StatusCode::BAD_REQUEST, e))?;
    let count = query.periods.unwrap_or(4).clamp(1, 120);
    let measures = state.config().measures.clone();
    let mut read = vec![format!("sum({:?}, {})", measures.revenue.event, property(&measures.revenue.amount))];
    read.extend(measures.earned.clone());
    reads(&caller, &state, &read).await?;
    let periods = over_audience(&state, move |engine, config, now| success::growth(engine, &config.measures, period, count, now)).await?;
    let mut value = to_value(&periods)?;
    if !caller.policy().sees_identities() {
        let min = caller.min_count() as u64;
        for p in value.as_array_mut().into_iter().flatten() {
            if let Some(object) = p.as_object_mut() {
                for list in ["earned", "bought", "lost"] {
                    object.remove(list);
                }
            }
            // A handful of new customers' revenue is a person's spending.
            let few = p["growth"]["new_customers"].as_u64().is_some_and(|n| n > 0 && n < min);
            if few {
                for field in ["new_revenue", "earned_new_revenue", "earned_share_of_new_revenue", "earned_share_of_new_customers"] {
                    p["growth"][field] = Value::Null;
                }
                p["withheld"] = json!("fewer new customers than server.min_count");
            }
        }
    }
    caller.audit("growth.read", None, "GET /api/v1/growth", json!({ "period": period_text, "periods": count })).await?;
    Ok(Json(json!({ "periods": value })))
}

/// Scores every profile by a health definition (TOML in the body): bands, distribution, the
/// lowest scores with their reasons, and this week's alerts (context applied, the daily limit
/// per owner counted).
#[utoipa::path(post, path = "/api/v1/health/score", request_body(content = String, description = "The health definition, TOML"),
    security(("bearer" = [])), responses((status = 200, description = "`{name, scored, red, yellow, green, distribution, lowest, alerts, explained}`"),
    (status = 400, description = "The definition does not parse; the message says where"), (status = 403, description = "A measure reads what the role may not")))]
pub(crate) async fn health_score(caller: Caller, State(state): State<Arc<AppState>>, body: String) -> Result<Json<Value>, ApiError> {
    caller.require(Capability::ReadSegments)?;
    let definition = readable_health(&caller, &state, &body).await?;
    health_report(&caller, &state, definition, "POST /api/v1/health/score").await
}

/// Parses a health definition and refuses one whose expressions read what the role may not.
async fn readable_health(caller: &Caller, state: &Arc<AppState>, text: &str) -> Result<HealthDefinition, ApiError> {
    crate::segments_api::bounded(text)?;
    let definition = HealthDefinition::parse(text).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.0))?;
    let mut read: Vec<String> = definition.measures.iter().map(|m| m.value.clone()).collect();
    read.extend(definition.contexts.iter().filter_map(|c| c.when.clone()));
    read.extend(definition.applies.clone());
    // Alerts name each customer's owner: the trait must be readable too.
    read.extend(definition.alerts.owner.as_ref().map(|t| format!("exists(traits.{t})")));
    reads(caller, state, &read).await?;
    Ok(definition)
}

async fn health_report(caller: &Caller, state: &Arc<AppState>, definition: HealthDefinition, route: &str) -> Result<Json<Value>, ApiError> {
    let report = over_audience(state, move |engine, _, now| {
        let program = HealthProgram::compile(definition, &engine.schema()).map_err(|e| PipelineError::Config(e.0))?;
        Ok(success::health(engine, &program, now))
    })
    .await?;
    let mut value = to_value(&report)?;
    if !caller.policy().sees_identities() {
        // Scores and reasons stay; whose they are goes.
        for row in value["lowest"].as_array_mut().into_iter().flatten() {
            row[0] = Value::Null;
        }
        let alerts = report.alerts.len();
        value["alerts"] = json!(alerts);
    }
    caller.audit("health.read", None, route, json!({ "health": report.name, "scored": report.scored })).await?;
    Ok(Json(value))
}

/// The saved health definitions.
#[utoipa::path(get, path = "/api/v1/health", security(("bearer" = [])), responses((status = 200, description = "`{\"health\": [{name, definition}]}`")))]
pub(crate) async fn list_health(caller: Caller, State(state): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    caller.require(Capability::ReadSegments)?;
    let saved: Vec<Value> = {
        let engine = state.audience.read().expect("not poisoned");
        engine
            .definitions()
            .into_iter()
            .filter(|d| d.kind == Kind::Health)
            .filter_map(|d| Some(json!({ "name": d.name, "definition": engine.saved_health(&d.name)?.definition })))
            .collect()
    };
    caller.audit("health.list", None, "GET /api/v1/health", json!({ "definitions": saved.len() })).await?;
    Ok(Json(json!({ "health": saved })))
}

/// Save a health definition (TOML in the body): every profile's score then shows on its
/// 360, and segments read it as `health("name").score` and `.band`, kept current as events
/// arrive, so a segment of red customers can start a flow.
#[utoipa::path(post, path = "/api/v1/health", request_body(content = String, description = "The health definition, TOML"), security(("bearer" = [])),
    responses((status = 201, description = "`{name, profiles}`"), (status = 400, description = "It does not parse, or quotes a person"),
    (status = 409, description = "One of that name exists")))]
pub(crate) async fn create_health(caller: Caller, State(state): State<Arc<AppState>>, body: String) -> Result<Response, ApiError> {
    caller.require(Capability::ManageSegments)?;
    let definition = readable_health(&caller, &state, &body).await?;
    let name = definition.name.clone();
    let source = DefinitionSource { kind: Kind::Health, name: name.clone(), expression: body };
    let profiles = match crate::segments_api::store_definition(state.clone(), source).await {
        Ok(n) => n,
        Err(refused) => return Ok(refused),
    };
    caller.audit("health.create", None, "POST /api/v1/health", json!({ "health": name })).await?;
    Ok((StatusCode::CREATED, Json(json!({ "name": name, "profiles": profiles }))).into_response())
}

/// A saved health definition's report, as `POST /api/v1/health/score` gives one.
#[utoipa::path(get, path = "/api/v1/health/{name}", params(("name" = String, Path)), security(("bearer" = [])),
    responses((status = 200, description = "`{name, scored, red, yellow, green, distribution, lowest, alerts, explained}`"), (status = 404, description = "No such definition")))]
pub(crate) async fn saved_health(
    caller: Caller,
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Capability::ReadSegments)?;
    let Some(saved) = crate::segments_api::saved_text(&state, Kind::Health, &name) else {
        return Err(ApiError::new(StatusCode::NOT_FOUND, format!("no health definition named {name}")));
    };
    let definition = readable_health(&caller, &state, &saved).await?;
    health_report(&caller, &state, definition, "GET /api/v1/health/{name}").await
}

/// Delete a saved health definition no segment reads.
#[utoipa::path(delete, path = "/api/v1/health/{name}", params(("name" = String, Path)), security(("bearer" = [])),
    responses((status = 200, description = "`{deleted}`"), (status = 404, description = "No such definition"), (status = 409, description = "A segment reads it")))]
pub(crate) async fn delete_health(
    caller: Caller,
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    caller.require(Capability::ManageSegments)?;
    if let Err(refused) = crate::segments_api::remove_definition(state.clone(), Kind::Health, name.clone()).await {
        return Ok(refused);
    }
    caller.audit("health.delete", None, "DELETE /api/v1/health/{name}", json!({ "health": name })).await?;
    Ok(Json(json!({ "deleted": name })).into_response())
}

#[derive(Debug, Deserialize)]
pub struct AlertQuery {
    /// `open` (the default), `closed`, `held` or `all`.
    pub status: Option<String>,
    pub limit: Option<usize>,
}

/// A saved health definition's alerts as kept by the server (every `[measures] alerts_every`),
/// of one status (`open` by default; snoozed ones are open with `snoozed_until` set), with
/// counts: open and not snoozed, snoozed, and held back over an owner's daily limit today. Needs `read_tasks` or `read_segments`. Whose alert it
/// is shows only to roles that see identities; other roles get the counts.
#[utoipa::path(get, path = "/api/v1/health/{name}/alerts", params(("name" = String, Path), ("status" = Option<String>, Query), ("limit" = Option<usize>, Query)),
    security(("bearer" = [])), responses((status = 200, description = "`{health, alerts: [...], counts: {open, snoozed, held_today}}`"), (status = 404, description = "No such definition")))]
pub(crate) async fn health_alerts(
    caller: Caller,
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    Query(query): Query<AlertQuery>,
) -> Result<Json<Value>, ApiError> {
    // A queue to work, as tasks are (support), or a measure, as segments are (analysts).
    if !caller.policy().allows(Capability::ReadTasks) {
        caller.require(Capability::ReadSegments)?;
    }
    let Some(saved) = crate::segments_api::saved_text(&state, Kind::Health, &name) else {
        return Err(ApiError::new(StatusCode::NOT_FOUND, format!("no health definition named {name}")));
    };
    readable_health(&caller, &state, &saved).await?;
    let status = match query.status.as_deref().unwrap_or("open") {
        "all" => None,
        s @ ("open" | "closed" | "held") => Some(s.to_string()),
        other => return Err(ApiError::new(StatusCode::BAD_REQUEST, format!("unknown status `{other}`: use open, closed, held or all"))),
    };
    let limit = query.limit.unwrap_or(100).min(1000);
    let (n, now) = (name.clone(), kinship_pipeline::now_ms());
    let today = now - now.rem_euclid(86_400_000);
    let (alerts, open, today) = state
        .read(move |store| {
            let open = store.health_alerts(&n, Some("open"), 1_000_000)?;
            let today = store.health_alerts_since(&n, today)?;
            Ok::<_, kinship_store::StoreError>((store.health_alerts(&n, status.as_deref(), limit)?, open, today))
        })
        .await?;
    let snoozed = open.iter().filter(|a| a.snoozed_until.is_some_and(|u| u > now)).count();
    let held_today = today.iter().filter(|a| a.status == "held").count();
    let counts = json!({ "open": open.len() - snoozed, "snoozed": snoozed, "held_today": held_today });
    caller.audit("health.alerts.read", None, "GET /api/v1/health/{name}/alerts", json!({ "health": name, "alerts": alerts.len() })).await?;
    if !caller.policy().sees_identities() {
        return Ok(Json(json!({ "health": name, "counts": counts })));
    }
    Ok(Json(json!({ "health": name, "alerts": alerts, "counts": counts })))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct Snooze {
    /// Until when: a date or time (`2026-12-20`, RFC 3339), or a duration from now (`3 days`).
    pub until: String,
    /// Why, for whoever looks next.
    pub reason: String,
}

/// Snooze an open alert with a reason: it leaves the queue until then, and stays open (it
/// closes by itself when its condition clears). Needs `work_tasks`, as working a queue does,
/// and a role that may read the definition's measures.
#[utoipa::path(post, path = "/api/v1/health/alerts/{id}/snooze", params(("id" = i64, Path)), request_body = Snooze, security(("bearer" = [])),
    responses((status = 200, description = "The alert"), (status = 400, description = "No reason, or a time that does not read"), (status = 404, description = "No such open alert")))]
pub(crate) async fn snooze_alert(
    caller: Caller,
    State(state): State<Arc<AppState>>,
    Path(id): Path<i64>,
    Json(snooze): Json<Snooze>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Capability::WorkTasks)?;
    let until = success::snooze_until(&snooze.until, kinship_pipeline::now_ms()).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e))?;
    let reason = success::snooze_reason(&snooze.reason).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e))?;
    // The alert's definition must be one the role may read, as for the list.
    let kept = state.read(move |store| store.health_alert(id)).await?;
    let Some(kept) = kept.filter(|a| a.status == "open") else {
        return Err(ApiError::new(StatusCode::NOT_FOUND, format!("no open alert {id}")));
    };
    if let Some(saved) = crate::segments_api::saved_text(&state, Kind::Health, &kept.definition) {
        readable_health(&caller, &state, &saved).await?;
    }
    let (s, by) = (state.clone(), caller.actor().to_string());
    let alert = tokio::task::spawn_blocking(move || {
        let turn = s.writer.turn();
        let _turn = turn.lock().expect("not poisoned");
        let mut store = kinship_store::open(&s.database)?;
        if !store.snooze_alert(id, until, &reason, &by)? {
            return Ok(None);
        }
        store.health_alert(id)
    })
    .await
    .expect("does not panic")
    .map_err(ApiError::from)?
    .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no open alert {id}")))?;
    caller
        .audit(
            "health.alert.snooze",
            Some(&alert.profile_id),
            "POST /api/v1/health/alerts/{id}/snooze",
            json!({ "alert": id, "until": until }),
        )
        .await?;
    let mut value = json!(alert);
    if !caller.policy().sees_identities() {
        // Whose alert it is, and their owner, go only to roles that see identities.
        if let Some(v) = value.as_object_mut() {
            v.remove("profile_id");
            v.remove("owner");
        }
    }
    Ok(Json(value))
}
