//! Governance commands: `audit`, `audit verify`, `erase`, `export`, `privacy unsuppress`.
//! Each is the local operator's (admin) and writes an audit entry naming `cli:USER`.

use crate::DataDir;
use crate::commands::{Workspace, operator};
use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use kinship_pipeline::governance::{self, Subject};
use kinship_store::AuditFilter;
use serde_json::json;
use std::process::ExitCode;

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct AuditArgs {
    #[command(subcommand)]
    command: Option<AuditCommand>,
    /// Entries about this profile.
    #[arg(long)]
    profile: Option<String>,
    /// Entries by this actor, e.g. `token:ops` or `cli:alice`.
    #[arg(long)]
    actor: Option<String>,
    /// Entries at or after this time: RFC 3339, a date, or Unix milliseconds.
    #[arg(long)]
    since: Option<String>,
    /// Most entries to print.
    #[arg(long, default_value_t = 1000)]
    limit: usize,
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check every entry, the hash chain and the anchor; exits non-zero if anything was changed.
    Verify,
}

/// Names the person of an erasure or export: exactly one of these.
#[derive(Args)]
#[group(required = true, multiple = false)]
pub struct SubjectArgs {
    #[arg(long)]
    profile: Option<String>,
    #[arg(long)]
    email: Option<String>,
    #[arg(long)]
    phone: Option<String>,
    /// Any identifier as KIND:VALUE, e.g. crm_id:C-00042.
    #[arg(long)]
    identifier: Option<String>,
}

impl SubjectArgs {
    fn subject(&self, ws: &Workspace) -> Result<Subject> {
        Subject::parse(self.profile.as_deref(), self.email.as_deref(), self.phone.as_deref(), self.identifier.as_deref(), &ws.config)
            .map_err(anyhow::Error::msg)
    }
}

#[derive(Subcommand)]
pub enum PrivacyCommand {
    /// Lift the suppression of an erased identifier, so data with it is ingested again.
    Unsuppress(UnsuppressArgs),
}

#[derive(Args)]
#[group(required = true, multiple = false)]
pub struct UnsuppressArgs {
    #[arg(long)]
    email: Option<String>,
    #[arg(long)]
    phone: Option<String>,
    /// Any identifier as KIND:VALUE.
    #[arg(long)]
    identifier: Option<String>,
}

pub fn audit(data: &DataDir, args: &AuditArgs) -> Result<ExitCode> {
    let mut ws = Workspace::open(data)?;
    if let Some(AuditCommand::Verify) = args.command {
        return match governance::verify_audit(&*ws.store, &ws.dir) {
            Ok(v) => {
                println!("audit log verified: {} entries, chained and anchored", v.entries);
                if v.after_anchor > 0 {
                    println!("  {} newest entries were written after the anchor was last moved (an interrupted write)", v.after_anchor);
                }
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => {
                eprintln!("audit log verification FAILED: {e}");
                Ok(ExitCode::FAILURE)
            }
        };
    }
    let since_ms = args.since.as_deref().map(governance::parse_since).transpose().map_err(anyhow::Error::msg)?;
    let filter = AuditFilter { profile: args.profile.clone(), actor: args.actor.clone(), since_ms, after_seq: 0 };
    let rows = ws.store.audit_lines(&filter, args.limit)?;
    for row in &rows {
        println!("{}", row.line);
    }
    ws.audit(&operator(), "audit.read", None, json!({ "entries": rows.len() }))?;
    Ok(ExitCode::SUCCESS)
}

pub fn erase(data: &DataDir, args: &SubjectArgs) -> Result<ExitCode> {
    let mut ws = Workspace::open(data)?;
    let subject = args.subject(&ws)?;
    let suppression = ws.suppression()?;
    let report = governance::erase(&mut *ws.store, &ws.config, &ws.dir, &subject, &suppression)?;
    ws.audit(
        &operator(),
        "erase",
        None,
        json!({ "request": report.request, "by": subject.kind(), "profiles": report.profiles, "deleted": report.deleted,
                "suppressed_identifiers": report.suppressed_identifiers }),
    )?;
    let d = &report.deleted;
    println!(
        "erased request {}: {} profile(s), {} record(s), {} identifier(s), {} match evidence row(s), {} decision(s)",
        report.request, d.profiles, d.records, d.identifiers, d.merge_edges, d.link_constraints
    );
    println!("  {} identifier(s) are suppressed: data naming them is dropped on ingest", report.suppressed_identifiers);
    if report.upload_rows_removed > 0 {
        println!("  {} row(s) removed from uploaded exports", report.upload_rows_removed);
    }
    if report.reject_lines_removed > 0 {
        println!("  {} line(s) removed from reject files", report.reject_lines_removed);
    }
    if !report.files_still_mentioning.is_empty() {
        println!("  these files in the data directory are not Kinship's and still mention the person; erase them at their source:");
        for path in &report.files_still_mentioning {
            println!("    {}", path.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn export(data: &DataDir, args: &SubjectArgs) -> Result<ExitCode> {
    let mut ws = Workspace::open(data)?;
    let subject = args.subject(&ws)?;
    let export = governance::subject_export(&*ws.store, &ws.config, &subject)?
        .with_context(|| format!("nothing is held for this {}", subject.kind()))?;
    for profile in governance::subject_profiles(&*ws.store, &subject)? {
        ws.audit(&operator(), "privacy.export", Some(&profile), json!({ "by": subject.kind() }))?;
    }
    println!("{}", serde_json::to_string_pretty(&export)?);
    Ok(ExitCode::SUCCESS)
}

pub fn privacy(data: &DataDir, cmd: &PrivacyCommand) -> Result<ExitCode> {
    let PrivacyCommand::Unsuppress(args) = cmd;
    let mut ws = Workspace::open(data)?;
    let Subject::Identifier(identifier) =
        Subject::parse(None, args.email.as_deref(), args.phone.as_deref(), args.identifier.as_deref(), &ws.config)
            .map_err(anyhow::Error::msg)?
    else {
        bail!("give the identifier to lift: --email, --phone or --identifier");
    };
    let suppression = ws.suppression()?;
    if !governance::unsuppress(&mut *ws.store, &suppression, &identifier)? {
        bail!("this {} is not suppressed", identifier.kind);
    }
    ws.audit(&operator(), "privacy.unsuppress", None, json!({ "kind": identifier.kind.as_str() }))?;
    println!("lifted the suppression of this {}: data with it is ingested again", identifier.kind);
    Ok(ExitCode::SUCCESS)
}
