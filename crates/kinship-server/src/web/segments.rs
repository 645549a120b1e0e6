//! Segments: the list with sizes over time, the editor with a live preview, members and
//! their CSV export.

use super::session::SignedIn;
use super::{charts, check_csrf, layout, text, url_encode, PageError};
use crate::http::Caller;
use crate::segments_api::{self, Expression, MemberPage, NewDefinition};
use crate::state::AppState;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Form, Json};
use kinship_policy::Capability;
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

/// Members per page.
const PAGE: u64 = 50;
/// Members per request while exporting.
const EXPORT_CHUNK: u64 = 1000;

/// Sizes over time of a segment, for its sparkline.
/// A size as the API gave it: a number, or "fewer than 5" for a role that does not see
/// who people are.
fn size_label(size: &Value) -> String {
    size.as_u64().map_or_else(|| size.as_str().unwrap_or("?").to_string(), |n| n.to_string())
}

async fn sizes(caller: &Caller, state: &Arc<AppState>, name: &str) -> Result<(Value, Vec<u64>), PageError> {
    let Json(shown) = segments_api::show_segment(caller.clone(), State(state.clone()), Path(name.to_string())).await?;
    let sizes = shown["sizes"].as_array().into_iter().flatten().filter_map(|s| s["size"].as_u64()).collect();
    Ok((shown, sizes))
}

#[derive(Deserialize, Default)]
pub struct Draft {
    #[serde(default)]
    name: String,
    #[serde(default)]
    expression: String,
    #[serde(default)]
    csrf: String,
}

pub async fn list(State(state): State<Arc<AppState>>, user: SignedIn) -> Result<Markup, PageError> {
    page(&state, &user, Draft::default(), None).await
}

async fn page(state: &Arc<AppState>, user: &SignedIn, draft: Draft, error: Option<Value>) -> Result<Markup, PageError> {
    let caller = user.session.caller(state);
    let Json(listed) = segments_api::list_segments(caller.clone(), State(state.clone())).await?;
    let mut rows = Vec::new();
    for s in listed["segments"].as_array().into_iter().flatten() {
        let name = text(&s["name"]);
        let (_, history) = sizes(&caller, state, &name).await?;
        rows.push((name, text(&s["expression"]), size_label(&s["size"]), history));
    }
    let may_manage = caller.policy().allows(Capability::ManageSegments);
    let content = html! {
        div.scroll {
            table.segments {
                thead { tr { th scope="col" { "Segment" } th scope="col" .num { "Size" } th scope="col" { "Over time" } th scope="col" .expression { "Expression" } } }
                tbody {
                    @for (name, expression, size, history) in &rows {
                        tr {
                            td { a href=(format!("/segments/{}", url_encode(name))) { (name) } }
                            td.num { (size) }
                            td { (charts::sparkline(history, 120, 24, &format!("size of {name} over time, now {size}"))) }
                            td.expression { code { (expression) } }
                        }
                    }
                }
            }
        }
        @if rows.is_empty() { p.hint { "No segments yet." } }
        @if may_manage { (editor(&draft, error.as_ref(), &user.session.csrf)) }
    };
    Ok(layout(&caller, &user.session, "/segments", "Segments", content))
}

/// The editor: a name, the expression with its errors under the column, and a live count.
fn editor(draft: &Draft, error: Option<&Value>, csrf: &str) -> Markup {
    html! {
        section aria-labelledby="new-title" {
            h2 #new-title { "New segment" }
            form.editor method="post" action="/segments" {
                input type="hidden" name="csrf" value=(csrf);
                label for="seg-name" { "Name" }
                input #seg-name name="name" value=(draft.name) required pattern="[A-Za-z0-9_\\-]+" autocomplete="off";
                label for="expression" { "Expression" }
                textarea #expression name="expression" rows="4" spellcheck="false" data-preview="/segments/preview" aria-describedby="preview" required { (draft.expression) }
                output #preview for="expression" aria-live="polite" {
                    @if let Some(e) = error { (expression_error(e)) }
                }
                p.hint { "For example: " code { "traits.city == \"Sydney\" and count(\"Order Completed\") >= 2" } }
                button.primary type="submit" { "Save segment" }
            }
        }
    }
}

/// An expression error: the message (which says where), and the line with a caret under the column.
fn expression_error(e: &Value) -> Markup {
    html! {
        span.error role="alert" { (text(&e["error"])) }
        @if let Some(rendered) = e["rendered"].as_str() { pre.caret { (rendered) } }
    }
}

pub async fn create(State(state): State<Arc<AppState>>, user: SignedIn, Form(draft): Form<Draft>) -> Result<Response, PageError> {
    check_csrf(&user.session, &draft.csrf)?;
    let caller = user.session.caller(&state);
    let definition = NewDefinition { name: draft.name.clone(), expression: draft.expression.clone() };
    match segments_api::create_segment(caller, State(state.clone()), Json(definition)).await {
        Ok(_) => Ok(Redirect::to(&format!("/segments/{}", url_encode(&draft.name))).into_response()),
        Err(refused) => {
            let status = refused.status();
            let body = axum::body::to_bytes(refused.into_body(), 64 * 1024).await.unwrap_or_default();
            let error: Value = serde_json::from_slice(&body).unwrap_or_else(|_| json!({ "error": "the segment was not saved" }));
            Ok((status, page(&state, &user, draft, Some(error)).await?).into_response())
        }
    }
}

/// The live preview: the count, or the error, as an HTML fragment (the script sends the
/// session's CSRF token in a header).
pub async fn preview(
    State(state): State<Arc<AppState>>,
    user: SignedIn,
    headers: HeaderMap,
    Json(body): Json<Expression>,
) -> Result<Response, PageError> {
    let sent = headers.get("x-csrf-token").and_then(|v| v.to_str().ok()).unwrap_or_default();
    check_csrf(&user.session, sent)?;
    if body.expression.trim().is_empty() {
        return Ok(html! { span.hint { "Type an expression to see how many customers it selects." } }.into_response());
    }
    let caller = user.session.caller(&state);
    let fragment = match segments_api::preview_segment(caller, State(state), Json(body)).await {
        Ok(Json(p)) => html! { span.count { strong { (text(&p["count"])) } " customers match" } },
        Err(refused) => {
            if refused.status() != StatusCode::BAD_REQUEST {
                return Ok(refused);
            }
            let bytes = axum::body::to_bytes(refused.into_body(), 64 * 1024).await.unwrap_or_default();
            expression_error(&serde_json::from_slice(&bytes).unwrap_or_default())
        }
    };
    Ok(fragment.into_response())
}

#[derive(Deserialize)]
pub struct Offset {
    offset: Option<u64>,
}

pub async fn show(
    State(state): State<Arc<AppState>>,
    user: SignedIn,
    Path(name): Path<String>,
    Query(at): Query<Offset>,
) -> Result<Markup, PageError> {
    let caller = user.session.caller(&state);
    let (shown, history) = sizes(&caller, &state, &name).await?;
    let offset = at.offset.unwrap_or(0);
    let members = if caller.policy().allows(Capability::ExportSegments) {
        let page = MemberPage { offset: Some(offset), limit: Some(PAGE) };
        Some(segments_api::segment_members(caller.clone(), State(state.clone()), Path(name.clone()), Query(page)).await?.0)
    } else {
        None
    };
    let size = shown["size"].as_u64().unwrap_or(0);
    let size_shown = size_label(&shown["size"]);
    let base = format!("/segments/{}", url_encode(&name));
    let content = html! {
        p { code { (text(&shown["expression"])) } }
        p { strong { (size_shown) } " customers now. " }
        (charts::sparkline(&history, 320, 60, &format!("size of {name} over time, now {size_shown}")))
        @if let Some(m) = &members {
            section aria-labelledby="members-title" {
                h2 #members-title { "Members" }
                p.hint {
                    "Only customers with marketing consent are listed; "
                    (text(&m["withheld_no_marketing_consent"])) " on this page are withheld. "
                    a href=(format!("{base}/members.csv")) download { "Export CSV" }
                }
                ol.members start=(offset + 1) {
                    @for id in m["members"].as_array().into_iter().flatten() {
                        li { a href=(format!("/profiles/{}", url_encode(&text(id)))) { (text(id)) } }
                    }
                }
                nav.pager aria-label="Member pages" {
                    @if offset > 0 { a href=(format!("{base}?offset={}", offset.saturating_sub(PAGE))) { "Previous page" } }
                    @if offset + PAGE < size { a href=(format!("{base}?offset={}", offset + PAGE)) { "Next page" } }
                }
            }
        }
    };
    Ok(layout(&caller, &user.session, "/segments", &format!("Segment {name}"), content))
}

/// Every consented member's profile id, as CSV.
pub async fn export_csv(State(state): State<Arc<AppState>>, user: SignedIn, Path(name): Path<String>) -> Result<Response, PageError> {
    let caller = user.session.caller(&state);
    let mut csv = String::from("profile_id\n");
    let mut offset = 0;
    loop {
        let page = MemberPage { offset: Some(offset), limit: Some(EXPORT_CHUNK) };
        let Json(m) = segments_api::segment_members(caller.clone(), State(state.clone()), Path(name.clone()), Query(page)).await?;
        for id in m["members"].as_array().into_iter().flatten() {
            csv.push_str(&text(id));
            csv.push('\n');
        }
        offset += EXPORT_CHUNK;
        if offset >= m["size"].as_u64().unwrap_or(0) {
            break;
        }
    }
    let file = name.chars().filter(|c| c.is_ascii_alphanumeric() || "-_".contains(*c)).collect::<String>();
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{file}.csv\"")),
        ],
        csv,
    )
        .into_response())
}
