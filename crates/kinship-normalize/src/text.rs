use unicode_normalization::UnicodeNormalization;

/// Folds free text for comparison: Unicode compatibility decomposition, accents removed,
/// lower case, punctuation to spaces, runs of whitespace collapsed. "  Zoë  O'Brien-Smith"
/// becomes "zoe o brien smith".
pub fn fold(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut pending_space = false;
    for c in raw.nfkd() {
        if unicode_normalization::char::is_combining_mark(c) {
            continue;
        }
        if c.is_alphanumeric() {
            if pending_space && !out.is_empty() {
                out.push(' ');
            }
            pending_space = false;
            out.extend(c.to_lowercase());
        } else {
            pending_space = true;
        }
    }
    out
}

/// Street-type and direction abbreviations, as postal services write them.
const ADDRESS_WORDS: &[(&str, &str)] = &[
    ("st", "street"),
    ("str", "street"),
    ("rd", "road"),
    ("ave", "avenue"),
    ("av", "avenue"),
    ("blvd", "boulevard"),
    ("dr", "drive"),
    ("ln", "lane"),
    ("ct", "court"),
    ("pl", "place"),
    ("cres", "crescent"),
    ("cr", "crescent"),
    ("hwy", "highway"),
    ("pde", "parade"),
    ("tce", "terrace"),
    ("sq", "square"),
    ("cl", "close"),
    ("cct", "circuit"),
    ("apt", "apartment"),
    ("ste", "suite"),
    ("fl", "floor"),
    ("n", "north"),
    ("s", "south"),
    ("e", "east"),
    ("w", "west"),
    ("mt", "mount"),
    ("pk", "park"),
    ("gr", "grove"),
    ("wy", "way"),
];

/// Folds an address and expands common abbreviations: "12 Smith St." and "12 smith street"
/// become equal.
pub fn normalize_address(raw: &str) -> String {
    fold(raw)
        .split(' ')
        .map(|w| ADDRESS_WORDS.iter().find(|(short, _)| *short == w).map_or(w, |(_, long)| long))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folding() {
        assert_eq!(fold("  Zoë  O'Brien-Smith "), "zoe o brien smith");
        assert_eq!(fold("ÅNGSTRÖM"), "angstrom");
        assert_eq!(fold("ﬁne"), "fine", "compatibility ligature");
        assert_eq!(fold("..."), "");
    }

    #[test]
    fn addresses() {
        assert_eq!(normalize_address("12 Smith St."), "12 smith street");
        assert_eq!(normalize_address("12 SMITH STREET"), "12 smith street");
        assert_eq!(normalize_address("Apt 4, 7 N. Main Rd"), "apartment 4 7 north main road");
        assert_eq!(normalize_address("5 Stanley Ave"), "5 stanley avenue", "a word starting with an abbreviation stays");
    }
}
