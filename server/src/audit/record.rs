//! What an audit record holds, how the hot path hands one over cheaply, and its canonical
//! encoding (the bytes the hash chain covers).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::identity::Identity;

/// One audit record as stored and served. Field order is the canonical order: the record's
/// hash covers `serde_json::to_string` of this struct (absent options are omitted).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct AuditRecord {
    pub seq: i64,
    /// RFC 3339, microseconds, UTC.
    pub ts: String,
    /// `connection.open`, `connection.close`, `connection.refused`, `statement`, `statement.start`,
    /// `auth.login`, `auth.login_failed`, `auth.logout`, `admin.<action>`, …
    pub event: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub identity: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub identity_kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub on_behalf_of: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub client_addr: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub application_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub environment: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub database: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub connection_id: Option<String>,
    /// `direct` or `tunnel`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub via: Option<String>,
    /// Statement text with sensitive literals redacted.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub statement: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub fingerprint: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub statement_kinds: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub decision: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub rule: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub approval_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub rows: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub duration_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub sqlstate: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    #[schema(value_type = Object)]
    pub details: Option<serde_json::Value>,
    /// Hash of the previous record (`""` before the first).
    pub prev_hash: String,
    /// The replica whose chain holds the record, when replicas share a store: part of what the
    /// hash covers, so a record cannot be passed off as another replica's.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub replica: Option<String>,
}

impl AuditRecord {
    /// The bytes the chain hashes.
    pub fn canonical(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn new(event: impl Into<String>) -> Self {
        AuditRecord {
            event: event.into(),
            ..Default::default()
        }
    }

    /// Fills the identity fields.
    pub fn by(mut self, who: &Identity) -> Self {
        self.identity = Some(who.name.clone());
        self.identity_kind = Some(who.kind.as_str().to_string());
        self.on_behalf_of = who.on_behalf_of.clone();
        self
    }

    pub fn details(mut self, d: serde_json::Value) -> Self {
        self.details = Some(d);
        self
    }
}

/// What stays the same for every statement of a connection; shared, not copied, per record.
#[derive(Debug)]
pub struct ConnectionMeta {
    pub connection_id: String,
    pub identity: String,
    pub identity_kind: &'static str,
    pub on_behalf_of: Option<String>,
    pub client_addr: String,
    pub application_name: Option<String>,
    pub environment: String,
    pub database: String,
    pub via: &'static str,
}

impl ConnectionMeta {
    /// The canonical encoding of this connection's fields, `,"identity":…` through
    /// `,"via":…`, as each of its statement records holds them.
    pub fn write_canonical_fields(&self, out: &mut String) {
        field(out, "identity", &self.identity);
        field(out, "identity_kind", self.identity_kind);
        opt_field(out, "on_behalf_of", self.on_behalf_of.as_deref());
        field(out, "client_addr", &self.client_addr);
        opt_field(out, "application_name", self.application_name.as_deref());
        field(out, "environment", &self.environment);
        field(out, "database", &self.database);
        field(out, "connection_id", &self.connection_id);
        field(out, "via", self.via);
    }

    pub fn record(&self, event: &str) -> AuditRecord {
        AuditRecord {
            event: event.to_string(),
            identity: Some(self.identity.clone()),
            identity_kind: Some(self.identity_kind.to_string()),
            on_behalf_of: self.on_behalf_of.clone(),
            client_addr: Some(self.client_addr.clone()),
            application_name: self.application_name.clone(),
            environment: Some(self.environment.clone()),
            database: Some(self.database.clone()),
            connection_id: Some(self.connection_id.clone()),
            via: Some(self.via.to_string()),
            ..Default::default()
        }
    }
}

/// A statement's outcome as the relay knows it; turned into a record by the writer thread, so
/// redaction and encoding stay off the session's path.
#[derive(Debug)]
pub struct StatementEvent {
    pub meta: Arc<ConnectionMeta>,
    pub stmt: Arc<crate::sql::Statement>,
    /// `statement.start` (written before a data-changing statement runs) or `statement`.
    pub event: &'static str,
    pub at: SystemTime,
    pub duration: Option<Duration>,
    pub rows: Option<i64>,
    pub sqlstate: Option<String>,
    pub error: Option<String>,
    pub decision: &'static str,
    pub rule: Option<String>,
    pub approval_id: Option<String>,
    /// The first rows as the client saw them (session replay), when the environment keeps
    /// them.
    pub sample: Option<crate::pg::tracker::ResultSample>,
    /// What value detection masked, by column (see `masking::rewrite::Findings`).
    pub detected:
        std::collections::BTreeMap<String, std::collections::BTreeSet<crate::masking::Category>>,
}

impl StatementEvent {
    pub fn into_record(self) -> AuditRecord {
        let details = self.details();
        let mut r = self.meta.record(self.event);
        r.ts = rfc3339_micros(self.at);
        r.statement = Some(crate::sql::redact(&self.stmt.sql).into_owned());
        r.fingerprint = Some(self.stmt.fingerprint.to_string());
        r.statement_kinds = self.stmt.kinds.clone();
        r.decision = Some(self.decision.to_string());
        r.rule = self.rule;
        r.approval_id = self.approval_id;
        r.rows = self.rows;
        r.duration_ms = self.duration.map(|d| (d.as_secs_f64() * 1e6).round() / 1e3);
        r.sqlstate = self.sqlstate;
        r.error = self.error.map(|e| crate::sql::redact(&e).into_owned());
        r.details = details;
        r
    }

    /// The record's `details`: the replay sample and what value detection masked, when there
    /// are any (rare: most statements have neither).
    fn details(&self) -> Option<serde_json::Value> {
        if self.sample.is_none() && self.detected.is_empty() {
            return None;
        }
        let mut details = serde_json::Map::new();
        if let Some(sample) = &self.sample {
            details.insert("result".into(), serde_json::json!(sample));
        }
        if !self.detected.is_empty() {
            details.insert(
                "masked_by_detection".into(),
                serde_json::json!(self.detected),
            );
        }
        Some(serde_json::Value::Object(details))
    }
}

impl StatementEvent {
    /// Appends the canonical encoding of this event's record with `seq`, `ts` and `prev_hash`:
    /// byte for byte what [`StatementEvent::into_record`] then [`AuditRecord::canonical`] give
    /// (a test holds them equal), written straight from the event and its shared connection
    /// fields, without building the record's owned strings. This is the writer's path for every
    /// statement, so the encoding is the same few hundred bytes whether or not anyone reads them.
    pub fn write_canonical(
        &self,
        seq: i64,
        ts: &str,
        prev_hash: &str,
        replica: Option<&str>,
        out: &mut String,
    ) {
        let mut connection = String::new();
        self.meta.write_canonical_fields(&mut connection);
        self.write_canonical_with(seq, ts, &connection, prev_hash, replica, out);
    }

    /// [`StatementEvent::write_canonical`] with the connection's part already encoded by
    /// [`ConnectionMeta::write_canonical_fields`]: the writer encodes it once per connection
    /// per batch instead of once per record.
    pub fn write_canonical_with(
        &self,
        seq: i64,
        ts: &str,
        connection: &str,
        prev_hash: &str,
        replica: Option<&str>,
        out: &mut String,
    ) {
        out.push_str("{\"seq\":");
        out.push_str(itoa::Buffer::new().format(seq));
        field(out, "ts", ts);
        field(out, "event", self.event);
        out.push_str(connection);
        out.push_str(",\"statement\":");
        out.push_str(self.stmt.audit_text(|redacted| {
            let mut json = String::with_capacity(redacted.len() + 2);
            json_str(&mut json, redacted);
            json
        }));
        let mut hex = [0u8; 16];
        field(out, "fingerprint", self.stmt.fingerprint.hex(&mut hex));
        if !self.stmt.kinds.is_empty() {
            out.push_str(",\"statement_kinds\":[");
            for (i, k) in self.stmt.kinds.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                json_str(out, k);
            }
            out.push(']');
        }
        field(out, "decision", self.decision);
        opt_field(out, "rule", self.rule.as_deref());
        opt_field(out, "approval_id", self.approval_id.as_deref());
        if let Some(rows) = self.rows {
            out.push_str(",\"rows\":");
            out.push_str(itoa::Buffer::new().format(rows));
        }
        if let Some(d) = self.duration {
            out.push_str(",\"duration_ms\":");
            // serde_json's own float format, so the bytes are the derived encoding's.
            push_json(out, &((d.as_secs_f64() * 1e6).round() / 1e3));
        }
        opt_field(out, "sqlstate", self.sqlstate.as_deref());
        if let Some(e) = &self.error {
            field(out, "error", &crate::sql::redact(e));
        }
        if let Some(details) = self.details() {
            // Rare (session replay, detection findings): the same `Value` the record would hold.
            out.push_str(",\"details\":");
            push_json(out, &details);
        }
        field(out, "prev_hash", prev_hash);
        opt_field(out, "replica", replica);
        out.push('}');
    }
}

/// `,"name":"value"` with the value escaped as serde_json escapes it.
fn field(out: &mut String, name: &str, value: &str) {
    out.push_str(",\"");
    out.push_str(name);
    out.push_str("\":");
    json_str(out, value);
}

fn opt_field(out: &mut String, name: &str, value: Option<&str>) {
    if let Some(v) = value {
        field(out, name, v);
    }
}

/// A JSON string as serde_json writes it (only `"`, `\\` and control characters escaped).
fn json_str(out: &mut String, s: &str) {
    // Without an early exit the check compiles to wide vector compares: most values are plain,
    // and this runs over every string of every record.
    let escaped = s.bytes().fold(false, |any, b| {
        any | (b < 0x20) | (b == b'"') | (b == b'\\')
    });
    if !escaped {
        out.push('"');
        out.push_str(s);
        out.push('"');
    } else {
        push_json(out, s);
    }
}

/// `value` as serde_json encodes it. The encoding goes through a stack buffer when it fits (a
/// record's duration: every statement has one), so the common case allocates nothing.
fn push_json<T: serde::Serialize + ?Sized>(out: &mut String, value: &T) {
    let mut buf = [0u8; 64];
    let mut w = std::io::Cursor::new(&mut buf[..]);
    if serde_json::to_writer(&mut w, value).is_ok() {
        let n = w.position() as usize;
        if let Ok(s) = std::str::from_utf8(&buf[..n]) {
            out.push_str(s);
            return;
        }
    }
    if let Ok(s) = serde_json::to_string(value) {
        out.push_str(&s);
    }
}

/// RFC 3339 timestamps with microseconds, as [`rfc3339_micros`] writes them, for a writer
/// that formats one per record: the date and time up to the second are reused while the
/// second lasts.
#[derive(Default)]
pub struct TimestampFormat {
    second: Option<u64>,
    /// `YYYY-MM-DDTHH:MM:SS` of `second`.
    prefix: String,
}

impl TimestampFormat {
    /// Appends the timestamp of `t` to `out`.
    pub fn write(&mut self, t: SystemTime, out: &mut String) {
        let Ok(since) = t.duration_since(SystemTime::UNIX_EPOCH) else {
            out.push_str(&rfc3339_micros(t));
            return;
        };
        let secs = since.as_secs();
        if self.second != Some(secs) {
            let whole = SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
            let full = rfc3339_micros(whole);
            // `…:SS.000000Z`: the part before the fraction.
            self.prefix.clear();
            self.prefix.push_str(&full[..full.len() - 8]);
            self.second = Some(secs);
        }
        out.push_str(&self.prefix);
        let micros = since.subsec_micros();
        out.push('.');
        // Six digits, zero-padded: at most 999,999.
        let mut digits = itoa::Buffer::new();
        out.push_str(&digits.format(micros + 1_000_000)[1..]);
        out.push('Z');
    }
}

/// What the audit queue carries.
#[derive(Debug)]
pub enum Pending {
    Record(Box<AuditRecord>),
    Statement(Box<StatementEvent>),
}

impl Pending {
    pub fn into_record(self) -> AuditRecord {
        match self {
            Pending::Record(r) => {
                let mut r = *r;
                if r.ts.is_empty() {
                    r.ts = rfc3339_micros(SystemTime::now());
                }
                r
            }
            Pending::Statement(s) => s.into_record(),
        }
    }
}

pub fn rfc3339_micros(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// Rows affected or returned, from a CommandComplete tag (`INSERT 0 5`, `SELECT 3`, `COPY 10`).
pub fn rows_from_tag(tag: &str) -> Option<i64> {
    // Once per statement: bytes, not `str` pattern searchers.
    let b = tag.as_bytes();
    let first = b.iter().position(|&c| c == b' ')?;
    if !matches!(
        &b[..first],
        b"INSERT" | b"UPDATE" | b"DELETE" | b"SELECT" | b"MERGE" | b"COPY" | b"FETCH" | b"MOVE"
    ) {
        return None;
    }
    let last = b.iter().rposition(|&c| c == b' ')?;
    tag[last + 1..].parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_encoding_is_stable_and_omits_absent_fields() {
        let mut r = AuditRecord::new("auth.login");
        r.seq = 3;
        r.ts = "2026-01-01T00:00:00.000000Z".into();
        r.identity = Some("alice".into());
        r.prev_hash = "ab".into();
        assert_eq!(
            r.canonical(),
            r#"{"seq":3,"ts":"2026-01-01T00:00:00.000000Z","event":"auth.login","identity":"alice","prev_hash":"ab"}"#
        );
        let back: AuditRecord = serde_json::from_str(&r.canonical()).unwrap();
        assert_eq!(back, r);
    }

    fn meta(on_behalf_of: Option<&str>, app: Option<&str>) -> Arc<ConnectionMeta> {
        Arc::new(ConnectionMeta {
            connection_id: "c_0123456789abcdef".into(),
            identity: "ana@example.com".into(),
            identity_kind: "human",
            on_behalf_of: on_behalf_of.map(str::to_string),
            client_addr: "127.0.0.1:54321".into(),
            application_name: app.map(str::to_string),
            environment: "prod".into(),
            database: "app\"db".into(),
            via: "tunnel",
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn event(
        meta: Arc<ConnectionMeta>,
        sql: &str,
        at: SystemTime,
        duration: Option<Duration>,
        rows: Option<i64>,
        error: Option<(&str, &str)>,
        gate: (&'static str, Option<&str>, Option<&str>),
        sample: Option<crate::pg::tracker::ResultSample>,
    ) -> StatementEvent {
        StatementEvent {
            meta,
            stmt: crate::sql::Statement::new(sql),
            event: "statement",
            at,
            duration,
            rows,
            sqlstate: error.map(|e| e.0.to_string()),
            error: error.map(|e| e.1.to_string()),
            decision: gate.0,
            rule: gate.1.map(str::to_string),
            approval_id: gate.2.map(str::to_string),
            sample,
            detected: Default::default(),
        }
    }

    /// The writer's direct encoding against the derived one, with its sequence, timestamp and
    /// link filled in the same way.
    fn assert_same_encoding(ev: StatementEvent) {
        let mut ts = String::new();
        TimestampFormat::default().write(ev.at, &mut ts);
        let prev = "9f".repeat(32);
        // Alone (no replica) and in a shared store's chain.
        let replicas = [None, Some("gw-\"a\"")];
        let direct: Vec<String> = replicas
            .iter()
            .map(|replica| {
                let mut out = String::new();
                ev.write_canonical(42, &ts, &prev, *replica, &mut out);
                out
            })
            .collect();
        let mut r = ev.into_record();
        r.seq = 42;
        r.prev_hash = prev;
        assert_eq!(ts, r.ts);
        for (replica, direct) in replicas.iter().zip(direct) {
            r.replica = replica.map(str::to_string);
            assert_eq!(direct, r.canonical());
        }
    }

    #[test]
    fn statement_records_are_written_as_the_derived_encoding_writes_them() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_micros(1_796_428_099_000_007);
        let sample = crate::pg::tracker::ResultSample {
            columns: vec!["email".into(), "n\"ote".into()],
            rows: vec![vec![Some("a***@example.com".into()), None]],
        };
        for ev in [
            event(
                meta(None, Some("pgbench")),
                "SELECT abalance FROM pgbench_accounts WHERE aid = 48213;",
                at,
                Some(Duration::from_micros(80)),
                Some(1),
                None,
                ("allow", None, None),
                None,
            ),
            event(
                meta(Some("bob"), None),
                "UPDATE t SET email = 'ana@example.com', card = '4111 1111 1111 1111' WHERE id = 1",
                at,
                Some(Duration::from_nanos(1_234_567_891)),
                Some(0),
                None,
                ("review", Some("prod-agent-review-writes"), Some("apr_0123")),
                None,
            ),
            event(
                meta(None, Some("tab\there \u{1} é 😀")),
                "select 'a\"b\\c' -- \r\n\u{7f}",
                at,
                None,
                None,
                Some((
                    "23505",
                    "Key (email)=(ana@example.com) already exists \"x\" \\ \n",
                )),
                ("deny", Some("prod-no-drop"), None),
                None,
            ),
            event(
                meta(None, None),
                "",
                at,
                Some(Duration::ZERO),
                None,
                None,
                ("refused", Some("audit-unavailable"), None),
                Some(sample),
            ),
            event(
                meta(None, None),
                "BEGIN; DELETE FROM t; COMMIT",
                SystemTime::UNIX_EPOCH,
                Some(Duration::from_secs(3600)),
                Some(i64::MAX),
                None,
                ("allow", None, None),
                None,
            ),
        ] {
            assert_same_encoding(ev);
        }
        // What value detection masked, alone and beside a replay sample.
        let mut found = event(
            meta(None, None),
            "SELECT note FROM t",
            at,
            None,
            Some(3),
            None,
            ("allow", None, None),
            None,
        );
        found.detected.insert(
            "note".into(),
            [
                crate::masking::Category::Email,
                crate::masking::Category::Phone,
            ]
            .into(),
        );
        let with_sample = StatementEvent {
            sample: Some(crate::pg::tracker::ResultSample {
                columns: vec!["note".into()],
                rows: vec![vec![Some("***".into())]],
            }),
            detected: found.detected.clone(),
            ..event(
                meta(None, None),
                "SELECT note FROM t",
                at,
                None,
                Some(1),
                None,
                ("allow", None, None),
                None,
            )
        };
        assert_same_encoding(found);
        assert_same_encoding(with_sample);
    }

    #[test]
    fn timestamps_are_written_as_chrono_writes_them() {
        let mut f = TimestampFormat::default();
        let base = SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_428_099);
        for micros in [
            0u64,
            1,
            999_999,
            1_000_000,
            1_000_001,
            59_999_999,
            86_400_000_000,
            3_000_000_123_456,
        ] {
            for t in [
                base + Duration::from_micros(micros),
                SystemTime::UNIX_EPOCH + Duration::from_micros(micros),
            ] {
                let mut out = String::new();
                f.write(t, &mut out);
                assert_eq!(out, rfc3339_micros(t), "{t:?}");
            }
        }
        // Before 1970 (a clock set wrong) falls back to chrono's own formatting.
        let early = SystemTime::UNIX_EPOCH - Duration::from_micros(1_500_000);
        let mut out = String::new();
        f.write(early, &mut out);
        assert_eq!(out, rfc3339_micros(early));
    }

    proptest::proptest! {
        #[test]
        fn any_statement_and_error_encode_as_the_derived_encoding(
            sql in "\\PC{0,80}",
            error in proptest::option::of("\\PC{0,40}"),
            app in proptest::option::of("[ -~\\t\\n\\u{0}-\\u{1f}é\"\\\\]{0,20}"),
            micros in 0u64..4_000_000_000_000_000,
            nanos in proptest::option::of(0u64..10_000_000_000_000),
            rows in proptest::option::of(proptest::num::i64::ANY),
        ) {
            assert_same_encoding(event(
                meta(None, app.as_deref()),
                &sql,
                SystemTime::UNIX_EPOCH + Duration::from_micros(micros),
                nanos.map(Duration::from_nanos),
                rows,
                error.as_deref().map(|e| ("XX000", e)),
                ("allow", None, None),
                None,
            ));
        }
    }

    #[test]
    fn rows_from_command_tags() {
        assert_eq!(rows_from_tag("INSERT 0 5"), Some(5));
        assert_eq!(rows_from_tag("SELECT 3"), Some(3));
        assert_eq!(rows_from_tag("UPDATE 0"), Some(0));
        assert_eq!(rows_from_tag("CREATE TABLE"), None);
        assert_eq!(rows_from_tag("BEGIN"), None);
        assert_eq!(rows_from_tag("SELECT"), None);
        assert_eq!(rows_from_tag("MOVE 7"), Some(7));
        assert_eq!(rows_from_tag("SELECT x"), None);
        assert_eq!(rows_from_tag("INSERTX 0 5"), None);
    }
}
