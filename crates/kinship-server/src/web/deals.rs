//! The pipeline board: a column per stage with its deals; a native deal moves to another
//! stage by dragging its card, by focusing it and pressing ← or →, or by its own "Move to"
//! form (which is what the first two submit, so the page works without the script). Below
//! it, the weighted forecast by close month, the win rate, time in stage and the stage
//! funnel. Everything shown is the API's answer (`deals_api`).

use super::session::SignedIn;
use super::{charts, check_csrf, layout, text, url_encode, PageError};
use crate::deals_api::{self, DealQuery, DealUpdate, NewDeal};
use crate::state::AppState;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Form, Json};
use kinship_policy::Capability;
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::Value;
use std::sync::Arc;

#[derive(Deserialize, Default)]
pub struct BoardView {
    owner: Option<String>,
    /// The deal just moved, focused again after the page reloads.
    moved: Option<String>,
}

fn money(v: &Value) -> String {
    let n = v.as_f64().unwrap_or(0.0);
    // Thousands apart, no decimals: a board is read at a glance.
    let whole = format!("{:.0}", n.abs());
    let mut grouped = String::new();
    for (i, c) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    if n < 0.0 {
        format!("-{grouped}")
    } else {
        grouped
    }
}

pub async fn board(State(state): State<Arc<AppState>>, user: SignedIn, Query(view): Query<BoardView>) -> Result<Markup, PageError> {
    let caller = user.session.caller(&state);
    let owner = view.owner.clone().filter(|o| !o.trim().is_empty());
    let query = DealQuery { status: Some("all".into()), owner: owner.clone(), limit: Some(500), offset: None };
    let Json(listed) = deals_api::list_deals(caller.clone(), State(state.clone()), Query(query)).await?;
    let may_work = caller.policy().allows(Capability::WorkDeals);
    let native = listed["native"].as_str().map(String::from);
    let deals = listed["deals"].as_array().cloned().unwrap_or_default();
    let report = &listed["report"];
    let stages: Vec<String> = report["stages"].as_array().into_iter().flatten().map(|s| text(&s["name"])).collect();
    let funnel: Vec<(String, u64, f64, f64)> = report["funnel"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| (text(&s["stage"]), s["count"].as_u64().unwrap_or(0), s["conversion"].as_f64().unwrap_or(0.0), 1.0))
        .collect();
    let content = html! {
        form.inline method="get" action="/deals" {
            label { "Owner " input type="text" name="owner" value=[owner.as_deref()] placeholder="every seller"; }
            button type="submit" { "Show" }
        }
        p.hint #board-help {
            "As of " (text(&listed["as_of"]).get(..10).unwrap_or_default()) ". "
            @if may_work { "Drag a native deal's card to another stage, or focus it and press ← or → to move it one stage." }
            @else { "Deals from a connected CRM move there; this board follows what it sends." }
        }
        div.board role="list" aria-label="Pipeline by stage" {
            @for stage in &report["stages"].as_array().cloned().unwrap_or_default() {
                @let name = text(&stage["name"]);
                section.column role="listitem" data-stage=(name) aria-labelledby=(format!("stage-{}", url_encode(&name))) {
                    h2 #(format!("stage-{}", url_encode(&name))) {
                        (name) " " span.hint { (text(&stage["deals"])) " · " (money(&stage["amount"])) " · " (format!("{:.0}%", stage["probability"].as_f64().unwrap_or(0.0) * 100.0)) }
                    }
                    ol.cards {
                        @for d in deals.iter().filter(|d| text(&d["stage"]) == name) {
                            @let movable = may_work && native.as_deref() == d["source"].as_str();
                            @let id = text(&d["id"]);
                            li.card id=(format!("deal-{id}")) tabindex="0" draggable=[movable.then_some("true")] data-movable=[movable.then_some("yes")] aria-describedby="board-help" {
                                strong { (d["name"].as_str().unwrap_or(id.as_str())) }
                                p { (money(&d["amount"])) " " (text(&d["currency"])) " · " @if d["open"] == true { "closes " } @else { "closed " } (text(&d["close"])) }
                                p.hint {
                                    @if let Some(o) = d["owner"].as_str() { (o) }
                                    @if let Some(days) = d["days_in_stage"].as_u64() { " · " (days) " days in stage" }
                                    @if let Some(c) = d["contacts"].as_array().and_then(|c| c.first()) {
                                        " · " a href=(format!("/profiles/{}", url_encode(&text(c)))) { "contact" }
                                    }
                                }
                                @if movable {
                                    form.move method="post" action=(format!("/deals/{}/{}/move", url_encode(&text(&d["source"])), url_encode(&id))) {
                                        input type="hidden" name="csrf" value=(user.session.csrf);
                                        label { "Move to " select name="stage" {
                                            @for s in &stages { option value=(s) selected[*s == name] { (s) } }
                                        } }
                                        button type="submit" { "Move" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if deals.is_empty() { p.hint { "No deals: map a CRM's opportunities with [sources.NAME.deal], or open one from a customer's page." } }
        section aria-labelledby="forecast-title" {
            h2 #forecast-title { "Weighted forecast by close month" }
            div.scroll { table.wide {
                thead { tr { th scope="col" { "Month" } th scope="col" { "Currency" } th scope="col" .num { "Weighted" } th scope="col" .num { "Open pipeline" } th scope="col" .num { "Open deals" } th scope="col" .num { "Won" } } }
                tbody { @for m in report["forecast"].as_array().into_iter().flatten() {
                    tr {
                        td { (text(&m["month"])) }
                        td { (text(&m["currency"])) }
                        td.num { (money(&m["weighted"])) }
                        td.num { (money(&m["pipeline"])) }
                        td.num { (text(&m["open_deals"])) }
                        td.num { (money(&m["won"])) }
                    }
                } }
            } }
            p { "Win rate: " strong { (report["win_rate"].as_f64().map_or("none closed yet".to_string(), |r| format!("{:.1}%", r * 100.0))) } " of closed deals were won." }
        }
        section aria-labelledby="funnel-title" {
            h2 #funnel-title { "Stage funnel" }
            p.hint { "Deals that reached each stage or a later one (the funnel engine over each deal's stage history), and the mean days spent in a stage before leaving it." }
            (charts::funnel_bars(&funnel, "Deals reaching each stage, as a share of all deals"))
            div.scroll { table {
                thead { tr { th scope="col" { "Stage" } th scope="col" .num { "Reached" } th scope="col" .num { "Of all" } th scope="col" .num { "Days in stage" } } }
                tbody { @for (stage, count, share, _) in &funnel {
                    tr {
                        td { (stage) }
                        td.num { (count) }
                        td.num { (format!("{:.1}%", share * 100.0)) }
                        td.num { (report["time_in_stage_days"][stage.as_str()].as_f64().map_or("–".to_string(), |d| format!("{d:.1}"))) }
                    }
                } }
            } }
        }
        @if let Some(moved) = &view.moved { span hidden data-focus=(format!("deal-{moved}")) {} }
    };
    Ok(layout(&caller, &user.session, "/deals", "Deals", content))
}

#[derive(Deserialize)]
pub struct MoveForm {
    csrf: String,
    stage: String,
}

pub async fn move_deal(
    State(state): State<Arc<AppState>>,
    user: SignedIn,
    Path((source, id)): Path<(String, String)>,
    Form(form): Form<MoveForm>,
) -> Result<Response, PageError> {
    check_csrf(&user.session, &form.csrf)?;
    let change = DealUpdate { stage: Some(form.stage), ..DealUpdate::default() };
    deals_api::update_deal(user.session.caller(&state), State(state.clone()), Path((source, id.clone())), Json(change)).await?;
    Ok(Redirect::to(&format!("/deals?moved={}", url_encode(&id))).into_response())
}

#[derive(Deserialize)]
pub struct OpenForm {
    csrf: String,
    name: String,
    amount: String,
    currency: String,
    close: String,
}

/// Opens a native deal from a customer's page, with them as its contact.
pub async fn open(
    State(state): State<Arc<AppState>>,
    user: SignedIn,
    Path(profile): Path<String>,
    Form(form): Form<OpenForm>,
) -> Result<Response, PageError> {
    check_csrf(&user.session, &form.csrf)?;
    let amount = form.amount.trim().replace(',', "").parse::<f64>().map_err(|_| {
        PageError(axum::http::StatusCode::BAD_REQUEST, format!("amount `{}` is not a number: write 1200 or 1200.50", form.amount))
    })?;
    let deal = NewDeal {
        profile,
        name: form.name,
        amount,
        currency: Some(form.currency),
        close: form.close,
        stage: None,
        owner: None,
        probability: None,
    };
    let (_, Json(opened)) = deals_api::open_deal(user.session.caller(&state), State(state.clone()), Json(deal)).await?;
    Ok(Redirect::to(&format!("/deals?moved={}", url_encode(&text(&opened["id"])))).into_response())
}
