//! Accounts: the list, largest first, and an account's 360 (its people, their latest orders
//! followed through invoice and shipment, unpaid invoices and open cases). Both are the
//! API's answers (`accounts_api`), so the page shows what the role may read. An account's
//! health is scored on its people's events together.

use super::session::SignedIn;
use super::{layout, text, url_encode, PageError};
use crate::accounts_api::{self, AccountPage};
use crate::state::AppState;
use axum::extract::{Path, Query, State};
use axum::Json;
use maud::{html, Markup};
use std::sync::Arc;

#[derive(serde::Deserialize)]
pub struct ListView {
    /// A saved health definition: accounts by their score under it, lowest first.
    pub health: Option<String>,
}

pub async fn list(State(state): State<Arc<AppState>>, user: SignedIn, Query(view): Query<ListView>) -> Result<Markup, PageError> {
    let caller = user.session.caller(&state);
    let page = AccountPage { limit: Some(200), offset: None, health: view.health.clone().filter(|h| !h.is_empty()) };
    let by_health = page.health.clone();
    let Json(listed) = accounts_api::list_accounts(caller.clone(), State(state.clone()), Query(page)).await?;
    let accounts = listed["accounts"].as_array().cloned().unwrap_or_default();
    // Health definitions to order by: those the role may read in full.
    let (reader, policy) = (state.clone(), caller.policy().clone());
    let healths: Vec<String> = tokio::task::spawn_blocking(move || {
        if !policy.sees_computed() || crate::segments_api::ensure_loaded(&reader).is_err() {
            return Vec::new();
        }
        let engine = reader.audience.read().expect("not poisoned");
        engine
            .saved_healths()
            .map(|(name, _)| name)
            .filter(|name| {
                kinship_pipeline::readable::check_definition_readable(&engine, kinship_segments::Kind::Health, name, &policy).is_ok()
            })
            .map(String::from)
            .collect()
    })
    .await
    .unwrap_or_default();
    let content = html! {
        p.hint { (text(&listed["total"])) " account(s): people grouped by a group call, a CRM account id or a business email domain (never a free-mail one)." }
        @if !healths.is_empty() {
            p { "Order by: " a href="/accounts" aria-current=[by_health.is_none().then_some("page")] { "size" }
                @for h in &healths { " · " a href=(format!("/accounts?health={}", url_encode(h))) aria-current=[(by_health.as_deref() == Some(h.as_str())).then_some("page")] { "health " (h) ", lowest first" } } }
        }
        div.scroll { table {
            thead { tr { th scope="col" { "Account" } th scope="col" { "Name" } th scope="col" .num { "People" } @if by_health.is_some() { th scope="col" .num { "Health" } } } }
            tbody { @for a in &accounts {
                tr {
                    td { a href=(format!("/accounts/{}", url_encode(&text(&a["id"])))) { (text(&a["id"])) } }
                    td { (text(&a["name"])) }
                    td.num { (text(&a["people"])) }
                    @if by_health.is_some() {
                        td.num { (format!("{:.0} ", a["score"].as_f64().unwrap_or(0.0))) span class=(format!("band band-{}", text(&a["band"]))) { (text(&a["band"])) } }
                    }
                }
            } }
        } }
        @if accounts.is_empty() { p.hint { "No accounts: no profile has a group, an account id or a business email." } }
    };
    Ok(layout(&caller, &user.session, "/accounts", "Accounts", content))
}

pub async fn show(State(state): State<Arc<AppState>>, user: SignedIn, Path(id): Path<String>) -> Result<Markup, PageError> {
    let caller = user.session.caller(&state);
    let Json(doc) = accounts_api::get_account(caller.clone(), State(state.clone()), Path(id.clone())).await?;
    let empty = Vec::new();
    let people = doc["people"].as_array().unwrap_or(&empty);
    let orders = doc["orders"].as_array().unwrap_or(&empty);
    let open = doc["cases"]["open"].as_array().unwrap_or(&empty);
    let unpaid = doc["unpaid_invoices"].as_array().unwrap_or(&empty);
    let title = doc["name"].as_str().map_or_else(|| id.clone(), |n| format!("{n} ({id})"));
    let content = html! {
        ul {
            li { (text(&doc["people_total"])) " people" @if doc["people_read"] != doc["people_total"] { " (the first " (text(&doc["people_read"])) " read)" } }
            li { "lifetime value " (format!("{:.2}", doc["lifetime_value"].as_f64().unwrap_or(0.0))) }
            li { (unpaid.len()) " unpaid invoice(s), " (text(&doc["overdue_invoices"])) " overdue" }
            li { (open.len()) " open case(s), " (text(&doc["cases"]["solved"])) " solved" }
        }
        @if let Some(health) = doc["health"].as_object() { (super::profile::health_section(health)) }
        section aria-labelledby="people-title" {
            h2 #people-title { "People" }
            div.scroll { table {
                thead { tr { th scope="col" { "Person" } th scope="col" { "Name" } th scope="col" .num { "Orders" } } }
                tbody { @for p in people {
                    tr {
                        td { a href=(format!("/profiles/{}", url_encode(&text(&p["id"])))) { (text(&p["id"])) } }
                        td { (text(&p["name"])) }
                        td.num { (text(&p["orders"])) }
                    }
                } }
            } }
        }
        @if !orders.is_empty() {
            section aria-labelledby="orders-title" {
                h2 #orders-title { "Latest orders" }
                div.scroll { table.wide {
                    thead { tr { th scope="col" { "Order" } th scope="col" { "Person" } th scope="col" .num { "Amount" } th scope="col" { "Where it is" } } }
                    tbody { @for o in orders.iter().take(20) {
                        tr {
                            td { (text(&o["number"])) }
                            td { a href=(format!("/profiles/{}", url_encode(&text(&o["person"])))) { (text(&o["person"])) } }
                            td.num { (o["amount"].as_f64().map(|a| format!("{a:.2}")).unwrap_or_default()) }
                            td { (text(&o["summary"])) }
                        }
                    } }
                } }
            }
        }
        (super::profile::documents_list(doc["documents"].as_array().unwrap_or(&empty), true))
        @if let Some(deals) = doc["deals"].as_array().filter(|d| !d.is_empty()) {
            section aria-labelledby="deals-title" {
                h2 #deals-title { "Deals" }
                (super::profile::deals_table(deals))
            }
        }
        @if !open.is_empty() {
            section aria-labelledby="cases-title" {
                h2 #cases-title { "Open cases" }
                div.scroll { table.wide {
                    thead { tr { th scope="col" { "Case" } th scope="col" { "Person" } th scope="col" { "Subject" } th scope="col" { "Next due" } } }
                    tbody { @for c in open {
                        tr {
                            td { (text(&c["number"])) }
                            td { a href=(format!("/profiles/{}", url_encode(&text(&c["person"])))) { (text(&c["person"])) } }
                            td { (text(&c["subject"])) }
                            td { (text(&c["next_due"]).get(..16).unwrap_or("–").replace('T', " ")) }
                        }
                    } }
                } }
            }
        }
    };
    Ok(layout(&caller, &user.session, "/accounts", &title, content))
}
