//! Revocations from other instances: a dedicated connection that `LISTEN`s on
//! [`REVOCATION_CHANNEL`](crate::REVOCATION_CHANNEL).
//!
//! A pooled connection never sees notifications (nothing polls it between
//! queries), so the listener owns a connection of its own and drives its
//! `poll_message` itself. When the connection drops it reconnects with
//! backoff, and after every (re)connect it reports [`Revocation::All`]: it may
//! have missed notifications while it was away, so every cached entry is
//! suspect.
//!
//! A connection can also die without closing: a NAT or firewall drops its
//! state, a host vanishes, and the socket waits for bytes that never come
//! while the deletes it should announce go unheard. So the listener sends a
//! `SELECT 1` every [`ListenerSettings::heartbeat`]; one that gets no answer
//! within [`ListenerSettings::timeout`] ends the connection, and the
//! reconnect reports [`Revocation::All`]. Where PostgreSQL is reachable (the
//! usual case: only this connection died) that happens within heartbeat +
//! timeout + backoff, instead of the cache's whole TTL.
//!
//! Losing the connection does not by itself drop the caches: if PostgreSQL
//! is down, cached keys are what keeps the service up, and no key can be
//! deleted meanwhile; whatever was deleted before the loss is covered by the
//! `All` after the reconnect.

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

/// How the listener watches its connection.
#[derive(Clone, Copy, Debug)]
pub struct ListenerSettings {
    /// How often an idle connection is asked to prove it is alive.
    pub heartbeat: Duration,
    /// How long a heartbeat, a connect or the `LISTEN` may take.
    pub timeout: Duration,
}

impl Default for ListenerSettings {
    fn default() -> Self {
        ListenerSettings { heartbeat: Duration::from_secs(5), timeout: Duration::from_secs(2) }
    }
}

/// Starts listening with the default settings; every revocation goes to
/// `sink` (a cache), in order, from the listener's task.
pub fn spawn(url: String, sink: Arc<dyn RevocationSink>) -> ListenerHandle {
    spawn_with(url, sink, ListenerSettings::default())
}

/// The longest wait between two reconnection attempts. Short on purpose:
/// what was deleted while the listener was away is applied only when it is
/// back, so the wait after the database's return bounds how long a deleted
/// key may still be served. Capped at 500 ms, a key deleted during an outage
/// of any length is refused within about half a second of the return
/// (measured by `cargo xtask faults --secs 8`: with a 5 s cap, an 8 s outage let
/// the key through for 3.4 s more). Two failed connects a second, each refused
/// at once by a database that is down, cost it nothing.
pub const MAX_BACKOFF: Duration = Duration::from_millis(500);

/// Starts listening with `settings`.
pub fn spawn_with(url: String, sink: Arc<dyn RevocationSink>, settings: ListenerSettings) -> ListenerHandle {
    ListenerHandle(tokio::spawn(async move {
        let mut backoff = Duration::from_millis(50);
        loop {
            if listen_once(&url, sink.as_ref(), settings).await {
                // It was connected: the next failure starts the backoff afresh.
                backoff = Duration::from_millis(50);
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }))
}

/// One connection's life. Returns whether it got as far as listening.
async fn listen_once(url: &str, sink: &dyn RevocationSink, settings: ListenerSettings) -> bool {
    let connect = tokio::time::timeout(settings.timeout, tokio_postgres::connect(url, NoTls));
    let Ok(Ok((client, mut connection))) = connect.await else { return false };
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
    let listen = format!("LISTEN {REVOCATION_CHANNEL}");
    if !matches!(tokio::time::timeout(settings.timeout, client.batch_execute(&listen)).await, Ok(Ok(()))) {
        driver.abort();
        return false;
    }
    sink.revoke(Revocation::All).await;
    let mut heartbeat = tokio::time::interval(settings.heartbeat);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    heartbeat.tick().await; // the first tick is immediate
    loop {
        tokio::select! {
            payload = rx.recv() => match payload {
                Some(payload) => sink.revoke(parse(&payload)).await,
                None => break,
            },
            _ = heartbeat.tick() => {
                let alive = tokio::time::timeout(settings.timeout, client.simple_query("SELECT 1")).await;
                if !matches!(alive, Ok(Ok(_))) {
                    break;
                }
            }
        }
    }
    // Whatever was announced since the connection went quiet is lost; the
    // reconnect's `All` makes up for it.
    driver.abort();
    drop(client);
    true
}

/// What a payload names. One we cannot read still means something changed.
fn parse(payload: &str) -> Revocation {
    if let Some(id) = payload.strip_prefix("agent:") {
        return Revocation::Agent(id.into());
    }
    if let Some(id) = payload.strip_prefix("team:") {
        return Revocation::Team(id.into());
    }
    if let Some(hash) = payload.strip_prefix("issued:") {
        return KeyHash::from_hex(hash).map_or(Revocation::All, Revocation::Issued);
    }
    KeyHash::from_hex(payload).map_or(Revocation::All, Revocation::Key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip() {
        let hash = KeyHash([0xab; 32]);
        assert_eq!(KeyHash::from_hex(&hash.to_hex()), Some(hash));
        assert_eq!(KeyHash::from_hex("zz"), None);
        assert_eq!(KeyHash::from_hex(&"g".repeat(64)), None);
        assert_eq!(parse(&hash.to_hex()), Revocation::Key(hash));
        assert_eq!(parse("agent:support"), Revocation::Agent("support".into()));
        assert_eq!(parse("team:desk"), Revocation::Team("desk".into()));
        assert_eq!(parse(&format!("issued:{}", hash.to_hex())), Revocation::Issued(hash));
        assert_eq!(parse("issued:zz"), Revocation::All);
        assert_eq!(parse("garbage"), Revocation::All);
    }
}
