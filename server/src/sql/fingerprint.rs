//! Statement fingerprints and a first, cheap look at what a statement is.
//!
//! A fingerprint hashes the token stream with every literal replaced, so `… WHERE aid = 48213`
//! and `… WHERE aid = 7` share one: it is what caches, approvals and audit group by. It is
//! FNV-1a (stable across processes and versions), computed while lexing, with no allocation.

use super::lexer::{Lexer, TokenKind};

/// Stable 64-bit identity of a statement's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub u64);

impl Fingerprint {
    /// The 16 lowercase hex digits [`Display`](std::fmt::Display) writes, into `buf`, with no
    /// allocation.
    pub fn hex<'a>(&self, buf: &'a mut [u8; 16]) -> &'a str {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        for (i, b) in buf.iter_mut().enumerate() {
            *b = DIGITS[((self.0 >> (60 - 4 * i)) & 0xf) as usize];
        }
        std::str::from_utf8(buf).unwrap_or_default()
    }
}

impl std::fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

struct Fnv(u64);

impl Fnv {
    fn byte(&mut self, b: u8) {
        self.0 ^= b as u64;
        self.0 = self.0.wrapping_mul(FNV_PRIME);
    }
    fn bytes(&mut self, s: &[u8]) {
        for &b in s {
            self.byte(b);
        }
    }
}

/// What a quick look at the text tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shape {
    pub fingerprint: Fingerprint,
    /// The first keyword of each statement, upper-case (`SELECT`, `INSERT`, …), deduplicated.
    pub kinds: Vec<String>,
    /// False only when every statement is known not to change data; unknown means true.
    pub may_write: bool,
    pub statements: usize,
    /// Some plain `'…'` string holds a backslash (see [`has_backslash_string`]).
    pub backslash_string: bool,
}

/// Statements that never change data by themselves.
const READ_ONLY: &[&str] = &[
    "SELECT",
    "SHOW",
    "VALUES",
    "TABLE",
    "FETCH",
    "MOVE",
    "BEGIN",
    "START",
    "COMMIT",
    "END",
    "ROLLBACK",
    "ABORT",
    "SAVEPOINT",
    "RELEASE",
    "SET",
    "RESET",
    "DISCARD",
    "DEALLOCATE",
    "CLOSE",
    "DECLARE",
    "LISTEN",
    "UNLISTEN",
    "PREPARE",
    "EXPLAIN",
    "WITH",
];

/// Words that make an otherwise read-only statement write: data-modifying CTEs, `SELECT … INTO`,
/// `EXPLAIN ANALYZE` (which executes), sequence changes.
const WRITING_WORDS: &[&str] = &[
    "insert",
    "update",
    "delete",
    "merge",
    "into",
    "analyze",
    "analyse",
    "nextval",
    "setval",
    "lo_import",
    "lo_unlink",
    "lo_from_bytea",
    "lo_put",
    "lo_create",
    "lo_creat",
    "lo_truncate",
    "lo_truncate64",
    "lowrite",
];

/// Whether `word` is one of [`WRITING_WORDS`]. Asked of every word of a read-only statement, so
/// the words' first letters and lengths rule out most before any comparison.
fn is_writing_word(word: &str) -> bool {
    matches!(word.len(), 4..=13)
        && matches!(
            word.as_bytes()[0].to_ascii_lowercase(),
            b'i' | b'u' | b'd' | b'm' | b'a' | b'n' | b's' | b'l'
        )
        && WRITING_WORDS.iter().any(|w| word.eq_ignore_ascii_case(w))
}

/// Fingerprints `sql` and classifies it coarsely, in one pass over its tokens.
pub fn shape(sql: &str) -> Shape {
    shape_into(sql, None)
}

/// [`shape`], writing the [`shape_key`] into `key` in the same pass when one is given: the
/// statement is lexed once for its fingerprint, its kinds and the key the caches look it up by.
pub fn shape_into(sql: &str, mut key: Option<&mut String>) -> Shape {
    let mut h = Fnv(FNV_OFFSET);
    let mut kinds: Vec<String> = Vec::new();
    let mut may_write = false;
    let mut statements = 0;
    let mut at_statement_start = true;
    let mut current_read_only = false;
    let mut backslash_string = false;
    if let Some(k) = key.as_deref_mut() {
        k.clear();
    }
    for t in Lexer::new(sql) {
        let text = t.text(sql);
        match t.kind {
            TokenKind::Word => {
                for b in text.bytes() {
                    h.byte(b.to_ascii_lowercase());
                }
                if let Some(k) = key.as_deref_mut() {
                    // ASCII case folding leaves other UTF-8 bytes alone, so the tail stays a str.
                    let from = k.len();
                    k.push_str(text);
                    k[from..].make_ascii_lowercase();
                }
                if at_statement_start {
                    at_statement_start = false;
                    statements += 1;
                    current_read_only = READ_ONLY.iter().any(|w| text.eq_ignore_ascii_case(w));
                    if !current_read_only {
                        may_write = true;
                    }
                    if !kinds.iter().any(|k| k.eq_ignore_ascii_case(text)) {
                        kinds.push(text.to_ascii_uppercase());
                    }
                } else if current_read_only && is_writing_word(text) {
                    // `COPY … TO` is a read; everything else listed writes.
                    may_write = true;
                }
            }
            TokenKind::String | TokenKind::Number | TokenKind::Param => {
                h.byte(b'?');
                let backslash = t.kind == TokenKind::String && is_backslash_string(text);
                backslash_string |= backslash;
                if let Some(k) = key.as_deref_mut() {
                    if backslash {
                        k.push('\\');
                    }
                    k.push('?');
                    // The literal's form stays in the key (not its value): a number, a
                    // parameter, '…', E'…', $$…$$, U&'…' can parse differently in one place
                    // (`FORMAT 1.5` vs `FORMAT 'csv'`), or be read by the classifier or not.
                    k.push(match t.kind {
                        TokenKind::Number => '#',
                        TokenKind::Param => '$',
                        _ => text.chars().next().map_or('\'', |c| c.to_ascii_uppercase()),
                    });
                }
            }
            TokenKind::QuotedIdent | TokenKind::Other => {
                h.bytes(text.as_bytes());
                if let Some(k) = key.as_deref_mut() {
                    k.push_str(text);
                }
            }
            TokenKind::Semicolon => {
                h.byte(b';');
                at_statement_start = true;
                if let Some(k) = key.as_deref_mut() {
                    k.push(';');
                }
            }
        }
        h.byte(0x1f);
        if let Some(k) = key.as_deref_mut() {
            k.push('\x1f');
        }
    }
    Shape {
        fingerprint: Fingerprint(h.0),
        kinds,
        may_write,
        statements,
        backslash_string,
    }
}

/// The token stream [`shape`] hashes, as text: words lower-cased, every literal and parameter
/// replaced by `?` and its form (`#` number, `$` parameter, the quote or prefix of a string),
/// tokens separated by `\x1f`. Caches that make security decisions key by this
/// rather than by the 64-bit fingerprint, which a hostile client could collide on purpose.
///
/// A plain `'…'` string holding a backslash becomes `\?`, not `?`: with
/// `standard_conforming_strings = off` it ends somewhere else, so the text may mean something
/// else than a statement of the same shape without one (see [`has_backslash_string`]).
pub fn shape_key(sql: &str, out: &mut String) {
    shape_into(sql, Some(out));
}

/// A `'…'` or `N'…'` string (not `E'…'`, which always escapes) with a backslash in it.
fn is_backslash_string(token: &str) -> bool {
    let plain = token.strip_prefix(['n', 'N']).unwrap_or(token);
    plain.starts_with('\'') && token.contains('\\')
}

/// True when a plain `'…'` string in `sql` holds a backslash: PostgreSQL reads such text
/// differently depending on `standard_conforming_strings`, so whoever decides what it does
/// must consider both readings.
pub fn has_backslash_string(sql: &str) -> bool {
    Lexer::new(sql).any(|t| t.kind == TokenKind::String && is_backslash_string(t.text(sql)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_writing_words_quick_check_misses_none() {
        for w in WRITING_WORDS {
            assert!(
                is_writing_word(w) && is_writing_word(&w.to_ascii_uppercase()),
                "{w}"
            );
        }
        for w in ["abalance", "FROM", "aid", "inserts", "", "x"] {
            assert!(!is_writing_word(w), "{w}");
        }
    }

    #[test]
    fn shape_keys_match_exactly_when_fingerprints_do() {
        let key = |s: &str| {
            let mut k = String::new();
            shape_key(s, &mut k);
            k
        };
        assert_eq!(
            key("SELECT a FROM t WHERE id = 5"),
            key("select a  from t where id = 7 -- c")
        );
        // The form of a literal is kept, not its value.
        assert_ne!(
            key("SELECT a FROM t WHERE id = 5"),
            key("SELECT a FROM t WHERE id = $1")
        );
        assert_ne!(key("SELECT '1'"), key("SELECT 1"));
        assert_ne!(key("SELECT E'x'"), key("SELECT 'x'"));
        assert_ne!(key("SELECT a FROM t"), key("SELECT a FROM \"T\""));
        assert_ne!(key("SELECT 'x'"), key("SELECT x"));
        assert_ne!(
            key("SELECT 'a\\'; SELECT 'b'"),
            key("SELECT 'a'; SELECT 'b'")
        );
        assert!(has_backslash_string("SELECT 'a\\'"));
        assert!(!has_backslash_string("SELECT E'a\\'"));
    }

    #[test]
    fn words_are_case_folded_in_ascii_only_and_kinds_once_each() {
        let key = |s: &str| {
            let mut k = String::new();
            shape_key(s, &mut k);
            k
        };
        // PostgreSQL folds only ASCII letters of unquoted identifiers (in UTF-8).
        assert_eq!(key("SELECT Ärger FROM T"), key("select Ärger from t"));
        assert_ne!(key("SELECT Ärger FROM t"), key("SELECT ärger FROM t"));
        assert!(key("SELECT ÄrGER").contains("Ärger"));
        let s = shape("select 1; SELECT 2; Insert into t values (1); select 3");
        assert_eq!(s.kinds, vec!["SELECT".to_string(), "INSERT".to_string()]);
        assert!(s.may_write);
        assert_eq!(s.statements, 4);
        assert!(!shape("sElEcT 1; show x").may_write);
        assert_eq!(shape("éxplain x").kinds, vec!["éXPLAIN".to_string()]);
    }

    #[test]
    fn mentions_ignores_case_and_finds_words_at_either_end() {
        use crate::sql::mentions;
        assert!(mentions(b"SET Application_Name = 'x'", b"application_name"));
        assert!(mentions(b"current_setting", b"current_setting"));
        assert!(mentions(b"select CURRENT_SETTING('a')", b"current_setting"));
        assert!(!mentions(b"select current_settin", b"current_setting"));
        assert!(!mentions(b"", b"names"));
        assert!(mentions(b"x", b""));
        assert!(mentions(b"SET NAMES 'LATIN1'", b"names"));
        assert!(!mentions(b"SET NAMEX", b"names"));
    }

    #[test]
    fn a_statement_carries_the_key_and_backslash_flag_its_text_gives() {
        for sql in [
            "SELECT abalance FROM pgbench_accounts WHERE aid = $1;",
            "select  \"Odd\".x, 'lit', 4.5e3 FROM t; UPDATE t SET y = E'a\\b'",
            "SELECT 'a\\'; SELECT 'b'",
            "SELECT N'x\\y' || $$dollar$$",
            "",
        ] {
            let stmt = crate::sql::Statement::new(sql);
            let mut key = String::new();
            shape_key(sql, &mut key);
            assert_eq!(stmt.shape_key, key, "{sql}");
            assert_eq!(stmt.backslash_string, has_backslash_string(sql), "{sql}");
            assert_eq!(stmt.fingerprint, shape(sql).fingerprint, "{sql}");
        }
    }

    #[test]
    fn literals_do_not_change_the_fingerprint_but_structure_does() {
        let a = shape("SELECT abalance FROM pgbench_accounts WHERE aid = 48213");
        let b = shape("select  abalance from pgbench_accounts\n where aid = 7 -- hi");
        let c = shape("SELECT abalance FROM pgbench_accounts WHERE aid = $1");
        let d = shape("SELECT abalance FROM pgbench_accounts WHERE bid = 7");
        assert_eq!(a.fingerprint, b.fingerprint);
        assert_eq!(a.fingerprint, c.fingerprint);
        assert_ne!(a.fingerprint, d.fingerprint);
        assert_eq!(a.fingerprint.to_string().len(), 16);
        assert_eq!(
            shape("SELECT 'x'").fingerprint,
            shape("SELECT $$y$$").fingerprint
        );
    }

    #[test]
    fn kinds_and_writes() {
        let s = shape("BEGIN; UPDATE t SET x = 1; SELECT 1; COMMIT");
        assert_eq!(s.kinds, vec!["BEGIN", "UPDATE", "SELECT", "COMMIT"]);
        assert_eq!(s.statements, 4);
        assert!(s.may_write);
        for ro in [
            "SELECT * FROM t WHERE note = 'insert into x'",
            "SHOW search_path",
            "EXPLAIN SELECT 1",
            "COPY t TO STDOUT",
        ] {
            let sh = shape(ro);
            assert_eq!(sh.may_write, ro.starts_with("COPY"), "{ro}");
        }
        for w in [
            "INSERT INTO t VALUES (1)",
            "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d",
            "SELECT * INTO t2 FROM t",
            "EXPLAIN ANALYZE DELETE FROM t",
            "SELECT nextval('s')",
            "DO $$ BEGIN NULL; END $$",
            "CALL p()",
        ] {
            assert!(shape(w).may_write, "{w}");
        }
    }
}
