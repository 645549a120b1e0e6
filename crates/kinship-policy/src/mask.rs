//! Masking: what a role sees of a value it may know exists but not read in full.
//!
//! Every function is total: short, empty, non-ASCII or malformed input gives a masked
//! string, never a panic and never the input unmasked.

use serde::{Deserialize, Serialize};

/// What every masked value, or the hidden part of one, is shown as.
pub const MASK: &str = "***";

/// How the values of one identifier kind are masked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MaskStyle {
    /// [`mask_email`]: `j***@example.com`.
    Email,
    /// [`mask_phone`]: `*******5678`.
    Phone,
    /// [`mask_generic`]: the last four characters of a long value.
    LastFour,
    /// Nothing of the value: `***`.
    Full,
}

impl MaskStyle {
    /// The style for an identifier kind no policy names, by what the kind is called: emails
    /// and phones by their own style, ids and numbers by their tail, anything else (a
    /// social handle, say) whole.
    pub fn for_kind(kind: &str) -> MaskStyle {
        let kind = kind.to_lowercase();
        if kind.contains("email") {
            MaskStyle::Email
        } else if ["phone", "mobile", "fax"].iter().any(|k| kind.contains(k)) {
            MaskStyle::Phone
        } else if kind == "id" || kind.ends_with("_id") || kind.contains("number") {
            MaskStyle::LastFour
        } else {
            MaskStyle::Full
        }
    }

    pub fn apply(self, value: &str) -> String {
        match self {
            MaskStyle::Email => mask_email(value),
            MaskStyle::Phone => mask_phone(value),
            MaskStyle::LastFour => mask_generic(value),
            MaskStyle::Full => MASK.to_string(),
        }
    }
}

/// `jane@example.com` → `j***@example.com`: the first character of the local part (only
/// when it is a letter or digit and not the whole local part), then `***`, then the domain.
/// The result always has `*` right before the `@`. A value without `@` is masked whole.
pub fn mask_email(value: &str) -> String {
    let Some((local, domain)) = value.trim().rsplit_once('@') else { return MASK.to_string() };
    let mut chars = local.chars();
    match (chars.next(), chars.next()) {
        (Some(first), Some(_)) if first.is_alphanumeric() => format!("{first}{MASK}@{domain}"),
        _ => format!("{MASK}@{domain}"),
    }
}

/// `+61 412 345 678` → `*******5678`: separators dropped, each digit but the last four
/// shown as `*`. With fewer than 7 digits no digit is kept, and without digits the value
/// is masked whole.
pub fn mask_phone(value: &str) -> String {
    let digits: Vec<char> = value.chars().filter(char::is_ascii_digit).collect();
    match digits.len() {
        0 => MASK.to_string(),
        n if n < 7 => "*".repeat(n),
        n => "*".repeat(n - 4) + &digits[n - 4..].iter().collect::<String>(),
    }
}

/// `C-00012345` → `***2345`: the last four characters of a value of at least 8, else
/// nothing of it. For identifiers such as account numbers, recognisable by their tail.
pub fn mask_generic(value: &str) -> String {
    let chars: Vec<char> = value.trim().chars().collect();
    if chars.len() >= 8 {
        MASK.to_string() + &chars[chars.len() - 4..].iter().collect::<String>()
    } else {
        MASK.to_string()
    }
}

/// A masked trait field or property, by what the value looks like: an email address as
/// [`mask_email`] (text before an `@`, a dotted domain after it), a phone number as
/// [`mask_phone`], anything else as `***` (a masked name, street or `@handle` says nothing).
pub fn mask_value(value: &str) -> String {
    let email_shaped = value.trim().rsplit_once('@').is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'));
    if email_shaped {
        mask_email(value)
    } else if phone_digits(value).is_some() {
        mask_phone(value)
    } else {
        MASK.to_string()
    }
}

/// The digits of a value shaped like a phone number (digits, spaces, `+-().` only, 7 to 15
/// digits); `None` for anything else.
pub(crate) fn phone_digits(value: &str) -> Option<String> {
    let value = value.trim();
    if !value.chars().all(|c| c.is_ascii_digit() || " +-().".contains(c)) {
        return None;
    }
    let digits: String = value.chars().filter(char::is_ascii_digit).collect();
    (7..=15).contains(&digits.len()).then_some(digits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        assert_eq!(mask_email("jane@example.com"), "j***@example.com");
        assert_eq!(mask_email("  Jane.Doe@Example.com "), "J***@Example.com");
        assert_eq!(mask_email("j@example.com"), "***@example.com", "a one-character local part is not kept");
        assert_eq!(mask_email("@example.com"), "***@example.com");
        assert_eq!(mask_email("jane@"), "j***@");
        assert_eq!(mask_email("not an email"), "***");
        assert_eq!(mask_email(""), "***");
        assert_eq!(mask_email("\"a@b\"@example.com"), "***@example.com", "quoted local part: first char is not alphanumeric");
        assert_eq!(mask_email("jörg@beispiel.de"), "j***@beispiel.de");
        assert_eq!(mask_email("éa@x.fr"), "é***@x.fr");
        assert_eq!(mask_email("日本@例え.jp"), "日***@例え.jp");
    }

    #[test]
    fn phones() {
        assert_eq!(mask_phone("+61412345678"), "*******5678");
        assert_eq!(mask_phone("+61 412 345 678"), "*******5678");
        assert_eq!(mask_phone("(08) 9123-4567"), "******4567");
        assert_eq!(mask_phone("1234567"), "***4567");
        assert_eq!(mask_phone("123456"), "******");
        assert_eq!(mask_phone("12"), "**");
        assert_eq!(mask_phone(""), "***");
        assert_eq!(mask_phone("n/a"), "***");
        assert_eq!(mask_phone("٠١٢٣٤٥٦٧٨٩"), "***", "non-ASCII digits are not kept");
    }

    #[test]
    fn generic() {
        assert_eq!(mask_generic("C-00012345"), "***2345");
        assert_eq!(mask_generic("12345678"), "***5678");
        assert_eq!(mask_generic("C-00042"), "***");
        assert_eq!(mask_generic(""), "***");
        assert_eq!(mask_generic("ünïcödé-ïd"), "***é-ïd");
    }

    #[test]
    fn values_by_shape() {
        assert_eq!(mask_value("ann@x.com"), "a***@x.com");
        assert_eq!(mask_value("0412 345 678"), "******5678");
        assert_eq!(mask_value("12 Main St"), "***");
        assert_eq!(mask_value("@ann_smith"), "***", "a handle is not an email");
        assert_eq!(mask_value(""), "***");
    }

    #[test]
    fn styles_by_kind() {
        assert_eq!(MaskStyle::for_kind("email"), MaskStyle::Email);
        assert_eq!(MaskStyle::for_kind("work_email"), MaskStyle::Email);
        assert_eq!(MaskStyle::for_kind("Phone"), MaskStyle::Phone);
        assert_eq!(MaskStyle::for_kind("crm_id"), MaskStyle::LastFour);
        assert_eq!(MaskStyle::for_kind("handle"), MaskStyle::Full);
        assert_eq!(MaskStyle::Full.apply("anything"), "***");
    }
}
