//! `cutover config`: the resolved configuration, each value with where it
//! came from (passwords masked), then each `[[notify]]` webhook (its URL
//! masked). Reads nothing but the configuration.

use serde::Serialize;

use super::Ctx;
use crate::config::keys::KEYS;
use crate::render::{table, Render};

#[derive(Debug, Serialize)]
pub struct Settings {
    pub command: &'static str,
    /// The `[environments.NAME]` in use, if any.
    pub environment: Option<String>,
    pub settings: Vec<Setting>,
    /// Where the file hides a variable other tools also set (`REDIS_URL`
    /// under `redis_targets`), one sentence each, values masked.
    pub notes: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct Setting {
    pub key: &'static str,
    /// As given (passwords masked); for a default, the documented default.
    pub value: String,
    /// `flag --app`, `environment variable CUTOVER_APP`, `cutover.toml:3
    /// [environments.production]`, or `default`.
    pub origin: String,
}

pub fn run(ctx: &Ctx) -> Settings {
    let config = &ctx.config;
    let settings = KEYS
        .iter()
        .map(
            |key| match (config.values.get(key.name), config.origins.get(key.name)) {
                (Some(value), Some(origin)) => Setting {
                    key: key.name,
                    value: match (key.name, &config.signing_key) {
                        // Which key, never the key: its public fingerprint.
                        ("signing_key", Some(k)) => format!(
                            "{} (key {})",
                            crate::config::shown(key, value),
                            k.fingerprint()
                        ),
                        _ => crate::config::shown(key, value),
                    },
                    origin: origin.to_string(),
                },
                // Unset, the S3 client takes the AWS variables: show that
                // endpoint, not the AWS default, while one is in effect.
                _ if key.name == "s3_endpoint" => {
                    match crate::config::aws_endpoint(&|k| std::env::var(k).ok()) {
                        Some((var, value)) => Setting {
                            key: key.name,
                            value: crate::config::shown(key, &value),
                            origin: format!("environment variable {var}"),
                        },
                        None => Setting {
                            key: key.name,
                            value: key.default.to_string(),
                            origin: "default".into(),
                        },
                    }
                }
                _ => Setting {
                    key: key.name,
                    value: key.default.to_string(),
                    origin: "default".into(),
                },
            },
        )
        .collect::<Vec<_>>();
    // Each webhook: where it sends (masked), what and which events.
    let settings = settings
        .into_iter()
        .chain(config.notify.iter().map(|sink| Setting {
            key: "notify",
            value: sink.describe(),
            origin: sink.origin.clone(),
        }))
        .collect();
    Settings {
        command: "config",
        environment: config.environment.clone(),
        settings,
        notes: config.notes.clone(),
    }
}

impl Render for Settings {
    fn text(&self) -> String {
        let rows: Vec<Vec<String>> = self
            .settings
            .iter()
            .map(|s| vec![s.key.to_string(), s.value.clone(), s.origin.clone()])
            .collect();
        let head = match &self.environment {
            Some(e) => format!("environment {e}\n"),
            None => String::new(),
        };
        let mut t = head + &table(&["KEY", "VALUE", "FROM"], &rows);
        for note in &self.notes {
            t.push_str(&format!("note: {note}\n"));
        }
        t
    }
}
