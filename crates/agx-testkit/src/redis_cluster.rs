//! A real Redis Cluster on loopback, for the tests that need one.
//!
//! [`RedisCluster::start`] runs `redis-server --cluster-enabled yes` on free
//! local ports, joins the nodes with `redis-cli --cluster create`, and waits
//! until every node reports `cluster_state:ok`. The processes are killed
//! when the value is dropped, and their files live in a directory of their
//! own under the system's temporary directory, removed then too.
//!
//! Faults are the real ones: [`RedisCluster::kill`] sends SIGKILL to a
//! primary, and [`RedisCluster::restart`] starts it again on its own port
//! with its own `nodes.conf`, so it rejoins as the node it was.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

/// How long a node may be silent before the others call it failed: short,
/// so that a test's failover takes a second or two, not the default 15 s.
pub const NODE_TIMEOUT: Duration = Duration::from_millis(1000);

/// One `redis-server` of the cluster.
struct Node {
    port: u16,
    bus_port: u16,
    child: Option<Child>,
}

/// A running cluster. See the module's documentation.
pub struct RedisCluster {
    dir: PathBuf,
    nodes: Vec<Node>,
}

impl RedisCluster {
    /// Starts `primaries` primaries with `replicas` replicas each, or says
    /// why not (`redis-server` or `redis-cli` missing, a node that does not
    /// start, a cluster that does not form within 20 s).
    ///
    /// The ports are found free, then let go for the nodes to take; on a
    /// busy machine another process can take one first (an outgoing
    /// connection's ephemeral port, say), so a node that does not come up
    /// makes the start try again, up to three times, on other ports.
    pub async fn start(primaries: usize, replicas: usize) -> Result<RedisCluster, String> {
        let mut tries = 0;
        loop {
            tries += 1;
            match Self::start_once(primaries, replicas).await {
                Err(why) if tries < 3 && why.contains("did not answer") => continue,
                started => return started,
            }
        }
    }

    async fn start_once(primaries: usize, replicas: usize) -> Result<RedisCluster, String> {
        let count = primaries * (1 + replicas);
        let dir = std::env::temp_dir().join(format!("agx-redis-cluster-{}-{}", std::process::id(), unique()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let mut cluster = RedisCluster { dir, nodes: Vec::with_capacity(count) };
        // Every port is held until all are chosen, so that no two are the same.
        let held = (0..2 * count).map(|_| free_port()).collect::<Result<Vec<_>, _>>()?;
        for pair in held.chunks(2) {
            let port = |l: &std::net::TcpListener| l.local_addr().map(|a| a.port()).map_err(|e| e.to_string());
            cluster.nodes.push(Node { port: port(&pair[0])?, bus_port: port(&pair[1])?, child: None });
        }
        drop(held);
        for i in 0..count {
            cluster.spawn(i)?;
        }
        for node in &cluster.nodes {
            until(Duration::from_secs(10), || async { cli(node.port, &["PING"]).await.is_ok_and(|r| r == "PONG") })
                .await
                .map_err(|_| format!("redis-server on port {} did not answer within 10 s", node.port))?;
        }
        let mut create = vec!["--cluster".to_owned(), "create".to_owned()];
        create.extend(cluster.nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)));
        create.extend(["--cluster-replicas".to_owned(), replicas.to_string(), "--cluster-yes".to_owned()]);
        let created = Command::new("redis-cli")
            .args(&create)
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(|e| format!("cannot run redis-cli: {e}"))?;
        if !created.status.success() {
            return Err(format!(
                "redis-cli --cluster create failed: {}",
                String::from_utf8_lossy(&created.stdout).lines().last().unwrap_or("")
            ));
        }
        cluster.until_healthy(Duration::from_secs(20)).await?;
        Ok(cluster)
    }

    /// Seed URLs of every node, for a cluster client.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(|n| format!("redis://127.0.0.1:{}", n.port)).collect()
    }

    /// The ports of the nodes that are primaries now, in the order of the
    /// slots they serve.
    pub async fn primaries(&self) -> Result<Vec<u16>, String> {
        let live = self.nodes.iter().find(|n| n.child.is_some()).ok_or("no node is running")?;
        let nodes = cli(live.port, &["CLUSTER", "NODES"]).await?;
        let mut primaries: Vec<(u32, u16)> = nodes
            .lines()
            .filter_map(|line| {
                let fields: Vec<&str> = line.split(' ').collect();
                let flags = fields.get(2)?;
                if !flags.contains("master") || flags.contains("fail") {
                    return None;
                }
                let port = fields.get(1)?.split(['@', ':']).nth(1)?.parse().ok()?;
                let first_slot = fields.get(8)?.split('-').next()?.parse().ok()?;
                Some((first_slot, port))
            })
            .collect();
        primaries.sort_unstable();
        Ok(primaries.into_iter().map(|(_, port)| port).collect())
    }

    /// The port of the primary serving `key` now.
    pub async fn primary_of(&self, key: &str) -> Result<u16, String> {
        let live = self.nodes.iter().find(|n| n.child.is_some()).ok_or("no node is running")?;
        let slot: u32 = cli(live.port, &["CLUSTER", "KEYSLOT", key])
            .await?
            .parse()
            .map_err(|_| "CLUSTER KEYSLOT answered something else".to_owned())?;
        let slots = cli(live.port, &["CLUSTER", "NODES"]).await?;
        for line in slots.lines() {
            let fields: Vec<&str> = line.split(' ').collect();
            if !fields.get(2).is_some_and(|f| f.contains("master") && !f.contains("fail")) {
                continue;
            }
            let port = fields.get(1).and_then(|a| a.split(['@', ':']).nth(1)).and_then(|p| p.parse().ok());
            for range in fields.iter().skip(8) {
                let mut ends = range.split('-').map(|s| s.parse::<u32>());
                let (Some(Ok(low)), high) = (ends.next(), ends.next()) else { continue };
                let high = high.and_then(Result::ok).unwrap_or(low);
                if (low..=high).contains(&slot) {
                    return port.ok_or_else(|| "CLUSTER NODES named no port".to_owned());
                }
            }
        }
        Err(format!("no live primary serves slot {slot}"))
    }

    /// [`primary_of`](Self::primary_of), asked again for up to `limit` while
    /// no live primary is named: after a failover, the node asked may hear
    /// of the promotion (by gossip) after the client that was redirected.
    pub async fn settled_primary_of(&self, key: &str, limit: std::time::Duration) -> Result<u16, String> {
        let started = std::time::Instant::now();
        loop {
            match self.primary_of(key).await {
                Err(why) if started.elapsed() < limit && why.starts_with("no live primary") => {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                answer => return answer,
            }
        }
    }

    /// Waits until every replica of the primary on `port` has acknowledged
    /// all it was sent (`INFO replication`: each `slaveN` offset equals the
    /// primary's `master_repl_offset`), for up to `within`. Replication is
    /// asynchronous: a test that kills a primary after writing must wait
    /// for this, not for a fixed time, or a loaded machine loses the writes.
    pub async fn until_replicated(&self, port: u16, within: Duration) -> Result<Duration, String> {
        let started = std::time::Instant::now();
        loop {
            let info = cli(port, &["INFO", "replication"]).await?;
            let field = |line: &str, name: &str| {
                line.split(',').find_map(|kv| kv.strip_prefix(name)).and_then(|v| v.trim().parse::<u64>().ok())
            };
            let primary = info.lines().find_map(|l| field(l, "master_repl_offset:"));
            let replicas: Vec<u64> = info
                .lines()
                .filter(|l| l.starts_with("slave") && l.contains("offset="))
                .filter_map(|l| field(l.split_once(':').map_or(l, |(_, v)| v), "offset="))
                .collect();
            if let Some(primary) = primary
                && !replicas.is_empty()
                && replicas.iter().all(|&r| r >= primary)
            {
                return Ok(started.elapsed());
            }
            if started.elapsed() > within {
                return Err(format!("the replicas of {port} did not catch up within {within:?}: {info}"));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGKILL to the node on `port`: no shutdown, no last words.
    pub async fn kill(&mut self, port: u16) -> Result<(), String> {
        let node = self.nodes.iter_mut().find(|n| n.port == port).ok_or("no such node")?;
        if let Some(mut child) = node.child.take() {
            child.kill().await.map_err(|e| format!("cannot kill redis-server on {port}: {e}"))?;
        }
        Ok(())
    }

    /// Starts the node on `port` again, as the node it was.
    pub async fn restart(&mut self, port: u16) -> Result<(), String> {
        let i = self.nodes.iter().position(|n| n.port == port).ok_or("no such node")?;
        self.spawn(i)
    }

    /// Waits until every running node reports `cluster_state:ok` and names
    /// only running nodes as the primaries of its slots (right after a
    /// kill, the others still call the dead node primary and the state ok),
    /// and every replica's link to its primary is up (a replica that never
    /// synced cannot take over).
    pub async fn until_healthy(&self, within: Duration) -> Result<Duration, String> {
        let ports: Vec<u16> = self.nodes.iter().filter(|n| n.child.is_some()).map(|n| n.port).collect();
        until(within, || async {
            for &port in &ports {
                match cli(port, &["CLUSTER", "INFO"]).await {
                    Ok(info) if info.lines().any(|l| l.trim() == "cluster_state:ok") => {}
                    _ => return false,
                }
                let Ok(nodes) = cli(port, &["CLUSTER", "NODES"]).await else { return false };
                let serving = nodes.lines().filter_map(|line| {
                    let fields: Vec<&str> = line.split(' ').collect();
                    let serves = fields.get(2).is_some_and(|f| f.contains("master")) && fields.len() > 8;
                    serves.then(|| fields[1].split(['@', ':']).nth(1).and_then(|p| p.parse::<u16>().ok()))
                });
                if !serving.into_iter().all(|p| p.is_some_and(|p| ports.contains(&p))) {
                    return false;
                }
                let Ok(replication) = cli(port, &["INFO", "replication"]).await else { return false };
                let replica = replication.lines().any(|l| l.trim() == "role:slave");
                if replica && !replication.lines().any(|l| l.trim() == "master_link_status:up") {
                    return false;
                }
            }
            true
        })
        .await
        .map_err(|_| format!("the cluster was not healthy within {within:?}"))
    }

    fn spawn(&mut self, i: usize) -> Result<(), String> {
        let node = &mut self.nodes[i];
        let config = self.dir.join(format!("nodes-{}.conf", node.port));
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &node.port.to_string()])
            .args(["--cluster-enabled", "yes", "--cluster-port", &node.bus_port.to_string()])
            .arg("--cluster-config-file")
            .arg(&config)
            .args(["--cluster-node-timeout", &NODE_TIMEOUT.as_millis().to_string()])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning"])
            // A replica that never synced cannot be promoted: sync at once,
            // not after the default 5 s wait for more replicas.
            .args(["--repl-diskless-sync-delay", "0"])
            .arg("--dir")
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot run redis-server: {e}"))?;
        node.child = Some(child);
        Ok(())
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(child) = node.child.as_mut() {
                let _ = child.start_kill();
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One `redis-cli` command against a node, its reply as text.
async fn cli(port: u16, args: &[&str]) -> Result<String, String> {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| format!("cannot run redis-cli: {e}"))?;
    if !out.status.success() {
        return Err(format!("redis-cli on {port} failed"));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Polls `ready` every 50 ms until it holds (how long it took) or `within`
/// has passed.
async fn until<F, Fut>(within: Duration, mut ready: F) -> Result<Duration, ()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let began = Instant::now();
    loop {
        if ready().await {
            return Ok(began.elapsed());
        }
        if began.elapsed() > within {
            return Err(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A listener on a port the system had free: its port is free again once
/// the listener is dropped.
fn free_port() -> Result<std::net::TcpListener, String> {
    std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free local port: {e}"))
}

fn unique() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos())
}
