//! `kinship bench`: speed measured on generated data, beside a peer run on the same input.

use crate::DataDir;
use crate::commands::{Workspace, database_path};
use crate::progress::Progress;
use anyhow::{Context, Result};
use clap::Subcommand;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

/// DuckDB run beside a bench on the same data, as CSV files: where they go, and the Python
/// that has `duckdb`.
#[derive(clap::Args)]
pub struct DuckdbPeer {
    /// Python with the `duckdb` module, for the peer; the peer is skipped when it cannot run.
    #[arg(long, default_value = "python3")]
    peer_python: PathBuf,
    /// Where the peer's CSV files go (kept); a temporary directory by default.
    // Its own id: `dir` is the global `--data`'s, whose default would fill this.
    #[arg(long = "dir", id = "bench_dir")]
    dir: Option<PathBuf>,
    #[arg(long)]
    no_peer: bool,
}

impl DuckdbPeer {
    /// The directory for the peer's files (`bench` names the temporary one), or `None` with
    /// `--no-peer`.
    pub fn dir(&self, bench: &str) -> Option<PathBuf> {
        if self.no_peer {
            return None;
        }
        Some(self.dir.clone().unwrap_or_else(|| std::env::temp_dir().join(format!("kinship-bench-{bench}-{}", std::process::id()))))
    }

    /// Runs `script` with `args` and returns the words it printed.
    pub fn run(&self, script: &str, args: &[&str]) -> Result<Vec<String>> {
        let out = std::process::Command::new(&self.peer_python)
            .arg("-c")
            .arg(script)
            .args(args)
            .output()
            .with_context(|| format!("running {}", self.peer_python.display()))?;
        anyhow::ensure!(out.status.success(), "the DuckDB peer failed: {}", String::from_utf8_lossy(&out.stderr).trim());
        Ok(String::from_utf8_lossy(&out.stdout).split_whitespace().map(String::from).collect())
    }
}

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Ingest a generated contacts CSV (parse, normalise, commit to SQLite), then resolve it;
    /// the same CSV is loaded by Python's sqlite3 module as the peer.
    Ingest {
        #[arg(long, default_value_t = 1_000_000)]
        rows: usize,
        /// Working directory (kept afterwards); a temporary one by default.
        // Its own id: `dir` is the global `--data`'s, whose default would fill this.
        #[arg(long = "dir", id = "bench_dir")]
        dir: Option<PathBuf>,
        /// Skip the Python peer.
        #[arg(long)]
        no_peer: bool,
        /// Ingest the same file again with declared fields (a date format and zone, a name
        /// in title case, a value map, a regular expression, a type) and compare.
        #[arg(long)]
        transforms: bool,
    },
    /// Generate messy person records (FEBRL's columns) and optionally time `kinship dedupe` on them.
    Dedupe(crate::dedupe::BenchDedupeArgs),
    /// Segments over generated profiles and events in memory: preview, full recomputation,
    /// and single-event updates; DuckDB runs the same segment in SQL as the peer.
    Segments(crate::bench_segments::BenchSegmentsArgs),
    /// Signed webhook deliveries per second from the outbox to a local receiver, through the
    /// server's delivery worker.
    Deliveries(crate::bench_deliveries::BenchDeliveriesArgs),
    /// A 5-step funnel over generated timelines (1M profiles, 20M events) beside DuckDB's SQL
    /// for the same funnel; one new event's update; an experiment readout over 1M profiles.
    Measure(crate::bench_measure::BenchMeasureArgs),
    /// Customer success over generated profiles held in memory: health scores, one event's
    /// score update, NPS and earned growth, beside DuckDB's SQL for NPS and a quarter's growth.
    Success(crate::bench_success::BenchSuccessArgs),
    /// The briefing of a customer with 1,000 records beside its 360 and DuckDB's joins, and
    /// the SLA queue of 100,000 open cases sorted by due time beside DuckDB's sort.
    Service(crate::bench_service::BenchServiceArgs),
}

pub fn run(cmd: &BenchCommand) -> Result<ExitCode> {
    match cmd {
        BenchCommand::Ingest { rows, dir, no_peer, transforms } => bench_ingest(*rows, dir.as_deref(), *no_peer, *transforms),
        BenchCommand::Dedupe(args) => crate::dedupe::run_bench_dedupe(args).map(|()| ExitCode::SUCCESS),
        BenchCommand::Segments(args) => crate::bench_segments::run(args).map(|()| ExitCode::SUCCESS),
        BenchCommand::Deliveries(args) => crate::bench_deliveries::run(args).map(|()| ExitCode::SUCCESS),
        BenchCommand::Measure(args) => crate::bench_measure::run(args).map(|()| ExitCode::SUCCESS),
        BenchCommand::Success(args) => crate::bench_success::run(args).map(|()| ExitCode::SUCCESS),
        BenchCommand::Service(args) => crate::bench_service::run(args).map(|()| ExitCode::SUCCESS),
    }
}

const BENCH_CONFIG: &str = r#"[resolve]
default_region = "US"
priority = ["email", "phone"]

[sources.contacts]
type = "csv"
path = "contacts.csv"
key = "crm_id"
timestamp = "updated_at"
identifiers = { email = "email", phone = "phone" }
traits = { first_name = "first_name", last_name = "last_name", email = "email", phone = "phone", city = "city" }
"#;

/// The same source with transforms on every mapped field but the identifiers'.
const TRANSFORM_FIELDS: &str = r#"
[sources.contacts.fields]
updated_at = { format = "%Y-%m-%d", timezone = "America/New_York" }
first_name = { case = "title" }
last_name = { from = "last_name", case = "upper" }
city = { map = { Springfield = "Springfield, IL", Riverside = "Riverside, CA" }, default = "elsewhere" }
domain = { from = "email", extract = "@(.+)$", case = "lower" }
"#;

/// Contacts where every person has two rows that share an email spelled differently, so
/// resolution has real joins to make.
fn write_contacts(path: &Path, rows: usize) -> Result<()> {
    const FIRST: &[&str] =
        &["James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda", "David", "Elizabeth", "William", "Barbara"];
    const LAST: &[&str] =
        &["Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez", "Wilson", "Taylor"];
    const CITY: &[&str] = &["Springfield", "Riverside", "Franklin", "Greenville", "Bristol", "Clinton", "Fairview", "Salem"];
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    writeln!(out, "crm_id,first_name,last_name,email,phone,city,updated_at")?;
    for i in 0..rows {
        let person = i / 2;
        let (first, last) = (FIRST[person % FIRST.len()], LAST[(person / FIRST.len()) % LAST.len()]);
        let email = if i % 2 == 0 {
            format!("{}.{}{}@example.com", first.to_lowercase(), last.to_lowercase(), person)
        } else {
            format!(" {}.{}{}@Example.COM", first, last, person)
        };
        let phone = format!("(2{:02}) 555-{:04}", 10 + person % 89, person % 10_000);
        let phone = if i % 2 == 0 { phone } else { String::new() };
        writeln!(out, "C{i:08},{first},{last},{email},{phone},{},2024-{:02}-{:02}", CITY[person % CITY.len()], 1 + i % 12, 1 + i % 28)?;
    }
    out.flush()?;
    Ok(())
}

/// Peak memory of this process, as text for a report line.
pub fn peak_rss_mib_text() -> String {
    peak_rss_mib().map_or_else(|| "unknown".into(), |m| format!("{m:.0}"))
}

fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = status.lines().find(|l| l.starts_with("VmHWM:"))?.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

const PEER_SCRIPT: &str = r#"
import csv, sqlite3, sys, time
src, db = sys.argv[1], sys.argv[2]
t = time.perf_counter()
con = sqlite3.connect(db)
con.execute("PRAGMA journal_mode=WAL"); con.execute("PRAGMA synchronous=NORMAL")
con.execute("CREATE TABLE records (id INTEGER PRIMARY KEY, source TEXT, record_key TEXT, payload TEXT, UNIQUE (source, record_key))")
with open(src, newline="") as f:
    r = csv.reader(f); header = next(r)
    con.executemany("INSERT OR IGNORE INTO records (source, record_key, payload) VALUES ('contacts', ?, ?)",
                    ((row[0], ",".join(row)) for row in r))
con.commit()
print(time.perf_counter() - t)
"#;

fn bench_ingest(rows: usize, dir: Option<&Path>, no_peer: bool, transforms: bool) -> Result<ExitCode> {
    let dir = match dir {
        Some(d) => d.to_path_buf(),
        None => std::env::temp_dir().join(format!("kinship-bench-{}", std::process::id())),
    };
    if database_path(&dir).exists() {
        anyhow::bail!("{} already holds a database; give an empty --dir", dir.display());
    }
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("kinship.toml"), BENCH_CONFIG)?;
    let csv = dir.join("contacts.csv");
    println!("generating {rows} contact rows in {}", csv.display());
    write_contacts(&csv, rows)?;
    let size = std::fs::metadata(&csv)?.len();

    let mut ws = Workspace::open(&DataDir { dir: dir.clone() })?;
    let bar = Progress::new("ingest", true);
    let t = Instant::now();
    let suppressed = ws.suppression()?.check();
    let report = kinship_pipeline::ingest_source(&mut *ws.store, &ws.config, "contacts", &dir, &suppressed, &|d, t| bar.update(d, t))?;
    // Up to where `kinship ingest` ends: its log copied into the database file on close.
    ws.store.checkpoint()?;
    let ingest_s = t.elapsed().as_secs_f64();
    bar.finish();
    let bar = Progress::new("resolve", false);
    let t = Instant::now();
    let resolved = kinship_pipeline::resolve_all(&mut *ws.store, &ws.config, &|d, t| bar.update(d, t))?;
    let resolve_s = t.elapsed().as_secs_f64();
    bar.finish();
    let rss = peak_rss_mib();

    println!("\ninput          {rows} rows, {:.1} MiB CSV", size as f64 / 1048576.0);
    println!(
        "ingest         {ingest_s:.2} s  = {:.0} records/s  ({} new, {} rejected), parse + normalise + commit + checkpoint into the database file",
        report.inserted as f64 / ingest_s,
        report.inserted,
        report.rejected
    );
    println!(
        "resolve        {resolve_s:.2} s  ({} records -> {} profiles, {} joins)",
        resolved.records, resolved.profiles, resolved.merges
    );
    let phases: Vec<String> = resolved.phases.iter().map(|(name, s)| format!("{name} {s:.2} s")).collect();
    println!("  phases       {}", phases.join(", "));
    if let Some(rss) = rss {
        println!("peak memory    {rss:.0} MiB (whole process)");
    }
    if !no_peer {
        let peer_db = dir.join("peer.sqlite");
        let _ = std::fs::remove_file(&peer_db);
        let out = std::process::Command::new("python3")
            .arg("-c")
            .arg(PEER_SCRIPT)
            .arg(&csv)
            .arg(&peer_db)
            .output()
            .context("running python3 for the peer")?;
        if out.status.success() {
            let peer_s: f64 = String::from_utf8_lossy(&out.stdout).trim().parse().context("reading the peer's time")?;
            println!(
                "peer           {peer_s:.2} s  = {:.0} rows/s  Python csv + sqlite3 executemany, raw rows only (no normalisation, no identifiers)",
                rows as f64 / peer_s
            );
            println!("ratio          kinship ingest is {:.2}x the peer's speed", peer_s / ingest_s);
        } else {
            println!("peer           failed: {}", String::from_utf8_lossy(&out.stderr).trim());
        }
    }
    if transforms {
        // Without and with, alternating into fresh databases over the same file, so that
        // neither side always runs second (with the other's pages in the cache).
        let config = BENCH_CONFIG.replace("city = \"city\" }", "city = \"city\", domain = \"domain\" }") + TRANSFORM_FIELDS;
        let mut times = [Vec::new(), Vec::new()];
        for round in 1..=2 {
            for (side, text) in [BENCH_CONFIG, config.as_str()].into_iter().enumerate() {
                let run = dir.join(format!("{}-{round}", ["without", "with"][side]));
                std::fs::create_dir_all(&run)?;
                std::fs::write(run.join("kinship.toml"), text)?;
                std::fs::hard_link(&csv, run.join("contacts.csv")).or_else(|_| std::fs::copy(&csv, run.join("contacts.csv")).map(drop))?;
                let mut ws = Workspace::open(&DataDir { dir: run.clone() })?;
                let t = Instant::now();
                let suppressed = ws.suppression()?.check();
                let report = kinship_pipeline::ingest_source(&mut *ws.store, &ws.config, "contacts", &run, &suppressed, &|_, _| {})?;
                ws.store.checkpoint()?;
                let s = t.elapsed().as_secs_f64();
                println!(
                    "{:<14} {s:.2} s  = {:.0} records/s  ({} rejected)",
                    ["without", "with transforms"][side],
                    report.inserted as f64 / s,
                    report.rejected
                );
                times[side].push(s);
                drop(ws);
                std::fs::remove_dir_all(&run)?;
            }
        }
        let total = |side: usize| times[side].iter().sum::<f64>();
        println!("transforms     {:.2}x the time without (five declared fields, rounds alternated)", total(1) / total(0));
    }
    println!("data left in   {}", dir.display());
    Ok(ExitCode::SUCCESS)
}
