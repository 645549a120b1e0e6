//! Declared fields: a column read with its format, or a value derived from columns by a
//! fixed sequence of steps (`[sources.NAME.fields]`). Compiled once per mapping; applied to
//! every row at ingest (where a failure rejects the row) and again when profiles are built.

use crate::mapping::lookup;
use kinship_core::{FieldSpec, FieldType, NamePart, TextCase};
use kinship_normalize::{Moment, TimeFormat, Tz, time_zone};
use regex::Regex;
use serde_json::{Map, Number, Value};
use std::borrow::Cow;
use std::collections::BTreeMap;

/// One declared field, ready to apply.
#[derive(Debug)]
pub struct FieldRule {
    pub name: String,
    read: Read,
    trim: bool,
    extract: Option<Regex>,
    split: Option<String>,
    pick: Option<(Vec<String>, bool)>,
    name_part: Option<NamePart>,
    case: Option<TextCase>,
    map: Option<ValueMap>,
    /// (multiply, divide), applied as `n * m / d` so that `61156 / 100` is exactly `611.56`.
    scale: Option<(f64, f64)>,
    minor_units: Option<String>,
    format: Option<TimeFormat>,
    pub zone: Option<Tz>,
    default: Option<Value>,
    kind: Option<FieldType>,
}

#[derive(Debug)]
enum Read {
    Path(String),
    Join(Vec<String>, String),
}

#[derive(Debug)]
struct ValueMap {
    exact: BTreeMap<String, Value>,
    folded: BTreeMap<String, Value>,
}

/// Values longer than this are not run through a regular expression or a name split: no
/// column of an export holds one, and a bound keeps a hostile row cheap.
const MAX_TRANSFORMED_BYTES: usize = 64 * 1024;

impl FieldRule {
    /// `Err` names the setting (`extract`, `timezone`, ...) and what is wrong with it.
    pub fn compile(name: &str, spec: &FieldSpec) -> Result<Self, String> {
        let setting = |key: &str, e: String| format!("fields.{name}.{key}: {e}");
        let read = match (&spec.from, &spec.join) {
            (Some(_), Some(_)) => return Err(setting("join", "set `from` (one column) or `join` (several), not both".into())),
            (_, Some(paths)) if paths.is_empty() => return Err(setting("join", "names no column".into())),
            (_, Some(paths)) => Read::Join(paths.clone(), spec.separator.clone().unwrap_or_else(|| " ".into())),
            (Some(path), None) => Read::Path(path.clone()),
            (None, None) => Read::Path(name.to_string()),
        };
        let extract = spec
            .extract
            .as_deref()
            .map(|re| {
                regex::RegexBuilder::new(re)
                    .size_limit(1 << 20)
                    .build()
                    .map_err(|e| setting("extract", format!("{re:?} is not a regular expression: {e}")))
            })
            .transpose()?;
        if spec.split.as_deref() == Some("") {
            return Err(setting("split", "is empty; give the delimiter, such as \";\"".into()));
        }
        let pick = spec.pick.as_ref().map(|p| {
            let keys: Vec<String> = p.iter().map(str::to_string).collect();
            let single = matches!(p, kinship_core::OneOrMany::One(_));
            (keys, single)
        });
        let map = spec
            .map
            .as_ref()
            .map(|m| ValueMap { exact: m.clone(), folded: m.iter().map(|(k, v)| (k.trim().to_lowercase(), v.clone())).collect() });
        let scale = match (spec.divide, spec.multiply) {
            (Some(d), _) if d == 0.0 || !d.is_finite() => return Err(setting("divide", "must be a number other than 0".into())),
            (_, Some(m)) if !m.is_finite() => return Err(setting("multiply", "must be a finite number".into())),
            (None, None) => None,
            (d, m) => Some((m.unwrap_or(1.0), d.unwrap_or(1.0))),
        };
        let format = spec.format.as_deref().map(TimeFormat::from_name).transpose().map_err(|e| setting("format", e))?;
        let zone = spec.timezone.as_deref().map(time_zone).transpose().map_err(|e| setting("timezone", e))?;
        if zone.is_some() && format.is_none() && !matches!(spec.kind, Some(FieldType::Timestamp | FieldType::Date)) {
            return Err(setting(
                "timezone",
                "applies to times; add a `format` (\"auto\" reads ISO 8601), or `type = \"timestamp\"` or `\"date\"`".into(),
            ));
        }
        Ok(Self {
            name: name.to_string(),
            read,
            trim: spec.trim.unwrap_or(true),
            extract,
            split: spec.split.clone(),
            pick,
            name_part: spec.name_part,
            case: spec.case,
            map,
            scale,
            minor_units: spec.minor_units.clone(),
            format: format.or_else(|| {
                matches!(spec.kind, Some(FieldType::Timestamp | FieldType::Date)).then_some(TimeFormat::Auto).filter(|_| zone.is_some())
            }),
            zone,
            default: spec.default.clone(),
            kind: spec.kind,
        })
    }

    /// The field's value for a row: `Ok(None)` when blank, `Err` naming the step that failed.
    pub fn apply(&self, row: &Map<String, Value>) -> Result<Option<Value>, String> {
        let raw = self.read(row);
        let fail = |step: &str, reason: String| {
            let source = match &self.read {
                Read::Path(p) => format!("`{p}`"),
                Read::Join(paths, _) => format!("`{}`", paths.join("` + `")),
            };
            let shown = raw.as_ref().map(|v| truncated(&v.to_string())).unwrap_or_else(|| "blank".into());
            format!("field `{}` (from {source} = {shown}), step `{step}`: {reason}", self.name)
        };
        let mut value = None;
        if let Some(v) = raw.as_ref().filter(|v| !is_blank(v)) {
            value = self.steps(Cow::Borrowed(v.as_ref()), row).map_err(|(step, reason)| fail(step, reason))?;
        }
        let value = match value.filter(|v| !is_blank(v)) {
            Some(v) => Some(v),
            None => self.default.clone(),
        };
        match (value, self.kind) {
            (Some(v), Some(kind)) => convert(v, kind, self.zone).map(Some).map_err(|reason| fail("type", reason)),
            (value, _) => Ok(value),
        }
    }

    fn read<'r>(&self, row: &'r Map<String, Value>) -> Option<Cow<'r, Value>> {
        match &self.read {
            Read::Path(path) => lookup(row, path).map(Cow::Borrowed),
            Read::Join(paths, separator) => {
                let parts: Vec<String> = paths
                    .iter()
                    .filter_map(|p| lookup(row, p).and_then(scalar_text))
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect();
                (!parts.is_empty()).then(|| Cow::Owned(Value::String(parts.join(separator))))
            }
        }
    }

    /// The steps after reading, in their fixed order; `Err` is (step, reason).
    fn steps(&self, mut v: Cow<'_, Value>, row: &Map<String, Value>) -> Result<Option<Value>, (&'static str, String)> {
        // Borrowed until a step changes it: a field whose value passes through is copied once.
        if self.trim
            && let Value::String(s) = v.as_ref()
            && s.trim().len() != s.len()
        {
            v = Cow::Owned(Value::String(s.trim().to_string()));
        }
        if let Some(re) = &self.extract {
            let text = bounded_text(&v).map_err(|e| ("extract", e))?;
            // The first group's span, or the match's: no `Captures` built per row.
            let mut locations = re.capture_locations();
            // A first group that took no part in the match found nothing.
            let found = re.captures_read(&mut locations, &text).and_then(|whole| {
                let (start, end) = if re.captures_len() > 1 { locations.get(1)? } else { (whole.start(), whole.end()) };
                Some(text[start..end].to_string())
            });
            match found {
                Some(found) => v = Cow::Owned(Value::String(found)),
                None if self.default.is_some() => return Ok(None),
                None => return Err(("extract", format!("does not match /{}/; add a `default` for rows without it", re.as_str()))),
            }
        }
        if let Some(delimiter) = &self.split {
            let text = bounded_text(&v).map_err(|e| ("split", e))?;
            v = Cow::Owned(Value::Array(
                text.split(delimiter.as_str()).map(str::trim).filter(|s| !s.is_empty()).map(|s| Value::String(s.into())).collect(),
            ));
        }
        if let Some((keys, single)) = &self.pick {
            v = Cow::Owned(pick(v.into_owned(), keys, *single).map_err(|e| ("pick", e))?);
        }
        if let Some(part) = self.name_part {
            let text = bounded_text(&v).map_err(|e| ("name_part", e))?;
            match split_name(&text).part(part) {
                Some(p) => v = Cow::Owned(Value::String(p.to_string())),
                None => return Ok(None),
            }
        }
        if let Some(case) = self.case {
            let change = |s: &str| match case {
                TextCase::Lower => s.to_lowercase(),
                TextCase::Upper => s.to_uppercase(),
                TextCase::Title => title_case(s),
            };
            v = Cow::Owned(match v.as_ref() {
                Value::String(s) => Value::String(change(s)),
                _ => map_strings(v.into_owned(), &change),
            });
        }
        if let Some(map) = &self.map {
            let key = scalar_text(&v).ok_or_else(|| ("map", "only single values can be mapped".to_string()))?;
            let key = key.trim();
            match map.exact.get(key).or_else(|| map.folded.get(&key.to_lowercase())) {
                Some(mapped) => v = Cow::Owned(mapped.clone()),
                None if self.default.is_some() => return Ok(None),
                None => {
                    let listed: Vec<&str> = map.exact.keys().map(String::as_str).take(12).collect();
                    return Err(("map", format!("{key:?} is not listed (listed: {}); add it, or a `default`", listed.join(", "))));
                }
            }
        }
        if self.scale.is_some() || self.minor_units.is_some() {
            let step = if self.minor_units.is_some() && self.scale.is_none() {
                "minor_units"
            } else if self.scale.is_some_and(|(_, d)| d == 1.0) {
                "multiply"
            } else {
                "divide"
            };
            let text = scalar_text(&v).ok_or_else(|| (step, "is not a number".to_string()))?;
            let mut n = parse_amount(&text).ok_or_else(|| (step, format!("{} is not a number", truncated(&text))))?;
            if let Some((multiply, divide)) = self.scale {
                n = n * multiply / divide;
            }
            if let Some(field) = &self.minor_units {
                let code = lookup(row, field).and_then(scalar_text).unwrap_or_default();
                let digits = minor_unit_digits(&code)
                    .ok_or_else(|| ("minor_units", format!("`{field}` = {:?} is not an ISO 4217 currency code", truncated(&code))))?;
                n /= 10f64.powi(digits);
            }
            v = Cow::Owned(number(n).ok_or_else(|| (step, "the result is not a finite number".to_string()))?);
        }
        if let Some(format) = &self.format {
            let text = scalar_text(&v).ok_or_else(|| ("format", "is not a single value".to_string()))?;
            let moment = format.read(&text, self.zone).map_err(|e| ("format", format!("{e} (format {})", format.name())))?;
            v = Cow::Owned(Value::String(moment.to_text()));
        }
        Ok(Some(v.into_owned()))
    }

    /// The record's time from this field's value, with its zone for dates.
    pub fn millis(&self, text: &str) -> Result<i64, String> {
        TimeFormat::Auto.read(text, self.zone).and_then(|m| m.millis(self.zone))
    }
}

fn is_blank(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.trim().is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

fn scalar_text(v: &Value) -> Option<Cow<'_, str>> {
    match v {
        Value::String(s) => Some(Cow::Borrowed(s)),
        Value::Number(n) => Some(Cow::Owned(n.to_string())),
        Value::Bool(b) => Some(Cow::Owned(b.to_string())),
        _ => None,
    }
}

fn bounded_text(v: &Value) -> Result<Cow<'_, str>, String> {
    let text = scalar_text(v).ok_or("is not a single value")?;
    if text.len() > MAX_TRANSFORMED_BYTES {
        return Err(format!("is {} bytes long; at most {MAX_TRANSFORMED_BYTES} are transformed", text.len()));
    }
    Ok(text)
}

fn truncated(s: &str) -> String {
    match s.char_indices().nth(80) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

fn number(n: f64) -> Option<Value> {
    // Integral results stay integers, so `61100 / 100` is `611`, not `611.0`.
    if n.fract() == 0.0 && n.abs() < 9.0e15 {
        return Some(Value::Number(Number::from(n as i64)));
    }
    Number::from_f64(n).map(Value::Number)
}

/// A number as exports write amounts: `611.56`, `1,234.50`, `$1,234.50`, `EUR 12`.
pub fn parse_amount(text: &str) -> Option<f64> {
    let s = text.trim();
    let s = s.trim_start_matches(|c: char| c.is_alphabetic() || matches!(c, '$' | '€' | '£' | '¥' | '₹') || c.is_whitespace());
    let s = s.trim_end_matches(|c: char| c.is_alphabetic() || c.is_whitespace());
    let grouped = |s: &str| {
        let (whole, fraction) = s.split_once('.').unwrap_or((s, ""));
        let whole = whole.strip_prefix('-').unwrap_or(whole);
        let groups: Vec<&str> = whole.split(',').collect();
        groups.len() > 1
            && (1..=3).contains(&groups[0].len())
            && groups[1..].iter().all(|g| g.len() == 3)
            && groups.iter().all(|g| g.bytes().all(|b| b.is_ascii_digit()))
            && fraction.bytes().all(|b| b.is_ascii_digit())
    };
    let plain = if grouped(s) { s.replace(',', "") } else { s.to_string() };
    plain.parse::<f64>().ok().filter(|n| n.is_finite())
}

/// Decimal places of a currency's minor unit (ISO 4217); `None` for what is not a code.
fn minor_unit_digits(code: &str) -> Option<i32> {
    let code = code.trim().to_ascii_uppercase();
    if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_uppercase()) {
        return None;
    }
    Some(match code.as_str() {
        "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF" | "UGX" | "UYI" | "VND" | "VUV" | "XAF" | "XOF"
        | "XPF" => 0,
        "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
        "CLF" | "UYW" => 4,
        _ => 2,
    })
}

fn pick(v: Value, keys: &[String], single: bool) -> Result<Value, String> {
    let items = match v {
        Value::Array(items) => items,
        Value::String(s) if s.trim_start().starts_with('[') => match serde_json::from_str::<Value>(&s) {
            Ok(Value::Array(items)) => items,
            _ => return Err("is text that is not a JSON array".into()),
        },
        Value::Object(_) => vec![v],
        _ => return Err("is not a list of objects".into()),
    };
    items
        .into_iter()
        .map(|item| {
            let Value::Object(object) = item else {
                return Err("holds an item that is not an object".to_string());
            };
            if single {
                return Ok(lookup(&object, &keys[0]).cloned().unwrap_or(Value::Null));
            }
            Ok(Value::Object(keys.iter().filter_map(|k| Some((k.clone(), lookup(&object, k)?.clone()))).collect()))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Value::Array)
}

fn map_strings(v: Value, f: &dyn Fn(&str) -> String) -> Value {
    match v {
        Value::String(s) => Value::String(f(&s)),
        Value::Array(items) => Value::Array(items.into_iter().map(|i| map_strings(i, f)).collect()),
        other => other,
    }
}

/// `o'brien` → `O'Brien`, `JEAN-LUC` → `Jean-Luc`; a word already in mixed case
/// (`McDonald`, `DiCaprio`) is left as written.
pub fn title_case(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for (i, word) in s.split(' ').enumerate() {
        if i > 0 {
            out.push(' ');
        }
        let mixed = word.chars().any(char::is_uppercase) && word.chars().any(char::is_lowercase);
        if mixed {
            out.push_str(word);
            continue;
        }
        let mut at_start = true;
        for c in word.chars() {
            if at_start {
                out.extend(c.to_uppercase());
            } else {
                out.extend(c.to_lowercase());
            }
            at_start = !c.is_alphanumeric();
        }
    }
    out
}

/// A full name's parts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NameParts<'a> {
    pub first: Option<&'a str>,
    pub middle: Option<String>,
    pub last: Option<String>,
}

impl NameParts<'_> {
    fn part(&self, part: NamePart) -> Option<String> {
        match part {
            NamePart::First => self.first.map(str::to_string),
            NamePart::Middle => self.middle.clone(),
            NamePart::Last => self.last.clone(),
        }
    }
}

const HONORIFICS: &[&str] = &["mr", "mrs", "ms", "miss", "mx", "dr", "prof", "sir", "herr", "frau", "mme", "mlle", "m"];
const SUFFIXES: &[&str] = &["jr", "sr", "ii", "iii", "iv", "phd", "md", "esq"];
/// Lower-case words that belong to the surname after them: `van der Berg`, `de la Cruz`.
const PARTICLES: &[&str] =
    &["van", "von", "der", "den", "de", "del", "della", "la", "le", "da", "di", "dos", "das", "du", "ten", "ter", "bin", "ibn", "al"];

fn bare(word: &str) -> String {
    word.trim_end_matches(['.', ',']).to_lowercase()
}

/// Splits `First Last`, `First M. Last`, `Dr. First van Last Jr.` and `LAST, First M`.
pub fn split_name(full: &str) -> NameParts<'_> {
    if let Some((last, rest)) = full.split_once(',') {
        // Honorifics lead (`Smith, Dr. Anna`); a later `M.` is an initial.
        let rest_words: Vec<&str> = rest.split_whitespace().skip_while(|w| HONORIFICS.contains(&bare(w).as_str())).collect();
        // `Smith, Jr.` is a suffix, not a first name.
        if !rest_words.iter().all(|w| SUFFIXES.contains(&bare(w).as_str())) {
            let last = last.trim();
            let middle = rest_words[1..].iter().filter(|w| !SUFFIXES.contains(&bare(w).as_str())).copied().collect::<Vec<_>>().join(" ");
            return NameParts {
                first: rest_words.first().copied(),
                middle: (!middle.is_empty()).then_some(middle),
                last: (!last.is_empty()).then(|| last.to_string()),
            };
        }
    }
    let mut words: Vec<&str> = full.split([' ', '\t', ',']).filter(|w| !w.is_empty()).collect();
    while words.len() > 1 && HONORIFICS.contains(&bare(words[0]).as_str()) {
        words.remove(0);
    }
    while words.len() > 1 && SUFFIXES.contains(&bare(words[words.len() - 1]).as_str()) {
        words.pop();
    }
    match words.len() {
        0 => NameParts::default(),
        1 => NameParts { first: Some(words[0]), ..Default::default() },
        n => {
            let mut last_start = n - 1;
            while last_start > 1 && PARTICLES.contains(&words[last_start - 1]) {
                last_start -= 1;
            }
            let middle = words[1..last_start].join(" ");
            NameParts { first: Some(words[0]), middle: (!middle.is_empty()).then_some(middle), last: Some(words[last_start..].join(" ")) }
        }
    }
}

/// The value as `kind`; `Err` says why it is not one.
fn convert(v: Value, kind: FieldType, zone: Option<Tz>) -> Result<Value, String> {
    let text = || scalar_text(&v).ok_or_else(|| "is not a single value".to_string());
    Ok(match kind {
        FieldType::String => match &v {
            Value::String(_) => v,
            _ => Value::String(text()?.into_owned()),
        },
        FieldType::Number => match &v {
            Value::Number(_) => v,
            _ => parse_amount(&text()?).and_then(number).ok_or("is not a number")?,
        },
        FieldType::Integer => match v.as_i64() {
            Some(i) => Value::from(i),
            None => {
                let t = text()?;
                let n = parse_amount(&t).filter(|n| n.fract() == 0.0 && n.abs() < 9.0e15).ok_or("is not a whole number")?;
                Value::from(n as i64)
            }
        },
        FieldType::Boolean => match &v {
            Value::Bool(_) => v,
            _ => Value::Bool(match text()?.trim().to_lowercase().as_str() {
                "true" | "yes" | "y" | "1" | "on" | "t" => true,
                "false" | "no" | "n" | "0" | "off" | "f" => false,
                other => return Err(format!("{:?} is not true/false, yes/no or 1/0; map it with `map`", truncated(other))),
            }),
        },
        FieldType::Date => {
            let t = text()?;
            match TimeFormat::Auto.read(&t, zone)? {
                Moment::Date(d) => Value::String(d.to_string()),
                // A time's date where it happened: in its zone, or UTC.
                Moment::Instant(ms) => {
                    let utc = chrono::DateTime::from_timestamp_millis(ms).ok_or("is out of range")?;
                    Value::String(zone.map_or(utc.date_naive(), |z| utc.with_timezone(&z).date_naive()).to_string())
                }
            }
        }
        FieldType::Timestamp => {
            let t = text()?;
            let moment = TimeFormat::Auto.read(&t, zone)?;
            Value::String(Moment::Instant(moment.millis(zone)?).to_text())
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule(spec: Value) -> FieldRule {
        let spec: FieldSpec = serde_json::from_value(spec).unwrap();
        FieldRule::compile("out", &spec).unwrap()
    }

    fn apply(spec: Value, row: Value) -> Result<Option<Value>, String> {
        rule(spec).apply(row.as_object().unwrap())
    }

    #[test]
    fn amounts_in_cents_and_minor_units() {
        assert_eq!(apply(json!({"from": "a", "divide": 100}), json!({"a": "61156"})), Ok(Some(json!(611.56))));
        assert_eq!(apply(json!({"from": "a", "divide": 100}), json!({"a": 61100})), Ok(Some(json!(611))));
        assert_eq!(apply(json!({"from": "a", "minor_units": "cur"}), json!({"a": 500, "cur": "jpy"})), Ok(Some(json!(500))));
        assert_eq!(apply(json!({"from": "a", "minor_units": "cur"}), json!({"a": 1500, "cur": "KWD"})), Ok(Some(json!(1.5))));
        assert_eq!(apply(json!({"from": "a", "type": "number"}), json!({"a": "$1,234.50"})), Ok(Some(json!(1234.5))));
        let err = apply(json!({"from": "a", "divide": 100}), json!({"a": "twelve"})).unwrap_err();
        assert!(err.contains("field `out`") && err.contains("step `divide`") && err.contains("twelve"), "{err}");
        let err = apply(json!({"from": "a", "minor_units": "cur"}), json!({"a": 1, "cur": "dollars"})).unwrap_err();
        assert!(err.contains("step `minor_units`"), "{err}");
    }

    #[test]
    fn names_split_in_every_written_order() {
        let parts = |s: &str| {
            let p = split_name(s);
            (p.first.map(str::to_string), p.middle, p.last)
        };
        let some = |s: &str| Some(s.to_string());
        assert_eq!(parts("GARCÍA, María José"), (some("María"), some("José"), some("GARCÍA")));
        assert_eq!(parts("Ada Lovelace"), (some("Ada"), None, some("Lovelace")));
        assert_eq!(parts("John F. Kennedy"), (some("John"), some("F."), some("Kennedy")));
        assert_eq!(parts("KENNEDY, John M."), (some("John"), some("M."), some("KENNEDY")), "an initial, not an honorific");
        assert_eq!(parts("Dr. Ludwig van Beethoven Jr."), (some("Ludwig"), None, some("van Beethoven")));
        assert_eq!(parts("Anna de la Cruz"), (some("Anna"), None, some("de la Cruz")));
        assert_eq!(parts("Cher"), (some("Cher"), None, None));
        assert_eq!(
            apply(json!({"from": "n", "name_part": "last", "case": "title"}), json!({"n": "O'BRIEN, Seán"})),
            Ok(Some(json!("O'Brien")))
        );
        assert_eq!(apply(json!({"from": "n", "name_part": "last"}), json!({"n": "Cher"})), Ok(None));
    }

    #[test]
    fn value_maps_with_and_without_a_default() {
        let yes_no = json!({"from": "u", "map": {"yes": true, "no": false}});
        assert_eq!(apply(yes_no.clone(), json!({"u": "Yes"})), Ok(Some(json!(true))));
        assert_eq!(apply(yes_no.clone(), json!({"u": "no"})), Ok(Some(json!(false))));
        assert_eq!(apply(yes_no.clone(), json!({"u": ""})), Ok(None));
        let err = apply(yes_no, json!({"u": "maybe"})).unwrap_err();
        assert!(err.contains("step `map`") && err.contains("maybe"), "{err}");
        let status = json!({"from": "s", "map": {"Closed Won": "won", "Closed Lost": "lost"}, "default": "open"});
        assert_eq!(apply(status.clone(), json!({"s": "closed won"})), Ok(Some(json!("won"))));
        assert_eq!(apply(status, json!({"s": "Negotiation"})), Ok(Some(json!("open"))));
    }

    #[test]
    fn join_extract_split_pick_and_types() {
        assert_eq!(apply(json!({"join": ["f", "l"]}), json!({"f": " Ada ", "l": "Lovelace"})), Ok(Some(json!("Ada Lovelace"))));
        assert_eq!(apply(json!({"join": ["f", "l"], "separator": "|"}), json!({"l": "Lovelace"})), Ok(Some(json!("Lovelace"))));
        assert_eq!(apply(json!({"from": "r", "extract": "ORD-(\\d+)"}), json!({"r": "see ORD-00123 now"})), Ok(Some(json!("00123"))));
        let err = apply(json!({"from": "r", "extract": "ORD-(\\d+)"}), json!({"r": "none"})).unwrap_err();
        assert!(err.contains("step `extract`"), "{err}");
        assert_eq!(apply(json!({"from": "r", "extract": "ORD-(\\d+)", "default": "-"}), json!({"r": "none"})), Ok(Some(json!("-"))));
        assert_eq!(
            apply(json!({"from": "r", "extract": "x|(y)", "default": "-"}), json!({"r": "x"})),
            Ok(Some(json!("-"))),
            "an empty group"
        );
        assert!(apply(json!({"from": "a", "multiply": 2}), json!({"a": "two"})).unwrap_err().contains("step `multiply`"));
        let stripe = json!({"lines": [{"price": {"product": "prod_1"}, "quantity": 2}]});
        assert_eq!(apply(json!({"from": "lines", "pick": "price.product"}), stripe), Ok(Some(json!(["prod_1"]))));
        assert_eq!(title_case("mcdonald McDonald O'BRIEN"), "Mcdonald McDonald O'Brien");
        assert_eq!(
            apply(json!({"from": "t", "split": ";", "case": "lower"}), json!({"t": "VIP; Wholesale;"})),
            Ok(Some(json!(["vip", "wholesale"])))
        );
        let items = json!({"li": [{"sku": "A-1", "quantity": 2, "price": 3}, {"sku": "B-2", "quantity": 1}]});
        assert_eq!(apply(json!({"from": "li", "pick": "sku"}), items.clone()), Ok(Some(json!(["A-1", "B-2"]))));
        assert_eq!(
            apply(json!({"from": "li", "pick": ["sku", "quantity"]}), items),
            Ok(Some(json!([{"sku": "A-1", "quantity": 2}, {"sku": "B-2", "quantity": 1}])))
        );
        assert_eq!(apply(json!({"from": "li", "pick": "sku"}), json!({"li": "[{\"sku\":\"C\"}]"})), Ok(Some(json!(["C"]))));
        assert!(apply(json!({"from": "li", "pick": "sku"}), json!({"li": "not a list"})).unwrap_err().contains("step `pick`"));
        assert!(apply(json!({"from": "li", "pick": "sku"}), json!({"li": [1, 2]})).unwrap_err().contains("not an object"));
        assert!(apply(json!({"from": "li", "map": {"a": 1}}), json!({"li": [1]})).unwrap_err().contains("step `map`"));
        let long = "x".repeat(MAX_TRANSFORMED_BYTES + 1);
        assert!(apply(json!({"from": "r", "extract": "x"}), json!({"r": long})).unwrap_err().contains("at most"));
        assert_eq!(apply(json!({"from": "b", "type": "boolean"}), json!({"b": "Y"})), Ok(Some(json!(true))));
        assert!(apply(json!({"from": "b", "type": "boolean"}), json!({"b": "perhaps"})).unwrap_err().contains("step `type`"));
        assert_eq!(apply(json!({"from": "n", "type": "integer"}), json!({"n": "1,200"})), Ok(Some(json!(1200))));
        assert_eq!(apply(json!({"from": "x", "default": "none"}), json!({"x": " "})), Ok(Some(json!("none"))));
    }

    #[test]
    fn formats_and_zones() {
        let f = json!({"from": "d", "format": "day_first"});
        assert_eq!(apply(f.clone(), json!({"d": "15/09/2026"})), Ok(Some(json!("2026-09-15"))));
        let err = apply(f, json!({"d": "2026-09-15"})).unwrap_err();
        assert!(err.contains("step `format`") && err.contains("day_first") && err.contains("2026-09-15"), "{err}");
        let sf = json!({"from": "c", "format": "salesforce"});
        assert_eq!(apply(sf, json!({"c": "2026-02-18T12:00:00.000+0000"})), Ok(Some(json!("2026-02-18T12:00:00.000Z"))));
        let local = json!({"from": "c", "format": "%d.%m.%Y %H:%M", "timezone": "Europe/Berlin"});
        assert_eq!(apply(local, json!({"c": "18.02.2026 13:00"})), Ok(Some(json!("2026-02-18T12:00:00.000Z"))));
        let date = rule(json!({"from": "d", "format": "day_first", "timezone": "Europe/Berlin"}));
        assert_eq!(date.millis("2026-02-18"), Ok(1_771_369_200_000));
        // 23:30 UTC is the next day in Sydney.
        let local = json!({"from": "t", "type": "date", "timezone": "Australia/Sydney"});
        assert_eq!(apply(local, json!({"t": "2026-02-18T23:30:00Z"})), Ok(Some(json!("2026-02-19"))));
        assert!(apply(json!({"from": "d", "type": "date"}), json!({"d": "03/04/2026"})).is_err(), "a slashed date needs its format");
    }

    #[test]
    fn bad_settings_name_the_setting() {
        let compile = |spec: Value| FieldRule::compile("amount", &serde_json::from_value(spec).unwrap()).unwrap_err();
        assert!(compile(json!({"extract": "("})).starts_with("fields.amount.extract"));
        assert!(compile(json!({"timezone": "Moon/Base", "format": "auto"})).starts_with("fields.amount.timezone"));
        assert!(compile(json!({"format": "yyyy"})).starts_with("fields.amount.format"));
        assert!(compile(json!({"divide": 0})).starts_with("fields.amount.divide"));
        assert!(compile(json!({"from": "a", "join": ["b"]})).starts_with("fields.amount.join"));
        assert!(compile(json!({"timezone": "UTC"})).contains("add a `format`"));
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    /// Every step, and every combination the mapping allows, over arbitrary text.
    fn every_rule() -> Vec<FieldRule> {
        let specs = [
            json!({"from": "v", "extract": "(\\w+)@", "case": "title"}),
            json!({"from": "v", "split": ";", "case": "upper"}),
            json!({"from": "v", "pick": ["sku", "quantity"]}),
            json!({"from": "v", "name_part": "last"}),
            json!({"from": "v", "name_part": "middle", "case": "lower"}),
            json!({"from": "v", "map": {"yes": true, "nö": false}, "default": null}),
            json!({"from": "v", "divide": 100, "minor_units": "w"}),
            json!({"from": "v", "format": "day_first", "timezone": "Europe/Berlin"}),
            json!({"from": "v", "format": "month_first"}),
            json!({"from": "v", "format": "salesforce"}),
            json!({"from": "v", "format": "%d %b %Y %H:%M %z"}),
            json!({"from": "v", "format": "unix_ms"}),
            json!({"join": ["v", "w"], "type": "timestamp", "timezone": "America/New_York"}),
            json!({"from": "v", "type": "integer"}),
            json!({"from": "v", "type": "boolean"}),
            json!({"from": "v", "type": "date"}),
            json!({"from": "v", "type": "number"}),
        ];
        specs.into_iter().map(|s| FieldRule::compile("out", &serde_json::from_value(s).unwrap()).unwrap()).collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]
        #[test]
        fn no_value_panics_a_transform(v in any::<String>(), w in "\\PC{0,12}|[A-Za-z]{3}", prefix in prop::sample::select(vec!["", "GARCÍA, ", "[{\"sku\":", "15/09/", "Dr. ", "\u{202e}", "\0", "e\u{301}"])) {
            let value = format!("{prefix}{v}");
            let row = json!({"v": value, "w": w});
            for rule in every_rule() {
                let _ = rule.apply(row.as_object().unwrap());
            }
            let _ = split_name(&value);
            let _ = parse_amount(&value);
            let _ = title_case(&value);
        }
    }
}
