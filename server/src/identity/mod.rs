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
pub use grants::{GrantError, GrantView, Grants, NewGrant};
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

impl Identity {
    pub fn in_any_group(&self, groups: &[String]) -> bool {
        self.groups.iter().any(|g| groups.contains(g))
    }
}
