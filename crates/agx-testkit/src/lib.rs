//! Shared by the tests of the PostgreSQL store, the Redis limiter, the
//! conformance runner and the reference server.
//!
//! - [`service`]: the one rule for a missing PostgreSQL or Redis. Tests skip
//!   with a printed notice, so a newcomer's `cargo test` passes, unless
//!   `AGX_REQUIRE_SERVICES=1` is set (as CI sets it), where absence fails.
//! - [`Proxy`]: a TCP proxy in front of a service, which a test cuts to
//!   prove that a component fails closed (or falls back) and recovers on its
//!   own, or stalls to prove that a silent connection is noticed.
//! - [`AfterFind`]: a key store that runs a test's hook after each lookup
//!   by hash (to count lookups, or to hold one while the test races it).
//! - [`RedisCluster`]: a real Redis Cluster on loopback ports, whose
//!   primaries a test can kill and restart.

mod redis_cluster;

pub use redis_cluster::{NODE_TIMEOUT, RedisCluster};

use std::fmt::Display;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::SystemTime;

use agx_auth::{KeyChange, KeyHash, KeyHashes, KeyId, KeyRecord, KeyStore, KeyUpdate, Lookup, StoreError};
use async_trait::async_trait;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

/// Whether a missing service must fail the run.
pub fn services_required() -> bool {
    std::env::var("AGX_REQUIRE_SERVICES").is_ok_and(|v| v == "1")
}

/// The outcome of reaching a service a test needs: `Some(value)` when it
/// answered; `None`, after printing why, when it is absent and not required.
///
/// # Panics
///
/// When the service is absent and `AGX_REQUIRE_SERVICES=1`: in tests, a
/// panic is the failure.
pub fn service<T, E: Display>(service: &str, at: &str, label: &str, reached: Result<T, E>) -> Option<T> {
    match reached {
        Ok(value) => Some(value),
        Err(e) if services_required() => {
            panic!("{service} is required (AGX_REQUIRE_SERVICES=1) but {at} is unreachable: {e}")
        }
        Err(e) => {
            eprintln!("skipping {label}: {service} at {at} is unreachable ({e})");
            None
        }
    }
}

/// A TCP proxy on an ephemeral local port in front of `upstream`.
pub struct Proxy {
    pub port: u16,
    up: Arc<AtomicBool>,
    stalled: Arc<AtomicBool>,
    replies_held: Arc<AtomicBool>,
    links: Arc<Mutex<Vec<Link>>>,
    accept: JoinHandle<()>,
}

/// One proxied connection, and whether it alone is stranded.
struct Link {
    task: JoinHandle<()>,
    stranded: Arc<AtomicBool>,
}

impl Proxy {
    /// # Panics
    ///
    /// When no local port can be bound: a test setup failure.
    pub async fn start(upstream: impl Into<String>) -> Proxy {
        let upstream = upstream.into();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a local port for the proxy");
        let port = listener.local_addr().expect("the proxy's port").port();
        let up = Arc::new(AtomicBool::new(true));
        let stalled = Arc::new(AtomicBool::new(false));
        let replies_held = Arc::new(AtomicBool::new(false));
        let links: Arc<Mutex<Vec<Link>>> = Arc::default();
        let (up2, stalled2, links2) = (up.clone(), stalled.clone(), links.clone());
        let replies2 = replies_held.clone();
        let accept = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                if !up2.load(Ordering::SeqCst) {
                    continue; // dropped at once: a refused connection, in effect
                }
                let stranded = Arc::new(AtomicBool::new(false));
                let requests_held = [stalled2.clone(), stranded.clone()];
                let replies_held = [stalled2.clone(), stranded.clone(), replies2.clone()];
                let upstream = upstream.clone();
                let task = tokio::spawn(async move {
                    if let Ok(outbound) = TcpStream::connect(upstream).await {
                        let (from_client, to_client) = inbound.into_split();
                        let (from_server, to_server) = outbound.into_split();
                        tokio::select! {
                            () = pump(from_client, to_server, &requests_held) => {}
                            () = pump(from_server, to_client, &replies_held) => {}
                        }
                    }
                });
                links2.lock().await.push(Link { task, stranded });
            }
        });
        Proxy { port, up, stalled, replies_held, links, accept }
    }

    /// `127.0.0.1:<port>`, for a URL.
    pub fn authority(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Cuts every open link and refuses new ones.
    pub async fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for link in self.links.lock().await.drain(..) {
            link.task.abort();
        }
    }

    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }

    /// Holds every byte, on open links and new ones, without closing
    /// anything: a peer that has silently gone away (a dropped NAT entry, a
    /// partition). Nothing tells either side until a timeout does.
    pub fn stall(&self) {
        self.stalled.store(true, Ordering::SeqCst);
    }

    /// Delivers what was held, and everything after it.
    pub fn resume(&self) {
        self.stalled.store(false, Ordering::SeqCst);
        self.replies_held.store(false, Ordering::SeqCst);
    }

    /// Lets requests through but holds the service's replies: a statement
    /// that runs, and commits, while its caller never hears so.
    pub fn hold_replies(&self) {
        self.replies_held.store(true, Ordering::SeqCst);
    }

    /// Holds every byte of the links open now, forever, without closing
    /// them; new links work. The service is back (at a new address, after a
    /// failover, say) but the old connections will never hear from it.
    pub async fn strand(&self) {
        for link in self.links.lock().await.iter() {
            link.stranded.store(true, Ordering::SeqCst);
        }
    }
}

/// Copies one direction, holding the bytes while any of `held` is set.
async fn pump(mut from: impl AsyncRead + Unpin, mut to: impl AsyncWrite + Unpin, held: &[Arc<AtomicBool>]) {
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        while held.iter().any(|flag| flag.load(Ordering::SeqCst)) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if to.write_all(&buffer[..n]).await.is_err() {
            return;
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

type Hook = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// A key store that hands every call to `inner`, and awaits `hook` after
/// each `find` has read its answer and before it returns it.
pub struct AfterFind<S> {
    inner: Arc<S>,
    hook: Hook,
}

impl<S> AfterFind<S> {
    pub fn new<F, Fut>(inner: Arc<S>, hook: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        AfterFind { inner, hook: Arc::new(move || Box::pin(hook())) }
    }
}

#[async_trait]
impl<S: KeyStore> KeyStore for AfterFind<S> {
    fn find<'a>(&'a self, hash: &'a KeyHash) -> Lookup<'a, Result<Option<Arc<KeyRecord>>, StoreError>> {
        Lookup::pending(async move {
            let read = self.inner.find(hash).await;
            (self.hook)().await;
            read
        })
    }
    async fn get(&self, org: &str, id: KeyId) -> Result<Option<Arc<KeyRecord>>, StoreError> {
        self.inner.get(org, id).await
    }
    async fn create(&self, record: KeyRecord) -> Result<Arc<KeyRecord>, StoreError> {
        self.inner.create(record).await
    }
    async fn list(&self, org: &str) -> Result<Vec<Arc<KeyRecord>>, StoreError> {
        self.inner.list(org).await
    }
    async fn update(
        &self,
        org: &str,
        id: KeyId,
        change: &KeyChange,
        at: SystemTime,
    ) -> Result<Option<KeyUpdate>, StoreError> {
        self.inner.update(org, id, change, at).await
    }
    async fn delete(&self, org: &str, id: KeyId, at: SystemTime) -> Result<bool, StoreError> {
        self.inner.delete(org, id, at).await
    }
    async fn roll(
        &self,
        org: &str,
        id: KeyId,
        replacement: KeyRecord,
        old_expires_at: SystemTime,
    ) -> Result<Option<Arc<KeyRecord>>, StoreError> {
        self.inner.roll(org, id, replacement, old_expires_at).await
    }
}

#[async_trait]
impl<S: KeyHashes> KeyHashes for AfterFind<S> {
    async fn live_hashes(&self) -> Result<Vec<KeyHash>, StoreError> {
        self.inner.live_hashes().await
    }
}
