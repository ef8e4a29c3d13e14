//! Rewriting on the wire: DataRow values (text and binary), COPY rows (text and CSV) and the
//! fields of ErrorResponse/NoticeResponse. Only the columns a plan marks are decoded; a row in
//! which nothing changed is reported as unchanged so the caller forwards its original bytes.
//!
//! Architecture invariant: pure functions from bytes to bytes; no I/O.

use std::collections::BTreeSet;

use bytes::{BufMut, BytesMut};

use super::detect::{find_spans, may_contain, Category};
use super::lineage::{CopyFormat, CopyOut};
use super::mask::Masker;
use super::names::category_for_name;
use super::plan::{Action, ColumnPlan, ResultPlan, TypeKind};

/// What becomes of one value.
#[derive(Debug, PartialEq, Eq)]
pub enum Value {
    Keep,
    Null,
    Bytes(Vec<u8>),
}

fn spans_without(text: &str, skip: &BTreeSet<Category>) -> Vec<(std::ops::Range<usize>, Category)> {
    let mut s = find_spans(text);
    s.retain(|(_, c)| !skip.contains(c));
    s
}

/// The mask of a whole text value of a tagged column.
fn mask_whole(m: &Masker, cats: &[Category], text: &str, skip: &BTreeSet<Category>) -> String {
    let first = cats.first().copied().unwrap_or(Category::FreeText);
    if !first.detectable() {
        return m.mask_value(first, text);
    }
    // One structured value of the column's one category (the usual case: an email column
    // holding an email): its mask, without looking for spans.
    if cats.len() == 1 && text.len() <= 64 {
        let plain = match first {
            Category::Email => !text.bytes().any(|b| b.is_ascii_whitespace()),
            Category::PaymentCard | Category::NationalId | Category::Phone | Category::Iban => text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b" -().+".contains(&b)),
            _ => false,
        };
        if plain {
            return m.mask_value(first, text);
        }
    }
    let spans = spans_without(text, skip);
    match spans.as_slice() {
        [] => m.mask_value(first, text),
        [(r, c)] if text[..r.start].trim().is_empty() && text[r.end..].trim().is_empty() => {
            format!(
                "{}{}{}",
                &text[..r.start],
                m.mask_value(*c, &text[r.clone()]),
                &text[r.end..]
            )
        }
        _ => m.mask_spans(text, &spans),
    }
}

/// A masked text value: a direct read keeps the mask's shape; anything computed is masked
/// whole, as its pieces could rebuild the partial mask's hidden part.
fn mask_text(
    m: &Masker,
    col: &ColumnPlan,
    cats: &[Category],
    text: &str,
    skip: &BTreeSet<Category>,
) -> String {
    if col.whole {
        m.redact(text)
    } else {
        mask_whole(m, cats, text, skip)
    }
}

pub(super) fn detect_text(m: &Masker, text: &str, skip: &BTreeSet<Category>) -> Option<String> {
    detect_text_found(m, text, skip, &mut BTreeSet::new())
}

/// [`detect_text`], adding the categories it masked to `found` (for the audit).
fn detect_text_found(
    m: &Masker,
    text: &str,
    skip: &BTreeSet<Category>,
    found: &mut BTreeSet<Category>,
) -> Option<String> {
    // `find_spans` applies the pre-filter itself.
    let spans = spans_without(text, skip);
    if spans.is_empty() {
        None
    } else {
        found.extend(spans.iter().map(|(_, c)| *c));
        Some(m.mask_spans(text, &spans))
    }
}

/// What value detection masked in a result, by column index: reported with the statement's
/// audit record, since no tag said the column was personal.
pub type Findings = std::collections::BTreeMap<usize, BTreeSet<Category>>;

/// Adds what one value's detection found in column `i`.
#[inline]
fn note_found(findings: &mut Findings, i: usize, found: BTreeSet<Category>) {
    if !found.is_empty() {
        findings.entry(i).or_default().extend(found);
    }
}

/// Masks a JSON value in place. A string is masked by the category of its key (a sensitive
/// column's name, or a name that suggests one, or an enclosing key's), left to the detectors
/// under a key that names a safe column, and otherwise — when the column derives from
/// categories no detector recognises (names, addresses) — masked whole: fail closed.
fn mask_json(
    m: &Masker,
    v: &mut serde_json::Value,
    key: Option<&str>,
    inherited: Option<Category>,
    col: &ColumnPlan,
    cats: &[Category],
    skip: &BTreeSet<Category>,
) {
    use serde_json::Value as J;
    let key_cat = inherited.or_else(|| {
        key.and_then(|k| {
            col.keys
                .get(k)
                .copied()
                .or_else(|| category_for_name(k).filter(|c| !skip.contains(c)))
        })
    });
    if col.whole_json {
        // Keys the query's author chose: every string masked whole, numbers too when the
        // value derives from a category that can be written as digits.
        match v {
            J::Object(map) => {
                for (k, inner) in map.iter_mut() {
                    mask_json(m, inner, Some(k.as_str()), key_cat, col, cats, skip);
                }
            }
            J::Array(items) => {
                for inner in items.iter_mut() {
                    mask_json(m, inner, key, key_cat, col, cats, skip);
                }
            }
            J::String(s) => {
                *s = match key_cat {
                    Some(c) => mask_text(m, col, &[c], s, skip),
                    None => mask_text(m, col, cats, s, skip),
                };
            }
            J::Number(_)
                if key_cat.is_some()
                    || cats.iter().any(|c| {
                        matches!(
                            c,
                            Category::Phone
                                | Category::NationalId
                                | Category::PaymentCard
                                | Category::Iban
                                | Category::BirthDate
                        )
                    }) =>
            {
                *v = J::Null
            }
            _ => {}
        }
        return;
    }
    match v {
        J::Object(map) => {
            for (k, inner) in map.iter_mut() {
                mask_json(m, inner, Some(k.as_str()), key_cat, col, cats, skip);
            }
        }
        J::Array(items) => {
            for inner in items.iter_mut() {
                mask_json(m, inner, key, key_cat, col, cats, skip);
            }
        }
        J::String(s) => {
            let safe_key = key.is_some_and(|k| col.safe_keys.contains(k));
            if let Some(c) = key_cat {
                *s = mask_text(m, col, &[c], s, skip);
            } else if !safe_key && cats.iter().any(|c| !c.detectable()) {
                *s = mask_text(m, col, cats, s, skip);
            } else if let Some(d) = detect_text(m, s, skip) {
                *s = d;
            }
        }
        J::Number(_) if key_cat.is_some() => *v = J::Null,
        _ => {}
    }
}

/// A tagged text value that holds JSON (`profile::text`, `row_to_json(p)::text`), masked as JSON.
fn mask_text_json(
    m: &Masker,
    col: &ColumnPlan,
    cats: &[Category],
    text: &str,
    skip: &BTreeSet<Category>,
) -> Option<String> {
    let t = text.trim_start();
    if !(t.starts_with('{') || t.starts_with('[')) {
        return None;
    }
    let mut v: serde_json::Value = serde_json::from_str(text).ok()?;
    mask_json(m, &mut v, None, None, col, cats, skip);
    Some(v.to_string())
}

/// Elements of a one-dimensional PostgreSQL array literal (`{a,"b c",NULL}`); None if it is not
/// one (multi-dimensional, bounds prefix).
fn parse_array(text: &str) -> Option<Vec<Option<String>>> {
    let inner = text.strip_prefix('{')?.strip_suffix('}')?;
    let mut out = Vec::new();
    if inner.is_empty() {
        return Some(out);
    }
    let mut chars = inner.chars().peekable();
    loop {
        let mut cur = String::new();
        let quoted = chars.peek() == Some(&'"');
        if quoted {
            chars.next();
            loop {
                match chars.next()? {
                    '\\' => cur.push(chars.next()?),
                    '"' => break,
                    c => cur.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                if c == '{' || c == '"' {
                    return None;
                }
                cur.push(c);
                chars.next();
            }
        }
        out.push(if !quoted && cur == "NULL" {
            None
        } else {
            Some(cur)
        });
        match chars.next() {
            Some(',') => continue,
            None => break,
            Some(_) => return None,
        }
    }
    Some(out)
}

fn format_array(items: &[Option<String>]) -> String {
    let mut out = String::from("{");
    for (i, it) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        match it {
            None => out.push_str("NULL"),
            Some(s) => {
                out.push('"');
                for c in s.chars() {
                    if c == '"' || c == '\\' {
                        out.push('\\');
                    }
                    out.push(c);
                }
                out.push('"');
            }
        }
    }
    out.push('}');
    out
}

/// Every string inside a JSON value redacted; keys, numbers, booleans and the shape kept.
pub(super) fn redact_json(m: &Masker, v: &mut serde_json::Value) {
    use serde_json::Value as J;
    match v {
        J::Object(map) => map.values_mut().for_each(|inner| redact_json(m, inner)),
        J::Array(items) => items.iter_mut().for_each(|inner| redact_json(m, inner)),
        J::String(s) => *s = m.redact(s),
        _ => {}
    }
}

/// The detectors run over every string of a JSON value (keys kept); true if any changed.
fn detect_json(
    m: &Masker,
    v: &mut serde_json::Value,
    skip: &BTreeSet<Category>,
    found: &mut BTreeSet<Category>,
) -> bool {
    use serde_json::Value as J;
    // Every value is visited (no short circuit): each string must be judged.
    let mut changed = false;
    match v {
        J::Object(map) => {
            for inner in map.values_mut() {
                changed |= detect_json(m, inner, skip, found);
            }
        }
        J::Array(items) => {
            for inner in items.iter_mut() {
                changed |= detect_json(m, inner, skip, found);
            }
        }
        J::String(s) => {
            if let Some(masked) = detect_text_found(m, s, skip, found) {
                *s = masked;
                changed = true;
            }
        }
        _ => {}
    }
    changed
}

/// A value of unknown origin masked whole, as a valid value of its type (or NULL).
fn redact_value(m: &Masker, col: &ColumnPlan, raw: &[u8]) -> Value {
    let (prefix, body) = if col.kind == TypeKind::Jsonb && col.format == 1 && !raw.is_empty() {
        (&raw[..1], &raw[1..])
    } else {
        (&raw[..0], raw)
    };
    let Ok(text) = std::str::from_utf8(body) else {
        return Value::Null;
    };
    let out = match col.kind {
        TypeKind::Json | TypeKind::Jsonb => match serde_json::from_str(text) {
            Ok(mut v) => {
                redact_json(m, &mut v);
                v.to_string()
            }
            Err(_) => return Value::Null,
        },
        TypeKind::TextArray if col.format == 0 => match parse_array(text) {
            Some(items) => format_array(
                &items
                    .iter()
                    .map(|i| i.as_ref().map(|s| m.redact(s)))
                    .collect::<Vec<_>>(),
            ),
            None => return Value::Null,
        },
        TypeKind::Text => m.redact(text),
        // Binary arrays and other types cannot be rewritten in place.
        _ => return Value::Null,
    };
    prefixed(prefix, out)
}

/// `masked` after `prefix` (binary jsonb's version byte), without a copy when there is none:
/// this runs for every masked value of every row.
fn prefixed(prefix: &[u8], masked: String) -> Value {
    if prefix.is_empty() {
        return Value::Bytes(masked.into_bytes());
    }
    let mut v = Vec::with_capacity(prefix.len() + masked.len());
    v.extend_from_slice(prefix);
    v.extend_from_slice(masked.as_bytes());
    Value::Bytes(v)
}

/// Masks one value of a column (as the bytes it arrived in, in the column's format); what
/// value detection masked is added to `found`.
pub fn mask_value(
    m: &Masker,
    col: &ColumnPlan,
    skip: &BTreeSet<Category>,
    raw: &[u8],
    found: &mut BTreeSet<Category>,
) -> Value {
    match &col.action {
        Action::Pass => Value::Keep,
        Action::Null => Value::Null,
        Action::Redact => redact_value(m, col, raw),
        Action::Literals => match std::str::from_utf8(raw) {
            Ok(sql) => {
                let masked = crate::sql::literals_masked(sql);
                if masked == sql {
                    Value::Keep
                } else {
                    Value::Bytes(masked.into_bytes())
                }
            }
            Err(_) => Value::Null,
        },
        Action::Token => match (col.kind, col.format) {
            // bytea stays bytea: hex in text format, raw bytes in binary.
            (TypeKind::Bytea, 1) => Value::Bytes(m.keyed_bytes(raw).to_vec()),
            (TypeKind::Bytea, _) => {
                Value::Bytes(format!("\\x{}", hex::encode(m.keyed_bytes(raw))).into_bytes())
            }
            (TypeKind::Text, _) => match std::str::from_utf8(raw) {
                // A COPY's expression of unknown type whose value is a bytea in hex (`sha256(…)`):
                // the token in the same form, so the row still loads.
                Ok(text)
                    if text.len() > 2
                        && text.starts_with("\\x")
                        && text[2..].bytes().all(|b| b.is_ascii_hexdigit()) =>
                {
                    Value::Bytes(format!("\\x{}", hex::encode(m.keyed_bytes(raw))).into_bytes())
                }
                Ok(text) => Value::Bytes(m.token(text).into_bytes()),
                Err(_) => Value::Null,
            },
            _ => Value::Null,
        },
        Action::Detect => {
            // The pre-filter: most values (plain words, numbers, dates) stop here.
            if !may_contain(raw) {
                return Value::Keep;
            }
            // jsonb in binary starts with a version byte.
            let (prefix, body) =
                if col.kind == TypeKind::Jsonb && col.format == 1 && !raw.is_empty() {
                    (&raw[..1], &raw[1..])
                } else {
                    (&raw[..0], raw)
                };
            if col.kind == TypeKind::Bytea {
                // Hex (text format) or raw bytes: detectors judge the bytes as text, and a
                // finding cannot be masked inside the encoding without breaking it.
                let bytes = match (col.format, body.strip_prefix(b"\\x")) {
                    (0, Some(hex_digits)) => hex::decode(hex_digits).unwrap_or_default(),
                    _ => body.to_vec(),
                };
                let spans = spans_without(&String::from_utf8_lossy(&bytes), skip);
                found.extend(spans.iter().map(|(_, c)| *c));
                return if spans.is_empty() {
                    Value::Keep
                } else {
                    Value::Null
                };
            }
            if matches!(col.kind, TypeKind::Json | TypeKind::Jsonb) {
                // Only strings can hold what the detectors find; a number is a number (a
                // 16-digit one that passes Luhn is not a card here), and the JSON must parse.
                let Ok(text) = std::str::from_utf8(body) else {
                    return Value::Null;
                };
                let Ok(mut v) = serde_json::from_str::<serde_json::Value>(text) else {
                    return Value::Null;
                };
                if !detect_json(m, &mut v, skip, found) {
                    return Value::Keep;
                }
                return prefixed(prefix, v.to_string());
            }
            match std::str::from_utf8(body) {
                Ok(text) => match detect_text_found(m, text, skip, found) {
                    None => Value::Keep,
                    // inet, cidr, enums, composites…: a partial mask would not be a valid
                    // value of the type (`188.*.*.*/26`).
                    Some(_) if col.kind == TypeKind::Other => Value::Null,
                    Some(_) if col.format == 1 && col.kind == TypeKind::TextArray => Value::Null,
                    Some(masked) => prefixed(prefix, masked),
                },
                Err(_) => {
                    // Not text (a binary value of some type): if its bytes read as text hold
                    // something sensitive, it cannot be masked in place.
                    let lossy = String::from_utf8_lossy(body);
                    let spans = spans_without(&lossy, skip);
                    found.extend(spans.iter().map(|(_, c)| *c));
                    if spans.is_empty() {
                        Value::Keep
                    } else {
                        Value::Null
                    }
                }
            }
        }
        Action::Mask(cats) => {
            let (prefix, body) =
                if col.kind == TypeKind::Jsonb && col.format == 1 && !raw.is_empty() {
                    (&raw[..1], &raw[1..])
                } else {
                    (&raw[..0], raw)
                };
            let Ok(text) = std::str::from_utf8(body) else {
                return Value::Null;
            };
            let masked = match col.kind {
                TypeKind::Json | TypeKind::Jsonb => {
                    match serde_json::from_str::<serde_json::Value>(text) {
                        Ok(mut v) => {
                            mask_json(m, &mut v, None, None, col, cats, skip);
                            v.to_string()
                        }
                        Err(_) => return Value::Null,
                    }
                }
                TypeKind::TextArray => match parse_array(text) {
                    Some(items) => {
                        let masked: Vec<Option<String>> = items
                            .iter()
                            .map(|i| i.as_ref().map(|s| mask_text(m, col, cats, s, skip)))
                            .collect();
                        format_array(&masked)
                    }
                    None => return Value::Null,
                },
                _ => match mask_text_json(m, col, cats, text, skip) {
                    Some(j) => j,
                    None => match text.starts_with('{').then(|| parse_array(text)).flatten() {
                        // An array cast to text (`aliases::text`).
                        Some(items) => format_array(
                            &items
                                .iter()
                                .map(|i| i.as_ref().map(|s| mask_text(m, col, cats, s, skip)))
                                .collect::<Vec<_>>(),
                        ),
                        _ => mask_text(m, col, cats, text, skip),
                    },
                },
            };
            prefixed(prefix, masked)
        }
    }
}

/// A DataRow with the plan applied; `None` when no value changed (forward the original).
pub fn data_row(
    plan: &ResultPlan,
    m: &Masker,
    frame: &[u8],
    findings: &mut Findings,
) -> Option<BytesMut> {
    if frame.len() < 7 {
        return None;
    }
    let n = u16::from_be_bytes([frame[5], frame[6]]) as usize;
    let mut pos = 7;
    let mut changes: Vec<(usize, usize, Value)> = Vec::new();
    for i in 0..n {
        let len = i32::from_be_bytes(frame.get(pos..pos + 4)?.try_into().ok()?);
        let start = pos + 4;
        let end = if len < 0 { start } else { start + len as usize };
        if end > frame.len() {
            return None;
        }
        if len >= 0 {
            if let Some(col) = plan.columns.get(i) {
                let mut found = BTreeSet::new();
                let v = mask_value(m, col, &plan.skip, &frame[start..end], &mut found);
                note_found(findings, i, found);
                if v != Value::Keep {
                    changes.push((pos, end, v));
                }
            }
        }
        pos = end;
    }
    if changes.is_empty() {
        return None;
    }
    let mut out = BytesMut::with_capacity(frame.len() + 64);
    out.put_slice(&frame[..5]);
    let mut at = 5;
    for (s, e, v) in changes {
        out.put_slice(&frame[at..s]);
        match v {
            Value::Null | Value::Keep => out.put_i32(-1),
            Value::Bytes(b) => {
                out.put_i32(b.len() as i32);
                out.put_slice(&b);
            }
        }
        at = e;
    }
    out.put_slice(&frame[at..]);
    let len = (out.len() - 1) as u32;
    out[1..5].copy_from_slice(&len.to_be_bytes());
    Some(out)
}

fn unescape_copy_text(field: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        if field[i] == b'\\' && i + 1 < field.len() {
            i += 1;
            out.push(match field[i] {
                b'n' => b'\n',
                b'r' => b'\r',
                b't' => b'\t',
                b'b' => 8,
                b'f' => 12,
                b'v' => 11,
                c => c,
            });
        } else {
            out.push(field[i]);
        }
        i += 1;
    }
    out
}

fn escape_copy_text(v: &[u8], delimiter: u8, out: &mut Vec<u8>) {
    for &b in v {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' if delimiter == b'\t' => out.extend_from_slice(b"\\t"),
            d if d == delimiter => {
                out.push(b'\\');
                out.push(d);
            }
            _ => out.push(b),
        }
    }
}

/// Splits one COPY text row at unescaped delimiters (a delimiter inside a value arrives as
/// `\` + delimiter), keeping each field's escapes.
fn split_copy_text(row: &[u8], delim: u8) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < row.len() {
        if row[i] == b'\\' {
            i += 2;
            continue;
        }
        if row[i] == delim {
            out.push(&row[start..i]);
            start = i + 1;
        }
        i += 1;
    }
    out.push(&row[start.min(row.len())..]);
    out
}

/// Splits one CSV record into (raw field, was quoted). Inside quotes, `escape` before a quote
/// or itself makes it literal (with the default escape, the quote, that is a doubled quote).
fn split_csv(row: &[u8], delim: u8, quote: u8, escape: u8) -> Vec<(Vec<u8>, bool)> {
    let mut out = Vec::new();
    let mut cur = Vec::new();
    let mut quoted = false;
    let mut in_q = false;
    let mut i = 0;
    while i < row.len() {
        let b = row[i];
        if in_q {
            let next = row.get(i + 1).copied();
            if b == escape && (next == Some(quote) || (escape != quote && next == Some(escape))) {
                cur.push(next.unwrap_or(b));
                i += 1;
            } else if b == quote {
                in_q = false;
            } else {
                cur.push(b);
            }
        } else if b == quote {
            in_q = true;
            quoted = true;
        } else if b == delim {
            out.push((std::mem::take(&mut cur), quoted));
            quoted = false;
        } else {
            cur.push(b);
        }
        i += 1;
    }
    out.push((cur, quoted));
    out
}

/// The 11-byte signature that opens a binary COPY stream.
const PGCOPY_SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";

/// What becomes of one binary COPY CopyData.
#[derive(Debug, PartialEq, Eq)]
pub enum BinaryCopyData {
    Unchanged,
    Replace(BytesMut),
    /// Not laid out as the gateway reads it (a tuple split across messages, another column
    /// count): it must not reach the client.
    Unreadable,
}

/// One CopyData of a binary COPY with the plan applied (format 1 values; the header, if this
/// is the first message, and the trailer kept as they are).
pub fn copy_binary_data(
    plan: &ResultPlan,
    m: &Masker,
    frame: &[u8],
    findings: &mut Findings,
) -> BinaryCopyData {
    let Some(body) = frame.get(5..) else {
        return BinaryCopyData::Unreadable;
    };
    let mut out: Vec<u8> = Vec::with_capacity(body.len() + 16);
    let mut pos = 0;
    if body.starts_with(PGCOPY_SIGNATURE) {
        let Some(ext) = body.get(15..19) else {
            return BinaryCopyData::Unreadable;
        };
        let header_end = 19 + u32::from_be_bytes([ext[0], ext[1], ext[2], ext[3]]) as usize;
        if header_end > body.len() {
            return BinaryCopyData::Unreadable;
        }
        out.extend_from_slice(&body[..header_end]);
        pos = header_end;
    }
    let mut changed = false;
    while pos < body.len() {
        let Some(n) = body.get(pos..pos + 2) else {
            return BinaryCopyData::Unreadable;
        };
        let n = i16::from_be_bytes([n[0], n[1]]);
        out.extend_from_slice(&body[pos..pos + 2]);
        pos += 2;
        if n == -1 {
            continue;
        }
        if n < 0 || n as usize != plan.columns.len() {
            return BinaryCopyData::Unreadable;
        }
        for (i, col) in plan.columns.iter().enumerate() {
            let Some(len) = body.get(pos..pos + 4) else {
                return BinaryCopyData::Unreadable;
            };
            let len = i32::from_be_bytes([len[0], len[1], len[2], len[3]]);
            pos += 4;
            if len < 0 {
                out.extend_from_slice(&(-1i32).to_be_bytes());
                continue;
            }
            let Some(raw) = body.get(pos..pos + len as usize) else {
                return BinaryCopyData::Unreadable;
            };
            pos += len as usize;
            let value = if col.action == Action::Pass {
                Value::Keep
            } else {
                let mut found = BTreeSet::new();
                let v = mask_value(m, col, &plan.skip, raw, &mut found);
                note_found(findings, i, found);
                v
            };
            match value {
                Value::Keep => {
                    out.extend_from_slice(&(len).to_be_bytes());
                    out.extend_from_slice(raw);
                }
                Value::Null => {
                    changed = true;
                    out.extend_from_slice(&(-1i32).to_be_bytes());
                }
                Value::Bytes(b) => {
                    changed = true;
                    out.extend_from_slice(&(b.len() as i32).to_be_bytes());
                    out.extend_from_slice(&b);
                }
            }
        }
    }
    if !changed {
        return BinaryCopyData::Unchanged;
    }
    let mut f = BytesMut::with_capacity(out.len() + 5);
    f.put_u8(b'd');
    f.put_u32((4 + out.len()) as u32);
    f.put_slice(&out);
    BinaryCopyData::Replace(f)
}

/// One COPY row (a CopyData frame) with the plan applied; `None` when nothing changed.
pub fn copy_row(
    plan: &ResultPlan,
    m: &Masker,
    copy: &CopyOut,
    frame: &[u8],
    findings: &mut Findings,
) -> Option<BytesMut> {
    if copy.format == CopyFormat::Binary || frame.len() < 5 {
        return None;
    }
    let body = &frame[5..];
    let (row, eol): (&[u8], &[u8]) = if let Some(r) = body.strip_suffix(b"\r\n") {
        (r, b"\r\n")
    } else if let Some(r) = body.strip_suffix(b"\n") {
        (r, b"\n")
    } else {
        (body, b"")
    };
    let mut changed = false;
    let mut out_row: Vec<u8> = Vec::with_capacity(body.len() + 32);
    match copy.format {
        CopyFormat::Text => {
            let fields = split_copy_text(row, copy.delimiter);
            if fields.len() != plan.columns.len() {
                return Some(all_null_row(plan, copy, eol));
            }
            for (i, field) in fields.into_iter().enumerate() {
                if i > 0 {
                    out_row.push(copy.delimiter);
                }
                let col = plan.columns.get(i);
                let is_null = field == copy.null.as_bytes();
                match col {
                    Some(c) if !is_null && c.action != Action::Pass => {
                        let mut found = BTreeSet::new();
                        let v =
                            mask_value(m, c, &plan.skip, &unescape_copy_text(field), &mut found);
                        note_found(findings, i, found);
                        match v {
                            Value::Keep => out_row.extend_from_slice(field),
                            Value::Null => {
                                changed = true;
                                out_row.extend_from_slice(copy.null.as_bytes());
                            }
                            Value::Bytes(b) => {
                                changed = true;
                                escape_copy_text(&b, copy.delimiter, &mut out_row);
                            }
                        }
                    }
                    _ => out_row.extend_from_slice(field),
                }
            }
        }
        CopyFormat::Csv => {
            let fields = split_csv(row, copy.delimiter, copy.quote, copy.escape);
            if fields.len() != plan.columns.len() {
                // A row the gateway does not split as PostgreSQL wrote it (a quoted newline
                // across messages, an option it did not read): which value is which is unknown.
                return Some(all_null_row(plan, copy, eol));
            }
            for (i, (field, quoted)) in fields.into_iter().enumerate() {
                if i > 0 {
                    out_row.push(copy.delimiter);
                }
                let is_null = !quoted && field == copy.null.as_bytes();
                // Quoted only when PostgreSQL would quote it too.
                let needs_quotes = |v: &[u8]| {
                    v.is_empty()
                        || v == copy.null.as_bytes()
                        || v.iter().any(|&b| {
                            b == copy.delimiter || b == copy.quote || b == b'\n' || b == b'\r'
                        })
                };
                let write_quoted = |v: &[u8], out: &mut Vec<u8>| {
                    out.push(copy.quote);
                    for &b in v {
                        if b == copy.quote || b == copy.escape {
                            out.push(copy.escape);
                        }
                        out.push(b);
                    }
                    out.push(copy.quote);
                };
                let v = match plan.columns.get(i) {
                    Some(c) if !is_null && c.action != Action::Pass => {
                        let mut found = BTreeSet::new();
                        let v = mask_value(m, c, &plan.skip, &field, &mut found);
                        note_found(findings, i, found);
                        v
                    }
                    _ => Value::Keep,
                };
                match v {
                    Value::Keep => {
                        if quoted {
                            write_quoted(&field, &mut out_row)
                        } else {
                            out_row.extend_from_slice(&field)
                        }
                    }
                    Value::Null => {
                        changed = true;
                        out_row.extend_from_slice(copy.null.as_bytes());
                    }
                    Value::Bytes(b) => {
                        changed = true;
                        if needs_quotes(&b) {
                            write_quoted(&b, &mut out_row);
                        } else {
                            out_row.extend_from_slice(&b);
                        }
                    }
                }
            }
        }
        CopyFormat::Binary => return None,
    }
    if !changed {
        return None;
    }
    let mut out = BytesMut::with_capacity(out_row.len() + 8);
    out.put_u8(b'd');
    out.put_u32((4 + out_row.len() + eol.len()) as u32);
    out.put_slice(&out_row);
    out.put_slice(eol);
    Some(out)
}

/// A COPY text/CSV row whose fields cannot be lined up with the plan: every value NULL.
fn all_null_row(plan: &ResultPlan, copy: &CopyOut, eol: &[u8]) -> BytesMut {
    let mut row = Vec::new();
    for i in 0..plan.columns.len() {
        if i > 0 {
            row.push(copy.delimiter);
        }
        row.extend_from_slice(copy.null.as_bytes());
    }
    let mut out = BytesMut::with_capacity(row.len() + 8);
    out.put_u8(b'd');
    out.put_u32((4 + row.len() + eol.len()) as u32);
    out.put_slice(&row);
    out.put_slice(eol);
    out
}

/// Masks the text of one error or notice field: detector matches, the values of a
/// `Key (col)=(value)` whose column name is sensitive, and the row in "Failing row contains".
pub fn error_text(m: &Masker, text: &str, skip: &BTreeSet<Category>) -> Option<String> {
    let mut out = text.to_string();
    let mut changed = false;
    if let Some(start) = out.find("Failing row contains (") {
        let open = start + "Failing row contains ".len();
        if let Some(close) = out.rfind(')') {
            if close > open {
                out.replace_range(open..=close, "(…)");
                changed = true;
            }
        }
    }
    if let Some(start) = out.find("Key (") {
        let rest = &out[start + 5..];
        if let Some(eq) = rest.find(")=(") {
            let cols = &rest[..eq];
            let sensitive = cols
                .split(',')
                .any(|c| category_for_name(c.trim().trim_matches('"')).is_some());
            let vstart = start + 5 + eq + 3;
            if sensitive {
                if let Some(vend) = out[vstart..].rfind(')') {
                    out.replace_range(vstart..vstart + vend, "***");
                    changed = true;
                }
            }
        }
    }
    if let Some(d) = detect_text(m, &out, skip) {
        out = d;
        changed = true;
    }
    changed.then_some(out)
}

/// A FunctionCallResponse (`V`) whose value is text, with detector matches masked as for any
/// value of unknown lineage (the fast-path call names no column); `None` when nothing changed.
/// A value that is not UTF-8 text is left as it is: there is nothing a detector could read.
pub fn function_result_frame(
    m: &Masker,
    frame: &[u8],
    skip: &BTreeSet<Category>,
) -> Option<BytesMut> {
    let len = i32::from_be_bytes(frame.get(5..9)?.try_into().ok()?);
    let value = frame.get(9..9 + usize::try_from(len).ok()?)?;
    let masked = detect_text(m, std::str::from_utf8(value).ok()?, skip)?;
    Some(function_result(masked.as_bytes()))
}

/// A FunctionCallResponse (`V`) carrying `value`.
pub(super) fn function_result(value: &[u8]) -> BytesMut {
    let mut out = BytesMut::with_capacity(9 + value.len());
    out.put_u8(b'V');
    out.put_u32((8 + value.len()) as u32);
    out.put_i32(value.len() as i32);
    out.put_slice(value);
    out
}

/// The NUL-terminated string at the start of `b`, and what follows it.
pub(super) fn split_cstr(b: &[u8]) -> Option<(&[u8], &[u8])> {
    let end = b.iter().position(|&c| c == 0)?;
    Some((&b[..end], &b[end + 1..]))
}

/// A ParameterStatus (`S`) of a setting a statement may fill with any text
/// (`application_name`, custom `x.y` settings) with detector matches masked; the server's
/// own settings (`server_version`, `DateStyle`, …) are never touched: drivers parse them.
pub fn parameter_status_frame(
    m: &Masker,
    frame: &[u8],
    skip: &BTreeSet<Category>,
) -> Option<BytesMut> {
    parameter_status(m, frame, skip, false)
}

/// A ParameterStatus reported after a statement that set a parameter from row data
/// (`set_config('application_name', (SELECT full_name …), false)`): its value is masked whole,
/// as value detection cannot see names.
pub fn parameter_status_redacted(m: &Masker, frame: &[u8]) -> Option<BytesMut> {
    parameter_status(m, frame, &BTreeSet::new(), true)
}

fn parameter_status(
    m: &Masker,
    frame: &[u8],
    skip: &BTreeSet<Category>,
    whole: bool,
) -> Option<BytesMut> {
    let (name, rest) = split_cstr(frame.get(5..)?)?;
    let (value, _) = split_cstr(rest)?;
    if name != b"application_name" && !name.contains(&b'.') {
        return None;
    }
    let value = std::str::from_utf8(value).ok()?;
    let masked = if whole {
        m.redact(value)
    } else {
        detect_text(m, value, skip)?
    };
    let mut out = BytesMut::with_capacity(frame.len());
    out.put_u8(b'S');
    out.put_u32((4 + name.len() + 1 + masked.len() + 1) as u32);
    out.put_slice(name);
    out.put_u8(0);
    out.put_slice(masked.as_bytes());
    out.put_u8(0);
    Some(out)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::masking::mask::Mode;

    fn m() -> Masker {
        Masker::new(Mode::Partial, [3; 32])
    }

    fn col(action: Action, kind: TypeKind, format: i16) -> ColumnPlan {
        ColumnPlan {
            action,
            kind,
            format,
            keys: BTreeMap::new(),
            safe_keys: BTreeSet::new(),
            whole_json: false,
            whole: false,
        }
    }

    fn row(values: &[Option<&[u8]>]) -> Vec<u8> {
        let mut b = vec![b'D', 0, 0, 0, 0];
        b.extend_from_slice(&(values.len() as u16).to_be_bytes());
        for v in values {
            match v {
                None => b.extend_from_slice(&(-1i32).to_be_bytes()),
                Some(v) => {
                    b.extend_from_slice(&(v.len() as i32).to_be_bytes());
                    b.extend_from_slice(v);
                }
            }
        }
        let len = (b.len() - 1) as u32;
        b[1..5].copy_from_slice(&len.to_be_bytes());
        b
    }

    fn values(frame: &[u8]) -> Vec<Option<String>> {
        let n = u16::from_be_bytes([frame[5], frame[6]]) as usize;
        let mut pos = 7;
        let mut out = Vec::new();
        for _ in 0..n {
            let len = i32::from_be_bytes(frame[pos..pos + 4].try_into().unwrap());
            pos += 4;
            if len < 0 {
                out.push(None);
            } else {
                out.push(Some(
                    String::from_utf8_lossy(&frame[pos..pos + len as usize]).into(),
                ));
                pos += len as usize;
            }
        }
        out
    }

    #[test]
    fn data_rows_are_rewritten_column_by_column() {
        let plan = ResultPlan {
            columns: vec![
                col(Action::Pass, TypeKind::Plain, 0),
                col(Action::Mask(vec![Category::Email]), TypeKind::Text, 0),
                col(Action::Detect, TypeKind::Text, 0),
                col(Action::Null, TypeKind::Plain, 1),
                col(
                    Action::Mask(vec![Category::PersonName]),
                    TypeKind::TextArray,
                    0,
                ),
            ],
            ..Default::default()
        };
        let f = row(&[
            Some(b"42"),
            Some(b"ana@example.com"),
            Some(b"call 415-555-0132 now"),
            Some(&[0, 0, 1, 2]),
            Some(b"{\"Ana Silva\",Bo,NULL}"),
        ]);
        let mut found = Findings::new();
        let out = data_row(&plan, &m(), &f, &mut found).expect("changed");
        // Detection masked a phone number in the third column: reported for the audit.
        assert_eq!(
            found,
            Findings::from([(2, BTreeSet::from([Category::Phone]))])
        );
        assert_eq!(
            values(&out),
            vec![
                Some("42".into()),
                Some("a***@example.com".into()),
                Some("call ***-***-**32 now".into()),
                None,
                Some("{\"A*** S***\",\"B***\",NULL}".into()),
            ]
        );
        let safe = row(&[Some(b"1"), None, Some(b"nothing here"), None, None]);
        assert!(data_row(&plan, &m(), &safe, &mut Findings::new()).is_none());
    }

    #[test]
    fn json_is_masked_by_key_and_by_detector() {
        let mut c = col(
            Action::Mask(vec![Category::PersonName, Category::Email]),
            TypeKind::Json,
            0,
        );
        c.keys.insert("full_name".into(), Category::PersonName);
        c.keys.insert("email".into(), Category::Email);
        c.safe_keys.insert("note".into());
        let v = mask_value(
            &m(),
            &c,
            &BTreeSet::new(),
            br#"{"id": 1, "full_name": "Ana Silva", "email": "ana@example.com", "note": "ssn 123-45-6789"}"#,
            &mut BTreeSet::new(),
        );
        let Value::Bytes(b) = v else { panic!("{v:?}") };
        let s = String::from_utf8(b).unwrap();
        assert!(
            s.contains("\"A*** S***\"") && s.contains("a***@example.com"),
            "{s}"
        );
        assert!(s.contains("***-**-6789") && s.contains("\"id\":1"), "{s}");
    }

    #[test]
    fn copy_text_and_csv() {
        let plan = ResultPlan {
            columns: vec![
                col(Action::Pass, TypeKind::Plain, 0),
                col(Action::Mask(vec![Category::Email]), TypeKind::Text, 0),
                col(Action::Mask(vec![Category::PersonName]), TypeKind::Text, 0),
            ],
            ..Default::default()
        };
        let text = CopyOut::text_default();
        let mut f = vec![b'd', 0, 0, 0, 0];
        f.extend_from_slice(b"7\tana@example.com\tAna\\tSilva\n");
        let out = copy_row(&plan, &m(), &text, &f, &mut Findings::new()).expect("changed");
        assert_eq!(&out[5..], b"7\ta***@example.com\tA*** S***\n");
        let csv = CopyOut {
            format: CopyFormat::Csv,
            delimiter: b',',
            null: String::new(),
            ..text
        };
        let mut f = vec![b'd', 0, 0, 0, 0];
        f.extend_from_slice(b"7,ana@example.com,\"Silva, Ana\"\n");
        let out = copy_row(&plan, &m(), &csv, &f, &mut Findings::new()).expect("changed");
        assert_eq!(&out[5..], b"7,a***@example.com,S*** A***\n");
    }

    #[test]
    fn copy_rows_split_as_postgresql_writes_them() {
        assert_eq!(
            split_copy_text(b"1,Silva\\, Ana,x", b','),
            vec![&b"1"[..], b"Silva\\, Ana", b"x"]
        );
        assert_eq!(
            split_csv(br#""a\"b",c"#, b',', b'"', b'\\'),
            vec![(b"a\"b".to_vec(), true), (b"c".to_vec(), false)]
        );
        let plan = ResultPlan {
            columns: vec![
                col(Action::Pass, TypeKind::Plain, 0),
                col(Action::Mask(vec![Category::PersonName]), TypeKind::Text, 0),
            ],
            ..Default::default()
        };
        let copy = CopyOut {
            delimiter: b',',
            ..CopyOut::text_default()
        };
        let mut f = vec![b'd', 0, 0, 0, 0];
        f.extend_from_slice(b"7,Silva\\, Ana\n");
        let out = copy_row(&plan, &m(), &copy, &f, &mut Findings::new()).expect("changed");
        assert_eq!(&out[5..], b"7,S*** A***\n");
        // A row that does not line up with the plan: nothing of it is trusted.
        let mut f = vec![b'd', 0, 0, 0, 0];
        f.extend_from_slice(b"7,Silva,Ana\n");
        let out = copy_row(&plan, &m(), &copy, &f, &mut Findings::new()).expect("changed");
        assert_eq!(&out[5..], b"\\N,\\N\n");
    }

    #[test]
    fn binary_copy_is_masked_in_place() {
        let plan = ResultPlan {
            columns: vec![
                col(Action::Pass, TypeKind::Plain, 1),
                col(Action::Mask(vec![Category::Email]), TypeKind::Text, 1),
                col(Action::Null, TypeKind::Plain, 1),
            ],
            ..Default::default()
        };
        let mut body = PGCOPY_SIGNATURE.to_vec();
        body.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0]);
        body.extend_from_slice(&3i16.to_be_bytes());
        for v in [&7i32.to_be_bytes()[..], b"ana@example.com", &[0, 0, 0, 1]] {
            body.extend_from_slice(&(v.len() as i32).to_be_bytes());
            body.extend_from_slice(v);
        }
        let mut f = vec![b'd'];
        f.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
        f.extend_from_slice(&body);
        let BinaryCopyData::Replace(out) = copy_binary_data(&plan, &m(), &f, &mut Findings::new())
        else {
            panic!("masked");
        };
        let text = String::from_utf8_lossy(&out);
        assert!(
            text.contains("a***@example.com") && !text.contains("ana@"),
            "{text}"
        );
        assert!(
            out.ends_with(&(-1i32).to_be_bytes()),
            "the date became NULL"
        );
        // The trailer alone passes; a tuple of another width does not.
        let trailer = [b'd', 0, 0, 0, 6, 0xff, 0xff];
        assert_eq!(
            copy_binary_data(&plan, &m(), &trailer, &mut Findings::new()),
            BinaryCopyData::Unchanged
        );
        let odd = [b'd', 0, 0, 0, 10, 0, 1, 0, 0, 0, 0];
        assert_eq!(
            copy_binary_data(&plan, &m(), &odd, &mut Findings::new()),
            BinaryCopyData::Unreadable
        );
    }

    #[test]
    fn json_keys_chosen_by_the_query_are_not_trusted() {
        let mut c = col(
            Action::Mask(vec![Category::PersonName, Category::NationalId]),
            TypeKind::Json,
            0,
        );
        c.safe_keys.insert("id".into());
        let raw = br#"{"id":"Ana Silva","n":123456789,"list":["Bo Li"]}"#;
        let keyed = mask_value(&m(), &c, &BTreeSet::new(), raw, &mut BTreeSet::new());
        c.whole_json = true;
        let whole = mask_value(&m(), &c, &BTreeSet::new(), raw, &mut BTreeSet::new());
        let text = |v: Value| match v {
            Value::Bytes(b) => String::from_utf8(b).unwrap_or_default(),
            other => format!("{other:?}"),
        };
        assert!(
            text(keyed).contains("Ana Silva"),
            "a safe key trusted by its name"
        );
        let whole = text(whole);
        assert!(
            !whole.contains("Ana Silva") && !whole.contains("Bo Li"),
            "{whole}"
        );
        assert!(
            !whole.contains("123456789"),
            "digits of a national id: {whole}"
        );
        assert!(
            serde_json::from_str::<serde_json::Value>(&whole).is_ok(),
            "{whole}"
        );
    }

    #[test]
    fn detection_keeps_values_valid_for_their_types() {
        let none = BTreeSet::new();
        let detect = |kind, raw: &[u8]| {
            mask_value(
                &m(),
                &col(Action::Detect, kind, 0),
                &none,
                raw,
                &mut BTreeSet::new(),
            )
        };
        // A cidr holding an address: NULL, never `188.*.*.*/26`.
        assert_eq!(detect(TypeKind::Other, b"188.100.201.0/26"), Value::Null);
        // bytea: hex stays hex, or NULL when its bytes hold something.
        assert_eq!(
            detect(TypeKind::Bytea, b"\\xab4111111111111111cd"),
            Value::Keep
        );
        let email_hex = format!("\\x{}", hex::encode("ana@example.com"));
        assert_eq!(detect(TypeKind::Bytea, email_hex.as_bytes()), Value::Null);
        // JSON: a number is a number; strings are judged, and the JSON still parses.
        assert_eq!(
            detect(TypeKind::Jsonb, br#"[4111111111111111, "x"]"#),
            Value::Keep
        );
        let Value::Bytes(b) = detect(TypeKind::Json, br#"{"c": "call ana@example.com"}"#) else {
            panic!("masked");
        };
        let v: serde_json::Value = serde_json::from_slice(&b).expect("parses");
        assert_eq!(v["c"], "call a***@example.com");
    }

    #[test]
    fn values_of_unknown_origin_are_masked_whole_and_stay_valid() {
        let plan = ResultPlan {
            columns: vec![
                col(Action::Redact, TypeKind::Text, 0),
                col(Action::Redact, TypeKind::Jsonb, 0),
                col(Action::Redact, TypeKind::TextArray, 0),
                col(Action::Redact, TypeKind::Jsonb, 1),
                col(Action::Redact, TypeKind::TextArray, 1),
            ],
            ..Default::default()
        };
        let mut jsonb_bin = vec![1u8];
        jsonb_bin.extend_from_slice(br#"{"n":"Ana Silva","id":7}"#);
        let frame = row(&[
            Some(b"Ana Silva"),
            Some(br#"{"who":{"n":"Ana Silva"},"id":7}"#),
            Some(b"{\"Ana Silva\",bo}"),
            Some(&jsonb_bin),
            Some(b"\x00\x01"),
        ]);
        let out = data_row(&plan, &m(), &frame, &mut Findings::new()).expect("changed");
        let v = values(&out);
        assert_eq!(v[0].as_deref(), Some("***"));
        assert_eq!(v[1].as_deref(), Some(r#"{"id":7,"who":{"n":"***"}}"#));
        assert_eq!(v[2].as_deref(), Some(r#"{"***","***"}"#));
        assert_eq!(v[3].as_deref(), Some("\u{1}{\"id\":7,\"n\":\"***\"}"));
        assert_eq!(v[4], None, "a binary array cannot be rewritten: NULL");
    }

    #[test]
    fn errors_lose_row_values() {
        let s = BTreeSet::new();
        assert_eq!(
            error_text(&m(), "Key (email)=(ana@example.com) already exists.", &s).as_deref(),
            Some("Key (email)=(***) already exists.")
        );
        assert_eq!(
            error_text(&m(), "Key (full_name)=(Ana Silva) already exists.", &s).as_deref(),
            Some("Key (full_name)=(***) already exists.")
        );
        assert_eq!(
            error_text(&m(), "Failing row contains (1, Ana Silva, x).", &s).as_deref(),
            Some("Failing row contains (…).")
        );
        assert_eq!(error_text(&m(), "relation \"t\" does not exist", &s), None);
    }
}
