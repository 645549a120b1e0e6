//! The web UI at `/`: server-rendered HTML (maud) with one small embedded script for what
//! must react while typing (search, segment preview). Every page acts as the signed-in
//! person's role by calling the REST API's own handlers with a [`Caller`] built from the
//! session, so what a page shows, hides, masks and audits is exactly what the API does.

mod accounts;
mod cases;
mod charts;
mod connection_editor;
mod connections;
mod deals;
mod measures;
mod pages;
mod profile;
mod segments;
pub mod session;
mod signin;
mod success;
mod tasks;

use crate::http::{ApiError, Caller};
use crate::state::AppState;
use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use kinship_policy::Capability;
use maud::{html, Markup, DOCTYPE};
use serde_json::Value;
use session::Session;
use std::sync::Arc;

pub use session::Sessions;

pub fn routes(max_upload_bytes: usize) -> Router<Arc<AppState>> {
    Router::new()
        .route("/", get(pages::dashboard))
        .route("/signin", get(signin::form).post(signin::submit))
        .route("/signout", post(signin::sign_out))
        .route("/search", get(pages::search))
        .route("/search/results", get(pages::search_results))
        .route("/profiles/{id}", get(profile::show))
        .route("/profiles/{id}/split", post(profile::split))
        .route("/segments", get(segments::list).post(segments::create))
        .route("/segments/preview", post(segments::preview))
        .route("/segments/{name}", get(segments::show))
        .route("/segments/{name}/members.csv", get(segments::export_csv))
        .route("/connections", get(connections::list))
        .route("/connections/{name}/switch", post(connections::switch))
        .route("/connections/{name}/run", post(connections::run))
        .route("/connections/{name}/write-key", post(connections::new_write_key))
        .route(
            "/connections/new",
            get(connection_editor::new_form).post(connection_editor::suggest).layer(axum::extract::DefaultBodyLimit::max(max_upload_bytes)),
        )
        .route("/connections/save", post(connection_editor::save))
        .route("/connections/preview", post(connection_editor::live_preview))
        .route("/connections/{name}/edit", get(connection_editor::edit_form))
        .route("/connections/{name}/delete", post(connection_editor::delete))
        .route("/cases", get(cases::queue))
        .route("/cases/{source}/{number}", get(cases::show))
        .route("/cases/{source}/{number}/reply", post(cases::reply))
        .route("/cases/{source}/{number}/update", post(cases::update))
        .route("/profiles/{id}/cases", post(cases::open))
        .route("/deals", get(deals::board))
        .route("/deals/{source}/{id}/move", post(deals::move_deal))
        .route("/profiles/{id}/deals", post(deals::open))
        .route("/accounts", get(accounts::list))
        .route("/accounts/{id}", get(accounts::show))
        .route("/tasks", get(tasks::list))
        .route("/tasks/{id}", get(tasks::show))
        .route("/tasks/{id}/claim", post(tasks::claim))
        .route("/tasks/{id}/done", post(tasks::done))
        .route("/flows", get(tasks::flows).post(tasks::submit_flow))
        .route("/measures", get(measures::page).post(measures::submit))
        .route("/measures/funnels/{name}", get(measures::saved))
        .route("/success", get(success::page).post(success::submit))
        .route("/success/alerts/{id}/snooze", axum::routing::post(success::snooze))
        .route("/audit", get(pages::audit))
        .route("/assets/app.css", get(|| async { asset("text/css; charset=utf-8", include_str!("assets/app.css")) }))
        .route("/assets/app.js", get(|| async { asset("text/javascript; charset=utf-8", include_str!("assets/app.js")) }))
        .layer(axum::middleware::from_fn(security_headers))
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "no-cache")], body).into_response()
}

/// Scripts and styles only from this server, no framing, no sniffing, nothing cached.
async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'",
        ),
    );
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// A page that could not be shown: its status and reason, as HTML.
pub struct PageError(StatusCode, String);

impl From<ApiError> for PageError {
    fn from(e: ApiError) -> Self {
        PageError(e.0, e.1)
    }
}

impl From<kinship_store::StoreError> for PageError {
    fn from(e: kinship_store::StoreError) -> Self {
        PageError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let body = html! {
            (DOCTYPE)
            html lang="en" {
                head { meta charset="utf-8"; meta name="viewport" content="width=device-width, initial-scale=1"; title { "Kinship: error" } link rel="stylesheet" href="/assets/app.css"; }
                body { main #main .narrow { h1 { "Cannot show this" } p.error role="alert" { (self.1) } p { a href="/" { "Back to the dashboard" } } } }
            }
        };
        (self.0, body).into_response()
    }
}

/// A CSRF value that is not the session's ends the request.
fn check_csrf(session: &Session, submitted: &str) -> Result<(), PageError> {
    if session.csrf_matches(submitted) {
        Ok(())
    } else {
        Err(PageError(StatusCode::FORBIDDEN, "the form was out of date or not sent by this site; reload the page and try again".into()))
    }
}

/// What a page shows after saving through an API handler: `saved` when it succeeded, else
/// the handler's error message.
async fn save_outcome(result: Result<Response, ApiError>, saved: Markup) -> Markup {
    match result {
        Ok(response) if response.status().is_success() => saved,
        Ok(response) => {
            let body = axum::body::to_bytes(response.into_body(), 64 * 1024).await.unwrap_or_default();
            let error: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            html! { p.error role="alert" { (text(&error["error"])) } }
        }
        Err(e) => html! { p.error role="alert" { (e.1) } },
    }
}

/// Navigation entries: path, label, the capability the page needs.
const NAV: &[(&str, &str, Capability)] = &[
    ("/", "Dashboard", Capability::ReadSources),
    ("/search", "Search", Capability::SearchProfiles),
    ("/segments", "Segments", Capability::ReadSegments),
    ("/cases", "Cases", Capability::ReadTasks),
    ("/accounts", "Accounts", Capability::SearchProfiles),
    ("/deals", "Deals", Capability::ReadDeals),
    ("/tasks", "Tasks", Capability::ReadTasks),
    ("/flows", "Flows", Capability::ReadFlows),
    ("/measures", "Measures", Capability::ReadSegments),
    ("/success", "Customer success", Capability::ReadSegments),
    ("/connections", "Connections", Capability::ReadSources),
    ("/audit", "Audit", Capability::ReadAudit),
];

/// The frame of every signed-in page: skip link, navigation for what the role may use, the
/// person and a sign-out button.
fn layout(caller: &Caller, session: &Session, current: &str, title: &str, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="csrf-token" content=(session.csrf);
                title { (title) " · Kinship" }
                link rel="stylesheet" href="/assets/app.css";
                script src="/assets/app.js" defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/" { "Kinship" }
                    nav aria-label="Main" {
                        ul {
                            @for (path, label, needs) in NAV {
                                @if caller.policy().allows(*needs) {
                                    li { a href=(path) aria-current=[(*path == current).then_some("page")] { (label) } }
                                }
                            }
                        }
                    }
                    div.who {
                        span { (session.name) " " span.role { (session.role) } }
                        form method="post" action="/signout" {
                            input type="hidden" name="csrf" value=(session.csrf);
                            button.link type="submit" { "Sign out" }
                        }
                    }
                }
                main #main tabindex="-1" { h1 { (title) } (content) }
            }
        }
    }
}

/// A JSON value as short text for a table cell.
fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Unix milliseconds as `YYYY-MM-DD HH:MM` UTC.
fn time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map_or_else(|| ms.to_string(), |t| t.format("%Y-%m-%d %H:%M").to_string())
}

/// Percent-encodes a query or path component.
pub fn url_encode(raw: &str) -> String {
    raw.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn url_encoding() {
        assert_eq!(super::url_encode("/profiles/p 1?x=é"), "%2Fprofiles%2Fp%201%3Fx%3D%C3%A9");
    }
}
