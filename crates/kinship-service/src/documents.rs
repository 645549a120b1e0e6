//! Commercial documents from connected systems, shown, not owned: quotes, orders, invoices,
//! payments, shipments and refunds read from their records through a per-source mapping,
//! each with a normalised status beside the system's own, and an order followed through its
//! invoices, payments and shipments by its number.

use chrono::DateTime;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DocumentKind {
    Quote,
    Order,
    Invoice,
    Payment,
    Shipment,
    Refund,
}

/// The status every system's documents are shown in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DocumentStatus {
    Draft,
    Sent,
    Accepted,
    Ordered,
    Invoiced,
    Paid,
    Overdue,
    Shipped,
    Delivered,
    Void,
    Refunded,
}

impl DocumentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DocumentStatus::Draft => "draft",
            DocumentStatus::Sent => "sent",
            DocumentStatus::Accepted => "accepted",
            DocumentStatus::Ordered => "ordered",
            DocumentStatus::Invoiced => "invoiced",
            DocumentStatus::Paid => "paid",
            DocumentStatus::Overdue => "overdue",
            DocumentStatus::Shipped => "shipped",
            DocumentStatus::Delivered => "delivered",
            DocumentStatus::Void => "void",
            DocumentStatus::Refunded => "refunded",
        }
    }

    /// A system's own word, when it is one of ours or a common synonym.
    fn recognise(text: &str) -> Option<Self> {
        let folded: String = text.trim().to_lowercase().chars().filter(|c| c.is_alphanumeric()).collect();
        Some(match folded.as_str() {
            "draft" => DocumentStatus::Draft,
            "sent" | "open" | "issued" | "awaitingpayment" | "unpaid" => DocumentStatus::Sent,
            "accepted" | "approved" | "signed" => DocumentStatus::Accepted,
            "ordered" | "completed" | "complete" | "placed" | "processing" | "fulfilled" => DocumentStatus::Ordered,
            "invoiced" => DocumentStatus::Invoiced,
            "paid" | "settled" | "succeeded" => DocumentStatus::Paid,
            "overdue" | "pastdue" => DocumentStatus::Overdue,
            "shipped" | "intransit" | "dispatched" => DocumentStatus::Shipped,
            "delivered" => DocumentStatus::Delivered,
            "void" | "voided" | "cancelled" | "canceled" | "deleted" | "declined" | "rejected" | "expired" => DocumentStatus::Void,
            "refunded" | "returned" => DocumentStatus::Refunded,
            _ => return None,
        })
    }
}

/// `[sources.NAME.document]`: what a source's rows are as documents. Fields are paths into
/// the record (`customer.id`), as elsewhere in a source's mapping.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DocumentMapping {
    pub kind: DocumentKind,
    /// The document's own number; default: the record key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<String>,
    /// The order it belongs to; an order's is its own number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<String>,
    /// The system's own status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// The system's statuses that are not recognised by name → ours (`{ "awaiting-pick" =
    /// "ordered" }`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub statuses: BTreeMap<String, DocumentStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    /// The document's date; default: the record's time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date: Option<String>,
    /// When payment is due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due: Option<String>,
    /// Without a due date, an invoice is due this many days after its date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terms_days: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shipped: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivered: Option<String>,
    /// A link back to the document in its system: `{number}` and `{order}` are replaced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
}

/// One document as read from one record. Times are Unix seconds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Document {
    pub kind: DocumentKind,
    pub number: String,
    pub order: Option<String>,
    pub status: DocumentStatus,
    /// The system's own status, as written.
    pub system_status: Option<String>,
    pub amount: Option<f64>,
    pub currency: Option<String>,
    pub date: Option<i64>,
    pub due: Option<i64>,
    pub paid: Option<i64>,
    pub shipped: Option<i64>,
    pub delivered: Option<i64>,
    pub source: String,
    pub record_key: String,
    pub link: Option<String>,
    /// The record's own time: of two versions of a document, the later one is it.
    pub recorded: Option<i64>,
}

/// A value at a dotted path, as text (numbers written out); blank and null are absent.
pub fn field_text(fields: &Map<String, Value>, path: &str) -> Option<String> {
    let mut parts = path.split('.');
    let mut value = fields.get(parts.next()?)?;
    for part in parts {
        value = value.as_object()?.get(part)?;
    }
    let text = match value {
        Value::String(s) => s.trim().to_string(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => return None,
    };
    (!text.is_empty()).then_some(text)
}

/// Whether the record holds the field at `path` at all, blank or not (a partial version
/// that leaves it out says nothing about it).
pub fn field_held(fields: &Map<String, Value>, path: &str) -> bool {
    let mut parts = path.split('.');
    let Some(mut value) = parts.next().and_then(|first| fields.get(first)) else { return false };
    for part in parts {
        match value.as_object().and_then(|o| o.get(part)) {
            Some(inner) => value = inner,
            None => return false,
        }
    }
    true
}

fn field_time(fields: &Map<String, Value>, path: Option<&String>) -> Option<i64> {
    field_text(fields, path?).and_then(|t| seconds(&t))
}

/// Unix seconds from a time as exports write it: RFC 3339 on a fast path, then every form
/// `kinship_normalize` reads (offsets without a colon, a space for the `T`, Unix seconds).
pub fn seconds(text: &str) -> Option<i64> {
    millis(text).map(|ms| ms.div_euclid(1000))
}

/// Unix milliseconds, read as [`seconds`] reads them.
pub fn millis(text: &str) -> Option<i64> {
    kinship_expr::parse_timestamp(text).or_else(|| kinship_normalize::parse_timestamp_ms(text))
}

/// An amount as the systems write it: `129.00`, `1,299.50`, `$12`, `AUD 40`.
pub(crate) fn amount(text: &str) -> Option<f64> {
    let cleaned: String = text.chars().filter(|c| c.is_ascii_digit() || matches!(c, '.' | '-')).collect();
    cleaned.parse::<f64>().ok().filter(|a| a.is_finite())
}

impl DocumentMapping {
    /// What an event of this record carries about its document (under
    /// [`kinship_expr::DOCUMENT_PROPERTY`]), for the expression language's document counts
    /// (`overdue invoices > 0`): source, kind, number, status as the record states it (an
    /// unpaid invoice is `invoiced`: whether it is overdue is judged when the expression
    /// runs) and when it is due (Unix milliseconds). `key` is the record's key column,
    /// `record_time` its time in Unix seconds.
    pub fn event_property(&self, source: &str, key: &str, fields: &Map<String, Value>, record_time: Option<i64>) -> Option<Value> {
        let d = self.read(source, key, fields, record_time, i64::MIN)?;
        let facts = serde_json::json!({
            "source": source, "kind": d.kind, "number": d.number, "status": d.status.as_str(),
            "due": d.due.map(|s| s.saturating_mul(1000)),
        });
        (!d.number.is_empty()).then_some(facts)
    }

    /// The document one record holds, as of `now` (an unpaid invoice past due is overdue);
    /// `None` when `number` is mapped and the record has none (another kind of message on
    /// the same source).
    pub fn read(&self, source: &str, key: &str, fields: &Map<String, Value>, record_time: Option<i64>, now: i64) -> Option<Document> {
        let number = match &self.number {
            Some(path) => field_text(fields, path)?,
            // A cursor-pulled source keys each version `KEY@CURSOR`: one document, many versions.
            None => key.split('@').next().unwrap_or(key).to_string(),
        };
        let order = match (&self.order, self.kind) {
            (Some(p), _) => field_text(fields, p),
            (None, DocumentKind::Order) => Some(number.clone()),
            (None, _) => None,
        };
        let system_status = self.status.as_ref().and_then(|p| field_text(fields, p));
        let date = field_time(fields, self.date.as_ref()).or(record_time);
        let paid = field_time(fields, self.paid.as_ref());
        let shipped = field_time(fields, self.shipped.as_ref());
        let delivered = field_time(fields, self.delivered.as_ref());
        let due = field_time(fields, self.due.as_ref())
            .or_else(|| Some(date? + i64::from(self.terms_days?) * 86_400).filter(|_| self.kind == DocumentKind::Invoice));
        let stated = system_status.as_deref().and_then(|s| {
            self.statuses.iter().find(|(k, _)| k.eq_ignore_ascii_case(s)).map(|(_, v)| *v).or_else(|| DocumentStatus::recognise(s))
        });
        let status = match self.kind {
            _ if matches!(stated, Some(DocumentStatus::Void | DocumentStatus::Refunded)) => stated.unwrap_or(DocumentStatus::Void),
            DocumentKind::Invoice if paid.is_some() => DocumentStatus::Paid,
            DocumentKind::Invoice if stated == Some(DocumentStatus::Paid) => DocumentStatus::Paid,
            DocumentKind::Invoice if due.is_some_and(|d| d < now) => DocumentStatus::Overdue,
            DocumentKind::Invoice => match stated {
                Some(DocumentStatus::Draft) => DocumentStatus::Draft,
                Some(DocumentStatus::Overdue) => DocumentStatus::Overdue,
                _ => DocumentStatus::Invoiced,
            },
            DocumentKind::Shipment if delivered.is_some() => DocumentStatus::Delivered,
            DocumentKind::Shipment => stated.filter(|s| *s == DocumentStatus::Delivered).unwrap_or(DocumentStatus::Shipped),
            DocumentKind::Payment => DocumentStatus::Paid,
            DocumentKind::Refund => DocumentStatus::Refunded,
            DocumentKind::Order => stated.unwrap_or(DocumentStatus::Ordered),
            DocumentKind::Quote => stated.unwrap_or(DocumentStatus::Sent),
        };
        let link = self.link.as_ref().map(|l| l.replace("{number}", &number).replace("{order}", order.as_deref().unwrap_or("")));
        Some(Document {
            kind: self.kind,
            number,
            order,
            status,
            system_status,
            amount: self.amount.as_ref().and_then(|p| field_text(fields, p)).and_then(|a| amount(&a)),
            currency: self.currency.as_ref().and_then(|p| field_text(fields, p)),
            date,
            due,
            paid: paid.or_else(|| (self.kind == DocumentKind::Payment).then_some(date).flatten()),
            shipped: shipped.or_else(|| (self.kind == DocumentKind::Shipment).then_some(date).flatten()),
            delivered,
            source: source.to_string(),
            record_key: key.to_string(),
            link,
            recorded: record_time,
        })
    }
}

/// An order followed through what belongs to it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OrderTrail {
    pub order: Document,
    pub invoices: Vec<Document>,
    pub payments: Vec<Document>,
    pub shipments: Vec<Document>,
    pub refunds: Vec<Document>,
    /// "ordered 26 Nov, invoiced 26 Nov, paid 2 Dec, shipped 29 Nov, delivered 1 Dec".
    pub summary: String,
}

impl OrderTrail {
    /// Paid when an invoice or a payment says so.
    pub fn paid_at(&self) -> Option<i64> {
        self.invoices.iter().chain(&self.payments).filter_map(|d| d.paid).min()
    }

    pub fn delivered_at(&self) -> Option<i64> {
        self.shipments.iter().filter_map(|d| d.delivered).min()
    }

    pub fn shipped_at(&self) -> Option<i64> {
        self.shipments.iter().filter_map(|d| d.shipped).min()
    }
}

/// One document per (source, kind, number): of several versions (a changed row pulled
/// again), the one recorded last, the later in `documents` on a tie.
pub fn latest_versions(documents: Vec<Document>) -> Vec<Document> {
    let mut latest: BTreeMap<(String, DocumentKind, String), (usize, Document)> = BTreeMap::new();
    for (i, d) in documents.into_iter().enumerate() {
        let key = (d.source.clone(), d.kind, d.number.clone());
        match latest.get(&key) {
            Some((_, held)) if held.recorded > d.recorded => {}
            _ => {
                latest.insert(key, (i, d));
            }
        }
    }
    let mut out: Vec<(usize, Document)> = latest.into_values().collect();
    out.sort_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, d)| d).collect()
}

/// Orders, newest first, each with the documents naming it; the documents naming no order
/// of these are returned apart (an invoice whose order is elsewhere, a quote).
/// `now` (Unix seconds) only decides whether dates need their year.
pub fn order_trails(documents: Vec<Document>, now: i64) -> (Vec<OrderTrail>, Vec<Document>) {
    let mut orders: BTreeMap<String, OrderTrail> = BTreeMap::new();
    let mut rest = Vec::new();
    for d in latest_versions(documents) {
        if d.kind == DocumentKind::Order {
            let trail =
                OrderTrail { order: d, invoices: vec![], payments: vec![], shipments: vec![], refunds: vec![], summary: String::new() };
            // One order number in two systems: the first seen is the order, the other listed apart.
            match orders.entry(trail.order.number.clone()) {
                std::collections::btree_map::Entry::Vacant(v) => {
                    v.insert(trail);
                }
                std::collections::btree_map::Entry::Occupied(_) => rest.push(trail.order),
            }
        } else {
            rest.push(d);
        }
    }
    let mut unplaced = Vec::new();
    for d in rest {
        match d.order.as_ref().and_then(|o| orders.get_mut(o)) {
            Some(t) => match d.kind {
                DocumentKind::Invoice => t.invoices.push(d),
                DocumentKind::Payment => t.payments.push(d),
                DocumentKind::Shipment => t.shipments.push(d),
                DocumentKind::Refund => t.refunds.push(d),
                DocumentKind::Quote | DocumentKind::Order => unplaced.push(d),
            },
            None => unplaced.push(d),
        }
    }
    let mut trails: Vec<OrderTrail> = orders.into_values().collect();
    for t in &mut trails {
        t.summary = summary(t, now);
    }
    trails.sort_by(|a, b| b.order.date.cmp(&a.order.date).then_with(|| a.order.number.cmp(&b.order.number)));
    (trails, unplaced)
}

/// "26 Nov" (UTC), with the year when it is not `now`'s: "26 Nov 2024".
pub fn day(at: i64, now: i64) -> String {
    let (Some(d), Some(n)) = (DateTime::from_timestamp(at, 0), DateTime::from_timestamp(now, 0)) else { return String::new() };
    if d.format("%Y").to_string() == n.format("%Y").to_string() {
        d.format("%-d %b").to_string()
    } else {
        d.format("%-d %b %Y").to_string()
    }
}

fn summary(t: &OrderTrail, now: i64) -> String {
    let mut parts = Vec::new();
    let when = |label: &str, at: Option<i64>| match at {
        Some(at) => format!("{label} {}", day(at, now)),
        None => label.to_string(),
    };
    parts.push(when(if t.order.status == DocumentStatus::Ordered { "ordered" } else { t.order.status.as_str() }, t.order.date));
    if t.invoices.is_empty() {
        parts.push("not invoiced".into());
    } else {
        parts.push(when("invoiced", t.invoices.iter().filter_map(|i| i.date).min()));
        match t.paid_at() {
            Some(at) => parts.push(when("paid", Some(at))),
            None if t.invoices.iter().any(|i| i.status == DocumentStatus::Overdue) => {
                parts.push(when("overdue since", t.invoices.iter().filter_map(|i| i.due).min()))
            }
            None => parts.push("unpaid".into()),
        }
    }
    match (t.shipped_at(), t.delivered_at()) {
        (None, _) => parts.push("not shipped".into()),
        (Some(s), None) => parts.push(when("shipped", Some(s))),
        (Some(s), Some(d)) => {
            parts.push(when("shipped", Some(s)));
            parts.push(when("delivered", Some(d)));
        }
    }
    if !t.refunds.is_empty() {
        parts.push(when("refunded", t.refunds.iter().filter_map(|r| r.date).min()));
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn mapping(text: &str) -> DocumentMapping {
        toml::from_str(text).unwrap()
    }

    fn fields(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    const DAY: i64 = 86_400;
    /// 2026-11-26T00:00:00Z
    const NOV26: i64 = 1_795_651_200;

    #[test]
    fn an_order_is_followed_through_invoice_payment_and_shipment() {
        let order = mapping("kind = 'order'\nnumber = 'order_id'\nstatus = 'status'\namount = 'total'\ncurrency = 'currency'");
        let invoice = mapping("kind = 'invoice'\norder = 'order_id'\namount = 'amount'\npaid = 'paid_at'\nterms_days = 14");
        let shipment = mapping("kind = 'shipment'\norder = 'order_id'\nshipped = 'shipped_at'\ndelivered = 'delivered_at'");
        let now = NOV26 + 30 * DAY;
        let docs: Vec<Document> = [
            order.read(
                "shop",
                "1001",
                &fields(json!({"order_id": 1001, "status": "completed", "total": 129.5, "currency": "AUD"})),
                Some(NOV26),
                now,
            ),
            invoice.read(
                "billing",
                "INV-1",
                &fields(json!({"order_id": "1001", "amount": "129.50", "paid_at": "2026-12-02T03:00:00Z"})),
                Some(NOV26 + 60),
                now,
            ),
            shipment.read(
                "ship",
                "SH-1",
                &fields(json!({"order_id": "1001", "shipped_at": "2026-11-29T01:00:00Z", "delivered_at": "2026-12-01 09:00:00"})),
                None,
                now,
            ),
            order.read("shop", "1002", &fields(json!({"order_id": "1002", "status": "completed", "total": "40"})), Some(NOV26 + DAY), now),
            invoice.read("billing", "INV-2", &fields(json!({"order_id": "1002", "amount": "40", "paid_at": ""})), Some(NOV26 + DAY), now),
            invoice.read("billing", "INV-9", &fields(json!({"order_id": "9999", "amount": "5"})), Some(NOV26), now),
        ]
        .into_iter()
        .map(Option::unwrap)
        .collect();
        let (trails, unplaced) = order_trails(docs, now);
        assert_eq!(trails.len(), 2);
        assert_eq!(trails[0].order.number, "1002", "newest first");
        assert_eq!(trails[0].summary, "ordered 27 Nov, invoiced 27 Nov, overdue since 11 Dec, not shipped");
        assert_eq!(trails[0].invoices[0].status, DocumentStatus::Overdue);
        assert_eq!(trails[1].summary, "ordered 26 Nov, invoiced 26 Nov, paid 2 Dec, shipped 29 Nov, delivered 1 Dec");
        assert_eq!(trails[1].order.amount, Some(129.5));
        assert_eq!(trails[1].order.system_status.as_deref(), Some("completed"));
        assert_eq!(unplaced.len(), 1, "an invoice for an order this customer does not hold is listed apart");
    }

    #[test]
    fn the_latest_version_of_an_invoice_is_the_invoice() {
        let invoice = mapping("kind = 'invoice'\norder = 'order_id'\npaid = 'paid_at'");
        let unpaid = invoice.read("billing", "INV-1@1", &fields(json!({"order_id": "7"})), Some(NOV26), NOV26).unwrap();
        let paid = invoice
            .read("billing", "INV-1@2", &fields(json!({"order_id": "7", "paid_at": "2026-11-28T00:00:00Z"})), Some(NOV26 + DAY), NOV26)
            .unwrap();
        assert_eq!(unpaid.number, "INV-1", "the cursor is not part of the number");
        assert_eq!(latest_versions(vec![paid.clone(), unpaid]), vec![paid]);
    }

    #[test]
    fn system_statuses_map_to_ours() {
        let quote = mapping("kind = 'quote'\nstatus = 'Stage'\nstatuses = { 'Needs Review' = 'draft' }");
        let read = |s: &str| quote.read("crm", "Q1", &fields(json!({"Stage": s})), Some(0), 0).unwrap().status;
        assert_eq!(read("Needs Review"), DocumentStatus::Draft);
        assert_eq!(read("Accepted"), DocumentStatus::Accepted);
        assert_eq!(read("CANCELLED"), DocumentStatus::Void);
        assert_eq!(read("something else"), DocumentStatus::Sent);
        let invoice = mapping("kind = 'invoice'\nstatus = 'state'\ndue = 'due'");
        let read = |v: Value, now: i64| invoice.read("x", "I", &fields(v), Some(0), now).unwrap().status;
        assert_eq!(read(json!({"state": "open", "due": "1970-01-10"}), 5 * DAY), DocumentStatus::Invoiced);
        assert_eq!(read(json!({"state": "open", "due": "1970-01-10"}), 20 * DAY), DocumentStatus::Overdue);
        assert_eq!(read(json!({"state": "Paid", "due": "1970-01-10"}), 20 * DAY), DocumentStatus::Paid);
        assert_eq!(read(json!({"state": "voided", "due": "1970-01-10"}), 20 * DAY), DocumentStatus::Void);
        // A mapped number missing: not a document (another message on the same source).
        assert_eq!(
            mapping("kind = 'order'\nnumber = 'order_id'").read("web", "m1", &fields(json!({"type": "identify"})), Some(0), 0),
            None
        );
    }

    proptest::proptest! {
        /// No value in any field panics the reader.
        #[test]
        fn any_text_reads(a in "\\PC*", b in "\\PC*", c in "\\PC*") {
            let m = mapping("kind = 'invoice'\nnumber = 'a'\nstatus = 'b'\namount = 'c'\npaid = 'b'\ndue = 'c'\nterms_days = 30\nlink = 'https://x/{number}'");
            let d = m.read("s", "k", &fields(json!({"a": a, "b": b, "c": c})), Some(0), 0);
            let _ = order_trails(d.into_iter().collect(), 0);
        }
    }
}
