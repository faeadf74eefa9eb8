//! webpack-manifest-plugin's flat map: `"application.js":
//! "/packs/js/application-7eeb.js"`. Every string is an asset path (nested
//! values too, as custom `generate` functions write them); no integrity.

use serde_json::Value;

use super::{rewrite_strings, Check};

/// Any object: webpack-manifest-plugin's map is the shape left when no
/// other format matches.
pub(super) fn shape(raw: &Value) -> bool {
    raw.as_object().is_some_and(|m| !m.is_empty())
}

pub(super) fn rewrite(check: &mut Check, mut raw: Value) -> Value {
    rewrite_strings(&mut raw, None, &mut |value, _| check.url(value, None));
    raw
}
