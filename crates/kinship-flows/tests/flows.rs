//! A complaint flow run end to end on one profile, and arbitrary input through every parser.

use kinship_flows::{run, EventRecord, Flow, FlowDefinition, Known, ProfileChange, Reference, Subject};
use proptest::prelude::*;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

const DAY: i64 = 86_400_000;

const COMPLAINT: &str = r#"
name = "complaint_to_task"
[trigger]
event = "Ticket Opened"
when = 'subject contains "damaged" or subject contains "Warranty" or subject contains "stopped working"'

[[steps]]
gather = "product"
from = "catalogue"
mentioned_in = "subject"
by = "name"

[[steps]]
gather = "order"
event = "Order Completed"
holding = { property = "items", value = "{product.sku}" }

[[steps]]
gather = "invoice"
event = "Invoice Issued"
holding = { property = "order_id", value = "{order.order_id}" }

[[steps]]
gather = "shipment"
event = "Order Shipped"
holding = { property = "order_id", value = "{order.order_id}" }

[[steps]]
gather = "warranty"
warranty = { bought = "order", months = "{product.warranty_months}" }

[[steps]]
gather = "stock"
from = "inventory"
key = "{product.sku}"

[[steps]]
if = "stock.on_hand <= 0"
then = [{ gather = "replacement", similar_to = "product", from = "catalogue", same = ["category"], in_stock = { from = "inventory", field = "on_hand" } }]

[[steps]]
task = { title = "{product.name}: {trigger.subject}", team = "support", priority = "high", due = "1 day", skill = "warranty" }

[[steps]]
deliver = "ops"
"#;

fn object(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

fn event(name: &str, source: &str, key: &str, ts: i64, properties: Value) -> EventRecord {
    EventRecord { name: name.into(), timestamp_ms: ts, properties: object(properties), source: source.into(), key: key.into() }
}

fn references(on_hand: i64) -> BTreeMap<String, Reference> {
    let rows = |rows: Value| -> Vec<(String, Map<String, Value>)> {
        rows.as_array().unwrap().iter().map(|r| (r["sku"].as_str().unwrap().to_string(), object(r.clone()))).collect()
    };
    let catalogue = rows(json!([
        {"sku": "TNT-001", "name": "Two-Person Hiking Tent", "category": "tents", "attributes": "hiking;2-person;lightweight", "warranty_months": 24},
        {"sku": "TNT-002", "name": "Four-Person Family Tent", "category": "tents", "attributes": "family;4-person", "warranty_months": 24},
        {"sku": "TNT-003", "name": "Ultralight Hiking Tent", "category": "tents", "attributes": "hiking;2-person;ultralight", "warranty_months": 24},
        {"sku": "SLP-001", "name": "Down Sleeping Bag", "category": "sleeping", "attributes": "hiking;2-person;lightweight", "warranty_months": 12},
    ]));
    let inventory = rows(json!([
        {"sku": "TNT-001", "on_hand": on_hand}, {"sku": "TNT-002", "on_hand": 5},
        {"sku": "TNT-003", "on_hand": 2}, {"sku": "SLP-001", "on_hand": 50},
    ]));
    [
        ("catalogue".to_string(), Reference::new("catalogue", "products.csv", 7, catalogue)),
        ("inventory".to_string(), Reference::new("inventory", "inventory.csv", 8, inventory)),
    ]
    .into()
}

fn known() -> Known {
    Known {
        references: ["catalogue".to_string(), "inventory".to_string()].into(),
        teams: ["support".to_string()].into(),
        endpoints: ["ops".to_string()].into(),
        writes_records: true,
        schema: kinship_expr::Schema::new(),
    }
}

fn customer(bought_at: i64) -> Subject {
    Subject {
        id: "p1".into(),
        traits: object(json!({"first_name": "Zara"})),
        events: vec![
            event("Order Completed", "shop", "O-1", bought_at - 30 * DAY, json!({"order_id": "O-1", "items": [{"sku": "SLP-001"}]})),
            event("Order Completed", "shop", "O-2", bought_at, json!({"order_id": "O-2", "items": [{"sku": "TNT-001", "qty": 1}]})),
            event("Invoice Issued", "invoices", "INV-9", bought_at + 1000, json!({"order_id": "O-2", "amount": 349.95})),
            event("Invoice Issued", "invoices", "INV-3", bought_at - 30 * DAY, json!({"order_id": "O-1"})),
            event("Order Shipped", "shipments", "SH-4", bought_at + DAY, json!({"order_id": "O-2", "carrier": "Sendle"})),
        ],
        ..Subject::default()
    }
}

#[test]
fn a_complaint_gathers_its_context_with_sources_and_suggests_a_replacement_of_the_same_category() {
    let flow = Flow::compile(FlowDefinition::parse(COMPLAINT).unwrap(), &known()).unwrap();
    let now = 1_800_000_000_000;
    let subject = customer(now - 100 * DAY);
    let ticket = event("Ticket Opened", "tickets", "T-1", now, json!({"subject": "Two-person hiking tent arrived damaged"}));
    let out = run(&flow, &ticket, &subject, &references(0), now);
    assert!(out.matched);
    let fact = |name: &str| out.facts.iter().find(|f| f.name == name).unwrap_or_else(|| panic!("no {name}: {:#?}", out.trace));
    assert_eq!((fact("product").source.as_str(), fact("product").record.as_str()), ("products.csv", "TNT-001"));
    assert_eq!((fact("order").source.as_str(), fact("order").record.as_str()), ("shop", "O-2"));
    assert_eq!(fact("invoice").record, "INV-9");
    assert_eq!(fact("shipment").record, "SH-4");
    assert_eq!(fact("warranty").value["under_warranty"], json!(true));
    assert_eq!(fact("warranty").record, "O-2");
    assert_eq!(fact("stock").value["on_hand"], json!(0));
    // The sleeping bag shares more attributes but is another category.
    assert_eq!(fact("replacement").record, "TNT-003");
    assert!(fact("replacement").value["reason"].as_str().unwrap().contains("same category (tents)"));
    assert_eq!(out.tasks.len(), 1);
    assert_eq!(out.tasks[0].title, "Two-Person Hiking Tent: Two-person hiking tent arrived damaged");
    assert_eq!(out.tasks[0].due_ms, Some(now + DAY));
    assert_eq!(out.deliveries, ["ops"]);
    let branch = out.trace.iter().find(|t| t.step.starts_with("if ")).unwrap();
    assert_eq!((branch.outcome.as_str(), &branch.values["stock.on_hand"]), ("true", &json!(0)));

    // In stock, three years on: no replacement, out of warranty.
    let out = run(&flow, &ticket, &customer(now - 3 * 365 * DAY), &references(4), now);
    assert!(out.facts.iter().all(|f| f.name != "replacement"));
    assert_eq!(out.facts.iter().find(|f| f.name == "warranty").unwrap().value["under_warranty"], json!(false));

    // A question is not a complaint: the trace says why, and nothing is asked for.
    let question = event("Ticket Opened", "tickets", "T-2", now, json!({"subject": "Question about Two-Person Hiking Tent"}));
    let out = run(&flow, &question, &subject, &references(0), now);
    assert!(!out.matched && out.tasks.is_empty() && out.deliveries.is_empty());
    assert_eq!(out.trace[0].outcome, "not matched");
    assert_eq!(out.trace[0].values["subject"], json!("Question about Two-Person Hiking Tent"));
}

#[test]
fn a_product_nobody_bought_leaves_the_order_facts_missing_and_still_makes_the_task() {
    let flow = Flow::compile(FlowDefinition::parse(COMPLAINT).unwrap(), &known()).unwrap();
    let now = 1_800_000_000_000;
    let ticket = event("Ticket Opened", "tickets", "T-3", now, json!({"subject": "Four-Person Family Tent arrived damaged"}));
    let out = run(&flow, &ticket, &customer(now - DAY), &references(3), now);
    assert!(out.facts.iter().any(|f| f.name == "product"));
    assert!(out.facts.iter().all(|f| f.name != "order" && f.name != "invoice"));
    assert!(out.trace.iter().any(|t| t.step.starts_with("gather warranty") && t.outcome.starts_with("unknown")));
    assert_eq!(out.tasks.len(), 1);
}

#[test]
fn a_run_sets_traits_and_lists_in_step_order_and_leaves_alone_what_it_could_not_find() {
    let text = r#"
        name = "mark_complainers"
        [trigger]
        event = "Ticket Opened"
        [[steps]]
        gather = "product"
        from = "catalogue"
        mentioned_in = "subject"
        by = "name"
        [[steps]]
        set_traits = { open_complaint = true, complained_of = "{product.name}", complaint_ticket = "{trigger.ticket_id}" }
        [[steps]]
        add_to_list = "callback"
        [[steps]]
        remove_from_list = "newsletter"
    "#;
    let flow = Flow::compile(FlowDefinition::parse(text).unwrap(), &known()).unwrap();
    let now = 1_800_000_000_000;
    let ticket = event("Ticket Opened", "tickets", "T-9", now, json!({"subject": "Two-Person Hiking Tent broke", "ticket_id": "T-9"}));
    let out = run(&flow, &ticket, &customer(now - DAY), &references(1), now);
    assert_eq!(
        out.changes,
        [
            ProfileChange::SetTraits(object(
                json!({"open_complaint": true, "complained_of": "Two-Person Hiking Tent", "complaint_ticket": "T-9"})
            )),
            ProfileChange::List { list: "callback".into(), added: true },
            ProfileChange::List { list: "newsletter".into(), added: false },
        ]
    );
    // No product named: the trait that needs it is not written with a placeholder.
    let vague = event("Ticket Opened", "tickets", "T-10", now, json!({"subject": "it broke", "ticket_id": "T-10"}));
    let out = run(&flow, &vague, &customer(now - DAY), &references(1), now);
    assert_eq!(out.changes[0], ProfileChange::SetTraits(object(json!({"open_complaint": true, "complaint_ticket": "T-10"}))));
    let step = out.trace.iter().find(|t| t.step.starts_with("set traits")).unwrap();
    assert!(step.outcome.contains("complained_of"), "{}", step.outcome);
}

proptest! {
    #[test]
    fn no_text_panics_a_flow_or_its_run(text in "\\PC{0,80}", subject in "\\PC{0,80}") {
        let _ = FlowDefinition::parse(&text);
        let definition = FlowDefinition::parse(&format!(
            "name = \"f\"\n[trigger]\nevent = \"E\"\nwhen = {text:?}\n[[steps]]\ntask = {{ title = {text:?}, team = \"support\" }}"
        ));
        if let Ok(definition) = definition {
            if let Ok(flow) = Flow::compile(definition, &known()) {
                let trigger = event("E", "s", "k", 0, json!({ "subject": subject }));
                let _ = run(&flow, &trigger, &customer(0), &references(0), 0);
            }
        }
        let flow = Flow::compile(FlowDefinition::parse(COMPLAINT).unwrap(), &known()).unwrap();
        let trigger = event("Ticket Opened", "s", "k", 0, json!({ "subject": format!("damaged {subject}") }));
        let _ = run(&flow, &trigger, &customer(0), &references(0), i64::MAX);
    }
}

#[test]
fn a_host_knows_which_triggers_need_no_profile_and_which_events_a_flow_reads() {
    let flow = Flow::compile(FlowDefinition::parse(COMPLAINT).unwrap(), &known()).unwrap();
    let damaged = event("Ticket Opened", "tickets", "T-1", 0, json!({"subject": "Tent arrived damaged"}));
    let question = event("Ticket Opened", "tickets", "T-2", 0, json!({"subject": "Is the tent back in stock?"}));
    assert_eq!(flow.triggers_alone(&damaged), Some(true));
    assert_eq!(flow.triggers_alone(&question), Some(false));
    assert_eq!(flow.triggers_alone(&event("Order Completed", "shop", "O-1", 0, json!({}))), Some(false));
    let read: Vec<String> = flow.events_read().unwrap().into_iter().collect();
    assert_eq!(read, ["Invoice Issued", "Order Completed", "Order Shipped"]);

    // A condition on the profile must wait for it; one that counts every event reads them all.
    let on_profile = COMPLAINT.replace("when = 'subject contains", "when = 'traits.vip == true or subject contains");
    let flow = Flow::compile(FlowDefinition::parse(&on_profile).unwrap(), &known()).unwrap();
    assert_eq!(flow.triggers_alone(&question), None);
    let any_event = COMPLAINT.replace("when = 'subject contains", "when = 'count(*) > 3 or subject contains");
    assert_eq!(Flow::compile(FlowDefinition::parse(&any_event).unwrap(), &known()).unwrap().events_read(), None);
}

#[test]
fn a_run_stops_at_a_wait_and_resumes_from_it_with_how_it_ended() {
    let text = r#"
        name = "reorder_check"
        [trigger]
        event = "Ticket Opened"
        [[steps]]
        gather = "product"
        from = "catalogue"
        mentioned_in = "subject"
        by = "name"
        [[steps]]
        wait = { until = "Order Completed", timeout = "7 days", as = "reorder" }
        [[steps]]
        if = 'reorder.outcome == "event"'
        then = [{ task = { title = "Reordered: {product.name}", team = "support" } }]
        else = [{ task = { title = "No reorder: {product.name}", team = "support" } }]
    "#;
    let flow = Flow::compile(FlowDefinition::parse(text).unwrap(), &known()).unwrap();
    let now = 1_800_000_000_000;
    let ticket = event("Ticket Opened", "tickets", "T-1", now, json!({"subject": "Two-Person Hiking Tent arrived damaged"}));
    let subject = customer(now - DAY);
    let out = run(&flow, &ticket, &subject, &references(3), now);
    let wait = out.wait.clone().expect("the run waits");
    assert_eq!((wait.step, wait.until.as_deref(), wait.resume_at), (1, Some("Order Completed"), now + 7 * DAY));
    assert!(out.tasks.is_empty());
    assert_eq!(out.facts.len(), 1, "the product, kept for the rest of the run");

    let order = event("Order Completed", "shop", "O-9", now + DAY, json!({"order_id": "O-9"}));
    let resumed = kinship_flows::resume(&flow, &ticket, &subject, &references(3), &out.facts, wait.step, Some(&order), now + DAY);
    assert_eq!(resumed.tasks[0].title, "Reordered: Two-Person Hiking Tent");
    let reorder = resumed.facts.iter().find(|f| f.name == "reorder").unwrap();
    assert_eq!((reorder.value["outcome"].as_str(), reorder.record.as_str()), (Some("event"), "O-9"));
    let timed_out = kinship_flows::resume(&flow, &ticket, &subject, &references(3), &out.facts, wait.step, None, wait.resume_at);
    assert_eq!(timed_out.tasks[0].title, "No reorder: Two-Person Hiking Tent");
    // A step that is no wait (a changed flow) resumes nothing.
    assert!(kinship_flows::resume(&flow, &ticket, &subject, &references(3), &out.facts, 0, None, now).tasks.is_empty());

    // A wait inside a branch, or one with neither a duration nor an event, is refused.
    let nested = text
        .replace("[[steps]]\n        wait = { until = \"Order Completed\", timeout = \"7 days\", as = \"reorder\" }\n", "")
        .replace("then = [{ task", "then = [{ wait = { for = \"1 day\" } }, { task");
    let err = Flow::compile(FlowDefinition::parse(&nested).unwrap(), &known()).unwrap_err().to_string();
    assert!(err.contains("not inside `if`"), "{err}");
    let vague = text.replace(
        "wait = { until = \"Order Completed\", timeout = \"7 days\", as = \"reorder\" }",
        "wait = { until = \"Order Completed\" }",
    );
    assert!(Flow::compile(FlowDefinition::parse(&vague).unwrap(), &known()).is_err());
}
