//! `cargo xtask bench-http [ROUNDS] [SECONDS]`: the HTTP overhead benchmark.
//!
//! For each framework, the same hello-world app runs bare, behind agx-auth
//! (valid key, memory store, in-process GCRA) and behind the framework's
//! governor rate limiter, one server at a time on one worker thread, loaded
//! by wrk (one thread, 32 connections) on loopback. Rounds alternate the
//! variants so that a noisy machine slows them alike; the table shows
//! medians over rounds and ratios against the first variant (the bare app;
//! for `bench-redis`, the in-process limiter) of the same round.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{cargo, workspace_root};

/// Frameworks and their variants; the first variant of each is the baseline
/// its ratios are taken against.
type Plan = &'static [(&'static str, &'static [&'static str])];

/// `bench-http`: agx-auth's overhead on each framework.
pub const OVERHEAD: Plan = &[
    ("axum", &["bare", "auth", "governor"]),
    ("actix-web", &["bare", "auth", "governor"]),
    ("poem", &["bare", "auth"]),
];

/// `bench-redis`: the Redis limiter against the in-process one, same app.
pub const REDIS: Plan = &[("axum", &["auth", "auth-redis", "auth-redis-lease"])];

#[derive(Clone, Copy, Debug)]
pub(crate) struct Load {
    pub(crate) rps: f64,
    pub(crate) p50_us: f64,
    pub(crate) p99_us: f64,
    /// The server process's CPU time (user + system) per request served.
    server_cpu_us: f64,
    /// Redis's CPU time per request, for the variants that call Redis (NaN
    /// otherwise): on a machine with two cores Redis competes with the
    /// server and wrk, so its share is reported rather than hidden.
    redis_cpu_us: f64,
    /// Script calls Redis ran per request served (`INFO commandstats`).
    redis_calls: f64,
}

pub fn run(args: &[String], plan: Plan) -> Result<(), String> {
    let rounds: usize = args.first().map_or(Ok(7), |a| a.parse()).map_err(|e| format!("rounds: {e}"))?;
    let seconds: u64 = args.get(1).map_or(Ok(3), |a| a.parse()).map_err(|e| format!("seconds: {e}"))?;
    ensure_wrk()?;
    cargo(&["build", "--release", "--package", "agx-http-bench"])?;
    let bin = workspace_root().join("target/release/agx-http-bench");

    // results[framework][variant] = one Load per round
    let mut results: Vec<Vec<Vec<Load>>> = plan.iter().map(|(_, v)| vec![Vec::new(); v.len()]).collect();
    for round in 0..rounds {
        for (f, (framework, variants)) in plan.iter().enumerate() {
            // Rotate the order each round, so that no variant always runs
            // first or last (the machine's noise has a rhythm of its own).
            for step in 0..variants.len() {
                let v = (step + round) % variants.len();
                let variant = &variants[v];
                let port = 18_700 + (f * 10 + v) as u16;
                let load = measure(&bin, framework, variant, port, seconds)?;
                eprintln!(
                    "round {}: {framework}/{variant}: {:.0} req/s, p50 {:.0} µs, p99 {:.0} µs, server CPU {:.1} µs/req",
                    round + 1,
                    load.rps,
                    load.p50_us,
                    load.p99_us,
                    load.server_cpu_us,
                );
                results[f][v].push(load);
            }
        }
    }

    println!(
        "\n| framework | variant | req/s | vs {} | p50 | p99 | server CPU / req | Redis CPU / req | Redis calls / req |\n|---|---|---|---|---|---|---|---|---|",
        plan[0].1[0]
    );
    for (f, (framework, variants)) in plan.iter().enumerate() {
        let bare = &results[f][0];
        for (v, variant) in variants.iter().enumerate() {
            let mine = &results[f][v];
            let ratio = median(mine.iter().zip(bare).map(|(m, b)| m.rps / b.rps).collect());
            let redis_cpu = median(mine.iter().map(|l| l.redis_cpu_us).collect());
            let redis_calls = median(mine.iter().map(|l| l.redis_calls).collect());
            println!(
                "| {framework} | {variant} | {:.0} | {:.1} % | {:.0} µs | {:.0} µs | {:.1} µs | {} | {} |",
                median(mine.iter().map(|l| l.rps).collect()),
                ratio * 100.0,
                median(mine.iter().map(|l| l.p50_us).collect()),
                median(mine.iter().map(|l| l.p99_us).collect()),
                median(mine.iter().map(|l| l.server_cpu_us).collect()),
                if redis_cpu.is_nan() { "—".to_owned() } else { format!("{redis_cpu:.1} µs") },
                if redis_calls.is_nan() { "—".to_owned() } else { format!("{redis_calls:.3}") },
            );
        }
    }
    println!(
        "\n({rounds} rounds of {seconds} s per variant; wrk -t1 -c32 pinned to CPU 1; one server worker thread pinned to \
         CPU 0; ratios are medians of same-round ratios)"
    );
    Ok(())
}

/// `wrk -t1 -c32 --latency` for `seconds` against `url`, pinned to CPU 1,
/// with `header` unless it is empty: the load wrk measured, and whether any
/// answer was not a 2xx.
pub(crate) fn wrk(url: &str, header: &str, seconds: u64) -> Result<(Load, bool), String> {
    let extra: &[&str] = if header.is_empty() { &[] } else { &["-H", header] };
    wrk_with(url, extra, seconds)
}

/// [`wrk`] with any arguments of wrk's own before the URL (`-s script.lua`).
pub(crate) fn wrk_with(url: &str, extra: &[&str], seconds: u64) -> Result<(Load, bool), String> {
    let mut wrk = pinned(1, "wrk".as_ref());
    wrk.args(["-t1", "-c32", &format!("-d{seconds}s"), "--latency"]);
    wrk.args(extra);
    let output = wrk.arg(url).output().map_err(|e| format!("wrk: {e}"))?;
    let text = String::from_utf8_lossy(&output.stdout);
    let load = parse_wrk(&text).ok_or_else(|| format!("cannot read wrk's output:\n{text}"))?;
    Ok((load, text.contains("Non-2xx")))
}

/// Waits until something listens on `addr`, at most `patience`.
pub(crate) fn wait_listening(addr: &str, patience: Duration, what: &str) -> Result<(), String> {
    let started = Instant::now();
    while TcpStream::connect(addr).is_err() {
        if started.elapsed() > patience {
            return Err(format!("{what} did not listen on {addr}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

pub(crate) fn ensure_wrk() -> Result<(), String> {
    if Command::new("wrk").arg("--version").output().is_ok() {
        return Ok(());
    }
    eprintln!("xtask: installing wrk from Debian's packages");
    let ok = |c: &mut Command| c.status().map(|s| s.success()).unwrap_or(false);
    if ok(Command::new("apt-get").args(["install", "-y", "-q", "wrk"]))
        || (ok(Command::new("apt-get").args(["update", "-q"]))
            && ok(Command::new("apt-get").args(["install", "-y", "-q", "wrk"])))
    {
        Ok(())
    } else {
        Err("wrk is not installed and apt-get could not install it".into())
    }
}

pub(crate) struct Server(pub(crate) Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn measure(bin: &std::path::Path, framework: &str, variant: &str, port: u16, seconds: u64) -> Result<Load, String> {
    let addr = format!("127.0.0.1:{port}");
    // The server on CPU 0 and wrk on CPU 1, where `taskset` exists: each has
    // a core of its own, and the scheduler does not move them about.
    let mut child = pinned(0, bin.as_os_str())
        .args([framework, variant, &addr])
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("start {}: {e}", bin.display()))?;
    let mut key = String::from("agx_live_none");
    if variant.starts_with("auth") {
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).map_err(|e| e.to_string())?;
        key = line.trim().strip_prefix("KEY=").ok_or("the auth server printed no key")?.to_owned();
    }
    let pid = child.id();
    let _server = Server(child);
    wait_listening(&addr, Duration::from_secs(10), &format!("{framework}/{variant}"))?;
    let (server_cpu, redis_cpu, calls) = (process_cpu_secs(pid), redis_cpu_secs(variant), script_calls(variant));
    let url = format!("http://{addr}/api/public/agents/agent_1");
    let (mut load, refused) = wrk(&url, &format!("Authorization: Bearer {key}"), seconds)?;
    if refused {
        return Err(format!("{framework}/{variant}: responses were not all 200"));
    }
    let (server_cpu, redis_cpu) = (process_cpu_secs(pid) - server_cpu, redis_cpu_secs(variant) - redis_cpu);
    let calls = script_calls(variant) - calls;
    let requests = load.rps * seconds as f64;
    load.server_cpu_us = server_cpu / requests * 1e6;
    load.redis_cpu_us = redis_cpu / requests * 1e6;
    load.redis_calls = calls / requests;
    Ok(load)
}

/// User + system CPU seconds of process `pid` so far (Linux `/proc`; NaN
/// elsewhere). Clock ticks are 100 per second on every Linux this runs on.
pub(crate) fn process_cpu_secs(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return f64::NAN };
    // Fields after the command name, which is in parentheses and may hold spaces.
    let Some((_, rest)) = stat.rsplit_once(')') else { return f64::NAN };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(f64::NAN);
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 here.
    (ticks(11) + ticks(12)) / 100.0
}

/// Script calls (`EVALSHA` and `EVAL`) Redis has run so far, for variants
/// that use it.
fn script_calls(variant: &str) -> f64 {
    redis_info(variant, "commandstats", &["cmdstat_evalsha:", "cmdstat_eval:"], |v| {
        v.split(',').find_map(|f| f.strip_prefix("calls="))?.parse().ok()
    })
}

/// Redis's own CPU seconds so far (`INFO cpu`), for variants that use it.
fn redis_cpu_secs(variant: &str) -> f64 {
    redis_info(variant, "cpu", &["used_cpu_sys:", "used_cpu_user:"], |v| v.trim().parse().ok())
}

/// The sum of `value` over the lines of `INFO section` that start with one
/// of `prefixes`; NaN for variants that do not use Redis.
fn redis_info(variant: &str, section: &str, prefixes: &[&str], value: impl Fn(&str) -> Option<f64>) -> f64 {
    if !variant.contains("redis") {
        return f64::NAN;
    }
    let Ok(out) = Command::new("redis-cli").args(["info", section]).output() else { return f64::NAN };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| prefixes.iter().find_map(|p| l.strip_prefix(p)))
        .filter_map(&value)
        .sum()
}

pub(crate) fn pinned(cpu: u8, program: &std::ffi::OsStr) -> Command {
    let has_taskset = Command::new("taskset").arg("-V").output().is_ok_and(|o| o.status.success());
    if has_taskset {
        let mut c = Command::new("taskset");
        c.args(["-c", &cpu.to_string()]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

pub(crate) fn parse_wrk(text: &str) -> Option<Load> {
    let mut load = Load {
        rps: f64::NAN,
        p50_us: f64::NAN,
        p99_us: f64::NAN,
        server_cpu_us: f64::NAN,
        redis_cpu_us: f64::NAN,
        redis_calls: f64::NAN,
    };
    for line in text.lines().map(str::trim) {
        if let Some(v) = line.strip_prefix("Requests/sec:") {
            load.rps = v.trim().parse().ok()?;
        } else if let Some(v) = line.strip_prefix("50%") {
            load.p50_us = micros(v.trim())?;
        } else if let Some(v) = line.strip_prefix("99%") {
            load.p99_us = micros(v.trim())?;
        }
    }
    (!load.rps.is_nan() && !load.p50_us.is_nan() && !load.p99_us.is_nan()).then_some(load)
}

/// wrk's `123.45us`, `1.20ms`, `2.00s` in microseconds.
fn micros(v: &str) -> Option<f64> {
    let (number, scale) = if let Some(n) = v.strip_suffix("us") {
        (n, 1.0)
    } else if let Some(n) = v.strip_suffix("ms") {
        (n, 1_000.0)
    } else if let Some(n) = v.strip_suffix('s') {
        (n, 1_000_000.0)
    } else {
        return None;
    };
    number.parse::<f64>().ok().map(|n| n * scale)
}

pub(crate) fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_wrk_output() {
        let text = "Running 5s test\n  Latency Distribution\n     50%  210.00us\n     75%  300.00us\n     \
                    90%  400.00us\n     99%    1.50ms\n  100 requests in 5.00s\nRequests/sec:  41234.56\n";
        let load = parse_wrk(text).unwrap();
        assert_eq!(load.rps, 41234.56);
        assert_eq!(load.p50_us, 210.0);
        assert_eq!(load.p99_us, 1500.0);
        assert_eq!(micros("2.00s"), Some(2_000_000.0));
    }
}
