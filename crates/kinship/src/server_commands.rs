//! Commands around the server: `serve`, `token create`, `user create`.

use crate::DataDir;
use crate::commands::{Workspace, operator};
use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use kinship_server::auth::{hash_secret, new_secret};
use std::process::ExitCode;

#[derive(Args)]
pub struct ServeArgs {
    /// Address to listen on (default: server.bind in kinship.toml, 127.0.0.1:7878).
    #[arg(long)]
    pub bind: Option<String>,
}

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Create an API token; it is printed once, as the last line, and stored only as a hash.
    Create {
        #[arg(long)]
        name: String,
        /// A built-in role (admin, analyst, marketer, sales, support, viewer) or one of `[roles]`.
        #[arg(long)]
        role: String,
    },
    /// List tokens: name, role, creation time (secrets are never stored).
    List,
    /// Revoke the token with this name: requests with it fail from now on (a running server
    /// notices within a second, through the change feed).
    Revoke { name: String },
}

#[derive(Subcommand)]
pub enum UserCommand {
    /// Create a web UI user, or give an existing one a new password and role. The password is
    /// read from the terminal, or from the first line of standard input when it is not one.
    Create {
        #[arg(long)]
        name: String,
        /// A built-in role (admin, analyst, marketer, sales, support, viewer) or one of `[roles]`.
        #[arg(long)]
        role: String,
    },
}

/// Shortest accepted password.
const MIN_PASSWORD_CHARS: usize = 10;

pub fn serve(data: &DataDir, args: &ServeArgs) -> Result<ExitCode> {
    let ws = Workspace::open(data)?;
    run_server(ws, args.bind.clone())
}

/// Serves until SIGTERM or Ctrl-C, then finishes in-flight requests and exits cleanly.
pub fn run_server(ws: Workspace, bind: Option<String>) -> Result<ExitCode> {
    let bind = bind.unwrap_or_else(|| ws.config.server.bind.clone());
    let options = kinship_server::ServeOptions { database: ws.config.database(&ws.dir), data_dir: ws.dir.clone(), config: ws.config, bind };
    drop(ws.store);
    // Reads run on the blocking pool, one store connection per thread: a few warm
    // connections serve many requests faster than one cold connection per request in flight.
    // One per core measured best once reads got cheap (GET p99 at 64 connections: 8.2-9.7 ms
    // against 11.5-12.8 ms with two per core and 10.8-11.0 ms with three threads; BENCHMARKS.md).
    let readers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let runtime = tokio::runtime::Builder::new_multi_thread().max_blocking_threads(readers).enable_all().build()?;
    runtime.block_on(async {
        let shutdown = async {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("can listen for SIGTERM");
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            eprintln!("shutting down: finishing requests in flight");
        };
        kinship_server::serve(options, shutdown, |addr| {
            println!("kinship is listening on http://{addr}");
            println!("  collection API: POST http://{addr}/v1/batch (write key as HTTP Basic user)");
            println!("  REST API:       http://{addr}/api/v1/openapi.json (bearer token)");
            println!("  web UI:         http://{addr}/ (users from `kinship user create`)");
        })
        .await
    })?;
    eprintln!("stopped cleanly");
    Ok(ExitCode::SUCCESS)
}

pub fn token(data: &DataDir, cmd: &TokenCommand) -> Result<ExitCode> {
    let mut ws = Workspace::open(data)?;
    match cmd {
        TokenCommand::Create { name, role } => {
            let roles = ws.config.roles()?;
            if roles.get(role).is_none() {
                bail!("unknown role {role:?}; the roles are: {}", roles.names().collect::<Vec<_>>().join(", "));
            }
            kinship_server::auth::check_token_name(name).map_err(anyhow::Error::msg)?;
            if ws.store.tokens()?.iter().any(|t| &t.name == name) {
                bail!("a token named `{name}` exists; revoke it with `kinship token revoke {name}` or pick another name");
            }
            let token = new_secret("kt_");
            ws.store.add_token(name, role, &hash_secret(&token))?;
            ws.audit(&operator(), "token.create", None, serde_json::json!({ "name": name, "role": role }))?;
            eprintln!("token `{name}` with role `{role}` created; it is shown only now:");
            println!("{token}");
        }
        TokenCommand::List => {
            println!("{:<24} {:<12} created", "name", "role");
            for t in ws.store.tokens()? {
                let created = chrono::DateTime::from_timestamp_millis(t.created_at).map_or_else(String::new, |d| d.to_rfc3339());
                println!("{:<24} {:<12} {created}", t.name, t.role);
            }
        }
        TokenCommand::Revoke { name } => {
            if ws.store.revoke_token(name)? == 0 {
                bail!("no token named `{name}`; list them with `kinship token list`");
            }
            ws.audit(&operator(), "token.revoke", None, serde_json::json!({ "name": name }))?;
            println!("revoked token `{name}`");
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn user(data: &DataDir, cmd: &UserCommand) -> Result<ExitCode> {
    let UserCommand::Create { name, role } = cmd;
    let mut ws = Workspace::open(data)?;
    let roles = ws.config.roles()?;
    if roles.get(role).is_none() {
        bail!("unknown role {role:?}; the roles are: {}", roles.names().collect::<Vec<_>>().join(", "));
    }
    kinship_server::auth::check_user_name(name).map_err(anyhow::Error::msg)?;
    let password = read_password(name)?;
    if password.chars().count() < MIN_PASSWORD_CHARS {
        bail!("the password must have at least {MIN_PASSWORD_CHARS} characters");
    }
    ws.store.set_user(name, role, &kinship_server::auth::hash_password(&password))?;
    ws.audit(&operator(), "user.create", None, serde_json::json!({ "name": name, "role": role }))?;
    println!("user `{name}` with role `{role}` can sign in to the web UI");
    Ok(ExitCode::SUCCESS)
}

/// The password from the terminal (asked twice), or the first line of standard input.
fn read_password(name: &str) -> Result<String> {
    use std::io::IsTerminal;
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password(format!("password for {name}: "))?;
        let again = rpassword::prompt_password("again: ")?;
        if first != again {
            bail!("the two passwords differ");
        }
        return Ok(first);
    }
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).context("reading the password from standard input")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

/// Creates (or resets) a web UI user with a random password, which it returns.
pub fn demo_user(ws: &mut Workspace, name: &str, role: &str) -> Result<String> {
    let password = new_secret("");
    ws.store.set_user(name, role, &kinship_server::auth::hash_password(&password))?;
    Ok(password)
}
