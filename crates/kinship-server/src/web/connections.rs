//! Connections: every source with its state and last run; switches, "run now" for the
//! sources Kinship reads (files, databases), and a new write key for Segment sources (shown once).

use super::session::SignedIn;
use super::{check_csrf, layout, text, time, url_encode, PageError};
use crate::api;
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Form, Json};
use kinship_policy::Capability;
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;

pub async fn list(State(state): State<Arc<AppState>>, user: SignedIn) -> Result<Markup, PageError> {
    render(&state, &user, None).await
}

/// The page, with a message after an action (a run's report, a new write key).
pub(super) async fn render(state: &Arc<AppState>, user: &SignedIn, message: Option<Markup>) -> Result<Markup, PageError> {
    let caller = user.session.caller(state);
    let Json(listed) = api::list_sources(caller.clone(), State(state.clone())).await?;
    let may_manage = caller.policy().allows(Capability::ManageSources);
    let csrf = &user.session.csrf;
    let content = html! {
        @if let Some(message) = message { div.notice role="status" { (message) } }
        @if may_manage { p { a.button href="/connections/new" { "Add a connection" } } }
        div.scroll {
            table.connections {
                thead {
                    tr {
                        th scope="col" { "Source" } th scope="col" { "Type" } th scope="col" { "On" }
                        th scope="col" .num { "Records" } th scope="col" .num { "Rejects" } th scope="col" { "Last run (UTC)" } th scope="col" { "Last error" }
                        @if may_manage { th scope="col" { "Actions" } }
                    }
                }
                tbody {
                    @for s in listed["sources"].as_array().into_iter().flatten() {
                        @let name = text(&s["name"]);
                        @let on = s["enabled"] == true;
                        @let action = |what: &str| format!("/connections/{}/{what}", url_encode(&name));
                        tr {
                            th scope="row" { (name) }
                            td { (text(&s["type"])) }
                            td {
                                @if may_manage {
                                    form method="post" action=(action("switch")) {
                                        input type="hidden" name="csrf" value=(csrf);
                                        input type="hidden" name="on" value=(if on { "false" } else { "true" });
                                        button.switch type="submit" role="switch" aria-checked=(on) aria-label=(format!("{name} on")) { span { (if on { "On" } else { "Off" }) } }
                                    }
                                } @else {
                                    (if on { "On" } else { "Off" })
                                }
                            }
                            td.num { (text(&s["records"])) }
                            td.num { (s["last_run"]["rejected"].as_u64().unwrap_or(0)) }
                            td { (s["last_run"]["finished_at"].as_i64().map(time).unwrap_or_else(|| "never".into())) }
                            td.error { (text(&s["last_error"])) }
                            @if may_manage {
                                td {
                                    div.actions {
                                        @if s["type"] == "segment" {
                                            form method="post" action=(action("write-key")) {
                                                input type="hidden" name="csrf" value=(csrf);
                                                button type="submit" { "New write key" }
                                            }
                                        } @else {
                                            form method="post" action=(action("run")) {
                                                input type="hidden" name="csrf" value=(csrf);
                                                button type="submit" disabled[!on] aria-label=(format!("Run {name} now")) { "Run now" }
                                            }
                                            a href=(action("edit")) aria-label=(format!("Edit {name}")) { "Edit" }
                                        }
                                        form method="post" action=(action("delete")) data-confirm=(format!("Remove {name} from kinship.toml? Its records stay.")) {
                                            input type="hidden" name="csrf" value=(csrf);
                                            button type="submit" aria-label=(format!("Delete {name}")) { "Delete" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(layout(&caller, &user.session, "/connections", "Connections", content))
}

#[derive(Deserialize)]
pub struct Switch {
    csrf: String,
    on: bool,
}

pub async fn switch(
    State(state): State<Arc<AppState>>,
    user: SignedIn,
    Path(name): Path<String>,
    Form(form): Form<Switch>,
) -> Result<Response, PageError> {
    check_csrf(&user.session, &form.csrf)?;
    let caller = user.session.caller(&state);
    // The API's answer only repeats the new state, which the page shows after the redirect.
    let _switched = if form.on {
        api::enable_source(caller, State(state), Path(name)).await?
    } else {
        api::disable_source(caller, State(state), Path(name)).await?
    };
    Ok(Redirect::to("/connections").into_response())
}

/// A form whose only field is its CSRF token.
#[derive(Deserialize)]
pub struct Action {
    pub(super) csrf: String,
}

pub async fn run(
    State(state): State<Arc<AppState>>,
    user: SignedIn,
    Path(name): Path<String>,
    Form(form): Form<Action>,
) -> Result<Markup, PageError> {
    check_csrf(&user.session, &form.csrf)?;
    let caller = user.session.caller(&state);
    let Json(report) = api::run_source(caller, State(state.clone()), Path(name.clone())).await?;
    let message = html! { "Ran " strong { (name) } ": " (run_counts(&report)) };
    render(&state, &user, Some(message)).await
}

/// A run's report as a sentence: read, new, already held, rejected.
pub(super) fn run_counts(report: &serde_json::Value) -> String {
    let field = |f: &str| report[f].as_u64().unwrap_or(0);
    format!("{} read, {} new, {} already held, {} rejected.", field("read"), field("inserted"), field("duplicates"), field("rejected"))
}

/// Replaces a Segment source's write key and shows the new one, this once.
pub async fn new_write_key(
    State(state): State<Arc<AppState>>,
    user: SignedIn,
    Path(name): Path<String>,
    Form(form): Form<Action>,
) -> Result<Markup, PageError> {
    check_csrf(&user.session, &form.csrf)?;
    let caller = user.session.caller(&state);
    caller.require(Capability::ManageSources)?;
    if state.config().sources.get(&name).is_none_or(|s| s.kind.is_pulled()) {
        return Err(PageError(StatusCode::NOT_FOUND, format!("no Segment source `{name}`")));
    }
    let key = crate::auth::new_secret("wk_");
    let (path, source, hash) = (state.database.clone(), name.clone(), crate::auth::hash_secret(&key));
    tokio::task::spawn_blocking(move || kinship_store::open(&path)?.set_write_key(&source, &hash)).await.expect("does not panic")?;
    state.forget_credentials();
    caller.audit("source.write_key", None, "POST /connections/{name}/write-key", json!({ "source": name })).await?;
    let message: Markup = html! {
        "New write key of " strong { (name) } " (shown only now; the old key no longer works): "
        code.secret { (key) }
    };
    render(&state, &user, Some(message)).await
}
