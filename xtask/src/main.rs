//! Project automation: `cargo xtask <command>`.
//!
//! - `ci`: format check, clippy with warnings denied, the tests, the
//!   conformance matrix: what `.ci/run` runs.
//! - `conformance`: the suite against every adapter × store, as a matrix.
//! - `multi-instance`: two reference servers sharing PostgreSQL and Redis
//!   behave as one (one rate limit, keys and deletions visible across both).
//! - `schemathesis`: schemathesis with every check against the server's
//!   OpenAPI document, on memory and PostgreSQL.
//! - `browser`: the dashboard in real Chromium (Playwright for Python), the
//!   product page's steps, on memory and PostgreSQL.
//! - `fuzz [--secs N] [TARGET…]`: the cargo-fuzz targets in `fuzz/`, N
//!   seconds each, with a table of executions.
//! - `soak [--secs N] [--valid N]`: a flood of distinct keys against the
//!   release server on PostgreSQL, its memory sampled each second.
//! - `faults [--secs N]`: PostgreSQL cut at a proxy and its cluster stopped, Redis cut
//!   under each outage mode, in the middle of load: fail closed, recovery,
//!   a deletion the server could not hear, the limit held, usage exact.
//! - `bench-server`: the reference server's own overhead: a junk key and a
//!   valid key against `/healthz`, same run.
//! - `bench`: the criterion benchmarks of the hot path.
//! - `bench-http`: hello-world apps on each framework, bare, with agx-auth and
//!   with a governor peer, loaded with wrk side by side.
//! - `bench-redis`: the same axum app behind agx-auth with the Redis limiter
//!   and with the in-process one, side by side.
//! - `bench-cluster`: verdicts per second and Redis CPU per verdict on one
//!   Redis and on a three-primary loopback cluster (the capacity table).
//! - `bench-scale [--max N]`: verdict median and p99 against 10³ … N keys
//!   (memory, and memory behind the moka cache), and the limiter against as
//!   many active cells.
//! - `bench-gateway`: nginx in front of a hello-world upstream, bare and
//!   with docs/guides/nginx.md's `auth_request` to agx-server.
//! - `bench-pg`: cached and cold verdicts with PostgreSQL behind a moka
//!   cache, and the revocation latency between two instances.

mod bench_gateway;
mod bench_http;
mod bench_server;
mod fuzz;

use std::env;
use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let Some(task) = args.first() else {
        eprintln!(
            "usage: cargo xtask <ci|test|conformance|multi-instance|schemathesis|browser|fuzz|soak|faults|bench-server|bench|bench-http|bench-redis|bench-cluster|bench-scale|bench-gateway|bench-pg> [args…]"
        );
        return ExitCode::FAILURE;
    };
    let rest = &args[1..];
    let result = match task.as_str() {
        "ci" => ci(),
        "test" => test(),
        "conformance" => conformance(rest),
        "multi-instance" => multi_instance(),
        "schemathesis" => schemathesis(),
        "browser" => browser(rest),
        "fuzz" => fuzz::run(rest),
        "soak" => soak(rest),
        "faults" => faults(rest),
        "bench" => bench(rest),
        "bench-http" => bench_http::run(rest, bench_http::OVERHEAD),
        "bench-server" => bench_server::run(rest),
        "bench-gateway" => bench_gateway::run(rest),
        "bench-redis" => bench_http::run(rest, bench_http::REDIS),
        "bench-pg" => cargo(&["run", "--release", "--package", "agx-auth-postgres", "--example", "pg_latency"]),
        "bench-cluster" => release_example("agx-auth-redis", "capacity", rest),
        "bench-scale" => release_example("agx-auth-moka", "scale", rest),
        other => Err(format!("unknown task `{other}`")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `cargo run --release --package PACKAGE --example EXAMPLE -- REST…`: the
/// benchmarks that are one program each.
fn release_example(package: &str, example: &str, rest: &[String]) -> Result<(), String> {
    let mut args = vec!["run", "--release", "--package", package, "--example", example, "--"];
    args.extend(rest.iter().map(String::as_str));
    cargo(&args)
}

pub(crate) fn cargo(args: &[&str]) -> Result<(), String> {
    cargo_with(args, &[])
}

pub(crate) fn cargo_with(args: &[&str], envs: &[(&str, &str)]) -> Result<(), String> {
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    eprintln!("$ cargo {}", args.join(" "));
    let status = Command::new(&cargo)
        .args(args)
        .envs(envs.iter().copied())
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if status.success() { Ok(()) } else { Err(format!("`cargo {}` failed ({status})", args.join(" "))) }
}

fn ci() -> Result<(), String> {
    cargo(&["fmt", "--all", "--", "--check"])?;
    cargo(&["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"])?;
    test()?;
    conformance(&[])?;
    multi_instance()?;
    schemathesis()?;
    browser(&[])?;
    faults(&[])?;
    fuzz::run(&["--secs".to_owned(), "15".to_owned()])
}

/// The test command README.md gives.
fn test() -> Result<(), String> {
    cargo(&["test", "--workspace"])
}

/// Every adapter × store in process, and the reference server as a black box
/// (on memory, and on PostgreSQL when it is there).
fn conformance(extra: &[String]) -> Result<(), String> {
    black_box(None, Profile::Debug, extra, &[])
}

/// Two reference servers on one database and one Redis (both must be there:
/// the proof is about them, so absence is a failure here).
fn multi_instance() -> Result<(), String> {
    black_box(Some("multi-instance"), Profile::Debug, &[], &[("AGX_REQUIRE_SERVICES", "1")])
}

/// PostgreSQL and Redis taken away under load, counted per second
/// (`--secs N`, how long each fault lasts, passes through).
fn faults(extra: &[String]) -> Result<(), String> {
    black_box(Some("faults"), Profile::Debug, extra, &[])
}

/// A flood of distinct keys against the release server on PostgreSQL, with
/// its memory sampled (`--secs N`, `--valid N` pass through).
fn soak(extra: &[String]) -> Result<(), String> {
    black_box(Some("soak"), Profile::Release, extra, &[])
}

/// The dashboard in a real browser (Chromium and Playwright), on memory and
/// PostgreSQL. `--docs` writes the screenshots into docs/dashboard (the README's).
fn browser(extra: &[String]) -> Result<(), String> {
    black_box(Some("browser"), Profile::Debug, extra, &[])
}

/// schemathesis, with every check, against the server's generated OpenAPI
/// document, on memory and PostgreSQL.
fn schemathesis() -> Result<(), String> {
    black_box(Some("schemathesis"), Profile::Debug, &[], &[])
}

#[derive(Clone, Copy, PartialEq)]
enum Profile {
    Debug,
    Release,
}

/// Builds `agx-server` and runs `agx-conformance [SUBCOMMAND] --server PATH
/// [EXTRA…]` against it: every black-box run starts this way. A release run
/// builds both in release (a load generator in debug would measure itself).
fn black_box(sub: Option<&str>, profile: Profile, extra: &[String], envs: &[(&str, &str)]) -> Result<(), String> {
    let (flag, dir) = match profile {
        Profile::Debug => (None, "debug"),
        Profile::Release => (Some("--release"), "release"),
    };
    let mut build = vec!["build", "--quiet", "--package", "agx-server"];
    build.extend(flag);
    cargo(&build)?;
    let server = workspace_root().join("target").join(dir).join("agx-server");
    let server = server.to_string_lossy();
    let mut args = vec!["run", "--quiet", "--package", "agx-conformance"];
    args.extend(flag);
    args.push("--");
    args.extend(sub);
    args.extend(["--server", &server]);
    args.extend(extra.iter().map(String::as_str));
    cargo_with(&args, envs)
}

/// Runs the criterion benchmarks and the paired limiter comparison, then
/// prints criterion's medians as a table for docs/benchmarks.md.
fn bench(extra: &[String]) -> Result<(), String> {
    let mut args = vec!["bench", "--package", "agx-auth", "--bench", "hot_path", "--"];
    args.extend(extra.iter().map(String::as_str));
    cargo(&args)?;
    cargo(&["bench", "--package", "agx-auth", "--bench", "limiter_pair"])?;
    println!("\n| benchmark | median |\n|---|---|");
    for (name, median_ns) in criterion_medians()? {
        println!("| `{name}` | {} |", human(median_ns));
    }
    Ok(())
}

/// `target/criterion/<bench>/new/estimates.json` → (bench, median in ns).
fn criterion_medians() -> Result<Vec<(String, f64)>, String> {
    let root = workspace_root().join("target/criterion");
    let mut out = Vec::new();
    let entries = std::fs::read_dir(&root).map_err(|e| format!("{}: {e}", root.display()))?;
    for entry in entries.flatten() {
        let path = entry.path().join("new/estimates.json");
        let Ok(text) = std::fs::read_to_string(&path) else { continue };
        let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        if let Some(median) = json["median"]["point_estimate"].as_f64() {
            out.push((entry.file_name().to_string_lossy().into_owned(), median));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

pub(crate) fn workspace_root() -> std::path::PathBuf {
    let here = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.parent().map(std::path::Path::to_path_buf).unwrap_or(here)
}

fn human(ns: f64) -> String {
    if ns >= 1000.0 { format!("{:.2} µs", ns / 1000.0) } else { format!("{ns:.1} ns") }
}
