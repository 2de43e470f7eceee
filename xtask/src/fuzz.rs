//! `cargo xtask fuzz [--secs N | --runs N] [TARGET…]`: each fuzz target in
//! `fuzz/` (cargo fuzz, libFuzzer, the nightly toolchain) for N seconds
//! (default 30) or N executions, then a table of executions per target and
//! a closing line. A crash
//! stops the run with libFuzzer's report; the input is in
//! `fuzz/artifacts/TARGET/`. Without a sanitizer: the code under test is
//! safe Rust, and the time goes to executions instead (debug assertions,
//! overflow checks included, stay on).

use std::process::Command;

use crate::workspace_root;

pub const TARGETS: [&str; 6] = ["credential", "key_parse", "classify", "dates", "authenticate", "server"];

pub fn run(args: &[String]) -> Result<(), String> {
    let mut secs = 30u64;
    let mut runs: Option<u64> = None;
    let mut only = Vec::new();
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--secs" => {
                secs = rest.next().and_then(|s| s.parse().ok()).ok_or("--secs needs a whole number of seconds")?;
            }
            "--runs" => {
                runs = Some(rest.next().and_then(|s| s.parse().ok()).ok_or("--runs needs a whole number")?);
            }
            t if TARGETS.contains(&t) => only.push(t),
            other => return Err(format!("unknown fuzz argument {other}; targets: {}", TARGETS.join(", "))),
        }
    }
    let targets: Vec<&str> = if only.is_empty() { TARGETS.to_vec() } else { only };
    let fuzz_dir = workspace_root().join("fuzz");
    let ok = Command::new("cargo").args(["+nightly", "fuzz", "--version"]).output().is_ok_and(|o| o.status.success());
    if !ok {
        return Err("cargo fuzz is not installed (cargo install cargo-fuzz; it needs the nightly toolchain)".into());
    }
    let mut rows = Vec::new();
    for target in &targets {
        let bound = match runs {
            Some(n) => format!("-runs={n}"),
            None => format!("-max_total_time={secs}"),
        };
        eprintln!("fuzz: {target} ({bound})");
        let started = std::time::Instant::now();
        let output = Command::new("cargo")
            .args(["+nightly", "fuzz", "run", "--sanitizer", "none", target, "--"])
            .arg(&bound)
            .args(["-print_final_stats=1", "-rss_limit_mb=4096"])
            .current_dir(&fuzz_dir)
            .output()
            .map_err(|e| format!("cargo fuzz: {e}"))?;
        let log = String::from_utf8_lossy(&output.stderr);
        if !output.status.success() {
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            return Err(format!("fuzz target {target} failed:\n{}", tail.join("\n")));
        }
        let stat = |name: &str| {
            log.lines().find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse::<u64>().ok())).unwrap_or(0)
        };
        let took = started.elapsed().as_secs().max(1);
        rows.push((*target, stat("stat::number_of_executed_units:"), stat("stat::peak_rss_mb:"), took));
    }
    // Every row is a target that ran to its bound: a crash ends the run above.
    println!("\n| target | executions | time (build included) | peak RSS | crashes |\n|---|---|---|---|---|");
    for (target, n, rss, took) in &rows {
        println!("| `{target}` | {n} | {took} s | {rss} MB | 0 |");
    }
    let total: u64 = rows.iter().map(|r| r.1).sum();
    println!("\nfuzz: {} targets, {total} executions in all, 0 crashes", rows.len());
    Ok(())
}
