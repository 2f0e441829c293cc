//! What one server tells the others sharing its database: `NOTIFY` on
//! one channel, read by a connection of its own (a hint only: a listener
//! re-reads by version, and servers also poll).

use crate::storage::StorageHint;
use futures_util::StreamExt;
use std::time::Duration;
use tokio::sync::broadcast;
use tokio_postgres::NoTls;

/// The channel `NOTIFY` announces what servers did on: payload
/// `VERSION PARTITION` for a new version, `reset IDENT…` for resets.
pub(super) const CHANNEL: &str = "haven_versions";

/// Listens on a connection of its own for versions other servers
/// integrate, reconnecting when it is lost (a missed notification only
/// delays a client: the server also polls).
pub(super) async fn listen(config: tokio_postgres::Config, hints: broadcast::Sender<StorageHint>) {
    loop {
        match config.connect(NoTls).await {
            Ok((client, mut connection)) => {
                let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
                let listening = async {
                    while let Some(message) = messages.next().await {
                        match message {
                            Ok(tokio_postgres::AsyncMessage::Notification(n)) => {
                                for hint in parse_hint(n.payload()) {
                                    let _ = hints.send(hint);
                                }
                            }
                            Ok(_) => {}
                            Err(e) => return e.to_string(),
                        }
                    }
                    "the connection closed".to_owned()
                };
                let listen = format!("LISTEN {CHANNEL}");
                let subscribe = client.batch_execute(&listen);
                let (lost, _) = tokio::join!(listening, async {
                    if let Err(e) = subscribe.await {
                        tracing::warn!(error = %e, "cannot LISTEN for new versions");
                    }
                });
                tracing::warn!(%lost, "the PostgreSQL notification connection was lost; reconnecting");
            }
            Err(e) => tracing::warn!(error = %e, "cannot connect for notifications; retrying"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The hints a notification's payload carries.
fn parse_hint(payload: &str) -> Vec<StorageHint> {
    match payload.split_once(' ') {
        Some(("reset", idents)) => {
            idents.split(',').filter_map(|i| i.parse().ok()).map(|ident| StorageHint::Reset { ident }).collect()
        }
        Some((version, partition)) => version
            .parse()
            .map(|version| vec![StorageHint::Version { partition: partition.to_owned(), version }])
            .unwrap_or_default(),
        None => vec![],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notification_payloads() {
        let version = |partition: &str, version| StorageHint::Version { partition: partition.into(), version };
        assert_eq!(parse_hint("12 my partition"), vec![version("my partition", 12)]);
        assert_eq!(parse_hint("reset 3,4"), vec![StorageHint::Reset { ident: 3 }, StorageHint::Reset { ident: 4 }]);
        assert!(parse_hint("garbage").is_empty() && parse_hint("x p").is_empty());
    }
}
