//! A source's mapping: which fields are the key, identifiers, traits, the event name, its
//! time and properties. Applied at ingest to validate and extract identifiers, and again when
//! profiles are built, so a changed mapping takes effect on re-resolution.

use kinship_core::{FieldType, Identifier, ResolveConfig, SourceConfig, SourceType};
use kinship_normalize::{parse_date, parse_timestamp_ms};
use phonenumber::country::Id as Region;
use serde_json::{Map, Value};
use std::borrow::Cow;

pub struct Mapper<'a> {
    config: &'a SourceConfig,
    region: Region,
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
        Ok(Self { config, region })
    }

    pub fn is_event_source(&self) -> bool {
        self.config.event.is_some()
    }

    /// Validates a row and extracts its key, identifiers and time; `Err` is the reject reason.
    pub fn map(&self, fields: &Map<String, Value>, payload: &str) -> Result<Mapped, String> {
        let key = match &self.config.key {
            Some(field) => {
                let key = text(fields, field).ok_or_else(|| format!("missing the key field `{field}`"))?;
                match &self.config.cursor {
                    // The log is append-only and keyed: each version of a row pulled by a
                    // cursor is a record of its own, so an update's traits reach the profile.
                    Some(cursor) => {
                        let version = text(fields, cursor).ok_or_else(|| format!("missing the cursor field `{cursor}`"))?;
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
            if let Some(v) = lookup(fields, field).filter(|v| !is_blank(v))
                && !conforms(v, *ty)
            {
                return Err(format!("field `{field}` = {v} is not a {}", type_name(*ty)));
            }
        }
        let timestamp = match &self.config.timestamp {
            Some(field) => match text(fields, field) {
                Some(t) => Some(
                    parse_timestamp_ms(&t)
                        .ok_or_else(|| format!("field `{field}` = {t:?} is not a timestamp (use RFC 3339, YYYY-MM-DD or Unix seconds)"))?,
                ),
                None if self.is_event_source() => return Err(format!("missing the timestamp field `{field}`")),
                None => None,
            },
            None => None,
        };
        if let Some(ev) = &self.config.event
            && let Some(field) = &ev.field
        {
            text(fields, field).ok_or_else(|| format!("missing the event name field `{field}`"))?;
        }
        let mut identifiers = Vec::new();
        let mut invalid_identifiers = 0;
        for (kind, paths) in &self.config.identifiers {
            for path in paths.iter() {
                if let Some(raw) = text(fields, path) {
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
        self.config
            .traits
            .iter()
            .filter_map(|(name, path)| {
                let v = lookup(fields, path)?;
                let v = match v {
                    Value::String(s) => Value::String(s.trim().to_string()),
                    other => other.clone(),
                };
                (!is_blank(&v)).then_some((Cow::Borrowed(name.as_str()), v))
            })
            .collect()
    }

    /// The row as an event, for event sources.
    pub fn event(&self, fields: &Map<String, Value>) -> Option<MappedEvent> {
        if self.config.kind == SourceType::Segment {
            let (event, properties) = crate::segment::event(fields)?;
            return Some(MappedEvent { event, properties });
        }
        let ev = self.config.event.as_ref()?;
        let event = match (&ev.name, &ev.field) {
            (Some(name), _) => name.clone(),
            (None, Some(field)) => text(fields, field)?.into_owned(),
            (None, None) => return None,
        };
        let properties = match &self.config.properties {
            Some(list) => list.iter().filter_map(|p| Some((p.clone(), lookup(fields, p)?.clone()))).collect(),
            None => fields.clone(),
        };
        Some(MappedEvent { event, properties })
    }
}

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

/// A scalar field as trimmed text; `None` when absent, blank, or not a scalar.
fn text<'v>(fields: &'v Map<String, Value>, path: &str) -> Option<Cow<'v, str>> {
    match lookup(fields, path)? {
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
