use kinship_segments::{Audience, DefinitionError, DefinitionSource, Kind, Transition};
use serde_json::{json, Map, Value};

const DAY: i64 = 86_400_000;
const NOW: i64 = 1_800_000_000_000;

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

fn segment(name: &str, expression: &str) -> DefinitionSource {
    DefinitionSource { kind: Kind::Segment, name: name.into(), expression: expression.into() }
}

fn computed(name: &str, expression: &str) -> DefinitionSource {
    DefinitionSource { kind: Kind::Computed, name: name.into(), expression: expression.into() }
}

/// Profile i has i orders of 100 each, spread over the last i*10 days; even profiles are in AU;
/// profile 3 has an open ticket.
fn audience(n: usize) -> Audience {
    let mut a = Audience::new();
    for i in 0..n {
        let traits = obj(json!({ "country": if i % 2 == 0 { "AU" } else { "NZ" }, "email": format!("p{i}@example.com") }));
        let mut events = Vec::new();
        for k in 0..i {
            events.push(("Order Completed".to_string(), NOW - (k as i64 * 10 + 1) * DAY, obj(json!({ "revenue": 100 }))));
        }
        if i == 3 {
            events.push(("Ticket Opened".to_string(), NOW - DAY, obj(json!({ "status": "open" }))));
        }
        let change = a.upsert_profile(&format!("p{i}"), &traits, events.iter().map(|(n, t, p)| (n.as_str(), *t, p)));
        assert!(change.new);
    }
    a
}

fn members(a: &Audience, s: &str) -> Vec<String> {
    a.members(s).unwrap().into_iter().map(String::from).collect()
}

#[test]
fn segments_and_computed_traits_select_the_profiles_built_to_match() {
    let mut a = audience(8);
    a.define(computed("lifetime_value", r#"sum("Order Completed", revenue)"#), NOW).unwrap();
    a.define(segment("big", "computed.lifetime_value >= 500"), NOW).unwrap();
    assert_eq!(members(&a, "big"), ["p5", "p6", "p7"]);
    // Orders at 1, 11, 21, ... days ago: within 30 days means k = 0, 1, 2.
    let t = a.define(segment("recent_aus", r#"traits.country == "AU" and count("Order Completed", last 30 days) >= 3"#), NOW).unwrap();
    assert_eq!(members(&a, "recent_aus"), ["p4", "p6"]);
    assert!(t.iter().all(|t| t.entered && t.segment == "recent_aus"));
    a.define(segment("calm", r#"not any("Ticket Opened", status == "open")"#), NOW).unwrap();
    assert_eq!(a.size("calm"), Some(7));
    a.define(segment("big_calm", r#"in_segment("big") and in_segment("calm")"#), NOW).unwrap();
    assert_eq!(members(&a, "big_calm"), ["p5", "p6", "p7"]);
    let (segments, computed) = a.profile_values("p6").unwrap();
    assert_eq!(segments, ["big", "big_calm", "calm", "recent_aus"]);
    assert_eq!(computed["lifetime_value"], json!(600.0));
}

#[test]
fn one_event_moves_one_profile_and_matches_a_full_recomputation() {
    let mut a = audience(6);
    a.define(segment("repeat", r#"count("Order Completed", last 30 days) >= 3"#), NOW).unwrap();
    a.define(segment("au", r#"traits.country == "AU""#), NOW).unwrap();
    assert_eq!(members(&a, "repeat"), ["p3", "p4", "p5"]);
    // p2 places a third order today.
    let traits = obj(json!({ "country": "AU", "email": "p2@example.com" }));
    let orders: Vec<(String, i64, Map<String, Value>)> =
        [1, 11, 0].iter().map(|d| ("Order Completed".to_string(), NOW - d * DAY, obj(json!({ "revenue": 100 })))).collect();
    let change = a.upsert_profile("p2", &traits, orders.iter().map(|(n, t, p)| (n.as_str(), *t, p)));
    assert!(change.events.contains("Order Completed") && change.traits.is_empty());
    let t = a.evaluate_profile("p2", &change, NOW);
    assert_eq!(t, [Transition { segment: "repeat".into(), profile: "p2".into(), entered: true }]);
    assert_eq!(a.size("repeat"), Some(4));
    // The incremental answer is what a full recomputation gives.
    assert!(a.evaluate_all(NOW).is_empty());
    assert_eq!(members(&a, "repeat"), ["p2", "p3", "p4", "p5"]);
}

#[test]
fn time_windows_move_members_as_time_passes_at_the_exact_edge() {
    let mut a = Audience::new();
    let traits = Map::new();
    let order = obj(json!({}));
    a.upsert_profile("edge", &traits, [("Order Completed", NOW - 90 * DAY + 1, &order)]);
    a.define(segment("ordered", r#"count("Order Completed", last 90 days) >= 1"#), NOW).unwrap();
    assert_eq!(a.size("ordered"), Some(1));
    assert!(a.refresh_time_relative(NOW).is_empty());
    // One millisecond later the order is exactly 90 days old: outside the window.
    let t = a.refresh_time_relative(NOW + 1);
    assert_eq!(t, [Transition { segment: "ordered".into(), profile: "edge".into(), entered: false }]);
}

#[test]
fn cycles_unknown_names_and_bad_expressions_are_refused_at_creation() {
    let mut a = audience(3);
    a.define(segment("a", "traits.country == \"AU\""), NOW).unwrap();
    let e = a.define(segment("b", r#"in_segment("nope")"#), NOW).unwrap_err();
    assert!(e.to_string().contains("nope"), "{e}");
    let e = a.define(segment("self", r#"in_segment("self")"#), NOW).unwrap_err();
    assert!(matches!(e, DefinitionError::Cycle(_)), "{e}");
    let e = a.define(segment("c", r#"count("X") > "two""#), NOW).unwrap_err();
    let DefinitionError::Expression { column, rendered, .. } = e else { panic!("expected an expression error") };
    assert_eq!(column, 14);
    assert!(rendered.contains('^'));
    assert!(matches!(a.define(segment("a", "true"), NOW), Err(DefinitionError::Exists(..))));
    a.define(segment("d", r#"in_segment("a")"#), NOW).unwrap();
    assert!(matches!(a.undefine(Kind::Segment, "a"), Err(DefinitionError::InUse { .. })));
    a.undefine(Kind::Segment, "d").unwrap();
    let left = a.undefine(Kind::Segment, "a").unwrap();
    assert_eq!(left.len(), 2);
    assert!(a.size("a").is_none());
}

#[test]
fn stored_definitions_load_in_dependency_order() {
    let mut a = audience(8);
    let t = a
        .define_all(
            vec![
                segment("vip", "computed.lifetime_value > 250 and in_segment(\"au\")"),
                computed("lifetime_value", r#"sum("Order Completed", revenue)"#),
                segment("au", r#"traits.country == "AU""#),
            ],
            NOW,
        )
        .unwrap();
    assert_eq!(members(&a, "vip"), ["p4", "p6"]);
    assert_eq!(t.iter().filter(|t| t.segment == "vip").count(), 2);
}

#[test]
fn preview_counts_without_defining_and_removed_profiles_leave_counts() {
    let mut a = audience(10);
    let p = a.preview(r#"traits.email ends_with "@example.com" and exists(traits.country)"#, NOW, 3).unwrap();
    assert_eq!(p.count, 10);
    assert_eq!(p.sample.len(), 3);
    assert!(a.definitions().is_empty());
    a.define(segment("au", r#"traits.country == "AU""#), NOW).unwrap();
    assert_eq!(a.remove_profile("p0"), ["au"]);
    assert_eq!(a.size("au"), Some(4));
    assert_eq!(a.profile_count(), 9);
}

const HOUR: i64 = 3_600_000;

const CHECKOUT: &str = r#"
name = "checkout"
window = "7 days"
[[steps]]
event = "Product Viewed"
[[steps]]
event = "Checkout Started"
[[steps]]
event = "Order Completed"
where = "revenue > 0"
"#;

/// f0–f4 viewed 10 days ago and started checkout i+1 hours later; f0–f2 then bought 9 days
/// ago; f5 viewed an hour ago, f6 two days ago; f7 did nothing.
fn shoppers() -> Audience {
    let mut a = Audience::new();
    let start = NOW - 10 * DAY;
    for i in 0..8i64 {
        let mut events = Vec::new();
        match i {
            0..=4 => {
                events.push(("Product Viewed", start, json!({})));
                events.push(("Checkout Started", start + (i + 1) * HOUR, json!({})));
                if i <= 2 {
                    events.push(("Order Completed", NOW - 9 * DAY, json!({ "revenue": 80 })));
                }
            }
            5 => events.push(("Product Viewed", NOW - HOUR, json!({}))),
            6 => events.push(("Product Viewed", NOW - 2 * DAY, json!({}))),
            _ => {}
        }
        let events: Vec<(&str, i64, Map<String, Value>)> = events.into_iter().map(|(n, t, p)| (n, t, obj(p))).collect();
        a.upsert_profile(&format!("f{i}"), &Map::new(), events.iter().map(|(n, t, p)| (*n, *t, p)));
    }
    a
}

#[test]
fn funnel_positions_are_segment_conditions_kept_current_in_real_time() {
    let mut a = shoppers();
    let funnel = DefinitionSource { kind: Kind::Funnel, name: "checkout".into(), expression: CHECKOUT.into() };
    assert!(a.define(funnel, NOW).unwrap().is_empty());
    a.define(segment("at_checkout", r#"funnel("checkout").step == 2"#), NOW).unwrap();
    a.define(segment("bought", r#"funnel("checkout").step >= 3"#), NOW).unwrap();
    a.define(computed("checkout_step", r#"funnel("checkout").step"#), NOW).unwrap();
    // Stuck: waiting longer than the 90th percentile of others' time to the next step, which
    // is 5 hours from a view (1 to 5 hours) and 23 hours from a checkout (21 to 23 hours).
    a.define(segment("stuck", r#"funnel("checkout").stuck"#), NOW).unwrap();
    assert_eq!(members(&a, "at_checkout"), ["f3", "f4"]);
    assert_eq!(members(&a, "bought"), ["f0", "f1", "f2"]);
    assert_eq!(members(&a, "stuck"), ["f3", "f4", "f6"]);
    assert_eq!(a.profile_values("f7").unwrap().1["checkout_step"], json!(0.0));
    assert_eq!(a.profile_values("f5").unwrap().1["checkout_step"], json!(1.0));

    // f3 buys now: it leaves the checkout step and the stuck, and enters the buyers.
    let events: Vec<(&str, i64, Map<String, Value>)> = vec![
        ("Product Viewed", NOW - 10 * DAY, Map::new()),
        ("Checkout Started", NOW - 10 * DAY + 4 * HOUR, Map::new()),
        ("Order Completed", NOW - 4 * DAY, obj(json!({ "revenue": 20 }))),
    ];
    let change = a.upsert_profile("f3", &Map::new(), events.iter().map(|(n, t, p)| (*n, *t, p)));
    let mut moved: Vec<(String, bool)> = a.evaluate_profile("f3", &change, NOW).into_iter().map(|t| (t.segment, t.entered)).collect();
    moved.sort();
    assert_eq!(moved, [("at_checkout".into(), false), ("bought".into(), true), ("stuck".into(), false)]);
    // The real-time answer is what a full recomputation gives.
    assert!(a.evaluate_all(NOW).is_empty(), "the incremental answer differs from a full pass");

    // f5 views again while its attempt is under way: it stays where it was, and is not stuck
    // until five hours after its first view.
    let views: Vec<(&str, i64, Map<String, Value>)> = vec![("Product Viewed", NOW - HOUR, Map::new()), ("Product Viewed", NOW, Map::new())];
    let change = a.upsert_profile("f5", &Map::new(), views.iter().map(|(n, t, p)| (*n, *t, p)));
    assert!(a.evaluate_profile("f5", &change, NOW).is_empty());
    let later: Vec<String> = a.refresh_time_relative(NOW + 4 * HOUR + 1).into_iter().map(|t| t.profile).collect();
    assert_eq!(later, ["f5"], "f5 has waited 5 hours and a millisecond since it reached step 1");

    // A funnel segments read cannot go; one whose definition names another funnel is refused.
    assert!(matches!(a.undefine(Kind::Funnel, "checkout"), Err(DefinitionError::InUse { .. })));
    let misnamed = DefinitionSource { kind: Kind::Funnel, name: "signup".into(), expression: CHECKOUT.into() };
    assert!(a.define(misnamed, NOW).unwrap_err().to_string().contains("named `checkout`"));
    let unknown = a.define(segment("x", r#"funnel("signup").step > 0"#), NOW).unwrap_err();
    assert!(unknown.to_string().contains("unknown funnel `signup`"), "{unknown}");
    let bad =
        DefinitionSource { kind: Kind::Funnel, name: "short".into(), expression: "name = \"short\"\n[[steps]]\nevent = \"A\"".into() };
    assert!(a.define(bad, NOW).unwrap_err().to_string().contains("2 to 64 steps"));
}

const HEALTH: &str = r#"
name = "customer"
applies = 'any("Order Completed")'
bands = { red = 40, yellow = 70 }
[[measures]]
name = "tickets"
value = 'count("Ticket Opened", last 30 days)'
points = [[0, 100], [3, 0]]
[[measures]]
name = "orders"
value = 'count("Order Completed", last 90 days)'
points = [[0, 0], [2, 100]]
"#;

#[test]
fn health_scores_are_segment_conditions_kept_current_in_real_time() {
    // Profile i of audience(8) has i orders, one every 10 days, and p3 one ticket.
    let mut a = audience(8);
    let health = DefinitionSource { kind: Kind::Health, name: "customer".into(), expression: HEALTH.into() };
    a.define(health, NOW).unwrap();
    a.define(segment("at_risk", r#"health("customer").band == "red""#), NOW).unwrap();
    a.define(computed("health_score", r#"health("customer").score"#), NOW).unwrap();
    // p1: one order in 90 days (50) and no ticket (100): 75. Nobody is red yet; p0 is not scored.
    assert!(members(&a, "at_risk").is_empty());
    assert_eq!(a.profile_values("p1").unwrap().1["health_score"], json!(75.0));
    assert_eq!(a.profile_values("p0").unwrap().1["health_score"], Value::Null);
    let scores = a.health_scores("p3", NOW).unwrap();
    assert_eq!(scores.len(), 1);
    assert_eq!(scores[0].1.measures[0].value, Some(1.0), "p3's ticket is read: {scores:?}");

    // p1 opens three tickets: (0 + 50) / 2 = 25, red, and it enters the segment at once.
    let mut events = vec![("Order Completed".to_string(), NOW - DAY, obj(json!({ "revenue": 100 })))];
    for k in 1..=3 {
        events.push(("Ticket Opened".to_string(), NOW - k * DAY, obj(json!({ "status": "open" }))));
    }
    let traits = obj(json!({ "country": "NZ", "email": "p1@example.com" }));
    let change = a.upsert_profile("p1", &traits, events.iter().map(|(n, t, p)| (n.as_str(), *t, p)));
    let t = a.evaluate_profile("p1", &change, NOW);
    assert_eq!(t, [Transition { segment: "at_risk".into(), profile: "p1".into(), entered: true }]);
    assert!(a.evaluate_all(NOW).is_empty(), "the real-time answer is a full pass's");
    // A month on the tickets age out of the window: the time refresh takes p1 out again.
    let later = a.refresh_time_relative(NOW + 31 * DAY);
    assert!(later.iter().any(|t| t.profile == "p1" && t.segment == "at_risk" && !t.entered), "{later:?}");

    assert!(matches!(a.undefine(Kind::Health, "customer"), Err(DefinitionError::InUse { .. })));
    let misnamed = DefinitionSource { kind: Kind::Health, name: "account".into(), expression: HEALTH.into() };
    assert!(a.define(misnamed, NOW).unwrap_err().to_string().contains("named `customer`"));
}
