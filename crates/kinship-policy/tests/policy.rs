//! The governance rules end to end: what each role may do and see, the audit chain, keyed
//! hashes and consent.

use kinship_policy::*;
use proptest::prelude::*;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

const EMAIL: &str = "ann.lee@example.com";
const PHONE: &str = "+61412345678";

fn key() -> PseudonymKey {
    PseudonymKey::from_bytes([42; 32])
}

fn anon(value: &str) -> String {
    pseudonym(&key(), value)
}

fn role(name: &str) -> Policy {
    Policy::builtin(name).unwrap_or_else(|| panic!("no built-in role {name}"))
}

/// A profile with something for every rule: contact details, scores, notes, a birth date,
/// raw rows that repeat the contact details under other names, and events of every kind.
fn sample() -> Value {
    json!({
        "id": "p_1",
        "traits": {
            "first_name": "Ann", "last_name": "Lee", "email": EMAIL, "phone": PHONE,
            "street": "1 Hay St", "city": "Perth", "postcode": "6000", "birth_date": "1990-02-03",
            "lead_score": 80, "nps_score": 9, "email_opt_in": true, "internal_note": "VIP"
        },
        "trait_sources": {
            "first_name": {"source": "crm", "record_key": "c1"}, "email": {"source": "crm", "record_key": "c1"},
            "lead_score": {"source": "crm", "record_key": "c1"}, "city": {"source": "shop", "record_key": "o1"}
        },
        "identifiers": [
            {"kind": "email", "value": EMAIL, "source": "crm"},
            {"kind": "phone", "value": PHONE, "source": "shop"},
            {"kind": "crm_id", "value": "C-00012345", "source": "crm"},
            {"kind": "handle", "value": "@annlee", "source": "tickets"},
            {"kind": "order_id", "value": "O-1001", "source": "shop"}
        ],
        "records": [
            {"source": "crm", "key": "c1", "timestamp": "2026-01-01T00:00:00Z",
             "payload": {"crm_id": "C-00012345", "first_name": "Ann", "email": EMAIL, "phone": PHONE, "lead_score": 80, "internal_note": "VIP"}},
            {"source": "shop", "key": "o1", "timestamp": "2026-01-02T00:00:00Z",
             "payload": {"order_id": "O-1001", "customer": {"email": "Ann.Lee@Example.com", "phone": "0412 345 678", "name": "Ann Lee"}, "total": 12.5}},
            {"source": "tickets", "key": "t1", "timestamp": "2026-01-03T00:00:00Z",
             "payload": {"from_email": EMAIL, "subject": "Where is my order? Reply to ann.lee@example.com", "status": "open", "internal_note": "angry"}},
            {"source": "email", "key": "e1", "timestamp": "2026-01-04T00:00:00Z",
             "payload": {"email": EMAIL, "type": "unsubscribed", "campaign": "spring"}}
        ],
        "events": [
            {"type": "track", "event": "Order Completed", "timestamp": "2026-01-02T00:00:00Z", "source": "shop", "record_key": "o1",
             "properties": {"order_id": "O-1001", "total": 12.5, "email": EMAIL}},
            {"type": "track", "event": "Ticket Opened", "timestamp": "2026-01-03T00:00:00Z", "source": "tickets", "record_key": "t1",
             "properties": {"subject": "Where is my order?", "internal_note": "angry", "channel": "email"}},
            {"type": "track", "event": "unsubscribed", "timestamp": "2026-01-04T00:00:00Z", "source": "email", "record_key": "e1",
             "properties": {"campaign": "spring"}},
            {"type": "track", "event": "NPS Response", "timestamp": "2026-01-05T00:00:00Z", "source": "nps", "record_key": "n1",
             "properties": {"score": 9, "comment": "great"}}
        ],
        "computed": {"lifetime_value": 120.0, "engagement_score": 0.7},
        "segments": ["engaged"],
        "consent": {"marketing": {"granted": false, "source": "event:unsubscribed"}},
        "events_total": 4
    })
}

fn names(value: &Value) -> Vec<&str> {
    value.as_array().unwrap().iter().map(|e| e["event"].as_str().unwrap()).collect()
}

fn keys(value: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = value.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    keys
}

#[test]
fn admin_sees_everything_but_unknown_sections() {
    let doc = sample();
    let seen = project(&doc, &role("admin"), &key()).value;
    let mut expected = doc.clone();
    expected.as_object_mut().unwrap().remove("events_total");
    assert_eq!(seen, expected);
}

#[test]
fn role_by_field_matrix() {
    let doc = sample();
    let all_traits = doc["traits"].as_object().unwrap().clone();
    let traits_without = |hidden: &[&str]| {
        let mut t = all_traits.clone();
        hidden.iter().for_each(|h| drop(t.remove(*h)));
        Value::Object(t)
    };
    let plain_identifiers = doc["identifiers"].clone();
    let order_event = doc["events"][0].clone();
    let ticket_event = doc["events"][1].clone();
    let all_sections = ["computed", "consent", "events", "id", "identifiers", "records", "segments", "trait_sources", "traits"];

    // support: contact details, orders and tickets; no scores, no segments.
    let support = project(&doc, &role("support"), &key()).value;
    assert_eq!(keys(&support), all_sections.iter().filter(|s| **s != "segments").copied().collect::<Vec<_>>());
    assert_eq!(support["traits"], traits_without(&["lead_score", "nps_score"]));
    assert_eq!(support["identifiers"], plain_identifiers);
    assert_eq!(support["events"], json!([order_event, ticket_event]));
    assert_eq!(support["computed"], json!({"lifetime_value": 120.0}));
    assert_eq!(keys(&support["trait_sources"]), ["city", "email", "first_name"]);
    assert_eq!(
        support["records"],
        json!([
            {"source": "crm", "key": "c1", "timestamp": "2026-01-01T00:00:00Z",
             "payload": {"crm_id": "C-00012345", "first_name": "Ann", "email": EMAIL, "phone": PHONE, "internal_note": "VIP"}},
            doc["records"][1], doc["records"][2]
        ]),
        "the email record is behind an event support does not see, and scores are hidden in payloads too"
    );

    // viewer: support without raw records.
    let viewer = project(&doc, &role("viewer"), &key()).value;
    let mut support_without_records = support.clone();
    support_without_records.as_object_mut().unwrap().remove("records");
    assert_eq!(viewer, support_without_records);

    // sales: like support, minus internal notes; segments too.
    let sales = project(&doc, &role("sales"), &key()).value;
    assert_eq!(keys(&sales), all_sections);
    assert_eq!(sales["traits"], traits_without(&["lead_score", "nps_score", "internal_note"]));
    assert_eq!(sales["identifiers"], plain_identifiers);
    assert_eq!(names(&sales["events"]), ["Order Completed", "Ticket Opened"]);
    assert_eq!(sales["events"][1]["properties"], json!({"subject": "Where is my order?", "channel": "email"}));
    assert_eq!(sales["records"][0]["payload"], json!({"crm_id": "C-00012345", "first_name": "Ann", "email": EMAIL, "phone": PHONE}));
    assert_eq!(
        sales["records"][2]["payload"],
        json!({"from_email": EMAIL, "subject": "Where is my order? Reply to ann.lee@example.com", "status": "open"})
    );
    assert_eq!(sales["computed"], json!({"lifetime_value": 120.0}));
    assert_eq!(sales["segments"], json!(["engaged"]));

    // marketer: traits, segments and engagement; contact details masked; no raw records.
    let marketer = project(&doc, &role("marketer"), &key()).value;
    assert_eq!(keys(&marketer), all_sections.iter().filter(|s| **s != "records").copied().collect::<Vec<_>>());
    let mut masked = all_traits.clone();
    masked.insert("email".into(), json!("a***@example.com"));
    masked.insert("phone".into(), json!("*******5678"));
    masked.insert("street".into(), json!("***"));
    assert_eq!(marketer["traits"], Value::Object(masked));
    assert_eq!(
        marketer["identifiers"],
        json!([
            {"kind": "email", "value": "a***@example.com", "source": "crm"},
            {"kind": "phone", "value": "*******5678", "source": "shop"},
            {"kind": "crm_id", "value": "C-00012345", "source": "crm"},
            {"kind": "handle", "value": "***", "source": "tickets"},
            {"kind": "order_id", "value": "O-1001", "source": "shop"}
        ])
    );
    assert_eq!(names(&marketer["events"]), ["Order Completed", "unsubscribed", "NPS Response"]);
    assert_eq!(marketer["events"][0]["properties"], json!({"order_id": "O-1001", "total": 12.5, "email": "a***@example.com"}));
    assert_eq!(marketer["computed"], doc["computed"]);
    assert_eq!(marketer["segments"], doc["segments"]);
    assert_eq!(marketer["consent"], doc["consent"]);

    // analyst: everything countable, nothing identifying.
    let analyst = project(&doc, &role("analyst"), &key()).value;
    assert_eq!(keys(&analyst), all_sections.iter().filter(|s| **s != "records").copied().collect::<Vec<_>>());
    assert_eq!(
        analyst["traits"],
        json!({
            "first_name": anon("Ann"), "last_name": anon("Lee"), "email": anon(EMAIL), "phone": anon(PHONE),
            "street": anon("1 Hay St"), "city": "Perth", "postcode": "6000",
            "lead_score": 80, "nps_score": 9, "email_opt_in": true
        })
    );
    let identifiers: Vec<(&str, &str)> =
        analyst["identifiers"].as_array().unwrap().iter().map(|i| (i["kind"].as_str().unwrap(), i["value"].as_str().unwrap())).collect();
    let pseudonyms = [anon(EMAIL), anon(PHONE), anon("C-00012345"), anon("@annlee"), anon("O-1001")];
    let expected: Vec<(&str, &str)> =
        ["email", "phone", "crm_id", "handle", "order_id"].into_iter().zip(pseudonyms.iter().map(String::as_str)).collect();
    assert_eq!(identifiers, expected);
    assert_eq!(names(&analyst["events"]), ["Order Completed", "Ticket Opened", "unsubscribed", "NPS Response"]);
    assert_eq!(analyst["events"][0]["properties"], json!({"order_id": anon("O-1001"), "total": 12.5, "email": anon(EMAIL)}));
    assert_eq!(analyst["events"][1]["properties"], json!({"channel": "email"}), "free text and notes are hidden");
    assert_eq!(analyst["events"][3]["properties"], json!({"score": 9}));
    assert_eq!(analyst["computed"], doc["computed"]);
    assert_eq!(analyst["segments"], doc["segments"]);
}

#[test]
fn fields_seen_name_what_was_returned() {
    let seen = project(&sample(), &role("marketer"), &key()).fields;
    assert_eq!(seen.traits["email"], Access::Mask);
    assert_eq!(seen.traits["city"], Access::Allow);
    assert_eq!(
        seen.identifiers.iter().map(|(k, a)| (k.as_str(), *a)).collect::<Vec<_>>(),
        [
            ("crm_id", Access::Allow),
            ("email", Access::Mask),
            ("handle", Access::Mask),
            ("order_id", Access::Allow),
            ("phone", Access::Mask)
        ]
    );
    assert_eq!(seen.events.iter().map(String::as_str).collect::<Vec<_>>(), ["NPS Response", "Order Completed", "unsubscribed"]);
    assert!(seen.record_sources.is_empty());
    assert_eq!(seen.computed.len(), 2);
    assert!(seen.segments && seen.consent);

    let seen = project(&sample(), &role("support"), &key()).fields;
    assert!(!seen.traits.contains_key("lead_score"));
    assert_eq!(seen.record_sources.iter().map(String::as_str).collect::<Vec<_>>(), ["crm", "shop", "tickets"]);
    assert!(!seen.segments);
    let audit_detail = serde_json::to_value(&seen).unwrap();
    assert_eq!(audit_detail["traits"]["email"], "allow");
}

#[test]
fn capability_matrix() {
    use Capability::*;
    let grants: [(Capability, [bool; 6]); 19] = [
        //                 admin  support sales  marketer analyst viewer
        (ReadProfiles, [true, true, true, true, true, true]),
        (SearchProfiles, [true, true, true, true, false, true]),
        (ExplainProfiles, [true, true, false, false, false, true]),
        (ReadSources, [true, true, true, true, true, true]),
        (ReadSegments, [true, false, true, true, true, false]),
        (ManageSegments, [true, false, false, true, false, false]),
        (ExportSegments, [true, false, false, true, true, false]),
        (SplitMerge, [true, false, false, false, false, false]),
        (ManageSources, [true, false, false, false, false, false]),
        (ReadAudit, [true, false, false, false, false, false]),
        (ManageTokens, [true, false, false, false, false, false]),
        (Erasure, [true, false, false, false, false, false]),
        (PrivacyExport, [true, false, false, false, false, false]),
        (ReadTasks, [true, true, true, false, false, true]),
        (WorkTasks, [true, true, false, false, false, false]),
        (ReadFlows, [true, true, false, false, false, true]),
        (ManageFlows, [true, false, false, false, false, false]),
        (ReadDeals, [true, false, true, false, false, false]),
        (WorkDeals, [true, false, true, false, false, false]),
    ];
    assert_eq!(grants.len(), Capability::ALL.len());
    for (capability, by_role) in grants {
        for (name, expected) in BUILTIN_ROLES.iter().zip(by_role) {
            assert_eq!(role(name).allows(capability), expected, "{name} {capability:?}");
        }
    }
    assert!(Policy::builtin("root").is_none());
}

#[test]
fn hidden_means_absent_not_null() {
    let doc = sample();
    for name in BUILTIN_ROLES {
        let text = serde_json::to_string(&project(&doc, &role(name), &key()).value).unwrap();
        assert!(!text.contains("null"), "{name}: {text}");
    }
    let nobody = Policy::empty("nobody");
    assert_eq!(
        project(&doc, &nobody, &key()).value,
        json!({"id": "p_1", "traits": {}, "trait_sources": {}, "identifiers": [], "events": []})
    );
    assert_eq!(project(&json!("not a profile"), &role("admin"), &key()).value, json!({}));
}

#[test]
fn nested_fields_inherit_and_objects_emptied_by_hiding_are_dropped() {
    let doc = json!({"traits": {
        "address": {"street": "1 Hay St", "city": "Perth"},
        "name": {"first": "Ann", "last": "Lee"},
        "scores": {"lead_score": 3},
        "tags": ["a", "b"],
        "empty": {}
    }});
    let marketer = project(&doc, &role("marketer"), &key()).value;
    assert_eq!(marketer["traits"]["address"], json!({"street": "***", "city": "***"}));
    let support = project(&doc, &role("support"), &key()).value;
    assert_eq!(keys(&support["traits"]), ["address", "empty", "name", "tags"], "`scores` lost its only field");
    let analyst = project(&doc, &role("analyst"), &key()).value;
    assert_eq!(analyst["traits"]["name"], json!({"first": anon("Ann"), "last": anon("Lee")}), "inside a direct identifier");
    assert_eq!(analyst["traits"]["tags"], json!(["a", "b"]));
}

#[test]
fn scrubbing_catches_contact_details_under_any_name() {
    let doc = json!({
        "traits": {"contact": "Ann.Lee@Example.COM ", "notes": "mail ann.lee@example.com or a@b.co@c.de, call 0412 345 678",
                   "alt": "bob@else.org", "ann.lee@example.com": "a key", "@handle": "not an email", "x\n@y.z": 1},
        "identifiers": [{"kind": "email", "value": EMAIL}, {"kind": "phone", "value": PHONE}],
        "events": [{"event": "opened", "source": "email", "record_key": EMAIL, "properties": {"to": EMAIL, "reach": "0412345678"}}]
    });
    let marketer = project(&doc, &role("marketer"), &key()).value;
    assert_eq!(
        marketer["traits"],
        json!({"contact": "a***@example.com", "notes": "mail a***@example.com or ***@b***@c.de, call *******5678",
               "alt": "b***@else.org", "a***@example.com": "a key", "@handle": "not an email", "x***@y.z": 1})
    );
    assert_eq!(marketer["events"][0]["record_key"], "a***@example.com");
    assert_eq!(marketer["events"][0]["properties"], json!({"to": "a***@example.com", "reach": "*******5678"}));

    let analyst = project(&doc, &role("analyst"), &key()).value;
    assert_eq!(analyst["traits"]["contact"], json!(anon(EMAIL)));
    assert_eq!(analyst["traits"]["alt"], json!(anon("bob@else.org")));
    assert_eq!(analyst["events"][0]["properties"]["reach"], json!(anon(PHONE)), "any format of the profile's phone");
    assert_eq!(analyst["traits"]["notes"], json!(null), "free text is hidden from analysts");
}

#[test]
fn custom_roles_from_toml() {
    let config: BTreeMap<String, RoleConfig> = toml::from_str(
        r#"
        [support_lead]
        extends = "support"
        capabilities = ["read_profiles", "read_audit"]
        traits = { rules = { lead_score = "allow", city = "mask" } }

        [support]
        events = ["Ticket *"]

        [auditor]
        capabilities = ["read_audit"]
        traits = { default = "allow", rules = { "*name" = "hide" } }
        identifiers = { default = "mask" }
        identifier_masks = { crm_id = "full" }
        events = ["*"]
        event_properties = { default = "allow" }
        records = "projected"

        [marketing_analyst]
        extends = "analyst"
        direct_identifiers = ["postcode"]
        "#,
    )
    .unwrap();
    let roles = Roles::from_config(&config).unwrap();
    assert_eq!(
        roles.names().collect::<Vec<_>>(),
        ["admin", "analyst", "auditor", "marketer", "marketing_analyst", "sales", "support", "support_lead", "viewer"]
    );
    let doc = sample();

    let lead = roles.get("support_lead").unwrap();
    assert!(lead.allows(Capability::ReadAudit) && !lead.allows(Capability::SearchProfiles));
    assert_eq!(lead.name(), "support_lead");
    let seen = project(&doc, lead, &key()).value;
    assert_eq!(seen["traits"]["lead_score"], 80, "the role's own rule beats the `*score` it inherits");
    assert!(seen["traits"].get("nps_score").is_none());
    assert_eq!(seen["traits"]["city"], "***");
    assert_eq!(names(&seen["events"]), ["Ticket Opened"], "refined support is what support_lead extends");

    let support = roles.get("support").unwrap();
    assert!(support.allows(Capability::ExplainProfiles), "a refined built-in keeps what it does not change");
    assert_eq!(support.records(), RecordAccess::Projected);

    let auditor = roles.get("auditor").unwrap();
    let seen = project(&doc, auditor, &key()).value;
    assert!(seen["traits"].get("first_name").is_none() && seen["traits"]["city"] == "Perth");
    assert_eq!(seen["identifiers"][2]["value"], "***");
    assert_eq!(seen["identifiers"][0]["value"], "a***@example.com");
    assert!(seen.get("computed").is_none() && seen.get("segments").is_none(), "a role extending nothing starts from nothing");
    assert_eq!(seen["records"][1]["payload"]["customer"], json!({"email": "a***@example.com", "phone": "*******5678"}));

    let marketing_analyst = roles.get("marketing_analyst").unwrap();
    assert!(marketing_analyst.is_pseudonymous());
    assert_eq!(project(&doc, marketing_analyst, &key()).value["traits"]["postcode"], anon("6000"));
    assert_eq!(marketing_analyst.trait_access("first_name"), Access::Pseudonym);
    assert_eq!(marketing_analyst.identifier_access("crm_id"), Access::Pseudonym);
}

#[test]
fn bad_role_configs() {
    let parse = |text: &str| toml::from_str::<BTreeMap<String, RoleConfig>>(text);
    assert!(parse("[x]\ntraits = { rules = { email = \"maybe\" } }").is_err());
    assert!(parse("[x]\ncolour = \"red\"").is_err(), "unknown settings are refused");
    assert!(parse("[x]\ncapabilities = [\"launch_missiles\"]").is_err());

    let err = Roles::from_config(&parse("[x]\nextends = \"nobody\"").unwrap()).unwrap_err();
    assert_eq!(err, PolicyError::UnknownBase { role: "x".into(), base: "nobody".into() });
    let err = Roles::from_config(&parse("[a]\nextends = \"b\"\n[b]\nextends = \"a\"").unwrap()).unwrap_err();
    assert!(matches!(err, PolicyError::Cycle { .. }), "{err}");
    let err = Roles::from_config(&parse("[x]\nextends = \"x\"").unwrap()).unwrap_err();
    assert!(matches!(err, PolicyError::Cycle { .. }), "{err}");
    let roles = Roles::from_config(&parse("[support]\nextends = \"support\"\nrecords = \"hidden\"").unwrap()).unwrap();
    assert_eq!(roles.get("support").unwrap().records(), RecordAccess::Hidden);
    assert_eq!(Roles::builtin().names().count(), BUILTIN_ROLES.len());
}

// ---- Audit chain ----------------------------------------------------------------------

fn chain(len: u64) -> Vec<AuditEntry> {
    let mut entries: Vec<AuditEntry> = Vec::new();
    for i in 1..=len {
        let event = AuditEvent {
            at_ms: 1_767_225_600_000 + i as i64 * 1_000,
            actor: format!("token:alice{}", i % 3),
            action: if i % 4 == 0 { "merge".into() } else { "read".into() },
            profile: (i % 5 != 0).then(|| format!("p_{i:04}")),
            route: (i % 2 == 0).then(|| format!("GET /api/v1/profiles/p_{i:04}")),
            detail: json!({"fields": {"traits": ["email", "city"], "events": ["Order Completed"]}, "n": i, "ratio": 0.5, "note": "ok"}),
        };
        let entry = match entries.last() {
            Some(prev) => prev.next(event),
            None => AuditEntry::first(event),
        };
        entries.push(entry);
    }
    entries
}

/// `s` with the byte at `at` changed to another ASCII character.
fn flip(s: &str, at: usize) -> String {
    let mut bytes = s.as_bytes().to_vec();
    bytes[at] = if bytes[at] == b'x' { b'y' } else { b'x' };
    String::from_utf8(bytes).unwrap()
}

/// Every way to change one field of one entry: several byte positions of every text field,
/// several bits of every number, absent/present for optional fields, and the detail.
fn tamperings(entry: &AuditEntry) -> Vec<(String, AuditEntry)> {
    let mut out = Vec::new();
    let mut add = |what: String, change: &dyn Fn(&mut AuditEntry)| {
        let mut e = entry.clone();
        change(&mut e);
        assert_ne!(&e, entry, "{what} changed nothing");
        out.push((what, e));
    };
    for bit in [0, 1, 7, 40, 63] {
        add(format!("seq bit {bit}"), &|e| e.seq ^= 1 << bit);
        add(format!("at_ms bit {bit}"), &|e| e.at_ms ^= 1 << bit);
    }
    type Field = fn(&mut AuditEntry) -> &mut String;
    let fields: [(&str, Field); 4] =
        [("actor", |e| &mut e.actor), ("action", |e| &mut e.action), ("prev_hash", |e| &mut e.prev_hash), ("hash", |e| &mut e.hash)];
    for (name, field) in fields {
        let len = field(&mut entry.clone()).len();
        for at in [0, 1, len / 2, len - 1] {
            add(format!("{name} byte {at}"), &|e| {
                let changed = flip(field(e), at);
                *field(e) = changed;
            });
        }
    }
    type Optional = fn(&mut AuditEntry) -> &mut Option<String>;
    let optionals: [(&str, Optional); 2] = [("profile", |e| &mut e.profile), ("route", |e| &mut e.route)];
    for (name, field) in optionals {
        match field(&mut entry.clone()).clone() {
            Some(text) => {
                add(format!("{name} removed"), &|e| *field(e) = None);
                add(format!("{name} emptied"), &|e| *field(e) = Some(String::new()));
                for at in [0, text.len() - 1] {
                    add(format!("{name} byte {at}"), &|e| *field(e) = Some(flip(&text, at)));
                }
            }
            None => add(format!("{name} added"), &|e| *field(e) = Some(String::new())),
        }
    }
    add("detail string".into(), &|e| e.detail["note"] = json!("ox"));
    add("detail nested".into(), &|e| e.detail["fields"]["traits"][1] = json!("citx"));
    add("detail number".into(), &|e| e.detail["n"] = json!(e.detail["n"].as_u64().unwrap() + 1));
    add("detail float".into(), &|e| e.detail["ratio"] = json!(0.25));
    add("detail key added".into(), &|e| e.detail["extra"] = json!(null));
    add("detail key renamed".into(), &|e| {
        let note = e.detail.as_object_mut().unwrap().remove("note").unwrap();
        e.detail["notx"] = note;
    });
    out
}

#[test]
fn a_chain_verifies() {
    let entries = chain(50);
    assert_eq!(verify_chain(entries.clone()), Ok(50));
    assert_eq!(entries[0].prev_hash, GENESIS_HASH);
    assert!(entries.windows(2).all(|w| w[1].prev_hash == w[0].hash));
    assert_eq!(verify_chain(Vec::new()), Ok(0));
    // The detail's key order does not matter, only its content.
    let mut reordered = entries[3].clone();
    let fields: Map<String, Value> = reordered.detail.as_object().unwrap().clone().into_iter().rev().collect();
    reordered.detail = Value::Object(fields);
    assert_eq!(reordered.computed_hash(), entries[3].hash);
}

#[test]
fn changing_any_field_of_any_entry_breaks_the_chain_there() {
    let entries = chain(50);
    let mut checked = 0;
    for (i, entry) in entries.iter().enumerate() {
        for (what, tampered) in tamperings(entry) {
            let mut log = entries.clone();
            log[i] = tampered;
            let err = verify_chain(log).expect_err(&what);
            assert_eq!(err.seq(), i as u64 + 1, "{what} of entry {}: {err}", i + 1);
            let expected_kind = match what.split(' ').next().unwrap() {
                "seq" => matches!(err, ChainError::SeqGap { .. }),
                "prev_hash" => matches!(err, ChainError::BrokenLink { .. }),
                _ => matches!(err, ChainError::HashMismatch { .. }),
            };
            assert!(expected_kind, "{what}: {err}");
            checked += 1;
        }
    }
    assert!(checked > 50 * 30, "{checked}");
}

#[test]
fn deleting_reordering_or_renumbering_entries_breaks_the_chain() {
    let entries = chain(50);
    for i in 0..49 {
        let mut log = entries.clone();
        log.remove(i);
        assert_eq!(verify_chain(log).unwrap_err(), ChainError::SeqGap { seq: i as u64 + 1, found: i as u64 + 2 });

        let mut log = entries.clone();
        log.swap(i, i + 1);
        assert_eq!(verify_chain(log).unwrap_err().seq(), i as u64 + 1);

        // Removing an entry and renumbering the rest still leaves a broken link.
        let mut log = entries.clone();
        log.remove(i);
        log.iter_mut().skip(i).for_each(|e| e.seq -= 1);
        assert_eq!(verify_chain(log).unwrap_err().seq(), i as u64 + 1);
    }
    // Dropping the newest entry leaves a valid, shorter chain: the count shows it.
    assert_eq!(verify_chain(entries[..49].to_vec()), Ok(49));
    // A chain must start at the beginning.
    assert_eq!(verify_chain(entries[1..].to_vec()).unwrap_err(), ChainError::SeqGap { seq: 1, found: 2 });
}

#[test]
fn changing_any_byte_of_a_stored_line_is_caught() {
    let entries = chain(50);
    let lines: Vec<String> = entries.iter().map(AuditEntry::to_json_line).collect();
    let parsed: Vec<AuditEntry> = lines.iter().map(|l| AuditEntry::from_json_line(l).unwrap()).collect();
    assert_eq!(parsed, entries);
    assert_eq!(serde_json::from_str::<AuditEntry>(&lines[0]).unwrap(), entries[0], "the line is the entry's JSON");

    // Every byte of a sample of lines, each changed two ways (a low bit, and the case bit).
    let mut checked = 0;
    for i in (0..50).step_by(7).chain([49]) {
        for at in 0..lines[i].len() {
            for mask in [0x01u8, 0x20] {
                let mut bytes = lines[i].clone().into_bytes();
                bytes[at] ^= mask;
                let caught = match String::from_utf8(bytes) {
                    Err(_) => true,
                    Ok(line) => match AuditEntry::from_json_line(&line) {
                        Err(_) => true,
                        Ok(entry) => {
                            let mut log = entries.clone();
                            log[i] = entry;
                            verify_chain(log).map_err(|e| e.seq()) == Err(i as u64 + 1)
                        }
                    },
                };
                assert!(caught, "byte {at} of line {} ^ {mask:#x}", i + 1);
                checked += 1;
            }
        }
    }
    assert!(checked > 2000, "{checked}");
    assert_eq!(AuditEntry::from_json_line(&lines[0].replace(":1,", ": 1,")), Err(AuditLineError::NotCanonical));
}

// ---- Keyed hashes -----------------------------------------------------------------------

#[test]
fn suppression_hashes_hold_no_identifier() {
    let key = SuppressionKey::from_bytes([9; 32]);
    let hash = suppression_hash(&key, "email", EMAIL);
    assert_eq!(hash.len(), 64);
    assert!(hash.chars().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(hash, suppression_hash(&key, "email", EMAIL), "the same identifier is recognised again");
    assert_ne!(hash, suppression_hash(&key, "phone", EMAIL), "the kind is part of the hash");
    assert_eq!(format!("{key:?}"), "SuppressionKey(..)");
}

// ---- Consent ----------------------------------------------------------------------------

fn consent(traits: Value, events: &[(&str, i64, Value)], config: &ConsentConfig) -> BTreeMap<String, (bool, String)> {
    let traits = traits.as_object().unwrap().clone();
    let events: Vec<(&str, i64, Map<String, Value>)> = events.iter().map(|(n, t, p)| (*n, *t, p.as_object().unwrap().clone())).collect();
    derive_consent(&traits, events.iter().map(|(n, t, p)| (*n, *t, p)), config)
        .into_iter()
        .map(|(purpose, state)| (purpose.to_string(), (state.granted, state.source)))
        .collect()
}

fn state(granted: bool, source: &str) -> (bool, String) {
    (granted, source.to_string())
}

#[test]
fn consent_is_not_granted_until_something_grants_it() {
    let config = ConsentConfig::default();
    let none = consent(json!({}), &[], &config);
    assert_eq!(none.keys().collect::<Vec<_>>(), ["analytics", "marketing", "personalization"]);
    assert!(none.values().all(|s| *s == state(false, "default")));

    let opted_in = consent(json!({"email_opt_in": true, "Analytics_Opt_In": "yes"}), &[], &config);
    assert_eq!(opted_in["marketing"], state(true, "trait:email_opt_in"));
    assert_eq!(opted_in["analytics"], state(true, "trait:analytics_opt_in"));
    assert_eq!(opted_in["personalization"], state(false, "default"));
}

#[test]
fn the_latest_event_wins_and_a_trait_revocation_stands() {
    let config = ConsentConfig::default();
    let no = json!({});
    // Events in any order: the latest counts.
    let events = [("Subscribed", 300, no.clone()), ("unsubscribed", 200, no.clone()), ("Subscribed", 100, no.clone())];
    assert_eq!(consent(json!({}), &events, &config)["marketing"], state(true, "event:Subscribed"));
    let events = [("Subscribed", 100, no.clone()), ("Unsubscribed", 200, no.clone())];
    assert_eq!(consent(json!({"email_opt_in": true}), &events, &config)["marketing"], state(false, "event:Unsubscribed"));
    // At the same moment, the revocation.
    let events = [("Unsubscribed", 100, no.clone()), ("Subscribed", 100, no.clone())];
    assert_eq!(consent(json!({}), &events, &config)["marketing"], state(false, "event:Unsubscribed"));
    // A CRM opt-out is not undone by an event of unknown order relative to it.
    let events = [("Subscribed", 100, no.clone())];
    assert_eq!(consent(json!({"email_opt_in": false}), &events, &config)["marketing"], state(false, "trait:email_opt_in"));
    // A generic consent event says per purpose in its properties.
    let events = [("Consent Updated", 100, json!({"analytics": true, "marketing": "no"})), ("Page Viewed", 200, no.clone())];
    let derived = consent(json!({}), &events, &config);
    assert_eq!(derived["analytics"], state(true, "event:Consent Updated"));
    assert_eq!(derived["marketing"], state(false, "event:Consent Updated"));
    assert_eq!(derived["personalization"], state(false, "default"));
}

#[test]
fn consent_config_from_toml() {
    let config: ConsentConfig = toml::from_str(
        r#"
        purposes = ["marketing", "sms"]
        defaults = { analytics = true }
        traits = [{ trait = "sms_ok", purpose = "sms" }]
        events = [{ event = "SMS *", purpose = "sms", property = "allowed" }]
        "#,
    )
    .unwrap();
    let derived = consent(json!({"sms_ok": 1}), &[("SMS Preference", 5, json!({"allowed": false}))], &config);
    assert_eq!(derived.keys().collect::<Vec<_>>(), ["analytics", "marketing", "sms"]);
    assert_eq!(derived["analytics"], state(true, "default"));
    assert_eq!(derived["sms"], state(false, "event:SMS Preference"));
    assert!(toml::from_str::<ConsentConfig>("purpose = []").is_err());
    let full = derive_consent(&Map::new(), [("Subscribed", 7, &Map::new())], &ConsentConfig::default());
    assert_eq!(full[&Purpose::MARKETING], ConsentState { granted: true, source: "event:Subscribed".into(), at_ms: Some(7) });
    assert_eq!(serde_json::to_value(&full).unwrap()["marketing"]["at_ms"], 7);
}

// ---- The property reviewers test: no unmasked email reaches a marketer ---------------------

/// Characters that may end an email's local part as a reader of the response sees it.
fn is_local_char(c: char) -> bool {
    c.is_alphanumeric() || "!#$%&'+-/=?^_`{|}~.".contains(c)
}

fn is_domain_char(c: char) -> bool {
    c.is_alphanumeric() || "-._".contains(c)
}

/// An unmasked email address, precisely: an `@` right after a local-part character and
/// right before a domain character. Every masked address has `*` before its `@`
/// (`j***@example.com`, `***@x.co`); pseudonyms have no `@`.
fn unmasked_email(text: &str) -> Option<String> {
    let chars: Vec<char> = text.chars().collect();
    (1..chars.len().saturating_sub(1))
        .find(|&i| chars[i] == '@' && is_local_char(chars[i - 1]) && is_domain_char(chars[i + 1]))
        .map(|i| chars[i.saturating_sub(12)..(i + 12).min(chars.len())].iter().collect())
}

fn strings(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|v| strings(v, out)),
        Value::Object(fields) => fields.iter().for_each(|(k, v)| {
            out.push(k.clone());
            strings(v, out)
        }),
        _ => {}
    }
}

fn email() -> impl Strategy<Value = String> {
    let local_chars: Vec<char> = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._+-éü".chars().collect();
    let label_chars: Vec<char> = "abcdefghijklmnopqrstuvwxyz0123456789-".chars().collect();
    (
        prop::collection::vec(prop::sample::select(local_chars), 1..12),
        prop::collection::vec(prop::sample::select(label_chars), 1..8),
        prop::sample::select(vec!["com", "org", "com.au", "io", "de"]),
        any::<bool>(),
    )
        .prop_map(|(local, domain, tld, upper)| {
            let address = format!("{}@{}.{tld}", local.into_iter().collect::<String>(), domain.into_iter().collect::<String>());
            if upper {
                address.to_uppercase()
            } else {
                address
            }
        })
}

/// A value that carries one of `emails` (whole, padded, inside text, or in a nested object
/// or list), a phone, or harmless text with tricky characters around an `@`.
fn carrier(emails: Vec<String>) -> impl Strategy<Value = Value> {
    let junk = prop::sample::select(vec!["@", "x@", "@y", "a\n@b", "x@\n", "+@", "é@", "\"@\"", "café", "50% off", "a@b", "\\@x", "*@*"]);
    (prop::sample::select(emails), 0..8usize, junk).prop_map(|(email, how, junk)| match how {
        0 => json!(email),
        1 => json!(format!("  {email} ")),
        2 => json!(format!("write to {email}, thanks")),
        3 => json!({"email_of_someone": email, "n": 1}),
        4 => json!([junk, email, 3]),
        5 => Value::Object(Map::from_iter([(email, json!("as a key"))])),
        6 => json!(format!("{junk}{email}{junk}")),
        _ => json!("+61 412 345 678"),
    })
}

fn field_name() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["x1", "contact", "Email", "notes", "alt", "customer.info", "e", "to", "billing", "misc", "ref"])
        .prop_map(str::to_string)
}

fn object(emails: Vec<String>) -> impl Strategy<Value = Value> {
    prop::collection::btree_map(field_name(), carrier(emails), 0..6).prop_map(|m| Value::Object(m.into_iter().collect()))
}

fn planted_document() -> impl Strategy<Value = (Value, Vec<String>)> {
    prop::collection::vec(email(), 1..4).prop_flat_map(|emails| {
        let event_names = prop::sample::select(vec!["opened", "Order Completed", "Ticket Opened", "clicked", "Page Viewed", "NPS Response"]);
        let event = (event_names, object(emails.clone()), carrier(emails.clone()))
            .prop_map(|(name, properties, record_key)| json!({"type": "track", "event": name, "source": "s", "record_key": record_key, "properties": properties}));
        let record = (object(emails.clone()), any::<u8>())
            .prop_map(|(payload, key)| json!({"source": "s", "key": format!("k{key}"), "timestamp": "2026-01-01T00:00:00Z", "payload": payload}));
        (
            object(emails.clone()),
            prop::collection::vec(event, 0..5),
            prop::collection::vec(record, 0..4),
            object(emails.clone()),
            Just(emails),
        )
            .prop_map(|(traits, events, records, computed, emails)| {
                let mut identifiers: Vec<Value> = emails.iter().map(|e| json!({"kind": "email", "value": e.to_lowercase(), "source": "s"})).collect();
                identifiers.push(json!({"kind": "phone", "value": "+61412345678", "source": "s"}));
                let doc = json!({
                    "id": "p_1", "traits": traits, "identifiers": identifiers, "events": events, "records": records,
                    "computed": computed, "segments": [emails[0].clone()], "consent": {"marketing": {"granted": true, "source": emails[0].clone()}}
                });
                (doc, emails)
            })
    })
}

/// The marketer, and marketers whose custom roles show raw or projected records: for all of
/// them the scrubbing pass, not the field rules, is what stops the planted emails.
fn marketer_variants() -> Vec<Policy> {
    let config: BTreeMap<String, RoleConfig> = toml::from_str(
        r#"
        [marketer_raw]
        extends = "marketer"
        records = "raw"
        events = ["*"]
        [marketer_projected]
        extends = "marketer"
        records = "projected"
        traits = { default = "allow", rules = { "*email*" = "allow" } }
        "#,
    )
    .unwrap();
    let roles = Roles::from_config(&config).unwrap();
    ["marketer", "marketer_raw", "marketer_projected", "analyst"].iter().map(|name| roles.get(name).unwrap().clone()).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 192, ..ProptestConfig::default() })]

    #[test]
    fn no_unmasked_email_reaches_a_marketer((doc, emails) in planted_document()) {
        for policy in marketer_variants() {
            let projected = project(&doc, &policy, &key()).value;
            let mut texts = Vec::new();
            strings(&projected, &mut texts);
            for text in &texts {
                prop_assert!(unmasked_email(text).is_none(), "{}: {:?} in {:?}", policy.name(), unmasked_email(text), text);
            }
            let serialized = serde_json::to_string(&projected).unwrap();
            prop_assert!(unmasked_email(&serialized).is_none(), "{}: {:?}", policy.name(), unmasked_email(&serialized));
            let lowered = serialized.to_lowercase();
            for email in &emails {
                prop_assert!(!lowered.contains(&email.to_lowercase()), "{}: {} in {}", policy.name(), email, serialized);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Any text at all, made of the characters that matter around an `@`, leaves the
    /// scrubbing pass without an unmasked address, as a value or as a key.
    #[test]
    fn no_text_gets_an_address_through(chars in prop::collection::vec(prop::sample::select(vec!['@', 'a', 'Z', '7', '.', '-', '_', '+', '*', ' ', '\n', '"', '\\', 'é', '\u{1}']), 0..40)) {
        let text: String = chars.into_iter().collect();
        let doc = json!({"traits": {"misc": text.clone(), text.clone(): 1}, "identifiers": [{"kind": "email", "value": EMAIL}]});
        for name in ["marketer", "analyst"] {
            let projected = project(&doc, &role(name), &key()).value;
            let mut texts = Vec::new();
            strings(&projected, &mut texts);
            texts.push(serde_json::to_string(&projected).unwrap());
            for t in &texts {
                prop_assert!(unmasked_email(t).is_none(), "{}: {:?} from {:?}", name, t, text);
            }
        }
    }
}

// ---- Contact details by value: any field, any encoding ------------------------------------

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b"-._~".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

/// An email address written as real exports and URLs write it.
fn encoded(email: &str, how: u8) -> String {
    match how % 6 {
        0 => email.to_string(),
        1 => email.to_uppercase(),
        2 => format!("https://shop.example/signup?email={}&utm_source=x", percent_encode(email)),
        3 => format!("/p?e={}", percent_encode(&percent_encode(email))),
        4 => format!("ref={}", percent_encode(&email.to_uppercase())),
        _ => format!("Contact: {email}; thanks"),
    }
}

fn phone_digits() -> impl Strategy<Value = String> {
    prop::collection::vec(0..10u8, 8).prop_map(|d| format!("04{}", d.iter().map(|d| d.to_string()).collect::<String>()))
}

/// An Australian mobile number (`04` and 8 digits) written one of the ways people write it.
fn written_phone(digits: &str, how: u8) -> String {
    let (a, b, c) = (&digits[..4], &digits[4..7], &digits[7..]);
    match how % 6 {
        0 => format!("{a} {b} {c}"),
        1 => format!("+61 {} {b} {c}", &a[1..]),
        2 => format!("({}) {}-{}", &digits[..2], &digits[2..6], &digits[6..]),
        3 => format!("/contact?phone={}", percent_encode(&format!("+61{}", &digits[1..]))),
        4 => format!("call {a}-{b}-{c} after 5"),
        _ => digits.to_string(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Someone else's email and phone (not the profile's identifiers), in a field no rule
    /// names or one that names them in a way the rules did not list, in any encoding: no
    /// marketer or analyst response holds them, decoded or encoded.
    #[test]
    fn contact_details_are_masked_by_value_in_any_field_and_encoding(
        email in email(),
        digits in phone_digits(),
        email_how in 0..6u8,
        phone_how in 0..6u8,
        field in prop::sample::select(vec!["mobile_number", "tel", "cell", "url", "referrer", "search", "misc", "x", "contact_pref", "Mobile"]),
    ) {
        let email_text = encoded(&email, email_how);
        let phone_text = written_phone(&digits, phone_how);
        let doc = json!({
            "id": "p_1",
            "traits": {field: phone_text.clone(), "about": email_text.clone()},
            "identifiers": [{"kind": "email", "value": EMAIL, "source": "s"}],
            "events": [{"type": "page", "source": "web", "record_key": "r1",
                        "properties": {"url": format!("{email_text}&{phone_text}"), field: email_text.clone()}}],
        });
        for name in ["marketer", "analyst"] {
            let serialized = serde_json::to_string(&project(&doc, &role(name), &key()).value).unwrap();
            let lowered = serialized.to_lowercase();
            for form in [email.to_lowercase(), percent_encode(&email).to_lowercase(), percent_encode(&percent_encode(&email)).to_lowercase()] {
                prop_assert!(!lowered.contains(&form), "{}: {} ({}) in {}", name, form, email_text, serialized);
            }
            let bare: String = serialized.chars().filter(|c| !" -()+".contains(*c)).collect();
            prop_assert!(!bare.contains(&digits[2..]), "{}: phone {} ({}) in {}", name, digits, phone_text, serialized);
        }
    }
}

/// A task's gathered facts are shown as the role sees event properties: support reads them
/// whole, sales loses internal notes, a marketer sees contact details masked, and an analyst
/// loses free text.
#[test]
fn facts_outside_a_profile_are_projected_like_event_properties() {
    let fact = json!({
        "order_id": "ORD-1", "billing_email": "zara.zhang@example.com", "phone": "0412 345 678",
        "subject": "My tent from zara.zhang@example.com arrived damaged", "internal_note": "refund approved", "lead_score": 80,
    });
    let fields = fact.as_object().unwrap();
    let shown = |name: &str| Value::Object(project_fields(fields, &[], &role(name), &key()));
    let support = shown("support");
    assert_eq!(support["billing_email"], "zara.zhang@example.com");
    assert!(support.get("lead_score").is_none(), "scores are hidden from support: {support}");
    let sales = shown("sales");
    assert!(sales.get("internal_note").is_none(), "{sales}");
    let marketer = shown("marketer");
    assert_eq!(marketer["order_id"], "ORD-1");
    let text = marketer.to_string();
    assert!(!text.contains("zara.zhang@example.com") && !text.contains("345 678"), "contact details masked: {text}");
    let analyst = shown("analyst");
    assert!(analyst.get("subject").is_none(), "free text hidden from an analyst: {analyst}");
    assert!(!analyst.to_string().contains("zara.zhang"), "{analyst}");
}
