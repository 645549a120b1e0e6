//! The people behind the records: who they are, and which systems know them how. Every
//! choice that decides whether a person's records can be linked by exact identifiers is
//! made here, so the writers only have to render it.

use crate::names::{EMAIL_DOMAINS, FIRST_NAMES, LOCALITIES, NICKNAMES, STREET_NAMES, SURNAMES, WORK_DOMAINS};
use crate::util::{self, DAY, END, Rng, START, fnv, pick, slug, weighted};
use rand::RngExt;
use std::collections::HashSet;
use std::fmt;

/// Ground-truth identity of a record: a real customer, or one test record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PersonId {
    Real(u64),
    Test(u64),
}

impl fmt::Display for PersonId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Real(n) => write!(f, "P{:07}", n + 1),
            Self::Test(n) => write!(f, "T{:05}", n + 1),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Household {
    Single,
    /// Shares their email with the next person, a family member at the same address.
    Head,
    /// Shares the previous person's email; has their own CRM contact, phone and shop id.
    Member,
}

#[derive(Clone, Debug)]
pub struct Address {
    pub unit: Option<u16>,
    pub number: u16,
    pub street: &'static str,
    pub street_type: usize,
    pub locality: usize,
}

#[derive(Clone, Debug)]
pub struct Person {
    pub id: PersonId,
    pub first: &'static str,
    pub nick: Option<&'static str>,
    pub last: &'static str,
    /// Current email, lower case. Unique except within a family.
    pub email: String,
    /// The email used before `email_changed_at`, on older orders, tickets and campaigns.
    pub old_email: Option<String>,
    pub email_changed_at: i64,
    /// National significant number (9 digits, 4xxxxxxxx), unique per person.
    pub phone: u32,
    /// Social handle, lower case, unique.
    pub handle: Option<String>,
    /// Whether the CRM `twitter` column has the handle; otherwise it appears only on
    /// social tickets, which exact matching cannot link.
    pub handle_in_crm: bool,
    pub address: Address,
    pub birth_day: Option<i64>,
    /// First contact with the business.
    pub since: i64,
    pub household: Household,
    /// 0, 1 or 2 (a duplicate contact someone created by hand).
    pub crm_contacts: u8,
    pub crm_has_email: bool,
    pub crm_has_phone: bool,
    pub shop_id: Option<u64>,
    pub orders: u8,
    /// Orders always carry the phone (when the email alone would not link them to the CRM).
    pub orders_need_phone: bool,
    /// Orders may be placed as guest with a mistyped email (the deliberately unlinkable ones).
    pub may_checkout_as_guest: bool,
}

impl Person {
    /// The email the person used at time `t`.
    pub fn email_at(&self, t: i64) -> &str {
        match &self.old_email {
            Some(old) if t < self.email_changed_at => old,
            _ => &self.email,
        }
    }

    /// Whether records carrying only the person's email can be linked to the rest: the
    /// email must appear in the CRM or on an order. Family members other than the head stay
    /// out of email-only sources, so the shared address belongs to one person in truth.
    pub fn email_links(&self) -> bool {
        self.household != Household::Member && ((self.crm_contacts > 0 && self.crm_has_email) || self.orders > 0)
    }

    pub fn nick_or_first(&self, rng: &mut Rng, nick_rate: f64) -> &'static str {
        match self.nick {
            Some(n) if rng.random_bool(nick_rate) => n,
            _ => self.first,
        }
    }
}

/// Person generation state: uniqueness of emails and handles, and id counters.
pub struct People {
    used_emails: HashSet<u64>,
    used_handles: HashSet<u64>,
    nick_of: Vec<Option<&'static str>>,
    phone_offset: u64,
    next_shop_id: u64,
}

impl People {
    pub fn new(rng: &mut Rng, customers: usize) -> Self {
        let nick_of = FIRST_NAMES.iter().map(|f| NICKNAMES.iter().find(|(formal, _)| formal == f).map(|(_, n)| *n)).collect();
        Self {
            used_emails: HashSet::with_capacity(customers + customers / 10),
            used_handles: HashSet::with_capacity(customers / 4),
            nick_of,
            phone_offset: rng.random_range(0..util::MOBILE_SPACE),
            next_shop_id: 1001,
        }
    }

    /// A new shop customer id, also used for test orders (each its own customer).
    pub fn shop_id(&mut self) -> u64 {
        self.next_shop_id += 1;
        self.next_shop_id - 1
    }

    /// Person `index`; a `Member` copies surname, address and email from `head`. With
    /// `may_head`, the person may become a `Head` (the caller then makes the next person
    /// their family member).
    pub fn person(&mut self, rng: &mut Rng, index: u64, head: Option<&Person>, may_head: bool) -> Person {
        let fi = rng.random_range(0..FIRST_NAMES.len());
        let (first, nick) = (FIRST_NAMES[fi], self.nick_of[fi]);
        let last = match head {
            Some(h) => h.last,
            None => pick(rng, SURNAMES),
        };
        let household = match head {
            Some(_) => Household::Member,
            None if may_head && rng.random_bool(0.015) => Household::Head,
            None => Household::Single,
        };
        let family = household != Household::Single;
        let since = rng.random_range(START..END - 30 * DAY);

        let (crm_contacts, orders) = if family {
            (1, order_count(rng, 0.6))
        } else if rng.random_bool(0.08) {
            // Shop-only customers: the CRM never heard of them.
            (0, order_count(rng, 1.0))
        } else {
            (if rng.random_bool(0.022) { 2 } else { 1 }, order_count(rng, 0.674))
        };
        let changed = !family && orders >= 2 && rng.random_bool(0.11);

        let email = match head {
            Some(h) => h.email.clone(),
            None if household == Household::Head && rng.random_bool(0.5) => {
                let domain = pick(rng, &["bigpond.com", "gmail.com", "optusnet.com.au"]);
                self.unique_email(rng, &format!("the{}s", slug(last)), domain)
            }
            None => self.personal_email(rng, first, nick, last),
        };
        let old_email = changed.then(|| self.personal_email(rng, first, nick, last));

        // An email-less CRM contact links through its phone, so then every order has one.
        let crm_has_email = family || changed || rng.random_bool(0.96);
        let crm_has_phone = !crm_has_email || family || changed || rng.random_bool(0.85);
        let orders_need_phone = family || changed || (crm_contacts > 0 && !crm_has_email);

        let handle = rng.random_bool(0.25).then(|| self.handle(rng, first, nick, last));
        let handle_in_crm = handle.is_some() && crm_contacts > 0 && rng.random_bool(0.65);

        let address = match head {
            Some(h) => h.address.clone(),
            None => Address {
                unit: rng.random_bool(0.2).then(|| rng.random_range(1..40)),
                number: rng.random_range(1..300),
                street: pick(rng, STREET_NAMES),
                street_type: weighted(rng, &[40, 25, 10, 8, 3, 4, 4, 2, 4, 2, 1, 1, 2, 1]),
                locality: rng.random_range(0..LOCALITIES.len()),
            },
        };
        let birth_day = rng.random_bool(0.7).then(|| {
            let age_days = rng.random_range(18 * 365..80 * 365);
            since / DAY - age_days
        });

        Person {
            id: PersonId::Real(index),
            first,
            nick,
            last,
            email,
            old_email,
            email_changed_at: 0, // set by the order writer, between first and last order
            phone: util::mobile(index, self.phone_offset),
            handle,
            handle_in_crm,
            address,
            birth_day,
            since,
            household,
            crm_contacts,
            crm_has_email,
            crm_has_phone,
            shop_id: (orders > 0).then(|| self.shop_id()),
            orders,
            orders_need_phone,
            may_checkout_as_guest: !family && !changed && (crm_contacts > 0 || orders >= 2),
        }
    }

    fn personal_email(&mut self, rng: &mut Rng, first: &str, nick: Option<&str>, last: &str) -> String {
        let f = slug(match nick {
            Some(n) if rng.random_bool(0.3) => n,
            _ => first,
        });
        let l = slug(last);
        let local = match weighted(rng, &[30, 12, 12, 8, 14, 10, 8, 6]) {
            0 => format!("{f}.{l}"),
            1 => format!("{f}{l}"),
            2 => format!("{}{l}", &f[..1]),
            3 => format!("{f}_{l}"),
            4 => format!("{f}.{l}{}", rng.random_range(1..100)),
            5 => format!("{f}{}", rng.random_range(60..100)),
            6 => format!("{l}.{f}"),
            _ => format!("{}.{l}", &f[..1]),
        };
        let domain = if rng.random_bool(0.08) { pick(rng, WORK_DOMAINS) } else { pick(rng, EMAIL_DOMAINS) };
        self.unique_email(rng, &local, domain)
    }

    /// `local@domain`, with a number appended until nobody else has it.
    pub fn unique_email(&mut self, rng: &mut Rng, local: &str, domain: &str) -> String {
        let mut email = format!("{local}@{domain}");
        while !self.used_emails.insert(fnv(&email)) {
            email = format!("{local}{}@{domain}", rng.random_range(1..10_000));
        }
        email
    }

    /// A mistyped copy of `email` that belongs to nobody (so it cannot join a stranger).
    pub fn unique_typo(&mut self, rng: &mut Rng, email: &str) -> String {
        let (local, domain) = email.split_once('@').unwrap_or((email, "gmail.com"));
        loop {
            let candidate = if rng.random_bool(0.7) {
                format!("{}@{domain}", util::typo(rng, local))
            } else {
                format!("{local}@{}", util::typo(rng, domain))
            };
            if candidate != email && self.used_emails.insert(fnv(&candidate)) {
                return candidate;
            }
        }
    }

    fn handle(&mut self, rng: &mut Rng, first: &str, nick: Option<&str>, last: &str) -> String {
        let f = slug(nick.unwrap_or(first));
        let l = slug(last);
        let base = match rng.random_range(0..5) {
            0 => format!("{f}{l}"),
            1 => format!("{f}_{l}"),
            2 => format!("{f}{}", &l[..1.min(l.len())]),
            3 => format!("{l}{}", rng.random_range(1..100)),
            _ => format!("the_{f}"),
        };
        let mut handle = base.clone();
        while !self.used_handles.insert(fnv(&handle)) {
            handle = format!("{base}{}", rng.random_range(1..1000));
        }
        handle
    }
}

/// Orders placed: none with probability `1 - p`, else 1-6, most people ordering once or twice.
fn order_count(rng: &mut Rng, p: f64) -> u8 {
    if rng.random_bool(p) { 1 + weighted(rng, &[35, 25, 15, 12, 8, 5]) as u8 } else { 0 }
}
