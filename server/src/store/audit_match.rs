//! Whether a record of a gateway's own trail matches a search's [`AuditFilter`], with the
//! meaning the shared store gives each criterion in SQL: names and events compared exactly (an
//! event ending in `.` as a prefix), times as text, statement kinds without regard to ASCII
//! case, and free text as `LIKE '%…%'` does in SQLite (anywhere in the record's JSON, ASCII
//! letters in either case).

use super::audit_db::{AuditFilter, StoredRecord};

pub struct RecordMatcher<'f> {
    filter: &'f AuditFilter,
    /// The free text, ASCII-lowercased once.
    text: Option<String>,
}

/// The parts of a record's JSON a search can ask about.
#[derive(serde::Deserialize)]
struct Facets {
    #[serde(default)]
    decision: serde_json::Value,
    #[serde(default)]
    statement_kinds: serde_json::Value,
    #[serde(default)]
    tables: serde_json::Value,
}

impl<'f> RecordMatcher<'f> {
    pub fn new(filter: &'f AuditFilter) -> Self {
        RecordMatcher {
            filter,
            text: filter.text.as_deref().map(str::to_ascii_lowercase),
        }
    }

    pub fn matches(&self, r: &StoredRecord) -> bool {
        let f = self.filter;
        let same = |want: &Option<String>, have: &Option<String>| {
            want.is_none() || want.as_deref() == have.as_deref()
        };
        if !same(&f.identity, &r.identity)
            || !same(&f.environment, &r.environment)
            || !same(&f.connection_id, &r.connection_id)
        {
            return false;
        }
        if let Some(e) = &f.event {
            let hit = if e.ends_with('.') {
                r.event.starts_with(e.as_str())
            } else {
                r.event == *e
            };
            if !hit {
                return false;
            }
        }
        if f.from.as_deref().is_some_and(|from| r.ts.as_str() < from)
            || f.to.as_deref().is_some_and(|to| r.ts.as_str() >= to)
        {
            return false;
        }
        if let Some(t) = &self.text {
            if !r.json.to_ascii_lowercase().contains(t.as_str()) {
                return false;
            }
        }
        if f.decision.is_none() && f.statement_kind.is_none() && f.table.is_none() {
            return true;
        }
        // Only records that passed everything else are parsed.
        let Ok(facets) = serde_json::from_str::<Facets>(&r.json) else {
            return false;
        };
        let strings = |v: &serde_json::Value| -> Vec<String> {
            v.as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        if let Some(d) = &f.decision {
            if facets.decision.as_str() != Some(d.as_str()) {
                return false;
            }
        }
        if let Some(k) = &f.statement_kind {
            if !strings(&facets.statement_kinds)
                .iter()
                .any(|s| s.eq_ignore_ascii_case(k))
            {
                return false;
            }
        }
        if let Some(t) = &f.table {
            if !strings(&facets.tables).iter().any(|s| s == t) {
                return false;
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(json: &str) -> StoredRecord {
        StoredRecord {
            id: 1,
            replica: None,
            seq: 1,
            ts: "2026-12-05T06:00:00.000000Z".into(),
            event: "admin.rule_added".into(),
            identity: Some("alice".into()),
            environment: None,
            connection_id: None,
            json: json.into(),
            hash: String::new(),
        }
    }

    fn matches(filter: AuditFilter, json: &str) -> bool {
        RecordMatcher::new(&filter).matches(&record(json))
    }

    #[test]
    fn each_criterion_narrows_as_the_sql_search_does() {
        let json = r#"{"decision":"deny","statement_kinds":["drop"],"tables":["public.t"],"statement":"DROP TABLE T"}"#;
        let yes = |f: AuditFilter| assert!(matches(f.clone(), json), "{f:?}");
        let no = |f: AuditFilter| assert!(!matches(f.clone(), json), "{f:?}");
        let f = AuditFilter::default;
        yes(f());
        yes(AuditFilter {
            identity: Some("alice".into()),
            ..f()
        });
        no(AuditFilter {
            identity: Some("Alice".into()),
            ..f()
        });
        no(AuditFilter {
            environment: Some("prod".into()),
            ..f()
        });
        yes(AuditFilter {
            event: Some("admin.".into()),
            ..f()
        });
        no(AuditFilter {
            event: Some("admin".into()),
            ..f()
        });
        yes(AuditFilter {
            event: Some("admin.rule_added".into()),
            ..f()
        });
        yes(AuditFilter {
            from: Some("2026-12-05T06:00:00.000000Z".into()),
            ..f()
        });
        no(AuditFilter {
            to: Some("2026-12-05T06:00:00.000000Z".into()),
            ..f()
        });
        yes(AuditFilter {
            text: Some("drop table t".into()),
            ..f()
        });
        no(AuditFilter {
            text: Some("truncate".into()),
            ..f()
        });
        yes(AuditFilter {
            decision: Some("deny".into()),
            ..f()
        });
        no(AuditFilter {
            decision: Some("allow".into()),
            ..f()
        });
        yes(AuditFilter {
            statement_kind: Some("DROP".into()),
            ..f()
        });
        no(AuditFilter {
            statement_kind: Some("select".into()),
            ..f()
        });
        yes(AuditFilter {
            table: Some("public.t".into()),
            ..f()
        });
        no(AuditFilter {
            table: Some("public.T".into()),
            ..f()
        });
        // A record whose JSON is not what a search expects matches no facet.
        assert!(!matches(
            AuditFilter {
                decision: Some("deny".into()),
                ..f()
            },
            "not json"
        ));
    }
}
