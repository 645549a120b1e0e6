//! Accounts over the store: every profile's account from its golden traits (`[accounts]`:
//! a group call's `group_id`, a CRM's account id, or a business email's domain), and the
//! 360 of an account: its people, and their orders, unpaid invoices, open cases and value,
//! each person's part read through the briefing.

use crate::Result;
use kinship_core::Config;
use kinship_service::accounts::AccountKey;
use kinship_store::Database;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap};

/// Most people whose records one account document reads; the rest are counted, not read.
pub const MAX_READ: usize = 200;
/// Most documents one account document lists (the newest).
const MAX_DOCUMENTS: usize = 500;

#[derive(Debug, Clone)]
pub struct Account {
    pub key: AccountKey,
    /// The name the most members' traits give it.
    pub name: Option<String>,
    pub members: Vec<String>,
}

impl Account {
    /// The people whose records its 360 and health read: the first [`MAX_READ`].
    pub fn read(&self) -> &[String] {
        &self.members[..self.members.len().min(MAX_READ)]
    }
}

/// Every account with its members, by account id (`kind:value`).
#[derive(Debug, Default)]
pub struct AccountIndex {
    pub accounts: BTreeMap<String, Account>,
}

impl AccountIndex {
    /// Accounts by size, largest first.
    pub fn by_size(&self) -> Vec<&Account> {
        let mut all: Vec<&Account> = self.accounts.values().collect();
        all.sort_by(|a, b| b.members.len().cmp(&a.members.len()).then_with(|| a.key.cmp(&b.key)));
        all
    }
}

/// The golden traits of a stored profile row, as values.
fn traits_of(json: &str) -> Map<String, Value> {
    let stored: Map<String, Value> = serde_json::from_str(json).unwrap_or_default();
    stored.into_iter().map(|(k, held)| (k, crate::golden::value(&held).clone())).collect()
}

/// Reads every profile's traits once.
pub fn account_index(store: &dyn Database, config: &Config) -> Result<AccountIndex> {
    let rules = &config.accounts;
    // Per account: its key, how many members give each name, and the members.
    type Gathered = (AccountKey, HashMap<String, u32>, Vec<String>);
    let mut accounts: BTreeMap<String, Gathered> = BTreeMap::new();
    store.scan_profiles(&mut |id, traits| {
        let traits = traits_of(traits);
        if let Some(key) = rules.account_of(&traits) {
            let entry = accounts.entry(key.id()).or_insert_with(|| (key, HashMap::new(), Vec::new()));
            if let Some(name) = rules.name_of(&traits) {
                *entry.1.entry(name).or_default() += 1;
            }
            entry.2.push(id.to_string());
        }
    })?;
    let accounts = accounts
        .into_iter()
        .map(|(id, (key, names, members))| {
            let name = names.into_iter().max_by(|a, b| a.1.cmp(&b.1).then_with(|| b.0.cmp(&a.0))).map(|(n, _)| n);
            (id, Account { key, name, members })
        })
        .collect();
    Ok(AccountIndex { accounts })
}

/// The 360 of an account: its people (with names), and across the first `MAX_READ` of
/// them: orders (each followed through invoice, payment and shipment), unpaid invoices, open
/// cases with their SLA clocks, and lifetime value (callers add open deals with
/// `deals::add_open_deals`). Built from each person's briefing, so it
/// reads only the events `policy` may see, as the briefing does.
pub fn account_document(
    store: &dyn Database,
    config: &Config,
    account: &Account,
    now_ms: i64,
    policy: &kinship_policy::Policy,
) -> Result<Value> {
    let mut people = Vec::new();
    let (mut orders, mut unpaid, mut open_cases) = (Vec::new(), Vec::new(), Vec::new());
    let mut documents = Vec::new();
    let (mut value, mut solved) = (0.0, 0u64);
    for id in account.read() {
        let Some(brief) = crate::briefing::briefing(store, config, id, None, now_ms, policy)? else { continue };
        let tag = |mut v: Value| {
            v["person"] = json!(id);
            v
        };
        people.push(json!({ "id": id, "name": brief["name"], "orders": brief["orders"].as_array().map_or(0, Vec::len) }));
        orders.extend(brief["orders"].as_array().into_iter().flatten().cloned().map(tag));
        documents.extend(brief["documents"].as_array().into_iter().flatten().cloned().map(tag));
        unpaid.extend(brief["unpaid_invoices"].as_array().into_iter().flatten().cloned().map(tag));
        open_cases.extend(brief["cases"]["open"].as_array().into_iter().flatten().cloned().map(tag));
        value += brief["lifetime_value"]["amount"].as_f64().unwrap_or(0.0);
        solved += brief["cases"]["solved"].as_u64().unwrap_or(0);
    }
    orders.sort_by(|a, b| b["date"].as_str().cmp(&a["date"].as_str()));
    documents.sort_by(|a, b| b["date"].as_str().cmp(&a["date"].as_str()));
    documents.truncate(MAX_DOCUMENTS);
    open_cases.sort_by(|a, b| a["next_due"].as_str().unwrap_or("~").cmp(b["next_due"].as_str().unwrap_or("~")));
    let overdue = unpaid.iter().filter(|d| d["status"] == "overdue").count();
    Ok(json!({
        "id": account.key.id(),
        "kind": account.key.kind,
        "value": account.key.value,
        "name": account.name,
        "people_total": account.members.len(),
        "people_read": people.len(),
        "people": people,
        "orders": orders,
        "documents": documents,
        "unpaid_invoices": unpaid,
        "overdue_invoices": overdue,
        "cases": { "open": open_cases, "solved": solved },
        "lifetime_value": value,
    }))
}

/// An account's health under every saved definition that applies to it, scored on its
/// people's events together ([`kinship_measure::health::Group`]), as the 360 of a profile
/// shows a person's: score, band, measures, weekly history and trend, over the people its
/// 360 reads ([`Account::read`]). Read from the audience,
/// which follows every event as it arrives. Only definitions `policy` may read in full are
/// scored (a score over events the role may not see would reveal them).
pub fn account_health(
    audience: &kinship_segments::Audience,
    account: &Account,
    now_ms: i64,
    policy: &kinship_policy::Policy,
) -> Map<String, Value> {
    let readable = |name: &str| crate::readable::check_definition_readable(audience, kinship_segments::Kind::Health, name, policy).is_ok();
    audience.map_group(account.read(), |people| {
        let together = kinship_measure::health::Group::new(people);
        audience
            .saved_healths()
            .filter(|(name, _)| policy.sees_computed() && readable(name))
            .filter_map(|(name, program)| Some((name.to_string(), crate::audience::health_entry(program, &together, now_ms)?)))
            .collect()
    })
}

/// Every account's score under saved definition `name`, lowest first (the accounts to look
/// at first), or `None` when no such definition is saved.
pub fn account_scores(
    audience: &kinship_segments::Audience,
    index: &AccountIndex,
    name: &str,
    now_ms: i64,
) -> Option<Vec<(String, kinship_measure::health::Scored)>> {
    let program = audience.saved_health(name)?;
    let mut scores: Vec<(String, kinship_measure::health::Scored)> = index
        .accounts
        .iter()
        .filter_map(|(id, account)| {
            let scored =
                audience.map_group(account.read(), |people| program.score(&kinship_measure::health::Group::new(people), now_ms))?;
            Some((id.clone(), scored))
        })
        .collect();
    scores.sort_by(|a, b| a.1.score.total_cmp(&b.1.score).then_with(|| a.0.cmp(&b.0)));
    Some(scores)
}

/// The account document as `policy` may read it: each person's name through the role's
/// projection, case subjects only for roles that see identities, contact details scrubbed.
pub fn for_role(mut doc: Value, policy: &kinship_policy::Policy, key: &kinship_policy::PseudonymKey) -> Value {
    for person in doc["people"].as_array_mut().into_iter().flatten() {
        let shown = kinship_policy::project(&json!({ "id": person["id"], "traits": { "name": person["name"] } }), policy, key);
        person["name"] = shown.value["traits"].get("name").cloned().unwrap_or(Value::Null);
    }
    crate::briefing::cases_for_role(&mut doc["cases"]["open"], policy);
    if let Some(deals) = doc.get_mut("deals") {
        crate::deals::for_role(deals, policy);
    }
    kinship_policy::scrub(&mut doc, &[], policy, key);
    doc
}
