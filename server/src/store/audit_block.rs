//! How a gateway's own trail keeps a committed batch of records: one row per batch, its records
//! as lines of text in PostgreSQL `COPY`'s text format (tab-separated fields, `\N` for none,
//! backslash escapes for a tab, a newline or a backslash inside a field).
//!
//! A row per record cost the writer a B-tree insert and its share of WAL frames for every
//! record, more than the record's encoding and hash together; a row per batch costs one insert
//! per commit. The text stays readable (a block is a run of lines in a segment file, see
//! `audit_segments`, or an older trail's `records` column), and nothing about it is trusted:
//! `audit verify` checks every line against the hash chain as it checked every row.

use super::audit_db::{NewRecord, StoredRecord};

/// Fields of a line, in order: seq, ts, event, identity, environment, connection_id, hash, json.
const FIELDS: usize = 8;

/// Appends `r` as one line.
pub fn push_line(out: &mut String, r: &NewRecord<'_>) {
    out.push_str(itoa::Buffer::new().format(r.seq));
    for field in [
        Some(r.ts),
        Some(r.event),
        r.identity,
        r.environment,
        r.connection_id,
        Some(r.hash),
        Some(r.json),
    ] {
        out.push('\t');
        push_field(out, field);
    }
    out.push('\n');
}

fn push_field(out: &mut String, v: Option<&str>) {
    let Some(v) = v else {
        out.push_str("\\N");
        return;
    };
    // Copied in runs between the bytes to escape (a JSON string's own escapes are backslashes).
    let mut run = 0;
    for i in memchr::memchr3_iter(b'\t', b'\n', b'\\', v.as_bytes()) {
        out.push_str(&v[run..i]);
        out.push_str(match v.as_bytes()[i] {
            b'\t' => "\\t",
            b'\n' => "\\n",
            _ => "\\\\",
        });
        run = i + 1;
    }
    out.push_str(&v[run..]);
}

/// Why a block's text is not a list of records.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the block from record {first_seq}: {reason}")]
pub struct MalformedBlock {
    pub first_seq: i64,
    pub reason: String,
}

/// The records of the block that starts at `first_seq`, in the order its lines hold them.
pub fn records(
    first_seq: i64,
    text: &str,
) -> impl DoubleEndedIterator<Item = Result<StoredRecord, MalformedBlock>> + '_ {
    text.split_terminator('\n').map(move |line| {
        parse_line(line).map_err(|reason| {
            let start: String = line.chars().take(24).collect();
            MalformedBlock {
                first_seq,
                reason: format!("the line {start:?}… {reason}"),
            }
        })
    })
}

/// The last record of a block, without reading the others.
pub fn last_record(first_seq: i64, text: &str) -> Option<Result<StoredRecord, MalformedBlock>> {
    records(first_seq, text).next_back()
}

fn parse_line(line: &str) -> Result<StoredRecord, String> {
    let mut fields = line.splitn(FIELDS, '\t');
    let mut next = |name: &str| {
        fields
            .next()
            .ok_or_else(|| format!("has no {name} field"))
            .and_then(unescape)
    };
    let seq = next("seq")?
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or("its seq is not a number")?;
    let required = |v: Option<String>, name: &str| v.ok_or(format!("its {name} is missing"));
    let ts = required(next("ts")?, "ts")?;
    let event = required(next("event")?, "event")?;
    let identity = next("identity")?;
    let environment = next("environment")?;
    let connection_id = next("connection_id")?;
    let hash = required(next("hash")?, "hash")?;
    let json = required(next("json")?, "json")?;
    Ok(StoredRecord {
        id: seq,
        replica: None,
        seq,
        ts,
        event,
        identity,
        environment,
        connection_id,
        json,
        hash,
    })
}

fn unescape(field: &str) -> Result<Option<String>, String> {
    if field == "\\N" {
        return Ok(None);
    }
    if !field.contains('\\') {
        return Ok(Some(field.to_string()));
    }
    let mut out = String::with_capacity(field.len());
    let mut chars = field.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('\\') => out.push('\\'),
            other => {
                return Err(format!(
                    "holds an unknown escape \\{}",
                    other.unwrap_or(' ')
                ))
            }
        }
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(seq: i64, identity: Option<&str>, json: &str) -> StoredRecord {
        StoredRecord {
            id: seq,
            replica: None,
            seq,
            ts: "2026-12-05T06:00:00.000001Z".into(),
            event: "statement".into(),
            identity: identity.map(str::to_string),
            environment: Some("prod".into()),
            connection_id: None,
            json: json.into(),
            hash: "ab".repeat(32),
        }
    }

    fn round_trip(originals: &[StoredRecord]) -> Vec<StoredRecord> {
        let mut text = String::new();
        for r in originals {
            push_line(&mut text, &r.as_new());
        }
        records(originals[0].seq, &text)
            .collect::<Result<Vec<_>, _>>()
            .unwrap()
    }

    fn key(r: &StoredRecord) -> String {
        serde_json::to_string(r).unwrap()
    }

    #[test]
    fn every_field_survives_whatever_it_holds() {
        let tricky = [
            stored(1, Some("alice@example.com"), r#"{"sql":"SELECT '\\t'"}"#),
            stored(2, None, "{}"),
            stored(3, Some(""), "{}"),
            stored(4, Some("\\N"), "{}"),
            stored(5, Some("tab\there\nnewline\\back"), "{\"a\":\"\\\\N\"}"),
            stored(6, Some("ünï\tcode"), "{}"),
        ];
        let back = round_trip(&tricky);
        assert_eq!(
            back.iter().map(key).collect::<Vec<_>>(),
            tricky.iter().map(key).collect::<Vec<_>>()
        );
        assert_eq!(back[1].identity, None);
        assert_eq!(back[2].identity.as_deref(), Some(""));
        assert_eq!(back[3].identity.as_deref(), Some("\\N"));
    }

    #[test]
    fn the_last_record_is_read_alone() {
        let mut text = String::new();
        for seq in 7..=9 {
            push_line(&mut text, &stored(seq, Some("a"), "{}").as_new());
        }
        assert_eq!(last_record(7, &text).unwrap().unwrap().seq, 9);
        assert!(last_record(7, "").is_none());
    }

    #[test]
    fn a_damaged_line_is_named_not_guessed() {
        for (text, reason) in [
            (
                "x\tts\tstatement\t\\N\t\\N\t\\N\th\t{}\n",
                "seq is not a number",
            ),
            ("1\tts\tstatement\n", "has no identity field"),
            ("1\tts\tstatement\t\\q\t\\N\t\\N\th\t{}\n", "unknown escape"),
            ("1\t\\N\tstatement\t\\N\t\\N\t\\N\th\t{}\n", "ts is missing"),
        ] {
            let err = records(1, text).next().unwrap().unwrap_err();
            assert!(err.reason.contains(reason), "{text:?}: {err}");
        }
    }
}
