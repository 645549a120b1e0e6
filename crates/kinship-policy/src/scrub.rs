//! The safety net after projection: contact details that slipped through under a field name
//! no rule knows (a raw payload's `billing_email`, an event property `contact`, a record
//! key, an object key) are masked wherever they are.

use crate::contact::{is_domain_char, is_local_char, percent_decoded, phone_spans};
use crate::keys::{pseudonym, PseudonymKey};
use crate::mask::{mask_email, mask_phone, phone_digits, MASK};
use crate::policy::{Access, Policy};
use serde_json::{Map, Value};
use std::collections::HashMap;

/// How many trailing digits must agree for two phone numbers to count as the same, so that
/// `0412 345 678` is recognised as `+61412345678` (and inside other text too).
const PHONE_SUFFIX: usize = 8;

pub(crate) struct Scrubber<'a> {
    key: &'a PseudonymKey,
    /// The profile's identifier values the role may not read, trimmed and lower-cased,
    /// with what each becomes.
    exact: HashMap<String, String>,
    /// The same for phone numbers among them, by their last [`PHONE_SUFFIX`] digits.
    phones: HashMap<String, String>,
    /// What email addresses anywhere become: `None` when the role may read them.
    emails: Option<Access>,
    /// What phone numbers anywhere become (anyone's, by their shape): `None` when the role
    /// may read them.
    any_phone: Option<Access>,
}

impl<'a> Scrubber<'a> {
    /// The scrubber for `policy` over a profile with these `identifiers` (`[{kind, value}]`);
    /// `None` when the role may read every one of them and every email address.
    pub(crate) fn new(identifiers: &[Value], policy: &Policy, key: &'a PseudonymKey) -> Option<Scrubber<'a>> {
        let mut exact = HashMap::new();
        let mut phones = HashMap::new();
        for identifier in identifiers {
            let (Some(kind), Some(value)) = (identifier["kind"].as_str(), identifier["value"].as_str()) else { continue };
            let replacement = match policy.identifier_access(kind) {
                Access::Allow => continue,
                Access::Mask => policy.mask_style(kind).apply(value),
                Access::Pseudonym => pseudonym(key, value),
                // A hidden kind's value cannot be removed from inside other text: mask it whole.
                Access::Hide => MASK.to_string(),
            };
            if let Some(digits) = phone_digits(value).filter(|d| d.len() >= PHONE_SUFFIX) {
                phones.insert(digits[digits.len() - PHONE_SUFFIX..].to_string(), replacement.clone());
            }
            exact.insert(value.trim().to_lowercase(), replacement);
        }
        let anywhere = |kind: &str| match policy.identifier_access(kind).max(policy.trait_access(kind)) {
            Access::Allow => None,
            Access::Hide => Some(Access::Mask),
            access => Some(access),
        };
        let (emails, any_phone) = (anywhere("email"), anywhere("phone"));
        (!exact.is_empty() || emails.is_some() || any_phone.is_some()).then_some(Scrubber { key, exact, phones, emails, any_phone })
    }

    pub(crate) fn scrub(&self, value: &mut Value) {
        match value {
            Value::String(s) => {
                if let Some(clean) = self.scrub_str(s) {
                    *s = clean;
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|item| self.scrub(item)),
            Value::Object(map) => {
                let fields = std::mem::take(map);
                *map = fields
                    .into_iter()
                    .map(|(k, mut v)| {
                        self.scrub(&mut v);
                        (self.scrub_str(&k).unwrap_or(k), v)
                    })
                    .collect::<Map<String, Value>>();
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }

    /// The string with protected values replaced, or `None` when nothing needed replacing.
    /// Percent-encoded text (`?email=ann%40x.com`) is decoded first when that uncovers
    /// something to replace: the answer then holds the decoded text, masked.
    fn scrub_str(&self, s: &str) -> Option<String> {
        if let Some(clean) = percent_decoded(s).and_then(|decoded| self.scrub_text(&decoded)) {
            return Some(clean);
        }
        self.scrub_text(s)
    }

    fn scrub_text(&self, s: &str) -> Option<String> {
        if let Some(replacement) = self.exact.get(&s.trim().to_lowercase()) {
            return Some(replacement.clone());
        }
        let own_phones = self.replace_phones(s);
        let any_phones = self.replace_any_phones(own_phones.as_deref().unwrap_or(s)).or(own_phones);
        let text = any_phones.as_deref().unwrap_or(s);
        self.emails.and_then(|access| self.replace_emails(text, access)).or(any_phones)
    }

    /// Every phone-number-shaped run in `s` (anyone's number, see `contact::phone_spans`),
    /// when the role may not read phone numbers.
    fn replace_any_phones(&self, s: &str) -> Option<String> {
        let access = self.any_phone?;
        if !s.chars().any(|c| c.is_ascii_digit()) {
            return None;
        }
        let chars: Vec<char> = s.chars().collect();
        let spans = phone_spans(&chars);
        if spans.is_empty() {
            return None;
        }
        let mut out = String::with_capacity(s.len());
        let mut at = 0;
        for (start, end) in spans {
            out.extend(&chars[at..start]);
            let number: String = chars[start..end].iter().collect();
            out.push_str(&match access {
                Access::Pseudonym => pseudonym(self.key, &number.chars().filter(char::is_ascii_digit).collect::<String>()),
                _ => mask_phone(&number),
            });
            at = end;
        }
        out.extend(&chars[at..]);
        Some(out)
    }

    /// The profile's protected phone numbers, written any way, inside `s`: every run of
    /// digits joined by spaces or `+-().` whose digits contain one's last digits.
    fn replace_phones(&self, s: &str) -> Option<String> {
        if self.phones.is_empty() || !s.chars().any(|c| c.is_ascii_digit()) {
            return None;
        }
        let chars: Vec<char> = s.chars().collect();
        let mut out = String::with_capacity(s.len());
        let mut changed = false;
        let mut i = 0;
        while i < chars.len() {
            let starts_number = chars[i].is_ascii_digit() || chars[i] == '+' || chars[i] == '(';
            let run_len = chars[i..].iter().take_while(|c| c.is_ascii_digit() || " +-().".contains(**c)).count();
            // The run ends at its last digit; one without digits is ordinary text.
            let Some(last) = chars[i..i + run_len].iter().rposition(char::is_ascii_digit).filter(|_| starts_number) else {
                out.push(chars[i]);
                i += 1;
                continue;
            };
            let run = &chars[i..=i + last];
            let digits: String = run.iter().filter(|c| c.is_ascii_digit()).collect();
            match self.phones.iter().find(|(suffix, _)| digits.contains(suffix.as_str())) {
                Some((_, replacement)) => {
                    out.push_str(replacement);
                    changed = true;
                }
                None => out.extend(run),
            }
            i += last + 1;
        }
        changed.then_some(out)
    }

    /// `s` with every email address replaced as `access` says, repeated until none is left:
    /// a replacement can put a letter right after an earlier `@` that was not an address
    /// (`x@` then `\nab@c.d`). Each pass turns at least one `@` with a local-part character
    /// before it into one with `*` before it (or removes it), so this ends.
    fn replace_emails(&self, s: &str, access: Access) -> Option<String> {
        let mut clean = self.replace_emails_once(s, access)?;
        while let Some(cleaner) = self.replace_emails_once(&clean, access) {
            clean = cleaner;
        }
        Some(clean)
    }

    /// Every email-shaped run in `s`: local-part characters right before an `@` and domain
    /// characters right after it. The local part is read from the output written so far, so
    /// in `a@b.c@d.e` the second address's local part is the first one's domain.
    fn replace_emails_once(&self, s: &str, access: Access) -> Option<String> {
        if !s.contains('@') {
            return None;
        }
        let input: Vec<char> = s.chars().collect();
        let mut out: Vec<char> = Vec::with_capacity(input.len());
        let mut changed = false;
        let mut i = 0;
        while i < input.len() {
            if input[i] == '@' {
                let local_len = out.iter().rev().take_while(|&&c| is_local_char(c)).count();
                let domain_len = input[i + 1..].iter().take_while(|&&c| is_domain_char(c)).count();
                if local_len > 0 && domain_len > 0 {
                    let start = out.len() - local_len;
                    let address: String = out[start..].iter().chain(&input[i..=i + domain_len]).collect();
                    let replacement = match access {
                        Access::Pseudonym => pseudonym(self.key, &address),
                        _ => mask_email(&address),
                    };
                    out.truncate(start);
                    out.extend(replacement.chars());
                    i += 1 + domain_len;
                    changed = true;
                    continue;
                }
            }
            out.push(input[i]);
            i += 1;
        }
        changed.then(|| out.into_iter().collect())
    }
}
