//! The file layer: `cutover.toml` (or `--config PATH`), with the line of
//! every value so that errors can point at it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use globset::Glob;

use super::keys::find;
use super::{Origin, Raw};
use crate::build::headers::{HeaderRule, MutableRule};
use crate::error::Failure;

/// The contents of a configuration file.
pub struct FileSource {
    pub path: PathBuf,
    pub text: String,
}

impl FileSource {
    /// Read `--config PATH` (must exist) or `./cutover.toml` (optional).
    pub fn read(explicit: Option<&Path>, cwd: &Path) -> anyhow::Result<Option<FileSource>> {
        // Named as the user would: `cutover.toml`, or the --config path as given.
        let (path, required) = match explicit {
            Some(p) => (p.to_path_buf(), true),
            None => (PathBuf::from("cutover.toml"), false),
        };
        match std::fs::read_to_string(cwd.join(&path)) {
            Ok(text) => Ok(Some(FileSource { path, text })),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => Ok(None),
            Err(e) => Err(Failure::input(format!(
                "cannot read config file {}: {e}; check the --config path",
                path.display()
            ))),
        }
    }
}

/// What the file sets: raw values by key (top level, and per
/// `[environments.NAME]`), header and mutable rules, and the problems found.
#[derive(Default)]
pub struct FileLayer {
    pub raws: Raws,
    pub environments: BTreeMap<String, Raws>,
    pub header_rules: Vec<HeaderRule>,
    pub mutable: Vec<MutableRule>,
    pub problems: Vec<String>,
}

/// Raw values by key.
pub type Raws = BTreeMap<&'static str, Raw>;

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

type Spanned = toml::Spanned<toml::Value>;

/// The `[environments.NAME]` tables, with the span of every value.
#[derive(serde::Deserialize)]
struct EnvironmentTables {
    #[serde(default)]
    environments: BTreeMap<String, BTreeMap<String, Spanned>>,
}

/// Parse the file: scalar keys with their lines, `[[headers]]` and
/// `[[mutable]]` rules, and `[environments.NAME]` tables of keys. Every
/// problem is collected; a file that is not TOML at all is one.
pub fn parse(file: &FileSource) -> FileLayer {
    let mut layer = FileLayer::default();
    let table: BTreeMap<String, Spanned> = match toml::from_str(&file.text) {
        Ok(t) => t,
        Err(e) => {
            let line = e.span().map(|s| line_of(&file.text, s.start)).unwrap_or(0);
            layer.problems.push(format!(
                "{}:{line}: not valid TOML: {}; fix the file or pass another with --config",
                file.path.display(),
                e.message().trim()
            ));
            return layer;
        }
    };
    let origin_of = |spanned: &Spanned, section: Option<&str>| Origin::File {
        path: file.path.clone(),
        line: line_of(&file.text, spanned.span().start),
        section: section.map(|s| format!("environments.{s}")),
    };
    for (name, spanned) in &table {
        let origin = origin_of(spanned, None);
        match name.as_str() {
            "headers" => match header_rules(spanned.get_ref(), &origin) {
                Ok(rules) => layer.header_rules = rules,
                Err(p) => layer.problems.push(p),
            },
            "mutable" => match mutable_rules(spanned.get_ref(), &origin) {
                Ok(rules) => layer.mutable = rules,
                Err(p) => layer.problems.push(p),
            },
            "environments" => {
                let tables: Result<EnvironmentTables, _> = toml::from_str(&file.text);
                match tables {
                    Ok(t) => {
                        for (env, keys) in &t.environments {
                            let raws = layer.environments.entry(env.clone()).or_default();
                            for (name, spanned) in keys {
                                let origin = origin_of(spanned, Some(env));
                                if let Err(p) = setting(raws, name, spanned, origin) {
                                    layer.problems.push(p);
                                }
                            }
                        }
                    }
                    Err(e) => layer.problems.push(format!(
                        "invalid environments (from {origin}): {}; each is a table `[environments.NAME]` of keys",
                        e.message().trim()
                    )),
                }
            }
            _ => {
                if let Err(p) = setting(&mut layer.raws, name, spanned, origin) {
                    layer.problems.push(p);
                }
            }
        }
    }
    layer
}

/// One `key = value` of the table of keys, into `raws`.
fn setting(raws: &mut Raws, name: &str, spanned: &Spanned, origin: Origin) -> Result<(), String> {
    let Some(key) = find(name) else {
        let in_environment = matches!(
            &origin,
            Origin::File {
                section: Some(_),
                ..
            }
        );
        let extra: &[&str] = if in_environment {
            &[]
        } else {
            &["headers", "mutable", "environments"]
        };
        let known: Vec<&str> = super::keys::KEYS
            .iter()
            .map(|k| k.name)
            .chain(extra.iter().copied())
            .collect();
        return Err(format!(
            "unknown key `{name}` in {origin}; known keys: {}",
            known.join(", ")
        ));
    };
    let value = match spanned.get_ref() {
        toml::Value::String(s) => s.clone(),
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        toml::Value::Array(items) if key.list => list(items).ok_or_else(|| {
            format!(
                "invalid {name} (from {origin}): expected an array of strings without spaces (match a space with `?`)"
            )
        })?,
        other => {
            return Err(format!(
                "invalid {name} (from {origin}): expected a string, number or boolean, found {}",
                other.type_str()
            ))
        }
    };
    if let Some(other) = raws.get(key.name) {
        return Err(format!(
            "{} is set twice (from {} and {origin}; {} another name for it); keep one",
            key.name,
            other.origin,
            key.aliases.join(" and ") + if key.aliases.len() > 1 { " are" } else { " is" }
        ));
    }
    raws.insert(key.name, Raw { value, origin });
    Ok(())
}

/// The values of a list key, space-joined; `None` unless all are strings
/// without whitespace.
fn list(items: &[toml::Value]) -> Option<String> {
    let values: Option<Vec<&str>> = items
        .iter()
        .map(|i| {
            i.as_str()
                .filter(|s| !s.is_empty() && !s.contains(char::is_whitespace))
        })
        .collect();
    values.map(|v| v.join(" "))
}

/// `[[mutable]]` with `glob = "..."`: files that may change under the same
/// name (service workers, robots.txt).
fn mutable_rules(value: &toml::Value, origin: &Origin) -> Result<Vec<MutableRule>, String> {
    let bad = |what: &str| {
        format!(
            "invalid [[mutable]] rule (from {origin}): {what}; each rule is `[[mutable]]` with `glob = \"...\"`"
        )
    };
    let toml::Value::Array(items) = value else {
        return Err(bad("expected an array of tables"));
    };
    items
        .iter()
        .map(|item| {
            let toml::Value::Table(t) = item else {
                return Err(bad("expected a table"));
            };
            if let Some(k) = t.keys().find(|k| k.as_str() != "glob") {
                return Err(bad(&format!("unknown field `{k}`")));
            }
            let Some(toml::Value::String(glob)) = t.get("glob") else {
                return Err(bad("missing `glob`"));
            };
            let matcher = Glob::new(glob)
                .map_err(|e| bad(&format!("bad glob {glob:?}: {e}")))?
                .compile_matcher();
            Ok(MutableRule {
                glob: glob.clone(),
                matcher,
            })
        })
        .collect()
}

fn header_rules(value: &toml::Value, origin: &Origin) -> Result<Vec<HeaderRule>, String> {
    let bad = |what: &str| {
        format!(
            "invalid [[headers]] rule (from {origin}): {what}; each rule is \
             `[[headers]]` with `glob = \"...\"` and `cache_control` and/or `content_type`"
        )
    };
    let toml::Value::Array(items) = value else {
        return Err(bad("expected an array of tables"));
    };
    let mut rules = Vec::new();
    for item in items {
        let toml::Value::Table(t) = item else {
            return Err(bad("expected a table"));
        };
        if let Some(k) = t
            .keys()
            .find(|k| !["glob", "cache_control", "content_type"].contains(&k.as_str()))
        {
            return Err(bad(&format!("unknown field `{k}`")));
        }
        let get = |k: &str| -> Result<Option<String>, String> {
            match t.get(k) {
                None => Ok(None),
                Some(toml::Value::String(s))
                    if !s.trim().is_empty() && s.bytes().all(|b| (0x20..0x7f).contains(&b)) =>
                {
                    Ok(Some(s.clone()))
                }
                Some(_) => Err(bad(&format!(
                    "`{k}` must be a non-empty string of printable ASCII"
                ))),
            }
        };
        let glob = get("glob")?.ok_or_else(|| bad("missing `glob`"))?;
        let matcher = Glob::new(&glob)
            .map_err(|e| bad(&format!("bad glob {glob:?}: {e}")))?
            .compile_matcher();
        let cache_control = get("cache_control")?;
        let content_type = get("content_type")?;
        if cache_control.is_none() && content_type.is_none() {
            return Err(bad(&format!("rule for {glob:?} sets nothing")));
        }
        rules.push(HeaderRule {
            glob,
            matcher,
            cache_control,
            content_type,
        });
    }
    Ok(rules)
}
