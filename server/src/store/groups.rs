//! Group memberships managed through the API. The identity module keeps them in memory and
//! adds them to an identity's own groups (from the IdP or the config) at authentication.

use rusqlite::params;

use super::{Store, StoreError};

/// One identity's membership of one group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMemberRecord {
    pub group: String,
    pub member: String,
    pub added_at: i64,
    pub added_by: String,
}

fn list(c: &rusqlite::Connection) -> Result<Vec<GroupMemberRecord>, StoreError> {
    let mut stmt = c.prepare(
        "SELECT group_name, member, added_at, added_by FROM group_members
         ORDER BY group_name, member",
    )?;
    let rows = stmt
        .query_map([], |r| {
            Ok(GroupMemberRecord {
                group: r.get(0)?,
                member: r.get(1)?,
                added_at: r.get(2)?,
                added_by: r.get(3)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

impl Store {
    /// Adds a membership; false when it already existed (the original is kept).
    pub async fn insert_group_member(&self, m: GroupMemberRecord) -> Result<bool, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.insert_group_member(m).await;
        }
        self.run(move |c| {
            Ok(c.execute(
                "INSERT OR IGNORE INTO group_members (group_name, member, added_at, added_by)
                 VALUES (?1, ?2, ?3, ?4)",
                params![m.group, m.member, m.added_at, m.added_by],
            )? > 0)
        })
        .await
    }

    /// Removes a membership; true if it existed.
    pub async fn delete_group_member(
        &self,
        group: String,
        member: String,
    ) -> Result<bool, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.delete_group_member(group, member).await;
        }
        self.run(move |c| {
            Ok(c.execute(
                "DELETE FROM group_members WHERE group_name = ?1 AND member = ?2",
                params![group, member],
            )? > 0)
        })
        .await
    }

    pub async fn list_group_members(&self) -> Result<Vec<GroupMemberRecord>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.list_group_members().await;
        }
        self.run(list).await
    }

    /// For startup, before the runtime serves anything.
    pub fn list_group_members_blocking(&self) -> Result<Vec<GroupMemberRecord>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.list_group_members_blocking();
        }
        self.run_blocking(list)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn insert_is_idempotent_and_delete_reports_existence() {
        let s = Store::open_in_memory().unwrap();
        let m = GroupMemberRecord {
            group: "dba".into(),
            member: "alice@example.com".into(),
            added_at: 1,
            added_by: "root".into(),
        };
        assert!(s.insert_group_member(m.clone()).await.unwrap());
        let again = GroupMemberRecord {
            added_at: 2,
            ..m.clone()
        };
        assert!(!s.insert_group_member(again).await.unwrap());
        assert_eq!(s.list_group_members().await.unwrap(), vec![m]);
        assert!(s
            .delete_group_member("dba".into(), "alice@example.com".into())
            .await
            .unwrap());
        assert!(!s
            .delete_group_member("dba".into(), "alice@example.com".into())
            .await
            .unwrap());
        assert!(s.list_group_members_blocking().unwrap().is_empty());
    }
}
