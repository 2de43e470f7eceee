//! `cargo xtask bench-http [ROUNDS] [SECONDS]`: the HTTP overhead benchmark.
//!
//! For each framework, the same hello-world app runs bare, behind agx-auth
//! (valid key, memory store, in-process GCRA) and behind the framework's
//! governor rate limiter, one server at a time on one worker thread, loaded
//! by wrk (one thread, 32 connections) on loopback. Rounds alternate the
//! variants so that a noisy machine slows them alike; the table shows
//! medians over rounds and ratios against the bare app of the same round.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{cargo, workspace_root};

const PLAN: [(&str, &[&str]); 3] = [
    ("axum", &["bare", "auth", "governor"]),
    ("actix-web", &["bare", "auth", "governor"]),
    ("poem", &["bare", "auth"]),
];

#[derive(Clone, Copy, Debug)]
struct Load {
    rps: f64,
    p50_us: f64,
    p99_us: f64,
}

pub fn run(args: &[String]) -> Result<(), String> {
    let rounds: usize = args.first().map_or(Ok(7), |a| a.parse()).map_err(|e| format!("rounds: {e}"))?;
    let seconds: u64 = args.get(1).map_or(Ok(3), |a| a.parse()).map_err(|e| format!("seconds: {e}"))?;
    ensure_wrk()?;
    cargo(&["build", "--release", "--package", "agx-http-bench"])?;
    let bin = workspace_root().join("target/release/agx-http-bench");

    // results[framework][variant] = one Load per round
    let mut results: Vec<Vec<Vec<Load>>> = PLAN.iter().map(|(_, v)| vec![Vec::new(); v.len()]).collect();
    for round in 0..rounds {
        for (f, (framework, variants)) in PLAN.iter().enumerate() {
            // Rotate the order each round, so that no variant always runs
            // first or last (the machine's noise has a rhythm of its own).
            for step in 0..variants.len() {
                let v = (step + round) % variants.len();
                let variant = &variants[v];
                let port = 18_700 + (f * 10 + v) as u16;
                let load = measure(&bin, framework, variant, port, seconds)?;
                eprintln!(
                    "round {}: {framework}/{variant}: {:.0} req/s, p50 {:.0} µs, p99 {:.0} µs",
                    round + 1,
                    load.rps,
                    load.p50_us,
                    load.p99_us
                );
                results[f][v].push(load);
            }
        }
    }

    println!("\n| framework | variant | req/s | vs bare | p50 | p99 |\n|---|---|---|---|---|---|");
    for (f, (framework, variants)) in PLAN.iter().enumerate() {
        let bare = &results[f][0];
        for (v, variant) in variants.iter().enumerate() {
            let mine = &results[f][v];
            let ratio = median(mine.iter().zip(bare).map(|(m, b)| m.rps / b.rps).collect());
            println!(
                "| {framework} | {variant} | {:.0} | {:.1} % | {:.0} µs | {:.0} µs |",
                median(mine.iter().map(|l| l.rps).collect()),
                ratio * 100.0,
                median(mine.iter().map(|l| l.p50_us).collect()),
                median(mine.iter().map(|l| l.p99_us).collect()),
            );
        }
    }
    println!(
        "\n({rounds} rounds of {seconds} s per variant; wrk -t1 -c32 pinned to CPU 1; one server worker thread pinned to \
         CPU 0; ratios are medians of same-round ratios)"
    );
    Ok(())
}

fn ensure_wrk() -> Result<(), String> {
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

struct Server(Child);

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
    if variant == "auth" {
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).map_err(|e| e.to_string())?;
        key = line.trim().strip_prefix("KEY=").ok_or("the auth server printed no key")?.to_owned();
    }
    let _server = Server(child);
    let started = Instant::now();
    while TcpStream::connect(&addr).is_err() {
        if started.elapsed() > Duration::from_secs(10) {
            return Err(format!("{framework}/{variant} did not listen on {addr}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = pinned(1, "wrk".as_ref())
        .args(["-t1", "-c32", &format!("-d{seconds}s"), "--latency"])
        .args(["-H", &format!("Authorization: Bearer {key}")])
        .arg(format!("http://{addr}/api/public/agents/agent_1"))
        .output()
        .map_err(|e| format!("wrk: {e}"))?;
    let text = String::from_utf8_lossy(&output.stdout);
    if text.contains("Non-2xx") {
        return Err(format!("{framework}/{variant}: responses were not all 200:\n{text}"));
    }
    parse_wrk(&text).ok_or_else(|| format!("cannot read wrk's output:\n{text}"))
}

fn pinned(cpu: u8, program: &std::ffi::OsStr) -> Command {
    let has_taskset = Command::new("taskset").arg("-V").output().is_ok_and(|o| o.status.success());
    if has_taskset {
        let mut c = Command::new("taskset");
        c.args(["-c", &cpu.to_string()]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn parse_wrk(text: &str) -> Option<Load> {
    let mut load = Load { rps: f64::NAN, p50_us: f64::NAN, p99_us: f64::NAN };
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

fn median(mut v: Vec<f64>) -> f64 {
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
