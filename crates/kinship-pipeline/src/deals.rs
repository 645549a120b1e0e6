//! Deals over every deal-mapped source (a CRM's opportunity rows, each a version, and
//! native deals written to `[service] source`), each with its stage history and contacts, and
//! what the board and the sales reports read from them: deals per stage, the weighted
//! forecast by close month, the win rate, time in stage and the stage funnel.

use crate::Result;
use kinship_core::Config;
use kinship_policy::{Capability, Policy};
use kinship_service::deals::{self, Deal, DealProblems, DealRow, Stage, StageType};
use kinship_store::Database;
use serde_json::{json, Value};

/// Every deal, with the stages they are matched to and the rows that made no deal.
#[derive(Debug, Clone, Default)]
pub struct DealBook {
    pub stages: Vec<Stage>,
    /// Open deals first by close date, then the closed ones, latest close first.
    pub deals: Vec<Deal>,
    pub problems: DealProblems,
}

/// Reads every deal-mapped source's records.
pub fn all_deals(store: &dyn Database, config: &Config) -> Result<DealBook> {
    let stages = config.service.stages();
    let rows = crate::cases::mapped_rows(store, config, |s| s.deal.is_some())?;
    let input = rows.iter().filter_map(|r| {
        let mapping = config.sources.get(r.source)?.deal.as_ref()?;
        Some(DealRow { mapping, owner: &r.profile, source: r.source, key: &r.key, fields: &r.fields, time: r.time })
    });
    let (mut all, problems) = deals::deals(input, &stages);
    let open = |d: &Deal| deals::is_open(&stages, &d.stage);
    all.sort_by(|a, b| match (open(a), open(b)) {
        (true, true) => a.close.cmp(&b.close).then_with(|| a.id.cmp(&b.id)),
        (false, false) => b.close.cmp(&a.close).then_with(|| a.id.cmp(&b.id)),
        (true, false) => std::cmp::Ordering::Less,
        (false, true) => std::cmp::Ordering::Greater,
    });
    Ok(DealBook { stages, deals: all, problems })
}

impl DealBook {
    pub fn stage(&self, name: &str) -> Option<&Stage> {
        self.stages.iter().find(|s| s.name.eq_ignore_ascii_case(name))
    }

    pub fn find(&self, source: &str, id: &str) -> Option<&Deal> {
        self.deals.iter().find(|d| d.source == source && d.id == id)
    }

    /// The board's numbers over `deals` (all of the book's, or a selection of them): per
    /// stage its deals and amount, the weighted forecast by close month and currency, the
    /// win rate, mean days in each stage left, and the stage funnel.
    pub fn report(&self, deals: &[Deal]) -> Value {
        let stages: Vec<Value> = self
            .stages
            .iter()
            .map(|s| {
                let here: Vec<&Deal> = deals.iter().filter(|d| d.stage == s.name).collect();
                let amount: f64 = here.iter().map(|d| d.amount).sum();
                json!({ "name": s.name, "probability": s.probability, "type": s.kind, "deals": here.len(), "amount": amount })
            })
            .collect();
        // Deals are matched to the book's stages when read, so these cannot fail.
        let forecast: Vec<Value> = deals::forecast(deals, &self.stages)
            .unwrap_or_default()
            .into_iter()
            .map(|((month, currency), m)| {
                json!({ "month": month, "currency": currency, "weighted": m.weighted, "pipeline": m.pipeline, "won": m.won, "open_deals": m.open_deals })
            })
            .collect();
        let funnel = deals::stage_funnel(deals, &self.stages);
        let steps: Vec<Value> = deals::funnel_steps(&self.stages)
            .into_iter()
            .zip(&funnel.steps)
            .map(|(stage, step)| json!({ "stage": stage, "count": step.count, "conversion": step.conversion, "from_previous": step.from_previous }))
            .collect();
        json!({
            "stages": stages,
            "forecast": forecast,
            "win_rate": deals::win_rate(deals, &self.stages).unwrap_or(None),
            "time_in_stage_days": deals::time_in_stage(deals),
            "funnel": steps,
        })
    }
}

/// One deal as the API shows it: whether it is open and, if so, the days it has been in its
/// stage as of `now_ms`.
pub fn deal_json(deal: &Deal, stages: &[Stage], now_ms: i64) -> Value {
    let mut v = json!(deal);
    let open = deals::is_open(stages, &deal.stage);
    let days = deal.in_stage_since().filter(|_| open).map(|since| (now_ms.div_euclid(1000) - since).max(0) / 86_400);
    v["open"] = json!(open);
    v["days_in_stage"] = json!(days);
    v["history"] =
        Value::Array(deal.history.iter().map(|(at, stage)| json!({ "at": crate::briefing::iso(at * 1000), "stage": stage })).collect());
    v
}

/// A page of the deals `selection` picks and the board's numbers over every deal of its
/// owner (won and lost too: the forecast and the win rate need them), as the API, the page
/// and `kinship deal list` show them, read through `policy`; with the profiles the page names,
/// for the audit.
pub fn listing(
    book: &DealBook,
    selection: &DealSelection,
    limit: usize,
    offset: usize,
    now_ms: i64,
    policy: &Policy,
) -> (Value, Vec<String>) {
    let shown = selection.apply(book);
    let page: Vec<&Deal> = shown.iter().skip(offset).take(limit).copied().collect();
    let everyone: Vec<Deal> =
        DealSelection { status: Some("all".into()), owner: selection.owner.clone(), contacts: selection.contacts.clone() }
            .apply(book)
            .into_iter()
            .cloned()
            .collect();
    let mut listed = Value::Array(page.iter().map(|d| deal_json(d, &book.stages, now_ms)).collect());
    for_role(&mut listed, policy);
    let contacts = page.iter().flat_map(|d| d.contacts.iter().cloned()).collect();
    let doc = json!({
        "as_of": crate::briefing::iso(now_ms),
        "total": shown.len(),
        "deals": listed,
        "report": book.report(&everyone),
        "problems": book.problems,
    });
    (doc, contacts)
}

/// The open deals with any of `people` among their contacts, into a briefing or an
/// account's 360: `deals`, and a summary line with the total per currency. Only for roles
/// with `read_deals`; the others get none, whatever events they see.
pub fn add_open_deals(doc: &mut Value, book: &DealBook, people: &[String], now_ms: i64, policy: &Policy) {
    if !policy.allows(Capability::ReadDeals) {
        return;
    }
    let open = DealSelection { contacts: Some(people.to_vec()), ..DealSelection::default() }.apply(book);
    if !open.is_empty() {
        let total = crate::briefing::totals(open.iter().map(|d| (Some(d.currency.as_str()), d.amount)));
        let line = format!("{} open deal{}, {total}", open.len(), if open.len() == 1 { "" } else { "s" });
        if let Some(summary) = doc.get_mut("summary").and_then(Value::as_array_mut) {
            summary.push(json!(line));
        }
    }
    doc["deals"] = Value::Array(open.iter().map(|d| deal_json(d, &book.stages, now_ms)).collect());
}

/// Deals as `policy` may read them: who the contacts are and the deal's name (free text
/// that often names a person) only for roles that see identities.
pub fn for_role(deals: &mut Value, policy: &Policy) {
    if policy.sees_identities() {
        return;
    }
    for deal in deals.as_array_mut().into_iter().flatten() {
        if let Some(d) = deal.as_object_mut() {
            d.remove("contacts");
            d.remove("name");
        }
    }
}

/// Which deals a board or list shows.
#[derive(Debug, Clone, Default)]
pub struct DealSelection {
    /// `open` (the default), `won`, `lost` or `all`.
    pub status: Option<String>,
    pub owner: Option<String>,
    /// Deals with one of these profiles among their contacts (a person, or an account's people).
    pub contacts: Option<Vec<String>>,
}

impl DealSelection {
    pub fn check(&self) -> std::result::Result<(), String> {
        match self.status.as_deref() {
            None | Some("open" | "won" | "lost" | "all") => Ok(()),
            Some(other) => Err(format!("unknown status `{other}`: use open, won, lost or all")),
        }
    }

    pub fn apply<'b>(&self, book: &'b DealBook) -> Vec<&'b Deal> {
        let wanted = match self.status.as_deref() {
            Some("won") => Some(StageType::Won),
            Some("lost") => Some(StageType::Lost),
            Some("all") => None,
            _ => Some(StageType::Open),
        };
        book.deals
            .iter()
            .filter(|d| wanted.is_none_or(|w| book.stage(&d.stage).is_some_and(|s| s.kind == w)))
            .filter(|d| self.owner.as_ref().is_none_or(|o| d.owner.as_deref().is_some_and(|x| x.eq_ignore_ascii_case(o))))
            .filter(|d| self.contacts.as_ref().is_none_or(|c| d.contacts.iter().any(|p| c.contains(p))))
            .collect()
    }
}
