//! Planning without servers: facts made by hand, the plan checked.

mod decisions;
mod deploy;
mod promote;
mod switch;

use crate::config::{load, Config, FlagValues};

/// A configuration with the three settings every plan needs.
fn config() -> Config {
    let env = |k: &str| match k {
        "CUTOVER_APP" => Some("shop".to_string()),
        "CUTOVER_BUCKET" => Some("assets".to_string()),
        "CUTOVER_CDN_URL" => Some("https://cdn.example.com".to_string()),
        _ => None,
    };
    load(&FlagValues::new(), &env, None).unwrap()
}
