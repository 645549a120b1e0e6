//! Who is calling: the bearer token checked against the store, its role's policy, and the
//! audit entries written in the caller's name.

use super::ApiError;
use crate::state::AppState;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use kinship_pipeline::governance::audit_event;
use kinship_policy::{Capability, Policy};
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::Arc;

#[derive(Clone)]
/// The authenticated caller of an API route or web page, with the policy of its role.
pub struct Caller {
    /// Who the audit log names: `token:NAME` or, signed in to the web UI, `user:NAME`.
    actor: String,
    pub role: String,
    state: Arc<AppState>,
}

impl Caller {
    /// A caller whose role was checked to exist in `state.roles`.
    pub(crate) fn new(actor: String, role: String, state: Arc<AppState>) -> Caller {
        debug_assert!(state.roles.get(&role).is_some());
        Caller { actor, role, state }
    }

    /// `token:NAME` or `user:NAME`, as the audit log names the caller.
    pub fn actor(&self) -> &str {
        &self.actor
    }

    /// The caller's name without its kind: who a task is assigned to.
    pub fn name(&self) -> &str {
        self.actor.split_once(':').map_or(&self.actor, |(_, name)| name)
    }

    pub fn policy(&self) -> &Policy {
        self.state.roles.get(&self.role).expect("checked when the caller was authenticated")
    }

    /// Refuses the request unless the caller's role has `capability`.
    pub fn require(&self, capability: Capability) -> Result<(), ApiError> {
        if self.policy().allows(capability) {
            Ok(())
        } else {
            let name = serde_json::to_value(capability).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default();
            Err(ApiError(
                StatusCode::FORBIDDEN,
                format!("role `{}` may not do this: it needs the `{name}` capability (see `[roles]` in kinship.toml)", self.role),
            ))
        }
    }

    /// Below which counts are shown as "fewer than N" to roles that do not see identities.
    pub fn min_count(&self) -> usize {
        self.state.config().server.min_count
    }

    /// Writes an audit entry for this caller and waits until it is durable: call it before
    /// answering, and answer 503 (the error) when the log could not be written.
    pub async fn audit(&self, action: &str, profile: Option<&str>, route: &str, detail: Value) -> Result<(), ApiError> {
        if self.state.audit.record(audit_event(&self.actor, action, profile, Some(route), detail)).await {
            Ok(())
        } else {
            Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "the audit log cannot be written; nothing is answered until it can"))
        }
    }

    /// `doc` (a profile document) as this caller may see it, and what of it they saw.
    pub fn project(&self, doc: &Value) -> kinship_policy::Projected {
        kinship_policy::project(doc, self.policy(), &self.state.keys.pseudonym)
    }

    /// Fields that are not a profile document (a task's facts) as this caller may see them.
    pub fn project_fields(&self, fields: &serde_json::Map<String, Value>) -> serde_json::Map<String, Value> {
        kinship_policy::project_fields(fields, &[], self.policy(), &self.state.keys.pseudonym)
    }

    /// Masks, in any other response, emails and the given identifier values the role may not read.
    pub fn scrub(&self, value: &mut Value, identifiers: &[Value]) {
        kinship_policy::scrub(value, identifiers, self.policy(), &self.state.keys.pseudonym);
    }
}

impl FromRequestParts<Arc<AppState>> for Caller {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, Response> {
        let ip = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
        // Only failures are limited: a valid token is never refused for another client's mistakes.
        let fail = |reason: &str| match ip.and_then(|ip| state.auth_failures.failure(ip)) {
            Some(retry_after) => crate::limits::too_many_failures(retry_after),
            None => ApiError(StatusCode::UNAUTHORIZED, reason.to_string()).into_response(),
        };
        let Some(token) = crate::auth::bearer(&parts.headers) else {
            return Err(fail("missing bearer token; create one with `kinship token create --name NAME --role ROLE`"));
        };
        let Some(row) = state.token(token).await.map_err(|e| ApiError::from(e).into_response())? else {
            return Err(fail("unknown or revoked token"));
        };
        if state.roles.get(&row.role).is_none() {
            return Err(ApiError(
                StatusCode::FORBIDDEN,
                format!(
                    "token `{}` has role `{}`, which kinship.toml does not define; add `[roles.{}]` or create a new token",
                    row.name, row.role, row.role
                ),
            )
            .into_response());
        }
        Ok(Caller::new(format!("token:{}", row.name), row.role, state.clone()))
    }
}
