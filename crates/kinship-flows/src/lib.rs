//! Flows: a signal (an event that matches a filter) turned into facts gathered from the
//! customer's records and from reference data, a task with that context, and deliveries.
//!
//! A flow is data ([`FlowDefinition`], TOML or JSON), checked and compiled once
//! ([`Flow::compile`]) and run against one trigger ([`run`]). Conditions are the segment
//! language (`kinship-expr`): inside a flow, bare words read the trigger's properties and the
//! facts gathered so far (`subject contains "damaged"`, `stock.on_hand <= 0`), `traits.x`
//! reads the profile and `count("Order Completed", last 90 days)` its events.
//!
//! ```toml
//! name = "complaint_to_task"
//! [trigger]
//! event = "Ticket Opened"
//! when = 'subject contains "damaged" or subject contains "Warranty"'
//!
//! [[steps]]
//! gather = "product"          # the catalogue row whose name the subject mentions
//! from = "catalogue"
//! mentioned_in = "subject"
//! by = "name"
//!
//! [[steps]]
//! gather = "order"            # the newest order holding that SKU
//! event = "Order Completed"
//! holding = { property = "items", value = "{product.sku}" }
//!
//! [[steps]]
//! task = { title = "Complaint about {product.name}", team = "support", due = "1 day" }
//! ```
//!
//! Every fact keeps the record it came from and its time, and every run keeps a trace of which
//! condition matched with which values. The crate is pure: the host reads the store, runs the
//! flow, and writes the task and deliveries in one transaction.

mod assign;
mod condition;
mod definition;
mod run;
mod schedule;
mod similar;
mod template;

pub use assign::{assign, AssignRule, Member};
pub use condition::Condition;
pub use definition::{Flow, FlowDefinition, FlowError, Known, Priority, StepSpec, TaskSpec, TriggerSpec, WaitSpec, SCHEDULED};
pub use run::{resume, run, EventRecord, Fact, ProfileChange, Reference, Run, Subject, TaskDraft, TraceStep, WaitDraft};
pub use schedule::Schedule;
pub use similar::{suggest_replacement, Suggestion};
