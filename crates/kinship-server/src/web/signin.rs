//! Signing in (a user name and password, or an API token) and out.

use super::session::{cookie, session_cookie, set_cookie, SignedIn, SESSION_COOKIE, SIGNIN_COOKIE};
use super::{check_csrf, PageError};
use crate::state::AppState;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use maud::{html, DOCTYPE};
use serde::Deserialize;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;

#[derive(Deserialize)]
pub struct Next {
    next: Option<String>,
}

#[derive(Deserialize)]
pub struct Credentials {
    #[serde(default)]
    name: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    token: String,
    csrf: String,
    next: Option<String>,
}

/// Where to go after signing in: only a path on this site.
fn local_path(next: Option<&str>) -> &str {
    next.filter(|n| n.starts_with('/') && !n.starts_with("//") && !n.contains('\\')).unwrap_or("/")
}

fn page(state: &AppState, next: Option<&str>, error: Option<&str>, status: StatusCode) -> Response {
    let csrf = crate::auth::new_secret("");
    let body = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "Sign in · Kinship" }
                link rel="stylesheet" href="/assets/app.css";
            }
            body {
                main #main .narrow .signin {
                    h1 { "Kinship" }
                    p { "Sign in with your user name and password, or with an API token." }
                    @if let Some(error) = error { p.error role="alert" { (error) } }
                    form method="post" action="/signin" {
                        input type="hidden" name="csrf" value=(csrf);
                        input type="hidden" name="next" value=(local_path(next));
                        fieldset {
                            legend { "User name and password" }
                            label for="name" { "User name" }
                            input #name name="name" type="text" autocomplete="username" autocapitalize="none" spellcheck="false";
                            label for="password" { "Password" }
                            input #password name="password" type="password" autocomplete="current-password";
                        }
                        fieldset {
                            legend { "Or an API token" }
                            label for="token" { "API token" }
                            input #token name="token" type="password" autocomplete="off" spellcheck="false";
                        }
                        button.primary type="submit" { "Sign in" }
                    }
                }
            }
        }
    };
    let mut response = (status, body).into_response();
    if let Ok(value) = set_cookie(state, SIGNIN_COOKIE, &csrf, 3600).parse() {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

pub async fn form(State(state): State<Arc<AppState>>, Query(q): Query<Next>) -> Response {
    page(&state, q.next.as_deref(), None, StatusCode::OK)
}

pub async fn submit(
    State(state): State<Arc<AppState>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<Credentials>,
) -> Response {
    let next = form.next.as_deref();
    // The sign-in form has no session yet: its CSRF value must equal the one in its cookie.
    if cookie(&headers, SIGNIN_COOKIE).is_none_or(|c| c != form.csrf) {
        return page(&state, next, Some("The form was out of date; please sign in again."), StatusCode::FORBIDDEN);
    }
    let ip = addr.ip();
    if let Some(retry) = state.auth_failures.blocked(ip) {
        return page(&state, next, Some(&format!("Too many failed sign-ins; try again in {retry} s.")), StatusCode::TOO_MANY_REQUESTS);
    }
    let found = match identify(&state, &form).await {
        Ok(found) => found,
        Err(e) => return e.into_response(),
    };
    let Some((actor, name, role, token_hash)) = found else {
        state.auth_failures.failed(ip);
        return page(&state, next, Some("Unknown user name, wrong password or unknown token."), StatusCode::UNAUTHORIZED);
    };
    if state.roles.get(&role).is_none() {
        return page(&state, next, Some(&format!("Your role `{role}` is not defined in kinship.toml.")), StatusCode::FORBIDDEN);
    }
    let signin = kinship_pipeline::governance::audit_event(&actor, "signin", None, Some("POST /signin"), json!({ "role": role.clone() }));
    if !state.audit.record(signin).await {
        return page(&state, next, Some("The audit log cannot be written; try again later."), StatusCode::SERVICE_UNAVAILABLE);
    }
    let id = state.sessions.start(actor.clone(), name, role, token_hash);
    let mut response = Redirect::to(local_path(next)).into_response();
    let headers = response.headers_mut();
    for value in [session_cookie(&state, &id), set_cookie(&state, SIGNIN_COOKIE, "", 0)] {
        if let Ok(value) = value.parse() {
            headers.append(header::SET_COOKIE, value);
        }
    }
    response
}

/// (actor, display name, role) of valid credentials.
/// Who signs in: (actor, name, role, and for a token its stored hash).
type Identity = (String, String, String, Option<String>);

async fn identify(state: &Arc<AppState>, form: &Credentials) -> Result<Option<Identity>, PageError> {
    if !form.token.trim().is_empty() {
        let hash = crate::auth::hash_secret(form.token.trim());
        return Ok(state.token(form.token.trim()).await?.map(|t| (format!("token:{}", t.name), t.name, t.role, Some(hash))));
    }
    if form.name.is_empty() || form.password.is_empty() {
        return Ok(None);
    }
    let (name, password) = (form.name.clone(), form.password.clone());
    // Hashing is deliberately slow: it runs on a blocking thread.
    let user = state
        .read(move |s| {
            let user = s.user(&name)?;
            // An unknown name costs as much as a wrong password, so timing does not tell which names exist.
            let hash = user.as_ref().map_or_else(|| unknown_user_hash().as_str(), |u| u.password_hash.as_str());
            let matches = crate::auth::verify_password(&password, hash);
            Ok::<_, kinship_store::StoreError>(user.filter(|_| matches))
        })
        .await?;
    Ok(user.map(|u| (format!("user:{}", u.name), u.name, u.role, None)))
}

/// The hash an unknown user's password is checked against: of a random password.
fn unknown_user_hash() -> &'static String {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| crate::auth::hash_password(&crate::auth::new_secret("")))
}

#[derive(Deserialize)]
pub struct SignOut {
    csrf: String,
}

pub async fn sign_out(State(state): State<Arc<AppState>>, user: SignedIn, Form(form): Form<SignOut>) -> Result<Response, PageError> {
    check_csrf(&user.session, &form.csrf)?;
    state.sessions.end(&user.id);
    let mut response = Redirect::to("/signin").into_response();
    if let Ok(value) = set_cookie(&state, SESSION_COOKIE, "", 0).parse() {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    Ok(response)
}
