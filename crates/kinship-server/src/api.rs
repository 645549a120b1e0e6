//! The REST API under `/api/v1/`. Every route takes a bearer token (`kinship token create`)
//! and checks the caller's role; the OpenAPI document is generated from these handlers.

use crate::state::AppState;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use kinship_core::Identifier;
use kinship_store::{AccessStore, Store, StoreError, TokenRow};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;
use utoipa::OpenApi;

/// Most profiles a lookup or search returns.
const MAX_RESULTS: usize = 100;
/// Longest accepted query value, in bytes.
const MAX_QUERY_BYTES: usize = 512;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/v1/openapi.json", get(openapi))
        .route("/api/v1/profiles", get(list_profiles))
        .route("/api/v1/profiles/{id}", get(get_profile))
        .route("/api/v1/profiles/{id}/explain", get(explain_profile))
        .route("/api/v1/sources", get(list_sources))
        .route("/api/v1/sources/{name}/enable", post(enable_source))
        .route("/api/v1/sources/{name}/disable", post(disable_source))
        .route("/api/v1/sources/{name}/run", post(run_source))
        .merge(crate::segments_api::routes())
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Kinship REST API", description = "Profiles, identifiers, sources. Authenticate with `Authorization: Bearer TOKEN`."),
    paths(list_profiles, get_profile, explain_profile, list_sources, enable_source, disable_source, run_source, openapi),
    modifiers(&BearerAuth)
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        doc.components
            .get_or_insert_with(Default::default)
            .add_security_scheme("bearer", SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()));
    }
}

pub struct ApiError(StatusCode, String);

impl ApiError {
    pub(crate) fn new(status: StatusCode, reason: impl Into<String>) -> Self {
        Self(status, reason.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl From<kinship_pipeline::PipelineError> for ApiError {
    fn from(e: kinship_pipeline::PipelineError) -> Self {
        Self(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        Self(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    }
}

fn bad_request(reason: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, reason.into())
}

/// The authenticated caller of an API route.
pub struct Caller(TokenRow);

impl Caller {
    pub(crate) fn require(&self, roles: &[&str]) -> Result<(), ApiError> {
        if roles.contains(&self.0.role.as_str()) {
            Ok(())
        } else {
            Err(ApiError(StatusCode::FORBIDDEN, format!("role `{}` may not do this; it needs one of: {}", self.0.role, roles.join(", "))))
        }
    }
}

pub(crate) const READERS: &[&str] = &["admin", "viewer"];
pub(crate) const ADMINS: &[&str] = &["admin"];

impl FromRequestParts<Arc<AppState>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, ApiError> {
        let Some(token) = crate::auth::bearer(&parts.headers) else {
            return Err(ApiError(
                StatusCode::UNAUTHORIZED,
                "missing bearer token; create one with `kinship token create --name NAME --role ROLE`".into(),
            ));
        };
        match state.token(token).await? {
            Some(row) => Ok(Caller(row)),
            None => Err(ApiError(StatusCode::UNAUTHORIZED, "unknown or revoked token".into())),
        }
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
struct ProfileQuery {
    /// Exact email, in any case or spacing.
    email: Option<String>,
    /// Phone number in any format; numbers without a country code use the configured region.
    phone: Option<String>,
    /// Any identifier as `KIND:VALUE`, e.g. `crm_id:C-00042`.
    identifier: Option<String>,
    /// Words that must all appear in the profile's names, emails, phones or other traits.
    q: Option<String>,
    /// Most results (default 20, at most 100).
    limit: Option<usize>,
}

/// Look up profiles by email, phone, any identifier, or full text.
#[utoipa::path(get, path = "/api/v1/profiles", params(ProfileQuery), security(("bearer" = [])),
    responses((status = 200, description = "`{\"profiles\": [{id, traits, records}]}`"), (status = 400, description = "No or invalid lookup"), (status = 401, description = "No valid token")))]
async fn list_profiles(caller: Caller, State(state): State<Arc<AppState>>, Query(q): Query<ProfileQuery>) -> Result<Json<Value>, ApiError> {
    caller.require(READERS)?;
    let limit = q.limit.unwrap_or(20).clamp(1, MAX_RESULTS);
    for v in [&q.email, &q.phone, &q.identifier, &q.q].into_iter().flatten() {
        if v.len() > MAX_QUERY_BYTES {
            return Err(bad_request(format!("a query value may be at most {MAX_QUERY_BYTES} bytes")));
        }
    }
    let lookup = match (&q.email, &q.phone, &q.identifier) {
        (Some(e), _, _) => Some(Identifier::new(
            "email",
            kinship_normalize::email(e).ok_or_else(|| bad_request(format!("{e:?} is not an email address")))?,
        )),
        (_, Some(p), _) => Some(Identifier::new(
            "phone",
            kinship_normalize::phone(p, state.region).ok_or_else(|| bad_request(format!("{p:?} is not a valid phone number")))?,
        )),
        (_, _, Some(i)) => {
            let id = Identifier::parse_key(i).ok_or_else(|| bad_request("`identifier` must be KIND:VALUE, e.g. crm_id:C-00042"))?;
            let value = kinship_normalize::identifier(id.kind.as_str(), &id.value, state.region)
                .ok_or_else(|| bad_request(format!("{:?} is not a valid {}", id.value, id.kind)))?;
            Some(Identifier::new(id.kind, value))
        }
        _ => None,
    };
    let text = match (&lookup, &q.q) {
        (None, Some(t)) => kinship_normalize::fold(t),
        (None, None) => return Err(bad_request("give one of email, phone, identifier or q")),
        _ => String::new(),
    };
    let rows = state
        .read(move |s| match lookup {
            Some(id) => {
                let ids = s.find_profiles(id.kind.as_str(), &id.value)?;
                Ok(ids.iter().take(limit).filter_map(|p| s.profile(p).transpose()).collect::<Result<Vec<_>, _>>()?)
            }
            None => s.search_profiles(&text, limit),
        })
        .await?;
    let profiles: Vec<Value> = rows
        .into_iter()
        .map(|r| json!({ "id": r.id, "traits": kinship_pipeline::golden::values(&r.traits), "records": r.record_count }))
        .collect();
    Ok(Json(json!({ "profiles": profiles })))
}

#[derive(Deserialize, utoipa::IntoParams)]
struct EventPage {
    /// Events per page, newest first (default 50, at most 500).
    limit: Option<usize>,
    /// Events to skip.
    offset: Option<usize>,
}

/// The customer 360 view: traits, identifiers with sources, records, and a page of events, newest first.
#[utoipa::path(get, path = "/api/v1/profiles/{id}", params(("id" = String, Path, description = "Profile id"), EventPage), security(("bearer" = [])),
    responses((status = 200, description = "`{id, traits, trait_sources, identifiers, records, events, events_total}`"), (status = 404, description = "No such profile")))]
async fn get_profile(
    caller: Caller,
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    Query(page): Query<EventPage>,
) -> Result<Json<Value>, ApiError> {
    caller.require(READERS)?;
    let config = state.config.clone();
    let lookup = id.clone();
    let doc = state.read(move |s| kinship_pipeline::profile_document(s, &config, &lookup)).await?;
    let Some(mut doc) = doc else { return Err(ApiError(StatusCode::NOT_FOUND, format!("no profile {id}"))) };
    let (limit, offset) = (page.limit.unwrap_or(50).clamp(1, 500), page.offset.unwrap_or(0));
    let events = doc["events"].as_array().cloned().unwrap_or_default();
    doc["events_total"] = json!(events.len());
    doc["events"] = Value::Array(events.into_iter().skip(offset).take(limit).collect());
    Ok(Json(doc))
}

/// Which identifier or rule joined each record of the profile.
#[utoipa::path(get, path = "/api/v1/profiles/{id}/explain", params(("id" = String, Path, description = "Profile id")), security(("bearer" = [])),
    responses((status = 200, description = "`{id, records, joins: [{left, right, stage, evidence}]}`"), (status = 404, description = "No such profile")))]
async fn explain_profile(caller: Caller, State(state): State<Arc<AppState>>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    caller.require(READERS)?;
    let lookup = id.clone();
    let config = state.config.clone();
    let doc = state.read(move |s| kinship_pipeline::explain(s, &config, &lookup)).await?;
    doc.map(Json).ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no profile {id}")))
}

/// Every configured source with its type, switch, record count and last run.
#[utoipa::path(get, path = "/api/v1/sources", security(("bearer" = [])), responses((status = 200, description = "`{\"sources\": [...]}`")))]
async fn list_sources(caller: Caller, State(state): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    caller.require(READERS)?;
    let (status, switches) = state.read(|s| Ok::<_, StoreError>((s.source_status()?, s.source_switches()?))).await?;
    let sources: Vec<Value> = state
        .config
        .sources
        .iter()
        .map(|(name, c)| {
            let st = status.iter().find(|s| &s.source == name);
            let enabled = switches.iter().find(|(s, _)| s == name).map_or(c.enabled, |(_, on)| *on);
            json!({
                "name": name,
                "type": c.kind,
                "enabled": enabled,
                "records": st.map_or(0, |s| s.records),
                "last_run": st.and_then(|s| s.last_run.clone()),
                "last_error": st.and_then(|s| s.last_run.as_ref()).and_then(|r| r.error.clone()),
            })
        })
        .collect();
    Ok(Json(json!({ "sources": sources })))
}

async fn switch(caller: Caller, state: Arc<AppState>, name: String, on: bool) -> Result<Json<Value>, ApiError> {
    caller.require(ADMINS)?;
    if !state.config.sources.contains_key(&name) {
        return Err(ApiError(StatusCode::NOT_FOUND, format!("no source `{name}`")));
    }
    let n = name.clone();
    // Writes go through their own connection: switches are rare and must not queue behind events.
    let path = state.db_path.clone();
    tokio::task::spawn_blocking(move || kinship_store::SqliteStore::open(&path)?.set_source_enabled(&n, on))
        .await
        .expect("does not panic")?;
    Ok(Json(json!({ "name": name, "enabled": on })))
}

/// Switch a source on.
#[utoipa::path(post, path = "/api/v1/sources/{name}/enable", params(("name" = String, Path)), security(("bearer" = [])), responses((status = 200, description = "Switched on"), (status = 403, description = "Admins only")))]
async fn enable_source(caller: Caller, State(state): State<Arc<AppState>>, Path(name): Path<String>) -> Result<Json<Value>, ApiError> {
    switch(caller, state, name, true).await
}

/// Switch a source off: its files are not ingested and its write key is refused.
#[utoipa::path(post, path = "/api/v1/sources/{name}/disable", params(("name" = String, Path)), security(("bearer" = [])), responses((status = 200, description = "Switched off"), (status = 403, description = "Admins only")))]
async fn disable_source(caller: Caller, State(state): State<Arc<AppState>>, Path(name): Path<String>) -> Result<Json<Value>, ApiError> {
    switch(caller, state, name, false).await
}

/// Ingest a file source now; its records are resolved in real time as they are committed.
#[utoipa::path(post, path = "/api/v1/sources/{name}/run", params(("name" = String, Path)), security(("bearer" = [])),
    responses((status = 200, description = "The ingest report: read, inserted, duplicates, rejected"), (status = 409, description = "The source is off"), (status = 422, description = "Not a file source")))]
async fn run_source(caller: Caller, State(state): State<Arc<AppState>>, Path(name): Path<String>) -> Result<Json<Value>, ApiError> {
    caller.require(ADMINS)?;
    let Some(source) = state.config.sources.get(&name) else { return Err(ApiError(StatusCode::NOT_FOUND, format!("no source `{name}`"))) };
    if !source.kind.is_file() {
        return Err(ApiError(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("source `{name}` receives events from the collection API; it has no file to run"),
        ));
    }
    if !state.source_enabled(&name).await? {
        return Err(ApiError(StatusCode::CONFLICT, format!("source `{name}` is switched off; enable it first")));
    }
    let s = state.clone();
    let report = tokio::task::spawn_blocking(move || {
        let mut store = kinship_store::SqliteStore::open(&s.db_path)?;
        kinship_pipeline::ingest_source(&mut store, &s.config, &name, &s.data_dir, &|_, _| {})
            .map_err(|e| StoreError::Schema(e.to_string()))
    })
    .await
    .expect("does not panic")
    .map_err(|e| ApiError(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()))?;
    Ok(Json(serde_json::to_value(report).unwrap_or_default()))
}

/// This document.
#[utoipa::path(get, path = "/api/v1/openapi.json", security(("bearer" = [])), responses((status = 200, description = "OpenAPI 3.1 document")))]
async fn openapi(caller: Caller) -> Result<Json<utoipa::openapi::OpenApi>, ApiError> {
    caller.require(READERS)?;
    Ok(Json(ApiDoc::openapi().merge_from(crate::segments_api::SegmentsDoc::openapi())))
}
