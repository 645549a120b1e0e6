//! Contact details recognised by their value, whatever field holds them: email addresses
//! (also percent-encoded, `+`-addressed or in capitals) and phone numbers inside any text.
//! The scrubber masks what these find; erasure uses them to recognise a person's rows.

/// Whether `c` may stand in the local part of an email address (RFC 5322 `atext` and
/// dots, minus `*` so masked output never reads as an address). Control characters count
/// too: JSON writes them as `\n` or `\u001f`, which ends in a letter or digit right before
/// the `@` in the serialized response.
pub(crate) fn is_local_char(c: char) -> bool {
    c.is_alphanumeric() || "!#$%&'+-/=?^_`{|}~.".contains(c) || c.is_control()
}

/// Whether `c` may stand in the domain of an email address (generously: `_` too).
pub(crate) fn is_domain_char(c: char) -> bool {
    c.is_alphanumeric() || "-._".contains(c)
}

/// How many times nested percent-encoding (`%2540` is `%40` is `@`) is undone.
const DECODE_ROUNDS: usize = 3;

/// `s` with percent-encoding undone (`%40` → `@`, repeatedly for double encoding), or
/// `None` when it holds none. Invalid escapes and bytes that do not form UTF-8 are kept
/// as they are, so this never fails.
pub fn percent_decoded(s: &str) -> Option<String> {
    let mut current = decode_once(s)?;
    for _ in 1..DECODE_ROUNDS {
        match decode_once(&current) {
            Some(next) => current = next,
            None => break,
        }
    }
    Some(current)
}

fn decode_once(s: &str) -> Option<String> {
    if !s.contains('%') {
        return None;
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut changed = false;
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(high), Some(low)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((high * 16 + low) as u8);
                i += 3;
                changed = true;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    if !changed {
        return None;
    }
    // Decoded bytes that are not UTF-8 stay as the escapes they were.
    Some(String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
}

/// Char ranges `[start, end)` of every email-shaped run of `chars`: local-part characters
/// right before an `@` and at least one domain character after it.
pub(crate) fn email_spans(chars: &[char]) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut consumed = 0;
    for (at, _) in chars.iter().enumerate().filter(|(_, &c)| c == '@') {
        if at < consumed {
            continue;
        }
        let local = chars[consumed..at].iter().rev().take_while(|&&c| is_local_char(c)).count();
        let domain = chars[at + 1..].iter().take_while(|&&c| is_domain_char(c)).count();
        if local > 0 && domain > 0 {
            spans.push((at - local, at + 1 + domain));
            consumed = at + 1 + domain;
        }
    }
    spans
}

/// Most digits a phone number has (E.164), and fewest a stored one is recognised by.
const PHONE_DIGITS: std::ops::RangeInclusive<usize> = 8..=15;

/// Char ranges `[start, end)` of every phone-number-shaped run in `chars`: digits joined by
/// spaces and `+-().`, 8 to 15 digits, that starts with `+`, `(` or `0` or is written in
/// groups (`415-555-2671`), and is not a date (`2024-01-15`) or a dotted address
/// (`192.168.10.20`). A bare run of digits (an order number) is not a phone number.
pub(crate) fn phone_spans(chars: &[char]) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let starts = chars[i].is_ascii_digit() || chars[i] == '+' || chars[i] == '(';
        // A digit glued to a letter or digit before it is inside a word or a longer number;
        // one after `C-` or `#` is an id's number part.
        let word = |c: char| c.is_alphanumeric() || c == '_';
        let glued = i > 0 && (word(chars[i - 1]) || chars[i - 1] == '#' || ("-/:".contains(chars[i - 1]) && i > 1 && word(chars[i - 2])));
        if !starts || glued {
            i += 1;
            continue;
        }
        let run = chars[i..].iter().take_while(|c| c.is_ascii_digit() || " +-().".contains(**c)).count();
        let Some(last) = chars[i..i + run].iter().rposition(char::is_ascii_digit) else {
            i += 1;
            continue;
        };
        let end = i + last + 1;
        let text: String = chars[i..end].iter().collect();
        let followed_by_word = chars.get(end).is_some_and(|c| c.is_alphanumeric() || *c == '_');
        if !followed_by_word && is_phone_shaped(&text) {
            spans.push((i, end));
        }
        i = end;
    }
    spans
}

fn is_phone_shaped(text: &str) -> bool {
    let digits = text.chars().filter(char::is_ascii_digit).count();
    if !PHONE_DIGITS.contains(&digits) {
        return false;
    }
    let groups: Vec<&str> = text.split(|c: char| !c.is_ascii_digit()).filter(|g| !g.is_empty()).collect();
    let date = |g: &[&str]| {
        !text.starts_with(['+', '('])
            && g.len() >= 3
            && ((g[0].len() == 4 && g[1].len() <= 2 && g[2].len() <= 2) || (g[0].len() <= 2 && g[1].len() <= 2 && g[2].len() == 4))
    };
    let dotted = !text.contains([' ', '-', '+', '(']) && groups.len() == 4 && groups.iter().all(|g| g.len() <= 3);
    if date(&groups) || dotted {
        return false;
    }
    let leading = text.starts_with(['+', '(', '0']);
    leading || groups.len() >= 3
}

/// Every email address in `text`, also percent-encoded ones, lower-cased. A local part is
/// read from after the last `/?=&:` in it, which in practice end a URL's path or query key
/// (`?email=ann@x.com`) rather than belong to the address.
pub fn emails_in(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for candidate in std::iter::once(text.to_string()).chain(percent_decoded(text)) {
        let chars: Vec<char> = candidate.chars().collect();
        for (start, end) in email_spans(&chars) {
            let address: String = chars[start..end].iter().collect();
            let at = address.rfind('@').expect("a span holds its @");
            let local_start = address[..at].rfind(['/', '?', '=', '&', ':']).map_or(0, |i| i + 1);
            if local_start < at {
                found.push(address[local_start..].to_lowercase());
            }
        }
    }
    found
}

/// Every phone number in `text` (see [`phone_spans`]), also percent-encoded ones, as written.
pub fn phones_in(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for candidate in std::iter::once(text.to_string()).chain(percent_decoded(text)) {
        let chars: Vec<char> = candidate.chars().collect();
        for (start, end) in phone_spans(&chars) {
            found.push(chars[start..end].iter().collect());
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_encoding_is_undone_however_deep() {
        assert_eq!(percent_decoded("a%40b.com").as_deref(), Some("a@b.com"));
        assert_eq!(percent_decoded("a%2540b.com").as_deref(), Some("a@b.com"));
        assert_eq!(percent_decoded("100%"), None);
        assert_eq!(percent_decoded("%zz%4"), None);
        assert_eq!(percent_decoded("plain"), None);
        assert_eq!(percent_decoded("%C3%A9").as_deref(), Some("é"));
        assert!(percent_decoded("%FF%FE").is_some(), "bytes that are not UTF-8 do not fail");
    }

    #[test]
    fn emails_are_found_in_any_text() {
        assert_eq!(emails_in("/signup?email=Amanda.Gonzalez%40iinet.net.au&x=1"), vec!["amanda.gonzalez@iinet.net.au"]);
        assert_eq!(emails_in("write to JANE+SHOP@Example.COM now"), vec!["jane+shop@example.com"]);
        assert_eq!(emails_in("Jane <jane@x.org>; bob@y.net"), vec!["jane@x.org", "bob@y.net"]);
        assert!(emails_in("@handle and a@ b").is_empty());
    }

    #[test]
    fn phones_are_found_but_not_dates_ids_or_addresses() {
        assert_eq!(phones_in("call 0412 345 678 today"), vec!["0412 345 678"]);
        assert_eq!(phones_in("+61 (2) 9123-4567"), vec!["+61 (2) 9123-4567"]);
        assert_eq!(phones_in("tel=415-555-2671"), vec!["415-555-2671"]);
        assert_eq!(phones_in("/p?phone=%2B61412345678"), vec!["+61412345678"]);
        for not_a_phone in [
            "2024-01-15 10:30",
            "15/01/2024",
            "order 100234567",
            "192.168.10.200",
            "SKU12345678",
            "C-00012345",
            "#0012345678",
            "v1.2.3",
            "12.50",
        ] {
            assert!(phones_in(not_a_phone).is_empty(), "{not_a_phone}");
        }
    }
}
