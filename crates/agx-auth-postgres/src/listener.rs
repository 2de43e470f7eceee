//! Revocations from other instances: a dedicated connection that `LISTEN`s on
//! [`REVOCATION_CHANNEL`](crate::REVOCATION_CHANNEL).
//!
//! A pooled connection never sees notifications (nothing polls it between
//! queries), so the listener owns a connection of its own and drives its
//! `poll_message` itself. When the connection drops it reconnects with
//! backoff, and after every (re)connect it reports [`Revocation::All`]: it may
//! have missed notifications while it was away, so every cached entry is
//! suspect.

use std::future::poll_fn;
use std::sync::Arc;
use std::time::Duration;

use agx_auth::{KeyHash, Revocation, RevocationSink};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_postgres::{AsyncMessage, NoTls};

use crate::REVOCATION_CHANNEL;

/// Runs the listener until the handle is dropped or aborted.
pub struct ListenerHandle(JoinHandle<()>);

impl Drop for ListenerHandle {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Starts listening; every revocation goes to `sink` (a cache), in order,
/// from the listener's task.
pub fn spawn(url: String, sink: Arc<dyn RevocationSink>) -> ListenerHandle {
    ListenerHandle(tokio::spawn(async move {
        let mut backoff = Duration::from_millis(50);
        loop {
            if listen_once(&url, sink.as_ref()).await {
                // It was connected: the next failure starts the backoff afresh.
                backoff = Duration::from_millis(50);
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }))
}

/// One connection's life. Returns whether it got as far as listening.
async fn listen_once(url: &str, sink: &dyn RevocationSink) -> bool {
    let Ok((client, mut connection)) = tokio_postgres::connect(url, NoTls).await else { return false };
    let (tx, mut rx) = mpsc::unbounded_channel();
    // The connection is driven here; notifications go to the channel. When
    // the connection ends, so does the channel.
    let driver = tokio::spawn(async move {
        while let Some(message) = poll_fn(|cx| connection.poll_message(cx)).await {
            match message {
                Ok(AsyncMessage::Notification(n)) => {
                    if tx.send(n.payload().to_owned()).is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    });
    if client.batch_execute(&format!("LISTEN {REVOCATION_CHANNEL}")).await.is_err() {
        driver.abort();
        return false;
    }
    sink.revoke(Revocation::All).await;
    while let Some(payload) = rx.recv().await {
        // A payload we cannot read still means something changed.
        sink.revoke(parse_hash(&payload).map_or(Revocation::All, Revocation::Key)).await;
    }
    drop(client);
    true
}

fn parse_hash(hex: &str) -> Option<KeyHash> {
    let bytes = hex.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        let s = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(s, 16).ok()?;
    }
    Some(KeyHash(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip() {
        let hash = KeyHash([0xab; 32]);
        assert_eq!(parse_hash(&hash.to_hex()), Some(hash));
        assert_eq!(parse_hash("zz"), None);
        assert_eq!(parse_hash(&"g".repeat(64)), None);
    }
}
