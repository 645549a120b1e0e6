//! The language end to end: parse, check and evaluate against small profiles whose answers are known by
//! construction; error positions and rendering; limits; dependencies and cycles; parser fuzzing.

use std::collections::BTreeMap;

use kinship_expr::{
    check, compile_computed, compile_segment, find_cycle, format_timestamp, parse, parse_definition, Dependencies, Error, EvalContext,
    EventView, FunnelField, HealthField, ParseError, ProfileView, Reference, Scalar, Schema, Type, MAX_NESTING, MAX_SOURCE_BYTES,
};
use proptest::prelude::*;
use serde_json::{json, Value};

const SECOND: i64 = 1_000;
const HOUR: i64 = 3_600 * SECOND;
const DAY: i64 = 24 * HOUR;
/// 2026-01-31T12:00:00Z.
const NOW: i64 = 1_769_817_600_000 + 12 * HOUR;

// ---- a test host ----

struct TestEvent {
    name: &'static str,
    timestamp_ms: i64,
    properties: Value,
}

impl EventView for TestEvent {
    fn timestamp_ms(&self) -> i64 {
        self.timestamp_ms
    }

    fn property(&self, name: &str) -> Scalar<'_> {
        self.properties.get(name).map_or(Scalar::Null, Scalar::from_json)
    }
}

#[derive(Default)]
struct TestProfile {
    traits: Value,
    computed: Value,
    segments: Vec<&'static str>,
    /// (funnel, steps reached, when)
    funnels: Vec<(&'static str, f64, i64)>,
    /// (health definition, score)
    healths: Vec<(&'static str, f64)>,
    /// Oldest first, as `ProfileView::events` promises.
    events: Vec<TestEvent>,
}

impl ProfileView for TestProfile {
    type Event = TestEvent;

    fn trait_value(&self, name: &str) -> Scalar<'_> {
        self.traits.get(name).map_or(Scalar::Null, Scalar::from_json)
    }

    fn computed(&self, name: &str) -> Scalar<'_> {
        self.computed.get(name).map_or(Scalar::Null, Scalar::from_json)
    }

    fn in_segment(&self, name: &str) -> bool {
        self.segments.contains(&name)
    }

    fn funnel(&self, name: &str, field: FunnelField, now_ms: i64) -> Scalar<'_> {
        let Some(&(_, step, at)) = self.funnels.iter().find(|f| f.0 == name) else { return Scalar::Null };
        match field {
            FunnelField::Step => Scalar::Number(step),
            FunnelField::Reached => Scalar::Date(at),
            // This test host calls a profile stuck after a day at its step.
            FunnelField::Stuck => Scalar::Bool(now_ms - at > 86_400_000),
        }
    }

    fn health(&self, name: &str, field: HealthField, _now_ms: i64) -> Scalar<'_> {
        let Some(&(_, score)) = self.healths.iter().find(|h| h.0 == name) else { return Scalar::Null };
        match field {
            HealthField::Score => Scalar::Number(score),
            // This test host bands at 40.
            HealthField::Band => Scalar::Str(if score < 40.0 { "red" } else { "green" }),
        }
    }

    fn event_name<'a>(&'a self, event: &'a TestEvent) -> &'a str {
        event.name
    }

    fn events<'a>(&'a self, name: Option<&'a str>) -> impl DoubleEndedIterator<Item = &'a TestEvent> + 'a {
        self.events.iter().filter(move |event| name.is_none_or(|name| event.name == name))
    }
}

fn profile(traits: Value) -> TestProfile {
    TestProfile { traits, ..TestProfile::default() }
}

impl TestProfile {
    /// Adds an event `age_ms` before [`NOW`], keeping events oldest first.
    fn event(mut self, name: &'static str, age_ms: i64, properties: Value) -> Self {
        self.events.push(TestEvent { name, timestamp_ms: NOW - age_ms, properties });
        self.events.sort_by_key(|event| event.timestamp_ms);
        self
    }

    fn computed(mut self, computed: Value) -> Self {
        self.computed = computed;
        self
    }

    fn in_segments(mut self, segments: &[&'static str]) -> Self {
        self.segments = segments.to_vec();
        self
    }
}

fn schema() -> Schema {
    Schema::new()
        .with_trait("age", Type::Number)
        .with_computed("lifetime_value", Type::Number)
        .with_computed("favourite_colour", Type::String)
        .with_segment("engaged")
        .with_segment("vip")
        .with_funnel("checkout")
        .with_health("customer")
}

fn matches(source: &str, profile: &TestProfile) -> bool {
    let program = compile_segment(source, &schema()).unwrap_or_else(|error| panic!("{}", error.render(source)));
    program.matches(profile, &EvalContext::at(NOW))
}

/// The value of a computed expression, as JSON (dates as ISO-8601 text).
fn value(source: &str, profile: &TestProfile) -> Value {
    let program = compile_computed(source, &schema()).unwrap_or_else(|error| panic!("{}", error.render(source)));
    program.evaluate(profile, &EvalContext::at(NOW)).to_json()
}

fn compile_error(source: &str) -> Error {
    match compile_segment(source, &schema()) {
        Ok(_) => panic!("`{source}` compiled"),
        Err(error) => error,
    }
}

fn parse_error(source: &str) -> ParseError {
    match compile_error(source) {
        Error::Parse(error) => error,
        Error::Type(error) => panic!("`{source}` parsed: {}", error.render(source)),
    }
}

// ---- the issue's examples ----

#[test]
fn trait_equality() {
    let source = r#"traits.country == "AU""#;
    assert!(matches(source, &profile(json!({"country": "AU"}))));
    assert!(!matches(source, &profile(json!({"country": "NZ"}))));
    assert!(!matches(source, &profile(json!({"country": "au"}))), "string comparison is case-sensitive");
    assert!(!matches(source, &profile(json!({}))));
}

#[test]
fn trait_in_list() {
    let source = r#"traits.plan in ["pro", "enterprise"]"#;
    assert!(matches(source, &profile(json!({"plan": "enterprise"}))));
    assert!(!matches(source, &profile(json!({"plan": "free"}))));
    assert!(!matches(source, &profile(json!({}))));
    assert!(matches(r#"traits.plan not in ["pro", "enterprise"]"#, &profile(json!({"plan": "free"}))));
    assert!(matches("traits.tier in [1, 2]", &profile(json!({"tier": 2}))));
}

#[test]
fn trait_text_operators() {
    let customer = profile(json!({"email": "ada@example.com"}));
    assert!(matches(r#"traits.email ends_with "@example.com""#, &customer));
    assert!(!matches(r#"traits.email ends_with "@example.org""#, &customer));
    assert!(matches(r#"traits.email starts_with "ada@""#, &customer));
    assert!(matches(r#"traits.email contains "example""#, &customer));
    assert!(!matches(r#"traits.email contains "EXAMPLE""#, &customer));
    assert!(!matches(r#"traits.phone contains "1""#, &customer), "null is not a string");
}

#[test]
fn exists_tests_for_null() {
    assert!(matches("exists(traits.phone)", &profile(json!({"phone": "+61 400 000 000"}))));
    assert!(!matches("exists(traits.phone)", &profile(json!({"email": "a@b.c"}))));
    assert!(!matches("exists(traits.phone)", &profile(json!({"phone": null}))));
    assert!(matches("traits.phone == null", &profile(json!({}))));
}

#[test]
fn count_in_a_window() {
    let source = r#"count("Order Completed", last 90 days) >= 2"#;
    let two_recent = profile(json!({})).event("Order Completed", 10 * DAY, json!({})).event("Order Completed", 89 * DAY, json!({}));
    let one_recent = profile(json!({})).event("Order Completed", 10 * DAY, json!({})).event("Order Completed", 91 * DAY, json!({}));
    let other_events = profile(json!({})).event("Order Completed", DAY, json!({})).event("Page Viewed", 2 * DAY, json!({}));
    assert!(matches(source, &two_recent));
    assert!(!matches(source, &one_recent));
    assert!(!matches(source, &other_events));
    assert_eq!(value(r#"count("Order Completed")"#, &one_recent), json!(2.0));
}

#[test]
fn sum_of_a_property_in_a_window() {
    let source = r#"sum("Order Completed", revenue, last 365 days) > 500"#;
    let customer = profile(json!({}))
        .event("Order Completed", 400 * DAY, json!({"revenue": 1000}))
        .event("Order Completed", 200 * DAY, json!({"revenue": 300}))
        .event("Order Completed", 100 * DAY, json!({"revenue": "250.50"}))
        .event("Order Completed", 50 * DAY, json!({"revenue": "n/a"}))
        .event("Order Completed", 20 * DAY, json!({}));
    assert!(matches(source, &customer));
    assert_eq!(value(r#"sum("Order Completed", revenue, last 365 days)"#, &customer), json!(550.5));
    assert_eq!(value(r#"sum("Order Completed", revenue)"#, &customer), json!(1550.5));
    let below = profile(json!({})).event("Order Completed", 400 * DAY, json!({"revenue": 1000})).event(
        "Order Completed",
        DAY,
        json!({"revenue": 500}),
    );
    assert!(!matches(source, &below), "exactly 500 is not more than 500");
    assert_eq!(value(r#"sum("Order Completed", revenue)"#, &profile(json!({}))), json!(0.0));
}

#[test]
fn not_any_with_a_filter() {
    let source = r#"not any("Ticket Opened", status == "open")"#;
    let closed_only = profile(json!({})).event("Ticket Opened", DAY, json!({"status": "closed"}));
    let one_open = closed_only_then_open();
    assert!(matches(source, &closed_only));
    assert!(matches(source, &profile(json!({}))));
    assert!(!matches(source, &one_open));
    assert!(!matches(r#"not any("Ticket Opened", properties.status == "open")"#, &one_open));

    fn closed_only_then_open() -> TestProfile {
        profile(json!({})).event("Ticket Opened", 2 * DAY, json!({"status": "closed"})).event(
            "Ticket Opened",
            DAY,
            json!({"status": "open"}),
        )
    }
}

#[test]
fn days_since_the_last_event() {
    let source = r#"days_since(last("Order Completed")) > 60"#;
    let lapsed = profile(json!({})).event("Order Completed", 100 * DAY, json!({})).event("Order Completed", 61 * DAY, json!({}));
    let recent = profile(json!({})).event("Order Completed", 100 * DAY, json!({})).event("Order Completed", 60 * DAY, json!({}));
    assert!(matches(source, &lapsed));
    assert!(!matches(source, &recent));
    assert!(!matches(source, &profile(json!({}))), "no order: days_since(null) is null, and null > 60 is false");
    assert_eq!(value(r#"days_since(last("Order Completed"))"#, &lapsed), json!(61.0));
    // Whole days, rounded down.
    let almost_two_days = profile(json!({})).event("Order Completed", 2 * DAY - 1, json!({}));
    assert_eq!(value(r#"days_since(last("Order Completed"))"#, &almost_two_days), json!(1.0));
    assert_eq!(value(r#"days_since(traits.signed_up)"#, &profile(json!({"signed_up": "2026-01-01"}))), json!(30.0));
}

#[test]
fn computed_traits_and_segments() {
    let source = r#"computed.lifetime_value > 1000 and in_segment("engaged")"#;
    assert!(matches(source, &profile(json!({})).computed(json!({"lifetime_value": 1500})).in_segments(&["engaged"])));
    assert!(!matches(source, &profile(json!({})).computed(json!({"lifetime_value": 1500})).in_segments(&["vip"])));
    assert!(!matches(source, &profile(json!({})).computed(json!({"lifetime_value": 900})).in_segments(&["engaged"])));
    assert!(!matches(source, &profile(json!({})).in_segments(&["engaged"])));
}

#[test]
fn funnel_positions_are_the_hosts() {
    const DAY: i64 = 86_400_000;
    let at_two = TestProfile { funnels: vec![("checkout", 2.0, NOW - 3 * DAY)], ..TestProfile::default() };
    let fresh = TestProfile { funnels: vec![("checkout", 2.0, NOW - DAY / 2)], ..TestProfile::default() };
    assert!(matches(r#"funnel("checkout").step >= 2"#, &at_two));
    assert!(!matches(r#"funnel("checkout").step >= 3"#, &at_two));
    assert!(matches(r#"now() - funnel("checkout").reached > 2 days"#, &at_two));
    assert!(matches(r#"funnel("checkout").stuck"#, &at_two));
    assert!(!matches(r#"funnel("checkout").stuck"#, &fresh));
    // Never entered: the host answers null, which no comparison holds for.
    assert!(!matches(r#"funnel("checkout").step >= 0"#, &profile(json!({}))));
    let error = compile_error(r#"funnel("signup").step > 1"#);
    assert!(error.render(r#"funnel("signup").step > 1"#).contains("unknown funnel `signup`"), "{error:?}");
    let error = parse_error(r#"funnel("checkout").depth > 1"#);
    assert!(error.render(r#"funnel("checkout").depth > 1"#).contains("`step`"), "{error:?}");
    assert!(compile_error(r#"funnel("checkout").step == "two""#).to_string().contains("String"));
    let stuck = parse(r#"funnel("checkout").stuck"#).unwrap();
    assert_eq!(stuck.to_string(), r#"funnel("checkout").stuck"#);
    assert!(stuck.dependencies().time_relative && stuck.dependencies().funnels.contains("checkout"));
    assert!(!parse(r#"funnel("checkout").step > 1"#).unwrap().dependencies().time_relative);
}

/// A document version's event, as a host puts it on the record's event (flattened).
fn document(kind: &str, number: &str, status: &str, due: Option<i64>) -> Value {
    json!({ "$document.kind": kind, "$document.number": number, "$document.status": status, "$document.due": due })
}

#[test]
fn documents_count_by_their_latest_version_and_fall_overdue_with_time() {
    let customer = profile(json!({}))
        // INV-1: issued, due yesterday, never paid: overdue now.
        .event("Invoice Issued", 20 * DAY, document("invoice", "INV-1", "invoiced", Some(NOW - DAY)))
        // INV-2: issued, then paid: its latest version decides.
        .event("Invoice Issued", 10 * DAY, document("invoice", "INV-2", "invoiced", Some(NOW - DAY)))
        .event("Invoice Paid", 5 * DAY, document("invoice", "INV-2", "paid", Some(NOW - DAY)))
        // INV-3: due tomorrow: unpaid, not overdue.
        .event("Invoice Issued", DAY, document("invoice", "INV-3", "invoiced", Some(NOW + DAY)))
        // Another system's invoice with the same number is another document.
        .event("Invoice Issued", 2 * DAY, {
            let mut other = document("invoice", "INV-1", "invoiced", Some(NOW - DAY));
            other["$document.source"] = json!("billing");
            other
        })
        // An order is no invoice; an event without a document counts for nothing.
        .event("Order Completed", DAY, document("order", "ORD-1", "ordered", None))
        .event("Order Completed", DAY, json!({ "total": 5 }));
    assert!(matches("overdue invoices > 0", &customer));
    assert_eq!(value("overdue invoices", &customer), json!(2.0));
    assert_eq!(value("unpaid invoices", &customer), json!(3.0));
    assert_eq!(value("invoiced invoices", &customer), json!(1.0), "invoiced and not yet due");
    assert_eq!(value("paid invoices", &customer), json!(1.0));
    assert_eq!(value("ordered orders", &customer), json!(1.0));
    assert!(!matches("overdue invoices > 0", &profile(json!({}))), "no documents: 0, not null");
    assert!(matches("overdue invoices == 0 and unpaid invoices == 0", &profile(json!({}))));
    // Canonical text, what it reads, and words that are not a count.
    let parsed = parse("overdue invoices > 0 and paid orders >= 2").unwrap();
    assert_eq!(parsed.to_string(), "overdue invoices > 0 and paid orders >= 2");
    let dependencies = parsed.dependencies();
    assert!(dependencies.any_event && dependencies.time_relative);
    assert!(dependencies.properties.contains("$document.status"), "a role's rules on the properties apply");
    assert!(parse_error("overdue invoice > 0").to_string().contains("unknown name `overdue`"));
    assert!(parse_error("late invoices > 0").to_string().contains("unknown name `late`"));
    assert!(compile_error(r#"overdue invoices == "many""#).to_string().contains("Number"));
}

#[test]
fn health_scores_and_bands_are_the_hosts() {
    let low = TestProfile { healths: vec![("customer", 25.0)], ..TestProfile::default() };
    assert!(matches(r#"health("customer").band == "red" and health("customer").score < 30"#, &low));
    assert!(!matches(r#"health("customer").score >= 30"#, &low));
    assert!(!matches(r#"health("customer").band == "red""#, &profile(json!({}))), "not scored: null");
    let error = compile_error(r#"health("account").score > 1"#);
    assert!(error.render(r#"health("account").score > 1"#).contains("unknown health definition `account`"));
    assert!(compile_error(r#"health("customer").band > 3"#).to_string().contains("String"));
    let parsed = parse(r#"health("customer").band"#).unwrap();
    assert_eq!(parsed.to_string(), r#"health("customer").band"#);
    assert!(parsed.dependencies().healths.contains("customer"));
}

#[test]
fn lists_are_the_newest_add_or_remove() {
    let source = r#"in_list("callback")"#;
    let added = profile(json!({})).event("Added To List", 3 * DAY, json!({"list": "callback"}));
    assert!(matches(source, &added));
    let removed = profile(json!({})).event("Added To List", 3 * DAY, json!({"list": "callback"})).event(
        "Removed From List",
        2 * DAY,
        json!({"list": "callback"}),
    );
    assert!(!matches(source, &removed));
    let added_again = removed.event("Added To List", DAY, json!({"list": "callback"}));
    assert!(matches(source, &added_again));
    // Another list's events say nothing about this one.
    let other = profile(json!({})).event("Added To List", 3 * DAY, json!({"list": "callback"})).event(
        "Removed From List",
        DAY,
        json!({"list": "newsletter"}),
    );
    assert!(matches(source, &other));
    assert!(!matches(r#"in_list("newsletter")"#, &other));
    assert!(!matches(source, &profile(json!({}))));
    // Written out in the language, it reads those two events only and prints back to itself.
    let expr = parse(source).unwrap();
    let printed = expr.to_string();
    assert!(printed.contains("Added To List") && printed.contains("Removed From List"), "{printed}");
    assert_eq!(parse(&printed).unwrap().to_string(), printed);
    assert!(parse_error(r#"in_list(callback)"#).to_string().contains("list name"));
}

// ---- the rest of the language ----

#[test]
fn boolean_logic_and_parentheses() {
    let customer = profile(json!({"country": "AU", "plan": "free", "vip": true}));
    assert!(matches(r#"traits.country == "NZ" or traits.plan == "free""#, &customer));
    assert!(!matches(r#"traits.country == "NZ" or traits.plan == "pro" and traits.country == "AU""#, &customer));
    assert!(matches(r#"(traits.country == "NZ" or traits.plan == "free") and traits.country == "AU""#, &customer));
    assert!(matches("not traits.country == \"NZ\"", &customer));
    assert!(matches("traits.vip", &customer));
    assert!(matches("not traits.missing", &customer), "null is not true");
    assert!(matches("traits.vip == true and true", &customer));
}

#[test]
fn ordering_comparisons() {
    let customer = profile(json!({"age": 30, "score": "7.5", "name": "Grace"}));
    for (source, expected) in [
        ("traits.age < 31", true),
        ("traits.age <= 30", true),
        ("traits.age > 30", false),
        ("traits.age >= 30", true),
        ("traits.age != 30", false),
        ("traits.score > 7", true),
        ("traits.score == 7.5", true),
        (r#"traits.name < "Hopper""#, true),
        (r#"traits.name > "x""#, false),
        ("traits.name > 3", false),
        ("traits.missing < 3", false),
        ("traits.missing >= 3", false),
        ("traits.missing != 3", true),
    ] {
        assert_eq!(matches(source, &customer), expected, "{source}");
    }
}

#[test]
fn event_filters_windows_and_aggregates() {
    let customer = profile(json!({"currency": "AUD"}))
        .event("Ticket Opened", 40 * DAY, json!({"status": "open"}))
        .event("Ticket Opened", 20 * DAY, json!({"status": "open"}))
        .event("Ticket Opened", 10 * DAY, json!({"status": "closed"}))
        .event("Order Completed", 30 * DAY, json!({"revenue": 10, "currency": "AUD", "coupon": "WELCOME"}))
        .event("Order Completed", 3 * DAY, json!({"revenue": 40, "currency": "USD"}))
        .event("Page Viewed", HOUR, json!({}));
    let cases = [
        (r#"count("Ticket Opened")"#, json!(3.0)),
        (r#"count("Ticket Opened", status == "open")"#, json!(2.0)),
        (r#"count("Ticket Opened", status == "open", last 30 days)"#, json!(1.0)),
        (r#"count("Ticket Opened", last 30 days, status == "open")"#, json!(1.0)),
        (r#"count("Order Completed", currency == traits.currency)"#, json!(1.0)),
        (r#"count("Order Completed", exists(properties.coupon))"#, json!(1.0)),
        (r#"count("Order Completed", revenue > 20 or currency == "AUD")"#, json!(2.0)),
        (r#"avg("Order Completed", revenue)"#, json!(25.0)),
        (r#"min("Order Completed", revenue)"#, json!(10.0)),
        (r#"max("Order Completed", revenue, last 7 days)"#, json!(40.0)),
        (r#"max("Order Completed", revenue, last 1 day)"#, Value::Null),
        (r#"avg("Refund", amount)"#, Value::Null),
        (r#"sum("Order Completed", revenue, currency == "USD")"#, json!(40.0)),
        (r#"first("Ticket Opened")"#, json!(format_timestamp(NOW - 40 * DAY))),
        (r#"first("Ticket Opened", last 30 days)"#, json!(format_timestamp(NOW - 20 * DAY))),
        (r#"last("Ticket Opened", status == "open")"#, json!(format_timestamp(NOW - 20 * DAY))),
        (r#"last("Refund")"#, Value::Null),
        ("last(*)", json!(format_timestamp(NOW - HOUR))),
        ("first(*)", json!(format_timestamp(NOW - 40 * DAY))),
        ("count(*)", json!(6.0)),
        ("count(*, last 2 days)", json!(1.0)),
        (r#"any("Page Viewed", last 12 hours)"#, json!(true)),
        (r#"any("Page Viewed", last 30 minutes)"#, json!(false)),
        (r#"count("Order Completed", last 2 weeks)"#, json!(1.0)),
        (r#"count("Order Completed", last 4.5 weeks)"#, json!(2.0)),
    ];
    for (source, expected) in cases {
        assert_eq!(value(source, &customer), expected, "{source}");
    }
}

#[test]
fn dates_durations_and_now() {
    let customer =
        profile(json!({"signed_up": "2025-12-01", "renews_at": "2026-02-10T09:30:00Z"})).event("Order Completed", 10 * DAY, json!({}));
    assert!(matches("traits.signed_up < @2026-01-01", &customer));
    assert!(matches("traits.signed_up == @2025-12-01", &customer));
    assert!(matches("traits.renews_at > @2026-02-10T09:00:00Z", &customer));
    assert!(matches("traits.renews_at > @2026-02-10T10:00:00+01:00", &customer));
    assert!(matches(r#"last("Order Completed") > @2026-01-20 and last("Order Completed") < now()"#, &customer));
    assert!(matches(r#"last("Order Completed") > now() - 2 weeks"#, &customer));
    assert!(matches("traits.signed_up + 30 days < now()", &customer));
    assert!(matches("now() - traits.signed_up > 8 weeks", &customer));
    assert!(matches("90 days == 2160 hours and 2 weeks > 13 days and 30 minutes * 2 == 1 hour", &customer));
    assert_eq!(value("now()", &customer), json!("2026-01-31T12:00:00Z"));
    assert_eq!(value("@2026-01-31 + 36 hours", &customer), json!("2026-02-01T12:00:00Z"));
    assert_eq!(value("1 day", &customer), json!(DAY));
}

#[test]
fn arithmetic() {
    let customer = profile(json!({"spent": "120.5", "visits": 4})).computed(json!({"lifetime_value": 1000}));
    assert_eq!(value("traits.spent / traits.visits", &customer), json!(30.125));
    assert_eq!(value("computed.lifetime_value * 2 - -1", &customer), json!(2001.0));
    assert_eq!(value("(1 + 2) * 3", &customer), json!(9.0));
    assert_eq!(value("1 / 0", &customer), Value::Null);
    assert_eq!(value("traits.missing + 1", &customer), Value::Null);
}

#[test]
fn window_edges_are_exclusive_at_the_start_and_inclusive_at_now() {
    let count = |age_ms: i64| {
        value(r#"count("Order Completed", last 90 days)"#, &profile(json!({})).event("Order Completed", age_ms, json!({}))).as_f64()
    };
    assert_eq!(count(90 * DAY), Some(0.0), "exactly now - 90 days is outside");
    assert_eq!(count(90 * DAY - 1), Some(1.0), "now - 90 days + 1 ms is inside");
    assert_eq!(count(0), Some(1.0), "now itself is inside");
    assert_eq!(count(-1), Some(0.0), "the future is outside");
    let first =
        |age_ms: i64| value(r#"first("Order Completed", last 90 days)"#, &profile(json!({})).event("Order Completed", age_ms, json!({})));
    assert_eq!(first(90 * DAY), Value::Null);
    assert_eq!(first(90 * DAY - 1), json!(format_timestamp(NOW - 90 * DAY + 1)));
    assert_eq!(first(-1), Value::Null);
}

#[test]
fn definitions_name_a_computed_trait() {
    let source = r#"lifetime_value = sum("Order Completed", revenue)"#;
    let (name, expr) = parse_definition(source).unwrap();
    assert_eq!(name, "lifetime_value");
    assert_eq!(expr.to_string(), r#"sum("Order Completed", revenue)"#);
    assert_eq!(check(&expr, &schema()), Ok(Type::Number));
    assert_eq!(&source[expr.span.start..expr.span.end], r#"sum("Order Completed", revenue)"#);
    let missing_equals = parse_definition("ltv sum(\"X\", revenue)").unwrap_err();
    assert_eq!((missing_equals.column, missing_equals.expected.clone()), (5, vec!["`=`".to_string()]));
    assert!(parse_definition("and = 1").is_err());
}

#[test]
fn computed_traits_report_their_type() {
    for (source, expected) in [
        (r#"sum("Order Completed", revenue)"#, Type::Number),
        (r#"last("Order Completed")"#, Type::Date),
        (r#"any("Order Completed")"#, Type::Bool),
        ("computed.favourite_colour", Type::String),
        ("now() - last(*)", Type::Duration),
        ("traits.anything", Type::Any),
    ] {
        assert_eq!(compile_computed(source, &schema()).unwrap().result_type(), expected, "{source}");
    }
}

// ---- errors ----

/// The position an error reports and its rendering's caret line.
fn position_and_caret(source: &str) -> ((usize, usize), String) {
    let error = compile_error(source);
    let rendered = error.render(source);
    let caret_line = rendered.lines().find(|line| line.contains('^')).unwrap_or_default().to_string();
    (error.line_column(source), caret_line)
}

#[test]
fn unclosed_string_points_at_its_quote() {
    let source = r#"traits.country == "AU"#;
    let error = parse_error(source);
    assert_eq!((error.line, error.column), (1, 19));
    assert_eq!(
        error.render(source),
        "error: unclosed string: this `\"` has no closing `\"`\n --> line 1, column 19\n  |\n1 | traits.country == \"AU\n  |                   ^\n  = expected `\"`"
    );
}

#[test]
fn unknown_function_points_at_its_name() {
    let source = "traits.a == 1 and\n  frequency(\"Order Completed\") > 2";
    let error = parse_error(source);
    assert_eq!((error.line, error.column, error.message.as_str()), (2, 3, "unknown function `frequency`"));
    assert!(error.expected.contains(&"`count`".to_string()) && error.expected.contains(&"`days_since`".to_string()));
    let rendered = error.render(source);
    assert!(
        rendered.contains("2 |   frequency(\"Order Completed\") > 2\n  |   ^^^^^^^^^\n  = expected one of `count`, `any`"),
        "{rendered}"
    );
}

#[test]
fn comparing_unknown_traits_is_left_to_run_time() {
    assert!(compile_segment(r#"traits.age_text > "x""#, &schema()).is_ok());
    assert!(compile_segment(r#"traits.nickname == 3"#, &schema()).is_ok());
}

#[test]
fn type_errors_point_at_the_offending_operand() {
    let source = r#"count("X") > "two""#;
    let Error::Type(type_error) = compile_error(source) else { panic!("expected a type error") };
    assert_eq!(type_error.message, "cannot compare Number with String");
    assert_eq!(position_and_caret(source), ((1, 14), "  |              ^^^^^".to_string()));
    assert_eq!(position_and_caret(r#"traits.age > "x""#), ((1, 14), "  |              ^^^".to_string()));
    assert_eq!(position_and_caret("traits.a == 1 and count(\"X\", 2)").0, (1, 30));
    assert_eq!(position_and_caret("now() + 3").0, (1, 9));
    assert_eq!(position_and_caret("days_since(traits.age) > 1").0, (1, 12));
    assert_eq!(position_and_caret(r#"traits.email ends_with 3"#).0, (1, 24));
    assert_eq!(compile_error("count(\"X\")").to_string(), "a segment must be a condition (Bool), but this is a Number");
}

#[test]
fn unknown_segments_and_computed_traits_are_errors() {
    let source = r#"traits.a == 1 and in_segment("enaged")"#;
    assert_eq!(compile_error(source).to_string(), "unknown segment `enaged`");
    assert_eq!(position_and_caret(source), ((1, 30), format!("  | {}{}", " ".repeat(29), "^".repeat(8))));
    let source = "computed.ltv > 3";
    assert_eq!(compile_error(source).to_string(), "unknown computed trait `ltv`");
    assert_eq!(position_and_caret(source).0, (1, 1));
}

#[test]
fn missing_operands_point_where_one_was_expected() {
    let source = "traits.country ==";
    let error = parse_error(source);
    assert_eq!((error.line, error.column, error.message.as_str()), (1, 18, "unexpected end of input"));
    assert_eq!(error.expected, vec!["an expression".to_string()]);
    assert!(error.render(source).ends_with("1 | traits.country ==\n  |                  ^\n  = expected an expression"));

    let source = "traits.a == 1 and and traits.b";
    let error = parse_error(source);
    assert_eq!((error.column, error.message.as_str()), (19, "unexpected `and`"));

    let source = r#"traits.country "AU""#;
    let error = parse_error(source);
    assert_eq!(error.column, 16);
    for expected in ["`==`", "`in`", "`and`", "`or`", "end of input"] {
        assert!(error.expected.contains(&expected.to_string()), "{expected} in {:?}", error.expected);
    }
}

#[test]
fn other_parse_errors_explain_themselves() {
    for (source, column, message) in [
        ("traits.a = 1", 10, "unexpected `=`: compare with `==`"),
        ("traits.a == 1 && traits.b", 15, "unexpected `&&`: write `and`"),
        ("status == 1", 1, "unknown name `status`: write traits.status for a trait or computed.status for a computed trait"),
        ("1 < traits.a < 3", 14, "comparisons cannot be chained: join them with `and`"),
        (r#"count("X", last 3 months)"#, 19, "unknown time unit `months` (months and years have no fixed length)"),
        (r#"count("X", last 3 days, last 4 days)"#, 25, "only one time window is allowed"),
        (r#"sum("X", last 30 days)"#, 10, "`sum` needs the property to aggregate before the time window, as in sum(\"Order Completed\", revenue, last 30 days)"),
        (r#"count("X", count("Y") > 1)"#, 12, "`count` cannot be used inside an event filter"),
        ("traits.signup > @2026-02-30", 17, "invalid date `@2026-02-30`"),
        ("properties.status == 1", 1, "event properties can only be used inside an event function's filter, as in count(\"Order Completed\", properties.status == \"paid\")"),
    ] {
        let error = parse_error(source);
        assert_eq!((error.column, error.message.as_str()), (column, message), "{source}");
    }
}

#[test]
fn nesting_and_length_are_bounded() {
    let deep = format!("{}traits.a{}", "(".repeat(MAX_NESTING + 1), ")".repeat(MAX_NESTING + 1));
    let error = parse_error(&deep);
    assert_eq!(error.message, "this expression nests too deeply: the limit is 64 levels");
    let shallow = format!("{}traits.a{}", "(".repeat(MAX_NESTING), ")".repeat(MAX_NESTING));
    assert!(compile_segment(&shallow, &schema()).is_ok());
    for deep in ["not ".repeat(1_000) + "true", "-".repeat(10_000) + "1", "1 + ".repeat(1_000) + "1", "[".repeat(5_000)] {
        assert!(compile_error(&deep).to_string().contains("nests too deeply"), "{}", &deep[..20]);
    }
    let long_or = vec!["traits.a == 1"; 500].join(" or ");
    assert!(compile_segment(&long_or, &schema()).is_ok(), "and/or chains are flat");

    let too_long = format!("traits.a == \"{}\"", "x".repeat(MAX_SOURCE_BYTES));
    let error = parse_error(&too_long);
    assert!(error.message.contains(&format!("{} bytes long; the limit is 16384 bytes (16 KiB)", too_long.len())), "{}", error.message);
}

// ---- dependencies and cycles ----

fn dependencies(source: &str) -> Dependencies {
    parse(source).unwrap().dependencies()
}

#[test]
fn dependencies_list_what_an_expression_reads() {
    let read = dependencies(r#"traits.country == "AU" and count("Order Completed", last 90 days) >= 2 and exists(traits.email)"#);
    assert_eq!(read.traits.into_iter().collect::<Vec<_>>(), ["country", "email"]);
    assert_eq!(read.events.into_iter().collect::<Vec<_>>(), ["Order Completed"]);
    assert!(read.time_relative && !read.any_event && read.computed.is_empty() && read.segments.is_empty());
    let read = dependencies(r#"computed.lifetime_value > 1000 and in_segment("engaged") or count(*) > 3"#);
    assert_eq!(read.computed.into_iter().collect::<Vec<_>>(), ["lifetime_value"]);
    assert_eq!(read.segments.into_iter().collect::<Vec<_>>(), ["engaged"]);
    assert!(read.any_event && !read.time_relative);
    assert!(dependencies("now() > traits.renews_at").time_relative);
    assert!(dependencies(r#"days_since(last("X")) > 60"#).time_relative);
    assert!(!dependencies(r#"last("X") > @2026-01-01"#).time_relative);
}

#[test]
fn cycles_are_found_with_their_path() {
    let segment = |name: &str| Reference::Segment(name.to_string());
    let computed = |name: &str| Reference::Computed(name.to_string());
    let mut definitions = BTreeMap::from([
        (segment("engaged"), dependencies(r#"count(*, last 30 days) > 3"#)),
        (segment("big spenders"), dependencies(r#"computed.lifetime_value > 1000 and in_segment("engaged")"#)),
        (computed("lifetime_value"), dependencies(r#"sum("Order Completed", revenue)"#)),
        // Same name as the segment, different namespace: no cycle through it.
        (computed("engaged"), dependencies(r#"in_segment("engaged")"#)),
    ]);
    assert_eq!(find_cycle(&definitions), None);

    definitions
        .insert(computed("lifetime_value"), dependencies(r#"sum("Order Completed", revenue) + count(*, in_segment("big spenders"))"#));
    let cycle = find_cycle(&definitions).unwrap();
    assert_eq!(cycle, vec![segment("big spenders"), computed("lifetime_value"), segment("big spenders")]);
    let path: Vec<String> = cycle.iter().map(ToString::to_string).collect();
    assert_eq!(path.join(" -> "), r#"in_segment("big spenders") -> computed.lifetime_value -> in_segment("big spenders")"#);

    let itself = BTreeMap::from([(segment("loop"), dependencies(r#"in_segment("loop") or traits.a == 1"#))]);
    assert_eq!(find_cycle(&itself), Some(vec![segment("loop"), segment("loop")]));

    let long_chain: BTreeMap<Reference, Dependencies> =
        (0..10_000).map(|index| (segment(&format!("s{index:05}")), dependencies(&format!(r#"in_segment("s{:05}")"#, index + 1)))).collect();
    assert_eq!(find_cycle(&long_chain), None, "a long chain is walked without recursion");
}

// ---- conversions ----

#[test]
fn json_round_trips_for_computed_values() {
    let customer = profile(json!({})).event("Order Completed", 3 * DAY, json!({"revenue": 5}));
    let stored = value(r#"last("Order Completed")"#, &customer);
    let reader = profile(json!({})).computed(json!({"last_order": stored}));
    let schema = schema().with_computed("last_order", Type::Date);
    let program = compile_segment("computed.last_order > now() - 4 days and days_since(computed.last_order) == 3", &schema).unwrap();
    assert!(program.matches(&reader, &EvalContext::at(NOW)));
    assert_eq!(Scalar::from_json(&json!([1, 2])), Scalar::Null);
}

// ---- fuzzing ----

/// Tokens of the language, valid and not, for building random sources.
const TOKENS: &[&str] = &[
    "traits.country",
    "traits.age",
    "traits.\"a b\"",
    "computed.lifetime_value",
    "computed.unknown",
    "properties.status",
    "status",
    "revenue",
    "count",
    "sum",
    "avg",
    "min",
    "max",
    "any",
    "first",
    "last",
    "exists",
    "days_since",
    "in_segment",
    "now",
    "frequency",
    "(",
    ")",
    "[",
    "]",
    ",",
    ".",
    "*",
    "+",
    "-",
    "/",
    "==",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "=",
    "!",
    "and",
    "or",
    "not",
    "in",
    "starts_with",
    "ends_with",
    "contains",
    "true",
    "false",
    "null",
    "0",
    "2",
    "12.5",
    "90",
    "days",
    "hours",
    "weeks",
    "minutes",
    "months",
    "\"Order Completed\"",
    "\"engaged\"",
    "\"AU\"",
    "\"unclosed",
    "@2026-01-31",
    "@2026-02-30",
    "@2026-01-31T10:00:00Z",
    "\n",
    "// comment\n",
    "é",
    "\"\\q\"",
];

fn assert_position_within(source: &str, line: usize, column: usize) {
    let lines: Vec<&str> = source.split('\n').collect();
    assert!(line >= 1 && line <= lines.len(), "line {line} outside {} lines of {source:?}", lines.len());
    let length = lines[line - 1].chars().count();
    assert!(column >= 1 && column <= length + 1, "column {column} outside line {line} of {source:?}");
}

/// Whatever the source: no panic, errors inside the input, and a parsed expression prints as text that
/// parses back to the same tree, checks and evaluates without panicking.
fn exercise(source: &str) {
    match parse(source) {
        Err(error) => {
            assert_position_within(source, error.line, error.column);
            assert!(!error.render(source).is_empty());
        }
        Ok(expr) => {
            let printed = expr.to_string();
            let reparsed = parse(&printed).unwrap_or_else(|error| panic!("{source:?} printed as {printed:?}: {}", error.render(&printed)));
            assert_eq!(reparsed.to_string(), printed, "{source:?}");
            match check(&expr, &schema()) {
                Err(error) => {
                    let (line, column) = error.line_column(source);
                    assert_position_within(source, line, column);
                }
                Ok(_) => {
                    let program = compile_computed(source, &schema()).unwrap();
                    let customer = profile(json!({"country": "AU", "age": "41", "a b": 3}))
                        .computed(json!({"lifetime_value": 12}))
                        .in_segments(&["engaged"])
                        .event("Order Completed", 5 * DAY, json!({"revenue": "12.5", "status": "open"}))
                        .event("Ticket Opened", DAY, json!({"status": "open"}));
                    program.evaluate(&customer, &EvalContext::at(NOW));
                    program.evaluate(&customer, &EvalContext::at(i64::MIN));
                    program.evaluate(&customer, &EvalContext::at(i64::MAX));
                }
            }
        }
    }
}

/// Sources built from the grammar, so that most parse and many check: exercises printing, checking and
/// evaluation as well as the parser.
fn grammatical_source() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        prop::sample::select(vec![
            "traits.country",
            "traits.age",
            "traits.\"a b\"",
            "\"AU\"",
            "true",
            "null",
            "@2026-01-31",
            "now()",
            "90 days",
            "status",
            "count(\"Order Completed\", last 30 days)",
            "sum(\"Order Completed\", revenue)",
            "last(*)",
            "computed.lifetime_value",
            "in_segment(\"engaged\")",
            "funnel(\"checkout\").step",
            "funnel(\"checkout\").stuck",
            "health(\"customer\").score",
            "health(\"customer\").band",
        ])
        .prop_map(str::to_string),
        "[0-9]{1,3}(\\.[0-9])?",
    ];
    leaf.prop_recursive(6, 48, 3, |inner| {
        let operators = ["and", "or", "==", "!=", "<", ">=", "+", "-", "*", "/", "contains", "starts_with"];
        prop_oneof![
            (inner.clone(), prop::sample::select(operators.to_vec()), inner.clone())
                .prop_map(|(left, op, right)| format!("{left} {op} {right}")),
            inner.clone().prop_map(|operand| format!("not {operand}")),
            inner.clone().prop_map(|operand| format!("({operand})")),
            inner.clone().prop_map(|operand| format!("-{operand}")),
            inner.clone().prop_map(|operand| format!("exists({operand})")),
            inner.clone().prop_map(|operand| format!("days_since({operand})")),
            prop::collection::vec(inner.clone(), 0..3).prop_map(|items| format!("traits.plan not in [{}]", items.join(", "))),
            inner.clone().prop_map(|filter| format!("count(\"Ticket Opened\", {filter}, last 2 weeks)")),
            inner.prop_map(|filter| format!("avg(*, properties.revenue, {filter})")),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_text_never_panics(source in "(?s).{0,80}") {
        exercise(&source);
    }

    #[test]
    fn random_token_sequences_never_panic(tokens in prop::collection::vec(prop::sample::select(TOKENS), 0..24), spaced in any::<bool>()) {
        exercise(&tokens.join(if spaced { " " } else { "" }));
    }

    #[test]
    fn grammatical_sources_round_trip_and_evaluate(source in grammatical_source()) {
        exercise(&source);
    }
}

#[test]
fn an_expression_about_one_event_reads_its_properties_and_the_profiles_events() {
    let customer = profile(json!({"age": 40})).event("Order Completed", DAY, json!({})).event("Order Completed", 2 * DAY, json!({}));
    let source = r#"subject contains "damaged" and count("Order Completed", status == "paid") == 0 and count("Order Completed") == 2 and traits.age > 30"#;
    let program = kinship_expr::Program::compile_segment(&kinship_expr::parse_about_event(source).unwrap(), &schema()).unwrap();
    let ticket = TestEvent { name: "Ticket Opened", timestamp_ms: NOW, properties: json!({"subject": "tent arrived damaged"}) };
    assert!(program.evaluate_on(&customer, &ticket, &EvalContext::at(NOW)).is_true());
    let question = TestEvent { name: "Ticket Opened", timestamp_ms: NOW, properties: json!({"subject": "a question"}) };
    assert!(!program.evaluate_on(&customer, &question, &EvalContext::at(NOW)).is_true());
    assert_eq!(program.dependencies().properties.iter().collect::<Vec<_>>(), ["status", "subject"]);
    // Outside this mode a bare word is still an error.
    assert!(parse("subject == \"x\"").is_err());
}
