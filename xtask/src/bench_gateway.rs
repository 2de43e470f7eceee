//! `cargo xtask bench-gateway [ROUNDS] [SECONDS]`: what forward auth costs
//! behind nginx. Two setups, loaded alike by wrk in alternating rounds:
//!
//! - `nginx-bare`: nginx proxying to the hello-world upstream (the axum app
//!   of `agx-http-bench`, bare);
//! - `nginx-auth`: nginx with docs/guides/nginx.md's configuration, asking
//!   the release `agx-server` (memory store, a key with a budget the run
//!   cannot spend) about each request, then proxying to the same upstream.
//!
//! nginx, agx-server and the upstream share CPU 0, wrk has CPU 1; the CPU
//! column is all three processes' (nginx's workers included) per request.

use std::process::Stdio;
use std::time::Duration;

use crate::bench_http::{Server, ensure_wrk, median, pinned, process_cpu_secs, wait_listening, wrk};
use crate::{cargo, workspace_root};

#[path = "../../conformance/src/nginx_conf.rs"]
mod nginx_conf;

/// A bare proxy written the way the guide's block is (`listen 80`, the
/// service on `127.0.0.1:3000`, kept-alive connections to it).
const BARE: &str = "upstream service {\n    server 127.0.0.1:3000;\n    keepalive 64;\n}\n\
                    server {\n    listen 80;\n    location / {\n        proxy_http_version 1.1;\n        \
                    proxy_set_header Connection \"\";\n        proxy_pass http://service;\n    }\n}\n";
const NGINX_PORT: u16 = 18_790;
const UPSTREAM: &str = "127.0.0.1:18791";
const AGX: &str = "127.0.0.1:18792";

pub fn run(args: &[String]) -> Result<(), String> {
    let rounds: usize = args.first().map_or(Ok(7), |a| a.parse()).map_err(|e| format!("rounds: {e}"))?;
    let seconds: u64 = args.get(1).map_or(Ok(3), |a| a.parse()).map_err(|e| format!("seconds: {e}"))?;
    ensure_wrk()?;
    if std::process::Command::new("nginx").arg("-v").stderr(Stdio::null()).status().is_err() {
        return Err("nginx is not installed (apt-get install nginx)".into());
    }
    let agx = crate::bench_server::build()?;
    cargo(&["build", "--release", "--package", "agx-http-bench"])?;
    let upstream_bin = workspace_root().join("target/release/agx-http-bench");
    let guide = nginx_conf::guide()?;
    let dir = std::env::temp_dir().join(format!("agx-bench-gateway-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;

    let upstream = pinned(0, upstream_bin.as_os_str())
        .args(["axum", "bare", UPSTREAM])
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| format!("start the upstream: {e}"))?;
    let _upstream = Server(upstream);
    let (server, key) = crate::bench_server::start(pinned(0, agx.as_os_str()), AGX, Duration::from_secs(20))?;
    let pids = [_upstream.0.id(), server.0.id()];

    let variants = [("nginx-bare", BARE), ("nginx-auth", guide.as_str())];
    let mut results: Vec<Vec<(f64, f64, f64, f64)>> = vec![Vec::new(); variants.len()];
    for round in 0..rounds {
        for step in 0..variants.len() {
            let v = (step + round) % variants.len();
            let (name, block) = variants[v];
            let conf = dir.join(format!("{name}.conf"));
            std::fs::write(&conf, nginx_conf::for_run(block, &dir, NGINX_PORT, AGX, UPSTREAM))
                .map_err(|e| e.to_string())?;
            let nginx = Nginx(nginx_conf::spawn(pinned(0, "nginx".as_ref()), &dir, &conf)?);
            let listen = format!("127.0.0.1:{NGINX_PORT}");
            wait_listening(&listen, Duration::from_secs(10), "nginx")?;
            let all = |pids: &[u32]| -> f64 {
                let mut procs = pids.to_vec();
                procs.push(nginx.0.id());
                procs.extend(children(nginx.0.id()));
                procs.iter().map(|p| process_cpu_secs(*p)).sum()
            };
            let before = all(&pids);
            let url = format!("http://{listen}/api/public/agents/demo-agent");
            let (load, refused) = wrk(&url, &format!("Authorization: Bearer {key}"), seconds)?;
            let cpu = all(&pids) - before;
            drop(nginx);
            if refused {
                return Err(format!("{name}: responses were not all 200"));
            }
            let cpu_us = cpu / (load.rps * seconds as f64) * 1e6;
            eprintln!(
                "round {}: {name}: {:.0} req/s, p50 {:.0} µs, p99 {:.0} µs, CPU {cpu_us:.1} µs/req",
                round + 1,
                load.rps,
                load.p50_us,
                load.p99_us
            );
            results[v].push((load.rps, load.p50_us, load.p99_us, cpu_us));
        }
    }
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);

    println!(
        "\n| setup | req/s | vs nginx-bare | p50 | p99 | CPU / req (nginx + agx-server + upstream) |\n|---|---|---|---|---|---|"
    );
    for (v, (name, _)) in variants.iter().enumerate() {
        let mine = &results[v];
        let ratio = median(mine.iter().zip(&results[0]).map(|(m, b)| m.0 / b.0).collect());
        println!(
            "| {name} | {:.0} | {:.1} % | {:.0} µs | {:.0} µs | {:.1} µs |",
            median(mine.iter().map(|l| l.0).collect()),
            ratio * 100.0,
            median(mine.iter().map(|l| l.1).collect()),
            median(mine.iter().map(|l| l.2).collect()),
            median(mine.iter().map(|l| l.3).collect()),
        );
    }
    println!(
        "\n({rounds} rounds of {seconds} s per setup; wrk -t1 -c32 on CPU 1; nginx (one worker), agx-server and the \
         upstream on CPU 0; ratios are medians of same-round ratios)"
    );
    Ok(())
}

/// nginx, stopped with its workers when dropped.
struct Nginx(std::process::Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        nginx_conf::stop(&mut self.0);
    }
}

/// The child processes of `pid` (nginx's workers), from `/proc`.
fn children(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .map(|s| s.split_whitespace().filter_map(|p| p.parse().ok()).collect())
        .unwrap_or_default()
}
