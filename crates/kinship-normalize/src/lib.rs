//! Normalisation of identifiers and traits, so that spellings of the same value compare
//! equal: emails, phone numbers (E.164), handles, free text (Unicode folding), addresses
//! (common abbreviations), dates and timestamps. Pure functions, no I/O.

mod text;
mod time;

pub use chrono_tz::Tz;
pub use text::{fold, normalize_address};
pub use time::{Moment, TimeFormat, parse_date, parse_timestamp_ms, time_zone};

use phonenumber::country::Id as Region;
use std::str::FromStr;

/// Splits a column's name (`firstName`, `first_name`, `First Name`, `customer.email`) into
/// lower-case words, numbers left out.
pub fn header_words(header: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut previous_lower = false;
    for c in header.chars() {
        if !c.is_alphanumeric() {
            words.push(std::mem::take(&mut current));
            previous_lower = false;
            continue;
        }
        if c.is_uppercase() && previous_lower {
            words.push(std::mem::take(&mut current));
        }
        previous_lower = c.is_lowercase() || c.is_ascii_digit();
        current.extend(c.to_lowercase());
    }
    words.push(current);
    words.retain(|w| !w.is_empty() && !w.chars().all(|c| c.is_ascii_digit()));
    words
}

/// Lower-cased, trimmed email, or `None` when it is not shaped like one.
pub fn email(raw: &str) -> Option<String> {
    let e = raw.trim().trim_matches(|c| c == '<' || c == '>').trim().to_lowercase();
    let (local, domain) = e.split_once('@')?;
    let valid = !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && !e.chars().any(char::is_whitespace);
    valid.then_some(e)
}

/// Parses a region code such as "AU" for [`phone`].
pub fn region(code: &str) -> Option<Region> {
    Region::from_str(&code.trim().to_ascii_uppercase()).ok()
}

/// E.164 form (`+61412345678`) of a phone number written in any common format; numbers
/// without a country code are read in `default_region`. `None` when it is not a valid number.
pub fn phone(raw: &str, default_region: Region) -> Option<String> {
    let trimmed = raw.trim();
    let digits = trimmed.bytes().filter(u8::is_ascii_digit).count();
    if !(6..=17).contains(&digits) {
        return None;
    }
    // "00" is the international prefix in most of the world, even where the default
    // region dials out differently (Australia uses 0011), so read it as "+".
    let number = match trimmed.strip_prefix("00") {
        Some(rest) => phonenumber::parse(None, format!("+{rest}")),
        None => phonenumber::parse(Some(default_region), trimmed),
    }
    .ok()?;
    if !phonenumber::is_valid(&number) {
        return None;
    }
    Some(number.format().mode(phonenumber::Mode::E164).to_string())
}

/// Social handle: trimmed, lower-cased, without a leading '@'.
pub fn handle(raw: &str) -> Option<String> {
    let h = raw.trim().trim_start_matches('@').to_lowercase();
    (!h.is_empty() && !h.chars().any(char::is_whitespace)).then_some(h)
}

/// Opaque ids (user ids, CRM ids): trimmed, otherwise exact.
pub fn opaque_id(raw: &str) -> Option<String> {
    let id = raw.trim();
    (!id.is_empty()).then(|| id.to_string())
}

/// Normalises an identifier of the given kind; `None` when the value cannot be one.
pub fn identifier(kind: &str, raw: &str, default_region: Region) -> Option<String> {
    let value = match kind {
        "email" => email(raw),
        "phone" => phone(raw, default_region),
        "handle" => handle(raw),
        _ => opaque_id(raw),
    }?;
    // Tabs and newlines separate identifiers in storage; an id containing them is malformed.
    (!value.contains(['\t', '\n', '\r'])).then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_fold_case_and_whitespace() {
        assert_eq!(email("  John.Smith@Example.COM ").as_deref(), Some("john.smith@example.com"));
        assert_eq!(email("<a@b.co>").as_deref(), Some("a@b.co"));
        for bad in ["", "john", "john@", "@x.com", "a@b", "a b@c.com", "a@@b.com", "a@b.com."] {
            assert_eq!(email(bad), None, "{bad:?} is not an email");
        }
    }

    #[test]
    fn phones_become_e164() {
        let au = region("au").unwrap();
        for raw in ["0412 345 678", "(04) 1234 5678", "+61 412 345 678", "0061412345678", "+61-412-345-678"] {
            let got = phone(raw, au);
            assert!(got.as_deref().is_some_and(|p| p.starts_with("+61")), "{raw} -> {got:?}");
        }
        assert_eq!(phone("0412 345 678", au), phone("+61412345678", au));
        let us = region("US").unwrap();
        assert_eq!(phone("(415) 555-2671", us).as_deref(), Some("+14155552671"));
        assert_eq!(phone("415.555.2671", us).as_deref(), Some("+14155552671"));
        assert_eq!(phone("+44 20 7946 0958", us).as_deref(), Some("+442079460958"), "explicit country wins");
        for bad in ["", "12", "not a phone", "0000000000000000000000"] {
            assert_eq!(phone(bad, us), None, "{bad:?}");
        }
    }

    #[test]
    fn handles_and_ids() {
        assert_eq!(handle(" @JaneDoe ").as_deref(), Some("janedoe"));
        assert_eq!(handle("@"), None);
        assert_eq!(opaque_id("  CRM-001 ").as_deref(), Some("CRM-001"));
        assert_eq!(identifier("crm_id", "a\tb", region("US").unwrap()), None);
        assert_eq!(identifier("email", " X@Y.Z ", region("US").unwrap()).as_deref(), Some("x@y.z"));
    }
}
