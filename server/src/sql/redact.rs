//! Redacting statement text for the audit trail: string and numeric literals that a detector
//! recognises as personal data or secrets are replaced by `'<redacted:category>'`; the rest of
//! the text is kept byte for byte.

use std::borrow::Cow;

use super::lexer::{Lexer, TokenKind};
use crate::masking::detect;

/// `sql` with every string literal replaced by `'***'` and every number a detector recognises
/// by `0`: the text of another session's statement (`pg_stat_activity.query`), whose literals
/// may be anyone's data, with its shape kept for whoever watches what runs.
pub fn literals_masked(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut copied = 0;
    for t in Lexer::new(sql) {
        let replacement = match t.kind {
            TokenKind::String => "'***'",
            TokenKind::Number if detect::detect(t.text(sql)).is_some() => "0",
            _ => continue,
        };
        out.push_str(&sql[copied..t.start]);
        out.push_str(replacement);
        copied = t.end;
    }
    out.push_str(&sql[copied..]);
    out
}

/// `sql` with sensitive literals replaced; borrowed unchanged when there are none.
pub fn redact(sql: &str) -> Cow<'_, str> {
    if !might_hold_sensitive_literal(sql) {
        return Cow::Borrowed(sql);
    }
    let mut out: Option<String> = None;
    let mut copied = 0;
    for t in Lexer::new(sql) {
        let category = match t.kind {
            // A whole value, or one inside free text ('call ana@example.com').
            TokenKind::String => {
                let body = literal_body(t.text(sql));
                detect::detect(body).or_else(|| detect::find_spans(body).first().map(|s| s.1))
            }
            TokenKind::Number if t.end - t.start >= 9 => detect::detect(t.text(sql)),
            _ => None,
        };
        if let Some(c) = category {
            let o = out.get_or_insert_with(|| String::with_capacity(sql.len()));
            o.push_str(&sql[copied..t.start]);
            o.push_str("'<redacted:");
            o.push_str(c.as_str());
            o.push_str(">'");
            copied = t.end;
        }
    }
    match out {
        None => Cow::Borrowed(sql),
        Some(mut o) => {
            o.push_str(&sql[copied..]);
            Cow::Owned(o)
        }
    }
}

/// Detectors only match string constants, or numbers of nine digits or more; text with neither
/// (most statements with parameters) needs no lexing at all.
fn might_hold_sensitive_literal(sql: &str) -> bool {
    let b = sql.as_bytes();
    // A quote, or a `$` that starts a dollar-quoted string rather than a `$1` parameter.
    if memchr::memchr2_iter(b'\'', b'$', b)
        .any(|i| b[i] == b'\'' || !b.get(i + 1).is_some_and(u8::is_ascii_digit))
    {
        return true;
    }
    let mut run = 0;
    for b in sql.bytes() {
        run = if b.is_ascii_digit() { run + 1 } else { 0 };
        if run >= 9 {
            return true;
        }
    }
    false
}

/// The content of a string constant without its quotes or prefix (escapes are left as written).
fn literal_body(tok: &str) -> &str {
    let t = tok.trim_start_matches(|c: char| c.is_ascii_alphabetic() || c == '&');
    if let Some(rest) = t.strip_prefix('$') {
        // $tag$body$tag$. Unterminated (the server will refuse it), the token runs to the end
        // of the text and need not end with its tag, nor on a character boundary where the
        // tag's length would put the closing one.
        if let Some(i) = rest.find('$') {
            let tag = &t[..i + 2];
            if t.len() >= 2 * tag.len() && t.ends_with(tag) {
                return &t[tag.len()..t.len() - tag.len()];
            }
        }
        return t;
    }
    t.strip_prefix('\'')
        .and_then(|x| x.strip_suffix('\''))
        .unwrap_or(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn another_sessions_statement_keeps_its_shape_without_its_literals() {
        assert_eq!(
            literals_masked(
                "INSERT INTO people VALUES ('Ana Silva', E'it\\'s', $1, 42, 4111111111111111) -- 'x'"
            ),
            "INSERT INTO people VALUES ('***', '***', $1, 42, 0) -- 'x'"
        );
        assert_eq!(literals_masked("SELECT 1"), "SELECT 1");
    }

    #[test]
    fn an_unterminated_dollar_string_with_multibyte_text_is_read_without_panicking() {
        // Found by the audit encoding's property test: the writer thread redacts every
        // statement, so a panic here stopped the audit trail (and with it every statement).
        for sql in [
            "$ං$'\"𐺱൸🕴@]+𐖝૪=:8",
            "SELECT $é$ ana@example.com é",
            "SELECT $a$ x",
            "$$𞺫",
        ] {
            let _ = redact(sql);
        }
        assert_eq!(
            redact("SELECT $é$ana@example.com$é$"),
            "SELECT '<redacted:email>'"
        );
    }

    #[test]
    fn sensitive_literals_are_replaced_and_the_rest_kept() {
        let sql = "INSERT INTO people (email, card, note, n) VALUES ('ana@example.com', '4111 1111 1111 1111', 'hello', 42)";
        assert_eq!(
            redact(sql),
            "INSERT INTO people (email, card, note, n) VALUES ('<redacted:email>', '<redacted:payment_card>', 'hello', 42)"
        );
        assert_eq!(
            redact("SELECT * FROM t WHERE ssn = $$123-45-6789$$"),
            "SELECT * FROM t WHERE ssn = '<redacted:national_id>'"
        );
        assert_eq!(
            redact("SELECT * FROM t WHERE card = 4111111111111111"),
            "SELECT * FROM t WHERE card = '<redacted:payment_card>'"
        );
        assert_eq!(
            redact("SELECT 'mail ana@example.com today'"),
            "SELECT '<redacted:email>'"
        );
        assert!(matches!(redact("SELECT 1"), Cow::Borrowed(_)));
        assert!(matches!(
            redact("SELECT * FROM t WHERE id = $1"),
            Cow::Borrowed(_)
        ));
        assert_eq!(
            redact("SELECT $x$123-45-6789$x$"),
            "SELECT '<redacted:national_id>'"
        );
    }
}
