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
        let mut details = serde_json::Map::new();
        if let Some(sample) = self.sample {
            details.insert("result".into(), serde_json::json!(sample));
        }
        if !self.detected.is_empty() {
            details.insert(
                "masked_by_detection".into(),
                serde_json::json!(self.detected),
            );
        }
        if !details.is_empty() {
            r.details = Some(serde_json::Value::Object(details));
        }
        r
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
    let last = tag.rsplit(' ').next()?;
    let first = tag.split(' ').next()?;
    matches!(
        first,
        "INSERT" | "UPDATE" | "DELETE" | "SELECT" | "MERGE" | "COPY" | "FETCH" | "MOVE"
    )
    .then(|| last.parse().ok())
    .flatten()
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

    #[test]
    fn rows_from_command_tags() {
        assert_eq!(rows_from_tag("INSERT 0 5"), Some(5));
        assert_eq!(rows_from_tag("SELECT 3"), Some(3));
        assert_eq!(rows_from_tag("UPDATE 0"), Some(0));
        assert_eq!(rows_from_tag("CREATE TABLE"), None);
        assert_eq!(rows_from_tag("BEGIN"), None);
    }
}
