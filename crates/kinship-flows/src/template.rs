//! Text with `{fact.field}` placeholders: `{product.name}`, `{trigger.subject}`,
//! `{traits.first_name}`. A placeholder must name something gathered before its step, so a
//! typo is an error when the flow is saved, not a blank on every task.

use std::collections::BTreeSet;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    /// The root (`product`, `trigger`, `traits`) and the path inside it, possibly empty.
    Field {
        root: String,
        path: String,
    },
}

impl Template {
    pub fn compile(text: &str, gathered: &BTreeSet<String>) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_string()));
            }
            let after = &rest[open + 1..];
            let close = after.find('}').ok_or_else(|| format!("`{{` without `}}` in `{text}`"))?;
            let name = after[..close].trim();
            let (root, path) = name.split_once('.').unwrap_or((name, ""));
            if !(root == "trigger" || root == "traits" || gathered.contains(root)) {
                return Err(format!(
                    "`{{{name}}}` names `{root}`, which is not gathered before this step (known: trigger, traits{})",
                    gathered.iter().map(|g| format!(", {g}")).collect::<String>()
                ));
            }
            parts.push(Part::Field { root: root.to_string(), path: path.to_string() });
            rest = &after[close + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Ok(Self { parts })
    }

    /// The text with each placeholder's value, or `None` when one has no value.
    pub fn render(&self, lookup: &dyn Fn(&str, &str) -> Option<String>) -> Option<String> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Field { root, path } => out.push_str(&lookup(root, path)?),
            }
        }
        Some(out)
    }

    /// The text with `?` for placeholders that have no value: for titles and bodies.
    pub fn render_lenient(&self, lookup: &dyn Fn(&str, &str) -> Option<String>) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Field { root, path } => out.push_str(&lookup(root, path).unwrap_or_else(|| "?".into())),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_render_and_unknown_ones_are_refused() {
        let gathered: BTreeSet<String> = ["product".to_string()].into();
        let t = Template::compile("Refund {product.name} for {traits.first_name}", &gathered).unwrap();
        let lookup = |root: &str, path: &str| match (root, path) {
            ("product", "name") => Some("Tent".to_string()),
            _ => None,
        };
        assert_eq!(t.render(&lookup), None);
        assert_eq!(t.render_lenient(&lookup), "Refund Tent for ?");
        assert!(Template::compile("{order.id}", &gathered).unwrap_err().contains("`order`"));
        assert!(Template::compile("{product.name", &gathered).is_err());
    }
}
