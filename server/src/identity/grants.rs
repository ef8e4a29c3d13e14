//! Grants: which groups may reach which environments, and as which upstream role.
//!
//! Two sources, merged: `[[grants]]` in the config (fixed for the process's life) and grants
//! that administrators manage through the API (kept in the store). Connections ask
//! [`Grants::allows`] synchronously on their hot path, so the merged list lives in memory behind
//! an `Arc` that is swapped whole after every change; readers never wait for the store.
//!
//! An API grant may expire. An expired grant is ignored from its expiry on, whether or not the
//! expiry sweep (`pg::access`) has deleted it yet: access fails closed, never on the sweep's
//! schedule.

use std::sync::{Arc, RwLock};

use crate::config::{valid_role_name, GrantConfig};
use crate::reload_gate::ReloadGate;
use crate::store::{GrantPerson, GrantRecord, Store, StoreError};

use super::Identity;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Grant {
    id: String,
    groups: Vec<String>,
    /// Environment names; `*` means every environment.
    environments: Vec<String>,
    upstream_role: Option<String>,
    /// `config` or `api`.
    source: &'static str,
    created_by: Option<String>,
    created_at: Option<i64>,
    /// Unix seconds from which the grant lets nobody in; `None`: never (config grants).
    expires_at: Option<i64>,
    /// A personal grant (an approved access request) lets in this identity alone.
    person: Option<GrantPerson>,
    approval_id: Option<String>,
    break_glass: bool,
}

/// Whether a grant's holders include `identity`: the one person of a personal grant (name
/// ignoring ASCII case, and kind), otherwise a member of one of its groups.
fn holds(person: &Option<GrantPerson>, groups: &[String], identity: &Identity) -> bool {
    match person {
        Some(p) => p.name.eq_ignore_ascii_case(&identity.name) && p.kind == identity.kind.as_str(),
        None => identity.in_any_group(groups),
    }
}

impl Grant {
    fn live_at(&self, now: i64) -> bool {
        self.expires_at.is_none_or(|t| t > now)
    }

    fn view(&self) -> GrantView {
        GrantView {
            id: self.id.clone(),
            groups: self.groups.clone(),
            environments: self.environments.clone(),
            upstream_role: self.upstream_role.clone(),
            source: self.source,
            created_by: self.created_by.clone(),
            created_at: self.created_at,
            expires_at: self.expires_at,
            person: self.person.clone(),
            approval_id: self.approval_id.clone(),
            break_glass: self.break_glass,
        }
    }
}

/// A grant as listed to administrators.
#[derive(Debug, Clone)]
pub struct GrantView {
    pub id: String,
    pub groups: Vec<String>,
    pub environments: Vec<String>,
    pub upstream_role: Option<String>,
    pub source: &'static str,
    pub created_by: Option<String>,
    pub created_at: Option<i64>,
    /// Unix seconds; `None` when the grant never expires.
    pub expires_at: Option<i64>,
    /// For a personal grant: the one identity it lets in (its `groups` are empty).
    pub person: Option<GrantPerson>,
    /// The access request it was made from.
    pub approval_id: Option<String>,
    pub break_glass: bool,
}

impl GrantView {
    /// Whether this grant lets `identity` in, expiry aside.
    pub fn covers(&self, identity: &Identity) -> bool {
        holds(&self.person, &self.groups, identity)
    }
}

/// An approved access request: access for one identity to one environment until a time.
#[derive(Debug, Clone)]
pub struct PersonalGrant {
    pub identity: Identity,
    pub environment: String,
    pub upstream_role: Option<String>,
    pub expires_at: i64,
    pub approval_id: String,
    pub break_glass: bool,
}

/// What an administrator asks for when adding a grant.
#[derive(Debug, Clone)]
pub struct NewGrant {
    pub groups: Vec<String>,
    pub environments: Vec<String>,
    pub upstream_role: Option<String>,
    /// Unix seconds; must be after `now` when given.
    pub expires_at: Option<i64>,
}

#[derive(Debug, thiserror::Error)]
pub enum GrantError {
    #[error("{0}")]
    Invalid(String),
    #[error("no API-managed grant with id `{0}` (grants from the config file are changed there)")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The merged grants, answering "may this identity reach that environment, and as whom?".
pub struct Grants {
    config: Vec<Grant>,
    current: RwLock<Arc<Vec<Grant>>>,
    reloads: ReloadGate,
}

fn from_record(r: GrantRecord) -> Grant {
    Grant {
        id: r.id,
        groups: r.groups,
        environments: r.environments,
        upstream_role: r.upstream_role,
        source: "api",
        created_by: Some(r.created_by),
        created_at: Some(r.created_at),
        expires_at: r.expires_at,
        person: r.person,
        approval_id: r.approval_id,
        break_glass: r.break_glass,
    }
}

impl Grants {
    pub fn from_config(grants: &[GrantConfig]) -> Self {
        let config: Vec<Grant> = grants
            .iter()
            .enumerate()
            .map(|(i, g)| Grant {
                id: format!("config:{i}"),
                groups: g.groups.clone(),
                environments: g.environments.iter().map(|e| e.get_ref().clone()).collect(),
                upstream_role: g.upstream_role.as_ref().map(|r| r.get_ref().clone()),
                source: "config",
                created_by: None,
                created_at: None,
                expires_at: None,
                person: None,
                approval_id: None,
                break_glass: false,
            })
            .collect();
        Self {
            current: RwLock::new(Arc::new(config.clone())),
            config,
            reloads: ReloadGate::default(),
        }
    }

    fn snapshot(&self) -> Arc<Vec<Grant>> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn replace(&self, api: Vec<GrantRecord>) {
        let mut all = self.config.clone();
        all.extend(api.into_iter().map(from_record));
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(all);
    }

    /// Loads the API-managed grants at startup.
    pub fn load_blocking(&self, store: &Store) -> Result<(), StoreError> {
        self.replace(store.list_grants_blocking()?);
        Ok(())
    }

    /// Re-reads the API-managed grants (after a change, or another replica's), one reload at
    /// a time (see [`ReloadGate`]).
    pub async fn reload(&self, store: &Store) -> Result<(), StoreError> {
        self.reloads
            .reload(store.list_grants(), |api| self.replace(api))
            .await
    }

    /// Whether a grant lets `identity` reach `environment` now. Expired grants never do.
    pub fn allows(&self, identity: &Identity, environment: &str) -> bool {
        self.matching(identity, environment, super::now()).is_some()
    }

    /// The upstream role for a connection the grants allow: that of the first matching grant
    /// that has not expired (config grants first, then API grants, oldest first); `None` means
    /// the environment's own user.
    pub fn upstream_role(&self, identity: &Identity, environment: &str) -> Option<String> {
        self.matching(identity, environment, super::now())
            .and_then(|g| g.upstream_role)
    }

    fn matching(&self, identity: &Identity, environment: &str, now: i64) -> Option<Grant> {
        self.snapshot()
            .iter()
            .find(|g| {
                g.live_at(now)
                    && holds(&g.person, &g.groups, identity)
                    && g.environments.iter().any(|e| e == "*" || e == environment)
            })
            .cloned()
    }

    /// The grants in force: an expired grant is no longer listed, even before the sweep
    /// deletes it.
    pub fn list(&self) -> Vec<GrantView> {
        let now = super::now();
        self.snapshot()
            .iter()
            .filter(|g| g.live_at(now))
            .map(Grant::view)
            .collect()
    }

    /// The API grants whose expiry is at or before `now`, for the sweep to delete.
    pub fn expired(&self, now: i64) -> Vec<GrantView> {
        self.snapshot()
            .iter()
            .filter(|g| !g.live_at(now))
            .map(Grant::view)
            .collect()
    }

    /// Adds an API-managed grant; `known_env` says whether an environment name exists.
    pub async fn add(
        &self,
        store: &Store,
        req: NewGrant,
        known_env: impl Fn(&str) -> bool,
        created_by: &str,
        now: i64,
    ) -> Result<GrantView, GrantError> {
        if req.groups.is_empty() || req.groups.iter().any(|g| g.trim().is_empty()) {
            return Err(GrantError::Invalid(
                "`groups` must list at least one non-empty group".into(),
            ));
        }
        if req.environments.is_empty() {
            return Err(GrantError::Invalid(
                "`environments` must list at least one environment (or \"*\")".into(),
            ));
        }
        if let Some(e) = req
            .environments
            .iter()
            .find(|e| e.as_str() != "*" && !known_env(e))
        {
            return Err(GrantError::Invalid(format!(
                "no environment named `{e}` is defined"
            )));
        }
        if let Some(t) = req.expires_at {
            if t <= now {
                return Err(GrantError::Invalid(
                    "`expires_at` must be in the future".into(),
                ));
            }
        }
        if let Some(r) = &req.upstream_role {
            if !valid_role_name(r) {
                return Err(GrantError::Invalid(
                    "`upstream_role` must be a PostgreSQL role name (letters, digits, `_`, `$`)"
                        .into(),
                ));
            }
        }
        let record = GrantRecord {
            id: super::tokens::random_id(),
            groups: req.groups,
            environments: req.environments,
            upstream_role: req.upstream_role,
            created_at: now,
            created_by: created_by.to_string(),
            expires_at: req.expires_at,
            person: None,
            approval_id: None,
            break_glass: false,
        };
        store.insert_grant(record.clone()).await?;
        self.reload(store).await?;
        Ok(from_record(record).view())
    }

    /// Adds the grant an approved access request makes: for its requester alone, until it
    /// ends. The caller has checked the environment and the role against its config.
    pub async fn add_personal(
        &self,
        store: &Store,
        g: PersonalGrant,
        created_by: &str,
        now: i64,
    ) -> Result<GrantView, GrantError> {
        if g.expires_at <= now {
            return Err(GrantError::Invalid(
                "`expires_at` must be in the future".into(),
            ));
        }
        let record = GrantRecord {
            id: super::tokens::random_id(),
            groups: Vec::new(),
            environments: vec![g.environment],
            upstream_role: g.upstream_role,
            created_at: now,
            created_by: created_by.to_string(),
            expires_at: Some(g.expires_at),
            person: Some(GrantPerson {
                name: g.identity.name.clone(),
                kind: g.identity.kind.as_str().to_string(),
            }),
            approval_id: Some(g.approval_id),
            break_glass: g.break_glass,
        };
        store.insert_grant(record.clone()).await?;
        self.reload(store).await?;
        Ok(from_record(record).view())
    }

    /// Removes an API-managed grant.
    pub async fn remove(&self, store: &Store, id: &str) -> Result<(), GrantError> {
        if !store.delete_grant(id.to_string()).await? {
            return Err(GrantError::NotFound(id.to_string()));
        }
        self.reload(store).await?;
        Ok(())
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

    fn grant(groups: &[&str], envs: &[&str], role: Option<&str>) -> Grant {
        Grant {
            id: "x".into(),
            groups: groups.iter().map(|s| s.to_string()).collect(),
            environments: envs.iter().map(|s| s.to_string()).collect(),
            upstream_role: role.map(Into::into),
            source: "config",
            created_by: None,
            created_at: None,
            expires_at: None,
            person: None,
            approval_id: None,
            break_glass: false,
        }
    }

    #[tokio::test]
    async fn a_personal_grant_lets_in_its_person_alone_until_it_ends() {
        let store = Store::open_in_memory().unwrap();
        let g = Grants::from_config(&[]);
        let ana = Identity {
            name: "Ana@Example.com".into(),
            ..who(&["eng"])
        };
        let now = super::super::now();
        g.add_personal(
            &store,
            PersonalGrant {
                identity: ana.clone(),
                environment: "prod".into(),
                upstream_role: Some("oncall".into()),
                expires_at: now + 60,
                approval_id: "apr_1".into(),
                break_glass: false,
            },
            "bob",
            now,
        )
        .await
        .unwrap();
        let same_person = Identity {
            name: "ana@example.com".into(),
            groups: Vec::new(),
            ..ana.clone()
        };
        assert!(g.allows(&same_person, "prod"));
        assert_eq!(g.upstream_role(&ana, "prod").as_deref(), Some("oncall"));
        assert!(!g.allows(&ana, "staging"));
        // Another member of her groups, and an agent of her name, are not her.
        assert!(!g.allows(&who(&["eng"]), "prod"));
        let agent = Identity {
            kind: IdentityKind::Agent,
            ..ana.clone()
        };
        assert!(!g.allows(&agent, "prod"));
        assert!(g.matching(&ana, "prod", now + 60).is_none());
        assert_eq!(g.expired(now + 60)[0].approval_id.as_deref(), Some("apr_1"));
        assert!(g.expired(now + 60)[0].covers(&same_person));
    }

    #[test]
    fn group_and_environment_must_both_match() {
        let config = vec![
            grant(&["eng"], &["staging"], None),
            grant(&["dba"], &["*"], Some("dba_role")),
        ];
        let g = Grants {
            current: RwLock::new(Arc::new(config.clone())),
            config,
            reloads: ReloadGate::default(),
        };
        assert!(g.allows(&who(&["eng"]), "staging"));
        assert!(!g.allows(&who(&["eng"]), "prod"));
        assert!(g.allows(&who(&["dba"]), "prod"));
        assert!(!g.allows(&who(&[]), "staging"));
        assert_eq!(
            g.upstream_role(&who(&["dba"]), "prod").as_deref(),
            Some("dba_role")
        );
        assert_eq!(g.upstream_role(&who(&["eng"]), "staging"), None);
    }

    #[tokio::test]
    async fn api_grants_merge_with_config_and_take_effect_at_once() {
        let store = Store::open_in_memory().unwrap();
        let g = Grants::from_config(&[]);
        assert!(!g.allows(&who(&["agents"]), "prod"));
        let req = NewGrant {
            groups: vec!["agents".into()],
            environments: vec!["prod".into()],
            upstream_role: Some("readonly".into()),
            expires_at: None,
        };
        let bad = NewGrant {
            environments: vec!["nope".into()],
            ..req.clone()
        };
        assert!(matches!(
            g.add(&store, bad, |e| e == "prod", "root", 1).await,
            Err(GrantError::Invalid(_))
        ));
        let added = g
            .add(&store, req, |e| e == "prod", "root", 1)
            .await
            .unwrap();
        assert!(g.allows(&who(&["agents"]), "prod"));
        assert_eq!(
            g.upstream_role(&who(&["agents"]), "prod").as_deref(),
            Some("readonly")
        );
        // A second view over the same store sees it after loading.
        let g2 = Grants::from_config(&[]);
        g2.load_blocking(&store).unwrap();
        assert!(g2.allows(&who(&["agents"]), "prod"));
        g.remove(&store, &added.id).await.unwrap();
        assert!(!g.allows(&who(&["agents"]), "prod"));
        assert!(matches!(
            g.remove(&store, &added.id).await,
            Err(GrantError::NotFound(_))
        ));
    }

    #[test]
    fn an_expired_grant_lets_nobody_in_even_before_the_sweep() {
        let mut until = grant(&["eng"], &["prod"], Some("oncall"));
        until.id = "jit".into();
        until.source = "api";
        until.expires_at = Some(100);
        let config = vec![grant(&["eng"], &["staging"], None)];
        let g = Grants {
            current: RwLock::new(Arc::new(vec![config[0].clone(), until])),
            config,
            reloads: ReloadGate::default(),
        };
        assert!(g.matching(&who(&["eng"]), "prod", 99).is_some());
        assert_eq!(
            g.matching(&who(&["eng"]), "prod", 99)
                .and_then(|x| x.upstream_role)
                .as_deref(),
            Some("oncall")
        );
        // At the expiry second itself it is over.
        assert!(g.matching(&who(&["eng"]), "prod", 100).is_none());
        assert!(g.matching(&who(&["eng"]), "staging", 100).is_some());
        assert!(g.expired(99).is_empty());
        let gone: Vec<String> = g.expired(100).into_iter().map(|v| v.id).collect();
        assert_eq!(gone, ["jit"]);
        // Long past (the clock of `allows`): neither allowed nor listed.
        assert!(!g.allows(&who(&["eng"]), "prod"));
        assert_eq!(g.list().len(), 1);
    }

    #[tokio::test]
    async fn a_grant_must_expire_in_the_future() {
        let store = Store::open_in_memory().unwrap();
        let g = Grants::from_config(&[]);
        let req = |expires_at| NewGrant {
            groups: vec!["eng".into()],
            environments: vec!["prod".into()],
            upstream_role: None,
            expires_at,
        };
        assert!(matches!(
            g.add(&store, req(Some(50)), |_| true, "root", 50).await,
            Err(GrantError::Invalid(m)) if m.contains("expires_at")
        ));
        let v = g
            .add(&store, req(Some(i64::MAX)), |_| true, "root", 50)
            .await
            .unwrap();
        assert_eq!(v.expires_at, Some(i64::MAX));
        let stored = store.list_grants().await.unwrap();
        assert_eq!(stored[0].expires_at, Some(i64::MAX));
    }
}
