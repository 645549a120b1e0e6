//! Edits of `kinship.toml` that keep what the operator wrote: a source is appended as text
//! (with its comments), replaced or removed as a table. Each edit holds a lock on
//! `kinship.toml.lock` from reading the file to replacing it (so the CLI and a server do not
//! lose each other's edits), is checked to load, and replaces the file by renaming a
//! complete, synced copy with the original's permissions.

use crate::{Config, ConfigError};
use std::path::Path;

/// Adds `block` (a `[sources.NAME]` table and its subtables, as TOML text) to the file, or
/// replaces the source of that name when `replace` is set. Returns the configuration as
/// it now loads.
pub fn put_source(path: &Path, name: &str, block: &str, replace: bool) -> Result<Config, ConfigError> {
    let _lock = lock(path)?;
    let invalid = |message: String| ConfigError::Invalid { path: format!("sources.{name}"), message };
    let parsed: toml_edit::DocumentMut = block.parse().map_err(|e| invalid(format!("the proposed block is not valid TOML: {e}")))?;
    let tables: Vec<&str> =
        parsed.get("sources").and_then(|s| s.as_table_like()).map(|t| t.iter().map(|(k, _)| k).collect()).unwrap_or_default();
    if tables != [name] || parsed.iter().count() != 1 {
        return Err(invalid(format!("the block must hold exactly one table, [sources.{name}], and nothing else")));
    }
    let current = std::fs::read_to_string(path)
        .or_else(|e| if e.kind() == std::io::ErrorKind::NotFound { Ok(String::new()) } else { Err(e) })
        .map_err(|e| invalid(format!("cannot read {}: {e}", path.display())))?;
    let mut doc: toml_edit::DocumentMut = current.parse().map_err(|e| invalid(format!("{} is not valid TOML: {e}", path.display())))?;
    let exists = doc.get("sources").and_then(|s| s.as_table_like()).is_some_and(|t| t.contains_key(name));
    match (exists, replace) {
        (true, false) => return Err(invalid("already exists; pick another name, or edit that source".into())),
        (false, true) => return Err(invalid("does not exist".into())),
        (true, true) => {
            doc["sources"].as_table_like_mut().expect("sources is a table").remove(name);
        }
        (false, false) => {}
    }
    let mut text = doc.to_string();
    if !text.is_empty() && !text.ends_with("\n\n") {
        text.push_str(if text.ends_with('\n') { "\n" } else { "\n\n" });
    }
    text.push_str(block.trim_end());
    text.push('\n');
    write_checked(path, &text)
}

/// Sets `[resolve.limits]` for the kinds not limited yet; a limit already written stays.
pub fn add_limits(path: &Path, limits: &[(String, u32)]) -> Result<Config, ConfigError> {
    let _lock = lock(path)?;
    let invalid = |message: String| ConfigError::Invalid { path: "resolve.limits".into(), message };
    let current = std::fs::read_to_string(path).map_err(|e| invalid(format!("cannot read {}: {e}", path.display())))?;
    let mut doc: toml_edit::DocumentMut = current.parse().map_err(|e| invalid(format!("{} is not valid TOML: {e}", path.display())))?;
    let resolve = doc
        .entry("resolve")
        .or_insert_with(toml_edit::table)
        .as_table_like_mut()
        .ok_or_else(|| invalid("`resolve` is not a table".into()))?;
    let table = resolve
        .entry("limits")
        .or_insert(toml_edit::table())
        .as_table_like_mut()
        .ok_or_else(|| invalid("`resolve.limits` is not a table".into()))?;
    for (kind, limit) in limits {
        if !table.contains_key(kind) {
            table.insert(kind, toml_edit::value(i64::from(*limit)));
        }
    }
    write_checked(path, &doc.to_string())
}

/// The source a `[sources.NAME]` block defines, as the file would hold it.
pub fn parse_source(block: &str, name: &str) -> Result<crate::SourceConfig, String> {
    let doc: toml::Table = toml::from_str(block).map_err(|e| format!("the mapping is not valid TOML: {e}"))?;
    let source = doc.get("sources").and_then(|s| s.get(name)).ok_or_else(|| format!("the mapping must define [sources.{name}]"))?;
    source.clone().try_into().map_err(|e| format!("[sources.{name}]: {e}"))
}

/// Removes the source `name` from the file.
pub fn remove_source(path: &Path, name: &str) -> Result<Config, ConfigError> {
    let _lock = lock(path)?;
    let invalid = |message: String| ConfigError::Invalid { path: format!("sources.{name}"), message };
    let current = std::fs::read_to_string(path).map_err(|e| invalid(format!("cannot read {}: {e}", path.display())))?;
    let mut doc: toml_edit::DocumentMut = current.parse().map_err(|e| invalid(format!("{} is not valid TOML: {e}", path.display())))?;
    let removed = doc.get_mut("sources").and_then(|s| s.as_table_like_mut()).and_then(|t| t.remove(name));
    if removed.is_none() {
        return Err(invalid("does not exist".into()));
    }
    write_checked(path, &doc.to_string())
}

/// The text of one source as it stands in the file, comments included.
pub fn source_text(path: &Path, name: &str) -> Option<String> {
    let doc: toml_edit::DocumentMut = std::fs::read_to_string(path).ok()?.parse().ok()?;
    let table = doc.get("sources")?.as_table_like()?.get(name)?.clone();
    let mut out = toml_edit::DocumentMut::new();
    let mut sources = toml_edit::Table::new();
    sources.set_implicit(true);
    sources.insert(name, table);
    out.insert("sources", toml_edit::Item::Table(sources));
    Some(out.to_string())
}

fn write_checked(path: &Path, text: &str) -> Result<Config, ConfigError> {
    let config: Config = toml::from_str(text)
        .map_err(|e| ConfigError::Invalid { path: path.display().to_string(), message: format!("the edited file does not load: {e}") })?;
    config.validate()?;
    let io = |e: std::io::Error| ConfigError::Invalid { path: path.display().to_string(), message: format!("cannot write: {e}") };
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let tmp = path.with_extension(format!("toml.{}.{nanos}.tmp", std::process::id()));
    let written = (|| {
        use std::io::Write;
        let mut file = std::fs::File::create(&tmp)?;
        if let Ok(meta) = std::fs::metadata(path) {
            file.set_permissions(meta.permissions())?;
        }
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written.map_err(io)?;
    Ok(config)
}

/// Holds `kinship.toml.lock` until dropped.
fn lock(path: &Path) -> Result<std::fs::File, ConfigError> {
    let io =
        |e: std::io::Error| ConfigError::Invalid { path: path.display().to_string(), message: format!("cannot lock for editing: {e}") };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(path.with_extension("toml.lock")).map_err(io)?;
    file.lock().map_err(io)?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_added_replaced_and_removed_keeping_comments() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kinship.toml");
        std::fs::write(&path, "# mine\n[resolve]\ndefault_region = \"US\"\n").unwrap();
        let block = "# why\n[sources.crm]\ntype = \"csv\"\npath = \"c.csv\"\n\n[sources.crm.identifiers]\n# the email\nemail = \"Email\"\n";
        let config = put_source(&path, "crm", block, false).unwrap();
        assert_eq!(config.sources["crm"].identifiers.len(), 1);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("# mine\n") && text.contains("# the email"), "{text}");
        assert!(put_source(&path, "crm", block, false).is_err(), "no silent overwrite");
        let replaced = put_source(&path, "crm", &block.replace("c.csv", "d.csv"), true).unwrap();
        assert_eq!(replaced.sources["crm"].path, std::path::PathBuf::from("d.csv"));
        assert_eq!(std::fs::read_to_string(&path).unwrap().matches("[sources.crm]").count(), 1);
        assert!(source_text(&path, "crm").unwrap().contains("d.csv"));
        let err = put_source(&path, "bad", "[sources.bad]\ntype = \"csv\"\n", false).unwrap_err().to_string();
        assert!(err.contains("path"), "an invalid source is refused and the file kept: {err}");
        assert!(put_source(&path, "x", "[sources.y]\ntype = \"csv\"\npath = \"y.csv\"\n", false).is_err());
        let limited = add_limits(&path, &[("crm_id".into(), 1), ("order_id".into(), 0)]).unwrap();
        assert_eq!((limited.resolve.limits["crm_id"], limited.resolve.limits["order_id"]), (1, 0));
        add_limits(&path, &[("crm_id".into(), 3)]).unwrap();
        assert_eq!(Config::load_file(&path).unwrap().resolve.limits["crm_id"], 1, "a limit already written stays");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        add_limits(&path, &[("order_id".into(), 0)]).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600, "a private file stays private");
        remove_source(&path, "crm").unwrap();
        assert!(!std::fs::read_to_string(&path).unwrap().contains("[sources.crm"));
        assert!(std::fs::read_to_string(&path).unwrap().contains("# mine"));
    }
}
