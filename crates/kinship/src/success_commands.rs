//! `kinship nps`, `kinship growth` and `kinship health`: NPS with its interval, earned growth
//! per period, and health scores with their exceptions and backtest, over every profile as
//! `[measures]` says. Audited; the drill-down lists are profile ids, which the local operator
//! may see.

use crate::DataDir;
use crate::commands::{Workspace, operator};
use crate::segment_commands::load;
use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use kinship_measure::health::{HealthDefinition, HealthProgram};
use kinship_measure::nps::Score;
use kinship_pipeline::audience;
use kinship_pipeline::success::{self, NpsBy, Period};
use kinship_segments::{DefinitionSource, Kind};
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args)]
pub struct NpsArgs {
    /// Group answers by `month`, `cohort` (month of first purchase), `segment`, or `property:NAME`.
    #[arg(long, default_value = "month")]
    by: String,
    /// Print the whole report, with the profiles behind each group, as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct GrowthArgs {
    /// `month`, `quarter` or `year`.
    #[arg(long, default_value = "quarter")]
    period: String,
    /// How many periods, the last one holding today.
    #[arg(long, default_value_t = 4)]
    periods: usize,
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
pub enum HealthCommand {
    /// Save a health definition (TOML): each profile's score then shows on its 360, and
    /// segments read it as `health("NAME").score` and `.band`, kept current as events arrive.
    Create { file: PathBuf },
    /// The saved health definitions.
    List,
    /// Delete a saved health definition no segment reads.
    Delete { name: String },
    /// Scores every profile by a health definition (saved, by name, or a TOML file): bands,
    /// the distribution, the lowest scores with their reasons, and this week's alerts (or one
    /// profile's explanation).
    Score {
        definition: String,
        /// Explain one profile's score.
        #[arg(long)]
        profile: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Scores customers as of a past date and compares with who stopped buying afterwards:
    /// AUC, precision of the lowest tenth and calibration by band, beside a logistic
    /// regression fitted on the same measures.
    Backtest {
        /// A saved definition's name, or a TOML file.
        definition: String,
        /// The date to score as of, YYYY-MM-DD.
        #[arg(long)]
        as_of: String,
        /// How long after it to look for purchases, e.g. `90d`.
        #[arg(long, default_value = "90d")]
        horizon: String,
        #[arg(long)]
        json: bool,
    },
    /// Learns the measures' weights from history: who stopped buying in the horizon after
    /// a past date, against each measure's score then. Prints the weights beside the
    /// definition's; `--write` saves the definition with them. Judge the result with
    /// `backtest` on a later date.
    Learn {
        /// A saved definition's name, or a TOML file.
        definition: String,
        /// The date to learn from, YYYY-MM-DD: at least the horizon before the data ends.
        #[arg(long)]
        as_of: String,
        #[arg(long, default_value = "90d")]
        horizon: String,
        /// Learn from this many dates 30 days apart, ending at `--as-of`.
        #[arg(long, default_value_t = 12)]
        months: u32,
        /// Write the definition, with the learnt weights, to this TOML file.
        #[arg(long)]
        write: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// A saved definition's alerts as kept (`kinship serve` keeps them every
    /// `[measures] alerts_every`; `--keep` runs a pass here first).
    Alerts {
        name: String,
        /// open, closed, held or all.
        #[arg(long, default_value = "open")]
        status: String,
        #[arg(long)]
        keep: bool,
        #[arg(long)]
        json: bool,
    },
    /// Snooze an open alert until a date (2026-12-20) or for a while (3 days), saying why.
    Snooze {
        id: i64,
        #[arg(long)]
        until: String,
        #[arg(long)]
        reason: String,
    },
}

fn score_text(score: &Option<Score>, min: u64) -> String {
    match score {
        Some(s) => format!("{:+.1} ± {:.1}", s.nps, s.margin),
        None => format!("insufficient (under {min} answers)"),
    }
}

fn share(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{:.1}%", v * 100.0))
}

pub fn nps(data: &DataDir, args: &NpsArgs) -> Result<ExitCode> {
    let by: NpsBy = args.by.parse().map_err(anyhow::Error::msg)?;
    let mut ws = Workspace::open(data)?;
    let audience = load(&ws)?;
    let report = success::nps(&audience, &ws.config.measures, &by, success::data_now(&audience))?;
    ws.audit(&operator(), "nps.read", None, json!({ "by": args.by, "answers": report.answers }))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(ExitCode::SUCCESS);
    }
    let min = report.min_answers;
    println!("NPS {} from {} answers (95% interval)", score_text(&report.overall, min), report.answers);
    println!("revenue-weighted {}", score_text(&report.revenue_weighted, min));
    println!(
        "detractors among customers who stopped buying: {} of {}; among those still buying: {} of {}",
        share(report.detractors_among_churned),
        report.churned_answered,
        share(report.detractors_among_active),
        report.active_answered
    );
    println!("by {}:", args.by);
    for g in &report.groups {
        println!("  {:<24} {:>6} answers  {}", g.label, g.answers, score_text(&g.score, min));
    }
    println!("(--json lists the profiles behind each group)");
    Ok(ExitCode::SUCCESS)
}

pub fn growth(data: &DataDir, args: &GrowthArgs) -> Result<ExitCode> {
    let period: Period = args.period.parse().map_err(anyhow::Error::msg)?;
    let mut ws = Workspace::open(data)?;
    let audience = load(&ws)?;
    let periods = success::growth(&audience, &ws.config.measures, period, args.periods, success::data_now(&audience))?;
    ws.audit(&operator(), "growth.read", None, json!({ "period": args.period, "periods": periods.len() }))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&periods)?);
        return Ok(ExitCode::SUCCESS);
    }
    let pct = |v: Option<f64>| v.map_or("-".into(), |v| format!("{:.1}%", v * 100.0));
    println!("{:<10} {:>12} {:>8} {:>12} {:>10} {:>14} {:>10}", "period", "revenue", "NRR", "new", "earned", "earned growth", "earned %");
    for p in &periods {
        let g = &p.growth;
        println!(
            "{:<10} {:>12.2} {:>8} {:>12.2} {:>10.2} {:>14} {:>10}{}",
            p.label,
            g.current_revenue,
            pct(g.net_revenue_retention),
            g.new_revenue,
            g.earned_new_revenue,
            pct(g.earned_growth_rate),
            pct(g.earned_share_of_new_revenue),
            if p.partial { "  (so far)" } else { "" }
        );
    }
    if ws.config.measures.earned.is_none() {
        println!("note: no [measures] earned rule, so every new customer counts as bought");
    }
    Ok(ExitCode::SUCCESS)
}

pub fn health(data: &DataDir, cmd: &HealthCommand) -> Result<ExitCode> {
    let mut ws = Workspace::open(data)?;
    match cmd {
        HealthCommand::Create { file } => {
            let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
            let name = HealthDefinition::parse(&text)?.name;
            let mut engine = load(&ws)?;
            let source = DefinitionSource { kind: Kind::Health, name: name.clone(), expression: text };
            audience::define(&mut *ws.store, &ws.config, &mut engine, source)?;
            ws.audit(&operator(), "health.create", None, json!({ "health": name }))?;
            println!("health definition {name} saved; profiles show their score, and segments read health(\"{name}\").score and .band");
        }
        HealthCommand::List => {
            println!("{:<24} measures", "health definition");
            for d in ws.store.definitions()?.iter().filter(|d| d.kind == "health") {
                let measures =
                    HealthDefinition::parse(&d.expression).map(|h| h.measures.iter().map(|m| m.name.clone()).collect::<Vec<_>>());
                println!("{:<24} {}", d.name, measures.map_or_else(|e| format!("(does not parse: {e})"), |m| m.join(", ")));
            }
        }
        HealthCommand::Delete { name } => {
            let mut engine = load(&ws)?;
            audience::undefine(&mut *ws.store, &mut engine, Kind::Health, name)?;
            ws.audit(&operator(), "health.delete", None, json!({ "health": name }))?;
            println!("deleted health definition {name}");
        }
        HealthCommand::Score { definition, profile, json } => score(&mut ws, definition, profile.as_deref(), *json)?,
        HealthCommand::Backtest { definition, as_of, horizon, json } => backtest(&mut ws, definition, as_of, horizon, *json)?,
        HealthCommand::Learn { definition, as_of, horizon, months, write, json } => {
            learn(&mut ws, definition, (as_of, horizon, *months), write.as_deref(), *json)?;
        }
        HealthCommand::Alerts { name, status, keep, json } => alerts(&mut ws, name, status, *keep, *json)?,
        HealthCommand::Snooze { id, until, reason } => {
            let until_ms = success::snooze_until(until, kinship_pipeline::now_ms()).map_err(|e| anyhow::anyhow!("--{e}"))?;
            let reason = success::snooze_reason(reason).map_err(|e| anyhow::anyhow!("--reason: {e}"))?;
            if !ws.store.snooze_alert(*id, until_ms, &reason, &operator())? {
                anyhow::bail!("no open alert {id} (see `kinship health alerts NAME`)");
            }
            let alert = ws.store.health_alert(*id)?.expect("just snoozed");
            ws.audit(&operator(), "health.alert.snooze", Some(&alert.profile_id), json!({ "alert": id, "until": until_ms }))?;
            println!("alert {id} snoozed until {}", kinship_expr::format_timestamp(until_ms));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The audience and a health definition: a saved one by name, or a TOML file.
fn program_for(ws: &Workspace, definition: &str) -> Result<(kinship_segments::Audience, HealthProgram)> {
    let (audience, program, _) = program_and_text(ws, definition)?;
    Ok((audience, program))
}

/// As [`program_for`], with the definition's text.
fn program_and_text(ws: &Workspace, definition: &str) -> Result<(kinship_segments::Audience, HealthProgram, String)> {
    let audience = load(ws)?;
    let saved = audience.expression(Kind::Health, definition).map(str::to_string);
    let text = match saved {
        Some(text) => text,
        None if std::path::Path::new(definition).is_file() => {
            std::fs::read_to_string(definition).with_context(|| format!("reading {definition}"))?
        }
        None => anyhow::bail!("{definition:?} is neither a saved health definition nor a file (see `kinship health list`)"),
    };
    let program = HealthProgram::parse(&text, &audience.schema())?;
    Ok((audience, program, text))
}

fn score(ws: &mut Workspace, definition: &str, profile: Option<&str>, json: bool) -> Result<()> {
    let (audience, program) = program_for(ws, definition)?;
    let now = success::data_now(&audience);
    if let Some(id) = profile {
        let scored = audience.map_one(id, |p| program.score(p, now));
        ws.audit(&operator(), "health.read", Some(id), json!({ "health": program.definition.name }))?;
        let Some(scored) = scored else { anyhow::bail!("no profile {id} (see `kinship profile`)") };
        let Some(scored) = scored else {
            println!("{id} is not scored: the definition does not apply to it, or no measure has a value");
            return Ok(());
        };
        if json {
            println!("{}", serde_json::to_string_pretty(&scored)?);
            return Ok(());
        }
        println!(
            "{id}: {:.0} ({:?}){}",
            scored.score,
            scored.band,
            scored.context.map_or(String::new(), |c| format!(", in context `{c}`"))
        );
        for m in &scored.measures {
            println!(
                "  {:<20} value {:<10} score {:<6} weight {:<4} adds {:.1}",
                m.name,
                m.value.map_or("-".into(), |v| format!("{v}")),
                m.score.map_or("-".into(), |v| format!("{v:.0}")),
                m.weight,
                m.contribution
            );
        }
        return Ok(());
    }
    let report = success::health(&audience, &program, now);
    ws.audit(&operator(), "health.read", None, json!({ "health": report.name, "scored": report.scored }))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!(
        "health {}: {} profiles scored: {} red, {} yellow, {} green",
        report.name, report.scored, report.red, report.yellow, report.green
    );
    let top = report.distribution.iter().copied().max().unwrap_or(1).max(1);
    for (i, n) in report.distribution.iter().enumerate() {
        println!("  {:>3}–{:<3} {:>7} {}", i * 10, i * 10 + 9, n, "█".repeat((n * 40 / top) as usize));
    }
    let opened = report.alerts.iter().filter(|a| matches!(a, kinship_measure::health::AlertChange::Opened(_))).count();
    let held = report.alerts.iter().filter(|a| matches!(a, kinship_measure::health::AlertChange::HeldBack { .. })).count();
    println!("alerts this week: {opened} raised, {held} held back over the daily limit, {} explained by context", report.explained);
    for (id, s) in report.lowest.iter().take(10) {
        let worst = s
            .measures
            .iter()
            .filter(|m| m.score.is_some())
            .min_by(|a, b| a.score.partial_cmp(&b.score).unwrap_or(std::cmp::Ordering::Equal));
        println!(
            "  {id} {:.0} {:?}{}",
            s.score,
            s.band,
            worst.map_or(String::new(), |m| format!(": lowest measure {} ({})", m.name, m.value.map_or("-".into(), |v| v.to_string())))
        );
    }
    Ok(())
}

/// `--as-of` and `--horizon`, read.
fn date_and_horizon(as_of: &str, horizon: &str) -> Result<(i64, u32)> {
    let as_of_ms = kinship_expr::parse_timestamp(as_of).with_context(|| format!("--as-of {as_of}: give a date, YYYY-MM-DD"))?;
    let days: u32 = horizon
        .trim_end_matches('d')
        .parse()
        .ok()
        .filter(|d| (1..=3650).contains(d))
        .with_context(|| format!("--horizon {horizon}: give days, e.g. 90d"))?;
    Ok((as_of_ms, days))
}

/// `dates` is (`--as-of`, `--horizon`, `--months`).
fn learn(ws: &mut Workspace, definition: &str, dates: (&str, &str, u32), write: Option<&std::path::Path>, json: bool) -> Result<()> {
    let (as_of, horizon, months) = dates;
    anyhow::ensure!((1..=120).contains(&months), "--months {months}: give 1 to 120");
    let (as_of_ms, days) = date_and_horizon(as_of, horizon)?;
    let (audience, program, text) = program_and_text(ws, definition)?;
    if let Some(path) = write {
        let input = std::path::Path::new(definition);
        let same = input.is_file() && matches!((input.canonicalize(), path.canonicalize()), (Ok(a), Ok(b)) if a == b);
        anyhow::ensure!(
            !same,
            "--write {}: that is the definition read; write the learnt weights to another file to compare them",
            path.display()
        );
        // Before learning: a definition this cannot rewrite fails now, not after the work.
        with_weights(&text, &[])?;
    }
    let learnt = success::learn_weights(&audience, &ws.config.measures, &program, as_of_ms, days, months)?;
    ws.audit(
        &operator(),
        "health.learn",
        None,
        json!({ "health": program.definition.name, "as_of": as_of, "horizon_days": days, "months": months, "written": write.map(|p| p.display().to_string()) }),
    )?;
    if let Some(path) = write {
        let weights: Vec<(&str, f64)> = learnt.measures.iter().map(|m| (m.name.as_str(), m.learnt)).collect();
        // Written whole or not at all: a temporary file beside it, then renamed over it.
        let partial = path.with_extension("toml.partial");
        std::fs::write(&partial, with_weights(&text, &weights)?).with_context(|| format!("writing {}", partial.display()))?;
        std::fs::rename(&partial, path).with_context(|| format!("writing {}", path.display()))?;
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&learnt)?);
        return Ok(());
    }
    let first = learnt.dates_ms.last().map_or(String::new(), |t| kinship_expr::format_timestamp(*t)[..10].to_string());
    println!(
        "learnt from {} dates 30 days apart, {first} to {as_of}: {} customers active on one of those dates (counted once per date), {} of whom bought nothing in the next {days} days:",
        learnt.dates_ms.len(),
        learnt.customers,
        learnt.churned
    );
    println!("  {:<24} {:>7} {:>7}", "measure", "weight", "learnt");
    for m in &learnt.measures {
        let note = if m.dropped { "  left out: beside the others, a higher score went with more stopping" } else { "" };
        println!("  {:<24} {:>7.2} {:>7.2}{note}", m.name, m.weight, m.learnt);
    }
    if program.definition.contexts.iter().any(|c| !c.weights.is_empty()) {
        println!("(the contexts' weights are kept as they are, on the definition's scale)");
    }
    match write {
        Some(path) => println!("written to {}; judge it with `kinship health backtest {}` on a later date", path.display(), path.display()),
        None => println!("(--write FILE saves the definition with these weights)"),
    }
    Ok(())
}

/// The definition's TOML with each named measure's `weight` replaced; comments and layout
/// kept, a comment after the old weight included.
fn with_weights(text: &str, weights: &[(&str, f64)]) -> Result<String> {
    let mut doc: toml_edit::DocumentMut = text.parse().context("the definition is not TOML")?;
    let measures = doc
        .get_mut("measures")
        .and_then(toml_edit::Item::as_array_of_tables_mut)
        .context("the definition has no [[measures]] tables to write weights into (an inline `measures = [...]` is not rewritten)")?;
    for table in measures.iter_mut() {
        let name = table.get("name").and_then(toml_edit::Item::as_str).map(str::to_string);
        if let Some((_, w)) = weights.iter().find(|(n, _)| Some(*n) == name.as_deref()) {
            let mut value = toml_edit::Value::from(*w);
            if let Some(old) = table.get("weight").and_then(toml_edit::Item::as_value) {
                *value.decor_mut() = old.decor().clone();
            }
            table["weight"] = toml_edit::Item::Value(value);
        }
    }
    Ok(doc.to_string())
}

fn backtest(ws: &mut Workspace, definition: &str, as_of: &str, horizon: &str, json: bool) -> Result<()> {
    let (as_of_ms, days) = date_and_horizon(as_of, horizon)?;
    let (audience, program) = program_for(ws, definition)?;
    if let Some(newest) = success::horizon_past_data(&audience, as_of_ms, days) {
        eprintln!(
            "note: {as_of} plus {days} days runs past the newest event held ({}): some counted as stopped may yet buy",
            &kinship_expr::format_timestamp(newest)[..10]
        );
    }
    let b = success::backtest(&audience, &ws.config.measures, &program, as_of_ms, days)?;
    ws.audit(&operator(), "health.backtest", None, json!({ "health": program.definition.name, "as_of": as_of, "horizon_days": days }))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&b)?);
        return Ok(());
    }
    let f = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.3}"));
    println!("{} customers active on {as_of}; {} bought nothing in the next {days} days", b.customers, b.churned);
    println!("AUC on the held-out half: health score {}, logistic baseline on the same measures {}", f(b.health_auc), f(b.baseline_auc));
    if let Some((difference, low, high)) = b.auc_difference {
        let verdict = if low > 0.0 {
            "the score beats the baseline"
        } else if high < 0.0 {
            "the baseline beats the score"
        } else {
            "the data cannot tell them apart: the score matches the baseline"
        };
        println!("health − baseline {difference:+.3}, 95% interval [{low:+.3}, {high:+.3}] (paired bootstrap): {verdict}");
    }
    println!("churned among the lowest tenth: health {}, baseline {}", share(b.health_precision_top), share(b.baseline_precision_top));
    for (band, n, churned) in &b.calibration {
        println!("  {band:?}: {n} customers, {} stopped", share(*churned));
    }
    Ok(())
}

fn alerts(ws: &mut Workspace, name: &str, status: &str, keep: bool, json: bool) -> Result<()> {
    let status = match status {
        "all" => None,
        s @ ("open" | "closed" | "held") => Some(s),
        other => anyhow::bail!("--status {other}: use open, closed, held or all"),
    };
    if keep {
        let audience = load(ws)?;
        let pass = success::keep_alerts(&mut *ws.store, &ws.config, &audience, name, success::data_now(&audience))?;
        eprintln!(
            "scored {}: {} opened, {} held back over an owner's daily limit, {} closed; {} open",
            pass.scored, pass.opened, pass.held_back, pass.closed, pass.open
        );
    } else {
        anyhow::ensure!(
            ws.store.definitions()?.iter().any(|d| d.kind == "health" && d.name == name),
            "no health definition named {name} (see `kinship health list`)"
        );
    }
    let alerts = ws.store.health_alerts(name, status, 1000)?;
    ws.audit(&operator(), "health.alerts.read", None, json!({ "health": name, "alerts": alerts.len() }))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&alerts)?);
        return Ok(());
    }
    println!("{:>6}  {:<24} {:<12} {:<8} {:<16} {:>5} {:>5}  opened", "id", "profile", "reason", "status", "owner", "from", "now");
    for a in &alerts {
        let snoozed = a.snoozed_until.map_or(String::new(), |u| {
            format!("  snoozed until {}: {}", kinship_expr::format_timestamp(u), a.snooze_reason.as_deref().unwrap_or(""))
        });
        println!(
            "{:>6}  {:<24} {:<12} {:<8} {:<16} {:>5.0} {:>5.0}  {}{snoozed}",
            a.id,
            a.profile_id,
            a.reason,
            a.status,
            a.owner,
            a.from_score,
            a.score,
            kinship_expr::format_timestamp(a.opened_at)
        );
    }
    Ok(())
}
