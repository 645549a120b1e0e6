//! Adding, editing and deleting connections (admins): choose a file in the data directory,
//! upload one, or name a PostgreSQL table whose URL is in an environment variable; edit the
//! suggested mapping with a preview of mapped records and rejects; save it to kinship.toml
//! (the one place sources are defined) and run it. This process takes the new configuration
//! at once; other nodes read kinship.toml when they restart.

use super::connections::{render as render_list, Action};
use super::session::SignedIn;
use super::{check_csrf, layout, PageError};
use crate::api;
use crate::state::AppState;
use axum::extract::{Multipart, Path, State};
use axum::http::HeaderMap;
use axum::http::StatusCode;
use axum::{Form, Json};
use kinship_core::config::CONFIG_FILE;
use kinship_core::{Config, SourceConfig, SourceType};
use kinship_policy::Capability;
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::Arc;

/// Rows read for a suggestion, and for each preview.
const SAMPLE_ROWS: usize = 500;
/// Mapped records shown in a preview.
const SHOWN: usize = 5;
/// Rejects listed in a preview.
const LISTED_REJECTS: usize = 20;
/// Where uploads are kept, inside the data directory.
const UPLOADS: &str = kinship_core::config::UPLOADS_DIR;

fn is_export(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    [".csv", ".jsonl", ".ndjson"].iter().any(|ext| lower.ends_with(ext))
}

/// Files a connection may read: exports in the data directory and its uploads.
fn exports(data_dir: &std::path::Path) -> Vec<String> {
    let mut found = Vec::new();
    for (dir, prefix) in [(data_dir.to_path_buf(), ""), (data_dir.join(UPLOADS), "uploads/")] {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            if entry.file_type().is_ok_and(|t| t.is_file()) && is_export(&name) {
                found.push(format!("{prefix}{name}"));
            }
        }
    }
    found.sort();
    found
}

fn valid_name(name: &str) -> Result<(), String> {
    if name.len() > 64 || !kinship_core::config::is_source_name(name) {
        return Err(format!("{name:?} is not a source name: use letters, digits, '_' and '-' (at most 64)"));
    }
    Ok(())
}

pub async fn new_form(State(state): State<Arc<AppState>>, user: SignedIn) -> Result<Markup, PageError> {
    let caller = user.session.caller(&state);
    caller.require(Capability::ManageSources)?;
    let data_dir = state.data_dir.clone();
    let files = tokio::task::spawn_blocking(move || exports(&data_dir)).await.expect("does not panic");
    let limit_mb = state.config().server.max_upload_bytes / (1024 * 1024);
    let content = html! {
        form.stack method="post" action="/connections/new" enctype="multipart/form-data" {
            input type="hidden" name="csrf" value=(user.session.csrf);
            label { "Name " input type="text" name="name" required pattern="[A-Za-z0-9_\\-]{1,64}" placeholder="shop"; }
            fieldset {
                legend { "Read from" }
                label {
                    "A file in the data directory "
                    select name="file" {
                        option value="" { "(none)" }
                        @for f in &files { option value=(f) { (f) } }
                    }
                }
                label { "or upload one (CSV or JSONL, at most " (limit_mb) " MB) " input type="file" name="upload" accept=".csv,.jsonl,.ndjson"; }
                label { "or a PostgreSQL table: the environment variable holding its URL " input type="text" name="url_env" placeholder="CRM_DATABASE_URL"; }
                label { "and the table " input type="text" name="table" placeholder="crm.contacts"; }
            }
            button type="submit" { "Suggest a mapping" }
        }
    };
    Ok(layout(&caller, &user.session, "/connections", "Add a connection", content))
}

/// Reads the form of "Add a connection", saves an upload, samples the source and shows the
/// suggested mapping in the editor.
pub async fn suggest(State(state): State<Arc<AppState>>, user: SignedIn, mut multipart: Multipart) -> Result<Markup, PageError> {
    let caller = user.session.caller(&state);
    // Nothing of the body is read for a caller who may not add connections.
    caller.require(Capability::ManageSources)?;
    let bad = |reason: String| PageError(StatusCode::BAD_REQUEST, reason);
    let mut form: std::collections::HashMap<String, String> = Default::default();
    let mut upload: Option<(String, axum::body::Bytes)> = None;
    while let Some(field) = multipart.next_field().await.map_err(|e| bad(format!("the form could not be read: {e}")))? {
        let name = field.name().unwrap_or_default().to_string();
        if name == "upload" {
            // The form sends its CSRF token first; a file is read only after it.
            check_csrf(&user.session, form.get("csrf").map_or("", String::as_str))?;
            let file_name = field.file_name().unwrap_or_default().to_string();
            let bytes = field
                .bytes()
                .await
                .map_err(|e| bad(format!("the upload could not be read (larger than server.max_upload_bytes?): {e}")))?;
            if !bytes.is_empty() {
                upload = Some((file_name, bytes));
            }
        } else {
            let value = field.text().await.map_err(|e| bad(format!("the form could not be read: {e}")))?;
            form.insert(name, value);
        }
    }
    check_csrf(&user.session, form.get("csrf").map_or("", String::as_str))?;
    let name = form.get("name").cloned().unwrap_or_default().trim().to_string();
    valid_name(&name).map_err(bad)?;
    let config = state.config();
    if config.sources.contains_key(&name) {
        return Err(bad(format!("there is already a source `{name}`; pick another name or edit that one")));
    }
    let field = |k: &str| form.get(k).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
    let mut source: SourceConfig = serde_json::from_value(json!({ "type": "csv" })).expect("a bare source");
    match (upload, field("file"), field("url_env"), field("table")) {
        (Some((file_name, bytes)), None, None, None) => {
            if !is_export(&file_name) {
                return Err(bad(format!("{file_name:?} is not named .csv, .jsonl or .ndjson")));
            }
            let data_dir = state.data_dir.clone();
            let stored = tokio::task::spawn_blocking(move || store_upload(&data_dir, &file_name, &bytes))
                .await
                .expect("does not panic")
                .map_err(|e| PageError(StatusCode::INTERNAL_SERVER_ERROR, e))?;
            set_file(&mut source, &stored);
            caller.audit("source.upload", None, "POST /connections/new", json!({ "source": name, "file": stored })).await?;
        }
        (None, Some(file), None, None) => {
            if !exports(&state.data_dir).contains(&file) {
                return Err(bad(format!("{file:?} is not an export in the data directory")));
            }
            set_file(&mut source, &file);
        }
        (None, None, Some(url_env), Some(table)) => {
            // Kinship's own variables reach its store: its tokens and users are not a source.
            if url_env.to_ascii_uppercase().starts_with("KINSHIP_") {
                return Err(bad("the environment variable may not be one of Kinship's own (KINSHIP_...)".into()));
            }
            source.kind = SourceType::Postgres;
            source.url_env = Some(url_env);
            source.table = Some(table);
        }
        _ => return Err(bad("choose one: a file, an upload, or an environment variable and a table".into())),
    }
    let (s, n) = (state.clone(), name.clone());
    let (toml, limits) = tokio::task::spawn_blocking(move || propose(&s, &n, source))
        .await
        .expect("does not panic")
        .map_err(|e| PageError(StatusCode::UNPROCESSABLE_ENTITY, e))?;
    editor(&state, &user, Mode::Add, &name, &toml, &limits, None).await
}

fn set_file(source: &mut SourceConfig, file: &str) {
    let lower = file.to_ascii_lowercase();
    source.kind = if lower.ends_with(".jsonl") || lower.ends_with(".ndjson") { SourceType::Jsonl } else { SourceType::Csv };
    source.path = PathBuf::from(file);
}

/// Keeps an upload as `DIR/uploads/NAME`, never over another file.
fn store_upload(data_dir: &std::path::Path, file_name: &str, bytes: &[u8]) -> Result<String, String> {
    let clean: String = file_name
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or("")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || "._-".contains(c) { c } else { '_' })
        .collect();
    let clean: String = clean.trim_start_matches('.').chars().rev().take(100).collect::<Vec<_>>().into_iter().rev().collect();
    let dir = data_dir.join(UPLOADS);
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let (stem, ext) = clean.rsplit_once('.').unwrap_or((&clean, "csv"));
    for n in 1..1000 {
        let candidate = if n == 1 { format!("{stem}.{ext}") } else { format!("{stem}-{n}.{ext}") };
        let path = dir.join(&candidate);
        match std::fs::OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(mut f) => {
                use std::io::Write;
                f.write_all(bytes).and_then(|()| f.sync_all()).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
                return Ok(format!("{UPLOADS}/{candidate}"));
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(format!("cannot write {}: {e}", path.display())),
        }
    }
    Err("too many uploads of that name".into())
}

/// The suggested block and the limits it needs, from a sample of the source.
fn propose(state: &AppState, name: &str, source: SourceConfig) -> Result<(String, String), String> {
    let store = kinship_store::open(&state.database).map_err(|e| e.to_string())?;
    let proposal =
        kinship_pipeline::connections::suggest_source(Some(&*store), &state.config(), &state.data_dir, name, &source, SAMPLE_ROWS)
            .map_err(|e| e.to_string())?;
    let suggestion = proposal.suggestion;
    let limits = suggestion.limits.iter().map(|(kind, n, _)| format!("{kind}={n}")).collect::<Vec<_>>().join(",");
    Ok((suggestion.toml, limits))
}

/// Takes the sources of kinship.toml as just edited, and tells other processes to do so
/// (the file is written already: a store that cannot be told is a warning, not a failed
/// edit; the others see the file at their next start).
fn take_sources(state: &AppState) -> Result<(), String> {
    state.shared_config().take_sources(&state.data_dir)?;
    let told = kinship_store::open(&state.database)
        .and_then(|mut store| store.record_change(kinship_store::ChangeKind::Sources, &serde_json::json!({})));
    if let Err(e) = told {
        tracing::warn!("kinship.toml's sources changed, but other processes could not be told through the store: {e}");
    }
    Ok(())
}

#[derive(Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Add,
    Edit,
}

/// The editor: the mapping as TOML, with what it makes of a sample of the source.
async fn editor(
    state: &Arc<AppState>,
    user: &SignedIn,
    mode: Mode,
    name: &str,
    toml: &str,
    limits: &str,
    error: Option<String>,
) -> Result<Markup, PageError> {
    let preview = audited_preview(state, user, name, toml).await?;
    Ok(page(state, user, mode, name, toml, limits, error, &preview))
}

/// What the mapping makes of a sample, audited as a read of the source's rows.
async fn audited_preview(state: &Arc<AppState>, user: &SignedIn, name: &str, toml: &str) -> Result<Result<Value, String>, PageError> {
    let caller = user.session.caller(state);
    let (s, n, t) = (state.clone(), name.to_string(), toml.to_string());
    let mut preview = tokio::task::spawn_blocking(move || preview(&s, &n, &t)).await.expect("does not panic");
    if let Ok(p) = preview.as_mut() {
        // Masks what the role may not read of contact details, by value, as everywhere.
        caller.scrub(p, &[]);
        caller
            .audit("source.preview", None, "POST /connections/preview", json!({ "source": name, "read": p["read"], "mapped": p["mapped"] }))
            .await?;
    }
    Ok(preview)
}

#[derive(Deserialize)]
pub struct PreviewRequest {
    name: String,
    toml: String,
}

/// The preview alone, for the editor to refresh as the mapping is typed.
pub async fn live_preview(
    State(state): State<Arc<AppState>>,
    user: SignedIn,
    headers: HeaderMap,
    Json(body): Json<PreviewRequest>,
) -> Result<Markup, PageError> {
    let sent = headers.get("x-csrf-token").and_then(|v| v.to_str().ok()).unwrap_or_default();
    check_csrf(&user.session, sent)?;
    user.session.caller(&state).require(Capability::ManageSources)?;
    valid_name(&body.name).map_err(|e| PageError(StatusCode::BAD_REQUEST, e))?;
    Ok(preview_fragment(&audited_preview(&state, &user, &body.name, &body.toml).await?))
}

/// The source a block defines, checked: it parses, names `name`, reads only what the form
/// offers (an export in the data directory, or a table by a variable that is not Kinship's
/// own), and its mapping compiles.
fn parse_block(state: &AppState, config: &Config, name: &str, toml: &str) -> Result<SourceConfig, String> {
    let source = kinship_core::config_file::parse_source(toml, name)?;
    match source.kind {
        SourceType::Csv | SourceType::Jsonl => {
            let path = source.path.to_string_lossy();
            if !exports(&state.data_dir).iter().any(|f| *f == path) {
                return Err(format!("path = {path:?} is not an export in the data directory (or its uploads); add such files here, others in kinship.toml by hand"));
            }
        }
        SourceType::Postgres => {
            if source.url.is_some() {
                return Err(
                    "give the database's URL through `url_env` (an environment variable), not `url`: kinship.toml would hold its password"
                        .into(),
                );
            }
            if source.url_env.as_deref().is_some_and(|v| v.to_ascii_uppercase().starts_with("KINSHIP_")) {
                return Err("`url_env` may not name one of Kinship's own variables".into());
            }
        }
        SourceType::Segment => {}
    }
    let mut check = config.clone();
    check.sources.insert(name.to_string(), source.clone());
    check.validate().map_err(|e| e.to_string())?;
    kinship_sources::Mapper::new(&source, &config.resolve).map_err(|e| format!("sources.{name}.{e}"))?;
    Ok(source)
}

fn preview(state: &AppState, name: &str, toml: &str) -> Result<Value, String> {
    let config = state.config();
    let source = parse_block(state, &config, name, toml)?;
    let (rows, rejects) = kinship_sources::sample(&source, &state.data_dir, SAMPLE_ROWS).map_err(|e| e.to_string())?;
    let preview = kinship_sources::suggest::preview(&source, &config.resolve, &rows, &rejects, SHOWN)?;
    let mut value = serde_json::to_value(&preview).unwrap_or_default();
    if let Some(list) = value["rejects"].as_array_mut() {
        list.truncate(LISTED_REJECTS);
    }
    Ok(value)
}

#[allow(clippy::too_many_arguments)]
fn page(
    state: &Arc<AppState>,
    user: &SignedIn,
    mode: Mode,
    name: &str,
    toml: &str,
    limits: &str,
    error: Option<String>,
    preview: &Result<Value, String>,
) -> Markup {
    let caller = user.session.caller(state);
    let title = match mode {
        Mode::Add => format!("New connection: {name}"),
        Mode::Edit => format!("Edit connection: {name}"),
    };
    let content = html! {
        @if let Some(e) = &error { p.error role="alert" { (e) } }
        form.stack method="post" action="/connections/save" {
            input type="hidden" name="csrf" value=(user.session.csrf);
            input type="hidden" name="name" value=(name);
            input type="hidden" name="mode" value=(if mode == Mode::Add { "add" } else { "edit" });
            input type="hidden" name="limits" value=(limits);
            label for="mapping" { "Mapping (TOML; each choice is commented with its reason; see the README for fields and transforms)" }
            textarea #mapping name="toml" rows="24" spellcheck="false" data-mapping-preview="/connections/preview" data-name=(name) aria-controls="mapping-preview" { (toml) }
            @if !limits.is_empty() { p.hint { "Saving also sets, where not set yet, [resolve.limits] " code { (limits.replace(',', ", ")) } "." } }
            div.actions {
                button type="submit" name="action" value="preview" { "Preview" }
                button type="submit" name="action" value="save" { "Save" }
                button type="submit" name="action" value="save_run" { "Save and run now" }
            }
        }
        div #mapping-preview aria-live="polite" { (preview_fragment(preview)) }
    };
    layout(&caller, &user.session, "/connections", &title, content)
}

/// Mapped records and rejected rows of the sample, or why the mapping cannot be read.
fn preview_fragment(preview: &Result<Value, String>) -> Markup {
    let p = match preview {
        Ok(p) => p,
        Err(e) => return html! { p.error role="alert" { (e) } },
    };
    html! {
        section aria-labelledby="preview-title" {
            h2 #preview-title { "Preview" }
            p role="status" { (p["mapped"]) " of " (p["read"]) " sampled rows map; " (p["rejects"].as_array().map_or(0, Vec::len)) " would be rejected." }
            div.scroll {
                table {
                    thead { tr { th scope="col" { "Line" } th scope="col" { "Key" } th scope="col" { "Time" } th scope="col" { "Identifiers" } th scope="col" { "Traits" } th scope="col" { "Event" } } }
                    tbody {
                        @for r in p["records"].as_array().into_iter().flatten() {
                            tr {
                                td { (r["line"]) } td { (super::text(&r["key"])) } td { (super::text(&r["time"])) }
                                td { (r["identifiers"].as_array().map(|a| a.iter().map(super::text).collect::<Vec<_>>().join(", ")).unwrap_or_default()) }
                                td { code { (r["traits"]) } }
                                td { (super::text(&r["event"])) " " code { (if r["properties"].is_null() { String::new() } else { r["properties"].to_string() }) } }
                            }
                        }
                    }
                }
            }
            @if let Some(rejects) = p["rejects"].as_array().filter(|r| !r.is_empty()) {
                h3 { "Rejected rows" }
                ul.rejects { @for r in rejects { li { "line " (r["line"]) ": " (super::text(&r["reason"])) } } }
            }
        }
    }
}

#[derive(Deserialize)]
pub struct SaveForm {
    csrf: String,
    name: String,
    mode: Mode,
    toml: String,
    #[serde(default)]
    limits: String,
    action: String,
}

pub async fn save(State(state): State<Arc<AppState>>, user: SignedIn, Form(form): Form<SaveForm>) -> Result<Markup, PageError> {
    check_csrf(&user.session, &form.csrf)?;
    let caller = user.session.caller(&state);
    caller.require(Capability::ManageSources)?;
    valid_name(&form.name).map_err(|e| PageError(StatusCode::BAD_REQUEST, e))?;
    if form.action == "preview" {
        return editor(&state, &user, form.mode, &form.name, &form.toml, &form.limits, None).await;
    }
    let (s, name, toml, mode) = (state.clone(), form.name.clone(), form.toml.clone(), form.mode);
    let limits: Vec<(String, u32)> = form
        .limits
        .split(',')
        .filter_map(|pair| {
            let (kind, n) = pair.split_once('=')?;
            Some((kind.trim().to_string(), n.trim().parse().ok()?))
        })
        .collect();
    let written = tokio::task::spawn_blocking(move || -> Result<SourceType, String> {
        let _edit = s.config_edits.lock().expect("not poisoned");
        let config = s.config();
        let source = parse_block(&s, &config, &name, &toml)?;
        let path = s.data_dir.join(CONFIG_FILE);
        kinship_core::config_file::put_source(&path, &name, &toml, mode == Mode::Edit).map_err(|e| e.to_string())?;
        if !limits.is_empty() {
            kinship_core::config_file::add_limits(&path, &limits).map_err(|e| e.to_string())?;
        }
        take_sources(&s)?;
        Ok(source.kind)
    })
    .await
    .expect("does not panic");
    let kind = match written {
        Ok(kind) => kind,
        Err(e) => return editor(&state, &user, form.mode, &form.name, &form.toml, &form.limits, Some(e)).await,
    };
    let action = if form.mode == Mode::Add { "source.add" } else { "source.edit" };
    caller.audit(action, None, "POST /connections/save", json!({ "source": form.name, "type": kind, "by": "web" })).await?;
    let mut message = html! { "Saved " strong { (form.name) } " to kinship.toml." };
    if form.action == "save_run" {
        let run = api::run_source(caller, State(state.clone()), Path(form.name.clone())).await;
        message = match run {
            Ok(axum::Json(report)) => {
                html! { "Saved " strong { (form.name) } " to kinship.toml and ran it: " (super::connections::run_counts(&report)) }
            }
            Err(e) => html! { "Saved " strong { (form.name) } ", but the run failed: " (e.1) },
        };
    }
    render_list(&state, &user, Some(message)).await
}

pub async fn edit_form(State(state): State<Arc<AppState>>, user: SignedIn, Path(name): Path<String>) -> Result<Markup, PageError> {
    let caller = user.session.caller(&state);
    caller.require(Capability::ManageSources)?;
    let path = state.data_dir.join(CONFIG_FILE);
    let toml = kinship_core::config_file::source_text(&path, &name).ok_or_else(|| {
        PageError(StatusCode::NOT_FOUND, format!("no source `{name}` in kinship.toml (one set by an environment variable is edited there)"))
    })?;
    editor(&state, &user, Mode::Edit, &name, &toml, "", None).await
}

/// Removes a connection from kinship.toml. Its records stay in the log and on profiles;
/// people are removed with erasure.
pub async fn delete(
    State(state): State<Arc<AppState>>,
    user: SignedIn,
    Path(name): Path<String>,
    Form(form): Form<Action>,
) -> Result<Markup, PageError> {
    check_csrf(&user.session, &form.csrf)?;
    let caller = user.session.caller(&state);
    caller.require(Capability::ManageSources)?;
    let s = state.clone();
    let source = name.clone();
    tokio::task::spawn_blocking(move || -> Result<(), String> {
        let _edit = s.config_edits.lock().expect("not poisoned");
        kinship_core::config_file::remove_source(&s.data_dir.join(CONFIG_FILE), &source).map_err(|e| e.to_string())?;
        take_sources(&s)
    })
    .await
    .expect("does not panic")
    .map_err(|e| PageError(StatusCode::UNPROCESSABLE_ENTITY, e))?;
    caller.audit("source.delete", None, "POST /connections/{name}/delete", json!({ "source": name })).await?;
    let message = html! { "Removed " strong { (name) } " from kinship.toml; its records stay until people are erased." };
    render_list(&state, &user, Some(message)).await
}
