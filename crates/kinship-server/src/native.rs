//! Native cases and deals: what is opened, answered, updated or moved in Kinship is
//! written as a Segment track message to `[service] source`, under the profile's own
//! identifier, and read back like a connected system's records. Writes wait (up to three
//! seconds) for resolution, so the next read shows them.

use crate::http::{bad_request, ApiError};
use crate::state::AppState;
use axum::http::StatusCode;
use serde_json::{json, Value};
use std::sync::Arc;

pub(crate) fn native_source(state: &AppState) -> Result<String, ApiError> {
    state.config().service.source.clone().ok_or_else(|| {
        ApiError(
            StatusCode::CONFLICT,
            "native cases and deals are off: name a segment source for them as [service] source = \"cases\"".into(),
        )
    })
}

/// Writes one native message about `profile`'s case or deal; `true` once it is resolved (the next
/// read shows it), `false` when resolution took longer than three seconds (it shows soon).
pub(crate) async fn write_native(
    state: &Arc<AppState>,
    source: &str,
    profile: &str,
    number: &str,
    event: &str,
    properties: Value,
) -> Result<bool, ApiError> {
    let config = state.config().clone();
    let owner = profile.to_string();
    let anchor = state
        .read(move |s| kinship_pipeline::flows::own_identifier(s, &config, &owner))
        .await?
        .ok_or_else(|| ApiError(StatusCode::CONFLICT, format!("profile {profile} holds no identifier of its own to file this under")))?;
    let now = kinship_pipeline::now_ms();
    let key = format!("{number}#{now}{}", &crate::auth::new_secret("")[..6]);
    let payload = json!({
        "type": "track", "messageId": key, "timestamp": kinship_expr::format_timestamp(now), "event": event, "properties": properties,
    });
    let mut records = vec![kinship_core::NewRecord {
        key: key.clone(),
        payload: payload.to_string(),
        identifiers: kinship_core::encode_identifiers(std::slice::from_ref(&anchor)),
        timestamp: Some(now),
    }];
    let (_, generation) = crate::writer::drop_suppressed(&state.suppression, &mut records);
    if records.is_empty() {
        return Err(ApiError(StatusCode::CONFLICT, format!("profile {profile} is erased")));
    }
    state.writer.submit(source.to_string(), records, generation).await.map_err(|e| match e {
        crate::writer::SubmitError::Overloaded => {
            ApiError(StatusCode::SERVICE_UNAVAILABLE, "the writer is busy: try again in a moment".into())
        }
        crate::writer::SubmitError::Failed(reason) => ApiError(StatusCode::SERVICE_UNAVAILABLE, reason),
    })?;
    let (source, wait_key) = (source.to_string(), key);
    for _ in 0..150 {
        let (s, k) = (source.clone(), wait_key.clone());
        if state.read(move |store| store.record_profile(&s, &k)).await?.is_some() {
            forget_derived(state);
            return Ok(true);
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    forget_derived(state);
    Ok(false)
}

/// 201 when what was written shows at once, 202 when it is still being resolved.
pub(crate) fn written(resolved: bool) -> StatusCode {
    if resolved {
        StatusCode::CREATED
    } else {
        StatusCode::ACCEPTED
    }
}

/// Longest team, assignee or channel name accepted.
const MAX_NAME: usize = 100;

pub(crate) fn checked_name(what: &str, value: Option<&str>) -> Result<Option<String>, ApiError> {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        Some(v) if v.chars().count() > MAX_NAME => Err(bad_request(format!("the {what} needs at most {MAX_NAME} characters"))),
        other => Ok(other.map(String::from)),
    }
}

/// What is derived from the native source is read again at the next request.
fn forget_derived(state: &AppState) {
    state.case_queue.forget();
    state.deal_book.forget();
}
