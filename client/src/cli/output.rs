//! Terminal output for the CLI: aligned tables, colour only when stdout is a terminal (and
//! `NO_COLOR` is unset), JSON for scripts, and relative-free timestamps.

use std::io::IsTerminal;

/// How to print.
#[derive(Debug, Clone, Copy)]
pub struct Out {
    pub json: bool,
    pub color: bool,
}

impl Out {
    pub fn new(json: bool) -> Self {
        let color = !json
            && std::io::stdout().is_terminal()
            && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
        Out { json, color }
    }

    pub fn bold(&self, s: &str) -> String {
        self.paint("1", s)
    }

    pub fn dim(&self, s: &str) -> String {
        self.paint("2", s)
    }

    pub fn green(&self, s: &str) -> String {
        self.paint("32", s)
    }

    pub fn red(&self, s: &str) -> String {
        self.paint("31", s)
    }

    pub fn yellow(&self, s: &str) -> String {
        self.paint("33", s)
    }

    fn paint(&self, code: &str, s: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }

    /// Prints a value as pretty JSON.
    pub fn print_json(&self, v: &impl serde::Serialize) {
        match serde_json::to_string_pretty(v) {
            Ok(s) => write_lines(std::iter::once(s)),
            Err(e) => eprintln!("error: cannot encode JSON: {e}"),
        }
    }
}

/// A table printed with columns padded to their widest cell. Cells may carry colour codes,
/// which do not count towards the width.
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&str]) -> Self {
        Table {
            header: header.iter().map(|s| s.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn print(&self, out: &Out) {
        let n = self.header.len();
        let mut widths: Vec<usize> = self.header.iter().map(|h| visible_len(h)).collect();
        for r in &self.rows {
            for (i, c) in r.iter().enumerate().take(n) {
                widths[i] = widths[i].max(visible_len(c));
            }
        }
        let line = |cells: &[String]| {
            let mut s = String::new();
            for (i, c) in cells.iter().enumerate().take(n) {
                s.push_str(c);
                if i + 1 < n {
                    s.push_str(&" ".repeat(widths[i] - visible_len(c) + 2));
                }
            }
            s.trim_end().to_string()
        };
        let header: Vec<String> = self.header.iter().map(|h| out.bold(h)).collect();
        write_lines(std::iter::once(line(&header)).chain(self.rows.iter().map(|r| line(r))));
    }
}

/// Writes lines to stdout. A reader that went away (`gatehouse audit | head`) ends the command
/// quietly, as it ends `ls`, instead of a panic about a broken pipe.
fn write_lines(lines: impl Iterator<Item = String>) {
    for l in lines {
        write_line(format_args!("{l}"));
    }
}

/// One line to stdout, as [`write_lines`] writes them (what `println!` means in this CLI).
pub fn write_line(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut w = std::io::stdout().lock();
    if let Err(e) = w.write_fmt(line).and_then(|()| w.write_all(b"\n")) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: cannot write to standard output: {e}");
        std::process::exit(1);
    }
}

/// Characters on screen, ignoring ANSI colour sequences.
fn visible_len(s: &str) -> usize {
    let mut n = 0;
    let mut in_esc = false;
    for c in s.chars() {
        match (in_esc, c) {
            (false, '\x1b') => in_esc = true,
            (true, 'm') => in_esc = false,
            (true, _) => {}
            (false, _) => n += 1,
        }
    }
    n
}

/// Shortens a single-line rendering of `s` to `max` characters.
pub fn clip(s: &str, max: usize) -> String {
    let one_line: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() <= max {
        one_line
    } else {
        let mut t: String = one_line.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// A JSON value as a table cell ("" for null).
pub fn cell(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => String::new(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widths_ignore_colour() {
        assert_eq!(visible_len("\x1b[32myes\x1b[0m"), 3);
        assert_eq!(clip("SELECT  1\n FROM t", 100), "SELECT 1 FROM t");
        assert_eq!(clip("abcdef", 4), "abc…");
    }
}
