//! Tasks: a queue per team and "mine", a task with its gathered context (each fact linked to
//! the customer and the record it came from), claim and done; and flows: the list, and the
//! editor whose dry run shows what a flow would have done before it is saved.

use super::session::SignedIn;
use super::{check_csrf, layout, text, url_encode, PageError};
use crate::flows_api::{self, DryRunQuery, TaskQuery};
use crate::state::AppState;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Form, Json};
use kinship_policy::Capability;
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::Value;
use std::sync::Arc;

#[derive(Deserialize, Default)]
pub struct Queue {
    team: Option<String>,
    mine: Option<bool>,
}

pub async fn list(State(state): State<Arc<AppState>>, user: SignedIn, Query(queue): Query<Queue>) -> Result<Markup, PageError> {
    let caller = user.session.caller(&state);
    let mine = queue.mine == Some(true);
    let query = TaskQuery {
        status: Some("active".into()),
        team: queue.team.clone().filter(|t| !t.is_empty()),
        assignee: None,
        mine: Some(mine),
        profile: None,
        limit: Some(200),
    };
    let Json(listed) = flows_api::list_tasks(caller.clone(), State(state.clone()), Query(query)).await?;
    let teams: Vec<String> = state.config().teams.keys().cloned().collect();
    let current = |team: Option<&str>, is_mine: bool| (queue.team.as_deref() == team && mine == is_mine).then_some("page");
    let tasks = listed["tasks"].as_array().cloned().unwrap_or_default();
    let content = html! {
        nav.tabs aria-label="Queues" {
            a href="/tasks" aria-current=[current(None, false)] { "All teams" }
            @for team in &teams {
                a href=(format!("/tasks?team={}", url_encode(team))) aria-current=[current(Some(team), false)] { "Team " (team) }
            }
            a href="/tasks?mine=true" aria-current=[current(None, true)] { "Mine" }
        }
        div.scroll {
            table.tasks {
                thead { tr { th scope="col" { "Task" } th scope="col" { "Priority" } th scope="col" { "Status" } th scope="col" { "Assignee" } th scope="col" { "Due" } th scope="col" { "Customer" } } }
                tbody {
                    @for t in &tasks {
                        tr {
                            td { a href=(format!("/tasks/{}", text(&t["id"]))) { (text(&t["title"])) } }
                            td { span class=(format!("priority {}", text(&t["priority"]))) { (text(&t["priority"])) } }
                            td { (text(&t["status"]).replace('_', " ")) }
                            td { (text(&t["assignee"])) }
                            td { (text(&t["due_at"])) }
                            td { a href=(format!("/profiles/{}", url_encode(&text(&t["profile_id"])))) { (text(&t["profile_id"])) } }
                        }
                    }
                }
            }
        }
        @if tasks.is_empty() { p.hint { "No open tasks here." } }
    };
    Ok(layout(&caller, &user.session, "/tasks", "Tasks", content))
}

pub async fn show(State(state): State<Arc<AppState>>, user: SignedIn, Path(id): Path<i64>) -> Result<Markup, PageError> {
    let caller = user.session.caller(&state);
    let Json(task) = flows_api::get_task(caller.clone(), State(state.clone()), Path(id)).await?;
    let profile = text(&task["profile_id"]);
    let may_work = caller.policy().allows(Capability::WorkTasks);
    let active = matches!(task["status"].as_str(), Some("open" | "in_progress" | "waiting"));
    let content = html! {
        p {
            span class=(format!("priority {}", text(&task["priority"]))) { (text(&task["priority"])) } " · "
            (text(&task["status"]).replace('_', " ")) " · team " (text(&task["team"])) " · "
            @if task["assignee"].is_string() { "assigned to " strong { (text(&task["assignee"])) } } @else { "unassigned" }
            @if task["due_at"].is_string() { " · due " (text(&task["due_at"])) }
        }
        @if !text(&task["body"]).is_empty() { p { (text(&task["body"])) } }
        p {
            "Customer " a href=(format!("/profiles/{}", url_encode(&profile))) { (profile) }
            ", from " code { (text(&task["trigger"]["source"])) " " (text(&task["trigger"]["record_key"])) }
            " (flow " (text(&task["flow"])) " v" (text(&task["version"])) ")"
        }
        @if may_work && active {
            div.actions {
                form method="post" action=(format!("/tasks/{id}/claim")) {
                    input type="hidden" name="csrf" value=(user.session.csrf);
                    button.primary type="submit" { "Claim" }
                }
                form method="post" action=(format!("/tasks/{id}/done")) {
                    input type="hidden" name="csrf" value=(user.session.csrf);
                    button type="submit" { "Mark done" }
                }
            }
        }
        section aria-labelledby="context-title" {
            h2 #context-title { "Context" }
            (context_table(&task["context"], &profile))
        }
    };
    Ok(layout(&caller, &user.session, "/tasks", &format!("Task {id}: {}", text(&task["title"])), content))
}

/// The gathered facts: each value's fields, and where it came from (a record of the customer,
/// linked to their profile, or a reference file).
fn context_table(context: &Value, profile: &str) -> Markup {
    html! {
        div.scroll {
            table.context {
                thead { tr { th scope="col" { "Fact" } th scope="col" { "Value" } th scope="col" { "From" } } }
                tbody {
                    @for fact in context.as_array().into_iter().flatten() {
                        @let source = text(&fact["source"]);
                        tr {
                            th scope="row" { (text(&fact["name"])) }
                            td { (fact_value(&fact["value"])) }
                            td {
                                @if source.ends_with(".csv") || source.ends_with(".jsonl") {
                                    (source) " " code { (text(&fact["record"])) }
                                } @else {
                                    a href=(format!("/profiles/{}#record-{}-{}", url_encode(profile), url_encode(&source), url_encode(&text(&fact["record"])))) {
                                        (source) " " (text(&fact["record"]))
                                    }
                                }
                                @if fact["at"].is_string() { br; span.hint { (text(&fact["at"])) } }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn fact_value(value: &Value) -> Markup {
    html! {
        dl.fact {
            @for (name, v) in value.as_object().into_iter().flatten() {
                @if name != "key" {
                    dt { (name) }
                    dd { @if v.is_array() || v.is_object() { code { (v.to_string()) } } @else { (text(v)) } }
                }
            }
        }
    }
}

#[derive(Deserialize)]
pub struct CsrfOnly {
    csrf: String,
}

pub async fn claim(
    State(state): State<Arc<AppState>>,
    user: SignedIn,
    Path(id): Path<i64>,
    Form(form): Form<CsrfOnly>,
) -> Result<Response, PageError> {
    check_csrf(&user.session, &form.csrf)?;
    let _claimed = flows_api::claim_task(user.session.caller(&state), State(state.clone()), Path(id)).await?;
    Ok(Redirect::to(&format!("/tasks/{id}")).into_response())
}

pub async fn done(
    State(state): State<Arc<AppState>>,
    user: SignedIn,
    Path(id): Path<i64>,
    Form(form): Form<CsrfOnly>,
) -> Result<Response, PageError> {
    check_csrf(&user.session, &form.csrf)?;
    let change = flows_api::StatusChange { status: "done".into() };
    let _done = flows_api::set_task_status(user.session.caller(&state), State(state.clone()), Path(id), Json(change)).await?;
    Ok(Redirect::to(&format!("/tasks/{id}")).into_response())
}

/// A profile's open tasks, for its 360 page; `None` for roles that may not read tasks.
pub async fn open_for_profile(state: &Arc<AppState>, caller: &crate::http::Caller, profile: &str) -> Result<Option<Markup>, PageError> {
    if !caller.policy().allows(Capability::ReadTasks) {
        return Ok(None);
    }
    let query =
        TaskQuery { status: Some("active".into()), team: None, assignee: None, mine: None, profile: Some(profile.into()), limit: Some(50) };
    let Json(listed) = flows_api::list_tasks(caller.clone(), State(state.clone()), Query(query)).await?;
    let tasks = listed["tasks"].as_array().cloned().unwrap_or_default();
    Ok(Some(html! {
        section aria-labelledby="tasks-title" {
            h2 #tasks-title { "Open tasks" }
            @if tasks.is_empty() { p.hint { "None." } }
            ul {
                @for t in &tasks {
                    li { a href=(format!("/tasks/{}", text(&t["id"]))) { (text(&t["title"])) } " · " (text(&t["priority"])) " · " (text(&t["assignee"])) }
                }
            }
        }
    }))
}

#[derive(Deserialize, Default)]
pub struct FlowDraft {
    #[serde(default)]
    definition: String,
    #[serde(default)]
    days: Option<u32>,
    #[serde(default)]
    csrf: String,
    /// `dry_run` or `save`.
    #[serde(default)]
    action: String,
}

pub async fn flows(State(state): State<Arc<AppState>>, user: SignedIn) -> Result<Markup, PageError> {
    flows_page(&state, &user, FlowDraft::default(), None).await
}

async fn flows_page(state: &Arc<AppState>, user: &SignedIn, draft: FlowDraft, outcome: Option<Markup>) -> Result<Markup, PageError> {
    let caller = user.session.caller(state);
    let Json(listed) = flows_api::list_flows(caller.clone(), State(state.clone())).await?;
    let flows = listed["flows"].as_array().cloned().unwrap_or_default();
    let may_manage = caller.policy().allows(Capability::ManageFlows);
    let content = html! {
        div.scroll {
            table {
                thead { tr { th scope="col" { "Flow" } th scope="col" .num { "Version" } th scope="col" { "Saved by" } } }
                tbody {
                    @for f in &flows {
                        tr { td { (text(&f["name"])) } td.num { (text(&f["version"])) } td { (text(&f["created_by"])) } }
                    }
                }
            }
        }
        @if flows.is_empty() { p.hint { "No flows yet." } }
        @if may_manage {
            section aria-labelledby="editor-title" {
                h2 #editor-title { "Flow editor" }
                form.editor method="post" action="/flows" {
                    input type="hidden" name="csrf" value=(user.session.csrf);
                    label for="definition" { "Definition (TOML or JSON)" }
                    textarea #definition name="definition" rows="18" spellcheck="false" required { (draft.definition) }
                    label for="days" { "Dry run over the last days" }
                    input #days name="days" type="number" min="1" max="3650" value=(draft.days.unwrap_or(30));
                    div.actions {
                        button type="submit" name="action" value="dry_run" { "Dry run" }
                        button.primary type="submit" name="action" value="save" { "Save flow" }
                    }
                }
                @if let Some(outcome) = outcome { output #outcome aria-live="polite" { (outcome) } }
            }
        }
    };
    Ok(layout(&caller, &user.session, "/flows", "Flows", content))
}

pub async fn submit_flow(State(state): State<Arc<AppState>>, user: SignedIn, Form(draft): Form<FlowDraft>) -> Result<Response, PageError> {
    check_csrf(&user.session, &draft.csrf)?;
    let caller = user.session.caller(&state);
    let outcome = if draft.action == "save" {
        match flows_api::save_flow(caller, State(state.clone()), draft.definition.clone()).await {
            Ok((_, Json(saved))) => {
                html! { p.notice role="status" { "Saved " (text(&saved["name"])) " version " (text(&saved["version"])) "." } }
            }
            Err(e) => refused(e),
        }
    } else {
        let query = DryRunQuery { days: draft.days, samples: Some(5) };
        match flows_api::dry_run(caller, State(state.clone()), Query(query), draft.definition.clone()).await {
            Ok(Json(result)) => dry_run_result(&result),
            Err(e) => refused(e),
        }
    };
    Ok((StatusCode::OK, flows_page(&state, &user, draft, Some(outcome)).await?).into_response())
}

fn refused(e: crate::http::ApiError) -> Markup {
    html! { p.error role="alert" { (e.1) } }
}

fn dry_run_result(r: &Value) -> Markup {
    html! {
        p.notice role="status" {
            "Over the last " (text(&r["days"])) " days: " strong { (text(&r["runs"])) " runs" } " for " (text(&r["profiles"])) " customers, "
            (text(&r["tasks"])) " tasks, " (text(&r["deliveries"])) " deliveries (" (text(&r["triggers"])) " trigger events)."
        }
        @for sample in r["samples"].as_array().into_iter().flatten() {
            details {
                summary { a href=(format!("/profiles/{}", url_encode(&text(&sample["profile_id"])))) { (text(&sample["profile_id"])) } " · " (text(&sample["trigger"]["record_key"])) " · " (text(&sample["trigger"]["at"])) }
                ol.trace {
                    @for step in sample["trace"].as_array().into_iter().flatten() {
                        li { (text(&step["step"])) " → " strong { (text(&step["outcome"])) }
                            @if step["values"].as_object().is_some_and(|v| !v.is_empty()) { " " code { (step["values"].to_string()) } } }
                    }
                }
            }
        }
    }
}
