//! The customer 360 page and the split button.

use super::charts;
use super::pages::display_name;
use super::session::SignedIn;
use super::{check_csrf, layout, text, url_encode, PageError};
use crate::api::{self, EventPage, SplitRequest};
use crate::state::AppState;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Form, Json};
use kinship_policy::Capability;
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeSet;
use std::sync::Arc;

/// Most events the timeline shows (the API's largest page).
const TIMELINE_EVENTS: usize = 500;

#[derive(Deserialize)]
pub struct Filters {
    kind: Option<String>,
    source: Option<String>,
    /// Set after a split: the record split off and where it went.
    split: Option<String>,
    into: Option<String>,
}

/// The kind of an event for its icon and the timeline filter, from its name.
fn event_kind(event: &Value) -> &'static str {
    if event["type"] == "segment" {
        return "segment";
    }
    let name = event["event"].as_str().unwrap_or_default().to_lowercase();
    let kinds =
        [("order", "order"), ("invoice", "invoice"), ("ship", "shipment"), ("ticket", "ticket"), ("email", "email"), ("survey", "survey")];
    if let Some((_, kind)) = kinds.iter().find(|(word, _)| name.contains(word)) {
        return kind;
    }
    match name.as_str() {
        "nps response" => "survey",
        "delivered" | "opened" | "clicked" | "bounced" | "sent" | "unsubscribed" | "subscribed" => "email",
        _ => "other",
    }
}

/// A 16 × 16 icon per event kind, drawn as SVG paths.
fn icon(kind: &str) -> Markup {
    let path = match kind {
        "order" => "M1 2h2l2 8h8l2-6H4.5M6 13.5a1 1 0 1 0 0.01 0M12 13.5a1 1 0 1 0 0.01 0",
        "invoice" => "M3 1h7l3 3v11H3zM5.5 6h5M5.5 9h5M5.5 12h3",
        "shipment" => "M1 5l7-3 7 3v7l-7 3-7-3zM1 5l7 3 7-3M8 8v7",
        "ticket" => "M2 3h12v8H7l-3 3v-3H2z",
        "email" => "M1 3h14v10H1zM1 3l7 6 7-6",
        "survey" => "M8 1l2 5h5l-4 3 1.5 5L8 11l-4.5 3L5 9 1 6h5z",
        "segment" => "M8 1a7 7 0 1 0 0.01 0M8 5a3 3 0 1 0 0.01 0",
        _ => "M8 5a3 3 0 1 0 0.01 0",
    };
    html! { svg.icon width="16" height="16" viewBox="0 0 16 16" aria-hidden="true" focusable="false" { path d=(path) {} } }
}

pub async fn show(
    State(state): State<Arc<AppState>>,
    user: SignedIn,
    Path(id): Path<String>,
    Query(filters): Query<Filters>,
) -> Result<Markup, PageError> {
    let caller = user.session.caller(&state);
    let page = EventPage { limit: Some(TIMELINE_EVENTS), offset: None };
    let Json(doc) = api::get_profile(caller.clone(), State(state.clone()), Path(id.clone()), Query(page)).await?;
    let explain = if caller.policy().allows(Capability::ExplainProfiles) {
        Some(api::explain_profile(caller.clone(), State(state.clone()), Path(id.clone())).await?.0)
    } else {
        None
    };
    let may_split = caller.policy().allows(Capability::SplitMerge);
    let open_tasks = super::tasks::open_for_profile(&state, &caller, &id).await?;
    let last_visit = state.sessions.visit(&user.session.actor, &id, kinship_pipeline::now_ms());
    let since = last_visit.and_then(chrono::DateTime::from_timestamp_millis).map(|t| t.to_rfc3339());
    let Json(brief) =
        api::profile_briefing(caller.clone(), State(state.clone()), Path(id.clone()), Query(api::BriefingQuery { since })).await?;
    let name = display_name(&doc["traits"], &id);
    let empty = Vec::new();
    let events = doc["events"].as_array().unwrap_or(&empty);
    let kinds: BTreeSet<&str> = events.iter().map(event_kind).collect();
    let sources: BTreeSet<&str> = events.iter().filter_map(|e| e["source"].as_str()).collect();
    let kind_filter = filters.kind.as_deref().filter(|k| !k.is_empty());
    let source_filter = filters.source.as_deref().filter(|s| !s.is_empty());
    let shown: Vec<&Value> = events
        .iter()
        .filter(|e| kind_filter.is_none_or(|k| event_kind(e) == k))
        .filter(|e| source_filter.is_none_or(|s| e["source"].as_str() == Some(s)))
        .collect();
    let content = html! {
        @if let (Some(record), Some(into)) = (&filters.split, &filters.into) {
            p.notice role="status" {
                "Split " code { (record) } " off: it is now profile "
                a href=(format!("/profiles/{}", url_encode(into))) { (into) } ". This profile keeps the other records."
            }
        }
        p.hint { "Profile " code { (id) } }
        (briefing(&brief))
        @if caller.policy().allows(Capability::WorkTasks) && state.config().service.source.is_some() {
            details.open-case {
                summary { "Open a case for this customer" }
                form.stack method="post" action=(format!("/profiles/{}/cases", url_encode(&id))) {
                    input type="hidden" name="csrf" value=(user.session.csrf);
                    label { "Subject" input type="text" name="subject" required maxlength="300"; }
                    label { "Priority" select name="priority" {
                        @for p in ["low", "normal", "high", "urgent"] { option value=(p) selected[p == "normal"] { (p) } }
                    } }
                    div.actions { button type="submit" { "Open case" } }
                }
            }
        }
        @if caller.policy().allows(Capability::WorkDeals) && state.config().service.source.is_some() {
            details.open-case {
                summary { "Open a deal with this customer" }
                form.stack method="post" action=(format!("/profiles/{}/deals", url_encode(&id))) {
                    input type="hidden" name="csrf" value=(user.session.csrf);
                    label { "Name" input type="text" name="name" required maxlength="200"; }
                    label { "Amount" input type="text" name="amount" required inputmode="decimal"; }
                    label { "Currency" input type="text" name="currency" required value="USD" maxlength="3" pattern="[A-Za-z]{3}"; }
                    label { "Expected close" input type="date" name="close" required; }
                    div.actions { button type="submit" { "Open deal" } }
                }
            }
        }
        div.grid {
            section aria-labelledby="traits-title" {
                h2 #traits-title { "Traits" }
                (traits_table(&doc))
            }
            section aria-labelledby="ids-title" {
                h2 #ids-title { "Identifiers" }
                table {
                    thead { tr { th scope="col" { "Kind" } th scope="col" { "Value" } th scope="col" { "Source" } } }
                    tbody {
                        @for ((kind, value), sources) in identifiers_with_sources(&doc["identifiers"]) {
                            tr { td { (kind) } td { (value) } td { (sources.join(", ")) } }
                        }
                    }
                }
            }
            section aria-labelledby="consent-title" {
                h2 #consent-title { "Consent" }
                dl.pairs {
                    @for (purpose, c) in doc["consent"].as_object().into_iter().flatten() {
                        dt { (purpose) }
                        dd { @if c["granted"] == true { "granted" } @else { "not granted" } span.hint { " (" (text(&c["source"])) ")" } }
                    }
                }
            }
            section aria-labelledby="segments-title" {
                h2 #segments-title { "Segments and computed traits" }
                @let segments = doc["segments"].as_array().unwrap_or(&empty);
                @if segments.is_empty() { p.hint { "In no segment." } }
                ul.tags { @for s in segments { li { a href=(format!("/segments/{}", url_encode(&text(s)))) { (text(s)) } } } }
                dl.pairs { @for (n, v) in doc["computed"].as_object().into_iter().flatten() { dt { (n) } dd { (text(v)) } } }
            }
            @if let Some(health) = doc["health"].as_object() { (health_section(health)) }
        }
        @if let Some(explain) = &explain {
            (evidence(&id, explain, may_split, &user.session.csrf))
        }
        @if let Some(tasks) = &open_tasks { (tasks) }
        section aria-labelledby="timeline-title" {
            h2 #timeline-title { "Timeline" }
            form.filters method="get" action=(format!("/profiles/{}", url_encode(&id))) {
                div {
                    label for="kind" { "Kind" }
                    select #kind name="kind" {
                        option value="" { "All kinds" }
                        @for k in &kinds { option value=(k) selected[kind_filter == Some(*k)] { (k) } }
                    }
                }
                div {
                    label for="source" { "Source" }
                    select #source name="source" {
                        option value="" { "All sources" }
                        @for s in &sources { option value=(s) selected[source_filter == Some(*s)] { (s) } }
                    }
                }
                button type="submit" { "Filter" }
            }
            p.hint { (shown.len()) " of " (text(&doc["events_total"])) " event(s)" }
            ol.timeline {
                @for e in &shown {
                    @let kind = event_kind(e);
                    // A task's facts link here by record.
                    li class=(format!("event {kind}")) id=[e["record_key"].as_str().map(|k| format!("record-{}-{}", url_encode(&text(&e["source"])), url_encode(k)))] {
                        (icon(kind))
                        span.what { (text(&e["event"])) }
                        span.kind { (kind) }
                        span.source { (text(&e["source"])) }
                        time datetime=(text(&e["timestamp"])) { (text(&e["timestamp"]).replace('T', " ").get(..16).unwrap_or_default()) }
                        @if let Some(line) = e["line"].as_str() { span.line { (line) } }
                        @if let Some(props) = e["properties"].as_object().filter(|p| !p.is_empty()) {
                            details.props { summary { "Details" } @for (k, v) in props { span { (k) ": " (text(v)) } " " } }
                        }
                    }
                }
            }
        }
    };
    Ok(layout(&caller, &user.session, "", &name, content))
}

/// The briefing first: what to know before talking to this customer.
fn briefing(brief: &Value) -> Markup {
    let empty = Vec::new();
    let orders = brief["orders"].as_array().unwrap_or(&empty);
    let open_cases = brief["cases"]["open"].as_array().unwrap_or(&empty);
    let unpaid = brief["unpaid_invoices"].as_array().unwrap_or(&empty);
    let money = |v: &Value| v.as_f64().map_or_else(String::new, |a| format!("{a:.2}"));
    html! {
        section.briefing aria-labelledby="briefing-title" {
            h2 #briefing-title { "Briefing" span.hint { " as of " (text(&brief["as_of"]).get(..10).unwrap_or_default()) } }
            @if let Some(account) = brief["account"]["id"].as_str() {
                p { "Account " a href=(format!("/accounts/{}", url_encode(account))) { (account) } }
            }
            @let summary = brief["summary"].as_array().unwrap_or(&empty);
            @if summary.is_empty() { p.hint { "No orders, invoices, cases or answers on record." } }
            ul { @for line in summary { li { (text(line)) } } }
            @let changed = &brief["changed"];
            @if changed.is_object() {
                details {
                    summary { (format!("Since your last visit ({}): {} new record(s)", text(&changed["since"]).get(..16).unwrap_or_default().replace('T', " "), text(&changed["records"]))) }
                    ul { @for l in changed["lines"].as_array().into_iter().flatten() { li { (text(&l["line"])) } } }
                }
            }
            @if !orders.is_empty() {
                div.scroll { table.wide {
                    caption { "Orders, newest first, each followed through invoice, payment and shipment" }
                    thead { tr { th scope="col" { "Order" } th scope="col" .num { "Amount" } th scope="col" { "Where it is" } } }
                    tbody { @for o in orders.iter().take(10) {
                        tr {
                            td { @if let Some(link) = o["link"].as_str() { a href=(link) rel="noreferrer" { (text(&o["number"])) } } @else { (text(&o["number"])) } }
                            td.num { (money(&o["amount"])) " " (text(&o["currency"])) }
                            td { (text(&o["summary"])) }
                        }
                    } }
                } }
            }
            @if !unpaid.is_empty() {
                p { strong { "Unpaid: " } @for (i, d) in unpaid.iter().enumerate() {
                    @if i > 0 { ", " }
                    (text(&d["number"])) " " (money(&d["amount"])) " (" (text(&d["status"])) ")"
                } }
            }
            @if !open_cases.is_empty() {
                div.scroll { table.wide.queue {
                    caption { "Open cases and their SLA clocks" }
                    thead { tr { th scope="col" { "Case" } th scope="col" { "Status" } th scope="col" { "Subject" } th scope="col" { "SLA" } } }
                    tbody { @for c in open_cases {
                        tr {
                            td { (text(&c["number"])) }
                            td { (text(&c["status"])) }
                            td { (text(&c["subject"])) }
                            td { @for k in c["sla"].as_array().into_iter().flatten().filter(|k| k["ended"].is_null()) {
                                span class=(format!("sla sla-{}", text(&k["state"]))) { (text(&k["metric"]).replace('_', " ")) ": " (text(&k["state"])) } " "
                            } }
                        }
                    } }
                } }
            }
            (documents_list(brief["documents"].as_array().unwrap_or(&empty), false))
            (deals_table(brief["deals"].as_array().unwrap_or(&empty)))
        }
    }
}

/// Each identifier once, with every source that holds it, in the document's order.
fn identifiers_with_sources(identifiers: &Value) -> Vec<((String, String), Vec<String>)> {
    let mut grouped: Vec<((String, String), Vec<String>)> = Vec::new();
    for i in identifiers.as_array().into_iter().flatten() {
        let key = (text(&i["kind"]), text(&i["value"]));
        let source = text(&i["source"]);
        match grouped.iter_mut().find(|(k, _)| *k == key) {
            Some((_, sources)) if !sources.contains(&source) => sources.push(source),
            Some(_) => {}
            None => grouped.push((key, vec![source])),
        }
    }
    grouped
}

fn traits_table(doc: &Value) -> Markup {
    html! {
        table {
            thead { tr { th scope="col" { "Trait" } th scope="col" { "Value" } th scope="col" { "Source" } } }
            tbody {
                @for (name, value) in doc["traits"].as_object().into_iter().flatten() {
                    @let from = &doc["trait_sources"][name];
                    tr {
                        th scope="row" { (name) }
                        td { (text(value)) }
                        td { (text(&from["source"])) @if let Some(key) = from["record_key"].as_str() { span.hint { " " (key) } } }
                    }
                }
            }
        }
    }
}

/// Which identifier or which field weights joined each record, and a split button per record.
fn evidence(id: &str, explain: &Value, may_split: bool, csrf: &str) -> Markup {
    let empty = Vec::new();
    let joins = explain["joins"].as_array().unwrap_or(&empty);
    let record = |r: &Value| format!("{}:{}", text(&r["source"]), text(&r["key"]));
    let records: BTreeSet<String> = joins.iter().flat_map(|j| [record(&j["left"]), record(&j["right"])]).collect();
    html! {
        section aria-labelledby="evidence-title" {
            h2 #evidence-title { "Merge evidence" }
            @if joins.is_empty() { p.hint { "One record: nothing was joined." } }
            ul.evidence {
                @for j in joins {
                    li {
                        code { (record(&j["left"])) } " ↔ " code { (record(&j["right"])) } " "
                        span.stage { (text(&j["stage"])) } " "
                        (evidence_text(&j["evidence"]))
                    }
                }
            }
            @if may_split && records.len() > 1 {
                h3 { "Split a record off" }
                form.split method="post" action=(format!("/profiles/{}/split", url_encode(id))) {
                    input type="hidden" name="csrf" value=(csrf);
                    label for="split-record" { "Record to split off" }
                    div.row {
                        select #split-record name="record" aria-describedby="split-hint" {
                            @for r in &records { option value=(r) { (r) } }
                        }
                        button.danger type="submit" { "Split off" }
                    }
                    p #split-hint .hint { "The record is never joined with the others again; this takes effect at once." }
                }
            }
        }
    }
}

fn evidence_text(evidence: &Value) -> Markup {
    if let Some(kind) = evidence["kind"].as_str() {
        return html! { "shared " (kind) @if let Some(v) = evidence["value"].as_str() { " " code { (v) } } };
    }
    let weight = |name: &str| evidence[name].as_f64().map(|v| format!("{v:.2}"));
    html! {
        @if let Some(p) = weight("probability") { "probability " (p) " " }
        @if let Some(w) = weight("match_weight") { "weight " (w) " " }
        @if let Some(fields) = evidence["fields"].as_array() {
            span.hint {
                @for f in fields { (text(&f["column"])) " " (text(&f["label"])) " " (format!("{:+.1}", f["weight"].as_f64().unwrap_or(0.0))) "; " }
            }
        }
    }
}

#[derive(Deserialize)]
pub struct SplitForm {
    csrf: String,
    record: String,
}

pub async fn split(
    State(state): State<Arc<AppState>>,
    user: SignedIn,
    Path(id): Path<String>,
    Form(form): Form<SplitForm>,
) -> Result<Response, PageError> {
    check_csrf(&user.session, &form.csrf)?;
    let caller = user.session.caller(&state);
    let record = form.record.clone();
    let Json(done) = api::split_profile(caller, State(state), Path(id), Json(SplitRequest { record: form.record })).await?;
    let into = text(&done["now_in"]);
    let stays = done["remaining_in"].as_str().map_or(into.clone(), String::from);
    Ok(Redirect::to(&format!("/profiles/{}?split={}&into={}", url_encode(&stays), url_encode(&record), url_encode(&into))).into_response())
}

/// A profile's or an account's health: per saved definition, the score and band, the context
/// that applied, the weekly line over a quarter with the trend, and each measure's part.
pub(super) fn health_section(health: &serde_json::Map<String, Value>) -> Markup {
    html! {
        @if !health.is_empty() {
            section aria-labelledby="health-title" {
                h2 #health-title { "Health" }
                @for (name, scored) in health {
                    p {
                        (name) ": " strong { (format!("{:.0}", scored["score"].as_f64().unwrap_or(0.0))) } " "
                        span class=(format!("band band-{}", text(&scored["band"]))) { (text(&scored["band"])) }
                        @if let Some(context) = scored["context"].as_str() { span.hint { " (in context: " (context) ")" } }
                    }
                    @let weekly: Vec<u64> = scored["history"].as_array().into_iter().flatten().filter_map(|h| h["score"].as_f64()).map(|v| v.round() as u64).collect();
                    @if weekly.len() > 1 {
                        p {
                            (charts::sparkline(&weekly, 160, 32, &format!("{name}: weekly scores over the last quarter, oldest first: {weekly:?}")))
                            @if let Some(trend) = scored["trend"].as_f64() {
                                span.hint { (format!(" {trend:+.0} points over four weeks")) }
                            }
                        }
                    }
                    div.scroll { table.wide {
                        caption { "Why: each measure's value, score, weight and the points it adds" }
                        thead { tr { th scope="col" { "Measure" } th scope="col" .num { "Value" } th scope="col" .num { "Score" } th scope="col" .num { "Weight" } th scope="col" .num { "Adds" } } }
                        tbody { @for m in scored["measures"].as_array().into_iter().flatten() {
                            tr {
                                td { (text(&m["name"])) }
                                td.num { (text(&m["value"])) }
                                td.num { (m["score"].as_f64().map_or("–".into(), |v| format!("{v:.0}"))) }
                                td.num { (text(&m["weight"])) }
                                td.num { (format!("{:.1}", m["contribution"].as_f64().unwrap_or(0.0))) }
                            }
                        } }
                    } }
                }
            }
        }
    }
}

/// Every commercial document in one list, newest first: kind, number (linked back to its
/// system), the normalised status beside the system's own, amount and dates; with the person
/// whose it is on an account's page.
pub(super) fn documents_list(documents: &[Value], with_person: bool) -> Markup {
    let day = |v: &Value| text(v).get(..10).unwrap_or_default().to_string();
    html! {
        @if !documents.is_empty() {
            details.documents {
                summary { "All documents (" (documents.len()) "): quotes, orders, invoices, payments, shipments, refunds" }
                div.scroll { table.wide {
                    thead { tr {
                        th scope="col" { "Kind" } th scope="col" { "Number" } th scope="col" { "Status" } th scope="col" { "In its system" }
                        th scope="col" .num { "Amount" } th scope="col" { "Date" } th scope="col" { "Due" }
                        @if with_person { th scope="col" { "Person" } }
                    } }
                    tbody { @for d in documents {
                        tr {
                            td { (text(&d["kind"])) }
                            td { @if let Some(link) = d["link"].as_str() { a href=(link) rel="noreferrer" { (text(&d["number"])) } } @else { (text(&d["number"])) } }
                            td { span class=(format!("doc doc-{}", text(&d["status"]))) { (text(&d["status"])) } }
                            td { (text(&d["system_status"])) }
                            td.num { (d["amount"].as_f64().map(|a| format!("{a:.2}")).unwrap_or_default()) " " (text(&d["currency"])) }
                            td { (day(&d["date"])) }
                            td { (day(&d["due"])) }
                            @if with_person { td { a href=(format!("/profiles/{}", url_encode(&text(&d["person"])))) { (text(&d["person"])) } } }
                        }
                    } }
                } }
            }
        }
    }
}

/// Open deals: name, stage (with days in it), amount, close date and owner.
pub(super) fn deals_table(deals: &[Value]) -> Markup {
    html! {
        @if !deals.is_empty() {
            div.scroll { table.wide {
                caption { "Open deals" }
                thead { tr { th scope="col" { "Deal" } th scope="col" { "Stage" } th scope="col" .num { "Amount" } th scope="col" { "Closes" } th scope="col" { "Owner" } } }
                tbody { @for d in deals {
                    tr {
                        td { (d["name"].as_str().map_or_else(|| text(&d["id"]), String::from)) }
                        td { (text(&d["stage"])) @if let Some(days) = d["days_in_stage"].as_u64() { span.hint { " " (days) " days" } } }
                        td.num { (d["amount"].as_f64().map(|a| format!("{a:.2}")).unwrap_or_default()) " " (text(&d["currency"])) }
                        td { (text(&d["close"])) }
                        td { (text(&d["owner"])) }
                    }
                } }
            } }
        }
    }
}
