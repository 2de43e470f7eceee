//! The multi-instance proof: two reference servers on different ports,
//! sharing one PostgreSQL database and one Redis, behave as one service.
//!
//! 1. 300 concurrent chat requests with one fresh key, alternating between
//!    the instances, admit exactly the burst of 60 (the rest get 429).
//! 2. A key created through instance A works on instance B at once.
//! 3. A key deleted through A is refused by B within 1 s (B had it cached;
//!    `LISTEN/NOTIFY` carries the revocation).
//!
//! Every figure is measured in this run and printed.

use std::time::{Duration, Instant};

use agx_auth::AgentRecord;
use bytes::Bytes;
use http::{HeaderName, HeaderValue, StatusCode};

use crate::blackbox::{AdminApi, Backends, ServerProcess, launch};
use crate::client::Client;
use crate::fixtures::{Fixtures, KeyRequest};

/// What the proof measured.
#[derive(Debug)]
pub struct Proof {
    pub requests: usize,
    /// 200s per instance, A then B.
    pub admitted: [usize; 2],
    pub limited: usize,
    /// Any other status: each one is a failure.
    pub other: Vec<StatusCode>,
    pub burst_elapsed: Duration,
    pub created_to_served: Duration,
    pub deleted_to_refused: Duration,
}

impl Proof {
    pub fn admitted(&self) -> usize {
        self.admitted[0] + self.admitted[1]
    }

    /// The acceptance rule. Exactly 60 is what GCRA promises while the burst
    /// lasts under one interval (1 s); if the machine was slower than that,
    /// the refill during the burst is allowed and said.
    pub fn failures(&self) -> Vec<String> {
        let mut out = Vec::new();
        let refill = (self.burst_elapsed.as_secs_f64()).floor() as usize;
        if refill == 0 && self.admitted() != 60 {
            out.push(format!("{} requests admitted, not 60", self.admitted()));
        }
        if refill > 0 && !(60..=60 + refill).contains(&self.admitted()) {
            out.push(format!("{} admitted in {:?}: outside 60..={}", self.admitted(), self.burst_elapsed, 60 + refill));
        }
        if self.admitted() + self.limited != self.requests || !self.other.is_empty() {
            out.push(format!("statuses other than 200 and 429: {:?}", self.other));
        }
        if self.admitted.contains(&0) {
            out.push(format!("one instance admitted nothing ({:?}): the load was not spread", self.admitted));
        }
        if self.deleted_to_refused > Duration::from_secs(1) {
            out.push(format!("the deletion took {:?} to reach instance B (bound: 1 s)", self.deleted_to_refused));
        }
        out
    }

    pub fn render(&self) -> String {
        let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1e3);
        format!(
            "  {} concurrent chat requests, one fresh key, alternating A/B: {} × 200 (A {}, B {}), {} × 429, in {}\n  \
             key created on A: served by B {} after creation\n  \
             key deleted on A: refused (401) by B {} after the delete returned (bound 1 s)\n",
            self.requests,
            self.admitted(),
            self.admitted[0],
            self.admitted[1],
            self.limited,
            ms(self.burst_elapsed),
            ms(self.created_to_served),
            ms(self.deleted_to_refused),
        )
    }
}

/// Two servers on one database and one Redis; `None` when either service is
/// absent and not required (the notice is printed).
pub async fn start(path: &str) -> Result<Option<[(ServerProcess, AdminApi); 2]>, String> {
    let Some(database_url) = agx_auth_postgres::testing::fresh_database("multi-instance").await else {
        return Ok(None);
    };
    let Some(redis_url) = agx_auth_redis::testing::reachable("multi-instance").await else { return Ok(None) };
    let backends = Backends { database_url: Some(database_url), redis_url: Some(redis_url) };
    Ok(Some([launch(path, "instance A", &backends).await?, launch(path, "instance B", &backends).await?]))
}

/// Runs the three checks: keys are made and deleted through A's admin API.
pub async fn prove(admin: &AdminApi, b_url: &str) -> Result<Proof, String> {
    let a_url = admin.base_url.as_str();
    let org = format!("org_mi_{}", crate::runner::run_namespace());
    admin.org(&org, "Multi-instance").await?;
    admin.agent(AgentRecord::new(format!("{org}_agent"), org.clone(), "Agent")).await?;
    let request = |name: &str| KeyRequest {
        org: org.clone(),
        name: name.to_owned(),
        scopes: vec!["chat".into(), "config".into()],
        test_mode: false,
        expires_in: None,
        rate_limits: Default::default(),
    };
    let client = Client::new();
    let agent = format!("{org}_agent");

    // 1. One budget for both instances.
    let burst_key = admin.key(&request("burst")).await?;
    let requests = 300;
    let chat_path = format!("/api/public/agents/{agent}/chat");
    let body = Bytes::from_static(br#"{"message":"Hello","sessionId":"multi-instance"}"#);
    let headers = vec![bearer(&burst_key.key)?, json_content()];
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
    let burst_elapsed = started.elapsed();

    // 2. Created on A, served by B at once.
    let fresh = admin.key(&request("created on A")).await?;
    let created = Instant::now();
    let config = format!("{b_url}/api/public/agents/{agent}");
    let reply = client.send("GET", &config, &[bearer(&fresh.key)?], Bytes::new()).await?;
    let created_to_served = created.elapsed();
    if reply.status != StatusCode::OK {
        return Err(format!("a key created on A got {} on B", reply.status));
    }

    // 3. Deleted on A (B has it cached now), refused by B within 1 s.
    admin.delete_key(&org, &fresh.id).await?;
    let deleted = Instant::now();
    let deleted_to_refused = loop {
        let reply = client.send("GET", &config, &[bearer(&fresh.key)?], Bytes::new()).await?;
        if reply.status == StatusCode::UNAUTHORIZED {
            break deleted.elapsed();
        }
        if deleted.elapsed() > Duration::from_secs(5) {
            return Err("a key deleted on A was still served by B after 5 s".into());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    Ok(Proof { requests, admitted, limited, other, burst_elapsed, created_to_served, deleted_to_refused })
}

fn bearer(key: &str) -> Result<(HeaderName, HeaderValue), String> {
    let value = HeaderValue::try_from(format!("Bearer {key}")).map_err(|e| e.to_string())?;
    Ok((http::header::AUTHORIZATION, value))
}

fn json_content() -> (HeaderName, HeaderValue) {
    (http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"))
}
