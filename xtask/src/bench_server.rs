//! `cargo xtask bench-server [ROUNDS] [SECONDS]`: the reference server's own
//! overhead. One release `agx-server` on the memory store (CPU 0), loaded by
//! wrk (CPU 1, one thread, 32 connections) on three requests in rotated
//! order each round:
//!
//! - `GET /healthz`: the baseline, no auth at all;
//! - a junk key on the config route: refused by the checksum (401), no store;
//! - a valid key on the config route: the whole verdict and the handler (200).
//!
//! The table gives medians over rounds: each request's throughput ratio to
//! `/healthz` in the same round (the goal's measure), and the server's CPU
//! time per request, with its ratio too. On two cores wrk itself is near
//! saturation for `/healthz`, so the throughput ratio understates what the
//! server adds less than the CPU ratio does; both are printed.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::bench_http::{Server, ensure_wrk, median, parse_wrk, pinned, process_cpu_secs};
use crate::{cargo, workspace_root};

const TOKEN: &str = "bench-server-admin-token";
/// Well-formed in length and prefix, but its checksum is wrong.
const JUNK: &str = "agx_live_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

pub fn run(args: &[String]) -> Result<(), String> {
    let rounds: usize = args.first().map_or(Ok(9), |a| a.parse()).map_err(|e| format!("rounds: {e}"))?;
    let seconds: u64 = args.get(1).map_or(Ok(3), |a| a.parse()).map_err(|e| format!("seconds: {e}"))?;
    ensure_wrk()?;
    cargo(&["build", "--release", "--package", "agx-server"])?;
    let bin = workspace_root().join("target/release/agx-server");
    let addr = "127.0.0.1:18790";
    let child = pinned(0, bin.as_os_str())
        .env("AGX_BIND", addr)
        .env("AGX_ADMIN_TOKEN", TOKEN)
        .env_remove("AGX_DATABASE_URL")
        .env_remove("AGX_REDIS_URL")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("start {}: {e}", bin.display()))?;
    let pid = child.id();
    let mut server = Server(child);
    let stdout = server.0.stdout.take().ok_or("no stdout")?;
    // Read the banner until the curl line, then keep the pipe drained.
    let mut lines = BufReader::new(stdout).lines();
    for line in lines.by_ref() {
        if line.map_err(|e| e.to_string())?.starts_with("try:") {
            break;
        }
    }
    std::thread::spawn(move || lines.for_each(drop));
    let started = Instant::now();
    while TcpStream::connect(addr).is_err() {
        if started.elapsed() > Duration::from_secs(10) {
            return Err(format!("agx-server did not listen on {addr}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // A key whose config budget a benchmark cannot spend.
    let created =
        post(addr, "/api/admin/orgs/demo-org/keys", r#"{"name":"bench","rateLimits":{"config":1000000000}}"#)?;
    let created: serde_json::Value = serde_json::from_str(&created).map_err(|e| format!("{e}: {created}"))?;
    let key = created["key"].as_str().ok_or_else(|| format!("no key in {created}"))?.to_owned();

    let config = format!("http://{addr}/api/public/agents/demo-agent");
    let variants: [(&str, String, String); 3] = [
        ("/healthz", format!("http://{addr}/healthz"), String::new()),
        ("junk key, config route (401)", config.clone(), format!("X-API-Key: {JUNK}")),
        ("valid key, config route (200)", config, format!("X-API-Key: {key}")),
    ];
    let mut results: Vec<Vec<(f64, f64, f64)>> = vec![Vec::new(); variants.len()];
    for round in 0..rounds {
        for step in 0..variants.len() {
            let v = (step + round) % variants.len();
            let (name, url, header) = &variants[v];
            let cpu_before = process_cpu_secs(pid);
            let mut wrk = pinned(1, "wrk".as_ref());
            wrk.args(["-t1", "-c32", &format!("-d{seconds}s"), "--latency"]);
            if !header.is_empty() {
                wrk.args(["-H", header]);
            }
            let output = wrk.arg(url).output().map_err(|e| format!("wrk: {e}"))?;
            let text = String::from_utf8_lossy(&output.stdout);
            let load = parse_wrk(&text).ok_or_else(|| format!("cannot read wrk's output:\n{text}"))?;
            let expect_errors = v == 1;
            if text.contains("Non-2xx") != expect_errors {
                return Err(format!("{name}: unexpected statuses:\n{text}"));
            }
            let cpu_us = (process_cpu_secs(pid) - cpu_before) / (load.rps * seconds as f64) * 1e6;
            eprintln!(
                "round {}: {name}: {:.0} req/s, p99 {:.0} µs, server CPU {cpu_us:.1} µs/req",
                round + 1,
                load.rps,
                load.p99_us
            );
            results[v].push((load.rps, load.p99_us, cpu_us));
        }
    }
    println!(
        "\n| request | req/s | vs /healthz | p99 | server CPU / req | CPU: /healthz's ÷ this |\n|---|---|---|---|---|---|"
    );
    for (v, (name, _, _)) in variants.iter().enumerate() {
        let ratios: Vec<f64> = (0..rounds).map(|r| results[v][r].0 / results[0][r].0).collect();
        let cpu_ratios: Vec<f64> = (0..rounds).map(|r| results[0][r].2 / results[v][r].2).collect();
        let rps = median(results[v].iter().map(|l| l.0).collect());
        let p99 = median(results[v].iter().map(|l| l.1).collect());
        let cpu = median(results[v].iter().map(|l| l.2).collect());
        println!(
            "| {name} | {rps:.0} | {:.2} | {p99:.0} µs | {cpu:.1} µs | {:.2} |",
            median(ratios),
            median(cpu_ratios)
        );
    }
    println!("\n{rounds} rounds of {seconds} s, medians; ratios within each round. Goals: junk ≥ 0.90, valid ≥ 0.80.");
    Ok(())
}

/// One admin `POST` over a plain socket; returns the body.
fn post(addr: &str, path: &str, body: &str) -> Result<String, String> {
    let mut s = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .map_err(|e| e.to_string())?;
    let mut reply = String::new();
    s.read_to_string(&mut reply).map_err(|e| e.to_string())?;
    if !reply.starts_with("HTTP/1.1 201") {
        return Err(format!("POST {path}: {reply}"));
    }
    Ok(reply.split("\r\n\r\n").nth(1).unwrap_or("").to_owned())
}
