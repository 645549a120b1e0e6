//! `kinship bench deliveries`: webhook deliveries per second from the outbox to a local
//! receiver, through the server's own delivery worker. The outbox is filled as flows fill it
//! (`ActStore::record_runs`), the server is started in this process, and an in-process
//! receiver checks every signature and counts each `webhook-id` once.

use anyhow::{Context, Result, bail};
use axum::http::{HeaderMap, StatusCode};
use clap::Args;
use kinship_store::{NewDelivery, NewRun};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Args)]
pub struct BenchDeliveriesArgs {
    /// Deliveries in the outbox.
    #[arg(long, default_value_t = 50_000)]
    count: usize,
    /// Profiles they are spread over (a profile's deliveries go one at a time, in order).
    #[arg(long, default_value_t = 10_000)]
    profiles: usize,
    /// Deliveries in flight at once (the endpoint's `concurrency`).
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
}

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// What the receiver saw: distinct ids, and how many requests failed verification.
#[derive(Default)]
struct Received {
    ids: HashSet<String>,
    requests: usize,
    bad: usize,
}

pub fn run(args: &BenchDeliveriesArgs) -> Result<()> {
    if args.count == 0 || args.profiles == 0 {
        bail!("--count and --profiles must be at least 1");
    }
    // The server reads endpoint secrets from the environment, as it would in production.
    // SAFETY: no other thread exists yet (the runtime is built below), so nothing reads the
    // environment while it changes.
    unsafe { std::env::set_var("KINSHIP_BENCH_WEBHOOK_SECRET", SECRET) };
    let dir = tempfile::tempdir()?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let received = Arc::new(Mutex::new(Received::default()));
    let receiver = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let port = receiver.local_addr()?.port();
    let key = kinship_deliver_key();
    {
        let received = received.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: String| {
                let received = received.clone();
                let key = key.clone();
                async move {
                    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
                    let (id, timestamp) = (header("webhook-id"), header("webhook-timestamp").parse::<i64>().unwrap_or(0));
                    let expected = kinship_deliver::sign(std::slice::from_ref(&key), &id, timestamp, &body);
                    let mut seen = received.lock().expect("not poisoned");
                    seen.requests += 1;
                    if header("webhook-signature") != expected {
                        seen.bad += 1;
                        return StatusCode::BAD_REQUEST;
                    }
                    seen.ids.insert(id);
                    StatusCode::NO_CONTENT
                }
            }),
        );
        runtime.spawn(async move { axum::serve(receiver, app).await });
    }

    let config_text = format!(
        "[endpoints.bench]\ntype = \"webhook\"\nurl = \"http://127.0.0.1:{port}/hook\"\nsecrets_env = [\"KINSHIP_BENCH_WEBHOOK_SECRET\"]\nconcurrency = {}\n",
        args.concurrency
    );
    std::fs::write(dir.path().join("kinship.toml"), config_text)?;
    let config = kinship_core::Config::load(dir.path())?;
    let database = config.database(dir.path());
    let mut store = kinship_store::open(&database)?;
    let filled = Instant::now();
    let runs: Vec<NewRun> = (0..args.count)
        .map(|i| {
            let (key, profile) = (format!("bench/{i}"), format!("p_{:016x}", i % args.profiles));
            let body = format!(r#"{{"type":"flow.run","timestamp":"2026-01-01T00:00:00Z","data":{{"profile_id":"{profile}","n":{i}}}}}"#);
            NewRun {
                key: key.clone(),
                flow: "bench".into(),
                version: 1,
                profile_id: profile.clone(),
                source: "bench".into(),
                record_key: key.clone(),
                at: kinship_pipeline::now_ms(),
                trace: "{}".into(),
                task: None,
                deliveries: vec![NewDelivery { webhook_id: format!("msg_bench_{i}"), endpoint: "bench".into(), profile_id: profile, body }],
                wait: None,
                resumes: None,
                records: Vec::new(),
            }
        })
        .collect();
    for chunk in runs.chunks(10_000) {
        store.record_runs(chunk, 0)?;
    }
    drop(store);
    println!("outbox: {} deliveries over {} profiles written in {:.2}s", args.count, args.profiles, filled.elapsed().as_secs_f64());

    let options = kinship_server::ServeOptions { database, data_dir: dir.path().to_path_buf(), config, bind: "127.0.0.1:0".into() };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = runtime.spawn(kinship_server::serve(options, async { drop(stopped.await) }, |_| {}));
    let started = Instant::now();
    let bar = crate::progress::Progress::new("deliveries", false);
    loop {
        let done = received.lock().expect("not poisoned").ids.len();
        bar.update(done as u64, args.count as u64);
        if done >= args.count {
            break;
        }
        if started.elapsed() > Duration::from_secs(600) {
            bail!("only {done} of {} deliveries arrived in 10 minutes", args.count);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let took = started.elapsed().as_secs_f64();
    bar.finish();
    let _ = stop.send(());
    runtime.block_on(server).context("the server task")??;
    let seen = received.lock().expect("not poisoned");
    println!(
        "delivered {} signed webhooks in {took:.2}s: {:.0}/s ({} requests, {} failed verification; concurrency {})",
        seen.ids.len(),
        seen.ids.len() as f64 / took,
        seen.requests,
        seen.bad,
        args.concurrency
    );
    println!("peer, published: n8n 220 workflow executions/s per instance");
    Ok(())
}

/// The signing key of [`SECRET`], as a receiver decodes it.
fn kinship_deliver_key() -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(SECRET.trim_start_matches("whsec_")).expect("a valid secret")
}
