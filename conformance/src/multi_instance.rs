//! The multi-instance proof: two reference servers on different ports,
//! sharing one PostgreSQL database and one Redis (or one Redis Cluster),
//! behave as one service.
//!
//! 1. 300 concurrent chat requests with one fresh key, alternating between
//!    the instances, admit exactly the burst of 60 (the rest get 429).
//! 2. A key created through instance A works on instance B at once.
//! 3. A key deleted through A is refused by B within 1 s (B had it cached;
//!    `LISTEN/NOTIFY` carries the revocation).
//! 4. An agent deactivated through A is refused by B within 1 s (B had it
//!    cached too).
//!
//! Every figure is measured in this run and printed.

use std::time::{Duration, Instant};

use agx_auth::AgentRecord;
use bytes::Bytes;
use http::{HeaderName, HeaderValue, StatusCode};

use crate::blackbox::{AdminApi, Backends, ServerProcess, launch};
use crate::client::Client;
use crate::fixtures::{Fixtures, KeyRequest};

/// One burst: concurrent chat requests with one fresh key, alternating
/// between two instances.
#[derive(Debug)]
pub struct Burst {
    pub requests: usize,
    /// 200s per instance, A then B.
    pub admitted: [usize; 2],
    pub limited: usize,
    /// Any other status: each one is a failure.
    pub other: Vec<StatusCode>,
    pub elapsed: Duration,
}

impl Burst {
    pub fn admitted(&self) -> usize {
        self.admitted[0] + self.admitted[1]
    }

    /// Requests the limit may admit beyond the burst of `quota`: one per
    /// interval (60 s / quota) that passed while the burst lasted.
    fn refill(&self, quota: usize) -> usize {
        (self.elapsed.as_secs_f64() * quota as f64 / 60.0).floor() as usize
    }

    /// Whether `quota` (plus the refill while the burst lasted) was admitted.
    fn admits(&self, quota: usize) -> bool {
        (quota..=quota + self.refill(quota)).contains(&self.admitted())
    }

    /// The counts, and the allowance they were judged by: `limits`
    /// independent limits of `quota` each (one shared limit, or one per
    /// instance without Redis).
    fn describe(&self, quota: usize, limits: usize) -> String {
        let refill = limits * self.refill(quota);
        let burst = if limits == 1 { "exactly the burst".to_owned() } else { format!("{limits} bursts of {quota}") };
        let allowance = if refill == 0 {
            burst
        } else {
            format!("{burst} plus a refill of up to {refill}, as the burst took over one interval")
        };
        format!(
            "{} × 200 (A {}, B {}), {} × 429, in {:.1} ms: {allowance}",
            self.admitted(),
            self.admitted[0],
            self.admitted[1],
            self.limited,
            self.elapsed.as_secs_f64() * 1e3
        )
    }
}

/// What the proof measured.
#[derive(Debug)]
pub struct Proof {
    pub burst: Burst,
    pub created_to_served: Duration,
    pub deleted_to_refused: Duration,
    pub deactivated_to_refused: Duration,
    /// The same burst on two instances without Redis, each with its own
    /// limit: it must admit twice the quota, or the burst check above could
    /// not tell one limit from two.
    pub control: Option<Burst>,
}

/// The chat quota of a key with default limits.
const QUOTA: usize = 60;

impl Proof {
    /// The acceptance rule. Exactly 60 is what GCRA promises while the burst
    /// lasts under one interval (1 s); if the machine was slower than that,
    /// the refill during the burst is allowed, and said.
    pub fn failures(&self) -> Vec<String> {
        let mut out = Vec::new();
        let burst = &self.burst;
        if !burst.admits(QUOTA) {
            out.push(format!(
                "{} admitted in {:?}, not {QUOTA} (+ refill {})",
                burst.admitted(),
                burst.elapsed,
                burst.refill(QUOTA)
            ));
        }
        if burst.admitted() + burst.limited != burst.requests || !burst.other.is_empty() {
            out.push(format!("statuses other than 200 and 429: {:?}", burst.other));
        }
        if burst.admitted.contains(&0) {
            out.push(format!("one instance admitted nothing ({:?}): the load was not spread", burst.admitted));
        }
        if self.deleted_to_refused > Duration::from_secs(1) {
            out.push(format!("the deletion took {:?} to reach instance B (bound: 1 s)", self.deleted_to_refused));
        }
        if self.deactivated_to_refused > Duration::from_secs(1) {
            let took = self.deactivated_to_refused;
            out.push(format!("the agent's deactivation took {took:?} to reach instance B (bound: 1 s)"));
        }
        match &self.control {
            None => out.push("the control run without Redis did not run".into()),
            Some(control) if !(control.admitted[0] >= QUOTA && control.admitted[1] >= QUOTA) => out.push(format!(
                "without Redis, each instance should admit its own {QUOTA}, but they admitted {:?}: \
                 the burst check cannot tell one limit from two",
                control.admitted
            )),
            Some(_) => {}
        }
        out
    }

    pub fn render(&self) -> String {
        let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1e3);
        let mut out = format!(
            "  {} concurrent chat requests, one fresh key, alternating A/B: {}\n  \
             key created on A: served by B {} after creation\n  \
             key deleted on A: refused (401) by B {} after the delete returned (bound 1 s)\n  \
             agent deactivated on A: refused (403 AGENT_INACTIVE) by B {} after the write returned (bound 1 s)\n",
            self.burst.requests,
            self.burst.describe(QUOTA, 1),
            ms(self.created_to_served),
            ms(self.deleted_to_refused),
            ms(self.deactivated_to_refused),
        );
        if let Some(control) = &self.control {
            out.push_str(&format!(
                "  control, two instances without Redis: {} (each its own limit, as expected)\n",
                control.describe(QUOTA, 2)
            ));
        }
        out
    }
}

/// Where the two servers keep their shared rate limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SharedRedis {
    /// The test Redis (`AGX_TEST_REDIS_URL`, or the local default).
    One,
    /// A Redis Cluster of three primaries started on loopback for the run.
    Cluster,
}

impl SharedRedis {
    pub fn describe(self) -> &'static str {
        match self {
            SharedRedis::One => "one Redis",
            SharedRedis::Cluster => "a Redis Cluster of three primaries",
        }
    }
}

/// Two servers on one database and one Redis (or one cluster).
pub struct Instances {
    pub servers: [(ServerProcess, AdminApi); 2],
    /// For the control run.
    pub database_url: String,
    /// Stopped when dropped, after the servers.
    _cluster: Option<agx_testkit::RedisCluster>,
}

/// Two servers on one database and `redis`; `None` when a service is
/// absent and not required (the notice is printed).
pub async fn start(path: &str, redis: SharedRedis) -> Result<Option<Instances>, String> {
    let Some(database_url) = agx_auth_postgres::testing::fresh_database("multi-instance").await else {
        return Ok(None);
    };
    let (redis_url, cluster, settings) = match redis {
        SharedRedis::One => {
            let Some(url) = agx_auth_redis::testing::reachable("multi-instance").await else { return Ok(None) };
            (url, None, Vec::new())
        }
        SharedRedis::Cluster => {
            let Some(cluster) = agx_auth_redis::testing::cluster("multi-instance on a cluster", 3, 0).await else {
                return Ok(None);
            };
            (cluster.urls().join(","), Some(cluster), vec![("AGX_REDIS_CLUSTER", "true".to_owned())])
        }
    };
    let backends = Backends { database_url: Some(database_url.clone()), redis_url: Some(redis_url), settings };
    let servers = [launch(path, "instance A", &backends).await?, launch(path, "instance B", &backends).await?];
    Ok(Some(Instances { servers, database_url, _cluster: cluster }))
}

/// The control: two servers on the same database without Redis, each
/// limiting on its own; one burst through them.
pub async fn control(path: &str, database_url: &str) -> Result<Burst, String> {
    let backends = Backends { database_url: Some(database_url.to_owned()), ..Backends::default() };
    let (_a, a) = launch(path, "control A", &backends).await?;
    let (_b, b) = launch(path, "control B", &backends).await?;
    let (agent, request) = fresh_agent_and_key(&a, "control").await?;
    let key = a.key(&request).await?;
    burst(&Client::new(), &a.base_url, &b.base_url, &agent, &key.key).await
}

/// An org and an agent made through `admin`, and a request for a chat key
/// of that org: (agent id, key request).
async fn fresh_agent_and_key(admin: &AdminApi, label: &str) -> Result<(String, KeyRequest), String> {
    let org = format!("org_mi_{label}_{}", crate::runner::run_namespace());
    admin.org(&org, "Multi-instance").await?;
    let agent = format!("{org}_agent");
    admin.agent(AgentRecord::new(agent.clone(), org.clone(), "Agent")).await?;
    let request = KeyRequest {
        org,
        name: label.to_owned(),
        scopes: vec!["chat".into(), "config".into()],
        test_mode: false,
        expires_in: None,
        rate_limits: Default::default(),
        allowed_networks: Vec::new(),
        credits: None,
    };
    Ok((agent, request))
}

/// 300 concurrent chat requests with `key`, alternating between the
/// instances at `a_url` and `b_url`.
async fn burst(client: &Client, a_url: &str, b_url: &str, agent: &str, key: &str) -> Result<Burst, String> {
    let requests = 300;
    let chat_path = format!("/api/public/agents/{agent}/chat");
    let body = Bytes::from_static(br#"{"message":"Hello","sessionId":"multi-instance"}"#);
    let headers = vec![bearer(key)?, json_content()];
    // Warm one connection per instance, so the burst measures the limiter rather than connection set-up.
    for base in [a_url, b_url] {
        client.send("GET", &format!("{base}/healthz"), &[], Bytes::new()).await?;
    }
    let started = Instant::now();
    let calls: Vec<_> = (0..requests)
        .map(|i| {
            let (client, headers, body) = (client.clone(), headers.clone(), body.clone());
            let url = format!("{}{chat_path}", if i % 2 == 0 { a_url } else { b_url });
            tokio::spawn(async move { (i % 2, client.send("POST", &url, &headers, body).await) })
        })
        .collect();
    let (mut admitted, mut limited, mut other) = ([0; 2], 0, Vec::new());
    for call in calls {
        let (instance, reply) = call.await.map_err(|e| e.to_string())?;
        match reply?.status {
            StatusCode::OK => admitted[instance] += 1,
            StatusCode::TOO_MANY_REQUESTS => limited += 1,
            status => other.push(status),
        }
    }
    Ok(Burst { requests, admitted, limited, other, elapsed: started.elapsed() })
}

/// Runs the three checks: keys are made and deleted through A's admin API.
/// The control run is the caller's to add.
pub async fn prove(admin: &AdminApi, b_url: &str) -> Result<Proof, String> {
    let a_url = admin.base_url.as_str();
    let client = Client::new();
    let (agent, request) = fresh_agent_and_key(admin, "burst").await?;
    let org = request.org.clone();

    // 1. One budget for both instances.
    let burst_key = admin.key(&request).await?;
    let burst = burst(&client, a_url, b_url, &agent, &burst_key.key).await?;

    // 2. Created on A, served by B within 1 s: B's filter of known keys
    //    learns it from the store's notice, which is not instantaneous.
    let fresh = admin.key(&KeyRequest { name: "created on A".into(), ..request }).await?;
    let config = format!("{b_url}/api/public/agents/{agent}");
    let created_to_served = until(&client, &config, &fresh.key, (StatusCode::OK, ""), "a key created").await?;
    if created_to_served > Duration::from_secs(1) {
        return Err(format!("a key created on A was served by B only after {created_to_served:?}"));
    }

    // 3. Deleted on A (B has it cached now), refused by B within 1 s.
    admin.delete_key(&org, &fresh.id).await?;
    let refused = (StatusCode::UNAUTHORIZED, "INVALID_API_KEY");
    let deleted_to_refused = until(&client, &config, &fresh.key, refused, "a deleted key").await?;

    // 4. The agent deactivated on A (B has it cached: the burst and step 2
    //    read it there), refused by B within 1 s.
    let reply = client.send("GET", &config, &[bearer(&burst_key.key)?], Bytes::new()).await?;
    if reply.status != StatusCode::OK {
        return Err(format!("the burst's key got {} on B's config route", reply.status));
    }
    admin.agent(AgentRecord { active: false, ..AgentRecord::new(agent.clone(), org.clone(), "Agent") }).await?;
    let refused = (StatusCode::FORBIDDEN, "AGENT_INACTIVE");
    let deactivated_to_refused = until(&client, &config, &burst_key.key, refused, "a deactivated agent").await?;
    Ok(Proof { burst, created_to_served, deleted_to_refused, deactivated_to_refused, control: None })
}

/// Polls `url` with `key` until it answers `expected` (a status and an
/// error code); how long that took from now. An error after 5 s: `what` was
/// still served.
async fn until(
    client: &Client,
    url: &str,
    key: &str,
    (status, code): (StatusCode, &str),
    what: &str,
) -> Result<Duration, String> {
    let since = Instant::now();
    loop {
        let reply = client.send("GET", url, &[bearer(key)?], Bytes::new()).await?;
        if reply.status == status && String::from_utf8_lossy(&reply.body).contains(code) {
            return Ok(since.elapsed());
        }
        if since.elapsed() > Duration::from_secs(5) {
            return Err(format!("{what} on A was not answered as expected by B within 5 s"));
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn bearer(key: &str) -> Result<(HeaderName, HeaderValue), String> {
    let value = HeaderValue::try_from(format!("Bearer {key}")).map_err(|e| e.to_string())?;
    Ok((http::header::AUTHORIZATION, value))
}

fn json_content() -> (HeaderName, HeaderValue) {
    (http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"))
}
