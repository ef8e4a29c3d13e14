//! Group memberships: the groups an identity belongs to beyond those its IdP claims or the
//! config lists. Administrators manage them through the API; [`GroupDirectory::merge_into`]
//! adds them to an identity each time a token is authenticated, so a change applies to the
//! next connection or request without a new login.
//!
//! Like grants, the memberships live in memory behind an `Arc` swapped whole after a change:
//! authentication is on every connection's path and must not wait for the store.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::reload_gate::ReloadGate;
use crate::store::{GroupMemberRecord, Store, StoreError};

use super::Identity;

#[derive(Debug, thiserror::Error)]
pub enum GroupError {
    #[error("{0}")]
    Invalid(String),
    #[error("`{member}` is not an API-managed member of group `{group}` (config memberships are changed in the config file)")]
    NotFound { group: String, member: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One member of a group as listed to administrators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberView {
    pub member: String,
    /// `config` (read-only) or `api`.
    pub source: &'static str,
    pub added_at: Option<i64>,
    pub added_by: Option<String>,
}

/// A group and everyone known to be in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupView {
    pub name: String,
    pub members: Vec<MemberView>,
}

#[derive(Default)]
struct Snapshot {
    by_member: HashMap<String, Vec<String>>,
    records: Vec<GroupMemberRecord>,
}

pub struct GroupDirectory {
    /// `(group, member)` pairs written in the config (local users, service accounts); listed
    /// for completeness, never changed here.
    config: Vec<(String, String)>,
    current: RwLock<Arc<Snapshot>>,
    reloads: ReloadGate,
}

/// Group names end up in grants, rules and audit records; keep them plain and bounded.
fn valid_group_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-@+:/".contains(c))
}

impl GroupDirectory {
    pub fn new(config: Vec<(String, String)>) -> Self {
        Self {
            config,
            current: RwLock::new(Arc::new(Snapshot::default())),
            reloads: ReloadGate::default(),
        }
    }

    fn snapshot(&self) -> Arc<Snapshot> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn replace(&self, records: Vec<GroupMemberRecord>) {
        let mut by_member: HashMap<String, Vec<String>> = HashMap::new();
        for r in &records {
            by_member
                .entry(r.member.clone())
                .or_default()
                .push(r.group.clone());
        }
        *self.current.write().unwrap_or_else(|p| p.into_inner()) =
            Arc::new(Snapshot { by_member, records });
    }

    /// Loads the API-managed memberships at startup.
    pub fn load_blocking(&self, store: &Store) -> Result<(), StoreError> {
        self.replace(store.list_group_members_blocking()?);
        Ok(())
    }

    /// Re-reads the API-managed memberships (after a change, or another replica's), one reload
    /// at a time (see [`ReloadGate`]).
    pub async fn reload(&self, store: &Store) -> Result<(), StoreError> {
        self.reloads
            .reload(store.list_group_members(), |records| self.replace(records))
            .await
    }

    /// Adds the identity's API-managed groups to the ones it already has.
    pub fn merge_into(&self, identity: &mut Identity) {
        let snap = self.snapshot();
        let Some(extra) = snap.by_member.get(&identity.name) else {
            return;
        };
        identity.groups.extend(extra.iter().cloned());
        identity.groups.sort();
        identity.groups.dedup();
    }

    /// Every group with members, from the config and the API, by name.
    pub fn list(&self) -> Vec<GroupView> {
        let snap = self.snapshot();
        let mut groups: std::collections::BTreeMap<String, Vec<MemberView>> = Default::default();
        for (group, member) in &self.config {
            groups.entry(group.clone()).or_default().push(MemberView {
                member: member.clone(),
                source: "config",
                added_at: None,
                added_by: None,
            });
        }
        for r in &snap.records {
            groups.entry(r.group.clone()).or_default().push(MemberView {
                member: r.member.clone(),
                source: "api",
                added_at: Some(r.added_at),
                added_by: Some(r.added_by.clone()),
            });
        }
        groups
            .into_iter()
            .map(|(name, members)| GroupView { name, members })
            .collect()
    }

    /// Adds `member` to `group`; false when the membership already existed.
    pub async fn add(
        &self,
        store: &Store,
        group: &str,
        member: &str,
        added_by: &str,
        now: i64,
    ) -> Result<bool, GroupError> {
        if !valid_group_name(group) {
            return Err(GroupError::Invalid(
                "a group name is 1 to 128 letters, digits or `._-@+:/`".into(),
            ));
        }
        if !super::authenticator::valid_identity_name(member) {
            return Err(GroupError::Invalid(
                "`member` must be an identity name (1 to 128 letters, digits or `._-@+`)".into(),
            ));
        }
        let added = store
            .insert_group_member(GroupMemberRecord {
                group: group.to_string(),
                member: member.to_string(),
                added_at: now,
                added_by: added_by.to_string(),
            })
            .await?;
        self.reload(store).await?;
        Ok(added)
    }

    /// Removes an API-managed membership; new connections and requests see the change. Open
    /// connections are the caller's to re-check (the HTTP handler ends those left without a
    /// grant).
    pub async fn remove(&self, store: &Store, group: &str, member: &str) -> Result<(), GroupError> {
        if !store
            .delete_group_member(group.to_string(), member.to_string())
            .await?
        {
            return Err(GroupError::NotFound {
                group: group.to_string(),
                member: member.to_string(),
            });
        }
        self.reload(store).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::IdentityKind;

    fn alice(groups: &[&str]) -> Identity {
        Identity {
            name: "alice@example.com".into(),
            kind: IdentityKind::Human,
            groups: groups.iter().map(|s| s.to_string()).collect(),
            on_behalf_of: None,
            session_id: None,
        }
    }

    #[tokio::test]
    async fn api_memberships_merge_into_identities_and_go_away_when_removed() {
        let store = Store::open_in_memory().unwrap();
        let dir = GroupDirectory::new(vec![("admins".into(), "root".into())]);
        assert!(dir
            .add(&store, "dba", "alice@example.com", "root", 10)
            .await
            .unwrap());
        assert!(!dir
            .add(&store, "dba", "alice@example.com", "root", 11)
            .await
            .unwrap());

        let mut id = alice(&["engineers", "dba"]);
        dir.merge_into(&mut id);
        assert_eq!(id.groups, vec!["dba", "engineers"]);

        let listed = dir.list();
        assert_eq!(
            listed.iter().map(|g| g.name.as_str()).collect::<Vec<_>>(),
            vec!["admins", "dba"]
        );
        assert_eq!(listed[1].members[0].source, "api");
        assert_eq!(listed[1].members[0].added_at, Some(10));

        // A second directory over the same store sees the change (another replica, a restart).
        let other = GroupDirectory::new(vec![]);
        other.load_blocking(&store).unwrap();
        let mut id = alice(&[]);
        other.merge_into(&mut id);
        assert_eq!(id.groups, vec!["dba"]);

        dir.remove(&store, "dba", "alice@example.com")
            .await
            .unwrap();
        let mut id = alice(&["engineers"]);
        dir.merge_into(&mut id);
        assert_eq!(id.groups, vec!["engineers"]);
        assert!(matches!(
            dir.remove(&store, "dba", "alice@example.com").await,
            Err(GroupError::NotFound { .. })
        ));
    }

    #[tokio::test]
    async fn names_are_checked() {
        let store = Store::open_in_memory().unwrap();
        let dir = GroupDirectory::new(vec![]);
        for (group, member) in [("", "alice"), ("has space", "alice"), ("dba", "bad name")] {
            assert!(matches!(
                dir.add(&store, group, member, "root", 1).await,
                Err(GroupError::Invalid(_))
            ));
        }
    }
}
