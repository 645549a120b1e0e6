//! Cases: the queue of open cases across connected help desks and native ones, sorted by the
//! next SLA clock due, filtered by state and team; SLA attainment per team over the last 30
//! days; one case with its clocks and conversation, answered and updated here when native.
//! All are the API's answers (`cases_api`), so the pages read what the role may read.

use super::session::SignedIn;
use super::{check_csrf, layout, text, url_encode, PageError};
use crate::cases_api::{self, AttainmentQuery, QueueQuery};
use crate::state::AppState;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Form, Json};
use kinship_policy::Capability;
use maud::{html, Markup};
use serde::Deserialize;
use std::sync::Arc;

#[derive(Deserialize, Default)]
pub struct Filters {
    state: Option<String>,
    team: Option<String>,
}

const STATES: [&str; 4] = ["breached", "warning", "active", "paused"];

pub async fn queue(State(state): State<Arc<AppState>>, user: SignedIn, Query(filters): Query<Filters>) -> Result<Markup, PageError> {
    let caller = user.session.caller(&state);
    let chosen_state = filters.state.clone().filter(|s| STATES.contains(&s.as_str()));
    let team = filters.team.clone().filter(|t| !t.is_empty());
    let query = QueueQuery { state: chosen_state.clone(), team: team.clone(), limit: Some(100), ..QueueQuery::default() };
    let Json(listed) = cases_api::case_queue(caller.clone(), State(state.clone()), Query(query)).await?;
    let Json(attainment) =
        cases_api::case_attainment(caller.clone(), State(state.clone()), Query(AttainmentQuery { days: Some(30) })).await?;
    let cases = listed["cases"].as_array().cloned().unwrap_or_default();
    let link = |s: Option<&str>| match (s, &team) {
        (Some(s), Some(t)) => format!("/cases?state={s}&team={}", url_encode(t)),
        (Some(s), None) => format!("/cases?state={s}"),
        (None, Some(t)) => format!("/cases?team={}", url_encode(t)),
        (None, None) => "/cases".to_string(),
    };
    let content = html! {
        p.hint { "Open cases from every connected help desk, the next SLA clock due first, as of " (text(&listed["as_of"]).get(..16).unwrap_or_default().replace('T', " ")) " UTC." }
        nav.tabs aria-label="SLA state" {
            a href=(link(None)) aria-current=[chosen_state.is_none().then_some("page")] { "All open (" (text(&listed["total"])) ")" }
            @for s in STATES {
                a href=(link(Some(s))) aria-current=[(chosen_state.as_deref() == Some(s)).then_some("page")] {
                    (s) @if chosen_state.is_none() { " (" (listed["counts"][s].as_u64().unwrap_or(0)) ")" }
                }
            }
        }
        div.scroll {
            table.wide.queue {
                caption { "Case queue by SLA due time" }
                thead { tr { th scope="col" { "Case" } th scope="col" { "Due" } th scope="col" { "SLA" } th scope="col" { "Subject" } th scope="col" { "Status" } th scope="col" { "Priority" } th scope="col" { "Team" } th scope="col" { "Customer" } } }
                tbody {
                    @for c in &cases {
                        tr {
                            td { a href=(format!("/cases/{}/{}", url_encode(&text(&c["source"])), url_encode(&text(&c["number"])))) { (text(&c["number"])) } }
                            td { time datetime=(text(&c["next_due"])) { (text(&c["next_due"]).get(..16).unwrap_or("–").replace('T', " ")) } }
                            td { @for k in c["sla"].as_array().into_iter().flatten().filter(|k| k["ended"].is_null()) {
                                span class=(format!("sla sla-{}", text(&k["state"]))) { (text(&k["metric"]).replace('_', " ")) ": " (text(&k["state"])) } " "
                            } }
                            td { (text(&c["subject"])) }
                            td { (text(&c["status"]).replace('_', " ")) }
                            td { (text(&c["priority"])) }
                            td { (text(&c["team"])) }
                            td { a href=(format!("/profiles/{}", url_encode(&text(&c["requester"])))) { (text(&c["requester"])) } }
                        }
                    }
                }
            }
        }
        @if cases.is_empty() { p.hint { "No open cases here." } }
        section aria-labelledby="attainment-title" {
            h2 #attainment-title { "SLA attainment, last 30 days" }
            @let rows = attainment["teams"].as_array().cloned().unwrap_or_default();
            @if rows.is_empty() { p.hint { "No SLA clock ended in the last 30 days." } }
            @else {
                div.scroll { table {
                    thead { tr { th scope="col" { "Team" } th scope="col" { "Metric" } th scope="col" .num { "Met" } th scope="col" .num { "Ended" } th scope="col" .num { "Attainment" } } }
                    tbody { @for r in &rows {
                        tr {
                            td { (text(&r["team"])) }
                            td { (text(&r["metric"]).replace('_', " ")) }
                            td.num { (text(&r["achieved"])) }
                            td.num { (text(&r["ended"])) }
                            td.num { (format!("{:.0}%", r["rate"].as_f64().unwrap_or(0.0) * 100.0)) }
                        }
                    } }
                } }
            }
        }
    };
    Ok(layout(&caller, &user.session, "/cases", "Cases", content))
}

/// One case: its fields, SLA clocks and conversation; for a native case and a role that
/// works cases, a reply form (public or internal) and a status and priority form.
pub async fn show(
    State(state): State<Arc<AppState>>,
    user: SignedIn,
    Path((source, number)): Path<(String, String)>,
) -> Result<Markup, PageError> {
    let caller = user.session.caller(&state);
    let Json(case) = cases_api::get_case(caller.clone(), State(state.clone()), Path((source.clone(), number.clone()))).await?;
    let may_work = caller.policy().allows(Capability::WorkTasks) && case["native"] == true;
    let action = |what: &str| format!("/cases/{}/{}/{what}", url_encode(&source), url_encode(&number));
    let title = format!("Case {number}: {}", text(&case["subject"]));
    let content = html! {
        p {
            (text(&case["status"]).replace('_', " ")) " · " (text(&case["priority"])) " priority"
            @if case["team"].is_string() { " · team " (text(&case["team"])) }
            @if case["assignee"].is_string() { " · assigned to " (text(&case["assignee"])) }
            " · from " (source) " · customer "
            a href=(format!("/profiles/{}", url_encode(&text(&case["requester"])))) { (text(&case["requester"])) }
            @if let Some(link) = case["link"].as_str() { " · " a href=(link) rel="noreferrer" { "open in its help desk" } }
        }
        section aria-labelledby="clocks-title" {
            h2 #clocks-title { "SLA clocks" }
            div.scroll { table.clocks {
                thead { tr { th scope="col" { "Metric" } th scope="col" { "State" } th scope="col" .num { "Target (min)" } th scope="col" .num { "Counted (min)" } th scope="col" { "Due" } th scope="col" { "Policy" } } }
                tbody { @for k in case["sla"].as_array().into_iter().flatten() {
                    tr {
                        td { (text(&k["metric"]).replace('_', " ")) }
                        td { span class=(format!("sla sla-{}", text(&k["state"]))) { (text(&k["state"])) } }
                        td.num { (text(&k["target_minutes"])) }
                        td.num { (text(&k["counted_minutes"])) }
                        td { (text(&k["due"]).get(..16).unwrap_or("–").replace('T', " ")) }
                        td { (text(&k["policy"])) }
                    }
                } }
            } }
        }
        section aria-labelledby="conversation-title" {
            h2 #conversation-title { "Conversation" }
            @let replies = case["conversation"].as_array().cloned().unwrap_or_default();
            @if replies.is_empty() { p.hint { "No replies yet." } }
            ol.conversation { @for r in &replies {
                li class=(if r["public"] == true { "reply" } else { "reply note" }) {
                    strong { @if r["by"] == "agent" { "Agent" } @else { "Customer" } }
                    " " span.hint { @if r["public"] == true { "public" } @else { "internal note" } " · " (text(&r["at"]).replace('T', " ").get(..16).unwrap_or_default()) }
                    p { (text(&r["body"])) }
                }
            } }
            @if may_work {
                form.stack method="post" action=(action("reply")) {
                    input type="hidden" name="csrf" value=(user.session.csrf);
                    label { "Reply" textarea name="body" rows="4" required maxlength="20000" {} }
                    label { input type="checkbox" name="internal" value="yes"; " Internal note (the customer does not see it)" }
                    div.actions { button type="submit" { "Send" } }
                }
                form.stack method="post" action=(action("update")) {
                    input type="hidden" name="csrf" value=(user.session.csrf);
                    input type="hidden" name="was_status" value=(text(&case["status"]));
                    input type="hidden" name="was_priority" value=(text(&case["priority"]));
                    label { "Status" select name="status" {
                        @for s in ["new", "open", "pending", "on_hold", "solved", "closed"] { option value=(s) selected[case["status"] == s] { (s.replace('_', " ")) } }
                    } }
                    label { "Priority" select name="priority" {
                        @for p in ["low", "normal", "high", "urgent"] { option value=(p) selected[case["priority"] == p] { (p) } }
                    } }
                    div.actions { button type="submit" { "Update" } }
                }
            } @else if case["native"] != true {
                p.hint { "This case belongs to a connected help desk: answer and update it there; its clocks follow from what it sends." }
            }
        }
    };
    Ok(layout(&caller, &user.session, "/cases", &title, content))
}

#[derive(Deserialize)]
pub struct ReplyForm {
    csrf: String,
    body: String,
    internal: Option<String>,
}

pub async fn reply(
    State(state): State<Arc<AppState>>,
    user: SignedIn,
    Path((source, number)): Path<(String, String)>,
    Form(form): Form<ReplyForm>,
) -> Result<Response, PageError> {
    check_csrf(&user.session, &form.csrf)?;
    let body = cases_api::NewReply { body: form.body, public: form.internal.is_none() };
    cases_api::reply_to_case(user.session.caller(&state), State(state.clone()), Path((source.clone(), number.clone())), Json(body)).await?;
    Ok(Redirect::to(&format!("/cases/{}/{}", url_encode(&source), url_encode(&number))).into_response())
}

#[derive(Deserialize)]
pub struct UpdateForm {
    csrf: String,
    status: String,
    priority: String,
    /// What the page showed: only what the user changed is written, so a form left open
    /// does not undo another agent's update.
    was_status: String,
    was_priority: String,
}

pub async fn update(
    State(state): State<Arc<AppState>>,
    user: SignedIn,
    Path((source, number)): Path<(String, String)>,
    Form(form): Form<UpdateForm>,
) -> Result<Response, PageError> {
    check_csrf(&user.session, &form.csrf)?;
    let change = cases_api::CaseUpdate {
        status: (form.status != form.was_status).then_some(form.status),
        priority: (form.priority != form.was_priority).then_some(form.priority),
        ..Default::default()
    };
    cases_api::update_case(user.session.caller(&state), State(state.clone()), Path((source.clone(), number.clone())), Json(change)).await?;
    Ok(Redirect::to(&format!("/cases/{}/{}", url_encode(&source), url_encode(&number))).into_response())
}

#[derive(Deserialize)]
pub struct OpenForm {
    csrf: String,
    subject: String,
    priority: String,
}

/// Opens a native case for the profile and shows it.
pub async fn open(
    State(state): State<Arc<AppState>>,
    user: SignedIn,
    Path(profile): Path<String>,
    Form(form): Form<OpenForm>,
) -> Result<Response, PageError> {
    check_csrf(&user.session, &form.csrf)?;
    let new = cases_api::NewCase { profile, subject: form.subject, priority: Some(form.priority), team: None, channel: None };
    let (_, Json(opened)) = cases_api::open_case(user.session.caller(&state), State(state.clone()), Json(new)).await?;
    Ok(Redirect::to(&format!("/cases/{}/{}", url_encode(&text(&opened["source"])), url_encode(&text(&opened["number"])))).into_response())
}
