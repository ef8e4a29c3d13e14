//! The classifier: what a statement string does, from its syntax tree (sqlparser, PostgreSQL
//! dialect), as a [`Classification`] that rules can test.
//!
//! The input is what a client sends in one simple `Query` (possibly several statements) or one
//! extended-protocol `Parse`. The text is split into statements with the gateway's own lexer
//! (which knows PostgreSQL's quoting rules), and each statement is parsed alone: one statement
//! sqlparser cannot read (`DO`, `ALTER SYSTEM`, …) then costs the analysis of that statement
//! only, and its leading keywords still tell what kind it is.
//!
//! Anything the classifier cannot see through — a parse failure, a `DO` block, `EXECUTE` of a
//! statement prepared elsewhere, `CALL` of a procedure — sets `analysable: false`, so the rules
//! can fail closed on it.
//!
//! Architecture invariant: pure function of the text; no I/O, no identities, no caching (see
//! `cache.rs`).

use std::collections::BTreeSet;
use std::ops::ControlFlow;

use serde::Serialize;
use sqlparser::ast::{
    AlterColumnOperation, AlterTableOperation, AssignmentTarget, CopySource, CopyTarget,
    DiscardObject, Expr, FromTable, Function, FunctionArg, FunctionArgExpr, FunctionArguments,
    MergeAction, ObjectName, ObjectNamePart, ObjectType, OnConflict, OnConflictAction, OnInsert,
    Query, Reset, Select, SelectItem, Set, SetExpr, Statement, TableFactor, TableObject, Value,
    Visit, Visitor,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

use crate::sql::lexer::{Lexer, TokenKind};

/// What one statement is, coarsely. Rules name these in `kinds = [...]`.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Serialize,
    serde::Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum StatementKind {
    Select,
    Insert,
    Update,
    Delete,
    Merge,
    /// `COPY … FROM` (a write) and `COPY … TO` (a read).
    Copy,
    Create,
    Alter,
    Drop,
    Truncate,
    Grant,
    Revoke,
    /// CREATE/ALTER/DROP ROLE or USER, SET ROLE, SET SESSION AUTHORIZATION, RESET ROLE, …
    Role,
    AlterSystem,
    Set,
    Show,
    Transaction,
    Explain,
    Prepare,
    Execute,
    Deallocate,
    Call,
    Do,
    /// VACUUM, ANALYZE, REINDEX, CLUSTER, REFRESH MATERIALIZED VIEW.
    Maintenance,
    Lock,
    /// Cursors, LISTEN/NOTIFY, COMMENT and other statements that fit none of the above.
    Other,
    /// Not recognised at all.
    Unknown,
}

impl StatementKind {
    /// True for kinds that change data, schema or privileges by themselves.
    fn writes(self) -> bool {
        use StatementKind::*;
        matches!(
            self,
            Insert
                | Update
                | Delete
                | Merge
                | Create
                | Alter
                | Drop
                | Truncate
                | Grant
                | Revoke
                | Role
                | AlterSystem
                | Call
                | Do
                | Execute
                | Maintenance
                | Unknown
        )
    }
}

/// One statement of the input, for people reading a decision.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct StatementSummary {
    pub kind: StatementKind,
    /// The command as PostgreSQL names it, e.g. `DROP TABLE`, `DELETE`, `SET ROLE`.
    pub command: String,
}

/// What a statement string does. Names are folded as PostgreSQL folds them (unquoted
/// identifiers to lower case), schema-qualified when the text qualifies them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Classification {
    /// False when some statement could not be analysed (parse failure, `DO`, `EXECUTE` of an
    /// unknown prepared statement, `CALL`): rules should fail closed on it.
    pub analysable: bool,
    pub statements: Vec<StatementSummary>,
    /// The distinct kinds, in first-seen order.
    pub kinds: Vec<StatementKind>,
    /// May change data, schema, privileges or server state (unknown counts as yes).
    pub writes: bool,
    pub tables_read: Vec<String>,
    pub tables_written: Vec<String>,
    /// Column references seen in expressions (`table.col` when qualified, `*` for a wildcard).
    pub columns_read: Vec<String>,
    /// Columns assigned by UPDATE or listed by INSERT.
    pub columns_written: Vec<String>,
    /// DELETE/UPDATE statements with no bounding WHERE clause (none, or one that is constant
    /// such as `WHERE true` or `WHERE 1 = 1`), e.g. `DELETE FROM orders`.
    pub unbounded_writes: Vec<String>,
    /// Dangerous functions called anywhere (lower case), e.g. `pg_terminate_backend`.
    pub dangerous_functions: Vec<String>,
    /// A CTE or subquery that inserts, updates or deletes (`WITH d AS (DELETE …) SELECT …`).
    pub data_modifying_cte: bool,
    /// `SELECT … INTO new_table` (creates and fills a table).
    pub select_into: bool,
    /// `EXPLAIN ANALYZE` of a statement that writes: ANALYZE executes it.
    pub explain_analyze_write: bool,
    /// DROP, TRUNCATE, or ALTER … DROP.
    pub destructive: bool,
    /// GRANT, REVOKE, REASSIGN/DROP OWNED, ALTER DEFAULT PRIVILEGES.
    pub privilege_change: bool,
    /// CREATE/ALTER/DROP ROLE or USER, SET ROLE, SET SESSION AUTHORIZATION, RESET ROLE,
    /// DISCARD ALL, `set_config('role', …)`.
    pub role_change: bool,
    pub alter_system: bool,
    /// COPY to or from a file on the database server, or a server-file function.
    pub server_file_access: bool,
    /// COPY to or from a program run on the database server.
    pub program_access: bool,
    /// Every function called, as PostgreSQL folds the name and qualified as written
    /// (`lower`, `pg_temp.lower`, `public.f`), in first-seen order.
    pub functions: Vec<String>,
    /// Called functions whose effects the gateway has not vetted: not a PostgreSQL built-in
    /// (user-defined, from an extension, or qualified with a schema other than `pg_catalog`), or
    /// a volatile built-in off the short vetted list (see `functions.rs`).
    pub unvetted_functions: Vec<String>,
    /// Settings changed by SET, RESET or `set_config(…)` (lower case), so they are visible.
    pub settings: Vec<String>,
    /// Defines code that later statements run: CREATE/ALTER FUNCTION, PROCEDURE, TRIGGER,
    /// RULE, OPERATOR, CAST, AGGREGATE, EXTENSION, LANGUAGE, LOAD.
    pub defines_code: bool,
    /// LOCK in a mode that blocks other sessions' reads or writes (SHARE and stronger, by
    /// PostgreSQL's lock conflict table; a plain `LOCK t` is ACCESS EXCLUSIVE).
    pub blocking_lock: bool,
    /// Changes settings every later session gets: ALTER DATABASE … SET/RESET.
    pub persistent_setting: bool,
    /// Why parts could not be analysed, in words.
    pub notes: Vec<String>,
    /// True when the classification depends on a literal's value (so two statements of the same
    /// shape may differ): the cache then keys it by exact text.
    #[serde(skip)]
    pub literal_sensitive: bool,
    /// Each statement of a string of several, classified on its own, in order (both readings'
    /// when a backslash makes the string ambiguous). Empty for a single statement: the whole
    /// is then that statement. Rules decide each statement separately.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(no_recursion)]
    pub each: Vec<Classification>,
}

impl Classification {
    fn kind(&mut self, kind: StatementKind, command: impl Into<String>) {
        self.statements.push(StatementSummary {
            kind,
            command: command.into(),
        });
        if !self.kinds.contains(&kind) {
            self.kinds.push(kind);
        }
        if kind.writes() {
            self.writes = true;
        }
    }

    fn not_analysable(&mut self, why: impl Into<String>) {
        self.analysable = false;
        self.writes = true;
        self.notes.push(why.into());
    }

    fn dangerous(&mut self, name: &str) {
        if !self.dangerous_functions.iter().any(|f| f == name) {
            self.dangerous_functions.push(name.to_string());
        }
        self.writes = true;
    }

    /// The commands of the statements, e.g. `DROP TABLE, SELECT`, for messages.
    pub fn commands(&self) -> String {
        let mut seen: Vec<&str> = Vec::new();
        for s in &self.statements {
            if !seen.contains(&s.command.as_str()) {
                seen.push(&s.command);
            }
        }
        seen.join(", ")
    }
}

/// Functions that reach outside the database's data: server files, other backends, other
/// servers, the server's configuration. Matched on the unqualified, lower-case name.
const DANGEROUS_FUNCTIONS: &[&str] = &[
    "pg_terminate_backend",
    "pg_cancel_backend",
    "pg_read_file",
    "pg_read_binary_file",
    "pg_ls_dir",
    "pg_stat_file",
    "pg_ls_logdir",
    "pg_ls_waldir",
    "pg_ls_tmpdir",
    "pg_ls_archive_statusdir",
    "pg_ls_logicalmapdir",
    "pg_ls_logicalsnapdir",
    "pg_ls_replslotdir",
    "pg_file_write",
    "pg_file_rename",
    "pg_file_unlink",
    "pg_file_sync",
    "pg_logdir_ls",
    "lo_import",
    "lo_export",
    "pg_reload_conf",
    "pg_rotate_logfile",
    "pg_promote",
    "pg_switch_wal",
    "pg_drop_replication_slot",
    "pg_create_physical_replication_slot",
    "pg_create_logical_replication_slot",
    "pg_replication_origin_drop",
    // These run the SQL text they are given, which the gateway never sees as a statement.
    "query_to_xml",
    "query_to_xmlschema",
    "query_to_xml_and_xmlschema",
];

/// Functions that read or write files on the database server.
const SERVER_FILE_FUNCTIONS: &[&str] = &[
    "pg_read_file",
    "pg_read_binary_file",
    "pg_ls_dir",
    "pg_stat_file",
    "pg_file_write",
    "pg_file_rename",
    "pg_file_unlink",
    "lo_import",
    "lo_export",
];

/// Settings that change who the session is.
const ROLE_SETTINGS: &[&str] = &["role", "session_authorization"];

fn is_dangerous(name: &str) -> bool {
    // dblink, dblink_exec, dblink_connect, …: all reach another server.
    DANGEROUS_FUNCTIONS.contains(&name) || name.starts_with("dblink")
}

/// How a session reads plain `'…'` strings (`standard_conforming_strings`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strings {
    /// `standard_conforming_strings = on` (PostgreSQL's default): a backslash is a character.
    Standard,
    /// `standard_conforming_strings = off`: a backslash escapes the next character.
    Backslash,
}

/// Classifies a statement string. Never fails: what cannot be understood is reported as
/// not analysable.
///
/// With a backslash in a plain `'…'` string, the text reads differently when the session has
/// `standard_conforming_strings = off` (`'a\'; DROP …` hides other statements), and the
/// gateway does not assume which: both readings count, each statement of each reading is
/// decided, and the result is cached by exact text.
pub fn classify(sql: &str) -> Classification {
    if crate::sql::has_backslash_string(sql) {
        let mut parts = classify_reading(sql, Strings::Standard);
        for p in classify_reading(sql, Strings::Backslash) {
            // Statements both readings agree on are listed once.
            if !parts.contains(&p) {
                parts.push(p);
            }
        }
        let mut c = whole(parts);
        c.literal_sensitive = true;
        c
    } else {
        whole(classify_reading(sql, Strings::Standard))
    }
}

/// Classifies `sql` as a session reading strings as `strings` says (the dry run's
/// `standard_conforming_strings`); [`classify`] when the session's setting is not known.
pub fn classify_as(sql: &str, strings: Strings) -> Classification {
    let mut c = whole(classify_reading(sql, strings));
    c.literal_sensitive |= crate::sql::has_backslash_string(sql);
    c
}

/// One classification for the whole string from its statements' own.
fn whole(mut parts: Vec<Classification>) -> Classification {
    if parts.len() == 1 {
        // The usual case: the statement is the whole (each part is already finished).
        if let Some(c) = parts.pop() {
            return c;
        }
    }
    let mut c = Classification {
        analysable: true,
        ..Default::default()
    };
    for p in &parts {
        merge(&mut c, p.clone());
    }
    finish(&mut c);
    if parts.len() > 1 {
        c.each = parts;
    }
    c
}

/// What earlier statements of the same string tell about later ones.
#[derive(Default)]
struct Context {
    /// `PREPARE name AS …` earlier in the string: what `EXECUTE name` runs.
    prepared: Vec<(String, Classification)>,
}

/// The statements of `sql` as a session reading strings as `strings` would run them, each
/// classified on its own.
fn classify_reading(sql: &str, strings: Strings) -> Vec<Classification> {
    let mut ctx = Context::default();
    let mut parts = Vec::new();
    for piece in split_statements(sql, strings == Strings::Backslash) {
        classify_piece(piece, strings, &mut ctx, &mut parts);
    }
    if parts.is_empty() {
        // An empty query string: PostgreSQL answers EmptyQueryResponse.
        let mut c = Classification {
            analysable: true,
            ..Default::default()
        };
        c.kind(StatementKind::Other, "EMPTY");
        parts.push(c);
    }
    parts
}

/// One statement (text between top-level semicolons) into `out`.
fn classify_piece(text: &str, strings: Strings, ctx: &mut Context, out: &mut Vec<Classification>) {
    let mut c = Classification {
        analysable: true,
        ..Default::default()
    };
    let lexemes = lexemes(text, strings);
    let normal = normalize(text, strings);
    let mut parsed = parse_agreeing(&normal, &lexemes.0);
    if parsed.is_err() {
        // XML constructors' labels are the one PostgreSQL syntax sqlparser cannot read in
        // everyday reads; without them the same calls on the same expressions remain.
        if let Some(plain) = without_xml_labels(text, strings) {
            let expected = self::lexemes(&plain, strings).0;
            if let Ok(stmts) = parse_agreeing(&normalize(&plain, strings), &expected) {
                parsed = Ok(stmts);
            }
        }
    }
    match parsed {
        Ok(stmts) if stmts.is_empty() => c.kind(StatementKind::Other, "EMPTY"),
        Ok(stmts) => {
            for s in &stmts {
                Walker::new(&mut c, ctx).statement(s);
            }
        }
        Err(e) => {
            if !classify_fallback(&mut c, text, &lexemes.1, ctx) {
                // sqlparser's message quotes the token it stopped at, which may be a value;
                // the note is shared by every statement of this shape.
                let e = match e.find(", found:") {
                    Some(i) => &e[..i],
                    None => &e,
                };
                classify_unparsed(&mut c, text, e);
            }
        }
    }
    keyword_facts(&mut c, &lexemes.1);
    finish(&mut c);
    out.push(c);
}

/// The statement without the labels of PostgreSQL's XML constructors, which are names, not
/// expressions: `xmlelement(name tag, …)` loses `name tag,`, and `xmlattributes(e AS label)`
/// and `xmlforest(e AS label)` lose `AS label` (only directly in their argument lists: a
/// `CAST(x AS t)` inside keeps its type). None when there is nothing to drop.
fn without_xml_labels(text: &str, strings: Strings) -> Option<String> {
    let lexer = match strings {
        Strings::Standard => Lexer::new(text),
        Strings::Backslash => Lexer::non_standard_strings(text),
    };
    let toks: Vec<crate::sql::lexer::Token> = lexer.collect();
    let word = |i: usize| -> Option<String> {
        toks.get(i)
            .filter(|t| t.kind == TokenKind::Word)
            .map(|t| t.text(text).to_ascii_lowercase())
    };
    let is = |i: usize, s: &str| toks.get(i).is_some_and(|t| t.text(text) == s);
    let is_name = |i: usize| {
        toks.get(i)
            .is_some_and(|t| matches!(t.kind, TokenKind::Word | TokenKind::QuotedIdent))
    };
    // The XML call each open parenthesis belongs to, if any.
    let mut frames: Vec<Option<String>> = Vec::new();
    let mut drop: Vec<(usize, usize)> = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        if is(i, "(") {
            let call = i
                .checked_sub(1)
                .and_then(word)
                .filter(|w| matches!(w.as_str(), "xmlelement" | "xmlattributes" | "xmlforest"));
            if call.as_deref() == Some("xmlelement")
                && word(i + 1).as_deref() == Some("name")
                && is_name(i + 2)
            {
                let end = if is(i + 3, ",") { i + 3 } else { i + 2 };
                drop.push((toks[i + 1].start, toks[end].end));
                frames.push(call);
                i = end + 1;
                continue;
            }
            frames.push(call);
        } else if is(i, ")") {
            frames.pop();
        } else if word(i).as_deref() == Some("as")
            && matches!(
                frames.last(),
                Some(Some(c)) if c == "xmlattributes" || c == "xmlforest"
            )
            && is_name(i + 1)
        {
            drop.push((toks[i].start, toks[i + 1].end));
            i += 2;
            continue;
        }
        i += 1;
    }
    if drop.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for (a, b) in drop {
        out.push_str(&text[at..a]);
        out.push(' ');
        at = b;
    }
    out.push_str(&text[at..]);
    Some(out)
}

/// What must read the same to PostgreSQL's scanner (our lexer) and to sqlparser's tokenizer
/// before the gateway trusts sqlparser's tree: words, quoted identifiers, literals, parameters
/// and semicolons, in order. Operators are left out: the two group them differently without
/// changing the meaning.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Lexeme {
    Word(String),
    Quoted,
    Literal,
    Param,
    Semicolon,
}

/// The lexemes of a statement as PostgreSQL reads it, and its words alone (lower case) for
/// keyword checks.
fn lexemes(text: &str, strings: Strings) -> (Vec<Lexeme>, Vec<String>) {
    let lexer = match strings {
        Strings::Standard => Lexer::new(text),
        Strings::Backslash => Lexer::non_standard_strings(text),
    };
    let mut all = Vec::new();
    let mut words = Vec::new();
    for t in lexer {
        match t.kind {
            TokenKind::Word => {
                let w = t.text(text).to_lowercase();
                words.push(w.clone());
                all.push(Lexeme::Word(w));
            }
            TokenKind::QuotedIdent => all.push(Lexeme::Quoted),
            TokenKind::String | TokenKind::Number => all.push(Lexeme::Literal),
            TokenKind::Param => all.push(Lexeme::Param),
            TokenKind::Semicolon => all.push(Lexeme::Semicolon),
            TokenKind::Other => {}
        }
    }
    (all, words)
}

/// The statement as sqlparser should see it: comments replaced by a space (sqlparser's idea
/// of where a comment ends is not PostgreSQL's: a bare `\r` ends a `--` comment), and, when
/// strings take backslash escapes, each plain `'…'` string with a backslash written as the
/// `E'…'` string it is.
fn normalize(text: &str, strings: Strings) -> String {
    let lexer = match strings {
        Strings::Standard => Lexer::new(text),
        Strings::Backslash => Lexer::non_standard_strings(text),
    };
    let mut out = String::with_capacity(text.len());
    let mut prev = 0;
    for t in lexer {
        let gap = &text[prev..t.start];
        if gap.bytes().all(|b| b.is_ascii_whitespace()) {
            out.push_str(gap);
        } else if gap.contains(['\n', '\r']) {
            out.push('\n');
        } else {
            out.push(' ');
        }
        let tok = t.text(text);
        if strings == Strings::Backslash && t.kind == TokenKind::String && tok.contains('\\') {
            match tok.as_bytes().first() {
                Some(b'\'') => {
                    out.push('E');
                    out.push_str(tok);
                }
                Some(b'n' | b'N') if tok.as_bytes().get(1) == Some(&b'\'') => {
                    out.push('E');
                    out.push_str(&tok[1..]);
                }
                _ => out.push_str(tok),
            }
        } else {
            out.push_str(tok);
        }
        prev = t.end;
    }
    out
}

/// Parses `normal` with sqlparser, but only when its tokenizer reads the same lexemes as
/// PostgreSQL's scanner would (`expected`); otherwise the tree could describe another
/// statement than the one the server runs, and the statement counts as not parsed.
fn parse_agreeing(normal: &str, expected: &[Lexeme]) -> Result<Vec<Statement>, String> {
    use sqlparser::tokenizer::{Token, Tokenizer};
    let dialect = PostgreSqlDialect {};
    let tokens = Tokenizer::new(&dialect, normal)
        .tokenize_with_location()
        .map_err(|e| e.to_string())?;
    let mut i = 0;
    for t in &tokens {
        let l = match &t.token {
            Token::Word(w) if w.quote_style.is_none() => Lexeme::Word(w.value.to_lowercase()),
            Token::Word(_) => Lexeme::Quoted,
            Token::Number(..)
            | Token::SingleQuotedString(_)
            | Token::DollarQuotedString(_)
            | Token::NationalStringLiteral(_)
            | Token::EscapedStringLiteral(_)
            | Token::UnicodeStringLiteral(_)
            | Token::HexStringLiteral(_) => Lexeme::Literal,
            Token::Placeholder(_) => Lexeme::Param,
            Token::SemiColon => Lexeme::Semicolon,
            // Any other quoting form is not PostgreSQL's: a disagreement.
            Token::DoubleQuotedString(_)
            | Token::TripleSingleQuotedString(_)
            | Token::TripleDoubleQuotedString(_)
            | Token::SingleQuotedByteStringLiteral(_)
            | Token::DoubleQuotedByteStringLiteral(_)
            | Token::TripleSingleQuotedByteStringLiteral(_)
            | Token::TripleDoubleQuotedByteStringLiteral(_)
            | Token::SingleQuotedRawStringLiteral(_)
            | Token::DoubleQuotedRawStringLiteral(_)
            | Token::TripleSingleQuotedRawStringLiteral(_)
            | Token::TripleDoubleQuotedRawStringLiteral(_)
            | Token::QuoteDelimitedStringLiteral(_)
            | Token::NationalQuoteDelimitedStringLiteral(_) => {
                return Err("sqlparser reads a quoting form PostgreSQL does not have".into())
            }
            _ => continue,
        };
        if expected.get(i) != Some(&l) {
            return Err(
                "sqlparser would read this text differently from PostgreSQL's scanner".into(),
            );
        }
        i += 1;
    }
    if i != expected.len() {
        return Err("sqlparser would read this text differently from PostgreSQL's scanner".into());
    }
    Parser::new(&dialect)
        .with_tokens_with_locations(tokens)
        .parse_statements()
        .map_err(|e| e.to_string())
}

/// Sorts and deduplicates the name lists.
fn finish(c: &mut Classification) {
    for list in [
        &mut c.tables_read,
        &mut c.tables_written,
        &mut c.columns_read,
        &mut c.columns_written,
    ] {
        list.sort();
        list.dedup();
    }
    c.unbounded_writes.dedup();
}

/// Splits at top-level semicolons using the lexer, so semicolons in strings, quoted identifiers,
/// dollar quotes and comments do not split. Empty statements are dropped. `non_standard` reads
/// `'…'` with backslash escapes (`standard_conforming_strings = off`).
pub(crate) fn split_statements(sql: &str, non_standard: bool) -> Vec<&str> {
    let lexer = if non_standard {
        Lexer::non_standard_strings(sql)
    } else {
        Lexer::new(sql)
    };
    let mut out = Vec::new();
    let mut start: Option<usize> = None;
    let mut end = 0;
    for t in lexer {
        if t.kind == TokenKind::Semicolon {
            if let Some(s) = start.take() {
                out.push(&sql[s..end]);
            }
        } else {
            start.get_or_insert(t.start);
            end = t.end;
        }
    }
    if let Some(s) = start {
        out.push(&sql[s..end]);
    }
    out
}

/// Statements sqlparser cannot read whose meaning is certain from their words alone. Returns
/// false when it is not one of them.
fn classify_fallback(
    c: &mut Classification,
    text: &str,
    words: &[String],
    _ctx: &mut Context,
) -> bool {
    match words.first().map(String::as_str) {
        // `FETCH ALL c`, `FETCH ALL FROM c`, `MOVE NEXT IN c`: they read (or move in) a cursor
        // whose query was classified when it was declared. Only words, numbers, signs and a
        // quoted cursor name may follow: anything else is not a FETCH the gateway understands.
        Some(verb @ ("fetch" | "move")) => {
            let plain = Lexer::new(text).all(|t| match t.kind {
                TokenKind::Word | TokenKind::Number | TokenKind::QuotedIdent => true,
                TokenKind::Other => matches!(t.text(text), "-" | "+"),
                _ => false,
            });
            if plain {
                c.kind(StatementKind::Other, verb.to_ascii_uppercase());
            }
            plain
        }
        _ => false,
    }
}

/// Facts told by keywords, whatever sqlparser made of the statement (or whether it could read
/// it at all): they hold in every variant of the syntax, so new sqlparser versions and
/// statements it cannot parse are covered alike. Words are keywords or unquoted names, never
/// the inside of strings or quoted identifiers.
fn keyword_facts(c: &mut Classification, w: &[String]) {
    let has = |seq: &[&str]| {
        w.windows(seq.len())
            .any(|x| x.iter().zip(seq).all(|(a, b)| a == b))
    };
    let verb = w.first().map(String::as_str).unwrap_or("");
    // The object a CREATE/ALTER/DROP acts on, past its modifiers.
    let object = w
        .iter()
        .skip(1)
        .map(String::as_str)
        .find(|x| {
            !matches!(
                *x,
                "or" | "replace"
                    | "temp"
                    | "temporary"
                    | "trusted"
                    | "procedural"
                    | "constraint"
                    | "event"
                    | "if"
                    | "exists"
            )
        })
        .unwrap_or("");
    match verb {
        "create" | "alter" => {
            if matches!(
                object,
                "function"
                    | "procedure"
                    | "trigger"
                    | "rule"
                    | "operator"
                    | "cast"
                    | "aggregate"
                    | "extension"
                    | "language"
                    | "transform"
                    | "conversion"
            ) {
                c.defines_code = true;
                c.writes = true;
            }
            // A function that runs with its owner's rights.
            if has(&["security", "definer"]) {
                c.privilege_change = true;
            }
            // Row-level security switched off, or no longer applied to the owner.
            if has(&["disable", "row", "level", "security"])
                || has(&["no", "force", "row", "level", "security"])
            {
                c.privilege_change = true;
            }
            // Triggers and rules are often the audit or the integrity checks.
            if has(&["disable", "trigger"]) || has(&["disable", "rule"]) {
                c.privilege_change = true;
            }
            // `… OWNER TO r` gives an object away; `RENAME [COLUMN] owner TO x` does not.
            if w.windows(2).enumerate().any(|(i, x)| {
                x[0] == "owner"
                    && x[1] == "to"
                    && !(i > 0 && matches!(w[i - 1].as_str(), "rename" | "column"))
            }) {
                c.privilege_change = true;
            }
            if object == "policy" {
                c.privilege_change = true;
            }
            if verb == "alter"
                && object == "database"
                && w.iter().any(|x| x == "set" || x == "reset")
            {
                c.persistent_setting = true;
                c.writes = true;
            }
        }
        "drop" if object == "policy" => c.privilege_change = true,
        // LOAD puts a shared library into the server process.
        "load" => {
            c.defines_code = true;
            c.writes = true;
        }
        "lock" => {
            // `LOCK [TABLE] name [, …] [IN mode MODE] [NOWAIT]`; the default mode is ACCESS
            // EXCLUSIVE. Plain reads take ACCESS SHARE and writes ROW EXCLUSIVE: the modes
            // that conflict with either are SHARE and stronger (SHARE UPDATE EXCLUSIVE blocks
            // neither).
            let mode = match w.iter().position(|x| x == "in") {
                Some(i) => {
                    let end = w.iter().rposition(|x| x == "mode").unwrap_or(w.len());
                    w.get(i + 1..end).map(|m| m.join(" ")).unwrap_or_default()
                }
                None => "access exclusive".into(),
            };
            if !matches!(
                mode.as_str(),
                "access share" | "row share" | "row exclusive" | "share update exclusive"
            ) {
                c.blocking_lock = true;
            }
        }
        _ => {}
    }
}

/// The first few words of a statement, upper case, skipping comments.
fn leading_words(text: &str, n: usize) -> Vec<String> {
    Lexer::new(text)
        .filter(|t| t.kind == TokenKind::Word)
        .take(n)
        .map(|t| t.text(text).to_ascii_uppercase())
        .collect()
}

/// A statement sqlparser could not read: not analysable, but its leading keywords still say
/// what kind it is, so deny rules on kinds and flags apply to it too.
fn classify_unparsed(c: &mut Classification, text: &str, error: &str) {
    let w = leading_words(text, 3);
    let w: Vec<&str> = w.iter().map(String::as_str).collect();
    use StatementKind as K;
    match w.as_slice() {
        ["ALTER", "SYSTEM", ..] => {
            // Fully understood: it changes the server's configuration file.
            c.kind(K::AlterSystem, "ALTER SYSTEM");
            c.alter_system = true;
            return;
        }
        ["DO", ..] => {
            c.kind(K::Do, "DO");
            c.not_analysable("a DO block runs procedural code the gateway cannot inspect");
            return;
        }
        ["REASSIGN", "OWNED", ..] => {
            c.kind(K::Grant, "REASSIGN OWNED");
            c.privilege_change = true;
        }
        ["DROP", "OWNED", ..] => {
            c.kind(K::Drop, "DROP OWNED");
            c.privilege_change = true;
            c.destructive = true;
        }
        [verb @ ("CREATE" | "ALTER" | "DROP"), obj @ ("ROLE" | "USER" | "GROUP"), ..] => {
            c.kind(K::Role, format!("{verb} {obj}"));
            c.role_change = true;
        }
        ["SET", "ROLE", ..] | ["SET", "SESSION" | "LOCAL", "ROLE" | "AUTHORIZATION", ..] => {
            c.kind(K::Role, "SET ROLE");
            c.role_change = true;
        }
        ["GRANT", ..] => {
            c.kind(K::Grant, "GRANT");
            c.privilege_change = true;
        }
        ["REVOKE", ..] => {
            c.kind(K::Revoke, "REVOKE");
            c.privilege_change = true;
        }
        ["DROP", obj, ..] => {
            c.kind(K::Drop, format!("DROP {obj}"));
            c.destructive = true;
        }
        ["TRUNCATE", ..] => {
            c.kind(K::Truncate, "TRUNCATE");
            c.destructive = true;
        }
        ["COPY", ..] => {
            c.kind(K::Copy, "COPY");
            let upper = text.to_ascii_uppercase();
            if upper.contains("PROGRAM") {
                c.program_access = true;
            }
        }
        ["CALL", ..] => c.kind(K::Call, "CALL"),
        ["TABLE", ..] => {
            // `TABLE x` is `SELECT * FROM x`, which sqlparser does read.
            let rest = text.trim_start()[5..].trim_start();
            let rewritten = format!("SELECT * FROM {rest}");
            let expected = lexemes(&rewritten, Strings::Standard).0;
            if let Ok(stmts) = parse_agreeing(&normalize(&rewritten, Strings::Standard), &expected)
            {
                if stmts.len() == 1 {
                    Walker::new(c, &mut Context::default()).statement(&stmts[0]);
                    return;
                }
            }
            c.kind(K::Select, "TABLE");
        }
        ["VACUUM" | "ANALYZE" | "ANALYSE" | "CHECKPOINT", ..] => {
            // Maintenance that changes no data; understood from the keyword alone.
            c.kind(K::Maintenance, w[0]);
            return;
        }
        [first, ..] => {
            let kind = match *first {
                "SELECT" | "WITH" | "VALUES" | "TABLE" => K::Select,
                "INSERT" => K::Insert,
                "UPDATE" => K::Update,
                "DELETE" => K::Delete,
                "MERGE" => K::Merge,
                "CREATE" => K::Create,
                "ALTER" => K::Alter,
                "EXPLAIN" => K::Explain,
                "PREPARE" => K::Prepare,
                "EXECUTE" => K::Execute,
                "VACUUM" | "ANALYZE" | "ANALYSE" | "REINDEX" | "CLUSTER" | "REFRESH" => {
                    K::Maintenance
                }
                _ => K::Unknown,
            };
            c.kind(kind, *first);
        }
        [] => c.kind(K::Unknown, "UNKNOWN"),
    }
    c.not_analysable(format!(
        "the gateway cannot parse `{}`: {error}",
        abbreviate(text)
    ));
}

/// The statement for a note: its tokens with every literal written `?`. A classification is
/// shared by every statement of its shape (and its reason shown to whoever runs one), so it
/// must not carry one caller's values to another.
fn abbreviate(text: &str) -> String {
    const MAX: usize = 60;
    let one_line: String = Lexer::new(text)
        .map(|t| match t.kind {
            TokenKind::String | TokenKind::Number | TokenKind::Param => "?",
            _ => t.text(text),
        })
        .collect::<Vec<_>>()
        .join(" ");
    match one_line.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}…", &one_line[..i]),
        None => one_line,
    }
}

/// A name as PostgreSQL resolves it: unquoted parts folded to lower case, joined by `.`.
pub fn object_name(name: &ObjectName) -> String {
    let mut out = String::new();
    for (i, part) in name.0.iter().enumerate() {
        if i > 0 {
            out.push('.');
        }
        match part {
            ObjectNamePart::Identifier(id) if id.quote_style.is_none() => {
                out.push_str(&id.value.to_lowercase())
            }
            ObjectNamePart::Identifier(id) => out.push_str(&id.value),
            ObjectNamePart::Function(f) => out.push_str(&f.to_string()),
        }
    }
    out
}

/// An identifier as PostgreSQL resolves it: folded to lower case unless quoted.
pub(crate) fn ident(id: &sqlparser::ast::Ident) -> String {
    if id.quote_style.is_none() {
        id.value.to_lowercase()
    } else {
        id.value.clone()
    }
}

/// The last part of a name: what a function or table is called without its schema.
pub(crate) fn last_part(name: &ObjectName) -> String {
    match name.0.last() {
        Some(ObjectNamePart::Identifier(id)) => ident(id),
        Some(ObjectNamePart::Function(f)) => f.to_string().to_lowercase(),
        None => String::new(),
    }
}

/// True when `selection` limits the rows a DELETE/UPDATE touches.
///
/// The rule: a WHERE bounds only when one of its top-level AND branches is, on its own, a
/// comparison of a bare column with a value — `col = v`, `col <|<=|>|>= v`, `col IN (v, …)`,
/// `col = ANY(v)`, `col BETWEEN v AND v` (either side), where a value is a literal, a
/// parameter or an expression over them with no column and no subquery (`now() - interval
/// '1 day'`). An OR bounds when every branch does. Nothing else counts: not a constant
/// (`WHERE true`, `1 IN (1)`), not a comparison of columns (`x = x`, `t.id = u.id`: a join
/// may match every row), not `IS [NOT] NULL`, `<>`, `NOT …`, LIKE, EXISTS or a subquery. The
/// rule reads no literal's value, so every statement of one shape gets the same answer.
fn bounded(selection: Option<&Expr>) -> bool {
    match selection {
        None => false,
        Some(e) => bounds(e),
    }
}

fn bounds(e: &Expr) -> bool {
    use sqlparser::ast::BinaryOperator as Op;
    match e {
        Expr::Nested(inner) => bounds(inner),
        Expr::BinaryOp {
            left,
            op: Op::Or,
            right,
        } => bounds(left) && bounds(right),
        Expr::BinaryOp {
            left,
            op: Op::And,
            right,
        } => bounds(left) || bounds(right),
        Expr::BinaryOp {
            left,
            op: Op::Eq | Op::Lt | Op::LtEq | Op::Gt | Op::GtEq,
            right,
        } => (is_column(left) && is_value(right)) || (is_value(left) && is_column(right)),
        Expr::In {
            expr,
            target: sqlparser::ast::InTarget::List(list),
            negated: false,
            ..
        } => is_column(expr) && !list.is_empty() && list.iter().all(is_value),
        Expr::AnyOp {
            left,
            compare_op,
            right,
            ..
        } => matches!(compare_op, Op::Eq) && is_column(left) && is_value(right),
        Expr::Between {
            expr,
            negated: false,
            low,
            high,
        } => is_column(expr) && is_value(low) && is_value(high),
        _ => false,
    }
}

/// A column reference, possibly cast or parenthesised.
fn is_column(e: &Expr) -> bool {
    match e {
        Expr::Identifier(_) | Expr::CompoundIdentifier(_) => true,
        Expr::Nested(inner) | Expr::Cast { expr: inner, .. } => is_column(inner),
        _ => false,
    }
}

/// An expression whose value does not depend on the row: no column, no subquery.
fn is_value(e: &Expr) -> bool {
    struct Finder(bool);
    impl Visitor for Finder {
        type Break = ();
        fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
            if matches!(
                e,
                Expr::Identifier(_)
                    | Expr::CompoundIdentifier(_)
                    | Expr::Subquery(_)
                    | Expr::Exists { .. }
                    | Expr::In {
                        target: sqlparser::ast::InTarget::Subquery(_)
                            | sqlparser::ast::InTarget::Table { .. },
                        ..
                    }
            ) {
                self.0 = true;
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        }
    }
    let mut f = Finder(false);
    let _ = e.visit(&mut f);
    !f.0
}

/// How to walk what is inside a statement.
#[derive(Debug, Clone, Copy)]
enum Frame {
    Plain,
    /// EXPLAIN without ANALYZE: planned, not run; its tables count as reads only.
    PlanOnly,
    /// Already classified on its own (PREPARE's body, EXPLAIN ANALYZE's statement).
    Skip,
}

/// Walks one parsed statement (and everything nested in it) into a [`Classification`].
struct Walker<'c> {
    c: &'c mut Classification,
    /// What earlier statements of the string prepared.
    ctx: &'c mut Context,
    /// Depth of nested statements; above 0 we are inside a query (a data-modifying CTE).
    depth: usize,
    /// Inside `EXPLAIN` without ANALYZE: the inner statement is planned, not run.
    plan_only: usize,
    /// Inside a statement already classified on its own (PREPARE's, EXPLAIN ANALYZE's).
    skip: usize,
    /// What each open statement added to `plan_only`/`skip`, undone when it closes.
    frames: Vec<Frame>,
    /// Every relation named (reads and write targets alike).
    relations: Vec<String>,
    /// Write targets; one occurrence of each is removed from `relations` to get the reads.
    targets: Vec<String>,
    /// CTE names: `FROM x` where x is a CTE reads no table.
    ctes: BTreeSet<String>,
    /// False inside SET, whose values are words, not columns.
    columns: bool,
    /// `SELECT … INTO` targets, which the expression walk mistakes for columns.
    into_names: Vec<String>,
    /// Relations that are really table functions (`FROM pg_ls_dir('.')`).
    table_functions: Vec<String>,
}

impl<'c> Walker<'c> {
    fn new(c: &'c mut Classification, ctx: &'c mut Context) -> Self {
        Walker {
            c,
            ctx,
            depth: 0,
            plan_only: 0,
            skip: 0,
            frames: Vec::new(),
            relations: Vec::new(),
            targets: Vec::new(),
            ctes: BTreeSet::new(),
            table_functions: Vec::new(),
            into_names: Vec::new(),
            columns: true,
        }
    }

    fn statement(mut self, s: &Statement) {
        let columns_before = self.c.columns_read.len();
        let _ = s.visit(&mut self);
        if !self.into_names.is_empty() {
            let into = std::mem::take(&mut self.into_names);
            let mut i = columns_before;
            while i < self.c.columns_read.len() {
                if into.contains(&self.c.columns_read[i]) {
                    self.c.columns_read.remove(i);
                } else {
                    i += 1;
                }
            }
        }
        let mut reads = self.relations;
        for t in self.targets.iter().chain(self.table_functions.iter()) {
            if let Some(i) = reads.iter().position(|r| r == t) {
                reads.remove(i);
            }
        }
        reads.retain(|r| !self.ctes.contains(r));
        self.c.tables_read.extend(reads);
        self.targets.retain(|r| !self.ctes.contains(r));
        self.c.tables_written.extend(self.targets);
    }

    fn target(&mut self, name: &ObjectName) {
        if self.plan_only == 0 {
            self.targets.push(object_name(name));
        }
    }

    fn function(&mut self, name: &ObjectName, args: Option<&[FunctionArg]>) {
        let full = object_name(name);
        let n = last_part(name);
        let builtin_name = !full.contains('.') || full.starts_with("pg_catalog.");
        if self.plan_only > 0 {
            // EXPLAIN without ANALYZE runs nothing volatile, but the planner folds calls it is
            // told are immutable, and only a built-in's word for that can be trusted.
            if !builtin_name || super::functions::builtin(&n).is_none() {
                self.c.writes = true;
                push_unique(&mut self.c.functions, full.clone());
                push_unique(&mut self.c.unvetted_functions, full);
            }
            return;
        }
        push_unique(&mut self.c.functions, full.clone());
        if is_dangerous(&n) {
            self.c.dangerous(&n);
            if SERVER_FILE_FUNCTIONS.contains(&n.as_str()) {
                self.c.server_file_access = true;
            }
        }
        let args = args.unwrap_or_default();
        match n.as_str() {
            "set_config" if builtin_name => {
                // set_config('role', …) is SET ROLE in disguise; only the first argument's
                // value says so, which makes this classification depend on a literal.
                self.c.literal_sensitive = true;
                match args.first().and_then(string_arg) {
                    // GUC names are matched case-insensitively by the server.
                    Some(setting) => {
                        let setting = setting.to_lowercase();
                        if ROLE_SETTINGS.contains(&setting.as_str()) {
                            self.c.role_change = true;
                            self.c.dangerous("set_config");
                        }
                        push_unique(&mut self.c.settings, setting);
                    }
                    // A parameter or an expression: it may name a role setting.
                    None => {
                        self.c.role_change = true;
                        self.c.dangerous("set_config");
                    }
                }
                return;
            }
            // These run the SQL text they are given, which the gateway never sees as a
            // statement: `ts_stat(query)`, and `ts_rewrite(tsquery, query)` (its two-argument
            // form; the three-argument one only substitutes).
            "ts_stat" => self.c.dangerous(&n),
            "ts_rewrite" if args.len() == 2 => self.c.dangerous(&n),
            // These read every row of the table they name in a string.
            "table_to_xml" | "table_to_xmlschema" | "table_to_xml_and_xmlschema" => {
                self.c.literal_sensitive = true;
                match args.first().and_then(string_arg) {
                    Some(t) => match parse_qualified_name(&t) {
                        Some(t) => self.relations.push(t),
                        None => self
                            .c
                            .not_analysable(format!("{n} names a table the gateway cannot read")),
                    },
                    None => self.c.not_analysable(format!(
                        "{n} reads a table the gateway cannot name from its arguments"
                    )),
                }
            }
            // These read every table of a schema (or of the database): the tables are
            // recorded as `schema.*` (or `*`), which table rules on that schema match.
            "schema_to_xml" | "schema_to_xmlschema" | "schema_to_xml_and_xmlschema" => {
                self.c.literal_sensitive = true;
                match args.first().and_then(string_arg) {
                    Some(schema) => self.relations.push(format!("{schema}.*")),
                    None => self.relations.push("*".into()),
                }
            }
            "database_to_xml" | "database_to_xmlschema" | "database_to_xml_and_xmlschema" => {
                self.relations.push("*".into())
            }
            _ => {}
        }
        let quoted = matches!(
            name.0.last(),
            Some(ObjectNamePart::Identifier(id)) if id.quote_style.is_some()
        );
        if !super::functions::vetted_call(&full, quoted) {
            // Unknown effects count as changes (`writes`: unknown counts as yes).
            self.c.writes = true;
            push_unique(&mut self.c.unvetted_functions, full);
        }
    }

    fn assignments(&mut self, assignments: &[sqlparser::ast::Assignment]) {
        for a in assignments {
            match &a.target {
                AssignmentTarget::ColumnName(n) => self.c.columns_written.push(object_name(n)),
                AssignmentTarget::Tuple(ns) => {
                    self.c.columns_written.extend(ns.iter().map(object_name))
                }
            }
        }
    }

    fn delete_targets(&mut self, tables: &[ObjectName], from: &FromTable) {
        if !tables.is_empty() {
            for t in tables {
                self.target(t);
            }
            return;
        }
        let (FromTable::WithFromKeyword(f) | FromTable::WithoutKeyword(f)) = from;
        for twj in f {
            if let TableFactor::Table { name, .. } = &twj.relation {
                self.target(name);
            }
        }
    }

    /// Kind, flags and write targets of one statement (top-level or nested); says how to walk
    /// what is inside it.
    fn describe(&mut self, s: &Statement) -> Frame {
        use StatementKind as K;
        let nested = self.depth > 0;
        // Inside EXPLAIN (no ANALYZE) a statement is only planned: record its tables as reads.
        if self.plan_only > 0 {
            return Frame::Plain;
        }
        match s {
            Statement::Query(_) => {
                if !nested {
                    self.c.kind(K::Select, "SELECT");
                }
            }
            Statement::Insert(i) => {
                if nested {
                    self.c.data_modifying_cte = true;
                }
                self.c.kind(K::Insert, "INSERT");
                let mut name = String::new();
                if let TableObject::TableName(n) = &i.table {
                    self.target(n);
                    name = object_name(n);
                }
                self.c
                    .columns_written
                    .extend(i.columns.iter().map(object_name));
                if let Some(OnInsert::OnConflict(OnConflict {
                    action: OnConflictAction::DoUpdate(u),
                    ..
                })) = &i.on
                {
                    // ON CONFLICT DO UPDATE updates one row per source row: from VALUES that
                    // is as many rows as written; from a query, possibly every row.
                    self.assignments(&u.assignments);
                    let from_values = i
                        .source
                        .as_ref()
                        .is_some_and(|q| matches!(q.body.as_ref(), SetExpr::Values(_)));
                    if !from_values && self.plan_only == 0 {
                        self.c
                            .unbounded_writes
                            .push(format!("INSERT INTO {name} … ON CONFLICT DO UPDATE"));
                    }
                }
            }
            Statement::Update(u) => {
                if nested {
                    self.c.data_modifying_cte = true;
                }
                self.c.kind(K::Update, "UPDATE");
                let mut name = String::new();
                if let TableFactor::Table { name: n, .. } = &u.table.relation {
                    self.target(n);
                    name = object_name(n);
                }
                self.assignments(&u.assignments);
                if !bounded(u.selection.as_ref()) {
                    self.c.unbounded_writes.push(format!("UPDATE {name}"));
                }
            }
            Statement::Delete(d) => {
                if nested {
                    self.c.data_modifying_cte = true;
                }
                self.c.kind(K::Delete, "DELETE");
                let before = self.targets.len();
                self.delete_targets(&d.tables, &d.from);
                let names = self.targets[before..].join(", ");
                if !bounded(d.selection.as_ref()) {
                    self.c.unbounded_writes.push(format!("DELETE FROM {names}"));
                }
            }
            Statement::Merge(m) => {
                if nested {
                    self.c.data_modifying_cte = true;
                }
                self.c.kind(K::Merge, "MERGE");
                let mut target = String::new();
                if let TableFactor::Table { name, .. } = &m.table {
                    self.target(name);
                    target = object_name(name);
                }
                let mut changes_matched = false;
                for clause in &m.clauses {
                    match &clause.action {
                        MergeAction::Update(u) => {
                            changes_matched = true;
                            if let sqlparser::ast::MergeUpdateKind::Set(a) = &u.kind {
                                self.assignments(a);
                            }
                        }
                        MergeAction::Delete { .. } => changes_matched = true,
                        _ => {}
                    }
                }
                // WHEN MATCHED THEN UPDATE/DELETE touches every target row the join condition
                // matches: bounded only when that condition is selective on its own.
                if changes_matched && !bounds(&m.on) {
                    self.c.unbounded_writes.push(format!("MERGE INTO {target}"));
                }
            }
            Statement::Copy {
                source, to, target, ..
            } => {
                match target {
                    CopyTarget::File { .. } => self.c.server_file_access = true,
                    CopyTarget::Program { .. } => self.c.program_access = true,
                    CopyTarget::Stdin | CopyTarget::Stdout => {}
                }
                if *to {
                    self.c.kind(K::Copy, "COPY TO");
                    // `COPY t TO …` reads every row of t (the tree's walk does not name it as
                    // a relation; `COPY (query) TO` is walked as a query).
                    if let CopySource::Table { table_name, .. } = source {
                        if self.plan_only == 0 {
                            self.relations.push(object_name(table_name));
                        }
                    }
                } else {
                    self.c.kind(K::Copy, "COPY FROM");
                    // COPY FROM fills a table: a write, like INSERT.
                    self.c.writes = true;
                    if let CopySource::Table {
                        table_name,
                        columns,
                    } = source
                    {
                        self.target(table_name);
                        self.c.columns_written.extend(columns.iter().map(ident));
                    }
                }
            }
            Statement::Drop {
                object_type, names, ..
            } => {
                let what = object_type.to_string().to_uppercase();
                match object_type {
                    ObjectType::Role | ObjectType::User => {
                        self.c.kind(K::Role, format!("DROP {what}"));
                        self.c.role_change = true;
                    }
                    _ => self.c.kind(K::Drop, format!("DROP {what}")),
                }
                self.c.destructive = true;
                if matches!(
                    object_type,
                    ObjectType::Table | ObjectType::View | ObjectType::MaterializedView
                ) {
                    for n in names {
                        self.target(n);
                    }
                }
            }
            Statement::DropFunction(_)
            | Statement::DropProcedure { .. }
            | Statement::DropDomain(_)
            | Statement::DropPolicy(_)
            | Statement::DropTrigger(_)
            | Statement::DropExtension(_)
            | Statement::DropOperator(_)
            | Statement::DropOperatorFamily(_)
            | Statement::DropOperatorClass(_)
            | Statement::DropRule(_)
            | Statement::DropSecret { .. }
            | Statement::DropConnector { .. } => {
                let cmd = leading_words(&s.to_string(), 2).join(" ");
                self.c.kind(K::Drop, cmd);
                self.c.destructive = true;
            }
            Statement::Truncate(t) => {
                self.c.kind(K::Truncate, "TRUNCATE");
                self.c.destructive = true;
                for n in &t.table_names {
                    self.target(&n.name);
                }
            }
            Statement::AlterTable(a) => {
                // Every ALTER TABLE operation that removes something is a `Drop…` variant;
                // matching on the name keeps new sqlparser variants covered.
                let drops = a.operations.iter().any(|op| {
                    matches!(op, AlterTableOperation::DropColumn { .. })
                        || format!("{op:?}").starts_with("Drop")
                });
                // ALTER COLUMN … TYPE rewrites every row (USING may compute anything; a
                // narrower type rounds or truncates): a destructive, unbounded write.
                let retypes = a.operations.iter().any(|op| {
                    matches!(
                        op,
                        AlterTableOperation::AlterColumn {
                            op: AlterColumnOperation::SetDataType { .. },
                            ..
                        }
                    )
                });
                if retypes {
                    self.c.kind(K::Alter, "ALTER TABLE … TYPE");
                    self.c.destructive = true;
                    self.c
                        .unbounded_writes
                        .push(format!("ALTER TABLE {} … TYPE", object_name(&a.name)));
                } else if drops {
                    self.c.kind(K::Alter, "ALTER TABLE … DROP");
                    self.c.destructive = true;
                } else {
                    self.c.kind(K::Alter, "ALTER TABLE");
                }
                self.target(&a.name);
            }
            Statement::CreateRole(_) => {
                self.c.kind(K::Role, "CREATE ROLE");
                self.c.role_change = true;
            }
            Statement::CreateUser(_) => {
                self.c.kind(K::Role, "CREATE USER");
                self.c.role_change = true;
            }
            Statement::AlterRole { .. } => {
                self.c.kind(K::Role, "ALTER ROLE");
                self.c.role_change = true;
            }
            Statement::AlterUser(_) => {
                self.c.kind(K::Role, "ALTER USER");
                self.c.role_change = true;
            }
            Statement::Grant(_) | Statement::GrantRole(_) => {
                self.c.kind(K::Grant, "GRANT");
                self.c.privilege_change = true;
            }
            Statement::Revoke(_) | Statement::RevokeRole(_) | Statement::Deny(_) => {
                self.c.kind(K::Revoke, "REVOKE");
                self.c.privilege_change = true;
            }
            Statement::AlterDefaultPrivileges(_) => {
                self.c.kind(K::Grant, "ALTER DEFAULT PRIVILEGES");
                self.c.privilege_change = true;
            }
            Statement::Set(set) => {
                self.columns = false;
                self.set(set);
            }
            Statement::CreateView(v) => {
                self.c.kind(K::Create, "CREATE VIEW");
                self.target(&v.name);
            }
            Statement::Reset(r) => match r.reset {
                // RESET ALL and RESET ROLE undo a `SET ROLE` the gateway made for a grant.
                Reset::ALL => {
                    self.c.kind(K::Role, "RESET ALL");
                    self.c.role_change = true;
                }
                Reset::SessionAuthorization => {
                    self.c.kind(K::Role, "RESET SESSION AUTHORIZATION");
                    self.c.role_change = true;
                }
                Reset::ConfigurationParameter(ref n)
                    if ROLE_SETTINGS.contains(&object_name(n).to_lowercase().as_str()) =>
                {
                    self.c.kind(K::Role, "RESET ROLE");
                    self.c.role_change = true;
                }
                Reset::ConfigurationParameter(ref n) => {
                    self.c.kind(K::Set, "RESET");
                    push_unique(&mut self.c.settings, object_name(n).to_lowercase());
                }
            },
            Statement::Discard { object_type } => {
                if matches!(object_type, DiscardObject::ALL) {
                    // DISCARD ALL includes SET SESSION AUTHORIZATION DEFAULT.
                    self.c.kind(K::Role, "DISCARD ALL");
                    self.c.role_change = true;
                } else {
                    self.c.kind(K::Set, "DISCARD");
                }
            }
            Statement::Explain {
                analyze,
                statement,
                options,
                ..
            } => {
                self.c.kind(K::Explain, "EXPLAIN");
                if options.as_deref().is_some_and(|o| {
                    o.iter()
                        .any(|o| matches!(o.arg, Some(Expr::Value(_) | Expr::UnaryOp { .. })))
                }) {
                    // `ANALYZE 0` and `ANALYZE 1` are one shape; only the value tells them
                    // apart.
                    self.c.literal_sensitive = true;
                }
                if *analyze || explain_option_analyze(options.as_deref()) {
                    // ANALYZE runs the statement: the inner statement is classified as if sent.
                    let inner = classify_statement(statement, self.ctx);
                    if inner.writes {
                        self.c.explain_analyze_write = true;
                    }
                    merge(self.c, inner);
                    return Frame::Skip;
                }
                return Frame::PlanOnly;
            }
            Statement::Prepare {
                name, statement, ..
            } => {
                // PREPARE x AS <stmt> is classified as <stmt>: it is what EXECUTE will run.
                self.c.kind(K::Prepare, "PREPARE");
                let inner = classify_statement(statement, self.ctx);
                let name = ident(name);
                self.ctx.prepared.retain(|(n, _)| *n != name);
                self.ctx.prepared.push((name, inner.clone()));
                merge(self.c, inner);
                return Frame::Skip;
            }
            Statement::Execute { name, .. } => {
                let was_writing = self.c.writes;
                self.c.kind(K::Execute, "EXECUTE");
                // A statement prepared earlier in the same string is as known as its body.
                let known = name.as_ref().and_then(|n| {
                    let n = object_name(n);
                    self.ctx
                        .prepared
                        .iter()
                        .find(|(p, _)| *p == n)
                        .map(|(_, c)| c.clone())
                });
                match known {
                    Some(body) => {
                        // EXECUTE of a known body writes only if the body does.
                        self.c.writes = was_writing;
                        let mut body = body;
                        // Its commands are listed once, under PREPARE.
                        body.statements.clear();
                        merge(self.c, body);
                    }
                    None => self.c.not_analysable(
                        "EXECUTE runs a prepared statement whose text the gateway did not classify",
                    ),
                }
            }
            Statement::Deallocate { .. } => self.c.kind(K::Deallocate, "DEALLOCATE"),
            Statement::Call(f) => {
                self.c.kind(K::Call, "CALL");
                self.function(&f.name, function_args(f));
                self.c
                    .not_analysable("CALL runs a procedure whose body the gateway cannot inspect");
            }
            Statement::StartTransaction { .. } => self.c.kind(K::Transaction, "BEGIN"),
            Statement::Commit { .. } => self.c.kind(K::Transaction, "COMMIT"),
            Statement::Rollback { .. } => self.c.kind(K::Transaction, "ROLLBACK"),
            Statement::Savepoint { .. } => self.c.kind(K::Transaction, "SAVEPOINT"),
            Statement::ReleaseSavepoint { .. } => self.c.kind(K::Transaction, "RELEASE"),
            Statement::ShowVariable { .. }
            | Statement::ShowVariables { .. }
            | Statement::ShowStatus { .. } => self.c.kind(K::Show, "SHOW"),
            Statement::Vacuum(_)
            | Statement::Analyze(_)
            | Statement::RefreshMaterializedView(_) => {
                let cmd = leading_words(&s.to_string(), 1).join(" ");
                self.c.kind(K::Maintenance, cmd);
            }
            Statement::Lock(_) | Statement::LockTables { .. } => self.c.kind(K::Lock, "LOCK"),
            Statement::Declare { .. }
            | Statement::Fetch { .. }
            | Statement::Close { .. }
            | Statement::LISTEN { .. }
            | Statement::UNLISTEN { .. }
            | Statement::NOTIFY { .. } => {
                let cmd = leading_words(&s.to_string(), 1).join(" ");
                self.c.kind(K::Other, cmd);
            }
            Statement::Comment { .. } => {
                self.c.kind(K::Other, "COMMENT");
                self.c.writes = true;
            }
            other => {
                // CREATE …, ALTER … and anything else: named by its leading keywords.
                let text = other.to_string();
                let words: Vec<String> = leading_words(&text, 5)
                    .into_iter()
                    .filter(|w| !matches!(w.as_str(), "OR" | "REPLACE" | "TEMP" | "TEMPORARY"))
                    .take(2)
                    .collect();
                let kind = match words.first().map(String::as_str) {
                    Some("CREATE") => K::Create,
                    Some("ALTER") => K::Alter,
                    _ => K::Other,
                };
                let cmd = if matches!(kind, K::Create | K::Alter) {
                    words.join(" ")
                } else {
                    words.first().cloned().unwrap_or_default()
                };
                self.c.kind(kind, cmd);
                // Unknown statements may change something; assume they do.
                self.c.writes = true;
                if let Statement::CreateTable(t) = other {
                    self.target(&t.name);
                }
            }
        }
        Frame::Plain
    }

    fn set(&mut self, set: &Set) {
        use StatementKind as K;
        // Setting names are matched case-insensitively by the server, quoted or not:
        // `SET "ROLE" = …` is SET ROLE.
        let setting = |n: &ObjectName| object_name(n).to_lowercase();
        match set {
            Set::SetRole { .. } => {
                self.c.kind(K::Role, "SET ROLE");
                self.c.role_change = true;
                push_unique(&mut self.c.settings, "role".into());
            }
            Set::SetSessionAuthorization(_) => {
                self.c.kind(K::Role, "SET SESSION AUTHORIZATION");
                self.c.role_change = true;
                push_unique(&mut self.c.settings, "session_authorization".into());
            }
            Set::SingleAssignment { variable, .. } => {
                let name = setting(variable);
                if ROLE_SETTINGS.contains(&name.as_str()) {
                    self.c.kind(K::Role, "SET ROLE");
                    self.c.role_change = true;
                } else {
                    self.c.kind(K::Set, "SET");
                }
                push_unique(&mut self.c.settings, name);
            }
            Set::MultipleAssignments { assignments } => {
                let mut role = false;
                for a in assignments {
                    let name = setting(&a.name);
                    role |= ROLE_SETTINGS.contains(&name.as_str());
                    push_unique(&mut self.c.settings, name);
                }
                if role {
                    self.c.kind(K::Role, "SET ROLE");
                    self.c.role_change = true;
                } else {
                    self.c.kind(K::Set, "SET");
                }
            }
            _ => self.c.kind(K::Set, "SET"),
        }
    }
}

/// `EXPLAIN (ANALYZE [true|on|1]) …`: the option form of ANALYZE. An argument the gateway
/// cannot read counts as on: a wrong "on" costs a review, a wrong "off" would skip one.
fn explain_option_analyze(options: Option<&[sqlparser::ast::UtilityOption]>) -> bool {
    options.unwrap_or_default().iter().any(|o| {
        let name = o.name.value.to_ascii_lowercase();
        (name == "analyze" || name == "analyse")
            && match &o.arg {
                None => true,
                Some(Expr::Value(v)) => !matches!(
                    &v.value,
                    Value::Boolean(false)
                ) && !matches!(&v.value, Value::Number(n, _) if n == "0")
                    && !matches!(&v.value, Value::SingleQuotedString(s) if ["off", "false", "0", "no"].contains(&s.to_ascii_lowercase().as_str())),
                Some(Expr::Identifier(id)) => {
                    !["off", "false", "no"].contains(&id.value.to_ascii_lowercase().as_str())
                }
                Some(_) => true,
            }
    })
}

/// A function argument that is a plain string constant (possibly cast): its value. `E'…'` and
/// `U&'…'` strings are not read (their escapes could spell a name the gateway would miss), nor
/// anything computed.
fn string_arg(a: &FunctionArg) -> Option<String> {
    let FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) = a else {
        return None;
    };
    let mut e = e;
    loop {
        match e {
            Expr::Cast { expr, .. } | Expr::Nested(expr) => e = expr.as_ref(),
            Expr::Value(v) => {
                return match &v.value {
                    Value::SingleQuotedString(s) | Value::NationalStringLiteral(s) => {
                        Some(s.clone())
                    }
                    Value::DollarQuotedString(d) => Some(d.value.clone()),
                    _ => None,
                }
            }
            _ => return None,
        }
    }
}

/// A relation name written in a string, as `regclass` input reads it (`'payroll.salaries'`,
/// `'"Payroll"."Salaries"'`): unquoted parts folded to lower case. None for anything else
/// (an OID, odd quoting), which the caller treats as unknown.
pub(crate) fn parse_qualified_name(text: &str) -> Option<String> {
    let mut parts = Vec::new();
    let mut want_name = true;
    for t in Lexer::new(text) {
        let tok = t.text(text);
        match (t.kind, want_name) {
            (TokenKind::Word, true) => parts.push(tok.to_lowercase()),
            (TokenKind::QuotedIdent, true) if tok.starts_with('"') && tok.len() >= 2 => {
                parts.push(tok[1..tok.len() - 1].replace("\"\"", "\""))
            }
            (TokenKind::Other, false) if tok == "." => {}
            _ => return None,
        }
        want_name = !want_name;
    }
    (!parts.is_empty() && !want_name && parts.len() <= 3).then(|| parts.join("."))
}

fn function_args(f: &Function) -> Option<&[FunctionArg]> {
    match &f.args {
        FunctionArguments::List(l) => Some(&l.args),
        _ => None,
    }
}

/// Classifies one already-parsed statement on its own (the inside of EXPLAIN ANALYZE/PREPARE).
fn classify_statement(s: &Statement, ctx: &mut Context) -> Classification {
    let mut c = Classification {
        analysable: true,
        ..Default::default()
    };
    Walker::new(&mut c, ctx).statement(s);
    c
}

fn push_unique(list: &mut Vec<String>, item: String) {
    if !list.contains(&item) {
        list.push(item);
    }
}

/// Adds everything `inner` found to `c`.
fn merge(c: &mut Classification, inner: Classification) {
    for s in inner.statements {
        // Whether it writes is `inner.writes`, below: an EXECUTE of a known read does not.
        if !c.kinds.contains(&s.kind) {
            c.kinds.push(s.kind);
        }
        c.statements.push(s);
    }
    c.analysable &= inner.analysable;
    c.writes |= inner.writes;
    c.tables_read.extend(inner.tables_read);
    c.tables_written.extend(inner.tables_written);
    c.columns_read.extend(inner.columns_read);
    c.columns_written.extend(inner.columns_written);
    c.unbounded_writes.extend(inner.unbounded_writes);
    for f in inner.dangerous_functions {
        c.dangerous(&f);
    }
    c.data_modifying_cte |= inner.data_modifying_cte;
    c.select_into |= inner.select_into;
    c.explain_analyze_write |= inner.explain_analyze_write;
    c.destructive |= inner.destructive;
    c.privilege_change |= inner.privilege_change;
    c.role_change |= inner.role_change;
    c.alter_system |= inner.alter_system;
    c.server_file_access |= inner.server_file_access;
    c.program_access |= inner.program_access;
    for f in inner.functions {
        push_unique(&mut c.functions, f);
    }
    for f in inner.unvetted_functions {
        push_unique(&mut c.unvetted_functions, f);
    }
    for f in inner.settings {
        push_unique(&mut c.settings, f);
    }
    c.defines_code |= inner.defines_code;
    c.blocking_lock |= inner.blocking_lock;
    c.persistent_setting |= inner.persistent_setting;
    c.notes.extend(inner.notes);
    c.literal_sensitive |= inner.literal_sensitive;
}

impl Visitor for Walker<'_> {
    type Break = ();

    fn pre_visit_statement(&mut self, s: &Statement) -> ControlFlow<()> {
        let frame = if self.skip > 0 {
            Frame::Plain
        } else {
            self.describe(s)
        };
        match frame {
            Frame::Plain => {}
            Frame::PlanOnly => self.plan_only += 1,
            Frame::Skip => self.skip += 1,
        }
        self.frames.push(frame);
        self.depth += 1;
        ControlFlow::Continue(())
    }

    fn post_visit_statement(&mut self, _s: &Statement) -> ControlFlow<()> {
        self.depth -= 1;
        match self.frames.pop() {
            Some(Frame::PlanOnly) => self.plan_only -= 1,
            Some(Frame::Skip) => self.skip -= 1,
            _ => {}
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_select(&mut self, s: &Select) -> ControlFlow<()> {
        if self.skip == 0
            && s.projection.iter().any(|p| {
                matches!(
                    p,
                    SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..)
                )
            })
        {
            self.c.columns_read.push("*".into());
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_query(&mut self, q: &Query) -> ControlFlow<()> {
        if self.skip > 0 {
            return ControlFlow::Continue(());
        }
        if let Some(with) = &q.with {
            for cte in &with.cte_tables {
                self.ctes.insert(ident(&cte.alias.name));
            }
        }
        if let SetExpr::Select(sel) = q.body.as_ref() {
            if let Some(into) = &sel.into {
                if self.plan_only == 0 {
                    // SELECT … INTO creates and fills a table.
                    self.c.select_into = true;
                    self.c.writes = true;
                    for t in &into.targets {
                        let name = match t {
                            Expr::Identifier(id) => ident(id),
                            Expr::CompoundIdentifier(ids) => {
                                ids.iter().map(ident).collect::<Vec<_>>().join(".")
                            }
                            _ => continue,
                        };
                        // The target is visited as an expression too; it is no column.
                        self.into_names.push(name.clone());
                        self.targets.push(name);
                    }
                }
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_relation(&mut self, r: &ObjectName) -> ControlFlow<()> {
        if self.skip > 0 {
            return ControlFlow::Continue(());
        }
        self.relations.push(object_name(r));
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, t: &TableFactor) -> ControlFlow<()> {
        if self.skip > 0 {
            return ControlFlow::Continue(());
        }
        if let TableFactor::Function { name, args, .. } = t {
            // `FROM LATERAL f(…)`.
            self.function(name, Some(args));
        }
        if let TableFactor::Table {
            name,
            args: Some(args),
            ..
        } = t
        {
            // `FROM f(…)` calls a function; it reads no table called f.
            self.table_functions.push(object_name(name));
            self.function(name, Some(&args.args));
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
        if self.skip > 0 {
            return ControlFlow::Continue(());
        }
        match e {
            Expr::Function(f) => self.function(&f.name, function_args(f)),
            Expr::Identifier(id) if self.columns => self.c.columns_read.push(ident(id)),
            Expr::CompoundIdentifier(ids) if self.columns => self
                .c
                .columns_read
                .push(ids.iter().map(ident).collect::<Vec<_>>().join(".")),
            _ => {}
        }
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests;
