//! The file layer: `cutover.toml` (or `--config PATH`), with the line of
//! every value so that errors can point at it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use globset::Glob;

use super::keys::find;
use super::{Origin, Raw};
use crate::build::headers::{HeaderRule, MutableRule};
use crate::error::Failure;
use crate::notify::{Format, Kind};

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
    /// `[[notify]]` at the top level (None: none given), and the lists of
    /// `[[environments.NAME.notify]]`, which replace it there.
    pub notify: Option<Vec<RawSink>>,
    pub environment_notify: BTreeMap<String, Vec<RawSink>>,
    pub problems: Vec<String>,
}

/// A `[[notify]]` entry as the file gives it, checked but for `url_env`,
/// which the environment resolves.
#[derive(Debug, Clone)]
pub struct RawSink {
    pub url: Option<Raw>,
    /// The name of the variable holding the URL.
    pub url_env: Option<Raw>,
    /// None: every event.
    pub events: Option<Vec<Kind>>,
    pub format: Format,
    /// The entry's first line.
    pub origin: Origin,
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

/// The fields of one `[[notify]]` entry, with the span of each.
type NotifyEntry = BTreeMap<String, Spanned>;

/// The top level's `[[notify]]` entries, each field with its span (a
/// [`Spanned`] array holds its tables without spans).
#[derive(serde::Deserialize, Default)]
struct TopNotify {
    #[serde(default)]
    notify: Vec<NotifyEntry>,
}

/// The `[[environments.NAME.notify]]` entries, the same way.
#[derive(serde::Deserialize, Default)]
struct EnvironmentsNotify {
    #[serde(default)]
    environments: BTreeMap<String, EnvironmentNotify>,
}

#[derive(serde::Deserialize, Default)]
struct EnvironmentNotify {
    #[serde(default)]
    notify: Vec<NotifyEntry>,
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
    // `[[notify]]` entries are parsed again, for the line of each field
    // (the file, shaped otherwise, is reported elsewhere: then the lines
    // are the list's).
    let top_notify = || toml::from_str::<TopNotify>(&file.text).ok();
    let environments_notify = || toml::from_str::<EnvironmentsNotify>(&file.text).ok();
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
            "notify" => {
                let entries = top_notify().map(|t| t.notify);
                let sinks = notify_sinks(spanned, entries, &origin_of, None);
                layer.notify = Some(sinks.unwrap_or_else(|p| {
                    layer.problems.extend(p);
                    Vec::new()
                }));
            }
            "environments" => {
                let tables: Result<EnvironmentTables, _> = toml::from_str(&file.text);
                match tables {
                    Ok(t) => {
                        for (env, keys) in &t.environments {
                            let raws = layer.environments.entry(env.clone()).or_default();
                            for (name, spanned) in keys {
                                let origin = origin_of(spanned, Some(env));
                                if name == "notify" {
                                    let entries = environments_notify()
                                        .and_then(|mut t| t.environments.remove(env))
                                        .map(|e| e.notify);
                                    match notify_sinks(spanned, entries, &origin_of, Some(env)) {
                                        Ok(sinks) => {
                                            layer.environment_notify.insert(env.clone(), sinks);
                                        }
                                        Err(p) => layer.problems.extend(p),
                                    }
                                    continue;
                                }
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
            &["notify"]
        } else {
            &["headers", "mutable", "notify", "environments"]
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

/// The `[[notify]]` entries of one list (`list`): each checked, every
/// problem said. `entries`: the same tables with the span of each field
/// (None: the file could not be read so; each field then has the list's).
fn notify_sinks(
    list: &Spanned,
    entries: Option<Vec<NotifyEntry>>,
    origin_of: &dyn Fn(&Spanned, Option<&str>) -> Origin,
    section: Option<&str>,
) -> Result<Vec<RawSink>, Vec<String>> {
    let origin = origin_of(list, section);
    let tables: Option<Vec<&toml::Table>> = list
        .get_ref()
        .as_array()
        .and_then(|items| items.iter().map(toml::Value::as_table).collect());
    let Some(tables) = tables else {
        return Err(vec![format!(
            "invalid notify (from {origin}): expected `[[notify]]` tables, each with `url_env = \"SLACK_WEBHOOK_URL\"` (or `url`), and optionally `events` and `format`"
        )]);
    };
    let entries = entries
        .filter(|e| e.len() == tables.len())
        .unwrap_or_else(|| {
            let at = list.span();
            tables
                .iter()
                .map(|t| {
                    t.iter()
                        .map(|(k, v)| (k.clone(), Spanned::new(at.clone(), v.clone())))
                        .collect()
                })
                .collect()
        });
    let mut sinks = Vec::new();
    let mut problems = Vec::new();
    for entry in &entries {
        let first = entry
            .values()
            .min_by_key(|s| s.span().start)
            .map(|s| origin_of(s, section))
            .unwrap_or_else(|| origin.clone());
        match notify_sink(entry, first, &|s| origin_of(s, section)) {
            Ok(sink) => sinks.push(sink),
            Err(p) => problems.extend(p),
        }
    }
    if problems.is_empty() {
        Ok(sinks)
    } else {
        Err(problems)
    }
}

/// One `[[notify]]` entry, checked. A URL is never quoted in a message.
fn notify_sink(
    entry: &NotifyEntry,
    origin: Origin,
    origin_of: &dyn Fn(&Spanned) -> Origin,
) -> Result<RawSink, Vec<String>> {
    use super::keys::NOTIFY_FIELDS;
    let fields: Vec<&str> = NOTIFY_FIELDS.iter().map(|f| f.name).collect();
    let mut problems = Vec::new();
    for name in entry.keys() {
        if !fields.contains(&name.as_str()) {
            problems.push(format!(
                "unknown key `{name}` in [[notify]] (from {}); its keys are {}",
                origin_of(&entry[name]),
                fields.join(", ")
            ));
        }
    }
    let string = |name: &str, problems: &mut Vec<String>| -> Option<Raw> {
        let spanned = entry.get(name)?;
        let at = origin_of(spanned);
        match spanned.get_ref() {
            toml::Value::String(s) if !s.trim().is_empty() => Some(Raw {
                value: s.trim().to_string(),
                origin: at,
            }),
            other => {
                problems.push(format!(
                    "invalid [[notify]] {name} (from {at}): expected a non-empty string, found {}",
                    other.type_str()
                ));
                None
            }
        }
    };
    let url = string("url", &mut problems);
    let url_env = string("url_env", &mut problems);
    if let Some(u) = &url {
        if let Err(expected) = crate::notify::check_url(&u.value) {
            problems.push(format!(
                "invalid [[notify]] url (from {}): expected {expected}",
                u.origin
            ));
        }
    }
    if let Some(v) = &url_env {
        let is_name = v
            .value
            .starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && v.value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !is_name {
            // Never quoted: it may be the URL itself, put in the wrong key.
            problems.push(format!(
                "invalid [[notify]] url_env (from {}): expected the name of the environment variable that holds the URL, such as SLACK_WEBHOOK_URL (the value is not shown: if it is the URL, move it into that variable)",
                v.origin
            ));
        }
    }
    match (&url, &url_env) {
        (Some(_), Some(_)) => problems.push(format!(
            "[[notify]] (from {origin}) sets both url and url_env; keep one (url_env keeps the secret URL out of the file)"
        )),
        (None, None) if !entry.contains_key("url") && !entry.contains_key("url_env") => {
            problems.push(format!(
                "[[notify]] (from {origin}) has no URL: add `url_env = \"SLACK_WEBHOOK_URL\"` (the variable holding it) or `url = \"https://...\"`"
            ))
        }
        _ => {}
    }
    let events = match entry.get("events") {
        None => None,
        Some(spanned) => {
            let at = origin_of(spanned);
            let names: Option<Vec<&str>> = spanned
                .get_ref()
                .as_array()
                .and_then(|items| items.iter().map(toml::Value::as_str).collect());
            match names {
                None => {
                    problems.push(format!(
                        "invalid [[notify]] events (from {at}): expected an array of event names ({}); leave it out for all",
                        Kind::names()
                    ));
                    None
                }
                Some(names) if names.is_empty() => {
                    problems.push(format!(
                        "invalid [[notify]] events (from {at}): an empty list sends nothing; name events ({}), leave it out for all of them, or remove the entry",
                        Kind::names()
                    ));
                    None
                }
                Some(names) => {
                    let mut kinds = Vec::new();
                    for n in names {
                        match Kind::parse(n) {
                            Some(k) => kinds.push(k),
                            None => problems.push(format!(
                                "invalid [[notify]] events (from {at}): unknown event {n:?}; the events are {}",
                                Kind::names()
                            )),
                        }
                    }
                    Some(kinds)
                }
            }
        }
    };
    let format = match string("format", &mut problems) {
        None => Format::default(),
        Some(f) => Format::parse(&f.value).unwrap_or_else(|| {
            problems.push(format!(
                "invalid [[notify]] format = {:?} (from {}): expected json (the documented payload) or slack ({{\"text\": ...}})",
                f.value, f.origin
            ));
            Format::default()
        }),
    };
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(RawSink {
        url,
        url_env,
        events,
        format,
        origin,
    })
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
