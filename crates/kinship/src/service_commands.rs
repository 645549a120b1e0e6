//! `kinship account` and `kinship case`: accounts and their 360, the case queue by SLA due
//! time and SLA attainment per team, read from the store as the server's routes read them.

use crate::DataDir;
use crate::commands::{Reader, Workspace, plain};
use anyhow::{Context, Result, bail};
use clap::Subcommand;
use kinship_pipeline::{accounts, briefing, cases, deals};
use kinship_policy::Capability;
use serde_json::json;
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum AccountCommand {
    /// Accounts, largest first: grouped by a group call, a CRM account id or a business
    /// email domain (`[accounts]`).
    List {
        #[arg(long, default_value_t = 20)]
        limit: usize,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        reader: Reader,
    },
    /// An account's 360: its people, their orders, unpaid invoices, open cases and value.
    Show {
        /// The account id, `kind:value` (`domain:acme.com`, `group_id:acme-1`).
        id: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        reader: Reader,
    },
}

#[derive(Subcommand)]
pub enum CaseCommand {
    /// Open cases from every connected help desk, the next SLA clock due first.
    Queue {
        /// Only cases whose most urgent clock is breached, warning, active or paused.
        #[arg(long)]
        state: Option<String>,
        #[arg(long)]
        team: Option<String>,
        #[arg(long, default_value_t = 30)]
        limit: usize,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        reader: Reader,
    },
    /// SLA attainment per team and metric: clocks that ended in the period within target.
    Attainment {
        #[arg(long, default_value_t = 30)]
        days: u32,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum DealCommand {
    /// Deals (open ones by close date first) and the pipeline's numbers: per stage, the
    /// weighted forecast by close month, the win rate, time in stage and the stage funnel.
    List {
        /// `open` (default), `won`, `lost` or `all`.
        #[arg(long)]
        status: Option<String>,
        /// Only this seller's deals (the numbers too).
        #[arg(long)]
        owner: Option<String>,
        #[arg(long, default_value_t = 30)]
        limit: usize,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        reader: Reader,
    },
}

pub fn deal(data: &DataDir, cmd: &DealCommand) -> Result<ExitCode> {
    let mut ws = Workspace::open(data)?;
    let DealCommand::List { status, owner, limit, json, reader } = cmd;
    let viewer = ws.viewer(reader.token.as_deref())?;
    if !viewer.policy.allows(Capability::ReadDeals) {
        bail!("role `{}` may not read deals (read_deals)", viewer.policy.name());
    }
    let selection = deals::DealSelection { status: status.clone(), owner: owner.clone(), contacts: None };
    selection.check().map_err(|e| anyhow::anyhow!("--status: {e}"))?;
    let book = deals::all_deals(&*ws.store, &ws.config)?;
    let now = briefing::data_now(&*ws.store)?;
    let (mut listed, contacts) = deals::listing(&book, &selection, *limit, 0, now, &viewer.policy);
    kinship_policy::scrub(&mut listed, &[], &viewer.policy, &ws.keys()?.pseudonym);
    ws.audit(&viewer.actor, "deal.list", None, json!({ "deals": listed["deals"].as_array().map_or(0, Vec::len), "profiles": contacts }))?;
    if *json {
        println!("{}", serde_json::to_string_pretty(&listed)?);
        return Ok(ExitCode::SUCCESS);
    }
    let report = &listed["report"];
    println!("{} deal(s) (as of {})", plain(&listed["total"]), plain(&listed["as_of"]));
    listed["deals"].as_array().into_iter().flatten().for_each(print_deal);
    println!("\nweighted forecast by close month");
    for m in report["forecast"].as_array().into_iter().flatten() {
        println!(
            "  {} {}  weighted {:>12.2}  open {:>12.2} ({} deals)  won {:>12.2}",
            plain(&m["month"]),
            plain(&m["currency"]),
            m["weighted"].as_f64().unwrap_or(0.0),
            m["pipeline"].as_f64().unwrap_or(0.0),
            plain(&m["open_deals"]),
            m["won"].as_f64().unwrap_or(0.0)
        );
    }
    let rate = report["win_rate"].as_f64().map_or("none closed yet".to_string(), |r| format!("{:.1}%", r * 100.0));
    println!("\nwin rate {rate}");
    println!("stage funnel (reached this stage or a later one)");
    for step in report["funnel"].as_array().into_iter().flatten() {
        let days =
            report["time_in_stage_days"][plain(&step["stage"])].as_f64().map_or(String::new(), |d| format!(", {d:.1} days on average"));
        println!(
            "  {:<16} {:>6} deal(s), {:>5.1}% of all{days}",
            plain(&step["stage"]),
            plain(&step["count"]),
            step["conversion"].as_f64().unwrap_or(0.0) * 100.0
        );
    }
    let problems = &book.problems;
    let unmatched = problems.unknown_stages.len() + problems.no_close.len() + problems.no_time;
    if unmatched > 0 {
        println!(
            "\n{unmatched} deal(s) or row(s) left out: a stage no [[service.stages]] names, no close date, or no time (--json lists them)"
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// One deal on a line: id, stage, amount, close date, owner and name (as the role reads them).
fn print_deal(d: &serde_json::Value) {
    println!(
        "  {:<14} {:<14} {:>12.2} {} close {}  {:<14} {}",
        plain(&d["id"]),
        plain(&d["stage"]),
        d["amount"].as_f64().unwrap_or(0.0),
        plain(&d["currency"]),
        plain(&d["close"]),
        plain(&d["owner"]),
        plain(&d["name"])
    );
}

pub fn account(data: &DataDir, cmd: &AccountCommand) -> Result<ExitCode> {
    let mut ws = Workspace::open(data)?;
    match cmd {
        AccountCommand::List { limit, json, reader } => {
            let viewer = ws.viewer(reader.token.as_deref())?;
            if !(viewer.policy.allows(Capability::ReadProfiles) && viewer.policy.allows(Capability::SearchProfiles)) {
                bail!("role `{}` may not look people up by account: it needs read_profiles and search_profiles", viewer.policy.name());
            }
            let index = accounts::account_index(&*ws.store, &ws.config)?;
            let all = index.by_size();
            if *json {
                let list: Vec<_> =
                    all.iter().take(*limit).map(|a| json!({ "id": a.key.id(), "name": a.name, "people": a.members.len() })).collect();
                println!("{}", serde_json::to_string_pretty(&json!({ "total": all.len(), "accounts": list }))?);
                return Ok(ExitCode::SUCCESS);
            }
            println!("{} account(s), largest first", all.len());
            for a in all.iter().take(*limit) {
                println!("  {:<40} {:>6} people  {}", a.key.id(), a.members.len(), a.name.as_deref().unwrap_or(""));
            }
            Ok(ExitCode::SUCCESS)
        }
        AccountCommand::Show { id, json, reader } => {
            let viewer = ws.viewer(reader.token.as_deref())?;
            if !(viewer.policy.allows(Capability::ReadProfiles) && viewer.policy.allows(Capability::SearchProfiles)) {
                bail!("role `{}` may not list an account's people: it needs read_profiles and search_profiles", viewer.policy.name());
            }
            let index = accounts::account_index(&*ws.store, &ws.config)?;
            let account = index.accounts.get(id).with_context(|| format!("no account {id}; list them with `kinship account list`"))?;
            let now = briefing::data_now(&*ws.store)?;
            let mut doc = accounts::account_document(&*ws.store, &ws.config, account, now, &viewer.policy)?;
            if viewer.policy.allows(Capability::ReadDeals) {
                deals::add_open_deals(&mut doc, &deals::all_deals(&*ws.store, &ws.config)?, account.read(), now, &viewer.policy);
            }
            let read = kinship_pipeline::audience::audience_of(&*ws.store, &ws.config, account.read())?;
            doc["health"] = serde_json::Value::Object(accounts::account_health(&read, account, now, &viewer.policy));
            let doc = accounts::for_role(doc, &viewer.policy, &ws.keys()?.pseudonym);
            let people: Vec<&str> = doc["people"].as_array().into_iter().flatten().filter_map(|p| p["id"].as_str()).collect();
            ws.audit(&viewer.actor, "account.read", None, json!({ "account": id, "profiles": people }))?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&doc)?);
                return Ok(ExitCode::SUCCESS);
            }
            println!("{}  {}", plain(&doc["id"]), plain(&doc["name"]));
            println!(
                "  {} people ({} read), lifetime value {:.2}",
                plain(&doc["people_total"]),
                plain(&doc["people_read"]),
                doc["lifetime_value"].as_f64().unwrap_or(0.0)
            );
            println!(
                "  {} unpaid invoice(s), {} overdue; {} open case(s)",
                doc["unpaid_invoices"].as_array().map_or(0, Vec::len),
                plain(&doc["overdue_invoices"]),
                doc["cases"]["open"].as_array().map_or(0, Vec::len)
            );
            for (name, h) in doc["health"].as_object().into_iter().flatten() {
                let trend = h["trend"].as_f64().map_or(String::new(), |t| format!(", {t:+.0} over four weeks"));
                println!("  health {name}: {:.0} ({}){trend}", h["score"].as_f64().unwrap_or(0.0), plain(&h["band"]));
                let number = |v: &serde_json::Value| v.as_f64().map_or("none".to_string(), |n| format!("{n:.1}"));
                for m in h["measures"].as_array().into_iter().flatten() {
                    println!(
                        "    {:<24} value {:<8} score {:<6} weight {}",
                        plain(&m["name"]),
                        number(&m["value"]),
                        number(&m["score"]),
                        number(&m["weight"])
                    );
                }
            }
            println!("\npeople");
            for p in doc["people"].as_array().into_iter().flatten() {
                println!("  {:<20} {:<30} {} order(s)", plain(&p["id"]), plain(&p["name"]), plain(&p["orders"]));
            }
            let open_deals = doc["deals"].as_array().map_or(&[][..], Vec::as_slice);
            if !open_deals.is_empty() {
                println!("\nopen deals");
                open_deals.iter().for_each(print_deal);
            }
            println!("\nlatest orders");
            for o in doc["orders"].as_array().into_iter().flatten().take(10) {
                println!("  {:<12} {:<20} {}", plain(&o["number"]), plain(&o["person"]), plain(&o["summary"]));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub fn case(data: &DataDir, cmd: &CaseCommand) -> Result<ExitCode> {
    let mut ws = Workspace::open(data)?;
    let now = briefing::data_now(&*ws.store)?;
    match cmd {
        CaseCommand::Queue { state, team, limit, json, reader } => {
            let viewer = ws.viewer(reader.token.as_deref())?;
            if !viewer.policy.allows(Capability::ReadTasks) {
                bail!("role `{}` may not read cases (read_tasks)", viewer.policy.name());
            }
            let selection = cases::Selection { team: team.clone(), state: state.clone(), ..cases::Selection::default() };
            selection.check().map_err(|e| anyhow::anyhow!("--state: {e}"))?;
            let all = cases::all_cases(&*ws.store, &ws.config, now)?;
            let state_name = |q: &cases::QueuedCase| q.state().map(kinship_service::sla::ClockState::as_str);
            let open = selection.apply(&all);
            let shown: Vec<&&cases::QueuedCase> = open.iter().take(*limit).collect();
            let profiles: Vec<&str> = shown.iter().map(|q| q.case.requester.as_str()).collect();
            ws.audit(&viewer.actor, "case.list", None, json!({ "cases": shown.len(), "profiles": profiles }))?;
            let sees_text = viewer.policy.sees_identities();
            if *json {
                let mut list = serde_json::Value::Array(
                    shown
                        .iter()
                        .map(|q| {
                            let mut v = briefing::case_json(&q.case, &q.clocks);
                            v["state"] = json!(state_name(q));
                            v
                        })
                        .collect(),
                );
                briefing::cases_for_role(&mut list, &viewer.policy);
                println!("{}", serde_json::to_string_pretty(&json!({ "total": open.len(), "cases": list }))?);
                return Ok(ExitCode::SUCCESS);
            }
            println!("{} open case(s), the next SLA clock due first (as of {})", open.len(), iso(now));
            for q in shown {
                let due = q.next_due.map(|d| iso(d * 1000)).unwrap_or_else(|| "-".into());
                let subject = if sees_text { q.case.subject.clone().unwrap_or_default() } else { String::new() };
                println!(
                    "  {:<12} {:<20} {:<9} {:<10} {:<20} {}",
                    q.case.number,
                    due,
                    state_name(q).unwrap_or(""),
                    q.case.priority,
                    q.case.requester,
                    subject
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        CaseCommand::Attainment { days, json } => {
            let all = cases::all_cases(&*ws.store, &ws.config, now)?;
            let report = cases::attainment(&all, now - i64::from(*days) * 86_400_000, now + 1);
            let rows = cases::attainment_rows(&report);
            if *json {
                println!("{}", serde_json::to_string_pretty(&json!({ "days": days, "teams": rows }))?);
                return Ok(ExitCode::SUCCESS);
            }
            println!("SLA attainment over the {days} days to {}", iso(now));
            for r in &rows {
                println!(
                    "  {:<16} {:<18} {:>5} of {:>5}  {:>5.1}%",
                    plain(&r["team"]),
                    plain(&r["metric"]),
                    plain(&r["achieved"]),
                    plain(&r["ended"]),
                    r["rate"].as_f64().unwrap_or(0.0) * 100.0
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map_or_else(|| ms.to_string(), |t| t.format("%Y-%m-%d %H:%M").to_string())
}
