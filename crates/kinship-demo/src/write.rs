//! The output files. Each block of records is sorted by time and numbered, so every file
//! reads like an export of its system; every good record also gets its line in truth.csv.

use crate::person::PersonId;
use crate::records::{Block, Row};
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

/// One output file and how many data rows it has.
struct Out {
    name: &'static str,
    w: BufWriter<File>,
    rows: usize,
}

impl Out {
    fn create(dir: &Path, name: &'static str, header: Option<&str>) -> io::Result<Self> {
        let mut w = BufWriter::with_capacity(1 << 20, File::create(dir.join(name))?);
        if let Some(h) = header {
            writeln!(w, "{h}")?;
        }
        Ok(Self { name, w, rows: 0 })
    }

    fn line(&mut self, parts: &[&str]) -> io::Result<()> {
        for p in parts {
            self.w.write_all(p.as_bytes())?;
        }
        self.rows += 1;
        self.w.write_all(b"\n")
    }
}

/// The files, their id counters, and truth.csv.
pub struct Writer {
    crm: Out,
    shop: Out,
    invoices: Out,
    shipments: Out,
    tickets: Out,
    events: Out,
    nps: Out,
    deals: Out,
    truth: Out,
    journeys: Out,
    next: Counters,
}

#[derive(Default)]
struct Counters {
    crm: u64,
    order: u64,
    invoice: u64,
    shipment: u64,
    ticket: u64,
    event: u64,
    response: u64,
    deal_version: u64,
}

fn next(counter: &mut u64) -> u64 {
    *counter += 1;
    *counter
}

impl Writer {
    pub fn create(dir: &Path) -> io::Result<Self> {
        Ok(Self {
            crm: Out::create(
                dir,
                "crm_contacts.csv",
                Some("crm_id,first_name,last_name,email,phone,street,city,postcode,country,birth_date,twitter,marketing_opt_in,updated_at"),
            )?,
            shop: Out::create(dir, "shop_orders.jsonl", None)?,
            invoices: Out::create(dir, "invoices.csv", Some("invoice_id,order_id,billing_email,billing_name,amount,issued_at,paid_at"))?,
            shipments: Out::create(
                dir,
                "shipments.csv",
                Some("shipment_id,order_id,recipient,phone,street,city,postcode,carrier,shipped_at,delivered_at"),
            )?,
            tickets: Out::create(dir, "tickets.jsonl", None)?,
            events: Out::create(dir, "email_events.jsonl", None)?,
            nps: Out::create(dir, "nps.csv", Some("response_id,email,score,why_bought,submitted_at"))?,
            deals: Out::create(
                dir,
                "crm_deals.csv",
                Some("version_id,deal_id,contact_email,name,stage,amount,currency,close_date,owner,changed_at"),
            )?,
            truth: Out::create(dir, "truth.csv", Some("source,record_key,person_id"))?,
            journeys: Out::create(dir, "journeys.csv", Some("person_id,journey,at"))?,
            next: Counters::default(),
        })
    }

    /// Writes and empties the block.
    pub fn block(&mut self, b: &mut Block) -> io::Result<()> {
        let t = &mut self.truth;

        sort(&mut b.crm);
        for r in b.crm.drain(..) {
            let key = format!("C{:07}", next(&mut self.next.crm));
            self.crm.line(&[&key, &r.body])?;
            truth(t, "crm", &key, r.person)?;
        }

        b.orders.sort_by_key(|o| o.row.ts);
        let mut invoices = Vec::new();
        let mut shipments = Vec::new();
        for o in b.orders.drain(..) {
            let key = format!("ORD-{:07}", next(&mut self.next.order));
            self.shop.line(&["{\"order_id\":\"", &key, "\",", &o.row.body])?;
            truth(t, "shop", &key, o.row.person)?;
            invoices.extend(o.invoice.map(|r| (key.clone(), r)));
            shipments.extend(o.shipment.map(|r| (key.clone(), r)));
        }
        invoices.sort_by_key(|(_, r)| r.ts);
        for (order, r) in invoices {
            let key = format!("INV-{:07}", next(&mut self.next.invoice));
            self.invoices.line(&[&key, ",", &order, &r.body])?;
            if r.good {
                truth(t, "invoices", &key, r.person)?;
            }
        }
        shipments.sort_by_key(|(_, r)| r.ts);
        for (order, r) in shipments {
            let key = format!("SHP-{:07}", next(&mut self.next.shipment));
            self.shipments.line(&[&key, ",", &order, &r.body])?;
            truth(t, "shipments", &key, r.person)?;
        }

        sort(&mut b.tickets);
        for r in b.tickets.drain(..) {
            let key = format!("TCK-{:07}", next(&mut self.next.ticket));
            self.tickets.line(&["{\"ticket_id\":\"", &key, "\",", &r.body])?;
            if r.good {
                truth(t, "tickets", &key, r.person)?;
            }
        }

        sort(&mut b.events);
        for r in b.events.drain(..) {
            let key = format!("EVT-{:08}", next(&mut self.next.event));
            self.events.line(&["{\"event_id\":\"", &key, "\",", &r.body])?;
            truth(t, "email", &key, r.person)?;
        }

        sort(&mut b.nps);
        for r in b.nps.drain(..) {
            let key = format!("NPS-{:07}", next(&mut self.next.response));
            self.nps.line(&[&key, &r.body])?;
            truth(t, "nps", &key, r.person)?;
        }

        sort(&mut b.deals);
        for r in b.deals.drain(..) {
            let key = format!("OPV-{:07}", next(&mut self.next.deal_version));
            self.deals.line(&[&key, &r.body])?;
            truth(t, "deals", &key, r.person)?;
        }

        for r in b.journeys.drain(..) {
            self.journeys.line(&[&r.person.to_string(), ",", &r.body])?;
        }
        Ok(())
    }

    /// Flushes every file; returns (file name, data rows) in a fixed order.
    pub fn finish(self) -> io::Result<Vec<(String, usize)>> {
        let mut files = Vec::new();
        for mut o in
            [self.crm, self.shop, self.invoices, self.shipments, self.tickets, self.events, self.nps, self.deals, self.truth, self.journeys]
        {
            o.w.flush()?;
            files.push((o.name.to_string(), o.rows));
        }
        Ok(files)
    }
}

/// By time; stable, so equal times keep generation order and output stays deterministic.
fn sort(rows: &mut [Row]) {
    rows.sort_by_key(|r| r.ts);
}

fn truth(t: &mut Out, source: &str, key: &str, person: PersonId) -> io::Result<()> {
    t.line(&[source, ",", key, ",", &person.to_string()])
}
