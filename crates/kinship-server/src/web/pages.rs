//! The dashboard, search and the audit viewer.

use super::session::SignedIn;
use super::{charts, layout, text, time, url_encode, PageError};
use crate::api::{self, ProfileQuery};
use crate::governance_api::{self, AuditQuery};
use crate::http::Caller;
use crate::state::AppState;
use axum::extract::{Query, State};
use axum::Json;
use kinship_policy::Capability;
use kinship_store::StoreError;
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::Value;
use std::sync::Arc;

/// The events chart covers this many days.
const CHART_DAYS: i64 = 7;
const HOUR_MS: i64 = 3_600_000;

pub async fn dashboard(State(state): State<Arc<AppState>>, user: SignedIn) -> Result<Markup, PageError> {
    let caller = user.session.caller(&state);
    let Json(sources) = api::list_sources(caller.clone(), State(state.clone())).await?;
    let (stats, hours, window_end) = state
        .read(|s| {
            let stats = s.stats()?;
            // The last days up to now, or up to the newest event when the data is older.
            let now = chrono::Utc::now().timestamp_millis();
            let end = s.newest_record_time()?.map_or(now, |newest| newest.min(now)) / HOUR_MS * HOUR_MS + HOUR_MS;
            let start = end - CHART_DAYS * 24 * HOUR_MS;
            let counts = s.records_per_hour(start, end)?;
            let hours: Vec<(i64, u64)> = (0..CHART_DAYS * 24)
                .map(|i| start + i * HOUR_MS)
                .map(|h| (h, counts.iter().find(|c| c.0 == h).map_or(0, |c| c.1)))
                .collect();
            Ok::<_, StoreError>((stats, hours, end))
        })
        .await?;
    let sources = sources["sources"].as_array().cloned().unwrap_or_default();
    let sum = |field: &str| sources.iter().filter_map(|s| s["last_run"][field].as_u64()).sum::<u64>();
    let merge_rate =
        if stats.records > 0 { 100.0 * (stats.records - stats.profiles.min(stats.records)) as f64 / stats.records as f64 } else { 0.0 };
    let total_events: u64 = hours.iter().map(|h| h.1).sum();
    let (lag_records, lag_seconds) = state.metrics.lag();
    let content = html! {
        section.cards aria-label="Totals" {
            div.card { span.label { "Profiles" } span.value { (stats.profiles) } }
            div.card { span.label { "Records" } span.value { (stats.records) } }
            div.card { span.label { "Merge rate" } span.value { (format!("{merge_rate:.1} %")) } span.hint { "of records joined to another" } }
            div.card { span.label { "Rejected rows" } span.value { (sum("rejected")) } span.hint { "in each source's last run" } }
            div.card { span.label { "Suppressed rows" } span.value { (sum("suppressed")) } span.hint { "erased people, in last runs" } }
            div.card {
                span.label { "Resolution lag" }
                span.value { (format!("{lag_seconds:.1} s")) }
                span.hint { (lag_records) " records waiting to be resolved" }
            }
        }
        section aria-labelledby="events-title" {
            h2 #events-title { "Events per hour" }
            p.hint { (total_events) " events in the " (CHART_DAYS) " days to " (time(window_end)) " UTC" }
            (charts::hourly_bars(&hours, &format!("Events per hour over {CHART_DAYS} days: {total_events} in all")))
        }
        section aria-labelledby="sources-title" {
            h2 #sources-title { "Records per source" }
            table {
                thead { tr { th scope="col" { "Source" } th scope="col" .num { "Records" } th scope="col" { "" } } }
                tbody {
                    @let most = sources.iter().filter_map(|s| s["records"].as_u64()).max().unwrap_or(1).max(1);
                    @for s in &sources {
                        @let n = s["records"].as_u64().unwrap_or(0);
                        tr {
                            td { (text(&s["name"])) }
                            td.num { (n) }
                            td.meter { meter min="0" max=(most) value=(n) aria-label=(format!("{} records", text(&s["name"]))) { (n) } }
                        }
                    }
                }
            }
        }
    };
    Ok(layout(&caller, &user.session, "/", "Dashboard", content))
}

#[derive(Deserialize)]
pub struct SearchText {
    #[serde(default)]
    q: String,
}

pub async fn search(State(state): State<Arc<AppState>>, user: SignedIn, Query(q): Query<SearchText>) -> Result<Markup, PageError> {
    let caller = user.session.caller(&state);
    caller.require(Capability::SearchProfiles)?;
    let results = results(caller.clone(), &state, &q.q).await?;
    let content = html! {
        form.search role="search" method="get" action="/search" {
            label for="q" { "Name, email, phone or identifier (KIND:VALUE)" }
            div.row {
                input #q type="search" name="q" value=(q.q) autocomplete="off" spellcheck="false" data-live="/search/results" data-target="results";
                button type="submit" { "Search" }
            }
        }
        div #results aria-live="polite" { (results) }
    };
    Ok(layout(&caller, &user.session, "/search", "Search", content))
}

/// Just the results, for search as you type.
pub async fn search_results(State(state): State<Arc<AppState>>, user: SignedIn, Query(q): Query<SearchText>) -> Result<Markup, PageError> {
    results(user.session.caller(&state), &state, &q.q).await
}

/// Which lookup a search box's text is: an identifier, an email, a phone number or words.
fn lookup(text: &str) -> ProfileQuery {
    let text = text.trim().to_string();
    let digits = text.chars().filter(char::is_ascii_digit).count();
    let phone_like = text.chars().all(|c| c.is_ascii_digit() || " +-().".contains(c));
    let mut q = ProfileQuery { limit: Some(20), ..Default::default() };
    if text.contains('@') {
        q.email = Some(text);
    } else if phone_like && digits >= 6 {
        q.phone = Some(text);
    } else if text.split_once(':').is_some_and(|(kind, value)| !kind.contains(' ') && !value.is_empty()) {
        q.identifier = Some(text);
    } else {
        q.q = Some(text);
    }
    q
}

async fn results(caller: Caller, state: &Arc<AppState>, text: &str) -> Result<Markup, PageError> {
    if text.trim().chars().count() < 2 {
        return Ok(html! { p.hint { "Type at least two characters." } });
    }
    let found = match api::list_profiles(caller, State(state.clone()), Query(lookup(text))).await {
        Ok(Json(found)) => found,
        // A malformed email or phone is a question with no answer, not a failure.
        Err(e) if e.0 == axum::http::StatusCode::BAD_REQUEST => return Ok(html! { p.hint { (e.1) } }),
        Err(e) => return Err(e.into()),
    };
    let profiles = found["profiles"].as_array().cloned().unwrap_or_default();
    Ok(html! {
        @if profiles.is_empty() {
            p.hint { "No customer matches " q { (text) } "." }
        } @else {
            p.hint { (profiles.len()) " customer(s)" }
            ul.results {
                @for p in &profiles {
                    @let traits = &p["traits"];
                    li {
                        a href=(format!("/profiles/{}", url_encode(p["id"].as_str().unwrap_or_default()))) {
                            span.name { (display_name(traits, p["id"].as_str().unwrap_or_default())) }
                        }
                        span.contact { (text_of(traits, "email")) " " (text_of(traits, "phone")) }
                        span.hint { (p["records"]) " record(s)" }
                    }
                }
            }
        }
    })
}

fn text_of(traits: &Value, name: &str) -> String {
    text(&traits[name])
}

/// A person's name from their traits, or the profile id.
pub fn display_name(traits: &Value, id: &str) -> String {
    let name = [text_of(traits, "first_name"), text_of(traits, "last_name")].join(" ").trim().to_string();
    let name = if name.is_empty() { text_of(traits, "name") } else { name };
    if name.is_empty() {
        id.to_string()
    } else {
        name
    }
}

/// Audit entries per page.
const AUDIT_PAGE: u64 = 100;

pub async fn audit(State(state): State<Arc<AppState>>, user: SignedIn, Query(q): Query<AuditQuery>) -> Result<Markup, PageError> {
    let caller = user.session.caller(&state);
    caller.require(Capability::ReadAudit)?;
    let (actor, profile) = (q.actor.clone().unwrap_or_default(), q.profile.clone().unwrap_or_default());
    // The newest page first: the API pages oldest first, after a sequence number.
    let newest = state.read(|s| Ok::<_, StoreError>(s.last_audit()?.map_or(0, |r| r.seq))).await?;
    let after = q.after.unwrap_or_else(|| newest.saturating_sub(AUDIT_PAGE));
    let query = AuditQuery {
        actor: q.actor.filter(|a| !a.is_empty()),
        profile: q.profile.filter(|p| !p.is_empty()),
        limit: Some(AUDIT_PAGE as usize),
        after: Some(after),
        since: q.since,
    };
    let Json(page) = governance_api::list_audit(caller.clone(), State(state.clone()), Query(query)).await?;
    let entries = page["entries"].as_array().cloned().unwrap_or_default();
    let filters = format!("&actor={}&profile={}", url_encode(&actor), url_encode(&profile));
    let content = html! {
        form.filters method="get" action="/audit" {
            div { label for="actor" { "Actor" } input #actor name="actor" value=(actor) placeholder="user:alice"; }
            div { label for="profile" { "Profile" } input #profile name="profile" value=(profile); }
            button type="submit" { "Filter" }
        }
        div.scroll {
            table.audit {
                thead { tr { th scope="col" { "#" } th scope="col" { "When (UTC)" } th scope="col" { "Who" } th scope="col" { "Action" } th scope="col" { "Profile" } th scope="col" { "Route" } th scope="col" { "Detail" } } }
                tbody {
                    @for e in entries.iter().rev() {
                        tr {
                            td { (text(&e["seq"])) }
                            td { (e["at_ms"].as_i64().map(time).unwrap_or_default()) }
                            td { (text(&e["actor"])) }
                            td { (text(&e["action"])) }
                            td { @if let Some(p) = e["profile"].as_str() { a href=(format!("/profiles/{}", url_encode(p))) { (p) } } }
                            td { (text(&e["route"])) }
                            td { code { (text(&e["detail"])) } }
                        }
                    }
                }
            }
        }
        nav.pager aria-label="Audit pages" {
            @if after + AUDIT_PAGE < newest { a href=(format!("/audit?after={}{filters}", after + AUDIT_PAGE)) { "Newer entries" } }
            @if after > 0 { a href=(format!("/audit?after={}{filters}", after.saturating_sub(AUDIT_PAGE))) { "Older entries" } }
        }
    };
    Ok(layout(&caller, &user.session, "/audit", "Audit log", content))
}
