use super::*;
use kinship_core::ResolveConfig;

fn rec(id: RecordId, ids: &[(&str, &str)]) -> InputRecord {
    InputRecord { id, identifiers: ids.iter().map(|(k, v)| Identifier::new(*k, *v)).collect() }
}

fn config() -> ResolveConfig {
    let mut c = ResolveConfig::default();
    c.limits.insert("crm_id".into(), 1);
    c.priority = ["user_id", "crm_id", "email", "phone"].map(String::from).to_vec();
    c
}

fn same(r: &Resolution, a: usize, b: usize) -> bool {
    r.cluster[a] == r.cluster[b]
}

#[test]
fn shared_identifiers_join_transitively() {
    let records = [
        rec(1, &[("email", "a@x.com")]),
        rec(2, &[("email", "a@x.com"), ("phone", "+15550001")]),
        rec(3, &[("phone", "+15550001")]),
        rec(4, &[("email", "b@x.com")]),
    ];
    let r = resolve(&records, &config(), &Constraints::default());
    assert!(same(&r, 0, 2));
    assert!(!same(&r, 0, 3));
    assert_eq!(r.cluster_count, 2);
    assert_eq!(r.edges.len(), 2, "one edge per merge");
    assert!(r.edges.iter().any(|e| e.reason == Reason::Identifier(Identifier::new("phone", "+15550001"))));
}

#[test]
fn blocked_values_join_nothing() {
    let records = [
        rec(1, &[("email", "test@test.com")]),
        rec(2, &[("email", "test@test.com")]),
        rec(3, &[("phone", "0000000000")]),
        rec(4, &[("phone", "0000000000")]),
    ];
    let r = resolve(&records, &config(), &Constraints::default());
    assert_eq!(r.cluster_count, 4);
    assert_eq!(r.blocked, 4);
}

#[test]
fn family_email_does_not_fuse_two_customers() {
    // Two CRM contacts share a family email; each has its own crm_id and phone.
    let records = [
        rec(1, &[("crm_id", "C1"), ("email", "family@x.com"), ("phone", "+1555001")]),
        rec(2, &[("crm_id", "C2"), ("email", "family@x.com"), ("phone", "+1555002")]),
        rec(3, &[("email", "family@x.com"), ("phone", "+1555001")]), // an order by the first
        rec(4, &[("email", "family@x.com")]),                        // ambiguous: stays alone
    ];
    let r = resolve(&records, &config(), &Constraints::default());
    assert!(!same(&r, 0, 1), "two crm_ids never share a profile");
    assert!(same(&r, 0, 2), "the phone still joins the order to its customer");
    assert!(!same(&r, 3, 0) && !same(&r, 3, 1), "an email shared by two customers is not evidence");
    assert_eq!(r.contested.len(), 1);
    assert_eq!(r.contested[0].0, Identifier::new("email", "family@x.com"));
    assert!(matches!(&r.contested[0].1, Refusal::Limit { kind, limit: 1 } if kind == "crm_id"));
}

#[test]
fn per_kind_limit_stops_a_hub_value() {
    // A shared office phone links six people with six different emails: over the limit of 5.
    let mut records: Vec<InputRecord> = (0..6).map(|i| rec(i, &[("email", &format!("p{i}@x.com")), ("phone", "+1555999")])).collect();
    let r = resolve(&records, &config(), &Constraints::default());
    assert_eq!(r.cluster_count, 6);
    records.truncate(5);
    let r = resolve(&records, &config(), &Constraints::default());
    assert_eq!(r.cluster_count, 1, "five emails are within the default limit");
}

#[test]
fn priority_decides_which_identifier_gives_way() {
    // user_id (limit 1) is strongest: records 1 and 2 join by user_id first, so the email
    // that would add a second user_id gives way, not the user_id.
    let records = [
        rec(1, &[("user_id", "u1"), ("email", "a@x.com")]),
        rec(2, &[("user_id", "u1")]),
        rec(3, &[("user_id", "u2"), ("email", "a@x.com")]),
    ];
    let r = resolve(&records, &config(), &Constraints::default());
    assert!(same(&r, 0, 1));
    assert!(!same(&r, 0, 2));
    let mut weak_user = config();
    weak_user.priority = ["email", "user_id"].map(String::from).to_vec();
    weak_user.limits.insert("user_id".into(), 0);
    let r = resolve(&records, &weak_user, &Constraints::default());
    assert_eq!(r.cluster_count, 1, "without the user_id limit the email joins all three");
}

#[test]
fn constraints_override_identifiers() {
    let records = [rec(1, &[("email", "a@x.com")]), rec(2, &[("email", "a@x.com")]), rec(3, &[("email", "c@x.com")])];
    let split = Constraints { cannot_link: vec![(1, 2)], must_link: vec![] };
    let r = resolve(&records, &config(), &split);
    assert!(!same(&r, 0, 1), "a split survives re-resolution");
    assert_eq!(r.contested[0].1, Refusal::CannotLink);
    let merge = Constraints { must_link: vec![(1, 3)], cannot_link: vec![] };
    let r = resolve(&records, &config(), &merge);
    assert_eq!(r.cluster_count, 1);
    assert!(r.edges.iter().any(|e| e.reason == Reason::MustLink));
}

#[test]
fn deterministic_regardless_of_hashing() {
    let records: Vec<InputRecord> =
        (0..200).map(|i| rec(i, &[("email", &format!("{}@x.com", i % 37)), ("phone", &format!("+1555{}", i % 53))])).collect();
    let a = resolve(&records, &config(), &Constraints::default());
    let b = resolve(&records, &config(), &Constraints::default());
    assert_eq!(a.cluster, b.cluster);
    assert_eq!(a.edges, b.edges);
}

#[test]
fn a_contested_email_joins_once_its_two_contacts_are_one_person() {
    // Two CRM contacts for one person (a duplicate contact) share an email; so do the
    // person's email events. The crm_id limit keeps the email from joining anything...
    let records = [
        rec(1, &[("crm_id", "C1"), ("email", "henry@x.com")]),
        rec(2, &[("crm_id", "C2"), ("email", "henry@x.com")]),
        rec(3, &[("email", "henry@x.com")]),
        rec(4, &[("email", "henry@x.com")]),
        rec(5, &[("crm_id", "C3"), ("email", "other@x.com")]),
        rec(6, &[("email", "other@x.com"), ("crm_id", "C4")]),
    ];
    let mut r = resolve(&records, &config(), &Constraints::default());
    assert_eq!((r.cluster_count, r.contested.len()), (6, 2));
    // ...until a later stage joins the two contacts on overwhelming evidence.
    assert!(r.guard.force_merge(0, 1));
    assert_eq!(r.retry_contested(), 1, "the email now divides no one");
    r.relabel();
    assert!(same(&r, 0, 2) && same(&r, 0, 3), "the events join the person");
    assert!(!same(&r, 4, 5), "a family's email between two contacts still joins nothing");
    assert_eq!(r.contested.len(), 1);
    assert!(r.edges.iter().any(|e| e.reason == Reason::Identifier(Identifier::new("email", "henry@x.com"))));
}

#[test]
fn a_cluster_over_a_limit_takes_records_that_bring_no_new_value() {
    let records = [
        rec(1, &[("crm_id", "C1"), ("email", "a@x.com")]),
        rec(2, &[("crm_id", "C2"), ("email", "b@x.com")]),
        rec(3, &[("email", "a@x.com")]),
        rec(4, &[("email", "b@x.com"), ("crm_id", "C3")]),
    ];
    // A person said records 1 and 2 are one customer.
    let constraints = Constraints { must_link: vec![(1, 2)], cannot_link: vec![] };
    let r = resolve(&records, &config(), &constraints);
    assert!(same(&r, 0, 1) && same(&r, 0, 2), "no new crm_id comes with record 3");
    assert!(!same(&r, 0, 3), "record 4 would bring a third crm_id");
}
