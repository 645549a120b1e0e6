//! Governance routes: the audit log, tokens, erasure and the subject access export. All
//! of them are for roles with the matching capability (built in: admin only).

use crate::http::{bad_request, ApiError, Caller};
use crate::state::AppState;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use kinship_pipeline::governance::{self, Subject};
use kinship_policy::Capability;
use kinship_store::{AuditFilter, StoreError};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

/// Most audit entries one call returns.
const MAX_AUDIT_PAGE: usize = 1_000;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/v1/audit", get(list_audit))
        .route("/api/v1/audit/verify", get(verify_audit))
        .route("/api/v1/tokens", get(list_tokens).post(create_token))
        .route("/api/v1/tokens/{name}", delete(revoke_token))
        .route("/api/v1/privacy/erasure", post(erase))
        .route("/api/v1/privacy/export", get(export))
}

#[derive(Default, Deserialize, utoipa::IntoParams)]
pub struct AuditQuery {
    /// Entries about this profile.
    pub profile: Option<String>,
    /// Entries by this actor, e.g. `token:ops`, `user:alice` or `cli:alice`.
    pub actor: Option<String>,
    /// Entries at or after this time: RFC 3339 or Unix milliseconds.
    pub since: Option<String>,
    /// Entries after this sequence number (for paging).
    pub after: Option<u64>,
    /// Most entries (default 100, at most 1000).
    pub limit: Option<usize>,
}

/// Audit entries, oldest first, each as it was chained.
#[utoipa::path(get, path = "/api/v1/audit", params(AuditQuery), security(("bearer" = [])),
    responses((status = 200, description = "`{entries: [...], next_after}`"), (status = 403, description = "Needs `read_audit`")))]
pub async fn list_audit(caller: Caller, State(state): State<Arc<AppState>>, Query(q): Query<AuditQuery>) -> Result<Json<Value>, ApiError> {
    caller.require(Capability::ReadAudit)?;
    let since_ms = q.since.as_deref().map(governance::parse_since).transpose().map_err(bad_request)?;
    let filter = AuditFilter { profile: q.profile, actor: q.actor, since_ms, after_seq: q.after.unwrap_or(0) };
    let limit = q.limit.unwrap_or(100).clamp(1, MAX_AUDIT_PAGE);
    state.audit.flush().await;
    let rows = state.read(move |s| s.audit_lines(&filter, limit)).await?;
    let next_after = rows.last().map(|r| r.seq);
    let entries: Vec<Value> =
        rows.iter().map(|r| serde_json::from_str(&r.line).unwrap_or_else(|_| json!({ "seq": r.seq, "damaged": true }))).collect();
    caller.audit("audit.read", None, "GET /api/v1/audit", json!({ "entries": entries.len() })).await?;
    Ok(Json(json!({ "entries": entries, "next_after": next_after })))
}

/// Checks the audit log: every entry's text, the hash chain, and the anchor file.
#[utoipa::path(get, path = "/api/v1/audit/verify", security(("bearer" = [])),
    responses((status = 200, description = "`{ok: true, entries}`"), (status = 409, description = "`{ok: false, error}`: the log was changed")))]
pub async fn verify_audit(caller: Caller, State(state): State<Arc<AppState>>) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.require(Capability::ReadAudit)?;
    let dir = state.data_dir.clone();
    state.audit.flush().await;
    let result = state.read(move |s| Ok::<_, StoreError>(governance::verify_audit(s, &dir).map_err(|e| e.to_string()))).await?;
    Ok(match result {
        Ok(v) => (StatusCode::OK, Json(json!({ "ok": true, "entries": v.entries, "after_anchor": v.after_anchor }))),
        Err(error) => (StatusCode::CONFLICT, Json(json!({ "ok": false, "error": error }))),
    })
}

/// Every API token: name, role, creation time (never the secret).
#[utoipa::path(get, path = "/api/v1/tokens", security(("bearer" = [])), responses((status = 200, description = "`{tokens: [{name, role, created_at}]}`")))]
pub async fn list_tokens(caller: Caller, State(state): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    caller.require(Capability::ManageTokens)?;
    let tokens = state.read(|s| s.tokens()).await?;
    Ok(Json(json!({ "tokens": tokens })))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    name: String,
    role: String,
}

/// Create a token; the secret is in the response only.
#[utoipa::path(post, path = "/api/v1/tokens", request_body = NewToken, security(("bearer" = [])),
    responses((status = 200, description = "`{name, role, token}`"), (status = 400, description = "Bad name or unknown role"), (status = 409, description = "Name taken")))]
pub async fn create_token(caller: Caller, State(state): State<Arc<AppState>>, Json(new): Json<NewToken>) -> Result<Json<Value>, ApiError> {
    caller.require(Capability::ManageTokens)?;
    crate::auth::check_token_name(&new.name).map_err(bad_request)?;
    if state.roles.get(&new.role).is_none() {
        return Err(bad_request(format!(
            "unknown role {:?}; the roles are: {}",
            new.role,
            state.roles.names().collect::<Vec<_>>().join(", ")
        )));
    }
    let secret = crate::auth::new_secret("kt_");
    let (name, role, hash) = (new.name.clone(), new.role.clone(), crate::auth::hash_secret(&secret));
    let path = state.database.clone();
    let created = tokio::task::spawn_blocking(move || {
        let mut store = kinship_store::open(&path)?;
        if store.tokens()?.iter().any(|t| t.name == name) {
            return Ok(false);
        }
        store.add_token(&name, &role, &hash)?;
        Ok::<_, StoreError>(true)
    })
    .await
    .expect("does not panic")?;
    if !created {
        return Err(ApiError(StatusCode::CONFLICT, format!("a token named `{}` exists; revoke it first or pick another name", new.name)));
    }
    caller.audit("token.create", None, "POST /api/v1/tokens", json!({ "name": new.name, "role": new.role })).await?;
    Ok(Json(json!({ "name": new.name, "role": new.role, "token": secret })))
}

/// Revoke every token with this name; requests with it fail from now on.
#[utoipa::path(delete, path = "/api/v1/tokens/{name}", params(("name" = String, Path)), security(("bearer" = [])),
    responses((status = 200, description = "`{name, revoked}`"), (status = 404, description = "No such token")))]
pub async fn revoke_token(caller: Caller, State(state): State<Arc<AppState>>, Path(name): Path<String>) -> Result<Json<Value>, ApiError> {
    caller.require(Capability::ManageTokens)?;
    let path = state.database.clone();
    let target = name.clone();
    let revoked = tokio::task::spawn_blocking(move || kinship_store::open(&path)?.revoke_token(&target)).await.expect("does not panic")?;
    state.forget_credentials();
    if revoked == 0 {
        return Err(ApiError(StatusCode::NOT_FOUND, format!("no token named `{name}`; list them with GET /api/v1/tokens")));
    }
    caller.audit("token.revoke", None, "DELETE /api/v1/tokens/{name}", json!({ "name": name })).await?;
    Ok(Json(json!({ "name": name, "revoked": revoked })))
}

/// Whom a privacy request is about: exactly one of these.
#[derive(Deserialize, utoipa::ToSchema, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct SubjectQuery {
    profile: Option<String>,
    email: Option<String>,
    phone: Option<String>,
    /// Any identifier as `KIND:VALUE`.
    identifier: Option<String>,
}

impl SubjectQuery {
    fn subject(&self, state: &AppState) -> Result<Subject, ApiError> {
        Subject::parse(self.profile.as_deref(), self.email.as_deref(), self.phone.as_deref(), self.identifier.as_deref(), &state.config())
            .map_err(bad_request)
    }
}

/// Erase a person (GDPR art. 17): every record, identifier, profile and derived row, with
/// the database rewritten; the identifiers are kept only as keyed hashes, so later data
/// with them is dropped.
#[utoipa::path(post, path = "/api/v1/privacy/erasure", request_body = SubjectQuery, security(("bearer" = [])),
    responses((status = 200, description = "The erasure report"), (status = 404, description = "Nothing held"), (status = 409, description = "Several profiles hold the identifier")))]
pub async fn erase(caller: Caller, State(state): State<Arc<AppState>>, Json(q): Json<SubjectQuery>) -> Result<Json<Value>, ApiError> {
    caller.require(Capability::Erasure)?;
    let subject = q.subject(&state)?;
    let s = state.clone();
    let by = subject.kind().to_string();
    let report = tokio::task::spawn_blocking(move || {
        // Every writer waits while the person is deleted and the files rewritten.
        let turn = s.writer.turn();
        let _turn = turn.lock().expect("not poisoned");
        let mut store = kinship_store::open(&s.database)?;
        let report = governance::erase(&mut *store, &s.config(), &s.data_dir, &subject, &s.suppression)?;
        // The audience's in-memory copy of the person goes too (it is never written to disk).
        let mut audience = s.audience.write().expect("not poisoned");
        for profile in &report.profiles {
            audience.remove_profile(profile);
        }
        // Definitions that quoted the person now quote `<erased>`, in memory as on disk (an
        // unloaded audience reads them from disk when it loads).
        let held = !audience.is_unloaded();
        for definition in report.definitions_rewritten.iter().filter(|_| held) {
            let kind = if definition.kind == "segment" { kinship_segments::Kind::Segment } else { kinship_segments::Kind::Computed };
            // The person is gone already; a definition this node does not hold yet (defined
            // elsewhere a moment ago) arrives rewritten through the change feed.
            match audience.replace_expression(kind, &definition.name, definition.expression.clone(), kinship_pipeline::now_ms()) {
                Ok(transitions) => kinship_pipeline::audience::record(&mut *store, &audience, &transitions)?,
                Err(e) => tracing::warn!("erasure {}: {} {} not updated in memory: {e}", report.request, definition.kind, definition.name),
            }
        }
        Ok(report)
    })
    .await
    .expect("does not panic")
    .map_err(|e| match e {
        kinship_pipeline::PipelineError::Config(reason) if reason.starts_with("nothing is held") => ApiError(StatusCode::NOT_FOUND, reason),
        kinship_pipeline::PipelineError::Config(reason) => ApiError(StatusCode::CONFLICT, reason),
        other => other.into(),
    })?;
    // The entry names the request and what was deleted, not who: no identifier values.
    caller
        .audit(
            "erase",
            None,
            "POST /api/v1/privacy/erasure",
            json!({ "request": report.request, "by": by, "profiles": report.profiles, "deleted": report.deleted,
                    "suppressed_identifiers": report.suppressed_identifiers,
                    "definitions_rewritten": report.definitions_rewritten.iter().map(|d| format!("{}:{}", d.kind, d.name)).collect::<Vec<_>>() }),
        )
        .await?;
    Ok(Json(serde_json::to_value(&report).unwrap_or_default()))
}

/// Everything held about a person (GDPR art. 15, CCPA), as JSON, through the caller's role.
#[utoipa::path(get, path = "/api/v1/privacy/export", params(SubjectQuery), security(("bearer" = [])),
    responses((status = 200, description = "`{profiles: [...], unresolved_records: [...]}`"), (status = 404, description = "Nothing held")))]
pub async fn export(caller: Caller, State(state): State<Arc<AppState>>, Query(q): Query<SubjectQuery>) -> Result<Json<Value>, ApiError> {
    caller.require(Capability::PrivacyExport)?;
    let subject = q.subject(&state)?;
    let by = subject.kind().to_string();
    let config = state.config().clone();
    let found = state.read(move |s| governance::subject_export(s, &config, &subject)).await?;
    let Some(mut export) = found else { return Err(ApiError(StatusCode::NOT_FOUND, format!("nothing is held for this {by}"))) };
    let mut read = Vec::new();
    for doc in export["profiles"].as_array_mut().into_iter().flatten() {
        let explain = doc.get("explain").cloned();
        let projected = caller.project(doc);
        read.push(json!({ "profile": doc["id"], "fields": projected.fields }));
        *doc = projected.value;
        if let (Some(explain), true) = (explain, caller.policy().allows(Capability::ExplainProfiles)) {
            doc["explain"] = explain;
        }
    }
    caller.scrub(&mut export, &[]);
    for entry in read {
        let profile = entry["profile"].as_str().map(String::from);
        caller
            .audit("privacy.export", profile.as_deref(), "GET /api/v1/privacy/export", json!({ "by": by, "fields": entry["fields"] }))
            .await?;
    }
    Ok(Json(export))
}
