//! Exemptions: a group may see one category unmasked in one environment, optionally until a
//! time. Admins create them through the API (audited); each use is audited by the session.
//!
//! Architecture invariant: pure data and matching; stored by `store::exemptions`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::detect::Category;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Exemption {
    pub id: String,
    pub group: String,
    pub environment: String,
    /// The category exempt (unset for a column exemption).
    #[schema(value_type = Option<String>)]
    pub category: Option<Category>,
    /// `table.column` exempt whatever its category (unset for a category exemption). Applies
    /// to result columns read straight from that column.
    pub column: Option<String>,
    /// After this time the exemption no longer applies.
    #[schema(value_type = Option<String>)]
    pub expires_at: Option<DateTime<Utc>>,
    pub reason: Option<String>,
    pub created_by: String,
    #[schema(value_type = String)]
    pub created_at: DateTime<Utc>,
}

/// A column exemption's target: `schema.table.column` names that schema's column only;
/// `table.column` (as older exemptions were written) a table of that name in any schema.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ColumnExemption {
    pub schema: Option<String>,
    pub table: String,
    pub column: String,
}

impl ColumnExemption {
    /// `[schema.]table.column`; `None` for anything else (an exemption that names no column
    /// exempts none).
    pub fn parse(s: &str) -> Option<ColumnExemption> {
        let parts: Vec<&str> = s.split('.').collect();
        let (schema, table, column) = match parts.as_slice() {
            [t, c] => (None, *t, *c),
            [s, t, c] => (Some(s.to_string()), *t, *c),
            _ => return None,
        };
        if table.is_empty() || column.is_empty() || schema.as_deref() == Some("") {
            return None;
        }
        Some(ColumnExemption {
            schema,
            table: table.to_string(),
            column: column.to_string(),
        })
    }

    pub fn matches(&self, schema: &str, table: &str, column: &str) -> bool {
        self.schema.as_deref().is_none_or(|s| s == schema)
            && self.table == table
            && self.column == column
    }
}

impl Exemption {
    /// Whether it applies to a member of `groups` in `env` at `now`.
    pub fn applies(&self, env: &str, groups: &[String], now: DateTime<Utc>) -> bool {
        (self.environment == env || self.environment == "*")
            && groups.contains(&self.group)
            && self.expires_at.is_none_or(|t| now < t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn applies_to_group_env_and_time() {
        let now = Utc::now();
        let e = Exemption {
            id: "x".into(),
            group: "support".into(),
            environment: "prod".into(),
            category: Some(Category::Email),
            column: None,
            expires_at: Some(now + chrono::Duration::hours(1)),
            reason: None,
            created_by: "admin".into(),
            created_at: now,
        };
        let g = vec!["support".to_string()];
        assert!(e.applies("prod", &g, now));
        assert!(!e.applies("staging", &g, now));
        assert!(!e.applies("prod", &["dev".to_string()], now));
        assert!(!e.applies("prod", &g, now + chrono::Duration::hours(2)));
    }

    #[test]
    fn column_exemptions_name_their_schema() {
        let billing = ColumnExemption::parse("billing.customers.card_number").expect("valid");
        assert!(billing.matches("billing", "customers", "card_number"));
        assert!(!billing.matches("public", "customers", "card_number"));
        assert!(!billing.matches("billing", "customers", "ssn"));
        let any = ColumnExemption::parse("customers.card_number").expect("valid");
        assert!(any.matches("public", "customers", "card_number"));
        for bad in ["card_number", "a.b.c.d", ".t.c", "t.", ""] {
            assert_eq!(ColumnExemption::parse(bad), None, "{bad}");
        }
    }
}
