//! Who is behind a connection or a request: identities, the tokens that prove them, and the
//! grants that say which environments they may reach.
//!
//! Architecture invariant: nothing here knows about sockets or the PostgreSQL protocol; the pg
//! and http layers call [`Authenticator`] and [`Grants`] and map their errors at their own edge.

mod authenticator;
mod grants;
mod groups;
mod lockout;
pub mod loopback;
pub mod oidc;
pub mod tokens;

pub use authenticator::{
    hash_password, now, AuthError, Authenticator, IssuedSession, LoginError, ManageError,
    NewServiceAccount, ServiceAccountView, SessionMethod,
};
pub use grants::{GrantError, GrantView, Grants, NewGrant, PersonalGrant};
pub use groups::{GroupDirectory, GroupError, GroupView, MemberView};

use serde::Serialize;

/// A person or a non-human caller (AI agent, CI job).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum IdentityKind {
    Human,
    Agent,
}

impl IdentityKind {
    pub fn as_str(self) -> &'static str {
        match self {
            IdentityKind::Human => "human",
            IdentityKind::Agent => "agent",
        }
    }

    /// The stored form back to a kind; anything unknown is treated as an agent, the more
    /// restricted reading for policy.
    pub fn parse(s: &str) -> IdentityKind {
        if s == "human" {
            IdentityKind::Human
        } else {
            IdentityKind::Agent
        }
    }
}

/// An authenticated identity, carried by every connection and request.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Identity {
    pub name: String,
    pub kind: IdentityKind,
    pub groups: Vec<String>,
    /// For agents: the person they act for, when known.
    pub on_behalf_of: Option<String>,
    /// The gateway session behind a session token; `None` for service-account tokens.
    #[serde(skip)]
    pub session_id: Option<String>,
}

/// Why an identity may not act for the person it named.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OnBehalfError {
    #[error("`{0}` is a person's identity; only agents act on behalf of someone")]
    NotAnAgent(String),
    #[error("`{identity}` is configured to act for `{fixed}`, not `{requested}`")]
    Fixed {
        identity: String,
        fixed: String,
        requested: String,
    },
    #[error("the on-behalf-of name must be 1 to 200 printable characters")]
    Invalid,
    #[error("`{identity}` may not act for `{requested}`: an agent names the person it acts for only when its service account lists them in `may_act_for`")]
    NotAllowed { identity: String, requested: String },
}

impl Identity {
    pub fn in_any_group(&self, groups: &[String]) -> bool {
        self.groups.iter().any(|g| groups.contains(g))
    }

    /// This identity acting for `person` (an agent naming the human it works for, so policy
    /// and audit see them). Only agents may; an account bound to a person by its
    /// administrator stays bound to that person.
    pub fn acting_for(mut self, person: Option<&str>) -> Result<Identity, OnBehalfError> {
        let Some(person) = person.map(str::trim).filter(|p| !p.is_empty()) else {
            return Ok(self);
        };
        if person.len() > 200 || person.chars().any(char::is_control) {
            return Err(OnBehalfError::Invalid);
        }
        if self.kind != IdentityKind::Agent {
            return Err(OnBehalfError::NotAnAgent(self.name));
        }
        match &self.on_behalf_of {
            Some(fixed) if fixed != person => Err(OnBehalfError::Fixed {
                identity: self.name.clone(),
                fixed: fixed.clone(),
                requested: person.to_string(),
            }),
            _ => {
                self.on_behalf_of = Some(person.to_string());
                Ok(self)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(kind: IdentityKind, fixed: Option<&str>) -> Identity {
        Identity {
            name: "bot".into(),
            kind,
            groups: vec![],
            on_behalf_of: fixed.map(Into::into),
            session_id: None,
        }
    }

    #[test]
    fn only_agents_act_for_someone_and_a_bound_agent_stays_bound() {
        let a = id(IdentityKind::Agent, None)
            .acting_for(Some("alice"))
            .unwrap();
        assert_eq!(a.on_behalf_of.as_deref(), Some("alice"));
        assert!(id(IdentityKind::Agent, None)
            .acting_for(None)
            .unwrap()
            .on_behalf_of
            .is_none());
        assert!(matches!(
            id(IdentityKind::Human, None).acting_for(Some("alice")),
            Err(OnBehalfError::NotAnAgent(_))
        ));
        assert!(matches!(
            id(IdentityKind::Agent, Some("bob")).acting_for(Some("alice")),
            Err(OnBehalfError::Fixed { .. })
        ));
        let same = id(IdentityKind::Agent, Some("bob"))
            .acting_for(Some("bob"))
            .unwrap();
        assert_eq!(same.on_behalf_of.as_deref(), Some("bob"));
        assert_eq!(
            id(IdentityKind::Agent, None)
                .acting_for(Some("a\nb"))
                .unwrap_err(),
            OnBehalfError::Invalid
        );
    }
}
