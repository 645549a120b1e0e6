//! The Customer success page: NPS over time with its interval band, earned growth by period,
//! and health scores for a definition (TOML; `health/*.toml` in the data directory is
//! offered): the bands, the distribution, this week's alerts and the lowest scores with their
//! reasons. Everything goes through the API's handlers, so the page shows what the role may
//! see, audited the same way.

use super::charts;
use super::session::SignedIn;
use super::{check_csrf, layout, text, url_encode, PageError};
use crate::state::AppState;
use crate::success_api::{self, AlertQuery, GrowthQuery, NpsQuery, Snooze};
use axum::extract::{Path, Query, State};
use axum::{Form, Json};
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::Value;
use std::sync::Arc;

const EXAMPLE: &str = r#"name = "customer"
applies = 'any("Order Completed")'
[[measures]]
name = "orders_90d"
value = 'count("Order Completed", last 90 days)'
points = [[0, 20], [1, 70], [3, 100]]
weight = 2
[[measures]]
name = "tickets_30d"
value = 'count("Ticket Opened", last 30 days)'
points = [[0, 100], [2, 30], [4, 0]]
"#;

#[derive(Deserialize, Default)]
pub struct HealthForm {
    #[serde(default)]
    csrf: String,
    /// `score` or `save`.
    #[serde(default)]
    action: String,
    #[serde(default)]
    health: String,
}

/// The first health definition in the data directory's `health/`, else an example.
fn offered_definition(state: &AppState) -> String {
    let dir = state.data_dir.join("health");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files.first().and_then(|p| std::fs::read_to_string(p).ok()).unwrap_or_else(|| EXAMPLE.to_string())
}

pub async fn page(State(state): State<Arc<AppState>>, user: SignedIn) -> Result<Markup, PageError> {
    let form = HealthForm { health: offered_definition(&state), ..HealthForm::default() };
    render(&state, &user, &form, None).await
}

pub async fn submit(State(state): State<Arc<AppState>>, user: SignedIn, Form(form): Form<HealthForm>) -> Result<Markup, PageError> {
    check_csrf(&user.session, &form.csrf)?;
    let caller = user.session.caller(&state);
    let outcome = if form.action == "save" {
        let saved = html! { p.notice role="status" { "Saved: each customer's 360 shows this score with its reasons, and segments read it as health(\"name\").band." } };
        super::save_outcome(success_api::create_health(caller, State(state.clone()), form.health.clone()).await, saved).await
    } else {
        match success_api::health_score(caller, State(state.clone()), form.health.clone()).await {
            Ok(Json(report)) => health_result(&report),
            Err(e) => html! { p.error role="alert" { (e.1) } },
        }
    };
    render(&state, &user, &form, Some(outcome)).await
}

#[derive(Deserialize)]
pub struct SnoozeForm {
    csrf: String,
    until: String,
    reason: String,
}

/// Snoozes a kept alert from the queue (`POST /success/alerts/{id}/snooze`).
pub async fn snooze(
    State(state): State<Arc<AppState>>,
    user: SignedIn,
    Path(id): Path<i64>,
    Form(form): Form<SnoozeForm>,
) -> Result<Markup, PageError> {
    check_csrf(&user.session, &form.csrf)?;
    let caller = user.session.caller(&state);
    let outcome =
        match success_api::snooze_alert(caller, State(state.clone()), Path(id), Json(Snooze { until: form.until, reason: form.reason }))
            .await
        {
            Ok(Json(alert)) => html! { p.notice role="status" { "Alert " (id) " snoozed until " (date(&alert["snoozed_until"])) "." } },
            Err(e) => html! { p.error role="alert" { (e.1) } },
        };
    let form = HealthForm { health: offered_definition(&state), ..HealthForm::default() };
    render(&state, &user, &form, Some(outcome)).await
}

fn date(ms: &Value) -> String {
    ms.as_i64().map_or_else(|| "–".into(), kinship_expr::format_timestamp)
}

/// The alerts the server keeps for each saved health definition: the queue to act on, with
/// a snooze form for roles that work queues.
async fn alert_queues(state: &Arc<AppState>, user: &SignedIn) -> Markup {
    let names: Vec<String> = state
        .audience
        .read()
        .expect("not poisoned")
        .definitions()
        .into_iter()
        .filter(|d| d.kind == kinship_segments::Kind::Health)
        .map(|d| d.name)
        .collect();
    let works = user.session.caller(state).policy().allows(kinship_policy::Capability::WorkTasks);
    let mut queues = Vec::new();
    for name in names {
        let query = Query(AlertQuery { status: Some("open".into()), limit: Some(50) });
        queues.push((name.clone(), success_api::health_alerts(user.session.caller(state), State(state.clone()), Path(name), query).await));
    }
    html! {
        @if queues.is_empty() { p.hint { "Save a health definition below: the server then keeps its alerts (every [measures] alerts_every) and they queue here." } }
        @for (name, listed) in &queues {
            h3 { "Alerts: " (name) }
            @match listed {
                Err(e) => p.error role="alert" { (e.1) },
                Ok(Json(listed)) => {
                    @let counts = &listed["counts"];
                    p { (text(&counts["open"])) " open, " (text(&counts["snoozed"])) " snoozed, " (text(&counts["held_today"])) " held back today over an owner's daily limit." }
                    @if let Some(alerts) = listed["alerts"].as_array().filter(|a| !a.is_empty()) {
                        div.scroll { table.wide {
                            caption { "Open alerts, newest first" }
                            thead { tr {
                                th scope="col" { "Customer" } th scope="col" { "Why" } th scope="col" { "Owner" } th scope="col" .num { "From" } th scope="col" .num { "Now" }
                                th scope="col" { "Opened" } th scope="col" { "Snoozed" } @if works { th scope="col" { "Snooze" } }
                            } }
                            tbody { @for a in alerts {
                                @let id = text(&a["profile_id"]);
                                tr {
                                    td { a href=(format!("/profiles/{}", url_encode(&id))) { (id) } }
                                    td { (text(&a["reason"]).replace('_', " ")) }
                                    td { (text(&a["owner"])) }
                                    td.num { (format!("{:.0}", a["from_score"].as_f64().unwrap_or(0.0))) }
                                    td.num { (format!("{:.0}", a["score"].as_f64().unwrap_or(0.0))) }
                                    td { (date(&a["opened_at"])) }
                                    td { @if a["snoozed_until"].is_i64() { (date(&a["snoozed_until"])) ": " (text(&a["snooze_reason"])) } }
                                    @if works { td {
                                        form.inline method="post" action=(format!("/success/alerts/{}/snooze", a["id"])) {
                                            input type="hidden" name="csrf" value=(user.session.csrf);
                                            label.visually-hidden for=(format!("until-{}", a["id"])) { "Until" }
                                            input id=(format!("until-{}", a["id"])) name="until" value="3 days" size="8" required;
                                            label.visually-hidden for=(format!("why-{}", a["id"])) { "Why" }
                                            input id=(format!("why-{}", a["id"])) name="reason" placeholder="why" required;
                                            button type="submit" { "Snooze" }
                                        }
                                    } }
                                }
                            } }
                        } }
                    }
                }
            }
        }
    }
}

async fn render(state: &Arc<AppState>, user: &SignedIn, form: &HealthForm, outcome: Option<Markup>) -> Result<Markup, PageError> {
    let caller = user.session.caller(state);
    let nps = success_api::nps_report(user.session.caller(state), State(state.clone()), Query(NpsQuery { by: None })).await;
    let growth =
        success_api::growth_report(user.session.caller(state), State(state.clone()), Query(GrowthQuery { period: None, periods: Some(6) }))
            .await;
    let content = html! {
        section aria-labelledby="nps-title" {
            h2 #nps-title { "NPS" }
            @match &nps {
                Ok(Json(report)) => (nps_section(report)),
                Err(e) => p.error role="alert" { (e.1) },
            }
        }
        section aria-labelledby="growth-title" {
            h2 #growth-title { "Earned growth" }
            @match &growth {
                Ok(Json(report)) => (growth_section(report)),
                Err(e) => p.error role="alert" { (e.1) },
            }
        }
        section aria-labelledby="alerts-title" {
            h2 #alerts-title { "Alert queue" }
            (alert_queues(state, user).await)
        }
        section aria-labelledby="health-title" {
            h2 #health-title { "Health" }
            form.editor method="post" action="/success" {
                input type="hidden" name="csrf" value=(user.session.csrf);
                label for="health" { "Definition (TOML): measures with points and weights, bands, contexts, alerts" }
                textarea #health name="health" rows="14" spellcheck="false" required { (form.health) }
                div.actions {
                    button.primary type="submit" name="action" value="score" { "Score customers" }
                    button type="submit" name="action" value="save" { "Save definition" }
                }
            }
            @if let Some(outcome) = outcome { output #outcome aria-live="polite" { (outcome) } }
        }
    };
    Ok(layout(&caller, &user.session, "/success", "Customer success", content))
}

fn score_text(score: &Value) -> String {
    match (score["nps"].as_f64(), score["margin"].as_f64()) {
        (Some(nps), Some(margin)) => format!("{nps:+.1} ± {margin:.1}"),
        _ => "insufficient".into(),
    }
}

fn pct(v: &Value) -> String {
    v.as_f64().map_or("–".into(), |v| format!("{:.1}%", v * 100.0))
}

fn nps_section(report: &Value) -> Markup {
    let groups = report["groups"].as_array().cloned().unwrap_or_default();
    let points: Vec<(String, f64, f64, f64)> = groups
        .iter()
        .filter_map(|g| Some((text(&g["label"]), g["score"]["nps"].as_f64()?, g["score"]["low"].as_f64()?, g["score"]["high"].as_f64()?)))
        .collect();
    html! {
        p.lead {
            "NPS " strong { (score_text(&report["overall"])) } " from " (text(&report["answers"])) " answers (95% interval); weighted by revenue "
            (score_text(&report["revenue_weighted"])) "."
        }
        p {
            "Detractors among customers who stopped buying: " (pct(&report["detractors_among_churned"])) " of " (text(&report["churned_answered"]))
            "; among those still buying: " (pct(&report["detractors_among_active"])) " of " (text(&report["active_answered"])) "."
        }
        @if points.len() > 1 { (charts::band(&points, -100.0, 100.0, "NPS by month with its 95% interval")) }
        div.scroll { table.wide {
            caption { "By month of the answer; under " (text(&report["min_answers"])) " answers a month is insufficient" }
            thead { tr { th scope="col" { "Month" } th scope="col" .num { "Answers" } th scope="col" { "NPS (95%)" } } }
            tbody { @for g in &groups { tr { td { (text(&g["label"])) } td.num { (text(&g["answers"])) } td { (score_text(&g["score"])) } } } }
        } }
        @if let Some(ids) = report["detractors"].as_array().filter(|ids| !ids.is_empty()) {
            details {
                summary { "Detractors by their latest answer: " (ids.len()) " shown" }
                ul.ids { @for id in ids { @let id = text(id); li { a href=(format!("/profiles/{}", url_encode(&id))) { (id) } } } }
            }
        }
    }
}

fn growth_section(report: &Value) -> Markup {
    let periods = report["periods"].as_array().cloned().unwrap_or_default();
    html! {
        p.hint { "Net revenue retention plus new revenue that came by recommendation, over last period's revenue, less 100% (Reichheld). The rule for earned is `[measures] earned` in kinship.toml." }
        div.scroll { table.wide {
            thead { tr {
                th scope="col" { "Period" } th scope="col" .num { "Revenue" } th scope="col" .num { "Retention (NRR)" }
                th scope="col" .num { "New" } th scope="col" .num { "Earned new" } th scope="col" .num { "Earned growth" } th scope="col" .num { "Earned share" }
            } }
            tbody { @for p in &periods {
                @let g = &p["growth"];
                tr {
                    td { (text(&p["label"])) @if p["partial"] == true { " (so far)" } }
                    td.num { (format!("{:.0}", g["current_revenue"].as_f64().unwrap_or(0.0))) }
                    td.num { (pct(&g["net_revenue_retention"])) }
                    td.num { (g["new_revenue"].as_f64().map_or("withheld".into(), |v| format!("{v:.0}"))) }
                    td.num { (g["earned_new_revenue"].as_f64().map_or("withheld".into(), |v| format!("{v:.0}"))) }
                    td.num { strong { (pct(&g["earned_growth_rate"])) } }
                    td.num { (pct(&g["earned_share_of_new_revenue"])) }
                }
            } }
        } }
        @if let Some(last) = periods.iter().rev().find(|p| p["partial"] != true) {
            @let earned: Vec<String> = last["earned"].as_array().into_iter().flatten().map(text).collect();
            @if !earned.is_empty() {
                details {
                    summary { "New customers in " (text(&last["label"])) " who came by recommendation: " (earned.len()) " shown" }
                    ul.ids { @for id in &earned { li { a href=(format!("/profiles/{}", url_encode(id))) { (id) } } } }
                }
            }
        }
    }
}

fn health_result(report: &Value) -> Markup {
    let distribution: Vec<u64> = report["distribution"].as_array().into_iter().flatten().map(|v| v.as_u64().unwrap_or(0)).collect();
    let alerts = &report["alerts"];
    let opened: Vec<&Value> = alerts.as_array().into_iter().flatten().filter(|a| a["change"] == "opened").collect();
    html! {
        h3 { "Health " (text(&report["name"])) }
        p.lead {
            (text(&report["scored"])) " scored: " strong.band-red { (text(&report["red"])) " red" } ", " (text(&report["yellow"])) " yellow, " (text(&report["green"])) " green."
        }
        @if !distribution.is_empty() {
            p { "Scores, 0 to 100, in tens: " (charts::sparkline(&distribution, 208, 40, &format!("profiles per ten points: {distribution:?}"))) }
        }
        @match alerts {
            Value::Number(n) => p { (n) " alert changes this week." },
            _ => p { (opened.len()) " alerts raised this week (" (text(&report["explained"])) " low scores or falls explained by context, not raised)." },
        }
        @if !opened.is_empty() {
            div.scroll { table.wide {
                caption { "Alerts this week" }
                thead { tr { th scope="col" { "Profile" } th scope="col" { "Reason" } th scope="col" .num { "Score" } th scope="col" .num { "A week ago" } } }
                tbody { @for a in opened.iter().take(50) {
                    @let id = text(&a["profile"]);
                    tr {
                        td { a href=(format!("/profiles/{}", url_encode(&id))) { (id) } }
                        td { (text(&a["reason"]).replace('_', " ")) }
                        td.num { (format!("{:.0}", a["score"].as_f64().unwrap_or(0.0))) }
                        td.num { (format!("{:.0}", a["from_score"].as_f64().unwrap_or(0.0))) }
                    }
                } }
            } }
        }
        div.scroll { table.wide {
            caption { "Lowest scores and why" }
            thead { tr { th scope="col" { "Profile" } th scope="col" .num { "Score" } th scope="col" { "Context" } th scope="col" { "Measures (value → score × weight)" } } }
            tbody { @for row in report["lowest"].as_array().into_iter().flatten().take(20) {
                @let scored = &row[1];
                tr {
                    td { @match row[0].as_str() { Some(id) => a href=(format!("/profiles/{}", url_encode(id))) { (id) }, None => "–" } }
                    td.num { (format!("{:.0}", scored["score"].as_f64().unwrap_or(0.0))) }
                    td { (text(&scored["context"])) }
                    td { @for m in scored["measures"].as_array().into_iter().flatten() {
                        span.measure { (text(&m["name"])) " " (text(&m["value"])) " → " (m["score"].as_f64().map_or("–".into(), |s| format!("{s:.0}"))) " × " (text(&m["weight"])) "; " }
                    } }
                }
            } }
        } }
    }
}
