//! What commands print on stdout: every outcome is one JSON document
//! (`--json`, via serde) or text ([`Render::text`]). Small helpers keep the
//! text consistent: counts with the right plural, sizes, short lists.

use serde::Serialize;

/// A command's outcome, printable as text or JSON.
pub trait Render: Serialize {
    /// Human-readable text, ending with a newline.
    fn text(&self) -> String;
    /// The exit code of an outcome that is not a failure (e.g. a dry run
    /// that found conflicts exits 3).
    fn exit_code(&self) -> u8 {
        0
    }
}

/// "1 file", "2 files".
pub fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// A byte size for people: "1.46 MiB".
pub fn bytes(n: u64) -> String {
    indicatif::HumanBytes(n).to_string()
}

/// A length of time for people: "3 hours".
pub fn duration_ms(ms: i64) -> String {
    indicatif::HumanDuration(std::time::Duration::from_millis(ms.max(0) as u64)).to_string()
}

/// The first `max` items, then "and N more".
pub fn some<S: AsRef<str>>(items: &[S], max: usize) -> String {
    let shown: Vec<&str> = items.iter().take(max).map(AsRef::as_ref).collect();
    let mut text = shown.join(", ");
    if items.len() > max {
        text.push_str(&format!(" and {} more", items.len() - max));
    }
    text
}

/// Left-aligned columns, two spaces apart; the last column is not padded.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut out = String::new();
        let cells: Vec<&str> = cells.collect();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  ", w = widths[i]));
            }
        }
        out.trim_end().to_string() + "\n"
    };
    let mut out = line(&mut header.iter().copied());
    for row in rows {
        out.push_str(&line(&mut row.iter().map(String::as_str)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plurals_lists_and_tables() {
        assert_eq!(count(1, "file"), "1 file");
        assert_eq!(count(0, "file"), "0 files");
        assert_eq!(some(&["a", "b", "c"], 2), "a, b and 1 more");
        assert_eq!(some(&["a"], 2), "a");
        assert_eq!(
            table(
                &["ID", "WHEN", "NOTE"],
                &[vec!["abc".into(), "now".into(), "x y".into()]]
            ),
            "ID   WHEN  NOTE\nabc  now   x y\n"
        );
    }
}
