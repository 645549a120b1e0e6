//! The platform commands: demo, ingest, resolve, profile, stats, assignments.

use crate::DataDir;
use crate::progress::Progress;
use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use kinship_core::{Config, Identifier, LinkConstraint};
use kinship_pipeline::governance::{AuditLog, Keys, SuppressionList, audit_event};
use kinship_pipeline::{IngestReport, ResolveReport};
use kinship_policy::Capability;
use kinship_store::Database;
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

pub use kinship_core::config::DATABASE_FILE;
/// Marks a data directory written by `kinship demo`, which demo may therefore overwrite.
const DEMO_MARKER: &str = ".kinship-demo";

#[derive(Args)]
pub struct DemoArgs {
    /// How many people the generated systems describe.
    #[arg(long, default_value_t = 10_000)]
    customers: usize,
    /// Seed of the generator: the same seed gives the same files.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Stop after ingesting and resolving instead of serving.
    #[arg(long)]
    no_serve: bool,
    /// Address to serve on.
    #[arg(long)]
    bind: Option<String>,
}

#[derive(Args)]
pub struct IngestArgs {
    /// Ingest only this source (even if disabled).
    #[arg(long)]
    source: Option<String>,
    /// Skip the re-resolution that follows ingest.
    #[arg(long)]
    no_resolve: bool,
}

#[derive(Args)]
pub struct AssignmentsArgs {
    /// Output file; standard output when absent.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Subcommand)]
pub enum ProfileCommand {
    /// Show one profile: by id, email, phone or any identifier.
    Show(ShowArgs),
    /// The briefing before talking to a customer: each order followed through invoice,
    /// payment and shipment, unpaid invoices, open cases with their SLA clocks, open tasks,
    /// the last NPS answer, lifetime value, and what changed since a moment.
    Brief(BriefArgs),
    /// Find profiles whose names, emails, phones or other traits contain every word.
    Search {
        text: String,
        #[arg(long, default_value_t = 20)]
        limit: usize,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        reader: Reader,
    },
    /// Show which identifier joined each record of a profile.
    Explain { id: String },
    /// Move a record out of its profile; remembered as a cannot-link that survives re-resolution.
    Split {
        id: String,
        /// The record, as SOURCE:KEY.
        #[arg(long)]
        record: String,
    },
    /// Join two profiles; remembered as a must-link that survives re-resolution.
    Merge { a: String, b: String },
}

#[derive(Args)]
#[group(required = true, multiple = false)]
pub struct ShowLookup {
    #[arg(long)]
    id: Option<String>,
    #[arg(long)]
    email: Option<String>,
    #[arg(long)]
    phone: Option<String>,
    /// Any identifier as KIND:VALUE, e.g. crm_id:C-00042.
    #[arg(long)]
    identifier: Option<String>,
}

#[derive(Args)]
pub struct ShowArgs {
    #[command(flatten)]
    lookup: ShowLookup,
    /// Print the 360 document as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    reader: Reader,
}

#[derive(Args)]
pub struct BriefArgs {
    #[command(flatten)]
    lookup: ShowLookup,
    /// Also list what changed after this moment: RFC 3339 (`2025-06-01T00:00:00Z`), a date,
    /// or a time ago (`7 days`).
    #[arg(long)]
    since: Option<String>,
    /// Print the briefing as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    reader: Reader,
}

/// Who is reading: without a token, the local operator (every field, audited as `cli:USER`).
#[derive(Args)]
pub struct Reader {
    /// Read as this API token's role: fields it may not see are left out, masked ones masked.
    #[arg(long, env = "KINSHIP_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

pub struct Workspace {
    pub dir: PathBuf,
    pub config: Config,
    pub store: Box<dyn Database>,
}

/// The reader of a CLI command: the audit log's actor and the role's policy.
pub struct Viewer {
    pub actor: String,
    pub policy: kinship_policy::Policy,
}

impl Workspace {
    pub fn open(data: &DataDir) -> Result<Self> {
        let dir = data.dir.clone();
        let url_set = std::env::var_os("KINSHIP_DATABASE_URL").is_some();
        if !dir.join(kinship_core::config::CONFIG_FILE).exists() && !dir.join(DATABASE_FILE).exists() && !url_set {
            bail!(
                "{} holds no kinship.toml or database; run `kinship demo --data {}` for a demo, or write a kinship.toml there (see README)",
                dir.display(),
                dir.display()
            );
        }
        let config = Config::load(&dir).with_context(|| format!("loading {}", dir.join("kinship.toml").display()))?;
        let database = config.database(&dir);
        let store = kinship_store::open(&database).with_context(|| format!("opening the store {}", kinship_store::redacted(&database)))?;
        Ok(Self { dir, config, store })
    }

    pub fn keys(&self) -> Result<Keys> {
        Ok(Keys::load_or_create(&self.dir)?)
    }

    pub fn suppression(&self) -> Result<SuppressionList> {
        Ok(SuppressionList::load(&*self.store, self.keys()?.suppression)?)
    }

    /// Writes one audit entry at once (the CLI does little, so it need not batch).
    pub fn audit(&mut self, actor: &str, action: &str, profile: Option<&str>, detail: Value) -> Result<()> {
        let command = Some(command_words());
        let event = audit_event(actor, action, profile, command.as_deref(), detail);
        AuditLog::open(&*self.store, &self.dir)?.append(&mut *self.store, &[event])?;
        Ok(())
    }

    /// The reader of a command given `--token` (its role), or else the local operator.
    pub fn viewer(&self, token: Option<&str>) -> Result<Viewer> {
        let roles = self.config.roles()?;
        let (actor, role) = match token {
            None => (operator(), "admin".to_string()),
            Some(secret) => {
                let row = kinship_store::AccessStore::token(&*self.store, &kinship_server::auth::hash_secret(secret))?
                    .context("unknown or revoked token; list tokens with `kinship token list`")?;
                (format!("token:{}", row.name), row.role)
            }
        };
        let policy = roles.get(&role).with_context(|| format!("the token's role `{role}` is not defined in kinship.toml"))?.clone();
        Ok(Viewer { actor, policy })
    }
}

/// The audit log's name for the person at the terminal.
/// The command as the audit log names it: `kinship` and its command (and subcommand) words,
/// never an option or its value, which may be the very data an entry must not hold.
fn command_words() -> String {
    const WITH_SUBCOMMANDS: &[&str] = &["profile", "segment", "computed", "token", "source", "privacy", "audit", "user", "bench"];
    let mut words = vec!["kinship".to_string()];
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--data" {
            args.next();
        } else if !a.starts_with('-') {
            let more = WITH_SUBCOMMANDS.contains(&a.as_str()) && words.len() == 1;
            words.push(a);
            if !more {
                break;
            }
        }
    }
    words.join(" ")
}

pub fn operator() -> String {
    format!("cli:{}", std::env::var("USER").or_else(|_| std::env::var("USERNAME")).unwrap_or_else(|_| "unknown".into()))
}

pub fn demo(data: &DataDir, args: &DemoArgs) -> Result<ExitCode> {
    let dir = &data.dir;
    if dir.join(kinship_core::config::CONFIG_FILE).exists() && !dir.join(DEMO_MARKER).exists() {
        bail!("{} already holds a kinship.toml that the demo did not write; choose another directory with --data", dir.display());
    }
    let started = std::time::Instant::now();
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::write(dir.join(DEMO_MARKER), "written by kinship demo\n")?;
    println!("Generating {} customers across eight systems (seed {}) in {}", args.customers, args.seed, dir.display());
    let bar = Progress::new("generate", false);
    let summary =
        kinship_demo::generate(dir, &kinship_demo::DemoOptions { customers: args.customers, seed: args.seed }, &mut |_, done, total| {
            bar.update(done, total)
        })?;
    bar.finish();
    for (file, rows) in &summary.files {
        println!("  {file:<22} {rows:>9} rows");
    }
    let mut ws = Workspace::open(data)?;
    let reports = ingest_all(&mut ws, None)?;
    let resolved = resolve_with_progress(&mut ws)?;
    print_ingest(&reports);
    print_resolve(&resolved);
    crate::flow_commands::demo_tasks(&mut ws)?;
    println!("\nDone in {:.1}s. Ground truth for accuracy checks: {}", started.elapsed().as_secs_f64(), dir.join("truth.csv").display());
    let d = dir.display();
    println!("\nNext:");
    println!("  kinship --data {d} profile search \"smith\"");
    println!("  kinship --data {d} profile show --email <an email from the search> --json");
    println!("  kinship --data {d} assignments --out assignments.csv");
    println!("  kinship --data {d} stats");
    // Web UI users with fresh passwords each run: an admin, and a marketer who sees contact
    // details masked.
    let bind = args.bind.clone().unwrap_or_else(|| ws.config.server.bind.clone());
    println!("\nWeb UI: http://{bind}/ (`kinship serve`); sign in with (shown only now):");
    for (name, role) in [("demo-admin", "admin"), ("demo-marketer", "marketer")] {
        let password = crate::server_commands::demo_user(&mut ws, name, role)?;
        println!("  user {name:<14} role {role:<9} password {password}");
    }
    if args.no_serve {
        return Ok(ExitCode::SUCCESS);
    }
    let token = kinship_server::auth::new_secret("kt_");
    kinship_store::AccessStore::add_token(&mut *ws.store, "demo-admin", "admin", &kinship_server::auth::hash_secret(&token))?;
    println!("\nServing the demo. An admin API token for it (shown only now):\n  {token}");
    println!("  curl -H 'Authorization: Bearer {token}' 'http://{bind}/api/v1/profiles?q=smith'");
    crate::server_commands::run_server(ws, Some(bind))
}

pub fn ingest(data: &DataDir, args: &IngestArgs) -> Result<ExitCode> {
    let mut ws = Workspace::open(data)?;
    let reports = ingest_all(&mut ws, args.source.as_deref())?;
    print_ingest(&reports);
    // A pull by cursor that finds no new rows is up to date; a file that yields no record is a mistake.
    let nothing_read = reports.iter().all(|r| r.inserted + r.duplicates == 0 && ws.config.sources[&r.source].cursor.is_none());
    if !args.no_resolve {
        print_resolve(&resolve_with_progress(&mut ws)?);
    }
    if nothing_read {
        eprintln!("error: no record could be read; see the reject files above");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

fn ingest_all(ws: &mut Workspace, only: Option<&str>) -> Result<Vec<IngestReport>> {
    let names: Vec<String> = match only {
        Some(name) => vec![name.to_string()],
        // Segment sources receive their events over HTTP: nothing to pull.
        None => ws.config.sources.iter().filter(|(_, s)| s.enabled && s.kind.is_pulled()).map(|(n, _)| n.clone()).collect(),
    };
    if names.is_empty() {
        bail!("no enabled sources in {}; add a [sources.NAME] table (see README)", ws.dir.join("kinship.toml").display());
    }
    let suppressed = ws.suppression()?.check();
    let mut reports = Vec::new();
    for name in names {
        let bar = Progress::new(&name, true);
        let report = kinship_pipeline::ingest_source(&mut *ws.store, &ws.config, &name, &ws.dir, &suppressed, &|d, t| bar.update(d, t));
        bar.finish();
        let report = report.with_context(|| format!("ingesting source `{name}`"))?;
        let counts = serde_json::json!({
            "source": name, "read": report.read, "inserted": report.inserted, "duplicates": report.duplicates,
            "rejected": report.rejected, "suppressed": report.suppressed,
        });
        ws.audit(&operator(), "source.run", None, counts)?;
        reports.push(report);
    }
    Ok(reports)
}

fn resolve_with_progress(ws: &mut Workspace) -> Result<ResolveReport> {
    let bar = Progress::new("resolve", false);
    let report = kinship_pipeline::resolve_all(&mut *ws.store, &ws.config, &|d, t| bar.update(d, t));
    bar.finish();
    let report = report?;
    crate::segment_commands::sync_after_change(ws)?;
    Ok(report)
}

fn print_ingest(reports: &[IngestReport]) {
    println!("\n{:<12} {:>9} {:>9} {:>10} {:>8} {:>10} {:>8}", "source", "read", "new", "duplicate", "rejected", "suppressed", "seconds");
    for r in reports {
        println!(
            "{:<12} {:>9} {:>9} {:>10} {:>8} {:>10} {:>8.2}",
            r.source, r.read, r.inserted, r.duplicates, r.rejected, r.suppressed, r.seconds
        );
    }
    let suppressed: u64 = reports.iter().map(|r| r.suppressed).sum();
    if suppressed > 0 {
        println!("  {suppressed} row(s) name an erased person and were dropped (see `kinship privacy unsuppress`)");
    }
    for r in reports {
        if let Some(path) = &r.reject_file {
            println!("  {} rejected row(s) of `{}`, with line and reason, in {}", r.rejected, r.source, path.display());
        }
        if r.invalid_identifiers > 0 {
            println!(
                "  {} identifier value(s) of `{}` were not valid for their kind and were not used for matching",
                r.invalid_identifiers, r.source
            );
        }
    }
}

fn print_resolve(r: &ResolveReport) {
    let phases: Vec<String> = r.phases.iter().map(|(name, s)| format!("{name} {s:.1}s")).collect();
    println!(
        "\nresolved {} records into {} profiles ({} with more than one record) by {} joins in {:.2}s ({})",
        r.records,
        r.profiles,
        r.multi_record_profiles,
        r.merges,
        r.seconds,
        phases.join(", ")
    );
    if r.contested > 0 || r.blocked > 0 {
        println!(
            "  guards: {} shared identifier(s) joined nothing because they would over-merge; {} blocked value(s) ignored",
            r.contested, r.blocked
        );
    }
}

pub fn resolve(data: &DataDir) -> Result<ExitCode> {
    let mut ws = Workspace::open(data)?;
    print_resolve(&resolve_with_progress(&mut ws)?);
    Ok(ExitCode::SUCCESS)
}

pub fn stats(data: &DataDir) -> Result<ExitCode> {
    let ws = Workspace::open(data)?;
    let s = ws.store.stats()?;
    println!("records              {}", s.records);
    println!("profiles             {}", s.profiles);
    println!("  with 2+ records    {}", s.multi_record_profiles);
    println!("profile identifiers  {}", s.identifiers);
    println!("merge evidence       {}", s.merge_edges);
    println!("\n{:<12} {:>9} {:>9} {:>8}  last run", "source", "records", "last new", "rejects");
    for st in ws.store.source_status()? {
        let run = st.last_run.unwrap_or_default();
        let error = run.error.map(|e| format!("  error: {e}")).unwrap_or_default();
        println!("{:<12} {:>9} {:>9} {:>8}  {}{error}", st.source, st.records, run.inserted, run.rejected, fmt_time(run.finished_at));
    }
    Ok(ExitCode::SUCCESS)
}

fn fmt_time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map_or_else(String::new, |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
}

pub fn assignments(data: &DataDir, args: &AssignmentsArgs) -> Result<ExitCode> {
    let ws = Workspace::open(data)?;
    let sink: Box<dyn Write> = match &args.out {
        Some(path) => Box::new(std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut out = csv::Writer::from_writer(std::io::BufWriter::new(sink));
    out.write_record(["source", "record_key", "profile_id"])?;
    let mut failed = None;
    let mut rows = 0u64;
    ws.store.scan_assignments(&mut |source, key, profile| {
        if failed.is_none() {
            failed = out.write_record([source, key, profile]).err();
            rows += 1;
        }
    })?;
    if let Some(e) = failed {
        return Err(e.into());
    }
    out.flush()?;
    if let Some(path) = &args.out {
        eprintln!("wrote {rows} assignments to {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

pub fn profile(data: &DataDir, cmd: &ProfileCommand) -> Result<ExitCode> {
    let mut ws = Workspace::open(data)?;
    match cmd {
        ProfileCommand::Show(args) => show(&mut ws, args),
        ProfileCommand::Brief(args) => brief(&mut ws, args),
        ProfileCommand::Search { text, limit, json, reader } => {
            let viewer = ws.viewer(reader.token.as_deref())?;
            if !viewer.policy.allows(Capability::SearchProfiles) {
                bail!("role `{}` may not search profiles", viewer.policy.name());
            }
            let found = ws.store.search_profiles(&kinship_normalize::fold(text), *limit)?;
            let keys = ws.keys()?;
            let mut rows = Vec::with_capacity(found.len());
            for r in found {
                let identifiers = ws.store.profile_identifiers(&r.id)?;
                let doc = serde_json::json!({ "id": r.id, "traits": flat_traits(&r.traits), "identifiers": identifiers });
                let projected = kinship_policy::project(&doc, &viewer.policy, &keys.pseudonym);
                ws.audit(&viewer.actor, "search", Some(&r.id), serde_json::json!({ "lookup": "text", "fields": projected.fields }))?;
                rows.push((r.id, projected.value.get("traits").cloned().unwrap_or_default(), r.record_count));
            }
            if *json {
                let list: Vec<Value> = rows
                    .iter()
                    .map(|(id, traits, records)| serde_json::json!({ "id": id, "traits": traits, "records": records }))
                    .collect();
                println!("{}", serde_json::to_string_pretty(&serde_json::json!({ "profiles": list }))?);
            } else if rows.is_empty() {
                println!("no profile matches {text:?}");
            } else {
                for (id, t, records) in rows {
                    println!("{id}  {:<28} {:<34} {records} record(s)", display_name(&t), t["email"].as_str().unwrap_or(""));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        ProfileCommand::Explain { id } => {
            let doc = kinship_pipeline::explain(&*ws.store, &ws.config, id)?
                .with_context(|| format!("no profile {id}; find ids with `kinship profile search`"))?;
            ws.audit(&operator(), "explain", Some(id), serde_json::json!({ "joins": doc["joins"].as_array().map_or(0, Vec::len) }))?;
            println!("{}", serde_json::to_string_pretty(&doc)?);
            Ok(ExitCode::SUCCESS)
        }
        ProfileCommand::Split { id, record } => {
            let (source, key) =
                record.split_once(':').with_context(|| format!("--record {record:?} must be SOURCE:KEY, e.g. shop:O-1001"))?;
            let (now, decisions) = kinship_pipeline::split_record(&mut *ws.store, &ws.config, id, source, key)?;
            crate::segment_commands::sync_after_change(&mut ws)?;
            ws.audit(&operator(), "split", Some(id), serde_json::json!({ "record": record, "now_in": now }))?;
            println!("split {record} out of {id}: it is now in {now}; {decisions} cannot-link decision(s) remembered");
            Ok(ExitCode::SUCCESS)
        }
        ProfileCommand::Merge { a, b } => {
            let first = |id: &str| -> Result<(String, String)> {
                let r = ws.store.profile_records(id)?;
                let r = r.first().with_context(|| format!("no profile {id}"))?;
                Ok((r.source.clone(), r.key.clone()))
            };
            let (left, right) = (first(a)?, first(b)?);
            ws.store.add_constraint(&LinkConstraint { must: true, left: left.clone(), right })?;
            kinship_pipeline::reresolve_profiles(&mut *ws.store, &ws.config, &[a.clone(), b.clone()])?;
            crate::segment_commands::sync_after_change(&mut ws)?;
            let (_, now) = ws.store.record_profile(&left.0, &left.1)?.context("the record is still in the log")?;
            ws.audit(&operator(), "merge", Some(&now), serde_json::json!({ "profiles": [a, b] }))?;
            println!("merged {a} and {b} into {now}; the must-link decision is remembered");
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The profile a lookup names, and who is reading, refused unless the role may read it
/// (and look it up by identifier, when that is how it was named).
fn look_up(ws: &Workspace, l: &ShowLookup, reader: &Reader) -> Result<(String, Viewer)> {
    let region = kinship_normalize::region(&ws.config.resolve.default_region).context("resolve.default_region is not a region code")?;
    let id = match (&l.id, &l.email, &l.phone, &l.identifier) {
        (Some(id), ..) => id.clone(),
        (_, Some(e), ..) => {
            one_profile(&*ws.store, "email", kinship_normalize::email(e).with_context(|| format!("{e:?} is not an email address"))?)?
        }
        (_, _, Some(p), _) => one_profile(
            &*ws.store,
            "phone",
            kinship_normalize::phone(p, region)
                .with_context(|| format!("{p:?} is not a valid phone number for region {}", ws.config.resolve.default_region))?,
        )?,
        (.., Some(i)) => {
            let ident = Identifier::parse_key(i).with_context(|| format!("--identifier {i:?} must be KIND:VALUE, e.g. crm_id:C-00042"))?;
            let value = kinship_normalize::identifier(ident.kind.as_str(), &ident.value, region)
                .with_context(|| format!("{:?} is not a valid {}", ident.value, ident.kind))?;
            one_profile(&*ws.store, ident.kind.as_str(), value)?
        }
        _ => unreachable!("clap requires one lookup"),
    };
    let viewer = ws.viewer(reader.token.as_deref())?;
    if !viewer.policy.allows(Capability::ReadProfiles) {
        bail!("role `{}` may not read profiles", viewer.policy.name());
    }
    if l.id.is_none() && !viewer.policy.allows(Capability::SearchProfiles) {
        bail!("role `{}` may not look profiles up by identifier; give --id", viewer.policy.name());
    }
    Ok((id, viewer))
}

fn brief(ws: &mut Workspace, args: &BriefArgs) -> Result<ExitCode> {
    let (id, viewer) = look_up(ws, &args.lookup, &args.reader)?;
    let now = kinship_pipeline::briefing::data_now(&*ws.store)?;
    let since = match args.since.as_deref() {
        None => None,
        Some(text) => Some(
            kinship_normalize::parse_timestamp_ms(text).or_else(|| kinship_expr::parse_duration(text).map(|ago| now - ago)).with_context(
                || format!("--since {text:?} is neither a time (2025-06-01T00:00:00Z, 2025-06-01) nor a time ago (\"7 days\")"),
            )?,
        ),
    };
    let mut doc = kinship_pipeline::briefing::briefing(&*ws.store, &ws.config, &id, since, now, &viewer.policy)?
        .with_context(|| format!("no profile {id}; find ids with `kinship profile search`"))?;
    if viewer.policy.allows(kinship_policy::Capability::ReadDeals) {
        let book = kinship_pipeline::deals::all_deals(&*ws.store, &ws.config)?;
        kinship_pipeline::deals::add_open_deals(&mut doc, &book, std::slice::from_ref(&id), now, &viewer.policy);
    }
    let identifiers = serde_json::to_value(ws.store.profile_identifiers(&id)?)?;
    let doc = kinship_pipeline::briefing::for_role(
        doc,
        identifiers.as_array().map_or(&[][..], Vec::as_slice),
        &viewer.policy,
        &ws.keys()?.pseudonym,
    );
    ws.audit(&viewer.actor, "brief", Some(&id), serde_json::json!({ "orders": doc["orders"].as_array().map_or(0, Vec::len) }))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("{}  {}   (as of {})", plain(&doc["id"]), plain(&doc["name"]), plain(&doc["as_of"]));
    for line in doc["summary"].as_array().into_iter().flatten() {
        println!("  - {}", plain(line));
    }
    let orders = doc["orders"].as_array().map_or(&[][..], Vec::as_slice);
    if !orders.is_empty() {
        println!("\norders, newest first");
        for o in orders.iter().take(10) {
            println!(
                "  {:<10} {:>10}  {}",
                plain(&o["number"]),
                o["amount"].as_f64().map(|a| format!("{a:.2}")).unwrap_or_default(),
                plain(&o["summary"])
            );
        }
        if orders.len() > 10 {
            println!("  ... {} more (use --json for all)", orders.len() - 10);
        }
    }
    let open = doc["cases"]["open"].as_array().map_or(&[][..], Vec::as_slice);
    if !open.is_empty() {
        println!("\nopen cases");
        for c in open {
            let clocks: Vec<String> = c["sla"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|k| k["ended"].is_null())
                .map(|k| format!("{} {}", plain(&k["metric"]), plain(&k["state"])))
                .collect();
            println!("  {:<10} {:<8} {:<40} {}", plain(&c["number"]), plain(&c["status"]), plain(&c["subject"]), clocks.join(", "));
        }
    }
    let changed = &doc["changed"];
    if changed.is_object() {
        println!("\nsince {}: {} new record(s)", plain(&changed["since"]), plain(&changed["records"]));
        for l in changed["lines"].as_array().into_iter().flatten() {
            println!("  {}", plain(&l["line"]));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn show(ws: &mut Workspace, args: &ShowArgs) -> Result<ExitCode> {
    let (id, viewer) = look_up(ws, &args.lookup, &args.reader)?;
    let doc = kinship_pipeline::profile_document(&*ws.store, &ws.config, &id)?
        .with_context(|| format!("no profile {id}; find ids with `kinship profile search`"))?;
    let projected = kinship_policy::project(&doc, &viewer.policy, &ws.keys()?.pseudonym);
    ws.audit(&viewer.actor, "read", Some(&id), serde_json::json!({ "fields": projected.fields }))?;
    let doc = projected.value;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("{}  {}", doc["id"].as_str().unwrap_or_default(), display_name(&doc["traits"]));
    println!("\ntraits");
    for (k, v) in doc["traits"].as_object().into_iter().flatten() {
        let from = doc["trait_sources"][k]["source"].as_str().unwrap_or("");
        println!("  {k:<14} {:<40} ({from})", plain(v));
    }
    println!("\nidentifiers");
    for i in doc["identifiers"].as_array().into_iter().flatten() {
        println!("  {:<16} {:<40} ({})", plain(&i["kind"]), plain(&i["value"]), plain(&i["source"]));
    }
    let events = doc["events"].as_array().map_or(&[][..], Vec::as_slice);
    println!("\n{} record(s); timeline of {} event(s), newest first:", doc["records"].as_array().map_or(0, Vec::len), events.len());
    for e in events.iter().take(15) {
        println!("  {}  {:<18} {}", plain(&e["timestamp"]), plain(&e["event"]), plain(&e["source"]));
    }
    if events.len() > 15 {
        println!("  ... {} more (use --json for all)", events.len() - 15);
    }
    Ok(ExitCode::SUCCESS)
}

fn one_profile(store: &dyn Database, kind: &str, value: String) -> Result<String> {
    let found = store.find_profiles(kind, &value)?;
    match found.as_slice() {
        [] => bail!("no profile has {kind} {value}"),
        [one] => Ok(one.clone()),
        many => bail!("{} profiles share {kind} {value} (guards kept them apart): {}; pick one with --id", many.len(), many.join(", ")),
    }
}

fn flat_traits(stored: &str) -> Value {
    Value::Object(kinship_pipeline::golden::values(stored))
}

fn display_name(traits: &Value) -> String {
    let parts: Vec<&str> = ["first_name", "last_name", "name"].iter().filter_map(|k| traits[*k].as_str()).collect();
    if parts.is_empty() { "(no name)".into() } else { parts.join(" ") }
}

pub fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// The database file in a data directory, for the bench and tests.
pub fn database_path(dir: &Path) -> PathBuf {
    dir.join(DATABASE_FILE)
}
