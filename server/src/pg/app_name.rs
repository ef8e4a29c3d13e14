//! The identity stays in the upstream's `application_name`, where DBAs look (`pg_stat_activity`,
//! the server log), even when a client names itself after connecting: PgJDBC, and so DBeaver and
//! IntelliJ, sends `SET application_name = 'DBeaver'` right after the startup, which would
//! replace `gatehouse:alice/…` with `DBeaver`. Such a `SET` is rewritten to keep the prefix.
//!
//! A courtesy to honest tools, not a control: a client can still change the setting in ways
//! this does not follow (`set_config`), and the audit trail, not `application_name`, is the
//! record of who did what.

use bytes::{BufMut, BytesMut};

use crate::sql::lexer::{Lexer, Token, TokenKind};

/// What the upstream's `application_name` starts with for `identity`.
pub fn prefix(identity: &str) -> String {
    format!("gatehouse:{identity}")
}

/// The upstream's `application_name` for `identity` using a client that calls itself `app`.
pub fn upstream_value(identity: &str, app: Option<&str>) -> String {
    match app.filter(|a| !a.is_empty()) {
        Some(a) => format!("{}/{a}", prefix(identity)),
        None => prefix(identity),
    }
}

/// `sql` with the value of a lone `SET [SESSION | LOCAL] application_name {TO | =} value` put
/// behind `prefix/`. `None` for any other statement, a value already behind the prefix, and
/// `DEFAULT` (which returns to the prefixed value the connection started with).
pub fn rewrite_set(sql: &str, prefix: &str) -> Option<String> {
    let word =
        |t: &Token, w: &str| t.kind == TokenKind::Word && t.text(sql).eq_ignore_ascii_case(w);
    // Tokens are lexed one at a time: almost every statement is left at its first.
    let mut tokens = Lexer::new(sql);
    let first = tokens.next()?;
    if !word(&first, "set") {
        return None;
    }
    let mut name = tokens.next()?;
    let scope = if word(&name, "session") || word(&name, "local") {
        let scope = name.text(sql).to_ascii_uppercase();
        name = tokens.next()?;
        Some(scope)
    } else {
        None
    };
    let named = word(&name, "application_name")
        || (name.kind == TokenKind::QuotedIdent && name.text(sql) == "\"application_name\"");
    if !named {
        return None;
    }
    let op = tokens.next()?;
    if !(word(&op, "to") || (op.kind == TokenKind::Other && op.text(sql) == "=")) {
        return None;
    }
    let value = tokens.next()?;
    let text = value.text(sql);
    let value = match value.kind {
        TokenKind::String if text.starts_with('\'') && text.len() >= 2 => {
            text[1..text.len() - 1].replace("''", "'")
        }
        TokenKind::Word if !text.eq_ignore_ascii_case("default") => text.to_string(),
        TokenKind::QuotedIdent if text.len() >= 2 => text[1..text.len() - 1].replace("\"\"", "\""),
        TokenKind::Number => text.to_string(),
        _ => return None,
    };
    match tokens.next() {
        None => {}
        Some(t) if t.kind == TokenKind::Semicolon && tokens.next().is_none() => {}
        Some(_) => return None,
    }
    if value == prefix || value.starts_with(&format!("{prefix}/")) || value.contains('\\') {
        return None;
    }
    let new = format!("{prefix}/{value}").replace('\'', "''");
    Some(match scope {
        Some(s) => format!("SET {s} application_name = '{new}'"),
        None => format!("SET application_name = '{new}'"),
    })
}

/// `sql` as a simple Query carries it (one or more statements) with each lone
/// `SET application_name` among them rewritten by [`rewrite_set`]; `None` when there is none.
/// Text with a backslash is left alone: whether it escapes a quote depends on a setting of the
/// session, and a wrong guess about where a string ends could rewrite inside a literal.
pub fn rewrite_statements(sql: &str, prefix: &str) -> Option<String> {
    if !mentions_application_name(sql.as_bytes()) || sql.contains('\\') {
        return None;
    }
    let mut out = String::new();
    // Where the statement being read starts, and how much of `sql` is already in `out`.
    let (mut start, mut copied) = (0, 0);
    let mut ends: Vec<(usize, usize)> = Lexer::new(sql)
        .filter(|t| t.kind == TokenKind::Semicolon)
        .map(|t| (t.start, t.end))
        .collect();
    ends.push((sql.len(), sql.len()));
    for (end, next) in ends {
        let statement = &sql[start..end];
        if let Some(new) = rewrite_set(statement, prefix) {
            // Whitespace and comments before the statement stay as they were.
            let from = start + Lexer::new(statement).next().map_or(0, |t| t.start);
            out.push_str(&sql[copied..from]);
            out.push_str(&new);
            copied = end;
        }
        start = next;
    }
    if copied == 0 {
        return None;
    }
    out.push_str(&sql[copied..]);
    Some(out)
}

/// A quick look before any lexing: almost no statement names the setting.
fn mentions_application_name(sql: &[u8]) -> bool {
    const NAME: &[u8] = b"application_name";
    crate::sql::mentions(sql, NAME)
}

/// A client's Query (`Q`) or Parse (`P`) frame with its `SET application_name` rewritten by
/// [`rewrite_statements`] (a Parse holds one statement); `None` when there is nothing to
/// rewrite.
pub fn rewrite_frame(tag: u8, frame: &[u8], prefix: &str) -> Option<BytesMut> {
    let body = frame.get(5..)?;
    let (name, rest) = match tag {
        b'Q' => (&[][..], body),
        b'P' => {
            let end = body.iter().position(|&b| b == 0)?;
            (&body[..=end], &body[end + 1..])
        }
        _ => return None,
    };
    let end = rest.iter().position(|&b| b == 0)?;
    // Checked on the bytes first: nearly every frame stops here, before UTF-8 validation.
    if !mentions_application_name(&rest[..end]) {
        return None;
    }
    let sql = std::str::from_utf8(&rest[..end]).ok()?;
    let new = rewrite_statements(sql, prefix)?;
    let tail = &rest[end..];
    let mut out = BytesMut::with_capacity(5 + name.len() + new.len() + tail.len());
    super::codec::put_message(&mut out, tag, |o| {
        o.put_slice(name);
        o.put_slice(new.as_bytes());
        o.put_slice(tail);
    });
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: &str = "gatehouse:alice";

    #[test]
    fn a_set_of_application_name_keeps_the_identity() {
        for (sql, want) in [
            (
                "SET application_name = 'DBeaver'",
                "SET application_name = 'gatehouse:alice/DBeaver'",
            ),
            (
                "set Application_Name to 'a''b';",
                "SET application_name = 'gatehouse:alice/a''b'",
            ),
            (
                "SET SESSION application_name = psql",
                "SET SESSION application_name = 'gatehouse:alice/psql'",
            ),
            (
                "/* tool */ SET LOCAL \"application_name\" = \"x\"",
                "SET LOCAL application_name = 'gatehouse:alice/x'",
            ),
            (
                "SET application_name = 7",
                "SET application_name = 'gatehouse:alice/7'",
            ),
        ] {
            assert_eq!(rewrite_set(sql, P).as_deref(), Some(want), "{sql}");
        }
    }

    #[test]
    fn everything_else_is_left_alone() {
        for sql in [
            "SELECT 1",
            "SET search_path = app",
            "SET application_name = DEFAULT",
            "SET application_name = 'gatehouse:alice/psql'",
            "SET application_name = 'gatehouse:alice'",
            "SET application_name = 'a'; SELECT 1",
            "SET application_name = E'x'",
            "SET application_name = 'back\\slash'",
            "SETTLE",
            "",
        ] {
            assert_eq!(rewrite_set(sql, P), None, "{sql}");
        }
    }

    #[test]
    fn a_set_among_other_statements_is_rewritten_in_place() {
        assert_eq!(
            rewrite_statements("SELECT 1; SET application_name = 'x';SELECT ';'", P).as_deref(),
            Some("SELECT 1; SET application_name = 'gatehouse:alice/x';SELECT ';'")
        );
        assert_eq!(
            rewrite_statements("set application_name to a; set application_name to b", P)
                .as_deref(),
            Some("SET application_name = 'gatehouse:alice/a'; SET application_name = 'gatehouse:alice/b'")
        );
        for sql in [
            "SELECT 'SET application_name = x'",
            "INSERT INTO t VALUES ('a\\'; SET application_name = ''x''')",
            "SELECT 1; SELECT 2",
        ] {
            assert_eq!(rewrite_statements(sql, P), None, "{sql}");
        }
    }

    #[test]
    fn frames_are_rebuilt_with_their_lengths() {
        let mut q = vec![b'Q', 0, 0, 0, 0];
        q.extend_from_slice(b"SET application_name = 'x'\0");
        let n = (q.len() - 1) as u32;
        q[1..5].copy_from_slice(&n.to_be_bytes());
        let out = rewrite_frame(b'Q', &q, P).unwrap();
        assert_eq!(&out[5..], b"SET application_name = 'gatehouse:alice/x'\0");
        assert_eq!(
            u32::from_be_bytes(out[1..5].try_into().unwrap()) as usize,
            out.len() - 1
        );

        let mut p = vec![b'P', 0, 0, 0, 0];
        p.extend_from_slice(b"S_1\0SET application_name = 'x'\0\0\x01\0\0\0\x19");
        let n = (p.len() - 1) as u32;
        p[1..5].copy_from_slice(&n.to_be_bytes());
        let out = rewrite_frame(b'P', &p, P).unwrap();
        assert_eq!(
            &out[5..],
            b"S_1\0SET application_name = 'gatehouse:alice/x'\0\0\x01\0\0\0\x19"
        );
        assert_eq!(
            u32::from_be_bytes(out[1..5].try_into().unwrap()) as usize,
            out.len() - 1
        );
        assert!(rewrite_frame(b'Q', b"Q\0\0\0\x0dSELECT 1\0", P).is_none());
    }
}
