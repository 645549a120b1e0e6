//! `/api/v1/deals`: deals from connected CRMs and native ones, the board's numbers (per stage,
//! the weighted forecast by close month, win rate, time in stage, the stage funnel), and
//! native deals opened and moved between stages. Reading needs `read_deals`, writing
//! `work_deals`; the list names its contacts and is audited as a read of each, and a deal's
//! contacts and name go only to roles that see identities.

use crate::http::{bad_request, ApiError, Caller};
use crate::native::{checked_name, native_source, write_native, written};
use crate::state::AppState;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use kinship_pipeline::deals::{self, DealBook, DealSelection};
use kinship_policy::Capability;
use kinship_service::deals::{StageType, NATIVE_DEAL};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

#[derive(utoipa::OpenApi)]
#[openapi(paths(list_deals, open_deal, get_deal, update_deal))]
pub struct DealsDoc;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/v1/deals", get(list_deals).post(open_deal))
        .route("/api/v1/deals/{source}/{id}", get(get_deal))
        .route("/api/v1/deals/{source}/{id}/update", post(update_deal))
}

/// Every deal. Reading them scans the deal-mapped sources, so the server keeps the book
/// (`AppState::deal_book`): five seconds while records are resolved, ten minutes while
/// nothing changes, never past an erasure, a rebuild, a new configuration or its own write.
pub(crate) async fn book(state: &Arc<AppState>) -> Result<Arc<DealBook>, ApiError> {
    let config = state.config().clone();
    let reader = state.clone();
    Ok(state.read(move |s| reader.deal_book.get(s, &config, 5, 600, || deals::all_deals(s, &config))).await?)
}

/// The book for a page that shows open deals beside other things (the briefing, an
/// account): `None` for a role that may not read deals, which then costs no scan.
pub(crate) async fn book_for(caller: &Caller, state: &Arc<AppState>) -> Result<Option<Arc<DealBook>>, ApiError> {
    if !caller.policy().allows(Capability::ReadDeals) {
        return Ok(None);
    }
    Ok(Some(book(state).await?))
}

const MAX_PAGE: usize = 500;

#[derive(Default, Deserialize, utoipa::IntoParams)]
pub(crate) struct DealQuery {
    /// `open` (default), `won`, `lost` or `all`.
    pub status: Option<String>,
    /// Only this seller's deals (the report too).
    pub owner: Option<String>,
    /// Deals per page (default 100, at most 500).
    pub limit: Option<usize>,
    pub offset: Option<usize>,
}

/// The deals (open ones by close date first) and the board's numbers over every deal of the
/// selected owner: per stage, forecast by close month, win rate, time in stage and funnel.
#[utoipa::path(get, path = "/api/v1/deals", params(DealQuery), security(("bearer" = [])),
    responses((status = 200, description = "`{as_of, total, deals: [...], report: {stages, forecast, win_rate, time_in_stage_days, funnel}, problems}`")))]
pub(crate) async fn list_deals(
    caller: Caller,
    State(state): State<Arc<AppState>>,
    Query(q): Query<DealQuery>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Capability::ReadDeals)?;
    let selection = DealSelection { status: q.status, owner: q.owner, contacts: None };
    selection.check().map_err(bad_request)?;
    let book = book(&state).await?;
    let reader = state.clone();
    let now = state.read(move |s| reader.data_now(s)).await?;
    let (limit, offset) = (q.limit.unwrap_or(100).clamp(1, MAX_PAGE), q.offset.unwrap_or(0));
    let (mut listed, contacts) = deals::listing(&book, &selection, limit, offset, now, caller.policy());
    caller.scrub(&mut listed, &[]);
    listed["native"] = json!(state.config().service.source);
    caller
        .audit(
            "deal.list",
            None,
            "GET /api/v1/deals",
            json!({ "deals": listed["deals"].as_array().map_or(0, Vec::len), "profiles": contacts }),
        )
        .await?;
    Ok(Json(listed))
}

/// Longest deal name accepted, in characters.
const MAX_DEAL_NAME: usize = 200;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDeal {
    /// The contact: a profile.
    pub profile: String,
    pub name: String,
    pub amount: f64,
    /// Three letters (default `USD`).
    pub currency: Option<String>,
    /// Expected close date, `YYYY-MM-DD`.
    pub close: String,
    /// Default: the first stage.
    pub stage: Option<String>,
    /// The seller; default: the caller.
    pub owner: Option<String>,
    /// Over the stage's default, 0–1.
    pub probability: Option<f64>,
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DealUpdate {
    pub stage: Option<String>,
    pub amount: Option<f64>,
    pub close: Option<String>,
    pub owner: Option<String>,
    pub probability: Option<f64>,
}

/// The fields of a native deal's message that a request sets, each checked.
fn checked_fields(
    book: &DealBook,
    stage: Option<&str>,
    amount: Option<f64>,
    close: Option<&str>,
    owner: Option<&str>,
    probability: Option<f64>,
) -> Result<serde_json::Map<String, Value>, ApiError> {
    let mut out = serde_json::Map::new();
    if let Some(stage) = stage {
        let known = book.stage(stage).ok_or_else(|| {
            let names: Vec<&str> = book.stages.iter().map(|s| s.name.as_str()).collect();
            bad_request(format!("unknown stage `{stage}`: use {}", names.join(", ")))
        })?;
        out.insert("stage".into(), json!(known.name));
    }
    if let Some(amount) = amount {
        if !amount.is_finite() || amount < 0.0 {
            return Err(bad_request(format!("amount {amount} must be a number of at least 0")));
        }
        out.insert("amount".into(), json!(amount));
    }
    if let Some(close) = close {
        chrono::NaiveDate::parse_from_str(close.trim(), "%Y-%m-%d")
            .map_err(|_| bad_request(format!("close date `{close}` is not a date: write YYYY-MM-DD")))?;
        out.insert("close".into(), json!(close.trim()));
    }
    if let Some(owner) = checked_name("owner", owner)? {
        out.insert("owner".into(), json!(owner));
    }
    if let Some(p) = probability {
        if !(0.0..=1.0).contains(&p) {
            return Err(bad_request(format!("probability {p} must be between 0 and 1")));
        }
        out.insert("probability".into(), json!(p));
    }
    Ok(out)
}

/// Opens a native deal with a profile as its contact.
#[utoipa::path(post, path = "/api/v1/deals", request_body = NewDeal, security(("bearer" = [])),
    responses((status = 201, description = "`{source, id}`"), (status = 202, description = "Written, still being resolved"), (status = 409, description = "Native deals are off, or the profile cannot be named")))]
pub(crate) async fn open_deal(
    caller: Caller,
    State(state): State<Arc<AppState>>,
    Json(body): Json<NewDeal>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.require(Capability::WorkDeals)?;
    caller.require(Capability::ReadProfiles)?;
    let source = native_source(&state)?;
    let lookup = body.profile.clone();
    if state.read(move |s| s.profile(&lookup)).await?.is_none() {
        return Err(ApiError(StatusCode::NOT_FOUND, format!("no profile {}", body.profile)));
    }
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > MAX_DEAL_NAME {
        return Err(bad_request(format!("the deal's name needs 1 to {MAX_DEAL_NAME} characters")));
    }
    let currency = body.currency.as_deref().map_or("USD".to_string(), |c| c.trim().to_uppercase());
    if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(bad_request(format!("currency `{currency}` is not a three-letter code such as USD or AUD")));
    }
    let book = book(&state).await?;
    // A new deal starts in the first open stage (a pipeline's stages may list won first).
    let first = book.stages.iter().find(|s| s.kind == StageType::Open).map(|s| s.name.clone()).unwrap_or_default();
    let owner = body.owner.clone().unwrap_or_else(|| caller.name().to_string());
    let mut properties = checked_fields(
        &book,
        Some(body.stage.as_deref().unwrap_or(&first)),
        Some(body.amount),
        Some(&body.close),
        Some(&owner),
        body.probability,
    )?;
    let id = format!("D-{}", &crate::auth::new_secret("")[..10]);
    properties.insert("deal".into(), json!(id));
    properties.insert("name".into(), json!(name));
    properties.insert("currency".into(), json!(currency));
    let resolved = write_native(&state, &source, &body.profile, &id, NATIVE_DEAL, Value::Object(properties)).await?;
    caller.audit("deal.open", Some(&body.profile), "POST /api/v1/deals", json!({ "deal": id })).await?;
    Ok((written(resolved), Json(json!({ "source": source, "id": id }))))
}

/// One deal with its stage history.
#[utoipa::path(get, path = "/api/v1/deals/{source}/{id}", params(("source" = String, Path), ("id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, description = "The deal"), (status = 404, description = "No such deal")))]
pub(crate) async fn get_deal(
    caller: Caller,
    State(state): State<Arc<AppState>>,
    Path((source, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Capability::ReadDeals)?;
    let book = book(&state).await?;
    let deal = book.find(&source, &id).ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no deal {id} in {source}")))?;
    let reader = state.clone();
    let now = state.read(move |s| reader.data_now(s)).await?;
    let mut one = Value::Array(vec![deals::deal_json(deal, &book.stages, now)]);
    deals::for_role(&mut one, caller.policy());
    caller.scrub(&mut one, &[]);
    let mut shown = one.as_array_mut().and_then(|a| a.pop()).unwrap_or_default();
    shown["native"] = json!(state.config().service.source.as_deref() == Some(source.as_str()));
    caller
        .audit(
            "deal.read",
            deal.contacts.first().map(String::as_str),
            "GET /api/v1/deals/{source}/{id}",
            json!({ "deal": id, "profiles": deal.contacts }),
        )
        .await?;
    Ok(Json(shown))
}

/// Moves a native deal to another stage, or changes its amount, close date, owner or
/// probability. Only what changes is written, so two moves at once do not undo each other.
#[utoipa::path(post, path = "/api/v1/deals/{source}/{id}/update", params(("source" = String, Path), ("id" = String, Path)), request_body = DealUpdate, security(("bearer" = [])),
    responses((status = 201, description = "Written"), (status = 422, description = "A connected CRM's deal")))]
pub(crate) async fn update_deal(
    caller: Caller,
    State(state): State<Arc<AppState>>,
    Path((source, id)): Path<(String, String)>,
    Json(change): Json<DealUpdate>,
) -> Result<StatusCode, ApiError> {
    caller.require(Capability::WorkDeals)?;
    let native = native_source(&state)?;
    if source != native {
        return Err(ApiError(StatusCode::UNPROCESSABLE_ENTITY, format!("deal {id} belongs to {source}: change it in that CRM")));
    }
    let book = book(&state).await?;
    let mut properties = checked_fields(
        &book,
        change.stage.as_deref(),
        change.amount,
        change.close.as_deref(),
        change.owner.as_deref(),
        change.probability,
    )?;
    if properties.is_empty() {
        return Err(bad_request("nothing to change: send stage, amount, close, owner or probability"));
    }
    let deal = book.find(&source, &id).cloned().ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no deal {id} in {source}")))?;
    properties.insert("deal".into(), json!(id));
    // Written under the contact who holds it, so the deal's versions stay one profile's.
    let contact = deal.contacts.first().cloned().unwrap_or_default();
    let resolved = write_native(&state, &source, &contact, &id, NATIVE_DEAL, Value::Object(properties)).await?;
    caller
        .audit("deal.update", Some(&contact), "POST /api/v1/deals/{source}/{id}/update", json!({ "deal": id, "stage": change.stage }))
        .await?;
    Ok(written(resolved))
}
