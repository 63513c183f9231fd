//! Plain-text tables and the formatting of the figures in them.

use std::time::{Duration, UNIX_EPOCH};

/// Column alignment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Align {
    /// Text.
    Left,
    /// Numbers.
    Right,
}

/// A table: a header row, then one row per item, columns separated by two
/// spaces, no trailing spaces.
#[derive(Debug)]
pub struct Table {
    header: Vec<(&'static str, Align)>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these columns.
    pub fn new(header: &[(&'static str, Align)]) -> Self {
        Table {
            header: header.to_vec(),
            rows: Vec::new(),
        }
    }

    /// Adds a row (one cell per column).
    pub fn row(&mut self, cells: Vec<String>) {
        debug_assert_eq!(cells.len(), self.header.len());
        self.rows.push(cells);
    }

    /// The table as lines of text, each ending in `\n`.
    pub fn render(&self) -> String {
        let width = |column: usize| {
            self.rows
                .iter()
                .map(|row| row[column].chars().count())
                .chain([self.header[column].0.chars().count()])
                .max()
                .unwrap_or(0)
        };
        let widths: Vec<usize> = (0..self.header.len()).map(width).collect();
        let header: Vec<String> = self
            .header
            .iter()
            .map(|(name, _)| name.to_string())
            .collect();
        let mut out = String::new();
        for row in std::iter::once(&header).chain(&self.rows) {
            let mut line = String::new();
            for (column, cell) in row.iter().enumerate() {
                if column > 0 {
                    line.push_str("  ");
                }
                let pad = widths[column] - cell.chars().count();
                match self.header[column].1 {
                    Align::Left => {
                        line.push_str(cell);
                        line.extend(std::iter::repeat_n(' ', pad));
                    }
                    Align::Right => {
                        line.extend(std::iter::repeat_n(' ', pad));
                        line.push_str(cell);
                    }
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// A digest shortened for a table: `sha256:` and 12 hex digits.
pub fn short_digest(digest: &str) -> String {
    match digest.strip_prefix("sha256:") {
        Some(hex) => format!("sha256:{}", hex.get(..12).unwrap_or(hex)),
        None => digest.chars().take(19).collect(),
    }
}

/// Unix milliseconds as UTC, to the second: `2025-06-01T12:00:00Z`.
pub fn time(unix_ms: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(unix_ms)).to_string()
}

/// Milliseconds with precision to match their size: `0.42ms`, `3.1ms`, `250ms`.
pub fn millis(ms: f64) -> String {
    if ms < 1.0 {
        format!("{ms:.2}ms")
    } else if ms < 100.0 {
        format!("{ms:.1}ms")
    } else {
        format!("{ms:.0}ms")
    }
}

/// A share (0–1) as a percentage: `0.5%`.
pub fn percent(share: f64) -> String {
    format!("{:.1}%", share * 100.0)
}

/// A byte count for people: `1.2 MiB`.
pub fn bytes(n: u64) -> String {
    bytesize::ByteSize(n).display().iec().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_aligned_columns_without_trailing_spaces() {
        let mut table = Table::new(&[
            ("NAME", Align::Left),
            ("N", Align::Right),
            ("NOTE", Align::Left),
        ]);
        table.row(vec!["a".into(), "1".into(), String::new()]);
        table.row(vec!["longer".into(), "100".into(), "x".into()]);
        assert_eq!(
            table.render(),
            "NAME      N  NOTE\n\
             a         1\n\
             longer  100  x\n"
        );
    }

    #[test]
    fn figures() {
        let digest = format!("sha256:{}", "0123456789ab".repeat(5));
        assert_eq!(short_digest(&digest), "sha256:0123456789ab");
        assert_eq!(short_digest("sha256:abc"), "sha256:abc");
        assert_eq!(time(0), "1970-01-01T00:00:00Z");
        assert_eq!(time(1_750_000_000_123), "2025-06-15T15:06:40Z");
        assert_eq!(millis(0.4242), "0.42ms");
        assert_eq!(millis(3.04), "3.0ms");
        assert_eq!(millis(250.4), "250ms");
        assert_eq!(percent(0.005), "0.5%");
        assert_eq!(percent(0.0), "0.0%");
        assert_eq!(bytes(1536), "1.5 KiB");
    }
}
