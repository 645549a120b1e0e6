//! `kinship flow ...`, `kinship task ...` and `kinship delivery ...`: flows, the tasks they
//! make, and the deliveries they send. Flows run in `kinship serve`, on events as they arrive.

use crate::DataDir;
use crate::commands::{Workspace, operator};
use anyhow::{Context, Result, bail};
use clap::Subcommand;
use kinship_store::{TASK_STATUSES, TaskFilter, TaskRow};
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum FlowCommand {
    /// Save a flow from a TOML or JSON file as its next version; a running server acts on it
    /// within a second.
    Create { file: PathBuf },
    /// Every flow's newest version.
    List,
    /// Stop a flow: every version is deleted (its runs and tasks stay).
    Delete { name: String },
    /// What a flow (a file, saved or not) would have done over the last days, with traces.
    DryRun {
        file: PathBuf,
        #[arg(long, default_value_t = 30)]
        days: u32,
        /// Runs to show with their traces.
        #[arg(long, default_value_t = 5)]
        samples: usize,
        /// Print the whole result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// A flow's latest runs with the trace of each: which condition matched on which values.
    Trace {
        name: String,
        #[arg(long, default_value_t = 10)]
        limit: usize,
    },
}

#[derive(Subcommand)]
pub enum TaskCommand {
    /// Tasks, newest first.
    List {
        /// open, in_progress, waiting, done, cancelled, or active (the first three; default).
        #[arg(long, default_value = "active")]
        status: String,
        #[arg(long)]
        team: Option<String>,
        /// Only tasks assigned to this person.
        #[arg(long)]
        assignee: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// One task with its gathered context, each fact with the record it came from.
    Show { id: i64 },
    /// Take a task: assigned to you (or `--as NAME`), in progress.
    Claim {
        id: i64,
        #[arg(long = "as")]
        assignee: Option<String>,
    },
    /// Mark a task done.
    Done { id: i64 },
}

#[derive(Subcommand)]
pub enum DeliveryCommand {
    /// Deliveries in one status (dead by default), with the last answer.
    List {
        #[arg(long, default_value = "dead")]
        status: String,
        #[arg(long)]
        endpoint: Option<String>,
    },
    /// Put an endpoint's dead deliveries (or one, `--id`) back in the queue.
    Replay {
        endpoint: String,
        #[arg(long)]
        id: Option<i64>,
        /// Only those created in the last this many hours.
        #[arg(long)]
        hours: Option<u32>,
    },
}

fn read(file: &PathBuf) -> Result<String> {
    std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))
}

pub fn flow(data: &DataDir, cmd: &FlowCommand) -> Result<ExitCode> {
    let mut ws = Workspace::open(data)?;
    match cmd {
        FlowCommand::Create { file } => {
            let text = read(file)?;
            let (name, version) = kinship_pipeline::flows::save_flow(&mut *ws.store, &ws.config, &text, &operator())?;
            ws.audit(&operator(), "flow.save", None, json!({ "flow": name, "version": version }))?;
            println!("flow {name}: version {version} saved; `kinship serve` runs it on events from now on");
        }
        FlowCommand::Delete { name } => {
            let versions = ws.store.delete_flow(name)?;
            if versions == 0 {
                bail!("no flow `{name}`; `kinship flow list` shows them");
            }
            ws.audit(&operator(), "flow.delete", None, json!({ "flow": name }))?;
            println!("flow {name}: deleted ({versions} version(s)); a running server stops running it within a second");
        }
        FlowCommand::List => {
            println!("{:<28} {:>7}  {:<20} created by", "flow", "version", "trigger");
            for f in ws.store.flows()? {
                let trigger = kinship_flows::FlowDefinition::parse(&f.definition)
                    .map(|d| match (d.trigger.schedule, d.trigger.segment) {
                        (Some(schedule), Some(segment)) => format!("{schedule}, {segment}"),
                        _ => d.trigger.event,
                    })
                    .unwrap_or_default();
                println!("{:<28} {:>7}  {:<20} {}", f.name, f.version, trigger, f.created_by);
            }
        }
        FlowCommand::DryRun { file, days, samples, json } => {
            let text = read(file)?;
            let result = kinship_pipeline::flows::dry_run(&*ws.store, &ws.config, &ws.dir, &text, *days, *samples, None)?;
            let profiles: Vec<&serde_json::Value> = result.samples.iter().map(|s| &s["profile_id"]).collect();
            ws.audit(&operator(), "flow.dry_run", None, json!({ "flow": result.flow, "days": days, "sampled_profiles": profiles }))?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&result)?);
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "flow {} over the last {} days: {} trigger events, {} runs for {} people, {} tasks, {} deliveries",
                result.flow, result.days, result.triggers, result.runs, result.profiles, result.tasks, result.deliveries
            );
            for sample in &result.samples {
                println!(
                    "\n{} ({} {}, {})",
                    sample["profile_id"], sample["trigger"]["source"], sample["trigger"]["record_key"], sample["trigger"]["at"]
                );
                print_trace(&sample["trace"]);
            }
        }
        FlowCommand::Trace { name, limit } => {
            let runs = ws.store.flow_runs(name, *limit)?;
            if runs.is_empty() && !ws.store.flows()?.iter().any(|f| &f.name == name) {
                bail!("no flow `{name}`; `kinship flow list` shows them");
            }
            let profiles: Vec<&str> = runs.iter().map(|r| r.profile_id.as_str()).collect();
            ws.audit(&operator(), "flow.trace", None, json!({ "flow": name, "profiles": profiles }))?;
            for run in &runs {
                println!("\n{} v{} {} ({} {})", iso(run.at), run.version, run.profile_id, run.source, run.record_key);
                print_trace(&run.trace["trace"]);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_trace(trace: &serde_json::Value) {
    for step in trace.as_array().into_iter().flatten() {
        let values = step.get("values").filter(|v| v.as_object().is_some_and(|o| !o.is_empty()));
        let values = values.map(|v| format!("  {v}")).unwrap_or_default();
        println!("  {} → {}{}", step["step"].as_str().unwrap_or(""), step["outcome"].as_str().unwrap_or(""), values);
    }
}

fn iso(ms: i64) -> String {
    kinship_expr::format_timestamp(ms)
}

pub fn task(data: &DataDir, cmd: &TaskCommand) -> Result<ExitCode> {
    let mut ws = Workspace::open(data)?;
    match cmd {
        TaskCommand::List { status, team, assignee, limit } => {
            if status != "active" && !TASK_STATUSES.contains(&status.as_str()) {
                bail!("unknown status `{status}`: use active or one of {}", TASK_STATUSES.join(", "));
            }
            let filter = TaskFilter { status: Some(status.clone()), team: team.clone(), assignee: assignee.clone(), profile: None };
            let tasks = ws.store.tasks(&filter, *limit)?;
            let ids: Vec<i64> = tasks.iter().map(|t| t.id).collect();
            ws.audit(&operator(), "task.list", None, json!({ "tasks": ids }))?;
            println!("{:>6}  {:<11} {:<8} {:<10} {:<10} title", "id", "status", "priority", "team", "assignee");
            for t in &tasks {
                let assignee = t.assignee.as_deref().unwrap_or("-");
                println!("{:>6}  {:<11} {:<8} {:<10} {:<10} {}", t.id, t.status, t.priority, t.team, assignee, t.title);
            }
        }
        TaskCommand::Show { id } => {
            let Some(t) = ws.store.task(*id)? else { bail!("no task {id}; `kinship task list` shows them") };
            ws.audit(&operator(), "task.read", Some(&t.profile_id), json!({ "task": id }))?;
            print_task(&t);
        }
        TaskCommand::Claim { id, assignee } => {
            let who = assignee.clone().unwrap_or_else(|| operator().trim_start_matches("cli:").to_string());
            update(&mut ws, *id, "in_progress", Some(&who), "task.claim")?;
        }
        TaskCommand::Done { id } => update(&mut ws, *id, "done", None, "task.status")?,
    }
    Ok(ExitCode::SUCCESS)
}

fn update(ws: &mut Workspace, id: i64, status: &str, assignee: Option<&str>, action: &str) -> Result<()> {
    if !ws.store.update_task(id, status, assignee, kinship_pipeline::now_ms())? {
        bail!("no task {id}; `kinship task list` shows them");
    }
    let task = ws.store.task(id)?.context("the task was just updated")?;
    ws.audit(&operator(), action, Some(&task.profile_id), json!({ "task": id, "status": status }))?;
    println!("task {id}: {} ({})", task.status, task.assignee.as_deref().unwrap_or("unassigned"));
    Ok(())
}

fn print_task(t: &TaskRow) {
    println!("task      {} ({} v{})", t.id, t.flow, t.version);
    println!("title     {}", t.title);
    if !t.body.is_empty() {
        println!("body      {}", t.body);
    }
    println!("status    {}, priority {}, team {}, assignee {}", t.status, t.priority, t.team, t.assignee.as_deref().unwrap_or("-"));
    if let Some(due) = t.due_at {
        println!("due       {}", iso(due));
    }
    println!("profile   {}  (kinship profile show {})", t.profile_id, t.profile_id);
    println!("trigger   {} {}", t.source, t.record_key);
    println!("context");
    for fact in t.context.as_array().into_iter().flatten() {
        println!(
            "  {:<12} {}  ← {} {}",
            fact["name"].as_str().unwrap_or(""),
            fact["value"],
            fact["source"].as_str().unwrap_or(""),
            fact["record"].as_str().unwrap_or("")
        );
    }
}

pub fn delivery(data: &DataDir, cmd: &DeliveryCommand) -> Result<ExitCode> {
    let mut ws = Workspace::open(data)?;
    match cmd {
        DeliveryCommand::List { status, endpoint } => {
            let rows = ws.store.deliveries(endpoint.as_deref(), status, 0, 500)?;
            let profiles: Vec<&str> = rows.iter().map(|d| d.profile_id.as_str()).collect();
            ws.audit(&operator(), "delivery.list", None, json!({ "profiles": profiles }))?;
            for (endpoint, status, count) in ws.store.delivery_counts()? {
                println!("{endpoint:<16} {status:<10} {count}");
            }
            for d in &rows {
                let answer = d.last_response.as_deref().unwrap_or("").chars().take(80).collect::<String>();
                println!("{:>6} {} {} attempts {} last {:?} {}", d.id, d.endpoint, d.webhook_id, d.attempts, d.last_status, answer);
            }
        }
        DeliveryCommand::Replay { endpoint, id, hours } => {
            if !ws.config.endpoints.contains_key(endpoint) {
                bail!("no endpoint `{endpoint}` in kinship.toml");
            }
            let now = kinship_pipeline::now_ms();
            let since = hours.map_or(0, |h| now - i64::from(h) * 3_600_000);
            let n = ws.store.replay_deliveries(endpoint, since, *id, now)?;
            ws.audit(&operator(), "delivery.replay", None, json!({ "endpoint": endpoint, "replayed": n }))?;
            println!("{n} deliveries to {endpoint} queued again");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// For the demo: saves the ready complaint flow and runs it over the records already resolved,
/// so open complaints are waiting as tasks. (A saved flow otherwise acts only on what arrives
/// after it.) Prints the queue and one task's context.
pub fn demo_tasks(ws: &mut Workspace) -> Result<()> {
    let text = read(&ws.dir.join("flows").join("complaint_to_task.toml"))?;
    let (name, version) = kinship_pipeline::flows::save_flow(&mut *ws.store, &ws.config, &text, &operator())?;
    ws.audit(&operator(), "flow.save", None, json!({ "flow": name, "version": version }))?;
    let (flows, _) = kinship_pipeline::flows::load_flows(&*ws.store, &ws.config)?;
    let mut references = kinship_pipeline::flows::References::default();
    let references = references.current(&ws.config, &ws.dir)?;
    let through = ws.store.meta(kinship_pipeline::RESOLVED_THROUGH)?.and_then(|v| v.parse().ok()).unwrap_or(0);
    let pass = kinship_pipeline::flows::run_new_records(&mut *ws.store, &ws.config, &flows, references, 0, through)?;
    println!(
        "\nFlow {name}: {} open complaints became {} support tasks, each with its order, invoice, shipment, warranty and stock.",
        pass.runs,
        pass.tasks.len()
    );
    // One whose subject names a product shows the whole context.
    let mut shown = None;
    for id in &pass.tasks {
        let task = ws.store.task(*id)?.context("a task just created")?;
        let facts = task.context.as_array().map_or(0, Vec::len);
        if shown.as_ref().is_none_or(|(n, _): &(usize, TaskRow)| facts > *n) {
            shown = Some((facts, task));
        }
    }
    if let Some((_, task)) = shown {
        let id = task.id;
        ws.audit(&operator(), "task.read", Some(&task.profile_id), json!({ "task": id }))?;
        print_task(&task);
    }
    let d = ws.dir.display();
    println!("  kinship --data {d} task list        kinship --data {d} task show ID");
    Ok(())
}
