//! Guardrail rules as data: each an id, conditions on a classified statement and on who runs
//! it where and when, and an action. Rules are evaluated in order and the first that matches
//! decides; when none does, the statement is allowed.
//!
//! Conditions are ANDed; a list condition matches when any of its items does; an empty list or
//! absent value matches anything. The same type is read from `[[rules]]` in the config and
//! from the JSON of `/api/v1/rules`, and validated by the same [`Rule::validate`].

use chrono::{DateTime, Datelike, Timelike, Utc};
use serde::{Deserialize, Serialize};

use super::classify::{Classification, StatementKind};
use super::{Action, Subject};
use crate::config::Tier;
use crate::identity::IdentityKind;

/// Facts about a classified statement that a rule can test with `flags = [...]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Flag {
    /// May change data, schema, privileges or server state.
    Writes,
    /// A DELETE or UPDATE without a WHERE clause that limits its rows.
    UnboundedWrite,
    DangerousFunction,
    /// DROP, TRUNCATE, ALTER … DROP.
    Destructive,
    PrivilegeChange,
    RoleChange,
    AlterSystem,
    ServerFileAccess,
    ProgramAccess,
    DataModifyingCte,
    SelectInto,
    ExplainAnalyzeWrite,
    /// The gateway could not analyse some part of it.
    NotAnalysable,
    /// Calls a function whose effects the gateway has not vetted (user-defined, from another
    /// schema than `pg_catalog`, or a volatile built-in that changes state).
    UnvettedFunction,
    /// Defines code later statements run (CREATE FUNCTION, TRIGGER, EXTENSION, …).
    DefinesCode,
    /// LOCK in a mode that blocks other sessions' reads or writes.
    BlockingLock,
    /// ALTER DATABASE … SET/RESET: settings every later session gets.
    PersistentSetting,
}

impl Flag {
    fn holds(self, c: &Classification) -> bool {
        match self {
            Flag::Writes => c.writes,
            Flag::UnboundedWrite => !c.unbounded_writes.is_empty(),
            Flag::DangerousFunction => !c.dangerous_functions.is_empty(),
            Flag::Destructive => c.destructive,
            Flag::PrivilegeChange => c.privilege_change,
            Flag::RoleChange => c.role_change,
            Flag::AlterSystem => c.alter_system,
            Flag::ServerFileAccess => c.server_file_access,
            Flag::ProgramAccess => c.program_access,
            Flag::DataModifyingCte => c.data_modifying_cte,
            Flag::SelectInto => c.select_into,
            Flag::ExplainAnalyzeWrite => c.explain_analyze_write,
            Flag::NotAnalysable => !c.analysable,
            Flag::UnvettedFunction => !c.unvetted_functions.is_empty(),
            Flag::DefinesCode => c.defines_code,
            Flag::BlockingLock => c.blocking_lock,
            Flag::PersistentSetting => c.persistent_setting,
        }
    }

    /// What the flag says about this statement, in words.
    fn describe(self, c: &Classification) -> String {
        match self {
            Flag::Writes => format!("{} changes data", c.commands()),
            Flag::UnboundedWrite => format!(
                "{} has no WHERE clause that limits the rows it changes",
                c.unbounded_writes.join(", ")
            ),
            Flag::DangerousFunction => format!("it calls {}", c.dangerous_functions.join(", ")),
            Flag::Destructive | Flag::PrivilegeChange | Flag::RoleChange | Flag::AlterSystem => {
                c.commands()
            }
            Flag::ServerFileAccess => "it reads or writes files on the database server".into(),
            Flag::ProgramAccess => "it runs a program on the database server".into(),
            Flag::DataModifyingCte => "a WITH query in it changes data".into(),
            Flag::SelectInto => "SELECT … INTO creates a table".into(),
            Flag::ExplainAnalyzeWrite => {
                "EXPLAIN ANALYZE runs the statement it explains, which changes data".into()
            }
            Flag::NotAnalysable => c
                .notes
                .first()
                .cloned()
                .unwrap_or_else(|| "the gateway could not analyse it".into()),
            Flag::UnvettedFunction => format!(
                "it calls {}, whose effects the gateway has not vetted",
                c.unvetted_functions.join(", ")
            ),
            Flag::DefinesCode => format!("{} defines code that later statements run", c.commands()),
            Flag::BlockingLock => "its lock blocks other sessions' reads or writes".into(),
            Flag::PersistentSetting => {
                format!("{} changes settings of later sessions", c.commands())
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Weekday {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

impl Weekday {
    fn of(t: &DateTime<Utc>) -> Weekday {
        match t.weekday() {
            chrono::Weekday::Mon => Weekday::Mon,
            chrono::Weekday::Tue => Weekday::Tue,
            chrono::Weekday::Wed => Weekday::Wed,
            chrono::Weekday::Thu => Weekday::Thu,
            chrono::Weekday::Fri => Weekday::Fri,
            chrono::Weekday::Sat => Weekday::Sat,
            chrono::Weekday::Sun => Weekday::Sun,
        }
    }
}

/// One guardrail rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Unique; letters, digits, `-`, `_`, `.`, `:`. Named in decisions and audit records.
    pub id: String,
    /// Why the rule exists and what to do instead; shown to the person whose statement it
    /// stops.
    #[serde(default)]
    pub description: String,
    pub action: Action,
    /// Statement kinds (any of), e.g. `["drop", "truncate"]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kinds: Vec<StatementKind>,
    /// Facts about the statement (any of), e.g. `["unbounded_write", "not_analysable"]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<Flag>,
    /// Tables read or written (any of): `schema.table`, or `table` in any schema; a trailing
    /// `*` matches a prefix (`audit_*`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tables: Vec<String>,
    /// Environment tiers (any of).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tiers: Vec<Tier>,
    /// Environment names (any of).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub environments: Vec<String>,
    /// Environment tags (any of).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// `human` and/or `agent`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub identity_kinds: Vec<IdentityKind>,
    /// Identity groups (any of).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// Time of day in UTC, `HH:MM-HH:MM` (may wrap past midnight: `22:00-06:00`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hours: Option<String>,
    /// Days in UTC (any of): `mon` … `sun`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub weekdays: Vec<Weekday>,
}

/// A rule that is not valid: which field, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{field}`: {message}")]
pub struct RuleInvalid {
    pub field: &'static str,
    pub message: String,
}

fn invalid(field: &'static str, message: impl Into<String>) -> RuleInvalid {
    RuleInvalid {
        field,
        message: message.into(),
    }
}

/// `HH:MM-HH:MM` as minutes since midnight.
fn parse_hours(s: &str) -> Option<(u32, u32)> {
    let (a, b) = s.trim().split_once('-')?;
    let minutes = |t: &str| -> Option<u32> {
        let (h, m) = t.trim().split_once(':')?;
        let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
        (h < 24 && m < 60).then_some(h * 60 + m)
    };
    Some((minutes(a)?, minutes(b)?))
}

impl Rule {
    /// Checks what the types cannot: the id's form, the time window, empty names.
    pub fn validate(&self) -> Result<(), RuleInvalid> {
        if self.id.is_empty()
            || self.id.len() > 64
            || !self
                .id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c))
        {
            return Err(invalid(
                "id",
                "must be 1-64 characters: letters, digits, `-`, `_`, `.`, `:`",
            ));
        }
        if self.id == "default" {
            return Err(invalid(
                "id",
                "`default` names the decision when no rule matches",
            ));
        }
        if let Some(h) = &self.hours {
            match parse_hours(h) {
                Some((a, b)) if a != b => {}
                _ => {
                    return Err(invalid(
                        "hours",
                        format!("`{h}` is not a window like \"09:00-18:00\" (UTC)"),
                    ))
                }
            }
        }
        for (field, list) in [
            ("tables", &self.tables),
            ("environments", &self.environments),
            ("tags", &self.tags),
            ("groups", &self.groups),
        ] {
            if list.iter().any(|s| s.trim().is_empty()) {
                return Err(invalid(field, "must not contain empty names"));
            }
        }
        Ok(())
    }

    /// Whether this rule applies; `now` is asked for only by rules with a time window.
    pub fn matches(
        &self,
        c: &Classification,
        s: &Subject<'_>,
        now: &mut dyn FnMut() -> DateTime<Utc>,
    ) -> bool {
        (self.tiers.is_empty() || self.tiers.contains(&s.tier))
            && (self.environments.is_empty()
                || self.environments.iter().any(|e| e == s.environment))
            && (self.tags.is_empty() || self.tags.iter().any(|t| s.tags.contains(t)))
            && (self.identity_kinds.is_empty() || self.identity_kinds.contains(&s.identity.kind))
            && (self.groups.is_empty() || s.identity.in_any_group(&self.groups))
            && (self.kinds.is_empty() || self.kinds.iter().any(|k| c.kinds.contains(k)))
            && (self.flags.is_empty() || self.flags.iter().any(|f| f.holds(c)))
            && (self.tables.is_empty() || self.matched_table(c, s).is_some())
            && self.in_window(now)
    }

    fn in_window(&self, now: &mut dyn FnMut() -> DateTime<Utc>) -> bool {
        if self.hours.is_none() && self.weekdays.is_empty() {
            return true;
        }
        let t = now();
        if !self.weekdays.is_empty() && !self.weekdays.contains(&Weekday::of(&t)) {
            return false;
        }
        match self.hours.as_deref().and_then(parse_hours) {
            Some((from, to)) => {
                let m = t.hour() * 60 + t.minute();
                if from < to {
                    (from..to).contains(&m)
                } else {
                    m >= from || m < to
                }
            }
            None => true,
        }
    }

    fn matched_table<'c>(&self, c: &'c Classification, subject: &Subject<'_>) -> Option<&'c str> {
        let search_path_set =
            subject.search_path_changed || c.settings.iter().any(|s| s == "search_path");
        c.tables_written
            .iter()
            .chain(c.tables_read.iter())
            .find(|t| {
                self.tables
                    .iter()
                    .any(|p| table_matches(p, t, search_path_set))
            })
            .map(String::as_str)
    }

    /// Why this rule matched `c`, in words a person can act on:
    /// `rule prod-no-drop: DROP TABLE — destructive statements are not allowed in production`.
    pub fn reason(&self, c: &Classification, subject: &Subject<'_>) -> String {
        let mut facts: Vec<String> = Vec::new();
        if let Some(f) = self.flags.iter().find(|f| f.holds(c)) {
            facts.push(f.describe(c));
        } else if !self.kinds.is_empty() || self.tables.is_empty() {
            facts.push(c.commands());
        }
        if let Some(t) = self.matched_table(c, subject) {
            facts.push(format!("on {t}"));
        }
        let facts = facts.join(" ");
        if self.description.is_empty() {
            let verdict = match self.action {
                Action::Allow => "allowed",
                Action::Deny => "not allowed",
                Action::Review => "needs approval",
            };
            format!("rule {}: {facts} — {verdict}", self.id)
        } else {
            format!("rule {}: {facts} — {}", self.id, self.description)
        }
    }
}

/// `pattern` against a table name as classified (`table`, `schema.table`, or
/// `database.schema.table`), resolved as PostgreSQL resolves names:
///
/// - A database part is dropped: PostgreSQL only accepts the current database there, so
///   `appdb.payroll.salaries` is `payroll.salaries`.
/// - Case is ignored on both sides. Unquoted names are already folded to lower case; a quoted
///   `"Salaries"` is another table than `salaries` to PostgreSQL, but matching both costs at
///   worst an extra refusal, whereas matching by case would let a rule be dodged by quoting.
/// - A pattern without a schema (`users`, `audit_*`) matches the table in any schema.
/// - A pattern with a schema matches a qualified name only in that schema (`payroll.*` does
///   not match `public.x`). An unqualified name has no schema in the text: `search_path`
///   decides. It matches a pattern naming a table (`payroll.salaries` matches `salaries`);
///   a schema wildcard when its schema is `public` (where the default `search_path`
///   resolves) or when the session may have moved its `search_path` — in the same string, in
///   an earlier message, in the startup options, or through code the gateway has not vetted
///   (the relay follows that, see `Subject::search_path_changed`). So `payroll.*` does not
///   hold every unqualified query of a session that never left the default. A `search_path`
///   set as the upstream role's or database's default is the administrator's own choice and
///   is not seen: name such schemas' tables in the rule.
///
/// A `*` in a part matches any suffix (`audit_*`, `payroll.*`, `*.salaries`).
fn table_matches(pattern: &str, table: &str, search_path_set: bool) -> bool {
    fn split(s: &str) -> (Option<String>, String) {
        let parts: Vec<&str> = s.split('.').collect();
        match parts.as_slice() {
            [name] => (None, name.to_lowercase()),
            [.., schema, name] => (Some(schema.to_lowercase()), name.to_lowercase()),
            [] => (None, String::new()),
        }
    }
    fn glob(pattern: &str, s: &str) -> bool {
        match pattern.strip_suffix('*') {
            Some(prefix) => s.starts_with(prefix),
            None => s == pattern,
        }
    }
    let (pschema, pname) = split(pattern);
    let (schema, name) = split(table);
    // `schema.*` / `*` stand for every table of a schema or of the database (read by
    // `schema_to_xml(…)`, `database_to_xml(…)`): any table a pattern names may be among them.
    if name == "*" {
        return match (pschema, schema) {
            (Some(ps), Some(s)) => glob(&ps, &s) || glob(&s, &ps),
            _ => true,
        };
    }
    if !glob(&pname, &name) {
        return false;
    }
    match (pschema, schema) {
        (None, _) => true,
        (Some(ps), Some(s)) => glob(&ps, &s),
        (Some(ps), None) => ps == "public" || !pname.contains('*') || search_path_set,
    }
}

/// The built-in rules, after every configured and API rule. Switching role, changing the
/// server's configuration and reaching its files or programs are denied in every tier: each
/// escapes the gateway itself (the grant's role, the audit, masking), which no tier makes
/// harmless. The rest apply to production only. A configured rule before them may still allow
/// any of it where an administrator decides so.
pub fn builtin() -> Vec<Rule> {
    let prod = |id: &str, action: Action, description: &str| Rule {
        id: id.into(),
        description: description.into(),
        action,
        kinds: vec![],
        flags: vec![],
        tables: vec![],
        tiers: vec![Tier::Production],
        environments: vec![],
        tags: vec![],
        identity_kinds: vec![],
        groups: vec![],
        hours: None,
        weekdays: vec![],
    };
    let everywhere = |id: &str, action: Action, description: &str| Rule {
        tiers: vec![],
        ..prod(id, action, description)
    };
    vec![
        Rule {
            flags: vec![Flag::Destructive],
            ..prod(
                "prod-no-drop",
                Action::Deny,
                "DROP, TRUNCATE, ALTER … DROP and column type changes are not allowed in production environments; run schema changes through your migration process",
            )
        },
        Rule {
            flags: vec![Flag::PrivilegeChange],
            ..prod(
                "prod-no-grant",
                Action::Deny,
                "changing privileges (GRANT, REVOKE, REASSIGN OWNED, OWNER TO, SECURITY DEFINER, row-level security and its policies, disabling triggers) is not allowed through the gateway in production environments; ask an administrator for a gateway grant instead",
            )
        },
        Rule {
            flags: vec![Flag::RoleChange],
            ..everywhere(
                "no-role-change",
                Action::Deny,
                "creating, changing or switching roles is not allowed through the gateway; it chooses the database role from your grant",
            )
        },
        Rule {
            flags: vec![Flag::AlterSystem, Flag::PersistentSetting],
            ..everywhere(
                "no-alter-system",
                Action::Deny,
                "ALTER SYSTEM and ALTER DATABASE … SET change the server's configuration and are not allowed through the gateway",
            )
        },
        Rule {
            flags: vec![Flag::ServerFileAccess, Flag::ProgramAccess],
            ..everywhere(
                "no-server-access",
                Action::Deny,
                "reading or writing the database server's files or running programs on it is not allowed through the gateway; use COPY … FROM STDIN / TO STDOUT (psql's \\copy) instead",
            )
        },
        Rule {
            flags: vec![Flag::DangerousFunction],
            ..prod(
                "prod-no-dangerous-functions",
                Action::Deny,
                "functions that act on other sessions, the server or other servers are not allowed in production environments",
            )
        },
        Rule {
            flags: vec![Flag::NotAnalysable],
            ..prod(
                "prod-review-unanalysable",
                Action::Review,
                "the gateway could not check what this does, so in production environments it needs approval",
            )
        },
        Rule {
            flags: vec![Flag::UnvettedFunction],
            ..prod(
                "prod-review-unvetted-functions",
                Action::Review,
                "in production environments a function the gateway has not vetted (user-defined, from an extension or another schema, or one that changes state) needs approval",
            )
        },
        Rule {
            flags: vec![Flag::DefinesCode],
            ..prod(
                "prod-review-code",
                Action::Review,
                "defining code that later statements run (functions, procedures, triggers, extensions) in a production environment needs approval",
            )
        },
        Rule {
            flags: vec![Flag::BlockingLock],
            ..prod(
                "prod-review-blocking-lock",
                Action::Review,
                "a lock that blocks other sessions' reads or writes in a production environment needs approval; ACCESS SHARE, ROW SHARE, ROW EXCLUSIVE and SHARE UPDATE EXCLUSIVE block neither",
            )
        },
        Rule {
            flags: vec![Flag::UnboundedWrite],
            ..prod(
                "prod-review-unbounded-write",
                Action::Review,
                "changing every row of a table in a production environment needs approval; add a WHERE clause if that is not what you meant",
            )
        },
        Rule {
            flags: vec![Flag::Writes],
            identity_kinds: vec![IdentityKind::Agent],
            ..prod(
                "prod-agent-review-writes",
                Action::Review,
                "agents need approval for any change in production environments",
            )
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Identity;
    use crate::policy::classify::classify;
    use chrono::TimeZone;

    fn subject<'a>(identity: &'a Identity, tier: Tier, tags: &'a [String]) -> Subject<'a> {
        Subject {
            identity,
            environment: "prod",
            tier,
            tags,
            search_path_changed: false,
        }
    }

    fn person(groups: &[&str]) -> Identity {
        Identity {
            name: "alice".into(),
            kind: IdentityKind::Human,
            groups: groups.iter().map(|g| g.to_string()).collect(),
            on_behalf_of: None,
            session_id: None,
        }
    }

    fn rule(toml_text: &str) -> Rule {
        toml::from_str(toml_text).expect("rule")
    }

    #[test]
    fn conditions_are_anded_and_lists_are_any_of() {
        let r = rule(
            r#"
            id = "no-truncate-audit"
            action = "deny"
            kinds = ["truncate", "delete"]
            tables = ["audit_*", "billing.invoices"]
            tiers = ["production", "staging"]
            groups = ["contractors"]
        "#,
        );
        r.validate().unwrap();
        let alice = person(&["contractors"]);
        let bob = person(&["dba"]);
        let mut now = || Utc::now();
        let s = subject(&alice, Tier::Production, &[]);
        assert!(r.matches(&classify("TRUNCATE audit_2024"), &s, &mut now));
        assert!(r.matches(
            &classify("DELETE FROM billing.invoices WHERE id = 1"),
            &s,
            &mut now
        ));
        assert!(!r.matches(
            &classify("DELETE FROM other.invoices WHERE id = 1"),
            &s,
            &mut now
        ));
        assert!(!r.matches(&classify("SELECT * FROM audit_2024"), &s, &mut now));
        assert!(!r.matches(
            &classify("TRUNCATE audit_2024"),
            &subject(&bob, Tier::Production, &[]),
            &mut now
        ));
        assert!(!r.matches(
            &classify("TRUNCATE audit_2024"),
            &subject(&alice, Tier::Development, &[]),
            &mut now
        ));
        assert_eq!(
            r.reason(&classify("TRUNCATE audit_2024"), &s),
            "rule no-truncate-audit: TRUNCATE on audit_2024 — not allowed"
        );
    }

    #[test]
    fn time_windows_wrap_midnight_and_weekdays_apply() {
        let r = rule(
            r#"
            id = "night"
            action = "review"
            hours = "22:00-06:00"
            weekdays = ["sat", "sun"]
        "#,
        );
        r.validate().unwrap();
        let alice = person(&[]);
        let s = subject(&alice, Tier::Production, &[]);
        let c = classify("SELECT 1");
        // 2026-11-28 is a Saturday.
        let at = |d: u32, h: u32| Utc.with_ymd_and_hms(2026, 11, d, h, 30, 0).unwrap();
        assert!(r.matches(&c, &s, &mut || at(28, 23)));
        assert!(r.matches(&c, &s, &mut || at(29, 5)));
        assert!(!r.matches(&c, &s, &mut || at(28, 12)));
        assert!(!r.matches(&c, &s, &mut || at(27, 23)), "a Friday");
    }

    #[test]
    fn validation_names_the_field() {
        let mut r = rule("id = \"x\"\naction = \"allow\"");
        r.hours = Some("9-5".into());
        assert_eq!(r.validate().unwrap_err().field, "hours");
        r.hours = None;
        r.id = "has space".into();
        assert_eq!(r.validate().unwrap_err().field, "id");
        r.id = "default".into();
        assert_eq!(r.validate().unwrap_err().field, "id");
        r.id = "ok".into();
        r.tables = vec![" ".into()];
        assert_eq!(r.validate().unwrap_err().field, "tables");
        assert!(toml::from_str::<Rule>("id = \"x\"\naction = \"block\"").is_err());
        assert!(toml::from_str::<Rule>("id = \"x\"\naction = \"deny\"\nkind = []").is_err());
    }

    #[test]
    fn builtin_rules_are_valid_and_unique() {
        let rules = builtin();
        let mut ids: Vec<&str> = rules.iter().map(|r| r.id.as_str()).collect();
        for r in &rules {
            r.validate().unwrap();
        }
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), rules.len());
    }

    #[test]
    fn table_patterns() {
        let m = |p: &str, t: &str| table_matches(p, t, false);
        assert!(m("users", "public.users"));
        assert!(m("users", "users"));
        assert!(m("public.users", "public.users"));
        assert!(m("public.users", "users"), "search_path may resolve it");
        assert!(!m("public.users", "other.users"));
        assert!(!m("users", "public.users_old"));
        assert!(m("users*", "public.users_old"));
        assert!(m("*", "anything"));
        // Three-part names: the first part is the database.
        assert!(m("payroll.salaries", "appdb.payroll.salaries"));
        assert!(m("salaries", "appdb.payroll.salaries"));
        assert!(!m("payroll.salaries", "appdb.public.salaries"));
        // Spelling: case and quoting never dodge a rule.
        assert!(m("payroll.salaries", "Payroll.Salaries"));
        assert!(m("Payroll.Salaries", "payroll.salaries"));
        // A schema pattern holds that schema only.
        assert!(m("payroll.*", "payroll.salaries"));
        assert!(!m("payroll.*", "public.customers"));
        assert!(
            !m("payroll.*", "customers"),
            "no over-blocking of bare names"
        );
        assert!(m("public.*", "customers"), "the default search_path");
        assert!(table_matches("payroll.*", "customers", true));
        assert!(
            m("payroll.salaries", "salaries"),
            "SET search_path must not dodge it"
        );
        assert!(m("*.salaries", "payroll.salaries"));
        // Every table of a schema, or of the database (schema_to_xml, database_to_xml).
        assert!(m("payroll.salaries", "payroll.*"));
        assert!(m("salaries", "payroll.*"));
        assert!(m("payroll.salaries", "*"));
        assert!(!m("payroll.salaries", "public.*"));
    }
}
