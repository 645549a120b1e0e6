//! `/api/v1/accounts`: people grouped into accounts (companies) by a group call, a CRM's
//! account id or a business email domain, and the 360 of an account. Both are lookups (an
//! account of one is a person's own domain; an account lists its people), so they need
//! `read_profiles` and `search_profiles`; reading one is audited as a read of each person.

use crate::http::{ApiError, Caller};
use crate::state::AppState;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use kinship_pipeline::accounts::{self, AccountIndex};
use kinship_policy::Capability;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

#[derive(utoipa::OpenApi)]
#[openapi(paths(list_accounts, get_account))]
pub struct AccountsDoc;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/api/v1/accounts", get(list_accounts)).route("/api/v1/accounts/{id}", get(get_account))
}

/// Every profile's account. Reading it reads every profile's traits, so the server keeps it
/// (`AppState::accounts`): ten seconds while profiles are resolved, an hour while nothing
/// changes (nothing else moves people between accounts), never past an erasure, a rebuild
/// or a new configuration.
pub(crate) async fn index(state: &Arc<AppState>) -> Result<Arc<AccountIndex>, ApiError> {
    let config = state.config().clone();
    let reader = state.clone();
    Ok(state.read(move |s| reader.accounts.get(s, &config, 10, 3600, || accounts::account_index(s, &config))).await?)
}

#[derive(Default, Deserialize, utoipa::IntoParams)]
pub(crate) struct AccountPage {
    /// Accounts per page, largest first (default 50, at most 500).
    pub limit: Option<usize>,
    pub offset: Option<usize>,
    /// A saved health definition: accounts scored under it, lowest first, each with its
    /// score and band (accounts it does not apply to are left out).
    pub health: Option<String>,
}

/// Accounts, largest first, with how many people each holds.
#[utoipa::path(get, path = "/api/v1/accounts", params(AccountPage), security(("bearer" = [])),
    responses((status = 200, description = "`{total, accounts: [{id, kind, value, name, people}]}`; with `health`, each also has `score` and `band`, lowest first"), (status = 403, description = "The role may not read the health definition"), (status = 404, description = "No such health definition")))]
pub(crate) async fn list_accounts(
    caller: Caller,
    State(state): State<Arc<AppState>>,
    Query(page): Query<AccountPage>,
) -> Result<Json<Value>, ApiError> {
    // An account's value can be a person's own (the domain of one person's business email,
    // a group of one): listing them is a lookup, as reading one is.
    caller.require(Capability::ReadProfiles)?;
    caller.require(Capability::SearchProfiles)?;
    let index = index(&state).await?;
    let (limit, offset) = (page.limit.unwrap_or(50).clamp(1, 500), page.offset.unwrap_or(0));
    if let Some(name) = page.health {
        return scored_accounts(&caller, &state, index, &name, limit, offset).await;
    }
    let all = index.by_size();
    let mut accounts = Value::Array(
        all.iter()
            .skip(offset)
            .take(limit)
            .map(|a| json!({ "id": a.key.id(), "kind": a.key.kind, "value": a.key.value, "name": a.name, "people": a.members.len() }))
            .collect(),
    );
    // A domain or a company's name names no one, but a stray address in a name is masked.
    caller.scrub(&mut accounts, &[]);
    Ok(Json(json!({ "total": all.len(), "accounts": accounts })))
}

/// Accounts by their score under saved health definition `name`, lowest first.
async fn scored_accounts(
    caller: &Caller,
    state: &Arc<AppState>,
    index: Arc<AccountIndex>,
    name: &str,
    limit: usize,
    offset: usize,
) -> Result<Json<Value>, ApiError> {
    // A score is read as a computed trait is, from what its measures read.
    if !caller.policy().sees_computed() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("role `{}` does not see computed values, and health scores are", caller.role),
        ));
    }
    let (reader, policy, wanted) = (state.clone(), caller.policy().clone(), name.to_string());
    let scores = state
        .read(move |s| {
            crate::segments_api::ensure_loaded(&reader)?;
            let engine = reader.audience.read().expect("not poisoned");
            kinship_pipeline::readable::check_definition_readable(&engine, kinship_segments::Kind::Health, &wanted, &policy)
                .map_err(|reason| ApiError::new(StatusCode::FORBIDDEN, reason))?;
            let now = reader.data_now(s)?;
            accounts::account_scores(&engine, &index, &wanted, now).map(|scores| (scores, index)).ok_or_else(|| {
                ApiError::new(StatusCode::NOT_FOUND, format!("no saved health definition {wanted}; list them with GET /api/v1/health"))
            })
        })
        .await?;
    let (scores, index) = scores;
    let mut accounts = Value::Array(
        scores
            .iter()
            .skip(offset)
            .take(limit)
            .map(|(id, scored)| {
                let a = &index.accounts[id];
                json!({ "id": id, "kind": a.key.kind, "value": a.key.value, "name": a.name, "people": a.members.len(), "score": scored.score, "band": scored.band.name() })
            })
            .collect(),
    );
    caller.scrub(&mut accounts, &[]);
    // An aggregate over everyone, as a health report is; the accounts shown are named.
    let shown: Vec<&str> = accounts.as_array().into_iter().flatten().filter_map(|a| a["id"].as_str()).collect();
    caller
        .audit(
            "account.health.read",
            None,
            "GET /api/v1/accounts?health=",
            json!({ "health": name, "scored": scores.len(), "accounts": shown }),
        )
        .await?;
    Ok(Json(json!({ "total": scores.len(), "health": name, "accounts": accounts })))
}

/// The 360 of an account: its people, their orders, unpaid invoices, open cases and value.
#[utoipa::path(get, path = "/api/v1/accounts/{id}", params(("id" = String, Path, description = "Account id, `kind:value` (`domain:acme.com`)")), security(("bearer" = [])),
    responses((status = 200, description = "`{id, name, people_total, people, orders, documents, unpaid_invoices, cases, deals, lifetime_value, health}`"), (status = 404, description = "No such account")))]
pub(crate) async fn get_account(
    caller: Caller,
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Capability::ReadProfiles)?;
    caller.require(Capability::SearchProfiles)?;
    let index = index(&state).await?;
    let Some(account) = index.accounts.get(&id).cloned() else {
        return Err(ApiError(StatusCode::NOT_FOUND, format!("no account {id}; list them with GET /api/v1/accounts")));
    };
    let config = state.config().clone();
    let reader = state.clone();
    let policy = caller.policy().clone();
    let book = crate::deals_api::book_for(&caller, &state).await?;
    let doc = state
        .read(move |s| {
            let now = reader.data_now(s)?;
            let mut doc = accounts::account_document(s, &config, &account, now, &policy)?;
            if let Some(book) = &book {
                kinship_pipeline::deals::add_open_deals(&mut doc, book, account.read(), now, &policy);
            }
            crate::segments_api::ensure_loaded(&reader)?;
            let engine = reader.audience.read().expect("not poisoned");
            doc["health"] = Value::Object(accounts::account_health(&engine, &account, now, &policy));
            Ok::<_, ApiError>(doc)
        })
        .await?;
    let doc = accounts::for_role(doc, caller.policy(), &state.keys.pseudonym);
    let people: Vec<&str> = doc["people"].as_array().into_iter().flatten().filter_map(|p| p["id"].as_str()).collect();
    caller.audit("account.read", None, "GET /api/v1/accounts/{id}", json!({ "account": id, "profiles": people })).await?;
    Ok(Json(doc))
}
