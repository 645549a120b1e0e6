//! Two nodes on one PostgreSQL database, always against a real server (started by the
//! tests): records for the same people arrive at both at the same moment, and each node
//! resolves what it sees. Resolution must come out as if one node had done it all.

use kinship_core::{encode_identifiers, Config, Identifier, NewRecord};
use kinship_pipeline::resolve_new_records;
use kinship_store::Database;
use std::collections::{BTreeMap, BTreeSet};

const CONFIG: &str = r#"
[sources.app]
type = "jsonl"
path = "app.jsonl"
key = "id"
identifiers = { user_id = "user_id", email = "email" }
traits = { name = "name" }
"#;

const PEOPLE: usize = 60;
const RECORDS_EACH: usize = 6;

/// Record `i` of person `p`: a chain user_id → user_id+email → email → ..., so that the
/// person is one profile only once records from both nodes have been resolved together.
fn record(p: usize, i: usize) -> NewRecord {
    let (user, email) = (format!("u{p}"), format!("p{p}@example.com"));
    let ids = match i % 3 {
        0 => vec![Identifier::new("user_id", &user)],
        1 => vec![Identifier::new("user_id", &user), Identifier::new("email", &email)],
        _ => vec![Identifier::new("email", &email)],
    };
    let key = format!("{p}-{i}");
    let payload = serde_json::json!({ "id": key, "name": format!("Person {p}") }).to_string();
    NewRecord { key, payload, identifiers: encode_identifiers(&ids), timestamp: Some(1_700_000_000_000 + (p * 10 + i) as i64) }
}

#[test]
fn two_nodes_resolving_the_same_people_at_once_agree_with_one() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("kinship.toml"), CONFIG).unwrap();
    let config = Config::load(dir.path()).unwrap();
    let url = kinship_testkit::fresh_database();
    // Node A gets each person's even records, node B the odd ones, in small batches, and
    // each resolves after every batch while the other is inserting and resolving.
    let nodes: Vec<std::thread::JoinHandle<()>> = (0..2)
        .map(|node| {
            let (url, config) = (url.clone(), config.clone());
            std::thread::spawn(move || {
                let mut store = kinship_store::open(&url).unwrap();
                store.set_origin(&format!("node-{node}"));
                let mine: Vec<NewRecord> =
                    (0..PEOPLE).flat_map(|p| (0..RECORDS_EACH).filter(move |i| i % 2 == node).map(move |i| record(p, i))).collect();
                for batch in mine.chunks(4) {
                    store.insert_records("app", batch, 0).unwrap();
                    resolve_new_records(&mut *store, &config, 3, None, None).unwrap();
                }
            })
        })
        .collect();
    for node in nodes {
        node.join().expect("a node does not panic");
    }
    let mut store = kinship_store::open(&url).unwrap();
    resolve_new_records(&mut *store, &config, 1000, None, None).unwrap();
    assert!(!has_unresolved(&*store), "every record is resolved");

    let mut groups: BTreeMap<String, BTreeSet<usize>> = BTreeMap::new();
    let mut assigned = 0;
    store
        .scan_assignments(&mut |_, key, profile| {
            assigned += 1;
            let person: usize = key.split('-').next().unwrap().parse().unwrap();
            groups.entry(profile.to_string()).or_default().insert(person);
        })
        .unwrap();
    assert_eq!(assigned, PEOPLE * RECORDS_EACH, "each record is in exactly one profile");
    assert!(groups.values().all(|people| people.len() == 1), "no profile mixes people");
    assert_eq!(groups.len(), PEOPLE, "each person is one profile: {groups:?}");
    assert_eq!(store.stats().unwrap().profiles as usize, PEOPLE, "no stray profile is left behind");
}

/// People whose records link in chains and across parts of the identity graph: a user id,
/// an email and a phone each, in records holding one or two of them; every tenth person
/// shares a family mailbox with the next one (whose user id differs: `user_id` is limited
/// to one value per profile, so the mailbox alone must not join them).
fn tangled_records() -> Vec<NewRecord> {
    let mut records = Vec::new();
    for p in 0..120usize {
        let user = Identifier::new("user_id", format!("u{p}"));
        let family = p - p % 10;
        let email = if p % 10 <= 1 { format!("family{family}@example.com") } else { format!("p{p}@example.com") };
        let email = Identifier::new("email", &email);
        let phone = Identifier::new("phone", format!("+6140000{p:04}"));
        let shapes: [Vec<&Identifier>; 6] =
            [vec![&user], vec![&email], vec![&phone], vec![&user, &phone], vec![&email, &user], vec![&phone]];
        for (i, ids) in shapes.iter().enumerate() {
            let key = format!("{p}-{i}");
            let ids: Vec<Identifier> = ids.iter().map(|i| (*i).clone()).collect();
            let payload = serde_json::json!({ "id": key, "name": format!("Person {p} v{i}") }).to_string();
            records.push(NewRecord {
                key,
                payload,
                identifiers: encode_identifiers(&ids),
                timestamp: Some(1_700_000_000_000 + (i * 1000 + p) as i64),
            });
        }
    }
    // A fixed shuffle, so that a person's records arrive in every order.
    records.sort_by_key(|r| r.key.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)));
    // Then people whose first record names two identifiers and whose next one names one of
    // them: the first founds the profile, and its id, only if resolved first.
    for p in 120..160usize {
        let (user, phone) = (Identifier::new("user_id", format!("u{p}")), Identifier::new("phone", format!("+6140000{p:04}")));
        for (i, ids) in [vec![user.clone(), phone], vec![user]].into_iter().enumerate() {
            let key = format!("{p}-{i}");
            let payload = serde_json::json!({ "id": key, "name": format!("Person {p} v{i}") }).to_string();
            records.push(NewRecord { key, payload, identifiers: encode_identifiers(&ids), timestamp: Some(1_700_000_000_000) });
        }
    }
    records
}

/// Which of two nodes takes the `i`th of the tangled records: alternately, except that a
/// pair of the last people's records goes to one node, one after the other.
fn node_of(i: usize) -> usize {
    if i < 120 * 6 {
        i % 2
    } else {
        (i - 120 * 6) / 2 % 2
    }
}

/// Each profile as its record keys and its traits' values, by profile id.
fn profiles_of(store: &dyn Database) -> BTreeMap<String, (BTreeSet<String>, String)> {
    let mut profiles: BTreeMap<String, (BTreeSet<String>, String)> = BTreeMap::new();
    store
        .scan_assignments(&mut |_, key, profile| {
            profiles.entry(profile.to_string()).or_default().0.insert(key.to_string());
        })
        .unwrap();
    store
        .scan_profiles(&mut |id, traits| {
            // A trait is [value, source, record id, time]; record ids differ between stores.
            let traits: BTreeMap<String, serde_json::Value> = serde_json::from_str(traits).unwrap();
            let values: Vec<String> = traits.iter().map(|(name, entry)| format!("{name}={}", entry[0])).collect();
            profiles.entry(id.to_string()).or_default().1 = values.join(",");
        })
        .unwrap();
    profiles
}

#[test]
fn two_nodes_resolving_parts_at_once_make_the_profiles_one_node_makes_in_log_order() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("kinship.toml"), CONFIG.replace("email = \"email\" }", "email = \"email\", phone = \"phone\" }"))
        .unwrap();
    let config = Config::load(dir.path()).unwrap();
    let url = kinship_testkit::fresh_database();
    let records = tangled_records();
    let parts: BTreeSet<i16> = records.iter().map(|r| kinship_store::partition_of(&r.identifiers, &r.key)).collect();
    assert!(parts.contains(&-1) && parts.len() > 8, "the records fall in many parts, and some join parts: {parts:?}");
    let nodes: Vec<std::thread::JoinHandle<()>> = (0..2)
        .map(|node| {
            let (url, config, records) = (url.clone(), config.clone(), records.clone());
            std::thread::spawn(move || {
                let mut store = kinship_store::open(&url).unwrap();
                // Two processes, as far as the store can tell (each counts as a resolver).
                store.set_origin(&format!("node-{node}"));
                let mine: Vec<NewRecord> = records.into_iter().enumerate().filter(|(i, _)| node_of(*i) == node).map(|(_, r)| r).collect();
                for batch in mine.chunks(5) {
                    store.insert_records("app", batch, 0).unwrap();
                    resolve_new_records(&mut *store, &config, 7, None, None).unwrap();
                }
            })
        })
        .collect();
    for node in nodes {
        node.join().expect("a node does not panic");
    }
    let mut shared = kinship_store::open(&url).unwrap();
    while resolve_new_records(&mut *shared, &config, 1000, None, None).unwrap().through < records.len() as i64 {}
    assert!(!has_unresolved(&*shared), "every record is resolved");

    // One node, one resolver, the same log in the same order: an embedded store.
    let mut logged: Vec<NewRecord> = Vec::new();
    shared
        .scan_records(&mut |r| {
            logged.push(NewRecord {
                key: r.key.to_string(),
                payload: r.payload.to_string(),
                identifiers: r.identifiers.to_string(),
                timestamp: r.timestamp,
            })
        })
        .unwrap();
    let mut one = kinship_store::open(dir.path().join("one.db").to_str().unwrap()).unwrap();
    for record in &logged {
        one.insert_records("app", std::slice::from_ref(record), 0).unwrap();
        resolve_new_records(&mut *one, &config, 1000, None, None).unwrap();
    }
    let (two_nodes, one_node) = (profiles_of(&*shared), profiles_of(&*one));
    assert!(two_nodes.len() > 150 && two_nodes.len() < 160 * 3, "people were joined: {} profiles", two_nodes.len());
    let differ: Vec<_> = one_node.iter().filter(|(id, p)| two_nodes.get(*id) != Some(*p)).take(3).collect();
    assert!(differ.is_empty() && one_node.len() == two_nodes.len(), "profiles differ from one node's, e.g. {differ:?}");
}

#[test]
fn resolvers_of_two_parts_attaching_to_one_profile_at_once_lose_no_update() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("kinship.toml"), CONFIG).unwrap();
    let config = Config::load(dir.path()).unwrap();
    let url = kinship_testkit::fresh_database();
    let mut store = kinship_store::open(&url).unwrap();
    // People whose user id and email fall in different parts, known first by both.
    let people: Vec<usize> = (0..400)
        .filter(|p| {
            let part = |kind: &str, value: String| kinship_store::partition_of(&encode_identifiers(&[Identifier::new(kind, value)]), "");
            part("user_id", format!("u{p}")) != part("email", format!("p{p}@example.com"))
        })
        .take(20)
        .collect();
    let first: Vec<NewRecord> = people.iter().map(|&p| record(p, 1)).collect();
    store.insert_records("app", &first, 0).unwrap();
    resolve_new_records(&mut *store, &config, 1000, None, None).unwrap();
    // Then each person's records name one or the other, and two nodes resolve them at once.
    let more: Vec<NewRecord> = (0..150)
        .flat_map(|round| {
            people.iter().map(move |&p| {
                let mut r = record(p, if round % 2 == 0 { 0 } else { 2 });
                r.key = format!("{p}-more-{round}");
                r
            })
        })
        .collect();
    store.insert_records("app", &more, 0).unwrap();
    let newest = store.stats().unwrap().records as i64;
    let nodes: Vec<std::thread::JoinHandle<()>> = (0..2)
        .map(|node| {
            let (url, config) = (url.clone(), config.clone());
            std::thread::spawn(move || {
                let mut node_store = kinship_store::open(&url).unwrap();
                node_store.set_origin(&format!("node-{node}"));
                let node = &mut node_store;
                while resolve_new_records(&mut **node, &config, 40, None, None).unwrap().through < newest {}
            })
        })
        .collect();
    for node in nodes {
        node.join().expect("a node does not panic");
    }
    assert!(!has_unresolved(&*store), "every record is resolved");
    let mut assigned: BTreeMap<String, i64> = BTreeMap::new();
    store.scan_assignments(&mut |_, _, profile| *assigned.entry(profile.to_string()).or_default() += 1).unwrap();
    assert_eq!(assigned.len(), people.len(), "one profile a person");
    let ids: Vec<String> = assigned.keys().cloned().collect();
    for row in store.profiles_by_id(&ids).unwrap() {
        assert_eq!(row.record_count, assigned[&row.id], "profile {} counts every record attached to it", row.id);
    }
}

fn has_unresolved(store: &dyn Database) -> bool {
    let mut assigned = 0;
    store.scan_assignments(&mut |_, _, _| assigned += 1).unwrap();
    store.stats().unwrap().records > assigned
}

#[test]
fn an_erasure_by_another_node_reaches_this_nodes_suppression_list() {
    use kinship_pipeline::governance::{Keys, SuppressionList};
    let dir = tempfile::tempdir().unwrap();
    let url = kinship_testkit::fresh_database();
    let keys = Keys::load_or_create(dir.path()).unwrap();
    let (mut this_node, mut other_node) = (kinship_store::open(&url).unwrap(), kinship_store::open(&url).unwrap());
    let list = SuppressionList::load(&*this_node, keys.suppression.clone()).unwrap();
    let ann = [("email", "ann@example.com")];
    assert!(!list.check().matches(ann.into_iter()));
    assert!(!list.refresh(&*this_node).unwrap(), "nothing changed yet");

    // The other node erases Ann: it stores her identifier's keyed hash.
    let before = list.generation();
    other_node.add_suppressions(&[list.hash("email", "ann@example.com")], "er_test").unwrap();
    assert!(list.refresh(&*this_node).unwrap());
    assert!(list.check().matches(ann.into_iter()), "this node now drops Ann's events");
    assert!(list.generation() > before, "work checked before the refresh is checked again");

    // Lifting the suppression on the other node reaches this one too.
    this_node.remove_suppressions(&[list.hash("email", "ann@example.com")]).unwrap();
    assert!(list.refresh(&*other_node).unwrap());
    assert!(!list.check().matches(ann.into_iter()));
}

#[test]
fn a_record_a_node_accepted_after_an_erasure_elsewhere_is_deleted_not_resolved() {
    use kinship_pipeline::governance::{Keys, SuppressionList};
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("kinship.toml"), CONFIG).unwrap();
    let config = Config::load(dir.path()).unwrap();
    let url = kinship_testkit::fresh_database();
    let keys = Keys::load_or_create(dir.path()).unwrap();
    let (mut node_a, mut node_b) = (kinship_store::open(&url).unwrap(), kinship_store::open(&url).unwrap());
    // Node B's list is loaded before the erasure, as a node that has not refreshed yet.
    let list_b = SuppressionList::load(&*node_b, keys.suppression.clone()).unwrap();
    let ann = record(7, 2);
    node_a.add_suppressions(&[list_b.hash("email", "p7@example.com")], "er_test").unwrap();
    // B's writer, not knowing yet, stores Ann's event, and another person's.
    node_b.insert_records("app", &[ann, record(8, 0)], 0).unwrap();

    let report = resolve_new_records(&mut *node_b, &config, 100, None, Some(&list_b)).unwrap();
    assert_eq!(report.erased, 1, "{report:?}");
    assert_eq!(report.created, 1, "the other person is resolved: {report:?}");
    let mut keys_left = Vec::new();
    node_a.scan_records(&mut |r| keys_left.push(r.key.to_string())).unwrap();
    assert_eq!(keys_left, ["8-0"], "Ann's record is gone from the log");
    assert_eq!(node_a.stats().unwrap().profiles, 1);
}

#[test]
fn a_store_connects_again_after_the_server_drops_its_connection() {
    let url = kinship_testkit::fresh_database();
    let mut store = kinship_store::open(&url).unwrap();
    store.set_meta("k", "before").unwrap();
    // A restart or failover ends every session: here, this store's.
    let mut admin = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let dbname: String = admin.query_one("SELECT current_database()", &[]).unwrap().get(0);
    let ended = admin
        .execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", &[&dbname])
        .unwrap();
    assert!(ended >= 1, "the store's session was ended");
    // The first use may see the closed connection; from then on the store works again.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while store.meta("k").is_err() {
        assert!(std::time::Instant::now() < deadline, "the store did not reconnect");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(store.meta("k").unwrap().as_deref(), Some("before"));
    store.set_meta("k", "after").unwrap();
    assert_eq!(store.meta("k").unwrap().as_deref(), Some("after"));
}
