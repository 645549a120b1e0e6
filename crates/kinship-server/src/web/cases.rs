//! Cases: the queue of open cases across connected help desks, sorted by the next SLA clock
//! due, filtered by state and team, and SLA attainment per team over the last 30 days. Both
//! are the API's answers (`cases_api`), so the page reads what the role may read.

use super::session::SignedIn;
use super::{layout, text, url_encode, PageError};
use crate::cases_api::{self, AttainmentQuery, QueueQuery};
use crate::state::AppState;
use axum::extract::{Query, State};
use axum::Json;
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
                            td { @if let Some(l) = c["link"].as_str() { a href=(l) rel="noreferrer" { (text(&c["number"])) } } @else { (text(&c["number"])) } }
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
