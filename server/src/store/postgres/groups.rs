//! API-managed group memberships in the shared store (see `store/groups.rs`).

use super::PgStore;
use crate::store::{GroupMemberRecord, StoreError};

async fn list(c: &tokio_postgres::Client) -> Result<Vec<GroupMemberRecord>, StoreError> {
    let rows = c
        .query(
            "SELECT group_name, member, added_at, added_by FROM group_members
             ORDER BY group_name, member",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| GroupMemberRecord {
            group: r.get(0),
            member: r.get(1),
            added_at: r.get(2),
            added_by: r.get(3),
        })
        .collect())
}

impl PgStore {
    pub async fn insert_group_member(&self, m: GroupMemberRecord) -> Result<bool, StoreError> {
        self.exec(move |c| async move {
            Ok(c.execute(
                "INSERT INTO group_members (group_name, member, added_at, added_by)
                 VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                &[&m.group, &m.member, &m.added_at, &m.added_by],
            )
            .await?
                > 0)
        })
        .await
    }

    pub async fn delete_group_member(
        &self,
        group: String,
        member: String,
    ) -> Result<bool, StoreError> {
        self.exec(move |c| async move {
            Ok(c.execute(
                "DELETE FROM group_members WHERE group_name = $1 AND member = $2",
                &[&group, &member],
            )
            .await?
                > 0)
        })
        .await
    }

    pub async fn list_group_members(&self) -> Result<Vec<GroupMemberRecord>, StoreError> {
        self.exec(|c| async move { list(&c).await }).await
    }

    pub fn list_group_members_blocking(&self) -> Result<Vec<GroupMemberRecord>, StoreError> {
        self.blocking(|c| async move { list(&c).await })
    }
}
