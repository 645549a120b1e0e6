//! The Measures page: a funnel (TOML) drawn as bars with each step's time, saved funnels
//! (each number of a saved funnel's breakdown and weekly trend opens the funnel of just those
//! profiles, with the people behind it), and an experiment's lift per variant with its
//! interval. All go through the API's handlers, so the page shows exactly what the role may
//! see, and is audited the same way.

use super::charts;
use super::session::SignedIn;
use super::{check_csrf, layout, text, url_encode, PageError};
use crate::measures_api::{self, ExperimentQuery, FunnelQuery};
use crate::state::AppState;
use axum::extract::{Path, Query, State};
use axum::{Form, Json};
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::Value;
use std::sync::Arc;

const EXAMPLE: &str = r#"name = "order_to_delivery"
window = "30 days"
[[steps]]
event = "Order Completed"
[[steps]]
event = "Invoice Issued"
[[steps]]
event = "Order Shipped"
within = "7 days"
"#;

#[derive(Deserialize, Default)]
pub struct MeasureForm {
    #[serde(default)]
    csrf: String,
    /// `funnel` or `experiment`.
    #[serde(default)]
    action: String,
    #[serde(default)]
    funnel: String,
    /// Text, so that an empty field (all history) is not a malformed number.
    #[serde(default)]
    days: String,
    #[serde(default)]
    experiment: String,
    #[serde(default)]
    event: String,
    #[serde(default)]
    sum: String,
    /// A saved funnel whose completion is the metric.
    #[serde(default)]
    metric_funnel: String,
}

pub async fn page(State(state): State<Arc<AppState>>, user: SignedIn) -> Result<Markup, PageError> {
    let form = MeasureForm { funnel: EXAMPLE.into(), ..MeasureForm::default() };
    render(&state, &user, &form, None).await
}

/// A saved funnel measured now, narrowed to one breakdown value or one week when asked.
pub async fn saved(
    State(state): State<Arc<AppState>>,
    user: SignedIn,
    Path(name): Path<String>,
    Query(query): Query<FunnelQuery>,
) -> Result<Markup, PageError> {
    let caller = user.session.caller(&state);
    let narrowed = match (&query.breakdown, &query.week) {
        (Some(value), _) => format!(" · {value} only"),
        (None, Some(week)) => format!(" · week of {week} only"),
        (None, None) => String::new(),
    };
    let outcome = match measures_api::show_funnel(caller, State(state.clone()), Path(name.clone()), Query(query)).await {
        Ok(Json(report)) => html! {
            @if !narrowed.is_empty() { p { a href=(format!("/measures/funnels/{}", url_encode(&name))) { "← the whole funnel" } } }
            (funnel_result(&report, Some(&name), &narrowed))
        },
        Err(e) => html! { p.error role="alert" { (e.1) } },
    };
    let form = MeasureForm { funnel: EXAMPLE.into(), ..MeasureForm::default() };
    render(&state, &user, &form, Some(outcome)).await
}

pub async fn submit(State(state): State<Arc<AppState>>, user: SignedIn, Form(form): Form<MeasureForm>) -> Result<Markup, PageError> {
    check_csrf(&user.session, &form.csrf)?;
    let caller = user.session.caller(&state);
    let outcome = if form.action == "experiment" {
        let query = ExperimentQuery {
            event: (!form.event.trim().is_empty()).then(|| form.event.trim().to_string()),
            sum: (!form.sum.trim().is_empty()).then(|| form.sum.trim().to_string()),
            condition: None,
            days: None,
            funnel: (!form.metric_funnel.trim().is_empty()).then(|| form.metric_funnel.trim().to_string()),
        };
        match measures_api::experiment_readout(caller, State(state.clone()), Path(form.experiment.trim().to_string()), Query(query)).await {
            Ok(Json(readout)) => experiment_result(&readout),
            Err(e) => html! { p.error role="alert" { (e.1) } },
        }
    } else if form.action == "save" {
        let saved =
            html! { p.notice role="status" { "Saved: it is listed under Saved funnels, and segments read it as funnel(\"name\").step." } };
        super::save_outcome(measures_api::create_funnel(caller, State(state.clone()), form.funnel.clone()).await, saved).await
    } else {
        let query = FunnelQuery { days: form.days.trim().parse().ok(), breakdown: None, week: None };
        match measures_api::measure_funnel(caller, State(state.clone()), Query(query), form.funnel.clone()).await {
            Ok(Json(report)) => funnel_result(&report, None, ""),
            Err(e) => html! { p.error role="alert" { (e.1) } },
        }
    };
    render(&state, &user, &form, Some(outcome)).await
}

async fn render(state: &Arc<AppState>, user: &SignedIn, form: &MeasureForm, outcome: Option<Markup>) -> Result<Markup, PageError> {
    let caller = user.session.caller(state);
    let saved: Vec<(String, String)> = match measures_api::list_funnels(user.session.caller(state), State(state.clone())).await {
        Ok(Json(list)) => list["funnels"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|f| {
                let steps: Vec<String> = f["definition"]["steps"].as_array().into_iter().flatten().map(|s| text(&s["event"])).collect();
                (text(&f["name"]), steps.join(" → "))
            })
            .collect(),
        Err(_) => Vec::new(),
    };
    let content = html! {
        @if !saved.is_empty() {
            section aria-labelledby="saved-title" {
                h2 #saved-title { "Saved funnels" }
                ul { @for (name, steps) in &saved { li { a href=(format!("/measures/funnels/{}", url_encode(name))) { (name) } " · " (steps) } } }
            }
        }
        section aria-labelledby="funnel-title" {
            h2 #funnel-title { "Funnel" }
            form.editor method="post" action="/measures" {
                input type="hidden" name="csrf" value=(user.session.csrf);
                label for="funnel" { "Definition (TOML): steps, window, order, exclusions, breakdown" }
                textarea #funnel name="funnel" rows="12" spellcheck="false" required { (form.funnel) }
                label for="days" { "Entries in the last days (empty: all history)" }
                input #days name="days" type="number" min="1" max="3650" value=(form.days);
                div.actions {
                    button.primary type="submit" name="action" value="funnel" { "Measure funnel" }
                    button type="submit" name="action" value="save" { "Save funnel" }
                }
            }
        }
        section aria-labelledby="experiment-title" {
            h2 #experiment-title { "Experiment" }
            form.editor method="post" action="/measures" {
                input type="hidden" name="csrf" value=(user.session.csrf);
                input type="hidden" name="funnel" value=(form.funnel);
                label for="experiment" { "Experiment (from `Experiment Viewed` events)" }
                input #experiment name="experiment" value=(form.experiment) required;
                label for="event" { "Metric event (conversion to it)" }
                input #event name="event" value=(form.event) placeholder="Order Completed";
                label for="sum" { "Or sum this property of it (revenue per profile, CUPED)" }
                input #sum name="sum" value=(form.sum);
                label for="metric_funnel" { "Or completing this saved funnel" }
                input #metric_funnel name="metric_funnel" value=(form.metric_funnel);
                div.actions { button.primary type="submit" name="action" value="experiment" { "Read out" } }
            }
        }
        @if let Some(outcome) = outcome { output #outcome aria-live="polite" { (outcome) } }
    };
    Ok(layout(&caller, &user.session, "/measures", "Measures", content))
}

fn hours(ms: &Value) -> String {
    ms.as_f64()
        .map_or_else(|| "-".into(), |ms| if ms < 172_800_000.0 { format!("{:.1} h", ms / 3.6e6) } else { format!("{:.1} d", ms / 8.64e7) })
}

/// The funnel's numbers. A saved funnel's breakdown rows and weeks link to the funnel of just
/// those profiles; `narrowed` says which, when this is one.
fn funnel_result(report: &Value, saved: Option<&str>, narrowed: &str) -> Markup {
    let drill = |parameter: &str, value: &str| {
        saved.map(|name| format!("/measures/funnels/{}?{parameter}={}", url_encode(name), url_encode(value)))
    };
    let steps = report["result"]["steps"].as_array().cloned().unwrap_or_default();
    let names: Vec<String> = report["steps"].as_array().into_iter().flatten().map(text).collect();
    let bars: Vec<(String, u64, f64, f64)> = steps
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let previous = if i == 0 { 1.0 } else { steps[i - 1]["conversion"].as_f64().unwrap_or(0.0) };
            (names.get(i).cloned().unwrap_or_default(), s["count"].as_u64().unwrap_or(0), s["conversion"].as_f64().unwrap_or(0.0), previous)
        })
        .collect();
    let summary = bars.iter().map(|(n, c, share, _)| format!("{n}: {c} ({:.1}%)", share * 100.0)).collect::<Vec<_>>().join(", ");
    html! {
        h3 { "Funnel " (text(&report["name"])) (narrowed) }
        (charts::funnel_bars(&bars, &summary))
        div.scroll { table.wide {
            thead { tr { th scope="col" { "Step" } th scope="col" .num { "Profiles" } th scope="col" .num { "Of the previous" } th scope="col" .num { "Dropped" } th scope="col" { "Time from the previous (median · p90)" } th scope="col" { "Spread" } } }
            tbody {
                @for (i, s) in steps.iter().enumerate() {
                    tr {
                        td { (names.get(i).cloned().unwrap_or_default()) }
                        td.num { (text(&s["count"])) }
                        td.num { (format!("{:.1}%", s["from_previous"].as_f64().unwrap_or(0.0) * 100.0)) }
                        td.num { (text(&s["dropped"])) }
                        td { @if i > 0 { (hours(&s["time_from_previous"]["median_ms"])) " · " (hours(&s["time_from_previous"]["p90_ms"])) } }
                        td {
                            @let histogram: Vec<u64> = s["time_from_previous"]["histogram"].as_array().into_iter().flatten().map(|b| b[1].as_u64().unwrap_or(0)).collect();
                            @if i > 0 && !histogram.is_empty() { (charts::sparkline(&histogram, 104, 24, "time to convert, in ten equal bands")) }
                        }
                    }
                }
            }
        } }
        @let weekly: Vec<(String, u64, u64)> = report["result"]["weekly"].as_array().into_iter().flatten().map(|w| {
            let counts = w[1].as_array().cloned().unwrap_or_default();
            (super::time(w[0].as_i64().unwrap_or(0)).chars().take(10).collect(), counts.first().and_then(Value::as_u64).unwrap_or(0), counts.last().and_then(Value::as_u64).unwrap_or(0))
        }).collect();
        @let breakdown: Vec<(String, u64, u64)> = report["result"]["breakdown"].as_array().into_iter().flatten().map(|row| {
            let counts = row[1].as_array().cloned().unwrap_or_default();
            (text(&row[0]), counts.first().and_then(Value::as_u64).unwrap_or(0), counts.last().and_then(Value::as_u64).unwrap_or(0))
        }).collect();
        @if !breakdown.is_empty() {
            div.scroll { table.wide {
                caption { "By value" @if saved.is_some() { ": each opens the funnel of those profiles" } }
                thead { tr { th scope="col" { "Value" } th scope="col" .num { "Entered" } th scope="col" .num { "Completed" } th scope="col" .num { "Conversion" } } }
                tbody { @for (value, entered, completed) in &breakdown {
                    tr {
                        td { @match drill("breakdown", value).filter(|_| value != "(other)") { Some(href) => a href=(href) { (value) }, None => (value) } }
                        td.num { (entered) } td.num { (completed) }
                        td.num { (format!("{:.1}%", *completed as f64 * 100.0 / (*entered).max(1) as f64)) }
                    }
                } }
            } }
        }
        @if saved.is_some() && !weekly.is_empty() {
            div.scroll { table.wide {
                caption { "By week of entry: each opens the funnel of that week's entries" }
                thead { tr { th scope="col" { "Week of" } th scope="col" .num { "Entered" } th scope="col" .num { "Completed" } } }
                tbody { @for (week, entered, completed) in &weekly {
                    tr { td { @if let Some(href) = drill("week", week) { a href=(href) { (week) } } } td.num { (entered) } td.num { (completed) } }
                } }
            } }
        }
        @if weekly.len() > 1 {
            @let entered: Vec<u64> = weekly.iter().map(|w| w.1).collect();
            @let converted: Vec<u64> = weekly.iter().map(|w| w.2).collect();
            p.trend {
                "Entered per week, " (weekly[0].0) " to " (weekly[weekly.len() - 1].0) ": "
                (charts::sparkline(&entered, 208, 32, &format!("entered per week: {entered:?}")))
                " completed every step: "
                (charts::sparkline(&converted, 208, 32, &format!("completed per week: {converted:?}")))
            }
        }
        @if let Some(reached) = report.get("reached").and_then(Value::as_array) {
            @for (i, ids) in reached.iter().enumerate() {
                @let ids: Vec<String> = ids.as_array().into_iter().flatten().map(text).collect();
                @if !ids.is_empty() {
                    details {
                        summary {
                            @if i + 1 == reached.len() { "Completed every step: " } @else { "Stopped at step " (i + 1) ": " }
                            (ids.len()) " shown"
                        }
                        ul.ids { @for id in &ids { li { a href=(format!("/profiles/{}", url_encode(id))) { (id) } } } }
                    }
                }
            }
        } @else {
            p.hint { "Your role sees the numbers, not the profiles behind them." }
        }
    }
}

fn experiment_result(readout: &Value) -> Markup {
    let variants = readout["variants"].as_array().cloned().unwrap_or_default();
    let rows: Vec<(String, f64, f64, f64)> = variants
        .iter()
        .filter_map(|v| {
            let f = v.get("frequentist").filter(|f| !f.is_null())?;
            Some((text(&v["variant"]), f["lift"].as_f64()?, f["ci"][0].as_f64()?, f["ci"][1].as_f64()?))
        })
        .collect();
    html! {
        h3 { "Experiment " (text(&readout["experiment"])) }
        p { (text(&readout["metric"])) @if readout["cuped"] == true { " (CUPED)" } "; control: " (text(&readout["control"])) }
        @if !rows.is_empty() { (charts::intervals(&rows, "lift against control with 95% intervals")) }
        div.scroll { table.wide {
            thead { tr { th scope="col" { "Variant" } th scope="col" .num { "Profiles" } th scope="col" .num { "Mean" } th scope="col" { "Lift [95%]" } th scope="col" .num { "p" } th scope="col" { "Sequential [95%]" } th scope="col" .num { "Chance to win" } } }
            tbody {
                @for v in &variants {
                    @let f = &v["frequentist"];
                    @let s = &v["sequential"];
                    tr {
                        td { (text(&v["variant"])) }
                        td.num { (text(&v["profiles"])) }
                        td.num { (format!("{:.4}", v["mean"].as_f64().unwrap_or(0.0))) }
                        td { @if !f.is_null() { (format!("{:+.2}% [{:+.2}%, {:+.2}%]", pct(&f["lift"]), pct(&f["ci"][0]), pct(&f["ci"][1]))) } @else { (text(&v["error"])) } }
                        td.num { @if !f.is_null() { (format!("{:.4}", f["p_value"].as_f64().unwrap_or(1.0))) } }
                        td { @if !s.is_null() { (format!("[{:+.2}%, {:+.2}%]", pct(&s["ci"][0]), pct(&s["ci"][1]))) } }
                        td.num { @if !v["bayesian"].is_null() { (format!("{:.1}%", pct(&v["bayesian"]["chance_to_win"]))) } }
                    }
                }
            }
        } }
        @for v in &variants {
            @let ids: Vec<String> = v["sample"].as_array().into_iter().flatten().map(text).collect();
            @if !ids.is_empty() {
                details {
                    summary { "Profiles in " (text(&v["variant"])) ": " (ids.len()) " shown" }
                    ul.ids { @for id in &ids { li { a href=(format!("/profiles/{}", url_encode(id))) { (id) } } } }
                }
            }
        }
        @if readout["sample_ratio_p"].as_f64().is_some_and(|p| p < 0.001) {
            p.error role="alert" { "The split across variants is unlikely by chance (p " (text(&readout["sample_ratio_p"])) "): check assignment before trusting this." }
        }
        @match &readout["exposed_to_several"] {
            Value::Array(ids) if !ids.is_empty() => p { (ids.len()) " profile(s) saw more than one variant and are left out." },
            Value::Number(n) if n.as_u64() != Some(0) => p { (n) " profile(s) saw more than one variant and are left out." },
            _ => {}
        }
    }
}

fn pct(v: &Value) -> f64 {
    v.as_f64().unwrap_or(0.0) * 100.0
}
