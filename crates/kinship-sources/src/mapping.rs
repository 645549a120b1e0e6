//! A source's mapping: which fields are the key, identifiers, traits, the event name, its
//! time and properties. Applied at ingest to validate and extract identifiers, and again when
//! profiles are built, so a changed mapping takes effect on re-resolution.

use crate::transform::FieldRule;
use kinship_core::{FieldType, Identifier, ResolveConfig, SourceConfig, SourceType};
use kinship_normalize::{parse_date, parse_timestamp_ms};
use phonenumber::country::Id as Region;
use serde_json::{Map, Value};
use std::borrow::Cow;

pub struct Mapper<'a> {
    config: &'a SourceConfig,
    region: Region,
    /// `[sources.NAME.fields]`, compiled.
    fields: Vec<FieldRule>,
}

/// A row as the mapping sees it: its columns, with declared fields over them.
struct View<'r, 'm> {
    raw: &'r Map<String, Value>,
    /// Each declared field's value; `Null` when blank, hiding a column of the same name.
    /// A list: mappings declare a handful of fields, and a map would allocate every name.
    declared: Vec<(&'m str, Value)>,
}

impl View<'_, '_> {
    fn get(&self, path: &str) -> Option<&Value> {
        match self.declared.iter().find(|(name, _)| *name == path) {
            Some((_, v)) => Some(v),
            None => lookup(self.raw, path),
        }
    }

    fn text(&self, path: &str) -> Option<Cow<'_, str>> {
        scalar_text(self.get(path)?)
    }

    /// Every field: the columns with declared fields over them, blanks left out.
    fn all(&self) -> Map<String, Value> {
        let mut all = self.raw.clone();
        for (name, v) in &self.declared {
            if v.is_null() {
                all.remove(*name);
            } else {
                all.insert(name.to_string(), v.clone());
            }
        }
        all
    }
}

/// What ingest keeps of a row besides its payload.
#[derive(Debug, Clone, PartialEq)]
pub struct Mapped {
    pub key: String,
    pub identifiers: Vec<Identifier>,
    pub timestamp: Option<i64>,
    /// Identifier values present but not valid for their kind (an email without '@').
    pub invalid_identifiers: u32,
}

/// An event as it appears on a timeline.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct MappedEvent {
    pub event: String,
    pub properties: Map<String, Value>,
}

impl<'a> Mapper<'a> {
    pub fn new(config: &'a SourceConfig, resolve: &ResolveConfig) -> Result<Self, String> {
        let region = kinship_normalize::region(&resolve.default_region).ok_or_else(|| {
            format!("resolve.default_region = {:?} is not a region code; use one such as \"US\" or \"AU\"", resolve.default_region)
        })?;
        let fields = config.fields.iter().map(|(name, spec)| FieldRule::compile(name, spec)).collect::<Result<_, _>>()?;
        Ok(Self { config, region, fields })
    }

    /// The row with its declared fields; `Err` names the field and step that failed.
    fn view<'r>(&self, raw: &'r Map<String, Value>) -> Result<View<'r, '_>, String> {
        let mut declared = Vec::with_capacity(self.fields.len());
        for rule in &self.fields {
            declared.push((rule.name.as_str(), rule.apply(raw)?.unwrap_or(Value::Null)));
        }
        Ok(View { raw, declared })
    }

    /// The view for building profiles and timelines: a row stored before its mapping
    /// changed may fail a new step, and then that field alone is blank.
    fn lenient_view<'r>(&self, raw: &'r Map<String, Value>) -> View<'r, '_> {
        let declared = self.fields.iter().map(|rule| (rule.name.as_str(), rule.apply(raw).ok().flatten().unwrap_or(Value::Null))).collect();
        View { raw, declared }
    }

    pub fn is_event_source(&self) -> bool {
        self.config.event.is_some()
    }

    /// Validates a row and extracts its key, identifiers and time; `Err` is the reject reason.
    pub fn map(&self, fields: &Map<String, Value>, payload: &str) -> Result<Mapped, String> {
        let row = self.view(fields)?;
        let key = match &self.config.key {
            Some(field) => {
                let key = row.text(field).ok_or_else(|| format!("missing the key field `{field}`"))?;
                match &self.config.cursor {
                    // The log is append-only and keyed: each version of a row pulled by a
                    // cursor is a record of its own, so an update's traits reach the profile.
                    Some(cursor) => {
                        let version = row.text(cursor).ok_or_else(|| format!("missing the cursor field `{cursor}`"))?;
                        format!("{key}@{version}")
                    }
                    None => key.into_owned(),
                }
            }
            None => blake3::hash(payload.as_bytes()).to_hex()[..32].to_string(),
        };
        if key.len() > 512 {
            return Err(format!("the key is {} bytes long; keys may be at most 512", key.len()));
        }
        for (field, ty) in &self.config.types {
            if let Some(v) = row.get(field).filter(|v| !is_blank(v))
                && !conforms(v, *ty)
            {
                return Err(format!("field `{field}` = {v} is not a {}", type_name(*ty)));
            }
        }
        let timestamp = match &self.config.timestamp {
            Some(field) => match row.text(field) {
                Some(t) => Some(match self.fields.iter().find(|rule| &rule.name == field) {
                    Some(rule) => rule.millis(&t).map_err(|e| format!("field `{field}` = {t:?}: {e}"))?,
                    None => parse_timestamp_ms(&t).ok_or_else(|| {
                        format!(
                            "field `{field}` = {t:?} is not a timestamp (read without being told: RFC 3339, ISO 8601 with any offset, YYYY-MM-DD, Unix seconds); declare how it is written, e.g. fields.{field} = {{ format = \"day_first\" }}"
                        )
                    })?,
                }),
                None if self.is_event_source() => return Err(format!("missing the timestamp field `{field}`")),
                None => None,
            },
            None => None,
        };
        if let Some(ev) = &self.config.event
            && let Some(field) = &ev.field
        {
            row.text(field).ok_or_else(|| format!("missing the event name field `{field}`"))?;
        }
        let mut identifiers = Vec::new();
        let mut invalid_identifiers = 0;
        for (kind, paths) in &self.config.identifiers {
            for path in paths.iter() {
                if let Some(raw) = row.text(path) {
                    match kinship_normalize::identifier(kind, &raw, self.region) {
                        Some(value) => identifiers.push(Identifier::new(kind.as_str(), value)),
                        None => invalid_identifiers += 1,
                    }
                }
            }
        }
        Ok(Mapped { key, identifiers, timestamp, invalid_identifiers })
    }

    /// The row's mapped traits, trimmed; blanks are absent.
    pub fn traits(&self, fields: &Map<String, Value>) -> Vec<(Cow<'a, str>, Value)> {
        if self.config.kind == SourceType::Segment {
            return crate::segment::traits(fields).into_iter().map(|(k, v)| (Cow::Owned(k), v)).collect();
        }
        let row = self.lenient_view(fields);
        self.config
            .traits
            .iter()
            .filter_map(|(name, path)| {
                let v = row.get(path)?;
                let v = match v {
                    Value::String(s) => Value::String(s.trim().to_string()),
                    other => other.clone(),
                };
                (!is_blank(&v)).then_some((Cow::Borrowed(name.as_str()), v))
            })
            .collect()
    }

    /// The row as an event, for event sources.
    /// Properties named `$document…` are left out: only [`Mapper::record_event`] writes
    /// them, from the source's document mapping, so no sender can forge an invoice.
    pub fn event(&self, fields: &Map<String, Value>) -> Option<MappedEvent> {
        let mut mapped = self.mapped_event(fields)?;
        mapped.properties.retain(|name, _| !name.starts_with(DOCUMENT_PROPERTY));
        Some(mapped)
    }

    /// A stored record's event: [`Mapper::event`], and when the source maps documents, the
    /// record's document facts under `$document` (with the source, so two systems' invoice
    /// 1001 stay two), for `overdue invoices` in expressions. `time` is the record's own
    /// time, from which a mapping without a date dates the document.
    pub fn record_event(&self, source: &str, fields: &Map<String, Value>, time_ms: Option<i64>) -> Option<MappedEvent> {
        let mut mapped = self.event(fields)?;
        if let Some(document) = &self.config.document {
            let key = self.config.key.as_deref().and_then(|k| lookup(fields, k)).and_then(scalar_text).unwrap_or_default();
            if let Some(facts) = document.event_property(source, &key, fields, time_ms.map(|t| t.div_euclid(1000))) {
                mapped.properties.insert(DOCUMENT_PROPERTY.to_string(), facts);
            }
        }
        Some(mapped)
    }

    fn mapped_event(&self, fields: &Map<String, Value>) -> Option<MappedEvent> {
        if self.config.kind == SourceType::Segment {
            let (event, properties) = crate::segment::event(fields)?;
            return Some(MappedEvent { event, properties });
        }
        let ev = self.config.event.as_ref()?;
        let row = self.lenient_view(fields);
        let event = match (&ev.name, &ev.field) {
            (Some(name), _) => name.clone(),
            (None, Some(field)) => row.text(field)?.into_owned(),
            (None, None) => return None,
        };
        let properties = match &self.config.properties {
            Some(list) => list.iter().filter_map(|p| Some((p.clone(), row.get(p).filter(|v| !v.is_null())?.clone()))).collect(),
            None if self.fields.is_empty() => fields.clone(),
            None => row.all(),
        };
        Some(MappedEvent { event, properties })
    }
}

/// The event property a record's document facts go under; the expression language reads it
/// (`kinship_expr::DOCUMENT_PROPERTY`, which this must equal: a test holds them together).
pub const DOCUMENT_PROPERTY: &str = "$document";

/// A field by name, or by a dotted path into nested objects (`customer.email`).
pub fn lookup<'v>(fields: &'v Map<String, Value>, path: &str) -> Option<&'v Value> {
    if let Some(v) = fields.get(path) {
        return Some(v);
    }
    let mut parts = path.split('.');
    let mut v = fields.get(parts.next()?)?;
    for part in parts {
        v = v.as_object()?.get(part)?;
    }
    Some(v)
}

/// A scalar as trimmed text; `None` when blank or not a scalar.
fn scalar_text(v: &Value) -> Option<Cow<'_, str>> {
    match v {
        Value::String(s) if !s.trim().is_empty() => Some(Cow::Borrowed(s.trim())),
        Value::Number(n) => Some(Cow::Owned(n.to_string())),
        Value::Bool(b) => Some(Cow::Owned(b.to_string())),
        _ => None,
    }
}

fn is_blank(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.trim().is_empty(),
        _ => false,
    }
}

fn conforms(v: &Value, ty: FieldType) -> bool {
    let s = match v {
        Value::String(s) => s.trim(),
        Value::Number(n) => {
            return matches!(ty, FieldType::Number | FieldType::Timestamp)
                || (ty == FieldType::Integer && n.is_i64())
                || ty == FieldType::String;
        }
        Value::Bool(_) => return matches!(ty, FieldType::Boolean | FieldType::String),
        _ => return false,
    };
    match ty {
        FieldType::String => true,
        FieldType::Number => s.parse::<f64>().is_ok_and(f64::is_finite),
        FieldType::Integer => s.parse::<i64>().is_ok(),
        FieldType::Boolean => matches!(s.to_ascii_lowercase().as_str(), "true" | "false" | "yes" | "no" | "1" | "0"),
        FieldType::Date => parse_date(s).is_some(),
        FieldType::Timestamp => parse_timestamp_ms(s).is_some(),
    }
}

fn type_name(ty: FieldType) -> &'static str {
    match ty {
        FieldType::String => "string",
        FieldType::Number => "number",
        FieldType::Integer => "whole number",
        FieldType::Boolean => "boolean (true/false)",
        FieldType::Date => "date",
        FieldType::Timestamp => "timestamp",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn mapper_of(config: &SourceConfig) -> Mapper<'_> {
        Mapper::new(config, &ResolveConfig::default()).unwrap()
    }

    /// Only the source's own document mapping writes `$document`: a sender's is dropped, so
    /// no one can make a customer owe an invoice by posting one.
    #[test]
    fn document_facts_come_from_the_mapping_never_from_the_sender() {
        let segment: SourceConfig = serde_json::from_value(json!({"type": "segment"})).unwrap();
        let forged = json!({"type": "track", "event": "Invoice Issued", "properties": {
            "$document": {"kind": "invoice", "number": "X", "status": "overdue"}, "$document.status": "overdue", "amount": 5,
        }});
        let event = mapper_of(&segment).record_event("web", forged.as_object().unwrap(), Some(0)).unwrap();
        assert_eq!(event.properties.keys().collect::<Vec<_>>(), ["amount"], "{:?}", event.properties);

        let invoices: SourceConfig = serde_json::from_value(json!({
            "type": "csv", "path": "invoices.csv", "key": "invoice_id", "event": {"name": "Invoice Issued"},
            "document": {"kind": "invoice", "paid": "paid_at", "terms_days": 14},
        }))
        .unwrap();
        let row = json!({"invoice_id": "INV-7", "amount": "12.00", "paid_at": ""});
        // No date field: the record's own time dates it, and it is due 14 days later.
        let event = mapper_of(&invoices).record_event("billing", row.as_object().unwrap(), Some(86_400_000)).unwrap();
        assert_eq!(
            event.properties[DOCUMENT_PROPERTY],
            json!({"source": "billing", "kind": "invoice", "number": "INV-7", "status": "invoiced", "due": 15 * 86_400_000i64})
        );
        assert_eq!(DOCUMENT_PROPERTY, kinship_expr::DOCUMENT_PROPERTY, "written where the expression language reads it");
    }
}
