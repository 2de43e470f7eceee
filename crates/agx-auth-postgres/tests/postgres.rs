//! Against a real PostgreSQL (skipped with a notice when there is none, unless
//! `AGX_REQUIRE_SERVICES=1`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use agx_auth::{
    AgentRecord, Authenticator, Directory, DirectoryAdmin, KeySpec, KeyStore, Lookup, Outcome, Revocation,
    RevocationSink,
};
use agx_auth_moka::{CacheSettings, CachedStore};
use agx_auth_postgres::listener;
use agx_auth_postgres::testing::fresh_database;
use agx_auth_postgres::{PgError, PgSettings, PgStore, UsageWriter};
use http::{HeaderMap, HeaderValue, Method};

const CONFIG: &str = "/api/public/agents/agent_1";

async fn seeded(url: &str, settings: PgSettings) -> Arc<PgStore> {
    let store = Arc::new(PgStore::connect(url, settings).await.expect("connect"));
    store.put_org("org_1", "Acme").await.unwrap();
    store.put_agent(AgentRecord::new("agent_1", "org_1", "Support")).await.unwrap();
    store
}

fn auth_over<S: KeyStore + agx_auth::Directory>(store: Arc<S>) -> Authenticator {
    Authenticator::builder(store.clone(), store).build()
}

fn bearer(key: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("authorization", HeaderValue::try_from(format!("Bearer {key}")).unwrap());
    h
}

async fn status(auth: &Authenticator, key: &str) -> u16 {
    match auth.authenticate(&Method::GET, CONFIG, &bearer(key)).await {
        Outcome::Allow(_) => 200,
        Outcome::Deny(r) => r.response().status().as_u16(),
        Outcome::PassThrough => 0,
    }
}

#[tokio::test]
async fn keys_persist_across_store_instances() {
    let Some(url) = fresh_database("keys_persist_across_store_instances").await else { return };
    let first = seeded(&url, PgSettings::default()).await;
    let (key, record) = auth_over(first.clone())
        .issue_key(KeySpec::new("org_1", "persisted").scopes([agx_auth::Scope::CONFIG]))
        .await
        .unwrap();
    drop(first);

    let second = Arc::new(PgStore::connect(&url, PgSettings::default()).await.unwrap());
    let found = second.find(&record.hash).await.unwrap().expect("found by hash");
    assert_eq!(found.id, record.id);
    assert_eq!(found.scopes, record.scopes);
    assert_eq!(found.prefix, key.display_prefix());
    assert_eq!(second.list("org_1").await.unwrap().len(), 1);
    assert_eq!(status(&auth_over(second.clone()), key.expose_secret()).await, 200);

    // Only the hash is stored: the plaintext appears in no column.
    let client = second.pool().get().await.unwrap();
    let row = client.query_one("SELECT row_to_json(k)::text FROM api_keys k", &[]).await.unwrap();
    let text: String = row.get(0);
    assert!(!text.contains(key.expose_secret()));
}

#[tokio::test]
async fn deleted_keys_are_kept_and_never_verify() {
    let Some(url) = fresh_database("deleted_keys_are_kept_and_never_verify").await else { return };
    let store = seeded(&url, PgSettings::default()).await;
    let auth = auth_over(store.clone());
    let (key, record) = auth.issue_key(KeySpec::new("org_1", "doomed")).await.unwrap();
    assert!(auth.delete_key("org_1", record.id).await.unwrap());
    assert!(!auth.delete_key("org_1", record.id).await.unwrap(), "a second delete finds nothing");
    assert_eq!(status(&auth, key.expose_secret()).await, 401);
    let kept = store.find(&record.hash).await.unwrap().expect("kept for audit");
    assert!(kept.deleted_at.is_some());
    assert!(store.list("org_1").await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_first_requests_make_one_query() {
    let Some(url) = fresh_database("a_thousand_first_requests_make_one_query").await else { return };
    let pg = seeded(&url, PgSettings::default()).await;
    let (_, record) = auth_over(pg.clone()).issue_key(KeySpec::new("org_1", "hot")).await.unwrap();
    let finds = Arc::new(AtomicUsize::new(0));
    let counted = finds.clone();
    let counting = agx_testkit::AfterFind::new(pg, move || {
        counted.fetch_add(1, Ordering::SeqCst);
        async {}
    });
    let cached = Arc::new(CachedStore::new(Arc::new(counting), CacheSettings::default()));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..1000 {
        let cached = cached.clone();
        let hash = record.hash;
        tasks.spawn(async move { cached.find(&hash).await.map(|r| r.map(|r| r.id)) });
    }
    while let Some(found) = tasks.join_next().await {
        assert_eq!(found.unwrap().unwrap(), Some(record.id));
    }
    let queries = finds.load(Ordering::SeqCst);
    println!("1000 simultaneous first lookups of one key: {queries} store query");
    assert_eq!(queries, 1);
    assert_eq!(cached.stats().hits() + cached.stats().misses(), 1000);
}

struct Instance {
    auth: Authenticator,
    cache: Arc<CachedStore<PgStore>>,
    _listener: listener::ListenerHandle,
    revocations: Arc<AtomicUsize>,
}

/// Passes revocations on to the cache, counting them.
struct Counted<S> {
    cache: Arc<S>,
    count: Arc<AtomicUsize>,
}

impl<S: RevocationSink> RevocationSink for Counted<S> {
    fn revoke(&self, r: Revocation) -> Lookup<'_, ()> {
        self.count.fetch_add(1, Ordering::SeqCst);
        self.cache.revoke(r)
    }
}

fn instance(url: &str, pg: Arc<PgStore>) -> Instance {
    let cached = Arc::new(CachedStore::new(pg, CacheSettings::default()));
    let revocations = Arc::new(AtomicUsize::new(0));
    let sink = Arc::new(Counted { cache: cached.clone(), count: revocations.clone() });
    let handle = listener::spawn(url.to_owned(), sink);
    let auth = Authenticator::builder(cached.clone(), cached.clone()).build();
    Instance { auth, cache: cached, _listener: handle, revocations }
}

/// Waits until `key` is refused on `on`, returning how long that took.
async fn time_until_refused(on: &Authenticator, key: &str, limit: Duration) -> Option<Duration> {
    time_until(on, key, 401, limit).await
}

/// Waits until `key` gets `expected` on `on`, returning how long that took.
async fn time_until(on: &Authenticator, key: &str, expected: u16, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if status(on, key).await == expected {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    None
}

async fn wait_listening(i: &Instance) {
    let started = Instant::now();
    while i.revocations.load(Ordering::SeqCst) == 0 {
        assert!(started.elapsed() < Duration::from_secs(5), "the listener never connected");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_on_one_instance_reaches_the_other_within_a_second() {
    let Some(url) = fresh_database("a_delete_on_one_instance_reaches_the_other").await else { return };
    let a = instance(&url, seeded(&url, PgSettings::default()).await);
    let b = instance(&url, Arc::new(PgStore::connect(&url, PgSettings::default()).await.unwrap()));
    wait_listening(&b).await;
    let (key, record) = a.auth.issue_key(KeySpec::new("org_1", "shared")).await.unwrap();
    // Created on A, works on B at once (B had never seen the hash).
    assert_eq!(status(&b.auth, key.expose_secret()).await, 200);
    assert_eq!(status(&b.auth, key.expose_secret()).await, 200, "now cached on B");

    let deleted_at = Instant::now();
    assert!(a.auth.delete_key("org_1", record.id).await.unwrap());
    assert_eq!(status(&a.auth, key.expose_secret()).await, 401, "at once on A");
    let latency = time_until_refused(&b.auth, key.expose_secret(), Duration::from_secs(1))
        .await
        .expect("B still accepts the deleted key after 1 s");
    println!("revocation latency A -> B: {:?} (delete call included: {:?})", latency, deleted_at.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_or_team_written_on_one_instance_reaches_the_other_within_a_second() {
    let Some(url) = fresh_database("an_agent_written_on_one_instance").await else { return };
    let pg_a = seeded(&url, PgSettings::default()).await;
    let a = instance(&url, pg_a.clone());
    let b = instance(&url, Arc::new(PgStore::connect(&url, PgSettings::default()).await.unwrap()));
    wait_listening(&b).await;
    let (key, _) = a.auth.issue_key(KeySpec::new("org_1", "shared")).await.unwrap();
    assert_eq!(status(&b.auth, key.expose_secret()).await, 200, "B has the agent cached now");

    let written = Instant::now();
    pg_a.put_agent(AgentRecord { active: false, ..AgentRecord::new("agent_1", "org_1", "Support") }).await.unwrap();
    let latency = time_until(&b.auth, key.expose_secret(), 403, Duration::from_secs(1))
        .await
        .expect("B still serves the deactivated agent after 1 s (its cache TTL is 30 s)");
    println!("agent change A -> B: {latency:?} (write included: {:?})", written.elapsed());

    // A team: B caches it, then A moves it to another agent list.
    pg_a.put_agent(AgentRecord::new("agent_2", "org_1", "Sales")).await.unwrap();
    let team = |agents: &[&str]| agx_auth::TeamRecord {
        id: "team_1".into(),
        org: "org_1".into(),
        name: "Team".into(),
        agent_ids: agents.iter().map(|&s| s.into()).collect(),
    };
    pg_a.put_team(team(&["agent_2"])).await.unwrap();
    let cached = b.cache.team("team_1").await.unwrap().unwrap();
    assert_eq!(cached.agent_ids, ["agent_2"]);
    pg_a.put_team(team(&["agent_1", "agent_2"])).await.unwrap();
    let started = Instant::now();
    while b.cache.team("team_1").await.unwrap().unwrap().agent_ids.len() != 2 {
        assert!(started.elapsed() < Duration::from_secs(1), "B still has the old team after 1 s");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    println!("team change A -> B: {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listener_survives_a_killed_connection() {
    let Some(url) = fresh_database("the_listener_survives_a_killed_connection").await else { return };
    let a = instance(&url, seeded(&url, PgSettings::default()).await);
    let b = instance(&url, Arc::new(PgStore::connect(&url, PgSettings::default()).await.unwrap()));
    wait_listening(&b).await;
    let (key, record) = a.auth.issue_key(KeySpec::new("org_1", "survivor")).await.unwrap();
    assert_eq!(status(&b.auth, key.expose_secret()).await, 200);

    let before = b.revocations.load(Ordering::SeqCst);
    let db = url.rsplit('/').next().unwrap().to_owned();
    let client = a_client(&url).await;
    let killed: i64 = client
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = $1 AND query LIKE 'LISTEN%'",
            &[&db],
        )
        .await
        .unwrap()
        .get(0);
    assert!(killed >= 2, "both listeners' connections were killed ({killed})");
    // After reconnecting, B reports `All` (it may have missed notifications).
    let started = Instant::now();
    while b.revocations.load(Ordering::SeqCst) == before {
        assert!(started.elapsed() < Duration::from_secs(5), "B's listener did not come back");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    println!("listener back after {:?}", started.elapsed());
    assert_eq!(status(&b.auth, key.expose_secret()).await, 200, "cache refilled after the reconnect");
    assert!(a.auth.delete_key("org_1", record.id).await.unwrap());
    let latency = time_until_refused(&b.auth, key.expose_secret(), Duration::from_secs(1))
        .await
        .expect("B missed the revocation after its listener reconnected");
    println!("revocation latency after reconnect: {latency:?}");
}

/// Revocations a listener reported, and when.
#[derive(Default)]
struct Recorded(std::sync::Mutex<Vec<(Instant, Revocation)>>);

impl RevocationSink for Recorded {
    fn revoke(&self, r: Revocation) -> Lookup<'_, ()> {
        self.0.lock().unwrap().push((Instant::now(), r));
        Lookup::ready(())
    }
}

impl Recorded {
    fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    /// Waits until more than `n` revocations are recorded; returns the newest.
    async fn after(&self, n: usize, limit: Duration) -> Option<(Instant, Revocation)> {
        let started = Instant::now();
        while started.elapsed() < limit {
            if let Some(newest) = self.0.lock().unwrap().get(n).cloned() {
                return Some(newest);
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        None
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_listener_connection_is_noticed_by_its_heartbeat() {
    let Some(url) = fresh_database("a_silent_listener_connection_is_noticed").await else { return };
    let pg = seeded(&url, PgSettings::default()).await;
    let (proxy, proxied) = behind_proxy(&url).await;
    let settings =
        listener::ListenerSettings { heartbeat: Duration::from_millis(200), timeout: Duration::from_millis(200) };
    let sink = Arc::new(Recorded::default());
    let _listener = listener::spawn_with(proxied, sink.clone(), settings);
    assert_eq!(sink.after(0, Duration::from_secs(5)).await.map(|(_, r)| r), Some(Revocation::All), "connected");
    let auth = auth_over(pg.clone());

    // The listener's connection goes silent for good (no FIN, no RST: a
    // dropped NAT entry), while new connections work; a delete's NOTIFY is
    // then lost on it.
    let heard = sink.len();
    let stranded_at = Instant::now();
    proxy.strand().await;
    let (_, lost) = auth.issue_key(KeySpec::new("org_1", "lost")).await.unwrap();
    assert!(auth.delete_key("org_1", lost.id).await.unwrap());
    // The heartbeat notices, the listener reconnects, and reports `All`: the
    // lost revocation is made up for.
    let (noticed_at, what) = sink.after(heard, Duration::from_secs(3)).await.expect("the silence was never noticed");
    assert_eq!(what, Revocation::All, "a reconnect forgets everything");
    let noticed = noticed_at - stranded_at;
    println!("silent listener connection replaced after {noticed:?} (heartbeat 200 ms + timeout 200 ms)");
    assert!(noticed <= Duration::from_millis(1500), "{noticed:?}");

    // On the new connection, a key's issue and its delete are heard again.
    let before = sink.len();
    let (_, record) = auth.issue_key(KeySpec::new("org_1", "heard")).await.unwrap();
    let (_, issued) = sink.after(before, Duration::from_secs(1)).await.expect("the issue was not heard");
    assert_eq!(issued, Revocation::Issued(record.hash));
    let before = sink.len();
    assert!(auth.delete_key("org_1", record.id).await.unwrap());
    let (_, heard) = sink.after(before, Duration::from_secs(1)).await.expect("the delete was not heard");
    assert_eq!(heard, Revocation::Key(record.hash));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_listener_connection_keeps_the_caches_until_it_is_back() {
    let Some(url) = fresh_database("a_lost_listener_connection_keeps").await else { return };
    let (proxy, proxied) = behind_proxy(&url).await;
    let settings =
        listener::ListenerSettings { heartbeat: Duration::from_millis(100), timeout: Duration::from_millis(100) };
    let sink = Arc::new(Recorded::default());
    let _listener = listener::spawn_with(proxied, sink.clone(), settings);
    assert_eq!(sink.after(0, Duration::from_secs(5)).await.map(|(_, r)| r), Some(Revocation::All), "connected");
    // PostgreSQL out of reach: the caches are what serves now, so nothing
    // is dropped while the listener cannot reconnect.
    proxy.cut().await;
    assert!(sink.after(1, Duration::from_millis(800)).await.is_none(), "the caches were dropped during the outage");
    proxy.restore();
    let (_, what) = sink.after(1, Duration::from_secs(6)).await.expect("the listener did not reconnect");
    assert_eq!(what, Revocation::All, "the reconnect makes up for what was missed");
}

/// Pool settings that give up on a database out of reach after `timeout`.
fn quick_settings(timeout: Duration, max_size: usize) -> PgSettings {
    PgSettings { wait_timeout: timeout, create_timeout: timeout, recycle_timeout: timeout, max_size }
}

/// A proxy in front of the database at `url`, and the URL that reaches it
/// through the proxy.
async fn behind_proxy(url: &str) -> (agx_testkit::Proxy, String) {
    let (authority_start, rest) = url.split_once('@').unwrap();
    let (authority, db_path) = rest.split_once('/').unwrap();
    let proxy = agx_testkit::Proxy::start(authority.to_owned()).await;
    let proxied = format!("{authority_start}@127.0.0.1:{}/{db_path}", proxy.port);
    (proxy, proxied)
}

async fn a_client(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    client
}

#[tokio::test]
async fn an_unreachable_database_is_a_clear_error_without_the_password() {
    let err = PgStore::connect(
        "postgres://agx:hunter2@127.0.0.1:1/agx",
        PgSettings { create_timeout: Duration::from_millis(500), ..PgSettings::default() },
    )
    .await
    .expect_err("nothing listens on port 1");
    let text = err.to_string();
    assert!(matches!(err, PgError::Unreachable { .. }), "{text}");
    assert!(text.contains("postgres://agx:***@127.0.0.1:1/agx"), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fails_closed_while_the_database_is_down_and_recovers_on_its_own() {
    let Some(url) = fresh_database("fails_closed_while_the_database_is_down").await else { return };
    seeded(&url, PgSettings::default()).await;
    // The store reaches PostgreSQL only through a proxy the test can cut.
    let (proxy, proxied) = behind_proxy(&url).await;
    let quick = quick_settings(Duration::from_millis(300), 4);
    let pg = Arc::new(PgStore::connect(&proxied, quick).await.unwrap());
    let cached = Arc::new(CachedStore::new(pg, CacheSettings::default()));
    let auth = Authenticator::builder(cached.clone(), cached).build();
    let (warm, _) = auth.issue_key(KeySpec::new("org_1", "warm")).await.unwrap();
    let (cold, _) = auth.issue_key(KeySpec::new("org_1", "cold")).await.unwrap();
    assert_eq!(status(&auth, warm.expose_secret()).await, 200, "warm key now cached, agent too");

    proxy.cut().await;
    let started = Instant::now();
    let outcome = auth.authenticate(&Method::GET, CONFIG, &bearer(cold.expose_secret())).await;
    let Outcome::Deny(rejection) = outcome else { panic!("an unverified key got {outcome:?}") };
    assert_eq!(rejection.response().status().as_u16(), 503);
    assert_eq!(rejection.error().code(), "AUTH_UNAVAILABLE");
    assert!(rejection.response().headers().contains_key("retry-after"));
    println!("503 for an uncached key after {:?} with the database down", started.elapsed());
    assert_eq!(status(&auth, warm.expose_secret()).await, 200, "cached keys keep working until their TTL");
    for _ in 0..5 {
        assert_eq!(status(&auth, cold.expose_secret()).await, 503, "never a 200 for an unverified key");
    }

    proxy.restore();
    let started = Instant::now();
    loop {
        match status(&auth, cold.expose_secret()).await {
            200 => break,
            503 => {}
            other => panic!("unexpected {other} while recovering"),
        }
        assert!(started.elapsed() < Duration::from_secs(10), "did not recover within 10 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!("recovered {:?} after the database came back", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_is_counted_in_memory_and_flushed_in_batches() {
    let Some(url) = fresh_database("usage_is_counted_in_memory_and_flushed_in_batches").await else { return };
    let pg = seeded(&url, PgSettings::default()).await;
    let (counter, auth, key, record) = counted_key(&pg, "busy").await;
    let writer = Arc::new(UsageWriter::new(PgStore::clone(&pg), counter));
    let flusher = agx_auth_postgres::UsageFlusher::spawn(writer, Duration::from_secs(3600));
    for _ in 0..7 {
        assert_eq!(status(&auth, key.expose_secret()).await, 200);
    }
    let client = a_client(&url).await;
    let before: i64 = client.query_one("SELECT count(*) FROM key_usage", &[]).await.unwrap().get(0);
    assert_eq!(before, 0, "no write per request");
    flusher.shutdown().await;
    let row = client
        .query_one(
            "SELECT u.class, u.requests, k.last_used_at IS NOT NULL FROM key_usage u JOIN api_keys k ON k.id = u.key_id \
             WHERE u.key_id = $1",
            &[&record.id.to_string()],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "config");
    assert_eq!(row.get::<_, i64>(1), 7);
    assert!(row.get::<_, bool>(2), "last_used_at set");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_of_a_known_key_are_counted_apart() {
    let Some(url) = fresh_database("refusals_of_a_known_key_are_counted_apart").await else { return };
    let pg = seeded(&url, PgSettings::default()).await;
    pg.put_org("org_2", "Other").await.unwrap();
    pg.put_agent(AgentRecord::new("agent_2", "org_2", "Theirs")).await.unwrap();
    let counter = Arc::new(agx_auth::UsageCounter::new());
    let limits = agx_auth::RateLimits::default()
        .with(agx_auth::EndpointClass::CONFIG, agx_auth::Quota::try_per_minute(2).unwrap());
    let auth = Authenticator::builder(pg.clone(), pg.clone()).usage(counter.clone()).rate_limits(limits).build();
    let (key, record) = auth.issue_key(KeySpec::new("org_1", "refused")).await.unwrap();
    let headers = bearer(key.expose_secret());
    let statuses = [
        status(&auth, key.expose_secret()).await,
        status(&auth, key.expose_secret()).await,
        status(&auth, key.expose_secret()).await,
        match auth.authenticate(&Method::GET, "/api/public/agents/agent_2", &headers).await {
            Outcome::Deny(r) => r.response().status().as_u16(),
            _ => 0,
        },
    ];
    assert_eq!(statuses, [200, 200, 429, 403]);
    // A junk key names no key: nothing is counted for it.
    assert_eq!(status(&auth, "agx_live_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").await, 401);
    let writer = UsageWriter::new(PgStore::clone(&pg), counter);
    writer.flush().await.unwrap();
    let report = pg.usage_of(record.id).await.unwrap();
    assert_eq!(report.days.len(), 1, "{report:?}");
    let tally = report.days[0].tally;
    assert_eq!((report.days[0].class.as_str(), tally.admitted, tally.rate_limited, tally.refused), ("config", 2, 1, 1));
    assert!(report.last_used.is_some());
}

/// An authenticator over `pg` that counts usage, and a key of org_1.
async fn counted_key(
    pg: &Arc<PgStore>,
    name: &str,
) -> (Arc<agx_auth::UsageCounter>, Authenticator, agx_auth::ApiKey, Arc<agx_auth::KeyRecord>) {
    let counter = Arc::new(agx_auth::UsageCounter::new());
    let auth = Authenticator::builder(pg.clone(), pg.clone()).usage(counter.clone()).build();
    let (key, record) = auth.issue_key(KeySpec::new("org_1", name)).await.unwrap();
    (counter, auth, key, record)
}

async fn config_count(client: &tokio_postgres::Client, key: agx_auth::KeyId) -> i64 {
    let row = client
        .query_opt("SELECT requests FROM key_usage WHERE key_id = $1 AND class = 'config'", &[&key.to_string()])
        .await
        .unwrap();
    row.map_or(0, |r| r.get(0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_is_added_once_whatever_the_retries() {
    let Some(url) = fresh_database("a_batch_is_added_once").await else { return };
    let pg = seeded(&url, PgSettings::default()).await;
    let (counter, auth, key, record) = counted_key(&pg, "counted").await;
    for _ in 0..4 {
        assert_eq!(status(&auth, key.expose_secret()).await, 200);
    }
    let batch = counter.drain();
    assert!(pg.flush_usage_once("batch-1", &batch).await.unwrap(), "added the first time");
    assert!(!pg.flush_usage_once("batch-1", &batch).await.unwrap(), "the same id again adds nothing");
    assert_eq!(config_count(&a_client(&url).await, record.id).await, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flush_whose_reply_is_lost_is_not_counted_twice() {
    let Some(url) = fresh_database("a_flush_whose_reply_is_lost").await else { return };
    let seeded_pg = seeded(&url, PgSettings::default()).await;
    let (proxy, proxied) = behind_proxy(&url).await;
    let quick = quick_settings(Duration::from_millis(500), 1);
    let pg = Arc::new(PgStore::connect(&proxied, quick).await.unwrap());
    let (counter, auth, key, record) = counted_key(&seeded_pg, "counted").await;
    let writer = UsageWriter::with_timeout(PgStore::clone(&pg), counter.clone(), Duration::from_millis(300));
    let direct = a_client(&url).await;
    let requests = |n: usize| {
        let (auth, key) = (&auth, key.expose_secret());
        async move {
            for _ in 0..n {
                assert_eq!(status(auth, key).await, 200);
            }
        }
    };
    // A first flush prepares the statement on the pool's one connection, so
    // that the next one is a single message PostgreSQL runs on arrival.
    requests(3).await;
    writer.flush().await.unwrap();
    assert_eq!(config_count(&direct, record.id).await, 3);

    // The statement reaches PostgreSQL and commits; its reply never comes.
    requests(5).await;
    proxy.hold_replies();
    assert!(writer.flush().await.is_err(), "a flush without a reply is not confirmed");
    let started = Instant::now();
    while config_count(&direct, record.id).await != 8 {
        assert!(started.elapsed() < Duration::from_secs(5), "the held flush never committed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Two more requests; then the connection is back, and the writer
    // retries the unsure batch under its id before adding the new one.
    requests(2).await;
    proxy.cut().await;
    proxy.restore();
    proxy.resume();
    let started = Instant::now();
    while writer.flush().await.is_err() {
        assert!(started.elapsed() < Duration::from_secs(10), "the writer did not recover");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(config_count(&direct, record.id).await, 10, "3, then the lost reply's 5 once, then 2");
}

#[tokio::test]
async fn audit_log_pages_per_org_and_keeps_what_was_written() {
    use agx_auth::{Actor, AuditAction, AuditEntry, AuditLog, AuditPage};
    let Some(url) = fresh_database("audit_log_pages_per_org").await else { return };
    let store = seeded(&url, PgSettings::default()).await;
    store.put_org("org_2", "Other").await.unwrap();
    let at = std::time::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let actors = [Actor::AdminToken, Actor::DashboardToken("dt_1".into()), Actor::Cli, Actor::SecretScanning];
    for i in 0..8 {
        let org = if i % 2 == 0 { "org_1" } else { "org_2" };
        // Text PostgreSQL keeps as given, quotes and all.
        let entry = AuditEntry::new(org, AuditAction::ALL[i % AuditAction::ALL.len()], format!("t{i}"))
            .change("name", format!("it's \"{i}\" ☃"))
            .change("scopes", "chat config");
        store.record(at, &actors[i % 4], entry).await.unwrap();
    }
    let first = store.events("org_1", AuditPage { before: None, limit: 3 }).await.unwrap();
    let targets: Vec<_> = first.iter().map(|e| e.entry.target.as_str()).collect();
    assert_eq!(targets, ["t6", "t4", "t2"]);
    assert_eq!(first[0].actor, Actor::Cli);
    assert_eq!(first[0].at, at);
    assert_eq!(first[0].entry.action, AuditAction::ALL[6]);
    assert_eq!(first[0].entry.changes[0].1, "it's \"6\" ☃");
    assert_eq!(first[0].entry.changes[1].0, "scopes");
    assert!(first.windows(2).all(|w| w[0].seq > w[1].seq));
    // A later event does not shift the next page.
    store.record(at, &Actor::AdminToken, AuditEntry::new("org_1", AuditAction::KeyDeleted, "t9")).await.unwrap();
    let next = store.events("org_1", AuditPage { before: Some(first[2].seq), limit: 3 }).await.unwrap();
    assert_eq!(next.iter().map(|e| e.entry.target.as_str()).collect::<Vec<_>>(), ["t0"]);
    assert_eq!(next[0].actor, Actor::AdminToken);
    let other = store.events("org_2", AuditPage { before: Some(u64::MAX), limit: 100 }).await.unwrap();
    assert_eq!(other.len(), 4);
    assert_eq!(other[3].actor, Actor::DashboardToken("dt_1".into()));
    // An event of an org that does not exist is refused, not kept.
    let orphan = AuditEntry::new("org_9", AuditAction::KeyCreated, "t");
    assert!(matches!(store.record(at, &Actor::Cli, orphan).await, Err(agx_auth::StoreError::NotFound(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credits_and_limits_persist_and_an_update_reaches_the_other_instance_within_a_second() {
    use agx_auth::{Credits, KeyChange, Refill};
    let Some(url) = fresh_database("credits_and_limits_persist").await else { return };
    let a = instance(&url, seeded(&url, PgSettings::default()).await);
    let b = instance(&url, Arc::new(PgStore::connect(&url, PgSettings::default()).await.unwrap()));
    wait_listening(&b).await;
    let credits = Credits { initial: 5, refill: Some(Refill { amount: 2, interval: Duration::from_secs(3600) }) };
    let (key, record) = a.auth.issue_key(KeySpec::new("org_1", "metered").credits(credits)).await.unwrap();
    let stored = PgStore::connect(&url, PgSettings::default()).await.unwrap();
    let read = stored.get("org_1", record.id).await.unwrap().unwrap();
    assert_eq!(read.credits, record.credits, "the account reads back whole, to the millisecond");
    assert_eq!(status(&b.auth, key.expose_secret()).await, 200, "now cached on B");

    // A roll passes the account on.
    let (_, rolled) = a.auth.roll_key("org_1", record.id, Duration::from_secs(60)).await.unwrap().unwrap();
    let read = stored.get("org_1", rolled.id).await.unwrap().unwrap();
    assert_eq!(read.credits.map(|c| c.pool), Some(record.id));

    // Limiting the key to a network no test connects from, on A, refuses it on B.
    let net: agx_auth::IpNet = "203.0.113.0/24".parse().unwrap();
    let change = KeyChange::default().allowed_networks([net]).credits(None);
    let updated = a.auth.update_key("org_1", record.id, change).await.unwrap().unwrap().after;
    assert_eq!((updated.allowed_networks.as_slice(), updated.credits), ([net].as_slice(), None));
    let latency = time_until(&b.auth, key.expose_secret(), 403, Duration::from_secs(1))
        .await
        .expect("B still admits the key from anywhere after 1 s");
    println!("limit change latency A -> B: {latency:?}");
    let read = stored.get("org_1", record.id).await.unwrap().unwrap();
    assert_eq!((read.allowed_networks.as_slice(), read.credits), ([net].as_slice(), None));
    assert!(a.auth.update_key("org_2", record.id, KeyChange::default()).await.unwrap().is_none(), "another org's");
}

#[tokio::test]
async fn directory_writes_say_whether_they_created_or_updated() {
    use agx_auth::{TeamRecord, Written};
    let Some(url) = fresh_database("directory_writes_say_created_or_updated").await else { return };
    let store = PgStore::connect(&url, PgSettings::default()).await.unwrap();
    assert_eq!(store.put_org("o", "One").await.unwrap(), Written::Created);
    assert_eq!(store.put_org("o", "Renamed").await.unwrap(), Written::Updated);
    let agent = AgentRecord::new("a", "o", "Agent");
    assert_eq!(store.put_agent(agent.clone()).await.unwrap(), Written::Created);
    assert_eq!(store.put_agent(AgentRecord { active: false, ..agent }).await.unwrap(), Written::Updated);
    let team = TeamRecord { id: "t".into(), org: "o".into(), name: "T".into(), agent_ids: vec!["a".into()] };
    assert_eq!(store.put_team(team.clone()).await.unwrap(), Written::Created);
    assert_eq!(store.put_team(TeamRecord { name: "T2".into(), ..team }).await.unwrap(), Written::Updated);
    // Another org's id is still refused, not reported as an update.
    store.put_org("p", "Two").await.unwrap();
    assert!(store.put_agent(AgentRecord::new("a", "p", "Taken")).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_changes_of_different_limits_both_hold_and_credits_follow_a_roll() {
    use agx_auth::{Credits, KeyChange};
    let Some(url) = fresh_database("concurrent_key_changes").await else { return };
    let a = auth_over(seeded(&url, PgSettings::default()).await);
    let b = auth_over(Arc::new(PgStore::connect(&url, PgSettings::default()).await.unwrap()));
    let net: agx_auth::IpNet = "203.0.113.0/24".parse().unwrap();
    // Two instances change two limits of one key at once, thirty times: each
    // change is made to what is stored, so neither undoes the other.
    for i in 0..30 {
        let (_, record) = a.issue_key(KeySpec::new("org_1", format!("k{i}"))).await.unwrap();
        let networks = KeyChange::default().allowed_networks([net]);
        let credits = KeyChange::default().credits(Some(Credits { initial: 5, refill: None }));
        let (one, two) =
            tokio::join!(a.update_key("org_1", record.id, networks), b.update_key("org_1", record.id, credits));
        assert!(one.unwrap().is_some() && two.unwrap().is_some());
        let now = a.store().get("org_1", record.id).await.unwrap().unwrap();
        assert_eq!(now.allowed_networks, [net], "run {i}: the network change was lost");
        assert_eq!(now.credits.map(|c| c.credits.initial), Some(5), "run {i}: the credits change was lost");
    }
    // Credits given again to one half of a roll are the other half's too.
    let (old_key, old) =
        a.issue_key(KeySpec::new("org_1", "rolled").credits(Credits { initial: 2, refill: None })).await.unwrap();
    assert_eq!(status(&a, old_key.expose_secret()).await, 200);
    let (new_key, new) = a.roll_key("org_1", old.id, Duration::from_secs(3600)).await.unwrap().unwrap();
    let update = a
        .update_key("org_1", new.id, KeyChange::default().credits(Some(Credits { initial: 2, refill: None })))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(update.lineage.iter().map(|(_, r)| r.id).collect::<Vec<_>>(), [old.id]);
    let statuses = [
        status(&a, old_key.expose_secret()).await,
        status(&a, new_key.expose_secret()).await,
        status(&a, old_key.expose_secret()).await,
        status(&a, new_key.expose_secret()).await,
    ];
    assert_eq!(statuses, [200, 200, 403, 403], "two credits between the two halves, not two each");

    // A roll racing a change of the key's limits: whichever comes first,
    // the new key has the change, and shares the credits.
    for i in 0..30 {
        let (_, record) = a
            .issue_key(KeySpec::new("org_1", format!("r{i}")).credits(Credits { initial: 5, refill: None }))
            .await
            .unwrap();
        let change = KeyChange::default().allowed_networks([net]).credits(Some(Credits { initial: 7, refill: None }));
        let (rolled, changed) = tokio::join!(
            a.roll_key("org_1", record.id, Duration::from_secs(60)),
            b.update_key("org_1", record.id, change)
        );
        let (_, new) = rolled.unwrap().unwrap();
        changed.unwrap().unwrap();
        let (old, new) = (
            a.store().get("org_1", record.id).await.unwrap().unwrap(),
            a.store().get("org_1", new.id).await.unwrap().unwrap(),
        );
        assert_eq!(new.allowed_networks, [net], "run {i}: the rolled key lost the network change");
        assert_eq!(new.credits, old.credits, "run {i}: the halves do not share one account");
        assert_eq!(new.credits.map(|c| c.credits.initial), Some(7), "run {i}");
    }
}
