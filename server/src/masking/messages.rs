//! What errors, notices and notifications may say.
//!
//! PostgreSQL quotes the values it could not use in its messages (`invalid input syntax for
//! type integer: "Ana Silva"`, `relation "Ana Silva" does not exist` after a `::regclass`,
//! `Key (email)=(…)`), and code run in the database says whatever it was written to say
//! (`RAISE NOTICE '%', (SELECT full_name …)`, `pg_notify('c', email)`). Detectors cannot see a
//! name, so a message is judged by where it comes from:
//! - after a statement that may read personal data (see [`Taint`]), every quoted span the
//!   statement's own text does not hold is masked, and so are the values of a key or a failing
//!   row;
//! - what code in the database raises (a PL/pgSQL, PL/Python… frame in the context) is masked
//!   whole — message, detail and hint — unless it is the statement's own `DO` block and that
//!   block names nothing personal;
//! - a notification's payload may come from any session's statement or trigger: it is of
//!   unknown origin, masked whole (JSON keeps its keys, numbers and shape).
//!
//! The SQLSTATE, severity, positions and routine stay as they are: drivers and people still
//! learn what went wrong. Detectors run over what is left.
//!
//! Architecture invariant: pure functions (of bytes, the catalog and the lineage); no I/O.

use std::collections::BTreeSet;

use bytes::{BufMut, BytesMut};

use super::catalog::Catalog;
use super::detect::Category;
use super::lineage::{Lineage, Output, CUSTOM_SETTING, READS_BY_NAME};
use super::mask::Masker;
use super::plan::Planner;
use super::rewrite::{detect_text, error_text, redact_json, split_cstr};

/// How far the messages arriving for a statement may carry row data.
#[derive(Debug, Clone, Copy)]
pub struct Taint<'a> {
    /// The statement reads a tagged column, a relation or code the gateway cannot see
    /// through, or could not be read: a quoted value in its messages may be row data.
    pub values: bool,
    /// The statement's text: a quoted span it holds itself (an identifier with a typo, a
    /// literal) reveals nothing the client did not send.
    pub sql: &'a str,
    /// The statement is a `DO` block that names no relation with personal data, no code of
    /// the database's own and no dynamic SQL: what its own RAISE says may be shown.
    pub inline_code_clean: bool,
}

impl<'a> Taint<'a> {
    /// Messages that can carry nothing but what the detectors find (the gateway's own).
    pub const NONE: Taint<'static> = Taint {
        values: false,
        sql: "",
        inline_code_clean: false,
    };

    /// The taint of the messages of `sql` (analysed as `lineage`) under `catalog`; `filled`
    /// names the relations this gateway saw filled from tagged columns.
    pub fn of(
        catalog: &Catalog,
        lineage: &Lineage,
        sql: &'a str,
        filled: &BTreeSet<String>,
    ) -> Taint<'a> {
        let personal = |name: &str| {
            filled.contains(name)
                || catalog
                    .tables_named(name)
                    .any(|t| t.columns.iter().any(|c| c.category.is_some()))
        };
        let values = lineage.statements.is_empty()
            || lineage.statements.iter().any(|st| {
                let planner = Planner {
                    catalog,
                    lineage: Some(st),
                    exempt: &Default::default(),
                    exempt_columns: &Default::default(),
                };
                !st.parsed
                    || st.fetches.is_some()
                    || planner.names_unknown_relation()
                    || st.tables.iter().any(|(_, t)| personal(t))
                    || st.outputs.iter().flatten().any(|o| {
                        matches!(o, Output::Expr { sources, .. } if sources.iter().any(|s| s.contains(CUSTOM_SETTING)))
                    })
            });
        Taint {
            values,
            sql,
            inline_code_clean: inline_code_clean(catalog, sql, &personal),
        }
    }
}

/// Whether `sql` is a `DO` block whose words name no relation with personal data, no
/// function of the database's own, no dynamic SQL and nothing that reads by name: what it
/// raises can then only come from what it computes from clean data.
fn inline_code_clean(catalog: &Catalog, sql: &str, personal: &dyn Fn(&str) -> bool) -> bool {
    let trimmed = sql.trim_start();
    if !trimmed
        .get(..2)
        .is_some_and(|w| w.eq_ignore_ascii_case("do"))
    {
        return false;
    }
    let Some(code) = catalog.code.as_ref() else {
        return false;
    };
    let lower = sql.to_lowercase();
    lower
        .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '$'))
        .filter(|w| !w.is_empty())
        .all(|w| {
            !personal(w)
                && !code.functions.contains(w)
                && !READS_BY_NAME.contains(&w)
                && !matches!(
                    w,
                    "execute" | "current_setting" | "pg_read_file" | "pg_read_binary_file"
                )
        })
}

/// Whether a statement may send a notification: it calls `pg_notify`, runs code
/// (`DO`, `CALL`, a function of the database's own), or writes a relation with triggers of its
/// own (or any relation, while what the database defines is unknown). `NOTIFY` itself only
/// sends a literal the client wrote.
pub fn may_notify(catalog: &Catalog, lineage: &Lineage, kinds: &[String]) -> bool {
    if kinds.iter().any(|k| k == "DO" || k == "CALL") || writes_triggered(catalog, lineage, kinds) {
        return true;
    }
    lineage.statements.iter().any(|st| {
        let planner = Planner {
            catalog,
            lineage: Some(st),
            exempt: &Default::default(),
            exempt_columns: &Default::default(),
        };
        st.functions
            .iter()
            .any(|f| f.strip_prefix("pg_catalog.").unwrap_or(f) == "pg_notify")
            || planner
                .unknown_relations()
                .iter()
                .any(|u| u.starts_with("function:") || u.starts_with("operator:"))
    })
}

/// Whether a statement writes a relation with triggers of its own (or any relation, while what
/// the database defines is unknown): code runs that the gateway cannot see, and may read
/// anything.
pub fn writes_triggered(catalog: &Catalog, lineage: &Lineage, kinds: &[String]) -> bool {
    const WRITES: &[&str] = &["INSERT", "UPDATE", "DELETE", "MERGE", "COPY", "TRUNCATE"];
    if !kinds.iter().any(|k| WRITES.contains(&k.as_str())) {
        return false;
    }
    match &catalog.code {
        Some(code) => lineage
            .statements
            .iter()
            .any(|st| st.tables.iter().any(|(_, t)| code.triggered.contains(t))),
        None => true,
    }
}

/// Functions that write a large object from a value.
const LARGE_OBJECT_WRITERS: &[&str] = &["lo_from_bytea", "lo_put", "lowrite", "lo_import"];

/// Whether a statement calls a function that writes a large object from a value.
pub fn writes_large_object(lineage: &Lineage) -> bool {
    lineage.statements.iter().any(|st| {
        st.functions.iter().any(|f| {
            let base = f.strip_prefix("pg_catalog.").unwrap_or(f);
            LARGE_OBJECT_WRITERS.contains(&base)
        })
    })
}

/// Whether code (`DO`, `CALL`) names a function that writes a large object.
pub fn names_large_object_writer(sql: &str) -> bool {
    let lower = sql.to_lowercase();
    LARGE_OBJECT_WRITERS.iter().any(|w| lower.contains(w))
}

/// A FunctionCallResponse with its value masked whole (a large object that may hold
/// personal data): still a value, so a driver reading it does not fail.
pub fn function_result_redacted(m: &Masker, frame: &[u8]) -> Option<BytesMut> {
    let len = i32::from_be_bytes(frame.get(5..9)?.try_into().ok()?);
    if len < 0 {
        return None;
    }
    let masked = m.redact("");
    let mut out = BytesMut::with_capacity(9 + masked.len());
    out.put_u8(b'V');
    out.put_u32((8 + masked.len()) as u32);
    out.put_i32(masked.len() as i32);
    out.put_slice(masked.as_bytes());
    Some(out)
}

/// Fields that hold free text: message, detail, hint, context, internal query.
const TEXT_FIELDS: &[u8] = b"MDHWq";

/// An ErrorResponse/NoticeResponse masked as [`Taint`] says; `None` when nothing changed.
pub fn error_frame(
    m: &Masker,
    frame: &[u8],
    skip: &BTreeSet<Category>,
    taint: &Taint,
) -> Option<BytesMut> {
    let mut fields: Vec<(u8, Vec<u8>)> = Vec::new();
    let mut pos = 5;
    while let Some(&k) = frame.get(pos) {
        if k == 0 {
            break;
        }
        let end = pos + 1 + frame.get(pos + 1..)?.iter().position(|&b| b == 0)?;
        fields.push((k, frame[pos + 1..end].to_vec()));
        pos = end + 1;
    }
    let context = fields
        .iter()
        .find(|(k, _)| *k == b'W')
        .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        .unwrap_or_default();
    let from_code = raised_by_code(&context, taint.inline_code_clean);
    let mut changed = false;
    for (k, v) in fields.iter_mut() {
        if !TEXT_FIELDS.contains(k) {
            continue;
        }
        let text = String::from_utf8_lossy(v).into_owned();
        let mut out = if from_code && matches!(*k, b'M' | b'D' | b'H' | b'q') {
            m.redact(&text)
        } else if taint.values || from_code {
            quoted_spans_masked(&text, taint.sql)
        } else {
            text.clone()
        };
        if let Some(masked) = error_text(m, &out, skip) {
            out = masked;
        }
        if out != text {
            *v = out.into_bytes();
            changed = true;
        }
    }
    if !changed {
        return None;
    }
    let mut out = BytesMut::with_capacity(frame.len());
    out.put_u8(frame[0]);
    out.put_u32(0);
    for (k, v) in fields {
        out.put_u8(k);
        out.put_slice(&v);
        out.put_u8(0);
    }
    out.put_u8(0);
    let len = (out.len() - 1) as u32;
    out[1..5].copy_from_slice(&len.to_be_bytes());
    Some(out)
}

/// Whether the context (`W`) shows the message was raised inside procedural code: a frame
/// of a PL/pgSQL, PL/Python, PL/Perl… function or block. The statement's own clean `DO`
/// block (`inline_code_block`) does not count.
fn raised_by_code(context: &str, inline_code_clean: bool) -> bool {
    context.lines().any(|l| {
        let l = l.trim_start();
        l.starts_with("PL/")
            && !(inline_code_clean && l.starts_with("PL/pgSQL function inline_code_block"))
    })
}

/// Every double-quoted span of `text` that `sql` does not hold (as written or folded to
/// lower case) masked as `"***"`; a context line quoting a whole statement (`SQL statement
/// "…"`) is one span from its first quote to its last.
fn quoted_spans_masked(text: &str, sql: &str) -> String {
    let sql_lower = sql.to_lowercase();
    let known = |span: &str| {
        !span.is_empty() && (sql.contains(span) || sql_lower.contains(&span.to_lowercase()))
    };
    let mut out = String::with_capacity(text.len());
    for (i, line) in text.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        if let Some(rest) = line.strip_prefix("SQL statement \"") {
            let inner = rest.strip_suffix('"').unwrap_or(rest);
            out.push_str("SQL statement \"");
            out.push_str(if known(inner) { inner } else { "***" });
            out.push('"');
            continue;
        }
        let mut parts = line.split('"');
        if let Some(first) = parts.next() {
            out.push_str(first);
        }
        let rest: Vec<&str> = parts.collect();
        // Pairs of quotes enclose spans; an unpaired last quote is kept as it is.
        let pairs = rest.len() / 2 * 2;
        for (j, piece) in rest.iter().enumerate() {
            out.push('"');
            if j < pairs && j % 2 == 0 && !known(piece) {
                out.push_str("***");
            } else {
                out.push_str(piece);
            }
        }
    }
    out
}

/// A NotificationResponse (`A`: pid, channel, payload). From a `clean_sender` (a session of
/// the gateway's own whose statements that may notify read nothing personal) its payload gets
/// value detection; from anyone else it is of unknown origin: a number or a UUID passes, JSON
/// keeps its keys, numbers and shape with every string masked, other text is masked whole.
/// `None` when nothing changed.
pub fn notification_frame(
    m: &Masker,
    frame: &[u8],
    skip: &BTreeSet<Category>,
    clean_sender: bool,
) -> Option<BytesMut> {
    let pid = frame.get(5..9)?;
    let (channel, rest) = split_cstr(frame.get(9..)?)?;
    let (payload, _) = split_cstr(rest)?;
    let payload = String::from_utf8_lossy(payload);
    let masked = if clean_sender {
        detect_text(m, &payload, skip)?
    } else {
        payload_masked(m, &payload, skip)?
    };
    let mut out = BytesMut::with_capacity(frame.len());
    out.put_u8(b'A');
    out.put_u32(0);
    out.put_slice(pid);
    out.put_slice(channel);
    out.put_u8(0);
    out.put_slice(masked.as_bytes());
    out.put_u8(0);
    let len = (out.len() - 1) as u32;
    out[1..5].copy_from_slice(&len.to_be_bytes());
    Some(out)
}

fn payload_masked(m: &Masker, payload: &str, skip: &BTreeSet<Category>) -> Option<String> {
    if payload.is_empty() {
        return None;
    }
    if skip.contains(&Category::FreeText) {
        return detect_text(m, payload, skip);
    }
    let token = payload.trim();
    let number = !token.is_empty()
        && token.len() <= 20
        && token
            .trim_start_matches('-')
            .chars()
            .all(|c| c.is_ascii_digit() || c == '.');
    let uuid = token.len() == 36
        && token.chars().enumerate().all(|(i, c)| {
            matches!(i, 8 | 13 | 18 | 23) == (c == '-') && (c == '-' || c.is_ascii_hexdigit())
        });
    if uuid || number {
        // A number may still be a card or a phone number written as digits.
        return detect_text(m, payload, skip);
    }
    if let Ok(mut v) = serde_json::from_str::<serde_json::Value>(payload) {
        if v.is_object() || v.is_array() {
            redact_json(m, &mut v);
            let masked = v.to_string();
            return (masked != payload).then_some(masked);
        }
    }
    Some(m.redact(payload))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m() -> Masker {
        Masker::new(super::super::mask::Mode::Partial, [7u8; 32])
    }

    fn frame(tag: u8, fields: &[(u8, &str)]) -> Vec<u8> {
        let mut b = vec![tag, 0, 0, 0, 0];
        for (k, v) in fields {
            b.push(*k);
            b.extend_from_slice(v.as_bytes());
            b.push(0);
        }
        b.push(0);
        let len = (b.len() - 1) as u32;
        b[1..5].copy_from_slice(&len.to_be_bytes());
        b
    }

    fn field(frame: &[u8], code: u8) -> Option<String> {
        let mut pos = 5;
        while frame[pos] != 0 {
            let end = pos + 1 + frame[pos + 1..].iter().position(|&b| b == 0)?;
            if frame[pos] == code {
                return Some(String::from_utf8_lossy(&frame[pos + 1..end]).into_owned());
            }
            pos = end + 1;
        }
        None
    }

    const CLEAR: Taint = Taint::NONE;

    #[test]
    fn quoted_values_are_masked_after_a_statement_reading_personal_data() {
        let sql = "SELECT string_agg(full_name, '|')::int FROM people";
        let f = frame(
            b'E',
            &[
                (b'S', "ERROR"),
                (b'C', "22P02"),
                (
                    b'M',
                    "invalid input syntax for type integer: \"Ana Silva|Tom Ek\"",
                ),
            ],
        );
        let taint = Taint {
            values: true,
            sql,
            inline_code_clean: false,
        };
        let out = error_frame(&m(), &f, &BTreeSet::new(), &taint).expect("masked");
        assert_eq!(
            field(&out, b'M').as_deref(),
            Some("invalid input syntax for type integer: \"***\"")
        );
        assert_eq!(field(&out, b'C').as_deref(), Some("22P02"));
        // A name the statement itself holds stays: the client typed it.
        let f = frame(b'E', &[(b'M', "column \"full_nme\" does not exist")]);
        let typo = Taint {
            sql: "SELECT full_nme FROM people",
            ..taint
        };
        assert!(error_frame(&m(), &f, &BTreeSet::new(), &typo).is_none());
        // A statement that reads nothing personal keeps its message as it is.
        assert!(error_frame(&m(), &f, &BTreeSet::new(), &CLEAR).is_none());
    }

    #[test]
    fn what_code_raises_is_masked_whole_unless_a_clean_do_block_said_it() {
        let f = frame(
            b'N',
            &[
                (b'S', "NOTICE"),
                (b'M', "Ana Silva, Tom Ek"),
                (b'W', "PL/pgSQL function inline_code_block line 1 at RAISE"),
            ],
        );
        let out = error_frame(&m(), &f, &BTreeSet::new(), &CLEAR).expect("masked");
        assert_eq!(field(&out, b'M').as_deref(), Some("***"));
        let clean = Taint {
            inline_code_clean: true,
            ..CLEAR
        };
        assert!(error_frame(&m(), &f, &BTreeSet::new(), &clean).is_none());
        // A function's RAISE (a trigger's, say) is never the statement's own block.
        let f = frame(
            b'E',
            &[
                (b'M', "x Ana Silva"),
                (b'D', "more"),
                (
                    b'W',
                    "PL/pgSQL function audit_trg() line 3 at RAISE\nSQL statement \"INSERT INTO t VALUES ('Ana')\"",
                ),
            ],
        );
        let out = error_frame(&m(), &f, &BTreeSet::new(), &clean).expect("masked");
        assert_eq!(field(&out, b'M').as_deref(), Some("***"));
        assert_eq!(field(&out, b'D').as_deref(), Some("***"));
        assert_eq!(
            field(&out, b'W').as_deref(),
            Some("PL/pgSQL function audit_trg() line 3 at RAISE\nSQL statement \"***\"")
        );
    }

    #[test]
    fn notification_payloads_are_of_unknown_origin() {
        let note = |payload: &str| {
            let mut b = vec![b'A', 0, 0, 0, 0, 0, 0, 0, 42];
            b.extend_from_slice(b"ch\0");
            b.extend_from_slice(payload.as_bytes());
            b.push(0);
            let len = (b.len() - 1) as u32;
            b[1..5].copy_from_slice(&len.to_be_bytes());
            notification_frame(&m(), &b, &BTreeSet::new(), false).map(|f| {
                let body = &f[9..];
                let end = body.iter().position(|&c| c == 0).unwrap_or(0);
                String::from_utf8_lossy(&body[end + 1..body.len() - 1]).into_owned()
            })
        };
        assert_eq!(note("Ana Silva,Tom Ek").as_deref(), Some("***"));
        assert_eq!(
            note(r#"{"id":7,"name":"Ana Silva"}"#).as_deref(),
            Some(r#"{"id":7,"name":"***"}"#)
        );
        assert_eq!(note("42"), None);
        assert_eq!(note("0b0d3c3e-1a2b-4c5d-8e9f-001122334455"), None);
        assert_eq!(note(""), None);
    }
}
