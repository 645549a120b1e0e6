//! `kinship`: the command line of the Kinship customer data platform.

mod bench;
mod bench_deliveries;
mod bench_measure;
mod bench_segments;
mod bench_service;
mod bench_success;
mod commands;
mod dedupe;
mod flow_commands;
mod governance_commands;
mod measure_commands;
mod progress;
mod segment_commands;
mod server_commands;
mod service_commands;
mod source_commands;
mod success_commands;

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "kinship", version, about = "Kinship: one customer, many systems. Connect sources, unify customers, see one profile.")]
struct Cli {
    #[command(flatten)]
    data: DataDir,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
pub struct DataDir {
    /// Data directory holding kinship.toml, the source files and the database.
    #[arg(long = "data", global = true, env = "KINSHIP_DATA", default_value = "./kinship-data")]
    pub dir: PathBuf,
}

#[derive(Subcommand)]
enum Command {
    /// Generate a realistic multi-system data set, ingest and resolve it, and print a summary.
    Demo(commands::DemoArgs),
    /// Read sources into the record log (all enabled sources, or one), then resolve.
    Ingest(commands::IngestArgs),
    /// Re-resolve the whole record log into profiles.
    Resolve,
    /// Show, search and explain profiles.
    #[command(subcommand)]
    Profile(commands::ProfileCommand),
    /// Counts of records, profiles and identifiers, and each source's last run.
    Stats,
    /// Write `source,record_key,profile_id` for every record as CSV.
    Assignments(commands::AssignmentsArgs),
    /// Serve the collection API, the REST API, /healthz and /metrics.
    Serve(server_commands::ServeArgs),
    /// Manage API tokens.
    #[command(subcommand)]
    Token(server_commands::TokenCommand),
    /// Manage web UI users.
    #[command(subcommand)]
    User(server_commands::UserCommand),
    /// Manage sources.
    #[command(subcommand)]
    Source(source_commands::SourceCommand),
    /// Segments: define, list, show, preview, export members, delete.
    #[command(subcommand)]
    Segment(segment_commands::SegmentCommand),
    /// Computed traits: define, list, delete.
    #[command(subcommand)]
    Computed(segment_commands::ComputedCommand),
    /// Flows: save, list, dry-run, trace.
    #[command(subcommand)]
    Flow(flow_commands::FlowCommand),
    /// Tasks flows made: list, show, claim, done.
    #[command(subcommand)]
    Task(flow_commands::TaskCommand),
    /// Deliveries flows sent: list (dead by default), replay.
    #[command(subcommand)]
    Delivery(flow_commands::DeliveryCommand),
    /// Funnels over every profile's unified timeline.
    #[command(subcommand)]
    Funnel(measure_commands::FunnelCommand),
    /// Experiments' readouts from their exposures.
    #[command(subcommand)]
    Experiment(measure_commands::ExperimentCommand),
    /// NPS with its 95% interval, overall, revenue-weighted and by month, cohort, segment or property.
    Nps(success_commands::NpsArgs),
    /// Earned growth per period (Reichheld): net revenue retention and new revenue earned or bought.
    Growth(success_commands::GrowthArgs),
    /// Customer health scores, their exceptions, and a backtest against who stopped buying.
    #[command(subcommand)]
    Health(success_commands::HealthCommand),
    /// Accounts (companies) and their 360.
    #[command(subcommand)]
    Account(service_commands::AccountCommand),
    /// The case queue by SLA due time, and SLA attainment per team.
    #[command(subcommand)]
    Case(service_commands::CaseCommand),
    /// Deals and the pipeline: the weighted forecast by close month, win rate, time in stage.
    #[command(subcommand)]
    Deal(service_commands::DealCommand),
    /// Print the audit log (filtered), or `audit verify` its integrity.
    Audit(governance_commands::AuditArgs),
    /// Erase a person (GDPR art. 17): delete everything held, rewrite storage, suppress their identifiers.
    Erase(governance_commands::SubjectArgs),
    /// Print everything held about a person as JSON (GDPR art. 15).
    Export(governance_commands::SubjectArgs),
    /// Manage the suppression list of erased identifiers.
    #[command(subcommand)]
    Privacy(governance_commands::PrivacyCommand),
    /// Find duplicate rows in any CSV by fuzzy matching (Fellegi-Sunter), writing clusters.
    Dedupe(dedupe::DedupeArgs),
    /// Measure speed on generated data.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

// Resolution builds and frees millions of small strings and JSON values; mimalloc handles
// that pattern markedly faster than the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let data = &cli.data;
    let result = match cli.command {
        Command::Demo(args) => commands::demo(data, &args),
        Command::Ingest(args) => commands::ingest(data, &args),
        Command::Resolve => commands::resolve(data),
        Command::Profile(cmd) => commands::profile(data, &cmd),
        Command::Stats => commands::stats(data),
        Command::Assignments(args) => commands::assignments(data, &args),
        Command::Serve(args) => server_commands::serve(data, &args),
        Command::Token(cmd) => server_commands::token(data, &cmd),
        Command::User(cmd) => server_commands::user(data, &cmd),
        Command::Source(cmd) => source_commands::source(data, &cmd),
        Command::Segment(cmd) => segment_commands::segment(data, &cmd),
        Command::Computed(cmd) => segment_commands::computed(data, &cmd),
        Command::Flow(cmd) => flow_commands::flow(data, &cmd),
        Command::Task(cmd) => flow_commands::task(data, &cmd),
        Command::Delivery(cmd) => flow_commands::delivery(data, &cmd),
        Command::Funnel(cmd) => measure_commands::funnel(data, &cmd),
        Command::Experiment(cmd) => measure_commands::experiment(data, &cmd),
        Command::Nps(args) => success_commands::nps(data, &args),
        Command::Growth(args) => success_commands::growth(data, &args),
        Command::Health(cmd) => success_commands::health(data, &cmd),
        Command::Account(cmd) => service_commands::account(data, &cmd),
        Command::Case(cmd) => service_commands::case(data, &cmd),
        Command::Deal(cmd) => service_commands::deal(data, &cmd),
        Command::Audit(args) => governance_commands::audit(data, &args),
        Command::Erase(args) => governance_commands::erase(data, &args),
        Command::Export(args) => governance_commands::export(data, &args),
        Command::Privacy(cmd) => governance_commands::privacy(data, &cmd),
        Command::Dedupe(args) => dedupe::run_dedupe(&args).map(|()| ExitCode::SUCCESS),
        Command::Bench(cmd) => bench::run(&cmd),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
