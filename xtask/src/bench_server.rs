//! `cargo xtask bench-server [ROUNDS] [SECONDS]`: the reference server's own
//! overhead.
//!
//! `cargo xtask bench-server instructions [SECONDS]` counts instead: the
//! server runs under valgrind's callgrind, and each request's instructions
//! (the server's user space, not the kernel's) are counted over a fixed
//! load. The count is the same from run to run, whatever else the machine
//! is doing, where throughput on a shared 2-core machine moves by a quarter
//! between runs; it is what to compare a change by. One release `agx-server` on the memory store (CPU 0), loaded by
//! wrk (CPU 1, one thread, 32 connections) on three requests in rotated
//! order each round:
//!
//! - `GET /healthz`: the baseline, no auth at all;
//! - a junk key on the config route: refused by the checksum (401), no store;
//! - a valid key on the config route: the whole verdict and the handler (200);
//! - the same key and route asked of the verify API (`POST /api/verify`, a
//!   JSON body through a wrk script): the verdict, the body parsed and the
//!   verdict written as JSON, for a service that calls it itself.
//!
//! The table gives medians over rounds: each request's throughput ratio to
//! `/healthz` in the same round (the goal's measure), and the server's CPU
//! time per request, with its ratio too. On two cores wrk itself is near
//! saturation for `/healthz`, so the throughput ratio understates what the
//! server adds less than the CPU ratio does; both are printed.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::bench_http::{Server, ensure_wrk, median, pinned, process_cpu_secs, wait_listening, wrk_with};
use crate::{cargo, workspace_root};

const TOKEN: &str = "bench-server-admin-token";
/// Well-formed in length and prefix, but its checksum is wrong.
const JUNK: &str = "agx_live_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

pub fn run(args: &[String]) -> Result<(), String> {
    if args.first().map(String::as_str) == Some("instructions") {
        return instructions(&args[1..]);
    }
    let rounds: usize = args.first().map_or(Ok(9), |a| a.parse()).map_err(|e| format!("rounds: {e}"))?;
    let seconds: u64 = args.get(1).map_or(Ok(3), |a| a.parse()).map_err(|e| format!("seconds: {e}"))?;
    ensure_wrk()?;
    let bin = build()?;
    let addr = "127.0.0.1:18790";
    let (server, key) = start(pinned(0, bin.as_os_str()), addr, Duration::from_secs(10))?;
    let pid = server.0.id();
    let dir = std::env::temp_dir().join(format!("agx-bench-server-{}", std::process::id()));
    let variants = variants(addr, &key, &dir)?;
    let mut results: Vec<Vec<(f64, f64, f64)>> = vec![Vec::new(); variants.len()];
    for round in 0..rounds {
        for step in 0..variants.len() {
            let v = (step + round) % variants.len();
            let (name, url, extra) = &variants[v];
            let cpu_before = process_cpu_secs(pid);
            let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
            let (load, refused) = wrk_with(url, &extra, seconds)?;
            let expect_errors = v == 1;
            if refused != expect_errors {
                return Err(format!("{name}: unexpected statuses"));
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
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// One request to load: its name, URL, and wrk's arguments for it.
type Variant = (&'static str, String, Vec<String>);

/// The requests: wrk's arguments are a header, or a script in `dir` for
/// the verify API's POST.
fn variants(addr: &str, key: &str, dir: &std::path::Path) -> Result<[Variant; 4], String> {
    let config = format!("http://{addr}/api/public/agents/demo-agent");
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let script = dir.join("verify.lua");
    let body = format!(r#"{{"key":"{key}","method":"GET","path":"/api/public/agents/demo-agent"}}"#);
    std::fs::write(
        &script,
        format!("wrk.method = \"POST\"\nwrk.headers[\"Content-Type\"] = \"application/json\"\nwrk.body = '{body}'\n"),
    )
    .map_err(|e| e.to_string())?;
    let header = |h: String| vec!["-H".to_owned(), h];
    Ok([
        ("/healthz", format!("http://{addr}/healthz"), Vec::new()),
        ("junk key, config route (401)", config.clone(), header(format!("X-API-Key: {JUNK}"))),
        ("valid key, config route (200)", config, header(format!("X-API-Key: {key}"))),
        (
            "valid key, verify API (200)",
            format!("http://{addr}/api/verify"),
            vec!["-s".into(), script.display().to_string()],
        ),
    ])
}

pub(crate) fn build() -> Result<std::path::PathBuf, String> {
    cargo(&["build", "--release", "--package", "agx-server"])?;
    Ok(workspace_root().join("target/release/agx-server"))
}

/// Starts `command` (the server, perhaps under a wrapper) on the memory store
/// and makes a key whose config budget a benchmark cannot spend.
pub(crate) fn start(mut command: Command, addr: &str, patience: Duration) -> Result<(Server, String), String> {
    let child = command
        .env("AGX_BIND", addr)
        .env("AGX_ADMIN_TOKEN", TOKEN)
        .env_remove("AGX_DATABASE_URL")
        .env_remove("AGX_REDIS_URL")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("start the server: {e}"))?;
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
    wait_listening(addr, patience, "agx-server")?;
    let created =
        post(addr, "/api/admin/orgs/demo-org/keys", r#"{"name":"bench","rateLimits":{"config":1000000000}}"#)?;
    let created: serde_json::Value = serde_json::from_str(&created).map_err(|e| format!("{e}: {created}"))?;
    let key = created["key"].as_str().ok_or_else(|| format!("no key in {created}"))?.to_owned();
    Ok((server, key))
}

/// Instructions per request under callgrind, each variant over the same
/// wrk load (one thread, 4 connections), counted from zero after a warm-up.
fn instructions(args: &[String]) -> Result<(), String> {
    let seconds: u64 = args.first().map_or(Ok(5), |a| a.parse()).map_err(|e| format!("seconds: {e}"))?;
    ensure_wrk()?;
    if Command::new("valgrind").arg("--version").output().is_err() {
        return Err("valgrind is not installed (apt-get install valgrind)".into());
    }
    let bin = build()?;
    let dir = std::env::temp_dir().join(format!("agx-bench-callgrind-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let mut command = Command::new("valgrind");
    command
        .args(["--tool=callgrind", "--instr-atstart=no"])
        .arg(format!("--callgrind-out-file={}/cg.%p", dir.display()))
        .arg(&bin);
    let addr = "127.0.0.1:18791";
    let (server, key) = start(command, addr, Duration::from_secs(120))?;
    let pid = server.0.id().to_string();
    let control = |args: &[&str]| -> Result<(), String> {
        let ok = Command::new("callgrind_control").args(args).arg(&pid).output().map_err(|e| e.to_string())?;
        if ok.status.success() { Ok(()) } else { Err(format!("callgrind_control {args:?} failed")) }
    };
    let mut rows = Vec::new();
    for (i, (name, url, extra)) in variants(addr, &key, &dir)?.iter().enumerate() {
        let wrk = |secs: u64| -> Result<String, String> {
            let mut c = Command::new("wrk");
            c.args(["-t1", "-c4", &format!("-d{secs}s")]);
            c.args(extra);
            let out = c.arg(url).output().map_err(|e| format!("wrk: {e}"))?;
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        };
        wrk(1)?;
        control(&["-z"])?;
        control(&["-i", "on"])?;
        let text = wrk(seconds)?;
        control(&["-i", "off"])?;
        control(&["-d", &format!("v{i}")])?;
        let requests: f64 = text
            .lines()
            .find_map(|l| l.trim().split_once(" requests in").and_then(|(n, _)| n.trim().parse().ok()))
            .ok_or_else(|| format!("cannot read wrk's output:\n{text}"))?;
        let dump = std::fs::read_dir(&dir)
            .map_err(|e| e.to_string())?
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().ends_with(&format!(".{}", i + 1)))
            .map(|e| e.path())
            .next()
            .ok_or("no callgrind dump")?;
        let text = std::fs::read_to_string(&dump).map_err(|e| e.to_string())?;
        let total: f64 = text
            .lines()
            .find_map(|l| l.strip_prefix("totals:").and_then(|v| v.trim().parse().ok()))
            .ok_or("no totals in the callgrind dump")?;
        eprintln!("{name}: {requests} requests, {total} instructions");
        rows.push((*name, requests, total / requests));
    }
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
    println!("\n| request | requests counted | instructions / request | /healthz's ÷ this |\n|---|---|---|---|");
    for (name, requests, per) in &rows {
        println!("| {name} | {requests:.0} | {per:.0} | {:.2} |", rows[0].2 / per);
    }
    println!("\nThe server's user-space instructions under callgrind; the kernel's share of a request is not counted.");
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
