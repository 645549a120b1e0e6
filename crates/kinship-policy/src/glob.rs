//! Name patterns for trait fields, identifier kinds, event names and properties.

/// A case-insensitive pattern: `*` matches any run of characters (dots included, so
/// `address*` covers `address.city`), `?` exactly one. Case is ignored so that a rule for
/// `email` also covers a source column called `Email`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Glob {
    pattern: Vec<char>,
}

impl Glob {
    pub(crate) fn new(pattern: &str) -> Glob {
        Glob { pattern: pattern.to_lowercase().chars().collect() }
    }

    /// How many characters the pattern pins down; the more, the more specific the rule.
    pub(crate) fn literal_len(&self) -> usize {
        self.pattern.iter().filter(|&&c| c != '*' && c != '?').count()
    }

    pub(crate) fn is_literal(&self) -> bool {
        self.literal_len() == self.pattern.len()
    }

    /// Whether the pattern is only `*`s, so matches any name.
    pub(crate) fn matches_everything(&self) -> bool {
        !self.pattern.is_empty() && self.pattern.iter().all(|&c| c == '*')
    }

    pub(crate) fn matches(&self, name: &str) -> bool {
        let name: Vec<char> = name.to_lowercase().chars().collect();
        let pattern = &self.pattern;
        let (mut p, mut n) = (0, 0);
        // Where the last `*` was and how much of the name it has swallowed, to backtrack to.
        let mut star: Option<(usize, usize)> = None;
        while n < name.len() {
            if p < pattern.len() && (pattern[p] == '?' || pattern[p] == name[n]) {
                p += 1;
                n += 1;
            } else if p < pattern.len() && pattern[p] == '*' {
                star = Some((p, n));
                p += 1;
            } else if let Some((star_p, star_n)) = star {
                p = star_p + 1;
                n = star_n + 1;
                star = Some((star_p, star_n + 1));
            } else {
                return false;
            }
        }
        pattern[p..].iter().all(|&c| c == '*')
    }
}

#[cfg(test)]
mod tests {
    use super::Glob;

    #[test]
    fn wildcards_and_case() {
        let cases = [
            ("email", "Email", true),
            ("email", "emails", false),
            ("*_score", "lead_score", true),
            ("*_score", "score", false),
            ("address*", "address.city", true),
            ("*email*", "billing_email", true),
            ("Order *", "order completed", true),
            ("Order *", "Ordered", false),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("*", "", true),
            ("", "", true),
            ("", "x", false),
            ("*a*b", "xaxxb", true),
            ("*a*b", "xaxxbc", false),
        ];
        for (pattern, name, expected) in cases {
            assert_eq!(Glob::new(pattern).matches(name), expected, "{pattern:?} against {name:?}");
        }
    }

    #[test]
    fn specificity() {
        assert!(Glob::new("email").is_literal());
        assert!(!Glob::new("*_score").is_literal());
        assert_eq!(Glob::new("*_score").literal_len(), 6);
    }
}
