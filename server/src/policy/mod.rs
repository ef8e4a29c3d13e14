//! Guardrails: what a statement is (classification) and what may happen to it (decision:
//! allow, deny, or review by a person or an automatic policy).
//!
//! The pg session calls [`Policy::decide`] once per execution with the statement text and who
//! runs it where; everything it needs is pure and cached, so the hot path pays a hash lookup for
//! a statement it has seen before.
//!
//! Architecture invariant: pure code over SQL text and identities; no sockets, no waiting.

use serde::Serialize;

use crate::config::Tier;
use crate::identity::Identity;

/// What to do with a statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Allow,
    Deny,
    Review,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Allow => "allow",
            Action::Deny => "deny",
            Action::Review => "review",
        }
    }
}

/// Who runs a statement, and where.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub identity: &'a Identity,
    pub environment: &'a str,
    pub tier: Tier,
    pub tags: &'a [String],
}

/// The outcome of [`Policy::decide`].
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Decision {
    pub action: Action,
    /// The rule that decided (its id), or `default`.
    pub rule: String,
    /// Why, in words a person can act on.
    pub reason: String,
}

impl Decision {
    pub fn allow() -> Decision {
        Decision {
            action: Action::Allow,
            rule: "default".into(),
            reason: "no rule matched".into(),
        }
    }
}

/// The guardrail engine.
#[derive(Default)]
pub struct Policy {}

impl Policy {
    /// What `sql` gets when `subject` runs it.
    pub fn decide(&self, _subject: &Subject<'_>, _sql: &str) -> Decision {
        Decision::allow()
    }
}
