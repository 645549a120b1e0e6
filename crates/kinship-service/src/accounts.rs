//! Accounts: the companies people belong to. A person's account is named by the first of
//! these that holds: a trait set by a Segment `group` call (`group_id`) or by a CRM (an
//! account id), then the domain of a business email, never a free-mail or internet
//! provider's domain, where unrelated people share a domain.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `[accounts]` in kinship.toml.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AccountsConfig {
    /// Traits naming a person's account, strongest first; `group_id` is what a Segment
    /// `group` call sets.
    pub traits: Vec<String>,
    /// Traits holding the account's name, first found wins.
    pub name_traits: Vec<String>,
    /// Group people by their email's domain when no trait names an account.
    pub email_domains: bool,
    /// Domains where unrelated people hold addresses, besides the built-in list.
    pub free_mail: Vec<String>,
}

impl Default for AccountsConfig {
    fn default() -> Self {
        AccountsConfig {
            traits: vec!["group_id".into(), "account_id".into()],
            name_traits: vec!["group_name".into(), "company".into(), "account_name".into()],
            email_domains: true,
            free_mail: Vec::new(),
        }
    }
}

/// Free-mail services and internet providers that hand addresses to households: a shared
/// domain there says nothing about a company. A domain is free mail when it or its
/// registrable part (`mail.yahoo.co.uk` → `yahoo.co.uk`) is listed, or its first label is
/// one of the providers that use many country domains (`yahoo.*`, `hotmail.*`).
const FREE_MAIL: &[&str] = &[
    "gmail.com",
    "googlemail.com",
    "outlook.com",
    "hotmail.com",
    "live.com",
    "msn.com",
    "icloud.com",
    "me.com",
    "mac.com",
    "aol.com",
    "yahoo.com",
    "ymail.com",
    "rocketmail.com",
    "protonmail.com",
    "proton.me",
    "pm.me",
    "gmx.com",
    "gmx.net",
    "gmx.de",
    "web.de",
    "mail.com",
    "zoho.com",
    "yandex.com",
    "yandex.ru",
    "mail.ru",
    "inbox.ru",
    "list.ru",
    "bk.ru",
    "qq.com",
    "163.com",
    "126.com",
    "sina.com",
    "naver.com",
    "daum.net",
    "hanmail.net",
    "fastmail.com",
    "tutanota.com",
    "hey.com",
    "comcast.net",
    "verizon.net",
    "att.net",
    "sbcglobal.net",
    "cox.net",
    "charter.net",
    "earthlink.net",
    "bigpond.com",
    "bigpond.net.au",
    "optusnet.com.au",
    "iinet.net.au",
    "tpg.com.au",
    "internode.on.net",
    "dodo.com.au",
    "btinternet.com",
    "sky.com",
    "virginmedia.com",
    "talktalk.net",
    "orange.fr",
    "free.fr",
    "laposte.net",
    "sfr.fr",
    "wanadoo.fr",
    "t-online.de",
    "libero.it",
    "virgilio.it",
    "tiscali.it",
    "xtra.co.nz",
    "shaw.ca",
    "rogers.com",
    "sympatico.ca",
    "telus.net",
    "uol.com.br",
    "bol.com.br",
    "terra.com.br",
    "rediffmail.com",
];
/// Providers whose first label marks free mail under any country domain.
const FREE_MAIL_BRANDS: &[&str] = &["yahoo", "hotmail", "outlook", "live", "windowslive", "gmx", "aol", "bigpond", "yandex"];

/// A person's account.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct AccountKey {
    /// What named it: a trait's name (`group_id`, `account_id`) or `domain`.
    pub kind: String,
    /// The value, as the trait holds it, or the lower-cased domain.
    pub value: String,
}

impl AccountKey {
    /// `kind:value`, the account's id in routes and links.
    pub fn id(&self) -> String {
        format!("{}:{}", self.kind, self.value)
    }

    pub fn parse(id: &str) -> Option<AccountKey> {
        let (kind, value) = id.split_once(':')?;
        (!kind.is_empty() && !value.is_empty()).then(|| AccountKey { kind: kind.into(), value: value.into() })
    }
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

impl AccountsConfig {
    /// Whether people holding addresses at `domain` may be unrelated.
    pub fn is_free_mail(&self, domain: &str) -> bool {
        let d = domain.trim().trim_end_matches('.').to_lowercase();
        let listed = |x: &str| FREE_MAIL.contains(&x) || self.free_mail.iter().any(|f| f.eq_ignore_ascii_case(x));
        let mut suffix = d.as_str();
        loop {
            if listed(suffix) {
                return true;
            }
            match suffix.split_once('.') {
                Some((_, rest)) if rest.contains('.') => suffix = rest,
                _ => break,
            }
        }
        // `yahoo.co.uk`, `hotmail.fr`, `mail.yahoo.com.au`: a brand label before a
        // country or generic ending.
        d.split('.').collect::<Vec<_>>().windows(2).any(|w| FREE_MAIL_BRANDS.contains(&w[0]) && w[1].len() <= 3)
    }

    /// The account a person's golden traits name, if any.
    pub fn account_of(&self, traits: &Map<String, Value>) -> Option<AccountKey> {
        for name in &self.traits {
            if let Some(value) = traits.get(name).and_then(text) {
                return Some(AccountKey { kind: name.clone(), value });
            }
        }
        if !self.email_domains {
            return None;
        }
        let email = traits.get("email").and_then(text)?;
        let (local, domain) = email.rsplit_once('@')?;
        let domain = domain.trim().trim_end_matches('.').to_lowercase();
        let valid = !local.is_empty()
            && domain.contains('.')
            && domain.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'))
            && !domain.starts_with(['.', '-']);
        (valid && !self.is_free_mail(&domain)).then(|| AccountKey { kind: "domain".into(), value: domain })
    }

    /// The account's name from one member's traits.
    pub fn name_of(&self, traits: &Map<String, Value>) -> Option<String> {
        self.name_traits.iter().find_map(|n| traits.get(n).and_then(text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn traits(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn a_named_account_wins_then_a_business_domain_never_free_mail() {
        let c = AccountsConfig::default();
        let key = |v: Value| c.account_of(&traits(v)).map(|k| k.id());
        assert_eq!(key(json!({"group_id": "acme-1", "account_id": "001X", "email": "a@acme.com"})), Some("group_id:acme-1".into()));
        assert_eq!(key(json!({"account_id": 42, "email": "a@acme.com"})), Some("account_id:42".into()));
        assert_eq!(key(json!({"email": "Jo.Smith@Sales.ACME.com "})), Some("domain:sales.acme.com".into()));
        for free in [
            "x@gmail.com",
            "x@live.com.au",
            "x@mail.yahoo.co.uk",
            "x@hotmail.fr",
            "x@bigpond.net.au",
            "x@optusnet.com.au",
            "x@yahoo.com.au",
        ] {
            assert_eq!(key(json!({ "email": free })), None, "{free}");
        }
        assert_eq!(key(json!({"email": "not an email"})), None);
        assert_eq!(key(json!({"email": "x@localhost"})), None);
        let custom = AccountsConfig { free_mail: vec!["family.net".into()], ..AccountsConfig::default() };
        assert_eq!(custom.account_of(&traits(json!({"email": "x@family.net"}))), None);
        let no_domains = AccountsConfig { email_domains: false, ..AccountsConfig::default() };
        assert_eq!(no_domains.account_of(&traits(json!({"email": "x@acme.com"}))), None);
        assert_eq!(c.name_of(&traits(json!({"company": "ACME Pty Ltd"}))).as_deref(), Some("ACME Pty Ltd"));
        assert_eq!(AccountKey::parse("domain:acme.com"), Some(AccountKey { kind: "domain".into(), value: "acme.com".into() }));
        assert_eq!(AccountKey::parse("acme.com"), None);
    }

    proptest::proptest! {
        #[test]
        fn any_email_text_is_judged_without_panicking(email in "\\PC*") {
            let c = AccountsConfig::default();
            let _ = c.account_of(&traits(json!({ "email": email })));
        }
    }
}
