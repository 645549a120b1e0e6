//! Flows on the demo data, on a real store: a complaint that names a product becomes one task
//! with its context gathered from four systems and two reference files; the same trigger
//! twice makes one task; deliveries leave a profile in order; erasure takes tasks, runs and
//! deliveries with the person.

use kinship_core::Config;
use kinship_pipeline::flows::{load_flows, run_new_records, save_flow, References};
use kinship_pipeline::governance::SuppressionCheck;
use kinship_pipeline::{ingest_source, resolve_all, resolve_new_records, RESOLVED_THROUGH};
use kinship_store::{Database, DeliveryAttempt, NewDelivery, NewRun, TaskFilter};
use serde_json::{json, Value};
use std::path::Path;

/// The demo ingested and resolved, its config, store, and the store's location.
fn demo(dir: &Path) -> (Config, Box<dyn Database>, String) {
    kinship_demo::generate(dir, &kinship_demo::DemoOptions { customers: 1500, seed: 5 }, &mut |_, _, _| {}).unwrap();
    let config = Config::load(dir).unwrap();
    let location = kinship_testkit::database_for(dir);
    let mut store = kinship_store::open(&location).unwrap();
    // The demo's segment source receives its events over HTTP; the rest are files.
    for name in config.sources.iter().filter(|(_, s)| s.kind.is_pulled()).map(|(n, _)| n) {
        ingest_source(&mut *store, &config, name, dir, &SuppressionCheck::nothing(), &|_, _| {}).unwrap();
    }
    resolve_all(&mut *store, &config, &|_, _| {}).unwrap();
    (config, store, location)
}

fn lines(dir: &Path, file: &str) -> Vec<Value> {
    std::fs::read_to_string(dir.join(file)).unwrap().lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

/// A shop order holding `sku` that has an invoice and a shipment: (order id, customer email, time).
fn order_with(dir: &Path, sku: &str) -> (String, String, chrono::DateTime<chrono::FixedOffset>) {
    let invoices = std::fs::read_to_string(dir.join("invoices.csv")).unwrap();
    let shipments = std::fs::read_to_string(dir.join("shipments.csv")).unwrap();
    lines(dir, "shop_orders.jsonl")
        .into_iter()
        .find_map(|o| {
            let id = o["order_id"].as_str()?.to_string();
            let holds = o["items"].as_array()?.iter().any(|i| i["sku"] == sku);
            let email = o["customer"]["email"].as_str()?.to_string();
            let linked = invoices.contains(&format!(",{id},")) && shipments.contains(&format!(",{id},"));
            (holds && linked && o["customer"]["id"].is_string())
                .then(|| (id, email, chrono::DateTime::parse_from_rfc3339(o["created_at"].as_str().unwrap()).unwrap()))
        })
        .expect("the demo has such an order")
}

fn append_ticket(dir: &Path, ticket: &Value) {
    append(dir, "tickets.jsonl", ticket);
}

fn append(dir: &Path, file: &str, line: &Value) {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new().append(true).open(dir.join(file)).unwrap();
    writeln!(file, "{line}").unwrap();
}

/// Ingests the tickets file again (new lines only), resolves them, runs the flows on them.
fn arrive(store: &mut dyn Database, config: &Config, dir: &Path) -> (u64, kinship_pipeline::flows::FlowPass) {
    arrive_from(store, config, dir, "tickets", "tickets.jsonl")
}

/// The same for any source, after appending nothing (the caller appended to `file`).
fn arrive_from(
    store: &mut dyn Database,
    config: &Config,
    dir: &Path,
    source: &str,
    file: &str,
) -> (u64, kinship_pipeline::flows::FlowPass) {
    assert!(dir.join(file).exists());
    let report = ingest_source(store, config, source, dir, &SuppressionCheck::nothing(), &|_, _| {}).unwrap();
    let after = kinship_pipeline::flows::flows_through(store).unwrap();
    resolve_pending(store, config);
    let through: i64 = store.meta(RESOLVED_THROUGH).unwrap().unwrap().parse().unwrap();
    let (flows, warnings) = load_flows(store, config).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    let mut references = References::default();
    let references = references.current(config, dir).unwrap();
    (report.inserted, run_new_records(store, config, &flows, references, after.max(0), through).unwrap())
}

/// The demo's configuration with a source for what flows (and alerts) write about profiles.
fn with_flows_source(dir: &Path) -> Config {
    let toml = std::fs::read_to_string(dir.join("kinship.toml")).unwrap();
    std::fs::write(dir.join("kinship.toml"), format!("{toml}\n[sources.kinship]\ntype = \"segment\"\n\n[flows]\nsource = \"kinship\"\n"))
        .unwrap();
    Config::load(dir).unwrap()
}

/// Resolves every record not resolved yet.
fn resolve_pending(store: &mut dyn Database, config: &Config) {
    loop {
        let r = resolve_new_records(store, config, 500, None, None).unwrap();
        if r.attached + r.created + r.reresolved == 0 {
            break;
        }
    }
}

#[test]
fn a_complaint_naming_a_product_becomes_one_task_with_its_context_traced_to_records() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (config, mut store, location) = demo(dir);
    let flow = std::fs::read_to_string(dir.join("flows/complaint_to_task.toml")).unwrap();
    save_flow(&mut *store, &config, &flow, "test").unwrap();
    // The flow acts from here on: mark what is resolved as seen.
    let through: i64 = store.meta(RESOLVED_THROUGH).unwrap().unwrap().parse().unwrap();
    store.record_runs(&[], through).unwrap();

    // The Hiking Pack 45L (BAG-002) is sold out in the demo's inventory.
    let (order_id, email, bought) = order_with(dir, "BAG-002");
    let ticket = json!({
        "ticket_id": "TCK-9000001", "channel": "email", "from_email": email.to_uppercase(),
        "subject": "Hiking pack 45L arrived damaged", "status": "open",
        "created_at": (bought + chrono::Duration::days(30)).to_rfc3339(),
    });
    append_ticket(dir, &ticket);
    let (inserted, pass) = arrive(&mut *store, &config, dir);
    assert_eq!((inserted, pass.runs, pass.tasks.len()), (1, 1, 1), "{pass:?}");

    let task = store.task(pass.tasks[0]).unwrap().unwrap();
    assert_eq!((task.source.as_str(), task.record_key.as_str()), ("tickets", "TCK-9000001"));
    assert_eq!(task.title, "Warranty: Hiking pack 45L arrived damaged");
    // Under warranty: the skill is warranty, and of ana and chloe (no open tasks) ana comes first.
    assert_eq!((task.assignee.as_deref(), task.priority.as_str(), task.team.as_str()), (Some("ana"), "high", "support"));
    assert_eq!(store.record_profile("tickets", "TCK-9000001").unwrap().unwrap().1, task.profile_id);
    let facts = task.context.as_array().unwrap();
    let fact = |name: &str| facts.iter().find(|f| f["name"] == name).unwrap_or_else(|| panic!("no {name} in {facts:#?}"));
    assert_eq!((fact("product")["source"].as_str(), fact("product")["record"].as_str()), (Some("products.csv"), Some("BAG-002")));
    let order = fact("order");
    assert_eq!(order["source"], "shop");
    assert!(order["value"]["items"].as_array().unwrap().iter().any(|i| i["sku"] == "BAG-002"));
    // The newest order holding the pack is this one or a later one of the same person.
    assert!(order["record"].as_str().unwrap() >= order_id.as_str(), "{order}");
    for linked in ["invoice", "shipment"] {
        assert_eq!(fact(linked)["value"]["order_id"], order["record"], "{linked}");
    }
    assert_eq!(fact("invoice")["source"], "invoices");
    assert_eq!(fact("shipment")["source"], "shipments");
    assert_eq!(fact("warranty")["value"]["under_warranty"], json!(true));
    assert_eq!(fact("warranty")["record"], order["record"]);
    assert_eq!(fact("stock")["value"]["on_hand"], json!(0));
    let replacement = fact("replacement");
    assert_eq!(replacement["value"]["category"], "bags");
    assert_ne!(replacement["record"], "BAG-002");
    // Every fact that came from a record names one the profile holds.
    let records = store.profile_records(&task.profile_id).unwrap();
    for f in facts.iter().filter(|f| !f["source"].as_str().unwrap().ends_with(".csv")) {
        assert!(records.iter().any(|r| r.source == f["source"] && r.key == f["record"]), "{f}");
    }
    let runs = store.flow_runs("complaint_to_task", 10).unwrap();
    assert_eq!(runs.len(), 1);
    assert!(runs[0].trace["trace"].as_array().unwrap().iter().any(|s| s["step"].as_str().unwrap().starts_with("if stock.on_hand")));

    // The same ticket again is a duplicate record; the same range run again makes nothing.
    append_ticket(dir, &ticket);
    let (inserted, pass) = arrive(&mut *store, &config, dir);
    assert_eq!((inserted, pass.tasks.len()), (0, 0));
    let (flows, _) = load_flows(&*store, &config).unwrap();
    let mut references = References::default();
    let references = references.current(&config, dir).unwrap();
    let now_through: i64 = store.meta(RESOLVED_THROUGH).unwrap().unwrap().parse().unwrap();
    let again = run_new_records(&mut *store, &config, &flows, references, through, now_through).unwrap();
    assert_eq!((again.runs, again.tasks.len()), (1, 0), "{again:?}");
    // Two processes (two connections) that both ran the range record one task between them.
    let mut other = kinship_store::open(&location).unwrap();
    let mut load = kinship_pipeline::flows::TeamLoad::default();
    let mine = kinship_pipeline::flows::plan_runs(&*store, &config, &flows, references, &mut load, through, now_through).unwrap();
    let theirs = kinship_pipeline::flows::plan_runs(&*other, &config, &flows, references, &mut load, through, now_through).unwrap();
    assert_eq!((mine.runs.len(), theirs.runs.len()), (1, 1));
    assert!(
        store.record_runs(&mine.runs, now_through).unwrap().is_empty() && other.record_runs(&theirs.runs, now_through).unwrap().is_empty()
    );
    assert_eq!(store.tasks(&TaskFilter::default(), 100).unwrap().iter().filter(|t| t.record_key == "TCK-9000001").count(), 1);

    // A question about the same product is not a complaint.
    append_ticket(
        dir,
        &json!({
            "ticket_id": "TCK-9000002", "channel": "email", "from_email": email,
            "subject": "Is the Hiking Pack 45L back in stock?", "status": "open", "created_at": bought.to_rfc3339(),
        }),
    );
    let (inserted, pass) = arrive(&mut *store, &config, dir);
    assert_eq!((inserted, pass.triggers, pass.runs), (1, 1, 0));

    // Erasure takes the person's tasks and runs with them.
    let profile = task.profile_id.clone();
    let counts = store.erase(std::slice::from_ref(&profile), &[]).unwrap();
    assert_eq!((counts.tasks, counts.flow_runs), (1, 1));
    assert!(store.tasks(&TaskFilter { profile: Some(profile), ..TaskFilter::default() }, 10).unwrap().is_empty());
}

fn run_with_delivery(key: &str, profile: &str) -> NewRun {
    NewRun {
        key: key.into(),
        flow: "f".into(),
        version: 1,
        profile_id: profile.into(),
        source: "s".into(),
        record_key: key.into(),
        at: 1,
        trace: "{}".into(),
        task: None,
        deliveries: vec![NewDelivery {
            webhook_id: format!("msg_{key}"),
            endpoint: "ops".into(),
            profile_id: profile.into(),
            body: "{}".into(),
        }],
        wait: None,
        resumes: None,
        records: Vec::new(),
    }
}

#[test]
fn a_profiles_deliveries_leave_in_order_and_dead_ones_replay() {
    let tmp = tempfile::tempdir().unwrap();
    let mut store = kinship_store::open(&kinship_testkit::database_for(tmp.path())).unwrap();
    let runs = [run_with_delivery("a1", "pa"), run_with_delivery("b1", "pb"), run_with_delivery("a2", "pa")];
    store.record_runs(&runs, 10).unwrap();
    // Recording the same runs again adds nothing.
    store.record_runs(&runs, 5).unwrap();
    assert_eq!(store.meta("flows.through").unwrap().as_deref(), Some("10"), "the position never moves back");
    let due = store.due_deliveries("ops", 100, 10).unwrap();
    assert_eq!(due.iter().map(|d| d.webhook_id.as_str()).collect::<Vec<_>>(), ["msg_a1", "msg_b1"], "one per profile, its oldest");

    // a1 fails and waits: a2 may not overtake it.
    let attempt =
        |id, status, next_at| DeliveryAttempt { id, status, next_at, http_status: Some(503), response: Some("busy".into()), at: 100 };
    store.finish_attempts(&[attempt(due[0].id, "pending", 5000), attempt(due[1].id, "delivered", 100)]).unwrap();
    assert!(store.due_deliveries("ops", 200, 10).unwrap().is_empty());
    let due = store.due_deliveries("ops", 5000, 10).unwrap();
    assert_eq!(due.iter().map(|d| d.webhook_id.as_str()).collect::<Vec<_>>(), ["msg_a1"]);
    assert_eq!((due[0].attempts, due[0].last_status), (1, Some(503)));

    // Dead: the next one goes, and a replay puts the dead one back with its id unchanged.
    store.finish_attempts(&[attempt(due[0].id, "dead", 5000)]).unwrap();
    assert_eq!(store.due_deliveries("ops", 5000, 10).unwrap()[0].webhook_id, "msg_a2");
    let dead = store.deliveries(Some("ops"), "dead", 0, 10).unwrap();
    assert_eq!((dead.len(), dead[0].last_response.as_deref()), (1, Some("busy")));
    store.set_meta(&kinship_store::endpoint_gone_key("ops"), "1").unwrap();
    assert_eq!(store.replay_deliveries("ops", 0, None, 6000).unwrap(), 1);
    assert_eq!(store.meta(&kinship_store::endpoint_gone_key("ops")).unwrap(), None, "a replay lifts a 410's stop");
    assert_eq!(store.due_deliveries("ops", 6000, 10).unwrap()[0].webhook_id, "msg_a1");

    let counts = store.erase(&["pa".to_string()], &[]).unwrap();
    assert_eq!((counts.deliveries, counts.flow_runs), (2, 2));
    assert_eq!(store.delivery_counts().unwrap(), [("ops".to_string(), "delivered".to_string(), 1)]);
}

#[test]
fn entering_a_segment_triggers_a_flow_once_per_entry() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (config, mut store, _) = demo(dir);
    let flow = r#"
        name = "thank_big_spenders"
        [trigger]
        event = "Entered Segment"
        when = 'segment == "big_spenders"'
        [[steps]]
        gather = "order"
        event = "Order Completed"
        [[steps]]
        task = { title = "Thank the customer for order {order.order_id}", team = "support" }
    "#;
    save_flow(&mut *store, &config, flow, "test").unwrap();
    let before = kinship_pipeline::now_ms();
    let mut audience = kinship_pipeline::audience::load_audience(&*store, &config, &|_, _| {}).unwrap();
    let definition = |name: &str, expression: &str| kinship_segments::DefinitionSource {
        kind: kinship_segments::Kind::Segment,
        name: name.into(),
        expression: expression.into(),
    };
    let members = kinship_pipeline::audience::define(
        &mut *store,
        &config,
        &mut audience,
        definition("big_spenders", r#"sum("Order Completed", total) > 1500"#),
    )
    .unwrap();
    let others =
        kinship_pipeline::audience::define(&mut *store, &config, &mut audience, definition("buyers", r#"count("Order Completed") >= 1"#))
            .unwrap();
    assert!(members > 10 && others > members, "{members} {others}");

    let (flows, _) = load_flows(&*store, &config).unwrap();
    let mut references = References::default();
    let references = references.current(&config, dir).unwrap();
    let mut load = kinship_pipeline::flows::TeamLoad::default();
    let (planned, newest) = kinship_pipeline::flows::plan_transition_runs(&*store, &config, &flows, references, &mut load, before).unwrap();
    assert!(newest.is_some_and(|n| n >= before));
    // Entries into the other segment are read but start nothing.
    assert_eq!((planned.triggers, planned.runs.len()), (members + others, members));
    let tasks = store.record_runs(&planned.runs, 0).unwrap();
    assert_eq!(tasks.len(), members);
    let task = store.task(tasks[0]).unwrap().unwrap();
    assert_eq!(task.source, "segments");
    assert!(task.record_key.starts_with("big_spenders:entered@"), "{}", task.record_key);
    assert!(task.title.starts_with("Thank the customer for order ORD-"), "{}", task.title);
    // Read again (the runner re-reads a little of what it has run): nothing twice.
    let (again, _) = kinship_pipeline::flows::plan_transition_runs(&*store, &config, &flows, references, &mut load, before).unwrap();
    assert!(store.record_runs(&again.runs, 0).unwrap().is_empty());
    // Another node's engine finding the same entries a moment later (time-based segments are
    // evaluated by every node) logs none of them again, so no flow runs twice.
    let logged = store.transitions_since(before, 100_000).unwrap();
    let late: Vec<kinship_store::SegmentTransition> =
        logged.iter().map(|t| kinship_store::SegmentTransition { at: t.at + 1_000, ..t.clone() }).collect();
    store.record_transitions(&late, &[], before + 1_000).unwrap();
    assert_eq!(store.transitions_since(before, 100_000).unwrap().len(), logged.len());
    // An exit is a change, and logged once too.
    let exit = kinship_store::SegmentTransition { entered: false, ..logged[0].clone() };
    store.record_transitions(&[exit.clone(), exit], &[], before + 2_000).unwrap();
    assert_eq!(store.transitions_since(before, 100_000).unwrap().len(), logged.len() + 1);
}

#[test]
fn a_wait_is_kept_and_resumed_once_by_its_event_or_when_its_time_runs_out() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (config, mut store, _) = demo(dir);
    let flow = r#"
        name = "reorder_check"
        [trigger]
        event = "Ticket Opened"
        when = 'subject contains "arrived damaged"'
        [[steps]]
        gather = "product"
        from = "catalogue"
        mentioned_in = "subject"
        by = "name"
        [[steps]]
        wait = { until = "Order Completed", timeout = "7 days", as = "reorder" }
        [[steps]]
        if = 'reorder.outcome == "event"'
        then = [{ task = { title = "Reordered after a complaint about {product.name}", team = "support" } }]
        else = [{ task = { title = "No order within a week of a complaint about {product.name}", team = "support" } }]
    "#;
    save_flow(&mut *store, &config, flow, "test").unwrap();
    let through: i64 = store.meta(RESOLVED_THROUGH).unwrap().unwrap().parse().unwrap();
    store.record_runs(&[], through).unwrap();
    let (_, email_a, bought_a) = order_with(dir, "BAG-002");
    let (_, email_b, _) = order_with(dir, "TNT-001");
    assert_ne!(email_a, email_b);
    let complained = bought_a + chrono::Duration::days(30);
    for (id, email) in [("TCK-9100001", &email_a), ("TCK-9100002", &email_b)] {
        append_ticket(
            dir,
            &json!({
                "ticket_id": id, "channel": "email", "from_email": email, "subject": "Merino Hiking Socks arrived damaged",
                "status": "open", "created_at": complained.to_rfc3339(),
            }),
        );
    }
    let (_, pass) = arrive(&mut *store, &config, dir);
    assert_eq!((pass.runs, pass.tasks.len()), (2, 0), "both runs wait: {pass:?}");
    assert_eq!(store.due_waits(i64::MAX, 10).unwrap().len(), 2);

    // A's order two days later ends A's wait.
    append(
        dir,
        "shop_orders.jsonl",
        &json!({
            "order_id": "ORD-9900001", "customer": { "email": email_a, "name": "Returning Customer" },
            "items": [{ "sku": "SOC-001", "name": "Merino Hiking Socks", "qty": 1, "price": 29.95 }],
            "total": 29.95, "currency": "AUD", "status": "completed", "created_at": (complained + chrono::Duration::days(2)).to_rfc3339(),
        }),
    );
    let (inserted, pass) = arrive_from(&mut *store, &config, dir, "shop", "shop_orders.jsonl");
    assert_eq!((inserted, pass.runs, pass.tasks.len()), (1, 1, 1), "{pass:?}");
    let task = store.task(pass.tasks[0]).unwrap().unwrap();
    assert_eq!(task.title, "Reordered after a complaint about Merino Hiking Socks");
    assert_eq!(task.record_key, "TCK-9100001");
    let reorder = task.context.as_array().unwrap().iter().find(|f| f["name"] == "reorder").unwrap().clone();
    assert_eq!((reorder["value"]["outcome"].as_str(), reorder["record"].as_str()), (Some("event"), Some("ORD-9900001")));

    // B's week runs out: resumed by the timer, once, from what was kept (a fresh planner).
    let (flows, _) = load_flows(&*store, &config).unwrap();
    let mut references = References::default();
    let references = references.current(&config, dir).unwrap();
    let week_later = (complained + chrono::Duration::days(8)).timestamp_millis();
    let mut load = kinship_pipeline::flows::TeamLoad::default();
    let due = kinship_pipeline::flows::plan_due_waits(&*store, &config, &flows, references, &mut load, week_later).unwrap();
    assert_eq!(due.runs.len(), 1);
    let tasks = store.record_runs(&due.runs, through).unwrap();
    let task = store.task(tasks[0]).unwrap().unwrap();
    assert_eq!(
        (task.title.as_str(), task.record_key.as_str()),
        ("No order within a week of a complaint about Merino Hiking Socks", "TCK-9100002")
    );
    assert!(store.due_waits(i64::MAX, 10).unwrap().is_empty(), "both waits are done");
    // Resuming the same wait again (a crash before the position moved) makes nothing twice.
    assert!(store.record_runs(&due.runs, through).unwrap().is_empty());

    // A complaint and the order that ends its wait, resolved in one pass: no wait is left.
    let (_, email_c, bought_c) = order_with(dir, "JKT-001");
    let at = bought_c + chrono::Duration::days(30);
    append_ticket(
        dir,
        &json!({
            "ticket_id": "TCK-9100003", "channel": "email", "from_email": email_c, "subject": "Merino Hiking Socks arrived damaged",
            "status": "open", "created_at": at.to_rfc3339(),
        }),
    );
    append(
        dir,
        "shop_orders.jsonl",
        &json!({
            "order_id": "ORD-9900002", "customer": { "email": email_c, "name": "Quick Customer" },
            "items": [{ "sku": "SOC-001", "name": "Merino Hiking Socks", "qty": 1, "price": 29.95 }],
            "total": 29.95, "currency": "AUD", "status": "completed", "created_at": (at + chrono::Duration::hours(3)).to_rfc3339(),
        }),
    );
    let after = kinship_pipeline::flows::flows_through(&*store).unwrap();
    ingest_source(&mut *store, &config, "tickets", dir, &SuppressionCheck::nothing(), &|_, _| {}).unwrap();
    let (_, pass) = arrive_from(&mut *store, &config, dir, "shop", "shop_orders.jsonl");
    assert!(kinship_pipeline::flows::flows_through(&*store).unwrap() > after);
    assert_eq!(pass.tasks.len(), 1, "{pass:?}");
    assert_eq!(store.task(pass.tasks[0]).unwrap().unwrap().record_key, "TCK-9100003");
    assert!(store.due_waits(i64::MAX, 10).unwrap().is_empty(), "the wait begun and ended in one pass is not kept");
}

#[test]
fn traits_and_lists_a_flow_sets_are_records_of_the_profile_that_survive_a_rebuild() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (_, mut store, _) = demo(dir);
    let config = with_flows_source(dir);
    let marks = r#"
        name = "mark_complainers"
        [trigger]
        event = "Ticket Opened"
        when = 'subject contains "arrived damaged"'
        [[steps]]
        set_traits = { open_complaint = true, complaint_subject = "{trigger.subject}" }
        [[steps]]
        add_to_list = "callback"
    "#;
    let clears = r#"
        name = "clear_complainers"
        [trigger]
        event = "Ticket Opened"
        when = 'subject contains "sorted now"'
        [[steps]]
        set_traits = { open_complaint = false }
        [[steps]]
        remove_from_list = "callback"
    "#;
    save_flow(&mut *store, &config, marks, "test").unwrap();
    save_flow(&mut *store, &config, clears, "test").unwrap();
    let through: i64 = store.meta(RESOLVED_THROUGH).unwrap().unwrap().parse().unwrap();
    store.record_runs(&[], through).unwrap();
    let (_, email, bought) = order_with(dir, "BAG-002");
    let ticket = |id: &str, subject: &str, days: i64| {
        json!({ "ticket_id": id, "channel": "email", "from_email": email, "subject": subject, "status": "open",
                "created_at": (bought + chrono::Duration::days(days)).to_rfc3339() })
    };
    append_ticket(dir, &ticket("TCK-9200001", "Hiking pack 45L arrived damaged", 30));
    let (_, pass) = arrive(&mut *store, &config, dir);
    assert_eq!(pass.runs, 1, "{pass:?}");
    let profile = store.record_profile("tickets", "TCK-9200001").unwrap().unwrap().1;
    // The run's changes are records in the log; resolving them puts them on the profile.
    resolve_pending(&mut *store, &config);
    let traits = |store: &dyn Database| -> Value { serde_json::from_str(&store.profile(&profile).unwrap().unwrap().traits).unwrap() };
    // A stored trait is [value, source, record, time].
    let value = |traits: &Value, name: &str| traits[name][0].clone();
    let now = traits(&*store);
    assert_eq!(value(&now, "open_complaint"), json!(true), "{now}");
    assert_eq!(value(&now, "complaint_subject"), json!("Hiking pack 45L arrived damaged"));
    let written: Vec<_> = store.profile_records(&profile).unwrap().into_iter().filter(|r| r.source == "kinship").collect();
    assert_eq!(written.len(), 2, "an identify and an `Added To List`: {written:?}");
    assert!(written.iter().all(|r| r.key.starts_with("mark_complainers@1/tickets/TCK-9200001/")));

    let mut audience = kinship_pipeline::audience::load_audience(&*store, &config, &|_, _| {}).unwrap();
    let segment = kinship_segments::DefinitionSource {
        kind: kinship_segments::Kind::Segment,
        name: "callbacks".into(),
        expression: r#"in_list("callback")"#.into(),
    };
    assert_eq!(kinship_pipeline::audience::define(&mut *store, &config, &mut audience, segment.clone()).unwrap(), 1);
    assert_eq!(store.segment_members("callbacks", 0, 10).unwrap(), std::slice::from_ref(&profile));

    // A later ticket clears both; the newest record wins.
    append_ticket(dir, &ticket("TCK-9200002", "All sorted now, thanks", 31));
    let (_, pass) = arrive(&mut *store, &config, dir);
    assert_eq!(pass.runs, 1, "{pass:?}");
    resolve_pending(&mut *store, &config);
    assert_eq!(value(&traits(&*store), "open_complaint"), json!(false));
    // Rebuilt from the log alone, the profile keeps what the flows set.
    resolve_all(&mut *store, &config, &|_, _| {}).unwrap();
    assert_eq!(value(&traits(&*store), "open_complaint"), json!(false));
    assert_eq!(value(&traits(&*store), "complaint_subject"), json!("Hiking pack 45L arrived damaged"));
    let audience = kinship_pipeline::audience::load_audience(&*store, &config, &|_, _| {}).unwrap();
    assert_eq!(audience.size(&segment.name), Some(0));
    assert_eq!(
        audience.preview(r#"not in_list("callback") and traits.open_complaint == false"#, kinship_pipeline::now_ms(), 5).unwrap().count,
        1
    );
}

#[test]
fn a_scheduled_flow_runs_once_per_tick_on_each_member_of_its_segment() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (config, mut store, _) = demo(dir);
    let mut audience = kinship_pipeline::audience::load_audience(&*store, &config, &|_, _| {}).unwrap();
    let segment = kinship_segments::DefinitionSource {
        kind: kinship_segments::Kind::Segment,
        name: "big_spenders".into(),
        expression: r#"sum("Order Completed", total) > 1500"#.into(),
    };
    let members = kinship_pipeline::audience::define(&mut *store, &config, &mut audience, segment).unwrap();
    assert!(members > 10, "{members}");
    let flow = r#"
        name = "weekly_check_in"
        [trigger]
        schedule = "every 1 hour"
        segment = "big_spenders"
        when = 'count("Order Completed") >= 2'
        [[steps]]
        task = { title = "Check in ({trigger.tick})", team = "support" }
    "#;
    save_flow(&mut *store, &config, flow, "test").unwrap();
    let (flows, _) = load_flows(&*store, &config).unwrap();
    let now = kinship_pipeline::now_ms();
    // Saved after this hour's tick: the first tick is the next one.
    assert!(kinship_pipeline::flows::due_schedules(&*store, &flows, now).unwrap().is_empty() || now % 3_600_000 == 0);
    let next = now + 3_600_000;
    let due = kinship_pipeline::flows::due_schedules(&*store, &flows, next).unwrap();
    let tick = next - next % 3_600_000;
    assert_eq!(due, [(0, tick)]);
    let mut references = References::default();
    let references = references.current(&config, dir).unwrap();
    let mut load = kinship_pipeline::flows::TeamLoad::default();
    // Two pages, as a runner reads them.
    let mut tasks = Vec::new();
    let mut offset = 0;
    loop {
        let (planned, read) =
            kinship_pipeline::flows::plan_scheduled(&*store, &config, &flows[0], references, &mut load, tick, offset, 7).unwrap();
        tasks.extend(store.record_runs(&planned.runs, 0).unwrap());
        offset += read as u64;
        if read < 7 {
            break;
        }
    }
    assert_eq!(offset as usize, members);
    // The condition read each member's orders: some big spenders bought once.
    let repeat = audience.preview(r#"in_segment("big_spenders") and count("Order Completed") >= 2"#, now, 1).unwrap().count;
    assert!(repeat > 0 && repeat <= members);
    assert_eq!(tasks.len(), repeat);
    let task = store.task(tasks[0]).unwrap().unwrap();
    assert_eq!(task.source, "schedule");
    assert_eq!(task.title, format!("Check in ({})", kinship_expr::format_timestamp(tick)));
    // The same tick again (a crash before it was marked, or another node): nothing twice.
    let (again, _) = kinship_pipeline::flows::plan_scheduled(&*store, &config, &flows[0], references, &mut load, tick, 0, 10_000).unwrap();
    assert!(store.record_runs(&again.runs, 0).unwrap().is_empty());
    kinship_pipeline::flows::schedule_done(&mut *store, "weekly_check_in", tick).unwrap();
    assert!(kinship_pipeline::flows::due_schedules(&*store, &flows, next).unwrap().is_empty());
    assert_eq!(kinship_pipeline::flows::due_schedules(&*store, &flows, next + 3_600_000).unwrap(), [(0, tick + 3_600_000)]);
    // A dry run shows the next tick's runs.
    let dry = kinship_pipeline::flows::dry_run(&*store, &config, dir, flow, 30, 2, None).unwrap();
    assert_eq!((dry.triggers, dry.runs), (members, repeat));
}

#[test]
fn a_flow_condition_reads_saved_funnels_and_health_scores_as_the_profile_stands() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (config, mut store, _) = demo(dir);
    let mut audience = kinship_pipeline::audience::load_audience(&*store, &config, &|_, _| {}).unwrap();
    let funnel = r#"
        name = "bought"
        window = "60 days"
        [[steps]]
        event = "Order Completed"
        [[steps]]
        event = "Invoice Issued"
        [[steps]]
        event = "Order Shipped"
    "#;
    let health = std::fs::read_to_string(dir.join("health/customer.toml")).unwrap();
    for (kind, name, text) in [(kinship_segments::Kind::Funnel, "bought", funnel), (kinship_segments::Kind::Health, "customer", &health)] {
        let source = kinship_segments::DefinitionSource { kind, name: name.into(), expression: text.into() };
        kinship_pipeline::audience::define(&mut *store, &config, &mut audience, source).unwrap();
    }
    let flow = |when: &str| {
        format!(
            "name = \"shipped_then_complained\"\n[trigger]\nevent = \"Ticket Opened\"\nwhen = '{when}'\n\
             [[steps]]\ntask = {{ title = \"Call back\", team = \"support\" }}\n"
        )
    };
    // Names that are not saved are refused when saved.
    let err = save_flow(&mut *store, &config, &flow(r#"funnel("sold").step >= 1"#), "test").unwrap_err().to_string();
    assert!(err.contains("sold"), "{err}");
    // `stuck` compares with everyone's p90: learnt over the whole audience, kept in the store.
    let learnt = audience.stuck_thresholds("bought").unwrap().to_vec();
    assert!(learnt[0].is_some() && learnt[1].is_some(), "the demo's orders are invoiced and shipped: {learnt:?}");
    assert_eq!(store.meta("funnel.bought.stuck_p90").unwrap(), Some(serde_json::to_string(&learnt).unwrap()));
    // The 360, judging one profile, says "stuck" exactly as the whole audience does.
    let stuck = kinship_segments::DefinitionSource {
        kind: kinship_segments::Kind::Segment,
        name: "stuck_buying".into(),
        expression: r#"funnel("bought").stuck"#.into(),
    };
    kinship_pipeline::audience::define(&mut *store, &config, &mut audience, stuck).unwrap();
    let members: Vec<String> = audience.members("stuck_buying").unwrap().into_iter().map(String::from).collect();
    assert!(!members.is_empty(), "some of the demo's orders wait long for their invoice or shipment");
    let started = kinship_segments::DefinitionSource {
        kind: kinship_segments::Kind::Segment,
        name: "started_buying".into(),
        expression: r#"funnel("bought").step >= 1"#.into(),
    };
    kinship_pipeline::audience::define(&mut *store, &config, &mut audience, started).unwrap();
    let started = audience.members("started_buying").unwrap();
    let others: Vec<String> = started.into_iter().filter(|p| !members.iter().any(|m| m == p)).take(10).map(String::from).collect();
    assert!(!others.is_empty());
    for id in members.iter().take(10).chain(&others) {
        let doc = kinship_pipeline::profile_document(&*store, &config, id).unwrap().unwrap();
        let in_it = doc["segments"].as_array().unwrap().iter().any(|s| s == "stuck_buying");
        assert_eq!(in_it, members.contains(id), "{id}");
    }
    let when = r#"funnel("bought").step == 3 and not funnel("bought").stuck and health("customer").score >= 0 and health("customer").band != "none""#;
    save_flow(&mut *store, &config, &flow(when), "test").unwrap();
    let through: i64 = store.meta(RESOLVED_THROUGH).unwrap().unwrap().parse().unwrap();
    store.record_runs(&[], through).unwrap();

    // A customer whose order was invoiced and shipped, and someone never seen before.
    let (_, email, bought) = order_with(dir, "BAG-002");
    let at = (bought + chrono::Duration::days(3)).to_rfc3339();
    for (id, from) in [("TCK-9100001", email.as_str()), ("TCK-9100002", "first.contact@example.org")] {
        let ticket =
            json!({ "ticket_id": id, "channel": "email", "from_email": from, "subject": "Question", "status": "open", "created_at": at });
        append_ticket(dir, &ticket);
    }
    let (inserted, pass) = arrive(&mut *store, &config, dir);
    assert_eq!((inserted, pass.triggers, pass.runs, pass.tasks.len()), (2, 2, 1, 1), "{pass:?}");
    let task = store.task(pass.tasks[0]).unwrap().unwrap();
    assert_eq!(task.record_key, "TCK-9100001");
    // The run's trace shows what the condition read: the position and the score.
    let runs = store.flow_runs("shipped_then_complained", 10).unwrap();
    let trace = &runs[0].trace;
    let read = &trace["trace"][0]["values"];
    assert_eq!(read["funnel.bought"]["step"], json!(3), "{trace}");
    assert_eq!(read["funnel.bought"]["stuck"], json!(false), "{trace}");
    assert!(read["health.customer"]["score"].is_number(), "{trace}");
    assert!(["red", "yellow", "green"].contains(&read["health.customer"]["band"].as_str().unwrap()), "{trace}");
}

#[test]
fn an_opened_health_alert_is_an_event_a_flow_turns_into_a_task() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (_, mut store, _) = demo(dir);
    let config = with_flows_source(dir);
    let flow = r#"
        name = "call_the_red"
        [trigger]
        event = "Health Alert Opened"
        when = 'health == "customer" and reason in ["entered_red", "dropped"]'
        [[steps]]
        task = { title = "Call: health fell from {trigger.from_score} to {trigger.score} ({trigger.reason})", team = "support" }
    "#;
    save_flow(&mut *store, &config, flow, "test").unwrap();
    // A customer writes in today: a definition that turns anyone writing in today red.
    let (_, email, _) = order_with(dir, "BAG-002");
    let today = kinship_expr::format_timestamp(kinship_pipeline::now_ms() - 5 * 60_000);
    let ticket = json!({ "ticket_id": "TCK-9200001", "channel": "email", "from_email": email, "subject": "Where is it?",
                         "status": "open", "created_at": today });
    append_ticket(dir, &ticket);
    ingest_source(&mut *store, &config, "tickets", dir, &SuppressionCheck::nothing(), &|_, _| {}).unwrap();
    resolve_pending(&mut *store, &config);
    let mut audience = kinship_pipeline::audience::load_audience(&*store, &config, &|_, _| {}).unwrap();
    let health = r#"
        name = "customer"
        applies = 'any("Ticket Opened")'
        [[measures]]
        name = "tickets_today"
        value = 'count("Ticket Opened", last 1 day)'
        points = [[0, 100], [1, 0]]
    "#;
    let source =
        kinship_segments::DefinitionSource { kind: kinship_segments::Kind::Health, name: "customer".into(), expression: health.into() };
    kinship_pipeline::audience::define(&mut *store, &config, &mut audience, source).unwrap();
    // The flow acts on what comes after this.
    let through: i64 = store.meta(RESOLVED_THROUGH).unwrap().unwrap().parse().unwrap();
    store.record_runs(&[], through).unwrap();
    let now = kinship_pipeline::success::data_now(&audience);
    let pass = kinship_pipeline::success::keep_alerts(&mut *store, &config, &audience, "customer", now).unwrap();
    assert_eq!(pass.opened, 1, "{pass:?}");
    let opened = store.health_alerts("customer", Some("open"), 1000).unwrap();
    assert_eq!(store.record_profile("tickets", "TCK-9200001").unwrap().unwrap().1, opened[0].profile_id);

    // The alerts' events resolve onto their profiles and start the flow: one task each.
    resolve_pending(&mut *store, &config);
    let after = kinship_pipeline::flows::flows_through(&*store).unwrap();
    let through: i64 = store.meta(RESOLVED_THROUGH).unwrap().unwrap().parse().unwrap();
    let (flows, _) = load_flows(&*store, &config).unwrap();
    let mut references = References::default();
    let references = references.current(&config, dir).unwrap();
    let ran = run_new_records(&mut *store, &config, &flows, references, after, through).unwrap();
    assert_eq!(ran.tasks.len(), opened.len(), "{ran:?}");
    let task = store.task(ran.tasks[0]).unwrap().unwrap();
    assert!(task.title.starts_with("Call: health fell from "), "{}", task.title);
    assert!(opened.iter().any(|a| a.profile_id == task.profile_id), "the task is on the alerted profile");
    // A second pass opens nothing, so no second task.
    let again = kinship_pipeline::success::keep_alerts(&mut *store, &config, &audience, "customer", now).unwrap();
    assert_eq!(again.opened, 0);
}

/// Documents in flows: a scheduled flow over customers who owe (`unpaid invoices > 0`)
/// makes a task only for those whose condition counts two overdue invoices, as the segment
/// language counts them.
#[test]
fn a_flow_reads_overdue_invoices_as_the_segment_language_counts_them() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (config, mut store, _) = demo(dir);
    let mut audience = kinship_pipeline::audience::load_audience(&*store, &config, &|_, _| {}).unwrap();
    let segment = kinship_segments::DefinitionSource {
        kind: kinship_segments::Kind::Segment,
        name: "owing".into(),
        expression: "unpaid invoices > 0".into(),
    };
    let members = kinship_pipeline::audience::define(&mut *store, &config, &mut audience, segment).unwrap();
    assert!(members > 0, "the demo has unpaid invoices");
    let flow = r#"
        name = "chase_payment"
        [trigger]
        schedule = "every 1 hour"
        segment = "owing"
        when = 'overdue invoices >= 2'
        [[steps]]
        task = { title = "Chase two overdue invoices", team = "support" }
    "#;
    save_flow(&mut *store, &config, flow, "test").unwrap();
    let (flows, _) = load_flows(&*store, &config).unwrap();
    let now = kinship_pipeline::now_ms();
    let tick = now - now % 3_600_000;
    let mut references = References::default();
    let references = references.current(&config, dir).unwrap();
    let mut load = kinship_pipeline::flows::TeamLoad::default();
    let (planned, read) =
        kinship_pipeline::flows::plan_scheduled(&*store, &config, &flows[0], references, &mut load, tick, 0, 100_000).unwrap();
    assert_eq!(read, members);
    let tasks = store.record_runs(&planned.runs, 0).unwrap();
    let expected = audience.preview(r#"in_segment("owing") and overdue invoices >= 2"#, tick, 1).unwrap().count;
    assert!(expected > 0 && expected < members, "{expected} of {members}");
    assert_eq!(tasks.len(), expected);
}

#[test]
fn a_dry_run_of_the_complaint_flow_counts_what_the_tickets_file_holds() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (config, store, location) = demo(dir);
    let flow = std::fs::read_to_string(dir.join("flows/complaint_to_task.toml")).unwrap();
    let dry = kinship_pipeline::flows::dry_run(&*store, &config, dir, &flow, 3650, 3, None).unwrap();
    // By hand: every well-formed ticket is a trigger; open ones whose subject names a
    // complaint run, and each run makes one task (warranty or complaint).
    let tickets = lines(dir, "tickets.jsonl");
    let words = ["damaged", "stopped working", "fell apart", "Warranty claim", "Refund"];
    let complaints: Vec<&Value> =
        tickets.iter().filter(|t| t["status"] == "open" && words.iter().any(|w| t["subject"].as_str().unwrap_or("").contains(w))).collect();
    assert!(!complaints.is_empty());
    assert_eq!(dry.triggers, tickets.len());
    assert_eq!((dry.runs, dry.tasks), (complaints.len(), complaints.len()));
    // The samples are the first runs in the order the tickets arrived.
    let first: Vec<&str> = complaints.iter().take(3).map(|t| t["ticket_id"].as_str().unwrap()).collect();
    let sampled: Vec<&str> = dry.samples.iter().map(|s| s["trigger"]["record_key"].as_str().unwrap()).collect();
    assert_eq!(sampled, first);
    // A shorter window holds fewer.
    let recent = kinship_pipeline::flows::dry_run(&*store, &config, dir, &flow, 30, 0, None).unwrap();
    assert!(recent.triggers < dry.triggers && recent.samples.is_empty());
    // A server finds the triggers in the audience it holds and reads their profiles on every
    // core, with the same answer.
    let audience = std::sync::RwLock::new(kinship_pipeline::audience::load_audience(&*store, &config, &|_, _| {}).unwrap());
    let held = || Some(kinship_pipeline::flows::Held { audience: &audience, database: &location });
    for (days, samples, by_log) in [(3650, 3, &dry), (30, 0, &recent)] {
        let by_audience = kinship_pipeline::flows::dry_run(&*store, &config, dir, &flow, days, samples, held()).unwrap();
        assert_eq!(serde_json::to_value(&by_audience).unwrap(), serde_json::to_value(by_log).unwrap(), "{days} days");
    }
    // A condition naming `trigger.x` is judged on the records themselves, with the same answer.
    let prefixed = flow.replace("status == \"open\"", "trigger.status == \"open\"");
    assert_ne!(prefixed, flow);
    let by_audience = kinship_pipeline::flows::dry_run(&*store, &config, dir, &prefixed, 3650, 3, held()).unwrap();
    assert_eq!((by_audience.triggers, by_audience.runs, by_audience.tasks), (dry.triggers, dry.runs, dry.tasks));
    // So is one that reads the profile's events (judged in the run, as of the ticket).
    let reads_profile = flow.replace("status == \"open\"", "count(\"Order Completed\") >= 0 and status == \"open\"");
    assert_ne!(reads_profile, flow);
    let by_audience = kinship_pipeline::flows::dry_run(&*store, &config, dir, &reads_profile, 3650, 3, held()).unwrap();
    assert_eq!(
        (by_audience.triggers, by_audience.runs, by_audience.profiles, by_audience.tasks),
        (dry.triggers, dry.runs, dry.profiles, dry.tasks)
    );
    // An audience loaded before a source's mapping was edited (here the help desk's event
    // renamed) is not used: the log answers, under the mapping as it is now.
    let mut edited = config.clone();
    edited.sources.get_mut("tickets").unwrap().event.as_mut().unwrap().name = Some("Ticket Raised".into());
    let after_edit = kinship_pipeline::flows::dry_run(&*store, &edited, dir, &flow, 3650, 3, held()).unwrap();
    assert_eq!((after_edit.triggers, after_edit.runs), (0, 0), "the stale audience still names the tickets `Ticket Opened`");
    // An audience whose events do not name their records (a host that did not give them)
    // has every record of each candidate profile read, with the same answer.
    let mappers: std::collections::HashMap<&str, kinship_sources::Mapper> = config
        .sources
        .iter()
        .map(|(name, source)| (name.as_str(), kinship_sources::Mapper::new(source, &config.resolve).unwrap()))
        .collect();
    let mut unrecorded = kinship_segments::Audience::new();
    let mut ids = Vec::new();
    store.scan_profiles(&mut |id, _| ids.push(id.to_string())).unwrap();
    for id in &ids {
        let events: Vec<(kinship_sources::MappedEvent, i64)> = store
            .profile_records(id)
            .unwrap()
            .into_iter()
            .filter_map(|r| {
                Some((mappers.get(r.source.as_str())?.record_event(&r.source, r.payload.as_object()?, r.timestamp)?, r.timestamp?))
            })
            .collect();
        unrecorded.upsert_profile(id, &serde_json::Map::new(), events.iter().map(|(e, ts)| (e.event.as_str(), *ts, &e.properties)));
    }
    unrecorded.set_mapped_by(kinship_pipeline::audience::mappings_stamp(&config));
    let unrecorded = std::sync::RwLock::new(unrecorded);
    let held = kinship_pipeline::flows::Held { audience: &unrecorded, database: &location };
    let by_profile = kinship_pipeline::flows::dry_run(&*store, &config, dir, &flow, 3650, 3, Some(held)).unwrap();
    assert_eq!(serde_json::to_value(&by_profile).unwrap(), serde_json::to_value(&dry).unwrap());
    // An audience not loaded (a server with nothing defined) leaves it to the log.
    let unloaded = std::sync::RwLock::new(kinship_segments::Audience::unloaded());
    let held = kinship_pipeline::flows::Held { audience: &unloaded, database: &location };
    let by_log = kinship_pipeline::flows::dry_run(&*store, &config, dir, &flow, 3650, 3, Some(held)).unwrap();
    assert_eq!(serde_json::to_value(&by_log).unwrap(), serde_json::to_value(&dry).unwrap());
}
