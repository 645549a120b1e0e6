//! `kinship segment ...` and `kinship computed ...`: segments and computed traits.

use crate::DataDir;
use crate::commands::{Workspace, operator};
use crate::progress::Progress;
use anyhow::{Context, Result, bail};
use clap::Subcommand;
use kinship_pipeline::audience;
use kinship_pipeline::golden;
use kinship_segments::{Audience, DefinitionSource, Kind};
use serde_json::json;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum SegmentCommand {
    /// Define a segment and compute its members, e.g.
    /// `kinship segment create repeat 'count("Order Completed", last 90 days) >= 2'`.
    Create { name: String, expression: String },
    /// Every segment with its size and expression.
    List,
    /// A segment's expression, size, what it reads, and its size over time.
    Show { name: String },
    /// Count (and sample) the profiles an expression selects, without saving anything.
    Preview {
        expression: String,
        /// Print `{"count": N, "sample": [...]}`.
        #[arg(long)]
        json: bool,
    },
    /// Write a segment's members as CSV (profile_id, then name and email): only those with
    /// marketing consent; how many were left out is printed.
    Members {
        name: String,
        /// File to write (default: standard output).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Delete a segment no other definition uses.
    Delete { name: String },
}

#[derive(Subcommand)]
pub enum ComputedCommand {
    /// Define a computed trait, e.g.
    /// `kinship computed create lifetime_value 'sum("Order Completed", revenue)'`.
    Create { name: String, expression: String },
    /// Every computed trait with its expression.
    List,
    /// Delete a computed trait no other definition uses.
    Delete { name: String },
}

/// Loads every profile and definition into the audience engine, with a progress bar.
pub fn load(ws: &Workspace) -> Result<Audience> {
    let bar = Progress::new("segments", false);
    let loaded = audience::load_audience(&*ws.store, &ws.config, &|d, t| bar.update(d, t));
    bar.finish();
    Ok(loaded?)
}

/// After profiles changed outside the real-time path (a full resolve, a split or merge):
/// re-evaluates every definition and stores who entered and left.
pub fn sync_after_change(ws: &mut Workspace) -> Result<()> {
    if ws.store.definitions()?.is_empty() {
        return Ok(());
    }
    let loaded = load(ws)?;
    let n = audience::sync_memberships(&mut *ws.store, &loaded)?;
    if n > 0 {
        println!("segments: {n} entr(ies) and exit(s) recorded");
    }
    Ok(())
}

pub fn segment(data: &DataDir, cmd: &SegmentCommand) -> Result<ExitCode> {
    let mut ws = Workspace::open(data)?;
    match cmd {
        SegmentCommand::Create { name, expression } => {
            let mut engine = load(&ws)?;
            let source = DefinitionSource { kind: Kind::Segment, name: name.clone(), expression: expression.clone() };
            let size = audience::define(&mut *ws.store, &ws.config, &mut engine, source)?;
            ws.audit(&operator(), "segment.create", None, json!({ "segment": name, "expression": kinship_expr::redacted(expression) }))?;
            println!("segment {name}: {size} of {} profiles", engine.profile_count());
        }
        SegmentCommand::List => {
            let engine_free = ws.store.definitions()?;
            println!("{:<24} {:>9}  expression", "segment", "size");
            for d in engine_free.iter().filter(|d| d.kind == "segment") {
                let size = ws.store.segment_sizes(&d.name)?.last().map_or(0, |s| s.1);
                println!("{:<24} {:>9}  {}", d.name, size, d.expression);
            }
        }
        SegmentCommand::Show { name } => {
            let defs = ws.store.definitions()?;
            let Some(d) = defs.iter().find(|d| d.kind == "segment" && &d.name == name) else { bail!(unknown(name, &defs)) };
            let sizes = ws.store.segment_sizes(name)?;
            let deps = kinship_expr::parse(&d.expression).map(|e| e.dependencies()).context("the stored expression parses")?;
            println!("segment     {name}");
            println!("expression  {}", d.expression);
            println!("size        {}", sizes.last().map_or(0, |s| s.1));
            println!("reads       {}", serde_json::to_string(&deps)?);
            println!("sizes over time (newest last):");
            for (at, size) in sizes.iter().rev().take(20).rev() {
                println!("  {}  {size}", iso(*at));
            }
        }
        SegmentCommand::Preview { expression, json } => {
            let engine = load(&ws)?;
            let preview = engine.preview(expression, now(), 10)?;
            ws.audit(
                &operator(),
                "segment.preview",
                None,
                json!({ "expression": kinship_expr::redacted(expression), "count": preview.count, "sample": preview.sample }),
            )?;
            let sample: Vec<serde_json::Value> = preview.sample.iter().map(|id| summary(&ws, id)).collect::<Result<_>>()?;
            if *json {
                println!("{}", json!({ "count": preview.count, "sample": sample }));
            } else {
                println!("{} of {} profiles match", preview.count, engine.profile_count());
                for s in &sample {
                    println!(
                        "  {}  {}  {}",
                        s["id"].as_str().unwrap_or(""),
                        s["name"].as_str().unwrap_or(""),
                        s["email"].as_str().unwrap_or("")
                    );
                }
            }
        }
        SegmentCommand::Members { name, out } => {
            let defs = ws.store.definitions()?;
            if !defs.iter().any(|d| d.kind == "segment" && &d.name == name) {
                bail!(unknown(name, &defs));
            }
            let mut writer: Box<dyn Write> = match out {
                Some(path) => Box::new(std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?),
                None => Box::new(std::io::stdout().lock()),
            };
            let mut csv = csv::Writer::from_writer(&mut writer);
            csv.write_record(["profile_id", "name", "email"])?;
            let (mut read, mut written, mut withheld) = (0u64, 0u64, 0u64);
            const PAGE: u64 = 10_000;
            loop {
                let (kept, left_out) = audience::consented_members(&*ws.store, &ws.config, name, read, PAGE)?;
                for id in &kept {
                    let s = summary(&ws, id)?;
                    csv.write_record([id.as_str(), s["name"].as_str().unwrap_or(""), s["email"].as_str().unwrap_or("")])?;
                }
                let page = kept.len() as u64 + left_out;
                (read, written, withheld) = (read + page, written + kept.len() as u64, withheld + left_out);
                if page < PAGE {
                    break;
                }
            }
            csv.flush()?;
            drop(csv);
            drop(writer);
            ws.audit(&operator(), "segment.export", None, json!({ "segment": name, "profiles": written, "withheld": withheld }))?;
            let target = out.as_ref().map_or("standard output".to_string(), |p| p.display().to_string());
            eprintln!(
                "wrote {written} member(s) of {name} to {target}; {withheld} left out: no marketing consent (see `consent` on their profiles)"
            );
        }
        SegmentCommand::Delete { name } => {
            let mut engine = load(&ws)?;
            audience::undefine(&mut *ws.store, &mut engine, Kind::Segment, name)?;
            ws.audit(&operator(), "segment.delete", None, json!({ "segment": name }))?;
            println!("deleted segment {name}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn computed(data: &DataDir, cmd: &ComputedCommand) -> Result<ExitCode> {
    let mut ws = Workspace::open(data)?;
    match cmd {
        ComputedCommand::Create { name, expression } => {
            let mut engine = load(&ws)?;
            let source = DefinitionSource { kind: Kind::Computed, name: name.clone(), expression: expression.clone() };
            let n = audience::define(&mut *ws.store, &ws.config, &mut engine, source)?;
            ws.audit(
                &operator(),
                "computed.create",
                None,
                json!({ "computed_trait": name, "expression": kinship_expr::redacted(expression) }),
            )?;
            println!("computed trait {name}: evaluated on {n} profiles; it shows on each profile as computed.{name}");
        }
        ComputedCommand::List => {
            println!("{:<24}  expression", "computed trait");
            for d in ws.store.definitions()?.iter().filter(|d| d.kind == "computed") {
                println!("{:<24}  {}", d.name, d.expression);
            }
        }
        ComputedCommand::Delete { name } => {
            let mut engine = load(&ws)?;
            audience::undefine(&mut *ws.store, &mut engine, Kind::Computed, name)?;
            ws.audit(&operator(), "computed.delete", None, json!({ "computed_trait": name }))?;
            println!("deleted computed trait {name}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn unknown(name: &str, defs: &[kinship_store::DefinitionRow]) -> String {
    let names: Vec<&str> = defs.iter().filter(|d| d.kind == "segment").map(|d| d.name.as_str()).collect();
    format!(
        "no segment named {name:?}; the segments are: {} (see `kinship segment list`)",
        if names.is_empty() { "none yet".into() } else { names.join(", ") }
    )
}

/// A profile's id, display name and email, for samples and member lists.
fn summary(ws: &Workspace, id: &str) -> Result<serde_json::Value> {
    let traits = ws.store.profile(id)?.map(|p| golden::values(&p.traits)).unwrap_or_default();
    let name: Vec<&str> = ["first_name", "last_name", "name"].iter().filter_map(|k| traits.get(*k).and_then(|v| v.as_str())).collect();
    Ok(json!({ "id": id, "name": name.join(" "), "email": traits.get("email") }))
}

fn now() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map_or_else(|| ms.to_string(), |t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}
