//! The REST API under `/api/v1/`. Every route takes a bearer token (`kinship token create`)
//! and checks the caller's role; the OpenAPI document is generated from these handlers.

use crate::http::{bad_request, ApiError, Caller};
use crate::state::AppState;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use kinship_core::Identifier;
use kinship_policy::{Capability, Policy};
use kinship_store::StoreError;
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
        .route("/api/v1/profiles/{id}/briefing", get(profile_briefing))
        .route("/api/v1/profiles/{id}/split", post(split_profile))
        .route("/api/v1/sources", get(list_sources))
        .route("/api/v1/sources/{name}/enable", post(enable_source))
        .route("/api/v1/sources/{name}/disable", post(disable_source))
        .route("/api/v1/sources/{name}/run", post(run_source))
        .merge(crate::segments_api::routes())
        .merge(crate::flows_api::routes())
        .merge(crate::measures_api::routes())
        .merge(crate::success_api::routes())
        .merge(crate::cases_api::routes())
        .merge(crate::accounts_api::routes())
        .merge(crate::deals_api::routes())
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Kinship REST API", description = "Profiles, identifiers, sources. Authenticate with `Authorization: Bearer TOKEN`."),
    paths(list_profiles, get_profile, explain_profile, profile_briefing, split_profile, list_sources, enable_source, disable_source, run_source, openapi,
        crate::governance_api::list_audit, crate::governance_api::verify_audit, crate::governance_api::list_tokens,
        crate::governance_api::create_token, crate::governance_api::revoke_token, crate::governance_api::erase,
        crate::governance_api::export),
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

#[derive(Default, Deserialize, utoipa::IntoParams)]
pub(crate) struct ProfileQuery {
    /// Exact email, in any case or spacing.
    pub email: Option<String>,
    /// Phone number in any format; numbers without a country code use the configured region.
    pub phone: Option<String>,
    /// Any identifier as `KIND:VALUE`, e.g. `crm_id:C-00042`.
    pub identifier: Option<String>,
    /// Words that must all appear in the profile's names, emails, phones or other traits;
    /// when no profile holds them all, profiles with similar names (typing mistakes forgiven).
    pub q: Option<String>,
    /// Most results (default 20, at most 100).
    pub limit: Option<usize>,
}

/// Look up profiles by email, phone, any identifier, or full text.
#[utoipa::path(get, path = "/api/v1/profiles", params(ProfileQuery), security(("bearer" = [])),
    responses((status = 200, description = "`{\"profiles\": [{id, traits, records}]}`"), (status = 400, description = "No or invalid lookup"), (status = 401, description = "No valid token")))]
pub(crate) async fn list_profiles(
    caller: Caller,
    State(state): State<Arc<AppState>>,
    Query(q): Query<ProfileQuery>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Capability::SearchProfiles)?;
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
    let lookup_kind = lookup.as_ref().map_or("text", |id| id.kind.as_str()).to_string();
    let rows = state
        .read(move |s| {
            let rows = match lookup {
                Some(id) => {
                    let ids = s.find_profiles(id.kind.as_str(), &id.value)?;
                    ids.iter().take(limit).filter_map(|p| s.profile(p).transpose()).collect::<Result<Vec<_>, _>>()?
                }
                None => {
                    let found = s.search_profiles(&text, limit)?;
                    if found.is_empty() {
                        let ids = crate::search::similar_names(s, &text, limit)?;
                        ids.iter().filter_map(|p| s.profile(p).transpose()).collect::<Result<Vec<_>, _>>()?
                    } else {
                        found
                    }
                }
            };
            // Each result's identifiers, so the projection can mask them wherever they appear.
            rows.into_iter().map(|r| Ok::<_, StoreError>((s.profile_identifiers(&r.id)?, r))).collect::<Result<Vec<_>, _>>()
        })
        .await?;
    let mut profiles = Vec::with_capacity(rows.len());
    for (identifiers, r) in rows {
        let doc = json!({ "id": r.id, "traits": kinship_pipeline::golden::values(&r.traits), "identifiers": identifiers });
        let projected = caller.project(&doc);
        // The lookup's value is not logged: the audit log must not hold identifiers.
        caller.audit("search", Some(&r.id), "GET /api/v1/profiles", json!({ "lookup": lookup_kind, "fields": projected.fields })).await?;
        let mut shown = json!({ "id": r.id, "records": r.record_count });
        if let Some(traits) = projected.value.get("traits") {
            shown["traits"] = traits.clone();
        }
        profiles.push(shown);
    }
    Ok(Json(json!({ "profiles": profiles })))
}

#[derive(Default, Deserialize, utoipa::IntoParams)]
pub(crate) struct EventPage {
    /// Events per page, newest first (default 50, at most 500).
    pub limit: Option<usize>,
    /// Events to skip.
    pub offset: Option<usize>,
}

/// The customer 360 view: traits, identifiers with sources, records, and a page of events, newest first.
#[utoipa::path(get, path = "/api/v1/profiles/{id}", params(("id" = String, Path, description = "Profile id"), EventPage), security(("bearer" = [])),
    responses((status = 200, description = "`{id, traits, trait_sources, identifiers, records, events, events_total}`"), (status = 404, description = "No such profile")))]
pub(crate) async fn get_profile(
    caller: Caller,
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    Query(page): Query<EventPage>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Capability::ReadProfiles)?;
    let config = state.config().clone();
    let lookup = id.clone();
    let doc = state.read(move |s| kinship_pipeline::profile_document(s, &config, &lookup)).await?;
    let Some(doc) = doc else { return Err(ApiError(StatusCode::NOT_FOUND, format!("no profile {id}"))) };
    let projected = caller.project(&doc);
    let mut doc = projected.value;
    let (limit, offset) = (page.limit.unwrap_or(50).clamp(1, 500), page.offset.unwrap_or(0));
    if let Some(events) = doc.get_mut("events").and_then(Value::as_array_mut) {
        let total = events.len();
        *events = events.drain(..).skip(offset).take(limit).collect();
        doc["events_total"] = json!(total);
    }
    caller.audit("read", Some(&id), "GET /api/v1/profiles/{id}", json!({ "fields": projected.fields })).await?;
    Ok(Json(doc))
}

#[derive(Default, Deserialize, utoipa::IntoParams)]
pub(crate) struct BriefingQuery {
    /// Also list what changed after this moment (RFC 3339), as the web UI does with the
    /// reader's last visit.
    pub since: Option<String>,
}

/// The briefing before talking to a customer: each order followed through invoice, payment
/// and shipment, every document, unpaid invoices, open cases with their SLA clocks, open
/// tasks and deals (for roles that read deals), the last NPS answer, lifetime value, and
/// what changed since `since`.
#[utoipa::path(get, path = "/api/v1/profiles/{id}/briefing", params(("id" = String, Path, description = "Profile id"), BriefingQuery), security(("bearer" = [])),
    responses((status = 200, description = "`{id, name, as_of, summary, orders, documents, unpaid_invoices, cases, tasks, deals, nps, lifetime_value, changed}`"), (status = 404, description = "No such profile")))]
pub(crate) async fn profile_briefing(
    caller: Caller,
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    Query(query): Query<BriefingQuery>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Capability::ReadProfiles)?;
    let since = match query.since.as_deref() {
        None | Some("") => None,
        Some(text) => Some(
            kinship_normalize::parse_timestamp_ms(text)
                .ok_or_else(|| bad_request(format!("since {text:?} is not a time; write RFC 3339, as 2025-06-01T00:00:00Z")))?,
        ),
    };
    let config = state.config().clone();
    let lookup = id.clone();
    let reader = state.clone();
    let policy = caller.policy().clone();
    let book = crate::deals_api::book_for(&caller, &state).await?;
    let found = state
        .read(move |s| {
            let now = reader.data_now(s)?;
            let Some(mut doc) = kinship_pipeline::briefing::briefing(s, &config, &lookup, since, now, &policy)? else { return Ok(None) };
            if let Some(book) = &book {
                kinship_pipeline::deals::add_open_deals(&mut doc, book, std::slice::from_ref(&lookup), now, &policy);
            }
            Ok::<_, kinship_pipeline::PipelineError>(Some((doc, s.profile_identifiers(&lookup)?)))
        })
        .await?;
    let Some((doc, identifiers)) = found else { return Err(ApiError(StatusCode::NOT_FOUND, format!("no profile {id}"))) };
    let identifiers = serde_json::to_value(identifiers).unwrap_or_default();
    let doc = kinship_pipeline::briefing::for_role(
        doc,
        identifiers.as_array().map_or(&[][..], Vec::as_slice),
        caller.policy(),
        &state.keys.pseudonym,
    );
    caller
        .audit("brief", Some(&id), "GET /api/v1/profiles/{id}/briefing", json!({ "orders": doc["orders"].as_array().map_or(0, Vec::len) }))
        .await?;
    Ok(Json(doc))
}

/// Which identifier or rule joined each record of the profile.
#[utoipa::path(get, path = "/api/v1/profiles/{id}/explain", params(("id" = String, Path, description = "Profile id")), security(("bearer" = [])),
    responses((status = 200, description = "`{id, records, joins: [{left, right, stage, evidence}]}`"), (status = 404, description = "No such profile")))]
pub(crate) async fn explain_profile(
    caller: Caller,
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Capability::ExplainProfiles)?;
    let lookup = id.clone();
    let config = state.config().clone();
    let found = state
        .read(move |s| {
            let Some(doc) = kinship_pipeline::explain(s, &config, &lookup)? else { return Ok(None) };
            Ok::<_, kinship_pipeline::PipelineError>(Some((doc, s.profile_identifiers(&lookup)?)))
        })
        .await?;
    let Some((mut doc, identifiers)) = found else { return Err(ApiError(StatusCode::NOT_FOUND, format!("no profile {id}"))) };
    redact_evidence(&mut doc, caller.policy(), &state.keys.pseudonym);
    caller.scrub(&mut doc, &serde_json::to_value(identifiers).unwrap_or_default().as_array().cloned().unwrap_or_default());
    caller
        .audit("explain", Some(&id), "GET /api/v1/profiles/{id}/explain", json!({ "joins": doc["joins"].as_array().map_or(0, Vec::len) }))
        .await?;
    Ok(Json(doc))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SplitRequest {
    /// The record to split off, as `SOURCE:KEY`.
    pub record: String,
}

/// Split a record off a profile: it is never joined with the profile's other records again
/// (the decision survives re-resolution), and the profiles are rewritten at once.
#[utoipa::path(post, path = "/api/v1/profiles/{id}/split", params(("id" = String, Path, description = "Profile id")), request_body = SplitRequest,
    security(("bearer" = [])),
    responses((status = 200, description = "`{record, from, now_in, remaining_in}`"), (status = 409, description = "The record is not in this profile, or is its only record")))]
pub(crate) async fn split_profile(
    caller: Caller,
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    Json(body): Json<SplitRequest>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Capability::SplitMerge)?;
    let Some((source, key)) = body.record.split_once(':').map(|(s, k)| (s.to_string(), k.to_string())) else {
        return Err(bad_request("`record` must be SOURCE:KEY, e.g. shop:O-1001"));
    };
    let (s, from) = (state.clone(), id.clone());
    let (now_in, remaining_in) = tokio::task::spawn_blocking(move || {
        // The resolver and the writer wait while the profile is rewritten.
        let turn = s.writer.turn();
        let _turn = turn.lock().expect("not poisoned");
        let mut store = kinship_store::open(&s.database)?;
        let remaining = store.profile_records(&from)?.into_iter().find(|r| !(r.source == source && r.key == key));
        let (now_in, _) = kinship_pipeline::split_record(&mut *store, &s.config(), &from, &source, &key)?;
        let remaining_in = match remaining {
            Some(r) => store.record_profile(&r.source, &r.key)?.map(|(_, p)| p),
            None => None,
        };
        let touched: Vec<String> = [Some(now_in.clone()), remaining_in.clone()].into_iter().flatten().collect();
        let removed: Vec<String> = if touched.contains(&from) { Vec::new() } else { vec![from.clone()] };
        let mut audience = s.audience.write().expect("not poisoned");
        kinship_pipeline::audience::refresh_profiles(&mut *store, &s.config(), &mut audience, &touched, &removed)?;
        Ok::<_, kinship_pipeline::PipelineError>((now_in, remaining_in))
    })
    .await
    .expect("does not panic")
    .map_err(|e| match e {
        kinship_pipeline::PipelineError::Config(reason) => ApiError(StatusCode::CONFLICT, reason),
        other => other.into(),
    })?;
    caller.audit("split", Some(&id), "POST /api/v1/profiles/{id}/split", json!({ "record": body.record, "now_in": now_in })).await?;
    Ok(Json(json!({ "record": body.record, "from": id, "now_in": now_in, "remaining_in": remaining_in })))
}

/// Every configured source with its type, switch, record count and last run.
#[utoipa::path(get, path = "/api/v1/sources", security(("bearer" = [])), responses((status = 200, description = "`{\"sources\": [...]}`")))]
pub(crate) async fn list_sources(caller: Caller, State(state): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    caller.require(Capability::ReadSources)?;
    let (status, switches) = state.read(|s| Ok::<_, StoreError>((s.source_status()?, s.source_switches()?))).await?;
    let config = state.config();
    let sources: Vec<Value> = config
        .sources
        .iter()
        .map(|(name, c)| {
            let st = status.iter().find(|s| &s.source == name);
            let enabled = switches.iter().find(|(s, _)| s == name).map_or(c.enabled, |(_, on)| *on);
            json!({
                "name": name,
                "type": c.kind,
                "enabled": enabled,
                "schedule": c.schedule,
                "records": st.map_or(0, |s| s.records),
                "last_run": st.and_then(|s| s.last_run.clone()),
                "last_error": st.and_then(|s| s.last_run.as_ref()).and_then(|r| r.error.clone()),
            })
        })
        .collect();
    // A run's error can quote a row; roles that may not read emails get them masked.
    let mut body = json!({ "sources": sources });
    caller.scrub(&mut body, &[]);
    Ok(Json(body))
}

async fn switch(caller: Caller, state: Arc<AppState>, name: String, on: bool) -> Result<Json<Value>, ApiError> {
    caller.require(Capability::ManageSources)?;
    if !state.config().sources.contains_key(&name) {
        return Err(ApiError(StatusCode::NOT_FOUND, format!("no source `{name}`")));
    }
    let n = name.clone();
    // Writes go through their own connection: switches are rare and must not queue behind events.
    let path = state.database.clone();
    tokio::task::spawn_blocking(move || kinship_store::open(&path)?.set_source_enabled(&n, on)).await.expect("does not panic")?;
    let action = if on { "source.enable" } else { "source.disable" };
    caller
        .audit(action, None, &format!("POST /api/v1/sources/{{name}}/{}", if on { "enable" } else { "disable" }), json!({ "source": name }))
        .await?;
    Ok(Json(json!({ "name": name, "enabled": on })))
}

/// Switch a source on.
#[utoipa::path(post, path = "/api/v1/sources/{name}/enable", params(("name" = String, Path)), security(("bearer" = [])), responses((status = 200, description = "Switched on"), (status = 403, description = "Admins only")))]
pub(crate) async fn enable_source(
    caller: Caller,
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    switch(caller, state, name, true).await
}

/// Switch a source off: its files are not ingested and its write key is refused.
#[utoipa::path(post, path = "/api/v1/sources/{name}/disable", params(("name" = String, Path)), security(("bearer" = [])), responses((status = 200, description = "Switched off"), (status = 403, description = "Admins only")))]
pub(crate) async fn disable_source(
    caller: Caller,
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    switch(caller, state, name, false).await
}

/// Ingest a file or database source now; its records are resolved in real time as they are committed.
#[utoipa::path(post, path = "/api/v1/sources/{name}/run", params(("name" = String, Path)), security(("bearer" = [])),
    responses((status = 200, description = "The ingest report: read, inserted, duplicates, rejected"), (status = 409, description = "The source is off"),
        (status = 422, description = "A Segment source (nothing to read), or the run failed")))]
pub(crate) async fn run_source(
    caller: Caller,
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Capability::ManageSources)?;
    let report = pull_source(&state, &name).await?;
    let mut body = serde_json::to_value(&report).unwrap_or_default();
    caller.audit("source.run", None, "POST /api/v1/sources/{name}/run", run_detail(&report)).await?;
    caller.scrub(&mut body, &[]);
    Ok(Json(body))
}

/// Reads a source into the log now, for "run now" and the schedule alike: a source Kinship
/// reads (not a Segment source) that is switched on. A failed run is also recorded as the
/// source's last run, with its error.
pub(crate) async fn pull_source(state: &Arc<AppState>, name: &str) -> Result<kinship_pipeline::IngestReport, ApiError> {
    let config = state.config();
    let Some(source) = config.sources.get(name) else { return Err(ApiError(StatusCode::NOT_FOUND, format!("no source `{name}`"))) };
    if !source.kind.is_pulled() {
        return Err(ApiError(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("source `{name}` receives events from the collection API; it has nothing to read"),
        ));
    }
    if !state.source_enabled(name).await? {
        return Err(ApiError(StatusCode::CONFLICT, format!("source `{name}` is switched off; enable it first")));
    }
    // One pull of a source at a time (a schedule's tick and "run now" may meet); the claim
    // travels with the ingest, which goes on even if the request that started it is gone.
    let running = state
        .claim_run(name)
        .ok_or_else(|| ApiError(StatusCode::CONFLICT, format!("source `{name}` is being read already; try again when it is done")))?;
    let s = state.clone();
    let source_name = name.to_string();
    tokio::task::spawn_blocking(move || {
        let _running = running;
        let mut store = kinship_store::open(&s.database)?;
        kinship_pipeline::ingest_source(&mut *store, &s.config(), &source_name, &s.data_dir, &s.suppression.check(), &|_, _| {})
            .map_err(|e| StoreError::Schema(e.to_string()))
    })
    .await
    .expect("does not panic")
    .map_err(|e| ApiError(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()))
}

/// What the audit log keeps of a source's run.
pub(crate) fn run_detail(report: &kinship_pipeline::IngestReport) -> Value {
    json!({ "source": report.source, "inserted": report.inserted, "suppressed": report.suppressed })
}

/// This document.
#[utoipa::path(get, path = "/api/v1/openapi.json", security(("bearer" = [])), responses((status = 200, description = "OpenAPI 3.1 document")))]
async fn openapi(caller: Caller) -> Result<Json<utoipa::openapi::OpenApi>, ApiError> {
    caller.require(Capability::ReadProfiles)?;
    Ok(Json(
        ApiDoc::openapi()
            .merge_from(crate::segments_api::SegmentsDoc::openapi())
            .merge_from(crate::flows_api::FlowsDoc::openapi())
            .merge_from(crate::measures_api::MeasuresDoc::openapi())
            .merge_from(crate::success_api::SuccessDoc::openapi())
            .merge_from(crate::cases_api::CasesDoc::openapi())
            .merge_from(crate::accounts_api::AccountsDoc::openapi())
            .merge_from(crate::deals_api::DealsDoc::openapi()),
    ))
}

/// Match evidence as a role may see it: a shared identifier's value through the role's
/// rule for its kind; a fuzzy match's field-by-field comparison (which quotes trait values)
/// only for roles that read raw records, others get its scores.
fn redact_evidence(doc: &mut Value, policy: &Policy, key: &kinship_policy::PseudonymKey) {
    use kinship_policy::{Access, RecordAccess};
    if policy.records() == RecordAccess::Raw {
        return;
    }
    for join in doc.get_mut("joins").and_then(Value::as_array_mut).into_iter().flatten() {
        let exact = join.get("stage").and_then(Value::as_str) == Some("exact");
        let evidence = &mut join["evidence"];
        if exact {
            let (Some(kind), Some(value)) = (evidence["kind"].as_str().map(String::from), evidence["value"].as_str().map(String::from))
            else {
                continue;
            };
            match policy.identifier_access(&kind) {
                Access::Allow => {}
                Access::Mask => evidence["value"] = json!(policy.mask_style(&kind).apply(&value)),
                Access::Pseudonym => evidence["value"] = json!(kinship_policy::pseudonym(key, &value)),
                Access::Hide => {
                    if let Some(fields) = evidence.as_object_mut() {
                        fields.remove("value");
                    }
                }
            }
        } else if let Some(fields) = evidence.as_object_mut() {
            fields.retain(|name, _| ["probability", "match_weight", "matched"].contains(&name.as_str()));
        }
    }
}
