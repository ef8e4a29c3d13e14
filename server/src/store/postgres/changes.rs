//! Announcing changes to the other replicas (`NOTIFY`) and hearing theirs (`LISTEN` on a
//! connection of its own, outside the pool).

use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_postgres::AsyncMessage;

use super::{runtime, PgStore};
use crate::store::changes::{Change, Notice, CHANNEL};
use crate::store::StoreError;

impl PgStore {
    /// Sends `change` to every replica listening (see `store::changes`), in the background.
    pub fn announce(&self, change: Change) {
        let notice = Notice {
            origin: self.settings.replica_id.clone(),
            change,
        };
        let Ok(payload) = serde_json::to_string(&notice) else {
            return;
        };
        let store = self.clone();
        runtime().spawn(async move {
            let r = store
                .exec(move |c| async move {
                    c.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &payload])
                        .await?;
                    Ok(())
                })
                .await;
            if let Err(e) = r {
                tracing::warn!(error = %e, "cannot announce a change to the other replicas; they re-read it within their fallback interval");
            }
        });
    }

    /// Listens for the other replicas' notices on a connection of its own. The receiver ends
    /// when that connection does (the store restarted, the network broke): the caller then
    /// re-reads what it may have missed and listens again.
    pub async fn listen(&self) -> Result<mpsc::Receiver<Notice>, StoreError> {
        let settings = self.settings.clone();
        runtime()
            .spawn(async move {
                let mut config = settings.pg_config();
                // Told apart from the pool's connections in pg_stat_activity.
                config.application_name("gatehouse-store-listen");
                let (client, mut conn) = config
                    .connect(super::tls::StoreTls(settings.tls.clone()))
                    .await?;
                let (tx, rx) = mpsc::channel(1024);
                let me = settings.replica_id.clone();
                // The client must outlive the LISTEN (dropping it closes the connection): once
                // LISTEN is sent it is handed to the task that reads the connection, and both
                // end together.
                let (client_tx, mut client_rx) = tokio::sync::oneshot::channel();
                tokio::spawn(async move {
                    let mut messages =
                        futures_util::stream::poll_fn(move |cx| conn.poll_message(cx));
                    let mut held: Option<tokio_postgres::Client> = None;
                    loop {
                        tokio::select! {
                            c = &mut client_rx, if held.is_none() => match c {
                                Ok(c) => held = Some(c),
                                Err(_) => break,
                            },
                            m = messages.next() => match m {
                                Some(Ok(AsyncMessage::Notification(n))) => {
                                    match serde_json::from_str::<Notice>(n.payload()) {
                                        Ok(notice) if notice.origin == me => {}
                                        Ok(notice) => {
                                            if tx.send(notice).await.is_err() {
                                                break;
                                            }
                                        }
                                        Err(e) => tracing::warn!(error = %e, "ignoring an unreadable change notice"),
                                    }
                                }
                                Some(Ok(_)) => {}
                                Some(Err(_)) | None => break,
                            },
                        }
                    }
                    drop(held);
                });
                client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
                let _ = client_tx.send(client);
                Ok(rx)
            })
            .await
            .map_err(|e| StoreError::Join(e.to_string()))?
    }
}
