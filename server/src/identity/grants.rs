//! Grants: which groups may reach which environments.

use crate::config::GrantConfig;

use super::Identity;

struct Grant {
    groups: Vec<String>,
    /// Environment names; `*` means every environment.
    environments: Vec<String>,
}

/// The grants from the config, answering "may this identity reach that environment?".
pub struct Grants {
    grants: Vec<Grant>,
}

impl Grants {
    pub fn from_config(grants: &[GrantConfig]) -> Self {
        Self {
            grants: grants
                .iter()
                .map(|g| Grant {
                    groups: g.groups.clone(),
                    environments: g.environments.iter().map(|e| e.get_ref().clone()).collect(),
                })
                .collect(),
        }
    }

    pub fn allows(&self, identity: &Identity, environment: &str) -> bool {
        self.grants.iter().any(|g| {
            identity.in_any_group(&g.groups)
                && g.environments.iter().any(|e| e == "*" || e == environment)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::IdentityKind;

    fn who(groups: &[&str]) -> Identity {
        Identity {
            name: "a".into(),
            kind: IdentityKind::Human,
            groups: groups.iter().map(|s| s.to_string()).collect(),
            on_behalf_of: None,
            session_id: None,
        }
    }

    #[test]
    fn group_and_environment_must_both_match() {
        let g = Grants {
            grants: vec![
                Grant {
                    groups: vec!["eng".into()],
                    environments: vec!["staging".into()],
                },
                Grant {
                    groups: vec!["dba".into()],
                    environments: vec!["*".into()],
                },
            ],
        };
        assert!(g.allows(&who(&["eng"]), "staging"));
        assert!(!g.allows(&who(&["eng"]), "prod"));
        assert!(g.allows(&who(&["dba"]), "prod"));
        assert!(!g.allows(&who(&[]), "staging"));
    }
}
