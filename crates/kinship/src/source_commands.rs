//! `kinship source add` (a Segment-compatible source with its write key) and `kinship
//! source suggest` (the mapping assistant).

use crate::DataDir;
use crate::commands::{Workspace, operator};
use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use kinship_core::config::CONFIG_FILE;
use kinship_core::{Config, SourceConfig, SourceType};
use kinship_server::auth::{hash_secret, new_secret};
use kinship_store::ChangeKind;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum SourceCommand {
    /// Add a source to kinship.toml. A `segment` source gets a write key, printed once as the last line.
    Add {
        #[arg(long = "type")]
        kind: String,
        #[arg(long)]
        name: String,
    },
    /// Propose a mapping for a CSV or JSONL export (or a PostgreSQL table): prints a
    /// commented `[sources.NAME]` block, then a preview of mapped records and rejects.
    Suggest(SuggestArgs),
}

#[derive(Args)]
pub struct SuggestArgs {
    /// The export: a .csv or .jsonl file; or a postgres:// URL with --table (used to sample,
    /// never written: the mapping names --url-env, or TABLE_DATABASE_URL).
    pub file: Option<PathBuf>,
    /// The source's name (default: from the file name).
    #[arg(long)]
    pub name: Option<String>,
    /// For a PostgreSQL table: the environment variable holding its database URL.
    #[arg(long)]
    pub url_env: Option<String>,
    /// For a PostgreSQL table: the table or view (`crm.contacts`).
    #[arg(long)]
    pub table: Option<String>,
    /// Rows to sample.
    #[arg(long, default_value_t = 2000)]
    pub rows: usize,
    /// Append the proposal to kinship.toml (after asking, unless --yes).
    #[arg(long)]
    pub write: bool,
    /// With --write: do not ask.
    #[arg(long)]
    pub yes: bool,
}

pub fn source(data: &DataDir, cmd: &SourceCommand) -> Result<ExitCode> {
    match cmd {
        SourceCommand::Add { kind, name } => add(data, kind, name),
        SourceCommand::Suggest(args) => suggest(data, args),
    }
}

fn add(data: &DataDir, kind: &str, name: &str) -> Result<ExitCode> {
    if kind != "segment" {
        bail!(
            "`source add` creates `segment` sources; for a csv, jsonl or postgres source run `kinship source suggest FILE --write`, or add it to kinship.toml by hand (see README)"
        );
    }
    if !kinship_core::config::is_source_name(name) {
        bail!("--name {name:?}: source names may use letters, digits, '_' and '-' only");
    }
    std::fs::create_dir_all(&data.dir)?;
    let path = data.dir.join(CONFIG_FILE);
    kinship_core::config_file::put_source(&path, name, &format!("[sources.{name}]\ntype = \"segment\"\n"), false)?;
    let mut ws = Workspace::open(data)?;
    // A running server takes the new source from kinship.toml when the change feed says so.
    ws.store.record_change(ChangeKind::Sources, &serde_json::json!({ "source": name }))?;
    let key = new_secret("wk_");
    ws.store.set_write_key(name, &hash_secret(&key))?;
    ws.audit(&operator(), "source.add", None, serde_json::json!({ "source": name, "type": kind }))?;
    eprintln!("source `{name}` added to {}; send events with this write key (shown only now):", path.display());
    println!("{key}");
    Ok(ExitCode::SUCCESS)
}

fn suggest(data: &DataDir, args: &SuggestArgs) -> Result<ExitCode> {
    let config_path = data.dir.join(CONFIG_FILE);
    let existing = if config_path.exists() {
        Config::load(&data.dir).with_context(|| format!("loading {}", config_path.display()))?
    } else {
        Config::default()
    };
    let mut source: SourceConfig = serde_json::from_value(serde_json::json!({ "type": "csv" })).expect("a bare source");
    let url = args.file.as_ref().map(|f| f.to_string_lossy().to_string()).filter(|f| kinship_store::is_postgres_url(f));
    let default_name = match (&args.file, &args.table) {
        // A URL given on the command line is used to sample; the mapping names a variable.
        (Some(_), Some(table)) if url.is_some() => {
            source.kind = SourceType::Postgres;
            source.url = url.clone();
            source.table = Some(table.clone());
            let stem = table.rsplit('.').next().unwrap_or(table);
            source.url_env = Some(args.url_env.clone().unwrap_or_else(|| format!("{}_DATABASE_URL", stem.to_ascii_uppercase())));
            stem.to_string()
        }
        (Some(file), None) if url.is_some() => {
            bail!("{} is a database: name its table with --table", kinship_store::redacted(&file.to_string_lossy()))
        }
        (Some(file), None) => {
            let ext = file.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
            source.kind = match ext.as_str() {
                "csv" | "txt" => SourceType::Csv,
                "jsonl" | "ndjson" | "json" => SourceType::Jsonl,
                _ => bail!("{} is neither .csv nor .jsonl; name the file with its format's extension", file.display()),
            };
            source.path = stored_path(file, &data.dir)?;
            file.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_default()
        }
        (None, Some(table)) => {
            let var = args
                .url_env
                .clone()
                .context("a PostgreSQL table needs --url-env VAR: the environment variable holding the database URL")?;
            source.kind = SourceType::Postgres;
            source.url_env = Some(var);
            source.table = Some(table.clone());
            table.rsplit('.').next().unwrap_or(table).to_string()
        }
        _ => bail!(
            "give a file (`kinship source suggest orders.csv`), or a table with its database's URL or the variable holding it (`postgres://... --table contacts`, `--url-env CRM_URL --table contacts`)"
        ),
    };
    let name = args.name.clone().unwrap_or_else(|| kinship_sources::suggest::snake(&default_name));
    if !kinship_core::config::is_source_name(&name) {
        bail!("--name {name:?}: source names may use letters, digits, '_' and '-' only");
    }
    if existing.sources.contains_key(&name) {
        bail!("kinship.toml already has a source `{name}`; give another with --name");
    }
    // With records already stored, an id column is checked against their identifiers.
    let has_store = data.dir.join(kinship_core::config::DATABASE_FILE).exists() || existing.database_url.is_some();
    let ws = if has_store { Some(Workspace::open(data)?) } else { None };
    let store = ws.as_ref().map(|ws| &*ws.store);
    let proposal = kinship_pipeline::connections::suggest_source(store, &existing, &data.dir, &name, &source, args.rows)?;
    drop(ws);
    let (suggestion, rows, rejects) = (proposal.suggestion, proposal.rows, proposal.rejects);
    println!("{}", suggestion.toml);
    if let (Some(_), Some(var)) = (&url, &source.url_env) {
        eprintln!("The URL is not written to kinship.toml: set {var} to it where kinship runs.");
    }

    let preview =
        kinship_sources::suggest::preview(&suggestion.config, &existing.resolve, &rows, &rejects, 3).map_err(anyhow::Error::msg)?;
    let mut err = std::io::stderr().lock();
    writeln!(err, "Preview: {} of {} sampled rows map; {} would be rejected.", preview.mapped, preview.read, preview.rejects.len())?;
    for record in &preview.records {
        writeln!(err, "  {}", serde_json::to_string(record)?)?;
    }
    for reject in preview.rejects.iter().take(10) {
        writeln!(err, "  line {}: {}", reject.line, reject.reason)?;
    }
    if !args.write {
        writeln!(err, "Append it to {} with --write, or copy and edit it.", config_path.display())?;
        return Ok(ExitCode::SUCCESS);
    }
    if !args.yes {
        if !std::io::stdin().is_terminal() {
            bail!("--write asks before changing kinship.toml; add --yes to write without asking");
        }
        write!(err, "Append [sources.{name}] to {}? [y/N] ", config_path.display())?;
        err.flush()?;
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        if !answer.trim().eq_ignore_ascii_case("y") && !answer.trim().eq_ignore_ascii_case("yes") {
            writeln!(err, "Nothing written.")?;
            return Ok(ExitCode::SUCCESS);
        }
    }
    std::fs::create_dir_all(&data.dir)?;
    kinship_core::config_file::put_source(&config_path, &name, &suggestion.toml, false)?;
    let limits: Vec<(String, u32)> = suggestion.limits.iter().map(|(kind, limit, _)| (kind.clone(), *limit)).collect();
    kinship_core::config_file::add_limits(&config_path, &limits)?;
    if let Ok(mut ws) = Workspace::open(data) {
        ws.store.record_change(ChangeKind::Sources, &serde_json::json!({ "source": name }))?;
        ws.audit(
            &operator(),
            "source.add",
            None,
            serde_json::json!({ "source": name, "type": format!("{:?}", source.kind).to_lowercase(), "by": "suggest" }),
        )?;
    }
    writeln!(err, "Written to {}. Run `kinship ingest --source {name}` to read it.", config_path.display())?;
    Ok(ExitCode::SUCCESS)
}

/// A file inside the data directory is named relative to it; others absolutely.
fn stored_path(file: &Path, data_dir: &Path) -> Result<PathBuf> {
    let file = std::fs::canonicalize(file).with_context(|| format!("cannot open {}", file.display()))?;
    let dir = std::fs::canonicalize(data_dir).unwrap_or_else(|_| data_dir.to_path_buf());
    Ok(file.strip_prefix(&dir).map(Path::to_path_buf).unwrap_or(file))
}
